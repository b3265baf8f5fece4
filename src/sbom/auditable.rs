//! cargo-auditable's audit data: the `.dep-v0` ELF section, zlib-compressed JSON in the format of
//! the `auditable-serde` crate:
//! `{"packages":[{"name","version","source","kind"?,"dependencies"?,"root"?}],"format"?}`.
//!
//! The section is untrusted input: its decompressed size is bounded, and anything malformed is an
//! error, never a panic.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use flate2::read::ZlibDecoder;
use goblin::elf::section_header::{SHF_COMPRESSED, SHT_NOBITS};

use super::{AuditedCrate, SbomError};

/// The most decompressed audit data accepted: 8 MiB, as cargo-auditable's own parser allows.
pub(crate) const MAX_AUDIT_DATA: usize = 8 << 20;

const SECTION: &str = ".dep-v0";

#[derive(serde::Deserialize)]
struct RawInfo {
    packages: Vec<RawPackage>,
}

#[derive(serde::Deserialize)]
struct RawPackage {
    name: String,
    version: String,
    source: String,
    #[serde(default = "runtime")]
    kind: String,
    #[serde(default)]
    dependencies: Vec<usize>,
    #[serde(default)]
    root: bool,
}

fn runtime() -> String {
    "runtime".to_string()
}

/// The crates of the program (`main`) and of the image's further programs (`also`, one audit list
/// each), as one list: each (name, version, source) once, with every dependency any list gives it.
/// Only the program's roots stay roots (the program is GENERATED_FROM them); a further program's
/// root becomes a runtime crate that the image holds.
pub(crate) fn merge(main: &[AuditedCrate], also: &[Vec<AuditedCrate>]) -> Vec<AuditedCrate> {
    let key = |krate: &AuditedCrate| (krate.name.clone(), krate.version.clone(), krate.source.clone());
    let mut merged = main.to_vec();
    let mut position: HashMap<(String, String, String), usize> = merged.iter().enumerate().map(|(i, k)| (key(k), i)).collect();
    for list in also {
        let mut at = Vec::with_capacity(list.len());
        for krate in list {
            let index = *position.entry(key(krate)).or_insert_with(|| {
                let kind = if krate.is_runtime() { "runtime".to_string() } else { krate.kind.clone() };
                merged.push(AuditedCrate { kind, dependencies: Vec::new(), root: false, ..krate.clone() });
                merged.len() - 1
            });
            at.push(index);
        }
        for (krate, &index) in list.iter().zip(&at) {
            if krate.is_runtime() && !merged[index].is_runtime() {
                merged[index].kind = "runtime".to_string();
            }
            for dependency in krate.dependencies.iter().filter_map(|&d| at.get(d).copied()) {
                if !merged[index].dependencies.contains(&dependency) {
                    merged[index].dependencies.push(dependency);
                }
            }
        }
    }
    merged
}

/// Reads the `.dep-v0` section that `cargo auditable build` embeds in `binary`. `Ok(None)` when the
/// binary has no such section (not Rust, or built with plain `cargo build`). Decompressed data over
/// [`MAX_AUDIT_DATA`] is refused, and malformed data is an error.
pub(crate) fn read_auditable(binary: &Path) -> Result<Option<Vec<AuditedCrate>>, SbomError> {
    use std::io::{Seek, SeekFrom};
    let unreadable = |source| SbomError::Read { path: binary.to_path_buf(), source };
    let file = File::open(binary).map_err(unreadable)?;
    // SAFETY: the map is read-only and private; a concurrent writer could change what we read, which
    // is then malformed input like any other (every access below is bounds-checked). Only the ELF
    // and section headers are read through it.
    let bytes = unsafe { memmap2::Mmap::map(&file) }.map_err(unreadable)?;
    let Some(range) = section(binary, &bytes)? else {
        return Ok(None);
    };
    drop(bytes);
    // The section itself is read in pieces, as far as the decompressor goes (its output is capped).
    (&file).seek(SeekFrom::Start(range.start)).map_err(unreadable)?;
    parse(binary, std::io::BufReader::with_capacity(64 << 10, (&file).take(range.end - range.start))).map(Some)
}

