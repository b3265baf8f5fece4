//! The pack pipeline: inspect each binary, plan what it needs, write the layers, assemble the
//! images, attach SBOMs, publish to every destination. Each step adds context to its errors; no
//! destination is told to publish until every input has been checked.
//!
//! The program's own layer, the most work, is compressed on a thread of its own from the start,
//! while the binaries are inspected and the shared layers written; the destinations are offered
//! the shared layers as soon as they are done (an `oci:` layout places them then). With `--strip`,
//! each program is stripped into the staging folder first, and that file is what is packed.
//!
//! `--also` programs go into the image of the main binary of their platform, in a layer of their
//! own below the main program's; the main program stays the entrypoint.
//!
//! With `--base`, each image is on the base's image of its platform (`on_base`): the base's
//! layers come first instead of scratchpack's base layer, and the config carries on from the
//! base's. The base is read once the binaries' platforms are known, before any destination is
//! offered a layer.

mod attach;
mod budget;
mod layers;
mod on_base;
mod options;
mod plan;
mod signatures;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};

pub(crate) use budget::{ByteSize, SizeError};
pub(crate) use options::{AlsoSpec, CargoBuild, PackOptions, SbomOptions, SignOptions};
pub(crate) use plan::PlacementError;
pub(crate) use signatures::git_commit;

use crate::base_image::{BaseImage, BasePlatform, BASE_DIGEST_ANNOTATION, BASE_NAME_ANNOTATION};
use crate::dest::{self, Destination, Published};
use crate::elf;
use crate::image::config::{self, LayerHistory};
use crate::image::referrers::Attachment;
use crate::image::{Digest, Image, ImageOrIndex, Layer, Staging};
use crate::needs::Zoneinfo;
use crate::printer::Printer;
use crate::rootfs::zoneinfo;
use crate::sbom::DpkgDb;
use budget::{ImageCost, LayerCost};
use layers::{OnBase, SharedLayers, Step};
use plan::BinaryPlan;

/// The annotation that records which CA bundle an image carries.
pub(crate) const CA_BUNDLE_ANNOTATION: &str = "dev.scratchpack.ca-bundle.version";
/// The annotation that records the IANA release of the built-in zones, in an image that has them.
pub(crate) const TZDATA_ANNOTATION: &str = "dev.scratchpack.tzdata.version";

/// A packed image, with the staging folder that holds its layers until it is published.
pub(crate) struct Packed {
    pub(crate) image: ImageOrIndex,
    /// Artifacts attached to the image or its platform images: SBOMs, attestations. Signatures,
    /// which name the destination, are made as each destination is published.
    pub(crate) attachments: Vec<Attachment>,
    /// Per platform image, in the images' order: the absolute path of each program it holds, the
    /// entrypoint first.
    pub(crate) programs: Vec<Vec<String>>,
    /// Per platform image, in the images' order: the `--base` image it is on (its
    /// `org.opencontainers.image.base.name` and the digest of its manifest).
    pub(crate) bases: Vec<Option<(String, Digest)>>,
    _staging: Staging,
    /// The `--base` image, whose files hold its layers until they are published.
    _base: Option<BaseImage>,
}

/// The destinations of a pack, each with the `--output` text that named it.
type Outputs = Vec<(String, Box<dyn Destination>)>;

/// Packs the binaries and publishes the image to every destination. Returns the image and, per
/// destination, the `--output` text and what was written there.
pub(crate) fn pack(options: &PackOptions, printer: &Printer) -> Result<(Packed, Vec<(String, Published)>)> {
    let name = elf::file_name(&options.binaries[0]);
    let mut outputs: Outputs =
        options.outputs.iter().map(|(text, spec)| (text.clone(), dest::open(spec, &options.tags, &name, &options.registry))).collect();
    let packed = build(options, printer, &mut outputs)?;
    let published = publish(options, &packed, &mut outputs, printer)?;
    Ok((packed, published))
}

