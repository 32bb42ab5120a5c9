//! The sink task: writes batches, keeps them until a flush makes them
//! durable (sending them again to an instance rebuilt after a trap), records
//! an exactly-once sink's commit token after each batch, and marks records
//! written only after their flush.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ferry_host::batch::BatchExt;
use ferry_host::{CallError, SinkInstance};
use ferry_manifest::RetryPolicy;
use tokio::sync::mpsc;

use crate::PipelineError;
use crate::ledger::RowState;
use crate::swap::SwapRequest;

use super::ctx::StageCtx;
use super::isolate::{check_rows, isolate};
use super::{Envelope, Instance};

/// How many written batches a sink keeps unflushed (besides `max_wait`)
/// before it flushes: they stay in memory until then, to be sent again to
/// an instance rebuilt after a trap.
const MAX_UNFLUSHED_BATCHES: usize = 256;

/// How many times the batches of a lost instance are sent again to a new
/// one that traps too, before the pipeline stops.
const RESEND_ATTEMPTS: u32 = 3;

/// A batch written to the sink and not yet flushed.
pub(super) struct Written {
    env: Envelope,
    /// Rows of `env.batch` the sink took (neither rejected nor in conflict).
    accepted: Vec<u32>,
    /// Their source records, marked written once flushed.
    origins: Vec<u32>,
}

/// Written records waiting for the next flush. A sink may buffer writes
/// until its `flush`, and a trap drops the instance with its buffer, so
/// the batches are kept until the flush: a rebuilt instance is sent them
/// again ([`resend`]) before anything else.
pub(super) struct Unflushed {
    pieces: Vec<Written>,
    since: Option<Instant>,
    /// An exactly-once sink's token after the last write.
    last_token: Option<Vec<u8>>,
}

pub(super) async fn sink_task(
    mut ctx: StageCtx,
    mut rx: mpsc::Receiver<Envelope>,
    mut swaps: mpsc::UnboundedReceiver<SwapRequest>,
    mut sink: SinkInstance,
    max_wait: Duration,
) -> Result<(), PipelineError> {
    let mut unflushed = Unflushed {
        pieces: Vec::new(),
        since: None,
        last_token: None,
    };
    loop {
        let deadline = unflushed.since.map(|s| s + max_wait);
        let env = tokio::select! {
            biased;
            Some(request) = swaps.recv() => {
                let began = Instant::now();
                let SwapRequest { prepared, reply } = request;
                let digest = prepared.digest().to_string();
                let Some(Instance::Sink(mut new)) = prepared.instance else {
                    ctx.refuse_swap(reply, "the new plugin is not a sink".into());
                    continue;
                };
                // The old instance's writes are made durable (and their
                // records final) before the new one writes anything, and
                // an exactly-once new instance resumes where they end.
                flush(&ctx, &mut sink, &mut unflushed)?;
                new.set_resume_checkpoint(sink.resume_checkpoint().map(<[u8]>::to_vec));
                let old = std::mem::replace(&mut sink, new);
                ctx.shared.status.rebuilds.fetch_add(old.rebuilds(), Ordering::Relaxed);
                ctx.swapped(reply, &digest, began);
                continue;
            }
            // Before the input: under a steady stream the input is always
            // ready, and `max_wait` must still bound how long a written
            // record waits for its flush (and its checkpoint).
            _ = sleep_until(deadline) => {
                flush(&ctx, &mut sink, &mut unflushed)?;
                continue;
            }
            env = rx.recv() => env,
        };
        let Some(env) = env else { break };
        tokio::task::block_in_place(|| {
            let (accepted, origins) = write_batch(&ctx, &mut sink, &env, &mut unflushed)?;
            unflushed.pieces.push(Written {
                env,
                accepted,
                origins,
            });
            record_position(&ctx, &mut sink, &mut unflushed)
        })?;
        unflushed.since.get_or_insert_with(Instant::now);
        if unflushed.pieces.len() >= MAX_UNFLUSHED_BATCHES {
            flush(&ctx, &mut sink, &mut unflushed)?;
        }
    }
    flush(&ctx, &mut sink, &mut unflushed)?;
    ctx.shared
        .status
        .rebuilds
        .fetch_add(sink.rebuilds(), Ordering::Relaxed);
    Ok(())
}

