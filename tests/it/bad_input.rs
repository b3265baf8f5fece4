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
        (&["--output", "tarball:x"], "error: --output \"tarball:x\": unknown destination; expected oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF] or docker://HOST/REPO[:TAG]"),
        (&["--output", "oci:out:-x"], "error: --output \"oci:out:-x\": invalid tag \"-x\": a tag is 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'"),
        (&["--output", "oci:out", "--expose", "99999"], "error: --expose \"99999\": expected PORT[/tcp|/udp|/sctp] with PORT from 1 to 65535"),
        (&["--output", "oci:out", "--env", "NOEQUALS"], "error: --env \"NOEQUALS\": expected KEY=VALUE"),
        (&["--output", "oci:out", "--add", "x:relative"], "error: invalid value 'x:relative' for '--add <SRC:DEST[:MODE]>': expected SRC:DEST[:MODE], with DEST an absolute path in the image and MODE octal"),
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
