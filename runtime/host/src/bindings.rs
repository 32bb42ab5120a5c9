//! The one place that runs `bindgen!`: one invocation per plugin world
//! (through `plugin_world!`).
//!
//! The `sdk` world generates the shared `types`, `host` and `sql` interfaces;
//! every plugin world maps them to that module with `with:`, so a `Batch` is the
//! same Rust type whichever world produced it.

#![allow(missing_docs)]

/// Shared types and the `host` import interface.
pub mod common {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "ferry:plugin/sdk",
    });
}

/// One module per plugin world, sharing `common`'s types and host interface.
macro_rules! plugin_world {
    ($(#[$doc:meta] $module:ident => $world:literal),* $(,)?) => {
        $(
            #[$doc]
            pub mod $module {
                wasmtime::component::bindgen!({
                    path: "../../wit",
                    world: $world,
                    with: {
                        "ferry:plugin/types": crate::bindings::common::ferry::plugin::types,
                        "ferry:plugin/host": crate::bindings::common::ferry::plugin::host,
                        "ferry:plugin/sql": crate::bindings::common::ferry::plugin::sql,
                    },
                });
            }
        )*
    };
}

plugin_world! {
    /// The `source-plugin` world.
    source => "ferry:plugin/source-plugin",
    /// The `sink-plugin` world.
    sink => "ferry:plugin/sink-plugin",
    /// The `exactly-once-sink-plugin` world (only its `sink-commit` export is used).
    exactly_once_sink => "ferry:plugin/exactly-once-sink-plugin",
    /// The `mapper-plugin` world.
    mapper => "ferry:plugin/mapper-plugin",
    /// The `validator-plugin` world.
    validator => "ferry:plugin/validator-plugin",
    /// The `resolver-plugin` world.
    resolver => "ferry:plugin/resolver-plugin",
}

pub use common::ferry::plugin::host::Level;
pub use common::ferry::plugin::types::{
    Batch, Column, Op, PluginError, RecordIssue, Texts, Values,
};
