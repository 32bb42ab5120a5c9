//! Running a planned pipeline: one tokio task per stage, bounded channels of
//! batches between them, a committer that turns completed batches into
//! durable checkpoints.
//!
//! ```text
//!   source ──batch──▶ mapper ──▶ validator ──▶ sink ─┐
//!     ▲                  │           │    └─when─▶ sink ─┤ flush, then
//!     │ commit(cp)       ▼           ▼                  │ pieces done
//!     └──── committer ◀─ ledger ◀── dead letters ◀──────┘
//! ```
//!
//! Plugin calls are synchronous WebAssembly calls; each runs inside
//! `block_in_place`, so a stage owns its Store without moving it between
//! threads and the other stages keep running on the other workers. A call
//! that fails is retried (retryable errors) or split in halves until the
//! failing records are isolated (traps, fatal errors, malformed output), so
//! one poison record goes to the dead-letter store and its batch-mates go on.
//!
//! A stage does not store dead letters itself: it hands them to the ledger
//! with the batch they belong to, and the committer stores them in the
//! transaction that commits the checkpoint past that batch
//! ([`ferry_state::PipelineCommit`]), so a crash never leaves a letter for
//! a record that will be read again.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferry_host::batch::BatchExt;
use ferry_host::{
    Batch, CallError, MapperInstance, SinkInstance, SourceInstance, SourceStatus, ValidatorInstance,
};
use ferry_manifest::{Mode, OnInvalid, PluginKind, RetryPolicy};
use ferry_state::{
    Accounting, DeadLetter, PipelineCommit, Replayed, RunStatus, StateStore, now_us,
};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

use crate::PipelineError;
pub(crate) use crate::audit::StateAudit;
use crate::ledger::{Ledger, RowState};
use crate::plan::{Output, Plan, PlannedStage};
use crate::swap::{RunControl, SwapReport, SwapRequest};

type SwapReply = tokio::sync::oneshot::Sender<Result<SwapReport, PipelineError>>;

/// How many batches may wait between two stages before the sender waits.
const CHANNEL_DEPTH: usize = 4;
/// Consecutive failed rebuilds of a source before the pipeline stops.
const SOURCE_FAULT_LIMIT: u32 = 3;
/// Consecutive batches in which every record made a stage's plugin trap
/// before its circuit breaker stops the pipeline: a plugin that fails on
/// everything is broken, and dead-lettering all input would hide it.
const BREAKER_LIMIT: u32 = 5;

/// Live counters of a running pipeline, for progress displays.
#[derive(Debug, Default)]
pub struct LiveStatus {
    /// Records read by the source.
    pub read: AtomicU64,
    /// Records written (committed).
    pub written: AtomicU64,
    /// Records dead-lettered (committed).
    pub dead_lettered: AtomicU64,
    /// Records filtered (committed).
    pub filtered: AtomicU64,
    /// Plugin instances rebuilt after a trap.
    pub rebuilds: AtomicU64,
    /// Why the pipeline is paused (a sink that is down), if it is.
    pub paused: std::sync::Mutex<Option<String>>,
    /// A scheduled pipeline waiting for its next run: when it starts, in
    /// microseconds since the Unix epoch; 0 while it runs (and for other
    /// pipelines).
    pub next_run_us: AtomicI64,
}

impl LiveStatus {
    /// Why the pipeline is paused, if it is.
    pub fn paused(&self) -> Option<String> {
        self.paused.lock().map(|p| p.clone()).unwrap_or_default()
    }

    pub(crate) fn set_paused(&self, why: Option<String>) {
        if let Ok(mut p) = self.paused.lock() {
            *p = why;
        }
    }

    /// A snapshot of the committed counts.
    pub fn committed(&self) -> Accounting {
        Accounting {
            read: self.written.load(Ordering::Relaxed)
                + self.dead_lettered.load(Ordering::Relaxed)
                + self.filtered.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            filtered: self.filtered.load(Ordering::Relaxed),
        }
    }
}

/// How a run is driven from outside.
#[derive(Clone)]
pub struct RunOptions {
    /// Becomes `true` when the pipeline should stop reading and drain
    /// (Ctrl-C in follow mode).
    pub shutdown: watch::Receiver<bool>,
    /// Counters updated while it runs.
    pub status: Arc<LiveStatus>,
    /// Replay: these records take the place of the source (which is not
    /// opened), and the checkpoint is kept apart from the source's. See
    /// [`replay_plan`](crate::plan::replay_plan).
    pub replay: Option<Replay>,
}

/// A `ferry dlq replay`: dead letters' records sent through the stage that
/// refused them. The run's commit settles the letters: a record delivered
/// or filtered loses its letter, one that fails again has its letter
/// replaced in place, in the transaction that commits the run's records
/// (so a replay that fails or is killed first changes no letter).
#[derive(Clone)]
pub struct Replay {
    /// The records, as they entered that stage.
    pub records: Batch,
    /// The id of the dead letter each record comes from, by row.
    pub letters: Vec<i64>,
    /// The stage they go through, for the audit log.
    pub stage: String,
}

impl RunOptions {
    /// Options with no shutdown signal.
    pub fn new() -> (Self, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(false);
        (
            RunOptions {
                shutdown: rx,
                status: Arc::new(LiveStatus::default()),
                replay: None,
            },
            tx,
        )
    }
}

/// What a finished run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The pipeline.
    pub pipeline: String,
    /// The run's id in the state store.
    pub run_id: i64,
    /// Counts of this run's committed records.
    pub accounting: Accounting,
    /// How long it took.
    pub elapsed: Duration,
    /// Plugin instances rebuilt after traps.
    pub rebuilds: u64,
    /// A two-way sync's counts (writes per side, conflicts).
    pub sync: Option<crate::sync::SyncStats>,
}

struct Envelope {
    seq: u64,
    batch: Batch,
    /// For each record, its index in source batch `seq`.
    origins: Vec<u32>,
}

/// What every stage task shares.
#[derive(Clone)]
struct Shared {
    pipeline: Arc<str>,
    ledger: Arc<Ledger>,
    state: Arc<dyn StateStore>,
    progress: Arc<Notify>,
    status: Arc<LiveStatus>,
    /// A replay's letter ids, by source row: the letter of a record that
    /// fails again replaces the one it was replayed from.
    replayed: Option<Arc<[i64]>>,
}

/// Where a stage sends its output.
struct Router {
    outputs: Vec<(Output, mpsc::Sender<Envelope>)>,
}