/// Inspects every binary, plans and writes the layers and documents; offers the shared layers to
/// `outputs` as soon as they are written.
fn build(options: &PackOptions, printer: &Printer, outputs: &mut Outputs) -> Result<Packed> {
    let started = Instant::now();
    let started_on = now_rfc3339();
    let step = |what: &str| printer.debug(format_args!("{what} after {:.1} ms", started.elapsed().as_secs_f64() * 1000.0));
    let targets = options.binaries.iter().map(|file| plan::binary_path(options.path.as_deref(), file)).collect::<Result<Vec<_>>>()?;
    let staging = Staging::near(options.local_output_folder().as_deref()).context("cannot create a staging folder for layers")?;
    let programs = packed_files(options.binaries.iter(), options, &staging, &step)?;
    let also = packed_files(options.also.iter().map(|spec| &spec.file), options, &staging, &step)?;
    // Read only if a program bundles libraries, or an SBOM names their packages; then once.
    let dpkg = DpkgDb::load(&options.needs.resolve_options().root);
    let cancel = AtomicBool::new(false);
    let (app_layers, (plans, shared, base_image)) = std::thread::scope(|scope| {
        // The binaries' layers hold the files as they are (or stripped): they start at once. If
        // planning fails meanwhile (not an ELF, a missing library), they stop.
        let apps = scope.spawn(|| layers::write_app_layers(options, &programs, &targets, &staging, &cancel, &step));
        let planned = plan_and_prepare(options, printer, (&targets, &also), &staging, outputs, (&dpkg, &step));
        if planned.is_err() {
            cancel.store(true, Ordering::Relaxed);
        }
        let apps = apps.join().expect("the layer thread does not panic");
        // An error of the planning side comes first: the binaries' layers may only have failed for it.
        planned.and_then(|planned| Ok((apps?, planned)))
    })?;
    let created = config::rfc3339(options.created);
    let mut images = Vec::new();
    let mut costs = Vec::new();
    for (index, (plan, app_layer)) in plans.iter().zip(app_layers).enumerate() {
        let mut annotations = options.annotations.clone();
        let on_base = shared.on_base[index].as_ref();
        // The CA bundle annotation says which bundle the image carries: on a base that has its
        // own, it is the base's.
        let carries_ours = on_base.is_none_or(OnBase::adds_bundle);
        if let (Some(version), true) = (&shared.base_plan.ca_version, carries_ours) {
            annotations.entry(CA_BUNDLE_ANNOTATION.to_string()).or_insert_with(|| version.clone());
        }
        if let Some(on_base) = on_base {
            annotations.insert(BASE_NAME_ANNOTATION.to_string(), on_base.base.name.clone());
            annotations.insert(BASE_DIGEST_ANNOTATION.to_string(), on_base.base.manifest_digest.to_string());
        }
        if plan.zoneinfo == Some(Zoneinfo::Builtin) {
            annotations.entry(TZDATA_ANNOTATION.to_string()).or_insert_with(|| zoneinfo::builtin_version().to_string());
        }
        let (layers, layer_costs): (Vec<_>, Vec<_>) = shared
            .of_image(index, plan, app_layer)
            .into_iter()
            .map(|l| {
                let cost = LayerCost { what: l.what.to_string(), compressed: l.layer.blob.size, files: l.files };
                ((l.layer, l.created_by, l.inherited), cost)
            })
            .unzip();
        let image = assemble(options, plan, on_base.map(|on_base| &on_base.base), layers, &annotations, &created)?;
        costs.push(ImageCost::of(&image, layer_costs, plans.len() > 1));
        images.push(image);
    }
    // Before anything is published or written beside the image (--sbom-dir): a failure here
    // takes back what the destinations were offered early.
    for warning in budget::check(&costs, options.max_size.as_ref())? {
        printer.warn(warning);
    }
    if !options.strip {
        for ((file, target), image) in options.binaries.iter().zip(&targets).zip(&images) {
            strip_hint(options, file, target, image, &staging, printer);
        }
    }
    let carries_bundle: Vec<bool> = shared.on_base.iter().map(|on_base| on_base.as_ref().is_none_or(OnBase::adds_bundle)).collect();
    let mut attachments =
        attach::sboms(options, printer, &plans, &programs, (&shared.base_plan, &carries_bundle), &images, (&dpkg, &created))?;
    let image = match images.len() {
        1 => ImageOrIndex::Image(images.pop().expect("one image")),
        _ => {
            let entries: Vec<_> = images.iter().map(|image| (&image.manifest, &image.platform)).collect();
            ImageOrIndex::Index { index: config::index_blob(&entries, &options.annotations)?, images }
        }
    };
    let attestations = signatures::Attestations {
        options,
        plans: &plans,
        programs: &programs,
        ca_version: shared.base_plan.ca_version.as_deref(),
        times: signatures::Times { started: started_on, finished: now_rfc3339() },
    };
    let attested = attestations.attach(&image, &attachments, options.sign.signer.as_deref())?;
    if !attested.is_empty() {
        let signed = if options.sign.signer.is_some() { "signed" } else { "unsigned" };
        printer.verbose(format_args!("{} {signed} attestation artifacts (provenance, SBOM)", attested.len()));
    }
    attachments.extend(attested);
    step("image documents made");
    let bases = shared.on_base.iter().map(|on_base| on_base.as_ref().map(|b| (b.base.name.clone(), b.base.manifest_digest))).collect();
    Ok(Packed {
        image,
        attachments,
        programs: plans.iter().map(BinaryPlan::program_paths).collect(),
        bases,
        _staging: staging,
        _base: base_image,
    })
}

