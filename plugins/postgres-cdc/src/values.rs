//! Column values: PostgreSQL's text forms to typed ferry values.
//!
//! `pgoutput` sends every value in its text form (the type's output
//! function, run in the decoding session). The source reads the slot with
//! `TimeZone = 'UTC'`, `DateStyle = 'ISO, YMD'`, `bytea_output = 'hex'` and
//! `extra_float_digits = 1` set for the transaction, and the snapshot phase
//! reads each column as `::text` under the same settings, so both phases
//! convert the very same text the very same way.
//!
//! | PostgreSQL type (or a domain over it) | ferry value |
//! |---|---|
//! | `int2`, `int4`, `int8`, `oid` | int |
//! | `float4`, `float8` | float (`NaN`, `Infinity` included) |
//! | `bool` | bool |
//! | `timestamptz`, `timestamp` (read as UTC) | timestamp, µs since the Unix epoch; `infinity` and `-infinity` are the largest and smallest values |
//! | `json`, `jsonb` | json |
//! | `bytea` | bytes |
//! | `numeric` (exact), `text`, `varchar`, `char`, `uuid`, `date`, anything else | text |

use ferry_plugin::Value;

/// How a column's text is converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An integer.
    Int,
    /// A float.
    Float,
    /// A boolean (`t`/`f`).
    Bool,
    /// `timestamptz` or `timestamp` text.
    Timestamp,
    /// JSON text.
    Json,
    /// `bytea` in hex form (`\x0a0b`).
    Bytes,
    /// Kept as text.
    Text,
}

/// The [`Kind`] for a built-in type OID (resolve domains to their base type
/// first).
pub fn kind_of(type_oid: u32) -> Kind {
    match type_oid {
        20 | 21 | 23 | 26 => Kind::Int,
        700 | 701 => Kind::Float,
        16 => Kind::Bool,
        1114 | 1184 => Kind::Timestamp,
        114 | 3802 => Kind::Json,
        17 => Kind::Bytes,
        _ => Kind::Text,
    }
}

/// A converted value; text and JSON borrow the input, bytes are decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Converted<'a> {
    /// A value that borrows the input or needs no storage.
    Value(Value<'a>),
    /// Decoded bytes.
    Bytes(Vec<u8>),
}

impl Converted<'_> {
    /// The value to set in a record.
    pub fn as_value(&self) -> Value<'_> {
        match self {
            Converted::Value(v) => *v,
            Converted::Bytes(b) => Value::Bytes(b),
        }
    }
}

/// Converts `text` for a column of kind `kind`. `Err` says why the text
/// does not fit the kind (the caller keeps the text then, so nothing is
/// lost).
pub fn convert(kind: Kind, text: &str) -> Result<Converted<'_>, String> {
    let v = match kind {
        Kind::Text => Value::Text(text),
        Kind::Json => Value::Json(text),
        Kind::Int => Value::Int(
            text.parse::<i64>()
                .map_err(|_| format!("{text:?} is not an integer"))?,
        ),
        Kind::Float => Value::Float(
            text.parse::<f64>()
                .map_err(|_| format!("{text:?} is not a number"))?,
        ),
        Kind::Bool => match text {
            "t" | "true" => Value::Bool(true),
            "f" | "false" => Value::Bool(false),
            _ => return Err(format!("{text:?} is not a boolean")),
        },
        Kind::Timestamp => Value::Timestamp(
            parse_timestamp(text).ok_or_else(|| format!("{text:?} is not an ISO timestamp"))?,
        ),
        Kind::Bytes => {
            return parse_bytea(text)
                .map(Converted::Bytes)
                .ok_or_else(|| format!("{:?} is not bytea in hex form", abbreviate(text)));
        }
    };
    Ok(Converted::Value(v))
}

fn abbreviate(text: &str) -> &str {
    match text.char_indices().nth(40) {
        Some((at, _)) => text.get(..at).unwrap_or(text),
        None => text,
    }
}

