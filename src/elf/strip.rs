//! `--strip`: a program without its debug sections (`.debug_*`, `.zdebug_*`) and static symbol
//! table (`.symtab`, `.strtab`, `.symtab_shndx`), rewritten with `object`'s ELF builder.
//!
//! Only sections that no segment loads are removed: everything `PT_LOAD`, `PT_DYNAMIC` or
//! `PT_INTERP` covers stays byte for byte, as do the notes (build-id, ABI tag), `.dep-v0`
//! (cargo-auditable), `.go.buildinfo` and any other section not named above. The rewritten file is
//! checked against the original before it is used: same program headers, same loaded bytes. The
//! output depends on the input bytes alone, so stripping is reproducible.
//!
//! Also measures what stripping would remove, for the hint printed when `--strip` is not given.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use object::build::elf::{Builder, SectionData};
use object::elf::{PT_LOAD, SHF_ALLOC, SHT_NOBITS};
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader};
use object::Endianness;

/// The byte of the ELF identification that says 32 or 64 bits.
const EI_CLASS: usize = 4;

/// Why a program cannot be stripped. Each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum StripError {
    #[error("{}: cannot read", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: cannot strip: {reason}", path.display())]
    Unsupported { path: PathBuf, reason: String },
    #[error("{}: cannot write the stripped program", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StripError {
    pub fn hint(&self) -> Option<String> {
        match self {
            StripError::Unsupported { .. } => {
                Some("pack it without --strip, or strip it when it is built (for cargo: [profile.release] strip = true)".into())
            }
            _ => None,
        }
    }
}

/// Whether a section that no segment loads is one `--strip` removes.
fn removed(name: &[u8], data: &SectionData<'_>) -> bool {
    name.starts_with(b".debug")
        || name.starts_with(b".zdebug")
        || matches!(data, SectionData::Symbol | SectionData::SymbolSectionIndex | SectionData::String)
}

/// Writes `input` without its debug sections and static symbol table to `output` (a new file).
/// Returns the size of the stripped file.
pub(crate) fn strip(input: &Path, output: &Path) -> Result<u64, StripError> {
    let unreadable = |source| StripError::Unreadable { path: input.to_path_buf(), source };
    let unsupported = |reason: String| StripError::Unsupported { path: input.to_path_buf(), reason };
    let file = File::open(input).map_err(unreadable)?;
    // SAFETY: read-only private map; a concurrent writer could change what is read, which the
    // builder treats as malformed input and the check after writing catches.
    let bytes = unsafe { memmap2::Mmap::map(&file) }.map_err(unreadable)?;
    let mut builder = Builder::read(&*bytes).map_err(|e| unsupported(e.to_string()))?;
    let mut symbol_table = None;
    for section in builder.sections.iter_mut() {
        if !section.is_alloc() && removed(&section.name, &section.data) {
            if matches!(section.data, SectionData::Symbol) {
                symbol_table = Some(section.id());
            }
            section.delete = true;
        }
    }
    if let Some(symbol_table) = symbol_table {
        for symbol in builder.symbols.iter_mut() {
            symbol.delete = true;
        }
        for section in builder.sections.iter_mut() {
            if !section.is_alloc() && matches!(section.data, SectionData::Relocation(_)) {
                // Relocations that no segment loads (`--emit-relocs`, relocated debug sections)
                // are for link-time tools only.
                section.delete = true;
            } else if section.is_alloc() && section.sh_link_section == Some(symbol_table) {
                // A static program's loaded relocations (`.rela.plt`: IRELATIVE) link to the
                // static symbol table but use no symbol (the builder refuses them otherwise): they
                // now link to none, as `strip` does.
                section.sh_link_section = None;
            }
        }
    }
    keep_loaded_tables_as_they_are(&mut builder, &bytes);
    pad_to_segments_end(&mut builder);
    let written = File::create_new(output).map_err(|source| StripError::Write { path: output.to_path_buf(), source })?;
    let mut buffer = object::write::StreamingBuffer::new(BufWriter::with_capacity(1 << 20, written));
    builder.write(&mut buffer).map_err(|e| unsupported(e.to_string()))?;
    let write_error = |source| StripError::Write { path: output.to_path_buf(), source };
    buffer.result().map_err(write_error)?;
    let mut writer = buffer.into_inner();
    writer.flush().map_err(write_error)?;
    let written = writer.into_inner().map_err(|e| write_error(e.into_error()))?;
    written.sync_all().map_err(write_error)?;
    drop(written);
    check_loaded_bytes(input, &bytes, output)?;
    std::fs::metadata(output).map(|m| m.len()).map_err(write_error)
}

