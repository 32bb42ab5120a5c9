//! The SQL backend behind the `sql` interface of the WIT contract: named
//! connections to PostgreSQL and SQLite, with pools, timeouts, TLS, and the
//! mapping between [`SqlValue`]s and database types. Pure Rust, no wasmtime:
//! the host's bindings call [`SqlHub`].
//!
//! # How it runs
//!
//! The API is synchronous. It is called from plugin calls (which run inside
//! `tokio::task::block_in_place` on the pipeline's runtime) and from plain
//! threads with no runtime at all, so it never touches the caller's runtime:
//!
//! - **PostgreSQL** ([tokio-postgres]) runs on a small runtime of the hub's
//!   own (two worker threads named `ferry-sql`), started on the first
//!   PostgreSQL call. A call submits its future there and waits on a channel.
//!   Each [`ConnectionSpec`] gets a pool of at most `pool_size` connections,
//!   opened when needed and kept open; a connection that failed at the
//!   connection level (I/O, the server closed it, a statement that would not
//!   cancel) is dropped, not reused. Connections identify themselves as
//!   `application_name=ferry` unless the URL names another one.
//! - **SQLite** ([rusqlite]) runs on the calling thread, with a pool of at
//!   most `pool_size` connections per file.
//!
//! Every call takes a timeout that covers everything it does: waiting for a
//! pooled connection, connecting, running. When it runs out, a PostgreSQL
//! statement is cancelled on the server (a cancel request, like `pg_cancel_backend`)
//! and an SQLite one interrupted; the call fails as [`SqlErrorKind::Retryable`]
//! with "timed out after ..", and the connection stays usable. SQLite's
//! `busy_timeout` is the call's timeout.
//!
//! `query` and `execute` on the hub run in a transaction of their own
//! (autocommit). [`SqlHub::begin`] holds one pooled connection until
//! [`SqlTransaction::commit`], [`SqlTransaction::rollback`] or drop (which
//! rolls back). A statement that fails inside a transaction rolls the whole
//! transaction back at once (PostgreSQL would refuse anything but a rollback
//! after it anyway): the call returns the statement's error, later calls fail
//! with "transaction already finished", and `rollback` returns `Ok`. On
//! SQLite, `isolation` is ignored (SQLite transactions are serializable), a
//! read-write transaction starts with `BEGIN IMMEDIATE` (so it never fails
//! later on upgrading its lock) and a read-only one sets `PRAGMA query_only`.
//!
//! # Parameters and statements
//!
//! One statement per call. Transaction control (`BEGIN`, `START`, `COMMIT`,
//! `END`, `ROLLBACK`, `ABORT`; `SAVEPOINT` and `RELEASE` outside a
//! transaction) is refused: transactions go through [`SqlHub::begin`]. A
//! session setting changed with `SET` stays on the pooled connection for
//! later calls: prefer `SET LOCAL` inside a transaction.
//!
//! Parameters are bound, never spliced: `$1`, `$2`
//! in PostgreSQL, `?1`, `?2` in SQLite. PostgreSQL decides each parameter's
//! type from the statement (the backend prepares it first), and a value is
//! converted to that type when the two are compatible (table below);
//! otherwise the call fails as [`SqlErrorKind::Failed`] naming the parameter,
//! its type, the value's kind, and the cast that fixes it, e.g. `$2::text::inet`.
//!
//! # Type mapping
//!
//! Binding a value to a parameter:
//!
//! | value | PostgreSQL parameter types | SQLite |
//! |---|---|---|
//! | `null` | any | `NULL` |
//! | `int` | `int2`, `int4`, `int8`, `oid` (range-checked); `float4`, `float8`; `numeric`; text types (decimal text) | `INTEGER` |
//! | `float` | `float4` (range-checked), `float8`; `numeric` (shortest exact decimal; NaN, ±Infinity) | `REAL` |
//! | `boolean` | `bool` | `INTEGER` 0 or 1 |
//! | `text` | text types: `text`, `varchar`, `bpchar`, `name`, enums, `unknown`; parsed: `numeric` (decimal, exponent, `NaN`, `Infinity`), `int2`/`int4`/`int8`/`oid`, `float4`/`float8`, `bool` (`t`, `true`, `yes`, `on`, `1` and their opposites), `uuid` (with or without hyphens), `date` (`YYYY-MM-DD`, `infinity`), `timestamp`/`timestamptz` (RFC 3339; without an offset, UTC; `infinity`), `pg_lsn` (`16/B374D848`); as-is: `json`, `jsonb` | `TEXT` |
//! | `bytes` | `bytea` | `BLOB` |
//! | `timestamp` (µs since 1970-01-01 UTC) | `timestamptz`, `timestamp` (the UTC wall-clock time), `date` (the UTC day) | `TEXT`, RFC 3339 with six fractional digits and `Z`: `2026-11-27T10:00:00.123456Z` |
//! | `json` | `json`, `jsonb` | `TEXT` |
//!
//! A domain binds as its base type. Anything else fails: cast in the
//! statement, e.g. `$2::text::inet`, and bind text.
//!
//! Reading a result column (`type_name` is the PostgreSQL type name, such as
//! `int8`, `timestamptz` or an enum's name):
//!
//! | PostgreSQL type | value |
//! |---|---|
//! | `bool` | `boolean` |
//! | `int2`, `int4`, `int8`, `oid` | `int` |
//! | `float4`, `float8` | `float` |
//! | `numeric` | `text`, exact (`-12.50`, `NaN`, `Infinity`) |
//! | `text`, `varchar`, `bpchar`, `name`, `"char"`, enums, `unknown` | `text` |
//! | `bytea` | `bytes` |
//! | `timestamptz`, `timestamp` (read as UTC) | `timestamp`; `infinity` and `-infinity` as `text` |
//! | `date` | `text`, `YYYY-MM-DD` (`0044-03-15 BC`, `infinity`) |
//! | `time` | `text`, `HH:MM:SS[.ffffff]` |
//! | `uuid` | `text`, hyphenated lower case |
//! | `json`, `jsonb` | `json` |
//! | `pg_lsn` | `text`, `X/Y` (`16/B374D848`) |
//! | `void` (`SELECT pg_advisory_xact_lock(1)`) | `null` |
//! | a domain | as its base type |
//!
//! Any other type (arrays, `interval`, `inet`, `timetz`, composite types...)
//! fails naming the column and its type, with the fix: cast it in the query,
//! `col::text`. The check is made before the statement runs.
//!
//! SQLite: `INTEGER` → `int`, `REAL` → `float`, `TEXT` → `text`, `BLOB` →
//! `bytes`, `NULL` → `null`, by each value's storage class; `type_name` is
//! the column's declared type, or for an expression the storage class of its
//! first non-null value (`NULL` when there is none).
//!
//! # Errors
//!
//! | kind | PostgreSQL | SQLite |
//! |---|---|---|
//! | [`Retryable`](SqlErrorKind::Retryable) | SQLSTATE class 08 (connection), 40001 (serialization), 40P01 (deadlock), 55P03 (lock not available), 57014 (cancelled, our timeouts), 57P01-57P03 (shutdown), class 53 (resources); I/O and connect errors; timeouts | `SQLITE_BUSY*`, `SQLITE_LOCKED*`, timeouts |
//! | [`Constraint`](SqlErrorKind::Constraint) | class 23 | `SQLITE_CONSTRAINT*` |
//! | [`Failed`](SqlErrorKind::Failed) | anything else, including TLS certificate failures and parameters that cannot be bound | anything else |
//!
//! Messages start with the connection's name: "connection `ops`: duplicate
//! key value violates unique constraint \"t_pkey\"; detail: Key (id)=(1)
//! already exists."; `code` holds the SQLSTATE (`23505`) or SQLite's
//! extended result code name (`SQLITE_CONSTRAINT_UNIQUE`). A password never
//! appears in a message or in `Debug` output.
//!
//! [tokio-postgres]: https://docs.rs/tokio-postgres
//! [rusqlite]: https://docs.rs/rusqlite

