//! The source task: polls the source plugin (or a replay's records), opens
//! each batch in the ledger, forwards it, and passes committed checkpoints
//! back to the plugin.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ferry_host::batch::BatchExt;
use ferry_host::{Batch, CallError, SourceInstance, SourceStatus};
use ferry_manifest::Mode;
use tokio::sync::{mpsc, watch};

use crate::PipelineError;
use crate::audit::StateAudit;
use crate::swap::SwapRequest;

use super::ctx::StageCtx;
use super::isolate::jittered;
use super::{Instance, Router, build};

/// Consecutive failed rebuilds of a source before the pipeline stops.
const SOURCE_FAULT_LIMIT: u32 = 3;

/// What a source task reads from.
pub(super) enum Feed {
    /// The source plugin.
    Plugin(SourceInstance),
    /// A replay's records, read once.
    Records(Option<Batch>),
}

impl Feed {
    pub(super) fn poll(&mut self, max: u32) -> Result<ferry_host::Polled, CallError> {
        match self {
            Feed::Plugin(source) => source.poll(max),
            Feed::Records(records) => Ok(ferry_host::Polled {
                records: records.take().unwrap_or_else(Batch::empty),
                checkpoint: b"replayed".to_vec(),
                status: SourceStatus::Finished,
            }),
        }
    }
}

pub(super) struct SourceTask {
    pub(super) ctx: StageCtx,
    pub(super) router: Router,
    pub(super) feed: Feed,
    pub(super) mode: Mode,
    pub(super) max_records: u32,
    pub(super) poll_interval: Duration,
    pub(super) shutdown: watch::Receiver<bool>,
    pub(super) committed: watch::Receiver<Option<Vec<u8>>>,
    /// The checkpoint just past the last records read: where a swapped-in
    /// instance starts.
    pub(super) last_checkpoint: Option<Vec<u8>>,
    pub(super) swaps: mpsc::UnboundedReceiver<SwapRequest>,
}

impl SourceTask {
    /// Opens the new source where the old one stopped reading and replaces
    /// it; on failure the old one goes on.
    pub(super) fn swap(&mut self, request: SwapRequest) {
        let began = Instant::now();
        let SwapRequest { prepared, reply } = request;
        let digest = prepared.digest().to_string();
        let audit = Arc::new(StateAudit::new(Arc::clone(&self.ctx.shared.state)));
        let built = tokio::task::block_in_place(|| {
            build(&prepared.stage, self.last_checkpoint.clone(), &audit)
        });
        match built {
            Ok(Instance::Source(new)) => {
                let Feed::Plugin(current) = &mut self.feed else {
                    self.ctx
                        .refuse_swap(reply, "a replay has no source plugin".into());
                    return;
                };
                let old = std::mem::replace(current, new);
                self.ctx
                    .shared
                    .status
                    .rebuilds
                    .fetch_add(old.rebuilds(), Ordering::Relaxed);
                // The new instance has not been told of commits yet.
                self.committed.mark_changed();
                self.ctx.swapped(reply, &digest, began);
            }
            Ok(_) => self
                .ctx
                .refuse_swap(reply, "the new plugin is not a source".into()),
            Err(e) => self.ctx.refuse_swap(reply, e.to_string()),
        }
    }

    pub(super) async fn run(mut self) -> Result<(), PipelineError> {
        let shared = self.ctx.shared.clone();
        let mut seq = 0u64;
        let mut faults = 0u32;
        let mut retries = 0u32;
        loop {
            if *self.shutdown.borrow() {
                return Ok(());
            }
            while let Ok(request) = self.swaps.try_recv() {
                self.swap(request);
            }
            self.tell_committed();
            let polled = tokio::task::block_in_place(|| self.feed.poll(self.max_records));
            let polled = match polled {
                Ok(p) => {
                    faults = 0;
                    retries = 0;
                    p
                }
                Err(CallError::Retryable(m)) if retries + 1 < self.ctx.retry.attempts => {
                    retries += 1;
                    tracing::warn!(stage = %self.ctx.stage, "source poll failed, retrying: {m}");
                    tokio::time::sleep(jittered(self.ctx.retry.backoff_after(retries))).await;
                    continue;
                }
                Err(e @ CallError::Fault { .. }) if faults < SOURCE_FAULT_LIMIT => {
                    faults += 1;
                    shared.status.rebuilds.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(stage = %self.ctx.stage, "source {e}; rebuilding it from its last checkpoint");
                    continue;
                }
                Err(e) => {
                    return Err(PipelineError::Source {
                        stage: self.ctx.stage.clone(),
                        error: e,
                    });
                }
            };
            polled.records.check().map_err(|e| PipelineError::Source {
                stage: self.ctx.stage.clone(),
                error: CallError::Contract(e),
            })?;
            let n = polled.records.len();
            shared.ledger.open(seq, n, polled.checkpoint.clone());
            shared.status.read.fetch_add(n as u64, Ordering::Relaxed);
            self.last_checkpoint = Some(polled.checkpoint.clone());
            if let Feed::Plugin(source) = &mut self.feed {
                source.set_resume_checkpoint(Some(polled.checkpoint));
            }
            let origins: Vec<u32> = (0..n as u32).collect();
            self.router
                .forward(&shared, seq, polled.records, origins)
                .await?;
            shared.ledger.done_piece(seq);
            shared.progress.notify_one();
            seq += 1;
            match polled.status {
                SourceStatus::More => {}
                SourceStatus::Finished => return Ok(()),
                SourceStatus::CaughtUp => match self.mode {
                    // Each run of a scheduled pipeline is a `once` run.
                    Mode::Once | Mode::Schedule => return Ok(()),
                    Mode::Follow => {
                        let shutdown = &mut self.shutdown;
                        let swap = tokio::select! {
                            _ = tokio::time::sleep(self.poll_interval) => None,
                            // A dropped sender can never ask to stop: wait out the interval.
                            Ok(()) = shutdown.changed() => None,
                            Some(request) = self.swaps.recv() => Some(request),
                        };
                        if let Some(request) = swap {
                            self.swap(request);
                        }
                    }
                },
            }
        }
    }

    /// Hands the latest durable checkpoint to the source's `commit`.
    pub(super) fn tell_committed(&mut self) {
        if !self.committed.has_changed().unwrap_or(false) {
            return;
        }
        let checkpoint = self.committed.borrow_and_update().clone();
        if let Some(cp) = checkpoint
            && let Feed::Plugin(source) = &mut self.feed
            && let Err(e) = tokio::task::block_in_place(|| source.commit(&cp))
        {
            tracing::warn!(stage = %self.ctx.stage, "source commit failed (records stay safe, they may be read again): {e}");
        }
    }
}
