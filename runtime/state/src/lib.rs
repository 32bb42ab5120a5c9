//! Durable state of ferry pipelines: source checkpoints, the dead-letter
//! store and the record accounting.
//!
//! It also keeps the audit log: every access a plugin was refused at run
//! time.
//!
//! Everything the runtime must remember across restarts goes through the
//! [`StateStore`] trait. The default backend, [`SqliteState`], is an embedded
//! SQLite database (WAL mode, `synchronous = FULL`), so a single-node ferry
//! needs no server. A cluster backend (NATS JetStream) will implement the same
//! trait later.
//!
//! Why one trait with coarse, batch-sized operations: the pipeline commits a
//! checkpoint together with the accounting it closes in one transaction, and
//! writes a whole batch of dead letters in one transaction, so a crash leaves
//! either the old or the new state and an fdatasync is paid per batch, never
//! per record.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

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
        "state database {path} is damaged ({detail}); move it aside to start over (records would be read again from the start)"
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What the integrity check said.
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
    /// Its id in the store (0 before it is stored).
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

/// Something a plugin was refused at run time, for security review.
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

/// Which dead letters to list.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterFilter {
    /// Only this pipeline.
    pub pipeline: Option<String>,
    /// Only this stage.
    pub stage: Option<String>,
    /// Only this reason category.
    pub reason: Option<String>,
    /// At most this many, newest last.
    pub limit: Option<usize>,
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

/// Durable state behind one interface, so backends can change.
pub trait StateStore: Send + Sync {
    /// The last committed checkpoint of a pipeline's source.
    fn checkpoint(&self, pipeline: &str, source: &str) -> Result<Option<Vec<u8>>, StateError>;

    /// Commits a source checkpoint together with the accounting of the records
    /// it closes, in one transaction: both land or neither does.
    fn commit(
        &self,
        run: i64,
        pipeline: &str,
        source: &str,
        checkpoint: &[u8],
        closed: &Accounting,
    ) -> Result<(), StateError>;

    /// Stores dead letters in one transaction.
    fn add_dead_letters(&self, letters: &[DeadLetter]) -> Result<(), StateError>;

    /// Lists dead letters, oldest first.
    fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StateError>;

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

    /// Records a run-time denial in the audit log.
    fn record_audit(&self, event: &AuditEvent) -> Result<(), StateError>;

    /// The audit log, oldest first, for one pipeline or all.
    fn audit_events(&self, pipeline: Option<&str>) -> Result<Vec<AuditEvent>, StateError>;
}

/// The embedded SQLite backend.
pub struct SqliteState {
    path: PathBuf,
    conn: Mutex<Connection>,
}

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
";

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl SqliteState {
    /// Opens (or creates) the database at `path`, creating its folder, and
    /// checks its integrity.
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
        let conn = self.lock();
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(self.q("setting WAL mode"))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(self.q("setting synchronous mode"))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(self.q("setting busy timeout"))?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(self.q("checking integrity"))?;
        if check != "ok" {
            return Err(StateError::Corrupt {
                path: self.path.clone(),
                detail: check,
            });
        }
        conn.execute_batch(SCHEMA)
            .map_err(self.q("creating tables"))?;
        Ok(())
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

    fn commit(
        &self,
        run: i64,
        pipeline: &str,
        source: &str,
        checkpoint: &[u8],
        closed: &Accounting,
    ) -> Result<(), StateError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(self.q("starting a commit"))?;
        tx.execute(
            "INSERT INTO checkpoints (pipeline, source, checkpoint, updated_at_us) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (pipeline, source) DO UPDATE SET checkpoint = excluded.checkpoint, updated_at_us = excluded.updated_at_us",
            params![pipeline, source, checkpoint, now_us()],
        )
        .map_err(self.q("writing a checkpoint"))?;
        tx.execute(
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
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO dead_letters (pipeline, stage, plugin_digest, reason, detail, key, record, attempts, created_at_us)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(self.q("preparing a dead-letter write"))?;
            for l in letters {
                let created = if l.created_at_us == 0 {
                    now_us()
                } else {
                    l.created_at_us
                };
                stmt.execute(params![
                    l.pipeline,
                    l.stage,
                    l.plugin_digest,
                    l.reason,
                    l.detail,
                    l.key,
                    l.record.to_string(),
                    l.attempts,
                    created
                ])
                .map_err(self.q("writing a dead letter"))?;
            }
        }
        tx.commit().map_err(self.q("committing dead letters"))
    }

    fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StateError> {
        let conn = self.lock();
        let limit = filter.limit.map(|l| l as i64).unwrap_or(-1);
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {LETTER_COLUMNS} FROM dead_letters
                 WHERE (?1 IS NULL OR pipeline = ?1) AND (?2 IS NULL OR stage = ?2) AND (?3 IS NULL OR reason = ?3)
                 ORDER BY id LIMIT ?4"
            ))
            .map_err(self.q("listing dead letters"))?;
        let rows = stmt
            .query_map(
                params![filter.pipeline, filter.stage, filter.reason, limit],
                |r| self.row_to_letter(r),
            )
            .map_err(self.q("listing dead letters"))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(self.decode(row.map_err(self.q("reading a dead letter"))?)?);
        }
        Ok(out)
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

    fn record_audit(&self, event: &AuditEvent) -> Result<(), StateError> {
        let at = if event.at_us == 0 {
            now_us()
        } else {
            event.at_us
        };
        self.lock()
            .execute(
                "INSERT INTO audit_events (at_us, pipeline, stage, plugin_digest, capability, target, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![at, event.pipeline, event.stage, event.plugin_digest, event.capability, event.target, event.detail],
            )
            .map_err(self.q("writing an audit event"))?;
        Ok(())
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
            s.commit(run, "p", "src", b"pos-10", &a)?;
            s.commit(
                run,
                "p",
                "src",
                b"pos-12",
                &Accounting {
                    read: 2,
                    written: 2,
                    ..Default::default()
                },
            )?;
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
}
