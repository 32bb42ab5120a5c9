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
//!
//! A call outside a transaction must give its connection back outside a
//! transaction block whatever its text was (a `BEGIN` behind a nested
//! comment passes the text check): right behind the statement, in the same
//! flight, go two simple queries ([`pipelined_probe`]) that set a
//! transaction-local setting to a fresh random value and read it back. The
//! value survives to the second query only inside a transaction block, so
//! the answer is exact and costs no round trip. When it cannot run (a
//! timeout, a failed probe), [`sequential_probe`] asks afterwards. A
//! connection found inside a block is rolled back (or dropped) and the call
//! denied.
//!
//! Query results are read as a stream ([`read_rows`]) and counted against
//! the plugin's [`SqlLimits`] before each row is decoded; past the limit the
//! statement is cancelled and the connection closed (a cancel request
//! arrives when the server gets to it, and must not hit a later statement
//! on a reused connection). tokio-postgres has no cap on one protocol
//! message: a single row arrives whole before it can be counted, so one row
//! can take what the server sends in one `DataRow` (PostgreSQL caps a field
//! at 1 GB); everything else is bounded by the limit.

use std::collections::HashMap;
use std::future::Future;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use std::hash::BuildHasher;
use std::pin::Pin;

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, RowStream, SimpleQueryMessage, Statement};

use super::pg_types::{self, BindError, Param, Raw};
use super::tls::{self, MakeRustls};
use super::{
    ConnectionSpec, Isolation, SqlColumn, SqlError, SqlErrorKind, SqlLimits, SqlRows, SqlValue,
    Tls, deadline_after, lock,
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
        limits: SqlLimits,
    ) -> Result<SqlRows, SqlError> {
        let sql = sql.to_owned();
        self.with_pooled(spec, timeout, move |mut conn, deadline| async move {
            let probe = conn.ready_probe(deadline).await;
            let (result, probed) = conn
                .query(&sql, &params, deadline, timeout, limits, probe)
                .await;
            conn.after_autocommit(result, probed).await
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
            let probe = conn.ready_probe(deadline).await;
            let (result, probed) = conn.execute(&sql, &params, deadline, timeout, probe).await;
            conn.after_autocommit(result, probed).await
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
    idle: Mutex<Vec<(Client, Option<ProbeStatements>)>>,
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
                Some((client, _)) if client.is_closed() => continue,
                other => break other,
            }
        };
        let (client, probe) = match idle {
            Some(idle) => idle,
            None => (self.connect(deadline, timeout).await?, None),
        };
        Ok(Pooled {
            client: Some(client),
            probe,
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
    /// The pipelined probe's statements, prepared on this connection.
    probe: Option<ProbeStatements>,
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
            lock(&self.pool.idle).push((client, self.probe.take()));
        }
        // The permit is released after this, so a waiter finds the client.
    }
}

/// How a guarded statement ended.
enum Outcome<T, E = tokio_postgres::Error> {
    Done(Result<T, E>),
    /// The deadline passed; `stuck` when the statement did not end after
    /// its cancel request either.
    TimedOut {
        stuck: bool,
    },
}

/// An error that may be the server's answer to our cancel request.
trait MaybeCancelled {
    fn cancelled(&self) -> bool;
}

impl MaybeCancelled for tokio_postgres::Error {
    fn cancelled(&self) -> bool {
        self.code() == Some(&SqlState::QUERY_CANCELED)
    }
}

/// Runs `fut` until `deadline`; then cancels it on the server and waits a
/// bounded time for it to end.
async fn guarded<T, E: MaybeCancelled>(
    client: &Client,
    tls: &MakeRustls,
    deadline: Instant,
    fut: impl Future<Output = Result<T, E>>,
) -> Outcome<T, E> {
    let mut fut = std::pin::pin!(fut);
    tokio::select! {
        biased;
        result = &mut fut => Outcome::Done(result),
        () = tokio::time::sleep_until(deadline.into()) => {
            let token = client.cancel_token();
            let _ = tokio::time::timeout(CANCEL_GRACE, token.cancel_query(tls.clone())).await;
            match tokio::time::timeout(CANCEL_GRACE, fut).await {
                Ok(Err(e)) if e.cancelled() => Outcome::TimedOut { stuck: false },
                // It finished (or failed otherwise) before the cancel landed.
                Ok(result) => Outcome::Done(result),
                Err(_) => Outcome::TimedOut { stuck: true },
            }
        }
    }
}

