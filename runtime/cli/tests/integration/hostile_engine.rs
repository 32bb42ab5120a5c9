//! Hostile plugins against the engine's per-call limits: an answer or a
//! host-call argument over `max_output_mb`, and a call blocked in the host
//! past `timeout_ms`.
//!
//! Each test runs the `ferry` binary (cargo builds it for the tests)
//! on a scratch pipeline `file -> hostile mapper -> file`, waits for it with
//! a bound (a run still going after it is killed and the test fails, so a
//! regression fails instead of hanging the suite), samples its peak RSS
//! (`VmHWM` in `/proc/<pid>/status`) while it runs, and then checks the
//! accounting, the dead letters and the delivered records.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Sandbox, ferry_bin, file_pipeline};

/// How a bounded `ferry run` went.
struct Run {
    code: Option<i32>,
    elapsed: Duration,
    /// The largest `VmHWM` seen while it ran, in KiB.
    peak_rss_kib: u64,
    stdout: String,
    stderr: String,
}

impl Run {
    /// `read`, `written`, `dead_lettered`, `filtered` from the last line.
    fn accounting(&self) -> [u64; 4] {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| l.starts_with("accounting:"))
            .unwrap_or_else(|| panic!("no accounting line in:\n{}", self.stdout));
        let mut out = [u64::MAX; 4];
        for part in line["accounting:".len()..].split_whitespace() {
            let (name, value) = part.split_once('=').expect("name=value");
            let i = ["read", "written", "dead_lettered", "filtered"]
                .iter()
                .position(|n| *n == name)
                .expect("a known count");
            out[i] = value.parse().expect("a number");
        }
        out
    }

    /// How many plugin instances the summary says were rebuilt.
    fn rebuilds(&self) -> u64 {
        self.stdout
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("plugin instances rebuilt after a trap: ")
            })
            .map_or(0, |n| n.trim().parse().expect("a number"))
    }
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `ferry run pipeline.toml --no-watch` in the sandbox, killed (and the
/// test failed) if it is still running after `limit`.
fn run_bounded(s: &Sandbox, limit: Duration) -> Run {
    let out_path = s.path("ferry.stdout");
    let err_path = s.path("ferry.stderr");
    let mut child = Command::new(ferry_bin().expect("ferry is built"))
        .args(["run", "pipeline.toml", "--no-watch"])
        .current_dir(s.path(""))
        .env(
            "FERRY_CACHE_DIR",
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        )
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("ferry starts");
    let started = Instant::now();
    let mut peak = 0;
    let status = loop {
        if let Some(hwm) = vm_hwm_kib(child.id()) {
            peak = peak.max(hwm);
        }
        if let Some(status) = child.try_wait().expect("wait for ferry") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`ferry run` was still running after {limit:?} and was killed: a call blocked past its deadline?\nstdout:\n{}\nstderr:\n{}",
                read(&out_path),
                read(&err_path)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = started.elapsed();
    eprintln!(
        "ferry run: {status} after {elapsed:?}, peak RSS {} MiB",
        peak / 1024
    );
    Run {
        code: status.code(),
        elapsed,
        peak_rss_kib: peak,
        stdout: read(&out_path),
        stderr: read(&err_path),
    }
}

fn read(path: &std::path::Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    text
}

/// A sandbox with `n` records `k0..k{n-1}` read by the file source, passed
/// through the `hostile` mapper (`wasm`, `config`, `grants`), written by the
/// file sink; batches of `batch` records.
fn hostile_pipeline(n: usize, batch: usize, wasm: &str, config: &str, grants: &str) -> Sandbox {
    let s = Sandbox::new();
    let lines: String = (0..n)
        .map(|i| format!("{{\"id\":\"k{i}\",\"n\":{i}}}\n"))
        .collect();
    s.write("in/a.jsonl", &lines);
    let extra = format!(
        "\n[plugins.hostile]\nkind = \"mapper\"\nwasm = \"{wasm}\"\nconfig = {config}\ngrants = {grants}\n"
    );
    let text = file_pipeline(
        r#"{ path = "/in/a.jsonl", key = "id" }"#,
        &["hostile"],
        &extra,
    );
    s.manifest(&text.replace("max_records = 64", &format!("max_records = {batch}")));
    s
}

/// The component imports `wasi:io/poll` at an older 0.2.x version than
/// the host links (0.2.12), so its test also proves that the deadline holds
/// for interfaces linked by semver matching.
fn assert_imports_older_wasi_io(wasm: &str) {
    let out = crate::support::ferry(&["plugin", "inspect", wasm], std::path::Path::new("."))
        .expect("ferry plugin inspect");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("wasi:io/poll@0.2.") && !out.stdout.contains("wasi:io/poll@0.2.12"),
        "the test program should import wasi:io older than the host's 0.2.12:\n{}",
        out.stdout
    );
}

/// The run ended well, only `key` was dead-lettered (with `reason`, its
/// detail containing `detail`), every other record was delivered, and the
/// accounting adds up.
fn assert_only_dead_lettered(
    s: &Sandbox,
    run: &Run,
    n: u64,
    key: &str,
    reason: &str,
    detail: &str,
) {
    assert_eq!(
        run.code,
        Some(0),
        "ferry failed:\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(run.accounting(), [n, n - 1, 1, 0], "{}", run.stdout);
    let dead = s.dead_letters();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].key, key);
    assert_eq!(dead[0].reason, reason, "{:?}", dead[0]);
    assert_eq!(dead[0].stage, "hostile");
    assert!(dead[0].detail.contains(detail), "{}", dead[0].detail);
    let out = s.jsonl("out/out.jsonl");
    assert_eq!(out.len() as u64, n - 1);
    assert!(out.iter().all(|r| r["id"] != key));
    let mut ids: Vec<&str> = out.iter().filter_map(|r| r["id"].as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len() as u64, n - 1, "every other record exactly once");
}

