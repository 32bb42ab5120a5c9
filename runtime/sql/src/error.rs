//! The crate's one error type, [`SqlError`], and its [`SqlErrorKind`]s (the
//! classes of failure a plugin reacts to differently), with the
//! constructors the backends use so every message starts with the
//! connection's name.

use std::fmt;
use std::time::Duration;

/// The classes of failure a plugin reacts to differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlErrorKind {
    /// The connection is not granted, or does not exist (the host's
    /// bindings), or the statement did what plugins may not: an SQLite
    /// `ATTACH`, `DETACH` or unlisted `PRAGMA`, a transaction left open
    /// outside [`SqlHub::begin`](crate::SqlHub::begin), a plugin's `pool`-th open transaction.
    Denied,
    /// A passing failure: unreachable server, dropped connection, deadlock,
    /// serialization failure, lock or statement timeout.
    Retryable,
    /// A constraint was violated: the data is at fault, not the statement.
    Constraint,
    /// Anything else: bad SQL, a value that cannot be bound, a missing table.
    Failed,
}

/// Why a statement failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    /// What kind of failure this is.
    pub kind: SqlErrorKind,
    /// The SQLSTATE (PostgreSQL) or extended result code name (SQLite).
    pub code: Option<String>,
    /// The message, starting with the connection's name:
    /// "connection `ops`: ...".
    pub message: String,
}

impl SqlError {
    /// An error on connection `connection`: the message is prefixed with
    /// "connection `<name>`: ".
    pub fn new(kind: SqlErrorKind, connection: &str, message: impl fmt::Display) -> SqlError {
        SqlError {
            kind,
            code: None,
            message: format!("connection `{connection}`: {message}"),
        }
    }

    /// The same error with a code.
    pub fn with_code(mut self, code: impl Into<String>) -> SqlError {
        self.code = Some(code.into());
        self
    }

    pub(crate) fn failed(connection: &str, message: impl fmt::Display) -> SqlError {
        SqlError::new(SqlErrorKind::Failed, connection, message)
    }

    pub(crate) fn retryable(connection: &str, message: impl fmt::Display) -> SqlError {
        SqlError::new(SqlErrorKind::Retryable, connection, message)
    }

    pub(crate) fn timed_out(connection: &str, timeout: Duration) -> SqlError {
        SqlError::retryable(connection, format!("timed out after {timeout:?}"))
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(code) = &self.code {
            // The code is usually not in the message; keep it visible in logs.
            if !self.message.contains(code.as_str()) {
                write!(f, " [{code}]")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for SqlError {}

/// A size in bytes as people read it: `16 MiB`, `1.5 KiB`, `12 bytes`.
pub(crate) fn human_bytes(n: usize) -> String {
    const MIB: usize = 1 << 20;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= MIB {
        format!("{:.1} MiB", n as f64 / MIB as f64)
    } else if n >= 1024 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} bytes")
    }
}

impl SqlError {
    /// The error of a result that grew past `limit`.
    pub(crate) fn result_too_large(connection: &str, limit: usize) -> SqlError {
        SqlError::failed(
            connection,
            format!(
                "the result is larger than {}, this plugin's limit (grant `max_output_mb`): \
                 the host stopped reading it. Page the query (`LIMIT n OFFSET m`, or a keyset: \
                 `WHERE id > ? ORDER BY id LIMIT n`) or raise `max_output_mb` in the plugin's grants",
                human_bytes(limit)
            ),
        )
    }

    /// A statement the host refuses to let a plugin run, such as an
    /// `ATTACH`; the bindings log and audit it.
    pub(crate) fn denied(connection: &str, message: impl fmt::Display) -> SqlError {
        SqlError::new(SqlErrorKind::Denied, connection, message)
    }
}
