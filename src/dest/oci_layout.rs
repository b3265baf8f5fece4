//! `oci:DIR[:TAG]`: an OCI image layout folder (image-spec `image-layout.md`).
//!
//! Adding to an existing layout keeps what is there: blobs are content-addressed and written only
//! when missing (as a hard link to the staged layer when possible, else a copy, then a rename), and
//! index.json is rewritten atomically with the entries for our tags replaced. The folder is locked
//! (flock) for the whole update, so concurrent packs into one layout serialise instead of losing an
//! entry. The update begins early when it can: the layers shared by the binaries are placed while the
//! program's own layer is still being compressed (`prepare`), so that publishing leaves only that
//! layer, the config, the manifest and index.json. If anything fails, or the pack never publishes,
//! the blobs this run added are removed again (and the folder, if this run made it).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{place_blobs_atomically, write_atomically, DestError, Destination};
use crate::image::config::INDEX_MEDIA_TYPE;
use crate::image::referrers::{self, Attachment};
use crate::image::{Artifact, Blob};

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

pub struct OciLayout {
    dir: PathBuf,
    tags: Vec<String>,
    /// The update begun by [`Destination::prepare`], if it could lock the layout then.
    update: Option<Update>,
}

impl OciLayout {
    pub fn new(dir: PathBuf, tags: Vec<String>) -> Self {
        OciLayout { dir, tags, update: None }
    }
}

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
struct Update {
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
    fn begin(dir: &Path, wait: bool) -> Result<Option<Update>, DestError> {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(DestError::io(parent, "cannot create the parent folder"))?;
        }
        let created = match std::fs::create_dir(dir) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(DestError::io(dir, "cannot create the layout folder")(e)),
        };
        let mut rollback =
            Rollback { created_dir: created.then(|| dir.to_path_buf()), new_paths: Vec::new(), committed: false, guards: Vec::new() };
        if created {
            rollback.guards.push(crate::cleanup::register(dir));
        }
        let lock = File::open(dir).map_err(DestError::io(dir, "cannot open the layout folder"))?;
        if wait {
            lock.lock().map_err(DestError::io(dir, "cannot lock the layout folder"))?;
        } else {
            match lock.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    // Someone else's update: the empty folder made here stays for it.
                    rollback.committed = true;
                    return Ok(None);
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(DestError::io(dir, "cannot lock the layout folder")(e)),
            }
        }
        check_layout(dir)?;
        let blob_dir = dir.join("blobs").join("sha256");
        for folder in [dir.join("blobs"), blob_dir.clone()] {
            if !folder.is_dir() {
                std::fs::create_dir(&folder).map_err(DestError::io(&folder, "cannot create"))?;
                rollback.added(folder);
            }
        }
        let layout_file_missing = !dir.join(LAYOUT_FILE).exists();
        Ok(Some(Update { dir: dir.to_path_buf(), blob_dir, _lock: lock, rollback, layout_file_missing }))
    }

    /// Puts in place those of `blobs` the layout lacks (and the `oci-layout` file, the first time).
    fn add<'a>(&mut self, blobs: impl IntoIterator<Item = &'a Blob>) -> Result<(), DestError> {
        let layout_blob = Blob::from_bytes("application/json", LAYOUT_CONTENT.to_vec());
        let mut missing: Vec<(PathBuf, &Blob)> = Vec::new();
        if self.layout_file_missing {
            missing.push((self.dir.join(LAYOUT_FILE), &layout_blob));
        }
        for blob in blobs {
            let path = self.blob_dir.join(blob.digest.hex());
            let present = std::fs::metadata(&path).is_ok_and(|meta| meta.len() == blob.size);
            if !present && !missing.iter().any(|(queued, _)| *queued == path) {
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

    fn commit(mut self) {
        self.rollback.committed = true;
    }
}

impl Destination for OciLayout {
    fn prepare(&mut self, ready: &[&Blob]) -> Result<(), DestError> {
        if self.update.is_none() {
            self.update = Update::begin(&self.dir, false)?;
        }
        match &mut self.update {
            Some(update) => update.add(ready.iter().copied()),
            None => Ok(()),
        }
    }

    fn publish(&mut self, artifact: &Artifact, attachments: &[Attachment]) -> Result<String, DestError> {
        let mut update = match self.update.take() {
            Some(update) => update,
            None => Update::begin(&self.dir, true)?.expect("an update that waits for the lock begins"),
        };
        let dir = &self.dir;
        // Attachments beside the image, found through the referrers tag schema as on a registry.
        let mut entries: Vec<(Vec<String>, Blob)> = vec![(self.tags.clone(), artifact.root().clone())];
        for (tag, index) in referrer_indexes(dir, attachments)? {
            entries.push((vec![tag], index));
        }
        let attached = attachments.iter().flat_map(|attachment| attachment.blobs.iter().chain([&attachment.manifest]));
        let all = artifact.blobs_in_upload_order().into_iter().chain(attached).chain(entries[1..].iter().map(|(_, index)| index));
        update.add(all)?;
        update_index(dir, &entries)?;
        update.commit();
        Ok(format!("oci:{}:{}@{}", dir.display(), self.tags[0], artifact.root().digest))
    }
}

/// An existing folder must be empty or a layout: we never scatter blobs into someone's project.
fn check_layout(dir: &Path) -> Result<(), DestError> {
    let not_layout = |reason: String| DestError::NotALayout { path: dir.to_path_buf(), reason };
    let layout_file = dir.join(LAYOUT_FILE);
    match std::fs::read(&layout_file) {
        Ok(content) => {
            let value: Value = serde_json::from_slice(&content).map_err(|e| not_layout(format!("oci-layout is not JSON: {e}")))?;
            if value.get("imageLayoutVersion").and_then(Value::as_str).is_none() {
                return Err(not_layout("oci-layout has no imageLayoutVersion".into()));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut entries = std::fs::read_dir(dir).map_err(DestError::io(dir, "cannot list"))?;
            match entries.next() {
                None => Ok(()),
                Some(_) => Err(not_layout("the folder is not empty and has no oci-layout file".into())),
            }
        }
        Err(e) => Err(DestError::io(layout_file, "cannot read")(e)),
    }
}

/// The referrers index of each subject, merged with the one the layout already has under that tag.
fn referrer_indexes(dir: &Path, attachments: &[Attachment]) -> Result<Vec<(String, Blob)>, DestError> {
    let mut subjects: Vec<&crate::image::Digest> = attachments.iter().map(|a| &a.subject.digest).collect();
    subjects.sort();
    subjects.dedup();
    let index: Option<Value> = std::fs::read(dir.join("index.json")).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let mut out = Vec::new();
    for subject in subjects {
        let tag = referrers::fallback_tag(subject);
        let existing = index
            .as_ref()
            .and_then(|i| i["manifests"].as_array().and_then(|m| m.iter().find(|e| e["annotations"][REF_NAME] == tag.as_str()).cloned()))
            .and_then(|entry| entry["digest"].as_str().and_then(|d| crate::image::Digest::parse(d).ok()))
            .and_then(|digest| std::fs::read(dir.join("blobs/sha256").join(digest.hex())).ok());
        let for_subject: Vec<&Attachment> = attachments.iter().filter(|a| &a.subject.digest == subject).collect();
        out.push((tag, referrers::referrers_index(existing.as_deref(), &for_subject)));
    }
    Ok(out)
}

fn update_index(dir: &Path, entries: &[(Vec<String>, Blob)]) -> Result<(), DestError> {
    let path = dir.join("index.json");
    let mut index = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<Value>(&bytes)
            .ok()
            .filter(|v| v.get("manifests").is_some_and(Value::is_array))
            .ok_or_else(|| DestError::NotALayout { path: dir.to_path_buf(), reason: "index.json is not an image index".into() })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": []}),
        Err(e) => return Err(DestError::io(&path, "cannot read")(e)),
    };
    let manifests = index["manifests"].as_array_mut().expect("checked above");
    let all_tags: Vec<&String> = entries.iter().flat_map(|(tags, _)| tags).collect();
    manifests.retain(|m| !m["annotations"][REF_NAME].as_str().is_some_and(|name| all_tags.iter().any(|t| *t == name)));
    for (tags, root) in entries {
        for tag in tags {
            manifests.push(json!({
                "mediaType": root.media_type,
                "digest": root.digest.to_string(),
                "size": root.size,
                "annotations": { REF_NAME: tag },
            }));
        }
    }
    let bytes = serde_json::to_vec(&index).expect("JSON values serialise");
    write_atomically(&path, |f| f.write_all(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(text: &str) -> Blob {
        Blob::from_bytes("application/vnd.oci.image.layer.v1.tar+gzip", text.as_bytes().to_vec())
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = walk(dir).into_iter().map(|p| p.strip_prefix(dir).unwrap().display().to_string()).collect();
        names.sort();
        names
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walk(&path));
            }
            out.push(path);
        }
        out
    }

    #[test]
    fn blobs_placed_early_are_taken_back_when_the_pack_never_publishes() {
        let work = tempfile::tempdir().unwrap();
        // A new layout: the whole folder goes.
        let fresh = work.path().join("fresh");
        let mut layout = OciLayout::new(fresh.clone(), vec!["latest".into()]);
        layout.prepare(&[&blob("base"), &blob("zoneinfo")]).unwrap();
        let mut expected = vec![
            "blobs".to_string(),
            "blobs/sha256".to_string(),
            format!("blobs/sha256/{}", blob("base").digest.hex()),
            format!("blobs/sha256/{}", blob("zoneinfo").digest.hex()),
            "oci-layout".to_string(),
        ];
        expected.sort();
        assert_eq!(listing(&fresh), expected);
        drop(layout);
        assert!(!fresh.exists());

        // An existing layout: only what this pack added goes.
        let existing = work.path().join("existing");
        let mut first = OciLayout::new(existing.clone(), vec!["latest".into()]);
        first.prepare(&[&blob("base")]).unwrap();
        first.update.take().unwrap().commit();
        let before = listing(&existing);
        let mut second = OciLayout::new(existing.clone(), vec!["latest".into()]);
        second.prepare(&[&blob("base"), &blob("other")]).unwrap();
        assert_eq!(listing(&existing).len(), before.len() + 1);
        drop(second);
        assert_eq!(listing(&existing), before);
    }

    #[test]
    fn a_layout_locked_by_another_output_is_left_to_publish() {
        let work = tempfile::tempdir().unwrap();
        let dir = work.path().join("layout");
        let mut first = OciLayout::new(dir.clone(), vec!["a".into()]);
        let mut second = OciLayout::new(dir.clone(), vec!["b".into()]);
        first.prepare(&[&blob("base")]).unwrap();
        // Would wait for the first's lock if it did not give up at once.
        second.prepare(&[&blob("base")]).unwrap();
        assert!(first.update.is_some() && second.update.is_none());
    }
}
