//! Mappers: a batch in, a batch out. See [`Mapper`].

use crate::PluginError;
use crate::batch::{Batch, Row};
use crate::builder::{BatchBuilder, ColumnId, RowBuilder};
use crate::types::{self, Op, RecordIssue};

/// A plugin that turns each batch into another: rename, convert, enrich,
/// split or drop records. Exported with [`export_mapper!`](crate::export_mapper).
///
/// One value of the type lives per plugin instance, made by
/// [`open`](Mapper::open) from the manifest's `config` table.
pub trait Mapper: Sized + 'static {
    /// The plugin's settings, parsed from the manifest's `config` table.
    /// Mark it `#[serde(deny_unknown_fields)]` so typos are caught.
    type Config: serde::de::DeserializeOwned;

    /// Builds the mapper from its settings. Return
    /// [`PluginError::invalid_config`] for settings that parse but make no
    /// sense; the pipeline does not start then.
    fn open(config: Self::Config) -> Result<Self, PluginError>;

    /// Maps one batch. For each input record, emit zero or more output
    /// records on `out` ([`Mapped::emit`], [`Mapped::emit_copy`]), or
    /// [`reject`](Mapped::reject) it. An input record neither emitted from
    /// nor rejected is dropped on purpose (the host counts it as filtered).
    ///
    /// An `Err` fails the whole batch: `retryable` makes the host call again
    /// later, `fatal` sends the batch to the dead-letter store.
    fn map(&mut self, input: &Batch, out: &mut Mapped) -> Result<(), PluginError>;

    /// The raw entry point, called with the batch exactly as it crossed the
    /// boundary. The default builds a [`Batch`] view and calls
    /// [`map`](Mapper::map); override it only to skip the SDK entirely (the
    /// `passthrough` plugin does, to measure the boundary alone).
    fn map_raw(&mut self, input: types::Batch) -> Result<MapOutput, PluginError> {
        map_with_view(self, input)
    }
}

/// Runs [`Mapper::map`] over a [`Batch`] view of `input`: what the default
/// [`Mapper::map_raw`] does.
pub fn map_with_view<M: Mapper>(
    mapper: &mut M,
    input: types::Batch,
) -> Result<MapOutput, PluginError> {
    let batch = Batch::from_raw(input)?;
    let mut out = Mapped::new(batch.len());
    mapper.map(&batch, &mut out)?;
    out.finish(batch)
}

/// What a mapper returns, in the contract's layout.
#[derive(Debug, Clone, PartialEq)]
pub struct MapOutput {
    /// The records that go on.
    pub records: types::Batch,
    /// For each output record, the index of the input record it came from.
    pub derived_from: Vec<u32>,
    /// Input records that could not be mapped, with the reason.
    pub rejected: Vec<RecordIssue>,
}

impl MapOutput {
    /// The input, unchanged: every record goes on as it came.
    pub fn unchanged(input: types::Batch) -> MapOutput {
        let n = u32::try_from(input.ops.len()).unwrap_or(u32::MAX);
        MapOutput {
            records: input,
            derived_from: (0..n).collect(),
            rejected: Vec::new(),
        }
    }
}

