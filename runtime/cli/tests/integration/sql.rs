//! The SQL backend (`ferry_host::sql`, the `ferry-sql` crate) against a real PostgreSQL
//! server (support/pg.rs) and a temp SQLite file: type mappings both ways,
//! errors, transactions, pipelining, timeouts, the pool limit, TLS.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use ferry_host::sql::{
    ConnectionSpec, Dialect, Isolation, SqlErrorKind, SqlHub, SqlRows, SqlValue, Tls,
};

use crate::support::pg::{self, Postgres};

const T: Duration = Duration::from_secs(10);

fn spec_for(url: String, pool_size: u32) -> ConnectionSpec {
    ConnectionSpec {
        name: "pg".into(),
        dialect: Dialect::Postgres,
        url,
        password: None,
        tls: Tls::Disable,
        ca_file: None,
        pool_size,
        transaction_timeout: ferry_host::sql::DEFAULT_TRANSACTION_TIMEOUT,
    }
}

/// A fresh database on the shared server and a spec for it.
fn fresh(hint: &str, pool_size: u32) -> (&'static Postgres, String, ConnectionSpec) {
    let server = pg::server();
    let db = server.create_database(hint);
    let spec = spec_for(server.url(&db), pool_size);
    (server, db, spec)
}

fn text(s: &str) -> SqlValue {
    SqlValue::Text(s.into())
}

fn column_types(rows: &SqlRows) -> Vec<&str> {
    rows.columns.iter().map(|c| c.type_name.as_str()).collect()
}

/// 2026-11-27T10:00:00.123456Z
const AT: i64 = 1_795_773_600_123_456;

