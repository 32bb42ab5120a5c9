//! The export macros: one per plugin world.
//!
//! Each macro expands, in the plugin crate, to a `wit_bindgen::generate!`
//! for that one world (wit-bindgen embeds the world in the component and a
//! component must export all of its world, so this cannot be done once in
//! the SDK), with the shared `types` and `host` interfaces mapped to this
//! SDK's modules, then to an adapter that implements the generated `Guest`
//! traits by calling the plugin's type through this crate's traits.
//!
//! Requirements on the plugin crate:
//!
//! - it depends on this SDK under the name `ferry_plugin` (the generated
//!   code names `::ferry_plugin` in paths that cannot use `$crate`); it needs
//!   no direct dependency on wit-bindgen;
//! - the WIT folder is found at `../../wit` from the plugin's
//!   `Cargo.toml`, which is right for the plugins in this repository
//!   (`plugins/<name>/`). Elsewhere pass it: `export_mapper!(MyMapper, wit =
//!   "path/to/wit")`, relative to the plugin's `Cargo.toml`;
//! - it invokes the macro once, at the crate root (it defines items named
//!   `__ferry_*` there);
//! - it is built as a `cdylib` for `wasm32-wasip2`.

/// Generates the bindings module for one world. Internal.
#[doc(hidden)]
#[macro_export]
macro_rules! __ferry_bindings {
    ($module:ident, $world:literal, $wit:literal) => {
        #[doc(hidden)]
        #[allow(dead_code, unused_imports, unsafe_code, missing_docs, clippy::all)]
        mod $module {
            $crate::__private::wit_bindgen::generate!({
                path: $wit,
                world: $world,
                with: {
                    "ferry:plugin/types@0.1.4": ::ferry_plugin::types,
                    "ferry:plugin/host@0.1.4": ::ferry_plugin::host,
                    "ferry:plugin/sql@0.1.4": ::ferry_plugin::sql,
                },
                runtime_path: "::ferry_plugin::__private::wit_bindgen::rt",
            });
        }
    };
}

/// Implements the source interface for the adapter. Internal.
#[doc(hidden)]
#[macro_export]
macro_rules! __ferry_impl_source {
    ($module:ident, $adapter:ident, $ty:ty) => {
        ::std::thread_local! {
            static __FERRY_SOURCE: $crate::__private::Slot<$ty> =
                const { ::core::cell::RefCell::new(::core::option::Option::None) };
        }
        impl $module::exports::ferry::plugin::source::Guest for $adapter {
            fn open(
                config: ::std::string::String,
                checkpoint: ::core::option::Option<::std::vec::Vec<u8>>,
            ) -> ::core::result::Result<(), $crate::PluginError> {
                __FERRY_SOURCE
                    .with(|slot| $crate::__private::source_open::<$ty>(slot, &config, checkpoint))
            }
            fn poll(
                max_records: u32,
            ) -> ::core::result::Result<
                $module::exports::ferry::plugin::source::Polled,
                $crate::PluginError,
            > {
                use $module::exports::ferry::plugin::source::{Polled, SourceStatus};
                let p = __FERRY_SOURCE
                    .with(|slot| $crate::__private::source_poll::<$ty>(slot, max_records))?;
                ::core::result::Result::Ok(Polled {
                    records: p.records,
                    checkpoint: p.checkpoint,
                    status: match p.status {
                        $crate::SourceStatus::More => SourceStatus::More,
                        $crate::SourceStatus::CaughtUp => SourceStatus::CaughtUp,
                        $crate::SourceStatus::Finished => SourceStatus::Finished,
                    },
                })
            }
            fn commit(
                checkpoint: ::std::vec::Vec<u8>,
            ) -> ::core::result::Result<(), $crate::PluginError> {
                __FERRY_SOURCE
                    .with(|slot| $crate::__private::source_commit::<$ty>(slot, checkpoint))
            }
        }
    };
}

