//! ELF inspection: what a compiled program is and what it needs at run time.
//!
//! Owns reading a binary's headers (with goblin) and turning them into facts: platform, linkage,
//! interpreter, DT_NEEDED, RPATH/RUNPATH, stripped or not. It reads the file through a memory map and
//! touches only the headers, so a huge binary costs no memory. It must not decide what goes into an
//! image (that is `rootfs`), nor know about layers or registries.

mod arm;
pub mod clues;
mod platform;
pub mod resolve;
pub(crate) mod root;
pub mod strip;
pub(crate) mod versions;

use std::fs::File;
use std::path::{Path, PathBuf};

use goblin::elf::dynamic::{DF_1_PIE, DT_FLAGS_1};
use goblin::elf::header::{ET_DYN, ET_EXEC};
use goblin::elf::program_header::PT_INTERP;
use goblin::elf::Elf;
use serde::Serialize;

use crate::platform::Platform;

/// How a program is linked, which decides whether it needs anything besides itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Linkage {
    /// `ET_EXEC` without an interpreter: runs on its own.
    Static,
    /// `ET_DYN` flagged PIE without an interpreter: runs on its own, relocates itself.
    StaticPie,
    /// Has a `PT_INTERP`: the dynamic loader and its libraries must be in the image.
    Dynamic,
}

impl Linkage {
    pub fn as_str(self) -> &'static str {
        match self {
            Linkage::Static => "static",
            Linkage::StaticPie => "static-pie",
            Linkage::Dynamic => "dynamic",
        }
    }
}

/// The facts about one ELF program, as `inspect` prints them and `pack` uses them.
#[derive(Clone, Debug, Serialize)]
pub struct ElfInfo {
    pub file: PathBuf,
    pub platform: Platform,
    pub class: u8,
    pub little_endian: bool,
    pub machine: u16,
    pub linkage: Linkage,
    pub interpreter: Option<String>,
    pub needed: Vec<String>,
    pub rpath: Vec<String>,
    pub runpath: Vec<String>,
    pub size: u64,
    pub stripped: bool,
}

impl ElfInfo {
    /// The file name, used as the default name of the binary inside the image.
    pub fn file_name(&self) -> String {
        file_name(&self.file)
    }
}

/// The name a program at `path` goes by in the image: its file name, else `app`.
pub(crate) fn file_name(path: &Path) -> String {
    path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_else(|| "app".to_string())
}

/// Why a file cannot be packed as a program. Each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("{}: cannot read", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: is a directory, not a program", path.display())]
    Directory { path: PathBuf },
    #[error("{}: not a regular file", path.display())]
    NotRegular { path: PathBuf },
    #[error("{}: empty file, not an ELF program", path.display())]
    Empty { path: PathBuf },
    #[error("{}: not an ELF file ({found})", path.display())]
    NotElf { path: PathBuf, found: String },
    #[error("{}: corrupt or truncated ELF: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("{}: not a Linux program: ELF for {abi}", path.display())]
    NotLinux { path: PathBuf, abi: String },
    #[error("{}: unsupported CPU architecture (ELF machine {machine}, {class}-bit)", path.display())]
    UnsupportedMachine { path: PathBuf, machine: u16, class: u8 },
    #[error("{}: is a shared library, not a program", path.display())]
    SharedLibrary { path: PathBuf },
    #[error("{}: not an executable program (ELF type {kind})", path.display())]
    NotExecutable { path: PathBuf, kind: String },
}

impl ElfError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ElfError::SharedLibrary { .. } => Some("pack the program that loads this library; its libraries come along with it"),
            ElfError::NotElf { .. } | ElfError::Empty { .. } => {
                Some("give the path of a compiled Linux executable, for example target/release/app")
            }
            ElfError::NotLinux { .. } => Some("build the program for a Linux target"),
            _ => None,
        }
        .map(String::from)
    }
}

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const EI_OSABI: usize = 7;

