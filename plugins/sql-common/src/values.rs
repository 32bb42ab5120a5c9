//! Values between ferry and SQL: reading a database value as a record
//! field ([`read`]), turning a record field into a parameter for a column
//! ([`to_param`]), and record keys as text ([`key_text`], [`parse_key`]).
//!
//! The type mapping (also in `docs/databases.md`):
//!
//! | ferry | PostgreSQL | SQLite (stored as) |
//! |---|---|---|
//! | `int` | `smallint`, `integer`, `bigint` (range-checked) | `INTEGER` |
//! | `float` | `real`, `double precision` | `REAL` |
//! | `bool` | `boolean` | `BOOLEAN` columns: 0 / 1 |
//! | `text` | `text`, `varchar`, `char`, `name` | `TEXT` |
//! | `bytes` | `bytea` | `BLOB` |
//! | `timestamp` | `timestamptz`, `timestamp` (UTC) | `TIMESTAMP`/`DATETIME` columns: ISO 8601 text `2024-05-01T12:00:00.000000Z` |
//! | `json` | `json`, `jsonb` | `JSON` columns: the JSON text |
//! | `text` | everything else, in PostgreSQL's text form: `numeric`, `uuid`, `date`, `time`, `interval`, `inet`, arrays, enums... | `NUMERIC` and untyped columns: as stored |
//!
//! `NULL` is a null field both ways.

use ferry_plugin::sql::Value as SqlValue;
use ferry_plugin::{Value, time};
use std::fmt::Write as _;

use crate::dialect::{ColType, Dialect};
use crate::schema::ColumnMeta;

/// A database value as a record field, for a column of type `ty`.
///
/// PostgreSQL values come typed from the host. SQLite has five storage
/// classes only, so the column's declared type says more: an integer in a
/// `BOOLEAN` column is a `bool`, ISO 8601 text in a `TIMESTAMP` or
/// `DATETIME` column a `timestamp` (text without a zone is UTC), JSON text
/// in a `JSON` column `json`. A value that does not fit its declared type
/// is left as stored.
pub fn read(dialect: Dialect, ty: ColType, v: &SqlValue) -> Value<'_> {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Int(n) => match (dialect, ty) {
            (Dialect::Sqlite, ColType::Bool) => Value::Bool(*n != 0),
            _ => Value::Int(*n),
        },
        SqlValue::Float(x) => Value::Float(*x),
        SqlValue::Boolean(b) => Value::Bool(*b),
        SqlValue::Text(s) => match (dialect, ty) {
            (Dialect::Sqlite, ColType::Timestamp) => {
                parse_timestamp(s).map_or(Value::Text(s), Value::Timestamp)
            }
            (Dialect::Sqlite, ColType::Json) if is_json(s) => Value::Json(s),
            _ => Value::Text(s),
        },
        SqlValue::Bytes(b) => Value::Bytes(b),
        SqlValue::Timestamp(t) => Value::Timestamp(*t),
        SqlValue::Json(s) => Value::Json(s),
    }
}

/// A database value as a ferry value, without looking at a column type.
pub fn plain(v: &SqlValue) -> Value<'_> {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Int(n) => Value::Int(*n),
        SqlValue::Float(x) => Value::Float(*x),
        SqlValue::Boolean(b) => Value::Bool(*b),
        SqlValue::Text(s) => Value::Text(s),
        SqlValue::Bytes(b) => Value::Bytes(b),
        SqlValue::Timestamp(t) => Value::Timestamp(*t),
        SqlValue::Json(s) => Value::Json(s),
    }
}

fn is_json(s: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok()
}

fn cannot(column: &ColumnMeta, v: Value<'_>) -> String {
    format!(
        "column {:?} ({}) cannot hold {}",
        column.name,
        column.declared,
        v.describe()
    )
}

