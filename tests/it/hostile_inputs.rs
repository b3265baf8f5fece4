//! Hostile inputs: host files that change under the pack, and names that cannot be image paths.
//! Whatever the input, the image holds only what the user pointed at, or the pack fails (exit 1,
//! the file named) and writes nothing.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

/// What the planned file holds, and what an outside file of the same size holds.
const PLANNED: &[u8] = b"planned content of b, 40 bytes long....\n";
const OUTSIDE: &[u8] = b"OUTSIDE-SECRET never meant for an image\n";

/// Every byte written under `dir`, gzip layers decompressed: where a leaked file would show.
fn written_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for path in tree_listing(dir).into_iter().map(|p| dir.join(p)).filter(|p| p.is_file()) {
        let bytes = std::fs::read(&path).unwrap();
        let mut plain = Vec::new();
        if flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut plain).is_ok() {
            all.extend(plain);
        }
        all.extend(bytes);
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// Packs the static hello with `--add DATA:/data`, DATA holding `b` (PLANNED), and runs `swap` on
/// `b` after the `--add` folder was planned and before its layer is written. Deterministic: the
/// layer cache's record of the base layer, read between the two, is replaced by a FIFO, so the pack
/// waits there until the test has swapped `b`. The base is one without a CA bundle: the default
/// base layer ships inside the executable and is never read from the cache. Returns the pack's stderr, after checking that it
/// failed and that OUTSIDE reached no output.
fn pack_swapping_b(swap: impl FnOnce(&Path, &Path)) -> String {
    let work = temp_dir();
    let cache = work.path().join("cache");
    let data = work.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let b = data.join("b");
    std::fs::write(&b, PLANNED).unwrap();
    let outside = work.path().join("outside");
    std::fs::write(&outside, OUTSIDE).unwrap();
    assert_eq!(PLANNED.len(), OUTSIDE.len(), "same size: a size check alone cannot tell them apart");
    // A first pack leaves the base layer's record (the only one: a static program, no --add).
    run_ok(
        scratchpack()
            .arg("pack")
            .arg(static_c_hello())
            .args(["--ca-bundle", "none"])
            .arg("--output")
            .arg(format!("oci:{}", work.path().join("warm").display()))
            .env("SCRATCHPACK_CACHE_DIR", &cache),
    );
    let records: Vec<PathBuf> = std::fs::read_dir(cache.join("layers")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let record = std::fs::read(&records[0]).unwrap();
    std::fs::remove_file(&records[0]).unwrap();
    run_ok(Command::new("mkfifo").arg(&records[0]));

    let out = work.path().join("out");
    let mut child = scratchpack()
        .arg("pack")
        .arg(static_c_hello())
        .args(["--ca-bundle", "none"])
        .arg("--add")
        .arg(format!("{}:/data", data.display()))
        .arg("--output")
        .arg(format!("oci:{}", out.display()))
        .env("SCRATCHPACK_CACHE_DIR", &cache)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Opening the FIFO's writing end succeeds once the pack has opened its reading end.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut fifo = loop {
        match std::fs::File::options().write(true).custom_flags(libc::O_NONBLOCK).open(&records[0]) {
            Ok(fifo) => break fifo,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                if let Some(status) = child.try_wait().unwrap() {
                    let output = child.wait_with_output().unwrap();
                    panic!("the pack ended ({status}) before reading the cache:\n{}", stderr(&output));
                }
                assert!(Instant::now() < deadline, "the pack never read the base layer's record");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("{e}"),
        }
    };
    swap(&b, &outside);
    fifo.write_all(&record).unwrap();
    drop(fifo);
    let output = child.wait_with_output().unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "stderr: {err}");
    assert_eq!(stdout(&output), "");
    assert!(!out.exists(), "nothing written: {:?}", tree_listing(&out));
    assert!(!contains(&output.stderr, OUTSIDE));
    // No staging folder left, nothing but the inputs, the warm pack (before the swap) and the cache.
    let mut left: Vec<String> =
        std::fs::read_dir(work.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.retain(|name| name != "outside");
    left.sort();
    assert_eq!(left, ["cache", "data", "warm"]);
    assert!(!contains(&written_bytes(&cache), OUTSIDE), "the outside file reached the layer cache");
    err
}

