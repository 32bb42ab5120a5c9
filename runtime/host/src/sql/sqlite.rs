//! SQLite through rusqlite, on the calling thread.
//!
//! One pool per [`ConnectionSpec`] (file), at most `pool_size` connections,
//! waiting on a condition variable when all are leased. Each call sets the
//! connection's `busy_timeout` to what is left of its timeout and installs a
//! progress handler that interrupts the statement at the deadline.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, ErrorCode, Statement, ffi};

use super::time::format_rfc3339_micros;
use super::{
    ConnectionSpec, SqlColumn, SqlError, SqlErrorKind, SqlRows, SqlValue, deadline_after, lock,
};

/// How many SQLite VM instructions run between two deadline checks.
const PROGRESS_OPS: i32 = 1000;
/// The timeout of the rollback that a dropped or failed transaction runs.
const ROLLBACK_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite half of the hub.
#[derive(Default)]
pub(super) struct SqliteHub {
    pools: Mutex<HashMap<ConnectionSpec, Arc<SqlitePool>>>,
}

impl SqliteHub {
    fn pool(&self, spec: &ConnectionSpec) -> Result<Arc<SqlitePool>, SqlError> {
        let path = Path::new(&spec.url);
        if !path.is_absolute() {
            return Err(SqlError::failed(
                &spec.name,
                format!(
                    "the SQLite database must be an absolute file path, not `{}`",
                    spec.url
                ),
            ));
        }
        let mut pools = lock(&self.pools);
        if let Some(pool) = pools.get(spec) {
            return Ok(pool.clone());
        }
        let pool = Arc::new(SqlitePool {
            name: spec.name.clone(),
            path: path.to_path_buf(),
            max: spec.max_connections(),
            state: Mutex::new(PoolState::default()),
            available: Condvar::new(),
        });
        pools.insert(spec.clone(), pool.clone());
        Ok(pool)
    }

    pub(super) fn close_idle(&self) {
        let pools: Vec<_> = lock(&self.pools).drain().map(|(_, p)| p).collect();
        for pool in pools {
            let mut state = lock(&pool.state);
            let closed = state.idle.len();
            state.idle.clear();
            state.open -= closed;
        }
    }

    pub(super) fn query(
        &self,
        spec: &ConnectionSpec,
        sql: &str,
        params: Vec<SqlValue>,
        timeout: Duration,
    ) -> Result<SqlRows, SqlError> {
        let deadline = deadline_after(timeout);
        let mut conn = self.pool(spec)?.acquire(deadline, timeout)?;
        conn.call(deadline, timeout, |c| query(c, sql, &params))
    }

    pub(super) fn execute(
        &self,
        spec: &ConnectionSpec,
        sql: &str,
        params: Vec<SqlValue>,
        timeout: Duration,
    ) -> Result<u64, SqlError> {
        let deadline = deadline_after(timeout);
        let mut conn = self.pool(spec)?.acquire(deadline, timeout)?;
        conn.call(deadline, timeout, |c| execute(c, sql, &params))
    }

    pub(super) fn begin(
        &self,
        spec: &ConnectionSpec,
        read_only: bool,
        timeout: Duration,
    ) -> Result<SqliteTransaction, SqlError> {
        let deadline = deadline_after(timeout);
        let mut conn = self.pool(spec)?.acquire(deadline, timeout)?;
        conn.in_txn = true;
        conn.read_only = read_only;
        let begin = if read_only {
            "PRAGMA query_only = ON; BEGIN DEFERRED"
        } else {
            "BEGIN IMMEDIATE"
        };
        conn.call(deadline, timeout, |c| c.execute_batch(begin))?;
        Ok(SqliteTransaction {
            name: spec.name.clone(),
            conn: Some(conn),
        })
    }
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Connection>,
    /// Connections open, idle or leased.
    open: usize,
}

struct SqlitePool {
    name: String,
    path: PathBuf,
    max: usize,
    state: Mutex<PoolState>,
    available: Condvar,
}

