//! Image sources and `scratchpack copy SRC DEST`: an image read from an OCI layout, an OCI archive
//! or a registry (by tag or digest), then written to any destination with its index, child
//! manifests and referrers, every byte and digest as it was.
//!
//! Reading is the layout module's and the registry client's, writing the destinations'; this only
//! names the source and joins the two. A registry image is read lazily ([`read_lazily`]): registry
//! to a repository of the same registry, every blob is mounted, never downloaded or uploaded; to
//! anywhere else, each blob is fetched once into a staging file (and the layer cache), never
//! held whole in memory.

use std::str::FromStr;

use anyhow::{bail, Context, Result};

use crate::dest::registry::RegistryContext;
use crate::dest::{self, DestSpec, Published};
use crate::image::cache::LayerCache;
use crate::image::stored::StoredImage;
use crate::image::Staging;
use crate::registry::lazy;
use crate::registry::{progress, Reference, Tag};

/// Where an image is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Layout { dir: std::path::PathBuf, tag: Option<Tag> },
    Archive { file: std::path::PathBuf, tag: Option<Tag> },
    Registry { reference: Reference },
}

/// The forms a source takes, for errors.
pub(crate) const SOURCE_FORMS: &str = "oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker://HOST/REPO[:TAG|@sha256:…]";

impl FromStr for Source {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Source> {
        if let Some(reference) = text.strip_prefix("docker://") {
            let reference: Reference =
                reference.parse().with_context(|| format!("{:?}", crate::registry::reference::redact_userinfo(text)))?;
            return Ok(Source::Registry { reference });
        }
        match text.parse::<DestSpec>() {
            Ok(DestSpec::OciLayout { dir, tag }) => Ok(Source::Layout { dir, tag }),
            Ok(DestSpec::OciArchive { file, tag }) => Ok(Source::Archive { file, tag }),
            _ => bail!("{text:?}: an image is read from {SOURCE_FORMS}"),
        }
    }
}

impl Source {
    /// Whether `text` names an image source by its prefix (what `inspect` tells files from images by).
    pub(crate) fn is_image_reference(text: &str) -> bool {
        ["oci:", "oci-archive:", "docker://"].iter().any(|prefix| text.starts_with(prefix))
    }

    /// The tag the source names, if any.
    pub(crate) fn tag(&self) -> Option<&Tag> {
        match self {
            Source::Layout { tag, .. } | Source::Archive { tag, .. } => tag.as_ref(),
            Source::Registry { reference } => reference.tag.as_ref(),
        }
    }
}

/// Reads the image `source` names. A registry image is fetched whole: manifests, blobs (from the
/// layer cache where it holds them) and referrers.
pub(crate) fn read(source: &Source, registry: &RegistryContext) -> Result<StoredImage> {
    let image = read_lazily(source, registry)?;
    lazy::fetch_all(&image).map_err(|e| anyhow::Error::new(e).context(format!("pulling {}", shown(source))))?;
    Ok(image)
}

