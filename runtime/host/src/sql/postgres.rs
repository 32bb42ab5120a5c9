//! PostgreSQL through tokio-postgres, on a runtime of the hub's own.
//!
//! - [`SqlRuntime`]: a two-thread tokio runtime started on first use. A
//!   synchronous call spawns its future there and waits on a std channel,
//!   so callers may be plain threads or `block_in_place` sections of another
//!   runtime.
//! - [`PgPool`]: one per [`ConnectionSpec`]; a semaphore of `pool_size`
//!   permits bounds the connections open at once, idle ones wait in a list.
//!   A connection that failed at the connection level, or that is given back
//!   inside a transaction that did not end cleanly, is dropped.
//! - [`Pooled`]: a leased connection. Every statement runs through
//!   [`guarded`], which at the deadline sends the server a cancel request and
//!   waits (a bounded time) for the statement to end, so the connection stays
//!   in a known state.

use std::collections::HashMap;
use std::future::Future;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, Row, Statement};

use super::pg_types::{self, BindError, Param, Raw};
use super::tls::{self, MakeRustls};
use super::{
    ConnectionSpec, Isolation, SqlColumn, SqlError, SqlErrorKind, SqlRows, SqlValue, Tls,
    deadline_after, lock,
};

/// How long a timed-out statement gets to end after its cancel request
/// before the connection is given up.
const CANCEL_GRACE: Duration = Duration::from_secs(5);
/// How many `execute_many` statements may be in flight at once.
const PIPELINE_DEPTH: usize = 256;
/// The timeout of the rollback that a dropped or failed transaction runs.
const ROLLBACK_TIMEOUT: Duration = Duration::from_secs(5);

/// The tokio runtime all PostgreSQL work runs on; started on first use.
#[derive(Default)]
struct SqlRuntime {
    rt: Mutex<Option<Runtime>>,
}

impl SqlRuntime {
    fn handle(&self) -> Result<Handle, String> {
        let mut guard = lock(&self.rt);
        if let Some(rt) = guard.as_ref() {
            return Ok(rt.handle().clone());
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ferry-sql")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the SQL runtime: {e}"))?;
        let handle = rt.handle().clone();
        *guard = Some(rt);
        Ok(handle)
    }

    /// Runs `fut` on the runtime and waits for it. The future enforces
    /// `timeout` itself; this wait is a safety net a little longer.
    fn run<T: Send + 'static>(
        &self,
        name: &str,
        timeout: Duration,
        fut: impl Future<Output = Result<T, SqlError>> + Send + 'static,
    ) -> Result<T, SqlError> {
        let handle = self.handle().map_err(|e| SqlError::failed(name, e))?;
        let (tx, rx) = mpsc::sync_channel(1);
        handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        let wait = timeout.saturating_add(CANCEL_GRACE * 2 + Duration::from_secs(1));
        match rx.recv_timeout(wait) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(SqlError::timed_out(name, timeout)),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(SqlError::failed(name, "the SQL runtime stopped"))
            }
        }
    }
}

impl Drop for SqlRuntime {
    fn drop(&mut self) {
        let rt = self
            .rt
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(rt) = rt {
            // Dropping a runtime inside another runtime's context panics;
            // this works anywhere.
            rt.shutdown_background();
        }
    }
}

/// The PostgreSQL half of the hub.
#[derive(Default)]
pub(super) struct PgHub {
    runtime: Arc<SqlRuntime>,
    pools: Mutex<HashMap<ConnectionSpec, Arc<PgPool>>>,
}

impl PgHub {
    fn pool(&self, spec: &ConnectionSpec) -> Result<Arc<PgPool>, SqlError> {
        let mut pools = lock(&self.pools);
        if let Some(pool) = pools.get(spec) {
            return Ok(pool.clone());
        }
        let pool = Arc::new(PgPool::new(spec)?);
        pools.insert(spec.clone(), pool.clone());
        Ok(pool)
    }

    pub(super) fn close_idle(&self) {
        let pools: Vec<_> = lock(&self.pools).drain().map(|(_, p)| p).collect();
        for pool in pools {
            lock(&pool.idle).clear();
        }
    }

