//! Hostile layouts and archive paths: a link or a damaged blob in a layout never sends a host
//! file's bytes or a wrong blob anywhere, a linked layout folder or archive path is never written
//! through (but for a character device or FIFO), and a killed pack's staging folder does not stay.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::pki::sha256_digest;
use crate::support::*;
use crate::util::*;

fn pack_output(dest: &str, extra: impl FnOnce(&mut Command)) -> Output {
    let mut cmd = scratchpack();
    cmd.arg("pack").arg(static_c_hello()).args(["--output", dest]);
    extra(&mut cmd);
    cmd.output().unwrap()
}

/// The manifest of the only image in `layout`.
fn manifest(layout: &Path) -> serde_json::Value {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    serde_json::from_slice(&std::fs::read(blob_file(layout, digest)).unwrap()).unwrap()
}

fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

fn assert_refused(output: &Output, message: &str) {
    assert_eq!(output.status.code(), Some(1), "stdout:\n{}\nstderr:\n{}", stdout(output), stderr(output));
    assert_eq!(stdout(output), "");
    assert!(stderr(output).contains(message), "expected {message:?} in:\n{}", stderr(output));
}

/// Lists a tar archive with the real `tar`.
fn tar_listing(archive: &Path) -> Vec<String> {
    stdout(&run_ok(Command::new("tar").arg("-tf").arg(archive))).lines().map(str::to_string).collect()
}

#[test]
fn push_sends_no_byte_of_a_linked_or_damaged_blob() {
    let registry = Registry::plain();
    let work = temp_dir();
    let layout = work.path().join("layout");
    assert!(pack_output(&format!("oci:{}:v1", layout.display()), |_| {}).status.success());
    let manifest = manifest(&layout);
    let config = manifest["config"]["digest"].as_str().unwrap().to_string();
    let config_path = blob_file(&layout, &config);
    let config_bytes = std::fs::read(&config_path).unwrap();

    // The config replaced by a link to a host file of the same size.
    let host_file = work.path().join("host-secret");
    let secret: Vec<u8> = b"HOST-SECRET-".iter().copied().cycle().take(config_bytes.len()).collect();
    std::fs::write(&host_file, &secret).unwrap();
    std::fs::remove_file(&config_path).unwrap();
    std::os::unix::fs::symlink(&host_file, &config_path).unwrap();
    let push = |repo: &str| {
        scratchpack()
            .args(["push", &format!("oci:{}:v1", layout.display())])
            .arg(format!("docker://{}/{repo}", registry.host))
            .output()
            .unwrap()
    };
    let output = push("linked");
    assert_refused(
        &output,
        &format!(
            "error: reading oci:{dir}:v1: {dir}: blob {config} cannot be read (a symbolic link, which is never followed); the layout is damaged\n",
            dir = layout.display()
        ),
    );
    assert!(stderr(&output).contains("hint: pack the image again into this layout"), "{}", stderr(&output));
    let head = http_request(&registry.host, "HEAD", &format!("/v2/linked/blobs/{}", sha256_digest(&secret)), &[], b"").unwrap();
    assert_eq!(head.status, 404, "the host file reached the registry");
    assert_eq!(registry.blob_upload_requests(), 0, "nothing is sent before every blob is checked: {:?}", registry.requests());

    // A layer with one byte flipped, same size: refused before any upload too.
    std::fs::remove_file(&config_path).unwrap();
    std::fs::write(&config_path, &config_bytes).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_string();
    let layer_path = blob_file(&layout, &layer);
    flip_a_byte(&layer_path);
    let actual = sha256_digest(&std::fs::read(&layer_path).unwrap());
    let output = push("flipped");
    assert_refused(
        &output,
        &format!(
            "error: reading oci:{dir}:v1: {dir}: blob {layer} does not match its digest (its bytes hash to {actual}); the layout is damaged\n",
            dir = layout.display()
        ),
    );
    assert_eq!(registry.blob_upload_requests(), 0, "{:?}", registry.requests());
}