/// `\x` then hex digits.
pub fn parse_bytea(text: &str) -> Option<Vec<u8>> {
    let hex = text.strip_prefix("\\x")?.as_bytes();
    if hex.len() % 2 != 0 {
        return None;
    }
    let nibble = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    hex.chunks_exact(2)
        .map(|p| Some(nibble(*p.first()?)? << 4 | nibble(*p.get(1)?)?))
        .collect()
}

fn number(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0i64, |n, &d| {
        n.checked_mul(10)?.checked_add(i64::from(d - b'0'))
    })
}

/// Parses PostgreSQL's ISO output of `timestamptz` (`2024-01-02
/// 03:04:05.123456+00`, an offset of `±HH`, `±HH:MM` or `±HH:MM:SS`) or
/// of `timestamp` (no offset: UTC), with years of four or more digits and
/// an optional ` BC`, into microseconds since the Unix epoch. `infinity`
/// and `-infinity` become `i64::MAX` and `i64::MIN`.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    match text {
        "infinity" => return Some(i64::MAX),
        "-infinity" => return Some(i64::MIN),
        _ => {}
    }
    let (text, bc) = match text.strip_suffix(" BC") {
        Some(t) => (t, true),
        None => (text, false),
    };
    let b = text.as_bytes();
    let dash = b.iter().position(|&c| c == b'-')?;
    if dash < 4 {
        return None;
    }
    let mut year = number(b.get(..dash)?)?;
    if bc {
        // 1 BC is year 0 of the proleptic calendar.
        year = 1 - year;
    }
    let rest = b.get(dash + 1..)?;
    // MM-DD HH:MM:SS
    if rest.len() < 14
        || rest.get(2) != Some(&b'-')
        || rest.get(5) != Some(&b' ')
        || rest.get(8) != Some(&b':')
        || rest.get(11) != Some(&b':')
    {
        return None;
    }
    let month = u32::try_from(number(rest.get(0..2)?)?).ok()?;
    let day = u32::try_from(number(rest.get(3..5)?)?).ok()?;
    let hour = number(rest.get(6..8)?)?;
    let minute = number(rest.get(9..11)?)?;
    let second = number(rest.get(12..14)?)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 24 || minute > 59 {
        return None;
    }
    let mut i = 14;
    let mut micros = 0i64;
    if rest.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while rest.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let digits = rest.get(start..i)?;
        if digits.is_empty() || digits.len() > 6 {
            return None;
        }
        micros = number(digits)? * 10i64.pow(6 - digits.len() as u32);
    }
    let offset = match rest.get(i..)? {
        [] => 0,
        [sign @ (b'+' | b'-'), tail @ ..] => {
            let parts: Vec<&[u8]> = tail.split(|&c| c == b':').collect();
            if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.len() != 2) {
                return None;
            }
            let mut secs = 0i64;
            for (p, scale) in parts.iter().zip([3600, 60, 1]) {
                secs += number(p)? * scale;
            }
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    let days = ferry_plugin::time::days_from_civil(year, month, day);
    let secs = days
        .checked_mul(86_400)?
        .checked_add(hour * 3600 + minute * 60 + second - offset)?;
    secs.checked_mul(1_000_000)?.checked_add(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> i64 {
        parse_timestamp(s).unwrap_or_else(|| panic!("{s}"))
    }

    #[test]
    fn timestamps() {
        assert_eq!(ts("1970-01-01 00:00:00+00"), 0);
        assert_eq!(ts("1970-01-01 00:00:00"), 0);
        assert_eq!(ts("1970-01-01 00:00:01.5+00"), 1_500_000);
        assert_eq!(ts("2024-01-02 01:04:05.123456+00"), 1_704_157_445_123_456);
        assert_eq!(
            ts("2024-01-02 03:04:05.123456+02"),
            ts("2024-01-02 01:04:05.123456+00")
        );
        assert_eq!(
            ts("2024-01-02 03:34:05+02:30"),
            ts("2024-01-02 01:04:05+00")
        );
        assert_eq!(
            ts("1900-01-01 00:00:00+00:09:21"),
            ts("1899-12-31 23:50:39+00")
        );
        assert_eq!(ts("1969-12-31 23:59:59.999999+00"), -1);
        assert_eq!(
            ts("0001-01-01 00:00:00+00 BC"),
            ts("0001-01-01 00:00:00+00") - 366 * 86_400_000_000
        );
        assert_eq!(ts("10000-01-01 00:00:00+00"), 253_402_300_800_000_000);
        assert_eq!(ts("infinity"), i64::MAX);
        assert_eq!(ts("-infinity"), i64::MIN);
        for bad in [
            "",
            "2024-01-02",
            "2024-13-02 00:00:00",
            "2024-01-02T00:00:00",
            "2024-01-02 00:00:00.1234567",
            "2024-01-02 00:00:00+1",
            "24-01-02 00:00:00",
            "2024-01-02 00:00:00 UTC",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn bytea() {
        assert_eq!(parse_bytea("\\x"), Some(vec![]));
        assert_eq!(parse_bytea("\\x00ff0A"), Some(vec![0, 255, 10]));
        assert_eq!(parse_bytea("\\x0"), None);
        assert_eq!(parse_bytea("00ff"), None);
        assert_eq!(parse_bytea("\\xzz"), None);
    }

    #[test]
    fn kinds_and_conversions() {
        assert_eq!(kind_of(23), Kind::Int);
        assert_eq!(kind_of(20), Kind::Int);
        assert_eq!(kind_of(21), Kind::Int);
        assert_eq!(kind_of(701), Kind::Float);
        assert_eq!(kind_of(1700), Kind::Text); // numeric stays exact
        assert_eq!(kind_of(2950), Kind::Text); // uuid
        assert_eq!(kind_of(1082), Kind::Text); // date
        assert_eq!(kind_of(3802), Kind::Json);
        assert_eq!(kind_of(17), Kind::Bytes);
        assert_eq!(kind_of(99_999), Kind::Text);

        let v = |k, t| convert(k, t).map(|c| c.as_value().describe().to_string());
        assert_eq!(
            convert(Kind::Int, "-42").unwrap().as_value(),
            Value::Int(-42)
        );
        assert!(v(Kind::Int, "4.2").is_err());
        assert_eq!(
            convert(Kind::Float, "1.5").unwrap().as_value(),
            Value::Float(1.5)
        );
        assert!(matches!(
            convert(Kind::Float, "NaN").unwrap().as_value(),
            Value::Float(x) if x.is_nan()
        ));
        assert_eq!(
            convert(Kind::Float, "-Infinity").unwrap().as_value(),
            Value::Float(f64::NEG_INFINITY)
        );
        assert_eq!(
            convert(Kind::Bool, "t").unwrap().as_value(),
            Value::Bool(true)
        );
        assert_eq!(
            convert(Kind::Bool, "f").unwrap().as_value(),
            Value::Bool(false)
        );
        assert!(v(Kind::Bool, "yes").is_err());
        assert_eq!(
            convert(Kind::Text, "12345678901234567890.000001")
                .unwrap()
                .as_value(),
            Value::Text("12345678901234567890.000001")
        );
        assert_eq!(
            convert(Kind::Json, r#"{"a": [1]}"#).unwrap().as_value(),
            Value::Json(r#"{"a": [1]}"#)
        );
        assert_eq!(
            convert(Kind::Bytes, "\\x0102").unwrap().as_value(),
            Value::Bytes(&[1, 2])
        );
        assert_eq!(
            convert(Kind::Timestamp, "1970-01-01 00:00:00+00")
                .unwrap()
                .as_value(),
            Value::Timestamp(0)
        );
        assert!(v(Kind::Timestamp, "yesterday").is_err());
    }
}