/// The files packed as the programs `files`, in their order: each program itself, or with
/// `--strip` its stripped copy in `staging`, which the layer, the SBOM and the config then describe.
fn packed_files<'a>(
    files: impl Iterator<Item = &'a PathBuf>,
    options: &PackOptions,
    staging: &Staging,
    step: Step,
) -> Result<Vec<PathBuf>> {
    if !options.strip {
        return Ok(files.cloned().collect());
    }
    let mut programs = Vec::new();
    for file in files {
        // What is not a program is said as it is without --strip.
        elf::inspect(file)?;
        let stripped = staging.next_file();
        let size = elf::strip::strip(file, &stripped)?;
        step(&format!("{} stripped: {size} bytes", file.display()));
        programs.push(stripped);
    }
    Ok(programs)
}

/// Without `--strip`: one warning line when more than half of `file` is debug information, with
/// the sizes measured: the stripped program's layer is written (to `staging`, then dropped) to know
/// what the image would weigh. Best effort: what cannot be measured is not said.
fn strip_hint(options: &PackOptions, file: &Path, target: &str, image: &Image, staging: &Staging, printer: &Printer) {
    if printer.is_quiet() {
        return; // nothing would be said: nothing to measure
    }
    let Some((removable, size)) = elf::strip::removable_size(file) else { return };
    if removable * 2 <= size {
        return;
    }
    let name = elf::file_name(file);
    let mb = |bytes: u64| bytes as f64 / 1_000_000.0;
    let removed = format!("{name}: debug info is {:.1} of {:.1} MB", mb(removable), mb(size));
    let total = image.layers.iter().map(|layer| layer.blob.size).sum::<u64>() + image.config.size + image.manifest.size;
    let stripped = staging.next_file();
    let stripped_layer = staging.next_file();
    let measured = elf::strip::strip(file, &stripped)
        .ok()
        .and_then(|_| layers::app_layer(options, file, &stripped, target, &stripped_layer, &AtomicBool::new(false)).ok());
    let _ = std::fs::remove_file(&stripped);
    let _ = std::fs::remove_file(&stripped_layer);
    match (measured, image.layers.last()) {
        (Some(layer), Some(app_layer)) => {
            let estimate = total - app_layer.blob.size + layer.blob.size;
            printer.warn(format_args!(
                "{removed}; --strip would make the image about {:.1} MB instead of {:.1} MB",
                mb(estimate),
                mb(total)
            ));
        }
        _ => printer.warn(format_args!("{removed}; --strip would remove it")),
    }
}

