//! Writes a [`FileTree`] as one layer: a deterministic tar stream, compressed, hashed twice on the
//! way (diff ID over the tar, digest over the compressed bytes), into a staging file.
//!
//! Determinism: entries in byte order of their paths, numeric owners with empty names, one mtime
//! for every entry, no atime/ctime, GNU headers (long names as GNU long-name entries, as Go and
//! GNU tar read them); an entry's extended attributes go before it in a PAX header of
//! `SCHILY.xattr.NAME` records, in name order. The file is read once, streamed; memory does not grow with its size.
//!
//! A host file is packed only if it is still the file that was planned: opened without following a
//! symlink, a regular file, of the planned size, on the planned device and inode (see [`ExactReader`]).

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest as _, Sha256};

use super::blob::{Blob, BlobData};
use super::compress::{read_some, ParallelGzip};
use super::deflate::Effort;
use super::digest::{Digest, HashingWriter};
use crate::rootfs::{Content, EntryKind, FileStamp, FileTree};

/// How layers are compressed: `--compression`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Compression {
    #[default]
    Gzip,
    Zstd,
}

spelled_enum!(Compression { Gzip => "gzip", Zstd => "zstd" });

/// Compression of large layers: libdeflate level 2, whose matches longer than 8 bytes put only
/// their first two positions into the match finder (as zlib's fast levels do): level 1's speed,
/// with a layer still smaller than umoci's, which level 1's is not (figures: benches/RESULTS.md).
pub(crate) const GZIP_EFFORT: Effort = Effort { level: 2, max_insert_length: Some(8) };
/// Compression of small layers (the base layer, config files, programs under 1 MiB): every byte
/// saved is saved in every image, but a small program's layer is compressed at every pack; level 7
/// is where higher levels start to cost much more CPU for little (figures: benches/RESULTS.md).
pub(crate) const SMALL_GZIP_EFFORT: Effort = Effort::level(7);
/// What counts as small, in uncompressed tar bytes.
const SMALL_LAYER: u64 = 1 << 20;
/// Compression of large layers of many small files (zoneinfo, `--add` folders of assets), where
/// tar headers, padding and short matches dominate and the cut-off of [`GZIP_EFFORT`] loses more
/// than it saves: level 1's match finder is faster and smaller there (figures: benches/RESULTS.md).
pub(crate) const MANY_FILES_GZIP_EFFORT: Effort = Effort::level(1);
/// A large layer whose regular files are this small on average is one of many small files.
const SMALL_FILES_MEAN: u64 = 16 << 10;
pub(crate) const ZSTD_LEVEL: i32 = 3;
const ZSTD_HINT_CAP: u64 = 16 << 20;
/// zstd's multi-threaded job. Its buffers scale with it: a round input buffer of (workers + 3)
/// jobs and an output buffer per job in flight. 4 MiB jobs peaked at 62-65 MB RSS on a 200 MiB
/// binary once files were fed in 256 KiB writes (the producer then runs ahead of the workers);
/// 2 MiB jobs peak at 35 MB, for a layer 0.14 % bigger.
const ZSTD_JOB_SIZE: u32 = 2 << 20;
const ZSTD_READ_BUFFER: usize = 256 << 10;
/// zstd's workers, at most: each costs about 12 MB of RSS at [`ZSTD_JOB_SIZE`] (a job's input and
/// output, its window and match tables). Packing a program with 200 MiB of `.rodata` peaked at 37 MB
/// with one worker and 49 MB with two (debug build), so four would pass the 64 MB bound. The output
/// is the same for any number of workers.
const ZSTD_MAX_WORKERS: usize = 2;
const TAR_BLOCK: u64 = 512;

