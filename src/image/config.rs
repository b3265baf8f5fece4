//! The image config (what the runtime reads: platform, user, env, entrypoint, layers' diff IDs), the
//! image manifest and the image index, built with oci-spec's types.
//!
//! Every document is serialised once, through `serde_json::Value`, whose objects keep keys in byte
//! order, so the bytes (and the digest) do not depend on hash-map order; those exact bytes are what
//! destinations write and registries receive.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;

use oci_spec::image::{
    Arch, ConfigBuilder, DescriptorBuilder, HistoryBuilder, ImageConfigurationBuilder, ImageIndexBuilder, ImageManifestBuilder, MediaType,
    Os, PlatformBuilder, RootFsBuilder,
};
use serde::Serialize;

use super::blob::Blob;
use super::layer::Layer;
use crate::platform::Platform;

pub(crate) const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";

pub(crate) const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the runtime is told about the program, from the command line.
#[derive(Clone, Debug, Default)]
pub(crate) struct RuntimeSettings {
    pub(crate) user: String,
    /// Keyed by name, so a user's `PATH` replaces ours and the order is stable.
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) entrypoint: Vec<String>,
    pub(crate) cmd: Vec<String>,
    pub(crate) workdir: Option<String>,
    pub(crate) exposed_ports: Vec<String>,
    pub(crate) labels: BTreeMap<String, String>,
    /// A base image's StopSignal and Volumes, carried on (no flag sets them).
    pub(crate) stop_signal: Option<String>,
    pub(crate) volumes: Vec<String>,
    /// Whether the user was named (`--user`, metadata `user`): on a base, the base's User stands
    /// otherwise.
    pub(crate) user_given: bool,
    /// The variables named by `--env` (or metadata `env`): on a base, they replace the base's.
    pub(crate) env_given: BTreeSet<String>,
}

