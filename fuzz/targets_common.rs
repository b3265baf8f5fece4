//! The bodies of the fuzz targets, shared by `fuzz/fuzz_targets/*.rs` (libFuzzer, nightly
//! features) and `tests/fuzz_corpus.rs` (stable `cargo test`, replays the committed corpus).
//! Included with `#[path]` by both, so it may use only `std`, `scratchpack` and `tempfile`.
//!
//! A panic here is a finding: either scratchpack panicked on hostile input, or one of the
//! invariants asserted below does not hold.

// Each fuzz target uses one of these functions; the corpus test uses them all.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use scratchpack::dest::DestSpec;
use scratchpack::elf::{ElfInfo, Linkage};
use scratchpack::needs::NeedsOptions;
use scratchpack::registry::auth::credentials::{credential_in_file_bytes, CredentialError};
use scratchpack::registry::auth::Credential;
use scratchpack::registry::{Reference, Repository, Tag};

/// Where the fuzzed program sits, in the image and in the sandbox's sysroot.
pub const IMAGE_PATH: &str = "/usr/local/bin/fuzz";

/// Image paths in the sysroot that are hard links to the program file: writing one input to the
/// program writes it under every name, so the libraries the input names are the input itself
/// (DT_NEEDED cycles, RPATH/RUNPATH chains and $ORIGIN get exercised) at the cost of one file write
/// per input. So are some interpreters: the loader check runs on hostile bytes (an input with a
/// PT_INTERP is no loader, so those resolutions are refused).
const SAME_FILE: &[&str] = &[
    "/lib/ld-linux-armhf.so.3",
    "/lib/ld-linux.so.2",
    "/lib/ld-musl-aarch64.so.1",
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/lib/x86_64-linux-gnu/libfuzz.so.1",
    "/usr/lib/aarch64-linux-gnu/libc.so.6",
    "/usr/lib/libfuzz.so",
    "/usr/local/lib/libfuzz.so.2",
    "/usr/local/bin/sub/libfuzz.so",
    "/opt/fuzz/lib/libdep.so",
    "/opt/fuzz/conf/libconf.so.1",
];

/// Loaders the resolver accepts (an ELF header of the machine, ET_DYN, no PT_INTERP), so inputs
/// naming them get their libraries resolved: (image path, 64-bit, ELF machine).
const LOADERS: &[(&str, bool, u16)] =
    &[("/lib64/ld-linux-x86-64.so.2", true, 62), ("/lib/ld-linux-aarch64.so.1", true, 183), ("/lib/ld-musl-x86_64.so.1", true, 62)];

/// A little-endian ELF header alone: a shared object with no program or section headers.
fn loader_header(is_64: bool, machine: u16) -> Vec<u8> {
    let mut bytes = vec![0x7f, b'E', b'L', b'F', if is_64 { 2 } else { 1 }, 1, 1, 0];
    bytes.resize(16, 0);
    bytes.extend(3u16.to_le_bytes()); // ET_DYN
    bytes.extend(machine.to_le_bytes());
    bytes.extend(1u32.to_le_bytes());
    let (ehsize, phentsize, shentsize) = if is_64 { (64u16, 56u16, 64u16) } else { (52, 32, 40) };
    bytes.resize(usize::from(ehsize) - 12, 0); // entry, phoff, shoff, flags: 0
    for half in [ehsize, phentsize, 0, shentsize, 0, 0] {
        bytes.extend(half.to_le_bytes());
    }
    bytes
}

/// Small text files the resolver reads (ld.so.conf with an include, musl's path file).
const TEXT_FILES: &[(&str, &str)] = &[
    ("/etc/ld.so.conf", "# fuzz\ninclude ld.so.conf.d/*.conf\n/usr/local/lib\n"),
    ("/etc/ld.so.conf.d/fuzz.conf", "/opt/fuzz/conf\n"),
    ("/etc/ld-musl-x86_64.path", "/lib\n/usr/lib:/opt/fuzz/lib\n"),
];

/// Relative symlinks (one a loop), as a real sysroot has soname links.
const SYMLINKS: &[(&str, &str)] = &[("/lib/x86_64-linux-gnu/libfuzz.so", "libfuzz.so.1"), ("/lib/libloop.so", "libloop.so")];

/// A tiny sysroot made once, in which every input is resolved.
pub struct ElfSandbox {
    _dir: tempfile::TempDir,
    /// Canonical, so host paths can be checked to stay inside it.
    root: PathBuf,
    program: PathBuf,
    lock: Mutex<()>,
}