impl Router {
    /// Sends the records of `batch` along every edge whose condition they
    /// meet. Each send is a new piece of source batch `seq`.
    async fn forward(
        &self,
        shared: &Shared,
        seq: u64,
        batch: Batch,
        origins: Vec<u32>,
    ) -> Result<(), PipelineError> {
        if batch.is_empty() {
            return Ok(());
        }
        let n = batch.len();
        let mut batch = Some(batch);
        let mut origins = Some(origins);
        let last = self.outputs.len().saturating_sub(1);
        for (i, (output, tx)) in self.outputs.iter().enumerate() {
            let Some(current) = batch.as_ref() else { break };
            let rows = output
                .when
                .as_ref()
                .map(|c| crate::route::select(current, c));
            let env = match rows {
                Some(rows) if rows.is_empty() => continue,
                Some(rows) if rows.len() < n => {
                    let o = origins.as_deref().unwrap_or(&[]);
                    Envelope {
                        seq,
                        batch: current.take(&rows),
                        origins: rows
                            .iter()
                            .map(|&r| o.get(r as usize).copied().unwrap_or(0))
                            .collect(),
                    }
                }
                // Every record goes: the last edge takes the batch itself.
                _ if i == last => Envelope {
                    seq,
                    batch: batch.take().unwrap_or_else(Batch::empty),
                    origins: origins.take().unwrap_or_default(),
                },
                _ => Envelope {
                    seq,
                    batch: current.clone(),
                    origins: origins.clone().unwrap_or_default(),
                },
            };
            shared.ledger.add_piece(seq);
            if tx.send(env).await.is_err() {
                shared.ledger.done_piece(seq);
                return Err(PipelineError::DownstreamStopped);
            }
        }
        Ok(())
    }
}

/// Runs a plan to its end (`once`) or until shutdown (`follow`), on the
/// current tokio runtime, which must be multi-threaded.
pub async fn run(
    plan: Plan,
    state: Arc<dyn StateStore>,
    options: RunOptions,
) -> Result<RunReport, PipelineError> {
    let (_, control) = crate::swap::control();
    run_controlled(plan, state, options, control).await
}

/// Like [`run`], taking stage swaps (hot reload) from `control`'s
/// [`Controller`](crate::swap::Controller) while it runs.
pub async fn run_controlled(
    plan: Plan,
    state: Arc<dyn StateStore>,
    options: RunOptions,
    mut control: RunControl,
) -> Result<RunReport, PipelineError> {
    if plan.manifest.sync.is_some() {
        // A two-way sync has no stage graph; it is not swapped either (a
        // reload restarts it, see `reload::shape`).
        return crate::sync::run(plan, state, options).await;
    }
    let started = Instant::now();
    let pipeline: Arc<str> = Arc::from(plan.name.as_str());
    let source_name = plan
        .stages
        .first()
        .map(|s| s.name.clone())
        .ok_or_else(|| PipelineError::Internal("a plan without a source".into()))?;
    // A replay's progress must not move the real source's checkpoint.
    let source_name = match &options.replay {
        Some(_) => format!("{source_name}#replay"),
        None => source_name,
    };
    let checkpoint = match &options.replay {
        Some(_) => None,
        None => state.checkpoint(&pipeline, &source_name)?,
    };
    if let Some(r) = &options.replay
        && r.letters.len() != r.records.len()
    {
        return Err(PipelineError::Internal(format!(
            "a replay of {} records names {} dead letters",
            r.records.len(),
            r.letters.len()
        )));
    }
    let run_id = state.start_run(&pipeline)?;
    let shared = Shared {
        pipeline: Arc::clone(&pipeline),
        ledger: Arc::new(Ledger::default()),
        state: Arc::clone(&state),
        progress: Arc::new(Notify::new()),
        status: Arc::clone(&options.status),
        replayed: options
            .replay
            .as_ref()
            .map(|r| Arc::from(r.letters.as_slice())),
    };

    // Channels: one input per stage but the source; built back to front so
    // every stage's router holds its children's senders.
    let mut receivers: Vec<Option<mpsc::Receiver<Envelope>>> = Vec::new();
    let mut senders: Vec<Option<mpsc::Sender<Envelope>>> = Vec::new();
    for i in 0..plan.stages.len() {
        if i == 0 {
            receivers.push(None);
            senders.push(None);
        } else {
            let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
            receivers.push(Some(rx));
            senders.push(Some(tx));
        }
    }
    let (committed_tx, committed_rx) = watch::channel::<Option<Vec<u8>>>(None);
    let mut tasks: JoinSet<Result<(), PipelineError>> = JoinSet::new();
    let manifest = &plan.manifest;
    let mode = manifest.pipeline.mode;
    let max_records = manifest.pipeline.batch.max_records;
    let max_wait = manifest.pipeline.batch.max_wait;
    let poll_interval = manifest.pipeline.poll_interval;

    // Build every instance first, so a failing `open` stops the run before
    // anything is read.
    // Plugin calls (here `open`) block: WASI file access inside them must
    // not run on an async worker's own context.
    let audit = Arc::new(StateAudit::new(Arc::clone(&state)));
    let built = tokio::task::block_in_place(|| {
        plan.stages
            .iter()
            .map(|stage| {
                if stage.kind == PluginKind::Source
                    && let Some(replay) = &options.replay
                {
                    return Ok(Instance::Replay(replay.records.clone()));
                }
                // A source opens at its checkpoint; an exactly-once sink
                // resumes from its committed token, discarding what was
                // written after it (before anything is read).
                let resume = match stage.kind {
                    PluginKind::Source => checkpoint.clone(),
                    PluginKind::Sink => state.sink_token(&pipeline, &stage.name)?,
                    _ => None,
                };
                let first = resume.is_none();
                let mut instance = build(stage, resume, &audit)?;
                if let Instance::Sink(sink) = &mut instance
                    && sink.exactly_once()
                {
                    // Resumes now, so a token it cannot use stops the run
                    // here; a sink never committed gets its state before
                    // this run writes as its baseline.
                    let token = sink.position().map_err(|error| PipelineError::Resume {
                        stage: stage.name.clone(),
                        error,
                    })?;
                    if let Some(token) = token.filter(|_| first) {
                        state.baseline_sink_token(&pipeline, &stage.name, &token)?;
                        sink.set_resume_checkpoint(Some(token));
                    }
                }
                Ok(instance)
            })
            .collect::<Result<Vec<_>, PipelineError>>()
    })?;
    let source = |feed: Feed,
                  ctx: StageCtx,
                  router: Router,
                  swaps: mpsc::UnboundedReceiver<SwapRequest>| SourceTask {
        ctx,
        router,
        feed,
        mode,
        max_records,
        poll_interval,
        shutdown: options.shutdown.clone(),
        committed: committed_rx.clone(),
        last_checkpoint: checkpoint.clone(),
        swaps,
    };
    let mut stage_swaps: HashMap<String, mpsc::UnboundedSender<SwapRequest>> = HashMap::new();
    for (i, (stage, instance)) in plan.stages.iter().zip(built).enumerate() {
        let (swap_tx, swaps) = mpsc::unbounded_channel();
        stage_swaps.insert(stage.name.clone(), swap_tx);
        let router = Router {
            outputs: stage
                .outputs
                .iter()
                .filter_map(|o| {
                    senders
                        .get(o.to)
                        .and_then(|s| s.clone())
                        .map(|tx| (o.clone(), tx))
                })
                .collect(),
        };
        let ctx = StageCtx {
            shared: shared.clone(),
            stage: stage.name.clone(),
            digest: stage.component.digest().to_string(),
            on_invalid: stage.on_invalid,
            faulted_batches: std::cell::Cell::new(0),
            retry: stage.retry,
            shutdown: options.shutdown.clone(),
            stopped_while_down: std::cell::Cell::new(false),
        };
        let input = receivers.get_mut(i).and_then(Option::take);
        match (instance, input) {
            (Instance::Source(src), _) => {
                tasks.spawn(source(Feed::Plugin(src), ctx, router, swaps).run());
            }
            (Instance::Replay(records), _) => {
                tasks.spawn(source(Feed::Records(Some(records)), ctx, router, swaps).run());
            }
            (Instance::Mapper(m), Some(rx)) => {
                tasks.spawn(step_task(ctx, router, rx, swaps, Step::Mapper(m)));
            }
            (Instance::Validator(v), Some(rx)) => {
                tasks.spawn(step_task(ctx, router, rx, swaps, Step::Validator(v)));
            }
            (Instance::Sink(s), Some(rx)) => {
                tasks.spawn(sink_task(ctx, rx, swaps, s, max_wait));
            }
            _ => {
                return Err(PipelineError::Internal(format!(
                    "stage `{}` has no input",
                    stage.name
                )));
            }
        }
    }
    drop(senders);

    // Swaps go to their stage's task, which takes them between batches.
    let dispatcher = tokio::spawn(async move {
        while let Some(request) = control.rx.recv().await {
            let stage = request.prepared.stage().to_string();
            let request = match stage_swaps.get(&stage) {
                Some(tx) => match tx.send(request) {
                    Ok(()) => continue,
                    Err(mpsc::error::SendError(r)) => r,
                },
                None => request,
            };
            let _ = request.reply.send(Err(PipelineError::Internal(format!(
                "stage `{stage}` is not running"
            ))));
        }
    });

    // The committer: whenever pieces complete, commit what can be committed.
    let (done_tx, mut done_rx) = watch::channel(false);
    let committer = {
        let shared = shared.clone();
        let pipeline = Arc::clone(&pipeline);
        let source_name = source_name.clone();
        // A replay's records are one source batch, so its one commit
        // settles every letter it replayed.
        let mut replay = options
            .replay
            .as_ref()
            .map(|r| (r.letters.clone(), r.stage.clone()));
        tokio::spawn(async move {
            let mut total = Accounting::default();
            loop {
                let finishing = *done_rx.borrow();
                if let Some(c) = shared.ledger.take_committable() {
                    let replayed = replay.take().map(|(ids, stage)| Replayed {
                        detail: replay_detail(&stage, run_id, &c.closed),
                        ids,
                    });
                    let commit = PipelineCommit {
                        run: run_id,
                        pipeline: pipeline.to_string(),
                        source: source_name.clone(),
                        checkpoint: c.checkpoint,
                        closed: c.closed,
                        dead_letters: c.dead_letters,
                        replayed,
                        sink_tokens: c.sink_tokens,
                    };
                    tokio::task::block_in_place(|| shared.state.commit(&commit))?;
                    let c = commit;
                    total.add(&c.closed);
                    let s = &shared.status;
                    s.written.fetch_add(c.closed.written, Ordering::Relaxed);
                    s.dead_lettered
                        .fetch_add(c.closed.dead_lettered, Ordering::Relaxed);
                    s.filtered.fetch_add(c.closed.filtered, Ordering::Relaxed);
                    let _ = committed_tx.send(Some(c.checkpoint));
                }
                if finishing {
                    return Ok::<Accounting, PipelineError>(total);
                }
                tokio::select! {
                    _ = shared.progress.notified() => {}
                    _ = done_rx.changed() => {}
                }
            }
        })
    };

    let mut failure: Option<PipelineError> = None;
    while let Some(joined) = tasks.join_next().await {
        let result = match joined {
            Ok(result) => result,
            // Only this loop aborts tasks, and only after a failure it
            // already holds: a cancelled task adds nothing to the report.
            Err(e) if e.is_cancelled() => continue,
            Err(e) => Err(PipelineError::Internal(format!("a stage task died: {e}"))),
        };
        if let Err(e) = result {
            // `DownstreamStopped` is a consequence: the stage that stopped
            // is finishing with the cause. Aborting now could cancel it and
            // lose the cause, so wait for it.
            let consequence = matches!(e, PipelineError::DownstreamStopped);
            // A stage that stopped makes the stages feeding it fail too:
            // report the cause, not the consequence.
            let replace = match &failure {
                None => true,
                Some(PipelineError::DownstreamStopped) => {
                    !matches!(e, PipelineError::DownstreamStopped)
                }
                Some(_) => false,
            };
            if replace {
                failure = Some(e);
            }
            if !consequence {
                tasks.abort_all();
            }
        }
    }
    dispatcher.abort();
    let _ = done_tx.send(true);
    shared.progress.notify_one();
    let accounting = match committer.await {
        Ok(Ok(total)) => total,
        Ok(Err(e)) => {
            failure.get_or_insert(e);
            Accounting::default()
        }
        Err(e) => {
            failure.get_or_insert(PipelineError::Internal(format!("the committer died: {e}")));
            Accounting::default()
        }
    };
    // The stages' instances are gone, with their last counts of
    // suppressed denials: write every denial before the run ends.
    tokio::task::block_in_place(|| audit.flush());
    let status = match &failure {
        None => RunStatus::Finished,
        Some(e) => RunStatus::Failed(e.to_string()),
    };
    state.finish_run(run_id, &status)?;
    let report = RunReport {
        pipeline: pipeline.to_string(),
        run_id,
        accounting,
        elapsed: started.elapsed(),
        rebuilds: options.status.rebuilds.load(Ordering::Relaxed),
        sync: None,
    };
    match failure {
        None => Ok(report),
        Some(error) => Err(PipelineError::Failed {
            report: Box::new(report),
            error: Box::new(error),
        }),
    }
}

