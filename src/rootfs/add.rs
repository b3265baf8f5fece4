//! `--add SRC:DEST[:MODE[:UID[:GID]]]`: extra host files and folders placed into the image.
//!
//! Reads only what was named: a folder is walked without following symlinks (each folder opened
//! relative to its parent's descriptor), and a symlink inside it is kept as a link only when it
//! points inside that folder. Image paths are normalised, so no `..` and no host path reaches the
//! tar. Names and link targets must be UTF-8, as image paths are: one that is not is refused by name
//! (converted, `a\xff` and `a\xfe` would become one file). Modes are normalised too (0755 for
//! executables and folders, 0644 otherwise, or MODE for files), and the owner is root unless
//! UID[:GID] names one (for the files and folders of a folder too), never the host file's: the layer
//! does not depend on who ran the build.

use std::fs::File;
use std::path::{Component, Path, PathBuf};

use super::{image_path, Content, FileStamp, FileTree, PathError};

/// One parsed `--add` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AddSpec {
    pub(crate) source: PathBuf,
    /// As given: absolute; a trailing `/` means "into this folder".
    pub(crate) dest: String,
    pub(crate) mode: Option<u32>,
    /// UID and GID, when given.
    pub(crate) owner: Option<(u32, u32)>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum AddError {
    #[error(
        "expected SRC:DEST[:MODE[:UID[:GID]]], with DEST an absolute path in the image, MODE octal (empty for the default) and UID, GID numbers"
    )]
    Syntax { spec: String },
    #[error("--add {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--add {}: not a regular file, folder or symlink", path.display())]
    Special { path: PathBuf },
    #[error("--add {}: symlink to {target:?} points outside {}", path.display(), root.display())]
    EscapingLink { path: PathBuf, target: String, root: PathBuf },
    /// A name, or a symlink's target, that is not UTF-8: image paths are UTF-8 (lossy, two such
    /// names could become one and a file be dropped), so it is refused, shown with its bytes escaped.
    #[error("{}: {what} {text} is not UTF-8; image paths must be UTF-8", path.display())]
    NotUtf8 { path: PathBuf, what: &'static str, text: String },
    /// A folder that became something else (a symlink, say) between being listed in its parent and
    /// being opened: what would be listed is not what was named.
    #[error("{}: changed while the image was being planned: it is no longer the folder that was listed; pack again", path.display())]
    Changed { path: PathBuf },
    #[error("--add {}", source_path.display())]
    Dest {
        source_path: PathBuf,
        #[source]
        source: PathError,
    },
}

impl AddError {
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            AddError::NotUtf8 { what: "file name", .. } => Some("rename the file (or leave it out of the folder)".into()),
            AddError::NotUtf8 { .. } => Some("point the symlink at a UTF-8 name".into()),
            _ => None,
        }
    }
}

/// `name` as UTF-8, else the error that names it escaped, with `path` (its folder, or the link whose
/// target it is).
fn utf8<'n>(name: &'n std::ffi::OsStr, path: &Path, what: &'static str) -> Result<&'n str, AddError> {
    name.to_str().ok_or_else(|| AddError::NotUtf8 { path: path.to_path_buf(), what, text: format!("{name:?}") })
}

/// A MODE, and a UID and GID, each when given.
pub(crate) type ModeAndOwner = (Option<u32>, Option<(u32, u32)>);

/// The `[:MODE[:UID[:GID]]]` fields of `--add` and `--mkdir`: MODE octal (empty: the default), UID
/// and GID numbers; a UID without GID gives that number to both (as Docker's `--chown` does), a
/// GID without UID means root's UID. `None` when a field is not that.
pub(crate) fn mode_and_owner(fields: &[&str]) -> Option<ModeAndOwner> {
    let number = |text: &str| -> Option<Option<u32>> {
        match text {
            "" => Some(None),
            _ if text.bytes().all(|b| b.is_ascii_digit()) => text.parse().ok().map(Some),
            _ => None,
        }
    };
    let (mode, uid, gid) = match fields {
        [] => ("", "", ""),
        [mode] => (*mode, "", ""),
        [mode, uid] => (*mode, *uid, ""),
        [mode, uid, gid] => (*mode, *uid, *gid),
        _ => return None,
    };
    let mode = match mode {
        "" => None,
        _ => Some(u32::from_str_radix(mode, 8).ok().filter(|m| *m <= 0o7777 && !mode.starts_with('+'))?),
    };
    let owner = match (number(uid)?, number(gid)?) {
        (None, None) => None,
        (Some(uid), None) => Some((uid, uid)),
        (uid, Some(gid)) => Some((uid.unwrap_or(0), gid)),
    };
    Some((mode, owner))
}

