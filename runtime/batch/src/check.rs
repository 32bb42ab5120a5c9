//! Helpers over the columnar [`Batch`] of the WIT contract, and the checks
//! the host runs on a batch a plugin returns.
//!
//! The pipeline never turns a batch into rows to move it: it checks a batch
//! once when a plugin returns it ([`BatchExt::check`]), then selects rows by
//! index ([`BatchExt::take`]) to route, filter and dead-letter them. Only a
//! record that leaves the flow (a dead letter) is turned into JSON. Nothing
//! here trusts a batch before it is checked: reads of an unchecked batch
//! give empty values, never a panic.

use crate::types::{Batch, Column, Op, Texts, Values};

/// A borrowed value of one field of one record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// Absent.
    Null,
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// UTF-8 text.
    Text(&'a str),
    /// Raw bytes.
    Bytes(&'a [u8]),
    /// Microseconds since the Unix epoch.
    Timestamp(i64),
    /// A JSON document.
    Json(&'a str),
}

impl Texts {
    /// An empty column of variable-length values.
    pub fn empty() -> Texts {
        Texts {
            offsets: vec![0],
            data: Vec::new(),
        }
    }

    /// Builds texts from strings.
    pub fn from_strs<'a>(values: impl IntoIterator<Item = &'a str>) -> Texts {
        let mut t = Texts::empty();
        for v in values {
            t.push(v.as_bytes());
        }
        t
    }

    /// Appends a value.
    pub fn push(&mut self, value: &[u8]) {
        self.data.extend_from_slice(value);
        self.offsets.push(self.data.len() as u32);
    }

    /// How many values it holds.
    pub fn count(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Value `i` as bytes (empty if out of range; call [`BatchExt::check`] first).
    pub fn bytes(&self, i: usize) -> &[u8] {
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&a), Some(&b)) => self.data.get(a as usize..b as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Value `i` as text (empty if not UTF-8; call [`BatchExt::check`] first).
    pub fn str(&self, i: usize) -> &str {
        std::str::from_utf8(self.bytes(i)).unwrap_or("")
    }

    fn take(&self, rows: &[u32]) -> Texts {
        let mut out = Texts {
            offsets: Vec::with_capacity(rows.len() + 1),
            data: Vec::new(),
        };
        out.offsets.push(0);
        for &r in rows {
            out.push(self.bytes(r as usize));
        }
        out
    }

    fn check(&self, what: &str, rows: usize, utf8: bool) -> Result<(), String> {
        if self.offsets.len() != rows + 1 {
            return Err(format!(
                "{what}: {} offsets for {rows} records (want {})",
                self.offsets.len(),
                rows + 1
            ));
        }
        if self.offsets.first() != Some(&0) {
            return Err(format!("{what}: offsets must start at 0"));
        }
        if self.offsets.windows(2).any(|w| w[0] > w[1]) {
            return Err(format!("{what}: offsets go backwards"));
        }
        if self.offsets.last().map(|&l| l as usize) != Some(self.data.len()) {
            return Err(format!(
                "{what}: the last offset must equal the data length {}",
                self.data.len()
            ));
        }
        if utf8 {
            for i in 0..rows {
                if std::str::from_utf8(self.bytes(i)).is_err() {
                    return Err(format!("{what}: value {i} is not UTF-8"));
                }
            }
        }
        Ok(())
    }
}

/// The deepest nesting of arrays and objects a `json` value may have:
/// serde_json's own limit (it refuses a 128th level with "recursion limit
/// exceeded"), so the host (dead letters) and readers using its defaults can
/// read back whatever the check lets through.
pub const MAX_JSON_DEPTH: usize = 127;

/// Why `bytes` is not one JSON document, if it is not: not UTF-8, nested
/// deeper than [`MAX_JSON_DEPTH`], or not JSON (a syntax error, trailing
/// garbage, nothing at all). A validating scan that builds no tree and does
/// not recurse: serde_json skips a value with an explicit stack on the
/// heap, and the depth is counted in a plain loop first, so 100,000 `[`
/// cost a scan, not the stack. About 0.2 µs for a 90-byte document
/// (against 0.5 µs to parse it into a `serde_json::Value`).
pub fn json_fault(bytes: &[u8]) -> Option<String> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => return Some(format!("is not UTF-8 ({e})")),
    };
    if json_depth_exceeds(bytes, MAX_JSON_DEPTH) {
        return Some(format!(
            "is not valid JSON (nested deeper than {MAX_JSON_DEPTH} levels)"
        ));
    }
    match serde_json::from_str::<serde::de::IgnoredAny>(text) {
        // Skipping a string, serde_json checks each `\u` escape's four hex
        // digits but not that surrogates come in pairs; a lone one is not
        // interoperable JSON (serde_json refuses it when it reads the string,
        // PostgreSQL's jsonb too), so it is refused here.
        Ok(_) if bytes.contains(&b'\\') && has_lone_surrogate(bytes) => {
            Some("is not valid JSON (a \\u escape is half of a UTF-16 surrogate pair)".to_string())
        }
        Ok(_) => None,
        Err(e) => Some(format!("is not valid JSON ({e})")),
    }
}

