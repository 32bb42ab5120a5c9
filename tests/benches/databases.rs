//! Database throughput next to PostgreSQL's own tools, as ratios.
//!
//! `cargo bench -p ferry-tests --bench databases` starts a throwaway
//! PostgreSQL server (the integration tests' harness), then measures:
//!
//! - **CDC**: `ROWS` inserted rows (in transactions of 1,000) read back as
//!   changes by ferry's PostgreSQL CDC source (pgoutput through a slot of its
//!   own) into a discarding sink, next to `pg_recvlogical` reading the same
//!   changes from a second slot into /dev/null;
//! - **sink**: the same number of rows written by ferry's PostgreSQL sink
//!   (file source -> postgres sink, upserts in one transaction per batch),
//!   next to `psql`'s `\copy` of the same rows from a CSV file.
//!
//! Each measurement is the best of `RUNS` runs; the summary prints rows/s and
//! ferry / tool ratios. Set `FERRY_BENCH_ROWS` to change the row count.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // a benchmark fails loudly

use ferry_tests::pg;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_host::{Runtime, RuntimeOptions};
use ferry_state::SqliteState;

const RUNS: usize = 3;

fn rows() -> u64 {
    std::env::var("FERRY_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

fn dist(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/dist")
        .join(name)
        .canonicalize()
        .unwrap_or_else(|_| panic!("plugins/dist/{name}: run bash plugins/build.sh"))
        .display()
        .to_string()
}

fn runtime() -> Runtime {
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache");
    Runtime::new(RuntimeOptions {
        cache_dir: Some(cache),
    })
    .expect("engine")
}

/// Runs pipeline `name` reading from and writing to PostgreSQL at `url`
/// through ferry: `stages` are its plugins and routes, after a shared
/// preamble (batches of 4,096, the `ops` connection). Returns (records read,
/// elapsed).
fn run_ferry(
    rt: &tokio::runtime::Runtime,
    runtime: &Runtime,
    name: &str,
    url: &str,
    stages: &str,
) -> (u64, Duration) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let manifest = dir.path().join("pipeline.toml");
    std::fs::write(
        &manifest,
        format!(
            "[pipeline]\nname = \"{name}\"\nbatch = {{ max_records = 4096, max_wait_ms = 200 }}\n\n[connections.ops]\nurl = \"{url}\"\n\n{stages}"
        ),
    )
    .expect("manifest");
    ferry_pipeline::lock(&manifest, ferry_pipeline::LockMode::Missing).expect("lock");
    let plan = ferry_pipeline::plan(ferry_manifest::load(&manifest).expect("manifest"), runtime)
        .expect("plan");
    let state = Arc::new(SqliteState::open(&dir.path().join(".ferry/state.db")).expect("state"));
    let (options, _stop) = ferry_pipeline::RunOptions::new();
    let started = Instant::now();
    let report = rt
        .block_on(ferry_pipeline::run(plan, state, options))
        .expect("run");
    (report.accounting.read, started.elapsed())
}

fn lsn(pg: &pg::Postgres, db: &str) -> String {
    pg.psql(db, "SELECT pg_current_wal_lsn()")
        .trim()
        .to_string()
}

/// A table of `n` rows written in transactions of 1,000, captured by two
/// slots made before the writes (`ferry_<db>` and `recv_<db>`: slot names
/// are the whole server's); returns the LSN after the last write.
fn cdc_setup(pg: &pg::Postgres, db: &str, n: u64) -> String {
    pg.psql(
        db,
        &format!(
            "CREATE TABLE bench_rows (id bigint PRIMARY KEY, name text NOT NULL, amount numeric(12,2), at timestamptz NOT NULL);
             CREATE PUBLICATION bench_pub FOR TABLE bench_rows;
             SELECT pg_create_logical_replication_slot('ferry_{db}', 'pgoutput');
             SELECT pg_create_logical_replication_slot('recv_{db}', 'pgoutput');"
        ),
    );
    let mut client = pg.client(db);
    // The test server commits asynchronously; logical decoding sees a
    // commit only once its WAL is flushed, so a `once` run started right
    // after the writes could stop short of the last ones.
    client
        .batch_execute("SET synchronous_commit = on")
        .expect("synchronous commits");
    let mut start = 1u64;
    while start <= n {
        let end = (start + 999).min(n);
        client
            .batch_execute(&format!(
                "INSERT INTO bench_rows SELECT i, 'name ' || i, (i % 1000) * 1.25, now() FROM generate_series({start}, {end}) AS i"
            ))
            .expect("insert");
        start = end + 1;
    }
    lsn(pg, db)
}

fn bench_cdc(
    rt: &tokio::runtime::Runtime,
    runtime: &Runtime,
    pg: &pg::Postgres,
    n: u64,
) -> (f64, f64) {
    let mut best_ferry = Duration::MAX;
    let mut best_recv = Duration::MAX;
    for _ in 0..RUNS {
        let db = pg.create_database("cdc_bench");
        let end = cdc_setup(pg, &db, n);

        let started = Instant::now();
        let status = Command::new(pg.bin("pg_recvlogical"))
            .args([
                "-d",
                &pg.url(&db),
                &format!("--slot=recv_{db}"),
                "--start",
                "--no-loop",
                &format!("--endpos={end}"),
                "-o",
                "proto_version=1",
                "-o",
                "publication_names=bench_pub",
                "-f",
                "/dev/null",
            ])
            .status()
            .expect("pg_recvlogical runs");
        assert!(status.success(), "pg_recvlogical failed");
        best_recv = best_recv.min(started.elapsed());

        let stages = format!(
            r#"[plugins.cdc]
kind = "source"
wasm = "{postgres}"
config = {{ connection = "ops", mode = "cdc", slot = "ferry_{db}", publication = "bench_pub", tables = ["public.bench_rows"], create = false }}
grants = {{ sql = ["ops"], memory_mb = 256, timeout_ms = 60000 }}

[plugins.discard]
kind = "sink"
wasm = "{discard}"

[[routes]]
from = "cdc"
to = ["discard"]
"#,
            postgres = dist("postgres.wasm"),
            discard = dist("test-faulty-sink.wasm"),
        );
        let (read, elapsed) = run_ferry(rt, runtime, "cdc-bench", &pg.url(&db), &stages);
        assert_eq!(read, n, "ferry read every change");
        best_ferry = best_ferry.min(elapsed);
    }
    (
        n as f64 / best_ferry.as_secs_f64(),
        n as f64 / best_recv.as_secs_f64(),
    )
}

fn bench_sink(
    rt: &tokio::runtime::Runtime,
    runtime: &Runtime,
    pg: &pg::Postgres,
    n: u64,
) -> (f64, f64) {
    let data = tempfile::tempdir().expect("a temp dir");
    let jsonl = data.path().join("in/rows.jsonl");
    let csv = data.path().join("rows.csv");
    std::fs::create_dir_all(data.path().join("in")).expect("in/");
    let mut lines = String::new();
    let mut rows_csv = String::new();
    for i in 1..=n {
        let amount = (i % 1000) as f64 * 1.25;
        lines.push_str(&format!(
            "{{\"id\": {i}, \"name\": \"name {i}\", \"amount\": {amount}, \"at\": \"2026-11-27T10:00:00Z\"}}\n"
        ));
        rows_csv.push_str(&format!("{i},name {i},{amount},2026-11-27T10:00:00Z\n"));
    }
    std::fs::write(&jsonl, lines).expect("rows.jsonl");
    std::fs::write(&csv, rows_csv).expect("rows.csv");
    // psql runs as whoever runs the bench; it reads the CSV itself (\copy).

    let table = "CREATE TABLE bench_sink (id bigint PRIMARY KEY, name text NOT NULL, amount numeric(12,2), at timestamptz NOT NULL)";
    let mut best_ferry = Duration::MAX;
    let mut best_copy = Duration::MAX;
    for _ in 0..RUNS {
        let db = pg.create_database("sink_bench");
        pg.psql(&db, table);
        let started = Instant::now();
        pg.psql(
            &db,
            &format!(
                "\\copy bench_sink FROM '{}' WITH (FORMAT csv)",
                csv.display()
            ),
        );
        best_copy = best_copy.min(started.elapsed());
        pg.psql(&db, "TRUNCATE bench_sink");

        let stages = format!(
            r#"[plugins.rows]
kind = "source"
wasm = "{file}"
config = {{ path = "/in/rows.jsonl", key = "id" }}
grants = {{ files = [{{ host = "{input}", guest = "/in" }}] }}

[plugins.pg]
kind = "sink"
wasm = "{postgres}"
config = {{ connection = "ops", table = "bench_sink" }}
grants = {{ sql = ["ops"], memory_mb = 256, timeout_ms = 60000 }}

[[routes]]
from = "rows"
to = ["pg"]
"#,
            file = dist("file.wasm"),
            input = data.path().join("in").display(),
            postgres = dist("postgres.wasm"),
        );
        let (read, elapsed) = run_ferry(rt, runtime, "sink-bench", &pg.url(&db), &stages);
        assert_eq!(read, n);
        let count = pg.psql(&db, "SELECT count(*) FROM bench_sink");
        assert_eq!(count.trim(), n.to_string(), "every row landed");
        best_ferry = best_ferry.min(elapsed);
    }
    (
        n as f64 / best_ferry.as_secs_f64(),
        n as f64 / best_copy.as_secs_f64(),
    )
}

fn main() {
    let n = rows();
    let runtime = runtime();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    let pg = pg::server();
    let (cdc_ferry, cdc_recv) = bench_cdc(&rt, &runtime, pg, n);
    let (sink_ferry, sink_copy) = bench_sink(&rt, &runtime, pg, n);
    println!();
    println!("databases ({n} rows, best of {RUNS})");
    println!(
        "  CDC   ferry postgres cdc -> discard  {:>10.0} rows/s   pg_recvlogical -> /dev/null {:>10.0} rows/s   ratio {:.2}",
        cdc_ferry,
        cdc_recv,
        cdc_ferry / cdc_recv
    );
    println!(
        "  sink  ferry file -> postgres upsert  {:>10.0} rows/s   psql \\copy                 {:>10.0} rows/s   ratio {:.2}",
        sink_ferry,
        sink_copy,
        sink_ferry / sink_copy
    );
    println!(
        "bench: postgres_cdc_vs_pg_recvlogical ratio={:.3} ours={cdc_ferry:.0} theirs={cdc_recv:.0} unit=rows/s",
        cdc_ferry / cdc_recv
    );
    println!(
        "bench: postgres_upsert_vs_psql_copy ratio={:.3} ours={sink_ferry:.0} theirs={sink_copy:.0} unit=rows/s",
        sink_ferry / sink_copy
    );
}
