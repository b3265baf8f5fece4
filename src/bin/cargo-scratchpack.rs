//! `cargo scratchpack`: cargo runs `cargo-scratchpack scratchpack ARGS…`.

use std::process::ExitCode;

use clap::Parser;

use scratchpack::cargo::CargoCli;

fn main() -> ExitCode {
    let CargoCli::Scratchpack(args) = CargoCli::parse();
    scratchpack::cleanup::install();
    match scratchpack::cargo::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            if let Some(hint) = scratchpack::errors::hint(&error) {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}
