//! ELF machine, class and byte order to OCI architecture names (as `GOARCH` spells them).

use goblin::elf::header::{EM_386, EM_AARCH64, EM_ARM, EM_LOONGARCH, EM_MIPS, EM_PPC, EM_PPC64, EM_RISCV, EM_S390, EM_X86_64};

use crate::platform::Platform;

/// The platform of a Linux program, or `None` for a machine no OCI platform names.
/// `arm_variant` is asked only for 32-bit ARM, where the variant comes from the attributes section.
pub(crate) fn from_machine(machine: u16, class: u8, little_endian: bool, arm_variant: impl FnOnce() -> String) -> Option<Platform> {
    let (arch, variant) = match (machine, class, little_endian) {
        (EM_X86_64, 64, true) => ("amd64", None),
        (EM_AARCH64, 64, true) => ("arm64", Some("v8".to_string())),
        (EM_ARM, 32, true) => ("arm", Some(arm_variant())),
        (EM_386, 32, true) => ("386", None),
        (EM_RISCV, 64, true) => ("riscv64", None),
        (EM_PPC64, 64, true) => ("ppc64le", None),
        (EM_PPC64, 64, false) => ("ppc64", None),
        (EM_PPC, 32, false) => ("ppc", None),
        (EM_S390, 64, false) => ("s390x", None),
        (EM_LOONGARCH, 64, true) => ("loong64", None),
        (EM_MIPS, 64, true) => ("mips64le", None),
        (EM_MIPS, 64, false) => ("mips64", None),
        (EM_MIPS, 32, true) => ("mipsle", None),
        (EM_MIPS, 32, false) => ("mips", None),
        _ => return None,
    };
    Some(Platform::linux(arch, variant.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_every_supported_machine() {
        let v7 = || "v7".to_string();
        let cases: &[(u16, u8, bool, &str)] = &[
            (EM_X86_64, 64, true, "linux/amd64"),
            (EM_AARCH64, 64, true, "linux/arm64/v8"),
            (EM_ARM, 32, true, "linux/arm/v7"),
            (EM_386, 32, true, "linux/386"),
            (EM_RISCV, 64, true, "linux/riscv64"),
            (EM_PPC64, 64, true, "linux/ppc64le"),
            (EM_PPC64, 64, false, "linux/ppc64"),
            (EM_S390, 64, false, "linux/s390x"),
            (EM_LOONGARCH, 64, true, "linux/loong64"),
            (EM_MIPS, 64, true, "linux/mips64le"),
        ];
        for &(machine, class, le, want) in cases {
            let got = from_machine(machine, class, le, v7).map(|p| p.to_string());
            assert_eq!(got.as_deref(), Some(want), "machine {machine} class {class} le {le}");
        }
    }

    #[test]
    fn refuses_machines_without_an_oci_name() {
        assert_eq!(from_machine(EM_RISCV, 32, true, || unreachable!()), None);
        assert_eq!(from_machine(EM_X86_64, 32, true, || unreachable!()), None);
        assert_eq!(from_machine(2 /* SPARC */, 32, false, || unreachable!()), None);
    }
}
