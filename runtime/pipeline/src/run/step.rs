//! The mapper and validator tasks: call the plugin on each batch (with
//! isolation of failing records), dead-letter or route what it refused,
//! and forward the rest.

use std::sync::atomic::Ordering;
use std::time::Instant;

use ferry_host::batch::BatchExt;
use ferry_host::{Batch, CallError, MapperInstance, ValidatorInstance};
use tokio::sync::mpsc;

use crate::PipelineError;
use crate::swap::SwapRequest;

use super::ctx::StageCtx;
use super::isolate::{Part, check_rows, isolate};
use super::{Envelope, Instance, Router};

pub(super) enum Step {
    Mapper(MapperInstance),
    Validator(ValidatorInstance),
}

impl Step {
    fn rebuilds(&self) -> u64 {
        match self {
            Step::Mapper(m) => m.rebuilds(),
            Step::Validator(v) => v.rebuilds(),
        }
    }
}

pub(super) async fn step_task(
    mut ctx: StageCtx,
    router: Router,
    mut rx: mpsc::Receiver<Envelope>,
    mut swaps: mpsc::UnboundedReceiver<SwapRequest>,
    mut step: Step,
) -> Result<(), PipelineError> {
    loop {
        let mut env = tokio::select! {
            biased;
            Some(request) = swaps.recv() => {
                let began = Instant::now();
                let SwapRequest { prepared, reply } = request;
                let digest = prepared.digest().to_string();
                let old = step.rebuilds();
                match (prepared.instance, &step) {
                    (Some(Instance::Mapper(m)), Step::Mapper(_)) => step = Step::Mapper(m),
                    (Some(Instance::Validator(v)), Step::Validator(_)) => step = Step::Validator(v),
                    _ => {
                        ctx.refuse_swap(reply, "the new plugin is of another kind".into());
                        continue;
                    }
                }
                ctx.shared.status.rebuilds.fetch_add(old, Ordering::Relaxed);
                ctx.swapped(reply, &digest, began);
                continue;
            }
            env = rx.recv() => match env {
                Some(env) => env,
                None => break,
            },
        };
        let forward = tokio::task::block_in_place(|| match &mut step {
            Step::Mapper(m) => map_batch(&ctx, m, &env),
            Step::Validator(v) => validate_batch(&ctx, v, &mut env),
        })?;
        for (batch, origins) in forward {
            router.forward(&ctx.shared, env.seq, batch, origins).await?;
        }
        ctx.shared.ledger.done_piece(env.seq);
        ctx.shared.progress.notify_one();
    }
    let rebuilds = step.rebuilds();
    ctx.shared
        .status
        .rebuilds
        .fetch_add(rebuilds, Ordering::Relaxed);
    Ok(())
}

pub(super) type Forward = Vec<(Batch, Vec<u32>)>;

pub(super) fn map_batch(
    ctx: &StageCtx,
    mapper: &mut MapperInstance,
    env: &Envelope,
) -> Result<Forward, PipelineError> {
    let parts = isolate(&env.batch, &ctx.retry, |b, _| {
        let mapped = mapper.map(b)?;
        // A batch that cannot be read fails the call (and is split to
        // isolate the records at fault); a malformed value fails only the
        // records it derives from, below.
        mapped.records.check_shape().map_err(CallError::Contract)?;
        if mapped.derived_from.len() != mapped.records.len() {
            return Err(CallError::Contract(format!(
                "derived-from has {} entries for {} output records",
                mapped.derived_from.len(),
                mapped.records.len()
            )));
        }
        check_rows("derived-from", mapped.derived_from.iter().copied(), b.len())?;
        check_rows("rejected", mapped.rejected.iter().map(|r| r.row), b.len())?;
        Ok(mapped)
    });
    ctx.breaker(&parts)?;
    let mut forward = Vec::new();
    for part in parts {
        match &part.result {
            Ok(mapped) => {
                let rejected: Vec<(u32, String)> = mapped
                    .rejected
                    .iter()
                    .map(|r| (part.rows[r.row as usize], r.reason.clone()))
                    .collect();
                ctx.invalid(env, &env.batch, &rejected, "rejected")?;
                let keep = malformed_values(ctx, env, &part, mapped, &rejected)?;
                let input_of = |out: usize| part.rows[mapped.derived_from[out] as usize];
                let origins = keep
                    .iter()
                    .map(|&out| {
                        env.origins
                            .get(input_of(out as usize) as usize)
                            .copied()
                            .unwrap_or(0)
                    })
                    .collect();
                if let Ok(mapped) = part.result {
                    let records = if keep.len() == mapped.records.len() {
                        mapped.records
                    } else {
                        mapped.records.take(&keep)
                    };
                    forward.push((records, origins));
                }
            }
            Err(e) => ctx.fail_part(env, &part, e)?,
        }
    }
    Ok(forward)
}

