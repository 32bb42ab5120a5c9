//! How many bytes a plugin's answer takes on the host, for the per-plugin
//! output cap (`max_output_mb`).
//!
//! What a plugin returns is copied out of its linear memory when the call
//! returns. The copy is not bounded by the plugin's memory limit: the lists
//! of an answer may all point at the same bytes (60 columns over one 16 MiB
//! buffer copy to 960 MiB). So the cap is enforced twice: while copying, by
//! the Store's hostcall fuel, which the instance sets to the same number of
//! bytes (wasmtime counts each list and string it copies, at its host size,
//! and traps before allocating past the budget: fault `output-size`); and
//! once copied, by this measure, which keeps an answer larger than the stage
//! should ever produce out of the pipeline's buffers: such an answer is
//! dropped at once and the call fails with `output-size`.

use crate::bindings::resolver::exports::ferry::plugin::resolver::{Resolution, Resolutions};
use crate::bindings::{Batch, Column, RecordIssue, Texts, Values};
use crate::{Mapped, Polled, Violation, WriteReport};

/// The host-side size of a value returned by a plugin call.
pub(crate) trait OutputSize {
    /// Bytes, counting element data and per-item headers.
    fn output_bytes(&self) -> usize;
}

const HEADER: usize = std::mem::size_of::<Vec<u8>>();

fn list<T>(items: &[T]) -> usize {
    HEADER + std::mem::size_of_val(items)
}

impl OutputSize for () {
    fn output_bytes(&self) -> usize {
        0
    }
}

impl OutputSize for Vec<u8> {
    fn output_bytes(&self) -> usize {
        list(self)
    }
}

impl OutputSize for Texts {
    fn output_bytes(&self) -> usize {
        list(&self.offsets) + list(&self.data)
    }
}

impl OutputSize for Column {
    fn output_bytes(&self) -> usize {
        let values = match &self.values {
            Values::Ints(v) | Values::Timestamps(v) => list(v),
            Values::Floats(v) => list(v),
            Values::Bools(v) => list(v),
            Values::Text(t) | Values::Bytes(t) | Values::Json(t) => t.output_bytes(),
        };
        HEADER + self.name.len() + values + self.valid.as_deref().map_or(0, list)
    }
}

impl OutputSize for Batch {
    fn output_bytes(&self) -> usize {
        self.keys.output_bytes()
            + list(&self.ops)
            + self.versions.as_deref().map_or(0, list)
            + self.updated_at.as_deref().map_or(0, list)
            + self.origins.as_ref().map_or(0, Texts::output_bytes)
            + self.columns.iter().map(Column::output_bytes).sum::<usize>()
    }
}

fn issues(list_: &[RecordIssue]) -> usize {
    list(list_) + list_.iter().map(|i| i.reason.len()).sum::<usize>()
}

impl OutputSize for Mapped {
    fn output_bytes(&self) -> usize {
        self.records.output_bytes() + list(&self.derived_from) + issues(&self.rejected)
    }
}

impl OutputSize for Polled {
    fn output_bytes(&self) -> usize {
        self.records.output_bytes() + list(&self.checkpoint)
    }
}

impl OutputSize for WriteReport {
    fn output_bytes(&self) -> usize {
        issues(&self.rejected) + issues(&self.conflicts)
    }
}

impl OutputSize for Vec<Violation> {
    fn output_bytes(&self) -> usize {
        list(self)
            + self
                .iter()
                .map(|v| {
                    HEADER * 3
                        + v.field.as_ref().map_or(0, String::len)
                        + v.rule.len()
                        + v.message.len()
                })
                .sum::<usize>()
    }
}

impl OutputSize for Resolutions {
    fn output_bytes(&self) -> usize {
        let deferred: usize = self
            .decisions
            .iter()
            .map(|d| match d {
                Resolution::Defer(why) => why.len(),
                _ => 0,
            })
            .sum();
        list(&self.decisions) + deferred + self.merged.output_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchExt;
    use crate::bindings::Op;

    #[test]
    fn a_batch_counts_its_bytes() {
        let small = Batch::empty();
        let mut big = Batch::empty();
        big.keys = Texts::from_strs(["a"; 1000]);
        big.ops = vec![Op::Upsert; 1000];
        big.columns.push(Column {
            name: "padding".into(),
            values: Values::Text(Texts::from_strs([&*"x".repeat(1000); 1000])),
            valid: None,
        });
        assert!(small.output_bytes() < 200);
        assert!(big.output_bytes() > 1_000_000);
    }
}
