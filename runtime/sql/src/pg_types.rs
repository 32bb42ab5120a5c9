//! PostgreSQL's binary wire formats for [`SqlValue`]: binding a value as the
//! type the server expects for a parameter, and reading a result column.
//!
//! tokio-postgres speaks the binary format. [`Param`] implements its `ToSql`
//! for any server type (`accepts` is always true) and encodes in `to_sql`
//! according to the parameter's [`Type`], so that an `int` can fill a
//! `numeric` parameter or a `text` a `uuid` one; an impossible pairing is a
//! [`BindError`] naming the parameter and the cast that fixes it. [`Raw`]
//! takes a column's bytes as they came, and [`decode`] turns them into a
//! [`SqlValue`].

use std::error::Error;
use std::fmt;

use bytes::BytesMut;
use tokio_postgres::types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};

use super::SqlValue;
use super::numeric;
use super::time::{
    MICROS_PER_DAY, PG_EPOCH_DAYS, PG_EPOCH_MICROS, format_date, format_time, parse_date,
    parse_timestamp,
};

/// The types the backend knows how to bind and read, by wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wire {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    Numeric,
    /// text, varchar, bpchar, name, unknown, enums: UTF-8 bytes.
    Text,
    /// `"char"`: one byte.
    Char,
    Uuid,
    Date,
    Time,
    Timestamp,
    Timestamptz,
    Json,
    Jsonb,
    Bytea,
    PgLsn,
    /// What `SELECT pg_advisory_xact_lock(1)` returns: read as null.
    Void,
    Other,
}

/// How a server type travels. Domains travel as their base type.
pub(crate) fn wire(ty: &Type) -> Wire {
    match ty.kind() {
        Kind::Domain(base) => return wire(base),
        Kind::Enum(_) => return Wire::Text,
        _ => {}
    }
    match ty.oid() {
        16 => Wire::Bool,
        17 => Wire::Bytea,
        18 => Wire::Char,
        19 | 25 | 705 | 1042 | 1043 => Wire::Text,
        20 => Wire::Int8,
        21 => Wire::Int2,
        23 => Wire::Int4,
        26 => Wire::Oid,
        114 => Wire::Json,
        700 => Wire::Float4,
        701 => Wire::Float8,
        1082 => Wire::Date,
        1083 => Wire::Time,
        1114 => Wire::Timestamp,
        1184 => Wire::Timestamptz,
        1700 => Wire::Numeric,
        2950 => Wire::Uuid,
        3220 => Wire::PgLsn,
        2278 => Wire::Void,
        3802 => Wire::Jsonb,
        _ => Wire::Other,
    }
}

/// The name of a value's kind, as the WIT contract spells it.
pub(crate) fn kind_name(value: &SqlValue) -> &'static str {
    match value {
        SqlValue::Null => "null",
        SqlValue::Int(_) => "int",
        SqlValue::Float(_) => "float",
        SqlValue::Bool(_) => "boolean",
        SqlValue::Text(_) => "text",
        SqlValue::Bytes(_) => "bytes",
        SqlValue::Timestamp(_) => "timestamp",
        SqlValue::Json(_) => "json",
    }
}

/// The SQL type a value of each kind naturally binds to: the first cast of
/// the suggested fix.
fn natural_type(value: &SqlValue) -> &'static str {
    match value {
        SqlValue::Null | SqlValue::Text(_) => "text",
        SqlValue::Int(_) => "int8",
        SqlValue::Float(_) => "float8",
        SqlValue::Bool(_) => "bool",
        SqlValue::Bytes(_) => "bytea",
        SqlValue::Timestamp(_) => "timestamptz",
        SqlValue::Json(_) => "jsonb",
    }
}

/// A value that cannot be bound to its parameter; the message names the
/// parameter (`$2`), its server type, the value's kind and the fix.
#[derive(Debug)]
pub(crate) struct BindError(pub String);

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for BindError {}

