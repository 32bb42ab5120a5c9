//! `schema-validator`: a ferry validator (world `validator-plugin`) that
//! checks each record against rules from its config. Every broken rule is
//! one violation naming the field, the rule and what is wrong, for example
//! `email "bob(at)example" does not match ^[^@\s]+@[^@\s]+$`.
//!
//! | key | rule name | what it checks |
//! |---|---|---|
//! | `required = ["id", "email"]` | `required` | the field is present and not null (an empty text counts as present) |
//! | `non_empty = ["email"]` | `non_empty` | a text field is not empty or only white space |
//! | `types = { age = "int" }` | `type` | the type: `int`, `float` (an int is accepted too), `number`, `bool`, `text`, `timestamp` or `json` (an object or array) |
//! | `ranges = { age = { min = 0, max = 120 } }` | `range` | a number lies within the bounds (inclusive; either may be left out) |
//! | `lengths = { last_name = { min = 1, max = 80 } }` | `length` | the length of a text, in characters |
//! | `regex = { email = '^[^@\s]+@[^@\s]+$' }` | `regex` | the text matches (anywhere, unless anchored; other types are matched in their text form) |
//! | `enums = { country = ["DE", "FR"] }` | `enum` | the value is one of the list (text, numbers or booleans) |
//! | `unique_key = true` (default `false`) | `unique_key` | no earlier record of the same batch has the same key: the later ones are violations |
//! | `key_required = true` (default `true`) | `key` | the record has a non-empty key |
//! | `reject_errors = true` (default `true`) | `source_error` | the record has no `_error` field: the file source sends lines it could not read as records with `_raw` and `_error`; such a record gets this one violation, with the `_error` text as its message, and no other |
//!
//! Rules other than `required` pass over null and absent values. Deletes
//! are checked only by `key`, `unique_key` and `source_error` (their fields
//! may be null). Regexes are compiled at open: a bad one is an
//! `invalid-config` error naming the field.
//!
//! ```toml
//! [plugins.rules]
//! kind = "validator"
//! wasm = "../../plugins/dist/schema-validator.wasm"
//! config = { required = ["id", "email", "region"], types = { age = "int" }, ranges = { age = { min = 0, max = 120 } }, lengths = { first_name = { max = 40 } }, regex = { email = '^[^@\s]+@[^@\s]+$' }, enums = { region = ["EU", "US", "APAC", "LATAM"] }, unique_key = true }
//! ```

use std::collections::HashMap;
use std::fmt::Display;

use indexmap::IndexMap;
use regex::Regex;

use ferry_plugin::{
    Batch, Column, Op, PluginError, Validator, Value, ValueKind, Violations, quote,
};

/// A type a field must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TypeRule {
    /// An integer.
    Int,
    /// A float (an integer is accepted).
    Float,
    /// An integer or a float.
    Number,
    /// A boolean.
    Bool,
    /// Text.
    Text,
    /// A timestamp.
    Timestamp,
    /// A JSON object or array.
    Json,
}

impl TypeRule {
    fn name(self) -> &'static str {
        match self {
            TypeRule::Int => "int",
            TypeRule::Float => "float",
            TypeRule::Number => "number",
            TypeRule::Bool => "bool",
            TypeRule::Text => "text",
            TypeRule::Timestamp => "timestamp",
            TypeRule::Json => "json",
        }
    }

    fn accepts(self, kind: ValueKind) -> bool {
        match self {
            TypeRule::Int => kind == ValueKind::Int,
            TypeRule::Float | TypeRule::Number => matches!(kind, ValueKind::Int | ValueKind::Float),
            TypeRule::Bool => kind == ValueKind::Bool,
            TypeRule::Text => kind == ValueKind::Text,
            TypeRule::Timestamp => kind == ValueKind::Timestamp,
            TypeRule::Json => kind == ValueKind::Json,
        }
    }
}

