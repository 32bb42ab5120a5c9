//! `ferry dlq` as an operator cleans up with it, and what `ferry` does with a
//! damaged state file.

use std::path::Path;

use ferry_state::{DeadLetter, DeadLetterFilter, SqliteState, StateStore, now_us};
use serde_json::Value;

use crate::support::{Output, Sandbox, ferry};

const HOUR_US: i64 = 3_600 * 1_000_000;
const DAY_US: i64 = 24 * HOUR_US;

/// `n` contacts; every third has no email, so the validator dead-letters it.
fn pipeline(s: &Sandbox, n: usize) {
    let mut input = String::new();
    for i in 0..n {
        if i % 3 == 0 {
            input.push_str(&format!("{{\"id\":\"{i}\"}}\n"));
        } else {
            input.push_str(&format!(
                "{{\"id\":\"{i}\",\"email\":\"c{i}@example.com\",\"note\":\"{}\"}}\n",
                "n".repeat(100)
            ));
        }
    }
    s.write("in/a.jsonl", &input);
    s.manifest(
        r#"[pipeline]
name = "small"

[plugins.src]
kind = "source"
wasm = "{FILE}"
config = { path = "/in/a.jsonl" }
grants = { files = [{ host = "in", guest = "/in" }] }

[plugins.rules]
kind = "validator"
wasm = "{SCHEMA_VALIDATOR}"
config = { required = ["email"] }

[plugins.out]
kind = "sink"
wasm = "{FILE}"
config = { path = "/out/out.jsonl" }
grants = { files = [{ host = "out", guest = "/out", mode = "rw" }] }

[[routes]]
from = "src"
through = ["rules"]
to = ["out"]
"#,
    );
}

fn run_ok(s: &Sandbox) -> Output {
    let out = ferry(&["run", "pipeline.toml"], s.dir.path()).expect("ferry runs");
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    out
}

fn listed(s: &Sandbox, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["dlq", "list", "--json"];
    all.extend_from_slice(args);
    let out = ferry(&all, s.dir.path()).expect("ferry runs");
    assert_eq!(out.code, 0, "{}", out.stderr);
    match serde_json::from_str(&out.stdout) {
        Ok(Value::Array(letters)) => letters,
        other => panic!("not a JSON array: {other:?}\n{}", out.stdout),
    }
}

fn keys(letters: &[Value]) -> Vec<String> {
    let mut keys: Vec<String> = letters
        .iter()
        .map(|l| {
            format!(
                "{}/{}",
                l["pipeline"].as_str().unwrap_or("?"),
                l["key"].as_str().unwrap_or("?")
            )
        })
        .collect();
    keys.sort();
    keys
}

fn old_letter(pipeline: &str, key: &str, age_us: i64) -> DeadLetter {
    DeadLetter {
        id: 0,
        pipeline: pipeline.into(),
        stage: "out".into(),
        plugin_digest: "d".repeat(64),
        reason: "rejected".into(),
        detail: "the warehouse said no".into(),
        key: key.into(),
        record: serde_json::json!({ "id": key }),
        attempts: 3,
        created_at_us: now_us() - age_us,
    }
}