#[test]
fn postgres_values_round_trip_both_ways() {
    let (server, db, spec) = fresh("sql_types", 2);
    // A session time zone other than UTC must not change what is bound or
    // read (the binary format is UTC).
    server.psql(
        &db,
        &format!(
            "ALTER DATABASE \"{db}\" SET timezone = 'America/New_York';
             CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
             CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
             CREATE TABLE v (
                 id int PRIMARY KEY, b bool, i2 int2, i4 int4, i8 int8, o oid,
                 f4 float4, f8 float8, n numeric, t text, vc varchar(20), bc char(5),
                 nm name, e mood, ba bytea, ts timestamp, tstz timestamptz, d date,
                 tm time, u uuid, j json, jb jsonb, lsn pg_lsn, dom posint)"
        ),
    );
    let hub = SqlHub::new();
    let insert = "INSERT INTO v VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
                  $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)";
    // Every column from the value kind that reads back from it.
    let natural = vec![
        SqlValue::Int(1),
        SqlValue::Bool(true),
        SqlValue::Int(-32768),
        SqlValue::Int(2_147_483_647),
        SqlValue::Int(i64::MIN),
        SqlValue::Int(4_294_967_295),
        SqlValue::Float(1.5),
        SqlValue::Float(-2.25e300),
        text("-123456789012345678901234567890.123456789"),
        text("héllo, wörld"),
        text("varchar"),
        text("abc  "),
        text("a_name"),
        text("happy"),
        SqlValue::Bytes(vec![0, 1, 2, 254, 255]),
        SqlValue::Timestamp(AT),
        SqlValue::Timestamp(AT),
        text("2026-11-27"),
        text("10:00:00.5"),
        text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        SqlValue::Json(r#"{"b": [1, 2], "a": null}"#.into()),
        SqlValue::Json(r#"{"a": null, "b": [1, 2]}"#.into()),
        text("16/B374D848"),
        SqlValue::Int(42),
    ];
    // time has no binding from text in the mapping: cast in the statement.
    let insert_natural = insert.replace("$19", "$19::text::time");
    assert_eq!(
        hub.execute(&spec, &insert_natural, natural.clone(), T)
            .unwrap(),
        1
    );
    // All NULL.
    let mut nulls = vec![SqlValue::Null; 24];
    nulls[0] = SqlValue::Int(2);
    assert_eq!(hub.execute(&spec, insert, nulls.clone(), T).unwrap(), 1);

    let rows = hub
        .query(&spec, "SELECT * FROM v ORDER BY id", vec![], T)
        .unwrap();
    assert_eq!(
        column_types(&rows),
        [
            "int4",
            "bool",
            "int2",
            "int4",
            "int8",
            "oid",
            "float4",
            "float8",
            "numeric",
            "text",
            "varchar",
            "bpchar",
            "name",
            "mood",
            "bytea",
            "timestamp",
            "timestamptz",
            "date",
            "time",
            "uuid",
            "json",
            "jsonb",
            "pg_lsn",
            "int4" // a domain's result column is described as its base type
        ]
    );
    assert_eq!(rows.columns[9].name, "t");
    assert_eq!(rows.rows.len(), 2);
    assert_eq!(rows.rows[0], natural, "values read back as bound");
    assert_eq!(rows.rows[1], nulls);

    // What the server stored, in its own text form.
    let stored = server.psql(
        &db,
        "SET timezone = 'UTC';
         SELECT concat_ws('|', n, ts, tstz, d, tm, u, jb, lsn, encode(ba, 'hex'), i8, o)
         FROM v WHERE id = 1",
    );
    assert_eq!(
        stored.trim(),
        "-123456789012345678901234567890.123456789|2026-11-27 10:00:00.123456|\
         2026-11-27 10:00:00.123456+00|2026-11-27|10:00:00.5|\
         a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|{\"a\": null, \"b\": [1, 2]}|16/B374D848|\
         000102feff|-9223372036854775808|4294967295"
    );

    // Conversions into other server types.
    hub.execute(
        &spec,
        "INSERT INTO v (id, i2, i4, i8, f4, f8, n, t, b, u, d, ts, tstz, j, jb, e, dom) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
        vec![
            SqlValue::Int(3),
            text("12"),                               // text -> int2
            text(" -7 "),                             // text -> int4
            text("9000000000"),                       // text -> int8
            SqlValue::Int(3),                         // int -> float4
            text("2.5"),                              // text -> float8
            SqlValue::Int(-42),                       // int -> numeric
            SqlValue::Int(77),                        // int -> text
            text("yes"),                              // text -> bool
            text("A0EEBC999C0B4EF8BB6D6BB9BD380A11"), // text -> uuid
            SqlValue::Timestamp(AT),                  // timestamp -> date
            text("2026-11-27T12:00:00.123456+02:00"), // text -> timestamp
            text("2026-11-27 05:00:00.123456-05"),    // text -> timestamptz
            text("[1, 2]"),                           // text -> json
            text("{\"k\": 1}"),                       // text -> jsonb
            text("sad"),                              // text -> enum
            text("5"),                                // text -> domain over int4
        ],
        T,
    )
    .unwrap();
    let row = &hub
        .query(
            &spec,
            "SELECT i2, i4, i8, f4, f8, n, t, b, u, d, ts, tstz, j, jb, e, dom FROM v WHERE id = 3",
            vec![],
            T,
        )
        .unwrap()
        .rows[0];
    assert_eq!(
        row,
        &vec![
            SqlValue::Int(12),
            SqlValue::Int(-7),
            SqlValue::Int(9_000_000_000),
            SqlValue::Float(3.0),
            SqlValue::Float(2.5),
            text("-42"),
            text("77"),
            SqlValue::Bool(true),
            text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            text("2026-11-27"),
            SqlValue::Timestamp(AT),
            SqlValue::Timestamp(AT),
            SqlValue::Json("[1, 2]".into()),
            SqlValue::Json("{\"k\": 1}".into()),
            text("sad"),
            SqlValue::Int(5),
        ]
    );

    // numeric, exactly, both ways.
    for n in [
        "0",
        "-0.000001",
        "1.50",
        "99999999999999999999999999999999999999999999.99999999999999999999",
        "-123456789.000000001",
        "10000",
        "NaN",
    ] {
        let back = hub
            .query(
                &spec,
                "SELECT $1::numeric AS n, ($1::numeric)::text AS t",
                vec![text(n)],
                T,
            )
            .unwrap();
        assert_eq!(back.rows[0], vec![text(n), text(n)], "numeric {n}");
    }
    // Decoded from the binary format exactly as the server prints it.
    let exprs = [
        "2::numeric ^ 200",
        "-1.5::numeric / 7",
        "1e-20::numeric",
        "0.1::float8::numeric",
        "123.4500::numeric(10, 4)",
        "-0.0::numeric",
        "(10::numeric ^ 40) - 1",
        "-(10::numeric ^ 40) / 3",
        "'NaN'::numeric",
        "'-Infinity'::numeric",
    ];
    let select = exprs
        .iter()
        .map(|e| format!("{e}, ({e})::text"))
        .collect::<Vec<_>>()
        .join(", ");
    let both = hub
        .query(&spec, &format!("SELECT {select}"), vec![], T)
        .unwrap();
    for (i, e) in exprs.iter().enumerate() {
        assert_eq!(both.rows[0][2 * i], both.rows[0][2 * i + 1], "{e}");
    }
    let from_float = hub
        .query(
            &spec,
            "SELECT $1::numeric, $2::numeric",
            vec![SqlValue::Float(-1234.5678), SqlValue::Int(i64::MAX)],
            T,
        )
        .unwrap();
    assert_eq!(
        from_float.rows[0],
        vec![text("-1234.5678"), text("9223372036854775807")]
    );

    // Special values of dates and times.
    let special = hub
        .query(
            &spec,
            "SELECT 'infinity'::timestamptz, '-infinity'::timestamp, '0044-03-15 BC'::date, \
             'infinity'::date, '23:59:59.999999'::time, '1969-12-31 23:59:59.5+00'::timestamptz, \
             'Infinity'::numeric, '-Infinity'::float8",
            vec![],
            T,
        )
        .unwrap();
    assert_eq!(
        special.rows[0],
        vec![
            text("infinity"),
            text("-infinity"),
            text("0044-03-15 BC"),
            text("infinity"),
            text("23:59:59.999999"),
            SqlValue::Timestamp(-500_000),
            text("Infinity"),
            SqlValue::Float(f64::NEG_INFINITY),
        ]
    );
    // The catalog types CDC plugins read.
    let catalog = hub
        .query(
            &spec,
            "SELECT pg_current_wal_lsn() > '0/0'::pg_lsn, relkind, relname, oid FROM pg_class \
             WHERE relname = 'v'",
            vec![],
            T,
        )
        .unwrap();
    assert_eq!(column_types(&catalog), ["bool", "char", "name", "oid"]);
    assert_eq!(catalog.rows[0][0], SqlValue::Bool(true));
    assert_eq!(catalog.rows[0][1], text("r"));
    assert!(matches!(catalog.rows[0][3], SqlValue::Int(oid) if oid > 0));
}

#[test]
fn postgres_refuses_what_it_cannot_bind_or_read() {
    let (_server, _db, spec) = fresh("sql_refusals", 1);
    let hub = SqlHub::new();
    hub.execute(
        &spec,
        "CREATE TABLE h (id int, addr inet, span interval, tags text[])",
        vec![],
        T,
    )
    .unwrap();

    let err = hub
        .execute(
            &spec,
            "INSERT INTO h (id, addr) VALUES ($1, $2)",
            vec![SqlValue::Int(1), text("10.0.0.1")],
            T,
        )
        .unwrap_err();
    assert_eq!(err.kind, SqlErrorKind::Failed);
    assert_eq!(
        err.message,
        "connection `pg`: parameter $2 has type inet, which a text value cannot be bound to; \
         cast it in the statement, e.g. `$2::text::inet`"
    );
    // The fix works.
    hub.execute(
        &spec,
        "INSERT INTO h (id, addr, span, tags) VALUES ($1, $2::text::inet, '1 day', '{a,b}')",
        vec![SqlValue::Int(1), text("10.0.0.1")],
        T,
    )
    .unwrap();

    let err = hub
        .execute(&spec, "UPDATE h SET id = $1", vec![SqlValue::Bool(true)], T)
        .unwrap_err();
    assert!(
        err.message
            .contains("parameter $1 has type int4, which a boolean value cannot be bound to")
            && err.message.contains("`$1::bool::int4`"),
        "{err}"
    );
    let err = hub
        .execute(
            &spec,
            "UPDATE h SET id = $1",
            vec![SqlValue::Int(1 << 40)],
            T,
        )
        .unwrap_err();
    assert_eq!(
        err.message,
        "connection `pg`: parameter $1 (int4): 1099511627776 is out of range for type int4"
    );
    let err = hub
        .execute(
            &spec,
            "UPDATE h SET id = $1",
            vec![SqlValue::Int(1), SqlValue::Int(2)],
            T,
        )
        .unwrap_err();
    assert_eq!(
        err.message,
        "connection `pg`: the statement takes 1 parameter but got 2 values"
    );

    for (column, ty) in [("addr", "inet"), ("span", "interval"), ("tags", "text[]")] {
        let err = hub
            .query(&spec, &format!("SELECT id, {column} FROM h"), vec![], T)
            .unwrap_err();
        assert_eq!(err.kind, SqlErrorKind::Failed);
        let ty = if ty == "text[]" { "_text" } else { ty };
        assert_eq!(
            err.message,
            format!(
                "connection `pg`: cannot read column `{column}` of type {ty}; \
                 cast it in the query: {column}::text"
            )
        );
    }
    let ok = hub
        .query(
            &spec,
            "SELECT addr::text, span::text, tags::text FROM h",
            vec![],
            T,
        )
        .unwrap();
    assert_eq!(
        ok.rows[0],
        vec![text("10.0.0.1/32"), text("1 day"), text("{a,b}")]
    );
}

#[test]
fn postgres_errors_have_kinds_and_sqlstates() {
    let (_server, _db, spec) = fresh("sql_errors", 2);
    let hub = SqlHub::new();
    hub.execute(
        &spec,
        "CREATE TABLE u (id int PRIMARY KEY, v text NOT NULL)",
        vec![],
        T,
    )
    .unwrap();
    let insert = "INSERT INTO u VALUES ($1, $2)";
    hub.execute(&spec, insert, vec![SqlValue::Int(1), text("a")], T)
        .unwrap();
    let dup = hub
        .execute(&spec, insert, vec![SqlValue::Int(1), text("b")], T)
        .unwrap_err();
    assert_eq!(dup.kind, SqlErrorKind::Constraint);
    assert_eq!(dup.code.as_deref(), Some("23505"));
    assert_eq!(
        dup.message,
        "connection `pg`: duplicate key value violates unique constraint \"u_pkey\"; \
         detail: Key (id)=(1) already exists."
    );
    let null = hub
        .execute(&spec, insert, vec![SqlValue::Int(2), SqlValue::Null], T)
        .unwrap_err();
    assert_eq!(
        (null.kind, null.code.as_deref()),
        (SqlErrorKind::Constraint, Some("23502"))
    );
    let syntax = hub.query(&spec, "SELEC 1", vec![], T).unwrap_err();
    assert_eq!(
        (syntax.kind, syntax.code.as_deref()),
        (SqlErrorKind::Failed, Some("42601"))
    );
    let missing = hub
        .query(&spec, "SELECT * FROM nope", vec![], T)
        .unwrap_err();
    assert_eq!(missing.code.as_deref(), Some("42P01"));
    assert_eq!(
        missing.message,
        "connection `pg`: relation \"nope\" does not exist"
    );

    // Nobody listens there: retryable.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = spec_for(format!("postgres://postgres@127.0.0.1:{closed_port}/x"), 1);
    let err = hub.query(&down, "SELECT 1", vec![], T).unwrap_err();
    assert_eq!(err.kind, SqlErrorKind::Retryable, "{err}");
    assert!(
        err.message
            .starts_with("connection `pg`: error connecting to server"),
        "{err}"
    );
    // A database that does not exist is not worth retrying.
    let nodb = spec_for(pg::server().url("no_such_database"), 1);
    let err = hub.query(&nodb, "SELECT 1", vec![], T).unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_deref()),
        (SqlErrorKind::Failed, Some("3D000"))
    );
}