/// What a replay did, for the audit log and `ferry dlq replay`.
pub fn replay_detail(stage: &str, run: i64, a: &Accounting) -> String {
    format!(
        "`ferry dlq replay` through stage `{stage}` (run {run}): {} replayed: {} delivered, {} failed again, {} filtered",
        a.read, a.written, a.dead_lettered, a.filtered
    )
}

pub(crate) enum Instance {
    /// A replay's records, in place of the source.
    Replay(Batch),
    Source(SourceInstance),
    Sink(SinkInstance),
    Mapper(MapperInstance),
    Validator(ValidatorInstance),
}

pub(crate) fn build(
    stage: &PlannedStage,
    checkpoint: Option<Vec<u8>>,
    audit: &Arc<StateAudit>,
) -> Result<Instance, PipelineError> {
    let mut spec = stage.spec.clone();
    let sink: Arc<dyn ferry_host::AuditSink> = audit.clone();
    spec.audit = Some(sink);
    let c = &stage.component;
    let open = |e| PipelineError::Open {
        stage: stage.name.clone(),
        source: Box::new(e),
    };
    Ok(match stage.kind {
        PluginKind::Source => {
            Instance::Source(SourceInstance::new(c, spec, checkpoint).map_err(open)?)
        }
        PluginKind::Sink => Instance::Sink(SinkInstance::new(c, spec, checkpoint).map_err(open)?),
        PluginKind::Mapper => Instance::Mapper(MapperInstance::new(c, spec, None).map_err(open)?),
        PluginKind::Validator => {
            Instance::Validator(ValidatorInstance::new(c, spec, None).map_err(open)?)
        }
        PluginKind::Resolver | PluginKind::Connector => {
            return Err(PipelineError::Internal(format!(
                "{} `{}` cannot be a route stage",
                stage.kind, stage.name
            )));
        }
    })
}

