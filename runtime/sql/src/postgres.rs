//! PostgreSQL through tokio-postgres, on a runtime of the hub's own. This
//! file holds the runtime, the hub's PostgreSQL half and transactions; the
//! rest is split by role:
//!
//! - [`SqlRuntime`]: a two-thread tokio runtime started on first use. A
//!   synchronous call spawns its future there and waits on a std channel,
//!   so callers may be plain threads or `block_in_place` sections of another
//!   runtime.
//! - `pool`: [`PgPool`], one per [`ConnectionSpec`]; a
//!   semaphore of `pool_size` permits bounds the connections open at once,
//!   idle ones wait in a list. A connection that failed at the connection
//!   level, or that is given back inside a transaction that did not end
//!   cleanly, is dropped. [`Pooled`] is a leased connection.
//!   Every statement runs through [`guarded`](pool::guarded), which at the
//!   deadline sends the server a cancel request and waits (a bounded time)
//!   for the statement to end, so the connection stays in a known state.
//! - `probe`: a call outside a transaction must give its connection back
//!   outside a transaction block whatever its text was (a `BEGIN` behind a
//!   nested comment passes the text check): right behind the statement, in
//!   the same flight, go two simple queries
//!   ([`pipelined_probe`](probe::pipelined_probe)) that set a
//!   transaction-local setting to a fresh random value and read it back. The
//!   value survives to the second query only inside a transaction block, so
//!   the answer is exact and costs no round trip. When it cannot run (a
//!   timeout, a failed probe), [`sequential_probe`](probe::sequential_probe)
//!   asks afterwards. A connection found inside a block is rolled back (or
//!   dropped) and the call denied.
//! - `exec`: running statements. Query results are read as a stream
//!   ([`read_rows`](exec::read_rows)) and counted against the plugin's
//!   [`SqlLimits`] before each row is decoded; past the limit the statement
//!   is cancelled and the connection closed (a cancel request arrives when
//!   the server gets to it, and must not hit a later statement on a reused
//!   connection). tokio-postgres has no cap on one protocol message: a
//!   single row arrives whole before it can be counted, so one row can take
//!   what the server sends in one `DataRow` (PostgreSQL caps a field at
//!   1 GB); everything else is bounded by the limit.
//! - `error`: SQLSTATEs as [`SqlErrorKind`](crate::SqlErrorKind)s, and
//!   whether a connection that raised an error may go back to its pool.

use std::collections::HashMap;
use std::future::Future;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, Runtime};

use crate::{
    ConnectionSpec, Isolation, SqlError, SqlLimits, SqlRows, SqlValue, deadline_after, lock,
};

mod error;
mod exec;
mod pool;
mod probe;

use pool::{PgPool, Pooled};

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
