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

pub mod file {
    use super::*;

    #[test]
    fn reads_jsonl_and_csv_with_quoting_and_writes_jsonl() {
        let s = Sandbox::new();
        s.write("in/a.jsonl", "{\"id\":\"1\",\"n\":1,\"x\":1.5,\"ok\":true,\"tags\":[\"a\"]}\n{\"id\":\"2\",\"n\":2,\"x\":2.5,\"ok\":false,\"tags\":[]}\n");
        s.write(
            "in/b.csv",
            "id,name,note\n3,\"Smith, Ann\",\"said \"\"hi\"\"\"\n4,Bob,\"two\nlines\"\n5,Eve,\n",
        );
        s.manifest(&pipeline(
            r#"{ paths = ["/in/a.jsonl", "/in/b.csv"] }"#,
            &[],
            "",
        ));
        let report = s.run().expect("runs");
        assert_eq!((report.accounting.read, report.accounting.written), (5, 5));
        let out = s.jsonl("out/out.jsonl");
        assert_eq!(
            out[0],
            json!({ "id": "1", "n": 1, "x": 1.5, "ok": true, "tags": ["a"] })
        );
        assert_eq!(
            out[2],
            json!({ "id": "3", "name": "Smith, Ann", "note": "said \"hi\"" })
        );
        assert_eq!(out[3]["note"], json!("two\nlines"));
        assert_eq!(out[4]["note"], serde_json::Value::Null);
    }

