//! `[package.metadata.scratchpack]` and `[workspace.metadata.scratchpack]`: the keys (the long
//! flags' names, plural for the repeatable ones; any other key is an error that names it), package
//! keys over workspace keys, and flags over both. Paths in the metadata are the package's.
//!
//! Owns the metadata schema and its merge into [`ImageArgs`]; running cargo, and what is built,
//! are `cargo`'s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use serde::Deserialize;

use crate::cli::ImageArgs;
use crate::pack::AlsoSpec;

/// `[package.metadata.scratchpack]` and `[workspace.metadata.scratchpack]`: the long flags'
/// names, plural for the repeatable ones. Any other key is an error that names it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct MetadataConfig {
    pub(crate) repository: Option<String>,
    pub(crate) outputs: Option<Vec<String>>,
    pub(crate) tags: Option<Vec<String>>,
    pub(crate) bins: Option<Vec<String>>,
    pub(crate) also_bins: Option<Vec<String>>,
    pub(crate) targets: Option<Vec<String>>,
    pub(crate) path: Option<String>,
    pub(crate) also: Option<Vec<String>>,
    pub(crate) user: Option<String>,
    pub(crate) env: Option<BTreeMap<String, String>>,
    pub(crate) workdir: Option<String>,
    pub(crate) expose: Option<Vec<String>>,
    pub(crate) labels: Option<BTreeMap<String, String>>,
    pub(crate) annotations: Option<BTreeMap<String, String>>,
    pub(crate) args: Option<Vec<String>>,
    pub(crate) add: Option<Vec<String>>,
    pub(crate) mkdir: Option<Vec<String>>,
    pub(crate) chown_to_user: Option<Vec<String>>,
    pub(crate) caps: Option<Vec<String>>,
    pub(crate) ca_bundle: Option<String>,
    pub(crate) extra_ca: Option<Vec<String>>,
    pub(crate) compression: Option<String>,
    pub(crate) tzdata: Option<String>,
    pub(crate) tzdata_source: Option<String>,
    pub(crate) static_only: Option<bool>,
    pub(crate) allow_missing: Option<bool>,
    pub(crate) strip: Option<bool>,
    pub(crate) sysroot: Option<String>,
    pub(crate) library_path: Option<Vec<String>>,
    pub(crate) sbom: Option<String>,
    pub(crate) sbom_dir: Option<String>,
    pub(crate) max_size: Option<MetadataSize>,
    pub(crate) created: Option<String>,
    pub(crate) sign_key: Option<String>,
    pub(crate) provenance: Option<bool>,
    pub(crate) base: Option<String>,
    /// Per binary name, the base image of its image instead of `base` (ko's `baseImageOverrides`).
    pub(crate) base_overrides: Option<BTreeMap<String, String>>,
    pub(crate) inherit_labels: Option<bool>,
}

/// `max-size`: a size as `--max-size` takes it (`"10MB"`), or a number of bytes.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum MetadataSize {
    Bytes(u64),
    Text(String),
}

impl MetadataConfig {
    /// Package keys over workspace keys.
    pub(super) fn over(self, workspace: MetadataConfig) -> MetadataConfig {
        macro_rules! pick {
            ($($field:ident),*) => { MetadataConfig { $($field: self.$field.or(workspace.$field)),* } };
        }
        pick!(
            repository,
            outputs,
            tags,
            bins,
            also_bins,
            targets,
            path,
            also,
            user,
            env,
            workdir,
            expose,
            labels,
            annotations,
            args,
            add,
            mkdir,
            chown_to_user,
            caps,
            ca_bundle,
            extra_ca,
            compression,
            tzdata,
            tzdata_source,
            static_only,
            allow_missing,
            strip,
            sysroot,
            library_path,
            sbom,
            sbom_dir,
            max_size,
            created,
            sign_key,
            provenance,
            base,
            base_overrides,
            inherit_labels
        )
    }
}

pub(super) fn parse_config(value: Option<&serde_json::Value>, place: &str) -> Result<MetadataConfig> {
    match value.and_then(|v| v.get("scratchpack")) {
        None => Ok(MetadataConfig::default()),
        Some(table) => serde_json::from_value(table.clone()).map_err(|e| anyhow!("{place}: {e}")),
    }
}