mod numeric;
mod pg_types;
mod postgres;
mod sqlite;
pub(crate) mod time;
mod tls;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Locks `m`, also after a panic elsewhere poisoned it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `now + timeout`, saturating far in the future.
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

/// Which SQL a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// PostgreSQL, over the network.
    Postgres,
    /// An SQLite database file.
    Sqlite,
}

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

/// The classes of failure a plugin reacts to differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlErrorKind {
    /// The connection is not granted, or does not exist (set by the host's
    /// bindings; the backend never returns it).
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

/// TLS for a PostgreSQL connection (SQLite ignores it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tls {
    /// Plain TCP.
    Disable,
    /// Encrypted, but the server's certificate is not checked (libpq's
    /// `sslmode=require`).
    Require,
    /// Encrypted; the certificate chain must lead to a trusted root
    /// (`ca_file`, else the Mozilla roots) and name the URL's host.
    VerifyFull,
}

/// A transaction's isolation level (PostgreSQL; SQLite is always
/// serializable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Isolation {
    /// `READ COMMITTED`, PostgreSQL's default.
    #[default]
    ReadCommitted,
    /// `REPEATABLE READ`.
    RepeatableRead,
    /// `SERIALIZABLE`.
    Serializable,
}

impl Isolation {
    /// The SQL words: `READ COMMITTED`...
    pub fn sql(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "READ COMMITTED",
            Isolation::RepeatableRead => "REPEATABLE READ",
            Isolation::Serializable => "SERIALIZABLE",
        }
    }
}

