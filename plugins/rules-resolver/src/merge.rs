//! The three-way merge of one conflict: each side compared with the common
//! ancestor, field by field (a rule's group as one unit), and the rules
//! deciding what both sides changed.

use std::cmp::Ordering;
use std::collections::HashMap;

use ferry_plugin::{Batch, Column, Op, Row, Value};

use crate::config::{OnDelete, Otherwise, Prefer, Rule, Rules};

/// One side of a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The manifest's `[sync] left`.
    Left,
    /// The manifest's `[sync] right`.
    Right,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Right => "right",
        }
    }
}

/// The outcome for one conflict.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The result is the left version.
    Left,
    /// The result is the right version.
    Right,
    /// Left to a person, for this reason.
    Defer(String),
    /// A record made of both: for each field of [`Fields::names`], the
    /// side its value comes from.
    Merge(Vec<Side>),
}

/// The fields of one call's three batches: every column name that any of
/// them has, each column looked up once, and where each rule's fields are.
pub struct Fields<'a> {
    names: Vec<&'a str>,
    /// Per side (left, right, ancestor), the column of each name.
    columns: [Vec<Option<Column<'a>>>; 3],
    /// Per rule, the indices of its fields that some batch has.
    rule_fields: Vec<Vec<usize>>,
    /// Per rule, the index of its `by` field, if some batch has it.
    rule_by: Vec<Option<usize>>,
    /// Per name, whether a rule decides it.
    ruled: Vec<bool>,
}

const LEFT: usize = 0;
const RIGHT: usize = 1;
const ANCESTOR: usize = 2;

impl<'a> Fields<'a> {
    /// Looks up the columns of `left`, `right` and `ancestor` for `rules`.
    pub fn new(rules: &Rules, left: &'a Batch, right: &'a Batch, ancestor: &'a Batch) -> Self {
        let batches = [left, right, ancestor];
        let mut names: Vec<&'a str> = Vec::new();
        let mut index: HashMap<&'a str, usize> = HashMap::new();
        for batch in batches {
            for column in batch.columns() {
                let name = column.name();
                if !index.contains_key(name) {
                    index.insert(name, names.len());
                    names.push(name);
                }
            }
        }
        let columns = batches.map(|b| names.iter().map(|n| b.column(n)).collect());
        let mut ruled = vec![false; names.len()];
        let rule_fields = rules
            .rules
            .iter()
            .map(|rule| {
                let found: Vec<usize> = rule
                    .fields
                    .iter()
                    .filter_map(|f| index.get(f.as_str()).copied())
                    .collect();
                for &f in &found {
                    if let Some(r) = ruled.get_mut(f) {
                        *r = true;
                    }
                }
                found
            })
            .collect();
        let rule_by = rules
            .rules
            .iter()
            .map(|rule| rule.by.as_deref().and_then(|b| index.get(b).copied()))
            .collect();
        Fields {
            names,
            columns,
            rule_fields,
            rule_by,
            ruled,
        }
    }

    /// Every field name, in the order of first appearance (left's columns,
    /// then right's, then the ancestor's).
    pub fn names(&self) -> &[&'a str] {
        &self.names
    }

    /// Field `f` of a version (`side` 0, 1 or 2); a deleted version has no
    /// values.
    fn value(&self, side: usize, row: &Row<'a>, f: usize) -> Value<'a> {
        if row.op() == Op::Delete {
            return Value::Null;
        }
        match self.columns.get(side).and_then(|c| c.get(f)) {
            Some(Some(column)) => row.value(*column),
            _ => Value::Null,
        }
    }

    /// Field `f` of the version on `side`.
    pub fn value_of(&self, side: Side, left: &Row<'a>, right: &Row<'a>, f: usize) -> Value<'a> {
        match side {
            Side::Left => self.value(LEFT, left, f),
            Side::Right => self.value(RIGHT, right, f),
        }
    }

    /// Whether two versions are the same: both deleted, or both present
    /// with the same value in every field.
    fn same_version(&self, (a, ra): (usize, &Row<'a>), (b, rb): (usize, &Row<'a>)) -> bool {
        match (ra.op(), rb.op()) {
            (Op::Delete, Op::Delete) => true,
            (Op::Upsert, Op::Upsert) => (0..self.names.len())
                .all(|f| same_value(self.value(a, ra, f), self.value(b, rb, f))),
            _ => false,
        }
    }
}

