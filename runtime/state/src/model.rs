//! The records the state store keeps and is given: the accounting of a
//! range of records, dead letters and the filter that selects them, runs
//! and scheduled runs, audit events, and the [`PipelineCommit`] that makes
//! one step of a pipeline durable.
//!
//! They belong to no backend: the SQLite backend and the cluster backend to
//! come store and return the same types through [`StateStore`](crate::StateStore).

use serde::{Deserialize, Serialize};

use crate::time::rfc3339;
use crate::{RunStatus, ScheduledOutcome};

/// Counts of records by final state. `read == written + dead_lettered +
/// filtered` holds for every committed range of a source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accounting {
    /// Records the source produced.
    pub read: u64,
    /// Records delivered to every sink their route named.
    pub written: u64,
    /// Records sent to the dead-letter store.
    pub dead_lettered: u64,
    /// Records dropped on purpose (a mapper dropped them, or no route matched).
    pub filtered: u64,
}

impl Accounting {
    /// Adds another set of counts to this one.
    pub fn add(&mut self, other: &Accounting) {
        self.read += other.read;
        self.written += other.written;
        self.dead_lettered += other.dead_lettered;
        self.filtered += other.filtered;
    }

    /// Whether every record read is accounted for.
    pub fn balances(&self) -> bool {
        self.read == self.written + self.dead_lettered + self.filtered
    }
}

impl std::fmt::Display for Accounting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "accounting: read={} written={} dead_lettered={} filtered={}",
            self.read, self.written, self.dead_lettered, self.filtered
        )
    }
}

/// A record that could not be delivered, with why and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Its id in the store (0 before it is stored; in a replay's
    /// [`PipelineCommit`], the id of the replayed letter it replaces).
    pub id: i64,
    /// The pipeline it came through.
    pub pipeline: String,
    /// The stage (plugin name in the manifest) that refused it.
    pub stage: String,
    /// The sha256 of that stage's component.
    pub plugin_digest: String,
    /// A short category: `invalid`, `rejected`, `trap`, `deadline`, `memory`,
    /// `fatal`, `malformed-output`.
    pub reason: String,
    /// The full explanation for the operator.
    pub detail: String,
    /// The record's key.
    pub key: String,
    /// The record as it entered the stage, as a JSON object.
    pub record: serde_json::Value,
    /// How many times delivery was tried.
    pub attempts: u32,
    /// When it was stored, in microseconds since the Unix epoch.
    pub created_at_us: i64,
}

/// Something a plugin was refused at run time, for security review; or an
/// operator's purge of dead letters (capability [`PURGE_CAPABILITY`], no
/// stage and no plugin digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Its id in the store (0 before it is stored).
    pub id: i64,
    /// When, in microseconds since the Unix epoch.
    pub at_us: i64,
    /// The pipeline.
    pub pipeline: String,
    /// The stage whose plugin asked.
    pub stage: String,
    /// The sha256 of that plugin's component.
    pub plugin_digest: String,
    /// What kind of access: `network`, `files`, ...
    pub capability: String,
    /// What was asked for, such as `tcp connect 169.254.169.254:80`.
    pub target: String,
    /// Why it was refused.
    pub detail: String,
}

/// The capability of the audit event a purge of dead letters leaves.
pub const PURGE_CAPABILITY: &str = "dlq-purge";

/// The audit log's capability for a `ferry dlq replay`.
pub const REPLAY_CAPABILITY: &str = "dlq-replay";

/// Which dead letters to list, count or purge.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterFilter {
    /// Only this pipeline.
    pub pipeline: Option<String>,
    /// Only this stage.
    pub stage: Option<String>,
    /// Only this reason category.
    pub reason: Option<String>,
    /// Only those stored at or after this time (microseconds since the Unix
    /// epoch).
    pub since_us: Option<i64>,
    /// Only those stored before this time (microseconds since the Unix
    /// epoch).
    pub until_us: Option<i64>,
    /// At most this many, the oldest ones.
    pub limit: Option<usize>,
}

impl std::fmt::Display for DeadLetterFilter {
    /// The filter as an operator would read it: `stage=rules
    /// until=2026-11-20T00:00:00Z`, or `every dead letter`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        for (name, value) in [
            ("pipeline", &self.pipeline),
            ("stage", &self.stage),
            ("reason", &self.reason),
        ] {
            if let Some(v) = value {
                parts.push(format!("{name}={v}"));
            }
        }
        if let Some(t) = self.since_us {
            parts.push(format!("since={}", rfc3339(t)));
        }
        if let Some(t) = self.until_us {
            parts.push(format!("until={}", rfc3339(t)));
        }
        if let Some(n) = self.limit {
            parts.push(format!("limit={n}"));
        }
        if parts.is_empty() {
            f.write_str("every dead letter")
        } else {
            f.write_str(&parts.join(" "))
        }
    }
}

