//! A pool of PostgreSQL connections per [`ConnectionSpec`] ([`PgPool`]: a
//! semaphore of `pool_size` permits, idle connections in a list), the
//! leased connection ([`Pooled`], given back on drop unless broken or still
//! inside a transaction), and [`guarded`], which runs a statement until its
//! deadline and then cancels it on the server.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config};

use crate::tls::MakeRustls;
use crate::{ConnectionSpec, SqlError, Tls, lock};

use super::CANCEL_GRACE;
use super::error::convert_error;
use super::probe::ProbeStatements;

/// Connections for one [`ConnectionSpec`].
pub(super) struct PgPool {
    pub(super) name: String,
    pub(super) config: Config,
    pub(super) tls: MakeRustls,
    pub(super) max: usize,
    pub(super) permits: Arc<Semaphore>,
    pub(super) idle: Mutex<Vec<(Client, Option<ProbeStatements>)>>,
}

impl PgPool {
    pub(super) fn new(spec: &ConnectionSpec) -> Result<PgPool, SqlError> {
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

    pub(super) async fn acquire(
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

    pub(super) async fn connect(
        &self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Client, SqlError> {
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
pub(crate) struct Pooled {
    pub(super) client: Option<Client>,
    /// The pipelined probe's statements, prepared on this connection.
    pub(super) probe: Option<ProbeStatements>,
    pub(super) broken: bool,
    pub(super) in_txn: bool,
    pub(super) pool: Arc<PgPool>,
    pub(super) _permit: OwnedSemaphorePermit,
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
pub(super) enum Outcome<T, E = tokio_postgres::Error> {
    Done(Result<T, E>),
    /// The deadline passed; `stuck` when the statement did not end after
    /// its cancel request either.
    TimedOut {
        stuck: bool,
    },
}

/// An error that may be the server's answer to our cancel request.
pub(super) trait MaybeCancelled {
    fn cancelled(&self) -> bool;
}

impl MaybeCancelled for tokio_postgres::Error {
    fn cancelled(&self) -> bool {
        self.code() == Some(&SqlState::QUERY_CANCELED)
    }
}

/// Runs `fut` until `deadline`; then cancels it on the server and waits a
/// bounded time for it to end.
pub(super) async fn guarded<T, E: MaybeCancelled>(
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
