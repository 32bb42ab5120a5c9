//! Resolvers: settle conflicts between two versions of records. See
//! [`Resolver`].

use crate::PluginError;
use crate::batch::{Batch, Row};
use crate::builder::{BatchBuilder, RowBuilder};
use crate::types::{self, Op};

/// A plugin that decides conflicts. Exported with
/// [`export_resolver!`](crate::export_resolver).
pub trait Resolver: Sized + 'static {
    /// The plugin's settings, parsed from the manifest's `config` table.
    type Config: serde::de::DeserializeOwned;

    /// Builds the resolver.
    fn open(config: Self::Config) -> Result<Self, PluginError>;

    /// Decides each conflict: `local` and `remote` have the same length and
    /// row `i` of each is the same key. Add exactly one decision per
    /// conflict, in order, to `out`.
    fn resolve(
        &mut self,
        local: &Batch,
        remote: &Batch,
        out: &mut Resolutions,
    ) -> Result<(), PluginError>;
}

/// The decision for one conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Keep the version on the side being written to.
    KeepLocal,
    /// Take the incoming version.
    TakeRemote,
    /// Use row `n` of the merged batch.
    Merged(u32),
    /// Leave the conflict for a person; the text says why.
    Defer(String),
}

/// The decisions for one batch of conflicts, being built.
#[derive(Debug, Default)]
pub struct Resolutions {
    decisions: Vec<Resolution>,
    merged: BatchBuilder,
}

impl Resolutions {
    /// No decision yet.
    pub fn new() -> Resolutions {
        Resolutions {
            decisions: Vec::new(),
            merged: BatchBuilder::new(),
        }
    }

    /// Keeps the local version for the next conflict.
    pub fn keep_local(&mut self) {
        self.decisions.push(Resolution::KeepLocal);
    }

    /// Takes the remote version for the next conflict.
    pub fn take_remote(&mut self) {
        self.decisions.push(Resolution::TakeRemote);
    }

    /// Leaves the next conflict to a person.
    pub fn defer(&mut self, reason: impl Into<String>) {
        self.decisions.push(Resolution::Defer(reason.into()));
    }

    /// Resolves the next conflict with a merged record, built on the
    /// returned row (which starts with `base`'s key, op and metadata and no
    /// fields; use [`RowBuilder::copy_fields`] to start from a version).
    pub fn merge(&mut self, base: &Row<'_>) -> RowBuilder<'_> {
        let n = u32::try_from(self.merged.len()).unwrap_or(u32::MAX);
        self.decisions.push(Resolution::Merged(n));
        let mut r = self.merged.row(base.key(), base.op());
        r.copy_meta(base);
        r
    }

    /// Resolves the next conflict with a merged record under `key`/`op`.
    pub fn merge_as(&mut self, key: &str, op: Op) -> RowBuilder<'_> {
        let n = u32::try_from(self.merged.len()).unwrap_or(u32::MAX);
        self.decisions.push(Resolution::Merged(n));
        self.merged.row(key, op)
    }

    /// The decisions so far.
    pub fn decisions(&self) -> &[Resolution] {
        &self.decisions
    }

    /// The decisions and the merged records, for the host.
    pub fn into_parts(self) -> (Vec<Resolution>, types::Batch) {
        (self.decisions, self.merged.finish())
    }
}