impl Compression {
    pub(crate) fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// What a layer's media type says of its bytes: `Some(Some(c))` a tar compressed with `c`,
/// `Some(None)` a plain tar, `None` no tar layer (an artifact's payload, say). OCI and Docker
/// schema2 types alike (`…tar+gzip`, `…rootfs.diff.tar.gzip`, `…tar`).
pub(crate) fn compression_of(media_type: &str) -> Option<Option<Compression>> {
    if media_type.ends_with("gzip") {
        Some(Some(Compression::Gzip))
    } else if media_type.ends_with("zstd") {
        Some(Some(Compression::Zstd))
    } else if media_type.ends_with("tar") {
        Some(None)
    } else {
        None
    }
}

/// The tar a layer's bytes `compressed` hold, read back through the decoder `compression` names
/// (gzip with every member, as Go's readers read it).
pub(crate) fn decompressed<'a>(
    compressed: impl io::BufRead + Send + 'a,
    compression: Option<Compression>,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match compression {
        Some(Compression::Gzip) => Box::new(flate2::bufread::MultiGzDecoder::new(compressed)),
        Some(Compression::Zstd) => Box::new(zstd::stream::read::Decoder::with_buffer(compressed)?),
        None => Box::new(compressed),
    })
}

/// One layer: the blob (compressed, as scratchpack writes them; a `--base` image's may be a plain
/// tar) and what the config needs about it.
#[derive(Clone, Debug)]
pub(crate) struct Layer {
    pub(crate) blob: Blob,
    pub(crate) diff_id: Digest,
    pub(crate) uncompressed_size: u64,
    /// `None`: the blob is the tar itself.
    pub(crate) compression: Option<Compression>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum LayerError {
    #[error("{}: cannot read", path.display())]
    Source {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: changed size while it was being packed (was {planned} bytes)", path.display())]
    Changed { path: PathBuf, planned: u64 },
    /// Not the file that was planned: another file (or a link, or something else) took its place.
    #[error("{}: changed while the image was being made: it is now {now}, not the file that was planned; pack again", path.display())]
    Replaced { path: PathBuf, now: &'static str },
    #[error("the layer was no longer needed")]
    Cancelled,
    #[error("cannot write the layer to {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

type LayerFile = HashingWriter<BufWriter<EarlyWriteback>>;

enum Encoder {
    Gzip(ParallelGzip<LayerFile>),
    Zstd(zstd::stream::Encoder<'static, LayerFile>),
}

/// The layer's file, whose data the kernel is asked to start writing to disk every few MiB, while
/// the rest is still being compressed (`sync_file_range`, without waiting). A layout syncs every
/// blob before it names it; started early, the sync of a large layer no longer waits for all of
/// its data at the end (2.6 MB: ~2.7 ms of the reference pack's tail here).
struct EarlyWriteback {
    file: File,
    written: u64,
    requested: u64,
}

impl EarlyWriteback {
    const STEP: u64 = 1 << 20;

    fn new(file: File) -> Self {
        EarlyWriteback { file, written: 0, requested: 0 }
    }

    /// Asks for the writeback of everything written since the last request.
    fn request(&mut self) {
        if self.written > self.requested {
            super::blob::start_writeback(&self.file, self.requested, self.written - self.requested);
        }
        self.requested = self.written;
    }
}

impl Write for EarlyWriteback {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.file.write(buf)?;
        self.written += written as u64;
        if self.written - self.requested >= Self::STEP {
            self.request();
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// What the tar writer writes into: hashes the tar for the diff ID, then compresses.
struct LayerSink {
    diff: Sha256,
    uncompressed: u64,
    encoder: Encoder,
    /// zstd's read buffer for file data, made at the first file.
    read_buffer: Vec<u8>,
}

impl LayerSink {
    /// A file's data, `len` bytes of `reader`, and the zeros that pad it to a tar block, after
    /// the header that tar wrote. With gzip the file is read straight into the compressor's chunk
    /// buffers; going through tar's copy would take two more copies of every byte (its 8 KiB
    /// stack buffer, then the chunk).
    fn append_file_data(&mut self, reader: &mut impl Read, len: u64) -> io::Result<()> {
        let LayerSink { diff, uncompressed, encoder, read_buffer } = self;
        match encoder {
            Encoder::Gzip(gz) => gz.write_from(reader, len, |piece| diff.update(piece))?,
            Encoder::Zstd(zs) => {
                if read_buffer.is_empty() {
                    read_buffer.resize(ZSTD_READ_BUFFER, 0);
                }
                let mut remaining = len;
                while remaining > 0 {
                    let want = read_buffer.len().min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    let read = read_some(reader, &mut read_buffer[..want], remaining)?;
                    zs.write_all(&read_buffer[..read])?;
                    diff.update(&read_buffer[..read]);
                    remaining -= read as u64;
                }
            }
        }
        *uncompressed += len;
        let padding = (TAR_BLOCK - len % TAR_BLOCK) % TAR_BLOCK;
        self.write_all(&[0; TAR_BLOCK as usize][..padding as usize])
    }
}

impl Write for LayerSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = match &mut self.encoder {
            Encoder::Gzip(gz) => gz.write(buf)?,
            Encoder::Zstd(zs) => zs.write(buf)?,
        };
        self.diff.update(&buf[..written]);
        self.uncompressed += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A digest of everything the bytes of `tree`'s layer depend on: the `identity` lines (who
/// compresses, and how the key is made), the compression, the mtime, and each entry's path, mode,
/// owner and content (a hash of in-memory bytes; for a host file its size, device, inode, mtime and
/// ctime, as git's index compares). `None` if a host file cannot be examined.
pub(crate) fn inputs_key(identity: &[&str], tree: &FileTree, compression: Compression, mtime: u64) -> Option<String> {
    let mut hash = Sha256::new();
    let mut line = |text: &str| {
        hash.update(text.as_bytes());
        hash.update(b"\n");
    };
    for text in identity {
        line(text);
    }
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
        // Extended attributes (file capabilities) after the content: an entry without any keeps
        // the key it always had.
        let xattrs: String = entry.xattrs.iter().map(|(name, value)| format!(" xattr {name:?}={}", hex::encode(value))).collect();
        line(&format!("{path:?} {:o} {} {} {content}{xattrs}", entry.mode, entry.uid, entry.gid));
    }
    Some(Digest::from_hasher(hash).hex())
}

/// Writes `tree` as a layer into `staging_file`, with every entry's mtime set to `mtime`.
pub(crate) fn write_layer(tree: &FileTree, compression: Compression, mtime: u64, staging_file: &Path) -> Result<Layer, LayerError> {
    write_layer_until(tree, compression, mtime, staging_file, &AtomicBool::new(false))
}

/// [`write_layer`], given up (with [`LayerError::Cancelled`]) soon after `cancel` is set: a layer
/// started before the pack knew whether it could succeed stops when it cannot.
pub(crate) fn write_layer_until(
    tree: &FileTree,
    compression: Compression,
    mtime: u64,
    staging_file: &Path,
    cancel: &AtomicBool,
) -> Result<Layer, LayerError> {
    let write_err = |source| LayerError::Write { path: staging_file.to_path_buf(), source };
    let file = File::create(staging_file).map_err(write_err)?;
    // Small: compressed chunks (~100 KiB and up) pass straight through; it only gathers the gzip
    // header and tar's small writes to a small layer.
    let hashed = HashingWriter::new(BufWriter::with_capacity(64 << 10, EarlyWriteback::new(file)));
    let encoder = match compression {
        Compression::Gzip => {
            let effort = gzip_effort(tree);
            Encoder::Gzip(ParallelGzip::new(hashed, effort, compression_threads()).map_err(write_err)?)
        }
        Compression::Zstd => Encoder::Zstd(zstd_encoder(hashed, approximate_tar_size(tree)).map_err(write_err)?),
    };
    let sink = LayerSink { diff: Sha256::new(), uncompressed: 0, encoder, read_buffer: Vec::new() };
    let mut builder = tar::Builder::new(sink);
    for (path, entry) in tree.iter() {
        let mut header = tar::Header::new_gnu();
        header.set_mode(entry.mode);
        header.set_uid(entry.uid.into());
        header.set_gid(entry.gid.into());
        header.set_mtime(mtime);
        if !entry.xattrs.is_empty() {
            // As GNU tar, Go's archive/tar (containerd, umoci) and podman write and apply them.
            let records: Vec<(String, &[u8])> =
                entry.xattrs.iter().map(|(name, value)| (format!("SCHILY.xattr.{name}"), value.as_slice())).collect();
            builder.append_pax_extensions(records.iter().map(|(key, value)| (key.as_str(), *value))).map_err(write_err)?;
        }
        match &entry.kind {
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder.append_data(&mut header, format!("{path}/"), io::empty()).map_err(write_err)?;
            }
            EntryKind::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder.append_link(&mut header, path, target).map_err(write_err)?;
            }
            EntryKind::File(Content::Bytes(bytes)) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(bytes.len() as u64);
                builder.append_data(&mut header, path, &bytes[..]).map_err(write_err)?;
            }
            EntryKind::File(Content::HostFile { path: source, size, stamp }) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(*size);
                let mut reader = ExactReader::open(source, *size, stamp.as_ref(), cancel)?;
                // The header (and a GNU long-name entry) by tar, with no data: tar pads only the
                // bytes it copied. The data and its padding follow, straight from the file.
                let appended = builder
                    .append_data(&mut header, path, io::empty())
                    .and_then(|()| builder.get_mut().append_file_data(&mut reader, *size));
                reader.finish(appended, write_err)?;
            }
        }
    }
    let sink = builder.into_inner().map_err(write_err)?;
    let hashed = match sink.encoder {
        Encoder::Gzip(gz) => gz.finish().map_err(write_err)?,
        Encoder::Zstd(zs) => zs.finish().map_err(write_err)?,
    };
    let (buffered, digest, size) = hashed.finish();
    let mut file = buffered.into_inner().map_err(|e| write_err(e.into_error()))?;
    file.request();
    drop(file);
    Ok(Layer {
        blob: Blob { media_type: compression.media_type().to_string(), digest, size, data: BlobData::File(staging_file.to_path_buf()) },
        diff_id: Digest::from_hasher(sink.diff),
        uncompressed_size: sink.uncompressed,
        compression: Some(compression),
    })
}

/// zstd in its multi-threaded mode, whose output is the same for any number of workers (1 or more),
/// so digests do not depend on the machine. It compresses on its own threads while this one reads
/// and hashes. The size hint picks the parameters a one-shot compression of that size would use.
fn zstd_encoder<W: Write>(sink: W, size_hint: u64) -> io::Result<zstd::stream::Encoder<'static, W>> {
    use zstd::stream::raw::CParameter;
    let mut raw = zstd::stream::raw::Encoder::new(ZSTD_LEVEL)?;
    raw.set_parameter(CParameter::NbWorkers(compression_threads().min(ZSTD_MAX_WORKERS) as u32))?;
    // Capped: past a few MiB the hint no longer helps the ratio, and a large one makes the
    // multi-threaded jobs (and memory) grow with the binary.
    raw.set_parameter(CParameter::SrcSizeHint(size_hint.min(ZSTD_HINT_CAP) as u32))?;
    // Fixed job size: memory stays flat whatever the binary's size (each worker holds a job's input
    // and output), and the output does not depend on the machine.
    raw.set_parameter(CParameter::JobSize(ZSTD_JOB_SIZE))?;
    Ok(zstd::stream::Encoder::with_encoder(sink, raw))
}

/// The gzip effort for `tree`'s layer, by its size and the mean size of its files.
fn gzip_effort(tree: &FileTree) -> Effort {
    let size = approximate_tar_size(tree);
    let files = tree.iter().filter(|(_, entry)| matches!(entry.kind, EntryKind::File(_))).count() as u64;
    if size < SMALL_LAYER {
        SMALL_GZIP_EFFORT
    } else if size / files.max(1) < SMALL_FILES_MEAN {
        MANY_FILES_GZIP_EFFORT
    } else {
        GZIP_EFFORT
    }
}

/// The tar stream's size, near enough for a compression hint: headers, padded data, end blocks.
fn approximate_tar_size(tree: &FileTree) -> u64 {
    let data: u64 = tree
        .iter()
        .map(|(_, entry)| match &entry.kind {
            EntryKind::File(Content::Bytes(bytes)) => bytes.len() as u64,
            EntryKind::File(Content::HostFile { size, .. }) => *size,
            _ => 0,
        })
        .map(|size| 512 + size.div_ceil(512) * 512)
        .sum();
    data + 1024
}

/// Two workers on a 2-core machine, at most four anywhere: the main thread also reads and hashes.
/// Asked once: the answer reads the CPU affinity and cgroup quota files each time.
fn compression_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 4))
}