/// A stage's identity and what it shares with the others.
struct StageCtx {
    shared: Shared,
    stage: String,
    digest: String,
    on_invalid: OnInvalid,
    /// Consecutive batches in which every call faulted.
    faulted_batches: std::cell::Cell<u32>,
    /// How retryable failures are retried.
    retry: RetryPolicy,
    /// The pipeline's stop request, seen by a sink waiting for its target.
    shutdown: watch::Receiver<bool>,
    /// Set when a sink gave up waiting for its target because the pipeline
    /// was stopped: its records are neither written nor dead-lettered.
    stopped_while_down: std::cell::Cell<bool>,
}

impl StageCtx {
    /// Calls a sink until it answers something else than `retryable`:
    /// first as the retry policy says, then, the target being down, every
    /// `max_backoff` with the pipeline marked paused (backpressure: nothing
    /// behind it moves, nothing is lost) until it is back or the pipeline is
    /// stopped. Blocking.
    fn until_up<R>(&self, mut call: impl FnMut() -> Result<R, CallError>) -> Result<R, CallError> {
        let mut attempts = 0;
        let mut paused = false;
        loop {
            attempts += 1;
            let error = match call() {
                Err(CallError::Retryable(m)) => m,
                other => {
                    if paused {
                        self.shared.status.set_paused(None);
                        tracing::warn!(pipeline = %self.shared.pipeline, stage = %self.stage, "sink is back after {attempts} attempts; the pipeline goes on");
                    }
                    return other;
                }
            };
            if *self.shutdown.borrow() {
                self.stopped_while_down.set(true);
                self.shared.status.set_paused(None);
                return Err(CallError::Retryable(error));
            }
            let wait = if attempts < self.retry.attempts {
                self.retry.backoff_after(attempts)
            } else {
                if !paused {
                    paused = true;
                    let why = format!(
                        "sink `{}` is down ({error}); retrying every {:?}",
                        self.stage, self.retry.max_backoff
                    );
                    tracing::warn!(pipeline = %self.shared.pipeline, "paused: {why}");
                    self.shared.status.set_paused(Some(why));
                }
                self.retry.max_backoff
            };
            // Sleep in slices so a stop request is seen within 50 ms.
            let until = Instant::now() + jittered(wait);
            while Instant::now() < until && !*self.shutdown.borrow() {
                std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
            }
        }
    }

    /// Takes a swap's new digest and reports it done.
    fn swapped(&mut self, request_reply: SwapReply, new_digest: &str, began: Instant) {
        let report = SwapReport {
            stage: self.stage.clone(),
            old_digest: std::mem::replace(&mut self.digest, new_digest.to_string()),
            new_digest: new_digest.to_string(),
            pause: began.elapsed(),
        };
        self.faulted_batches.set(0);
        tracing::info!(
            pipeline = %self.shared.pipeline,
            stage = %self.stage,
            "swapped {} -> {} in {:?}",
            &report.old_digest[..report.old_digest.len().min(12)],
            &report.new_digest[..report.new_digest.len().min(12)],
            report.pause
        );
        let _ = request_reply.send(Ok(report));
    }

    /// Refuses a swap, keeping the current instance.
    fn refuse_swap(&self, reply: SwapReply, why: String) {
        let _ = reply.send(Err(PipelineError::Internal(format!(
            "stage `{}` kept its instance: {why}",
            self.stage
        ))));
    }

    /// Makes dead letters for `rows` of `batch` and hands them to the
    /// ledger with their source records, marked dead-lettered: they are
    /// stored in the commit that closes those records.
    fn dead_letter(
        &self,
        env: &Envelope,
        batch: &Batch,
        rows: &[(u32, String)],
        reason: &str,
        attempts: u32,
    ) -> Result<(), PipelineError> {
        if rows.is_empty() {
            return Ok(());
        }
        let now = now_us();
        let origin = |row: u32| env.origins.get(row as usize).copied();
        // A replayed record's letter replaces the one it came from.
        let replaces = |row: u32| {
            origin(row)
                .and_then(|o| self.shared.replayed.as_ref()?.get(o as usize).copied())
                .unwrap_or(0)
        };
        let letters: Vec<DeadLetter> = rows
            .iter()
            .map(|(row, detail)| DeadLetter {
                id: replaces(*row),
                pipeline: self.shared.pipeline.to_string(),
                stage: self.stage.clone(),
                plugin_digest: self.digest.clone(),
                reason: reason.to_string(),
                detail: detail.clone(),
                key: batch.key(*row as usize).to_string(),
                record: {
                    let mut record = batch.row_json(*row as usize);
                    // A delete keeps its operation, so a replay restores it.
                    if batch.ops.get(*row as usize) == Some(&ferry_host::Op::Delete)
                        && let Some(fields) = record.as_object_mut()
                    {
                        fields.insert("_op".into(), serde_json::json!("delete"));
                    }
                    record
                },
                attempts,
                created_at_us: now,
            })
            .collect();
        self.shared.ledger.dead_letter(
            env.seq,
            rows.iter().filter_map(|(r, _)| origin(*r)),
            letters,
        );
        Ok(())
    }

    /// Applies the route's `on_invalid` to records a mapper or validator
    /// refused.
    fn invalid(
        &self,
        env: &Envelope,
        batch: &Batch,
        rows: &[(u32, String)],
        reason: &str,
    ) -> Result<(), PipelineError> {
        match self.on_invalid {
            OnInvalid::DeadLetter => self.dead_letter(env, batch, rows, reason, 1),
            // Nothing to do: a record nobody takes is counted as filtered.
            OnInvalid::Drop => Ok(()),
            OnInvalid::Stop => match rows.first() {
                None => Ok(()),
                Some((row, detail)) => Err(PipelineError::Stopped {
                    stage: self.stage.clone(),
                    key: batch.key(*row as usize).to_string(),
                    detail: detail.clone(),
                }),
            },
        }
    }

    /// The circuit breaker: counts batches in which every call trapped, and
    /// stops the pipeline when there are too many in a row. The batch that
    /// trips it is neither dead-lettered nor committed: it is read again
    /// once the plugin is fixed.
    fn breaker<R>(&self, parts: &[Part<R>]) -> Result<(), PipelineError> {
        let all_faulted = !parts.is_empty()
            && parts
                .iter()
                .all(|p| matches!(p.result, Err(CallError::Fault { .. })));
        if !all_faulted {
            self.faulted_batches.set(0);
            return Ok(());
        }
        let n = self.faulted_batches.get() + 1;
        self.faulted_batches.set(n);
        if n < BREAKER_LIMIT {
            return Ok(());
        }
        let last = parts
            .iter()
            .rev()
            .find_map(|p| p.result.as_ref().err())
            .map(ToString::to_string)
            .unwrap_or_default();
        Err(PipelineError::CircuitOpen {
            stage: self.stage.clone(),
            batches: n,
            last,
        })
    }

    /// Dead-letters every record of a part whose call failed.
    fn fail_part(
        &self,
        env: &Envelope,
        part: &Part<impl Sized>,
        error: &CallError,
    ) -> Result<(), PipelineError> {
        let detail = error.to_string();
        let rows: Vec<(u32, String)> = part.rows.iter().map(|&r| (r, detail.clone())).collect();
        self.dead_letter(env, &env.batch, &rows, error.reason(), part.attempts)
    }
}

