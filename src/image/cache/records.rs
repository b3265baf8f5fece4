//! Layer records: the key of a layer's inputs, `layers/<key>.json` naming the blob those inputs gave,
//! and `blobs/sha256/<hex>`, checked by its digest at its first use and by CRC-32 after that.
//! The design: `docs/design/layer-cache.md`.

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::{replace_file, LayerCache, Origin};
use crate::image::blob::{link_or_copy, Blob, BlobData};
use crate::image::digest::Digest;
use crate::image::layer::{self, Compression, Layer, LayerError};
use crate::rootfs::FileTree;

/// Bump when the key or the record format changes.
const FORMAT: &str = "scratchpack layer cache 1";

impl LayerCache {
    /// The layer of `tree` in `staging_file`: from the cache when these inputs were compressed
    /// before, else written and remembered.
    pub(crate) fn layer(
        &self,
        tree: &FileTree,
        compression: Compression,
        mtime: u64,
        staging_file: &Path,
    ) -> Result<(Layer, Origin), LayerError> {
        let key = self.key(tree, compression, mtime);
        self.layer_of_key(key.as_deref(), tree, compression, mtime, staging_file)
    }

    pub(super) fn layer_of_key(
        &self,
        key: Option<&str>,
        tree: &FileTree,
        compression: Compression,
        mtime: u64,
        staging_file: &Path,
    ) -> Result<(Layer, Origin), LayerError> {
        if let Some(key) = key {
            if let Some(layer) = self.lookup(key, compression, staging_file) {
                return Ok((layer, Origin::Cache));
            }
        }
        let written = layer::write_layer(tree, compression, mtime, staging_file)?;
        if let Some(key) = key {
            // A cache that cannot be written is only slower next time.
            let _ = self.store(key, &written, staging_file);
        }
        Ok((written, Origin::Written))
    }

    /// The key of these inputs; `None` if a host file cannot be examined (the layer is then written
    /// without the cache, and reports the error itself).
    pub(super) fn key(&self, tree: &FileTree, compression: Compression, mtime: u64) -> Option<String> {
        layer::inputs_key(&[FORMAT, &self.executable], tree, compression, mtime)
    }

    fn record_path(&self, key: &str) -> PathBuf {
        self.dir.join("layers").join(format!("{key}.json"))
    }

