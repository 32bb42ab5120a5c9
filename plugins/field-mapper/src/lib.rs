//! `field-mapper`: a ferry mapper (world `mapper-plugin`) that reshapes
//! records as its config says: rename, drop, default, clean up text, cast,
//! compute and look up fields.
//!
//! The steps run in this order, each on the result of the one before:
//!
//! | key | what it does |
//! |---|---|
//! | `rename = { old = "new" }` | renames fields (a renamed field replaces a field that already had the new name) |
//! | `drop = ["field", ...]` | removes fields (names after renaming) |
//! | `default = { field = value }` | sets a value where the field is null or absent |
//! | `trim = [...]` | removes leading and trailing white space from text |
//! | `lowercase = [...]`, `uppercase = [...]` | changes the case of text |
//! | `titlecase = [...]` | upper-cases the first letter of each word, lower-cases the rest (`mary-jane o'neil` → `Mary-Jane O'neil`) |
//! | `cast = { field = "int" }` | converts to `int`, `float`, `bool`, `text` or `timestamp`; `{ to = "timestamp", format = "%d/%m/%Y" }` reads text with a strftime format (and `{ to = "text", format = ... }` writes a timestamp with one) |
//! | `computed = { field = "expression" }` | sets a field from an expression over the record (see below), in the order given |
//! | `lookup = [{ table = "/ref/regions.csv", match = "country", column = "region", into = "region" }]` | looks the value of `match` up in a CSV table and writes the table's `column` to `into` (default: `column`); `key` names the table column to compare when it differs from `match`; `delimiter` the table's delimiter. No match (or a null field) gives null |
//!
//! Steps other than `rename`, `drop` and `default` leave nulls as nulls and
//! values of other types alone (trimming an int does nothing).
//!
//! ```toml
//! [plugins.to_warehouse]
//! kind = "mapper"
//! wasm = "../../plugins/dist/field-mapper.wasm"
//! config = { rename = { mail = "email" }, trim = ["first_name", "last_name", "email"], lowercase = ["email"], cast = { age = "int", signup = "timestamp" }, computed = { full_name = "first_name + ' ' + last_name" }, lookup = [{ table = "/ref/regions.csv", match = "country", column = "region" }] }
//! grants = { files = [{ host = "data", guest = "/ref", mode = "ro" }] }
//! ```
//!
//! **Casts**: text to `int` (`"42"`, also `"42.0"`), `float`, `bool`
//! (`true/false`, `yes/no`, `1/0`, any case) and `timestamp` (RFC 3339,
//! a plain date `YYYY-MM-DD` as midnight UTC, or the given strftime
//! format); any value to `text` (numbers as digits, timestamps as RFC 3339
//! unless a format is given); floats with no fraction to `int`; `int` and
//! `bool` both ways. A value that does not convert does not drop the record
//! and does not fail the batch: the record is rejected (to the dead-letter
//! store) with a reason such as `cast of field "age": "abc" is not an
//! integer`.
//!
//! **Expressions** (`computed`): field names (`first_name`, or
//! `"first name"` in double quotes), text in single quotes (`'it''s'`),
//! numbers (`12`, `0.5`), `+ - * /` and parentheses. `+` joins text when
//! either side is text and adds otherwise; `/` always gives a float. A null
//! operand gives null. Syntax errors are reported at open as
//! `invalid-config` with the position; errors while computing (text in
//! arithmetic, division by zero) reject the record.
//!
//! **Lookup tables** are CSV files with a header, read once at open from a
//! granted folder; a missing file or column is an `invalid-config` error.
//! When a key appears twice, the first row wins. Values are compared as
//! text (an int field `7` matches the table text `7`).
//!
//! Keys, operations and metadata (version, updated-at, origin) go through
//! unchanged, and each output record is derived from its input record.

mod cast;
mod cell;
mod expr;
mod lookup;

use std::borrow::Cow;

use indexmap::IndexMap;

use ferry_plugin::{Batch, Column, ColumnId, Mapped, Mapper, PluginError};

pub use cast::{CastSpec, CastType};
use cell::Cell;
use expr::Compiled;
use lookup::Lookup;
pub use lookup::LookupSpec;

