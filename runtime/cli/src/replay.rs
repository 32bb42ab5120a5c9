//! `ferry dlq replay`: sends dead letters back through the stage that
//! refused them, after a fix (a new plugin version, a corrected config).
//!
//! For each stage that holds selected dead letters, the pipeline is planned
//! from its manifest as it is now and cut down to that stage and what lies
//! downstream of it ([`ferry_pipeline::replay_plan`]); the records stand in
//! for the source, so the source is neither opened nor moved. The replay
//! is an ordinary run (its own entry in the runs table, its accounting, its
//! commit). Its commit settles the replayed dead letters in the same
//! transaction ([`ferry_pipeline::Replay`]): a record delivered (or
//! filtered) loses its letter, one that fails again keeps its letter, the
//! same id, with the new stage, reason and detail and its attempts added
//! up; and an audit event names them and the outcome. A replay that fails
//! or is killed before that commit changes no letter: each record keeps
//! exactly one.
//!
//! A replay writes the pipeline's sinks and state, so it holds the
//! pipeline's lock ([`ferry_pipeline::owner`]) while it runs: with a
//! `ferry run` serving the pipeline it is refused, naming that process.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use ferry_host::Op;
use ferry_host::batch::{JsonRecord, batch_from_json};
use ferry_pipeline::{PipelineError, Replay, RunOptions};
use ferry_state::{DeadLetter, DeadLetterFilter, SqliteState, StateStore};

pub(crate) fn replay(path: &Path, filter: DeadLetterFilter) -> Result<ExitCode> {
    let runtime = crate::runtime()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut failed = false;
    let mut replayed_any = false;
    for manifest in crate::manifest_paths(path)? {
        let planned =
            ferry_manifest::load(&manifest).and_then(|m| ferry_pipeline::plan(m, &runtime));
        let plan = match planned {
            Ok(plan) => plan,
            Err(e) => {
                eprintln!("{e}");
                failed = true;
                continue;
            }
        };
        let _owner = ferry_pipeline::Ownership::take(
            &plan.manifest.pipeline.state,
            &plan.name,
            "ferry dlq replay",
        )?;
        let state: Arc<dyn StateStore> =
            Arc::new(SqliteState::open(&plan.manifest.pipeline.state)?);
        let scoped = DeadLetterFilter {
            pipeline: Some(plan.name.clone()),
            ..filter.clone()
        };
        let mut letters = state.dead_letters(&scoped)?;
        if let Some(limit) = filter.limit {
            letters.truncate(limit);
        }
        if letters.is_empty() {
            println!("{}: no dead letters match ({scoped})", plan.name);
            continue;
        }
        let mut by_stage: BTreeMap<String, Vec<DeadLetter>> = BTreeMap::new();
        for l in letters {
            by_stage.entry(l.stage.clone()).or_default().push(l);
        }
        for (stage, group) in by_stage {
            replayed_any = true;
            let sub = match ferry_pipeline::replay_plan(&plan, &stage) {
                Ok(sub) => sub,
                Err(e) => {
                    eprintln!(
                        "error: {}: {e}; its {} dead letters stay",
                        plan.name,
                        group.len()
                    );
                    failed = true;
                    continue;
                }
            };
            let records: Vec<JsonRecord> = group.iter().map(record).collect();
            let (mut options, _stop) = RunOptions::new();
            options.replay = Some(Replay {
                records: batch_from_json(&records),
                letters: group.iter().map(|l| l.id).collect(),
                stage: stage.clone(),
            });
            let result = rt.block_on(ferry_pipeline::run(sub, Arc::clone(&state), options));
            // The replay's one commit settled the letters, or nothing did.
            let (report, error) = match result {
                Ok(report) => (Some(report), None),
                Err(PipelineError::Failed { report, error }) => (Some(*report), Some(*error)),
                Err(e) => (None, Some(e)),
            };
            let settled = report.filter(|r| r.accounting.read > 0);
            if let Some(report) = &settled {
                let a = report.accounting;
                println!(
                    "{}: {}; {} dead letter{} left",
                    plan.name,
                    ferry_pipeline::replay_detail(&stage, report.run_id, &a),
                    a.dead_lettered,
                    if a.dead_lettered == 1 { "" } else { "s" }
                );
                if a.dead_lettered > 0 {
                    println!(
                        "  see why they failed again: ferry dlq list {} --stage {stage}",
                        manifest.display()
                    );
                }
            }
            if let Some(e) = error {
                let outcome = if settled.is_some() {
                    "its dead letters were settled as above".to_string()
                } else {
                    format!(
                        "nothing was settled: its {} dead letters stay as they were",
                        group.len()
                    )
                };
                eprintln!(
                    "error: {}: the replay through `{stage}` stopped: {e}; {outcome}",
                    plan.name
                );
                failed = true;
            }
        }
    }
    if !replayed_any && !failed {
        println!("nothing to replay");
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A dead letter's record as it entered its stage.
fn record(letter: &DeadLetter) -> JsonRecord {
    let mut fields = letter.record.as_object().cloned().unwrap_or_default();
    let op = match fields.remove("_op").as_ref().and_then(|v| v.as_str()) {
        Some("delete") => Op::Delete,
        _ => Op::Upsert,
    };
    JsonRecord {
        key: letter.key.clone(),
        op,
        fields,
    }
}
