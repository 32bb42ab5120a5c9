//! The `ferry` command: run pipelines, validate manifests, inspect dead
//! letters.
//!
//! Every subcommand is a thin layer over the library crates: `run` plans each
//! manifest with `ferry-pipeline` and drives it, drawing progress on a
//! terminal; `validate` stops after planning; `dlq` reads and purges the
//! dead letters in `ferry-state`. This file only parses the command line
//! and dispatches: each command lives in its own module (`manifests`:
//! validate, lock, run; `status`; `dlq`; `conflicts`; `audit` and
//! `audit_log`; `plugin`: the plugin-author commands).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

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
mod audit_log;
mod conflicts;
mod dlq;
mod manifests;
mod plugin;
mod replay;
mod scheduled;
mod serve;
mod states;
mod status;
mod summary;
mod times;

pub(crate) use dlq::plural;
pub(crate) use manifests::{manifest_paths, runtime};
pub(crate) use states::{open_state, operator, state_paths};
pub(crate) use summary::{print_summary, thousands};

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
        command: dlq::DlqCommand,
    },
    /// The two-way sync conflict queue: list, show, resolve.
    Conflicts {
        #[command(subcommand)]
        command: conflicts::ConflictsCommand,
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
        } => manifests::run(&path, quiet, !no_watch, wait),
        Command::Reload { path } => serve::reload(&path),
        Command::Status { path, json } => status::status(&path, json),
        Command::Validate { path } => manifests::validate(&path),
        Command::Audit { path, json } => audit::audit(&path, json),
        Command::Lock { path } => manifests::lock(&path),
        Command::AuditLog {
            path,
            pipeline,
            json,
        } => audit_log::audit_log(path.as_deref(), pipeline.as_deref(), json),
        Command::Dlq { command } => dlq::dlq(command),
        Command::Conflicts { command } => conflicts::conflicts(command),
        Command::Plugin { command } => plugin::dispatch(command),
    }
}