/// `wait` with jitter: a random duration between half of it and all of
/// it, so stages and pipelines retrying the same target spread out.
fn jittered(wait: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    let fraction = (h.finish() % 1_000) as u32;
    wait / 2 + wait / 2 * fraction / 1_000
}

/// A sub-batch a call was made on, and how it went.
struct Part<R> {
    /// Indices into the stage's input batch.
    rows: Vec<u32>,
    /// The sub-batch, when it is not the whole input.
    sub: Option<Batch>,
    result: Result<R, CallError>,
    attempts: u32,
}

/// Calls `f` on `batch`, retrying retryable errors and splitting the batch in
/// halves on other failures until the failing records are isolated.
/// `f` gets the (sub-)batch and the rows of `batch` it holds.
fn isolate<R>(
    batch: &Batch,
    retry: &RetryPolicy,
    mut f: impl FnMut(&Batch, &[u32]) -> Result<R, CallError>,
) -> Vec<Part<R>> {
    let mut parts = Vec::new();
    let all: Vec<u32> = (0..batch.len() as u32).collect();
    isolate_into(batch, all, true, retry, 0, &mut f, &mut parts);
    parts
}

/// `spent`: calls already made on a batch containing these rows (retries
/// are not waited for again after a split).
fn isolate_into<R>(
    batch: &Batch,
    rows: Vec<u32>,
    whole: bool,
    retry: &RetryPolicy,
    spent: u32,
    f: &mut impl FnMut(&Batch, &[u32]) -> Result<R, CallError>,
    parts: &mut Vec<Part<R>>,
) {
    let sub = if whole { None } else { Some(batch.take(&rows)) };
    let mut attempts = spent;
    loop {
        attempts += 1;
        let result = f(sub.as_ref().unwrap_or(batch), &rows);
        match result {
            Err(CallError::Retryable(_)) if attempts < retry.attempts => {
                std::thread::sleep(jittered(retry.backoff_after(attempts)));
            }
            // Retries used up, or a failure: split until the records that
            // fail are alone.
            Err(
                CallError::Retryable(_)
                | CallError::Fault { .. }
                | CallError::Fatal(_)
                | CallError::Contract(_)
                | CallError::OutputTooLarge { .. },
            ) if rows.len() > 1 => {
                let (left, right) = rows.split_at(rows.len() / 2);
                isolate_into(batch, left.to_vec(), false, retry, attempts, f, parts);
                isolate_into(batch, right.to_vec(), false, retry, attempts, f, parts);
                return;
            }
            result => {
                parts.push(Part {
                    rows,
                    sub,
                    result,
                    attempts,
                });
                return;
            }
        }
    }
}

fn check_rows(
    what: &str,
    rows: impl IntoIterator<Item = u32>,
    len: usize,
) -> Result<(), CallError> {
    for r in rows {
        if r as usize >= len {
            return Err(CallError::Contract(format!(
                "{what} names record {r} of a batch of {len}"
            )));
        }
    }
    Ok(())
}

/// What a source task reads from.
enum Feed {
    /// The source plugin.
    Plugin(SourceInstance),
    /// A replay's records, read once.
    Records(Option<Batch>),
}

impl Feed {
    fn poll(&mut self, max: u32) -> Result<ferry_host::Polled, CallError> {
        match self {
            Feed::Plugin(source) => source.poll(max),
            Feed::Records(records) => Ok(ferry_host::Polled {
                records: records.take().unwrap_or_else(Batch::empty),
                checkpoint: b"replayed".to_vec(),
                status: SourceStatus::Finished,
            }),
        }
    }
}

struct SourceTask {
    ctx: StageCtx,
    router: Router,
    feed: Feed,
    mode: Mode,
    max_records: u32,
    poll_interval: Duration,
    shutdown: watch::Receiver<bool>,
    committed: watch::Receiver<Option<Vec<u8>>>,
    /// The checkpoint just past the last records read: where a swapped-in
    /// instance starts.
    last_checkpoint: Option<Vec<u8>>,
    swaps: mpsc::UnboundedReceiver<SwapRequest>,
}

impl SourceTask {
    /// Opens the new source where the old one stopped reading and replaces
    /// it; on failure the old one goes on.
    fn swap(&mut self, request: SwapRequest) {
        let began = Instant::now();
        let SwapRequest { prepared, reply } = request;
        let digest = prepared.digest().to_string();
        let audit = Arc::new(StateAudit::new(Arc::clone(&self.ctx.shared.state)));
        let built = tokio::task::block_in_place(|| {
            build(&prepared.stage, self.last_checkpoint.clone(), &audit)
        });
        match built {
            Ok(Instance::Source(new)) => {
                let Feed::Plugin(current) = &mut self.feed else {
                    self.ctx
                        .refuse_swap(reply, "a replay has no source plugin".into());
                    return;
                };
                let old = std::mem::replace(current, new);
                self.ctx
                    .shared
                    .status
                    .rebuilds
                    .fetch_add(old.rebuilds(), Ordering::Relaxed);
                // The new instance has not been told of commits yet.
                self.committed.mark_changed();
                self.ctx.swapped(reply, &digest, began);
            }
            Ok(_) => self
                .ctx
                .refuse_swap(reply, "the new plugin is not a source".into()),
            Err(e) => self.ctx.refuse_swap(reply, e.to_string()),
        }
    }

    async fn run(mut self) -> Result<(), PipelineError> {
        let shared = self.ctx.shared.clone();
        let mut seq = 0u64;
        let mut faults = 0u32;
        let mut retries = 0u32;
        loop {
            if *self.shutdown.borrow() {
                return Ok(());
            }
            while let Ok(request) = self.swaps.try_recv() {
                self.swap(request);
            }
            self.tell_committed();
            let polled = tokio::task::block_in_place(|| self.feed.poll(self.max_records));
            let polled = match polled {
                Ok(p) => {
                    faults = 0;
                    retries = 0;
                    p
                }
                Err(CallError::Retryable(m)) if retries + 1 < self.ctx.retry.attempts => {
                    retries += 1;
                    tracing::warn!(stage = %self.ctx.stage, "source poll failed, retrying: {m}");
                    tokio::time::sleep(jittered(self.ctx.retry.backoff_after(retries))).await;
                    continue;
                }
                Err(e @ CallError::Fault { .. }) if faults < SOURCE_FAULT_LIMIT => {
                    faults += 1;
                    shared.status.rebuilds.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(stage = %self.ctx.stage, "source {e}; rebuilding it from its last checkpoint");
                    continue;
                }
                Err(e) => {
                    return Err(PipelineError::Source {
                        stage: self.ctx.stage.clone(),
                        error: e,
                    });
                }
            };
            polled.records.check().map_err(|e| PipelineError::Source {
                stage: self.ctx.stage.clone(),
                error: CallError::Contract(e),
            })?;
            let n = polled.records.len();
            shared.ledger.open(seq, n, polled.checkpoint.clone());
            shared.status.read.fetch_add(n as u64, Ordering::Relaxed);
            self.last_checkpoint = Some(polled.checkpoint.clone());
            if let Feed::Plugin(source) = &mut self.feed {
                source.set_resume_checkpoint(Some(polled.checkpoint));
            }
            let origins: Vec<u32> = (0..n as u32).collect();
            self.router
                .forward(&shared, seq, polled.records, origins)
                .await?;
            shared.ledger.done_piece(seq);
            shared.progress.notify_one();
            seq += 1;
            match polled.status {
                SourceStatus::More => {}
                SourceStatus::Finished => return Ok(()),
                SourceStatus::CaughtUp => match self.mode {
                    // Each run of a scheduled pipeline is a `once` run.
                    Mode::Once | Mode::Schedule => return Ok(()),
                    Mode::Follow => {
                        let shutdown = &mut self.shutdown;
                        let swap = tokio::select! {
                            _ = tokio::time::sleep(self.poll_interval) => None,
                            // A dropped sender can never ask to stop: wait out the interval.
                            Ok(()) = shutdown.changed() => None,
                            Some(request) = self.swaps.recv() => Some(request),
                        };
                        if let Some(request) = swap {
                            self.swap(request);
                        }
                    }
                },
            }
        }
    }

