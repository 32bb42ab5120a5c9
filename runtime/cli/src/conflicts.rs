//! `ferry conflicts list|show|resolve`: the two-way sync conflict queue.
//!
//! A conflict waits here when the sync's strategy is `manual`, or when a
//! strategy or resolver could not decide. Its key is not synced until it
//! is resolved. `resolve` records the decision with the versions it was
//! made on (the queued ones, as `show` prints them) and audits it; the
//! running sync (or the next `ferry run`) writes the chosen version to both
//! sides and unblocks the key — if both sides still hold those versions.
//! If either changed meanwhile the decision is stale: the conflict waits
//! again with the current versions (`show` says why), to be decided anew.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use ferry_pipeline::sync::record::Version;
use ferry_state::{
    AuditEvent, CONFLICT_CAPABILITY, Choice, Conflict, ConflictFilter, ConflictStatus, Decision,
    StateStore,
};

#[derive(Subcommand)]
pub(crate) enum ConflictsCommand {
    /// List conflicts waiting for a decision (with --all, also the decided
    /// and resolved ones), oldest first.
    List {
        /// The manifest (or folder of manifests) whose state to read, or a
        /// state database file. Default: ./.ferry/state.db.
        path: Option<PathBuf>,
        /// Only this pipeline.
        #[arg(long)]
        pipeline: Option<String>,
        /// Also list decided and resolved conflicts.
        #[arg(long)]
        all: bool,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Show one conflict: both versions, their common ancestor, and which
    /// fields differ.
    Show {
        /// Its id (from `ferry conflicts list`).
        id: i64,
        /// The manifest, folder or state database (as for `list`).
        path: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Decide a conflict: take the left version, the right one, or a merged
    /// record you give. The sync writes it to both sides and syncs the key
    /// again.
    Resolve {
        /// Its id.
        id: i64,
        /// The manifest, folder or state database.
        path: Option<PathBuf>,
        /// Which version wins.
        #[arg(long, value_enum)]
        take: Take,
        /// With `--take merged`: the record as a JSON object of fields
        /// (`null` deletes the key), or `@file.json`.
        #[arg(long, value_name = "JSON")]
        merged: Option<String>,
        /// Who decides (recorded in the audit log). Default: $USER.
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Take {
    Left,
    Right,
    Merged,
}

impl From<Take> for Choice {
    fn from(take: Take) -> Choice {
        match take {
            Take::Left => Choice::Left,
            Take::Right => Choice::Right,
            Take::Merged => Choice::Merged,
        }
    }
}

/// A stored version as people read it (`null`: no version, or deleted).
fn plain(v: &serde_json::Value) -> serde_json::Value {
    Version::from_stored(v).map_or(serde_json::Value::Null, |v| v.to_plain())
}

fn open(path: Option<&Path>) -> Result<Vec<ferry_state::SqliteState>> {
    crate::state_paths(path)?
        .into_iter()
        .map(|p| crate::open_state(&p))
        .collect()
}

fn find(path: Option<&Path>, id: i64) -> Result<(ferry_state::SqliteState, Conflict)> {
    for state in open(path)? {
        if let Some(c) = state.conflict(id)? {
            return Ok((state, c));
        }
    }
    bail!("no conflict with id {id}; `ferry conflicts list` shows the open ones")
}

fn when(us: Option<i64>) -> String {
    us.map(ferry_host::batch::rfc3339_micros)
        .unwrap_or_else(|| "-".to_string())
}

pub(crate) fn conflicts(command: ConflictsCommand) -> Result<ExitCode> {
    match command {
        ConflictsCommand::List {
            path,
            pipeline,
            all,
            json,
        } => {
            let filter = ConflictFilter {
                pipeline,
                statuses: if all {
                    Vec::new()
                } else {
                    vec![ConflictStatus::Open, ConflictStatus::Decided]
                },
                key: None,
            };
            let mut found = Vec::new();
            for state in open(path.as_deref())? {
                found.extend(state.conflicts(&filter)?);
            }
            if json {
                let out: Vec<serde_json::Value> = found.iter().map(conflict_json).collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else if found.is_empty() {
                println!("no conflicts waiting");
            } else {
                println!(
                    "{:>6}  {:<22} {:<16} {:<9} {:<27} reason",
                    "id", "pipeline", "key", "status", "detected"
                );
                for c in &found {
                    let reason = match &c.reopened {
                        Some(_) => format!("decision stale, decide again: {}", c.reason),
                        None => c.reason.clone(),
                    };
                    let reason: String = reason.chars().take(80).collect();
                    println!(
                        "{:>6}  {:<22} {:<16} {:<9} {:<27} {}",
                        c.id,
                        c.pipeline,
                        c.key,
                        c.status,
                        when(Some(c.detected_at_us)),
                        reason
                    );
                }
                println!(
                    "{} conflicts; `ferry conflicts show <id>` shows one, `ferry conflicts resolve <id> --take left|right|merged` decides it",
                    found.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ConflictsCommand::Show { id, path, json } => {
            let (_, c) = find(path.as_deref(), id)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&conflict_json(&c))?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("conflict {} ({})", c.id, c.status);
            println!("  pipeline  {}", c.pipeline);
            println!("  key       {}", c.key);
            println!("  strategy  {}", c.strategy);
            println!("  reason    {}", c.reason);
            println!("  detected  {}", when(Some(c.detected_at_us)));
            if let Some(d) = &c.decision {
                println!(
                    "  decided   {d} by {} at {}",
                    c.decided_by.as_deref().unwrap_or("?"),
                    when(c.decided_at_us)
                );
            }
            if c.resolved_at_us.is_some() {
                println!("  applied   {}", when(c.resolved_at_us));
            }
            if let Some(why) = &c.reopened {
                println!("  reopened  {why}");
            }
            if c.status == ConflictStatus::Open {
                println!(
                    "  versions  as the sync last fetched them; a decision is applied only while both sides still hold them"
                );
            }
            let (l, r, a) = (plain(&c.left), plain(&c.right), plain(&c.ancestor));
            let width = names_width(&c);
            println!(
                "  {:<width$} {:<24} {:<24} {:<24}",
                "field", "ancestor", "left", "right"
            );
            let mut names: Vec<String> = Vec::new();
            for v in [&a, &l, &r] {
                for k in v.as_object().into_iter().flat_map(|o| o.keys()) {
                    if !names.contains(k) {
                        names.push(k.clone());
                    }
                }
            }
            let cell = |v: &serde_json::Value, k: &str| -> String {
                if v.is_null() {
                    return "(absent)".to_string();
                }
                v.get(k).map_or("-".to_string(), |x| match x {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
            };
            for k in &names {
                let (ac, lc, rc) = (cell(&a, k), cell(&l, k), cell(&r, k));
                let mark = if lc != rc { "*" } else { " " };
                println!("{mark} {k:<width$} {ac:<24} {lc:<24} {rc:<24}");
            }
            if names.is_empty() {
                println!(
                    "  (no fields: {})",
                    if l.is_null() {
                        "deleted on the left"
                    } else {
                        "deleted on the right"
                    }
                );
            }
            println!("  * the sides differ");
            Ok(ExitCode::SUCCESS)
        }
        ConflictsCommand::Resolve {
            id,
            path,
            take,
            merged,
            by,
        } => {
            let (state, c) = find(path.as_deref(), id)?;
            if c.status != ConflictStatus::Open {
                bail!(
                    "conflict {id} is {} already{}",
                    c.status,
                    c.decision
                        .as_ref()
                        .map(|d| format!(" (take {d})"))
                        .unwrap_or_default()
                );
            }
            let merged_stored = match (take, merged) {
                (Take::Merged, None) => bail!(
                    "--take merged needs --merged '<JSON object of fields>' (or @file.json); `ferry conflicts show {id} --json` prints both versions to start from"
                ),
                (Take::Merged, Some(text)) => {
                    let text = match text.strip_prefix('@') {
                        Some(file) => std::fs::read_to_string(file)
                            .with_context(|| format!("reading {file}"))?,
                        None => text,
                    };
                    let value: serde_json::Value =
                        serde_json::from_str(&text).context("--merged is not valid JSON")?;
                    if value.is_null() {
                        Some(Version::absent().to_stored())
                    } else {
                        Some(
                            ferry_pipeline::sync::merged_from_json(&c, &value)
                                .map_err(anyhow::Error::msg)?,
                        )
                    }
                }
                (_, Some(_)) => bail!("--merged goes with --take merged"),
                (_, None) => None,
            };
            let who = by
                .or_else(crate::operator)
                .unwrap_or_else(|| "unknown".to_string());
            let decided_by = format!("{who} (ferry conflicts resolve)");
            let result = match take {
                Take::Left => plain(&c.left),
                Take::Right => plain(&c.right),
                Take::Merged => merged_stored.as_ref().map(plain).unwrap_or_default(),
            };
            let detail = serde_json::json!({
                "event": "decided",
                "conflict": id,
                "key": c.key,
                "left": plain(&c.left),
                "right": plain(&c.right),
                "ancestor": plain(&c.ancestor),
                "strategy": c.strategy,
                "outcome": Choice::from(take).as_str(),
                "result": result,
                "decided_by": decided_by,
                "at": ferry_host::batch::rfc3339_micros(ferry_state::now_us()),
            });
            let audit = AuditEvent {
                id: 0,
                at_us: 0,
                pipeline: c.pipeline.clone(),
                stage: "sync".into(),
                plugin_digest: String::new(),
                capability: CONFLICT_CAPABILITY.into(),
                target: c.key.clone(),
                detail: detail.to_string(),
            };
            // The decision is made on the queued versions read above (the
            // ones `show` prints and the audit event holds): the sync applies
            // it only while both sides still hold them.
            let decision = Decision {
                decision: take.into(),
                merged: merged_stored,
                left: c.left.clone(),
                right: c.right.clone(),
                by: decided_by,
            };
            if !state.decide_conflict(id, &decision, &audit)? {
                bail!("conflict {id} was decided by someone else meanwhile");
            }
            println!(
                "conflict {id} (key {}): take {}; the sync writes it to both sides on its next pass (a running `ferry run` picks it up; otherwise the next run does) if both still hold the versions `ferry conflicts show {id}` printed; if either changed since, nothing is written and the conflict waits again with the current versions",
                c.key,
                Choice::from(take)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The width of the field column of `show`: the longest field name.
fn names_width(c: &Conflict) -> usize {
    [&c.left, &c.right, &c.ancestor]
        .iter()
        .map(|v| plain(v))
        .flat_map(|v| {
            v.as_object()
                .map(|o| o.keys().map(String::len).collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .max()
        .unwrap_or(0)
        .max(16)
}

fn conflict_json(c: &Conflict) -> serde_json::Value {
    serde_json::json!({
        "id": c.id,
        "pipeline": c.pipeline,
        "key": c.key,
        "status": c.status,
        "strategy": c.strategy,
        "reason": c.reason,
        "detected_at": when(Some(c.detected_at_us)),
        "left": plain(&c.left),
        "right": plain(&c.right),
        "ancestor": plain(&c.ancestor),
        "decision": c.decision,
        "merged": c.merged.as_ref().map(plain),
        "decided_by": c.decided_by,
        "decided_at": c.decided_at_us.map(|t| when(Some(t))),
        "resolved_at": c.resolved_at_us.map(|t| when(Some(t))),
        "decided_on": c.decided_left.as_ref().map(|l| serde_json::json!({
            "left": plain(l),
            "right": c.decided_right.as_ref().map(plain),
        })),
        "reopened": c.reopened,
    })
}
