//! Reading a layout: the image one tag names (or the only one), from a folder (`oci:DIR[:TAG]`) or
//! an archive (`oci-archive:FILE[:TAG]`, unpacked to a temporary folder first).
//!
//! Reads only what the chosen tag references, and checks every blob (manifests, configs and layers)
//! against its size and digest before anything uses it, as containerd does. Never follows a link:
//! `blobs`, `blobs/sha256`, `index.json` and every blob must be real folders and regular files.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use super::{blob_path, check_no_links, entry_tag, read_document, LayoutError, BLOB_FOLDER, INDEX_FILE, LAYOUT_FILE};
use crate::image::blob::{digest_of_open_file, open_file};
use crate::image::config::{INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use crate::image::referrers::{fallback_tag, Attachment};
use crate::image::stored::{DOCKER_LIST, DOCKER_MANIFEST};
use crate::image::{Blob, BlobData, Digest};

pub(crate) use crate::image::stored::StoredImage;
/// A Docker manifest list: the Docker schema2 form of an index.
pub(crate) use crate::image::stored::DOCKER_LIST as DOCKER_LIST_MEDIA_TYPE;

impl StoredImage {
    /// Reads the image tagged `tag` (or the only one) in the layout `dir`.
    pub(crate) fn from_layout(dir: &Path, tag: Option<&str>) -> Result<StoredImage> {
        read_layout(dir, Select { tag, digest: None }, None)
    }

    /// Reads the image tagged `tag` (or the only one) in the archive `file`, unpacked into a
    /// temporary folder that lives as long as the image.
    pub(crate) fn from_archive(file: &Path, tag: Option<&str>) -> Result<StoredImage> {
        let extracted = extract_registered(file)?;
        let dir = extracted.1.path().to_path_buf();
        read_layout(&dir, Select { tag, digest: None }, Some(Box::new(extracted))).with_context(|| format!("reading {}", file.display()))
    }
}

/// An image of a layout read on demand, as a base image is: the manifest or index `select` names
/// at once, each manifest, config and layer only when asked for, each checked against its digest
/// and size then. A platform's image of a base is read without reading the others'.
pub(crate) struct LayoutImage {
    files: LayoutFiles,
    root: Blob,
}

impl LayoutImage {
    pub(crate) fn from_layout(dir: &Path, select: Select) -> Result<LayoutImage> {
        LayoutImage::open(LayoutFiles::open(dir)?, select)
    }

    /// The image of the archive `file`, unpacked into a temporary folder that lives as long as
    /// the image.
    pub(crate) fn from_archive(file: &Path, select: Select) -> Result<LayoutImage> {
        LayoutImage::open(LayoutFiles::open_archive(file)?, select).with_context(|| format!("reading {}", file.display()))
    }

    fn open(files: LayoutFiles, select: Select) -> Result<LayoutImage> {
        let dir = &files.dir;
        let root_descriptor = select_root(dir, &index_entries(dir)?, select)?;
        let (root, _) = document_blob(dir, &root_descriptor)?;
        check_image_type(dir, &root)?;
        Ok(LayoutImage { files, root })
    }

    /// The manifest or index the selection names.
    pub(crate) fn root(&self) -> &Blob {
        &self.root
    }

    /// A manifest or index of the layout, read into memory and checked.
    pub(crate) fn document(&self, media_type: &str, digest: Digest, size: u64) -> Result<Blob> {
        Ok(document_blob(&self.files.dir, &Descriptor { media_type: media_type.to_string(), digest, size })?.0)
    }

    /// A config or layer of the layout: its file, checked.
    pub(crate) fn blob(&self, media_type: &str, digest: Digest, size: u64) -> Result<Blob> {
        file_blob(&self.files.dir, &Descriptor { media_type: media_type.to_string(), digest, size })
    }
}

/// The archive `file` unpacked into a temporary folder, removed on an interrupt too.
fn extract_registered(file: &Path) -> Result<(crate::cleanup::Guard, tempfile::TempDir)> {
    let extracted = extract(file)?;
    Ok((crate::cleanup::register(extracted.path()), extracted))
}

/// Which image of a layout to read: the one tagged `tag` (or the only one), or the manifest or
/// index of digest `digest`: an entry of `index.json`, or a platform's manifest inside one of its
/// indexes. With both, the tag must point to that digest.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Select<'a> {
    pub(crate) tag: Option<&'a str>,
    pub(crate) digest: Option<Digest>,
}

