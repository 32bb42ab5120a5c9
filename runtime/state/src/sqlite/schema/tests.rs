//! Tests of crash safety and the schema check at open: damaged, truncated,
//! foreign and newer files are refused; older files are brought up to date.

use std::path::{Path, PathBuf};

use super::*;
use crate::sqlite::tests::{letter, temp};
use crate::{
    Accounting, AuditEvent, ConflictFilter, DeadLetter, DeadLetterFilter, PipelineCommit,
    RunStatus, StateStore,
};

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
    s.finish_run(run, &RunStatus::Finished).expect("finish");
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
fn a_version_4_file_gets_the_sink_tokens_table_and_keeps_its_checkpoints() -> Result<(), StateError>
{
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
fn a_version_3_file_gets_the_decision_columns_and_keeps_its_conflicts() -> Result<(), StateError> {
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
            c.decision.map(crate::Choice::as_str),
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
