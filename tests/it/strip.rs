//! `--strip`: programs packed without their debug sections and static symbol table still run, keep
//! what scanners read (cargo-auditable's `.dep-v0`, the build-id, Go's build info), are what the
//! SBOM describes, and pack to the same digest every time. Without `--strip`, a program that is
//! mostly debug information gets one warning with the measured sizes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::util::*;

/// The `cargo-debuginfo` fixture (a program that reads JSON with serde, as services do) built by
/// cargo-auditable for the musl target with `debuginfo=2` (release profile, so it is not stripped
/// by cargo either).
fn rust_with_debug_info() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    CELL.get_or_init(|| {
        // Built in a copy: cargo may touch the Cargo.lock beside the manifest.
        let copy = Path::new(env!("CARGO_TARGET_TMPDIR")).join("strip-debuginfo");
        let _ = std::fs::remove_dir_all(&copy);
        run_ok(Command::new("cp").arg("-r").arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cargo-debuginfo")).arg(&copy));
        let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("strip-debuginfo-target");
        run_ok(
            Command::new("cargo")
                .args(["auditable", "build", "--release", "--locked", "--quiet", "--target", "x86_64-unknown-linux-musl"])
                .current_dir(&copy)
                .env_remove("CARGO")
                .env("CARGO_TARGET_DIR", &target_dir)
                .env("CARGO_PROFILE_RELEASE_DEBUG", "2")
                .env("CARGO_PROFILE_RELEASE_STRIP", "none"),
        );
        target_dir.join("x86_64-unknown-linux-musl/release/configured")
    })
    .clone()
}

/// `hello.c`, static, with debug information (`-g`).
fn static_c_with_debug_info() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    c_fixture(&CELL, "hello.c", "hello-c-debug", &["-static", "-g"])
}

/// `hello.go`, built by Go with cgo off: static, with DWARF and the symbol table.
fn go_hello() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    go_fixture(&CELL, "hello.go", "hello-go")
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The manifest tagged `tag` in `layout`.
fn manifest(layout: &Path, tag: &str) -> Value {
    let index = read_json(&layout.join("index.json"));
    read_json(&blob_file(layout, &manifest_digest(&index, tag)))
}

/// The size of the program's own layer (the last) of `layout:latest`.
fn app_layer_size(layout: &Path) -> u64 {
    manifest(layout, "latest")["layers"].as_array().unwrap().last().unwrap()["size"].as_u64().unwrap()
}

/// The size of the app layer of `layout:latest` as it unpacks: its tar, gunzipped.
fn app_layer_tar_size(layout: &Path) -> u64 {
    let digest = manifest(layout, "latest")["layers"].as_array().unwrap().last().unwrap()["digest"].as_str().unwrap().to_string();
    let mut tar = flate2::read::MultiGzDecoder::new(std::fs::File::open(blob_file(layout, &digest)).unwrap());
    std::io::copy(&mut tar, &mut std::io::sink()).unwrap()
}

/// What a registry stores for `layout:latest`: its layers, config and manifest.
fn image_size(layout: &Path) -> u64 {
    let manifest = manifest(layout, "latest");
    let layers: u64 = manifest["layers"].as_array().unwrap().iter().map(|l| l["size"].as_u64().unwrap()).sum();
    let index = read_json(&layout.join("index.json"));
    let entry = index["manifests"].as_array().unwrap().iter().find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "latest");
    layers + manifest["config"]["size"].as_u64().unwrap() + entry.unwrap()["size"].as_u64().unwrap()
}

/// The file at `/usr/local/bin/NAME` in `layout:latest`, unpacked into `work`.
fn program_in_image(layout: &Path, name: &str, work: &Path) -> PathBuf {
    unpack(layout, "latest", work).join("rootfs/usr/local/bin").join(name)
}

/// Every section of `file` as (name, size, loaded), as binutils' readelf lists them.
fn sections(file: &Path) -> Vec<(String, u64, bool)> {
    let output = run_ok(Command::new("readelf").args(["-S", "-W"]).arg(file));
    stdout(&output)
        .lines()
        .filter_map(|line| {
            let (_, rest) = line.trim_start().strip_prefix('[')?.split_once(']')?;
            // Name Type Address Off Size ES [Flg] Lk Inf Al; the null section and the unnamed
            // padding section have no name.
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let flags = match fields.len() {
                10 => fields[6],
                9 => "",
                _ => return None,
            };
            Some((fields[0].to_string(), u64::from_str_radix(fields[4], 16).ok()?, flags.contains('A')))
        })
        .collect()
}

fn section_names(file: &Path) -> Vec<String> {
    sections(file).into_iter().map(|(name, _, _)| name).collect()
}

/// Whether `--strip` removes a section: debug or static symbols, when no segment loads it.
fn strippable(name: &str, loaded: bool) -> bool {
    !loaded && (name.starts_with(".debug") || name.starts_with(".zdebug") || name == ".symtab" || name == ".strtab")
}

