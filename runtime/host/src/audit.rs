//! Bounds on what a plugin can make the host log and audit.
//!
//! A denial costs a plugin nothing: a mapper with no grant at all can ask
//! for a connection, a file or an address it was not given as often as it
//! likes, with names as long as its memory allows. Unbounded, each request
//! would put the plugin's string into a log line and an audit row, so a
//! loop of them fills the log, the state file and the disk. Two bounds stop
//! that here, before anything is logged or handed to the
//! [`AuditSink`]:
//!
//! - **Length.** Every string a plugin supplies is cut on a character
//!   boundary, with a marker saying how many bytes were cut: a denial's
//!   target to [`MAX_TARGET_BYTES`], its reason to [`MAX_REASON_BYTES`]
//!   ([`Denial::capped`], applied to every denial in `FloodGate::report`
//!   whoever built it), and a name or path quoted inside a target to
//!   [`MAX_QUOTED_BYTES`] ([`quote`]) so a long one is never even formatted.
//!   A plugin's error message is cut to [`MAX_MESSAGE_BYTES`] when it
//!   becomes a [`CallError`](crate::CallError), a log line to 4096 bytes
//!   (`host.log`), its stderr kept to the last 16 KiB.
//! - **Rate.** Each plugin instance (one stage; it survives the Store
//!   rebuilt after a trap) records [`DENIAL_BURST`] denials at once and then
//!   one every [`DENIAL_REFILL`]; denials past that are counted, not logged
//!   or audited one by one. The count is reported as a `suppressed N` audit
//!   event and one log line per capability, at most every
//!   [`SUPPRESSED_WINDOW`] while denials go on, and when the instance ends,
//!   so none is lost silently. The plugin's own log lines (`host.log`,
//!   which needs no grant either) get the same treatment: [`LOG_BURST`] at
//!   once, then one every [`LOG_REFILL`], the rest counted in a log line.
//!
//! The sink may batch its writes (the pipeline's does, off the commit path);
//! what it does with a full queue is its own to count.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::network::{AuditSink, Denial};

/// The longest target (what was asked for) a denial keeps, in bytes.
pub const MAX_TARGET_BYTES: usize = 512;
/// The longest reason a denial keeps, in bytes.
pub const MAX_REASON_BYTES: usize = 1024;
/// The longest plugin-supplied name or path quoted inside a target.
pub const MAX_QUOTED_BYTES: usize = 256;
/// The longest error message a plugin's call may return (it is logged and
/// kept in dead letters), like a plugin's log line.
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// Denials of one plugin instance logged and audited one by one before the
/// rate limit applies.
pub const DENIAL_BURST: u32 = 50;
/// Past the burst, one more denial is recorded per this interval.
pub const DENIAL_REFILL: Duration = Duration::from_secs(1);
/// Log lines (`host.log`) of one plugin instance written before the rate
/// limit applies.
pub const LOG_BURST: u32 = 500;
/// Past the burst, one more log line is written per this interval (20 a
/// second).
pub const LOG_REFILL: Duration = Duration::from_millis(50);
/// While denials or log lines are being suppressed, how often their count
/// is reported.
pub const SUPPRESSED_WINDOW: Duration = Duration::from_secs(10);

/// `text` cut to at most `max` bytes on a character boundary, with a marker
/// saying how many bytes were cut (the marker comes on top of `max`).
pub fn cap(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    Cow::Owned(format!("{}…[{} bytes cut]", &text[..cut], text.len() - cut))
}

/// [`cap`] for an owned string, without copying one that fits.
pub fn cap_owned(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    cap(&text, max).into_owned()
}

/// A plugin-supplied name or path as it appears in a denial's target:
/// quoted and escaped like `{:?}`, cut to [`MAX_QUOTED_BYTES`] first.
pub fn quote(text: &str) -> String {
    format!("{:?}", cap(text, MAX_QUOTED_BYTES))
}

impl Denial {
    /// A denial with its target and reason capped.
    pub fn new(capability: &'static str, target: String, reason: String) -> Self {
        Denial {
            capability,
            target,
            reason,
        }
        .capped()
    }

