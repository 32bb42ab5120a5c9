//! Two-way sync between two real SQLite databases (and PostgreSQL in
//! `two_way_pg`): changes flow both ways without echoes, conflicts are
//! detected and settled per strategy, every conflict is in the audit log,
//! the manual queue blocks exactly the conflicting keys until `ferry
//! conflicts resolve`, owned fields, and a randomized run of concurrent
//! edits on both sides while the sync runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_pipeline::{RunOptions, RunReport};
use ferry_state::{AuditEvent, CONFLICT_CAPABILITY, ConflictFilter, StateStore};
use rusqlite::Connection;

use crate::support::pg::Postgres;
use crate::support::{Sandbox, ferry, plugins, run_plan};

/// A customer row: name, email, credit_limit, updated_at (micros).
pub type Row = (String, String, i64, i64);

/// A parameter of a test statement.
#[derive(Debug, Clone)]
pub enum P {
    I(i64),
    S(String),
}

/// One side's database, opened by the test to make edits and read back:
/// a SQLite file, or a database on the test PostgreSQL server.
pub enum Store {
    Lite(PathBuf),
    Pg(&'static Postgres, String),
}

const TABLE: &str = "CREATE TABLE IF NOT EXISTS customers (
    id BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT,
    credit_limit BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
)";

impl Store {
    pub fn lite(path: PathBuf) -> Store {
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("mkdir");
        let s = Store::Lite(path);
        s.exec("PRAGMA journal_mode = WAL", &[]);
        s.exec(TABLE, &[]);
        s
    }

    pub fn pg(server: &'static Postgres, db: String) -> Store {
        let s = Store::Pg(server, db);
        s.exec(TABLE, &[]);
        s
    }

    fn lite_conn(path: &PathBuf) -> Connection {
        let c = Connection::open(path).expect("open");
        c.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        c
    }

