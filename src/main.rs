//! The `scratchpack` command: parse, run one subcommand, print the error with a hint.

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use scratchpack::cli::{Cli, Command};
use scratchpack::printer::Printer;
use scratchpack::{elf, errors, pack, report, stored};

fn main() -> ExitCode {
    let cli = Cli::parse();
    scratchpack::cleanup::install();
    let printer = Printer::new(cli.quiet, cli.verbose);
    match run(cli.command, &printer) {
        Ok(()) => ExitCode::SUCCESS,
        // `scratchpack … | head` closing the pipe is not an error.
        Err(error)
            if error.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)) =>
        {
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            if let Some(hint) = errors::hint(&error) {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command, printer: &Printer) -> Result<()> {
    match command {
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "scratchpack", &mut std::io::stdout());
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(command).render(&mut std::io::stdout())?;
        }
        Command::Inspect(args) => {
            let info = elf::inspect(&args.binary)?;
            let options = scratchpack::needs::NeedsOptions {
                sysroot: args.resolve.sysroot.clone(),
                library_path: args.resolve.library_dirs(),
                allow_missing: true,
                static_only: false,
                tzdata: scratchpack::needs::Tzdata::Auto,
            };
            let image_path = format!("/usr/local/bin/{}", info.file_name());
            let needs = scratchpack::needs::decide(&info, &image_path, &options)?;
            let text = if args.json {
                serde_json::to_string_pretty(&report::inspect_json(&info, &needs))?
            } else {
                report::inspect_text(&info, &needs)
            };
            printer.result(&text);
        }
        Command::Push(args) => {
            let lines = stored::push(&args, printer)?;
            if args.json {
                let json: Vec<_> =
                    lines.iter().map(|(output, reference)| serde_json::json!({"output": output, "reference": reference})).collect();
                printer.result(&serde_json::to_string_pretty(&serde_json::json!({ "destinations": json }))?);
            } else {
                for (_, line) in &lines {
                    printer.result(line);
                }
            }
        }
        Command::Pack(args) => {
            let epoch = std::env::var("SOURCE_DATE_EPOCH").ok();
            let options = pack::PackOptions::from_args(&args.binaries, &args.image, epoch.as_deref(), printer)?;
            let (packed, lines) = pack::pack(&options, printer)?;
            if args.image.json {
                printer.result(&serde_json::to_string_pretty(&pack::summary_json(&packed, &lines))?);
            } else {
                for (_, line) in &lines {
                    printer.result(line);
                }
            }
        }
    }
    Ok(())
}
