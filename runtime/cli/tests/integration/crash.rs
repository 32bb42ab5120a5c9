//! The crash test: `ferry run` is killed
//! with SIGKILL at random moments while it moves 200,000 records from a
//! JSON Lines file through a mapper into a JSON Lines file, and restarted
//! each time; then it runs to the end.
//!
//! What a user depends on, and what is checked:
//!
//! - after every kill, the state file opens (page and schema checks) and its
//!   committed accounting balances; the committed checkpoint never passes a
//!   record that is not in the sink's file, and never moves back;
//! - a write cut short by the kill never corrupts the output: the file holds
//!   only whole, correct lines (some kills land inside the sink's write and
//!   leave part of a line; the test also leaves such torn tails itself, so
//!   that every run has some);
//! - nothing is doubled: the file sink is exactly-once (its committed
//!   length is stored with the checkpoint, and a restart truncates the
//!   file to it), so after every kill the file holds each record at most
//!   once, and at the end exactly once: not one duplicate line;
//! - summed over every run, the committed accounting counts each record
//!   exactly once: `read` = the number of records = `written`. Records a
//!   killed run read or wrote but did not commit are not counted by it; the
//!   run after it reads them again and counts them.
//!
//! Kills land at three kinds of moments: during startup (a random delay
//! after the start), while records flow (after the sink's file grew by a
//! random number of bytes, plus a random delay of up to 2 ms), and while the
//! state is written (as soon as the state's write-ahead log changes for the
//! first, second or third time in the run: the run's start is recorded, then
//! checkpoints are committed; the log is written, then synced, and the kill
//! comes within about 0.1 ms). The bytes are drawn so that every kill comes
//! before the run could commit everything. The moments come from a seeded
//! generator: `FERRY_CRASH_SEED=<n>` replays another sequence (the timing of
//! the machine still varies).

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use ferry_state::{Accounting, SqliteState, StateStore};
use serde_json::Value;

use crate::support::{Sandbox, ferry, ferry_bin};

const RECORDS: usize = 200_000;
const PIPELINE: &str = "crash";
/// Kills at each kind of moment (24 in all).
const STARTUP_KILLS: usize = 4;
const FLOWING_KILLS: usize = 8;
const STATE_WRITE_KILLS: usize = 12;
/// Torn tails the test leaves after a kill: cut inside a line, and cut just
/// before the line feed (a complete record without its line feed).
const TORN_INSIDE: usize = 4;
const TORN_BEFORE_LF: usize = 2;
/// How long one run may take before the test gives up on it.
const RUN_LIMIT: Duration = Duration::from_secs(60);

const MANIFEST: &str = r#"[pipeline]
name = "crash"
# Small batches and a short flush wait: many commits for the kills to hit.
batch = { max_records = 256, max_wait_ms = 2 }

[plugins.src]
kind = "source"
wasm = "{FILE}"
config = { path = "/in/records.jsonl" }
grants = { files = [{ host = "in", guest = "/in" }] }

[plugins.copy]
kind = "mapper"
wasm = "{PASSTHROUGH}"
config = { mode = "copy" }

[plugins.out]
kind = "sink"
wasm = "{FILE}"
config = { path = "/out/records.jsonl", include_meta = true }
grants = { files = [{ host = "out", guest = "/out", mode = "rw" }] }

[[routes]]
from = "src"
through = ["copy"]
to = ["out"]
"#;

/// SplitMix64: a small seeded generator, so a failing sequence can be
/// replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next() >> 11) as f64 / (1u64 << 53) as f64)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

fn source_line(i: usize) -> String {
    format!(
        "{{\"id\":\"k{i:06}\",\"n\":{i},\"name\":\"contact {i}\",\"email\":\"c{i}@example.com\"}}"
    )
}

/// The line the sink writes for record `i` (`include_meta`).
fn sink_line(i: usize) -> String {
    format!(
        "{{\"_key\":\"k{i:06}\",\"_op\":\"upsert\",{}",
        source_line(i).strip_prefix('{').unwrap_or_default()
    )
}

fn expected_record(i: usize) -> Value {
    serde_json::json!({
        "_key": format!("k{i:06}"),
        "_op": "upsert",
        "id": format!("k{i:06}"),
        "n": i,
        "name": format!("contact {i}"),
        "email": format!("c{i}@example.com"),
    })
}

/// The sink's output file, read as it grows: every complete line is checked
/// once.
struct Output {
    path: PathBuf,
    /// Offset just past the last complete line checked.
    scanned: u64,
    /// Lines seen per source record.
    copies: Vec<u32>,
    /// Records `0..unbroken` are all in the file.
    unbroken: usize,
    lines: u64,
    /// Lines that are not a source record as the sink writes it.
    bad: Vec<String>,
}