    /// Runs a statement (`$1`, `$2`... in order); returns the rows changed.
    pub fn exec(&self, sql: &str, params: &[P]) -> usize {
        match self {
            Store::Lite(path) => {
                let c = Self::lite_conn(path);
                let ps: Vec<Box<dyn rusqlite::ToSql>> = params
                    .iter()
                    .map(|p| -> Box<dyn rusqlite::ToSql> {
                        match p {
                            P::I(i) => Box::new(*i),
                            P::S(s) => Box::new(s.clone()),
                        }
                    })
                    .collect();
                if sql.starts_with("PRAGMA") {
                    c.query_row(sql, [], |_| Ok(())).expect(sql);
                    return 0;
                }
                c.execute(sql, rusqlite::params_from_iter(ps.iter()))
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
            Store::Pg(server, db) => {
                let mut c = server.client(db);
                c.batch_execute("SET synchronous_commit = on")
                    .expect("sync commit");
                let ps: Vec<Box<dyn postgres::types::ToSql + Sync>> = params
                    .iter()
                    .map(|p| -> Box<dyn postgres::types::ToSql + Sync> {
                        match p {
                            P::I(i) => Box::new(*i),
                            P::S(s) => Box::new(s.clone()),
                        }
                    })
                    .collect();
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    ps.iter().map(|b| b.as_ref()).collect();
                if params.is_empty() {
                    c.batch_execute(sql)
                        .unwrap_or_else(|e| panic!("{sql}: {e}"));
                    return 0;
                }
                c.execute(sql, &refs)
                    .unwrap_or_else(|e| panic!("{sql}: {e}")) as usize
            }
        }
    }

    /// Rows of integers and texts (`P`), for the queries below.
    pub fn query(&self, sql: &str, id: Option<i64>) -> Vec<Vec<P>> {
        match self {
            Store::Lite(path) => {
                let c = Self::lite_conn(path);
                let mut stmt = c.prepare(sql).expect(sql);
                let n = stmt.column_count();
                let params: Vec<i64> = id.into_iter().collect();
                stmt.query_map(rusqlite::params_from_iter(params.iter()), |r| {
                    (0..n)
                        .map(|i| {
                            Ok(match r.get_ref(i)? {
                                rusqlite::types::ValueRef::Integer(x) => P::I(x),
                                rusqlite::types::ValueRef::Null => P::S(String::new()),
                                other => {
                                    P::S(String::from_utf8_lossy(other.as_bytes()?).into_owned())
                                }
                            })
                        })
                        .collect()
                })
                .expect(sql)
                .collect::<Result<_, _>>()
                .expect(sql)
            }
            Store::Pg(server, db) => {
                let mut c = server.client(db);
                let rows = match id {
                    Some(id) => c.query(sql, &[&id]),
                    None => c.query(sql, &[]),
                }
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
                rows.iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| match r.try_get::<_, Option<i64>>(i) {
                                Ok(Some(x)) => P::I(x),
                                _ => P::S(r.get::<_, Option<String>>(i).unwrap_or_default()),
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    }

    pub fn upsert(&self, id: i64, row: &Row) {
        self.exec(
            "INSERT INTO customers (id, name, email, credit_limit, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, email = excluded.email,
               credit_limit = excluded.credit_limit, updated_at = excluded.updated_at",
            &[P::I(id), P::S(row.0.clone()), P::S(row.1.clone()), P::I(row.2), P::I(row.3)],
        );
    }

    pub fn delete(&self, id: i64) {
        self.exec("DELETE FROM customers WHERE id = $1", &[P::I(id)]);
    }

    fn row_of(cells: &[P]) -> Row {
        let text = |p: &P| match p {
            P::S(s) => s.clone(),
            P::I(i) => i.to_string(),
        };
        let int = |p: &P| match p {
            P::I(i) => *i,
            P::S(s) => s.parse().unwrap_or_default(),
        };
        (
            text(&cells[0]),
            text(&cells[1]),
            int(&cells[2]),
            int(&cells[3]),
        )
    }

    pub fn get(&self, id: i64) -> Option<Row> {
        self.query(
            "SELECT name, email, credit_limit, updated_at FROM customers WHERE id = $1",
            Some(id),
        )
        .first()
        .map(|r| Self::row_of(r))
    }

    pub fn rows(&self) -> BTreeMap<i64, Row> {
        self.query(
            "SELECT id, name, email, credit_limit, updated_at FROM customers ORDER BY id",
            None,
        )
        .iter()
        .map(|r| {
            let id = match r[0] {
                P::I(i) => i,
                _ => panic!("id"),
            };
            (id, Self::row_of(&r[1..]))
        })
        .collect()
    }
}

pub fn row(name: &str, limit: i64, at: i64) -> Row {
    (name.to_string(), format!("{name}@example.com"), limit, at)
}

/// A two-way sync manifest between `left.db` and `right.db` in `s`.
/// `settings` goes into `[sync]` (strategy, detect, ...); `extra` after it
/// (more plugins).
pub fn manifest(s: &Sandbox, mode: &str, settings: &str, extra: &str) -> PathBuf {
    let right = format!(
        r#"[connections.right]
url = "sqlite:right.db"

[plugins.billing]
kind = "connector"
wasm = "{sqlite}"
config = {{ connection = "right", table = "customers", key = "id" }}
grants = {{ sql = ["right"], timeout_ms = 30000 }}
"#,
        sqlite = plugins::SQLITE
    );
    manifest_with(
        s,
        mode,
        &right,
        "{ mode = \"full\" }",
        "{}",
        settings,
        extra,
    )
}

/// A manifest whose right side (connection and `billing` plugin) is given.
pub fn manifest_with(
    s: &Sandbox,
    mode: &str,
    right: &str,
    right_read: &str,
    right_write: &str,
    settings: &str,
    extra: &str,
) -> PathBuf {
    let text = format!(
        r#"[pipeline]
name = "customers"
mode = "{mode}"
poll_interval_ms = 50
batch = {{ max_records = 64 }}

[connections.left]
url = "sqlite:left.db"

[plugins.crm]
kind = "connector"
wasm = "{sqlite}"
config = {{ connection = "left", table = "customers", key = "id" }}
grants = {{ sql = ["left"], timeout_ms = 30000 }}

{right}
[sync]
left = {{ plugin = "crm", read = {{ mode = "full" }} }}
right = {{ plugin = "billing", read = {right_read}, write = {right_write} }}
fields = ["name", "email", "credit_limit", "updated_at"]
timestamp_field = "updated_at"
{settings}

{extra}"#,
        sqlite = plugins::SQLITE,
    );
    s.manifest(&text)
}

pub fn stores(s: &Sandbox) -> (Store, Store) {
    (
        Store::lite(s.path("left.db")),
        Store::lite(s.path("right.db")),
    )
}

pub fn once(s: &Sandbox) -> RunReport {
    s.run().unwrap_or_else(|e| panic!("the sync runs: {e}"))
}

pub fn conflict_events(s: &Sandbox) -> Vec<serde_json::Value> {
    conflict_events_of(s, "customers")
}

/// The conflict events of `pipeline`'s audit log: each detail, with the
/// event's `stage` and plugin `digest` added.
fn conflict_events_of(s: &Sandbox, pipeline: &str) -> Vec<serde_json::Value> {
    s.state()
        .audit_events(Some(pipeline))
        .expect("audit")
        .into_iter()
        .filter(|e: &AuditEvent| e.capability == CONFLICT_CAPABILITY)
        .map(|e| {
            let mut d: serde_json::Value = serde_json::from_str(&e.detail).expect("JSON detail");
            d["stage"] = e.stage.into();
            d["digest"] = e.plugin_digest.into();
            d
        })
        .collect()
}

#[test]
fn changes_flow_both_ways_deletes_included_and_nothing_echoes() {
    let s = Sandbox::new();
    let (left, right) = stores(&s);
    manifest(&s, "once", "strategy = \"last-writer-wins\"", "");
    for id in 1..=5 {
        left.upsert(id, &row(&format!("l{id}"), 100, 10));
    }
    right.upsert(6, &row("r6", 600, 10));
    let r = once(&s);
    assert_eq!(left.rows(), right.rows(), "first sync copies both ways");
    assert_eq!(left.rows().len(), 6);
    let sync = r.sync.expect("sync stats");
    assert_eq!(
        (sync.written_left, sync.written_right, sync.conflicts),
        (1, 5, 0)
    );

    // Nothing changed: a second pass writes nothing (ferry's own writes are
    // not changes).
    let r = once(&s);
    let sync = r.sync.expect("sync stats");
    assert_eq!((sync.written_left, sync.written_right), (0, 0), "no echo");

    // One-sided edits and deletes on each side.
    left.upsert(1, &row("l1-edited", 150, 20));
    right.upsert(2, &row("l2-edited-right", 250, 20));
    left.delete(3);
    right.delete(4);
    let r = once(&s);
    let sync = r.sync.expect("sync stats");
    assert_eq!(left.rows(), right.rows());
    let rows = left.rows();
    assert_eq!(rows[&1].0, "l1-edited");
    assert_eq!(rows[&2].0, "l2-edited-right");
    assert!(!rows.contains_key(&3) && !rows.contains_key(&4));
    assert_eq!(
        (sync.written_left, sync.written_right, sync.conflicts),
        (2, 2, 0)
    );
    let r = once(&s);
    let sync = r.sync.expect("sync stats");
    assert_eq!((sync.written_left, sync.written_right), (0, 0), "no echo");
    assert!(conflict_events(&s).is_empty());
}

#[test]
fn concurrent_edits_are_settled_by_each_strategy_and_audited() {
    // key 1: both edit different fields; key 2: both edit the same field;
    // key 3: left deletes, right edits. Left writes at t=20, right at t=30.
    struct Case {
        settings: &'static str,
        expect: [Option<Row>; 3],
    }
    let base = |id: i64| (format!("c{id}"), format!("c{id}@example.com"), 100, 10);
    let l1 = ("c1-left".to_string(), "c1@example.com".to_string(), 100, 20);
    let r1 = ("c1".to_string(), "c1@example.com".to_string(), 500, 30);
    let l2 = ("c2-left".to_string(), "c2@example.com".to_string(), 100, 20);
    let r2 = (
        "c2-right".to_string(),
        "c2@example.com".to_string(),
        100,
        30,
    );
    let r3 = ("c3".to_string(), "c3@example.com".to_string(), 300, 30);
    let merged1 = ("c1-left".to_string(), "c1@example.com".to_string(), 500, 30);
    let cases = [
        Case {
            settings: "strategy = \"last-writer-wins\"",
            // The delete is dated when ferry sees it, after t=30.
            expect: [Some(r1.clone()), Some(r2.clone()), None],
        },
        Case {
            settings: "strategy = \"first-writer-wins\"",
            expect: [Some(l1.clone()), Some(l2.clone()), Some(r3.clone())],
        },
        Case {
            settings: "strategy = \"left-wins\"",
            expect: [Some(l1.clone()), Some(l2.clone()), None],
        },
        Case {
            settings: "strategy = \"right-wins\"",
            expect: [Some(r1.clone()), Some(r2.clone()), Some(r3.clone())],
        },
        Case {
            settings: "strategy = \"merge\"\nmerge_fallback = \"right-wins\"",
            expect: [Some(merged1.clone()), Some(r2.clone()), Some(r3.clone())],
        },
        Case {
            settings: "strategy = \"merge\"\nmerge_fallback = \"left-wins\"\nfield_strategies = { name = \"right-wins\" }",
            expect: [Some(merged1.clone()), Some(r2.clone()), None],
        },
    ];
    for case in cases {
        let s = Sandbox::new();
        let (left, right) = stores(&s);
        manifest(&s, "once", case.settings, "");
        for id in 1..=3 {
            left.upsert(id, &base(id));
        }
        once(&s);
        assert_eq!(left.rows(), right.rows());
        left.upsert(1, &l1);
        right.upsert(1, &r1);
        left.upsert(2, &l2);
        right.upsert(2, &r2);
        left.delete(3);
        right.upsert(3, &r3);
        let r = once(&s);
        assert_eq!(
            left.rows(),
            right.rows(),
            "{}: both sides alike",
            case.settings
        );
        let rows = left.rows();
        for (i, want) in case.expect.iter().enumerate() {
            let id = i as i64 + 1;
            assert_eq!(rows.get(&id), want.as_ref(), "{}: key {id}", case.settings);
        }
        let sync = r.sync.expect("stats");
        assert_eq!(sync.conflicts, 3, "{}", case.settings);
        let events = conflict_events(&s);
        assert_eq!(
            events.len(),
            3,
            "{}: every conflict audited: {events:#?}",
            case.settings
        );
        for e in &events {
            assert_eq!(e["event"], "settled");
            assert!(e["ancestor"].is_object(), "{e}");
            assert!(
                e["decided_by"].as_str().unwrap().starts_with("strategy"),
                "{e}"
            );
            let key: i64 = e["key"].as_str().unwrap().parse().unwrap();
            let want = &case.expect[key as usize - 1];
            match want {
                Some(w) => assert_eq!(e["result"]["name"], w.0.as_str(), "{e}"),
                None => assert!(e["result"].is_null(), "{e}"),
            }
        }
        // Settled: the next pass writes nothing.
        let sync = once(&s).sync.expect("stats");
        assert_eq!(
            (sync.written_left, sync.written_right, sync.conflicts),
            (0, 0, 0)
        );
    }
}

fn follow(
    s: &Sandbox,
) -> (
    std::thread::JoinHandle<RunReport>,
    tokio::sync::watch::Sender<bool>,
) {
    let plan = s.plan().expect("plans");
    let (options, stop) = RunOptions::new();
    let state: Arc<dyn StateStore> = Arc::new(s.state());
    let handle = std::thread::spawn(move || run_plan(plan, state, options).expect("sync runs"));
    (handle, stop)
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn open_conflicts(s: &Sandbox) -> Vec<ferry_state::Conflict> {
    s.state()
        .conflicts(&ConflictFilter {
            pipeline: Some("customers".into()),
            statuses: vec![ferry_state::ConflictStatus::Open],
            key: None,
        })
        .expect("conflicts")
}

fn cli(s: &Sandbox, args: &[&str]) -> String {
    let out = ferry(args, &s.path("")).expect("ferry");
    assert_eq!(out.code, 0, "{args:?}: {}{}", out.stdout, out.stderr);
    out.stdout
}

#[test]
fn manual_conflicts_block_exactly_their_keys_until_resolved_with_the_cli() {
    let s = Sandbox::new();
    let (left, right) = stores(&s);
    manifest(&s, "once", "strategy = \"manual\"", "");
    for id in 1..=4 {
        left.upsert(id, &row(&format!("c{id}"), 100, 10));
    }
    once(&s);
    left.upsert(1, &row("c1-left", 100, 20));
    right.upsert(1, &row("c1-right", 100, 30));
    left.upsert(2, &row("c2-left", 200, 20));
    right.delete(2);
    left.upsert(3, &row("c3-left", 300, 20)); // one side only: syncs
    let r = once(&s);
    let sync = r.sync.expect("stats");
    assert_eq!((sync.conflicts, sync.queued), (2, 2));
    let open = open_conflicts(&s);
    let keys: Vec<&str> = open.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, ["1", "2"], "exactly the conflicting keys wait");
    assert_eq!(right.rows()[&3].0, "c3-left", "other keys go on");
    assert_eq!(
        right.rows()[&1].0,
        "c1-right",
        "a waiting key is not synced"
    );
    assert_eq!(left.rows()[&1].0, "c1-left");

    // A new edit while it waits is not synced either; the queue shows it.
    left.upsert(1, &row("c1-left-again", 110, 40));
    right.upsert(4, &row("c4-right", 400, 40));
    once(&s);
    assert_eq!(right.rows()[&1].0, "c1-right");
    assert_eq!(left.rows()[&4].0, "c4-right");
    let open = open_conflicts(&s);
    assert_eq!(open.len(), 2);
    assert_eq!(open[0].left["fields"]["name"]["text"], "c1-left-again");

    let status = cli(&s, &["status", "pipeline.toml"]);
    assert!(
        status.contains("conflicts 2 waiting for a decision: ferry conflicts list"),
        "{status}"
    );
    let list = cli(&s, &["conflicts", "list", "pipeline.toml"]);
    assert!(list.contains("2 conflicts"), "{list}");
    let show = cli(
        &s,
        &[
            "conflicts",
            "show",
            &open[0].id.to_string(),
            "pipeline.toml",
        ],
    );
    assert!(
        show.contains("c1-left-again") && show.contains("c1-right"),
        "{show}"
    );
    assert!(
        show.contains("* name"),
        "the differing field is marked: {show}"
    );
    cli(
        &s,
        &[
            "conflicts",
            "resolve",
            &open[0].id.to_string(),
            "pipeline.toml",
            "--take",
            "right",
            "--by",
            "ops@example.com",
        ],
    );
    let merged = r#"{"name": "c2-merged", "email": "c2@example.com", "credit_limit": 250, "updated_at": 50}"#;
    cli(
        &s,
        &[
            "conflicts",
            "resolve",
            &open[1].id.to_string(),
            "pipeline.toml",
            "--take",
            "merged",
            "--merged",
            merged,
        ],
    );
    let again = ferry(
        &[
            "conflicts",
            "resolve",
            &open[1].id.to_string(),
            "pipeline.toml",
            "--take",
            "left",
        ],
        &s.path(""),
    )
    .expect("ferry");
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("decided already"), "{}", again.stderr);

    let sync = once(&s).sync.expect("stats");
    assert_eq!(sync.applied, 2);
    assert_eq!(left.rows(), right.rows(), "resolving converges both sides");
    let rows = left.rows();
    assert_eq!(rows[&1], row("c1-right", 100, 30));
    assert_eq!(
        rows[&2],
        (
            "c2-merged".to_string(),
            "c2@example.com".to_string(),
            250,
            50
        )
    );
    assert!(open_conflicts(&s).is_empty());
    let events = conflict_events(&s);
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["event"].as_str().unwrap(), e["key"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("queued", "1"),
            ("queued", "2"),
            ("decided", "1"),
            ("decided", "2"),
            ("applied", "1"),
            ("applied", "2")
        ]
    );
    assert_eq!(
        events[2]["decided_by"],
        "ops@example.com (ferry conflicts resolve)"
    );
    assert!(
        events[1]["right"].is_null(),
        "a delete is shown as null: {}",
        events[1]
    );
    // Unblocked: the key syncs again.
    left.upsert(1, &row("c1-later", 100, 60));
    once(&s);
    assert_eq!(right.rows()[&1].0, "c1-later");
}

/// The reported case of the two-way example's manual scenario: conflicts
/// wait; the CRM (left) edits key 2 again while no sync runs, so the queue
/// (and `show`) still hold its older version; a person takes billing's
/// (right) version. And key 3: decided, then billing edits it before the
/// sync applies the decision. Neither decision may be written over the
/// newer edit: each conflict waits again with the current versions,
/// audited as `stale`, until decided again.
#[test]
fn a_decision_made_on_versions_a_side_changed_since_is_not_applied_but_reopened() {
    let s = Sandbox::new();
    let (left, right) = stores(&s);
    manifest(&s, "once", "strategy = \"manual\"", "");
    left.upsert(2, &row("globex", 500, 10));
    left.upsert(3, &row("initech", 700, 10));
    once(&s);
    left.upsert(2, &row("globex-crm", 500, 20));
    right.upsert(2, &row("globex-billing", 750, 12));
    left.upsert(3, &row("initech-crm", 700, 20));
    right.upsert(3, &row("initech-billing", 900, 15));
    once(&s);
    let open = open_conflicts(&s);
    assert_eq!(open.len(), 2, "{open:#?}");
    let (id2, id3) = (open[0].id.to_string(), open[1].id.to_string());

    // Key 2: the CRM edits again after the last run; `show` (the queue)
    // still has the 09:20 version, and the person takes billing's.
    let newer2 = row("globex-crm-again", 500, 100);
    left.upsert(2, &newer2);
    let show = cli(&s, &["conflicts", "show", &id2, "pipeline.toml"]);
    assert!(
        show.contains("globex-crm@") && !show.contains("globex-crm-again"),
        "{show}"
    );
    for (id, take) in [(&id2, "right"), (&id3, "left")] {
        cli(
            &s,
            &[
                "conflicts",
                "resolve",
                id,
                "pipeline.toml",
                "--take",
                take,
                "--by",
                "ops@example.com",
            ],
        );
    }
    // Key 3: billing edits it after the decision, before the sync runs.
    let newer3 = row("initech-billing-again", 950, 110);
    right.upsert(3, &newer3);

    let sync = once(&s).sync.expect("stats");
    assert_eq!((sync.applied, sync.stale), (0, 2), "{sync}");
    assert_eq!(
        left.get(2),
        Some(newer2.clone()),
        "the CRM's newer edit survived"
    );
    assert_eq!(right.get(2), Some(row("globex-billing", 750, 12)));
    assert_eq!(
        right.get(3),
        Some(newer3.clone()),
        "billing's newer edit survived"
    );
    assert_eq!(left.get(3), Some(row("initech-crm", 700, 20)));
    // Both wait again, with the current versions, undecided.
    let open = open_conflicts(&s);
    assert_eq!(open.len(), 2, "{open:#?}");
    assert_eq!(open[0].left["fields"]["name"]["text"], "globex-crm-again");
    assert_eq!(open[0].right["fields"]["name"]["text"], "globex-billing");
    assert_eq!(
        open[1].right["fields"]["name"]["text"],
        "initech-billing-again"
    );
    for c in &open {
        assert_eq!((c.decision, c.decided_left.as_ref()), (None, None));
        assert!(
            c.reopened
                .as_deref()
                .is_some_and(|r| r.contains("was not applied")),
            "{c:#?}"
        );
    }
    let events = conflict_events(&s);
    let stale: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "stale").collect();
    assert_eq!(stale.len(), 2, "{events:#?}");
    assert!(
        !events.iter().any(|e| e["event"] == "applied"),
        "{events:#?}"
    );
    let (e2, e3) = (stale[0], stale[1]);
    assert_eq!(
        (e2["key"].as_str(), e2["decision"].as_str()),
        (Some("2"), Some("right"))
    );
    assert_eq!(e2["changed"], serde_json::json!(["left"]));
    assert_eq!(
        e2["decided_on"]["left"]["name"], "globex-crm",
        "what was decided on"
    );
    assert_eq!(
        e2["left"]["name"], "globex-crm-again",
        "what the side holds now"
    );
    assert_eq!(e2["not_written"]["name"], "globex-billing");
    assert_eq!(
        e2["decided_by"],
        "ops@example.com (ferry conflicts resolve)"
    );
    assert_eq!(e3["changed"], serde_json::json!(["right"]));
    assert_eq!(e3["decided_on"]["right"]["name"], "initech-billing");
    assert_eq!(e3["right"]["name"], "initech-billing-again");
    // The CLI shows why, and the current versions.
    let list = cli(&s, &["conflicts", "list", "pipeline.toml"]);
    assert!(list.contains("decision stale, decide again"), "{list}");
    let show = cli(&s, &["conflicts", "show", &id2, "pipeline.toml"]);
    assert!(
        show.contains("globex-crm-again") && show.contains("reopened") && show.contains("open"),
        "{show}"
    );
    // A run with nothing new keeps them waiting and writes nothing.
    let sync = once(&s).sync.expect("stats");
    assert_eq!(
        (sync.written_left, sync.written_right, sync.stale),
        (0, 0, 0)
    );

    // Decided again on what is there now: applied, both sides converge.
    cli(
        &s,
        &[
            "conflicts",
            "resolve",
            &id2,
            "pipeline.toml",
            "--take",
            "right",
        ],
    );
    cli(
        &s,
        &[
            "conflicts",
            "resolve",
            &id3,
            "pipeline.toml",
            "--take",
            "left",
        ],
    );
    let sync = once(&s).sync.expect("stats");
    assert_eq!((sync.applied, sync.stale), (2, 0), "{sync}");
    assert!(open_conflicts(&s).is_empty());
    assert_eq!(left.rows(), right.rows());
    assert_eq!(left.get(2), Some(row("globex-billing", 750, 12)));
    assert_eq!(left.get(3), Some(row("initech-crm", 700, 20)));
    let applied: Vec<serde_json::Value> = conflict_events(&s)
        .into_iter()
        .filter(|e| e["event"] == "applied")
        .collect();
    assert_eq!(applied.len(), 2);
    assert_eq!(
        applied[0]["left"]["name"], "globex-crm-again",
        "applied over what was seen"
    );
}

#[test]
fn owned_fields_are_overwritten_or_their_changes_rejected() {
    for reject in [false, true] {
        let s = Sandbox::new();
        let (left, right) = stores(&s);
        let on = if reject { "reject" } else { "overwrite" };
        manifest(
            &s,
            "once",
            &format!("owned = {{ credit_limit = \"right\" }}\non_foreign_change = \"{on}\""),
            "",
        );
        left.upsert(1, &row("c1", 100, 10));
        once(&s);
        // The CRM (left) edits the name and the credit limit billing owns.
        left.upsert(1, &row("c1-renamed", 9_999, 20));
        once(&s);
        if reject {
            assert_eq!(
                right.rows()[&1],
                row("c1", 100, 10),
                "nothing of the change synced"
            );
            let letters = s.dead_letters();
            assert_eq!(letters.len(), 1);
            assert_eq!(letters[0].reason, "owned-field");
            assert!(
                letters[0]
                    .detail
                    .contains("`credit_limit` owned by the right side"),
                "{}",
                letters[0].detail
            );
            // Not reported again, nor synced; a later change from the
            // owner syncs over it.
            once(&s);
            assert_eq!(s.dead_letters().len(), 1);
            assert_eq!(right.rows()[&1], row("c1", 100, 10));
            assert_eq!(left.rows()[&1], row("c1-renamed", 9_999, 20));
            right.upsert(1, &row("c1-billing", 200, 30));
            once(&s);
            assert_eq!(left.rows(), right.rows());
            assert_eq!(left.rows()[&1], row("c1-billing", 200, 30));
        } else {
            assert_eq!(left.rows(), right.rows());
            let got = &left.rows()[&1];
            assert_eq!(
                (got.0.as_str(), got.2),
                ("c1-renamed", 100),
                "the owner's limit is written back"
            );
            assert!(s.dead_letters().is_empty());
        }
    }
}

#[test]
fn a_validator_decides_which_concurrent_edits_conflict() {
    let s = Sandbox::new();
    let (left, right) = stores(&s);
    manifest(
        &s,
        "once",
        "detect = \"validator\"\nvalidator = \"rules\"\nstrategy = \"left-wins\"",
        &format!(
            "[plugins.rules]\nkind = \"validator\"\nwasm = \"{}\"\nconfig = {{ ranges = {{ credit_limit = {{ max = 1000 }} }} }}\n",
            plugins::SCHEMA_VALIDATOR
        ),
    );
    for id in 1..=3 {
        left.upsert(id, &row(&format!("c{id}"), 100, 10));
    }
    once(&s);
    // Key 1: different fields, the merge is valid: merged, no conflict.
    left.upsert(1, &("c1-left".into(), "c1@example.com".into(), 100, 20));
    right.upsert(1, &("c1".into(), "c1@example.com".into(), 900, 10));
    // Key 2: different fields, but the merge breaks the rule: a conflict,
    // left wins.
    left.upsert(2, &("c2-left".into(), "c2@example.com".into(), 100, 20));
    right.upsert(2, &("c2".into(), "c2@example.com".into(), 5000, 10));
    // Key 3: the same field on both sides: a conflict without asking.
    left.upsert(3, &("c3-left".into(), "c3@example.com".into(), 100, 20));
    right.upsert(3, &("c3-right".into(), "c3@example.com".into(), 100, 20));
    let sync = once(&s).sync.expect("stats");
    assert_eq!(left.rows(), right.rows());
    let rows = left.rows();
    assert_eq!(
        rows[&1],
        ("c1-left".into(), "c1@example.com".into(), 900, 20)
    );
    assert_eq!(rows[&2].0, "c2-left");
    assert_eq!(rows[&2].2, 100);
    assert_eq!(rows[&3].0, "c3-left");
    assert_eq!(sync.conflicts, 2);
    let events = conflict_events(&s);
    assert_eq!(events.len(), 2);
    let mut keys: Vec<&str> = events.iter().map(|e| e["key"].as_str().unwrap()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["2", "3"]);
    let two = events.iter().find(|e| e["key"] == "2").unwrap();
    assert!(
        two["validator_found"]
            .as_str()
            .unwrap()
            .contains("credit_limit"),
        "{two}"
    );
}

/// A small deterministic random source (xorshift), so a failing seed can be
/// run again: `FERRY_SYNC_SEED=<n>`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn now_us() -> i64 {
    ferry_state::now_us()
}

