//! The business-rule resolver, called through the host as two-way sync calls
//! it: both versions of each conflicting key and their common ancestor.

use ferry_host::batch::{BatchExt, JsonRecord, batch_from_json};
use ferry_host::{Batch, Component, InstanceSpec, Op, Resolution, ResolverInstance};
use serde_json::{Value, json};

use crate::support::{plugins, runtime};

fn resolver(config: Value) -> ResolverInstance {
    let component = Component::load(runtime(), plugins::RULES_RESOLVER.as_ref()).expect("loads");
    let mut spec = InstanceSpec::new("customers-sync", "settle");
    spec.config = config.to_string();
    ResolverInstance::new(&component, spec, None).expect("opens")
}

fn customer_rules() -> Value {
    json!({
        "rules": [
            { "field": "credit_limit", "prefer": "higher" },
            { "fields": ["street", "city", "zip"], "prefer": "newer", "by": "address_updated_at" },
        ],
        "otherwise": "defer",
        "on_delete": "defer",
    })
}

/// One version per conflict: its key, its fields (`None`: the key does
/// not exist there) and its updated-at.
type Version<'a> = (&'a str, Option<Value>, Option<i64>);

fn batch(versions: &[Version<'_>]) -> Batch {
    let records: Vec<JsonRecord> = versions
        .iter()
        .map(|(key, fields, _)| JsonRecord {
            key: key.to_string(),
            op: if fields.is_some() {
                Op::Upsert
            } else {
                Op::Delete
            },
            fields: fields
                .as_ref()
                .and_then(|f| f.as_object().cloned())
                .unwrap_or_default(),
        })
        .collect();
    let mut b = batch_from_json(&records);
    if versions.iter().any(|(_, _, at)| at.is_some()) {
        b.updated_at = Some(versions.iter().map(|(_, _, at)| at.unwrap_or(0)).collect());
    }
    b
}

/// Resolves one batch of conflicts; returns each decision as text and
/// the merged records as JSON lines.
fn resolve(
    resolver: &mut ResolverInstance,
    left: &[Version<'_>],
    right: &[Version<'_>],
    ancestor: &[Version<'_>],
) -> (Vec<String>, Vec<(Value, Option<i64>)>) {
    let out = resolver
        .resolve(&batch(left), &batch(right), &batch(ancestor))
        .expect("resolves");
    let decisions = out
        .decisions
        .iter()
        .map(|d| match d {
            Resolution::TakeLeft => "take-left".to_string(),
            Resolution::TakeRight => "take-right".to_string(),
            Resolution::Merged(n) => format!("merged {n}"),
            Resolution::Defer(why) => format!("defer: {why}"),
        })
        .collect();
    let merged = (0..out.merged.len())
        .map(|i| {
            let mut row = out.merged.row_json(i);
            row["_key"] = json!(out.merged.key(i));
            let at = out
                .merged
                .updated_at
                .as_ref()
                .and_then(|u| u.get(i).copied());
            (row, at)
        })
        .collect();
    (decisions, merged)
}

#[test]
fn the_higher_credit_limit_wins_and_the_newer_address_wins() {
    let mut r = resolver(customer_rules());
    let ancestor = json!({
        "name": "Acme", "credit_limit": 1000,
        "street": "1 Old Road", "city": "Lyon", "zip": "69001",
        "address_updated_at": "2026-01-10T09:00:00Z",
    });
    // Left raises the limit and edits the street, with an older address
    // change; right lowers the limit and edits street and city later.
    let left = json!({
        "name": "Acme", "credit_limit": 5000,
        "street": "2 Left Street", "city": "Lyon", "zip": "69001",
        "address_updated_at": "2026-02-01T08:00:00Z",
    });
    let right = json!({
        "name": "Acme", "credit_limit": 500,
        "street": "3 Right Avenue", "city": "Villeurbanne", "zip": "69001",
        "address_updated_at": "2026-03-05T17:30:00+01:00",
    });
    let (decisions, merged) = resolve(
        &mut r,
        &[("c-1", Some(left), Some(1_000))],
        &[("c-1", Some(right), Some(2_000))],
        &[("c-1", Some(ancestor), Some(500))],
    );
    assert_eq!(decisions, ["merged 0"]);
    assert_eq!(
        merged,
        [(
            json!({
                "_key": "c-1",
                "name": "Acme",
                "credit_limit": 5000,
                "street": "3 Right Avenue",
                "city": "Villeurbanne",
                "zip": "69001",
                "address_updated_at": "2026-03-05T17:30:00+01:00",
            }),
            Some(2_000)
        )]
    );
}

#[test]
fn a_change_made_on_one_side_only_is_kept() {
    let mut r = resolver(customer_rules());
    let ancestor = json!({ "name": "Acme", "phone": "111", "credit_limit": 1000 });
    let (decisions, merged) = resolve(
        &mut r,
        &[
            // 1: left changed the phone, right the credit limit.
            (
                "c-1",
                Some(json!({ "name": "Acme", "phone": "222", "credit_limit": 1000 })),
                None,
            ),
            // 2: only right changed anything.
            ("c-2", Some(ancestor.clone()), None),
        ],
        &[
            (
                "c-1",
                Some(json!({ "name": "Acme", "phone": "111", "credit_limit": 800 })),
                None,
            ),
            (
                "c-2",
                Some(json!({ "name": "Acme Ltd", "phone": "111", "credit_limit": 1000 })),
                None,
            ),
        ],
        &[
            ("c-1", Some(ancestor.clone()), None),
            ("c-2", Some(ancestor), None),
        ],
    );
    assert_eq!(decisions, ["merged 0", "take-right"]);
    assert_eq!(
        merged[0].0,
        json!({ "_key": "c-1", "name": "Acme", "phone": "222", "credit_limit": 800 })
    );
}

#[test]
fn a_field_without_a_rule_is_deferred_with_a_reason_naming_it() {
    let mut r = resolver(customer_rules());
    let (decisions, merged) = resolve(
        &mut r,
        &[(
            "c-1",
            Some(json!({ "phone": "222", "credit_limit": 2000 })),
            None,
        )],
        &[(
            "c-1",
            Some(json!({ "phone": "333", "credit_limit": 1000 })),
            None,
        )],
        &[(
            "c-1",
            Some(json!({ "phone": "111", "credit_limit": 1000 })),
            None,
        )],
    );
    assert_eq!(
        decisions,
        ["defer: `phone` changed on both sides and no rule decides it"]
    );
    assert!(merged.is_empty());

    // With `otherwise = "right"` the same conflict merges.
    let mut rules = customer_rules();
    rules["otherwise"] = json!("right");
    let mut r = resolver(rules);
    let (decisions, merged) = resolve(
        &mut r,
        &[(
            "c-1",
            Some(json!({ "phone": "222", "credit_limit": 2000 })),
            None,
        )],
        &[(
            "c-1",
            Some(json!({ "phone": "333", "credit_limit": 1000 })),
            None,
        )],
        &[(
            "c-1",
            Some(json!({ "phone": "111", "credit_limit": 1000 })),
            None,
        )],
    );
    assert_eq!(decisions, ["merged 0"]);
    assert_eq!(
        merged[0].0,
        json!({ "_key": "c-1", "phone": "333", "credit_limit": 2000 })
    );
}

#[test]
fn a_delete_against_an_edit_goes_by_on_delete() {
    let ancestor = json!({ "name": "Acme", "credit_limit": 1000 });
    let edited = json!({ "name": "Acme", "credit_limit": 3000 });
    let decide = |on_delete: &str| {
        let mut rules = customer_rules();
        rules["on_delete"] = json!(on_delete);
        let mut r = resolver(rules);
        // Deleted on the left in one conflict, on the right in the other.
        resolve(
            &mut r,
            &[("c-1", None, None), ("c-2", Some(edited.clone()), None)],
            &[("c-1", Some(edited.clone()), None), ("c-2", None, None)],
            &[
                ("c-1", Some(ancestor.clone()), None),
                ("c-2", Some(ancestor.clone()), None),
            ],
        )
        .0
    };
    assert_eq!(
        decide("defer"),
        [
            "defer: deleted on the left side and changed on the right side since they last agreed (on_delete = \"defer\")",
            "defer: deleted on the right side and changed on the left side since they last agreed (on_delete = \"defer\")",
        ]
    );
    assert_eq!(decide("keep"), ["take-right", "take-left"]);
    assert_eq!(decide("delete"), ["take-left", "take-right"]);

    // A delete where the other side did not change stands whatever
    // `on_delete` says.
    let mut r = resolver(customer_rules());
    let (decisions, _) = resolve(
        &mut r,
        &[("c-1", Some(ancestor.clone()), None)],
        &[("c-1", None, None)],
        &[("c-1", Some(ancestor), None)],
    );
    assert_eq!(decisions, ["take-right"]);
}

#[test]
fn a_bad_rule_stops_it_at_open_naming_the_rule_and_the_fix() {
    let component = Component::load(runtime(), plugins::RULES_RESOLVER.as_ref()).expect("loads");
    let mut spec = InstanceSpec::new("customers-sync", "settle");
    spec.config = json!({ "rules": [
        { "field": "credit_limit", "prefer": "higher", "by": "changed_at" },
    ]})
    .to_string();
    let err = ResolverInstance::new(&component, spec, None)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains(
            "config.rules[0] (credit_limit): `by` goes with prefer = \"newer\" or \"older\" only; remove `by`, or prefer newer or older"
        ),
        "{err}"
    );
}
