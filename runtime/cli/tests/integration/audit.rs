//! `ferry audit` and the plan-time check of imports against grants.

use serde_json::Value;

use crate::support::{Sandbox, ferry};

#[test]
fn audit_shows_each_plugins_digest_grants_and_imports() {
    let repo = crate::support::repo_root();
    let out = ferry(
        &["audit", "examples/quickstart/pipeline.toml", "--json"],
        &repo,
    )
    .expect("ferry runs");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).expect("JSON");
    let plugins = report["plugins"].as_array().expect("a plugins array");
    assert_eq!(plugins.len(), 5);
    for p in plugins {
        for key in [
            "name",
            "wasm",
            "sha256",
            "digest_ok",
            "world",
            "grants",
            "imports",
        ] {
            assert!(p.get(key).is_some(), "{key} missing in {p}");
        }
        assert_eq!(p["sha256"].as_str().map(str::len), Some(64));
        assert_eq!(p["digest_ok"], true);
        assert_eq!(p["refused"], serde_json::json!([]));
    }
    let crm = plugins.iter().find(|p| p["name"] == "crm").expect("crm");
    assert_eq!(
        crm["world"],
        serde_json::json!(["ferry:plugin/source@0.1.4", "ferry:plugin/sink@0.1.4"])
    );
    assert_eq!(crm["grants"]["files"][0]["guest"], "/in");
    assert_eq!(crm["grants"]["files"][0]["mode"], "ro");
    let imports: Vec<&str> = crm["imports"]
        .as_array()
        .expect("imports")
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert!(
        imports.iter().any(|i| i.starts_with("wasi:filesystem/")),
        "{imports:?}"
    );
    let rules = plugins
        .iter()
        .find(|p| p["name"] == "rules")
        .expect("rules");
    assert!(
        rules["imports"]
            .as_array()
            .expect("imports")
            .iter()
            .all(|i| i["capability"] != "files"),
        "the validator touches no files: {rules}"
    );
}

#[test]
fn audit_reports_a_digest_that_differs_from_the_pinned_one() {
    let s = Sandbox::new();
    s.manifest(
        r#"[pipeline]
name = "pinned"

[plugins.src]
kind = "source"
wasm = "{FILE}"
sha256 = "1111111111111111111111111111111111111111111111111111111111111111"
grants = { files = [{ host = "in", guest = "/in" }] }

[plugins.out]
kind = "sink"
wasm = "{FILE}"
grants = { files = [{ host = "out", guest = "/out", mode = "rw" }] }

[[routes]]
from = "src"
to = ["out"]
"#,
    );
    let audit = ferry(&["audit", "pipeline.toml"], s.dir.path()).expect("ferry runs");
    assert_eq!(audit.code, 1);
    assert!(
        audit.stdout.contains("DIFFERS from the pinned 1111"),
        "{}",
        audit.stdout
    );
    assert!(audit.stdout.contains("REFUSED"), "{}", audit.stdout);
}

#[test]
fn lock_pins_digests_and_a_changed_component_is_then_refused() {
    let s = Sandbox::new();
    std::fs::copy(crate::support::plugins::PASSTHROUGH, s.path("same.wasm")).expect("copy");
    s.write("in/a.jsonl", "{\"id\":\"1\"}\n");
    s.write(
        "pipeline.toml",
        &crate::support::with_plugins(
            r#"# comments stay
[pipeline]
name = "locked"

[plugins.src]
kind = "source"
wasm = "{FILE}"
config = { path = "/in/a.jsonl" }
grants = { files = [{ host = "in", guest = "/in" }] }

[plugins.same]
kind = "mapper"
wasm = "same.wasm"

[plugins.out]
kind = "sink"
wasm = "{FILE}"
config = { path = "/out/out.jsonl" }
grants = { files = [{ host = "out", guest = "/out", mode = "rw" }] }

[[routes]]
from = "src"
through = ["same"]
to = ["out"]
"#,
        ),
    );
    let unpinned = ferry(&["validate", "pipeline.toml"], s.dir.path()).expect("ferry runs");
    assert_eq!(unpinned.code, 1, "digests are required");
    assert!(
        unpinned.stderr.contains("has no pinned sha256") && unpinned.stderr.contains("ferry lock"),
        "{}",
        unpinned.stderr
    );
    let lock = ferry(&["lock", "pipeline.toml"], s.dir.path()).expect("ferry runs");
    assert_eq!(lock.code, 0, "{}", lock.stderr);
    let text = std::fs::read_to_string(s.path("pipeline.toml")).expect("read");
    assert!(
        text.starts_with("# comments stay\n"),
        "the rest of the file is kept: {text}"
    );
    assert_eq!(text.matches("sha256 = \"").count(), 3, "{text}");
    let again = ferry(&["lock", "pipeline.toml"], s.dir.path()).expect("ferry runs");
    assert!(
        again.stdout.contains("every digest already pinned"),
        "{}",
        again.stdout
    );
    assert_eq!(
        ferry(&["validate", "pipeline.toml"], s.dir.path())
            .expect("runs")
            .code,
        0
    );

    // A component that changes after it was pinned is refused.
    let mut bytes = std::fs::read(s.path("same.wasm")).expect("read");
    // A custom section: the component still loads, but its bytes differ.
    bytes.extend_from_slice(&[0, 7, 4, b'n', b'o', b'p', b'e', 0, 0]);
    std::fs::write(s.path("same.wasm"), bytes).expect("write");
    let run = ferry(&["run", "pipeline.toml"], s.dir.path()).expect("ferry runs");
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("plugin `same`") && run.stderr.contains("the manifest expects"),
        "{}",
        run.stderr
    );
    let audit = ferry(&["audit", "pipeline.toml", "--json"], s.dir.path()).expect("ferry runs");
    assert_eq!(audit.code, 1);
    let report: Value = serde_json::from_str(&audit.stdout).expect("JSON");
    let same = report["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .find(|p| p["name"] == "same")
        .expect("same");
    assert_eq!(same["digest_ok"], false);
}

