//! Hostile CA and key files: a private key or a junk block in `--extra-ca`/`--ca-bundle` never
//! reaches an image, and file options refuse devices, FIFOs and huge files instead of running out
//! of memory or blocking.
//!
//! Each run is bounded: 2 GiB of address space (a read of `/dev/zero` that would grow without end
//! aborts instead of taking the machine) and 60 seconds (a read that blocks fails the test).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::util::*;

const ADDRESS_SPACE: u64 = 2 << 30;
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// Runs `cmd` within the bounds above: the output, or a panic when it hangs.
fn bounded(cmd: &mut Command) -> Output {
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: ADDRESS_SPACE, rlim_max: ADDRESS_SPACE };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("scratchpack runs");
    let pid = child.id() as libc::pid_t;
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || send.send(child.wait_with_output()));
    match receive.recv_timeout(TIME_LIMIT) {
        Ok(output) => output.expect("scratchpack's output"),
        Err(_) => {
            // SAFETY: the child is not reaped yet (its waiter is still waiting), so the pid is its.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{cmd:?} still ran after {TIME_LIMIT:?}");
        }
    }
}

/// A credential-free environment: no login file of the machine is read.
fn isolated<'a>(cmd: &'a mut Command, home: &Path) -> &'a mut Command {
    cmd.env("HOME", home).env_remove("DOCKER_CONFIG").env_remove("REGISTRY_AUTH_FILE").env_remove("XDG_RUNTIME_DIR")
}

/// `pack hello --output oci:DIR` plus `args`, bounded; DIR is `work/out`.
fn pack_with(work: &Path, args: &[&str]) -> Output {
    let out = work.join("out");
    let mut cmd = scratchpack();
    cmd.arg("pack").arg(static_c_hello()).arg("--output").arg(format!("oci:{}", out.display())).args(args);
    bounded(isolated(&mut cmd, work))
}

/// A failed run: exit 1, nothing on stdout, `want` as the whole of stderr.
fn assert_refused(output: &Output, want: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert_eq!(stdout(output), "");
    assert_eq!(err, want);
}

