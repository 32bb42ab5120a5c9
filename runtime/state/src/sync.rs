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

use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::{AuditEvent, DeadLetter, SqliteState, StateError, now_us};

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
    /// `open` (waiting), `decided` (a person chose; the sync applies it
    /// next), `resolved` (applied to both sides).
    pub status: String,
    /// `left`, `right` or `merged`, once decided.
    pub decision: Option<String>,
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
    /// `left`, `right` or `merged`.
    pub decision: String,
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
    /// Only these statuses (`open`, `decided`, `resolved`); empty: all.
    pub statuses: Vec<String>,
    /// Only this key.
    pub key: Option<String>,
}

const CONFLICT_COLUMNS: &str = "id, pipeline, key, left_version, right_version, ancestor, strategy, reason, detected_at_us, status, decision, merged, decided_by, decided_at_us, resolved_at_us, decided_left, decided_right, reopened";

fn json(text: String) -> serde_json::Value {
    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
}

fn conflict_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Conflict> {
    Ok(Conflict {
        id: r.get(0)?,
        pipeline: r.get(1)?,
        key: r.get(2)?,
        left: json(r.get(3)?),
        right: json(r.get(4)?),
        ancestor: json(r.get(5)?),
        strategy: r.get(6)?,
        reason: r.get(7)?,
        detected_at_us: r.get(8)?,
        status: r.get(9)?,
        decision: r.get(10)?,
        merged: r.get::<_, Option<String>>(11)?.map(json),
        decided_by: r.get(12)?,
        decided_at_us: r.get(13)?,
        resolved_at_us: r.get(14)?,
        decided_left: r.get::<_, Option<String>>(15)?.map(json),
        decided_right: r.get::<_, Option<String>>(16)?.map(json),
        reopened: r.get(17)?,
    })
}

/// The longest dead-letter detail stored, in bytes. A detail is often a
/// plugin's own message (a rejection, a violation, an error); it explains
/// the record, and past this it is cut on a character boundary with a
/// marker saying how many bytes were cut.
pub const MAX_DETAIL_BYTES: usize = 8192;

pub(crate) fn cap_detail(detail: &str) -> std::borrow::Cow<'_, str> {
    if detail.len() <= MAX_DETAIL_BYTES {
        return std::borrow::Cow::Borrowed(detail);
    }
    let mut cut = MAX_DETAIL_BYTES;
    while !detail.is_char_boundary(cut) {
        cut -= 1;
    }
    std::borrow::Cow::Owned(format!(
        "{}…[{} bytes cut]",
        &detail[..cut],
        detail.len() - cut
    ))
}

pub(crate) fn insert_audit(tx: &Transaction<'_>, event: &AuditEvent) -> rusqlite::Result<()> {
    let at = if event.at_us == 0 {
        now_us()
    } else {
        event.at_us
    };
    tx.prepare_cached(
        "INSERT INTO audit_events (at_us, pipeline, stage, plugin_digest, capability, target, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        at,
        event.pipeline,
        event.stage,
        event.plugin_digest,
        event.capability,
        event.target,
        event.detail
    ])?;
    Ok(())
}

/// Stores a dead letter (stamped `now` unless it has a time).
pub(crate) fn insert_dead_letter(
    tx: &Transaction<'_>,
    l: &DeadLetter,
    now: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO dead_letters (pipeline, stage, plugin_digest, reason, detail, key, record, attempts, created_at_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        l.pipeline,
        l.stage,
        l.plugin_digest,
        l.reason,
        cap_detail(&l.detail),
        l.key,
        l.record.to_string(),
        l.attempts,
        if l.created_at_us == 0 { now } else { l.created_at_us }
    ])?;
    Ok(())
}

