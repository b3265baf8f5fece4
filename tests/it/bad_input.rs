//! Every bad input: a one-line error naming the file and the reason, exit 1, nothing on stdout,
//! nothing written to any destination.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::util::*;

/// Packs `input` into an oci layout and an archive in `work`, expects failure, and returns stderr.
fn pack_fails(work: &Path, input: &Path, wrap: impl FnOnce(Command) -> Command) -> String {
    let before = tree_listing(work);
    let mut cmd = scratchpack();
    cmd.arg("pack").arg(input).arg("--output").arg(format!("oci:{}", work.join("out").display()));
    cmd.arg("--output").arg(format!("oci-archive:{}", work.join("out.tar").display()));
    let output = wrap(cmd).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "stderr: {}", stderr(&output));
    assert_eq!(stdout(&output), "", "nothing on stdout");
    assert_eq!(tree_listing(work), before, "nothing written");
    let err = stderr(&output);
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

#[test]
fn not_an_elf_file() {
    let work = temp_dir();
    let input = work.path().join("notes.txt");
    std::fs::write(&input, "just text\n").unwrap();
    let err = pack_fails(work.path(), &input, |c| c);
    assert_eq!(first_line(&err), format!("error: {}: not an ELF file (starts with bytes 6a 75 73 74)", input.display()));
    assert_eq!(err.lines().nth(1), Some("hint: give the path of a compiled Linux executable, for example target/release/app"));

    let script = work.path().join("run.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let err = pack_fails(work.path(), &script, |c| c);
    assert_eq!(first_line(&err), format!("error: {}: not an ELF file (a script for /bin/sh)", script.display()));
}

#[test]
fn empty_file() {
    let work = temp_dir();
    let input = work.path().join("empty");
    std::fs::write(&input, "").unwrap();
    let err = pack_fails(work.path(), &input, |c| c);
    assert_eq!(first_line(&err), format!("error: {}: empty file, not an ELF program", input.display()));
}

#[test]
fn truncated_elf() {
    let work = temp_dir();
    let input = work.path().join("truncated");
    let full = std::fs::read(static_c_hello()).unwrap();
    for cut in [20usize, 100, 1000, full.len() / 2] {
        std::fs::write(&input, &full[..cut]).unwrap();
        let err = pack_fails(work.path(), &input, |c| c);
        assert!(first_line(&err).starts_with(&format!("error: {}: corrupt or truncated ELF: ", input.display())), "cut {cut}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
}

#[test]
fn corrupt_elf_header() {
    let work = temp_dir();
    let input = work.path().join("corrupt");
    let mut bytes = std::fs::read(static_c_hello()).unwrap();
    bytes[32..40].copy_from_slice(&u64::MAX.to_le_bytes()); // e_phoff far past the end
    std::fs::write(&input, &bytes).unwrap();
    let err = pack_fails(work.path(), &input, |c| c);
    assert!(first_line(&err).starts_with(&format!("error: {}: corrupt or truncated ELF: ", input.display())), "{err}");
}

#[test]
fn freebsd_binary() {
    let work = temp_dir();
    let input = work.path().join("freebsd-app");
    let mut bytes = std::fs::read(static_c_hello()).unwrap();
    bytes[7] = 9; // EI_OSABI = ELFOSABI_FREEBSD
    std::fs::write(&input, &bytes).unwrap();
    let err = pack_fails(work.path(), &input, |c| c);
    assert_eq!(first_line(&err), format!("error: {}: not a Linux program: ELF for FreeBSD", input.display()));
    assert_eq!(err.lines().nth(1), Some("hint: build the program for a Linux target"));
}

#[test]
fn directory() {
    let work = temp_dir();
    let input = work.path().join("somedir");
    std::fs::create_dir(&input).unwrap();
    let err = pack_fails(work.path(), &input, |c| c);
    assert_eq!(err, format!("error: {}: is a directory, not a program\n", input.display()));
}

#[test]
fn missing_file() {
    let work = temp_dir();
    let input = work.path().join("does-not-exist");
    let err = pack_fails(work.path(), &input, |c| c);
    assert_eq!(err, format!("error: {}: cannot read: No such file or directory (os error 2)\n", input.display()));
}

#[test]
fn unreadable_file() {
    let work = temp_dir();
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let input = work.path().join("secret-app");
    std::fs::copy(static_c_hello(), &input).unwrap();
    std::fs::set_permissions(&input, std::fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads anything: run as nobody, so the permission bits count.
    let err = pack_fails(work.path(), &input, |cmd| {
        let mut wrapped = Command::new("setpriv");
        wrapped.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(cmd.get_program()).args(cmd.get_args());
        wrapped.env_remove("SOURCE_DATE_EPOCH");
        wrapped
    });
    assert_eq!(err, format!("error: {}: cannot read: Permission denied (os error 13)\n", input.display()));
}

#[test]
fn shared_library() {
    let work = temp_dir();
    let input = Path::new("/lib/x86_64-linux-gnu/libm.so.6");
    let err = pack_fails(work.path(), input, |c| c);
    assert_eq!(
        err,
        "error: /lib/x86_64-linux-gnu/libm.so.6: is a shared library, not a program\n\
         hint: pack the program that loads this library; its libraries come along with it\n"
    );
}

#[test]
fn bad_output_spec_and_bad_flags_write_nothing() {
    let work = temp_dir();
    let binary = static_c_hello();
    let before = tree_listing(work.path());
    let cases: &[(&[&str], &str)] = &[
        (&["--output", "tarball:x"], "error: --output \"tarball:x\": unknown destination; expected oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF], docker://HOST/REPO[:TAG], docker-daemon:[NAME[:TAG]] or podman:[NAME[:TAG]]"),
        (&["--output", "oci:out:-x"], "error: --output \"oci:out:-x\": invalid tag \"-x\": a tag is 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'"),
        (&["--output", "oci:out", "--expose", "99999"], "error: --expose \"99999\": expected PORT[/tcp|/udp|/sctp] with PORT from 1 to 65535"),
        (&["--output", "oci:out", "--env", "NOEQUALS"], "error: --env \"NOEQUALS\": expected KEY=VALUE"),
        (&["--output", "oci:out", "--add", "x:relative"], "error: invalid value 'x:relative' for '--add <SRC:DEST[:MODE[:UID[:GID]]]>': expected SRC:DEST[:MODE[:UID[:GID]]], with DEST an absolute path in the image, MODE octal (empty for the default) and UID, GID numbers"),
        (&["--output", "oci:out", "--add", "/nonexistent/conf:/etc/conf"], "error: --add /nonexistent/conf: No such file or directory (os error 2)"),
        (&["--output", "oci:out", "--extra-ca", "/nonexistent.pem"], "error: /nonexistent.pem: cannot read the CA bundle: No such file or directory (os error 2)"),
    ];
    for (args, want) in cases {
        let output = scratchpack().current_dir(work.path()).arg("pack").arg(&binary).args(*args).output().unwrap();
        assert_ne!(output.status.code(), Some(0), "{args:?}");
        assert_eq!(stdout(&output), "");
        let err = stderr(&output);
        assert!(err.lines().any(|l| l == *want), "{args:?}: got {err}");
    }
    let output = scratchpack()
        .current_dir(work.path())
        .arg("pack")
        .arg(&binary)
        .arg("--output")
        .arg("oci:out")
        .env("SOURCE_DATE_EPOCH", "yesterday")
        .output()
        .unwrap();
    assert_eq!(stderr(&output), "error: SOURCE_DATE_EPOCH=\"yesterday\": not a whole number of seconds since 1970\n");
    assert_eq!(tree_listing(work.path()), before);
}

#[test]
fn an_existing_non_layout_folder_is_left_alone() {
    let work = temp_dir();
    let project = work.path().join("project");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(project.join("main.rs"), "fn main() {}").unwrap();
    let output =
        scratchpack().arg("pack").arg(static_c_hello()).arg("--output").arg(format!("oci:{}", project.display())).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with(&format!(
            "error: writing oci:{0}: {0}: not an OCI image layout (the folder is not empty and has no oci-layout file)",
            project.display()
        )),
        "{}",
        stderr(&output)
    );
    assert_eq!(tree_listing(&project), ["main.rs"]);
}

// ---------------------------------------------------------------------------------------------
// A program's PT_INTERP or DT_NEEDED naming a file that is no loader or library: never packed.
// ---------------------------------------------------------------------------------------------

const SECRET: &str = "-----BEGIN OPENSSH PRIVATE KEY----- sp-secret-7f3a9c -----END OPENSSH PRIVATE KEY-----\n";

/// A short folder under /tmp (PT_INTERP is patched in place: a path no longer than the real one).
fn short_temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("sp-").tempdir_in("/tmp").expect("a temp dir in /tmp")
}

/// A copy of the dynamic hello at `out` whose PT_INTERP names `interpreter`, NUL-padded in place.
fn with_interpreter(out: &Path, interpreter: &Path) -> std::path::PathBuf {
    let mut bytes = std::fs::read(dynamic_c_hello()).unwrap();
    let word = |at: usize, len: usize| bytes[at..at + len].iter().rev().fold(0usize, |n, &b| n << 8 | usize::from(b));
    assert_eq!(&bytes[..6], b"\x7fELF\x02\x01", "a 64-bit little-endian fixture");
    let (phoff, phentsize, phnum) = (word(32, 8), word(54, 2), word(56, 2));
    let ph = (0..phnum).map(|i| phoff + i * phentsize).find(|&ph| word(ph, 4) == 3).expect("the fixture has a PT_INTERP");
    let (offset, size) = (word(ph + 8, 8), word(ph + 32, 8));
    let path = interpreter.as_os_str().as_encoded_bytes();
    assert!(path.len() < size, "{} is longer than the PT_INTERP it replaces", interpreter.display());
    bytes[offset..offset + size].fill(0);
    bytes[offset..offset + path.len()].copy_from_slice(path);
    std::fs::write(out, &bytes).unwrap();
    std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o755)).unwrap();
    out.to_path_buf()
}