/// Implements the sink interface for the adapter. Internal.
#[doc(hidden)]
#[macro_export]
macro_rules! __ferry_impl_sink {
    ($module:ident, $adapter:ident, $ty:ty) => {
        ::std::thread_local! {
            static __FERRY_SINK: $crate::__private::Slot<$ty> =
                const { ::core::cell::RefCell::new(::core::option::Option::None) };
        }
        impl $module::exports::ferry::plugin::sink::Guest for $adapter {
            fn open(
                config: ::std::string::String,
            ) -> ::core::result::Result<(), $crate::PluginError> {
                __FERRY_SINK.with(|slot| $crate::__private::sink_open::<$ty>(slot, &config))
            }
            fn write(
                records: $crate::types::Batch,
            ) -> ::core::result::Result<
                $module::exports::ferry::plugin::sink::WriteReport,
                $crate::PluginError,
            > {
                let r = __FERRY_SINK
                    .with(|slot| $crate::__private::sink_write::<$ty>(slot, records))?;
                ::core::result::Result::Ok($module::exports::ferry::plugin::sink::WriteReport {
                    rejected: r.rejected,
                    conflicts: r.conflicts,
                })
            }
            fn flush() -> ::core::result::Result<(), $crate::PluginError> {
                __FERRY_SINK.with(|slot| $crate::__private::sink_flush::<$ty>(slot))
            }
            fn fetch(
                keys: $crate::types::Texts,
            ) -> ::core::result::Result<$crate::types::Batch, $crate::PluginError> {
                __FERRY_SINK.with(|slot| $crate::__private::sink_fetch::<$ty>(slot, keys))
            }
        }
    };
}

/// Implements the sink-commit interface for the adapter, over the sink
/// slot `__ferry_impl_sink!` defines. Internal.
#[doc(hidden)]
#[macro_export]
macro_rules! __ferry_impl_sink_commit {
    ($module:ident, $adapter:ident, $ty:ty) => {
        impl $module::exports::ferry::plugin::sink_commit::Guest for $adapter {
            fn resume(
                token: ::core::option::Option<::std::vec::Vec<u8>>,
            ) -> ::core::result::Result<(), $crate::PluginError> {
                __FERRY_SINK.with(|slot| $crate::__private::sink_resume::<$ty>(slot, token))
            }
            fn position() -> ::core::result::Result<::std::vec::Vec<u8>, $crate::PluginError> {
                __FERRY_SINK.with(|slot| $crate::__private::sink_position::<$ty>(slot))
            }
        }
    };
}

/// Exports a [`Mapper`](crate::Mapper) as a component of world
/// `mapper-plugin`.
///
/// See the crate documentation for a complete example.
#[macro_export]
macro_rules! export_mapper {
    ($ty:ty $(,)?) => {
        $crate::export_mapper!($ty, wit = "../../wit");
    };
    ($ty:ty, wit = $wit:literal $(,)?) => {
        $crate::__ferry_bindings!(__ferry_mapper_bindings, "ferry:plugin/mapper-plugin", $wit);

        #[doc(hidden)]
        #[allow(dead_code)]
        struct __FerryMapperExport;

        ::std::thread_local! {
            static __FERRY_MAPPER: $crate::__private::Slot<$ty> =
                const { ::core::cell::RefCell::new(::core::option::Option::None) };
        }

        impl __ferry_mapper_bindings::exports::ferry::plugin::mapper::Guest for __FerryMapperExport {
            fn open(config: ::std::string::String) -> ::core::result::Result<(), $crate::PluginError> {
                __FERRY_MAPPER.with(|slot| $crate::__private::mapper_open::<$ty>(slot, &config))
            }
            fn map(
                records: $crate::types::Batch,
            ) -> ::core::result::Result<
                __ferry_mapper_bindings::exports::ferry::plugin::mapper::Mapped,
                $crate::PluginError,
            > {
                let m = __FERRY_MAPPER.with(|slot| $crate::__private::mapper_map::<$ty>(slot, records))?;
                ::core::result::Result::Ok(__ferry_mapper_bindings::exports::ferry::plugin::mapper::Mapped {
                    records: m.records,
                    derived_from: m.derived_from,
                    rejected: m.rejected,
                })
            }
        }

        // Exports exist only in the wasm build: elsewhere (unit tests, the
        // host's native benchmark) the plugin is a plain library.
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            __ferry_mapper_bindings::export!(__FerryMapperExport with_types_in __ferry_mapper_bindings);
        };
    };
}

/// Exports a [`Source`](crate::Source) as a component of world
/// `source-plugin`.
///
/// See the crate documentation for a complete example.
#[macro_export]
macro_rules! export_source {
    ($ty:ty $(,)?) => {
        $crate::export_source!($ty, wit = "../../wit");
    };
    ($ty:ty, wit = $wit:literal $(,)?) => {
        $crate::__ferry_bindings!(__ferry_source_bindings, "ferry:plugin/source-plugin", $wit);

        #[doc(hidden)]
        #[allow(dead_code)]
        struct __FerrySourceExport;

        $crate::__ferry_impl_source!(__ferry_source_bindings, __FerrySourceExport, $ty);

        // Exports exist only in the wasm build: elsewhere (unit tests, the
        // host's native benchmark) the plugin is a plain library.
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            __ferry_source_bindings::export!(__FerrySourceExport with_types_in __ferry_source_bindings);
        };
    };
}

