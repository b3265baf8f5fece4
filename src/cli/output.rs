//! What the commands print on stdout: `inspect`'s text and JSON (of a binary or of an image), one `REFERENCE@DIGEST` line per
//! destination, or the `--json` summary of a pack or push.

use std::fmt::Write;

use serde_json::json;

use crate::dest::Published;
use crate::elf::ElfInfo;
use crate::image::survey::{ImageReport, ReferrerReport};
use crate::needs::{Needs, ZONEINFO};
use crate::pack::Packed;
use crate::printer::Printer;
use crate::rootfs::base::BASE_FILES;

pub(crate) fn inspect_text(info: &ElfInfo, needs: &Needs) -> String {
    let resolution = needs.resolution.as_ref();
    let mut out = String::new();
    let list = |items: &[String]| if items.is_empty() { "-".to_string() } else { items.join(", ") };
    let _ = writeln!(out, "file:        {}", info.file.display());
    let _ = writeln!(out, "platform:    {}", info.platform);
    let _ = writeln!(out, "linkage:     {}", info.linkage.as_str());
    let _ = writeln!(out, "interpreter: {}", info.interpreter.as_deref().unwrap_or("-"));
    let _ = writeln!(out, "needed:      {}", list(&info.needed));
    if !info.rpath.is_empty() {
        let _ = writeln!(out, "rpath:       {}", info.rpath.join(":"));
    }
    if !info.runpath.is_empty() {
        let _ = writeln!(out, "runpath:     {}", info.runpath.join(":"));
    }
    let _ = writeln!(out, "size:        {} bytes", info.size);
    let _ = write!(out, "stripped:    {}", if info.stripped { "yes" } else { "no" });
    if let Some(resolution) = resolution {
        let _ = write!(out, "\nlibraries:");
        if resolution.libraries.is_empty() && resolution.missing.is_empty() {
            let _ = write!(out, " -");
        }
        // A tree: each library under the object that first needed it, in load order.
        let mut depth: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        let program = info.file_name();
        depth.insert(program.as_str(), 0);
        for library in &resolution.libraries {
            let level = depth.get(library.needed_by.as_str()).copied().unwrap_or(0) + 1;
            depth.insert(library.name.as_str(), level);
            let _ = write!(out, "\n{}{} => {} ({})", "  ".repeat(level), library.name, library.host_path.display(), library.rule.as_str());
        }
        for missing in &resolution.missing {
            let level = depth.get(missing.needed_by.as_str()).copied().unwrap_or(0) + 1;
            let _ = write!(out, "\n{}{} => not found (needed by {})", "  ".repeat(level), missing.name, missing.needed_by);
        }
    }
    let _ = write!(out, "\nhints:");
    if needs.clues.is_empty() {
        let _ = write!(out, "       -");
    }
    for clue in &needs.clues {
        let _ = write!(out, "\n  {}: {}", clue.kind.as_str(), clue.evidence.join(", "));
    }
    let _ = write!(out, "\nimage files:");
    for path in program_files(info, needs) {
        let _ = write!(out, "\n  {path}");
    }
    // The base files, on one line: they are the same in every image.
    let _ = write!(out, "\n  {}", BASE_FILES.join(", "));
    out
}

/// What the image would get besides the base files, as image paths.
fn program_files(info: &ElfInfo, needs: &Needs) -> Vec<String> {
    let mut files = vec![format!("/usr/local/bin/{}", info.file_name())];
    if let Some(resolution) = &needs.resolution {
        files.extend(resolution.interpreter.iter().map(|(path, _)| path.clone()));
        files.extend(resolution.libraries.iter().map(|l| l.image_path.clone()));
    }
    if needs.zoneinfo.is_some() {
        files.push(format!("{ZONEINFO}/"));
    }
    files
}

