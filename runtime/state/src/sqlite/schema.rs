//! The SQLite schema of a ferry state database: its tables, the version
//! history, and the check at open that stamps a new or older file and
//! refuses one that is not ferry's, too new, or missing what ferry uses.

use rusqlite::{Connection, TransactionBehavior, params};

use super::SqliteState;
use crate::StateError;

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
pub(super) const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("conflicts", "decided_left", "TEXT"),
    ("conflicts", "decided_right", "TEXT"),
    ("conflicts", "reopened", "TEXT"),
];

/// Every table ferry uses and the columns it reads and writes.
pub(super) const TABLES: &[(&str, &[&str])] = &[
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

pub(super) const SCHEMA: &str = "
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

impl SqliteState {
    /// Creates the tables in a new file, stamps a file from before schema
    /// versions, and checks that the file holds ferry's tables as this ferry
    /// knows them.
    pub(super) fn check_schema(&self, conn: &mut Connection) -> Result<(), StateError> {
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
}

#[cfg(test)]
mod tests;