impl std::str::FromStr for AddSpec {
    type Err = AddError;

    fn from_str(spec: &str) -> Result<Self, AddError> {
        let syntax = || AddError::Syntax { spec: spec.to_string() };
        let parts: Vec<&str> = spec.split(':').collect();
        let [source, dest, rest @ ..] = parts.as_slice() else { return Err(syntax()) };
        let (mode, owner) = mode_and_owner(rest).ok_or_else(syntax)?;
        if source.is_empty() || !dest.starts_with('/') {
            return Err(syntax());
        }
        Ok(AddSpec { source: PathBuf::from(source), dest: dest.to_string(), mode, owner })
    }
}

/// Plans every `--add` into one tree, in the order given (a later file wins over an earlier one).
#[cfg(test)]
pub(crate) fn plan(specs: &[AddSpec]) -> Result<FileTree, AddError> {
    let mut tree = FileTree::new();
    for spec in specs {
        add_one(&mut tree, spec)?;
    }
    Ok(tree)
}

/// One `--add` as a tree of its own, and the image path (without the leading `/`) it placed: that
/// path and what is below it are what the spec made; the folders above it only hold it.
pub(crate) fn plan_one(spec: &AddSpec) -> Result<(FileTree, String), AddError> {
    let mut tree = FileTree::new();
    let dest = add_one(&mut tree, spec)?;
    Ok((tree, dest))
}

/// Adds `spec` to `tree`; returns the image path it placed.
fn add_one(tree: &mut FileTree, spec: &AddSpec) -> Result<String, AddError> {
    let (uid, gid) = spec.owner.unwrap_or((0, 0));
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AddError::Read { path, source }
    };
    let dest_err = |source| AddError::Dest { source_path: spec.source.clone(), source };
    let metadata = std::fs::symlink_metadata(&spec.source).map_err(read_err(&spec.source))?;
    let mut dest = image_path(&spec.dest).map_err(dest_err)?;
    if metadata.is_file() {
        if spec.dest.ends_with('/') {
            let name = spec.source.file_name().ok_or_else(|| AddError::Syntax { spec: spec.dest.clone() })?;
            dest = format!("{dest}/{}", name.to_string_lossy());
        }
        add_file(tree, &spec.source, &metadata, &dest, spec.mode, (uid, gid)).map_err(dest_err)?;
        return Ok(dest);
    }
    if !metadata.is_dir() {
        // A symlink named directly is followed: the user named it. The plan holds the real file,
        // which the layer opens without following links, so a link put in its place later is refused.
        let real = std::fs::canonicalize(&spec.source).map_err(read_err(&spec.source))?;
        let target_meta = std::fs::symlink_metadata(&real).map_err(read_err(&spec.source))?;
        if target_meta.is_file() {
            add_file(tree, &real, &target_meta, &dest, spec.mode, (uid, gid)).map_err(dest_err)?;
            return Ok(dest);
        }
        return Err(AddError::Special { path: spec.source.clone() });
    }
    tree.add_dir(&dest, 0o755, uid, gid).map_err(dest_err)?;
    let handle = open_folder(None, &spec.source, libc::O_NOFOLLOW).map_err(read_err(&spec.source))?;
    if !same_file(&handle, &metadata) {
        return Err(AddError::Changed { path: spec.source.clone() });
    }
    let mut walk_of = Walk::new(&spec.source, spec.mode, Escaping::Refuse, None);
    walk_of.owner = (uid, gid);
    walk(&mut walk_of, tree, &spec.source, &handle, &dest)?;
    Ok(dest)
}

