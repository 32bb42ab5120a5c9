//! The check that a connection is outside a transaction block after a call
//! whose text is not trusted: two prepared statements sent in the call's own
//! flight ([`pipelined_probe`]) set and read back a transaction-local
//! setting; [`sequential_probe`] asks in a round trip of its own when that
//! answer is missing.

use std::future::Future;
use std::hash::BuildHasher;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, SimpleQueryMessage, Statement};

use super::pool::MaybeCancelled;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Probed {
    /// The statement never reached the server (it failed to prepare, or a
    /// check refused it): the status is what it was before.
    NotRun,
    /// It ran and the pipelined probe did not answer.
    Unknown,
    /// The probe's answer: `true` inside a transaction block.
    Inside(bool),
}

/// A statement's error, with what the probe sent behind it said.
pub(super) struct ProbedError {
    pub(super) error: tokio_postgres::Error,
    pub(super) probed: Probed,
}

impl MaybeCancelled for ProbedError {
    fn cancelled(&self) -> bool {
        self.error.cancelled()
    }
}

/// The transaction-local setting the pipelined probe writes and reads.
pub(super) const PROBE_SETTING: &str = "ferry.in_block";

/// A value no plugin can guess (so none can fake an answer by setting it
/// for its session).
pub(super) fn probe_nonce() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "{:016x}",
        std::collections::hash_map::RandomState::new().hash_one(n)
    )
}

/// The first value of the first row of a simple query's answer.
pub(super) fn first_value(messages: &[SimpleQueryMessage]) -> Option<&str> {
    messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0),
        _ => None,
    })
}

/// The two statements of the pipelined probe, prepared once per
/// connection: the first sets [`PROBE_SETTING`] for the current
/// transaction, the second reads it.
pub(super) type ProbeStatements = (Statement, Statement);

pub(super) async fn prepare_probe(
    client: &Client,
) -> Result<ProbeStatements, tokio_postgres::Error> {
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
pub(super) async fn pipelined_probe(
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
pub(super) async fn sequential_probe(client: &Client) -> Result<bool, tokio_postgres::Error> {
    let answer = client
        .simple_query("SELECT transaction_timestamp() <> statement_timestamp()")
        .await?;
    Ok(first_value(&answer) == Some("t"))
}

/// Runs `statement`, and with `probe` the pipelined probe right behind it.
pub(super) async fn with_probe<T>(
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