impl ElfSandbox {
    pub fn new() -> std::io::Result<Self> {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::Builder::new().prefix("scratchpack-fuzz-").tempdir_in(shm)?
        } else {
            tempfile::Builder::new().prefix("scratchpack-fuzz-").tempdir()?
        };
        let root = dir.path().canonicalize()?;
        let host = |image: &str| root.join(image.trim_start_matches('/'));
        let program = host(IMAGE_PATH);
        let make_parent = |path: &Path| std::fs::create_dir_all(path.parent().expect("image paths have a parent"));
        make_parent(&program)?;
        std::fs::write(&program, b"")?;
        for name in SAME_FILE {
            let path = host(name);
            make_parent(&path)?;
            std::fs::hard_link(&program, &path)?;
        }
        for &(name, is_64, machine) in LOADERS {
            let path = host(name);
            make_parent(&path)?;
            std::fs::write(&path, loader_header(is_64, machine))?;
        }
        for (name, text) in TEXT_FILES {
            let path = host(name);
            make_parent(&path)?;
            std::fs::write(&path, text)?;
        }
        for (name, target) in SYMLINKS {
            let path = host(name);
            make_parent(&path)?;
            std::os::unix::fs::symlink(target, &path)?;
        }
        std::fs::create_dir_all(host(scratchpack::needs::ZONEINFO))?;
        Ok(ElfSandbox { _dir: dir, root, program, lock: Mutex::new(()) })
    }

    /// Panics when `file`, a file the resolver read (and `pack` hashes), is not inside the
    /// sysroot once its symlinks are resolved. The program is in the sysroot too, so even `$ORIGIN`
    /// paths must stay in it.
    fn assert_read_inside(&self, what: &str, file: &Path) {
        let real = file.canonicalize().unwrap_or_else(|e| panic!("{what}: the resolver reports {} as read, but: {e}", file.display()));
        assert!(
            real.starts_with(&self.root),
            "sysroot escape: {what} was read from {} (really {}), outside the sysroot {}",
            file.display(),
            real.display(),
            self.root.display()
        );
    }
}

/// `elf_inspect`: ELF parsing, then (for an input that parses as a program) hints, library
/// resolution in the sandbox's sysroot, symbol version checks and the needs decision.
pub fn elf_inspect(data: &[u8], sandbox: &ElfSandbox) {
    let info = match scratchpack::elf::inspect_bytes(Path::new("fuzz.bin"), data, data.len() as u64) {
        Ok(info) => info,
        Err(error) => {
            let _ = (error.to_string(), error.hint());
            return;
        }
    };
    assert_eq!(info.size, data.len() as u64);
    assert!(info.class == 32 || info.class == 64, "class {}", info.class);
    let _ = (info.file_name(), info.linkage.as_str());

    // One sandbox, one program file: inputs are handled one at a time.
    let _guard = sandbox.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    std::fs::write(&sandbox.program, data).expect("the sandbox program can be written");
    let info = ElfInfo { file: sandbox.program.clone(), ..info };

    let _ = scratchpack::elf::clues::detect(&info.file, &[]);

    let options = NeedsOptions {
        sysroot: Some(sandbox.root.clone()),
        library_path: vec!["/opt/fuzz/lib".into()],
        allow_missing: true,
        ..Default::default()
    };
    if info.linkage == Linkage::Dynamic {
        // The resolution on its own (decide() can fail after it, on the GLIBC version check).
        if let Ok(resolution) = scratchpack::elf::resolve::resolve(&info, IMAGE_PATH, &options.resolve_options()) {
            if let Some(file) = &resolution.interpreter_file {
                sandbox.assert_read_inside("the interpreter", file);
                assert_elf("the interpreter", file);
            }
            for library in &resolution.libraries {
                sandbox.assert_read_inside(&format!("library {:?}", library.name), &library.file);
                assert_elf(&format!("library {:?}", library.name), &library.file);
            }
        }
    }
    match scratchpack::needs::decide(&info, IMAGE_PATH, &options) {
        Ok(needs) => {
            if info.linkage != Linkage::Dynamic {
                assert!(needs.resolution.is_none(), "a {} program got a library resolution", info.linkage.as_str());
            }
        }
        Err(error) => {
            let _ = (error.to_string(), error.hint());
        }
    }
}

