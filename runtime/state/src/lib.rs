//! Durable state of ferry pipelines: source checkpoints, the dead-letter
//! store and the record accounting.
//!
//! It also keeps the audit log: every access a plugin was refused at run
//! time, every purge of dead letters an operator made, every two-way sync
//! conflict and how it was settled; and two-way sync's per-key state and
//! conflict queue (see the `sync` module).
//!
//! Everything the runtime must remember across restarts goes through the
//! [`StateStore`] trait. The default backend, [`SqliteState`], is an embedded
//! SQLite database, so a single-node ferry needs no server. A cluster backend
//! (NATS JetStream) will implement the same trait later.
//!
//! Why one trait with coarse, batch-sized operations: the pipeline commits a
//! checkpoint together with the accounting and the dead letters of the
//! records it closes in one transaction ([`PipelineCommit`]), so a crash
//! leaves either the old or the new state and an fdatasync is paid per
//! commit, never per record.
//!
//! # One dead letter per refused record
//!
//! A record refused by a stage is stored as a dead letter only in the
//! commit that moves the checkpoint past it. A crash before that commit
//! leaves neither the letter nor the checkpoint, so the next run reads the
//! record again and refuses it once more: one letter, never two. A
//! `ferry dlq replay` settles the letters it replayed in the commit of its
//! run: a letter whose record was delivered (or filtered) is deleted, and
//! one whose record failed again is replaced in place (same id, the new
//! stage, reason and detail, its attempts added up) — so a replay that
//! fails or is killed before its commit leaves the letters as they were.
//!
//! # Crash safety of the SQLite file
//!
//! - **Durable commits.** The database runs in WAL mode with
//!   `synchronous = FULL`: a transaction is in the log, fsynced, before its
//!   commit returns, so a commit that returned survives a crash or a power
//!   loss, and one that did not leaves no trace (a torn log tail fails its
//!   checksums and is ignored). Both settings are read back at open; on a
//!   file system where WAL cannot work SQLite keeps its rollback journal,
//!   which is as safe with `synchronous = FULL`.
//! - **Checked at open.** `PRAGMA quick_check` (every page and b-tree of the
//!   file, without the slower cross-check of indexes against tables) and a
//!   check of the schema: ferry's application id, a schema version this
//!   ferry knows, and every table and column it uses. A damaged file is
//!   refused with [`StateError::Corrupt`], whose message names the file and
//!   says what to do: restore a backup, or move it aside to start over,
//!   which reads every source again from its beginning (records delivered
//!   twice, none lost). A damaged record *inside* an intact page is not
//!   seen at open: it fails when it is read, with [`StateError::Decode`].
//! - **Checked at every commit.** The records a checkpoint closes must
//!   balance (`read = written + dead_lettered + filtered`; none is still in
//!   flight once its batch is closed), the run they belong to must exist,
//!   and the run's totals must balance after the update; otherwise the
//!   commit is refused with [`StateError::Accounting`] and nothing of it
//!   lands.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

mod sync;
pub use sync::{
    CONFLICT_CAPABILITY, Conflict, ConflictFilter, Decision, MAX_DETAIL_BYTES, NewConflict, Reopen,
    SyncCommit,
};

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The database could not be opened or created.
    #[error("cannot open the state database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The folder for the database could not be created.
    #[error("cannot create the state folder {path}: {source}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A query failed.
    #[error("state database {path}: {what}: {source}")]
    Query {
        /// The database file.
        path: PathBuf,
        /// What ferry was doing.
        what: &'static str,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The database file is damaged.
    #[error(
        "state database {path} is damaged ({detail}); ferry will not run on it. Restore it from a backup, or move it aside to start over: `mv {path} {path}.damaged`, with its -wal and -shm files if there are any. Starting over reads every source again from its beginning: records may be delivered twice, none is lost; the old dead letters and runs stay in the moved file"
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What the integrity or schema check said.
        detail: String,
    },
    /// The file is an SQLite database, but not one of ferry's.
    #[error(
        "{path} is not a ferry state database ({detail}); ferry leaves it as it is: point the pipeline's `state` at another file"
    )]
    NotFerry {
        /// The database file.
        path: PathBuf,
        /// Why not.
        detail: String,
    },
    /// The database was written by a newer ferry.
    #[error(
        "state database {path} was written by a newer ferry (schema version {found}; this ferry knows up to {known}); run it with that ferry, or restore a backup this one wrote"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest version this ferry knows.
        known: i64,
    },
    /// SQLite would not make commits durable.
    #[error("state database {path} cannot be made crash-safe: {detail}")]
    Durability {
        /// The database file.
        path: PathBuf,
        /// What SQLite kept.
        detail: String,
    },
    /// A commit would leave records unaccounted for; nothing of it landed.
    #[error(
        "state database {path}: the accounting does not balance ({detail}); the checkpoint was not committed, so these records will be read again. This is a bug in ferry: please report it"
    )]
    Accounting {
        /// The database file.
        path: PathBuf,
        /// What does not add up.
        detail: String,
    },
    /// A stored value could not be decoded.
    #[error("state database {path}: {what}: {source}")]
    Decode {
        /// The database file.
        path: PathBuf,
        /// Which value.
        what: &'static str,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
}

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
    /// `running`, `finished` or `failed: <why>`.
    pub status: String,
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
    /// `running`, `finished`, `stopped` (ferry was stopped during it: it
    /// committed what it had read), `failed: <why>`, or `interrupted` (ferry
    /// ended without recording its end).
    pub outcome: String,
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

/// Durable state behind one interface, so backends can change.
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
    /// [`PURGE_CAPABILITY`], naming `by`, the filter, and the ids deleted),
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
    fn finish_run(&self, run: i64, status: &str) -> Result<(), StateError>;

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
        outcome: &str,
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

/// The embedded SQLite backend.
pub struct SqliteState {
    path: PathBuf,
    conn: Mutex<Connection>,
}

/// `PRAGMA application_id` of a ferry state database ("FRRY").
pub const APPLICATION_ID: i64 = 0x4652_5259;

/// `PRAGMA user_version` of the tables below. Files made before versions
/// were stamped have 0 and the tables of version 1. A change to the tables
/// bumps this number and adds a migration to `SqliteState::check_schema`.
///
/// 1. checkpoints, runs, dead letters, the audit log.
/// 2. `schedule_runs`, the runs of scheduled pipelines. A file of version 0
///    or 1 gets the new table (and its index) when it is opened.
/// 3. `sync_keys` and `conflicts`, for two-way sync. Older files get them
///    when opened.
/// 4. `conflicts.decided_left`, `decided_right` (the versions a decision
///    was made on) and `reopened` (why a conflict whose decision went stale
///    waits again). A version 3 file gets the columns (`ADDED_COLUMNS`)
///    when opened; its decided conflicts keep NULL there, and the sync
///    checks them against `left_version` and `right_version`, which it
///    never changes once a conflict is decided.
/// 5. `sink_tokens`: the commit token of each exactly-once sink stage,
///    written in the transaction of the source checkpoint. A version 4 file
///    gets the table when opened (empty: its sinks start at-least-once
///    until their first commit).
pub const SCHEMA_VERSION: i64 = 5;

/// Columns added to an existing table by a schema version: (table, column,
/// type). `check_schema` adds those a file lacks when it opens a file of an
/// older version.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("conflicts", "decided_left", "TEXT"),
    ("conflicts", "decided_right", "TEXT"),
    ("conflicts", "reopened", "TEXT"),
];

