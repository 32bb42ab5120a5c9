//! The `test_faulty_mapper` plugin in real pipelines.

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