/// What is known of a connection's transaction status after a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probed {
    /// The statement never reached the server (it failed to prepare, or a
    /// check refused it): the status is what it was before.
    NotRun,
    /// It ran and the pipelined probe did not answer.
    Unknown,
    /// The probe's answer: `true` inside a transaction block.
    Inside(bool),
}

/// A statement's error, with what the probe sent behind it said.
struct ProbedError {
    error: tokio_postgres::Error,
    probed: Probed,
}

impl MaybeCancelled for ProbedError {
    fn cancelled(&self) -> bool {
        self.error.cancelled()
    }
}

/// The transaction-local setting the pipelined probe writes and reads.
const PROBE_SETTING: &str = "ferry.in_block";

/// A value no plugin can guess (so none can fake an answer by setting it
/// for its session).
fn probe_nonce() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "{:016x}",
        std::collections::hash_map::RandomState::new().hash_one(n)
    )
}

/// The first value of the first row of a simple query's answer.
fn first_value(messages: &[SimpleQueryMessage]) -> Option<&str> {
    messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0),
        _ => None,
    })
}

/// The two statements of the pipelined probe, prepared once per
/// connection: the first sets [`PROBE_SETTING`] for the current
/// transaction, the second reads it.
type ProbeStatements = (Statement, Statement);

async fn prepare_probe(client: &Client) -> Result<ProbeStatements, tokio_postgres::Error> {
    let set = client
        .prepare(&format!("SELECT set_config('{PROBE_SETTING}', $1, true)"))
        .await?;
    let get = client
        .prepare(&format!(
            "SELECT current_setting('{PROBE_SETTING}', true) IS NOT DISTINCT FROM $1"
        ))
        .await?;
    Ok((set, get))
}

/// The two probe statements, sent right behind a statement in the same
/// flight with a fresh value. Outside a block each runs in a transaction
/// of its own and the value is gone by the second; inside one it is still
/// there. `true`: inside a block.
async fn pipelined_probe(
    client: &Client,
    (set, get): &ProbeStatements,
) -> Result<bool, tokio_postgres::Error> {
    let nonce = probe_nonce();
    let params: [&(dyn ToSql + Sync); 1] = [&nonce];
    let (set, get) = tokio::join!(client.execute(set, &params), client.query_one(get, &params));
    set?;
    get?.try_get(0)
}

/// The probe as a round trip of its own, for when the pipelined one could
/// not answer: inside a block the transaction started before this
/// statement, so the two timestamps differ. `true`: inside a block.
async fn sequential_probe(client: &Client) -> Result<bool, tokio_postgres::Error> {
    let answer = client
        .simple_query("SELECT transaction_timestamp() <> statement_timestamp()")
        .await?;
    Ok(first_value(&answer) == Some("t"))
}

