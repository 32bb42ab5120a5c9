//! ferry's integration tests live in `integration/` (one test binary) and its
//! benchmarks in `benches/`. `build.rs` compiles every guest plugin under
//! `plugins/` to `wasm32-wasip2` before they build, and generates
//! [`plugins.rs`](plugins) with one constant per plugin and a
//! `foreach_plugin!` macro, so a plugin without an integration test fails to
//! compile (the way wasmtime's test-programs work).

/// Paths of the compiled guest plugins.
pub mod plugins {
    include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
}
