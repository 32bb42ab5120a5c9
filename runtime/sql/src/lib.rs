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
//! [`SqlTransaction::commit`], [`SqlTransaction::rollback`], drop (which
//! rolls back) or its connection's `transaction_timeout` (below). A
//! statement that fails inside a transaction rolls the whole transaction
//! back at once (PostgreSQL would refuse anything but a rollback
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
//! transaction) is refused by a look at the statement's first keyword:
//! transactions go through [`SqlHub::begin`]. That check only gives the
//! honest mistake a clear message; it does not see a `BEGIN` behind a
//! nested comment or an empty statement (`/* /* */ */ BEGIN`, `;BEGIN`),
//! and nothing relies on it: see the pool-return check below. A session
//! setting changed with `SET` stays on the pooled connection for later
//! calls: prefer `SET LOCAL` inside a transaction.
//!
//! # What a plugin may not do with a connection
//!
//! The statements come from plugins, so the hub bounds what they reach,
//! hold and bring back. A refusal is [`SqlErrorKind::Denied`] with a message
//! saying what was refused; the host's bindings log and audit every denied
//! error they hand to a plugin (capability `sql`).
//!
//! - **Other files (SQLite).** Every connection is opened with an
//!   authorizer that refuses `ATTACH` (which `VACUUM INTO` and `VACUUM` run
//!   too, so both are refused), `DETACH`, `load_extension()`, and every
//!   `PRAGMA` but `table_info`, `table_xinfo`, `index_list`, `index_info`,
//!   `index_xinfo` and `foreign_key_list` (what the shipped connectors read,
//!   as statements or table-valued functions); the host's own `PRAGMA
//!   query_only` passes only while the host runs it. `SQLITE_LIMIT_ATTACHED`
//!   is 0 (an `ATTACH` the authorizer let through would still fail) and
//!   `SQLITE_DBCONFIG_DEFENSIVE` is on. rusqlite is built without its
//!   `load_extension` feature, so extension loading, off by default in
//!   SQLite, is never turned on.
//! - **A transaction left open.** A call outside a transaction must give
//!   its connection back outside one, whatever its text was. SQLite:
//!   `is_autocommit()` after the call. PostgreSQL (tokio-postgres discards
//!   the server's transaction status): two prepared statements are sent
//!   right behind the call's own, in the same flight, with a fresh random
//!   value; the first sets a transaction-local setting to it, the second
//!   reads it back, which only finds it inside a transaction block (outside
//!   one each runs in a transaction of its own). When that answer is
//!   missing (a timeout), `SELECT transaction_timestamp() <>
//!   statement_timestamp()` asks in a round trip of its own. A connection
//!   found inside a transaction is rolled back (or dropped) and the call
//!   denied, so no later user of the pooled connection writes into a
//!   transaction nobody commits. Measured on this tree (debug host, local
//!   PostgreSQL, 2 cores shared with other builds, so ±30% between runs),
//!   per autocommit call of 150-300 µs: on loopback the pipelined check
//!   and the sequential one both add 20-90 µs; through a test proxy that
//!   delays traffic 250 µs each way (about 1 ms per round trip), the
//!   sequential one adds 0.9 ms and the pipelined one 0.2-0.4 ms (the
//!   proxy delays the pipelined messages one after another; a network
//!   would not). An unconditional `ROLLBACK` costs a round trip too,
//!   cannot tell what it found, and leaves a warning in the server's log
//!   for every call. The sink's writes run in transactions and do not pay
//!   the check: the `databases` benchmark's upsert measured 68,000-75,000
//!   rows/s without it and 71,000-76,000 with it (20,000 rows, dev
//!   profile).
//! - **Holding connections.** A transaction open longer than its
//!   connection's `transaction_timeout` (manifest `transaction_timeout_ms`,
//!   [`DEFAULT_TRANSACTION_TIMEOUT`] by default) is rolled back and its
//!   connection given back: by the call that finds it expired, or by the
//!   hub's reaper thread (`ferry-sql-reaper`, started with the first
//!   transaction) while its holder does nothing; later calls on it fail
//!   saying so. The bindings let a plugin hold at most `pool_size` open
//!   transactions per connection ([`SqlTransaction::watch`] counts them).
//! - **Large results.** [`SqlLimits::max_result_bytes`] (the plugin's
//!   `max_output_mb`) bounds a query's rows while they are read: each value
//!   counts its bytes plus the size of an [`SqlValue`], each row the size
//!   of a `Vec`, and the call fails as [`SqlErrorKind::Failed`] naming the
//!   limit and the fix (page with `LIMIT` and a keyset, or raise
//!   `max_output_mb`) once they pass it. SQLite counts before copying each
//!   value and sets `SQLITE_LIMIT_LENGTH` per call to the limit plus the
//!   bytes of the call's parameters, so no string, blob or row a statement
//!   builds or loads is larger (`zeroblob(900000000)` fails at once; so
//!   does `substr(doc, 1, 10)` of a stored value over the limit). PostgreSQL
//!   reads rows as a stream (`query_raw`), counts each before decoding it,
//!   and past the limit cancels the statement and closes the connection.
//!   tokio-postgres has no cap on one protocol message, so a single row
//!   arrives whole before it can be counted: one row can cost what the
//!   server puts in one `DataRow` (PostgreSQL caps a value at 1 GB); the
//!   row is then refused before it is decoded.
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
//! | [`Denied`](SqlErrorKind::Denied) | a transaction left open by a statement | the same; a statement the authorizer refused (`SQLITE_AUTH`) |
//! | [`Retryable`](SqlErrorKind::Retryable) | SQLSTATE class 08 (connection), 40001 (serialization), 40P01 (deadlock), 55P03 (lock not available), 57014 (cancelled, our timeouts), 57P01-57P03 (shutdown), class 53 (resources); I/O and connect errors; timeouts | `SQLITE_BUSY*`, `SQLITE_LOCKED*`, timeouts |
//! | [`Constraint`](SqlErrorKind::Constraint) | class 23 | `SQLITE_CONSTRAINT*` |
//! | [`Failed`](SqlErrorKind::Failed) | anything else, including TLS certificate failures, parameters that cannot be bound and results over the limit | anything else, including `SQLITE_TOOBIG` past `SQLITE_LIMIT_LENGTH` |
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
mod time;
mod tls;