#[test]
fn postgres_transactions() {
    let (server, db, spec) = fresh("sql_tx", 2);
    let hub = SqlHub::new();
    hub.execute(
        &spec,
        "CREATE TABLE items (id int PRIMARY KEY, name text)",
        vec![],
        T,
    )
    .unwrap();
    let mut check = server.client(&db);
    let mut count = move || -> i64 {
        check
            .query_one("SELECT count(*) FROM items", &[])
            .unwrap()
            .get(0)
    };
    let insert = "INSERT INTO items VALUES ($1, $2)";

    // Dropped without commit: rolled back, and the connection is reusable.
    let mut tx = hub
        .begin(&spec, Isolation::ReadCommitted, false, T)
        .unwrap();
    tx.execute(insert, vec![SqlValue::Int(1), text("one")], T)
        .unwrap();
    assert_eq!(
        tx.query("SELECT count(*) FROM items", vec![], T)
            .unwrap()
            .rows[0][0],
        SqlValue::Int(1)
    );
    drop(tx);
    assert_eq!(count(), 0);

    // execute_many: 1000 rows, one transaction.
    let mut tx = hub
        .begin(&spec, Isolation::RepeatableRead, false, T)
        .unwrap();
    assert_eq!(
        tx.query("SHOW transaction_isolation", vec![], T)
            .unwrap()
            .rows[0][0],
        text("repeatable read")
    );
    let rows: Vec<Vec<SqlValue>> = (0..1000)
        .map(|i| vec![SqlValue::Int(i), SqlValue::Text(format!("item {i}"))])
        .collect();
    let start = Instant::now();
    let changed = tx.execute_many(insert, rows, T).unwrap();
    let took = start.elapsed();
    assert_eq!(changed, 1000);
    assert_eq!(count(), 0, "not visible before commit");
    tx.commit(T).unwrap();
    eprintln!("execute_many: 1000 rows in {took:?}");
    assert_eq!(count(), 1000);
    let err = tx
        .execute(insert, vec![SqlValue::Int(5000), text("late")], T)
        .unwrap_err();
    assert_eq!(err.kind, SqlErrorKind::Failed);
    assert_eq!(err.message, "connection `pg`: transaction already finished");
    assert!(tx.commit(T).is_err());

    // A failing statement inside execute_many rolls everything back.
    let mut tx = hub
        .begin(&spec, Isolation::ReadCommitted, false, T)
        .unwrap();
    let err = tx
        .execute_many(
            insert,
            vec![
                vec![SqlValue::Int(2000), text("new")],
                vec![SqlValue::Int(5), text("dup")],
                vec![SqlValue::Int(2001), text("new")],
            ],
            T,
        )
        .unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_deref()),
        (SqlErrorKind::Constraint, Some("23505"))
    );
    assert!(!tx.is_open());
    tx.rollback(T).unwrap();
    assert_eq!(count(), 1000);

    // An explicit rollback, a read-only transaction, a serializable one.
    let mut tx = hub.begin(&spec, Isolation::Serializable, false, T).unwrap();
    assert_eq!(tx.execute("DELETE FROM items", vec![], T).unwrap(), 1000);
    tx.rollback(T).unwrap();
    assert_eq!(count(), 1000);
    let mut tx = hub.begin(&spec, Isolation::ReadCommitted, true, T).unwrap();
    let err = tx.execute("DELETE FROM items", vec![], T).unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_deref()),
        (SqlErrorKind::Failed, Some("25006"))
    );
    drop(tx);

    // Nothing left open on the server.
    let open: i64 = server
        .client(&db)
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = 'ferry' AND state <> 'idle'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(open, 0);
}

