//! The library resolver (`inspect --json`, and what `pack` bundles) against the references: lddtree
//! on this machine's programs, ld.so itself (`LD_DEBUG=libs`, `ld.so --list`) on fixtures built
//! here from `tests/fixtures/resolve/`, and real programs packed and run under runc.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use serde_json::Value;

use crate::util::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// `scratchpack inspect --json BINARY EXTRA...`, parsed.
fn inspect(binary: &Path, extra: &[&str]) -> Value {
    let output = run_ok(scratchpack().args(["inspect", "--json"]).arg(binary).args(extra));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("inspect --json {} printed no JSON: {e}\n{}", binary.display(), stdout(&output)))
}

/// One entry of `libraries`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Lib {
    name: String,
    path: String,
    image_path: String,
    rule: String,
    needed_by: String,
}

fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_else(|| panic!("{key} is not a string in {value}")).to_string()
}

fn libraries(json: &Value) -> Vec<Lib> {
    json["libraries"]
        .as_array()
        .unwrap_or_else(|| panic!("no libraries list in {json}"))
        .iter()
        .map(|l| Lib {
            name: text(l, "name"),
            path: text(l, "path"),
            image_path: text(l, "image_path"),
            rule: text(l, "rule"),
            needed_by: text(l, "needed_by"),
        })
        .collect()
}

/// `missing` as `(name, needed_by)`.
fn missing(json: &Value) -> BTreeSet<(String, String)> {
    json["missing"]
        .as_array()
        .unwrap_or_else(|| panic!("no missing list in {json}"))
        .iter()
        .map(|m| (text(m, "name"), text(m, "needed_by")))
        .collect()
}

fn realpath(path: impl AsRef<Path>) -> PathBuf {
    let path = path.as_ref();
    path.canonicalize().unwrap_or_else(|e| panic!("realpath {}: {e}", path.display()))
}

/// Resolves `image_path` inside `root` as the kernel would in a container (or chroot) whose root
/// it is: an absolute symlink target starts again at `root`. Returns the host path of the file.
fn realpath_in(root: &Path, image_path: &str) -> PathBuf {
    let components = |p: &str| p.split('/').filter(|c| !c.is_empty()).rev().map(str::to_string).collect::<Vec<_>>();
    let mut pending = components(image_path);
    let mut current: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(component) = pending.pop() {
        match component.as_str() {
            "." => continue,
            ".." => {
                current.pop();
                continue;
            }
            _ => {}
        }
        let candidate = root.join(current.join("/")).join(&component);
        match std::fs::read_link(&candidate) {
            Ok(target) => {
                hops += 1;
                assert!(hops < 40, "symlink loop resolving {image_path} in {}", root.display());
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    current.clear();
                }
                pending.extend(components(&target));
            }
            Err(_) => current.push(component),
        }
    }
    root.join(current.join("/"))
}

/// The image path of a host path under `root`.
fn image_path_of(root: &Path, host: &str) -> String {
    let rest = Path::new(host).strip_prefix(root).unwrap_or_else(|_| panic!("{host} is not under the sysroot {}", root.display()));
    format!("/{}", rest.display())
}

/// Where each library was found, or `None` when missing: name → (real path, rule).
type Resolved = BTreeMap<String, Option<(PathBuf, String)>>;

/// `inspect`'s answer as a [`Resolved`].
fn resolved_by_inspect(json: &Value) -> Resolved {
    let mut resolved: Resolved = libraries(json).into_iter().map(|l| (l.name, Some((realpath(&l.path), l.rule)))).collect();
    for (name, _) in missing(json) {
        resolved.insert(name, None);
    }
    resolved
}

