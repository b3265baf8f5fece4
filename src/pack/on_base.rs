//! Packing on a `--base` image: each binary's platform image of the base, the scratchpack files it
//! lacks, and the config carried on from the base's.
//!
//! The base's files stand. scratchpack adds the program, its libraries, zoneinfo and `--add`, and
//! its own passwd (with its nonroot user's home), group, nsswitch.conf, CA bundle and `/tmp` only
//! where the base's layers leave none; those go into a small layer of their own, over the base's.
//! The base's own CA bundle is replaced only by an explicit `--ca-bundle`; `--extra-ca` is
//! appended to it. The config keeps the base's Env (PATH and LD_LIBRARY_PATH merged: the base's
//! entries first, then scratchpack's that it lacks; `--env` replaces), User (unless `--user`, or
//! the base has none: then 65532), WorkingDir (unless `--workdir`), ExposedPorts (`--expose`
//! adds to them), StopSignal and Volumes; the entrypoint is the program and Cmd is `--arg` alone, as Docker drops a base's
//! Cmd when the entrypoint changes. The base's labels are dropped unless `--inherit-labels` (ko
//! issue 1395).

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::Value;

use super::plan::BinaryPlan;
use super::PackOptions;
use crate::base_image::{BaseImage, BaseImageError, BasePlatform};
use crate::image::config::{Inherited, RuntimeSettings};
use crate::printer::Printer;
use crate::rootfs::base::{Base, CA_BUNDLE_PATH};
use crate::rootfs::{Content, EntryKind, FileTree};

/// The CA bundle, as the message names it.
const CA_BUNDLE: &str = "CA bundle";

/// The base files scratchpack adds where a base lacks them, as the message names them.
const ADDED_WHERE_MISSING: &[(&str, &str)] = &[
    ("etc/passwd", "/etc/passwd"),
    ("etc/group", "/etc/group"),
    ("etc/nsswitch.conf", "/etc/nsswitch.conf"),
    (CA_BUNDLE_PATH, CA_BUNDLE),
    ("tmp", "/tmp"),
];

/// What scratchpack puts over a base image, besides the programs: for the message, the history and
/// the image's CA bundle annotation.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Added {
    /// The base files the base lacks, as the message names them.
    pub(crate) missing: Vec<&'static str>,
    /// What became of the base's own CA bundle.
    pub(crate) bundle: Option<BundleChange>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BundleChange {
    /// `--ca-bundle` was given: its bundle replaces the base's.
    Replaced,
    /// `--extra-ca` is appended to the base's bundle.
    Extended,
}

impl Added {
    pub(crate) fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.bundle.is_none()
    }

    /// Whether the image's CA bundle is scratchpack's (`--ca-bundle`'s).
    pub(crate) fn bundle_is_ours(&self) -> bool {
        self.missing.contains(&CA_BUNDLE) || self.bundle == Some(BundleChange::Replaced)
    }

    /// `lacks /etc/passwd, CA bundle, which scratchpack adds; its CA bundle is kept, with
    /// --extra-ca appended`.
    pub(crate) fn describe(&self) -> String {
        let mut said = Vec::new();
        if !self.missing.is_empty() {
            said.push(format!("lacks {}, which scratchpack adds", self.missing.join(", ")));
        }
        match self.bundle {
            Some(BundleChange::Replaced) => said.push("its CA bundle is replaced by --ca-bundle's".to_string()),
            Some(BundleChange::Extended) => said.push("its CA bundle is kept, with --extra-ca appended".to_string()),
            None => {}
        }
        said.join("; ")
    }
}

/// The base of each plan, in the plans' order, and the base image they come from (which must live
/// until the image is published: its files are the layers' blobs).
pub(crate) fn open(options: &PackOptions, plans: &[BinaryPlan]) -> Result<(Option<BaseImage>, Vec<Option<BasePlatform>>)> {
    let Some(spec) = &options.base_image else {
        return Ok((None, plans.iter().map(|_| None).collect()));
    };
    let image = BaseImage::open(spec, &options.registry)?;
    let bases = plans.iter().map(|plan| image.for_platform(&plan.info.platform).map(Some)).collect::<Result<Vec<_>>>()?;
    Ok((Some(image), bases))
}

