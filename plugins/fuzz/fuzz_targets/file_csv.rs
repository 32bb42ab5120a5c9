//! The file plugin's CSV reader (see `file::fuzz::csv`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| file::fuzz::csv(data));
