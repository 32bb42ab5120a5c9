//! The two SQL dialects, and how a column's SQL type is classified.
//!
//! Both databases get the same statements except where they differ:
//! parameters (`$1` or `?1`), casts (PostgreSQL only: every parameter is
//! cast to its column's type, so the server knows it even inside a
//! `VALUES` list), and the types themselves ([`ColType::classify_postgres`],
//! [`ColType::classify_sqlite`]).

use crate::schema::ColumnMeta;

/// Which SQL a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

impl Dialect {
    /// The name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "PostgreSQL",
            Dialect::Sqlite => "SQLite",
        }
    }

    /// The most parameters one statement may bind: PostgreSQL's wire
    /// protocol counts them in 16 bits; SQLite's default
    /// `SQLITE_MAX_VARIABLE_NUMBER` is 32766 since 3.32.
    pub fn max_params(self) -> usize {
        match self {
            Dialect::Postgres => 65_535,
            Dialect::Sqlite => 32_766,
        }
    }

    /// Parameter number `n` (from 1), uncast: `$3` or `?3`.
    pub fn param(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}"),
            Dialect::Sqlite => format!("?{n}"),
        }
    }

    /// Parameter number `n` as a value of `column`. PostgreSQL: cast to the
    /// column's type (`$3::bigint`), through text for the types the host
    /// does not bind itself (`$3::text::inet`). `exact` keeps the type's
    /// modifiers (`numeric(10,2)`, `timestamp(0)`): right for comparing
    /// with stored values, wrong for inserting (an explicit cast to
    /// `varchar(5)` cuts silently where an insert fails), so inserts use the
    /// bare type and let the column apply its modifiers. SQLite: `?3`.
    pub fn value_param(self, column: &ColumnMeta, n: usize, exact: bool) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => {
                let ty = if exact && !column.cast_loses_data() {
                    &column.declared
                } else {
                    &column.base
                };
                match column.ty {
                    ColType::Other => format!("${n}::text::{ty}"),
                    _ => format!("${n}::{ty}"),
                }
            }
        }
    }

    /// A column in a select list: PostgreSQL columns of a type the host
    /// does not read are read as text (`"c"::text AS "c"`).
    pub fn select_expr(self, column: &ColumnMeta) -> String {
        let q = crate::ident::quote(&column.name);
        match (self, column.ty) {
            (Dialect::Postgres, ColType::Other) => format!("{q}::text AS {q}"),
            _ => q,
        }
    }
}

/// How ferry reads and writes a column, from its SQL type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColType {
    /// Integers, with the range the column holds.
    Int {
        /// The smallest value.
        min: i64,
        /// The largest value.
        max: i64,
    },
    /// `real`, `double precision`, SQLite `REAL`.
    Float,
    /// `boolean`; SQLite columns declared `BOOLEAN` (stored as 0 and 1).
    Bool,
    /// Text types.
    Text,
    /// `bytea`, SQLite `BLOB`.
    Bytes,
    /// `timestamp`, `timestamptz`; SQLite columns declared `TIMESTAMP` or
    /// `DATETIME` (stored as ISO 8601 text).
    Timestamp,
    /// `json`, `jsonb`; SQLite columns declared `JSON` (stored as text).
    Json,
    /// Everything else. PostgreSQL: read as text and written through
    /// `$n::text::<type>` (`numeric`, `uuid`, `date`, `time`, `interval`,
    /// `inet`, arrays, enums, domains...). SQLite: read and written as
    /// stored (`NUMERIC` affinity and undeclared columns).
    Other,
}

const INT8: ColType = ColType::Int {
    min: i64::MIN,
    max: i64::MAX,
};

impl ColType {
    /// Classifies a PostgreSQL type by its `pg_type.typname`.
    pub fn classify_postgres(typname: &str) -> ColType {
        match typname {
            "int2" => ColType::Int {
                min: i64::from(i16::MIN),
                max: i64::from(i16::MAX),
            },
            "int4" => ColType::Int {
                min: i64::from(i32::MIN),
                max: i64::from(i32::MAX),
            },
            "int8" => INT8,
            "float4" | "float8" => ColType::Float,
            "bool" => ColType::Bool,
            "text" | "varchar" | "bpchar" | "name" => ColType::Text,
            "bytea" => ColType::Bytes,
            "timestamp" | "timestamptz" => ColType::Timestamp,
            "json" | "jsonb" => ColType::Json,
            _ => ColType::Other,
        }
    }

