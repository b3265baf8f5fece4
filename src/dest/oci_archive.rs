//! `oci-archive:FILE[:TAG]`: an OCI image layout in one tar file, as skopeo and podman read it.
//!
//! Streamed straight into a temporary file beside FILE, then renamed over it: a reader sees the old
//! archive or the new one. Entries are sorted and dated 0, so the same image gives the same bytes.

use std::io::{self, Write};
use std::path::PathBuf;

use serde_json::json;

use super::oci_layout::REF_NAME;
use super::{write_atomically, DestError, Destination};
use crate::image::config::INDEX_MEDIA_TYPE;
use crate::image::referrers::{self, Attachment};
use crate::image::{Artifact, Blob};

pub struct OciArchive {
    file: PathBuf,
    tags: Vec<String>,
}

impl OciArchive {
    pub fn new(file: PathBuf, tags: Vec<String>) -> Self {
        OciArchive { file, tags }
    }
}

impl Destination for OciArchive {
    fn publish(&mut self, artifact: &Artifact, attachments: &[Attachment]) -> Result<String, DestError> {
        let root = artifact.root();
        let mut manifests: Vec<_> = self
            .tags
            .iter()
            .map(|tag| json!({"mediaType": root.media_type, "digest": root.digest.to_string(), "size": root.size, "annotations": {REF_NAME: tag}}))
            .collect();
        // Attachments beside the image, under the referrers tag schema.
        let mut extra_blobs: Vec<Blob> = attachments.iter().flat_map(|a| a.blobs.iter().cloned().chain([a.manifest.clone()])).collect();
        let mut subjects: Vec<&crate::image::Digest> = attachments.iter().map(|a| &a.subject.digest).collect();
        subjects.sort();
        subjects.dedup();
        for subject in subjects {
            let for_subject: Vec<&Attachment> = attachments.iter().filter(|a| &a.subject.digest == subject).collect();
            let index = referrers::referrers_index(None, &for_subject);
            let tag = referrers::fallback_tag(subject);
            manifests.push(json!({"mediaType": index.media_type, "digest": index.digest.to_string(), "size": index.size, "annotations": {REF_NAME: tag}}));
            extra_blobs.push(index);
        }
        let index = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": manifests})).expect("JSON");
        let mut blobs = artifact.blobs_in_upload_order();
        blobs.extend(extra_blobs.iter());
        blobs.sort_by_key(|b| b.digest);
        blobs.dedup_by_key(|b| b.digest);
        write_atomically(&self.file, |file| {
            let mut tar = tar::Builder::new(io::BufWriter::new(file));
            append_dir(&mut tar, "blobs/")?;
            append_dir(&mut tar, "blobs/sha256/")?;
            for blob in blobs {
                let mut header = file_header(blob.size);
                tar.append_data(&mut header, format!("blobs/sha256/{}", blob.digest.hex()), blob.open()?)?;
            }
            tar.append_data(&mut file_header(index.len() as u64), "index.json", &index[..])?;
            let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
            tar.append_data(&mut file_header(layout.len() as u64), "oci-layout", &layout[..])?;
            tar.into_inner()?.flush()
        })?;
        Ok(format!("oci-archive:{}:{}@{}", self.file.display(), self.tags[0], root.digest))
    }
}

pub(super) fn file_header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_size(size);
    header.set_mtime(0);
    header
}

pub(super) fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o755);
    header.set_size(0);
    header.set_mtime(0);
    tar.append_data(&mut header, path, io::empty())
}
