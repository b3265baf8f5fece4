//! Integration tests: the real `scratchpack` binary against real tools. One module per area.

mod bad_input;
mod bounded_memory;
mod cargo;
mod cli;
mod destinations;
mod faults;
mod harness;
mod hostile_certs;
mod hostile_inputs;
mod hostile_layouts;
mod hostile_registry;
mod image_content;
mod interrupt;
mod needs;
mod platforms;
mod push;
mod reproducible;
mod resolve;
mod run;
mod sbom;
mod secrets;
mod size_budget;
mod strip;
mod support;
mod tzdata;
mod util;
