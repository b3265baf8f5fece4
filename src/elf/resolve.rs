//! The shared libraries a dynamic program loads, found as glibc's ld.so finds them (ld.so(8)), or
//! as musl's loader does for musl programs.
//!
//! glibc, for each DT_NEEDED name of an object R, in breadth-first order from the program:
//! 1. DT_RPATH, only when R has no DT_RUNPATH: R's, then its loader's, up to the program (each
//!    object's only if that object itself has no DT_RUNPATH): RPATH is inherited;
//! 2. `--library-path` (LD_LIBRARY_PATH, never this tool's own environment);
//! 3. R's DT_RUNPATH (not inherited);
//! 4. ld.so.conf's directories (what ldconfig caches), with `include` globs, and
//! 5. the default directories (`/lib/<triplet>`, `/usr/lib/<triplet>`, `/lib`, `/usr/lib` on
//!    multiarch systems), both skipped when R is linked `-z nodeflib`.
//!
//! A name already loaded (by SONAME, or as the interpreter) is not searched again. A file of
//! another ELF class, machine or OS ABI is skipped and the search goes on, and so is anything that
//! is not an ELF shared object (ld.so would refuse it; it is never packed). `$ORIGIN`, `$LIB` and
//! `$PLATFORM` are expanded. Everything is read under the [`Root`] (a sysroot, or `/`).
//!
//! The interpreter PT_INTERP names must be a loader of the program's machine (an ELF shared object
//! or executable without a PT_INTERP of its own), or the whole resolution is refused: otherwise a
//! program could name any readable file and have it packed.
//!
//! musl: `--library-path`, then RUNPATH-or-RPATH of R and of every object that led to R, then
//! `/etc/ld-musl-ARCH.path` or `/lib:/usr/local/lib:/usr/lib`; `libc.so` is the loader itself.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};

use goblin::elf::dynamic::{DF_1_NODEFLIB, DT_FLAGS_1};
use goblin::elf::Elf;
use serde::Serialize;

use super::root::{join, Root};
use super::ElfInfo;

/// Which search step found a library.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Rule {
    Rpath,
    LibraryPath,
    Runpath,
    LdSoConf,
    Default,
    /// musl's path file or defaults.
    MuslPath,
    /// DT_NEEDED named a path (it has a '/').
    Path,
}

impl Rule {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Rule::Rpath => "rpath",
            Rule::LibraryPath => "library-path",
            Rule::Runpath => "runpath",
            Rule::LdSoConf => "ld.so.conf",
            Rule::Default => "default",
            Rule::MuslPath => "musl-path",
            Rule::Path => "path",
        }
    }
}

/// One resolved library.
#[derive(Clone, Debug, Serialize)]
pub struct Library {
    /// The DT_NEEDED name.
    pub name: String,
    /// Where it was found, as an image path (what ld.so will open in the image).
    pub(crate) image_path: String,
    /// The same path on this machine (under the sysroot, if any), as found: it may be a link.
    pub(crate) host_path: PathBuf,
    /// The real file behind it, symlinks resolved inside the root: what is read and hashed.
    pub file: PathBuf,
    pub(crate) rule: Rule,
    /// The object whose DT_NEEDED named it (a file name).
    pub(crate) needed_by: String,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Missing {
    pub(crate) name: String,
    pub(crate) needed_by: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Resolution {
    /// The interpreter as PT_INTERP names it (image path), and that path on this machine.
    pub(crate) interpreter: Option<(String, PathBuf)>,
    /// The interpreter's real file (symlinks resolved inside the root): what is read and hashed.
    pub interpreter_file: Option<PathBuf>,
    pub libraries: Vec<Library>,
    pub(crate) missing: Vec<Missing>,
    pub(crate) musl: bool,
    /// Folders where ld.so.conf found libraries outside the loader's default folders. In the image
    /// there is no ld.so.cache (ld.so never reads ld.so.conf itself), so they must be named in
    /// LD_LIBRARY_PATH for ld.so to find those libraries at run time.
    pub(crate) conf_dirs: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct ResolveOptions {
    pub(crate) root: Root,
    /// `--library-path`: image paths, searched like LD_LIBRARY_PATH.
    pub(crate) library_path: Vec<String>,
    /// Names to load as if the program needed them (what glibc dlopens: NSS modules).
    pub(crate) extra_needed: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("the interpreter {path} is not in {}", root_name(root))]
    NoInterpreter { path: String, root: Option<PathBuf> },
    /// PT_INTERP names a file that is not a loader the program could run with. Whatever the file
    /// is (a text file, a key, another machine's loader), it is refused, never read further and
    /// never packed: `--allow-missing` does not apply, the file is there.
    #[error(
        "{}: its interpreter {path}{} {problem} (PT_INTERP must name the dynamic loader); refusing to pack it",
        program.display(),
        link_note(path, real)
    )]
    NotALoader { program: PathBuf, path: String, real: String, problem: LoaderProblem },
}

