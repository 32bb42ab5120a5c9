//! Records as JSON: a row to a JSON object and back, and JSON Lines.
//!
//! The mapping between field values and JSON:
//!
//! | value | JSON |
//! |---|---|
//! | `Null` | `null` |
//! | `Int`, `Float` | a number (a non-finite float becomes `null`) |
//! | `Bool` | `true` / `false` |
//! | `Text` | a string |
//! | `Timestamp` | an RFC 3339 string in UTC, e.g. `"2024-05-01T12:00:00Z"` |
//! | `Bytes` | a base64 string |
//! | `Json` | embedded as is |
//!
//! and back, from JSON to values: `null` is null, an integral number that
//! fits in 64 bits is an `Int` (written without a fraction or exponent),
//! other numbers are `Float`, a string is `Text`, objects and arrays are
//! `Json`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::batch::Row;
use crate::builder::{BatchBuilder, RowBuilder};
use crate::types::Op;
use crate::value::Value;

/// Appends the JSON encoding of `v` to `out`.
pub fn write_value(out: &mut Vec<u8>, v: Value<'_>) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Int(n) => {
            if n < 0 {
                out.push(b'-');
            }
            crate::time::push_digits(out, n.unsigned_abs(), 1);
        }
        Value::Float(x) => write_float(out, x),
        Value::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Value::Text(s) => write_string(out, s),
        Value::Json(s) => out.extend_from_slice(s.as_bytes()),
        Value::Timestamp(t) => {
            out.push(b'"');
            crate::time::write_rfc3339(out, t);
            out.push(b'"');
        }
        Value::Bytes(b) => {
            out.push(b'"');
            out.extend_from_slice(base64(b).as_bytes());
            out.push(b'"');
        }
    }
}

fn write_float(out: &mut Vec<u8>, x: f64) {
    if !x.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    let s = x.to_string();
    out.extend_from_slice(s.as_bytes());
    // Keep floats recognisable as floats: 2.0 is written "2.0", not "2".
    if !s.contains(['.', 'e', 'E']) {
        out.extend_from_slice(b".0");
    }
}

/// Which bytes need escaping in a JSON string: control characters, `"`
/// and `\`.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Appends `s` as a JSON string, quoted and escaped.
pub fn write_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        if !NEEDS_ESCAPE[c as usize] {
            continue;
        }
        let escape: Option<&[u8]> = match c {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.extend_from_slice(bytes.get(start..i).unwrap_or(&[]));
        match escape {
            Some(e) => out.extend_from_slice(e),
            None => out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
        }
        start = i + 1;
    }
    out.extend_from_slice(bytes.get(start..).unwrap_or(&[]));
    out.push(b'"');
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                let idx = ((n >> shift) & 63) as usize;
                out.push(char::from(ALPHABET.get(idx).copied().unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Parses JSON number text: an `Int` when it has no fraction or exponent
/// and fits in an `i64`, a `Float` otherwise; `None` if it is not a number.
pub fn parse_number(s: &str) -> Option<Value<'static>> {
    if !s.contains(['.', 'e', 'E'])
        && let Ok(n) = s.parse::<i64>()
    {
        return Some(Value::Int(n));
    }
    let first = s.as_bytes().first()?;
    if !(first.is_ascii_digit() || *first == b'-') {
        return None;
    }
    s.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .map(Value::Float)
}

/// Converts a value to a [`serde_json::Value`] (see the table above).
pub fn to_json_value(v: Value<'_>) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::Int(n) => J::from(n),
        Value::Float(x) => serde_json::Number::from_f64(x).map_or(J::Null, J::Number),
        Value::Bool(b) => J::Bool(b),
        Value::Text(s) => J::String(s.to_owned()),
        Value::Timestamp(t) => J::String(crate::time::format_rfc3339(t)),
        Value::Bytes(b) => J::String(base64(b)),
        Value::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| J::String(s.to_owned())),
    }
}

impl Row<'_> {
    /// The record's fields as a JSON object, in column order, nulls
    /// included. Key, op and metadata are not part of it.
    pub fn to_json(&self) -> serde_json::Value {
        let map = self
            .fields()
            .map(|(name, v)| (name.to_owned(), to_json_value(v)))
            .collect();
        serde_json::Value::Object(map)
    }

    /// Appends the record as one JSON object (no newline) to `out`, writing
    /// straight into the buffer: fields in column order, nulls as `null`.
    /// With `include_meta`, `"_key"` and `"_op"` come first. A delete is
    /// written as `{"_key": ..., "_op": "delete"}` alone.
    pub fn write_json(&self, out: &mut Vec<u8>, include_meta: bool) {
        out.push(b'{');
        if self.op() == Op::Delete {
            out.extend_from_slice(b"\"_key\":");
            write_string(out, self.key());
            out.extend_from_slice(b",\"_op\":\"delete\"}");
            return;
        }
        let mut first = true;
        if include_meta {
            out.extend_from_slice(b"\"_key\":");
            write_string(out, self.key());
            out.extend_from_slice(b",\"_op\":\"upsert\"");
            first = false;
        }
        for (name, v) in self.fields() {
            if !first {
                out.push(b',');
            }
            first = false;
            write_string(out, name);
            out.push(b':');
            write_value(out, v);
        }
        out.push(b'}');
    }
}