/// Inclusive bounds; either may be absent.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds<T> {
    /// The smallest value allowed.
    #[serde(default)]
    pub min: Option<T>,
    /// The largest value allowed.
    #[serde(default)]
    pub max: Option<T>,
}

fn yes() -> bool {
    true
}

/// The `config` table (see the crate docs).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Fields that must be present and not null.
    #[serde(default)]
    pub required: Vec<String>,
    /// Text fields that must not be empty.
    #[serde(default)]
    pub non_empty: Vec<String>,
    /// Field types.
    #[serde(default)]
    pub types: IndexMap<String, TypeRule>,
    /// Numeric bounds.
    #[serde(default)]
    pub ranges: IndexMap<String, Bounds<f64>>,
    /// Text lengths, in characters.
    #[serde(default)]
    pub lengths: IndexMap<String, Bounds<u64>>,
    /// Patterns text must match.
    #[serde(default)]
    pub regex: IndexMap<String, String>,
    /// Allowed values.
    #[serde(default)]
    pub enums: IndexMap<String, Vec<serde_json::Value>>,
    /// Refuse a key seen earlier in the same batch.
    #[serde(default)]
    pub unique_key: bool,
    /// Refuse records without a key.
    #[serde(default = "yes")]
    pub key_required: bool,
    /// Refuse records the source could not read (with an `_error` field).
    #[serde(default = "yes")]
    pub reject_errors: bool,
}

/// One rule about one field, compiled.
#[derive(Debug)]
enum Check {
    Required,
    NonEmpty,
    Type(TypeRule),
    Range(Bounds<f64>),
    Length(Bounds<u64>),
    Regex(Regex),
    Enum(Vec<serde_json::Value>),
}

/// The validator, with its rules compiled.
#[derive(Debug)]
pub struct SchemaValidator {
    checks: Vec<(String, Check)>,
    unique_key: bool,
    key_required: bool,
    reject_errors: bool,
}

fn check_bounds<T: PartialOrd + Display + Copy>(
    bounds: &Bounds<T>,
    what: &str,
    field: &str,
) -> Result<(), PluginError> {
    match (bounds.min, bounds.max) {
        (None, None) => Err(PluginError::invalid_config(format!(
            "config.{what}.{field}: give min, max or both"
        ))),
        (Some(min), Some(max)) if min > max => Err(PluginError::invalid_config(format!(
            "config.{what}.{field}: min {min} is greater than max {max}"
        ))),
        _ => Ok(()),
    }
}

impl Validator for SchemaValidator {
    type Config = Config;

    fn open(config: Config) -> Result<Self, PluginError> {
        let mut checks = Vec::new();
        checks.extend(config.required.into_iter().map(|f| (f, Check::Required)));
        checks.extend(config.non_empty.into_iter().map(|f| (f, Check::NonEmpty)));
        checks.extend(config.types.into_iter().map(|(f, t)| (f, Check::Type(t))));
        for (field, bounds) in config.ranges {
            check_bounds(&bounds, "ranges", &field)?;
            checks.push((field, Check::Range(bounds)));
        }
        for (field, bounds) in config.lengths {
            check_bounds(&bounds, "lengths", &field)?;
            checks.push((field, Check::Length(bounds)));
        }
        for (field, pattern) in config.regex {
            let re = Regex::new(&pattern).map_err(|e| {
                PluginError::invalid_config(format!(
                    "config.regex.{field}: invalid regex {pattern:?}: {e}"
                ))
            })?;
            checks.push((field, Check::Regex(re)));
        }
        for (field, values) in config.enums {
            if values.is_empty() {
                return Err(PluginError::invalid_config(format!(
                    "config.enums.{field}: the list of allowed values is empty"
                )));
            }
            if let Some(bad) = values
                .iter()
                .find(|v| v.is_object() || v.is_array() || v.is_null())
            {
                return Err(PluginError::invalid_config(format!(
                    "config.enums.{field}: {bad} is not text, a number or a boolean"
                )));
            }
            checks.push((field, Check::Enum(values)));
        }
        Ok(SchemaValidator {
            checks,
            unique_key: config.unique_key,
            key_required: config.key_required,
            reject_errors: config.reject_errors,
        })
    }

