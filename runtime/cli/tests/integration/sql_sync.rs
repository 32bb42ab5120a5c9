//! The `postgres` and `sqlite` connectors in real pipelines, against the
//! PostgreSQL server of support/pg.rs and temp SQLite files: delta sync and
//! late commits, full sync converging with deletes, the upserting sink
//! (idempotence, untouched columns, version conflicts, rejected rows) and
//! type round trips PG -> SQLite -> PG and PG -> PG.

use std::path::Path;
use std::time::{Duration, Instant};

use ferry_host::sql::{ConnectionSpec, Dialect, SqlHub, SqlValue, Tls};

use crate::support::pg::{self, Postgres};
use crate::support::{Sandbox, plugins};

const T: Duration = Duration::from_secs(30);

/// A connection the manifest declares: `(name, url)`.
type Conn<'a> = (&'a str, String);

/// A stage: `(name, kind, wasm, config)`; the config is an inline table's
/// body, and `grants` is added from the connection named in it.
struct Stage<'a> {
    name: &'a str,
    kind: &'a str,
    wasm: &'a str,
    connection: Option<&'a str>,
    config: &'a str,
}

fn manifest(batch: u32, connections: &[Conn<'_>], stages: &[Stage<'_>], to: &[&str]) -> String {
    let mut m = format!("[pipeline]\nname = \"sql\"\nbatch = {{ max_records = {batch} }}\n\n");
    for (name, url) in connections {
        m.push_str(&format!("[connections.{name}]\nurl = \"{url}\"\n\n"));
    }
    for s in stages {
        let (config, grants) = match s.connection {
            Some(c) => (
                format!("{{ connection = \"{c}\", {} }}", s.config),
                format!("{{ sql = [\"{c}\"], timeout_ms = 30000, memory_mb = 256 }}"),
            ),
            None => (
                format!("{{ {} }}", s.config),
                "{ files = [{ host = \"in\", guest = \"/in\" }] }".to_owned(),
            ),
        };
        m.push_str(&format!(
            "[plugins.{}]\nkind = \"{}\"\nwasm = \"{}\"\nconfig = {config}\ngrants = {grants}\n\n",
            s.name, s.kind, s.wasm
        ));
    }
    let from = stages
        .iter()
        .find(|s| s.kind == "source")
        .map_or("src", |s| s.name);
    let to: Vec<String> = to.iter().map(|t| format!("\"{t}\"")).collect();
    m.push_str(&format!(
        "[[routes]]\nfrom = \"{from}\"\nto = [{}]\n",
        to.join(", ")
    ));
    m
}

fn sqlite_spec(path: &Path) -> ConnectionSpec {
    ConnectionSpec {
        name: "check".into(),
        dialect: Dialect::Sqlite,
        url: path.to_string_lossy().into_owned(),
        password: None,
        tls: Tls::Disable,
        ca_file: None,
        pool_size: 1,
        transaction_timeout: ferry_host::sql::DEFAULT_TRANSACTION_TIMEOUT,
    }
}

