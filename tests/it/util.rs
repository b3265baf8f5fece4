//! Shared helpers for the integration tests: the real binary, fixtures built with real compilers,
//! and real tools (skopeo, umoci, runc, oci-image-tool). A missing tool fails loudly: a skipped test
//! would hide a gap. `scripts/install-test-deps.sh` installs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

pub fn scratchpack() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scratchpack"));
    cmd.env_remove("SOURCE_DATE_EPOCH");
    // One layer cache for the whole run, not the user's: the tests exercise it as users do.
    cmd.env_remove("SCRATCHPACK_NO_CACHE");
    cmd.env("SCRATCHPACK_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("layer-cache"));
    cmd
}

/// Runs a command and returns its output, failing with everything it printed if it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let output = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (run scripts/install-test-deps.sh)"));
    assert!(
        output.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A fresh folder under the target dir, removed at the end of the test.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("it-").tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir")
}

fn fixture_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixtures");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn build_once(cell: &'static OnceLock<PathBuf>, name: &str, build: impl FnOnce(&Path) -> Command) -> PathBuf {
    cell.get_or_init(|| {
        let out = fixture_dir().join(name);
        let partial = out.with_extension("partial");
        run_ok(&mut build(&partial));
        std::fs::rename(&partial, &out).unwrap();
        out
    })
    .clone()
}

/// `hello.c`, static, for the host (x86-64).
pub fn static_c_hello() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    build_once(&CELL, "hello-c", |out| {
        let mut cmd = Command::new("gcc");
        cmd.args(["-static", "-O2", "-o"]).arg(out).arg(source("hello.c"));
        cmd
    })
}

/// `hello.c`, static, for arm64.
pub fn static_c_hello_arm64() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    build_once(&CELL, "hello-c-arm64", |out| {
        let mut cmd = Command::new("aarch64-linux-gnu-gcc");
        cmd.args(["-static", "-O2", "-o"]).arg(out).arg(source("hello.c"));
        cmd
    })
}

/// `hello.rs`, for x86_64-unknown-linux-musl (static-pie).
pub fn static_rust_hello() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    build_once(&CELL, "hello-rust", |out| {
        let mut cmd = Command::new("rustc");
        cmd.args(["--edition", "2021", "-O", "--target", "x86_64-unknown-linux-musl", "-o"]).arg(out).arg(source("hello.rs"));
        cmd
    })
}

/// `hello.c`, dynamically linked against glibc.
pub fn dynamic_c_hello() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    build_once(&CELL, "hello-c-dynamic", |out| {
        let mut cmd = Command::new("gcc");
        cmd.args(["-O2", "-o"]).arg(out).arg(source("hello.c"));
        cmd
    })
}

/// Packs and returns the printed reference lines; panics with stderr on failure.
pub fn pack(args: &[&str], extra: impl FnOnce(&mut Command)) -> Vec<String> {
    let mut cmd = scratchpack();
    cmd.arg("pack").args(args);
    extra(&mut cmd);
    let output = run_ok(&mut cmd);
    stdout(&output).lines().map(str::to_string).collect()
}

/// The digest at the end of a reference line.
pub fn digest_of(line: &str) -> String {
    line.rsplit_once('@').map(|(_, d)| d.to_string()).unwrap_or_else(|| panic!("no digest in {line:?}"))
}

pub fn skopeo_inspect(reference: &str, extra: &[&str]) -> serde_json::Value {
    let output = run_ok(Command::new("skopeo").args(["inspect"]).args(extra).arg(reference));
    serde_json::from_slice(&output.stdout).expect("skopeo prints JSON")
}

pub fn oci_validate(layout: &Path, tag: &str) {
    let output =
        run_ok(Command::new("oci-image-tool").args(["validate", "--type", "image", "--ref"]).arg(format!("name={tag}")).arg(layout));
    assert!(stdout(&output).contains("Validation succeeded") || stderr(&output).contains("Validation succeeded"), "{output:?}");
}

/// Unpacks `layout:tag` with umoci into a bundle and returns the bundle's path (inside `work`).
pub fn unpack(layout: &Path, tag: &str, work: &Path) -> PathBuf {
    let bundle = work.join("bundle");
    run_ok(Command::new("umoci").args(["unpack", "--image"]).arg(format!("{}:{tag}", layout.display())).arg(&bundle));
    bundle
}

