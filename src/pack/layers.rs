//! The layers of a pack: each binary's own layer, and the layers the binaries share (base files and
//! CA bundle, zoneinfo, `--add` files, each image's libraries and `--also` programs). The shared
//! ones that do not change from one pack to the next come from the layer cache.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context, Result};

use super::budget::largest_files;
use super::on_base;
use super::plan::BinaryPlan;
use super::PackOptions;
use crate::base_image::BasePlatform;
use crate::image::cache::{LayerCache, Origin};
use crate::image::layer::{self, Layer};
use crate::image::shipped;
use crate::image::{Blob, Compression, Staging};
use crate::needs::{Zoneinfo, ZONEINFO};
use crate::rootfs::add::{self, SystemFolder};
use crate::rootfs::base::{self, Base};
use crate::rootfs::{caps, extra};
use crate::rootfs::{Content, FileTree};

/// Says how far the pack is, at `-vv`.
pub(crate) type Step<'a> = &'a (dyn Fn(&str) + Sync);

/// Each binary's own layer, in order: the file as it is (`programs`: the binary itself, or its
/// stripped copy), at `/target`, with `SOURCE_DATE_EPOCH` as its time and `--cap`'s capabilities.
/// Stops at once when `cancel` is set (the planning failed meanwhile).
pub(crate) fn write_app_layers(
    options: &PackOptions,
    programs: &[PathBuf],
    targets: &[String],
    staging: &Staging,
    cancel: &AtomicBool,
    step: Step,
) -> Result<Vec<Layer>> {
    let mut app_layers = Vec::new();
    for ((file, program), target) in options.binaries.iter().zip(programs).zip(targets) {
        app_layers.push(app_layer(options, file, program, target, &staging.next_file(), cancel)?);
        step(&format!("layer of {} written", file.display()));
    }
    Ok(app_layers)
}

/// The layer of one binary `file`: `program` (the binary itself, or its stripped copy) at
/// `/target`, written to `staging_file`.
pub(crate) fn app_layer(
    options: &PackOptions,
    file: &Path,
    program: &Path,
    target: &str,
    staging_file: &Path,
    cancel: &AtomicBool,
) -> Result<Layer> {
    let mut app_tree = FileTree::new();
    add_program(&mut app_tree, file, program, target)?;
    options.extra.settle_program_layer(&mut app_tree, target);
    if !options.caps.is_empty() {
        let program = app_tree.get_mut(target).expect("added just now");
        program.xattrs.insert(caps::XATTR.to_string(), options.caps.xattr());
    }
    layer::write_layer_until(&app_tree, options.compression, options.source_date_epoch, staging_file, cancel)
        .with_context(|| format!("writing the layer of {}", file.display()))
}

/// Places the program `file` (packed from `program`: itself, or its stripped copy) at `/target`
/// in `tree`, 0755 and owned by root.
fn add_program(tree: &mut FileTree, file: &Path, program: &Path, target: &str) -> Result<()> {
    // The real file, with its stamp: the layer opens it without following links and checks that it
    // is still this file (the program named may be a link, as `target/release/app` can be).
    let real = std::fs::canonicalize(program).with_context(|| format!("{}: cannot read", file.display()))?;
    let metadata = std::fs::symlink_metadata(&real).with_context(|| format!("{}: cannot read", file.display()))?;
    if !metadata.is_file() {
        // Inspection says what it is; never open a FIFO or a device here.
        bail!("{}: not a regular file", file.display());
    }
    tree.add_file(target, Content::host_file(real, &metadata), 0o755, 0, 0)
        .with_context(|| format!("placing {} at /{target}", file.display()))?;
    Ok(())
}