impl RowBuilder<'_> {
    /// Sets field `name` from a JSON value (see the module docs).
    pub fn set_json_value(&mut self, name: &str, v: &serde_json::Value) -> &mut Self {
        use serde_json::Value as J;
        match v {
            J::Null => self.set_null(name),
            J::Bool(b) => self.set_bool(name, *b),
            J::Number(n) => match n.as_i64() {
                Some(i) => self.set_int(name, i),
                None => self.set(name, n.as_f64().map_or(Value::Null, Value::Float)),
            },
            J::String(s) => self.set_text(name, s),
            J::Array(_) | J::Object(_) => self.set_json(name, &v.to_string()),
        }
    }

    /// Sets one field per entry of a JSON object.
    pub fn set_json_object(
        &mut self,
        object: &serde_json::Map<String, serde_json::Value>,
    ) -> &mut Self {
        for (name, v) in object {
            self.set_json_value(name, v);
        }
        self
    }

    /// Sets field `name` from raw JSON text, as [`set_json_value`]
    /// would, without building a [`serde_json::Value`]: a string without
    /// escapes is copied straight from the text.
    ///
    /// [`set_json_value`]: RowBuilder::set_json_value
    pub fn set_raw_json(&mut self, name: &str, raw: &RawValue) -> &mut Self {
        match classify(raw) {
            Scalar::Value(v) => self.set(name, v),
            Scalar::Owned(s) => self.set_text(name, &s),
        }
    }
}

/// What a raw JSON value holds.
enum Scalar<'a> {
    Value(Value<'a>),
    Owned(String),
}

fn classify(raw: &RawValue) -> Scalar<'_> {
    let s = raw.get().trim();
    match s.as_bytes().first() {
        Some(b'"') => {
            if !s.contains('\\')
                && let Some(inner) = s.get(1..s.len() - 1)
            {
                return Scalar::Value(Value::Text(inner));
            }
            match serde_json::from_str::<String>(s) {
                Ok(decoded) => Scalar::Owned(decoded),
                Err(_) => Scalar::Value(Value::Json(s)),
            }
        }
        Some(b't') => Scalar::Value(Value::Bool(true)),
        Some(b'f') => Scalar::Value(Value::Bool(false)),
        Some(b'n') => Scalar::Value(Value::Null),
        Some(b'{' | b'[') => Scalar::Value(Value::Json(s)),
        _ => Scalar::Value(parse_number(s).unwrap_or(Value::Json(s))),
    }
}

/// The text form of a key field: strings as they are, numbers and booleans
/// as their JSON text, null as `""`.
fn key_text<'a>(raw: &'a RawValue) -> Cow<'a, str> {
    match classify(raw) {
        Scalar::Value(Value::Text(s)) => Cow::Borrowed(s),
        Scalar::Value(Value::Null) => Cow::Borrowed(""),
        Scalar::Owned(s) => Cow::Owned(s),
        Scalar::Value(_) => Cow::Borrowed(raw.get().trim()),
    }
}

/// Why a JSON line could not be read as a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonLineError(String);

impl fmt::Display for JsonLineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for JsonLineError {}

/// The entries of one JSON object, borrowed from its text.
struct Entries<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<'de>, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    entries.push((key.0, value));
                }
                Ok(Entries(entries))
            }
        }
        d.deserialize_map(V)
    }
}

struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

