//! Owners and modes: `--mkdir`, `--add …:MODE:UID:GID` and `--chown-to-user`, as runc lets the
//! default user use them, as umoci unpacks them and as the layer skopeo copies out records them.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::util::*;

/// `ownership.c`, static: writes into /var/cache/app, reads /etc/app/secret.
fn probe() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    c_fixture(&CELL, "ownership.c", "ownership-static", &["-static"])
}

/// Packs the probe with `args` into `oci:LAYOUT:latest` and returns its reference line.
fn pack_probe(layout: &Path, args: &[&str]) -> String {
    let lines = pack(&[probe().to_str().unwrap(), "--output", &format!("oci:{}", layout.display())], |cmd| {
        cmd.args(args);
    });
    lines[0].clone()
}

/// `tar --numeric-owner -tvzf` of every layer, as skopeo copies them out of the layout: lines of
/// `MODE UID/GID PATH` for the paths that end with one of `paths`.
fn layer_owners(layout: &Path, paths: &[&str]) -> Vec<String> {
    let work = temp_dir();
    let copy = work.path().join("copy");
    run_ok(Command::new("skopeo").arg("copy").arg(format!("oci:{}:latest", layout.display())).arg(format!("dir:{}", copy.display())));
    let mut lines = Vec::new();
    for layer in skopeo_inspect(&format!("oci:{}:latest", layout.display()), &[])["Layers"].as_array().unwrap() {
        let blob = copy.join(layer.as_str().unwrap().strip_prefix("sha256:").unwrap());
        let listing = stdout(&run_ok(Command::new("tar").arg("--numeric-owner").arg("-tvzf").arg(&blob)));
        for line in listing.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let path = fields[5];
            if paths.iter().any(|wanted| path.trim_end_matches('/') == *wanted) {
                lines.push(format!("{} {} {}", fields[0], fields[1], path));
            }
        }
    }
    lines
}