/// The bytes of the ELF64 program header table of `file`.
fn program_headers(file: &Path) -> Vec<u8> {
    let bytes = std::fs::read(file).unwrap();
    let offset = u64::from_le_bytes(bytes[0x20..0x28].try_into().unwrap()) as usize;
    let size = u16::from_le_bytes(bytes[0x36..0x38].try_into().unwrap()) as usize
        * u16::from_le_bytes(bytes[0x38..0x3a].try_into().unwrap()) as usize;
    bytes[offset..offset + size].to_vec()
}

fn sha256_hex(file: &Path) -> String {
    let output = run_ok(Command::new("sha256sum").arg(file));
    stdout(&output).split_whitespace().next().unwrap().to_string()
}

/// The sections `--strip` removes are gone and what run time and scanners read is kept.
fn assert_stripped(original: &Path, stripped: &Path) {
    let after = sections(stripped);
    let left: Vec<_> = after.iter().filter(|(name, _, loaded)| strippable(name, *loaded)).collect();
    assert!(left.is_empty(), "{} still has {left:?}", stripped.display());
    let before = sections(original);
    assert!(before.iter().any(|(name, _, loaded)| strippable(name, *loaded)), "{} had nothing to strip", original.display());
    let names = section_names(stripped);
    for (kept, _, _) in before.iter().filter(|(name, _, loaded)| !strippable(name, *loaded)) {
        assert!(names.contains(kept), "{kept} was removed from {}: {names:?}", stripped.display());
    }
    assert_eq!(program_headers(stripped), program_headers(original), "the program headers are kept as they are");
}

#[test]
fn a_rust_program_with_debug_info_stripped_runs_keeps_its_crates_and_shrinks() {
    let binary = rust_with_debug_info();
    let work = temp_dir();
    let full = work.path().join("full");
    let stripped = work.path().join("stripped");
    pack(&[binary.to_str().unwrap(), "--sbom", "spdx", "--output", &format!("oci:{}", full.display())], |_| {});
    pack(&[binary.to_str().unwrap(), "--strip", "--sbom", "spdx", "--output", &format!("oci:{}", stripped.display())], |_| {});
    assert_eq!(run_image(&stripped, "latest"), "app on 8080, 2 tags, limits 514\n");

    let program = program_in_image(&stripped, "configured", &work.path().join("unpacked"));
    assert_stripped(&binary, &program);
    assert!(section_names(&program).contains(&".dep-v0".to_string()), "cargo-auditable's data is kept");
    assert!(section_names(&program).contains(&".note.gnu.build-id".to_string()), "the build-id is kept");
    // The file, and the app layer as it unpacks (its tar), are below a tenth of the original's.
    // Compressed, the layer is below a fifth: code compresses less than debug information does, so
    // the compressed tenth is out of reach for any real program (ripgrep's is about a quarter).
    let (before, after) = (std::fs::metadata(&binary).unwrap().len(), std::fs::metadata(&program).unwrap().len());
    assert!(after * 10 < before, "stripped file {after} bytes, from {before}");
    let (full_tar, stripped_tar) = (app_layer_tar_size(&full), app_layer_tar_size(&stripped));
    assert!(stripped_tar * 10 < full_tar, "stripped app layer unpacks to {stripped_tar} bytes, unstripped {full_tar}");
    let (full_layer, stripped_layer) = (app_layer_size(&full), app_layer_size(&stripped));
    assert!(stripped_layer * 5 < full_layer, "stripped app layer {stripped_layer} bytes, unstripped {full_layer}");

    // The SBOM describes the stripped file and still lists the crates from .dep-v0.
    let index = read_json(&stripped.join("index.json"));
    let image_digest = manifest_digest(&index, "latest");
    let referrers_tag = format!("sha256-{}", image_digest.trim_start_matches("sha256:"));
    let referrers = read_json(&blob_file(&stripped, &manifest_digest(&index, &referrers_tag)));
    let artifact = read_json(&blob_file(&stripped, referrers["manifests"][0]["digest"].as_str().unwrap()));
    let sbom = read_json(&blob_file(&stripped, artifact["layers"][0]["digest"].as_str().unwrap()));
    let crates: Vec<String> = crate::sbom::spdx_crates(&sbom).into_iter().map(|(name, version)| format!("{name} {version}")).collect();
    assert_eq!(crates[0], "configured 0.2.0");
    // Every crate compiled into the program, at the version Cargo.lock pins; serde_derive and the
    // other proc-macro crates run only at build time.
    let lock = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cargo-debuginfo/Cargo.lock")).unwrap();
    let version = |name: &str| {
        let at = lock.find(&format!("name = \"{name}\"\nversion = \"")).unwrap_or_else(|| panic!("{name} not in Cargo.lock"));
        lock[at..].lines().nth(1).unwrap().trim_start_matches("version = ").trim_matches('"').to_string()
    };
    let mut expected: Vec<String> = ["configured", "itoa", "memchr", "serde", "serde_core", "serde_json", "zmij"]
        .iter()
        .map(|name| format!("{name} {}", version(name)))
        .collect();
    let mut listed = crates.clone();
    expected.sort();
    listed.sort();
    assert_eq!(listed, expected);
    let file =
        sbom["files"].as_array().unwrap().iter().find(|f| f["fileName"] == "./usr/local/bin/configured").expect("the program is listed");
    let sha256 = file["checksums"].as_array().unwrap().iter().find(|c| c["algorithm"] == "SHA256").unwrap()["checksumValue"].clone();
    assert_eq!(sha256, sha256_hex(&program), "the SBOM's checksum is the stripped file's");
}

