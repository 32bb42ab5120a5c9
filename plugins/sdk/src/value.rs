//! One field value as a plugin sees it: [`Value`], and its type, [`ValueKind`].

use std::fmt;

/// One field of one record, borrowed from the batch it belongs to.
///
/// Reading a value never copies: text, bytes and JSON borrow the batch's
/// buffers. A field that is absent from the batch, or null in it, reads as
/// [`Value::Null`].
///
/// The conversions `From<i64>`, `From<&str>`, `From<f64>`, `From<bool>` and
/// `From<Option<T>>` let [`RowBuilder::set`](crate::RowBuilder::set) take
/// plain Rust values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// No value: the field is absent or null.
    Null,
    /// A 64-bit signed integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// UTF-8 text.
    Text(&'a str),
    /// Opaque bytes.
    Bytes(&'a [u8]),
    /// An instant, in microseconds since the Unix epoch (UTC).
    Timestamp(i64),
    /// A JSON document (an object or an array), as JSON text. Scalars read
    /// from a JSON column come back as `Int`, `Float`, `Bool`, `Text` or
    /// `Null` instead.
    Json(&'a str),
}

/// The type of a [`Value`] or of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// [`Value::Null`].
    Null,
    /// [`Value::Int`].
    Int,
    /// [`Value::Float`].
    Float,
    /// [`Value::Bool`].
    Bool,
    /// [`Value::Text`].
    Text,
    /// [`Value::Bytes`].
    Bytes,
    /// [`Value::Timestamp`].
    Timestamp,
    /// [`Value::Json`].
    Json,
}

impl ValueKind {
    /// The lower-case name used in messages and configs: `int`, `text`...
    pub fn name(self) -> &'static str {
        match self {
            ValueKind::Null => "null",
            ValueKind::Int => "int",
            ValueKind::Float => "float",
            ValueKind::Bool => "bool",
            ValueKind::Text => "text",
            ValueKind::Bytes => "bytes",
            ValueKind::Timestamp => "timestamp",
            ValueKind::Json => "json",
        }
    }
}

impl fmt::Display for ValueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl<'a> Value<'a> {
    /// The type of this value.
    pub fn kind(&self) -> ValueKind {
        match self {
            Value::Null => ValueKind::Null,
            Value::Int(_) => ValueKind::Int,
            Value::Float(_) => ValueKind::Float,
            Value::Bool(_) => ValueKind::Bool,
            Value::Text(_) => ValueKind::Text,
            Value::Bytes(_) => ValueKind::Bytes,
            Value::Timestamp(_) => ValueKind::Timestamp,
            Value::Json(_) => ValueKind::Json,
        }
    }

    /// Whether this is [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The text, if this is [`Value::Text`].
    pub fn as_text(&self) -> Option<&'a str> {
        match *self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is [`Value::Int`].
    pub fn as_int(&self) -> Option<i64> {
        match *self {
            Value::Int(n) => Some(n),
            _ => None,
        }
    }

    /// The number as a float, if this is [`Value::Float`] or [`Value::Int`].
    pub fn as_float(&self) -> Option<f64> {
        match *self {
            Value::Float(x) => Some(x),
            Value::Int(n) => Some(n as f64),
            _ => None,
        }
    }

    /// The boolean, if this is [`Value::Bool`].
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The microseconds since the epoch, if this is [`Value::Timestamp`].
    pub fn as_timestamp(&self) -> Option<i64> {
        match *self {
            Value::Timestamp(t) => Some(t),
            _ => None,
        }
    }

    /// The bytes, if this is [`Value::Bytes`].
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match *self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The JSON text, if this is [`Value::Json`].
    pub fn as_json(&self) -> Option<&'a str> {
        match *self {
            Value::Json(s) => Some(s),
            _ => None,
        }
    }

    /// A short description for error messages: the type and the value,
    /// text quoted and cut after 60 characters, e.g. `text "abc"`.
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "null".to_owned(),
            Value::Text(s) => format!("text {}", quote(s)),
            Value::Json(s) => format!("json {}", shorten(s)),
            Value::Bytes(b) => format!("bytes ({} bytes)", b.len()),
            other => format!("{} {}", other.kind(), other),
        }
    }
}

/// Quotes text for a message, cut after 60 characters: `"abc"`.
pub fn quote(s: &str) -> String {
    format!("{:?}", Shortened(s))
}

fn shorten(s: &str) -> String {
    Shortened(s).to_string()
}

struct Shortened<'a>(&'a str);

impl Shortened<'_> {
    const MAX: usize = 60;
    fn cut(&self) -> (&str, bool) {
        match self.0.char_indices().nth(Self::MAX) {
            Some((at, _)) => (self.0.get(..at).unwrap_or(self.0), true),
            None => (self.0, false),
        }
    }
}

impl fmt::Display for Shortened<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, cut) = self.cut();
        f.write_str(s)?;
        if cut {
            f.write_str("…")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Shortened<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, cut) = self.cut();
        if cut {
            write!(f, "{:?}…", s)
        } else {
            write!(f, "{:?}", s)
        }
    }
}

/// Formats the value as plain text: numbers as digits, text as is (no
/// quotes), timestamps as RFC 3339, bytes as base64, null as `null`.
impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Int(n) => write!(f, "{n}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Text(s) | Value::Json(s) => f.write_str(s),
            Value::Bytes(b) => f.write_str(&crate::json::base64(b)),
            Value::Timestamp(t) => f.write_str(&crate::time::format_rfc3339(*t)),
        }
    }
}

impl From<i64> for Value<'_> {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}

impl From<i32> for Value<'_> {
    fn from(n: i32) -> Self {
        Value::Int(i64::from(n))
    }
}

impl From<f64> for Value<'_> {
    fn from(x: f64) -> Self {
        Value::Float(x)
    }
}

impl From<bool> for Value<'_> {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Self {
        Value::Text(s)
    }
}

impl<'a> From<&'a String> for Value<'a> {
    fn from(s: &'a String) -> Self {
        Value::Text(s)
    }
}

impl<'a, T: Into<Value<'a>>> From<Option<T>> for Value<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_quotes_and_cuts_text() {
        assert_eq!(Value::Text("abc").describe(), r#"text "abc""#);
        let long = "x".repeat(100);
        let d = Value::Text(&long).describe();
        assert!(d.ends_with("\"…"), "{d}");
        assert_eq!(Value::Int(3).describe(), "int 3");
        assert_eq!(Value::Null.describe(), "null");
    }

    #[test]
    fn conversions() {
        assert_eq!(Value::from(Some(3i64)), Value::Int(3));
        assert_eq!(Value::from(None::<i64>), Value::Null);
        assert_eq!(Value::from("a"), Value::Text("a"));
        assert_eq!(Value::Int(2).as_float(), Some(2.0));
    }
}