/// Inspects and plans every binary (placed at `targets`) and `--also` program (packed from
/// `also`), writes the shared layers and offers them to `outputs`.
fn plan_and_prepare(
    options: &PackOptions,
    printer: &Printer,
    (targets, also): (&[String], &[PathBuf]),
    staging: &Staging,
    outputs: &mut Outputs,
    (dpkg, step): (&DpkgDb, Step),
) -> Result<(Vec<BinaryPlan>, SharedLayers, Option<BaseImage>)> {
    let binaries = options.binaries.iter().map(|path| elf::inspect(path)).collect::<Result<Vec<_>, _>>()?;
    plan::check_platforms(&binaries)?;
    let also = plan::place_also(options, &binaries, targets, also)?;
    step("inspected");
    let plans = binaries
        .into_iter()
        .zip(targets)
        .zip(also)
        .map(|((info, target), also)| BinaryPlan::new(options, printer, info, target.clone(), also, dpkg))
        .collect::<Result<Vec<_>>>()?;
    for plan in plans.iter().filter(|plan| !plan.also.is_empty()) {
        let paths: Vec<String> = plan.also.iter().map(|program| format!("/{} ({})", program.target, program.info.file.display())).collect();
        printer.verbose(format_args!("{} image: also {}", plan.info.platform, paths.join(", ")));
    }
    step("needs decided");
    let (base_image, bases) = on_base::open(options, &plans)?;
    if base_image.is_some() {
        step("base image read");
    }
    let shared = SharedLayers::write(options, &plans, bases, staging, step)?;
    for (plan, on_base) in plans.iter().zip(&shared.on_base) {
        if let Some(on_base) = on_base {
            let base = &on_base.base;
            printer.verbose(format_args!(
                "{} image: on {} ({}, {} layer{})",
                plan.info.platform,
                base.name,
                base.manifest_digest,
                base.layers.len(),
                if base.layers.len() == 1 { "" } else { "s" }
            ));
            on_base::say_added(printer, base, &plan.info.platform.to_string(), &on_base.what);
        }
    }
    let ready = shared.blobs();
    for (text, destination) in outputs.iter_mut() {
        destination.prepare(&ready).with_context(|| format!("writing {text}"))?;
    }
    Ok((plans, shared, base_image))
}

/// The config and manifest of `plan`'s image, over `layers` (bottom first, with their history, the
/// `--base` image's first), on `base` if it has one.
fn assemble(
    options: &PackOptions,
    plan: &BinaryPlan,
    base: Option<&BasePlatform>,
    layers: Vec<(Layer, String, bool)>,
    annotations: &BTreeMap<String, String>,
    created: &str,
) -> Result<Image> {
    let mut settings = match base {
        Some(base) => on_base::settings(options, base),
        None => options.settings.clone(),
    };
    settings.entrypoint = vec![format!("/{}", plan.target)];
    if !plan.ld_library_path.is_empty() && !settings.env_given.contains("LD_LIBRARY_PATH") {
        // The libraries sit where --library-path or ld.so.conf found them; the image has no
        // ld.so.cache, so ld.so there must be told where to look (after where a base looks).
        let ours = plan.ld_library_path.join(":");
        let path = match settings.env.get("LD_LIBRARY_PATH") {
            Some(base) => on_base::merge_path(base, &ours),
            None => ours,
        };
        settings.env.insert("LD_LIBRARY_PATH".to_string(), path);
    }
    let history: Vec<LayerHistory> =
        layers.iter().filter(|l| !l.2).map(|(layer, by, _)| LayerHistory { layer, created_by: by.clone() }).collect();
    let inherited = base.map(on_base::inherited);
    let config_blob = config::config_blob(&plan.info.platform, &settings, inherited.as_ref(), &history, created)?;
    let layers: Vec<Layer> = layers.into_iter().map(|(layer, _, _)| layer).collect();
    let manifest = config::manifest_blob(&config_blob, &layers, annotations)?;
    Ok(Image { platform: plan.info.platform.clone(), manifest, config: config_blob, layers })
}

/// The wall clock now, RFC 3339 in UTC.
fn now_rfc3339() -> String {
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    config::rfc3339(seconds)
}

/// Publishes to every destination in order, each with the signatures that name it.
fn publish(options: &PackOptions, packed: &Packed, outputs: &mut Outputs, printer: &Printer) -> Result<Vec<(String, Published)>> {
    let mut published = Vec::new();
    for ((text, destination), (_, spec)) in outputs.iter_mut().zip(&options.outputs) {
        let started = Instant::now();
        let mut attachments = packed.attachments.clone();
        if let Some(signer) = options.sign.signer.as_deref() {
            match signatures::docker_reference(spec, &options.tags) {
                Some(reference) => {
                    let signed = signatures::signatures(signer, &packed.image, &reference)?;
                    let key = signer.public_key().fingerprint();
                    printer.verbose(format_args!("{text}: {} signatures for {reference}, by the key {key}", signed.len()));
                    attachments.extend(signed);
                }
                None => printer
                    .warn(format_args!("{text}: a docker archive holds no signatures; sign an oci:, oci-archive: or docker:// output")),
            }
        }
        let written = destination.publish(&packed.image, &attachments).with_context(|| format!("writing {text}"))?;
        printer.debug(format_args!("{text} written in {:.1} ms", started.elapsed().as_secs_f64() * 1000.0));
        printer.verbose(format_args!("wrote {text}"));
        published.push((text.clone(), written));
    }
    Ok(published)
}
