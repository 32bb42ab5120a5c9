//! One dead letter per refused record, whatever happens to ferry meanwhile.
//!
//! A stage's dead letters are stored in the transaction that commits the
//! checkpoint past their records, and a replay settles the letters it
//! replayed in the transaction that stores what it did with them. These
//! tests kill `ferry run` and `ferry dlq replay` with SIGKILL, and make a
//! replay fail, and count the letters each record has afterwards.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_state::{DeadLetter, StateStore};

use crate::support::{Sandbox, ferry, ferry_bin};

/// Dead letters per key.
fn letters_by_key(letters: &[DeadLetter]) -> BTreeMap<String, Vec<&DeadLetter>> {
    let mut by_key: BTreeMap<String, Vec<&DeadLetter>> = BTreeMap::new();
    for l in letters {
        by_key.entry(l.key.clone()).or_default().push(l);
    }
    by_key
}

/// `ferry <args>` in the sandbox, in the background, stderr to `log`.
fn spawn(s: &Sandbox, args: &[&str], log: &str) -> std::process::Child {
    Command::new(ferry_bin().expect("the ferry binary"))
        .args(args)
        .current_dir(s.dir.path())
        .env(
            "FERRY_CACHE_DIR",
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(s.path(log)).expect("a log file"))
        .spawn()
        .expect("ferry starts")
}

fn kill(child: &mut std::process::Child, what: &str) {
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    assert_eq!(
        status.signal(),
        Some(9),
        "{what} was not killed by SIGKILL but ended with {status}"
    );
}

const RECORDS: usize = 200_000;
/// Every `NTH` record has no email: the validator refuses it.
const NTH: usize = 7;
const KILLS: usize = 10;

const KILLED_MANIFEST: &str = r#"[pipeline]
name = "letters"
# Small batches, and flushes that wait: letters of batches whose
# checkpoint is not committed yet at every moment.
batch = { max_records = 16, max_wait_ms = 40 }

[plugins.src]
kind = "source"
wasm = "{FILE}"
config = { path = "/in/records.jsonl" }
grants = { files = [{ host = "in", guest = "/in" }] }

[plugins.rules]
kind = "validator"
wasm = "{SCHEMA_VALIDATOR}"
config = { required = ["email"] }

[plugins.out]
kind = "sink"
wasm = "{FILE}"
config = { path = "/out/records.jsonl" }
grants = { files = [{ host = "out", guest = "/out", mode = "rw" }] }

[[routes]]
from = "src"
through = ["rules"]
to = ["out"]
"#;