#[test]
fn purge_asks_for_yes_deletes_what_the_filters_select_and_is_audited() {
    let s = Sandbox::new();
    pipeline(&s, 9);
    run_ok(&s);
    // Older dead letters: two of this pipeline, one of another pipeline
    // sharing the state file.
    s.state()
        .add_dead_letters(&[
            old_letter("small", "old-1", 10 * DAY_US),
            old_letter("small", "old-2", 9 * DAY_US),
            old_letter("other", "old-3", 10 * DAY_US),
        ])
        .expect("older dead letters");

    // The time filters of `list`: durations ago and RFC 3339.
    assert_eq!(
        keys(&listed(&s, &["--since", "1h"])),
        ["small/0", "small/3", "small/6"]
    );
    assert_eq!(
        keys(&listed(&s, &["pipeline.toml", "--until", "7d"])),
        ["other/old-3", "small/old-1", "small/old-2"]
    );
    let nine_and_a_half_days_ago = ferry_host::batch::rfc3339_micros(now_us() - 19 * DAY_US / 2);
    assert_eq!(
        keys(&listed(
            &s,
            &["--since", &nine_and_a_half_days_ago, "--until", "1d"]
        )),
        ["small/old-2"]
    );

    // Without --yes: how many, nothing deleted, exit 1. Given the manifest,
    // only its pipeline.
    let dry = ferry(
        &["dlq", "purge", "pipeline.toml", "--until", "7d"],
        s.dir.path(),
    )
    .expect("ferry runs");
    assert_eq!(dry.code, 1, "{}\n{}", dry.stdout, dry.stderr);
    let lines: Vec<&str> = dry.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", dry.stdout);
    assert!(
        lines[0].starts_with(
            "would delete 2 dead letters from ./.ferry/state.db (pipeline=small until="
        ) && lines[0].ends_with(')'),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[1],
        "nothing deleted: run again with --yes to delete them"
    );
    assert_eq!(listed(&s, &[]).len(), 6);

    let purge = ferry(
        &["dlq", "purge", "pipeline.toml", "--until", "7d", "--yes"],
        s.dir.path(),
    )
    .expect("ferry runs");
    assert_eq!(purge.code, 0, "{}\n{}", purge.stdout, purge.stderr);
    assert!(
        purge.stdout.contains(" old-1 ") && purge.stdout.contains(" old-2 "),
        "{}",
        purge.stdout
    );
    let last = purge.stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("deleted 2 dead letters from ./.ferry/state.db (pipeline=small until=")
            && last.ends_with("); recorded in the audit log (`ferry audit-log`)"),
        "{last}"
    );
    assert_eq!(
        keys(&listed(&s, &[])),
        ["other/old-3", "small/0", "small/3", "small/6"]
    );

    // The purge is in the audit log: who, what, which ids.
    let log = ferry(&["audit-log", "pipeline.toml", "--json"], s.dir.path()).expect("ferry runs");
    assert_eq!(log.code, 0, "{}", log.stderr);
    let events: Vec<Value> = serde_json::from_str(&log.stdout).expect("a JSON array");
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(
        (
            e["pipeline"].as_str(),
            e["capability"].as_str(),
            e["stage"].as_str()
        ),
        (Some("small"), Some("dlq-purge"), Some(""))
    );
    assert!(
        e["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("pipeline=small until=")),
        "{e}"
    );
    let detail = e["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with("`ferry dlq purge`")
            && detail.ends_with("deleted 2 dead letters (ids 4-5; rejected 2)"),
        "{detail}"
    );
    let text = ferry(&["audit-log", "pipeline.toml"], s.dir.path()).expect("ferry runs");
    assert!(
        text.stdout
            .contains("  small  dlq-purge: pipeline=small until="),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.ends_with("0 denials, 1 dead-letter purges\n"),
        "{}",
        text.stdout
    );

    // A state file named directly: no pipeline scoping, other filters apply.
    let purge = ferry(
        &[
            "dlq",
            "purge",
            ".ferry/state.db",
            "--stage",
            "rules",
            "--reason",
            "invalid",
            "--yes",
        ],
        s.dir.path(),
    )
    .expect("ferry runs");
    assert_eq!(purge.code, 0, "{}\n{}", purge.stdout, purge.stderr);
    assert!(purge.stdout.ends_with("deleted 3 dead letters from .ferry/state.db (stage=rules reason=invalid); recorded in the audit log (`ferry audit-log`)\n"), "{}", purge.stdout);

    // `list --json` keeps its fields.
    let left = listed(&s, &[]);
    assert_eq!(keys(&left), ["other/old-3"]);
    let mut fields: Vec<&str> = left[0]
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    fields.sort();
    assert_eq!(
        fields,
        [
            "attempts",
            "created_at_us",
            "detail",
            "id",
            "key",
            "pipeline",
            "plugin_digest",
            "reason",
            "record",
            "stage"
        ]
    );

    // Nothing matches: nothing to do, still no deletion without --yes.
    let none =
        ferry(&["dlq", "purge", "--reason", "trap", "--yes"], s.dir.path()).expect("ferry runs");
    assert_eq!(none.code, 0, "{}", none.stderr);
    assert_eq!(
        none.stdout,
        "deleted 0 dead letters from .ferry/state.db (reason=trap)\n"
    );

    // Times that do not parse, or a range with nothing in it.
    let bad = ferry(&["dlq", "purge", "--until", "last week"], s.dir.path()).expect("ferry runs");
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr
            .contains("`last week` is neither an RFC 3339 time"),
        "{}",
        bad.stderr
    );
    let empty = ferry(
        &["dlq", "list", "--since", "1h", "--until", "2h"],
        s.dir.path(),
    )
    .expect("ferry runs");
    assert_eq!(empty.code, 1);
    assert!(
        empty.stderr.contains("--since must be before --until"),
        "{}",
        empty.stderr
    );
    assert_eq!(
        s.state()
            .count_dead_letters(&DeadLetterFilter::default())
            .expect("count"),
        1
    );
}