pub use time::parse_timestamp;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, TryLockError, Weak};
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
    /// The connection is not granted, or does not exist (the host's
    /// bindings), or the statement did what plugins may not: an SQLite
    /// `ATTACH`, `DETACH` or unlisted `PRAGMA`, a transaction left open
    /// outside [`SqlHub::begin`], a plugin's `pool`-th open transaction.
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
    /// A plugin may hold at most this many open transactions on it.
    pub pool_size: u32,
    /// How long a transaction may stay open: past it the hub rolls it back
    /// and gives its connection back to the pool, even while the plugin
    /// does nothing ([`DEFAULT_TRANSACTION_TIMEOUT`] unless the manifest
    /// sets `transaction_timeout_ms`).
    pub transaction_timeout: Duration,
}

/// How long a transaction may stay open unless the connection says
/// otherwise: 30 s.
pub const DEFAULT_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// What one plugin's calls may bring back: the host's side of its
/// `max_output_mb` grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlLimits {
    /// The most bytes a query's result may take on the host, counting each
    /// value's bytes and a fixed cost per value and per row
    /// ([`SqlLimits::value_cost`]): the host stops reading rows past it and
    /// the call fails. On SQLite it also bounds every string, blob and row
    /// a statement builds (`SQLITE_LIMIT_LENGTH`, plus the bytes of the
    /// call's own parameters).
    pub max_result_bytes: usize,
}

impl SqlLimits {
    /// `max_output_mb`'s default, 32 MiB.
    pub const DEFAULT_MAX_RESULT_BYTES: usize = 32 << 20;