fn show(resolved: &Resolved) -> String {
    resolved
        .iter()
        .map(|(name, found)| match found {
            Some((path, rule)) => format!("  {name} => {} ({rule})", path.display()),
            None => format!("  {name} => not found"),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts two resolutions are the same, printing both and the names that differ.
fn assert_same(what: &str, scratchpack: &Resolved, ld_so: &Resolved) {
    if scratchpack == ld_so {
        return;
    }
    let names: BTreeSet<&String> = scratchpack.keys().chain(ld_so.keys()).collect();
    let differ: Vec<String> = names
        .into_iter()
        .filter(|n| scratchpack.get(*n) != ld_so.get(*n))
        .map(|n| format!("  {n}: scratchpack {:?}, ld.so {:?}", scratchpack.get(n), ld_so.get(n)))
        .collect();
    panic!(
        "{what}: scratchpack and ld.so disagree\nscratchpack:\n{}\nld.so:\n{}\ndiffering:\n{}",
        show(scratchpack),
        show(ld_so),
        differ.join("\n")
    );
}

/// What ld.so did when it ran a program with `LD_DEBUG=libs`.
struct LdDebug {
    output: Output,
    /// Every library ld.so searched for: name → (real path, rule) if it was loaded.
    resolved: Resolved,
}

/// The search step an `LD_DEBUG=libs` "search" line names, as `inspect` calls it.
fn ld_so_rule(source: &str) -> String {
    let rule = if source.starts_with("RPATH") {
        "rpath"
    } else if source.starts_with("RUNPATH") {
        "runpath"
    } else if source == "LD_LIBRARY_PATH" {
        "library-path"
    } else if source == "cache" {
        // ld.so.cache is what ldconfig built from ld.so.conf (and the default folders).
        "ld.so.conf"
    } else if source == "system search path" {
        "default"
    } else {
        panic!("unknown ld.so search source {source:?}")
    };
    rule.to_string()
}

/// Runs `program` (no LD_LIBRARY_PATH of the test's own: cargo sets one) with `LD_DEBUG=libs`,
/// plus `env`, and reads where ld.so found each library: the last file it tried for a name, if
/// that file was then initialised ("calling init:" lists every loaded object).
fn ld_debug(program: &Path, env: &[(&str, &Path)]) -> LdDebug {
    let mut cmd = Command::new(program);
    cmd.env_remove("LD_LIBRARY_PATH").env_remove("LD_PRELOAD").env("LD_DEBUG", "libs");
    for (key, value) in env {
        cmd.env(key, value);
    }
    let output = cmd.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let log = stderr(&output);
    let mut tried: BTreeMap<String, Option<(String, String)>> = BTreeMap::new();
    let mut loaded: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut source = String::new();
    for line in log.lines() {
        // "     1234:\tmessage"
        let Some((pid, message)) = line.split_once(':') else { continue };
        if pid.trim().is_empty() || !pid.trim().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let message = message.trim();
        if let Some(rest) = message.strip_prefix("find library=") {
            let name = rest.split(' ').next().unwrap_or(rest).to_string();
            tried.entry(name.clone()).or_insert(None);
            current = Some(name);
            source.clear();
        } else if let Some(rest) = message.strip_prefix("search path=") {
            let open = rest.rfind('(').unwrap_or_else(|| panic!("no search source in {line:?}"));
            source = rest[open + 1..].trim_end_matches(')').to_string();
        } else if message.starts_with("search cache=") {
            source = "cache".to_string();
        } else if let Some(file) = message.strip_prefix("trying file=") {
            let name = current.clone().unwrap_or_else(|| panic!("{line:?} outside a find library block"));
            tried.insert(name, Some((file.to_string(), source.clone())));
        } else if let Some(file) = message.strip_prefix("calling init: ") {
            loaded.insert(file.to_string());
        }
    }
    let resolved = tried
        .into_iter()
        .map(|(name, last)| {
            let found = last.filter(|(file, _)| loaded.contains(file)).map(|(file, source)| (realpath(&file), ld_so_rule(&source)));
            (name, found)
        })
        .collect();
    LdDebug { output, resolved }
}

/// ld.so's trace mode, what `ldd` runs: name → real path, `None` for "not found".
fn ld_trace(program: &Path) -> BTreeMap<String, Option<PathBuf>> {
    let output = Command::new(program)
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("LD_PRELOAD")
        .env("LD_TRACE_LOADED_OBJECTS", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    parse_ldd(&stdout(&output)).into_iter().map(|(name, path)| (name, path.map(realpath))).collect()
}

/// Parses ldd-style output (`ld.so --list`): name → the path ld.so printed, `None` if not found.
/// The vdso and the interpreter (a line without a name) are left out.
fn parse_ldd(text: &str) -> BTreeMap<String, Option<String>> {
    let mut found = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((name, rest)) = line.split_once(" => ") else { continue };
        if name.starts_with('/') {
            continue; // the interpreter, as qemu's path translation shows it
        }
        let rest = rest.trim();
        let path = if rest == "not found" { None } else { Some(rest.split(" (0x").next().unwrap_or(rest).to_string()) };
        found.insert(name.to_string(), path);
    }
    found
}

/// Runs `f` over `items` on a few threads, keeping the order.
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(2, 8);
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        mine.push((i, f(item)));
                    }
                    mine
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("worker thread")).collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

// ---------------------------------------------------------------------------------------------
// 1. This machine's programs, against lddtree
// ---------------------------------------------------------------------------------------------

/// Programs where lddtree disagrees with ld.so (checked with `ldd`, which is ld.so itself) and
/// scratchpack agrees with ld.so: `(file, why)`. None on Debian 12: every program in /usr/bin and
/// /usr/lib/x86_64-linux-gnu resolved the same in both when this test was written.
const LDDTREE_EXCEPTIONS: &[(&str, &str)] = &[];

/// The folders sampled first (non-recursive), and those added only while the sample is under 200.
const SAMPLE_DIRS: &[&str] = &["/usr/bin", "/usr/lib/x86_64-linux-gnu"];
const MORE_SAMPLE_DIRS: &[&str] = &["/usr/sbin", "/usr/libexec", "/usr/lib/git-core", "/usr/lib/openssh", "/usr/lib/apt/methods"];
const MIN_SAMPLE: usize = 200;

fn has_elf_magic(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"\x7fELF"
}

/// ELF files directly in `dir`, each real file once (a symlink to a file already seen is skipped).
fn elf_files(dir: &Path, seen: &mut HashSet<PathBuf>) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    paths
        .into_iter()
        .filter(|path| {
            let Ok(real) = path.canonicalize() else { return false }; // a dangling link
            real.is_file() && seen.insert(real.clone()) && has_elf_magic(&real)
        })
        .collect()
}

/// What `inspect --json` said of one file: its JSON if it took it, its stderr if it refused.
fn inspect_any(path: &Path) -> Result<Value, String> {
    let output = scratchpack().args(["inspect", "--json"]).arg(path).output().expect("run scratchpack");
    if output.status.success() {
        serde_json::from_slice(&output.stdout).map_err(|e| format!("not JSON: {e}"))
    } else {
        Err(stderr(&output))
    }
}

/// `lddtree -l` on many files at once (one python start for all): file → (real paths, missing names).
fn lddtree(files: &[PathBuf]) -> BTreeMap<PathBuf, (BTreeSet<PathBuf>, BTreeSet<String>)> {
    let output = run_ok(Command::new("/usr/bin/python3").arg("/usr/bin/lddtree").arg("-l").args(files).env_remove("LD_LIBRARY_PATH"));
    let mut blocks: Vec<(PathBuf, Vec<String>)> = Vec::new();
    // Each file's list starts with the file itself, as given, then its interpreter and libraries.
    for line in stdout(&output).lines() {
        if files.get(blocks.len()).is_some_and(|next| next.as_os_str() == line) {
            blocks.push((PathBuf::from(line), Vec::new()));
        } else {
            let (_, block) = blocks.last_mut().unwrap_or_else(|| panic!("lddtree printed {line:?} before any file"));
            block.push(line.to_string());
        }
    }
    assert_eq!(blocks.len(), files.len(), "lddtree's output did not split into one list per file:\n{}", stdout(&output));
    // A file of the batch listed as another's library would make the split ambiguous.
    for (file, lines) in &blocks {
        let clash = lines.iter().find(|l| files.iter().any(|f| f.as_os_str() == l.as_str()));
        assert!(clash.is_none(), "{} needs {clash:?}, also in the batch: run lddtree on it alone", file.display());
    }
    blocks
        .into_iter()
        .map(|(file, lines)| {
            let found = lines.iter().filter(|l| l.starts_with('/')).map(realpath).collect();
            let missing = lines.iter().filter(|l| !l.starts_with('/')).cloned().collect();
            (file, (found, missing))
        })
        .collect()
}

