//! The PostgreSQL CDC source (`plugins/postgres-cdc`, served by the
//! `postgres` connector for `mode = "cdc"`) in real pipelines, against the
//! server of support/pg.rs, into the file sink (`include_meta`, so each
//! line shows its key and operation):
//!
//! - inserts, updates (a key change too), deletes, typed columns, several
//!   tables in one pipeline, in commit order;
//! - a transaction larger than a batch, and a second run that reads
//!   nothing again;
//! - the initial copy (`snapshot = true`) while a writer changes the table,
//!   with changes made between the slot's creation and the copy skipped
//!   because the copy already holds them;
//! - `ferry run` killed with SIGKILL while a writer keeps changing the
//!   table (a `follow` pipeline), during the copy and while streaming, and
//!   restarted: no change missed, duplicates only from the last committed
//!   checkpoint on, never from inside a transaction that fits in a batch;
//! - the configuration errors an operator must fix, with the fix.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::pg::{self, Postgres};
use crate::support::{Sandbox, ferry_bin, plugins};

/// A pipeline from the CDC source to `/out/out.jsonl`.
struct Pipeline<'a> {
    url: String,
    slot: &'a str,
    tables: &'a [&'a str],
    /// More source settings, `key = value, ...`.
    extra: &'a str,
    mode: &'a str,
    batch: u32,
}

impl Pipeline<'_> {
    fn manifest(&self) -> String {
        let tables: Vec<String> = self.tables.iter().map(|t| format!("\"{t}\"")).collect();
        let extra = if self.extra.is_empty() {
            String::new()
        } else {
            format!(", {}", self.extra)
        };
        format!(
            r#"[pipeline]
name = "cdc"
mode = "{mode}"
poll_interval_ms = 50
batch = {{ max_records = {batch}, max_wait_ms = 20 }}

[connections.ops]
url = "{url}"

[plugins.src]
kind = "source"
wasm = "{wasm}"
config = {{ connection = "ops", mode = "cdc", slot = "{slot}", publication = "{slot}_pub", tables = [{tables}]{extra} }}
grants = {{ sql = ["ops"], timeout_ms = 60000, memory_mb = 256 }}
retry = {{ attempts = 30, backoff_ms = 100, max_backoff_ms = 1000 }}

[plugins.out]
kind = "sink"
wasm = "{{FILE}}"
config = {{ path = "/out/out.jsonl", include_meta = true }}
grants = {{ files = [{{ host = "out", guest = "/out", mode = "rw" }}] }}

[[routes]]
from = "src"
to = ["out"]
"#,
            mode = self.mode,
            batch = self.batch,
            url = self.url,
            wasm = plugins::POSTGRES,
            slot = self.slot,
            tables = tables.join(", "),
        )
    }
}

/// A database with `sql` run in it.
fn database(hint: &str, sql: &str) -> (&'static Postgres, String) {
    let server = pg::server();
    let db = server.create_database(hint);
    if !sql.is_empty() {
        change(server, &db, sql);
    }
    (server, db)
}

/// Runs `sql` with synchronous commits. The test server runs with
/// `synchronous_commit = off`, and logical decoding sees a commit only once
/// its WAL is flushed (by the WAL writer, up to `wal_writer_delay` later):
/// a `once` run right after an asynchronous commit may not see it yet.
fn change(server: &Postgres, db: &str, sql: &str) {
    server.psql(db, &format!("SET synchronous_commit = on;\n{sql}"));
}

/// Runs the pipeline to its end in this process.
fn run(s: &Sandbox) -> ferry_pipeline::RunReport {
    s.run().unwrap_or_else(|e| panic!("the pipeline runs: {e}"))
}

/// What the sink wrote: `(key, op, the record without _key and _op)`.
fn lines(s: &Sandbox) -> Vec<(String, String, Value)> {
    s.jsonl("out/out.jsonl")
        .into_iter()
        .map(|mut r| {
            let o = r.as_object_mut().expect("an object per line");
            let key = o.remove("_key").and_then(|k| k.as_str().map(str::to_owned));
            let op = o.remove("_op").and_then(|k| k.as_str().map(str::to_owned));
            (key.expect("_key"), op.expect("_op"), r)
        })
        .collect()
}

