//! One plan per binary (per image): where it and its `--also` programs go in the image, what they
//! need (libraries, zoneinfo), the tree of their libraries and what ld.so must be told. Decided
//! before any shared layer is written, so that a missing library fails the pack before anything is
//! published.
//!
//! An `--also` program goes into the image of the main binary of its platform. In a pack of
//! several platforms, every image gets the same `--also` paths: a health check the orchestrator
//! calls must be there whichever platform the node pulls.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use super::PackOptions;
use crate::elf::clues::ClueKind;
use crate::elf::resolve::{Resolution, Rule};
use crate::elf::{self, ElfInfo};
use crate::needs::{self, Zoneinfo};
use crate::printer::Printer;
use crate::rootfs::base::CaBundle;
use crate::rootfs::{self, FileTree};
use crate::sbom::DpkgDb;

/// Everything decided about one binary, and so about its image, before the image is assembled.
pub(crate) struct BinaryPlan {
    pub(crate) info: ElfInfo,
    /// The binary's path in the image, without the leading `/`: the entrypoint.
    pub(crate) target: String,
    /// The loader and libraries ld.so would load (dynamic programs).
    pub(crate) resolution: Option<Resolution>,
    /// The `--also` programs of this image, in the order given.
    pub(crate) also: Vec<AlsoPlan>,
    /// The tree of the libraries' layer: those of every dynamic program of the image.
    pub(crate) libraries: Option<FileTree>,
    /// The zoneinfo to bundle, when some program of the image reads time zones: the built-in zones
    /// or a folder of this machine.
    pub(crate) zoneinfo: Option<Zoneinfo>,
    /// The folders ld.so must be told about with LD_LIBRARY_PATH (the image has no ld.so.cache).
    pub(crate) ld_library_path: Vec<String>,
}

/// An `--also` program, placed in an image; its needs are decided with the image's plan.
pub(crate) struct AlsoPlan {
    pub(crate) info: ElfInfo,
    /// Its path in the image, without the leading `/`.
    pub(crate) target: String,
    /// The file packed: the program itself, or with `--strip` its stripped copy.
    pub(crate) packed: PathBuf,
    /// The loader and libraries ld.so would load (dynamic programs).
    pub(crate) resolution: Option<Resolution>,
}

/// Why the programs cannot be placed in the images: two main binaries of one platform, or an
/// `--also` program that fits no image. Each variant names the files involved.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PlacementError {
    #[error("{} and {} are both {platform}: an image index holds one image per platform", first.display(), second.display())]
    SamePlatform { first: PathBuf, second: PathBuf, platform: String },
    #[error("{}: is {platform}, but {}: an --also program must be of the image's platform", file.display(), the_images_are(images))]
    Platform { file: PathBuf, platform: String, images: Vec<String> },
    #[error("{} and {} would both be /{path} in the {platform} image", first.display(), second.display())]
    SamePath { first: PathBuf, second: PathBuf, path: String, platform: String },
    #[error("the {platform} image has no /{path}, which the {} image holds ({})", with.0, with.1.display())]
    NotInEvery { path: String, platform: String, with: (String, PathBuf) },
}

/// `the image is linux/amd64`, or `the images are linux/amd64, linux/arm64/v8`.
fn the_images_are(images: &[String]) -> String {
    match images {
        [one] => format!("the image is {one}"),
        _ => format!("the images are {}", images.join(", ")),
    }
}

impl PlacementError {
    pub(crate) fn hint(&self) -> Option<String> {
        Some(match self {
            PlacementError::SamePlatform { second, .. } => {
                format!("to put both programs into one image, give the second with --also: --also {}", second.display())
            }
            PlacementError::Platform { images, .. } if images.len() == 1 => format!("build the program for {}", images[0]),
            PlacementError::Platform { .. } => "build the program for one of the images' platforms".into(),
            PlacementError::SamePath { .. } => "give one of them another place: --also PROGRAM:DEST".into(),
            PlacementError::NotInEvery { platform, path, .. } => {
                format!("every platform's image holds the same programs: add --also PROGRAM:/{path} with a program built for {platform}")
            }
        })
    }
}

impl BinaryPlan {
    /// Decides what `info`, placed at `/target`, and the `also` programs of its image need, and
    /// says so on stderr: the clues at `-v`, a warning for each library packed as missing or a TLS
    /// program left without CA roots. Libraries several programs need go in once.
    pub(crate) fn new(
        options: &PackOptions,
        printer: &Printer,
        info: ElfInfo,
        target: String,
        mut also: Vec<AlsoPlan>,
        dpkg: &DpkgDb,
    ) -> Result<BinaryPlan> {
        let decided = decide(options, printer, &info, &target)?;
        let mut zoneinfo = decided.zoneinfo;
        for program in &mut also {
            let needs = decide(options, printer, &program.info, &program.target)?;
            zoneinfo = zoneinfo.or(needs.zoneinfo);
            program.resolution = needs.resolution;
        }
        let mut plan =
            BinaryPlan { info, target, resolution: decided.resolution, also, libraries: None, zoneinfo, ld_library_path: Vec::new() };
        plan.plan_libraries(options, printer, dpkg)?;
        Ok(plan)
    }

