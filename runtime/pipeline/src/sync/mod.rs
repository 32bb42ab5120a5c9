//! Two-way sync: keeps one entity alike in two systems that both take
//! edits (a manifest with a `[sync]` table; see `ferry_manifest::Sync`).
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
//! [`CONFLICT_CAPABILITY`]): key, both versions, the ancestor, strategy,
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

pub mod decide;
pub mod record;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ferry_host::batch::BatchExt;
use ferry_host::{
    Batch, CallError, InstanceSpec, ResolverInstance, SinkInstance, SourceInstance, SourceStatus,
    Texts, ValidatorInstance,
};
use ferry_manifest::{Detect, ForeignChange, Mode, Side, Strategy, Sync};
use ferry_state::{
    AuditEvent, CONFLICT_CAPABILITY, Choice, ConflictFilter, ConflictStatus, DeadLetter,
    NewConflict, RunStatus, StateStore, SyncCommit, now_us,
};

use crate::run::{RunOptions, RunReport, StateAudit};
use crate::{PipelineError, Plan};
use decide::{KeyState, Settled, mark_of};
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
    sync: Sync,
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

impl Engine {
    fn new(
        plan: &Plan,
        state: Arc<dyn StateStore>,
        options: RunOptions,
        run_id: i64,
    ) -> Result<Engine, PipelineError> {
        let Some(sync) = plan.manifest.sync.clone() else {
            return Err(PipelineError::Internal("not a sync manifest".into()));
        };
        let audit = Arc::new(StateAudit::new(Arc::clone(&state)));
        let stage = |name: &str| {
            plan.stages
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| PipelineError::Internal(format!("no stage `{name}`")))
        };
        let spec_of = |name: &str, config: Option<String>| -> Result<InstanceSpec, PipelineError> {
            let mut spec = stage(name)?.spec.clone();
            if let Some(c) = config {
                spec.config = c;
            }
            let sink: Arc<dyn ferry_host::AuditSink> = audit.clone();
            spec.audit = Some(sink);
            Ok(spec)
        };
        let side_io = |side: Side| -> Result<SideIo, PipelineError> {
            let s = sync.side(side);
            let planned = stage(&s.plugin)?;
            let base = &plan.manifest.plugins[&s.plugin].config;
            let checkpoint_name = format!("{}#{side}", s.plugin);
            let checkpoint = state.checkpoint(&plan.name, &checkpoint_name)?;
            let source = SourceInstance::new(
                &planned.component,
                spec_of(&s.plugin, Some(merged_config(base, &s.read)))?,
                checkpoint.clone(),
            )
            .map_err(open_err(&s.plugin))?;
            let sink = SinkInstance::new(
                &planned.component,
                spec_of(&s.plugin, Some(merged_config(base, &s.write)))?,
                None,
            )
            .map_err(open_err(&s.plugin))?;
            Ok(SideIo {
                plugin: s.plugin.clone(),
                digest: planned.component.digest().to_string(),
                source,
                sink,
                checkpoint_name,
                committed: checkpoint,
                done: false,
            })
        };
        let left = side_io(Side::Left)?;
        let right = side_io(Side::Right)?;
        // The resolver and validator plugins, when the manifest names them:
        // (name, digest, instance).
        fn named<W: ferry_host::World>(
            name: &str,
            planned: &crate::PlannedStage,
            spec: InstanceSpec,
        ) -> Result<(String, String, ferry_host::StageInstance<W>), PipelineError> {
            let instance = ferry_host::StageInstance::<W>::new(&planned.component, spec, None)
                .map_err(open_err(name))?;
            Ok((
                name.to_string(),
                planned.component.digest().to_string(),
                instance,
            ))
        }
        let resolver = match &sync.strategy {
            Strategy::Resolver(name) => Some(named(name, stage(name)?, spec_of(name, None)?)?),
            _ => None,
        };
        let validator = match &sync.detect {
            Detect::Validator(name) => Some(named(name, stage(name)?, spec_of(name, None)?)?),
            _ => None,
        };
        let mut blocked = HashMap::new();
        for c in state.conflicts(&ConflictFilter {
            pipeline: Some(plan.name.clone()),
            statuses: vec![ConflictStatus::Open, ConflictStatus::Decided],
            key: None,
        })? {
            let hash = |v: &serde_json::Value| {
                Version::from_stored(v)
                    .map(|v| v.hash())
                    .unwrap_or_default()
            };
            blocked.insert(c.key.clone(), (c.id, hash(&c.left), hash(&c.right)));
        }
        let p = &plan.manifest.pipeline;
        Ok(Engine {
            pipeline: plan.name.clone(),
            fields: sync.fields.clone(),
            sync,
            left,
            right,
            resolver,
            validator,
            state,
            options,
            blocked,
            stats: SyncStats::default(),
            totals: ferry_state::Accounting::default(),
            max_records: p.batch.max_records.max(1),
            poll_interval: p.poll_interval,
            once: p.mode != Mode::Follow,
            run_id,
        })
    }

    fn io(&mut self, side: Side) -> &mut SideIo {
        match side {
            Side::Left => &mut self.left,
            Side::Right => &mut self.right,
        }
    }

    fn stopping(&self) -> bool {
        *self.options.shutdown.borrow()
    }

    /// Calls a plugin, retrying passing failures (retryable errors, traps)
    /// with a growing pause; the run stops after [`ATTEMPTS`].
    fn retry<T>(
        &mut self,
        what: &str,
        stage: &str,
        mut f: impl FnMut(&mut Engine) -> Result<T, CallError>,
    ) -> Result<T, PipelineError> {
        let mut pause = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match f(self) {
                Ok(v) => {
                    self.options.status.set_paused(None);
                    return Ok(v);
                }
                Err(e @ (CallError::Retryable(_) | CallError::Fault { .. }))
                    if attempt < ATTEMPTS && !self.stopping() =>
                {
                    tracing::warn!(pipeline = %self.pipeline, stage, "{what} failed (attempt {attempt}): {e}; trying again");
                    self.options
                        .status
                        .set_paused(Some(format!("{stage}: {what}: {e}")));
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
                Err(error) => {
                    return Err(PipelineError::Sync {
                        stage: stage.to_string(),
                        what: what.to_string(),
                        error,
                    });
                }
            }
        }
    }

    fn run(&mut self) -> Result<(), PipelineError> {
        loop {
            self.apply_decisions()?;
            let mut more = false;
            for side in [Side::Left, Side::Right] {
                if self.io(side).done || self.stopping() {
                    continue;
                }
                let max = self.max_records;
                let stage = self.io(side).plugin.clone();
                let polled = self.retry("poll", &stage, |e| e.io(side).source.poll(max))?;
                let n = polled.records.len() as u64;
                self.options.status.read.fetch_add(n, Ordering::Relaxed);
                if let Err(e) = polled.records.check() {
                    return Err(PipelineError::Sync {
                        stage,
                        what: "poll".into(),
                        error: CallError::Fatal(format!("malformed batch: {e}")),
                    });
                }
                self.process(side, &polled.records, Some(polled.checkpoint.clone()))?;
                match polled.status {
                    SourceStatus::More => more = true,
                    SourceStatus::CaughtUp if !self.once => {}
                    _ => self.io(side).done = true,
                }
            }
            if self.stopping() || (self.left.done && self.right.done) {
                return Ok(());
            }
            if !more {
                let until = Instant::now() + self.poll_interval;
                while Instant::now() < until && !self.stopping() {
                    std::thread::sleep(Duration::from_millis(20).min(self.poll_interval));
                }
            }
        }
    }

    fn fetch(
        &mut self,
        side: Side,
        keys: &[String],
    ) -> Result<HashMap<String, Version>, PipelineError> {
        let texts = Texts::from_strs(keys.iter().map(String::as_str));
        let stage = self.io(side).plugin.clone();
        let batch = self.retry("fetch", &stage, |e| e.io(side).sink.fetch(&texts))?;
        if let Err(e) = batch.check() {
            return Err(PipelineError::Sync {
                stage,
                what: "fetch".into(),
                error: CallError::Fatal(format!("malformed batch: {e}")),
            });
        }
        let rename = &self.sync.side(side).rename;
        Ok(record::versions_by_key(
            &batch,
            rename,
            self.fields.as_deref(),
        ))
    }

    /// Writes versions to a side and flushes; returns the keys the side
    /// refused or reported in conflict (their state is left as it was, so
    /// the next change retries them), with dead letters for the refused.
    fn write(
        &mut self,
        side: Side,
        rows: &[(String, Version)],
        clear: &std::collections::BTreeSet<String>,
        letters: &mut Vec<DeadLetter>,
    ) -> Result<HashSet<String>, PipelineError> {
        let mut failed = HashSet::new();
        if rows.is_empty() {
            return Ok(failed);
        }
        let refs: Vec<(&str, &Version)> = rows.iter().map(|(k, v)| (k.as_str(), v)).collect();
        // Every synced field is sent, null where the version has none, so
        // a cleared field is cleared on the other side too.
        let also: Vec<String> = match &self.fields {
            Some(f) => f.clone(),
            None => clear.iter().cloned().collect(),
        };
        let batch = record::batch_of(
            &refs,
            &self.sync.side(side).rename,
            &origin(&self.pipeline),
            &also,
        );
        let stage = self.io(side).plugin.clone();
        // Written and flushed as one step: a flush that traps drops the
        // instance with whatever it buffered, so the retry writes again
        // (writes are upserts) before flushing the new instance.
        let report = self.retry("write", &stage, |e| {
            let sink = &mut e.io(side).sink;
            let report = sink.write(&batch)?;
            sink.flush()?;
            Ok(report)
        })?;
        let digest = self.io(side).digest.clone();
        for issue in &report.rejected {
            let Some((key, v)) = rows.get(issue.row as usize) else {
                continue;
            };
            failed.insert(key.clone());
            letters.push(DeadLetter {
                id: 0,
                pipeline: self.pipeline.clone(),
                stage: stage.clone(),
                plugin_digest: digest.clone(),
                reason: "rejected".into(),
                detail: format!(
                    "the {side} side refused the synced version: {}",
                    issue.reason
                ),
                key: key.clone(),
                record: v.to_plain(),
                attempts: 1,
                created_at_us: 0,
            });
        }
        for issue in &report.conflicts {
            if let Some((key, _)) = rows.get(issue.row as usize) {
                tracing::info!(pipeline = %self.pipeline, key, "the {side} side changed under the write ({}); it is compared again on its next change", issue.reason);
                failed.insert(key.clone());
            }
        }
        let n = (rows.len() - failed.len()) as u64;
        match side {
            Side::Left => self.stats.written_left += n,
            Side::Right => self.stats.written_right += n,
        }
        Ok(failed)
    }

    fn audit(
        &self,
        key: &str,
        detail: serde_json::Value,
        by_plugin: Option<(&str, &str)>,
    ) -> AuditEvent {
        AuditEvent {
            id: 0,
            at_us: 0,
            pipeline: self.pipeline.clone(),
            stage: by_plugin.map_or("sync".to_string(), |(n, _)| n.to_string()),
            plugin_digest: by_plugin.map_or(String::new(), |(_, d)| d.to_string()),
            capability: CONFLICT_CAPABILITY.to_string(),
            target: key.to_string(),
            detail: detail.to_string(),
        }
    }

    /// Compares and syncs the keys of a polled batch from `side`.
    fn process(
        &mut self,
        side: Side,
        records: &Batch,
        checkpoint: Option<Vec<u8>>,
    ) -> Result<(), PipelineError> {
        let mut keys: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        for i in 0..records.len() {
            let k = records.key(i);
            if seen.insert(k) {
                keys.push(k.to_string());
            }
        }
        if keys.is_empty() && checkpoint == self.io(side).committed {
            // Nothing new: no commit (an idle sync does not fsync).
            return Ok(());
        }
        let mut work = Work::default();
        if !keys.is_empty() {
            let lefts = self.fetch(Side::Left, &keys)?;
            let rights = self.fetch(Side::Right, &keys)?;
            let states: HashMap<String, KeyState> = self
                .state
                .sync_states(&self.pipeline, &keys)?
                .into_iter()
                .filter_map(|(k, s)| serde_json::from_str(&s).ok().map(|s| (k, s)))
                .collect();
            let items: Vec<Item> = keys
                .iter()
                .map(|k| Item::new(k, &lefts, &rights, states.get(k).cloned()))
                .collect();
            self.decide(items, &mut work)?;
        }
        let polled = records.len() as u64;
        self.stats.unchanged += work.unchanged;
        self.finish(work, checkpoint.map(|c| (side, c)), polled)
    }

    /// Decides every item; fills `work` with writes, states, conflicts.
    fn decide(&mut self, items: Vec<Item>, work: &mut Work) -> Result<(), PipelineError> {
        let now = now_us();
        let ts_field = self.sync.timestamp_field.clone();
        let mut conflicts: Vec<Item> = Vec::new();
        for item in items {
            if let Some((id, lh, rh)) = self.blocked.get(&item.key).cloned() {
                // Waiting for a person: keep the queued versions current.
                if item.lh != lh || item.rh != rh {
                    work.refresh
                        .push((id, item.l.to_stored(), item.r.to_stored()));
                    self.blocked
                        .insert(item.key.clone(), (id, item.lh.clone(), item.rh.clone()));
                }
                work.unchanged += 1;
                continue;
            }
            if item.lh == item.rh {
                // Alike (an echo, or both sides made the same change).
                let fresh = KeyState {
                    ancestor: item.l.clone(),
                    left: mark_of(&item.l, &item.lh, ts_field.as_deref()),
                    right: mark_of(&item.r, &item.rh, ts_field.as_deref()),
                };
                if item.st.as_ref() != Some(&fresh) {
                    work.states.push((item.key.clone(), Some(fresh)));
                }
                work.unchanged += 1;
                continue;
            }
            let detect = &self.sync.detect;
            let l_changed = decide::changed(
                detect,
                &item.l,
                &item.lh,
                item.st.as_ref().map(|s| &s.left),
                ts_field.as_deref(),
            );
            let r_changed = decide::changed(
                detect,
                &item.r,
                &item.rh,
                item.st.as_ref().map(|s| &s.right),
                ts_field.as_deref(),
            );
            let ancestor = item.st.as_ref().map(|s| &s.ancestor).filter(|a| !a.deleted);
            match (l_changed, r_changed) {
                (false, false) => {
                    // They differ, yet neither changed since it was last
                    // seen: a change refused on purpose (an owned field
                    // with `on_foreign_change = "reject"`), or, with
                    // version or timestamp detection, an edit that did
                    // not move the version. Left alone until a side
                    // changes.
                    work.unchanged += 1;
                }
                (true, false) => self.propagate(Side::Left, &item, ancestor.cloned(), work),
                (false, true) => self.propagate(Side::Right, &item, ancestor.cloned(), work),
                (true, true) => conflicts.push(item),
            }
        }
        if conflicts.is_empty() {
            return Ok(());
        }
        // Validator detection: concurrent edits of different fields merge
        // unless the validator finds the merge breaks a rule.
        let mut real: Vec<(Item, Option<String>)> = Vec::new();
        if self.validator.is_some() {
            let mut candidates: Vec<(Item, Version)> = Vec::new();
            for item in conflicts {
                let ancestor = item.st.as_ref().map(|s| &s.ancestor).filter(|a| !a.deleted);
                if !item.l.deleted && !item.r.deleted && ancestor.is_some() {
                    let fm = decide::merge_fields(&item.l, &item.r, ancestor);
                    if fm.conflicting.is_empty() {
                        candidates.push((item, fm.merged));
                        continue;
                    }
                }
                real.push((item, None));
            }
            if !candidates.is_empty() {
                let rows: Vec<(&str, &Version)> = candidates
                    .iter()
                    .map(|(i, m)| (i.key.as_str(), m))
                    .collect();
                let batch =
                    record::batch_of(&rows, &Default::default(), &origin(&self.pipeline), &[]);
                let name = self
                    .validator
                    .as_ref()
                    .map(|v| v.0.clone())
                    .unwrap_or_default();
                let violations =
                    match self.retry("validate", &name, |e| match e.validator.as_mut() {
                        Some(v) => v.2.validate(&batch),
                        None => Ok(Vec::new()),
                    }) {
                        Ok(v) => v,
                        // A validator that fails (after its retries) approves
                        // nothing: every candidate is a conflict.
                        Err(PipelineError::Sync { error, .. }) => (0..candidates.len())
                            .map(|row| ferry_host::Violation {
                                row: row as u32,
                                field: None,
                                rule: "validator-failed".into(),
                                message: format!("validator `{name}` failed: {error}"),
                            })
                            .collect(),
                        Err(other) => return Err(other),
                    };
                let mut broken: HashMap<usize, String> = HashMap::new();
                for v in violations {
                    broken
                        .entry(v.row as usize)
                        .or_insert_with(|| format!("{} ({})", v.message, v.rule));
                }
                for (i, (item, merged)) in candidates.into_iter().enumerate() {
                    match broken.remove(&i) {
                        Some(why) => real.push((item, Some(why))),
                        None => self.apply_outcome(&item, merged, work),
                    }
                }
            }
        } else {
            real = conflicts.into_iter().map(|i| (i, None)).collect();
        }
        self.settle_conflicts(real, now, work)
    }

    /// One side changed: its version goes to the other side.
    fn propagate(&mut self, from: Side, item: &Item, ancestor: Option<Version>, work: &mut Work) {
        let cur = match from {
            Side::Left => &item.l,
            Side::Right => &item.r,
        };
        let foreign = decide::foreign_changes(&self.sync, from, cur, ancestor.as_ref());
        if !foreign.is_empty() && self.sync.on_foreign_change == ForeignChange::Reject {
            let io = self.io(from);
            let (stage, digest) = (io.plugin.clone(), io.digest.clone());
            let other_side = from.other();
            work.letters.push(DeadLetter {
                id: 0,
                pipeline: self.pipeline.clone(),
                stage,
                plugin_digest: digest,
                reason: "owned-field".into(),
                detail: format!(
                    "the {from} side changed {} owned by the {other_side} side (on_foreign_change = \"reject\"): the change was not synced",
                    foreign.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", "),
                ),
                key: item.key.clone(),
                record: cur.to_plain(),
                attempts: 1,
                created_at_us: 0,
            });
            // Seen: not reported again until it changes again.
            if let Some(mut st) = item.st.clone() {
                let hash = match from {
                    Side::Left => &item.lh,
                    Side::Right => &item.rh,
                };
                let mark = mark_of(cur, hash, self.sync.timestamp_field.as_deref());
                match from {
                    Side::Left => st.left = mark,
                    Side::Right => st.right = mark,
                }
                work.states.push((item.key.clone(), Some(st)));
            }
            return;
        }
        let mut out = cur.clone();
        decide::apply_owned(&self.sync, &mut out, &item.l, &item.r);
        self.apply_outcome(item, out, work);
    }

    /// Plans writing `outcome` to the sides that differ from it, and the
    /// key's new state.
    fn apply_outcome(&mut self, item: &Item, outcome: Version, work: &mut Work) {
        let ts = self.sync.timestamp_field.as_deref();
        let oh = outcome.hash();
        let mut st = KeyState {
            ancestor: outcome.clone(),
            left: mark_of(&item.l, &item.lh, ts),
            right: mark_of(&item.r, &item.rh, ts),
        };
        if oh != item.lh {
            work.left.push((item.key.clone(), outcome.clone()));
            work.clear[0].extend(item.l.fields.keys().cloned());
            st.left = mark_of(&outcome, &oh, ts);
        }
        if oh != item.rh {
            work.right.push((item.key.clone(), outcome.clone()));
            work.clear[1].extend(item.r.fields.keys().cloned());
            st.right = mark_of(&outcome, &oh, ts);
        }
        work.states.push((item.key.clone(), Some(st)));
    }

    fn strategy_name(&self) -> String {
        match &self.sync.strategy {
            Strategy::Resolver(n) => format!("resolver:{n}"),
            s => s.as_str().to_string(),
        }
    }

    fn settle_conflicts(
        &mut self,
        items: Vec<(Item, Option<String>)>,
        now: i64,
        work: &mut Work,
    ) -> Result<(), PipelineError> {
        let mut ask: Vec<(Item, Option<String>)> = Vec::new();
        for (item, why) in items {
            self.stats.conflicts += 1;
            let ancestor = item.st.as_ref().map(|s| &s.ancestor).filter(|a| !a.deleted);
            match decide::settle(&self.sync, &item.l, &item.r, ancestor, now) {
                Settled::Take { mut version, how } => {
                    decide::apply_owned(&self.sync, &mut version, &item.l, &item.r);
                    let how = outcome_name(&version, &item, how);
                    let by = format!("strategy {}", self.sync.strategy);
                    self.record_settled(&item, &version, how, &by, why.as_deref(), None, work);
                    self.apply_outcome(&item, version, work);
                }
                Settled::Queue(reason) => self.queue(&item, &reason, why.as_deref(), work),
                Settled::AskResolver => ask.push((item, why)),
            }
        }
        if ask.is_empty() {
            return Ok(());
        }
        let Some((name, digest, _)) = self
            .resolver
            .as_ref()
            .map(|r| (r.0.clone(), r.1.clone(), ()))
        else {
            return Err(PipelineError::Internal(
                "strategy resolver without a resolver".into(),
            ));
        };
        let none = indexmap::IndexMap::new();
        let l_rows: Vec<(&str, &Version)> =
            ask.iter().map(|(i, _)| (i.key.as_str(), &i.l)).collect();
        let r_rows: Vec<(&str, &Version)> =
            ask.iter().map(|(i, _)| (i.key.as_str(), &i.r)).collect();
        let absent = Version::absent();
        let a_rows: Vec<(&str, &Version)> = ask
            .iter()
            .map(|(i, _)| {
                (
                    i.key.as_str(),
                    i.st.as_ref().map(|s| &s.ancestor).unwrap_or(&absent),
                )
            })
            .collect();
        let origin = origin(&self.pipeline);
        let (lb, rb, ab) = (
            record::batch_of(&l_rows, &none, &origin, &[]),
            record::batch_of(&r_rows, &none, &origin, &[]),
            record::batch_of(&a_rows, &none, &origin, &[]),
        );
        let answer = match self.retry("resolve", &name, |e| match e.resolver.as_mut() {
            Some(r) => r.2.resolve(&lb, &rb, &ab),
            None => Err(CallError::Fatal("no resolver".into())),
        }) {
            Ok(a) => a,
            // A resolver that fails (after its retries) decides nothing:
            // its conflicts wait for a person, with the error as reason.
            Err(PipelineError::Sync { error, .. }) => {
                let reason = format!("resolver `{name}` failed: {error}");
                for (item, why) in &ask {
                    self.queue(item, &reason, why.as_deref(), work);
                }
                return Ok(());
            }
            Err(other) => return Err(other),
        };
        let merged = answer.merged;
        let merged_ok = merged.check().is_ok();
        for (i, (item, why)) in ask.into_iter().enumerate() {
            use ferry_host::Resolution;
            let by = format!("resolver `{name}`");
            let plugin = Some((name.as_str(), digest.as_str()));
            let chosen = match answer.decisions.get(i) {
                Some(Resolution::TakeLeft) => Ok((item.l.clone(), "left")),
                Some(Resolution::TakeRight) => Ok((item.r.clone(), "right")),
                Some(Resolution::Merged(n)) if merged_ok && (*n as usize) < merged.len() => {
                    let mut v = record::version_of(
                        &merged,
                        *n as usize,
                        &Default::default(),
                        self.fields.as_deref(),
                    );
                    if v.deleted {
                        v = Version::absent();
                    }
                    Ok((v, "merged"))
                }
                Some(Resolution::Merged(n)) => Err(format!(
                    "resolver `{name}` answered merged({n}), which is not a row of its merged batch"
                )),
                Some(Resolution::Defer(reason)) => {
                    Err(format!("resolver `{name}` deferred: {reason}"))
                }
                None => Err(format!(
                    "resolver `{name}` gave no decision for this conflict"
                )),
            };
            match chosen {
                Ok((mut version, how)) => {
                    decide::apply_owned(&self.sync, &mut version, &item.l, &item.r);
                    let how = outcome_name(&version, &item, how);
                    self.record_settled(&item, &version, how, &by, why.as_deref(), plugin, work);
                    self.apply_outcome(&item, version, work);
                }
                Err(reason) => self.queue(&item, &reason, why.as_deref(), work),
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn record_settled(
        &self,
        item: &Item,
        version: &Version,
        how: &str,
        by: &str,
        detected: Option<&str>,
        plugin: Option<(&str, &str)>,
        work: &mut Work,
    ) {
        let mut detail = self.conflict_detail("settled", item);
        detail.extend([
            ("validator_found".to_string(), detected.into()),
            ("outcome".to_string(), how.into()),
            ("result".to_string(), version.to_plain()),
            ("decided_by".to_string(), by.into()),
        ]);
        let detail = serde_json::Value::Object(detail);
        work.audit.push(self.audit(&item.key, detail, plugin));
    }

    /// What every audit event of a detected conflict holds: the key, both
    /// versions, the ancestor, the strategy, the detection, when.
    fn conflict_detail(
        &self,
        event: &str,
        item: &Item,
    ) -> serde_json::Map<String, serde_json::Value> {
        let ancestor = item
            .st
            .as_ref()
            .map_or(serde_json::Value::Null, |s| s.ancestor.to_plain());
        let serde_json::Value::Object(map) = serde_json::json!({
            "event": event,
            "key": item.key,
            "left": item.l.to_plain(),
            "right": item.r.to_plain(),
            "ancestor": ancestor,
            "strategy": self.strategy_name(),
            "detected_by": self.sync.detect.as_str(),
            "at": ferry_host::batch::rfc3339_micros(now_us()),
        }) else {
            return serde_json::Map::new();
        };
        map
    }

    fn queue(&mut self, item: &Item, reason: &str, detected: Option<&str>, work: &mut Work) {
        self.stats.queued += 1;
        let ancestor = item
            .st
            .as_ref()
            .map(|s| s.ancestor.to_stored())
            .unwrap_or(serde_json::Value::Null);
        let reason = match detected {
            Some(d) => format!("{reason} (validator: {d})"),
            None => reason.to_string(),
        };
        work.queue.push((
            item.key.clone(),
            NewConflict {
                key: item.key.clone(),
                left: item.l.to_stored(),
                right: item.r.to_stored(),
                ancestor,
                strategy: self.strategy_name(),
                reason: reason.clone(),
            },
            (item.lh.clone(), item.rh.clone()),
        ));
        let mut detail = self.conflict_detail("queued", item);
        detail.extend([
            ("outcome".to_string(), "queued".into()),
            ("reason".to_string(), reason.into()),
            (
                "decided_by".to_string(),
                "nobody yet: `ferry conflicts resolve`".into(),
            ),
        ]);
        let detail = serde_json::Value::Object(detail);
        work.audit.push(self.audit(&item.key, detail, None));
    }

    /// Writes the planned versions, then commits everything at once.
    fn finish(
        &mut self,
        mut work: Work,
        checkpoint: Option<(Side, Vec<u8>)>,
        polled: u64,
    ) -> Result<(), PipelineError> {
        let mut letters = std::mem::take(&mut work.letters);
        let left = std::mem::take(&mut work.left);
        let right = std::mem::take(&mut work.right);
        let [clear_left, clear_right] = std::mem::take(&mut work.clear);
        let mut failed = self.write(Side::Left, &left, &clear_left, &mut letters)?;
        failed.extend(self.write(Side::Right, &right, &clear_right, &mut letters)?);
        if self.sync.detect == Detect::Version {
            self.read_back_versions(&left, &right, &mut work, &failed)?;
        }
        let states: Vec<(String, Option<String>)> = work
            .states
            .iter()
            .filter(|(k, _)| !failed.contains(k))
            .map(|(k, s)| {
                (
                    k.clone(),
                    s.as_ref().and_then(|s| serde_json::to_string(s).ok()),
                )
            })
            .collect();
        // Accounting of the polled records (decisions are per key, so a
        // key polled twice in a batch counts once as unchanged).
        let dead = (letters.len() as u64).min(polled);
        let filtered = work.unchanged.min(polled - dead);
        let closed = ferry_state::Accounting {
            read: polled,
            written: polled - dead - filtered,
            dead_lettered: dead,
            filtered,
        };
        let commit = SyncCommit {
            pipeline: self.pipeline.clone(),
            checkpoint: checkpoint
                .as_ref()
                .map(|(side, c)| (self.io(*side).checkpoint_name.clone(), c.clone())),
            states,
            queue: work.queue.iter().map(|(_, q, _)| q.clone()).collect(),
            refresh: work.refresh.clone(),
            resolved: work.resolved.clone(),
            reopen: work.reopen.clone(),
            audit: work.audit.clone(),
            dead_letters: letters,
            accounting: (polled > 0).then_some((self.run_id, closed)),
        };
        let ids = self.state.commit_sync(&commit)?;
        for ((key, _, (lh, rh)), id) in work.queue.iter().zip(ids) {
            self.blocked
                .insert(key.clone(), (id, lh.clone(), rh.clone()));
        }
        for key in &work.unblocked {
            self.blocked.remove(key);
        }
        for (key, blocked) in &work.reblocked {
            self.blocked.insert(key.clone(), blocked.clone());
        }
        self.totals.add(&closed);
        let status = &self.options.status;
        status
            .dead_lettered
            .fetch_add(closed.dead_lettered, Ordering::Relaxed);
        status.written.fetch_add(closed.written, Ordering::Relaxed);
        status
            .filtered
            .fetch_add(closed.filtered, Ordering::Relaxed);
        if let Some((side, c)) = checkpoint {
            let stage = self.io(side).plugin.clone();
            self.retry("commit", &stage, |e| e.io(side).source.commit(&c))?;
            // A source rebuilt after a trap reopens from here.
            let io = self.io(side);
            io.source.set_resume_checkpoint(Some(c.clone()));
            io.committed = Some(c);
        }
        Ok(())
    }

    /// Version detection: the sides' new version numbers, read back after
    /// the write, become their marks.
    fn read_back_versions(
        &mut self,
        left: &[(String, Version)],
        right: &[(String, Version)],
        work: &mut Work,
        failed: &HashSet<String>,
    ) -> Result<(), PipelineError> {
        for (side, rows) in [(Side::Left, left), (Side::Right, right)] {
            let keys: Vec<String> = rows
                .iter()
                .map(|(k, _)| k.clone())
                .filter(|k| !failed.contains(k))
                .collect();
            if keys.is_empty() {
                continue;
            }
            let now = self.fetch(side, &keys)?;
            for (key, st) in work.states.iter_mut() {
                let (Some(st), Some(v)) = (st.as_mut(), now.get(key)) else {
                    continue;
                };
                let mark = match side {
                    Side::Left => &mut st.left,
                    Side::Right => &mut st.right,
                };
                if v.hash() == mark.hash {
                    mark.version = v.version;
                }
            }
        }
        Ok(())
    }

    /// Applies the decisions people made with `ferry conflicts resolve`,
    /// each only while both sides still hold the versions it was made on;
    /// a stale one reopens its conflict instead.
    fn apply_decisions(&mut self) -> Result<(), PipelineError> {
        let decided = self.state.conflicts(&ConflictFilter {
            pipeline: Some(self.pipeline.clone()),
            statuses: vec![ConflictStatus::Decided],
            key: None,
        })?;
        if decided.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = decided.iter().map(|c| c.key.clone()).collect();
        let lefts = self.fetch(Side::Left, &keys)?;
        let rights = self.fetch(Side::Right, &keys)?;
        let mut work = Work::default();
        let ts = self.sync.timestamp_field.clone();
        for c in decided {
            // What the decision was made on. A decision recorded before
            // these were stored: the queued versions, which the engine
            // never refreshes once a conflict is decided.
            let on_left = c.decided_left.as_ref().unwrap_or(&c.left);
            let on_right = c.decided_right.as_ref().unwrap_or(&c.right);
            let (Some(on_l), Some(on_r)) = (
                Version::from_stored(on_left),
                Version::from_stored(on_right),
            ) else {
                tracing::error!(pipeline = %self.pipeline, id = c.id, "conflict {} has unreadable versions; resolve it again", c.id);
                continue;
            };
            let chosen = match c.decision {
                Some(Choice::Left) => Some(on_l.clone()),
                Some(Choice::Right) => Some(on_r.clone()),
                _ => c.merged.as_ref().and_then(Version::from_stored),
            };
            let Some(version) = chosen else {
                tracing::error!(pipeline = %self.pipeline, id = c.id, "conflict {} has an unreadable decision; resolve it again", c.id);
                continue;
            };
            let item = Item::new(&c.key, &lefts, &rights, None);
            let changed: Vec<&str> = [
                ("left", &item.l, &item.lh, &on_l),
                ("right", &item.r, &item.rh, &on_r),
            ]
            .into_iter()
            .filter(|(_, now, hash, seen)| {
                !decide::still_holds(&self.sync.detect, now, hash, seen, ts.as_deref())
            })
            .map(|(side, ..)| side)
            .collect();
            let decision = c.decision.map(Choice::as_str).unwrap_or_default();
            let by = c.decided_by.clone().unwrap_or_else(|| "?".to_string());
            let decided_at = c.decided_at_us.map(ferry_host::batch::rfc3339_micros);
            if !changed.is_empty() {
                let sides = match changed.as_slice() {
                    [one] => format!("the {one} side"),
                    _ => "both sides".to_string(),
                };
                let note = format!(
                    "the decision `take {decision}` by {by}{} was not applied: {sides} changed after it was made; decide again on the current versions",
                    decided_at
                        .as_deref()
                        .map(|t| format!(" at {t}"))
                        .unwrap_or_default(),
                );
                tracing::warn!(pipeline = %self.pipeline, key = %c.key, "conflict {}: {note} (`ferry conflicts show {}`)", c.id, c.id);
                let detail = serde_json::json!({
                    "event": "stale",
                    "conflict": c.id,
                    "key": c.key,
                    "strategy": c.strategy,
                    "outcome": "reopened",
                    "decision": c.decision,
                    "not_written": version.to_plain(),
                    "changed": changed,
                    "decided_on": {"left": on_l.to_plain(), "right": on_r.to_plain()},
                    "left": item.l.to_plain(),
                    "right": item.r.to_plain(),
                    "decided_by": c.decided_by,
                    "decided_at": decided_at,
                    "at": ferry_host::batch::rfc3339_micros(now_us()),
                });
                work.audit.push(self.audit(&c.key, detail, None));
                work.reopen.push(ferry_state::Reopen {
                    id: c.id,
                    left: item.l.to_stored(),
                    right: item.r.to_stored(),
                    note,
                });
                work.reblocked
                    .push((c.key.clone(), (c.id, item.lh.clone(), item.rh.clone())));
                self.stats.stale += 1;
                continue;
            }
            let detail = serde_json::json!({
                "event": "applied",
                "conflict": c.id,
                "key": c.key,
                "strategy": c.strategy,
                "outcome": c.decision,
                "decision": c.decision,
                "left": item.l.to_plain(),
                "right": item.r.to_plain(),
                "result": version.to_plain(),
                "decided_by": c.decided_by,
                "decided_at": decided_at,
                "at": ferry_host::batch::rfc3339_micros(now_us()),
            });
            work.audit.push(self.audit(&c.key, detail, None));
            self.apply_outcome(&item, version, &mut work);
            work.resolved.push(c.id);
            work.unblocked.push(c.key.clone());
            self.stats.applied += 1;
        }
        self.finish(work, None, 0)
    }
}

/// What an outcome is, once owned fields are applied: `left` or `right`
/// when it equals that side, else `merged` (or the settlement's own name).
fn outcome_name(version: &Version, item: &Item, how: &'static str) -> &'static str {
    let hash = version.hash();
    if hash == item.lh {
        "left"
    } else if hash == item.rh {
        "right"
    } else if how == "left" || how == "right" {
        "merged"
    } else {
        how
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
