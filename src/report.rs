//! How `inspect` shows an ELF to a person, and to a script (`--json`).

use std::fmt::Write;

use serde_json::json;

use crate::elf::ElfInfo;

pub fn inspect_text(info: &ElfInfo) -> String {
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
    out
}

pub fn inspect_json(info: &ElfInfo) -> serde_json::Value {
    json!({
        "file": info.file.display().to_string(),
        "platform": info.platform,
        "linkage": info.linkage.as_str(),
        "interpreter": info.interpreter,
        "needed": info.needed,
        "rpath": info.rpath,
        "runpath": info.runpath,
        "class": info.class,
        "size": info.size,
        "stripped": info.stripped,
    })
}
