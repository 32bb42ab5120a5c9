//! Sinks: write records to a system. See [`Sink`].

use crate::PluginError;
use crate::batch::{Batch, Row, TextList};
use crate::builder::BatchBuilder;
use crate::types::{self, RecordIssue};

/// A plugin that writes records to a system. Exported with
/// [`export_sink!`](crate::export_sink) (or
/// [`export_connector!`](crate::export_connector) with a source).
pub trait Sink: Sized + 'static {
    /// The plugin's settings, parsed from the manifest's `config` table.
    type Config: serde::de::DeserializeOwned;

    /// Builds the sink (open files, connect).
    fn open(config: Self::Config) -> Result<Self, PluginError>;

    /// Writes a batch, upserting or deleting by key. Writing the same batch
    /// twice must leave the same state. Records named in neither list of
    /// the report were written.
    fn write(&mut self, records: &Batch) -> Result<WriteReport, PluginError>;

    /// Makes every write so far durable. The default does nothing.
    fn flush(&mut self) -> Result<(), PluginError> {
        Ok(())
    }

    /// The current state of `keys` in the target, for two-way sync; keys
    /// that do not exist are left out. The default answers an empty batch
    /// (a target that cannot be read back).
    fn fetch(&mut self, keys: &TextList) -> Result<types::Batch, PluginError> {
        let _ = keys;
        Ok(BatchBuilder::new().finish())
    }
}

/// Commit tokens: a [`Sink`] that can discard the writes made after a
/// committed point, so ferry delivers each record to it exactly once, even
/// across crashes, to a target that cannot upsert (an appended file).
/// Exported with [`export_exactly_once_sink!`](crate::export_exactly_once_sink)
/// or [`export_exactly_once_connector!`](crate::export_exactly_once_connector)
/// (the WIT interface `sink-commit`).
///
/// ferry asks [`position`](SinkCommit::position) after the writes of each
/// batch, stores the token of the last delivered batch with the source
/// checkpoint once a [`flush`](Sink::flush) made those writes durable, and
/// hands the committed token to [`resume`](SinkCommit::resume) before
/// anything else whenever the sink starts again (after a restart, a crash,
/// a trap, a hot reload).
pub trait SinkCommit: Sink {
    /// Discards every write made after `token` (`None`: nothing was ever
    /// committed, keep everything). A token made for another target (a
    /// changed path) should be ignored; one that cannot be read is
    /// [`PluginError::invalid_config`].
    fn resume(&mut self, token: Option<&[u8]>) -> Result<(), PluginError>;

    /// A token naming the state after every write so far, once flushed.
    fn position(&mut self) -> Result<Vec<u8>, PluginError>;
}

fn row_number(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// What became of the records of one [`Sink::write`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteReport {
    /// Records the target refused; they go to the dead-letter store.
    pub rejected: Vec<RecordIssue>,
    /// Records whose target changed since the source read them; they go to
    /// conflict resolution.
    pub conflicts: Vec<RecordIssue>,
}

impl WriteReport {
    /// Every record was written.
    pub fn ok() -> WriteReport {
        WriteReport::default()
    }

    /// Marks `row` as refused by the target, with `reason`.
    pub fn reject(&mut self, row: &Row<'_>, reason: impl Into<String>) {
        self.rejected.push(RecordIssue {
            row: row_number(row.index()),
            reason: reason.into(),
        });
    }

    /// Marks `row` as in conflict with the target, with `reason`.
    pub fn conflict(&mut self, row: &Row<'_>, reason: impl Into<String>) {
        self.conflicts.push(RecordIssue {
            row: row_number(row.index()),
            reason: reason.into(),
        });
    }
}