/// Reads exactly the planned number of bytes, and notices a file that shrank or grew meanwhile.
struct ExactReader<'a> {
    path: PathBuf,
    planned: u64,
    inner: io::Take<File>,
    error: Option<LayerError>,
    cancel: &'a AtomicBool,
}

impl<'a> ExactReader<'a> {
    /// Opens the file the plan names, never through a symlink and without blocking on a FIFO, and
    /// checks on the open file that it is the one planned: a regular file, of the planned size, and
    /// (when the plan took a stamp) on the same device with the same inode. A file swapped for a
    /// link, or renamed over, after planning is refused, not packed.
    fn open(path: &Path, planned: u64, stamp: Option<&FileStamp>, cancel: &'a AtomicBool) -> Result<Self, LayerError> {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let source_err = |source| LayerError::Source { path: path.to_path_buf(), source };
        let replaced = |now| LayerError::Replaced { path: path.to_path_buf(), now };
        let opened = File::options().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY).open(path);
        let file = match opened {
            Ok(file) => file,
            // O_NOFOLLOW's answer when the last component is a symlink.
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) && path.symlink_metadata().is_ok_and(|m| m.is_symlink()) => {
                return Err(replaced("a symlink"));
            }
            Err(e) => return Err(source_err(e)),
        };
        let metadata = file.metadata().map_err(source_err)?;
        if !metadata.is_file() {
            return Err(replaced("not a regular file"));
        }
        if stamp.is_some_and(|stamp| (stamp.dev, stamp.ino) != (metadata.dev(), metadata.ino())) {
            return Err(replaced("another file"));
        }
        if metadata.len() != planned {
            return Err(LayerError::Changed { path: path.to_path_buf(), planned });
        }
        // O_NONBLOCK was for the open only (a FIFO put in its place must not hang the pack).
        clear_nonblocking(&file).map_err(source_err)?;
        // Unbuffered: the layer reads into its own buffers, in pieces as large as they are.
        let inner = file.take(planned);
        Ok(ExactReader { path: path.to_path_buf(), planned, inner, error: None, cancel })
    }

    /// The outcome of appending the file, given what the append returned: the reader's own failure
    /// first (unreadable, cancelled, shorter than planned), else the writing side's (a full disk,
    /// say), made a `LayerError` by `write_err`, not blamed on the file.
    fn finish(mut self, appended: io::Result<()>, write_err: impl FnOnce(io::Error) -> LayerError) -> Result<(), LayerError> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        let short = self.inner.limit() != 0;
        match appended {
            // `read_some`'s error for a file that ended early.
            Err(e) if !(short && e.kind() == io::ErrorKind::UnexpectedEof) => Err(write_err(e)),
            _ if short => Err(LayerError::Changed { path: self.path, planned: self.planned }),
            _ => Ok(()),
        }
    }
}