/// Logs every row change of `customers` (ferry's and the test's) so the
/// test can count ferry's writes per key.
fn add_write_log(store: &Store) {
    store.exec(
        "CREATE TABLE IF NOT EXISTS write_log (n BIGINT, id BIGINT NOT NULL)",
        &[],
    );
    match store {
        Store::Lite(_) => {
            for (event, row) in [("INSERT", "new"), ("UPDATE", "new"), ("DELETE", "old")] {
                store.exec(
                    &format!(
                        "CREATE TRIGGER IF NOT EXISTS log_{event} AFTER {event} ON customers BEGIN INSERT INTO write_log (id) VALUES ({row}.id); END"
                    ),
                    &[],
                );
            }
        }
        Store::Pg(..) => {
            store.exec(
            "CREATE OR REPLACE FUNCTION log_write() RETURNS trigger AS $$
             BEGIN
               INSERT INTO write_log (id) VALUES (CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END);
               RETURN NULL;
             END $$ LANGUAGE plpgsql;
             CREATE TRIGGER log_write AFTER INSERT OR UPDATE OR DELETE ON customers
               FOR EACH ROW EXECUTE FUNCTION log_write();",
            &[],
        );
        }
    }
}

fn logged_writes(store: &Store) -> BTreeMap<i64, u64> {
    store
        .query("SELECT id, COUNT(*) FROM write_log GROUP BY id", None)
        .iter()
        .map(|r| match (&r[0], &r[1]) {
            (P::I(id), P::I(n)) => (*id, *n as u64),
            other => panic!("{other:?}"),
        })
        .collect()
}

