//! Compiles the vendored libdeflate compressor (vendor/libdeflate, patched for sync-flush chunks:
//! see its README.md) into a static library for src/image/deflate.rs, and lists the vendored time
//! zones (tzdata/zoneinfo, see its README.md) for src/rootfs/zoneinfo.rs.

use std::path::Path;

/// Every global symbol of the two objects, renamed with a `scratchpack_` prefix: a dependency that
/// links its own libdeflate (libdeflate-sys, say) then cannot clash with this patched copy.
const SYMBOLS: &[&str] = &[
    "libdeflate_alloc_compressor",
    "libdeflate_alloc_compressor_ex",
    "libdeflate_deflate_compress",
    "libdeflate_deflate_compress_chunk",
    "libdeflate_deflate_compress_bound",
    "libdeflate_set_max_insert_length",
    "libdeflate_free_compressor",
    "libdeflate_get_compression_level",
    "libdeflate_set_memory_allocator",
    "libdeflate_aligned_malloc",
    "libdeflate_aligned_free",
    "libdeflate_default_malloc_func",
    "libdeflate_default_free_func",
    "libdeflate_assertion_failed",
];

fn main() {
    zoneinfo();
    println!("cargo:rerun-if-changed=vendor/libdeflate");
    let mut build = cc::Build::new();
    build
        .files(["vendor/libdeflate/lib/deflate_compress.c", "vendor/libdeflate/lib/utils.c"])
        .include("vendor/libdeflate")
        // Optimised in every profile: the tests pack real binaries through it.
        .opt_level(2)
        // Vendored code: its upstream warnings are not ours to fix.
        .warnings(false);
    for symbol in SYMBOLS {
        build.define(symbol, Some(format!("scratchpack_{symbol}").as_str()));
    }
    build.compile("scratchpack_libdeflate");
}

/// Writes `$OUT_DIR/zoneinfo.rs`: `FILES`, every file of tzdata/zoneinfo (path, bytes), sorted by
/// path; `LINKS`, every alias of tzdata.zi (alias, zone).
fn zoneinfo() {
    println!("cargo:rerun-if-changed=tzdata");
    let root = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("tzdata/zoneinfo");
    let mut files = Vec::new();
    walk(&root, "", &mut files);
    files.sort();
    let zi = std::fs::read_to_string(root.join("tzdata.zi")).expect("tzdata/zoneinfo/tzdata.zi");
    let mut links: Vec<(String, String)> = zi
        .lines()
        .filter_map(|line| line.strip_prefix("L "))
        .map(|rest| {
            let mut words = rest.split_whitespace();
            let (zone, alias) = (words.next().expect("L ZONE ALIAS"), words.next().expect("L ZONE ALIAS"));
            assert!(files.iter().any(|f| f == zone), "tzdata.zi links {alias} to {zone}, which is not in tzdata/zoneinfo");
            (alias.to_string(), zone.to_string())
        })
        .collect();
    links.sort();
    let mut out =
        String::from("/// Every vendored file: its path under zoneinfo, its bytes.\npub(crate) static FILES: &[(&str, &[u8])] = &[\n");
    for file in &files {
        out.push_str(&format!("    ({file:?}, include_bytes!({:?})),\n", root.join(file).display().to_string()));
    }
    out.push_str("];\n/// Every alias: its path, the zone it names.\npub(crate) static LINKS: &[(&str, &str)] = &[\n");
    for (alias, zone) in &links {
        out.push_str(&format!("    ({alias:?}, {zone:?}),\n"));
    }
    out.push_str("];\n");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets it");
    std::fs::write(Path::new(&out_dir).join("zoneinfo.rs"), out).expect("OUT_DIR is writable");
}

fn walk(dir: &Path, prefix: &str, files: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("tzdata/zoneinfo is readable") {
        let entry = entry.expect("tzdata/zoneinfo is readable");
        let name = entry.file_name().into_string().expect("zone names are UTF-8");
        let path = format!("{prefix}{name}");
        if entry.file_type().expect("tzdata/zoneinfo is readable").is_dir() {
            walk(&entry.path(), &format!("{path}/"), files);
        } else {
            files.push(path);
        }
    }
}