/// The workspace's own packages, in `workspace_members`' order (the order `--no-deps` lists them in;
/// a resolved `packages` list is sorted by id and holds the dependencies too).
/// Flags over metadata: a flag given replaces the metadata's value; maps merge, flags winning.
pub(super) fn merge(cli: &ImageArgs, config: &MetadataConfig, base_dir: &Path) -> Result<ImageArgs> {
    let mut merged = cli.clone();
    let relative = |p: &str| if Path::new(p).is_absolute() { p.to_string() } else { base_dir.join(p).display().to_string() };
    if merged.outputs.is_empty() {
        merged.outputs = config.outputs.clone().unwrap_or_default();
    }
    if merged.tags.is_empty() {
        merged.tags = config.tags.clone().unwrap_or_default();
    }
    merged.path = merged.path.or(config.path.clone());
    if merged.also.is_empty() {
        for spec in config.also.clone().unwrap_or_default() {
            let mut also: AlsoSpec = spec.parse().map_err(|e| anyhow!("[package.metadata.scratchpack] also: {e}"))?;
            also.file = PathBuf::from(relative(&also.file.to_string_lossy()));
            merged.also.push(also);
        }
    }
    merged.created = merged.created.or(config.created.clone());
    merged.user = merged.user.or(config.user.clone());
    merged.workdir = merged.workdir.or(config.workdir.clone());
    let merge_pairs = |flags: &[String], table: &Option<BTreeMap<String, String>>| -> Vec<String> {
        let mut map: BTreeMap<String, String> = table.clone().unwrap_or_default();
        for flag in flags {
            if let Some((k, v)) = flag.split_once('=') {
                map.insert(k.to_string(), v.to_string());
            }
        }
        let malformed = flags.iter().filter(|f| !f.contains('=')).cloned();
        map.into_iter().map(|(k, v)| format!("{k}={v}")).chain(malformed).collect()
    };
    merged.env = merge_pairs(&cli.env, &config.env);
    merged.labels = merge_pairs(&cli.labels, &config.labels);
    if merged.expose.is_empty() {
        merged.expose = config.expose.clone().unwrap_or_default();
    }
    if merged.args.is_empty() {
        merged.args = config.args.clone().unwrap_or_default();
    }
    if merged.add.is_empty() {
        for spec in config.add.clone().unwrap_or_default() {
            let (source, rest) = spec
                .split_once(':')
                .ok_or_else(|| anyhow!("[package.metadata.scratchpack] add {spec:?}: expected SRC:DEST[:MODE[:UID[:GID]]]"))?;
            merged.add.push(
                format!("{}:{rest}", relative(source)).parse().map_err(|e| anyhow!("[package.metadata.scratchpack] add {spec:?}: {e}"))?,
            );
        }
    }
    if merged.mkdir.is_empty() {
        for spec in config.mkdir.clone().unwrap_or_default() {
            merged.mkdir.push(spec.parse().map_err(|e| anyhow!("[package.metadata.scratchpack] mkdir: {e}"))?);
        }
    }
    if merged.chown_to_user.is_empty() {
        merged.chown_to_user = config.chown_to_user.clone().unwrap_or_default();
    }
    if merged.caps.is_empty() {
        merged.caps = config.caps.clone().unwrap_or_default();
    }
    if merged.ca_bundle.is_none() {
        merged.ca_bundle = config.ca_bundle.as_deref().map(|v| match v {
            "builtin" | "host" | "none" => v.parse().expect("infallible"),
            path => relative(path).parse().expect("infallible"),
        });
    }
    if merged.extra_ca.is_empty() {
        merged.extra_ca = config.extra_ca.clone().unwrap_or_default().iter().map(|p| PathBuf::from(relative(p))).collect();
    }
    if merged.compression.is_none() {
        merged.compression = match config.compression.as_deref() {
            None => None,
            Some(text) => {
                Some(text.parse().map_err(|_| anyhow!("[package.metadata.scratchpack] compression {text:?}: expected gzip or zstd"))?)
            }
        };
    }
    if merged.tzdata.is_none() {
        merged.tzdata = match config.tzdata.as_deref() {
            None => None,
            Some(text) => {
                Some(text.parse().map_err(|_| anyhow!("[package.metadata.scratchpack] tzdata {text:?}: expected auto, yes or no"))?)
            }
        };
    }
    if merged.tzdata_source.is_none() {
        merged.tzdata_source = config.tzdata_source.as_deref().map(|v| match v {
            "builtin" | "host" => v.parse().expect("infallible"),
            path => relative(path).parse().expect("infallible"),
        });
    }
    if merged.base.is_none() {
        merged.base = config.base.as_deref().map(|text| package_base(text, base_dir));
    }
    merged.inherit_labels |= config.inherit_labels.unwrap_or(false);
    merged.static_only |= config.static_only.unwrap_or(false);
    merged.allow_missing |= config.allow_missing.unwrap_or(false);
    merged.strip |= config.strip.unwrap_or(false);
    if merged.resolve.sysroot.is_none() {
        merged.resolve.sysroot = config.sysroot.as_deref().map(|p| PathBuf::from(relative(p)));
    }
    if merged.resolve.library_path.is_empty() {
        merged.resolve.library_path = config.library_path.clone().unwrap_or_default();
    }
    if merged.sbom.is_none() {
        merged.sbom = Some(match config.sbom.as_deref() {
            // Rust projects get an SBOM by default, as ko's users do.
            None => crate::sbom::SbomFormat::Spdx,
            Some(text) => {
                text.parse().map_err(|_| anyhow!("[package.metadata.scratchpack] sbom {text:?}: expected spdx, cyclonedx or none"))?
            }
        });
    }
    if merged.sbom_dir.is_none() {
        merged.sbom_dir = config.sbom_dir.as_deref().map(|p| PathBuf::from(relative(p)));
    }
    if merged.sign_key.is_none() {
        merged.sign_key = config.sign_key.as_deref().map(|p| PathBuf::from(relative(p)));
    }
    // With a key, a release gets its provenance too, unless the metadata says `provenance = false`.
    let has_key = merged.sign_key.is_some() || std::env::var(crate::sign::key::KEY_ENV).is_ok_and(|k| !k.trim().is_empty());
    merged.provenance = merged.provenance || config.provenance.unwrap_or(has_key);
    if merged.max_size.is_none() {
        merged.max_size = match &config.max_size {
            None => None,
            Some(MetadataSize::Bytes(bytes)) => Some(bytes.to_string()),
            Some(MetadataSize::Text(text)) => Some(text.clone()),
        }
        .map(|text| text.parse().map_err(|e| anyhow!("[package.metadata.scratchpack] max-size: {e}")))
        .transpose()?;
    }
    Ok(merged)
}

