//! Throughput of the quickstart's mapping and validation, through WebAssembly
//! plugins and natively, and the host-and-boundary cost of a plugin call.
//!
//! `cargo bench -p ferry-tests --bench throughput` measures, with criterion:
//!
//! - `pipeline/wasm/<batch>`: file -> field-mapper -> schema-validator ->
//!   file (and the EU route), run by ferry on the quickstart's 6,000 JSON
//!   Lines contacts, for batch sizes 1, 64 and 512;
//! - `pipeline/native`: the same plugin crates (same code, same config)
//!   compiled into this binary and called directly, batch 512;
//! - `boundary/passthrough`: one call of a mapper that returns its input, on
//!   a 512-record batch of 5 fields: what the host and the boundary cost.
//!
//! It then prints a summary with records/s and the native/wasm ratio.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // a benchmark fails loudly

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput};
use ferry_host::{
    Batch, Column, Component, InstanceSpec, MapperInstance, Op, Runtime, RuntimeOptions, Texts,
    Values,
};
use ferry_plugin::{Mapped, Mapper, Sink, Source, SourceStatus, Validator, Violations};
use ferry_state::SqliteState;

const BATCH_SIZES: [u32; 3] = [1, 64, 512];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn runtime() -> Runtime {
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache");
    Runtime::new(RuntimeOptions {
        cache_dir: Some(cache),
    })
    .expect("engine")
}

/// The quickstart manifest, reading only the JSON Lines file, with the given
/// batch size and absolute plugin paths.
fn manifest_text(batch: u32) -> String {
    let dist = repo()
        .join("plugins/dist")
        .canonicalize()
        .expect("plugins/dist: run bash plugins/build.sh");
    std::fs::read_to_string(repo().join("examples/quickstart/pipeline.toml"))
        .expect("quickstart manifest")
        .replace("../../plugins/dist", &dist.display().to_string())
        .replace(
            "\"/in/contacts.jsonl\", \"/in/contacts.csv\"",
            "\"/in/contacts.jsonl\"",
        )
        .replace("max_records = 512", &format!("max_records = {batch}"))
}

/// A scratch copy of the quickstart's data with a manifest.
fn scratch(batch: u32) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(dir.path().join("data")).expect("data");
    for f in ["contacts.jsonl", "regions.csv"] {
        std::fs::copy(
            repo().join("examples/quickstart/data").join(f),
            dir.path().join("data").join(f),
        )
        .expect("copy");
    }
    let manifest = dir.path().join("pipeline.toml");
    std::fs::write(&manifest, manifest_text(batch)).expect("manifest");
    (dir, manifest)
}

fn records_in_source() -> u64 {
    std::fs::read_to_string(repo().join("examples/quickstart/data/contacts.jsonl"))
        .expect("data")
        .lines()
        .count() as u64
}

/// One run of the pipeline through ferry; returns records read.
fn run_wasm(rt: &tokio::runtime::Runtime, runtime: &Runtime, batch: u32) -> u64 {
    let (dir, manifest) = scratch(batch);
    let plan = ferry_pipeline::plan(ferry_manifest::load(&manifest).expect("manifest"), runtime)
        .expect("plan");
    let state = Arc::new(SqliteState::open(&dir.path().join(".ferry/state.db")).expect("state"));
    let (options, _stop) = ferry_pipeline::RunOptions::new();
    let report = rt
        .block_on(ferry_pipeline::run(plan, state, options))
        .expect("run");
    report.accounting.read
}

/// A plugin's config from the manifest, with guest paths made host paths.
fn native_config<T: serde::de::DeserializeOwned>(
    manifest: &ferry_manifest::Manifest,
    plugin: &str,
    dir: &Path,
) -> T {
    let text = manifest.plugins[plugin]
        .config
        .to_string()
        .replace("\"/in/", &format!("\"{}/data/", dir.display()))
        .replace("\"/ref/", &format!("\"{}/data/", dir.display()))
        .replace("\"/out/", &format!("\"{}/out/", dir.display()));
    serde_json::from_str(&text).expect("config")
}

/// The same plugin code called directly: no WebAssembly, no host pipeline.
fn run_native(batch: u32) -> u64 {
    let (dir, manifest_path) = scratch(batch);
    let d = dir.path();
    std::fs::create_dir_all(d.join("out")).expect("out");
    let manifest = ferry_manifest::load(&manifest_path).expect("manifest");
    let mut source =
        file::FileSource::open(native_config(&manifest, "crm", d), None).expect("source");
    let mut mapper = field_mapper::FieldMapper::open(native_config(&manifest, "to_warehouse", d))
        .expect("mapper");
    let mut rules = schema_validator::SchemaValidator::open(native_config(&manifest, "rules", d))
        .expect("validator");
    let mut warehouse =
        file::FileSink::open(native_config(&manifest, "warehouse", d)).expect("sink");
    let mut eu = file::FileSink::open(native_config(&manifest, "eu_warehouse", d)).expect("sink");
    let mut read = 0u64;
    loop {
        let polled = source.poll(batch).expect("poll");
        let input = ferry_plugin::Batch::from_raw(polled.records).expect("batch");
        read += input.len() as u64;
        let mut mapped = Mapped::new(input.len());
        mapper.map(&input, &mut mapped).expect("map");
        let mapped = ferry_plugin::Batch::from_raw(mapped.finish(input).expect("mapped").records)
            .expect("batch");
        let mut violations = Violations::new();
        rules.validate(&mapped, &mut violations).expect("validate");
        let mut bad = vec![false; mapped.len()];
        for v in violations.as_slice() {
            bad[v.row as usize] = true;
        }
        let mut valid = Mapped::new(mapped.len());
        for row in mapped.rows().filter(|r| !bad[r.index()]) {
            valid.emit_copy(&row);
        }
        let valid = ferry_plugin::Batch::from_raw(valid.finish(mapped).expect("valid").records)
            .expect("batch");
        warehouse.write(&valid).expect("write");
        let region = valid.column("region");
        let mut european = Mapped::new(valid.len());
        for row in valid.rows() {
            if region.map(|c| row.value(c)) == Some(ferry_plugin::Value::Text("EU")) {
                european.emit_copy(&row);
            }
        }
        let european = ferry_plugin::Batch::from_raw(european.finish(valid).expect("eu").records)
            .expect("batch");
        eu.write(&european).expect("write");
        if !matches!(polled.status, SourceStatus::More) {
            break;
        }
    }
    warehouse.flush().expect("flush");
    eu.flush().expect("flush");
    read
}

