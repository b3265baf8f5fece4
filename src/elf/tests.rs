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
