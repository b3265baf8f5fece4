#![no_main]

use std::sync::OnceLock;

#[path = "../targets_common.rs"]
mod targets_common;

/// One sysroot per fuzzing process, made on the first input. It is never removed (statics are not
/// dropped): it lives in /dev/shm (or the temp folder) and holds one small file under many names.
static SANDBOX: OnceLock<targets_common::ElfSandbox> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let sandbox = SANDBOX.get_or_init(|| targets_common::ElfSandbox::new().expect("the fuzzing sysroot can be made"));
    targets_common::elf_inspect(data, sandbox);
});