impl BatchBuilder {
    /// Parses one JSON object (a line of JSON Lines) and pushes it as a
    /// record with operation `op`. Its key is the value of field
    /// `key_field` (text as is, numbers as written; `""` when the field is
    /// absent or null). Every field, the key field included, becomes a
    /// column, typed as the module docs say. Nothing is pushed on error.
    pub fn push_json_line(
        &mut self,
        line: &str,
        key_field: &str,
        op: Op,
    ) -> Result<(), JsonLineError> {
        let entries: Entries<'_> = serde_json::from_str(line).map_err(|e| {
            let msg = e.to_string();
            JsonLineError(if e.is_data() && msg.contains("a JSON object") {
                "not a JSON object".to_owned()
            } else {
                format!("invalid JSON: {msg}")
            })
        })?;
        let key = entries
            .0
            .iter()
            .rev()
            .find(|(name, _)| name == key_field)
            .map_or(Cow::Borrowed(""), |(_, raw)| key_text(raw));
        let mut row = self.row(&key, op);
        for (name, raw) in &entries.0 {
            row.set_raw_json(name, raw);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Batch;

    #[test]
    fn json_lines_are_typed() {
        let mut b = BatchBuilder::new();
        b.push_json_line(
            r#"{"id": 7, "name": "A\"da", "score": 1.5, "ok": true, "tags": ["x"], "n": null, "big": 1e3}"#,
            "id",
            Op::Upsert,
        )
        .unwrap();
        b.push_json_line(r#"{"id": "k2", "name": "Bob"}"#, "id", Op::Upsert)
            .unwrap();
        b.push_json_line(r#"{"name": "no id"}"#, "id", Op::Upsert)
            .unwrap();
        let batch = Batch::from_raw(b.finish()).unwrap();
        let r = batch.row(0).unwrap();
        assert_eq!(r.key(), "7");
        assert_eq!(r.get("id"), Value::Int(7));
        assert_eq!(r.get("name"), Value::Text("A\"da"));
        assert_eq!(r.get("score"), Value::Float(1.5));
        assert_eq!(r.get("ok"), Value::Bool(true));
        assert_eq!(r.get("tags"), Value::Json("[\"x\"]"));
        assert_eq!(r.get("n"), Value::Null);
        assert_eq!(r.get("big"), Value::Float(1000.0));
        assert_eq!(batch.row(1).unwrap().key(), "k2");
        // ints then a text id: a json column, values still readable as such
        assert_eq!(batch.row(1).unwrap().get("id"), Value::Text("k2"));
        assert_eq!(batch.row(2).unwrap().key(), "");
    }

    #[test]
    fn bad_lines_are_errors() {
        let mut b = BatchBuilder::new();
        assert_eq!(
            b.push_json_line("[1, 2]", "id", Op::Upsert)
                .unwrap_err()
                .to_string(),
            "not a JSON object"
        );
        assert!(
            b.push_json_line("{\"id\": 1,", "id", Op::Upsert)
                .unwrap_err()
                .to_string()
                .starts_with("invalid JSON")
        );
        assert!(b.is_empty());
    }

    #[test]
    fn rows_write_as_json() {
        let mut b = BatchBuilder::new();
        b.row("1", Op::Upsert)
            .set("name", "Ada \"L\"\n")
            .set("age", 36)
            .set("x", 2.0)
            .set_timestamp("t", 1_714_564_800_000_000)
            .set_json("j", "{\"a\":1}");
        b.row("2", Op::Upsert).set("age", 1);
        b.row("3", Op::Delete);
        let batch = Batch::from_raw(b.finish()).unwrap();
        let mut out = Vec::new();
        batch.row(0).unwrap().write_json(&mut out, false);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            r#"{"name":"Ada \"L\"\n","age":36,"x":2.0,"t":"2024-05-01T12:00:00Z","j":{"a":1}}"#
        );
        let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed, batch.row(0).unwrap().to_json());
        out.clear();
        batch.row(1).unwrap().write_json(&mut out, true);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            r#"{"_key":"2","_op":"upsert","name":null,"age":1,"x":null,"t":null,"j":null}"#
        );
        out.clear();
        batch.row(2).unwrap().write_json(&mut out, false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"_key":"3","_op":"delete"}"#
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        let mut out = Vec::new();
        write_string(&mut out, "a\u{1}b\té");
        assert_eq!(String::from_utf8(out).unwrap(), "\"a\\u0001b\\té\"");
    }

    #[test]
    fn numbers_are_written_exactly() {
        for n in [0i64, 7, -7, 10, 1234567890, i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            write_value(&mut out, Value::Int(n));
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
        let mut out = Vec::new();
        write_value(&mut out, Value::Timestamp(-62_135_596_800_000_000 + 1));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"0001-01-01T00:00:00.000001Z\""
        );
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn json_object_round_trip() {
        let obj = serde_json::json!({"a": 1, "b": "x", "c": [1, 2], "d": null, "e": 0.5});
        let mut b = BatchBuilder::new();
        b.row("k", Op::Upsert)
            .set_json_object(obj.as_object().unwrap());
        let batch = Batch::from_raw(b.finish()).unwrap();
        assert_eq!(batch.row(0).unwrap().to_json(), obj);
    }
}
