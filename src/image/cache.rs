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
//! a new ctime). A blob is checked before it is used, so a damaged cache costs a recompression,
//! never a wrong layer: against its digest the first time, then against the CRC-32 that first check
//! wrote into its record (bit rot or a write through a hard link, not forgery: whoever can write the
//! blobs can write the records). Losing the folder loses nothing but time.
//!
//! A system folder copied whole (zoneinfo: 1,300 entries in 43 folders) also gets a snapshot in
//! `folders/<key>.txt`: the stamp of every folder and file in it, a digest of each folder's listing
//! (names and kinds), the key of its layer, and a last line with the entry count (a snapshot cut
//! short by a crash is not used). A later pack that finds every stamp and listing unchanged takes
//! the layer without the walk's link reads, tree and key: one `stat` per entry and one listing per
//! folder. A file changed in place has a new ctime; an entry added, removed or renamed changes its
//! folder's listing. What it trusts beyond that, the cache key trusts too: a link re-pointed or a
//! file rewritten with every stamp kept (possible only by swapping in another read-only image with
//! the same inodes and fixed times) goes unseen by both. A snapshot is not kept when a stamp is less
//! than two seconds older than the walk, since time stamps move in clock ticks: two changes in one
//! tick could leave a stamp as it was (git's "racy" case).

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::blob::{link_or_copy, Blob, BlobData};
use super::digest::Digest;
use super::layer::{self, Compression, Layer, LayerError};
use crate::rootfs::add::SystemFolder;
use crate::rootfs::{Content, EntryKind, FileStamp, FileTree};

/// Bump when the key or the record format changes.
const FORMAT: &str = "scratchpack layer cache 1";
/// First line of a folder snapshot.
const SNAPSHOT_FORMAT: &str = "scratchpack folder snapshot 2";
const RACY_WINDOW: std::time::Duration = std::time::Duration::from_secs(2);