/// Runs the pipeline, closes the state file (its log checkpointed into it),
/// damages it with `damage`, and checks that `ferry run` and `ferry dlq
/// list` refuse it with what to do, and that following the advice works.
fn refused_after(damage: impl FnOnce(&Path)) {
    let s = Sandbox::new();
    pipeline(&s, 900);
    let first = run_ok(&s);
    assert!(
        first
            .stdout
            .ends_with("accounting: read=900 written=600 dead_lettered=300 filtered=0\n"),
        "{}",
        first.stdout
    );
    let db = s.path(".ferry/state.db");
    drop(SqliteState::open(&db).expect("opens"));
    assert!(
        !s.path(".ferry/state.db-wal").exists(),
        "the log was not checkpointed"
    );
    damage(&db);

    // The manifest's state path, as `ferry` shows it.
    let p = "./.ferry/state.db";
    let tail = format!(
        "); ferry will not run on it. Restore it from a backup, or move it aside to start over: `mv {p} {p}.damaged`, with its -wal and -shm files if there are any. Starting over reads every source again from its beginning: records may be delivered twice, none is lost; the old dead letters and runs stay in the moved file\n"
    );
    for args in [
        &["run", "pipeline.toml"][..],
        &["dlq", "list", "pipeline.toml"][..],
    ] {
        let out = ferry(args, s.dir.path()).expect("ferry runs");
        assert_eq!(out.code, 1, "{args:?}: {}\n{}", out.stdout, out.stderr);
        assert!(
            out.stderr
                .starts_with(&format!("error: state database {p} is damaged ("))
                && out.stderr.ends_with(&tail),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert_eq!(
        s.jsonl("out/out.jsonl").len(),
        600,
        "nothing ran on the damaged file"
    );

    // The advice: move it aside and run again; everything is read again.
    for suffix in ["", "-wal", "-shm"] {
        let from = s.path(&format!(".ferry/state.db{suffix}"));
        if from.exists() {
            std::fs::rename(&from, s.path(&format!(".ferry/state.db{suffix}.damaged")))
                .expect("move aside");
        }
    }
    let again = run_ok(&s);
    assert!(
        again
            .stdout
            .ends_with("accounting: read=900 written=600 dead_lettered=300 filtered=0\n"),
        "{}",
        again.stdout
    );
    let out = s.jsonl("out/out.jsonl");
    assert_eq!(out.len(), 1200, "each record written twice, none lost");
}

#[test]
fn a_state_file_with_garbage_in_its_middle_is_refused_with_what_to_do() {
    refused_after(|db| {
        let mut bytes = std::fs::read(db).expect("read");
        assert!(bytes.len() >= 64 * 1024, "{} bytes", bytes.len());
        let mid = bytes.len() / 2;
        for (i, b) in bytes[mid..mid + 8192].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(167).wrapping_add(13);
        }
        std::fs::write(db, bytes).expect("write");
    });
}

#[test]
fn a_truncated_state_file_is_refused_with_what_to_do() {
    refused_after(|db| {
        let bytes = std::fs::read(db).expect("read");
        std::fs::write(db, &bytes[..bytes.len() / 2]).expect("truncate");
    });
}

/// src -> `fix` (test-faulty-mapper rejecting `reject`) -> out.
fn replayable(s: &Sandbox, reject: &str) {
    s.manifest(&crate::support::file_pipeline(
        r#"{ path = "/in/a.jsonl" }"#,
        &["fix"],
        &format!(
            "\n[plugins.fix]\nkind = \"mapper\"\nwasm = \"{{FAULTY_MAPPER}}\"\nconfig = {{ reject_keys = [{reject}] }}\n"
        ),
    ));
}

#[test]
fn replay_after_a_fix_moves_the_dead_letters_to_the_sink() {
    let s = Sandbox::new();
    s.write(
        "in/a.jsonl",
        "{\"id\":\"1\",\"n\":1}\n{\"id\":\"2\",\"n\":2}\n{\"id\":\"3\",\"n\":3}\n{\"id\":\"4\",\"n\":4}\n",
    );
    replayable(&s, "\"2\", \"4\"");
    let first = ferry(&["run", "pipeline.toml", "--quiet"], &s.path("")).expect("runs");
    assert_eq!(first.code, 0, "{}", first.stderr);
    let letters = s.dead_letters();
    assert_eq!(letters.len(), 2, "{letters:?}");

    // Half a fix: 4 is still rejected.
    replayable(&s, "\"4\"");
    let out = ferry(&["dlq", "replay", "pipeline.toml"], &s.path("")).expect("replays");
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("2 replayed: 1 delivered, 1 failed again, 0 filtered; 1 dead letter left"),
        "{}",
        out.stdout
    );
    let letters = s.dead_letters();
    assert_eq!(
        letters.iter().map(|l| l.key.as_str()).collect::<Vec<_>>(),
        ["4"],
        "2's letter is gone, 4 keeps its one"
    );

    // The whole fix.
    replayable(&s, "");
    let out = ferry(&["dlq", "replay", "pipeline.toml"], &s.path("")).expect("replays");
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("1 replayed: 1 delivered, 0 failed again, 0 filtered; 0 dead letters left"),
        "{}",
        out.stdout
    );
    assert!(s.dead_letters().is_empty());
    let keys: Vec<String> = s
        .jsonl("out/out.jsonl")
        .iter()
        .map(|r| r["id"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        keys,
        ["1", "3", "2", "4"],
        "every record reached the sink once"
    );
    let two = s
        .jsonl("out/out.jsonl")
        .into_iter()
        .find(|r| r["id"] == "2")
        .expect("2");
    assert_eq!(two["n"], 2, "the record came back as it was");

    // The source's checkpoint did not move: a new run reads nothing again.
    // And the replays committed the file sink's length with their writes:
    // the run resumes the sink there, keeping the replayed records.
    let again = ferry(&["run", "pipeline.toml", "--quiet"], &s.path("")).expect("runs");
    assert!(
        again.stdout.contains("accounting: read=0"),
        "{}",
        again.stdout
    );
    assert_eq!(
        s.jsonl("out/out.jsonl")
            .iter()
            .map(|r| r["id"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>(),
        ["1", "3", "2", "4"],
        "the replayed records stay after the next run"
    );
    // Both replays are in the audit log.
    let events: Vec<_> = s
        .state()
        .audit_events(Some("t"))
        .expect("audit")
        .into_iter()
        .filter(|e| e.capability == ferry_state::REPLAY_CAPABILITY)
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events[0].detail.contains("through stage `fix`"),
        "{events:?}"
    );
}