    /// The remembered layer, placed at `staging_file`, if its blob is there and intact: its
    /// bytes read against the CRC-32 of its record, or where the record has none yet, against its
    /// digest, after which the record keeps the CRC (ten times cheaper to check than SHA-256).
    pub(super) fn lookup(&self, key: &str, compression: Compression, staging_file: &Path) -> Option<Layer> {
        let record_path = self.record_path(key);
        let mut record: serde_json::Value = serde_json::from_slice(&std::fs::read(&record_path).ok()?).ok()?;
        let digest = Digest::parse(record["digest"].as_str()?).ok()?;
        let diff_id = Digest::parse(record["diffID"].as_str()?).ok()?;
        let size = record["size"].as_u64()?;
        let uncompressed_size = record["uncompressedSize"].as_u64()?;
        let blob_path = self.blob_path(&digest);
        let intact = match record["crc32"].as_u64() {
            Some(crc) => crc_of_file(&blob_path).ok() == Some((crc, size)),
            None => {
                let mut hash = Sha256::new();
                let mut crc = crc32fast::Hasher::new();
                let read = crate::image::digest::read_in_pieces(&blob_path, |piece| {
                    hash.update(piece);
                    crc.update(piece);
                });
                let intact = read.ok() == Some(size) && Digest::from_hasher(hash) == digest;
                if intact {
                    record["crc32"] = crc.finalize().into();
                    let _ = write_record(&record_path, &record);
                }
                intact
            }
        };
        if !intact {
            let _ = std::fs::remove_file(&blob_path);
            return None;
        }
        link_or_copy(&blob_path, staging_file).ok()?;
        Some(Layer {
            blob: Blob { media_type: compression.media_type().to_string(), digest, size, data: BlobData::File(staging_file.to_path_buf()) },
            diff_id,
            uncompressed_size,
            compression: Some(compression),
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
        write_record(&self.record_path(key), &record)?;
        Ok(())
    }
}

/// Writes a layer record in place of the old, whole or not at all.
fn write_record(record_path: &Path, record: &serde_json::Value) -> io::Result<()> {
    replace_file(record_path, &serde_json::to_vec(record)?)
}

/// The CRC-32 and size of the file at `path`.
fn crc_of_file(path: &Path) -> io::Result<(u64, u64)> {
    let mut crc = crc32fast::Hasher::new();
    let size = crate::image::digest::read_in_pieces(path, |piece| crc.update(piece))?;
    Ok((u64::from(crc.finalize()), size))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::rootfs::Content;

    /// The digest and size of the file at `path`.
    fn digest_of_file(path: &Path) -> std::io::Result<(Digest, u64)> {
        let bytes = std::fs::read(path)?;
        Ok((Digest::of(&bytes), bytes.len() as u64))
    }

    fn tree_with(host_file: &Path) -> FileTree {
        let mut tree = FileTree::new();
        tree.add_file("etc/passwd", Content::Bytes(Arc::from(&b"root:x:0:0::/:\n"[..])), 0o644, 0, 0).unwrap();
        let metadata = std::fs::metadata(host_file).unwrap();
        tree.add_file("usr/share/zoneinfo/UTC", Content::host_file(host_file.to_path_buf(), &metadata), 0o644, 0, 0).unwrap();
        tree
    }

    /// A cache in a temporary folder, and the tree of one host file in that folder.
    fn one_zone() -> (tempfile::TempDir, LayerCache, FileTree) {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("UTC");
        std::fs::write(&host, b"TZif2 fake zone").unwrap();
        let cache = LayerCache::at(&dir.path().join("cache"));
        let tree = tree_with(&host);
        (dir, cache, tree)
    }

    #[test]
    fn a_second_pack_reuses_the_layer_and_gets_the_same_bytes() {
        let (dir, cache, tree) = one_zone();
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
    fn a_layer_with_file_capabilities_is_never_the_cached_one_without() {
        let (dir, cache, tree) = one_zone();
        let (plain, _) = cache.layer(&tree, Compression::Gzip, 0, &dir.path().join("a")).unwrap();
        let mut with_caps = tree.clone();
        let value = crate::rootfs::caps::Capabilities::parse(&["net_bind_service"]).unwrap().xattr();
        with_caps.get_mut("usr/share/zoneinfo/UTC").unwrap().xattrs.insert(crate::rootfs::caps::XATTR.into(), value);
        let (capable, origin) = cache.layer(&with_caps, Compression::Gzip, 0, &dir.path().join("b")).unwrap();
        assert_eq!(origin, Origin::Written);
        assert_ne!(capable.diff_id, plain.diff_id);
        let (again, origin) = cache.layer(&with_caps, Compression::Gzip, 0, &dir.path().join("c")).unwrap();
        assert_eq!((again.diff_id, origin), (capable.diff_id, Origin::Cache));
        let (plain_again, origin) = cache.layer(&tree, Compression::Gzip, 0, &dir.path().join("d")).unwrap();
        assert_eq!((plain_again.diff_id, origin), (plain.diff_id, Origin::Cache), "the key of a tree without them is unchanged");
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
        let (dir, cache, tree) = one_zone();
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
    fn a_blob_is_checked_by_digest_once_then_by_crc() {
        let (dir, cache, tree) = one_zone();
        let (first, _) = cache.layer(&tree, Compression::Gzip, 0, &dir.path().join("a")).unwrap();
        let record_path = cache.record_path(&cache.key(&tree, Compression::Gzip, 0).unwrap());
        let record = || -> serde_json::Value { serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap() };
        assert!(record().get("crc32").is_none(), "a blob just written is checked by its digest first");

        assert_eq!(cache.layer(&tree, Compression::Gzip, 0, &dir.path().join("b")).unwrap().1, Origin::Cache);
        let cached = cache.blob_path(&first.blob.digest);
        let blob = std::fs::read(&cached).unwrap();
        assert_eq!(record()["crc32"], u64::from(crc32fast::hash(&blob)));
        assert_eq!(cache.layer(&tree, Compression::Gzip, 0, &dir.path().join("c")).unwrap().1, Origin::Cache);

        // One bit flipped in place, the size kept: the CRC no longer matches; the blob (and every
        // staged copy that shares its inode) is refused and written anew.
        let mut bytes = blob.clone();
        bytes[12] ^= 0x01;
        std::fs::write(&cached, &bytes).unwrap();
        let (again, origin) = cache.layer(&tree, Compression::Gzip, 0, &dir.path().join("d")).unwrap();
        assert_eq!(origin, Origin::Written);
        assert_eq!(std::fs::read(&cached).unwrap(), blob);
        assert_eq!(again.blob.digest, first.blob.digest);
    }
}
