//! The backend without a server: SQLite end to end on a temp file, and the
//! public types. PostgreSQL is tested against a real server in
//! runtime/cli/tests/integration/sql.rs.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::*;

const T: Duration = Duration::from_secs(5);

/// A fresh SQLite file path in a folder removed on drop.
struct TempDb {
    dir: PathBuf,
}

impl TempDb {
    fn new() -> TempDb {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ferry-sql-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDb { dir }
    }

    fn spec(&self, pool_size: u32) -> ConnectionSpec {
        ConnectionSpec {
            name: "local".into(),
            dialect: Dialect::Sqlite,
            url: self.dir.join("db.sqlite").to_string_lossy().into_owned(),
            password: None,
            tls: Tls::Disable,
            ca_file: None,
            pool_size,
            transaction_timeout: DEFAULT_TRANSACTION_TIMEOUT,
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn setup(hub: &SqlHub, spec: &ConnectionSpec) {
    hub.execute(
        spec,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, score REAL, \
         ok BOOLEAN, data BLOB, at TEXT, doc JSON)",
        vec![],
        T,
    )
    .unwrap();
}

#[test]
fn sqlite_round_trips_every_value() {
    let db = TempDb::new();
    let spec = db.spec(2);
    let hub = SqlHub::new();
    setup(&hub, &spec);
    let at = 1_795_773_600_123_456; // 2026-11-27T10:00:00.123456Z
    let changed = hub
        .execute(
            &spec,
            "INSERT INTO t (id, name, score, ok, data, at, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            vec![
                SqlValue::Int(1),
                SqlValue::Text("ada".into()),
                SqlValue::Float(2.5),
                SqlValue::Bool(true),
                SqlValue::Bytes(vec![0, 1, 255]),
                SqlValue::Timestamp(at),
                SqlValue::Json(r#"{"a":1}"#.into()),
            ],
            T,
        )
        .unwrap();
    assert_eq!(changed, 1);
    hub.execute(
        &spec,
        "INSERT INTO t (id, name, score, ok, data, at, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        vec![
            SqlValue::Int(2),
            SqlValue::Text("bob".into()),
            SqlValue::Null,
            SqlValue::Bool(false),
            SqlValue::Null,
            SqlValue::Null,
            SqlValue::Null,
        ],
        T,
    )
    .unwrap();
    let rows = hub
        .query(
            &spec,
            "SELECT id, name, score, ok, data, at, doc, id * 2, NULL FROM t ORDER BY id",
            vec![],
            T,
        )
        .unwrap();
    let types: Vec<_> = rows.columns.iter().map(|c| c.type_name.as_str()).collect();
    assert_eq!(
        types,
        [
            "INTEGER", "TEXT", "REAL", "BOOLEAN", "BLOB", "TEXT", "JSON", "INTEGER", "NULL"
        ]
    );
    assert_eq!(rows.columns[7].name, "id * 2");
    assert_eq!(
        rows.rows[0],
        vec![
            SqlValue::Int(1),
            SqlValue::Text("ada".into()),
            SqlValue::Float(2.5),
            SqlValue::Int(1),
            SqlValue::Bytes(vec![0, 1, 255]),
            SqlValue::Text("2026-11-27T10:00:00.123456Z".into()),
            SqlValue::Text(r#"{"a":1}"#.into()),
            SqlValue::Int(2),
            SqlValue::Null,
        ]
    );
    assert_eq!(rows.rows[1][2], SqlValue::Null);
    assert_eq!(rows.rows[1][3], SqlValue::Int(0));
    // A SELECT through execute changes nothing, a DDL statement neither.
    assert_eq!(hub.execute(&spec, "SELECT * FROM t", vec![], T).unwrap(), 0);
    assert_eq!(
        hub.execute(&spec, "CREATE INDEX t_score ON t (score)", vec![], T)
            .unwrap(),
        0
    );
    assert_eq!(
        hub.execute(&spec, "UPDATE t SET score = 1", vec![], T)
            .unwrap(),
        2
    );
}

#[test]
fn sqlite_errors_have_kinds_and_codes() {
    let db = TempDb::new();
    let spec = db.spec(2);
    let hub = SqlHub::new();
    setup(&hub, &spec);
    let insert = "INSERT INTO t (id, name) VALUES (?1, ?2)";
    hub.execute(
        &spec,
        insert,
        vec![SqlValue::Int(1), SqlValue::Text("a".into())],
        T,
    )
    .unwrap();
    let dup = hub
        .execute(
            &spec,
            insert,
            vec![SqlValue::Int(2), SqlValue::Text("a".into())],
            T,
        )
        .unwrap_err();
    assert_eq!(dup.kind, SqlErrorKind::Constraint);
    assert_eq!(dup.code.as_deref(), Some("SQLITE_CONSTRAINT_UNIQUE"));
    assert_eq!(
        dup.message,
        "connection `local`: UNIQUE constraint failed: t.name"
    );
    let pk = hub
        .execute(
            &spec,
            insert,
            vec![SqlValue::Int(1), SqlValue::Text("b".into())],
            T,
        )
        .unwrap_err();
    assert_eq!(pk.code.as_deref(), Some("SQLITE_CONSTRAINT_PRIMARYKEY"));
    let bad = hub
        .query(&spec, "SELECT * FROM nope", vec![], T)
        .unwrap_err();
    assert_eq!(bad.kind, SqlErrorKind::Failed);
    assert_eq!(bad.message, "connection `local`: no such table: nope");
    let count = hub
        .execute(&spec, insert, vec![SqlValue::Int(3)], T)
        .unwrap_err();
    assert_eq!(
        count.message,
        "connection `local`: the statement takes 2 parameters but got 1 value"
    );
    let relative = ConnectionSpec {
        url: "db.sqlite".into(),
        ..spec.clone()
    };
    let err = hub.query(&relative, "SELECT 1", vec![], T).unwrap_err();
    assert!(err.message.contains("absolute file path"), "{err}");
}

#[test]
fn sqlite_transactions() {
    let db = TempDb::new();
    let spec = db.spec(2);
    let hub = SqlHub::new();
    setup(&hub, &spec);
    let count = |hub: &SqlHub| match &hub
        .query(&spec, "SELECT count(*) FROM t", vec![], T)
        .unwrap()
        .rows[0][0]
    {
        SqlValue::Int(n) => *n,
        other => panic!("{other:?}"),
    };
    let insert = "INSERT INTO t (id, name) VALUES (?1, ?2)";

    // commit
    let mut tx = hub.begin(&spec, Isolation::Serializable, false, T).unwrap();
    tx.execute(
        insert,
        vec![SqlValue::Int(1), SqlValue::Text("a".into())],
        T,
    )
    .unwrap();
    let rows: Vec<Vec<SqlValue>> = (10..1010)
        .map(|i| vec![SqlValue::Int(i), SqlValue::Text(format!("n{i}"))])
        .collect();
    assert_eq!(tx.execute_many(insert, rows, T).unwrap(), 1000);
    tx.commit(T).unwrap();
    assert_eq!(count(&hub), 1001);
    let again = tx.execute(
        insert,
        vec![SqlValue::Int(2), SqlValue::Text("b".into())],
        T,
    );
    assert_eq!(
        again.unwrap_err().message,
        "connection `local`: transaction already finished"
    );
    assert!(tx.commit(T).is_err());
    assert!(tx.rollback(T).is_err());

    // rollback and drop
    let mut tx = hub
        .begin(&spec, Isolation::ReadCommitted, false, T)
        .unwrap();
    tx.execute(
        insert,
        vec![SqlValue::Int(2), SqlValue::Text("b".into())],
        T,
    )
    .unwrap();
    tx.rollback(T).unwrap();
    let mut tx = hub
        .begin(&spec, Isolation::ReadCommitted, false, T)
        .unwrap();
    tx.execute(
        insert,
        vec![SqlValue::Int(3), SqlValue::Text("c".into())],
        T,
    )
    .unwrap();
    drop(tx);
    assert_eq!(count(&hub), 1001);

    // a failed statement rolls the whole transaction back
    let mut tx = hub
        .begin(&spec, Isolation::ReadCommitted, false, T)
        .unwrap();
    tx.execute(
        insert,
        vec![SqlValue::Int(4), SqlValue::Text("d".into())],
        T,
    )
    .unwrap();
    let err = tx
        .execute(
            insert,
            vec![SqlValue::Int(5), SqlValue::Text("a".into())],
            T,
        )
        .unwrap_err();
    assert_eq!(err.kind, SqlErrorKind::Constraint);
    assert!(!tx.is_open());
    assert!(
        tx.commit(T)
            .unwrap_err()
            .message
            .contains("rolled back after a statement failed")
    );
    tx.rollback(T).unwrap();
    assert_eq!(count(&hub), 1001);

    // read-only
    let mut tx = hub.begin(&spec, Isolation::ReadCommitted, true, T).unwrap();
    assert_eq!(
        tx.query("SELECT count(*) FROM t", vec![], T).unwrap().rows[0][0],
        SqlValue::Int(1001)
    );
    let err = tx
        .execute(
            insert,
            vec![SqlValue::Int(6), SqlValue::Text("e".into())],
            T,
        )
        .unwrap_err();
    assert!(
        err.message.contains("readonly")
            || err.message.contains("read-only")
            || err.message.contains("query_only"),
        "{err}"
    );
    drop(tx);
    // query_only was reset on the pooled connections
    for i in 0..3 {
        hub.execute(
            &spec,
            insert,
            vec![SqlValue::Int(5000 + i), SqlValue::Text(format!("x{i}"))],
            T,
        )
        .unwrap();
    }
}

#[test]
fn sqlite_pool_limit_busy_and_timeouts() {
    let db = TempDb::new();
    let spec = db.spec(1);
    let hub = SqlHub::new();
    setup(&hub, &spec);
    // The only connection is in a transaction: another call waits, then
    // gives up as retryable.
    let tx = hub
        .begin(&spec, Isolation::ReadCommitted, false, T)
        .unwrap();
    let start = Instant::now();
    let err = hub
        .query(&spec, "SELECT 1", vec![], Duration::from_millis(200))
        .unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert_eq!(err.kind, SqlErrorKind::Retryable);
    assert!(
        err.message
            .contains("waiting for a free connection (pool_size 1)"),
        "{err}"
    );
    drop(tx);
    hub.query(&spec, "SELECT 1", vec![], T).unwrap();

    // Two connections: a writer holds the lock, the other is busy.
    let spec2 = db.spec(2);
    let tx = hub
        .begin(&spec2, Isolation::ReadCommitted, false, T)
        .unwrap();
    let err = hub
        .execute(
            &spec2,
            "INSERT INTO t (id, name) VALUES (1, 'a')",
            vec![],
            Duration::from_millis(200),
        )
        .unwrap_err();
    assert_eq!(err.kind, SqlErrorKind::Retryable, "{err}");
    assert_eq!(err.code.as_deref(), Some("SQLITE_BUSY"));
    drop(tx);

    // A statement past its deadline is interrupted.
    let start = Instant::now();
    let err = hub
        .query(
            &spec2,
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
            vec![],
            Duration::from_millis(300),
        )
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(3));
    assert_eq!(err.kind, SqlErrorKind::Retryable);
    assert_eq!(err.message, "connection `local`: timed out after 300ms");
    hub.query(&spec2, "SELECT 1", vec![], T).unwrap();
}

#[test]
fn transaction_control_is_the_interfaces_business() {
    let db = TempDb::new();
    let spec = db.spec(1);
    let hub = SqlHub::new();
    for sql in [
        "BEGIN",
        "  begin immediate",
        "-- c\n/* d */ COMMIT",
        "rollback",
        "END",
        "SAVEPOINT a",
    ] {
        let err = hub.execute(&spec, sql, vec![], T).unwrap_err();
        assert_eq!(err.kind, SqlErrorKind::Failed);
        assert!(
            err.message.contains("cannot run as a statement"),
            "{sql}: {err}"
        );
    }
    hub.execute(&spec, "CREATE TABLE beginnings (x)", vec![], T)
        .unwrap();
    let mut tx = hub
        .begin(&spec, Isolation::ReadCommitted, false, T)
        .unwrap();
    assert!(tx.execute("COMMIT", vec![], T).is_err());
    assert!(
        tx.is_open(),
        "a refused statement does not end the transaction"
    );
    tx.execute("SAVEPOINT a", vec![], T).unwrap();
    tx.execute("INSERT INTO beginnings VALUES (1)", vec![], T)
        .unwrap();
    tx.execute("RELEASE a", vec![], T).unwrap();
    tx.commit(T).unwrap();
    assert_eq!(first_keyword("/* x */ -- y\n\t select 1"), "SELECT");
    assert_eq!(first_keyword("-- only a comment"), "");
}

#[test]
fn specs_hide_passwords_and_parse_isolation() {
    let spec = ConnectionSpec {
        name: "ops".into(),
        dialect: Dialect::Postgres,
        url: "postgres://ferry@db:5432/ops".into(),
        password: Some("hunter2".into()),
        tls: Tls::VerifyFull,
        ca_file: None,
        pool_size: 4,
        transaction_timeout: DEFAULT_TRANSACTION_TIMEOUT,
    };
    let debug = format!("{spec:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("<redacted>"));
    assert_eq!(
        "read-committed".parse::<Isolation>(),
        Ok(Isolation::ReadCommitted)
    );
    assert_eq!(
        "REPEATABLE READ".parse::<Isolation>(),
        Ok(Isolation::RepeatableRead)
    );
    assert_eq!(
        "serializable".parse::<Isolation>(),
        Ok(Isolation::Serializable)
    );
    assert!("snapshot".parse::<Isolation>().is_err());
    let err = SqlError::new(SqlErrorKind::Constraint, "ops", "duplicate").with_code("23505");
    assert_eq!(err.to_string(), "connection `ops`: duplicate [23505]");
    fn send_sync<T: Send + Sync>() {}
    fn send_static<T: Send + 'static>() {}
    send_sync::<SqlHub>();
    send_static::<SqlTransaction>();
}

fn int_of(rows: &SqlRows) -> i64 {
    match &rows.rows[0][0] {
        SqlValue::Int(n) => *n,
        other => panic!("{other:?}"),
    }
}

/// A granted SQLite connection reaches its own database
/// and nothing else. Each attempt is answered `denied`, saying what was
/// refused; the files stay untouched.
#[test]
fn sqlite_connections_refuse_attach_vacuum_and_unlisted_pragmas() {
    let db = TempDb::new();
    let spec = db.spec(1);
    let hub = SqlHub::new();
    hub.execute(
        &spec,
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)",
        vec![],
        T,
    )
    .unwrap();
    let other = db.dir.join("other.sqlite");
    {
        let c = rusqlite::Connection::open(&other).unwrap();
        c.execute_batch("CREATE TABLE secrets (secret TEXT); INSERT INTO secrets VALUES ('x')")
            .unwrap();
    }
    let copy = db.dir.join("copy.sqlite");
    let path = |p: &std::path::Path| SqlValue::Text(p.to_string_lossy().into_owned());
    let refused: Vec<(&str, Vec<SqlValue>, &str)> = vec![
        ("ATTACH DATABASE ?1 AS o", vec![path(&other)], "attaching"),
        (
            "ATTACH DATABASE 'x' || ?1 AS o",
            vec![path(&other)],
            "attaching",
        ),
        ("ATTACH ':memory:' AS m", vec![], "attaching"),
        ("VACUUM INTO ?1", vec![path(&copy)], "attaching"),
        ("VACUUM", vec![], "attaching"),
        ("DETACH DATABASE main", vec![], "`DETACH main` is refused"),
        (
            "PRAGMA database_list",
            vec![],
            "`PRAGMA database_list` is refused",
        ),
        (
            "SELECT file FROM pragma_database_list",
            vec![],
            "`PRAGMA database_list` is refused",
        ),
        (
            "PRAGMA synchronous = OFF",
            vec![],
            "`PRAGMA synchronous` is refused",
        ),
        (
            "PRAGMA journal_mode = DELETE",
            vec![],
            "`PRAGMA journal_mode` is refused",
        ),
        (
            "PRAGMA query_only = ON",
            vec![],
            "`PRAGMA query_only` is refused",
        ),
        (
            "SELECT load_extension('/nonexistent.so')",
            vec![],
            "`load_extension()` is refused",
        ),
    ];
    for (sql, params, what) in refused {
        for via_query in [false, true] {
            let err = if via_query {
                hub.query(&spec, sql, params.clone(), T).unwrap_err()
            } else {
                hub.execute(&spec, sql, params.clone(), T).unwrap_err()
            };
            assert_eq!(err.kind, SqlErrorKind::Denied, "{sql}: {err}");
            assert!(err.message.contains(what), "{sql}: {err}");
            assert!(err.message.starts_with("connection `local`: "), "{err}");
            assert!(
                err.message.contains("plugins may"),
                "the message says plugins may not: {err}"
            );
        }
    }
    assert!(!copy.exists(), "VACUUM INTO wrote a file");
    // Inside a transaction too; the refusal ends the transaction like any
    // failed statement.
    let mut tx = hub
        .begin(&spec, Isolation::ReadCommitted, false, T)
        .unwrap();
    let err = tx
        .execute("ATTACH DATABASE ?1 AS o", vec![path(&other)], T)
        .unwrap_err();
    assert_eq!(err.kind, SqlErrorKind::Denied, "{err}");
    assert!(!tx.is_open());
    drop(tx);
    // What the connectors read works: the schema pragmas, as functions and
    // as statements.
    let columns = hub
        .query(
            &spec,
            "SELECT name FROM pragma_table_xinfo(?1, ?2)",
            vec![
                SqlValue::Text("items".into()),
                SqlValue::Text("main".into()),
            ],
            T,
        )
        .unwrap();
    assert_eq!(columns.rows.len(), 2);
    for sql in [
        "PRAGMA table_info(items)",
        "PRAGMA index_list(items)",
        "SELECT * FROM pragma_index_list('items') AS il, pragma_index_info(il.name) AS ii",
        "PRAGMA foreign_key_list(items)",
    ] {
        hub.query(&spec, sql, vec![], T)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    // The host's own PRAGMA query_only still runs (a read-only transaction)
    // and is reset.
    let mut ro = hub.begin(&spec, Isolation::ReadCommitted, true, T).unwrap();
    assert!(
        ro.execute("INSERT INTO items VALUES (1, 'a')", vec![], T)
            .is_err()
    );
    drop(ro);
    hub.execute(&spec, "INSERT INTO items VALUES (1, 'a')", vec![], T)
        .unwrap();
    // The connection still works after all the refusals.
    assert_eq!(
        int_of(
            &hub.query(&spec, "SELECT count(*) FROM items", vec![], T)
                .unwrap()
        ),
        1
    );
}

/// A statement that leaves the connection inside a
/// transaction (here `SAVEPOINT` and `BEGIN` after a leading `;`, which the
/// text check reads as no keyword at all) is rolled back and denied, and
/// the next call on the (only) pooled connection commits as acknowledged.
#[test]
fn sqlite_a_transaction_left_open_by_a_statement_is_rolled_back_and_denied() {
    let db = TempDb::new();
    let spec = db.spec(1);
    let hub = SqlHub::new();
    hub.execute(&spec, "CREATE TABLE t (id INTEGER)", vec![], T)
        .unwrap();
    let mut acknowledged = 0;
    for (i, hidden) in [";BEGIN", "; SAVEPOINT s", ";;begin immediate"]
        .iter()
        .enumerate()
    {
        let err = hub.execute(&spec, hidden, vec![], T).unwrap_err();
        assert_eq!(err.kind, SqlErrorKind::Denied, "{hidden:?}: {err}");
        assert!(err.message.contains("left a transaction open"), "{err}");
        assert_eq!(
            hub.execute(
                &spec,
                "INSERT INTO t VALUES (?1)",
                vec![SqlValue::Int(i as i64)],
                T
            )
            .unwrap(),
            1
        );
        acknowledged += 1;
    }
    let err = hub.query(&spec, ";BEGIN", vec![], T).unwrap_err();
    assert_eq!(err.kind, SqlErrorKind::Denied, "{err}");
    // Every acknowledged write is there for another connection to see.
    let other = rusqlite::Connection::open(db.dir.join("db.sqlite")).unwrap();
    let n: i64 = other
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, acknowledged);
}

/// Results are bounded inside the host. A
/// value larger than the limit is stopped by `SQLITE_LIMIT_LENGTH`, many
/// rows by the byte count while stepping; both fail naming the limit and
/// the fix, and the connection serves the next call.
#[test]
fn sqlite_results_are_bounded_by_the_plugins_limit() {
    let db = TempDb::new();
    let spec = db.spec(1);
    let hub = SqlHub::new();
    let limits = SqlLimits {
        max_result_bytes: 1 << 20,
    };
    let one_value = "SELECT zeroblob(900000000)";
    let many_rows = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50) \
                     SELECT zeroblob(900000000) FROM c";
    let small_rows = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                      WHERE x < 100000) SELECT x, zeroblob(100) FROM c";
    for sql in [one_value, many_rows] {
        let err = hub.query_with(&spec, sql, vec![], T, limits).unwrap_err();
        assert_eq!(err.kind, SqlErrorKind::Failed, "{err}");
        assert_eq!(err.code.as_deref(), Some("SQLITE_TOOBIG"), "{err}");
        assert!(err.message.contains("larger than 1 MiB"), "{err}");
        assert!(err.message.contains("max_output_mb"), "{err}");
    }
    let err = hub
        .query_with(&spec, small_rows, vec![], T, limits)
        .unwrap_err();
    assert_eq!(err.kind, SqlErrorKind::Failed, "{err}");
    assert!(
        err.message.contains("the result is larger than 1 MiB")
            && err.message.contains("LIMIT")
            && err.message.contains("max_output_mb"),
        "{err}"
    );
    // Inside a transaction the same, and execute builds nothing larger.
    let mut tx = hub
        .begin_with(&spec, Isolation::ReadCommitted, true, T, limits)
        .unwrap();
    assert!(tx.query(small_rows, vec![], T).is_err());
    let err = hub
        .execute_with(
            &spec,
            "SELECT length(zeroblob(900000000) || 'x')",
            vec![],
            T,
            limits,
        )
        .unwrap_err();
    assert_eq!(err.code.as_deref(), Some("SQLITE_TOOBIG"), "{err}");
    // What fits comes back whole, and a parameter larger than the limit
    // may still be written.
    let rows = hub
        .query_with(&spec, "SELECT zeroblob(1000)", vec![], T, limits)
        .unwrap();
    assert_eq!(rows.rows[0][0], SqlValue::Bytes(vec![0; 1000]));
    hub.execute(&spec, "CREATE TABLE big (b BLOB)", vec![], T)
        .unwrap();
    hub.execute_with(
        &spec,
        "INSERT INTO big VALUES (?1)",
        vec![SqlValue::Bytes(vec![7; 3 << 20])],
        T,
        limits,
    )
    .unwrap();
    // A stored value over the limit cannot be loaded, not even to cut it.
    let err = hub
        .query_with(&spec, "SELECT substr(b, 1, 10) FROM big", vec![], T, limits)
        .unwrap_err();
    assert_eq!(err.code.as_deref(), Some("SQLITE_TOOBIG"), "{err}");
}