/// Opens a folder to list it: `name` in `parent` (relative to that open folder, never through a
/// symlink), or a path. `flags`: more flags (`O_NOFOLLOW`).
fn open_folder(parent: Option<&File>, name: &Path, flags: i32) -> std::io::Result<File> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let name = std::ffi::CString::new(name.as_os_str().as_encoded_bytes())?;
    let at = parent.map_or(libc::AT_FDCWD, |parent| parent.as_raw_fd());
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NONBLOCK | flags;
    // SAFETY: a NUL-terminated name that outlives the call; the descriptor returned is owned here.
    let fd = unsafe { libc::openat(at, name.as_ptr(), flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Whether the open `file` is the one `metadata` describes (device and inode).
fn same_file(file: &File, metadata: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    file.metadata().is_ok_and(|open| (open.dev(), open.ino()) == (metadata.dev(), metadata.ino()))
}

/// The entries of an open folder, in byte order of their names. Listed through the descriptor
/// (`/proc/self/fd`), so a folder swapped for a link meanwhile cannot be listed instead; where
/// `/proc` is not mounted, by `path`. Each entry's metadata is then read relative to the folder
/// listed (as `fstatat` does), not through its path.
fn sorted_listing_of(handle: &File, path: &Path) -> std::io::Result<Vec<std::fs::DirEntry>> {
    use std::os::fd::AsRawFd;
    match sorted_listing(Path::new(&format!("/proc/self/fd/{}", handle.as_raw_fd()))) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !Path::new("/proc/self/fd").exists() => sorted_listing(path),
        listed => listed,
    }
}

/// What to do with a symlink that points outside the folder being added.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Escaping {
    /// `--add`: the user named the folder; a link out of it is an error they must see.
    Refuse,
    /// A system folder (zoneinfo): links out of it (`localtime -> /etc/localtime`) describe the
    /// build machine, not the image, and are left out.
    Skip,
}

/// A system folder planned whole: its tree, and each folder in it (itself included) as it was
/// listed. With the files' stamps in the tree, they tell a later pack whether anything changed
/// (see `LayerCache::unchanged_folder_layer`).
pub(crate) struct SystemFolder {
    pub(crate) tree: FileTree,
    pub(crate) folders: Vec<FolderStamp>,
    /// When the walk began: a stamp this recent (or later) may hide a second change in its tick.
    pub(crate) started: std::time::SystemTime,
}

/// A folder's stamp, taken before it was listed, and the digest of that listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FolderStamp {
    pub(crate) path: PathBuf,
    pub(crate) stamp: FileStamp,
    /// [`listing_digest`] of its entries.
    pub(crate) listing: String,
}

/// The digest (SHA-256, hex) of a folder's entries: each name and kind (folder, file, link,
/// other), in byte order of the names. Catches a renamed, added or removed entry even where the
/// folder's time stamps cannot move (read-only images built with fixed times).
pub(crate) fn listing_digest(dir: &Path) -> std::io::Result<String> {
    digest_of_listing(&sorted_listing(dir)?)
}

/// A folder's entries, in byte order of their names.
fn sorted_listing(dir: &Path) -> std::io::Result<Vec<std::fs::DirEntry>> {
    let mut children = std::fs::read_dir(dir)?.collect::<std::io::Result<Vec<_>>>()?;
    // Each name copied once: `sort_by_key` would copy two for every comparison.
    children.sort_by_cached_key(|entry| entry.file_name());
    Ok(children)
}

/// Entries sorted by name. A name holds no `/` and no NUL, so `name/kind` lines cannot run together.
fn digest_of_listing(sorted: &[std::fs::DirEntry]) -> std::io::Result<String> {
    use sha2::Digest as _;
    let mut hash = sha2::Sha256::new();
    for entry in sorted {
        let file_type = entry.file_type()?;
        let kind = match () {
            _ if file_type.is_dir() => b'd',
            _ if file_type.is_file() => b'f',
            _ if file_type.is_symlink() => b'l',
            _ => b'o',
        };
        hash.update(std::os::unix::ffi::OsStrExt::as_bytes(entry.file_name().as_os_str()));
        hash.update([b'/', kind, b'\n']);
    }
    Ok(hex::encode(hash.finalize()))
}

