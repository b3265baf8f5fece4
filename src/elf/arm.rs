//! The `.ARM.attributes` section of 32-bit ARM binaries: which architecture version the code needs,
//! which is the OCI platform variant (`v5`, `v6`, `v7`, `v8`).
//!
//! Format (ARM IHI 0045, "Build Attributes"): `'A'`, then subsections `u32 length, "vendor\0", data`;
//! inside the `"aeabi"` subsection, tagged blocks `u8 tag, u32 size, attributes`, where tag 1 holds
//! the whole file's attributes as `uleb128 tag, value` pairs.

use goblin::elf::Elf;

const SHT_ARM_ATTRIBUTES: u32 = 0x7000_0003;
const TAG_FILE: u8 = 1;
const TAG_CPU_ARCH: u64 = 6;
/// Go and other toolchains that write no attributes target ARMv7 by default.
const DEFAULT_VARIANT: &str = "v7";

pub(crate) fn cpu_variant(elf: &Elf, bytes: &[u8]) -> String {
    let section = elf.section_headers.iter().find(|sh| sh.sh_type == SHT_ARM_ATTRIBUTES);
    let data = section.and_then(|sh| {
        let start = usize::try_from(sh.sh_offset).ok()?;
        let end = start.checked_add(usize::try_from(sh.sh_size).ok()?)?;
        bytes.get(start..end)
    });
    data.and_then(cpu_arch).map(variant_of_cpu_arch).unwrap_or(DEFAULT_VARIANT).to_string()
}

/// Maps `Tag_CPU_arch` values to OCI variants.
fn variant_of_cpu_arch(arch: u64) -> &'static str {
    match arch {
        0..=5 => "v5",
        6..=9 | 11 | 12 => "v6", // v6, v6KZ, v6T2, v6K, v6-M, v6S-M
        10 | 13 => "v7",         // v7, v7E-M
        _ => "v8",               // v8-A and later, in 32-bit state
    }
}

/// Finds `Tag_CPU_arch` in the file-scope attributes of the "aeabi" subsection.
fn cpu_arch(data: &[u8]) -> Option<u64> {
    let mut rest = data.strip_prefix(b"A")?;
    while rest.len() >= 4 {
        let len = u32::from_le_bytes(rest[..4].try_into().ok()?) as usize;
        let subsection = rest.get(4..len.max(4))?;
        rest = &rest[len.max(4)..];
        let nul = subsection.iter().position(|&b| b == 0)?;
        if &subsection[..nul] != b"aeabi" {
            continue;
        }
        let mut blocks = &subsection[nul + 1..];
        while blocks.len() >= 5 {
            let tag = blocks[0];
            let size = u32::from_le_bytes(blocks[1..5].try_into().ok()?) as usize;
            let block = blocks.get(5..size.max(5))?;
            blocks = &blocks[size.max(5)..];
            if tag == TAG_FILE {
                return find_tag(block, TAG_CPU_ARCH);
            }
        }
    }
    None
}

fn find_tag(mut attrs: &[u8], wanted: u64) -> Option<u64> {
    while !attrs.is_empty() {
        let (tag, used) = uleb128(attrs)?;
        attrs = &attrs[used..];
        // Tags 4, 5 and 67 are strings, 32 is a number and a string; otherwise odd tags above 32
        // are strings and the rest numbers.
        let is_string = matches!(tag, 4 | 5 | 67) || (tag > 32 && tag % 2 == 1);
        if tag == 32 {
            let (_, used) = uleb128(attrs)?;
            attrs = skip_string(&attrs[used..])?;
        } else if is_string {
            attrs = skip_string(attrs)?;
        } else {
            let (value, used) = uleb128(attrs)?;
            if tag == wanted {
                return Some(value);
            }
            attrs = &attrs[used..];
        }
    }
    None
}

fn skip_string(data: &[u8]) -> Option<&[u8]> {
    let nul = data.iter().position(|&b| b == 0)?;
    Some(&data[nul + 1..])
}

fn uleb128(data: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in data.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes(file_attrs: &[u8]) -> Vec<u8> {
        let mut block = vec![TAG_FILE];
        block.extend_from_slice(&((5 + file_attrs.len()) as u32).to_le_bytes());
        block.extend_from_slice(file_attrs);
        let mut sub = Vec::new();
        sub.extend_from_slice(&((4 + 6 + block.len()) as u32).to_le_bytes());
        sub.extend_from_slice(b"aeabi\0");
        sub.extend_from_slice(&block);
        let mut data = b"A".to_vec();
        data.extend_from_slice(&sub);
        data
    }

    #[test]
    fn reads_cpu_arch_after_string_tags() {
        // Tag_CPU_name "7-A", Tag_CPU_arch v7, Tag_CPU_arch_profile 'A'
        let data = attributes(b"\x057-A\0\x06\x0a\x07\x41");
        assert_eq!(cpu_arch(&data), Some(10));
        assert_eq!(variant_of_cpu_arch(10), "v7");
    }

    #[test]
    fn maps_v6_and_v8() {
        assert_eq!(cpu_arch(&attributes(b"\x06\x06")).map(variant_of_cpu_arch), Some("v6"));
        assert_eq!(cpu_arch(&attributes(b"\x06\x0e")).map(variant_of_cpu_arch), Some("v8"));
    }

    #[test]
    fn garbage_gives_none_not_a_panic() {
        assert_eq!(cpu_arch(b"A\xff\xff\xff\xff"), None);
        assert_eq!(cpu_arch(b""), None);
        assert_eq!(cpu_arch(&attributes(b"\x05unterminated")), None);
    }
}
