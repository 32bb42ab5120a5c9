//! `ferry run`'s loop: runs the pipelines under a [`Supervisor`], watches the
//! manifests and the components they reference, and reloads on a change,
//! on `SIGHUP` or on `ferry reload`.
//!
//! A change is what changes a digest: the watcher's events (debounced, so
//! an editor's write-then-rename counts once) only lead to a reload when the
//! sha256 of a manifest or of a component it references differs from the
//! last one seen. `SIGHUP` always reloads (and may end in `no-change`).
//!
//! A scheduled pipeline (`mode = "schedule"`) does not end: between its
//! runs `ferry run` prints when the next one starts ("t: next run at …",
//! on stderr, and on the progress line), and each run's summary as it ends;
//! the `accounting:` line at exit sums them all. Exit status 1 then means a
//! pipeline failed, or a scheduled pipeline's latest run did.
//!
//! While it runs, `ferry run` keeps its process id in `<state>.pid` beside
//! each pipeline's state database, which is how `ferry reload` finds it.
//!
//! Before it starts anything, `ferry run` takes the lock of every pipeline
//! it serves ([`ferry_pipeline::owner`]): if another process holds one, it
//! exits 1 naming that process, or with `--wait` says so and waits for it.
//! `ferry status` shows the lock's holder.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ferry_pipeline::{EndKind, LiveStatus, Ownership, PipelineError, Plan, Supervisor};
use ferry_state::Accounting;
use notify::RecursiveMode;
use tokio::sync::mpsc;

/// How long file events settle before they are looked at.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// The pid file of a state database.
pub(crate) fn pid_file(state: &Path) -> PathBuf {
    state.with_extension("pid")
}

/// The sha256 of every manifest a path names and of every component those
/// manifests reference.
fn digests(path: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let Ok(manifests) = crate::manifest_paths(path) else {
        return out;
    };
    for manifest in manifests {
        if let Ok(bytes) = std::fs::read(&manifest) {
            out.insert(manifest.clone(), ferry_host::sha256_hex(&bytes));
        }
        if let Ok(m) = ferry_manifest::load(&manifest) {
            for plugin in m.plugins.values() {
                let digest = std::fs::read(&plugin.wasm)
                    .map(|b| ferry_host::sha256_hex(&b))
                    .unwrap_or_else(|e| format!("unreadable: {e}"));
                out.insert(plugin.wasm.clone(), digest);
            }
        }
    }
    out
}

/// The folders to watch: the manifest's (or the manifest folder itself) and
/// each component's. Folders, not files: an editor or a build that writes a
/// temp file and renames it over the old one replaces the file's inode.
fn watched_folders(path: &Path, digests: &BTreeMap<PathBuf, String>) -> Vec<PathBuf> {
    let mut folders = vec![if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf()
    }];
    for file in digests.keys() {
        if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty())
            && !folders.iter().any(|f| f == parent)
        {
            folders.push(parent.to_path_buf());
        }
    }
    folders
}

fn watch(
    folders: &[PathBuf],
    events: mpsc::UnboundedSender<()>,
) -> Result<notify_debouncer_mini::Debouncer<notify::RecommendedWatcher>> {
    let mut debouncer = notify_debouncer_mini::new_debouncer(
        DEBOUNCE,
        move |result: notify_debouncer_mini::DebounceEventResult| {
            if result.is_ok() {
                let _ = events.send(());
            }
        },
    )
    .context("cannot start the file watcher")?;
    for folder in folders {
        debouncer
            .watcher()
            .watch(folder, RecursiveMode::NonRecursive)
            .with_context(|| format!("cannot watch {}", folder.display()))?;
    }
    Ok(debouncer)
}