/// Where in the file the `.dep-v0` section lies, if there is one.
fn section(path: &Path, bytes: &[u8]) -> Result<Option<std::ops::Range<u64>>, SbomError> {
    // The headers only: not the symbol table, whose string table can be tens of MB.
    let elf = crate::elf::parse(bytes).map_err(|e| SbomError::Elf { path: path.to_path_buf(), reason: e.to_string() })?;
    let Some(header) = elf.section_headers.iter().find(|sh| elf.shdr_strtab.get_at(sh.sh_name) == Some(SECTION)) else {
        return Ok(None);
    };
    let fail = |reason: String| SbomError::Section { path: path.to_path_buf(), reason };
    if header.sh_type == SHT_NOBITS {
        return Err(fail("has no contents in the file (SHT_NOBITS)".into()));
    }
    if header.sh_flags & u64::from(SHF_COMPRESSED) != 0 {
        return Err(fail("is an ELF-compressed section (SHF_COMPRESSED), which cargo-auditable never writes".into()));
    }
    match header.sh_offset.checked_add(header.sh_size) {
        Some(end) if end <= bytes.len() as u64 => Ok(Some(header.sh_offset..end)),
        _ => Err(fail(format!(
            "lies past the end of the file (offset {}, size {}, file {} bytes)",
            header.sh_offset,
            header.sh_size,
            bytes.len()
        ))),
    }
}