fn row_number(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// The output of one [`Mapper::map`] call, being built.
#[derive(Debug, Default)]
pub struct Mapped {
    builder: BatchBuilder,
    derived_from: Vec<u32>,
    rejected: Vec<RecordIssue>,
    forward: bool,
}

impl Mapped {
    /// An empty output with room for `rows` records.
    pub fn new(rows: usize) -> Mapped {
        Mapped {
            builder: BatchBuilder::with_capacity(rows),
            derived_from: Vec::with_capacity(rows),
            rejected: Vec::new(),
            forward: false,
        }
    }

    /// Starts an output record derived from `from`, with its key, operation
    /// and metadata (version, updated-at, origin) but no fields yet.
    pub fn emit(&mut self, from: &Row<'_>) -> RowBuilder<'_> {
        self.emit_as(from, from.key(), from.op())
    }

    /// Starts an output record derived from `from` with all of its fields
    /// copied: set or null fields on the result to change them.
    pub fn emit_copy(&mut self, from: &Row<'_>) -> RowBuilder<'_> {
        self.derived_from.push(row_number(from.index()));
        self.builder.copy_row(from)
    }

    /// Starts an output record derived from `from` under another key or
    /// operation (for splits); metadata is carried, fields are not.
    pub fn emit_as(&mut self, from: &Row<'_>, key: &str, op: Op) -> RowBuilder<'_> {
        self.derived_from.push(row_number(from.index()));
        let mut r = self.builder.row(key, op);
        r.copy_meta(from);
        r
    }

    /// Sends input record `from` to the dead-letter store with `reason`.
    pub fn reject(&mut self, from: &Row<'_>, reason: impl Into<String>) {
        self.rejected.push(RecordIssue {
            row: row_number(from.index()),
            reason: reason.into(),
        });
    }

    /// Lets every input record that is not rejected go on unchanged. When
    /// nothing is rejected the input batch is returned as it came, without
    /// a copy. Cannot be mixed with `emit*` in the same call.
    pub fn forward_all(&mut self) {
        self.forward = true;
    }

    /// The output column `name` (created if needed), for
    /// [`RowBuilder::set_at`] in hot loops.
    pub fn column(&mut self, name: &str) -> ColumnId {
        self.builder.column(name)
    }

    /// The number of output records so far.
    pub fn len(&self) -> usize {
        self.builder.len()
    }

    /// Whether no output record was started.
    pub fn is_empty(&self) -> bool {
        self.builder.is_empty()
    }

    /// The rejections so far.
    pub fn rejected(&self) -> &[RecordIssue] {
        &self.rejected
    }

    /// Finishes the output for `input`, the batch that was mapped.
    pub fn finish(self, input: Batch) -> Result<MapOutput, PluginError> {
        if !self.forward {
            return Ok(MapOutput {
                records: self.builder.finish(),
                derived_from: self.derived_from,
                rejected: self.rejected,
            });
        }
        if !self.builder.is_empty() {
            return Err(PluginError::fatal(
                "the mapper both forwarded its input and emitted records",
            ));
        }
        if self.rejected.is_empty() {
            return Ok(MapOutput::unchanged(input.into_raw()));
        }
        let mut skip = vec![false; input.len()];
        for issue in &self.rejected {
            if let Some(s) = skip.get_mut(issue.row as usize) {
                *s = true;
            }
        }
        let mut builder = BatchBuilder::with_capacity(input.len());
        let mut derived_from = Vec::with_capacity(input.len());
        for row in input.rows() {
            if !skip.get(row.index()).copied().unwrap_or(false) {
                builder.copy_row(&row);
                derived_from.push(row_number(row.index()));
            }
        }
        Ok(MapOutput {
            records: builder.finish(),
            derived_from,
            rejected: self.rejected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;

    fn input() -> types::Batch {
        let mut b = BatchBuilder::new();
        b.row("a", Op::Upsert).set("x", 1).version(1);
        b.row("b", Op::Upsert).set("x", 2).version(2);
        b.row("c", Op::Delete).version(3);
        b.finish()
    }

    struct Double;
    impl Mapper for Double {
        type Config = ();
        fn open(_: ()) -> Result<Self, PluginError> {
            Ok(Double)
        }
        fn map(&mut self, input: &Batch, out: &mut Mapped) -> Result<(), PluginError> {
            let x = input.column("x");
            for row in input.rows() {
                match x.map(|c| row.value(c)) {
                    Some(Value::Int(2)) => out.reject(&row, "two"),
                    Some(Value::Int(n)) => {
                        out.emit(&row).set("x", n * 2);
                    }
                    _ => {}
                }
            }
            Ok(())
        }
    }

    #[test]
    fn emit_reject_and_drop() {
        let out = map_with_view(&mut Double, input()).unwrap();
        assert_eq!(out.derived_from, [0]);
        assert_eq!(
            out.rejected,
            [RecordIssue {
                row: 1,
                reason: "two".into()
            }]
        );
        let b = Batch::from_raw(out.records).unwrap();
        assert_eq!(b.row(0).unwrap().get("x"), Value::Int(2));
        assert_eq!(b.row(0).unwrap().version(), Some(1));
    }

    #[test]
    fn forward_all_without_rejects_is_the_input() {
        let raw = input();
        let batch = Batch::from_raw(raw.clone()).unwrap();
        let mut m = Mapped::new(3);
        m.forward_all();
        let out = m.finish(batch).unwrap();
        assert_eq!(out.records, raw);
        assert_eq!(out.derived_from, [0, 1, 2]);
    }

    #[test]
    fn forward_all_skips_rejected() {
        let batch = Batch::from_raw(input()).unwrap();
        let mut m = Mapped::new(3);
        m.forward_all();
        m.reject(&batch.row(1).unwrap(), "no");
        let out = m.finish(batch).unwrap();
        assert_eq!(out.derived_from, [0, 2]);
        let b = Batch::from_raw(out.records).unwrap();
        assert_eq!(b.keys().iter().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(b.row(1).unwrap().op(), Op::Delete);
    }
}
