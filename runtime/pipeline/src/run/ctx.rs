//! A stage's context: its identity, what it shares with the others, and
//! what every stage does alike: wait for a sink's target, take or refuse a
//! swap, dead-letter records, apply `on_invalid`, trip the circuit breaker.

use std::time::{Duration, Instant};

use ferry_host::batch::BatchExt;
use ferry_host::{Batch, CallError};
use ferry_manifest::{OnInvalid, RetryPolicy};
use ferry_state::{DeadLetter, now_us};
use tokio::sync::watch;

use crate::PipelineError;
use crate::swap::SwapReport;

use super::isolate::{Part, jittered};
use super::{Envelope, Shared};

pub(super) type SwapReply = tokio::sync::oneshot::Sender<Result<SwapReport, PipelineError>>;

/// Consecutive batches in which every record made a stage's plugin trap
/// before its circuit breaker stops the pipeline: a plugin that fails on
/// everything is broken, and dead-lettering all input would hide it.
const BREAKER_LIMIT: u32 = 5;

/// A stage's identity and what it shares with the others.
pub(super) struct StageCtx {
    pub(super) shared: Shared,
    pub(super) stage: String,
    pub(super) digest: String,
    pub(super) on_invalid: OnInvalid,
    /// Consecutive batches in which every call faulted.
    pub(super) faulted_batches: std::cell::Cell<u32>,
    /// How retryable failures are retried.
    pub(super) retry: RetryPolicy,
    /// The pipeline's stop request, seen by a sink waiting for its target.
    pub(super) shutdown: watch::Receiver<bool>,
    /// Set when a sink gave up waiting for its target because the pipeline
    /// was stopped: its records are neither written nor dead-lettered.
    pub(super) stopped_while_down: std::cell::Cell<bool>,
}

impl StageCtx {
    /// Calls a sink until it answers something else than `retryable`:
    /// first as the retry policy says, then, the target being down, every
    /// `max_backoff` with the pipeline marked paused (backpressure: nothing
    /// behind it moves, nothing is lost) until it is back or the pipeline is
    /// stopped. Blocking.
    pub(super) fn until_up<R>(
        &self,
        mut call: impl FnMut() -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        let mut attempts = 0;
        let mut paused = false;
        loop {
            attempts += 1;
            let error = match call() {
                Err(CallError::Retryable(m)) => m,
                other => {
                    if paused {
                        self.shared.status.set_paused(None);
                        tracing::warn!(pipeline = %self.shared.pipeline, stage = %self.stage, "sink is back after {attempts} attempts; the pipeline goes on");
                    }
                    return other;
                }
            };
            if *self.shutdown.borrow() {
                self.stopped_while_down.set(true);
                self.shared.status.set_paused(None);
                return Err(CallError::Retryable(error));
            }
            let wait = if attempts < self.retry.attempts {
                self.retry.backoff_after(attempts)
            } else {
                if !paused {
                    paused = true;
                    let why = format!(
                        "sink `{}` is down ({error}); retrying every {:?}",
                        self.stage, self.retry.max_backoff
                    );
                    tracing::warn!(pipeline = %self.shared.pipeline, "paused: {why}");
                    self.shared.status.set_paused(Some(why));
                }
                self.retry.max_backoff
            };
            // Sleep in slices so a stop request is seen within 50 ms.
            let until = Instant::now() + jittered(wait);
            while Instant::now() < until && !*self.shutdown.borrow() {
                std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
            }
        }
    }

    /// Takes a swap's new digest and reports it done.
    pub(super) fn swapped(&mut self, request_reply: SwapReply, new_digest: &str, began: Instant) {
        let report = SwapReport {
            stage: self.stage.clone(),
            old_digest: std::mem::replace(&mut self.digest, new_digest.to_string()),
            new_digest: new_digest.to_string(),
            pause: began.elapsed(),
        };
        self.faulted_batches.set(0);
        tracing::info!(
            pipeline = %self.shared.pipeline,
            stage = %self.stage,
            "swapped {} -> {} in {:?}",
            &report.old_digest[..report.old_digest.len().min(12)],
            &report.new_digest[..report.new_digest.len().min(12)],
            report.pause
        );
        let _ = request_reply.send(Ok(report));
    }

