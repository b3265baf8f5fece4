//! What a program needs at run time, decided from its ELF: for a dynamic program, the loader and
//! libraries (resolved as ld.so resolves them) and a check that the bundled libc provides the
//! GLIBC_x.y versions it requires. Fails before anything is written when something is missing.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::elf::resolve::{self, Resolution, ResolveOptions};
use crate::elf::root::Root;
use crate::elf::{versions, ElfInfo, Linkage};

/// `--sysroot`, `--library-path`, `--allow-missing`, `--static-only`.
#[derive(Clone, Debug, Default)]
pub struct NeedsOptions {
    pub sysroot: Option<PathBuf>,
    pub library_path: Vec<String>,
    pub allow_missing: bool,
    pub static_only: bool,
}

impl NeedsOptions {
    pub fn resolve_options(&self) -> ResolveOptions {
        ResolveOptions { root: Root::new(self.sysroot.clone()), library_path: self.library_path.clone() }
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
            NeedsError::Resolve(_) => Some("point --sysroot at a root that has the program's interpreter".into()),
        }
    }
}

/// The libraries a program needs (`None` for a static program).
pub fn libraries(info: &ElfInfo, image_path: &str, options: &NeedsOptions) -> Result<Option<Resolution>, NeedsError> {
    if info.linkage != Linkage::Dynamic {
        return Ok(None);
    }
    if options.static_only {
        return Err(NeedsError::StaticOnly { file: info.file.clone(), interpreter: info.interpreter.clone().unwrap_or_default() });
    }
    let resolution = resolve::resolve(info, image_path, &options.resolve_options())?;
    if !resolution.missing.is_empty() && !options.allow_missing {
        let missing = resolution.missing.iter().map(|m| format!("{} (needed by {})", m.name, m.needed_by)).collect();
        return Err(NeedsError::Missing { file: info.file.clone(), missing, sysroot: options.sysroot.clone() });
    }
    check_glibc(info, &resolution)?;
    Ok(Some(resolution))
}

/// The program's GLIBC_x.y requirements against the libc.so.6 that goes into the image.
fn check_glibc(info: &ElfInfo, resolution: &Resolution) -> Result<(), NeedsError> {
    let Some(libc) = resolution.libraries.iter().find(|l| l.name == "libc.so.6") else { return Ok(()) };
    let (Ok(needed), Ok(defined)) = (versions::required_from(&info.file, "libc.so.6"), versions::defined(&libc.host_path)) else {
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
        libc: libc.host_path.clone(),
        newest,
    })
}
