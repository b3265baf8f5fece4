//! Replays the committed fuzz corpora (`fuzz/corpus/TARGET/`) through the same code the
//! `cargo fuzz` targets run (`fuzz/targets_common.rs`), on stable, as part of `cargo test`.
//! Each target must replay at least one input, so a corpus that disappears fails the test.
//!
//! Crash reproducers live in `fuzz/regressions/TARGET/`, outside the corpora; the test
//! `regressions_no_longer_panic` replays them, so a fixed crash stays fixed.

use std::path::{Path, PathBuf};

#[path = "../fuzz/targets_common.rs"]
mod targets_common;

const TARGETS: &[&str] = &["elf_inspect", "reference", "www_authenticate", "auth_file", "pem", "registry_answers"];

fn inputs(folder: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(folder).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

/// Runs one target on `data`, as its fuzz target does.
fn run(target: &str, data: &[u8], sandbox: &targets_common::ElfSandbox) {
    match target {
        "elf_inspect" => targets_common::elf_inspect(data, sandbox),
        "reference" => targets_common::reference(data),
        "www_authenticate" => targets_common::www_authenticate(data),
        "auth_file" => targets_common::auth_file(data),
        "pem" => targets_common::pem(data),
        "registry_answers" => targets_common::registry_answers(data),
        other => panic!("unknown fuzz target {other}"),
    }
}

fn replay(target: &str) {
    let sandbox = targets_common::ElfSandbox::new().expect("a sysroot for elf_inspect");
    let files = inputs("corpus", target);
    for file in &files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        eprintln!("{target}: {}", file.display());
        run(target, &data, &sandbox);
    }
    assert!(!files.is_empty(), "fuzz/corpus/{target}/ replayed no input: the corpus is missing");
}

#[test]
fn elf_inspect_corpus() {
    replay("elf_inspect");
}

#[test]
fn reference_corpus() {
    replay("reference");
}

#[test]
fn www_authenticate_corpus() {
    replay("www_authenticate");
}

#[test]
fn auth_file_corpus() {
    replay("auth_file");
}

#[test]
fn pem_corpus() {
    replay("pem");
}

#[test]
fn registry_answers_corpus() {
    replay("registry_answers");
}

#[test]
fn every_target_has_a_corpus_folder() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for target in TARGETS {
        assert!(fuzz.join("corpus").join(target).is_dir(), "fuzz/corpus/{target} is missing");
        assert!(fuzz.join("fuzz_targets").join(format!("{target}.rs")).is_file(), "fuzz/fuzz_targets/{target}.rs is missing");
    }
}

/// The crash reproducers found by fuzzing (a DT_NEEDED naming a relative path; an `$ORIGIN/..`
/// RPATH climbing out of a sysroot): fails if any of them panics again.
#[test]
fn regressions_no_longer_panic() {
    let sandbox = targets_common::ElfSandbox::new().expect("a sysroot for elf_inspect");
    let mut failures = Vec::new();
    for target in TARGETS {
        for file in inputs("regressions", target) {
            let data = std::fs::read(&file).unwrap();
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(target, &data, &sandbox))).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "still panicking: {failures:#?}");
}