impl FromStr for Isolation {
    type Err = String;

    /// The WIT contract's spelling: `read-committed`, `repeatable-read`,
    /// `serializable` (also with spaces or underscores, any case).
    fn from_str(s: &str) -> Result<Isolation, String> {
        match s
            .trim()
            .to_ascii_lowercase()
            .replace([' ', '_'], "-")
            .as_str()
        {
            "read-committed" => Ok(Isolation::ReadCommitted),
            "repeatable-read" => Ok(Isolation::RepeatableRead),
            "serializable" => Ok(Isolation::Serializable),
            _ => Err(format!(
                "unknown isolation level `{s}`: use read-committed, repeatable-read or serializable"
            )),
        }
    }
}

/// Everything needed to open a named connection. The hub keeps one pool per
/// distinct spec, so a changed spec (a new password, another URL) gets
/// fresh connections.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ConnectionSpec {
    /// The connection's name in the manifest; prefixes every error message.
    pub name: String,
    /// PostgreSQL or SQLite.
    pub dialect: Dialect,
    /// PostgreSQL: `postgres://user@host:port/db?params`, without the
    /// password (libpq's key=value form works too). SQLite: an absolute
    /// file path.
    pub url: String,
    /// The PostgreSQL password, from the environment; never printed.
    pub password: Option<String>,
    /// PostgreSQL TLS.
    pub tls: Tls,
    /// PEM file of the certificate authorities trusted for
    /// [`Tls::VerifyFull`]; none means the Mozilla roots.
    pub ca_file: Option<PathBuf>,
    /// The most connections open at once for this spec (0 counts as 1).
    pub pool_size: u32,
}

impl fmt::Debug for ConnectionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSpec")
            .field("name", &self.name)
            .field("dialect", &self.dialect)
            .field("url", &ferry_manifest::redact_url(&self.url))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("ca_file", &self.ca_file)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

impl ConnectionSpec {
    pub(crate) fn max_connections(&self) -> usize {
        self.pool_size.max(1) as usize
    }
}

/// The process's SQL connections: one per process, cheap to clone, shared
/// by every plugin instance. Creating it starts nothing; the PostgreSQL
/// runtime starts on the first PostgreSQL call, and pools open connections
/// when calls need them.
#[derive(Clone, Default)]
pub struct SqlHub {
    inner: Arc<HubInner>,
}

#[derive(Default)]
struct HubInner {
    postgres: postgres::PgHub,
    sqlite: sqlite::SqliteHub,
}

impl fmt::Debug for SqlHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlHub").finish_non_exhaustive()
    }
}

impl SqlHub {
    /// A hub with no connections and no threads.
    pub fn new() -> SqlHub {
        SqlHub::default()
    }

