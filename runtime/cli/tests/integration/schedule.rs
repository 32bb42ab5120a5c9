//! Scheduled pipelines (`mode = "schedule"`): each tick runs the pipeline
//! once, runs never overlap, a run missed while ferry was down runs once at
//! start, and `ferry status` shows the last and the next run.
//!
//! Timing is only ever asserted as order (a run starts after the one
//! before it ended) or with bounds of a minute.

use std::process::Child;
use std::time::{Duration, Instant};

use ferry_manifest::Schedule;
use ferry_pipeline::{EndKind, ReloadChange, ReloadOutcome, Supervisor};
use ferry_state::{Accounting, ScheduledOutcome, ScheduledRun, StateStore, now_us};

use crate::support::{
    Sandbox, ferry, file_pipeline, interrupt, runtime, spawn_ferry, with_plugins,
};

const DAY_US: i64 = 86_400_000_000;

/// The pipeline of `file_pipeline` (file source `in/a.jsonl` through
/// `steps` to `out/out.jsonl`) on `schedule`.
fn scheduled(schedule: &str, steps: &[&str], extra: &str) -> String {
    file_pipeline(r#"{ path = "/in/a.jsonl" }"#, steps, extra).replace(
        "name = \"t\"\n",
        &format!("name = \"t\"\nmode = \"schedule\"\nschedule = \"{schedule}\"\n"),
    )
}

fn records(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("{{\"id\":\"{k}\"}}\n"))
        .collect()
}

