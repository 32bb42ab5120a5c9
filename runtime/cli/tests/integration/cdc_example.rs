//! examples/cdc-to-warehouse, run as shipped against the test PostgreSQL:
//! the orders CDC pipeline (snapshot, then live changes through mapping and
//! validation into SQLite) and the nightly customers delta sync.

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use crate::support::pg;
use crate::support::{Sandbox, ferry, spawn_ferry};

fn example() -> PathBuf {
    crate::support::repo_root().join("examples/cdc-to-warehouse")
}

/// The example's manifest, pointed at the test server's database `db` and
/// at the built plugins.
fn manifest(name: &str, pg: &pg::Postgres, db: &str) -> String {
    let dist = PathBuf::from(crate::support::plugins::FILE)
        .parent()
        .expect("plugins/dist")
        .display()
        .to_string();
    std::fs::read_to_string(example().join(name))
        .expect("the example manifest")
        .replace("postgres://postgres@127.0.0.1:55432/ops", &pg.url(db))
        .replace("../../plugins/dist", &dist)
}

fn load(pg: &pg::Postgres, db: &str, file: &str) {
    let sql = std::fs::read_to_string(example().join("ops").join(file)).expect("SQL file");
    pg.psql(db, &sql);
}

/// `ferry run <manifest> --no-watch` in the background.
fn start(s: &Sandbox, manifest: &str) -> Child {
    spawn_ferry(&["run", manifest, "--no-watch", "--quiet"], &s.path(""))
}

/// Stops it as Ctrl-C would and checks it drained and exited cleanly.
fn interrupt(child: Child) -> String {
    crate::support::interrupt(&child);
    let out = child.wait_with_output().expect("exits");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn warehouse(s: &Sandbox) -> Option<rusqlite::Connection> {
    let path = s.path("warehouse/warehouse.db");
    path.exists()
        .then(|| rusqlite::Connection::open(path).ok())
        .flatten()
}

fn count(s: &Sandbox, sql: &str) -> i64 {
    warehouse(s)
        .and_then(|db| db.query_row(sql, [], |r| r.get(0)).ok())
        .unwrap_or(-1)
}

fn wait_for(what: &str, child: &mut Child, check: &dyn Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !check() {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            panic!("ferry exited ({status}) while waiting for {what}:\n{err}");
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every order in PostgreSQL as (id, status, amount), the warehouse's view.
fn ops_orders(pg: &pg::Postgres, db: &str) -> Vec<(i64, String, f64)> {
    let mut client = pg.client(db);
    client
        .query(
            "SELECT id, lower(status), total::float8 FROM orders WHERE total >= 0 ORDER BY id",
            &[],
        )
        .expect("orders")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

fn warehouse_orders(s: &Sandbox) -> Vec<(i64, String, f64)> {
    let db = warehouse(s).expect("the warehouse");
    let mut stmt = db
        .prepare("SELECT id, status, amount FROM orders ORDER BY id")
        .expect("query");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("rows")
        .map(|r| r.expect("a row"))
        .collect()
}

#[test]
fn the_cdc_to_warehouse_example_streams_orders_and_syncs_customers() {
    let pg = pg::server();
    let db = pg.create_database("ops");
    load(pg, &db, "schema.sql");
    load(pg, &db, "seed.sql");

    let s = Sandbox::new();
    std::fs::create_dir_all(s.path("warehouse")).expect("warehouse/");
    s.write("orders-cdc.toml", &manifest("orders-cdc.toml", pg, &db));
    s.write(
        "customers-nightly.toml",
        &manifest("customers-nightly.toml", pg, &db),
    );
    // The shipped pins must match the built plugins (`ferry lock` on the
    // example's manifests after a plugin changes).
    for m in ["orders-cdc.toml", "customers-nightly.toml"] {
        let check = ferry(&["validate", m], &s.path("")).expect("ferry validate");
        assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
    }

    // The snapshot of the seeded orders, then the activity, streamed.
    let mut orders = start(&s, "orders-cdc.toml");
    wait_for("the snapshot", &mut orders, &|| {
        count(&s, "SELECT count(*) FROM orders") == 5000
    });
    load(pg, &db, "activity.sql");
    wait_for("the activity", &mut orders, &|| {
        count(&s, "SELECT count(*) FROM orders WHERE id IN (5200, 6000)") == 2
            && count(&s, "SELECT count(*) FROM orders WHERE id = 4999") == 0
            && count(
                &s,
                "SELECT count(*) FROM orders WHERE customer_id = 42 AND status = 'discounted'",
            ) > 0
    });
    interrupt(orders);
    // Exactly PostgreSQL's orders, minus the one the validator refused.
    assert_eq!(warehouse_orders(&s), ops_orders(pg, &db));
    let letters = ferry(&["dlq", "list", ".ferry/state.db", "--json"], &s.path("")).expect("dlq");
    let letters: serde_json::Value = serde_json::from_str(&letters.stdout).expect("JSON");
    let keys: Vec<&str> = letters
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["key"].as_str())
        .collect();
    assert_eq!(keys, ["6001"], "{letters}");

    // The nightly delta: never run before, so it runs at start.
    let mut customers = start(&s, "customers-nightly.toml");
    wait_for("the customers", &mut customers, &|| {
        count(&s, "SELECT count(*) FROM customers") == 501
    });
    // Let the run finish and be recorded before stopping.
    let status = |s: &Sandbox| {
        ferry(&["status", "customers-nightly.toml", "--json"], &s.path(""))
            .expect("status")
            .stdout
    };
    wait_for("the run's record", &mut customers, &|| {
        status(&s).contains("\"last_run\"") && !status(&s).contains("\"last_run\": null")
    });
    interrupt(customers);
    let raised = count(
        &s,
        "SELECT count(*) FROM customers WHERE id % 10 = 0 AND credit_limit >= 1500",
    );
    assert_eq!(raised, 50, "the raised credit limits arrived");
    let text = ferry(&["status", "customers-nightly.toml"], &s.path("")).expect("status");
    assert!(text.stdout.contains("next run"), "{}", text.stdout);
}