/// Whether a string of `bytes` (text serde_json accepted as JSON, so its
/// escapes are well formed) holds a `\u` escape of a UTF-16 surrogate
/// without its other half.
fn has_lone_surrogate(bytes: &[u8]) -> bool {
    let escape = |at: usize| -> Option<u16> {
        let digits = bytes.get(at..at + 6)?;
        if !digits.starts_with(b"\\u") {
            return None;
        }
        u16::from_str_radix(std::str::from_utf8(digits.get(2..)?).ok()?, 16).ok()
    };
    let (mut i, mut in_string) = (0, false);
    while let Some(&b) = bytes.get(i) {
        if !in_string {
            in_string = b == b'"';
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_string = false;
                i += 1;
            }
            b'\\' => match escape(i) {
                Some(0xD800..=0xDBFF) => match escape(i + 6) {
                    Some(0xDC00..=0xDFFF) => i += 12,
                    _ => return true,
                },
                Some(0xDC00..=0xDFFF) => return true,
                Some(_) => i += 6,
                // Another escape: the backslash and the character after it.
                None => i += 2,
            },
            _ => i += 1,
        }
    }
    false
}

/// Whether arrays and objects nest deeper than `max` in `bytes`, counting
/// brackets outside strings. Meant for text that is then parsed: on
/// malformed text the count may be off, never the parse.
fn json_depth_exceeds(bytes: &[u8], max: usize) -> bool {
    // Fewer opening brackets than the limit, strings included: nothing to
    // follow (a count that vectorizes, several times cheaper than the scan).
    let opening: usize = bytes
        .iter()
        .map(|&b| usize::from(b == b'[' || b == b'{'))
        .sum();
    if opening <= max {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// What is wrong with value `i` of a text or `json` column, if anything:
/// text must be UTF-8 (even a null's bytes), a non-null `json` value one JSON
/// document.
fn value_fault(c: &Column, i: usize) -> Option<String> {
    match &c.values {
        Values::Text(t) => std::str::from_utf8(t.bytes(i))
            .is_err()
            .then(|| "is not UTF-8".to_string()),
        Values::Json(t) => {
            let null = c
                .valid
                .as_ref()
                .is_some_and(|v| !v.get(i).copied().unwrap_or(false));
            if null {
                std::str::from_utf8(t.bytes(i))
                    .is_err()
                    .then(|| "is not UTF-8".to_string())
            } else {
                json_fault(t.bytes(i))
            }
        }
        _ => None,
    }
}

fn take_vec<T: Copy>(v: &[T], rows: &[u32]) -> Vec<T> {
    rows.iter()
        .filter_map(|&r| v.get(r as usize).copied())
        .collect()
}

impl Values {
    fn len(&self) -> usize {
        match self {
            Values::Ints(v) | Values::Timestamps(v) => v.len(),
            Values::Floats(v) => v.len(),
            Values::Bools(v) => v.len(),
            Values::Text(t) | Values::Bytes(t) | Values::Json(t) => t.count(),
        }
    }

    fn take(&self, rows: &[u32]) -> Values {
        match self {
            Values::Ints(v) => Values::Ints(take_vec(v, rows)),
            Values::Timestamps(v) => Values::Timestamps(take_vec(v, rows)),
            Values::Floats(v) => Values::Floats(take_vec(v, rows)),
            Values::Bools(v) => Values::Bools(take_vec(v, rows)),
            Values::Text(t) => Values::Text(t.take(rows)),
            Values::Bytes(t) => Values::Bytes(t.take(rows)),
            Values::Json(t) => Values::Json(t.take(rows)),
        }
    }
}

impl Column {
    /// The value of record `i`.
    pub fn value(&self, i: usize) -> ValueRef<'_> {
        if let Some(valid) = &self.valid
            && !valid.get(i).copied().unwrap_or(false)
        {
            return ValueRef::Null;
        }
        match &self.values {
            Values::Ints(v) => v.get(i).map_or(ValueRef::Null, |&x| ValueRef::Int(x)),
            Values::Timestamps(v) => v.get(i).map_or(ValueRef::Null, |&x| ValueRef::Timestamp(x)),
            Values::Floats(v) => v.get(i).map_or(ValueRef::Null, |&x| ValueRef::Float(x)),
            Values::Bools(v) => v.get(i).map_or(ValueRef::Null, |&x| ValueRef::Bool(x)),
            Values::Text(t) => ValueRef::Text(t.str(i)),
            Values::Bytes(t) => ValueRef::Bytes(t.bytes(i)),
            Values::Json(t) => ValueRef::Json(t.str(i)),
        }
    }
}

/// Operations on a [`Batch`].
pub trait BatchExt {
    /// A batch with no records and no columns.
    fn empty() -> Batch;
    /// How many records it holds.
    fn len(&self) -> usize;
    /// Whether it holds no records.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Checks that every list has one entry per record, offsets are in range,
    /// keys, origins and text are UTF-8 and `json` values are JSON
    /// ([`json_fault`]), so later reads cannot go wrong and no sink writes a
    /// broken document. A batch from a plugin is checked once, when it
    /// crosses into the host. The first fault fails the whole batch; see
    /// [`check_shape`](Self::check_shape) and
    /// [`value_faults`](Self::value_faults) to fail only the records at fault.
    fn check(&self) -> Result<(), String>;
    /// The part of [`check`](Self::check) that concerns the batch as a whole:
    /// list lengths, offsets, distinct column names, UTF-8 keys and origins.
    /// A batch that fails it cannot be read at all.
    fn check_shape(&self) -> Result<(), String>;
    /// The records whose values are malformed (text not UTF-8, `json` not
    /// JSON), each with why, naming the column: `column `doc` is not valid
    /// JSON (...)`. Only meaningful on a batch that passed
    /// [`check_shape`](Self::check_shape).
    fn value_faults(&self) -> Vec<(usize, String)>;
    /// A new batch with the given records, in the given order.
    fn take(&self, rows: &[u32]) -> Batch;
    /// The key of record `i`.
    fn key(&self, i: usize) -> &str;
    /// The column with this name.
    fn column(&self, name: &str) -> Option<&Column>;
    /// Record `i`'s fields as a JSON object in column order (null fields
    /// left out), for dead letters and display.
    fn row_json(&self, i: usize) -> serde_json::Value;
}

impl BatchExt for Batch {
    fn empty() -> Batch {
        Batch {
            keys: Texts::empty(),
            ops: Vec::new(),
            versions: None,
            updated_at: None,
            origins: None,
            columns: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.ops.len()
    }

    fn check(&self) -> Result<(), String> {
        self.check_shape()?;
        for c in &self.columns {
            for i in 0..self.ops.len() {
                if let Some(fault) = value_fault(c, i) {
                    return Err(format!("column `{}`: value {i} {fault}", c.name));
                }
            }
        }
        Ok(())
    }

    fn check_shape(&self) -> Result<(), String> {
        let n = self.ops.len();
        self.keys.check("keys", n, true)?;
        if let Some(v) = &self.versions
            && v.len() != n
        {
            return Err(format!("versions: {} values for {n} records", v.len()));
        }
        if let Some(v) = &self.updated_at
            && v.len() != n
        {
            return Err(format!("updated-at: {} values for {n} records", v.len()));
        }
        if let Some(o) = &self.origins {
            o.check("origins", n, true)?;
        }
        let mut names = std::collections::HashSet::new();
        for c in &self.columns {
            if !names.insert(c.name.as_str()) {
                return Err(format!("column `{}` appears twice", c.name));
            }
            let what = format!("column `{}`", c.name);
            match &c.values {
                Values::Text(t) | Values::Json(t) | Values::Bytes(t) => t.check(&what, n, false)?,
                other if other.len() != n => {
                    return Err(format!("{what}: {} values for {n} records", other.len()));
                }
                _ => {}
            }
            if let Some(valid) = &c.valid
                && valid.len() != n
            {
                return Err(format!(
                    "{what}: {} validity entries for {n} records",
                    valid.len()
                ));
            }
        }
        Ok(())
    }

    fn value_faults(&self) -> Vec<(usize, String)> {
        let mut faults: std::collections::BTreeMap<usize, String> = Default::default();
        for c in &self.columns {
            if !matches!(c.values, Values::Text(_) | Values::Json(_)) {
                continue;
            }
            for i in 0..self.ops.len() {
                if let Some(fault) = value_fault(c, i) {
                    let text = format!("column `{}` {fault}", c.name);
                    faults
                        .entry(i)
                        .and_modify(|s| {
                            s.push_str("; ");
                            s.push_str(&text);
                        })
                        .or_insert(text);
                }
            }
        }
        faults.into_iter().collect()
    }

    fn take(&self, rows: &[u32]) -> Batch {
        Batch {
            keys: self.keys.take(rows),
            ops: take_vec(&self.ops, rows),
            versions: self.versions.as_ref().map(|v| take_vec(v, rows)),
            updated_at: self.updated_at.as_ref().map(|v| take_vec(v, rows)),
            origins: self.origins.as_ref().map(|o| o.take(rows)),
            columns: self
                .columns
                .iter()
                .map(|c| Column {
                    name: c.name.clone(),
                    values: c.values.take(rows),
                    valid: c.valid.as_ref().map(|v| take_vec(v, rows)),
                })
                .collect(),
        }
    }

    fn key(&self, i: usize) -> &str {
        self.keys.str(i)
    }

    fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    fn row_json(&self, i: usize) -> serde_json::Value {
        let mut map = serde_json::Map::with_capacity(self.columns.len());
        for c in &self.columns {
            // A null and an absent field are the same thing in a batch.
            match c.value(i) {
                ValueRef::Null => {}
                v => {
                    map.insert(c.name.clone(), value_json(v));
                }
            }
        }
        serde_json::Value::Object(map)
    }
}

/// One record given as JSON, for [`batch_from_json`].
#[derive(Debug, Clone)]
pub struct JsonRecord {
    /// The record key.
    pub key: String,
    /// Upsert or delete.
    pub op: Op,
    /// The fields.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// Builds a batch from JSON records with the typing the guest SDK uses for
/// JSON input, so a plugin sees the same batch it would get from the `file`
/// source: a column whose values are all integers (that fit in 64 bits) is
/// `ints`, integers and other numbers `floats`, booleans `bools`, strings
/// `text`; objects, arrays and any mix of types make a `json` column holding
/// each value's JSON text. `null` and an absent field are nulls.
pub fn batch_from_json(records: &[JsonRecord]) -> Batch {
    use serde_json::Value as J;
    let mut names: Vec<&str> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in records {
        for name in r.fields.keys() {
            if seen.insert(name.as_str()) {
                names.push(name);
            }
        }
    }
    #[derive(PartialEq, Clone, Copy)]
    enum Kind {
        Empty,
        Ints,
        Floats,
        Bools,
        Text,
        Json,
    }
    let mut columns = Vec::with_capacity(names.len());
    for name in names {
        let values: Vec<Option<&J>> = records
            .iter()
            .map(|r| r.fields.get(name).filter(|v| !v.is_null()))
            .collect();
        let kind = values.iter().flatten().fold(Kind::Empty, |k, v| {
            let this = match v {
                J::Number(x) if x.is_i64() => Kind::Ints,
                J::Number(_) => Kind::Floats,
                J::Bool(_) => Kind::Bools,
                J::String(_) => Kind::Text,
                _ => Kind::Json,
            };
            match (k, this) {
                (Kind::Empty, t) => t,
                (a, b) if a == b => a,
                (Kind::Ints, Kind::Floats) | (Kind::Floats, Kind::Ints) => Kind::Floats,
                _ => Kind::Json,
            }
        });
        let valid: Vec<bool> = values.iter().map(Option::is_some).collect();
        let texts = |f: &dyn Fn(&J) -> String| {
            let mut t = Texts::empty();
            for v in &values {
                t.push(v.map(f).unwrap_or_default().as_bytes());
            }
            t
        };
        let values = match kind {
            Kind::Ints => Values::Ints(
                values
                    .iter()
                    .map(|v| v.and_then(J::as_i64).unwrap_or(0))
                    .collect(),
            ),
            Kind::Floats => Values::Floats(
                values
                    .iter()
                    .map(|v| v.and_then(J::as_f64).unwrap_or(0.0))
                    .collect(),
            ),
            Kind::Bools => Values::Bools(
                values
                    .iter()
                    .map(|v| v.and_then(J::as_bool).unwrap_or(false))
                    .collect(),
            ),
            Kind::Text | Kind::Empty => {
                Values::Text(texts(&|v| v.as_str().unwrap_or_default().to_string()))
            }
            Kind::Json => Values::Json(texts(&|v| v.to_string())),
        };
        columns.push(Column {
            name: name.to_string(),
            values,
            valid: valid.iter().any(|v| !v).then_some(valid),
        });
    }
    Batch {
        keys: Texts::from_strs(records.iter().map(|r| r.key.as_str())),
        ops: records.iter().map(|r| r.op).collect(),
        versions: None,
        updated_at: None,
        origins: None,
        columns,
    }
}

/// A value as JSON: timestamps as RFC 3339 text, bytes as hex text, JSON
/// documents parsed (kept as text if they do not parse).
pub fn value_json(v: ValueRef<'_>) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        ValueRef::Null => J::Null,
        ValueRef::Int(x) => J::from(x),
        ValueRef::Float(x) => serde_json::Number::from_f64(x).map_or(J::Null, J::Number),
        ValueRef::Bool(x) => J::Bool(x),
        ValueRef::Text(s) => J::String(s.to_string()),
        ValueRef::Bytes(b) => J::String(hex::encode(b)),
        ValueRef::Timestamp(us) => J::String(rfc3339_micros(us)),
        ValueRef::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| J::String(s.to_string())),
    }
}

/// RFC 3339 text and civil dates: ferry's one calendar (`ferry-time`).
pub use ferry_time::{civil_from_days, rfc3339_micros};

/// The op's name.
pub fn op_name(op: Op) -> &'static str {
    match op {
        Op::Upsert => "upsert",
        Op::Delete => "delete",
    }
}