/// The sink's lines applied in order: what a table fed by them would hold.
fn replay(lines: &[(String, String, Value)]) -> BTreeMap<String, Value> {
    let mut state = BTreeMap::new();
    for (key, op, record) in lines {
        match op.as_str() {
            "upsert" => {
                state.insert(key.clone(), record.clone());
            }
            "delete" => {
                state.remove(key);
            }
            other => panic!("unexpected op {other}"),
        }
    }
    state
}

/// The rows of table `t` (`id, v, seq, note`) by key, as the sink writes
/// them.
fn table_state(server: &Postgres, db: &str) -> BTreeMap<String, Value> {
    server
        .psql(db, "SELECT id, v, seq, coalesce(note, '~') FROM t ORDER BY id")
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            let id: i64 = f[0].parse().unwrap();
            let note = if f[3] == "~" { Value::Null } else { json!(f[3]) };
            (
                id.to_string(),
                json!({ "id": id, "v": f[1].parse::<i64>().unwrap(), "seq": f[2].parse::<i64>().unwrap(), "note": note }),
            )
        })
        .collect()
}

/// Asserts that the sink's lines replayed give the table's rows, naming
/// the first keys that differ.
fn assert_same(out: &[(String, String, Value)], table: &BTreeMap<String, Value>) {
    let got = replay(out);
    let keys: std::collections::BTreeSet<&String> = got.keys().chain(table.keys()).collect();
    let diff: Vec<String> = keys
        .into_iter()
        .filter(|k| got.get(*k) != table.get(*k))
        .take(10)
        .map(|k| {
            let lines: Vec<String> = out
                .iter()
                .filter(|(key, _, _)| key == k)
                .map(|(_, op, r)| format!("{op} {r}"))
                .collect();
            format!(
                "key {k}: replayed {:?}, table {:?}; lines: {lines:?}",
                got.get(k).map(Value::to_string),
                table.get(k).map(Value::to_string)
            )
        })
        .collect();
    assert!(
        diff.is_empty(),
        "{} keys differ:\n{}",
        diff.len(),
        diff.join("\n")
    );
}

/// A record without its null fields.
fn without_nulls(record: &Value) -> Value {
    let mut r = record.clone();
    if let Some(o) = r.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    r
}

/// The committed checkpoint, as JSON.
fn checkpoint(s: &Sandbox) -> Option<Value> {
    use ferry_state::StateStore;
    let bytes = s.state().checkpoint("cdc", "src").expect("state reads")?;
    Some(serde_json::from_slice(&bytes).expect("a JSON checkpoint"))
}

