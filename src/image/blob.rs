//! A blob: bytes that know their digest, size and media type, kept in memory (configs, manifests),
//! in a staging file (layers), or still in a registry ([`RemoteBlob`]: read lazily, fetched into a
//! file the first time something opens it, and mounted instead where a push goes to the registry
//! that holds it).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::digest::Digest;

#[derive(Clone, Debug)]
pub(crate) enum BlobData {
    Memory(Arc<[u8]>),
    File(PathBuf),
    /// In a registry, not fetched yet (or fetched into a file since: see [`RemoteBlob::local`]).
    Remote(Arc<RemoteBlob>),
}

/// Brings a blob of a registry to this machine: into a file whose bytes were checked against the
/// digest. Implemented by the registry client; the image module never speaks HTTP.
pub(crate) trait Fetch: Send + Sync {
    /// A file holding exactly the blob's bytes. An error of the registry client is carried inside
    /// the `io::Error` (`io::Error::other`), for the caller to take back out.
    fn fetch(&self, media_type: &str, digest: &Digest, size: u64) -> io::Result<PathBuf>;
}

/// A blob that stays in its registry until something needs its bytes: a push to another
/// repository of the same registry mounts it from `repository` (no byte leaves the registry);
/// anything else fetches it once, through `fetch`, into a file.
pub(crate) struct RemoteBlob {
    /// `host[:port]` of the registry, as [`crate::registry::Registry`] names it.
    pub(crate) registry: String,
    /// The repository path that holds it there.
    pub(crate) repository: String,
    fetch: Arc<dyn Fetch>,
    fetched: Mutex<Option<PathBuf>>,
}

impl RemoteBlob {
    pub(crate) fn new(registry: String, repository: String, fetch: Arc<dyn Fetch>) -> Self {
        RemoteBlob { registry, repository, fetch, fetched: Mutex::new(None) }
    }

    /// Whether the bytes are on this machine already.
    pub(crate) fn is_fetched(&self) -> bool {
        self.fetched.lock().expect("fetched lock").is_some()
    }

    /// The file with the blob's bytes, fetched now if not yet (once, whoever asks first; the
    /// others wait for it).
    pub(crate) fn local(&self, media_type: &str, digest: &Digest, size: u64) -> io::Result<PathBuf> {
        let mut fetched = self.fetched.lock().expect("fetched lock");
        if let Some(path) = &*fetched {
            return Ok(path.clone());
        }
        let path = self.fetch.fetch(media_type, digest, size)?;
        *fetched = Some(path.clone());
        Ok(path)
    }
}

impl std::fmt::Debug for RemoteBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteBlob").field("registry", &self.registry).field("repository", &self.repository).finish()
    }
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
            BlobData::Remote(remote) => Box::new(open_file(&remote.local(&self.media_type, &self.digest, self.size)?)?),
        })
    }

    /// The file holding the bytes: the staged file, or a remote blob's, fetched now if it was not
    /// yet. `None` for bytes in memory.
    pub(crate) fn local_file(&self) -> io::Result<Option<PathBuf>> {
        Ok(match &self.data {
            BlobData::Memory(_) => None,
            BlobData::File(path) => Some(path.clone()),
            BlobData::Remote(remote) => Some(remote.local(&self.media_type, &self.digest, self.size)?),
        })
    }

    /// The registry blob this is, when its bytes have not been needed yet.
    pub(crate) fn remote(&self) -> Option<&RemoteBlob> {
        match &self.data {
            BlobData::Remote(remote) => Some(remote),
            _ => None,
        }
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
            BlobData::File(_) | BlobData::Remote(_) => {
                let path = self.local_file()?.expect("a file");
                let mut file = open_file(&path)?;
                file.seek(SeekFrom::Start(offset))?;
                Box::new(file)
            }
        })
    }

    /// The bytes of an in-memory blob (a manifest, as the registry sent it); `None` for a file.
    pub(crate) fn bytes(&self) -> Option<&[u8]> {
        match &self.data {
            BlobData::Memory(bytes) => Some(bytes),
            BlobData::File(_) | BlobData::Remote(_) => None,
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Writes `bytes` into a new file of `dir` on each fetch, counting them.
    struct Counting {
        dir: PathBuf,
        bytes: Vec<u8>,
        fetches: AtomicUsize,
    }

    impl Fetch for Counting {
        fn fetch(&self, _: &str, _: &Digest, _: u64) -> io::Result<PathBuf> {
            let n = self.fetches.fetch_add(1, Ordering::SeqCst);
            let path = self.dir.join(format!("fetched-{n}"));
            std::fs::write(&path, &self.bytes)?;
            Ok(path)
        }
    }

    #[test]
    fn a_remote_blob_is_fetched_once_on_first_use_and_placed_like_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = b"layer bytes".to_vec();
        let fetch = Arc::new(Counting { dir: dir.path().to_path_buf(), bytes: bytes.clone(), fetches: AtomicUsize::new(0) });
        let remote = Arc::new(RemoteBlob::new("h:5000".into(), "base/img".into(), fetch.clone()));
        let blob = Blob { media_type: "m".into(), digest: Digest::of(&bytes), size: bytes.len() as u64, data: BlobData::Remote(remote) };
        let twin = blob.clone();
        assert!(!blob.remote().unwrap().is_fetched());
        assert_eq!(blob.remote().unwrap().repository, "base/img");
        assert_eq!(fetch.fetches.load(Ordering::SeqCst), 0, "nothing fetched before the bytes are needed");

        assert_eq!(read_all(&blob).unwrap(), bytes);
        let mut tail = String::new();
        twin.open_at(6).unwrap().read_to_string(&mut tail).unwrap();
        assert_eq!(tail, "bytes");
        let placed = dir.path().join("out/blob");
        std::fs::create_dir_all(placed.parent().unwrap()).unwrap();
        crate::atomic::place_blobs_atomically(&[(placed.clone(), &twin)]).unwrap();
        assert_eq!(std::fs::read(&placed).unwrap(), bytes);
        assert_eq!(fetch.fetches.load(Ordering::SeqCst), 1, "fetched once, whichever clone asks");
        assert!(twin.remote().unwrap().is_fetched());
    }
}
