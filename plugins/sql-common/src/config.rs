//! The `config` tables of the source and the sink, and the small types in
//! them. The settings are documented in `docs/databases.md` and in each
//! plugin's README.

use indexmap::IndexMap;
use serde::Deserialize;

/// One name or a list of names: `key = "id"` or `key = ["id", "region"]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Names {
    /// One name.
    One(String),
    /// Several names, in order.
    Many(Vec<String>),
}

impl Names {
    /// The names, in order.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Names::One(n) => vec![n],
            Names::Many(v) => v,
        }
    }
}

/// How the table source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Rows whose cursor moved past the checkpoint, with a lookback window.
    Delta,
    /// A whole snapshot in key order, then deletes for keys that are gone.
    Full,
}

impl Mode {
    /// The name in the config.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Delta => "delta",
            Mode::Full => "full",
        }
    }
}

/// The lookback window of a delta source: a duration for a timestamp
/// cursor (`"5m"`), a number of versions for an integer one (`1000`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Lookback {
    /// A width in cursor units (integer cursors).
    Count(i64),
    /// A duration text (timestamp cursors).
    Duration(String),
}

/// The source's `config` table (PostgreSQL's `mode = "cdc"` is handled by
/// the plugin before this).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The connection's name (`[connections.<name>]`, granted in
    /// `grants.sql`).
    pub connection: String,
    /// `delta` or `full`.
    pub mode: Mode,
    /// The table (or view): `orders`, `sales.orders`.
    pub table: String,
    /// The key columns; the primary key when absent.
    #[serde(default)]
    pub key: Option<Names>,
    /// Delta: the integer or timestamp column that grows with each change.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Delta: how far back each pass reads again.
    #[serde(default)]
    pub lookback: Option<Lookback>,
    /// The columns to emit as fields; all when absent.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// A column whose integer value fills each record's `version`.
    #[serde(default)]
    pub version_column: Option<String>,
    /// A column whose timestamp fills each record's `updated-at`.
    #[serde(default)]
    pub updated_at_column: Option<String>,
}

/// The sink's `columns`: a subset of the batch's fields (`["a", "b"]`) or a
/// map from field to column (`{ mail = "email" }`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ColumnsSpec {
    /// These fields, into columns of the same names.
    List(Vec<String>),
    /// Field name to column name, in the order given.
    Map(IndexMap<String, String>),
}

impl ColumnsSpec {
    /// `(field, column)` pairs.
    pub fn pairs(&self) -> Vec<(String, String)> {
        match self {
            ColumnsSpec::List(v) => v.iter().map(|n| (n.clone(), n.clone())).collect(),
            ColumnsSpec::Map(m) => m.iter().map(|(f, c)| (f.clone(), c.clone())).collect(),
        }
    }
}

/// The sink's `config` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// The connection's name.
    pub connection: String,
    /// The table to write.
    pub table: String,
    /// The key columns (`ON CONFLICT` target); the primary key when absent.
    #[serde(default)]
    pub key: Option<Names>,
    /// Which fields to write, and into which columns; every field that is a
    /// column when absent.
    #[serde(default)]
    pub columns: Option<ColumnsSpec>,
    /// A column holding a version (integer or timestamp): a record is
    /// written only if its version is newer than the stored one; the others
    /// are conflicts.
    #[serde(default)]
    pub version_column: Option<String>,
    /// `false`: the version column is only read (`fetch` reports it as each
    /// row's version, for two-way sync's `detect = "version"`) and writes
    /// are unconditional, leaving the column to the database (a trigger).
    #[serde(default = "yes")]
    pub version_check: bool,
    /// Create the table from the first batch if it does not exist.
    #[serde(default)]
    pub create_table: bool,
}

fn yes() -> bool {
    true
}

/// Parses a duration: a number and a unit (`ms`, `s`, `m`, `h`, `d`),
/// several of them added (`1h30m`), or `0`. Returns microseconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let s = text.trim();
    if s == "0" {
        return Ok(0);
    }
    let bad = || {
        format!(
            "{text:?} is not a duration; write a number and a unit: \"500ms\", \"30s\", \"5m\", \"2h\", \"1d\", \"1h30m\""
        )
    };
    let mut total: i64 = 0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest
            .get(..digits)
            .and_then(|d| d.parse().ok())
            .ok_or_else(bad)?;
        rest = rest.get(digits..).unwrap_or("");
        let unit_len = rest.chars().take_while(char::is_ascii_alphabetic).count();
        let unit = rest.get(..unit_len).unwrap_or("");
        rest = rest.get(unit_len..).unwrap_or("");
        let micros: i64 = match unit {
            "ms" => 1_000,
            "s" => 1_000_000,
            "m" => 60_000_000,
            "h" => 3_600_000_000,
            "d" => 86_400_000_000,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(micros)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{text:?} is too long a duration"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Ok(300_000_000));
        assert_eq!(parse_duration("500ms"), Ok(500_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("0s"), Ok(0));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999d").is_err());
    }

    #[test]
    fn source_config_parses() {
        let c: SourceConfig = ferry_plugin::config::parse(
            r#"{"connection":"db","mode":"delta","table":"t","key":"id","cursor":"u","lookback":"5m"}"#,
        )
        .unwrap();
        assert_eq!(c.key, Some(Names::One("id".into())));
        assert_eq!(c.lookback, Some(Lookback::Duration("5m".into())));
        let c: SourceConfig = ferry_plugin::config::parse(
            r#"{"connection":"db","mode":"full","table":"t","key":["a","b"],"lookback":100}"#,
        )
        .unwrap();
        assert_eq!(
            c.key.map(Names::into_vec),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(c.lookback, Some(Lookback::Count(100)));
        let e = ferry_plugin::config::parse::<SourceConfig>(
            r#"{"connection":"db","mode":"cdc","table":"t"}"#,
        )
        .unwrap_err();
        assert!(e.message().contains("unknown variant \"cdc\""), "{e:?}");
    }

    #[test]
    fn sink_columns_list_or_map() {
        let c: SinkConfig = ferry_plugin::config::parse(
            r#"{"connection":"db","table":"t","columns":{"mail":"email"}}"#,
        )
        .unwrap();
        assert_eq!(
            c.columns.unwrap().pairs(),
            vec![("mail".to_string(), "email".to_string())]
        );
        let c: SinkConfig =
            ferry_plugin::config::parse(r#"{"connection":"db","table":"t","columns":["a"]}"#)
                .unwrap();
        assert_eq!(
            c.columns.unwrap().pairs(),
            vec![("a".to_string(), "a".to_string())]
        );
    }
}