    /// The same denial with its target cut to [`MAX_TARGET_BYTES`] and its
    /// reason to [`MAX_REASON_BYTES`].
    pub fn capped(self) -> Self {
        Denial {
            capability: self.capability,
            target: cap_owned(self.target, MAX_TARGET_BYTES),
            reason: cap_owned(self.reason, MAX_REASON_BYTES),
        }
    }

    /// The event standing for `count` denials of `capability` that were
    /// counted instead of recorded.
    pub fn suppressed(capability: &'static str, count: u64, why: &str) -> Self {
        Denial {
            capability,
            target: format!("suppressed {count}"),
            reason: why.to_string(),
        }
    }
}

/// Why the gate suppressed denials, for the `suppressed N` event.
fn rate_limit_reason() -> String {
    format!(
        "rate limit: a plugin instance's denials past {DENIAL_BURST} at once, then one per {}s, are counted, not recorded one by one",
        DENIAL_REFILL.as_secs_f64()
    )
}

/// The rate limits of one plugin instance, for its denials and its log
/// lines, and where its denials go.
pub(crate) struct FloodGate {
    pipeline: Arc<str>,
    stage: Arc<str>,
    digest: Arc<str>,
    audit: Option<Arc<dyn AuditSink>>,
    denials: Mutex<Bucket>,
    logs: Mutex<Bucket>,
}

/// A token bucket: `burst` at once, then one per `refill`; what finds it
/// empty is counted under a label until reported.
struct Bucket {
    burst: u32,
    refill: Duration,
    /// What may still pass.
    tokens: u32,
    /// When the last token was added (or the bucket was made).
    refilled: Instant,
    /// What was counted but not let through, by label (a denial's
    /// capability; `log` for log lines).
    suppressed: BTreeMap<&'static str, u64>,
    /// When the oldest unreported suppression happened.
    since: Option<Instant>,
}

impl Bucket {
    fn new(burst: u32, refill: Duration) -> Self {
        Bucket {
            burst,
            refill,
            tokens: burst,
            refilled: Instant::now(),
            suppressed: BTreeMap::new(),
            since: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled);
        let new = (elapsed.as_nanos() / self.refill.as_nanos().max(1)) as u64;
        if new == 0 {
            return;
        }
        let room = u64::from(self.burst - self.tokens.min(self.burst));
        self.tokens += new.min(room) as u32;
        self.refilled = if self.tokens >= self.burst {
            now
        } else {
            self.refilled + self.refill * new as u32
        };
    }

    /// Whether one more may pass now; if not, it is counted under `label`.
    /// Also the counts due for a report (every [`SUPPRESSED_WINDOW`]).
    fn admit(
        &mut self,
        label: &'static str,
        now: Instant,
    ) -> (bool, Option<BTreeMap<&'static str, u64>>) {
        self.refill(now);
        let admit = self.tokens > 0;
        if admit {
            self.tokens -= 1;
        } else {
            *self.suppressed.entry(label).or_default() += 1;
            self.since.get_or_insert(now);
        }
        let due = self
            .since
            .is_some_and(|since| now.saturating_duration_since(since) >= SUPPRESSED_WINDOW);
        (admit, due.then(|| self.take_suppressed()))
    }

    fn take_suppressed(&mut self) -> BTreeMap<&'static str, u64> {
        self.since = None;
        std::mem::take(&mut self.suppressed)
    }
}

fn lock(bucket: &Mutex<Bucket>) -> std::sync::MutexGuard<'_, Bucket> {
    bucket.lock().unwrap_or_else(|p| p.into_inner())
}

impl FloodGate {
    pub(crate) fn new(
        pipeline: Arc<str>,
        stage: Arc<str>,
        digest: Arc<str>,
        audit: Option<Arc<dyn AuditSink>>,
    ) -> Self {
        FloodGate {
            pipeline,
            stage,
            digest,
            audit,
            denials: Mutex::new(Bucket::new(DENIAL_BURST, DENIAL_REFILL)),
            logs: Mutex::new(Bucket::new(LOG_BURST, LOG_REFILL)),
        }
    }

