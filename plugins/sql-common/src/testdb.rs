//! An in-process SQLite [`Database`] for the unit tests, mapping values and
//! errors the way the host's SQLite backend does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code fails loudly

use ferry_plugin::sql::{ColumnInfo, Rows, SqlError, SqlErrorKind, Value};
use rusqlite::types::{Value as Lite, ValueRef};

use crate::db::{Database, Tx};
use crate::dialect::Dialect;

pub struct LiteDb {
    pub conn: rusqlite::Connection,
}

impl LiteDb {
    pub fn new() -> LiteDb {
        LiteDb {
            conn: rusqlite::Connection::open_in_memory().unwrap(),
        }
    }

    /// Runs SQL (several statements) directly, for test setup.
    pub fn batch(&self, sql: &str) {
        self.conn.execute_batch(sql).unwrap();
    }

    /// One column of every row of a query, as text.
    pub fn strings(&self, sql: &str) -> Vec<String> {
        let mut stmt = self.conn.prepare(sql).unwrap();
        let rows = stmt
            .query_map([], |r| {
                Ok(match r.get_ref(0)? {
                    ValueRef::Null => "NULL".to_string(),
                    ValueRef::Integer(n) => n.to_string(),
                    ValueRef::Real(x) => x.to_string(),
                    ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    ValueRef::Blob(b) => format!("blob{b:?}"),
                })
            })
            .unwrap();
        rows.map(Result::unwrap).collect()
    }
}

fn bind(v: &Value) -> Lite {
    match v {
        Value::Null => Lite::Null,
        Value::Int(n) => Lite::Integer(*n),
        Value::Float(x) => Lite::Real(*x),
        Value::Boolean(b) => Lite::Integer(i64::from(*b)),
        Value::Text(s) | Value::Json(s) => Lite::Text(s.clone()),
        Value::Bytes(b) => Lite::Blob(b.clone()),
        Value::Timestamp(t) => Lite::Text(crate::values::format_fixed(*t)),
    }
}

fn error(e: rusqlite::Error) -> SqlError {
    match &e {
        rusqlite::Error::SqliteFailure(f, message) => SqlError {
            kind: match f.code {
                rusqlite::ErrorCode::ConstraintViolation => SqlErrorKind::Constraint,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                    SqlErrorKind::Retryable
                }
                _ => SqlErrorKind::Failed,
            },
            code: Some(f.extended_code.to_string()),
            message: message.clone().unwrap_or_else(|| e.to_string()),
        },
        other => SqlError {
            kind: SqlErrorKind::Failed,
            code: None,
            message: other.to_string(),
        },
    }
}

fn query(conn: &rusqlite::Connection, sql: &str, params: &[Value]) -> Result<Rows, SqlError> {
    let mut stmt = conn.prepare(sql).map_err(error)?;
    let columns: Vec<ColumnInfo> = stmt
        .column_names()
        .iter()
        .map(|c| ColumnInfo {
            name: (*c).to_string(),
            type_name: String::new(),
        })
        .collect();
    let n = columns.len();
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params.iter().map(bind)))
        .map_err(error)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(error)? {
        let mut row = Vec::with_capacity(n);
        for i in 0..n {
            row.push(match r.get_ref(i).map_err(error)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => Value::Int(n),
                ValueRef::Real(x) => Value::Float(x),
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
            });
        }
        out.push(row);
    }
    Ok(Rows { columns, rows: out })
}

fn execute(conn: &rusqlite::Connection, sql: &str, params: &[Value]) -> Result<u64, SqlError> {
    let mut stmt = conn.prepare(sql).map_err(error)?;
    let n = stmt
        .execute(rusqlite::params_from_iter(params.iter().map(bind)))
        .map_err(error)?;
    Ok(n as u64)
}

impl Database for LiteDb {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn query(&mut self, statement: &str, params: &[Value]) -> Result<Rows, SqlError> {
        query(&self.conn, statement, params)
    }

    fn execute(&mut self, statement: &str, params: &[Value]) -> Result<u64, SqlError> {
        execute(&self.conn, statement, params)
    }

    fn begin(&mut self) -> Result<Box<dyn Tx + '_>, SqlError> {
        Ok(Box::new(LiteTx(Some(
            self.conn.transaction().map_err(error)?,
        ))))
    }
}

/// Like the host's transactions, it ends (rolled back) at the first
/// statement that fails.
struct LiteTx<'c>(Option<rusqlite::Transaction<'c>>);

impl LiteTx<'_> {
    fn run<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        let Some(tx) = self.0.as_ref() else {
            return Err(SqlError {
                kind: SqlErrorKind::Failed,
                code: None,
                message:
                    "transaction already finished: it was rolled back after a statement failed"
                        .into(),
            });
        };
        let result = f(tx);
        if result.is_err() {
            self.0 = None;
        }
        result
    }
}

impl Tx for LiteTx<'_> {
    fn query(&mut self, statement: &str, params: &[Value]) -> Result<Rows, SqlError> {
        self.run(|tx| query(tx, statement, params))
    }

    fn execute(&mut self, statement: &str, params: &[Value]) -> Result<u64, SqlError> {
        self.run(|tx| execute(tx, statement, params))
    }

    fn commit(mut self: Box<Self>) -> Result<(), SqlError> {
        match self.0.take() {
            Some(tx) => tx.commit().map_err(error),
            None => Err(SqlError {
                kind: SqlErrorKind::Failed,
                code: None,
                message: "transaction already finished".into(),
            }),
        }
    }
}