#[test]
fn a_damaged_blob_is_replaced_when_the_image_is_packed_again() {
    let work = temp_dir();
    let layout = work.path().join("layout");
    let dest = format!("oci:{}:v1", layout.display());
    let first = pack_output(&dest, |_| {});
    assert!(first.status.success(), "{}", stderr(&first));
    // The largest layer (the program's), one byte flipped, its size kept.
    let manifest = manifest(&layout);
    let layers = manifest["layers"].as_array().unwrap();
    let layer = layers.iter().max_by_key(|l| l["size"].as_u64().unwrap()).unwrap()["digest"].as_str().unwrap();
    flip_a_byte(&blob_file(&layout, layer));

    let second = pack_output(&dest, |_| {});
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(stdout(&second), stdout(&first));
    for (hex, _) in blob_sizes(&layout) {
        let bytes = std::fs::read(layout.join("blobs/sha256").join(&hex)).unwrap();
        assert_eq!(sha256_digest(&bytes), format!("sha256:{hex}"), "a blob of the layout does not hash to its name");
    }
    assert_eq!(run_image(&layout, "v1"), "hello from C, uid 65532\n");
}

#[test]
fn a_layout_with_linked_folders_or_files_is_refused() {
    let work = temp_dir();
    let layout = work.path().join("layout");
    assert!(pack_output(&format!("oci:{}:v1", layout.display()), |_| {}).status.success());
    let again = |tag: &str| {
        let mut cmd = scratchpack();
        cmd.arg("pack").arg(static_rust_hello()).args(["--output", &format!("oci:{}:{tag}", layout.display())]);
        cmd.output().unwrap()
    };

    // blobs/sha256 a link to an empty folder elsewhere: nothing is written there.
    let outside = work.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let blob_dir = layout.join("blobs/sha256");
    let real = layout.join("blobs/real");
    std::fs::rename(&blob_dir, &real).unwrap();
    std::os::unix::fs::symlink(&outside, &blob_dir).unwrap();
    let output = again("v2");
    assert_refused(
        &output,
        &format!(
            "{}: is a symbolic link; the folders and files of an OCI layout must be real ones, never links\nhint: replace the link",
            blob_dir.display()
        ),
    );
    assert_eq!(tree_listing(&outside), Vec::<String>::new(), "blobs were written through the link");

    // index.json a link to a file elsewhere: refused, the link and its target as they were.
    std::fs::remove_file(&blob_dir).unwrap();
    std::fs::rename(&real, &blob_dir).unwrap();
    let index = layout.join("index.json");
    let outside_index = work.path().join("outside-index.json");
    std::fs::rename(&index, &outside_index).unwrap();
    let before = std::fs::read(&outside_index).unwrap();
    std::os::unix::fs::symlink(&outside_index, &index).unwrap();
    let output = again("v3");
    assert_refused(&output, &format!("{}: is a symbolic link; the folders and files of an OCI layout", index.display()));
    assert!(std::fs::symlink_metadata(&index).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read(&outside_index).unwrap(), before);
}

#[test]
fn an_archive_path_is_written_through_only_to_a_stream_and_keeps_mode_and_owner() {
    let work = temp_dir();
    // A link to a regular file elsewhere: refused, both untouched.
    let target = work.path().join("elsewhere.txt");
    std::fs::write(&target, "precious\n").unwrap();
    let link = work.path().join("image.tar");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let output = pack_output(&format!("oci-archive:{}", link.display()), |_| {});
    assert_refused(
        &output,
        &format!(
            "{}: refusing to replace a symbolic link: it points to {}, which is not a character device or FIFO\nhint: name the file itself",
            link.display(),
            target.display()
        ),
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert!(tree_listing(work.path()).iter().all(|name| !name.ends_with(".tmp")), "{:?}", tree_listing(work.path()));

    // A link to our stdout (a pipe): the archive is written through, and stdout carries it alone
    // (the reference line goes to stderr).
    let to_stdout = work.path().join("stdout.tar");
    std::os::unix::fs::symlink("/proc/self/fd/1", &to_stdout).unwrap();
    let output = pack_output(&format!("oci-archive:{}", to_stdout.display()), |_| {});
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(std::fs::symlink_metadata(&to_stdout).unwrap().file_type().is_symlink(), "the link was replaced");
    let received = work.path().join("received.tar");
    std::fs::write(&received, &output.stdout).unwrap();
    let listing = tar_listing(&received);
    assert!(listing.contains(&"index.json".to_string()) && listing.contains(&"oci-layout".to_string()), "{listing:?}");
    let line = format!("oci-archive:{}:latest@sha256:", to_stdout.display());
    assert!(stderr(&output).lines().any(|l| l.starts_with(&line)), "{}", stderr(&output));

    // An existing archive replaced keeps its mode and owner.
    let archive = work.path().join("kept.tar");
    std::fs::write(&archive, "old").unwrap();
    std::fs::set_permissions(&archive, std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&archive, Some(1234), Some(1234)).unwrap();
    let output = pack_output(&format!("oci-archive:{}", archive.display()), |_| {});
    assert!(output.status.success(), "{}", stderr(&output));
    let meta = std::fs::metadata(&archive).unwrap();
    assert_eq!((meta.mode() & 0o7777, meta.uid(), meta.gid()), (0o640, 1234, 1234));
    assert!(tar_listing(&archive).contains(&"index.json".to_string()));
}

/// A staging folder like a pack leaves: marked as locked (by `.locked`), with a layer in it.
fn staging_folder(parent: &Path, name: &str, marked: bool) -> PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("layer-0"), vec![7u8; 4096]).unwrap();
    if marked {
        std::fs::write(dir.join(".locked"), "").unwrap();
    }
    dir
}