pub struct LayerCache {
    dir: PathBuf,
    /// Identifies the executable that compresses: part of every key.
    executable: String,
    /// How recent a stamp must not be for a folder snapshot to be kept.
    racy_window: std::time::Duration,
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
        Some(LayerCache { dir, executable: executable_identity()?, racy_window: RACY_WINDOW })
    }

    /// A cache in `dir`, for tests.
    #[cfg(test)]
    fn at(dir: &Path) -> LayerCache {
        LayerCache { dir: dir.to_path_buf(), executable: "test".into(), racy_window: std::time::Duration::ZERO }
    }

    /// The layer of `tree` in `staging_file`: from the cache when these inputs were compressed
    /// before, else written and remembered.
    pub fn layer(&self, tree: &FileTree, compression: Compression, mtime: u64, staging_file: &Path) -> Result<(Layer, Origin), LayerError> {
        let key = self.key(tree, compression, mtime);
        self.layer_of_key(key.as_deref(), tree, compression, mtime, staging_file)
    }

    /// [`Self::layer`] of the system folder `folder`, planned from `source`, which also leaves a
    /// snapshot of it for [`Self::unchanged_folder_layer`].
    pub fn folder_layer(
        &self,
        source: &Path,
        folder: &SystemFolder,
        compression: Compression,
        mtime: u64,
        staging_file: &Path,
    ) -> Result<(Layer, Origin), LayerError> {
        let key = self.key(&folder.tree, compression, mtime);
        let layer = self.layer_of_key(key.as_deref(), &folder.tree, compression, mtime, staging_file)?;
        if let Some(key) = &key {
            self.remember_folder(key, source, folder, compression, mtime);
        }
        Ok(layer)
    }

    fn layer_of_key(
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

    /// The layer of the system folder `source` (see [`SystemFolder`]) as the last pack left it,
    /// placed at `staging_file`, if no folder, listing or file in it has changed since; `None`
    /// means walk it.
    pub fn unchanged_folder_layer(&self, source: &Path, compression: Compression, mtime: u64, staging_file: &Path) -> Option<Layer> {
        let snapshot = std::fs::read(self.snapshot_path(source, compression, mtime)).ok()?;
        let mut lines = snapshot.split(|byte| *byte == b'\n');
        if lines.next()? != SNAPSHOT_FORMAT.as_bytes() {
            return None;
        }
        let key = std::str::from_utf8(lines.next()?).ok()?.to_string();
        for (checked, line) in lines.enumerate() {
            if let Some(count) = line.strip_prefix(b"end ") {
                // The last line: a snapshot cut short (a crash before its data reached the disk)
                // has lost it, or says fewer entries than it has.
                if std::str::from_utf8(count).ok()?.parse::<usize>().ok()? != checked {
                    return None;
                }
                return self.lookup(&key, compression, staging_file);
            }
            let (kind, stamp, listing, path) = parse_snapshot_line(line)?;
            let metadata = std::fs::symlink_metadata(&path).ok()?;
            let same_kind = if kind == b'd' { metadata.is_dir() } else { metadata.is_file() };
            if !same_kind || FileStamp::of(&metadata) != stamp {
                return None;
            }
            if kind == b'd' && crate::rootfs::add::listing_digest(&path).ok()? != listing {
                return None;
            }
        }
        // No last line: cut short.
        None
    }

    /// Notes `folder` (planned from `source`, its layer's key `key`) for
    /// [`Self::unchanged_folder_layer`]. A snapshot that cannot be written is only slower next time.
    fn remember_folder(&self, key: &str, source: &Path, folder: &SystemFolder, compression: Compression, mtime: u64) {
        let mut entries: Vec<(u8, &PathBuf, &FileStamp, &str)> =
            folder.folders.iter().map(|f| (b'd', &f.path, &f.stamp, f.listing.as_str())).collect();
        for (_, entry) in folder.tree.iter() {
            if let EntryKind::File(Content::HostFile { path, stamp, .. }) = &entry.kind {
                // Every host file must carry the stamp the key was made of.
                let Some(stamp) = stamp else { return };
                entries.push((b'f', path, stamp, "-"));
            }
        }
        let racy = |time| self.is_racy(time, folder.started);
        if entries.iter().any(|(_, _, stamp, _)| racy(stamp.mtime) || racy(stamp.ctime)) {
            return;
        }
        let mut text = format!("{SNAPSHOT_FORMAT}\n{key}\n").into_bytes();
        for (kind, path, stamp, listing) in &entries {
            let path = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
            if path.contains(&b'\n') {
                return;
            }
            let FileStamp { size, dev, ino, mtime: (m_s, m_ns), ctime: (c_s, c_ns) } = stamp;
            text.extend_from_slice(format!("{} {size} {dev} {ino} {m_s} {m_ns} {c_s} {c_ns} {listing} ", *kind as char).as_bytes());
            text.extend_from_slice(path);
            text.push(b'\n');
        }
        text.extend_from_slice(format!("end {}\n", entries.len()).as_bytes());
        let _ = replace_file(&self.snapshot_path(source, compression, mtime), &text);
    }

    fn snapshot_path(&self, source: &Path, compression: Compression, mtime: u64) -> PathBuf {
        let mut hash = Sha256::new();
        for part in [SNAPSHOT_FORMAT.as_bytes(), self.executable.as_bytes(), compression.media_type().as_bytes(), &mtime.to_le_bytes()] {
            hash.update(part);
            hash.update(b"\n");
        }
        hash.update(std::os::unix::ffi::OsStrExt::as_bytes(source.as_os_str()));
        self.dir.join("folders").join(format!("{}.txt", Digest::from_hasher(hash).hex()))
    }

    fn record_path(&self, key: &str) -> PathBuf {
        self.dir.join("layers").join(format!("{key}.json"))
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    /// The remembered layer, placed at `staging_file`, if its blob is there and intact: its
    /// bytes read against the CRC-32 of its record, or where the record has none yet, against its
    /// digest, after which the record keeps the CRC (ten times cheaper to check than SHA-256).
    fn lookup(&self, key: &str, compression: Compression, staging_file: &Path) -> Option<Layer> {
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
                let read = super::digest::read_in_pieces(&blob_path, |piece| {
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
            compression,
        })
    }

    /// Whether a time stamp `(seconds, nanoseconds)` is too close to `now` (or after it) to prove
    /// that nothing changed since: another change in its clock tick would not have moved it.
    fn is_racy(&self, (seconds, nanos): (i64, i64), now: std::time::SystemTime) -> bool {
        let at =
            u64::try_from(seconds).ok().map(|s| std::time::UNIX_EPOCH + std::time::Duration::new(s, nanos.clamp(0, 999_999_999) as u32));
        at.is_none_or(|at| at + self.racy_window >= now)
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

/// `<kind> <size> <dev> <ino> <mtime s> <mtime ns> <ctime s> <ctime ns> <listing> <path>`, the
/// path last (it may hold spaces); the listing digest is `-` for a file.
fn parse_snapshot_line(line: &[u8]) -> Option<(u8, FileStamp, String, PathBuf)> {
    fn parse<T: std::str::FromStr>(field: Option<&[u8]>) -> Option<T> {
        std::str::from_utf8(field?).ok()?.parse().ok()
    }
    let mut fields = line.splitn(10, |byte| *byte == b' ');
    let kind = match fields.next()? {
        b"d" => b'd',
        b"f" => b'f',
        _ => return None,
    };
    let (size, dev, ino) = (parse::<u64>(fields.next())?, parse::<u64>(fields.next())?, parse::<u64>(fields.next())?);
    let mtime = (parse::<i64>(fields.next())?, parse::<i64>(fields.next())?);
    let ctime = (parse::<i64>(fields.next())?, parse::<i64>(fields.next())?);
    let listing = parse::<String>(fields.next())?;
    let path = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(fields.next()?);
    Some((kind, FileStamp { size, dev, ino, mtime, ctime }, listing, PathBuf::from(path)))
}

/// Writes a layer record in place of the old, whole or not at all.
fn write_record(record_path: &Path, record: &serde_json::Value) -> io::Result<()> {
    replace_file(record_path, &serde_json::to_vec(record)?)
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

/// The CRC-32 and size of the file at `path`.
fn crc_of_file(path: &Path) -> io::Result<(u64, u64)> {
    let mut crc = crc32fast::Hasher::new();
    let size = super::digest::read_in_pieces(path, |piece| crc.update(piece))?;
    Ok((u64::from(crc.finalize()), size))
}

/// The running executable's path, size, inode and mtime.
fn executable_identity() -> Option<String> {
    let path = std::env::current_exe().ok()?;
    let meta = std::fs::metadata(&path).ok()?;
    Some(format!("{} {} {} {} {}.{}", env!("CARGO_PKG_VERSION"), path.display(), meta.len(), meta.ino(), meta.mtime(), meta.mtime_nsec()))
}

#[cfg(test)]
mod tests {
    use super::super::digest::digest_of_file;
    use super::*;
    use std::sync::Arc;

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

    /// A zoneinfo-like folder: files in nested folders, a link inside, a link out (left out).
    fn system_folder(root: &Path) {
        std::fs::create_dir_all(root.join("Europe")).unwrap();
        std::fs::write(root.join("UTC"), b"TZif2 utc").unwrap();
        std::fs::write(root.join("Europe/Paris"), b"TZif2 paris").unwrap();
        std::os::unix::fs::symlink("Europe/Paris", root.join("Paris")).unwrap();
        std::os::unix::fs::symlink("/etc/localtime", root.join("localtime")).unwrap();
    }

    /// Packs `source` as a pack does: the snapshot's layer, else a walk, a layer and a snapshot.
    fn folder_layer(cache: &LayerCache, source: &Path, staging: &Path) -> (Layer, bool) {
        if let Some(layer) = cache.unchanged_folder_layer(source, Compression::Gzip, 0, staging) {
            return (layer, true);
        }
        let folder = crate::rootfs::add::plan_system_folder(source, "/usr/share/zoneinfo").unwrap();
        let (layer, _) = cache.folder_layer(source, &folder, Compression::Gzip, 0, staging).unwrap();
        (layer, false)
    }

    #[test]
    fn an_unchanged_folder_is_not_walked_and_any_change_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("zoneinfo");
        system_folder(&root);
        let cache = LayerCache::at(&dir.path().join("cache"));
        let staging = |name: &str| dir.path().join(name);
        let (first, from_snapshot) = folder_layer(&cache, &root, &staging("a"));
        assert!(!from_snapshot);
        let (again, from_snapshot) = folder_layer(&cache, &root, &staging("b"));
        assert!(from_snapshot, "nothing changed");
        assert_eq!((again.blob.digest, again.diff_id), (first.blob.digest, first.diff_id));
        assert_eq!(std::fs::read(staging("b")).unwrap(), std::fs::read(staging("a")).unwrap());

        // Each change, then a pack that must see it and walk; the next one trusts the new snapshot.
        type Change<'a> = (&'a str, Box<dyn Fn() + 'a>);
        let changes: Vec<Change> = vec![
            // Same size, in place: the file's ctime moves, its folder's does not.
            ("a file written in place", Box::new(|| std::fs::write(root.join("Europe/Paris"), b"TZif2 PARIS").unwrap())),
            ("a file added in a subfolder", Box::new(|| std::fs::write(root.join("Europe/Berlin"), b"TZif2 berlin").unwrap())),
            (
                "a link re-pointed",
                Box::new(|| {
                    std::fs::remove_file(root.join("Paris")).unwrap();
                    std::os::unix::fs::symlink("UTC", root.join("Paris")).unwrap();
                }),
            ),
            (
                "a file made executable",
                Box::new(|| {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(root.join("UTC"), std::fs::Permissions::from_mode(0o755)).unwrap();
                }),
            ),
        ];
        let mut previous = first.diff_id;
        for (i, (what, change)) in changes.iter().enumerate() {
            // Timestamps move in clock ticks: let one pass, or a folder's mtime may not move.
            std::thread::sleep(std::time::Duration::from_millis(20));
            change();
            let (changed, from_snapshot) = folder_layer(&cache, &root, &staging(&format!("c{i}")));
            assert!(!from_snapshot, "{what}: taken from a stale snapshot");
            assert_ne!(changed.diff_id, previous, "{what}: same layer");
            let (_, from_snapshot) = folder_layer(&cache, &root, &staging(&format!("d{i}")));
            assert!(from_snapshot, "{what}: no new snapshot");
            previous = changed.diff_id;
        }
    }

    #[test]
    fn a_racy_or_damaged_snapshot_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("zoneinfo");
        system_folder(&root);
        // Files changed in the last hour count as racy here: no snapshot is kept.
        let mut cache = LayerCache::at(&dir.path().join("cache"));
        cache.racy_window = std::time::Duration::from_secs(3600);
        folder_layer(&cache, &root, &dir.path().join("a"));
        assert!(!cache.snapshot_path(&root, Compression::Gzip, 0).exists());
        assert!(!folder_layer(&cache, &root, &dir.path().join("b")).1);

        cache.racy_window = std::time::Duration::ZERO;
        folder_layer(&cache, &root, &dir.path().join("c"));
        let snapshot = cache.snapshot_path(&root, Compression::Gzip, 0);
        let text = std::fs::read_to_string(&snapshot).unwrap();
        assert_eq!(text.lines().count(), 2 + 2 + 2 + 1, "format, key, two folders, two files, end: {text}");
        assert!(text.ends_with("end 4\n"), "{text}");
        let not_a_number = text.replacen("\nd ", "\nd x", 1);
        let unknown_kind = text.replacen("\nd ", "\nq ", 1);
        let old_format = text.replacen("snapshot 2", "snapshot 1", 1);
        let other_size = {
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            let fields: Vec<&str> = lines[4].splitn(3, ' ').collect();
            lines[4] = format!("{} {} {}", fields[0], fields[1].parse::<u64>().unwrap() + 1, fields[2]);
            lines.join("\n")
        };
        let lines: Vec<&str> = text.lines().collect();
        // Cut short, as a crash before the data reached the disk can leave it: at a line's end.
        let no_end = lines[..lines.len() - 1].join("\n") + "\n";
        let lost_entry = lines[..lines.len() - 2].join("\n") + "\nend 4\n";
        // A folder whose listing is not the one recorded (the check behind the time stamps).
        let other_listing = {
            let fields: Vec<&str> = lines[2].splitn(10, ' ').collect();
            let mut fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
            assert_eq!(fields[8].len(), 64, "{}", lines[2]);
            fields[8] = "0".repeat(64);
            [&lines[..2], &[fields.join(" ").as_str()], &lines[3..]].concat().join("\n") + "\n"
        };
        for damaged in [not_a_number, unknown_kind, old_format, other_size, no_end, lost_entry, other_listing] {
            std::fs::write(&snapshot, damaged).unwrap();
            assert!(cache.unchanged_folder_layer(&root, Compression::Gzip, 0, &dir.path().join("d")).is_none());
        }
        // Another compression or mtime has its own snapshot.
        std::fs::write(&snapshot, &text).unwrap();
        assert!(cache.unchanged_folder_layer(&root, Compression::Gzip, 0, &dir.path().join("e")).is_some());
        assert!(cache.unchanged_folder_layer(&root, Compression::Zstd, 0, &dir.path().join("f")).is_none());
        assert!(cache.unchanged_folder_layer(&root, Compression::Gzip, 1, &dir.path().join("g")).is_none());
    }

    #[test]
    fn snapshot_lines_read_back_whole_numbers_and_paths() {
        let line = format!("d {} {} {} -5 999999999 1700000000 0 {} /a b/c", u64::MAX, u64::MAX - 1, 1u64 << 63, "ab".repeat(32));
        let (kind, stamp, listing, path) = parse_snapshot_line(line.as_bytes()).unwrap();
        assert_eq!((kind, listing.len(), path), (b'd', 64, PathBuf::from("/a b/c")));
        assert_eq!(
            stamp,
            FileStamp { size: u64::MAX, dev: u64::MAX - 1, ino: 1 << 63, mtime: (-5, 999_999_999), ctime: (1_700_000_000, 0) }
        );
        assert!(parse_snapshot_line(b"d 1 2 3 4 5 6 7").is_none(), "fields missing");
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
