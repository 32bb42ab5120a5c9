//! Plugins' run-time denials into the state store's audit log, in batches
//! off the commit path.
//!
//! The host caps each denial and rate-limits them per plugin instance
//! ([`ferry_host::audit`]); what comes through is still written here without
//! making the plugin (or any pipeline) wait on the state store: a denial
//! goes into a bounded queue ([`QUEUE_CAPACITY`] events) and returns at
//! once; a writer thread, started with the first denial, writes what the
//! queue holds in one transaction per [`FLUSH_INTERVAL`] (and when asked to
//! flush, and when the last handle is dropped). A denial that finds the
//! queue full is counted per pipeline, stage, plugin and capability, and
//! the writer records the count as a `suppressed N` event with the next
//! batch: never lost silently.
//!
//! What a crash may lose: a `kill -9` (or a power loss) loses the denials
//! still queued, at most those of the last [`FLUSH_INTERVAL`] plus the batch
//! being written. Other audit events (purges, replays, reloads, conflict
//! decisions) are written in their own transactions, not here.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferry_state::{AuditEvent, StateStore, now_us};

/// How many denials may wait for the writer before more are only counted.
pub const QUEUE_CAPACITY: usize = 1024;
/// How long the writer gathers denials before writing them in one
/// transaction: the most a `kill -9` loses.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);
/// How long [`StateAudit::flush`] waits for the writer.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// Who was suppressed: pipeline, stage, plugin digest, capability.
type Key = (String, String, String, String);

enum Msg {
    Event(AuditEvent),
    Flush(mpsc::Sender<()>),
}

