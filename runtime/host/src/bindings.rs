//! The one place that runs `bindgen!`: one invocation per plugin world.
//!
//! The `sdk` world generates the shared `types` and `host` interfaces; every
//! plugin world maps them to that module with `with:`, so a `Batch` is the
//! same Rust type whichever world produced it.

#![allow(missing_docs)]

/// Shared types and the `host` import interface.
pub mod common {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "ferry:plugin/sdk",
    });
}

/// The `source-plugin` world.
pub mod source {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "ferry:plugin/source-plugin",
        with: {
            "ferry:plugin/types": crate::bindings::common::ferry::plugin::types,
            "ferry:plugin/host": crate::bindings::common::ferry::plugin::host,
        },
    });
}

/// The `sink-plugin` world.
pub mod sink {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "ferry:plugin/sink-plugin",
        with: {
            "ferry:plugin/types": crate::bindings::common::ferry::plugin::types,
            "ferry:plugin/host": crate::bindings::common::ferry::plugin::host,
        },
    });
}

/// The `mapper-plugin` world.
pub mod mapper {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "ferry:plugin/mapper-plugin",
        with: {
            "ferry:plugin/types": crate::bindings::common::ferry::plugin::types,
            "ferry:plugin/host": crate::bindings::common::ferry::plugin::host,
        },
    });
}

/// The `validator-plugin` world.
pub mod validator {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "ferry:plugin/validator-plugin",
        with: {
            "ferry:plugin/types": crate::bindings::common::ferry::plugin::types,
            "ferry:plugin/host": crate::bindings::common::ferry::plugin::host,
        },
    });
}

/// The `resolver-plugin` world.
pub mod resolver {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "ferry:plugin/resolver-plugin",
        with: {
            "ferry:plugin/types": crate::bindings::common::ferry::plugin::types,
            "ferry:plugin/host": crate::bindings::common::ferry::plugin::host,
        },
    });
}

pub use common::ferry::plugin::host::Level;
pub use common::ferry::plugin::types::{Batch, Column, Op, PluginError, RecordIssue, Texts, Values};
