//! `--cap`: a program that runs as 65532 binds port 80 in its own network namespace with
//! `--cap net_bind_service`, and is refused without it, under runc (the image unpacked by umoci)
//! under containerd (`ctr run`) and under podman (`podman run`, runc).
//!
//! The bundle's process gets what Docker, containerd and Kubernetes give by default: a bounding set
//! that holds CAP_NET_BIND_SERVICE, no ambient capabilities, `noNewPrivileges` off. umoci's own
//! config differs: its ambient set holds CAP_NET_BIND_SERVICE (any program could bind port 80), and
//! it sets `noNewPrivileges`, under which the kernel ignores file capabilities.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::support::containerd::Containerd;
use crate::util::*;

/// `bind80.c`, static.
fn bind80() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    c_fixture(&CELL, "bind80.c", "bind80-static", &["-static"])
}

/// containerd's default capabilities (`oci.WithDefaultSpec`), Docker's too.
const ENGINE_DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The `security.capability` attribute of `path`, if it has one.
fn file_capability(path: &Path) -> Option<Vec<u8>> {
    let name = std::ffi::CString::new("security.capability").unwrap();
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let mut value = [0u8; 64];
    // SAFETY: NUL-terminated strings and a buffer of the length given, all alive across the call.
    let read = unsafe { libc::lgetxattr(c_path.as_ptr(), name.as_ptr(), value.as_mut_ptr().cast(), value.len()) };
    (read >= 0).then(|| value[..read as usize].to_vec())
}

/// Unpacks `layout:tag` with umoci, gives its process the engines' default capabilities, runs it
/// with runc; returns the program's file capability in the unpacked root, and the run's output.
fn run_under_runc(layout: &Path, tag: &str) -> (Option<Vec<u8>>, String, Option<i32>) {
    let work = temp_dir();
    let bundle = unpack(layout, tag, work.path());
    let capability = file_capability(&bundle.join("rootfs/usr/local/bin/bind80-static"));
    let config_path = bundle.join("config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["process"]["noNewPrivileges"] = false.into();
    config["process"]["capabilities"] = serde_json::json!({
        "bounding": ENGINE_DEFAULT_CAPS, "effective": [], "permitted": [], "inheritable": [], "ambient": []
    });
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let output = runc_run(&bundle);
    (capability, stdout(&output), output.status.code())
}

#[test]
fn net_bind_service_lets_the_default_user_bind_port_80_under_runc() {
    let work = temp_dir();
    let layout = work.path().join("layout");
    let binary = bind80();
    let with_cap =
        pack(&[binary.to_str().unwrap(), "--cap", "net_bind_service", "--output", &format!("oci:{}:cap", layout.display())], |_| {});
    pack(&[binary.to_str().unwrap(), "--output", &format!("oci:{}:plain", layout.display())], |_| {});
    oci_validate(&layout, "cap");

    let (capability, output, code) = run_under_runc(&layout, "cap");
    // umoci applies the PAX record: the bytes `setcap cap_net_bind_service=+ep` writes.
    assert_eq!(
        capability.map(|value| value.iter().map(|b| format!("{b:02x}")).collect::<String>()).as_deref(),
        Some("0100000200040000000000000000000000000000")
    );
    assert_eq!((output.as_str(), code), ("uid 65532: bind 80: ok\n", Some(0)));

    let (capability, output, code) = run_under_runc(&layout, "plain");
    assert_eq!(capability, None);
    assert_eq!((output.as_str(), code), ("uid 65532: bind 80: Permission denied\n", Some(1)));

    // Reproducible, and the capability is part of the image.
    let again =
        pack(&[binary.to_str().unwrap(), "--cap", "CAP_NET_BIND_SERVICE", "--output", &format!("oci:{}:again", layout.display())], |_| {});
    assert_eq!(digest_of(&again[0]), digest_of(&with_cap[0]));
}

#[test]
fn containerd_applies_the_capability_too() {
    let work = temp_dir();
    let binary = bind80();
    let containerd = Containerd::start();
    for (tag, cap, expected, code) in [
        ("cap", Some("cap_net_bind_service"), "uid 65532: bind 80: ok\n", Some(0)),
        ("plain", None, "uid 65532: bind 80: Permission denied\n", Some(1)),
    ] {
        let archive = work.path().join(format!("{tag}.tar"));
        let mut args = vec![binary.to_str().unwrap().to_string(), "--output".into(), format!("oci-archive:{}:{tag}", archive.display())];
        if let Some(cap) = cap {
            args.extend(["--cap".into(), cap.into()]);
        }
        let line = pack(&args.iter().map(String::as_str).collect::<Vec<_>>(), |_| {});
        let imported = stdout(&run_ok(containerd.ctr().args(["images", "import", "--base-name", "scratchpack.test/bind80"]).arg(&archive)));
        assert_eq!(imported, format!("unpacking scratchpack.test/bind80:{tag} ({})...done\n", digest_of(&line[0])));
        let output = containerd
            .ctr()
            .args(["run", "--rm", &format!("scratchpack.test/bind80:{tag}"), &format!("scratchpack-it-{}-{tag}", std::process::id())])
            .output()
            .unwrap();
        assert_eq!((stdout(&output).as_str(), output.status.code()), (expected, code), "{tag}: {}", stderr(&output));
    }
}

#[test]
fn podman_applies_the_capability_too() {
    let work = temp_dir();
    let binary = bind80();
    // Its own storage (vfs) and run folders: no other podman state is touched.
    let podman = |args: &[&str]| {
        let mut cmd = Command::new("podman");
        cmd.arg("--root").arg(work.path().join("root")).arg("--runroot").arg(work.path().join("run"));
        cmd.args(["--storage-driver", "vfs"]).args(args);
        cmd
    };
    for (tag, cap, expected, code) in [
        ("cap", Some("net_bind_service"), "uid 65532: bind 80: ok\n", Some(0)),
        ("plain", None, "uid 65532: bind 80: Permission denied\n", Some(1)),
    ] {
        let archive = work.path().join(format!("{tag}.tar"));
        let mut args = vec![
            binary.to_str().unwrap().to_string(),
            "--output".into(),
            format!("docker-archive:{}:localhost/bind80:{tag}", archive.display()),
        ];
        if let Some(cap) = cap {
            args.extend(["--cap".into(), cap.into()]);
        }
        pack(&args.iter().map(String::as_str).collect::<Vec<_>>(), |_| {});
        let loaded = stdout(&run_ok(&mut podman(&["load", "-q", "-i", archive.to_str().unwrap()])));
        assert_eq!(loaded, format!("Loaded image: localhost/bind80:{tag}\n"));
        let run = ["run", "--rm", "--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--network", "none"];
        let output = podman(&run).arg(format!("localhost/bind80:{tag}")).output().expect("podman (run scripts/install-test-deps.sh)");
        assert_eq!((stdout(&output).as_str(), output.status.code()), (expected, code), "{tag}: {}", stderr(&output));
    }
}

#[test]
fn an_unknown_capability_is_an_error_that_lists_the_known_ones() {
    let work = temp_dir();
    let layout = work.path().join("layout");
    let output = scratchpack()
        .args(["pack", bind80().to_str().unwrap(), "--cap", "net_bind", "--output", &format!("oci:{}", layout.display())])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.starts_with("error: --cap \"net_bind\": no such capability; the known ones are chown, dac_override, dac_read_search, "),
        "{err}"
    );
    assert!(err.contains(", net_bind_service, "), "{err}");
    assert!(err.ends_with(", bpf, checkpoint_restore\n"), "{err}");
    assert!(!layout.exists());
}
