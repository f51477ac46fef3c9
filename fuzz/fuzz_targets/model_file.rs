//! libFuzzer target: the first byte picks a format of `tests/fuzzing/mod.rs`, the rest is
//! the file. A contract violation (panic, refusal without a message, non-finite or
//! mis-sized output of an accepted model) aborts with the reason.
#![no_main]

#[path = "../../tests/fuzzing/mod.rs"]
mod fuzzing;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, file)) = data.split_first() else {
        return;
    };
    let format = &fuzzing::FORMATS[pick as usize % fuzzing::FORMATS.len()];
    if let Err(e) = fuzzing::check(format, file) {
        panic!("{e}");
    }
});