    #[test]
    fn a_second_run_resumes_from_the_checkpoint_and_writes_nothing_twice() {
        let s = Sandbox::new();
        let lines: String = (0..300).map(|i| format!("{{\"id\":\"{i}\"}}\n")).collect();
        s.write("in/a.jsonl", &lines);
        s.manifest(&pipeline(r#"{ path = "/in/a.jsonl" }"#, &[], ""));
        assert_eq!(s.run().expect("first run").accounting.written, 300);
        let again = s.run().expect("second run");
        assert_eq!(again.accounting.read, 0);
        assert_eq!(s.jsonl("out/out.jsonl").len(), 300);
        // New lines are picked up from where the last run stopped.
        s.append("in/a.jsonl", "{\"id\":\"300\"}\n{\"id\":\"301\"}\n");
        assert_eq!(s.run().expect("third run").accounting.written, 2);
        let out = s.jsonl("out/out.jsonl");
        assert_eq!(out.len(), 302);
        assert_eq!(out[301]["id"], json!("301"));
    }

    #[test]
    fn a_partial_last_line_waits_for_its_newline() {
        let s = Sandbox::new();
        s.write("in/a.jsonl", "{\"id\":\"1\"}\n{\"id\":");
        s.manifest(&pipeline(r#"{ path = "/in/a.jsonl" }"#, &[], ""));
        assert_eq!(s.run().expect("runs").accounting.read, 1);
        s.append("in/a.jsonl", "\"2\"}\n");
        assert_eq!(s.run().expect("runs").accounting.written, 1);
        assert_eq!(
            crate::support::keys_of(&s.jsonl("out/out.jsonl"), "id"),
            ["1", "2"]
        );
    }

    #[test]
    fn malformed_lines_are_kept_and_dead_lettered_by_the_validator() {
        let s = Sandbox::new();
        s.write("in/a.jsonl", "{\"id\":\"1\"}\nnot json\n{\"id\":\"3\"}\n");
        let extra = r#"
[plugins.check]
kind = "validator"
wasm = "{SCHEMA_VALIDATOR}"
config = { required = ["id"] }
"#;
        s.manifest(&pipeline(r#"{ path = "/in/a.jsonl" }"#, &["check"], extra));
        let report = s.run().expect("runs");
        assert_eq!(
            (report.accounting.written, report.accounting.dead_lettered),
            (2, 1)
        );
        let dl = s.dead_letters();
        assert_eq!(dl.len(), 1);
        assert_eq!(dl[0].stage, "check");
        assert_eq!(dl[0].record["_raw"], json!("not json"));
    }
}

pub mod field_mapper {
    use super::*;

    #[test]
    fn renames_casts_trims_computes_and_looks_up() {
        let s = Sandbox::new();
        s.write("in/regions.csv", "country,region\nDE,EU\nUS,NA\n");
        s.write(
            "in/a.jsonl",
            concat!(
                "{\"id\":\"1\",\"mail\":\" A@X.COM \",\"first\":\" ann \",\"last\":\"lee\",\"age\":\"41\",\"signup\":\"2024-02-03\",\"country\":\"DE\",\"secret\":1}\n",
                "{\"id\":\"2\",\"mail\":\"b@y.org\",\"first\":\"bob\",\"last\":\"ray\",\"age\":\"abc\",\"signup\":\"2024-02-03\",\"country\":\"US\"}\n",
                "{\"id\":\"3\",\"mail\":\"c@z.net\",\"first\":\"cy\",\"last\":\"do\",\"age\":\"7\",\"signup\":\"2023-12-31\",\"country\":\"FR\"}\n",
            ),
        );
        let extra = r#"
[plugins.map]
kind = "mapper"
wasm = "{FIELD_MAPPER}"
grants = { files = [{ host = "in", guest = "/ref" }] }
[plugins.map.config]
rename = { mail = "email" }
drop = ["secret"]
default = { tier = "basic" }
trim = ["email", "first"]
lowercase = ["email"]
titlecase = ["first", "last"]
cast = { age = "int", signup = "timestamp" }
computed = { name = "first + ' ' + last", age_next = "age + 1" }
lookup = [{ table = "/ref/regions.csv", match = "country", column = "region", into = "region" }]
"#;
        s.manifest(&pipeline(r#"{ path = "/in/a.jsonl" }"#, &["map"], extra));
        let report = s.run().expect("runs");
        assert_eq!(
            (report.accounting.written, report.accounting.dead_lettered),
            (2, 1)
        );
        let out = s.jsonl("out/out.jsonl");
        let ann = &out[0];
        assert_eq!(ann["email"], json!("a@x.com"));
        assert_eq!(ann["name"], json!("Ann Lee"));
        assert_eq!(ann["age"], json!(41));
        assert_eq!(ann["age_next"], json!(42));
        assert_eq!(ann["signup"], json!("2024-02-03T00:00:00Z"));
        assert_eq!(ann["region"], json!("EU"));
        assert_eq!(ann["tier"], json!("basic"));
        assert!(ann.get("secret").is_none() && ann.get("mail").is_none());
        assert_eq!(out[1]["region"], serde_json::Value::Null);
        let dl = s.dead_letters();
        assert_eq!(dl.len(), 1);
        assert_eq!(
            (
                dl[0].key.as_str(),
                dl[0].stage.as_str(),
                dl[0].reason.as_str()
            ),
            ("2", "map", "rejected")
        );
        assert!(
            dl[0].detail.contains("age") && dl[0].detail.contains("abc"),
            "{}",
            dl[0].detail
        );
    }

    #[test]
    fn a_bad_expression_stops_the_pipeline_before_it_reads() {
        let s = Sandbox::new();
        s.write("in/a.jsonl", "{\"id\":\"1\"}\n");
        let extra = r#"
[plugins.map]
kind = "mapper"
wasm = "{FIELD_MAPPER}"
config = { computed = { x = "a + (b" } }
"#;
        s.manifest(&pipeline(r#"{ path = "/in/a.jsonl" }"#, &["map"], extra));
        let err = s.run().expect_err("open fails").to_string();
        assert!(
            err.contains("map") && err.contains("invalid configuration"),
            "{err}"
        );
        assert!(s.jsonl("out/out.jsonl").is_empty());
    }
}

pub mod schema_validator {
    use super::*;

    #[test]
    fn each_rule_names_its_violation() {
        let s = Sandbox::new();
        s.write(
            "in/a.jsonl",
            concat!(
                "{\"id\":\"ok\",\"email\":\"a@b.c\",\"age\":30,\"name\":\"Ann\",\"region\":\"EU\"}\n",
                "{\"id\":\"no-email\",\"age\":30,\"name\":\"Ann\",\"region\":\"EU\"}\n",
                "{\"id\":\"bad-email\",\"email\":\"nope\",\"age\":30,\"name\":\"Ann\",\"region\":\"EU\"}\n",
                "{\"id\":\"old\",\"email\":\"a@b.c\",\"age\":200,\"name\":\"Ann\",\"region\":\"EU\"}\n",
                "{\"id\":\"text-age\",\"email\":\"a@b.c\",\"age\":\"x\",\"name\":\"Ann\",\"region\":\"EU\"}\n",
                "{\"id\":\"long\",\"email\":\"a@b.c\",\"age\":3,\"name\":\"AnnAnnAnnAnn\",\"region\":\"EU\"}\n",
                "{\"id\":\"mars\",\"email\":\"a@b.c\",\"age\":3,\"name\":\"Ann\",\"region\":\"MARS\"}\n",
                "{\"id\":\"ok\",\"email\":\"a@b.c\",\"age\":31,\"name\":\"Ann\",\"region\":\"EU\"}\n",
            ),
        );
        let extra = r#"
[plugins.check]
kind = "validator"
wasm = "{SCHEMA_VALIDATOR}"
[plugins.check.config]
required = ["id", "email"]
types = { age = "int" }
ranges = { age = { min = 0, max = 150 } }
lengths = { name = { max = 10 } }
regex = { email = '^[^@\s]+@[^@\s]+$' }
enums = { region = ["EU", "US"] }
unique_key = true
"#;
        s.manifest(&pipeline(r#"{ path = "/in/a.jsonl" }"#, &["check"], extra));
        let report = s.run().expect("runs");
        assert_eq!(
            (report.accounting.written, report.accounting.dead_lettered),
            (1, 7)
        );
        let dl = s.dead_letters();
        let detail = |key: &str| {
            dl.iter()
                .find(|d| d.key == key)
                .map(|d| d.detail.clone())
                .unwrap_or_default()
        };
        assert!(
            detail("no-email").contains("required"),
            "{}",
            detail("no-email")
        );
        assert!(
            detail("bad-email").contains("regex"),
            "{}",
            detail("bad-email")
        );
        assert!(detail("old").contains("range"), "{}", detail("old"));
        assert!(
            detail("text-age").contains("type"),
            "{}",
            detail("text-age")
        );
        assert!(detail("long").contains("length"), "{}", detail("long"));
        assert!(detail("mars").contains("enum"), "{}", detail("mars"));
        assert!(
            dl.iter()
                .any(|d| d.key == "ok" && d.detail.contains("unique")),
            "{dl:?}"
        );
        assert!(
            dl.iter()
                .all(|d| d.reason == "invalid" && d.stage == "check")
        );
    }
}

pub mod passthrough {
    use super::*;

    #[test]
    fn returns_every_record_unchanged() {
        let s = Sandbox::new();
        s.write(
            "in/a.jsonl",
            "{\"id\":\"1\",\"v\":[1,{\"a\":null}]}\n{\"id\":\"2\",\"v\":2}\n",
        );
        let extra = r#"
[plugins.same]
kind = "mapper"
wasm = "{PASSTHROUGH}"
"#;
        s.manifest(&pipeline(r#"{ path = "/in/a.jsonl" }"#, &["same"], extra));
        assert_eq!(s.run().expect("runs").accounting.written, 2);
        let out = s.jsonl("out/out.jsonl");
        assert_eq!(out[0], json!({ "id": "1", "v": [1, { "a": null }] }));
        assert_eq!(out[1], json!({ "id": "2", "v": 2 }));
    }
}

/// `test-faulty-resolver`: a resolver that fails on purpose; two-way sync's
/// tests of a failing resolver are in `two_way.rs`.
pub mod test_faulty_resolver {}

pub mod test_faulty_mapper {
    use super::*;

    fn run_with(
        config: &str,
    ) -> (
        Sandbox,
        Result<ferry_pipeline::RunReport, ferry_pipeline::PipelineError>,
    ) {
        run_with_grants(config, "{ memory_mb = 16, timeout_ms = 300 }")
    }

    fn run_with_grants(
        config: &str,
        grants: &str,
    ) -> (
        Sandbox,
        Result<ferry_pipeline::RunReport, ferry_pipeline::PipelineError>,
    ) {
        let s = Sandbox::new();
        let lines: String = (0..100).map(|i| format!("{{\"id\":\"k{i}\"}}\n")).collect();
        s.write("in/a.jsonl", &lines);
        let extra = format!(
            r#"
[plugins.faulty]
kind = "mapper"
wasm = "{{FAULTY_MAPPER}}"
config = {config}
grants = {grants}
"#
        );
        s.manifest(&pipeline(
            r#"{ path = "/in/a.jsonl" }"#,
            &["faulty"],
            &extra,
        ));
        let r = s.run();
        (s, r)
    }

    fn assert_only(s: &Sandbox, report: &ferry_pipeline::RunReport, keys: &[&str], reason: &str) {
        assert_eq!(report.accounting.read, 100);
        assert_eq!(
            report.accounting.dead_lettered,
            keys.len() as u64,
            "{report:?}"
        );
        assert_eq!(report.accounting.written, 100 - keys.len() as u64);
        let dl = s.dead_letters();
        let mut got: Vec<&str> = dl.iter().map(|d| d.key.as_str()).collect();
        got.sort();
        assert_eq!(got, keys);
        for d in &dl {
            assert_eq!(d.reason, reason, "{d:?}");
            assert_eq!(d.stage, "faulty");
            assert_eq!(d.plugin_digest.len(), 64);
        }
        assert_eq!(s.jsonl("out/out.jsonl").len(), 100 - keys.len());
    }

    #[test]
    fn a_trap_isolates_the_poison_record_and_the_instance_is_rebuilt() {
        let (s, r) = run_with(r#"{ trap_keys = ["k7", "k70"] }"#);
        let report = r.expect("runs");
        assert_only(&s, &report, &["k7", "k70"], "trap");
        assert!(
            report.rebuilds > 0,
            "the trapped store was rebuilt: {report:?}"
        );
    }

    #[test]
    fn a_plugin_that_traps_on_everything_is_stopped_by_its_circuit_breaker() {
        let s = Sandbox::new();
        let lines: String = (0..100).map(|i| format!("{{\"id\":\"k{i}\"}}\n")).collect();
        s.write("in/a.jsonl", &lines);
        let keys: Vec<String> = (0..100).map(|i| format!("\"k{i}\"")).collect();
        let extra = format!(
            "\n[plugins.faulty]\nkind = \"mapper\"\nwasm = \"{{FAULTY_MAPPER}}\"\nconfig = {{ trap_keys = [{}] }}\n",
            keys.join(", ")
        );
        let text = pipeline(r#"{ path = "/in/a.jsonl" }"#, &["faulty"], &extra);
        s.manifest(&text.replace("max_records = 64", "max_records = 10"));
        match s.run() {
            Err(ferry_pipeline::PipelineError::Failed { report, error }) => {
                assert!(
                    matches!(*error, ferry_pipeline::PipelineError::CircuitOpen { ref stage, batches: 5, .. } if stage == "faulty"),
                    "{error}"
                );
                assert!(error.to_string().contains("circuit breaker"), "{error}");
                // The four batches before the one that tripped it were
                // dead-lettered and committed; nothing after them was.
                let a = report.accounting;
                assert_eq!((a.read, a.written, a.dead_lettered), (40, 0, 40), "{a:?}");
                assert_eq!(s.dead_letters().len(), 40);
                assert!(s.dead_letters().iter().all(|d| d.reason == "trap"));
            }
            other => panic!("expected the circuit breaker, got {other:?}"),
        }
    }

    #[test]
    fn a_call_past_its_deadline_is_interrupted() {
        let (s, r) = run_with(r#"{ spin_keys = ["k3"] }"#);
        assert_only(&s, &r.expect("runs"), &["k3"], "deadline");
    }

    #[test]
    fn a_memory_breach_is_reported_as_memory() {
        let (s, r) = run_with(r#"{ alloc_keys = ["k50"] }"#);
        assert_only(&s, &r.expect("runs"), &["k50"], "memory");
    }

    #[test]
    fn a_call_past_its_fuel_budget_is_stopped() {
        // A generous deadline: the fuel budget is what stops the loop.
        let (s, r) = run_with_grants(
            r#"{ spin_keys = ["k3"] }"#,
            "{ memory_mb = 16, timeout_ms = 60000, fuel = 20000000 }",
        );
        assert_only(&s, &r.expect("runs"), &["k3"], "fuel");
    }

    #[test]
    fn an_oversized_answer_is_refused_and_only_its_record_dead_lettered() {
        let (s, r) = run_with_grants(
            r#"{ huge_keys = ["k42"], huge_bytes = 3000000 }"#,
            "{ memory_mb = 32, max_output_mb = 1 }",
        );
        assert_only(&s, &r.expect("runs"), &["k42"], "output-size");
        let dl = s.dead_letters();
        assert!(
            dl[0].detail.contains("over its limit of 1 MiB"),
            "{}",
            dl[0].detail
        );
    }

    #[test]
    fn a_retryable_error_is_retried_as_configured_then_dead_lettered() {
        let (s, r) = run_with_grants(
            r#"{ retryable_keys = ["k5"] }
retry = { attempts = 4, backoff_ms = 1, max_backoff_ms = 2 }"#,
            "{ memory_mb = 16 }",
        );
        assert_only(&s, &r.expect("runs"), &["k5"], "retryable");
        // 4 calls on its batch of 64 (the configured attempts), then one per
        // halving down to the record alone (64 -> 1: 6 calls).
        assert_eq!(s.dead_letters()[0].attempts, 4 + 6);
    }

    #[test]
    fn a_fatal_error_dead_letters_only_the_failing_records() {
        let (s, r) = run_with(r#"{ fatal_keys = ["k99"] }"#);
        assert_only(&s, &r.expect("runs"), &["k99"], "fatal");
    }

    #[test]
    fn rejected_records_go_to_the_dead_letter_store() {
        let (s, r) = run_with(r#"{ reject_keys = ["k1", "k2"] }"#);
        assert_only(&s, &r.expect("runs"), &["k1", "k2"], "rejected");
    }
}

pub mod test_faulty_sink {
    use super::*;

    #[test]
    fn a_sink_rejection_is_a_dead_letter_and_the_other_sink_still_writes() {
        let s = Sandbox::new();
        let lines: String = (0..10).map(|i| format!("{{\"id\":\"k{i}\"}}\n")).collect();
        s.write("in/a.jsonl", &lines);
        let mut text = pipeline(r#"{ path = "/in/a.jsonl" }"#, &[], "");
        text = text.replace("to = [\"out\"]", "to = [\"out\", \"picky\"]");
        text.push_str(
            r#"
[plugins.picky]
kind = "sink"
wasm = "{FAULTY_SINK}"
config = { reject_keys = ["k4"] }
"#,
        );
        s.manifest(&text);
        let report = s.run().expect("runs");
        assert_eq!(report.accounting.written, 9);
        assert_eq!(report.accounting.dead_lettered, 1);
        assert_eq!(
            s.jsonl("out/out.jsonl").len(),
            10,
            "the file sink wrote every record"
        );
        let dl = s.dead_letters();
        assert_eq!(
            (
                dl[0].key.as_str(),
                dl[0].stage.as_str(),
                dl[0].reason.as_str()
            ),
            ("k4", "picky", "rejected")
        );
    }

    /// src -> [out (file), picky (test-faulty-sink with `picky_config`)],
    /// batches of 10, 100 records k0..k99.
    fn nacking(s: &Sandbox, picky_config: &str) {
        let lines: String = (0..100).map(|i| format!("{{\"id\":\"k{i}\"}}\n")).collect();
        s.write("in/a.jsonl", &lines);
        let mut text = pipeline(r#"{ path = "/in/a.jsonl" }"#, &[], "");
        text = text
            .replace("to = [\"out\"]", "to = [\"out\", \"picky\"]")
            .replace("max_records = 64", "max_records = 10");
        text.push_str(&format!(
            "\n[plugins.picky]\nkind = \"sink\"\nwasm = \"{{FAULTY_SINK}}\"\nconfig = {picky_config}\nretry = {{ attempts = 2, backoff_ms = 5, max_backoff_ms = 20 }}\n"
        ));
        s.manifest(&text);
    }

    const EVERY_TENTH: &str =
        r#"["k0", "k10", "k20", "k30", "k40", "k50", "k60", "k70", "k80", "k90"]"#;

    #[test]
    fn a_sink_that_is_down_pauses_the_pipeline_and_loses_nothing_across_a_restart() {
        let s = Sandbox::new();
        nacking(&s, &format!("{{ retryable_keys = {EVERY_TENTH} }}"));
        let plan = s.plan().expect("plans");
        let (options, stop) = ferry_pipeline::RunOptions::new();
        let status = std::sync::Arc::clone(&options.status);
        let state: std::sync::Arc<dyn ferry_state::StateStore> = std::sync::Arc::new(s.state());
        let run = std::thread::spawn(move || crate::support::run_plan(plan, state, options));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while status.paused().is_none() {
            assert!(std::time::Instant::now() < deadline, "never paused");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let why = status.paused().unwrap_or_default();
        assert!(why.contains("sink `picky` is down"), "{why}");
        assert!(why.contains("retryable on purpose"), "{why}");
        // Backpressure, not loss: nothing past the first nacked batch is
        // committed or dead-lettered while the sink is down.
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(status.committed().read, 0);
        stop.send(true).expect("stop");
        match run.join().expect("joins") {
            Err(ferry_pipeline::PipelineError::Failed { error, report }) => {
                assert!(
                    matches!(*error, ferry_pipeline::PipelineError::SinkDown { ref stage } if stage == "picky"),
                    "{error}"
                );
                assert_eq!(report.accounting.read, 0);
            }
            other => panic!("expected a stop while the sink was down: {other:?}"),
        }
        assert!(s.dead_letters().is_empty(), "nothing was dead-lettered");

        // The sink recovers; the next run delivers everything.
        nacking(&s, "{}");
        let report = s.run().expect("runs");
        assert_eq!(report.accounting.read, 100);
        assert_eq!(report.accounting.written, 100);
        assert_eq!(report.accounting.dead_lettered, 0);
        let mut keys: Vec<String> = s
            .jsonl("out/out.jsonl")
            .iter()
            .map(|r| r["id"].as_str().unwrap_or("").to_string())
            .collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 100, "every record reached the file sink");
    }

    #[test]
    fn a_sink_that_comes_back_by_itself_resumes_the_pipeline() {
        let s = Sandbox::new();
        // Each nacked key fails 3 calls: more than the 2 attempts, so the
        // pipeline pauses, then the sink answers again.
        nacking(
            &s,
            &format!("{{ retryable_keys = {EVERY_TENTH}, retryable_times = 3 }}"),
        );
        let report = s.run().expect("runs");
        assert_eq!(
            (
                report.accounting.read,
                report.accounting.written,
                report.accounting.dead_lettered
            ),
            (100, 100, 0)
        );
    }
}

pub mod test_net_probe {
    use std::collections::HashMap;
    use std::io::Read;

    use ferry_state::StateStore;
    use serde_json::Value;

    use crate::support::{Sandbox, ferry};

    fn probe(
        s: &Sandbox,
        network: &str,
        attempts: &[(&str, &str, String)],
    ) -> HashMap<String, String> {
        let lines: String = attempts
            .iter()
            .map(|(id, op, addr)| {
                format!("{{\"id\":\"{id}\",\"op\":\"{op}\",\"addr\":\"{addr}\"}}\n")
            })
            .collect();
        let grants = format!("{{ network = [{network}], timeout_ms = 3000 }}");
        super::run_probe(s, &lines, "{NET_PROBE}", &grants)
    }

    #[test]
    fn connections_follow_the_allow_list_and_every_denial_is_audited() {
        // A real server on loopback; nothing here sends a packet elsewhere:
        // denied addresses are refused before any connection is tried.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut got = String::new();
            conn.read_to_string(&mut got).expect("read");
            got
        });
        let s = Sandbox::new();
        let results = probe(
            &s,
            &format!("\"tcp://127.0.0.1:{port}\", \"tcp://*:80\""),
            &[
                ("granted", "connect", format!("127.0.0.1:{port}")),
                (
                    "other-port",
                    "connect",
                    format!("127.0.0.1:{}", if port == 65535 { 1 } else { port + 1 }),
                ),
                ("metadata", "connect", "169.254.169.254:80".to_string()),
                ("private", "connect", "10.1.2.3:80".to_string()),
                ("loopback-star", "connect", "127.0.0.1:80".to_string()),
                ("listen", "listen", "0.0.0.0:8080".to_string()),
                ("udp", "udp", format!("127.0.0.1:{port}")),
            ],
        );
        assert_eq!(results["granted"], "ok");
        assert_eq!(
            server.join().expect("server"),
            "hello from test-net-probe\n"
        );
        for id in [
            "other-port",
            "metadata",
            "private",
            "loopback-star",
            "listen",
            "udp",
        ] {
            assert!(results[id].starts_with("denied"), "{id}: {}", results[id]);
        }
        let events = s.state().audit_events(Some("t")).expect("audit log");
        let targets: Vec<&str> = events.iter().map(|e| e.target.as_str()).collect();
        for want in [
            format!(
                "tcp connect 127.0.0.1:{}",
                if port == 65535 { 1 } else { port + 1 }
            ),
            "tcp connect 169.254.169.254:80".to_string(),
            "tcp connect 10.1.2.3:80".to_string(),
            "tcp connect 127.0.0.1:80".to_string(),
            "tcp bind 0.0.0.0:8080".to_string(),
        ] {
            assert!(
                targets.contains(&want.as_str()),
                "{want} not audited: {targets:?}"
            );
        }
        assert!(events.iter().all(|e| e.stage == "probe"
            && e.capability == "network"
            && e.plugin_digest.len() == 64));
        let log =
            ferry(&["audit-log", "pipeline.toml", "--json"], s.dir.path()).expect("ferry runs");
        assert_eq!(log.code, 0, "{}", log.stderr);
        let listed: Vec<Value> = serde_json::from_str(&log.stdout).expect("a JSON array");
        assert_eq!(listed.len(), events.len());
        assert!(
            listed
                .iter()
                .any(|e| e["target"] == "tcp connect 169.254.169.254:80"),
            "{listed:?}"
        );
    }

    #[test]
    fn a_name_that_resolves_to_loopback_does_not_open_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let port = listener.local_addr().expect("addr").port();
        let s = Sandbox::new();
        let results = probe(
            &s,
            &format!("\"tcp://localhost:{port}\""),
            &[("by-name", "connect", format!("localhost:{port}"))],
        );
        assert!(
            results["by-name"].starts_with("denied"),
            "{}",
            results["by-name"]
        );
        let events = s.state().audit_events(None).expect("audit log");
        assert!(
            events
                .iter()
                .any(|e| e.detail.contains("no grant names it")),
            "{events:?}"
        );
    }

    #[test]
    fn a_component_importing_an_ungranted_interface_is_refused_before_it_runs() {
        let s = Sandbox::new();
        s.write("in/a.jsonl", "{\"id\":\"1\"}\n");
        let extra = r#"
[plugins.probe]
kind = "mapper"
wasm = "{NET_PROBE}"
"#;
        s.manifest(&super::pipeline(
            r#"{ path = "/in/a.jsonl" }"#,
            &["probe"],
            extra,
        ));
        let run = ferry(&["run", "pipeline.toml"], s.dir.path()).expect("ferry runs");
        assert_eq!(run.code, 1);
        assert!(
            run.stderr.contains("plugin `probe` imports `wasi:sockets/")
                && run.stderr.contains("it has no `network` grant"),
            "{}",
            run.stderr
        );
        assert!(!s.path(".ferry/state.db").exists(), "nothing ran");

        let audit = ferry(&["audit", "pipeline.toml", "--json"], s.dir.path()).expect("ferry runs");
        assert_eq!(
            audit.code, 1,
            "audit exits 1 when anything would be refused"
        );
        let report: Value = serde_json::from_str(&audit.stdout).expect("JSON");
        let probe = report["plugins"]
            .as_array()
            .expect("plugins")
            .iter()
            .find(|p| p["name"] == "probe")
            .expect("probe");
        assert!(
            probe["imports"]
                .as_array()
                .expect("imports")
                .iter()
                .any(|i| i["capability"] == "network")
        );
        assert!(
            probe["refused"][0]
                .as_str()
                .unwrap_or("")
                .contains("wasi:sockets/"),
            "{probe}"
        );
    }
}

pub mod test_env_probe {
    use serde_json::json;

    use crate::support::{Sandbox, ferry_with_env};

    const EXTRA: &str = r#"
[plugins.probe]
kind = "mapper"
wasm = "{ENV_PROBE}"
grants = { env = { MODE = "fast", TOKEN = { from_env = "FERRY_TEST_SECRET" } } }
"#;

    #[test]
    fn a_plugin_sees_exactly_its_granted_variables_and_nothing_of_the_host() {
        let s = Sandbox::new();
        s.write("in/a.jsonl", "{\"id\":\"1\"}\n");
        s.manifest(&super::pipeline(
            r#"{ path = "/in/a.jsonl" }"#,
            &["probe"],
            EXTRA,
        ));
        let run = ferry_with_env(
            &["run", "pipeline.toml"],
            s.dir.path(),
            &[
                ("FERRY_TEST_SECRET", "s3cret"),
                ("FERRY_TEST_OTHER", "must not leak"),
            ],
        )
        .expect("ferry runs");
        assert_eq!(run.code, 0, "{}", run.stderr);
        let out = s.jsonl("out/out.jsonl");
        assert_eq!(
            out[0]["env"],
            json!({ "MODE": "fast", "TOKEN": "s3cret" }),
            "no PATH, HOME or other host variable"
        );
    }

    #[test]
    fn a_missing_host_variable_is_refused_before_the_run() {
        let s = Sandbox::new();
        s.write("in/a.jsonl", "{\"id\":\"1\"}\n");
        s.manifest(&super::pipeline(
            r#"{ path = "/in/a.jsonl" }"#,
            &["probe"],
            EXTRA,
        ));
        let run =
            ferry_with_env(&["validate", "pipeline.toml"], s.dir.path(), &[]).expect("ferry runs");
        assert_eq!(run.code, 1);
        assert!(
            run.stderr
                .contains("`TOKEN` comes from the host's `FERRY_TEST_SECRET`, which is not set"),
            "{}",
            run.stderr
        );
        let audit = ferry_with_env(
            &["audit", "pipeline.toml"],
            s.dir.path(),
            &[("FERRY_TEST_SECRET", "s3cret")],
        )
        .expect("ferry runs");
        assert_eq!(audit.code, 0, "{}{}", audit.stdout, audit.stderr);
        assert!(
            audit
                .stdout
                .contains("TOKEN (from the host's FERRY_TEST_SECRET)"),
            "{}",
            audit.stdout
        );
        assert!(
            !audit.stdout.contains("s3cret"),
            "audit never prints a host variable's value"
        );
    }
}

pub mod test_fs_probe {
    use std::collections::HashMap;

    use ferry_state::StateStore;

    use crate::support::Sandbox;

    #[test]
    fn file_access_stays_inside_the_granted_folders() {
        let s = Sandbox::new();
        s.write("ro/readable.txt", "hello");
        s.write("outside/secret.txt", "the secret");
        std::os::unix::fs::symlink(s.path("outside/secret.txt"), s.path("ro/link-out"))
            .expect("symlink");
        let attempts = [
            ("granted", "read", "/ro/readable.txt"),
            ("dotdot", "read", "/ro/../outside/secret.txt"),
            ("absolute", "read", "/outside/secret.txt"),
            ("etc", "read", "/etc/passwd"),
            ("symlink", "read", "/ro/link-out"),
            ("write-ro", "write", "/ro/new.txt"),
            ("write-rw", "write", "/scratch/new.txt"),
            // Past libc, straight to the host: relative to the /ro grant.
            ("raw-granted", "raw-read", "readable.txt"),
            ("raw-absolute", "raw-read", "/etc/passwd"),
            ("raw-dotdot", "raw-read", "../outside/secret.txt"),
        ];
        let lines: String = attempts
            .iter()
            .map(|(id, op, path)| {
                format!("{{\"id\":\"{id}\",\"op\":\"{op}\",\"path\":\"{path}\",\"dir\":\"/ro\"}}\n")
            })
            .collect();
        s.write("in/a.jsonl", &lines);
        let extra = r#"
[plugins.probe]
kind = "mapper"
wasm = "{FS_PROBE}"
grants = { files = [{ host = "ro", guest = "/ro" }, { host = "scratch", guest = "/scratch", mode = "rw" }] }
"#;
        s.manifest(&super::pipeline(
            r#"{ path = "/in/a.jsonl" }"#,
            &["probe"],
            extra,
        ));
        let report = s.run().expect("runs");
        assert_eq!(report.accounting.written, attempts.len() as u64);
        let results: HashMap<String, serde_json::Value> = s
            .jsonl("out/out.jsonl")
            .into_iter()
            .map(|r| (r["id"].as_str().unwrap_or("").to_string(), r))
            .collect();
        let result = |id: &str| results[id]["result"].as_str().unwrap_or("").to_string();
        assert_eq!(result("granted"), "ok");
        assert_eq!(results["granted"]["content"], "hello");
        assert_eq!(result("raw-granted"), "ok");
        assert_eq!(results["raw-granted"]["content"], "hello");
        for id in [
            "dotdot",
            "absolute",
            "etc",
            "symlink",
            "write-ro",
            "raw-absolute",
            "raw-dotdot",
        ] {
            assert!(result(id).starts_with("denied"), "{id}: {}", results[id]);
            assert!(
                results[id]["content"].is_null(),
                "{id} read nothing: {}",
                results[id]
            );
        }
        assert_eq!(result("write-rw"), "ok");
        assert!(
            s.path("scratch/new.txt").is_file(),
            "the rw grant was written"
        );
        assert!(!s.path("ro/new.txt").exists(), "the ro grant was not");
        // Every refusal the host saw is in the audit log with the plugin's
        // digest. (`absolute` and `etc` name no granted folder: the plugin's
        // libc refuses them itself, nothing reaches the host.)
        let events = s.state().audit_events(None).expect("audit log");
        let targets: Vec<&str> = events.iter().map(|e| e.target.as_str()).collect();
        for want in [
            "open \"../outside/secret.txt\" for read",
            "open \"link-out\" for read",
            "open \"new.txt\" for write",
            "open \"/etc/passwd\" for read",
        ] {
            assert!(targets.contains(&want), "{want} missing from {targets:?}");
        }
        assert!(
            events.iter().all(|e| e.capability == "filesystem"
                && e.stage == "probe"
                && e.plugin_digest.len() == 64),
            "{events:?}"
        );
        assert_eq!(
            targets
                .iter()
                .filter(|t| **t == "open \"../outside/secret.txt\" for read")
                .count(),
            2,
            "the libc and the raw `..` attempts: {targets:?}"
        );
    }
}

pub mod test_http_probe {
    use std::collections::HashMap;
    use std::io::{Read, Write};

    use ferry_state::StateStore;

    use crate::support::Sandbox;

    /// A one-request HTTP server on loopback; returns its port and the
    /// request line it received.
    fn serve_once() -> (u16, std::thread::JoinHandle<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).expect("read");
            conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .expect("write");
            String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        });
        (port, server)
    }

    fn probe(s: &Sandbox, network: &str, urls: &[(&str, String)]) -> HashMap<String, String> {
        let lines: String = urls
            .iter()
            .map(|(id, url)| format!("{{\"id\":\"{id}\",\"url\":\"{url}\"}}\n"))
            .collect();
        let grants = format!("{{ network = [{network}], timeout_ms = 5000 }}");
        super::run_probe(s, &lines, "{HTTP_PROBE}", &grants)
    }

    #[test]
    fn http_requests_follow_the_allow_list_and_denials_are_audited() {
        let (port, server) = serve_once();
        let s = Sandbox::new();
        let results = probe(
            &s,
            &format!("\"http://127.0.0.1:{port}\", \"http://*:80\""),
            &[
                ("granted", format!("http://127.0.0.1:{port}/hello")),
                (
                    "metadata",
                    "http://169.254.169.254/latest/meta-data".to_string(),
                ),
                ("private", "http://10.1.2.3/".to_string()),
                ("https-not-granted", format!("https://127.0.0.1:{port}/")),
            ],
        );
        assert_eq!(results["granted"], "status 200", "{results:?}");
        assert_eq!(server.join().expect("server"), "GET /hello HTTP/1.1");
        for id in ["metadata", "private", "https-not-granted"] {
            assert!(
                results[id].starts_with("denied") && results[id].contains("HttpRequestDenied"),
                "{id}: {}",
                results[id]
            );
        }
        let events = s.state().audit_events(None).expect("audit log");
        let targets: Vec<&str> = events.iter().map(|e| e.target.as_str()).collect();
        assert!(
            targets.contains(&"http GET http://169.254.169.254/latest/meta-data"),
            "{targets:?}"
        );
        assert!(
            targets.contains(&"http GET http://10.1.2.3/"),
            "{targets:?}"
        );
        assert_eq!(events.len(), 3, "{targets:?}");
    }

    #[test]
    fn a_name_that_resolves_to_loopback_does_not_open_it() {
        let s = Sandbox::new();
        let results = probe(
            &s,
            "\"http://localhost:9\"",
            &[("by-name", "http://localhost:9/".to_string())],
        );
        assert!(
            results["by-name"].starts_with("denied"),
            "{}",
            results["by-name"]
        );
        let events = s.state().audit_events(None).expect("audit log");
        assert!(
            events.iter().any(|e| e.detail.contains("resolves to")),
            "{events:?}"
        );
    }
}

pub mod test_tagger_v1 {
    //! Hot swaps of a running stage (issue: hot reload), driven through the
    //! pipeline's controller.

    use std::collections::HashMap;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use ferry_pipeline::{PlannedStage, RunOptions, prepare_swap, swap_control};
    use ferry_state::StateStore;

    use crate::support::{Sandbox, with_plugins};

    const KEYS: u64 = 20;

    /// A follow-mode pipeline: file source -> `tag` -> file sink.
    fn manifest(tag: &str) -> String {
        super::pipeline(
            r#"{ path = "/in/a.jsonl" }"#,
            &["tag"],
            &format!("\n[plugins.tag]\nkind = \"mapper\"\nwasm = \"{tag}\"\n"),
        )
        .replace(
            "name = \"t\"",
            "name = \"t\"\nmode = \"follow\"\npoll_interval_ms = 5",
        )
    }

    /// The `tag` stage of the manifest `text`, planned from `file`.
    fn stage(s: &Sandbox, file: &str, text: &str) -> PlannedStage {
        let path = s.write(file, &with_plugins(text));
        ferry_pipeline::lock(&path, ferry_pipeline::LockMode::Missing).expect("lock");
        let m = ferry_manifest::load(&path).expect("loads");
        let plan = ferry_pipeline::plan(m, crate::support::runtime()).expect("plans");
        plan.stages
            .into_iter()
            .find(|st| st.name == "tag")
            .expect("a tag stage")
    }

    fn lines(from: u64, to: u64) -> String {
        (from..to)
            .map(|i| format!("{{\"id\":\"k{}\",\"seq\":{i}}}\n", i % KEYS))
            .collect()
    }

    #[test]
    fn fifty_swaps_under_load_lose_double_and_reorder_nothing() {
        let s = Sandbox::new();
        s.write("in/a.jsonl", "");
        s.manifest(&manifest("{TAGGER_V1}"));
        let plan = s.plan().expect("plans");
        let v1 = stage(&s, "v1.toml", &manifest("{TAGGER_V1}"));
        let v2 = stage(&s, "v2.toml", &manifest("{TAGGER_V2}"));
        let broken = stage(
            &s,
            "broken.toml",
            &manifest("{FAULTY_MAPPER}").replace(
                "kind = \"mapper\"\nwasm",
                "kind = \"mapper\"\nconfig = { fail_open = \"fatal\" }\nwasm",
            ),
        );
        let state: Arc<dyn StateStore> = Arc::new(s.state());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio");
        let (options, stop) = RunOptions::new();
        let status = Arc::clone(&options.status);
        let (controller, ctl) = swap_control();
        let running = rt.spawn(ferry_pipeline::run_controlled(
            plan,
            Arc::clone(&state),
            options,
            ctl,
        ));

        // Continuous input while the swaps happen.
        const FIRST: u64 = 10_000;
        let input = s.path("in/a.jsonl");
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&input)
                .expect("input");
            for chunk in 0..FIRST / 100 {
                f.write_all(lines(chunk * 100, chunk * 100 + 100).as_bytes())
                    .expect("append");
                std::thread::sleep(Duration::from_millis(2));
            }
        });

        let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut pauses = Vec::new();
        let mut current = "v1";
        rt.block_on(async {
            for i in 0..50 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                tokio::time::sleep(Duration::from_millis(rng % 12)).await;
                let (next, name) = if i % 2 == 0 { (&v2, "v2") } else { (&v1, "v1") };
                let (next, state) = (next.clone(), Arc::clone(&state));
                let prepared =
                    tokio::task::spawn_blocking(move || prepare_swap(&next, "t", &state))
                        .await
                        .expect("joins")
                        .expect("the new version opens");
                let report = controller.swap(prepared).await.expect("swapped");
                assert_eq!(report.stage, "tag");
                assert_ne!(report.old_digest, report.new_digest);
                pauses.push(report.pause);
                current = name;
            }
            // A third version whose `open` fails is refused before any swap:
            // the current one keeps serving.
            let state = Arc::clone(&state);
            let refused = tokio::task::spawn_blocking(move || prepare_swap(&broken, "t", &state))
                .await
                .expect("joins");
            let err = refused.expect_err("the broken version is refused");
            assert!(err.to_string().contains("failing open on purpose"), "{err}");
        });
        writer.join().expect("writer");
        // More input after the refused swap: the current version serves it.
        const TOTAL: u64 = FIRST + 500;
        s.append("in/a.jsonl", &lines(FIRST, TOTAL));
        let deadline = Instant::now() + Duration::from_secs(120);
        while status.committed().read < TOTAL {
            assert!(
                Instant::now() < deadline,
                "only {} of {TOTAL} records committed",
                status.committed().read
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.send(true).expect("stop");
        let report = rt
            .block_on(running)
            .expect("joins")
            .expect("the pipeline ran");
        assert_eq!(report.accounting.written, TOTAL);
        assert_eq!(status.read.load(Ordering::Relaxed), TOTAL);

        let out = s.jsonl("out/out.jsonl");
        assert_eq!(out.len() as u64, TOTAL, "every record exactly once");
        let mut seen = vec![false; TOTAL as usize];
        let mut last_seq: HashMap<String, i64> = HashMap::new();
        let mut versions: HashMap<&str, u64> = HashMap::new();
        for r in &out {
            let seq = r["seq"].as_i64().expect("seq");
            assert!(!seen[seq as usize], "seq {seq} twice");
            seen[seq as usize] = true;
            let version = r["version"].as_str().expect("tagged");
            assert!(version == "v1" || version == "v2", "{r}");
            *versions
                .entry(if version == "v1" { "v1" } else { "v2" })
                .or_default() += 1;
            let key = r["id"].as_str().expect("id").to_string();
            if let Some(prev) = last_seq.insert(key.clone(), seq) {
                assert!(prev < seq, "key {key}: {seq} after {prev}");
            }
            if seq as u64 >= FIRST {
                assert_eq!(version, current, "after the refused swap: {r}");
            }
        }
        assert!(seen.iter().all(|s| *s), "every record arrived");
        assert!(
            versions.len() == 2,
            "both versions served records: {versions:?}"
        );
        pauses.sort();
        eprintln!(
            "swap pause over 50 swaps: median {:?}, max {:?}",
            pauses[pauses.len() / 2],
            pauses[pauses.len() - 1]
        );
    }
}

pub mod test_tagger_v2 {
    use crate::support::Sandbox;

    #[test]
    fn tags_each_record_with_its_version() {
        let s = Sandbox::new();
        s.write("in/a.jsonl", "{\"id\":\"1\"}\n{\"id\":\"2\"}\n");
        s.manifest(&super::pipeline(
            r#"{ path = "/in/a.jsonl" }"#,
            &["tag"],
            "\n[plugins.tag]\nkind = \"mapper\"\nwasm = \"{TAGGER_V2}\"\n",
        ));
        s.run().expect("runs");
        let out = s.jsonl("out/out.jsonl");
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|r| r["version"] == "v2"), "{out:?}");
    }
}

/// The business-rule resolver, called through the host as two-way sync calls
/// it: both versions of each conflicting key and their common ancestor.
pub mod rules_resolver {
    use ferry_host::batch::{BatchExt, JsonRecord, batch_from_json};
    use ferry_host::{Batch, Component, InstanceSpec, Op, Resolution, ResolverInstance};
    use serde_json::{Value, json};

    use crate::support::{plugins, runtime};

    fn resolver(config: Value) -> ResolverInstance {
        let component =
            Component::load(runtime(), plugins::RULES_RESOLVER.as_ref()).expect("loads");
        let mut spec = InstanceSpec::new("customers-sync", "settle");
        spec.config = config.to_string();
        ResolverInstance::new(&component, spec, None).expect("opens")
    }

    fn customer_rules() -> Value {
        json!({
            "rules": [
                { "field": "credit_limit", "prefer": "higher" },
                { "fields": ["street", "city", "zip"], "prefer": "newer", "by": "address_updated_at" },
            ],
            "otherwise": "defer",
            "on_delete": "defer",
        })
    }

    /// One version per conflict: its key, its fields (`None`: the key does
    /// not exist there) and its updated-at.
    type Version<'a> = (&'a str, Option<Value>, Option<i64>);

    fn batch(versions: &[Version<'_>]) -> Batch {
        let records: Vec<JsonRecord> = versions
            .iter()
            .map(|(key, fields, _)| JsonRecord {
                key: key.to_string(),
                op: if fields.is_some() {
                    Op::Upsert
                } else {
                    Op::Delete
                },
                fields: fields
                    .as_ref()
                    .and_then(|f| f.as_object().cloned())
                    .unwrap_or_default(),
            })
            .collect();
        let mut b = batch_from_json(&records);
        if versions.iter().any(|(_, _, at)| at.is_some()) {
            b.updated_at = Some(versions.iter().map(|(_, _, at)| at.unwrap_or(0)).collect());
        }
        b
    }

    /// Resolves one batch of conflicts; returns each decision as text and
    /// the merged records as JSON lines.
    fn resolve(
        resolver: &mut ResolverInstance,
        left: &[Version<'_>],
        right: &[Version<'_>],
        ancestor: &[Version<'_>],
    ) -> (Vec<String>, Vec<(Value, Option<i64>)>) {
        let out = resolver
            .resolve(&batch(left), &batch(right), &batch(ancestor))
            .expect("resolves");
        let decisions = out
            .decisions
            .iter()
            .map(|d| match d {
                Resolution::TakeLeft => "take-left".to_string(),
                Resolution::TakeRight => "take-right".to_string(),
                Resolution::Merged(n) => format!("merged {n}"),
                Resolution::Defer(why) => format!("defer: {why}"),
            })
            .collect();
        let merged = (0..out.merged.len())
            .map(|i| {
                let mut row = out.merged.row_json(i);
                row["_key"] = json!(out.merged.key(i));
                let at = out
                    .merged
                    .updated_at
                    .as_ref()
                    .and_then(|u| u.get(i).copied());
                (row, at)
            })
            .collect();
        (decisions, merged)
    }

    #[test]
    fn the_higher_credit_limit_wins_and_the_newer_address_wins() {
        let mut r = resolver(customer_rules());
        let ancestor = json!({
            "name": "Acme", "credit_limit": 1000,
            "street": "1 Old Road", "city": "Lyon", "zip": "69001",
            "address_updated_at": "2026-01-10T09:00:00Z",
        });
        // Left raises the limit and edits the street, with an older address
        // change; right lowers the limit and edits street and city later.
        let left = json!({
            "name": "Acme", "credit_limit": 5000,
            "street": "2 Left Street", "city": "Lyon", "zip": "69001",
            "address_updated_at": "2026-02-01T08:00:00Z",
        });
        let right = json!({
            "name": "Acme", "credit_limit": 500,
            "street": "3 Right Avenue", "city": "Villeurbanne", "zip": "69001",
            "address_updated_at": "2026-03-05T17:30:00+01:00",
        });
        let (decisions, merged) = resolve(
            &mut r,
            &[("c-1", Some(left), Some(1_000))],
            &[("c-1", Some(right), Some(2_000))],
            &[("c-1", Some(ancestor), Some(500))],
        );
        assert_eq!(decisions, ["merged 0"]);
        assert_eq!(
            merged,
            [(
                json!({
                    "_key": "c-1",
                    "name": "Acme",
                    "credit_limit": 5000,
                    "street": "3 Right Avenue",
                    "city": "Villeurbanne",
                    "zip": "69001",
                    "address_updated_at": "2026-03-05T17:30:00+01:00",
                }),
                Some(2_000)
            )]
        );
    }

    #[test]
    fn a_change_made_on_one_side_only_is_kept() {
        let mut r = resolver(customer_rules());
        let ancestor = json!({ "name": "Acme", "phone": "111", "credit_limit": 1000 });
        let (decisions, merged) = resolve(
            &mut r,
            &[
                // 1: left changed the phone, right the credit limit.
                (
                    "c-1",
                    Some(json!({ "name": "Acme", "phone": "222", "credit_limit": 1000 })),
                    None,
                ),
                // 2: only right changed anything.
                ("c-2", Some(ancestor.clone()), None),
            ],
            &[
                (
                    "c-1",
                    Some(json!({ "name": "Acme", "phone": "111", "credit_limit": 800 })),
                    None,
                ),
                (
                    "c-2",
                    Some(json!({ "name": "Acme Ltd", "phone": "111", "credit_limit": 1000 })),
                    None,
                ),
            ],
            &[
                ("c-1", Some(ancestor.clone()), None),
                ("c-2", Some(ancestor), None),
            ],
        );
        assert_eq!(decisions, ["merged 0", "take-right"]);
        assert_eq!(
            merged[0].0,
            json!({ "_key": "c-1", "name": "Acme", "phone": "222", "credit_limit": 800 })
        );
    }

    #[test]
    fn a_field_without_a_rule_is_deferred_with_a_reason_naming_it() {
        let mut r = resolver(customer_rules());
        let (decisions, merged) = resolve(
            &mut r,
            &[(
                "c-1",
                Some(json!({ "phone": "222", "credit_limit": 2000 })),
                None,
            )],
            &[(
                "c-1",
                Some(json!({ "phone": "333", "credit_limit": 1000 })),
                None,
            )],
            &[(
                "c-1",
                Some(json!({ "phone": "111", "credit_limit": 1000 })),
                None,
            )],
        );
        assert_eq!(
            decisions,
            ["defer: `phone` changed on both sides and no rule decides it"]
        );
        assert!(merged.is_empty());

        // With `otherwise = "right"` the same conflict merges.
        let mut rules = customer_rules();
        rules["otherwise"] = json!("right");
        let mut r = resolver(rules);
        let (decisions, merged) = resolve(
            &mut r,
            &[(
                "c-1",
                Some(json!({ "phone": "222", "credit_limit": 2000 })),
                None,
            )],
            &[(
                "c-1",
                Some(json!({ "phone": "333", "credit_limit": 1000 })),
                None,
            )],
            &[(
                "c-1",
                Some(json!({ "phone": "111", "credit_limit": 1000 })),
                None,
            )],
        );
        assert_eq!(decisions, ["merged 0"]);
        assert_eq!(
            merged[0].0,
            json!({ "_key": "c-1", "phone": "333", "credit_limit": 2000 })
        );
    }

    #[test]
    fn a_delete_against_an_edit_goes_by_on_delete() {
        let ancestor = json!({ "name": "Acme", "credit_limit": 1000 });
        let edited = json!({ "name": "Acme", "credit_limit": 3000 });
        let decide = |on_delete: &str| {
            let mut rules = customer_rules();
            rules["on_delete"] = json!(on_delete);
            let mut r = resolver(rules);
            // Deleted on the left in one conflict, on the right in the other.
            resolve(
                &mut r,
                &[("c-1", None, None), ("c-2", Some(edited.clone()), None)],
                &[("c-1", Some(edited.clone()), None), ("c-2", None, None)],
                &[
                    ("c-1", Some(ancestor.clone()), None),
                    ("c-2", Some(ancestor.clone()), None),
                ],
            )
            .0
        };
        assert_eq!(
            decide("defer"),
            [
                "defer: deleted on the left side and changed on the right side since they last agreed (on_delete = \"defer\")",
                "defer: deleted on the right side and changed on the left side since they last agreed (on_delete = \"defer\")",
            ]
        );
        assert_eq!(decide("keep"), ["take-right", "take-left"]);
        assert_eq!(decide("delete"), ["take-left", "take-right"]);

        // A delete where the other side did not change stands whatever
        // `on_delete` says.
        let mut r = resolver(customer_rules());
        let (decisions, _) = resolve(
            &mut r,
            &[("c-1", Some(ancestor.clone()), None)],
            &[("c-1", None, None)],
            &[("c-1", Some(ancestor), None)],
        );
        assert_eq!(decisions, ["take-right"]);
    }

    #[test]
    fn a_bad_rule_stops_it_at_open_naming_the_rule_and_the_fix() {
        let component =
            Component::load(runtime(), plugins::RULES_RESOLVER.as_ref()).expect("loads");
        let mut spec = InstanceSpec::new("customers-sync", "settle");
        spec.config = json!({ "rules": [
            { "field": "credit_limit", "prefer": "higher", "by": "changed_at" },
        ]})
        .to_string();
        let err = ResolverInstance::new(&component, spec, None)
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.contains(
                "config.rules[0] (credit_limit): `by` goes with prefer = \"newer\" or \"older\" only; remove `by`, or prefer newer or older"
            ),
            "{err}"
        );
    }
}

/// The `sqlite` connector: its pipelines (delta and full sources, the
/// upserting sink, version conflicts, rejections, type round trips) are in
/// `sql_sync.rs`, beside the PostgreSQL ones they share with `postgres`.
pub mod sqlite {}

/// The `postgres` connector: its table source and sink pipelines are in
/// `sql_sync.rs`; `mode = "cdc"` is `ferry_postgres_cdc`'s.
pub mod postgres {}

pub use crate::hostile_flood::flood as test_hostile_flood;
pub use crate::hostile_json::json as test_hostile_json;
// The SQL attacks' tests live in hostile_sql.rs.
pub use crate::hostile_sql::begin as test_hostile_sql_begin;
pub use crate::hostile_sql::escape as test_hostile_sql_escape;
pub use crate::hostile_sql::hold as test_hostile_sql_hold;
pub use crate::hostile_sql::huge_result as test_hostile_sql_huge_result;