fn written(s: &Sandbox) -> Vec<String> {
    s.jsonl("out/out.jsonl")
        .iter()
        .map(|r| r["id"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The scheduled runs of pipeline `t`, oldest first.
fn runs(s: &Sandbox) -> Vec<ScheduledRun> {
    if !s.path(".ferry/state.db").exists() {
        return Vec::new();
    }
    let mut runs = s
        .state()
        .scheduled_runs("t", 10_000)
        .expect("scheduled runs");
    runs.reverse();
    runs
}

fn finished(s: &Sandbox) -> Vec<ScheduledRun> {
    runs(s)
        .into_iter()
        .filter(|r| r.finished_at_us.is_some())
        .collect()
}

/// Runs never overlap: each starts after the one before it ended, for a
/// later tick.
fn assert_in_order(runs: &[ScheduledRun]) {
    for pair in runs.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let end = a.finished_at_us.expect("an earlier run ended");
        assert!(
            b.started_at_us >= end,
            "run {} started before run {} ended:\n{a:#?}\n{b:#?}",
            b.id,
            a.id
        );
        assert!(
            b.due_at_us > a.due_at_us,
            "two runs for one tick:\n{a:#?}\n{b:#?}"
        );
    }
    for r in runs {
        assert!(
            r.due_at_us <= r.started_at_us,
            "ran before its tick: {r:#?}"
        );
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio")
}

/// Waits (a minute at most) until `check` holds, collecting what the
/// supervisor reports meanwhile.
async fn until(
    sup: &mut Supervisor,
    notes: &mut Vec<String>,
    what: &str,
    check: impl Fn(&Supervisor) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check(sup) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; notes so far:\n{}",
            notes.join("\n")
        );
        sup.reap().await;
        notes.extend(sup.take_notes());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The condition can turn true (a run recorded in the state) before the
    // loop's notes about it were reaped: collect them once more.
    sup.reap().await;
    notes.extend(sup.take_notes());
}

fn start(s: &Sandbox) -> Supervisor {
    let mut sup = Supervisor::new(runtime().clone());
    sup.start(s.plan().expect("the manifest plans"))
        .expect("starts");
    sup
}

#[test]
fn each_tick_runs_once_and_picks_up_what_was_appended() {
    let s = Sandbox::new();
    s.write("in/a.jsonl", &records(&["a", "b"]));
    s.manifest(&scheduled("every 1s", &[], ""));
    let mut notes = Vec::new();
    let ended = rt().block_on(async {
        let mut sup = start(&s);
        // A pipeline that never ran runs at start.
        until(&mut sup, &mut notes, "the first run", |_| {
            finished(&s)
                .first()
                .is_some_and(|r| r.accounting.written == 2)
        })
        .await;
        s.append("in/a.jsonl", &records(&["c"]));
        until(&mut sup, &mut notes, "a later run to read `c`", |_| {
            finished(&s)
                .iter()
                .map(|r| r.accounting.written)
                .sum::<u64>()
                == 3
        })
        .await;
        // And one more, after it, that finds nothing new.
        let n = finished(&s).len();
        until(&mut sup, &mut notes, "one more run", |_| {
            finished(&s).len() > n
        })
        .await;
        sup.shutdown();
        let mut ended = sup.wait().await;
        notes.extend(sup.take_notes());
        ended.retain(|e| e.pipeline == "t");
        ended
    });

    assert_eq!(written(&s), ["a", "b", "c"]);
    let runs = finished(&s);
    assert_in_order(&runs);
    let writes: Vec<u64> = runs.iter().map(|r| r.accounting.written).collect();
    assert_eq!(writes[0], 2, "{runs:#?}");
    assert_eq!(writes.iter().sum::<u64>(), 3, "{runs:#?}");
    assert_eq!(writes.iter().filter(|w| **w == 1).count(), 1, "{runs:#?}");
    assert!(runs.iter().all(|r| r.schedule == "every 1s"));
    assert!(
        runs.iter().all(|r| matches!(
            r.outcome,
            ScheduledOutcome::Finished | ScheduledOutcome::Stopped
        )),
        "{runs:#?}"
    );
    assert!(runs.iter().all(|r| r.run_id.is_some()), "{runs:#?}");
    // The first run ran because none had; the others waited for a tick.
    assert!(
        notes[0].starts_with("t: first run on schedule `every 1s`"),
        "{notes:#?}"
    );
    assert!(
        notes.iter().any(|n| n.starts_with("t: next run at ")),
        "{notes:#?}"
    );

    // Each run ended in an `Ended` of its own, then the loop.
    let kinds: Vec<EndKind> = ended.iter().map(|e| e.kind).collect();
    assert_eq!(kinds.last(), Some(&EndKind::ScheduleStopped), "{kinds:?}");
    let each: Vec<&ferry_pipeline::Ended> = ended
        .iter()
        .filter(|e| e.kind == EndKind::ScheduledRun)
        .collect();
    assert_eq!(each.len(), runs.len());
    for (e, r) in each.iter().zip(&runs) {
        let report = e.result.as_ref().expect("each run succeeded");
        assert_eq!(Some(report.run_id), r.run_id);
        assert_eq!(report.accounting, r.accounting);
    }
    let total = ended
        .last()
        .and_then(|e| e.result.as_ref().ok())
        .expect("a sum");
    assert_eq!(total.accounting.written, 3);
}

#[test]
fn a_run_that_lasts_past_ticks_delays_the_next_which_serves_them_all() {
    let s = Sandbox::new();
    s.write("in/a.jsonl", &records(&["slow", "x"]));
    // The mapper spins on `slow` until its 1.5 s deadline, twice (the batch,
    // then the record alone): the first run lasts past at least 2 ticks.
    let extra = "\n[plugins.map]\nkind = \"mapper\"\nwasm = \"{FAULTY_MAPPER}\"\n\
                 config = { spin_keys = [\"slow\"] }\ngrants = { timeout_ms = 1500 }\n";
    s.manifest(&scheduled("every 1s", &["map"], extra));
    let mut notes = Vec::new();
    rt().block_on(async {
        let mut sup = start(&s);
        until(&mut sup, &mut notes, "two runs", |_| {
            finished(&s).len() >= 2
        })
        .await;
        sup.shutdown();
        sup.wait().await;
        notes.extend(sup.take_notes());
    });

    let runs = finished(&s);
    assert_in_order(&runs);
    let (slow, next) = (&runs[0], &runs[1]);
    assert_eq!(
        (slow.accounting.written, slow.accounting.dead_lettered),
        (1, 1),
        "{slow:#?}"
    );
    assert!(
        slow.finished_at_us.expect("ended") - slow.started_at_us >= 1_500_000,
        "{slow:#?}"
    );
    // Ticks passed during the slow run: the next one started when it
    // ended, not before, once for all of them, for the latest.
    assert!(next.missed >= 1, "{next:#?}");
    assert!(next.due_at_us > slow.started_at_us, "{next:#?}");
    assert_eq!(next.accounting.read, 0, "{next:#?}");
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("t: the last run lasted past ")
                && n.ends_with("running once now for all of them")),
        "{notes:#?}"
    );
    let dl = s.dead_letters();
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0].reason, "deadline");
}

