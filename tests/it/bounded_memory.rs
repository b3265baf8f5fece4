//! Memory stays bounded whatever the program's size: a static program whose `.rodata` holds 200 MiB
//! (as `include_bytes!` assets do) packs under 64 MB peak RSS, with gzip and with zstd, as
//! `/usr/bin/time -v` counts it (file-backed pages included), and its clues are still found.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::util::{run_ok, scratchpack, stdout, temp_dir};

/// How much the test program carries in `.rodata`.
const ASSETS: usize = 200 << 20;
/// The ceiling the issue sets for packing it.
pub const PEAK_RSS_LIMIT_KB: u64 = 64_000;

/// A static C program with 200 MiB of pseudo-random bytes in `.rodata`, then the zoneinfo path (a
/// time-zone clue only the bytes after the assets give: `puts` alone pulls in no time code).
pub fn program_with_big_rodata() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    CELL.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixtures").join("big-rodata");
        let out = dir.join("app");
        if out.exists() {
            return out;
        }
        std::fs::create_dir_all(&dir).unwrap();
        let assets = dir.join("assets.bin");
        let mut file = std::io::BufWriter::new(std::fs::File::create(&assets).unwrap());
        // xorshift64*: incompressible and the same on every run.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut chunk = vec![0u8; 1 << 20];
        for _ in 0..ASSETS / chunk.len() {
            for word in chunk.chunks_exact_mut(8) {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                word.copy_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
            }
            file.write_all(&chunk).unwrap();
        }
        file.into_inner().unwrap().sync_all().unwrap();
        let source = dir.join("app.c");
        std::fs::write(
            &source,
            "#include <stdio.h>\n\
             __asm__(\".section .rodata\\n.incbin \\\"assets.bin\\\"\\n.previous\");\n\
             static const char zoneinfo[] __attribute__((used)) = \"/usr/share/zoneinfo\";\n\
             int main(void) { puts(\"hello\"); return 0; }\n",
        )
        .unwrap();
        let partial = dir.join("app.partial");
        run_ok(Command::new("gcc").current_dir(&dir).args(["-static", "-O0", "-o"]).arg(&partial).arg(&source));
        std::fs::remove_file(&assets).unwrap();
        std::fs::rename(&partial, &out).unwrap();
        out
    })
    .clone()
}

/// Packs the program with `compression` and no layer cache under `/usr/bin/time -v`: its peak RSS
/// in kB.
fn pack_peak_rss(compression: &str) -> u64 {
    let program = program_with_big_rodata();
    let dir = temp_dir();
    let mut pack = scratchpack();
    pack.env("SCRATCHPACK_NO_CACHE", "1")
        .args(["pack", "--compression", compression, "-o"])
        .arg(format!("oci:{}:big", dir.path().join("layout").display()))
        .arg(&program);
    peak_rss_kb(&pack)
}

/// Runs `pack` (program, arguments and environment) under `/usr/bin/time -v`: its peak RSS in kB.
pub fn peak_rss_kb(pack: &Command) -> u64 {
    let dir = temp_dir();
    let report = dir.path().join("time.txt");
    let mut timed = Command::new("/usr/bin/time");
    timed.arg("-v").arg("-o").arg(&report).arg(pack.get_program()).args(pack.get_args());
    for (key, value) in pack.get_envs() {
        match value {
            Some(value) => timed.env(key, value),
            None => timed.env_remove(key),
        };
    }
    run_ok(&mut timed);
    let report = std::fs::read_to_string(&report).unwrap();
    let line = report.lines().find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes): ")).expect(&report);
    line.parse().unwrap()
}

fn assert_bounded(compression: &str) {
    let peak = pack_peak_rss(compression);
    assert!(peak < PEAK_RSS_LIMIT_KB, "packing a program with {} MiB of .rodata with {compression} peaked at {peak} kB", ASSETS >> 20);
}

#[test]
fn a_program_with_200_mib_of_rodata_packs_with_gzip_under_64_mb() {
    assert_bounded("gzip");
}

#[test]
fn a_program_with_200_mib_of_rodata_packs_with_zstd_under_64_mb() {
    assert_bounded("zstd");
}

#[test]
fn a_clue_after_200_mib_of_rodata_is_still_found() {
    let program = program_with_big_rodata();
    let inspect = run_ok(scratchpack().args(["inspect", "--json"]).arg(&program));
    let json: serde_json::Value = serde_json::from_str(&stdout(&inspect)).unwrap();
    assert_eq!(json["hints"], serde_json::json!([{ "kind": "time-zones", "evidence": ["string \"/usr/share/zoneinfo\""] }]));
}
