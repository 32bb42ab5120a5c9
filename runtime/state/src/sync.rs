//! Two-way sync state: what each key looked like when it was last synced,
//! and the conflict queue.
//!
//! The sync engine (`ferry-pipeline`'s `sync` module) owns the meaning of
//! the per-key state and of the recorded versions; here they are JSON text.
//! A batch of sync work lands in one transaction ([`SyncCommit`]): the
//! per-key states, the side's checkpoint, new and settled conflicts, audit
//! events and dead letters, so a crash leaves the old state or the new.
//!
//! A decision stores the versions it was made on; the engine applies it
//! only while both sides still hold them, and otherwise reopens the
//! conflict with the current versions ([`Reopen`]).
//!
//! These are the records only; the SQLite backend stores them in
//! `sqlite/sync.rs`.

use serde::{Deserialize, Serialize};

use crate::{AuditEvent, Choice, ConflictStatus, DeadLetter};

/// The audit log's capability for a two-way sync conflict: detected,
/// settled by a strategy, decided by a person, or applied.
pub const CONFLICT_CAPABILITY: &str = "sync-conflict";

/// A conflict waiting for (or settled by) a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    /// Its id in the store.
    pub id: i64,
    /// The sync pipeline.
    pub pipeline: String,
    /// The record key.
    pub key: String,
    /// The left side's version (the sync engine's JSON).
    pub left: serde_json::Value,
    /// The right side's version.
    pub right: serde_json::Value,
    /// The version both sides last agreed on (`null`: none).
    pub ancestor: serde_json::Value,
    /// The strategy that sent it to the queue.
    pub strategy: String,
    /// Why it waits.
    pub reason: String,
    /// When it was detected, microseconds since the Unix epoch.
    pub detected_at_us: i64,
    /// Open (waiting), decided (a person chose; the sync applies it next),
    /// or resolved (applied to both sides).
    pub status: ConflictStatus,
    /// The version the decision takes, once decided.
    pub decision: Option<Choice>,
    /// The merged version, for `merged`.
    pub merged: Option<serde_json::Value>,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When they decided.
    pub decided_at_us: Option<i64>,
    /// When the decision was applied to both sides.
    pub resolved_at_us: Option<i64>,
    /// Once decided: the left version the decision was made on (what
    /// `resolve` read from the queue). The sync applies the decision only
    /// while the left side still holds it; `None` for decisions recorded by
    /// a ferry before schema version 4 (their `left` was not refreshed
    /// after the decision, so it stands in).
    pub decided_left: Option<serde_json::Value>,
    /// Once decided: the right version the decision was made on.
    pub decided_right: Option<serde_json::Value>,
    /// Why the conflict waits again, when a decision on it went stale (a
    /// side changed after the decision was made, so it was not applied).
    pub reopened: Option<String>,
}

/// A decided conflict whose decision went stale: it waits again, with the
/// versions the sides hold now.
#[derive(Debug, Clone, PartialEq)]
pub struct Reopen {
    /// The conflict.
    pub id: i64,
    /// The left side's current version.
    pub left: serde_json::Value,
    /// The right side's current version.
    pub right: serde_json::Value,
    /// Why it waits again (shown by `ferry conflicts show`).
    pub note: String,
}

/// A new conflict for the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewConflict {
    /// The record key.
    pub key: String,
    /// The left version.
    pub left: serde_json::Value,
    /// The right version.
    pub right: serde_json::Value,
    /// The common ancestor (`null`: none).
    pub ancestor: serde_json::Value,
    /// The strategy that queued it.
    pub strategy: String,
    /// Why it waits.
    pub reason: String,
}

/// One batch of sync work, committed at once.
#[derive(Debug, Clone, Default)]
pub struct SyncCommit {
    /// The sync pipeline.
    pub pipeline: String,
    /// A side's source checkpoint: (source name, checkpoint).
    pub checkpoint: Option<(String, Vec<u8>)>,
    /// Per-key states to store (JSON), or `None` to forget the key.
    pub states: Vec<(String, Option<String>)>,
    /// Conflicts to queue.
    pub queue: Vec<NewConflict>,
    /// Queued conflicts whose versions changed while they waited: (id,
    /// left, right).
    pub refresh: Vec<(i64, serde_json::Value, serde_json::Value)>,
    /// Decided conflicts now applied to both sides.
    pub resolved: Vec<i64>,
    /// Decided conflicts whose decision went stale: open again.
    pub reopen: Vec<Reopen>,
    /// Audit events.
    pub audit: Vec<AuditEvent>,
    /// Dead letters.
    pub dead_letters: Vec<DeadLetter>,
    /// The run these records count towards, and their counts.
    pub accounting: Option<(i64, crate::Accounting)>,
}

/// A person's decision on a queued conflict.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The version it takes.
    pub decision: Choice,
    /// The merged version, for `merged`.
    pub merged: Option<serde_json::Value>,
    /// The left version the decision was made on: the queued one `resolve`
    /// read (and audited). The sync applies the decision only while both
    /// sides still hold the versions it was made on.
    pub left: serde_json::Value,
    /// The right version the decision was made on.
    pub right: serde_json::Value,
    /// Who decided.
    pub by: String,
}

/// Which conflicts to list.
#[derive(Debug, Clone, Default)]
pub struct ConflictFilter {
    /// Only this pipeline.
    pub pipeline: Option<String>,
    /// Only these statuses; empty: all.
    pub statuses: Vec<ConflictStatus>,
    /// Only this key.
    pub key: Option<String>,
}
