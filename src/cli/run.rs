//! One subcommand of `scratchpack`, from parsed arguments to what it prints on stdout.

use anyhow::{Context, Result};

use super::failure::to_stdout;
use super::output::{image_json, image_text, inspect_json, inspect_text, print_published};
use super::{pack_options, Cli, Command, InspectArgs, Times};
use crate::needs::{self, NeedsOptions, Tzdata};
use crate::printer::Printer;
use crate::{elf, pack, push};

pub fn run(command: Command, printer: &Printer) -> Result<()> {
    match command {
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "scratchpack", &mut script);
            to_stdout(std::io::Write::write_all(&mut std::io::stdout(), &script))?;
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            to_stdout(clap_mangen::Man::new(command).render(&mut std::io::stdout()))?;
        }
        Command::Inspect(args) => inspect(&args, printer)?,
        Command::Copy(args) => {
            let options = args.options(printer);
            let written = crate::copy::copy(&options)?;
            print_published(printer, &[(args.destination.clone(), written)], None, args.json)?;
        }
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
            let options = pack_options(&args.binaries, &args.image, &Times::of_pack(epoch.as_deref()), printer)?;
            let (packed, published) = pack::pack(&options, printer)?;
            let results = if options.writes_to_stdout() { printer.with_results_on_stderr() } else { *printer };
            print_published(&results, &published, Some(&packed), args.image.json)?;
        }
    }
    Ok(())
}

/// `inspect` resolves as a pack would, but reports a missing library instead of failing on it.
fn inspect(args: &InspectArgs, printer: &Printer) -> Result<()> {
    let text = args.binary.to_string_lossy();
    // An existing file is a binary, whatever its name; an image reference is told by its prefix.
    if !args.binary.is_file() && crate::copy::Source::is_image_reference(&text) {
        return inspect_image(&text, args, printer);
    }
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

/// `inspect oci:…|oci-archive:…|docker://…`: what the image holds.
fn inspect_image(text: &str, args: &InspectArgs, printer: &Printer) -> Result<()> {
    let source: crate::copy::Source = text.parse()?;
    let registry = super::options::registry_context(&args.registry, printer);
    let image = crate::copy::read(&source, &registry).with_context(|| format!("reading {text}"))?;
    let report = crate::image::survey::survey(&image).with_context(|| format!("reading the layers of {text}"))?;
    let out = match args.json {
        true => serde_json::to_string_pretty(&image_json(text, &report))?,
        false => image_text(text, &report),
    };
    printer.result(&out);
    Ok(())
}