/// A layout opened to read its tags and single documents by digest (what `verify` needs, and what
/// [`LayoutImage`] reads through), from a folder or an archive (unpacked to a temporary folder
/// that lives as long as this). Nothing in it is followed through a link.
pub(crate) struct LayoutFiles {
    dir: PathBuf,
    _extracted: Option<(crate::cleanup::Guard, tempfile::TempDir)>,
}

impl LayoutFiles {
    pub(crate) fn open(dir: &Path) -> Result<LayoutFiles> {
        check_no_links(dir)?;
        Ok(LayoutFiles { dir: dir.to_path_buf(), _extracted: None })
    }

    pub(crate) fn open_archive(file: &Path) -> Result<LayoutFiles> {
        let extracted = extract_registered(file)?;
        let dir = extracted.1.path().to_path_buf();
        Ok(LayoutFiles { _extracted: Some(extracted), dir })
    }

    /// Each tagged entry of `index.json`: (tag, digest, media type).
    pub(crate) fn tags(&self) -> Result<Vec<(String, Digest, String)>> {
        let mut tags = Vec::new();
        for entry in &index_entries(&self.dir)? {
            if let (Some(tag), Ok(d)) = (entry_tag(entry), descriptor(entry)) {
                tags.push((tag.to_string(), d.digest, d.media_type));
            }
        }
        Ok(tags)
    }

    /// A document (manifest, index, payload) of at most [`super::MAX_DOCUMENT`] bytes, checked
    /// against its digest; `None` when the layout does not hold it.
    pub(crate) fn document(&self, digest: &Digest) -> Result<Option<Vec<u8>>> {
        let d = Descriptor { media_type: String::new(), digest: *digest, size: 0 };
        let path = blob_path(&self.dir, digest);
        let bytes = match read_document(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unreadable(&self.dir, &d, e).into()),
        };
        if Digest::of(&bytes) != *digest {
            return Err(damaged(&self.dir, &d, "does not match its digest").into());
        }
        Ok(Some(bytes))
    }
}

fn extract(file: &Path) -> Result<tempfile::TempDir> {
    let temp = tempfile::Builder::new().prefix("scratchpack-archive-").tempdir().context("cannot create a temporary folder")?;
    let reader = std::fs::File::open(file).with_context(|| format!("{}: cannot open", file.display()))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(reader));
    std::fs::create_dir_all(temp.path().join(BLOB_FOLDER))?;
    for entry in archive.entries().with_context(|| format!("{}: not a tar archive", file.display()))? {
        let mut entry = entry.with_context(|| format!("{}: broken tar archive", file.display()))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path()?.to_string_lossy().trim_start_matches("./").to_string();
        let allowed = path == INDEX_FILE
            || path == LAYOUT_FILE
            || path
                .strip_prefix(BLOB_FOLDER)
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
        if !allowed {
            continue; // anything else is not part of an OCI layout we read
        }
        let target = temp.path().join(&path);
        let mut out = std::fs::File::create(&target)?;
        std::io::copy(&mut entry, &mut out)?;
    }
    Ok(temp)
}

fn read_json(path: &Path) -> Result<Value> {
    let bytes = read_document(path).with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}: not JSON", path.display()))
}

struct Descriptor {
    media_type: String,
    digest: Digest,
    size: u64,
}

fn descriptor(value: &Value) -> Result<Descriptor> {
    let media_type = value["mediaType"].as_str().ok_or_else(|| anyhow!("a descriptor has no mediaType"))?.to_string();
    let digest = Digest::parse(value["digest"].as_str().unwrap_or_default())?;
    let size = value["size"].as_u64().ok_or_else(|| anyhow!("descriptor {digest} has no size"))?;
    Ok(Descriptor { media_type, digest, size })
}

fn damaged(dir: &Path, d: &Descriptor, reason: impl Into<String>) -> LayoutError {
    LayoutError::Damaged { dir: dir.to_path_buf(), digest: d.digest, reason: reason.into() }
}