fn age(dir: &Path) {
    run_ok(Command::new("touch").args(["-d", "2 hours ago"]).arg(dir.join("layer-0")).arg(dir));
}

#[test]
fn staging_folders_of_killed_packs_are_removed_and_live_ones_kept() {
    let work = temp_dir();
    // Beside a layout: one a killed pack left, one an older version left hours ago, one a live pack
    // holds locked, one an older version may still be using.
    let killed = staging_folder(work.path(), ".scratchpack-dead01", true);
    let old = staging_folder(work.path(), ".scratchpack-old001", false);
    age(&old);
    let live = staging_folder(work.path(), ".scratchpack-live01", true);
    let held = std::fs::File::open(&live).unwrap();
    held.lock().unwrap();
    let recent = staging_folder(work.path(), ".scratchpack-new001", false);
    let output = pack_output(&format!("oci:{}", work.path().join("layout").display()), |_| {});
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!killed.exists() && !old.exists(), "stale staging folders stay: {:?}", tree_listing(work.path()));
    for kept in [&live, &recent] {
        assert_eq!(std::fs::read(kept.join("layer-0")).unwrap(), vec![7u8; 4096], "{} was touched", kept.display());
    }

    // In the temporary folder, when the layers are staged there (no oci: output).
    let tmp = work.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let killed = staging_folder(&tmp, "scratchpack-dead02", true);
    let live = staging_folder(&tmp, "scratchpack-live02", true);
    let held_too = std::fs::File::open(&live).unwrap();
    held_too.lock().unwrap();
    let output = pack_output(&format!("oci-archive:{}", work.path().join("image.tar").display()), |cmd| {
        cmd.env("TMPDIR", &tmp);
    });
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!killed.exists(), "{:?}", tree_listing(&tmp));
    assert!(live.join("layer-0").exists());
    drop((held, held_too));
}

/// A static program padded to 100 MB with incompressible bytes: packing it takes a while.
fn padded_binary() -> PathBuf {
    use std::io::Write;
    static CELL: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CELL.get_or_init(|| {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixtures/hostile-padded");
        let partial = path.with_extension("partial");
        let mut file = std::io::BufWriter::new(std::fs::File::create(&partial).unwrap());
        file.write_all(&std::fs::read(static_c_hello()).unwrap()).unwrap();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..(100 << 17) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            file.write_all(&state.to_le_bytes()).unwrap();
        }
        file.into_inner().unwrap().sync_all().unwrap();
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&partial, &path).unwrap();
        path
    })
    .clone()
}

#[test]
fn the_staging_folder_of_a_pack_killed_with_sigkill_goes_with_the_next_pack() {
    let work = temp_dir();
    let layout = work.path().join("layout");
    let staging = || -> Vec<PathBuf> {
        let entries = std::fs::read_dir(work.path()).unwrap().flatten();
        entries.filter(|e| e.file_name().to_string_lossy().starts_with(".scratchpack-")).map(|e| e.path()).collect()
    };
    let mut child = scratchpack()
        .arg("pack")
        .arg(padded_binary())
        .args(["--output", &format!("oci:{}", layout.display())])
        .env("SCRATCHPACK_NO_CACHE", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once it is busy writing a layer into its staging folder.
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(30) {
        let staged: u64 =
            staging().iter().flat_map(|dir| std::fs::read_dir(dir).unwrap().flatten()).map(|f| f.metadata().unwrap().len()).sum();
        if staged > 8 << 20 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let left = staging();
    assert_eq!(left.len(), 1, "the killed pack left its staging folder: {left:?}");

    let output = pack_output(&format!("oci:{}", layout.display()), |_| {});
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(staging(), Vec::<PathBuf>::new(), "the killed pack's staging folder stays");
}
