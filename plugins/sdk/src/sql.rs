//! Named SQL connections: the `ferry:plugin/sql` host interface (contract
//! 0.1.2).
//!
//! A plugin names a connection the manifest declares and grants it
//! (`grants.sql = ["ops"]`); the host holds the driver, the pool and the
//! credentials. Parameters are bound, never spliced: `$1`, `$2`... for
//! PostgreSQL, `?1`, `?2`... for SQLite.
//!
//! ```ignore
//! use ferry_plugin::sql::{self, Value};
//! let rows = sql::query("ops", "SELECT id, name FROM customers WHERE id > $1", &[Value::Int(10)])?;
//! let tx = sql::begin("warehouse", None, false)?;
//! tx.execute("DELETE FROM orders WHERE id = ?1", &[Value::Int(7)])?;
//! tx.commit()?;
//! ```
//!
//! A [`SqlError`] converts into a [`PluginError`] with `?`: `retryable`
//! stays retryable (the host calls again later), `denied` becomes
//! `invalid-config` (the manifest must grant the connection; `denied` also
//! answers what plugins may not do with a granted one: an SQLite `ATTACH`
//! or a pragma outside the schema-reading ones, a transaction left open by
//! a statement, more open transactions than the connection's `pool`),
//! anything else is `fatal`.

use crate::PluginError;

pub use crate::bindings::ferry::plugin::sql::{
    ColumnInfo, Dialect, Rows, SqlError, SqlErrorKind, Transaction, Value, begin, dialect_of,
    execute, query,
};

/// The error's message with its code, as `message [code]`.
pub fn describe(e: &SqlError) -> String {
    match &e.code {
        Some(code) => format!("{} [{code}]", e.message),
        None => e.message.clone(),
    }
}

impl From<SqlError> for PluginError {
    fn from(e: SqlError) -> Self {
        let text = describe(&e);
        match e.kind {
            SqlErrorKind::Retryable => PluginError::Retryable(text),
            SqlErrorKind::Denied => PluginError::InvalidConfig(text),
            SqlErrorKind::Constraint | SqlErrorKind::Failed => PluginError::Fatal(text),
        }
    }
}

impl Rows {
    /// The index of the result column named `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}
