//! Images: layers (tar, compression, digests), the config, the manifest and, for several platforms,
//! the index.
//!
//! Owns turning planned file trees into blobs with digests. It must not know where the blobs go
//! (that is `dest`), nor where the files came from (that is `rootfs` and `elf`).

pub(crate) mod blob;
pub(crate) mod cache;
pub(crate) mod compress;
pub mod config;
mod deflate;
pub(crate) mod digest;
pub(crate) mod layer;
pub(crate) mod referrers;
pub(crate) mod shipped;
pub(crate) mod stored;
pub(crate) mod survey;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub(crate) use blob::{Blob, BlobData};
pub(crate) use digest::Digest;
pub(crate) use layer::{Compression, Layer};

use crate::platform::Platform;

/// One platform's image.
#[derive(Clone, Debug)]
pub(crate) struct Image {
    pub(crate) platform: Platform,
    pub(crate) manifest: Blob,
    pub(crate) config: Blob,
    pub(crate) layers: Vec<Layer>,
}

/// What a pack produces: one image, or an index of several platforms' images.
#[derive(Clone, Debug)]
pub(crate) enum ImageOrIndex {
    Image(Image),
    Index { index: Blob, images: Vec<Image> },
}

impl ImageOrIndex {
    /// The manifest or index that a tag points to.
    pub(crate) fn root(&self) -> &Blob {
        match self {
            ImageOrIndex::Image(image) => &image.manifest,
            ImageOrIndex::Index { index, .. } => index,
        }
    }

    pub(crate) fn images(&self) -> &[Image] {
        match self {
            ImageOrIndex::Image(image) => std::slice::from_ref(image),
            ImageOrIndex::Index { images, .. } => images,
        }
    }

    /// Every blob once, each after the blobs it references: layers and configs, then manifests,
    /// then the index. This is the order in which a registry must receive them.
    pub(crate) fn blobs_in_upload_order(&self) -> Vec<&Blob> {
        let mut seen = std::collections::HashSet::new();
        let mut blobs = Vec::new();
        let images = self.images();
        let content = images.iter().flat_map(|image| image.layers.iter().map(|l| &l.blob).chain([&image.config]));
        for blob in content.chain(images.iter().map(|image| &image.manifest)) {
            if seen.insert(blob.digest) {
                blobs.push(blob);
            }
        }
        if let ImageOrIndex::Index { index, .. } = self {
            blobs.push(index);
        }
        blobs
    }

    /// Total bytes of every distinct blob: what a registry stores for it.
    pub(crate) fn total_size(&self) -> u64 {
        self.blobs_in_upload_order().iter().map(|b| b.size).sum()
    }
}

/// A private temporary folder for layers while they are written; removed when dropped.
///
/// It is locked (flock on the folder) for its whole life, and marked as locked by a file inside
/// ([`LOCK_MARK`]). A pack killed by SIGKILL cannot remove its folder, so each pack, before it
/// makes its own, removes the stale ones beside it: those whose lock it can take (no live pack
/// holds them) and that carry the mark, or, made by a version that did not lock them, have not
/// changed for [`UNMARKED_STALE_AFTER`]. A live pack's folder is never removed.
pub(crate) struct Staging {
    // Declared first: unregistered before the folder is removed.
    _guard: crate::cleanup::Guard,
    dir: tempfile::TempDir,
    // After the folder: the lock is released once the folder is gone.
    _lock: std::fs::File,
    next: AtomicUsize,
}

/// The file that marks a staging folder as one its pack keeps locked.
const LOCK_MARK: &str = ".locked";
/// How long an unlocked staging folder without the mark must have been left unchanged before it is
/// taken for a killed pack's: a pack of an older version does not lock its folder.
const UNMARKED_STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

impl Staging {
    /// A staging folder beside `destination` (a folder that exists), so that publishing there is a
    /// hard link instead of a copy; in the system's temporary folder when that cannot be made.
    pub(crate) fn near(destination: Option<&std::path::Path>) -> std::io::Result<Self> {
        let beside = destination.and_then(|folder| make_locked(folder, ".scratchpack-").ok());
        let (dir, lock) = match beside {
            Some(made) => made,
            None => make_locked(&std::env::temp_dir(), "scratchpack-")?,
        };
        Ok(Staging { _guard: crate::cleanup::register(dir.path()), dir, _lock: lock, next: AtomicUsize::new(0) })
    }

    /// A new file name inside the staging folder.
    pub(crate) fn next_file(&self) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.dir.path().join(format!("layer-{n}"))
    }
}

/// Makes a staging folder `PREFIX??????` in `parent`, locked and marked, after removing the stale
/// ones there.
fn make_locked(parent: &Path, prefix: &str) -> std::io::Result<(tempfile::TempDir, std::fs::File)> {
    use std::os::unix::fs::MetadataExt;
    remove_stale(parent, prefix);
    for _ in 0..8 {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir_in(parent)?;
        let lock = std::fs::File::open(dir.path())?;
        match lock.try_lock() {
            Ok(()) => {}
            // Another pack's sweep holds it, to remove it: make another.
            Err(std::fs::TryLockError::WouldBlock) => continue,
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        // A sweep that took the lock first may have removed it before letting go.
        let locked = lock.metadata()?;
        if std::fs::symlink_metadata(dir.path()).is_ok_and(|now| now.dev() == locked.dev() && now.ino() == locked.ino()) {
            std::fs::File::create(dir.path().join(LOCK_MARK))?;
            return Ok((dir, lock));
        }
    }
    Err(std::io::Error::other(format!("{}: cannot lock a new staging folder", parent.display())))
}

/// Removes the staging folders in `parent` that no live pack holds (see [`Staging`]). Best effort:
/// what cannot be read or removed is left.
fn remove_stale(parent: &Path, prefix: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        // Exactly what `make_locked` makes (tempfile's six random letters and digits), and a real
        // folder (the type of the entry itself: a link is never followed).
        let ours = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .is_some_and(|r| r.len() == 6 && r.bytes().all(|b| b.is_ascii_alphanumeric()));
        if !ours || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        let Ok(folder) = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY).open(&path) else {
            continue;
        };
        if folder.try_lock().is_err() {
            continue; // a live pack's
        }
        if path.join(LOCK_MARK).exists() || unchanged_for(&path) >= UNMARKED_STALE_AFTER {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// How long nothing in `dir` (the folder or a file in it) has changed.
fn unchanged_for(dir: &Path) -> std::time::Duration {
    let modified = |path: &Path| std::fs::symlink_metadata(path).and_then(|m| m.modified()).ok();
    let files = std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path());
    let newest = files.filter_map(|path| modified(&path)).chain(modified(dir)).max();
    newest.and_then(|time| time.elapsed().ok()).unwrap_or_default()
}