/// Makes the writer copy the loaded tables it would otherwise rebuild (`.dynsym`, `.dynstr`, the
/// hash tables, symbol versions, `.dynamic`, dynamic relocations) byte for byte from `bytes`, as
/// `strip` does: a rebuilt table may differ (another hash layout), and run time reads them.
fn keep_loaded_tables_as_they_are<'data>(builder: &mut Builder<'data>, bytes: &'data [u8]) {
    let mut rebuilt_any = false;
    for section in builder.sections.iter_mut() {
        let rebuilt = !matches!(section.data, SectionData::Data(_) | SectionData::Note(_) | SectionData::UninitializedData(_));
        if !section.delete && section.is_alloc() && section.sh_type != SHT_NOBITS && rebuilt {
            let start = section.sh_offset as usize;
            if let Some(raw) = start.checked_add(section.sh_size as usize).and_then(|end| bytes.get(start..end)) {
                section.data = SectionData::Data(raw.into());
                rebuilt_any = true;
            }
        }
    }
    if rebuilt_any {
        // Their contents are copied: the writer must not rebuild them from its own tables.
        for symbol in builder.dynamic_symbols.iter_mut() {
            symbol.delete = true;
        }
        for version in builder.versions.iter_mut() {
            version.delete = true;
        }
        for file in builder.version_files.iter_mut() {
            file.delete = true;
        }
        builder.version_base = None;
    }
}

/// Makes the writer keep the loaded file range whole. The builder writes the loaded sections at
/// their offsets and what is not loaded (`.shstrtab`) right after the last of them; when a segment
/// runs past that section's end (Go: padding between `.data` and `.bss`), the new `.shstrtab` would
/// land in loaded bytes. An empty loaded section at the segments' end moves it past them.
fn pad_to_segments_end(builder: &mut Builder<'_>) {
    let sections_end = builder
        .sections
        .iter()
        .filter(|section| !section.delete && section.is_alloc() && section.sh_type != SHT_NOBITS)
        .map(|section| section.sh_offset + section.sh_size)
        .max()
        .unwrap_or(0);
    let segments_end = builder
        .segments
        .iter()
        .filter(|segment| segment.p_filesz > 0)
        .map(|segment| (segment.p_offset + segment.p_filesz, segment.p_vaddr + segment.p_filesz))
        .max();
    let Some((end, address)) = segments_end.filter(|(end, _)| *end > sections_end) else { return };
    let pad = builder.sections.add();
    pad.name = b"".to_vec().into();
    pad.sh_type = object::elf::SHT_PROGBITS;
    pad.sh_flags = u64::from(SHF_ALLOC);
    pad.sh_addr = address;
    pad.sh_offset = end;
    pad.sh_size = 0;
    pad.sh_addralign = 1;
    pad.data = SectionData::Data(Default::default());
}

/// What the check after writing compares, from an ELF's headers.
struct Segments {
    /// The program header table's bytes.
    table: Vec<u8>,
    /// The file ranges (start, end) of the segments whose bytes run time reads: `PT_LOAD`,
    /// `PT_DYNAMIC`, `PT_INTERP`.
    loaded: Vec<(u64, u64)>,
    /// The file ranges that nothing reads at run time even when a segment covers them: the file
    /// header (checked apart), the section header table and the sections not loaded (Go's linker
    /// puts the section headers and `.shstrtab` inside its first segments). `strip` rewrites them.
    unread: Vec<(u64, u64)>,
}

