//! What a plugin's `Store` holds: its WASI context (built from its grants),
//! its resource table, its memory limiter and its identity for logs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use crate::bindings::common::ferry::plugin::host;
use crate::error::HostError;

/// How much of a plugin's stderr is kept (for trap messages).
const STDERR_CAPACITY: usize = 16 * 1024;
/// The longest log line a plugin may write; longer ones are cut.
const MAX_LOG_LINE: usize = 4096;

/// A folder of the host made visible to a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileGrant {
    /// The host folder.
    pub host: PathBuf,
    /// Where the plugin sees it, such as `/in`.
    pub guest: String,
    /// Whether the plugin may write there. A writable folder that does not
    /// exist is created when the instance is built.
    pub writable: bool,
}

/// Who a Store belongs to, for log lines, and the rate limits of its
/// denials and log lines. Made once per instance, so the limits outlive a
/// Store rebuilt after a trap.
#[derive(Clone)]
pub(crate) struct Identity {
    pub pipeline: Arc<str>,
    pub stage: Arc<str>,
    pub digest: Arc<str>,
    pub gate: Arc<crate::audit::FloodGate>,
}

impl Identity {
    /// The identity of an instance of `spec` running the component `digest`;
    /// its denials go to `spec.audit`.
    pub(crate) fn new(spec: &crate::InstanceSpec, digest: &str) -> Self {
        let pipeline: Arc<str> = Arc::from(spec.pipeline.as_str());
        let stage: Arc<str> = Arc::from(spec.stage.as_str());
        let digest: Arc<str> = Arc::from(digest);
        let gate = Arc::new(crate::audit::FloodGate::new(
            Arc::clone(&pipeline),
            Arc::clone(&stage),
            Arc::clone(&digest),
            spec.audit.clone(),
        ));
        Identity {
            pipeline,
            stage,
            digest,
            gate,
        }
    }
}