fn clear_nonblocking(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor this function borrows open; it reads and sets status flags only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Read for ExactReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            self.error = Some(LayerError::Cancelled);
            // Not `Interrupted`: io::copy would try again.
            return Err(io::Error::other("cancelled"));
        }
        self.inner.read(buf).inspect_err(|e| {
            self.error = Some(LayerError::Source { path: self.path.clone(), source: io::Error::new(e.kind(), e.to_string()) });
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn tree() -> FileTree {
        let mut tree = FileTree::new();
        tree.add_file("etc/passwd", Content::Bytes(Arc::from(&b"root:x:0:0::/:\n"[..])), 0o644, 0, 0).unwrap();
        tree.add_dir("tmp", 0o1777, 0, 0).unwrap();
        tree.add_symlink("etc/ssl/cert.pem", "certs/ca.crt").unwrap();
        let long = format!("opt/{}/file", "d".repeat(120));
        tree.add_file(&long, Content::Bytes(Arc::from(&b"deep"[..])), 0o600, 65532, 65532).unwrap();
        tree
    }

    fn entries(layer: &Layer) -> Vec<String> {
        let BlobData::File(path) = &layer.blob.data else { panic!("layers are files") };
        let compressed = std::fs::read(path).unwrap();
        let tar_bytes = tar_bytes(layer);
        assert_eq!(Digest::of(&tar_bytes), layer.diff_id);
        assert_eq!(tar_bytes.len() as u64, layer.uncompressed_size);
        assert_eq!(Digest::of(&compressed), layer.blob.digest);
        let mut archive = tar::Archive::new(&tar_bytes[..]);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                format!(
                    "{} {:o} {}:{} m{} {:?}",
                    e.path().unwrap().display(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.mtime().unwrap(),
                    h.username().unwrap()
                )
            })
            .collect()
    }

    #[test]
    fn writes_sorted_deterministic_entries_in_both_compressions() {
        let dir = tempfile::tempdir().unwrap();
        for compression in [Compression::Gzip, Compression::Zstd] {
            let a = write_layer(&tree(), compression, 42, &dir.path().join("a")).unwrap();
            let b = write_layer(&tree(), compression, 42, &dir.path().join("b")).unwrap();
            assert_eq!(a.blob.digest, b.blob.digest);
            let listing = entries(&a);
            assert_eq!(listing[0], "etc/ 755 0:0 m42 Some(\"\")");
            assert_eq!(listing[1], "etc/passwd 644 0:0 m42 Some(\"\")");
            assert!(listing.iter().any(|l| l.starts_with(&format!("opt/{}/file 600 65532:65532", "d".repeat(120)))), "{listing:?}");
            assert!(listing.contains(&"tmp/ 1777 0:0 m42 Some(\"\")".to_string()), "{listing:?}");
            let c = write_layer(&tree(), compression, 43, &dir.path().join("c")).unwrap();
            assert_ne!(a.blob.digest, c.blob.digest);
        }
    }

    fn tar_bytes(layer: &Layer) -> Vec<u8> {
        let BlobData::File(path) = &layer.blob.data else { panic!("layers are files") };
        let compressed = std::fs::read(path).unwrap();
        match layer.compression.expect("layers written here are compressed") {
            Compression::Gzip => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&compressed[..]).read_to_end(&mut out).unwrap();
                out
            }
            Compression::Zstd => zstd::decode_all(&compressed[..]).unwrap(),
        }
    }

    #[test]
    fn host_files_read_straight_in_make_the_tar_that_tar_makes_of_their_bytes() {
        // Sizes around tar blocks and compression chunks; a long path (GNU long-name entry).
        let dir = tempfile::tempdir().unwrap();
        let chunk = crate::image::compress::CHUNK_SIZE;
        let sizes = [0, 1, 511, 512, 513, chunk - 300, chunk + 7, 2 * chunk + 1000];
        let mut from_host = FileTree::new();
        let mut from_memory = FileTree::new();
        for (i, size) in sizes.into_iter().enumerate() {
            let bytes = crate::image::compress::tests::sample(size);
            let source = dir.path().join(format!("f{i}"));
            std::fs::write(&source, &bytes).unwrap();
            let name = format!("{}/f{i}", "long".repeat(30));
            from_host.add_file(&name, Content::HostFile { path: source, size: size as u64, stamp: None }, 0o644, 0, 0).unwrap();
            from_memory.add_file(&name, Content::Bytes(Arc::from(&bytes[..])), 0o644, 0, 0).unwrap();
        }
        for compression in [Compression::Gzip, Compression::Zstd] {
            let host = write_layer(&from_host, compression, 7, &dir.path().join("host")).unwrap();
            let memory = write_layer(&from_memory, compression, 7, &dir.path().join("memory")).unwrap();
            assert_eq!(host.diff_id, memory.diff_id, "{compression:?}");
            assert_eq!(host.uncompressed_size, memory.uncompressed_size, "{compression:?}");
            assert_eq!(host.blob.digest, memory.blob.digest, "{compression:?}");
            let tar = tar_bytes(&host);
            assert_eq!(Digest::of(&tar), host.diff_id);
            assert_eq!(tar.len() as u64, host.uncompressed_size);
            let mut archive = tar::Archive::new(&tar[..]);
            let read_back: Vec<(String, Vec<u8>)> = archive
                .entries()
                .unwrap()
                .map(|e| {
                    let mut e = e.unwrap();
                    let mut data = Vec::new();
                    e.read_to_end(&mut data).unwrap();
                    (e.path().unwrap().display().to_string(), data)
                })
                .filter(|(path, _)| !path.ends_with('/'))
                .collect();
            assert_eq!(read_back.len(), sizes.len());
            for (i, (path, data)) in read_back.iter().enumerate() {
                assert_eq!(path, &format!("{}/f{i}", "long".repeat(30)));
                assert!(*data == crate::image::compress::tests::sample(sizes[i]), "{compression:?} f{i}");
            }
        }
    }

    #[test]
    fn the_effort_follows_the_size_of_the_layer_and_of_its_files() {
        let host = |size| Content::HostFile { path: PathBuf::from("/nonexistent"), size, stamp: None };
        let mut program = FileTree::new();
        program.add_file("usr/local/bin/app", host(11 << 20), 0o755, 0, 0).unwrap();
        assert_eq!(gzip_effort(&program), GZIP_EFFORT);
        let mut small_program = FileTree::new();
        small_program.add_file("usr/local/bin/app", host(900 << 10), 0o755, 0, 0).unwrap();
        assert_eq!(gzip_effort(&small_program), SMALL_GZIP_EFFORT);
        let mut zones = FileTree::new();
        for i in 0..900 {
            zones.add_file(&format!("usr/share/zoneinfo/Zone{i}"), host(2000), 0o644, 0, 0).unwrap();
        }
        assert_eq!(gzip_effort(&zones), MANY_FILES_GZIP_EFFORT);
        zones.add_file("usr/share/zoneinfo/big", host(20 << 20), 0o644, 0, 0).unwrap();
        assert_eq!(gzip_effort(&zones), GZIP_EFFORT, "mostly one large file");
    }

    #[test]
    fn early_writeback_writes_everything_and_asks_in_steps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let mut file = EarlyWriteback::new(File::create(&path).unwrap());
        let data = crate::image::compress::tests::sample(3 * EarlyWriteback::STEP as usize + 1000);
        for piece in data.chunks(300_000) {
            file.write_all(piece).unwrap();
        }
        assert_eq!(file.written, data.len() as u64);
        // Asked once 1 MiB or more is new: after the 4th and the 8th write of 300,000 bytes; the
        // 746,728 bytes after those wait for the last request.
        assert_eq!(file.requested, 2_400_000);
        file.request();
        assert_eq!(file.requested, file.written);
        drop(file);
        assert!(std::fs::read(&path).unwrap() == data);
    }

    #[test]
    fn extended_attributes_are_pax_records_of_their_entry_and_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        let with_caps = || {
            let mut tree = tree();
            tree.add_file("usr/local/bin/app", Content::Bytes(Arc::from(&b"\x7fELF"[..])), 0o755, 0, 0).unwrap();
            tree.get_mut("usr/local/bin/app").unwrap().xattrs.insert("security.capability".into(), vec![1, 0, 0, 2, 0, 4, 0, 0]);
            tree
        };
        let a = write_layer(&with_caps(), Compression::Gzip, 0, &dir.path().join("a")).unwrap();
        let b = write_layer(&with_caps(), Compression::Gzip, 0, &dir.path().join("b")).unwrap();
        assert_eq!(a.blob.digest, b.blob.digest);
        let tar = tar_bytes(&a);
        let mut archive = tar::Archive::new(&tar[..]);
        let mut found = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            if let Some(extensions) = entry.pax_extensions().unwrap() {
                for extension in extensions {
                    let extension = extension.unwrap();
                    found.push((path.clone(), extension.key().unwrap().to_string(), extension.value_bytes().to_vec()));
                }
            }
        }
        assert_eq!(
            found,
            [("usr/local/bin/app".to_string(), "SCHILY.xattr.security.capability".to_string(), vec![1, 0, 0, 2, 0, 4, 0, 0])]
        );
        let plain = write_layer(&tree(), Compression::Gzip, 0, &dir.path().join("c")).unwrap();
        assert_ne!(plain.diff_id, a.diff_id);
    }

    #[test]
    fn a_full_disk_is_a_write_error_not_a_changed_file() {
        // /dev/full takes the layer's first bytes into its buffer and fails every write after.
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("bin");
        std::fs::write(&source, crate::image::compress::tests::sample(3 << 20)).unwrap();
        let mut tree = FileTree::new();
        tree.add_file("app", Content::HostFile { path: source, size: 3 << 20, stamp: None }, 0o755, 0, 0).unwrap();
        for compression in [Compression::Gzip, Compression::Zstd] {
            let err = write_layer(&tree, compression, 0, Path::new("/dev/full")).unwrap_err();
            assert!(matches!(&err, LayerError::Write { path, .. } if path == Path::new("/dev/full")), "{compression:?}: {err}");
        }
    }

    #[test]
    fn a_planned_file_that_became_a_link_a_fifo_or_another_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("conf");
        std::fs::write(&source, b"12345").unwrap();
        let stamp = crate::rootfs::FileStamp::of(&std::fs::symlink_metadata(&source).unwrap());
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"SECRT").unwrap();
        let layer_of = |stamp| {
            let mut tree = FileTree::new();
            tree.add_file("conf", Content::HostFile { path: source.clone(), size: 5, stamp }, 0o644, 0, 0).unwrap();
            write_layer(&tree, Compression::Gzip, 0, &dir.path().join("l")).map(|_| ()).map_err(|e| e.to_string())
        };
        let message = |now| {
            Err(format!(
                "{}: changed while the image was being made: it is now {now}, not the file that was planned; pack again",
                source.display()
            ))
        };
        std::fs::rename(&source, dir.path().join("planned")).unwrap();
        std::os::unix::fs::symlink(&outside, &source).unwrap();
        assert_eq!(layer_of(Some(stamp)), message("a symlink"));
        assert_eq!(layer_of(None), message("a symlink"), "without a stamp too");
        std::fs::remove_file(&source).unwrap();
        // Opened without O_NONBLOCK, a FIFO would hang the pack here.
        let fifo = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(source.as_os_str())).unwrap();
        // SAFETY: a NUL-terminated path that lives across the call.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert_eq!(layer_of(Some(stamp)), message("not a regular file"));
        std::fs::remove_file(&source).unwrap();
        std::fs::copy(&outside, &source).unwrap();
        assert_eq!(layer_of(Some(stamp)), message("another file"));
        std::fs::rename(dir.path().join("planned"), &source).unwrap();
        assert_eq!(layer_of(Some(stamp)), Ok(()), "the planned file, back in place, is packed");
    }

    #[test]
    fn a_file_that_changed_size_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("bin");
        std::fs::write(&source, b"12345").unwrap();
        let mut tree = FileTree::new();
        tree.add_file("app", Content::HostFile { path: source.clone(), size: 3, stamp: None }, 0o755, 0, 0).unwrap();
        let err = write_layer(&tree, Compression::Gzip, 0, &dir.path().join("l")).unwrap_err();
        assert!(matches!(err, LayerError::Changed { planned: 3, .. }), "{err}");
    }
}
