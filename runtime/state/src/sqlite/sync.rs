//! SQLite storage of two-way sync state: the per-key states, the conflict
//! queue and the transaction of a [`SyncCommit`].

use rusqlite::{OptionalExtension, params};

use super::{SqliteState, insert_audit, insert_dead_letter};
use crate::{
    AuditEvent, Conflict, ConflictFilter, ConflictStatus, Decision, StateError, SyncCommit, now_us,
};

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
                    "INSERT INTO conflicts (status, pipeline, key, left_version, right_version, ancestor, strategy, reason, detected_at_us)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    ConflictStatus::Open,
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
                    "UPDATE conflicts SET left_version = ?2, right_version = ?3 WHERE id = ?1 AND status = ?4",
                )?
                .execute(params![id, left.to_string(), right.to_string(), ConflictStatus::Open])?;
            }
            for id in &c.resolved {
                tx.prepare_cached(
                    "UPDATE conflicts SET status = ?3, resolved_at_us = ?2 WHERE id = ?1",
                )?
                .execute(params![id, now, ConflictStatus::Resolved])?;
            }
            for r in &c.reopen {
                tx.prepare_cached(
                    "UPDATE conflicts SET status = ?5, left_version = ?2, right_version = ?3, reopened = ?4,
                       decision = NULL, merged = NULL, decided_by = NULL, decided_at_us = NULL,
                       decided_left = NULL, decided_right = NULL
                     WHERE id = ?1 AND status = ?6",
                )?
                .execute(params![
                    r.id,
                    r.left.to_string(),
                    r.right.to_string(),
                    r.note,
                    ConflictStatus::Open,
                    ConflictStatus::Decided
                ])?;
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
        let statuses = f
            .statuses
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",");
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
                "UPDATE conflicts SET status = ?8, decision = ?2, merged = ?3, decided_by = ?4, decided_at_us = ?5,
                   decided_left = ?6, decided_right = ?7, reopened = NULL
                 WHERE id = ?1 AND status = ?9",
                params![
                    id,
                    d.decision,
                    d.merged.as_ref().map(|m| m.to_string()),
                    d.by,
                    now_us(),
                    d.left.to_string(),
                    d.right.to_string(),
                    ConflictStatus::Decided,
                    ConflictStatus::Open
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