impl SqlitePool {
    fn acquire(self: Arc<Self>, deadline: Instant, timeout: Duration) -> Result<Leased, SqlError> {
        let mut state = lock(&self.state);
        loop {
            if let Some(conn) = state.idle.pop() {
                drop(state);
                return Ok(self.lease(conn));
            }
            if state.open < self.max {
                state.open += 1;
                drop(state);
                return match self.open() {
                    Ok(conn) => Ok(self.lease(conn)),
                    Err(e) => {
                        lock(&self.state).open -= 1;
                        self.available.notify_one();
                        Err(e)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(SqlError::retryable(
                    &self.name,
                    format!(
                        "timed out after {timeout:?} waiting for a free connection (pool_size {})",
                        self.max
                    ),
                ));
            }
            state = self
                .available
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn open(&self) -> Result<Connection, SqlError> {
        let conn = Connection::open(&self.path).map_err(|e| {
            let mut err = convert_error(&self.name, &e, Duration::ZERO);
            err.message = format!(
                "connection `{}`: cannot open SQLite database {}: {}",
                self.name,
                self.path.display(),
                e
            );
            err
        })?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(conn)
    }

    fn lease(self: Arc<Self>, conn: Connection) -> Leased {
        Leased {
            conn: Some(conn),
            pool: self,
            broken: false,
            in_txn: false,
            read_only: false,
        }
    }
}

/// A connection leased from a pool; given back on drop.
struct Leased {
    conn: Option<Connection>,
    pool: Arc<SqlitePool>,
    broken: bool,
    in_txn: bool,
    read_only: bool,
}

impl Leased {
    /// Runs `f` with the busy timeout and the deadline set.
    fn call<T>(
        &mut self,
        deadline: Instant,
        timeout: Duration,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, SqlError> {
        let name = &self.pool.name;
        let Some(conn) = self.conn.as_ref() else {
            return Err(SqlError::failed(name, "the connection is gone"));
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if let Err(e) = conn.busy_timeout(left) {
            self.broken = true;
            return Err(convert_error(name, &e, timeout));
        }
        conn.progress_handler(PROGRESS_OPS, Some(move || Instant::now() >= deadline));
        let result = f(conn);
        conn.progress_handler(0, None::<fn() -> bool>);
        result.map_err(|e| convert_error(name, &e, timeout))
    }

    /// Ends the transaction this connection is in.
    fn end_transaction(&mut self, sql: &str, timeout: Duration) -> Result<(), SqlError> {
        let deadline = deadline_after(timeout);
        let result = self.call(deadline, timeout, |c| {
            if c.is_autocommit() {
                // SQLite already rolled it back (some errors do).
                if sql == "COMMIT" {
                    return Err(rusqlite::Error::SqliteFailure(
                        ffi::Error::new(ffi::SQLITE_ERROR),
                        Some("the transaction was already rolled back".into()),
                    ));
                }
                return Ok(());
            }
            c.execute_batch(sql)
        });
        let still_open = self.conn.as_ref().is_none_or(|c| !c.is_autocommit());
        if !still_open {
            self.in_txn = false;
        }
        if self.read_only {
            let restored = self
                .conn
                .as_ref()
                .map(|c| c.execute_batch("PRAGMA query_only = OFF"));
            if !matches!(restored, Some(Ok(()))) {
                self.broken = true;
            }
            self.read_only = false;
        }
        result
    }
}

impl Drop for Leased {
    fn drop(&mut self) {
        if self.in_txn {
            let _ = self.end_transaction("ROLLBACK", ROLLBACK_TIMEOUT);
        }
        let keep = !self.broken && !self.in_txn;
        let conn = self.conn.take();
        let mut state = lock(&self.pool.state);
        match conn {
            Some(conn) if keep => state.idle.push(conn),
            _ => state.open -= 1,
        }
        drop(state);
        self.pool.available.notify_one();
    }
}

/// One value bound to an SQLite parameter.
struct Param<'a>(&'a SqlValue);

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            SqlValue::Null => ToSqlOutput::Owned(Value::Null),
            SqlValue::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            SqlValue::Float(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
            SqlValue::Bool(b) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*b))),
            SqlValue::Text(t) | SqlValue::Json(t) => {
                ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes()))
            }
            SqlValue::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            SqlValue::Timestamp(us) => ToSqlOutput::Owned(Value::Text(format_rfc3339_micros(*us))),
        })
    }
}

fn bind(stmt: &mut Statement<'_>, params: &[SqlValue]) -> rusqlite::Result<()> {
    let expected = stmt.parameter_count();
    if expected != params.len() {
        return Err(rusqlite::Error::InvalidParameterCount(
            params.len(),
            expected,
        ));
    }
    for (i, value) in params.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, Param(value))?;
    }
    Ok(())
}

