//! scratchpack: turn a compiled Linux program into the smallest OCI image that runs it.
//!
//! The pipeline, one module per step: `elf` (what the binary is) → `needs` (what it needs at run
//! time) → `rootfs` (which files the image holds) → `image` (layers, config, manifests) → `dest`
//! (where the image goes, through `layout` and `registry`). `pack` runs the pipeline, `push` sends
//! an image already packed; `cli` and `cargo` are the front ends, and only they know clap.
//!
//! The library API, for the two binaries, the fuzz targets and the tests: [`pack::pack`] with
//! [`pack::PackOptions`]; [`push::push`]; [`elf::inspect`] and [`needs::decide`]; the reference
//! types in [`registry`] and [`dest::DestSpec`]; [`cli::report`], the error edge.

pub mod atomic;
pub mod cargo;
pub mod cleanup;
pub mod cli;
pub mod dest;
pub mod elf;
pub mod image;
pub mod layout;
pub mod needs;
pub mod pack;
pub mod platform;
pub mod printer;
pub mod push;
pub mod registry;
pub mod rootfs;
pub mod sbom;