struct Writer {
    tx: SyncSender<Msg>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Writes the denials of the plugin instances it is given to (through
/// [`ferry_host::InstanceSpec::audit`]) to a state store's audit log.
pub(crate) struct StateAudit {
    state: Arc<dyn StateStore>,
    writer: OnceLock<Option<Writer>>,
    /// Denials that found the queue full, by who and what.
    overflow: Arc<Mutex<BTreeMap<Key, u64>>>,
}

impl StateAudit {
    pub(crate) fn new(state: Arc<dyn StateStore>) -> Self {
        StateAudit {
            state,
            writer: OnceLock::new(),
            overflow: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// The writer, started on first use; `None` if no thread could be
    /// started (then events are written one by one, synchronously).
    fn writer(&self) -> Option<&Writer> {
        self.writer
            .get_or_init(|| {
                let (tx, rx) = mpsc::sync_channel(QUEUE_CAPACITY);
                let state = Arc::clone(&self.state);
                let overflow = Arc::clone(&self.overflow);
                match std::thread::Builder::new()
                    .name("ferry-audit".into())
                    .spawn(move || write_loop(&*state, &rx, &overflow))
                {
                    Ok(thread) => Some(Writer {
                        tx,
                        thread: Mutex::new(Some(thread)),
                    }),
                    Err(e) => {
                        tracing::error!(
                            "cannot start the audit writer ({e}); denials are written one by one"
                        );
                        None
                    }
                }
            })
            .as_ref()
    }

    fn enqueue(&self, event: AuditEvent, count: u64) {
        let Some(writer) = self.writer() else {
            if let Err(e) = self.state.record_audit(&event) {
                tracing::error!("cannot record an audit event: {e}");
            }
            return;
        };
        match writer.tx.try_send(Msg::Event(event)) {
            Ok(()) => {}
            Err(TrySendError::Full(Msg::Event(event)))
            | Err(TrySendError::Disconnected(Msg::Event(event))) => {
                let key = (
                    event.pipeline,
                    event.stage,
                    event.plugin_digest,
                    event.capability,
                );
                *lock(&self.overflow).entry(key).or_default() += count;
            }
            Err(_) => {}
        }
    }

    /// Writes every denial queued so far; returns when they are in the
    /// state store (or the writer did not answer in time).
    pub(crate) fn flush(&self) {
        let Some(writer) = self.writer.get().and_then(Option::as_ref) else {
            return;
        };
        let (ack_tx, ack_rx) = mpsc::channel();
        if writer.tx.send(Msg::Flush(ack_tx)).is_ok() && ack_rx.recv_timeout(FLUSH_TIMEOUT).is_err()
        {
            tracing::error!("the audit writer did not flush within {FLUSH_TIMEOUT:?}");
        }
    }
}

impl Drop for StateAudit {
    /// Writes what is queued and stops the writer.
    fn drop(&mut self) {
        if let Some(Some(writer)) = self.writer.take() {
            let Writer { tx, thread } = writer;
            drop(tx);
            let thread = thread.into_inner().unwrap_or_else(|p| p.into_inner());
            if let Some(thread) = thread
                && thread.join().is_err()
            {
                tracing::error!("the audit writer failed");
            }
        }
        // Counts no writer took (it never started, or it stopped).
        write_batch(&*self.state, &self.overflow, Vec::new());
    }
}

impl ferry_host::AuditSink for StateAudit {
    fn denied(&self, pipeline: &str, stage: &str, digest: &str, denial: &ferry_host::Denial) {
        let event = event(pipeline, stage, digest, denial.capability, &denial.target);
        self.enqueue(
            AuditEvent {
                detail: denial.reason.clone(),
                ..event
            },
            1,
        );
    }

    fn suppressed(
        &self,
        pipeline: &str,
        stage: &str,
        digest: &str,
        capability: &'static str,
        count: u64,
        why: &str,
    ) {
        let denial = ferry_host::Denial::suppressed(capability, count, why);
        let event = event(pipeline, stage, digest, capability, &denial.target);
        self.enqueue(
            AuditEvent {
                detail: denial.reason,
                ..event
            },
            count,
        );
    }
}

/// A denial's audit event, stamped now; its detail empty.
fn event(pipeline: &str, stage: &str, digest: &str, capability: &str, target: &str) -> AuditEvent {
    AuditEvent {
        id: 0,
        at_us: now_us(),
        pipeline: pipeline.to_string(),
        stage: stage.to_string(),
        plugin_digest: digest.to_string(),
        capability: capability.to_string(),
        target: target.to_string(),
        detail: String::new(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The writer thread: gathers events for [`FLUSH_INTERVAL`] after the first
/// one, until a flush is asked for or [`QUEUE_CAPACITY`] are gathered, then
/// writes them in one transaction.
/// Ends, after a last write, when every sender is gone.
fn write_loop(state: &dyn StateStore, rx: &Receiver<Msg>, overflow: &Mutex<BTreeMap<Key, u64>>) {
    loop {
        let Ok(first) = rx.recv() else {
            break;
        };
        let mut batch = Vec::new();
        let mut acks = Vec::new();
        let mut closed = false;
        take(first, &mut batch, &mut acks);
        let until = Instant::now() + FLUSH_INTERVAL;
        // Until the interval ends, a flush is asked for or a batch is full
        // (so the writer holds at most twice the queue).
        while acks.is_empty() && batch.len() < QUEUE_CAPACITY {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match rx.recv_timeout(left) {
                Ok(msg) => take(msg, &mut batch, &mut acks),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        while batch.len() < QUEUE_CAPACITY
            && let Ok(msg) = rx.try_recv()
        {
            take(msg, &mut batch, &mut acks);
        }
        write_batch(state, overflow, batch);
        for ack in acks {
            let _ = ack.send(());
        }
        if closed {
            break;
        }
    }
    write_batch(state, overflow, Vec::new());
}

fn take(msg: Msg, batch: &mut Vec<AuditEvent>, acks: &mut Vec<mpsc::Sender<()>>) {
    match msg {
        Msg::Event(e) => batch.push(e),
        Msg::Flush(ack) => acks.push(ack),
    }
}

/// Writes `batch` and a `suppressed N` event for each count of denials that
/// found the queue full, in one transaction.
fn write_batch(
    state: &dyn StateStore,
    overflow: &Mutex<BTreeMap<Key, u64>>,
    mut batch: Vec<AuditEvent>,
) {
    let counts = std::mem::take(&mut *lock(overflow));
    for ((pipeline, stage, plugin_digest, capability), count) in counts {
        tracing::warn!(
            pipeline,
            stage,
            "suppressed {count} {capability} denials of this plugin: the audit queue was full"
        );
        batch.push(AuditEvent {
            id: 0,
            at_us: now_us(),
            pipeline,
            stage,
            plugin_digest,
            capability,
            target: format!("suppressed {count}"),
            detail: format!(
                "the audit queue ({QUEUE_CAPACITY} denials) was full: these were counted, not recorded one by one"
            ),
        });
    }
    if batch.is_empty() {
        return;
    }
    if let Err(e) = state.record_audits(&batch) {
        tracing::error!("cannot record {} audit events: {e}", batch.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_host::{AuditSink, Denial};
    use ferry_state::SqliteState;

    fn denial(i: usize) -> Denial {
        Denial::new(
            "sql",
            format!("dialect-of on connection `c{i}`"),
            "no".into(),
        )
    }

    #[test]
    fn denials_are_written_in_batches_and_a_flush_waits_for_them() {
        let state: Arc<dyn StateStore> =
            Arc::new(SqliteState::open(std::path::Path::new(":memory:")).unwrap());
        let audit = StateAudit::new(Arc::clone(&state));
        for i in 0..100 {
            audit.denied("p", "m", "d", &denial(i));
        }
        audit.flush();
        let events = state.audit_events(Some("p")).unwrap();
        assert_eq!(events.len(), 100);
        assert_eq!(events[3].target, "dialect-of on connection `c3`");
        audit.suppressed("p", "m", "d", "sql", 7, "rate limit");
        drop(audit);
        let events = state.audit_events(Some("p")).unwrap();
        assert_eq!(events.len(), 101, "the last ones are written at drop");
        assert_eq!(events[100].target, "suppressed 7");
    }

    /// A state store whose audit writes wait until let go, so the queue
    /// fills.
    struct Slow {
        inner: SqliteState,
        gate: Mutex<()>,
    }

    impl Slow {
        fn audit_len(&self) -> usize {
            self.inner.audit_events(None).unwrap().len()
        }
    }

    macro_rules! delegate {
        ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
            $(fn $name(&self, $($arg: $ty),*) -> $ret { self.inner.$name($($arg),*) })*
        };
    }

    impl StateStore for Slow {
        delegate! {
            checkpoint(pipeline: &str, source: &str) -> Result<Option<Vec<u8>>, ferry_state::StateError>;
            commit(commit: &ferry_state::PipelineCommit) -> Result<(), ferry_state::StateError>;
            sink_token(pipeline: &str, stage: &str) -> Result<Option<Vec<u8>>, ferry_state::StateError>;
            baseline_sink_token(pipeline: &str, stage: &str, token: &[u8]) -> Result<(), ferry_state::StateError>;
            add_dead_letters(letters: &[ferry_state::DeadLetter]) -> Result<(), ferry_state::StateError>;
            dead_letters(filter: &ferry_state::DeadLetterFilter) -> Result<Vec<ferry_state::DeadLetter>, ferry_state::StateError>;
            count_dead_letters(filter: &ferry_state::DeadLetterFilter) -> Result<u64, ferry_state::StateError>;
            purge_dead_letters(filter: &ferry_state::DeadLetterFilter, by: &str) -> Result<Vec<ferry_state::DeadLetter>, ferry_state::StateError>;
            dead_letter(id: i64) -> Result<Option<ferry_state::DeadLetter>, ferry_state::StateError>;
            start_run(pipeline: &str) -> Result<i64, ferry_state::StateError>;
            finish_run(run: i64, status: &ferry_state::RunStatus) -> Result<(), ferry_state::StateError>;
            run(run: i64) -> Result<Option<ferry_state::RunRecord>, ferry_state::StateError>;
            total_accounting(pipeline: &str) -> Result<ferry_state::Accounting, ferry_state::StateError>;
            start_scheduled_run(pipeline: &str, schedule: &str, due_at_us: i64, missed: u64, started_at_us: i64) -> Result<i64, ferry_state::StateError>;
            finish_scheduled_run(id: i64, finished_at_us: i64, outcome: &ferry_state::ScheduledOutcome, run: Option<i64>, accounting: &ferry_state::Accounting) -> Result<(), ferry_state::StateError>;
            scheduled_runs(pipeline: &str, limit: usize) -> Result<Vec<ferry_state::ScheduledRun>, ferry_state::StateError>;
            record_audit(event: &AuditEvent) -> Result<(), ferry_state::StateError>;
            audit_events(pipeline: Option<&str>) -> Result<Vec<AuditEvent>, ferry_state::StateError>;
            sync_states(pipeline: &str, keys: &[String]) -> Result<Vec<(String, String)>, ferry_state::StateError>;
            commit_sync(commit: &ferry_state::SyncCommit) -> Result<Vec<i64>, ferry_state::StateError>;
            conflicts(filter: &ferry_state::ConflictFilter) -> Result<Vec<ferry_state::Conflict>, ferry_state::StateError>;
            conflict(id: i64) -> Result<Option<ferry_state::Conflict>, ferry_state::StateError>;
            decide_conflict(id: i64, decision: &ferry_state::Decision, audit: &AuditEvent) -> Result<bool, ferry_state::StateError>;
        }

        fn record_audits(&self, events: &[AuditEvent]) -> Result<(), ferry_state::StateError> {
            let _wait = lock(&self.gate);
            self.inner.record_audits(events)
        }
    }

    #[test]
    fn a_full_queue_never_blocks_the_plugin_and_its_overflow_is_counted() {
        let slow = Arc::new(Slow {
            inner: SqliteState::open(std::path::Path::new(":memory:")).unwrap(),
            gate: Mutex::new(()),
        });
        let state: Arc<dyn StateStore> = slow.clone();
        let audit = StateAudit::new(state);
        let attempts = QUEUE_CAPACITY * 3;
        let held = lock(&slow.gate);
        let started = Instant::now();
        for i in 0..attempts {
            audit.denied("p", "m", "d", &denial(i));
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a denial never waits for the state store"
        );
        drop(held);
        drop(audit);
        let events = slow.inner.audit_events(Some("p")).unwrap();
        let single = events
            .iter()
            .filter(|e| !e.target.starts_with("suppressed "))
            .count();
        let counted: u64 = events
            .iter()
            .filter_map(|e| e.target.strip_prefix("suppressed "))
            .map(|n| n.parse::<u64>().unwrap())
            .sum();
        assert!(counted > 0, "the queue overflowed");
        assert!(single <= 2 * QUEUE_CAPACITY, "{single}");
        assert_eq!(single as u64 + counted, attempts as u64);
        assert_eq!(slow.audit_len(), events.len());
    }
}
