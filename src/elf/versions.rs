//! Symbol versions (`.gnu.version_r` and `.gnu.version_d`): which GLIBC_x.y a program needs, and
//! which ones a libc provides.

use std::collections::BTreeSet;
use std::path::Path;

use goblin::elf::Elf;

/// The versions `path` requires from the library named `from` (e.g. `libc.so.6`).
pub(crate) fn required_from(path: &Path, from: &str) -> std::io::Result<BTreeSet<String>> {
    with_elf(path, |elf| {
        let mut versions = BTreeSet::new();
        if let Some(verneed) = &elf.verneed {
            for need in verneed.iter() {
                if elf.dynstrtab.get_at(need.vn_file) != Some(from) {
                    continue;
                }
                for aux in need.iter() {
                    if let Some(name) = elf.dynstrtab.get_at(aux.vna_name) {
                        versions.insert(name.to_string());
                    }
                }
            }
        }
        versions
    })
}

/// The versions `path` defines.
pub(crate) fn defined(path: &Path) -> std::io::Result<BTreeSet<String>> {
    with_elf(path, |elf| {
        let mut versions = BTreeSet::new();
        if let Some(verdef) = &elf.verdef {
            for def in verdef.iter() {
                for aux in def.iter() {
                    if let Some(name) = elf.dynstrtab.get_at(aux.vda_name) {
                        versions.insert(name.to_string());
                    }
                }
            }
        }
        versions
    })
}

/// Reads `path`'s headers, dynamic string table and version sections through a map, and nothing
/// else: not the symbol table nor the relocations, which grow with the program.
fn with_elf<T>(path: &Path, read: impl FnOnce(&Elf) -> T) -> std::io::Result<T> {
    use goblin::container::{Container, Ctx, Endian};
    use goblin::elf::symver::{VerdefSection, VerneedSection};
    let invalid = |e: goblin::error::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string());
    let file = std::fs::File::open(path)?;
    // SAFETY: read-only private map; goblin checks bounds on every access.
    let bytes = unsafe { memmap2::Mmap::map(&file) }?;
    let mut elf = super::parse(&bytes).map_err(invalid)?;
    let container = if elf.is_64 { Container::Big } else { Container::Little };
    let ctx = Ctx::new(container, if elf.little_endian { Endian::Little } else { Endian::Big });
    elf.verneed = VerneedSection::parse(&bytes, &elf.section_headers, ctx).map_err(invalid)?;
    elf.verdef = VerdefSection::parse(&bytes, &elf.section_headers, ctx).map_err(invalid)?;
    Ok(read(&elf))
}

/// `GLIBC_2.34` → (2, 34), for ordering versions numerically.
pub(crate) fn glibc_version(name: &str) -> Option<(u32, u32, u32)> {
    let mut parts = name.strip_prefix("GLIBC_")?.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next().flatten().unwrap_or(0), parts.next().flatten().unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_programs_need_versions_libc_defines() {
        let needed = required_from(Path::new("/bin/true"), "libc.so.6").unwrap();
        assert!(needed.iter().any(|v| v.starts_with("GLIBC_2.")), "{needed:?}");
        let defined = defined(Path::new("/lib/x86_64-linux-gnu/libc.so.6")).unwrap();
        assert!(needed.is_subset(&defined));
        assert_eq!(glibc_version("GLIBC_2.34"), Some((2, 34, 0)));
        assert_eq!(glibc_version("GLIBC_2.2.5"), Some((2, 2, 5)));
        assert!(glibc_version("GLIBC_PRIVATE").is_none());
    }
}
