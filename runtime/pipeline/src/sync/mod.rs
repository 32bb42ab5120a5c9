//! Two-way sync: keeps one entity alike in two systems that both take
//! edits (a manifest with a `[sync]` table; see `ferry_manifest::SyncSpec`).
//!
//! # How a change travels
//!
//! Each side is one connector plugin, opened twice: as a source (its change
//! feed: CDC, a delta cursor, or full passes that also find deletes) and as
//! a sink (writes, and `fetch` of the current rows of given keys). The
//! engine polls the sides in turn. A polled record only says "this key may
//! have changed": for each batch of keys the engine fetches the *current*
//! version from both sides and compares them with the key's state: the
//! version both sides last agreed on (the ancestor) and a mark per side
//! (content checksum, version number, timestamp) of what the side held
//! then. So a stale event, a replayed batch after a crash, or ferry's own
//! write coming back through the other side's feed changes nothing:
//!
//! - both sides hold the same content: in sync (state recorded, no write);
//! - neither side changed since its mark: nothing to do (this is what stops
//!   echoes: ferry's own writes are the marks);
//! - one side changed: its version is written to the other side;
//! - both changed: a conflict, settled by the strategy (or queued for a
//!   person, or sent to the resolver plugin), then written to whichever
//!   sides differ from the outcome.
//!
//! Writes carry the origin `ferry:<pipeline>`. Owned fields take their
//! owner's value ([`decide::apply_owned`]), or with `on_foreign_change =
//! "reject"` a change to them from the other side is dead-lettered whole.
//!
//! A batch's writes to both sides are flushed, then its per-key states,
//! the side's checkpoint, queued conflicts, audit events and dead letters
//! are committed in one state transaction, and only then is the source's
//! checkpoint released. A crash in between replays the batch, which the
//! comparison above makes harmless.
//!
//! # Conflicts
//!
//! Every conflict is an audit event (capability
//! [`CONFLICT_CAPABILITY`](ferry_state::CONFLICT_CAPABILITY)): key, both versions, the ancestor, strategy,
//! outcome, and who decided. A queued one blocks its key (other keys go
//! on) until `ferry conflicts resolve` decides it; the engine then writes
//! the decision to both sides and unblocks the key.
//!
//! A decision is made on the versions the queue held when `resolve` ran
//! (stored with it). The queued versions are refreshed only when the
//! engine polls the key, so a side may have changed since (an edit after
//! the last run, or between two polls). Before writing a decision the
//! engine fetches both sides and checks that each still holds the version
//! the decision was made on ([`decide::still_holds`]); if either does not,
//! the decision is stale: nothing is written, the conflict waits again with
//! the current versions, and a `stale` audit event holds the decided-on
//! and the current versions.
//!
//! # Known limit
//!
//! Writes are not conditional: an edit that lands on a side between the
//! engine's fetch and its write to that side (a window of milliseconds) is
//! overwritten by the write. Sinks with compare-and-set writes would close
//! it.

// The engine's loop, fetch, write and retry (`engine`); deciding, settling
// and queueing conflicts and applying people's decisions (`conflicts`); the
// pure decision rules (`decide`) and versions (`record`).
mod conflicts;
pub mod decide;
mod engine;
pub mod record;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_host::{ResolverInstance, SinkInstance, SourceInstance, ValidatorInstance};
use ferry_manifest::SyncSpec;
use ferry_state::{AuditEvent, DeadLetter, NewConflict, RunStatus, StateStore};

use crate::run::{RunOptions, RunReport};
use crate::{PipelineError, Plan};
use decide::KeyState;
use record::Version;

pub use ferry_state::Conflict;

/// What a sync run did, beyond the record accounting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Versions written to the left side.
    pub written_left: u64,
    /// Versions written to the right side.
    pub written_right: u64,
    /// Polled changes that needed no write: ferry's own writes coming back
    /// (echoes), stale events, or sides already alike.
    pub unchanged: u64,
    /// Conflicts detected.
    pub conflicts: u64,
    /// Of those, queued for a person.
    pub queued: u64,
    /// Decisions of people applied.
    pub applied: u64,
    /// Decisions of people not applied because a side changed after they
    /// were made: their conflicts wait again with the current versions.
    pub stale: u64,
}

impl std::fmt::Display for SyncStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sync: written left={} right={} unchanged={} conflicts={} queued={} decisions applied={} stale={}",
            self.written_left,
            self.written_right,
            self.unchanged,
            self.conflicts,
            self.queued,
            self.applied,
            self.stale
        )
    }
}

/// The origin ferry's writes carry.
pub fn origin(pipeline: &str) -> String {
    format!("ferry:{pipeline}")
}

/// Merges `over`'s keys over `base` (both JSON objects).
fn merged_config(base: &serde_json::Value, over: &serde_json::Value) -> String {
    let mut out = base.clone();
    if let (Some(o), Some(add)) = (out.as_object_mut(), over.as_object()) {
        for (k, v) in add {
            o.insert(k.clone(), v.clone());
        }
    }
    out.to_string()
}

/// How many times a failing plugin call is tried before the run stops.
const ATTEMPTS: u32 = 5;

