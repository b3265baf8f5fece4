//! What a stored image holds, for `inspect IMAGE`: its platforms, each one's config (entrypoint,
//! user, env, created), annotations and referrers, and each layer's sizes, file count and largest
//! files. Layers are read as tar streams through their decompressor (gzip, zstd, or none), never
//! unpacked and never whole in memory.
//!
//! Owns the report only; how it is printed is the front end's.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read};

use serde::Serialize;
use serde_json::Value;

use super::referrers::Attachment;
use super::stored::{content_of, parse, platform_text, StoredImage};
use super::{Blob, Digest};

/// How many of a layer's largest files the report names.
pub(crate) const LARGEST_SHOWN: usize = 5;

#[derive(Debug, Serialize)]
pub(crate) struct ImageReport {
    pub(crate) digest: Digest,
    pub(crate) media_type: String,
    pub(crate) annotations: BTreeMap<String, String>,
    pub(crate) platforms: Vec<String>,
    pub(crate) images: Vec<PlatformReport>,
    /// Referrers of the index itself (for a single manifest, they are its image's).
    pub(crate) referrers: Vec<ReferrerReport>,
}

#[derive(Debug, Serialize)]
pub(crate) struct PlatformReport {
    pub(crate) platform: String,
    pub(crate) digest: Digest,
    pub(crate) media_type: String,
    pub(crate) annotations: BTreeMap<String, String>,
    pub(crate) config: ConfigReport,
    pub(crate) layers: Vec<LayerReport>,
    pub(crate) referrers: Vec<ReferrerReport>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct ConfigReport {
    pub(crate) digest: Option<Digest>,
    pub(crate) created: Option<String>,
    pub(crate) user: Option<String>,
    pub(crate) entrypoint: Vec<String>,
    pub(crate) cmd: Vec<String>,
    pub(crate) env: Vec<String>,
    pub(crate) working_dir: Option<String>,
    pub(crate) labels: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct LayerReport {
    pub(crate) digest: Digest,
    pub(crate) media_type: String,
    pub(crate) size: u64,
    pub(crate) uncompressed_size: u64,
    /// Regular files (hard links not counted twice).
    pub(crate) files: u64,
    /// The largest regular files, largest first (ties by path).
    pub(crate) largest: Vec<FileEntry>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub(crate) struct FileEntry {
    pub(crate) path: String,
    pub(crate) size: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct ReferrerReport {
    pub(crate) digest: Digest,
    pub(crate) artifact_type: String,
    pub(crate) size: u64,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SurveyError {
    #[error("layer {digest} ({media_type}) is compressed in a way scratchpack does not read (it reads tar, tar+gzip, tar+zstd)")]
    UnknownLayer { digest: Digest, media_type: String },
    #[error("layer {digest}: cannot be read as a tar stream")]
    Unreadable {
        digest: Digest,
        #[source]
        source: io::Error,
    },
    #[error("manifest {digest}: its content blob {blob} is missing")]
    Missing { digest: Digest, blob: String },
}

pub(crate) fn survey(image: &StoredImage) -> Result<ImageReport, SurveyError> {
    let mut images = Vec::new();
    for child in image.children() {
        let content = content_of(&child.value);
        let blob_of = |digest: &str| {
            image.blob(digest).ok_or_else(|| SurveyError::Missing { digest: child.manifest.digest, blob: digest.to_string() })
        };
        let (config, config_value) = match content.first() {
            Some((_, digest, _)) => {
                let blob = blob_of(digest)?;
                let value = parse(blob);
                (config_report(blob, &value), value)
            }
            None => (ConfigReport::default(), Value::Null),
        };
        let mut layers = Vec::new();
        for (_, digest, _) in content.iter().skip(1) {
            layers.push(layer_report(blob_of(digest)?)?);
        }
        let platform = child.platform.clone().or_else(|| platform_text(&config_value)).unwrap_or_else(|| "unknown".into());
        images.push(PlatformReport {
            platform,
            digest: child.manifest.digest,
            media_type: child.manifest.media_type.clone(),
            annotations: strings(&child.value["annotations"]),
            config,
            layers,
            referrers: referrers_of(&image.referrers, &child.manifest.digest),
        });
    }
    let root_value = image.root_value();
    let is_index = !image.manifests.is_empty();
    Ok(ImageReport {
        digest: image.root.digest,
        media_type: image.root.media_type.clone(),
        annotations: if is_index { strings(&root_value["annotations"]) } else { BTreeMap::new() },
        platforms: images.iter().map(|i| i.platform.clone()).collect(),
        images,
        referrers: if is_index { referrers_of(&image.referrers, &image.root.digest) } else { Vec::new() },
    })
}

fn referrers_of(all: &[Attachment], subject: &Digest) -> Vec<ReferrerReport> {
    all.iter()
        .filter(|a| &a.subject.digest == subject)
        .map(|a| ReferrerReport { digest: a.manifest.digest, artifact_type: a.artifact_type.clone(), size: a.manifest.size })
        .collect()
}

/// A JSON object's string values (others left out).
fn strings(value: &Value) -> BTreeMap<String, String> {
    value.as_object().map(|o| o.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect()).unwrap_or_default()
}

fn string_list(value: &Value) -> Vec<String> {
    value.as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

fn config_report(blob: &Blob, value: &Value) -> ConfigReport {
    let config = &value["config"];
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    ConfigReport {
        digest: Some(blob.digest),
        created: text(&value["created"]),
        user: text(&config["User"]),
        entrypoint: string_list(&config["Entrypoint"]),
        cmd: string_list(&config["Cmd"]),
        env: string_list(&config["Env"]),
        working_dir: text(&config["WorkingDir"]),
        labels: strings(&config["Labels"]),
    }
}

/// Counts what passes through, for the uncompressed size.
struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

fn layer_report(blob: &Blob) -> Result<LayerReport, SurveyError> {
    let media_type = blob.media_type.as_str();
    let unreadable = |source| SurveyError::Unreadable { digest: blob.digest, source };
    let stream = if let Some(compression) = super::layer::compression_of(media_type) {
        super::layer::decompressed(BufReader::new(blob.open().map_err(unreadable)?), compression).map_err(unreadable)?
    } else if media_type.contains("tar") {
        return Err(SurveyError::UnknownLayer { digest: blob.digest, media_type: media_type.to_string() });
    } else {
        // Not a file system layer (an attestation, an artifact's payload): its size only.
        return Ok(LayerReport {
            digest: blob.digest,
            media_type: media_type.to_string(),
            size: blob.size,
            uncompressed_size: blob.size,
            files: 0,
            largest: Vec::new(),
        });
    };
    let mut counting = Counting { inner: stream, count: 0 };
    let (files, largest) = tar_files(&mut counting).map_err(unreadable)?;
    // The rest of the stream (tar's end blocks and padding) counts too.
    io::copy(&mut counting, &mut io::sink()).map_err(unreadable)?;
    Ok(LayerReport {
        digest: blob.digest,
        media_type: media_type.to_string(),
        size: blob.size,
        uncompressed_size: counting.count,
        files,
        largest,
    })
}

/// The regular files of a tar stream: their count and the largest ones.
fn tar_files(stream: &mut impl Read) -> io::Result<(u64, Vec<FileEntry>)> {
    let mut archive = tar::Archive::new(stream);
    let mut files = 0;
    let mut largest: Vec<FileEntry> = Vec::new();
    for entry in archive.entries()? {
        let entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        files += 1;
        let path = format!("/{}", entry.path()?.to_string_lossy().trim_start_matches("./").trim_start_matches('/'));
        largest.push(FileEntry { path, size: entry.size() });
        largest.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
        largest.truncate(LARGEST_SHOWN);
    }
    Ok((files, largest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tar_gives_its_file_count_and_largest_files() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut add = |path: &str, size: usize| {
            let mut header = tar::Header::new_gnu();
            header.set_size(size as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut header, path, &vec![0u8; size][..]).unwrap();
        };
        for (i, size) in [10, 700, 30, 700, 5, 1].iter().enumerate() {
            add(&format!("f{i}"), *size);
        }
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_size(0);
        builder.append_data(&mut dir, "etc/", io::empty()).unwrap();
        let bytes = builder.into_inner().unwrap();
        let (files, largest) = tar_files(&mut &bytes[..]).unwrap();
        assert_eq!(files, 6);
        let shown: Vec<(&str, u64)> = largest.iter().map(|f| (f.path.as_str(), f.size)).collect();
        assert_eq!(shown, [("/f1", 700), ("/f3", 700), ("/f2", 30), ("/f0", 10), ("/f4", 5)]);
    }
}