impl ResolveError {
    pub(crate) fn hint(&self) -> Option<String> {
        let hint = match self {
            ResolveError::NoInterpreter { .. } => "point --sysroot at a root that has the program's interpreter",
            ResolveError::NotALoader { .. } => {
                "check the program was linked for this system (readelf -l shows its interpreter), or pass --sysroot with a root that has its loader"
            }
        };
        Some(hint.to_string())
    }
}

/// Why the file PT_INTERP names is not the program's loader. Never quotes the file's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoaderProblem {
    #[error("is not a regular file")]
    NotRegular,
    #[error("cannot be read ({0})")]
    Unreadable(String),
    #[error("is not an ELF object")]
    NotElf,
    #[error("is a corrupt or truncated ELF ({0})")]
    Corrupt(String),
    #[error("is an ELF for another OS ABI ({0}), not Linux")]
    NotLinux(u8),
    #[error("is an ELF for {found}, not for {program} like the program")]
    OtherMachine { found: String, program: String },
    #[error("is an ELF of type {0}, not a shared object or executable")]
    NotLoadable(&'static str),
    #[error("is itself a dynamic program with a PT_INTERP of its own, not a loader")]
    HasInterpreter,
}

/// ` (a link to /real/path)` when the interpreter's path crosses symlinks to another file.
fn link_note(path: &str, real: &str) -> String {
    if join("/", path) == real {
        String::new()
    } else {
        format!(" (a link to {real})")
    }
}

fn root_name(root: &Option<PathBuf>) -> String {
    match root {
        Some(root) => format!("the sysroot {}", root.display()),
        None => "this machine's file system".to_string(),
    }
}

/// What the search needs to know of each loaded object.
struct Object {
    /// File name, for `needed_by`.
    label: String,
    /// Image directory `$ORIGIN` stands for, and where that is on this machine.
    origin: (String, PathBuf),
    needed: Vec<String>,
    rpath: Vec<String>,
    runpath: Vec<String>,
    nodeflib: bool,
    loader: Option<usize>,
}

/// The ELF identity a library must share with the program.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Identity {
    class: u8,
    little_endian: bool,
    machine: u16,
}

/// A search directory: as ld.so sees it in the image, and where that is here.
#[derive(Clone, Debug)]
struct SearchDir {
    image: String,
    host: PathBuf,
}

struct Resolver<'a> {
    options: &'a ResolveOptions,
    identity: Identity,
    triplet: Option<&'static str>,
    platform: &'static str,
    lib_token: String,
    musl: bool,
}