    fn validate(&mut self, records: &Batch, out: &mut Violations) -> Result<(), PluginError> {
        // Columns are looked up once per batch.
        let columns: Vec<Option<Column<'_>>> =
            self.checks.iter().map(|(f, _)| records.column(f)).collect();
        let errors = if self.reject_errors {
            records.column("_error")
        } else {
            None
        };
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for row in records.rows() {
            if let Some(Value::Text(error)) = errors.map(|c| row.value(c)) {
                out.field(&row, "_error", "source_error", error);
                continue;
            }
            let key = row.key();
            if self.key_required && key.is_empty() {
                out.record(&row, "key", "the record has no key");
            }
            if self.unique_key && !key.is_empty() {
                if let Some(first) = seen.get(key) {
                    out.record(
                        &row,
                        "unique_key",
                        format!(
                            "key {} appears more than once in this batch (first as record {first})",
                            quote(key)
                        ),
                    );
                } else {
                    seen.insert(key, row.index());
                }
            }
            if row.op() == Op::Delete {
                continue;
            }
            for ((field, check), column) in self.checks.iter().zip(&columns) {
                let value = column.map_or(Value::Null, |c| row.value(c));
                if let Some((rule, message)) = run_check(field, check, value) {
                    out.field(&row, field, rule, message);
                }
            }
        }
        Ok(())
    }
}

/// Runs one check; `Some((rule, message))` when it fails.
fn run_check(field: &str, check: &Check, value: Value<'_>) -> Option<(&'static str, String)> {
    if value.is_null() {
        return matches!(check, Check::Required)
            .then(|| ("required", format!("{field} is missing")));
    }
    match check {
        Check::Required => None,
        Check::NonEmpty => value
            .as_text()
            .filter(|t| t.trim().is_empty())
            .map(|_| ("non_empty", format!("{field} is empty"))),
        Check::Type(t) => (!t.accepts(value.kind())).then(|| {
            (
                "type",
                format!("{field} should be {}, found {}", t.name(), value.describe()),
            )
        }),
        Check::Range(b) => {
            let Some(x) = value.as_float() else {
                return Some(("range", format!("{field} {} is not a number", shown(value))));
            };
            if let Some(min) = b.min
                && x < min
            {
                return Some((
                    "range",
                    format!("{field} {} is below the minimum {min}", shown(value)),
                ));
            }
            if let Some(max) = b.max
                && x > max
            {
                return Some((
                    "range",
                    format!("{field} {} is above the maximum {max}", shown(value)),
                ));
            }
            None
        }
        Check::Length(b) => {
            let text = value.as_text()?;
            let n = text.chars().count() as u64;
            if let Some(min) = b.min
                && n < min
            {
                return Some((
                    "length",
                    format!("{field} is {n} characters long, fewer than the minimum {min}"),
                ));
            }
            if let Some(max) = b.max
                && n > max
            {
                return Some((
                    "length",
                    format!("{field} is {n} characters long, more than the maximum {max}"),
                ));
            }
            None
        }
        Check::Regex(re) => {
            let matched = match value.as_text() {
                Some(t) => re.is_match(t),
                None => re.is_match(&value.to_string()),
            };
            (!matched).then(|| {
                (
                    "regex",
                    format!("{field} {} does not match {}", shown(value), re.as_str()),
                )
            })
        }
        Check::Enum(allowed) => {
            let ok = allowed.iter().any(|a| enum_matches(a, value));
            (!ok).then(|| {
                let mut list: Vec<String> =
                    allowed.iter().take(10).map(|a| a.to_string()).collect();
                if allowed.len() > 10 {
                    list.push("…".to_owned());
                }
                (
                    "enum",
                    format!("{field} {} is not one of {}", shown(value), list.join(", ")),
                )
            })
        }
    }
}

