//! One subcommand of `scratchpack`, from parsed arguments to what it prints on stdout.

use anyhow::Result;

use super::output::{inspect_json, inspect_text, print_published};
use super::{pack_options, Cli, Command, InspectArgs};
use crate::needs::{self, NeedsOptions, Tzdata};
use crate::printer::Printer;
use crate::{elf, pack, push};

pub fn run(command: Command, printer: &Printer) -> Result<()> {
    match command {
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "scratchpack", &mut std::io::stdout());
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(command).render(&mut std::io::stdout())?;
        }
        Command::Inspect(args) => inspect(&args, printer)?,
        Command::Verify(args) => {
            let options = crate::verify::VerifyOptions {
                image: args.image.clone(),
                key: args.key.clone(),
                registry: super::options::registry_context(&args.registry, printer),
            };
            crate::verify::verify(&options, &mut |line| printer.result(line))?;
        }
        Command::Push(args) => {
            let published = push::push(&args.options(printer)?)?;
            print_published(printer, &published, None, args.json)?;
        }
        Command::Pack(args) => {
            let epoch = std::env::var("SOURCE_DATE_EPOCH").ok();
            let options = pack_options(&args.binaries, &args.image, epoch.as_deref(), printer)?;
            let (packed, published) = pack::pack(&options, printer)?;
            let results = if options.writes_to_stdout() { printer.with_results_on_stderr() } else { *printer };
            print_published(&results, &published, Some(&packed), args.image.json)?;
        }
    }
    Ok(())
}

/// `inspect` resolves as a pack would, but reports a missing library instead of failing on it.
fn inspect(args: &InspectArgs, printer: &Printer) -> Result<()> {
    let info = elf::inspect(&args.binary)?;
    let options = NeedsOptions {
        sysroot: args.resolve.sysroot.clone(),
        library_path: args.resolve.library_dirs(),
        allow_missing: true,
        static_only: false,
        tzdata: Tzdata::Auto,
        tzdata_source: Default::default(),
    };
    let image_path = format!("/usr/local/bin/{}", info.file_name());
    let needs = needs::decide(&info, &image_path, &options)?;
    let text = match args.json {
        true => serde_json::to_string_pretty(&inspect_json(&info, &needs))?,
        false => inspect_text(&info, &needs),
    };
    printer.result(&text);
    Ok(())
}
