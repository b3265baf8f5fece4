//! The pack pipeline: inspect → plan → layers and documents → publish. Each step adds context to
//! its errors; nothing is written to any destination until every input has been checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::cli::{ImageArgs, RegistryArgs};
use crate::dest::registry::RegistryContext;
use crate::dest::{self, DestSpec};
use crate::elf::{self, ElfInfo};
use crate::image::cache::{LayerCache, Origin};
use crate::image::config::{self, LayerHistory, RuntimeSettings, DEFAULT_PATH};
use crate::image::layer::{self, Layer};
use crate::image::{Artifact, Compression, Image, Staging};
use crate::printer::Printer;
use crate::rootfs::add::SystemFolder;
use crate::rootfs::base::{self, BaseOptions, CaBundle};
use crate::rootfs::{self, add, image_path, Content, FileTree};

pub const CA_BUNDLE_ANNOTATION: &str = "dev.scratchpack.ca-bundle.version";

/// Everything a pack needs, checked: built from the command line by [`PackOptions::from_args`].
#[derive(Clone, Debug)]
pub struct PackOptions {
    pub binaries: Vec<PathBuf>,
    pub outputs: Vec<(String, DestSpec)>,
    pub tags: Vec<String>,
    pub path: Option<String>,
    pub settings: RuntimeSettings,
    pub annotations: BTreeMap<String, String>,
    pub add: Vec<add::AddSpec>,
    pub base: BaseOptions,
    pub compression: Compression,
    pub source_date_epoch: u64,
    pub registry: RegistryContext,
    pub needs: crate::needs::NeedsOptions,
    pub sbom: SbomOptions,
}

/// What the SBOM of each image is made from, besides the image itself.
#[derive(Clone, Debug, Default)]
pub struct SbomOptions {
    pub format: crate::sbom::SbomFormat,
    pub dir: Option<PathBuf>,
    /// The package version, when cargo knows it.
    pub version: Option<String>,
    /// cargo metadata's `source` of each (crate, version), for exact purls.
    pub cargo_sources: Option<BTreeMap<(String, String), String>>,
}

