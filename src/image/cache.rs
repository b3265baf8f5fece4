//! A cache of compressed layers that do not change from one pack to the next: the base layer, the
//! zoneinfo layer, the loader and shared libraries. Packing the same program again, or another
//! program on the same machine, reuses them instead of compressing them again.
//!
//! It owns one folder (`$SCRATCHPACK_CACHE_DIR`, else `$XDG_CACHE_HOME/scratchpack`, else
//! `~/.cache/scratchpack`; `SCRATCHPACK_NO_CACHE=1` turns it off): `blobs/sha256/<hex>` holds
//! compressed layers and `layers/<key>.json` says which blob a layer's inputs gave. It never holds
//! the program's own layer, and never decides what goes into a layer: it only remembers what
//! [`write_layer`](super::layer::write_layer) made.
//!
//! The key covers everything the bytes depend on: this very scratchpack executable (its path, size,
//! inode and mtime, so a rebuilt compressor never meets the blobs of the old one), the compression,
//! the mtime, and each entry's path, mode, owner and content: a hash of in-memory content, and for a
//! host file its size, device, inode, mtime and ctime (as git's index does: a changed file always has
//! a new ctime). A blob is checked against its digest before it is used, so a damaged cache costs a
//! recompression, never a wrong layer. Losing the folder loses nothing but time.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::blob::{link_or_copy, Blob, BlobData};
use super::digest::{digest_of_file, Digest};
use super::layer::{self, Compression, Layer, LayerError};
use crate::rootfs::{Content, EntryKind, FileStamp, FileTree};

/// Bump when the key or the record format changes.
const FORMAT: &str = "scratchpack layer cache 1";

pub struct LayerCache {
    dir: PathBuf,
    /// Identifies the executable that compresses: part of every key.
    executable: String,
}

/// Where a layer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Cache,
    Written,
}

impl LayerCache {
    /// The cache the environment names, or `None` when it is turned off or has no home.
    pub fn from_env() -> Option<LayerCache> {
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
        Some(LayerCache { dir, executable: executable_identity()? })
    }

    /// A cache in `dir`, for tests.
    #[cfg(test)]
    fn at(dir: &Path) -> LayerCache {
        LayerCache { dir: dir.to_path_buf(), executable: "test".into() }
    }

    /// The layer of `tree` in `staging_file`: from the cache when these inputs were compressed
    /// before, else written and remembered.
    pub fn layer(&self, tree: &FileTree, compression: Compression, mtime: u64, staging_file: &Path) -> Result<(Layer, Origin), LayerError> {
        let key = self.key(tree, compression, mtime);
        if let Some(key) = &key {
            if let Some(layer) = self.lookup(key, compression, staging_file) {
                return Ok((layer, Origin::Cache));
            }
        }
        let written = layer::write_layer(tree, compression, mtime, staging_file)?;
        if let Some(key) = &key {
            // A cache that cannot be written is only slower next time.
            let _ = self.store(key, &written, staging_file);
        }
        Ok((written, Origin::Written))
    }

    /// The key of these inputs; `None` if a host file cannot be examined (the layer is then written
    /// without the cache, and reports the error itself).
    fn key(&self, tree: &FileTree, compression: Compression, mtime: u64) -> Option<String> {
        let mut hash = Sha256::new();
        let mut line = |text: &str| {
            hash.update(text.as_bytes());
            hash.update(b"\n");
        };
        line(FORMAT);
        line(&self.executable);
        line(compression.media_type());
        line(&mtime.to_string());
        for (path, entry) in tree.iter() {
            let content = match &entry.kind {
                EntryKind::Dir => "dir".to_string(),
                EntryKind::Symlink(target) => format!("symlink {target}"),
                EntryKind::File(Content::Bytes(bytes)) => format!("bytes {}", Digest::of(bytes)),
                EntryKind::File(Content::HostFile { path, size, stamp }) => {
                    // Planning's look at the file, else one now.
                    let stamp = match stamp {
                        Some(stamp) => *stamp,
                        None => FileStamp::of(&std::fs::metadata(path).ok()?),
                    };
                    let FileStamp { size: now, dev, ino, mtime, ctime } = stamp;
                    format!("host {size} {now} {dev} {ino} {}.{} {}.{} {}", mtime.0, mtime.1, ctime.0, ctime.1, path.display())
                }
            };
            line(&format!("{path:?} {:o} {} {} {content}", entry.mode, entry.uid, entry.gid));
        }
        Some(Digest::from_hasher(hash).hex())
    }

