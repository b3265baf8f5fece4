//! Flags into options: every value of the command line is checked here, once, and turned into the
//! typed options the library takes ([`PackOptions`], [`PushOptions`], [`RegistryContext`]). Errors
//! name the flag and the value.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::{ImageArgs, PushArgs, RegistryArgs};
use crate::created::Created;
use crate::dest::registry::RegistryContext;
use crate::dest::DestSpec;
use crate::image::config::{RuntimeSettings, DEFAULT_PATH};
use crate::needs::NeedsOptions;
use crate::pack::{PackOptions, SbomOptions, SignOptions};
use crate::printer::Printer;
use crate::push::PushOptions;
use crate::registry::Tag;
use crate::rootfs::base::{self, BaseOptions, CaBundle};
use crate::rootfs::caps::Capabilities;
use crate::rootfs::extra::{self, ExtraFiles};
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
    #[error("--chown-to-user: --user {0:?} names a user or group the image's /etc/passwd and /etc/group do not list")]
    ChownUser(String),
}

impl OptionError {
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            OptionError::NoOutput => Some("for example --output oci:out, or --output docker://ghcr.io/org/app:1.0".into()),
            OptionError::ChownUser(_) => Some("give --user as numbers, UID:GID, or one of root, nobody and nonroot".into()),
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

/// `--add`, `--mkdir` and `--chown-to-user`, with the numbers of `user` (the image's `--user`).
fn extra_files(args: &ImageArgs, user: &str) -> Result<ExtraFiles> {
    let chown_to_user = args
        .chown_to_user
        .iter()
        .map(|path| image_path(path).with_context(|| format!("--chown-to-user {path:?}")))
        .collect::<Result<Vec<_>>>()?;
    let user = match chown_to_user.is_empty() {
        true => (0, 0),
        false => extra::user_ids(user).ok_or(OptionError::ChownUser(user.to_string()))?,
    };
    Ok(ExtraFiles { add: args.add.clone(), mkdir: args.mkdir.clone(), chown_to_user, user })
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
        let extra = extra_files(args, &settings.user)?;
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
            extra,
            caps: Capabilities::parse(&args.caps)?,
            // Unset when not given: on a --base image, only a given bundle replaces the base's.
            base: BaseOptions { ca_bundle: args.ca_bundle.clone(), extra_ca: args.extra_ca.clone() },
            base_image: args.base.as_deref().map(str::parse).transpose()?,
            inherit_labels: args.inherit_labels,
            compression: args.compression.unwrap_or_default(),
            strip: args.strip,
            source_date_epoch: 0,
            created: 0,
            registry: registry_context(&args.registry, &Printer::new(false, 0)),
            needs: needs_options(args),
            sbom: SbomOptions { format: args.sbom.unwrap_or(SbomFormat::None), dir: args.sbom_dir.clone(), ..Default::default() },
            max_size: args.max_size.clone(),
            sign: sign_options(args)?,
        })
    }
}

/// The signer of `--sign-key PATH`, else of the PEM in `SCRATCHPACK_SIGN_KEY`; none without either.
fn signer(path: Option<&std::path::Path>) -> Result<Option<std::sync::Arc<dyn crate::sign::Signer>>> {
    use crate::sign::{key::KEY_ENV, KeySigner};
    let signer = match path {
        Some(path) => Some(KeySigner::from_file(path)?),
        None => match std::env::var(KEY_ENV) {
            Ok(pem) if !pem.trim().is_empty() => Some(KeySigner::from_pem(&pem, KEY_ENV)?),
            _ => None,
        },
    };
    Ok(signer.map(|s| std::sync::Arc::new(s) as std::sync::Arc<dyn crate::sign::Signer>))
}

/// `--sign-key` (else the PEM in `SCRATCHPACK_SIGN_KEY`) and `--provenance`.
fn sign_options(args: &ImageArgs) -> Result<SignOptions> {
    let provenance = args.provenance;
    let git_commit = if provenance { crate::pack::git_commit() } else { None };
    Ok(SignOptions { signer: signer(args.sign_key.as_deref())?, provenance, cargo: None, git_commit })
}

/// The times of a pack, besides `--created`: what the environment and the front end say.
#[derive(Clone, Debug)]
pub(crate) struct Times<'a> {
    /// `SOURCE_DATE_EPOCH`'s value, if set: the time of the layers that are not shared (base and
    /// zoneinfo keep 0) and the image's `created`.
    pub(crate) source_date_epoch: Option<&'a str>,
    /// The layers' time when `SOURCE_DATE_EPOCH` is not set.
    pub(crate) default_mtime: u64,
    /// `created` when neither `SOURCE_DATE_EPOCH` nor `--created` is given.
    pub(crate) default_created: Created,
    /// Where `--created commit` asks git.
    pub(crate) repository: PathBuf,
}

impl Times<'_> {
    /// `scratchpack pack`: `SOURCE_DATE_EPOCH` if set, else 1970, for layers and `created` alike;
    /// `--created commit` asks the repository holding the current folder.
    pub(crate) fn of_pack(source_date_epoch: Option<&str>) -> Times<'_> {
        let repository = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Times { source_date_epoch, default_mtime: 0, default_created: Created::Epoch, repository }
    }
}

/// The image's `created`, in seconds since 1970: `SOURCE_DATE_EPOCH` when set, else `--created`
/// (`created`, as given), else the default of `times`.
pub(crate) fn created_time(created: Option<&str>, times: &Times) -> Result<u64> {
    let spec = created.map(str::parse::<Created>).transpose()?;
    if let Some(seconds) = times.source_date_epoch.filter(|v| !v.is_empty()) {
        return Ok(source_date_epoch(Some(seconds))?);
    }
    Ok(spec.unwrap_or(times.default_created).resolve(&times.repository)?)
}

/// Everything a pack of `binaries` needs: the flags, the times (`SOURCE_DATE_EPOCH`, `--created`)
/// and how much the registry client may say.
pub(crate) fn pack_options(binaries: &[PathBuf], args: &ImageArgs, times: &Times, printer: &Printer) -> Result<PackOptions> {
    let mut options = PackOptions::try_from(args)?;
    options.binaries = binaries.to_vec();
    options.source_date_epoch = match times.source_date_epoch.filter(|v| !v.is_empty()) {
        Some(_) => source_date_epoch(times.source_date_epoch)?,
        None => times.default_mtime,
    };
    options.created = created_time(args.created.as_deref(), times)?;
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
        Ok(PushOptions {
            source: self.source.clone(),
            destinations,
            tags,
            registry: registry_context(&self.registry, printer),
            signer: signer(self.sign_key.as_deref())?,
        })
    }
}

impl super::CopyArgs {
    /// `scratchpack copy`'s arguments (the source and destination are parsed by the copy).
    pub(crate) fn options(&self, printer: &Printer) -> crate::copy::CopyOptions {
        crate::copy::CopyOptions {
            source: self.source.clone(),
            destination: self.destination.clone(),
            registry: registry_context(&self.registry, printer),
        }
    }
}