#[test]
fn sigkill_between_dead_letters_and_their_checkpoint_leaves_one_letter_per_record() {
    let began = Instant::now();
    let s = Sandbox::new();
    let mut input = String::with_capacity(RECORDS * 80);
    for i in 0..RECORDS {
        if i % NTH == 0 {
            input.push_str(&format!("{{\"id\":\"k{i:06}\",\"n\":{i}}}\n"));
        } else {
            input.push_str(&format!(
                "{{\"id\":\"k{i:06}\",\"n\":{i},\"email\":\"c{i}@example.com\"}}\n"
            ));
        }
    }
    let total_bytes = input.len() as u64;
    s.write("in/records.jsonl", &input);
    drop(input);
    s.manifest(KILLED_MANIFEST);
    std::fs::create_dir_all(s.path("logs")).expect("logs/");
    let out = s.path("out/records.jsonl");
    let size = || std::fs::metadata(&out).map_or(0, |m| m.len());

    // Each run is killed after the output grew by a share of what is
    // left, plus a delay: while records (and letters) flow.
    let mut letters_seen_at_a_kill = 0;
    for k in 0..KILLS {
        let base = size();
        let remaining = total_bytes.saturating_sub(base);
        let grow = (remaining / (KILLS - k + 3) as u64).max(1);
        let log = format!("logs/run-{k}.log");
        let mut child = spawn(&s, &["run", "--no-watch", "pipeline.toml"], &log);
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!(
                    "run {k} ended ({status}) before it was killed:\n{}",
                    std::fs::read_to_string(s.path(&log)).unwrap_or_default()
                );
            }
            if size().saturating_sub(base) >= grow {
                // Some kills before the run's first commit, most after
                // a few (a flush, and its commit, every 40 ms).
                std::thread::sleep(Duration::from_millis([5, 60, 110, 170][k % 4]));
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "run {k} wrote nothing in 60 s"
            );
            std::thread::sleep(Duration::from_micros(500));
        }
        kill(&mut child, &format!("run {k}"));
        letters_seen_at_a_kill += usize::from(!s.dead_letters().is_empty());
    }
    assert!(letters_seen_at_a_kill > 0, "no kill came after a letter");

    let last = ferry(&["run", "--no-watch", "pipeline.toml"], s.dir.path()).expect("runs");
    assert_eq!(last.code, 0, "{}\n{}", last.stdout, last.stderr);

    // Each refused record has exactly one dead letter, no other record has
    // one; every other record was written (at least once: a file sink
    // writes again what a killed run wrote but did not commit).
    let letters = s.dead_letters();
    let by_key = letters_by_key(&letters);
    let refused: Vec<String> = (0..RECORDS)
        .filter(|i| i % NTH == 0)
        .map(|i| format!("k{i:06}"))
        .collect();
    let doubled: Vec<(&String, usize)> = by_key
        .iter()
        .filter(|(_, l)| l.len() > 1)
        .map(|(k, l)| (k, l.len()))
        .collect();
    assert!(
        doubled.is_empty(),
        "{} records have more than one dead letter, first: {:?}",
        doubled.len(),
        &doubled[..doubled.len().min(5)]
    );
    assert_eq!(
        by_key.keys().cloned().collect::<Vec<_>>(),
        refused,
        "the refused records, and only they, have a dead letter"
    );
    let mut written = vec![0u32; RECORDS];
    for r in s.jsonl("out/records.jsonl") {
        let i: usize = r["id"]
            .as_str()
            .and_then(|k| k.strip_prefix('k'))
            .and_then(|n| n.parse().ok())
            .expect("a source key");
        written[i] += 1;
    }
    let lost: Vec<usize> = (0..RECORDS)
        .filter(|i| i % NTH != 0 && written[*i] == 0)
        .collect();
    assert!(lost.is_empty(), "{} records lost: {lost:?}", lost.len());
    assert!(
        (0..RECORDS).all(|i| i % NTH != 0 || written[i] == 0),
        "a refused record was written"
    );
    // The committed accounting counts each record once.
    let total = s.state().total_accounting("letters").expect("accounting");
    assert_eq!(
        (total.read, total.dead_lettered, total.written),
        (
            RECORDS as u64,
            refused.len() as u64,
            (RECORDS - refused.len()) as u64
        ),
        "{total}"
    );
    eprintln!(
        "{KILLS} kills, {letters_seen_at_a_kill} after letters were stored, {} letters, in {:?}",
        letters.len(),
        began.elapsed()
    );
}

/// src -> `fix` (faulty mapper, `mapper`) -> `out` (faulty sink, `sink`),
/// with short retries.
fn faulty(s: &Sandbox, mapper: &str, sink: &str) {
    s.manifest(&format!(
        r#"[pipeline]
name = "t"

[plugins.src]
kind = "source"
wasm = "{{FILE}}"
config = {{ path = "/in/a.jsonl" }}
grants = {{ files = [{{ host = "in", guest = "/in" }}] }}

[plugins.fix]
kind = "mapper"
wasm = "{{FAULTY_MAPPER}}"
config = {{ {mapper} }}

[plugins.out]
kind = "sink"
wasm = "{{FAULTY_SINK}}"
config = {{ {sink} }}
retry = {{ attempts = 1, backoff_ms = 10, max_backoff_ms = 100 }}

[[routes]]
from = "src"
through = ["fix"]
to = ["out"]
"#
    ));
}

fn six_records(s: &Sandbox) {
    let mut input = String::new();
    for i in 1..=6 {
        input.push_str(&format!("{{\"id\":\"{i}\",\"n\":{i}}}\n"));
    }
    s.write("in/a.jsonl", &input);
}

fn keys_and_ids(s: &Sandbox) -> Vec<(String, String, i64)> {
    s.dead_letters()
        .into_iter()
        .map(|l| (l.key, l.stage, l.id))
        .collect()
}