/// A base image named in the metadata: a relative layout or archive path is the package's.
pub(super) fn package_base(text: &str, package_dir: &Path) -> String {
    for transport in ["oci:", "oci-archive:"] {
        if let Some(path) = text.strip_prefix(transport).filter(|path| !path.starts_with('/')) {
            return format!("{transport}{}", package_dir.join(path).display());
        }
    }
    text.to_string()
}

/// The base of `bin`'s image: `--base`, else its `base-overrides` entry, else `base`.
pub(super) fn base_of(flag: Option<&str>, merged: Option<&str>, config: &MetadataConfig, bin: &str, package_dir: &Path) -> Option<String> {
    if flag.is_some() {
        return flag.map(str::to_string);
    }
    let overridden = config.base_overrides.as_ref().and_then(|overrides| overrides.get(bin));
    overridden.map(|text| package_base(text, package_dir)).or_else(|| merged.map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_gets_the_flag_base_else_its_override_else_the_base() {
        let config = MetadataConfig {
            base: Some("oci:base".into()),
            base_overrides: Some([("tool".to_string(), "oci-archive:debug.tar:1".to_string())].into_iter().collect()),
            ..Default::default()
        };
        let merged = merge(&ImageArgs::default(), &config, Path::new("/pkg")).unwrap();
        assert_eq!(merged.base.as_deref(), Some("oci:/pkg/base"));
        let base = |flag: Option<&str>, bin| base_of(flag, merged.base.as_deref(), &config, bin, Path::new("/pkg"));
        assert_eq!(base(None, "server").as_deref(), Some("oci:/pkg/base"));
        assert_eq!(base(None, "tool").as_deref(), Some("oci-archive:/pkg/debug.tar:1"));
        assert_eq!(base(Some("oci:/b"), "tool").as_deref(), Some("oci:/b"));
    }

    #[test]
    fn unknown_metadata_keys_are_named() {
        let value = serde_json::json!({"scratchpack": {"repository": "r", "tagz": ["x"]}});
        let err = parse_config(Some(&value), "Cargo.toml: [package.metadata.scratchpack]").unwrap_err().to_string();
        assert!(err.starts_with("Cargo.toml: [package.metadata.scratchpack]: unknown field `tagz`, expected one of"), "{err}");
    }

    #[test]
    fn flags_override_metadata_and_maps_merge() {
        let config = MetadataConfig {
            user: Some("1000:1000".into()),
            env: Some([("RUST_LOG".to_string(), "info".to_string()), ("A".to_string(), "1".to_string())].into()),
            compression: Some("zstd".into()),
            tags: Some(vec!["{version}".into()]),
            ..Default::default()
        };
        let cli = ImageArgs { user: Some("0:0".into()), env: vec!["A=2".into()], ..Default::default() };
        let merged = merge(&cli, &config, Path::new("/pkg")).unwrap();
        assert_eq!(merged.user.as_deref(), Some("0:0"));
        assert_eq!(merged.env, ["A=2", "RUST_LOG=info"]);
        assert_eq!(merged.compression, Some(crate::image::Compression::Zstd));
        assert_eq!(merged.tags, ["{version}"]);
    }

    #[test]
    fn a_sign_key_in_the_metadata_turns_provenance_on_unless_the_metadata_says_no() {
        let parse = |value: serde_json::Value| parse_config(Some(&serde_json::json!({"scratchpack": value})), "Cargo.toml").unwrap();
        let keyed = parse(serde_json::json!({"sign-key": "keys/release.pem"}));
        let merged = merge(&ImageArgs::default(), &keyed, Path::new("/pkg")).unwrap();
        assert_eq!(merged.sign_key, Some(PathBuf::from("/pkg/keys/release.pem")));
        assert!(merged.provenance);
        let without = parse(serde_json::json!({"sign-key": "k.pem", "provenance": false}));
        assert!(!merge(&ImageArgs::default(), &without, Path::new("/pkg")).unwrap().provenance);
        let flag = ImageArgs { provenance: true, ..Default::default() };
        assert!(merge(&flag, &without, Path::new("/pkg")).unwrap().provenance, "the flag wins");
    }

    #[test]
    fn max_size_comes_from_metadata_as_text_or_bytes_and_the_flag_wins() {
        let parse = |value: serde_json::Value| parse_config(Some(&serde_json::json!({"scratchpack": {"max-size": value}})), "Cargo.toml");
        let merged =
            |config: &MetadataConfig, cli: &ImageArgs| merge(cli, config, Path::new("/pkg")).map(|args| args.max_size.map(|s| s.bytes));
        let none = ImageArgs::default();
        assert_eq!(merged(&parse(serde_json::json!("10MB")).unwrap(), &none).unwrap(), Some(10_000_000));
        assert_eq!(merged(&parse(serde_json::json!(1048576)).unwrap(), &none).unwrap(), Some(1_048_576));
        let flag = ImageArgs { max_size: Some("2MiB".parse().unwrap()), ..Default::default() };
        assert_eq!(merged(&parse(serde_json::json!("10MB")).unwrap(), &flag).unwrap(), Some(2 << 20));
        let err = merged(&parse(serde_json::json!("10XB")).unwrap(), &none).unwrap_err().to_string();
        assert_eq!(err, "[package.metadata.scratchpack] max-size: \"10XB\" is not a size such as 10MB, 10MiB, 500kB or 1048576 (bytes)");
    }

    #[test]
    fn also_in_metadata_is_relative_to_the_package_and_the_flag_wins() {
        let config = MetadataConfig { also: Some(vec!["tools/hc:/bin/".into()]), ..Default::default() };
        let merged = merge(&ImageArgs::default(), &config, Path::new("/pkg")).unwrap();
        assert_eq!(merged.also, [AlsoSpec { file: "/pkg/tools/hc".into(), dest: Some("/bin/".into()) }]);
        let flag = ImageArgs { also: vec!["/x/hc".parse().unwrap()], ..Default::default() };
        assert_eq!(merge(&flag, &config, Path::new("/pkg")).unwrap().also, flag.also);
        let bad = MetadataConfig { also: Some(vec!["hc:bin".into()]), ..Default::default() };
        let err = merge(&ImageArgs::default(), &bad, Path::new("/pkg")).unwrap_err().to_string();
        assert_eq!(
            err,
            "[package.metadata.scratchpack] also: \"hc:bin\": expected PROGRAM[:DEST], with DEST an absolute path in the image"
        );
    }

    #[test]
    fn owners_capabilities_and_created_come_from_metadata_and_flags_win() {
        let value = serde_json::json!({"scratchpack": {
            "add": ["conf/key.pem:/etc/app/key.pem:0640:0:65532"],
            "mkdir": ["/var/cache/app::65532:65532"],
            "chown-to-user": ["/var/cache/app"],
            "caps": ["net_bind_service"],
            "created": "now",
        }});
        let config = parse_config(Some(&value), "Cargo.toml").unwrap();
        let merged = merge(&ImageArgs::default(), &config, Path::new("/pkg")).unwrap();
        assert_eq!(merged.add, ["/pkg/conf/key.pem:/etc/app/key.pem:0640:0:65532".parse::<crate::rootfs::add::AddSpec>().unwrap()]);
        assert_eq!(merged.mkdir, ["/var/cache/app::65532:65532".parse::<crate::rootfs::extra::MkdirSpec>().unwrap()]);
        assert_eq!(merged.chown_to_user, ["/var/cache/app"]);
        assert_eq!(merged.caps, ["net_bind_service"]);
        assert_eq!(merged.created.as_deref(), Some("now"));
        let flags = ImageArgs { created: Some("epoch".into()), caps: vec!["chown".into()], ..Default::default() };
        let merged = merge(&flags, &config, Path::new("/pkg")).unwrap();
        assert_eq!((merged.created.as_deref(), merged.caps), (Some("epoch"), vec!["chown".to_string()]));
        let bad = parse_config(Some(&serde_json::json!({"scratchpack": {"mkdir": ["var/x"]}})), "Cargo.toml").unwrap();
        let err = merge(&ImageArgs::default(), &bad, Path::new("/pkg")).unwrap_err().to_string();
        assert!(err.starts_with("[package.metadata.scratchpack] mkdir: --mkdir \"var/x\": expected DEST[:MODE[:UID[:GID]]]"), "{err}");
    }

    #[test]
    fn tzdata_source_names_a_source_or_a_folder_of_the_package() {
        use crate::needs::TzdataSource;
        let source = |value: &str, flag: Option<TzdataSource>| {
            let config = MetadataConfig { tzdata_source: Some(value.into()), ..Default::default() };
            merge(&ImageArgs { tzdata_source: flag, ..Default::default() }, &config, Path::new("/pkg")).unwrap().tzdata_source
        };
        assert_eq!(source("builtin", None), Some(TzdataSource::Builtin));
        assert_eq!(source("host", None), Some(TzdataSource::Host));
        assert_eq!(source("zones", None), Some(TzdataSource::Dir("/pkg/zones".into())));
        assert_eq!(source("/srv/zones", None), Some(TzdataSource::Dir("/srv/zones".into())));
        assert_eq!(source("zones", Some(TzdataSource::Host)), Some(TzdataSource::Host), "the flag wins");
    }
}
