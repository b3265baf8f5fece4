//! `scratchpack push`: an image already packed, read from an OCI layout or archive, sent to
//! registries with its referrers (SBOMs), and with `--sign-key` signed there as `pack` signs (each
//! manifest and the index, naming the repository pushed to). Reading is the layout module's,
//! sending the registry destination's, signing `sign`'s; this only joins them.

use anyhow::{bail, Context, Result};

use crate::dest::registry::{RegistryContext, RegistryDestination};
use crate::dest::{tags_or, DestSpec, Published};
use crate::layout::read::StoredImage;
use crate::registry::push::PushSet;
use crate::registry::{Reference, Tag};

/// What to push where, checked.
#[derive(Debug)]
pub(crate) struct PushOptions {
    /// `oci:DIR[:TAG]` or `oci-archive:FILE[:TAG]`.
    pub(crate) source: String,
    /// Each registry destination, with the text that named it.
    pub(crate) destinations: Vec<(String, Reference)>,
    /// Tags for destinations that name none.
    pub(crate) tags: Vec<Tag>,
    pub(crate) registry: RegistryContext,
    pub(crate) signer: Option<std::sync::Arc<dyn crate::sign::Signer>>,
}

/// Reads `oci:DIR[:TAG]` or `oci-archive:FILE[:TAG]`.
pub(crate) fn read(source: &str) -> Result<StoredImage> {
    match source.parse::<DestSpec>()? {
        DestSpec::OciLayout { dir, tag } => StoredImage::from_layout(&dir, tag.as_deref()),
        DestSpec::OciArchive { file, tag } => StoredImage::from_archive(&file, tag.as_deref()),
        _ => bail!("{source:?}: push reads oci:DIR[:TAG] or oci-archive:FILE[:TAG]"),
    }
}

fn push_set(image: &StoredImage) -> PushSet<'_> {
    PushSet { blobs: image.blobs.iter().collect(), manifests: image.manifests.iter().collect(), root: &image.root }
}

/// Pushes the source image to every destination, in order; returns, per destination, the text
/// that named it and what was written.
pub(crate) fn push(options: &PushOptions) -> Result<Vec<(String, Published)>> {
    let image = read(&options.source).with_context(|| format!("reading {}", options.source))?;
    let mut published = Vec::new();
    for (text, reference) in &options.destinations {
        let tags = tags_or(&reference.tag, &options.tags);
        let mut destination = RegistryDestination::new(reference.clone(), tags, options.registry.clone());
        let set = push_set(&image);
        let mut attachments = image.referrers.clone();
        if let Some(signer) = &options.signer {
            let subjects: Vec<&crate::image::Blob> = image.manifests.iter().chain([&image.root]).collect();
            attachments.extend(crate::sign::cosign::sign_all(signer.as_ref(), &subjects, &reference.repository.to_string())?);
        }
        let written = destination.push_set_with(&set, &attachments).with_context(|| format!("writing {text}"))?;
        published.push((text.clone(), written));
    }
    Ok(published)
}