/// What the test itself wrote: per side and key, how many row changes, and
/// every version it wrote (to check no value appears from nowhere).
#[derive(Default)]
struct Written {
    changes: [BTreeMap<i64, u64>; 2],
    versions: BTreeMap<i64, Vec<Option<Row>>>,
}

/// One random edit on one side.
fn random_edit(rng: &mut Rng, store: &Store, side: usize, id: i64, written: &mut Written) {
    let changed = if rng.below(5) == 0 {
        written.versions.entry(id).or_default().push(None);
        store.exec("DELETE FROM customers WHERE id = $1", &[P::I(id)])
    } else {
        let r = (
            format!("n{}-{}", ["l", "r"][side], rng.below(1000)),
            format!("e{}@example.com", rng.below(1000)),
            rng.below(50) as i64 * 100,
            now_us(),
        );
        // Two edits in three touch one field only (so merges have work).
        let set = match rng.below(3) {
            0 => "name = excluded.name, updated_at = excluded.updated_at",
            1 => "credit_limit = excluded.credit_limit, updated_at = excluded.updated_at",
            _ => {
                "name = excluded.name, email = excluded.email, credit_limit = excluded.credit_limit, updated_at = excluded.updated_at"
            }
        };
        let n = store.exec(
            &format!(
                "INSERT INTO customers (id, name, email, credit_limit, updated_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET {set}"
            ),
            &[P::I(id), P::S(r.0), P::S(r.1), P::I(r.2), P::I(r.3)],
        );
        written.versions.entry(id).or_default().push(store.get(id));
        n
    };
    if changed > 0 {
        *written.changes[side].entry(id).or_default() += 1;
    }
}