/// Decompresses and checks the section's contents. `path` is for messages only.
fn parse(path: &Path, compressed: impl Read) -> Result<Vec<AuditedCrate>, SbomError> {
    let mut json = Vec::new();
    ZlibDecoder::new(compressed)
        .take(MAX_AUDIT_DATA as u64 + 1)
        .read_to_end(&mut json)
        .map_err(|source| SbomError::Decompress { path: path.to_path_buf(), source })?;
    if json.len() > MAX_AUDIT_DATA {
        return Err(SbomError::TooLarge { path: path.to_path_buf(), limit: MAX_AUDIT_DATA });
    }
    if json.is_empty() {
        return Err(SbomError::Decompress {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no data in the zlib stream"),
        });
    }
    let raw: RawInfo = serde_json::from_slice(&json).map_err(|source| SbomError::Json { path: path.to_path_buf(), source })?;
    let count = raw.packages.len();
    let invalid = |reason: String| SbomError::Invalid { path: path.to_path_buf(), reason };
    raw.packages
        .into_iter()
        .enumerate()
        .map(|(index, package)| {
            if package.name.is_empty() || package.version.is_empty() {
                return Err(invalid(format!("package {index} has an empty name or version")));
            }
            if let Some(&bad) = package.dependencies.iter().find(|&&d| d >= count) {
                return Err(invalid(format!("package {index} ({}) depends on package {bad}, but there are only {count}", package.name)));
            }
            Ok(AuditedCrate {
                name: package.name,
                version: package.version,
                source: package.source,
                kind: package.kind,
                dependencies: package.dependencies,
                root: package.root,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use goblin::elf::Elf;
    use std::io::Write;
    use std::process::Command;

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    /// A real ELF program (gcc), with `section` added as `.dep-v0` when given (objcopy).
    fn program(dir: &Path, section: Option<&[u8]>) -> std::path::PathBuf {
        let source = dir.join("main.c");
        std::fs::write(&source, "int main(void) { return 0; }\n").unwrap();
        let plain = dir.join("plain");
        let status = Command::new("gcc").arg("-o").arg(&plain).arg(&source).status().expect("gcc runs");
        assert!(status.success());
        let Some(section) = section else { return plain };
        let data = dir.join("dep-v0.z");
        std::fs::write(&data, section).unwrap();
        let audited = dir.join("audited");
        let status = Command::new("objcopy")
            .arg(format!("--add-section=.dep-v0={}", data.display()))
            .arg("--set-section-flags=.dep-v0=noload,readonly")
            .arg(&plain)
            .arg(&audited)
            .status()
            .expect("objcopy runs");
        assert!(status.success());
        audited
    }

    const GRAPH: &str = r#"{"packages":[
        {"name":"autocfg","version":"1.5.1","source":"crates.io","kind":"build"},
        {"name":"hello","version":"0.1.0","source":"local","dependencies":[0,2,3],"root":true},
        {"name":"itoa","version":"1.0.19","source":"crates.io"},
        {"name":"localdep","version":"0.1.0","source":"local","kind":"runtime"}
    ],"format":1}"#;

    #[test]
    fn reads_the_section_of_a_real_elf() {
        let dir = tempfile::tempdir().unwrap();
        let binary = program(dir.path(), Some(&zlib(GRAPH.as_bytes())));
        let crates = read_auditable(&binary).unwrap().expect("the section is there");
        let summary: Vec<String> =
            crates.iter().map(|c| format!("{} {} {} {} {:?} {}", c.name, c.version, c.source, c.kind, c.dependencies, c.root)).collect();
        assert_eq!(
            summary,
            [
                "autocfg 1.5.1 crates.io build [] false",
                "hello 0.1.0 local runtime [0, 2, 3] true",
                "itoa 1.0.19 crates.io runtime [] false",
                "localdep 0.1.0 local runtime [] false",
            ]
        );
    }

    #[test]
    fn no_section_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let binary = program(dir.path(), None);
        assert_eq!(read_auditable(&binary).unwrap(), None);
    }

    #[test]
    fn not_an_elf_and_missing_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("run.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        assert!(matches!(read_auditable(&script), Err(SbomError::Elf { .. })));
        let err = read_auditable(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(err, SbomError::Read { .. }), "{err}");
        assert!(err.to_string().ends_with("missing: cannot read"), "{err}");
    }

    #[test]
    fn decompression_bomb_is_refused() {
        // 9 MiB of spaces compress to a few KiB; a real ELF carries them.
        let mut bomb = b"{\"packages\":[]".to_vec();
        bomb.resize(9 << 20, b' ');
        bomb.push(b'}');
        let compressed = zlib(&bomb);
        assert!(compressed.len() < 64 << 10, "{}", compressed.len());
        let dir = tempfile::tempdir().unwrap();
        let binary = program(dir.path(), Some(&compressed));
        let err = read_auditable(&binary).unwrap_err();
        assert!(matches!(err, SbomError::TooLarge { limit: MAX_AUDIT_DATA, .. }), "{err}");
        assert_eq!(err.to_string(), format!("{}: the .dep-v0 audit data decompresses to more than 8 MiB", binary.display()));
        assert!(err.hint().is_some());

        // Exactly at the limit is fine.
        let mut fits = b"{\"packages\":[]".to_vec();
        fits.resize(MAX_AUDIT_DATA - 1, b' ');
        fits.push(b'}');
        assert_eq!(parse(Path::new("x"), &zlib(&fits)[..]).unwrap(), vec![]);
    }

    #[test]
    fn malformed_data_is_an_error() {
        let path = Path::new("app");
        let cases: &[(&[u8], &str)] = &[
            (b"not zlib at all", "app: the .dep-v0 audit data is not valid zlib data"),
            (&zlib(b"{\"packages\":[{\"name\":\"a\"}]}"), "app: the .dep-v0 audit data is not cargo-auditable JSON"),
            (&zlib(b"[1,2,3]"), "app: the .dep-v0 audit data is not cargo-auditable JSON"),
            (&zlib(b"{\"packages\":[] trailing"), "app: the .dep-v0 audit data is not cargo-auditable JSON"),
            (&zlib(b"\xff\xfe{}"), "app: the .dep-v0 audit data is not cargo-auditable JSON"),
            (&zlib(b""), "app: the .dep-v0 audit data is not valid zlib data"),
            (
                &zlib(br#"{"packages":[{"name":"a","version":"1.0.0","source":"crates.io","dependencies":[1]}]}"#),
                "app: the .dep-v0 audit data is inconsistent: package 0 (a) depends on package 1, but there are only 1",
            ),
            (
                &zlib(br#"{"packages":[{"name":"","version":"1.0.0","source":"crates.io"}]}"#),
                "app: the .dep-v0 audit data is inconsistent: package 0 has an empty name or version",
            ),
        ];
        for (data, message) in cases {
            let err = parse(path, *data).unwrap_err();
            assert_eq!(&err.to_string(), message);
        }
        // A truncated stream must not pass for a shorter document.
        let whole = zlib(GRAPH.as_bytes());
        for cut in [2, whole.len() / 2, whole.len() - 1] {
            assert!(parse(path, &whole[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn section_past_the_end_of_the_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let binary = program(dir.path(), Some(&zlib(GRAPH.as_bytes())));
        let mut bytes = std::fs::read(&binary).unwrap();
        let elf = Elf::parse(&bytes).unwrap();
        let index = elf.section_headers.iter().position(|sh| elf.shdr_strtab.get_at(sh.sh_name) == Some(SECTION)).unwrap();
        // Elf64_Shdr: sh_size is at byte 32 of the 64-byte header.
        let at = elf.header.e_shoff as usize + index * 64 + 32;
        drop(elf);
        bytes[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        let err = section(&binary, &bytes).unwrap_err();
        assert!(err.to_string().contains("lies past the end of the file"), "{err}");
    }

    /// A real `cargo auditable build` of a crate with a runtime, a path and a build dependency.
    /// Needs cargo-auditable and crates.io: `cargo test -- --ignored cargo_auditable`.
    #[test]
    #[ignore]
    fn cargo_auditable_output_is_understood() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("app/src")).unwrap();
        std::fs::create_dir_all(root.join("app/localdep/src")).unwrap();
        std::fs::write(
            root.join("app/Cargo.toml"),
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nitoa = \"1\"\nlocaldep = { path = \"localdep\" }\n\n[build-dependencies]\nautocfg = \"1\"\n",
        )
        .unwrap();
        std::fs::write(root.join("app/build.rs"), "fn main() { autocfg::new(); }\n").unwrap();
        std::fs::write(root.join("app/src/main.rs"), "fn main() { println!(\"{}\", itoa::Buffer::new().format(localdep::answer())); }\n")
            .unwrap();
        std::fs::write(root.join("app/localdep/Cargo.toml"), "[package]\nname = \"localdep\"\nversion = \"0.2.0\"\nedition = \"2021\"\n")
            .unwrap();
        std::fs::write(root.join("app/localdep/src/lib.rs"), "pub fn answer() -> u32 { 42 }\n").unwrap();
        let status = Command::new("cargo")
            .args(["auditable", "build", "--release", "--quiet"])
            .current_dir(root.join("app"))
            .env("CARGO_TARGET_DIR", root.join("target"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo auditable build failed (is cargo-auditable installed?)");
        let crates = read_auditable(&root.join("target/release/app")).unwrap().expect("cargo auditable embeds .dep-v0");
        let find = |name: &str| crates.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("{name} missing: {crates:?}"));
        let app = find("app");
        assert!(app.root);
        assert_eq!((app.source.as_str(), app.kind.as_str()), ("local", "runtime"));
        assert_eq!(find("itoa").source, "crates.io");
        assert_eq!(find("itoa").kind, "runtime");
        assert_eq!((find("localdep").source.as_str(), find("localdep").version.as_str()), ("local", "0.2.0"));
        assert_eq!(find("autocfg").kind, "build");
        let names: Vec<&str> = app.dependencies.iter().map(|&d| crates[d].name.as_str()).collect();
        assert!(names.contains(&"itoa") && names.contains(&"localdep"), "{names:?}");
        assert_eq!(crates.iter().filter(|c| c.is_runtime()).count(), 3);
    }
}