/// Reads `path` and says what program it is, or why it is not one scratchpack can pack.
pub(crate) fn inspect(path: &Path) -> Result<ElfInfo, ElfError> {
    let unreadable = |source| ElfError::Unreadable { path: path.to_path_buf(), source };
    let metadata = std::fs::metadata(path).map_err(unreadable)?;
    if metadata.is_dir() {
        return Err(ElfError::Directory { path: path.to_path_buf() });
    }
    if !metadata.is_file() {
        return Err(ElfError::NotRegular { path: path.to_path_buf() });
    }
    if metadata.len() == 0 {
        return Err(ElfError::Empty { path: path.to_path_buf() });
    }
    let file = File::open(path).map_err(unreadable)?;
    // SAFETY: the map is read-only and private; a concurrent writer could change what we read,
    // which goblin treats as any other malformed input (bounds are checked on every access).
    let bytes = unsafe { memmap2::Mmap::map(&file) }.map_err(unreadable)?;
    inspect_bytes(path, &bytes, metadata.len())
}

/// The ELF at `bytes`, as goblin's `Elf::parse` reads it but for what scratchpack never looks at:
/// the symbol table (`.symtab`) and the relocations, which are left empty. `Elf::parse` reads every
/// dynamic relocation only to learn how many dynamic symbols there are; a static-pie program has tens
/// of thousands (the reference qemu 88,000: 2 MiB read through the map, twice a pack). Here that
/// count comes from the `.dynsym` section header; a program with dynamic symbols but no section
/// headers is parsed by goblin in full.
pub(crate) fn parse(bytes: &[u8]) -> goblin::error::Result<Elf<'_>> {
    use goblin::container::{Container, Ctx, Endian};
    use goblin::elf::{dynamic, section_header, Dynamic, ProgramHeader, SectionHeader, Symtab};
    use goblin::strtab::Strtab;

    let header = Elf::parse_header(bytes)?;
    let mut elf = Elf::lazy_parse(header)?;
    let container = if elf.is_64 { Container::Big } else { Container::Little };
    let ctx = Ctx::new(container, if elf.little_endian { Endian::Little } else { Endian::Big });
    let strtab_at = |sections: &[SectionHeader], index: usize| -> goblin::error::Result<Strtab<'_>> {
        match sections.get(index) {
            Some(section) => {
                section.check_size(bytes.len())?;
                Strtab::parse(bytes, section.sh_offset as usize, section.sh_size as usize, 0)
            }
            None => Ok(Strtab::default()),
        }
    };

    elf.program_headers = ProgramHeader::parse(bytes, header.e_phoff as usize, usize::from(header.e_phnum), ctx)?;
    elf.section_headers = SectionHeader::parse(bytes, header.e_shoff as usize, usize::from(header.e_shnum), ctx)?;
    let mut names_index = usize::from(header.e_shstrndx);
    if names_index == usize::from(section_header::SHN_XINDEX as u16) {
        names_index = elf.section_headers.first().map_or(usize::MAX, |first| first.sh_link as usize);
    }
    elf.shdr_strtab = strtab_at(&elf.section_headers, names_index)?;

    let Some(dynamic) = Dynamic::parse(bytes, &elf.program_headers, ctx)? else { return Ok(elf) };
    let info = &dynamic.info;
    elf.dynstrtab = Strtab::parse(bytes, info.strtab, info.strsz, 0)?;
    elf.soname = (info.soname != 0).then(|| elf.dynstrtab.get_at(info.soname)).flatten();
    if info.needed_count > 0 {
        elf.libraries = dynamic.get_libraries(&elf.dynstrtab);
    }
    for entry in &dynamic.dyns {
        let paths = match entry.d_tag {
            dynamic::DT_RPATH => &mut elf.rpaths,
            dynamic::DT_RUNPATH => &mut elf.runpaths,
            _ => continue,
        };
        paths.extend(elf.dynstrtab.get_at(entry.d_val as usize));
    }
    elf.is_lib = elf.is_lib && info.flags_1 & dynamic::DF_1_PIE == 0;
    if info.symtab != 0 {
        match elf.section_headers.iter().find(|section| section.sh_type == section_header::SHT_DYNSYM) {
            Some(section) => {
                section.check_size(bytes.len())?;
                let count = section.sh_size.checked_div(section.sh_entsize).unwrap_or(0);
                if count > 0 {
                    elf.dynsyms = Symtab::parse(bytes, section.sh_offset as usize, count as usize, ctx)?;
                }
            }
            None => return Elf::parse(bytes),
        }
    }
    elf.dynamic = Some(dynamic);
    Ok(elf)
}

