//! `cargo scratchpack`: build with cargo, take the executables from its compiler artifacts, read
//! `[package.metadata.scratchpack]` and `[workspace.metadata.scratchpack]`, and pack each binary
//! (one platform per `--target`, several targets make one index). The binaries named by
//! `--also-bin` (`also-bins`) are built in the same run and go into every image as `--also`
//! programs, each into the image of its target, instead of into images of their own.
//!
//! Owns talking to cargo and git and turning package metadata into pack options. Packing itself
//! is `pack`'s; flags always override the metadata, which overrides the defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use cargo_metadata::{Message, Metadata, MetadataCommand, Package};
use clap::{Args, Parser};
use serde::Deserialize;

use crate::cli::{self, ImageArgs};
use crate::created::Created;
use crate::pack::AlsoSpec;
use crate::printer::Printer;

#[derive(Debug, Parser)]
#[command(name = "cargo", bin_name = "cargo")]
pub enum CargoCli {
    /// Build with cargo and pack the binaries into minimal OCI images.
    Scratchpack(CargoArgs),
}

#[derive(Debug, Args)]
#[command(version, about = "Build with cargo and pack the binaries into minimal OCI images")]
pub struct CargoArgs {
    /// Package to build (default: the one in the current folder, or the only one).
    #[arg(short, long = "package", value_name = "PKG")]
    pub(crate) package: Option<String>,
    /// Binary to pack (repeatable; default: every binary of the package but the --also-bin ones).
    #[arg(long = "bin", value_name = "NAME")]
    pub(crate) bins: Vec<String>,
    /// A binary of the package that goes into every image as a further program, built in the same
    /// run, at DEST [default: /usr/local/bin/NAME] (repeatable).
    #[arg(long = "also-bin", value_name = "NAME[:DEST]")]
    pub(crate) also_bins: Vec<AlsoSpec>,
    /// Target triple to build for (repeatable; several make one multi-platform index).
    #[arg(long = "target", value_name = "TRIPLE")]
    pub(crate) targets: Vec<String>,
    /// Features to enable (as cargo's --features).
    #[arg(short = 'F', long, value_name = "FEATURES")]
    pub(crate) features: Option<String>,
    #[arg(long)]
    pub(crate) all_features: bool,
    #[arg(long)]
    pub(crate) no_default_features: bool,
    /// Build profile [default: release].
    #[arg(long, value_name = "PROFILE")]
    pub(crate) profile: Option<String>,
    #[arg(long, value_name = "PATH")]
    pub(crate) manifest_path: Option<PathBuf>,
    #[arg(long)]
    pub(crate) locked: bool,
    /// Build with `cargo auditable build`, so the binaries carry their dependency list (.dep-v0)
    /// for the SBOM and for scanners (install it with `cargo install cargo-auditable`).
    #[arg(long)]
    pub(crate) auditable: bool,
    #[arg(long)]
    pub(crate) offline: bool,
    #[command(flatten)]
    pub(crate) image: ImageArgs,
    /// Print nothing on stderr but errors (cargo's own output included).
    #[arg(short, long)]
    pub(crate) quiet: bool,
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
}

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
    fn over(self, workspace: MetadataConfig) -> MetadataConfig {
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

/// The cargo that runs this subcommand ($CARGO), else the one on PATH.
fn cargo_program() -> PathBuf {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()).into()
}

fn cargo() -> Command {
    Command::new(cargo_program())
}

/// The `cargo metadata` of the whole run, read once: the workspace's packages and metadata tables,
/// and every crate's `source` for the SBOM. The dependency graph is resolved (not `--no-deps`)
/// unless `--sbom none` says the SBOM will not need it: the default run makes an SBOM, and one
/// resolving call costs less than a `--no-deps` call before the build and a resolving one after.
/// Resolving comes before the build, so it gets the build's `--locked` and `--offline`: it must
/// not rewrite Cargo.lock, or reach the network, where the build would refuse to.
fn read_metadata(args: &CargoArgs) -> Result<Metadata> {
    let mut command = MetadataCommand::new();
    command.cargo_path(cargo_program());
    if let Some(path) = &args.manifest_path {
        command.manifest_path(path);
    }
    if args.image.sbom == Some(crate::sbom::SbomFormat::None) {
        command.no_deps();
    }
    let flags = [(args.locked, "--locked"), (args.offline, "--offline")];
    command.other_options(flags.into_iter().filter(|(on, _)| *on).map(|(_, flag)| flag.to_string()).collect::<Vec<_>>());
    // Run here rather than by `exec`, so cargo's errors go straight to stderr, as the build's do.
    let output = command.cargo_command().stderr(Stdio::inherit()).output().context("cannot run `cargo metadata`")?;
    if !output.status.success() {
        bail!("`cargo metadata` failed ({})", output.status);
    }
    serde_json::from_slice(&output.stdout).context("`cargo metadata` printed something that is not its JSON")
}