/// A system folder copied whole, as zoneinfo is: like `--add`, but links out of it are left out.
pub(crate) fn plan_system_folder(source: &Path, dest: &str) -> Result<SystemFolder, AddError> {
    let mut tree = FileTree::new();
    let dest_path = image_path(dest).map_err(|source_err| AddError::Dest { source_path: source.to_path_buf(), source: source_err })?;
    tree.add_dir(&dest_path, 0o755, 0, 0).map_err(|e| AddError::Dest { source_path: source.to_path_buf(), source: e })?;
    let started = std::time::SystemTime::now();
    // The folder found for the image (a link to it is followed); below it, no link is.
    let handle = open_folder(None, source, 0).map_err(|e| AddError::Read { path: source.to_path_buf(), source: e })?;
    let mut walk_of = Walk::new(source, None, Escaping::Skip, Some(Vec::new()));
    walk(&mut walk_of, &mut tree, source, &handle, &dest_path)?;
    Ok(SystemFolder { tree, folders: walk_of.folders.unwrap_or_default(), started })
}

/// One walk of a folder added whole.
struct Walk<'a> {
    root: &'a Path,
    mode: Option<u32>,
    /// Of every file and folder below the root.
    owner: (u32, u32),
    escaping: Escaping,
    /// Where to note each folder's stamp and listing, if wanted.
    folders: Option<Vec<FolderStamp>>,
    /// Called with each folder about to be opened below the root: lets a test change it then.
    #[cfg(test)]
    before_opening: Option<BeforeOpening>,
}

/// A test's hook into a walk: see `Walk::before_opening`.
#[cfg(test)]
type BeforeOpening = Box<dyn FnMut(&Path)>;

impl<'a> Walk<'a> {
    fn new(root: &'a Path, mode: Option<u32>, escaping: Escaping, folders: Option<Vec<FolderStamp>>) -> Self {
        Walk {
            root,
            mode,
            owner: (0, 0),
            escaping,
            folders,
            #[cfg(test)]
            before_opening: None,
        }
    }
}

/// Walks the folder `dir`, open as `handle`; each folder below it is opened relative to its parent's
/// descriptor, never through a symlink.
fn walk(ctx: &mut Walk, tree: &mut FileTree, dir: &Path, handle: &File, dest: &str) -> Result<(), AddError> {
    let Walk { root, mode, owner, escaping, .. } = *ctx;
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AddError::Read { path, source }
    };
    // Before the listing: a change made while it is read moves the stamp past this one.
    let stamp = match ctx.folders {
        Some(_) => Some(FileStamp::of(&handle.metadata().map_err(read_err(dir))?)),
        None => None,
    };
    let children = sorted_listing_of(handle, dir).map_err(read_err(dir))?;
    if let (Some(folders), Some(stamp)) = (&mut ctx.folders, stamp) {
        let listing = digest_of_listing(&children).map_err(read_err(dir))?;
        folders.push(FolderStamp { path: dir.to_path_buf(), stamp, listing });
    }
    for entry in children {
        let name = entry.file_name();
        let child = dir.join(&name);
        let child_dest = format!("{dest}/{}", utf8(&name, dir, "file name")?);
        let dest_err = |source| AddError::Dest { source_path: child.clone(), source };
        // The kind from the folder listing where the file system gives it (no stat for folders and
        // links); only regular files are stat-ed, relative to the open folder.
        let file_type = match entry.file_type() {
            Ok(file_type) => file_type,
            Err(_) => entry.metadata().map_err(read_err(&child))?.file_type(),
        };
        if file_type.is_dir() {
            tree.add_dir(&child_dest, 0o755, owner.0, owner.1).map_err(dest_err)?;
            #[cfg(test)]
            if let Some(hook) = &mut ctx.before_opening {
                hook(&child);
            }
            let child_handle = match open_folder(Some(handle), Path::new(&name), libc::O_NOFOLLOW) {
                Ok(child_handle) => child_handle,
                // Listed as a folder, now a symlink (ELOOP) or something else (ENOTDIR).
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                    return Err(AddError::Changed { path: child.clone() });
                }
                Err(e) => return Err(read_err(&child)(e)),
            };
            walk(ctx, tree, &child, &child_handle, &child_dest)?;
        } else if file_type.is_file() {
            let metadata = entry.metadata().map_err(read_err(&child))?;
            add_file(tree, &child, &metadata, &child_dest, mode, owner).map_err(dest_err)?;
        } else if file_type.is_symlink() {
            let target = std::fs::read_link(&child).map_err(read_err(&child))?;
            let target_text = utf8(target.as_os_str(), &child, "symlink target")?.to_string();
            let inside = child.parent().expect("child of a folder").join(&target);
            if target.is_absolute() || !stays_inside(root, &inside) {
                if escaping == Escaping::Skip {
                    continue;
                }
                return Err(AddError::EscapingLink { path: child.clone(), target: target_text, root: root.to_path_buf() });
            }
            tree.add_symlink(&child_dest, &target_text).map_err(dest_err)?;
        } else {
            return Err(AddError::Special { path: child.clone() });
        }
    }
    Ok(())
}