/// The layer of the `--also` programs of `plan`'s image, if it has any: below the main program's,
/// which changes more often. With `SOURCE_DATE_EPOCH` as its time, like the program's layer.
fn also_layer(options: &PackOptions, plan: &BinaryPlan, staging: &Staging) -> Result<Option<(Layer, FileTree)>> {
    if plan.also.is_empty() {
        return Ok(None);
    }
    let mut tree = FileTree::new();
    for program in &plan.also {
        add_program(&mut tree, &program.info.file, &program.packed, &program.target)?;
        options.extra.settle_program_layer(&mut tree, &program.target);
    }
    let layer = layer::write_layer(&tree, options.compression, options.source_date_epoch, &staging.next_file())
        .with_context(|| format!("writing the --also layer of the {} image", plan.info.platform))?;
    Ok(Some((layer, tree)))
}

/// The layers every image of the pack may share, and the base files they were made from.
pub(crate) struct SharedLayers {
    pub(crate) base_plan: Base,
    /// scratchpack's base layer: `None` when every image is on a `--base` image.
    pub(crate) base: Option<Layer>,
    /// Per plan, in the plans' order: the `--base` image it is on.
    pub(crate) on_base: Vec<Option<OnBase>>,
    /// One layer per distinct zoneinfo (the built-in zones, a host folder).
    pub(crate) zoneinfo: Vec<(Zoneinfo, Layer)>,
    pub(crate) extra: Option<Layer>,
    /// The files of the `--add` layer.
    extra_tree: FileTree,
    /// Per plan, in the plans' order: the layer of its libraries.
    pub(crate) libraries: Vec<Option<Layer>>,
    /// Per plan, in the plans' order: the layer of its `--also` programs, and their tree.
    pub(crate) also: Vec<Option<(Layer, FileTree)>>,
}

impl SharedLayers {
    /// Writes the base, zoneinfo, `--add` and library layers the plans need; `bases` is each plan's
    /// `--base` image, if any.
    pub(crate) fn write(
        options: &PackOptions,
        plans: &[BinaryPlan],
        bases: Vec<Option<BasePlatform>>,
        staging: &Staging,
        step: Step,
    ) -> Result<SharedLayers> {
        let base_plan = base::plan(&options.base)?;
        let targets: Vec<String> = plans.iter().map(|plan| plan.target.clone()).collect();
        let extra_tree = extra::plan(&options.extra, &base_plan.tree, &targets)?;
        let writer = Writer { cache: LayerCache::from_env(), staging, compression: options.compression, step };
        // The shared layers (base, each distinct zoneinfo) have mtime 0, so they are the same in
        // every image.
        let base = match bases.iter().all(Option::is_some) {
            true => None,
            false => Some(writer.tree("base layer", &base_plan.tree, 0).context("writing the base layer")?),
        };
        let mut on_base = Vec::new();
        let extra_ca = match bases.iter().any(Option::is_some) {
            true => base::extra_pem(&options.base)?,
            false => Vec::new(),
        };
        let bundle_given = options.base.ca_bundle.as_ref().is_some_and(|bundle| *bundle != base::CaBundle::None);
        for base in bases {
            on_base.push(match base {
                None => None,
                Some(base) => {
                    let (tree, what) = on_base::missing_files(&base_plan, &base, (bundle_given, &extra_ca))?;
                    let layer = match tree.is_empty() {
                        true => None,
                        false => Some((writer.tree("base files layer", &tree, 0).context("writing the base files layer")?, tree)),
                    };
                    Some(OnBase { base, added: layer, what })
                }
            });
        }
        let mut zoneinfo: Vec<(Zoneinfo, Layer)> = Vec::new();
        for zones in plans.iter().filter_map(|plan| plan.zoneinfo.as_ref()) {
            if !zoneinfo.iter().any(|(done, _)| *done == *zones) {
                let layer = match zones {
                    Zoneinfo::Builtin => writer
                        .tree("built-in zoneinfo layer", &crate::rootfs::zoneinfo::builtin_tree(), 0)
                        .context("writing the zoneinfo layer")?,
                    Zoneinfo::Folder(dir) => writer.zoneinfo(dir.as_path())?,
                };
                zoneinfo.push((zones.clone(), layer));
            }
        }
        let extra = match extra_tree.is_empty() {
            true => None,
            false => Some(
                layer::write_layer(&extra_tree, options.compression, options.source_date_epoch, &staging.next_file())
                    .context("writing the --add layer")?,
            ),
        };
        let mut libraries = Vec::new();
        for plan in plans {
            let layer = match &plan.libraries {
                Some(tree) => Some(
                    writer
                        .tree("libraries layer", tree, options.source_date_epoch)
                        .with_context(|| format!("writing the libraries of {}", plan.info.file.display()))?,
                ),
                None => None,
            };
            libraries.push(layer);
        }
        let also = plans.iter().map(|plan| also_layer(options, plan, staging)).collect::<Result<Vec<_>>>()?;
        Ok(SharedLayers { base_plan, base, on_base, zoneinfo, extra, extra_tree, libraries, also })
    }

