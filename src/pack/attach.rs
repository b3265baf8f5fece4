//! What is attached to the images of a pack: one SBOM per platform image, made from the
//! cargo-auditable data of its programs and the files the image holds (the `--also` programs too),
//! attached to its manifest as an OCI referrer (and written to `--sbom-dir`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::plan::BinaryPlan;
use super::PackOptions;
use crate::image::referrers::{self, Attachment};
use crate::image::{Blob, Digest, Image};
use crate::printer::Printer;
use crate::rootfs::base::{self, Base};
use crate::rootfs::{Content, Entry, EntryKind};
use crate::sbom::{self, AuditedCrate, DpkgDb, SbomFile, SbomFormat, SbomInput};

/// One SBOM per image (`images` in the plans' order); none without `--sbom`. `carries_bundle`
/// says, per image, whether it holds scratchpack's CA bundle (an image on a `--base` that has its
/// own does not). `dpkg` is the resolving root's package database, which names the libraries' packages.
pub(crate) fn sboms(
    options: &PackOptions,
    printer: &Printer,
    plans: &[BinaryPlan],
    programs: &[PathBuf],
    (base_plan, carries_bundle): (&Base, &[bool]),
    images: &[Image],
    (dpkg, created): (&DpkgDb, &str),
) -> Result<Vec<Attachment>> {
    if options.sbom.format == SbomFormat::None {
        return Ok(Vec::new());
    }
    let common = ca_bundle_file(base_plan);
    let mut attachments = Vec::new();
    for (((plan, program), image), carries) in plans.iter().zip(programs).zip(images).zip(carries_bundle) {
        let common = if *carries { &common[..] } else { &[] };
        if let Some(attachment) = sbom_of(options, printer, (plan, program), image, dpkg, common, created)? {
            attachments.push(attachment);
        }
    }
    Ok(attachments)
}

/// The CA bundle, which every image of the pack holds.
fn ca_bundle_file(base_plan: &Base) -> Vec<SbomFile> {
    let Some(Entry { kind: EntryKind::File(Content::Bytes(pem)), .. }) = base_plan.tree.get(base::CA_BUNDLE_PATH) else {
        return Vec::new();
    };
    vec![SbomFile {
        path: format!("/{}", base::CA_BUNDLE_PATH),
        sha256: Digest::of(pem),
        sha1: sbom::sha1_hex(pem),
        size: pem.len() as u64,
        comment: base_plan.ca_version.as_ref().map(|v| format!("Mozilla CA bundle: {v}")),
        package: None,
    }]
}

fn hash_file(path: &Path) -> Result<(Digest, String, u64)> {
    sbom::hash_file(path).with_context(|| format!("{}: cannot read", path.display()))
}

/// The files of `plan`'s image that an SBOM lists besides the CA bundle: the loader and libraries
/// of each program (once each), with the Debian package each came from.
fn library_files(plan: &BinaryPlan, dpkg: &DpkgDb) -> Result<Vec<SbomFile>> {
    let mut files: Vec<SbomFile> = Vec::new();
    for (_, resolution) in plan.resolutions() {
        let interpreter =
            resolution.interpreter.iter().zip(&resolution.interpreter_file).map(|((image, _), file)| (image.clone(), file.clone()));
        let libraries = resolution.libraries.iter().map(|l| (l.image_path.clone(), l.file.clone()));
        for (image_path, host_path) in interpreter.chain(libraries) {
            if files.iter().any(|file| file.path == image_path) {
                continue;
            }
            let (sha256, sha1, size) = hash_file(&host_path)?;
            files.push(SbomFile { package: dpkg.owner(&image_path), path: image_path, sha256, sha1, size, comment: None });
        }
    }
    Ok(files)
}

/// The `--also` programs of `plan`'s image, as packed.
fn also_files(plan: &BinaryPlan) -> Result<Vec<SbomFile>> {
    let mut files = Vec::new();
    for program in &plan.also {
        let (sha256, sha1, size) = hash_file(&program.packed)?;
        let comment = Some(format!("a further program of the image (--also {}); not its entrypoint", program.info.file_name()));
        files.push(SbomFile { path: format!("/{}", program.target), sha256, sha1, size, comment, package: None });
    }
    Ok(files)
}

/// The audit data of the `--also` programs of `plan`'s image that carry some.
fn also_crates(plan: &BinaryPlan, printer: &Printer) -> Result<Vec<Vec<AuditedCrate>>> {
    let mut lists = Vec::new();
    for program in &plan.also {
        match sbom::read_auditable(&program.packed)? {
            Some(crates) => lists.push(crates),
            None => printer.verbose(format_args!("{}: no cargo-auditable data: the SBOM lists it as a file", program.info.file.display())),
        }
    }
    Ok(lists)
}

/// The SBOM of `image`, made for `plan` from `program`: the file packed (the binary, or its
/// stripped copy).
fn sbom_of(
    options: &PackOptions,
    printer: &Printer,
    (plan, program): (&BinaryPlan, &Path),
    image: &Image,
    dpkg: &DpkgDb,
    common: &[SbomFile],
    created: &str,
) -> Result<Option<Attachment>> {
    let info = &plan.info;
    let mut files = common.to_vec();
    files.extend(library_files(plan, dpkg)?);
    files.extend(also_files(plan)?);
    // A stripped copy keeps `.dep-v0`.
    let crates = sbom::read_auditable(program)?;
    if crates.is_none() {
        printer.info(format_args!("note: {} has no cargo-auditable data: its SBOM lists the image's files only", info.file.display()));
        printer.info(format_args!("hint: {}", sbom::NO_AUDIT_DATA_HINT));
    }
    let also_crates = also_crates(plan, printer)?;
    let (binary_sha256, binary_sha1, _) = hash_file(program)?;
    let name = info.file_name();
    let input = SbomInput {
        name: &name,
        version: options.sbom.version.as_deref(),
        platform: &info.platform,
        created,
        binary_path: &format!("/{}", plan.target),
        binary_sha256,
        binary_sha1,
        crates: crates.as_deref(),
        also_crates: &also_crates,
        cargo_sources: options.sbom.cargo_sources.as_ref(),
        files: &files,
    };
    let Some(document) = sbom::generate(options.sbom.format, &input)? else { return Ok(None) };
    let format = document.format;
    printer.verbose(format_args!(
        "{}: the {format} SBOM lists {} crates and {} files",
        info.file.display(),
        document.runtime_crates,
        files.len()
    ));
    if let Some(dir) = &options.sbom.dir {
        std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create the SBOM folder", dir.display()))?;
        let platform = info.platform.to_string().replace('/', "-");
        let path = dir.join(format!("{name}-{platform}.{}", format.file_extension()));
        crate::atomic::write_atomically(&path, |f| std::io::Write::write_all(f, &document.bytes))?;
        printer.verbose(format_args!("wrote {}", path.display()));
    }
    let payload = Blob::from_bytes(document.media_type, document.bytes);
    Ok(Some(referrers::attach(&image.manifest, payload, &format!("sbom.{}", format.file_extension()), created)))
}