    /// Leases a connection from `spec`'s pool and runs `f`'s future with it
    /// on the runtime; `timeout` covers the wait for the connection too.
    fn with_pooled<T, F, Fut>(
        &self,
        spec: &ConnectionSpec,
        timeout: Duration,
        f: F,
    ) -> Result<T, SqlError>
    where
        T: Send + 'static,
        F: FnOnce(Pooled, Instant) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, SqlError>> + Send,
    {
        let pool = self.pool(spec)?;
        let deadline = deadline_after(timeout);
        self.runtime.run(&spec.name, timeout, async move {
            let conn = pool.acquire(deadline, timeout).await?;
            f(conn, deadline).await
        })
    }

    pub(super) fn query(
        &self,
        spec: &ConnectionSpec,
        sql: &str,
        params: Vec<SqlValue>,
        timeout: Duration,
    ) -> Result<SqlRows, SqlError> {
        let sql = sql.to_owned();
        self.with_pooled(spec, timeout, move |mut conn, deadline| async move {
            conn.query(&sql, &params, deadline, timeout).await
        })
    }

    pub(super) fn execute(
        &self,
        spec: &ConnectionSpec,
        sql: &str,
        params: Vec<SqlValue>,
        timeout: Duration,
    ) -> Result<u64, SqlError> {
        let sql = sql.to_owned();
        self.with_pooled(spec, timeout, move |mut conn, deadline| async move {
            conn.execute(&sql, &params, deadline, timeout).await
        })
    }

    pub(super) fn begin(
        &self,
        spec: &ConnectionSpec,
        isolation: Isolation,
        read_only: bool,
        timeout: Duration,
    ) -> Result<PgTransaction, SqlError> {
        let begin = format!(
            "BEGIN ISOLATION LEVEL {}{}",
            isolation.sql(),
            if read_only { " READ ONLY" } else { "" }
        );
        let conn = self.with_pooled(spec, timeout, move |mut conn, deadline| async move {
            // Set first: a connection lost between here and a clean BEGIN
            // answer is never given back to the pool.
            conn.in_txn = true;
            conn.batch(&begin, deadline, timeout).await?;
            Ok(conn)
        })?;
        Ok(PgTransaction {
            name: spec.name.clone(),
            runtime: self.runtime.clone(),
            conn: Some(conn),
        })
    }
}

/// Connections for one [`ConnectionSpec`].
struct PgPool {
    name: String,
    config: Config,
    tls: MakeRustls,
    max: usize,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Client>>,
}

impl PgPool {
    fn new(spec: &ConnectionSpec) -> Result<PgPool, SqlError> {
        let name = spec.name.clone();
        let mut config: Config = spec
            .url
            .parse()
            .map_err(|e| SqlError::failed(&name, format!("invalid PostgreSQL URL: {e}")))?;
        if let Some(password) = &spec.password {
            config.password(password.as_bytes());
        }
        if config.get_application_name().is_none() {
            config.application_name("ferry");
        }
        config.ssl_mode(match spec.tls {
            Tls::Disable => SslMode::Disable,
            Tls::Require | Tls::VerifyFull => SslMode::Require,
        });
        let tls = MakeRustls::new(spec.tls, spec.ca_file.as_deref())
            .map_err(|e| SqlError::failed(&name, e))?;
        let max = spec.max_connections();
        Ok(PgPool {
            name,
            config,
            tls,
            max,
            permits: Arc::new(Semaphore::new(max)),
            idle: Mutex::new(Vec::new()),
        })
    }

    async fn acquire(
        self: Arc<Self>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Pooled, SqlError> {
        let permit = match tokio::time::timeout_at(
            deadline.into(),
            self.permits.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => {
                return Err(SqlError::failed(
                    &self.name,
                    "the connection pool is closed",
                ));
            }
            Err(_) => {
                return Err(SqlError::retryable(
                    &self.name,
                    format!(
                        "timed out after {timeout:?} waiting for a free connection (pool_size {})",
                        self.max
                    ),
                ));
            }
        };
        let idle = loop {
            let next = lock(&self.idle).pop();
            match next {
                Some(client) if client.is_closed() => continue,
                other => break other,
            }
        };
        let client = match idle {
            Some(client) => client,
            None => self.connect(deadline, timeout).await?,
        };
        Ok(Pooled {
            client: Some(client),
            broken: false,
            in_txn: false,
            pool: self,
            _permit: permit,
        })
    }

    async fn connect(&self, deadline: Instant, timeout: Duration) -> Result<Client, SqlError> {
        let connecting = self.config.connect(self.tls.clone());
        match tokio::time::timeout_at(deadline.into(), connecting).await {
            Err(_) => Err(SqlError::retryable(
                &self.name,
                format!("timed out after {timeout:?} connecting to the server"),
            )),
            Ok(Err(e)) => Err(convert_error(&self.name, &e).0),
            Ok(Ok((client, connection))) => {
                let name = self.name.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(connection = %name, error = %e, "PostgreSQL connection ended");
                    }
                });
                Ok(client)
            }
        }
    }
}