/// The files of `base_plan` (scratchpack's base files) that `base` lacks: passwd, group,
/// nsswitch.conf, the CA bundle with the links to it that are missing too, and `/tmp`. With
/// scratchpack's passwd comes the home of its `nonroot` user, which that passwd names. A base
/// with its own CA bundle keeps it, but for an explicit `--ca-bundle` (`bundle_given`), whose
/// bundle replaces it; `extra_ca` (the `--extra-ca` certificates) is appended to a bundle kept.
pub(crate) fn missing_files(
    base_plan: &Base,
    base: &BasePlatform,
    (bundle_given, extra_ca): (bool, &[u8]),
) -> Result<(FileTree, Added), BaseImageError> {
    let present = &base.present;
    let mut tree = FileTree::new();
    let mut added = Added::default();
    let copy = |path: &str, tree: &mut FileTree| {
        let Some(entry) = base_plan.tree.get(path) else { return false };
        let placed = match &entry.kind {
            EntryKind::File(content) => tree.add_file(path, content.clone(), entry.mode, entry.uid, entry.gid),
            EntryKind::Symlink(target) => tree.add_symlink(path, target),
            EntryKind::Dir => tree.add_dir(path, entry.mode, entry.uid, entry.gid),
        };
        placed.expect("scratchpack's base paths do not conflict");
        true
    };
    for (path, name) in ADDED_WHERE_MISSING {
        if !present.contains(path) && copy(path, &mut tree) {
            added.missing.push(*name);
        }
    }
    if present.contains(CA_BUNDLE_PATH) && bundle_given && copy(CA_BUNDLE_PATH, &mut tree) {
        added.bundle = Some(BundleChange::Replaced);
    } else if present.contains(CA_BUNDLE_PATH) && !extra_ca.is_empty() {
        let Some(bundle) = present.kept(CA_BUNDLE_PATH) else {
            return Err(BaseImageError::Malformed {
                base: base.name.clone(),
                reason: format!("/{CA_BUNDLE_PATH} is not a regular file of at most 4 MiB, so --extra-ca cannot be appended to it"),
            });
        };
        let mut pem = bundle.to_vec();
        if !pem.is_empty() && !pem.ends_with(b"\n") {
            pem.push(b'\n');
        }
        pem.extend_from_slice(extra_ca);
        tree.add_file(CA_BUNDLE_PATH, Content::Bytes(pem.into()), 0o644, 0, 0).expect("a fixed path");
        added.bundle = Some(BundleChange::Extended);
    }
    if added.missing.contains(&"/etc/passwd") && !present.contains("home/nonroot") && copy("home/nonroot", &mut tree) {
        added.missing.push("/home/nonroot");
    }
    if added.bundle_is_ours() {
        let links: Vec<String> = base_plan
            .tree
            .iter()
            .filter(|(_, entry)| matches!(entry.kind, EntryKind::Symlink(_)))
            .map(|(path, _)| path.to_string())
            .collect();
        for link in links.iter().filter(|link| !present.contains(link)) {
            copy(link, &mut tree);
        }
    }
    Ok((tree, added))
}

/// Says, in one line, what scratchpack adds to the base of the `platform` image.
pub(crate) fn say_added(printer: &Printer, base: &BasePlatform, platform: &str, added: &Added) {
    if !added.is_empty() {
        printer.info(format_args!("base {} ({platform}): {}", base.name, added.describe()));
    }
}

/// What the image's config carries on from the base's: its diff IDs and history. A base whose
/// history records fewer layers than it has gets empty entries for the rest, so that the image's
/// own entries stay beside its own layers.
pub(crate) fn inherited(base: &BasePlatform) -> Inherited {
    let mut history = base.history.clone();
    let recorded = history.iter().filter(|entry| entry.empty_layer() != Some(true)).count();
    history.extend((recorded..base.layers.len()).map(|_| oci_spec::image::History::default()));
    Inherited { diff_ids: base.layers.iter().map(|l| l.diff_id).collect(), history }
}