/// One parameter value, bound by [`encode`] as its server type asks.
#[derive(Debug)]
pub(crate) struct Param<'a> {
    /// 1-based, as in `$1`.
    pub number: usize,
    pub value: &'a SqlValue,
}

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        encode(self.value, ty, self.number, out).map_err(|e| Box::new(e) as _)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Writes `value` in the binary format of `ty` (parameter `$number`).
pub(crate) fn encode(
    value: &SqlValue,
    ty: &Type,
    number: usize,
    out: &mut BytesMut,
) -> Result<IsNull, BindError> {
    let w = wire(ty);
    let mismatch = || {
        let kind = kind_name(value);
        let natural = natural_type(value);
        let mut msg = format!(
            "parameter ${number} has type {ty}, which a {kind} value cannot be bound to; \
             cast it in the statement, e.g. `${number}::{natural}::{ty}`"
        );
        if natural != "text" {
            msg.push_str(&format!(
                ", or bind a text value as `${number}::text::{ty}`"
            ));
        }
        BindError(msg)
    };
    let invalid = |detail: String| BindError(format!("parameter ${number} ({ty}): {detail}"));
    let out_of_range = |v: &dyn fmt::Display| invalid(format!("{v} is out of range for type {ty}"));
    match value {
        SqlValue::Null => return Ok(IsNull::Yes),
        SqlValue::Int(i) => match w {
            Wire::Int2 => {
                let v = i16::try_from(*i).map_err(|_| out_of_range(i))?;
                out.extend_from_slice(&v.to_be_bytes());
            }
            Wire::Int4 => {
                let v = i32::try_from(*i).map_err(|_| out_of_range(i))?;
                out.extend_from_slice(&v.to_be_bytes());
            }
            Wire::Int8 => out.extend_from_slice(&i.to_be_bytes()),
            Wire::Oid => {
                let v = u32::try_from(*i).map_err(|_| out_of_range(i))?;
                out.extend_from_slice(&v.to_be_bytes());
            }
            Wire::Float4 => out.extend_from_slice(&(*i as f32).to_be_bytes()),
            Wire::Float8 => out.extend_from_slice(&(*i as f64).to_be_bytes()),
            Wire::Numeric => {
                out.extend_from_slice(&numeric::encode_text(&i.to_string()).map_err(invalid)?)
            }
            Wire::Text => out.extend_from_slice(i.to_string().as_bytes()),
            _ => return Err(mismatch()),
        },
        SqlValue::Float(f) => match w {
            Wire::Float4 => {
                let v = *f as f32;
                if f.is_finite() && !v.is_finite() {
                    return Err(out_of_range(f));
                }
                out.extend_from_slice(&v.to_be_bytes());
            }
            Wire::Float8 => out.extend_from_slice(&f.to_be_bytes()),
            Wire::Numeric => {
                let text = if f.is_nan() {
                    "NaN".to_string()
                } else if f.is_infinite() {
                    if *f > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
                } else {
                    // Rust prints the shortest text that reads back as the
                    // same f64, without an exponent.
                    f.to_string()
                };
                out.extend_from_slice(&numeric::encode_text(&text).map_err(invalid)?);
            }
            _ => return Err(mismatch()),
        },
        SqlValue::Bool(b) => match w {
            Wire::Bool => out.extend_from_slice(&[u8::from(*b)]),
            _ => return Err(mismatch()),
        },
        SqlValue::Text(t) => encode_text(t, w, out).map_err(|detail| match detail {
            TextError::Mismatch => mismatch(),
            TextError::Invalid(d) => invalid(d),
        })?,
        SqlValue::Bytes(b) => match w {
            Wire::Bytea => out.extend_from_slice(b),
            _ => return Err(mismatch()),
        },
        SqlValue::Timestamp(us) => match w {
            Wire::Timestamp | Wire::Timestamptz => {
                let v = us
                    .checked_sub(PG_EPOCH_MICROS)
                    .ok_or_else(|| out_of_range(us))?;
                out.extend_from_slice(&v.to_be_bytes());
            }
            Wire::Date => {
                let days = us.div_euclid(MICROS_PER_DAY) - PG_EPOCH_DAYS;
                let v = i32::try_from(days).map_err(|_| out_of_range(us))?;
                out.extend_from_slice(&v.to_be_bytes());
            }
            _ => return Err(mismatch()),
        },
        SqlValue::Json(j) => match w {
            Wire::Json => out.extend_from_slice(j.as_bytes()),
            Wire::Jsonb => {
                out.extend_from_slice(&[1]);
                out.extend_from_slice(j.as_bytes());
            }
            _ => return Err(mismatch()),
        },
    }
    Ok(IsNull::No)
}