/// A plugin reaches only the SQL connections it is granted: naming another
/// one is refused, logged and kept in the audit log; `ferry audit` shows
/// each plugin's connections (never a password).
#[test]
fn a_connection_that_is_not_granted_is_refused_and_audited() {
    let s = Sandbox::new();
    s.write("in/a.jsonl", "{\"id\": 1, \"name\": \"a\"}\n");
    let manifest = |connection: &str| {
        format!(
            r#"[pipeline]
name = "t"

[connections.warehouse]
url = "sqlite:out/warehouse.db"

[connections.ops]
url = "postgres://ferry@127.0.0.1:1/ops"
password_env = "FERRY_TEST_OPS_PASSWORD"

[plugins.src]
kind = "source"
wasm = "{{FILE}}"
config = {{ path = "/in/a.jsonl", key = "id" }}
grants = {{ files = [{{ host = "in", guest = "/in" }}] }}

[plugins.out]
kind = "sink"
wasm = "{sqlite}"
config = {{ connection = "{connection}", table = "items", create_table = true }}
grants = {{ sql = ["warehouse"] }}

[[routes]]
from = "src"
to = ["out"]
"#,
            sqlite = crate::support::plugins::SQLITE,
        )
    };

    s.manifest(&manifest("ops"));
    let out = ferry(&["run", "pipeline.toml", "--no-watch"], s.dir.path()).expect("ferry runs");
    assert_ne!(out.code, 0, "a denied connection stops the stage");
    assert!(
        out.stderr
            .contains("connection `ops` is not granted to this plugin"),
        "{}",
        out.stderr
    );
    let log = ferry(&["audit-log", "pipeline.toml", "--json"], s.dir.path()).expect("ferry runs");
    let events: Value = serde_json::from_str(&log.stdout).expect("JSON");
    let denial = events
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["capability"] == "sql")
        .unwrap_or_else(|| panic!("no sql denial in {events}"));
    assert_eq!(denial["stage"], "out");
    assert!(
        denial["target"]
            .as_str()
            .is_some_and(|t| t.contains("connection `ops`")),
        "{denial}"
    );

    // The granted one works.
    s.manifest(&manifest("warehouse"));
    let out = ferry(&["run", "pipeline.toml", "--no-watch"], s.dir.path()).expect("ferry runs");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let db = rusqlite::Connection::open(s.path("out/warehouse.db")).expect("the warehouse");
    let n: i64 = db
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .expect("a count");
    assert_eq!(n, 1);

    let audit = ferry(&["audit", "pipeline.toml", "--json"], s.dir.path()).expect("ferry runs");
    let report: Value = serde_json::from_str(&audit.stdout).expect("JSON");
    let out_plugin = report["plugins"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "out")
        .expect("the sink in the report");
    let sql = &out_plugin["grants"]["sql"][0];
    assert_eq!(sql["name"], "warehouse");
    assert!(
        sql["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("sqlite:") && t.ends_with("warehouse.db")),
        "{sql}"
    );
    assert!(
        out_plugin["imports"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|i| i["capability"] == "sql"),
        "{out_plugin}"
    );
}
