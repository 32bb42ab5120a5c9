//! Validators: say which records break which rules. See [`Validator`].

use crate::PluginError;
use crate::batch::{Batch, Row};

/// A plugin that checks records. Exported with
/// [`export_validator!`](crate::export_validator).
pub trait Validator: Sized + 'static {
    /// The plugin's settings, parsed from the manifest's `config` table.
    type Config: serde::de::DeserializeOwned;

    /// Builds the validator (compile rules here, not per batch).
    fn open(config: Self::Config) -> Result<Self, PluginError>;

    /// Checks a batch, adding one [`Violation`] per broken rule per record
    /// to `out`. Records without violations are valid.
    fn validate(&mut self, records: &Batch, out: &mut Violations) -> Result<(), PluginError>;
}

/// One broken rule of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The record's index in the batch.
    pub row: u32,
    /// The field at fault, if the rule is about one field.
    pub field: Option<String>,
    /// The rule's short name, such as `required`, `regex` or `range`.
    pub rule: String,
    /// A sentence for the operator.
    pub message: String,
}

/// The violations found in one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations(Vec<Violation>);

impl Violations {
    /// No violation yet.
    pub fn new() -> Violations {
        Violations::default()
    }

    /// Records that `row` breaks `rule` on `field`.
    pub fn field(&mut self, row: &Row<'_>, field: &str, rule: &str, message: impl Into<String>) {
        self.push(row.index(), Some(field), rule, message);
    }

    /// Records that `row` as a whole breaks `rule`.
    pub fn record(&mut self, row: &Row<'_>, rule: &str, message: impl Into<String>) {
        self.push(row.index(), None, rule, message);
    }

    /// Records a violation by record index.
    pub fn push(
        &mut self,
        row: usize,
        field: Option<&str>,
        rule: &str,
        message: impl Into<String>,
    ) {
        self.0.push(Violation {
            row: u32::try_from(row).unwrap_or(u32::MAX),
            field: field.map(str::to_owned),
            rule: rule.to_owned(),
            message: message.into(),
        });
    }

    /// The violations so far.
    pub fn as_slice(&self) -> &[Violation] {
        &self.0
    }

    /// The number of violations.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no violation was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The violations, for the host.
    pub fn into_vec(self) -> Vec<Violation> {
        self.0
    }
}