#[test]
fn postgres_timeouts_cancel_and_keep_the_connection() {
    let (server, db, spec) = fresh("sql_timeout", 1);
    let hub = SqlHub::new();
    let pid = |hub: &SqlHub| {
        hub.query(&spec, "SELECT pg_backend_pid()", vec![], T)
            .unwrap()
            .rows[0][0]
            .clone()
    };
    let first = pid(&hub);

    let start = Instant::now();
    let err = hub
        .query(
            &spec,
            "SELECT pg_sleep(30)",
            vec![],
            Duration::from_millis(300),
        )
        .unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.kind, SqlErrorKind::Retryable, "{err}");
    assert_eq!(err.message, "connection `pg`: timed out after 300ms");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // The same (only) connection answers at once, and nothing still sleeps.
    assert_eq!(pid(&hub), first);
    let sleeping: i64 = server
        .client(&db)
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%' \
             AND state = 'active' AND datname = current_database()",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(sleeping, 0);

    // In a transaction: the statement is cancelled and the transaction
    // rolled back; the connection serves the next one.
    hub.execute(&spec, "CREATE TABLE t (id int)", vec![], T)
        .unwrap();
    let mut tx = hub
        .begin(&spec, Isolation::ReadCommitted, false, T)
        .unwrap();
    tx.execute("INSERT INTO t VALUES (1)", vec![], T).unwrap();
    let err = tx
        .execute("SELECT pg_sleep(30)", vec![], Duration::from_millis(200))
        .unwrap_err();
    assert_eq!(err.kind, SqlErrorKind::Retryable);
    assert!(!tx.is_open());
    drop(tx);
    assert_eq!(pid(&hub), first);
    assert_eq!(
        hub.query(&spec, "SELECT count(*) FROM t", vec![], T)
            .unwrap()
            .rows[0][0],
        SqlValue::Int(0)
    );

    // Waiting for the pool's only connection counts against the timeout.
    let tx = hub
        .begin(&spec, Isolation::ReadCommitted, false, T)
        .unwrap();
    let err = hub
        .query(&spec, "SELECT 1", vec![], Duration::from_millis(200))
        .unwrap_err();
    assert_eq!(err.kind, SqlErrorKind::Retryable);
    assert!(
        err.message
            .contains("waiting for a free connection (pool_size 1)"),
        "{err}"
    );
    drop(tx);

    // A connection the server killed is replaced, not reused: at worst the
    // call that finds it dead fails as retryable, the next one reconnects.
    server.psql(
        &db,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'ferry' AND datname = current_database()",
    );
    std::thread::sleep(Duration::from_millis(100));
    if let Err(err) = hub.query(&spec, "SELECT 1", vec![], T) {
        assert_eq!(err.kind, SqlErrorKind::Retryable, "{err}");
    }
    assert_ne!(pid(&hub), first);
}