/// Panics when `file`, which a resolution would pack, is not an ELF object: only loaders and
/// libraries may be packed, never whatever file a PT_INTERP or DT_NEEDED names.
fn assert_elf(what: &str, file: &Path) {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let read = std::fs::File::open(file).and_then(|mut f| f.read_exact(&mut magic));
    assert!(read.is_ok() && &magic == b"\x7fELF", "{what}: {} is packed, but it is not an ELF object", file.display());
}

/// `reference`: image references and `--output` destinations. A reference that parses prints as
/// text that parses back to the same reference.
pub fn reference(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match text.parse::<Reference>() {
        Ok(reference) => {
            let shown = reference.to_string();
            let again: Reference = shown
                .parse()
                .unwrap_or_else(|error| panic!("{text:?} parses as {reference:?}, but its Display {shown:?} does not parse: {error}"));
            assert_eq!(again, reference, "{text:?} → {shown:?} → {again:?}");
            assert_eq!(again.to_string(), shown);
            let registry = &reference.repository.registry;
            let _ = (registry.api_host(), registry.credential_key(), registry.hostname(), registry.is_loopback());
            if reference.digest.is_none() {
                let spec = format!("docker://{shown}");
                match spec.parse::<DestSpec>() {
                    Ok(DestSpec::Registry { reference: parsed }) => assert_eq!(parsed, reference, "{spec:?}"),
                    other => panic!("{spec:?} should be a registry destination, got {other:?}"),
                }
            }
        }
        Err(error) => {
            let _ = (error.to_string(), error.hint());
        }
    }
    match text.parse::<DestSpec>() {
        Ok(DestSpec::Registry { reference }) => {
            assert!(reference.digest.is_none(), "a push destination with a digest: {text:?}");
            assert!(text.starts_with("docker://"));
        }
        Ok(DestSpec::OciLayout { dir: path, tag } | DestSpec::OciArchive { file: path, tag }) => {
            assert!(!path.as_os_str().is_empty(), "{text:?}");
            assert!(tag.as_ref().is_none_or(|tag| tag.parse::<Tag>().as_ref() == Ok(tag)), "{text:?}");
        }
        Ok(DestSpec::DockerArchive { file, .. }) => assert!(!file.as_os_str().is_empty(), "{text:?}"),
        Ok(DestSpec::DockerDaemon { name, tag } | DestSpec::Podman { name, tag }) => {
            assert!(text.starts_with("docker-daemon:") || text.starts_with("podman:"), "{text:?}");
            assert!(name.is_some() || tag.is_none(), "{text:?}");
            if let Some(name) = name {
                // What the engine is given, NAME:TAG, is a reference with that tag and no digest.
                let given = format!("{name}:{}", tag.as_deref().unwrap_or("latest"));
                let reference: Reference = given.parse().unwrap_or_else(|error| panic!("{text:?} gives {given:?}: {error}"));
                assert!(reference.digest.is_none(), "{text:?}");
            }
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
}

/// `www_authenticate`: the `WWW-Authenticate` header parser. Schemes and parameter names come
/// back lowercased (HTTP tokens are ASCII, so ASCII lowercase is what matters).
pub fn www_authenticate(data: &[u8]) {
    let Ok(header) = std::str::from_utf8(data) else { return };
    for challenge in scratchpack::registry::auth::challenge::parse(header) {
        assert!(!challenge.scheme.is_empty(), "{header:?}: {challenge:?}");
        assert!(!challenge.scheme.bytes().any(|b| b.is_ascii_uppercase()), "scheme not lowercase: {header:?}: {challenge:?}");
        for (key, value) in &challenge.params {
            assert!(!key.is_empty(), "{header:?}: {challenge:?}");
            assert!(!key.bytes().any(|b| b.is_ascii_uppercase()), "parameter name {key:?} not lowercase: {header:?}");
            assert_eq!(challenge.param(key), Some(value.as_str()));
        }
    }
}

/// `registry_answers`: the input as a token server's answer, as a registry's error body, and as
/// registry text. Whatever it holds: no panic; the code and message an error shows have no control
/// character and are at most 1025 characters; any `expires_in` gives an expiry at most a day away;
/// a capped read never returns more than its cap.
pub fn registry_answers(data: &[u8]) {
    use scratchpack::registry::answers::{error_body, read_capped, registry_text, token_answer, MAX_TOKEN_SECONDS};
    let (code, message) = error_body(data);
    for text in code.iter().chain(std::iter::once(&message)) {
        assert!(!text.chars().any(char::is_control), "control character in {text:?}");
        assert!(text.chars().count() <= 1025, "{} characters shown", text.chars().count());
    }
    let now = std::time::Instant::now();
    if let Ok((token, expires)) = token_answer(data, now) {
        assert!(!token.is_empty());
        assert!(expires >= now && expires - now <= std::time::Duration::from_secs(MAX_TOKEN_SECONDS), "expiry {:?} away", expires - now);
    }
    let shown = registry_text(&String::from_utf8_lossy(data));
    assert!(!shown.chars().any(char::is_control), "control character in {shown:?}");
    let cap = data.first().map_or(0, |&b| u64::from(b));
    match read_capped(data, cap).expect("reading a slice") {
        Some(body) => assert!(body.len() as u64 <= cap && body == data),
        None => assert!(data.len() as u64 > cap),
    }
}

/// The repositories `auth_file` looks credentials up for: Docker Hub, a host with namespaced
/// keys, a loopback registry with a port.
fn repositories() -> &'static [Repository] {
    static REPOSITORIES: OnceLock<Vec<Repository>> = OnceLock::new();
    REPOSITORIES.get_or_init(|| {
        ["ghcr.io/org/app", "alpine", "127.0.0.1:5000/a/b"]
            .iter()
            .map(|text| text.parse::<Reference>().expect("fixed references parse").repository)
            .collect()
    })
}

/// `auth_file`: docker's config.json and podman's auth.json, as bytes. Whatever the file holds,
/// a credential's `Debug` never shows the secret, and an error names only the file and the key.
pub fn auth_file(data: &[u8]) {
    for repository in repositories() {
        match credential_in_file_bytes(data, repository) {
            Ok(None) => {}
            Ok(Some(credential)) => {
                let shown = format!("{credential:?}");
                let expected = match &credential {
                    Credential::Basic { username, .. } => format!("Basic {{ username: {username:?}, password: <redacted> }}"),
                    Credential::IdentityToken { username, .. } => format!("IdentityToken {{ username: {username:?}, token: <redacted> }}"),
                };
                assert_eq!(shown, expected);
            }
            Err(error @ CredentialError::BadFile { .. }) => {
                let message = error.to_string();
                assert!(message.starts_with("<fuzz>: not a valid auth file (JSON error at line "), "{message}");
            }
            Err(CredentialError::BadAuth { path, key }) => {
                assert_eq!(path, Path::new("<fuzz>"));
                // The key is one of the lookup's candidates (from the repository), never text of the file.
                let host = repository.registry.name();
                assert!(
                    key == host
                        || key.starts_with(&format!("{host}/"))
                        || ["index.docker.io", "registry-1.docker.io"].contains(&key.as_str()),
                    "{key:?} for {repository}"
                );
            }
            Err(other) => panic!("a file lookup cannot fail with {other:?}"),
        }
    }
}

/// `pem`: which certificates of a CA PEM file (`--extra-ca`, `--ca-bundle`) go into an image.
/// What is accepted holds no private key and nothing but `CERTIFICATE` blocks in the canonical
/// form (lines of 64 base64 characters), and is accepted again unchanged, so each of its blocks
/// parses as one whole X.509 certificate. An error never carries a control character of the input
/// (it is printed on a terminal).
pub fn pem(data: &[u8]) {
    use scratchpack::rootfs::pem::certificate_pem;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    match certificate_pem(data) {
        Ok(accepted) => {
            let text = std::str::from_utf8(&accepted).expect("accepted PEM is ASCII");
            assert!(!text.contains("PRIVATE KEY"), "a private key was accepted: {text:?}");
            assert!(text.ends_with(&format!("{END}\n")), "{text:?}");
            for block in text.split_inclusive(&format!("{END}\n")) {
                let lines: Vec<&str> = block.lines().collect();
                assert!(lines.len() >= 3 && lines[0] == BEGIN && lines[lines.len() - 1] == END, "not a certificate block: {block:?}");
                let body = &lines[1..lines.len() - 1];
                for (i, line) in body.iter().enumerate() {
                    let full = i + 1 < body.len();
                    assert!(if full { line.len() == 64 } else { !line.is_empty() && line.len() <= 64 }, "line {line:?} in {block:?}");
                    assert!(line.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='), "{line:?}");
                }
            }
            assert_eq!(certificate_pem(&accepted).as_deref(), Ok(text.as_bytes()), "accepted PEM is not accepted again as it is");
        }
        Err(error) => {
            let message = error.to_string();
            assert!(!message.chars().any(char::is_control), "{message:?}");
        }
    }
}
