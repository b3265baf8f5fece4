//! What a program needs at run time, decided from its ELF: for a dynamic program, the loader and
//! libraries (resolved as ld.so resolves them) and a check that the bundled libc provides the
//! GLIBC_x.y versions it requires; for every program, the clues (NSS, time zones, TLS) and so
//! whether zoneinfo goes in, and from where. Fails before anything is written when something is
//! missing: a library, or the time zones of a program that reads them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::elf::clues::{self, Clue, ClueKind};
use crate::elf::resolve::{self, Resolution, ResolveOptions};
use crate::elf::root::Root;
use crate::elf::{versions, ElfInfo, Linkage};

/// `--tzdata`: whether `/usr/share/zoneinfo` goes into the image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tzdata {
    /// When the program looks like it reads time zones.
    #[default]
    Auto,
    Yes,
    No,
}

spelled_enum!(Tzdata { Auto => "auto", Yes => "yes", No => "no" });

/// `--tzdata-source`: where the zones come from when they go in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TzdataSource {
    /// The IANA database scratchpack carries (`tzdata/`): the same layer on every machine.
    #[default]
    Builtin,
    /// `/usr/share/zoneinfo` of this machine, or of the `--sysroot`.
    Host,
    /// A zoneinfo folder of this machine.
    Dir(PathBuf),
}

impl std::str::FromStr for TzdataSource {
    type Err = std::convert::Infallible;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(match value {
            "builtin" => TzdataSource::Builtin,
            "host" => TzdataSource::Host,
            path => TzdataSource::Dir(PathBuf::from(path)),
        })
    }
}

