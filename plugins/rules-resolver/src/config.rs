//! The `config` table, and the checked rules it compiles into.
//!
//! Serde reads the table's shape (unknown keys, wrong types, unknown
//! `otherwise`/`on_delete` values, each named by its path); [`Rules::new`]
//! then checks what serde cannot (a rule names one field or a group, a
//! known `prefer`, `by` only where it means something, no field in two
//! rules) and says, for each problem, which rule and how to fix it.

use std::collections::HashMap;

use ferry_plugin::PluginError;

/// The plugin's `config` table, as written.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The rules, for fields changed on both sides.
    #[serde(default)]
    rules: Vec<RawRule>,
    /// What a field changed on both sides that no rule decides gets.
    #[serde(default)]
    otherwise: Otherwise,
    /// What a conflict between a delete and an edit gets.
    #[serde(default)]
    on_delete: OnDelete,
}

/// One entry of `rules`, as written.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    field: Option<String>,
    fields: Option<Vec<String>>,
    prefer: Option<String>,
    by: Option<String>,
}

/// `otherwise`: a conflicting field that no rule (or no rule that can)
/// decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Otherwise {
    /// Leave the whole conflict to a person.
    #[default]
    Defer,
    /// Take the left side's value.
    Left,
    /// Take the right side's value.
    Right,
}

/// `on_delete`: one side deleted the key, the other changed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDelete {
    /// Leave the conflict to a person.
    #[default]
    Defer,
    /// The surviving (changed) version wins: the key comes back.
    Keep,
    /// The delete wins.
    Delete,
}

/// Which version a rule prefers when both sides changed its field(s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefer {
    /// The larger number.
    Higher,
    /// The smaller number.
    Lower,
    /// Always the left side.
    Left,
    /// Always the right side.
    Right,
    /// The side whose `by` field (or updated-at) is later.
    Newer,
    /// The side whose `by` field (or updated-at) is earlier.
    Older,
}

const PREFER_NAMES: &str = "higher, lower, left, right, newer or older";

impl Prefer {
    fn parse(text: &str) -> Option<Prefer> {
        Some(match text {
            "higher" => Prefer::Higher,
            "lower" => Prefer::Lower,
            "left" => Prefer::Left,
            "right" => Prefer::Right,
            "newer" => Prefer::Newer,
            "older" => Prefer::Older,
            _ => return None,
        })
    }

    /// The name used in the config.
    pub fn name(self) -> &'static str {
        match self {
            Prefer::Higher => "higher",
            Prefer::Lower => "lower",
            Prefer::Left => "left",
            Prefer::Right => "right",
            Prefer::Newer => "newer",
            Prefer::Older => "older",
        }
    }
}

/// A checked rule: the fields it decides together and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// How messages name it: `rule 2 (street, city, zip; prefer newer by
    /// address_updated_at)`.
    pub label: String,
    /// The fields taken together from one side. For `newer`/`older` with a
    /// `by` field that no rule names, `by` is part of the group: it says
    /// when the group changed, so it goes with it.
    pub fields: Vec<String>,
    /// The preference.
    pub prefer: Prefer,
    /// The field holding when each side's version changed; `None` uses the
    /// records' updated-at.
    pub by: Option<String>,
}

/// The checked configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// The rules, in config order, then one implied rule per `by` field
    /// shared by several rules (see [`Rules::new`]).
    pub rules: Vec<Rule>,
    /// For a conflicting field no rule decides.
    pub otherwise: Otherwise,
    /// For a delete against an edit.
    pub on_delete: OnDelete,
}

impl Rules {
    /// Checks the config. A `by` field that no rule names joins the group of
    /// the one rule that uses it; when several rules use it, it is decided
    /// on its own by an implied rule where the later value wins.
    pub fn new(config: Config) -> Result<Rules, PluginError> {
        let mut rules = Vec::with_capacity(config.rules.len());
        // field -> the rule (config index) naming it
        let mut owner: HashMap<String, usize> = HashMap::new();
        for (i, raw) in config.rules.into_iter().enumerate() {
            let rule = check_rule(i, raw)?;
            for field in &rule.fields {
                if let Some(first) = owner.insert(field.clone(), i) {
                    return Err(PluginError::invalid_config(format!(
                        "{}: `{field}` is already decided by config.rules[{first}]; a field \
                         goes in one rule only (merge the two rules, or remove it from one)",
                        rule.label
                    )));
                }
            }
            rules.push(rule);
        }
        // `by` fields that no rule names: which rules use each.
        let mut users: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            if let Some(by) = &rule.by
                && !owner.contains_key(by)
            {
                match users.iter_mut().find(|(name, _)| name == by) {
                    Some((_, list)) => list.push(i),
                    None => users.push((by.clone(), vec![i])),
                }
            }
        }
        for (by, list) in users {
            match list.as_slice() {
                [one] => {
                    if let Some(rule) = rules.get_mut(*one) {
                        rule.fields.push(by);
                    }
                }
                _ => rules.push(Rule {
                    label: format!("the `by` field `{by}` of several rules (the later value wins)"),
                    fields: vec![by.clone()],
                    prefer: Prefer::Newer,
                    by: Some(by),
                }),
            }
        }
        Ok(Rules {
            rules,
            otherwise: config.otherwise,
            on_delete: config.on_delete,
        })
    }
}

