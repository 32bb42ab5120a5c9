//! The postgres-cdc plugin's pgoutput decoder (see
//! `ferry_postgres_cdc::fuzz::pgoutput`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry_postgres_cdc::fuzz::pgoutput(data));