/// A self-signed P-256 CA: (certificate file, key file), as openssl writes them.
fn make_ca(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("ca.crt"), dir.join("ca.key"));
    run_ok(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
            .args(["-subj", "/CN=scratchpack hostile test CA", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    (cert, key)
}

fn mkfifo(path: &Path) {
    run_ok(Command::new("mkfifo").arg(path));
}

/// A `server.pem` as nginx and haproxy take it, the certificate then its key, is refused whole
/// by --extra-ca and --ca-bundle, naming the file and the key; nothing is written.
#[test]
fn a_certificate_with_its_private_key_is_refused() {
    let work = temp_dir();
    let (cert, key) = make_ca(work.path());
    let cert_text = std::fs::read_to_string(&cert).unwrap();
    let key_text = std::fs::read_to_string(&key).unwrap();
    assert!(key_text.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{key_text}");
    let server = work.path().join("server.pem");
    std::fs::write(&server, format!("{cert_text}{key_text}")).unwrap();
    let key_line = cert_text.lines().count() + 1;
    for flag in ["--extra-ca", "--ca-bundle"] {
        let output = pack_with(work.path(), &[flag, server.to_str().unwrap()]);
        assert_refused(
            &output,
            &format!(
                "error: {path}: block 2 (line {key_line}) is a private key (-----BEGIN PRIVATE KEY-----); a private key is never copied into an image\n\
                 hint: give the certificate alone, e.g. `openssl x509 -in {path} -out ca.pem`\n",
                path = server.display()
            ),
        );
        assert!(!work.path().join("out").exists(), "{flag}: the layout was written");
    }
}

/// A CERTIFICATE block that is no certificate is refused, with the file and the block.
#[test]
fn a_junk_certificate_block_is_refused() {
    let work = temp_dir();
    let (cert, _) = make_ca(work.path());
    let junk = work.path().join("junk.pem");
    let cert_text = std::fs::read_to_string(&cert).unwrap();
    std::fs::write(&junk, format!("{cert_text}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")).unwrap();
    let output = pack_with(work.path(), &["--extra-ca", junk.to_str().unwrap()]);
    assert_refused(
        &output,
        &format!(
            "error: {path}: block 2 (line {line}) is not an X.509 certificate: its DER does not parse (BER error: Unexpected Tag (expected: Some(Tag(16)), actual: Tag(0)))\n\
             hint: see what openssl makes of it: `openssl storeutl -certs -noout -text {path}`\n",
            path = junk.display(),
            line = cert_text.lines().count() + 1
        ),
    );
    assert!(!work.path().join("out").exists());
}

/// A good --extra-ca still goes in: the image's bundle is the builtin one followed by exactly the
/// certificate, without the text that `openssl x509 -text` writes before it.
#[test]
fn a_good_extra_ca_goes_in_as_the_certificate_alone() {
    let work = temp_dir();
    let (cert, _) = make_ca(work.path());
    let described = work.path().join("described.pem");
    let text = run_ok(Command::new("openssl").args(["x509", "-text", "-in"]).arg(&cert));
    std::fs::write(&described, &text.stdout).unwrap();
    assert!(stdout(&text).starts_with("Certificate:\n"), "openssl x509 -text writes a description first");
    let output = pack_with(work.path(), &["--extra-ca", described.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let bundle = unpack(&work.path().join("out"), "latest", work.path());
    let in_image = std::fs::read(bundle.join("rootfs/etc/ssl/certs/ca-certificates.crt")).unwrap();
    let builtin = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/ca-certificates.crt")).unwrap();
    let appended = in_image.strip_prefix(&builtin[..]).expect("the builtin bundle comes first, unchanged");
    assert_eq!(String::from_utf8_lossy(appended), std::fs::read_to_string(&cert).unwrap());
}

/// --extra-ca and --ca-bundle on a device, a FIFO or a file over 4 MiB: refused at once, by
/// name, without reading it.
#[test]
fn ca_options_refuse_devices_fifos_and_huge_files() {
    let work = temp_dir();
    let fifo = work.path().join("fifo.pem");
    mkfifo(&fifo);
    let huge = work.path().join("huge.pem");
    std::fs::File::create(&huge).unwrap().set_len((4 << 20) + 1).unwrap();
    let cases = [
        ("/dev/zero", "it is not a regular file but a character device"),
        (fifo.to_str().unwrap(), "it is not a regular file but a FIFO"),
        (huge.to_str().unwrap(), "it is larger than 4 MiB"),
    ];
    for flag in ["--extra-ca", "--ca-bundle"] {
        for (path, problem) in cases {
            let output = pack_with(work.path(), &[flag, path]);
            assert_refused(&output, &format!("error: {path}: cannot read the CA bundle: {problem}\n"));
            assert!(!work.path().join("out").exists());
        }
    }
}

/// --registry-ca and the registry auth file (REGISTRY_AUTH_FILE) on a device or a FIFO: refused
/// by name before any connection (port 1 has no registry).
#[test]
fn registry_file_options_refuse_devices_and_fifos() {
    let work = temp_dir();
    let fifo = work.path().join("fifo");
    mkfifo(&fifo);
    let repository = "127.0.0.1:1/hostile/certs";
    let dest = format!("docker://{repository}");
    let cases =
        [("/dev/zero", "it is not a regular file but a character device"), (fifo.to_str().unwrap(), "it is not a regular file but a FIFO")];
    for (path, problem) in cases {
        let mut cmd = scratchpack();
        cmd.arg("pack").arg(static_c_hello()).args(["--quiet", "--output", &dest, "--registry-ca", path]);
        let output = bounded(isolated(&mut cmd, work.path()));
        assert_refused(
            &output,
            &format!("error: writing {dest}: pushing to {repository}: {path}: cannot read the registry CA: {problem}\n"),
        );

        let mut cmd = scratchpack();
        cmd.arg("pack").arg(static_c_hello()).args(["--quiet", "--output", &dest]);
        let output = bounded(isolated(&mut cmd, work.path()).env("REGISTRY_AUTH_FILE", path));
        assert_refused(&output, &format!("error: writing {dest}: pushing to {repository}: {path}: cannot read the auth file: {problem}\n"));
    }
}