/// Resolves every library `program` needs. `program_image_path` is where the program will be in the
/// image, for `$ORIGIN`.
pub fn resolve(program: &ElfInfo, program_image_path: &str, options: &ResolveOptions) -> Result<Resolution, ResolveError> {
    let identity = Identity { class: program.class, little_endian: program.little_endian, machine: program.machine };
    let triplet = multiarch_triplet(program.machine, program.class, program.little_endian);
    let root = &options.root;
    let is_dir = |image: String| root.real_host(&image).is_some_and(|d| d.is_dir());
    let has_multiarch = triplet.is_some_and(|t| is_dir(format!("/lib/{t}")) || is_dir(format!("/usr/lib/{t}")));
    let lib_token = match (has_multiarch, triplet, program.class) {
        (true, Some(t), _) => format!("lib/{t}"),
        (_, _, 64) => "lib64".to_string(),
        _ => "lib".to_string(),
    };
    let musl = program.interpreter.as_deref().is_some_and(|i| file_name(i).starts_with("ld-musl-"));
    let resolver = Resolver {
        options,
        identity,
        triplet: if has_multiarch { triplet } else { None },
        platform: platform_token(program.machine),
        lib_token,
        musl,
    };
    resolver.run(program, program_image_path)
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Debian's multiarch triplet for a machine.
fn multiarch_triplet(machine: u16, class: u8, little_endian: bool) -> Option<&'static str> {
    use goblin::elf::header::*;
    Some(match (machine, class, little_endian) {
        (EM_X86_64, 64, _) => "x86_64-linux-gnu",
        (EM_AARCH64, 64, _) => "aarch64-linux-gnu",
        (EM_ARM, 32, _) => "arm-linux-gnueabihf",
        (EM_386, 32, _) => "i386-linux-gnu",
        (EM_RISCV, 64, _) => "riscv64-linux-gnu",
        (EM_PPC64, 64, true) => "powerpc64le-linux-gnu",
        (EM_S390, 64, _) => "s390x-linux-gnu",
        (EM_LOONGARCH, 64, _) => "loongarch64-linux-gnu",
        (EM_MIPS, 64, true) => "mips64el-linux-gnuabi64",
        _ => return None,
    })
}

/// `$PLATFORM`: what the kernel passes as AT_PLATFORM.
fn platform_token(machine: u16) -> &'static str {
    use goblin::elf::header::*;
    match machine {
        EM_X86_64 => "x86_64",
        EM_AARCH64 => "aarch64",
        EM_386 => "i686",
        EM_ARM => "v7l",
        EM_RISCV => "riscv64",
        EM_PPC64 => "powerpc64le",
        EM_S390 => "s390x",
        _ => "unknown",
    }
}

/// The ARCH in musl's `/etc/ld-musl-ARCH.path`.
fn musl_arch(machine: u16) -> &'static str {
    use goblin::elf::header::*;
    match machine {
        EM_X86_64 => "x86_64",
        EM_AARCH64 => "aarch64",
        EM_386 => "i386",
        EM_ARM => "armhf",
        EM_RISCV => "riscv64",
        EM_PPC64 => "powerpc64le",
        EM_S390 => "s390x",
        _ => "unknown",
    }
}

