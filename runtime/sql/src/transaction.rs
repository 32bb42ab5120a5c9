//! An open [`SqlTransaction`]: the pooled connection it holds, its states
//! (open, finished by a failed statement, expired), its expiry past the
//! connection's `transaction_timeout`, and the [`TxWatch`] the host counts
//! a plugin's open transactions with.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant};

use super::statement::refuse_transaction_control;
use super::{SqlError, SqlLimits, SqlRows, SqlValue, lock, postgres, sqlite};

/// The timeout of the rollback of a transaction held too long.
const EXPIRY_ROLLBACK_TIMEOUT: Duration = Duration::from_secs(5);

/// An open transaction holding one pooled connection until
/// [`commit`](SqlTransaction::commit), [`rollback`](SqlTransaction::rollback),
/// drop (which rolls back), or its connection's `transaction_timeout`
/// (which rolls back too).
pub struct SqlTransaction {
    pub(crate) shared: Arc<TxShared>,
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
pub(crate) struct TxShared {
    pub(crate) name: String,
    pub(crate) limits: SqlLimits,
    pub(crate) lifetime: Duration,
    /// When it is rolled back if still open.
    pub(crate) expires: Instant,
    /// `true` while the transaction holds its connection.
    pub(crate) open: Arc<AtomicBool>,
    /// Locked for the length of each call, so the reaper never rolls back
    /// under a running statement.
    pub(crate) inner: Mutex<TxInner>,
}

pub(crate) struct TxInner {
    pub(crate) state: TxState,
    pub(crate) backend: TxBackend,
}

impl Drop for TxShared {
    fn drop(&mut self) {
        // The backend's own drop rolls back and gives the connection back.
        self.open.store(false, Ordering::Release);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxState {
    Open,
    Committed,
    RolledBack,
    /// A statement failed and the transaction was rolled back.
    Aborted,
    /// It stayed open past its connection's `transaction_timeout` and was
    /// rolled back.
    Expired,
}

pub(crate) enum TxBackend {
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
    pub(crate) fn try_expire(&self) -> Option<Instant> {
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