/// The segments of the ELF at `bytes`; with `sections`, also what is unread (else left empty: the
/// section headers may lie beyond `bytes`).
fn segments(bytes: &[u8], sections: bool) -> Result<Segments, String> {
    fn of<Elf: FileHeader<Endian = Endianness>>(bytes: &[u8], sections: bool) -> Result<Segments, String> {
        let header = Elf::parse(bytes).map_err(|e| e.to_string())?;
        let endian = header.endian().map_err(|e| e.to_string())?;
        let headers = header.program_headers(endian, bytes).map_err(|e| e.to_string())?;
        let start = header.e_phoff(endian).into() as usize;
        let length = std::mem::size_of_val(headers);
        let table = bytes.get(start..start.saturating_add(length)).ok_or("program headers out of the file")?.to_vec();
        let read_at_run_time = [PT_LOAD, object::elf::PT_DYNAMIC, object::elf::PT_INTERP];
        let loaded = headers
            .iter()
            .filter(|ph| read_at_run_time.contains(&ph.p_type(endian)))
            .map(|ph| (ph.p_offset(endian).into(), ph.p_offset(endian).into().saturating_add(ph.p_filesz(endian).into())))
            .collect();
        let mut unread = vec![(0, u64::from(header.e_ehsize(endian)))];
        if !sections {
            return Ok(Segments { table, loaded, unread });
        }
        let section_table: u64 = header.e_shoff(endian).into();
        if section_table != 0 {
            let count = header.shnum(endian, bytes).map_err(|e| e.to_string())? as u64;
            unread.push((section_table, section_table.saturating_add(count * u64::from(header.e_shentsize(endian)))));
        }
        for section in header.sections(endian, bytes).map_err(|e| e.to_string())?.iter() {
            let flags: u64 = section.sh_flags(endian).into();
            if flags & u64::from(SHF_ALLOC) == 0 && section.sh_type(endian) != SHT_NOBITS {
                let offset: u64 = section.sh_offset(endian).into();
                unread.push((offset, offset.saturating_add(section.sh_size(endian).into())));
            }
        }
        Ok(Segments { table, loaded, unread })
    }
    match bytes.get(EI_CLASS) {
        Some(&object::elf::ELFCLASS64) => of::<object::elf::FileHeader64<Endianness>>(bytes, sections),
        _ => of::<object::elf::FileHeader32<Endianness>>(bytes, sections),
    }
}

/// `ranges` without what `holes` covers, each range (start, end).
fn without(ranges: &[(u64, u64)], holes: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(start, end) in ranges {
        let mut pieces = vec![(start, end)];
        for &(hole_start, hole_end) in holes {
            pieces = pieces.into_iter().flat_map(|(s, e)| [(s, e.min(hole_start)), (s.max(hole_end), e)]).filter(|(s, e)| s < e).collect();
        }
        out.extend(pieces);
    }
    out
}

/// Checks that `output` has `input`'s program headers and file header (but for where the section
/// headers are), and, in every segment run time reads, its bytes (but for what [`Segments::unread`]
/// says nothing reads).
fn check_loaded_bytes(input: &Path, original: &[u8], output: &Path) -> Result<(), StripError> {
    let unsupported = |reason: String| StripError::Unsupported { path: input.to_path_buf(), reason };
    let before = segments(original, true).map_err(&unsupported)?;
    let mut file = File::open(output).map_err(|source| StripError::Write { path: output.to_path_buf(), source })?;
    let read_error = |source| StripError::Write { path: output.to_path_buf(), source };
    // The program headers sit where they were: within the first bytes, or the comparison fails.
    let head_size = before.table.len() as u64 + original.len().min(1 << 16) as u64;
    let mut head = Vec::new();
    (&mut file).take(head_size).read_to_end(&mut head).map_err(read_error)?;
    let after_table = segments(&head, false).map(|after| after.table).unwrap_or_default();
    if before.table != after_table {
        return Err(unsupported("the rewritten program headers differ".into()));
    }
    if header_without_sections(original) != header_without_sections(&head) {
        return Err(unsupported("the rewritten file header differs".into()));
    }
    let mut window = vec![0; 1 << 20];
    for (start, end) in without(&before.loaded, &before.unread) {
        file.seek(SeekFrom::Start(start)).map_err(read_error)?;
        let mut at = start;
        while at < end {
            let n = (end - at).min(window.len() as u64) as usize;
            file.read_exact(&mut window[..n]).map_err(read_error)?;
            let first_difference = match original.get(at as usize..at as usize + n) {
                Some(before) if before == &window[..n] => None,
                Some(before) => before.iter().zip(&window[..n]).position(|(a, b)| a != b),
                None => Some(0),
            };
            if let Some(offset) = first_difference {
                return Err(unsupported(format!("the rewritten loaded bytes differ at offset {}", at + offset as u64)));
            }
            at += n as u64;
        }
    }
    Ok(())
}