fn plain_row(v: &serde_json::Value) -> Option<Row> {
    if v.is_null() {
        return None;
    }
    Some((
        v["name"].as_str().unwrap_or_default().to_string(),
        v["email"].as_str().unwrap_or_default().to_string(),
        v["credit_limit"].as_i64().unwrap_or_default(),
        v["updated_at"].as_i64().unwrap_or_default(),
    ))
}

/// Checks one audited settlement against what its strategy prescribes.
fn check_settlement(strategy: &str, e: &serde_json::Value) {
    let (l, r, a) = (
        plain_row(&e["left"]),
        plain_row(&e["right"]),
        plain_row(&e["ancestor"]),
    );
    let result = plain_row(&e["result"]);
    let want = match strategy {
        "left-wins" => l.clone(),
        "last-writer-wins" => match (&l, &r) {
            // A delete is dated when ferry sees it: after every write.
            (None, _) | (_, None) => None,
            (Some(lv), Some(rv)) => {
                if rv.3 > lv.3 {
                    r.clone()
                } else {
                    l.clone()
                }
            }
        },
        "merge" => match (&l, &r, &a) {
            (Some(lv), Some(rv), Some(av)) => {
                let pick = |lf: &dyn Fn(&Row) -> String| -> bool {
                    // true: take left's field
                    lf(lv) != lf(av) && lf(rv) == lf(av)
                };
                Some((
                    if pick(&|x| x.0.clone()) {
                        lv.0.clone()
                    } else {
                        rv.0.clone()
                    },
                    if pick(&|x| x.1.clone()) {
                        lv.1.clone()
                    } else {
                        rv.1.clone()
                    },
                    if pick(&|x| x.2.to_string()) {
                        lv.2
                    } else {
                        rv.2
                    },
                    lv.3.max(rv.3),
                ))
            }
            // No common version: every differing field goes by the
            // fallback (right), the timestamp is the later one.
            (Some(lv), Some(rv), None) => Some((rv.0.clone(), rv.1.clone(), rv.2, lv.3.max(rv.3))),
            // A delete against an edit: the fallback (right) decides.
            _ => r.clone(),
        },
        other => panic!("no rule for {other}"),
    };
    assert_eq!(
        result, want,
        "{strategy}: the audited outcome is what the strategy prescribes: {e:#}"
    );
}

fn randomized(strategy_settings: &str, strategy: &str, seed: u64) {
    let s = Sandbox::new();
    let (left, right) = stores(&s);
    manifest(&s, "follow", strategy_settings, "");
    randomized_run(&s, &left, &right, strategy, seed, 500);
}

/// Random edits on both sides while the sync runs (follow mode, manifest
/// written), then quiescence and the checks.
pub fn randomized_run(
    s: &Sandbox,
    left: &Store,
    right: &Store,
    strategy: &str,
    seed: u64,
    edits: usize,
) {
    add_write_log(left);
    add_write_log(right);
    let (handle, stop) = follow(s);
    let mut rng = Rng(seed);
    let mut written = Written::default();
    // Keys 1-30 are edited on both sides; 31-45 on the left only.
    for _ in 0..edits {
        let (side, id) = if rng.below(4) == 0 {
            (0, 31 + rng.below(15) as i64)
        } else {
            (rng.below(2) as usize, 1 + rng.below(30) as i64)
        };
        let store = if side == 0 { left } else { right };
        random_edit(&mut rng, store, side, id, &mut written);
        std::thread::sleep(Duration::from_micros(rng.below(4000)));
    }
    // Quiescence: the sides agree (but for keys waiting for a person) and
    // stay so.
    let settled = |s: &Sandbox| {
        let blocked: Vec<i64> = open_conflicts(s)
            .iter()
            .map(|c| c.key.parse().unwrap())
            .collect();
        let (l, r) = (left.rows(), right.rows());
        let strip = |m: &BTreeMap<i64, Row>| -> BTreeMap<i64, Row> {
            m.iter()
                .filter(|(k, _)| !blocked.contains(k))
                .map(|(k, v)| (*k, v.clone()))
                .collect()
        };
        strip(&l) == strip(&r)
    };
    wait_until("the sides to agree", Duration::from_secs(60), || settled(s));
    let writes_then = (logged_writes(left), logged_writes(right));
    std::thread::sleep(Duration::from_millis(600));
    assert!(settled(s));
    assert_eq!(
        writes_then,
        (logged_writes(left), logged_writes(right)),
        "{strategy} (seed {seed}): quiet sides get no writes: no sync loop"
    );

    let open = open_conflicts(s);
    let events = conflict_events(s);
    if strategy == "manual" {
        // Exactly the keys whose conflict was queued and not decided wait.
        let queued: std::collections::BTreeSet<String> = events
            .iter()
            .filter(|e| e["event"] == "queued")
            .map(|e| e["key"].as_str().unwrap().to_string())
            .collect();
        let waiting: std::collections::BTreeSet<String> =
            open.iter().map(|c| c.key.clone()).collect();
        assert_eq!(queued, waiting, "seed {seed}");
        assert!(
            !waiting.is_empty(),
            "seed {seed}: the random edits made no conflict"
        );
        decide_while_edits_land(s, left, right, &mut rng, &mut written, seed);
    } else {
        assert!(
            open.is_empty(),
            "{strategy} (seed {seed}): nothing waits: {open:#?}"
        );
        let settled: Vec<&serde_json::Value> =
            events.iter().filter(|e| e["event"] == "settled").collect();
        assert!(
            !settled.is_empty(),
            "seed {seed}: the random edits made no conflict"
        );
        for e in settled {
            check_settlement(strategy, e);
        }
    }
    stop.send(true).expect("stop");
    let report = handle.join().expect("the sync thread");
    let sync = report.sync.expect("stats");
    assert_eq!(
        left.rows(),
        right.rows(),
        "{strategy} (seed {seed}): both sides alike"
    );
    assert_eq!(
        sync.conflicts as usize,
        events
            .iter()
            .filter(|e| e["event"] == "settled" || e["event"] == "queued")
            .count(),
        "every conflict is audited"
    );

    // No echo: ferry never wrote a left-only key back to the left, and
    // wrote it to the right at most once per change the test made.
    let (lw, rw) = (logged_writes(left), logged_writes(right));
    for id in 31..=45 {
        let test_left = written.changes[0].get(&id).copied().unwrap_or(0);
        assert_eq!(
            lw.get(&id).copied().unwrap_or(0),
            test_left,
            "key {id}: ferry wrote its own change back to the left (seed {seed})"
        );
        assert!(
            rw.get(&id).copied().unwrap_or(0) <= test_left,
            "key {id}: more writes to the right than changes (seed {seed})"
        );
    }
    // Every value in the end was written by the test or decided by a
    // settlement: nothing from nowhere.
    let decided: Vec<Option<Row>> = events.iter().map(|e| plain_row(&e["result"])).collect();
    let rows = left.rows();
    for id in 1..=45 {
        let now = rows.get(&id).cloned();
        if now.is_none() {
            continue;
        }
        let known =
            written.versions.get(&id).is_some_and(|v| v.contains(&now)) || decided.contains(&now);
        assert!(
            known,
            "key {id}: {now:?} was never written nor decided (seed {seed})"
        );
    }
}