enum TextError {
    Mismatch,
    Invalid(String),
}

fn encode_text(t: &str, w: Wire, out: &mut BytesMut) -> Result<(), TextError> {
    let invalid = |what: &str| TextError::Invalid(format!("`{t}` is not a valid {what}"));
    match w {
        Wire::Text => out.extend_from_slice(t.as_bytes()),
        Wire::Int2 | Wire::Int4 | Wire::Int8 | Wire::Oid => {
            let i: i64 = t.trim().parse().map_err(|_| invalid("integer"))?;
            let range = || TextError::Invalid(format!("{i} is out of range"));
            match w {
                Wire::Int2 => {
                    out.extend_from_slice(&i16::try_from(i).map_err(|_| range())?.to_be_bytes())
                }
                Wire::Int4 => {
                    out.extend_from_slice(&i32::try_from(i).map_err(|_| range())?.to_be_bytes())
                }
                Wire::Oid => {
                    out.extend_from_slice(&u32::try_from(i).map_err(|_| range())?.to_be_bytes())
                }
                _ => out.extend_from_slice(&i.to_be_bytes()),
            }
        }
        Wire::Float4 | Wire::Float8 => {
            let f: f64 = t.trim().parse().map_err(|_| invalid("number"))?;
            if w == Wire::Float4 {
                out.extend_from_slice(&(f as f32).to_be_bytes());
            } else {
                out.extend_from_slice(&f.to_be_bytes());
            }
        }
        Wire::Bool => {
            let b = match t.trim().to_ascii_lowercase().as_str() {
                "t" | "true" | "y" | "yes" | "on" | "1" => true,
                "f" | "false" | "n" | "no" | "off" | "0" => false,
                _ => return Err(invalid("boolean")),
            };
            out.extend_from_slice(&[u8::from(b)]);
        }
        Wire::Numeric => {
            out.extend_from_slice(&numeric::encode_text(t).map_err(TextError::Invalid)?)
        }
        Wire::Uuid => out.extend_from_slice(&parse_uuid(t).ok_or_else(|| invalid("uuid"))?),
        Wire::Date => {
            let days = match t.trim() {
                "infinity" => i32::MAX,
                "-infinity" => i32::MIN,
                other => {
                    let days = parse_date(other).map_err(|_| invalid("date (YYYY-MM-DD)"))?;
                    i32::try_from(days - PG_EPOCH_DAYS).map_err(|_| invalid("date"))?
                }
            };
            out.extend_from_slice(&days.to_be_bytes());
        }
        Wire::Timestamp | Wire::Timestamptz => {
            let v = match t.trim() {
                "infinity" => i64::MAX,
                "-infinity" => i64::MIN,
                other => parse_timestamp(other)
                    .map_err(TextError::Invalid)?
                    .checked_sub(PG_EPOCH_MICROS)
                    .ok_or_else(|| invalid("timestamp"))?,
            };
            out.extend_from_slice(&v.to_be_bytes());
        }
        Wire::Json => out.extend_from_slice(t.as_bytes()),
        Wire::Jsonb => {
            out.extend_from_slice(&[1]);
            out.extend_from_slice(t.as_bytes());
        }
        Wire::PgLsn => {
            let lsn = parse_lsn(t).ok_or_else(|| invalid("pg_lsn (such as 16/B374D848)"))?;
            out.extend_from_slice(&lsn.to_be_bytes());
        }
        Wire::Char | Wire::Time | Wire::Bytea | Wire::Void | Wire::Other => {
            return Err(TextError::Mismatch);
        }
    }
    Ok(())
}