/// Limits memory growth and remembers a breach, so the trap it causes can be
/// reported as `memory` rather than a generic trap.
pub(crate) struct Limiter {
    max_memory: usize,
    pub breached: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.breached = true;
            return Err(wasmtime::format_err!(
                "memory limit of {} MiB reached (wanted {} bytes)",
                self.max_memory / (1024 * 1024),
                desired
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The data of one plugin instance's Store: its WASI context, resource
/// table, memory limiter and identity. Opaque outside this crate.
pub struct HostState {
    wasi: WasiCtx,
    http: wasmtime_wasi_http::WasiHttpCtx,
    http_hooks: crate::network::HttpHooks,
    pub(crate) table: ResourceTable,
    pub(crate) sql: crate::sql_host::SqlAccess,
    pub(crate) limiter: Limiter,
    pub(crate) stderr: MemoryOutputPipe,
    identity: Identity,
    /// When the call in progress must end; `None` between calls.
    call_deadline: Option<Instant>,
    /// The grant `max_output_mb` in bytes, for fault messages.
    pub(crate) max_output_bytes: usize,
}

impl HostState {
    pub(crate) fn new(identity: Identity, spec: &crate::InstanceSpec) -> Result<Self, HostError> {
        let memory_bytes = spec.memory_bytes;
        let grants: &[FileGrant] = &spec.files;
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let mut builder = WasiCtx::builder();
        builder
            .stderr(stderr.clone())
            .allow_blocking_current_thread(true)
            .envs(&spec.env);
        crate::network::install(&mut builder, spec.network.clone(), identity.clone());
        let http_hooks = crate::network::HttpHooks::new(spec.network.clone(), identity.clone());
        for grant in grants {
            let perms = if grant.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            if grant.writable && !grant.host.exists() {
                std::fs::create_dir_all(&grant.host).map_err(|e| HostError::Grant {
                    path: grant.host.clone(),
                    detail: format!("cannot create it: {e}"),
                })?;
            }
            builder
                .preopened_dir(&grant.host, &grant.guest, perms)
                .map_err(|e| HostError::Grant {
                    path: grant.host.clone(),
                    detail: format!("{e:#}"),
                })?;
        }
        Ok(HostState {
            wasi: builder.build(),
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            http_hooks,
            table: ResourceTable::new(),
            sql: crate::sql_host::SqlAccess::new(
                spec.sql.clone(),
                spec.timeout,
                spec.max_output_bytes,
            ),
            limiter: Limiter {
                max_memory: memory_bytes,
                breached: false,
            },
            stderr,
            identity,
            call_deadline: None,
            max_output_bytes: spec.max_output_bytes,
        })
    }

    /// Starts a call that must end within `timeout` (`None`: ends the call).
    /// Set by the instance before every call into the plugin.
    pub(crate) fn set_call_timeout(&mut self, timeout: Option<Duration>) {
        self.call_deadline = timeout.map(|t| Instant::now() + t);
    }

    /// When the call in progress must end (its `timeout_ms` from its start);
    /// `None` between calls.
    pub(crate) fn call_deadline(&self) -> Option<Instant> {
        self.call_deadline
    }

    /// How long the call in progress may still run: zero once its deadline
    /// has passed, `None` between calls. Whatever the host does on the
    /// plugin's behalf that can wait must wait no longer than this (the
    /// `wasi:io` shadows of [`crate::deadline`] do).
    pub(crate) fn remaining(&self) -> Option<Duration> {
        self.call_deadline()
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Logs a run-time denial and records it in the audit log, capped and
    /// rate-limited (see [`crate::audit`]).
    pub(crate) fn report_denial(&self, denial: crate::Denial) {
        crate::network::report(&self.identity, denial);
    }

    /// The tail of what the plugin wrote to stderr, for trap messages.
    pub(crate) fn stderr_tail(&self) -> String {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim();
        let start = text.len().saturating_sub(1024);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        text[start..].to_string()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for HostState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

impl host::Host for HostState {
    fn log_enabled(&mut self, level: host::Level) -> bool {
        match level {
            host::Level::Trace => tracing::enabled!(target: "plugin", tracing::Level::TRACE),
            host::Level::Debug => tracing::enabled!(target: "plugin", tracing::Level::DEBUG),
            host::Level::Info => tracing::enabled!(target: "plugin", tracing::Level::INFO),
            host::Level::Warn => tracing::enabled!(target: "plugin", tracing::Level::WARN),
            host::Level::Error => tracing::enabled!(target: "plugin", tracing::Level::ERROR),
        }
    }

    /// Writes the plugin's log line, cut to 4096 bytes, if its rate limit
    /// lets it through (see [`crate::audit`]).
    fn log(&mut self, level: host::Level, message: String) {
        // A line no one would see takes nothing from the budget.
        if !host::Host::log_enabled(self, level) || !self.identity.gate.admit_log() {
            return;
        }
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let id = &self.identity;
        let (p, s, d) = (
            &*id.pipeline,
            &*id.stage,
            &id.digest[..id.digest.len().min(12)],
        );
        match level {
            host::Level::Trace => {
                tracing::trace!(target: "plugin", pipeline = p, stage = s, digest = d, "{message}")
            }
            host::Level::Debug => {
                tracing::debug!(target: "plugin", pipeline = p, stage = s, digest = d, "{message}")
            }
            host::Level::Info => {
                tracing::info!(target: "plugin", pipeline = p, stage = s, digest = d, "{message}")
            }
            host::Level::Warn => {
                tracing::warn!(target: "plugin", pipeline = p, stage = s, digest = d, "{message}")
            }
            host::Level::Error => {
                tracing::error!(target: "plugin", pipeline = p, stage = s, digest = d, "{message}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remaining_time_counts_down_from_the_call_start_and_stops_at_zero() {
        let spec = crate::InstanceSpec::new("p", "s");
        let identity = Identity::new(&spec, "d");
        let mut state = HostState::new(identity, &spec).unwrap();
        assert_eq!(state.remaining(), None, "no bound between calls");
        state.set_call_timeout(Some(Duration::from_secs(60)));
        let left = state.remaining().unwrap();
        assert!(left > Duration::from_secs(59) && left <= Duration::from_secs(60));
        assert!(state.call_deadline().unwrap() > Instant::now());
        state.set_call_timeout(Some(Duration::ZERO));
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(state.remaining(), Some(Duration::ZERO));
        state.set_call_timeout(None);
        assert_eq!(state.remaining(), None);
    }
}
