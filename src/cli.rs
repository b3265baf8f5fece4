//! Command-line definitions (clap). No logic: values are checked and turned into options in `pack`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::image::Compression;
use crate::rootfs::add::AddSpec;
use crate::rootfs::base::CaBundle;

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
    /// Show what a binary is: platform, linkage, interpreter, needed libraries, size.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The ELF file to inspect.
    pub binary: PathBuf,
    /// Print JSON on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Clone)]
pub struct PackArgs {
    /// The program(s) to pack. Several binaries of different platforms make one multi-platform index.
    #[arg(required = true, value_name = "BINARY")]
    pub binaries: Vec<PathBuf>,
    /// Where the image goes: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF]. Repeatable.
    #[arg(short, long = "output", value_name = "DEST", required = true)]
    pub outputs: Vec<String>,
    /// Tag for destinations that name none (repeatable).
    #[arg(short, long = "tag", value_name = "TAG", default_value = "latest")]
    pub tags: Vec<String>,
    /// Path of the binary inside the image [default: /usr/local/bin/NAME].
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// User the program runs as: UID[:GID] or NAME[:GROUP].
    #[arg(long, default_value = "65532:65532")]
    pub user: String,
    /// Environment variable K=V (repeatable).
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Working directory of the program.
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Port the program listens on: PORT[/tcp|/udp] (repeatable).
    #[arg(long, value_name = "PORT")]
    pub expose: Vec<String>,
    /// Config label K=V (repeatable).
    #[arg(long = "label", value_name = "K=V")]
    pub labels: Vec<String>,
    /// Manifest annotation K=V (repeatable).
    #[arg(long = "annotation", value_name = "K=V")]
    pub annotations: Vec<String>,
    /// Default argument passed to the program: the image's Cmd (repeatable).
    #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// Extra file or folder: SRC:DEST[:MODE] (repeatable).
    #[arg(long = "add", value_name = "SRC:DEST[:MODE]")]
    pub add: Vec<AddSpec>,
    /// CA certificates in the image: builtin (Mozilla), host, none, or a PEM file.
    #[arg(long, value_name = "builtin|host|none|PATH", default_value = "builtin")]
    pub ca_bundle: CaBundle,
    /// Extra PEM certificate(s) appended to the bundle, for private CAs (repeatable).
    #[arg(long, value_name = "PEM")]
    pub extra_ca: Vec<PathBuf>,
    /// Layer compression.
    #[arg(long, value_enum, default_value = "gzip")]
    pub compression: Compression,
    /// Print a JSON summary on stdout instead of one line per destination.
    #[arg(long)]
    pub json: bool,
}