/// Why a blob file cannot be opened: missing, or not a regular file (a link is never followed).
fn unreadable(dir: &Path, d: &Descriptor, error: std::io::Error) -> LayoutError {
    match error.kind() {
        std::io::ErrorKind::NotFound => damaged(dir, d, "is missing"),
        _ => damaged(dir, d, format!("cannot be read ({error})")),
    }
}

/// A blob on disk, checked for its size and hashed in pieces: it must be a regular file (never a
/// link) whose bytes match its digest, before any of them is sent anywhere.
fn file_blob(dir: &Path, d: &Descriptor) -> Result<Blob> {
    let path = blob_path(dir, &d.digest);
    let mut file = open_file(&path).map_err(|e| unreadable(dir, d, e))?;
    let size = file.metadata()?.len();
    if size != d.size {
        return Err(damaged(dir, d, format!("has {size} bytes, its descriptor says {}", d.size)).into());
    }
    let digest = digest_of_open_file(&mut file, size).map_err(|e| unreadable(dir, d, e))?;
    if digest != d.digest {
        return Err(damaged(dir, d, format!("does not match its digest (its bytes hash to {digest})")).into());
    }
    Ok(Blob { media_type: d.media_type.clone(), digest: d.digest, size, data: BlobData::File(path) })
}

/// A manifest or index, read into memory and checked against its digest.
fn document_blob(dir: &Path, d: &Descriptor) -> Result<(Blob, Value)> {
    let path = blob_path(dir, &d.digest);
    let bytes = read_document(&path).map_err(|e| unreadable(dir, d, e))?;
    if Digest::of(&bytes) != d.digest {
        return Err(damaged(dir, d, "does not match its digest").into());
    }
    let value: Value = serde_json::from_slice(&bytes).with_context(|| format!("manifest {} is not JSON", d.digest))?;
    Ok((Blob::from_bytes(&d.media_type, bytes), value))
}

fn read_layout(dir: &Path, select: Select, extracted: Option<Box<dyn std::any::Any + Send + Sync>>) -> Result<StoredImage> {
    check_no_links(dir)?;
    let entries = index_entries(dir)?;
    let root_descriptor = select_root(dir, &entries, select)?;
    let (root, root_value) = document_blob(dir, &root_descriptor)?;
    check_image_type(dir, &root)?;
    let mut manifests = Vec::new();
    let mut blobs: Vec<Blob> = Vec::new();
    let add_image = |manifest: &Value, blobs: &mut Vec<Blob>| -> Result<()> {
        let config = descriptor(&manifest["config"])?;
        let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
        for d in layers.iter().map(descriptor).chain([Ok(config)]) {
            let blob = file_blob(dir, &d?)?;
            if !blobs.iter().any(|b| b.digest == blob.digest) {
                blobs.push(blob);
            }
        }
        Ok(())
    };
    match root.media_type.as_str() {
        INDEX_MEDIA_TYPE | DOCKER_LIST => {
            for child in root_value["manifests"].as_array().cloned().unwrap_or_default() {
                let d = descriptor(&child)?;
                let (blob, value) = document_blob(dir, &d)?;
                add_image(&value, &mut blobs)?;
                manifests.push(blob);
            }
        }
        _ => add_image(&root_value, &mut blobs)?,
    }
    let mut image = StoredImage { blobs, manifests, root, referrers: Vec::new(), keep: extracted.into_iter().collect() };
    image.referrers = read_referrers(dir, &entries[..], &image)?;
    Ok(image)
}

/// The entries of the layout's `index.json`.
fn index_entries(dir: &Path) -> Result<Vec<Value>> {
    let mut index = read_json(&dir.join(INDEX_FILE))?;
    match index["manifests"].take() {
        Value::Array(entries) => Ok(entries),
        _ => bail!("{}: index.json has no manifests", dir.display()),
    }
}

