//! One owner per pipeline: two `ferry run` of one manifest on one machine
//! never both serve a pipeline. The second exits 1 naming the holder, or
//! with `--wait` waits and takes over when the holder ends (stopped, or
//! killed with SIGKILL: the kernel frees the lock); `ferry status` names
//! the holder. Checked on the output: each record exactly once.

use std::collections::HashSet;
use std::io::Read;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_state::StateStore;

use crate::support::{Sandbox, ferry, interrupt, spawn_ferry};

const PIPELINE: &str = "own";

/// A follow pipeline: `in/records.jsonl` -> file sink `out/records.jsonl`.
const MANIFEST: &str = r#"[pipeline]
name = "own"
mode = "follow"
poll_interval_ms = 10
batch = { max_records = 512, max_wait_ms = 10 }

[plugins.src]
kind = "source"
wasm = "{FILE}"
config = { path = "/in/records.jsonl" }
grants = { files = [{ host = "in", guest = "/in" }] }

[plugins.out]
kind = "sink"
wasm = "{FILE}"
config = { path = "/out/records.jsonl" }
grants = { files = [{ host = "out", guest = "/out", mode = "rw" }] }

[[routes]]
from = "src"
to = ["out"]
"#;

fn records(from: usize, to: usize) -> String {
    (from..to)
        .map(|i| format!("{{\"id\":\"k{i:06}\",\"n\":{i}}}\n"))
        .collect()
}

