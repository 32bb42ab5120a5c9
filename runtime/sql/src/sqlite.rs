//! SQLite through rusqlite, on the calling thread.
//!
//! One pool per [`ConnectionSpec`] (file), at most `pool_size` connections,
//! waiting on a condition variable when all are leased. Each call sets the
//! connection's `busy_timeout` to what is left of its timeout and installs a
//! progress handler that interrupts the statement at the deadline.
//!
//! Every connection is opened hardened for plugins ([`SqlitePool::open`]):
//! an authorizer refuses `ATTACH` (which `VACUUM INTO` and `VACUUM` run
//! too), `DETACH`, `load_extension()` and every `PRAGMA` outside
//! [`ALLOWED_PRAGMAS`] (the host's own `PRAGMA query_only` passes only
//! while the host runs it); `SQLITE_LIMIT_ATTACHED` is 0 as a second guard;
//! `SQLITE_DBCONFIG_DEFENSIVE` is on; extension loading stays off (rusqlite
//! is built without its `load_extension` feature, so nothing turns it on).
//! A refusal fails the call as [`SqlErrorKind::Denied`] saying what was
//! refused. Each call also sets `SQLITE_LIMIT_LENGTH` from the plugin's
//! [`SqlLimits`], and a query stops stepping once its rows outgrow them.
//! A call outside a transaction that leaves the connection inside one (a
//! `BEGIN` hidden from the text check) is rolled back and denied.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, ErrorCode, Statement, ffi};

use super::time::format_rfc3339_micros;
use super::{
    ConnectionSpec, SqlColumn, SqlError, SqlErrorKind, SqlLimits, SqlRows, SqlValue,
    deadline_after, human_bytes, lock,
};

/// How many SQLite VM instructions run between two deadline checks.
const PROGRESS_OPS: i32 = 1000;
/// The timeout of the rollback that a dropped or failed transaction runs.
const ROLLBACK_TIMEOUT: Duration = Duration::from_secs(5);
/// SQLite's own ceiling for `SQLITE_LIMIT_LENGTH` (`SQLITE_MAX_LENGTH`).
const MAX_LENGTH: usize = 1_000_000_000;
/// The pragmas a plugin may run, as statements or as table-valued
/// functions (`pragma_table_xinfo('t')`): reading a table's shape. The
/// shipped connectors use `table_xinfo`, `index_list` and `index_info`.
pub(crate) const ALLOWED_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
];
/// The longest file name quoted in a refusal.
const MAX_QUOTED: usize = 200;

/// What the authorizer of one connection refused, and whether the host
/// (not a plugin) is running a statement.
#[derive(Default)]
struct Guard {
    refused: Mutex<Option<String>>,
    host: AtomicBool,
}

/// `text`, cut to [`MAX_QUOTED`] bytes.
fn clip(text: &str) -> String {
    if text.len() <= MAX_QUOTED {
        return text.to_owned();
    }
    let mut cut = MAX_QUOTED;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &text[..cut])
}

/// The refusal of an `ATTACH` of `filename` (`None` when the name comes
/// from a parameter or an expression, unknown while the statement is
/// prepared).
fn attach_refused(filename: Option<&str>) -> String {
    format!(
        "attaching a database file{} is refused (`ATTACH`, `VACUUM INTO` and `VACUUM` attach \
         one): plugins may use only the database of their connection",
        filename.map_or_else(
            || " (named by an expression)".to_owned(),
            |f| {
                if f.is_empty() {
                    " (a temporary one)".to_owned()
                } else {
                    format!(" (`{}`)", clip(f))
                }
            }
        )
    )
}