    /// What one value counts against [`SqlLimits::max_result_bytes`]: its
    /// bytes and the size of an [`SqlValue`].
    pub fn value_cost(payload: usize) -> usize {
        std::mem::size_of::<SqlValue>().saturating_add(payload)
    }

    /// What one row counts besides its values.
    pub const ROW_COST: usize = std::mem::size_of::<Vec<SqlValue>>();
}

impl Default for SqlLimits {
    fn default() -> SqlLimits {
        SqlLimits {
            max_result_bytes: SqlLimits::DEFAULT_MAX_RESULT_BYTES,
        }
    }
}

/// A size in bytes as people read it: `16 MiB`, `1.5 KiB`, `12 bytes`.
fn human_bytes(n: usize) -> String {
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
            .field("transaction_timeout", &self.transaction_timeout)
            .finish()
    }
}

impl ConnectionSpec {
    /// The most connections the pool opens (and transactions a plugin may
    /// hold) on this connection: `pool_size`, at least 1.
    pub fn max_connections(&self) -> usize {
        self.pool_size.max(1) as usize
    }
}

/// The process's SQL connections: one per process, cheap to clone, shared
/// by every plugin instance. Creating it starts nothing; the PostgreSQL
/// runtime starts on the first PostgreSQL call, the thread that rolls back
/// transactions held too long on the first transaction, and pools open
/// connections when calls need them.
#[derive(Clone, Default)]
pub struct SqlHub {
    inner: Arc<HubInner>,
}

#[derive(Default)]
struct HubInner {
    postgres: postgres::PgHub,
    sqlite: sqlite::SqliteHub,
    reaper: Arc<Reaper>,
}

impl Drop for HubInner {
    fn drop(&mut self) {
        self.reaper.close();
    }
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

    /// Runs a statement that returns rows, in a transaction of its own,
    /// with the default [`SqlLimits`].
    pub fn query(
        &self,
        spec: &ConnectionSpec,
        sql: &str,
        params: Vec<SqlValue>,
        timeout: Duration,
    ) -> Result<SqlRows, SqlError> {
        self.query_with(spec, sql, params, timeout, SqlLimits::default())
    }

    /// Runs a statement that returns rows, in a transaction of its own; the
    /// result may take at most `limits.max_result_bytes`.
    pub fn query_with(
        &self,
        spec: &ConnectionSpec,
        sql: &str,
        params: Vec<SqlValue>,
        timeout: Duration,
        limits: SqlLimits,
    ) -> Result<SqlRows, SqlError> {
        refuse_transaction_control(&spec.name, sql, false)?;
        match spec.dialect {
            Dialect::Postgres => self
                .inner
                .postgres
                .query(spec, sql, params, timeout, limits),
            Dialect::Sqlite => self.inner.sqlite.query(spec, sql, params, timeout, limits),
        }
    }

    /// Runs a statement in a transaction of its own; returns the number of
    /// rows it changed. The default [`SqlLimits`].
    pub fn execute(
        &self,
        spec: &ConnectionSpec,
        sql: &str,
        params: Vec<SqlValue>,
        timeout: Duration,
    ) -> Result<u64, SqlError> {
        self.execute_with(spec, sql, params, timeout, SqlLimits::default())
    }

    /// Runs a statement in a transaction of its own; returns the number of
    /// rows it changed.
    pub fn execute_with(
        &self,
        spec: &ConnectionSpec,
        sql: &str,
        params: Vec<SqlValue>,
        timeout: Duration,
        limits: SqlLimits,
    ) -> Result<u64, SqlError> {
        refuse_transaction_control(&spec.name, sql, false)?;
        match spec.dialect {
            Dialect::Postgres => self.inner.postgres.execute(spec, sql, params, timeout),
            Dialect::Sqlite => self
                .inner
                .sqlite
                .execute(spec, sql, params, timeout, limits),
        }
    }

    /// Starts a transaction on a connection of its own from the pool, with
    /// the default [`SqlLimits`].
    pub fn begin(
        &self,
        spec: &ConnectionSpec,
        isolation: Isolation,
        read_only: bool,
        timeout: Duration,
    ) -> Result<SqlTransaction, SqlError> {
        self.begin_with(spec, isolation, read_only, timeout, SqlLimits::default())
    }

