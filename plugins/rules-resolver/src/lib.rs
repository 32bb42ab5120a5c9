//! `rules-resolver`: a ferry conflict resolver (world `resolver-plugin`)
//! that settles two-way sync conflicts by business rules an operator
//! writes in the manifest.
//!
//! ```toml
//! [plugins.settle]
//! kind = "resolver"
//! wasm = "../../plugins/dist/rules-resolver.wasm"
//! config = { rules = [
//!   { field = "credit_limit", prefer = "higher" },
//!   { fields = ["street", "city", "zip"], prefer = "newer", by = "address_updated_at" },
//! ], otherwise = "defer", on_delete = "defer" }
//! ```
//!
//! Each conflict is a field-level three-way merge: each side is compared
//! with the common ancestor (the version both sides last agreed on), so
//! what only one side changed is kept, and only what both sides changed to
//! different values needs a rule.
//!
//! 1. Both sides hold the same version: take it (the one with the later
//!    updated-at, else left). One side equal to the ancestor: the other
//!    side's change stands, a delete included.
//! 2. One side deleted the key, the other changed it: `on_delete` says
//!    what happens: `defer` (the default: a person decides), `keep` (the
//!    changed version wins and the key lives on) or `delete` (the delete
//!    wins).
//! 3. Otherwise field by field; a rule's `fields` form a group taken whole
//!    from one side. A field or group changed on one side only takes that
//!    side's value. One changed on both sides to different values is
//!    decided by the rule naming it:
//!
//!    | `prefer` | the winning side |
//!    |---|---|
//!    | `higher`, `lower` | the larger or smaller number (ints, floats, or text holding a number); one `field` only |
//!    | `left`, `right` | always that side |
//!    | `newer`, `older` | the later or earlier `by` field (a timestamp, RFC 3339 or `YYYY-MM-DD` text, or an integer), or the records' updated-at without `by` |
//!
//!    The `by` field goes with its group (it says when the group changed)
//!    unless another rule names it; a `by` field that several rules use
//!    and none names is decided on its own, the later value winning.
//! 4. A conflicting field that no rule names, or whose rule cannot decide
//!    (a null value, text that is not a number, equal values), goes by
//!    `otherwise`: `defer` (the default: the whole conflict goes to a person
//!    with a reason naming the field), `left` or `right`.
//! 5. The answer is `take-left` or `take-right` when the result equals that
//!    side's version, otherwise `merged` with the merged record: every field
//!    any version has (null where the result is null), updated-at and
//!    version the later of the two sides', no origin (the resolver made
//!    it).
//!
//! Config errors are `invalid-config` naming the rule (`config.rules[1]`,
//! counted from 0, and its fields) and the fix.

mod config;
mod merge;

use ferry_plugin::{Batch, Op, PluginError, Resolutions, Resolver, Row};

pub use config::{Config, OnDelete, Otherwise, Prefer, Rule, Rules};
pub use merge::{Decision, Fields, Side, decide, same_value};

/// The plugin: the checked rules.
#[derive(Debug)]
pub struct RulesResolver {
    rules: Rules,
}

impl Resolver for RulesResolver {
    type Config = Config;

    fn open(config: Config) -> Result<Self, PluginError> {
        Ok(RulesResolver {
            rules: Rules::new(config)?,
        })
    }

    fn resolve(
        &mut self,
        left: &Batch,
        right: &Batch,
        ancestor: &Batch,
        out: &mut Resolutions,
    ) -> Result<(), PluginError> {
        let fields = Fields::new(&self.rules, left, right, ancestor);
        for ((l, r), a) in left.rows().zip(right.rows()).zip(ancestor.rows()) {
            match decide(&self.rules, &fields, &l, &r, &a) {
                Decision::Left => out.take_left(),
                Decision::Right => out.take_right(),
                Decision::Defer(why) => out.defer(why),
                Decision::Merge(picks) => write_merged(out, &fields, &l, &r, &picks),
            }
        }
        Ok(())
    }
}