/// Every change of `customers` on a SQLite side with the row before and
/// after, in order: to see what a write of ferry's overwrote.
fn add_content_log(store: &Store) {
    store.exec(
        "CREATE TABLE IF NOT EXISTS content_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, id BIGINT,
           old_name TEXT, old_email TEXT, old_limit BIGINT, old_at BIGINT,
           new_name TEXT, new_email TEXT, new_limit BIGINT, new_at BIGINT)",
        &[],
    );
    let old = "old.name, old.email, old.credit_limit, old.updated_at";
    let new = "new.name, new.email, new.credit_limit, new.updated_at";
    let none = "NULL, NULL, NULL, NULL";
    for (event, id, before, after) in [
        ("INSERT", "new.id", none, new),
        ("UPDATE", "new.id", old, new),
        ("DELETE", "old.id", old, none),
    ] {
        store.exec(
            &format!(
                "CREATE TRIGGER IF NOT EXISTS content_{event} AFTER {event} ON customers BEGIN
                   INSERT INTO content_log (id, old_name, old_email, old_limit, old_at, new_name, new_email, new_limit, new_at)
                   VALUES ({id}, {before}, {after}); END"
            ),
            &[],
        );
    }
}

/// One logged change: (seq, key, before, after).
type Change = (i64, i64, Option<Row>, Option<Row>);

fn content_log(store: &Store) -> Vec<Change> {
    let row_at = |r: &[P]| -> Option<Row> {
        match &r[0] {
            P::S(name) if name.is_empty() => None,
            _ => Some(Store::row_of(r)),
        }
    };
    store
        .query(
            "SELECT seq, id, old_name, old_email, old_limit, old_at, new_name, new_email, new_limit, new_at FROM content_log ORDER BY seq",
            None,
        )
        .iter()
        .map(|r| match (&r[0], &r[1]) {
            (P::I(seq), P::I(id)) => (*seq, *id, row_at(&r[2..6]), row_at(&r[6..10])),
            other => panic!("{other:?}"),
        })
        .collect()
}

fn last_seq(store: &Store) -> i64 {
    match store
        .query("SELECT COALESCE(MAX(seq), 0) FROM content_log", None)
        .first()
        .map(|r| r[0].clone())
    {
        Some(P::I(n)) => n,
        other => panic!("{other:?}"),
    }
}

/// A person's decision as the test made it: what it was made on, what it
/// chose, and where each side's change log stood then.
struct Decided {
    id: i64,
    key: i64,
    seen: [Option<Row>; 2],
    result: Option<Row>,
    marks: [i64; 2],
}

fn plain_of(stored: &serde_json::Value) -> Option<Row> {
    ferry_pipeline::sync::record::Version::from_stored(stored)
        .and_then(|v| plain_row(&v.to_plain()))
}

/// The manual strategy's decisions, made as people make them while the
/// sync runs: each on the queued versions (as `ferry conflicts resolve`
/// records them), with edits landing on the conflict's key after the
/// queue was last refreshed and before the decision, and after the
/// decision (before or after the sync applies it). A stale decision
/// reopens its conflict, decided again next round; rounds after the third edit
/// nothing, so everything converges. The oracle, from the sides' own
/// change logs: every write of a decided version went over exactly the
/// version the decision was made on, and every applied decision is the one
/// made last, written where it was needed.
fn decide_while_edits_land(
    s: &Sandbox,
    left: &Store,
    right: &Store,
    rng: &mut Rng,
    written: &mut Written,
    seed: u64,
) {
    add_content_log(left);
    add_content_log(right);
    let stores = [left, right];
    let mut decided: Vec<Decided> = Vec::new();
    let mut forced_stale = 0;
    for round in 0..12 {
        let open = open_conflicts(s);
        if open.is_empty() {
            break;
        }
        let editing = round < 3;
        for c in &open {
            let key: i64 = c.key.parse().expect("a numeric key");
            let seen = [plain_of(&c.left), plain_of(&c.right)];
            // An edit after the queue was read, before the decision.
            let before = written.changes.clone();
            if editing && rng.below(3) == 0 {
                let side = rng.below(2) as usize;
                random_edit(rng, stores[side], side, key, written);
            }
            let edited_before = before != written.changes;
            let take = if rng.below(2) == 0 { "left" } else { "right" };
            let result = seen[usize::from(take == "right")].clone();
            let marks = [last_seq(left), last_seq(right)];
            let audit = AuditEvent {
                id: 0,
                at_us: 0,
                pipeline: "customers".into(),
                stage: "sync".into(),
                plugin_digest: String::new(),
                capability: CONFLICT_CAPABILITY.into(),
                target: c.key.clone(),
                detail: serde_json::json!({"event": "decided", "key": c.key}).to_string(),
            };
            let decision = ferry_state::Decision {
                decision: take.parse().expect("left or right"),
                merged: None,
                left: c.left.clone(),
                right: c.right.clone(),
                by: "test".into(),
            };
            assert!(
                s.state()
                    .decide_conflict(c.id, &decision, &audit)
                    .expect("decide"),
                "seed {seed}"
            );
            if edited_before {
                forced_stale += 1;
            }
            decided.push(Decided {
                id: c.id,
                key,
                seen,
                result,
                marks,
            });
            // An edit after the decision, before or after it is applied:
            // on the side taken, which the decision does not write (an
            // edit of the other side between the sync's fetch and its
            // write is the documented window of unconditional writes).
            if editing && rng.below(3) == 0 {
                std::thread::sleep(Duration::from_micros(rng.below(30_000)));
                let side = usize::from(take == "right");
                random_edit(rng, stores[side], side, key, written);
            }
        }
        wait_until(
            "the decisions to be applied or reopened",
            Duration::from_secs(30),
            || {
                s.state()
                    .conflicts(&ConflictFilter {
                        pipeline: Some("customers".into()),
                        statuses: vec![ferry_state::ConflictStatus::Decided],
                        key: None,
                    })
                    .expect("conflicts")
                    .is_empty()
            },
        );
    }
    wait_until("the decisions to converge", Duration::from_secs(30), || {
        open_conflicts(s).is_empty() && left.rows() == right.rows()
    });
    let events = conflict_events(s);
    let logs = [content_log(left), content_log(right)];
    for (i, d) in decided.iter().enumerate() {
        // Its window: until the next decision on the same conflict.
        let until = decided[i + 1..]
            .iter()
            .find(|n| n.id == d.id)
            .map(|n| n.marks);
        let applied: Vec<&serde_json::Value> = events
            .iter()
            .filter(|e| e["event"] == "applied" && e["conflict"] == d.id)
            .collect();
        let last = until.is_none();
        if last {
            assert_eq!(
                applied.len(),
                1,
                "seed {seed}: conflict {} is applied once, with its last decision",
                d.id
            );
            assert_eq!(
                plain_row(&applied[0]["result"]),
                d.result,
                "seed {seed}: key {}: the decision applied is the one made",
                d.key
            );
        }
        let Some(result) = &d.result else {
            continue; // a delete: the test's own deletes look alike
        };
        for side in 0..2 {
            let writes: Vec<&Change> = logs[side]
                .iter()
                .filter(|(seq, key, _, after)| {
                    *key == d.key
                        && *seq > d.marks[side]
                        && until.is_none_or(|u| *seq <= u[side])
                        && after.as_ref() == Some(result)
                })
                .collect();
            for (seq, _, over, _) in &writes {
                assert_eq!(
                    over, &d.seen[side],
                    "seed {seed}: key {}: change {seq} on side {side} wrote the decided version over one the person did not see",
                    d.key
                );
            }
            if last && d.seen[side].as_ref() != Some(result) {
                assert_eq!(
                    writes.len(),
                    1,
                    "seed {seed}: key {}: the applied decision was written to side {side} once",
                    d.key
                );
            }
        }
    }
    let stale = events.iter().filter(|e| e["event"] == "stale").count();
    assert!(
        stale >= forced_stale,
        "seed {seed}: {forced_stale} decisions were made on versions edited since, only {stale} went stale"
    );
}