    /// Each dynamic program of the image with its resolution, the main one first.
    pub(crate) fn resolutions(&self) -> impl Iterator<Item = (&ElfInfo, &Resolution)> {
        let main = std::iter::once((&self.info, self.resolution.as_ref()));
        main.chain(self.also.iter().map(|p| (&p.info, p.resolution.as_ref()))).filter_map(|(info, r)| Some((info, r?)))
    }

    /// The libraries' layer, with the records of their Debian packages (`dpkg`, the resolving
    /// root's database).
    fn plan_libraries(&mut self, options: &PackOptions, printer: &Printer, dpkg: &DpkgDb) -> Result<()> {
        let mut ld_library_path = Vec::new();
        for (info, resolution) in self.resolutions() {
            let file = info.file.display();
            for missing in &resolution.missing {
                printer.warn(format_args!("{file}: {} (needed by {}) was not found; packing anyway", missing.name, missing.needed_by));
            }
            printer.verbose(format_args!("{file}: bundling the loader and {} libraries", resolution.libraries.len()));
            if resolution.libraries.iter().any(|l| l.rule == Rule::LibraryPath) {
                ld_library_path.extend(options.needs.library_path.iter().cloned());
            }
            ld_library_path.extend(resolution.conf_dirs.iter().cloned());
        }
        let resolutions: Vec<&Resolution> = self.resolutions().map(|(_, resolution)| resolution).collect();
        if !resolutions.is_empty() {
            let root = options.needs.resolve_options().root;
            let mut libraries = rootfs::libs::plan(&resolutions, &root)?;
            // Scanners then match the bundled libraries to their Debian packages.
            rootfs::packages::add_records(&mut libraries, &root, dpkg)?;
            self.libraries = Some(libraries);
        }
        for dir in ld_library_path {
            if !self.ld_library_path.contains(&dir) {
                self.ld_library_path.push(dir);
            }
        }
        Ok(())
    }

    /// The absolute path of every program of the image, the entrypoint first.
    pub(crate) fn program_paths(&self) -> Vec<String> {
        std::iter::once(&self.target).chain(self.also.iter().map(|p| &p.target)).map(|path| format!("/{path}")).collect()
    }
}

/// What `info`, placed at `/target`, needs; its clues said at `-v`, and a warning when it verifies
/// TLS certificates in an image without any.
fn decide(options: &PackOptions, printer: &Printer, info: &ElfInfo, target: &str) -> Result<needs::Needs> {
    let decided = needs::decide(info, &format!("/{target}"), &options.needs)?;
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
    Ok(decided)
}

/// Places each `--also` program (`packed`: the files packed, in `options.also`'s order) into the
/// image of the main binary of its platform. Returns, per binary (in `binaries`' order, placed at
/// `targets`), its programs, needs not yet decided.
pub(crate) fn place_also(
    options: &PackOptions,
    binaries: &[ElfInfo],
    targets: &[String],
    packed: &[PathBuf],
) -> Result<Vec<Vec<AlsoPlan>>> {
    let mut placed: Vec<Vec<AlsoPlan>> = binaries.iter().map(|_| Vec::new()).collect();
    for (spec, packed) in options.also.iter().zip(packed) {
        let info = elf::inspect(&spec.file)?;
        let Some(image) = binaries.iter().position(|main| main.platform == info.platform) else {
            let images = binaries.iter().map(|main| main.platform.to_string()).collect();
            bail!(PlacementError::Platform { file: spec.file.clone(), platform: info.platform.to_string(), images });
        };
        let target = binary_path(spec.dest.as_deref(), &spec.file)?;
        let main = std::iter::once((&targets[image], &binaries[image].file));
        if let Some((_, first)) = main.chain(placed[image].iter().map(|p| (&p.target, &p.info.file))).find(|(t, _)| **t == target) {
            let platform = info.platform.to_string();
            bail!(PlacementError::SamePath { first: first.clone(), second: spec.file.clone(), path: target, platform });
        }
        placed[image].push(AlsoPlan { info, target, packed: packed.clone(), resolution: None });
    }
    every_image_has_every_path(binaries, &placed)?;
    Ok(placed)
}

/// In a pack of several platforms, each `--also` path is in every image.
fn every_image_has_every_path(binaries: &[ElfInfo], placed: &[Vec<AlsoPlan>]) -> Result<(), PlacementError> {
    let mut paths: BTreeMap<&str, &AlsoPlan> = BTreeMap::new();
    for program in placed.iter().flatten() {
        paths.entry(&program.target).or_insert(program);
    }
    for (main, programs) in binaries.iter().zip(placed) {
        let here: BTreeSet<&str> = programs.iter().map(|p| p.target.as_str()).collect();
        if let Some((path, with)) = paths.iter().find(|(path, _)| !here.contains(*path)) {
            return Err(PlacementError::NotInEvery {
                path: path.to_string(),
                platform: main.platform.to_string(),
                with: (with.info.platform.to_string(), with.info.file.clone()),
            });
        }
    }
    Ok(())
}

/// An index holds one image per platform.
pub(crate) fn check_platforms(binaries: &[ElfInfo]) -> Result<(), PlacementError> {
    let mut seen: BTreeMap<String, &ElfInfo> = BTreeMap::new();
    for info in binaries {
        if let Some(first) = seen.insert(info.platform.to_string(), info) {
            return Err(PlacementError::SamePlatform {
                first: first.file.clone(),
                second: info.file.clone(),
                platform: info.platform.to_string(),
            });
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
