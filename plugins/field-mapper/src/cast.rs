//! Casts between field types.

use std::borrow::Cow;
use std::fmt::Write as _;

use chrono::format::{Item, StrftimeItems};
use serde::de::Error as _;

use super::cell::Cell;

/// A target type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CastType {
    /// `int`
    Int,
    /// `float`
    Float,
    /// `bool`
    Bool,
    /// `text`
    Text,
    /// `timestamp`
    Timestamp,
}

impl CastType {
    fn from_name(name: &str) -> Option<CastType> {
        Some(match name {
            "int" => CastType::Int,
            "float" => CastType::Float,
            "bool" => CastType::Bool,
            "text" => CastType::Text,
            "timestamp" => CastType::Timestamp,
            _ => return None,
        })
    }
}

/// One `cast` entry: a type name, or `{ to = "...", format = "..." }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CastSpec {
    /// The target type.
    pub to: CastType,
    /// A strftime format: how text is read as a timestamp (`to =
    /// "timestamp"`), or how a timestamp is written as text (`to = "text"`).
    pub format: Option<String>,
}

const TYPES: &str = "\"int\", \"float\", \"bool\", \"text\" or \"timestamp\"";

impl<'de> serde::Deserialize<'de> for CastSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let type_of = |name: &str| {
            CastType::from_name(name)
                .ok_or_else(|| D::Error::custom(format!("unknown type {name:?}, expected {TYPES}")))
        };
        let spec = match &v {
            serde_json::Value::String(name) => CastSpec {
                to: type_of(name)?,
                format: None,
            },
            serde_json::Value::Object(map) => {
                if let Some(unknown) = map.keys().find(|k| *k != "to" && *k != "format") {
                    return Err(D::Error::custom(format!(
                        "unknown setting {unknown:?}, expected \"to\" or \"format\""
                    )));
                }
                let to = match map.get("to") {
                    Some(serde_json::Value::String(name)) => type_of(name)?,
                    _ => return Err(D::Error::custom(format!("\"to\" must be one of {TYPES}"))),
                };
                let format = match map.get("format") {
                    None => None,
                    Some(serde_json::Value::String(f)) => Some(f.clone()),
                    Some(_) => return Err(D::Error::custom("\"format\" must be text")),
                };
                CastSpec { to, format }
            }
            _ => {
                return Err(D::Error::custom(format!(
                    "expected a type name ({TYPES}) or {{ to = \"timestamp\", format = \"%d/%m/%Y\" }}"
                )));
            }
        };
        if let Some(f) = &spec.format {
            if !matches!(spec.to, CastType::Timestamp | CastType::Text) {
                return Err(D::Error::custom(
                    "\"format\" applies only to casts to timestamp or text",
                ));
            }
            if StrftimeItems::new(f).any(|item| matches!(item, Item::Error)) {
                return Err(D::Error::custom(format!(
                    "{f:?} is not a valid strftime format"
                )));
            }
        }
        Ok(spec)
    }
}

/// Parses text with a strftime format: a date and time with an offset, a
/// date and time in UTC, or a date at midnight UTC.
fn parse_with_format(s: &str, format: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_str(s, format) {
        return Some(t.timestamp_micros());
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, format) {
        return Some(t.and_utc().timestamp_micros());
    }
    chrono::NaiveDate::parse_from_str(s, format)
        .ok()?
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_micros())
}

fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    let x: f64 = s.parse().ok()?;
    float_to_int(x)
}

