//! The [`StateStore`] trait: everything the runtime must remember across
//! restarts, behind one interface. It is the seam between the runtime and a
//! backend: the embedded SQLite backend ([`SqliteState`](crate::SqliteState))
//! implements it today, and the cluster backend to come will implement the
//! same trait.

use crate::{
    Accounting, AuditEvent, Conflict, ConflictFilter, DeadLetter, DeadLetterFilter, Decision,
    PipelineCommit, RunRecord, RunStatus, ScheduledOutcome, ScheduledRun, StateError, SyncCommit,
};

/// Durable state behind one interface, so backends can change: the seam a
/// backend implements. The pipeline, the sync engine and the CLI hold a
/// `StateStore` and never a backend, so a new backend (the cluster one to
/// come) implements this trait and nothing else changes.
///
/// What every implementation must keep:
/// - **Atomic commits.** [`commit`](Self::commit) and
///   [`commit_sync`](Self::commit_sync) land whole or not at all: a
///   checkpoint never moves without its accounting, its dead letters and
///   its sink tokens.
/// - **Balanced accounting.** A commit whose records do not balance, or
///   after which its run would not, is refused with
///   [`StateError::Accounting`] and lands nothing.
/// - **Durability.** A commit that returned survives a crash; one that did
///   not leaves no trace.
/// - **One decision per conflict.** [`decide_conflict`](Self::decide_conflict)
///   decides an open conflict once, however many callers race.
/// - **Coarse operations.** Each call is a batch (a commit, a page of
///   letters), so a remote backend pays one round trip per batch, never per
///   record.
pub trait StateStore: Send + Sync {
    /// The last committed checkpoint of a pipeline's source.
    fn checkpoint(&self, pipeline: &str, source: &str) -> Result<Option<Vec<u8>>, StateError>;

    /// The commit token last committed for an exactly-once sink stage.
    fn sink_token(&self, pipeline: &str, stage: &str) -> Result<Option<Vec<u8>>, StateError>;

    /// Stores the token of an exactly-once sink stage that has none yet
    /// (its state before the pipeline first wrote to it, so a crash before
    /// the first commit is undone too); does nothing if it has one.
    fn baseline_sink_token(
        &self,
        pipeline: &str,
        stage: &str,
        token: &[u8],
    ) -> Result<(), StateError>;

    /// Commits a source checkpoint together with the accounting and the
    /// dead letters of the records it closes (and, for a replay, the
    /// settling of the letters it replayed) and the commit tokens of the
    /// pipeline's exactly-once sinks, in one transaction: all of it lands or
    /// none does. Refuses ([`StateError::Accounting`]) accounting that does
    /// not balance, a run that does not exist, and an update after which the
    /// run's totals would not balance.
    fn commit(&self, commit: &PipelineCommit) -> Result<(), StateError>;

    /// Stores dead letters in one transaction of their own, apart from any
    /// checkpoint (for tools and tests: a pipeline's letters go in with
    /// its [`commit`](Self::commit)).
    fn add_dead_letters(&self, letters: &[DeadLetter]) -> Result<(), StateError>;

    /// Lists dead letters, oldest first.
    fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StateError>;

    /// How many dead letters `filter` selects (what
    /// [`dead_letters`](Self::dead_letters) would list).
    fn count_dead_letters(&self, filter: &DeadLetterFilter) -> Result<u64, StateError>;

    /// Deletes the dead letters `filter` selects and records the purge in
    /// the audit log (one event per pipeline, capability
    /// [`PURGE_CAPABILITY`](crate::PURGE_CAPABILITY), naming `by`, the filter, and the ids deleted),
    /// in one transaction. Returns what it deleted, oldest first; a purge
    /// that matches nothing changes nothing.
    fn purge_dead_letters(
        &self,
        filter: &DeadLetterFilter,
        by: &str,
    ) -> Result<Vec<DeadLetter>, StateError>;

    /// One dead letter by id.
    fn dead_letter(&self, id: i64) -> Result<Option<DeadLetter>, StateError>;

    /// Records the start of a run and returns its id.
    fn start_run(&self, pipeline: &str) -> Result<i64, StateError>;

    /// Records the end of a run.
    fn finish_run(&self, run: i64, status: &RunStatus) -> Result<(), StateError>;

    /// A run by id.
    fn run(&self, run: i64) -> Result<Option<RunRecord>, StateError>;

    /// Accounting summed over every run of a pipeline.
    fn total_accounting(&self, pipeline: &str) -> Result<Accounting, StateError>;

    /// Records the start of a scheduled run (outcome `running`) and returns
    /// its id. Runs of a pipeline never overlap, so an earlier one still
    /// `running` was cut short by ferry ending: it becomes `interrupted`, in
    /// the same transaction.
    fn start_scheduled_run(
        &self,
        pipeline: &str,
        schedule: &str,
        due_at_us: i64,
        missed: u64,
        started_at_us: i64,
    ) -> Result<i64, StateError>;

    /// Records the end of a scheduled run: its outcome, the run it made and
    /// what that committed.
    fn finish_scheduled_run(
        &self,
        id: i64,
        finished_at_us: i64,
        outcome: &ScheduledOutcome,
        run: Option<i64>,
        accounting: &Accounting,
    ) -> Result<(), StateError>;

    /// The latest `limit` scheduled runs of a pipeline, newest first.
    fn scheduled_runs(&self, pipeline: &str, limit: usize)
    -> Result<Vec<ScheduledRun>, StateError>;

    /// Records one audit event (a reload, say) in its own transaction.
    fn record_audit(&self, event: &AuditEvent) -> Result<(), StateError>;

    /// Records many audit events in one transaction: the batched run-time
    /// denials of plugins, written off the pipelines' commit path.
    fn record_audits(&self, events: &[AuditEvent]) -> Result<(), StateError>;

    /// The audit log, oldest first, for one pipeline or all.
    fn audit_events(&self, pipeline: Option<&str>) -> Result<Vec<AuditEvent>, StateError>;

    /// The stored two-way sync states of those `keys` that have one: (key,
    /// state JSON).
    fn sync_states(
        &self,
        pipeline: &str,
        keys: &[String],
    ) -> Result<Vec<(String, String)>, StateError>;

    /// Commits a batch of two-way sync work in one transaction; returns the
    /// ids of the conflicts it queued, in order.
    fn commit_sync(&self, commit: &SyncCommit) -> Result<Vec<i64>, StateError>;

    /// Lists conflicts, oldest first.
    fn conflicts(&self, filter: &ConflictFilter) -> Result<Vec<Conflict>, StateError>;

    /// One conflict by id.
    fn conflict(&self, id: i64) -> Result<Option<Conflict>, StateError>;

    /// Records a person's decision on an `open` conflict (`left`, `right`
    /// or `merged`, with the versions it was made on) with `audit`, in one
    /// transaction. `false`: the conflict was not open (decided already,
    /// or resolved).
    fn decide_conflict(
        &self,
        id: i64,
        decision: &Decision,
        audit: &AuditEvent,
    ) -> Result<bool, StateError>;
}