impl Resolver<'_> {
    fn run(&self, program: &ElfInfo, program_image_path: &str) -> Result<Resolution, ResolveError> {
        let root = &self.options.root;
        let mut resolution = Resolution { musl: self.musl, ..Default::default() };
        let program_dir = parent(program_image_path);
        let host_dir = program.file.canonicalize().ok().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or_default();
        let mut objects = vec![Object {
            label: program.file_name(),
            origin: (program_dir, host_dir),
            needed: program.needed.iter().chain(&self.options.extra_needed).cloned().collect(),
            rpath: program.rpath.clone(),
            runpath: program.runpath.clone(),
            nodeflib: false,
            loader: None,
        }];
        // Names that are loaded already: sonames and the names used to load them.
        let mut loaded: HashSet<String> = HashSet::new();
        if let Some(interp) = &program.interpreter {
            let real = root
                .canonicalize(interp)
                .map_err(|_| ResolveError::NoInterpreter { path: interp.clone(), root: root.sysroot().map(Path::to_path_buf) })?
                .real;
            let file = root.host(&real);
            // The loader is packed as it is found: it must be one, or PT_INTERP could name any
            // readable file (a key, a password file) and get it copied into the image.
            let soname = read_loader(&file, self.identity).map_err(|problem| ResolveError::NotALoader {
                program: program.file.clone(),
                path: interp.clone(),
                real: real.clone(),
                problem,
            })?;
            let host = root.host(interp);
            loaded.insert(file_name(interp).to_string());
            loaded.extend(soname);
            resolution.interpreter = Some((interp.clone(), host));
            resolution.interpreter_file = Some(file);
        }
        let mut queue = VecDeque::from([0usize]);
        while let Some(index) = queue.pop_front() {
            let needed = objects[index].needed.clone();
            for name in needed {
                if loaded.contains(&name) || (self.musl && is_musl_libc(&name)) {
                    continue;
                }
                let needed_by = objects[index].label.clone();
                match self.find(&objects, index, &name) {
                    Some((dir, rule, file_in_dir)) => {
                        let image_path = join(&dir.image, &file_in_dir);
                        let host_path = dir.host.join(&file_in_dir);
                        let file = self.real_file(&dir, &file_in_dir).expect("find() checked it");
                        let info = read_object(&file, self.identity).ok().flatten().expect("find() checked it");
                        loaded.insert(name.clone());
                        if let Some(soname) = info.soname {
                            loaded.insert(soname);
                        }
                        let origin = (
                            dir.image.clone(),
                            host_path.canonicalize().ok().and_then(|p| p.parent().map(Path::to_path_buf)).unwrap_or(dir.host.clone()),
                        );
                        objects.push(Object {
                            label: name.clone(),
                            origin,
                            needed: info.needed,
                            rpath: info.rpath,
                            runpath: info.runpath,
                            nodeflib: info.nodeflib,
                            loader: Some(index),
                        });
                        queue.push_back(objects.len() - 1);
                        resolution.libraries.push(Library { name, image_path, host_path, file, rule, needed_by });
                    }
                    None => {
                        loaded.insert(name.clone()); // reported once
                        resolution.missing.push(Missing { name, needed_by });
                    }
                }
            }
        }
        let defaults: Vec<String> = self.default_dirs().into_iter().map(|d| d.image).collect();
        for library in resolution.libraries.iter().filter(|l| l.rule == Rule::LdSoConf) {
            let dir = parent(&library.image_path);
            if !defaults.contains(&dir) && !resolution.conf_dirs.contains(&dir) {
                resolution.conf_dirs.push(dir);
            }
        }
        Ok(resolution)
    }

    /// The first directory, in ld.so's order, holding a compatible `name`.
    /// Returns the folder, the rule, and the file name inside that folder (a DT_NEEDED with a `/`
    /// names a path: its last component is the file).
    fn find(&self, objects: &[Object], index: usize, name: &str) -> Option<(SearchDir, Rule, String)> {
        if name.contains('/') {
            let image = join(&objects[index].origin.0, name);
            let dir = SearchDir { image: parent(&image), host: self.options.root.host(&parent(&image)) };
            let file = file_name(&image).to_string();
            return self.compatible(&dir, &file).then_some((dir, Rule::Path, file));
        }
        for (dirs, rule) in self.search_order(objects, index) {
            for dir in dirs {
                if self.compatible(&dir, name) {
                    return Some((dir, rule, name.to_string()));
                }
            }
        }
        None
    }

    fn compatible(&self, dir: &SearchDir, name: &str) -> bool {
        self.real_file(dir, name).is_some_and(|file| matches!(read_object(&file, self.identity), Ok(Some(_))))
    }

    /// The regular file `dir/name` is, with symlinks resolved inside the root (an absolute link
    /// in a sysroot points into the sysroot, not at this machine's files).
    fn real_file(&self, dir: &SearchDir, name: &str) -> Option<PathBuf> {
        let root = &self.options.root;
        let file = if root.host(&dir.image) == dir.host {
            root.host(&root.canonicalize(&join(&dir.image, name)).ok()?.real)
        } else {
            // A $ORIGIN folder of a program outside the root: an ordinary path here.
            dir.host.join(name).canonicalize().ok()?
        };
        file.is_file().then_some(file)
    }

    fn search_order(&self, objects: &[Object], index: usize) -> Vec<(Vec<SearchDir>, Rule)> {
        let object = &objects[index];
        let library_path: Vec<SearchDir> = self.options.library_path.iter().map(|d| self.plain_dir(d)).collect();
        let mut order = Vec::new();
        if self.musl {
            order.push((library_path, Rule::LibraryPath));
            let mut chain = Vec::new();
            let mut at = Some(index);
            while let Some(i) = at {
                let o = &objects[i];
                let dirs = if o.runpath.is_empty() { &o.rpath } else { &o.runpath };
                chain.extend(dirs.iter().flat_map(|d| self.expand(d, o)));
                at = o.loader;
            }
            order.push((chain, if object.runpath.is_empty() { Rule::Rpath } else { Rule::Runpath }));
            order.push((self.musl_dirs(), Rule::MuslPath));
            return order;
        }
        if object.runpath.is_empty() {
            let mut rpath = Vec::new();
            let mut at = Some(index);
            while let Some(i) = at {
                let o = &objects[i];
                if o.runpath.is_empty() {
                    rpath.extend(o.rpath.iter().flat_map(|d| self.expand(d, o)));
                }
                at = o.loader;
            }
            order.push((rpath, Rule::Rpath));
        }
        order.push((library_path, Rule::LibraryPath));
        order.push((object.runpath.iter().flat_map(|d| self.expand(d, object)).collect(), Rule::Runpath));
        if !object.nodeflib {
            order.push((self.ld_so_conf(), Rule::LdSoConf));
            order.push((self.default_dirs(), Rule::Default));
        }
        order
    }

    fn plain_dir(&self, image: &str) -> SearchDir {
        let image = join("/", image);
        SearchDir { host: self.options.root.host(&image), image }
    }

    /// Expands `$ORIGIN`, `$LIB` and `$PLATFORM` (also as `${…}`) in one RPATH/RUNPATH entry.
    fn expand(&self, entry: &str, object: &Object) -> Option<SearchDir> {
        let tokens = |text: &str, origin: &str| {
            text.replace("${ORIGIN}", origin)
                .replace("$ORIGIN", origin)
                .replace("${LIB}", &self.lib_token)
                .replace("$LIB", &self.lib_token)
                .replace("${PLATFORM}", self.platform)
                .replace("$PLATFORM", self.platform)
        };
        if entry.contains("ORIGIN") {
            // $ORIGIN is where the object is: in the image, and (for the program, which may sit
            // outside the sysroot) on this machine: `$ORIGIN/../lib` next to a build's output is
            // found there. With a sysroot, a path that climbs further than the program's parent
            // folder is an image path and is read inside the sysroot, never from this machine's
            // own system folders.
            let image = join("/", &tokens(entry, &object.origin.0));
            let host = PathBuf::from(join("/", &tokens(entry, &object.origin.1.to_string_lossy())));
            let project = object.origin.1.parent().unwrap_or(&object.origin.1);
            if self.options.root.sysroot().is_some() && !host.starts_with(self.options.root.host("/")) && !host.starts_with(project) {
                return Some(self.plain_dir(&image));
            }
            return Some(SearchDir { image, host });
        }
        if !entry.starts_with('/') {
            return None; // relative entries depend on the working directory: ld.so's own caveat
        }
        Some(self.plain_dir(&tokens(entry, "")))
    }

    /// The loader's compiled-in folders: Debian's multiarch ones, then `/lib` and `/usr/lib`, and
    /// for 64-bit programs `/lib64` and `/usr/lib64` (other distributions' defaults; a library of
    /// the wrong class in `/lib` is skipped on the way). They belong to the loader, not to the
    /// root's layout: a cross sysroot without multiarch folders still has them compiled in.
    fn default_dirs(&self) -> Vec<SearchDir> {
        let mut dirs: Vec<String> = Vec::new();
        if let Some(t) = self.triplet {
            dirs.extend([format!("/lib/{t}"), format!("/usr/lib/{t}")]);
        }
        dirs.extend(["/lib".to_string(), "/usr/lib".to_string()]);
        if self.identity.class == 64 {
            dirs.extend(["/lib64".to_string(), "/usr/lib64".to_string()]);
        }
        dirs.iter().map(|d| self.plain_dir(d)).collect()
    }

    fn ld_so_conf(&self) -> Vec<SearchDir> {
        let mut dirs = Vec::new();
        let mut seen = HashSet::new();
        self.read_conf("/etc/ld.so.conf", &mut dirs, &mut seen, 0);
        dirs.into_iter().map(|d| self.plain_dir(&d)).collect()
    }

    fn read_conf(&self, image_path: &str, dirs: &mut Vec<String>, seen: &mut HashSet<String>, depth: usize) {
        if depth > 8 || !seen.insert(image_path.to_string()) {
            return;
        }
        let Some(Ok(text)) = self.options.root.real_host(image_path).map(std::fs::read_to_string) else { return };
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if let Some(pattern) = line.strip_prefix("include").filter(|rest| rest.starts_with([' ', '\t'])) {
                for pattern in pattern.split_whitespace() {
                    let pattern = if pattern.starts_with('/') { pattern.to_string() } else { join(&parent(image_path), pattern) };
                    for file in glob_under(&self.options.root, &pattern) {
                        self.read_conf(&file, dirs, seen, depth + 1);
                    }
                }
            } else if line.starts_with("hwcap ") {
                continue;
            } else {
                for dir in line.split([':', ',', ' ', '\t']).filter(|d| d.starts_with('/')) {
                    let dir = join("/", dir);
                    if !dirs.contains(&dir) {
                        dirs.push(dir);
                    }
                }
            }
        }
    }

    fn musl_dirs(&self) -> Vec<SearchDir> {
        let arch = musl_arch(self.identity.machine);
        let path_file = format!("/etc/ld-musl-{arch}.path");
        let dirs: Vec<String> = match self.options.root.real_host(&path_file).map(std::fs::read_to_string) {
            Some(Ok(text)) => text.split(['\n', ':']).map(str::trim).filter(|d| d.starts_with('/')).map(str::to_string).collect(),
            _ => vec!["/lib".into(), "/usr/local/lib".into(), "/usr/lib".into()],
        };
        dirs.iter().map(|d| self.plain_dir(d)).collect()
    }
}

