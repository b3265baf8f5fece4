//! The front end: the command line (clap), its conversion into the library's options, what the
//! commands print on stdout, and the one place errors become messages and exit codes.
//!
//! The library below never sees clap: flags become typed options here ([`options`]), and domain
//! values parse through their own `FromStr`, which the cargo metadata uses too.

mod failure;
mod options;
mod output;
mod run;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};

pub use failure::report;
pub(crate) use options::{created_time, pack_options, OptionError, Times};
pub(crate) use output::print_published;
pub use run::run;

use crate::image::Compression;
use crate::needs::{Tzdata, TzdataSource};
use crate::pack::{AlsoSpec, ByteSize};
use crate::registry::auth::Secret;
use crate::rootfs::add::AddSpec;
use crate::rootfs::base::CaBundle;
use crate::rootfs::extra::MkdirSpec;
use crate::sbom::SbomFormat;

/// A flag that takes one of `names`, parsed by the value's own `FromStr`: clap lists the names in
/// `--help` and completions, the library keeps the parsing.
fn choice<T>(names: &'static [&'static str]) -> impl TypedValueParser<Value = T>
where
    T: FromStr + Clone + Send + Sync + 'static,
    T::Err: std::fmt::Display,
{
    PossibleValuesParser::new(names).try_map(|name| name.parse::<T>().map_err(|e| e.to_string()))
}

#[derive(Debug, Parser)]
#[command(name = "scratchpack", version, about = "Pack a compiled Linux program into the smallest OCI image that runs it")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Print nothing on stderr but errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Say more on stderr (-vv for even more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pack one binary (or one per platform) into an image and write it to every --output.
    Pack(Box<PackArgs>),
    /// Push an image already packed (oci:DIR[:TAG] or oci-archive:FILE[:TAG]) to a registry.
    Push(Box<PushArgs>),
    /// Copy an image (oci:, oci-archive:, docker://) to any destination, with its platforms and
    /// referrers, every digest kept.
    Copy(Box<CopyArgs>),
    /// Check the signatures of an image (oci:DIR[:TAG], oci-archive:FILE[:TAG],
    /// docker://HOST/REPO[:TAG|@DIGEST]) and of each platform's manifest, and its attestations.
    Verify(Box<VerifyArgs>),
    /// Show what a binary is (platform, linkage, libraries), or what an image holds (oci:DIR,
    /// oci-archive:FILE, docker://REF: platforms, layers, config, referrers).
    Inspect(InspectArgs),
    /// Print a shell completion script: `scratchpack completions bash > /etc/bash_completion.d/scratchpack`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `scratchpack man | man -l -`.
    Man,
}

/// How to reach registries: for `docker://` outputs of `pack`, for `push`, `copy` and `inspect`.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct RegistryArgs {
    /// Registry credentials. Without it: SCRATCHPACK_REGISTRY_USER/_PASSWORD, then the docker and
    /// podman login files and credential helpers.
    #[arg(long, value_name = "USER:PASSWORD")]
    pub(crate) creds: Option<Secret>,
    /// A PEM file of extra CA certificates to trust for registries (repeatable).
    #[arg(long, value_name = "PEM")]
    pub(crate) registry_ca: Vec<PathBuf>,
    /// Allow plain HTTP or unverified TLS for this registry host only (repeatable).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub(crate) insecure_registry: Vec<String>,
    /// Give up a push or a pull after this long, retries included: 90, 90s, 5m, 1h.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
    /// Attempts per request on transient failures (408, 429, 5xx, broken connections).
    #[arg(long, value_name = "N", default_value = "5", value_parser = clap::value_parser!(u32).range(1..=20))]
    pub(crate) retries: u32,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The image: oci:DIR[:TAG] or oci-archive:FILE[:TAG].
    pub(crate) source: String,
    /// Where to push: docker://HOST/REPO[:TAG] (repeatable destinations: give several).
    #[arg(required = true, value_name = "DEST")]
    pub(crate) destinations: Vec<String>,
    /// Tag for destinations that name none (repeatable, default `latest`).
    #[arg(short, long = "tag", value_name = "TAG", default_value = "latest")]
    pub(crate) tags: Vec<String>,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
    /// Sign each manifest and the index pushed, as `pack --sign-key` does. Without it, the PEM in
    /// SCRATCHPACK_SIGN_KEY, if set.
    #[arg(long, value_name = "KEY.pem")]
    pub(crate) sign_key: Option<PathBuf>,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The image: oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker://HOST/REPO[:TAG|@DIGEST].
    pub(crate) source: String,
    /// Where it goes: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF] or
    /// docker://HOST/REPO[:TAG]. Without a tag, the source's (else `latest`).
    #[arg(value_name = "DEST")]
    pub(crate) destination: String,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The image: oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker://HOST/REPO[:TAG|@DIGEST].
    pub(crate) image: String,
    /// The public key (PEM) the signatures must be made with: `openssl pkey -in key.pem -pubout`.
    #[arg(long, value_name = "PUB.pem")]
    pub(crate) key: PathBuf,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
}

