//! The error edge of both binaries: an error becomes `error: …` (its causes joined by `: `), a
//! `hint: …` line when some error in the chain knows a fix, and exit code 1. A closed stdout
//! (`scratchpack … | head`) is not a failure.

use std::process::ExitCode;

use super::OptionError;
use crate::atomic::FileError;
use crate::base_image::BaseImageError;
use crate::created::CreatedError;
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
use crate::rootfs::extra::ExtraError;
use crate::sbom::SbomError;
use crate::sign::SignError;
use crate::verify::VerifyError;

/// What a command's result means for the user: printed on stderr, and the exit code.
pub fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.downcast_ref::<StdoutClosed>().is_some() => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            if let Some(hint) = hint(&error) {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The reader of what a command prints on stdout went away (`scratchpack man | head`): not a
/// failure of the command. Only a write of the command's own output to stdout says so; a broken
/// pipe anywhere else (a socket, an archive written through `/dev/stdout`) is an error.
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed")]
pub(crate) struct StdoutClosed;

/// `written`, the result of writing the command's own output to stdout, with a broken pipe as
/// [`StdoutClosed`].
pub(crate) fn to_stdout(written: std::io::Result<()>) -> anyhow::Result<()> {
    match written {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        other => Ok(other?),
    }
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
            CreatedError,
            ElfError,
            StripError,
            AddError,
            ExtraError,
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
            ReferenceError,
            SignError,
            VerifyError
        )
    })
}