/// musl's loader is its libc: these names resolve to it.
fn is_musl_libc(name: &str) -> bool {
    const RESERVED: &[&str] = &["c", "pthread", "rt", "m", "dl", "util", "xnet"];
    let Some(rest) = name.strip_prefix("lib") else { return false };
    RESERVED.iter().any(|r| rest.strip_prefix(r).is_some_and(|tail| tail == ".so" || tail.starts_with(".so.")))
}

fn parent(image_path: &str) -> String {
    match image_path.rsplit_once('/') {
        Some(("", _)) | None => "/".to_string(),
        Some((dir, _)) => dir.to_string(),
    }
}

/// `*` and `?` in the last component, as ld.so.conf's `include` uses them (glob(3), sorted).
fn glob_under(root: &Root, pattern: &str) -> Vec<String> {
    let dir = parent(pattern);
    let name_pattern = file_name(pattern);
    let Some(Ok(entries)) = root.real_host(&dir).map(std::fs::read_dir) else { return vec![] };
    let mut matches: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| wildcard(name_pattern, n))
        .map(|n| join(&dir, &n))
        .collect();
    matches.sort();
    matches
}

fn wildcard(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    !name.starts_with('.') && go(pattern.as_bytes(), name.as_bytes())
}

/// The dynamic facts of a library.
struct ObjectInfo {
    soname: Option<String>,
    needed: Vec<String>,
    rpath: Vec<String>,
    runpath: Vec<String>,
    nodeflib: bool,
}

