//! Scheduled pipelines (`mode = "schedule"`): a loop that waits for the
//! schedule's next tick, then runs the pipeline once, as `once` does (read
//! until every source is caught up, deliver, commit the checkpoints, end).
//!
//! - **Runs never overlap.** The loop waits for a run to end before it looks
//!   at the clock again. A run that lasts past one tick or more is followed
//!   at once by one run, not one per tick: the ticks it lasted past are
//!   served together (the next run reads everything that came meanwhile), and
//!   the run records how many there were (`missed`) and says so.
//! - **A run missed while ferry was down runs at start.** Every run is kept
//!   in the state store (`schedule_runs`: the tick it ran for, start, end,
//!   outcome, counts). When the loop starts, if the schedule had a tick after
//!   the last run's start, that tick was missed: one run starts at once,
//!   however many ticks were missed. A pipeline that never ran (no run in its
//!   state) runs at start too: nothing says its data was ever read.
//!   Otherwise the loop waits for the next tick.
//! - **Stopping.** A shutdown ends a wait at once; a run in progress drains
//!   as any run does (the records in flight are delivered and committed, the
//!   rest waits for the next run), and is recorded as `stopped`.
//! - **Reloading.** A new plan (a changed schedule, plugin or route) is taken
//!   between runs: during a wait, the wait starts over with the new schedule
//!   (the missed-run rule applies to it as at a start); during a run, when
//!   the run has ended.
//!
//! The loop reports each run's result and a line for the operator at each
//! step ("next run at …") to its [`Supervisor`](crate::Supervisor).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ferry_manifest::Schedule;
use ferry_state::{Accounting, ScheduledOutcome, ScheduledRun, StateStore, now_us};
use tokio::sync::mpsc;

use crate::PipelineError;
use crate::plan::Plan;
use crate::run::{RunOptions, RunReport, run_controlled};

/// At most this many missed ticks are counted (a cron schedule's ticks are
/// counted one by one).
const MISSED_CAP: u64 = 100_000;

/// The longest sleep: the wall clock is read again after it, so a clock
/// that is set, or a machine that was suspended, delays a run by at most
/// this.
const MAX_NAP: Duration = Duration::from_secs(30);

/// When a scheduled pipeline runs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextRun {
    /// Now.
    Now {
        /// The tick it runs for: the latest one that passed (now, for a
        /// pipeline that never ran).
        due_at_us: i64,
        /// How many ticks passed since the last run started (0 for a
        /// pipeline that never ran; capped).
        ticks: u64,
    },
    /// At this tick, microseconds since the Unix epoch.
    At(i64),
    /// Never: the schedule has no tick after the last run.
    Never,
}

/// The missed-run rule: given the last run (if any) and the time now, when
/// the next run is. A tick after the last run's start (or after the tick it
/// ran for, if it started early) that has passed means a run now; a
/// pipeline that never ran runs now.
pub fn next_run(schedule: &Schedule, last: Option<&ScheduledRun>, now_us: i64) -> NextRun {
    let Some(last) = last else {
        return NextRun::Now {
            due_at_us: now_us,
            ticks: 0,
        };
    };
    let after = last.started_at_us.max(last.due_at_us);
    match schedule.next_after(after) {
        None => NextRun::Never,
        Some(tick) if tick > now_us => NextRun::At(tick),
        Some(tick) => NextRun::Now {
            due_at_us: schedule.last_at_or_before(now_us).unwrap_or(tick),
            ticks: schedule.ticks_between(after, now_us, MISSED_CAP).max(1),
        },
    }
}

