//! The SQL attacks on the sandbox, each by a hostile test program in a real
//! pipeline: a granted SQLite connection used to reach other files
//! (`test-hostile-sql-escape`), a `BEGIN` hidden from the host's text check
//! (`test-hostile-sql-begin`), results far larger than the plugin's
//! `max_output_mb` (`test-hostile-sql-huge-result`), transactions held
//! open and begun past the pool (`test-hostile-sql-hold`). Each test
//! asserts the attack is refused (and audited where it is a denial), the
//! files and acknowledged writes intact, the process alive.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_state::StateStore;

use crate::support::{Sandbox, ferry, ferry_bin, file_pipeline, interrupt, plugins};

/// The pipeline `file source -> probe -> file sink` over `lines`, the probe
/// being `wasm` with `config` and `grants`, and `connections` declared.
fn manifest(s: &Sandbox, lines: &str, wasm: &str, config: &str, grants: &str, connections: &str) {
    s.write("in/a.jsonl", lines);
    s.manifest(&pipeline(wasm, config, grants, connections));
}

/// The manifest text of [`manifest`].
fn pipeline(wasm: &str, config: &str, grants: &str, connections: &str) -> String {
    let extra = format!(
        "\n[plugins.probe]\nkind = \"mapper\"\nwasm = \"{wasm}\"\nconfig = {config}\ngrants = {grants}\n\n{connections}\n"
    );
    file_pipeline(r#"{ path = "/in/a.jsonl" }"#, &["probe"], &extra)
}

/// `id -> result` of what the sink wrote.
fn results(s: &Sandbox) -> HashMap<String, String> {
    s.jsonl("out/out.jsonl")
        .into_iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or("").to_string(),
                r["result"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// One JSON Lines record per `(id, field value)`.
fn lines(field: &str, rows: &[(&str, &str)]) -> String {
    rows.iter()
        .map(|(id, v)| format!("{}\n", serde_json::json!({ "id": id, field: v })))
        .collect()
}

/// The audit events of capability `sql` of pipeline `t`.
fn sql_denials(s: &Sandbox) -> Vec<ferry_state::AuditEvent> {
    s.state()
        .audit_events(Some("t"))
        .expect("the audit log")
        .into_iter()
        .filter(|e| e.capability == "sql")
        .collect()
}

pub mod escape {
    use super::*;

    /// A mapper granted one SQLite connection tries to attach ferry's state
    /// file (and delete its audit log), another database, to copy its own
    /// database outside every files grant, to learn the files' paths and to
    /// run pragmas outside the allow-list. Every attempt is refused as
    /// `denied` and audited; the audit log, the other database and the
    /// file system are untouched; the schema pragmas the connectors use
    /// still work.
    #[test]
    fn a_granted_sqlite_connection_reaches_no_other_file() {
        let s = Sandbox::new();
        std::fs::create_dir_all(s.path("data")).expect("data/");
        std::fs::create_dir_all(s.path("outside")).expect("outside/");
        {
            let c = rusqlite::Connection::open(s.path("data/app.db")).expect("app.db");
            c.execute_batch("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
                .expect("items");
            let c = rusqlite::Connection::open(s.path("data/secrets.db")).expect("secrets.db");
            c.execute_batch(
                "CREATE TABLE secrets (secret TEXT); INSERT INTO secrets VALUES ('hunter2')",
            )
            .expect("secrets");
        }
        // An event already in the audit log, which the attack would delete.
        let before = ferry_state::AuditEvent {
            id: 0,
            at_us: 1,
            pipeline: "earlier".into(),
            stage: "x".into(),
            plugin_digest: "0".repeat(64),
            capability: "network".into(),
            target: "tcp connect 169.254.169.254:80".into(),
            detail: "seeded by the test".into(),
        };
        s.state().record_audit(&before).expect("seed the audit log");
        let state_path = s.path(".ferry/state.db");
        let copy = s.path("outside/copy.db");
        let config = format!(
            "{{ connection = \"db\", state_path = {:?}, other_path = {:?}, vacuum_into = {:?} }}",
            state_path.display().to_string(),
            s.path("data/secrets.db").display().to_string(),
            copy.display().to_string(),
        );
        let ops = [
            "database_list",
            "database_list_fn",
            "attach_state",
            "detach",
            "attach_other",
            "vacuum_into",
            "vacuum",
            "pragma_unlisted",
            "query_only",
            "load_extension",
            "schema",
        ];
        let rows: Vec<(&str, &str)> = ops.iter().map(|op| (*op, *op)).collect();
        manifest(
            &s,
            &lines("op", &rows),
            plugins::TEST_HOSTILE_SQL_ESCAPE,
            &config,
            "{ sql = [\"db\"] }",
            "[connections.db]\nurl = \"sqlite:data/app.db\"\npool = 1\n",
        );
        let report = s.run().expect("the pipeline runs to its end");
        assert_eq!(report.accounting.written, ops.len() as u64);
        let got = results(&s);
        let expect = [
            ("database_list", "`PRAGMA database_list` is refused"),
            ("database_list_fn", "`PRAGMA database_list` is refused"),
            ("attach_state", "attaching a database file"),
            ("detach", "`DETACH st` is refused"),
            ("attach_other", "attaching a database file"),
            ("vacuum_into", "attaching a database file"),
            ("vacuum", "attaching a database file"),
            ("pragma_unlisted", "`PRAGMA synchronous` is refused"),
            ("query_only", "`PRAGMA query_only` is refused"),
            ("load_extension", "`load_extension()` is refused"),
        ];
        for (op, what) in expect {
            let result = &got[op];
            assert!(
                result.starts_with("denied: connection `db`: ") && result.contains(what),
                "{op}: {result}"
            );
            assert!(result.contains("plugins may"), "{op}: {result}");
        }
        assert_eq!(got["schema"], "ok: id, name");
        // Nothing leaked, nothing deleted, nothing written outside.
        assert!(!got.values().any(|r| r.contains("hunter2")), "{got:?}");
        assert!(!copy.exists(), "VACUUM INTO wrote {}", copy.display());
        let events = s.state().audit_events(None).expect("the audit log");
        assert!(
            events.iter().any(|e| e.detail == "seeded by the test"),
            "the audit log lost its events: {events:?}"
        );
        let denials = sql_denials(&s);
        assert_eq!(denials.len(), expect.len(), "{denials:?}");
        assert!(denials.iter().all(|e| e.stage == "probe"
            && e.target.ends_with("on connection `db`")
            && e.plugin_digest.len() == 64));
        assert!(
            denials
                .iter()
                .any(|e| e.target == "execute on connection `db`"
                    && e.detail.starts_with("attaching a database file")
                    && e.detail.contains("state.db")),
            "{denials:?}"
        );
        // `ferry audit-log` shows them.
        let log = ferry(&["audit-log", "pipeline.toml", "--json"], s.dir.path()).expect("ferry");
        assert_eq!(log.code, 0, "{}", log.stderr);
        assert!(
            log.stdout.contains("PRAGMA database_list"),
            "{}",
            log.stdout
        );
    }
}

pub mod begin {
    use super::*;
    use crate::support::pg;

    /// Statements that open a transaction while the host's text check sees
    /// no `BEGIN`: nested comments and `\r` (PostgreSQL ends a `--`
    /// comment there), an empty statement first (`;BEGIN`).
    const PG_HIDDEN: [&str; 3] = ["/* /* */ */ BEGIN", "-- x\rBEGIN", ";BEGIN"];
    /// SQLite nests no comments and ends `--` only at `\n`, but skips
    /// empty statements too.
    const SQLITE_HIDDEN: [&str; 2] = [";BEGIN", "; SAVEPOINT s"];

    /// Runs each hidden BEGIN followed by an INSERT on a pool of one
    /// connection; returns `id -> result`.
    fn run(
        s: &Sandbox,
        hidden: &[&str],
        insert: &str,
        connection: &str,
    ) -> HashMap<String, String> {
        let mut rows = Vec::new();
        let inserts: Vec<String> = (0..hidden.len())
            .map(|i| insert.replace("{}", &i.to_string()))
            .collect();
        let ids: Vec<(String, String)> = (0..hidden.len())
            .map(|i| (format!("hidden-{i}"), format!("insert-{i}")))
            .collect();
        for (i, h) in hidden.iter().enumerate() {
            rows.push((ids[i].0.as_str(), *h));
            rows.push((ids[i].1.as_str(), inserts[i].as_str()));
        }
        manifest(
            s,
            &lines("sql", &rows),
            plugins::TEST_HOSTILE_SQL_BEGIN,
            "{ connection = \"db\" }",
            "{ sql = [\"db\"], timeout_ms = 10000 }",
            connection,
        );
        let report = s.run().expect("the pipeline runs to its end");
        assert_eq!(report.accounting.written, rows.len() as u64);
        results(s)
    }

    fn check(s: &Sandbox, got: &HashMap<String, String>, n: usize) {
        for i in 0..n {
            let hidden = &got[&format!("hidden-{i}")];
            assert!(
                hidden
                    .starts_with("denied: connection `db`: the statement left a transaction open"),
                "hidden-{i}: {hidden}"
            );
            assert_eq!(got[&format!("insert-{i}")], "ok: 1", "insert-{i}");
        }
        let denials = sql_denials(s);
        assert_eq!(denials.len(), n, "{denials:?}");
        assert!(
            denials
                .iter()
                .all(|e| e.target == "execute on connection `db`"
                    && e.detail.contains("left a transaction open"))
        );
    }

    /// PostgreSQL, pool of one: before the fix each INSERT after a hidden
    /// BEGIN answered `ok: 1` and was never committed.
    #[test]
    fn a_hidden_begin_on_postgres_is_rolled_back_and_acknowledged_writes_stay() {
        let server = pg::server();
        let db = server.create_database("hostile_begin");
        server.psql(&db, "CREATE TABLE t (id int)");
        let s = Sandbox::new();
        let connection = format!(
            "[connections.db]\nurl = \"{}\"\npool = 1\n",
            server.url(&db)
        );
        let got = run(&s, &PG_HIDDEN, "INSERT INTO t VALUES ({})", &connection);
        check(&s, &got, PG_HIDDEN.len());
        assert_eq!(
            server.psql(&db, "SELECT count(*) FROM t").trim(),
            PG_HIDDEN.len().to_string(),
            "every acknowledged INSERT is committed"
        );
        assert_eq!(
            server
                .psql(
                    &db,
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                     AND state LIKE 'idle in transaction%'"
                )
                .trim(),
            "0",
            "no connection is left inside a transaction"
        );
    }

    /// SQLite, pool of one: the same with the statements SQLite reads as a
    /// BEGIN after an empty statement.
    #[test]
    fn a_hidden_begin_on_sqlite_is_rolled_back_and_acknowledged_writes_stay() {
        let s = Sandbox::new();
        std::fs::create_dir_all(s.path("data")).expect("data/");
        rusqlite::Connection::open(s.path("data/app.db"))
            .and_then(|c| c.execute_batch("CREATE TABLE t (id INTEGER)"))
            .expect("app.db");
        let got = run(
            &s,
            &SQLITE_HIDDEN,
            "INSERT INTO t VALUES ({})",
            "[connections.db]\nurl = \"sqlite:data/app.db\"\npool = 1\n",
        );
        check(&s, &got, SQLITE_HIDDEN.len());
        let n: i64 = rusqlite::Connection::open(s.path("data/app.db"))
            .and_then(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
            .expect("count");
        assert_eq!(n, SQLITE_HIDDEN.len() as i64);
    }
}

pub mod huge_result {
    use super::*;
    use crate::support::pg;

    /// The peak resident memory (VmHWM) a `ferry run` may reach above the
    /// same pipeline answering a one-row query.
    const RSS_MARGIN_KB: u64 = 300 * 1024;

    /// Runs the (following) pipeline with `ferry run` until
    /// the sink has written `expect` records; returns them and the
    /// process's VmHWM in kB, read while it still runs.
    fn run_child(s: &Sandbox, expect: usize) -> (HashMap<String, String>, u64) {
        let log = std::fs::File::create(s.path("ferry.log")).expect("log file");
        let mut child = Command::new(ferry_bin().expect("the ferry binary"))
            .args(["run", "pipeline.toml"])
            .current_dir(s.dir.path())
            .env(
                "FERRY_CACHE_DIR",
                Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("ferry run starts");
        let started = Instant::now();
        let out = s.path("out/out.jsonl");
        let done = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                panic!(
                    "ferry exited ({status}) before writing {expect} records: {}",
                    std::fs::read_to_string(s.path("ferry.log")).unwrap_or_default()
                );
            }
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            let complete: Vec<&str> = text
                .split_inclusive('\n')
                .filter(|l| l.ends_with('\n'))
                .collect();
            if complete.len() >= expect {
                break complete
                    .iter()
                    .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON"))
                    .map(|r| {
                        (
                            r["id"].as_str().unwrap_or("").to_string(),
                            r["result"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect::<HashMap<_, _>>();
            }
            assert!(
                started.elapsed() < Duration::from_secs(180),
                "no {expect} records after 3 minutes: {}",
                std::fs::read_to_string(s.path("ferry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
            .expect("the child's /proc status");
        let Some(hwm) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        else {
            // No VmHWM: the process is gone (a zombie).
            let status = child.wait().expect("wait");
            panic!(
                "ferry exited ({status}) after writing its records: {}",
                std::fs::read_to_string(s.path("ferry.log")).unwrap_or_default()
            );
        };
        interrupt(&child);
        let _ = child.wait();
        (done, hwm)
    }

    /// Runs `queries` (`(id, sql, in a transaction)`) through the probe
    /// with `max_output_mb = 16`, after a baseline run of a one-row query;
    /// returns the results and checks the peak memory stayed within
    /// [`RSS_MARGIN_KB`] of the baseline.
    fn attack(
        connection: &str,
        queries: &[(&str, &str, bool)],
        setup: impl Fn(&Sandbox),
    ) -> HashMap<String, String> {
        let grants = "{ sql = [\"db\"], max_output_mb = 16, memory_mb = 256, timeout_ms = 60000 }";
        let rows = |qs: &[(&str, &str, bool)]| -> String {
            qs.iter()
                .map(|(id, sql, tx)| {
                    format!(
                        "{}\n",
                        serde_json::json!({ "id": id, "sql": sql, "tx": if *tx { "yes" } else { "no" } })
                    )
                })
                .collect()
        };
        // `follow`: the pipeline stays up after its records, so its memory
        // can be read before it is stopped.
        let follow = pipeline(
            plugins::TEST_HOSTILE_SQL_HUGE_RESULT,
            "{ connection = \"db\" }",
            grants,
            connection,
        )
        .replace("name = \"t\"\n", "name = \"t\"\nmode = \"follow\"\n");
        let base = Sandbox::new();
        setup(&base);
        base.write("in/a.jsonl", &rows(&[("one", "SELECT 1", false)]));
        base.manifest(&follow);
        let (got, baseline) = run_child(&base, 1);
        assert_eq!(got["one"], "ok: 1 rows, 8 bytes");

        let s = Sandbox::new();
        setup(&s);
        s.write("in/a.jsonl", &rows(queries));
        s.manifest(&follow);
        let (got, peak) = run_child(&s, queries.len());
        eprintln!(
            "VmHWM: baseline {} MiB, under attack {} MiB",
            baseline / 1024,
            peak / 1024
        );
        assert!(
            peak <= baseline + RSS_MARGIN_KB,
            "peak RSS {} MiB, baseline {} MiB: more than {} MiB above",
            peak / 1024,
            baseline / 1024,
            RSS_MARGIN_KB / 1024
        );
        got
    }

    fn too_large(result: &str) -> bool {
        result.starts_with("failed: connection `db`: ")
            && result.contains("16 MiB")
            && result.contains("max_output_mb")
    }

    /// SQLite: one 900 MB value (stopped by `SQLITE_LIMIT_LENGTH`) and a
    /// recursive CTE of a thousand 1 MB values (stopped by the byte count
    /// while stepping), outside and inside a transaction; a result that
    /// fits still comes back.
    #[test]
    fn a_huge_sqlite_result_fails_and_memory_stays_bounded() {
        let one_value = "SELECT zeroblob(900000000)";
        let many_rows = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                         WHERE x < 1000) SELECT x, zeroblob(1000000) AS pad FROM c";
        let fits = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                    WHERE x < 10) SELECT zeroblob(1000000) FROM c";
        let got = attack(
            "[connections.db]\nurl = \"sqlite:data/app.db\"\n",
            &[
                ("one-value", one_value, false),
                ("many-rows", many_rows, false),
                ("many-rows-tx", many_rows, true),
                ("fits", fits, false),
            ],
            |s| std::fs::create_dir_all(s.path("data")).expect("data/"),
        );
        for id in ["one-value", "many-rows", "many-rows-tx"] {
            assert!(too_large(&got[id]), "{id}: {}", got[id]);
        }
        assert!(got["one-value"].contains("a string, blob or row is larger than"));
        assert!(got["many-rows"].contains("the result is larger than 16 MiB"));
        assert_eq!(got["fits"], "ok: 10 rows, 10000000 bytes");
    }

    /// PostgreSQL: a thousand 1 MB rows (the rows are counted as they
    /// stream in; the statement is cancelled), outside and inside a
    /// transaction, and one 100 MB row (it arrives whole, then is refused
    /// before it is decoded).
    #[test]
    fn a_huge_postgres_result_fails_and_memory_stays_bounded() {
        let server = pg::server();
        let db = server.create_database("hostile_huge");
        let many_rows = "SELECT g, repeat('x', 1000000) AS pad FROM generate_series(1, 1000) AS g";
        let got = attack(
            &format!("[connections.db]\nurl = \"{}\"\n", server.url(&db)),
            &[
                ("many-rows", many_rows, false),
                ("many-rows-tx", many_rows, true),
                ("one-row", "SELECT repeat('x', 100000000)", false),
                (
                    "fits",
                    "SELECT repeat('x', 1000) FROM generate_series(1, 10)",
                    false,
                ),
            ],
            |_| {},
        );
        for id in ["many-rows", "many-rows-tx", "one-row"] {
            assert!(too_large(&got[id]), "{id}: {}", got[id]);
            assert!(
                got[id].contains("the result is larger than 16 MiB"),
                "{id}: {}",
                got[id]
            );
        }
        assert_eq!(got["fits"], "ok: 10 rows, 10000 bytes");
        assert_eq!(
            server
                .psql(
                    &db,
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                     AND state = 'active' AND query LIKE '%generate_series%' \
                     AND pid <> pg_backend_pid()"
                )
                .trim(),
            "0",
            "the refused statements were cancelled"
        );
    }
}

pub mod hold {
    use super::*;

    /// A mapper begins a transaction, writes, and keeps it across calls on
    /// a pool of one: the host rolls it back after the connection's
    /// `transaction_timeout_ms` and takes the connection back, so the next
    /// call gets it (before the fix it waited out its whole timeout); the
    /// held transaction then fails saying why. On a pool of two, the third
    /// `begin` is denied at once (before, it waited for a connection the
    /// plugin itself held).
    #[test]
    fn held_transactions_are_rolled_back_and_bounded_by_the_pool() {
        let s = Sandbox::new();
        std::fs::create_dir_all(s.path("data")).expect("data/");
        for db in ["one", "two"] {
            rusqlite::Connection::open(s.path(&format!("data/{db}.db")))
                .and_then(|c| c.execute_batch("CREATE TABLE t (id INTEGER)"))
                .expect("db");
        }
        let rows = [
            ("1", "one", "hold"),
            ("2", "one", "count"),
            ("3", "one", "use_held"),
            ("4", "one", "write"),
            // Read-only: SQLite lets one writer in at a time.
            ("5", "two", "hold_read"),
            ("6", "two", "hold_read"),
            ("7", "two", "hold_read"),
        ];
        let lines: String = rows
            .iter()
            .map(|(id, db, op)| {
                format!("{}\n", serde_json::json!({ "id": id, "db": db, "op": op }))
            })
            .collect();
        s.write("in/a.jsonl", &lines);
        // One probe per connection; records go to the one named in `db`.
        let extra = format!(
            r#"
[plugins.one]
kind = "mapper"
wasm = "{wasm}"
config = {{ connection = "one", only = "one" }}
grants = {{ sql = ["one"], timeout_ms = 20000 }}

[plugins.two]
kind = "mapper"
wasm = "{wasm}"
config = {{ connection = "two", only = "two" }}
grants = {{ sql = ["two"], timeout_ms = 20000 }}

[connections.one]
url = "sqlite:data/one.db"
pool = 1
transaction_timeout_ms = 1000

[connections.two]
url = "sqlite:data/two.db"
pool = 2
"#,
            wasm = plugins::TEST_HOSTILE_SQL_HOLD
        );
        s.manifest(
            &file_pipeline(r#"{ path = "/in/a.jsonl" }"#, &["one", "two"], &extra)
                .replace("max_records = 64", "max_records = 1"),
        );
        let started = Instant::now();
        let report = s.run().expect("the pipeline runs to its end");
        let took = started.elapsed();
        assert_eq!(report.accounting.written, rows.len() as u64);
        let got = results(&s);
        assert_eq!(got["1"], "ok: holding 1");
        // The count waited for the reaper (about a second), not for its
        // whole timeout, and saw the held insert rolled back.
        assert_eq!(got["2"], "ok: 0");
        assert!(
            got["3"].starts_with("failed: connection `one`: transaction already finished: the host rolled it back after it had been open for 1s")
                && got["3"].contains("transaction_timeout_ms"),
            "{}",
            got["3"]
        );
        assert_eq!(got["4"], "ok: committed");
        assert_eq!(got["5"], "ok: holding 1");
        assert_eq!(got["6"], "ok: holding 2");
        assert!(
            got["7"].starts_with(
                "denied: connection `two`: this plugin already holds 2 open transactions on it"
            ) && got["7"].contains("pool = 2"),
            "{}",
            got["7"]
        );
        assert!(took < Duration::from_secs(15), "took {took:?}");
        let count = |db: &str| -> i64 {
            rusqlite::Connection::open(s.path(&format!("data/{db}.db")))
                .and_then(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
                .expect("count")
        };
        assert_eq!(count("one"), 1, "only the committed write");
        let denials = sql_denials(&s);
        assert_eq!(denials.len(), 1, "{denials:?}");
        assert_eq!(denials[0].stage, "two");
        assert_eq!(denials[0].target, "begin on connection `two`");
    }
}
