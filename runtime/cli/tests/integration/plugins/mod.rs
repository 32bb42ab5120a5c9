//! One module per guest plugin, each running it in a real pipeline.

use serde_json::json;

use crate::support::Sandbox;

use crate::support::file_pipeline as pipeline;

// The buffering sink's tests live with the other sink-side delivery tests.
pub use crate::exactly_once::buffering as test_buffering_sink;
// The hostile test programs' tests live with the attacks they try.
pub use crate::hostile_engine::alias as test_hostile_alias;
pub use crate::hostile_engine::sleep as test_hostile_sleep;
pub use crate::hostile_engine::stall as test_hostile_stall;

/// Runs a probe test program (a mapper that adds `result` to each record)
/// over `lines` with the given grants; returns `id -> result`.
fn run_probe(
    s: &Sandbox,
    lines: &str,
    wasm: &str,
    grants: &str,
) -> std::collections::HashMap<String, String> {
    s.write("in/a.jsonl", lines);
    let extra =
        format!("\n[plugins.probe]\nkind = \"mapper\"\nwasm = \"{wasm}\"\ngrants = {grants}\n");
    s.manifest(&pipeline(r#"{ path = "/in/a.jsonl" }"#, &["probe"], &extra));
    s.run().expect("runs");
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

pub mod file;

pub mod field_mapper;

pub mod schema_validator;

pub mod passthrough;

/// `test-faulty-resolver`: a resolver that fails on purpose; its tests are
/// two-way sync's.
pub use crate::two_way::faulty_resolver as test_faulty_resolver;

pub mod test_faulty_mapper;

pub mod test_faulty_sink;

pub mod test_net_probe;

pub mod test_env_probe;

pub mod test_fs_probe;

pub mod test_http_probe;

pub mod test_tagger_v1;

pub mod test_tagger_v2;

pub mod rules_resolver;

/// The `sqlite` and `postgres` connectors: their pipelines (delta and full
/// sources, the upserting sink, version conflicts, rejections, type round
/// trips) are `sql_sync.rs`, one test per behaviour run on both databases;
/// `postgres`'s `mode = "cdc"` is `pg_cdc.rs`.
pub(crate) use crate::sql_sync as sqlite;
pub(crate) use crate::sql_sync as postgres;

pub use crate::hostile_flood::flood as test_hostile_flood;
pub use crate::hostile_json::json as test_hostile_json;
// The SQL attacks' tests live in hostile_sql.rs.
pub use crate::hostile_sql::begin as test_hostile_sql_begin;
pub use crate::hostile_sql::escape as test_hostile_sql_escape;
pub use crate::hostile_sql::hold as test_hostile_sql_hold;
pub use crate::hostile_sql::huge_result as test_hostile_sql_huge_result;