/// The `config` table (see the crate docs).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Old name to new name.
    #[serde(default)]
    pub rename: IndexMap<String, String>,
    /// Fields to remove.
    #[serde(default)]
    pub drop: Vec<String>,
    /// Values for null or absent fields.
    #[serde(default)]
    pub default: IndexMap<String, serde_json::Value>,
    /// Text fields to trim.
    #[serde(default)]
    pub trim: Vec<String>,
    /// Text fields to lower-case.
    #[serde(default)]
    pub lowercase: Vec<String>,
    /// Text fields to upper-case.
    #[serde(default)]
    pub uppercase: Vec<String>,
    /// Text fields to title-case.
    #[serde(default)]
    pub titlecase: Vec<String>,
    /// Fields to convert.
    #[serde(default)]
    pub cast: IndexMap<String, CastSpec>,
    /// Fields computed from expressions.
    #[serde(default)]
    pub computed: IndexMap<String, String>,
    /// Lookup tables.
    #[serde(default)]
    pub lookup: Vec<LookupSpec>,
}

/// A text transformation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Trim,
    Lower,
    Upper,
    Title,
}

/// The mapper, with its rules compiled.
#[derive(Debug)]
pub struct FieldMapper {
    rename: IndexMap<String, String>,
    drop: Vec<String>,
    defaults: Vec<(String, serde_json::Value)>,
    texts: Vec<(String, Case)>,
    casts: Vec<(String, CastSpec)>,
    computed: Vec<(String, Compiled)>,
    lookups: Vec<Lookup>,
}

/// One field of the records being mapped: where it comes from in the input
/// batch, and where it goes in the output (if anywhere).
struct Slot<'b> {
    name: String,
    input: Option<Column<'b>>,
    output: bool,
}

/// The rules resolved against one batch's columns: every field named by
/// position, so the per-record loop does no name lookups.
struct Plan<'b> {
    slots: Vec<Slot<'b>>,
    defaults: Vec<(usize, usize)>,
    texts: Vec<(usize, Case)>,
    casts: Vec<(usize, usize)>,
    computed: Vec<(usize, usize, Vec<usize>)>,
    lookups: Vec<(usize, usize, usize)>,
}

impl<'b> Plan<'b> {
    fn find(&self, name: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.name == name)
    }

    /// A field that is read: its slot, created (null, not written) if the
    /// batch does not have it.
    fn source(&mut self, name: &str) -> usize {
        match self.find(name) {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    name: name.to_owned(),
                    input: None,
                    output: false,
                });
                self.slots.len() - 1
            }
        }
    }

    /// A field that is written: its slot, marked for output.
    fn target(&mut self, name: &str) -> usize {
        let i = self.source(name);
        if let Some(s) = self.slots.get_mut(i) {
            s.output = true;
        }
        i
    }
}

impl Mapper for FieldMapper {
    type Config = Config;

    fn open(config: Config) -> Result<Self, PluginError> {
        let mut texts = Vec::new();
        for (list, case) in [
            (config.trim, Case::Trim),
            (config.lowercase, Case::Lower),
            (config.uppercase, Case::Upper),
            (config.titlecase, Case::Title),
        ] {
            texts.extend(list.into_iter().map(|f| (f, case)));
        }
        let mut computed = Vec::with_capacity(config.computed.len());
        for (field, source) in config.computed {
            let compiled = expr::parse(&source).map_err(|e| {
                PluginError::invalid_config(format!("config.computed.{field}: {e} in {source:?}"))
            })?;
            computed.push((field, compiled));
        }
        let mut lookups = Vec::with_capacity(config.lookup.len());
        for (i, spec) in config.lookup.iter().enumerate() {
            let table = Lookup::load(spec, &format!("lookup[{i}]"))?;
            ferry_plugin::log::debug!("lookup table {} has {} keys", spec.table, table.len());
            lookups.push(table);
        }
        Ok(FieldMapper {
            rename: config.rename,
            drop: config.drop,
            defaults: config.default.into_iter().collect(),
            texts,
            casts: config.cast.into_iter().collect(),
            computed,
            lookups,
        })
    }