fn add_file(
    tree: &mut FileTree,
    source: &Path,
    metadata: &std::fs::Metadata,
    dest: &str,
    mode: Option<u32>,
    (uid, gid): (u32, u32),
) -> Result<(), PathError> {
    use std::os::unix::fs::PermissionsExt;
    let executable = metadata.permissions().mode() & 0o111 != 0;
    let mode = mode.unwrap_or(if executable { 0o755 } else { 0o644 });
    let content = Content::host_file(source.to_path_buf(), metadata);
    tree.add_file(dest, content, mode, uid, gid)
}

/// Whether `path`, with `..` resolved lexically, stays under `root`.
fn stays_inside(root: &Path, path: &Path) -> bool {
    let mut resolved: Vec<Component> = Vec::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                if resolved.pop().is_none() {
                    return false;
                }
            }
            Component::CurDir => {}
            other => resolved.push(other),
        }
    }
    let resolved: PathBuf = resolved.iter().collect();
    let root: PathBuf = root.components().filter(|c| !matches!(c, Component::CurDir)).collect();
    resolved.starts_with(&root) && resolved != root
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::EntryKind;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn parses_specs() {
        let spec: AddSpec = "conf/app.toml:/etc/app/app.toml:0600".parse().unwrap();
        assert_eq!(spec, AddSpec { source: "conf/app.toml".into(), dest: "/etc/app/app.toml".into(), mode: Some(0o600), owner: None });
        let spec: AddSpec = "static:/srv/".parse().unwrap();
        assert_eq!((spec.mode, spec.owner), (None, None));
        let owned = |text: &str| text.parse::<AddSpec>().map(|spec| (spec.mode, spec.owner)).map_err(|e| e.to_string());
        assert_eq!(owned("key.pem:/etc/app/key.pem:0640:0:65532"), Ok((Some(0o640), Some((0, 65532)))));
        assert_eq!(owned("data:/var/lib/app::65532:65532"), Ok((None, Some((65532, 65532)))));
        assert_eq!(owned("data:/var/lib/app::1000"), Ok((None, Some((1000, 1000)))), "a UID alone is the GID too");
        assert_eq!(owned("data:/var/lib/app:::1000"), Ok((None, Some((0, 1000)))), "a GID alone: root's UID");
        assert_eq!(owned("data:/var/lib/app:0700::"), Ok((Some(0o700), None)));
        assert_eq!(owned("data:/var/lib/app:"), Ok((None, None)));
        for bad in [
            "only",
            "a:relative",
            "a:/b:999",
            "a:/b:7:x",
            ":/x",
            "a:/b:0644:1:2:3",
            "a:/b::nonroot",
            "a:/b::-1",
            "a:/b::4294967296",
            "a:/b:+644",
        ] {
            assert_eq!(
                owned(bad),
                Err("expected SRC:DEST[:MODE[:UID[:GID]]], with DEST an absolute path in the image, MODE octal (empty for the default) and UID, GID numbers".into()),
                "{bad}"
            );
        }
    }

    #[test]
    fn folders_are_walked_with_normalised_modes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("site");
        std::fs::create_dir_all(src.join("css")).unwrap();
        std::fs::write(src.join("index.html"), "hi").unwrap();
        std::fs::write(src.join("css/run.sh"), "#!/bin/sh").unwrap();
        std::fs::set_permissions(src.join("css/run.sh"), std::fs::Permissions::from_mode(0o700)).unwrap();
        symlink("index.html", src.join("home.html")).unwrap();
        let spec = AddSpec { source: src.clone(), dest: "/srv/site".into(), mode: None, owner: None };
        let tree = plan(&[spec]).unwrap();
        let listing: Vec<String> = tree
            .iter()
            .map(|(p, e)| match &e.kind {
                EntryKind::Symlink(t) => format!("{p} -> {t}"),
                _ => format!("{p} {:o}", e.mode),
            })
            .collect();
        assert_eq!(
            listing,
            [
                "srv 755",
                "srv/site 755",
                "srv/site/css 755",
                "srv/site/css/run.sh 755",
                "srv/site/home.html -> index.html",
                "srv/site/index.html 644"
            ]
        );
    }

    #[test]
    fn links_out_of_the_folder_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("data");
        std::fs::create_dir(&src).unwrap();
        symlink("../../etc/shadow", src.join("evil")).unwrap();
        let err = plan(&[AddSpec { source: src.clone(), dest: "/data".into(), mode: None, owner: None }]).unwrap_err();
        assert!(matches!(err, AddError::EscapingLink { .. }), "{err}");
        std::fs::remove_file(src.join("evil")).unwrap();
        symlink("/etc/passwd", src.join("abs")).unwrap();
        let err = plan(&[AddSpec { source: src, dest: "/data".into(), mode: None, owner: None }]).unwrap_err();
        assert!(err.to_string().contains("points outside"), "{err}");
    }

    #[test]
    fn a_folder_swapped_for_a_link_after_its_parent_was_listed_is_not_walked() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("data");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/ok"), "ok").unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), "secret").unwrap();
        let mut tree = FileTree::new();
        let handle = open_folder(None, &src, libc::O_NOFOLLOW).unwrap();
        let mut walk_of = Walk::new(&src, None, Escaping::Refuse, None);
        let swapped = src.join("sub");
        let (from, to) = (outside.clone(), dir.path().join("sub.old"));
        walk_of.before_opening = Some(Box::new(move |folder: &Path| {
            assert_eq!(folder, swapped);
            std::fs::rename(folder, &to).unwrap();
            symlink(&from, folder).unwrap();
        }));
        let err = walk(&mut walk_of, &mut tree, &src, &handle, "data").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: changed while the image was being planned: it is no longer the folder that was listed; pack again",
                src.join("sub").display()
            )
        );
        assert!(tree.iter().all(|(path, _)| !path.ends_with("secret")));
    }

    #[test]
    fn dest_with_dotdot_is_refused_and_trailing_slash_means_into() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.toml");
        std::fs::write(&file, "x=1").unwrap();
        let err = plan(&[AddSpec { source: file.clone(), dest: "/etc/../../x".into(), mode: None, owner: None }]).unwrap_err();
        let message = format!("{:#}", anyhow::Error::new(err));
        assert!(message.ends_with("image path \"/etc/../../x\" must not contain '..'"), "{message}");
        let tree = plan(&[AddSpec { source: file, dest: "/etc/app/".into(), mode: Some(0o600), owner: None }]).unwrap();
        assert_eq!(tree.get("etc/app/app.toml").unwrap().mode, 0o600);
    }
}
