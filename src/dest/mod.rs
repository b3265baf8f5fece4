//! Destinations: where a packed image goes. One type per destination, behind one trait.
//!
//! A destination receives finished blobs and writes or sends them; it never knows how layers are
//! made or what an ELF is. Every local destination is atomic: it either ends with the new image in
//! place, or leaves what was there before untouched, with no temporary files left behind.

mod docker_archive;
mod oci_archive;
mod oci_layout;
pub mod registry;
pub mod spec;

use std::path::PathBuf;

pub use docker_archive::DockerArchive;
pub use oci_archive::OciArchive;
pub use oci_layout::OciLayout;
pub use spec::{DestSpec, SpecError};

use crate::image::referrers::Attachment;
use crate::image::{Artifact, Blob};

/// A place a packed image is published to. `publish` returns the line printed on stdout for it:
/// the destination and tag, then `@` and the digest of what the tag points to.
pub trait Destination {
    /// Offers blobs of the image that are final before the rest of it is (the layers shared by
    /// the binaries, while their own layers are still being compressed). A destination may put
    /// them in place now; whatever it did is undone unless [`Destination::publish`] then succeeds.
    fn prepare(&mut self, _ready: &[&Blob]) -> Result<(), DestError> {
        Ok(())
    }

    /// Publishes the image, and the artifacts attached to it (SBOMs) where the destination can
    /// hold them.
    fn publish(&mut self, artifact: &Artifact, attachments: &[Attachment]) -> Result<String, DestError>;
}

#[derive(Debug, thiserror::Error)]
pub enum DestError {
    #[error("{}: {action}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not an OCI image layout ({reason})", path.display())]
    NotALayout { path: PathBuf, reason: String },
    #[error("{}: docker-archive holds one platform's image, but this pack made {count} platforms", path.display())]
    DockerArchiveIndex { path: PathBuf, count: usize },
    #[error("pushing to {reference}")]
    Registry {
        reference: String,
        #[source]
        source: Box<crate::registry::RegistryError>,
    },
}

impl DestError {
    pub fn io(path: impl Into<PathBuf>, action: &'static str) -> impl FnOnce(std::io::Error) -> DestError {
        let path = path.into();
        move |source| DestError::Io { path, action, source }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            DestError::NotALayout { .. } => Some("write to an empty or new folder, or to an existing layout made by an OCI tool".into()),
            DestError::DockerArchiveIndex { .. } => {
                Some("use oci: or oci-archive: for a multi-platform image, or pack one binary per docker-archive".into())
            }
            DestError::Registry { source, .. } => source.hint(),
            DestError::Io { .. } => None,
        }
    }
}

/// Opens the destination a `--output` names. `default_tags` apply where the spec names no tag;
/// `default_name` names the image in a docker archive that gives no reference.
pub fn open(spec: &DestSpec, default_tags: &[String], default_name: &str, registry: &registry::RegistryContext) -> Box<dyn Destination> {
    match spec {
        DestSpec::Registry { reference } => {
            let tags = match &reference.tag {
                Some(tag) => vec![tag.clone()],
                None => default_tags.to_vec(),
            };
            Box::new(registry::RegistryDestination::new(reference.clone(), tags, registry.clone()))
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
    }
}

fn tags_or(tag: &Option<String>, default_tags: &[String]) -> Vec<String> {
    match tag {
        Some(tag) => vec![tag.clone()],
        None => default_tags.to_vec(),
    }
}

/// Writes a file next to its final place and renames it over, so readers see the old or the new
/// file, never a part. The temporary file is removed if anything fails.
pub fn write_atomically(path: &std::path::Path, write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>) -> Result<(), DestError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(DestError::io(dir, "cannot create a temporary file"))?;
    let _guard = crate::cleanup::register(temp.path());
    use std::os::unix::fs::PermissionsExt;
    // Like any file a user creates: readable by all (tempfile starts at 0600).
    temp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644)).map_err(DestError::io(temp.path(), "cannot set the mode of"))?;
    write(temp.as_file_mut()).map_err(DestError::io(temp.path(), "cannot write"))?;
    temp.as_file().sync_all().map_err(DestError::io(temp.path(), "cannot sync"))?;
    temp.persist(path).map_err(|e| DestError::Io { path: path.to_path_buf(), action: "cannot replace", source: e.error })?;
    Ok(())
}

/// Puts blobs at their paths as `write_atomically` does, syncing them together. Each goes under a
/// temporary name first: a staged layer as a hard link when it sits on the same file system (no
/// copy: staged files are never written again), else a copy by the kernel (`copy_file_range`); an
/// in-memory blob is written. Then all are synced (the writeback of every one started before the
/// first sync waits, so that the waits overlap) and renamed into place. The temporary files are
/// removed if anything fails.
pub fn place_blobs_atomically(blobs: &[(std::path::PathBuf, &crate::image::Blob)]) -> Result<(), DestError> {
    let mut temps = Vec::new();
    for (path, blob) in blobs {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .make_in(dir, |temp| match &blob.data {
                crate::image::BlobData::File(source) => crate::image::blob::link_or_copy(source, temp),
                crate::image::BlobData::Memory(bytes) => {
                    use std::io::Write;
                    use std::os::unix::fs::OpenOptionsExt;
                    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(temp)?;
                    file.write_all(bytes)
                }
            })
            .map_err(DestError::io(dir, "cannot create a temporary file"))?;
        let guard = crate::cleanup::register(temp.path());
        temps.push((path, temp, guard));
    }
    let mut opened = Vec::with_capacity(temps.len());
    for (_, temp, _) in &temps {
        let file = std::fs::File::open(temp.path()).map_err(DestError::io(temp.path(), "cannot sync"))?;
        crate::image::blob::start_writeback(&file, 0, 0);
        opened.push(file);
    }
    for ((_, temp, _), file) in temps.iter().zip(&opened) {
        file.sync_all().map_err(DestError::io(temp.path(), "cannot sync"))?;
    }
    for (path, temp, _guard) in temps {
        temp.persist(path).map_err(|e| DestError::Io { path: path.to_path_buf(), action: "cannot replace", source: e.error })?;
    }
    Ok(())
}