/// The parsing half of [`inspect`], on bytes already in memory.
pub fn inspect_bytes(path: &Path, bytes: &[u8], size: u64) -> Result<ElfInfo, ElfError> {
    let path_buf = path.to_path_buf();
    if bytes.len() < 4 || &bytes[..4] != ELF_MAGIC {
        return Err(ElfError::NotElf { path: path_buf, found: describe_magic(bytes) });
    }
    if bytes.len() < 16 {
        return Err(ElfError::Corrupt { path: path_buf, reason: "file ends inside the ELF identification".into() });
    }
    let osabi = bytes[EI_OSABI];
    if let Some(abi) = foreign_osabi(osabi) {
        return Err(ElfError::NotLinux { path: path_buf, abi: abi.to_string() });
    }
    let elf = parse(bytes).map_err(|error| ElfError::Corrupt { path: path_buf.clone(), reason: error.to_string() })?;
    check_headers_fit(&elf, bytes.len()).map_err(|reason| ElfError::Corrupt { path: path_buf.clone(), reason })?;
    if let Some(abi) = foreign_note(&elf, bytes) {
        return Err(ElfError::NotLinux { path: path_buf, abi: abi.to_string() });
    }

    let class = if elf.is_64 { 64 } else { 32 };
    let machine = elf.header.e_machine;
    let arm_variant = || arm::cpu_variant(&elf, bytes);
    let platform = platform::from_machine(machine, class, elf.little_endian, arm_variant).ok_or_else(|| ElfError::UnsupportedMachine {
        path: path_buf.clone(),
        machine,
        class,
    })?;

    let interpreter = interpreter(&elf, bytes).map_err(|reason| ElfError::Corrupt { path: path_buf.clone(), reason })?;
    if let Some(interp) = &interpreter {
        if interp.contains("ld-elf.so") {
            return Err(ElfError::NotLinux { path: path_buf, abi: format!("FreeBSD (interpreter {interp})") });
        }
    }
    let has_interp = elf.program_headers.iter().any(|ph| ph.p_type == PT_INTERP);
    let linkage = match elf.header.e_type {
        ET_EXEC if has_interp => Linkage::Dynamic,
        ET_EXEC => Linkage::Static,
        ET_DYN if has_interp => Linkage::Dynamic,
        ET_DYN if is_pie(&elf) => Linkage::StaticPie,
        ET_DYN => return Err(ElfError::SharedLibrary { path: path_buf }),
        other => return Err(ElfError::NotExecutable { path: path_buf, kind: goblin::elf::header::et_to_str(other).to_string() }),
    };

    let stripped = !elf.section_headers.iter().any(|sh| sh.sh_type == goblin::elf::section_header::SHT_SYMTAB);

    Ok(ElfInfo {
        file: path.to_path_buf(),
        platform,
        class,
        little_endian: elf.little_endian,
        machine,
        linkage,
        interpreter,
        needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
        rpath: split_paths(&elf.rpaths),
        runpath: split_paths(&elf.runpaths),
        size,
        stripped,
    })
}