struct SideIo {
    plugin: String,
    digest: String,
    source: SourceInstance,
    sink: SinkInstance,
    /// The state store's name for this side's checkpoint.
    checkpoint_name: String,
    /// The checkpoint last committed (or opened from).
    committed: Option<Vec<u8>>,
    done: bool,
}

struct Engine {
    pipeline: String,
    sync: SyncSpec,
    fields: Option<Vec<String>>,
    left: SideIo,
    right: SideIo,
    resolver: Option<(String, String, ResolverInstance)>,
    validator: Option<(String, String, ValidatorInstance)>,
    state: Arc<dyn StateStore>,
    options: RunOptions,
    /// Keys waiting in the conflict queue: key -> (conflict id, left hash,
    /// right hash as queued).
    blocked: HashMap<String, (i64, String, String)>,
    stats: SyncStats,
    /// What the committed batches closed, summed.
    totals: ferry_state::Accounting,
    max_records: u32,
    poll_interval: Duration,
    once: bool,
    run_id: i64,
}

/// Runs a two-way sync plan: `once` (each side read to where it is caught
/// up) or `follow` (until shutdown).
pub async fn run(
    plan: Plan,
    state: Arc<dyn StateStore>,
    options: RunOptions,
) -> Result<RunReport, PipelineError> {
    let started = Instant::now();
    let run_id = state.start_run(&plan.name)?;
    let st = Arc::clone(&state);
    let result = tokio::task::spawn_blocking(move || -> Result<_, PipelineError> {
        let mut engine = Engine::new(&plan, st, options, run_id)?;
        engine.run()?;
        Ok(engine)
    })
    .await
    .map_err(|e| PipelineError::Internal(format!("the sync task failed: {e}")));
    let engine = match result.and_then(|r| r) {
        Ok(e) => e,
        Err(e) => {
            let _ = state.finish_run(run_id, &RunStatus::Failed(e.to_string()));
            return Err(e);
        }
    };
    state.finish_run(run_id, &RunStatus::Finished)?;
    let accounting = engine.totals;
    tracing::info!(pipeline = %engine.pipeline, "{}", engine.stats);
    Ok(RunReport {
        pipeline: engine.pipeline.clone(),
        run_id,
        accounting,
        elapsed: started.elapsed(),
        rebuilds: engine.left.source.rebuilds()
            + engine.left.sink.rebuilds()
            + engine.right.source.rebuilds()
            + engine.right.sink.rebuilds(),
        sync: Some(engine.stats),
    })
}

fn open_err(stage: &str) -> impl FnOnce(ferry_host::HostError) -> PipelineError + '_ {
    move |e| PipelineError::Open {
        stage: stage.to_string(),
        source: Box::new(e),
    }
}

/// One key's versions and state, being decided.
#[derive(Debug, Clone)]
struct Item {
    key: String,
    l: Version,
    r: Version,
    /// The checksums of `l` and `r`, computed once.
    lh: String,
    rh: String,
    st: Option<KeyState>,
}

impl Item {
    /// The key's current versions from both sides' fetches (absent where
    /// a side has none).
    fn new(
        key: &str,
        lefts: &HashMap<String, Version>,
        rights: &HashMap<String, Version>,
        st: Option<KeyState>,
    ) -> Item {
        let l = lefts.get(key).cloned().unwrap_or_else(Version::absent);
        let r = rights.get(key).cloned().unwrap_or_else(Version::absent);
        Item {
            key: key.to_string(),
            lh: l.hash(),
            rh: r.hash(),
            l,
            r,
            st,
        }
    }
}

/// The effects of one batch, applied together by [`Engine::finish`].
#[derive(Default)]
struct Work {
    left: Vec<(String, Version)>,
    right: Vec<(String, Version)>,
    /// Fields the written rows of each side hold now (left, right): those
    /// an outcome lacks are written as nulls.
    clear: [std::collections::BTreeSet<String>; 2],
    states: Vec<(String, Option<KeyState>)>,
    queue: Vec<(String, NewConflict, (String, String))>,
    refresh: Vec<(i64, serde_json::Value, serde_json::Value)>,
    resolved: Vec<i64>,
    /// Stale decisions: their conflicts wait again.
    reopen: Vec<ferry_state::Reopen>,
    /// Keys blocked again by a reopened conflict: (key, (id, left hash,
    /// right hash)).
    reblocked: Vec<(String, (i64, String, String))>,
    unblocked: Vec<String>,
    audit: Vec<AuditEvent>,
    letters: Vec<DeadLetter>,
    unchanged: u64,
}

/// Converts a person's merged record (plain JSON fields) to a stored
/// version, typing each field like the conflict's versions have it.
pub fn merged_from_json(
    conflict: &Conflict,
    fields: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    let Some(obj) = fields.as_object() else {
        return Err(
            "the merged record must be a JSON object of fields, or null for a delete".into(),
        );
    };
    let l = Version::from_stored(&conflict.left).unwrap_or_default();
    let r = Version::from_stored(&conflict.right).unwrap_or_default();
    let mut out = Version::default();
    for (k, v) in obj {
        let like = l.fields.get(k).or_else(|| r.fields.get(k));
        if let Some(value) = record::Value::from_json_like(v, like) {
            out.fields.insert(k.clone(), value);
        }
    }
    Ok(out.to_stored())
}
