//! An interrupted pack (SIGINT, SIGTERM) leaves the existing layout or archive as it was, and no
//! temporary file anywhere.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::util::*;

/// A static program padded to 300 MB with incompressible bytes: packing it takes seconds.
fn big_binary() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    CELL.get_or_init(|| {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixtures/big-static");
        let partial = path.with_extension("partial");
        let mut file = std::io::BufWriter::new(std::fs::File::create(&partial).unwrap());
        file.write_all(&std::fs::read(static_c_hello()).unwrap()).unwrap();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut block = vec![0u8; 1 << 20];
        for _ in 0..300 {
            for chunk in block.chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
            }
            file.write_all(&block).unwrap();
        }
        file.flush().unwrap();
        drop(file);
        std::fs::rename(&partial, &path).unwrap();
        path
    })
    .clone()
}

/// Starts a pack into `dest` with its own TMPDIR, interrupts it with `signal` once it is busy
/// writing layers, and returns its exit code. Layers are staged beside an `oci:` layout, else in
/// TMPDIR: `dest_parent` and `tmp` are both watched.
fn interrupted_pack(dest: &str, dest_parent: &Path, tmp: &Path, signal: &str) -> Option<i32> {
    let child = scratchpack()
        .arg("pack")
        .arg(big_binary())
        .args(["--output", dest])
        .env("TMPDIR", tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // Busy: its staging folder holds a layer that is growing.
    while started.elapsed() < Duration::from_secs(20) {
        let staged: u64 = [tmp, dest_parent]
            .iter()
            .flat_map(|dir| std::fs::read_dir(dir).unwrap().flatten())
            .filter(|e| e.file_name().to_string_lossy().trim_start_matches('.').starts_with("scratchpack-"))
            .filter_map(|e| std::fs::read_dir(e.path()).ok())
            .flat_map(|d| d.flatten())
            .filter_map(|f| f.metadata().ok())
            .map(|m| m.len())
            .sum();
        if staged > 10 << 20 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    run_ok(Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()));
    let output = child.wait_with_output().unwrap();
    assert_eq!(stdout(&output), "", "nothing printed for an image that was not made");
    output.status.code()
}

#[test]
fn sigint_leaves_an_existing_layout_as_it_was() {
    let work = temp_dir();
    let tmp = work.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let layout = work.path().join("layout");
    pack(&[static_c_hello().to_str().unwrap(), "--output", &format!("oci:{}:v1", layout.display())], |_| {});
    let before = tree_listing(&layout);
    let index_before = std::fs::read(layout.join("index.json")).unwrap();

    let code = interrupted_pack(&format!("oci:{}:v2", layout.display()), work.path(), &tmp, "INT");
    assert_eq!(code, Some(130));
    assert_eq!(tree_listing(&layout), before, "no blob, no temporary file added");
    assert_eq!(std::fs::read(layout.join("index.json")).unwrap(), index_before);
    assert_eq!(tree_listing(&tmp), Vec::<String>::new(), "the staging folder is gone");
    let left: Vec<_> = std::fs::read_dir(work.path()).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left.iter().filter(|name| name.contains("scratchpack-")).count(), 0, "no staging folder beside the layout: {left:?}");
    oci_validate(&layout, "v1");
}

#[test]
fn sigterm_leaves_no_new_layout_and_an_existing_archive_as_it_was() {
    let work = temp_dir();
    let tmp = work.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let fresh = work.path().join("fresh");
    let code = interrupted_pack(&format!("oci:{}", fresh.display()), work.path(), &tmp, "TERM");
    assert_eq!(code, Some(143));
    assert!(!fresh.exists(), "a layout this run created is removed");
    assert_eq!(tree_listing(&tmp), Vec::<String>::new());
    assert_eq!(tree_listing(work.path()), vec!["tmp".to_string()], "no staging folder beside the layout");

    let archive = work.path().join("image.tar");
    pack(&[static_c_hello().to_str().unwrap(), "--output", &format!("oci-archive:{}", archive.display())], |_| {});
    let archive_before = std::fs::read(&archive).unwrap();
    let listing_before = tree_listing(work.path());
    let code = interrupted_pack(&format!("oci-archive:{}", archive.display()), work.path(), &tmp, "TERM");
    assert_eq!(code, Some(143));
    assert!(std::fs::read(&archive).unwrap() == archive_before, "the archive is untouched");
    assert_eq!(tree_listing(work.path()), listing_before, "no temporary archive left beside it");
}