/// A connection leased from a pool; given back on drop unless broken or
/// still inside a transaction.
pub(super) struct Pooled {
    client: Option<Client>,
    broken: bool,
    in_txn: bool,
    pool: Arc<PgPool>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(client) = self.client.take()
            && !self.broken
            && !self.in_txn
            && !client.is_closed()
        {
            lock(&self.pool.idle).push(client);
        }
        // The permit is released after this, so a waiter finds the client.
    }
}

/// How a guarded statement ended.
enum Outcome<T> {
    Done(Result<T, tokio_postgres::Error>),
    /// The deadline passed; `stuck` when the statement did not end after
    /// its cancel request either.
    TimedOut {
        stuck: bool,
    },
}

/// Runs `fut` until `deadline`; then cancels it on the server and waits a
/// bounded time for it to end.
async fn guarded<T>(
    client: &Client,
    tls: &MakeRustls,
    deadline: Instant,
    fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Outcome<T> {
    let mut fut = std::pin::pin!(fut);
    tokio::select! {
        biased;
        result = &mut fut => Outcome::Done(result),
        () = tokio::time::sleep_until(deadline.into()) => {
            let token = client.cancel_token();
            let _ = tokio::time::timeout(CANCEL_GRACE, token.cancel_query(tls.clone())).await;
            match tokio::time::timeout(CANCEL_GRACE, fut).await {
                Ok(Err(e)) if e.code() == Some(&SqlState::QUERY_CANCELED) => {
                    Outcome::TimedOut { stuck: false }
                }
                // It finished (or failed otherwise) before the cancel landed.
                Ok(result) => Outcome::Done(result),
                Err(_) => Outcome::TimedOut { stuck: true },
            }
        }
    }
}

fn params_of(values: &[SqlValue]) -> Vec<Param<'_>> {
    values
        .iter()
        .enumerate()
        .map(|(i, value)| Param {
            number: i + 1,
            value,
        })
        .collect()
}

