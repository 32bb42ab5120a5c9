//! `ferry audit-log`: the audit events of the state databases a path names.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use ferry_state::{PURGE_CAPABILITY, StateStore};

use crate::states::{open_state, state_paths};

pub(crate) fn audit_log(
    path: Option<&Path>,
    pipeline: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    let mut events = Vec::new();
    for state in state_paths(path)? {
        events.extend(open_state(&state)?.audit_events(pipeline)?);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&events)?);
    } else if events.is_empty() {
        println!("no denials recorded");
    } else {
        let mut purges = 0;
        let mut reloads = 0;
        let mut conflicts = 0;
        for e in &events {
            let at = ferry_host::batch::rfc3339_micros(e.at_us);
            if e.capability == PURGE_CAPABILITY && e.stage.is_empty() {
                purges += 1;
                println!(
                    "{at}  {}  {}: {}  ({})",
                    e.pipeline, e.capability, e.target, e.detail
                );
                continue;
            }
            if e.capability == "reload" {
                reloads += 1;
                println!("{at}  {}  reload {}: {}", e.pipeline, e.target, e.detail);
                continue;
            }
            if e.capability == ferry_state::CONFLICT_CAPABILITY {
                conflicts += 1;
                let d: serde_json::Value = serde_json::from_str(&e.detail).unwrap_or_default();
                let text = |k: &str| {
                    d[k].as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| d[k].to_string())
                };
                println!(
                    "{at}  {}  conflict on key {}: {} ({}), outcome {}, by {}",
                    e.pipeline,
                    e.target,
                    text("event"),
                    text("strategy"),
                    text("outcome"),
                    text("decided_by"),
                );
                continue;
            }
            println!(
                "{}  {} / {} ({})  {}: {}  ({})",
                at,
                e.pipeline,
                e.stage,
                &e.plugin_digest[..e.plugin_digest.len().min(12)],
                e.capability,
                e.target,
                e.detail
            );
        }
        let mut summary = format!("{} denials", events.len() - purges - reloads - conflicts);
        if conflicts > 0 {
            summary.push_str(&format!(
                ", {conflicts} two-way sync conflict events (`--json` shows both versions and the ancestor)"
            ));
        }
        if purges > 0 {
            summary.push_str(&format!(", {purges} dead-letter purges"));
        }
        if reloads > 0 {
            summary.push_str(&format!(", {reloads} reloads"));
        }
        println!("{summary}");
    }
    Ok(ExitCode::SUCCESS)
}