    /// The blobs of these layers, each once: what a destination may put in place early.
    pub(crate) fn blobs(&self) -> Vec<&Blob> {
        let mut blobs: Vec<&Blob> = self.base.iter().map(|layer| &layer.blob).collect();
        for on_base in self.on_base.iter().flatten() {
            blobs.extend(on_base.base.layers.iter().map(|layer| &layer.blob));
            blobs.extend(on_base.added.iter().map(|(layer, _)| &layer.blob));
        }
        blobs.extend(self.zoneinfo.iter().map(|(_, layer)| &layer.blob));
        blobs.extend(self.extra.iter().map(|layer| &layer.blob));
        blobs.extend(self.libraries.iter().flatten().map(|layer| &layer.blob));
        blobs.extend(self.also.iter().flatten().map(|(layer, _)| &layer.blob));
        blobs.sort_by_key(|blob| &blob.digest);
        blobs.dedup_by_key(|blob| &blob.digest);
        blobs
    }

    /// The layers of the image of `plan` (the `index`th), bottom first, the binary's own
    /// `app_layer` last; each with what it holds.
    pub(crate) fn of_image(&self, index: usize, plan: &BinaryPlan, app_layer: Layer) -> Vec<ImageLayer> {
        let layer = |layer: &Layer, created_by: &str, what, files| ImageLayer {
            layer: layer.clone(),
            created_by: created_by.to_string(),
            what,
            files,
            inherited: false,
        };
        let mut layers = Vec::new();
        match (&self.on_base[index], &self.base) {
            (Some(on_base), _) => {
                for base_layer in &on_base.base.layers {
                    layers.push(ImageLayer { inherited: true, ..layer(base_layer, "", "base image layer", Vec::new()) });
                }
                if let Some((added, tree)) = &on_base.added {
                    let by = format!("scratchpack: the base {}", on_base.what.describe());
                    layers.push(layer(added, &by, "base files layer", largest_files(tree)));
                }
            }
            (None, Some(base)) => {
                layers.push(layer(base, "scratchpack: base files and CA bundle", "base layer", largest_files(&self.base_plan.tree)))
            }
            // Not made: every image is on a --base image.
            (None, None) => {}
        }
        let zoneinfo = plan.zoneinfo.as_ref().and_then(|zones| self.zoneinfo.iter().find(|(done, _)| *done == *zones));
        if let Some((_, zoneinfo)) = zoneinfo {
            // No files listed: the layer may come from the cache without its folder being walked.
            layers.push(layer(zoneinfo, "scratchpack: zoneinfo", "zoneinfo layer", Vec::new()));
        }
        if let (Some(libraries), Some(tree)) = (&self.libraries[index], &plan.libraries) {
            layers.push(layer(libraries, "scratchpack: loader and shared libraries", "libraries layer", largest_files(tree)));
        }
        if let Some(extra) = &self.extra {
            layers.push(layer(extra, "scratchpack: --add files", "--add layer", largest_files(&self.extra_tree)));
        }
        if let Some((also, tree)) = &self.also[index] {
            let paths: Vec<String> = plan.also.iter().map(|program| format!("/{}", program.target)).collect();
            layers.push(layer(also, &format!("scratchpack: --also {}", paths.join(" ")), "--also layer", largest_files(tree)));
        }
        let program = vec![(format!("/{}", plan.target), plan.info.size)];
        layers.push(ImageLayer {
            layer: app_layer,
            created_by: format!("scratchpack: /{}", plan.target),
            what: "program layer",
            files: program,
            inherited: false,
        });
        layers
    }
}

