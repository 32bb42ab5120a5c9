//! What a plugin's `Store` holds: its WASI context (built from its grants),
//! its resource table, its memory limiter and its identity for logs.

use std::path::PathBuf;
use std::sync::Arc;

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

/// Who a Store belongs to, for log lines.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub pipeline: Arc<str>,
    pub stage: Arc<str>,
    pub digest: Arc<str>,
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
    audit: Option<Arc<dyn crate::AuditSink>>,
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
        crate::network::install(
            &mut builder,
            spec.network.clone(),
            spec.audit.clone(),
            identity.clone(),
        );
        let http_hooks = crate::network::HttpHooks::new(
            spec.network.clone(),
            spec.audit.clone(),
            identity.clone(),
        );
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
            audit: spec.audit.clone(),
        })
    }

    /// Logs a run-time denial and records it in the audit log.
    pub(crate) fn report_denial(&self, denial: crate::Denial) {
        crate::network::report(self.audit.as_ref(), &self.identity, denial);
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

    fn log(&mut self, level: host::Level, message: String) {
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