    fn map(&mut self, input: &Batch, out: &mut Mapped) -> Result<(), PluginError> {
        let plan = self.plan(input);
        let outputs: Vec<(usize, ColumnId)> = plan
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.output)
            .map(|(i, s)| (i, out.column(&s.name)))
            .collect();
        let mut cells: Vec<Cell<'_>> = Vec::with_capacity(plan.slots.len());
        'rows: for row in input.rows() {
            cells.clear();
            cells.extend(plan.slots.iter().map(|s| {
                s.input
                    .map_or(Cell::Null, |c| Cell::from_value(row.value(c)))
            }));
            for &(slot, d) in &plan.defaults {
                if let (Some(cell), Some((_, value))) = (cells.get_mut(slot), self.defaults.get(d))
                    && cell.is_null()
                {
                    *cell = Cell::from_json(value);
                }
            }
            for &(slot, case) in &plan.texts {
                if let Some(Cell::Text(text)) = cells.get_mut(slot) {
                    change_text(text, case);
                }
            }
            for &(slot, c) in &plan.casts {
                let (Some(cell), Some((name, spec))) = (cells.get_mut(slot), self.casts.get(c))
                else {
                    continue;
                };
                match cast::cast(std::mem::replace(cell, Cell::Null), spec) {
                    Ok(v) => *cell = v,
                    Err(reason) => {
                        out.reject(&row, format!("cast of field {name:?}: {reason}"));
                        continue 'rows;
                    }
                }
            }
            for (slot, e, fields) in &plan.computed {
                let Some((name, compiled)) = self.computed.get(*e) else {
                    continue;
                };
                let value = {
                    let read = |i: usize| {
                        fields
                            .get(i)
                            .and_then(|&s| cells.get(s))
                            .cloned()
                            .unwrap_or(Cell::Null)
                    };
                    compiled.eval(&read)
                };
                match value {
                    Ok(v) => {
                        if let Some(cell) = cells.get_mut(*slot) {
                            *cell = v;
                        }
                    }
                    Err(reason) => {
                        out.reject(&row, format!("computed field {name:?}: {reason}"));
                        continue 'rows;
                    }
                }
            }
            for &(from, into, l) in &plan.lookups {
                let Some(table) = self.lookups.get(l) else {
                    continue;
                };
                let found = match cells.get(from) {
                    None | Some(Cell::Null) => None,
                    Some(Cell::Text(key)) => table.get(key),
                    Some(other) => table.get(&other.to_text()),
                };
                if let Some(cell) = cells.get_mut(into) {
                    *cell = found.map_or(Cell::Null, |v| Cell::Text(Cow::Borrowed(v)));
                }
            }
            let mut record = out.emit(&row);
            for &(slot, column) in &outputs {
                if let Some(cell) = cells.get(slot)
                    && !cell.is_null()
                {
                    record.set_at(column, cell.as_value());
                }
            }
        }
        Ok(())
    }
}

impl FieldMapper {
    /// Resolves the rules against `input`'s columns.
    fn plan<'b>(&self, input: &'b Batch) -> Plan<'b> {
        let mut plan = Plan {
            slots: Vec::with_capacity(input.column_count() + 4),
            defaults: Vec::new(),
            texts: Vec::new(),
            casts: Vec::new(),
            computed: Vec::new(),
            lookups: Vec::new(),
        };
        for column in input.columns() {
            let (name, renamed) = match self.rename.get(column.name()) {
                Some(new) => (new.as_str(), true),
                None => (column.name(), false),
            };
            if self.drop.iter().any(|d| d == name) {
                continue;
            }
            match plan.find(name) {
                Some(i) => {
                    if renamed && let Some(s) = plan.slots.get_mut(i) {
                        s.input = Some(column);
                    }
                }
                None => plan.slots.push(Slot {
                    name: name.to_owned(),
                    input: Some(column),
                    output: true,
                }),
            }
        }
        for (i, (name, _)) in self.defaults.iter().enumerate() {
            let slot = plan.target(name);
            plan.defaults.push((slot, i));
        }
        for (name, case) in &self.texts {
            let slot = plan.source(name);
            plan.texts.push((slot, *case));
        }
        for (i, (name, _)) in self.casts.iter().enumerate() {
            let slot = plan.source(name);
            plan.casts.push((slot, i));
        }
        for (i, (name, compiled)) in self.computed.iter().enumerate() {
            let fields = compiled.fields().iter().map(|f| plan.source(f)).collect();
            let slot = plan.target(name);
            plan.computed.push((slot, i, fields));
        }
        for (i, table) in self.lookups.iter().enumerate() {
            let from = plan.source(&table.match_field);
            let into = plan.target(&table.into);
            plan.lookups.push((from, into, i));
        }
        plan
    }
}