pub fn seed() -> u64 {
    std::env::var("FERRY_SYNC_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now_us() as u64 | 1)
}

#[test]
fn randomized_concurrent_edits_converge_under_last_writer_wins() {
    randomized(
        "strategy = \"last-writer-wins\"",
        "last-writer-wins",
        seed(),
    );
}

#[test]
fn randomized_concurrent_edits_converge_under_a_fixed_winner() {
    randomized("strategy = \"left-wins\"", "left-wins", seed());
}

#[test]
fn randomized_concurrent_edits_converge_under_field_merge() {
    randomized(
        "strategy = \"merge\"\nmerge_fallback = \"right-wins\"",
        "merge",
        seed(),
    );
}

#[test]
fn randomized_concurrent_edits_wait_under_manual_and_converge_when_resolved() {
    randomized("strategy = \"manual\"", "manual", seed());
}

#[test]
fn a_resolver_plugin_applies_the_business_rule_higher_limit_newer_address() {
    let s = Sandbox::new();
    let schema = "CREATE TABLE IF NOT EXISTS accounts (
        id BIGINT PRIMARY KEY, name TEXT NOT NULL, credit_limit BIGINT NOT NULL,
        street TEXT, city TEXT, address_updated_at BIGINT)";
    let (left, right) = (
        Store::Lite(s.path("left.db")),
        Store::Lite(s.path("right.db")),
    );
    for side in [&left, &right] {
        side.exec(schema, &[]);
    }
    let text = format!(
        r#"[pipeline]
name = "accounts"

[connections.left]
url = "sqlite:left.db"

[connections.right]
url = "sqlite:right.db"

[plugins.crm]
kind = "connector"
wasm = "{sqlite}"
config = {{ connection = "left", table = "accounts", key = "id" }}
grants = {{ sql = ["left"] }}

[plugins.billing]
kind = "connector"
wasm = "{sqlite}"
config = {{ connection = "right", table = "accounts", key = "id" }}
grants = {{ sql = ["right"] }}

[plugins.settle]
kind = "resolver"
wasm = "{resolver}"
config = {{ rules = [
  {{ field = "credit_limit", prefer = "higher" }},
  {{ fields = ["street", "city"], prefer = "newer", by = "address_updated_at" }},
] }}

[sync]
left = {{ plugin = "crm", read = {{ mode = "full" }} }}
right = {{ plugin = "billing", read = {{ mode = "full" }} }}
fields = ["name", "credit_limit", "street", "city", "address_updated_at"]
strategy = "resolver"
resolver = "settle"
"#,
        sqlite = plugins::SQLITE,
        resolver = plugins::RULES_RESOLVER,
    );
    s.manifest(&text);
    let set =
        |store: &Store, id: i64, name: &str, limit: i64, street: &str, city: &str, at: i64| {
            store.exec(
            "INSERT INTO accounts VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET
               name = excluded.name, credit_limit = excluded.credit_limit, street = excluded.street,
               city = excluded.city, address_updated_at = excluded.address_updated_at",
            &[
                P::I(id),
                P::S(name.into()),
                P::I(limit),
                P::S(street.into()),
                P::S(city.into()),
                P::I(at),
            ],
        );
        };
    set(&left, 1, "Acme", 1000, "Old St 1", "Berlin", 100);
    set(&left, 2, "Globex", 500, "Main St 5", "Paris", 100);
    once(&s);
    // Key 1: the CRM raises the limit and edits the street (address dated
    // 300); billing lowers the limit and moves the account to Hamburg
    // (dated 400): the higher limit (CRM's) and the newer address
    // (billing's) win.
    set(&left, 1, "Acme", 5000, "CRM St 9", "Berlin", 300);
    set(&right, 1, "Acme", 2000, "Billing Rd 2", "Hamburg", 400);
    // Key 2: both rename: no rule for `name`, so a person decides.
    set(&left, 2, "Globex Corp", 500, "Main St 5", "Paris", 100);
    set(&right, 2, "Globex Inc", 500, "Main St 5", "Paris", 100);
    let sync = s.run().expect("the sync runs").sync.expect("stats");
    assert_eq!((sync.conflicts, sync.queued), (2, 1));
    let one = |store: &Store| {
        store.query(
            "SELECT name, credit_limit, street, city, address_updated_at FROM accounts WHERE id = $1",
            Some(1),
        )
    };
    let got = format!("{:?}", one(&left));
    assert_eq!(got, format!("{:?}", one(&right)), "both sides alike");
    assert_eq!(
        got,
        r#"[[S("Acme"), I(5000), S("Billing Rd 2"), S("Hamburg"), I(400)]]"#
    );
    let events = conflict_events_of(&s, "accounts");
    let settled = events
        .iter()
        .find(|e| e["key"] == "1")
        .expect("key 1 audited");
    assert_eq!(settled["outcome"], "merged");
    assert_eq!(settled["decided_by"], "resolver `settle`");
    assert_eq!(settled["stage"], "settle");
    assert_eq!(
        settled["digest"].as_str().unwrap().len(),
        64,
        "the resolver's digest"
    );
    assert_eq!(settled["ancestor"]["credit_limit"], 1000);
    let queued = events
        .iter()
        .find(|e| e["key"] == "2")
        .expect("key 2 audited");
    assert_eq!(queued["event"], "queued");
    assert!(
        queued["reason"].as_str().unwrap().contains("name"),
        "{queued}"
    );
}

#[test]
fn no_change_is_lost_when_the_sync_is_killed_at_random_moments() {
    let s = Sandbox::new();
    let (left, right) = stores(&s);
    manifest(&s, "follow", "strategy = \"last-writer-wins\"", "");
    // Keys 1-40 are edited in the CRM only, 41-80 in billing only, so the
    // expected end state is each key's last edit, whatever the timing.
    let mut want: BTreeMap<i64, Option<Row>> = BTreeMap::new();
    let mut rng = Rng(seed());
    let edit = |rng: &mut Rng, want: &mut BTreeMap<i64, Option<Row>>| {
        let (store, id) = if rng.below(2) == 0 {
            (&left, 1 + rng.below(40) as i64)
        } else {
            (&right, 41 + rng.below(40) as i64)
        };
        if rng.below(6) == 0 {
            store.delete(id);
            want.insert(id, None);
        } else {
            let r = row(
                &format!("v{}", rng.below(100_000)),
                rng.below(90) as i64,
                now_us(),
            );
            store.upsert(id, &r);
            want.insert(id, Some(r));
        }
    };
    for _ in 0..6 {
        let mut child = crate::support::spawn_ferry(
            &["run", "pipeline.toml", "--no-watch", "--quiet"],
            &s.path(""),
        );
        let until = Instant::now() + Duration::from_millis(200 + rng.below(600));
        while Instant::now() < until {
            edit(&mut rng, &mut want);
            std::thread::sleep(Duration::from_millis(rng.below(15)));
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }
    // A last run, left to finish.
    let child = crate::support::spawn_ferry(
        &["run", "pipeline.toml", "--no-watch", "--quiet"],
        &s.path(""),
    );
    let expected: BTreeMap<i64, Row> = want
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| (*k, v)))
        .collect();
    wait_until(
        "both sides to hold every last edit",
        Duration::from_secs(60),
        || left.rows() == expected && right.rows() == expected,
    );
    // Ctrl-C once it listens for it (it has written its pid file).
    let pid_file = s.path(".ferry/state.pid");
    wait_until("ferry run to start", Duration::from_secs(30), || {
        std::fs::read_to_string(&pid_file).is_ok_and(|p| p.trim() == child.id().to_string())
    });
    std::thread::sleep(Duration::from_millis(300));
    crate::support::interrupt(&child);
    let out = child.wait_with_output().expect("ferry ends");
    assert!(
        out.status.success(),
        "{:?}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Disjoint edits conflict only through a kill: one that lands after
    // ferry wrote a key's edit to the other side but before it committed
    // the marks leaves that side changed since its mark, and a later edit
    // of the key then meets ferry's own unrecorded write. Such a conflict
    // must be settled by the strategy in favour of the person's edit (the
    // side they edit), never queued nor settled the other way.
    for e in conflict_events(&s) {
        assert_eq!(e["event"], "settled", "{e:#}");
        let key: i64 = e["key"].as_str().and_then(|k| k.parse().ok()).expect("key");
        let edited = if key <= 40 { &e["left"] } else { &e["right"] };
        assert_eq!(&e["result"], edited, "the person's edit wins: {e:#}");
    }
}

