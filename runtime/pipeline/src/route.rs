//! Conditional routing: which records of a batch take an edge.

use ferry_host::Batch;
use ferry_host::batch::{BatchExt, ValueRef};
use ferry_manifest::{Condition, Scalar, Test};

/// The rows of `batch` that satisfy `cond`, in order. The column is looked
/// up once per batch.
pub fn select(batch: &Batch, cond: &Condition) -> Vec<u32> {
    let n = batch.len() as u32;
    let column = batch.column(&cond.field);
    (0..n)
        .filter(|&i| {
            let v = column.map_or(ValueRef::Null, |c| c.value(i as usize));
            matches(v, &cond.test)
        })
        .collect()
}

fn matches(v: ValueRef<'_>, test: &Test) -> bool {
    match test {
        Test::Exists(want) => !matches!(v, ValueRef::Null) == *want,
        Test::Equals(s) => equals(v, s),
        Test::NotEquals(s) => !equals(v, s),
        Test::In(list) => list.iter().any(|s| equals(v, s)),
    }
}

fn equals(v: ValueRef<'_>, s: &Scalar) -> bool {
    match (v, s) {
        (ValueRef::Text(t), Scalar::Text(want)) => t == want,
        (ValueRef::Int(x), Scalar::Int(want)) => x == *want,
        (ValueRef::Int(x), Scalar::Float(want)) => (x as f64) == *want,
        (ValueRef::Float(x), Scalar::Float(want)) => x == *want,
        (ValueRef::Float(x), Scalar::Int(want)) => x == *want as f64,
        (ValueRef::Bool(x), Scalar::Bool(want)) => x == *want,
        // A column of mixed types travels as JSON: compare the decoded value.
        (ValueRef::Json(text), want) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::String(t)) => matches!(want, Scalar::Text(w) if *w == t),
            Ok(serde_json::Value::Bool(b)) => matches!(want, Scalar::Bool(w) if *w == b),
            Ok(serde_json::Value::Number(n)) => match want {
                Scalar::Int(w) => n.as_i64() == Some(*w) || n.as_f64() == Some(*w as f64),
                Scalar::Float(w) => n.as_f64() == Some(*w),
                _ => false,
            },
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_host::{Column, Op, Texts, Values};

    fn batch() -> Batch {
        Batch {
            keys: Texts::from_strs(["1", "2", "3", "4"]),
            ops: vec![Op::Upsert; 4],
            versions: None,
            updated_at: None,
            origins: None,
            columns: vec![
                Column {
                    name: "region".into(),
                    values: Values::Text(Texts::from_strs(["EU", "US", "", "EU"])),
                    valid: Some(vec![true, true, false, true]),
                },
                Column {
                    name: "score".into(),
                    values: Values::Json(Texts::from_strs(["1", "\"x\"", "2.5", "null"])),
                    valid: None,
                },
            ],
        }
    }

    fn cond(field: &str, test: Test) -> Condition {
        Condition {
            field: field.into(),
            test,
        }
    }

    #[test]
    fn selects_by_equality_membership_and_presence() {
        let b = batch();
        assert_eq!(
            select(&b, &cond("region", Test::Equals(Scalar::Text("EU".into())))),
            [0, 3]
        );
        assert_eq!(
            select(
                &b,
                &cond("region", Test::NotEquals(Scalar::Text("EU".into())))
            ),
            [1, 2]
        );
        assert_eq!(
            select(
                &b,
                &cond(
                    "region",
                    Test::In(vec![Scalar::Text("US".into()), Scalar::Text("EU".into())])
                )
            ),
            [0, 1, 3]
        );
        assert_eq!(select(&b, &cond("region", Test::Exists(false))), [2]);
        assert_eq!(
            select(&b, &cond("missing", Test::Exists(true))),
            Vec::<u32>::new()
        );
    }

    #[test]
    fn json_columns_compare_by_decoded_value() {
        let b = batch();
        assert_eq!(
            select(&b, &cond("score", Test::Equals(Scalar::Int(1)))),
            [0]
        );
        assert_eq!(
            select(&b, &cond("score", Test::Equals(Scalar::Text("x".into())))),
            [1]
        );
        assert_eq!(
            select(&b, &cond("score", Test::Equals(Scalar::Float(2.5)))),
            [2]
        );
    }
}