#[test]
fn a_reload_gives_the_loop_its_new_schedule_between_runs() {
    let s = Sandbox::new();
    s.write("in/a.jsonl", &records(&["a"]));
    s.manifest(&scheduled("0 0 1 1 *", &[], ""));
    let mut notes = Vec::new();
    rt().block_on(async {
        let mut sup = start(&s);
        // The first run, then a wait for next New Year.
        until(&mut sup, &mut notes, "the first run and a wait", |sup| {
            finished(&s).len() == 1
                && sup
                    .running()
                    .iter()
                    .any(|(_, _, st)| st.next_run_us.load(std::sync::atomic::Ordering::Relaxed) > 0)
        })
        .await;
        s.manifest(&scheduled("every 1s", &[], ""));
        let event = sup.reload(&[s.path("pipeline.toml")], "test").await;
        assert_eq!(event.outcome, ReloadOutcome::Applied, "{event}");
        match &event.changes[..] {
            [ReloadChange::Restarted { pipeline, why }] => {
                assert_eq!(pipeline, "t");
                assert!(why.contains("schedule `every 1s`"), "{why}");
            }
            other => panic!("one restart expected: {other:?}"),
        }
        // A tick of the new schedule passed since the first run started:
        // the wait ends and the next run starts, on the new schedule.
        until(&mut sup, &mut notes, "a run on the new schedule", |_| {
            finished(&s).iter().any(|r| r.schedule == "every 1s")
        })
        .await;
        sup.shutdown();
        sup.wait().await;
    });
    let runs = finished(&s);
    assert_in_order(&runs);
    assert_eq!(runs[0].schedule, "0 0 1 1 *");
    assert!(
        notes
            .iter()
            .any(|n| n == "t: reloaded; the schedule is `every 1s`"),
        "{notes:#?}"
    );
}

/// `ferry run p.toml` in the sandbox, in the background.
fn ferry_run(s: &Sandbox) -> Child {
    spawn_ferry(&["run", "pipeline.toml"], &s.path(""))
}

