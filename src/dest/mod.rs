//! Destinations: where a packed image goes. One type per destination, behind one trait.
//!
//! A destination receives finished blobs and writes or sends them; it never knows how layers are
//! made or what an ELF is. Every local destination is atomic: it either ends with the new image in
//! place, or leaves what was there before untouched, with no temporary files left behind.

mod docker_archive;
mod engine;
mod oci_archive;
mod oci_layout;
pub(crate) mod registry;
pub(crate) mod spec;

use std::path::PathBuf;

pub(crate) use docker_archive::DockerArchive;
pub(crate) use oci_archive::OciArchive;
pub(crate) use oci_layout::OciLayout;
pub use spec::DestSpec;

use crate::atomic::FileError;
use crate::engine::{EngineError, EngineKind};
use crate::image::referrers::Attachment;
use crate::image::stored::StoredImage;
use crate::image::{Blob, Digest, ImageOrIndex};
use crate::layout::LayoutError;
use crate::registry::Tag;

/// What a destination wrote: the reference it names it by (`oci:DIR:TAG`, `HOST/REPO`) and the
/// digest of what the tag points to. Shown as `REFERENCE@DIGEST`, the line `pack` prints, with
/// ` (PLATFORM)` after it where the destination took one platform's image (a local engine).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Published {
    pub(crate) reference: String,
    pub(crate) digest: Digest,
    /// The one platform written, where the destination holds one platform only.
    pub(crate) platform: Option<String>,
}

impl Published {
    /// `REFERENCE@DIGEST`.
    pub(crate) fn pinned(&self) -> String {
        format!("{}@{}", self.reference, self.digest)
    }
}

impl std::fmt::Display for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.reference, self.digest)?;
        if let Some(platform) = &self.platform {
            write!(f, " ({platform})")?;
        }
        Ok(())
    }
}

/// A place a packed image is published to.
pub(crate) trait Destination {
    /// Offers blobs of the image that are final before the rest of it is (the layers shared by
    /// the binaries, while their own layers are still being compressed). A destination may put
    /// them in place now; whatever it did is undone unless [`Destination::publish`] then succeeds.
    fn prepare(&mut self, _ready: &[&Blob]) -> Result<(), DestError> {
        Ok(())
    }

    /// Publishes the image, and the artifacts attached to it (SBOMs) where the destination can
    /// hold them.
    fn publish(&mut self, image: &ImageOrIndex, attachments: &[Attachment]) -> Result<Published, DestError>;

    /// Publishes an image read elsewhere (`copy`), its bytes and digests unchanged, with its
    /// referrers where the destination can hold them.
    fn publish_stored(&mut self, image: &StoredImage) -> Result<Published, DestError>;
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum DestError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("{}: docker-archive holds one platform's image, but this image has {count} platforms", path.display())]
    DockerArchiveIndex { path: PathBuf, count: usize },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{scheme}: cannot name the image {name}")]
    EngineName {
        scheme: &'static str,
        name: String,
        #[source]
        source: Box<crate::registry::reference::ReferenceError>,
    },
    #[error("the {engine} at {} runs {platform}, and this pack made {}", socket.display(), packed.join(", "))]
    EnginePlatform { engine: &'static str, socket: PathBuf, platform: String, packed: Vec<String> },
    #[error("{what}: {reason}")]
    Unsupported { what: String, reason: String },
    #[error("pushing to {reference}")]
    Registry {
        reference: String,
        #[source]
        source: Box<crate::registry::RegistryError>,
    },
}

impl DestError {
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            DestError::Layout(error) => error.hint(),
            DestError::DockerArchiveIndex { .. } => {
                Some("use oci: or oci-archive: for a multi-platform image, or one platform's manifest (docker://HOST/REPO@DIGEST of the child) per docker-archive".into())
            }
            DestError::Registry { source, .. } => source.hint(),
            DestError::File(error) => error.hint(),
            DestError::Engine(error) => error.hint(),
            DestError::EngineName { scheme, .. } => {
                Some(format!("the name comes from the program's file name: name the image with --output {scheme}:NAME[:TAG]"))
            }
            DestError::EnginePlatform { platform, .. } => {
                Some(format!("add a binary built for {platform} to the pack, or write oci-archive:FILE and run the image under emulation"))
            }
            DestError::Unsupported { .. } => None,
        }
    }
}

/// Opens the destination a `--output` names. `default_tags` apply where the spec names no tag;
/// `default_name` names the image in a docker archive that gives no reference.
pub(crate) fn open(
    spec: &DestSpec,
    default_tags: &[Tag],
    default_name: &str,
    registry: &registry::RegistryContext,
) -> Box<dyn Destination> {
    match spec {
        DestSpec::Registry { reference } => {
            Box::new(registry::RegistryDestination::new(reference.clone(), tags_or(&reference.tag, default_tags), registry.clone()))
        }
        DestSpec::OciLayout { dir, tag } => Box::new(OciLayout::new(dir.clone(), tags_or(tag, default_tags))),
        DestSpec::OciArchive { file, tag } => Box::new(OciArchive::new(file.clone(), tags_or(tag, default_tags))),
        DestSpec::DockerArchive { file, reference } => {
            let references = match reference {
                Some(reference) => vec![reference.clone()],
                None => default_tags.iter().map(|tag| format!("{default_name}:{tag}")).collect(),
            };
            Box::new(DockerArchive::new(file.clone(), references))
        }
        DestSpec::DockerDaemon { name, tag } | DestSpec::Podman { name, tag } => {
            let kind = if matches!(spec, DestSpec::DockerDaemon { .. }) { EngineKind::Docker } else { EngineKind::Podman };
            let name = name.as_deref().unwrap_or(default_name);
            let references = tags_or(tag, default_tags).iter().map(|tag| format!("{name}:{tag}")).collect();
            Box::new(engine::EngineDestination::new(kind, references))
        }
    }
}

/// The tag a destination names, else the default tags.
pub(crate) fn tags_or(tag: &Option<Tag>, default_tags: &[Tag]) -> Vec<Tag> {
    match tag {
        Some(tag) => vec![tag.clone()],
        None => default_tags.to_vec(),
    }
}