/// `90`, `90s`, `5m`, `1h`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration such as 90s, 5m or 1h"))?;
    let seconds = match unit {
        "s" => Some(value),
        "m" => value.checked_mul(60),
        "h" => value.checked_mul(3600),
        _ => return Err(format!("{text:?} is not a duration such as 90s, 5m or 1h")),
    }
    .ok_or_else(|| format!("{text:?} is too long a duration"))?;
    if seconds == 0 {
        return Err("the timeout must be longer than 0s".into());
    }
    Ok(Duration::from_secs(seconds))
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The ELF file to inspect, or an image: oci:DIR[:TAG], oci-archive:FILE[:TAG],
    /// docker://HOST/REPO[:TAG|@DIGEST].
    #[arg(value_name = "BINARY|IMAGE")]
    pub(crate) binary: PathBuf,
    /// Print JSON on stdout instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) resolve: ResolveArgs,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
}

/// Where shared libraries are looked for.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct ResolveArgs {
    /// Resolve the interpreter and libraries inside this root (a build or cross sysroot), not the host.
    #[arg(long, value_name = "DIR")]
    pub(crate) sysroot: Option<PathBuf>,
    /// A library folder searched like LD_LIBRARY_PATH (repeatable, or a colon list).
    #[arg(long, value_name = "DIR")]
    pub(crate) library_path: Vec<String>,
}

impl ResolveArgs {
    pub(crate) fn library_dirs(&self) -> Vec<String> {
        self.library_path.iter().flat_map(|p| p.split(':')).filter(|d| !d.is_empty()).map(str::to_string).collect()
    }
}

#[derive(Debug, Args, Clone)]
pub struct PackArgs {
    /// The program(s) to pack. Several binaries of different platforms make one multi-platform index.
    #[arg(required = true, value_name = "BINARY")]
    pub(crate) binaries: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) image: ImageArgs,
}

