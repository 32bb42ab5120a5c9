//! PostgreSQL errors as the crate's [`SqlError`]: the [`SqlErrorKind`] of a
//! SQLSTATE, and whether the connection that raised an error is still fit
//! to go back to its pool.

use crate::pg_types::BindError;
use crate::tls::{self};
use crate::{SqlError, SqlErrorKind};

/// The kind of a PostgreSQL SQLSTATE.
pub(crate) fn classify_sqlstate(code: &str) -> SqlErrorKind {
    if code.starts_with("08")
        || code.starts_with("53")
        || matches!(
            code,
            "40001" | "40P01" | "55P03" | "57014" | "57P01" | "57P02" | "57P03"
        )
    {
        SqlErrorKind::Retryable
    } else if code.starts_with("23") {
        SqlErrorKind::Constraint
    } else {
        SqlErrorKind::Failed
    }
}

/// An [`SqlError`] for a tokio-postgres error, and whether the connection
/// it happened on should be dropped.
pub(super) fn convert_error(name: &str, e: &tokio_postgres::Error) -> (SqlError, bool) {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(bind) = s.downcast_ref::<BindError>() {
            return (SqlError::failed(name, bind), false);
        }
        source = s.source();
    }
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let mut message = db.message().to_owned();
        if let Some(detail) = db.detail() {
            message.push_str("; detail: ");
            message.push_str(detail);
        }
        if let Some(hint) = db.hint() {
            message.push_str("; hint: ");
            message.push_str(hint);
        }
        let broken = code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03");
        return (
            SqlError::new(classify_sqlstate(code), name, message).with_code(code),
            broken,
        );
    }
    if e.is_closed() {
        return (
            SqlError::retryable(name, "the server closed the connection"),
            true,
        );
    }
    if tls::is_tls_failure(e) {
        return (SqlError::failed(name, tls::describe(e)), true);
    }
    // I/O, connecting, protocol trouble: worth another try, on another
    // connection.
    (SqlError::retryable(name, tls::describe(e)), true)
}