/// The ELF identification and the header fields the checks need, read from the first bytes of
/// a file: a file that is not an ELF object is never read further.
struct Head {
    class: u8,
    little_endian: bool,
    osabi: u8,
    kind: u16,
    machine: u16,
}

/// The most an ELF header takes (64-bit); what is read of a file before it is known to be ELF.
const HEAD_LEN: u64 = 64;

/// Opens `path` and reads its ELF header: `Ok(Err(problem))` when the file is no ELF object.
fn read_head(path: &Path) -> std::io::Result<(std::fs::File, Result<Head, LoaderProblem>)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut bytes = Vec::with_capacity(HEAD_LEN as usize);
    (&mut file).take(HEAD_LEN).read_to_end(&mut bytes)?;
    Ok((file, parse_head(&bytes)))
}

fn parse_head(bytes: &[u8]) -> Result<Head, LoaderProblem> {
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        return Err(LoaderProblem::NotElf);
    }
    if bytes.len() < 20 {
        return Err(LoaderProblem::Corrupt("the file ends inside the ELF header".into()));
    }
    let class = match bytes[4] {
        1 => 32,
        2 => 64,
        other => return Err(LoaderProblem::Corrupt(format!("unknown ELF class {other}"))),
    };
    let little_endian = match bytes[5] {
        1 => true,
        2 => false,
        other => return Err(LoaderProblem::Corrupt(format!("unknown ELF byte order {other}"))),
    };
    let half = |at: usize| {
        let pair = [bytes[at], bytes[at + 1]];
        if little_endian {
            u16::from_le_bytes(pair)
        } else {
            u16::from_be_bytes(pair)
        }
    };
    Ok(Head { class, little_endian, osabi: bytes[7], kind: half(16), machine: half(18) })
}

