//! A blob: bytes that know their digest, size and media type, kept in memory (configs, manifests)
//! or in a staging file (layers).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::digest::Digest;

#[derive(Clone, Debug)]
pub(crate) enum BlobData {
    Memory(Arc<[u8]>),
    File(PathBuf),
}

#[derive(Clone, Debug)]
pub(crate) struct Blob {
    pub(crate) media_type: String,
    pub(crate) digest: Digest,
    pub(crate) size: u64,
    pub(crate) data: BlobData,
}

impl Blob {
    /// A blob of exactly these bytes: the digest is taken over them, and they are what gets written.
    pub(crate) fn from_bytes(media_type: &str, bytes: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.to_string(),
            digest: Digest::of(&bytes),
            size: bytes.len() as u64,
            data: BlobData::Memory(Arc::from(bytes)),
        }
    }

    pub(crate) fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        Ok(match &self.data {
            BlobData::Memory(bytes) => Box::new(io::Cursor::new(Arc::clone(bytes))),
            BlobData::File(path) => Box::new(open_file(path)?),
        })
    }

    /// Reads from `offset` on, for chunked uploads.
    pub(crate) fn open_at(&self, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        use std::io::{Seek, SeekFrom};
        Ok(match &self.data {
            BlobData::Memory(bytes) => {
                let mut cursor = io::Cursor::new(Arc::clone(bytes));
                cursor.set_position(offset);
                Box::new(cursor)
            }
            BlobData::File(path) => {
                let mut file = open_file(path)?;
                file.seek(SeekFrom::Start(offset))?;
                Box::new(file)
            }
        })
    }

    /// The bytes of an in-memory blob; `None` for a staged file.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> Option<&[u8]> {
        match &self.data {
            BlobData::Memory(bytes) => Some(bytes),
            BlobData::File(_) => None,
        }
    }
}

/// Opens a blob file for reading without following a link: a link, or anything but a regular file,
/// is an error. Blob files are regular files this program made or found in a layout, where a link
/// could point anywhere on the host (and a FIFO would block: it is opened without waiting).
pub(crate) fn open_file(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path) {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a symbolic link, which is never followed"))
        }
        Err(e) => return Err(e),
    };
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok(file)
}

/// The digest of the first `size` bytes of `file`, read in pieces.
pub(crate) fn digest_of_open_file(file: &mut File, size: u64) -> io::Result<Digest> {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    super::digest::read_file_in_pieces(&mut file.take(size), |piece| hasher.update(piece))?;
    Ok(Digest::from_hasher(hasher))
}

/// Creates `dest` with the content of `source`: a hard link when both are on one file system (blob
/// files are never written again once made), else a copy by the kernel. An existing `dest` is an
/// error, never overwritten.
pub(crate) fn link_or_copy(source: &Path, dest: &Path) -> io::Result<()> {
    match std::fs::hard_link(source, dest) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => std::fs::copy(source, dest).map(|_| ()),
    }
}

/// Asks the kernel to start writing `len` bytes of `file` from `start` to disk (`len` 0: to its
/// end), without waiting (`sync_file_range`). A later `fsync` then waits only for what is still in
/// flight. Only a hint: a file system without it (EINVAL, ESPIPE) loses nothing.
pub(crate) fn start_writeback(file: &File, start: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(start), Ok(len)) = (i64::try_from(start), i64::try_from(len)) else { return };
    // SAFETY: a plain system call on an open file descriptor, with no memory passed.
    unsafe { libc::sync_file_range(file.as_raw_fd(), start, len, libc::SYNC_FILE_RANGE_WRITE) };
}

/// Reads the whole of a small blob (a manifest or config) into memory.
pub(crate) fn read_all(blob: &Blob) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(blob.size as usize);
    blob.open()?.read_to_end(&mut bytes)?;
    Ok(bytes)
}
