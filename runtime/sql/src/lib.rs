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
//! # Where things are
//!
//! [`spec`](ConnectionSpec) (connections, isolation, limits), `value` (values,
//! columns, rows), `error`, `hub` ([`SqlHub`]: routing calls and starting
//! transactions), `transaction` ([`SqlTransaction`]), `reaper` (rolling back
//! transactions held too long), `statement` (the first-keyword check), the
//! backends `postgres` (its pools in `postgres/pool.rs`) and `sqlite`, and
//! their helpers `pg_types`, `numeric`, `time` and `tls`.
//!
//! [tokio-postgres]: https://docs.rs/tokio-postgres
//! [rusqlite]: https://docs.rs/rusqlite

mod error;
mod hub;
mod numeric;
mod pg_types;
mod postgres;
mod reaper;
mod spec;
mod sqlite;
mod statement;
mod time;
mod tls;
mod transaction;
mod value;

pub use error::{SqlError, SqlErrorKind};
pub use hub::SqlHub;
pub use spec::{ConnectionSpec, DEFAULT_TRANSACTION_TIMEOUT, Dialect, Isolation, SqlLimits, Tls};
pub use time::parse_timestamp;
pub use transaction::{SqlTransaction, TxWatch};
pub use value::{SqlColumn, SqlRows, SqlValue};

use error::human_bytes;
#[cfg(test)]
use statement::first_keyword;

use std::sync::{Mutex, MutexGuard, PoisonError};
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

#[cfg(test)]
mod tests;