impl Head {
    fn identity(&self) -> Identity {
        Identity { class: self.class, little_endian: self.little_endian, machine: self.machine }
    }
}

/// How a machine is named in messages: `x86-64 (64-bit little-endian)`.
fn describe(identity: Identity) -> String {
    use goblin::elf::header::*;
    let machine = match identity.machine {
        EM_X86_64 => "x86-64".to_string(),
        EM_AARCH64 => "aarch64".to_string(),
        EM_ARM => "arm".to_string(),
        EM_386 => "i386".to_string(),
        EM_RISCV => "riscv".to_string(),
        EM_PPC64 => "ppc64".to_string(),
        EM_PPC => "ppc".to_string(),
        EM_S390 => "s390x".to_string(),
        EM_LOONGARCH => "loongarch".to_string(),
        EM_MIPS => "mips".to_string(),
        other => format!("ELF machine {other}"),
    };
    let order = if identity.little_endian { "little-endian" } else { "big-endian" };
    format!("{machine} ({}-bit {order})", identity.class)
}

/// Checks that `path` (a real file, symlinks resolved) is a dynamic loader the program can run
/// with: a regular file, an ELF shared object or executable of the program's class, byte order
/// and machine, for Linux, without a PT_INTERP of its own. Returns its SONAME. A file that is
/// not ELF is read no further than its first 64 bytes.
fn read_loader(path: &Path, identity: Identity) -> Result<Option<String>, LoaderProblem> {
    use goblin::elf::header::{et_to_str, ET_DYN, ET_EXEC};
    let unreadable = |e: std::io::Error| LoaderProblem::Unreadable(e.to_string());
    let metadata = std::fs::metadata(path).map_err(unreadable)?;
    if !metadata.is_file() {
        return Err(LoaderProblem::NotRegular);
    }
    let (file, head) = read_head(path).map_err(unreadable)?;
    let head = head?;
    if !matches!(head.osabi, 0 | 3) {
        return Err(LoaderProblem::NotLinux(head.osabi));
    }
    if head.identity() != identity {
        return Err(LoaderProblem::OtherMachine { found: describe(head.identity()), program: describe(identity) });
    }
    if !matches!(head.kind, ET_DYN | ET_EXEC) {
        return Err(LoaderProblem::NotLoadable(et_to_str(head.kind)));
    }
    // SAFETY: read-only private map; goblin checks bounds on every access.
    let bytes = unsafe { memmap2::Mmap::map(&file) }.map_err(unreadable)?;
    let elf = Elf::parse(&bytes).map_err(|e| LoaderProblem::Corrupt(e.to_string()))?;
    super::check_headers_fit(&elf, bytes.len()).map_err(LoaderProblem::Corrupt)?;
    if elf.program_headers.iter().any(|ph| ph.p_type == goblin::elf::program_header::PT_INTERP) {
        return Err(LoaderProblem::HasInterpreter);
    }
    Ok(elf.soname.map(str::to_string))
}

