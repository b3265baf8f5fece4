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
    assert_eq!(err.hint().as_deref(), Some("pack the program that loads this library; its libraries come along with it"));
}

#[test]
fn directory_and_missing_file() {
    let err = inspect(Path::new("/tmp")).unwrap_err();
    assert_eq!(err.to_string(), "/tmp: is a directory, not a program");
    let err = inspect(Path::new("/nonexistent/app")).unwrap_err();
    assert_eq!(format!("{:#}", anyhow::Error::new(err)), "/nonexistent/app: cannot read: No such file or directory (os error 2)");
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
    let _ = crate::elf::clues::detect(&path, &info.needed).unwrap();
    assert!(hints_started.elapsed() < std::time::Duration::from_secs(1), "hints took {:?}", hints_started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// What the resolver may pack: the loader PT_INTERP names, and libraries, never any other file.
// ---------------------------------------------------------------------------------------------

use resolve::{LoaderProblem, Resolution, ResolveError, ResolveOptions};
use std::os::unix::fs::symlink;

const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";
const SECRET: &str = "root:$6$s3cr3t-hash-do-not-ship:19000:0:99999:7:::\n";

/// This machine's x86-64 ld.so, with `patches` (offset, bytes) written over it.
fn host_loader(patches: &[(usize, &[u8])]) -> Vec<u8> {
    let mut bytes = std::fs::read(LOADER).expect("x86-64 ld.so is installed");
    for (at, patch) in patches {
        bytes[*at..at + patch.len()].copy_from_slice(patch);
    }
    bytes
}

/// A sysroot with `/bin/true` as the program (outside it, next to it), whose PT_INTERP is
/// [`LOADER`]: `(temp dir, sysroot, program)`.
fn sysroot_with_program() -> (tempfile::TempDir, PathBuf, ElfInfo) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    for folder in ["lib64", "lib/x86_64-linux-gnu", "etc"] {
        std::fs::create_dir_all(root.join(folder)).unwrap();
    }
    std::fs::write(root.join("etc/shadow"), SECRET).unwrap();
    let (_, bytes) = host_binary();
    let program = dir.path().join("prog");
    std::fs::write(&program, &bytes).unwrap();
    let info = inspect_bytes(&program, &bytes, bytes.len() as u64).unwrap();
    assert_eq!(info.interpreter.as_deref(), Some(LOADER));
    (dir, root, info)
}

fn resolve_in(root: &Path, info: &ElfInfo) -> Result<Resolution, ResolveError> {
    let options = ResolveOptions { root: root::Root::new(Some(root.to_path_buf())), ..Default::default() };
    resolve::resolve(info, "/usr/local/bin/prog", &options)
}

/// Resolves with the interpreter `install` puts at [`LOADER`] in the sysroot, expecting a refusal.
fn refused(install: impl FnOnce(&Path)) -> (LoaderProblem, String) {
    let (_dir, root, info) = sysroot_with_program();
    install(&root.join(LOADER.trim_start_matches('/')));
    match resolve_in(&root, &info) {
        Err(error @ ResolveError::NotALoader { .. }) => {
            let message = error.to_string();
            assert!(message.starts_with(&format!("{}: its interpreter {LOADER}", info.file.display())), "{message}");
            assert!(message.ends_with(" (PT_INTERP must name the dynamic loader); refusing to pack it"), "{message}");
            assert!(!message.contains("s3cr3t"), "the file's content is never shown: {message}");
            let ResolveError::NotALoader { problem, .. } = error else { unreachable!() };
            (problem, message)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn interpreter_that_is_a_text_file_is_refused() {
    let (problem, message) = refused(|path| std::fs::write(path, SECRET).unwrap());
    assert_eq!(problem, LoaderProblem::NotElf);
    assert!(message.ends_with(&format!("{LOADER} is not an ELF object (PT_INTERP must name the dynamic loader); refusing to pack it")));
    let (problem, _) = refused(|path| std::fs::write(path, b"").unwrap());
    assert_eq!(problem, LoaderProblem::NotElf);
}

#[test]
fn interpreter_of_another_machine_is_refused() {
    let aarch64 = Path::new("/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1");
    // The cross toolchain's loader when it is installed, else this machine's with EM_AARCH64.
    let bytes = std::fs::read(aarch64).unwrap_or_else(|_| host_loader(&[(18, &183u16.to_le_bytes())]));
    let (problem, message) = refused(|path| std::fs::write(path, &bytes).unwrap());
    assert!(matches!(problem, LoaderProblem::OtherMachine { .. }), "{problem:?}");
    assert!(
        message.contains(" is an ELF for aarch64 (64-bit little-endian), not for x86-64 (64-bit little-endian) like the program "),
        "{message}"
    );
    // 32-bit, big-endian: refused from the header, before anything else is read.
    let (problem, _) = refused(|path| std::fs::write(path, host_loader(&[(4, &[1])])).unwrap());
    assert_eq!(
        problem,
        LoaderProblem::OtherMachine { found: "x86-64 (32-bit little-endian)".into(), program: "x86-64 (64-bit little-endian)".into() }
    );
    let (problem, _) = refused(|path| std::fs::write(path, host_loader(&[(5, &[2]), (18, &62u16.to_be_bytes())])).unwrap());
    assert!(matches!(problem, LoaderProblem::OtherMachine { ref found, .. } if found == "x86-64 (64-bit big-endian)"), "{problem:?}");
}

#[test]
fn interpreter_that_is_no_loader_is_refused() {
    // A program of its own (it has a PT_INTERP), a core dump, a relocatable object, another OS.
    let (problem, _) = refused(|path| std::fs::copy("/bin/true", path).map(drop).unwrap());
    assert_eq!(problem, LoaderProblem::HasInterpreter);
    let (problem, message) = refused(|path| std::fs::write(path, host_loader(&[(16, &4u16.to_le_bytes())])).unwrap());
    assert_eq!(problem, LoaderProblem::NotLoadable("CORE"));
    assert!(message.contains(" is an ELF of type CORE, not a shared object or executable "), "{message}");
    let (problem, _) = refused(|path| std::fs::write(path, host_loader(&[(16, &1u16.to_le_bytes())])).unwrap());
    assert_eq!(problem, LoaderProblem::NotLoadable("REL"));
    let (problem, _) = refused(|path| std::fs::write(path, host_loader(&[(7, &[9])])).unwrap());
    assert_eq!(problem, LoaderProblem::NotLinux(9));
    let (problem, _) = refused(|path| std::fs::write(path, &host_loader(&[])[..40]).unwrap());
    assert!(matches!(problem, LoaderProblem::Corrupt(_)), "{problem:?}");
    let (problem, _) = refused(|path| std::fs::create_dir(path).unwrap());
    assert_eq!(problem, LoaderProblem::NotRegular);
}

#[test]
fn interpreter_link_to_a_secret_is_refused_and_named() {
    // An absolute link is read inside the sysroot: its /etc/shadow, a text file.
    let (problem, message) = refused(|path| symlink("/etc/shadow", path).unwrap());
    assert_eq!(problem, LoaderProblem::NotElf);
    assert!(message.contains(&format!("its interpreter {LOADER} (a link to /etc/shadow) is not an ELF object")), "{message}");
}

#[test]
fn interpreter_link_climbing_out_of_the_sysroot_stays_inside_it() {
    // `..` stops at the sysroot: this machine's /etc/passwd is never reached, and the sysroot has none.
    let (_dir, root, info) = sysroot_with_program();
    symlink("../../../../../../../../../../etc/passwd", root.join(LOADER.trim_start_matches('/'))).unwrap();
    assert!(Path::new("/etc/passwd").is_file());
    let error = resolve_in(&root, &info).unwrap_err();
    assert!(matches!(error, ResolveError::NoInterpreter { .. }), "{error}");
}

#[test]
fn real_loader_is_accepted() {
    let (_dir, root, info) = sysroot_with_program();
    let at = root.join(LOADER.trim_start_matches('/'));
    std::fs::write(&at, host_loader(&[])).unwrap();
    let resolution = resolve_in(&root, &info).unwrap();
    assert_eq!(resolution.interpreter_file.as_deref(), Some(at.as_path()));
    assert!(resolution.missing.iter().any(|m| m.name == "libc.so.6"), "{:?}", resolution.missing);
    // Static-pie style, ET_EXEC: a loader still.
    std::fs::write(&at, host_loader(&[(16, &2u16.to_le_bytes())])).unwrap();
    assert!(resolve_in(&root, &info).is_ok());
}

#[test]
fn a_missing_interpreter_is_not_a_refusal() {
    let (_dir, root, info) = sysroot_with_program();
    let error = resolve_in(&root, &info).unwrap_err();
    assert_eq!(error.to_string(), format!("the interpreter {LOADER} is not in the sysroot {}", root.display()));
}

#[test]
fn only_shared_objects_are_resolved_as_libraries() {
    let (dir, root, mut info) = sysroot_with_program();
    std::fs::write(root.join(LOADER.trim_start_matches('/')), host_loader(&[])).unwrap();
    let libs = root.join("lib/x86_64-linux-gnu");
    std::fs::copy("/lib/x86_64-linux-gnu/libm.so.6", libs.join("libm.so.6")).unwrap();
    std::fs::write(libs.join("libtext.so.1"), SECRET).unwrap();
    symlink("/etc/shadow", libs.join("libshadow.so.1")).unwrap();
    std::fs::write(libs.join("libcore.so.1"), host_loader(&[(16, &4u16.to_le_bytes())])).unwrap();
    std::fs::write(libs.join("libexec.so.1"), host_loader(&[(16, &2u16.to_le_bytes())])).unwrap();
    // Links climbing out of the sysroot, relative and absolute, to libraries this machine has.
    symlink("../../../../../../../../../../lib/x86_64-linux-gnu/libz.so.1", libs.join("libz.so.1")).unwrap();
    symlink("/usr/lib/x86_64-linux-gnu/libc.so.6", libs.join("libc.so.6")).unwrap();
    assert!(Path::new("/lib/x86_64-linux-gnu/libz.so.1").is_file());
    // A file next to the program, outside the sysroot, reached by $ORIGIN/..: only the program's
    // own folder and its parent are read there; further up is the sysroot.
    std::fs::write(dir.path().join("libnear.so.1"), SECRET).unwrap();
    info.rpath = vec!["$ORIGIN".into(), "$ORIGIN/../../../../../../../../../../etc".into()];
    info.needed = [
        "libm.so.6",
        "/etc/shadow",
        "../../../../etc/shadow",
        "shadow",
        "passwd",
        "libtext.so.1",
        "libshadow.so.1",
        "libcore.so.1",
        "libexec.so.1",
        "libz.so.1",
        "libc.so.6",
        "libnear.so.1",
    ]
    .map(String::from)
    .to_vec();
    let resolution = resolve_in(&root, &info).unwrap();
    let found: Vec<&str> = resolution.libraries.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(found, ["libm.so.6"], "{:#?}", resolution.libraries);
    let missing: Vec<&str> = resolution.missing.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(missing, &info.needed[1..]);
    assert!(resolution.libraries[0].file.starts_with(&root));
}

#[test]
fn interpreter_is_read_as_the_kernel_reads_it() {
    let (path, bytes) = host_binary();
    let elf = Elf::parse(&bytes).unwrap();
    let index = elf.program_headers.iter().position(|ph| ph.p_type == PT_INTERP).unwrap();
    let ph = elf.header.e_phoff as usize + index * usize::from(elf.header.e_phentsize);
    let (offset, size) = (elf.program_headers[index].p_offset as usize, elf.program_headers[index].p_filesz as usize);
    let patched = |text: &[u8], filesz: u64| {
        let mut bytes = bytes.clone();
        bytes[offset..offset + size].fill(0);
        bytes[offset..offset + text.len()].copy_from_slice(text);
        bytes[ph + 32..ph + 40].copy_from_slice(&filesz.to_le_bytes());
        inspect_bytes(&path, &bytes, bytes.len() as u64)
    };
    // Up to the first NUL, as the kernel opens it (goblin keeps the padding).
    let info = patched(b"/lib/ld.so", size as u64).unwrap();
    assert_eq!(info.interpreter.as_deref(), Some("/lib/ld.so"));
    for (text, filesz, reason) in [
        (&b"/lib/ld.so"[..], 10, "the PT_INTERP path is not NUL-terminated"),
        (b"", 0, "the PT_INTERP segment (0 bytes) is not a path"),
        (b"/lib/\xff\xfe.so", size as u64, "the PT_INTERP path is not UTF-8"),
        (b"/lib/ld.so", 1 << 40, "the PT_INTERP segment (1099511627776 bytes) is not a path"),
    ] {
        let err = patched(text, filesz).unwrap_err();
        assert_eq!(err.to_string(), format!("/bin/true: corrupt or truncated ELF: {reason}"), "{text:?}");
    }
}

/// What scratchpack reads of an ELF, as a comparable value.
fn read_by_scratchpack(elf: &Elf) -> String {
    // The null symbol (index 0) counts in the section's size, not always in goblin's count.
    let imports: Vec<String> =
        elf.dynsyms.iter().filter(|sym| sym.st_name != 0).map(|sym| format!("{}:{}", sym.st_name, sym.st_shndx)).collect();
    let sections: Vec<String> =
        elf.section_headers.iter().map(|sh| format!("{}={}", elf.shdr_strtab.get_at(sh.sh_name).unwrap_or("?"), sh.sh_type)).collect();
    format!(
        "phdrs {} sections {sections:?} dynamic {:?} libraries {:?} rpaths {:?} runpaths {:?} soname {:?} is_lib {} dynsyms {imports:?} dynstr {}",
        elf.program_headers.len(),
        elf.dynamic.as_ref().map(|d| d.dyns.len()),
        elf.libraries,
        elf.rpaths,
        elf.runpaths,
        elf.soname,
        elf.is_lib,
        elf.dynstrtab.len(),
    )
}

#[test]
fn the_light_parse_reads_what_goblins_full_parse_reads() {
    let candidates = [
        "/bin/true",
        "/usr/bin/curl",
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib64/ld-linux-x86-64.so.2",
        "/usr/bin/qemu-riscv64-static",
        "/usr/bin/qemu-aarch64-static",
    ];
    let mut compared = 0;
    for path in candidates.iter().map(Path::new).filter(|p| p.exists()) {
        let bytes = std::fs::read(path).unwrap();
        let light = parse(&bytes).unwrap();
        let full = Elf::parse(&bytes).unwrap();
        assert_eq!(read_by_scratchpack(&light), read_by_scratchpack(&full), "{}", path.display());
        assert!(light.dynrelas.is_empty() && light.syms.is_empty(), "{}: nothing more is read", path.display());
        compared += 1;
    }
    assert!(compared >= 3, "too few host ELF files to compare");
}

#[test]
fn a_program_without_section_headers_still_has_its_dynamic_symbols() {
    // The dynamic symbols' count then comes from goblin's full parse (its hash tables, relocations).
    let (_, bytes) = host_binary();
    let full = Elf::parse(&bytes).unwrap();
    assert!(full.dynsyms.len() > 10 && full.is_64);
    let mut stripped = bytes.clone();
    stripped[0x28..0x30].fill(0); // e_shoff
    stripped[0x3c..0x3e].fill(0); // e_shnum
    let light = parse(&stripped).unwrap();
    assert!(light.section_headers.is_empty());
    assert_eq!(read_by_scratchpack(&light).split(" dynsyms ").nth(1), read_by_scratchpack(&full).split(" dynsyms ").nth(1));
    assert_eq!(light.libraries, full.libraries);
}
