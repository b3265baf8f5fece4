//! Writing a layout. An update locks the folder (flock) for its whole length, so concurrent
//! writers serialise instead of losing an entry; blobs are content-addressed and placed only when
//! missing or damaged (a blob already there is hashed: one that does not match its name is
//! replaced); a layout whose `blobs`, `blobs/sha256`, `index.json` or `oci-layout` is a link is
//! refused, so nothing is written outside it; `index.json` is replaced atomically with the entries of the new tags. An update dropped
//! before it is committed takes back every blob it added (and the folder, if it made it).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{
    blob_path, check_no_links, entry_tag, index_document, index_entry, read_document, LayoutError, BLOB_FOLDER, INDEX_FILE, LAYOUT_CONTENT,
    LAYOUT_FILE,
};
use crate::atomic::{place_blobs_atomically, write_atomically, FileError};
use crate::image::referrers::{self, Attachment};
use crate::image::{Blob, Digest, ImageOrIndex};
use crate::registry::Tag;

/// Undoes a half-done update unless it is committed.
struct Rollback {
    created_dir: Option<PathBuf>,
    new_paths: Vec<PathBuf>,
    committed: bool,
    /// The same paths, for an interrupt: removed by the signal handler if it comes first.
    guards: Vec<crate::cleanup::Guard>,
}

impl Rollback {
    fn added(&mut self, path: PathBuf) {
        self.guards.push(crate::cleanup::register(&path));
        self.new_paths.push(path);
    }
}

impl Drop for Rollback {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        if let Some(dir) = &self.created_dir {
            let _ = std::fs::remove_dir_all(dir);
            return;
        }
        for path in self.new_paths.iter().rev() {
            let _ = std::fs::remove_file(path).or_else(|_| std::fs::remove_dir(path));
        }
    }
}

/// An update of a layout under way: the folder locked and checked, blobs added to it. Dropped
/// before [`Update::commit`], it takes back everything it added (the folder, if it made it).
pub(crate) struct Update {
    dir: PathBuf,
    blob_dir: PathBuf,
    /// Held until the update ends: concurrent packs into one layout serialise.
    _lock: File,
    rollback: Rollback,
    /// The `oci-layout` file is still to be written (with the first blobs, synced with them).
    layout_file_missing: bool,
}