#[test]
fn a_failed_replay_leaves_each_record_one_dead_letter() {
    let s = Sandbox::new();
    six_records(&s);
    faulty(&s, "", r#"reject_keys = ["2", "3", "4", "5"]"#);
    let first = ferry(&["run", "pipeline.toml", "--quiet"], s.dir.path()).expect("runs");
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    let before = keys_and_ids(&s);
    assert_eq!(
        before
            .iter()
            .map(|(k, _, _)| k.as_str())
            .collect::<Vec<_>>(),
        ["2", "3", "4", "5"]
    );

    // The sink still refuses 4 and 5, and its flush fails: the replay
    // stops. Nothing of it is kept: each record keeps its one letter.
    faulty(&s, "", r#"reject_keys = ["4", "5"], fail_flush = "fatal""#);
    let failed = ferry(&["dlq", "replay", "pipeline.toml"], s.dir.path()).expect("replays");
    assert_eq!(failed.code, 1, "{}\n{}", failed.stdout, failed.stderr);
    assert_eq!(
        keys_and_ids(&s),
        before,
        "a failed replay leaves the dead letters as they were\n{}",
        failed.stderr
    );
    assert!(
        failed
            .stderr
            .contains("the replay through `out` stopped: sink `out` could not flush")
            && failed
                .stderr
                .contains("nothing was settled: its 4 dead letters stay as they were"),
        "{}",
        failed.stderr
    );

    // The sink refuses 5 only: 2, 3 and 4 are delivered and lose their
    // letters; 5 keeps one, the same, with the new refusal.
    faulty(&s, "", r#"reject_keys = ["5"]"#);
    let out = ferry(&["dlq", "replay", "pipeline.toml"], s.dir.path()).expect("replays");
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("4 replayed: 3 delivered, 1 failed again, 0 filtered"),
        "{}",
        out.stdout
    );
    let after = s.dead_letters();
    assert_eq!(after.len(), 1, "{after:?}");
    let five = &after[0];
    let old_five = before.iter().find(|(k, _, _)| k == "5").expect("5");
    assert_eq!(
        (five.key.as_str(), five.stage.as_str(), five.id),
        ("5", "out", old_five.2),
        "the letter of the record that failed again is replaced in place"
    );
    assert_eq!(
        five.attempts, 2,
        "tried once in the run, once in the replay"
    );
    assert_eq!(five.detail, "rejected on purpose: key \"5\"");
}

#[test]
fn a_replay_killed_mid_way_leaves_no_record_with_two_letters() {
    let s = Sandbox::new();
    six_records(&s);
    faulty(&s, r#"reject_keys = ["2", "3", "4"]"#, "");
    let first = ferry(&["run", "pipeline.toml", "--quiet"], s.dir.path()).expect("runs");
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    let before = keys_and_ids(&s);
    assert_eq!(
        before
            .iter()
            .map(|(k, st, _)| format!("{st}/{k}"))
            .collect::<Vec<_>>(),
        ["fix/2", "fix/3", "fix/4"]
    );

    // The mapper still refuses 3, and the sink is down: the replay has
    // refused 3 again and waits for the sink when it is killed.
    faulty(&s, r#"reject_keys = ["3"]"#, r#"fail_flush = "retryable""#);
    let mut replay = spawn(&s, &["dlq", "replay", "pipeline.toml"], "replay.log");
    let started = Instant::now();
    loop {
        let log = std::fs::read_to_string(s.path("replay.log")).unwrap_or_default();
        if log.contains("paused: sink `out` is down") {
            break;
        }
        if let Some(status) = replay.try_wait().expect("try_wait") {
            panic!("the replay ended ({status}) before the sink was down:\n{log}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the replay did not pause in 60 s:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(&mut replay, "the replay");
    assert_eq!(
        keys_and_ids(&s),
        before,
        "a killed replay leaves the dead letters as they were"
    );

    // Replayed again with the sink up: 2 and 4 are delivered, 3 keeps its
    // one letter.
    faulty(&s, r#"reject_keys = ["3"]"#, "");
    let out = ferry(&["dlq", "replay", "pipeline.toml"], s.dir.path()).expect("replays");
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let after = keys_and_ids(&s);
    let three = before.iter().find(|(k, _, _)| k == "3").expect("3");
    assert_eq!(after, std::slice::from_ref(three), "{}", out.stdout);
}
