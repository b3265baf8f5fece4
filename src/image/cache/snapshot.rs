//! The folder snapshot: `folders/<key>.txt`, the stamp of every folder and file of a system folder
//! (zoneinfo) and each folder's listing, so that a later pack finding them unchanged skips the walk.
//! The design: `docs/design/layer-cache.md`.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::{replace_file, LayerCache, Origin};
use crate::image::digest::Digest;
use crate::image::layer::{Compression, Layer, LayerError};
use crate::rootfs::add::SystemFolder;
use crate::rootfs::{Content, EntryKind, FileStamp};

/// First line of a folder snapshot.
const SNAPSHOT_FORMAT: &str = "scratchpack folder snapshot 2";
/// How much older than the walk every stamp must be for a snapshot to be kept.
pub(super) const RACY_WINDOW: std::time::Duration = std::time::Duration::from_secs(2);

impl LayerCache {
    /// [`Self::layer`] of the system folder `folder`, planned from `source`, which also leaves a
    /// snapshot of it for [`Self::unchanged_folder_layer`].
    pub(crate) fn folder_layer(
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

    /// The layer of the system folder `source` (see [`SystemFolder`]) as the last pack left it,
    /// placed at `staging_file`, if no folder, listing or file in it has changed since; `None`
    /// means walk it.
    pub(crate) fn unchanged_folder_layer(&self, source: &Path, compression: Compression, mtime: u64, staging_file: &Path) -> Option<Layer> {
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

    /// Whether a time stamp `(seconds, nanoseconds)` is too close to `now` (or after it) to prove
    /// that nothing changed since: another change in its clock tick would not have moved it.
    fn is_racy(&self, (seconds, nanos): (i64, i64), now: std::time::SystemTime) -> bool {
        let at =
            u64::try_from(seconds).ok().map(|s| std::time::UNIX_EPOCH + std::time::Duration::new(s, nanos.clamp(0, 999_999_999) as u32));
        at.is_none_or(|at| at + self.racy_window >= now)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