/// `ldd FILE`'s real paths (ld.so's own answer), for explaining a difference.
fn ldd(file: &Path) -> Result<BTreeSet<PathBuf>, String> {
    let output = Command::new("ldd").arg(file).env_remove("LD_LIBRARY_PATH").output().map_err(|e| e.to_string())?;
    let text = stdout(&output);
    let mut set = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        let path = match line.split_once(" => ") {
            Some((_, rest)) if rest.starts_with('/') => rest.split(" (0x").next().unwrap_or(rest),
            Some((name, _)) => return Err(format!("{name} not found by ld.so")),
            None if line.starts_with('/') => line.split(" (0x").next().unwrap_or(line),
            None => continue, // linux-vdso.so.1
        };
        set.insert(realpath(path));
    }
    Ok(set)
}

fn paths(set: &BTreeSet<PathBuf>) -> String {
    format!("[{}]", set.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))
}

#[test]
fn matches_lddtree_on_host_binaries() {
    let started = std::time::Instant::now();
    let mut seen = HashSet::new();
    let mut sample: Vec<(PathBuf, Value)> = Vec::new();
    let mut refused_wrongly = Vec::new();
    let mut extra_dirs: Vec<PathBuf> = MORE_SAMPLE_DIRS.iter().map(PathBuf::from).collect();
    // Subfolders of the multiarch folder hold programs too (helpers, plugins' executables).
    if let Ok(entries) = std::fs::read_dir("/usr/lib/x86_64-linux-gnu") {
        let mut subdirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
        subdirs.sort();
        extra_dirs.extend(subdirs);
    }
    let dirs = SAMPLE_DIRS.iter().map(PathBuf::from).chain(extra_dirs);
    for (index, dir) in dirs.enumerate() {
        if index >= SAMPLE_DIRS.len() && sample.len() >= MIN_SAMPLE {
            break;
        }
        let candidates = elf_files(&dir, &mut seen);
        for (path, result) in candidates.iter().zip(parallel_map(&candidates, |p| inspect_any(p))) {
            match result {
                Ok(json) if json["linkage"] == "dynamic" => sample.push((path.clone(), json)),
                Ok(_) => {} // static
                // Shared libraries and relocatable objects are not programs; anything else is.
                Err(e) if e.contains("is a shared library, not a program") || e.contains("not an executable program (ELF type") => {}
                Err(e) => refused_wrongly.push(format!("{}: {}", path.display(), e.trim())),
            }
        }
    }
    assert!(refused_wrongly.is_empty(), "inspect --json refused programs:\n{}", refused_wrongly.join("\n"));
    assert!(sample.len() >= MIN_SAMPLE, "only {} dynamic programs found to compare", sample.len());
    let inspected = started.elapsed();

    let files: Vec<PathBuf> = sample.iter().map(|(p, _)| p.clone()).collect();
    let chunk = files.len().div_ceil(2);
    let lddtree: BTreeMap<PathBuf, _> =
        parallel_map(&files.chunks(chunk).collect::<Vec<_>>(), |c| lddtree(c)).into_iter().flatten().collect();

    let exceptions: BTreeMap<&str, &str> = LDDTREE_EXCEPTIONS.iter().copied().collect();
    let mut differences = Vec::new();
    let mut excepted = 0;
    for (file, json) in &sample {
        let mut ours: BTreeSet<PathBuf> = libraries(json).iter().map(|l| realpath(&l.path)).collect();
        if let Some(interpreter) = json["interpreter"].as_str() {
            ours.insert(realpath(interpreter));
        }
        let our_missing: BTreeSet<String> = missing(json).into_iter().map(|(name, _)| name).collect();
        let (theirs, their_missing) = &lddtree[file];
        if &ours == theirs && &our_missing == their_missing {
            continue;
        }
        let ld_so = ldd(file);
        let agrees_with_ld_so = ld_so.as_ref().is_ok_and(|set| set == &ours) && our_missing.is_empty();
        if agrees_with_ld_so && exceptions.contains_key(file.to_str().unwrap_or_default()) {
            excepted += 1;
            continue;
        }
        differences.push(format!(
            "{}\n  scratchpack: {}\n  lddtree:     {}\n  only scratchpack: {}\n  only lddtree:     {}\n  missing: scratchpack {:?}, lddtree {:?}\n  ld.so (ldd): {}\n  {}",
            file.display(),
            paths(&ours),
            paths(theirs),
            paths(&ours.difference(theirs).cloned().collect()),
            paths(&theirs.difference(&ours).cloned().collect()),
            our_missing,
            their_missing,
            match &ld_so {
                Ok(set) => paths(set),
                Err(e) => e.clone(),
            },
            if agrees_with_ld_so {
                "scratchpack agrees with ld.so, lddtree does not: document it in LDDTREE_EXCEPTIONS"
            } else {
                "scratchpack disagrees with ld.so"
            }
        ));
    }
    eprintln!("compared {} programs ({} excepted) in {:.1?} (inspect {:.1?})", sample.len(), excepted, started.elapsed(), inspected);
    assert!(
        differences.is_empty(),
        "{} of {} programs resolve differently from lddtree:\n{}",
        differences.len(),
        sample.len(),
        differences.join("\n")
    );
    assert_eq!(excepted, exceptions.len(), "an exception in LDDTREE_EXCEPTIONS no longer applies: {exceptions:?}");
}

// ---------------------------------------------------------------------------------------------
// 2. Fixtures, against ld.so
// ---------------------------------------------------------------------------------------------

/// The fixtures, built once per test process: their RPATHs name the folder they are built in, so
/// they cannot be built elsewhere and moved. Folders of finished test processes are removed.
struct Fixtures {
    dir: PathBuf,
}

impl Fixtures {
    fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }
    fn arg(&self, relative: &str) -> String {
        self.path(relative).to_str().expect("UTF-8 fixture path").to_string()
    }
}

fn source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/resolve").join(name)
}

fn gcc(args: &[&str]) {
    run_ok(Command::new("gcc").args(args).env_remove("LD_LIBRARY_PATH"));
}

