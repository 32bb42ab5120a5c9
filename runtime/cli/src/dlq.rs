//! `ferry dlq`: list, show, count, purge and replay dead letters.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Subcommand;
use ferry_state::{DeadLetter, DeadLetterFilter, StateStore};

use crate::states::{open_state, operator, state_paths, state_targets};
use crate::{replay, times};

/// Which dead letters: the filters `dlq list` and `dlq purge` share.
#[derive(clap::Args)]
pub(crate) struct LetterFilter {
    /// Only this pipeline.
    #[arg(long)]
    pipeline: Option<String>,
    /// Only this stage.
    #[arg(long)]
    stage: Option<String>,
    /// Only this reason (invalid, rejected, trap, deadline, memory, fatal, ...).
    #[arg(long)]
    reason: Option<String>,
    /// Only those stored at or after this time: RFC 3339
    /// (2026-11-27T08:00:00Z, 2026-11-27) or a duration ago (30m, 2h, 7d).
    #[arg(long, value_name = "TIME", value_parser = times::parse_arg)]
    since: Option<i64>,
    /// Only those stored before this time: RFC 3339 or a duration ago
    /// (`--until 7d`: older than a week).
    #[arg(long, value_name = "TIME", value_parser = times::parse_arg)]
    until: Option<i64>,
    /// At most this many, the oldest.
    #[arg(long)]
    limit: Option<usize>,
}

impl LetterFilter {
    fn into_filter(self) -> Result<DeadLetterFilter> {
        if let (Some(since), Some(until)) = (self.since, self.until)
            && since >= until
        {
            bail!("--since must be before --until: nothing is stored in between");
        }
        Ok(DeadLetterFilter {
            pipeline: self.pipeline,
            stage: self.stage,
            reason: self.reason,
            since_us: self.since,
            until_us: self.until,
            limit: self.limit,
        })
    }
}

#[derive(Subcommand)]
pub(crate) enum DlqCommand {
    /// List dead letters, oldest first.
    List {
        /// The manifest (or folder of manifests) whose state to read, or a
        /// state database file. Default: ./.ferry/state.db.
        path: Option<PathBuf>,
        #[command(flatten)]
        filter: LetterFilter,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Show one dead letter in full.
    Show {
        /// Its id (from `ferry dlq list`).
        id: i64,
        /// The manifest, folder or state database (as for `list`).
        path: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete dead letters (the same filters as `list`), and record the purge
    /// in the audit log. Without --yes, nothing is deleted: it prints how
    /// many it would delete and exits 1. Given a manifest, only that
    /// manifest's pipeline is purged unless --pipeline says otherwise.
    Purge {
        /// The manifest (or folder of manifests) whose state to purge, or a
        /// state database file. Default: ./.ferry/state.db.
        path: Option<PathBuf>,
        #[command(flatten)]
        filter: LetterFilter,
        /// Delete them.
        #[arg(long)]
        yes: bool,
    },
    /// Send dead letters back through the stage that refused them (after a
    /// fix), and on to the sinks; those that fail again get new dead
    /// letters. The replayed ones are removed and the replay audited.
    Replay {
        /// The manifest (or folder of manifests) whose dead letters to
        /// replay, as it is now (with the fixed plugin or config).
        path: PathBuf,
        #[command(flatten)]
        filter: LetterFilter,
    },
}

pub(crate) fn dlq(command: DlqCommand) -> Result<ExitCode> {
    match command {
        DlqCommand::List { path, filter, json } => {
            let filter = filter.into_filter()?;
            let mut letters = Vec::new();
            for state in state_paths(path.as_deref())? {
                letters.extend(open_state(&state)?.dead_letters(&filter)?);
            }
            if let Some(limit) = filter.limit {
                letters.truncate(limit);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&letters)?);
            } else if letters.is_empty() {
                println!("no dead letters");
            } else {
                print_letters(&letters);
                println!(
                    "{} dead letters; `ferry dlq show <id>` shows one in full",
                    letters.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Purge { path, filter, yes } => {
            purge(path.as_deref(), filter.into_filter()?, yes)
        }
        DlqCommand::Replay { path, filter } => replay::replay(&path, filter.into_filter()?),
        DlqCommand::Show { id, path, json } => {
            for state in state_paths(path.as_deref())? {
                if let Some(l) = open_state(&state)?.dead_letter(id)? {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&l)?);
                    } else {
                        println!("dead letter {}", l.id);
                        println!("  pipeline  {}", l.pipeline);
                        println!(
                            "  stage     {} (plugin sha256 {})",
                            l.stage, l.plugin_digest
                        );
                        println!("  reason    {}", l.reason);
                        println!("  detail    {}", l.detail);
                        println!("  key       {}", l.key);
                        println!("  attempts  {}", l.attempts);
                        println!(
                            "  at        {}",
                            ferry_host::batch::rfc3339_micros(l.created_at_us)
                        );
                        println!("  record    {}", serde_json::to_string_pretty(&l.record)?);
                    }
                    return Ok(ExitCode::SUCCESS);
                }
            }
            bail!("no dead letter with id {id}")
        }
    }
}