/// Everything about the image and where it goes: shared by `pack` and `cargo scratchpack`.
/// Unset values are `None` or empty, so that `cargo scratchpack` can tell a flag from a default
/// and let flags override `[package.metadata.scratchpack]`.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct ImageArgs {
    /// Where the image goes: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF],
    /// docker://HOST/REPO[:TAG], docker-daemon:[NAME[:TAG]] (the engine behind DOCKER_HOST),
    /// podman:[NAME[:TAG]] (the podman service, or CONTAINER_HOST). Repeatable.
    #[arg(short, long = "output", value_name = "DEST")]
    pub(crate) outputs: Vec<String>,
    /// Tag for destinations that name none (repeatable) [default: latest].
    #[arg(short, long = "tag", value_name = "TAG")]
    pub(crate) tags: Vec<String>,
    /// Path of the binary inside the image [default: /usr/local/bin/NAME].
    #[arg(long, value_name = "PATH")]
    pub(crate) path: Option<String>,
    /// A further program of the image's platform, at DEST [default: /usr/local/bin/NAME; DIR/
    /// keeps the name], with its libraries and needs (repeatable). The binary stays the entrypoint.
    #[arg(long = "also", value_name = "PROGRAM[:DEST]")]
    pub(crate) also: Vec<AlsoSpec>,
    /// Image to build on: oci:DIR[:TAG] or oci-archive:FILE[:TAG], with an optional @sha256:DIGEST.
    /// Its files and config stand; scratchpack adds the program and what the base lacks.
    #[arg(long, value_name = "IMAGE")]
    pub(crate) base: Option<String>,
    /// Keep the --base image's labels (dropped by default: they describe the base, not the program).
    #[arg(long)]
    pub(crate) inherit_labels: bool,
    /// User the program runs as: UID[:GID] or NAME[:GROUP] [default: 65532:65532, or the base's].
    #[arg(long)]
    pub(crate) user: Option<String>,
    /// Environment variable K=V (repeatable).
    #[arg(long = "env", value_name = "K=V")]
    pub(crate) env: Vec<String>,
    /// Working directory of the program.
    #[arg(long, value_name = "DIR")]
    pub(crate) workdir: Option<String>,
    /// Port the program listens on: PORT[/tcp|/udp] (repeatable).
    #[arg(long, value_name = "PORT")]
    pub(crate) expose: Vec<String>,
    /// Config label K=V (repeatable).
    #[arg(long = "label", value_name = "K=V")]
    pub(crate) labels: Vec<String>,
    /// Manifest annotation K=V (repeatable).
    #[arg(long = "annotation", value_name = "K=V")]
    pub(crate) annotations: Vec<String>,
    /// Default argument passed to the program: the image's Cmd (repeatable).
    #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
    pub(crate) args: Vec<String>,
    /// Extra file or folder: SRC:DEST[:MODE[:UID[:GID]]] (repeatable); MODE octal, empty for the
    /// default (0755 executables and folders, else 0644); owner root unless given.
    #[arg(long = "add", value_name = "SRC:DEST[:MODE[:UID[:GID]]]")]
    pub(crate) add: Vec<AddSpec>,
    /// Empty folder: DEST[:MODE[:UID[:GID]]] (repeatable) [default: 0755, root], e.g.
    /// /var/cache/app::65532:65532 for one the default user writes to.
    #[arg(long = "mkdir", value_name = "DEST[:MODE[:UID[:GID]]]")]
    pub(crate) mkdir: Vec<MkdirSpec>,
    /// Give DEST to the image's user (--user's UID:GID): an --add or --mkdir path with what they
    /// put in it, a base path such as /tmp, or the program (repeatable).
    #[arg(long = "chown-to-user", value_name = "DEST")]
    pub(crate) chown_to_user: Vec<String>,
    /// File capability of the program (repeatable): net_bind_service (or cap_net_bind_service,
    /// CAP_NET_BIND_SERVICE) lets it bind ports under 1024 without root.
    #[arg(long = "cap", value_name = "NAME")]
    pub(crate) caps: Vec<String>,
    /// CA certificates in the image: builtin (Mozilla), host, none, or a PEM file [default: builtin].
    #[arg(long, value_name = "builtin|host|none|PATH")]
    pub(crate) ca_bundle: Option<CaBundle>,
    /// Extra PEM certificate(s) appended to the bundle, for private CAs (repeatable). Only the
    /// certificates go in; a file holding a private key is refused.
    #[arg(long, value_name = "PEM")]
    pub(crate) extra_ca: Vec<PathBuf>,
    /// Layer compression [default: gzip].
    #[arg(long, value_parser = choice::<Compression>(Compression::NAMES))]
    pub(crate) compression: Option<Compression>,
    #[command(flatten)]
    pub(crate) resolve: ResolveArgs,
    /// Pack a dynamic program even when some of its libraries are not found.
    #[arg(long)]
    pub(crate) allow_missing: bool,
    /// Refuse dynamically linked programs (for pipelines that promise static images).
    #[arg(long)]
    pub(crate) static_only: bool,
    /// Bundle time zones at /usr/share/zoneinfo: when the program reads time zones, always, or
    /// never [default: auto]. A program that needs them and finds none in --tzdata-source fails the pack.
    #[arg(long, value_parser = choice::<Tzdata>(Tzdata::NAMES))]
    pub(crate) tzdata: Option<Tzdata>,
    /// Where the time zones come from: builtin (the IANA release scratchpack carries, the same
    /// layer on every machine), host (/usr/share/zoneinfo, or the --sysroot's), or a zoneinfo
    /// folder [default: builtin].
    #[arg(long, value_name = "builtin|host|DIR")]
    pub(crate) tzdata_source: Option<TzdataSource>,
    /// Remove debug sections and the static symbol table from each program before it is packed.
    /// What runs and what scanners read stays: every loaded section, notes (build-id), .dep-v0
    /// (cargo-auditable) and .go.buildinfo.
    #[arg(long)]
    pub(crate) strip: bool,
    /// SBOM of each image, from cargo-auditable data and the image's files: attached as an OCI
    /// referrer on push, kept beside the image in OCI layouts [default: none; spdx for cargo scratchpack].
    #[arg(long, value_parser = choice::<SbomFormat>(SbomFormat::NAMES))]
    pub(crate) sbom: Option<SbomFormat>,
    /// Also write each SBOM into this folder.
    #[arg(long, value_name = "DIR")]
    pub(crate) sbom_dir: Option<PathBuf>,
    /// Fail, writing nothing, when an image is larger than this, compressed (each platform's image
    /// on its own): 10MB, 10MiB, 500kB, or bytes. Without it, an image over 10 MB gets a warning.
    #[arg(long, value_name = "SIZE")]
    pub(crate) max_size: Option<ByteSize>,
    /// The image's creation time (config `created`): now, commit (of HEAD of the git repository
    /// here), epoch, or an RFC 3339 time such as 2026-01-02T03:04:05Z. SOURCE_DATE_EPOCH, when set,
    /// wins. Layer times do not change [default: epoch; commit for cargo scratchpack].
    #[arg(long, value_name = "now|commit|epoch|TIME")]
    pub(crate) created: Option<String>,
    /// Sign every manifest and index written, as cosign does (a referrer and the `sha256-<hex>.sig`
    /// tag), with this ECDSA P-256 private key (PKCS#8 PEM). Without it, the PEM in
    /// SCRATCHPACK_SIGN_KEY, if set.
    #[arg(long, value_name = "KEY.pem")]
    pub(crate) sign_key: Option<PathBuf>,
    /// Attach SLSA v1 provenance to each image and the index (DSSE, signed with --sign-key)
    /// [default: off; on for cargo scratchpack when a key is given].
    #[arg(long)]
    pub(crate) provenance: bool,
    /// Print a JSON summary on stdout instead of one line per destination.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_choice_parses_and_prints_back() {
        fn round_trip<T: FromStr + ToString>(names: &[&str]) {
            for name in names {
                assert_eq!(name.parse::<T>().ok().map(|value| value.to_string()).as_deref(), Some(*name));
            }
        }
        round_trip::<Compression>(Compression::NAMES);
        round_trip::<Tzdata>(Tzdata::NAMES);
        round_trip::<SbomFormat>(SbomFormat::NAMES);
        assert_eq!("brotli".parse::<Compression>().unwrap_err(), "\"brotli\": expected gzip or zstd");
    }

    #[test]
    fn durations_never_overflow() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("18446744073709551615h"), Err("\"18446744073709551615h\" is too long a duration".into()));
        assert_eq!(parse_duration("18446744073709551615"), Ok(Duration::from_secs(u64::MAX)));
    }

    #[test]
    fn the_command_line_is_consistent() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }
}