/// Decides one conflict. Row `left`, `right` and `ancestor` are the same
/// key's versions; `fields` was built over their batches.
pub fn decide<'a>(
    rules: &Rules,
    fields: &Fields<'a>,
    left: &Row<'a>,
    right: &Row<'a>,
    ancestor: &Row<'a>,
) -> Decision {
    let (l, r, a) = ((LEFT, left), (RIGHT, right), (ANCESTOR, ancestor));
    if fields.same_version(l, r) {
        // Both sides made the same change: either will do; the later
        // (a known updated-at is later than an unknown one) carries the more
        // telling metadata.
        return if right.updated_at() > left.updated_at() {
            Decision::Right
        } else {
            Decision::Left
        };
    }
    // One side unchanged since the ancestor: the other side's change stands
    // (a delete included).
    if fields.same_version(l, a) {
        return Decision::Right;
    }
    if fields.same_version(r, a) {
        return Decision::Left;
    }
    let deleted = match (left.op(), right.op()) {
        (Op::Delete, _) => Some(Side::Left),
        (_, Op::Delete) => Some(Side::Right),
        _ => None,
    };
    if let Some(deleted) = deleted {
        let surviving = match deleted {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        };
        return match rules.on_delete {
            OnDelete::Defer => Decision::Defer(format!(
                "deleted on the {} side and changed on the {} side since they last agreed \
                 (on_delete = \"defer\")",
                deleted.name(),
                surviving.name()
            )),
            OnDelete::Keep => side_decision(surviving),
            OnDelete::Delete => side_decision(deleted),
        };
    }

    // Both present, both changed: field by field.
    let n = fields.names.len();
    let mut picks = vec![Side::Left; n];
    let mut deferred: Vec<String> = Vec::new();
    let mut settle = |unit: &[usize], rule: Option<(usize, &Rule)>, picks: &mut Vec<Side>| {
        let changed = |side: usize, row: &Row<'a>| {
            unit.iter().any(|&f| {
                !same_value(
                    fields.value(side, row, f),
                    fields.value(ANCESTOR, ancestor, f),
                )
            })
        };
        let side = if !changed(RIGHT, right)
            || unit
                .iter()
                .all(|&f| same_value(fields.value(LEFT, left, f), fields.value(RIGHT, right, f)))
        {
            Side::Left
        } else if !changed(LEFT, left) {
            Side::Right
        } else {
            let ruling = match rule {
                Some((i, rule)) => apply(rule, fields, i, left, right),
                None => Err(format!(
                    "`{}` changed on both sides and no rule decides it",
                    unit.iter()
                        .filter_map(|&f| fields.names.get(f))
                        .copied()
                        .collect::<Vec<_>>()
                        .join("`, `")
                )),
            };
            match (ruling, rules.otherwise) {
                (Ok(side), _) => side,
                (Err(_), Otherwise::Left) => Side::Left,
                (Err(_), Otherwise::Right) => Side::Right,
                (Err(why), Otherwise::Defer) => {
                    deferred.push(why);
                    Side::Left
                }
            }
        };
        for &f in unit {
            if let Some(p) = picks.get_mut(f) {
                *p = side;
            }
        }
    };
    for (i, rule) in rules.rules.iter().enumerate() {
        if let Some(unit) = fields.rule_fields.get(i)
            && !unit.is_empty()
        {
            settle(unit, Some((i, rule)), &mut picks);
        }
    }
    for f in 0..n {
        if !fields.ruled.get(f).copied().unwrap_or(false) {
            settle(&[f], None, &mut picks);
        }
    }
    if !deferred.is_empty() {
        return Decision::Defer(deferred.join("; "));
    }
    let equals = |side: Side| {
        picks.iter().enumerate().all(|(f, &p)| {
            p == side
                || same_value(
                    fields.value_of(p, left, right, f),
                    fields.value_of(side, left, right, f),
                )
        })
    };
    if equals(Side::Left) {
        Decision::Left
    } else if equals(Side::Right) {
        Decision::Right
    } else {
        Decision::Merge(picks)
    }
}