pub(crate) fn print_letters(letters: &[DeadLetter]) {
    println!(
        "{:>6}  {:<22} {:<14} {:<10} {:<16} detail",
        "id", "pipeline", "stage", "reason", "key"
    );
    for l in letters {
        let detail: String = l.detail.chars().take(100).collect();
        println!(
            "{:>6}  {:<22} {:<14} {:<10} {:<16} {}",
            l.id, l.pipeline, l.stage, l.reason, l.key, detail
        );
    }
}

pub(crate) fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `ferry dlq purge`: counts without `--yes`, deletes with it.
pub(crate) fn purge(path: Option<&Path>, filter: DeadLetterFilter, yes: bool) -> Result<ExitCode> {
    // One purge per state database, or per pipeline when manifests name
    // them: a state file can be shared by the manifests of a folder.
    let mut jobs: Vec<(PathBuf, DeadLetterFilter)> = Vec::new();
    for (state, pipelines) in state_targets(path)? {
        if filter.pipeline.is_some() || pipelines.is_empty() {
            jobs.push((state, filter.clone()));
        } else {
            for p in pipelines {
                let scoped = DeadLetterFilter {
                    pipeline: Some(p),
                    ..filter.clone()
                };
                jobs.push((state.clone(), scoped));
            }
        }
    }
    let mut left = filter.limit.map(|l| l as u64);
    let by = match operator() {
        Some(user) => format!("`ferry dlq purge` run by {user}"),
        None => "`ferry dlq purge`".to_string(),
    };
    let mut total = 0u64;
    let mut deleted: Vec<(PathBuf, DeadLetterFilter, Vec<DeadLetter>)> = Vec::new();
    for (state, mut f) in jobs {
        if left == Some(0) {
            break;
        }
        f.limit = left.map(|l| usize::try_from(l).unwrap_or(usize::MAX));
        let store = open_state(&state)?;
        let n = if yes {
            let letters = store.purge_dead_letters(&f, &by)?;
            let n = letters.len() as u64;
            deleted.push((state, f, letters));
            n
        } else {
            let n = store.count_dead_letters(&f)?;
            println!(
                "would delete {n} dead letter{} from {} ({f})",
                plural(n),
                state.display()
            );
            n
        };
        total += n;
        left = left.map(|l| l.saturating_sub(n));
    }
    if !yes {
        println!("nothing deleted: run again with --yes to delete them");
        return Ok(ExitCode::FAILURE);
    }
    let all: Vec<DeadLetter> = deleted
        .iter()
        .flat_map(|(_, _, letters)| letters.iter().cloned())
        .collect();
    if !all.is_empty() {
        print_letters(&all);
    }
    for (state, f, letters) in &deleted {
        let n = letters.len() as u64;
        println!(
            "deleted {n} dead letter{} from {} ({f}){}",
            plural(n),
            state.display(),
            if n > 0 {
                "; recorded in the audit log (`ferry audit-log`)"
            } else {
                ""
            }
        );
    }
    if deleted.len() > 1 {
        println!("deleted {total} dead letter{} in all", plural(total));
    }
    Ok(ExitCode::SUCCESS)
}
