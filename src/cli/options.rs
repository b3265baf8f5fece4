//! Flags into options: every value of the command line is checked here, once, and turned into the
//! typed options the library takes ([`PackOptions`], [`PushOptions`], [`RegistryContext`]). Errors
//! name the flag and the value.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::{ImageArgs, PushArgs, RegistryArgs};
use crate::dest::registry::RegistryContext;
use crate::dest::DestSpec;
use crate::image::config::{RuntimeSettings, DEFAULT_PATH};
use crate::needs::NeedsOptions;
use crate::pack::{PackOptions, SbomOptions};
use crate::printer::Printer;
use crate::push::PushOptions;
use crate::registry::Tag;
use crate::rootfs::base::{self, BaseOptions, CaBundle};
use crate::rootfs::image_path;
use crate::sbom::SbomFormat;

#[derive(Debug, thiserror::Error)]
pub(crate) enum OptionError {
    #[error("--{flag} {value:?}: {reason}")]
    Invalid { flag: &'static str, value: String, reason: &'static str },
    #[error("SOURCE_DATE_EPOCH={0:?}: not a whole number of seconds since 1970")]
    SourceDateEpoch(String),
    #[error("no --output given: say where the image goes")]
    NoOutput,
}

impl OptionError {
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            OptionError::NoOutput => Some("for example --output oci:out, or --output docker://ghcr.io/org/app:1.0".into()),
            OptionError::Invalid { .. } | OptionError::SourceDateEpoch(_) => None,
        }
    }
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

/// `--tag` values, `latest` when none is given.
fn tags(texts: &[String]) -> Result<Vec<Tag>, OptionError> {
    if texts.is_empty() {
        return Ok(vec![Tag::latest()]);
    }
    texts.iter().map(|text| text.parse().map_err(|_| invalid("tag", text, Tag::RULE))).collect()
}

/// `SOURCE_DATE_EPOCH`'s value (unset or empty: 0).
pub(crate) fn source_date_epoch(value: Option<&str>) -> Result<u64, OptionError> {
    match value {
        None | Some("") => Ok(0),
        Some(text) => text.parse().map_err(|_| OptionError::SourceDateEpoch(text.to_string())),
    }
}

fn environment(args: &ImageArgs, ca_bundle: &CaBundle) -> Result<BTreeMap<String, String>, OptionError> {
    let mut env = BTreeMap::new();
    env.insert("PATH".to_string(), DEFAULT_PATH.to_string());
    if *ca_bundle != CaBundle::None {
        env.insert("SSL_CERT_FILE".to_string(), format!("/{}", base::CA_BUNDLE_PATH));
    }
    for text in &args.env {
        let (key, value) = key_value("env", text)?;
        if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') || key.as_bytes()[0].is_ascii_digit() {
            return Err(invalid("env", text, "the name must be letters, digits and '_', not starting with a digit"));
        }
        env.insert(key, value);
    }
    Ok(env)
}

fn runtime_settings(args: &ImageArgs, ca_bundle: &CaBundle) -> Result<RuntimeSettings> {
    let user = args.user.clone().unwrap_or_else(|| "65532:65532".to_string());
    if !valid_user(&user) {
        bail!(invalid("user", &user, "expected UID[:GID] or NAME[:GROUP]"));
    }
    if let Some(workdir) = &args.workdir {
        if !workdir.starts_with('/') {
            bail!(invalid("workdir", workdir, "must be an absolute path"));
        }
    }
    Ok(RuntimeSettings {
        user,
        env: environment(args, ca_bundle)?,
        entrypoint: Vec::new(),
        cmd: args.args.clone(),
        workdir: args.workdir.clone(),
        exposed_ports: args.expose.iter().map(|t| expose_port(t)).collect::<Result<Vec<_>, _>>()?,
        labels: args.labels.iter().map(|t| key_value("label", t)).collect::<Result<BTreeMap<_, _>, _>>()?,
        stop_signal: None,
        volumes: Vec::new(),
        user_given: args.user.is_some(),
        env_given: args.env.iter().filter_map(|t| Some(t.split_once('=')?.0.to_string())).collect(),
    })
}