/// The descriptor of the manifest or index `select` names among `entries`, those of the layout
/// `dir`'s `index.json`.
fn select_root(dir: &Path, entries: &[Value], select: Select) -> Result<Descriptor> {
    let names: Vec<&str> = entries.iter().filter_map(entry_tag).collect();
    let tags = || if names.is_empty() { "none".to_string() } else { names.join(", ") };
    let tag = select.tag;
    if let (None, Some(digest)) = (tag, select.digest) {
        return find_digest(dir, entries, digest)?
            .ok_or_else(|| anyhow!("{}: holds no manifest or index {digest} (tags: {})", dir.display(), tags()));
    }
    let entry = match tag {
        Some(tag) => entries
            .iter()
            .find(|e| entry_tag(e) == Some(tag))
            .ok_or_else(|| anyhow!("{}: no image tagged {tag:?} (tags: {})", dir.display(), tags()))?,
        None => {
            // Referrers indexes (`sha256-<hex>`) are not images of their own.
            let images: Vec<&Value> = entries.iter().filter(|e| !entry_tag(e).is_some_and(is_referrers_tag)).collect();
            match images[..] {
                [only] => only,
                _ => bail!("{}: holds {} images; name one with :TAG (tags: {})", dir.display(), images.len(), names.join(", ")),
            }
        }
    };
    let root_descriptor = descriptor(entry)?;
    if let Some(digest) = select.digest.filter(|digest| *digest != root_descriptor.digest) {
        bail!("{}: tag {:?} points to {}, not to {digest}", dir.display(), tag.unwrap_or_default(), root_descriptor.digest);
    }
    Ok(root_descriptor)
}

/// The descriptor of the manifest or index `digest`: an entry of `index.json`, else a manifest an
/// index entry lists.
fn find_digest(dir: &Path, entries: &[Value], digest: Digest) -> Result<Option<Descriptor>> {
    for entry in entries {
        let d = descriptor(entry)?;
        if d.digest == digest {
            return Ok(Some(d));
        }
    }
    for entry in entries {
        let d = descriptor(entry)?;
        if matches!(d.media_type.as_str(), INDEX_MEDIA_TYPE | DOCKER_LIST) {
            let (_, value) = document_blob(dir, &d)?;
            for child in value["manifests"].as_array().into_iter().flatten() {
                let child = descriptor(child)?;
                if child.digest == digest {
                    return Ok(Some(child));
                }
            }
        }
    }
    Ok(None)
}

/// Refuses a root that is no image manifest or index (of OCI or Docker schema2).
fn check_image_type(dir: &Path, root: &Blob) -> Result<()> {
    match root.media_type.as_str() {
        INDEX_MEDIA_TYPE | DOCKER_LIST | MANIFEST_MEDIA_TYPE | DOCKER_MANIFEST => Ok(()),
        other if other.starts_with("application/vnd.docker.distribution.manifest.v1") => bail!(
            "{}: image {} is a Docker schema1 manifest, which scratchpack does not read; convert it first: skopeo copy --format v2s2",
            dir.display(),
            root.digest
        ),
        other => bail!("{}: image {} has media type {other}, which is no image manifest or index", dir.display(), root.digest),
    }
}

/// Whether `tag` is a referrers tag, `sha256-<64 hex digits>`.
fn is_referrers_tag(tag: &str) -> bool {
    tag.strip_prefix("sha256-").is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The referrers of the image's manifests that the layout lists under the referrers tag schema
/// (`sha256-<hex>` → an index of artifact manifests), each with its blobs, checked as the image's.
fn read_referrers(dir: &Path, entries: &[Value], image: &StoredImage) -> Result<Vec<Attachment>> {
    let mut attachments = Vec::new();
    for subject in image.subjects() {
        let tag = fallback_tag(&subject.digest);
        let Some(entry) = entries.iter().find(|e| entry_tag(e) == Some(tag.as_str())) else { continue };
        let (_, index) = document_blob(dir, &descriptor(entry)?)?;
        for listed in index["manifests"].as_array().cloned().unwrap_or_default() {
            let d = descriptor(&listed)?;
            let (manifest, value) = document_blob(dir, &d)?;
            let mut blobs = Vec::new();
            for part in value["layers"].as_array().cloned().unwrap_or_default().iter().chain([&value["config"]]) {
                let d = descriptor(part)?;
                if !blobs.iter().any(|b: &Blob| b.digest == d.digest) {
                    blobs.push(file_blob(dir, &d)?);
                }
            }
            let artifact_type = listed["artifactType"]
                .as_str()
                .or(value["artifactType"].as_str())
                .or(value["config"]["mediaType"].as_str())
                .unwrap_or_default()
                .to_string();
            attachments.push(Attachment { subject: subject.clone(), artifact_type, manifest, blobs, tags: Vec::new(), merge: None });
        }
    }
    Ok(attachments)
}