/// An `--add` file swapped for a symlink to an outside file of the same size, after planning:
/// opened without following links, it is refused, not packed.
#[test]
fn an_add_file_swapped_for_a_symlink_during_the_pack_is_refused() {
    let mut data = PathBuf::new();
    let err = pack_swapping_b(|b, outside| {
        data = b.parent().unwrap().to_path_buf();
        std::fs::remove_file(b).unwrap();
        std::os::unix::fs::symlink(outside, b).unwrap();
    });
    assert_eq!(
        err,
        format!(
            "error: writing the --add layer: {}/b: changed while the image was being made: it is now a symlink, not the file that \
             was planned; pack again\n",
            data.display()
        )
    );
}

/// An `--add` file that another file of the same size was renamed over, after planning: its device
/// and inode are not the planned ones, so it is refused.
#[test]
fn an_add_file_renamed_over_during_the_pack_is_refused() {
    let mut data = PathBuf::new();
    let err = pack_swapping_b(|b, outside| {
        data = b.parent().unwrap().to_path_buf();
        std::fs::rename(outside, b).unwrap();
    });
    assert_eq!(
        err,
        format!(
            "error: writing the --add layer: {}/b: changed while the image was being made: it is now another file, not the file \
             that was planned; pack again\n",
            data.display()
        )
    );
}

/// Packs the static C program with `--add DATA:/data` into `oci:OUT`.
fn pack_adding(data: &Path, out: &Path) -> std::process::Output {
    scratchpack()
        .arg("pack")
        .arg(static_c_hello())
        .arg("--add")
        .arg(format!("{}:/data", data.display()))
        .arg("--output")
        .arg(format!("oci:{}", out.display()))
        .output()
        .unwrap()
}

/// `a\xff` and `a\xfe` would both become `a\u{FFFD}` as UTF-8, and one be dropped: a name that is
/// not UTF-8 is refused, shown escaped, and nothing is written.
#[test]
fn add_folder_names_that_are_not_utf8_are_refused() {
    let work = temp_dir();
    let data = work.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join(OsStr::from_bytes(b"a\xff")), "one").unwrap();
    std::fs::write(data.join(OsStr::from_bytes(b"a\xfe")), "two").unwrap();
    let before = tree_listing(work.path());
    let output = pack_adding(&data, &work.path().join("out"));
    assert_eq!(output.status.code(), Some(1), "stderr: {}", stderr(&output));
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        format!(
            "error: {}: file name \"a\\xFE\" is not UTF-8; image paths must be UTF-8\nhint: rename the file (or leave it out of the \
             folder)\n",
            data.display()
        )
    );
    assert_eq!(tree_listing(work.path()), before, "nothing written");
}

/// A symlink in an `--add` folder whose target is not UTF-8 would point elsewhere in the image: refused.
#[test]
fn add_folder_symlink_targets_that_are_not_utf8_are_refused() {
    let work = temp_dir();
    let data = work.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join(OsStr::from_bytes(b"conf\xff")), "x").unwrap();
    std::os::unix::fs::symlink(OsStr::from_bytes(b"conf\xff"), data.join("link")).unwrap();
    std::fs::remove_file(data.join(OsStr::from_bytes(b"conf\xff"))).unwrap();
    let output = pack_adding(&data, &work.path().join("out"));
    assert_eq!(output.status.code(), Some(1), "stderr: {}", stderr(&output));
    assert_eq!(
        stderr(&output),
        format!(
            "error: {}/link: symlink target \"conf\\xFF\" is not UTF-8; image paths must be UTF-8\nhint: point the symlink at a UTF-8 \
             name\n",
            data.display()
        )
    );
    assert!(!work.path().join("out").exists());
}

/// A program whose file name is not UTF-8 cannot go to `/usr/local/bin/NAME` under its own name.
#[test]
fn a_program_name_that_is_not_utf8_is_refused() {
    let work = temp_dir();
    let program = work.path().join(OsStr::from_bytes(b"hello\xff"));
    std::fs::copy(static_c_hello(), &program).unwrap();
    let output =
        scratchpack().arg("pack").arg(&program).arg("--output").arg(format!("oci:{}", work.path().join("out").display())).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "stderr: {}", stderr(&output));
    assert_eq!(
        stderr(&output),
        format!("error: {}: file name \"hello\\xFF\" is not UTF-8; image paths must be UTF-8: name one with --path\n", program.display())
    );
    assert!(!work.path().join("out").exists());
    // Named with --path, it packs.
    run_ok(
        scratchpack()
            .arg("pack")
            .arg(&program)
            .args(["--path", "/usr/local/bin/hello", "--output"])
            .arg(format!("oci:{}", work.path().join("out").display())),
    );
}