/// Reads a candidate: `Ok(None)` when it is not a shared object of the program's class, machine
/// and OS ABI (ld.so skips other classes and machines and searches on; a text file, a core dump or
/// an executable it refuses, and so is it skipped here: it is never packed), `Err` when it cannot be
/// read or parsed. A file that is not ELF is read no further than its first 64 bytes.
fn read_object(path: &Path, identity: Identity) -> Result<Option<ObjectInfo>, String> {
    let (file, head) = read_head(path).map_err(|e| e.to_string())?;
    let Ok(head) = head else { return Ok(None) };
    if head.identity() != identity || !matches!(head.osabi, 0 | 3) || head.kind != goblin::elf::header::ET_DYN {
        return Ok(None);
    }
    // SAFETY: read-only private map; goblin checks bounds on every access.
    let bytes = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| e.to_string())?;
    let elf = Elf::parse(&bytes).map_err(|e| e.to_string())?;
    if elf.header.e_machine != identity.machine {
        return Ok(None);
    }
    let nodeflib = elf.dynamic.as_ref().is_some_and(|d| d.dyns.iter().any(|e| e.d_tag == DT_FLAGS_1 && e.d_val & DF_1_NODEFLIB != 0));
    Ok(Some(ObjectInfo {
        soname: elf.soname.map(str::to_string),
        needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
        rpath: super::split_paths(&elf.rpaths),
        runpath: super::split_paths(&elf.runpaths),
        nodeflib,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn musl_reserved_names() {
        assert!(is_musl_libc("libc.so"));
        assert!(is_musl_libc("libpthread.so.0"));
        assert!(is_musl_libc("libm.so.6"));
        assert!(!is_musl_libc("libmagic.so.1"));
        assert!(!is_musl_libc("libz.so.1"));
    }

    #[test]
    fn wildcards_as_glob() {
        assert!(wildcard("*.conf", "libc.conf"));
        assert!(!wildcard("*.conf", ".hidden.conf"));
        assert!(wildcard("x86_64-*.c?nf", "x86_64-linux-gnu.conf"));
        assert!(!wildcard("*.conf", "libc.conf.bak"));
    }

    #[test]
    fn host_curl_resolves_like_ld_so() {
        let info = super::super::inspect(Path::new("/usr/bin/curl")).expect("curl is installed by the test script");
        let resolution = resolve(&info, "/usr/bin/curl", &ResolveOptions::default()).unwrap();
        assert!(resolution.missing.is_empty(), "{:?}", resolution.missing);
        let first = &resolution.libraries[0];
        assert_eq!(first.name, "libcurl.so.4");
        assert_eq!(first.image_path, "/lib/x86_64-linux-gnu/libcurl.so.4");
        assert_eq!(first.rule, Rule::LdSoConf);
        assert!(resolution.libraries.iter().any(|l| l.name == "libc.so.6"));
        assert!(!resolution.libraries.iter().any(|l| l.name == "ld-linux-x86-64.so.2"), "the interpreter is loaded already");
    }
}