    /// Hands the latest durable checkpoint to the source's `commit`.
    fn tell_committed(&mut self) {
        if !self.committed.has_changed().unwrap_or(false) {
            return;
        }
        let checkpoint = self.committed.borrow_and_update().clone();
        if let Some(cp) = checkpoint
            && let Feed::Plugin(source) = &mut self.feed
            && let Err(e) = tokio::task::block_in_place(|| source.commit(&cp))
        {
            tracing::warn!(stage = %self.ctx.stage, "source commit failed (records stay safe, they may be read again): {e}");
        }
    }
}

enum Step {
    Mapper(MapperInstance),
    Validator(ValidatorInstance),
}

impl Step {
    fn rebuilds(&self) -> u64 {
        match self {
            Step::Mapper(m) => m.rebuilds(),
            Step::Validator(v) => v.rebuilds(),
        }
    }
}

async fn step_task(
    mut ctx: StageCtx,
    router: Router,
    mut rx: mpsc::Receiver<Envelope>,
    mut swaps: mpsc::UnboundedReceiver<SwapRequest>,
    mut step: Step,
) -> Result<(), PipelineError> {
    loop {
        let mut env = tokio::select! {
            biased;
            Some(request) = swaps.recv() => {
                let began = Instant::now();
                let SwapRequest { prepared, reply } = request;
                let digest = prepared.digest().to_string();
                let old = step.rebuilds();
                match (prepared.instance, &step) {
                    (Some(Instance::Mapper(m)), Step::Mapper(_)) => step = Step::Mapper(m),
                    (Some(Instance::Validator(v)), Step::Validator(_)) => step = Step::Validator(v),
                    _ => {
                        ctx.refuse_swap(reply, "the new plugin is of another kind".into());
                        continue;
                    }
                }
                ctx.shared.status.rebuilds.fetch_add(old, Ordering::Relaxed);
                ctx.swapped(reply, &digest, began);
                continue;
            }
            env = rx.recv() => match env {
                Some(env) => env,
                None => break,
            },
        };
        let forward = tokio::task::block_in_place(|| match &mut step {
            Step::Mapper(m) => map_batch(&ctx, m, &env),
            Step::Validator(v) => validate_batch(&ctx, v, &mut env),
        })?;
        for (batch, origins) in forward {
            router.forward(&ctx.shared, env.seq, batch, origins).await?;
        }
        ctx.shared.ledger.done_piece(env.seq);
        ctx.shared.progress.notify_one();
    }
    let rebuilds = step.rebuilds();
    ctx.shared
        .status
        .rebuilds
        .fetch_add(rebuilds, Ordering::Relaxed);
    Ok(())
}

type Forward = Vec<(Batch, Vec<u32>)>;

fn map_batch(
    ctx: &StageCtx,
    mapper: &mut MapperInstance,
    env: &Envelope,
) -> Result<Forward, PipelineError> {
    let parts = isolate(&env.batch, &ctx.retry, |b, _| {
        let mapped = mapper.map(b)?;
        // A batch that cannot be read fails the call (and is split to
        // isolate the records at fault); a malformed value fails only the
        // records it derives from, below.
        mapped.records.check_shape().map_err(CallError::Contract)?;
        if mapped.derived_from.len() != mapped.records.len() {
            return Err(CallError::Contract(format!(
                "derived-from has {} entries for {} output records",
                mapped.derived_from.len(),
                mapped.records.len()
            )));
        }
        check_rows("derived-from", mapped.derived_from.iter().copied(), b.len())?;
        check_rows("rejected", mapped.rejected.iter().map(|r| r.row), b.len())?;
        Ok(mapped)
    });
    ctx.breaker(&parts)?;
    let mut forward = Vec::new();
    for part in parts {
        match &part.result {
            Ok(mapped) => {
                let rejected: Vec<(u32, String)> = mapped
                    .rejected
                    .iter()
                    .map(|r| (part.rows[r.row as usize], r.reason.clone()))
                    .collect();
                ctx.invalid(env, &env.batch, &rejected, "rejected")?;
                let keep = malformed_values(ctx, env, &part, mapped, &rejected)?;
                let input_of = |out: usize| part.rows[mapped.derived_from[out] as usize];
                let origins = keep
                    .iter()
                    .map(|&out| {
                        env.origins
                            .get(input_of(out as usize) as usize)
                            .copied()
                            .unwrap_or(0)
                    })
                    .collect();
                if let Ok(mapped) = part.result {
                    let records = if keep.len() == mapped.records.len() {
                        mapped.records
                    } else {
                        mapped.records.take(&keep)
                    };
                    forward.push((records, origins));
                }
            }
            Err(e) => ctx.fail_part(env, &part, e)?,
        }
    }
    Ok(forward)
}

/// Dead-letters the input records from which a mapper derived malformed
/// values (text not UTF-8, `json` not JSON: reason `malformed-output`, the
/// detail naming the column and the problem) and returns the output records
/// to forward: those neither malformed nor derived from such a record.
/// Records the mapper also rejected are dead-lettered once, as rejected.
fn malformed_values(
    ctx: &StageCtx,
    env: &Envelope,
    part: &Part<ferry_host::Mapped>,
    mapped: &ferry_host::Mapped,
    rejected: &[(u32, String)],
) -> Result<Vec<u32>, PipelineError> {
    let all = || (0..mapped.records.len() as u32).collect();
    let faults = mapped.records.value_faults();
    if faults.is_empty() {
        return Ok(all());
    }
    let input_of = |out: usize| part.rows[mapped.derived_from[out] as usize];
    let mut bad_outputs = std::collections::HashSet::new();
    let mut bad_inputs: std::collections::BTreeMap<u32, String> = Default::default();
    for (out, why) in faults {
        bad_outputs.insert(out);
        let input = input_of(out);
        if rejected.iter().any(|(r, _)| *r == input) {
            continue;
        }
        let why = format!(
            "output record {out} (key `{}`): {why}",
            mapped.records.key(out)
        );
        bad_inputs
            .entry(input)
            .and_modify(|s| {
                s.push_str("; ");
                s.push_str(&why);
            })
            .or_insert_with(|| format!("the mapper's {why}"));
    }
    let letters: Vec<(u32, String)> = bad_inputs
        .iter()
        .map(|(r, why)| (*r, why.clone()))
        .collect();
    ctx.dead_letter(env, &env.batch, &letters, "malformed-output", part.attempts)?;
    Ok((0..mapped.records.len())
        .filter(|&out| !bad_outputs.contains(&out) && !bad_inputs.contains_key(&input_of(out)))
        .map(|out| out as u32)
        .collect())
}