/// Stable for scripts: `interpreter` is the host path of the loader (or null), `libraries` lists
/// `{name, path, rule}` (plus `image_path` and `needed_by`) in load order, `files` every path the
/// image would hold, one per element (the README shows the whole schema).
pub(crate) fn inspect_json(info: &ElfInfo, needs: &Needs) -> serde_json::Value {
    let resolution = needs.resolution.as_ref();
    let interpreter = resolution.and_then(|r| r.interpreter.as_ref()).map(|(_, host)| host.display().to_string());
    let libraries: Vec<_> = resolution
        .map(|r| {
            r.libraries
                .iter()
                .map(|l| {
                    json!({
                        "name": l.name,
                        "path": l.host_path.display().to_string(),
                        "image_path": l.image_path,
                        "rule": l.rule.as_str(),
                        "needed_by": l.needed_by,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let missing: Vec<_> =
        resolution.map(|r| r.missing.iter().map(|m| json!({"name": m.name, "needed_by": m.needed_by})).collect()).unwrap_or_default();
    json!({
        "file": info.file.display().to_string(),
        "platform": info.platform,
        "linkage": info.linkage.as_str(),
        "interpreter": interpreter,
        "interpreter_name": info.interpreter,
        "libraries": libraries,
        "missing": missing,
        "hints": needs.clues,
        "files": program_files(info, needs).into_iter().chain(BASE_FILES.iter().map(|path| path.to_string())).collect::<Vec<_>>(),
        "needed": info.needed,
        "rpath": info.rpath,
        "runpath": info.runpath,
        "class": info.class,
        "size": info.size,
        "stripped": info.stripped,
    })
}

/// One line per destination: `REFERENCE@DIGEST`, or with `--json` a summary of what was written
/// (and of the image, for a pack).
pub(crate) fn print_published(
    printer: &Printer,
    published: &[(String, Published)],
    packed: Option<&Packed>,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let summary = match packed {
            Some(packed) => summary_json(packed, published),
            None => json!({ "destinations": destinations_json(published) }),
        };
        printer.result(&serde_json::to_string_pretty(&summary)?);
    } else {
        for (_, written) in published {
            printer.result(&written.to_string());
        }
    }
    Ok(())
}

fn destinations_json(published: &[(String, Published)]) -> Vec<serde_json::Value> {
    published
        .iter()
        .map(|(output, written)| {
            let mut entry = json!({"output": output, "reference": written.pinned()});
            if let Some(platform) = &written.platform {
                entry["platform"] = json!(platform);
            }
            entry
        })
        .collect()
}

/// The `--json` summary of a pack.
pub(crate) fn summary_json(packed: &Packed, published: &[(String, Published)]) -> serde_json::Value {
    let image = &packed.image;
    let images: Vec<_> = image
        .images()
        .iter()
        .zip(&packed.programs)
        .zip(&packed.bases)
        .map(|((image, programs), base)| {
            let mut entry = json!({
                "platform": image.platform.to_string(),
                "programs": programs,
                "digest": image.manifest.digest.to_string(),
                "config": image.config.digest.to_string(),
                "layers": image.layers.iter().map(|l| json!({
                    "digest": l.blob.digest.to_string(),
                    "mediaType": l.blob.media_type,
                    "size": l.blob.size,
                    "diffId": l.diff_id.to_string(),
                    "uncompressedSize": l.uncompressed_size,
                })).collect::<Vec<_>>(),
            });
            if let Some((name, digest)) = base {
                entry["base"] = json!({ "name": name, "digest": digest.to_string() });
            }
            entry
        })
        .collect();
    json!({
        "digest": image.root().digest.to_string(),
        "mediaType": image.root().media_type,
        "size": image.total_size(),
        "platforms": image.images().iter().map(|i| i.platform.to_string()).collect::<Vec<_>>(),
        "images": images,
        "destinations": destinations_json(published),
    })
}

/// Text an image carries (paths, env, labels, annotations), as the terminal gets it: control
/// characters escaped as `\u{1b}`, so an image cannot move the cursor or forge a line.
fn shown(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { format!("\\u{{{:x}}}", u32::from(c)) } else { c.to_string() }).collect()
}

/// `inspect IMAGE` as text: the image, then each platform's config, layers and referrers. Every
/// text from the image is escaped ([`shown`]).
pub(crate) fn image_text(reference: &str, report: &ImageReport) -> String {
    let mut out = String::new();
    let list =
        |items: &[String]| if items.is_empty() { "-".to_string() } else { items.iter().map(|i| shown(i)).collect::<Vec<_>>().join(", ") };
    let lines = |items: &[String]| {
        if items.is_empty() {
            "-".to_string()
        } else {
            items.iter().map(|i| shown(i)).collect::<Vec<_>>().join("\n               ")
        }
    };
    let pairs = |map: &std::collections::BTreeMap<String, String>| map.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>();
    let _ = writeln!(out, "image:       {}", shown(reference));
    let _ = writeln!(out, "digest:      {}", report.digest);
    let _ = writeln!(out, "media type:  {}", shown(&report.media_type));
    let _ = write!(out, "platforms:   {}", list(&report.platforms));
    if !report.annotations.is_empty() {
        let _ = write!(out, "\nannotations: {}", lines(&pairs(&report.annotations)).replace("\n               ", "\n             "));
    }
    write_referrers(&mut out, "", &report.referrers);
    for image in &report.images {
        let config = &image.config;
        let one = |value: &Option<String>| value.as_deref().map_or("-".to_string(), shown);
        let array = |values: &[String]| if values.is_empty() { "-".to_string() } else { shown(&json!(values).to_string()) };
        let _ = write!(out, "\n\n{} {}", shown(&image.platform), image.digest);
        let _ = write!(out, "\n  created:     {}", one(&config.created));
        let _ = write!(out, "\n  user:        {}", one(&config.user));
        let _ = write!(out, "\n  entrypoint:  {}", array(&config.entrypoint));
        let _ = write!(out, "\n  cmd:         {}", array(&config.cmd));
        let _ = write!(out, "\n  workdir:     {}", one(&config.working_dir));
        let _ = write!(out, "\n  env:         {}", lines(&config.env));
        let _ = write!(out, "\n  labels:      {}", lines(&pairs(&config.labels)));
        let _ = write!(out, "\n  annotations: {}", lines(&pairs(&image.annotations)));
        let total: u64 = image.layers.iter().map(|l| l.size).sum();
        let _ = write!(out, "\n  layers:      {}, {total} bytes", image.layers.len());
        for layer in &image.layers {
            let _ = write!(
                out,
                "\n    {}  {} bytes ({} uncompressed), {} file{}",
                layer.digest,
                layer.size,
                layer.uncompressed_size,
                layer.files,
                if layer.files == 1 { "" } else { "s" }
            );
            for file in &layer.largest {
                let _ = write!(out, "\n      {:>10}  {}", file.size, shown(&file.path));
            }
        }
        write_referrers(&mut out, "  ", &image.referrers);
    }
    out
}

fn write_referrers(out: &mut String, indent: &str, referrers: &[ReferrerReport]) {
    if referrers.is_empty() {
        return;
    }
    let _ = write!(out, "\n{indent}referrers:");
    for referrer in referrers {
        let _ = write!(out, "\n{indent}  {} {} ({} bytes)", referrer.digest, shown(&referrer.artifact_type), referrer.size);
    }
}

/// `inspect IMAGE --json`: stable for scripts (the README shows the schema).
pub(crate) fn image_json(reference: &str, report: &ImageReport) -> serde_json::Value {
    let mut value = serde_json::to_value(report).expect("the report serialises");
    value["reference"] = json!(reference);
    value
}