/// Checks that every row a plugin's answer names (a mapper's `derived-from`
/// and `rejected`, a validator's violations, a sink's `rejected` and
/// `conflicts`) is a record of the batch of `len` records it was given;
/// `what` names the list in the error.
///
/// # Errors
///
/// The first row out of range: `rejected names record 7 of a batch of 3`.
pub fn check_rows(
    what: &str,
    rows: impl IntoIterator<Item = u32>,
    len: usize,
) -> Result<(), String> {
    for r in rows {
        if r as usize >= len {
            return Err(format!("{what} names record {r} of a batch of {len}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Batch {
        Batch {
            keys: Texts::from_strs(["a", "b", "c"]),
            ops: vec![Op::Upsert, Op::Upsert, Op::Delete],
            versions: Some(vec![1, 2, 3]),
            updated_at: None,
            origins: None,
            columns: vec![
                Column {
                    name: "name".into(),
                    values: Values::Text(Texts::from_strs(["Ann", "Bob", ""])),
                    valid: Some(vec![true, true, false]),
                },
                Column {
                    name: "age".into(),
                    values: Values::Ints(vec![30, 40, 0]),
                    valid: None,
                },
            ],
        }
    }

    #[test]
    fn take_selects_rows_in_order_with_metadata() {
        let b = sample();
        let t = b.take(&[2, 0]);
        assert!(t.check().is_ok());
        assert_eq!((t.key(0), t.key(1)), ("c", "a"));
        assert_eq!(t.ops, vec![Op::Delete, Op::Upsert]);
        assert_eq!(t.versions, Some(vec![3, 1]));
        assert_eq!(t.row_json(0), serde_json::json!({ "age": 0 }));
        assert_eq!(
            t.row_json(1),
            serde_json::json!({ "name": "Ann", "age": 30 })
        );
    }

    #[test]
    fn check_catches_malformed_batches() {
        let mut b = sample();
        b.columns[1].values = Values::Ints(vec![1]);
        assert_eq!(
            b.check().unwrap_err(),
            "column `age`: 1 values for 3 records"
        );
        let mut b = sample();
        b.keys.offsets = vec![0, 1, 9, 3];
        assert!(b.check().unwrap_err().contains("keys"));
        let mut b = sample();
        b.columns[0].values = Values::Text(Texts {
            offsets: vec![0, 1, 2, 3],
            data: vec![b'a', 0xff, b'c'],
        });
        assert_eq!(
            b.check().unwrap_err(),
            "column `name`: value 1 is not UTF-8"
        );
        let mut b = sample();
        b.columns.push(b.columns[0].clone());
        assert_eq!(b.check().unwrap_err(), "column `name` appears twice");
    }

    #[test]
    fn json_fault_accepts_documents_and_names_what_is_wrong() {
        for ok in [
            r#"{"a":[1,2,{"b":null}],"c":"x"}"#,
            r#""a string""#,
            "  [ ]\n",
            "1e400",
            "-0.5",
            "true",
            r#""[[[[ {{ brackets in a string ]]""#,
            r#"{"q":"\"[[[\\"}"#,
        ] {
            assert_eq!(json_fault(ok.as_bytes()), None, "{ok}");
        }
        let fault = |s: &str| json_fault(s.as_bytes()).unwrap_or_default();
        assert!(
            fault("{[").starts_with("is not valid JSON (key must be a string"),
            "{}",
            fault("{[")
        );
        assert!(
            fault("{} x").contains("trailing characters"),
            "{}",
            fault("{} x")
        );
        assert!(fault("{}{}").contains("trailing characters"));
        assert!(fault("").contains("EOF"), "{}", fault(""));
        assert!(fault("[1,]").starts_with("is not valid JSON"));
        assert!(fault("NaN").starts_with("is not valid JSON"));
        // Lone UTF-16 surrogates (found by fuzzing: serde_json skips them
        // but refuses them when reading the string back).
        for lone in [
            r#""\ud800""#,
            r#""\udc00\ud800""#,
            r#"{"a":["x\ud83dy"]}"#,
            r#"["\\", "\udfff"]"#,
        ] {
            assert!(fault(lone).contains("surrogate"), "{lone}: {}", fault(lone));
            assert!(serde_json::from_str::<serde_json::Value>(lone).is_err());
        }
        for paired in [
            r#""\ud83d\ude00""#,
            r#""\\ud800""#,
            r#"{"\u00e9":"\\\\ud800"}"#,
        ] {
            assert_eq!(json_fault(paired.as_bytes()), None, "{paired}");
        }
        assert_eq!(
            json_fault(&[b'"', 0xff, b'"']).map(|f| f.starts_with("is not UTF-8")),
            Some(true)
        );
    }

    #[test]
    fn json_nesting_is_bounded_like_serde_json_and_never_overflows_the_stack() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        // serde_json's tree parser refuses the next level: what passes the
        // check, the host can parse back (dead letters).
        assert!(serde_json::from_str::<serde_json::Value>(&nested(MAX_JSON_DEPTH)).is_ok());
        let e = serde_json::from_str::<serde_json::Value>(&nested(MAX_JSON_DEPTH + 1))
            .expect_err("past serde_json's limit");
        assert!(e.to_string().contains("recursion limit exceeded"), "{e}");
        assert_eq!(json_fault(nested(MAX_JSON_DEPTH).as_bytes()), None);
        let deep = json_fault(nested(MAX_JSON_DEPTH + 1).as_bytes()).unwrap_or_default();
        assert!(deep.contains("nested deeper than"), "{deep}");
        // IgnoredAny alone skips with a heap stack and no depth limit: it
        // takes 100,000 levels without recursing (this test runs on a
        // normal test thread stack), which is why the depth is counted.
        let huge = nested(100_000);
        assert!(serde_json::from_str::<serde::de::IgnoredAny>(&huge).is_ok());
        assert!(json_fault(huge.as_bytes()).is_some_and(|f| f.contains("nested deeper")));
        let open = "[".repeat(100_000);
        assert!(json_fault(open.as_bytes()).is_some());
        assert!(json_fault(format!("{}1", "{\"a\":".repeat(100_000)).as_bytes()).is_some());
    }

    #[test]
    fn json_values_are_checked_per_record_and_nulls_are_not_documents() {
        let mut b = sample();
        b.columns.push(Column {
            name: "doc".into(),
            values: Values::Json(Texts::from_strs([r#"{"ok":1}"#, "{[", ""])),
            valid: Some(vec![true, true, false]),
        });
        assert!(b.check_shape().is_ok());
        assert_eq!(
            b.value_faults(),
            [(
                1,
                "column `doc` is not valid JSON (key must be a string at line 1 column 2)"
                    .to_string()
            )]
        );
        assert_eq!(
            b.check().unwrap_err(),
            "column `doc`: value 1 is not valid JSON (key must be a string at line 1 column 2)"
        );
        // Every fault of a record, in one reason.
        b.columns[0].values = Values::Text(Texts {
            offsets: vec![0, 1, 2, 3],
            data: vec![b'a', 0xff, b'c'],
        });
        let faults = b.value_faults();
        assert_eq!(faults.len(), 1);
        assert!(
            faults[0]
                .1
                .starts_with("column `name` is not UTF-8; column `doc` is not valid JSON"),
            "{}",
            faults[0].1
        );
        // A null json entry holds no document; a non-null empty one is wrong.
        b.columns[2].valid = None;
        assert!(
            b.value_faults()
                .iter()
                .any(|(row, why)| *row == 2 && why.contains("EOF"))
        );
    }

    #[test]
    fn json_records_become_typed_columns() {
        let rec = |key: &str, fields: serde_json::Value| JsonRecord {
            key: key.into(),
            op: Op::Upsert,
            fields: fields.as_object().cloned().unwrap_or_default(),
        };
        let b = batch_from_json(&[
            rec(
                "1",
                serde_json::json!({"n": 1, "x": 1, "t": "a", "mixed": "s", "o": {"a": 1}}),
            ),
            rec(
                "2",
                serde_json::json!({"n": 2, "x": 2.5, "mixed": 3, "b": true}),
            ),
        ]);
        assert!(b.check().is_ok());
        let kind = |name: &str| match &b.column(name).map(|c| &c.values) {
            Some(Values::Ints(_)) => "ints",
            Some(Values::Floats(_)) => "floats",
            Some(Values::Bools(_)) => "bools",
            Some(Values::Text(_)) => "text",
            Some(Values::Json(_)) => "json",
            _ => "other",
        };
        assert_eq!(
            ["n", "x", "t", "mixed", "o", "b"].map(kind),
            ["ints", "floats", "text", "json", "json", "bools"]
        );
        assert_eq!(b.row_json(0)["mixed"], "s");
        assert_eq!(b.row_json(1)["mixed"], 3);
        assert_eq!(b.row_json(1).get("t"), None, "absent stays absent");
        assert_eq!(b.row_json(0)["o"], serde_json::json!({"a": 1}));
        assert_eq!(b.key(1), "2");
    }

    #[test]
    fn timestamps_render_as_rfc3339() {
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_micros(1_700_000_000_123_456),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(rfc3339_micros(-1_000_000), "1969-12-31T23:59:59Z");
    }
}
