//! What `ferry status` says about a scheduled pipeline: its schedule, its
//! last run (start, duration, outcome, counts) and its next run, from the
//! state store's `schedule_runs` and the missed-run rule the loop applies
//! (`ferry_pipeline::next_run`).

use std::time::Duration;

use anyhow::Result;
use ferry_host::batch::rfc3339_micros;
use ferry_manifest::{Manifest, Schedule};
use ferry_pipeline::NextRun;
use ferry_pipeline::schedule::{human_wait, when};
use ferry_state::{ScheduledOutcome, ScheduledRun, SqliteState, StateStore, now_us};
use serde_json::{Value, json};

use crate::plural;

/// A scheduled pipeline's status.
pub(crate) struct ScheduleStatus {
    schedule: Schedule,
    last: Option<ScheduledRun>,
    next: NextRun,
    /// Whether a `ferry run` serves the pipeline.
    served: bool,
    now_us: i64,
}

/// The status of `manifest`'s pipeline if it is scheduled; `state` is its
/// state store, if the file exists.
pub(crate) fn status(
    manifest: &Manifest,
    state: Option<&SqliteState>,
    served: bool,
) -> Result<Option<ScheduleStatus>> {
    let Some(schedule) = manifest.pipeline.schedule.clone() else {
        return Ok(None);
    };
    let last = match state {
        Some(state) => state
            .scheduled_runs(&manifest.pipeline.name, 1)?
            .into_iter()
            .next(),
        None => None,
    };
    let now_us = now_us();
    let next = ferry_pipeline::next_run(&schedule, last.as_ref(), now_us);
    Ok(Some(ScheduleStatus {
        schedule,
        last,
        next,
        served,
        now_us,
    }))
}

/// A time to the second, for the text lines (the JSON keeps microseconds).
fn at(us: i64) -> String {
    rfc3339_micros(us.div_euclid(1_000_000) * 1_000_000)
}

fn duration(us: i64) -> Duration {
    Duration::from_micros(us.max(0).unsigned_abs())
}

impl ScheduleStatus {
    /// Whether the last run is still going: it has no end, and a `ferry
    /// run` serves the pipeline (otherwise ferry stopped during it).
    fn running(&self) -> bool {
        self.served
            && self.last.as_ref().is_some_and(|l| {
                l.finished_at_us.is_none() && l.outcome == ScheduledOutcome::Running
            })
    }

    /// The lines of `ferry status`, indented as its others.
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut out = vec![format!("  schedule  {} (UTC)", self.schedule)];
        let last = match &self.last {
            None => "none yet".to_string(),
            Some(l) if l.finished_at_us.is_none() => {
                if self.running() {
                    format!(
                        "running since {} ({})",
                        at(l.started_at_us),
                        human_wait(duration(self.now_us - l.started_at_us))
                    )
                } else {
                    format!(
                        "interrupted: started {}, ferry stopped before it ended",
                        at(l.started_at_us)
                    )
                }
            }
            Some(l) => {
                let a = &l.accounting;
                let took = duration(l.finished_at_us.unwrap_or(l.started_at_us) - l.started_at_us);
                let mut line = format!(
                    "{}, {:.2} s, {}: read={} written={} dead_lettered={} filtered={}",
                    at(l.started_at_us),
                    took.as_secs_f64(),
                    l.outcome,
                    a.read,
                    a.written,
                    a.dead_lettered,
                    a.filtered
                );
                if l.missed > 0 {
                    line.push_str(&format!(
                        " (it also served {} missed tick{})",
                        l.missed,
                        plural(l.missed)
                    ));
                }
                line
            }
        };
        out.push(format!("  last run  {last}"));
        let next = match self.next {
            NextRun::At(at) => when(at, self.now_us),
            NextRun::Never => "never: the schedule has no tick after the last run".to_string(),
            NextRun::Now { ticks, .. } if self.running() => format!(
                "as soon as the current run ends ({ticks} tick{} passed during it)",
                plural(ticks)
            ),
            NextRun::Now { .. } if self.served => "now".to_string(),
            NextRun::Now { ticks: 0, .. } => {
                "as soon as `ferry run` serves it (it never ran)".to_string()
            }
            NextRun::Now { ticks, .. } => format!(
                "as soon as `ferry run` serves it ({ticks} tick{} missed since the last run started)",
                plural(ticks)
            ),
        };
        out.push(format!("  next run  {next}"));
        out
    }

    /// The `schedule` object of `ferry status --json`.
    pub(crate) fn json(&self) -> Value {
        let last = self.last.as_ref().map(|l| {
            let a = &l.accounting;
            let outcome = if l.finished_at_us.is_none() && !self.running() {
                ScheduledOutcome::Interrupted.to_string()
            } else {
                l.outcome.to_string()
            };
            json!({
                "id": l.id,
                "schedule": l.schedule,
                "due_at": rfc3339_micros(l.due_at_us),
                "due_at_us": l.due_at_us,
                "started_at": rfc3339_micros(l.started_at_us),
                "started_at_us": l.started_at_us,
                "finished_at": l.finished_at_us.map(rfc3339_micros),
                "finished_at_us": l.finished_at_us,
                "duration_ms": l.finished_at_us.map(|f| (f - l.started_at_us) / 1000),
                "outcome": outcome,
                "missed": l.missed,
                "run_id": l.run_id,
                "accounting": {
                    "read": a.read,
                    "written": a.written,
                    "dead_lettered": a.dead_lettered,
                    "filtered": a.filtered,
                },
            })
        });
        let next = match self.next {
            NextRun::At(at) => json!({
                "at": rfc3339_micros(at),
                "at_us": at,
                "in_ms": (at - self.now_us).max(0) / 1000,
                "now": false,
                "missed_ticks": 0,
            }),
            NextRun::Now { ticks, .. } => json!({
                "at": null,
                "at_us": null,
                "in_ms": 0,
                "now": true,
                "missed_ticks": ticks,
            }),
            NextRun::Never => json!({
                "at": null,
                "at_us": null,
                "in_ms": null,
                "now": false,
                "missed_ticks": 0,
            }),
        };
        json!({
            "expression": self.schedule.as_str(),
            "timezone": "UTC",
            "running": self.running(),
            "last_run": last,
            "next_run": next,
        })
    }
}