/// The authorizer: what a plugin's statement may do on its connection.
/// rusqlite hands an action over as `Unknown` when an argument is absent
/// or not UTF-8 (`ATTACH ?1`, whose file name is not known while the
/// statement is prepared): those are refused too.
fn authorize(guard: &Guard, ctx: &AuthContext<'_>) -> Authorization {
    let refused = match ctx.action {
        AuthAction::Attach { filename } => attach_refused(Some(filename)),
        AuthAction::Detach { database_name } => format!(
            "`DETACH {}` is refused: plugins may not attach or detach databases",
            clip(database_name)
        ),
        AuthAction::Pragma { pragma_name, .. } => {
            let allowed = ALLOWED_PRAGMAS
                .iter()
                .any(|p| p.eq_ignore_ascii_case(pragma_name))
                || (pragma_name.eq_ignore_ascii_case("query_only")
                    && guard.host.load(Ordering::Acquire));
            if allowed {
                return Authorization::Allow;
            }
            format!(
                "`PRAGMA {}` is refused: plugins may run only the pragmas {} (also as \
                 table-valued functions, `pragma_table_xinfo('t')`)",
                clip(pragma_name),
                ALLOWED_PRAGMAS.join(", ")
            )
        }
        AuthAction::Function { function_name }
            if function_name.eq_ignore_ascii_case("load_extension") =>
        {
            "`load_extension()` is refused: plugins may not load SQLite extensions".to_owned()
        }
        AuthAction::Unknown { code, arg1, .. } if code == ffi::SQLITE_ATTACH => {
            attach_refused(arg1)
        }
        AuthAction::Unknown { code, .. } if code == ffi::SQLITE_DETACH => {
            "`DETACH` is refused: plugins may not attach or detach databases".to_owned()
        }
        AuthAction::Unknown { code, .. } if code == ffi::SQLITE_PRAGMA => format!(
            "this `PRAGMA` is refused: plugins may run only the pragmas {}",
            ALLOWED_PRAGMAS.join(", ")
        ),
        _ => return Authorization::Allow,
    };
    let mut slot = lock(&guard.refused);
    if slot.is_none() {
        *slot = Some(refused);
    }
    Authorization::Deny
}

/// A pooled connection and its authorizer's state.
struct Conn {
    db: Connection,
    guard: Arc<Guard>,
}

/// Why a call's closure failed.
enum Fail {
    Sqlite(rusqlite::Error),
    /// The rows outgrew the plugin's result limit.
    TooLarge,
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Fail {
        Fail::Sqlite(e)
    }
}

/// The bytes a call's parameters bring: what the statement may build
/// beyond the result limit (an `INSERT` of a large value).
fn param_bytes(params: &[SqlValue]) -> usize {
    params
        .iter()
        .map(|v| match v {
            SqlValue::Text(t) | SqlValue::Json(t) => t.len(),
            SqlValue::Bytes(b) => b.len(),
            _ => 8,
        })
        .fold(0, usize::saturating_add)
}