/// `libspres_value.so.1` returning `value`, at `out`.
fn value_library(out: &Path, value: u32) {
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let define = format!("-DVALUE={value}");
    gcc(&[
        "-shared",
        "-fPIC",
        "-O2",
        &define,
        "-Wl,-soname,libspres_value.so.1",
        "-o",
        out.to_str().unwrap(),
        source("value.c").to_str().unwrap(),
    ]);
}

fn fixtures() -> &'static Fixtures {
    static CELL: OnceLock<Fixtures> = OnceLock::new();
    CELL.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixtures");
        std::fs::create_dir_all(&base).unwrap();
        for entry in std::fs::read_dir(&base).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("resolve-") {
                if pid != std::process::id().to_string() && !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = base.join(format!("resolve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let f = Fixtures { dir };
        for sub in ["d1", "d2", "bin", "origin/bin", "origin/lib", "plain", "sysroot-lib"] {
            std::fs::create_dir_all(f.path(sub)).unwrap();
        }
        value_library(&f.path("d1/libspres_value.so.1"), 1);
        value_library(&f.path("d2/libspres_value.so.1"), 2);
        value_library(&f.path("sysroot-lib/libspres_value.so.1.0.0"), 3);
        value_library(&f.path("origin/lib/libspres_value.so.1"), 4);
        gcc(&[
            "-shared",
            "-fPIC",
            "-O2",
            "-Wl,-soname,libspres_outer.so.1",
            "-o",
            &f.arg("d1/libspres_outer.so.1"),
            source("outer.c").to_str().unwrap(),
            &f.arg("d1/libspres_value.so.1"),
        ]);
        let d1 = f.arg("d1");
        let rpath = format!("-Wl,-rpath,{d1}");
        let program = |out: &str, main: &str, library: &str, flags: &[&str]| {
            let mut args = vec!["-O2", "-o"];
            let out = f.arg(out);
            let main = source(main);
            let library = f.arg(library);
            args.extend([out.as_str(), main.to_str().unwrap(), library.as_str()]);
            args.extend(flags);
            gcc(&args);
        };
        program("bin/value_rpath", "print_value.c", "d1/libspres_value.so.1", &[&rpath, "-Wl,--disable-new-dtags"]);
        program("bin/value_runpath", "print_value.c", "d1/libspres_value.so.1", &[&rpath, "-Wl,--enable-new-dtags"]);
        program("bin/outer_rpath", "print_outer.c", "d1/libspres_outer.so.1", &[&rpath, "-Wl,--disable-new-dtags"]);
        program("bin/outer_runpath", "print_outer.c", "d1/libspres_outer.so.1", &[&rpath, "-Wl,--enable-new-dtags"]);
        let origin = "-Wl,-rpath,$ORIGIN/../lib";
        program("origin/bin/value_origin_runpath", "print_value.c", "origin/lib/libspres_value.so.1", &[origin, "-Wl,--enable-new-dtags"]);
        program("origin/bin/value_origin_rpath", "print_value.c", "origin/lib/libspres_value.so.1", &[origin, "-Wl,--disable-new-dtags"]);
        program("plain/value_plain", "print_value.c", "d1/libspres_value.so.1", &[]);
        f
    })
}

/// Asserts the fixture carries the dynamic tags the test relies on (a compiler default could change).
fn assert_tags(json: &Value, rpath: &[&str], runpath: &[&str]) {
    assert_eq!(json["rpath"], serde_json::json!(rpath), "DT_RPATH of {}", json["file"]);
    assert_eq!(json["runpath"], serde_json::json!(runpath), "DT_RUNPATH of {}", json["file"]);
}

/// Runs `program` under ld.so and checks its output and that `inspect` resolved as ld.so did.
fn check_against_ld_so(program: &Path, json: &Value, env: &[(&str, &Path)], expected_stdout: &str) -> Resolved {
    let ld = ld_debug(program, env);
    assert!(ld.output.status.success(), "{} failed: {}\n{}", program.display(), ld.output.status, stderr(&ld.output));
    assert_eq!(stdout(&ld.output), expected_stdout, "{} printed something else", program.display());
    let ours = resolved_by_inspect(json);
    assert_same(&program.display().to_string(), &ours, &ld.resolved);
    ours
}

/// The entry for `name`, failing with the whole list.
fn lib<'a>(libs: &'a [Lib], name: &str) -> &'a Lib {
    libs.iter().find(|l| l.name == name).unwrap_or_else(|| panic!("{name} is not in {libs:#?}"))
}

#[test]
fn rpath_is_searched_like_ld_so() {
    let f = fixtures();
    let program = f.path("bin/value_rpath");
    let json = inspect(&program, &[]);
    assert_tags(&json, &[&f.arg("d1")], &[]);
    check_against_ld_so(&program, &json, &[], "value 1\n");
    let libs = libraries(&json);
    let value = lib(&libs, "libspres_value.so.1");
    assert_eq!((value.path.as_str(), value.rule.as_str()), (f.arg("d1/libspres_value.so.1").as_str(), "rpath"));
    assert_eq!(value.image_path, f.arg("d1/libspres_value.so.1"));
    assert_eq!(libs.iter().map(|l| l.name.as_str()).collect::<BTreeSet<_>>(), BTreeSet::from(["libspres_value.so.1", "libc.so.6"]));
}

#[test]
fn runpath_is_searched_like_ld_so() {
    let f = fixtures();
    let program = f.path("bin/value_runpath");
    let json = inspect(&program, &[]);
    assert_tags(&json, &[], &[&f.arg("d1")]);
    check_against_ld_so(&program, &json, &[], "value 1\n");
    let libs = libraries(&json);
    let value = lib(&libs, "libspres_value.so.1");
    assert_eq!((value.path.as_str(), value.rule.as_str()), (f.arg("d1/libspres_value.so.1").as_str(), "runpath"));
    assert_eq!(libs.iter().map(|l| l.name.as_str()).collect::<BTreeSet<_>>(), BTreeSet::from(["libspres_value.so.1", "libc.so.6"]));
}