fn side_decision(side: Side) -> Decision {
    match side {
        Side::Left => Decision::Left,
        Side::Right => Decision::Right,
    }
}

/// Applies rule `i` to fields changed on both sides to different values:
/// the winning side, or why the rule cannot decide.
fn apply<'a>(
    rule: &Rule,
    fields: &Fields<'a>,
    i: usize,
    left: &Row<'a>,
    right: &Row<'a>,
) -> Result<Side, String> {
    let cannot = |why: String| format!("{} cannot decide: {why}", rule.label);
    match rule.prefer {
        Prefer::Left => Ok(Side::Left),
        Prefer::Right => Ok(Side::Right),
        Prefer::Higher | Prefer::Lower => {
            // One field (checked at open); it is in some batch, or the rule
            // would not be applied.
            let Some(&f) = fields.rule_fields.get(i).and_then(|u| u.first()) else {
                return Err(cannot("the field is in no version".into()));
            };
            let name = fields.names.get(f).copied().unwrap_or_default();
            let number = |side: Side| {
                let v = fields.value_of(side, left, right, f);
                match Number::of(v) {
                    Some(n) => Ok(n),
                    None if v.is_null() => Err(cannot(format!(
                        "`{name}` is null on the {} side",
                        side.name()
                    ))),
                    None => Err(cannot(format!(
                        "`{name}` on the {} side, {}, is not a number",
                        side.name(),
                        v.describe()
                    ))),
                }
            };
            let (x, y) = (number(Side::Left)?, number(Side::Right)?);
            let order = x.compare(y).ok_or_else(|| {
                cannot(format!("`{name}` is not a comparable number on both sides"))
            })?;
            let higher = match order {
                Ordering::Greater => Side::Left,
                Ordering::Less => Side::Right,
                Ordering::Equal => {
                    return Err(cannot(format!("`{name}` is the same number on both sides")));
                }
            };
            Ok(if rule.prefer == Prefer::Higher {
                higher
            } else {
                other(higher)
            })
        }
        Prefer::Newer | Prefer::Older => {
            let (what, x, y) = match &rule.by {
                Some(by) => {
                    let stamp = |side: Side| {
                        let v = fields
                            .rule_by
                            .get(i)
                            .copied()
                            .flatten()
                            .map_or(Value::Null, |f| fields.value_of(side, left, right, f));
                        match Stamp::of(v) {
                            Some(s) => Ok(s),
                            None if v.is_null() => Err(cannot(format!(
                                "`{by}` is null on the {} side",
                                side.name()
                            ))),
                            None => Err(cannot(format!(
                                "`{by}` on the {} side, {}, is neither a time nor an integer",
                                side.name(),
                                v.describe()
                            ))),
                        }
                    };
                    (format!("`{by}`"), stamp(Side::Left)?, stamp(Side::Right)?)
                }
                None => {
                    let stamp = |side: Side, row: &Row<'_>| {
                        row.updated_at().map(Stamp::Micros).ok_or_else(|| {
                            cannot(format!(
                                "the {} side's updated-at is unknown (give the rule a `by` field)",
                                side.name()
                            ))
                        })
                    };
                    (
                        "updated-at".to_string(),
                        stamp(Side::Left, left)?,
                        stamp(Side::Right, right)?,
                    )
                }
            };
            let newer = match x.compare(y) {
                Some(Ordering::Greater) => Side::Left,
                Some(Ordering::Less) => Side::Right,
                Some(Ordering::Equal) => {
                    return Err(cannot(format!("both sides have the same {what}")));
                }
                None => {
                    return Err(cannot(format!(
                        "{what} is a time on one side and an integer on the other"
                    )));
                }
            };
            Ok(if rule.prefer == Prefer::Newer {
                newer
            } else {
                other(newer)
            })
        }
    }
}

fn other(side: Side) -> Side {
    match side {
        Side::Left => Side::Right,
        Side::Right => Side::Left,
    }
}