/// `a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11`, also without hyphens, in
/// upper case, or in braces, as PostgreSQL accepts.
fn parse_uuid(t: &str) -> Option<[u8; 16]> {
    let t = t.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(t);
    let hex: Vec<u8> = t.bytes().filter(|&b| b != b'-').collect();
    if hex.len() != 32 || t.len() - hex.len() > 7 || t.starts_with('-') || t.ends_with('-') {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

fn format_uuid(b: &[u8]) -> String {
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `16/B374D848`.
fn parse_lsn(t: &str) -> Option<u64> {
    let (hi, lo) = t.trim().split_once('/')?;
    let hi = u32::from_str_radix(hi, 16).ok()?;
    let lo = u32::from_str_radix(lo, 16).ok()?;
    Some((u64::from(hi) << 32) | u64::from(lo))
}

/// A column's value exactly as the server sent it.
pub(crate) struct Raw<'a>(pub Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Raw(Some(raw)))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Raw(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Whether [`decode`] can read a column of this type.
pub(crate) fn readable(ty: &Type) -> bool {
    wire(ty) != Wire::Other
}

/// Reads one column value of type `ty`.
pub(crate) fn decode(ty: &Type, raw: Option<&[u8]>) -> Result<SqlValue, String> {
    let Some(raw) = raw else {
        return Ok(SqlValue::Null);
    };
    let bad = || format!("malformed {ty} value from the server");
    fn fixed<const N: usize>(raw: &[u8]) -> Option<[u8; N]> {
        raw.try_into().ok()
    }
    let text = |raw: &[u8]| {
        String::from_utf8(raw.to_vec()).map_err(|_| format!("{ty} value is not valid UTF-8"))
    };
    Ok(match wire(ty) {
        Wire::Bool => SqlValue::Bool(fixed::<1>(raw).ok_or_else(bad)?[0] != 0),
        Wire::Int2 => SqlValue::Int(i16::from_be_bytes(fixed(raw).ok_or_else(bad)?).into()),
        Wire::Int4 => SqlValue::Int(i32::from_be_bytes(fixed(raw).ok_or_else(bad)?).into()),
        Wire::Int8 => SqlValue::Int(i64::from_be_bytes(fixed(raw).ok_or_else(bad)?)),
        Wire::Oid => SqlValue::Int(u32::from_be_bytes(fixed(raw).ok_or_else(bad)?).into()),
        Wire::Float4 => SqlValue::Float(f32::from_be_bytes(fixed(raw).ok_or_else(bad)?).into()),
        Wire::Float8 => SqlValue::Float(f64::from_be_bytes(fixed(raw).ok_or_else(bad)?)),
        Wire::Numeric => SqlValue::Text(numeric::decode_text(raw)?),
        Wire::Text => SqlValue::Text(text(raw)?),
        Wire::Char => SqlValue::Text(match raw.first() {
            None | Some(0) => String::new(),
            Some(&b) => char::from(b).to_string(),
        }),
        Wire::Uuid => {
            if raw.len() != 16 {
                return Err(bad());
            }
            SqlValue::Text(format_uuid(raw))
        }
        Wire::Date => {
            let days = i32::from_be_bytes(fixed(raw).ok_or_else(bad)?);
            SqlValue::Text(match days {
                i32::MAX => "infinity".into(),
                i32::MIN => "-infinity".into(),
                d => format_date(i64::from(d) + PG_EPOCH_DAYS),
            })
        }
        Wire::Time => SqlValue::Text(format_time(i64::from_be_bytes(fixed(raw).ok_or_else(bad)?))),
        Wire::Timestamp | Wire::Timestamptz => {
            match i64::from_be_bytes(fixed(raw).ok_or_else(bad)?) {
                i64::MAX => SqlValue::Text("infinity".into()),
                i64::MIN => SqlValue::Text("-infinity".into()),
                v => SqlValue::Timestamp(v.checked_add(PG_EPOCH_MICROS).ok_or_else(|| {
                    format!("{ty} value is too far in the future for microseconds since 1970")
                })?),
            }
        }
        Wire::Json => SqlValue::Json(text(raw)?),
        Wire::Jsonb => match raw.split_first() {
            Some((1, rest)) => SqlValue::Json(text(rest)?),
            _ => return Err(bad()),
        },
        Wire::Bytea => SqlValue::Bytes(raw.to_vec()),
        Wire::PgLsn => {
            let v = u64::from_be_bytes(fixed(raw).ok_or_else(bad)?);
            SqlValue::Text(format!("{:X}/{:X}", v >> 32, v & 0xFFFF_FFFF))
        }
        Wire::Void => SqlValue::Null,
        Wire::Other => return Err(format!("cannot read type {ty}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(value: SqlValue, ty: &Type) -> Result<Vec<u8>, String> {
        let mut out = BytesMut::new();
        match encode(&value, ty, 2, &mut out) {
            Ok(IsNull::No) => Ok(out.to_vec()),
            Ok(IsNull::Yes) => Ok(b"NULL".to_vec()),
            Err(e) => Err(e.0),
        }
    }

    #[test]
    fn binds_by_server_type() {
        assert_eq!(enc(SqlValue::Int(7), &Type::INT2).unwrap(), vec![0, 7]);
        assert!(
            enc(SqlValue::Int(70_000), &Type::INT2)
                .unwrap_err()
                .contains("out of range")
        );
        assert_eq!(enc(SqlValue::Int(7), &Type::TEXT).unwrap(), b"7");
        assert_eq!(enc(SqlValue::Null, &Type::INET).unwrap(), b"NULL");
        assert_eq!(
            enc(SqlValue::Int(-5), &Type::NUMERIC).unwrap(),
            numeric::encode_text("-5").unwrap()
        );
        assert_eq!(
            enc(SqlValue::Float(0.1), &Type::NUMERIC).unwrap(),
            numeric::encode_text("0.1").unwrap()
        );
        assert_eq!(
            enc(SqlValue::Text("yes".into()), &Type::BOOL).unwrap(),
            vec![1]
        );
        assert_eq!(
            enc(SqlValue::Json("{}".into()), &Type::JSONB).unwrap(),
            b"\x01{}".to_vec()
        );
        assert_eq!(
            enc(SqlValue::Timestamp(PG_EPOCH_MICROS + 1), &Type::TIMESTAMPTZ).unwrap(),
            1_i64.to_be_bytes().to_vec()
        );
        assert_eq!(
            enc(SqlValue::Timestamp(PG_EPOCH_MICROS - 1), &Type::DATE).unwrap(),
            (-1_i32).to_be_bytes().to_vec()
        );
        assert_eq!(
            enc(SqlValue::Text("16/B374D848".into()), &Type::PG_LSN).unwrap(),
            0x16_B374_D848_u64.to_be_bytes().to_vec()
        );
        let e = enc(SqlValue::Text("10.0.0.1".into()), &Type::INET).unwrap_err();
        assert_eq!(
            e,
            "parameter $2 has type inet, which a text value cannot be bound to; \
             cast it in the statement, e.g. `$2::text::inet`"
        );
        let e = enc(SqlValue::Bool(true), &Type::INT4).unwrap_err();
        assert!(
            e.contains("a boolean value") && e.contains("`$2::text::int4`"),
            "{e}"
        );
        let e = enc(SqlValue::Text("nope".into()), &Type::UUID).unwrap_err();
        assert_eq!(e, "parameter $2 (uuid): `nope` is not a valid uuid");
    }

    #[test]
    fn uuids() {
        let u = parse_uuid("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11").unwrap();
        assert_eq!(format_uuid(&u), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        assert_eq!(parse_uuid("{a0eebc999c0b4ef8bb6d6bb9bd380a11}"), Some(u));
        assert_eq!(parse_uuid("a0eebc99-9c0b"), None);
        assert_eq!(parse_uuid("g0eebc999c0b4ef8bb6d6bb9bd380a11"), None);
    }

    #[test]
    fn reads_by_server_type() {
        assert_eq!(
            decode(&Type::TIMESTAMP, Some(&0_i64.to_be_bytes())).unwrap(),
            SqlValue::Timestamp(PG_EPOCH_MICROS)
        );
        assert_eq!(
            decode(&Type::TIMESTAMPTZ, Some(&i64::MAX.to_be_bytes())).unwrap(),
            SqlValue::Text("infinity".into())
        );
        assert_eq!(
            decode(&Type::DATE, Some(&0_i32.to_be_bytes())).unwrap(),
            SqlValue::Text("2000-01-01".into())
        );
        assert_eq!(
            decode(&Type::PG_LSN, Some(&0x16_B374_D848_u64.to_be_bytes())).unwrap(),
            SqlValue::Text("16/B374D848".into())
        );
        assert_eq!(decode(&Type::INET, None).unwrap(), SqlValue::Null);
        assert!(decode(&Type::INET, Some(&[4, 32, 0, 4, 10, 0, 0, 1])).is_err());
        assert!(decode(&Type::INT4, Some(&[0, 1])).is_err());
    }
}