/// Runs an unpacked bundle with runc (no terminal, own container id) and returns its output.
pub fn runc_run(bundle: &Path) -> Output {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let config_path = bundle.join("config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["process"]["terminal"] = false.into();
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let id = format!("scratchpack-it-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let output = Command::new("runc").args(["run", &id]).current_dir(bundle).output().expect("runc (run scripts/install-test-deps.sh)");
    let _ = Command::new("runc").args(["delete", "--force", &id]).output();
    output
}

/// Unpacks and runs `layout:tag`; returns stdout, failing with stderr if the container failed.
pub fn run_image(layout: &Path, tag: &str) -> String {
    let work = temp_dir();
    let bundle = unpack(layout, tag, work.path());
    let output = runc_run(&bundle);
    assert!(output.status.success(), "container failed: {}\n{}", output.status, stderr(&output));
    stdout(&output)
}

/// Runs the image `layout:tag` under runc with `args` as the process (the entrypoint overridden);
/// returns stdout, failing with stderr if the container failed.
pub fn run_as(layout: &Path, tag: &str, args: &[&str]) -> String {
    let work = temp_dir();
    let bundle = unpack(layout, tag, work.path());
    let config_path = bundle.join("config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    config["process"]["args"] = serde_json::json!(args);
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let output = runc_run(&bundle);
    assert!(output.status.success(), "{args:?} failed: {}\n{}", output.status, stderr(&output));
    stdout(&output)
}

/// Registers qemu-aarch64 with binfmt_misc (fix-binary mode, so it works inside containers).
pub fn ensure_arm64_binfmt() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let misc = Path::new("/proc/sys/fs/binfmt_misc");
        if !misc.join("register").exists() {
            run_ok(Command::new("mount").args(["-t", "binfmt_misc", "binfmt_misc"]).arg(misc));
        }
        if !misc.join("qemu-aarch64").exists() {
            let conf = std::fs::read_to_string("/usr/lib/binfmt.d/qemu-aarch64.conf").expect("qemu-user-static's binfmt config");
            let line = conf.lines().find(|l| l.starts_with(':')).expect("a registration line");
            std::fs::write(misc.join("register"), line).expect("register qemu-aarch64");
        }
    });
}

/// Sizes of every blob in a layout, by digest hex.
pub fn blob_sizes(layout: &Path) -> Vec<(String, u64)> {
    let mut sizes: Vec<_> = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().len())
        })
        .collect();
    sizes.sort();
    sizes
}

/// Every file under `dir`, relative, sorted: to prove nothing was written.
pub fn tree_listing(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                out.push(path.strip_prefix(root).unwrap().display().to_string());
                if path.is_dir() {
                    walk(root, &path, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Builds `tests/fixtures/NAME.c` once with gcc and `flags`, into a file called `output`.
pub fn c_fixture(cell: &'static OnceLock<PathBuf>, source_name: &str, output: &str, flags: &[&str]) -> PathBuf {
    build_once(cell, output, |out| {
        let mut cmd = Command::new("gcc");
        cmd.args(flags).arg("-O2").arg("-o").arg(out).arg(source(source_name));
        cmd
    })
}

/// Builds `tests/fixtures/NAME.c` once for arm64 with `flags`, into a file called `output`.
pub fn c_fixture_arm64(cell: &'static OnceLock<PathBuf>, source_name: &str, output: &str, flags: &[&str]) -> PathBuf {
    build_once(cell, output, |out| {
        let mut cmd = Command::new("aarch64-linux-gnu-gcc");
        cmd.args(flags).arg("-O2").arg("-o").arg(out).arg(source(source_name));
        cmd
    })
}

/// A copy of the cargo fixture `tests/fixtures/NAME` in a fresh temp dir: (the dir, the copy).
pub fn cargo_fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = temp_dir();
    let copy = dir.path().join(name);
    run_ok(Command::new("cp").arg("-r").arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)).arg(&copy));
    (dir, copy)
}

/// `cargo scratchpack ARGS` in `ws`, found by cargo on PATH like an installed subcommand, building
/// into a target folder shared by the tests of one fixture, with `envs` set.
pub fn cargo_scratchpack(ws: &Path, args: &[&str], envs: &[(&str, String)]) -> Output {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_cargo-scratchpack")).parent().unwrap();
    let fixture = ws.file_name().unwrap().to_string_lossy().into_owned();
    let mut cmd = Command::new("cargo");
    cmd.arg("scratchpack").args(args).current_dir(ws);
    cmd.env("PATH", format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default()));
    cmd.env("CARGO_TARGET_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{fixture}-target")));
    cmd.env_remove("CARGO").env_remove("SCRATCHPACK_REPO").env_remove("SOURCE_DATE_EPOCH");
    for (key, value) in envs {
        cmd.env(key, value);
    }
    cmd.output().unwrap()
}

/// The file of the blob `digest` (`sha256:…`) in the layout `layout`.
pub fn blob_file(layout: &Path, digest: &str) -> PathBuf {
    layout.join("blobs/sha256").join(digest.strip_prefix("sha256:").unwrap())
}

/// `tests/fixtures/SOURCE_NAME` built by Go with cgo off (static, with DWARF and the symbol table)
/// into the fixtures folder as `output`, once per test run.
pub fn go_fixture(cell: &'static OnceLock<PathBuf>, source_name: &str, output: &str) -> PathBuf {
    cell.get_or_init(|| {
        let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-home");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixtures").join(output);
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        run_ok(
            Command::new("go")
                .args(["build", "-o"])
                .arg(&out)
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(source_name))
                .env("CGO_ENABLED", "0")
                .env("GOTOOLCHAIN", "local")
                .env("GOFLAGS", "")
                .env("HOME", &home)
                .env("GOPATH", home.join("path"))
                .env("GOCACHE", home.join("cache")),
        );
        out
    })
    .clone()
}