/// Turns a record field into the parameter for `column`, or says why the
/// column cannot hold it (the record is then rejected with that reason).
///
/// PostgreSQL conversions, beyond the obvious ones: an integral float or
/// integer text into an integer column; a number or number text into a
/// float column; `0`/`1`, `"true"`/`"false"`/`"t"`/`"f"` into a boolean;
/// any scalar into a text column (timestamps as RFC 3339); text into
/// `bytea` as its UTF-8 bytes; RFC 3339 or `YYYY-MM-DD[ HH:MM:SS]` text into
/// a timestamp; into `json`/`jsonb`, text that is a JSON object or array
/// as that document and any other scalar as its JSON encoding; into other
/// types, the value's text (bytes as `\x` hex) for PostgreSQL to parse.
///
/// SQLite stores what it is given, except: `bool` as 0/1, `timestamp` as
/// ISO 8601 text with six fraction digits (so text order is time order),
/// and so is timestamp text into a `TIMESTAMP`/`DATETIME` column; `json`
/// as its text; integer text into an integer column as an integer (what
/// SQLite's affinity would do, done early so keys compare).
pub fn to_param(dialect: Dialect, column: &ColumnMeta, v: Value<'_>) -> Result<SqlValue, String> {
    if v.is_null() {
        return Ok(SqlValue::Null);
    }
    match dialect {
        Dialect::Postgres => to_postgres(column, v),
        Dialect::Sqlite => Ok(to_sqlite(column, v)),
    }
}