/// The `SQLITE_LIMIT_LENGTH` of a call: the result limit plus the bytes of
/// its parameters, within SQLite's own ceiling.
fn length_limit(limits: SqlLimits, params: usize) -> usize {
    limits
        .max_result_bytes
        .saturating_add(params)
        .clamp(1, MAX_LENGTH)
}

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
        limits: SqlLimits,
    ) -> Result<SqlRows, SqlError> {
        let deadline = deadline_after(timeout);
        let mut conn = self.pool(spec)?.acquire(deadline, timeout)?;
        let length = length_limit(limits, param_bytes(&params));
        let result = conn.call(deadline, timeout, Some(length), limits, |c| {
            query(c, sql, &params, limits.max_result_bytes)
        });
        conn.check_autocommit(result)
    }

    pub(super) fn execute(
        &self,
        spec: &ConnectionSpec,
        sql: &str,
        params: Vec<SqlValue>,
        timeout: Duration,
        limits: SqlLimits,
    ) -> Result<u64, SqlError> {
        let deadline = deadline_after(timeout);
        let mut conn = self.pool(spec)?.acquire(deadline, timeout)?;
        let length = length_limit(limits, param_bytes(&params));
        let result = conn.call(deadline, timeout, Some(length), limits, |c| {
            Ok(execute(c, sql, &params)?)
        });
        conn.check_autocommit(result)
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
        conn.host_call(deadline, timeout, begin)?;
        Ok(SqliteTransaction {
            name: spec.name.clone(),
            conn: Some(conn),
        })
    }
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Conn>,
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

    /// Opens a connection hardened for plugins (see the module's doc).
    fn open(&self) -> Result<Conn, SqlError> {
        let fail = |e: rusqlite::Error| {
            let mut err = convert_error(&self.name, &e, Duration::ZERO);
            err.message = format!(
                "connection `{}`: cannot open SQLite database {}: {}",
                self.name,
                self.path.display(),
                e
            );
            err
        };
        let db = Connection::open(&self.path).map_err(fail)?;
        db.set_prepared_statement_cache_capacity(32);
        db.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)
            .map_err(fail)?;
        db.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
            .map_err(fail)?;
        let guard = Arc::new(Guard::default());
        let seen = guard.clone();
        db.authorizer(Some(move |ctx: AuthContext<'_>| authorize(&seen, &ctx)));
        Ok(Conn { db, guard })
    }

    fn lease(self: Arc<Self>, conn: Conn) -> Leased {
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
    conn: Option<Conn>,
    pool: Arc<SqlitePool>,
    broken: bool,
    in_txn: bool,
    read_only: bool,
}

impl Leased {
    /// Runs a plugin's statement(s) in `f` with the busy timeout, the
    /// deadline and (when given) `SQLITE_LIMIT_LENGTH` set; a refusal of
    /// the authorizer comes back as [`SqlErrorKind::Denied`].
    fn call<T>(
        &mut self,
        deadline: Instant,
        timeout: Duration,
        length: Option<usize>,
        limits: SqlLimits,
        f: impl FnOnce(&Connection) -> Result<T, Fail>,
    ) -> Result<T, SqlError> {
        let name = &self.pool.name;
        let Some(conn) = self.conn.as_ref() else {
            return Err(SqlError::failed(name, "the connection is gone"));
        };
        let c = &conn.db;
        let left = deadline.saturating_duration_since(Instant::now());
        if let Err(e) = c.busy_timeout(left) {
            self.broken = true;
            return Err(convert_error(name, &e, timeout));
        }
        if let Some(length) = length {
            let length = i32::try_from(length).unwrap_or(i32::MAX);
            if let Err(e) = c.set_limit(Limit::SQLITE_LIMIT_LENGTH, length) {
                self.broken = true;
                return Err(convert_error(name, &e, timeout));
            }
        }
        lock(&conn.guard.refused).take();
        c.progress_handler(PROGRESS_OPS, Some(move || Instant::now() >= deadline));
        let result = f(c);
        c.progress_handler(0, None::<fn() -> bool>);
        let refused = lock(&conn.guard.refused).take();
        match result {
            Ok(value) => Ok(value),
            Err(Fail::TooLarge) => Err(SqlError::result_too_large(name, limits.max_result_bytes)),
            Err(Fail::Sqlite(e)) => {
                if let Some(refused) = refused {
                    return Err(SqlError::denied(name, refused).with_code("SQLITE_AUTH"));
                }
                let mut err = convert_error(name, &e, timeout);
                if err.code.as_deref() == Some("SQLITE_TOOBIG")
                    && let Some(length) = length
                {
                    err.message = format!(
                        "connection `{name}`: a string, blob or row is larger than {}, this \
                         plugin's limit (grant `max_output_mb`, plus the bytes of the call's \
                         parameters): SQLite stopped the statement. Build smaller values, or \
                         raise `max_output_mb` in the plugin's grants",
                        human_bytes(length)
                    );
                }
                Err(err)
            }
        }
    }

    /// Runs the host's own statements (`BEGIN`, `PRAGMA query_only`), which
    /// the authorizer lets through.
    fn host_call(
        &mut self,
        deadline: Instant,
        timeout: Duration,
        sql: &str,
    ) -> Result<(), SqlError> {
        let guard = self.conn.as_ref().map(|c| c.guard.clone());
        if let Some(g) = &guard {
            g.host.store(true, Ordering::Release);
        }
        let result = self.call(deadline, timeout, None, SqlLimits::default(), |c| {
            Ok(c.execute_batch(sql)?)
        });
        if let Some(g) = &guard {
            g.host.store(false, Ordering::Release);
        }
        result
    }

    /// After a call outside a transaction: a connection left inside one
    /// (a `BEGIN` or `SAVEPOINT` the text check missed, behind a comment)
    /// is rolled back, and the call denied whatever it returned.
    fn check_autocommit<T>(&mut self, result: Result<T, SqlError>) -> Result<T, SqlError> {
        let Some(conn) = self.conn.as_ref() else {
            return result;
        };
        if conn.db.is_autocommit() {
            return result;
        }
        let rolled_back = self.host_call(
            deadline_after(ROLLBACK_TIMEOUT),
            ROLLBACK_TIMEOUT,
            "ROLLBACK",
        );
        if rolled_back.is_err() || self.conn.as_ref().is_some_and(|c| !c.db.is_autocommit()) {
            // Closing the connection rolls back.
            self.broken = true;
        }
        Err(SqlError::denied(
            &self.pool.name,
            "the statement left a transaction open (a `BEGIN` or `SAVEPOINT` the host's check \
             of the statement's text did not see, such as one behind a comment); the host \
             rolled it back. Plugins may not start transactions with statements: use the \
             interface's `begin`, `commit` and `rollback`",
        ))
    }

    /// Ends the transaction this connection is in.
    fn end_transaction(&mut self, sql: &str, timeout: Duration) -> Result<(), SqlError> {
        let deadline = deadline_after(timeout);
        let result = self.call(deadline, timeout, None, SqlLimits::default(), |c| {
            if c.is_autocommit() {
                // SQLite already rolled it back (some errors do).
                if sql == "COMMIT" {
                    return Err(Fail::Sqlite(rusqlite::Error::SqliteFailure(
                        ffi::Error::new(ffi::SQLITE_ERROR),
                        Some("the transaction was already rolled back".into()),
                    )));
                }
                return Ok(());
            }
            Ok(c.execute_batch(sql)?)
        });
        let still_open = self.conn.as_ref().is_none_or(|c| !c.db.is_autocommit());
        if !still_open {
            self.in_txn = false;
        }
        if self.read_only {
            let restored =
                self.host_call(deadline_after(timeout), timeout, "PRAGMA query_only = OFF");
            if restored.is_err() {
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
        // Never give back a connection inside a transaction.
        let keep = !self.broken
            && !self.in_txn
            && self.conn.as_ref().is_some_and(|c| c.db.is_autocommit());
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

/// Runs a query and reads its rows, stopping with [`Fail::TooLarge`] once
/// they take more than `max_bytes` (counted before each value is copied).
fn query(
    conn: &Connection,
    sql: &str,
    params: &[SqlValue],
    max_bytes: usize,
) -> Result<SqlRows, Fail> {
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
    let mut used = 0_usize;
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next()? {
        used = used.saturating_add(SqlLimits::ROW_COST);
        let mut values = Vec::with_capacity(width);
        for (i, column) in columns.iter_mut().enumerate() {
            let v = row.get_ref(i)?;
            let payload = match v {
                ValueRef::Text(b) | ValueRef::Blob(b) => b.len(),
                _ => 0,
            };
            used = used.saturating_add(SqlLimits::value_cost(payload));
            if used > max_bytes {
                return Err(Fail::TooLarge);
            }
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
        limits: SqlLimits,
    ) -> Result<SqlRows, SqlError> {
        let length = length_limit(limits, param_bytes(&params));
        self.leased()?.call(
            deadline_after(timeout),
            timeout,
            Some(length),
            limits,
            |c| query(c, sql, &params, limits.max_result_bytes),
        )
    }

    pub(super) fn execute(
        &mut self,
        sql: &str,
        params: Vec<SqlValue>,
        timeout: Duration,
        limits: SqlLimits,
    ) -> Result<u64, SqlError> {
        let length = length_limit(limits, param_bytes(&params));
        self.leased()?.call(
            deadline_after(timeout),
            timeout,
            Some(length),
            limits,
            |c| Ok(execute(c, sql, &params)?),
        )
    }

    pub(super) fn execute_many(
        &mut self,
        sql: &str,
        params: Vec<Vec<SqlValue>>,
        timeout: Duration,
        limits: SqlLimits,
    ) -> Result<u64, SqlError> {
        let largest = params.iter().map(|p| param_bytes(p)).max().unwrap_or(0);
        let length = length_limit(limits, largest);
        self.leased()?.call(
            deadline_after(timeout),
            timeout,
            Some(length),
            limits,
            |c| Ok(execute_many(c, sql, &params)?),
        )
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The second guard alone: with the authorizer taken off, an `ATTACH`
    /// still fails on `SQLITE_LIMIT_ATTACHED`, and `load_extension()` on
    /// SQLite's own default (extension loading off).
    #[test]
    fn without_the_authorizer_attach_and_load_extension_still_fail() {
        let dir = std::env::temp_dir().join(format!("ferry-sqlite-guard-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pool = SqlitePool {
            name: "local".into(),
            path: dir.join("db.sqlite"),
            max: 1,
            state: Mutex::new(PoolState::default()),
            available: Condvar::new(),
        };
        let conn = pool.open().unwrap();
        assert_eq!(conn.db.limit(Limit::SQLITE_LIMIT_ATTACHED).unwrap(), 0);
        conn.db
            .authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
        let other = dir.join("other.sqlite").display().to_string();
        let err = conn
            .db
            .execute("ATTACH DATABASE ?1 AS o", [&other])
            .unwrap_err();
        assert!(
            err.to_string().contains("too many attached databases"),
            "{err}"
        );
        let err = conn
            .db
            .query_row("SELECT load_extension('/nonexistent.so')", [], |_| Ok(()))
            .unwrap_err();
        assert!(err.to_string().contains("not authorized"), "{err}");
        assert!(!dir.join("other.sqlite").exists());
        drop(conn);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