/// `--sysroot`, `--library-path`, `--allow-missing`, `--static-only`, `--tzdata`.
fn needs_options(args: &ImageArgs) -> NeedsOptions {
    NeedsOptions {
        sysroot: args.resolve.sysroot.clone(),
        library_path: args.resolve.library_dirs(),
        allow_missing: args.allow_missing,
        static_only: args.static_only,
        tzdata: args.tzdata.unwrap_or_default(),
        tzdata_source: args.tzdata_source.clone().unwrap_or_default(),
    }
}

/// The flags of an image, checked. The binaries, `SOURCE_DATE_EPOCH` and the verbosity are not
/// flags of [`ImageArgs`]: [`pack_options`] adds them.
impl TryFrom<&ImageArgs> for PackOptions {
    type Error = anyhow::Error;

    fn try_from(args: &ImageArgs) -> Result<Self> {
        if args.outputs.is_empty() {
            return Err(OptionError::NoOutput.into());
        }
        let outputs = args.outputs.iter().map(|text| Ok((text.clone(), text.parse::<DestSpec>()?))).collect::<Result<Vec<_>>>()?;
        let tags = tags(&args.tags)?;
        let ca_bundle = args.ca_bundle.clone().unwrap_or(CaBundle::Builtin);
        let settings = runtime_settings(args, &ca_bundle)?;
        if let Some(path) = &args.path {
            image_path(path).with_context(|| format!("--path {path:?}"))?;
        }
        Ok(PackOptions {
            binaries: Vec::new(),
            also: args.also.clone(),
            outputs,
            tags,
            path: args.path.clone(),
            settings,
            annotations: args.annotations.iter().map(|t| key_value("annotation", t)).collect::<Result<BTreeMap<_, _>, _>>()?,
            add: args.add.clone(),
            // Unset when not given: on a --base image, only a given bundle replaces the base's.
            base: BaseOptions { ca_bundle: args.ca_bundle.clone(), extra_ca: args.extra_ca.clone() },
            base_image: args.base.as_deref().map(str::parse).transpose()?,
            inherit_labels: args.inherit_labels,
            compression: args.compression.unwrap_or_default(),
            strip: args.strip,
            source_date_epoch: 0,
            registry: registry_context(&args.registry, &Printer::new(false, 0)),
            needs: needs_options(args),
            sbom: SbomOptions { format: args.sbom.unwrap_or(SbomFormat::None), dir: args.sbom_dir.clone(), ..Default::default() },
            max_size: args.max_size.clone(),
        })
    }
}

/// Everything a pack of `binaries` needs: the flags, `SOURCE_DATE_EPOCH` (the variable's value, if
/// set) and how much the registry client may say.
pub(crate) fn pack_options(binaries: &[PathBuf], args: &ImageArgs, epoch: Option<&str>, printer: &Printer) -> Result<PackOptions> {
    let mut options = PackOptions::try_from(args)?;
    options.binaries = binaries.to_vec();
    options.source_date_epoch = source_date_epoch(epoch)?;
    options.registry = registry_context(&args.registry, printer);
    Ok(options)
}

/// The shared registry settings from the command line.
pub(crate) fn registry_context(args: &RegistryArgs, printer: &Printer) -> RegistryContext {
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

impl PushArgs {
    /// `scratchpack push`'s arguments, checked.
    pub(crate) fn options(&self, printer: &Printer) -> Result<PushOptions> {
        let tags = tags(&self.tags)?;
        let destinations = self
            .destinations
            .iter()
            .map(|text| match text.parse::<DestSpec>()? {
                DestSpec::Registry { reference } => Ok((text.clone(), reference)),
                _ => bail!("{text:?}: push sends to registries: docker://HOST/REPO[:TAG]"),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PushOptions { source: self.source.clone(), destinations, tags, registry: registry_context(&self.registry, printer) })
    }
}
