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
//!
//! # Layout
//!
//! - `error`: [`StateError`], every way the store fails.
//! - `model`: the records the store keeps and is given ([`Accounting`],
//!   [`DeadLetter`], [`RunRecord`], [`ScheduledRun`], [`AuditEvent`],
//!   [`PipelineCommit`], ...), independent of any backend.
//! - `status`: the statuses that cross crates ([`RunStatus`],
//!   [`ScheduledOutcome`], [`ConflictStatus`], [`Choice`]), stored as the
//!   text ferry always wrote.
//! - `sync`: the records of two-way sync ([`Conflict`], [`SyncCommit`], ...).
//! - `store`: the [`StateStore`] trait, the seam between the runtime and a
//!   backend.
//! - `sqlite`: the embedded backend, [`SqliteState`], and its schema.
//! - `time`: the clock ([`now_us`]) and the RFC 3339 form of a time.

mod error;
mod model;
mod sqlite;
mod status;
mod store;
mod sync;
mod time;

pub use error::StateError;
pub use model::{
    Accounting, AuditEvent, DeadLetter, DeadLetterFilter, MAX_DETAIL_BYTES, PURGE_CAPABILITY,
    PipelineCommit, REPLAY_CAPABILITY, Replayed, RunRecord, ScheduledRun,
};
pub use sqlite::{APPLICATION_ID, SCHEMA_VERSION, SqliteState};
pub use status::{Choice, ConflictStatus, RunStatus, ScheduledOutcome};
pub use store::StateStore;
pub use sync::{
    CONFLICT_CAPABILITY, Conflict, ConflictFilter, Decision, NewConflict, Reopen, SyncCommit,
};
pub use time::now_us;