/// Reads the image `source` names, leaving a registry image's content blobs in the registry until
/// a destination needs them: its manifests, index and referrers are read (and checked) now; each
/// layer and config is a [`crate::image::blob::RemoteBlob`]. A registry destination on the same
/// registry mounts them from the source repository, so nothing is downloaded or uploaded (see
/// `dest::registry`); any other destination fetches each once, on first use, into the layer cache
/// ([`lazy::fetch_all`] fetches them all, four at a time). Layouts and archives are read as
/// [`read`] reads them.
///
/// This is what a base image is read with: `read_lazily(&"docker://HOST/REPO@sha256:…".parse()?,
/// &context)`; pick the child ([`StoredImage::children`]), take its config and layers
/// (`content_of(&child.value)`, each by [`StoredImage::blob`]) and put those `Blob`s, cloned
/// (clones share one fetch), into the new image as they are. A push to the base's registry
/// mounts them; before writing anywhere else, [`lazy::fetch_blobs`] brings them here four at a
/// time (else each is fetched when first read).
pub(crate) fn read_lazily(source: &Source, registry: &RegistryContext) -> Result<StoredImage> {
    match source {
        Source::Layout { dir, tag } => StoredImage::from_layout(dir, tag.as_ref().map(|t| &**t)),
        Source::Archive { file, tag } => StoredImage::from_archive(file, tag.as_ref().map(|t| &**t)),
        Source::Registry { reference } => {
            let repository = &reference.repository;
            let wrap = |e| anyhow::Error::new(e).context(format!("pulling {reference}"));
            let client = registry.client(repository, vec![format!("repository:{}:pull", repository.path)]).map_err(wrap)?;
            let staging = Staging::near(None).context("cannot create a staging folder for the download")?;
            let name = match (&reference.digest, &reference.tag) {
                (Some(digest), _) => digest.to_string(),
                (None, Some(tag)) => tag.to_string(),
                (None, None) => Tag::latest().to_string(),
            };
            let reporter = progress::for_stderr(registry.quiet, &repository.to_string());
            let image =
                lazy::pull_lazily(client, &repository.path, &name, reference.digest.as_ref(), staging, LayerCache::from_env(), reporter)
                    .map_err(wrap)?;
            Ok(image)
        }
    }
}

/// The source as errors name it.
fn shown(source: &Source) -> String {
    match source {
        Source::Registry { reference } => reference.to_string(),
        Source::Layout { dir, .. } | Source::Archive { file: dir, .. } => dir.display().to_string(),
    }
}

/// What to copy where.
#[derive(Debug)]
pub(crate) struct CopyOptions {
    pub(crate) source: String,
    pub(crate) destination: String,
    pub(crate) registry: RegistryContext,
}

/// Copies the image: read whole, then written, with a tag the destination names, else the
/// source's, else `latest` (a registry destination without a tag and a source by digest is
/// written by digest alone).
pub(crate) fn copy(options: &CopyOptions) -> Result<Published> {
    let source: Source = options.source.parse()?;
    let spec: DestSpec = options.destination.parse()?;
    // Registry to registry, blobs stay lazy: mounted on the same registry, else fetched by the
    // uploads as they go. Every other destination gets them all first, four at a time.
    let mut image = match spec {
        DestSpec::Registry { .. } => read_lazily(&source, &options.registry),
        _ => read(&source, &options.registry),
    }
    .with_context(|| format!("reading {}", options.source))?;
    // Signatures and attestations also go under cosign's tags, where today's cosign looks.
    for attachment in &mut image.referrers {
        crate::sign::cosign::carry_tags(attachment);
    }
    let by_digest_only = matches!(&source, Source::Registry { reference } if reference.digest.is_some() && reference.tag.is_none());
    let default_tags: Vec<Tag> = match source.tag() {
        Some(tag) => vec![tag.clone()],
        None if by_digest_only && matches!(spec, DestSpec::Registry { .. }) => Vec::new(),
        None => vec![Tag::latest()],
    };
    let name = match &source {
        Source::Registry { reference } => reference.repository.path.rsplit('/').next().unwrap_or("image").to_string(),
        Source::Layout { dir, .. } | Source::Archive { file: dir, .. } => {
            dir.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "image".into())
        }
    };
    let mut destination = dest::open(&spec, &default_tags, &name, &options.registry);
    destination.publish_stored(&image).with_context(|| format!("writing {}", options.destination))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_by_prefix() {
        assert!(matches!("oci:out:1.0".parse::<Source>().unwrap(), Source::Layout { tag: Some(_), .. }));
        assert!(matches!("oci-archive:a.tar".parse::<Source>().unwrap(), Source::Archive { tag: None, .. }));
        let digest = format!("docker://127.0.0.1:5000/app@sha256:{}", "a".repeat(64));
        assert!(matches!(digest.parse::<Source>().unwrap(), Source::Registry { reference } if reference.digest.is_some()));
        assert!("docker-archive:x.tar".parse::<Source>().unwrap_err().to_string().contains("an image is read from"));
        assert!(Source::is_image_reference("docker://h/r") && !Source::is_image_reference("./app"));
    }
}