#[test]
fn a_field_cleared_on_one_side_is_cleared_on_the_other_and_stays_so() {
    let s = Sandbox::new();
    let (left, right) = stores(&s);
    manifest(&s, "once", "strategy = \"last-writer-wins\"", "");
    left.upsert(1, &row("c1", 100, 10));
    left.upsert(2, &row("c2", 200, 10));
    once(&s);
    // Only key 1 is in the next batch: no other row carries `email`.
    left.exec(
        "UPDATE customers SET email = NULL, updated_at = 20 WHERE id = 1",
        &[],
    );
    once(&s);
    let null = |store: &Store| {
        store
            .query("SELECT id FROM customers WHERE email IS NULL", None)
            .len()
    };
    assert_eq!((null(&left), null(&right)), (1, 1), "cleared on both sides");
    let sync = once(&s).sync.expect("stats");
    assert_eq!(
        (sync.written_left, sync.written_right),
        (0, 0),
        "and it stays so"
    );
    assert_eq!((null(&left), null(&right)), (1, 1));
}

/// The `test-faulty-resolver` plugin: a resolver that fails on purpose.
pub mod faulty_resolver {
    use super::*;

    #[test]
    fn a_failing_resolver_leaves_its_conflicts_to_a_person_and_a_passing_failure_is_retried() {
        for (config, queued) in [
            // Fatal on key 2: the whole call fails, both conflicts wait.
            ("fatal_keys = [\"2\"]", true),
            // Retryable twice on key 2: the third call decides (take left).
            ("retryable_keys = [\"2\"], retryable_times = 2", false),
        ] {
            let s = Sandbox::new();
            let (left, right) = stores(&s);
            manifest(
                &s,
                "once",
                "strategy = \"resolver\"\nresolver = \"faulty\"",
                &format!(
                    "[plugins.faulty]\nkind = \"resolver\"\nwasm = \"{}\"\nconfig = {{ {config} }}\n",
                    plugins::TEST_FAULTY_RESOLVER
                ),
            );
            for id in 1..=2 {
                left.upsert(id, &row(&format!("c{id}"), 100, 10));
            }
            once(&s);
            for id in 1..=2 {
                left.upsert(id, &row(&format!("c{id}-left"), 100, 20));
                right.upsert(id, &row(&format!("c{id}-right"), 100, 30));
            }
            let sync = once(&s).sync.expect("the sync goes on");
            assert_eq!(sync.conflicts, 2, "{config}");
            let open = open_conflicts(&s);
            if queued {
                assert_eq!(sync.queued, 2);
                assert_eq!(open.len(), 2);
                assert!(
                    open[0].reason.contains("resolver `faulty` failed")
                        && open[0].reason.contains("fatal on purpose"),
                    "{}",
                    open[0].reason
                );
                assert_eq!(right.rows()[&1].0, "c1-right", "nothing decided");
            } else {
                assert!(open.is_empty(), "{open:#?}");
                assert_eq!(left.rows(), right.rows());
                assert_eq!(right.rows()[&2].0, "c2-left");
            }
        }
    }
}

/// Adds a `version` column kept by a trigger (bumped on every update).
fn add_version_trigger(store: &Store) {
    store.exec(
        "ALTER TABLE customers ADD COLUMN version INTEGER NOT NULL DEFAULT 1",
        &[],
    );
    store.exec(
        "CREATE TRIGGER bump AFTER UPDATE ON customers FOR EACH ROW WHEN new.version = old.version
         BEGIN UPDATE customers SET version = old.version + 1 WHERE id = new.id; END",
        &[],
    );
}

#[test]
fn detection_by_version_and_by_timestamp_sees_what_checksums_do_not() {
    // The CRM "touches" key 1 (its version moves, its content does not)
    // while billing renames it; key 2 is touched the other way round: the
    // CRM moves updated_at without changing content.
    for detect in ["checksum", "version", "timestamp"] {
        let s = Sandbox::new();
        let (left, right) = stores(&s);
        add_version_trigger(&left);
        add_version_trigger(&right);
        let read = "{ mode = \"full\" }";
        let write = "{ version_column = \"version\", version_check = false }";
        let billing = format!(
            "[connections.right]\nurl = \"sqlite:right.db\"\n\n[plugins.billing]\nkind = \"connector\"\nwasm = \"{}\"\nconfig = {{ connection = \"right\", table = \"customers\", key = \"id\" }}\ngrants = {{ sql = [\"right\"] }}\n",
            plugins::SQLITE
        );
        let text = manifest_with(
            &s,
            "once",
            &billing,
            read,
            write,
            &format!("detect = \"{detect}\"\nstrategy = \"left-wins\""),
            "",
        );
        // The CRM side writes through `write` settings too.
        let m = std::fs::read_to_string(&text).unwrap().replace(
            "left = { plugin = \"crm\", read = { mode = \"full\" } }",
            &format!("left = {{ plugin = \"crm\", read = {read}, write = {write} }}"),
        );
        s.manifest(&m);
        left.upsert(1, &row("c1", 100, 10));
        left.upsert(2, &row("c2", 200, 10));
        once(&s);
        assert_eq!(left.rows(), right.rows());
        let sync = once(&s).sync.expect("stats");
        assert_eq!(
            (sync.written_left, sync.written_right),
            (0, 0),
            "{detect}: the trigger's version bumps on ferry's own writes are not changes"
        );
        left.exec("UPDATE customers SET name = name WHERE id = 1", &[]);
        right.upsert(1, &row("c1-billing", 100, 30));
        left.exec("UPDATE customers SET updated_at = 40 WHERE id = 2", &[]);
        right.upsert(2, &row("c2-billing", 200, 30));
        let sync = once(&s).sync.expect("stats");
        let rows = right.rows();
        match detect {
            // Content: key 1 changed only in billing; key 2 in both (the
            // timestamp is content): left wins.
            "checksum" => {
                assert_eq!(sync.conflicts, 1);
                assert_eq!(rows[&1].0, "c1-billing");
                assert_eq!(rows[&2], row("c2", 200, 40));
            }
            // The version moved on both sides for both keys: two conflicts,
            // the CRM wins.
            "version" => {
                assert_eq!(sync.conflicts, 2);
                assert_eq!(rows[&1], row("c1", 100, 10));
                assert_eq!(rows[&2], row("c2", 200, 40));
            }
            // updated_at moved on both sides for key 2 only; key 1's
            // touch did not move it.
            _ => {
                assert_eq!(sync.conflicts, 1);
                assert_eq!(rows[&1].0, "c1-billing");
                assert_eq!(rows[&2], row("c2", 200, 40));
            }
        }
        assert_eq!(left.rows(), right.rows(), "{detect}");
        let sync = once(&s).sync.expect("stats");
        assert_eq!(
            (sync.written_left, sync.written_right),
            (0, 0),
            "{detect}: settled"
        );
    }
}
