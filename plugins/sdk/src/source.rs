//! Sources: read records from a system. See [`Source`].

use crate::PluginError;
use crate::types;

/// A plugin that reads records from a system, a batch per poll. Exported
/// with [`export_source!`](crate::export_source) (or
/// [`export_connector!`](crate::export_connector) with a sink).
pub trait Source: Sized + 'static {
    /// The plugin's settings, parsed from the manifest's `config` table.
    type Config: serde::de::DeserializeOwned;

    /// Builds the source. `checkpoint` is the last position the host
    /// committed (bytes this source made in an earlier [`Polled`]), or
    /// `None` on a first run; reading resumes just after it. A checkpoint
    /// that cannot be decoded is an [`PluginError::invalid_config`].
    fn open(config: Self::Config, checkpoint: Option<&[u8]>) -> Result<Self, PluginError>;

    /// Reads up to `max_records` records.
    fn poll(&mut self, max_records: u32) -> Result<Polled, PluginError>;

    /// Everything up to `checkpoint` is durably delivered: release it
    /// (acknowledge a queue, drop old WAL). The default does nothing.
    fn commit(&mut self, checkpoint: &[u8]) -> Result<(), PluginError> {
        let _ = checkpoint;
        Ok(())
    }
}

/// Where a source stands after a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceStatus {
    /// More records are ready now: the host polls again at once.
    More,
    /// Nothing more for now; records may come later. A one-shot pipeline
    /// ends here; a following one polls again later.
    CaughtUp,
    /// The source will never have more records.
    Finished,
}

/// The answer to one poll.
#[derive(Debug, Clone, PartialEq)]
pub struct Polled {
    /// The records read (build them with a [`BatchBuilder`](crate::BatchBuilder)).
    pub records: types::Batch,
    /// An opaque position just past these records, handed back to
    /// [`Source::open`] after a restart.
    pub checkpoint: Vec<u8>,
    /// Whether to poll again now, later, or never.
    pub status: SourceStatus,
}
