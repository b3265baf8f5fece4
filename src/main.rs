//! The `scratchpack` command: parse, run one subcommand, report the outcome.

use std::process::ExitCode;

use clap::Parser;

use scratchpack::cli::{self, Cli};
use scratchpack::printer::Printer;

fn main() -> ExitCode {
    let cli = Cli::parse();
    scratchpack::cleanup::install();
    let printer = Printer::new(cli.quiet, cli.verbose);
    cli::report(cli::run(cli.command, &printer))
}
