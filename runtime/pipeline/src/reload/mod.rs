//! Running a set of manifests and reloading them while they run.
//!
//! A [`Supervisor`] runs one pipeline per manifest. [`Supervisor::reload`]
//! reads the manifests again and applies the difference, all or nothing:
//!
//! 1. Load and plan every manifest (parse, check, load and compile each
//!    component) while the old version keeps running. Any error rolls the
//!    whole reload back.
//! 2. Diff against what runs: pipelines added, removed, changed in shape
//!    (stages, routes, batch or mode settings: restarted), and stages whose
//!    plugin or settings changed (swapped).
//! 3. Prepare every swapped stage's new instance (instantiate and `open`).
//!    Any failure rolls the whole reload back; nothing has been touched yet.
//! 4. Apply: removed and restarted pipelines drain (the records in flight
//!    finish, the checkpoint is committed) and stop; added and restarted
//!    ones start; swaps happen at each stage's next batch boundary.
//!
//! Every reload ends in a [`ReloadEvent`] (`applied`, `rolled-back` or
//! `no-change`), written to the audit log of the pipelines it concerns,
//! with old and new digests and what each swap did to the plugin's grants.
//!
//! A scheduled pipeline (`mode = "schedule"`) runs as a loop of `once` runs
//! ([`crate::schedule`]). It is not swapped: any change to it (its schedule
//! included) gives its loop the new plan, which takes it between runs, and
//! is reported as a restart. Changing its mode or its state file restarts it
//! as any other pipeline. Each of its runs ends in an [`Ended`] of its own
//! ([`EndKind::ScheduledRun`]).
//!
//! Each pipeline served holds its lock ([`crate::owner`]) from its start
//! until it is removed or ends: a pipeline another process serves is
//! refused at the start (or an added one rolls the reload back), and a
//! restart keeps the lock throughout.
//!
//! This module is the supervisor; `diff` says what changed between a
//! running pipeline and its new plan.

mod diff;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ferry_host::{InstanceSpec, Runtime};
use ferry_manifest::Mode;
use ferry_state::{AuditEvent, SqliteState, StateStore};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::PipelineError;
use crate::owner::{Ownership, lock_path};
use crate::plan::{Plan, PlannedStage};
use crate::run::{LiveStatus, RunOptions, RunReport, run_controlled};
use crate::schedule::{LoopEvent, ScheduleLoop};
use crate::swap::{PreparedSwap, SwapController, prepare_swap, swap_control};

pub use diff::grant_diff;
use diff::{shape, shape_change, stage_changed};

/// How a reload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The changes were made.
    Applied,
    /// Something failed; the old version keeps running untouched.
    RolledBack,
    /// The manifests and components are what already runs.
    NoChange,
}

impl ReloadOutcome {
    /// `applied`, `rolled-back` or `no-change`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReloadOutcome::Applied => "applied",
            ReloadOutcome::RolledBack => "rolled-back",
            ReloadOutcome::NoChange => "no-change",
        }
    }
}

/// One change a reload made.
#[derive(Debug, Clone)]
pub enum ReloadChange {
    /// A new pipeline started.
    Added {
        /// The pipeline.
        pipeline: String,
    },
    /// A pipeline drained, committed and stopped.
    Removed {
        /// The pipeline.
        pipeline: String,
    },
    /// A pipeline whose shape changed drained and started again.
    Restarted {
        /// The pipeline.
        pipeline: String,
        /// What changed.
        why: String,
    },
    /// A stage's plugin instance was replaced at a batch boundary.
    Swapped {
        /// The pipeline.
        pipeline: String,
        /// The stage.
        stage: String,
        /// The digest of the component before.
        old_digest: String,
        /// The digest after.
        new_digest: String,
        /// How long the stage did not process records.
        pause: Duration,
        /// How the grants changed, one line each (`+ files: ...`).
        grants: Vec<String>,
        /// Whether the new grants allow anything the old did not.
        widened: bool,
    },
}

impl ReloadChange {
    /// The pipeline it concerns.
    pub fn pipeline(&self) -> &str {
        match self {
            ReloadChange::Added { pipeline }
            | ReloadChange::Removed { pipeline }
            | ReloadChange::Restarted { pipeline, .. }
            | ReloadChange::Swapped { pipeline, .. } => pipeline,
        }
    }
}