/// Exports a [`Sink`](crate::Sink) as a component of world `sink-plugin`.
///
/// See the crate documentation for a complete example.
#[macro_export]
macro_rules! export_sink {
    ($ty:ty $(,)?) => {
        $crate::export_sink!($ty, wit = "../../wit");
    };
    ($ty:ty, wit = $wit:literal $(,)?) => {
        $crate::__ferry_bindings!(__ferry_sink_bindings, "ferry:plugin/sink-plugin", $wit);

        #[doc(hidden)]
        #[allow(dead_code)]
        struct __FerrySinkExport;

        $crate::__ferry_impl_sink!(__ferry_sink_bindings, __FerrySinkExport, $ty);

        // Exports exist only in the wasm build: elsewhere (unit tests, the
        // host's native benchmark) the plugin is a plain library.
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
    __ferry_sink_bindings::export!(__FerrySinkExport with_types_in __ferry_sink_bindings);
        };
    };
}

/// Exports a [`Source`](crate::Source) and a [`Sink`](crate::Sink) as one
/// component of world `connector-plugin`; the manifest's `kind` says which
/// side a stage uses. The two types keep separate state.
///
/// See the crate documentation for a complete example.
#[macro_export]
macro_rules! export_connector {
    ($source:ty, $sink:ty $(,)?) => {
        $crate::export_connector!($source, $sink, wit = "../../wit");
    };
    ($source:ty, $sink:ty, wit = $wit:literal $(,)?) => {
        $crate::__ferry_bindings!(__ferry_connector_bindings, "ferry:plugin/connector-plugin", $wit);

        #[doc(hidden)]
        #[allow(dead_code)]
        struct __FerryConnectorExport;

        $crate::__ferry_impl_source!(__ferry_connector_bindings, __FerryConnectorExport, $source);
        $crate::__ferry_impl_sink!(__ferry_connector_bindings, __FerryConnectorExport, $sink);

        // Exports exist only in the wasm build: elsewhere (unit tests, the
        // host's native benchmark) the plugin is a plain library.
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            __ferry_connector_bindings::export!(__FerryConnectorExport with_types_in __ferry_connector_bindings);
        };
    };
}

/// Exports a [`SinkCommit`](crate::SinkCommit) sink as a component of world
/// `exactly-once-sink-plugin`: ferry commits its tokens with the source
/// checkpoint, so each record reaches it once.
#[macro_export]
macro_rules! export_exactly_once_sink {
    ($ty:ty $(,)?) => {
        $crate::export_exactly_once_sink!($ty, wit = "../../wit");
    };
    ($ty:ty, wit = $wit:literal $(,)?) => {
        $crate::__ferry_bindings!(
            __ferry_sink_bindings,
            "ferry:plugin/exactly-once-sink-plugin",
            $wit
        );

        #[doc(hidden)]
        #[allow(dead_code)]
        struct __FerrySinkExport;

        $crate::__ferry_impl_sink!(__ferry_sink_bindings, __FerrySinkExport, $ty);
        $crate::__ferry_impl_sink_commit!(__ferry_sink_bindings, __FerrySinkExport, $ty);

        // Exports exist only in the wasm build: elsewhere (unit tests, the
        // host's native benchmark) the plugin is a plain library.
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
    __ferry_sink_bindings::export!(__FerrySinkExport with_types_in __ferry_sink_bindings);
        };
    };
}

/// Exports a [`Source`](crate::Source) and a [`SinkCommit`](crate::SinkCommit)
/// sink as one component of world `exactly-once-connector-plugin`.
#[macro_export]
macro_rules! export_exactly_once_connector {
    ($source:ty, $sink:ty $(,)?) => {
        $crate::export_exactly_once_connector!($source, $sink, wit = "../../wit");
    };
    ($source:ty, $sink:ty, wit = $wit:literal $(,)?) => {
        $crate::__ferry_bindings!(__ferry_connector_bindings, "ferry:plugin/exactly-once-connector-plugin", $wit);

        #[doc(hidden)]
        #[allow(dead_code)]
        struct __FerryConnectorExport;

        $crate::__ferry_impl_source!(__ferry_connector_bindings, __FerryConnectorExport, $source);
        $crate::__ferry_impl_sink!(__ferry_connector_bindings, __FerryConnectorExport, $sink);
        $crate::__ferry_impl_sink_commit!(__ferry_connector_bindings, __FerryConnectorExport, $sink);

        // Exports exist only in the wasm build: elsewhere (unit tests, the
        // host's native benchmark) the plugin is a plain library.
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            __ferry_connector_bindings::export!(__FerryConnectorExport with_types_in __ferry_connector_bindings);
        };
    };
}