/// The ELF file header at the start of `bytes`, with the fields that say where the section headers
/// are (`e_shoff`, `e_shentsize`, `e_shnum`, `e_shstrndx`) zeroed.
fn header_without_sections(bytes: &[u8]) -> Vec<u8> {
    let (size, section_fields): (usize, [(usize, usize); 2]) = match bytes.get(EI_CLASS) {
        Some(&object::elf::ELFCLASS64) => (64, [(0x28, 8), (0x3a, 6)]),
        _ => (52, [(0x20, 4), (0x2e, 6)]),
    };
    let mut header = bytes[..size.min(bytes.len())].to_vec();
    for (start, length) in section_fields {
        if let Some(field) = header.get_mut(start..start + length) {
            field.fill(0);
        }
    }
    header
}

/// How many bytes of `path` `--strip` would remove (the file sections it removes), and the file's
/// size. Reads the section headers only; `None` when they cannot be read.
pub(crate) fn removable_size(path: &Path) -> Option<(u64, u64)> {
    let file = File::open(path).ok()?;
    // SAFETY: read-only private map; only headers are read, with bounds checks.
    let bytes = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    fn of<Elf: FileHeader<Endian = Endianness>>(bytes: &[u8]) -> Option<u64> {
        let header = Elf::parse(bytes).ok()?;
        let endian = header.endian().ok()?;
        let sections = header.sections(endian, bytes).ok()?;
        let mut total = 0u64;
        for section in sections.iter() {
            let flags: u64 = section.sh_flags(endian).into();
            if flags & u64::from(SHF_ALLOC) != 0 || section.sh_type(endian) == SHT_NOBITS {
                continue;
            }
            let name = sections.section_name(endian, section).unwrap_or_default();
            let symbols = matches!(section.sh_type(endian), object::elf::SHT_SYMTAB | object::elf::SHT_SYMTAB_SHNDX)
                || (name == b".strtab" && section.sh_type(endian) == object::elf::SHT_STRTAB);
            if name.starts_with(b".debug") || name.starts_with(b".zdebug") || symbols {
                total += section.sh_size(endian).into();
            }
        }
        Some(total)
    }
    let removable = match bytes.get(EI_CLASS) {
        Some(&object::elf::ELFCLASS64) => of::<object::elf::FileHeader64<Endianness>>(&bytes)?,
        _ => of::<object::elf::FileHeader32<Endianness>>(&bytes)?,
    };
    Some((removable, bytes.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test program: an ELF with loaded segments, unlike any file the tests would build.
    fn this_program() -> Vec<u8> {
        std::fs::read(std::env::current_exe().unwrap()).unwrap()
    }

    #[test]
    fn the_check_after_writing_refuses_a_changed_loaded_byte() {
        let original = this_program();
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("copy");
        std::fs::write(&copy, &original).unwrap();
        check_loaded_bytes(Path::new("prog"), &original, &copy).expect("an exact copy passes");

        // A byte in the middle of the largest loaded range that nothing leaves unread.
        let segments = segments(&original, true).unwrap();
        let ranges = without(&segments.loaded, &segments.unread);
        let (start, end) = ranges.iter().copied().max_by_key(|(start, end)| end - start).unwrap();
        let changed_at = (start + end) / 2;
        let mut changed = original.clone();
        changed[changed_at as usize] ^= 0x40;
        std::fs::write(&copy, &changed).unwrap();
        let error = check_loaded_bytes(Path::new("prog"), &original, &copy).unwrap_err();
        assert_eq!(error.to_string(), format!("prog: cannot strip: the rewritten loaded bytes differ at offset {changed_at}"));

        // Where the section headers are may change; the rest of the file header may not.
        let mut moved = original.clone();
        moved[0x28] ^= 0x01;
        std::fs::write(&copy, &moved).unwrap();
        check_loaded_bytes(Path::new("prog"), &original, &copy).expect("e_shoff may change");
        let mut entry = original.clone();
        entry[0x18] ^= 0x01;
        std::fs::write(&copy, &entry).unwrap();
        let error = check_loaded_bytes(Path::new("prog"), &original, &copy).unwrap_err();
        assert_eq!(error.to_string(), "prog: cannot strip: the rewritten file header differs");
    }

    #[test]
    fn ranges_lose_what_the_holes_cover() {
        assert_eq!(without(&[(0, 100)], &[(10, 20), (90, 200)]), vec![(0, 10), (20, 90)]);
        assert_eq!(without(&[(0, 100), (200, 300)], &[(0, 64), (250, 260)]), vec![(64, 100), (200, 250), (260, 300)]);
        assert_eq!(without(&[(0, 10)], &[(0, 10)]), vec![]);
    }
}