fn parse_config(value: Option<&serde_json::Value>, place: &str) -> Result<MetadataConfig> {
    match value.and_then(|v| v.get("scratchpack")) {
        None => Ok(MetadataConfig::default()),
        Some(table) => serde_json::from_value(table.clone()).map_err(|e| anyhow!("{place}: {e}")),
    }
}

/// The workspace's own packages, in `workspace_members`' order (the order `--no-deps` lists them in;
/// a resolved `packages` list is sorted by id and holds the dependencies too).
fn workspace_packages(metadata: &Metadata) -> Vec<&Package> {
    metadata.workspace_members.iter().filter_map(|id| metadata.packages.iter().find(|p| &p.id == id)).collect()
}

fn select_package<'a>(metadata: &'a Metadata, requested: Option<&str>) -> Result<&'a Package> {
    let packages = workspace_packages(metadata);
    if let Some(name) = requested {
        return packages
            .into_iter()
            .find(|p| p.name.as_str() == name)
            .ok_or_else(|| anyhow!("-p {name}: no such package in this workspace"));
    }
    if let [only] = packages.as_slice() {
        return Ok(only);
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    packages
        .iter()
        .copied()
        .filter(|p| p.manifest_path.parent().is_some_and(|dir| cwd.starts_with(dir)))
        .max_by_key(|p| p.manifest_path.components().count())
        .ok_or_else(|| {
            let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
            anyhow!("this workspace has several packages ({}): choose one with -p", names.join(", "))
        })
}

/// Every crate's `source` from `cargo metadata` (with dependencies), keyed by (name, version).
fn cargo_sources(metadata: &Metadata) -> BTreeMap<(String, String), String> {
    metadata
        .packages
        .iter()
        .filter_map(|package| Some(((package.name.to_string(), package.version.to_string()), package.source.as_ref()?.repr.clone())))
        .collect()
}

/// The git revision and commit time of the package's repository, if it is in one.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git").arg("-C").arg(dir).args(args).stderr(Stdio::null()).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string()).filter(|s| !s.is_empty())
}

/// Replaces `{version}`, `{git_sha}`, `{git_short_sha}`.
fn expand_template(text: &str, version: &str, git_sha: Option<&str>) -> Result<String> {
    let mut out = text.replace("{version}", version);
    for (token, value) in [("{git_sha}", git_sha.map(str::to_string)), ("{git_short_sha}", git_sha.map(|s| s.chars().take(7).collect()))] {
        if out.contains(token) {
            let value = value.ok_or_else(|| anyhow!("{text:?}: {token} needs a git repository, and the package is not in one"))?;
            out = out.replace(token, &value);
        }
    }
    Ok(out)
}

/// The OCI annotations Cargo.toml and git give.
fn package_annotations(package: &Package, git_sha: Option<&str>, created: &str) -> BTreeMap<String, String> {
    let mut annotations = BTreeMap::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            annotations.insert(format!("org.opencontainers.image.{key}"), value);
        }
    };
    put("title", Some(package.name.to_string()));
    put("description", package.description.clone());
    put("version", Some(package.version.to_string()));
    put("licenses", package.license.clone());
    put("authors", Some(package.authors.join(", ")));
    put("source", package.repository.clone());
    put("url", package.homepage.clone().or_else(|| package.repository.clone()));
    put("documentation", package.documentation.clone());
    put("revision", git_sha.map(str::to_string));
    put("created", Some(created.to_string()));
    annotations
}

