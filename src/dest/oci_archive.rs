//! `oci-archive:FILE[:TAG]`: an OCI image layout in one tar file, as skopeo and podman read it.
//!
//! Streamed straight into a temporary file beside FILE, then renamed over it: a reader sees the old
//! archive or the new one. Entries are sorted and dated 0, so the same image gives the same bytes.

use std::io::{self, Write};
use std::path::PathBuf;

use super::{DestError, Destination, Published};
use crate::atomic::write_atomically;
use crate::image::referrers::{self, Attachment};
use crate::image::stored::StoredImage;
use crate::image::{Blob, Digest, ImageOrIndex};
use crate::layout::{index_document, index_entry, BLOB_FOLDER, INDEX_FILE, LAYOUT_CONTENT, LAYOUT_FILE};
use crate::registry::Tag;

pub(crate) struct OciArchive {
    file: PathBuf,
    tags: Vec<Tag>,
}

impl OciArchive {
    pub(crate) fn new(file: PathBuf, tags: Vec<Tag>) -> Self {
        OciArchive { file, tags }
    }
}

impl Destination for OciArchive {
    fn publish(&mut self, image: &ImageOrIndex, attachments: &[Attachment]) -> Result<Published, DestError> {
        self.write(image.root(), image.blobs_in_upload_order(), attachments)
    }

    fn publish_stored(&mut self, image: &StoredImage) -> Result<Published, DestError> {
        self.write(&image.root, image.all_blobs(), &image.referrers)
    }
}

impl OciArchive {
    /// Writes the archive of `root`, `blobs` (everything it references) and the attachments.
    fn write(&self, root: &Blob, image_blobs: Vec<&Blob>, attachments: &[Attachment]) -> Result<Published, DestError> {
        let mut manifests: Vec<_> = self.tags.iter().map(|tag| index_entry(root, tag)).collect();
        // Attachments beside the image, under the referrers tag schema.
        let mut extra_blobs: Vec<Blob> = attachments.iter().flat_map(|a| a.blobs.iter().cloned().chain([a.manifest.clone()])).collect();
        let mut subjects: Vec<&Digest> = attachments.iter().map(|a| &a.subject.digest).collect();
        subjects.sort();
        subjects.dedup();
        for subject in subjects {
            let for_subject: Vec<&Attachment> = attachments.iter().filter(|a| &a.subject.digest == subject).collect();
            let index = referrers::referrers_index(None, &for_subject);
            let tag = referrers::fallback_tag(subject);
            manifests.push(index_entry(&index, &tag));
            extra_blobs.push(index);
        }
        // cosign's tags (`sha256-<hex>.sig`, `.att`) name the artifact manifests themselves.
        for attachment in attachments {
            manifests.extend(attachment.tags.iter().map(|tag| index_entry(&attachment.manifest, tag)));
        }
        let index = serde_json::to_vec(&index_document(manifests)).expect("JSON");
        let mut blobs: Vec<&Blob> = image_blobs;
        blobs.push(root);
        blobs.extend(extra_blobs.iter());
        blobs.sort_by_key(|b| b.digest);
        blobs.dedup_by_key(|b| b.digest);
        write_atomically(&self.file, |file| {
            let mut tar = tar::Builder::new(io::BufWriter::new(file));
            append_dir(&mut tar, "blobs/")?;
            append_dir(&mut tar, &format!("{BLOB_FOLDER}/"))?;
            for blob in blobs {
                let mut header = file_header(blob.size);
                tar.append_data(&mut header, format!("{BLOB_FOLDER}/{}", blob.digest.hex()), blob.open()?)?;
            }
            tar.append_data(&mut file_header(index.len() as u64), INDEX_FILE, &index[..])?;
            tar.append_data(&mut file_header(LAYOUT_CONTENT.len() as u64), LAYOUT_FILE, LAYOUT_CONTENT)?;
            tar.into_inner()?.flush()
        })?;
        Ok(Published { reference: format!("oci-archive:{}:{}", self.file.display(), self.tags[0]), digest: root.digest, platform: None })
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
