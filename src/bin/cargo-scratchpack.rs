//! `cargo scratchpack`: cargo runs `cargo-scratchpack scratchpack ARGS…`.

use std::process::ExitCode;

use clap::Parser;

use scratchpack::cargo::CargoCli;

fn main() -> ExitCode {
    let CargoCli::Scratchpack(args) = CargoCli::parse();
    scratchpack::cleanup::install();
    scratchpack::cli::report(scratchpack::cargo::run(args))
}
