//! ferry's test support and benchmarks. `build.rs` compiles every guest
//! plugin under `plugins/` to `wasm32-wasip2` and generates
//! [`plugins.rs`](plugins) with one constant per plugin and a
//! `foreach_plugin!` macro, so a plugin without an integration test fails to
//! compile (the way wasmtime's test-programs work). [`pg`] starts a real
//! PostgreSQL for the tests. The integration tests are `ferry-cli`'s
//! (`runtime/cli/tests/integration/`: they drive its binary); the
//! benchmarks are here (`benches/`).

/// Paths of the compiled guest plugins.
pub mod plugins {
    include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
}

pub mod pg;
