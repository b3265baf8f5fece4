//! scratchpack: turn a compiled Linux program into the smallest OCI image that runs it.
//!
//! The pipeline, one module per step:
//! `elf` (what the binary is) → `rootfs` (which files the image holds) → `image` (layers, config,
//! manifests) → `dest` (where the image goes). `pack` runs the pipeline; `cli` only parses;
//! `printer` owns stdout and stderr.

pub mod cargo;
pub mod cleanup;
pub mod cli;
pub mod dest;
pub mod elf;
pub mod errors;
pub mod hints;
pub mod image;
pub mod needs;
pub mod pack;
pub mod platform;
pub mod printer;
pub mod registry;
pub mod report;
pub mod rootfs;
pub mod sbom;
pub mod stored;
