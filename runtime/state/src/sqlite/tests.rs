//! Tests of the SQLite backend's behaviour: commits, dead letters, purges,
//! replays, runs, scheduled runs, audit events and two-way sync state.

use super::*;
use crate::time::rfc3339;
use crate::{CONFLICT_CAPABILITY, Choice, ConflictStatus, NewConflict, Reopen};

/// A fresh database path in a temporary folder (kept while the folder lives).
pub(super) fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("state.db");
    (dir, path)
}

pub(super) fn letter(stage: &str, reason: &str, key: &str) -> DeadLetter {
    DeadLetter {
        id: 0,
        pipeline: "p".into(),
        stage: stage.into(),
        plugin_digest: "d".into(),
        reason: reason.into(),
        detail: format!("{reason} at {stage}"),
        key: key.into(),
        record: serde_json::json!({ "id": key }),
        attempts: 1,
        created_at_us: 0,
    }
}

#[test]
fn checkpoint_and_accounting_commit_together_and_survive_reopen() -> Result<(), StateError> {
    let dir = tempfile::tempdir().map_err(|source| StateError::Folder {
        path: PathBuf::from("tmp"),
        source,
    })?;
    let path = dir.path().join("nested/state.db");
    {
        let s = SqliteState::open(&path)?;
        assert_eq!(s.checkpoint("p", "src")?, None);
        let run = s.start_run("p")?;
        let a = Accounting {
            read: 10,
            written: 7,
            dead_lettered: 2,
            filtered: 1,
        };
        s.commit(&PipelineCommit::new(run, "p", "src", b"pos-10", a))?;
        s.commit(&PipelineCommit {
            sink_tokens: vec![("out".to_string(), b"len-12".to_vec())],
            ..PipelineCommit::new(
                run,
                "p",
                "src",
                b"pos-12",
                Accounting {
                    read: 2,
                    written: 2,
                    ..Default::default()
                },
            )
        })?;
        s.finish_run(run, &RunStatus::Finished)?;
        let r = s.run(run)?.ok_or_else(|| StateError::Corrupt {
            path: path.clone(),
            detail: "run".into(),
        })?;
        assert_eq!(
            r.accounting,
            Accounting {
                read: 12,
                written: 9,
                dead_lettered: 2,
                filtered: 1
            }
        );
        assert_eq!(r.status, RunStatus::Finished);
    }
    let s = SqliteState::open(&path)?;
    assert_eq!(s.checkpoint("p", "src")?, Some(b"pos-12".to_vec()));
    assert_eq!(s.sink_token("p", "out")?, Some(b"len-12".to_vec()));
    assert_eq!(s.sink_token("p", "other")?, None);
    // A baseline lands only where there is no token.
    s.baseline_sink_token("p", "out", b"len-0")?;
    s.baseline_sink_token("p", "other", b"len-0")?;
    assert_eq!(s.sink_token("p", "out")?, Some(b"len-12".to_vec()));
    assert_eq!(s.sink_token("p", "other")?, Some(b"len-0".to_vec()));
    assert!(s.total_accounting("p")?.balances());
    assert_eq!(s.total_accounting("other")?, Accounting::default());
    Ok(())
}

