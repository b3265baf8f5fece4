//! Scanners see the bundled Debian packages: a dynamic program's image carries, for each package
//! that owns one of its libraries, `/var/lib/dpkg/status.d/<package>` and `<package>.md5sums`, as
//! distroless images do, and the root's `/etc/os-release`. python-debian's deb822 reads them as
//! dpkg does; a static image has none of them.

use std::path::Path;
use std::process::Command;

use crate::util::*;

/// `dpkg-query -W -f=${FIELD} PACKAGE` on this machine.
fn dpkg_field(package: &str, field: &str) -> String {
    stdout(&run_ok(Command::new("dpkg-query").args(["-W", &format!("-f=${{{field}}}"), package])))
}

/// Package, Version and Architecture of the stanza at `path`, as python-debian's deb822 reads them.
fn deb822_fields(path: &Path) -> Vec<String> {
    let script = "import sys\nfrom debian.deb822 import Deb822\n\
                  with open(sys.argv[1]) as f:\n    stanzas = list(Deb822.iter_paragraphs(f))\n\
                  assert len(stanzas) == 1, stanzas\n\
                  print(stanzas[0]['Package'], stanzas[0]['Version'], stanzas[0]['Architecture'], 'Conffiles' in stanzas[0])";
    let output = run_ok(Command::new("python3").args(["-c", script]).arg(path));
    stdout(&output).split_whitespace().map(str::to_string).collect()
}

#[test]
fn a_dynamic_program_carries_the_records_of_its_packages() {
    let work = temp_dir();
    let layout = work.path().join("dynamic");
    pack(&[dynamic_c_hello().to_str().unwrap(), "--output", &format!("oci:{}", layout.display())], |_| {});
    let rootfs = unpack(&layout, "latest", work.path()).join("rootfs");
    let status_d = rootfs.join("var/lib/dpkg/status.d");

    let libc6 = deb822_fields(&status_d.join("libc6"));
    assert_eq!(libc6, ["libc6".to_string(), dpkg_field("libc6", "Version"), dpkg_field("libc6", "Architecture"), "False".into()]);
    // The md5sums name only files the image holds, with dpkg's sums, which are the files' own.
    let md5sums = std::fs::read_to_string(status_d.join("libc6.md5sums")).unwrap();
    assert!(md5sums.lines().any(|line| line.ends_with("/libc.so.6")), "{md5sums}");
    for line in md5sums.lines() {
        let (md5, path) = line.split_once("  ").unwrap();
        let file = rootfs.join(path);
        let actual = stdout(&run_ok(Command::new("md5sum").arg(&file)));
        assert_eq!(actual.split_whitespace().next(), Some(md5), "{path}");
    }
    let listed = md5sums.lines().count();
    let held = tree_listing(&rootfs).iter().filter(|path| path.contains(".so")).count();
    assert!(listed <= held, "{listed} lines for {held} library files");
    // Every record is one a package of this machine owns.
    let mut names: Vec<String> = std::fs::read_dir(&status_d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".md5sums"))
        .collect();
    names.sort();
    for name in &names {
        let fields = deb822_fields(&status_d.join(name));
        assert_eq!(fields[1], dpkg_field(name, "Version"), "{name}");
    }
    assert_eq!(std::fs::read(rootfs.join("etc/os-release")).unwrap(), std::fs::read("/etc/os-release").unwrap());
    assert_eq!(run_image(&layout, "latest"), "hello from C, uid 65532\n");
}

#[test]
fn a_static_image_has_no_package_records() {
    let work = temp_dir();
    let layout = work.path().join("static");
    pack(&[static_c_hello().to_str().unwrap(), "--output", &format!("oci:{}", layout.display())], |_| {});
    let rootfs = unpack(&layout, "latest", work.path()).join("rootfs");
    assert!(!rootfs.join("var/lib/dpkg").exists());
    assert!(!rootfs.join("etc/os-release").exists());
}
