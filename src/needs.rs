//! What a program needs at run time, decided from its ELF: for a dynamic program, the loader and
//! libraries (resolved as ld.so resolves them) and a check that the bundled libc provides the
//! GLIBC_x.y versions it requires; for every program, the clues (NSS, time zones, TLS) and so
//! whether zoneinfo goes in. Fails before anything is written when something is missing.

use std::collections::BTreeSet;
use std::path::PathBuf;

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

pub const ZONEINFO: &str = "/usr/share/zoneinfo";

/// Everything decided about one program.
#[derive(Clone, Debug, Default)]
pub struct Needs {
    pub resolution: Option<Resolution>,
    /// What the program and its libraries will look for (NSS, time zones, TLS); `inspect`'s hints.
    pub(crate) clues: Vec<Clue>,
    /// The zoneinfo folder to bundle, on this machine (under the sysroot, if any).
    pub(crate) zoneinfo: Option<PathBuf>,
}

/// `--sysroot`, `--library-path`, `--allow-missing`, `--static-only`.
#[derive(Clone, Debug, Default)]
pub struct NeedsOptions {
    pub sysroot: Option<PathBuf>,
    pub library_path: Vec<String>,
    pub allow_missing: bool,
    pub static_only: bool,
    pub tzdata: Tzdata,
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
    #[error("--tzdata yes: there is no {} to bundle", path.display())]
    NoZoneinfo { path: PathBuf },
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
            NeedsError::NoZoneinfo { .. } => Some("install tzdata (or into the sysroot), or use --tzdata no".into()),
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
    let root = options.resolve_options().root;
    // Read where the image will have it: a sysroot's link to an absolute path is followed inside
    // the sysroot, never to a folder of this machine (which would be packed whole).
    let zoneinfo_dir = root.real_host(ZONEINFO).filter(|dir| dir.is_dir());
    let wants_zones = match options.tzdata {
        Tzdata::Yes => true,
        Tzdata::No => false,
        Tzdata::Auto => clues.iter().any(|c| c.kind == ClueKind::TimeZones),
    };
    let zoneinfo = match (wants_zones, zoneinfo_dir) {
        (false, _) => None,
        (true, Some(dir)) => Some(dir),
        (true, None) if options.tzdata == Tzdata::Yes => return Err(NeedsError::NoZoneinfo { path: root.host(ZONEINFO) }),
        (true, None) => None,
    };
    Ok(Needs { resolution, clues, zoneinfo })
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
