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
//!
//! By role: `source` (the source task), `step` (mapper and validator tasks),
//! `sink` (the sink task, its flushes, commit tokens and resends),
//! `isolate` (bisection of a failing batch), `ctx` (what every stage task
//! shares and does alike), `committer` (checkpoints into the state); this
//! module wires them: channels, instances, tasks, the swap dispatcher and
//! the join loop.

mod committer;
mod ctx;
mod isolate;
mod sink;
mod source;
mod step;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferry_host::batch::BatchExt;
use ferry_host::{Batch, MapperInstance, SinkInstance, SourceInstance, ValidatorInstance};
use ferry_manifest::PluginKind;
use ferry_state::{Accounting, RunStatus, StateStore};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

use crate::PipelineError;
pub(crate) use crate::audit::StateAudit;
use crate::ledger::Ledger;
use crate::plan::{Output, Plan, PlannedStage};
use crate::swap::{RunControl, SwapRequest};

use committer::Committer;
use ctx::StageCtx;
use sink::sink_task;
use source::{Feed, SourceTask};
use step::{Step, step_task};

/// How many batches may wait between two stages before the sender waits.
const CHANNEL_DEPTH: usize = 4;

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
    let (_, control) = crate::swap::swap_control();
    run_controlled(plan, state, options, control).await
}

/// Like [`run`], taking stage swaps (hot reload) from `control`'s
/// [`SwapController`](crate::swap::SwapController) while it runs.
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
    let (done_tx, done_rx) = watch::channel(false);
    let committer = tokio::spawn(
        Committer {
            shared: shared.clone(),
            run: run_id,
            pipeline: pipeline.to_string(),
            source: source_name.clone(),
            replay: options
                .replay
                .as_ref()
                .map(|r| (r.letters.clone(), r.stage.clone())),
            committed: committed_tx,
        }
        .run(done_rx),
    );

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