#[test]
fn inserts_updates_and_deletes_arrive_typed_and_in_commit_order() {
    let (server, db) = database(
        "cdc_basic",
        "CREATE TABLE orders (id int PRIMARY KEY, note text, amount numeric(12,2), at timestamptz, \
           day date, doc jsonb, blob bytea, ok boolean, score float8, big int8, uid uuid, n int2);
         CREATE SCHEMA shop;
         CREATE TABLE shop.items (order_id int, line text, qty int, PRIMARY KEY (order_id, line));",
    );
    let s = Sandbox::new();
    let p = Pipeline {
        url: server.url(&db),
        slot: "cdc_basic",
        tables: &["public.orders", "shop.items"],
        extra: "table_field = \"table\"",
        mode: "once",
        batch: 64,
    };
    s.manifest(&p.manifest());
    // The first run creates the publication and the slot: changes count
    // from there.
    assert_eq!(run(&s).accounting.read, 0);
    change(
        server,
        &db,
        "INSERT INTO orders VALUES (1, 'héllo ✓', 12.50, '2024-01-02 03:04:05.25+02', '2024-02-29', \
           '{\"a\": [1, 2]}', '\\x00ff', true, 1.5, 9007199254740993, \
           'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 7);
         BEGIN;
         INSERT INTO orders (id, note) VALUES (2, 'two'), (3, NULL);
         INSERT INTO shop.items VALUES (1, 'a', 5);
         UPDATE orders SET note = 'one' WHERE id = 1;
         DELETE FROM orders WHERE id = 3;
         COMMIT;
         UPDATE shop.items SET line = 'b' WHERE order_id = 1;
         UPDATE orders SET id = 20 WHERE id = 2;
         DELETE FROM shop.items;",
    );
    let report = run(&s);
    assert_eq!(report.accounting.read, 11);
    let out = lines(&s);
    let ops: Vec<(&str, &str)> = out
        .iter()
        .map(|(k, o, _)| (k.as_str(), o.as_str()))
        .collect();
    assert_eq!(
        ops,
        [
            ("1", "upsert"),
            ("2", "upsert"),
            ("3", "upsert"),
            (r#"["1","a"]"#, "upsert"),
            ("1", "upsert"),
            ("3", "delete"),
            (r#"["1","a"]"#, "delete"),
            (r#"["1","b"]"#, "upsert"),
            ("2", "delete"),
            ("20", "upsert"),
            (r#"["1","b"]"#, "delete"),
        ]
    );
    // A batch's columns are the union of its records' fields: the items'
    // columns are null on orders' lines.
    assert_eq!(
        without_nulls(&out[0].2),
        json!({
            "table": "public.orders", "id": 1, "note": "héllo ✓", "amount": "12.50",
            "at": "2024-01-02T01:04:05.250000Z", "day": "2024-02-29", "doc": { "a": [1, 2] },
            "blob": "AP8=", "ok": true, "score": 1.5, "big": 9007199254740993_i64,
            "uid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "n": 7
        })
    );
    assert_eq!(out[2].2["note"], Value::Null);
    assert_eq!(out[3].2["table"], json!("shop.items"));
    assert_eq!(out[3].2["qty"], json!(5));

    // Nothing is read twice, and the slot follows the committed checkpoint.
    assert_eq!(run(&s).accounting.read, 0);
    let cp = checkpoint(&s).expect("a checkpoint");
    assert_eq!(cp["v"], json!(1));
    assert!(cp.get("partial").is_none(), "{cp}");
    let confirmed = server.psql(
        &db,
        "SELECT confirmed_flush_lsn - '0/0'::pg_lsn FROM pg_replication_slots \
         WHERE slot_name = 'cdc_basic'",
    );
    let confirmed: u64 = confirmed.trim().parse().unwrap();
    assert!(
        confirmed <= cp["lsn"].as_u64().unwrap(),
        "the slot never passes the checkpoint"
    );
}

#[test]
fn unchanged_toasted_values_are_left_out_never_nulled() {
    let (server, db) = database(
        "cdc_toast",
        "CREATE TABLE doc (id int PRIMARY KEY, n int, big text);
         CREATE TABLE full_doc (id int PRIMARY KEY, n int, big text);
         ALTER TABLE full_doc REPLICA IDENTITY FULL;",
    );
    let s = Sandbox::new();
    let p = Pipeline {
        url: server.url(&db),
        slot: "cdc_toast",
        tables: &["doc", "full_doc"],
        extra: "",
        mode: "once",
        batch: 64,
    };
    s.manifest(&p.manifest());
    run(&s);
    // About 12 kB of hex digits: compressed, still stored out of line.
    change(
        server,
        &db,
        "INSERT INTO doc SELECT 1, 0, string_agg(md5(g::text), '') FROM generate_series(1, 400) g;
         INSERT INTO full_doc SELECT 1, 0, big FROM doc;
         INSERT INTO doc VALUES (2, 0, 'small');
         UPDATE doc SET n = 1;
         UPDATE full_doc SET n = 1;",
    );
    let big = server.psql(&db, "SELECT big FROM doc WHERE id = 1");
    let big = big.trim();
    assert!(big.len() > 10_000);
    run(&s);
    let out = lines(&s);
    let got: Vec<(&str, Option<&str>, Option<i64>)> = out
        .iter()
        .map(|(k, _, r)| {
            (
                k.as_str(),
                r.get("big").map(|b| b.as_str().unwrap_or("null")),
                r["n"].as_i64(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("1", Some(big), Some(0)),
            ("1", Some(big), Some(0)),
            ("2", Some("small"), Some(0)),
            // doc, default replica identity: the unchanged value was not
            // sent, and the line leaves it out rather than nulling it.
            ("1", None, Some(1)),
            ("2", Some("small"), Some(1)),
            // full_doc, REPLICA IDENTITY FULL: taken from the old row.
            ("1", Some(big), Some(1)),
        ]
    );
}

#[test]
fn a_transaction_larger_than_a_batch_is_delivered_whole() {
    let (server, db) = database(
        "cdc_large",
        "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL, seq bigint NOT NULL, note text);",
    );
    let s = Sandbox::new();
    let p = Pipeline {
        url: server.url(&db),
        slot: "cdc_large",
        tables: &["t"],
        extra: "",
        mode: "once",
        batch: 10,
    };
    s.manifest(&p.manifest());
    run(&s);
    change(
        server,
        &db,
        "INSERT INTO t SELECT g, g, g, 'big' FROM generate_series(1, 95) g;
         INSERT INTO t VALUES (1000, 0, 0, 'small');
         BEGIN; UPDATE t SET v = v + 1 WHERE id <= 3; DELETE FROM t WHERE id = 4; COMMIT;",
    );
    let report = run(&s);
    assert_eq!(report.accounting.read, 95 + 1 + 4);
    let out = lines(&s);
    let keys: Vec<&str> = out.iter().take(95).map(|(k, _, _)| k.as_str()).collect();
    let expected: Vec<String> = (1..=95).map(|i| i.to_string()).collect();
    assert_eq!(keys, expected);
    assert_same(&out, &table_state(server, &db));
    assert!(checkpoint(&s).unwrap().get("partial").is_none());
    assert_eq!(run(&s).accounting.read, 0);
}

/// A change the writer made.
#[derive(Debug, Clone)]
struct Change {
    key: String,
    delete: bool,
    seq: i64,
}

/// The writer's committed transactions, in commit order.
type Log = Vec<Vec<Change>>;

/// SplitMix64, seeded, as in crash.rs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A thread changing table `t` until told to stop: transactions of one to
/// four inserts, updates and deletes, and every `big_every`-th one of 40
/// changes. Keys are never reused, so a key has at most one delete.
struct Writer {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Log>,
}

impl Writer {
    fn start(
        server: &'static Postgres,
        db: &str,
        live: Vec<i64>,
        first_id: i64,
        big_every: u64,
    ) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let mut client = server.client(db);
        client
            .batch_execute("SET synchronous_commit = on")
            .expect("a synchronous session");
        let handle = std::thread::spawn(move || {
            let mut rng = Rng(0x5eed ^ first_id as u64);
            let mut live = live;
            let mut next_id = first_id;
            let mut seq = 1_000_000i64;
            let mut log = Log::new();
            let mut n = 0u64;
            while !flag.load(Ordering::Relaxed) {
                n += 1;
                let size = if big_every > 0 && n.is_multiple_of(big_every) {
                    40
                } else {
                    1 + rng.below(4)
                };
                let mut tx = client.transaction().expect("begin");
                let mut changes = Vec::new();
                for _ in 0..size {
                    seq += 1;
                    let dice = rng.below(10);
                    if live.is_empty() || dice < 5 {
                        let id = next_id;
                        next_id += 1;
                        tx.execute(
                            "INSERT INTO t VALUES ($1, 0, $2, 'w')",
                            &[&(id as i32), &seq],
                        )
                        .expect("insert");
                        live.push(id);
                        changes.push(Change {
                            key: id.to_string(),
                            delete: false,
                            seq,
                        });
                    } else if dice < 8 {
                        let id = live[rng.below(live.len() as u64) as usize];
                        tx.execute(
                            "UPDATE t SET v = v + 1, seq = $2 WHERE id = $1",
                            &[&(id as i32), &seq],
                        )
                        .expect("update");
                        changes.push(Change {
                            key: id.to_string(),
                            delete: false,
                            seq,
                        });
                    } else {
                        let id = live.swap_remove(rng.below(live.len() as u64) as usize);
                        tx.execute("DELETE FROM t WHERE id = $1", &[&(id as i32)])
                            .expect("delete");
                        changes.push(Change {
                            key: id.to_string(),
                            delete: true,
                            seq: 0,
                        });
                    }
                }
                tx.commit().expect("commit");
                log.push(changes);
                std::thread::sleep(Duration::from_millis(rng.below(3)));
            }
            log
        });
        Writer { stop, handle }
    }

    fn finish(self) -> Log {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("the writer ends")
    }
}

/// Checks the sink's lines against the writer's log: every change, in
/// commit order, with repeats only where a restart went back to a
/// committed checkpoint, which lies at a transaction boundary unless the
/// transaction is larger than a batch. Lines of keys the writer did not
/// make (the copy) are left out. Returns how many times it went back.
fn check_stream(log: &Log, out: &[(String, String, Value)], batch: usize) -> usize {
    let mut ideal: Vec<(&Change, usize, bool)> = Vec::new();
    for (t, tx) in log.iter().enumerate() {
        for (i, c) in tx.iter().enumerate() {
            ideal.push((c, t, i == 0));
        }
    }
    let mut upserts = HashMap::new();
    let mut deletes = HashMap::new();
    for (i, (c, _, _)) in ideal.iter().enumerate() {
        if c.delete {
            deletes.insert(c.key.clone(), i);
        } else {
            upserts.insert((c.key.clone(), c.seq), i);
        }
    }
    let mut expect = 0usize;
    let mut rewinds = 0;
    for (key, op, record) in out {
        let at = if op == "delete" {
            deletes.get(key)
        } else {
            let seq = record["seq"].as_i64().expect("seq");
            if seq < 1_000_000 {
                continue; // a copied row
            }
            upserts.get(&(key.clone(), seq))
        };
        let Some(&at) = at else {
            if op == "delete" {
                continue; // a delete of a copied row (not the writer's)
            }
            panic!("{key} {op} {record} was never written");
        };
        if at == expect {
            expect += 1;
            continue;
        }
        assert!(
            at < expect,
            "changes {expect}..{at} were missed (next seen: {key} {op} {record}); log {:?}",
            &ideal[expect..at.min(expect + 5)]
        );
        let (_, t, first) = ideal[at];
        assert!(
            first || log[t].len() > batch,
            "a restart went back into the middle of transaction {t} ({} changes), which fits in a batch",
            log[t].len()
        );
        rewinds += 1;
        expect = at + 1;
    }
    assert_eq!(expect, ideal.len(), "the last changes were not delivered");
    rewinds
}

/// `ferry run` of the sandbox's manifest, as a child process.
fn spawn_ferry(s: &Sandbox, log: &str) -> Child {
    Command::new(ferry_bin().expect("the ferry binary"))
        .args(["run", "--no-watch", "pipeline.toml"])
        .current_dir(s.dir.path())
        .env(
            "FERRY_CACHE_DIR",
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(s.path(log)).expect("a log file"))
        .spawn()
        .expect("ferry starts")
}

/// Lines in the sink's file now.
fn line_count(s: &Sandbox) -> usize {
    std::fs::read(s.path("out/out.jsonl"))
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}

/// Runs `ferry run` until the sink's file has grown by `grow` lines (or
/// `limit` passed), then kills it with SIGKILL.
fn run_and_kill(s: &Sandbox, k: usize, grow: usize, limit: Duration) {
    let before = line_count(s);
    let mut child = spawn_ferry(s, &format!("run{k}.log"));
    let started = Instant::now();
    while line_count(s) < before + grow && started.elapsed() < limit {
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!(
                "run {k} ended by itself ({status}):\n{}",
                std::fs::read_to_string(s.path(&format!("run{k}.log"))).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
}

#[test]
fn kill_9_mid_stream_then_restart_misses_nothing() {
    const BATCH: usize = 16;
    let (server, db) = database(
        "cdc_kill",
        "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL, seq bigint NOT NULL, note text);",
    );
    let s = Sandbox::new();
    let mut p = Pipeline {
        url: server.url(&db),
        slot: "cdc_kill",
        tables: &["public.t"],
        extra: "",
        mode: "once",
        batch: BATCH as u32,
    };
    s.manifest(&p.manifest());
    run(&s); // creates the slot
    p.mode = "follow";
    s.manifest(&p.manifest());
    let writer = Writer::start(server, &db, Vec::new(), 1, 7);
    let mut partial_seen = 0;
    for k in 0..6 {
        run_and_kill(&s, k, 150 + 97 * k, Duration::from_secs(20));
        if let Some(cp) = checkpoint(&s)
            && cp.get("partial").is_some()
        {
            partial_seen += 1;
        }
    }
    let log = writer.finish();
    p.mode = "once";
    s.manifest(&p.manifest());
    run(&s);
    let out = lines(&s);
    let rewinds = check_stream(&log, &out, BATCH);
    assert!(rewinds <= 6, "{rewinds} rewinds for 6 restarts");
    assert_same(&out, &table_state(server, &db));
    let changes: usize = log.iter().map(Vec::len).sum();
    eprintln!(
        "cdc kill test: {} transactions, {changes} changes, {} lines, {rewinds} restarts went back, \
         {partial_seen} kills left a checkpoint inside a large transaction",
        log.len(),
        out.len()
    );
}

#[test]
fn kill_9_inside_a_large_transaction_resumes_inside_it() {
    const BATCH: usize = 16;
    let (server, db) = database(
        "cdc_kill_large",
        "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL, seq bigint NOT NULL, note text);",
    );
    let s = Sandbox::new();
    let mut p = Pipeline {
        url: server.url(&db),
        slot: "cdc_kill_large",
        tables: &["public.t"],
        extra: "",
        mode: "once",
        batch: BATCH as u32,
    };
    s.manifest(&p.manifest());
    run(&s);
    change(
        server,
        &db,
        "INSERT INTO t SELECT g, 0, 1000000 + g, 'large' FROM generate_series(1, 6000) g;
         INSERT INTO t VALUES (6001, 0, 1006001, 'after');",
    );
    let log: Log = vec![
        (1..=6000)
            .map(|g| Change {
                key: g.to_string(),
                delete: false,
                seq: 1_000_000 + g,
            })
            .collect(),
        vec![Change {
            key: "6001".into(),
            delete: false,
            seq: 1_006_001,
        }],
    ];
    p.mode = "follow";
    s.manifest(&p.manifest());
    let mut inside = 0;
    for k in 0..3 {
        run_and_kill(&s, k, 1500, Duration::from_secs(20));
        let cp = checkpoint(&s).expect("a checkpoint");
        if let Some(partial) = cp.get("partial") {
            inside += 1;
            assert!(partial["done"].as_u64().unwrap() > 0, "{cp}");
        }
    }
    p.mode = "once";
    s.manifest(&p.manifest());
    run(&s);
    let out = lines(&s);
    check_stream(&log, &out, BATCH);
    assert!(
        inside > 0,
        "no kill left the checkpoint inside the transaction"
    );
    assert!(checkpoint(&s).unwrap().get("partial").is_none());
    assert_same(&out, &table_state(server, &db));
}

#[test]
fn the_copy_and_the_stream_meet_exactly() {
    let (server, db) = database(
        "cdc_copy",
        "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL, seq bigint NOT NULL, note text);
         INSERT INTO t SELECT g, 0, 0, 'before' FROM generate_series(1, 3000) g;
         CREATE PUBLICATION cdc_copy_pub FOR TABLE t;
         SELECT pg_create_logical_replication_slot('cdc_copy', 'pgoutput');",
    );
    // Changes after the slot's start but before the copy: the stream has
    // them, and so does the copy, which must win alone.
    change(
        server,
        &db,
        "INSERT INTO t SELECT g, 1, 1, 'between' FROM generate_series(5001, 5100) g;
         UPDATE t SET v = 1, seq = 1, note = 'between' WHERE id <= 50;
         DELETE FROM t WHERE id BETWEEN 51 AND 60;",
    );
    let s = Sandbox::new();
    let p = Pipeline {
        url: server.url(&db),
        slot: "cdc_copy",
        tables: &["public.t"],
        extra: "snapshot = true",
        mode: "once",
        batch: 50,
    };
    s.manifest(&p.manifest());
    let live: Vec<i64> = (61..=3000).chain(5001..=5100).collect();
    let writer = Writer::start(server, &db, live, 10_000, 0);
    std::thread::sleep(Duration::from_millis(50));
    run(&s);
    let log = writer.finish();
    run(&s); // the changes made after the first run caught up
    let out = lines(&s);
    assert_same(&out, &table_state(server, &db));
    // Each row changed between the slot's start and the copy came once,
    // from the copy, unless the writer changed it again.
    let touched: std::collections::HashSet<&str> =
        log.iter().flatten().map(|c| c.key.as_str()).collect();
    for id in (1..=50).chain(5001..=5100) {
        let key = id.to_string();
        if touched.contains(key.as_str()) {
            continue;
        }
        let n = out.iter().filter(|(k, _, _)| *k == key).count();
        assert_eq!(n, 1, "row {id}: {n} records");
    }
    for id in 51..=60 {
        let key = id.to_string();
        assert!(
            out.iter().all(|(k, _, _)| *k != key),
            "row {id} was deleted before the copy"
        );
    }
    assert!(checkpoint(&s).unwrap().get("copy").is_none());
}

#[test]
fn kill_9_during_the_copy_then_restart_ends_exactly_right() {
    let (server, db) = database(
        "cdc_copy_kill",
        "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL, seq bigint NOT NULL, note text);
         INSERT INTO t SELECT g, 0, 0, 'before' FROM generate_series(1, 20000) g;",
    );
    let s = Sandbox::new();
    let mut p = Pipeline {
        url: server.url(&db),
        slot: "cdc_copy_kill",
        tables: &["public.t"],
        extra: "snapshot = true",
        mode: "follow",
        batch: 100,
    };
    s.manifest(&p.manifest());
    let writer = Writer::start(server, &db, (1..=20000).collect(), 100_000, 0);
    let mut copying = 0;
    for k in 0..3 {
        run_and_kill(&s, k, 3000, Duration::from_secs(20));
        if checkpoint(&s).is_some_and(|cp| cp.get("copy").is_some()) {
            copying += 1;
        }
    }
    run_and_kill(&s, 3, 2000, Duration::from_secs(20));
    let log = writer.finish();
    p.mode = "once";
    s.manifest(&p.manifest());
    run(&s);
    let out = lines(&s);
    assert_same(&out, &table_state(server, &db));
    assert!(copying > 0, "no kill landed during the copy");
    assert!(checkpoint(&s).unwrap().get("copy").is_none());
    eprintln!(
        "cdc copy kill test: {} writer transactions, {} lines, {copying} kills during the copy",
        log.len(),
        out.len()
    );
}

/// The error a pipeline stops with.
fn failure(s: &Sandbox) -> String {
    match s.run() {
        Ok(r) => panic!("the pipeline ran: {:?}", r.accounting),
        Err(e) => e.to_string(),
    }
}

#[test]
fn configuration_errors_say_what_to_run() {
    let (server, db) = database(
        "cdc_errors",
        "CREATE TABLE nokey (id int, v int);
         CREATE TABLE ok (id int PRIMARY KEY);
         CREATE TABLE nothing (id int PRIMARY KEY);
         ALTER TABLE nothing REPLICA IDENTITY NOTHING;",
    );
    let s = Sandbox::new();
    let mut p = Pipeline {
        url: server.url(&db),
        slot: "cdc_errors",
        tables: &["public.nokey"],
        extra: "",
        mode: "once",
        batch: 10,
    };
    let check = |p: &Pipeline<'_>, wanted: &[&str]| {
        s.manifest(&p.manifest());
        let e = failure(&s);
        for w in wanted {
            assert!(e.contains(w), "{e:?} lacks {w:?}");
        }
    };
    check(&p, &["public.nokey has no primary key", "ADD PRIMARY KEY"]);
    p.tables = &["public.missing"];
    check(&p, &["\"public.missing\" does not exist"]);
    p.tables = &["nothing"];
    check(&p, &["REPLICA IDENTITY NOTHING", "REPLICA IDENTITY FULL"]);
    p.tables = &["ok"];
    p.extra = "create = false";
    check(
        &p,
        &["CREATE PUBLICATION \"cdc_errors_pub\" FOR TABLE \"public\".\"ok\""],
    );
    server.psql(&db, "CREATE PUBLICATION cdc_errors_pub FOR TABLE nokey");
    check(
        &p,
        &["ALTER PUBLICATION \"cdc_errors_pub\" ADD TABLE \"public\".\"ok\""],
    );
    server.psql(&db, "ALTER PUBLICATION cdc_errors_pub ADD TABLE ok");
    check(
        &p,
        &["pg_create_logical_replication_slot('cdc_errors', 'pgoutput')"],
    );
    p.slot = "Bad-Name";
    check(&p, &["config.slot"]);

    // A role without REPLICATION.
    server.psql(&db, "CREATE ROLE cdc_plain LOGIN");
    let mut plain = Pipeline {
        url: server.url(&db).replace("postgres@", "cdc_plain@"),
        slot: "cdc_plain",
        tables: &["ok"],
        extra: "",
        mode: "once",
        batch: 10,
    };
    check(&plain, &["ALTER ROLE \"cdc_plain\" REPLICATION"]);
    plain.extra = "snapshot = true";
    check(&plain, &["REPLICATION", "SELECT"]);
}

#[test]
fn wal_level_replica_is_refused_with_the_fix() {
    let server = Postgres::start_with(|_| vec![("wal_level".into(), "replica".into())]);
    let db = server.create_database("cdc_wal");
    server.psql(&db, "CREATE TABLE t (id int PRIMARY KEY)");
    let s = Sandbox::new();
    let p = Pipeline {
        url: server.url(&db),
        slot: "cdc_wal",
        tables: &["t"],
        extra: "",
        mode: "once",
        batch: 10,
    };
    s.manifest(&p.manifest());
    let e = failure(&s);
    assert!(e.contains("ALTER SYSTEM SET wal_level = logical"), "{e}");
}