/// Fails unless no file under `dir` but `except` holds the secret (links to it are not copies).
fn assert_secret_nowhere(dir: &Path, except: &Path) {
    for relative in tree_listing(dir) {
        let path = dir.join(&relative);
        if path == except || !path.symlink_metadata().unwrap().is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.windows(16).any(|w| w == b"sp-secret-7f3a9c"), "the secret is in {}", path.display());
    }
}

#[test]
fn an_interpreter_that_is_not_a_loader_is_refused() {
    let work = temp_dir();
    let secrets = short_temp_dir();
    let secret = secrets.path().join("id_rsa");
    std::fs::write(&secret, SECRET).unwrap();
    let program = with_interpreter(&work.path().join("prog"), &secret);
    let cache = work.path().join("cache");
    let refuse = |program: &Path, args: &[&str]| {
        let err = pack_fails(work.path(), program, |mut c| {
            c.args(args).env("SCRATCHPACK_CACHE_DIR", &cache);
            c
        });
        assert!(!err.contains("sp-secret"), "{err}");
        assert_eq!(err.lines().count(), 2, "{err}");
        assert_eq!(
            err.lines().nth(1),
            Some("hint: check the program was linked for this system (readelf -l shows its interpreter), or pass --sysroot with a root that has its loader")
        );
        err
    };
    let not_elf = format!(
        "error: {}: its interpreter {} is not an ELF object (PT_INTERP must name the dynamic loader); refusing to pack it",
        program.display(),
        secret.display()
    );
    assert_eq!(first_line(&refuse(&program, &[])), not_elf);
    // --allow-missing allows a missing library, not a file that is there and is no loader.
    assert_eq!(first_line(&refuse(&program, &["--allow-missing"])), not_elf);
    // inspect refuses it too, and shows nothing of it.
    let output = scratchpack().args(["inspect", "--json"]).arg(&program).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    assert_eq!(first_line(&stderr(&output)), not_elf);

    // Through a link, named.
    let link = secrets.path().join("ld");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    let linked = with_interpreter(&work.path().join("prog-link"), &link);
    assert_eq!(
        first_line(&refuse(&linked, &[])),
        format!(
            "error: {}: its interpreter {} (a link to {}) is not an ELF object (PT_INTERP must name the dynamic loader); refusing to pack it",
            linked.display(),
            link.display(),
            secret.display()
        )
    );

    // Another machine's loader, and a program of its own (it has a PT_INTERP).
    let aarch64 = secrets.path().join("ld-a64");
    std::fs::copy("/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1", &aarch64).expect("the aarch64 cross toolchain's loader");
    let cross = with_interpreter(&work.path().join("prog-a64"), &aarch64);
    assert_eq!(
        first_line(&refuse(&cross, &[])),
        format!(
            "error: {}: its interpreter {} is an ELF for aarch64 (64-bit little-endian), not for x86-64 (64-bit little-endian) like the program (PT_INTERP must name the dynamic loader); refusing to pack it",
            cross.display(),
            aarch64.display()
        )
    );
    let other = secrets.path().join("true");
    std::fs::copy("/bin/true", &other).unwrap();
    let chained = with_interpreter(&work.path().join("prog-true"), &other);
    assert!(first_line(&refuse(&chained, &[])).ends_with(&format!(
        "its interpreter {} is itself a dynamic program with a PT_INTERP of its own, not a loader (PT_INTERP must name the dynamic loader); refusing to pack it",
        other.display()
    )));

    assert!(!cache.exists(), "nothing cached");
    assert_secret_nowhere(work.path(), &secret);
    assert_secret_nowhere(secrets.path(), &secret);

    // The patch itself is sound: the same program with a real loader there is taken.
    let loader = secrets.path().join("ld.so");
    std::fs::copy("/lib64/ld-linux-x86-64.so.2", &loader).unwrap();
    let good = with_interpreter(&work.path().join("prog-good"), &loader);
    let output = run_ok(scratchpack().args(["inspect", "--json"]).arg(&good));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["interpreter"], loader.display().to_string());
}

