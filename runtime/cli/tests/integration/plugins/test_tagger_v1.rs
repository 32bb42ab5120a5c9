//! The `test_tagger_v1` plugin in real pipelines.

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
            let prepared = tokio::task::spawn_blocking(move || prepare_swap(&next, "t", &state))
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