#[test]
fn origin_is_the_program_folder() {
    let f = fixtures();
    for (name, rule) in [("value_origin_runpath", "runpath"), ("value_origin_rpath", "rpath")] {
        let program = f.path(&format!("origin/bin/{name}"));
        let json = inspect(&program, &[]);
        if rule == "runpath" {
            assert_tags(&json, &[], &["$ORIGIN/../lib"]);
        } else {
            assert_tags(&json, &["$ORIGIN/../lib"], &[]);
        }
        check_against_ld_so(&program, &json, &[], "value 4\n");
        let libs = libraries(&json);
        let value = lib(&libs, "libspres_value.so.1");
        assert_eq!(realpath(&value.path), f.path("origin/lib/libspres_value.so.1"), "{name}");
        assert_eq!(value.rule, rule, "{name}");
        // inspect places the program at /usr/local/bin, so $ORIGIN/../lib is /usr/local/lib there.
        assert_eq!(value.image_path, "/usr/local/lib/libspres_value.so.1", "{name}");

        // And the image holds it where ld.so will look in the image.
        let work = temp_dir();
        let layout = work.path().join("layout");
        pack(&[program.to_str().unwrap(), "--output", &format!("oci:{}", layout.display())], |_| {});
        assert_eq!(run_image(&layout, "latest"), "value 4\n", "{name} in the image");
    }
}

#[test]
fn rpath_is_inherited_but_runpath_is_not() {
    let f = fixtures();
    let d1 = f.arg("d1");

    // The program's DT_RPATH serves libspres_outer's own needs too.
    let program = f.path("bin/outer_rpath");
    let json = inspect(&program, &[]);
    assert_tags(&json, &[&d1], &[]);
    let ours = check_against_ld_so(&program, &json, &[], "outer 101\n");
    let libs = libraries(&json);
    let value = lib(&libs, "libspres_value.so.1");
    assert_eq!(
        (value.path.as_str(), value.rule.as_str(), value.needed_by.as_str()),
        (f.arg("d1/libspres_value.so.1").as_str(), "rpath", "libspres_outer.so.1")
    );
    assert_eq!(ours.keys().map(String::as_str).collect::<Vec<_>>(), ["libc.so.6", "libspres_outer.so.1", "libspres_value.so.1"]);
    assert!(missing(&json).is_empty(), "{:?}", missing(&json));
    let work = temp_dir();
    let layout = work.path().join("layout");
    pack(&[program.to_str().unwrap(), "--output", &format!("oci:{}", layout.display())], |_| {});
    assert_eq!(run_image(&layout, "latest"), "outer 101\n", "outer_rpath in the image");

    // DT_RUNPATH is not inherited: ld.so cannot load libspres_value, and inspect says so.
    let program = f.path("bin/outer_runpath");
    let json = inspect(&program, &[]);
    assert_tags(&json, &[], &[&d1]);
    let libs = libraries(&json);
    let outer = lib(&libs, "libspres_outer.so.1");
    assert_eq!((outer.path.as_str(), outer.rule.as_str()), (f.arg("d1/libspres_outer.so.1").as_str(), "runpath"));
    assert_eq!(libs.iter().map(|l| l.name.as_str()).collect::<BTreeSet<_>>(), BTreeSet::from(["libspres_outer.so.1", "libc.so.6"]));
    assert_eq!(missing(&json), BTreeSet::from([("libspres_value.so.1".to_string(), "libspres_outer.so.1".to_string())]));
    let ld = ld_debug(&program, &[]);
    assert!(!ld.output.status.success(), "outer_runpath ran: {}", stdout(&ld.output));
    assert!(
        stderr(&ld.output).contains("libspres_value.so.1: cannot open shared object file"),
        "ld.so failed otherwise:\n{}",
        stderr(&ld.output)
    );
    // ld.so's trace mode (ldd) says what it found and what not, where a failing run cannot.
    let ours: BTreeMap<String, Option<PathBuf>> = resolved_by_inspect(&json).into_iter().map(|(n, f)| (n, f.map(|(p, _)| p))).collect();
    assert_eq!(ours, ld_trace(&program), "outer_runpath: scratchpack (left) and ld.so's trace (right) disagree");
}

#[test]
fn library_path_beats_runpath_but_not_rpath() {
    let f = fixtures();
    let d2 = f.path("d2");
    let d2_arg = f.arg("d2");

    // RUNPATH=d1, --library-path d2 (LD_LIBRARY_PATH=d2): d2 wins.
    let program = f.path("bin/value_runpath");
    let json = inspect(&program, &["--library-path", &d2_arg]);
    check_against_ld_so(&program, &json, &[("LD_LIBRARY_PATH", &d2)], "value 2\n");
    let value = lib(&libraries(&json), "libspres_value.so.1").clone();
    assert_eq!((value.path.as_str(), value.rule.as_str()), (f.arg("d2/libspres_value.so.1").as_str(), "library-path"));
    let work = temp_dir();
    let layout = work.path().join("layout");
    pack(&[program.to_str().unwrap(), "--output", &format!("oci:{}", layout.display()), "--library-path", &d2_arg], |_| {});
    assert_eq!(run_image(&layout, "latest"), "value 2\n", "value_runpath --library-path d2 in the image");

    // RPATH=d1 comes before LD_LIBRARY_PATH: d1 wins.
    let program = f.path("bin/value_rpath");
    let json = inspect(&program, &["--library-path", &d2_arg]);
    check_against_ld_so(&program, &json, &[("LD_LIBRARY_PATH", &d2)], "value 1\n");
    let value = lib(&libraries(&json), "libspres_value.so.1").clone();
    assert_eq!((value.path.as_str(), value.rule.as_str()), (f.arg("d1/libspres_value.so.1").as_str(), "rpath"));
}

// ---------------------------------------------------------------------------------------------
// 2f. A copied sysroot
// ---------------------------------------------------------------------------------------------

/// Appended to the sysroot's copies of the loader and libc (ld.so ignores bytes past the ELF's
/// contents): a file in the image that ends with it came from the sysroot, not from the host.
const SYSROOT_MARK: &[u8] = b"\nscratchpack resolve test: sysroot copy\n";