fn storage_class(v: ValueRef<'_>) -> &'static str {
    match v {
        ValueRef::Null => "NULL",
        ValueRef::Integer(_) => "INTEGER",
        ValueRef::Real(_) => "REAL",
        ValueRef::Text(_) => "TEXT",
        ValueRef::Blob(_) => "BLOB",
    }
}

fn value_of(v: ValueRef<'_>) -> SqlValue {
    match v {
        ValueRef::Null => SqlValue::Null,
        ValueRef::Integer(i) => SqlValue::Int(i),
        ValueRef::Real(f) => SqlValue::Float(f),
        ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => SqlValue::Bytes(b.to_vec()),
    }
}

fn query(conn: &Connection, sql: &str, params: &[SqlValue]) -> rusqlite::Result<SqlRows> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind(&mut stmt, params)?;
    let mut columns: Vec<SqlColumn> = stmt
        .columns()
        .iter()
        .map(|c| SqlColumn {
            name: c.name().to_owned(),
            type_name: c.decl_type().unwrap_or_default().to_owned(),
        })
        .collect();
    let width = columns.len();
    let mut out = Vec::new();
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(width);
        for (i, column) in columns.iter_mut().enumerate() {
            let v = row.get_ref(i)?;
            if column.type_name.is_empty() && !matches!(v, ValueRef::Null) {
                column.type_name = storage_class(v).to_owned();
            }
            values.push(value_of(v));
        }
        out.push(values);
    }
    for column in &mut columns {
        if column.type_name.is_empty() {
            column.type_name = "NULL".to_owned();
        }
    }
    Ok(SqlRows { columns, rows: out })
}

fn run_to_end(conn: &Connection, stmt: &mut Statement<'_>) -> rusqlite::Result<u64> {
    let before = conn.total_changes();
    let mut rows = stmt.raw_query();
    while rows.next()?.is_some() {}
    drop(rows);
    // changes() is that of the last INSERT/UPDATE/DELETE, which may be an
    // earlier statement: count only when this one changed something.
    Ok(if conn.total_changes() == before {
        0
    } else {
        conn.changes()
    })
}

fn execute(conn: &Connection, sql: &str, params: &[SqlValue]) -> rusqlite::Result<u64> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind(&mut stmt, params)?;
    run_to_end(conn, &mut stmt)
}

fn execute_many(conn: &Connection, sql: &str, lists: &[Vec<SqlValue>]) -> rusqlite::Result<u64> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut total = 0;
    for params in lists {
        bind(&mut stmt, params)?;
        total += run_to_end(conn, &mut stmt)?;
    }
    Ok(total)
}

/// The name of an SQLite (extended) result code, such as
/// `SQLITE_CONSTRAINT_UNIQUE`.
fn code_name(extended: i32) -> String {
    let name = match extended {
        ffi::SQLITE_CONSTRAINT_CHECK => "SQLITE_CONSTRAINT_CHECK",
        ffi::SQLITE_CONSTRAINT_COMMITHOOK => "SQLITE_CONSTRAINT_COMMITHOOK",
        ffi::SQLITE_CONSTRAINT_FOREIGNKEY => "SQLITE_CONSTRAINT_FOREIGNKEY",
        ffi::SQLITE_CONSTRAINT_FUNCTION => "SQLITE_CONSTRAINT_FUNCTION",
        ffi::SQLITE_CONSTRAINT_NOTNULL => "SQLITE_CONSTRAINT_NOTNULL",
        ffi::SQLITE_CONSTRAINT_PRIMARYKEY => "SQLITE_CONSTRAINT_PRIMARYKEY",
        ffi::SQLITE_CONSTRAINT_TRIGGER => "SQLITE_CONSTRAINT_TRIGGER",
        ffi::SQLITE_CONSTRAINT_UNIQUE => "SQLITE_CONSTRAINT_UNIQUE",
        ffi::SQLITE_CONSTRAINT_VTAB => "SQLITE_CONSTRAINT_VTAB",
        ffi::SQLITE_CONSTRAINT_ROWID => "SQLITE_CONSTRAINT_ROWID",
        ffi::SQLITE_CONSTRAINT_PINNED => "SQLITE_CONSTRAINT_PINNED",
        ffi::SQLITE_CONSTRAINT_DATATYPE => "SQLITE_CONSTRAINT_DATATYPE",
        ffi::SQLITE_BUSY_RECOVERY => "SQLITE_BUSY_RECOVERY",
        ffi::SQLITE_BUSY_SNAPSHOT => "SQLITE_BUSY_SNAPSHOT",
        ffi::SQLITE_BUSY_TIMEOUT => "SQLITE_BUSY_TIMEOUT",
        ffi::SQLITE_LOCKED_SHAREDCACHE => "SQLITE_LOCKED_SHAREDCACHE",
        ffi::SQLITE_LOCKED_VTAB => "SQLITE_LOCKED_VTAB",
        ffi::SQLITE_READONLY_DBMOVED => "SQLITE_READONLY_DBMOVED",
        ffi::SQLITE_CANTOPEN_ISDIR => "SQLITE_CANTOPEN_ISDIR",
        _ => match extended & 0xff {
            ffi::SQLITE_ERROR => "SQLITE_ERROR",
            ffi::SQLITE_INTERNAL => "SQLITE_INTERNAL",
            ffi::SQLITE_PERM => "SQLITE_PERM",
            ffi::SQLITE_ABORT => "SQLITE_ABORT",
            ffi::SQLITE_BUSY => "SQLITE_BUSY",
            ffi::SQLITE_LOCKED => "SQLITE_LOCKED",
            ffi::SQLITE_NOMEM => "SQLITE_NOMEM",
            ffi::SQLITE_READONLY => "SQLITE_READONLY",
            ffi::SQLITE_INTERRUPT => "SQLITE_INTERRUPT",
            ffi::SQLITE_IOERR => "SQLITE_IOERR",
            ffi::SQLITE_CORRUPT => "SQLITE_CORRUPT",
            ffi::SQLITE_NOTFOUND => "SQLITE_NOTFOUND",
            ffi::SQLITE_FULL => "SQLITE_FULL",
            ffi::SQLITE_CANTOPEN => "SQLITE_CANTOPEN",
            ffi::SQLITE_PROTOCOL => "SQLITE_PROTOCOL",
            ffi::SQLITE_SCHEMA => "SQLITE_SCHEMA",
            ffi::SQLITE_TOOBIG => "SQLITE_TOOBIG",
            ffi::SQLITE_CONSTRAINT => "SQLITE_CONSTRAINT",
            ffi::SQLITE_MISMATCH => "SQLITE_MISMATCH",
            ffi::SQLITE_MISUSE => "SQLITE_MISUSE",
            ffi::SQLITE_NOLFS => "SQLITE_NOLFS",
            ffi::SQLITE_AUTH => "SQLITE_AUTH",
            ffi::SQLITE_RANGE => "SQLITE_RANGE",
            ffi::SQLITE_NOTADB => "SQLITE_NOTADB",
            _ => return format!("SQLITE_{extended}"),
        },
    };
    name.to_owned()
}

