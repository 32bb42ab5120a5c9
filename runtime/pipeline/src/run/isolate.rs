//! Isolation of failing records: a call that fails on a batch is retried
//! (retryable errors) or made again on halves of it until the records that
//! fail are alone, so one poison record is dead-lettered and its batch-mates
//! go on.

use std::time::{Duration, Instant};

use ferry_host::batch::BatchExt;
use ferry_host::{Batch, CallError};
use ferry_manifest::RetryPolicy;

/// `wait` with jitter: a random duration between half of it and all of
/// it, so stages and pipelines retrying the same target spread out.
pub(super) fn jittered(wait: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    let fraction = (h.finish() % 1_000) as u32;
    wait / 2 + wait / 2 * fraction / 1_000
}

/// A sub-batch a call was made on, and how it went.
pub(super) struct Part<R> {
    /// Indices into the stage's input batch.
    pub(super) rows: Vec<u32>,
    /// The sub-batch, when it is not the whole input.
    pub(super) sub: Option<Batch>,
    pub(super) result: Result<R, CallError>,
    pub(super) attempts: u32,
}

/// Calls `f` on `batch`, retrying retryable errors and splitting the batch in
/// halves on other failures until the failing records are isolated.
/// `f` gets the (sub-)batch and the rows of `batch` it holds.
pub(super) fn isolate<R>(
    batch: &Batch,
    retry: &RetryPolicy,
    mut f: impl FnMut(&Batch, &[u32]) -> Result<R, CallError>,
) -> Vec<Part<R>> {
    let mut parts = Vec::new();
    let all: Vec<u32> = (0..batch.len() as u32).collect();
    isolate_into(batch, all, true, retry, 0, &mut f, &mut parts);
    parts
}

/// `spent`: calls already made on a batch containing these rows (retries
/// are not waited for again after a split).
pub(super) fn isolate_into<R>(
    batch: &Batch,
    rows: Vec<u32>,
    whole: bool,
    retry: &RetryPolicy,
    spent: u32,
    f: &mut impl FnMut(&Batch, &[u32]) -> Result<R, CallError>,
    parts: &mut Vec<Part<R>>,
) {
    let sub = if whole { None } else { Some(batch.take(&rows)) };
    let mut attempts = spent;
    loop {
        attempts += 1;
        let result = f(sub.as_ref().unwrap_or(batch), &rows);
        match result {
            Err(CallError::Retryable(_)) if attempts < retry.attempts => {
                std::thread::sleep(jittered(retry.backoff_after(attempts)));
            }
            // Retries used up, or a failure: split until the records that
            // fail are alone.
            Err(
                CallError::Retryable(_)
                | CallError::Fault { .. }
                | CallError::Fatal(_)
                | CallError::Contract(_)
                | CallError::OutputTooLarge { .. },
            ) if rows.len() > 1 => {
                let (left, right) = rows.split_at(rows.len() / 2);
                isolate_into(batch, left.to_vec(), false, retry, attempts, f, parts);
                isolate_into(batch, right.to_vec(), false, retry, attempts, f, parts);
                return;
            }
            result => {
                parts.push(Part {
                    rows,
                    sub,
                    result,
                    attempts,
                });
                return;
            }
        }
    }
}

/// Checks that the rows a plugin's answer names are rows of the batch it
/// got (`ferry_batch::check_rows`, which the fuzzer exercises); a row past
/// the end breaks the contract.
pub(super) fn check_rows(
    what: &str,
    rows: impl IntoIterator<Item = u32>,
    len: usize,
) -> Result<(), CallError> {
    ferry_host::batch::check_rows(what, rows, len).map_err(CallError::Contract)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ferry_host::batch::{BatchExt, JsonRecord, batch_from_json};
    use ferry_host::{Batch, CallError, FaultKind, Op};
    use ferry_manifest::RetryPolicy;

    use super::isolate;

    fn batch(n: usize) -> Batch {
        let records: Vec<JsonRecord> = (0..n)
            .map(|i| JsonRecord {
                key: format!("k{i}"),
                op: Op::Upsert,
                fields: serde_json::Map::new(),
            })
            .collect();
        batch_from_json(&records)
    }

    fn quick(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        }
    }

    fn trap() -> CallError {
        CallError::Fault {
            kind: FaultKind::Trap,
            message: "poison".into(),
        }
    }

    #[test]
    fn a_batch_that_works_is_one_call_and_one_part() {
        let b = batch(16);
        let mut calls = 0;
        let parts = isolate(&b, &quick(3), |sub, rows| {
            calls += 1;
            assert_eq!(sub.len(), rows.len());
            Ok::<_, CallError>(rows.len())
        });
        assert_eq!(calls, 1);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].rows, (0..16).collect::<Vec<u32>>());
        assert!(parts[0].sub.is_none(), "the whole batch is not copied");
        assert_eq!(parts[0].attempts, 1);
    }

    #[test]
    fn poison_records_end_alone_and_every_other_row_in_exactly_one_good_part() {
        let b = batch(37);
        let poison = ["k5", "k6", "k30"];
        let parts = isolate(&b, &quick(1), |sub, rows| {
            // The sub-batch holds exactly the rows it names.
            for (i, &r) in rows.iter().enumerate() {
                assert_eq!(sub.key(i), format!("k{r}"));
            }
            if (0..sub.len()).any(|i| poison.contains(&sub.key(i))) {
                Err(trap())
            } else {
                Ok(())
            }
        });
        let mut seen: Vec<u32> = Vec::new();
        for p in &parts {
            match &p.result {
                Ok(()) => {}
                Err(_) => {
                    assert_eq!(p.rows.len(), 1, "a failure is isolated to one row");
                    assert!(poison.contains(&format!("k{}", p.rows[0]).as_str()));
                }
            }
            seen.extend(&p.rows);
        }
        assert_eq!(
            seen,
            (0..37).collect::<Vec<u32>>(),
            "each row once, in order"
        );
        let failed = parts.iter().filter(|p| p.result.is_err()).count();
        assert_eq!(failed, poison.len());
        // Bisection: far fewer calls than one per row.
        assert!(parts.len() < 20, "{} parts", parts.len());
    }

    #[test]
    fn a_retryable_error_is_retried_before_anything_is_split() {
        let b = batch(8);
        let mut calls = 0;
        let parts = isolate(&b, &quick(3), |_, _| {
            calls += 1;
            if calls < 3 {
                Err(CallError::Retryable("busy".into()))
            } else {
                Ok(())
            }
        });
        assert_eq!(calls, 3);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].attempts, 3);
        assert!(parts[0].result.is_ok());
    }

    #[test]
    fn a_retryable_error_that_persists_is_split_down_to_single_rows() {
        let b = batch(4);
        let parts = isolate(&b, &quick(2), |_, _| {
            Err::<(), _>(CallError::Retryable("down".into()))
        });
        assert_eq!(parts.len(), 4);
        assert!(parts.iter().all(|p| p.rows.len() == 1 && p.result.is_err()));
        // Retries are not waited for again after a split.
        assert!(parts.iter().all(|p| p.attempts >= 2));
    }
}