/// A wait as an operator reads it: `14m 2s`, `2h 5m`, `3d 4h`, `45s`
/// (rounded up to the second).
pub fn human_wait(wait: Duration) -> String {
    let s = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3_600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m {seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// `2026-11-27T08:15:00Z (in 14m 2s)`
pub fn when(at_us: i64, now_us: i64) -> String {
    let wait = Duration::from_micros(at_us.saturating_sub(now_us).max(0).unsigned_abs());
    format!(
        "{} (in {})",
        ferry_host::batch::rfc3339_micros(at_us),
        human_wait(wait)
    )
}

/// `1 tick`, `3 ticks`, `100000 ticks or more` (counts are capped).
fn ticks(n: u64) -> String {
    match n {
        1 => "1 tick".to_string(),
        n if n >= MISSED_CAP => format!("{n} ticks or more"),
        n => format!("{n} ticks"),
    }
}

/// What a scheduled pipeline's loop tells its supervisor.
pub(crate) enum LoopEvent {
    /// A line for the operator.
    Note(String),
    /// A run ended.
    Ran(Result<RunReport, PipelineError>),
}

/// How a wait for a tick ended.
enum Wake {
    Tick,
    Stop,
    Replan(Box<Plan>),
}

/// Why the loop is about to decide when to run next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum After {
    /// The loop (re)started: ticks that passed were missed while ferry was
    /// not running it.
    Start,
    /// It waited for the tick: the run is on time.
    Wait,
    /// A run ended: ticks that passed were missed during it.
    Run,
}

/// A scheduled pipeline's loop (see the module docs).
pub(crate) struct ScheduleLoop {
    pub plan: Plan,
    pub state: Arc<dyn StateStore>,
    pub options: RunOptions,
    /// New plans from a reload, taken between runs.
    pub replans: mpsc::UnboundedReceiver<Plan>,
    pub events: mpsc::UnboundedSender<LoopEvent>,
}

impl ScheduleLoop {
    fn note(&self, line: String) {
        // `ferry run` prints the notes; the log has them at debug level.
        tracing::debug!("{line}");
        let _ = self.events.send(LoopEvent::Note(line));
    }

    fn schedule(&self) -> Result<Schedule, PipelineError> {
        self.plan.manifest.pipeline.schedule.clone().ok_or_else(|| {
            PipelineError::Internal(format!(
                "pipeline `{}` runs on a schedule but has none",
                self.plan.name
            ))
        })
    }

    /// Takes the newest plan a reload sent, if any.
    fn take_replan(&mut self) -> bool {
        let mut newest = None;
        while let Ok(plan) = self.replans.try_recv() {
            newest = Some(plan);
        }
        match newest {
            Some(plan) => {
                self.plan = plan;
                true
            }
            None => false,
        }
    }

    /// Runs until shutdown. The report sums every run's; each run was
    /// reported on its own as it ended.
    pub(crate) async fn run(mut self) -> Result<RunReport, PipelineError> {
        let name = self.plan.name.clone();
        let began = Instant::now();
        let mut total = RunReport {
            pipeline: name.clone(),
            run_id: 0,
            accounting: Accounting::default(),
            elapsed: Duration::ZERO,
            rebuilds: 0,
            sync: None,
        };
        let mut after = After::Start;
        loop {
            if *self.options.shutdown.borrow() {
                break;
            }
            let schedule = self.schedule()?;
            let last = self.state.scheduled_runs(&name, 1)?.into_iter().next();
            let now = now_us();
            let (due_at_us, ticks) = match next_run(&schedule, last.as_ref(), now) {
                NextRun::Now { due_at_us, ticks } => {
                    match (after, &last) {
                        (_, None) => self.note(format!(
                            "{name}: first run on schedule `{schedule}`: no earlier run is recorded, so it runs now"
                        )),
                        (After::Start, Some(last)) => self.note(format!(
                            "{name}: {} of `{schedule}` passed since the last run started ({}); running once now",
                            self::ticks(ticks),
                            ferry_host::batch::rfc3339_micros(last.started_at_us)
                        )),
                        (After::Run, Some(_)) => self.note(format!(
                            "{name}: the last run lasted past {} of `{schedule}`; running once now for {}",
                            self::ticks(ticks),
                            if ticks == 1 { "it" } else { "all of them" }
                        )),
                        (After::Wait, Some(_)) => {}
                    }
                    (due_at_us, ticks)
                }
                NextRun::At(tick) => {
                    self.note(format!("{name}: next run at {}", when(tick, now)));
                    match self.wait_until(tick).await {
                        Wake::Stop => break,
                        Wake::Tick => after = After::Wait,
                        Wake::Replan(plan) => {
                            self.plan = *plan;
                            self.take_replan();
                            self.note(format!(
                                "{name}: reloaded; the schedule is `{}`",
                                self.schedule()?
                            ));
                            after = After::Start;
                        }
                    }
                    continue;
                }
                NextRun::Never => {
                    self.note(format!(
                        "{name}: `{schedule}` has no tick after the last run; nothing more will run until the manifest changes"
                    ));
                    match self.wait_until(i64::MAX).await {
                        Wake::Stop => break,
                        Wake::Tick => continue,
                        Wake::Replan(plan) => {
                            self.plan = *plan;
                            self.take_replan();
                            after = After::Start;
                            continue;
                        }
                    }
                }
            };

            let report = self.run_once(&schedule, due_at_us, ticks).await?;
            if let Some(report) = report {
                total.accounting.add(&report.accounting);
                total.rebuilds += report.rebuilds;
                total.run_id = report.run_id;
            }
            if *self.options.shutdown.borrow() {
                break;
            }
            if self.take_replan() {
                self.note(format!(
                    "{name}: reloaded; the schedule is `{}`",
                    self.schedule()?
                ));
                after = After::Start;
            } else {
                after = After::Run;
            }
        }
        self.options.status.next_run_us.store(0, Ordering::Relaxed);
        total.elapsed = began.elapsed();
        Ok(total)
    }

    /// One run for the tick `due_at_us` (`ticks` passed since the last
    /// one), recorded in the state store and reported. Returns its report,
    /// if it got far enough to have one.
    async fn run_once(
        &mut self,
        schedule: &Schedule,
        due_at_us: i64,
        ticks: u64,
    ) -> Result<Option<RunReport>, PipelineError> {
        let name = self.plan.name.clone();
        let status = Arc::clone(&self.options.status);
        status.next_run_us.store(0, Ordering::Relaxed);
        let id = self.state.start_scheduled_run(
            &name,
            schedule.as_str(),
            due_at_us,
            ticks.saturating_sub(1),
            now_us(),
        )?;
        let rebuilds_before = status.rebuilds.load(Ordering::Relaxed);
        // No swaps reach a scheduled run: a reload sends a new plan for the
        // next one instead.
        let (_, control) = crate::swap::swap_control();
        let mut result = run_controlled(
            self.plan.clone(),
            Arc::clone(&self.state),
            self.options.clone(),
            control,
        )
        .await;
        let stopped = *self.options.shutdown.borrow();
        let (outcome, run_id, accounting) = match &mut result {
            Ok(report) => {
                report.rebuilds = report.rebuilds.saturating_sub(rebuilds_before);
                let outcome = if stopped {
                    ScheduledOutcome::Stopped
                } else {
                    ScheduledOutcome::Finished
                };
                (outcome, Some(report.run_id), report.accounting)
            }
            Err(PipelineError::Failed { report, error }) => {
                report.rebuilds = report.rebuilds.saturating_sub(rebuilds_before);
                (
                    ScheduledOutcome::Failed(error.to_string()),
                    Some(report.run_id),
                    report.accounting,
                )
            }
            Err(e) => (
                ScheduledOutcome::Failed(e.to_string()),
                None,
                Accounting::default(),
            ),
        };
        let report = match &result {
            Ok(report) => Some(report.clone()),
            Err(PipelineError::Failed { report, .. }) => Some((**report).clone()),
            Err(_) => None,
        };
        let recorded = self
            .state
            .finish_scheduled_run(id, now_us(), &outcome, run_id, &accounting);
        let _ = self.events.send(LoopEvent::Ran(result));
        recorded?;
        Ok(report)
    }

    /// Waits until the wall clock reaches `tick_us`, a shutdown, or a new
    /// plan.
    async fn wait_until(&mut self, tick_us: i64) -> Wake {
        let status = Arc::clone(&self.options.status);
        if tick_us < i64::MAX {
            status.next_run_us.store(tick_us, Ordering::Relaxed);
        }
        let mut shutdown = self.options.shutdown.clone();
        let wake = loop {
            if *shutdown.borrow() {
                break Wake::Stop;
            }
            let now = now_us();
            if now >= tick_us {
                break Wake::Tick;
            }
            let nap =
                Duration::from_micros(tick_us.saturating_sub(now).unsigned_abs()).min(MAX_NAP);
            tokio::select! {
                _ = tokio::time::sleep(nap) => {}
                // A dropped sender can never ask to stop: sleep on.
                Ok(()) = shutdown.changed() => {}
                Some(plan) = self.replans.recv() => break Wake::Replan(Box::new(plan)),
            }
        };
        status.next_run_us.store(0, Ordering::Relaxed);
        wake
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    const MIN: i64 = 60_000_000;

    fn last(started_at_us: i64, due_at_us: i64) -> ScheduledRun {
        ScheduledRun {
            id: 1,
            pipeline: "p".into(),
            schedule: "*/15 * * * *".into(),
            due_at_us,
            missed: 0,
            started_at_us,
            finished_at_us: Some(started_at_us + 1),
            run_id: Some(1),
            accounting: Accounting::default(),
            outcome: ScheduledOutcome::Finished,
        }
    }

    fn every_15m() -> Schedule {
        "*/15 * * * *".parse().unwrap()
    }

    #[test]
    fn a_pipeline_that_never_ran_runs_now() {
        assert_eq!(
            next_run(&every_15m(), None, 7 * MIN),
            NextRun::Now {
                due_at_us: 7 * MIN,
                ticks: 0
            }
        );
    }

    #[test]
    fn without_a_missed_tick_the_next_tick_is_waited_for() {
        // Ran at 00:15 (a little late), now 00:20: next at 00:30.
        let s = every_15m();
        assert_eq!(
            next_run(&s, Some(&last(15 * MIN + 3, 15 * MIN)), 20 * MIN),
            NextRun::At(30 * MIN)
        );
        // A run that started a moment early (a clock set back) still counts
        // for its tick.
        assert_eq!(
            next_run(&s, Some(&last(15 * MIN - 5, 15 * MIN)), 20 * MIN),
            NextRun::At(30 * MIN)
        );
    }

    #[test]
    fn missed_ticks_make_one_run_now_for_the_latest() {
        let s = every_15m();
        // Last run at 00:15; ferry was down until 01:07: 00:30, 00:45 and
        // 01:00 were missed; one run now, for 01:00.
        assert_eq!(
            next_run(&s, Some(&last(15 * MIN, 15 * MIN)), 67 * MIN),
            NextRun::Now {
                due_at_us: 60 * MIN,
                ticks: 3
            }
        );
        // Exactly on the tick.
        assert_eq!(
            next_run(&s, Some(&last(15 * MIN, 15 * MIN)), 30 * MIN),
            NextRun::Now {
                due_at_us: 30 * MIN,
                ticks: 1
            }
        );
        let every: Schedule = "every 1s".parse().unwrap();
        assert_eq!(
            next_run(&every, Some(&last(0, 0)), 86_400_000_000),
            NextRun::Now {
                due_at_us: 86_400_000_000,
                ticks: 86_400
            }
        );
    }

    #[test]
    fn waits_read_as_an_operator_would_write_them() {
        assert_eq!(human_wait(Duration::from_secs(842)), "14m 2s");
        assert_eq!(human_wait(Duration::from_millis(300)), "1s");
        assert_eq!(human_wait(Duration::ZERO), "0s");
        assert_eq!(human_wait(Duration::from_secs(7_500)), "2h 5m");
        assert_eq!(
            human_wait(Duration::from_secs(3 * 86_400 + 4 * 3_600)),
            "3d 4h"
        );
        assert_eq!(
            when(1_795_766_400_000_000, 1_795_766_400_000_000 - 842_000_000),
            "2026-11-27T08:00:00Z (in 14m 2s)"
        );
    }
}