fn to_postgres(column: &ColumnMeta, v: Value<'_>) -> Result<SqlValue, String> {
    let out = match (column.ty, v) {
        (ColType::Int { min, max }, _) => {
            let n = match v {
                Value::Int(n) => Some(n),
                Value::Float(x) if x.fract() == 0.0 && (-9.2e18..=9.2e18).contains(&x) => {
                    Some(x as i64)
                }
                Value::Text(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            };
            match n {
                Some(n) if n >= min && n <= max => SqlValue::Int(n),
                Some(n) => {
                    return Err(format!(
                        "column {:?} ({}) cannot hold {n}: out of range",
                        column.name, column.declared
                    ));
                }
                None => return Err(cannot(column, v)),
            }
        }
        (ColType::Float, Value::Int(n)) => SqlValue::Float(n as f64),
        (ColType::Float, Value::Float(x)) => SqlValue::Float(x),
        (ColType::Float, Value::Text(s)) => match s.trim().parse::<f64>() {
            Ok(x) => SqlValue::Float(x),
            Err(_) => return Err(cannot(column, v)),
        },
        (ColType::Bool, Value::Bool(b)) => SqlValue::Boolean(b),
        (ColType::Bool, Value::Int(0)) => SqlValue::Boolean(false),
        (ColType::Bool, Value::Int(1)) => SqlValue::Boolean(true),
        (ColType::Bool, Value::Text(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "on" | "1" => SqlValue::Boolean(true),
            "false" | "f" | "no" | "n" | "off" | "0" => SqlValue::Boolean(false),
            _ => return Err(cannot(column, v)),
        },
        (ColType::Text, Value::Bytes(_)) => return Err(cannot(column, v)),
        (ColType::Text, _) => SqlValue::Text(as_text(v)),
        (ColType::Bytes, Value::Bytes(b)) => SqlValue::Bytes(b.to_vec()),
        (ColType::Bytes, Value::Text(s)) => SqlValue::Bytes(s.as_bytes().to_vec()),
        (ColType::Timestamp, Value::Timestamp(t)) => SqlValue::Timestamp(t),
        (ColType::Timestamp, Value::Text(s)) => match parse_timestamp(s) {
            Some(t) => SqlValue::Timestamp(t),
            None => return Err(cannot(column, v)),
        },
        (ColType::Json, Value::Json(s)) => SqlValue::Json(s.to_owned()),
        (ColType::Json, Value::Text(s)) => {
            let t = s.trim_start();
            if (t.starts_with('{') || t.starts_with('[')) && is_json(s) {
                SqlValue::Json(s.to_owned())
            } else {
                SqlValue::Json(json_encoding(v))
            }
        }
        (ColType::Json, Value::Bytes(_)) => return Err(cannot(column, v)),
        (ColType::Json, _) => SqlValue::Json(json_encoding(v)),
        (ColType::Other, _) => SqlValue::Text(as_text(v)),
        _ => return Err(cannot(column, v)),
    };
    Ok(out)
}

fn to_sqlite(column: &ColumnMeta, v: Value<'_>) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Int(n) => SqlValue::Int(n),
        Value::Float(x) => SqlValue::Float(x),
        Value::Bool(b) => SqlValue::Int(i64::from(b)),
        Value::Text(s) => match column.ty {
            ColType::Int { .. } => match s.parse::<i64>() {
                Ok(n) if n.to_string() == s => SqlValue::Int(n),
                _ => SqlValue::Text(s.to_owned()),
            },
            ColType::Bool => match s {
                "true" | "t" => SqlValue::Int(1),
                "false" | "f" => SqlValue::Int(0),
                _ => SqlValue::Text(s.to_owned()),
            },
            // One format in the column, so that text order is time order.
            ColType::Timestamp => match parse_timestamp(s) {
                Some(t) => SqlValue::Text(format_fixed(t)),
                None => SqlValue::Text(s.to_owned()),
            },
            _ => SqlValue::Text(s.to_owned()),
        },
        Value::Bytes(b) => SqlValue::Bytes(b.to_vec()),
        Value::Timestamp(t) => SqlValue::Text(format_fixed(t)),
        Value::Json(s) => SqlValue::Text(s.to_owned()),
    }
}

fn json_encoding(v: Value<'_>) -> String {
    let mut out = Vec::new();
    ferry_plugin::json::write_value(&mut out, v);
    String::from_utf8(out).unwrap_or_default()
}

/// A value as PostgreSQL input text: numbers as digits (non-finite floats
/// as `NaN`, `Infinity`, `-Infinity`), booleans as `true`/`false`,
/// timestamps as RFC 3339, bytes as `\x` hex, JSON as its text.
pub fn as_text(v: Value<'_>) -> String {
    match v {
        Value::Null => String::new(),
        Value::Int(n) => n.to_string(),
        Value::Float(x) if x.is_nan() => "NaN".into(),
        Value::Float(x) if x.is_infinite() => {
            if x > 0.0 {
                "Infinity".into()
            } else {
                "-Infinity".into()
            }
        }
        Value::Float(x) => x.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Text(s) | Value::Json(s) => s.to_owned(),
        Value::Timestamp(t) => time::format_rfc3339(t),
        Value::Bytes(b) => {
            let mut s = String::with_capacity(2 + b.len() * 2);
            s.push_str("\\x");
            for byte in b {
                let _ = write!(s, "{byte:02x}");
            }
            s
        }
    }
}

/// Parses the timestamp texts databases write: RFC 3339
/// (`2024-05-01T12:00:00.25Z`, `+02:00`), with a space for the `T`, without
/// a zone (read as UTC), with a short zone (`+00`, as PostgreSQL prints
/// it), without seconds, or a plain date (midnight UTC).
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some(t) = time::parse_rfc3339(s) {
        return Some(t);
    }
    if s.len() == 10 {
        return time::parse_date(s);
    }
    if s.len() == 16 {
        return time::parse_rfc3339(&format!("{s}:00Z"));
    }
    // A short zone: `+00` or `-05` after the time.
    let b = s.as_bytes();
    if b.len() >= 22
        && matches!(b.get(b.len() - 3), Some(b'+' | b'-'))
        && b.get(b.len() - 2..)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    {
        return time::parse_rfc3339(&format!("{s}:00"));
    }
    time::parse_rfc3339(&format!("{s}Z"))
}

/// An instant as fixed-width ISO 8601 text in UTC, always with six fraction
/// digits (`2024-05-01T12:00:00.000000Z`): texts of this form sort in time
/// order, which SQLite comparisons need.
pub fn format_fixed(micros: i64) -> String {
    let mut s = time::format_rfc3339(micros);
    if !s.contains('.') && s.ends_with('Z') {
        s.truncate(s.len() - 1);
        s.push_str(".000000Z");
    }
    s
}