fn copy_marked(from: &Path, to: &Path) {
    let mut bytes = std::fs::read(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
    bytes.extend_from_slice(SYSROOT_MARK);
    std::fs::write(to, bytes).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A merged-/usr x86-64 root like this machine's: `lib -> usr/lib`, `lib64 -> usr/lib64`, and
/// `usr/lib64/ld-linux-x86-64.so.2` an absolute link to `/lib/x86_64-linux-gnu/…`; the fixture
/// library in `/opt/spres/lib`, known only through `etc/ld.so.conf.d/spres.conf` (a decoy folder
/// named in a file the include glob does not match holds another copy). Its soname link is
/// absolute when `absolute_link`. The program is `/usr/local/bin/value_plain`.
fn copied_sysroot(root: &Path, absolute_link: bool) {
    use std::os::unix::fs::symlink;
    let f = fixtures();
    let multiarch = root.join("usr/lib/x86_64-linux-gnu");
    for dir in [
        &multiarch,
        &root.join("usr/lib64"),
        &root.join("opt/spres/lib"),
        &root.join("opt/decoy/lib"),
        &root.join("etc/ld.so.conf.d"),
        &root.join("usr/local/bin"),
    ] {
        std::fs::create_dir_all(dir).unwrap();
    }
    symlink("usr/lib", root.join("lib")).unwrap();
    symlink("usr/lib64", root.join("lib64")).unwrap();
    copy_marked(&realpath("/lib64/ld-linux-x86-64.so.2"), &multiarch.join("ld-linux-x86-64.so.2"));
    copy_marked(&realpath("/lib/x86_64-linux-gnu/libc.so.6"), &multiarch.join("libc.so.6"));
    symlink("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", root.join("usr/lib64/ld-linux-x86-64.so.2")).unwrap();
    std::fs::copy(f.path("sysroot-lib/libspres_value.so.1.0.0"), root.join("opt/spres/lib/libspres_value.so.1.0.0")).unwrap();
    let link = if absolute_link { "/opt/spres/lib/libspres_value.so.1.0.0" } else { "libspres_value.so.1.0.0" };
    symlink(link, root.join("opt/spres/lib/libspres_value.so.1")).unwrap();
    std::fs::copy(f.path("d2/libspres_value.so.1"), root.join("opt/decoy/lib/libspres_value.so.1")).unwrap();
    std::fs::write(root.join("etc/ld.so.conf"), "# the sysroot's own\ninclude /etc/ld.so.conf.d/*.conf\n").unwrap();
    std::fs::write(root.join("etc/ld.so.conf.d/spres.conf"), "/opt/spres/lib\n").unwrap();
    std::fs::write(root.join("etc/ld.so.conf.d/decoy.conf.disabled"), "/opt/decoy/lib\n").unwrap();
    std::fs::copy(f.path("plain/value_plain"), root.join("usr/local/bin/value_plain")).unwrap();
}

/// ld.so's own answer inside `root`: `ldconfig -r` builds the root's ld.so.cache from its
/// ld.so.conf (ld.so itself never reads ld.so.conf), then the root's loader lists the program's
/// libraries in a chroot. Returns name → real path (host path under `root`).
fn ld_so_in_chroot(root: &Path, program: &str) -> BTreeMap<String, Option<PathBuf>> {
    run_ok(Command::new("ldconfig").arg("-X").arg("-r").arg(root));
    let output =
        run_ok(Command::new("chroot").arg(root).args(["/lib64/ld-linux-x86-64.so.2", "--list", program]).env_remove("LD_LIBRARY_PATH"));
    parse_ldd(&stdout(&output)).into_iter().map(|(name, path)| (name, path.map(|p| realpath_in(root, &p)))).collect()
}

/// Checks `inspect --sysroot` of the copied sysroot: every path inside it, as ld.so finds them
/// there. `why` explains a failure.
fn check_copied_sysroot_inspect(root: &Path, why: &str) -> Value {
    let root_arg = root.to_str().unwrap();
    let program = root.join("usr/local/bin/value_plain");
    let json = inspect(&program, &["--sysroot", root_arg]);
    assert_eq!(json["interpreter"], format!("{root_arg}/lib64/ld-linux-x86-64.so.2"));
    assert_eq!(
        libraries(&json).into_iter().map(|l| (l.name, l.path, l.image_path, l.rule)).collect::<BTreeSet<_>>(),
        BTreeSet::from([
            (
                "libspres_value.so.1".to_string(),
                format!("{root_arg}/opt/spres/lib/libspres_value.so.1"),
                "/opt/spres/lib/libspres_value.so.1".to_string(),
                "ld.so.conf".to_string()
            ),
            (
                "libc.so.6".to_string(),
                format!("{root_arg}/lib/x86_64-linux-gnu/libc.so.6"),
                "/lib/x86_64-linux-gnu/libc.so.6".to_string(),
                "default".to_string()
            ),
        ]),
        "inspect --sysroot {root_arg}: its libraries (left) are not the expected ones (right); missing: {:?}. {why}",
        missing(&json)
    );
    assert!(missing(&json).is_empty(), "{:?}", missing(&json));
    let interpreter = text(&json, "interpreter");
    for path in libraries(&json).iter().map(|l| l.path.as_str()).chain([interpreter.as_str()]) {
        assert!(path.starts_with(&format!("{root_arg}/")), "{path} is not in the sysroot");
        let real = realpath_in(root, &image_path_of(root, path));
        assert!(real.is_file() && real.starts_with(root), "{path} resolves to {} inside the sysroot", real.display());
    }
    for marked in ["/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6"] {
        let bytes = std::fs::read(realpath_in(root, marked)).unwrap();
        assert!(bytes.ends_with(SYSROOT_MARK), "{marked} in the sysroot is not the sysroot's copy");
    }
    json
}

#[test]
fn copied_sysroot_resolves_inside_it_and_runs() {
    let work = temp_dir();
    let root = work.path().join("sysroot");
    copied_sysroot(&root, false);
    let json = check_copied_sysroot_inspect(&root, "");

    // Pack before ld.so's check below writes an ld.so.cache into the sysroot.
    let layout = work.path().join("layout");
    let program = root.join("usr/local/bin/value_plain");
    pack(&[program.to_str().unwrap(), "--sysroot", root.to_str().unwrap(), "--output", &format!("oci:{}", layout.display())], |_| {});
    // Without a cache, this root's ld.so does not find what only ld.so.conf names.
    let no_cache =
        Command::new("chroot").arg(&root).args(["/lib64/ld-linux-x86-64.so.2", "--list", "/usr/local/bin/value_plain"]).output().unwrap();

    let ld_so = ld_so_in_chroot(&root, "/usr/local/bin/value_plain");
    let ours: BTreeMap<String, Option<PathBuf>> =
        libraries(&json).into_iter().map(|l| (l.name, Some(realpath_in(&root, &image_path_of(&root, &l.path))))).collect();
    assert_eq!(ours, ld_so, "inspect --sysroot and the sysroot's ld.so (chroot, with ldconfig's cache) disagree");

    // The image: the sysroot's files, at their paths, with the links crossed on the way.
    let bundle = unpack(&layout, "latest", work.path());
    let rootfs = bundle.join("rootfs");
    for (link, target) in [
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
        ("usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
        ("opt/spres/lib/libspres_value.so.1", "libspres_value.so.1.0.0"),
    ] {
        let found = std::fs::read_link(rootfs.join(link)).unwrap_or_else(|e| panic!("/{link} in the image: {e}"));
        assert_eq!(found, Path::new(target), "/{link} in the image");
    }
    for marked in ["usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "usr/lib/x86_64-linux-gnu/libc.so.6"] {
        let bytes = std::fs::read(rootfs.join(marked)).unwrap_or_else(|e| panic!("/{marked} in the image: {e}"));
        assert!(bytes.ends_with(SYSROOT_MARK), "/{marked} in the image is not the sysroot's copy");
    }
    assert_eq!(
        std::fs::read(rootfs.join("opt/spres/lib/libspres_value.so.1.0.0")).unwrap(),
        std::fs::read(root.join("opt/spres/lib/libspres_value.so.1.0.0")).unwrap()
    );
    assert!(!rootfs.join("opt/decoy").exists(), "the decoy folder's library is in the image");

    let output = runc_run(&bundle);
    assert!(
        output.status.success() && stdout(&output) == "value 3\n",
        "the packed sysroot program failed in the container: {}\nstdout: {}\nstderr: {}\n\
         The image has no /etc/ld.so.cache and ld.so never reads /etc/ld.so.conf, so a library found \
         through ld.so.conf outside ld.so's default folders is not found at run time. The sysroot's \
         own ld.so in a chroot without a cache fails the same way:\n{}{}",
        output.status,
        stdout(&output),
        stderr(&output),
        stdout(&no_cache),
        stderr(&no_cache)
    );
}

#[test]
fn sysroot_absolute_library_link_resolves_inside_the_sysroot() {
    let work = temp_dir();
    let root = work.path().join("sysroot");
    copied_sysroot(&root, true);
    let ld_so = ld_so_in_chroot(&root, "/usr/local/bin/value_plain");
    assert_eq!(ld_so.get("libspres_value.so.1"), Some(&Some(root.join("opt/spres/lib/libspres_value.so.1.0.0"))), "{ld_so:?}");
    std::fs::remove_file(root.join("etc/ld.so.cache")).unwrap();
    let why = format!(
        "The sysroot's ld.so (in a chroot, with ldconfig's cache) loads libspres_value.so.1 from {}: \
         /opt/spres/lib/libspres_value.so.1 is an absolute link to /opt/spres/lib/libspres_value.so.1.0.0, \
         which exists only inside the sysroot; following it on this machine finds nothing.",
        root.join("opt/spres/lib/libspres_value.so.1.0.0").display()
    );
    let json = check_copied_sysroot_inspect(&root, &why);
    let ours: BTreeMap<String, Option<PathBuf>> =
        libraries(&json).into_iter().map(|l| (l.name, Some(realpath_in(&root, &image_path_of(&root, &l.path))))).collect();
    assert_eq!(ours, ld_so, "inspect --sysroot and the sysroot's ld.so (chroot, with ldconfig's cache) disagree");

    // The image keeps the link as it is, and the file it leads to inside the sysroot.
    let layout = work.path().join("layout");
    let program = root.join("usr/local/bin/value_plain");
    pack(&[program.to_str().unwrap(), "--sysroot", root.to_str().unwrap(), "--output", &format!("oci:{}", layout.display())], |_| {});
    let rootfs = unpack(&layout, "latest", work.path()).join("rootfs");
    assert_eq!(
        std::fs::read_link(rootfs.join("opt/spres/lib/libspres_value.so.1")).unwrap(),
        Path::new("/opt/spres/lib/libspres_value.so.1.0.0")
    );
    assert_eq!(
        std::fs::read(rootfs.join("opt/spres/lib/libspres_value.so.1.0.0")).unwrap(),
        std::fs::read(root.join("opt/spres/lib/libspres_value.so.1.0.0")).unwrap()
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Real programs of this machine, under runc
// ---------------------------------------------------------------------------------------------

fn pack_and_run(program: &str, args: &[&str], extra: &[&str]) -> String {
    let work = temp_dir();
    let layout = work.path().join("layout");
    let output = format!("oci:{}", layout.display());
    let mut all = vec![program, "--output", output.as_str()];
    for arg in args {
        all.extend(["--arg", arg]);
    }
    all.extend(extra);
    pack(&all, |_| {});
    run_image(&layout, "latest")
}

fn host_first_line(program: &str, args: &[&str]) -> String {
    let output = run_ok(Command::new(program).args(args).env_remove("LD_LIBRARY_PATH"));
    stdout(&output).lines().next().unwrap_or_default().to_string()
}

#[test]
fn curl_runs_under_runc() {
    let printed = pack_and_run("/usr/bin/curl", &["--version"], &[]);
    let first = printed.lines().next().unwrap_or_default();
    assert!(first.starts_with("curl "), "{printed}");
    assert_eq!(first, host_first_line("/usr/bin/curl", &["--version"]));
}

#[test]
fn git_runs_under_runc() {
    let printed = pack_and_run("/usr/bin/git", &["--version"], &[]);
    assert!(printed.starts_with("git version "), "{printed}");
    assert_eq!(printed.trim_end(), host_first_line("/usr/bin/git", &["--version"]));
}

/// Copies Debian's standard library for the image: `--add` refuses a folder with links out of it,
/// and it has two: `sitecustomize.py -> /etc/python3.11/sitecustomize.py` (Debian's apport hook,
/// whose absence `site` ignores) and a link to libpython in `config-3.11-x86_64-linux-gnu`, which
/// holds only what building C extensions needs (24 MB of static library) and is left out whole.
/// `__pycache__` is left out too: the interpreter compiles what it imports (in memory, when it
/// cannot write). Returns the links left out.
fn stage_python_stdlib(from: &Path, to: &Path) -> Vec<String> {
    fn walk(root: &Path, from: &Path, to: &Path, skipped: &mut Vec<String>) {
        std::fs::create_dir_all(to).unwrap();
        let mut entries: Vec<_> = std::fs::read_dir(from).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let (source, dest) = (entry.path(), to.join(&name));
            let kind = entry.file_type().unwrap();
            if name == "__pycache__" || name.starts_with("config-3.11") {
                continue;
            }
            if kind.is_dir() {
                walk(root, &source, &dest, skipped);
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&source).unwrap();
                let resolved = source.parent().unwrap().join(&target);
                if target.is_absolute() || !realpath(&resolved).starts_with(root) {
                    skipped.push(format!("{} -> {}", source.display(), target.display()));
                } else {
                    std::os::unix::fs::symlink(&target, &dest).unwrap();
                }
            } else {
                std::fs::copy(&source, &dest).unwrap();
            }
        }
    }
    let mut skipped = Vec::new();
    walk(&realpath(from), from, to, &mut skipped);
    skipped
}

#[test]
fn python3_runs_under_runc_with_its_stdlib() {
    let work = temp_dir();
    let stdlib = work.path().join("python3.11");
    let skipped = stage_python_stdlib(Path::new("/usr/lib/python3.11"), &stdlib);
    assert_eq!(skipped, ["/usr/lib/python3.11/sitecustomize.py -> /etc/python3.11/sitecustomize.py"], "links left out");
    let add = format!("{}:/usr/lib/python3.11", stdlib.display());
    // /usr/bin/python3 is Debian's 3.11 (the python3 first on PATH may be another build). In the
    // image it is /usr/local/bin/python3, and finds its prefix /usr by the landmark lib/python3.11/os.py.
    let printed = pack_and_run("/usr/bin/python3", &["-c", "print(1)"], &["--add", &add]);
    assert_eq!(printed, "1\n");
}

// ---------------------------------------------------------------------------------------------
// 4. A dynamic arm64 program from Debian's cross sysroot
// ---------------------------------------------------------------------------------------------

/// `hello.c`, dynamically linked for arm64 against the cross glibc.
fn dynamic_c_hello_arm64() -> PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    CELL.get_or_init(|| {
        let dir = fixtures().path("arm64");
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("hello-c-arm64-dynamic");
        let hello = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hello.c");
        run_ok(Command::new("aarch64-linux-gnu-gcc").args(["-O2", "-o"]).arg(&out).arg(hello));
        out
    })
    .clone()
}

const ARM64_SYSROOT: &str = "/usr/aarch64-linux-gnu";

/// The cross sysroot's loader, run by qemu: its answer (`--list`) and its own search path (`--help`).
fn arm64_ld_so(program: &Path) -> (BTreeMap<String, Option<String>>, String) {
    let loader = format!("{ARM64_SYSROOT}/lib/ld-linux-aarch64.so.1");
    let list = run_ok(Command::new("qemu-aarch64-static").args(["-L", ARM64_SYSROOT, &loader, "--list"]).arg(program));
    let help = run_ok(Command::new("qemu-aarch64-static").args(["-L", ARM64_SYSROOT, &loader, "--help"]));
    let help = stdout(&help);
    let search: Vec<&str> = help.lines().filter(|l| l.contains("(system search path)")).map(str::trim).collect();
    (parse_ldd(&stdout(&list)), search.join("; "))
}

#[test]
fn arm64_dynamic_program_from_the_cross_sysroot_runs_under_qemu() {
    let sysroot = Path::new(ARM64_SYSROOT);
    let hello = dynamic_c_hello_arm64();
    let json = inspect(&hello, &["--sysroot", ARM64_SYSROOT]);
    assert_eq!(json["platform"], serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"}));
    assert_eq!(json["linkage"], "dynamic");
    assert_eq!(json["interpreter_name"], "/lib/ld-linux-aarch64.so.1");
    assert_eq!(json["interpreter"], format!("{ARM64_SYSROOT}/lib/ld-linux-aarch64.so.1"));

    // ld.so of the sysroot: libc.so.6 from /lib, one of its built-in default folders.
    let (ld_so, search_path) = arm64_ld_so(&hello);
    assert_eq!(ld_so, BTreeMap::from([("libc.so.6".to_string(), Some("/lib/libc.so.6".to_string()))]), "the cross loader's --list");
    let expected = BTreeSet::from([(
        "libc.so.6".to_string(),
        format!("{ARM64_SYSROOT}/lib/libc.so.6"),
        "/lib/libc.so.6".to_string(),
        "default".to_string(),
    )]);
    let ours: BTreeSet<_> = libraries(&json).into_iter().map(|l| (l.name, l.path, l.image_path, l.rule)).collect();
    assert!(
        ours == expected && missing(&json).is_empty(),
        "inspect --sysroot {ARM64_SYSROOT} resolved {ours:?}, missing {:?}; ld.so loads libc.so.6 from /lib/libc.so.6 \
         ({}/lib/libc.so.6): the sysroot has no lib/aarch64-linux-gnu and no etc/ld.so.conf, and its loader's \
         own default folders are: {search_path}",
        missing(&json),
        sysroot.display()
    );

    let work = temp_dir();
    let layout = work.path().join("layout");
    pack(&[hello.to_str().unwrap(), "--sysroot", ARM64_SYSROOT, "--output", &format!("oci:{}", layout.display())], |_| {});
    let inspected = skopeo_inspect(&format!("oci:{}:latest", layout.display()), &["--override-arch", "arm64"]);
    assert_eq!(inspected["Architecture"], "arm64");
    assert_eq!(inspected["Os"], "linux");
    ensure_arm64_binfmt();
    assert_eq!(run_image(&layout, "latest"), "hello from C, uid 65532\n");
}