pub(super) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// Makes the sink's writes durable, then marks their records written and
/// completes their pieces. A flush that traps lost the instance's buffer:
/// the rebuilt instance is sent the batches again and flushed once more.
pub(super) fn flush(
    ctx: &StageCtx,
    sink: &mut SinkInstance,
    unflushed: &mut Unflushed,
) -> Result<(), PipelineError> {
    if unflushed.pieces.is_empty() {
        return Ok(());
    }
    tokio::task::block_in_place(|| {
        if !sink.is_live() {
            resend(ctx, sink, unflushed, None)?;
        }
        let mut flushed = ctx.until_up(|| sink.flush());
        if matches!(flushed, Err(CallError::Fault { .. })) {
            resend(ctx, sink, unflushed, None)?;
            flushed = ctx.until_up(|| sink.flush());
        }
        flushed.map_err(|error| PipelineError::Flush {
            stage: ctx.stage.clone(),
            error,
        })
    })?;
    // Unflushed writes may be lost on an error above: the pipeline stops
    // without committing them, so they are read again on the next run.
    if let Some(token) = unflushed.last_token.take() {
        // A rebuilt or swapped-in exactly-once instance resumes here.
        sink.set_resume_checkpoint(Some(token));
    }
    for w in unflushed.pieces.drain(..) {
        ctx.shared
            .ledger
            .mark(w.env.seq, w.origins, RowState::Written);
        ctx.shared.ledger.done_piece(w.env.seq);
    }
    unflushed.since = None;
    ctx.shared.progress.notify_one();
    Ok(())
}

