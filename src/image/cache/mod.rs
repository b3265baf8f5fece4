//! The layer cache: one folder that keeps compressed layers that do not change from one pack to the
//! next, and snapshots of the system folders they were made from. It owns that folder and nothing
//! else: it never holds the program's own layer, and never decides what goes into a layer.
//! The design: `docs/design/layer-cache.md`.

mod records;
mod snapshot;

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub(crate) struct LayerCache {
    dir: PathBuf,
    /// Identifies the executable that compresses: part of every key.
    executable: String,
    /// How recent a stamp must not be for a folder snapshot to be kept.
    racy_window: std::time::Duration,
}

/// Where a layer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    Cache,
    Written,
}

impl LayerCache {
    /// The cache the environment names, or `None` when it is turned off or has no home.
    pub(crate) fn from_env() -> Option<LayerCache> {
        Self::from_vars(|name| std::env::var_os(name).filter(|v| !v.is_empty()))
    }

    fn from_vars(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<LayerCache> {
        if var("SCRATCHPACK_NO_CACHE").is_some_and(|v| v != "0") {
            return None;
        }
        let dir = var("SCRATCHPACK_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| var("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("scratchpack")))
            .or_else(|| var("HOME").map(|d| PathBuf::from(d).join(".cache/scratchpack")))?;
        Some(LayerCache { dir, executable: executable_identity()?, racy_window: snapshot::RACY_WINDOW })
    }

    /// A cache in `dir`, for tests.
    #[cfg(test)]
    fn at(dir: &Path) -> LayerCache {
        LayerCache { dir: dir.to_path_buf(), executable: "test".into(), racy_window: std::time::Duration::ZERO }
    }
}

impl LayerCache {
    /// `blobs/sha256/<hex>`: where a blob is kept under its digest, whether a pack made it or a
    /// pull fetched it.
    pub(crate) fn blob_path(&self, digest: &crate::image::Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    /// Places the kept blob `digest` at `to` (a hard link, else a copy) when the cache holds it
    /// whole and its bytes hash to its digest; a damaged one is removed. `false` when it is not
    /// there.
    pub(crate) fn take_blob(&self, digest: &crate::image::Digest, size: u64, to: &Path) -> bool {
        use crate::image::blob::{digest_of_open_file, link_or_copy, open_file};
        let path = self.blob_path(digest);
        let Ok(mut file) = open_file(&path) else { return false };
        let intact = file.metadata().is_ok_and(|m| m.len() == size) && digest_of_open_file(&mut file, size).is_ok_and(|d| &d == digest);
        if !intact {
            let _ = std::fs::remove_file(&path);
            return false;
        }
        link_or_copy(&path, to).is_ok()
    }

    /// Keeps the blob at `from` (already checked against `digest`) under its digest. Best effort:
    /// a cache that cannot be written is only slower next time.
    pub(crate) fn keep_blob(&self, digest: &crate::image::Digest, from: &Path) {
        let path = self.blob_path(digest);
        let Some(dir) = path.parent() else { return };
        if path.exists() || std::fs::create_dir_all(dir).is_err() {
            return;
        }
        let made = tempfile::Builder::new().prefix(".blob.").make_in(dir, |temp| crate::image::blob::link_or_copy(from, temp));
        if let Ok(temp) = made {
            let _ = temp.persist(&path);
        }
    }
}

/// Puts `bytes` at `path` (a file of the cache, its folder made if missing) through a temporary
/// file renamed over it: a reader sees the old file or the new one, never a part.
fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().expect("a cache file has a folder");
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::Builder::new().prefix(".new.").tempfile_in(dir)?;
    io::Write::write_all(temp.as_file_mut(), bytes)?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The running executable's path, size, inode and mtime.
fn executable_identity() -> Option<String> {
    let path = std::env::current_exe().ok()?;
    let meta = std::fs::metadata(&path).ok()?;
    Some(format!("{} {} {} {} {}.{}", env!("CARGO_PKG_VERSION"), path.display(), meta.len(), meta.ino(), meta.mtime(), meta.mtime_nsec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_chooses_the_folder_or_turns_it_off() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| std::ffi::OsString::from(v))
        };
        let dir = |pairs| LayerCache::from_vars(vars(pairs)).map(|c| c.dir);
        assert_eq!(dir(&[("HOME", "/h")]), Some(PathBuf::from("/h/.cache/scratchpack")));
        assert_eq!(dir(&[("HOME", "/h"), ("XDG_CACHE_HOME", "/x")]), Some(PathBuf::from("/x/scratchpack")));
        assert_eq!(dir(&[("HOME", "/h"), ("SCRATCHPACK_CACHE_DIR", "/c")]), Some(PathBuf::from("/c")));
        assert_eq!(dir(&[("HOME", "/h"), ("SCRATCHPACK_NO_CACHE", "1")]), None);
        assert_eq!(dir(&[("HOME", "/h"), ("SCRATCHPACK_NO_CACHE", "0")]), Some(PathBuf::from("/h/.cache/scratchpack")));
        assert_eq!(dir(&[]), None);
    }
}