    /// Logs and audits a denial, capped, if the rate limit lets it through;
    /// otherwise counts it.
    pub(crate) fn report(&self, denial: Denial) {
        let (admit, due) = lock(&self.denials).admit(denial.capability, Instant::now());
        if let Some(counts) = due {
            self.report_suppressed(counts);
        }
        if admit {
            let denial = denial.capped();
            tracing::warn!(
                pipeline = %self.pipeline,
                stage = %self.stage,
                "denied {}: {}",
                denial.target,
                denial.reason
            );
            if let Some(audit) = &self.audit {
                audit.denied(&self.pipeline, &self.stage, &self.digest, &denial);
            }
        }
    }

    /// Whether the plugin's next log line may be written; if not it is
    /// counted, and the count logged every [`SUPPRESSED_WINDOW`] and when
    /// the instance ends.
    pub(crate) fn admit_log(&self) -> bool {
        let (admit, due) = lock(&self.logs).admit("log", Instant::now());
        if let Some(counts) = due {
            self.report_suppressed_logs(counts);
        }
        admit
    }

    fn report_suppressed(&self, counts: BTreeMap<&'static str, u64>) {
        for (capability, count) in counts {
            tracing::warn!(
                pipeline = %self.pipeline,
                stage = %self.stage,
                "suppressed {count} {capability} denials of this plugin (rate limit: {DENIAL_BURST} at once, then one per {}s)",
                DENIAL_REFILL.as_secs_f64()
            );
            if let Some(audit) = &self.audit {
                audit.suppressed(
                    &self.pipeline,
                    &self.stage,
                    &self.digest,
                    capability,
                    count,
                    &rate_limit_reason(),
                );
            }
        }
    }

    fn report_suppressed_logs(&self, counts: BTreeMap<&'static str, u64>) {
        let count: u64 = counts.values().sum();
        if count > 0 {
            tracing::warn!(
                pipeline = %self.pipeline,
                stage = %self.stage,
                "suppressed {count} log lines of this plugin (rate limit: {LOG_BURST} at once, then {} a second)",
                1000 / LOG_REFILL.as_millis().max(1)
            );
        }
    }
}

impl Drop for FloodGate {
    /// The instance is gone: report what is still counted.
    fn drop(&mut self) {
        let logs = self
            .logs
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take_suppressed();
        self.report_suppressed_logs(logs);
        let denials = self
            .denials
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take_suppressed();
        self.report_suppressed(denials);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<Denial>>);

    impl AuditSink for Recorder {
        fn denied(&self, _: &str, _: &str, _: &str, denial: &Denial) {
            self.0.lock().unwrap().push(denial.clone());
        }
    }

    fn gate(sink: &Arc<Recorder>) -> FloodGate {
        let audit: Arc<dyn AuditSink> = sink.clone();
        FloodGate::new("p".into(), "s".into(), "d".into(), Some(audit))
    }

    #[test]
    fn cap_cuts_on_a_char_boundary_and_says_how_much() {
        assert_eq!(cap("short", 10), "short");
        let text = "é".repeat(10); // 20 bytes
        let cut = cap(&text, 5);
        assert_eq!(cut, format!("{}…[16 bytes cut]", "é".repeat(2)));
        let huge = "x".repeat(1 << 20);
        let d = Denial::new("sql", format!("dialect-of {huge}"), huge.clone());
        assert!(
            d.target.len() <= MAX_TARGET_BYTES + 32,
            "{}",
            d.target.len()
        );
        assert!(d.reason.len() <= MAX_REASON_BYTES + 32);
        assert!(
            d.target
                .ends_with(&format!("[{} bytes cut]", (1 << 20) + 11 - 512))
        );
        let q = quote(&huge);
        assert!(
            q.len() <= MAX_QUOTED_BYTES + 32 && q.starts_with("\"xxx"),
            "{q}"
        );
    }