/// Formats `micros` the way `sample` (a timestamp text read from the same
/// column) is written: the same separator, number of fraction digits and
/// zone suffix, so that the two compare as text the way they compare as
/// times. A sample with an offset other than zero gets the same offset.
pub fn format_like(sample: &str, micros: i64) -> String {
    let b = sample.as_bytes();
    if b.len() == 10 {
        return format_fixed(micros).chars().take(10).collect();
    }
    let sep = match b.get(10) {
        Some(b' ') => ' ',
        _ => 'T',
    };
    let mut at = 19.min(b.len());
    let mut digits = 0usize;
    if b.get(19) == Some(&b'.') {
        at = 20;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
            digits += 1;
        }
    }
    let suffix = sample.get(at..).unwrap_or("");
    let offset_secs = zone_offset(suffix).unwrap_or(0);
    let local = micros.saturating_add(offset_secs.saturating_mul(1_000_000));
    let fixed = format_fixed(local); // YYYY-MM-DDTHH:MM:SS.ffffffZ
    let mut out = String::with_capacity(sample.len());
    out.push_str(fixed.get(..10).unwrap_or(""));
    out.push(sep);
    out.push_str(fixed.get(11..19).unwrap_or(""));
    if digits > 0 {
        out.push('.');
        let frac = fixed.get(20..26).unwrap_or("000000");
        for i in 0..digits {
            out.push(frac.as_bytes().get(i).map_or('0', |&c| char::from(c)));
        }
    }
    out.push_str(suffix);
    out
}

/// The offset in seconds of a zone suffix: `Z`, `+02:00`, `-05`, `+0530`.
fn zone_offset(suffix: &str) -> Option<i64> {
    let s = suffix.trim();
    if s.is_empty() || s.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = s.chars().skip(1).filter(char::is_ascii_digit).collect();
    let h: i64 = digits.get(..2)?.parse().ok()?;
    let m: i64 = digits.get(2..4).map_or(Some(0), |m| m.parse().ok())?;
    Some(sign * (h * 3600 + m * 60))
}

/// A record key from its key columns' values: one column's value as plain
/// text (numbers as digits, timestamps as RFC 3339, bytes as base64); for a
/// key of several columns, a JSON array of the values (`[42,"eu"]`).
pub fn key_text(values: &[Value<'_>]) -> String {
    match values {
        [one] => match one {
            Value::Null => String::new(),
            Value::Text(s) | Value::Json(s) => (*s).to_owned(),
            other => other.to_string(),
        },
        many => {
            let mut out = Vec::with_capacity(16 * many.len());
            out.push(b'[');
            for (i, v) in many.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                ferry_plugin::json::write_value(&mut out, *v);
            }
            out.push(b']');
            String::from_utf8(out).unwrap_or_default()
        }
    }
}

