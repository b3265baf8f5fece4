//! The error edge of both binaries: an error becomes `error: …` (its causes joined by `: `), a
//! `hint: …` line when some error in the chain knows a fix, and exit code 1. A closed stdout
//! (`scratchpack … | head`) is not a failure.

use std::process::ExitCode;

use super::OptionError;
use crate::atomic::FileError;
use crate::base_image::BaseImageError;
use crate::dest::DestError;
use crate::elf::strip::StripError;
use crate::elf::ElfError;
use crate::layout::LayoutError;
use crate::needs::NeedsError;
use crate::pack::{PlacementError, SizeError};
use crate::registry::reference::ReferenceError;
use crate::registry::RegistryError;
use crate::rootfs::add::AddError;
use crate::rootfs::base::BaseError;
use crate::sbom::SbomError;

/// What a command's result means for the user: printed on stderr, and the exit code.
pub fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            if let Some(hint) = hint(&error) {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
}

/// The first hint any error in the chain offers. Each error type of the library says its own
/// (`fn hint(&self) -> Option<String>`); this only knows which types have one.
fn hint(error: &anyhow::Error) -> Option<String> {
    macro_rules! hint_of {
        ($cause:expr, $($error:ty),+) => {{
            $(if let Some(error) = $cause.downcast_ref::<$error>() {
                return error.hint();
            })+
            None
        }};
    }
    error.chain().find_map(|cause| -> Option<String> {
        hint_of!(
            cause,
            FileError,
            ElfError,
            StripError,
            AddError,
            BaseError,
            BaseImageError,
            DestError,
            LayoutError,
            OptionError,
            SbomError,
            NeedsError,
            SizeError,
            PlacementError,
            RegistryError,
            ReferenceError
        )
    })
}