fn validate_batch(
    ctx: &StageCtx,
    validator: &mut ValidatorInstance,
    env: &mut Envelope,
) -> Result<Forward, PipelineError> {
    let parts = isolate(&env.batch, &ctx.retry, |b, _| {
        let violations = validator.validate(b)?;
        check_rows("a violation", violations.iter().map(|v| v.row), b.len())?;
        Ok(violations)
    });
    ctx.breaker(&parts)?;
    let mut forward = Vec::new();
    for part in parts {
        match &part.result {
            Ok(violations) if violations.is_empty() => match part.sub {
                // The whole input is valid: it goes on as it is, uncopied.
                None => forward.push((
                    std::mem::replace(&mut env.batch, Batch::empty()),
                    std::mem::take(&mut env.origins),
                )),
                Some(sub) => {
                    let origins = part
                        .rows
                        .iter()
                        .map(|&r| env.origins.get(r as usize).copied().unwrap_or(0))
                        .collect();
                    forward.push((sub, origins));
                }
            },
            Ok(violations) => {
                let batch = part.sub.as_ref().unwrap_or(&env.batch);
                // Every violation of a record, in one reason.
                let mut reasons: Vec<Option<String>> = vec![None; batch.len()];
                for v in violations {
                    let text = match &v.field {
                        Some(f) => format!("{f}: {} ({})", v.message, v.rule),
                        None => format!("{} ({})", v.message, v.rule),
                    };
                    let slot = &mut reasons[v.row as usize];
                    match slot {
                        Some(s) => {
                            s.push_str("; ");
                            s.push_str(&text);
                        }
                        None => *slot = Some(text),
                    }
                }
                let invalid: Vec<(u32, String)> = reasons
                    .iter()
                    .enumerate()
                    .filter_map(|(i, r)| r.as_ref().map(|r| (part.rows[i], r.clone())))
                    .collect();
                ctx.invalid(env, &env.batch, &invalid, "invalid")?;
                let valid: Vec<u32> = (0..batch.len() as u32)
                    .filter(|&i| reasons[i as usize].is_none())
                    .collect();
                if !valid.is_empty() {
                    let origins = valid
                        .iter()
                        .map(|&i| {
                            env.origins
                                .get(part.rows[i as usize] as usize)
                                .copied()
                                .unwrap_or(0)
                        })
                        .collect();
                    forward.push((batch.take(&valid), origins));
                }
            }
            Err(e) => ctx.fail_part(env, &part, e)?,
        }
    }
    Ok(forward)
}

/// How many written batches a sink keeps unflushed (besides `max_wait`)
/// before it flushes: they stay in memory until then, to be sent again to
/// an instance rebuilt after a trap.
const MAX_UNFLUSHED_BATCHES: usize = 256;

/// How many times the batches of a lost instance are sent again to a new
/// one that traps too, before the pipeline stops.
const RESEND_ATTEMPTS: u32 = 3;

/// A batch written to the sink and not yet flushed.
struct Written {
    env: Envelope,
    /// Rows of `env.batch` the sink took (neither rejected nor in conflict).
    accepted: Vec<u32>,
    /// Their source records, marked written once flushed.
    origins: Vec<u32>,
}

/// Written records waiting for the next flush. A sink may buffer writes
/// until its `flush`, and a trap drops the instance with its buffer, so
/// the batches are kept until the flush: a rebuilt instance is sent them
/// again ([`resend`]) before anything else.
struct Unflushed {
    pieces: Vec<Written>,
    since: Option<Instant>,
    /// An exactly-once sink's token after the last write.
    last_token: Option<Vec<u8>>,
}