/// Applies a text transformation, allocating only if the text changes.
fn change_text(text: &mut Cow<'_, str>, case: Case) {
    match case {
        Case::Trim => {
            if text.trim().len() != text.len() {
                match text {
                    Cow::Borrowed(s) => *s = s.trim(),
                    Cow::Owned(s) => *s = s.trim().to_owned(),
                }
            }
        }
        Case::Lower => {
            if text.chars().any(char::is_uppercase) {
                *text = Cow::Owned(text.to_lowercase());
            }
        }
        Case::Upper => {
            if text.chars().any(char::is_lowercase) {
                *text = Cow::Owned(text.to_uppercase());
            }
        }
        Case::Title => {
            let titled = titlecase(text);
            if titled != **text {
                *text = Cow::Owned(titled);
            }
        }
    }
}

/// Upper-cases the first letter of each word and lower-cases the rest; a
/// word is a run of letters, digits and apostrophes.
fn titlecase(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at_start = true;
    for c in s.chars() {
        if c.is_alphanumeric() || c == '\'' || c == '\u{2019}' {
            if at_start {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
            at_start = false;
        } else {
            out.push(c);
            at_start = true;
        }
    }
    out
}

ferry_plugin::export_mapper!(FieldMapper);

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_plugin::{BatchBuilder, MapOutput, Op, RecordIssue, Value, map_with_view};

    fn mapper(config: serde_json::Value) -> FieldMapper {
        FieldMapper::open(ferry_plugin::config::parse(&config.to_string()).unwrap()).unwrap()
    }

    fn open_err(config: serde_json::Value) -> String {
        match ferry_plugin::config::parse::<Config>(&config.to_string()).and_then(FieldMapper::open)
        {
            Err(PluginError::InvalidConfig(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    fn run(m: &mut FieldMapper, b: BatchBuilder) -> (Batch, MapOutput) {
        let out = map_with_view(m, b.finish()).unwrap();
        (Batch::from_raw(out.records.clone()).unwrap(), out)
    }

    fn contacts() -> BatchBuilder {
        let mut b = BatchBuilder::new();
        b.row("1", Op::Upsert)
            .set("first_name", "  ada ")
            .set("last_name", "LOVELACE")
            .set("mail", " Ada@Example.ORG ")
            .set("age", "36")
            .set("country", "GB")
            .set("signup", "2024-05-01")
            .set("secret", "x")
            .version(7);
        b.row("2", Op::Upsert)
            .set("first_name", "grace")
            .set("mail", "grace@example.org")
            .set("age", "abc")
            .set("country", "US");
        b.row("3", Op::Delete);
        b
    }

    #[test]
    fn applies_every_step_in_order() {
        let dir = std::env::temp_dir().join(format!("ferry-mapper-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let table = dir.join("regions.csv");
        std::fs::write(&table, "country,region\nGB,EU\nUS,US\n").unwrap();
        let mut m = mapper(serde_json::json!({
            "rename": { "mail": "email" },
            "drop": ["secret"],
            "default": { "last_name": "(unknown)", "source": "crm" },
            "trim": ["first_name", "email"],
            "lowercase": ["email"],
            "titlecase": ["first_name", "last_name"],
            "cast": { "age": "int", "signup": "timestamp" },
            "computed": { "full_name": "first_name + ' ' + last_name", "next_age": "age + 1" },
            "lookup": [{ "table": table.to_string_lossy(), "match": "country", "column": "region" }],
        }));
        let (b, out) = run(&mut m, contacts());
        assert_eq!(out.derived_from, [0, 2]);
        assert_eq!(
            out.rejected,
            [RecordIssue {
                row: 1,
                reason: "cast of field \"age\": \"abc\" is not an integer".into()
            }]
        );
        let r = b.row(0).unwrap();
        assert_eq!(r.key(), "1");
        assert_eq!(r.version(), Some(7));
        assert_eq!(r.get("email"), Value::Text("ada@example.org"));
        assert_eq!(r.get("mail"), Value::Null);
        assert_eq!(r.get("secret"), Value::Null);
        assert!(b.column("secret").is_none());
        assert_eq!(r.get("first_name"), Value::Text("Ada"));
        assert_eq!(r.get("last_name"), Value::Text("Lovelace"));
        assert_eq!(r.get("age"), Value::Int(36));
        assert_eq!(r.get("next_age"), Value::Int(37));
        assert_eq!(r.get("signup"), Value::Timestamp(1_714_521_600_000_000));
        assert_eq!(r.get("full_name"), Value::Text("Ada Lovelace"));
        assert_eq!(r.get("source"), Value::Text("crm"));
        assert_eq!(r.get("region"), Value::Text("EU"));
        // The delete keeps its op; defaults still apply to it.
        let d = b.row(1).unwrap();
        assert_eq!((d.key(), d.op()), ("3", Op::Delete));
        assert_eq!(d.get("region"), Value::Null);
        assert_eq!(d.get("last_name"), Value::Text("(Unknown)")); // default, then titlecase
        assert_eq!(d.get("full_name"), Value::Null);
    }

    #[test]
    fn rename_onto_an_existing_field_replaces_it() {
        let mut m = mapper(serde_json::json!({ "rename": { "mail": "email" } }));
        let mut b = BatchBuilder::new();
        b.row("1", Op::Upsert)
            .set("email", "old")
            .set("mail", "new");
        let (out, _) = run(&mut m, b);
        assert_eq!(out.column_count(), 1);
        assert_eq!(out.row(0).unwrap().get("email"), Value::Text("new"));
    }

    #[test]
    fn computed_errors_reject_the_record() {
        let mut m = mapper(serde_json::json!({ "computed": { "x": "a / b" } }));
        let mut b = BatchBuilder::new();
        b.row("1", Op::Upsert).set("a", 1).set("b", 0);
        b.row("2", Op::Upsert).set("a", 1).set("b", 4);
        let (out, res) = run(&mut m, b);
        assert_eq!(
            res.rejected[0].reason,
            "computed field \"x\": division by zero"
        );
        assert_eq!(out.row(0).unwrap().get("x"), Value::Float(0.25));
    }

    #[test]
    fn open_errors_name_the_setting() {
        let e = open_err(serde_json::json!({ "computed": { "x": "a +" } }));
        assert_eq!(
            e,
            "config.computed.x: expected a value, found the end at position 4 in \"a +\""
        );
        let e = open_err(
            serde_json::json!({ "lookup": [{ "table": "/nope.csv", "match": "c", "column": "r" }] }),
        );
        assert!(
            e.starts_with("config.lookup[0].table: cannot read \"/nope.csv\""),
            "{e}"
        );
        let e = open_err(serde_json::json!({ "cast": { "age": "integer" } }));
        assert!(
            e.starts_with("config.cast.age: unknown type \"integer\""),
            "{e}"
        );
        let e = open_err(serde_json::json!({ "trimm": ["a"] }));
        assert!(
            e.starts_with("config.trimm: unknown field \"trimm\""),
            "{e}"
        );
    }

    #[test]
    fn lookup_errors_and_options() {
        let dir = std::env::temp_dir().join(format!("ferry-mapper-lk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let table = dir.join("codes.csv");
        std::fs::write(&table, "code;label\n7;seven\n7;dup\n").unwrap();
        let t = table.to_string_lossy();
        let e = open_err(
            serde_json::json!({ "lookup": [{ "table": t, "match": "n", "column": "label" }] }),
        );
        assert!(e.contains("has no column \"n\""), "{e}");
        let mut m = mapper(serde_json::json!({
            "lookup": [{ "table": t, "match": "n", "key": "code", "column": "label", "into": "name", "delimiter": ";" }]
        }));
        let mut b = BatchBuilder::new();
        b.row("1", Op::Upsert).set("n", 7);
        b.row("2", Op::Upsert).set("n", 8);
        let (out, _) = run(&mut m, b);
        assert_eq!(out.row(0).unwrap().get("name"), Value::Text("seven"));
        assert_eq!(out.row(1).unwrap().get("name"), Value::Null);
    }

    #[test]
    fn text_changes() {
        assert_eq!(
            titlecase("mary-jane o'neil  SMITH"),
            "Mary-Jane O'neil  Smith"
        );
        let mut t: Cow<'_, str> = Cow::Borrowed("  x ");
        change_text(&mut t, Case::Trim);
        assert!(matches!(t, Cow::Borrowed("x")));
        let mut t: Cow<'_, str> = Cow::Borrowed("abc");
        change_text(&mut t, Case::Lower);
        assert!(matches!(t, Cow::Borrowed(_)));
        change_text(&mut t, Case::Upper);
        assert_eq!(t, "ABC");
    }
}
