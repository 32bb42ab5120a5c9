//! Resolvers: settle conflicts between the two sides of a two-way sync,
//! given the version both last agreed on. See [`Resolver`].

use crate::PluginError;
use crate::batch::{Batch, Row};
use crate::builder::{BatchBuilder, RowBuilder};
use crate::types::{self, Op};

/// A plugin that decides conflicts. Exported with
/// [`export_resolver!`](crate::export_resolver).
///
/// Two-way sync calls it when a key changed on both sides (the manifest's
/// `[sync] left` and `right`) since they were last in step, with both
/// versions and that last common version, the ancestor. Comparing each side
/// with the ancestor tells what each side changed, so a resolver can keep a
/// change made on one side only and decide only what both sides changed.
pub trait Resolver: Sized + 'static {
    /// The plugin's settings, parsed from the manifest's `config` table.
    type Config: serde::de::DeserializeOwned;

    /// Builds the resolver.
    fn open(config: Self::Config) -> Result<Self, PluginError>;

    /// Decides each conflict: `left`, `right` and `ancestor` have the same
    /// length and row `i` of each is the same key. A row whose op is
    /// [`Op::Delete`] is a version where the key does not exist: deleted on
    /// that side, or, in `ancestor`, never synced before (both sides created
    /// it). [`Row::updated_at`] and [`Row::version`], when known, say when
    /// each version was written. Add exactly one decision per conflict, in
    /// order, to `out`.
    fn resolve(
        &mut self,
        left: &Batch,
        right: &Batch,
        ancestor: &Batch,
        out: &mut Resolutions,
    ) -> Result<(), PluginError>;
}

/// Runs [`Resolver::resolve`] over [`Batch`] views of the three batches and
/// returns the decisions and the merged records: what the exported
/// component does, callable natively (in a plugin's unit tests). Fails if
/// the batches differ in length or the resolver did not make exactly one
/// decision per conflict.
pub fn resolve_with_view<R: Resolver>(
    resolver: &mut R,
    left: types::Batch,
    right: types::Batch,
    ancestor: types::Batch,
) -> Result<(Vec<Resolution>, types::Batch), PluginError> {
    let left = Batch::from_raw(left)?;
    let right = Batch::from_raw(right)?;
    let ancestor = Batch::from_raw(ancestor)?;
    if left.len() != right.len() || left.len() != ancestor.len() {
        return Err(PluginError::fatal(format!(
            "{} left, {} right and {} ancestor records: the three must have one row per conflict",
            left.len(),
            right.len(),
            ancestor.len()
        )));
    }
    let mut out = Resolutions::new();
    resolver.resolve(&left, &right, &ancestor, &mut out)?;
    if out.decisions().len() != left.len() {
        return Err(PluginError::fatal(format!(
            "the resolver gave {} decisions for {} conflicts",
            out.decisions().len(),
            left.len()
        )));
    }
    Ok(out.into_parts())
}

/// The decision for one conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Take the left side's version (the manifest's `[sync] left`).
    TakeLeft,
    /// Take the right side's version.
    TakeRight,
    /// Use row `n` of the merged batch.
    Merged(u32),
    /// Leave the conflict for a person (the manual queue); the text says why.
    Defer(String),
}

/// The decisions for one batch of conflicts, being built: one call per
/// conflict, in order.
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

    /// Takes the left side's version for the next conflict.
    pub fn take_left(&mut self) {
        self.decisions.push(Resolution::TakeLeft);
    }

    /// Takes the right side's version for the next conflict.
    pub fn take_right(&mut self) {
        self.decisions.push(Resolution::TakeRight);
    }

    /// Leaves the next conflict to a person; `reason` says why.
    pub fn defer(&mut self, reason: impl Into<String>) {
        self.decisions.push(Resolution::Defer(reason.into()));
    }

    /// Adds a decision made elsewhere; a [`Resolution::Merged`] must name a
    /// row already added with [`merge`](Resolutions::merge) or
    /// [`merge_as`](Resolutions::merge_as) (prefer those).
    pub fn push(&mut self, decision: Resolution) {
        self.decisions.push(decision);
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

    /// Resolves the next conflict with a merged record under `key`/`op`,
    /// with no fields and no metadata yet.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;

    fn batch(rows: &[(&str, Op, i64)]) -> types::Batch {
        let mut b = BatchBuilder::new();
        for &(key, op, x) in rows {
            let mut r = b.row(key, op);
            if op == Op::Upsert {
                r.set("x", x);
            }
        }
        b.finish()
    }

    /// Keeps a one-sided change, sums a two-sided one, defers a delete.
    struct Sum;
    impl Resolver for Sum {
        type Config = ();
        fn open(_: ()) -> Result<Self, PluginError> {
            Ok(Sum)
        }
        fn resolve(
            &mut self,
            left: &Batch,
            right: &Batch,
            ancestor: &Batch,
            out: &mut Resolutions,
        ) -> Result<(), PluginError> {
            for ((l, r), a) in left.rows().zip(right.rows()).zip(ancestor.rows()) {
                if l.op() == Op::Delete || r.op() == Op::Delete {
                    out.defer("a delete");
                } else if l.get("x") == a.get("x") {
                    out.take_right();
                } else if r.get("x") == a.get("x") {
                    out.take_left();
                } else {
                    let sum = l.int("x").unwrap_or(0) + r.int("x").unwrap_or(0);
                    out.merge(&l).set("x", sum);
                }
            }
            Ok(())
        }
    }

    #[test]
    fn decisions_in_order_with_merged_rows() {
        let left = batch(&[
            ("a", Op::Upsert, 1),
            ("b", Op::Upsert, 5),
            ("c", Op::Upsert, 2),
        ]);
        let right = batch(&[
            ("a", Op::Upsert, 7),
            ("b", Op::Upsert, 1),
            ("c", Op::Delete, 0),
        ]);
        let anc = batch(&[
            ("a", Op::Upsert, 1),
            ("b", Op::Upsert, 1),
            ("c", Op::Upsert, 1),
        ]);
        let (decisions, merged) = resolve_with_view(&mut Sum, left, right, anc).unwrap();
        assert_eq!(
            decisions,
            [
                Resolution::TakeRight,
                Resolution::TakeLeft,
                Resolution::Defer("a delete".into())
            ]
        );
        assert_eq!(Batch::from_raw(merged).unwrap().len(), 0);

        let left = batch(&[("a", Op::Upsert, 2)]);
        let right = batch(&[("a", Op::Upsert, 3)]);
        let anc = batch(&[("a", Op::Upsert, 1)]);
        let (decisions, merged) = resolve_with_view(&mut Sum, left, right, anc).unwrap();
        assert_eq!(decisions, [Resolution::Merged(0)]);
        let merged = Batch::from_raw(merged).unwrap();
        assert_eq!(merged.row(0).unwrap().key(), "a");
        assert_eq!(merged.row(0).unwrap().get("x"), Value::Int(5));
    }

    #[test]
    fn batches_of_different_lengths_are_refused() {
        let one = || batch(&[("a", Op::Upsert, 1)]);
        let err = resolve_with_view(&mut Sum, one(), one(), batch(&[])).unwrap_err();
        assert_eq!(
            err,
            PluginError::fatal(
                "1 left, 1 right and 0 ancestor records: the three must have one row per conflict"
            )
        );
    }
}