/// After a batch's writes: an exactly-once sink's token for it goes to the
/// ledger (committed with the checkpoint once the batch is flushed and
/// complete). A sink that lost its instance meanwhile is sent its unflushed
/// batches again, which records their tokens anew.
pub(super) fn record_position(
    ctx: &StageCtx,
    sink: &mut SinkInstance,
    unflushed: &mut Unflushed,
) -> Result<(), PipelineError> {
    if !sink.is_live() {
        return resend(ctx, sink, unflushed, None);
    }
    if !sink.exactly_once() {
        return Ok(());
    }
    let Some(seq) = unflushed.pieces.last().map(|w| w.env.seq) else {
        return Ok(());
    };
    match ctx.until_up(|| sink.position()) {
        Ok(Some(token)) => {
            ctx.shared.ledger.sink_token(seq, &ctx.stage, token.clone());
            unflushed.last_token = Some(token);
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(CallError::Fault { .. }) => resend(ctx, sink, unflushed, None),
        Err(error) => Err(PipelineError::Resend {
            stage: ctx.stage.clone(),
            error,
        }),
    }
}

/// Sends every unflushed batch (and `current`: a batch's rows already taken
/// by the lost instance) again to a new instance, in order. An exactly-once
/// sink first resumes from its last flushed token, discarding the lost
/// instance's unflushed writes, and its tokens are recorded anew. Blocking.
pub(super) fn resend(
    ctx: &StageCtx,
    sink: &mut SinkInstance,
    unflushed: &mut Unflushed,
    current: Option<(&Envelope, &[u32])>,
) -> Result<(), PipelineError> {
    let batches = unflushed.pieces.len() + usize::from(current.is_some());
    tracing::warn!(
        pipeline = %ctx.shared.pipeline,
        stage = %ctx.stage,
        "the sink's instance was lost with its unflushed writes; sending {batches} batches again to a new one"
    );
    let mut attempt = 1;
    loop {
        match try_resend(ctx, sink, unflushed, current) {
            Ok(()) => return Ok(()),
            Err(CallError::Fault { .. }) if attempt < RESEND_ATTEMPTS => attempt += 1,
            Err(error) => {
                return Err(PipelineError::Resend {
                    stage: ctx.stage.clone(),
                    error,
                });
            }
        }
    }
}

pub(super) fn try_resend(
    ctx: &StageCtx,
    sink: &mut SinkInstance,
    unflushed: &mut Unflushed,
    current: Option<(&Envelope, &[u32])>,
) -> Result<(), CallError> {
    ctx.until_up(|| sink.revive())?;
    let write_again = |sink: &mut SinkInstance, env: &Envelope, rows: &[u32]| {
        if rows.is_empty() {
            return Ok(());
        }
        let taken;
        let batch = if rows.len() == env.batch.len() {
            &env.batch
        } else {
            taken = env.batch.take(rows);
            &taken
        };
        let report = ctx.until_up(|| sink.write(batch))?;
        let refused = report.rejected.len() + report.conflicts.len();
        if refused > 0 {
            return Err(CallError::Contract(format!(
                "the new instance refused {refused} records the lost one had taken"
            )));
        }
        Ok(())
    };
    for w in &unflushed.pieces {
        write_again(sink, &w.env, &w.accepted)?;
        if let Some(token) = ctx.until_up(|| sink.position())? {
            ctx.shared
                .ledger
                .sink_token(w.env.seq, &ctx.stage, token.clone());
            unflushed.last_token = Some(token);
        }
    }
    if let Some((env, rows)) = current {
        write_again(sink, env, rows)?;
    }
    Ok(())
}

/// Writes a batch; returns the rows of it the sink took and their source
/// records (written, not yet flushed).
pub(super) fn write_batch(
    ctx: &StageCtx,
    sink: &mut SinkInstance,
    env: &Envelope,
    unflushed: &mut Unflushed,
) -> Result<(Vec<u32>, Vec<u32>), PipelineError> {
    // A sink's retryable error means its target is down: `until_up` waits
    // for it (pausing the pipeline), so isolation sees no retryable error
    // unless the pipeline was stopped meanwhile.
    let no_retry = RetryPolicy {
        attempts: 1,
        ..ctx.retry
    };
    // Rows the current instance took so far: should it trap on a later
    // part, its successor gets them again with the unflushed batches.
    let mut taken: Vec<u32> = Vec::with_capacity(env.batch.len());
    let mut lost: Option<PipelineError> = None;
    let parts = isolate(&env.batch, &no_retry, |b, rows| {
        if lost.is_some() {
            return Err(CallError::Fatal("the sink's instance was lost".into()));
        }
        if !sink.is_live()
            && let Err(e) = resend(ctx, sink, unflushed, Some((env, &taken)))
        {
            lost = Some(e);
            return Err(CallError::Fatal("the sink's instance was lost".into()));
        }
        let report = ctx.until_up(|| sink.write(b))?;
        check_rows("rejected", report.rejected.iter().map(|r| r.row), b.len())?;
        check_rows("conflicts", report.conflicts.iter().map(|r| r.row), b.len())?;
        let mut refused = vec![false; rows.len()];
        for r in report.rejected.iter().chain(&report.conflicts) {
            if let Some(f) = refused.get_mut(r.row as usize) {
                *f = true;
            }
        }
        taken.extend(
            rows.iter()
                .zip(refused)
                .filter(|(_, f)| !f)
                .map(|(&r, _)| r),
        );
        Ok(report)
    });
    if let Some(e) = lost {
        return Err(e);
    }
    if ctx.stopped_while_down.get() {
        return Err(PipelineError::SinkDown {
            stage: ctx.stage.clone(),
        });
    }
    ctx.breaker(&parts)?;
    let mut written = Vec::with_capacity(env.batch.len());
    for part in parts {
        match &part.result {
            Ok(report) => {
                let rejected: Vec<(u32, String)> = report
                    .rejected
                    .iter()
                    .map(|r| (part.rows[r.row as usize], r.reason.clone()))
                    .collect();
                ctx.dead_letter(env, &env.batch, &rejected, "rejected", part.attempts)?;
                let conflicts: Vec<(u32, String)> = report
                    .conflicts
                    .iter()
                    .map(|r| (part.rows[r.row as usize], r.reason.clone()))
                    .collect();
                ctx.dead_letter(env, &env.batch, &conflicts, "conflict", part.attempts)?;
                let mut refused = vec![false; part.rows.len()];
                for r in report.rejected.iter().chain(&report.conflicts) {
                    refused[r.row as usize] = true;
                }
                written.extend(
                    part.rows
                        .iter()
                        .zip(refused)
                        .filter(|(_, refused)| !refused)
                        .filter_map(|(&r, _)| env.origins.get(r as usize).copied()),
                );
            }
            Err(e) => ctx.fail_part(env, &part, e)?,
        }
    }
    Ok((taken, written))
}
