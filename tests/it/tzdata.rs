//! Built-in time zones (`--tzdata-source`): the same zoneinfo layer, and so the same digest, on
//! every machine whatever its tzdata; a program that needs zones the chosen source lacks fails the
//! pack; `--ca-bundle host` without a host bundle fails the same way. Each "host" is a mount
//! namespace (`unshare -m`) with a folder bind-mounted over the system one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::util::{
    c_fixture, digest_of, go_fixture, run_image, run_ok, scratchpack, skopeo_inspect, stderr, stdout, temp_dir, tree_listing,
};

/// The gzip digest of the built-in zoneinfo layer (tzdata 2026f): the same on every machine.
const BUILTIN_ZONEINFO_GZIP: &str = "sha256:f3fa78ce1276e62011605fa0acd8795db57363104e1c93638ff8f2bf4a2b9956";
const PARIS_IN_JULY: &str = "2024-07-03 11:46 CEST\n";

/// A static C program that prints a July instant in Europe/Paris.
fn paris_july() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    c_fixture(&CELL, "paris_july.c", "paris-july", &["-static"])
}

fn builtin_version() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tzdata/VERSION")).unwrap().trim().to_string()
}

/// `scratchpack ARGS` in a mount namespace where `over` is bind-mounted on `system`.
fn in_namespace(system: &str, over: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "sh", "-c", r#"mount --bind "$0" "$1" && shift && exec "$@""#]).arg(over).arg(system);
    cmd.arg(env!("CARGO_BIN_EXE_scratchpack")).args(args);
    // The environment of `scratchpack()`: the tests' layer cache, no SOURCE_DATE_EPOCH.
    for (key, value) in scratchpack().get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    cmd.output().expect("unshare")
}

fn pack_to(layout: &Path, extra: &[&str]) -> Vec<String> {
    let program = paris_july();
    let out = format!("oci:{}:latest", layout.display());
    let mut args = vec!["pack", program.to_str().unwrap(), "--output", &out];
    args.extend(extra);
    let output = run_ok(scratchpack().args(&args));
    stdout(&output).lines().map(str::to_string).collect()
}

fn manifest(layout: &Path) -> serde_json::Value {
    skopeo_inspect(&format!("oci:{}:latest", layout.display()), &["--raw"])
}