    /// Runs a statement that returns rows, in a transaction of its own.
    pub fn query(
        &self,
        spec: &ConnectionSpec,
        sql: &str,
        params: Vec<SqlValue>,
        timeout: Duration,
    ) -> Result<SqlRows, SqlError> {
        refuse_transaction_control(&spec.name, sql, false)?;
        match spec.dialect {
            Dialect::Postgres => self.inner.postgres.query(spec, sql, params, timeout),
            Dialect::Sqlite => self.inner.sqlite.query(spec, sql, params, timeout),
        }
    }

    /// Runs a statement in a transaction of its own; returns the number of
    /// rows it changed.
    pub fn execute(
        &self,
        spec: &ConnectionSpec,
        sql: &str,
        params: Vec<SqlValue>,
        timeout: Duration,
    ) -> Result<u64, SqlError> {
        refuse_transaction_control(&spec.name, sql, false)?;
        match spec.dialect {
            Dialect::Postgres => self.inner.postgres.execute(spec, sql, params, timeout),
            Dialect::Sqlite => self.inner.sqlite.execute(spec, sql, params, timeout),
        }
    }

    /// Starts a transaction on a connection of its own from the pool.
    pub fn begin(
        &self,
        spec: &ConnectionSpec,
        isolation: Isolation,
        read_only: bool,
        timeout: Duration,
    ) -> Result<SqlTransaction, SqlError> {
        let backend = match spec.dialect {
            Dialect::Postgres => TxBackend::Postgres(
                self.inner
                    .postgres
                    .begin(spec, isolation, read_only, timeout)?,
            ),
            Dialect::Sqlite => {
                TxBackend::Sqlite(self.inner.sqlite.begin(spec, read_only, timeout)?)
            }
        };
        Ok(SqlTransaction {
            name: spec.name.clone(),
            state: TxState::Open,
            backend,
        })
    }

    /// Closes the idle connections of every pool and forgets the pools (the
    /// connections in use close when they are given back). For a reload
    /// that removed or changed connections; the next call reconnects.
    pub fn close_idle(&self) {
        self.inner.postgres.close_idle();
        self.inner.sqlite.close_idle();
    }
}

/// An open transaction holding one pooled connection until
/// [`commit`](SqlTransaction::commit), [`rollback`](SqlTransaction::rollback)
/// or drop, which rolls back.
pub struct SqlTransaction {
    name: String,
    state: TxState,
    backend: TxBackend,
}

impl fmt::Debug for SqlTransaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlTransaction")
            .field("connection", &self.name)
            .field("state", &self.state)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxState {
    Open,
    Committed,
    RolledBack,
    /// A statement failed and the transaction was rolled back.
    Aborted,
}

enum TxBackend {
    Postgres(postgres::PgTransaction),
    Sqlite(sqlite::SqliteTransaction),
}

impl TxBackend {
    fn query(
        &mut self,
        sql: &str,
        params: Vec<SqlValue>,
        t: Duration,
    ) -> Result<SqlRows, SqlError> {
        match self {
            TxBackend::Postgres(tx) => tx.query(sql, params, t),
            TxBackend::Sqlite(tx) => tx.query(sql, params, t),
        }
    }

    fn execute(&mut self, sql: &str, params: Vec<SqlValue>, t: Duration) -> Result<u64, SqlError> {
        match self {
            TxBackend::Postgres(tx) => tx.execute(sql, params, t),
            TxBackend::Sqlite(tx) => tx.execute(sql, params, t),
        }
    }

    fn execute_many(
        &mut self,
        sql: &str,
        params: Vec<Vec<SqlValue>>,
        t: Duration,
    ) -> Result<u64, SqlError> {
        match self {
            TxBackend::Postgres(tx) => tx.execute_many(sql, params, t),
            TxBackend::Sqlite(tx) => tx.execute_many(sql, params, t),
        }
    }

    fn commit(&mut self, t: Duration) -> Result<(), SqlError> {
        match self {
            TxBackend::Postgres(tx) => tx.finish(true, t),
            TxBackend::Sqlite(tx) => tx.finish(true, t),
        }
    }

    fn rollback(&mut self, t: Duration) -> Result<(), SqlError> {
        match self {
            TxBackend::Postgres(tx) => tx.finish(false, t),
            TxBackend::Sqlite(tx) => tx.finish(false, t),
        }
    }

