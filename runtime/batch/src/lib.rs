//! `ferry-batch`: the columnar batch of ferry's WIT contract as plain Rust
//! types ([`types`]), and what the host does with a batch a plugin returns
//! ([`check`]): check it once when it crosses into the host (list lengths,
//! offsets, UTF-8, JSON), then read and select its records.
//!
//! It needs no wasmtime: the checks are the host's first contact with what
//! a plugin wrote, so they are fuzzed (`scripts/fuzz.sh batch`), and a crate
//! that builds in seconds keeps that fast. `ferry-host` enables the
//! `wasmtime` feature, which derives the component-model traits, and maps
//! the contract's `types` interface onto [`types`] in its `bindgen!`.

pub mod check;
pub mod types;

pub use check::{
    BatchExt, JsonRecord, MAX_JSON_DEPTH, ValueRef, batch_from_json, check_rows, civil_from_days,
    json_fault, op_name, rfc3339_micros, value_json,
};
pub use types::{Batch, Column, Op, PluginError, RecordIssue, Texts, Values};