    #[test]
    fn a_plugins_error_message_is_cut_when_it_becomes_a_call_error() {
        let huge = "e".repeat(1 << 20);
        for error in [
            crate::PluginError::Fatal(huge.clone()),
            crate::PluginError::Retryable(huge.clone()),
            crate::PluginError::InvalidConfig(huge.clone()),
        ] {
            let text = crate::CallError::from(error).to_string();
            assert!(text.len() <= MAX_MESSAGE_BYTES + 64, "{}", text.len());
            assert!(text.contains("bytes cut]"));
        }
    }

    #[test]
    fn a_flood_is_recorded_up_to_the_burst_then_counted_and_the_count_reported_at_the_end() {
        let sink = Arc::new(Recorder::default());
        let attempts = 10_000u64;
        {
            let gate = gate(&sink);
            for i in 0..attempts {
                let capability = if i % 2 == 0 { "sql" } else { "filesystem" };
                gate.report(Denial {
                    capability,
                    target: "x".repeat(100_000),
                    reason: "no".into(),
                });
            }
        }
        let events = sink.0.lock().unwrap();
        let single = events
            .iter()
            .filter(|d| !d.target.starts_with("suppressed "))
            .count() as u64;
        let suppressed: u64 = events
            .iter()
            .filter_map(|d| d.target.strip_prefix("suppressed "))
            .map(|n| n.parse::<u64>().unwrap())
            .sum();
        assert!(
            (u64::from(DENIAL_BURST)..u64::from(DENIAL_BURST) + 3).contains(&single),
            "{single}"
        );
        assert_eq!(
            single + suppressed,
            attempts,
            "every attempt is accounted for"
        );
        assert!(
            events
                .iter()
                .all(|d| d.target.len() <= MAX_TARGET_BYTES + 32)
        );
        let summaries: Vec<&str> = events
            .iter()
            .filter(|d| d.target.starts_with("suppressed "))
            .map(|d| d.capability)
            .collect();
        assert_eq!(summaries, ["filesystem", "sql"], "one per capability");
    }

    #[test]
    fn the_debug_of_a_connection_spec_never_shows_a_password() {
        use crate::sql::{ConnectionSpec, Dialect, Tls};
        let spec = ConnectionSpec {
            name: "ops".into(),
            dialect: Dialect::Postgres,
            url: "postgres://ferry:hunter2@db/ops?sslmode=disable&password=hunter2".into(),
            password: Some("hunter2".into()),
            tls: Tls::Disable,
            ca_file: None,
            pool_size: 1,
            transaction_timeout: std::time::Duration::from_secs(30),
        };
        let shown = format!("{spec:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("postgres://ferry:***@db/ops?sslmode=disable&password=***"),
            "{shown}"
        );
    }

    #[test]
    fn a_flood_of_log_lines_is_written_up_to_the_burst_then_counted() {
        let sink = Arc::new(Recorder::default());
        let gate = gate(&sink);
        let admitted = (0..10_000).filter(|_| gate.admit_log()).count() as u32;
        assert!(
            (LOG_BURST..LOG_BURST + 20).contains(&admitted),
            "{admitted}"
        );
        assert_eq!(
            lock(&gate.logs).suppressed.get("log").copied(),
            Some(10_000 - u64::from(admitted))
        );
        drop(gate);
        assert!(
            sink.0.lock().unwrap().is_empty(),
            "log lines are not audited"
        );
    }

    #[test]
    fn the_bucket_refills_one_denial_per_interval_up_to_the_burst() {
        let start = Instant::now();
        let mut b = Bucket::new(DENIAL_BURST, DENIAL_REFILL);
        b.tokens = 0;
        b.refilled = start;
        b.refill(start + DENIAL_REFILL / 2);
        assert_eq!(b.tokens, 0);
        b.refill(start + DENIAL_REFILL * 3 + DENIAL_REFILL / 2);
        assert_eq!(b.tokens, 3);
        b.refill(start + DENIAL_REFILL * 4);
        assert_eq!(b.tokens, 4, "the half interval carried over");
        b.refill(start + DENIAL_REFILL * 1000);
        assert_eq!(b.tokens, DENIAL_BURST);
    }
}
