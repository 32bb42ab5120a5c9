//! The summary printed after a run: counts, rate, and where to look next.

use std::path::Path;

use ferry_pipeline::RunReport;

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