impl std::fmt::Display for ReloadChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadChange::Added { pipeline } => write!(f, "pipeline `{pipeline}` added"),
            ReloadChange::Removed { pipeline } => {
                write!(f, "pipeline `{pipeline}` removed (drained and committed)")
            }
            ReloadChange::Restarted { pipeline, why } => {
                write!(f, "pipeline `{pipeline}` restarted: {why}")
            }
            ReloadChange::Swapped {
                pipeline,
                stage,
                old_digest,
                new_digest,
                pause,
                grants,
                widened,
            } => {
                write!(
                    f,
                    "pipeline `{pipeline}` stage `{stage}` swapped {} -> {} (pause {:.3} ms)",
                    short(old_digest),
                    short(new_digest),
                    pause.as_secs_f64() * 1000.0
                )?;
                if !grants.is_empty() {
                    write!(
                        f,
                        "; grants {}: {}",
                        if *widened { "WIDENED" } else { "changed" },
                        grants.join(", ")
                    )?;
                }
                Ok(())
            }
        }
    }
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

/// What a reload did.
#[derive(Debug, Clone)]
pub struct ReloadEvent {
    /// How it ended.
    pub outcome: ReloadOutcome,
    /// What started it: `watch`, `SIGHUP`, ...
    pub trigger: String,
    /// The changes made (empty unless applied).
    pub changes: Vec<ReloadChange>,
    /// Why it was rolled back.
    pub reason: Option<String>,
}

impl std::fmt::Display for ReloadEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "reload ({}): {}", self.trigger, self.outcome.as_str())?;
        if let Some(reason) = &self.reason {
            write!(f, ": {reason}")?;
        }
        for c in &self.changes {
            write!(f, "\n  {c}")?;
        }
        Ok(())
    }
}

/// A reload that failed: the old version keeps running, with whatever
/// `changes` were already made (none, unless a pipeline failed to start).
fn rolled_back(trigger: &str, reason: String, changes: Vec<ReloadChange>) -> ReloadEvent {
    ReloadEvent {
        outcome: ReloadOutcome::RolledBack,
        trigger: trigger.to_string(),
        changes,
        reason: Some(reason),
    }
}

/// A pipeline that runs.
struct Active {
    plan_stages: Vec<PlannedStage>,
    shape: String,
    manifest: PathBuf,
    controller: SwapController,
    shutdown: watch::Sender<bool>,
    handle: JoinHandle<Result<RunReport, PipelineError>>,
    status: Arc<LiveStatus>,
    state: Arc<dyn StateStore>,
    state_path: PathBuf,
    /// A scheduled pipeline's loop.
    scheduled: Option<Scheduled>,
    /// The pipeline's lock, held for as long as this supervisor serves it
    /// (between a scheduled pipeline's runs too); `None` only while a
    /// restart carries it over to the new run.
    owner: Option<Ownership>,
}

/// The ends of a scheduled pipeline's loop that its supervisor holds.
struct Scheduled {
    /// New plans, taken between runs.
    replans: mpsc::UnboundedSender<Plan>,
    /// Runs that ended, and lines for the operator.
    events: mpsc::UnboundedReceiver<LoopEvent>,
}

/// What an [`Ended`] is the end of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndKind {
    /// A pipeline's run: it finished, failed, was removed or restarted.
    Pipeline,
    /// One run of a scheduled pipeline, which goes on to its next tick.
    ScheduledRun,
    /// A scheduled pipeline's loop stopped (shutdown, removed, restarted).
    /// Its runs were reported one by one, so the result holds their sum.
    ScheduleStopped,
}

/// A pipeline that ended (finished, failed, removed or restarted), or one
/// run of a scheduled pipeline.
pub struct Ended {
    /// The pipeline.
    pub pipeline: String,
    /// Its manifest.
    pub manifest: PathBuf,
    /// What it did.
    pub result: Result<RunReport, PipelineError>,
    /// What ended.
    pub kind: EndKind,
    state: Arc<dyn StateStore>,
}

/// Runs the pipelines of a set of manifests and reloads them.
pub struct Supervisor {
    runtime: Runtime,
    active: BTreeMap<String, Active>,
    ended: Vec<Ended>,
    /// Lines for the operator from scheduled pipelines ("next run at …").
    notes: Vec<String>,
}