fn convert_error(name: &str, e: &rusqlite::Error, timeout: Duration) -> SqlError {
    match e {
        rusqlite::Error::SqliteFailure(failure, message) => {
            let code = code_name(failure.extended_code);
            if failure.code == ErrorCode::OperationInterrupted {
                return SqlError::timed_out(name, timeout).with_code(code);
            }
            let kind = match failure.code {
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => SqlErrorKind::Retryable,
                ErrorCode::ConstraintViolation => SqlErrorKind::Constraint,
                _ => SqlErrorKind::Failed,
            };
            let text = message.clone().unwrap_or_else(|| failure.to_string());
            SqlError::new(kind, name, text).with_code(code)
        }
        rusqlite::Error::InvalidParameterCount(given, expected) => SqlError::failed(
            name,
            format!(
                "the statement takes {expected} parameter{} but got {given} value{}",
                if *expected == 1 { "" } else { "s" },
                if *given == 1 { "" } else { "s" }
            ),
        ),
        other => SqlError::failed(name, other),
    }
}

/// An SQLite transaction: a leased connection inside `BEGIN`.
pub(super) struct SqliteTransaction {
    name: String,
    conn: Option<Leased>,
}

impl SqliteTransaction {
    fn leased(&mut self) -> Result<&mut Leased, SqlError> {
        self.conn
            .as_mut()
            .ok_or_else(|| SqlError::failed(&self.name, "the transaction has no connection"))
    }

    pub(super) fn query(
        &mut self,
        sql: &str,
        params: Vec<SqlValue>,
        timeout: Duration,
    ) -> Result<SqlRows, SqlError> {
        self.leased()?
            .call(deadline_after(timeout), timeout, |c| query(c, sql, &params))
    }

    pub(super) fn execute(
        &mut self,
        sql: &str,
        params: Vec<SqlValue>,
        timeout: Duration,
    ) -> Result<u64, SqlError> {
        self.leased()?.call(deadline_after(timeout), timeout, |c| {
            execute(c, sql, &params)
        })
    }

    pub(super) fn execute_many(
        &mut self,
        sql: &str,
        params: Vec<Vec<SqlValue>>,
        timeout: Duration,
    ) -> Result<u64, SqlError> {
        self.leased()?.call(deadline_after(timeout), timeout, |c| {
            execute_many(c, sql, &params)
        })
    }

    /// COMMIT or ROLLBACK, then gives the connection back.
    pub(super) fn finish(&mut self, commit: bool, timeout: Duration) -> Result<(), SqlError> {
        let result = self
            .leased()?
            .end_transaction(if commit { "COMMIT" } else { "ROLLBACK" }, timeout);
        // Drop gives it back to the pool, or rolls back and closes it when
        // the transaction is still open (a COMMIT that failed as busy).
        self.conn = None;
        result
    }

    /// Rolls back after a failure, as well as it can.
    pub(super) fn abort(&mut self) {
        self.conn = None;
    }
}