fn manifest_digest(index: &Value, tag: &str) -> String {
    let entry = index["manifests"].as_array().unwrap().iter().find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag);
    entry.unwrap_or_else(|| panic!("no {tag} in {index}"))["digest"].as_str().unwrap().to_string()
}

#[test]
fn a_static_c_program_with_debug_info_stripped_runs() {
    let binary = static_c_with_debug_info();
    let work = temp_dir();
    let layout = work.path().join("layout");
    pack(&[binary.to_str().unwrap(), "--strip", "--output", &format!("oci:{}", layout.display())], |_| {});
    assert_eq!(run_image(&layout, "latest"), "hello from C, uid 65532\n");
    assert_stripped(&binary, &program_in_image(&layout, "hello-c-debug", &work.path().join("unpacked")));
}

#[test]
fn a_dynamic_c_program_with_debug_info_stripped_runs_with_its_dynamic_tables_as_they_were() {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    let binary = c_fixture(&CELL, "hello.c", "hello-c-dynamic-debug", &["-g"]);
    let work = temp_dir();
    let layout = work.path().join("layout");
    pack(&[binary.to_str().unwrap(), "--strip", "--output", &format!("oci:{}", layout.display())], |_| {});
    assert_eq!(run_image(&layout, "latest"), "hello from C, uid 65532\n");
    let program = program_in_image(&layout, "hello-c-dynamic-debug", &work.path().join("unpacked"));
    assert_stripped(&binary, &program);
    // The loader reads these: they are copied, not rebuilt.
    let dynamic = |file: &Path| stdout(&run_ok(Command::new("readelf").args(["--dyn-syms", "-d", "-V", "-W"]).arg(file)));
    assert_eq!(dynamic(&program), dynamic(&binary));
}

#[test]
fn a_go_program_stripped_runs_and_keeps_its_build_info() {
    let binary = go_hello();
    let work = temp_dir();
    let layout = work.path().join("layout");
    pack(&[binary.to_str().unwrap(), "--strip", "--output", &format!("oci:{}", layout.display())], |_| {});
    assert_eq!(run_image(&layout, "latest"), "hello from Go, uid 65532\n");
    let program = program_in_image(&layout, "hello-go", &work.path().join("unpacked"));
    assert_stripped(&binary, &program);
    // `go version -m` reads .go.buildinfo, as vulnerability scanners do.
    let version = run_ok(Command::new("go").args(["version", "-m"]).arg(&program).env("HOME", work.path()));
    assert!(stdout(&version).contains("\tpath\tcommand-line-arguments\n"), "{}", stdout(&version));
}

#[test]
fn stripping_gives_the_same_digest_every_time() {
    let binary = go_hello();
    let work = temp_dir();
    let elsewhere = work.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let first = pack(&[binary.to_str().unwrap(), "--strip", "--output", &format!("oci:{}", work.path().join("one").display())], |_| {});
    // Another folder, so another staging folder, and no layer cache.
    let second = pack(&[binary.to_str().unwrap(), "--strip", "--output", &format!("oci:{}", elsewhere.join("two").display())], |cmd| {
        cmd.env("SCRATCHPACK_NO_CACHE", "1");
    });
    assert_eq!(digest_of(&first[0]), digest_of(&second[0]));
    let unstripped = pack(&[binary.to_str().unwrap(), "--output", &format!("oci:{}", work.path().join("three").display())], |_| {});
    assert_ne!(digest_of(&first[0]), digest_of(&unstripped[0]), "--strip changed the program");
}

/// `bytes / 1e6` with one decimal, as the warning prints sizes.
fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1_000_000.0)
}