/// Splits a record key into one value per key column (see [`key_text`]):
/// the text itself for one column, the elements of a JSON array for
/// several.
pub fn parse_key(key: &str, columns: usize) -> Result<Vec<SqlValue>, String> {
    if columns == 1 {
        return Ok(vec![SqlValue::Text(key.to_owned())]);
    }
    let parsed: serde_json::Value = serde_json::from_str(key).map_err(|_| {
        format!("the key {key:?} is not a JSON array of {columns} values (the key has {columns} columns)")
    })?;
    let serde_json::Value::Array(items) = parsed else {
        return Err(format!(
            "the key {key:?} is not a JSON array of {columns} values (the key has {columns} columns)"
        ));
    };
    if items.len() != columns {
        return Err(format!(
            "the key {key:?} has {} values; the key has {columns} columns",
            items.len()
        ));
    }
    Ok(items
        .into_iter()
        .map(|item| match item {
            serde_json::Value::Null => SqlValue::Null,
            serde_json::Value::Bool(b) => SqlValue::Boolean(b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => SqlValue::Int(i),
                None => SqlValue::Float(n.as_f64().unwrap_or(0.0)),
            },
            serde_json::Value::String(s) => SqlValue::Text(s),
            other => SqlValue::Json(other.to_string()),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(declared: &str, typname: &str) -> ColumnMeta {
        ColumnMeta::test("c", Dialect::Postgres, declared, declared, typname)
    }

    fn lite(declared: &str) -> ColumnMeta {
        ColumnMeta::test("c", Dialect::Sqlite, declared, declared, declared)
    }

    #[test]
    fn postgres_params() {
        let p = |c: &ColumnMeta, v| to_param(Dialect::Postgres, c, v);
        let int4 = pg("integer", "int4");
        assert_eq!(p(&int4, Value::Int(5)), Ok(SqlValue::Int(5)));
        assert_eq!(p(&int4, Value::Float(5.0)), Ok(SqlValue::Int(5)));
        assert_eq!(p(&int4, Value::Text("7")), Ok(SqlValue::Int(7)));
        assert!(
            p(&int4, Value::Int(1 << 40))
                .unwrap_err()
                .contains("out of range")
        );
        assert_eq!(
            p(&int4, Value::Text("abc")).unwrap_err(),
            "column \"c\" (integer) cannot hold text \"abc\""
        );
        assert_eq!(p(&int4, Value::Null), Ok(SqlValue::Null));
        let b = pg("boolean", "bool");
        assert_eq!(p(&b, Value::Int(1)), Ok(SqlValue::Boolean(true)));
        assert_eq!(p(&b, Value::Text("f")), Ok(SqlValue::Boolean(false)));
        let ts = pg("timestamp with time zone", "timestamptz");
        assert_eq!(
            p(&ts, Value::Text("1970-01-01T00:00:01Z")),
            Ok(SqlValue::Timestamp(1_000_000))
        );
        let j = pg("jsonb", "jsonb");
        assert_eq!(
            p(&j, Value::Text("{\"a\":1}")),
            Ok(SqlValue::Json("{\"a\":1}".into()))
        );
        assert_eq!(
            p(&j, Value::Text("plain")),
            Ok(SqlValue::Json("\"plain\"".into()))
        );
        assert_eq!(p(&j, Value::Int(3)), Ok(SqlValue::Json("3".into())));
        let n = pg("numeric(10,2)", "numeric");
        assert_eq!(p(&n, Value::Float(1.5)), Ok(SqlValue::Text("1.5".into())));
        assert_eq!(p(&n, Value::Int(2)), Ok(SqlValue::Text("2".into())));
        let inet = pg("bytea", "bytea");
        assert_eq!(
            p(&inet, Value::Text("ab")),
            Ok(SqlValue::Bytes(b"ab".to_vec()))
        );
        let other = pg("xml", "xml");
        assert_eq!(
            p(&other, Value::Bytes(&[1, 255])),
            Ok(SqlValue::Text("\\x01ff".into()))
        );
        let text = pg("text", "text");
        assert_eq!(
            p(&text, Value::Timestamp(0)),
            Ok(SqlValue::Text("1970-01-01T00:00:00Z".into()))
        );
        assert!(p(&text, Value::Bytes(b"x")).is_err());
    }

    #[test]
    fn sqlite_params_and_reads() {
        let p = |c: &ColumnMeta, v| to_param(Dialect::Sqlite, c, v).unwrap();
        assert_eq!(p(&lite("BOOLEAN"), Value::Bool(true)), SqlValue::Int(1));
        assert_eq!(
            p(&lite("TIMESTAMP"), Value::Timestamp(1_500_000)),
            SqlValue::Text("1970-01-01T00:00:01.500000Z".into())
        );
        assert_eq!(
            p(&lite("JSON"), Value::Json("[1]")),
            SqlValue::Text("[1]".into())
        );
        assert_eq!(p(&lite("INTEGER"), Value::Text("42")), SqlValue::Int(42));
        assert_eq!(
            p(&lite("INTEGER"), Value::Text("042")),
            SqlValue::Text("042".into())
        );
        let r = |c: &str, v: &SqlValue| {
            read(Dialect::Sqlite, ColType::classify_sqlite(c), v).to_string()
        };
        assert_eq!(r("BOOLEAN", &SqlValue::Int(1)), "true");
        assert_eq!(
            read(
                Dialect::Sqlite,
                ColType::Timestamp,
                &SqlValue::Text("1970-01-01 00:00:02".into())
            ),
            Value::Timestamp(2_000_000)
        );
        assert_eq!(
            read(
                Dialect::Sqlite,
                ColType::Timestamp,
                &SqlValue::Text("soon".into())
            ),
            Value::Text("soon")
        );
        assert_eq!(
            read(
                Dialect::Sqlite,
                ColType::Json,
                &SqlValue::Text("{\"a\":1}".into())
            ),
            Value::Json("{\"a\":1}")
        );
        assert_eq!(
            read(
                Dialect::Sqlite,
                ColType::Json,
                &SqlValue::Text("{oops".into())
            ),
            Value::Text("{oops")
        );
        assert_eq!(
            read(
                Dialect::Postgres,
                ColType::Other,
                &SqlValue::Text("1.50".into())
            ),
            Value::Text("1.50")
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:01Z"), Some(1_000_000));
        assert_eq!(parse_timestamp("1970-01-01 00:00:01"), Some(1_000_000));
        assert_eq!(parse_timestamp("1970-01-01 02:00:01+02"), Some(1_000_000));
        assert_eq!(parse_timestamp("1970-01-01 00:01"), Some(60_000_000));
        assert_eq!(parse_timestamp("1970-01-02"), Some(86_400_000_000));
        assert_eq!(parse_timestamp("nope"), None);
        assert_eq!(format_fixed(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(format_fixed(1), "1970-01-01T00:00:00.000001Z");
        // Fixed width: text order is time order.
        assert!(format_fixed(1_000_000) > format_fixed(999_999));
        let t = parse_timestamp("2024-05-01 12:00:00.250").unwrap();
        assert_eq!(
            format_like("2024-01-01 00:00:00.000", t),
            "2024-05-01 12:00:00.250"
        );
        assert_eq!(format_like("2024-01-01 00:00:00", t), "2024-05-01 12:00:00");
        assert_eq!(
            format_like("2024-01-01T00:00:00.000000Z", t),
            "2024-05-01T12:00:00.250000Z"
        );
        assert_eq!(
            format_like("2024-01-01T00:00:00+02:00", t),
            "2024-05-01T14:00:00+02:00"
        );
        assert_eq!(format_like("2024-01-01", t), "2024-05-01");
    }

    #[test]
    fn keys() {
        assert_eq!(key_text(&[Value::Int(42)]), "42");
        assert_eq!(key_text(&[Value::Text("a b")]), "a b");
        assert_eq!(key_text(&[Value::Timestamp(0)]), "1970-01-01T00:00:00Z");
        assert_eq!(
            key_text(&[Value::Int(42), Value::Text("eu")]),
            "[42,\"eu\"]"
        );
        assert_eq!(
            parse_key("[42,\"eu\"]", 2).unwrap(),
            vec![SqlValue::Int(42), SqlValue::Text("eu".into())]
        );
        assert_eq!(
            parse_key("42", 1).unwrap(),
            vec![SqlValue::Text("42".into())]
        );
        assert!(parse_key("42", 2).unwrap_err().contains("not a JSON array"));
        assert!(parse_key("[1]", 2).unwrap_err().contains("has 1 values"));
        let parsed = parse_key("[1,\"x\",null]", 3).unwrap();
        let back: Vec<Value<'_>> = parsed.iter().map(plain).collect();
        assert_eq!(key_text(&back), "[1,\"x\",null]");
    }
}
