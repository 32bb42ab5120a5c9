//! The [`SqlHub`]: the process's connections, one per process, routing each
//! call to the PostgreSQL or the SQLite backend and starting transactions
//! (which the reaper then watches).

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::reaper::Reaper;
use super::statement::refuse_transaction_control;
use super::transaction::{SqlTransaction, TxBackend, TxInner, TxShared, TxState};
use super::{
    ConnectionSpec, Dialect, Isolation, SqlError, SqlLimits, SqlRows, SqlValue, deadline_after,
    postgres, sqlite,
};

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
