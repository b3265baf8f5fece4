//! Files replaced whole: written under a temporary name beside their place, synced, then renamed
//! over it, so that a reader sees the old file or the new one, never a part. An interrupt or an
//! error removes the temporary file.
//!
//! Owns only that sequence. What goes into the files is the callers' (layouts, archives, SBOMs).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::image::{Blob, BlobData};

/// A file that could not be written, with what was being done to it.
#[derive(Debug, thiserror::Error)]
#[error("{}: {action}", path.display())]
pub(crate) struct FileError {
    pub(crate) path: PathBuf,
    pub(crate) action: &'static str,
    #[source]
    pub(crate) source: std::io::Error,
}

impl FileError {
    pub(crate) fn hint(&self) -> Option<String> {
        (self.action == LINK_ACTION).then(|| {
            "name the file itself, not a link to it; a link is written through only to a character device or FIFO (oci-archive:/dev/stdout)"
                .into()
        })
    }

    /// For `map_err`: the error of doing `action` to `path`.
    pub(crate) fn at(path: impl Into<PathBuf>, action: &'static str) -> impl FnOnce(std::io::Error) -> FileError {
        let path = path.into();
        move |source| FileError { path, action, source }
    }
}

fn folder_and_name(path: &Path) -> (&Path, String) {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    (dir, name)
}

/// The action of the error for an output that is a link to something it cannot write through.
const LINK_ACTION: &str = "refusing to replace a symbolic link";

/// Writes a file next to its final place and renames it over, so readers see the old or the new
/// file, never a part. The temporary file is removed if anything fails. A file replaced keeps its
/// mode and owner.
///
/// A character device or FIFO (`/dev/stdout`, a named pipe), or a link to one, is written through
/// as it is: there is nothing to rename over. A link to anything else is refused, naming its target:
/// renaming over the link would replace it, and writing through it could reach any file.
pub(crate) fn write_atomically(path: &Path, write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>) -> Result<(), FileError> {
    let existing = match std::fs::symlink_metadata(path) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(FileError::at(path, "cannot read")(e)),
    };
    if let Some(meta) = existing.as_ref().filter(|meta| meta.file_type().is_symlink() || is_stream(meta)) {
        let target = match meta.file_type().is_symlink() {
            true => std::fs::metadata(path).ok(),
            false => Some(meta.clone()),
        };
        if !target.as_ref().is_some_and(is_stream) {
            let pointee = std::fs::read_link(path).map(|target| target.display().to_string()).unwrap_or_else(|_| "?".into());
            let what = if target.is_some() { "which is not a character device or FIFO" } else { "which does not exist" };
            return Err(FileError {
                path: path.to_path_buf(),
                action: LINK_ACTION,
                source: std::io::Error::other(format!("it points to {pointee}, {what}")),
            });
        }
        let mut file = std::fs::OpenOptions::new().write(true).open(path).map_err(FileError::at(path, "cannot open"))?;
        return write(&mut file).map_err(FileError::at(path, "cannot write"));
    }
    let (dir, name) = folder_and_name(path);
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(FileError::at(dir, "cannot create a temporary file"))?;
    let _guard = crate::cleanup::register(temp.path());
    match existing.filter(std::fs::Metadata::is_file) {
        // The file replaced keeps its owner (where this user may give it) and then its mode.
        Some(old) => {
            use std::os::unix::fs::MetadataExt;
            match std::os::unix::fs::fchown(temp.as_file(), Some(old.uid()), Some(old.gid())) {
                Err(e) if e.raw_os_error() != Some(libc::EPERM) => return Err(FileError::at(temp.path(), "cannot set the owner of")(e)),
                _ => {}
            }
            temp.as_file().set_permissions(old.permissions()).map_err(FileError::at(temp.path(), "cannot set the mode of"))?;
        }
        // Like any file a user creates: readable by all (tempfile starts at 0600).
        None => temp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(FileError::at(temp.path(), "cannot set the mode of"))?,
    }
    write(temp.as_file_mut()).map_err(FileError::at(temp.path(), "cannot write"))?;
    temp.as_file().sync_all().map_err(FileError::at(temp.path(), "cannot sync"))?;
    temp.persist(path).map_err(|e| FileError { path: path.to_path_buf(), action: "cannot replace", source: e.error })?;
    Ok(())
}

fn is_stream(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_char_device() || meta.file_type().is_fifo()
}

/// Whether writing `path` (followed through links) writes to this process's standard output: then
/// stdout must carry nothing else.
pub(crate) fn is_stdout(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(target) = std::fs::metadata(path) else { return false };
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat on descriptor 1 fills the struct it is given; it is read only if fstat succeeded.
    let stat = unsafe {
        if libc::fstat(1, stat.as_mut_ptr()) != 0 {
            return false;
        }
        stat.assume_init()
    };
    target.dev() == stat.st_dev && target.ino() == stat.st_ino
}

/// Puts blobs at their paths as `write_atomically` does, syncing them together. Each goes under a
/// temporary name first: a staged layer as a hard link when it sits on the same file system (no
/// copy: staged files are never written again), else a copy by the kernel (`copy_file_range`); an
/// in-memory blob is written. Then all are synced (the writeback of every one started before the
/// first sync waits, so that the waits overlap) and renamed into place. The temporary files are
/// removed if anything fails.
pub(crate) fn place_blobs_atomically(blobs: &[(PathBuf, &Blob)]) -> Result<(), FileError> {
    let mut temps = Vec::new();
    for (path, blob) in blobs {
        let (dir, name) = folder_and_name(path);
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .make_in(dir, |temp| match &blob.data {
                BlobData::File(source) => crate::image::blob::link_or_copy(source, temp),
                BlobData::Remote(_) => crate::image::blob::link_or_copy(&blob.local_file()?.expect("a file"), temp),
                BlobData::Memory(bytes) => {
                    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(temp)?;
                    file.write_all(bytes)
                }
            })
            .map_err(FileError::at(dir, "cannot create a temporary file"))?;
        let guard = crate::cleanup::register(temp.path());
        temps.push((path, temp, guard));
    }
    let mut opened = Vec::with_capacity(temps.len());
    for (_, temp, _) in &temps {
        let file = std::fs::File::open(temp.path()).map_err(FileError::at(temp.path(), "cannot sync"))?;
        crate::image::blob::start_writeback(&file, 0, 0);
        opened.push(file);
    }
    for ((_, temp, _), file) in temps.iter().zip(&opened) {
        file.sync_all().map_err(FileError::at(temp.path(), "cannot sync"))?;
    }
    for (path, temp, _guard) in temps {
        temp.persist(path).map_err(|e| FileError { path: path.to_path_buf(), action: "cannot replace", source: e.error })?;
    }
    Ok(())
}