impl SqliteState {
    pub(crate) fn sync_states_impl(
        &self,
        pipeline: &str,
        keys: &[String],
    ) -> Result<Vec<(String, String)>, StateError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT state FROM sync_keys WHERE pipeline = ?1 AND key = ?2")
            .map_err(self.q("reading sync state"))?;
        let mut out = Vec::new();
        for key in keys {
            let found: Option<String> = stmt
                .query_row(params![pipeline, key], |r| r.get(0))
                .optional()
                .map_err(self.q("reading sync state"))?;
            if let Some(state) = found {
                out.push((key.clone(), state));
            }
        }
        Ok(out)
    }

    pub(crate) fn commit_sync_impl(&self, c: &SyncCommit) -> Result<Vec<i64>, StateError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction()
            .map_err(self.q("starting a sync commit"))?;
        let now = now_us();
        let mut ids = Vec::new();
        (|| -> rusqlite::Result<()> {
            if let Some((source, checkpoint)) = &c.checkpoint {
                tx.prepare_cached(
                    "INSERT INTO checkpoints (pipeline, source, checkpoint, updated_at_us) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (pipeline, source) DO UPDATE SET checkpoint = excluded.checkpoint, updated_at_us = excluded.updated_at_us",
                )?
                .execute(params![c.pipeline, source, checkpoint, now])?;
            }
            for (key, state) in &c.states {
                match state {
                    Some(s) => tx
                        .prepare_cached(
                            "INSERT INTO sync_keys (pipeline, key, state, updated_at_us) VALUES (?1, ?2, ?3, ?4)
                             ON CONFLICT (pipeline, key) DO UPDATE SET state = excluded.state, updated_at_us = excluded.updated_at_us",
                        )?
                        .execute(params![c.pipeline, key, s, now])?,
                    None => tx
                        .prepare_cached("DELETE FROM sync_keys WHERE pipeline = ?1 AND key = ?2")?
                        .execute(params![c.pipeline, key])?,
                };
            }
            for q in &c.queue {
                tx.prepare_cached(
                    "INSERT INTO conflicts (pipeline, key, left_version, right_version, ancestor, strategy, reason, detected_at_us, status)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'open')",
                )?
                .execute(params![
                    c.pipeline,
                    q.key,
                    q.left.to_string(),
                    q.right.to_string(),
                    q.ancestor.to_string(),
                    q.strategy,
                    q.reason,
                    now
                ])?;
                ids.push(tx.last_insert_rowid());
            }
            for (id, left, right) in &c.refresh {
                tx.prepare_cached(
                    "UPDATE conflicts SET left_version = ?2, right_version = ?3 WHERE id = ?1 AND status = 'open'",
                )?
                .execute(params![id, left.to_string(), right.to_string()])?;
            }
            for id in &c.resolved {
                tx.prepare_cached(
                    "UPDATE conflicts SET status = 'resolved', resolved_at_us = ?2 WHERE id = ?1",
                )?
                .execute(params![id, now])?;
            }
            for r in &c.reopen {
                tx.prepare_cached(
                    "UPDATE conflicts SET status = 'open', left_version = ?2, right_version = ?3, reopened = ?4,
                       decision = NULL, merged = NULL, decided_by = NULL, decided_at_us = NULL,
                       decided_left = NULL, decided_right = NULL
                     WHERE id = ?1 AND status = 'decided'",
                )?
                .execute(params![r.id, r.left.to_string(), r.right.to_string(), r.note])?;
            }
            for event in &c.audit {
                insert_audit(&tx, event)?;
            }
            if let Some((run, a)) = &c.accounting {
                tx.prepare_cached(
                    "UPDATE runs SET read = read + ?2, written = written + ?3, dead_lettered = dead_lettered + ?4, filtered = filtered + ?5 WHERE id = ?1",
                )?
                .execute(params![run, a.read as i64, a.written as i64, a.dead_lettered as i64, a.filtered as i64])?;
            }
            for l in &c.dead_letters {
                insert_dead_letter(&tx, l, now)?;
            }
            Ok(())
        })()
        .map_err(self.q("writing a sync commit"))?;
        tx.commit().map_err(self.q("committing sync state"))?;
        Ok(ids)
    }

    pub(crate) fn conflicts_impl(&self, f: &ConflictFilter) -> Result<Vec<Conflict>, StateError> {
        let conn = self.lock();
        let statuses = f.statuses.join(",");
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {CONFLICT_COLUMNS} FROM conflicts
                 WHERE (?1 IS NULL OR pipeline = ?1) AND (?2 IS NULL OR key = ?2)
                   AND (?3 = '' OR instr(',' || ?3 || ',', ',' || status || ',') > 0)
                 ORDER BY id"
            ))
            .map_err(self.q("listing conflicts"))?;
        stmt.query_map(params![f.pipeline, f.key, statuses], conflict_row)
            .map_err(self.q("listing conflicts"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.q("reading a conflict"))
    }

    pub(crate) fn conflict_impl(&self, id: i64) -> Result<Option<Conflict>, StateError> {
        self.lock()
            .query_row(
                &format!("SELECT {CONFLICT_COLUMNS} FROM conflicts WHERE id = ?1"),
                params![id],
                conflict_row,
            )
            .optional()
            .map_err(self.q("reading a conflict"))
    }

    pub(crate) fn decide_conflict_impl(
        &self,
        id: i64,
        d: &Decision,
        audit: &AuditEvent,
    ) -> Result<bool, StateError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction()
            .map_err(self.q("starting a conflict decision"))?;
        let changed = tx
            .execute(
                "UPDATE conflicts SET status = 'decided', decision = ?2, merged = ?3, decided_by = ?4, decided_at_us = ?5,
                   decided_left = ?6, decided_right = ?7, reopened = NULL
                 WHERE id = ?1 AND status = 'open'",
                params![
                    id,
                    d.decision,
                    d.merged.as_ref().map(|m| m.to_string()),
                    d.by,
                    now_us(),
                    d.left.to_string(),
                    d.right.to_string()
                ],
            )
            .map_err(self.q("deciding a conflict"))?;
        if changed == 1 {
            insert_audit(&tx, audit).map_err(self.q("writing an audit event"))?;
        }
        tx.commit()
            .map_err(self.q("committing a conflict decision"))?;
        Ok(changed == 1)
    }
}
