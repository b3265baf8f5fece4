//! Small files that options name (`--extra-ca`, `--ca-bundle PATH`, `--registry-ca`, the auth
//! file), read whole into memory: only regular files, and only up to a cap.
//!
//! Owns only that rule. A device (`/dev/zero`), a FIFO or a socket is refused before any byte is
//! read, so nothing grows without bound and nothing blocks; a file growing while it is read is
//! still read no further than its cap. What the bytes mean is the callers'. Files streamed into
//! layers (`--add`) and the memory-mapped program are not read here.

use std::io::{Error, ErrorKind, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The cap for PEM files: a bundle of every public root is about 220 KB.
pub(crate) const PEM_CAP: u64 = 4 << 20;
/// The cap for registry auth files (docker's `config.json`, podman's `auth.json`).
pub(crate) const AUTH_FILE_CAP: u64 = 4 << 20;

/// Reads `path` whole, when it is a regular file (after following links) of at most `cap` bytes.
/// The errors say what is wrong without the path, which the callers' errors name.
pub(crate) fn read(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    check(&std::fs::metadata(path)?, cap)?;
    // The file may be swapped between the look and the open: O_NONBLOCK keeps a FIFO from
    // blocking the open, O_NOCTTY keeps a terminal from becoming ours, and the opened file is
    // looked at again.
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path)?;
    check(&file.metadata()?, cap)?;
    let mut bytes = Vec::new();
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(too_large(cap));
    }
    Ok(bytes)
}

fn check(metadata: &std::fs::Metadata, cap: u64) -> std::io::Result<()> {
    let kind = metadata.file_type();
    let other = match () {
        _ if kind.is_file() => None,
        _ if kind.is_dir() => Some("a folder"),
        _ if kind.is_char_device() => Some("a character device"),
        _ if kind.is_block_device() => Some("a block device"),
        _ if kind.is_fifo() => Some("a FIFO"),
        _ if kind.is_socket() => Some("a socket"),
        _ => Some("not a file"),
    };
    if let Some(other) = other {
        return Err(Error::new(ErrorKind::InvalidInput, format!("it is not a regular file but {other}")));
    }
    if metadata.len() > cap {
        return Err(too_large(cap));
    }
    Ok(())
}

fn too_large(cap: u64) -> Error {
    Error::new(ErrorKind::FileTooLarge, format!("it is larger than {}", size_text(cap)))
}

fn size_text(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(path: &Path, cap: u64) -> String {
        read(path, cap).unwrap_err().to_string()
    }

    #[test]
    fn reads_regular_files_and_links_to_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.pem");
        std::fs::write(&file, b"12345").unwrap();
        std::os::unix::fs::symlink(&file, dir.path().join("link")).unwrap();
        assert_eq!(read(&file, 5).unwrap(), b"12345");
        assert_eq!(read(&dir.path().join("link"), 5).unwrap(), b"12345");
        assert_eq!(message(&file, 4), "it is larger than 4 bytes");
        assert_eq!(read(&dir.path().join("missing"), 5).unwrap_err().kind(), ErrorKind::NotFound);
    }

    #[test]
    fn refuses_devices_fifos_and_folders_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        // No writer: a blocking open would never return.
        assert_eq!(message(&fifo, PEM_CAP), "it is not a regular file but a FIFO");
        assert_eq!(message(Path::new("/dev/zero"), PEM_CAP), "it is not a regular file but a character device");
        assert_eq!(message(dir.path(), PEM_CAP), "it is not a regular file but a folder");
        assert_eq!(read(Path::new("/dev/zero"), PEM_CAP).unwrap_err().kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn caps_are_named_in_whole_units() {
        assert_eq!(size_text(PEM_CAP), "4 MiB");
        assert_eq!(size_text(8 << 10), "8 KiB");
        assert_eq!(size_text(1000), "1000 bytes");
    }
}
