use super::*;

fn host_binary() -> (PathBuf, Vec<u8>) {
    let path = PathBuf::from("/bin/true");
    let bytes = std::fs::read(&path).expect("/bin/true exists on every Linux machine");
    (path, bytes)
}

#[test]
fn host_binary_is_dynamic_amd64() {
    let (path, bytes) = host_binary();
    let info = inspect_bytes(&path, &bytes, bytes.len() as u64).unwrap();
    assert_eq!(info.platform.to_string(), "linux/amd64");
    assert_eq!(info.linkage, Linkage::Dynamic);
    assert_eq!(info.interpreter.as_deref(), Some("/lib64/ld-linux-x86-64.so.2"));
    assert!(info.needed.contains(&"libc.so.6".to_string()), "{:?}", info.needed);
}

#[test]
fn truncated_elf_is_corrupt() {
    let (path, bytes) = host_binary();
    for cut in [16, 40, 64, 200, 4096] {
        let err = inspect_bytes(&path, &bytes[..cut], cut as u64).unwrap_err();
        assert!(matches!(err, ElfError::Corrupt { .. }), "cut at {cut}: {err}");
        assert!(err.to_string().starts_with("/bin/true: corrupt or truncated ELF: "), "{err}");
    }
}

#[test]
fn freebsd_osabi_is_refused() {
    let (path, mut bytes) = host_binary();
    bytes[EI_OSABI] = 9;
    let err = inspect_bytes(&path, &bytes, bytes.len() as u64).unwrap_err();
    assert_eq!(err.to_string(), "/bin/true: not a Linux program: ELF for FreeBSD");
}

#[test]
fn script_is_not_elf() {
    let err = inspect_bytes(Path::new("run.sh"), b"#!/bin/sh\necho hi\n", 18).unwrap_err();
    assert_eq!(err.to_string(), "run.sh: not an ELF file (a script for /bin/sh)");
    let err = inspect_bytes(Path::new("x"), b"\x00\x01\x02\x03\x04", 5).unwrap_err();
    assert_eq!(err.to_string(), "x: not an ELF file (starts with bytes 00 01 02 03)");
}

#[test]
fn shared_library_is_refused() {
    let lib = Path::new("/lib/x86_64-linux-gnu/libm.so.6");
    let err = inspect(lib).unwrap_err();
    assert!(matches!(err, ElfError::SharedLibrary { .. }), "{err}");
    assert_eq!(err.hint(), Some("pack the program that loads this library; its libraries come along with it"));
}

#[test]
fn directory_and_missing_file() {
    let err = inspect(Path::new("/tmp")).unwrap_err();
    assert_eq!(err.to_string(), "/tmp: is a directory, not a program");
    let err = inspect(Path::new("/nonexistent/app")).unwrap_err();
    assert_eq!(crate::errors::chain(&err), "/nonexistent/app: cannot read: No such file or directory (os error 2)");
}

#[test]
fn split_paths_drops_empty_entries() {
    assert_eq!(split_paths(&["$ORIGIN/../lib::/opt/lib"]), vec!["$ORIGIN/../lib", "/opt/lib"]);
}

/// A valid 64-bit little-endian ELF header for x86-64 with the given table fields patched in.
fn header_with(phoff: u64, phnum: u16, shoff: u64, shnum: u16) -> Vec<u8> {
    let (_, mut bytes) = host_binary();
    bytes[32..40].copy_from_slice(&phoff.to_le_bytes());
    bytes[40..48].copy_from_slice(&shoff.to_le_bytes());
    bytes[56..58].copy_from_slice(&phnum.to_le_bytes());
    bytes[60..62].copy_from_slice(&shnum.to_le_bytes());
    bytes
}

#[test]
fn hostile_headers_cost_bounded_time_and_fail_cleanly() {
    let started = std::time::Instant::now();
    let cases = [
        ("65535 program headers past the end", header_with(64, u16::MAX, 0, 0)),
        ("65535 section headers past the end", header_with(64, 1, 64, u16::MAX)),
        ("tables overlapping the header", header_with(0, 3, 0, 3)),
        ("absurd offsets", header_with(u64::MAX - 10, 2, u64::MAX - 10, 2)),
    ];
    for (what, bytes) in cases {
        match inspect_bytes(Path::new("hostile"), &bytes, bytes.len() as u64) {
            Err(ElfError::Corrupt { .. }) | Err(ElfError::SharedLibrary { .. }) | Err(ElfError::NotExecutable { .. }) => {}
            Ok(info) => assert!(info.size == bytes.len() as u64, "{what}: accepted oddly"),
            Err(other) => panic!("{what}: unexpected {other}"),
        }
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[test]
fn a_2_gb_sparse_file_is_inspected_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse");
    let (_, bytes) = host_binary();
    std::fs::write(&path, &bytes).unwrap();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(2 << 30).unwrap();
    let started = std::time::Instant::now();
    let info = inspect(&path).unwrap();
    assert_eq!(info.size, 2 << 30);
    assert!(started.elapsed() < std::time::Duration::from_secs(1), "took {:?}", started.elapsed());
    let hints_started = std::time::Instant::now();
    let _ = crate::hints::detect(&path, &info.needed).unwrap();
    assert!(hints_started.elapsed() < std::time::Duration::from_secs(1), "hints took {:?}", hints_started.elapsed());
}