#[test]
fn a_needed_path_that_is_not_a_library_is_never_packed() {
    let work = temp_dir();
    let secrets = short_temp_dir();
    // A library linked by path without a SONAME: DT_NEEDED is that path, which ld.so opens as is.
    let library = secrets.path().join("libsecret.so");
    let c_file = secrets.path().join("lib.c");
    std::fs::write(&c_file, "int secret_value(void) { return 7; }\n").unwrap();
    run_ok(Command::new("gcc").args(["-shared", "-fPIC", "-o"]).arg(&library).arg(&c_file));
    let program = work.path().join("prog");
    run_ok(
        Command::new("gcc")
            .arg("-o")
            .arg(&program)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hello.c"))
            .args(["-Wl,--no-as-needed"])
            .arg(&library),
    );
    let json: serde_json::Value = serde_json::from_slice(&run_ok(scratchpack().args(["inspect", "--json"]).arg(&program)).stdout).unwrap();
    assert!(json["needed"].as_array().unwrap().iter().any(|n| n == library.to_str().unwrap()), "{json}");
    // Then the library is replaced by a secret.
    std::fs::write(&library, SECRET).unwrap();
    let err = pack_fails(work.path(), &program, |c| c);
    assert_eq!(first_line(&err), format!("error: {}: a library was not found: {} (needed by prog)", program.display(), library.display()));
    assert!(!err.contains("sp-secret"), "{err}");

    // Packed anyway, it is left out of the image.
    let layout = work.path().join("out");
    let output = scratchpack()
        .arg("pack")
        .arg(&program)
        .arg("--allow-missing")
        .arg("--output")
        .arg(format!("oci:{}:latest", layout.display()))
        .env("SCRATCHPACK_NO_CACHE", "1")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("{} (needed by prog) was not found; packing anyway", library.display())),
        "{}",
        stderr(&output)
    );
    let bundle = unpack(&layout, "latest", work.path());
    let rootfs = bundle.join("rootfs");
    assert!(!rootfs.join(library.strip_prefix("/").unwrap()).exists());
    assert!(rootfs.join("lib64/ld-linux-x86-64.so.2").exists(), "the loader is packed");
    assert_secret_nowhere(work.path(), &library);
}

