//! The cost of hot swaps: `cargo bench -p ferry-tests --bench reload`.
//!
//! A follow-mode pipeline (file source -> test-tagger -> file sink) reads a
//! 300,000-record file as fast as it can, twice: once untouched, once while
//! the mapper is swapped between test-tagger-v1 and -v2 every 10 ms. It
//! prints the swap pause (median, p99, max: the time the stage did not
//! process records, from the end of the last batch on the old instance until
//! the new one was ready) and the throughput of both runs with their ratio
//! (the dip swapping causes).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // a benchmark fails loudly

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_host::{Runtime, RuntimeOptions};
use ferry_pipeline::{PlannedStage, RunOptions, prepare_swap, swap_control};
use ferry_state::{SqliteState, StateStore};

const RECORDS: u64 = 300_000;
const SWAP_EVERY: Duration = Duration::from_millis(10);

fn dist(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/dist")
        .join(name)
        .canonicalize()
        .expect("plugins/dist: run bash plugins/build.sh")
        .display()
        .to_string()
}

fn manifest(tagger: &str) -> String {
    format!(
        r#"
[pipeline]
name = "bench"
mode = "follow"
poll_interval_ms = 5
batch = {{ max_records = 512 }}

[plugins.src]
kind = "source"
wasm = "{file}"
config = {{ path = "/in/a.jsonl" }}
grants = {{ files = [{{ host = "in", guest = "/in" }}] }}

[plugins.tag]
kind = "mapper"
wasm = "{tagger}"

[plugins.out]
kind = "sink"
wasm = "{file}"
config = {{ path = "/out/out.jsonl" }}
grants = {{ files = [{{ host = "out", guest = "/out", mode = "rw" }}] }}

[[routes]]
from = "src"
through = ["tag"]
to = ["out"]
"#,
        file = dist("file.wasm"),
    )
}

fn plan(dir: &Path, file: &str, tagger: &str, runtime: &Runtime) -> ferry_pipeline::Plan {
    let path = dir.join(file);
    std::fs::write(&path, manifest(&dist(tagger))).expect("manifest");
    ferry_pipeline::lock(&path, ferry_pipeline::LockMode::Missing).expect("lock");
    ferry_pipeline::plan(ferry_manifest::load(&path).expect("loads"), runtime).expect("plans")
}

fn tag_stage(plan: &ferry_pipeline::Plan) -> PlannedStage {
    plan.stages
        .iter()
        .find(|s| s.name == "tag")
        .cloned()
        .expect("tag")
}

/// Runs the pipeline until every record is committed; swaps every
/// `SWAP_EVERY` when `swap` is set. Returns records/s and the pauses.
fn measure(runtime: &Runtime, swap: bool) -> (f64, Vec<Duration>) {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(dir.path().join("in")).expect("in");
    std::fs::create_dir_all(dir.path().join("out")).expect("out");
    let lines: String = (0..RECORDS)
        .map(|i| {
            format!(
                "{{\"id\":\"k{}\",\"seq\":{i},\"name\":\"record {i}\"}}\n",
                i % 1000
            )
        })
        .collect();
    std::fs::write(dir.path().join("in/a.jsonl"), lines).expect("input");
    let v1 = plan(dir.path(), "v1.toml", "test-tagger-v1.wasm", runtime);
    let v2 = tag_stage(&plan(dir.path(), "v2.toml", "test-tagger-v2.wasm", runtime));
    let v1_stage = tag_stage(&v1);
    let state: Arc<dyn StateStore> =
        Arc::new(SqliteState::open(&dir.path().join(".ferry/state.db")).expect("state"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let (options, stop) = RunOptions::new();
    let status = Arc::clone(&options.status);
    let (controller, ctl) = swap_control();
    let started = Instant::now();
    let running = rt.spawn(ferry_pipeline::run_controlled(
        v1,
        Arc::clone(&state),
        options,
        ctl,
    ));
    let mut pauses = Vec::new();
    rt.block_on(async {
        let mut next_is_v2 = true;
        while status.committed().read < RECORDS {
            tokio::time::sleep(SWAP_EVERY).await;
            if !swap {
                continue;
            }
            let stage = if next_is_v2 {
                v2.clone()
            } else {
                v1_stage.clone()
            };
            next_is_v2 = !next_is_v2;
            let st = Arc::clone(&state);
            let prepared = tokio::task::spawn_blocking(move || prepare_swap(&stage, "bench", &st))
                .await
                .expect("joins")
                .expect("prepares");
            let report = controller.swap(prepared).await.expect("swaps");
            pauses.push(report.pause);
        }
    });
    let elapsed = started.elapsed();
    stop.send(true).expect("stop");
    rt.block_on(running).expect("joins").expect("runs");
    (RECORDS as f64 / elapsed.as_secs_f64(), pauses)
}

fn main() {
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache")),
    })
    .expect("engine");
    // Warm the compile cache and the machine.
    let _ = measure(&runtime, false);
    let (plain, _) = measure(&runtime, false);
    let (swapping, mut pauses) = measure(&runtime, true);
    pauses.sort();
    let pct = |p: f64| pauses[((pauses.len() as f64 - 1.0) * p).round() as usize];
    println!("hot swap of a mapper under load ({RECORDS} records, a swap every {SWAP_EVERY:?})");
    println!(
        "  swaps            {} (pause median {:?}, p99 {:?}, max {:?})",
        pauses.len(),
        pct(0.5),
        pct(0.99),
        pauses[pauses.len() - 1]
    );
    println!("  without swaps    {:>9.0} records/s", plain);
    println!("  while swapping   {:>9.0} records/s", swapping);
    println!(
        "  ratio            {:>9.2} (swapping / without)",
        swapping / plain
    );
    println!(
        "bench: reload_throughput_while_swapping ratio={:.3} ours={swapping:.0} theirs={plain:.0} unit=records/s",
        swapping / plain
    );
    println!(
        "bench: reload_swap_pause_p99 value={:.3} unit=ms",
        pct(0.99).as_secs_f64() * 1000.0
    );
}