    /// Classifies a SQLite column by its declared type, following SQLite's
    /// affinity rules (<https://sqlite.org/datatype3.html>, 3.1) after three
    /// names SQLite has no storage class for: a type naming `BOOL` is
    /// boolean, one naming `TIMESTAMP` or `DATETIME` a timestamp, one naming
    /// `JSON` JSON.
    pub fn classify_sqlite(declared: &str) -> ColType {
        let t = declared.to_ascii_uppercase();
        if t.contains("BOOL") {
            ColType::Bool
        } else if t.contains("TIMESTAMP") || t.contains("DATETIME") {
            ColType::Timestamp
        } else if t.contains("JSON") {
            ColType::Json
        } else if t.contains("INT") {
            INT8
        } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
            ColType::Text
        } else if t.contains("BLOB") {
            ColType::Bytes
        } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
            ColType::Float
        } else {
            ColType::Other
        }
    }

    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            ColType::Int { .. } => "integer",
            ColType::Float => "float",
            ColType::Bool => "boolean",
            ColType::Text => "text",
            ColType::Bytes => "bytes",
            ColType::Timestamp => "timestamp",
            ColType::Json => "json",
            ColType::Other => "other",
        }
    }
}

/// The SQL type a new column gets from `create_table`, by the ferry type of
/// its first non-null value.
pub fn create_type(dialect: Dialect, kind: ferry_plugin::ValueKind) -> &'static str {
    use ferry_plugin::ValueKind as K;
    match (dialect, kind) {
        (Dialect::Postgres, K::Int) => "bigint",
        (Dialect::Postgres, K::Float) => "double precision",
        (Dialect::Postgres, K::Bool) => "boolean",
        (Dialect::Postgres, K::Bytes) => "bytea",
        (Dialect::Postgres, K::Timestamp) => "timestamptz",
        (Dialect::Postgres, K::Json) => "jsonb",
        (Dialect::Postgres, K::Text | K::Null) => "text",
        (Dialect::Sqlite, K::Int) => "INTEGER",
        (Dialect::Sqlite, K::Float) => "REAL",
        (Dialect::Sqlite, K::Bool) => "BOOLEAN",
        (Dialect::Sqlite, K::Bytes) => "BLOB",
        (Dialect::Sqlite, K::Timestamp) => "TIMESTAMP",
        (Dialect::Sqlite, K::Json) => "JSON",
        (Dialect::Sqlite, K::Text | K::Null) => "TEXT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_postgres_types() {
        assert_eq!(
            ColType::classify_postgres("int4"),
            ColType::Int {
                min: -2_147_483_648,
                max: 2_147_483_647
            }
        );
        assert_eq!(
            ColType::classify_postgres("timestamptz"),
            ColType::Timestamp
        );
        assert_eq!(ColType::classify_postgres("jsonb"), ColType::Json);
        for other in [
            "numeric", "uuid", "date", "inet", "interval", "_int4", "mood",
        ] {
            assert_eq!(ColType::classify_postgres(other), ColType::Other, "{other}");
        }
    }

    #[test]
    fn classifies_sqlite_types_by_affinity() {
        assert_eq!(ColType::classify_sqlite("INTEGER"), INT8);
        assert_eq!(ColType::classify_sqlite("bigint"), INT8);
        assert_eq!(ColType::classify_sqlite("VARCHAR(20)"), ColType::Text);
        assert_eq!(ColType::classify_sqlite("boolean"), ColType::Bool);
        assert_eq!(ColType::classify_sqlite("DATETIME"), ColType::Timestamp);
        assert_eq!(ColType::classify_sqlite("timestamp"), ColType::Timestamp);
        assert_eq!(ColType::classify_sqlite("JSON"), ColType::Json);
        assert_eq!(ColType::classify_sqlite("BLOB"), ColType::Bytes);
        assert_eq!(ColType::classify_sqlite("DOUBLE"), ColType::Float);
        assert_eq!(ColType::classify_sqlite(""), ColType::Other);
        assert_eq!(ColType::classify_sqlite("NUMERIC(10,2)"), ColType::Other);
        assert_eq!(ColType::classify_sqlite("DATE"), ColType::Other);
    }

    #[test]
    fn parameters_per_dialect() {
        let mut c = ColumnMeta::test(
            "n",
            Dialect::Postgres,
            "numeric(10,2)",
            "numeric",
            "numeric",
        );
        assert_eq!(
            Dialect::Postgres.value_param(&c, 3, false),
            "$3::text::numeric"
        );
        assert_eq!(
            Dialect::Postgres.value_param(&c, 3, true),
            "$3::text::numeric(10,2)"
        );
        assert_eq!(Dialect::Sqlite.value_param(&c, 3, true), "?3");
        assert_eq!(Dialect::Postgres.select_expr(&c), "\"n\"::text AS \"n\"");
        c = ColumnMeta::test(
            "v",
            Dialect::Postgres,
            "character varying(5)",
            "character varying",
            "varchar",
        );
        assert_eq!(
            Dialect::Postgres.value_param(&c, 1, false),
            "$1::character varying"
        );
        assert_eq!(Dialect::Postgres.select_expr(&c), "\"v\"");
        c = ColumnMeta::test("b", Dialect::Postgres, "bit(3)", "bit", "bit");
        assert_eq!(Dialect::Postgres.value_param(&c, 1, true), "$1::text::bit");
    }
}