#[test]
fn a_sysroot_zoneinfo_link_never_reaches_this_machine() {
    let work = temp_dir();
    let secrets = short_temp_dir();
    std::fs::write(secrets.path().join("config.json"), SECRET).unwrap();
    let sysroot = work.path().join("sysroot");
    std::fs::create_dir_all(sysroot.join("usr/share")).unwrap();
    let zoneinfo = sysroot.join("usr/share/zoneinfo");
    let climbing = format!("{}{}", "../".repeat(20).trim_end_matches('/'), secrets.path().display());
    // An absolute link starts again at the sysroot, a relative one stops there: neither reaches
    // the folder of this machine it names, which would be packed whole.
    for target in [secrets.path().display().to_string(), climbing] {
        std::os::unix::fs::symlink(&target, &zoneinfo).unwrap();
        assert!(zoneinfo.join("config.json").is_file(), "on this machine, {target} is the secret folder");
        let err = pack_fails(work.path(), &static_c_hello(), |mut c| {
            c.arg("--sysroot").arg(&sysroot).args(["--tzdata", "yes", "--tzdata-source", "host"]);
            c
        });
        assert_eq!(
            first_line(&err),
            format!(
                "error: {}: needs time zones (--tzdata yes), but --tzdata-source host has none: {} does not exist",
                static_c_hello().display(),
                zoneinfo.display()
            ),
            "{target}"
        );
        std::fs::remove_file(&zoneinfo).unwrap();
    }
    // A link inside the sysroot is followed there.
    std::fs::create_dir_all(sysroot.join("usr/share/zoneinfo-2024")).unwrap();
    std::fs::write(sysroot.join("usr/share/zoneinfo-2024/UTC"), "TZif-ish").unwrap();
    std::os::unix::fs::symlink("/usr/share/zoneinfo-2024", &zoneinfo).unwrap();
    let layout = work.path().join("out");
    let out = format!("oci:{}:latest", layout.display());
    pack(
        &[
            static_c_hello().to_str().unwrap(),
            "--sysroot",
            sysroot.to_str().unwrap(),
            "--tzdata",
            "yes",
            "--tzdata-source",
            "host",
            "--output",
            &out,
        ],
        |_| {},
    );
    let bundle = unpack(&layout, "latest", work.path());
    assert_eq!(std::fs::read_to_string(bundle.join("rootfs/usr/share/zoneinfo/UTC")).unwrap(), "TZif-ish");
    assert_secret_nowhere(work.path(), Path::new("/nonexistent"));
}