/// A 512-record batch of 5 fields.
fn five_field_batch() -> Batch {
    let n = 512;
    let names: Vec<String> = (0..n).map(|i| format!("name-{i}")).collect();
    let emails: Vec<String> = (0..n).map(|i| format!("user{i}@example.org")).collect();
    let keys: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    Batch {
        keys: Texts::from_strs(keys.iter().map(String::as_str)),
        ops: vec![Op::Upsert; n],
        versions: None,
        updated_at: None,
        origins: None,
        columns: vec![
            Column {
                name: "id".into(),
                values: Values::Ints((0..n as i64).collect()),
                valid: None,
            },
            Column {
                name: "name".into(),
                values: Values::Text(Texts::from_strs(names.iter().map(String::as_str))),
                valid: None,
            },
            Column {
                name: "email".into(),
                values: Values::Text(Texts::from_strs(emails.iter().map(String::as_str))),
                valid: None,
            },
            Column {
                name: "score".into(),
                values: Values::Floats((0..n).map(|i| i as f64 * 0.5).collect()),
                valid: None,
            },
            Column {
                name: "active".into(),
                values: Values::Bools((0..n).map(|i| i % 2 == 0).collect()),
                valid: None,
            },
        ],
    }
}

fn passthrough(runtime: &Runtime) -> MapperInstance {
    let component = Component::load(runtime, &repo().join("plugins/dist/passthrough.wasm"))
        .expect("passthrough");
    let spec = InstanceSpec::new("bench", "passthrough");
    MapperInstance::new(&component, spec, None).expect("instance")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let runtime = runtime();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let n = records_in_source();
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));

    {
        let mut group = c.benchmark_group("pipeline");
        group.throughput(Throughput::Elements(n));
        for batch in BATCH_SIZES {
            group.bench_function(format!("wasm/{batch}"), |b| {
                b.iter_batched(
                    || (),
                    |()| run_wasm(&rt, &runtime, batch),
                    BatchSize::PerIteration,
                )
            });
        }
        group.bench_function("native/512", |b| {
            b.iter_batched(|| (), |()| run_native(512), BatchSize::PerIteration)
        });
        group.finish();
    }
    let batch = five_field_batch();
    let mut mapper = passthrough(&runtime);
    {
        let mut group = c.benchmark_group("boundary");
        group.throughput(Throughput::Elements(batch.ops.len() as u64));
        group.bench_function("passthrough/512", |b| {
            b.iter(|| mapper.map(&batch).expect("map"))
        });
        group.finish();
    }
    c.final_summary();

    // The summary: medians of a few runs of each, as records/s and ratios.
    let runs = 5;
    let rate = |f: &dyn Fn() -> u64| {
        median(
            (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    let read = f();
                    read as f64 / t.elapsed().as_secs_f64()
                })
                .collect(),
        )
    };
    let native = rate(&|| run_native(512));
    println!("\nsummary ({n} contacts, quickstart mapping and validation, median of {runs} runs)");
    println!(
        "  {:<34} {:>12}",
        "native (same plugin code), batch 512",
        format!("{native:.0} rec/s")
    );
    let mut lines = Vec::new();
    for batch in BATCH_SIZES {
        let wasm = rate(&|| run_wasm(&rt, &runtime, batch));
        println!(
            "  {:<34} {:>12}   native/wasm = {:.2}",
            format!("wasm plugins, batch {batch}"),
            format!("{wasm:.0} rec/s"),
            native / wasm
        );
        // ours: the sandboxed pipeline; theirs: the same code run natively.
        lines.push(format!(
            "bench: throughput_file_pipeline_batch_{batch} ratio={:.3} ours={wasm:.0} theirs={native:.0} unit=records/s",
            wasm / native
        ));
    }
    let calls = 2000;
    let t = Instant::now();
    for _ in 0..calls {
        mapper.map(&batch).expect("map");
    }
    let per_record = t.elapsed().as_nanos() as f64 / (calls * batch.ops.len()) as f64;
    println!(
        "  {:<34} {:>12}",
        "passthrough mapper, host + boundary",
        format!("{per_record:.1} ns/record")
    );
    lines.push(format!(
        "bench: boundary_passthrough_per_record value={per_record:.1} unit=ns/record"
    ));
    for line in lines {
        println!("{line}");
    }
}