/// Runs SQLite statements (one per entry) on the file.
fn lite_exec(path: &Path, statements: &[&str]) {
    let hub = SqlHub::new();
    let spec = sqlite_spec(path);
    for s in statements {
        hub.execute(&spec, s, vec![], T)
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
}

/// One text per row: the row's values joined with `|` (NULL as `-`).
fn lite_rows(path: &Path, sql: &str) -> Vec<String> {
    let hub = SqlHub::new();
    let rows = hub
        .query(&sqlite_spec(path), sql, vec![], T)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|v| match v {
                    SqlValue::Null => "-".to_owned(),
                    SqlValue::Int(n) => n.to_string(),
                    SqlValue::Float(x) => x.to_string(),
                    SqlValue::Text(s) | SqlValue::Json(s) => s.clone(),
                    SqlValue::Bytes(b) => format!("x{}", hex(b)),
                    other => format!("{other:?}"),
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The rows psql prints (`-At`: one line per row, `|` between values).
fn pg_rows(server: &Postgres, db: &str, sql: &str) -> Vec<String> {
    server.psql(db, sql).lines().map(str::to_owned).collect()
}

fn written(s: &Sandbox) -> (u64, u64, u64) {
    let r = s.run().expect("the pipeline runs");
    (
        r.accounting.read,
        r.accounting.written,
        r.accounting.dead_lettered,
    )
}

#[test]
fn delta_reads_late_commits_inside_the_lookback_window_and_misses_them_without() {
    let server = pg::server();
    for (lookback, late_found) in [("5m", true), ("0s", false)] {
        let db = server.create_database("sql_delta");
        server.psql(
            &db,
            "CREATE TABLE orders (id bigint PRIMARY KEY, item text NOT NULL, updated_at timestamptz NOT NULL);
             INSERT INTO orders VALUES (1, 'first', '2026-01-01 10:00:00+00'), (2, 'second', '2026-01-01 10:01:00+00');",
        );
        let s = Sandbox::new();
        let target = s.path("out/target.db");
        lite_exec(
            &target,
            &["CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT, updated_at TIMESTAMP)"],
        );
        let source_config = format!(
            "mode = \"delta\", table = \"orders\", cursor = \"updated_at\", lookback = \"{lookback}\""
        );
        s.manifest(&manifest(
            100,
            &[
                ("src", server.url(&db)),
                ("dst", "sqlite:out/target.db".into()),
            ],
            &[
                Stage {
                    name: "src",
                    kind: "source",
                    wasm: plugins::POSTGRES,
                    connection: Some("src"),
                    config: &source_config,
                },
                Stage {
                    name: "out",
                    kind: "sink",
                    wasm: plugins::SQLITE,
                    connection: Some("dst"),
                    config: "table = \"orders\"",
                },
            ],
            &["out"],
        ));
        assert_eq!(written(&s), (2, 2, 0));

        // A transaction stamps its row 10:02 and is still open when a row
        // stamped 10:03 commits and is synced.
        let mut client = server.client(&db);
        let mut slow = client.transaction().unwrap();
        slow.execute(
            "INSERT INTO orders VALUES (3, 'late', '2026-01-01 10:02:00+00')",
            &[],
        )
        .unwrap();
        server.psql(
            &db,
            "INSERT INTO orders VALUES (4, 'later', '2026-01-01 10:03:00+00')",
        );
        assert_eq!(
            written(&s),
            (1, 1, 0),
            "only the committed row 4 (lookback {lookback})"
        );
        slow.commit().unwrap();

        // The next pass reads the window again: row 3 is behind row 4, the
        // window is what finds it.
        let third = written(&s);
        let ids = lite_rows(&target, "SELECT id FROM orders ORDER BY id");
        if late_found {
            assert_eq!(third, (1, 1, 0));
            assert_eq!(ids, ["1", "2", "3", "4"]);
        } else {
            assert_eq!(third, (0, 0, 0), "lookback 0 misses the late row");
            assert_eq!(ids, ["1", "2", "4"]);
        }
        // Nothing is sent twice.
        assert_eq!(written(&s), (0, 0, 0));
        assert_eq!(
            lite_rows(&target, "SELECT item, updated_at FROM orders WHERE id = 2"),
            ["second|2026-01-01T10:01:00.000000Z"]
        );
    }
}

#[test]
fn full_sync_converges_exactly_with_deletes() {
    let server = pg::server();
    let db = server.create_database("sql_full");
    server.psql(
        &db,
        "CREATE TABLE stock (site text, sku bigint, qty integer, PRIMARY KEY (site, sku));",
    );
    let s = Sandbox::new();
    let source = s.path("in/stock.db");
    let mut setup = vec![
        "CREATE TABLE stock (site TEXT, sku INTEGER, qty INTEGER, PRIMARY KEY (site, sku))"
            .to_owned(),
    ];
    for i in 0..250 {
        let site = ["north", "south", "east"][i % 3];
        setup.push(format!(
            "INSERT INTO stock VALUES ('{site}', {i}, {})",
            i * 2
        ));
    }
    let refs: Vec<&str> = setup.iter().map(String::as_str).collect();
    lite_exec(&source, &refs);
    s.manifest(&manifest(
        64,
        &[
            ("src", "sqlite:in/stock.db".into()),
            ("dst", server.url(&db)),
        ],
        &[
            Stage {
                name: "src",
                kind: "source",
                wasm: plugins::SQLITE,
                connection: Some("src"),
                config: "mode = \"full\", table = \"stock\"",
            },
            Stage {
                name: "out",
                kind: "sink",
                wasm: plugins::POSTGRES,
                connection: Some("dst"),
                config: "table = \"stock\"",
            },
        ],
        &["out"],
    ));
    let same = |what: &str| {
        let mut want = lite_rows(&source, "SELECT site, sku, qty FROM stock");
        want.sort();
        let mut got = pg_rows(server, &db, "SELECT site, sku, qty FROM stock");
        got.sort();
        assert_eq!(got, want, "{what}");
    };
    assert_eq!(written(&s), (250, 250, 0));
    same("first snapshot");

    lite_exec(
        &source,
        &[
            "DELETE FROM stock WHERE sku % 25 = 0",
            "INSERT INTO stock VALUES ('west', 1000, 1), ('west', 1001, 2)",
            "UPDATE stock SET qty = -1 WHERE sku IN (1, 2, 3)",
        ],
    );
    // 242 rows now, and 10 deletes.
    assert_eq!(written(&s), (252, 252, 0));
    same("after deletes, inserts and updates");
    // Nothing changed: a full pass of upserts, no deletes.
    assert_eq!(written(&s), (242, 242, 0));
    same("a pass with no change");
    // Emptied: everything goes.
    lite_exec(&source, &["DELETE FROM stock"]);
    assert_eq!(written(&s), (242, 242, 0));
    assert!(pg_rows(server, &db, "SELECT count(*) FROM stock") == ["0"]);
}

#[test]
fn the_sink_upserts_leaves_other_columns_alone_and_writes_a_batch_twice_harmlessly() {
    let server = pg::server();
    let db = server.create_database("sql_sink");
    server.psql(
        &db,
        "CREATE TABLE people (id bigint PRIMARY KEY, name text NOT NULL, score double precision,
                              tags jsonb, seen_at timestamptz, note text);
         INSERT INTO people (id, name, note) VALUES (1, 'old name', 'keep me');",
    );
    let s = Sandbox::new();
    let target = s.path("out/people.db");
    lite_exec(
        &target,
        &[
            "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL, tags JSON, seen_at TIMESTAMP, note TEXT)",
            "INSERT INTO people (id, name, note) VALUES (1, 'old name', 'keep me')",
        ],
    );
    s.write(
        "in/people.jsonl",
        "{\"id\": 1, \"name\": \"Ada\", \"score\": 1.5, \"tags\": [\"x\"], \"seen_at\": \"2026-11-27T10:00:00Z\", \"extra\": 1}\n\
         {\"id\": 2, \"name\": \"Grace\", \"score\": null, \"tags\": {\"a\": 1}, \"seen_at\": \"2026-11-27T11:00:00+01:00\"}\n\
         {\"id\": 3, \"name\": \"Linus\"}\n",
    );
    s.manifest(&manifest(
        100,
        &[
            ("pg", server.url(&db)),
            ("lite", "sqlite:out/people.db".into()),
        ],
        &[
            Stage {
                name: "src",
                kind: "source",
                wasm: plugins::FILE,
                connection: None,
                config: "path = \"/in/people.jsonl\"",
            },
            Stage {
                name: "pg_out",
                kind: "sink",
                wasm: plugins::POSTGRES,
                connection: Some("pg"),
                config: "table = \"people\"",
            },
            Stage {
                name: "lite_out",
                kind: "sink",
                wasm: plugins::SQLITE,
                connection: Some("lite"),
                config: "table = \"people\"",
            },
        ],
        &["pg_out", "lite_out"],
    ));
    let pg_want = [
        "1|Ada|1.5|[\"x\"]|2026-11-27 10:00:00+00|keep me",
        "2|Grace||{\"a\": 1}|2026-11-27 10:00:00+00|",
        "3|Linus||||",
    ];
    let lite_want = [
        "1|Ada|1.5|[\"x\"]|2026-11-27T10:00:00.000000Z|keep me",
        "2|Grace|-|{\"a\": 1}|2026-11-27T10:00:00.000000Z|-",
        "3|Linus|-|-|-|-",
    ];
    let check = || {
        assert_eq!(
            pg_rows(
                server,
                &db,
                "SET timezone = 'UTC'; SELECT id, name, score, tags, seen_at, note FROM people ORDER BY id"
            ),
            pg_want
        );
        assert_eq!(
            lite_rows(
                &target,
                "SELECT id, name, score, tags, seen_at, note FROM people ORDER BY id"
            ),
            lite_want
        );
    };
    let r = s.run().expect("runs");
    assert_eq!(
        (
            r.accounting.read,
            r.accounting.written,
            r.accounting.dead_lettered
        ),
        (3, 3, 0)
    );
    check();
    // The checkpoint gone, the same records are written again: same state.
    std::fs::remove_dir_all(s.path(".ferry")).unwrap();
    let r = s.run().expect("runs again");
    assert_eq!(
        (
            r.accounting.read,
            r.accounting.written,
            r.accounting.dead_lettered
        ),
        (3, 3, 0)
    );
    check();
}

#[test]
fn version_checks_send_older_records_to_conflicts() {
    let server = pg::server();
    let db = server.create_database("sql_versions");
    server.psql(
        &db,
        "CREATE TABLE docs (id text PRIMARY KEY, body text, version bigint NOT NULL);
         INSERT INTO docs VALUES ('a', 'a1', 1), ('b', 'b2', 2), ('c', 'c3', 3);",
    );
    let s = Sandbox::new();
    let target = s.path("out/docs.db");
    lite_exec(
        &target,
        &[
            "CREATE TABLE docs (id TEXT PRIMARY KEY, body TEXT, version INTEGER)",
            "INSERT INTO docs VALUES ('b', 'edited in the target', 10), ('c', 'c3', 3)",
        ],
    );
    s.manifest(&manifest(
        100,
        &[("src", server.url(&db)), ("dst", "sqlite:out/docs.db".into())],
        &[
            Stage {
                name: "src",
                kind: "source",
                wasm: plugins::POSTGRES,
                connection: Some("src"),
                config: "mode = \"delta\", table = \"docs\", cursor = \"version\", lookback = 0, version_column = \"version\"",
            },
            Stage { name: "out", kind: "sink", wasm: plugins::SQLITE, connection: Some("dst"), config: "table = \"docs\", version_column = \"version\"" },
        ],
        &["out"],
    ));
    // a: new, written. b: the target's version 10 is newer: a conflict.
    // c: the same version and values: written again, harmlessly.
    assert_eq!(written(&s), (3, 2, 1));
    let dead = s.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (
            dead[0].stage.as_str(),
            dead[0].reason.as_str(),
            dead[0].key.as_str()
        ),
        ("out", "conflict", "b")
    );
    assert!(
        dead[0].detail.contains("newer version"),
        "{}",
        dead[0].detail
    );
    assert_eq!(
        lite_rows(&target, "SELECT id, body, version FROM docs ORDER BY id"),
        ["a|a1|1", "b|edited in the target|10", "c|c3|3"]
    );
    // A newer change at the source goes through.
    server.psql(
        &db,
        "UPDATE docs SET body = 'b11', version = 11 WHERE id = 'b'",
    );
    assert_eq!(written(&s), (1, 1, 0));
    assert_eq!(
        lite_rows(&target, "SELECT body FROM docs WHERE id = 'b'"),
        ["b11"]
    );
}

#[test]
fn rows_the_database_refuses_go_to_the_dead_letter_store_with_its_reason() {
    let server = pg::server();
    let db = server.create_database("sql_rejects");
    server.psql(
        &db,
        "CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL UNIQUE,
                                balance numeric(10,2) CHECK (balance >= 0));
         INSERT INTO accounts VALUES (100, 'taken@example.com', 0);",
    );
    let s = Sandbox::new();
    let target = s.path("out/accounts.db");
    lite_exec(
        &target,
        &[
            "CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, balance REAL CHECK (balance >= 0))",
            "INSERT INTO accounts VALUES (100, 'taken@example.com', 0)",
        ],
    );
    let mut lines = String::new();
    for i in 1..=40 {
        let line = match i {
            7 => "{\"id\": 7, \"email\": \"neg@example.com\", \"balance\": -5}".to_owned(),
            13 => "{\"id\": 13, \"balance\": 1}".to_owned(),
            21 => "{\"id\": 21, \"email\": \"taken@example.com\", \"balance\": 1}".to_owned(),
            33 => "{\"id\": 33, \"email\": \"nan@example.com\", \"balance\": \"lots\"}".to_owned(),
            _ => format!("{{\"id\": {i}, \"email\": \"u{i}@example.com\", \"balance\": {i}.25}}"),
        };
        lines.push_str(&line);
        lines.push('\n');
    }
    s.write("in/accounts.jsonl", &lines);
    s.manifest(&manifest(
        64,
        &[
            ("pg", server.url(&db)),
            ("lite", "sqlite:out/accounts.db".into()),
        ],
        &[
            Stage {
                name: "src",
                kind: "source",
                wasm: plugins::FILE,
                connection: None,
                config: "path = \"/in/accounts.jsonl\"",
            },
            Stage {
                name: "pg_out",
                kind: "sink",
                wasm: plugins::POSTGRES,
                connection: Some("pg"),
                config: "table = \"accounts\"",
            },
            Stage {
                name: "lite_out",
                kind: "sink",
                wasm: plugins::SQLITE,
                connection: Some("lite"),
                config: "table = \"accounts\"",
            },
        ],
        &["pg_out", "lite_out"],
    ));
    s.run().expect("runs");
    let dead = s.dead_letters();
    let of = |stage: &str| {
        let mut d: Vec<(String, String, String)> = dead
            .iter()
            .filter(|d| d.stage == stage)
            .map(|d| (d.key.clone(), d.reason.clone(), d.detail.clone()))
            .collect();
        d.sort();
        d
    };
    let pg_dead = of("pg_out");
    assert_eq!(
        pg_dead
            .iter()
            .map(|(k, r, _)| (k.as_str(), r.as_str()))
            .collect::<Vec<_>>(),
        [
            ("13", "rejected"),
            ("21", "rejected"),
            ("33", "rejected"),
            ("7", "rejected")
        ],
        "{pg_dead:#?}"
    );
    for ((_, _, reason), expected) in pg_dead.iter().zip([
        "null value in column \"email\"",
        "duplicate key value violates unique constraint",
        "invalid input syntax for type numeric",
        "violates check constraint \"accounts_balance_check\"",
    ]) {
        assert!(reason.contains(expected), "{reason}");
    }
    assert_eq!(
        pg_rows(server, &db, "SELECT count(*) FROM accounts"),
        ["37"]
    );
    let lite_dead = of("lite_out");
    assert_eq!(
        lite_dead
            .iter()
            .map(|(k, _, _)| k.as_str())
            .collect::<Vec<_>>(),
        ["13", "21", "7"],
        "SQLite stores the text \"lots\" as it is: {lite_dead:#?}"
    );
    for ((_, _, reason), expected) in lite_dead.iter().zip([
        "NOT NULL constraint failed: accounts.email",
        "UNIQUE constraint failed: accounts.email",
        "CHECK constraint failed",
    ]) {
        assert!(reason.contains(expected), "{reason}");
    }
    assert_eq!(lite_rows(&target, "SELECT count(*) FROM accounts"), ["38"]);
}