impl Update {
    /// Creates, locks and checks the layout. `None` when `wait` is false and the layout is locked
    /// (by another pack, or another output of this one), so that the caller can try later.
    pub(crate) fn begin(dir: &Path, wait: bool) -> Result<Option<Update>, LayoutError> {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(FileError::at(parent, "cannot create the parent folder"))?;
        }
        let created = match std::fs::create_dir(dir) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(FileError::at(dir, "cannot create the layout folder")(e).into()),
        };
        let mut rollback =
            Rollback { created_dir: created.then(|| dir.to_path_buf()), new_paths: Vec::new(), committed: false, guards: Vec::new() };
        if created {
            rollback.guards.push(crate::cleanup::register(dir));
        }
        let lock = File::open(dir).map_err(FileError::at(dir, "cannot open the layout folder"))?;
        if wait {
            lock.lock().map_err(FileError::at(dir, "cannot lock the layout folder"))?;
        } else {
            match lock.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    // Someone else's update: the empty folder made here stays for it.
                    rollback.committed = true;
                    return Ok(None);
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(FileError::at(dir, "cannot lock the layout folder")(e).into()),
            }
        }
        check_no_links(dir)?;
        check_layout(dir)?;
        let blob_dir = dir.join(BLOB_FOLDER);
        for folder in [dir.join("blobs"), blob_dir.clone()] {
            if !folder.is_dir() {
                std::fs::create_dir(&folder).map_err(FileError::at(&folder, "cannot create"))?;
                rollback.added(folder);
            }
        }
        let layout_file_missing = !dir.join(LAYOUT_FILE).exists();
        Ok(Some(Update { dir: dir.to_path_buf(), blob_dir, _lock: lock, rollback, layout_file_missing }))
    }

    /// Puts in place those of `blobs` the layout lacks (and the `oci-layout` file, the first time).
    pub(crate) fn add<'a>(&mut self, blobs: impl IntoIterator<Item = &'a Blob>) -> Result<(), LayoutError> {
        let layout_blob = self.layout_file_missing.then(|| Blob::from_bytes("application/json", LAYOUT_CONTENT.to_vec()));
        let mut missing: Vec<(PathBuf, &Blob)> = Vec::new();
        if let Some(layout_blob) = &layout_blob {
            missing.push((self.dir.join(LAYOUT_FILE), layout_blob));
        }
        for blob in blobs {
            let path = self.blob_dir.join(blob.digest.hex());
            // What this update placed is known good (placed by an earlier call); the rest is hashed.
            let placed = self.rollback.new_paths.contains(&path);
            if !placed && !missing.iter().any(|(queued, _)| *queued == path) && !is_intact(&path, blob) {
                missing.push((path, blob));
            }
        }
        // Registered first: whatever of them is in place when something fails is taken back.
        for (path, _) in &missing {
            self.rollback.added(path.clone());
        }
        place_blobs_atomically(&missing)?;
        self.layout_file_missing = false;
        Ok(())
    }

    /// Tags `image` with `tags`, with its attachments beside it (found through the referrers tag
    /// schema, as on a registry), and commits the update.
    pub(crate) fn publish(self, image: &ImageOrIndex, tags: &[Tag], attachments: &[Attachment]) -> Result<(), LayoutError> {
        self.publish_blobs(image.root(), image.blobs_in_upload_order(), tags, attachments)
    }

    /// Tags `root`, with `blobs` (everything it references, itself included) and its attachments.
    pub(crate) fn publish_blobs(
        mut self,
        root: &Blob,
        blobs: Vec<&Blob>,
        tags: &[Tag],
        attachments: &[Attachment],
    ) -> Result<(), LayoutError> {
        let mut entries: Vec<(Vec<String>, Blob)> = vec![(tags.iter().map(Tag::to_string).collect(), root.clone())];
        for (tag, index) in referrer_indexes(&self.dir, attachments)? {
            entries.push((vec![tag], index));
        }
        // cosign's tags (`sha256-<hex>.sig`, `.att`) name the artifact manifests themselves, or
        // ones that keep what the tag already held beside them.
        let mut merged_blobs = Vec::new();
        for attachment in attachments {
            for tag in &attachment.tags {
                let merged = match (attachment.merge, tagged_document(&self.dir, tag)) {
                    (Some(merge), Some(existing)) => merge(&existing, attachment),
                    _ => None,
                };
                match merged {
                    Some(merged) => {
                        merged_blobs.extend(merged.blobs);
                        entries.push((vec![tag.clone()], merged.manifest));
                    }
                    None => entries.push((vec![tag.clone()], attachment.manifest.clone())),
                }
            }
        }
        let attached = attachments.iter().flat_map(|attachment| attachment.blobs.iter().chain([&attachment.manifest]));
        let all = blobs
            .into_iter()
            .chain([root])
            .chain(attached)
            .chain(merged_blobs.iter())
            .chain(entries[1..].iter().map(|(_, document)| document));
        self.add(all)?;
        update_index(&self.dir, &entries)?;
        self.commit();
        Ok(())
    }

    pub(crate) fn commit(mut self) {
        self.rollback.committed = true;
    }
}

/// Whether the layout already holds `blob` at `path`: a regular file (not a link) of its size whose
/// bytes hash to its digest. A blob damaged on disk, even one of the right size, is not counted as
/// present, so it is replaced (renamed over) by the good one, as containerd verifies what it reuses.
fn is_intact(path: &Path, blob: &Blob) -> bool {
    use crate::image::blob::{digest_of_open_file, open_file};
    let Ok(mut file) = open_file(path) else { return false };
    file.metadata().is_ok_and(|meta| meta.len() == blob.size) && digest_of_open_file(&mut file, blob.size).is_ok_and(|d| d == blob.digest)
}