fn refs<'a>(params: &'a [Param<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl Pooled {
    fn name(&self) -> &str {
        &self.pool.name
    }

    fn client(&self) -> Result<&Client, SqlError> {
        self.client
            .as_ref()
            .ok_or_else(|| SqlError::failed(&self.pool.name, "the connection is gone"))
    }

    fn settle<T>(&mut self, outcome: Outcome<T>, timeout: Duration) -> Result<T, SqlError> {
        match outcome {
            Outcome::Done(Ok(value)) => Ok(value),
            Outcome::Done(Err(e)) => {
                let (err, broken) = convert_error(self.name(), &e);
                self.broken |= broken;
                Err(err)
            }
            Outcome::TimedOut { stuck } => {
                self.broken |= stuck;
                Err(SqlError::timed_out(self.name(), timeout))
            }
        }
    }

    async fn prepare(
        &mut self,
        sql: &str,
        values: usize,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Statement, SqlError> {
        let outcome = {
            let client = self.client()?;
            guarded(client, &self.pool.tls, deadline, client.prepare(sql)).await
        };
        let stmt = self.settle(outcome, timeout)?;
        check_param_count(self.name(), &stmt, values, None)?;
        Ok(stmt)
    }

    async fn query(
        &mut self,
        sql: &str,
        params: &[SqlValue],
        deadline: Instant,
        timeout: Duration,
    ) -> Result<SqlRows, SqlError> {
        let stmt = self.prepare(sql, params.len(), deadline, timeout).await?;
        for column in stmt.columns() {
            if !pg_types::readable(column.type_()) {
                return Err(unreadable(self.name(), column.name(), column.type_()));
            }
        }
        let outcome = {
            let client = self.client()?;
            let params = params_of(params);
            let refs = refs(&params);
            guarded(client, &self.pool.tls, deadline, client.query(&stmt, &refs)).await
        };
        let rows = self.settle(outcome, timeout)?;
        decode_rows(self.name(), &stmt, &rows)
    }

    async fn execute(
        &mut self,
        sql: &str,
        params: &[SqlValue],
        deadline: Instant,
        timeout: Duration,
    ) -> Result<u64, SqlError> {
        let stmt = self.prepare(sql, params.len(), deadline, timeout).await?;
        let outcome = {
            let client = self.client()?;
            let params = params_of(params);
            let refs = refs(&params);
            guarded(
                client,
                &self.pool.tls,
                deadline,
                client.execute(&stmt, &refs),
            )
            .await
        };
        self.settle(outcome, timeout)
    }

    async fn execute_many(
        &mut self,
        sql: &str,
        rows: &[Vec<SqlValue>],
        deadline: Instant,
        timeout: Duration,
    ) -> Result<u64, SqlError> {
        let Some(first) = rows.first() else {
            return Ok(0);
        };
        let stmt = self.prepare(sql, first.len(), deadline, timeout).await?;
        for (i, row) in rows.iter().enumerate() {
            check_param_count(self.name(), &stmt, row.len(), Some(i))?;
        }
        let outcome = {
            let client = self.client()?;
            let stmt = &stmt;
            let all = async move {
                // Each execute sends its messages when first polled, and up
                // to PIPELINE_DEPTH are in flight: they go out back to back
                // and the answers come in order.
                let mut in_flight = FuturesOrdered::new();
                let mut pending = rows.iter();
                let mut total = 0_u64;
                loop {
                    while in_flight.len() < PIPELINE_DEPTH {
                        match pending.next() {
                            Some(row) => in_flight.push_back(execute_one(client, stmt, row)),
                            None => break,
                        }
                    }
                    match in_flight.next().await {
                        Some(changed) => total += changed?,
                        None => break,
                    }
                }
                Ok(total)
            };
            guarded(client, &self.pool.tls, deadline, all).await
        };
        self.settle(outcome, timeout)
    }

    /// A statement through the simple protocol (BEGIN, COMMIT, ROLLBACK).
    async fn batch(
        &mut self,
        sql: &str,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), SqlError> {
        let outcome = {
            let client = self.client()?;
            guarded(client, &self.pool.tls, deadline, client.batch_execute(sql)).await
        };
        self.settle(outcome, timeout)
    }
}

async fn execute_one(
    client: &Client,
    stmt: &Statement,
    row: &[SqlValue],
) -> Result<u64, tokio_postgres::Error> {
    let params = params_of(row);
    let refs = refs(&params);
    client.execute(stmt, &refs).await
}

fn check_param_count(
    name: &str,
    stmt: &Statement,
    given: usize,
    list: Option<usize>,
) -> Result<(), SqlError> {
    let expected = stmt.params().len();
    if expected == given {
        return Ok(());
    }
    let which = match list {
        Some(i) => format!("parameter list {i} has"),
        None => "got".to_string(),
    };
    Err(SqlError::failed(
        name,
        format!(
            "the statement takes {expected} parameter{} but {which} {given} value{}",
            if expected == 1 { "" } else { "s" },
            if given == 1 { "" } else { "s" }
        ),
    ))
}

fn unreadable(name: &str, column: &str, ty: &tokio_postgres::types::Type) -> SqlError {
    let simple = column
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && column
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    let expr = if column == "?column?" {
        "<expression>::text".to_string()
    } else if simple {
        format!("{column}::text")
    } else {
        format!("\"{}\"::text", column.replace('"', "\"\""))
    };
    SqlError::failed(
        name,
        format!("cannot read column `{column}` of type {ty}; cast it in the query: {expr}"),
    )
}

fn decode_rows(name: &str, stmt: &Statement, rows: &[Row]) -> Result<SqlRows, SqlError> {
    let columns = stmt
        .columns()
        .iter()
        .map(|c| SqlColumn {
            name: c.name().to_owned(),
            type_name: c.type_().name().to_owned(),
        })
        .collect();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut values = Vec::with_capacity(row.len());
        for (i, column) in row.columns().iter().enumerate() {
            let bad =
                |e: String| SqlError::failed(name, format!("column `{}`: {e}", column.name()));
            let raw: Raw<'_> = row.try_get(i).map_err(|e| bad(e.to_string()))?;
            values.push(pg_types::decode(column.type_(), raw.0).map_err(bad)?);
        }
        out.push(values);
    }
    Ok(SqlRows { columns, rows: out })
}

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
fn convert_error(name: &str, e: &tokio_postgres::Error) -> (SqlError, bool) {
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

/// A PostgreSQL transaction: a leased connection inside `BEGIN`.
pub(super) struct PgTransaction {
    name: String,
    runtime: Arc<SqlRuntime>,
    /// None once finished, or lost to a statement that would not end.
    conn: Option<Pooled>,
}

impl PgTransaction {
    /// Moves the connection into `f`'s future on the runtime and takes it
    /// back with the result.
    fn with_conn<T, F, Fut>(&mut self, timeout: Duration, f: F) -> Result<T, SqlError>
    where
        T: Send + 'static,
        F: FnOnce(Pooled, Instant) -> Fut,
        Fut: Future<Output = (Pooled, Result<T, SqlError>)> + Send + 'static,
    {
        let conn = self
            .conn
            .take()
            .ok_or_else(|| SqlError::failed(&self.name, "the transaction lost its connection"))?;
        let fut = f(conn, deadline_after(timeout));
        let (conn, result) = self
            .runtime
            .run(&self.name, timeout, async move { Ok(fut.await) })?;
        self.conn = Some(conn);
        result
    }

    pub(super) fn query(
        &mut self,
        sql: &str,
        params: Vec<SqlValue>,
        timeout: Duration,
    ) -> Result<SqlRows, SqlError> {
        let sql = sql.to_owned();
        self.with_conn(timeout, move |mut conn, deadline| async move {
            let result = conn.query(&sql, &params, deadline, timeout).await;
            (conn, result)
        })
    }

    pub(super) fn execute(
        &mut self,
        sql: &str,
        params: Vec<SqlValue>,
        timeout: Duration,
    ) -> Result<u64, SqlError> {
        let sql = sql.to_owned();
        self.with_conn(timeout, move |mut conn, deadline| async move {
            let result = conn.execute(&sql, &params, deadline, timeout).await;
            (conn, result)
        })
    }

    pub(super) fn execute_many(
        &mut self,
        sql: &str,
        params: Vec<Vec<SqlValue>>,
        timeout: Duration,
    ) -> Result<u64, SqlError> {
        let sql = sql.to_owned();
        self.with_conn(timeout, move |mut conn, deadline| async move {
            let result = conn.execute_many(&sql, &params, deadline, timeout).await;
            (conn, result)
        })
    }

    /// COMMIT or ROLLBACK, then gives the connection back: to the pool when
    /// that worked, else it is dropped.
    pub(super) fn finish(&mut self, commit: bool, timeout: Duration) -> Result<(), SqlError> {
        let sql = if commit { "COMMIT" } else { "ROLLBACK" };
        let result = self.with_conn(timeout, move |mut conn, deadline| async move {
            let result = conn.batch(sql, deadline, timeout).await;
            if result.is_ok() {
                conn.in_txn = false;
            }
            (conn, result)
        });
        self.conn = None;
        result
    }

    /// Rolls back after a failure, as well as it can.
    pub(super) fn abort(&mut self) {
        if self.conn.is_some() {
            let _ = self.finish(false, ROLLBACK_TIMEOUT);
        }
    }
}

impl Drop for PgTransaction {
    fn drop(&mut self) {
        self.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_kinds() {
        for code in [
            "08006", "40001", "40P01", "55P03", "57014", "57P01", "53300",
        ] {
            assert_eq!(classify_sqlstate(code), SqlErrorKind::Retryable, "{code}");
        }
        for code in ["23505", "23503", "23502", "23514"] {
            assert_eq!(classify_sqlstate(code), SqlErrorKind::Constraint, "{code}");
        }
        for code in ["42P01", "42601", "22P02", "28P01", "3D000"] {
            assert_eq!(classify_sqlstate(code), SqlErrorKind::Failed, "{code}");
        }
    }

    #[test]
    fn bad_urls_fail_without_starting_anything() {
        let hub = PgHub::default();
        let spec = ConnectionSpec {
            name: "ops".into(),
            dialect: super::super::Dialect::Postgres,
            url: "postgres://u@h:notaport/db".into(),
            password: Some("secret".into()),
            tls: Tls::Disable,
            ca_file: None,
            pool_size: 2,
        };
        let err = hub
            .query(&spec, "SELECT 1", vec![], Duration::from_secs(1))
            .unwrap_err();
        assert_eq!(err.kind, SqlErrorKind::Failed);
        assert!(
            err.message
                .starts_with("connection `ops`: invalid PostgreSQL URL"),
            "{err}"
        );
        assert!(!err.message.contains("secret"));
        assert!(lock(&hub.runtime.rt).is_none(), "no runtime for a bad URL");
    }
}