/// A transaction held past its connection's
/// `transaction_timeout` is rolled back and its connection given back,
/// while its holder does nothing; the holder's next call says why.
#[test]
fn sqlite_a_transaction_held_too_long_is_rolled_back_and_its_connection_returned() {
    let db = TempDb::new();
    let spec = ConnectionSpec {
        transaction_timeout: Duration::from_millis(300),
        ..db.spec(1)
    };
    let hub = SqlHub::new();
    hub.execute(&spec, "CREATE TABLE t (id INTEGER)", vec![], T)
        .unwrap();
    let mut held = hub
        .begin(&spec, Isolation::ReadCommitted, false, T)
        .unwrap();
    let watch = held.watch();
    held.execute("INSERT INTO t VALUES (1)", vec![], T).unwrap();
    // The pool's only connection is held: this call waits until the
    // reaper takes it back, then finds the insert rolled back.
    let start = Instant::now();
    let rows = hub
        .query(
            &spec,
            "SELECT count(*) FROM t",
            vec![],
            Duration::from_secs(5),
        )
        .unwrap();
    let waited = start.elapsed();
    assert_eq!(int_of(&rows), 0);
    assert!(waited >= Duration::from_millis(200), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert!(!watch.holds_connection());
    assert!(!held.is_open());
    let err = held
        .execute("INSERT INTO t VALUES (2)", vec![], T)
        .unwrap_err();
    assert_eq!(err.kind, SqlErrorKind::Failed);
    assert!(
        err.message
            .contains("rolled it back after it had been open for 300ms")
            && err.message.contains("transaction_timeout_ms"),
        "{err}"
    );
    assert!(held.commit(T).is_err());
    held.rollback(T).unwrap();
    // A transaction that finishes in time is untouched.
    let mut quick = hub
        .begin(&spec, Isolation::ReadCommitted, false, T)
        .unwrap();
    quick
        .execute("INSERT INTO t VALUES (3)", vec![], T)
        .unwrap();
    quick.commit(T).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        int_of(
            &hub.query(&spec, "SELECT count(*) FROM t", vec![], T)
                .unwrap()
        ),
        1
    );
    // A call that finds its transaction past the limit rolls it back
    // itself (the reaper may not have run yet).
    let mut late = hub
        .begin(&spec, Isolation::ReadCommitted, false, T)
        .unwrap();
    std::thread::sleep(Duration::from_millis(350));
    assert!(late.execute("INSERT INTO t VALUES (4)", vec![], T).is_err());
    drop(late);
    assert_eq!(
        int_of(
            &hub.query(&spec, "SELECT count(*) FROM t", vec![], T)
                .unwrap()
        ),
        1
    );
}