/// The shared registry settings from the command line.
pub fn registry_context(args: &RegistryArgs, printer: &crate::printer::Printer) -> RegistryContext {
    RegistryContext {
        connect: crate::registry::ConnectOptions {
            registry_ca: args.registry_ca.clone(),
            insecure_registries: args.insecure_registry.clone(),
            timeout: args.timeout,
            attempts: args.retries,
            debug_log: printer.is_debug(),
            ..Default::default()
        },
        creds_flag: args.creds.clone(),
        quiet: printer.is_quiet(),
        mounts: Default::default(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OptionError {
    #[error("--{flag} {value:?}: {reason}")]
    Invalid { flag: &'static str, value: String, reason: &'static str },
    #[error("SOURCE_DATE_EPOCH={0:?}: not a whole number of seconds since 1970")]
    SourceDateEpoch(String),
    #[error("no --output given: say where the image goes")]
    NoOutput,
}

fn invalid(flag: &'static str, value: &str, reason: &'static str) -> OptionError {
    OptionError::Invalid { flag, value: value.to_string(), reason }
}

fn key_value(flag: &'static str, text: &str) -> Result<(String, String), OptionError> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(invalid(flag, text, "expected KEY=VALUE")),
    }
}

fn expose_port(text: &str) -> Result<String, OptionError> {
    let (port, proto) = text.split_once('/').unwrap_or((text, "tcp"));
    let valid_port = port.parse::<u16>().is_ok_and(|p| p > 0);
    if !valid_port || !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(invalid("expose", text, "expected PORT[/tcp|/udp|/sctp] with PORT from 1 to 65535"));
    }
    Ok(format!("{port}/{proto}"))
}

fn valid_user(user: &str) -> bool {
    let part_ok = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    match user.split_once(':') {
        Some((u, g)) => part_ok(u) && part_ok(g),
        None => part_ok(user),
    }
}

impl PackOptions {
    /// Checks every flag; `source_date_epoch` is the environment variable's value, if set.
    pub fn from_args(
        binaries: &[PathBuf],
        args: &ImageArgs,
        source_date_epoch: Option<&str>,
        printer: &crate::printer::Printer,
    ) -> Result<Self> {
        if args.outputs.is_empty() {
            return Err(OptionError::NoOutput.into());
        }
        let outputs = args.outputs.iter().map(|text| Ok((text.clone(), text.parse::<DestSpec>()?))).collect::<Result<Vec<_>>>()?;
        let tags = if args.tags.is_empty() { vec!["latest".to_string()] } else { args.tags.clone() };
        let user = args.user.clone().unwrap_or_else(|| "65532:65532".to_string());
        let ca_bundle = args.ca_bundle.clone().unwrap_or(CaBundle::Builtin);
        for tag in &tags {
            if !dest::spec::is_valid_tag(tag) {
                bail!(invalid("tag", tag, "a tag is 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'"));
            }
        }
        if !valid_user(&user) {
            bail!(invalid("user", &user, "expected UID[:GID] or NAME[:GROUP]"));
        }
        let mut env = BTreeMap::new();
        env.insert("PATH".to_string(), DEFAULT_PATH.to_string());
        if ca_bundle != CaBundle::None {
            env.insert("SSL_CERT_FILE".to_string(), format!("/{}", base::CA_BUNDLE_PATH));
        }
        for text in &args.env {
            let (key, value) = key_value("env", text)?;
            if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') || key.as_bytes()[0].is_ascii_digit() {
                bail!(invalid("env", text, "the name must be letters, digits and '_', not starting with a digit"));
            }
            env.insert(key, value);
        }
        if let Some(workdir) = &args.workdir {
            if !workdir.starts_with('/') {
                bail!(invalid("workdir", workdir, "must be an absolute path"));
            }
        }
        if let Some(path) = &args.path {
            image_path(path).with_context(|| format!("--path {path:?}"))?;
        }
        let labels = args.labels.iter().map(|t| key_value("label", t)).collect::<Result<BTreeMap<_, _>, _>>()?;
        let annotations = args.annotations.iter().map(|t| key_value("annotation", t)).collect::<Result<BTreeMap<_, _>, _>>()?;
        let exposed_ports = args.expose.iter().map(|t| expose_port(t)).collect::<Result<Vec<_>, _>>()?;
        let source_date_epoch = match source_date_epoch {
            None | Some("") => 0,
            Some(text) => text.parse().map_err(|_| OptionError::SourceDateEpoch(text.to_string()))?,
        };
        Ok(PackOptions {
            binaries: binaries.to_vec(),
            outputs,
            tags,
            path: args.path.clone(),
            settings: RuntimeSettings {
                user,
                env,
                entrypoint: Vec::new(),
                cmd: args.args.clone(),
                workdir: args.workdir.clone(),
                exposed_ports,
                labels,
            },
            annotations,
            add: args.add.clone(),
            base: BaseOptions { ca_bundle: Some(ca_bundle), extra_ca: args.extra_ca.clone() },
            compression: args.compression.unwrap_or_default(),
            source_date_epoch,
            registry: registry_context(&args.registry, printer),
            needs: crate::needs::NeedsOptions {
                sysroot: args.resolve.sysroot.clone(),
                library_path: args.resolve.library_dirs(),
                allow_missing: args.allow_missing,
                static_only: args.static_only,
                tzdata: args.tzdata.unwrap_or_default(),
            },
            sbom: SbomOptions {
                format: args.sbom.unwrap_or(crate::sbom::SbomFormat::None),
                dir: args.sbom_dir.clone(),
                ..Default::default()
            },
        })
    }

    /// The existing folder that holds the first `oci:` layout: layers staged there are hard-linked
    /// into the layout instead of copied.
    fn local_output_folder(&self) -> Option<PathBuf> {
        self.outputs.iter().find_map(|(_, spec)| match spec {
            DestSpec::OciLayout { dir, .. } => {
                let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
                parent.is_dir().then(|| parent.to_path_buf())
            }
            _ => None,
        })
    }
}