/// One layer of an image: the layer, its history line, and for the size budget's messages its
/// name and its files with their sizes, largest first.
pub(crate) struct ImageLayer {
    pub(crate) layer: Layer,
    pub(crate) created_by: String,
    pub(crate) what: &'static str,
    pub(crate) files: Vec<(String, u64)>,
    /// A layer of the `--base` image: its history is the base's.
    pub(crate) inherited: bool,
}

/// An image's `--base` image, and the layer of scratchpack's base files it lacks, if any, with
/// what they are.
pub(crate) struct OnBase {
    pub(crate) base: BasePlatform,
    pub(crate) added: Option<(Layer, FileTree)>,
    pub(crate) what: on_base::Added,
}

impl OnBase {
    /// Whether the image's CA bundle is scratchpack's.
    pub(crate) fn adds_bundle(&self) -> bool {
        self.what.bundle_is_ours()
    }
}

/// Writes shared layers through the cache when there is one.
struct Writer<'a> {
    cache: Option<LayerCache>,
    staging: &'a Staging,
    compression: Compression,
    step: Step<'a>,
}

impl Writer<'_> {
    /// The layer of `tree`: shipped with scratchpack, from the cache, or written (and then cached).
    fn tree(&self, what: &str, tree: &FileTree, mtime: u64) -> Result<Layer> {
        let staging_file = self.staging.next_file();
        if let Some(shipped) = shipped::layer(tree, self.compression, mtime, &staging_file) {
            (self.step)(&format!("{what} shipped with scratchpack"));
            return Ok(shipped?);
        }
        let (layer, origin) = match &self.cache {
            Some(cache) => cache.layer(tree, self.compression, mtime, &staging_file)?,
            None => (layer::write_layer(tree, self.compression, mtime, &staging_file)?, Origin::Written),
        };
        self.said(what, origin);
        Ok(layer)
    }

    /// The zoneinfo layer of `dir`: without walking it when the cache's snapshot says it has not
    /// changed; else walked, and a snapshot left for the next pack.
    fn zoneinfo(&self, dir: &Path) -> Result<Layer> {
        let unchanged =
            self.cache.as_ref().and_then(|cache| cache.unchanged_folder_layer(dir, self.compression, 0, &self.staging.next_file()));
        if let Some(layer) = unchanged {
            (self.step)("zoneinfo layer taken from the cache (folder unchanged since the last pack)");
            return Ok(layer);
        }
        let folder: SystemFolder = add::plan_system_folder(dir, ZONEINFO)?;
        (self.step)("zoneinfo folder walked");
        let staging_file = self.staging.next_file();
        let (layer, origin) = match &self.cache {
            Some(cache) => cache.folder_layer(dir, &folder, self.compression, 0, &staging_file),
            None => layer::write_layer(&folder.tree, self.compression, 0, &staging_file).map(|layer| (layer, Origin::Written)),
        }
        .context("writing the zoneinfo layer")?;
        self.said("zoneinfo layer", origin);
        Ok(layer)
    }

    fn said(&self, what: &str, origin: Origin) {
        (self.step)(&format!("{what} {}", if origin == Origin::Cache { "taken from the cache" } else { "written" }));
    }
}
