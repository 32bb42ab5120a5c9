//! The `test_faulty_sink` plugin in real pipelines.

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