/// Every table ferry uses and the columns it reads and writes.
const TABLES: &[(&str, &[&str])] = &[
    (
        "checkpoints",
        &["pipeline", "source", "checkpoint", "updated_at_us"],
    ),
    (
        "runs",
        &[
            "id",
            "pipeline",
            "started_at_us",
            "finished_at_us",
            "read",
            "written",
            "dead_lettered",
            "filtered",
            "status",
        ],
    ),
    (
        "dead_letters",
        &[
            "id",
            "pipeline",
            "stage",
            "plugin_digest",
            "reason",
            "detail",
            "key",
            "record",
            "attempts",
            "created_at_us",
        ],
    ),
    (
        "audit_events",
        &[
            "id",
            "at_us",
            "pipeline",
            "stage",
            "plugin_digest",
            "capability",
            "target",
            "detail",
        ],
    ),
    (
        "schedule_runs",
        &[
            "id",
            "pipeline",
            "schedule",
            "due_at_us",
            "missed",
            "started_at_us",
            "finished_at_us",
            "run_id",
            "read",
            "written",
            "dead_lettered",
            "filtered",
            "outcome",
        ],
    ),
    ("sync_keys", &["pipeline", "key", "state", "updated_at_us"]),
    (
        "sink_tokens",
        &["pipeline", "stage", "token", "updated_at_us"],
    ),
    (
        "conflicts",
        &[
            "id",
            "pipeline",
            "key",
            "left_version",
            "right_version",
            "ancestor",
            "strategy",
            "reason",
            "detected_at_us",
            "status",
            "decision",
            "merged",
            "decided_by",
            "decided_at_us",
            "resolved_at_us",
            "decided_left",
            "decided_right",
            "reopened",
        ],
    ),
];

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS checkpoints (
    pipeline TEXT NOT NULL,
    source TEXT NOT NULL,
    checkpoint BLOB NOT NULL,
    updated_at_us INTEGER NOT NULL,
    PRIMARY KEY (pipeline, source)
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline TEXT NOT NULL,
    started_at_us INTEGER NOT NULL,
    finished_at_us INTEGER,
    read INTEGER NOT NULL DEFAULT 0,
    written INTEGER NOT NULL DEFAULT 0,
    dead_lettered INTEGER NOT NULL DEFAULT 0,
    filtered INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline TEXT NOT NULL,
    stage TEXT NOT NULL,
    plugin_digest TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    key TEXT NOT NULL,
    record TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    created_at_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_by_pipeline ON dead_letters (pipeline, stage, reason);
CREATE TABLE IF NOT EXISTS audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us INTEGER NOT NULL,
    pipeline TEXT NOT NULL,
    stage TEXT NOT NULL,
    plugin_digest TEXT NOT NULL,
    capability TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS schedule_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline TEXT NOT NULL,
    schedule TEXT NOT NULL,
    due_at_us INTEGER NOT NULL,
    missed INTEGER NOT NULL DEFAULT 0,
    started_at_us INTEGER NOT NULL,
    finished_at_us INTEGER,
    run_id INTEGER,
    read INTEGER NOT NULL DEFAULT 0,
    written INTEGER NOT NULL DEFAULT 0,
    dead_lettered INTEGER NOT NULL DEFAULT 0,
    filtered INTEGER NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS schedule_runs_by_pipeline ON schedule_runs (pipeline, id);
CREATE TABLE IF NOT EXISTS sync_keys (
    pipeline TEXT NOT NULL,
    key TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at_us INTEGER NOT NULL,
    PRIMARY KEY (pipeline, key)
);
CREATE TABLE IF NOT EXISTS conflicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline TEXT NOT NULL,
    key TEXT NOT NULL,
    left_version TEXT NOT NULL,
    right_version TEXT NOT NULL,
    ancestor TEXT NOT NULL,
    strategy TEXT NOT NULL,
    reason TEXT NOT NULL,
    detected_at_us INTEGER NOT NULL,
    status TEXT NOT NULL,
    decision TEXT,
    merged TEXT,
    decided_by TEXT,
    decided_at_us INTEGER,
    resolved_at_us INTEGER,
    decided_left TEXT,
    decided_right TEXT,
    reopened TEXT
);
CREATE INDEX IF NOT EXISTS conflicts_by_key ON conflicts (pipeline, key, status);
CREATE TABLE IF NOT EXISTS sink_tokens (
    pipeline TEXT NOT NULL,
    stage TEXT NOT NULL,
    token BLOB NOT NULL,
    updated_at_us INTEGER NOT NULL,
    PRIMARY KEY (pipeline, stage)
);
";

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl SqliteState {
    /// Opens (or creates) the database at `path`, creating its folder; makes
    /// its commits durable and checks its pages and its schema (see the
    /// crate docs). A damaged file is [`StateError::Corrupt`].
    pub fn open(path: &Path) -> Result<Self, StateError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StateError::Folder {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(|source| StateError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let state = SqliteState {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        };
        state.init()?;
        Ok(state)
    }

    fn q(&self, what: &'static str) -> impl FnOnce(rusqlite::Error) -> StateError + '_ {
        move |source| match source {
            rusqlite::Error::SqliteFailure(e, ref msg)
                if e.code == rusqlite::ErrorCode::DatabaseCorrupt
                    || e.code == rusqlite::ErrorCode::NotADatabase =>
            {
                StateError::Corrupt {
                    path: self.path.clone(),
                    detail: msg.clone().unwrap_or_else(|| e.to_string()),
                }
            }
            source => StateError::Query {
                path: self.path.clone(),
                what,
                source,
            },
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent
        // (transactions roll back on drop), so a poisoned lock is usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn init(&self) -> Result<(), StateError> {
        let mut conn = self.lock();
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(self.q("setting busy timeout"))?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(self.q("setting WAL mode"))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(self.q("setting synchronous mode"))?;
        let synchronous: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .map_err(self.q("reading synchronous mode"))?;
        // `memory` is an in-memory database's; the rollback journals are what
        // SQLite keeps where WAL cannot work. All are transactional.
        let journaled = matches!(
            mode.to_ascii_lowercase().as_str(),
            "wal" | "delete" | "truncate" | "persist" | "memory"
        );
        // 2 is FULL, 3 EXTRA.
        if !journaled || synchronous < 2 {
            return Err(StateError::Durability {
                path: self.path.clone(),
                detail: format!("journal_mode = {mode}, synchronous = {synchronous}"),
            });
        }
        self.check_integrity(&conn)?;
        self.check_schema(&mut conn)
    }

    /// `PRAGMA quick_check`: every page and b-tree of the file.
    fn check_integrity(&self, conn: &Connection) -> Result<(), StateError> {
        let what = "checking integrity";
        let mut stmt = conn
            .prepare("PRAGMA quick_check(5)")
            .map_err(self.q(what))?;
        let problems = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(self.q(what))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.q(what))?;
        if problems.len() == 1 && problems.first().is_some_and(|p| p == "ok") {
            return Ok(());
        }
        Err(StateError::Corrupt {
            path: self.path.clone(),
            detail: problems.join("; ").replace('\n', " "),
        })
    }

    /// Creates the tables in a new file, stamps a file from before schema
    /// versions, and checks that the file holds ferry's tables as this ferry
    /// knows them.
    fn check_schema(&self, conn: &mut Connection) -> Result<(), StateError> {
        let what = "checking the schema";
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.q(what))?;
        let app: i64 = tx
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .map_err(self.q(what))?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(self.q(what))?;
        if app != 0 && app != APPLICATION_ID {
            return Err(StateError::NotFerry {
                path: self.path.clone(),
                detail: format!("its application id is {app:#x}, ferry's is {APPLICATION_ID:#x}"),
            });
        }
        if version > SCHEMA_VERSION {
            return Err(StateError::TooNew {
                path: self.path.clone(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        if version < SCHEMA_VERSION {
            // A new file, or one from before versions were stamped: it may
            // hold ferry's tables and nothing else.
            let unknown: Vec<String> = {
                let mut stmt = tx
                    .prepare(
                        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
                    )
                    .map_err(self.q(what))?;
                stmt.query_map([], |r| r.get::<_, String>(0))
                    .map_err(self.q(what))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(self.q(what))?
                    .into_iter()
                    .filter(|t| !TABLES.iter().any(|(name, _)| name == t))
                    .collect()
            };
            if !unknown.is_empty() {
                return Err(StateError::NotFerry {
                    path: self.path.clone(),
                    detail: format!("it holds tables ferry does not use: {}", unknown.join(", ")),
                });
            }
            tx.execute_batch(SCHEMA)
                .map_err(self.q("creating tables"))?;
            // Tables of an older version that `CREATE TABLE IF NOT EXISTS`
            // left as they were: the columns later versions added.
            for (table, column, kind) in ADDED_COLUMNS {
                let has: bool = tx
                    .query_row(
                        "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
                        params![table, column],
                        |r| r.get(0),
                    )
                    .map_err(self.q(what))?;
                if !has {
                    tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))
                        .map_err(self.q("adding a column of a newer schema"))?;
                }
            }
            tx.pragma_update(None, "application_id", APPLICATION_ID)
                .map_err(self.q("stamping the schema version"))?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(self.q("stamping the schema version"))?;
        }
        for (table, columns) in TABLES {
            let have: Vec<String> = {
                let mut stmt = tx
                    .prepare("SELECT name FROM pragma_table_info(?1)")
                    .map_err(self.q(what))?;
                stmt.query_map(params![table], |r| r.get::<_, String>(0))
                    .map_err(self.q(what))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(self.q(what))?
            };
            let missing: Vec<&str> = columns
                .iter()
                .filter(|c| !have.iter().any(|h| h == *c))
                .copied()
                .collect();
            if missing.is_empty() {
                continue;
            }
            let detail = if have.is_empty() {
                format!("its table `{table}` is missing")
            } else {
                format!("its table `{table}` lacks {}", missing.join(", "))
            };
            return Err(StateError::Corrupt {
                path: self.path.clone(),
                detail,
            });
        }
        tx.commit().map_err(self.q(what))
    }

    /// A commit's dead letters, and a replay's settling of the letters it
    /// replayed (see [`PipelineCommit`]), inside the commit's transaction.
    fn store_letters(
        &self,
        tx: &rusqlite::Transaction<'_>,
        pipeline: &str,
        letters: &[DeadLetter],
        replayed: Option<&Replayed>,
    ) -> Result<(), StateError> {
        let now = now_us();
        let replayable: std::collections::HashSet<i64> = replayed
            .map(|r| r.ids.iter().copied().collect())
            .unwrap_or_default();
        let mut replaced = std::collections::HashSet::new();
        for l in letters {
            if replayable.contains(&l.id) && replaced.insert(l.id) {
                let updated = tx
                    .prepare_cached(
                        "UPDATE dead_letters SET stage = ?3, plugin_digest = ?4, reason = ?5, detail = ?6,
                           key = ?7, record = ?8, attempts = attempts + ?9, created_at_us = ?10
                         WHERE id = ?1 AND pipeline = ?2",
                    )
                    .and_then(|mut update| {
                        update.execute(params![
                            l.id,
                            pipeline,
                            l.stage,
                            l.plugin_digest,
                            l.reason,
                            sync::cap_detail(&l.detail),
                            l.key,
                            l.record.to_string(),
                            l.attempts,
                            if l.created_at_us == 0 { now } else { l.created_at_us }
                        ])
                    })
                    .map_err(self.q("replacing a replayed dead letter"))?;
                if updated == 1 {
                    continue;
                }
            }
            sync::insert_dead_letter(tx, l, now).map_err(self.q("writing a dead letter"))?;
        }
        let Some(replayed) = replayed else {
            return Ok(());
        };
        {
            let mut delete = tx
                .prepare_cached("DELETE FROM dead_letters WHERE id = ?1 AND pipeline = ?2")
                .map_err(self.q("removing replayed dead letters"))?;
            for id in replayed.ids.iter().filter(|id| !replaced.contains(*id)) {
                delete
                    .execute(params![id, pipeline])
                    .map_err(self.q("removing replayed dead letters"))?;
            }
        }
        tx.execute(
            "INSERT INTO audit_events (at_us, pipeline, stage, plugin_digest, capability, target, detail)
             VALUES (?1, ?2, '', '', ?3, ?4, ?5)",
            params![now, pipeline, REPLAY_CAPABILITY, id_ranges(&replayed.ids), replayed.detail],
        )
        .map_err(self.q("recording a replay in the audit log"))?;
        Ok(())
    }

    fn accounting_error(&self, detail: String) -> StateError {
        StateError::Accounting {
            path: self.path.clone(),
            detail,
        }
    }

    fn row_to_letter(&self, r: &rusqlite::Row<'_>) -> rusqlite::Result<(DeadLetter, String)> {
        Ok((
            DeadLetter {
                id: r.get(0)?,
                pipeline: r.get(1)?,
                stage: r.get(2)?,
                plugin_digest: r.get(3)?,
                reason: r.get(4)?,
                detail: r.get(5)?,
                key: r.get(6)?,
                record: serde_json::Value::Null,
                attempts: r.get(8)?,
                created_at_us: r.get(9)?,
            },
            r.get(7)?,
        ))
    }

    fn decode(&self, (mut letter, text): (DeadLetter, String)) -> Result<DeadLetter, StateError> {
        letter.record = serde_json::from_str(&text).map_err(|source| StateError::Decode {
            path: self.path.clone(),
            what: "a dead letter's record",
            source,
        })?;
        Ok(letter)
    }

    /// The dead letters `filter` selects, oldest first. `lenient` keeps a
    /// record that is not JSON as a string instead of failing (a purge must
    /// be able to delete it).
    fn select_letters(
        &self,
        conn: &Connection,
        filter: &DeadLetterFilter,
        lenient: bool,
    ) -> Result<Vec<DeadLetter>, StateError> {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {LETTER_COLUMNS} FROM dead_letters WHERE {LETTER_FILTER} ORDER BY id LIMIT ?6"
            ))
            .map_err(self.q("listing dead letters"))?;
        let rows = stmt
            .query_map(filter_params(filter), |r| self.row_to_letter(r))
            .map_err(self.q("listing dead letters"))?;
        let mut out = Vec::new();
        for row in rows {
            let row = row.map_err(self.q("reading a dead letter"))?;
            out.push(if lenient {
                let (mut letter, text) = row;
                letter.record =
                    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
                letter
            } else {
                self.decode(row)?
            });
        }
        Ok(out)
    }
}

/// The `WHERE` clause of a [`DeadLetterFilter`]; `?6` is its limit.
const LETTER_FILTER: &str =
    "(?1 IS NULL OR pipeline = ?1) AND (?2 IS NULL OR stage = ?2) AND (?3 IS NULL OR reason = ?3)
     AND (?4 IS NULL OR created_at_us >= ?4) AND (?5 IS NULL OR created_at_us < ?5)";

/// The parameters of [`LETTER_FILTER`]: pipeline, stage, reason, since,
/// until, and the limit (-1 for none).
type FilterParams<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<i64>,
    Option<i64>,
    i64,
);

