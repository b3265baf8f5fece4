//! scratchpack: turn a compiled Linux program into the smallest OCI image that runs it.
//!
//! The pipeline, one module per step: `elf` (what the binary is) → `needs` (what it needs at run
//! time) → `rootfs` (which files the image holds) → `image` (layers, config, manifests) → `dest`
//! (where the image goes, through `layout`, `registry` and `engine`). `pack` runs the pipeline, `push` sends
//! an image already packed, `copy` reads an image from anywhere (a layout, an archive, a registry)
//! and writes it elsewhere; `sign` makes and checks signatures and attestations, which `pack` and
//! `push` attach and `verify` checks; `cli` and `cargo` are the front ends, and only they know clap.
//!
//! Everything is `pub(crate)` but the API the two binaries, the fuzz targets and the tests use:
//! - the front ends: [`cli::Cli`] and [`cli::run`], [`cargo::CargoCli`] and [`cargo::run`],
//!   [`cli::report`] (the error edge of both), [`printer::Printer`], [`cleanup::install`];
//! - ELF inspection and ld.so resolution: [`elf::inspect_bytes`], [`elf::ElfInfo`],
//!   [`elf::resolve::resolve`], [`elf::clues::detect`], [`needs::decide`] with [`needs::NeedsOptions`];
//! - references: [`registry::Reference`], [`registry::Repository`], [`registry::Tag`],
//!   [`dest::DestSpec`]; credentials and challenges: [`registry::auth`]; what registries send back
//!   (token answers, error bodies, capped reads, text made safe to print): [`registry::answers`];
//! - [`image::config::rfc3339`], the time format of the images' `created`;
//! - [`rootfs::pem::certificate_pem`], which certificates of a CA PEM file may go into an image.

#[macro_use]
mod spelled;

pub(crate) mod atomic;
pub(crate) mod base_image;
pub mod cargo;
pub mod cleanup;
pub mod cli;
pub(crate) mod copy;
pub(crate) mod created;
pub mod dest;
pub mod elf;
pub(crate) mod engine;
pub mod image;
pub(crate) mod input_file;
pub(crate) mod layout;
pub mod needs;
pub(crate) mod pack;
pub mod platform;
pub mod printer;
pub(crate) mod push;
pub mod registry;
pub mod rootfs;
pub(crate) mod sbom;
pub(crate) mod sign;
pub(crate) mod verify;
