//! The database as the source and the sink see it: a [`Database`] that runs
//! queries and opens transactions ([`Tx`]).
//!
//! In a component, [`HostDb`] is the host's `ferry:plugin/sql` interface on
//! one named connection. The trait exists so that the same code runs in the
//! unit tests against an in-process SQLite database (which can check the
//! statements this crate builds without WebAssembly or a host).

use ferry_plugin::sql::{self, Rows, SqlError, SqlErrorKind, Value};

use crate::dialect::Dialect;

/// A database connection.
pub trait Database {
    /// The SQL it speaks.
    fn dialect(&self) -> Dialect;
    /// Runs a statement that returns rows, in a transaction of its own.
    fn query(&mut self, statement: &str, params: &[Value]) -> Result<Rows, SqlError>;
    /// Runs a statement in a transaction of its own; returns the number of
    /// rows changed.
    fn execute(&mut self, statement: &str, params: &[Value]) -> Result<u64, SqlError>;
    /// Starts a read-write transaction.
    fn begin(&mut self) -> Result<Box<dyn Tx + '_>, SqlError>;
}

/// An open transaction. Dropping it without [`Tx::commit`] rolls it back.
pub trait Tx {
    /// Runs a statement that returns rows.
    fn query(&mut self, statement: &str, params: &[Value]) -> Result<Rows, SqlError>;
    /// Runs a statement; returns the number of rows changed.
    fn execute(&mut self, statement: &str, params: &[Value]) -> Result<u64, SqlError>;
    /// Commits.
    fn commit(self: Box<Self>) -> Result<(), SqlError>;
}

/// A connection the manifest declares and grants, reached through the host.
#[derive(Debug, Clone)]
pub struct HostDb {
    connection: String,
    dialect: Dialect,
}

impl HostDb {
    /// Looks the connection up (it must be granted) and learns its dialect.
    pub fn connect(connection: &str) -> Result<HostDb, SqlError> {
        let dialect = match sql::dialect_of(connection)? {
            sql::Dialect::Postgres => Dialect::Postgres,
            sql::Dialect::Sqlite => Dialect::Sqlite,
        };
        Ok(HostDb {
            connection: connection.to_owned(),
            dialect,
        })
    }

    /// The connection's name.
    pub fn name(&self) -> &str {
        &self.connection
    }
}

impl Database for HostDb {
    fn dialect(&self) -> Dialect {
        self.dialect
    }

    fn query(&mut self, statement: &str, params: &[Value]) -> Result<Rows, SqlError> {
        sql::query(&self.connection, statement, params)
    }

    fn execute(&mut self, statement: &str, params: &[Value]) -> Result<u64, SqlError> {
        sql::execute(&self.connection, statement, params)
    }

    fn begin(&mut self) -> Result<Box<dyn Tx + '_>, SqlError> {
        Ok(Box::new(HostTx(sql::begin(&self.connection, None, false)?)))
    }
}

struct HostTx(sql::Transaction);

impl Tx for HostTx {
    fn query(&mut self, statement: &str, params: &[Value]) -> Result<Rows, SqlError> {
        self.0.query(statement, params)
    }

    fn execute(&mut self, statement: &str, params: &[Value]) -> Result<u64, SqlError> {
        self.0.execute(statement, params)
    }

    fn commit(self: Box<Self>) -> Result<(), SqlError> {
        self.0.commit()
    }
}

/// Whether an error is the data's fault (a constraint, a value the column
/// refuses), so that only the records involved should be rejected, rather
/// than the statement's or the connection's.
///
/// - kind `constraint`;
/// - PostgreSQL SQLSTATE classes `22` (data exception: bad input syntax,
///   out of range, too long) and `23` (integrity constraint);
/// - SQLite result codes `SQLITE_CONSTRAINT` (19) with its extended codes,
///   `SQLITE_MISMATCH` (20, a STRICT table's type check) and
///   `SQLITE_TOOBIG` (18), as numbers or names.
pub fn is_data_error(dialect: Dialect, e: &SqlError) -> bool {
    if e.kind == SqlErrorKind::Constraint {
        return true;
    }
    if e.kind != SqlErrorKind::Failed {
        return false;
    }
    let Some(code) = e.code.as_deref() else {
        return false;
    };
    match dialect {
        Dialect::Postgres => code.starts_with("22") || code.starts_with("23"),
        Dialect::Sqlite => match code.parse::<i64>() {
            Ok(n) => matches!(n & 0xff, 18..=20),
            Err(_) => {
                let c = code.to_ascii_uppercase();
                c.contains("CONSTRAINT") || c.contains("MISMATCH") || c.contains("TOOBIG")
            }
        },
    }
}

/// An error built by this crate (not by the database).
pub fn failed(message: impl Into<String>) -> SqlError {
    SqlError {
        kind: SqlErrorKind::Failed,
        code: None,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: SqlErrorKind, code: Option<&str>) -> SqlError {
        SqlError {
            kind,
            code: code.map(str::to_owned),
            message: "m".into(),
        }
    }

    #[test]
    fn data_errors() {
        let pg = Dialect::Postgres;
        let lite = Dialect::Sqlite;
        assert!(is_data_error(pg, &err(SqlErrorKind::Constraint, None)));
        assert!(is_data_error(pg, &err(SqlErrorKind::Failed, Some("22P02"))));
        assert!(is_data_error(pg, &err(SqlErrorKind::Failed, Some("23505"))));
        assert!(!is_data_error(
            pg,
            &err(SqlErrorKind::Failed, Some("42P01"))
        ));
        assert!(!is_data_error(pg, &err(SqlErrorKind::Failed, None)));
        assert!(!is_data_error(
            pg,
            &err(SqlErrorKind::Retryable, Some("40001"))
        ));
        assert!(is_data_error(
            lite,
            &err(SqlErrorKind::Failed, Some("2067"))
        ));
        assert!(is_data_error(lite, &err(SqlErrorKind::Failed, Some("20"))));
        assert!(is_data_error(
            lite,
            &err(SqlErrorKind::Failed, Some("SQLITE_CONSTRAINT_NOTNULL"))
        ));
        assert!(!is_data_error(lite, &err(SqlErrorKind::Failed, Some("1"))));
    }
}