    /// Starts a transaction on a connection of its own from the pool. It is
    /// rolled back and its connection given back once it has been open for
    /// the spec's `transaction_timeout`.
    pub fn begin_with(
        &self,
        spec: &ConnectionSpec,
        isolation: Isolation,
        read_only: bool,
        timeout: Duration,
        limits: SqlLimits,
    ) -> Result<SqlTransaction, SqlError> {
        let started = Instant::now();
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
        let lifetime = spec.transaction_timeout;
        let shared = Arc::new(TxShared {
            name: spec.name.clone(),
            limits,
            lifetime,
            expires: started
                .checked_add(lifetime)
                .unwrap_or_else(|| deadline_after(lifetime)),
            open: Arc::new(AtomicBool::new(true)),
            inner: Mutex::new(TxInner {
                state: TxState::Open,
                backend,
            }),
        });
        self.inner.reaper.watch(&shared);
        Ok(SqlTransaction { shared })
    }

    /// Closes the idle connections of every pool and forgets the pools (the
    /// connections in use close when they are given back). For a reload
    /// that removed or changed connections; the next call reconnects.
    pub fn close_idle(&self) {
        self.inner.postgres.close_idle();
        self.inner.sqlite.close_idle();
    }
}

/// The timeout of the rollback of a transaction held too long.
const EXPIRY_ROLLBACK_TIMEOUT: Duration = Duration::from_secs(5);

/// An open transaction holding one pooled connection until
/// [`commit`](SqlTransaction::commit), [`rollback`](SqlTransaction::rollback),
/// drop (which rolls back), or its connection's `transaction_timeout`
/// (which rolls back too).
pub struct SqlTransaction {
    shared: Arc<TxShared>,
}

impl fmt::Debug for SqlTransaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlTransaction")
            .field("connection", &self.shared.name)
            .field("open", &self.is_open())
            .finish()
    }
}

/// Whether a transaction still holds its connection, without keeping the
/// transaction alive: how the host counts a plugin's open transactions.
#[derive(Debug, Clone)]
pub struct TxWatch(Arc<AtomicBool>);

