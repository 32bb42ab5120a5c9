//! A plugin with no grant at all floods the host with
//! requests it must refuse (`test-hostile-flood`: `sql.dialect-of` with a
//! 1 MiB connection name, thousands of times). Each denial used to be a
//! 1 MiB log line and a 1 MiB audit row, fsynced in its own transaction
//! under the state store's lock. Now its strings are capped, its denials
//! rate-limited per instance with a `suppressed N` count, and written in
//! batches off the commit path (and its own log lines, `host.log`, are
//! rate-limited the same way): the log and the state file stay small,
//! every attempt is accounted for, and a pipeline sharing the state file
//! runs to its end.

pub mod flood {
    use std::time::{Duration, Instant};

    use ferry_state::{SqliteState, StateStore};

    use crate::support::{Sandbox, ferry, plugins, with_plugins};

    /// Calls per flood (each with a 1 MiB name).
    const ITERATIONS: u64 = 10_000;
    /// The flood mapper's calls stop after this long even if `ITERATIONS`
    /// are not done; under its `timeout_ms`.
    const FLOOD_MS: u64 = 8000;
    /// Log lines the flood mapper writes (each given 1 MiB of text).
    const LOG_LINES: u64 = 5_000;
    /// What ferry may write to its log (stderr) for the whole run.
    const LOG_BOUND: usize = 5 << 20;
    /// What the state file (with its WAL and shared-memory files) may weigh.
    const STATE_BOUND: u64 = 5 << 20;
    /// How long the whole run may take (a debug build, two pipelines).
    const TIME_BOUND: Duration = Duration::from_secs(90);

    fn lines(n: usize) -> String {
        (1..=n)
            .map(|i| format!("{{\"id\":\"{i}\",\"n\":{i}}}\n"))
            .collect()
    }

    fn write_manifest(s: &Sandbox, file: &str, text: &str) {
        let text = with_plugins(&text.replace("{HOSTILE_FLOOD}", plugins::TEST_HOSTILE_FLOOD));
        let path = s.write(file, &text);
        ferry_pipeline::lock(&path, ferry_pipeline::LockMode::Missing).expect("pinned");
    }

