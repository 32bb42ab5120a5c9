//! The one place that runs `bindgen!`: one invocation per plugin world
//! (through `plugin_world!`).
//!
//! The `sdk` world generates the shared `host` and `sql` interfaces; the
//! `types` interface is not generated but mapped (`with:`) onto the plain
//! Rust types of `ferry_batch::types`, which derive the component-model
//! traits (feature `wasmtime`), so the host's checks of a batch build and
//! are fuzzed without wasmtime. Every plugin world maps the three to the
//! same modules, so a `Batch` is the same Rust type whichever world
//! produced it.

#![allow(missing_docs)]

/// The contract's `types` interface: the plain Rust types of `ferry-batch`,
/// and the glue `bindgen!` writes for an interface without functions (a
/// remapped interface must provide it: the world-level `add_to_linker` of
/// each world names it). There is nothing to link for types alone.
pub mod batch_types {
    pub use ferry_batch::types::*;

    /// The host side of the `types` interface: empty, it has no functions.
    pub trait HostWithStore<T>: wasmtime::component::HasData {}
    impl<H: ?Sized, T> HostWithStore<T> for H where H: wasmtime::component::HasData {}

    /// The host side of the `types` interface: empty, it has no functions.
    pub trait Host {}
    impl<H: Host + ?Sized> Host for &mut H {}

    /// Links the interface's functions: it has none.
    pub fn add_to_linker<T, D>(
        _linker: &mut wasmtime::component::Linker<T>,
        _host_getter: fn(&mut T) -> D::Data<'_>,
    ) -> wasmtime::Result<()>
    where
        D: HostWithStore<T>,
        for<'a> D::Data<'a>: Host,
        T: 'static,
    {
        Ok(())
    }
}

/// Shared types and the `host` import interface.
pub mod common {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "ferry:plugin/sdk",
        with: {
            "ferry:plugin/types": crate::bindings::batch_types,
        },
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
                        "ferry:plugin/types": crate::bindings::batch_types,
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