/// A packed image, with the staging folder that holds its layers until it is published.
pub struct Packed {
    pub artifact: Artifact,
    /// Artifacts attached to the image or its platform images: SBOMs.
    pub attachments: Vec<crate::image::referrers::Attachment>,
    pub binaries: Vec<ElfInfo>,
    _staging: Staging,
}

/// The destinations of a pack, each with the `--output` text that named it.
type Outputs = Vec<(String, Box<dyn dest::Destination>)>;

/// Packs the binaries and publishes the image to every destination. The destinations are opened
/// first: each is offered the layers that are final (base, zoneinfo, libraries, `--add`) while the
/// program's own layer is still being compressed, so that a layout can put them in place then and
/// not after. Returns the image and, per destination, the line that names what was written.
pub fn pack(options: &PackOptions, printer: &Printer) -> Result<(Packed, Vec<(String, String)>)> {
    let name = elf::file_name(&options.binaries[0]);
    let mut outputs: Outputs =
        options.outputs.iter().map(|(text, spec)| (text.clone(), dest::open(spec, &options.tags, &name, &options.registry))).collect();
    let packed = build(options, printer, &mut outputs)?;
    let lines = publish(&packed, &mut outputs, printer)?;
    Ok((packed, lines))
}

/// Inspects every binary, plans the trees and writes the layers and documents; offers the layers
/// shared by the binaries to `outputs` as soon as they are written.
fn build(options: &PackOptions, printer: &Printer, outputs: &mut Outputs) -> Result<Packed> {
    let started = std::time::Instant::now();
    let step = |what: &str| printer.debug(format_args!("{what} after {:.1} ms", started.elapsed().as_secs_f64() * 1000.0));
    let targets = options.binaries.iter().map(|file| binary_path(options.path.as_deref(), file)).collect::<Result<Vec<_>>>()?;
    let staging = Staging::near(options.local_output_folder().as_deref()).context("cannot create a staging folder for layers")?;
    let epoch = options.source_date_epoch;
    let cancel = AtomicBool::new(false);
    let (app_layers, (binaries, shared)) = std::thread::scope(|scope| {
        // The binaries' layers, the most work, start at once on their own thread: they hold the
        // files as they are. Here, meanwhile, each binary is inspected and what it needs decided and
        // written. If anything here fails (not an ELF, a missing library), the binaries' layers stop.
        let apps = scope.spawn(|| -> Result<Vec<Layer>> {
            let mut app_layers = Vec::new();
            for (file, target) in options.binaries.iter().zip(&targets) {
                let metadata = std::fs::metadata(file).with_context(|| format!("{}: cannot read", file.display()))?;
                if !metadata.is_file() {
                    // Inspection says what it is; never open a FIFO or a device here.
                    bail!("{}: not a regular file", file.display());
                }
                let mut app_tree = FileTree::new();
                app_tree
                    .add_file(target, Content::HostFile { path: file.clone(), size: metadata.len(), stamp: None }, 0o755, 0, 0)
                    .with_context(|| format!("placing {} at /{target}", file.display()))?;
                let app_layer = layer::write_layer_until(&app_tree, options.compression, epoch, &staging.next_file(), &cancel)
                    .with_context(|| format!("writing the layer of {}", file.display()))?;
                step(&format!("layer of {} written", file.display()));
                app_layers.push(app_layer);
            }
            Ok(app_layers)
        });
        let planned = (|| -> Result<_> {
            let binaries = options.binaries.iter().map(|path| elf::inspect(path)).collect::<Result<Vec<_>, _>>()?;
            check_platforms(&binaries)?;
            step("inspected");
            let shared = plan_and_write_the_rest(options, printer, &binaries, &targets, &staging, &step)?;
            let ready = shared.layers();
            for (text, destination) in outputs.iter_mut() {
                destination.prepare(&ready).with_context(|| format!("writing {text}"))?;
            }
            Ok((binaries, shared))
        })();
        if planned.is_err() {
            cancel.store(true, Ordering::Relaxed);
        }
        let apps = apps.join().expect("the layer thread does not panic");
        // An error of the planning side comes first: the binaries' layers may only have failed for it.
        planned.and_then(|planned| Ok((apps?, planned)))
    })?;
    let Shared { needs, uses_library_path, resolutions, base_plan, base_layer, zoneinfo_layers, extra_layer, libs_layers } = shared;
    let mut annotations = options.annotations.clone();
    if let Some(version) = &base_plan.ca_version {
        annotations.entry(CA_BUNDLE_ANNOTATION.to_string()).or_insert_with(|| version.clone());
    }
    let created = config::rfc3339(epoch);

    let mut images = Vec::new();
    let planned = binaries.iter().zip(&needs).zip(app_layers).zip(libs_layers).zip(uses_library_path);
    for ((((info, (target, _, zoneinfo_dir)), app_layer), libs_layer), library_dirs) in planned {
        let zoneinfo_layer =
            zoneinfo_dir.as_ref().and_then(|dir| zoneinfo_layers.iter().find(|(done, _)| done == dir).map(|(_, layer)| layer.clone()));
        let mut layers: Vec<(Layer, String)> = vec![(base_layer.clone(), "scratchpack: base files and CA bundle".to_string())];
        if let Some(zoneinfo) = zoneinfo_layer {
            layers.push((zoneinfo, "scratchpack: zoneinfo".to_string()));
        }
        if let Some(libs) = libs_layer {
            layers.push((libs, "scratchpack: loader and shared libraries".to_string()));
        }
        if let Some(extra) = &extra_layer {
            layers.push((extra.clone(), "scratchpack: --add files".to_string()));
        }
        layers.push((app_layer, format!("scratchpack: /{target}")));
        let mut settings = options.settings.clone();
        settings.entrypoint = vec![format!("/{target}")];
        if !library_dirs.is_empty() && !settings.env.contains_key("LD_LIBRARY_PATH") {
            // The libraries sit where --library-path or ld.so.conf found them; the image has no
            // ld.so.cache, so ld.so there must be told where to look.
            settings.env.insert("LD_LIBRARY_PATH".to_string(), library_dirs.join(":"));
        }
        let history: Vec<LayerHistory> = layers.iter().map(|(layer, by)| LayerHistory { layer, created_by: by.clone() }).collect();
        let config_blob = config::config_blob(&info.platform, &settings, &history, &created)?;
        let layers: Vec<Layer> = layers.into_iter().map(|(layer, _)| layer).collect();
        let manifest = config::manifest_blob(&config_blob, &layers, &annotations)?;
        images.push(Image { platform: info.platform.clone(), manifest, config: config_blob, layers });
    }
    let attachments = sboms(options, printer, &binaries, &needs, &resolutions, &base_plan, &images, &created)?;
    let artifact = if images.len() == 1 {
        Artifact::Image(images.pop().expect("one image"))
    } else {
        let entries: Vec<_> = images.iter().map(|image| (&image.manifest, &image.platform)).collect();
        let index = config::index_blob(&entries, &options.annotations)?;
        Artifact::Index { index, images }
    };
    step("image documents made");
    Ok(Packed { artifact, attachments, binaries, _staging: staging })
}