#[test]
fn dead_letters_filter_by_stage_and_reason() -> Result<(), StateError> {
    let s = SqliteState::open(Path::new(":memory:"))?;
    s.add_dead_letters(&[
        letter("rules", "invalid", "a"),
        letter("rules", "trap", "b"),
        letter("sink", "rejected", "c"),
    ])?;
    let all = s.dead_letters(&DeadLetterFilter::default())?;
    assert_eq!(
        all.iter().map(|l| l.key.as_str()).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert_eq!(all[0].record, serde_json::json!({ "id": "a" }));
    let rules = s.dead_letters(&DeadLetterFilter {
        stage: Some("rules".into()),
        ..Default::default()
    })?;
    assert_eq!(rules.len(), 2);
    let traps = s.dead_letters(&DeadLetterFilter {
        reason: Some("trap".into()),
        ..Default::default()
    })?;
    assert_eq!(traps.len(), 1);
    assert_eq!(
        s.dead_letter(traps[0].id)?.map(|l| l.key),
        Some("b".to_string())
    );
    Ok(())
}

fn conflict_event(key: &str) -> AuditEvent {
    AuditEvent {
        id: 0,
        at_us: 0,
        pipeline: "p".into(),
        stage: "sync".into(),
        plugin_digest: String::new(),
        capability: CONFLICT_CAPABILITY.into(),
        target: key.into(),
        detail: "{}".into(),
    }
}

#[test]
fn a_sync_commit_lands_whole_and_a_conflict_is_decided_once() -> Result<(), StateError> {
    let (_dir, path) = temp();
    let s = SqliteState::open(&path)?;
    let commit = SyncCommit {
        pipeline: "p".into(),
        checkpoint: Some(("crm#left".into(), vec![7])),
        states: vec![
            ("1".into(), Some("{\"a\":1}".into())),
            ("2".into(), Some("{}".into())),
        ],
        queue: vec![NewConflict {
            key: "3".into(),
            left: serde_json::json!({"fields": {"n": {"int": 1}}}),
            right: serde_json::Value::Null,
            ancestor: serde_json::Value::Null,
            strategy: "manual".into(),
            reason: "the strategy is manual".into(),
        }],
        audit: vec![conflict_event("3")],
        dead_letters: vec![letter("crm", "owned-field", "4")],
        ..SyncCommit::default()
    };
    let ids = s.commit_sync(&commit)?;
    assert_eq!(ids.len(), 1);
    assert_eq!(s.checkpoint("p", "crm#left")?, Some(vec![7]));
    let states = s.sync_states("p", &["1".into(), "2".into(), "9".into()])?;
    assert_eq!(
        states,
        vec![("1".into(), "{\"a\":1}".into()), ("2".into(), "{}".into())]
    );
    assert_eq!(s.dead_letters(&DeadLetterFilter::default())?.len(), 1);
    assert_eq!(s.audit_events(Some("p"))?.len(), 1);
    let open = s.conflicts(&ConflictFilter {
        statuses: vec![ConflictStatus::Open],
        ..ConflictFilter::default()
    })?;
    assert_eq!(open.len(), 1);
    let status_sql = "SELECT status FROM conflicts WHERE id = ?1";
    assert_eq!(stored(&path, status_sql, ids[0]), "open");
    for (statuses, found) in [
        (vec![ConflictStatus::Decided, ConflictStatus::Resolved], 0),
        (vec![ConflictStatus::Resolved, ConflictStatus::Open], 1),
        (vec![], 1),
    ] {
        let filter = ConflictFilter {
            statuses,
            ..ConflictFilter::default()
        };
        assert_eq!(s.conflicts(&filter)?.len(), found, "{filter:?}");
    }
    assert_eq!(open[0].left["fields"]["n"]["int"], 1);
    // Forgetting a key, refreshing the queued versions, deciding.
    s.commit_sync(&SyncCommit {
        pipeline: "p".into(),
        states: vec![("2".into(), None)],
        refresh: vec![(
            ids[0],
            serde_json::json!({"fields": {}}),
            serde_json::json!({"fields": {}}),
        )],
        ..SyncCommit::default()
    })?;
    assert_eq!(s.sync_states("p", &["2".into()])?, vec![]);
    assert_eq!(
        s.conflict(ids[0])?.expect("kept").left,
        serde_json::json!({"fields": {}})
    );
    let seen = s.conflict(ids[0])?.expect("kept");
    let decision = |take: Choice, by: &str| Decision {
        decision: take,
        merged: None,
        left: seen.left.clone(),
        right: seen.right.clone(),
        by: by.into(),
    };
    assert!(s.decide_conflict(ids[0], &decision(Choice::Left, "ann"), &conflict_event("3"))?);
    assert!(
        !s.decide_conflict(
            ids[0],
            &decision(Choice::Right, "bob"),
            &conflict_event("3")
        )?,
        "decided once"
    );
    let c = s.conflict(ids[0])?.expect("kept");
    assert_eq!(
        (c.status.as_str(), c.decision, c.decided_by.as_deref()),
        ("decided", Some(Choice::Left), Some("ann"))
    );
    let decision_sql = "SELECT decision FROM conflicts WHERE id = ?1";
    assert_eq!(stored(&path, decision_sql, ids[0]), "left");
    assert_eq!(stored(&path, status_sql, ids[0]), "decided");
    assert_eq!(
        c.decided_left.as_ref(),
        Some(&seen.left),
        "what it was decided on"
    );
    assert_eq!(c.decided_right.as_ref(), Some(&seen.right));
    // A stale decision: the conflict waits again with the current
    // versions, the decision gone, the note kept.
    let now = serde_json::json!({"fields": {"n": {"int": 2}}});
    s.commit_sync(&SyncCommit {
        pipeline: "p".into(),
        reopen: vec![Reopen {
            id: ids[0],
            left: now.clone(),
            right: serde_json::Value::Null,
            note: "the left side changed".into(),
        }],
        ..SyncCommit::default()
    })?;
    let c = s.conflict(ids[0])?.expect("kept");
    assert_eq!(
        (
            c.status.as_str(),
            c.decision,
            c.decided_by,
            c.decided_left,
            c.left.clone()
        ),
        ("open", None, None, None, now)
    );
    assert_eq!(c.reopened.as_deref(), Some("the left side changed"));
    assert!(s.decide_conflict(ids[0], &decision(Choice::Left, "ann"), &conflict_event("3"))?);
    assert_eq!(s.conflict(ids[0])?.expect("kept").reopened, None);
    s.commit_sync(&SyncCommit {
        pipeline: "p".into(),
        resolved: vec![ids[0]],
        ..SyncCommit::default()
    })?;
    let c = s.conflict(ids[0])?.expect("kept");
    assert_eq!(c.status, ConflictStatus::Resolved);
    assert_eq!(stored(&path, status_sql, ids[0]), "resolved");
    for status in [
        ConflictStatus::Open,
        ConflictStatus::Decided,
        ConflictStatus::Resolved,
    ] {
        assert_eq!(status.as_str().parse::<ConflictStatus>()?, status);
        assert_eq!(format!("{status:<9}|"), format!("{:<9}|", status.as_str()));
    }
    assert!("closed".parse::<ConflictStatus>().is_err());
    for choice in [Choice::Left, Choice::Right, Choice::Merged] {
        assert_eq!(choice.as_str().parse::<Choice>()?, choice);
        assert_eq!(choice.to_string(), choice.as_str());
        assert_eq!(
            serde_json::json!(choice),
            serde_json::json!(choice.as_str())
        );
    }
    assert!("take-left".parse::<Choice>().is_err());
    assert!(c.resolved_at_us.is_some());
    assert_eq!(
        s.audit_events(Some("p"))?.len(),
        3,
        "each decision is audited"
    );
    Ok(())
}

#[test]
fn scheduled_runs_are_kept_newest_first_and_an_unfinished_one_becomes_interrupted()
-> Result<(), StateError> {
    let (_dir, path) = temp();
    let s = SqliteState::open(&path)?;
    let first = s.start_scheduled_run("p", "*/15 * * * *", 900_000_000, 0, 900_000_100)?;
    let counts = Accounting {
        read: 5,
        written: 3,
        dead_lettered: 1,
        filtered: 1,
    };
    s.finish_scheduled_run(
        first,
        901_000_000,
        &ScheduledOutcome::Finished,
        Some(7),
        &counts,
    )?;
    // A second run that ferry never saw end (killed), then a third.
    let second = s.start_scheduled_run("p", "*/15 * * * *", 1_800_000_000, 0, 1_800_000_050)?;
    let other = s.start_scheduled_run("q", "every 1s", 1_000_000, 0, 1_000_000)?;
    let third = s.start_scheduled_run("p", "every 1h", 3_600_000_000, 2, 5_400_000_000)?;

    let runs = s.scheduled_runs("p", 10)?;
    let ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
    assert_eq!(ids, [third, second, first]);
    let [newest, cut, done] = &runs[..] else {
        panic!("three runs: {runs:?}")
    };
    assert_eq!(newest.outcome, ScheduledOutcome::Running);
    assert_eq!(newest.schedule, "every 1h");
    assert_eq!((newest.due_at_us, newest.missed), (3_600_000_000, 2));
    assert_eq!(newest.started_at_us, 5_400_000_000);
    assert_eq!(newest.finished_at_us, None);
    assert_eq!(cut.outcome, ScheduledOutcome::Interrupted);
    assert_eq!(cut.finished_at_us, None);
    assert_eq!(done.outcome, ScheduledOutcome::Finished);
    assert_eq!(done.finished_at_us, Some(901_000_000));
    assert_eq!(done.run_id, Some(7));
    assert_eq!(done.accounting, counts);
    assert_eq!(s.scheduled_runs("p", 1)?.len(), 1);
    // Another pipeline's run is its own.
    let q = s.scheduled_runs("q", 10)?;
    assert_eq!(
        (q.len(), q[0].id, &q[0].outcome),
        (1, other, &ScheduledOutcome::Running)
    );
    // Stored as the text ferry always wrote.
    let sql = "SELECT outcome FROM schedule_runs WHERE id = ?1";
    let texts = [third, second, first].map(|id| stored(&path, sql, id));
    assert_eq!(texts, ["running", "interrupted", "finished"]);
    drop(s);
    // And it all survives a reopen.
    assert_eq!(SqliteState::open(&path)?.scheduled_runs("p", 10)?, runs);
    Ok(())
}

#[test]
fn a_commit_that_does_not_balance_is_refused_and_lands_nothing() {
    let s = SqliteState::open(Path::new(":memory:")).expect("opens");
    let run = s.start_run("p").expect("run");
    let e = s
        .commit(&PipelineCommit::new(
            run,
            "p",
            "src",
            b"cp",
            Accounting {
                read: 5,
                written: 3,
                dead_lettered: 1,
                filtered: 0,
            },
        ))
        .expect_err("refused");
    assert!(matches!(e, StateError::Accounting { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "state database :memory:: the accounting does not balance (the 5 records a checkpoint of `p`/`src` closes are not all accounted for: written=3 dead_lettered=1 filtered=0); the checkpoint was not committed, so these records will be read again. This is a bug in ferry: please report it"
    );
    assert_eq!(s.checkpoint("p", "src").expect("read"), None);
    assert_eq!(
        s.run(run).expect("read").map(|r| r.accounting),
        Some(Accounting::default())
    );
}

#[test]
fn dead_letters_land_with_their_checkpoint_or_not_at_all() {
    let s = SqliteState::open(Path::new(":memory:")).expect("opens");
    let run = s.start_run("p").expect("run");
    let all = DeadLetterFilter::default();
    let mut commit = PipelineCommit::new(
        run,
        "p",
        "src",
        b"one",
        Accounting {
            read: 3,
            written: 1,
            dead_lettered: 2,
            filtered: 0,
        },
    );
    commit.dead_letters = vec![
        letter("rules", "invalid", "a"),
        letter("rules", "invalid", "b"),
    ];
    // A commit that is refused stores none of its letters.
    let mut refused = commit.clone();
    refused.run = run + 1;
    s.commit(&refused).expect_err("no such run");
    assert_eq!(s.count_dead_letters(&all).expect("count"), 0);
    assert_eq!(s.checkpoint("p", "src").expect("read"), None);
    s.commit(&commit).expect("commit");
    assert_eq!(s.count_dead_letters(&all).expect("count"), 2);
    assert_eq!(
        s.checkpoint("p", "src").expect("read"),
        Some(b"one".to_vec())
    );
}

#[test]
fn a_replay_commit_deletes_what_it_delivered_and_replaces_what_failed_again() {
    let s = SqliteState::open(Path::new(":memory:")).expect("opens");
    s.add_dead_letters(&[
        letter("m", "rejected", "a"),
        letter("m", "rejected", "b"),
        letter("m", "rejected", "c"),
    ])
    .expect("add");
    let stored = s.dead_letters(&DeadLetterFilter::default()).expect("list");
    let ids: Vec<i64> = stored.iter().map(|l| l.id).collect();
    let run = s.start_run("p").expect("run");
    // Replayed: a delivered, b refused again by the sink `out` (twice:
    // the second letter is a new one), c dropped.
    let mut again = letter("out", "conflict", "b");
    again.id = ids[1];
    again.attempts = 2;
    let mut commit = PipelineCommit::new(
        run,
        "p",
        "src#replay",
        b"replayed",
        Accounting {
            read: 3,
            written: 1,
            dead_lettered: 1,
            filtered: 1,
        },
    );
    commit.dead_letters = vec![again.clone(), again];
    commit.replayed = Some(Replayed {
        ids: ids.clone(),
        detail: "replayed".into(),
    });
    s.commit(&commit).expect("commit");
    let after = s.dead_letters(&DeadLetterFilter::default()).expect("list");
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(
        (
            after[0].id,
            after[0].key.as_str(),
            after[0].stage.as_str(),
            after[0].reason.as_str(),
            after[0].attempts
        ),
        (ids[1], "b", "out", "conflict", 3),
        "replaced in place, its attempts added up"
    );
    assert!(after[1].id > ids[2], "the second letter is a new one");
    let events = s.audit_events(Some("p")).expect("audit");
    assert_eq!(events.len(), 1);
    assert_eq!(
        (
            events[0].capability.as_str(),
            events[0].target.as_str(),
            events[0].detail.as_str()
        ),
        (REPLAY_CAPABILITY, "1-3", "replayed")
    );
    // A letter naming an id the commit does not replay is a new one.
    let mut stray = letter("m", "rejected", "z");
    stray.id = ids[1];
    let mut commit = PipelineCommit::new(
        run,
        "p",
        "src",
        b"cp",
        Accounting {
            read: 1,
            dead_lettered: 1,
            ..Default::default()
        },
    );
    commit.dead_letters = vec![stray];
    s.commit(&commit).expect("commit");
    let after = s.dead_letters(&DeadLetterFilter::default()).expect("list");
    assert_eq!(after.len(), 3);
    assert_eq!(after[0].key, "b", "the replaced letter is untouched");
}

#[test]
fn a_checkpoint_never_lands_without_its_accounting() {
    let s = SqliteState::open(Path::new(":memory:")).expect("opens");
    let run = s.start_run("p").expect("run");
    let closed = Accounting {
        read: 2,
        written: 2,
        ..Default::default()
    };
    let with_token = |c: PipelineCommit, t: &[u8]| PipelineCommit {
        sink_tokens: vec![("out".to_string(), t.to_vec())],
        ..c
    };
    s.commit(&with_token(
        PipelineCommit::new(run, "p", "src", b"one", closed),
        b"one",
    ))
    .expect("commit");
    // The run is gone: the accounting has nowhere to land, so the
    // checkpoint and the sink token written before it in the
    // transaction roll back.
    let e = s
        .commit(&with_token(
            PipelineCommit::new(run + 1, "p", "src", b"two", closed),
            b"two",
        ))
        .expect_err("refused");
    assert!(
        e.to_string().contains(
            "run 2 of `p` is not in the runs table, so the accounting of 2 records would be lost"
        ),
        "{e}"
    );
    assert_eq!(
        s.checkpoint("p", "src").expect("read"),
        Some(b"one".to_vec())
    );
    assert_eq!(
        s.sink_token("p", "out").expect("read"),
        Some(b"one".to_vec())
    );
    // Totals that no longer balance are caught at the next commit.
    s.lock()
        .execute(
            "UPDATE runs SET written = written + 1 WHERE id = ?1",
            params![run],
        )
        .expect("tamper");
    let e = s
        .commit(&PipelineCommit::new(run, "p", "src", b"three", closed))
        .expect_err("refused");
    assert!(
        e.to_string()
            .contains("run 1 of `p` would total read=4 written=5 dead_lettered=0 filtered=0"),
        "{e}"
    );
    assert_eq!(
        s.checkpoint("p", "src").expect("read"),
        Some(b"one".to_vec())
    );
}

fn at(mut l: DeadLetter, pipeline: &str, us: i64) -> DeadLetter {
    l.pipeline = pipeline.into();
    l.created_at_us = us;
    l
}

fn keys(letters: &[DeadLetter]) -> Vec<&str> {
    letters.iter().map(|l| l.key.as_str()).collect()
}

#[test]
fn dead_letters_filter_by_time_since_inclusive_until_exclusive() {
    let s = SqliteState::open(Path::new(":memory:")).expect("opens");
    s.add_dead_letters(&[
        at(letter("rules", "invalid", "a"), "p", 1_000),
        at(letter("rules", "invalid", "b"), "p", 2_000),
        at(letter("rules", "invalid", "c"), "p", 3_000),
    ])
    .expect("add");
    let f = |since_us, until_us| DeadLetterFilter {
        since_us,
        until_us,
        ..Default::default()
    };
    let cases = [
        (f(Some(2_000), None), vec!["b", "c"]),
        (f(None, Some(2_000)), vec!["a"]),
        (f(Some(1_500), Some(3_000)), vec!["b"]),
        (f(Some(3_001), None), vec![]),
    ];
    for (filter, want) in cases {
        let got = s.dead_letters(&filter).expect("list");
        assert_eq!(keys(&got), want, "{filter}");
        assert_eq!(
            s.count_dead_letters(&filter).expect("count"),
            want.len() as u64
        );
    }
}

#[test]
fn a_purge_deletes_exactly_what_the_filter_lists_and_is_audited() {
    let s = SqliteState::open(Path::new(":memory:")).expect("opens");
    s.add_dead_letters(&[
        at(letter("rules", "invalid", "a"), "p", 1_000),
        at(letter("rules", "invalid", "b"), "p", 2_000),
        at(letter("out", "rejected", "c"), "p", 2_100),
        at(letter("rules", "trap", "d"), "q", 2_200),
        at(letter("rules", "invalid", "e"), "p", 9_000),
    ])
    .expect("add");
    let filter = DeadLetterFilter {
        stage: Some("rules".into()),
        until_us: Some(2_500),
        ..Default::default()
    };
    let listed = s.dead_letters(&filter).expect("list");
    assert_eq!(keys(&listed), ["a", "b", "d"]);
    assert_eq!(s.count_dead_letters(&filter).expect("count"), 3);
    let purged = s.purge_dead_letters(&filter, "tester").expect("purge");
    assert_eq!(purged, listed);
    let left = s.dead_letters(&DeadLetterFilter::default()).expect("list");
    assert_eq!(keys(&left), ["c", "e"]);

    let events = s.audit_events(None).expect("audit");
    let got: Vec<(&str, &str, &str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e.pipeline.as_str(),
                e.stage.as_str(),
                e.capability.as_str(),
                e.target.as_str(),
                e.detail.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "p",
                "",
                PURGE_CAPABILITY,
                "stage=rules until=1970-01-01T00:00:00.002500Z",
                "tester deleted 2 dead letters (ids 1-2; invalid 2)"
            ),
            (
                "q",
                "",
                PURGE_CAPABILITY,
                "stage=rules until=1970-01-01T00:00:00.002500Z",
                "tester deleted 1 dead letter (ids 4; trap 1)"
            ),
        ]
    );
    assert!(events.iter().all(|e| e.at_us > 0));

    // Nothing matches: nothing changes, nothing is recorded.
    assert!(
        s.purge_dead_letters(&filter, "tester")
            .expect("purge")
            .is_empty()
    );
    assert_eq!(s.audit_events(None).expect("audit").len(), 2);

    // A limit takes the oldest.
    let oldest = DeadLetterFilter {
        limit: Some(1),
        ..Default::default()
    };
    assert_eq!(s.count_dead_letters(&oldest).expect("count"), 1);
    let purged = s.purge_dead_letters(&oldest, "tester").expect("purge");
    assert_eq!(keys(&purged), ["c"]);
    assert_eq!(
        keys(&s.dead_letters(&DeadLetterFilter::default()).expect("list")),
        ["e"]
    );
}

#[test]
fn audit_events_are_written_many_in_one_transaction_with_their_own_times() {
    let s = SqliteState::open(Path::new(":memory:")).expect("opens");
    let event = |i: i64| AuditEvent {
        id: 0,
        at_us: 1_000 + i,
        pipeline: "p".into(),
        stage: "m".into(),
        plugin_digest: "d".into(),
        capability: "sql".into(),
        target: format!("dialect-of on connection `x{i}`"),
        detail: "the plugin is granted no SQL connection".into(),
    };
    let events: Vec<AuditEvent> = (0..300).map(event).collect();
    s.record_audits(&events).expect("written");
    s.record_audits(&[]).expect("nothing to write");
    let stored = s.audit_events(Some("p")).expect("audit");
    assert_eq!(stored.len(), 300);
    assert_eq!(stored[7].at_us, 1_007, "the time the denial happened");
    assert_eq!(stored[299].target, "dialect-of on connection `x299`");
}

#[test]
fn a_dead_letter_detail_is_cut_to_its_bound() {
    let s = SqliteState::open(Path::new(":memory:")).expect("opens");
    let mut long = letter("m", "rejected", "a");
    long.detail = "é".repeat(MAX_DETAIL_BYTES); // twice the bound in bytes
    let short = letter("m", "rejected", "b");
    s.add_dead_letters(&[long, short]).expect("add");
    let stored = s.dead_letters(&DeadLetterFilter::default()).expect("list");
    assert_eq!(
        stored[0].detail,
        format!(
            "{}…[{} bytes cut]",
            "é".repeat(MAX_DETAIL_BYTES / 2),
            MAX_DETAIL_BYTES
        )
    );
    assert_eq!(stored[1].detail, "rejected at m");
}

#[test]
fn a_purge_deletes_a_dead_letter_whose_record_no_longer_decodes() {
    let s = SqliteState::open(Path::new(":memory:")).expect("opens");
    s.add_dead_letters(&[letter("rules", "invalid", "a")])
        .expect("add");
    s.lock()
        .execute("UPDATE dead_letters SET record = '{not json'", [])
        .expect("damage");
    let all = DeadLetterFilter::default();
    assert!(matches!(
        s.dead_letters(&all),
        Err(StateError::Decode { .. })
    ));
    let purged = s.purge_dead_letters(&all, "tester").expect("purge");
    assert_eq!(
        purged.first().map(|l| l.record.clone()),
        Some(serde_json::json!("{not json"))
    );
    assert_eq!(s.count_dead_letters(&all).expect("count"), 0);
}

#[test]
fn filters_and_ids_read_as_an_operator_would_write_them() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(1_795_766_400_000_000), "2026-11-27T08:00:00Z");
    assert_eq!(rfc3339(951_868_799_000_001), "2000-02-29T23:59:59.000001Z");
    assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999999Z");
    assert_eq!(DeadLetterFilter::default().to_string(), "every dead letter");
    let f = DeadLetterFilter {
        pipeline: Some("p".into()),
        reason: Some("trap".into()),
        since_us: Some(1_795_766_400_000_000),
        limit: Some(3),
        ..Default::default()
    };
    assert_eq!(
        f.to_string(),
        "pipeline=p reason=trap since=2026-11-27T08:00:00Z limit=3"
    );
    assert_eq!(id_ranges(&[1, 2, 3, 5, 7, 8]), "1-3, 5, 7-8");
    let many: Vec<i64> = (0..50).map(|i| i * 2).collect();
    assert!(
        id_ranges(&many).ends_with("38 and 30 more ranges"),
        "{}",
        id_ranges(&many)
    );
}