/// `test-hostile-alias`: more data than `max_output_mb` in one call.
pub mod alias {
    use super::*;
    use crate::support::plugins::TEST_HOSTILE_ALIAS;

    /// Peak RSS allowed for the whole `ferry` process (debug build) in
    /// these runs. Before the fix the aliased answer took it to 172 MiB
    /// (wasmtime's default hostcall fuel lets 128 MiB be copied, then
    /// traps); with `max_output_mb = 4` the host copies at most 4 MiB of it
    /// and the run peaks at about 44 MiB: ferry itself, the plugin's 16 MiB
    /// buffer inside its linear memory, and the other instances.
    const RSS_BOUND_KIB: u64 = 80 * 1024;

    #[test]
    fn an_answer_aliasing_one_buffer_sixty_times_is_refused_as_output_size_in_bounded_memory() {
        let s = hostile_pipeline(
            200,
            64,
            TEST_HOSTILE_ALIAS,
            r#"{ alias_keys = ["k42"], columns = 60, alias_bytes = 16777216 }"#,
            "{ memory_mb = 64, max_output_mb = 4 }",
        );
        let run = run_bounded(&s, Duration::from_secs(120));
        assert_only_dead_lettered(&s, &run, 200, "k42", "output-size", "max_output_mb");
        assert!(run.elapsed < Duration::from_secs(30), "{:?}", run.elapsed);
        assert!(
            run.peak_rss_kib < RSS_BOUND_KIB,
            "peak RSS {} KiB, over the bound of {} KiB",
            run.peak_rss_kib,
            RSS_BOUND_KIB
        );
    }

    #[test]
    fn a_host_call_argument_over_max_output_mb_is_refused_as_output_size() {
        // An 8 MiB log message against a 4 MiB grant: refused while it is
        // copied out of the plugin, before the host allocates it.
        let s = hostile_pipeline(
            200,
            64,
            TEST_HOSTILE_ALIAS,
            r#"{ log_keys = ["k7"], log_bytes = 8388608 }"#,
            "{ memory_mb = 64, max_output_mb = 4 }",
        );
        let run = run_bounded(&s, Duration::from_secs(120));
        assert_only_dead_lettered(&s, &run, 200, "k7", "output-size", "max_output_mb");
        assert!(run.elapsed < Duration::from_secs(30), "{:?}", run.elapsed);
        assert!(
            run.peak_rss_kib < RSS_BOUND_KIB,
            "peak RSS {} KiB, over the bound of {} KiB",
            run.peak_rss_kib,
            RSS_BOUND_KIB
        );
    }
}

/// `test-hostile-sleep`: a plugin with no grant blocked in the host.
pub mod sleep {
    use super::*;
    use crate::support::plugins::TEST_HOSTILE_SLEEP;

    /// The whole run: 100 records in batches of 10 with `timeout_ms = 500`.
    /// Isolating the record takes four or five calls that each end at the
    /// deadline (10 -> 5 -> 3 -> 2 -> 1 records), 2-2.5 s, plus ferry's own
    /// work (about 2.7 s in all, measured).
    pub const RUN_BOUND: Duration = Duration::from_secs(10);

    fn blocked_call_ends_at_its_deadline(config: &str, key: &str) {
        assert_imports_older_wasi_io(TEST_HOSTILE_SLEEP);
        let s = hostile_pipeline(100, 10, TEST_HOSTILE_SLEEP, config, "{ timeout_ms = 500 }");
        // Killed (and failed) well before a day.
        let run = run_bounded(&s, Duration::from_secs(90));
        assert_only_dead_lettered(&s, &run, 100, key, "deadline", "ran past its time limit");
        assert!(
            run.rebuilds() >= 1,
            "the instance was rebuilt:\n{}",
            run.stdout
        );
        assert!(
            run.elapsed < RUN_BOUND,
            "the run took {:?}, over {RUN_BOUND:?}",
            run.elapsed
        );
    }

    #[test]
    fn a_day_long_sleep_ends_at_the_call_deadline_and_only_its_record_is_dead_lettered() {
        blocked_call_ends_at_its_deadline(r#"{ sleep_keys = ["k3"] }"#, "k3");
    }

    #[test]
    fn a_poll_on_a_far_clock_ends_at_the_call_deadline() {
        blocked_call_ends_at_its_deadline(r#"{ poll_keys = ["k57"] }"#, "k57");
    }
}

/// `test-hostile-stall`: a socket read from a peer that never answers.
pub mod stall {
    use super::*;
    use crate::support::plugins::TEST_HOSTILE_STALL;

    #[test]
    fn a_socket_read_from_a_silent_peer_ends_at_the_call_deadline() {
        assert_imports_older_wasi_io(TEST_HOSTILE_STALL);
        // A loopback peer that accepts and never writes; it holds every
        // connection open until the test ends.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let addr = listener.local_addr().expect("its address");
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                match conn {
                    Ok(c) => held.push(c),
                    Err(_) => break,
                }
            }
        });
        let s = hostile_pipeline(
            100,
            10,
            TEST_HOSTILE_STALL,
            &format!(r#"{{ addr = "{addr}", stall_keys = ["k3"] }}"#),
            &format!(r#"{{ timeout_ms = 500, network = ["tcp://{addr}"] }}"#),
        );
        let run = run_bounded(&s, Duration::from_secs(90));
        assert_only_dead_lettered(&s, &run, 100, "k3", "deadline", "ran past its time limit");
        assert!(run.rebuilds() >= 1, "{}", run.stdout);
        assert!(
            run.elapsed < super::sleep::RUN_BOUND,
            "the run took {:?}",
            run.elapsed
        );
    }
}