/// Exports a [`Validator`](crate::Validator) as a component of world
/// `validator-plugin`.
///
/// See the crate documentation for a complete example.
#[macro_export]
macro_rules! export_validator {
    ($ty:ty $(,)?) => {
        $crate::export_validator!($ty, wit = "../../wit");
    };
    ($ty:ty, wit = $wit:literal $(,)?) => {
        $crate::__ferry_bindings!(__ferry_validator_bindings, "ferry:plugin/validator-plugin", $wit);

        #[doc(hidden)]
        #[allow(dead_code)]
        struct __FerryValidatorExport;

        ::std::thread_local! {
            static __FERRY_VALIDATOR: $crate::__private::Slot<$ty> =
                const { ::core::cell::RefCell::new(::core::option::Option::None) };
        }

        impl __ferry_validator_bindings::exports::ferry::plugin::validator::Guest for __FerryValidatorExport {
            fn open(config: ::std::string::String) -> ::core::result::Result<(), $crate::PluginError> {
                __FERRY_VALIDATOR.with(|slot| $crate::__private::validator_open::<$ty>(slot, &config))
            }
            fn validate(
                records: $crate::types::Batch,
            ) -> ::core::result::Result<
                ::std::vec::Vec<__ferry_validator_bindings::exports::ferry::plugin::validator::Violation>,
                $crate::PluginError,
            > {
                let found = __FERRY_VALIDATOR.with(|slot| $crate::__private::validator_validate::<$ty>(slot, records))?;
                ::core::result::Result::Ok(
                    found
                        .into_iter()
                        .map(|v| __ferry_validator_bindings::exports::ferry::plugin::validator::Violation {
                            row: v.row,
                            field: v.field,
                            rule: v.rule,
                            message: v.message,
                        })
                        .collect(),
                )
            }
        }

        // Exports exist only in the wasm build: elsewhere (unit tests, the
        // host's native benchmark) the plugin is a plain library.
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            __ferry_validator_bindings::export!(__FerryValidatorExport with_types_in __ferry_validator_bindings);
        };
    };
}

/// Exports a [`Resolver`](crate::Resolver) as a component of world
/// `resolver-plugin`.
///
/// See the crate documentation for a complete example.
#[macro_export]
macro_rules! export_resolver {
    ($ty:ty $(,)?) => {
        $crate::export_resolver!($ty, wit = "../../wit");
    };
    ($ty:ty, wit = $wit:literal $(,)?) => {
        $crate::__ferry_bindings!(__ferry_resolver_bindings, "ferry:plugin/resolver-plugin", $wit);

        #[doc(hidden)]
        #[allow(dead_code)]
        struct __FerryResolverExport;

        ::std::thread_local! {
            static __FERRY_RESOLVER: $crate::__private::Slot<$ty> =
                const { ::core::cell::RefCell::new(::core::option::Option::None) };
        }

        impl __ferry_resolver_bindings::exports::ferry::plugin::resolver::Guest for __FerryResolverExport {
            fn open(config: ::std::string::String) -> ::core::result::Result<(), $crate::PluginError> {
                __FERRY_RESOLVER.with(|slot| $crate::__private::resolver_open::<$ty>(slot, &config))
            }
            fn resolve(
                left: $crate::types::Batch,
                right: $crate::types::Batch,
                ancestor: $crate::types::Batch,
            ) -> ::core::result::Result<
                __ferry_resolver_bindings::exports::ferry::plugin::resolver::Resolutions,
                $crate::PluginError,
            > {
                use __ferry_resolver_bindings::exports::ferry::plugin::resolver::{Resolution, Resolutions};
                let (decisions, merged) =
                    __FERRY_RESOLVER.with(|slot| $crate::__private::resolver_resolve::<$ty>(slot, left, right, ancestor))?;
                ::core::result::Result::Ok(Resolutions {
                    decisions: decisions
                        .into_iter()
                        .map(|d| match d {
                            $crate::Resolution::TakeLeft => Resolution::TakeLeft,
                            $crate::Resolution::TakeRight => Resolution::TakeRight,
                            $crate::Resolution::Merged(n) => Resolution::Merged(n),
                            $crate::Resolution::Defer(why) => Resolution::Defer(why),
                        })
                        .collect(),
                    merged,
                })
            }
        }

        // Exports exist only in the wasm build: elsewhere (unit tests, the
        // host's native benchmark) the plugin is a plain library.
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            __ferry_resolver_bindings::export!(__FerryResolverExport with_types_in __ferry_resolver_bindings);
        };
    };
}