fn filter_params(filter: &DeadLetterFilter) -> FilterParams<'_> {
    let limit = filter
        .limit
        .map(|l| i64::try_from(l).unwrap_or(i64::MAX))
        .unwrap_or(-1);
    (
        filter.pipeline.as_deref(),
        filter.stage.as_deref(),
        filter.reason.as_deref(),
        filter.since_us,
        filter.until_us,
        limit,
    )
}

/// Ids as ranges (`3-5, 9`), at most 20 of them.
fn id_ranges(ids: &[i64]) -> String {
    let mut ranges: Vec<(i64, i64)> = Vec::new();
    for &id in ids {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == id => *end = id,
            _ => ranges.push((id, id)),
        }
    }
    let mut out = ranges
        .iter()
        .take(20)
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    if ranges.len() > 20 {
        out.push_str(&format!(" and {} more ranges", ranges.len() - 20));
    }
    out
}

/// Microseconds since the Unix epoch as RFC 3339 UTC.
fn rfc3339(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let micros = us.rem_euclid(1_000_000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (hh, mm, ss) = (sod / 3600, (sod % 3600) / 60, sod % 60);
    if micros == 0 {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{micros:06}Z")
    }
}

const LETTER_COLUMNS: &str =
    "id, pipeline, stage, plugin_digest, reason, detail, key, record, attempts, created_at_us";

impl StateStore for SqliteState {
    fn checkpoint(&self, pipeline: &str, source: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.lock()
            .query_row(
                "SELECT checkpoint FROM checkpoints WHERE pipeline = ?1 AND source = ?2",
                params![pipeline, source],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.q("reading a checkpoint"))
    }

    fn sink_token(&self, pipeline: &str, stage: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.lock()
            .query_row(
                "SELECT token FROM sink_tokens WHERE pipeline = ?1 AND stage = ?2",
                params![pipeline, stage],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.q("reading a sink's commit token"))
    }

    fn baseline_sink_token(
        &self,
        pipeline: &str,
        stage: &str,
        token: &[u8],
    ) -> Result<(), StateError> {
        self.lock()
            .execute(
                "INSERT INTO sink_tokens (pipeline, stage, token, updated_at_us) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (pipeline, stage) DO NOTHING",
                params![pipeline, stage, token, now_us()],
            )
            .map(|_| ())
            .map_err(self.q("writing a sink's first commit token"))
    }

    fn commit(&self, commit: &PipelineCommit) -> Result<(), StateError> {
        let PipelineCommit {
            run,
            pipeline,
            source,
            checkpoint,
            closed,
            dead_letters,
            replayed,
            sink_tokens,
        } = commit;
        let run = *run;
        if !closed.balances() {
            return Err(self.accounting_error(format!(
                "the {} records a checkpoint of `{pipeline}`/`{source}` closes are not all accounted for: written={} dead_lettered={} filtered={}",
                closed.read, closed.written, closed.dead_lettered, closed.filtered
            )));
        }
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(self.q("starting a commit"))?;
        tx.execute(
            "INSERT INTO checkpoints (pipeline, source, checkpoint, updated_at_us) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (pipeline, source) DO UPDATE SET checkpoint = excluded.checkpoint, updated_at_us = excluded.updated_at_us",
            params![pipeline, source, checkpoint, now_us()],
        )
        .map_err(self.q("writing a checkpoint"))?;
        for (stage, token) in sink_tokens {
            tx.execute(
                "INSERT INTO sink_tokens (pipeline, stage, token, updated_at_us) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (pipeline, stage) DO UPDATE SET token = excluded.token, updated_at_us = excluded.updated_at_us",
                params![pipeline, stage, token, now_us()],
            )
            .map_err(self.q("writing a sink's commit token"))?;
        }
        let updated = tx
            .execute(
                "UPDATE runs SET read = read + ?2, written = written + ?3, dead_lettered = dead_lettered + ?4, filtered = filtered + ?5 WHERE id = ?1",
                params![
                    run,
                    closed.read as i64,
                    closed.written as i64,
                    closed.dead_lettered as i64,
                    closed.filtered as i64
                ],
            )
            .map_err(self.q("updating the accounting"))?;
        // Returning early drops `tx`, which rolls the checkpoint back.
        if updated != 1 {
            return Err(self.accounting_error(format!(
                "run {run} of `{pipeline}` is not in the runs table, so the accounting of {} records would be lost",
                closed.read
            )));
        }
        let (read, written, dead_lettered, filtered): (i64, i64, i64, i64) = tx
            .query_row(
                "SELECT read, written, dead_lettered, filtered FROM runs WHERE id = ?1",
                params![run],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .map_err(self.q("reading the accounting"))?;
        let accounted = written
            .checked_add(dead_lettered)
            .and_then(|n| n.checked_add(filtered));
        if written < 0 || dead_lettered < 0 || filtered < 0 || accounted != Some(read) {
            return Err(self.accounting_error(format!(
                "run {run} of `{pipeline}` would total read={read} written={written} dead_lettered={dead_lettered} filtered={filtered}"
            )));
        }
        self.store_letters(&tx, pipeline, dead_letters, replayed.as_ref())?;
        tx.commit().map_err(self.q("committing a checkpoint"))
    }

    fn add_dead_letters(&self, letters: &[DeadLetter]) -> Result<(), StateError> {
        if letters.is_empty() {
            return Ok(());
        }
        let mut conn = self.lock();
        let tx = conn
            .transaction()
            .map_err(self.q("starting a dead-letter write"))?;
        {
            let now = now_us();
            for l in letters {
                sync::insert_dead_letter(&tx, l, now).map_err(self.q("writing a dead letter"))?;
            }
        }
        tx.commit().map_err(self.q("committing dead letters"))
    }

    fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StateError> {
        let conn = self.lock();
        self.select_letters(&conn, filter, false)
    }

    fn count_dead_letters(&self, filter: &DeadLetterFilter) -> Result<u64, StateError> {
        let n: i64 = self
            .lock()
            .query_row(
                &format!(
                    "SELECT COUNT(*) FROM (SELECT id FROM dead_letters WHERE {LETTER_FILTER} ORDER BY id LIMIT ?6)"
                ),
                filter_params(filter),
                |r| r.get(0),
            )
            .map_err(self.q("counting dead letters"))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn purge_dead_letters(
        &self,
        filter: &DeadLetterFilter,
        by: &str,
    ) -> Result<Vec<DeadLetter>, StateError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.q("starting a purge"))?;
        let letters = self.select_letters(&tx, filter, true)?;
        if letters.is_empty() {
            return Ok(letters);
        }
        {
            let mut delete = tx
                .prepare("DELETE FROM dead_letters WHERE id = ?1")
                .map_err(self.q("purging dead letters"))?;
            for l in &letters {
                delete
                    .execute(params![l.id])
                    .map_err(self.q("purging dead letters"))?;
            }
        }
        let mut by_pipeline: BTreeMap<&str, Vec<&DeadLetter>> = BTreeMap::new();
        for l in &letters {
            by_pipeline.entry(&l.pipeline).or_default().push(l);
        }
        let now = now_us();
        let target = filter.to_string();
        for (pipeline, deleted) in by_pipeline {
            let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
            for l in &deleted {
                *reasons.entry(&l.reason).or_default() += 1;
            }
            let reasons: Vec<String> = reasons.iter().map(|(r, n)| format!("{r} {n}")).collect();
            let ids: Vec<i64> = deleted.iter().map(|l| l.id).collect();
            let detail = format!(
                "{by} deleted {} dead letter{} (ids {}; {})",
                deleted.len(),
                if deleted.len() == 1 { "" } else { "s" },
                id_ranges(&ids),
                reasons.join(", ")
            );
            tx.execute(
                "INSERT INTO audit_events (at_us, pipeline, stage, plugin_digest, capability, target, detail)
                 VALUES (?1, ?2, '', '', ?3, ?4, ?5)",
                params![now, pipeline, PURGE_CAPABILITY, target, detail],
            )
            .map_err(self.q("recording a purge in the audit log"))?;
        }
        tx.commit().map_err(self.q("committing a purge"))?;
        Ok(letters)
    }

    fn dead_letter(&self, id: i64) -> Result<Option<DeadLetter>, StateError> {
        let conn = self.lock();
        let row = conn
            .query_row(
                &format!("SELECT {LETTER_COLUMNS} FROM dead_letters WHERE id = ?1"),
                params![id],
                |r| self.row_to_letter(r),
            )
            .optional()
            .map_err(self.q("reading a dead letter"))?;
        row.map(|r| self.decode(r)).transpose()
    }

    fn start_run(&self, pipeline: &str) -> Result<i64, StateError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO runs (pipeline, started_at_us, status) VALUES (?1, ?2, 'running')",
            params![pipeline, now_us()],
        )
        .map_err(self.q("starting a run"))?;
        Ok(conn.last_insert_rowid())
    }

    fn finish_run(&self, run: i64, status: &str) -> Result<(), StateError> {
        self.lock()
            .execute(
                "UPDATE runs SET finished_at_us = ?2, status = ?3 WHERE id = ?1",
                params![run, now_us(), status],
            )
            .map_err(self.q("finishing a run"))?;
        Ok(())
    }

    fn run(&self, run: i64) -> Result<Option<RunRecord>, StateError> {
        self.lock()
            .query_row(
                "SELECT id, pipeline, started_at_us, finished_at_us, read, written, dead_lettered, filtered, status FROM runs WHERE id = ?1",
                params![run],
                |r| {
                    Ok(RunRecord {
                        id: r.get(0)?,
                        pipeline: r.get(1)?,
                        started_at_us: r.get(2)?,
                        finished_at_us: r.get(3)?,
                        accounting: Accounting {
                            read: r.get::<_, i64>(4)? as u64,
                            written: r.get::<_, i64>(5)? as u64,
                            dead_lettered: r.get::<_, i64>(6)? as u64,
                            filtered: r.get::<_, i64>(7)? as u64,
                        },
                        status: r.get(8)?,
                    })
                },
            )
            .optional()
            .map_err(self.q("reading a run"))
    }

    fn total_accounting(&self, pipeline: &str) -> Result<Accounting, StateError> {
        self.lock()
            .query_row(
                "SELECT COALESCE(SUM(read),0), COALESCE(SUM(written),0), COALESCE(SUM(dead_lettered),0), COALESCE(SUM(filtered),0) FROM runs WHERE pipeline = ?1",
                params![pipeline],
                |r| {
                    Ok(Accounting {
                        read: r.get::<_, i64>(0)? as u64,
                        written: r.get::<_, i64>(1)? as u64,
                        dead_lettered: r.get::<_, i64>(2)? as u64,
                        filtered: r.get::<_, i64>(3)? as u64,
                    })
                },
            )
            .map_err(self.q("summing the accounting"))
    }

    fn start_scheduled_run(
        &self,
        pipeline: &str,
        schedule: &str,
        due_at_us: i64,
        missed: u64,
        started_at_us: i64,
    ) -> Result<i64, StateError> {
        let what = "starting a scheduled run";
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.q(what))?;
        tx.execute(
            "UPDATE schedule_runs SET outcome = 'interrupted' WHERE pipeline = ?1 AND finished_at_us IS NULL",
            params![pipeline],
        )
        .map_err(self.q(what))?;
        tx.execute(
            "INSERT INTO schedule_runs (pipeline, schedule, due_at_us, missed, started_at_us, outcome) VALUES (?1, ?2, ?3, ?4, ?5, 'running')",
            params![
                pipeline,
                schedule,
                due_at_us,
                i64::try_from(missed).unwrap_or(i64::MAX),
                started_at_us
            ],
        )
        .map_err(self.q(what))?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(self.q(what))?;
        Ok(id)
    }

    fn finish_scheduled_run(
        &self,
        id: i64,
        finished_at_us: i64,
        outcome: &str,
        run: Option<i64>,
        accounting: &Accounting,
    ) -> Result<(), StateError> {
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.lock()
            .execute(
                "UPDATE schedule_runs SET finished_at_us = ?2, outcome = ?3, run_id = ?4, read = ?5, written = ?6, dead_lettered = ?7, filtered = ?8 WHERE id = ?1",
                params![
                    id,
                    finished_at_us,
                    outcome,
                    run,
                    count(accounting.read),
                    count(accounting.written),
                    count(accounting.dead_lettered),
                    count(accounting.filtered)
                ],
            )
            .map_err(self.q("finishing a scheduled run"))?;
        Ok(())
    }

    fn scheduled_runs(
        &self,
        pipeline: &str,
        limit: usize,
    ) -> Result<Vec<ScheduledRun>, StateError> {
        let what = "reading scheduled runs";
        let conn = self.lock();
        let mut stmt = conn
            .prepare(
                "SELECT id, pipeline, schedule, due_at_us, missed, started_at_us, finished_at_us, run_id, read, written, dead_lettered, filtered, outcome \
                 FROM schedule_runs WHERE pipeline = ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(self.q(what))?;
        stmt.query_map(
            params![pipeline, i64::try_from(limit).unwrap_or(i64::MAX)],
            |r| {
                Ok(ScheduledRun {
                    id: r.get(0)?,
                    pipeline: r.get(1)?,
                    schedule: r.get(2)?,
                    due_at_us: r.get(3)?,
                    missed: r.get::<_, i64>(4)?.max(0) as u64,
                    started_at_us: r.get(5)?,
                    finished_at_us: r.get(6)?,
                    run_id: r.get(7)?,
                    accounting: Accounting {
                        read: r.get::<_, i64>(8)?.max(0) as u64,
                        written: r.get::<_, i64>(9)?.max(0) as u64,
                        dead_lettered: r.get::<_, i64>(10)?.max(0) as u64,
                        filtered: r.get::<_, i64>(11)?.max(0) as u64,
                    },
                    outcome: r.get(12)?,
                })
            },
        )
        .map_err(self.q(what))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(self.q(what))
    }

    fn record_audit(&self, event: &AuditEvent) -> Result<(), StateError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction()
            .map_err(self.q("starting an audit write"))?;
        sync::insert_audit(&tx, event).map_err(self.q("writing an audit event"))?;
        tx.commit().map_err(self.q("committing an audit event"))
    }

    fn record_audits(&self, events: &[AuditEvent]) -> Result<(), StateError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut conn = self.lock();
        let tx = conn
            .transaction()
            .map_err(self.q("starting an audit write"))?;
        for event in events {
            sync::insert_audit(&tx, event).map_err(self.q("writing an audit event"))?;
        }
        tx.commit().map_err(self.q("committing audit events"))
    }

    fn sync_states(
        &self,
        pipeline: &str,
        keys: &[String],
    ) -> Result<Vec<(String, String)>, StateError> {
        self.sync_states_impl(pipeline, keys)
    }

    fn commit_sync(&self, commit: &SyncCommit) -> Result<Vec<i64>, StateError> {
        self.commit_sync_impl(commit)
    }

    fn conflicts(&self, filter: &ConflictFilter) -> Result<Vec<Conflict>, StateError> {
        self.conflicts_impl(filter)
    }

    fn conflict(&self, id: i64) -> Result<Option<Conflict>, StateError> {
        self.conflict_impl(id)
    }

    fn decide_conflict(
        &self,
        id: i64,
        decision: &Decision,
        audit: &AuditEvent,
    ) -> Result<bool, StateError> {
        self.decide_conflict_impl(id, decision, audit)
    }

    fn audit_events(&self, pipeline: Option<&str>) -> Result<Vec<AuditEvent>, StateError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(
                "SELECT id, at_us, pipeline, stage, plugin_digest, capability, target, detail FROM audit_events
                 WHERE (?1 IS NULL OR pipeline = ?1) ORDER BY id",
            )
            .map_err(self.q("listing audit events"))?;
        let rows = stmt
            .query_map(params![pipeline], |r| {
                Ok(AuditEvent {
                    id: r.get(0)?,
                    at_us: r.get(1)?,
                    pipeline: r.get(2)?,
                    stage: r.get(3)?,
                    plugin_digest: r.get(4)?,
                    capability: r.get(5)?,
                    target: r.get(6)?,
                    detail: r.get(7)?,
                })
            })
            .map_err(self.q("listing audit events"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.q("reading an audit event"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(stage: &str, reason: &str, key: &str) -> DeadLetter {
        DeadLetter {
            id: 0,
            pipeline: "p".into(),
            stage: stage.into(),
            plugin_digest: "d".into(),
            reason: reason.into(),
            detail: format!("{reason} at {stage}"),
            key: key.into(),
            record: serde_json::json!({ "id": key }),
            attempts: 1,
            created_at_us: 0,
        }
    }

    #[test]
    fn checkpoint_and_accounting_commit_together_and_survive_reopen() -> Result<(), StateError> {
        let dir = tempfile::tempdir().map_err(|source| StateError::Folder {
            path: PathBuf::from("tmp"),
            source,
        })?;
        let path = dir.path().join("nested/state.db");
        {
            let s = SqliteState::open(&path)?;
            assert_eq!(s.checkpoint("p", "src")?, None);
            let run = s.start_run("p")?;
            let a = Accounting {
                read: 10,
                written: 7,
                dead_lettered: 2,
                filtered: 1,
            };
            s.commit(&PipelineCommit::new(run, "p", "src", b"pos-10", a))?;
            s.commit(&PipelineCommit {
                sink_tokens: vec![("out".to_string(), b"len-12".to_vec())],
                ..PipelineCommit::new(
                    run,
                    "p",
                    "src",
                    b"pos-12",
                    Accounting {
                        read: 2,
                        written: 2,
                        ..Default::default()
                    },
                )
            })?;
            s.finish_run(run, "finished")?;
            let r = s.run(run)?.ok_or_else(|| StateError::Corrupt {
                path: path.clone(),
                detail: "run".into(),
            })?;
            assert_eq!(
                r.accounting,
                Accounting {
                    read: 12,
                    written: 9,
                    dead_lettered: 2,
                    filtered: 1
                }
            );
            assert_eq!(r.status, "finished");
        }
        let s = SqliteState::open(&path)?;
        assert_eq!(s.checkpoint("p", "src")?, Some(b"pos-12".to_vec()));
        assert_eq!(s.sink_token("p", "out")?, Some(b"len-12".to_vec()));
        assert_eq!(s.sink_token("p", "other")?, None);
        // A baseline lands only where there is no token.
        s.baseline_sink_token("p", "out", b"len-0")?;
        s.baseline_sink_token("p", "other", b"len-0")?;
        assert_eq!(s.sink_token("p", "out")?, Some(b"len-12".to_vec()));
        assert_eq!(s.sink_token("p", "other")?, Some(b"len-0".to_vec()));
        assert!(s.total_accounting("p")?.balances());
        assert_eq!(s.total_accounting("other")?, Accounting::default());
        Ok(())
    }

    #[test]
    fn dead_letters_filter_by_stage_and_reason() -> Result<(), StateError> {
        let s = SqliteState::open(Path::new(":memory:"))?;
        s.add_dead_letters(&[
            letter("rules", "invalid", "a"),
            letter("rules", "trap", "b"),
            letter("sink", "rejected", "c"),
        ])?;
        let all = s.dead_letters(&DeadLetterFilter::default())?;
        assert_eq!(
            all.iter().map(|l| l.key.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(all[0].record, serde_json::json!({ "id": "a" }));
        let rules = s.dead_letters(&DeadLetterFilter {
            stage: Some("rules".into()),
            ..Default::default()
        })?;
        assert_eq!(rules.len(), 2);
        let traps = s.dead_letters(&DeadLetterFilter {
            reason: Some("trap".into()),
            ..Default::default()
        })?;
        assert_eq!(traps.len(), 1);
        assert_eq!(
            s.dead_letter(traps[0].id)?.map(|l| l.key),
            Some("b".to_string())
        );
        Ok(())
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("state.db");
        std::fs::write(&path, vec![0x42u8; 8192]).expect("write garbage");
        match SqliteState::open(&path) {
            Err(e) => assert!(
                e.to_string().contains("damaged") || e.to_string().contains("not a database"),
                "{e}"
            ),
            Ok(_) => unreachable!("a garbage file opened as a database"),
        }
    }

    fn temp() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("state.db");
        (dir, path)
    }

    fn sidecar(path: &Path, suffix: &str) -> PathBuf {
        let mut s = path.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    }

    /// What a real run leaves: checkpoints, accounting, a few hundred dead
    /// letters and an audit event; then the last connection closes, which
    /// moves the write-ahead log into the file.
    fn populate(path: &Path) {
        let s = SqliteState::open(path).expect("opens");
        let run = s.start_run("p").expect("a run");
        for i in 0..30u64 {
            let letters: Vec<DeadLetter> = (0..10)
                .map(|j| {
                    let mut l = letter("rules", "invalid", &format!("k{i}-{j}"));
                    l.record = serde_json::json!({ "id": i * 10 + j, "note": "x".repeat(200) });
                    l
                })
                .collect();
            s.add_dead_letters(&letters).expect("dead letters");
            let closed = Accounting {
                read: 20,
                written: 10,
                dead_lettered: 10,
                filtered: 0,
            };
            s.commit(&PipelineCommit::new(
                run,
                "p",
                "src",
                &i.to_be_bytes(),
                closed,
            ))
            .expect("commit");
        }
        s.record_audit(&AuditEvent {
            id: 0,
            at_us: 0,
            pipeline: "p".into(),
            stage: "src".into(),
            plugin_digest: "d".into(),
            capability: "network".into(),
            target: "tcp connect 10.0.0.1:80".into(),
            detail: "no grant names it".into(),
        })
        .expect("audit");
        s.finish_run(run, "finished").expect("finish");
        drop(s);
        assert!(
            !sidecar(path, "-wal").exists(),
            "the log was not checkpointed into the file"
        );
    }

    /// The message a damaged file gets, around SQLite's own words.
    fn assert_refused_as_damaged(path: &Path) {
        let e = match SqliteState::open(path) {
            Err(e) => e,
            Ok(_) => unreachable!("a damaged file opened"),
        };
        assert!(matches!(e, StateError::Corrupt { .. }), "{e:?}");
        let p = path.display();
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("state database {p} is damaged (")),
            "{text}"
        );
        assert!(
            text.ends_with(&format!(
                "); ferry will not run on it. Restore it from a backup, or move it aside to start over: `mv {p} {p}.damaged`, with its -wal and -shm files if there are any. Starting over reads every source again from its beginning: records may be delivered twice, none is lost; the old dead letters and runs stay in the moved file"
            )),
            "{text}"
        );
    }

    #[test]
    fn commits_are_durable_wal_with_synchronous_full_and_the_file_is_stamped() {
        let (_dir, path) = temp();
        let s = SqliteState::open(&path).expect("opens");
        let conn = s.lock();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .expect("journal_mode");
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .expect("synchronous");
        let app: i64 = conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .expect("application_id");
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("user_version");
        assert_eq!(
            (mode.as_str(), sync, app, version),
            ("wal", 2, APPLICATION_ID, SCHEMA_VERSION)
        );
    }

    #[test]
    fn garbage_written_into_the_middle_of_a_used_file_is_refused() {
        let (_dir, path) = temp();
        populate(&path);
        let mut bytes = std::fs::read(&path).expect("read");
        assert!(bytes.len() > 64 * 1024, "{} bytes", bytes.len());
        let mid = bytes.len() / 2;
        let mut x: u32 = 0x9E37_79B9;
        for b in &mut bytes[mid..mid + 8192] {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        std::fs::write(&path, &bytes).expect("write");
        assert_refused_as_damaged(&path);
    }

    #[test]
    fn a_truncated_file_is_refused() {
        let (_dir, path) = temp();
        populate(&path);
        let whole = std::fs::read(&path).expect("read");
        // Half of it, all but its last page, a page and a bit, part of the header.
        for len in [whole.len() / 2, whole.len() - 4096, 5000, 60] {
            std::fs::write(&path, &whole[..len]).expect("truncate");
            assert_refused_as_damaged(&path);
        }
        std::fs::write(&path, &whole).expect("restore");
        let s = SqliteState::open(&path).expect("the intact file opens");
        assert_eq!(
            s.checkpoint("p", "src").expect("read"),
            Some(29u64.to_be_bytes().to_vec())
        );
        assert_eq!(
            s.count_dead_letters(&DeadLetterFilter::default())
                .expect("count"),
            300
        );
    }

    #[test]
    fn a_file_written_by_a_newer_ferry_is_refused() {
        let (_dir, path) = temp();
        drop(SqliteState::open(&path).expect("opens"));
        let conn = Connection::open(&path).expect("raw");
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("bump");
        drop(conn);
        let e = SqliteState::open(&path).err().expect("refused");
        assert_eq!(
            e.to_string(),
            format!(
                "state database {} was written by a newer ferry (schema version {}; this ferry knows up to {}); run it with that ferry, or restore a backup this one wrote",
                path.display(),
                SCHEMA_VERSION + 1,
                SCHEMA_VERSION
            )
        );
    }

    #[test]
    fn another_applications_database_is_refused_and_left_as_it_is() {
        let (_dir, path) = temp();
        let conn = Connection::open(&path).expect("raw");
        conn.execute_batch("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);")
            .expect("theirs");
        drop(conn);
        let e = SqliteState::open(&path).err().expect("refused");
        assert_eq!(
            e.to_string(),
            format!(
                "{} is not a ferry state database (it holds tables ferry does not use: customers); ferry leaves it as it is: point the pipeline's `state` at another file",
                path.display()
            )
        );
        let conn = Connection::open(&path).expect("raw");
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .expect("tables");
        assert_eq!(tables, ["customers"]);
        conn.pragma_update(None, "application_id", 0x1234)
            .expect("id");
        conn.execute_batch("DROP TABLE customers").expect("drop");
        drop(conn);
        let e = SqliteState::open(&path).err().expect("refused");
        assert!(matches!(e, StateError::NotFerry { .. }), "{e}");
        assert!(
            e.to_string().contains("its application id is 0x1234"),
            "{e}"
        );
    }

    #[test]
    fn a_file_from_before_schema_versions_is_stamped_and_kept() {
        let (_dir, path) = temp();
        let conn = Connection::open(&path).expect("raw");
        conn.execute_batch(SCHEMA)
            .expect("the tables of an older ferry");
        conn.execute(
            "INSERT INTO checkpoints (pipeline, source, checkpoint, updated_at_us) VALUES ('p', 'src', x'2a', 1)",
            [],
        )
        .expect("a checkpoint");
        drop(conn);
        let s = SqliteState::open(&path).expect("opens");
        assert_eq!(s.checkpoint("p", "src").expect("read"), Some(vec![0x2a]));
        let version: i64 = s
            .lock()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("user_version");
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn a_version_1_file_gets_the_schedule_table_and_keeps_the_rest() {
        let (_dir, path) = temp();
        populate(&path);
        // A file of version 1 is this one without `schedule_runs`.
        let conn = Connection::open(&path).expect("raw");
        conn.execute_batch(
            "DROP INDEX schedule_runs_by_pipeline; DROP TABLE schedule_runs; PRAGMA user_version = 1;",
        )
        .expect("back to version 1");
        let checkpoints: i64 = conn
            .query_row("SELECT COUNT(*) FROM checkpoints", [], |r| r.get(0))
            .expect("count");
        drop(conn);
        let s = SqliteState::open(&path).expect("a version 1 file opens");
        let version: i64 = s
            .lock()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("user_version");
        assert_eq!(version, SCHEMA_VERSION);
        let kept: i64 = s
            .lock()
            .query_row("SELECT COUNT(*) FROM checkpoints", [], |r| r.get(0))
            .expect("count");
        assert_eq!(kept, checkpoints);
        assert_eq!(s.scheduled_runs("p", 10).expect("the new table"), vec![]);
        let id = s
            .start_scheduled_run("p", "every 1m", 60_000_000, 0, 60_000_001)
            .expect("a scheduled run");
        assert_eq!(s.scheduled_runs("p", 10).expect("read")[0].id, id);
    }

    #[test]
    fn a_version_2_file_gets_the_sync_tables() {
        let (_dir, path) = temp();
        populate(&path);
        let conn = Connection::open(&path).expect("raw");
        conn.execute_batch(
            "DROP INDEX conflicts_by_key; DROP TABLE conflicts; DROP TABLE sync_keys; PRAGMA user_version = 2;",
        )
        .expect("back to version 2");
        drop(conn);
        let s = SqliteState::open(&path).expect("a version 2 file opens");
        assert_eq!(
            s.sync_states("p", &["k".into()]).expect("the new table"),
            vec![]
        );
        assert!(
            s.conflicts(&ConflictFilter::default())
                .expect("the new table")
                .is_empty()
        );
    }

    #[test]
    fn a_version_4_file_gets_the_sink_tokens_table_and_keeps_its_checkpoints()
    -> Result<(), StateError> {
        let (_dir, path) = temp();
        let start = SCHEMA
            .find("CREATE TABLE IF NOT EXISTS sink_tokens")
            .expect("the version 5 table");
        let v4 = &SCHEMA[..start];
        let conn = Connection::open(&path).expect("raw");
        conn.execute_batch(v4).expect("version 4 tables");
        conn.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 4;
             INSERT INTO checkpoints (pipeline, source, checkpoint, updated_at_us) VALUES ('p', 'src', x'2a', 1);"
        ))
        .expect("a checkpoint");
        drop(conn);
        let s = SqliteState::open(&path)?;
        let version: i64 = s
            .lock()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("user_version");
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(s.checkpoint("p", "src")?, Some(vec![0x2a]));
        assert_eq!(s.sink_token("p", "out")?, None);
        Ok(())
    }

    #[test]
    fn a_version_3_file_gets_the_decision_columns_and_keeps_its_conflicts() -> Result<(), StateError>
    {
        let (_dir, path) = temp();
        // A version 3 file: `conflicts` without the columns of version 4,
        // holding a decided conflict.
        let conn = Connection::open(&path).expect("raw");
        let v3 = SCHEMA.replace(
            "    resolved_at_us INTEGER,\n    decided_left TEXT,\n    decided_right TEXT,\n    reopened TEXT\n",
            "    resolved_at_us INTEGER\n",
        );
        assert_ne!(v3, SCHEMA, "the version 3 table");
        conn.execute_batch(&v3).expect("version 3 tables");
        conn.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 3;
             INSERT INTO conflicts (pipeline, key, left_version, right_version, ancestor, strategy, reason, detected_at_us, status, decision, decided_by, decided_at_us)
             VALUES ('p', '2', '{{\"fields\":{{}}}}', 'null', 'null', 'manual', 'the strategy is manual', 1, 'decided', 'right', 'ann', 2);"
        ))
        .expect("a decided conflict");
        drop(conn);
        let s = SqliteState::open(&path)?;
        let version: i64 = s
            .lock()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("user_version");
        assert_eq!(version, SCHEMA_VERSION);
        let c = &s.conflicts(&ConflictFilter::default())?[0];
        assert_eq!(
            (
                c.status.as_str(),
                c.decision.as_deref(),
                &c.decided_left,
                &c.reopened
            ),
            ("decided", Some("right"), &None, &None)
        );
        // And it opens again as it is.
        drop(s);
        SqliteState::open(&path)?;
        Ok(())
    }

    fn conflict_event(key: &str) -> AuditEvent {
        AuditEvent {
            id: 0,
            at_us: 0,
            pipeline: "p".into(),
            stage: "sync".into(),
            plugin_digest: String::new(),
            capability: CONFLICT_CAPABILITY.into(),
            target: key.into(),
            detail: "{}".into(),
        }
    }

    #[test]
    fn a_sync_commit_lands_whole_and_a_conflict_is_decided_once() -> Result<(), StateError> {
        let (_dir, path) = temp();
        let s = SqliteState::open(&path)?;
        let commit = SyncCommit {
            pipeline: "p".into(),
            checkpoint: Some(("crm#left".into(), vec![7])),
            states: vec![
                ("1".into(), Some("{\"a\":1}".into())),
                ("2".into(), Some("{}".into())),
            ],
            queue: vec![NewConflict {
                key: "3".into(),
                left: serde_json::json!({"fields": {"n": {"int": 1}}}),
                right: serde_json::Value::Null,
                ancestor: serde_json::Value::Null,
                strategy: "manual".into(),
                reason: "the strategy is manual".into(),
            }],
            audit: vec![conflict_event("3")],
            dead_letters: vec![letter("crm", "owned-field", "4")],
            ..SyncCommit::default()
        };
        let ids = s.commit_sync(&commit)?;
        assert_eq!(ids.len(), 1);
        assert_eq!(s.checkpoint("p", "crm#left")?, Some(vec![7]));
        let states = s.sync_states("p", &["1".into(), "2".into(), "9".into()])?;
        assert_eq!(
            states,
            vec![("1".into(), "{\"a\":1}".into()), ("2".into(), "{}".into())]
        );
        assert_eq!(s.dead_letters(&DeadLetterFilter::default())?.len(), 1);
        assert_eq!(s.audit_events(Some("p"))?.len(), 1);
        let open = s.conflicts(&ConflictFilter {
            statuses: vec!["open".into()],
            ..ConflictFilter::default()
        })?;
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].left["fields"]["n"]["int"], 1);
        // Forgetting a key, refreshing the queued versions, deciding.
        s.commit_sync(&SyncCommit {
            pipeline: "p".into(),
            states: vec![("2".into(), None)],
            refresh: vec![(
                ids[0],
                serde_json::json!({"fields": {}}),
                serde_json::json!({"fields": {}}),
            )],
            ..SyncCommit::default()
        })?;
        assert_eq!(s.sync_states("p", &["2".into()])?, vec![]);
        assert_eq!(
            s.conflict(ids[0])?.expect("kept").left,
            serde_json::json!({"fields": {}})
        );
        let seen = s.conflict(ids[0])?.expect("kept");
        let decision = |take: &str, by: &str| Decision {
            decision: take.into(),
            merged: None,
            left: seen.left.clone(),
            right: seen.right.clone(),
            by: by.into(),
        };
        assert!(s.decide_conflict(ids[0], &decision("left", "ann"), &conflict_event("3"))?);
        assert!(
            !s.decide_conflict(ids[0], &decision("right", "bob"), &conflict_event("3"))?,
            "decided once"
        );
        let c = s.conflict(ids[0])?.expect("kept");
        assert_eq!(
            (
                c.status.as_str(),
                c.decision.as_deref(),
                c.decided_by.as_deref()
            ),
            ("decided", Some("left"), Some("ann"))
        );
        assert_eq!(
            c.decided_left.as_ref(),
            Some(&seen.left),
            "what it was decided on"
        );
        assert_eq!(c.decided_right.as_ref(), Some(&seen.right));
        // A stale decision: the conflict waits again with the current
        // versions, the decision gone, the note kept.
        let now = serde_json::json!({"fields": {"n": {"int": 2}}});
        s.commit_sync(&SyncCommit {
            pipeline: "p".into(),
            reopen: vec![Reopen {
                id: ids[0],
                left: now.clone(),
                right: serde_json::Value::Null,
                note: "the left side changed".into(),
            }],
            ..SyncCommit::default()
        })?;
        let c = s.conflict(ids[0])?.expect("kept");
        assert_eq!(
            (
                c.status.as_str(),
                c.decision,
                c.decided_by,
                c.decided_left,
                c.left.clone()
            ),
            ("open", None, None, None, now)
        );
        assert_eq!(c.reopened.as_deref(), Some("the left side changed"));
        assert!(s.decide_conflict(ids[0], &decision("left", "ann"), &conflict_event("3"))?);
        assert_eq!(s.conflict(ids[0])?.expect("kept").reopened, None);
        s.commit_sync(&SyncCommit {
            pipeline: "p".into(),
            resolved: vec![ids[0]],
            ..SyncCommit::default()
        })?;
        let c = s.conflict(ids[0])?.expect("kept");
        assert_eq!(c.status, "resolved");
        assert!(c.resolved_at_us.is_some());
        assert_eq!(
            s.audit_events(Some("p"))?.len(),
            3,
            "each decision is audited"
        );
        Ok(())
    }

    #[test]
    fn scheduled_runs_are_kept_newest_first_and_an_unfinished_one_becomes_interrupted()
    -> Result<(), StateError> {
        let (_dir, path) = temp();
        let s = SqliteState::open(&path)?;
        let first = s.start_scheduled_run("p", "*/15 * * * *", 900_000_000, 0, 900_000_100)?;
        let counts = Accounting {
            read: 5,
            written: 3,
            dead_lettered: 1,
            filtered: 1,
        };
        s.finish_scheduled_run(first, 901_000_000, "finished", Some(7), &counts)?;
        // A second run that ferry never saw end (killed), then a third.
        let second = s.start_scheduled_run("p", "*/15 * * * *", 1_800_000_000, 0, 1_800_000_050)?;
        let other = s.start_scheduled_run("q", "every 1s", 1_000_000, 0, 1_000_000)?;
        let third = s.start_scheduled_run("p", "every 1h", 3_600_000_000, 2, 5_400_000_000)?;

        let runs = s.scheduled_runs("p", 10)?;
        let ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
        assert_eq!(ids, [third, second, first]);
        let [newest, cut, done] = &runs[..] else {
            panic!("three runs: {runs:?}")
        };
        assert_eq!(newest.outcome, "running");
        assert_eq!(newest.schedule, "every 1h");
        assert_eq!((newest.due_at_us, newest.missed), (3_600_000_000, 2));
        assert_eq!(newest.started_at_us, 5_400_000_000);
        assert_eq!(newest.finished_at_us, None);
        assert_eq!(cut.outcome, "interrupted");
        assert_eq!(cut.finished_at_us, None);
        assert_eq!(done.outcome, "finished");
        assert_eq!(done.finished_at_us, Some(901_000_000));
        assert_eq!(done.run_id, Some(7));
        assert_eq!(done.accounting, counts);
        assert_eq!(s.scheduled_runs("p", 1)?.len(), 1);
        // Another pipeline's run is its own.
        let q = s.scheduled_runs("q", 10)?;
        assert_eq!(
            (q.len(), q[0].id, q[0].outcome.as_str()),
            (1, other, "running")
        );
        drop(s);
        // And it all survives a reopen.
        assert_eq!(SqliteState::open(&path)?.scheduled_runs("p", 10)?, runs);
        Ok(())
    }

    #[test]
    fn a_table_without_a_column_ferry_uses_is_damage() {
        let (_dir, path) = temp();
        drop(SqliteState::open(&path).expect("opens"));
        let conn = Connection::open(&path).expect("raw");
        conn.execute_batch(
            "DROP TABLE audit_events; CREATE TABLE audit_events (id INTEGER PRIMARY KEY, at_us INTEGER, pipeline TEXT, stage TEXT, plugin_digest TEXT, capability TEXT);",
        )
        .expect("damage");
        drop(conn);
        assert_refused_as_damaged(&path);
        let e = SqliteState::open(&path).err().expect("refused");
        assert!(
            e.to_string()
                .contains("(its table `audit_events` lacks target, detail)"),
            "{e}"
        );
    }

    #[test]
    fn a_commit_that_does_not_balance_is_refused_and_lands_nothing() {
        let s = SqliteState::open(Path::new(":memory:")).expect("opens");
        let run = s.start_run("p").expect("run");
        let e = s
            .commit(&PipelineCommit::new(
                run,
                "p",
                "src",
                b"cp",
                Accounting {
                    read: 5,
                    written: 3,
                    dead_lettered: 1,
                    filtered: 0,
                },
            ))
            .expect_err("refused");
        assert!(matches!(e, StateError::Accounting { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "state database :memory:: the accounting does not balance (the 5 records a checkpoint of `p`/`src` closes are not all accounted for: written=3 dead_lettered=1 filtered=0); the checkpoint was not committed, so these records will be read again. This is a bug in ferry: please report it"
        );
        assert_eq!(s.checkpoint("p", "src").expect("read"), None);
        assert_eq!(
            s.run(run).expect("read").map(|r| r.accounting),
            Some(Accounting::default())
        );
    }

    #[test]
    fn dead_letters_land_with_their_checkpoint_or_not_at_all() {
        let s = SqliteState::open(Path::new(":memory:")).expect("opens");
        let run = s.start_run("p").expect("run");
        let all = DeadLetterFilter::default();
        let mut commit = PipelineCommit::new(
            run,
            "p",
            "src",
            b"one",
            Accounting {
                read: 3,
                written: 1,
                dead_lettered: 2,
                filtered: 0,
            },
        );
        commit.dead_letters = vec![
            letter("rules", "invalid", "a"),
            letter("rules", "invalid", "b"),
        ];
        // A commit that is refused stores none of its letters.
        let mut refused = commit.clone();
        refused.run = run + 1;
        s.commit(&refused).expect_err("no such run");
        assert_eq!(s.count_dead_letters(&all).expect("count"), 0);
        assert_eq!(s.checkpoint("p", "src").expect("read"), None);
        s.commit(&commit).expect("commit");
        assert_eq!(s.count_dead_letters(&all).expect("count"), 2);
        assert_eq!(
            s.checkpoint("p", "src").expect("read"),
            Some(b"one".to_vec())
        );
    }

    #[test]
    fn a_replay_commit_deletes_what_it_delivered_and_replaces_what_failed_again() {
        let s = SqliteState::open(Path::new(":memory:")).expect("opens");
        s.add_dead_letters(&[
            letter("m", "rejected", "a"),
            letter("m", "rejected", "b"),
            letter("m", "rejected", "c"),
        ])
        .expect("add");
        let stored = s.dead_letters(&DeadLetterFilter::default()).expect("list");
        let ids: Vec<i64> = stored.iter().map(|l| l.id).collect();
        let run = s.start_run("p").expect("run");
        // Replayed: a delivered, b refused again by the sink `out` (twice:
        // the second letter is a new one), c dropped.
        let mut again = letter("out", "conflict", "b");
        again.id = ids[1];
        again.attempts = 2;
        let mut commit = PipelineCommit::new(
            run,
            "p",
            "src#replay",
            b"replayed",
            Accounting {
                read: 3,
                written: 1,
                dead_lettered: 1,
                filtered: 1,
            },
        );
        commit.dead_letters = vec![again.clone(), again];
        commit.replayed = Some(Replayed {
            ids: ids.clone(),
            detail: "replayed".into(),
        });
        s.commit(&commit).expect("commit");
        let after = s.dead_letters(&DeadLetterFilter::default()).expect("list");
        assert_eq!(after.len(), 2, "{after:?}");
        assert_eq!(
            (
                after[0].id,
                after[0].key.as_str(),
                after[0].stage.as_str(),
                after[0].reason.as_str(),
                after[0].attempts
            ),
            (ids[1], "b", "out", "conflict", 3),
            "replaced in place, its attempts added up"
        );
        assert!(after[1].id > ids[2], "the second letter is a new one");
        let events = s.audit_events(Some("p")).expect("audit");
        assert_eq!(events.len(), 1);
        assert_eq!(
            (
                events[0].capability.as_str(),
                events[0].target.as_str(),
                events[0].detail.as_str()
            ),
            (REPLAY_CAPABILITY, "1-3", "replayed")
        );
        // A letter naming an id the commit does not replay is a new one.
        let mut stray = letter("m", "rejected", "z");
        stray.id = ids[1];
        let mut commit = PipelineCommit::new(
            run,
            "p",
            "src",
            b"cp",
            Accounting {
                read: 1,
                dead_lettered: 1,
                ..Default::default()
            },
        );
        commit.dead_letters = vec![stray];
        s.commit(&commit).expect("commit");
        let after = s.dead_letters(&DeadLetterFilter::default()).expect("list");
        assert_eq!(after.len(), 3);
        assert_eq!(after[0].key, "b", "the replaced letter is untouched");
    }

    #[test]
    fn a_checkpoint_never_lands_without_its_accounting() {
        let s = SqliteState::open(Path::new(":memory:")).expect("opens");
        let run = s.start_run("p").expect("run");
        let closed = Accounting {
            read: 2,
            written: 2,
            ..Default::default()
        };
        let with_token = |c: PipelineCommit, t: &[u8]| PipelineCommit {
            sink_tokens: vec![("out".to_string(), t.to_vec())],
            ..c
        };
        s.commit(&with_token(
            PipelineCommit::new(run, "p", "src", b"one", closed),
            b"one",
        ))
        .expect("commit");
        // The run is gone: the accounting has nowhere to land, so the
        // checkpoint and the sink token written before it in the
        // transaction roll back.
        let e = s
            .commit(&with_token(
                PipelineCommit::new(run + 1, "p", "src", b"two", closed),
                b"two",
            ))
            .expect_err("refused");
        assert!(
            e.to_string()
                .contains("run 2 of `p` is not in the runs table, so the accounting of 2 records would be lost"),
            "{e}"
        );
        assert_eq!(
            s.checkpoint("p", "src").expect("read"),
            Some(b"one".to_vec())
        );
        assert_eq!(
            s.sink_token("p", "out").expect("read"),
            Some(b"one".to_vec())
        );
        // Totals that no longer balance are caught at the next commit.
        s.lock()
            .execute(
                "UPDATE runs SET written = written + 1 WHERE id = ?1",
                params![run],
            )
            .expect("tamper");
        let e = s
            .commit(&PipelineCommit::new(run, "p", "src", b"three", closed))
            .expect_err("refused");
        assert!(
            e.to_string()
                .contains("run 1 of `p` would total read=4 written=5 dead_lettered=0 filtered=0"),
            "{e}"
        );
        assert_eq!(
            s.checkpoint("p", "src").expect("read"),
            Some(b"one".to_vec())
        );
    }

    fn at(mut l: DeadLetter, pipeline: &str, us: i64) -> DeadLetter {
        l.pipeline = pipeline.into();
        l.created_at_us = us;
        l
    }

    fn keys(letters: &[DeadLetter]) -> Vec<&str> {
        letters.iter().map(|l| l.key.as_str()).collect()
    }

    #[test]
    fn dead_letters_filter_by_time_since_inclusive_until_exclusive() {
        let s = SqliteState::open(Path::new(":memory:")).expect("opens");
        s.add_dead_letters(&[
            at(letter("rules", "invalid", "a"), "p", 1_000),
            at(letter("rules", "invalid", "b"), "p", 2_000),
            at(letter("rules", "invalid", "c"), "p", 3_000),
        ])
        .expect("add");
        let f = |since_us, until_us| DeadLetterFilter {
            since_us,
            until_us,
            ..Default::default()
        };
        let cases = [
            (f(Some(2_000), None), vec!["b", "c"]),
            (f(None, Some(2_000)), vec!["a"]),
            (f(Some(1_500), Some(3_000)), vec!["b"]),
            (f(Some(3_001), None), vec![]),
        ];
        for (filter, want) in cases {
            let got = s.dead_letters(&filter).expect("list");
            assert_eq!(keys(&got), want, "{filter}");
            assert_eq!(
                s.count_dead_letters(&filter).expect("count"),
                want.len() as u64
            );
        }
    }

    #[test]
    fn a_purge_deletes_exactly_what_the_filter_lists_and_is_audited() {
        let s = SqliteState::open(Path::new(":memory:")).expect("opens");
        s.add_dead_letters(&[
            at(letter("rules", "invalid", "a"), "p", 1_000),
            at(letter("rules", "invalid", "b"), "p", 2_000),
            at(letter("out", "rejected", "c"), "p", 2_100),
            at(letter("rules", "trap", "d"), "q", 2_200),
            at(letter("rules", "invalid", "e"), "p", 9_000),
        ])
        .expect("add");
        let filter = DeadLetterFilter {
            stage: Some("rules".into()),
            until_us: Some(2_500),
            ..Default::default()
        };
        let listed = s.dead_letters(&filter).expect("list");
        assert_eq!(keys(&listed), ["a", "b", "d"]);
        assert_eq!(s.count_dead_letters(&filter).expect("count"), 3);
        let purged = s.purge_dead_letters(&filter, "tester").expect("purge");
        assert_eq!(purged, listed);
        let left = s.dead_letters(&DeadLetterFilter::default()).expect("list");
        assert_eq!(keys(&left), ["c", "e"]);

        let events = s.audit_events(None).expect("audit");
        let got: Vec<(&str, &str, &str, &str, &str)> = events
            .iter()
            .map(|e| {
                (
                    e.pipeline.as_str(),
                    e.stage.as_str(),
                    e.capability.as_str(),
                    e.target.as_str(),
                    e.detail.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "p",
                    "",
                    PURGE_CAPABILITY,
                    "stage=rules until=1970-01-01T00:00:00.002500Z",
                    "tester deleted 2 dead letters (ids 1-2; invalid 2)"
                ),
                (
                    "q",
                    "",
                    PURGE_CAPABILITY,
                    "stage=rules until=1970-01-01T00:00:00.002500Z",
                    "tester deleted 1 dead letter (ids 4; trap 1)"
                ),
            ]
        );
        assert!(events.iter().all(|e| e.at_us > 0));

        // Nothing matches: nothing changes, nothing is recorded.
        assert!(
            s.purge_dead_letters(&filter, "tester")
                .expect("purge")
                .is_empty()
        );
        assert_eq!(s.audit_events(None).expect("audit").len(), 2);

        // A limit takes the oldest.
        let oldest = DeadLetterFilter {
            limit: Some(1),
            ..Default::default()
        };
        assert_eq!(s.count_dead_letters(&oldest).expect("count"), 1);
        let purged = s.purge_dead_letters(&oldest, "tester").expect("purge");
        assert_eq!(keys(&purged), ["c"]);
        assert_eq!(
            keys(&s.dead_letters(&DeadLetterFilter::default()).expect("list")),
            ["e"]
        );
    }

    #[test]
    fn audit_events_are_written_many_in_one_transaction_with_their_own_times() {
        let s = SqliteState::open(Path::new(":memory:")).expect("opens");
        let event = |i: i64| AuditEvent {
            id: 0,
            at_us: 1_000 + i,
            pipeline: "p".into(),
            stage: "m".into(),
            plugin_digest: "d".into(),
            capability: "sql".into(),
            target: format!("dialect-of on connection `x{i}`"),
            detail: "the plugin is granted no SQL connection".into(),
        };
        let events: Vec<AuditEvent> = (0..300).map(event).collect();
        s.record_audits(&events).expect("written");
        s.record_audits(&[]).expect("nothing to write");
        let stored = s.audit_events(Some("p")).expect("audit");
        assert_eq!(stored.len(), 300);
        assert_eq!(stored[7].at_us, 1_007, "the time the denial happened");
        assert_eq!(stored[299].target, "dialect-of on connection `x299`");
    }

    #[test]
    fn a_dead_letter_detail_is_cut_to_its_bound() {
        let s = SqliteState::open(Path::new(":memory:")).expect("opens");
        let mut long = letter("m", "rejected", "a");
        long.detail = "é".repeat(MAX_DETAIL_BYTES); // twice the bound in bytes
        let short = letter("m", "rejected", "b");
        s.add_dead_letters(&[long, short]).expect("add");
        let stored = s.dead_letters(&DeadLetterFilter::default()).expect("list");
        assert_eq!(
            stored[0].detail,
            format!(
                "{}…[{} bytes cut]",
                "é".repeat(MAX_DETAIL_BYTES / 2),
                MAX_DETAIL_BYTES
            )
        );
        assert_eq!(stored[1].detail, "rejected at m");
    }

    #[test]
    fn a_purge_deletes_a_dead_letter_whose_record_no_longer_decodes() {
        let s = SqliteState::open(Path::new(":memory:")).expect("opens");
        s.add_dead_letters(&[letter("rules", "invalid", "a")])
            .expect("add");
        s.lock()
            .execute("UPDATE dead_letters SET record = '{not json'", [])
            .expect("damage");
        let all = DeadLetterFilter::default();
        assert!(matches!(
            s.dead_letters(&all),
            Err(StateError::Decode { .. })
        ));
        let purged = s.purge_dead_letters(&all, "tester").expect("purge");
        assert_eq!(
            purged.first().map(|l| l.record.clone()),
            Some(serde_json::json!("{not json"))
        );
        assert_eq!(s.count_dead_letters(&all).expect("count"), 0);
    }

    #[test]
    fn filters_and_ids_read_as_an_operator_would_write_them() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_766_400_000_000), "2026-11-27T08:00:00Z");
        assert_eq!(rfc3339(951_868_799_000_001), "2000-02-29T23:59:59.000001Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(DeadLetterFilter::default().to_string(), "every dead letter");
        let f = DeadLetterFilter {
            pipeline: Some("p".into()),
            reason: Some("trap".into()),
            since_us: Some(1_795_766_400_000_000),
            limit: Some(3),
            ..Default::default()
        };
        assert_eq!(
            f.to_string(),
            "pipeline=p reason=trap since=2026-11-27T08:00:00Z limit=3"
        );
        assert_eq!(id_ranges(&[1, 2, 3, 5, 7, 8]), "1-3, 5, 7-8");
        let many: Vec<i64> = (0..50).map(|i| i * 2).collect();
        assert!(
            id_ranges(&many).ends_with("38 and 30 more ranges"),
            "{}",
            id_ranges(&many)
        );
    }
}