/// A pack that fails: exit 1, nothing on stdout, nothing written under `work`; returns stderr.
fn fails(work: &Path, output: Output) -> String {
    assert_eq!(output.status.code(), Some(1), "stderr: {}", stderr(&output));
    assert_eq!(stdout(&output), "");
    assert_eq!(tree_listing(work), Vec::<String>::new(), "nothing written");
    let err = stderr(&output);
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn the_same_digest_from_three_hosts() {
    let program = paris_july();
    let inspect = stdout(&run_ok(scratchpack().arg("inspect").arg(&program)));
    assert!(inspect.contains("\n  time-zones: string \"/usr/share/zoneinfo\""), "{inspect}");

    let work = temp_dir();
    let empty = work.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    // Another tzdata release: the host's, with Paris as UTC.
    let other = work.path().join("other");
    run_ok(Command::new("cp").args(["-a", "/usr/share/zoneinfo"]).arg(&other));
    std::fs::copy(other.join("Etc/UTC"), other.join("Europe/Paris")).unwrap();

    let here = work.path().join("here");
    let digest = digest_of(&pack_to(&here, &[])[0]);
    for host in [&empty, &other] {
        let layout = work.path().join(host.file_name().unwrap()).with_extension("oci");
        let out = format!("oci:{}:latest", layout.display());
        let output = in_namespace("/usr/share/zoneinfo", host, &["pack", program.to_str().unwrap(), "--output", &out]);
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(digest_of(stdout(&output).trim()), digest, "zoneinfo {}", host.display());
    }

    let manifest = manifest(&here);
    assert_eq!(manifest["layers"][1]["digest"], BUILTIN_ZONEINFO_GZIP, "{manifest}");
    assert_eq!(manifest["annotations"]["dev.scratchpack.tzdata.version"], builtin_version().as_str(), "{manifest}");
    assert_eq!(run_image(&here, "latest"), PARIS_IN_JULY);
}

/// A Go program built with cgo off reads the zones itself: it is seen as reading them, and on a
/// host with no zoneinfo at all its image still has Europe/Paris, from the built-in zones.
#[test]
fn a_static_go_program_gets_the_zones_on_a_host_without_any() {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    let program = go_fixture(&CELL, "paris_july.go", "paris-july-go");
    let work = temp_dir();
    let empty = work.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let layout = work.path().join("go.oci");
    let out = format!("oci:{}:latest", layout.display());
    let output = in_namespace("/usr/share/zoneinfo", &empty, &["pack", program.to_str().unwrap(), "--output", &out]);
    assert!(output.status.success(), "{}", stderr(&output));
    let manifest = manifest(&layout);
    assert_eq!(manifest["layers"][1]["digest"], BUILTIN_ZONEINFO_GZIP, "{manifest}");
    assert_eq!(run_image(&layout, "latest"), PARIS_IN_JULY);
}

#[test]
fn an_empty_host_zoneinfo_fails_the_pack() {
    let work = temp_dir();
    let empty = temp_dir();
    let program = paris_july();
    let out = format!("oci:{}:latest", work.path().join("out").display());
    let args = ["pack", program.to_str().unwrap(), "--tzdata-source", "host", "--output", &out];
    let err = fails(work.path(), in_namespace("/usr/share/zoneinfo", empty.path(), &args));
    assert_eq!(
        err,
        format!(
            "error: {}: needs time zones (string \"/usr/share/zoneinfo\", string \"/etc/localtime\"), but --tzdata-source host has none: \
             /usr/share/zoneinfo holds no zone files\n\
             hint: use --tzdata-source builtin (the IANA zones scratchpack carries), install tzdata (or into the sysroot), \
             or --tzdata no if the program never reads time zones\n",
            program.display()
        )
    );
}

#[test]
fn a_zoneinfo_folder_must_hold_zones() {
    let work = temp_dir();
    let empty = temp_dir();
    let program = paris_july();
    let out = format!("oci:{}:latest", work.path().join("out").display());
    let hint = "hint: use --tzdata-source builtin (the IANA zones scratchpack carries), point --tzdata-source at a folder of TZif \
                files, or --tzdata no if the program never reads time zones\n";
    // Asked for with --tzdata yes, by a program that shows no sign of reading zones.
    let hello = crate::util::static_c_hello();
    let missing = empty.path().join("missing");
    let output =
        scratchpack().arg("pack").arg(&hello).args(["--tzdata", "yes", "--tzdata-source"]).arg(&missing).args(["--output", &out]).output();
    let err = fails(work.path(), output.unwrap());
    assert_eq!(
        err,
        format!(
            "error: {}: needs time zones (--tzdata yes), but --tzdata-source {} has none: {} does not exist\n{hint}",
            hello.display(),
            missing.display(),
            missing.display()
        )
    );
    // An empty folder, or one with only folders and links, holds no zones.
    std::fs::create_dir_all(empty.path().join("Europe")).unwrap();
    std::os::unix::fs::symlink("/usr/share/zoneinfo/Europe/Paris", empty.path().join("Europe/Paris")).unwrap();
    let output = scratchpack().arg("pack").arg(&program).arg("--tzdata-source").arg(empty.path()).args(["--output", &out]).output();
    let err = fails(work.path(), output.unwrap());
    assert_eq!(
        err,
        format!(
            "error: {}: needs time zones (string \"/usr/share/zoneinfo\", string \"/etc/localtime\"), but --tzdata-source {} has none: \
             {} holds no zone files\n{hint}",
            program.display(),
            empty.path().display(),
            empty.path().display()
        )
    );
}

#[test]
fn a_zoneinfo_folder_is_packed_as_it_is() {
    let work = temp_dir();
    let zones = work.path().join("zones");
    std::fs::create_dir_all(zones.join("Europe")).unwrap();
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("tzdata/zoneinfo/Europe/Paris"), zones.join("Europe/Paris")).unwrap();
    let layout = work.path().join("dir");
    pack_to(&layout, &["--tzdata-source", zones.to_str().unwrap()]);
    let manifest = manifest(&layout);
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 3, "base, zoneinfo, app: {manifest}");
    assert_ne!(manifest["layers"][1]["digest"], BUILTIN_ZONEINFO_GZIP);
    assert!(manifest["annotations"].get("dev.scratchpack.tzdata.version").is_none(), "only built-in zones are annotated: {manifest}");
    assert_eq!(run_image(&layout, "latest"), PARIS_IN_JULY);
    // And the host's, which stays as it was: copied whole.
    let host = work.path().join("host");
    pack_to(&host, &["--tzdata-source", "host"]);
    let bundle = crate::util::unpack(&host, "latest", work.path());
    assert_eq!(
        std::fs::read(bundle.join("rootfs/usr/share/zoneinfo/Europe/Paris")).unwrap(),
        std::fs::read("/usr/share/zoneinfo/Europe/Paris").unwrap()
    );
}

#[test]
fn ca_bundle_host_without_a_bundle_fails_the_pack() {
    let work = temp_dir();
    let empty = temp_dir();
    let out = format!("oci:{}:latest", work.path().join("out").display());
    let hello = crate::util::static_c_hello();
    let err = fails(
        work.path(),
        in_namespace("/etc/ssl", empty.path(), &["pack", hello.to_str().unwrap(), "--ca-bundle", "host", "--output", &out]),
    );
    assert_eq!(
        err,
        "error: --ca-bundle host: no CA bundle on this machine (looked in /etc/ssl/certs/ca-certificates.crt, \
         /etc/pki/tls/certs/ca-bundle.crt, /etc/ssl/ca-bundle.pem, /etc/pki/tls/cacert.pem, \
         /etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem, /etc/ssl/cert.pem)\n\
         hint: install ca-certificates, or use --ca-bundle builtin\n"
    );
}