async fn sink_task(
    mut ctx: StageCtx,
    mut rx: mpsc::Receiver<Envelope>,
    mut swaps: mpsc::UnboundedReceiver<SwapRequest>,
    mut sink: SinkInstance,
    max_wait: Duration,
) -> Result<(), PipelineError> {
    let mut unflushed = Unflushed {
        pieces: Vec::new(),
        since: None,
        last_token: None,
    };
    loop {
        let deadline = unflushed.since.map(|s| s + max_wait);
        let env = tokio::select! {
            biased;
            Some(request) = swaps.recv() => {
                let began = Instant::now();
                let SwapRequest { prepared, reply } = request;
                let digest = prepared.digest().to_string();
                let Some(Instance::Sink(mut new)) = prepared.instance else {
                    ctx.refuse_swap(reply, "the new plugin is not a sink".into());
                    continue;
                };
                // The old instance's writes are made durable (and their
                // records final) before the new one writes anything, and
                // an exactly-once new instance resumes where they end.
                flush(&ctx, &mut sink, &mut unflushed)?;
                new.set_resume_checkpoint(sink.resume_checkpoint().map(<[u8]>::to_vec));
                let old = std::mem::replace(&mut sink, new);
                ctx.shared.status.rebuilds.fetch_add(old.rebuilds(), Ordering::Relaxed);
                ctx.swapped(reply, &digest, began);
                continue;
            }
            // Before the input: under a steady stream the input is always
            // ready, and `max_wait` must still bound how long a written
            // record waits for its flush (and its checkpoint).
            _ = sleep_until(deadline) => {
                flush(&ctx, &mut sink, &mut unflushed)?;
                continue;
            }
            env = rx.recv() => env,
        };
        let Some(env) = env else { break };
        tokio::task::block_in_place(|| {
            let (accepted, origins) = write_batch(&ctx, &mut sink, &env, &mut unflushed)?;
            unflushed.pieces.push(Written {
                env,
                accepted,
                origins,
            });
            record_position(&ctx, &mut sink, &mut unflushed)
        })?;
        unflushed.since.get_or_insert_with(Instant::now);
        if unflushed.pieces.len() >= MAX_UNFLUSHED_BATCHES {
            flush(&ctx, &mut sink, &mut unflushed)?;
        }
    }
    flush(&ctx, &mut sink, &mut unflushed)?;
    ctx.shared
        .status
        .rebuilds
        .fetch_add(sink.rebuilds(), Ordering::Relaxed);
    Ok(())
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Makes the sink's writes durable, then marks their records written and
/// completes their pieces. A flush that traps lost the instance's buffer:
/// the rebuilt instance is sent the batches again and flushed once more.
fn flush(
    ctx: &StageCtx,
    sink: &mut SinkInstance,
    unflushed: &mut Unflushed,
) -> Result<(), PipelineError> {
    if unflushed.pieces.is_empty() {
        return Ok(());
    }
    tokio::task::block_in_place(|| {
        if !sink.is_live() {
            resend(ctx, sink, unflushed, None)?;
        }
        let mut flushed = ctx.until_up(|| sink.flush());
        if matches!(flushed, Err(CallError::Fault { .. })) {
            resend(ctx, sink, unflushed, None)?;
            flushed = ctx.until_up(|| sink.flush());
        }
        flushed.map_err(|error| PipelineError::Flush {
            stage: ctx.stage.clone(),
            error,
        })
    })?;
    // Unflushed writes may be lost on an error above: the pipeline stops
    // without committing them, so they are read again on the next run.
    if let Some(token) = unflushed.last_token.take() {
        // A rebuilt or swapped-in exactly-once instance resumes here.
        sink.set_resume_checkpoint(Some(token));
    }
    for w in unflushed.pieces.drain(..) {
        ctx.shared
            .ledger
            .mark(w.env.seq, w.origins, RowState::Written);
        ctx.shared.ledger.done_piece(w.env.seq);
    }
    unflushed.since = None;
    ctx.shared.progress.notify_one();
    Ok(())
}

/// After a batch's writes: an exactly-once sink's token for it goes to the
/// ledger (committed with the checkpoint once the batch is flushed and
/// complete). A sink that lost its instance meanwhile is sent its unflushed
/// batches again, which records their tokens anew.
fn record_position(
    ctx: &StageCtx,
    sink: &mut SinkInstance,
    unflushed: &mut Unflushed,
) -> Result<(), PipelineError> {
    if !sink.is_live() {
        return resend(ctx, sink, unflushed, None);
    }
    if !sink.exactly_once() {
        return Ok(());
    }
    let Some(seq) = unflushed.pieces.last().map(|w| w.env.seq) else {
        return Ok(());
    };
    match ctx.until_up(|| sink.position()) {
        Ok(Some(token)) => {
            ctx.shared.ledger.sink_token(seq, &ctx.stage, token.clone());
            unflushed.last_token = Some(token);
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(CallError::Fault { .. }) => resend(ctx, sink, unflushed, None),
        Err(error) => Err(PipelineError::Resend {
            stage: ctx.stage.clone(),
            error,
        }),
    }
}

/// Sends every unflushed batch (and `current`: a batch's rows already taken
/// by the lost instance) again to a new instance, in order. An exactly-once
/// sink first resumes from its last flushed token, discarding the lost
/// instance's unflushed writes, and its tokens are recorded anew. Blocking.
fn resend(
    ctx: &StageCtx,
    sink: &mut SinkInstance,
    unflushed: &mut Unflushed,
    current: Option<(&Envelope, &[u32])>,
) -> Result<(), PipelineError> {
    let batches = unflushed.pieces.len() + usize::from(current.is_some());
    tracing::warn!(
        pipeline = %ctx.shared.pipeline,
        stage = %ctx.stage,
        "the sink's instance was lost with its unflushed writes; sending {batches} batches again to a new one"
    );
    let mut attempt = 1;
    loop {
        match try_resend(ctx, sink, unflushed, current) {
            Ok(()) => return Ok(()),
            Err(CallError::Fault { .. }) if attempt < RESEND_ATTEMPTS => attempt += 1,
            Err(error) => {
                return Err(PipelineError::Resend {
                    stage: ctx.stage.clone(),
                    error,
                });
            }
        }
    }
}

fn try_resend(
    ctx: &StageCtx,
    sink: &mut SinkInstance,
    unflushed: &mut Unflushed,
    current: Option<(&Envelope, &[u32])>,
) -> Result<(), CallError> {
    ctx.until_up(|| sink.revive())?;
    let write_again = |sink: &mut SinkInstance, env: &Envelope, rows: &[u32]| {
        if rows.is_empty() {
            return Ok(());
        }
        let taken;
        let batch = if rows.len() == env.batch.len() {
            &env.batch
        } else {
            taken = env.batch.take(rows);
            &taken
        };
        let report = ctx.until_up(|| sink.write(batch))?;
        let refused = report.rejected.len() + report.conflicts.len();
        if refused > 0 {
            return Err(CallError::Contract(format!(
                "the new instance refused {refused} records the lost one had taken"
            )));
        }
        Ok(())
    };
    for w in &unflushed.pieces {
        write_again(sink, &w.env, &w.accepted)?;
        if let Some(token) = ctx.until_up(|| sink.position())? {
            ctx.shared
                .ledger
                .sink_token(w.env.seq, &ctx.stage, token.clone());
            unflushed.last_token = Some(token);
        }
    }
    if let Some((env, rows)) = current {
        write_again(sink, env, rows)?;
    }
    Ok(())
}

/// Writes a batch; returns the rows of it the sink took and their source
/// records (written, not yet flushed).
fn write_batch(
    ctx: &StageCtx,
    sink: &mut SinkInstance,
    env: &Envelope,
    unflushed: &mut Unflushed,
) -> Result<(Vec<u32>, Vec<u32>), PipelineError> {
    // A sink's retryable error means its target is down: `until_up` waits
    // for it (pausing the pipeline), so isolation sees no retryable error
    // unless the pipeline was stopped meanwhile.
    let no_retry = RetryPolicy {
        attempts: 1,
        ..ctx.retry
    };
    // Rows the current instance took so far: should it trap on a later
    // part, its successor gets them again with the unflushed batches.
    let mut taken: Vec<u32> = Vec::with_capacity(env.batch.len());
    let mut lost: Option<PipelineError> = None;
    let parts = isolate(&env.batch, &no_retry, |b, rows| {
        if lost.is_some() {
            return Err(CallError::Fatal("the sink's instance was lost".into()));
        }
        if !sink.is_live()
            && let Err(e) = resend(ctx, sink, unflushed, Some((env, &taken)))
        {
            lost = Some(e);
            return Err(CallError::Fatal("the sink's instance was lost".into()));
        }
        let report = ctx.until_up(|| sink.write(b))?;
        check_rows("rejected", report.rejected.iter().map(|r| r.row), b.len())?;
        check_rows("conflicts", report.conflicts.iter().map(|r| r.row), b.len())?;
        let mut refused = vec![false; rows.len()];
        for r in report.rejected.iter().chain(&report.conflicts) {
            if let Some(f) = refused.get_mut(r.row as usize) {
                *f = true;
            }
        }
        taken.extend(
            rows.iter()
                .zip(refused)
                .filter(|(_, f)| !f)
                .map(|(&r, _)| r),
        );
        Ok(report)
    });
    if let Some(e) = lost {
        return Err(e);
    }
    if ctx.stopped_while_down.get() {
        return Err(PipelineError::SinkDown {
            stage: ctx.stage.clone(),
        });
    }
    ctx.breaker(&parts)?;
    let mut written = Vec::with_capacity(env.batch.len());
    for part in parts {
        match &part.result {
            Ok(report) => {
                let rejected: Vec<(u32, String)> = report
                    .rejected
                    .iter()
                    .map(|r| (part.rows[r.row as usize], r.reason.clone()))
                    .collect();
                ctx.dead_letter(env, &env.batch, &rejected, "rejected", part.attempts)?;
                let conflicts: Vec<(u32, String)> = report
                    .conflicts
                    .iter()
                    .map(|r| (part.rows[r.row as usize], r.reason.clone()))
                    .collect();
                ctx.dead_letter(env, &env.batch, &conflicts, "conflict", part.attempts)?;
                let mut refused = vec![false; part.rows.len()];
                for r in report.rejected.iter().chain(&report.conflicts) {
                    refused[r.row as usize] = true;
                }
                written.extend(
                    part.rows
                        .iter()
                        .zip(refused)
                        .filter(|(_, refused)| !refused)
                        .filter_map(|(&r, _)| env.origins.get(r as usize).copied()),
                );
            }
            Err(e) => ctx.fail_part(env, &part, e)?,
        }
    }
    Ok((taken, written))
}
