//! [`Cell`]: a field value while a record is being mapped, borrowed from
//! the input batch or the config where it can be, owned where a step
//! changed it.

use std::borrow::Cow;

use ferry_plugin::{Value, quote};

/// One field's value during mapping.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    /// No value.
    Null,
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// Text.
    Text(Cow<'a, str>),
    /// Bytes (only ever copied through).
    Bytes(&'a [u8]),
    /// Micros since the epoch.
    Timestamp(i64),
    /// JSON text (an object or array).
    Json(Cow<'a, str>),
}

impl<'a> Cell<'a> {
    /// The cell for a value read from a batch.
    pub fn from_value(v: Value<'a>) -> Cell<'a> {
        match v {
            Value::Null => Cell::Null,
            Value::Int(n) => Cell::Int(n),
            Value::Float(x) => Cell::Float(x),
            Value::Bool(b) => Cell::Bool(b),
            Value::Text(s) => Cell::Text(Cow::Borrowed(s)),
            Value::Bytes(b) => Cell::Bytes(b),
            Value::Timestamp(t) => Cell::Timestamp(t),
            Value::Json(s) => Cell::Json(Cow::Borrowed(s)),
        }
    }

    /// The cell for a JSON value from the config (a `default`).
    pub fn from_json(v: &'a serde_json::Value) -> Cell<'a> {
        use serde_json::Value as J;
        match v {
            J::Null => Cell::Null,
            J::Bool(b) => Cell::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Cell::Int(i),
                None => n.as_f64().map_or(Cell::Null, Cell::Float),
            },
            J::String(s) => Cell::Text(Cow::Borrowed(s)),
            J::Array(_) | J::Object(_) => Cell::Json(Cow::Owned(v.to_string())),
        }
    }

    /// The value to write to the output batch.
    pub fn as_value(&self) -> Value<'_> {
        match self {
            Cell::Null => Value::Null,
            Cell::Int(n) => Value::Int(*n),
            Cell::Float(x) => Value::Float(*x),
            Cell::Bool(b) => Value::Bool(*b),
            Cell::Text(s) => Value::Text(s),
            Cell::Bytes(b) => Value::Bytes(b),
            Cell::Timestamp(t) => Value::Timestamp(*t),
            Cell::Json(s) => Value::Json(s),
        }
    }

    /// Whether this is null.
    pub fn is_null(&self) -> bool {
        matches!(self, Cell::Null)
    }

    /// The number as a float, for ints and floats.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Cell::Int(n) => Some(*n as f64),
            Cell::Float(x) => Some(*x),
            _ => None,
        }
    }

    /// The value as plain text (what `+` concatenates and a cast to text
    /// gives): digits for numbers, RFC 3339 for timestamps, JSON as is.
    pub fn to_text(&self) -> String {
        match self {
            Cell::Text(s) => s.to_string(),
            other => other.as_value().to_string(),
        }
    }

    /// Appends the plain text form (see [`Cell::to_text`]) to `out`.
    pub fn append_text(&self, out: &mut String) {
        use std::fmt::Write as _;
        match self {
            Cell::Text(s) | Cell::Json(s) => out.push_str(s),
            other => {
                let _ = write!(out, "{}", other.as_value());
            }
        }
    }

    /// A short description for messages: `text "abc"`, `int 3`.
    pub fn describe(&self) -> String {
        self.as_value().describe()
    }

    /// The value quoted for messages: `"abc"` for text, `3` for numbers.
    pub fn shown(&self) -> String {
        match self {
            Cell::Text(s) => quote(s),
            other => other.as_value().to_string(),
        }
    }
}