impl Output {
    fn new(path: PathBuf) -> Output {
        Output {
            path,
            scanned: 0,
            copies: vec![0; RECORDS],
            unbroken: 0,
            lines: 0,
            bad: Vec::new(),
        }
    }

    fn size(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    /// Whether the file ends in the middle of a line.
    fn ends_mid_line(&self) -> bool {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return false;
        };
        let len = f.metadata().expect("metadata").len();
        if len == 0 {
            return false;
        }
        let mut last = [0u8];
        f.seek(SeekFrom::Start(len - 1)).expect("seek");
        f.read_exact(&mut last).expect("read");
        last != *b"\n"
    }

    /// Checks every complete line from the start: a restart truncates the
    /// file to its committed length, so what an earlier scan saw may be gone.
    fn rescan(&mut self) {
        self.scanned = 0;
        self.copies.iter_mut().for_each(|c| *c = 0);
        self.unbroken = 0;
        self.lines = 0;
        self.bad.clear();
        self.scan();
    }

    /// Records held more than once, in order.
    fn doubled(&self) -> Vec<usize> {
        (0..RECORDS).filter(|&i| self.copies[i] > 1).collect()
    }

    /// Checks the complete lines written since the last scan.
    fn scan(&mut self) {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return;
        };
        let mut bytes = Vec::new();
        f.seek(SeekFrom::Start(self.scanned)).expect("seek");
        f.read_to_end(&mut bytes).expect("read the output");
        let mut at = 0;
        while let Some(nl) = bytes[at..].iter().position(|&b| b == b'\n') {
            let line = &bytes[at..at + nl];
            match check_line(line) {
                Ok(i) => self.copies[i] += 1,
                Err(why) => self.bad.push(format!(
                    "byte {}: {why}: {}",
                    self.scanned + at as u64,
                    String::from_utf8_lossy(&line[..line.len().min(300)])
                )),
            }
            self.lines += 1;
            at += nl + 1;
        }
        self.scanned += at as u64;
        while self.unbroken < RECORDS && self.copies[self.unbroken] > 0 {
            self.unbroken += 1;
        }
    }
}

/// The index of the source record a sink line holds, if it holds one
/// exactly.
fn check_line(line: &[u8]) -> Result<usize, String> {
    // Most lines are exactly as the sink writes them: compare the bytes
    // first, the JSON only when they differ.
    let digits = line.get(10..16).and_then(|d| std::str::from_utf8(d).ok());
    if let Some(i) = digits.and_then(|d| d.parse::<usize>().ok())
        && i < RECORDS
        && line == sink_line(i).as_bytes()
    {
        return Ok(i);
    }
    let v: Value = serde_json::from_slice(line).map_err(|e| format!("not JSON ({e})"))?;
    let key = v["_key"].as_str().ok_or("no _key")?;
    let i = key
        .strip_prefix('k')
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&i| i < RECORDS)
        .ok_or_else(|| format!("{key:?} is not a source key"))?;
    if v != expected_record(i) {
        return Err(format!("{key} is not the source record"));
    }
    Ok(i)
}

/// The byte offset and the line count in a `file` source checkpoint (25
/// bytes, little-endian: version, file index u32, path hash u32, offset
/// u64, lines u64; see plugins/file/src/checkpoint.rs).
fn checkpoint_position(checkpoint: &[u8]) -> (u64, u64) {
    assert_eq!(checkpoint.len(), 25, "a file source checkpoint");
    let u64_at =
        |at: usize| u64::from_le_bytes(checkpoint[at..at + 8].try_into().expect("8 bytes"));
    (u64_at(9), u64_at(17))
}

/// What the state says after a kill, read from a copy of its files (so the
/// next `ferry run` recovers the real ones itself).
struct Committed {
    accounting: Accounting,
    checkpoint: Option<Vec<u8>>,
    /// Whether the sink has a committed length (from the start of its
    /// first run on).
    sink_token: bool,
}