/// The text each status is stored as, read back raw: what ferry wrote
/// before the statuses were types.
fn stored(path: &Path, sql: &str, id: i64) -> String {
    let conn = Connection::open(path).expect("raw");
    conn.query_row(sql, params![id], |r| r.get(0))
        .expect("stored text")
}

#[test]
fn run_statuses_and_outcomes_are_stored_as_the_text_ferry_always_wrote() {
    let (_dir, path) = temp();
    let s = SqliteState::open(&path).expect("opens");
    let sql = "SELECT status FROM runs WHERE id = ?1";
    let run = s.start_run("p").expect("run");
    assert_eq!(stored(&path, sql, run), "running");
    for (status, text) in [
        (RunStatus::Finished, "finished"),
        (
            RunStatus::Failed("source `a`: connection refused".into()),
            "failed: source `a`: connection refused",
        ),
    ] {
        s.finish_run(run, &status).expect("finish");
        assert_eq!(stored(&path, sql, run), text);
        assert_eq!(
            s.run(run).expect("read").map(|r| r.status),
            Some(status.clone())
        );
        assert_eq!(text.parse::<RunStatus>().expect("parses"), status);
        assert_eq!(status.to_string(), text);
    }
    for (outcome, text) in [
        (ScheduledOutcome::Stopped, "stopped"),
        (ScheduledOutcome::Failed("boom".into()), "failed: boom"),
    ] {
        let id = s
            .start_scheduled_run("p", "every 1s", 0, 0, 0)
            .expect("start");
        s.finish_scheduled_run(id, 1, &outcome, None, &Accounting::default())
            .expect("finish");
        let sql = "SELECT outcome FROM schedule_runs WHERE id = ?1";
        assert_eq!(stored(&path, sql, id), text);
        assert_eq!(text.parse::<ScheduledOutcome>().expect("parses"), outcome);
        assert_eq!(outcome.to_string(), text);
    }
    assert!("failed".parse::<ScheduledOutcome>().is_err());
    // A status ferry does not know fails its read, naming the value.
    Connection::open(&path)
        .expect("raw")
        .execute(
            "UPDATE runs SET status = 'paused' WHERE id = ?1",
            params![run],
        )
        .expect("raw write");
    let err = s
        .run(run)
        .expect_err("an unknown status is refused")
        .to_string();
    assert!(
        err.contains("unknown run status `paused`: ferry knows running, finished, failed: <why>"),
        "{err}"
    );
}