/// Runs `statement`, and with `probe` the pipelined probe right behind it.
async fn with_probe<T>(
    client: &Client,
    statement: impl Future<Output = Result<T, tokio_postgres::Error>>,
    probe: Option<&ProbeStatements>,
) -> Result<(T, Probed), ProbedError> {
    let (result, probed) = match probe {
        Some(probe) => {
            let (result, probed) = tokio::join!(statement, pipelined_probe(client, probe));
            (result, probed.map_or(Probed::Unknown, Probed::Inside))
        }
        None => (statement.await, Probed::Unknown),
    };
    match result {
        Ok(value) => Ok((value, probed)),
        Err(error) => Err(ProbedError { error, probed }),
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
            Outcome::Done(Err(e)) => Err(self.failed(&e)),
            Outcome::TimedOut { stuck } => {
                self.broken |= stuck;
                Err(SqlError::timed_out(self.name(), timeout))
            }
        }
    }

    /// [`Pooled::settle`] for a statement with the probe behind it.
    fn settle_probed<T>(
        &mut self,
        outcome: Outcome<(T, Probed), ProbedError>,
        timeout: Duration,
    ) -> (Result<T, SqlError>, Probed) {
        match outcome {
            Outcome::Done(Ok((value, probed))) => (Ok(value), probed),
            Outcome::Done(Err(e)) => (Err(self.failed(&e.error)), e.probed),
            Outcome::TimedOut { stuck } => {
                self.broken |= stuck;
                (
                    Err(SqlError::timed_out(self.name(), timeout)),
                    Probed::Unknown,
                )
            }
        }
    }

    fn failed(&mut self, e: &tokio_postgres::Error) -> SqlError {
        let (err, broken) = convert_error(self.name(), e);
        self.broken |= broken;
        err
    }

    /// Prepares the pipelined probe's statements on this connection if it
    /// has none yet (once per connection); `true` when they are ready. A
    /// failure leaves the call to the sequential probe.
    async fn ready_probe(&mut self, deadline: Instant) -> bool {
        if self.probe.is_none()
            && let Some(client) = self.client.as_ref()
            && let Ok(Ok(probe)) =
                tokio::time::timeout_at(deadline.into(), prepare_probe(client)).await
        {
            self.probe = Some(probe);
        }
        self.probe.is_some()
    }

    /// After a call outside a transaction: the connection goes back to the
    /// pool only outside a transaction block. One found inside (a `BEGIN`
    /// the text check missed) is rolled back, or dropped, and the call is
    /// denied whatever it returned.
    async fn after_autocommit<T>(
        &mut self,
        result: Result<T, SqlError>,
        probed: Probed,
    ) -> Result<T, SqlError> {
        if self.broken {
            return result;
        }
        let inside = match probed {
            Probed::NotRun => return result,
            Probed::Inside(inside) => inside,
            Probed::Unknown => {
                // Prepared again next time (a `DEALLOCATE ALL` drops them).
                self.probe = None;
                let answer = match self.client() {
                    Ok(client) => {
                        tokio::time::timeout(CANCEL_GRACE, sequential_probe(client)).await
                    }
                    Err(_) => return result,
                };
                match answer {
                    Ok(Ok(inside)) => inside,
                    // Unknown: never reuse it (closing it rolls back).
                    _ => {
                        self.broken = true;
                        return result;
                    }
                }
            }
        };
        if !inside {
            return result;
        }
        let rolled_back = match self.client() {
            Ok(client) => tokio::time::timeout(CANCEL_GRACE, client.batch_execute("ROLLBACK"))
                .await
                .is_ok_and(|r| r.is_ok()),
            Err(_) => false,
        };
        if !rolled_back {
            self.broken = true;
        }
        Err(SqlError::denied(
            self.name(),
            "the statement left a transaction open (a `BEGIN` the host's check of the \
             statement's text did not see, such as one behind a nested comment); the host \
             rolled it back. Plugins may not start transactions with statements: use the \
             interface's `begin`, `commit` and `rollback`",
        ))
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

    /// Runs a query and reads its rows as they arrive, within
    /// `limits`; with `probe`, the pipelined probe goes right behind it.
    async fn query(
        &mut self,
        sql: &str,
        params: &[SqlValue],
        deadline: Instant,
        timeout: Duration,
        limits: SqlLimits,
        probe: bool,
    ) -> (Result<SqlRows, SqlError>, Probed) {
        let stmt = match self.prepare(sql, params.len(), deadline, timeout).await {
            Ok(stmt) => stmt,
            Err(e) => return (Err(e), Probed::NotRun),
        };
        for column in stmt.columns() {
            if !pg_types::readable(column.type_()) {
                return (
                    Err(unreadable(self.name(), column.name(), column.type_())),
                    Probed::NotRun,
                );
            }
        }
        let outcome = {
            let client = match self.client() {
                Ok(client) => client,
                Err(e) => return (Err(e), Probed::NotRun),
            };
            let tls = &self.pool.tls;
            let name = self.pool.name.as_str();
            let params = params_of(params);
            let refs = refs(&params);
            let statement = async {
                let stream = client.query_raw(&stmt, refs.iter().copied()).await?;
                read_rows(client, tls, stream, &stmt, name, limits.max_result_bytes).await
            };
            let probe = self.probe.as_ref().filter(|_| probe);
            guarded(client, tls, deadline, with_probe(client, statement, probe)).await
        };
        let (read, probed) = self.settle_probed(outcome, timeout);
        let result = match read {
            Ok(Read::Rows(rows)) => Ok(rows),
            Ok(Read::Refused { error, reusable }) => {
                self.broken |= !reusable;
                Err(error)
            }
            Err(e) => Err(e),
        };
        (result, probed)
    }

    async fn execute(
        &mut self,
        sql: &str,
        params: &[SqlValue],
        deadline: Instant,
        timeout: Duration,
        probe: bool,
    ) -> (Result<u64, SqlError>, Probed) {
        let stmt = match self.prepare(sql, params.len(), deadline, timeout).await {
            Ok(stmt) => stmt,
            Err(e) => return (Err(e), Probed::NotRun),
        };
        let outcome = {
            let client = match self.client() {
                Ok(client) => client,
                Err(e) => return (Err(e), Probed::NotRun),
            };
            let params = params_of(params);
            let refs = refs(&params);
            let statement = client.execute(&stmt, &refs);
            let probe = self.probe.as_ref().filter(|_| probe);
            guarded(
                client,
                &self.pool.tls,
                deadline,
                with_probe(client, statement, probe),
            )
            .await
        };
        self.settle_probed(outcome, timeout)
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

/// What reading a result came to.
enum Read {
    Rows(SqlRows),
    /// Reading stopped: the rows outgrew the limit, or a value could not be
    /// decoded. `reusable`: the rest of the result was read and no cancel
    /// request is on its way, so the connection may serve again.
    Refused {
        error: SqlError,
        reusable: bool,
    },
}

/// Reads a result's rows as they arrive. Each row is counted against
/// `max_bytes` before it is decoded; past it the statement is cancelled.
async fn read_rows(
    client: &Client,
    tls: &MakeRustls,
    stream: RowStream,
    stmt: &Statement,
    name: &str,
    max_bytes: usize,
) -> Result<Read, tokio_postgres::Error> {
    let columns = stmt
        .columns()
        .iter()
        .map(|c| SqlColumn {
            name: c.name().to_owned(),
            type_name: c.type_().name().to_owned(),
        })
        .collect();
    let mut stream = std::pin::pin!(stream);
    let mut out = Vec::new();
    let mut used = 0_usize;
    while let Some(row) = stream.next().await {
        let row = row?;
        used = used.saturating_add(SqlLimits::ROW_COST);
        let mut raws = Vec::with_capacity(row.len());
        let mut bad = None;
        for (i, column) in row.columns().iter().enumerate() {
            match row.try_get::<_, Raw<'_>>(i) {
                Ok(raw) => {
                    used = used.saturating_add(SqlLimits::value_cost(raw.0.map_or(0, <[u8]>::len)));
                    raws.push(raw.0);
                }
                Err(e) => {
                    bad = Some(SqlError::failed(
                        name,
                        format!("column `{}`: {e}", column.name()),
                    ));
                    break;
                }
            }
        }
        if used > max_bytes {
            // The connection is not reused after the cancel: a cancel request
            // lands when the server gets to it, and it could hit a later
            // statement on the same connection once this one has ended.
            stop_reading(client, tls, stream.as_mut(), true).await;
            return Ok(Read::Refused {
                error: SqlError::result_too_large(name, max_bytes),
                reusable: false,
            });
        }
        let mut values = Vec::with_capacity(raws.len());
        if bad.is_none() {
            for (raw, column) in raws.into_iter().zip(row.columns()) {
                match pg_types::decode(column.type_(), raw) {
                    Ok(value) => values.push(value),
                    Err(e) => {
                        bad = Some(SqlError::failed(
                            name,
                            format!("column `{}`: {e}", column.name()),
                        ));
                        break;
                    }
                }
            }
        }
        if let Some(error) = bad {
            let reusable = stop_reading(client, tls, stream.as_mut(), false).await;
            return Ok(Read::Refused { error, reusable });
        }
        out.push(values);
    }
    Ok(Read::Rows(SqlRows { columns, rows: out }))
}

/// Stops reading a result: cancels the statement on the server when
/// `cancel`, then reads what is left, dropping it. `false` when the result
/// did not end within [`CANCEL_GRACE`].
async fn stop_reading(
    client: &Client,
    tls: &MakeRustls,
    mut stream: Pin<&mut RowStream>,
    cancel: bool,
) -> bool {
    if cancel {
        let token = client.cancel_token();
        let _ = tokio::time::timeout(CANCEL_GRACE, token.cancel_query(tls.clone())).await;
    }
    let rest = async {
        while let Some(row) = stream.next().await {
            if row.is_err() {
                break;
            }
        }
    };
    tokio::time::timeout(CANCEL_GRACE, rest).await.is_ok()
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
        limits: SqlLimits,
    ) -> Result<SqlRows, SqlError> {
        let sql = sql.to_owned();
        self.with_conn(timeout, move |mut conn, deadline| async move {
            let (result, _) = conn
                .query(&sql, &params, deadline, timeout, limits, false)
                .await;
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
            let (result, _) = conn.execute(&sql, &params, deadline, timeout, false).await;
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
mod tests;
