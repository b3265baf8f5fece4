//! Compiles the vendored libdeflate compressor (vendor/libdeflate, patched for sync-flush chunks:
//! see its README.md) into a static library for src/image/deflate.rs.

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