/// The runtime settings of an image on `base`: the flags' over the base config's.
pub(crate) fn settings(options: &PackOptions, base: &BasePlatform) -> RuntimeSettings {
    let mut settings = options.settings.clone();
    let config = &base.config;
    let text = |key: &str| config[key].as_str().filter(|v| !v.is_empty()).map(str::to_string);
    for pair in config["Env"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        let Some((key, value)) = pair.split_once('=') else { continue };
        if settings.env_given.contains(key) {
            continue;
        }
        let value = match (key, settings.env.get(key)) {
            ("PATH", Some(ours)) => merge_path(value, ours),
            _ => value.to_string(),
        };
        settings.env.insert(key.to_string(), value);
    }
    if let (false, Some(user)) = (settings.user_given, text("User")) {
        settings.user = user;
    }
    if settings.workdir.is_none() {
        settings.workdir = text("WorkingDir");
    }
    settings.stop_signal = text("StopSignal");
    let mut volumes: Vec<String> = config["Volumes"].as_object().map(|volumes| volumes.keys().cloned().collect()).unwrap_or_default();
    volumes.sort();
    settings.volumes = volumes;
    let mut ports: Vec<String> = config["ExposedPorts"].as_object().map(|ports| ports.keys().cloned().collect()).unwrap_or_default();
    ports.extend(settings.exposed_ports.iter().cloned());
    ports.sort();
    ports.dedup();
    settings.exposed_ports = ports;
    if options.inherit_labels {
        let mut labels: BTreeMap<String, String> = config["Labels"]
            .as_object()
            .map(|labels| labels.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
            .unwrap_or_default();
        labels.extend(settings.labels);
        settings.labels = labels;
    }
    settings
}

/// The base's PATH (or LD_LIBRARY_PATH), then each of `ours` entries it lacks.
pub(crate) fn merge_path(base: &str, ours: &str) -> String {
    let mut entries: Vec<&str> = base.split(':').filter(|e| !e.is_empty()).collect();
    for entry in ours.split(':') {
        if !entry.is_empty() && !entries.contains(&entry) {
            entries.push(entry);
        }
    }
    entries.join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_history_short_of_its_layers_is_filled_with_empty_entries() {
        let layer = |n: u8| crate::image::Layer {
            blob: crate::image::Blob::from_bytes("application/vnd.oci.image.layer.v1.tar", vec![n]),
            diff_id: crate::image::Digest::of(&[n]),
            uncompressed_size: 1,
            compression: None,
        };
        let history: Vec<oci_spec::image::History> = serde_json::from_value(serde_json::json!([
            {"created_by": "ADD rootfs"}, {"created_by": "ENV A=1", "empty_layer": true}
        ]))
        .unwrap();
        let base = BasePlatform {
            name: "oci:base".into(),
            manifest_digest: crate::image::Digest::of(b"m"),
            layers: vec![layer(1), layer(2)],
            history,
            config: Value::Null,
            present: crate::base_image::PresentPaths::default(),
        };
        let inherited = inherited(&base);
        assert_eq!(
            serde_json::to_value(&inherited.history).unwrap(),
            serde_json::json!([{"created_by": "ADD rootfs"}, {"created_by": "ENV A=1", "empty_layer": true}, {}])
        );
        assert_eq!(inherited.diff_ids, [crate::image::Digest::of(&[1]), crate::image::Digest::of(&[2])]);
    }

    #[test]
    fn the_base_path_comes_first_and_ours_fills_in() {
        assert_eq!(merge_path("/opt/bin:/usr/bin:/bin", "/usr/local/bin:/usr/bin:/bin"), "/opt/bin:/usr/bin:/bin:/usr/local/bin");
        assert_eq!(merge_path("", "/usr/bin"), "/usr/bin");
    }
}