fn check_rule(i: usize, raw: RawRule) -> Result<Rule, PluginError> {
    let at = format!("config.rules[{i}]");
    let bad = |text: String| Err(PluginError::invalid_config(text));
    let fields = match (raw.field, raw.fields) {
        (Some(_), Some(_)) => {
            return bad(format!(
                "{at}: give `field` (one field) or `fields` (a group), not both"
            ));
        }
        (None, None) => {
            return bad(format!(
                "{at}: name what the rule decides: `field = \"credit_limit\"`, or a group \
                 taken together, `fields = [\"street\", \"city\", \"zip\"]`"
            ));
        }
        (Some(field), None) => vec![field],
        (None, Some(fields)) => {
            if fields.is_empty() {
                return bad(format!(
                    "{at}: `fields` is empty; list the fields of the group, such as \
                     `fields = [\"street\", \"city\", \"zip\"]`"
                ));
            }
            fields
        }
    };
    if fields.iter().any(|f| f.is_empty()) {
        return bad(format!("{at}: a field name is empty"));
    }
    for (n, f) in fields.iter().enumerate() {
        if fields.iter().skip(n + 1).any(|g| g == f) {
            return bad(format!("{at}: `{f}` is listed twice"));
        }
    }
    let named = fields.join(", ");
    let at = format!("{at} ({named})");
    let prefer = match raw.prefer.as_deref() {
        None => {
            return bad(format!("{at}: `prefer` is missing; use {PREFER_NAMES}"));
        }
        Some(text) => match Prefer::parse(text) {
            Some(p) => p,
            None => {
                return bad(format!(
                    "{at}: prefer = \"{text}\" is unknown; use {PREFER_NAMES}"
                ));
            }
        },
    };
    if matches!(prefer, Prefer::Higher | Prefer::Lower) && fields.len() > 1 {
        return bad(format!(
            "{at}: prefer = \"{}\" compares one number; give one `field`, or prefer newer, \
             older, left or right for a group",
            prefer.name()
        ));
    }
    let by = match raw.by {
        None => None,
        Some(_) if !matches!(prefer, Prefer::Newer | Prefer::Older) => {
            return bad(format!(
                "{at}: `by` goes with prefer = \"newer\" or \"older\" only; remove `by`, or \
                 prefer newer or older"
            ));
        }
        Some(by) if by.is_empty() => {
            return bad(format!(
                "{at}: `by` is empty; name the field that says when the version changed, or \
                 leave `by` out to use the records' updated-at"
            ));
        }
        Some(by) => Some(by),
    };
    let how = match &by {
        Some(by) => format!("prefer {} by {by}", prefer.name()),
        None => format!("prefer {}", prefer.name()),
    };
    Ok(Rule {
        label: format!("config.rules[{i}] ({named}; {how})"),
        fields,
        prefer,
        by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(json: serde_json::Value) -> Result<Rules, String> {
        let config: Config =
            ferry_plugin::config::parse(&json.to_string()).map_err(|e| e.message().to_string())?;
        Rules::new(config).map_err(|e| match e {
            PluginError::InvalidConfig(m) => m,
            other => format!("not invalid-config: {other:?}"),
        })
    }

    #[test]
    fn the_documented_config_compiles() {
        let r = rules(serde_json::json!({
            "rules": [
                { "field": "credit_limit", "prefer": "higher" },
                { "fields": ["street", "city", "zip"], "prefer": "newer", "by": "address_updated_at" },
            ],
            "otherwise": "defer",
            "on_delete": "keep",
        }))
        .unwrap();
        assert_eq!(r.otherwise, Otherwise::Defer);
        assert_eq!(r.on_delete, OnDelete::Keep);
        assert_eq!(r.rules.len(), 2);
        assert_eq!(r.rules[0].fields, ["credit_limit"]);
        assert_eq!(
            r.rules[0].label,
            "config.rules[0] (credit_limit; prefer higher)"
        );
        // The `by` field goes with its group.
        assert_eq!(
            r.rules[1].fields,
            ["street", "city", "zip", "address_updated_at"]
        );
        assert_eq!(
            r.rules[1].label,
            "config.rules[1] (street, city, zip; prefer newer by address_updated_at)"
        );
    }

    #[test]
    fn an_empty_table_defers_everything() {
        let r = rules(serde_json::json!({})).unwrap();
        assert!(r.rules.is_empty());
        assert_eq!(r.otherwise, Otherwise::Defer);
        assert_eq!(r.on_delete, OnDelete::Defer);
    }

    #[test]
    fn a_by_field_shared_or_named_elsewhere_is_not_grouped() {
        let r = rules(serde_json::json!({ "rules": [
            { "field": "phone", "prefer": "newer", "by": "changed_at" },
            { "field": "email", "prefer": "older", "by": "changed_at" },
            { "field": "street", "prefer": "newer", "by": "seen" },
            { "field": "seen", "prefer": "higher" },
        ]}))
        .unwrap();
        assert_eq!(r.rules[0].fields, ["phone"]);
        assert_eq!(r.rules[1].fields, ["email"]);
        assert_eq!(r.rules[2].fields, ["street"]);
        assert_eq!(r.rules[4].fields, ["changed_at"]);
        assert_eq!(r.rules[4].prefer, Prefer::Newer);
        assert_eq!(r.rules.len(), 5);
    }

    #[test]
    fn errors_name_the_rule_and_the_fix() {
        let cases = [
            (
                serde_json::json!({ "rules": [{ "field": "a", "prefer": "bigger" }] }),
                "config.rules[0] (a): prefer = \"bigger\" is unknown; use higher, lower, left, right, newer or older",
            ),
            (
                serde_json::json!({ "rules": [{ "field": "a" }] }),
                "config.rules[0] (a): `prefer` is missing; use higher, lower, left, right, newer or older",
            ),
            (
                serde_json::json!({ "rules": [{ "fields": [], "prefer": "left" }] }),
                "config.rules[0]: `fields` is empty; list the fields of the group, such as `fields = [\"street\", \"city\", \"zip\"]`",
            ),
            (
                serde_json::json!({ "rules": [{ "prefer": "left" }] }),
                "config.rules[0]: name what the rule decides: `field = \"credit_limit\"`, or a group taken together, `fields = [\"street\", \"city\", \"zip\"]`",
            ),
            (
                serde_json::json!({ "rules": [{ "field": "a", "fields": ["b"], "prefer": "left" }] }),
                "config.rules[0]: give `field` (one field) or `fields` (a group), not both",
            ),
            (
                serde_json::json!({ "rules": [{ "field": "a", "prefer": "higher", "by": "t" }] }),
                "config.rules[0] (a): `by` goes with prefer = \"newer\" or \"older\" only; remove `by`, or prefer newer or older",
            ),
            (
                serde_json::json!({ "rules": [{ "fields": ["a", "b"], "prefer": "lower" }] }),
                "config.rules[0] (a, b): prefer = \"lower\" compares one number; give one `field`, or prefer newer, older, left or right for a group",
            ),
            (
                serde_json::json!({ "rules": [{ "field": "a", "prefer": "newer", "by": "" }] }),
                "config.rules[0] (a): `by` is empty; name the field that says when the version changed, or leave `by` out to use the records' updated-at",
            ),
            (
                serde_json::json!({ "rules": [{ "fields": ["a", "a"], "prefer": "left" }] }),
                "config.rules[0]: `a` is listed twice",
            ),
            (
                serde_json::json!({ "rules": [
                    { "field": "a", "prefer": "left" },
                    { "fields": ["b", "a"], "prefer": "right" },
                ] }),
                "config.rules[1] (b, a; prefer right): `a` is already decided by config.rules[0]; a field goes in one rule only (merge the two rules, or remove it from one)",
            ),
        ];
        for (config, expected) in cases {
            assert_eq!(rules(config.clone()).unwrap_err(), expected, "{config}");
        }
    }

    #[test]
    fn serde_names_the_setting() {
        let err = rules(serde_json::json!({ "otherwise": "ask" })).unwrap_err();
        assert!(err.contains("config.otherwise"), "{err}");
        assert!(err.contains("defer"), "{err}");
        let err = rules(serde_json::json!({ "rules": [{ "field": "a", "prefers": "left" }] }))
            .unwrap_err();
        assert!(err.contains("config.rules[0]"), "{err}");
        assert!(err.contains("prefers"), "{err}");
    }
}