/// The binary's layer starts before what it needs is decided; a pack that then fails (here on a
/// missing `--add` file) stops that layer at once instead of compressing 256 MB for nothing.
#[test]
fn a_failure_after_the_binary_layer_started_stops_it() {
    let work = temp_dir();
    let big = work.path().join("big");
    let mut bytes = std::fs::read(static_c_hello()).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    bytes.extend((0..256 << 20).map(|_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    }));
    std::fs::write(&big, &bytes).unwrap();
    drop(bytes);
    let out = work.path().join("out");
    let output = scratchpack()
        .arg("pack")
        .arg(&big)
        .args(["--add", "/nonexistent/app.toml:/etc/app.toml", "-vv", "--output"])
        .arg(format!("oci:{}", out.display()))
        .output()
        .unwrap();
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error: --add /nonexistent/app.toml: No such file or directory"), "{stderr}");
    assert!(!stderr.contains("layer of"), "the binary's layer was finished anyway:\n{stderr}");
    assert_eq!(stdout(&output), "");
    assert!(!out.exists());
    assert_eq!(tree_listing(work.path()), vec!["big".to_string()], "no staging folder left");
}

/// A failure after the shared layers were placed in the layout early (while the binary's layer was
/// compressed): the SBOM folder cannot be made. A new layout is removed whole; an existing one
/// loses the blobs this pack added and keeps everything else.
#[test]
fn a_failure_after_the_layout_got_its_first_blobs_takes_them_back() {
    let work = temp_dir();
    let blocked = work.path().join("file");
    std::fs::write(&blocked, b"not a folder").unwrap();
    let sbom_dir = blocked.join("sboms");
    let fail_into = |layout: &Path| {
        let output = scratchpack()
            .arg("pack")
            .arg(dynamic_c_hello())
            .args(["--sbom", "spdx", "--sbom-dir"])
            .arg(&sbom_dir)
            .arg("--output")
            .arg(format!("oci:{}", layout.display()))
            .output()
            .unwrap();
        let stderr = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(&format!("error: {}: cannot create the SBOM folder", sbom_dir.display())), "{stderr}");
        assert_eq!(stdout(&output), "");
    };
    let fresh = work.path().join("fresh");
    fail_into(&fresh);
    assert!(!fresh.exists(), "{:?}", tree_listing(&fresh));

    let existing = work.path().join("existing");
    pack(&[static_c_hello().to_str().unwrap(), "--output", &format!("oci:{}:c", existing.display())], |_| {});
    let before = tree_listing(&existing);
    fail_into(&existing);
    assert_eq!(tree_listing(&existing), before);
    assert_eq!(tree_listing(work.path()).iter().filter(|p| p.contains(".scratchpack-")).count(), 0, "no staging folder left");
}

/// A FIFO is refused by name; nothing opens it (opening a FIFO for reading waits for a writer).
#[test]
fn a_fifo_is_refused_without_waiting_for_a_writer() {
    let work = temp_dir();
    let fifo = work.path().join("pipe");
    run_ok(Command::new("mkfifo").arg(&fifo));
    let mut child = scratchpack()
        .arg("pack")
        .arg(&fifo)
        .arg("--output")
        .arg(format!("oci:{}", work.path().join("out").display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(20) {
            child.kill().unwrap();
            panic!("scratchpack waited on the FIFO");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert_eq!(first_line(&err), format!("error: {}: not a regular file", fifo.display()));
    assert_eq!(stdout(&output), "");
    assert_eq!(tree_listing(work.path()), vec!["pipe".to_string()]);
}
