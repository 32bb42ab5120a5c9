//! Running statements on a leased connection: binding parameters, `query`,
//! `execute`, `execute_many` (pipelined), and reading a result as a stream
//! counted against the plugin's [`SqlLimits`] before each row is decoded.

use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, RowStream, Statement};

use crate::pg_types::{self, Param, Raw};
use crate::tls::MakeRustls;
use crate::{SqlColumn, SqlError, SqlLimits, SqlRows, SqlValue};

use super::error::convert_error;
use super::pool::{Outcome, Pooled, guarded};
use super::probe::{Probed, ProbedError, prepare_probe, sequential_probe, with_probe};
use super::{CANCEL_GRACE, PIPELINE_DEPTH};

pub(super) fn params_of(values: &[SqlValue]) -> Vec<Param<'_>> {
    values
        .iter()
        .enumerate()
        .map(|(i, value)| Param {
            number: i + 1,
            value,
        })
        .collect()
}

pub(super) fn refs<'a>(params: &'a [Param<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl Pooled {
    pub(super) fn name(&self) -> &str {
        &self.pool.name
    }

    pub(super) fn client(&self) -> Result<&Client, SqlError> {
        self.client
            .as_ref()
            .ok_or_else(|| SqlError::failed(&self.pool.name, "the connection is gone"))
    }

    pub(super) fn settle<T>(
        &mut self,
        outcome: Outcome<T>,
        timeout: Duration,
    ) -> Result<T, SqlError> {
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
    pub(super) fn settle_probed<T>(
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

    pub(super) fn failed(&mut self, e: &tokio_postgres::Error) -> SqlError {
        let (err, broken) = convert_error(self.name(), e);
        self.broken |= broken;
        err
    }

    /// Prepares the pipelined probe's statements on this connection if it
    /// has none yet (once per connection); `true` when they are ready. A
    /// failure leaves the call to the sequential probe.
    pub(super) async fn ready_probe(&mut self, deadline: Instant) -> bool {
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
    pub(super) async fn after_autocommit<T>(
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

    pub(super) async fn prepare(
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
    pub(super) async fn query(
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

    pub(super) async fn execute(
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

    pub(super) async fn execute_many(
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
    pub(super) async fn batch(
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

pub(super) async fn execute_one(
    client: &Client,
    stmt: &Statement,
    row: &[SqlValue],
) -> Result<u64, tokio_postgres::Error> {
    let params = params_of(row);
    let refs = refs(&params);
    client.execute(stmt, &refs).await
}

pub(super) fn check_param_count(
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

pub(super) fn unreadable(name: &str, column: &str, ty: &tokio_postgres::types::Type) -> SqlError {
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
pub(super) enum Read {
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
pub(super) async fn read_rows(
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
pub(super) async fn stop_reading(
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
