//! ferry-host: runs WebAssembly plugin components for ferry pipelines.
//!
//! It owns everything between a `.wasm` file and a call into it:
//!
//! - [`Runtime`]: one wasmtime `Engine` configured as measured for this
//!   workload (plain synchronous component calls without the async machinery,
//!   epoch interruption instead of fuel), a background thread that ticks the
//!   epoch, and an on-disk cache of precompiled components keyed by the
//!   component's sha256 and the engine's settings, so a second start skips
//!   compilation (about 0.5 ms instead of 100-200 ms for a Rust plugin, and
//!   seconds for Python or JavaScript ones).
//! - [`Component`]: a loaded component with its digest, the plugin
//!   interfaces it exports and the interfaces it imports, linked once into an
//!   `InstancePre`.
//! - [`StageInstance`]: one plugin instance for one pipeline stage, with its
//!   own `Store`, memory limit, per-call deadline and per-call output cap. A
//!   trap (a bug, a breached limit) poisons a Store, so the instance drops it
//!   and builds a fresh one from the `InstancePre` on the next call,
//!   re-running the plugin's `open`.
//! - The deadline (`timeout_ms`) holds wherever the call is: epoch
//!   interruption stops running WebAssembly code, and the `wasi:io`
//!   functions that wait (`poll`, `pollable.block`, the `blocking-*` stream
//!   methods, stream drops) are shadowed by versions that give up at the
//!   call's deadline, so a plugin sleeping or stuck on a silent peer is
//!   stopped as a busy one is (fault `deadline`).
//! - The output cap (`max_output_mb`) is also the Store's hostcall fuel:
//!   wasmtime refuses to copy more than that out of the plugin in one go (an
//!   answer, or the arguments of one host call) before the host allocates
//!   it (fault `output-size`); answers are measured again once copied.
//! - [`batch`]: helpers over the columnar `Batch` type of the WIT contract:
//!   checking a batch a plugin returned, taking rows, reading values, turning
//!   a row into JSON for the dead-letter store.
//!
//! Capabilities are deny-by-default: a plugin's WASI context has no
//! arguments, stdout discarded, stderr captured into a small buffer (quoted
//! when the plugin traps), only the folders, environment variables and
//! network destinations its manifest grants ([`NetworkPolicy`], checked on
//! every socket address), only the named SQL connections it is granted
//! (the drivers, pools and passwords stay in the host: [`sql`], the
//! `ferry-sql` crate re-exported, reached
//! through the `ferry:plugin/sql` interface), and every run-time denial goes
//! to an [`AuditSink`], its plugin-supplied strings capped and its rate
//! limited per instance ([`audit`]). [`Capability`] says which grant each imported interface
//! needs, so a component importing more than its grants cover is refused
//! before it runs.

pub mod audit;
pub mod batch;
pub mod bindings;
mod capability;
mod component;
mod deadline;
mod engine;
mod error;
mod filesystem;
mod instance;
mod network;
mod output;
mod sql_host;
mod store;

pub use bindings::mapper::exports::ferry::plugin::mapper::Mapped;
pub use bindings::resolver::exports::ferry::plugin::resolver::{Resolution, Resolutions};
pub use bindings::sink::exports::ferry::plugin::sink::WriteReport;
pub use bindings::source::exports::ferry::plugin::source::{Polled, SourceStatus};
pub use bindings::validator::exports::ferry::plugin::validator::Violation;
pub use bindings::{Batch, Column, Level, Op, PluginError, RecordIssue, Texts, Values};
pub use capability::Capability;
pub use component::{CONTRACT_VERSION, Component, ComponentInfo, PluginWorld, Producer};
pub use engine::sha256_hex;
pub use engine::{Runtime, RuntimeOptions};
pub use error::{CallError, FaultKind, HostError};
/// The SQL capability (the `ferry-sql` crate): connection specs, the hub
/// with its pools and limits, values and errors; [`sql_hub`] and
/// [`SqlTransactionResource`] bind it to the WIT `sql` interface.
pub use ferry_sql as sql;
pub use instance::{
    InstanceSpec, MapperInstance, MapperWorld, ResolverInstance, ResolverWorld, SinkInstance,
    SinkWorld, SourceInstance, SourceWorld, StageInstance, ValidatorInstance, ValidatorWorld,
    World,
};
pub use network::{AuditSink, Denial, NetRule, NetworkPolicy, Protocol, is_special};
pub use sql_host::{Transaction as SqlTransactionResource, hub as sql_hub};
pub use store::{FileGrant, HostState};