impl std::fmt::Display for TzdataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TzdataSource::Builtin => f.write_str("builtin"),
            TzdataSource::Host => f.write_str("host"),
            TzdataSource::Dir(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The zoneinfo that goes into an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Zoneinfo {
    /// The built-in zones.
    Builtin,
    /// A folder of this machine (under the sysroot, if any), copied whole.
    Folder(PathBuf),
}

pub const ZONEINFO: &str = "/usr/share/zoneinfo";

/// Everything decided about one program.
#[derive(Clone, Debug, Default)]
pub struct Needs {
    pub resolution: Option<Resolution>,
    /// What the program and its libraries will look for (NSS, time zones, TLS); `inspect`'s hints.
    pub(crate) clues: Vec<Clue>,
    /// The zoneinfo to bundle, if any.
    pub(crate) zoneinfo: Option<Zoneinfo>,
}

/// `--sysroot`, `--library-path`, `--allow-missing`, `--static-only`.
#[derive(Clone, Debug, Default)]
pub struct NeedsOptions {
    pub sysroot: Option<PathBuf>,
    pub library_path: Vec<String>,
    pub allow_missing: bool,
    pub static_only: bool,
    pub tzdata: Tzdata,
    pub tzdata_source: TzdataSource,
}

impl NeedsOptions {
    pub fn resolve_options(&self) -> ResolveOptions {
        ResolveOptions { root: Root::new(self.sysroot.clone()), library_path: self.library_path.clone(), extra_needed: Vec::new() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NeedsError {
    #[error("{}: is dynamically linked (interpreter {interpreter}), and --static-only refuses dynamic programs", file.display())]
    StaticOnly { file: PathBuf, interpreter: String },
    #[error("{}: {} not found: {}", file.display(), if missing.len() == 1 { "a library was" } else { "libraries were" }, missing.join(", "))]
    Missing { file: PathBuf, missing: Vec<String>, sysroot: Option<PathBuf> },
    #[error("{}: needs {} from libc.so.6, but the bundled {} provides only up to {newest}", file.display(), needed.join(", "), libc.display())]
    GlibcTooOld { file: PathBuf, needed: Vec<String>, libc: PathBuf, newest: String },
    #[error(transparent)]
    Resolve(#[from] resolve::ResolveError),
    #[error("{}: needs time zones ({}), but --tzdata-source {chosen} has none: {} {}", file.display(), evidence.join(", "), path.display(), if *missing { "does not exist" } else { "holds no zone files" })]
    NoZoneinfo { file: PathBuf, evidence: Vec<String>, chosen: TzdataSource, path: PathBuf, missing: bool },
}

impl NeedsError {
    pub fn hint(&self) -> Option<String> {
        match self {
            NeedsError::StaticOnly { .. } => {
                Some("build a static binary, for example `cargo build --target x86_64-unknown-linux-musl`, or drop --static-only".into())
            }
            NeedsError::Missing { sysroot, .. } => Some(match sysroot {
                Some(_) => "install the libraries in the sysroot, add their folders with --library-path, or pack anyway with --allow-missing".into(),
                None => "install them, add their folders with --library-path (or --sysroot for another root), or pack anyway with --allow-missing".into(),
            }),
            NeedsError::GlibcTooOld { .. } => Some("build against an older glibc, or resolve from a newer sysroot with --sysroot".into()),
            NeedsError::Resolve(error) => error.hint(),
            NeedsError::NoZoneinfo { chosen, .. } => Some(format!(
                "use --tzdata-source builtin (the IANA zones scratchpack carries), {}, or --tzdata no if the program never reads time zones",
                match chosen {
                    TzdataSource::Host => "install tzdata (or into the sysroot)",
                    _ => "point --tzdata-source at a folder of TZif files",
                }
            )),
        }
    }
}

/// Everything `info` needs, placed at `image_path` in the image.
pub fn decide(info: &ElfInfo, image_path: &str, options: &NeedsOptions) -> Result<Needs, NeedsError> {
    let resolution = libraries(info, image_path, options)?;
    let mut objects = vec![(String::new(), clues::detect(&info.file, &info.needed).unwrap_or_default())];
    if let Some(resolution) = &resolution {
        for library in resolution.libraries.iter().filter(|l| !is_libc(&l.name)) {
            // The libraries' own needs count too: libcurl resolves names, libssl verifies
            // certificates. libc itself is left out: it holds the code for all of these, used or not.
            let needed: Vec<String> = resolution.libraries.iter().filter(|l| l.needed_by == library.name).map(|l| l.name.clone()).collect();
            objects.push((library.name.clone(), clues::detect(&library.file, &needed).unwrap_or_default()));
        }
    }
    let clues = clues::merge(objects);
    let wants_zones = match options.tzdata {
        Tzdata::Yes => true,
        Tzdata::No => false,
        Tzdata::Auto => clues.iter().any(|c| c.kind == ClueKind::TimeZones),
    };
    let zoneinfo = match wants_zones {
        false => None,
        true => Some(zoneinfo(info, &clues, options)?),
    };
    Ok(Needs { resolution, clues, zoneinfo })
}

/// Where the zones of a program that needs them come from: a host folder must hold at least one
/// file, or the image would be packed without the zones the program reads.
fn zoneinfo(info: &ElfInfo, clues: &[Clue], options: &NeedsOptions) -> Result<Zoneinfo, NeedsError> {
    let (path, found) = match &options.tzdata_source {
        TzdataSource::Builtin => return Ok(Zoneinfo::Builtin),
        TzdataSource::Host => {
            let root = options.resolve_options().root;
            // Read where the image will have it: a sysroot's link to an absolute path is followed
            // inside the sysroot, never to a folder of this machine (which would be packed whole).
            (root.host(ZONEINFO), root.real_host(ZONEINFO).filter(|dir| dir.is_dir()))
        }
        TzdataSource::Dir(dir) => (dir.clone(), std::fs::canonicalize(dir).ok().filter(|dir| dir.is_dir())),
    };
    match found {
        Some(dir) if holds_a_file(&dir) => Ok(Zoneinfo::Folder(dir)),
        found => {
            let mut evidence: Vec<String> =
                clues.iter().filter(|c| c.kind == ClueKind::TimeZones).flat_map(|c| c.evidence.clone()).collect();
            if options.tzdata == Tzdata::Yes {
                evidence.insert(0, "--tzdata yes".into());
            }
            Err(NeedsError::NoZoneinfo {
                file: info.file.clone(),
                evidence,
                chosen: options.tzdata_source.clone(),
                path,
                missing: found.is_none(),
            })
        }
    }
}

/// Whether `dir` or a folder under it holds a regular file (links are not followed).
fn holds_a_file(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.flatten().any(|entry| match entry.file_type() {
        Ok(kind) if kind.is_file() => true,
        Ok(kind) if kind.is_dir() => holds_a_file(&entry.path()),
        _ => false,
    })
}

/// The libraries a program needs (`None` for a static program).
pub(crate) fn libraries(info: &ElfInfo, image_path: &str, options: &NeedsOptions) -> Result<Option<Resolution>, NeedsError> {
    if info.linkage != Linkage::Dynamic {
        return Ok(None);
    }
    if options.static_only {
        return Err(NeedsError::StaticOnly { file: info.file.clone(), interpreter: info.interpreter.clone().unwrap_or_default() });
    }
    let mut resolve_options = options.resolve_options();
    let mut resolution = resolve::resolve(info, image_path, &resolve_options)?;
    if libc_before_2_34(&resolution) && uses_nss(info, &resolution) {
        // Before glibc 2.34, `files` and `dns` were modules that glibc dlopens: bundle them, so the
        // nsswitch.conf we write needs nothing that is missing.
        resolve_options.extra_needed = vec!["libnss_files.so.2".into(), "libnss_dns.so.2".into(), "libresolv.so.2".into()];
        resolution = resolve::resolve(info, image_path, &resolve_options)?;
    }
    if !resolution.missing.is_empty() && !options.allow_missing {
        let missing = resolution.missing.iter().map(|m| format!("{} (needed by {})", m.name, m.needed_by)).collect();
        return Err(NeedsError::Missing { file: info.file.clone(), missing, sysroot: options.sysroot.clone() });
    }
    check_glibc(info, &resolution)?;
    Ok(Some(resolution))
}

fn is_libc(name: &str) -> bool {
    name == "libc.so.6" || name.starts_with("libc.musl-") || name.starts_with("ld-linux") || name.starts_with("ld-musl-")
}

fn libc_before_2_34(resolution: &Resolution) -> bool {
    let Some(libc) = resolution.libraries.iter().find(|l| l.name == "libc.so.6") else { return false };
    let newest = versions::defined(&libc.file).unwrap_or_default().iter().filter_map(|v| versions::glibc_version(v)).max();
    newest.is_some_and(|v| v < (2, 34, 0))
}

fn uses_nss(info: &ElfInfo, resolution: &Resolution) -> bool {
    let objects = std::iter::once((info.file.clone(), info.needed.clone()))
        .chain(resolution.libraries.iter().filter(|l| l.name != "libc.so.6").map(|l| (l.file.clone(), vec![])));
    objects.into_iter().any(|(path, needed)| clues::detect(&path, &needed).unwrap_or_default().iter().any(|c| c.kind == ClueKind::Nss))
}

/// The program's GLIBC_x.y requirements against the libc.so.6 that goes into the image.
fn check_glibc(info: &ElfInfo, resolution: &Resolution) -> Result<(), NeedsError> {
    let Some(libc) = resolution.libraries.iter().find(|l| l.name == "libc.so.6") else { return Ok(()) };
    let (Ok(needed), Ok(defined)) = (versions::required_from(&info.file, "libc.so.6"), versions::defined(&libc.file)) else {
        return Ok(());
    };
    let lacking: BTreeSet<&String> = needed.iter().filter(|v| !defined.contains(*v)).collect();
    if lacking.is_empty() {
        return Ok(());
    }
    let newest = defined
        .iter()
        .filter_map(|v| versions::glibc_version(v).map(|n| (n, v)))
        .max()
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "nothing".into());
    Err(NeedsError::GlibcTooOld {
        file: info.file.clone(),
        needed: lacking.into_iter().cloned().collect(),
        libc: libc.file.clone(),
        newest,
    })
}
