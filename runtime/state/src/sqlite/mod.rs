//! The embedded SQLite backend, [`SqliteState`]: one file, WAL mode with
//! `synchronous = FULL`, checked at open (see the crate docs for what that
//! guarantees). The schema and its check live in `schema`, the two-way sync
//! tables in `sync`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::{
    Accounting, AuditEvent, Conflict, ConflictFilter, DeadLetter, DeadLetterFilter, Decision,
    MAX_DETAIL_BYTES, PURGE_CAPABILITY, PipelineCommit, REPLAY_CAPABILITY, Replayed, RunRecord,
    RunStatus, ScheduledOutcome, ScheduledRun, StateError, StateStore, SyncCommit, now_us,
};

mod schema;
mod sync;
mod values;

pub use schema::{APPLICATION_ID, SCHEMA_VERSION};

/// The embedded SQLite backend.
pub struct SqliteState {
    path: PathBuf,
    conn: Mutex<Connection>,
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
                            cap_detail(&l.detail),
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
            insert_dead_letter(tx, l, now).map_err(self.q("writing a dead letter"))?;
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
                insert_dead_letter(&tx, l, now).map_err(self.q("writing a dead letter"))?;
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
            "INSERT INTO runs (pipeline, started_at_us, status) VALUES (?1, ?2, ?3)",
            params![pipeline, now_us(), RunStatus::Running],
        )
        .map_err(self.q("starting a run"))?;
        Ok(conn.last_insert_rowid())
    }

    fn finish_run(&self, run: i64, status: &RunStatus) -> Result<(), StateError> {
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
            "UPDATE schedule_runs SET outcome = ?2 WHERE pipeline = ?1 AND finished_at_us IS NULL",
            params![pipeline, ScheduledOutcome::Interrupted],
        )
        .map_err(self.q(what))?;
        tx.execute(
            "INSERT INTO schedule_runs (pipeline, schedule, due_at_us, missed, started_at_us, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                pipeline,
                schedule,
                due_at_us,
                i64::try_from(missed).unwrap_or(i64::MAX),
                started_at_us,
                ScheduledOutcome::Running
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
        outcome: &ScheduledOutcome,
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
        insert_audit(&tx, event).map_err(self.q("writing an audit event"))?;
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
            insert_audit(&tx, event).map_err(self.q("writing an audit event"))?;
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
mod tests;