pub(crate) async fn serve(
    path: &Path,
    plans: Vec<Plan>,
    quiet: bool,
    watching: bool,
    wait: bool,
) -> Result<ExitCode> {
    let runtime = crate::runtime()?;
    let mut supervisor = Supervisor::new(runtime);
    // Every lock first, so nothing starts unless all are ours. Waiting
    // blocks this thread on purpose: nothing runs yet, and Ctrl-C (no
    // handler installed yet) ends the process.
    let mut owners = Vec::new();
    for plan in &plans {
        let state = &plan.manifest.pipeline.state;
        let owner = if wait {
            Ownership::wait(state, &plan.name, "ferry run", |holder, lock| {
                eprintln!(
                    "waiting: pipeline `{}` is served by {holder} (lock {}); it starts here when that process ends",
                    plan.name,
                    lock.display()
                );
            })?
        } else {
            Ownership::take(state, &plan.name, "ferry run")?
        };
        owners.push(owner);
    }
    let mut pid_files = Vec::new();
    for (plan, owner) in plans.into_iter().zip(owners) {
        let pid = pid_file(&plan.manifest.pipeline.state);
        supervisor.start_owned(plan, Some(owner))?;
        if std::fs::write(&pid, std::process::id().to_string()).is_ok() {
            pid_files.push(pid);
        }
    }

    let mut interrupts = 0u32;
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot listen for SIGHUP")?;
    // One listener for the whole run: a `ctrl_c()` made anew in each turn of
    // the loop misses a SIGINT that comes between two turns.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot listen for SIGINT")?;
    let (file_tx, mut file_rx) = mpsc::unbounded_channel();
    let mut seen = digests(path);
    let mut watcher = if watching {
        Some(watch(&watched_folders(path, &seen), file_tx.clone())?)
    } else {
        None
    };

    let show_progress = !quiet && std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut total = Accounting::default();
    let mut failed = false;
    // Whether the latest run of each scheduled pipeline failed: a failed run
    // is retried at the next tick, so only the latest one counts.
    let mut scheduled_failing: BTreeMap<String, bool> = BTreeMap::new();
    let mut last_draw = Instant::now();
    loop {
        let trigger = tokio::select! {
            _ = interrupt.recv() => {
                interrupts += 1;
                if interrupts > 1 {
                    std::process::exit(130);
                }
                eprintln!("\nstopping: finishing the records in flight and committing (Ctrl-C again to abort)");
                supervisor.shutdown();
                None
            }
            _ = hangups.recv() => Some("SIGHUP"),
            Some(()) = file_rx.recv() => {
                let now = digests(path);
                if now == seen {
                    None
                } else {
                    seen = now;
                    Some("file change")
                }
            }
            _ = tick.tick() => None,
        };
        if let Some(trigger) = trigger {
            clear_progress(show_progress);
            let event = supervisor.reload(&[path.to_path_buf()], trigger).await;
            eprintln!("{event}");
            seen = digests(path);
            for (_, manifest, _) in supervisor.running() {
                if let Ok(m) = ferry_manifest::load(&manifest) {
                    let pid = pid_file(&m.pipeline.state);
                    if !pid_files.contains(&pid)
                        && std::fs::write(&pid, std::process::id().to_string()).is_ok()
                    {
                        pid_files.push(pid);
                    }
                }
            }
            if watching {
                // Components may have moved to other folders. A folder that
                // cannot be watched (removed meanwhile) must not stop the
                // pipelines: keep the old watcher and say so.
                match watch(&watched_folders(path, &seen), file_tx.clone()) {
                    Ok(w) => watcher = Some(w),
                    Err(e) => eprintln!("warning: {e:#}; still watching the previous folders"),
                }
            }
        }
        supervisor.reap().await;
        for note in supervisor.take_notes() {
            clear_progress(show_progress);
            eprintln!("{note}");
        }
        for ended in supervisor.take_ended() {
            clear_progress(show_progress);
            let (report, error) = match ended.result {
                Ok(report) => (Some(report), None),
                Err(PipelineError::Failed { report, error }) => (Some(*report), Some(*error)),
                Err(e) => (None, Some(e)),
            };
            match ended.kind {
                // Its runs were summed up one by one as they ended.
                EndKind::ScheduleStopped => {
                    if let Some(e) = error {
                        failed = true;
                        eprintln!("error: pipeline `{}`: {e}", ended.pipeline);
                    }
                    continue;
                }
                EndKind::ScheduledRun => {
                    scheduled_failing.insert(ended.pipeline.clone(), error.is_some());
                }
                EndKind::Pipeline => failed |= error.is_some(),
            }
            if let Some(report) = &report {
                crate::print_summary(report, &ended.manifest, error.is_none());
                total.add(&report.accounting);
            }
            if let Some(e) = error {
                eprintln!("error: pipeline `{}`: {e}", ended.pipeline);
            }
        }
        if !supervisor.is_running() {
            break;
        }
        if show_progress && last_draw.elapsed() >= Duration::from_millis(250) {
            draw_progress(&supervisor.running(), started);
            last_draw = Instant::now();
        }
    }
    drop(watcher);
    for pid in pid_files {
        // A `ferry run --wait` that took over meanwhile wrote its own.
        let ours =
            std::fs::read_to_string(&pid).is_ok_and(|s| s.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(pid);
        }
    }
    println!("{total}");
    failed |= scheduled_failing.values().any(|f| *f);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn clear_progress(shown: bool) {
    if shown {
        eprint!("\r\x1b[2K");
    }
}

fn draw_progress(running: &[(String, PathBuf, Arc<LiveStatus>)], started: Instant) {
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let line: Vec<String> = running
        .iter()
        .map(|(name, _, s)| {
            if let Some(why) = s.paused() {
                return format!("{name}: PAUSED: {why}");
            }
            let next = s.next_run_us.load(Ordering::Relaxed);
            if next > 0 {
                let wait = Duration::from_micros(
                    next.saturating_sub(ferry_state::now_us())
                        .max(0)
                        .unsigned_abs(),
                );
                return format!(
                    "{name}: next run in {} ({} committed so far)",
                    ferry_pipeline::schedule::human_wait(wait),
                    crate::thousands(s.committed().read)
                );
            }
            let read = s.read.load(Ordering::Relaxed);
            let c = s.committed();
            format!(
                "{name}: {} read, {} written, {} dead-lettered, {} filtered, {}/s",
                crate::thousands(read),
                crate::thousands(c.written),
                crate::thousands(c.dead_lettered),
                crate::thousands(c.filtered),
                crate::thousands((read as f64 / secs) as u64)
            )
        })
        .collect();
    eprint!("\r\x1b[2K{}", line.join(" | "));
}

/// `ferry reload`: sends `SIGHUP` to the `ferry run` serving a manifest.
pub(crate) fn reload(path: &Path) -> Result<ExitCode> {
    let mut sent = Vec::new();
    let mut missing = Vec::new();
    for manifest in crate::manifest_paths(path)? {
        let m = ferry_manifest::load(&manifest).map_err(|e| anyhow::anyhow!("{e}"))?;
        let pid_path = pid_file(&m.pipeline.state);
        let Some(pid) = read_pid(&pid_path) else {
            missing.push(pid_path);
            continue;
        };
        if sent.contains(&pid) {
            continue;
        }
        let status = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .context("cannot run `kill`")?;
        if status.success() {
            println!(
                "asked ferry run (pid {pid}) to reload {}",
                manifest.display()
            );
            sent.push(pid);
        } else {
            missing.push(pid_path);
        }
    }
    if sent.is_empty() {
        anyhow::bail!(
            "no running `ferry run` serves {} (looked for {}); start one with `ferry run {}`",
            path.display(),
            missing
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            path.display()
        );
    }
    println!("see the outcome with `ferry status {}`", path.display());
    Ok(ExitCode::SUCCESS)
}

/// The pid in a pid file, if that process is alive.
pub(crate) fn read_pid(path: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}
