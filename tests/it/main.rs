//! Integration tests: the real `scratchpack` binary against real tools. One module per area.

mod bad_input;
mod destinations;
mod image_content;
mod platforms;
mod reproducible;
mod run;
mod util;
