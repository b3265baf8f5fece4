//! The `hint:` line printed under an error: the first hint any error in the chain offers.

use crate::{dest, elf, rootfs};

pub fn hint(error: &anyhow::Error) -> Option<&'static str> {
    error.chain().find_map(|cause| {
        if let Some(e) = cause.downcast_ref::<elf::ElfError>() {
            e.hint()
        } else if let Some(e) = cause.downcast_ref::<rootfs::base::BaseError>() {
            e.hint()
        } else if let Some(e) = cause.downcast_ref::<dest::DestError>() {
            e.hint()
        } else {
            None
        }
    })
}