/// The path the kernel opens as the program's interpreter: the first PT_INTERP's bytes up to the
/// first NUL (goblin's `interpreter` is the last PT_INTERP, NULs included). The kernel refuses a
/// program whose PT_INTERP is shorter than 2 bytes, longer than PATH_MAX or not NUL-terminated.
fn interpreter(elf: &Elf, bytes: &[u8]) -> Result<Option<String>, String> {
    const PATH_MAX: u64 = 4096;
    let Some(ph) = elf.program_headers.iter().find(|ph| ph.p_type == PT_INTERP) else { return Ok(None) };
    if !(2..=PATH_MAX).contains(&ph.p_filesz) {
        return Err(format!("the PT_INTERP segment ({} bytes) is not a path", ph.p_filesz));
    }
    let text = usize::try_from(ph.p_offset)
        .ok()
        .and_then(|start| bytes.get(start..start.checked_add(ph.p_filesz as usize)?))
        .ok_or_else(|| format!("the PT_INTERP segment ends past the end of the file ({} bytes)", bytes.len()))?;
    if text.last() != Some(&0) {
        return Err("the PT_INTERP path is not NUL-terminated".into());
    }
    let path = text.split(|&b| b == 0).next().unwrap_or_default();
    std::str::from_utf8(path).map(|p| Some(p.to_string())).map_err(|_| "the PT_INTERP path is not UTF-8".into())
}

fn is_pie(elf: &Elf) -> bool {
    elf.dynamic.as_ref().is_some_and(|dynamic| dynamic.dyns.iter().any(|d| d.d_tag == DT_FLAGS_1 && d.d_val & DF_1_PIE != 0))
}

/// goblin accepts headers that point past the end of the file when their count is zero or the
/// table is lazily read; a program whose program headers do not fit is truncated, whatever goblin says.
fn check_headers_fit(elf: &Elf, len: usize) -> Result<(), String> {
    let header = &elf.header;
    let ph_end = header.e_phoff.saturating_add(u64::from(header.e_phnum) * u64::from(header.e_phentsize));
    if ph_end > len as u64 {
        return Err(format!("program headers end at byte {ph_end}, past the end of the file ({len} bytes)"));
    }
    for ph in &elf.program_headers {
        if ph.p_type == goblin::elf::program_header::PT_LOAD && ph.p_offset.saturating_add(ph.p_filesz) > len as u64 {
            return Err(format!(
                "a loadable segment ends at byte {}, past the end of the file ({len} bytes)",
                ph.p_offset.saturating_add(ph.p_filesz)
            ));
        }
    }
    Ok(())
}

fn split_paths(entries: &[&str]) -> Vec<String> {
    entries.iter().flat_map(|entry| entry.split(':')).filter(|dir| !dir.is_empty()).map(str::to_string).collect()
}

fn foreign_osabi(osabi: u8) -> Option<&'static str> {
    match osabi {
        0 | 3 => None, // System V (the usual Linux value) and GNU/Linux
        1 => Some("HP-UX"),
        2 => Some("NetBSD"),
        6 => Some("Solaris"),
        7 => Some("AIX"),
        8 => Some("IRIX"),
        9 => Some("FreeBSD"),
        12 => Some("OpenBSD"),
        _ => Some("a non-Linux OS ABI"),
    }
}

/// BSDs brand their binaries with a note even when EI_OSABI says System V.
fn foreign_note(elf: &Elf, bytes: &[u8]) -> Option<&'static str> {
    let notes = elf.iter_note_headers(bytes)?;
    for note in notes.flatten() {
        match note.name {
            "FreeBSD" => return Some("FreeBSD"),
            "NetBSD" => return Some("NetBSD"),
            "OpenBSD" => return Some("OpenBSD"),
            _ => {}
        }
    }
    None
}

fn describe_magic(bytes: &[u8]) -> String {
    if bytes.starts_with(b"#!") {
        let line: String = bytes[2..].iter().take(60).take_while(|&&b| b != b'\n').map(|&b| b as char).collect();
        return format!("a script for {}", line.trim());
    }
    if bytes.starts_with(b"MZ") {
        return "a Windows PE file".to_string();
    }
    if bytes.len() >= 4 && matches!(&bytes[..4], [0xcf, 0xfa, 0xed, 0xfe] | [0xca, 0xfe, 0xba, 0xbe]) {
        return "a Mach-O file".to_string();
    }
    let head: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("starts with bytes {}", head.join(" "))
}

#[cfg(test)]
mod tests;