/// Adds the merged record of one conflict to `out`.
fn write_merged<'a>(
    out: &mut Resolutions,
    fields: &Fields<'a>,
    left: &Row<'a>,
    right: &Row<'a>,
    picks: &[Side],
) {
    let mut record = out.merge_as(left.key(), Op::Upsert);
    // `Option`'s order puts `None` first, so `max` is the later known one.
    if let Some(at) = left.updated_at().max(right.updated_at()) {
        record.updated_at(at);
    }
    if let Some(v) = left.version().max(right.version()) {
        record.version(v);
    }
    for (f, (name, &side)) in fields.names().iter().zip(picks).enumerate() {
        record.set(name, fields.value_of(side, left, right, f));
    }
}

ferry_plugin::export_resolver!(RulesResolver);

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_plugin::{BatchBuilder, Resolution, Value, resolve_with_view};
    use serde_json::json;

    fn open(config: serde_json::Value) -> RulesResolver {
        RulesResolver::open(ferry_plugin::config::parse(&config.to_string()).unwrap()).unwrap()
    }

    #[test]
    fn a_batch_of_conflicts_in_order_with_merged_records() {
        let mut resolver = open(json!({
            "rules": [{ "field": "credit_limit", "prefer": "higher" }],
            "on_delete": "keep",
        }));
        let mut left = BatchBuilder::new();
        let mut right = BatchBuilder::new();
        let mut anc = BatchBuilder::new();
        // 1: both changed: left's limit is higher, right changed the name.
        anc.row("1", Op::Upsert)
            .set("name", "A")
            .set("credit_limit", 100);
        left.row("1", Op::Upsert)
            .set("name", "A")
            .set("credit_limit", 900)
            .updated_at(5)
            .version(3);
        right
            .row("1", Op::Upsert)
            .set("name", "B")
            .set("credit_limit", 50)
            .updated_at(7)
            .version(2);
        // 2: deleted on the right, edited on the left: keep.
        anc.row("2", Op::Upsert)
            .set("name", "C")
            .set("credit_limit", 1);
        left.row("2", Op::Upsert)
            .set("name", "D")
            .set("credit_limit", 1);
        right.row("2", Op::Delete);
        // 3: phone changed on both sides, no rule.
        anc.row("3", Op::Upsert).set("phone", "1");
        left.row("3", Op::Upsert).set("phone", "2");
        right.row("3", Op::Upsert).set("phone", "3");
        let (decisions, merged) =
            resolve_with_view(&mut resolver, left.finish(), right.finish(), anc.finish()).unwrap();
        assert_eq!(
            decisions,
            [
                Resolution::Merged(0),
                Resolution::TakeLeft,
                Resolution::Defer("`phone` changed on both sides and no rule decides it".into()),
            ]
        );
        let merged = Batch::from_raw(merged).unwrap();
        let row = merged.row(0).unwrap();
        assert_eq!(row.key(), "1");
        assert_eq!(row.op(), Op::Upsert);
        assert_eq!(row.get("name"), Value::Text("B"));
        assert_eq!(row.get("credit_limit"), Value::Int(900));
        assert_eq!(row.updated_at(), Some(7));
        assert_eq!(row.version(), Some(3));
        assert_eq!(row.origin(), None);
        // Every field of the versions is there, null where the result is.
        assert!(merged.column("phone").is_some());
        assert_eq!(row.get("phone"), Value::Null);
    }

    #[test]
    fn a_bad_rule_is_invalid_config() {
        let config = ferry_plugin::config::parse(
            &json!({ "rules": [{ "field": "a", "prefer": "max" }] }).to_string(),
        )
        .unwrap();
        let err = RulesResolver::open(config).unwrap_err();
        assert!(matches!(err, PluginError::InvalidConfig(_)), "{err:?}");
        assert!(err.message().contains("config.rules[0] (a)"), "{err:?}");
    }
}