/// Whether two values are the same for the merge: numbers by value (an int
/// and a float holding the same number are equal), anything else exactly.
pub fn same_value(a: Value<'_>, b: Value<'_>) -> bool {
    match (a, b) {
        (Value::Int(x), Value::Float(y)) | (Value::Float(y), Value::Int(x)) => {
            // Exact: the float must hold exactly this integer.
            y.fract() == 0.0 && y >= i64::MIN as f64 && y < i64::MAX as f64 && y as i64 == x
        }
        (Value::Float(x), Value::Float(y)) => x == y || x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

/// A number read for `higher`/`lower`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    /// An int, a float, or text holding one (`"1500"`, `" 12.50 "`).
    fn of(v: Value<'_>) -> Option<Number> {
        match v {
            Value::Int(n) => Some(Number::Int(n)),
            Value::Float(x) if !x.is_nan() => Some(Number::Float(x)),
            Value::Text(t) => {
                let t = t.trim();
                if let Ok(n) = t.parse::<i64>() {
                    Some(Number::Int(n))
                } else {
                    t.parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite())
                        .map(Number::Float)
                }
            }
            _ => None,
        }
    }

    fn compare(self, other: Number) -> Option<Ordering> {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => Some(a.cmp(&b)),
            (Number::Int(a), Number::Float(b)) => int_vs_float(a, b),
            (Number::Float(a), Number::Int(b)) => int_vs_float(b, a).map(Ordering::reverse),
            (Number::Float(a), Number::Float(b)) => a.partial_cmp(&b),
        }
    }
}

/// Compares an int with a float without losing the int's precision.
fn int_vs_float(a: i64, b: f64) -> Option<Ordering> {
    if b.is_nan() {
        return None;
    }
    if b >= 9_223_372_036_854_775_808.0 {
        return Some(Ordering::Less);
    }
    if b < -9_223_372_036_854_775_808.0 {
        return Some(Ordering::Greater);
    }
    let whole = b.floor();
    // In range, so the cast is exact.
    let w = whole as i64;
    match a.cmp(&w) {
        Ordering::Equal if b > whole => Some(Ordering::Less),
        order => Some(order),
    }
}

/// When a version changed, read for `newer`/`older`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamp {
    /// An instant: a timestamp, RFC 3339 text or a `YYYY-MM-DD` date.
    Micros(i64),
    /// An integer (a version counter, epoch seconds...), or integer text.
    Int(i64),
}

impl Stamp {
    fn of(v: Value<'_>) -> Option<Stamp> {
        match v {
            Value::Timestamp(t) => Some(Stamp::Micros(t)),
            Value::Int(n) => Some(Stamp::Int(n)),
            Value::Text(t) => {
                let t = t.trim();
                if let Ok(n) = t.parse::<i64>() {
                    Some(Stamp::Int(n))
                } else {
                    ferry_plugin::time::parse_rfc3339(t)
                        .or_else(|| ferry_plugin::time::parse_date(t))
                        .map(Stamp::Micros)
                }
            }
            _ => None,
        }
    }

