//! The `ferry` command: run pipelines, validate manifests, inspect dead
//! letters.
//!
//! Every subcommand is a thin layer over the library crates: `run` plans each
//! manifest with `ferry-pipeline` and drives it, drawing progress on a
//! terminal; `validate` stops after planning; `dlq` reads and purges the
//! dead letters in `ferry-state`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use ferry_host::{Runtime, RuntimeOptions};
use ferry_manifest::Manifest;
use ferry_pipeline::RunReport;
use ferry_state::{
    Accounting, DeadLetter, DeadLetterFilter, PURGE_CAPABILITY, SqliteState, StateStore,
};

/// `println!` that ends the program quietly when stdout is closed (as in
/// `ferry dlq list | head`) instead of panicking.
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*)
            && e.kind() == std::io::ErrorKind::BrokenPipe
        {
            std::process::exit(0);
        }
    }};
}

mod audit;
mod conflicts;
mod plugin;
mod replay;
mod scheduled;
mod serve;
mod times;

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "Keeps systems in sync through sandboxed WebAssembly plugins"
)]
struct Cli {
    /// More log output (-v: info, -vv: debug). FERRY_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline of a manifest, or of every manifest in a folder.
    Run {
        /// A manifest (.toml) or a folder of manifests.
        path: PathBuf,
        /// No progress display, only the summary.
        #[arg(long, short)]
        quiet: bool,
        /// Do not watch the manifests and components for changes (SIGHUP
        /// and `ferry reload` still reload).
        #[arg(long)]
        no_watch: bool,
        /// When another process serves one of the pipelines, wait until it
        /// ends (saying so on stderr), then take over, instead of exiting 1.
        #[arg(long)]
        wait: bool,
    },
    /// Ask the `ferry run` serving a manifest (or folder) to reload it now.
    Reload {
        /// The manifest (.toml) or folder that `ferry run` was given.
        path: PathBuf,
    },
    /// Pipelines, whether a `ferry run` serves them, what they committed,
    /// their latest reloads, and for a scheduled pipeline its schedule, last
    /// run and next run.
    Status {
        /// A manifest (.toml) or a folder of manifests.
        path: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check manifests and their plugins without running anything.
    Validate {
        /// A manifest (.toml) or a folder of manifests.
        path: PathBuf,
    },
    /// Show, for a security review, what each plugin of a manifest may touch:
    /// its digest, its grants, the interfaces its component imports, and what
    /// would be refused. Exit 1 when anything would be.
    Audit {
        /// A manifest (.toml) or a folder of manifests.
        path: PathBuf,
        /// Print JSON: an object with a `plugins` array.
        #[arg(long)]
        json: bool,
    },
    /// The audit log: every access a plugin was refused at run time, every
    /// purge of dead letters, reload, and two-way sync conflict.
    AuditLog {
        /// The manifest (or folder of manifests) whose state to read, or a
        /// state database file. Default: ./.ferry/state.db.
        path: Option<PathBuf>,
        /// Only this pipeline.
        #[arg(long)]
        pipeline: Option<String>,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Pin each plugin's sha256 in a manifest: writes the digest of every
    /// plugin's current wasm file into its `sha256`, keeping the rest of the
    /// file as it is.
    Lock {
        /// A manifest (.toml) or a folder of manifests.
        path: PathBuf,
    },
    /// Write, build, test and inspect plugins.
    Plugin {
        #[command(subcommand)]
        command: plugin::PluginCommand,
    },
    /// Inspect and purge the dead-letter store.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// The two-way sync conflict queue: list, show, resolve.
    Conflicts {
        #[command(subcommand)]
        command: conflicts::ConflictsCommand,
    },
}

/// Which dead letters: the filters `dlq list` and `dlq purge` share.
#[derive(clap::Args)]
struct LetterFilter {
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
enum DlqCommand {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Run {
            path,
            quiet,
            no_watch,
            wait,
        } => run(&path, quiet, !no_watch, wait),
        Command::Reload { path } => serve::reload(&path),
        Command::Status { path, json } => status(&path, json),
        Command::Validate { path } => validate(&path),
        Command::Audit { path, json } => audit::audit(&path, json),
        Command::Lock { path } => lock(&path),
        Command::AuditLog {
            path,
            pipeline,
            json,
        } => audit_log(path.as_deref(), pipeline.as_deref(), json),
        Command::Dlq { command } => dlq(command),
        Command::Conflicts { command } => conflicts::conflicts(command),
        Command::Plugin { command } => plugin::dispatch(command),
    }
}

/// The manifests a path names: the file itself, or the `.toml` files of a
/// folder in name order.
pub(crate) fn manifest_paths(path: &Path) -> Result<Vec<PathBuf>> {
    if !path.exists() {
        bail!(
            "{} does not exist; give a manifest (.toml) or a folder of manifests",
            path.display()
        );
    }
    let files = ferry_pipeline::manifest_files(path)
        .with_context(|| format!("cannot read folder {}", path.display()))?;
    if files.is_empty() {
        bail!("no manifests (*.toml) in {}", path.display());
    }
    Ok(files)
}

pub(crate) fn runtime() -> Result<Runtime> {
    Ok(Runtime::new(RuntimeOptions {
        cache_dir: RuntimeOptions::default_cache_dir(),
    })?)
}

/// Loads and plans every manifest; prints every error of every manifest.
fn plan_all(path: &Path, runtime: &Runtime) -> Result<Option<Vec<ferry_pipeline::Plan>>> {
    let mut plans = Vec::new();
    let mut failed = false;
    for file in manifest_paths(path)? {
        let planned = ferry_manifest::load(&file).and_then(|m| ferry_pipeline::plan(m, runtime));
        match planned {
            Ok(p) => plans.push(p),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    Ok(if failed { None } else { Some(plans) })
}

fn validate(path: &Path) -> Result<ExitCode> {
    let runtime = runtime()?;
    let Some(plans) = plan_all(path, &runtime)? else {
        return Ok(ExitCode::FAILURE);
    };
    for p in &plans {
        let schedule = p
            .manifest
            .pipeline
            .schedule
            .as_ref()
            .map(|s| format!(", on schedule `{s}` (UTC)"))
            .unwrap_or_default();
        println!(
            "ok: {}: pipeline `{}`, {} stages{schedule}, every plugin loaded and checked",
            p.manifest.path.display(),
            p.name,
            p.stages.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn run(path: &Path, quiet: bool, watching: bool, wait: bool) -> Result<ExitCode> {
    let runtime = runtime()?;
    let Some(plans) = plan_all(path, &runtime)? else {
        return Ok(ExitCode::FAILURE);
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(serve::serve(path, plans, quiet, watching, wait))
}

fn status(path: &Path, json: bool) -> Result<ExitCode> {
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

pub(crate) fn print_summary(report: &RunReport, manifest: &Path, ok: bool) {
    let a = &report.accounting;
    let secs = report.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        a.read as f64 / secs
    } else {
        0.0
    };
    println!(
        "{}: {} in {:.2} s, {} records ({}/s)",
        report.pipeline,
        if ok { "finished" } else { "stopped early" },
        secs,
        thousands(a.read),
        thousands(rate as u64)
    );
    println!("  written        {:>10}", thousands(a.written));
    if a.dead_lettered > 0 {
        println!(
            "  dead-lettered  {:>10}   see why: ferry dlq list {}",
            thousands(a.dead_lettered),
            manifest.display()
        );
    } else {
        println!("  dead-lettered  {:>10}", 0);
    }
    println!("  filtered       {:>10}", thousands(a.filtered));
    if let Some(sync) = &report.sync {
        println!(
            "  synced         {:>10} to the left, {} to the right; {} changes needed no write (echoes, stale or alike)",
            thousands(sync.written_left),
            thousands(sync.written_right),
            thousands(sync.unchanged)
        );
        if sync.conflicts > 0 || sync.applied > 0 || sync.stale > 0 {
            println!(
                "  conflicts      {:>10}   {} settled by the strategy, {} waiting: ferry conflicts list {}{}",
                thousands(sync.conflicts),
                thousands(sync.conflicts - sync.queued),
                thousands(sync.queued),
                manifest.display(),
                if sync.applied > 0 {
                    format!("; {} decisions applied", sync.applied)
                } else {
                    String::new()
                }
            );
        }
        if sync.stale > 0 {
            println!(
                "  stale          {:>10}   decisions not applied: a side changed after the decision; decide again on the current versions: ferry conflicts list {}",
                thousands(sync.stale),
                manifest.display()
            );
        }
    }
    if report.rebuilds > 0 {
        println!(
            "  plugin instances rebuilt after a trap: {}",
            report.rebuilds
        );
    }
    if a.read == 0 {
        println!("  nothing new since the last committed checkpoint");
    }
}

pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn lock(path: &Path) -> Result<ExitCode> {
    for file in manifest_paths(path)? {
        match ferry_pipeline::lock(&file, ferry_pipeline::LockMode::All) {
            Ok(pinned) if pinned.is_empty() => {
                println!("{}: every digest already pinned", file.display())
            }
            Ok(pinned) => {
                for (name, digest) in pinned {
                    println!("{}: plugin `{name}`: sha256 = {digest}", file.display());
                }
            }
            Err(e) => {
                eprintln!("{e}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn audit_log(path: Option<&Path>, pipeline: Option<&str>, json: bool) -> Result<ExitCode> {
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

/// The state databases a `dlq` path names.
fn state_paths(path: Option<&Path>) -> Result<Vec<PathBuf>> {
    Ok(state_targets(path)?.into_iter().map(|(p, _)| p).collect())
}

/// The state databases a `dlq` path names, each with the pipelines of the
/// manifests that use it (none when the path names a database, or nothing).
fn state_targets(path: Option<&Path>) -> Result<Vec<(PathBuf, Vec<String>)>> {
    let Some(path) = path else {
        let default = PathBuf::from(".ferry/state.db");
        if default.is_file() {
            return Ok(vec![(default, Vec::new())]);
        }
        bail!(
            "no state database at ./.ferry/state.db; name the pipeline's manifest, e.g. `ferry dlq list examples/quickstart/pipeline.toml`"
        );
    };
    if path.is_file() && path.extension().is_none_or(|x| x != "toml") {
        return Ok(vec![(path.to_path_buf(), Vec::new())]);
    }
    let mut out: Vec<(PathBuf, Vec<String>)> = Vec::new();
    for file in manifest_paths(path)? {
        let m: Manifest = ferry_manifest::load(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
        let name = m.pipeline.name.clone();
        match out.iter_mut().find(|(p, _)| *p == m.pipeline.state) {
            Some((_, pipelines)) => pipelines.push(name),
            None => out.push((m.pipeline.state.clone(), vec![name])),
        }
    }
    Ok(out)
}

fn open_state(path: &Path) -> Result<SqliteState> {
    if !path.is_file() {
        bail!(
            "no state database at {} yet: the pipeline has not run",
            path.display()
        );
    }
    Ok(SqliteState::open(path)?)
}

fn dlq(command: DlqCommand) -> Result<ExitCode> {
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

fn print_letters(letters: &[DeadLetter]) {
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

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Who runs this command, for the audit log: `$USER` (or `$USERNAME`).
pub(crate) fn operator() -> Option<String> {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .ok()
        .filter(|u| !u.is_empty())
}

/// `ferry dlq purge`: counts without `--yes`, deletes with it.
fn purge(path: Option<&Path>, filter: DeadLetterFilter, yes: bool) -> Result<ExitCode> {
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
