//! Routing, accounting, checkpoints and `on_invalid` across stages.

use std::sync::Arc;
use std::time::Duration;

use ferry_pipeline::{PipelineError, RunOptions};
use ferry_state::StateStore;
use serde_json::json;

use crate::support::{Sandbox, keys_of, run_plan};

const ROUTED: &str = r#"
[pipeline]
name = "routed"
batch = { max_records = 7 }

[plugins.src]
kind = "source"
wasm = "{FILE}"
config = { path = "/in/people.jsonl" }
grants = { files = [{ host = "in", guest = "/in" }] }

[plugins.rules]
kind = "validator"
wasm = "{SCHEMA_VALIDATOR}"
config = { required = ["email"] }

[plugins.all]
kind = "sink"
wasm = "{FILE}"
config = { path = "/out/all.jsonl" }
grants = { files = [{ host = "out", guest = "/out", mode = "rw" }] }

[plugins.also]
kind = "sink"
wasm = "{FILE}"
config = { path = "/out/also.jsonl" }
grants = { files = [{ host = "out", guest = "/out", mode = "rw" }] }

[plugins.eu]
kind = "sink"
wasm = "{FILE}"
config = { path = "/out/eu.jsonl" }
grants = { files = [{ host = "out", guest = "/out", mode = "rw" }] }

[[routes]]
from = "src"
through = ["rules"]
to = ["all", "also"]
on_invalid = "ON_INVALID"

[[routes]]
from = "rules"
when = { field = "region", equals = "EU" }
to = ["eu"]
"#;

fn people(s: &Sandbox, n: usize) {
    let mut text = String::new();
    for i in 0..n {
        let region = ["EU", "US", "APAC"][i % 3];
        if i % 10 == 9 {
            text.push_str(&format!("{{\"id\":\"p{i}\",\"region\":\"{region}\"}}\n"));
        } else {
            text.push_str(&format!(
                "{{\"id\":\"p{i}\",\"email\":\"p{i}@x.org\",\"region\":\"{region}\"}}\n"
            ));
        }
    }
    s.write("in/people.jsonl", &text);
}

#[test]
fn records_fan_out_and_route_by_field_and_the_accounting_balances() {
    let s = Sandbox::new();
    people(&s, 100);
    s.manifest(&ROUTED.replace("ON_INVALID", "dead-letter"));
    let report = s.run().expect("runs");
    let a = report.accounting;
    assert_eq!(
        (a.read, a.written, a.dead_lettered, a.filtered),
        (100, 90, 10, 0)
    );
    let all = s.jsonl("out/all.jsonl");
    assert_eq!(all.len(), 90);
    assert_eq!(
        keys_of(&all, "id"),
        keys_of(&s.jsonl("out/also.jsonl"), "id")
    );
    let eu = s.jsonl("out/eu.jsonl");
    assert!(eu.iter().all(|r| r["region"] == json!("EU")));
    assert_eq!(
        eu.len(),
        all.iter().filter(|r| r["region"] == json!("EU")).count()
    );
    // Kept in state: the run and the checkpoint.
    let state = s.state();
    let run = state
        .run(report.run_id)
        .expect("query")
        .expect("the run is recorded");
    assert_eq!(run.accounting, a);
    assert_eq!(run.status, ferry_state::RunStatus::Finished);
    assert!(state.checkpoint("routed", "src").expect("query").is_some());
    let dl = s.dead_letters();
    assert_eq!(dl.len(), 10);
    assert!(
        dl.iter()
            .all(|d| d.reason == "invalid" && d.detail.contains("email"))
    );
}

#[test]
fn on_invalid_drop_counts_records_as_filtered() {
    let s = Sandbox::new();
    people(&s, 30);
    s.manifest(&ROUTED.replace("ON_INVALID", "drop"));
    let a = s.run().expect("runs").accounting;
    assert_eq!(
        (a.read, a.written, a.dead_lettered, a.filtered),
        (30, 27, 0, 3)
    );
    assert!(s.dead_letters().is_empty());
}

#[test]
fn on_invalid_stop_stops_without_committing_past_the_invalid_record() {
    let s = Sandbox::new();
    people(&s, 30);
    s.manifest(&ROUTED.replace("ON_INVALID", "stop"));
    match s.run() {
        Err(PipelineError::Failed { report, error }) => {
            assert!(
                matches!(*error, PipelineError::Stopped { ref key, .. } if key == "p9"),
                "{error}"
            );
            assert!(report.accounting.balances());
            assert!(report.accounting.read < 30);
        }
        other => panic!("expected a stop, got {other:?}"),
    }
}

