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
use crate::image::{Compression, Image, ImageOrIndex, Layer};

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
    let compressed = io::BufReader::new(layer.blob.open()?);
    Ok(match layer.compression {
        Some(Compression::Gzip) => Box::new(flate2::bufread::MultiGzDecoder::new(compressed)),
        Some(Compression::Zstd) => Box::new(zstd::stream::read::Decoder::with_buffer(compressed)?),
        None => Box::new(compressed),
    })
}

impl Destination for DockerArchive {
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