/// A value for a message: text quoted, the rest as written.
fn shown(v: Value<'_>) -> String {
    match v {
        Value::Text(t) => quote(t),
        other => other.to_string(),
    }
}

fn enum_matches(allowed: &serde_json::Value, v: Value<'_>) -> bool {
    use serde_json::Value as J;
    match (allowed, v) {
        (J::String(a), Value::Text(t)) => a == t,
        (J::Bool(a), Value::Bool(b)) => *a == b,
        (J::Number(n), Value::Int(i)) => n.as_i64() == Some(i) || n.as_f64() == Some(i as f64),
        (J::Number(n), Value::Float(x)) => n.as_f64() == Some(x),
        _ => false,
    }
}

ferry_plugin::export_validator!(SchemaValidator);

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_plugin::{BatchBuilder, Violation};

    fn validator(config: serde_json::Value) -> SchemaValidator {
        SchemaValidator::open(ferry_plugin::config::parse(&config.to_string()).unwrap()).unwrap()
    }

    fn open_err(config: serde_json::Value) -> String {
        match ferry_plugin::config::parse::<Config>(&config.to_string())
            .and_then(SchemaValidator::open)
        {
            Err(PluginError::InvalidConfig(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    fn check(v: &mut SchemaValidator, b: BatchBuilder) -> Vec<Violation> {
        let batch = Batch::from_raw(b.finish()).unwrap();
        let mut out = Violations::new();
        v.validate(&batch, &mut out).unwrap();
        out.into_vec()
    }

    fn messages(found: &[Violation]) -> Vec<(u32, Option<&str>, &str, &str)> {
        found
            .iter()
            .map(|v| {
                (
                    v.row,
                    v.field.as_deref(),
                    v.rule.as_str(),
                    v.message.as_str(),
                )
            })
            .collect()
    }

    #[test]
    fn required_and_non_empty() {
        let mut v =
            validator(serde_json::json!({ "required": ["email", "name"], "non_empty": ["email"] }));
        let mut b = BatchBuilder::new();
        b.row("1", Op::Upsert).set("email", "a@b").set("name", "");
        b.row("2", Op::Upsert).set("email", "  ").set("name", "x");
        b.row("3", Op::Upsert).set("name", "x");
        let found = check(&mut v, b);
        assert_eq!(
            messages(&found),
            [
                (1, Some("email"), "non_empty", "email is empty"),
                (2, Some("email"), "required", "email is missing"),
            ]
        );
    }

    #[test]
    fn types_ranges_lengths() {
        let mut v = validator(serde_json::json!({
            "types": { "age": "int", "score": "number", "at": "timestamp" },
            "ranges": { "age": { "min": 0, "max": 120 } },
            "lengths": { "name": { "min": 2, "max": 5 } },
        }));
        let mut b = BatchBuilder::new();
        b.row("1", Op::Upsert)
            .set("age", 30)
            .set("score", 1.5)
            .set("name", "Ada")
            .set_timestamp("at", 0);
        b.row("2", Op::Upsert)
            .set("age", 150)
            .set("name", "Ådalovelace");
        b.row("3", Op::Upsert).set("age", -1).set("name", "A");
        b.row("4", Op::Upsert)
            .set("age", "abc")
            .set("score", "x")
            .set_bool("at", true);
        let found = check(&mut v, b);
        assert_eq!(
            messages(&found),
            [
                // A bool among timestamps makes a JSON column: both read back as
                // they were written, except the timestamp, which reads as text.
                (
                    0,
                    Some("at"),
                    "type",
                    "at should be timestamp, found text \"1970-01-01T00:00:00Z\""
                ),
                (1, Some("age"), "range", "age 150 is above the maximum 120"),
                (
                    1,
                    Some("name"),
                    "length",
                    "name is 11 characters long, more than the maximum 5"
                ),
                (2, Some("age"), "range", "age -1 is below the minimum 0"),
                (
                    2,
                    Some("name"),
                    "length",
                    "name is 1 characters long, fewer than the minimum 2"
                ),
                (
                    3,
                    Some("age"),
                    "type",
                    "age should be int, found text \"abc\""
                ),
                (
                    3,
                    Some("score"),
                    "type",
                    "score should be number, found text \"x\""
                ),
                (
                    3,
                    Some("at"),
                    "type",
                    "at should be timestamp, found bool true"
                ),
                (3, Some("age"), "range", "age \"abc\" is not a number"),
            ]
        );
    }

    #[test]
    fn regex_and_enums() {
        let mut v = validator(serde_json::json!({
            "regex": { "email": r"^[^@\s]+@[^@\s]+$" },
            "enums": { "region": ["EU", "US"], "tier": [1, 2] },
        }));
        let mut b = BatchBuilder::new();
        b.row("1", Op::Upsert)
            .set("email", "bob@example.org")
            .set("region", "EU")
            .set("tier", 2);
        b.row("2", Op::Upsert)
            .set("email", "bob(at)example")
            .set("region", "XX")
            .set("tier", 3);
        let found = check(&mut v, b);
        assert_eq!(
            messages(&found),
            [
                (
                    1,
                    Some("email"),
                    "regex",
                    r#"email "bob(at)example" does not match ^[^@\s]+@[^@\s]+$"#
                ),
                (
                    1,
                    Some("region"),
                    "enum",
                    r#"region "XX" is not one of "EU", "US""#
                ),
                (1, Some("tier"), "enum", "tier 3 is not one of 1, 2"),
            ]
        );
    }

    #[test]
    fn keys_errors_and_deletes() {
        let mut v = validator(serde_json::json!({ "required": ["email"], "unique_key": true }));
        let mut b = BatchBuilder::new();
        b.row("1", Op::Upsert).set("email", "a@b");
        b.row("1", Op::Upsert).set("email", "c@d");
        b.row("", Op::Upsert).set("email", "e@f");
        b.row("/in/x.csv:7", Op::Upsert)
            .set("_raw", "1,2,3")
            .set("_error", "expected 2 fields (as in the header), found 3");
        b.row("9", Op::Delete);
        let found = check(&mut v, b);
        assert_eq!(
            messages(&found),
            [
                (
                    1,
                    None,
                    "unique_key",
                    "key \"1\" appears more than once in this batch (first as record 0)"
                ),
                (2, None, "key", "the record has no key"),
                (
                    3,
                    Some("_error"),
                    "source_error",
                    "expected 2 fields (as in the header), found 3"
                ),
            ]
        );
        let mut lenient =
            validator(serde_json::json!({ "reject_errors": false, "key_required": false }));
        let mut b = BatchBuilder::new();
        b.row("", Op::Upsert).set("_error", "bad");
        assert!(check(&mut lenient, b).is_empty());
    }

    #[test]
    fn config_errors() {
        let e = open_err(serde_json::json!({ "regex": { "email": "(" } }));
        assert!(
            e.starts_with("config.regex.email: invalid regex \"(\""),
            "{e}"
        );
        let e = open_err(serde_json::json!({ "ranges": { "age": { "min": 5, "max": 1 } } }));
        assert_eq!(e, "config.ranges.age: min 5 is greater than max 1");
        let e = open_err(serde_json::json!({ "types": { "age": "integer" } }));
        assert!(
            e.starts_with("config.types.age: unknown variant \"integer\""),
            "{e}"
        );
        let e = open_err(serde_json::json!({ "enums": { "x": [] } }));
        assert!(e.contains("empty"), "{e}");
        let e = open_err(serde_json::json!({ "lengths": { "x": { "mx": 3 } } }));
        assert!(e.starts_with("config.lengths.x.mx: unknown field"), "{e}");
    }
}