    fn record_path(&self, key: &str) -> PathBuf {
        self.dir.join("layers").join(format!("{key}.json"))
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    /// The remembered layer, placed at `staging_file`, if its blob is there and intact.
    fn lookup(&self, key: &str, compression: Compression, staging_file: &Path) -> Option<Layer> {
        let record: serde_json::Value = serde_json::from_slice(&std::fs::read(self.record_path(key)).ok()?).ok()?;
        let digest = Digest::parse(record["digest"].as_str()?).ok()?;
        let diff_id = Digest::parse(record["diffID"].as_str()?).ok()?;
        let size = record["size"].as_u64()?;
        let uncompressed_size = record["uncompressedSize"].as_u64()?;
        let blob_path = self.blob_path(&digest);
        if digest_of_file(&blob_path).ok()? != (digest, size) {
            let _ = std::fs::remove_file(&blob_path);
            return None;
        }
        link_or_copy(&blob_path, staging_file).ok()?;
        Some(Layer {
            blob: Blob { media_type: compression.media_type().to_string(), digest, size, data: BlobData::File(staging_file.to_path_buf()) },
            diff_id,
            uncompressed_size,
            compression,
        })
    }

    fn store(&self, key: &str, layer: &Layer, staging_file: &Path) -> io::Result<()> {
        let blob_path = self.blob_path(&layer.blob.digest);
        let blob_dir = blob_path.parent().expect("a blob path has a folder");
        std::fs::create_dir_all(blob_dir)?;
        if !blob_path.exists() {
            let temp = tempfile::Builder::new().prefix(".blob.").make_in(blob_dir, |temp| link_or_copy(staging_file, temp))?;
            temp.persist(&blob_path).map_err(|e| e.error)?;
        }
        let record = serde_json::json!({
            "digest": layer.blob.digest.to_string(),
            "diffID": layer.diff_id.to_string(),
            "size": layer.blob.size,
            "uncompressedSize": layer.uncompressed_size,
        });
        let record_path = self.record_path(key);
        let record_dir = record_path.parent().expect("a record path has a folder");
        std::fs::create_dir_all(record_dir)?;
        let mut temp = tempfile::Builder::new().prefix(".layer.").tempfile_in(record_dir)?;
        serde_json::to_writer(temp.as_file_mut(), &record)?;
        temp.persist(&record_path).map_err(|e| e.error)?;
        Ok(())
    }
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
    use std::sync::Arc;

    fn tree_with(host_file: &Path) -> FileTree {
        let mut tree = FileTree::new();
        tree.add_file("etc/passwd", Content::Bytes(Arc::from(&b"root:x:0:0::/:\n"[..])), 0o644, 0, 0).unwrap();
        let metadata = std::fs::metadata(host_file).unwrap();
        tree.add_file("usr/share/zoneinfo/UTC", Content::host_file(host_file.to_path_buf(), &metadata), 0o644, 0, 0).unwrap();
        tree
    }

    #[test]
    fn a_second_pack_reuses_the_layer_and_gets_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("UTC");
        std::fs::write(&host, b"TZif2 fake zone").unwrap();
        let cache = LayerCache::at(&dir.path().join("cache"));
        let tree = tree_with(&host);
        let (first, origin) = cache.layer(&tree, Compression::Gzip, 0, &dir.path().join("a")).unwrap();
        assert_eq!(origin, Origin::Written);
        let (second, origin) = cache.layer(&tree, Compression::Gzip, 0, &dir.path().join("b")).unwrap();
        assert_eq!(origin, Origin::Cache);
        assert_eq!(second.blob.digest, first.blob.digest);
        assert_eq!(second.diff_id, first.diff_id);
        assert_eq!(second.uncompressed_size, first.uncompressed_size);
        assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), std::fs::read(dir.path().join("a")).unwrap());
        // Another mtime or compression is another layer.
        assert_eq!(cache.layer(&tree, Compression::Gzip, 1, &dir.path().join("c")).unwrap().1, Origin::Written);
        assert_eq!(cache.layer(&tree, Compression::Zstd, 0, &dir.path().join("d")).unwrap().1, Origin::Written);
    }

    #[test]
    fn a_changed_host_file_misses() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("UTC");
        std::fs::write(&host, b"TZif2 fake zone").unwrap();
        let cache = LayerCache::at(&dir.path().join("cache"));
        let (first, _) = cache.layer(&tree_with(&host), Compression::Gzip, 0, &dir.path().join("a")).unwrap();
        // Same size, new content: the ctime moves, so the key does.
        std::fs::write(&host, b"TZif2 fake zonf").unwrap();
        let (second, origin) = cache.layer(&tree_with(&host), Compression::Gzip, 0, &dir.path().join("b")).unwrap();
        assert_eq!(origin, Origin::Written);
        assert_ne!(second.diff_id, first.diff_id);
    }

    #[test]
    fn a_damaged_blob_is_recompressed_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("UTC");
        std::fs::write(&host, b"TZif2 fake zone").unwrap();
        let cache = LayerCache::at(&dir.path().join("cache"));
        let tree = tree_with(&host);
        let (first, _) = cache.layer(&tree, Compression::Gzip, 0, &dir.path().join("a")).unwrap();
        let cached = cache.blob_path(&first.blob.digest);
        // Replaced, not written through: the staged copy may share the inode.
        std::fs::remove_file(&cached).unwrap();
        std::fs::write(&cached, b"garbage").unwrap();
        let (second, origin) = cache.layer(&tree, Compression::Gzip, 0, &dir.path().join("b")).unwrap();
        assert_eq!(origin, Origin::Written);
        assert_eq!(second.blob.digest, first.blob.digest);
        assert_eq!(digest_of_file(&cached).unwrap(), (first.blob.digest, first.blob.size), "the cache is repaired");
    }

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
