//! The file tree of an image: which paths it holds, with which content, mode and owner.
//!
//! Owns planning only: `base` lays out the POSIX files and the CA bundle (`pem` decides which bytes
//! of a CA file may go in), `add` turns `--add` specs into entries, `extra` joins them with
//! `--mkdir` and `--chown-to-user` into one layer's tree, `caps` spells `--cap` as the extended
//! attribute an entry carries, and [`FileTree`] keeps them
//! sorted with their parent folders. It reads host files only to learn their size and kind; their
//! bytes are read later, while a layer is written. It must not know about tar, compression or
//! destinations (that is `image`).

pub(crate) mod add;
pub(crate) mod base;
pub(crate) mod caps;
pub(crate) mod extra;
pub(crate) mod libs;
pub(crate) mod packages;
pub mod pem;
pub(crate) mod zoneinfo;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a regular file's bytes come from.
#[derive(Clone, Debug)]
pub(crate) enum Content {
    /// Bytes known when planning: templates, the CA bundle.
    Bytes(Arc<[u8]>),
    /// A host file, read while the layer is written; `size` was taken when planning, and `stamp`
    /// (when planning looked) says which version of the file that was. `path` names the file itself,
    /// not a symlink to it: the layer opens it without following links, and refuses it if it is no
    /// longer the file of `stamp` (same device and inode) and `size`.
    HostFile { path: PathBuf, size: u64, stamp: Option<FileStamp> },
}

impl Content {
    /// A host file as `metadata` (taken while planning, of `path` itself) describes it.
    pub(crate) fn host_file(path: PathBuf, metadata: &std::fs::Metadata) -> Content {
        Content::HostFile { path, size: metadata.len(), stamp: Some(FileStamp::of(metadata)) }
    }
}

/// Which version of a host file: what git's index compares. Writing a file always moves its ctime,
/// which no program can set back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileStamp {
    pub(crate) size: u64,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) mtime: (i64, i64),
    pub(crate) ctime: (i64, i64),
}

impl FileStamp {
    pub(crate) fn of(metadata: &std::fs::Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            size: metadata.len(),
            dev: metadata.dev(),
            ino: metadata.ino(),
            mtime: (metadata.mtime(), metadata.mtime_nsec()),
            ctime: (metadata.ctime(), metadata.ctime_nsec()),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) enum EntryKind {
    Dir,
    File(Content),
    Symlink(String),
}

#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) kind: EntryKind,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// Extended attributes (`security.capability`), by name.
    pub(crate) xattrs: BTreeMap<String, Vec<u8>>,
}

/// A planned image file system (or one layer of it). Paths are relative to the image root, with
/// no leading `/`, and iterate in byte order, so parents always come before their children.
#[derive(Clone, Debug, Default)]
pub(crate) struct FileTree {
    entries: BTreeMap<String, Entry>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum PathError {
    #[error("image path {0:?} must be absolute (start with /)")]
    NotAbsolute(String),
    #[error("image path {0:?} must not contain '..'")]
    DotDot(String),
    #[error("image path {0:?} names the image root, not a file")]
    Root(String),
    #[error("image path {path:?} is already a {existing} in the image")]
    Conflict { path: String, existing: &'static str },
}

/// Normalises an absolute image path: drops `.` and empty components, refuses `..`.
/// Returns it without the leading `/`.
pub(crate) fn image_path(path: &str) -> Result<String, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute(path.to_string()));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(PathError::DotDot(path.to_string())),
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        return Err(PathError::Root(path.to_string()));
    }
    Ok(parts.join("/"))
}

