//! `ferry status`: each pipeline's committed accounting, last runs, schedule,
//! owner and what waits (dead letters, conflicts).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use ferry_state::{Accounting, SqliteState, StateStore};

use crate::{manifest_paths, scheduled};

pub(crate) fn status(path: &Path, json: bool) -> Result<ExitCode> {
    let mut out = Vec::new();
    for manifest in manifest_paths(path)? {
        let m = ferry_manifest::load(&manifest).map_err(|e| anyhow::anyhow!("{e}"))?;
        let name = m.pipeline.name.clone();
        let state_path = m.pipeline.state.clone();
        // The lock decides whether a process serves the pipeline; its file
        // says which.
        let holder = ferry_pipeline::owner::holder(&state_path, &name)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let pid = holder.as_ref().map(|h| h.pid);
        let state = if state_path.exists() {
            Some(SqliteState::open(&state_path)?)
        } else {
            None
        };
        let (accounting, reloads) = if let Some(state) = &state {
            let accounting = state.total_accounting(&name)?;
            let mut reloads: Vec<ferry_state::AuditEvent> = state
                .audit_events(Some(&name))?
                .into_iter()
                .filter(|e| e.capability == "reload")
                .collect();
            let keep = reloads.len().saturating_sub(10);
            reloads.drain(..keep);
            (accounting, reloads)
        } else {
            (Accounting::default(), Vec::new())
        };
        let schedule = scheduled::status(&m, state.as_ref(), pid.is_some())?;
        let mode = m.pipeline.mode;
        // A two-way sync: how many conflicts wait for a person.
        let waiting = match (&m.sync, &state) {
            (Some(_), Some(state)) => Some(
                state
                    .conflicts(&ferry_state::ConflictFilter {
                        pipeline: Some(name.clone()),
                        statuses: vec![ferry_state::ConflictStatus::Open],
                        key: None,
                    })?
                    .len(),
            ),
            (Some(_), None) => Some(0),
            _ => None,
        };
        out.push((
            name, manifest, holder, accounting, reloads, mode, schedule, waiting,
        ));
    }
    if json {
        let items: Vec<serde_json::Value> = out
            .iter()
            .map(|(name, manifest, holder, a, reloads, mode, schedule, waiting)| {
                serde_json::json!({
                    "pipeline": name,
                    "lock": holder.as_ref().map(|h| serde_json::json!({
                        "command": h.command,
                        "host": h.host,
                        "pid": h.pid,
                        "since": h.since,
                    })),
                    "conflicts_waiting": waiting,
                    "manifest": manifest.display().to_string(),
                    "served_by_pid": holder.as_ref().map(|h| h.pid),
                    "mode": mode.as_str(),
                    "schedule": schedule.as_ref().map(scheduled::ScheduleStatus::json),
                    "accounting": { "read": a.read, "written": a.written, "dead_lettered": a.dead_lettered, "filtered": a.filtered },
                    "reloads": reloads.iter().map(|e| serde_json::json!({
                        "at_us": e.at_us,
                        "outcome": e.target,
                        "stage": e.stage,
                        "digest": e.plugin_digest,
                        "detail": e.detail,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "pipelines": items }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    for (name, manifest, holder, a, reloads, _, schedule, waiting) in &out {
        println!("{name} ({})", manifest.display());
        match holder {
            Some(h) => println!(
                "  running   served by {}, pid {} on host {}, since {} (it holds the pipeline's lock)",
                h.command, h.pid, h.host, h.since
            ),
            None => println!("  running   no (no process holds the pipeline's lock)"),
        }
        println!(
            "  committed read={} written={} dead_lettered={} filtered={}",
            a.read, a.written, a.dead_lettered, a.filtered
        );
        if let Some(n) = waiting {
            let how = if *n > 0 {
                format!(": ferry conflicts list {}", manifest.display())
            } else {
                String::new()
            };
            println!("  conflicts {n} waiting for a decision{how}");
        }
        for line in schedule.iter().flat_map(scheduled::ScheduleStatus::lines) {
            println!("{line}");
        }
        if reloads.is_empty() {
            println!("  reloads   none");
        } else {
            println!("  reloads (latest last)");
            for e in reloads {
                println!(
                    "    {} {:<11} {}",
                    ferry_host::batch::rfc3339_micros(e.at_us),
                    e.target,
                    e.detail
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