    /// Refuses a swap, keeping the current instance.
    pub(super) fn refuse_swap(&self, reply: SwapReply, why: String) {
        let _ = reply.send(Err(PipelineError::Internal(format!(
            "stage `{}` kept its instance: {why}",
            self.stage
        ))));
    }

    /// Makes dead letters for `rows` of `batch` and hands them to the
    /// ledger with their source records, marked dead-lettered: they are
    /// stored in the commit that closes those records.
    pub(super) fn dead_letter(
        &self,
        env: &Envelope,
        batch: &Batch,
        rows: &[(u32, String)],
        reason: &str,
        attempts: u32,
    ) -> Result<(), PipelineError> {
        if rows.is_empty() {
            return Ok(());
        }
        let now = now_us();
        let origin = |row: u32| env.origins.get(row as usize).copied();
        // A replayed record's letter replaces the one it came from.
        let replaces = |row: u32| {
            origin(row)
                .and_then(|o| self.shared.replayed.as_ref()?.get(o as usize).copied())
                .unwrap_or(0)
        };
        let letters: Vec<DeadLetter> = rows
            .iter()
            .map(|(row, detail)| DeadLetter {
                id: replaces(*row),
                pipeline: self.shared.pipeline.to_string(),
                stage: self.stage.clone(),
                plugin_digest: self.digest.clone(),
                reason: reason.to_string(),
                detail: detail.clone(),
                key: batch.key(*row as usize).to_string(),
                record: {
                    let mut record = batch.row_json(*row as usize);
                    // A delete keeps its operation, so a replay restores it.
                    if batch.ops.get(*row as usize) == Some(&ferry_host::Op::Delete)
                        && let Some(fields) = record.as_object_mut()
                    {
                        fields.insert("_op".into(), serde_json::json!("delete"));
                    }
                    record
                },
                attempts,
                created_at_us: now,
            })
            .collect();
        self.shared.ledger.dead_letter(
            env.seq,
            rows.iter().filter_map(|(r, _)| origin(*r)),
            letters,
        );
        Ok(())
    }

    /// Applies the route's `on_invalid` to records a mapper or validator
    /// refused.
    pub(super) fn invalid(
        &self,
        env: &Envelope,
        batch: &Batch,
        rows: &[(u32, String)],
        reason: &str,
    ) -> Result<(), PipelineError> {
        match self.on_invalid {
            OnInvalid::DeadLetter => self.dead_letter(env, batch, rows, reason, 1),
            // Nothing to do: a record nobody takes is counted as filtered.
            OnInvalid::Drop => Ok(()),
            OnInvalid::Stop => match rows.first() {
                None => Ok(()),
                Some((row, detail)) => Err(PipelineError::Stopped {
                    stage: self.stage.clone(),
                    key: batch.key(*row as usize).to_string(),
                    detail: detail.clone(),
                }),
            },
        }
    }

    /// The circuit breaker: counts batches in which every call trapped, and
    /// stops the pipeline when there are too many in a row. The batch that
    /// trips it is neither dead-lettered nor committed: it is read again
    /// once the plugin is fixed.
    pub(super) fn breaker<R>(&self, parts: &[Part<R>]) -> Result<(), PipelineError> {
        let all_faulted = !parts.is_empty()
            && parts
                .iter()
                .all(|p| matches!(p.result, Err(CallError::Fault { .. })));
        if !all_faulted {
            self.faulted_batches.set(0);
            return Ok(());
        }
        let n = self.faulted_batches.get() + 1;
        self.faulted_batches.set(n);
        if n < BREAKER_LIMIT {
            return Ok(());
        }
        let last = parts
            .iter()
            .rev()
            .find_map(|p| p.result.as_ref().err())
            .map(ToString::to_string)
            .unwrap_or_default();
        Err(PipelineError::CircuitOpen {
            stage: self.stage.clone(),
            batches: n,
            last,
        })
    }

    /// Dead-letters every record of a part whose call failed.
    pub(super) fn fail_part(
        &self,
        env: &Envelope,
        part: &Part<impl Sized>,
        error: &CallError,
    ) -> Result<(), PipelineError> {
        let detail = error.to_string();
        let rows: Vec<(u32, String)> = part.rows.iter().map(|&r| (r, detail.clone())).collect();
        self.dead_letter(env, &env.batch, &rows, error.reason(), part.attempts)
    }
}