/// The ids in the sink's output, one per line (a torn last line is skipped).
fn output_ids(s: &Sandbox) -> Vec<String> {
    let text = std::fs::read_to_string(s.path("out/records.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| v["id"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Every id exactly once, and as many as expected.
fn assert_each_once(s: &Sandbox, expected: usize) {
    let ids = output_ids(s);
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(
        (ids.len(), distinct.len()),
        (expected, expected),
        "lines and distinct ids in the output"
    );
}

fn wait_for(what: &str, limit: Duration, check: &mut dyn FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `ferry run` in the sandbox, its stderr collected by a thread.
struct Run {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Run {
    fn start(s: &Sandbox, extra: &[&str]) -> Run {
        let mut args = vec!["run", "pipeline.toml", "--no-watch"];
        args.extend_from_slice(extra);
        let mut child = spawn_ferry(&args, &s.path(""));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr piped");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("stderr")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Run { child, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr").clone()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// SIGINT, then its exit code (it drains and commits first).
    fn stop(&mut self) -> i32 {
        interrupt(&self.child);
        let status = self.child.wait().expect("exits");
        status.code().unwrap_or(-1)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn committed_read(s: &Sandbox) -> u64 {
    s.state()
        .total_accounting(PIPELINE)
        .map(|a| a.read)
        .unwrap_or(0)
}

fn status_json(s: &Sandbox) -> serde_json::Value {
    let out = ferry(&["status", "pipeline.toml", "--json"], &s.path("")).expect("status");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    v["pipelines"][0].clone()
}

const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn two_runs_started_together_one_serves_and_the_other_exits_naming_it() {
    const N: usize = 20_000;
    let s = Sandbox::new();
    s.write("in/records.jsonl", &records(0, N));
    s.manifest(MANIFEST);
    let mut runs = [Run::start(&s, &[]), Run::start(&s, &[])];

    // One of them exits, at once (after planning), with status 1.
    let mut loser = None;
    wait_for("one of the two to exit", LIMIT, &mut || {
        for (i, r) in runs.iter_mut().enumerate() {
            if let Ok(Some(status)) = r.child.try_wait() {
                loser = Some((i, status.code()));
                return true;
            }
        }
        // Today's code: both serve; stop waiting once both have delivered.
        output_ids(&s).len() >= 2 * N
    });
    let Some((lost, code)) = loser else {
        panic!(
            "neither `ferry run` exited: both serve the pipeline; the output has {} lines for {N} records",
            output_ids(&s).len()
        );
    };
    let won = 1 - lost;
    assert_eq!(code, Some(1), "{}", runs[lost].stderr());
    wait_for("the loser's message", Duration::from_secs(5), &mut || {
        runs[lost].stderr().contains("already served by")
    });
    let message = runs[lost].stderr();
    let holder = runs[won].pid();
    assert!(
        message.contains("`ferry run` on host ")
            && message.contains(&format!(", pid {holder}, since "))
            && message.contains("--wait"),
        "{message}"
    );

    // The winner delivers everything, once.
    wait_for("every record", LIMIT, &mut || output_ids(&s).len() >= N);
    wait_for("the commit", LIMIT, &mut || committed_read(&s) == N as u64);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        runs[won].child.try_wait().expect("poll").is_none(),
        "the holder still serves"
    );

    // `ferry status` names the holder, in JSON and in text.
    let st = status_json(&s);
    assert_eq!(st["lock"]["pid"], holder, "{st}");
    assert_eq!(st["lock"]["command"], "ferry run", "{st}");
    assert_eq!(st["served_by_pid"], holder, "{st}");
    assert!(
        st["lock"]["since"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert!(!st["lock"]["host"].as_str().unwrap_or("").is_empty());
    let text = ferry(&["status", "pipeline.toml"], &s.path("")).expect("status");
    assert!(
        text.stdout.contains(&format!(
            "  running   served by ferry run, pid {holder} on host "
        )),
        "{}",
        text.stdout
    );

    assert_eq!(runs[won].stop(), 0, "{}", runs[won].stderr());
    assert_each_once(&s, N);
    // Nobody holds it now.
    assert!(status_json(&s)["lock"].is_null());
}

/// The second `ferry run --wait` says it waits, takes over when the first
/// ends (`how` ends it) and delivers what came after; nothing twice.
fn wait_takes_over(kill9: bool) {
    const N: usize = 5_000;
    const M: usize = 3_000;
    let s = Sandbox::new();
    s.write("in/records.jsonl", &records(0, N));
    s.manifest(MANIFEST);
    let mut first = Run::start(&s, &[]);
    wait_for("the first to commit", LIMIT, &mut || {
        committed_read(&s) == N as u64
    });
    let mut second = Run::start(&s, &["--wait"]);
    let waiting = format!(", pid {}, since ", first.pid());
    wait_for("the second to say it waits", LIMIT, &mut || {
        let e = second.stderr();
        e.contains("waiting: pipeline `own` is served by") && e.contains(&waiting)
    });
    // It waits: it neither exits nor writes.
    std::thread::sleep(Duration::from_millis(500));
    assert!(second.child.try_wait().expect("poll").is_none());
    assert_each_once(&s, N);

    if kill9 {
        first.kill9();
    } else {
        assert_eq!(first.stop(), 0, "{}", first.stderr());
    }
    s.append("in/records.jsonl", &records(N, N + M));
    wait_for("the second to deliver what came after", LIMIT, &mut || {
        output_ids(&s).len() >= N + M
    });
    wait_for("the second's commit", LIMIT, &mut || {
        committed_read(&s) == (N + M) as u64
    });
    assert_eq!(status_json(&s)["lock"]["pid"], second.pid());
    assert_eq!(second.stop(), 0, "{}", second.stderr());
    assert_each_once(&s, N + M);
}

#[test]
fn wait_takes_over_after_the_holder_is_stopped() {
    wait_takes_over(false);
}

#[test]
fn wait_takes_over_after_the_holder_is_killed_with_sigkill() {
    wait_takes_over(true);
}

#[test]
fn sigkill_of_the_holder_frees_the_lock_for_the_next_run() {
    const N: usize = 2_000;
    let s = Sandbox::new();
    s.write("in/records.jsonl", &records(0, N));
    s.manifest(MANIFEST);
    let mut first = Run::start(&s, &[]);
    wait_for("the first to commit", LIMIT, &mut || {
        committed_read(&s) == N as u64
    });
    assert_eq!(status_json(&s)["lock"]["pid"], first.pid());
    first.kill9();
    // The lock file is still there, naming the dead process; the lock is not.
    assert!(s.path(".ferry/locks/own.lock").is_file());
    assert!(status_json(&s)["lock"].is_null());
    let mut next = Run::start(&s, &[]);
    s.append("in/records.jsonl", &records(N, N + 10));
    wait_for("the next run to deliver", LIMIT, &mut || {
        committed_read(&s) == (N + 10) as u64
    });
    assert_eq!(status_json(&s)["lock"]["pid"], next.pid());
    assert_eq!(next.stop(), 0, "{}", next.stderr());
    assert_each_once(&s, N + 10);
}

#[test]
fn a_scheduled_pipeline_is_held_between_its_runs() {
    let s = Sandbox::new();
    s.write("in/records.jsonl", &records(0, 10));
    s.manifest(&MANIFEST.replace(
        "mode = \"follow\"\npoll_interval_ms = 10\n",
        "mode = \"schedule\"\nschedule = \"every 1h\"\n",
    ));
    let mut first = Run::start(&s, &[]);
    // Its first run (missed ticks run at start, or none): wait until it is
    // between runs, then a second `ferry run` is refused all the same.
    wait_for("the first to serve", LIMIT, &mut || {
        status_json(&s)["lock"]["pid"] == first.pid()
    });
    let out = ferry(&["run", "pipeline.toml", "--no-watch"], &s.path("")).expect("run");
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("pipeline `own` is already served by `ferry run` on host ")
            && out
                .stderr
                .contains(&format!(", pid {}, since ", first.pid())),
        "{}",
        out.stderr
    );
    assert_eq!(first.stop(), 0, "{}", first.stderr());
}

#[test]
fn dlq_replay_is_refused_while_a_run_serves_the_pipeline() {
    let s = Sandbox::new();
    s.write("in/records.jsonl", &records(0, 10));
    s.manifest(MANIFEST);
    let mut first = Run::start(&s, &[]);
    wait_for("the first to commit", LIMIT, &mut || {
        committed_read(&s) == 10
    });
    let out = ferry(&["dlq", "replay", "pipeline.toml"], &s.path("")).expect("replay");
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("`ferry run` on host ")
            && out
                .stderr
                .contains(&format!(", pid {}, since ", first.pid())),
        "{}",
        out.stderr
    );
    assert_eq!(first.stop(), 0, "{}", first.stderr());
    // Once it ended, the replay runs (nothing to replay here).
    let out = ferry(&["dlq", "replay", "pipeline.toml"], &s.path("")).expect("replay");
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
}