#[test]
fn without_strip_a_program_that_is_mostly_debug_info_gets_one_warning_with_its_sizes() {
    let binary = rust_with_debug_info();
    let work = temp_dir();
    let full = work.path().join("full");
    let stripped = work.path().join("stripped");
    let output = run_ok(scratchpack().arg("pack").arg(&binary).args(["--output", &format!("oci:{}", full.display())]));
    pack(&[binary.to_str().unwrap(), "--strip", "--output", &format!("oci:{}", stripped.display())], |_| {});
    // What --strip removes: the debug sections and the static symbol table.
    let removable: u64 = sections(&binary).iter().filter(|(name, _, loaded)| strippable(name, *loaded)).map(|(_, size, _)| size).sum();
    let size = std::fs::metadata(&binary).unwrap().len();
    assert!(removable * 2 > size, "the fixture is mostly debug info: {removable} of {size}");
    let expected = format!(
        "warning: configured: debug info is {} of {} MB; --strip would make the image about {} MB instead of {} MB\n",
        mb(removable),
        mb(size),
        mb(image_size(&stripped)),
        mb(image_size(&full))
    );
    assert_eq!(stderr(&output), expected);
}

#[test]
fn a_program_without_much_debug_info_gets_no_warning() {
    let work = temp_dir();
    for (binary, extra) in [(static_c_hello(), None), (static_c_with_debug_info(), None), (rust_with_debug_info(), Some("--strip"))] {
        let mut cmd = scratchpack();
        cmd.arg("pack").arg(&binary).args(["--output", &format!("oci:{}", work.path().join("layout").display())]).args(extra);
        let output = run_ok(&mut cmd);
        assert_eq!(stderr(&output), "", "{}", binary.display());
    }
}

/// Sets the type of the section `name` of the ELF64 `file` to `sh_type`.
fn set_section_type(file: &Path, name: &str, sh_type: u32) {
    let mut bytes = std::fs::read(file).unwrap();
    let u16_at = |b: &[u8], at: usize| u16::from_le_bytes(b[at..at + 2].try_into().unwrap()) as usize;
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize;
    let (table, entry_size, count, names_index) = (u64_at(&bytes, 0x28), u16_at(&bytes, 0x3a), u16_at(&bytes, 0x3c), u16_at(&bytes, 0x3e));
    let names = u64_at(&bytes, table + names_index * entry_size + 0x18);
    let header = (0..count)
        .map(|i| table + i * entry_size)
        .find(|&header| {
            let start = names + u32::from_le_bytes(bytes[header..header + 4].try_into().unwrap()) as usize;
            bytes[start..].starts_with(name.as_bytes()) && bytes[start + name.len()] == 0
        })
        .unwrap_or_else(|| panic!("no {name} in {}", file.display()));
    bytes[header + 4..header + 8].copy_from_slice(&sh_type.to_le_bytes());
    std::fs::write(file, bytes).unwrap();
}

#[test]
fn a_program_the_elf_writer_cannot_rewrite_is_refused_and_nothing_is_written() {
    let work = temp_dir();
    let binary = work.path().join("odd");
    std::fs::copy(static_c_with_debug_info(), &binary).unwrap();
    // An OS-specific section type that no loader reads: the program runs, the writer refuses it.
    set_section_type(&binary, ".comment", 0x6fff_4c00);
    let layout = work.path().join("layout");
    let output =
        scratchpack().arg("pack").arg(&binary).args(["--strip", "--output", &format!("oci:{}", layout.display())]).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        format!(
            "error: {}: cannot strip: Unsupported section type 6fff4c00\n\
             hint: pack it without --strip, or strip it when it is built (for cargo: [profile.release] strip = true)\n",
            binary.display()
        )
    );
    assert_eq!(tree_listing(work.path()), vec!["odd".to_string()], "nothing is written");
    // Without --strip it packs as it is.
    pack(&[binary.to_str().unwrap(), "--output", &format!("oci:{}", layout.display())], |_| {});
}

#[test]
fn the_strip_metadata_key_strips_what_cargo_scratchpack_builds() {
    let work = temp_dir();
    let ws = work.path().join("strip-metadata");
    run_ok(Command::new("cp").arg("-r").arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cargo-auditable")).arg(&ws));
    let manifest = ws.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, format!("{text}\n[package.metadata.scratchpack]\nstrip = true\n")).unwrap();
    let layout = ws.join("layout");
    let output = cargo_scratchpack(
        &ws,
        &["--auditable", "--target", "x86_64-unknown-linux-musl", "--output", &format!("oci:{}", layout.display())],
        &[("CARGO_PROFILE_RELEASE_DEBUG", "2".into()), ("CARGO_PROFILE_RELEASE_STRIP", "none".into())],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stderr(&output).contains("debug info"), "{}", stderr(&output));
    let built = Path::new(env!("CARGO_TARGET_TMPDIR")).join("strip-metadata-target/x86_64-unknown-linux-musl/release/audited");
    assert_stripped(&built, &program_in_image(&layout, "audited", &work.path().join("unpacked")));
    assert_eq!(run_image(&layout, "latest"), "audited 42\n");
}