/// Every PostgreSQL type family, a row of values and a row of NULLs.
const TYPES_DDL: &str = "CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TABLE t (
    id integer PRIMARY KEY, i2 smallint, i8 bigint, f4 real, f8 double precision, b boolean,
    t text, vc varchar(10), bc char(4), ba bytea, ts timestamp, tstz timestamptz, d date,
    n numeric(12,3), u uuid, j json, jb jsonb, ip inet, iv interval, arr integer[], e mood);";

const TYPES_ROWS: &str = "INSERT INTO t VALUES
    (1, -32768, 9223372036854775807, 1.5, 0.1, true, 'héllo ''quoted'' \"x\"', 'short', 'ab',
     '\\x00ff10', '2026-11-27 10:00:00.123456', '2026-11-27 10:00:00.5+02', '2026-02-28',
     12.5, 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{\"b\": [1, 2], \"a\": null}', '{\"k\": {\"n\": 1.25}}',
     '10.1.2.3/24', '1 day 02:03:04.5', '{1,NULL,3}', 'happy'),
    (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);";

#[test]
fn types_round_trip_postgres_to_sqlite_to_postgres_and_postgres_to_postgres() {
    let server = pg::server();
    let src = server.create_database("sql_types_src");
    server.psql(&src, TYPES_DDL);
    server.psql(&src, TYPES_ROWS);
    let dump = |db: &str| {
        pg_rows(
            server,
            db,
            "SET timezone = 'UTC'; SELECT t::text FROM t ORDER BY id",
        )
    };
    let original = dump(&src);

    // PG -> PG.
    let copy = server.create_database("sql_types_copy");
    server.psql(&copy, TYPES_DDL);
    let s = Sandbox::new();
    s.manifest(&manifest(
        10,
        &[("src", server.url(&src)), ("dst", server.url(&copy))],
        &[
            Stage {
                name: "src",
                kind: "source",
                wasm: plugins::POSTGRES,
                connection: Some("src"),
                config: "mode = \"full\", table = \"t\"",
            },
            Stage {
                name: "out",
                kind: "sink",
                wasm: plugins::POSTGRES,
                connection: Some("dst"),
                config: "table = \"t\"",
            },
        ],
        &["out"],
    ));
    assert_eq!(written(&s), (2, 2, 0));
    assert_eq!(dump(&copy), original, "PG -> PG");

    // PG -> SQLite.
    let s = Sandbox::new();
    let lite = s.path("out/t.db");
    lite_exec(
        &lite,
        &["CREATE TABLE t (id INTEGER PRIMARY KEY, i2 INTEGER, i8 INTEGER, f4 REAL, f8 REAL, b BOOLEAN,
             t TEXT, vc TEXT, bc TEXT, ba BLOB, ts TIMESTAMP, tstz TIMESTAMP, d TEXT, n TEXT, u TEXT,
             j JSON, jb JSON, ip TEXT, iv TEXT, arr TEXT, e TEXT)"],
    );
    s.manifest(&manifest(
        10,
        &[("src", server.url(&src)), ("dst", "sqlite:out/t.db".into())],
        &[
            Stage {
                name: "src",
                kind: "source",
                wasm: plugins::POSTGRES,
                connection: Some("src"),
                config: "mode = \"full\", table = \"t\"",
            },
            Stage {
                name: "out",
                kind: "sink",
                wasm: plugins::SQLITE,
                connection: Some("dst"),
                config: "table = \"t\"",
            },
        ],
        &["out"],
    ));
    assert_eq!(written(&s), (2, 2, 0));
    assert_eq!(
        lite_rows(&lite, "SELECT * FROM t ORDER BY id"),
        [
            "1|-32768|9223372036854775807|1.5|0.1|1|héllo 'quoted' \"x\"|short|ab  |x00ff10|\
             2026-11-27T10:00:00.123456Z|2026-11-27T08:00:00.500000Z|2026-02-28|12.500|\
             a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|{\"b\": [1, 2], \"a\": null}|{\"k\": {\"n\": 1.25}}|\
             10.1.2.3/24|1 day 02:03:04.5|{1,NULL,3}|happy",
            "2|-|-|-|-|-|-|-|-|-|-|-|-|-|-|-|-|-|-|-|-",
        ]
    );

    // SQLite -> PG: the same values as the original.
    let back = server.create_database("sql_types_back");
    server.psql(&back, TYPES_DDL);
    let s2 = Sandbox::new();
    std::fs::copy(&lite, s2.path("in/t.db")).unwrap();
    s2.manifest(&manifest(
        10,
        &[("src", "sqlite:in/t.db".into()), ("dst", server.url(&back))],
        &[
            Stage {
                name: "src",
                kind: "source",
                wasm: plugins::SQLITE,
                connection: Some("src"),
                config: "mode = \"full\", table = \"t\"",
            },
            Stage {
                name: "out",
                kind: "sink",
                wasm: plugins::POSTGRES,
                connection: Some("dst"),
                config: "table = \"t\"",
            },
        ],
        &["out"],
    ));
    assert_eq!(written(&s2), (2, 2, 0));
    assert_eq!(dump(&back), original, "PG -> SQLite -> PG");

    // A row deleted at the source goes from SQLite at the next full sync.
    server.psql(&src, "DELETE FROM t WHERE id = 2");
    assert_eq!(written(&s), (2, 2, 0), "one upsert, one delete");
    assert_eq!(lite_rows(&lite, "SELECT id FROM t"), ["1"]);
}

#[test]
fn sink_throughput_into_postgres_and_sqlite() {
    const N: usize = 20_000;
    let server = pg::server();
    let db = server.create_database("sql_speed");
    server.psql(
        &db,
        "CREATE TABLE events (id bigint PRIMARY KEY, kind text, amount double precision, at timestamptz, payload jsonb);",
    );
    let mut lines = String::with_capacity(N * 120);
    for i in 0..N {
        lines.push_str(&format!(
            "{{\"id\": {i}, \"kind\": \"k{}\", \"amount\": {}.5, \"at\": \"2026-11-27T10:{:02}:00Z\", \"payload\": {{\"n\": {i}}}}}\n",
            i % 7,
            i % 1000,
            i % 60
        ));
    }
    let mut report = Vec::new();
    for (wasm, url, label) in [
        (plugins::POSTGRES, server.url(&db), "PostgreSQL"),
        (plugins::SQLITE, "sqlite:out/events.db".to_owned(), "SQLite"),
    ] {
        let s = Sandbox::new();
        s.write("in/events.jsonl", &lines);
        if label == "SQLite" {
            lite_exec(
                &s.path("out/events.db"),
                &[
                    "CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT, amount REAL, at TIMESTAMP, payload JSON)",
                ],
            );
        }
        s.manifest(&manifest(
            1000,
            &[("db", url)],
            &[
                Stage {
                    name: "src",
                    kind: "source",
                    wasm: plugins::FILE,
                    connection: None,
                    config: "path = \"/in/events.jsonl\"",
                },
                Stage {
                    name: "out",
                    kind: "sink",
                    wasm,
                    connection: Some("db"),
                    config: "table = \"events\"",
                },
            ],
            &["out"],
        ));
        // Compile (and cache) the components first, so the time is the sync's.
        s.plan().expect("plans");
        let began = Instant::now();
        assert_eq!(written(&s), (N as u64, N as u64, 0));
        let secs = began.elapsed().as_secs_f64();
        report.push(format!(
            "{label}: {N} rows in {secs:.2} s, {:.0} rows/s",
            N as f64 / secs
        ));
    }
    let sum: usize = (0..N).map(|i| i % 1000).sum::<usize>() + N / 2;
    assert_eq!(
        pg_rows(
            server,
            &db,
            "SELECT count(*), sum(amount)::bigint FROM events"
        ),
        [format!("{N}|{sum}")]
    );
    eprintln!(
        "sink throughput (file source, batches of 1000, debug host): {}",
        report.join("; ")
    );
}

/// The sink's statements against the real PostgreSQL without WebAssembly:
/// `ferry_sql` over the host's own SQL backend, for what no pipeline of
/// this repository produces yet (deletes carrying versions, `fetch`).
mod statements {
    use ferry_host::sql::{
        ConnectionSpec, SqlErrorKind as HostKind, SqlHub, SqlTransaction, SqlValue, Tls,
    };
    use ferry_plugin::sql::{ColumnInfo, Rows, SqlError, SqlErrorKind, Value};
    use ferry_plugin::{Batch, BatchBuilder, Op, TextList, WriteReport, types};
    use ferry_sql::db::{Database, Tx};
    use ferry_sql::{Dialect, SinkConfig, TableSink};

    use super::T;
    use crate::support::pg;

    struct HubDb {
        hub: SqlHub,
        spec: ConnectionSpec,
    }

    fn to_host(v: &Value) -> SqlValue {
        match v {
            Value::Null => SqlValue::Null,
            Value::Int(n) => SqlValue::Int(*n),
            Value::Float(x) => SqlValue::Float(*x),
            Value::Boolean(b) => SqlValue::Bool(*b),
            Value::Text(s) => SqlValue::Text(s.clone()),
            Value::Bytes(b) => SqlValue::Bytes(b.clone()),
            Value::Timestamp(t) => SqlValue::Timestamp(*t),
            Value::Json(s) => SqlValue::Json(s.clone()),
        }
    }

    fn from_host(v: SqlValue) -> Value {
        match v {
            SqlValue::Null => Value::Null,
            SqlValue::Int(n) => Value::Int(n),
            SqlValue::Float(x) => Value::Float(x),
            SqlValue::Bool(b) => Value::Boolean(b),
            SqlValue::Text(s) => Value::Text(s),
            SqlValue::Bytes(b) => Value::Bytes(b),
            SqlValue::Timestamp(t) => Value::Timestamp(t),
            SqlValue::Json(s) => Value::Json(s),
        }
    }

    fn rows(r: ferry_host::sql::SqlRows) -> Rows {
        Rows {
            columns: r
                .columns
                .into_iter()
                .map(|c| ColumnInfo {
                    name: c.name,
                    type_name: c.type_name,
                })
                .collect(),
            rows: r
                .rows
                .into_iter()
                .map(|row| row.into_iter().map(from_host).collect())
                .collect(),
        }
    }

    fn error(e: ferry_host::sql::SqlError) -> SqlError {
        SqlError {
            kind: match e.kind {
                HostKind::Denied => SqlErrorKind::Denied,
                HostKind::Retryable => SqlErrorKind::Retryable,
                HostKind::Constraint => SqlErrorKind::Constraint,
                HostKind::Failed => SqlErrorKind::Failed,
            },
            code: e.code,
            message: e.message,
        }
    }

    fn params(p: &[Value]) -> Vec<SqlValue> {
        p.iter().map(to_host).collect()
    }

    impl Database for HubDb {
        fn dialect(&self) -> Dialect {
            Dialect::Postgres
        }
        fn query(&mut self, sql: &str, p: &[Value]) -> Result<Rows, SqlError> {
            self.hub
                .query(&self.spec, sql, params(p), T)
                .map(rows)
                .map_err(error)
        }
        fn execute(&mut self, sql: &str, p: &[Value]) -> Result<u64, SqlError> {
            self.hub
                .execute(&self.spec, sql, params(p), T)
                .map_err(error)
        }
        fn begin(&mut self) -> Result<Box<dyn Tx + '_>, SqlError> {
            let tx = self
                .hub
                .begin(
                    &self.spec,
                    ferry_host::sql::Isolation::ReadCommitted,
                    false,
                    T,
                )
                .map_err(error)?;
            Ok(Box::new(HubTx(tx)))
        }
    }

    struct HubTx(SqlTransaction);

    impl Tx for HubTx {
        fn query(&mut self, sql: &str, p: &[Value]) -> Result<Rows, SqlError> {
            self.0.query(sql, params(p), T).map(rows).map_err(error)
        }
        fn execute(&mut self, sql: &str, p: &[Value]) -> Result<u64, SqlError> {
            self.0.execute(sql, params(p), T).map_err(error)
        }
        fn commit(mut self: Box<Self>) -> Result<(), SqlError> {
            self.0.commit(T).map_err(error)
        }
    }

    fn sink(db: &str, config: &str) -> TableSink<HubDb> {
        let spec = ConnectionSpec {
            name: "pg".into(),
            dialect: ferry_host::sql::Dialect::Postgres,
            url: pg::server().url(db),
            password: None,
            tls: Tls::Disable,
            ca_file: None,
            pool_size: 2,
            transaction_timeout: ferry_host::sql::DEFAULT_TRANSACTION_TIMEOUT,
        };
        let config: SinkConfig = ferry_plugin::config::parse(config).unwrap();
        TableSink::open(
            HubDb {
                hub: SqlHub::new(),
                spec,
            },
            config,
        )
        .unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn batch(build: impl FnOnce(&mut BatchBuilder)) -> Batch {
        let mut b = BatchBuilder::new();
        build(&mut b);
        Batch::from_raw(b.finish()).unwrap()
    }

    fn rows_of(report: &[ferry_plugin::RecordIssue]) -> Vec<u32> {
        let mut r: Vec<u32> = report.iter().map(|i| i.row).collect();
        r.sort();
        r
    }

    #[test]
    fn version_checked_upserts_and_deletes_on_postgres() {
        let server = pg::server();
        let db = server.create_database("sql_stmt_versions");
        server.psql(
            &db,
            "CREATE TABLE doc (id uuid PRIMARY KEY, body jsonb, amount numeric(10,2), tags text[], v bigint);
             INSERT INTO doc VALUES
               ('00000000-0000-0000-0000-00000000000a', '{\"s\": 1}', 1.50, '{x}', 5),
               ('00000000-0000-0000-0000-00000000000b', '{\"s\": 1}', 1.50, '{x}', 5),
               ('00000000-0000-0000-0000-00000000000c', '{\"s\": 1}', 1.50, '{x}', 5),
               ('00000000-0000-0000-0000-00000000000d', '{\"s\": 1}', 1.50, '{x}', NULL);",
        );
        let mut s = sink(
            &db,
            r#"{"connection":"pg","table":"doc","version_column":"v"}"#,
        );
        let b = batch(|b| {
            // Newer: written. Older: conflict. Same version and values (the
            // key in upper case, the amount as 1.5, the JSON spaced
            // otherwise): written. Same version, other values: conflict.
            // Stored version NULL: written.
            b.row("00000000-0000-0000-0000-00000000000a", Op::Upsert)
                .set_json("body", "{\"s\": 2}")
                .set("amount", 3)
                .set("tags", "{y,z}")
                .version(6);
            b.row("00000000-0000-0000-0000-00000000000b", Op::Upsert)
                .set_json("body", "{\"s\": 0}")
                .set("amount", 1)
                .set("tags", "{x}")
                .version(4);
            b.row("00000000-0000-0000-0000-00000000000C", Op::Upsert)
                .set_json("body", "{ \"s\" : 1 }")
                .set("amount", 1.5)
                .set("tags", "{x}")
                .version(5);
            b.row("00000000-0000-0000-0000-00000000000e", Op::Upsert)
                .set_json("body", "{}")
                .set("amount", 0)
                .set("tags", "{}")
                .version(1);
            b.row("00000000-0000-0000-0000-00000000000d", Op::Upsert)
                .set_json("body", "{\"s\": 9}")
                .set("amount", 9)
                .set("tags", "{}")
                .version(2);
        });
        let report = s.write(&b).unwrap();
        assert_eq!(rows_of(&report.conflicts), [1], "{report:?}");
        assert!(report.rejected.is_empty(), "{report:?}");
        // Twice: still only the older one.
        assert_eq!(rows_of(&s.write(&b).unwrap().conflicts), [1]);
        let c_other = batch(|b| {
            b.row("00000000-0000-0000-0000-00000000000c", Op::Upsert)
                .set_json("body", "{\"s\": 7}")
                .set("amount", 1.5)
                .set("tags", "{x}")
                .version(5);
        });
        assert_eq!(rows_of(&s.write(&c_other).unwrap().conflicts), [0]);
        assert_eq!(
            super::pg_rows(
                server,
                &db,
                "SELECT right(id::text, 1), body, amount, tags, v FROM doc ORDER BY id"
            ),
            [
                "a|{\"s\": 2}|3.00|{y,z}|6",
                "b|{\"s\": 1}|1.50|{x}|5",
                "c|{\"s\": 1}|1.50|{x}|5",
                "d|{\"s\": 9}|9.00|{}|2",
                "e|{}|0.00|{}|1",
            ]
        );
        // Deletes with versions: not newer than stored goes, older stays.
        let d = batch(|b| {
            b.row("00000000-0000-0000-0000-00000000000a", Op::Delete)
                .version(5);
            b.row("00000000-0000-0000-0000-00000000000b", Op::Delete)
                .version(5);
            b.row("00000000-0000-0000-0000-00000000000f", Op::Delete)
                .version(1);
        });
        let report = s.write(&d).unwrap();
        assert_eq!(rows_of(&report.conflicts), [0]);
        assert_eq!(
            super::pg_rows(
                server,
                &db,
                "SELECT right(id::text, 1) FROM doc ORDER BY id"
            ),
            ["a", "c", "d", "e"]
        );
        // Without versions, deletes are unconditional.
        let d = batch(|b| {
            b.row("00000000-0000-0000-0000-00000000000a", Op::Delete);
        });
        assert_eq!(s.write(&d).unwrap(), WriteReport::ok());
        assert_eq!(
            super::pg_rows(server, &db, "SELECT count(*) FROM doc"),
            ["3"]
        );
    }

    #[test]
    fn fetch_composite_keys_renames_and_create_table_on_postgres() {
        let server = pg::server();
        let db = server.create_database("sql_stmt_fetch");
        let mut s = sink(
            &db,
            r#"{"connection":"pg","table":"made.stock","key":["site","sku"],"create_table":true,"version_column":"changed",
                "columns":{"warehouse":"site","sku":"sku","count":"qty","when":"changed"}}"#,
        );
        server.psql(&db, "CREATE SCHEMA made");
        let b = batch(|b| {
            b.row("[\"north\",1]", Op::Upsert)
                .set("warehouse", "north")
                .set("sku", 1)
                .set("count", 5)
                .set_timestamp("when", 1_000_000);
            b.row("[\"south\",2]", Op::Upsert)
                .set("count", 7)
                .updated_at(2_000_000);
        });
        assert_eq!(s.write(&b).unwrap(), WriteReport::ok());
        assert_eq!(
            super::pg_rows(
                server,
                &db,
                "SELECT column_name || ' ' || data_type FROM information_schema.columns WHERE table_name = 'stock' ORDER BY ordinal_position"
            ),
            [
                "site text",
                "sku bigint",
                "qty bigint",
                "changed timestamp with time zone"
            ]
        );
        let keys = [
            "[\"north\",1]",
            "[\"nowhere\",9]",
            "not a key",
            "[\"south\",2]",
        ];
        let mut offsets = vec![0u32];
        let mut data = Vec::new();
        for k in keys {
            data.extend_from_slice(k.as_bytes());
            offsets.push(data.len() as u32);
        }
        let keys = TextList::from_raw(types::Texts { offsets, data }, keys.len(), "keys").unwrap();
        let fetched = Batch::from_raw(s.fetch(&keys).unwrap()).unwrap();
        let got: Vec<serde_json::Value> = fetched.rows().map(|r| r.to_json()).collect();
        assert_eq!(
            fetched.keys().iter().collect::<Vec<_>>(),
            ["[\"north\",1]", "[\"south\",2]"]
        );
        assert_eq!(
            got,
            [
                serde_json::json!({ "warehouse": "north", "sku": 1, "count": 5, "when": "1970-01-01T00:00:01Z" }),
                serde_json::json!({ "warehouse": "south", "sku": 2, "count": 7, "when": "1970-01-01T00:00:02Z" }),
            ]
        );
        assert_eq!(fetched.row(1).unwrap().updated_at(), Some(2_000_000));
    }

    #[test]
    fn refused_rows_are_found_and_the_rest_written_on_postgres() {
        let server = pg::server();
        let db = server.create_database("sql_stmt_rejects");
        server.psql(
            &db,
            "CREATE TABLE t (id int PRIMARY KEY, email text UNIQUE, n smallint, ip inet);",
        );
        let mut s = sink(&db, r#"{"connection":"pg","table":"t"}"#);
        let b = batch(|b| {
            for i in 0..1000 {
                let mut r = b.row(&i.to_string(), Op::Upsert);
                r.set("email", format!("u{i}").as_str());
                match i {
                    17 => r.set("n", 40_000),             // refused by the plugin: out of range
                    500 => r.set("ip", "not an address"), // refused by PostgreSQL
                    _ => r.set("n", 1).set("ip", "10.0.0.1"),
                };
            }
        });
        let report = s.write(&b).unwrap();
        assert_eq!(rows_of(&report.rejected), [17, 500]);
        assert!(
            report
                .rejected
                .iter()
                .any(|r| r.reason.contains("40000: out of range")),
            "{report:?}"
        );
        assert!(
            report
                .rejected
                .iter()
                .any(|r| r.reason.contains("invalid input syntax for type inet")
                    && r.reason.contains("[22P02]")),
            "{report:?}"
        );
        assert_eq!(
            super::pg_rows(server, &db, "SELECT count(*) FROM t"),
            ["998"]
        );
        // Two records refused only together: no single culprit, the batch
        // fails (the host then splits it).
        let clash = batch(|b| {
            b.row("2000", Op::Upsert).set("email", "same");
            b.row("2001", Op::Upsert).set("email", "same");
        });
        let e = s.write(&clash).unwrap_err();
        assert!(matches!(e, ferry_plugin::PluginError::Fatal(_)), "{e:?}");
        assert!(e.message().contains("duplicate key"), "{e:?}");
        // A table gone is not the data's fault.
        server.psql(&db, "DROP TABLE t");
        let e = s
            .write(&batch(|b| {
                b.row("1", Op::Upsert).set("email", "x");
            }))
            .unwrap_err();
        assert!(
            matches!(e, ferry_plugin::PluginError::Fatal(_))
                && e.message().contains("does not exist"),
            "{e:?}"
        );
    }
}