fn wait_for(what: &str, check: &dyn Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status_json(s: &Sandbox) -> serde_json::Value {
    let out = ferry(&["status", "pipeline.toml", "--json"], &s.path("")).expect("status");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    v["pipelines"][0].clone()
}

#[test]
fn a_run_missed_while_ferry_was_down_runs_once_at_start_and_status_shows_it() {
    let s = Sandbox::new();
    s.write("in/a.jsonl", &records(&["a", "b"]));
    // Once a year, at midnight UTC on January 1st.
    s.manifest(&scheduled("0 0 1 1 *", &[], ""));
    let yearly: Schedule = "0 0 1 1 *".parse().expect("a schedule");

    // Never run: status says it runs when served.
    let out = ferry(&["status", "pipeline.toml"], &s.path("")).expect("status");
    assert!(
        out.stdout.contains("  schedule  0 0 1 1 * (UTC)\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("  last run  none yet\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("  next run  as soon as `ferry run` serves it (it never ran)\n"),
        "{}",
        out.stdout
    );
    let p = status_json(&s);
    assert_eq!(p["mode"], "schedule");
    assert_eq!(p["schedule"]["expression"], "0 0 1 1 *");
    assert_eq!(p["schedule"]["last_run"], serde_json::Value::Null);
    assert_eq!(p["schedule"]["next_run"]["now"], true);

    // The last run was over three years ago: at least two New Years were
    // missed since.
    let past = now_us() - 3 * 366 * DAY_US;
    {
        let state = s.state();
        let id = state
            .start_scheduled_run("t", "0 0 1 1 *", past, 0, past)
            .expect("seeded");
        state
            .finish_scheduled_run(
                id,
                past + 1_000_000,
                &ScheduledOutcome::Finished,
                None,
                &Accounting::default(),
            )
            .expect("seeded");
    }
    let missed = yearly.ticks_between(past, now_us(), 100);
    assert!(missed >= 2);

    let child = ferry_run(&s);
    wait_for("the catch-up run", &|| {
        finished(&s).len() == 2 && written(&s) == ["a", "b"]
    });
    let catch_up = finished(&s).pop().expect("a run");
    assert_eq!(catch_up.missed, missed - 1, "{catch_up:#?}");
    assert_eq!(
        Some(catch_up.due_at_us),
        yearly.last_at_or_before(catch_up.started_at_us),
        "{catch_up:#?}"
    );
    let next = yearly.next_after(now_us()).expect("a next New Year");

    // Served: status shows the last and the next run.
    wait_for("the pid file", &|| s.path(".ferry/state.pid").exists());
    let out = ferry(&["status", "pipeline.toml"], &s.path("")).expect("status");
    let text = out.stdout;
    assert!(
        text.contains("  running   served by ferry run, pid"),
        "{text}"
    );
    assert!(
        text.contains(", finished: read=2 written=2 dead_lettered=0 filtered=0 (it also served "),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "  next run  {} (in ",
            ferry_host::batch::rfc3339_micros(next)
        )),
        "{text}"
    );
    let p = status_json(&s);
    let last = &p["schedule"]["last_run"];
    assert_eq!(last["outcome"], "finished");
    assert_eq!(last["accounting"]["written"], 2);
    assert_eq!(last["started_at_us"], catch_up.started_at_us);
    assert_eq!(last["missed"], missed - 1);
    assert_eq!(p["schedule"]["next_run"]["at_us"], next);
    assert_eq!(
        p["schedule"]["next_run"]["at"],
        ferry_host::batch::rfc3339_micros(next)
    );
    assert_eq!(p["schedule"]["next_run"]["now"], false);

    // One run for all the missed ticks, not one each: still two.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(runs(&s).len(), 2);

    // Ctrl-C ends the wait at once: it exits 0 with the sum of its runs.
    let mut child = child;
    interrupt(&child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("try_wait").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill(); // if it did not stop: the assertion below says so
    let out = child.wait_with_output().expect("exits");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("t: finished in "), "{stdout}");
    assert!(
        stdout.ends_with("accounting: read=2 written=2 dead_lettered=0 filtered=0\n"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!(
            "t: {missed} ticks of `0 0 1 1 *` passed since the last run started"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "t: next run at {} (in ",
            ferry_host::batch::rfc3339_micros(next)
        )),
        "{stderr}"
    );
    assert_eq!(runs(&s).len(), 2);
}

#[test]
fn schedule_mistakes_are_manifest_errors_with_their_place_and_a_fix() {
    let s = Sandbox::new();
    let base = |pipeline: &str| {
        with_plugins(&file_pipeline(r#"{ path = "/in/a.jsonl" }"#, &[], ""))
            .replace("name = \"t\"\n", &format!("name = \"t\"\n{pipeline}"))
    };
    s.write(
        "m/a-bad-field.toml",
        &base("mode = \"schedule\"\nschedule = \"*/15 25 * * *\"\n"),
    );
    s.write("m/b-no-mode.toml", &base("schedule = \"every 15m\"\n"));
    s.write("m/c-no-schedule.toml", &base("mode = \"schedule\"\n"));
    s.write(
        "m/d-bad-interval.toml",
        &base("mode = \"schedule\"\nschedule = \"every 15 minutes\"\n"),
    );
    let out = ferry(&["validate", "m"], s.dir.path()).expect("ferry runs");
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let text = out.stderr.replace(crate::support::plugins::FILE, "{FILE}");
    assert!(text.contains("m/a-bad-field.toml:5:18"), "{text}");
    assert!(text.contains("m/b-no-mode.toml:4:12"), "{text}");
    assert!(text.contains("m/c-no-schedule.toml:4:8"), "{text}");
    assert!(text.contains("m/d-bad-interval.toml:5:19"), "{text}");
    insta::assert_snapshot!("schedule_mistakes", text);
}
