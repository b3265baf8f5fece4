//! The `hint:` line printed under an error: the first hint any error in the chain offers.

use crate::{dest, elf, registry, rootfs};

pub fn hint(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(|cause| {
        if let Some(e) = cause.downcast_ref::<elf::ElfError>() {
            e.hint().map(str::to_string)
        } else if let Some(e) = cause.downcast_ref::<rootfs::base::BaseError>() {
            e.hint().map(str::to_string)
        } else if let Some(e) = cause.downcast_ref::<dest::DestError>() {
            e.hint()
        } else if let Some(crate::pack::OptionError::NoOutput) = cause.downcast_ref::<crate::pack::OptionError>() {
            Some("for example --output oci:out, or --output docker://ghcr.io/org/app:1.0".into())
        } else if let Some(e) = cause.downcast_ref::<crate::sbom::SbomError>() {
            e.hint().map(str::to_string)
        } else if let Some(e) = cause.downcast_ref::<crate::needs::NeedsError>() {
            e.hint()
        } else if let Some(e) = cause.downcast_ref::<registry::RegistryError>() {
            e.hint()
        } else if let Some(e) = cause.downcast_ref::<registry::reference::ReferenceError>() {
            e.hint().map(str::to_string)
        } else {
            None
        }
    })
}

/// An error and its causes on one line, `a: b: c`, as `{:#}` prints an `anyhow::Error`.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}