fn float_to_int(x: f64) -> Option<i64> {
    // 2^63 as f64; anything below it (and at or above -2^63) fits.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (x.is_finite() && x.fract() == 0.0 && (-LIMIT..LIMIT).contains(&x)).then_some(x as i64)
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// Casts `cell` as `spec` says. The error is the reason the record is
/// rejected, without the field name (the caller adds it).
pub fn cast<'a>(cell: Cell<'a>, spec: &CastSpec) -> Result<Cell<'a>, String> {
    if cell.is_null() {
        return Ok(Cell::Null);
    }
    let fail = |what: &str| format!("{} is not {what}", cell.shown());
    let cannot = |to: &str| format!("cannot cast {} to {to}", cell.describe());
    Ok(match spec.to {
        CastType::Int => match &cell {
            Cell::Int(n) => Cell::Int(*n),
            Cell::Float(x) => Cell::Int(float_to_int(*x).ok_or_else(|| fail("an integer"))?),
            Cell::Text(s) => Cell::Int(parse_int(s).ok_or_else(|| fail("an integer"))?),
            Cell::Bool(b) => Cell::Int(i64::from(*b)),
            _ => return Err(cannot("int")),
        },
        CastType::Float => match &cell {
            Cell::Int(n) => Cell::Float(*n as f64),
            Cell::Float(x) => Cell::Float(*x),
            Cell::Text(s) => Cell::Float(
                s.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| fail("a number"))?,
            ),
            _ => return Err(cannot("float")),
        },
        CastType::Bool => match &cell {
            Cell::Bool(b) => Cell::Bool(*b),
            Cell::Int(0) => Cell::Bool(false),
            Cell::Int(1) => Cell::Bool(true),
            Cell::Text(s) => Cell::Bool(
                parse_bool(s).ok_or_else(|| fail("a boolean (true/false, yes/no, 1/0)"))?,
            ),
            _ => return Err(cannot("bool")),
        },
        CastType::Text => match (&cell, &spec.format) {
            (Cell::Text(_), _) => cell,
            (Cell::Timestamp(t), Some(format)) => {
                let when =
                    chrono::DateTime::from_timestamp_micros(*t).ok_or_else(|| cannot("text"))?;
                let mut out = String::new();
                write!(out, "{}", when.format(format)).map_err(|_| cannot("text"))?;
                Cell::Text(Cow::Owned(out))
            }
            _ => Cell::Text(Cow::Owned(cell.to_text())),
        },
        CastType::Timestamp => match &cell {
            Cell::Timestamp(t) => Cell::Timestamp(*t),
            Cell::Text(s) => {
                let s = s.trim();
                let parsed = match &spec.format {
                    Some(format) => parse_with_format(s, format).ok_or_else(|| {
                        format!("{} does not match the format {format:?}", cell.shown())
                    })?,
                    None => ferry_plugin::time::parse_rfc3339(s)
                        .or_else(|| ferry_plugin::time::parse_date(s))
                        .ok_or_else(|| fail("a timestamp (RFC 3339 or YYYY-MM-DD)"))?,
                };
                Cell::Timestamp(parsed)
            }
            _ => return Err(cannot("timestamp")),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> CastSpec {
        serde_json::from_str(json).unwrap()
    }

    fn text(s: &str) -> Cell<'_> {
        Cell::Text(Cow::Borrowed(s))
    }

    #[test]
    fn text_to_numbers_and_bools() {
        let int = spec("\"int\"");
        assert_eq!(cast(text(" 42 "), &int), Ok(Cell::Int(42)));
        assert_eq!(cast(text("42.0"), &int), Ok(Cell::Int(42)));
        assert_eq!(
            cast(text("abc"), &int),
            Err("\"abc\" is not an integer".into())
        );
        assert_eq!(
            cast(Cell::Float(1.5), &int),
            Err("1.5 is not an integer".into())
        );
        assert_eq!(cast(text("1.5"), &spec("\"float\"")), Ok(Cell::Float(1.5)));
        assert_eq!(
            cast(text("x"), &spec("\"float\"")),
            Err("\"x\" is not a number".into())
        );
        let b = spec("\"bool\"");
        for (s, v) in [("Yes", true), ("no", false), ("1", true), ("FALSE", false)] {
            assert_eq!(cast(text(s), &b), Ok(Cell::Bool(v)), "{s}");
        }
        assert!(
            cast(text("maybe"), &b)
                .unwrap_err()
                .contains("not a boolean")
        );
        assert_eq!(cast(Cell::Null, &int), Ok(Cell::Null));
    }

    #[test]
    fn to_text() {
        let t = spec("\"text\"");
        assert_eq!(cast(Cell::Int(7), &t), Ok(text("7")));
        assert_eq!(cast(Cell::Bool(true), &t), Ok(text("true")));
        assert_eq!(
            cast(Cell::Timestamp(0), &t),
            Ok(text("1970-01-01T00:00:00Z"))
        );
        let f = spec(r#"{"to": "text", "format": "%d/%m/%Y"}"#);
        assert_eq!(
            cast(Cell::Timestamp(86_400_000_000), &f),
            Ok(text("02/01/1970"))
        );
    }

    #[test]
    fn timestamps() {
        let ts = spec("\"timestamp\"");
        assert_eq!(
            cast(text("1970-01-02"), &ts),
            Ok(Cell::Timestamp(86_400_000_000))
        );
        assert_eq!(
            cast(text("1970-01-01T00:00:01Z"), &ts),
            Ok(Cell::Timestamp(1_000_000))
        );
        assert_eq!(
            cast(text("02/01/1970"), &ts),
            Err("\"02/01/1970\" is not a timestamp (RFC 3339 or YYYY-MM-DD)".into())
        );
        let f = spec(r#"{"to": "timestamp", "format": "%d/%m/%Y"}"#);
        assert_eq!(
            cast(text("02/01/1970"), &f),
            Ok(Cell::Timestamp(86_400_000_000))
        );
        assert_eq!(
            cast(text("31/02/2020"), &f),
            Err("\"31/02/2020\" does not match the format \"%d/%m/%Y\"".into())
        );
        let with_time = spec(r#"{"to": "timestamp", "format": "%Y%m%d %H%M"}"#);
        assert_eq!(
            cast(text("19700101 0001"), &with_time),
            Ok(Cell::Timestamp(60_000_000))
        );
        assert!(
            cast(Cell::Bool(true), &ts)
                .unwrap_err()
                .starts_with("cannot cast bool")
        );
    }

    #[test]
    fn bad_specs() {
        let e = |json: &str| {
            serde_json::from_str::<CastSpec>(json)
                .unwrap_err()
                .to_string()
        };
        assert!(e("\"integer\"").contains("unknown type \"integer\""));
        assert!(
            e(r#"{"to": "int", "format": "%Y"}"#).contains("only to casts to timestamp or text")
        );
        assert!(
            e(r#"{"to": "timestamp", "format": "%Q"}"#).contains("not a valid strftime format")
        );
        assert!(e(r#"{"to": "timestamp", "fmt": "%Y"}"#).contains("unknown setting \"fmt\""));
        assert!(e("3").contains("expected a type name"));
    }
}