/// A finished or running run of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Run id.
    pub id: i64,
    /// Pipeline name.
    pub pipeline: String,
    /// Start, microseconds since the Unix epoch.
    pub started_at_us: i64,
    /// End, if finished.
    pub finished_at_us: Option<i64>,
    /// Counts for this run.
    pub accounting: Accounting,
    /// Running, finished, or failed and why.
    pub status: RunStatus,
}

/// One run of a scheduled pipeline (`mode = "schedule"`): when it was due,
/// when it ran, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledRun {
    /// Its id (in `schedule_runs`, not a [`RunRecord`]'s).
    pub id: i64,
    /// Pipeline name.
    pub pipeline: String,
    /// The schedule as the manifest wrote it when the run started.
    pub schedule: String,
    /// The tick it ran for, microseconds since the Unix epoch: the latest
    /// tick that had passed when it started (for a pipeline's first run, its
    /// start).
    pub due_at_us: i64,
    /// Ticks that passed without a run of their own before this one (a run
    /// that lasted past them, or ferry not running), all served by it.
    pub missed: u64,
    /// Start, microseconds since the Unix epoch.
    pub started_at_us: i64,
    /// End, if it ended.
    pub finished_at_us: Option<i64>,
    /// The [`RunRecord`] it made, once it ended (none if it failed before
    /// reading anything, or ferry stopped during it).
    pub run_id: Option<i64>,
    /// What it committed.
    pub accounting: Accounting,
    /// Running, finished, stopped (ferry was stopped during it: it
    /// committed what it had read), failed and why, or interrupted (ferry
    /// ended without recording its end).
    pub outcome: ScheduledOutcome,
}

/// What one commit of a pipeline makes durable, in one transaction: the
/// checkpoint just past the records it closes, their accounting, and their
/// dead letters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipelineCommit {
    /// The run these records count towards.
    pub run: i64,
    /// The pipeline.
    pub pipeline: String,
    /// The source whose checkpoint moves.
    pub source: String,
    /// The checkpoint just past the closed records.
    pub checkpoint: Vec<u8>,
    /// The accounting of the closed records.
    pub closed: Accounting,
    /// The dead letters of the closed records. A letter whose `id` is not 0
    /// replaces the stored letter of this pipeline with that id (a replayed
    /// record that failed again): the id stays, the stage, plugin digest,
    /// reason, detail, key, record and time become the new letter's, and
    /// its attempts are added to the stored ones. Only a letter of
    /// [`replayed`](Self::replayed) is replaced; a letter naming another
    /// id, an id already replaced in this commit, or one no longer stored,
    /// is stored as a new letter.
    pub dead_letters: Vec<DeadLetter>,
    /// A replay's run: the letters it replayed, settled by this commit.
    pub replayed: Option<Replayed>,
    /// The commit tokens of the pipeline's exactly-once sinks (stage,
    /// token): each sink's state after the last of the closed records.
    pub sink_tokens: Vec<(String, Vec<u8>)>,
}

impl PipelineCommit {
    /// A commit of `checkpoint` and the accounting `closed`, with no dead
    /// letters.
    pub fn new(
        run: i64,
        pipeline: &str,
        source: &str,
        checkpoint: &[u8],
        closed: Accounting,
    ) -> Self {
        PipelineCommit {
            run,
            pipeline: pipeline.to_string(),
            source: source.to_string(),
            checkpoint: checkpoint.to_vec(),
            closed,
            dead_letters: Vec::new(),
            replayed: None,
            sink_tokens: Vec::new(),
        }
    }
}

/// The dead letters a `ferry dlq replay` sent through its run, settled in
/// the commit of the records they became.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replayed {
    /// Their ids. Each is deleted (its record was delivered or filtered)
    /// unless a letter of the commit replaces it (its record failed again).
    pub ids: Vec<i64>,
    /// The audit event recording the replay (capability
    /// [`REPLAY_CAPABILITY`], target the ids), written in the same
    /// transaction.
    pub detail: String,
}

/// The longest dead-letter detail stored, in bytes. A detail is often a
/// plugin's own message (a rejection, a violation, an error); it explains
/// the record, and past this it is cut on a character boundary with a
/// marker saying how many bytes were cut.
pub const MAX_DETAIL_BYTES: usize = 8192;