#[test]
fn follow_mode_picks_up_appended_records_until_shutdown() {
    let s = Sandbox::new();
    people(&s, 5);
    let text = ROUTED.replace("ON_INVALID", "dead-letter").replace(
        "batch = { max_records = 7 }",
        "mode = \"follow\"\npoll_interval_ms = 20\nbatch = { max_records = 7, max_wait_ms = 20 }",
    );
    s.manifest(&text);
    let plan = s.plan().expect("plans");
    let (options, stop) = RunOptions::new();
    let state: Arc<dyn StateStore> = Arc::new(s.state());
    let appender = {
        let path = s.path("in/people.jsonl");
        let out = s.path("out/all.jsonl");
        std::thread::spawn(move || {
            use std::io::Write;
            // Stop the pipeline however this thread ends.
            struct StopOnDrop(tokio::sync::watch::Sender<bool>);
            impl Drop for StopOnDrop {
                fn drop(&mut self) {
                    let _ = self.0.send(true);
                }
            }
            let _stop = StopOnDrop(stop);
            let wait_for = |n: usize| {
                for _ in 0..3000 {
                    if crate::support::read_jsonl(&out).len() >= n {
                        return true;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                false
            };
            assert!(wait_for(5), "the first records arrive");
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .expect("append");
            f.write_all(b"{\"id\":\"late1\",\"email\":\"l@x.org\",\"region\":\"EU\"}\n")
                .expect("write");
            f.write_all(b"{\"id\":\"late2\",\"email\":\"m@x.org\"}\n")
                .expect("write");
            drop(f);
            assert!(wait_for(7), "the appended records arrive");
        })
    };
    let report = run_plan(plan, state, options).expect("runs");
    appender.join().expect("appender");
    assert_eq!(report.accounting.read, 7);
    assert!(report.accounting.balances());
    assert_eq!(
        keys_of(&s.jsonl("out/eu.jsonl"), "id"),
        ["late1", "p0", "p3"]
    );
}

#[test]
fn plan_errors_point_at_the_manifest_lines() {
    let s = Sandbox::new();
    let text = r#"
[pipeline]
name = "bad-plan"

[plugins.src]
kind = "source"
wasm = "{FILE}"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
grants = { files = [{ host = "missing-folder", guest = "/in" }] }

[plugins.check]
kind = "validator"
wasm = "{PASSTHROUGH}"

[plugins.out]
kind = "sink"
wasm = "nowhere/sink.wasm"

[[routes]]
from = "src"
through = ["check"]
to = ["out"]
"#;
    s.manifest(text);
    // Sandbox::manifest pinned `check` (a line at the end of its table), so
    // `out` starts a line lower than written above.
    let err = s.plan().err().expect("the plan fails").to_string();
    assert!(
        err.contains("pipeline.toml:8:"),
        "digest mismatch at its line: {err}"
    );
    assert!(err.contains("the manifest expects 0000"), "{err}");
    assert!(
        err.contains("pipeline.toml:9:") && err.contains("missing-folder"),
        "{err}"
    );
    assert!(
        err.contains("pipeline.toml:12:") && err.contains("exports `mapper`"),
        "wrong world: {err}"
    );
    assert!(
        err.contains("pipeline.toml:18:") && err.contains("does not exist"),
        "missing wasm: {err}"
    );
    assert!(err.contains("4 errors"), "{err}");
}

#[test]
fn a_trapping_plugin_leaves_other_pipelines_running() {
    let healthy = Sandbox::new();
    people(&healthy, 2000);
    healthy.manifest(&ROUTED.replace("ON_INVALID", "dead-letter"));
    let broken = Sandbox::new();
    let lines: String = (0..2000)
        .map(|i| format!("{{\"id\":\"k{i}\"}}\n"))
        .collect();
    broken.write("in/a.jsonl", &lines);
    broken.manifest(
        r#"[pipeline]
name = "broken"
batch = { max_records = 100 }

[plugins.src]
kind = "source"
wasm = "{FILE}"
config = { path = "/in/a.jsonl" }
grants = { files = [{ host = "in", guest = "/in" }] }

[plugins.faulty]
kind = "mapper"
wasm = "{FAULTY_MAPPER}"
config = { trap_keys = ["k10", "k500", "k1999"] }

[plugins.out]
kind = "sink"
wasm = "{FILE}"
config = { path = "/out/out.jsonl" }
grants = { files = [{ host = "out", guest = "/out", mode = "rw" }] }

[[routes]]
from = "src"
through = ["faulty"]
to = ["out"]
"#,
    );
    // Both in one process, on one runtime, at the same time.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let (a, b) = rt.block_on(async {
        let (opts_a, _stop_a) = RunOptions::new();
        let (opts_b, _stop_b) = RunOptions::new();
        let a = tokio::spawn(ferry_pipeline::run(
            healthy.plan().expect("plans"),
            Arc::new(healthy.state()),
            opts_a,
        ));
        let b = tokio::spawn(ferry_pipeline::run(
            broken.plan().expect("plans"),
            Arc::new(broken.state()),
            opts_b,
        ));
        (a.await.expect("joins"), b.await.expect("joins"))
    });
    let a = a.expect("the healthy pipeline finishes").accounting;
    assert_eq!((a.read, a.written, a.dead_lettered), (2000, 1800, 200));
    let b = b.expect("the broken one finishes too").accounting;
    assert_eq!((b.read, b.written, b.dead_lettered), (2000, 1997, 3));
    let mut trapped: Vec<String> = broken.dead_letters().into_iter().map(|d| d.key).collect();
    trapped.sort();
    assert_eq!(trapped, ["k10", "k1999", "k500"]);
}
