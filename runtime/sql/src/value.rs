//! The values, columns and rows that cross the `sql` interface: what a
//! statement's parameters bind and what a query returns, the same for both
//! dialects.

/// A value bound to a parameter or read from a result column.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// SQL NULL.
    Null,
    /// Any integer type.
    Int(i64),
    /// `real`, `double precision`.
    Float(f64),
    /// `boolean`.
    Bool(bool),
    /// Text types; also how `numeric`, `uuid`, `date` and `time` values are
    /// read (exact, in PostgreSQL's text form).
    Text(String),
    /// `bytea`, SQLite blobs.
    Bytes(Vec<u8>),
    /// `timestamptz` and `timestamp` (read as UTC): microseconds since the
    /// Unix epoch.
    Timestamp(i64),
    /// `json`, `jsonb`, as JSON text.
    Json(String),
}

/// A result column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlColumn {
    /// The column's name in the result.
    pub name: String,
    /// The database's type name, such as `int8`, `numeric`, `TEXT`.
    pub type_name: String,
}

/// The rows a query returned.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SqlRows {
    /// The result's columns, in order.
    pub columns: Vec<SqlColumn>,
    /// One entry per row, each with one value per column.
    pub rows: Vec<Vec<SqlValue>>,
}
