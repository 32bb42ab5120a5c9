//! What changed between a running pipeline and its new plan: its shape
//! (what a swap cannot change, so a difference restarts it), whether a
//! stage's plugin or settings changed (a swap), and how a swap changes a
//! plugin's grants (for the audit log).

use std::fmt::Write as _;

use ferry_host::InstanceSpec;

use crate::plan::{Plan, PlannedStage};

/// Everything about a pipeline that a swap cannot change: a difference
/// restarts it.
pub(super) fn shape(plan: &Plan) -> String {
    let p = &plan.manifest.pipeline;
    let mut s = format!(
        "mode={:?} schedule={:?} batch={:?} poll={:?} state={}",
        p.mode,
        p.schedule.as_ref().map(|s| s.as_str()),
        p.batch,
        p.poll_interval,
        p.state.display()
    );
    for stage in &plan.stages {
        let _ = write!(
            s,
            "|{}:{:?}:{:?}:{:?}",
            stage.name, stage.kind, stage.on_invalid, stage.outputs
        );
        if plan.manifest.sync.is_some() {
            // A sync's plugins are not swapped: any change restarts it.
            let _ = write!(s, ":{}:{:?}", stage.component.digest(), stage.spec);
        }
    }
    if let Some(sync) = &plan.manifest.sync {
        let _ = write!(s, "|sync={sync:?}");
    }
    s
}

/// Why two shapes differ, in a few words.
pub(super) fn shape_change(old: &[PlannedStage], new: &Plan) -> String {
    let old_names: Vec<&str> = old.iter().map(|s| s.name.as_str()).collect();
    let new_names: Vec<&str> = new.stages.iter().map(|s| s.name.as_str()).collect();
    if old_names != new_names {
        return format!(
            "its stages changed ({} -> {})",
            old_names.join(", "),
            new_names.join(", ")
        );
    }
    if old
        .iter()
        .zip(&new.stages)
        .any(|(a, b)| format!("{:?}", a.outputs) != format!("{:?}", b.outputs))
    {
        return "its routes changed".to_string();
    }
    "its pipeline settings changed (mode, schedule, batch, poll interval, state or on_invalid)"
        .to_string()
}

/// Whether a stage's component or settings changed (it is swapped, or a
/// scheduled pipeline's next run takes it).
pub(super) fn stage_changed(old: &PlannedStage, new: &PlannedStage) -> bool {
    old.component.digest() != new.component.digest() || !old.spec.same_settings(&new.spec)
}

/// How the grants of a stage changed, and whether they widened.
pub fn grant_diff(old: &InstanceSpec, new: &InstanceSpec) -> (Vec<String>, bool) {
    let mut lines = Vec::new();
    let mut widened = false;
    let file = |g: &ferry_host::FileGrant| {
        format!(
            "files: {} as {} ({})",
            g.host.display(),
            g.guest,
            if g.writable { "rw" } else { "ro" }
        )
    };
    for g in &new.files {
        if !old.files.contains(g) {
            lines.push(format!("+ {}", file(g)));
            widened = true;
        }
    }
    for g in &old.files {
        if !new.files.contains(g) {
            lines.push(format!("- {}", file(g)));
        }
    }
    for (name, value) in &new.env {
        match old.env.iter().find(|(n, _)| n == name) {
            None => {
                lines.push(format!("+ env: {name}"));
                widened = true;
            }
            Some((_, v)) if v != value => lines.push(format!("~ env: {name} (new value)")),
            Some(_) => {}
        }
    }
    for (name, _) in &old.env {
        if !new.env.iter().any(|(n, _)| n == name) {
            lines.push(format!("- env: {name}"));
        }
    }
    let rule = |r: &ferry_host::NetRule| {
        format!(
            "network: {:?}://{}{}",
            r.protocol,
            r.host,
            r.port.map(|p| format!(":{p}")).unwrap_or_default()
        )
        .to_lowercase()
    };
    for r in new.network.rules() {
        if !old.network.rules().contains(r) {
            lines.push(format!("+ {}", rule(r)));
            widened = true;
        }
    }
    for r in old.network.rules() {
        if !new.network.rules().contains(r) {
            lines.push(format!("- {}", rule(r)));
        }
    }
    for c in &new.sql {
        match old.sql.iter().find(|o| o.name == c.name) {
            None => {
                lines.push(format!("+ sql: {}", c.name));
                widened = true;
            }
            // The same name now reaching another database is a new grant.
            Some(o) if o.url != c.url || o.dialect != c.dialect => {
                lines.push(format!("~ sql: {} now reaches another database", c.name));
                widened = true;
            }
            Some(o) if o != c => lines.push(format!("~ sql: {} (new settings)", c.name)),
            Some(_) => {}
        }
    }
    for c in &old.sql {
        if !new.sql.iter().any(|n| n.name == c.name) {
            lines.push(format!("- sql: {}", c.name));
        }
    }
    let mut limit = |what: &str, old: u128, new: u128, unit: &str| {
        if old != new {
            lines.push(format!("~ {what}: {old} -> {new} {unit}"));
            widened |= new > old;
        }
    };
    limit(
        "memory",
        (old.memory_bytes >> 20) as u128,
        (new.memory_bytes >> 20) as u128,
        "MiB",
    );
    limit(
        "timeout",
        old.timeout.as_millis(),
        new.timeout.as_millis(),
        "ms",
    );
    limit(
        "max output",
        (old.max_output_bytes >> 20) as u128,
        (new.max_output_bytes >> 20) as u128,
        "MiB",
    );
    match (old.fuel, new.fuel) {
        (a, b) if a == b => {}
        (Some(a), Some(b)) => limit("fuel", a as u128, b as u128, "per call"),
        (Some(a), None) => {
            lines.push(format!("~ fuel: {a} -> unlimited"));
            widened = true;
        }
        (None, Some(b)) => lines.push(format!("~ fuel: unlimited -> {b}")),
        (None, None) => {}
    }
    (lines, widened)
}
