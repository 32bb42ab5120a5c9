//! The `ferry` command: run pipelines, validate manifests, inspect dead
//! letters.
//!
//! Every subcommand is a thin layer over the library crates: `run` plans each
//! manifest with `ferry-pipeline` and drives it, drawing progress on a
//! terminal; `validate` stops after planning; `dlq` reads `ferry-state`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use ferry_host::{Runtime, RuntimeOptions};
use ferry_manifest::Manifest;
use ferry_pipeline::{LiveStatus, PipelineError, RunOptions, RunReport};
use ferry_state::{Accounting, DeadLetterFilter, SqliteState, StateStore};

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
mod plugin;
mod polyglot;
mod scaffold;

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
    /// The audit log: every access a plugin was refused at run time.
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
    /// Inspect the dead-letter store.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// List dead letters, oldest first.
    List {
        /// The manifest (or folder of manifests) whose state to read, or a
        /// state database file. Default: ./.ferry/state.db.
        path: Option<PathBuf>,
        /// Only this pipeline.
        #[arg(long)]
        pipeline: Option<String>,
        /// Only this stage.
        #[arg(long)]
        stage: Option<String>,
        /// Only this reason (invalid, rejected, trap, deadline, memory, fatal, ...).
        #[arg(long)]
        reason: Option<String>,
        /// At most this many.
        #[arg(long)]
        limit: Option<usize>,
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
        Command::Run { path, quiet } => run(&path, quiet),
        Command::Validate { path } => validate(&path),
        Command::Audit { path, json } => audit::audit(&path, json),
        Command::Lock { path } => lock(&path),
        Command::AuditLog {
            path,
            pipeline,
            json,
        } => audit_log(path.as_deref(), pipeline.as_deref(), json),
        Command::Dlq { command } => dlq(command),
        Command::Plugin { command } => plugin::dispatch(command),
    }
}

/// The manifests a path names: the file itself, or the `.toml` files of a
/// folder in name order.
pub(crate) fn manifest_paths(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot read folder {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
            .collect();
        files.sort();
        if files.is_empty() {
            bail!("no manifests (*.toml) in {}", path.display());
        }
        Ok(files)
    } else if path.exists() {
        Ok(vec![path.to_path_buf()])
    } else {
        bail!(
            "{} does not exist; give a manifest (.toml) or a folder of manifests",
            path.display()
        )
    }
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
        println!(
            "ok: {}: pipeline `{}`, {} stages, every plugin loaded and checked",
            p.manifest.path.display(),
            p.name,
            p.stages.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn run(path: &Path, quiet: bool) -> Result<ExitCode> {
    let runtime = runtime()?;
    let Some(plans) = plan_all(path, &runtime)? else {
        return Ok(ExitCode::FAILURE);
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(run_plans(plans, quiet))
}

struct Running {
    name: String,
    manifest: PathBuf,
    status: Arc<LiveStatus>,
}

async fn run_plans(plans: Vec<ferry_pipeline::Plan>, quiet: bool) -> Result<ExitCode> {
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "\nstopping: finishing the records in flight and committing (Ctrl-C again to abort)"
            );
            let _ = shutdown_tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });

    let mut running = Vec::new();
    let mut handles = Vec::new();
    for plan in plans {
        let state_path = plan.manifest.pipeline.state.clone();
        let state: Arc<dyn StateStore> = Arc::new(SqliteState::open(&state_path)?);
        let options = RunOptions {
            shutdown: shutdown_rx.clone(),
            status: Arc::new(LiveStatus::default()),
        };
        running.push(Running {
            name: plan.name.clone(),
            manifest: plan.manifest.path.clone(),
            status: Arc::clone(&options.status),
        });
        handles.push(tokio::spawn(ferry_pipeline::run(plan, state, options)));
    }

    let show_progress = !quiet && std::io::stderr().is_terminal();
    let progress = show_progress.then(|| {
        let statuses: Vec<(String, Arc<LiveStatus>)> = running
            .iter()
            .map(|r| (r.name.clone(), Arc::clone(&r.status)))
            .collect();
        tokio::spawn(draw_progress(statuses))
    });

    let mut total = Accounting::default();
    let mut failed = false;
    for (handle, r) in handles.into_iter().zip(&running) {
        let result = handle
            .await
            .map_err(|e| anyhow::anyhow!("pipeline task died: {e}"))?;
        let (report, error) = match result {
            Ok(report) => (Some(report), None),
            Err(PipelineError::Failed { report, error }) => (Some(*report), Some(*error)),
            Err(e) => (None, Some(e)),
        };
        if let Some(p) = &progress {
            p.abort();
            eprint!("\r\x1b[2K");
        }
        if let Some(report) = &report {
            print_summary(report, &r.manifest, error.is_none());
            total.add(&report.accounting);
        }
        if let Some(e) = error {
            failed = true;
            eprintln!("error: pipeline `{}`: {e}", r.name);
        }
    }
    println!("{total}");
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_summary(report: &RunReport, manifest: &Path, ok: bool) {
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

async fn draw_progress(statuses: Vec<(String, Arc<LiveStatus>)>) {
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let secs = start.elapsed().as_secs_f64().max(0.001);
        let line: Vec<String> = statuses
            .iter()
            .map(|(name, s)| {
                let read = s.read.load(Ordering::Relaxed);
                let c = s.committed();
                format!(
                    "{name}: {} read, {} written, {} dead-lettered, {} filtered, {}/s",
                    thousands(read),
                    thousands(c.written),
                    thousands(c.dead_lettered),
                    thousands(c.filtered),
                    thousands((read as f64 / secs) as u64)
                )
            })
            .collect();
        eprint!("\r\x1b[2K{}", line.join(" | "));
    }
}

fn thousands(n: u64) -> String {
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
        for e in &events {
            println!(
                "{}  {} / {} ({})  {}: {}  ({})",
                ferry_host::batch::rfc3339_micros(e.at_us),
                e.pipeline,
                e.stage,
                &e.plugin_digest[..e.plugin_digest.len().min(12)],
                e.capability,
                e.target,
                e.detail
            );
        }
        println!("{} denials", events.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// The state databases a `dlq` path names.
fn state_paths(path: Option<&Path>) -> Result<Vec<PathBuf>> {
    let Some(path) = path else {
        let default = PathBuf::from(".ferry/state.db");
        if default.is_file() {
            return Ok(vec![default]);
        }
        bail!(
            "no state database at ./.ferry/state.db; name the pipeline's manifest, e.g. `ferry dlq list examples/quickstart/pipeline.toml`"
        );
    };
    if path.is_file() && path.extension().is_none_or(|x| x != "toml") {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    for file in manifest_paths(path)? {
        let m: Manifest = ferry_manifest::load(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
        if !out.contains(&m.pipeline.state) {
            out.push(m.pipeline.state.clone());
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
        DlqCommand::List {
            path,
            pipeline,
            stage,
            reason,
            limit,
            json,
        } => {
            let filter = DeadLetterFilter {
                pipeline,
                stage,
                reason,
                limit,
            };
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
                println!(
                    "{:>6}  {:<22} {:<14} {:<10} {:<16} detail",
                    "id", "pipeline", "stage", "reason", "key"
                );
                for l in &letters {
                    let detail: String = l.detail.chars().take(100).collect();
                    println!(
                        "{:>6}  {:<22} {:<14} {:<10} {:<16} {}",
                        l.id, l.pipeline, l.stage, l.reason, l.key, detail
                    );
                }
                println!(
                    "{} dead letters; `ferry dlq show <id>` shows one in full",
                    letters.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
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
