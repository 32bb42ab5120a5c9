//! The file plugin's JSON Lines reader (see `file::fuzz::jsonl`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| file::fuzz::jsonl(data));
