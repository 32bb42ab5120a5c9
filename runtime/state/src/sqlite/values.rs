//! How the typed statuses are stored: as their text (`running`,
//! `failed: <why>`, `open`, ...), byte for byte what ferry wrote before
//! they were types, so no file needs a migration. A stored text ferry does
//! not know fails its read with [`StateError::Unknown`](crate::StateError::Unknown).

use std::borrow::Cow;

use rusqlite::ToSql;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};

use crate::{Choice, ConflictStatus, RunStatus, ScheduledOutcome};

macro_rules! sql_text {
    ($($t:ty),* $(,)?) => {$(
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(match self.text() {
                    Cow::Borrowed(text) => ToSqlOutput::from(text),
                    Cow::Owned(text) => ToSqlOutput::from(text),
                })
            }
        }

        impl FromSql for $t {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|e| FromSqlError::Other(Box::new(e)))
            }
        }
    )*};
}

sql_text!(RunStatus, ScheduledOutcome, ConflictStatus, Choice);