/// Flags over metadata: a flag given replaces the metadata's value; maps merge, flags winning.
fn merge(cli: &ImageArgs, config: &MetadataConfig, base_dir: &Path) -> Result<ImageArgs> {
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
fn package_base(text: &str, package_dir: &Path) -> String {
    for transport in ["oci:", "oci-archive:"] {
        if let Some(path) = text.strip_prefix(transport).filter(|path| !path.starts_with('/')) {
            return format!("{transport}{}", package_dir.join(path).display());
        }
    }
    text.to_string()
}

/// The base of `bin`'s image: `--base`, else its `base-overrides` entry, else `base`.
fn base_of(flag: Option<&str>, merged: Option<&str>, config: &MetadataConfig, bin: &str, package_dir: &Path) -> Option<String> {
    if flag.is_some() {
        return flag.map(str::to_string);
    }
    let overridden = config.base_overrides.as_ref().and_then(|overrides| overrides.get(bin));
    overridden.map(|text| package_base(text, package_dir)).or_else(|| merged.map(str::to_string))
}

/// Where images go when `--output` names none, and what a bare `--output NAME` means.
fn resolve_outputs(
    outputs: &[String],
    config: &MetadataConfig,
    repo_env: Option<&str>,
    bin: &str,
    several_bins: bool,
) -> Result<Vec<String>> {
    let default_repo = repo_env.map(|r| r.trim_end_matches('/').to_string());
    let mut resolved = Vec::new();
    let outputs: Vec<String> = if outputs.is_empty() {
        match (&config.repository, &default_repo) {
            (Some(repository), _) => vec![format!("docker://{repository}")],
            (None, Some(repo)) => vec![format!("docker://{repo}/{bin}")],
            (None, None) => {
                bail!("no --output, no `repository` in [package.metadata.scratchpack], and no SCRATCHPACK_REPO: say where the images go")
            }
        }
    } else {
        outputs.to_vec()
    };
    for output in outputs {
        let known =
            ["oci:", "oci-archive:", "docker-archive:", "docker://", "docker-daemon:", "podman:"].iter().any(|t| output.starts_with(t));
        let output = if known {
            output
        } else {
            let repo = default_repo
                .as_deref()
                .ok_or_else(|| anyhow!("--output {output:?}: a bare name is pushed to SCRATCHPACK_REPO, which is not set"))?;
            format!("docker://{repo}/{output}")
        };
        resolved.push(if several_bins { per_binary(&output, bin) } else { output });
    }
    Ok(resolved)
}

/// With several binaries, each gets its own repository, layout or archive.
fn per_binary(output: &str, bin: &str) -> String {
    if let Some(reference) = output.strip_prefix("docker://") {
        let (name, tag) = split_reference_tag(reference);
        return format!("docker://{name}/{bin}{tag}");
    }
    // An engine with no name names each image after its binary already.
    for engine in ["docker-daemon:", "podman:"] {
        if let Some(reference) = output.strip_prefix(engine).filter(|r| !r.is_empty()) {
            let (name, tag) = split_reference_tag(reference);
            return format!("{engine}{name}/{bin}{tag}");
        }
    }
    for transport in ["oci:", "oci-archive:", "docker-archive:"] {
        if let Some(rest) = output.strip_prefix(transport) {
            let (path, suffix) = match rest.rsplit_once(':') {
                Some((path, tag)) if !tag.contains('/') && transport != "docker-archive:" => (path, format!(":{tag}")),
                _ => (rest, String::new()),
            };
            let path = match path.rsplit_once('.') {
                Some((stem, ext)) if transport != "oci:" && !ext.contains('/') => format!("{stem}-{bin}.{ext}"),
                _ if transport == "oci:" => format!("{path}/{bin}"),
                _ => format!("{path}-{bin}"),
            };
            return format!("{transport}{path}{suffix}");
        }
    }
    output.to_string()
}

fn split_reference_tag(reference: &str) -> (&str, &str) {
    let last_slash = reference.rfind('/').unwrap_or(0);
    match reference[last_slash..].rfind(':') {
        Some(i) => (&reference[..last_slash + i], &reference[last_slash + i..]),
        None => (reference, ""),
    }
}

/// `--also-bin`, else the metadata's `also-bins`: each a binary of `package`.
fn also_bins(args: &CargoArgs, config: &MetadataConfig, package: &Package) -> Result<Vec<AlsoSpec>> {
    let specs = match (&args.also_bins, &config.also_bins) {
        (flags, _) if !flags.is_empty() => flags.clone(),
        (_, Some(names)) => names
            .iter()
            .map(|name| name.parse().map_err(|e| anyhow!("[package.metadata.scratchpack] also-bins: {e}")))
            .collect::<Result<_>>()?,
        (_, None) => Vec::new(),
    };
    let binaries: Vec<&str> = package.targets.iter().filter(|t| t.is_bin()).map(|t| t.name.as_str()).collect();
    for spec in &specs {
        let name = spec.file.to_string_lossy();
        if !binaries.contains(&name.as_ref()) {
            bail!("also-bins: {name:?} is not a binary of package {} (its binaries: {})", package.name, binaries.join(", "));
        }
    }
    Ok(specs)
}

/// The `--also` programs `also_bins` name, one per target, taken out of `by_bin` unless `bins`
/// asks for their own images too.
fn also_programs(also_bins: &[AlsoSpec], by_bin: &mut BTreeMap<String, Vec<PathBuf>>, bins: &[String]) -> Vec<AlsoSpec> {
    let mut programs = Vec::new();
    for spec in also_bins {
        let name = spec.file.to_string_lossy().into_owned();
        let paths = match bins.contains(&name) {
            true => by_bin.get(&name).cloned().unwrap_or_default(),
            false => by_bin.remove(&name).unwrap_or_default(),
        };
        // Named after the binary, whatever the file is called.
        let dest = spec.dest.clone().unwrap_or_else(|| format!("/usr/local/bin/{name}"));
        programs.extend(paths.into_iter().map(|file| AlsoSpec { file, dest: Some(dest.clone()) }));
    }
    programs
}

/// An executable cargo built: which binary, for which target.
#[derive(Debug, Clone)]
struct Executable {
    bin: String,
    path: PathBuf,
}

/// Builds `bins` (every binary of the package when empty) for `targets`, and `also` with them.
fn build(
    args: &CargoArgs,
    package: &Package,
    (bins, also): (&[String], &[String]),
    targets: &[String],
    quiet: bool,
) -> Result<Vec<Executable>> {
    let mut cmd = cargo();
    if args.auditable {
        cmd.arg("auditable");
    }
    cmd.args(["build", "--message-format=json-render-diagnostics", "-p", &package.name]);
    match &args.profile {
        Some(profile) => cmd.args(["--profile", profile]),
        None => cmd.arg("--release"),
    };
    for bin in bins.iter().chain(if bins.is_empty() { &[][..] } else { also }) {
        cmd.args(["--bin", bin]);
    }
    if bins.is_empty() {
        cmd.arg("--bins");
    }
    for target in targets {
        cmd.args(["--target", target]);
    }
    if let Some(features) = &args.features {
        cmd.args(["--features", features]);
    }
    if args.all_features {
        cmd.arg("--all-features");
    }
    if args.no_default_features {
        cmd.arg("--no-default-features");
    }
    if let Some(path) = &args.manifest_path {
        cmd.arg("--manifest-path").arg(path);
    }
    if args.locked {
        cmd.arg("--locked");
    }
    if args.offline {
        cmd.arg("--offline");
    }
    if quiet {
        cmd.arg("--quiet");
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().context("cannot run `cargo build`")?;
    let stdout = child.stdout.take().expect("piped");
    let mut executables = Vec::new();
    // Diagnostics are rendered on stderr by cargo (json-render-diagnostics): only the artifacts of
    // the package's binaries matter here; other messages and non-JSON lines are passed over.
    for message in Message::parse_stream(std::io::BufReader::new(stdout)) {
        let Message::CompilerArtifact(artifact) = message.context("reading cargo's messages")? else { continue };
        if artifact.package_id != package.id || !artifact.target.is_bin() {
            continue;
        }
        if let Some(path) = artifact.executable {
            executables.push(Executable { bin: artifact.target.name, path: path.into_std_path_buf() });
        }
    }
    let status = child.wait().context("waiting for `cargo build`")?;
    if !status.success() {
        bail!("`cargo build` failed ({status})");
    }
    Ok(executables)
}

/// `cargo scratchpack …`: returns the printed reference lines.
pub fn run(args: CargoArgs) -> Result<()> {
    let printer = Printer::new(args.quiet, args.verbose);
    let metadata = read_metadata(&args)?;
    let package = select_package(&metadata, args.package.as_deref())?.clone();
    let workspace_config = parse_config(
        Some(&metadata.workspace_metadata),
        &format!("{}: [workspace.metadata.scratchpack]", metadata.workspace_root.join("Cargo.toml")),
    )?;
    let package_config = parse_config(Some(&package.metadata), &format!("{}: [package.metadata.scratchpack]", package.manifest_path))?;
    let config = package_config.over(workspace_config);
    let package_dir = package.manifest_path.parent().map_or_else(|| PathBuf::from("."), |dir| dir.as_std_path().to_path_buf());

    let git_sha = git(&package_dir, &["rev-parse", "HEAD"]);
    let epoch = std::env::var("SOURCE_DATE_EPOCH").ok().filter(|v| !v.is_empty());
    // Reproducible without being told: the commit's own time, for the layers and `created`.
    let commit = git(&package_dir, &["log", "-1", "--format=%ct"]).and_then(|time| time.parse().ok()).unwrap_or(0);
    let mut times = cli::Times {
        source_date_epoch: epoch.as_deref(),
        default_mtime: commit,
        default_created: Created::At(commit),
        repository: package_dir.clone(),
    };

    let version = package.version.to_string();
    let sources = cargo_sources(&metadata);

    let mut image = merge(&args.image, &config, &package_dir)?;
    // Decided once, for every binary (and the annotation): `now` is one time.
    let created_seconds = cli::created_time(image.created.take().as_deref(), &times)?;
    times.default_created = Created::At(created_seconds);
    let created = crate::image::config::rfc3339(created_seconds);
    image.tags = image.tags.iter().map(|t| expand_template(t, &version, git_sha.as_deref())).collect::<Result<_>>()?;
    let mut annotations: Vec<String> =
        package_annotations(&package, git_sha.as_deref(), &created).into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    annotations.extend(image.annotations.iter().cloned());
    for (key, value) in config.annotations.clone().unwrap_or_default() {
        if !image.annotations.iter().any(|a| a.starts_with(&format!("{key}="))) {
            annotations.push(format!("{key}={value}"));
        }
    }
    image.annotations = annotations;

    let bins = if args.bins.is_empty() { config.bins.clone().unwrap_or_default() } else { args.bins.clone() };
    let also_bins = also_bins(&args, &config, &package)?;
    let targets = if args.targets.is_empty() { config.targets.clone().unwrap_or_default() } else { args.targets.clone() };
    let also_names: Vec<String> = also_bins.iter().map(|spec| spec.file.to_string_lossy().into_owned()).collect();
    let executables = build(&args, &package, (&bins, &also_names), &targets, args.quiet)?;
    let mut by_bin: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for executable in executables {
        by_bin.entry(executable.bin).or_default().push(executable.path);
    }
    // cargo reports targets in whatever order they finish: sort, so the index is reproducible.
    by_bin.values_mut().for_each(|paths| paths.sort());
    image.also.extend(also_programs(&also_bins, &mut by_bin, &bins));
    if by_bin.is_empty() {
        bail!("cargo built no binary for package {}", package.name);
    }
    let several = by_bin.len() > 1;
    let repo_env = std::env::var("SCRATCHPACK_REPO").ok().filter(|r| !r.is_empty());
    for (bin, paths) in &by_bin {
        let mut per_bin = image.clone();
        if several && !args.image.annotations.iter().any(|a| a.starts_with("org.opencontainers.image.title=")) {
            // Several binaries of one package: each image is titled after its binary.
            per_bin.annotations.retain(|a| !a.starts_with("org.opencontainers.image.title="));
            per_bin.annotations.push(format!("org.opencontainers.image.title={bin}"));
        }
        per_bin.base = base_of(args.image.base.as_deref(), image.base.as_deref(), &config, bin, &package_dir);
        per_bin.outputs = resolve_outputs(&image.outputs, &config, repo_env.as_deref(), bin, several)?
            .iter()
            .map(|o| expand_template(o, &version, git_sha.as_deref()))
            .collect::<Result<_>>()?;
        let mut options = cli::pack_options(paths, &per_bin, &times, &printer).with_context(|| format!("packing {bin}"))?;
        if options.sbom.format != crate::sbom::SbomFormat::None {
            options.sbom.version = Some(version.clone());
            options.sbom.cargo_sources = Some(sources.clone());
        }
        if options.sign.provenance {
            let profile = args.profile.clone().unwrap_or_else(|| "release".into());
            options.sign.cargo = Some(crate::pack::CargoBuild { package: package.name.to_string(), version: version.clone(), profile });
            // The package's own commit, over what CI says it builds.
            options.sign.git_commit = git_sha.clone().or(options.sign.git_commit.take());
        }
        let (packed, published) = crate::pack::pack(&options, &printer).with_context(|| format!("packing {bin}"))?;
        let results = if options.writes_to_stdout() { printer.with_results_on_stderr() } else { printer };
        cli::print_published(&results, &published, Some(&packed), per_bin.json)?;
    }
    Ok(())
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
    fn templates_expand_or_say_why_not() {
        assert_eq!(expand_template("{version}-{git_short_sha}", "1.4.2", Some("0123456789abcdef")).unwrap(), "1.4.2-0123456");
        assert_eq!(expand_template("sha-{git_sha}", "1", Some("abc")).unwrap(), "sha-abc");
        let err = expand_template("{git_sha}", "1", None).unwrap_err().to_string();
        assert_eq!(err, "\"{git_sha}\": {git_sha} needs a git repository, and the package is not in one");
    }

    #[test]
    fn outputs_default_to_the_repository_and_split_per_binary() {
        let config = MetadataConfig { repository: Some("ghcr.io/org/app".into()), ..Default::default() };
        assert_eq!(resolve_outputs(&[], &config, None, "server", false).unwrap(), ["docker://ghcr.io/org/app"]);
        let none = MetadataConfig::default();
        assert_eq!(resolve_outputs(&[], &none, Some("reg.example/team/"), "server", false).unwrap(), ["docker://reg.example/team/server"]);
        assert_eq!(
            resolve_outputs(&["api".into()], &none, Some("reg.example/team"), "server", false).unwrap(),
            ["docker://reg.example/team/api"]
        );
        assert!(resolve_outputs(&["api".into()], &none, None, "server", false).is_err());
        assert!(resolve_outputs(&[], &none, None, "server", false).is_err());
        assert_eq!(per_binary("docker://ghcr.io/org/app:1.0", "cli"), "docker://ghcr.io/org/app/cli:1.0");
        assert_eq!(per_binary("docker://127.0.0.1:5000/app", "cli"), "docker://127.0.0.1:5000/app/cli");
        assert_eq!(per_binary("oci:out:v1", "cli"), "oci:out/cli:v1");
        assert_eq!(per_binary("oci-archive:img.tar", "cli"), "oci-archive:img-cli.tar");
        assert_eq!(per_binary("docker-archive:img.tar:app:1", "cli"), "docker-archive:img-cli.tar:app:1");
        assert_eq!(per_binary("docker-daemon:", "cli"), "docker-daemon:");
        assert_eq!(per_binary("podman:me/app:1.0", "cli"), "podman:me/app/cli:1.0");
        assert_eq!(resolve_outputs(&["docker-daemon:".into()], &none, None, "server", false).unwrap(), ["docker-daemon:"]);
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
    fn also_bins_join_every_image_instead_of_their_own() {
        let paths = |bin: &str| vec![PathBuf::from(format!("/t/aarch64/{bin}")), PathBuf::from(format!("/t/x86_64/{bin}"))];
        let built = BTreeMap::from([("hc".to_string(), paths("hc")), ("server".to_string(), paths("server"))]);
        let specs: Vec<AlsoSpec> = vec!["hc".parse().unwrap()];
        let mut by_bin = built.clone();
        let also = also_programs(&specs, &mut by_bin, &[]);
        assert_eq!(by_bin.keys().collect::<Vec<_>>(), ["server"]);
        let expected: Vec<AlsoSpec> =
            paths("hc").into_iter().map(|file| AlsoSpec { file, dest: Some("/usr/local/bin/hc".into()) }).collect();
        assert_eq!(also, expected);
        let mut by_bin = built.clone();
        also_programs(&specs, &mut by_bin, &["hc".into()]);
        assert_eq!(by_bin.len(), 2, "a binary --bin names keeps its own image too");
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