impl TxWatch {
    /// `false` once the transaction committed, rolled back, failed, expired
    /// or was dropped.
    pub fn holds_connection(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The transaction, shared with the hub's reaper thread.
struct TxShared {
    name: String,
    limits: SqlLimits,
    lifetime: Duration,
    /// When it is rolled back if still open.
    expires: Instant,
    /// `true` while the transaction holds its connection.
    open: Arc<AtomicBool>,
    /// Locked for the length of each call, so the reaper never rolls back
    /// under a running statement.
    inner: Mutex<TxInner>,
}

struct TxInner {
    state: TxState,
    backend: TxBackend,
}

impl Drop for TxShared {
    fn drop(&mut self) {
        // The backend's own drop rolls back and gives the connection back.
        self.open.store(false, Ordering::Release);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxState {
    Open,
    Committed,
    RolledBack,
    /// A statement failed and the transaction was rolled back.
    Aborted,
    /// It stayed open past its connection's `transaction_timeout` and was
    /// rolled back.
    Expired,
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
        limits: SqlLimits,
    ) -> Result<SqlRows, SqlError> {
        match self {
            TxBackend::Postgres(tx) => tx.query(sql, params, t, limits),
            TxBackend::Sqlite(tx) => tx.query(sql, params, t, limits),
        }
    }

    fn execute(
        &mut self,
        sql: &str,
        params: Vec<SqlValue>,
        t: Duration,
        limits: SqlLimits,
    ) -> Result<u64, SqlError> {
        match self {
            TxBackend::Postgres(tx) => tx.execute(sql, params, t),
            TxBackend::Sqlite(tx) => tx.execute(sql, params, t, limits),
        }
    }

    fn execute_many(
        &mut self,
        sql: &str,
        params: Vec<Vec<SqlValue>>,
        t: Duration,
        limits: SqlLimits,
    ) -> Result<u64, SqlError> {
        match self {
            TxBackend::Postgres(tx) => tx.execute_many(sql, params, t),
            TxBackend::Sqlite(tx) => tx.execute_many(sql, params, t, limits),
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

impl TxShared {
    fn set_state(&self, inner: &mut TxInner, state: TxState) {
        inner.state = state;
        if state != TxState::Open {
            self.open.store(false, Ordering::Release);
        }
    }

    /// Rolls back and gives the connection back when the transaction has
    /// been open too long.
    fn expire_if_due(&self, inner: &mut TxInner) {
        if inner.state == TxState::Open && Instant::now() >= self.expires {
            self.expire(inner);
        }
    }

    fn expire(&self, inner: &mut TxInner) {
        if inner.state != TxState::Open {
            return;
        }
        // Marked first: whoever gets the connection next sees it released.
        self.set_state(inner, TxState::Expired);
        let rolled_back = inner.backend.rollback(EXPIRY_ROLLBACK_TIMEOUT);
        tracing::warn!(
            connection = %self.name,
            open_for = ?self.lifetime,
            rollback = ?rolled_back.err().map(|e| e.message),
            "a plugin's transaction stayed open past the connection's transaction_timeout_ms: rolled back, its connection given back"
        );
    }

    /// For the reaper: expires the transaction unless a call is running on
    /// it, in which case it says when to try again.
    fn try_expire(&self) -> Option<Instant> {
        match self.inner.try_lock() {
            Ok(mut inner) => self.expire(&mut inner),
            Err(TryLockError::Poisoned(p)) => self.expire(&mut p.into_inner()),
            Err(TryLockError::WouldBlock) => {
                return Some(Instant::now() + Duration::from_millis(100));
            }
        }
        None
    }

    fn check_open(&self, inner: &TxInner) -> Result<(), SqlError> {
        match inner.state {
            TxState::Open => Ok(()),
            TxState::Aborted => Err(SqlError::failed(
                &self.name,
                "transaction already finished: it was rolled back after a statement failed",
            )),
            TxState::Expired => Err(SqlError::failed(
                &self.name,
                format!(
                    "transaction already finished: the host rolled it back after it had been \
                     open for {:?}, the connection's limit (`transaction_timeout_ms`); commit \
                     sooner, or raise the limit on the connection",
                    self.lifetime
                ),
            )),
            TxState::Committed | TxState::RolledBack => {
                Err(SqlError::failed(&self.name, "transaction already finished"))
            }
        }
    }
}

impl SqlTransaction {
    /// A handle saying whether this transaction still holds its connection.
    pub fn watch(&self) -> TxWatch {
        TxWatch(self.shared.open.clone())
    }

    /// Runs `f` on the open transaction; a failure rolls the transaction
    /// back. `sql` (a statement) is checked for transaction control first.
    fn run<T>(
        &mut self,
        sql: Option<&str>,
        f: impl FnOnce(&mut TxBackend, SqlLimits) -> Result<T, SqlError>,
        done: Option<TxState>,
    ) -> Result<T, SqlError> {
        let shared = &*self.shared;
        let mut inner = lock(&shared.inner);
        shared.expire_if_due(&mut inner);
        shared.check_open(&inner)?;
        if let Some(sql) = sql {
            // Refused before it runs; the transaction stays open.
            refuse_transaction_control(&shared.name, sql, true)?;
        }
        let result = f(&mut inner.backend, shared.limits);
        if result.is_err() {
            inner.backend.abort();
            shared.set_state(&mut inner, TxState::Aborted);
        } else if let Some(state) = done {
            // Under the same lock: the reaper never sees it half finished.
            shared.set_state(&mut inner, state);
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
        self.run(
            Some(sql),
            |b, limits| b.query(sql, params, timeout, limits),
            None,
        )
    }

    /// Runs a statement; returns the number of rows it changed.
    pub fn execute(
        &mut self,
        sql: &str,
        params: Vec<SqlValue>,
        timeout: Duration,
    ) -> Result<u64, SqlError> {
        self.run(
            Some(sql),
            |b, limits| b.execute(sql, params, timeout, limits),
            None,
        )
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
        self.run(
            Some(sql),
            |b, limits| b.execute_many(sql, params, timeout, limits),
            None,
        )
    }

    /// Commits. Afterwards every method fails with "transaction already
    /// finished". A failed commit leaves the transaction rolled back.
    pub fn commit(&mut self, timeout: Duration) -> Result<(), SqlError> {
        self.run(None, |b, _| b.commit(timeout), Some(TxState::Committed))
    }

    /// Rolls back. `Ok` too when a failed statement, or the host at the
    /// connection's `transaction_timeout`, already rolled it back.
    pub fn rollback(&mut self, timeout: Duration) -> Result<(), SqlError> {
        let shared = &*self.shared;
        let mut inner = lock(&shared.inner);
        shared.expire_if_due(&mut inner);
        if matches!(inner.state, TxState::Aborted | TxState::Expired) {
            return Ok(());
        }
        shared.check_open(&inner)?;
        let result = inner.backend.rollback(timeout);
        shared.set_state(&mut inner, TxState::RolledBack);
        result
    }

    /// Whether commit or rollback may still be called: `false` once the
    /// transaction finished, failed, or was rolled back for being open too
    /// long.
    pub fn is_open(&self) -> bool {
        self.shared.open.load(Ordering::Acquire)
    }
}

/// The thread that rolls back transactions held past their connection's
/// `transaction_timeout` while the plugin holding them does nothing.
#[derive(Default)]
struct Reaper {
    state: Mutex<ReaperState>,
    wake: Condvar,
}

#[derive(Default)]
struct ReaperState {
    /// Every transaction begun since the reaper last looked, and every one
    /// still open then.
    watched: Vec<Weak<TxShared>>,
    started: bool,
    /// Something was added since the reaper last looked.
    woken: bool,
    closed: bool,
}

impl Reaper {
    fn watch(self: &Arc<Self>, tx: &Arc<TxShared>) {
        let mut state = lock(&self.state);
        if !state.started {
            let me = self.clone();
            match std::thread::Builder::new()
                .name("ferry-sql-reaper".into())
                .spawn(move || me.run())
            {
                Ok(_) => state.started = true,
                Err(e) => {
                    // Calls still find an expired transaction and roll it back.
                    tracing::warn!(
                        error = %e,
                        "cannot start the thread that rolls back transactions held too long"
                    );
                    return;
                }
            }
        }
        state.watched.push(Arc::downgrade(tx));
        state.woken = true;
        drop(state);
        self.wake.notify_all();
    }

    fn close(&self) {
        lock(&self.state).closed = true;
        self.wake.notify_all();
    }

    fn run(self: Arc<Self>) {
        let mut state = lock(&self.state);
        loop {
            if state.closed {
                return;
            }
            let seen = state.watched.len();
            let watched = state.watched.clone();
            state.woken = false;
            drop(state);
            // Rolling back blocks on the database: not under the lock.
            let now = Instant::now();
            let mut next: Option<Instant> = None;
            let mut keep = Vec::with_capacity(watched.len());
            for weak in watched {
                let Some(tx) = weak.upgrade() else { continue };
                if !tx.open.load(Ordering::Acquire) {
                    continue;
                }
                let again = if tx.expires <= now {
                    tx.try_expire()
                } else {
                    Some(tx.expires)
                };
                if let Some(at) = again {
                    next = Some(next.map_or(at, |n| n.min(at)));
                    keep.push(weak);
                }
            }
            state = lock(&self.state);
            let at = seen.min(state.watched.len());
            let added = state.watched.split_off(at);
            state.watched = keep;
            state.watched.extend(added);
            if state.woken || state.closed {
                continue;
            }
            let wait = next.map_or(Duration::from_secs(3600), |at| {
                at.saturating_duration_since(Instant::now())
            });
            state = self
                .wake
                .wait_timeout(state, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
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