#[test]
fn a_mkdir_folder_and_an_added_file_are_usable_by_the_default_user() {
    let work = temp_dir();
    let secret = work.path().join("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let layout = work.path().join("layout");
    let add = format!("{}:/etc/app/secret:0640:0:65532", secret.display());
    let line = pack_probe(&layout, &["--mkdir", "/var/cache/app::65532:65532", "--add", &add]);
    oci_validate(&layout, "latest");
    assert_eq!(run_image(&layout, "latest"), "uid 65532 gid 65532\nwrite: ok\nread: s3cret\n");

    // umoci, unpacking as root, keeps the owners and modes.
    let unpacked = temp_dir();
    let rootfs = unpack(&layout, "latest", unpacked.path()).join("rootfs");
    let stat = |path: &str| {
        let meta = std::fs::symlink_metadata(rootfs.join(path)).unwrap();
        format!("{:o} {}:{}", meta.mode(), meta.uid(), meta.gid())
    };
    assert_eq!(stat("var/cache/app"), "40755 65532:65532");
    assert_eq!(stat("var/cache"), "40755 0:0");
    assert_eq!(stat("etc/app/secret"), "100640 0:65532");
    assert_eq!(stat("etc/app"), "40755 0:0");
    assert_eq!(stat("home/nonroot"), "40700 65532:65532");

    // The layer as skopeo copies it out.
    assert_eq!(
        layer_owners(&layout, &["var/cache/app", "etc/app/secret"]),
        ["-rw-r----- 0/65532 etc/app/secret", "drwxr-xr-x 65532/65532 var/cache/app/"]
    );

    // Reproducible: the same flags make the same image.
    let again = pack_probe(&work.path().join("again"), &["--mkdir", "/var/cache/app::65532:65532", "--add", &add]);
    assert_eq!(digest_of(&again), digest_of(&line));
}

#[test]
fn without_the_owners_the_default_user_is_refused() {
    let work = temp_dir();
    let secret = work.path().join("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let layout = work.path().join("layout");
    pack_probe(&layout, &["--mkdir", "/var/cache/app", "--add", &format!("{}:/etc/app/secret:0640", secret.display())]);
    assert_eq!(run_image(&layout, "latest"), "uid 65532 gid 65532\nwrite: Permission denied\nread: Permission denied\n");
}

#[test]
fn chown_to_user_gives_an_added_folder_to_the_user_of_user() {
    let work = temp_dir();
    let cache = work.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::write(cache.join("seed"), "x").unwrap();
    let secret = work.path().join("secret");
    std::fs::write(&secret, "mine\n").unwrap();
    let layout = work.path().join("layout");
    let args = [
        "--user",
        "1000:1000",
        "--add",
        &format!("{}:/var/cache/app", cache.display()),
        "--add",
        &format!("{}:/etc/app/secret:0600", secret.display()),
        "--chown-to-user",
        "/var/cache/app",
        "--chown-to-user",
        "/etc/app/secret",
    ];
    pack_probe(&layout, &args);
    assert_eq!(run_image(&layout, "latest"), "uid 1000 gid 1000\nwrite: ok\nread: mine\n");
    assert_eq!(
        layer_owners(&layout, &["var/cache/app", "var/cache/app/seed", "etc/app/secret"]),
        ["-rw------- 1000/1000 etc/app/secret", "drwxr-xr-x 1000/1000 var/cache/app/", "-rw-r--r-- 1000/1000 var/cache/app/seed"]
    );
}

#[test]
fn a_program_placed_in_an_owned_folder_leaves_its_owner_alone() {
    // The program's layer comes last: the folders above the program must not undo the base's
    // /home/nonroot or a --mkdir.
    let work = temp_dir();
    let layout = work.path().join("layout");
    pack_probe(
        &layout,
        &["--path", "/home/nonroot/bin/probe", "--mkdir", "/home/nonroot/bin:0750:65532:65532", "--mkdir", "/var/cache/app::65532:65532"],
    );
    let unpacked = temp_dir();
    let rootfs = unpack(&layout, "latest", unpacked.path()).join("rootfs");
    let stat = |path: &str| {
        let meta = std::fs::symlink_metadata(rootfs.join(path)).unwrap();
        format!("{:o} {}:{}", meta.mode(), meta.uid(), meta.gid())
    };
    assert_eq!(stat("home/nonroot"), "40700 65532:65532");
    assert_eq!(stat("home/nonroot/bin"), "40750 65532:65532");
    assert_eq!(stat("home/nonroot/bin/probe"), "100755 0:0");
    assert_eq!(run_image(&layout, "latest"), "uid 65532 gid 65532\nwrite: ok\nread: No such file or directory\n");
}

#[test]
fn conflicts_missing_paths_and_paths_out_of_the_image_are_errors_and_nothing_is_written() {
    let work = temp_dir();
    let layout = work.path().join("layout");
    let fails = |args: &[&str]| {
        let output = scratchpack()
            .args(["pack", probe().to_str().unwrap(), "--output", &format!("oci:{}", layout.display())])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}: {}", stderr(&output));
        assert!(!layout.exists(), "{args:?}");
        stderr(&output)
    };
    assert_eq!(
        fails(&["--mkdir", "/data::1:1", "--mkdir", "/data::2:2"]),
        "error: /data is made twice with different owners: 1:1 by --mkdir /data::1:1 and 2:2 by --mkdir /data::2:2\n\
         hint: give the path one owner, or make it once\n"
    );
    assert_eq!(
        fails(&["--chown-to-user", "/var/data"]),
        "error: --chown-to-user /var/data: the image holds no such path\nhint: make it with --mkdir /var/data or --add SRC:/var/data\n"
    );
    assert_eq!(
        fails(&["--mkdir", "/var/../../etc::65532"]),
        "error: --mkdir /var/../../etc::65532: image path \"/var/../../etc\" must not contain '..'\n"
    );
    assert_eq!(
        fails(&["--user", "www-data", "--mkdir", "/data", "--chown-to-user", "/data"]),
        "error: --chown-to-user: --user \"www-data\" names a user or group the image's /etc/passwd and /etc/group do not list\n\
         hint: give --user as numbers, UID:GID, or one of root, nobody and nonroot\n"
    );
}
