//! `docker-archive:FILE[:REF]`: the `docker save` format that `docker load` and `podman load` read.
//!
//! Layers go in uncompressed, named after their diff IDs, because that is what the format's readers
//! check against the config. They are decompressed from the staged blobs while the archive is
//! written, so nothing is held in memory.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use serde_json::json;

use super::oci_archive::file_header;
use super::{DestError, Destination, Published};
use crate::atomic::write_atomically;
use crate::image::stored::{content_of, StoredImage};
use crate::image::{Blob, Digest, Image, ImageOrIndex, Layer};

pub(crate) struct DockerArchive {
    file: PathBuf,
    references: Vec<String>,
}

impl DockerArchive {
    pub(crate) fn new(file: PathBuf, references: Vec<String>) -> Self {
        DockerArchive { file, references }
    }
}

fn uncompressed(layer: &Layer) -> io::Result<Box<dyn Read + Send>> {
    crate::image::layer::decompressed(io::BufReader::new(layer.blob.open()?), layer.compression)
}

/// A stored image's layer as the archive needs it: its compression, its diff ID (from the
/// config) and its uncompressed size, found by decompressing it once (streamed, and checked
/// against the diff ID).
fn stored_layer(blob: &Blob, diff_id: &str) -> Result<Layer, DestError> {
    let bad = |reason: String| DestError::Unsupported { what: format!("layer {}", blob.digest), reason };
    let compression = crate::image::layer::compression_of(&blob.media_type)
        .ok_or_else(|| bad(format!("media type {} is not a tar, gzip or zstd layer", blob.media_type)))?;
    let diff_id = Digest::parse(diff_id).map_err(|e| bad(e.to_string()))?;
    let mut layer = Layer { blob: blob.clone(), diff_id, uncompressed_size: 0, compression };
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    let size = io::copy(&mut uncompressed(&layer).map_err(|e| bad(e.to_string()))?, &mut HashWriter(&mut hasher))
        .map_err(|e| bad(format!("cannot be decompressed: {e}")))?;
    if Digest::from_hasher(hasher) != diff_id {
        return Err(bad(format!("does not decompress to its diff ID {diff_id}")));
    }
    layer.uncompressed_size = size;
    Ok(layer)
}

struct HashWriter<'a>(&'a mut sha2::Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        sha2::Digest::update(self.0, buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Destination for DockerArchive {
    /// One platform's image, its layers written uncompressed as the format wants: a copy of an
    /// index must name one platform's manifest.
    fn publish_stored(&mut self, stored: &StoredImage) -> Result<Published, DestError> {
        let mut images = stored_images(stored)?;
        if images.len() != 1 {
            return Err(DestError::DockerArchiveIndex { path: self.file.clone(), count: images.len() });
        }
        self.publish(&ImageOrIndex::Image(images.remove(0)), &[])
    }

    /// A docker archive has no place for referrers: attachments are left out.
    fn publish(&mut self, packed: &ImageOrIndex, _attachments: &[crate::image::referrers::Attachment]) -> Result<Published, DestError> {
        let [image] = packed.images() else {
            return Err(DestError::DockerArchiveIndex { path: self.file.clone(), count: packed.images().len() });
        };
        write_atomically(&self.file, |file| write_archive(image, &self.references, io::BufWriter::new(file))?.flush())?;
        let reference = self.references.first().map(|r| format!(":{r}")).unwrap_or_default();
        Ok(Published {
            reference: format!("docker-archive:{}{}", self.file.display(), reference),
            digest: image.manifest.digest,
            platform: None,
        })
    }
}

/// Each platform's image of `stored`, as a pack would have made it: what an archive or an engine
/// is given to load.
pub(super) fn stored_images(stored: &StoredImage) -> Result<Vec<Image>, DestError> {
    stored.children().iter().map(|child| stored_image(child, stored)).collect()
}

fn stored_image(child: &crate::image::stored::Child<'_>, stored: &StoredImage) -> Result<Image, DestError> {
    let content = content_of(&child.value);
    let missing = |digest: &str| DestError::Unsupported {
        what: format!("image {}", child.manifest.digest),
        reason: format!("blob {digest} is missing"),
    };
    let (_, config_digest, _) = content.first().ok_or_else(|| missing("config"))?;
    let config = stored.blobs.iter().find(|b| b.digest.to_string() == *config_digest).ok_or_else(|| missing(config_digest))?;
    let config_value = crate::image::stored::parse(config);
    let diff_ids: Vec<String> =
        config_value["rootfs"]["diff_ids"].as_array().into_iter().flatten().filter_map(|d| d.as_str().map(str::to_string)).collect();
    if diff_ids.len() + 1 != content.len() {
        return Err(DestError::Unsupported {
            what: format!("image {}", child.manifest.digest),
            reason: format!("its config lists {} diff IDs for {} layers", diff_ids.len(), content.len() - 1),
        });
    }
    let mut layers = Vec::new();
    for ((_, digest, _), diff_id) in content[1..].iter().zip(&diff_ids) {
        let blob = stored.blobs.iter().find(|b| b.digest.to_string() == *digest).ok_or_else(|| missing(digest))?;
        layers.push(stored_layer(blob, diff_id)?);
    }
    let architecture = config_value["architecture"].as_str().unwrap_or_default();
    let image = Image {
        platform: crate::platform::Platform::linux(architecture, config_value["variant"].as_str()),
        manifest: child.manifest.clone(),
        config: config.clone(),
        layers,
    };
    Ok(image)
}

/// Writes `image` as a docker archive naming it `references` (its `RepoTags`) into `out`, from
/// the first byte to the last in one pass: the layers, then the config, then `manifest.json`.
/// Returns `out`, not flushed. An engine's load endpoint reads the same stream.
pub(crate) fn write_archive<W: Write>(image: &Image, references: &[String], out: W) -> io::Result<W> {
    let config_name = format!("{}.json", image.config.digest.hex());
    let layer_names: Vec<String> = image.layers.iter().map(|l| format!("{}.tar", l.diff_id.hex())).collect();
    let manifest = serde_json::to_vec(&json!([{ "Config": config_name, "RepoTags": references, "Layers": layer_names }])).expect("JSON");
    let mut tar = tar::Builder::new(out);
    let mut written = std::collections::HashSet::new();
    for (layer, name) in image.layers.iter().zip(&layer_names) {
        if written.insert(name.clone()) {
            let mut reader = uncompressed(layer)?.take(layer.uncompressed_size);
            tar.append_data(&mut file_header(layer.uncompressed_size), name, &mut reader)?;
        }
    }
    tar.append_data(&mut file_header(image.config.size), &config_name, image.config.open()?)?;
    tar.append_data(&mut file_header(manifest.len() as u64), "manifest.json", &manifest[..])?;
    tar.into_inner()
}