    /// After a failure: roll back as well as possible, give the connection
    /// back (or drop it).
    fn abort(&mut self) {
        match self {
            TxBackend::Postgres(tx) => tx.abort(),
            TxBackend::Sqlite(tx) => tx.abort(),
        }
    }
}

impl SqlTransaction {
    fn check_open(&self) -> Result<(), SqlError> {
        match self.state {
            TxState::Open => Ok(()),
            TxState::Aborted => Err(SqlError::failed(
                &self.name,
                "transaction already finished: it was rolled back after a statement failed",
            )),
            TxState::Committed | TxState::RolledBack => {
                Err(SqlError::failed(&self.name, "transaction already finished"))
            }
        }
    }

    /// A transaction-control statement is refused before it runs, and does
    /// not end the transaction.
    fn check_statement(&self, sql: &str) -> Result<(), SqlError> {
        self.check_open()?;
        refuse_transaction_control(&self.name, sql, true)
    }

    fn run<T>(
        &mut self,
        f: impl FnOnce(&mut TxBackend) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        self.check_open()?;
        let result = f(&mut self.backend);
        if result.is_err() {
            self.backend.abort();
            self.state = TxState::Aborted;
        }
        result
    }

    /// Runs a statement that returns rows.
    pub fn query(
        &mut self,
        sql: &str,
        params: Vec<SqlValue>,
        timeout: Duration,
    ) -> Result<SqlRows, SqlError> {
        self.check_statement(sql)?;
        self.run(|b| b.query(sql, params, timeout))
    }

    /// Runs a statement; returns the number of rows it changed.
    pub fn execute(
        &mut self,
        sql: &str,
        params: Vec<SqlValue>,
        timeout: Duration,
    ) -> Result<u64, SqlError> {
        self.check_statement(sql)?;
        self.run(|b| b.execute(sql, params, timeout))
    }

    /// Runs one statement once per parameter list: prepared once, and on
    /// PostgreSQL pipelined (sent without waiting for each answer). Returns
    /// the total number of rows changed. The timeout covers the whole batch.
    pub fn execute_many(
        &mut self,
        sql: &str,
        params: Vec<Vec<SqlValue>>,
        timeout: Duration,
    ) -> Result<u64, SqlError> {
        self.check_statement(sql)?;
        self.run(|b| b.execute_many(sql, params, timeout))
    }

    /// Commits. Afterwards every method fails with "transaction already
    /// finished". A failed commit leaves the transaction rolled back.
    pub fn commit(&mut self, timeout: Duration) -> Result<(), SqlError> {
        self.run(|b| b.commit(timeout))?;
        self.state = TxState::Committed;
        Ok(())
    }

    /// Rolls back. `Ok` too when a failed statement already rolled it back.
    pub fn rollback(&mut self, timeout: Duration) -> Result<(), SqlError> {
        if self.state == TxState::Aborted {
            return Ok(());
        }
        self.check_open()?;
        let result = self.backend.rollback(timeout);
        self.state = TxState::RolledBack;
        result
    }

    /// Whether commit or rollback may still be called.
    pub fn is_open(&self) -> bool {
        self.state == TxState::Open
    }
}

/// The first keyword of a statement, after blanks and comments.
fn first_keyword(sql: &str) -> String {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, tail)| tail);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, tail)| tail);
        } else {
            break;
        }
    }
    rest.chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase()
}

/// Transactions are the interface's business (`begin`, `commit`,
/// `rollback`): a `BEGIN` run as a plain statement would leave a pooled
/// connection inside a transaction, a `COMMIT` would end one behind the
/// host's back. Savepoints are allowed inside a transaction.
fn refuse_transaction_control(
    connection: &str,
    sql: &str,
    in_transaction: bool,
) -> Result<(), SqlError> {
    let keyword = first_keyword(sql);
    let refused = match keyword.as_str() {
        "BEGIN" | "START" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" => true,
        "SAVEPOINT" | "RELEASE" => !in_transaction,
        _ => false,
    };
    if refused {
        return Err(SqlError::failed(
            connection,
            format!(
                "`{keyword}` cannot run as a statement: use the interface's begin, commit and \
                 rollback for transactions"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