impl FileTree {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(path, entry)| (path.as_str(), entry))
    }

    pub(crate) fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    pub(crate) fn get_mut(&mut self, path: &str) -> Option<&mut Entry> {
        self.entries.get_mut(path)
    }

    /// `path` and everything below it, in order.
    pub(crate) fn under<'t>(&'t self, path: &'t str) -> impl Iterator<Item = (&'t str, &'t Entry)> + 't {
        self.entries
            .range::<str, _>((std::ops::Bound::Included(path), std::ops::Bound::Unbounded))
            // `a/b c` sorts between `a/b` and `a/b/c`: every path below starts with `path`, but not
            // every path that starts with it is below it.
            .take_while(move |(key, _)| key.starts_with(path))
            .filter(move |(key, _)| key.len() == path.len() || key.as_bytes()[path.len()] == b'/')
            .map(|(key, entry)| (key.as_str(), entry))
    }

    /// Puts `entry` at `path`, as [`FileTree::add_dir`] or [`FileTree::add_file`] would.
    pub(crate) fn insert(&mut self, path: &str, entry: Entry) -> Result<(), PathError> {
        match entry.kind {
            EntryKind::Dir => self.add_dir(path, entry.mode, entry.uid, entry.gid),
            _ => self.insert_leaf(path, entry),
        }
    }

    /// Adds a folder; adding one that exists only updates its mode and owner.
    pub(crate) fn add_dir(&mut self, path: &str, mode: u32, uid: u32, gid: u32) -> Result<(), PathError> {
        self.ensure_parents(path)?;
        match self.entries.get_mut(path) {
            Some(Entry { kind: EntryKind::Dir, .. }) | None => {
                self.entries.insert(path.to_string(), Entry { kind: EntryKind::Dir, mode, uid, gid, xattrs: BTreeMap::new() });
                Ok(())
            }
            Some(existing) => Err(conflict(path, existing)),
        }
    }

    /// Adds a regular file; a later file at the same path replaces the earlier one.
    pub(crate) fn add_file(&mut self, path: &str, content: Content, mode: u32, uid: u32, gid: u32) -> Result<(), PathError> {
        self.insert_leaf(path, Entry { kind: EntryKind::File(content), mode, uid, gid, xattrs: BTreeMap::new() })
    }

    pub(crate) fn add_symlink(&mut self, path: &str, target: &str) -> Result<(), PathError> {
        self.insert_leaf(path, Entry { kind: EntryKind::Symlink(target.to_string()), mode: 0o777, uid: 0, gid: 0, xattrs: BTreeMap::new() })
    }

    fn insert_leaf(&mut self, path: &str, entry: Entry) -> Result<(), PathError> {
        self.ensure_parents(path)?;
        if let Some(existing @ Entry { kind: EntryKind::Dir, .. }) = self.entries.get(path) {
            return Err(conflict(path, existing));
        }
        self.entries.insert(path.to_string(), entry);
        Ok(())
    }

    /// Parent folders that nobody planned are 0755 root:root, as in any distribution.
    fn ensure_parents(&mut self, path: &str) -> Result<(), PathError> {
        let mut end = 0;
        while let Some(offset) = path[end..].find('/') {
            end += offset;
            let parent = &path[..end];
            match self.entries.get(parent) {
                None => {
                    self.entries
                        .insert(parent.to_string(), Entry { kind: EntryKind::Dir, mode: 0o755, uid: 0, gid: 0, xattrs: BTreeMap::new() });
                }
                Some(Entry { kind: EntryKind::Dir, .. }) => {}
                Some(existing) => return Err(conflict(parent, existing)),
            }
            end += 1;
        }
        Ok(())
    }
}

fn conflict(path: &str, existing: &Entry) -> PathError {
    let existing = match existing.kind {
        EntryKind::Dir => "folder",
        EntryKind::File(_) => "file",
        EntryKind::Symlink(_) => "symlink",
    };
    PathError::Conflict { path: format!("/{path}"), existing }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_paths_are_normalised() {
        assert_eq!(image_path("/usr/local/bin/app").unwrap(), "usr/local/bin/app");
        assert_eq!(image_path("//etc/./app//conf/").unwrap(), "etc/app/conf");
        assert!(matches!(image_path("etc/x"), Err(PathError::NotAbsolute(_))));
        assert!(matches!(image_path("/etc/../../x"), Err(PathError::DotDot(_))));
        assert!(matches!(image_path("/./"), Err(PathError::Root(_))));
    }

    #[test]
    fn parents_are_created_and_sorted_first() {
        let mut tree = FileTree::new();
        tree.add_file("usr/local/bin/app", Content::Bytes(Arc::from(&b"x"[..])), 0o755, 0, 0).unwrap();
        tree.add_dir("home/nonroot", 0o700, 65532, 65532).unwrap();
        let paths: Vec<_> = tree.iter().map(|(p, e)| format!("{p} {:o}", e.mode)).collect();
        assert_eq!(paths, ["home 755", "home/nonroot 700", "usr 755", "usr/local 755", "usr/local/bin 755", "usr/local/bin/app 755"]);
    }

    #[test]
    fn a_file_cannot_sit_where_a_folder_is() {
        let mut tree = FileTree::new();
        tree.add_dir("etc/app", 0o755, 0, 0).unwrap();
        let err = tree.add_file("etc/app", Content::Bytes(Arc::from(&b""[..])), 0o644, 0, 0).unwrap_err();
        assert_eq!(err.to_string(), "image path \"/etc/app\" is already a folder in the image");
        tree.add_file("etc/passwd", Content::Bytes(Arc::from(&b""[..])), 0o644, 0, 0).unwrap();
        let err = tree.add_file("etc/passwd/x", Content::Bytes(Arc::from(&b""[..])), 0o644, 0, 0).unwrap_err();
        assert_eq!(err.to_string(), "image path \"/etc/passwd\" is already a file in the image");
    }
}
