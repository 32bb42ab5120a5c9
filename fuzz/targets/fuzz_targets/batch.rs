//! The host's checks of a plugin's answer (see `ferry_fuzz::batch`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_fuzz::batch(data));
