//! Two-way sync with the real PostgreSQL server of support/pg.rs as one
//! side (its change stream through logical decoding, `mode = "cdc"` with
//! the initial copy) and SQLite as the other: concurrent edits on both
//! while the sync runs, then the checks of `two_way::randomized_run`.

use crate::support::pg;
use crate::support::{Sandbox, plugins};
use crate::two_way::{Store, manifest_with, randomized_run, row, seed};

#[test]
fn postgres_cdc_and_sqlite_converge_under_concurrent_edits() {
    let server = pg::server();
    let db = server.create_database("two_way");
    let s = Sandbox::new();
    let left = Store::lite(s.path("left.db"));
    let right = Store::pg(server, db.clone());
    // Each side starts with rows of its own: the first pass copies them.
    for id in 1..=10 {
        right.upsert(id, &row(&format!("pg{id}"), 100 * id, 1));
        left.upsert(100 + id, &row(&format!("lite{id}"), 100 * id, 1));
    }
    let billing = format!(
        r#"[connections.right]
url = "{url}"

[plugins.billing]
kind = "connector"
wasm = "{wasm}"
config = {{ connection = "right" }}
grants = {{ sql = ["right"], timeout_ms = 60000, memory_mb = 256 }}
"#,
        url = server.url(&db),
        wasm = plugins::POSTGRES,
    );
    let read = format!(
        "{{ mode = \"cdc\", slot = \"{db}\", publication = \"{db}_pub\", tables = [\"public.customers\"], snapshot = true }}"
    );
    manifest_with(
        &s,
        "follow",
        &billing,
        &read,
        "{ table = \"customers\", key = \"id\" }",
        "strategy = \"last-writer-wins\"",
        "",
    );
    randomized_run(&s, &left, &right, "last-writer-wins", seed(), 300);
    let rows = left.rows();
    assert!(
        rows.keys().any(|k| *k > 100) || rows.is_empty(),
        "the rows SQLite started with reached PostgreSQL (unless deleted)"
    );
}