    fn size_of_state(s: &Sandbox) -> u64 {
        std::fs::read_dir(s.path(".ferry"))
            .expect("the state folder")
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    #[test]
    fn a_flood_of_denials_with_1mib_names_keeps_the_log_and_the_state_file_small_and_is_fully_accounted()
     {
        let s = Sandbox::new();
        s.write("in/flood.jsonl", &lines(200));
        s.write("in/calm.jsonl", &lines(2000));
        // Two pipelines, one state file (`.ferry/state.db` beside both).
        write_manifest(
            &s,
            "flood.toml",
            &format!(
                r#"[pipeline]
name = "flood"
batch = {{ max_records = 50 }}

[plugins.src]
kind = "source"
wasm = "{{FILE}}"
config = {{ path = "/in/flood.jsonl", key = "id" }}
grants = {{ files = [{{ host = "in", guest = "/in" }}] }}

[plugins.flood]
kind = "mapper"
wasm = "{{HOSTILE_FLOOD}}"
config = {{ flood_keys = ["7"], iterations = {ITERATIONS}, max_ms = {FLOOD_MS}, log_lines = {LOG_LINES} }}
grants = {{ timeout_ms = 20000 }}

[plugins.out]
kind = "sink"
wasm = "{{FILE}}"
config = {{ path = "/out/flood.jsonl" }}
grants = {{ files = [{{ host = "out", guest = "/out", mode = "rw" }}] }}

[[routes]]
from = "src"
through = ["flood"]
to = ["out"]
"#
            ),
        );
        write_manifest(
            &s,
            "calm.toml",
            r#"[pipeline]
name = "calm"
batch = { max_records = 100 }

[plugins.src]
kind = "source"
wasm = "{FILE}"
config = { path = "/in/calm.jsonl", key = "id" }
grants = { files = [{ host = "in", guest = "/in" }] }

[plugins.same]
kind = "mapper"
wasm = "{PASSTHROUGH}"

[plugins.out]
kind = "sink"
wasm = "{FILE}"
config = { path = "/out/calm.jsonl" }
grants = { files = [{ host = "out", guest = "/out", mode = "rw" }] }

[[routes]]
from = "src"
through = ["same"]
to = ["out"]
"#,
        );

        let started = Instant::now();
        let out = ferry(&["run", ".", "--no-watch"], s.dir.path()).expect("ferry runs");
        let took = started.elapsed();
        let log = out.stderr.len();
        let state = size_of_state(&s);
        eprintln!(
            "flood run: {took:?}, log {log} bytes, state {state} bytes, exit {}",
            out.code
        );
        assert_eq!(out.code, 0, "{}", &out.stderr[..out.stderr.len().min(4000)]);
        assert!(took < TIME_BOUND, "the run took {took:?}");
        assert!(log < LOG_BOUND, "ferry logged {log} bytes");
        assert!(state < STATE_BOUND, "the state files weigh {state} bytes");

        // The other pipeline, and the flood's other records, are unaffected.
        assert_eq!(s.jsonl("out/calm.jsonl").len(), 2000);
        let flooded = s.jsonl("out/flood.jsonl");
        assert_eq!(flooded.len(), 200);
        let attempts: u64 = flooded.iter().filter_map(|r| r["attempts"].as_u64()).sum();
        let denied: u64 = flooded.iter().filter_map(|r| r["denied"].as_u64()).sum();
        assert_eq!(denied, attempts, "every call was denied");
        assert!(
            attempts >= 1000,
            "the flood made only {attempts} calls in {FLOOD_MS} ms"
        );

        // The audit log holds the first denials, capped, and counts for
        // the rest: together, every attempt.
        let events = SqliteState::open(&s.path(".ferry/state.db"))
            .expect("state")
            .audit_events(Some("flood"))
            .expect("audit log");
        let (counts, single): (Vec<_>, Vec<_>) = events
            .iter()
            .filter(|e| e.capability == "sql" && e.stage == "flood")
            .partition(|e| e.target.starts_with("suppressed "));
        let suppressed: u64 = counts
            .iter()
            .map(|e| {
                e.target["suppressed ".len()..]
                    .parse::<u64>()
                    .expect("a count")
            })
            .sum();
        eprintln!(
            "{attempts} attempts: {} recorded, {suppressed} counted in {} events",
            single.len(),
            counts.len()
        );
        assert_eq!(single.len() as u64 + suppressed, attempts);
        assert!(!counts.is_empty() && suppressed > 0, "{events:#?}");
        let burst = u64::from(ferry_host::audit::DENIAL_BURST);
        let refills = took.as_secs() / ferry_host::audit::DENIAL_REFILL.as_secs().max(1) + 1;
        assert!(
            (single.len() as u64) <= burst + refills,
            "{} denials recorded one by one",
            single.len()
        );
        for e in &single {
            assert!(
                e.target.len() <= ferry_host::audit::MAX_TARGET_BYTES + 32
                    && e.target.starts_with("dialect-of on connection `nnnn")
                    && e.target.contains("bytes cut]"),
                "{}",
                &e.target[..e.target.len().min(600)]
            );
            assert_eq!(e.detail, "the plugin is granted no SQL connection");
        }
        assert!(
            counts.iter().all(|e| e.detail.starts_with("rate limit")),
            "{counts:#?}"
        );
        assert!(
            out.stderr.contains("suppressed ") && out.stderr.contains("sql denials"),
            "the count is logged too"
        );

        // The plugin's own log lines: cut, the first ones written, the rest
        // counted in the log.
        let logged: u64 = flooded.iter().filter_map(|r| r["logged"].as_u64()).sum();
        assert_eq!(logged, LOG_LINES);
        let written = out
            .stderr
            .lines()
            .filter(|l| l.contains(&"n".repeat(64)) && !l.contains("denied "))
            .inspect(|l| assert!(l.len() < 4096 + 300, "a log line of {} bytes", l.len()))
            .count() as u64;
        let counted: u64 = out
            .stderr
            .lines()
            .filter_map(|l| {
                let (_, rest) = l.split_once("suppressed ")?;
                let (n, rest) = rest.split_once(' ')?;
                rest.starts_with("log lines")
                    .then(|| n.parse::<u64>().ok())?
            })
            .sum();
        eprintln!("{logged} log lines: {written} written, {counted} counted");
        assert_eq!(written + counted, logged);
        let log_burst = u64::from(ferry_host::audit::LOG_BURST);
        assert!(written >= log_burst && written <= log_burst + 20 * (took.as_secs() + 1));
    }
}