    /// `None` when one is an instant and the other an integer.
    fn compare(self, other: Stamp) -> Option<Ordering> {
        match (self, other) {
            (Stamp::Micros(a), Stamp::Micros(b)) | (Stamp::Int(a), Stamp::Int(b)) => {
                Some(a.cmp(&b))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use ferry_plugin::BatchBuilder;
    use serde_json::json;

    fn rules(config: serde_json::Value) -> Rules {
        let config: Config = ferry_plugin::config::parse(&config.to_string()).unwrap();
        Rules::new(config).unwrap()
    }

    /// A one-row batch: `None` is a delete, else an upsert with the JSON
    /// object's fields (ints, floats, text, null), updated-at `at`.
    fn version(fields: Option<serde_json::Value>, at: Option<i64>) -> Batch {
        let mut b = BatchBuilder::new();
        match fields {
            None => {
                b.row("k", Op::Delete);
            }
            Some(fields) => {
                let mut row = b.row("k", Op::Upsert);
                if let Some(at) = at {
                    row.updated_at(at);
                }
                for (name, v) in fields.as_object().unwrap() {
                    match v {
                        serde_json::Value::Null => row.set_null(name),
                        serde_json::Value::String(s) => row.set_text(name, s),
                        v if v.is_i64() => row.set_int(name, v.as_i64().unwrap()),
                        v => row.set_float(name, v.as_f64().unwrap()),
                    };
                }
            }
        }
        Batch::from_raw(b.finish()).unwrap()
    }

    fn decide3(
        rules: &Rules,
        left: &Batch,
        right: &Batch,
        ancestor: &Batch,
    ) -> (Decision, Vec<String>) {
        let fields = Fields::new(rules, left, right, ancestor);
        let d = decide(
            rules,
            &fields,
            &left.row(0).unwrap(),
            &right.row(0).unwrap(),
            &ancestor.row(0).unwrap(),
        );
        (d, fields.names().iter().map(|s| s.to_string()).collect())
    }

    /// The merged record as JSON-ish pairs: field -> value description.
    fn merged(
        rules: &Rules,
        left: &Batch,
        right: &Batch,
        ancestor: &Batch,
    ) -> Vec<(String, String)> {
        let fields = Fields::new(rules, left, right, ancestor);
        let (l, r) = (left.row(0).unwrap(), right.row(0).unwrap());
        match decide(rules, &fields, &l, &r, &ancestor.row(0).unwrap()) {
            Decision::Merge(picks) => picks
                .iter()
                .enumerate()
                .map(|(f, &p)| {
                    (
                        fields.names()[f].to_string(),
                        show(fields.value_of(p, &l, &r, f)),
                    )
                })
                .collect(),
            other => panic!("not merged: {other:?}"),
        }
    }

    fn show(v: Value<'_>) -> String {
        match v {
            Value::Text(t) => format!("{t:?}"),
            Value::Int(n) => n.to_string(),
            Value::Null => "null".into(),
            other => other.describe(),
        }
    }

    fn customer() -> Rules {
        rules(json!({ "rules": [
            { "field": "credit_limit", "prefer": "higher" },
            { "fields": ["street", "city", "zip"], "prefer": "newer", "by": "address_updated_at" },
        ]}))
    }

    #[test]
    fn higher_credit_limit_and_newer_address_win() {
        let anc = version(
            Some(
                json!({"name": "Acme", "credit_limit": 1000, "street": "1 Old Rd", "city": "Lyon", "zip": "69001", "address_updated_at": "2026-01-01T00:00:00Z"}),
            ),
            None,
        );
        let left = version(
            Some(
                json!({"name": "Acme", "credit_limit": 5000, "street": "2 Left St", "city": "Lyon", "zip": "69001", "address_updated_at": "2026-02-01T00:00:00Z"}),
            ),
            Some(10),
        );
        let right = version(
            Some(
                json!({"name": "Acme", "credit_limit": 500, "street": "3 Right Av", "city": "Paris", "zip": "69001", "address_updated_at": "2026-03-01T00:00:00Z"}),
            ),
            Some(20),
        );
        assert_eq!(
            merged(&customer(), &left, &right, &anc),
            [
                ("name", "\"Acme\""),
                ("credit_limit", "5000"),
                ("street", "\"3 Right Av\""),
                ("city", "\"Paris\""),
                ("zip", "\"69001\""),
                ("address_updated_at", "\"2026-03-01T00:00:00Z\""),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }

    #[test]
    fn one_sided_changes_are_kept_field_by_field() {
        let anc = version(
            Some(json!({"name": "Acme", "phone": "1", "email": "a@x"})),
            None,
        );
        let left = version(
            Some(json!({"name": "Acme", "phone": "2", "email": "a@x"})),
            None,
        );
        let right = version(
            Some(json!({"name": "Acme", "phone": "1", "email": "b@x"})),
            None,
        );
        assert_eq!(
            merged(&customer(), &left, &right, &anc),
            [
                ("name", "\"Acme\""),
                ("phone", "\"2\""),
                ("email", "\"b@x\"")
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }

    #[test]
    fn a_result_equal_to_one_side_takes_that_side() {
        let r = customer();
        let anc = version(Some(json!({"credit_limit": 1000, "name": "A"})), None);
        // Only the left changed.
        let left = version(Some(json!({"credit_limit": 2000, "name": "A"})), None);
        assert_eq!(decide3(&r, &left, &anc, &anc).0, Decision::Left);
        assert_eq!(decide3(&r, &anc, &left, &anc).0, Decision::Right);
        // Both changed the credit limit; the higher (left) wins, nothing else differs.
        let right = version(Some(json!({"credit_limit": 1500, "name": "A"})), None);
        assert_eq!(decide3(&r, &left, &right, &anc).0, Decision::Left);
        assert_eq!(decide3(&r, &right, &left, &anc).0, Decision::Right);
        // Both made the same change: the later one.
        let later = version(Some(json!({"credit_limit": 2000, "name": "A"})), Some(9));
        assert_eq!(decide3(&r, &left, &later, &anc).0, Decision::Right);
    }

    #[test]
    fn a_field_without_a_rule_is_deferred_with_its_name() {
        let anc = version(Some(json!({"phone": "1"})), None);
        let left = version(Some(json!({"phone": "2"})), None);
        let right = version(Some(json!({"phone": "3"})), None);
        assert_eq!(
            decide3(&customer(), &left, &right, &anc).0,
            Decision::Defer("`phone` changed on both sides and no rule decides it".into())
        );
        let left_wins = rules(json!({ "otherwise": "left" }));
        assert_eq!(decide3(&left_wins, &left, &right, &anc).0, Decision::Left);
        let right_wins = rules(json!({ "otherwise": "right" }));
        assert_eq!(decide3(&right_wins, &left, &right, &anc).0, Decision::Right);
    }

    #[test]
    fn a_rule_that_cannot_decide_goes_by_otherwise() {
        let anc = version(Some(json!({"credit_limit": 1000})), None);
        let left = version(Some(json!({"credit_limit": "lots"})), None);
        let right = version(Some(json!({"credit_limit": 500})), None);
        assert_eq!(
            decide3(&customer(), &left, &right, &anc).0,
            Decision::Defer(
                "config.rules[0] (credit_limit; prefer higher) cannot decide: `credit_limit` on \
                 the left side, text \"lots\", is not a number"
                    .into()
            )
        );
        let null = version(Some(json!({"credit_limit": null})), None);
        assert_eq!(
            decide3(&customer(), &null, &right, &anc).0,
            Decision::Defer(
                "config.rules[0] (credit_limit; prefer higher) cannot decide: `credit_limit` is \
                 null on the left side"
                    .into()
            )
        );
        let r = rules(
            json!({ "rules": [{ "field": "credit_limit", "prefer": "higher" }], "otherwise": "right" }),
        );
        assert_eq!(decide3(&r, &null, &right, &anc).0, Decision::Right);
        // Equal numbers in different types: the rule cannot choose.
        let text = version(Some(json!({"credit_limit": "500.0"})), None);
        assert_eq!(
            decide3(&customer(), &text, &right, &anc).0,
            Decision::Defer(
                "config.rules[0] (credit_limit; prefer higher) cannot decide: `credit_limit` is \
                 the same number on both sides"
                    .into()
            )
        );
    }

    #[test]
    fn numbers_compare_across_types() {
        let r = rules(json!({ "rules": [{ "field": "n", "prefer": "lower" }] }));
        let anc = version(Some(json!({"n": 0})), None);
        let cases = [
            (json!(5), json!(7.5), Decision::Left),
            (json!("12.50"), json!(12), Decision::Right),
            (json!(" 3 "), json!("20"), Decision::Left),
            (
                json!(9007199254740993_i64),
                json!(9007199254740992.0),
                Decision::Right,
            ),
        ];
        for (a, b, expected) in cases {
            let left = version(Some(json!({ "n": a })), None);
            let right = version(Some(json!({ "n": b })), None);
            assert_eq!(decide3(&r, &left, &right, &anc).0, expected, "{a} vs {b}");
        }
    }

    #[test]
    fn newer_and_older_read_times_integers_and_updated_at() {
        let by = rules(json!({ "rules": [{ "field": "x", "prefer": "newer", "by": "t" }] }));
        let older = rules(json!({ "rules": [{ "field": "x", "prefer": "older", "by": "t" }] }));
        let anc = version(Some(json!({"x": "a", "t": 1})), None);
        let left = version(Some(json!({"x": "b", "t": 5})), None);
        let right = version(Some(json!({"x": "c", "t": 3})), None);
        assert_eq!(decide3(&by, &left, &right, &anc).0, Decision::Left);
        assert_eq!(decide3(&older, &left, &right, &anc).0, Decision::Right);

        let left = version(
            Some(json!({"x": "b", "t": "2026-05-01T10:00:00+02:00"})),
            None,
        );
        let right = version(Some(json!({"x": "c", "t": "2026-05-01T09:00:00Z"})), None);
        assert_eq!(decide3(&by, &left, &right, &anc).0, Decision::Right);

        let right = version(Some(json!({"x": "c", "t": 7})), None);
        assert_eq!(
            decide3(&by, &left, &right, &anc).0,
            Decision::Defer(
                "config.rules[0] (x; prefer newer by t) cannot decide: `t` is a time on one \
                 side and an integer on the other"
                    .into()
            )
        );

        let updated = rules(json!({ "rules": [{ "field": "x", "prefer": "newer" }] }));
        let anc = version(Some(json!({"x": "a"})), None);
        let left = version(Some(json!({"x": "b"})), Some(100));
        let right = version(Some(json!({"x": "c"})), Some(50));
        assert_eq!(decide3(&updated, &left, &right, &anc).0, Decision::Left);
        let unknown = version(Some(json!({"x": "c"})), None);
        assert_eq!(
            decide3(&updated, &left, &unknown, &anc).0,
            Decision::Defer(
                "config.rules[0] (x; prefer newer) cannot decide: the right side's updated-at is \
                 unknown (give the rule a `by` field)"
                    .into()
            )
        );
        let same = version(Some(json!({"x": "c"})), Some(100));
        assert_eq!(
            decide3(&updated, &left, &same, &anc).0,
            Decision::Defer(
                "config.rules[0] (x; prefer newer) cannot decide: both sides have the same \
                 updated-at"
                    .into()
            )
        );
    }

    #[test]
    fn a_group_is_taken_whole_from_one_side() {
        let r = rules(json!({ "rules": [{ "fields": ["street", "city"], "prefer": "right" }] }));
        let anc = version(Some(json!({"street": "s0", "city": "c0"})), None);
        // Left changed the street, right changed the city: both changed the group.
        let left = version(Some(json!({"street": "s1", "city": "c0"})), None);
        let right = version(Some(json!({"street": "s0", "city": "c2"})), None);
        assert_eq!(decide3(&r, &left, &right, &anc).0, Decision::Right);
    }

    #[test]
    fn deletes_go_by_on_delete() {
        let anc = version(Some(json!({"x": 1})), None);
        let edited = version(Some(json!({"x": 2})), None);
        let gone = version(None, None);
        let with = |on_delete: &str| rules(json!({ "on_delete": on_delete }));
        assert_eq!(
            decide3(&with("defer"), &gone, &edited, &anc).0,
            Decision::Defer(
                "deleted on the left side and changed on the right side since they last agreed \
                 (on_delete = \"defer\")"
                    .into()
            )
        );
        assert_eq!(
            decide3(&with("keep"), &gone, &edited, &anc).0,
            Decision::Right
        );
        assert_eq!(
            decide3(&with("keep"), &edited, &gone, &anc).0,
            Decision::Left
        );
        assert_eq!(
            decide3(&with("delete"), &gone, &edited, &anc).0,
            Decision::Left
        );
        assert_eq!(
            decide3(&with("delete"), &edited, &gone, &anc).0,
            Decision::Right
        );
        // A delete against an unchanged version is a one-sided change.
        assert_eq!(decide3(&with("defer"), &gone, &anc, &anc).0, Decision::Left);
    }

    #[test]
    fn created_on_both_sides_merges_against_nothing() {
        let none = version(None, None);
        let left = version(Some(json!({"name": "A", "phone": "1"})), None);
        let right = version(Some(json!({"name": "A", "email": "a@x"})), None);
        assert_eq!(
            merged(&customer(), &left, &right, &none),
            [("name", "\"A\""), ("phone", "\"1\""), ("email", "\"a@x\"")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }

    #[test]
    fn same_value_is_numeric_across_int_and_float() {
        assert!(same_value(Value::Int(3), Value::Float(3.0)));
        assert!(!same_value(Value::Int(3), Value::Float(3.5)));
        assert!(!same_value(Value::Int(3), Value::Text("3")));
        assert!(same_value(Value::Null, Value::Null));
    }
}