fn committed_after_kill(s: &Sandbox, kill: usize) -> Committed {
    let dir = s.path(".ferry");
    let snap = s.path(&format!("snapshots/{kill}"));
    std::fs::create_dir_all(&snap).expect("snapshot folder");
    let mut any = false;
    // The database, its write-ahead log, and the rollback journal SQLite
    // keeps for a moment while it creates the file. Not the shared-memory
    // index: SQLite rebuilds it from the log.
    for name in ["state.db", "state.db-wal", "state.db-journal"] {
        let from = dir.join(name);
        if from.exists() {
            std::fs::copy(&from, snap.join(name)).expect("copy the state");
            any |= name == "state.db";
        }
    }
    let out = if any {
        let state = SqliteState::open(&snap.join("state.db"))
            .unwrap_or_else(|e| panic!("after kill {kill}, the state file does not open: {e}"));
        Committed {
            accounting: state.total_accounting(PIPELINE).expect("accounting"),
            checkpoint: state.checkpoint(PIPELINE, "src").expect("checkpoint"),
            sink_token: state.sink_token(PIPELINE, "out").expect("token").is_some(),
        }
    } else {
        Committed {
            accounting: Accounting::default(),
            checkpoint: None,
            sink_token: false,
        }
    };
    std::fs::remove_dir_all(&snap).expect("remove the snapshot");
    out
}

