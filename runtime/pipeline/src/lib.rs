//! ferry-pipeline: turns a manifest into a running pipeline and accounts for
//! every record.
//!
//! - [`plan`](mod@plan): manifest + loaded components -> a checked graph of stages
//!   (digests, exported worlds, granted folders), every problem reported at
//!   once against the manifest's lines.
//! - [`run`](run::run): one tokio task per stage, bounded channels of
//!   columnar batches between them (backpressure), retries and isolation of
//!   failing records, dead letters with their reason, stage and plugin digest.
//! - [`ledger`]: the state of every source record; a source checkpoint is
//!   committed only when every record before it reached a final state
//!   (written by every sink of its route, dead-lettered, or filtered on
//!   purpose), together with the accounting it closes, so
//!   `read = written + dead_lettered + filtered` holds for every run.
//! - [`route`]: conditional routing (`when`) over a batch's columns.
//! - [`schedule`](mod@schedule): scheduled pipelines, a loop of `once` runs
//!   on the ticks of a cron expression or an interval, never overlapping.
//! - [`lock`](mod@lock): pinning each plugin's sha256 in its manifest.
//! - [`owner`]: one owner per pipeline on one machine, an OS file lock
//!   beside the state database held while a process serves the pipeline.
//! - [`sync`](mod@sync): two-way sync between two connectors, with conflict
//!   detection, strategies, the conflict queue and its audit trail.
//! - `audit`: plugins' run-time denials into the audit log, in batches
//!   written by a background thread, off the commit path.

mod audit;
pub mod ledger;
pub mod lock;
pub mod owner;
pub mod plan;
pub mod reload;
pub mod route;
pub mod run;
pub mod schedule;
pub mod swap;
pub mod sync;

use ferry_host::CallError;

pub use lock::{LockError, LockMode, lock};
pub use owner::{Holder, OwnerError, Ownership};
pub use plan::{Finding, Plan, PlannedStage, check_plugin, plan, replay_plan};
pub use reload::{
    EndKind, Ended, ReloadChange, ReloadEvent, ReloadOutcome, Supervisor, grant_diff,
    manifest_files,
};
pub use run::{LiveStatus, Replay, RunOptions, RunReport, replay_detail, run, run_controlled};
pub use schedule::{NextRun, next_run};
pub use swap::{PreparedSwap, RunControl, SwapController, SwapReport, prepare_swap, swap_control};

/// Why a pipeline did not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A plugin could not be opened (bad config, a trap in `open`).
    #[error("stage `{stage}`: {source}")]
    Open {
        /// The stage.
        stage: String,
        /// What went wrong.
        #[source]
        source: Box<ferry_host::HostError>,
    },
    /// The source failed in a way that cannot be retried.
    #[error("source `{stage}` failed: {error}")]
    Source {
        /// The stage.
        stage: String,
        /// What went wrong.
        error: CallError,
    },
    /// A sink could not make its writes durable.
    #[error(
        "sink `{stage}` could not flush: {error}; unflushed records will be read again on the next run"
    )]
    Flush {
        /// The stage.
        stage: String,
        /// What went wrong.
        error: CallError,
    },
    /// A sink's instance was lost (a trap) and a new one could not be given
    /// the writes the lost one had not flushed.
    #[error(
        "sink `{stage}` lost its instance with unflushed writes and a new one could not take them again: {error}; they were not committed and will be read again on the next run"
    )]
    Resend {
        /// The stage.
        stage: String,
        /// What went wrong.
        error: CallError,
    },
    /// An exactly-once sink could not resume from its committed token.
    #[error(
        "sink `{stage}` could not resume from its committed position: {error}; nothing was read"
    )]
    Resume {
        /// The stage.
        stage: String,
        /// What went wrong.
        error: CallError,
    },
    /// A route with `on_invalid = "stop"` met an invalid record.
    #[error(
        "stopped at stage `{stage}` on invalid record `{key}`: {detail} (the route says on_invalid = \"stop\")"
    )]
    Stopped {
        /// The stage.
        stage: String,
        /// The record's key.
        key: String,
        /// Why it is invalid.
        detail: String,
    },
    /// A stage's plugin trapped on every record of several batches in a row.
    #[error(
        "stage `{stage}` stopped by its circuit breaker: its plugin trapped on every record of {batches} batches in a row (last: {last}); fix or replace the plugin, then run again: the records from there on are read again"
    )]
    CircuitOpen {
        /// The stage.
        stage: String,
        /// How many batches in a row.
        batches: u32,
        /// The last fault.
        last: String,
    },
    /// The pipeline was stopped while a sink's target was down; the records
    /// waiting for it were not committed and are read again on the next run.
    #[error(
        "stopped while sink `{stage}` was down; the records waiting for it were not committed and will be read again on the next run"
    )]
    SinkDown {
        /// The sink.
        stage: String,
    },
    /// A stage stopped, so the stage feeding it could not go on (the
    /// stopped stage's own error says why).
    #[error("a later stage stopped")]
    DownstreamStopped,
    /// A plugin of a two-way sync failed in a way retries did not cure.
    #[error("sync: `{stage}` failed to {what}: {error}")]
    Sync {
        /// The plugin.
        stage: String,
        /// The call: poll, fetch, write, flush, commit, validate, resolve.
        what: String,
        /// What went wrong.
        error: CallError,
    },
    /// Another process serves the pipeline, or its lock file is unusable.
    #[error(transparent)]
    Owner(#[from] OwnerError),
    /// The state store failed.
    #[error(transparent)]
    State(#[from] ferry_state::StateError),
    /// A bug in ferry.
    #[error("internal error: {0}")]
    Internal(String),
    /// The run ended early; what it committed is in the report.
    #[error("{error}")]
    Failed {
        /// What the run committed before it failed.
        report: Box<RunReport>,
        /// Why it failed.
        error: Box<PipelineError>,
    },
}
