//! `--cap NAME`: file capabilities for the program, as the `security.capability` extended attribute
//! the kernel reads at exec (`setcap cap_net_bind_service=+ep` gives the same bytes).
//!
//! Owns the names of the Linux capabilities and the attribute's bytes: a version-2 `vfs_cap_data`
//! (no root-id, so any user namespace honours it), permitted and effective, inheritable empty. It
//! knows nothing of tar: the layer writes the attribute as a PAX `SCHILY.xattr.` record.

/// The attribute's name.
pub(crate) const XATTR: &str = "security.capability";

/// Every capability Linux knows, by number (`CAP_CHOWN` is 0), as `setcap` spells them.
pub(crate) const NAMES: &[&str] = &[
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// `VFS_CAP_REVISION_2`.
const REVISION_2: u32 = 0x0200_0000;
/// `VFS_CAP_FLAGS_EFFECTIVE`: the permitted set becomes effective at exec, so a program that does
/// not know about capabilities still has them.
const FLAGS_EFFECTIVE: u32 = 0x0000_0001;

/// A set of capabilities.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Capabilities(u64);

#[derive(Debug, thiserror::Error)]
#[error("--cap {name:?}: no such capability; the known ones are {}", NAMES.join(", "))]
pub(crate) struct CapError {
    name: String,
}

impl Capabilities {
    /// The set of `names` (`net_bind_service`, `cap_net_bind_service`, `CAP_NET_BIND_SERVICE`).
    pub(crate) fn parse<S: AsRef<str>>(names: &[S]) -> Result<Capabilities, CapError> {
        let mut bits = 0u64;
        for name in names {
            let name = name.as_ref();
            let lower = name.to_ascii_lowercase();
            let bare = lower.strip_prefix("cap_").unwrap_or(&lower);
            let number = NAMES.iter().position(|known| *known == bare).ok_or_else(|| CapError { name: name.to_string() })?;
            bits |= 1 << number;
        }
        Ok(Capabilities(bits))
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The `security.capability` value: `vfs_cap_data` revision 2, little-endian, 20 bytes.
    pub(crate) fn xattr(self) -> Vec<u8> {
        let mut value = Vec::with_capacity(20);
        value.extend_from_slice(&(REVISION_2 | FLAGS_EFFECTIVE).to_le_bytes());
        for word in [self.0 as u32, (self.0 >> 32) as u32] {
            value.extend_from_slice(&word.to_le_bytes()); // permitted
            value.extend_from_slice(&0u32.to_le_bytes()); // inheritable
        }
        value
    }
}

impl std::fmt::Display for Capabilities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = (0..NAMES.len()).filter(|bit| self.0 & (1 << bit) != 0).map(|bit| format!("cap_{}", NAMES[bit])).collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_taken_as_setcap_and_the_kernel_spell_them() {
        let caps = Capabilities::parse(&["net_bind_service"]).unwrap();
        assert_eq!(caps, Capabilities::parse(&["cap_net_bind_service"]).unwrap());
        assert_eq!(caps, Capabilities::parse(&["CAP_NET_BIND_SERVICE"]).unwrap());
        assert_eq!(caps, Capabilities::parse(&["Net_Bind_Service", "net_bind_service"]).unwrap());
        assert_eq!(caps.to_string(), "cap_net_bind_service");
        assert_eq!(NAMES.len(), 41);
        assert_eq!(NAMES[0], "chown");
        assert_eq!(NAMES[10], "net_bind_service");
        assert_eq!(NAMES[21], "sys_admin");
        assert_eq!(NAMES[40], "checkpoint_restore");
        assert!(Capabilities::parse::<&str>(&[]).unwrap().is_empty());
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let err = Capabilities::parse(&["net_bind_service", "net_bind"]).unwrap_err().to_string();
        assert!(err.starts_with("--cap \"net_bind\": no such capability; the known ones are chown, dac_override, "), "{err}");
        assert!(err.ends_with(", perfmon, bpf, checkpoint_restore"), "{err}");
        assert!(Capabilities::parse(&["cap_"]).is_err());
        assert!(Capabilities::parse(&[""]).is_err());
    }

    #[test]
    fn the_xattr_is_what_setcap_writes() {
        // `setcap cap_net_bind_service=+ep FILE; getfattr -e hex -n security.capability FILE`:
        // 0x0100000200040000000000000000000000000000
        let value = Capabilities::parse(&["net_bind_service"]).unwrap().xattr();
        assert_eq!(hex::encode(&value), "0100000200040000000000000000000000000000");
        // Capabilities past 31 go in the second word: cap_chown,cap_checkpoint_restore=+ep.
        let value = Capabilities::parse(&["chown", "checkpoint_restore"]).unwrap().xattr();
        assert_eq!(hex::encode(&value), "0100000201000000000000000001000000000000");
    }
}
