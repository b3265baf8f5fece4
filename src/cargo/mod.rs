//! `cargo scratchpack`: build with cargo, take the executables from its compiler artifacts, read
//! `[package.metadata.scratchpack]` and `[workspace.metadata.scratchpack]`, and pack each binary
//! (one platform per `--target`, several targets make one index). The binaries named by
//! `--also-bin` (`also-bins`) are built in the same run and go into every image as `--also`
//! programs, each into the image of its target, instead of into images of their own.
//!
//! Owns talking to cargo and git and turning what they say into pack options; the metadata
//! schema and how flags override it are [`metadata`]'s. Packing itself is `pack`'s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use cargo_metadata::{Message, Metadata, MetadataCommand, Package};
use clap::{Args, Parser};

use crate::cli::{self, ImageArgs};
use crate::created::Created;
use crate::pack::AlsoSpec;
use crate::printer::Printer;

mod metadata;

use metadata::{base_of, merge, parse_config, MetadataConfig};

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
}