/// The manifests a path names: the file itself, or the `.toml` files of a
/// folder in name order.
pub fn manifest_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Reads every manifest the paths name and plans it. Blocking.
fn plan_paths(paths: &[PathBuf], runtime: &Runtime) -> Result<Vec<Plan>, String> {
    let mut plans: Vec<Plan> = Vec::new();
    let mut errors = Vec::new();
    let mut files = Vec::new();
    for path in paths {
        match manifest_files(path) {
            Ok(f) => files.extend(f),
            Err(e) => errors.push(format!("cannot read {}: {e}", path.display())),
        }
    }
    for path in &files {
        match ferry_manifest::load(path).and_then(|m| crate::plan(m, runtime)) {
            Ok(plan) => {
                if let Some(other) = plans.iter().find(|p| p.name == plan.name) {
                    errors.push(format!(
                        "{}: pipeline `{}` is also defined in {}; pipeline names must be unique",
                        path.display(),
                        plan.name,
                        other.manifest.path.display()
                    ));
                }
                plans.push(plan);
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(plans)
    } else {
        Err(errors.join("\n"))
    }
}

impl Supervisor {
    /// A supervisor running nothing yet.
    pub fn new(runtime: Runtime) -> Supervisor {
        Supervisor {
            runtime,
            active: BTreeMap::new(),
            ended: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Starts a pipeline, taking its lock first: refused if another process
    /// holds it.
    pub fn start(&mut self, plan: Plan) -> Result<(), PipelineError> {
        self.start_owned(plan, None)
    }

    /// Starts a pipeline with its lock, taken by the caller (e.g. after
    /// waiting for it), or taking it now when `owner` is `None` or is the
    /// lock of another state folder.
    pub fn start_owned(
        &mut self,
        plan: Plan,
        owner: Option<Ownership>,
    ) -> Result<(), PipelineError> {
        let lock = lock_path(&plan.manifest.pipeline.state, &plan.name);
        let owner = match owner.filter(|o| o.path() == lock && o.pipeline() == plan.name) {
            Some(o) => o,
            None => Ownership::take(&plan.manifest.pipeline.state, &plan.name, "ferry run")?,
        };
        let state: Arc<dyn StateStore> =
            Arc::new(SqliteState::open(&plan.manifest.pipeline.state)?);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let status = Arc::new(LiveStatus::default());
        let options = RunOptions {
            shutdown: shutdown_rx,
            status: Arc::clone(&status),
            replay: None,
        };
        let (controller, ctl) = swap_control();
        let name = plan.name.clone();
        let plan_stages = plan.stages.clone();
        let plan_shape = shape(&plan);
        let manifest = plan.manifest.path.clone();
        let state_path = plan.manifest.pipeline.state.clone();
        let (handle, scheduled) = if plan.manifest.pipeline.mode == Mode::Schedule {
            let (replans_tx, replans) = mpsc::unbounded_channel();
            let (events_tx, events) = mpsc::unbounded_channel();
            let schedule = ScheduleLoop {
                plan,
                state: Arc::clone(&state),
                options,
                replans,
                events: events_tx,
            };
            let scheduled = Scheduled {
                replans: replans_tx,
                events,
            };
            (tokio::spawn(schedule.run()), Some(scheduled))
        } else {
            let state = Arc::clone(&state);
            (
                tokio::spawn(run_controlled(plan, state, options, ctl)),
                None,
            )
        };
        let active = Active {
            plan_stages,
            shape: plan_shape,
            manifest,
            controller,
            shutdown,
            status,
            state,
            state_path,
            handle,
            scheduled,
            owner: Some(owner),
        };
        self.active.insert(name, active);
        Ok(())
    }

    /// The running pipelines: name, manifest and live counters.
    pub fn running(&self) -> Vec<(String, PathBuf, Arc<LiveStatus>)> {
        self.active
            .iter()
            .map(|(name, a)| (name.clone(), a.manifest.clone(), Arc::clone(&a.status)))
            .collect()
    }

    /// Whether any pipeline still runs.
    pub fn is_running(&self) -> bool {
        !self.active.is_empty()
    }

    /// Moves pipelines whose task ended, and scheduled runs that ended,
    /// into the ended list.
    pub async fn reap(&mut self) {
        for (name, a) in &mut self.active {
            drain(name, a, &mut self.ended, &mut self.notes);
        }
        let done: Vec<String> = self
            .active
            .iter()
            .filter(|(_, a)| a.handle.is_finished())
            .map(|(name, _)| name.clone())
            .collect();
        for name in done {
            if let Some(a) = self.active.remove(&name) {
                finish(name, a, &mut self.ended, &mut self.notes).await;
            }
        }
    }

    /// Takes the pipelines (and scheduled runs) that ended since the last
    /// call.
    pub fn take_ended(&mut self) -> Vec<Ended> {
        std::mem::take(&mut self.ended)
    }

    /// Takes the lines scheduled pipelines had for the operator since the
    /// last call ("t: next run at 2026-11-27T08:15:00Z (in 14m 2s)").
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// Asks every pipeline to drain and stop.
    pub fn shutdown(&self) {
        for a in self.active.values() {
            let _ = a.shutdown.send(true);
        }
    }

    /// Waits for every pipeline to end.
    pub async fn wait(&mut self) -> Vec<Ended> {
        let active = std::mem::take(&mut self.active);
        for (name, a) in active {
            finish(name, a, &mut self.ended, &mut self.notes).await;
        }
        self.take_ended()
    }

    /// Reads `paths` again and applies the difference (see the module
    /// docs). The event is also written to the audit log of every pipeline
    /// it concerns.
    pub async fn reload(&mut self, paths: &[PathBuf], trigger: &str) -> ReloadEvent {
        self.reap().await;
        let event = self.try_reload(paths, trigger).await;
        match &event.outcome {
            ReloadOutcome::Applied => tracing::info!("{event}"),
            ReloadOutcome::RolledBack => tracing::warn!("{event}"),
            ReloadOutcome::NoChange => tracing::info!("{event}"),
        }
        self.record(&event);
        event
    }

    async fn try_reload(&mut self, paths: &[PathBuf], trigger: &str) -> ReloadEvent {
        let refused = |reason: String| rolled_back(trigger, reason, Vec::new());
        // 1. Plan, off the async workers.
        let runtime = self.runtime.clone();
        let owned = paths.to_vec();
        let plans = match tokio::task::spawn_blocking(move || plan_paths(&owned, &runtime)).await {
            Ok(Ok(plans)) => plans,
            Ok(Err(errors)) => return refused(errors),
            Err(e) => return refused(format!("planning failed: {e}")),
        };

        // 2. Diff.
        let mut added = Vec::new();
        let mut restarted = Vec::new();
        let mut swaps: Vec<(String, PlannedStage, InstanceSpec)> = Vec::new();
        // Scheduled pipelines given a new plan, and their changed stages,
        // opened once as a check.
        let mut replans: Vec<(Plan, String)> = Vec::new();
        let mut checks: Vec<(String, PlannedStage)> = Vec::new();
        let mut new_names = Vec::new();
        for plan in plans {
            new_names.push(plan.name.clone());
            match self.active.get(&plan.name) {
                None => added.push(plan),
                Some(a)
                    if a.scheduled.is_some()
                        && plan.manifest.pipeline.mode == Mode::Schedule
                        && a.state_path == plan.manifest.pipeline.state =>
                {
                    let changed: Vec<&PlannedStage> = a
                        .plan_stages
                        .iter()
                        .zip(&plan.stages)
                        .filter(|(old, new)| stage_changed(old, new))
                        .map(|(_, new)| new)
                        .collect();
                    let why = if a.shape != shape(&plan) {
                        shape_change(&a.plan_stages, &plan)
                    } else if !changed.is_empty() {
                        let names: Vec<&str> = changed.iter().map(|s| s.name.as_str()).collect();
                        format!("stage `{}` changed", names.join("`, `"))
                    } else {
                        continue;
                    };
                    for stage in changed {
                        checks.push((plan.name.clone(), stage.clone()));
                    }
                    let schedule = plan
                        .manifest
                        .pipeline
                        .schedule
                        .as_ref()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default();
                    replans.push((
                        plan,
                        format!(
                            "{why}; its runs go on from the next one, on schedule `{schedule}`"
                        ),
                    ));
                }
                Some(a) if a.shape != shape(&plan) => {
                    let why = shape_change(&a.plan_stages, &plan);
                    restarted.push((plan, why));
                }
                Some(a) => {
                    for (old, new) in a.plan_stages.iter().zip(&plan.stages) {
                        if stage_changed(old, new) {
                            swaps.push((plan.name.clone(), new.clone(), old.spec.clone()));
                        }
                    }
                }
            }
        }
        let removed: Vec<String> = self
            .active
            .keys()
            .filter(|name| !new_names.contains(name))
            .cloned()
            .collect();
        if added.is_empty()
            && restarted.is_empty()
            && swaps.is_empty()
            && removed.is_empty()
            && replans.is_empty()
        {
            return ReloadEvent {
                outcome: ReloadOutcome::NoChange,
                trigger: trigger.to_string(),
                changes: Vec::new(),
                reason: None,
            };
        }

        // 3. Prepare every swap; nothing changes unless all succeed.
        let mut prepared: Vec<(String, PreparedSwap, InstanceSpec)> = Vec::new();
        for (pipeline, stage, old_spec) in swaps {
            let Some(state) = self.active.get(&pipeline).map(|a| Arc::clone(&a.state)) else {
                continue;
            };
            let name = pipeline.clone();
            let result =
                tokio::task::spawn_blocking(move || prepare_swap(&stage, &name, &state)).await;
            match result {
                Ok(Ok(p)) => prepared.push((pipeline, p, old_spec)),
                Ok(Err(e)) => return refused(format!("pipeline `{pipeline}`: {e}")),
                Err(e) => return refused(format!("preparing a swap failed: {e}")),
            }
        }

        // A scheduled pipeline's changed stages must open too, though the
        // instances are dropped: its next run builds its own.
        for (pipeline, stage) in checks {
            let Some(state) = self.active.get(&pipeline).map(|a| Arc::clone(&a.state)) else {
                continue;
            };
            let name = pipeline.clone();
            let result =
                tokio::task::spawn_blocking(move || prepare_swap(&stage, &name, &state)).await;
            match result {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return refused(format!("pipeline `{pipeline}`: {e}")),
                Err(e) => return refused(format!("checking a stage failed: {e}")),
            }
        }

        // 4. Apply.
        let mut changes = Vec::new();
        for name in removed {
            if let Some(a) = self.active.remove(&name) {
                let _ = a.shutdown.send(true);
                finish(name.clone(), a, &mut self.ended, &mut self.notes).await;
                changes.push(ReloadChange::Removed { pipeline: name });
            }
        }
        for (plan, why) in replans {
            let name = plan.name.clone();
            let Some(a) = self.active.get_mut(&name) else {
                continue;
            };
            a.plan_stages = plan.stages.clone();
            a.shape = shape(&plan);
            let sent = match &a.scheduled {
                Some(s) => s.replans.send(plan).map_err(|e| e.0),
                None => Err(plan),
            };
            if let Err(plan) = sent {
                // The loop ended meanwhile: start it again, keeping its lock.
                let mut kept = None;
                if let Some(mut a) = self.active.remove(&name) {
                    kept = a.owner.take();
                    finish(name.clone(), a, &mut self.ended, &mut self.notes).await;
                }
                if let Err(e) = self.start_owned(plan, kept) {
                    return rolled_back(
                        trigger,
                        format!("pipeline `{name}` could not start again: {e}"),
                        changes,
                    );
                }
            }
            changes.push(ReloadChange::Restarted {
                pipeline: name,
                why,
            });
        }
        for (plan, why) in restarted {
            let name = plan.name.clone();
            let mut kept = None;
            if let Some(mut a) = self.active.remove(&name) {
                let _ = a.shutdown.send(true);
                kept = a.owner.take();
                finish(name.clone(), a, &mut self.ended, &mut self.notes).await;
            }
            match self.start_owned(plan, kept) {
                Ok(()) => changes.push(ReloadChange::Restarted {
                    pipeline: name,
                    why,
                }),
                Err(e) => {
                    return rolled_back(
                        trigger,
                        format!(
                            "pipeline `{name}` stopped for a restart but could not start again: {e}"
                        ),
                        changes,
                    );
                }
            }
        }
        for plan in added {
            let name = plan.name.clone();
            match self.start(plan) {
                Ok(()) => changes.push(ReloadChange::Added { pipeline: name }),
                Err(e) => {
                    return rolled_back(
                        trigger,
                        format!("pipeline `{name}` could not start: {e}"),
                        changes,
                    );
                }
            }
        }
        for (pipeline, p, old_spec) in prepared {
            let Some(a) = self.active.get_mut(&pipeline) else {
                continue;
            };
            let new_stage = p.stage.clone();
            let (grants, widened) = grant_diff(&old_spec, &new_stage.spec);
            match a.controller.swap(p).await {
                Ok(report) => {
                    if let Some(slot) = a.plan_stages.iter_mut().find(|s| s.name == new_stage.name)
                    {
                        *slot = new_stage;
                    }
                    changes.push(ReloadChange::Swapped {
                        pipeline,
                        stage: report.stage,
                        old_digest: report.old_digest,
                        new_digest: report.new_digest,
                        pause: report.pause,
                        grants,
                        widened,
                    });
                }
                Err(e) => {
                    return rolled_back(trigger, format!("pipeline `{pipeline}`: {e}"), changes);
                }
            }
        }
        ReloadEvent {
            outcome: ReloadOutcome::Applied,
            trigger: trigger.to_string(),
            changes,
            reason: None,
        }
    }

    /// Writes the event to the audit log of the pipelines it concerns (all
    /// running ones for a rollback or no-change).
    fn record(&self, event: &ReloadEvent) {
        let mut rows: Vec<(Arc<dyn StateStore>, AuditEvent)> = Vec::new();
        let base = |pipeline: &str, stage: &str, digest: &str, detail: String| AuditEvent {
            id: 0,
            at_us: 0,
            pipeline: pipeline.to_string(),
            stage: stage.to_string(),
            plugin_digest: digest.to_string(),
            capability: "reload".to_string(),
            target: event.outcome.as_str().to_string(),
            detail,
        };
        if event.changes.is_empty() {
            let detail = format!(
                "{} ({}){}",
                event.outcome.as_str(),
                event.trigger,
                event
                    .reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
            for (name, a) in &self.active {
                rows.push((Arc::clone(&a.state), base(name, "", "", detail.clone())));
            }
        }
        for change in &event.changes {
            let state = match self.active.get(change.pipeline()) {
                Some(a) => Arc::clone(&a.state),
                None => match self
                    .ended
                    .iter()
                    .rev()
                    .find(|e| e.pipeline == change.pipeline())
                {
                    Some(e) => Arc::clone(&e.state),
                    None => continue,
                },
            };
            let (stage, digest) = match change {
                ReloadChange::Swapped {
                    stage, new_digest, ..
                } => (stage.as_str(), new_digest.as_str()),
                _ => ("", ""),
            };
            rows.push((
                state,
                base(
                    change.pipeline(),
                    stage,
                    digest,
                    format!("{change} ({})", event.trigger),
                ),
            ));
        }
        for (state, row) in rows {
            if let Err(e) = state.record_audit(&row) {
                tracing::error!("cannot record the reload in the audit log: {e}");
            }
        }
    }
}

/// Waits for a pipeline's task to end and adds it to `ended` (after the
/// runs a scheduled pipeline reported).
async fn finish(pipeline: String, mut a: Active, ended: &mut Vec<Ended>, notes: &mut Vec<String>) {
    let result = match (&mut a.handle).await {
        Ok(result) => result,
        Err(e) => Err(PipelineError::Internal(format!("pipeline task died: {e}"))),
    };
    drain(&pipeline, &mut a, ended, notes);
    ended.push(Ended {
        pipeline,
        manifest: a.manifest,
        result,
        kind: if a.scheduled.is_some() {
            EndKind::ScheduleStopped
        } else {
            EndKind::Pipeline
        },
        state: a.state,
    });
}

/// Moves what a scheduled pipeline's loop reported into `ended` and `notes`.
fn drain(pipeline: &str, a: &mut Active, ended: &mut Vec<Ended>, notes: &mut Vec<String>) {
    let Some(scheduled) = &mut a.scheduled else {
        return;
    };
    while let Ok(event) = scheduled.events.try_recv() {
        match event {
            LoopEvent::Note(line) => notes.push(line),
            LoopEvent::Ran(result) => ended.push(Ended {
                pipeline: pipeline.to_string(),
                manifest: a.manifest.clone(),
                result,
                kind: EndKind::ScheduledRun,
                state: Arc::clone(&a.state),
            }),
        }
    }
}