/// Dead-letters the input records from which a mapper derived malformed
/// values (text not UTF-8, `json` not JSON: reason `malformed-output`, the
/// detail naming the column and the problem) and returns the output records
/// to forward: those neither malformed nor derived from such a record.
/// Records the mapper also rejected are dead-lettered once, as rejected.
pub(super) fn malformed_values(
    ctx: &StageCtx,
    env: &Envelope,
    part: &Part<ferry_host::Mapped>,
    mapped: &ferry_host::Mapped,
    rejected: &[(u32, String)],
) -> Result<Vec<u32>, PipelineError> {
    let all = || (0..mapped.records.len() as u32).collect();
    let faults = mapped.records.value_faults();
    if faults.is_empty() {
        return Ok(all());
    }
    let input_of = |out: usize| part.rows[mapped.derived_from[out] as usize];
    let mut bad_outputs = std::collections::HashSet::new();
    let mut bad_inputs: std::collections::BTreeMap<u32, String> = Default::default();
    for (out, why) in faults {
        bad_outputs.insert(out);
        let input = input_of(out);
        if rejected.iter().any(|(r, _)| *r == input) {
            continue;
        }
        let why = format!(
            "output record {out} (key `{}`): {why}",
            mapped.records.key(out)
        );
        bad_inputs
            .entry(input)
            .and_modify(|s| {
                s.push_str("; ");
                s.push_str(&why);
            })
            .or_insert_with(|| format!("the mapper's {why}"));
    }
    let letters: Vec<(u32, String)> = bad_inputs
        .iter()
        .map(|(r, why)| (*r, why.clone()))
        .collect();
    ctx.dead_letter(env, &env.batch, &letters, "malformed-output", part.attempts)?;
    Ok((0..mapped.records.len())
        .filter(|&out| !bad_outputs.contains(&out) && !bad_inputs.contains_key(&input_of(out)))
        .map(|out| out as u32)
        .collect())
}

pub(super) fn validate_batch(
    ctx: &StageCtx,
    validator: &mut ValidatorInstance,
    env: &mut Envelope,
) -> Result<Forward, PipelineError> {
    let parts = isolate(&env.batch, &ctx.retry, |b, _| {
        let violations = validator.validate(b)?;
        check_rows("a violation", violations.iter().map(|v| v.row), b.len())?;
        Ok(violations)
    });
    ctx.breaker(&parts)?;
    let mut forward = Vec::new();
    for part in parts {
        match &part.result {
            Ok(violations) if violations.is_empty() => match part.sub {
                // The whole input is valid: it goes on as it is, uncopied.
                None => forward.push((
                    std::mem::replace(&mut env.batch, Batch::empty()),
                    std::mem::take(&mut env.origins),
                )),
                Some(sub) => {
                    let origins = part
                        .rows
                        .iter()
                        .map(|&r| env.origins.get(r as usize).copied().unwrap_or(0))
                        .collect();
                    forward.push((sub, origins));
                }
            },
            Ok(violations) => {
                let batch = part.sub.as_ref().unwrap_or(&env.batch);
                // Every violation of a record, in one reason.
                let mut reasons: Vec<Option<String>> = vec![None; batch.len()];
                for v in violations {
                    let text = match &v.field {
                        Some(f) => format!("{f}: {} ({})", v.message, v.rule),
                        None => format!("{} ({})", v.message, v.rule),
                    };
                    let slot = &mut reasons[v.row as usize];
                    match slot {
                        Some(s) => {
                            s.push_str("; ");
                            s.push_str(&text);
                        }
                        None => *slot = Some(text),
                    }
                }
                let invalid: Vec<(u32, String)> = reasons
                    .iter()
                    .enumerate()
                    .filter_map(|(i, r)| r.as_ref().map(|r| (part.rows[i], r.clone())))
                    .collect();
                ctx.invalid(env, &env.batch, &invalid, "invalid")?;
                let valid: Vec<u32> = (0..batch.len() as u32)
                    .filter(|&i| reasons[i as usize].is_none())
                    .collect();
                if !valid.is_empty() {
                    let origins = valid
                        .iter()
                        .map(|&i| {
                            env.origins
                                .get(part.rows[i as usize] as usize)
                                .copied()
                                .unwrap_or(0)
                        })
                        .collect();
                    forward.push((batch.take(&valid), origins));
                }
            }
            Err(e) => ctx.fail_part(env, &part, e)?,
        }
    }
    Ok(forward)
}