/// Everything but the binaries' own layers: what each binary needs and the layers that hold it.
struct Shared {
    needs: Vec<PlannedBinary>,
    /// Per binary: the folders ld.so must be told about (LD_LIBRARY_PATH).
    uses_library_path: Vec<Vec<String>>,
    resolutions: Vec<Option<crate::elf::resolve::Resolution>>,
    base_plan: base::Base,
    base_layer: Layer,
    zoneinfo_layers: Vec<(PathBuf, Layer)>,
    extra_layer: Option<Layer>,
    libs_layers: Vec<Option<Layer>>,
}

impl Shared {
    /// The blobs of the layers written here, each once.
    fn layers(&self) -> Vec<&crate::image::Blob> {
        let mut blobs = vec![&self.base_layer.blob];
        blobs.extend(self.zoneinfo_layers.iter().map(|(_, layer)| &layer.blob));
        blobs.extend(self.extra_layer.iter().map(|layer| &layer.blob));
        blobs.extend(self.libs_layers.iter().flatten().map(|layer| &layer.blob));
        blobs.sort_by_key(|blob| &blob.digest);
        blobs.dedup_by_key(|blob| &blob.digest);
        blobs
    }
}

/// Decides what each binary needs (libraries, zoneinfo), then writes the base, zoneinfo, --add and
/// library layers; those that do not change from one pack to the next come from the layer cache.
fn plan_and_write_the_rest(
    options: &PackOptions,
    printer: &Printer,
    binaries: &[ElfInfo],
    targets: &[String],
    staging: &Staging,
    step: &dyn Fn(&str),
) -> Result<Shared> {
    let mut needs = Vec::new();
    let mut uses_library_path = Vec::new();
    let mut resolutions = Vec::new();
    for (info, target) in binaries.iter().zip(targets) {
        let decided = crate::needs::decide(info, &format!("/{target}"), &options.needs)?;
        for hint in &decided.hints {
            printer.verbose(format_args!("{}: {}: {}", info.file.display(), hint.kind.as_str(), hint.evidence.join(", ")));
            if hint.kind == crate::hints::HintKind::Tls && options.base.ca_bundle == Some(CaBundle::None) {
                printer.warn(format_args!(
                    "{} looks like it verifies TLS certificates ({}), but --ca-bundle none leaves the image without CA certificates",
                    info.file.display(),
                    hint.evidence.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        let libs_tree = match &decided.resolution {
            Some(resolution) => {
                for missing in &resolution.missing {
                    printer.warn(format_args!(
                        "{}: {} (needed by {}) was not found; packing anyway",
                        info.file.display(),
                        missing.name,
                        missing.needed_by
                    ));
                }
                printer.verbose(format_args!("{}: bundling the loader and {} libraries", info.file.display(), resolution.libraries.len()));
                Some(rootfs::libs::plan(resolution, &options.needs.resolve_options().root)?)
            }
            None => None,
        };
        let mut library_dirs = Vec::new();
        if let Some(resolution) = &decided.resolution {
            if resolution.libraries.iter().any(|l| l.rule == crate::elf::resolve::Rule::LibraryPath) {
                library_dirs.extend(options.needs.library_path.iter().cloned());
            }
            library_dirs.extend(resolution.conf_dirs.iter().cloned());
        }
        uses_library_path.push(library_dirs);
        resolutions.push(decided.resolution.clone());
        needs.push((target.clone(), libs_tree, decided.zoneinfo.clone()));
    }
    step("needs decided");
    let base_plan = base::plan(&options.base)?;
    let extra_tree = add::plan(&options.add)?;
    let epoch = options.source_date_epoch;

    let cache = LayerCache::from_env();
    // A system folder (zoneinfo) also leaves the cache a snapshot, so that the next pack need not
    // walk it.
    let cached_layer = |what: &str, tree: &FileTree, mtime: u64, system_folder: Option<(&Path, &SystemFolder)>| -> Result<Layer> {
        let staging_file = staging.next_file();
        let (layer, origin) = match (&cache, system_folder) {
            (Some(cache), Some((source, folder))) => cache.folder_layer(source, folder, options.compression, mtime, &staging_file)?,
            (Some(cache), None) => cache.layer(tree, options.compression, mtime, &staging_file)?,
            (None, _) => (layer::write_layer(tree, options.compression, mtime, &staging_file)?, Origin::Written),
        };
        step(&format!("{what} {}", if origin == Origin::Cache { "taken from the cache" } else { "written" }));
        Ok(layer)
    };
    // The shared layers (base, each distinct zoneinfo folder) have mtime 0, so they are the same in
    // every image.
    let base_layer = cached_layer("base layer", &base_plan.tree, 0, None).context("writing the base layer")?;
    let mut zoneinfo_layers: Vec<(PathBuf, Layer)> = Vec::new();
    for dir in needs.iter().filter_map(|(_, _, z)| z.as_ref()) {
        if !zoneinfo_layers.iter().any(|(done, _)| done == dir) {
            let unchanged = cache.as_ref().and_then(|cache| {
                let staging_file = staging.next_file();
                cache.unchanged_folder_layer(dir, options.compression, 0, &staging_file)
            });
            let layer = match unchanged {
                Some(layer) => {
                    step("zoneinfo layer taken from the cache (folder unchanged since the last pack)");
                    layer
                }
                None => {
                    let folder = add::plan_system_folder(dir, crate::needs::ZONEINFO)?;
                    step("zoneinfo folder walked");
                    cached_layer("zoneinfo layer", &folder.tree, 0, Some((dir, &folder))).context("writing the zoneinfo layer")?
                }
            };
            zoneinfo_layers.push((dir.clone(), layer));
        }
    }
    let extra_layer = match extra_tree.is_empty() {
        true => None,
        false => {
            Some(layer::write_layer(&extra_tree, options.compression, epoch, &staging.next_file()).context("writing the --add layer")?)
        }
    };
    let mut libs_layers = Vec::new();
    for (info, (_, libs_tree, _)) in binaries.iter().zip(&needs) {
        libs_layers.push(match libs_tree {
            Some(tree) => Some(
                cached_layer("libraries layer", tree, epoch, None)
                    .with_context(|| format!("writing the libraries of {}", info.file.display()))?,
            ),
            None => None,
        });
    }
    Ok(Shared { needs, uses_library_path, resolutions, base_plan, base_layer, zoneinfo_layers, extra_layer, libs_layers })
}

/// What was planned for one binary: its image path, its libraries' tree, its zoneinfo folder.
type PlannedBinary = (String, Option<FileTree>, Option<PathBuf>);

/// One SBOM per platform image, attached to its manifest (and written to `--sbom-dir`).
#[allow(clippy::too_many_arguments)]
fn sboms(
    options: &PackOptions,
    printer: &Printer,
    binaries: &[ElfInfo],
    needs: &[PlannedBinary],
    resolutions: &[Option<crate::elf::resolve::Resolution>],
    base_plan: &base::Base,
    images: &[Image],
    created: &str,
) -> Result<Vec<crate::image::referrers::Attachment>> {
    use crate::sbom::{self, SbomFile, SbomFormat, SbomInput};
    if options.sbom.format == SbomFormat::None {
        return Ok(Vec::new());
    }
    let root = options.needs.resolve_options().root;
    let dpkg = sbom::DpkgDb::load(&root);
    let mut common = Vec::new();
    if let Some(rootfs::Entry { kind: rootfs::EntryKind::File(Content::Bytes(pem)), .. }) = base_plan.tree.get(base::CA_BUNDLE_PATH) {
        common.push(SbomFile {
            path: format!("/{}", base::CA_BUNDLE_PATH),
            sha256: crate::image::Digest::of(pem),
            sha1: sbom::sha1_hex(pem),
            size: pem.len() as u64,
            comment: base_plan.ca_version.as_ref().map(|v| format!("Mozilla CA bundle: {v}")),
            package: None,
        });
    }
    let mut attachments = Vec::new();
    for (((info, (target, _, _)), resolution), image) in binaries.iter().zip(needs).zip(resolutions).zip(images) {
        let hash_file = |path: &std::path::Path| sbom::hash_file(path).with_context(|| format!("{}: cannot read", path.display()));
        let mut files = common.clone();
        if let Some(resolution) = resolution {
            let interpreter =
                resolution.interpreter.iter().zip(&resolution.interpreter_file).map(|((image, _), file)| (image.clone(), file.clone()));
            for (image_path, host_path) in interpreter.chain(resolution.libraries.iter().map(|l| (l.image_path.clone(), l.file.clone()))) {
                let (sha256, sha1, size) = hash_file(&host_path)?;
                files.push(SbomFile { package: dpkg.owner(&image_path), path: image_path, sha256, sha1, size, comment: None });
            }
        }
        let crates = sbom::read_auditable(&info.file)?;
        if crates.is_none() {
            printer.info(format_args!("note: {} has no cargo-auditable data: its SBOM lists the image's files only", info.file.display()));
            printer.info(format_args!("hint: {}", sbom::NO_AUDIT_DATA_HINT));
        }
        let (binary_sha256, binary_sha1, _) = hash_file(&info.file)?;
        let name = info.file_name();
        let input = SbomInput {
            name: &name,
            version: options.sbom.version.as_deref(),
            platform: &info.platform,
            created,
            binary_path: &format!("/{target}"),
            binary_sha256,
            binary_sha1,
            crates: crates.as_deref(),
            cargo_sources: options.sbom.cargo_sources.as_ref(),
            files: &files,
        };
        let Some(document) = sbom::generate(options.sbom.format, &input)? else { continue };
        let file_name = format!("sbom.{}", options.sbom.format.file_extension());
        if let Some(dir) = &options.sbom.dir {
            std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create the SBOM folder", dir.display()))?;
            let platform = info.platform.to_string().replace('/', "-");
            let path = dir.join(format!("{name}-{platform}.{}", options.sbom.format.file_extension()));
            crate::dest::write_atomically(&path, |f| std::io::Write::write_all(f, &document.bytes))?;
            printer.verbose(format_args!("wrote {}", path.display()));
        }
        let payload = crate::image::Blob::from_bytes(document.media_type, document.bytes);
        attachments.push(crate::image::referrers::attach(&image.manifest, payload, &file_name, created));
    }
    Ok(attachments)
}

fn check_platforms(binaries: &[ElfInfo]) -> Result<()> {
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
/// binary's full path.
fn binary_path(path: Option<&str>, file: &std::path::Path) -> Result<String> {
    let full = match path {
        None => format!("/usr/local/bin/{}", elf::file_name(file)),
        Some(dir) if dir.ends_with('/') => format!("{dir}{}", elf::file_name(file)),
        Some(path) => path.to_string(),
    };
    Ok(rootfs::image_path(&full)?)
}

/// Publishes to every destination in order; returns `(output as given, reference line)` pairs.
fn publish(packed: &Packed, outputs: &mut Outputs, printer: &Printer) -> Result<Vec<(String, String)>> {
    let mut lines = Vec::new();
    for (text, destination) in outputs.iter_mut() {
        let started = std::time::Instant::now();
        let line = destination.publish(&packed.artifact, &packed.attachments).with_context(|| format!("writing {text}"))?;
        printer.debug(format_args!("{text} written in {:.1} ms", started.elapsed().as_secs_f64() * 1000.0));
        printer.verbose(format_args!("wrote {text}"));
        lines.push((text.clone(), line));
    }
    Ok(lines)
}

/// The `--json` summary of a pack.
pub fn summary_json(packed: &Packed, lines: &[(String, String)]) -> serde_json::Value {
    let artifact = &packed.artifact;
    let images: Vec<_> = artifact
        .images()
        .iter()
        .map(|image| {
            json!({
                "platform": image.platform.to_string(),
                "digest": image.manifest.digest.to_string(),
                "config": image.config.digest.to_string(),
                "layers": image.layers.iter().map(|l| json!({
                    "digest": l.blob.digest.to_string(),
                    "mediaType": l.blob.media_type,
                    "size": l.blob.size,
                    "diffId": l.diff_id.to_string(),
                    "uncompressedSize": l.uncompressed_size,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "digest": artifact.root().digest.to_string(),
        "mediaType": artifact.root().media_type,
        "size": artifact.total_size(),
        "platforms": artifact.images().iter().map(|i| i.platform.to_string()).collect::<Vec<_>>(),
        "images": images,
        "destinations": lines.iter().map(|(output, reference)| json!({"output": output, "reference": reference})).collect::<Vec<_>>(),
    })
}