/// An existing folder must be empty or a layout: we never scatter blobs into someone's project.
fn check_layout(dir: &Path) -> Result<(), LayoutError> {
    let not_layout = |reason: String| LayoutError::NotALayout { path: dir.to_path_buf(), reason };
    let layout_file = dir.join(LAYOUT_FILE);
    match read_document(&layout_file) {
        Ok(content) => {
            let value: Value = serde_json::from_slice(&content).map_err(|e| not_layout(format!("oci-layout is not JSON: {e}")))?;
            if value.get("imageLayoutVersion").and_then(Value::as_str).is_none() {
                return Err(not_layout("oci-layout has no imageLayoutVersion".into()));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut entries = std::fs::read_dir(dir).map_err(FileError::at(dir, "cannot list"))?;
            match entries.next() {
                None => Ok(()),
                Some(_) => Err(not_layout("the folder is not empty and has no oci-layout file".into())),
            }
        }
        Err(e) => Err(FileError::at(layout_file, "cannot read")(e).into()),
    }
}

/// The referrers index of each subject, merged with the one the layout already has under that tag.
fn referrer_indexes(dir: &Path, attachments: &[Attachment]) -> Result<Vec<(String, Blob)>, LayoutError> {
    let mut subjects: Vec<&Digest> = attachments.iter().map(|a| &a.subject.digest).collect();
    subjects.sort();
    subjects.dedup();
    let index: Option<Value> = read_document(&dir.join(INDEX_FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let mut out = Vec::new();
    for subject in subjects {
        let tag = referrers::fallback_tag(subject);
        let existing = index
            .as_ref()
            .and_then(|i| i["manifests"].as_array().and_then(|m| m.iter().find(|e| entry_tag(e) == Some(tag.as_str())).cloned()))
            .and_then(|entry| entry["digest"].as_str().and_then(|d| Digest::parse(d).ok()))
            .and_then(|digest| read_document(&blob_path(dir, &digest)).ok());
        let for_subject: Vec<&Attachment> = attachments.iter().filter(|a| &a.subject.digest == subject).collect();
        out.push((tag, referrers::referrers_index(existing.as_deref(), &for_subject)));
    }
    Ok(out)
}

/// The document a tag of the layout names now, if any.
fn tagged_document(dir: &Path, tag: &str) -> Option<Vec<u8>> {
    let index: Value = serde_json::from_slice(&read_document(&dir.join(INDEX_FILE)).ok()?).ok()?;
    let entry = index["manifests"].as_array()?.iter().find(|e| entry_tag(e) == Some(tag))?;
    let digest = Digest::parse(entry["digest"].as_str()?).ok()?;
    let bytes = read_document(&blob_path(dir, &digest)).ok()?;
    (Digest::of(&bytes) == digest).then_some(bytes)
}

fn update_index(dir: &Path, entries: &[(Vec<String>, Blob)]) -> Result<(), LayoutError> {
    let path = dir.join(INDEX_FILE);
    let mut index = match read_document(&path) {
        Ok(bytes) => serde_json::from_slice::<Value>(&bytes)
            .ok()
            .filter(|v| v.get("manifests").is_some_and(Value::is_array))
            .ok_or_else(|| LayoutError::NotALayout { path: dir.to_path_buf(), reason: "index.json is not an image index".into() })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => index_document(Vec::new()),
        Err(e) => return Err(FileError::at(&path, "cannot read")(e).into()),
    };
    let manifests = index["manifests"].as_array_mut().expect("checked above");
    let all_tags: Vec<&String> = entries.iter().flat_map(|(tags, _)| tags).collect();
    manifests.retain(|m| !entry_tag(m).is_some_and(|name| all_tags.iter().any(|t| *t == name)));
    for (tags, root) in entries {
        for tag in tags {
            manifests.push(index_entry(root, tag));
        }
    }
    let bytes = serde_json::to_vec(&index).expect("JSON values serialise");
    Ok(write_atomically(&path, |f| f.write_all(&bytes))?)
}