#[test]
fn postgres_pool_never_exceeds_pool_size() {
    let (server, db, spec) = fresh("sql_pool", 3);
    let hub = SqlHub::new();
    let stop = Arc::new(AtomicBool::new(false));
    let most = Arc::new(AtomicI64::new(0));
    let monitor = {
        let (stop, most) = (stop.clone(), most.clone());
        let mut client = server.client(&db);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let n: i64 = client
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity \
                         WHERE application_name = 'ferry' AND datname = current_database()",
                        &[],
                    )
                    .unwrap()
                    .get(0);
                most.fetch_max(n, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (hub, spec) = (hub.clone(), spec.clone());
            std::thread::spawn(move || {
                for _ in 0..3 {
                    let rows = hub
                        .query(
                            &spec,
                            "SELECT count(*) FROM pg_stat_activity, pg_sleep(0.05) \
                             WHERE application_name = 'ferry' AND datname = current_database()",
                            vec![],
                            T,
                        )
                        .unwrap();
                    let SqlValue::Int(n) = rows.rows[0][0] else {
                        panic!()
                    };
                    assert!(n <= 3, "{n} connections");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    monitor.join().unwrap();
    let most = most.load(Ordering::Relaxed);
    assert!(most <= 3, "{most} connections at once");
    assert!(most >= 2, "the pool was used ({most})");
}

#[test]
fn postgres_tls_verify_full_require_and_refusal() {
    let server = Postgres::start_with(|dir| {
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("the openssl CLI");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec[..],
                &[
                    "-days",
                    "2",
                    "-subj",
                    "/CN=ferry test CA",
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.crt",
                ],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req", "-new"][..],
                &ec[..],
                &[
                    "-subj",
                    "/CN=127.0.0.1",
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                ],
            ]
            .concat(),
        );
        std::fs::write(
            dir.join("server.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ]);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
        vec![
            ("ssl".into(), "on".into()),
            ("ssl_cert_file".into(), path("server.crt")),
            ("ssl_key_file".into(), path("server.key")),
        ]
    });
    let ca = server.dir().join("ca.crt");
    let hub = SqlHub::new();
    let ssl_query = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    let spec = |tls: Tls, ca_file: Option<&Path>, url: String| ConnectionSpec {
        tls,
        ca_file: ca_file.map(Path::to_path_buf),
        ..spec_for(url, 1)
    };
    let url = server.url("postgres");

    let verified = spec(Tls::VerifyFull, Some(&ca), url.clone());
    let rows = hub.query(&verified, ssl_query, vec![], T).unwrap();
    assert_eq!(
        rows.rows[0][0],
        SqlValue::Bool(true),
        "VerifyFull with the CA encrypts"
    );

    let required = spec(Tls::Require, None, url.clone());
    let rows = hub.query(&required, ssl_query, vec![], T).unwrap();
    assert_eq!(rows.rows[0][0], SqlValue::Bool(true), "Require encrypts");

    let plain = spec(Tls::Disable, None, url.clone());
    let rows = hub.query(&plain, ssl_query, vec![], T).unwrap();
    assert_eq!(rows.rows[0][0], SqlValue::Bool(false), "Disable does not");

    // Without the CA, the chain leads to no trusted root.
    let unverified = spec(Tls::VerifyFull, None, url.clone());
    let err = hub.query(&unverified, ssl_query, vec![], T).unwrap_err();
    eprintln!("VerifyFull without the CA: {err}");
    assert_eq!(err.kind, SqlErrorKind::Failed, "{err}");
    assert!(
        err.message.contains("certificate") && err.message.contains("UnknownIssuer"),
        "{err}"
    );

    // The certificate names 127.0.0.1, not localhost.
    let wrong_name = spec(
        Tls::VerifyFull,
        Some(&ca),
        format!(
            "postgres://postgres@localhost:{}/postgres?hostaddr=127.0.0.1",
            server.port
        ),
    );
    let err = hub.query(&wrong_name, ssl_query, vec![], T).unwrap_err();
    eprintln!("VerifyFull, another name: {err}");
    assert_eq!(err.kind, SqlErrorKind::Failed, "{err}");
    assert!(
        err.message.contains("NotValidForName") || err.message.contains("not valid for name"),
        "{err}"
    );

    // TLS asked of a server without it: refused, not worth retrying.
    let no_tls_server = spec(Tls::Require, None, pg::server().url("postgres"));
    let err = hub.query(&no_tls_server, ssl_query, vec![], T).unwrap_err();
    assert_eq!(err.kind, SqlErrorKind::Failed, "{err}");
    assert!(
        err.message.ends_with("server does not support TLS"),
        "{err}"
    );

    // A CA file that is not there.
    let missing = spec(Tls::VerifyFull, Some(Path::new("/nonexistent/ca.pem")), url);
    let err = hub.query(&missing, ssl_query, vec![], T).unwrap_err();
    assert!(
        err.message
            .contains("cannot read ca_file /nonexistent/ca.pem"),
        "{err}"
    );
}

#[test]
fn sqlite_values_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ConnectionSpec {
        name: "local".into(),
        dialect: Dialect::Sqlite,
        url: dir.path().join("data.db").to_string_lossy().into_owned(),
        password: None,
        tls: Tls::Disable,
        ca_file: None,
        pool_size: 2,
        transaction_timeout: ferry_host::sql::DEFAULT_TRANSACTION_TIMEOUT,
    };
    let hub = SqlHub::new();
    hub.execute(
        &spec,
        "CREATE TABLE r (id INTEGER PRIMARY KEY, f REAL, b BOOLEAN, t TEXT, x BLOB, at TIMESTAMP, j JSON)",
        vec![],
        T,
    )
    .unwrap();
    let insert = "INSERT INTO r VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
    hub.execute(
        &spec,
        insert,
        vec![
            SqlValue::Int(1),
            SqlValue::Float(0.5),
            SqlValue::Bool(true),
            text("ünïcode"),
            SqlValue::Bytes(vec![9, 8, 7]),
            SqlValue::Timestamp(AT),
            SqlValue::Json("{\"a\":1}".into()),
        ],
        T,
    )
    .unwrap();
    hub.execute(
        &spec,
        insert,
        [SqlValue::Int(2)]
            .into_iter()
            .chain(vec![SqlValue::Null; 6])
            .collect(),
        T,
    )
    .unwrap();
    let rows = hub
        .query(&spec, "SELECT * FROM r ORDER BY id", vec![], T)
        .unwrap();
    assert_eq!(
        column_types(&rows),
        [
            "INTEGER",
            "REAL",
            "BOOLEAN",
            "TEXT",
            "BLOB",
            "TIMESTAMP",
            "JSON"
        ]
    );
    assert_eq!(
        rows.rows[0],
        vec![
            SqlValue::Int(1),
            SqlValue::Float(0.5),
            SqlValue::Int(1),
            text("ünïcode"),
            SqlValue::Bytes(vec![9, 8, 7]),
            text("2026-11-27T10:00:00.123456Z"),
            text("{\"a\":1}"),
        ]
    );
    assert_eq!(rows.rows[1][1..], vec![SqlValue::Null; 6][..]);

    let err = hub
        .execute(&spec, insert, rows.rows[0].clone(), T)
        .unwrap_err();
    assert_eq!(
        (err.kind, err.code.as_deref()),
        (
            SqlErrorKind::Constraint,
            Some("SQLITE_CONSTRAINT_PRIMARYKEY")
        )
    );

    let mut tx = hub.begin(&spec, Isolation::Serializable, false, T).unwrap();
    let many: Vec<Vec<SqlValue>> = (10..1010)
        .map(|i| {
            let mut row = vec![SqlValue::Null; 7];
            row[0] = SqlValue::Int(i);
            row
        })
        .collect();
    let start = Instant::now();
    assert_eq!(tx.execute_many(insert, many, T).unwrap(), 1000);
    tx.commit(T).unwrap();
    eprintln!("sqlite execute_many: 1000 rows in {:?}", start.elapsed());
    let mut tx = hub
        .begin(&spec, Isolation::ReadCommitted, false, T)
        .unwrap();
    tx.execute("DELETE FROM r", vec![], T).unwrap();
    drop(tx);
    assert_eq!(
        hub.query(&spec, "SELECT count(*) FROM r", vec![], T)
            .unwrap()
            .rows[0][0],
        SqlValue::Int(1002)
    );
}

/// A `BEGIN` the text check does not see (nested
/// comments, `\r` ending a `--` comment, an empty statement first) leaves
/// no transaction open on the pooled connection: the host finds it, rolls
/// it back and denies the call; the next INSERT on the pool's only
/// connection is committed as acknowledged, and the connection is kept.
#[test]
fn postgres_a_hidden_begin_is_rolled_back_and_denied() {
    let (server, db, spec) = fresh("sql_hidden_begin", 1);
    server.psql(&db, "CREATE TABLE t (id int)");
    let hub = SqlHub::new();
    let pid = |hub: &SqlHub| {
        hub.query(&spec, "SELECT pg_backend_pid()", vec![], T)
            .unwrap()
            .rows[0][0]
            .clone()
    };
    let first = pid(&hub);
    let hidden = [
        "/* /* */ */ BEGIN",
        "-- x\rBEGIN",
        ";BEGIN",
        "/* /* */ */ START TRANSACTION",
    ];
    for (i, sql) in hidden.iter().enumerate() {
        for via_query in [false, true] {
            let err = if via_query {
                hub.query(&spec, sql, vec![], T).unwrap_err()
            } else {
                hub.execute(&spec, sql, vec![], T).unwrap_err()
            };
            assert_eq!(err.kind, SqlErrorKind::Denied, "{sql:?}: {err}");
            assert!(err.message.contains("left a transaction open"), "{err}");
        }
        assert_eq!(
            hub.execute(
                &spec,
                "INSERT INTO t VALUES ($1)",
                vec![SqlValue::Int(i as i64)],
                T
            )
            .unwrap(),
            1
        );
    }
    assert_eq!(
        server.psql(&db, "SELECT count(*) FROM t").trim(),
        hidden.len().to_string()
    );
    assert_eq!(pid(&hub), first, "the rolled-back connection is kept");
    // A session setting can fake neither answer of the probe.
    hub.execute(&spec, "SET ferry.in_block = 'x'", vec![], T)
        .unwrap();
    hub.execute(&spec, "INSERT INTO t VALUES (100)", vec![], T)
        .unwrap();
    assert_eq!(
        server.psql(&db, "SELECT count(*) FROM t").trim(),
        (hidden.len() + 1).to_string()
    );
}

/// Rows are counted as they stream in; past
/// the limit the statement is cancelled, its connection closed, and the
/// call fails naming the limit; the pool serves the next call. A row
/// larger than the limit on its own is refused too (after it arrived).
#[test]
fn postgres_results_are_bounded_by_the_plugins_limit() {
    let (server, db, spec) = fresh("sql_huge", 1);
    let hub = SqlHub::new();
    let limits = ferry_host::sql::SqlLimits {
        max_result_bytes: 1 << 20,
    };
    let pid = |hub: &SqlHub| {
        hub.query(&spec, "SELECT pg_backend_pid()", vec![], T)
            .unwrap()
            .rows[0][0]
            .clone()
    };
    let first = pid(&hub);
    let start = Instant::now();
    // Streamed: a set-returning function in the select list yields rows as
    // they are made (one in FROM would be materialized first).
    let endless = "SELECT generate_series(1, 100000000) AS g, repeat('x', 10000)";
    let err = hub
        .query_with(&spec, endless, vec![], T, limits)
        .unwrap_err();
    assert_eq!(err.kind, SqlErrorKind::Failed, "{err}");
    assert!(
        err.message
            .starts_with("connection `pg`: the result is larger than 1 MiB")
            && err.message.contains("max_output_mb")
            && err.message.contains("LIMIT"),
        "{err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    assert_ne!(pid(&hub), first, "the cancelled connection is replaced");
    let running: i64 = server
        .client(&db)
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%generate_series(1, 100000000)%' \
             AND state = 'active' AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(running, 0, "the statement was cancelled");
    let err = hub
        .query_with(&spec, "SELECT repeat('x', 2000000)", vec![], T, limits)
        .unwrap_err();
    assert!(err.message.contains("larger than 1 MiB"), "{err}");
    let mut tx = hub
        .begin_with(&spec, Isolation::ReadCommitted, true, T, limits)
        .unwrap();
    let err = tx.query(endless, vec![], T).unwrap_err();
    assert!(err.message.contains("larger than 1 MiB"), "{err}");
    assert!(!tx.is_open());
    drop(tx);
    let fits = hub
        .query_with(
            &spec,
            "SELECT repeat('x', 1000) FROM generate_series(1, 100)",
            vec![],
            T,
            limits,
        )
        .unwrap();
    assert_eq!(fits.rows.len(), 100);
}

/// A transaction held past `transaction_timeout` is
/// rolled back on the server and its connection given back while its
/// holder does nothing.
#[test]
fn postgres_a_transaction_held_too_long_is_rolled_back() {
    let (server, db, spec) = fresh("sql_held", 1);
    let spec = ConnectionSpec {
        transaction_timeout: Duration::from_millis(300),
        ..spec
    };
    server.psql(&db, "CREATE TABLE t (id int)");
    let hub = SqlHub::new();
    let mut held = hub
        .begin(&spec, Isolation::ReadCommitted, false, T)
        .unwrap();
    held.execute("INSERT INTO t VALUES (1)", vec![], T).unwrap();
    let start = Instant::now();
    let rows = hub
        .query(
            &spec,
            "SELECT count(*) FROM t",
            vec![],
            Duration::from_secs(5),
        )
        .unwrap();
    assert_eq!(rows.rows[0][0], SqlValue::Int(0));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    let err = held
        .execute("INSERT INTO t VALUES (2)", vec![], T)
        .unwrap_err();
    assert!(err.message.contains("transaction_timeout_ms"), "{err}");
    assert_eq!(
        server
            .psql(
                &db,
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND state LIKE 'idle in transaction%'"
            )
            .trim(),
        "0"
    );
}
