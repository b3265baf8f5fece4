//! One plan per binary: where it goes in the image, what it needs (libraries, zoneinfo), the tree of
//! its libraries and what ld.so must be told. Decided before any shared layer is written, so that a
//! missing library fails the pack before anything is published.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Result};

use super::PackOptions;
use crate::elf::clues::ClueKind;
use crate::elf::resolve::{Resolution, Rule};
use crate::elf::{self, ElfInfo};
use crate::needs::{self, Zoneinfo};
use crate::printer::Printer;
use crate::rootfs::base::CaBundle;
use crate::rootfs::{self, FileTree};

/// Everything decided about one binary before its image is assembled.
pub(crate) struct BinaryPlan {
    pub(crate) info: ElfInfo,
    /// The binary's path in the image, without the leading `/`.
    pub(crate) target: String,
    /// The loader and libraries ld.so would load (dynamic programs).
    pub(crate) resolution: Option<Resolution>,
    /// The tree of the libraries' layer (dynamic programs).
    pub(crate) libraries: Option<FileTree>,
    /// The zoneinfo to bundle: the built-in zones or a folder of this machine.
    pub(crate) zoneinfo: Option<Zoneinfo>,
    /// The folders ld.so must be told about with LD_LIBRARY_PATH (the image has no ld.so.cache).
    pub(crate) ld_library_path: Vec<String>,
}

impl BinaryPlan {
    /// Decides what `info`, placed at `/target`, needs, and says so on stderr: the clues at `-v`, a
    /// warning for each library packed as missing or a TLS program left without CA roots.
    pub(crate) fn new(options: &PackOptions, printer: &Printer, info: ElfInfo, target: String) -> Result<BinaryPlan> {
        let decided = needs::decide(&info, &format!("/{target}"), &options.needs)?;
        for clue in &decided.clues {
            printer.verbose(format_args!("{}: {}: {}", info.file.display(), clue.kind.as_str(), clue.evidence.join(", ")));
            if clue.kind == ClueKind::Tls && options.base.ca_bundle == Some(CaBundle::None) {
                printer.warn(format_args!(
                    "{} looks like it verifies TLS certificates ({}), but --ca-bundle none leaves the image without CA certificates",
                    info.file.display(),
                    clue.evidence.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        let mut plan =
            BinaryPlan { info, target, resolution: None, libraries: None, zoneinfo: decided.zoneinfo, ld_library_path: Vec::new() };
        if let Some(resolution) = decided.resolution {
            plan.plan_libraries(options, printer, &resolution)?;
            plan.resolution = Some(resolution);
        }
        Ok(plan)
    }

    fn plan_libraries(&mut self, options: &PackOptions, printer: &Printer, resolution: &Resolution) -> Result<()> {
        let file = self.info.file.display();
        for missing in &resolution.missing {
            printer.warn(format_args!("{file}: {} (needed by {}) was not found; packing anyway", missing.name, missing.needed_by));
        }
        printer.verbose(format_args!("{file}: bundling the loader and {} libraries", resolution.libraries.len()));
        let root = options.needs.resolve_options().root;
        let mut libraries = rootfs::libs::plan(resolution, &root)?;
        // Scanners then match the bundled libraries to their Debian packages.
        rootfs::packages::add_records(&mut libraries, &root)?;
        self.libraries = Some(libraries);
        if resolution.libraries.iter().any(|l| l.rule == Rule::LibraryPath) {
            self.ld_library_path.extend(options.needs.library_path.iter().cloned());
        }
        self.ld_library_path.extend(resolution.conf_dirs.iter().cloned());
        Ok(())
    }
}

/// An index holds one image per platform.
pub(crate) fn check_platforms(binaries: &[ElfInfo]) -> Result<()> {
    let mut seen: BTreeMap<String, &ElfInfo> = BTreeMap::new();
    for info in binaries {
        if let Some(first) = seen.insert(info.platform.to_string(), info) {
            bail!(
                "{} and {} are both {}: an image index holds one image per platform",
                first.file.display(),
                info.file.display(),
                info.platform
            );
        }
    }
    Ok(())
}

/// `/usr/local/bin/NAME` by default; `--path DIR/` puts NAME into DIR; any other `--path` is the
/// binary's full path. Without the leading `/`.
pub(crate) fn binary_path(path: Option<&str>, file: &Path) -> Result<String> {
    let name = || match file.file_name().map(|name| (name, name.to_str())) {
        // Image paths are UTF-8; a lossy name would not be the program's.
        Some((name, None)) => bail!("{}: file name {name:?} is not UTF-8; image paths must be UTF-8: name one with --path", file.display()),
        _ => Ok(elf::file_name(file)),
    };
    let full = match path {
        None => format!("/usr/local/bin/{}", name()?),
        Some(dir) if dir.ends_with('/') => format!("{dir}{}", name()?),
        Some(path) => path.to_string(),
    };
    Ok(rootfs::image_path(&full)?)
}