/// What an image built on a base carries on from the base's config: its layers' diff IDs and its
/// history, entries without a layer included, both before the image's own.
#[derive(Clone, Debug, Default)]
pub(crate) struct Inherited {
    pub(crate) diff_ids: Vec<super::Digest>,
    pub(crate) history: Vec<oci_spec::image::History>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot build the {what}: {reason}")]
pub(crate) struct DocumentError {
    what: &'static str,
    reason: String,
}

fn doc_err(what: &'static str) -> impl Fn(oci_spec::OciSpecError) -> DocumentError {
    move |e| DocumentError { what, reason: e.to_string() }
}

/// One serialisation, keys sorted at every level.
pub(crate) fn canonical_json<T: Serialize>(value: &T) -> Vec<u8> {
    let value = serde_json::to_value(value).expect("OCI documents serialise to JSON");
    serde_json::to_vec(&value).expect("a JSON value serialises")
}

/// `SOURCE_DATE_EPOCH` as RFC 3339 in UTC, the form the config's `created` uses.
pub fn rfc3339(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// The layers as the config records them, with a history entry each.
pub(crate) struct LayerHistory<'a> {
    pub(crate) layer: &'a Layer,
    pub(crate) created_by: String,
}

pub(crate) fn config_blob(
    platform: &Platform,
    settings: &RuntimeSettings,
    inherited: Option<&Inherited>,
    layers: &[LayerHistory],
    created: &str,
) -> Result<Blob, DocumentError> {
    let inherited = inherited.cloned().unwrap_or_default();
    let err = doc_err("image config");
    let mut config = ConfigBuilder::default()
        .user(settings.user.clone())
        .env(settings.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>())
        .entrypoint(settings.entrypoint.clone());
    if !settings.cmd.is_empty() {
        config = config.cmd(settings.cmd.clone());
    }
    if let Some(workdir) = &settings.workdir {
        config = config.working_dir(workdir.clone());
    }
    if !settings.exposed_ports.is_empty() {
        config = config.exposed_ports(settings.exposed_ports.clone());
    }
    if !settings.labels.is_empty() {
        config = config.labels(settings.labels.clone().into_iter().collect::<HashMap<_, _>>());
    }
    if let Some(signal) = &settings.stop_signal {
        config = config.stop_signal(signal.clone());
    }
    if !settings.volumes.is_empty() {
        config = config.volumes(settings.volumes.clone());
    }
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(inherited.diff_ids.iter().chain(layers.iter().map(|l| &l.layer.diff_id)).map(|d| d.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(&err)?;
    let own = layers
        .iter()
        .map(|l| HistoryBuilder::default().created(created.to_string()).created_by(l.created_by.clone()).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(&err)?;
    let history: Vec<_> = inherited.history.into_iter().chain(own).collect();
    let mut image = ImageConfigurationBuilder::default()
        .created(created.to_string())
        .architecture(Arch::from(platform.architecture.as_str()))
        .os(Os::from(platform.os.as_str()))
        .config(config.build().map_err(&err)?)
        .rootfs(rootfs)
        .history(history);
    if let Some(variant) = &platform.variant {
        image = image.variant(variant.clone());
    }
    Ok(Blob::from_bytes(CONFIG_MEDIA_TYPE, canonical_json(&image.build().map_err(&err)?)))
}

fn descriptor(blob: &Blob, platform: Option<&Platform>) -> Result<oci_spec::image::Descriptor, DocumentError> {
    let err = doc_err("descriptor");
    let digest = oci_spec::image::Digest::from_str(&blob.digest.to_string()).map_err(&err)?;
    let mut builder = DescriptorBuilder::default().media_type(MediaType::from(blob.media_type.as_str())).digest(digest).size(blob.size);
    if let Some(platform) = platform {
        let mut p = PlatformBuilder::default().architecture(Arch::from(platform.architecture.as_str())).os(Os::from(platform.os.as_str()));
        if let Some(variant) = &platform.variant {
            p = p.variant(variant.clone());
        }
        builder = builder.platform(p.build().map_err(&err)?);
    }
    builder.build().map_err(err)
}

fn annotations(map: &BTreeMap<String, String>) -> HashMap<String, String> {
    map.clone().into_iter().collect()
}

pub(crate) fn manifest_blob(config: &Blob, layers: &[Layer], annotation_map: &BTreeMap<String, String>) -> Result<Blob, DocumentError> {
    let err = doc_err("image manifest");
    let mut manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(config, None)?)
        .layers(layers.iter().map(|l| descriptor(&l.blob, None)).collect::<Result<Vec<_>, _>>()?);
    if !annotation_map.is_empty() {
        manifest = manifest.annotations(annotations(annotation_map));
    }
    Ok(Blob::from_bytes(MANIFEST_MEDIA_TYPE, canonical_json(&manifest.build().map_err(err)?)))
}

pub(crate) fn index_blob(manifests: &[(&Blob, &Platform)], annotation_map: &BTreeMap<String, String>) -> Result<Blob, DocumentError> {
    let err = doc_err("image index");
    let mut index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests.iter().map(|(blob, platform)| descriptor(blob, Some(platform))).collect::<Result<Vec<_>, _>>()?);
    if !annotation_map.is_empty() {
        index = index.annotations(annotations(annotation_map));
    }
    Ok(Blob::from_bytes(INDEX_MEDIA_TYPE, canonical_json(&index.build().map_err(err)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn canonical_json_sorts_keys_whatever_the_map() {
        let mut a = HashMap::new();
        for k in ["zeta", "alpha", "mid", "beta"] {
            a.insert(k.to_string(), 1);
        }
        assert_eq!(String::from_utf8(canonical_json(&a)).unwrap(), r#"{"alpha":1,"beta":1,"mid":1,"zeta":1}"#);
    }

    #[test]
    fn config_has_platform_user_and_sorted_env() {
        let settings = RuntimeSettings {
            user: "65532:65532".into(),
            env: [("PATH".to_string(), DEFAULT_PATH.to_string()), ("A".to_string(), "1".to_string())].into_iter().collect(),
            entrypoint: vec!["/usr/local/bin/app".into()],
            exposed_ports: vec!["8080/tcp".into()],
            ..Default::default()
        };
        let blob = config_blob(&Platform::linux("arm64", Some("v8")), &settings, None, &[], "1970-01-01T00:00:00Z").unwrap();
        let json: serde_json::Value = serde_json::from_slice(blob.bytes().unwrap()).unwrap();
        assert_eq!(json["architecture"], "arm64");
        assert_eq!(json["variant"], "v8");
        assert_eq!(json["os"], "linux");
        assert_eq!(json["config"]["User"], "65532:65532");
        assert_eq!(json["config"]["Env"], serde_json::json!(["A=1", format!("PATH={DEFAULT_PATH}")]));
        assert_eq!(json["config"]["Entrypoint"], serde_json::json!(["/usr/local/bin/app"]));
        assert_eq!(json["config"]["ExposedPorts"], serde_json::json!({"8080/tcp": {}}));
        assert!(json["config"].get("Cmd").is_none());
        assert_eq!(json["rootfs"]["type"], "layers");
    }
}