/// What changes when the state's write-ahead log is written: its size and
/// time, and its header (new salts when SQLite starts the log over).
fn wal_stamp(s: &Sandbox) -> Option<(u64, SystemTime, [u8; 32])> {
    let mut f = std::fs::File::open(s.path(".ferry/state.db-wal")).ok()?;
    let m = f.metadata().ok()?;
    let mut header = [0u8; 32];
    let _ = f.read(&mut header).ok()?;
    Some((m.len(), m.modified().ok()?, header))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Moment {
    /// At a random delay after the start (capped by output growth).
    Startup,
    /// After the output grew by some bytes, plus up to 2 ms.
    Flowing,
    /// As soon as the run writes the state's log for the n-th time: the
    /// first write records the run's start (and creates the tables in a new
    /// file), the next ones commit checkpoints. After the output grew by
    /// some bytes if that comes first.
    StateWrite,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Torn {
    No,
    Inside,
    BeforeLineFeed,
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[test]
fn sigkill_at_random_moments_loses_nothing_doubles_nothing_and_corrupts_nothing() {
    let began = Instant::now();
    let seed: u64 = std::env::var("FERRY_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let mut rng = Rng(seed);
    let ctx = format!("seed {seed} (FERRY_CRASH_SEED)");

    let s = Sandbox::new();
    let mut input = String::with_capacity(RECORDS * 80);
    let mut output_bytes = 0usize;
    // Where each source record starts, and the end of the file.
    let mut offsets = Vec::with_capacity(RECORDS + 1);
    for i in 0..RECORDS {
        offsets.push(input.len() as u64);
        input.push_str(&source_line(i));
        input.push('\n');
        output_bytes += sink_line(i).len() + 1;
    }
    offsets.push(input.len() as u64);
    s.write("in/records.jsonl", &input);
    drop(input);
    s.manifest(MANIFEST);
    std::fs::create_dir_all(s.path("logs")).expect("logs/");
    let mut out = Output::new(s.path("out/records.jsonl"));
    let line_bytes = output_bytes as f64 / RECORDS as f64;

    let mut moments: Vec<Moment> = [
        (Moment::Startup, STARTUP_KILLS),
        (Moment::Flowing, FLOWING_KILLS),
        (Moment::StateWrite, STATE_WRITE_KILLS),
    ]
    .iter()
    .flat_map(|&(m, n)| std::iter::repeat_n(m, n))
    .collect();
    rng.shuffle(&mut moments);
    let kills = moments.len();
    let mut torn: Vec<Torn> = std::iter::repeat_n(Torn::Inside, TORN_INSIDE)
        .chain(std::iter::repeat_n(Torn::BeforeLineFeed, TORN_BEFORE_LF))
        .chain(std::iter::repeat(Torn::No))
        .take(kills)
        .collect();
    rng.shuffle(&mut torn);

    let mut committed = Accounting::default();
    // The longest a run took to write its first line, for startup kills.
    let mut startup = Duration::from_millis(150);
    let (mut progressed, mut real_torn, mut left_torn) = (0, 0, 0);
    // Kills as the run wrote the state's log: to record its start, to
    // commit a checkpoint.
    let (mut start_kills, mut commit_kills) = (0, 0);
    for (k, (&moment, &tear)) in moments.iter().zip(&torn).enumerate() {
        let remaining = (RECORDS as u64 - committed.read) as f64 * line_bytes;
        let grow = (remaining * rng.between(0.3, 1.7) / (kills - k + 2) as f64) as u64;
        let at = startup.mul_f64(rng.between(0.0, 1.5));
        let jitter = Duration::from_micros(rng.below(2_000) as u64);
        // The run's start once in four, else its first or second commit.
        let nth_write = [1, 2, 2, 3][rng.below(4)];

        let log = s.path(&format!("logs/run-{k}.log"));
        let base = out.size();
        let started = Instant::now();
        let mut child = Command::new(ferry_bin().expect("the ferry binary"))
            .args(["run", "--no-watch", "pipeline.toml"])
            .current_dir(s.dir.path())
            .env(
                "FERRY_CACHE_DIR",
                PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("ferry starts");
        let mut first_write: Option<Duration> = None;
        let mut wal = wal_stamp(&s);
        let mut wal_writes = 0;
        let exited = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break Some(status);
            }
            let grown = out.size().saturating_sub(base);
            if grown > 0 && first_write.is_none() {
                first_write = Some(started.elapsed());
            }
            let now = match moment {
                Moment::Startup => started.elapsed() >= at || grown >= grow,
                Moment::Flowing => {
                    if grown >= grow {
                        std::thread::sleep(jitter);
                    }
                    grown >= grow
                }
                Moment::StateWrite => {
                    let stamp = wal_stamp(&s);
                    if stamp != wal {
                        wal = stamp;
                        wal_writes += 1;
                    }
                    if wal_writes >= nth_write {
                        if nth_write == 1 {
                            start_kills += 1;
                        } else {
                            commit_kills += 1;
                        }
                    }
                    wal_writes >= nth_write || grown >= grow
                }
            };
            if now {
                break None;
            }
            assert!(
                started.elapsed() < RUN_LIMIT,
                "{ctx}: run {k} did not reach its kill point in {RUN_LIMIT:?}:\n{}",
                tail(&log)
            );
            std::thread::sleep(Duration::from_micros(if moment == Moment::StateWrite {
                50
            } else {
                500
            }));
        };
        if let Some(status) = exited {
            panic!(
                "{ctx}: run {k} ended ({status}) before it was killed ({moment:?}, after {grow} bytes); \
                 committed before it: {committed}\n{}",
                tail(&log)
            );
        }
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        assert_eq!(
            status.signal(),
            Some(9),
            "{ctx}: run {k} was not killed by SIGKILL but ended with {status}\n{}",
            tail(&log)
        );
        if let Some(t) = first_write {
            startup = startup.max(t);
        }

        // The output: whole lines only, each one a source record.
        let mid_line = out.ends_mid_line();
        real_torn += usize::from(mid_line);
        out.rescan();
        assert!(
            out.bad.is_empty(),
            "{ctx}: after kill {k}, the output holds {} broken lines, first: {:?}",
            out.bad.len(),
            &out.bad[..out.bad.len().min(5)]
        );
        let doubled = out.doubled();
        assert!(
            doubled.is_empty(),
            "{ctx}: after kill {k}, {} records are in the output twice, first: {:?}",
            doubled.len(),
            &doubled[..doubled.len().min(10)]
        );

        // The state: it opens, it balances, it never goes back, and it
        // never passes a record the sink does not hold.
        let now = committed_after_kill(&s, k);
        let a = now.accounting;
        assert!(a.balances(), "{ctx}: after kill {k}: {a}");
        assert_eq!(
            (a.dead_lettered, a.filtered),
            (0, 0),
            "{ctx}: after kill {k}: {a}"
        );
        assert!(
            a.read >= committed.read,
            "{ctx}: after kill {k} the committed records went back from {} to {}",
            committed.read,
            a.read
        );
        // The checkpoint and the accounting land together: the checkpoint
        // stands just past the records the accounting counts.
        let position = now
            .checkpoint
            .as_deref()
            .map_or((0, 0), checkpoint_position);
        assert_eq!(
            position,
            (offsets[a.read as usize], a.read),
            "{ctx}: after kill {k}: the checkpoint (byte offset, lines) does not match {a}"
        );
        assert!(
            out.unbroken as u64 >= a.read,
            "{ctx}: after kill {k}, {} records are committed but record {} is not in the sink",
            a.read,
            out.unbroken
        );
        if a.read > committed.read {
            progressed += 1;
        }
        assert!(
            a.read < RECORDS as u64,
            "{ctx}: every record was committed by kill {k}: the kills came too late"
        );
        committed = a;

        // A kill in the middle of the sink's write leaves part of a line;
        // leave one here too when this kill did not (a prefix of the line
        // the next run writes first). Only after the sink has a committed
        // length: before, a line in the file is not ferry's to remove.
        if mid_line || !now.sink_token {
            continue;
        }
        let line = sink_line(committed.read as usize);
        let cut = match tear {
            Torn::No => continue,
            Torn::Inside => 1 + rng.below(line.len() - 1),
            Torn::BeforeLineFeed => line.len(),
        };
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&out.path)
            .and_then(|mut f| f.write_all(&line.as_bytes()[..cut]))
            .expect("leave a torn tail");
        left_torn += 1;
    }

    // The last run goes to the end.
    let last = ferry(&["run", "--no-watch", "pipeline.toml"], s.dir.path()).expect("ferry runs");
    assert_eq!(last.code, 0, "{ctx}: {}\n{}", last.stdout, last.stderr);
    let rest = RECORDS as u64 - committed.read;
    assert_eq!(
        last.stdout.lines().last(),
        Some(format!("accounting: read={rest} written={rest} dead_lettered=0 filtered=0").as_str()),
        "{ctx}: the last run commits exactly the records not committed before it\n{}",
        last.stderr
    );

    // The sink: whole lines, every record at least once, nothing else.
    assert!(!out.ends_mid_line(), "{ctx}: the output ends mid-line");
    out.rescan();
    assert!(
        out.bad.is_empty(),
        "{ctx}: the output holds {} broken lines, first: {:?}",
        out.bad.len(),
        &out.bad[..out.bad.len().min(5)]
    );
    assert_eq!(out.scanned, out.size(), "{ctx}: bytes after the last line");
    let missing: Vec<usize> = (0..RECORDS).filter(|&i| out.copies[i] == 0).collect();
    assert!(
        missing.is_empty(),
        "{ctx}: {} source records are not in the sink, first: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    // Exactly once: every line is a source record (checked line by line),
    // every record is there, and no record twice.
    let doubled = out.doubled();
    assert!(
        doubled.is_empty(),
        "{ctx}: {} records are in the output more than once, first: {:?}",
        doubled.len(),
        &doubled[..doubled.len().min(10)]
    );
    let duplicates = out.lines - RECORDS as u64;
    assert_eq!(duplicates, 0, "{ctx}: duplicate lines");

    // The state: each record counted once over all runs, in one state.
    let state = SqliteState::open(&s.path(".ferry/state.db")).expect("the state opens");
    let total = state.total_accounting(PIPELINE).expect("accounting");
    let all = RECORDS as u64;
    assert_eq!(
        total,
        Accounting {
            read: all,
            written: all,
            dead_lettered: 0,
            filtered: 0
        },
        "{ctx}"
    );
    let mut runs = Vec::new();
    while let Some(run) = state.run(runs.len() as i64 + 1).expect("a run") {
        runs.push(run);
    }
    let mut sum = Accounting::default();
    for run in &runs {
        assert!(run.accounting.balances(), "{ctx}: run {run:?}");
        sum.add(&run.accounting);
    }
    assert_eq!(sum, total, "{ctx}: the runs add up to the total");
    assert!(runs.len() <= kills + 1, "{ctx}: {} runs", runs.len());
    let final_run = runs.last().expect("runs");
    assert_eq!(final_run.status, ferry_state::RunStatus::Finished, "{ctx}");
    assert_eq!(final_run.accounting.read, rest, "{ctx}");
    assert!(
        state
            .dead_letters(&ferry_state::DeadLetterFilter::default())
            .expect("dead letters")
            .is_empty(),
        "{ctx}: dead letters"
    );
    let last_checkpoint = state
        .checkpoint(PIPELINE, "src")
        .expect("checkpoint")
        .expect("a checkpoint");
    assert_eq!(
        checkpoint_position(&last_checkpoint),
        (offsets[RECORDS], RECORDS as u64),
        "{ctx}: the checkpoint stands at the end of the source"
    );

    // Kills hit commits: the test notices the write of the log and kills
    // within about 0.1 ms, while the commit syncs the log.
    assert!(
        commit_kills >= 2,
        "{ctx}: only {commit_kills} kills came as a commit wrote the state's log"
    );

    println!(
        "crash test, {ctx}: {kills} kills ({STARTUP_KILLS} at startup, {FLOWING_KILLS} while records flowed, \
         {STATE_WRITE_KILLS} at a write of the state: {start_kills} as a run's start was recorded, \
         {commit_kills} as a checkpoint was committed); the committed checkpoint moved between {progressed} \
         of them and stood at {} of {RECORDS} records before the last run; torn tails: {real_torn} left by a \
         kill, {left_torn} left by the test; {} lines in the sink, {duplicates} duplicates; {} runs; {:.1} s",
        committed.read,
        out.lines,
        runs.len(),
        began.elapsed().as_secs_f64()
    );
}
