//! The source: the SQL side (checks, slot and publication, peeks, the
//! initial copy, advancing the slot) around [`Stream`].

mod setup;

use setup::{check_server, describe_table, ensure_publication, ensure_slot};

use std::collections::HashMap;

use ferry_plugin::sql::{self, SqlError, Value as SqlValue};
use ferry_plugin::{PluginError, Polled, Source, SourceStatus, Value};

use crate::checkpoint::{self, Checkpoint, Copy, lsn_text};
use crate::stream::{Fill, Messages, Out, Position, Stream, TableSpec, key_text};
use crate::values::{self, Kind};
use crate::visibility::Snapshot;

fn yes() -> bool {
    true
}

/// The only `mode` this source serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CdcMode {
    /// Change data capture.
    Cdc,
}

/// The CDC source's `config` table (see the crate docs for the reference).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdcConfig {
    /// The named SQL connection (declared in the manifest's `[connections]`
    /// and granted in `grants.sql`) to the PostgreSQL database to read.
    pub connection: String,
    /// `"cdc"`: how the `postgres` connector picks this source.
    #[serde(default)]
    pub mode: Option<CdcMode>,
    /// The logical replication slot to read (`[a-z0-9_]`, at most 63
    /// characters). One slot per pipeline: the slot remembers what this
    /// pipeline has durably delivered.
    pub slot: String,
    /// The publication naming the tables whose changes the slot sends.
    pub publication: String,
    /// The tables to capture, as `schema.table` (`table` alone means
    /// `public.table`); identifiers follow SQL rules (quote mixed case:
    /// `"Sales"."Orders"`).
    pub tables: Vec<String>,
    /// Create the publication (or add missing tables to it) and the slot
    /// when they are missing (default `true`); with `false` their absence
    /// is an error that says what to run.
    #[serde(default = "yes")]
    pub create: bool,
    /// Copy the tables' existing rows before streaming, consistently with
    /// the slot's start (default `false`: only changes from the slot's
    /// start on).
    #[serde(default)]
    pub snapshot: bool,
    /// A text field set on every record to the record's table as
    /// `schema.table`, for pipelines that read several tables.
    #[serde(default)]
    pub table_field: Option<String>,
}

/// A configured table, as the catalog describes it.
#[derive(Debug, Clone)]
struct Table {
    /// Its columns: name and conversion.
    columns: Vec<(String, Kind)>,
    /// The statement reading the first page of the copy (`$1`: limit).
    first_page: String,
    /// The statement reading a later page (`$1`: limit, `$2`...: the last
    /// key's text forms).
    next_page: String,
}

/// The initial copy in progress.
struct CopyState {
    /// The table being copied (index into the tables).
    table: usize,
    /// The last key copied (text forms).
    after: Option<Vec<String>>,
    /// The `REPEATABLE READ` transaction reading the tables, kept open
    /// across polls.
    tx: Option<sql::Transaction>,
}

/// The PostgreSQL CDC source (see the crate docs).
pub struct Cdc {
    conn: String,
    slot: String,
    publication: String,
    table_field: Option<String>,
    tables: Vec<Table>,
    stream: Stream,
    copy: Option<CopyState>,
    /// Whether a checkpoint holding the copy's snapshot is durable, so rows
    /// read with it may be emitted.
    snapshot_durable: bool,
    /// The version given to copied rows: just below the slot's start.
    copy_version: u64,
    /// About how many rows a peek returns before the position (it always
    /// starts at the slot's confirmed position).
    window: u64,
    /// Whether the last peek stopped at its limit (more is waiting).
    more: bool,
}

impl std::fmt::Debug for Cdc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cdc")
            .field("slot", &self.slot)
            .field("pos", &self.stream.pos)
            .field("copying", &self.copy.as_ref().map(|c| c.table))
            .finish_non_exhaustive()
    }
}

/// `"ident"`, with inner quotes doubled.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The statement reading a page of changes. `$1` slot, `$2` the most rows
/// to decode (whole transactions: a peek stops only at a commit), `$3`
/// publication, `$4` the position. The peek starts at the slot's confirmed
/// position; transactions that end at or before the position were emitted
/// already, so only their `Relation` and `Type` messages come back. The
/// answer is one row: how many rows the peek decoded, how many it returns,
/// and those rows as one `bytea`, each prefixed with its length (4 bytes,
/// big-endian): one value to move instead of one per message.
const PEEK: &str = "\
WITH c AS (
  SELECT p.n, p.data,
         min(p.lsn) FILTER (WHERE get_byte(p.data, 0) = 67)
           OVER (ORDER BY p.n DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS tx_end
  FROM pg_logical_slot_peek_binary_changes($1::text, NULL, $2::int4,
         'proto_version', '1', 'publication_names', $3::text) WITH ORDINALITY AS p(lsn, xid, data, n)
), f AS (
  SELECT n, data FROM c WHERE tx_end > $4::text::pg_lsn OR get_byte(data, 0) IN (82, 89)
)
SELECT (SELECT count(*) FROM c)::int8, (SELECT count(*) FROM f)::int8,
       (SELECT string_agg(int4send(length(data)) || data, ''::bytea ORDER BY n) FROM f)";

/// Session settings for both the stream and the copy, so values arrive in
/// the text forms [`values`] reads (local to the transaction).
const SETTINGS: &str = "SELECT set_config('TimeZone', 'UTC', true), \
    set_config('DateStyle', 'ISO, YMD', true), set_config('bytea_output', 'hex', true), \
    set_config('extra_float_digits', '1', true), set_config('IntervalStyle', 'postgres', true)";

/// Advances the slot to `$2` unless it is there already (advancing
/// backwards is an error).
const ADVANCE: &str = "\
SELECT CASE WHEN s.confirmed_flush_lsn < $2::text::pg_lsn
  THEN (SELECT a.end_lsn::text FROM pg_replication_slot_advance($1::text, $2::text::pg_lsn) a)
  END
FROM pg_replication_slots s WHERE s.slot_name = $1::text";

fn text(v: Option<&SqlValue>) -> Option<&str> {
    match v {
        Some(SqlValue::Text(s) | SqlValue::Json(s)) => Some(s),
        _ => None,
    }
}

fn int(v: Option<&SqlValue>) -> Option<i64> {
    match v {
        Some(SqlValue::Int(n)) => Some(*n),
        Some(SqlValue::Text(s)) => s.parse().ok(),
        _ => None,
    }
}

fn boolean(v: Option<&SqlValue>) -> Option<bool> {
    match v {
        Some(SqlValue::Boolean(b)) => Some(*b),
        Some(SqlValue::Text(s)) => Some(s == "t" || s == "true"),
        _ => None,
    }
}

fn invalid(message: impl Into<String>) -> PluginError {
    PluginError::invalid_config(message)
}

/// A failed statement, with what was being done and, for the failures an
/// operator must fix, how.
fn failed(e: SqlError, doing: &str) -> PluginError {
    let what = sql::describe(&e);
    match e.code.as_deref() {
        Some("42501") => invalid(format!(
            "{doing}: {what}. The connection's role lacks a privilege: logical decoding needs \
             the REPLICATION attribute (ALTER ROLE <role> REPLICATION), creating a \
             publication needs ownership of the tables, the copy needs SELECT on them"
        )),
        Some("55000") if what.contains("wal_level") => invalid(format!(
            "{doing}: {what}. Set wal_level = logical (ALTER SYSTEM SET wal_level = logical) \
             and restart PostgreSQL"
        )),
        Some("53400") => invalid(format!(
            "{doing}: {what}. Raise max_replication_slots (and restart PostgreSQL), or drop \
             unused slots"
        )),
        // The slot is in use by another session: that passes.
        Some("55006") => PluginError::retryable(format!("{doing}: {what}")),
        Some("42704") => invalid(format!(
            "{doing}: {what}. Was the slot or the publication dropped? Recreate it; changes \
             made meanwhile are lost to this pipeline, so remove its state and copy the tables \
             again (snapshot = true)"
        )),
        _ => match PluginError::from(e) {
            PluginError::Retryable(m) => PluginError::retryable(format!("{doing}: {m}")),
            PluginError::InvalidConfig(m) => invalid(format!("{doing}: {m}")),
            PluginError::Fatal(m) => PluginError::fatal(format!("{doing}: {m}")),
        },
    }
}

/// Checks a slot name against PostgreSQL's rule for them.
fn check_slot_name(slot: &str) -> Result<(), PluginError> {
    if slot.is_empty()
        || slot.len() > 63
        || !slot
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(invalid(format!(
            "config.slot: {slot:?} is not a replication slot name: use 1 to 63 lower-case \
             letters, digits and underscores"
        )));
    }
    Ok(())
}

impl Source for Cdc {
    type Config = CdcConfig;

    fn open(config: CdcConfig, checkpoint: Option<&[u8]>) -> Result<Self, PluginError> {
        check_slot_name(&config.slot)?;
        if config.publication.is_empty() || config.publication.len() > 63 {
            return Err(invalid(
                "config.publication: give a publication name of 1 to 63 characters",
            ));
        }
        if config.tables.is_empty() {
            return Err(invalid(
                "config.tables: name at least one table, as \"schema.table\"",
            ));
        }
        if config.table_field.as_deref() == Some("") {
            return Err(invalid("config.table_field: the field name is empty"));
        }
        let cp = match checkpoint {
            Some(bytes) => Some(Checkpoint::decode(bytes, &config.slot).map_err(invalid)?),
            None => None,
        };
        let conn = config.connection.clone();
        match sql::dialect_of(&conn) {
            Ok(sql::Dialect::Postgres) => {}
            Ok(sql::Dialect::Sqlite) => {
                return Err(invalid(format!(
                    "config.connection: {conn:?} is an SQLite connection; change data capture \
                     needs PostgreSQL"
                )));
            }
            Err(e) => return Err(failed(e, &format!("connection {conn:?}"))),
        }
        check_server(&conn, config.snapshot)?;
        let mut specs = Vec::with_capacity(config.tables.len());
        let mut tables = Vec::with_capacity(config.tables.len());
        let mut base_types = HashMap::new();
        for name in &config.tables {
            let (spec, table) = describe_table(&conn, name, &config, &mut base_types)?;
            if specs
                .iter()
                .any(|s: &TableSpec| s.qualified == spec.qualified)
            {
                return Err(invalid(format!(
                    "config.tables: {} is listed twice",
                    spec.qualified
                )));
            }
            specs.push(spec);
            tables.push(table);
        }
        ensure_publication(&conn, &config, &specs)?;
        let confirmed = ensure_slot(&conn, &config, cp.as_ref())?;

        let (pos, snapshot, copy, durable) = match cp {
            None => {
                let copy = config.snapshot.then_some(CopyState {
                    table: 0,
                    after: None,
                    tx: None,
                });
                (
                    Position {
                        lsn: confirmed,
                        partial: None,
                    },
                    None,
                    copy,
                    false,
                )
            }
            Some(cp) => {
                if cp.lsn < confirmed {
                    return Err(invalid(format!(
                        "replication slot {:?} has confirmed changes up to {} but this \
                         pipeline's checkpoint is at {}: something else consumed the changes in \
                         between, and they are lost to this pipeline. Give each pipeline a slot \
                         of its own; to start over, remove this pipeline's state and copy the \
                         tables again (snapshot = true)",
                        config.slot,
                        lsn_text(confirmed),
                        lsn_text(cp.lsn)
                    )));
                }
                let copy = match cp.copy {
                    None => None,
                    Some(c) => {
                        let listed = specs.get(c.table).map(|s| s.qualified.as_str());
                        if listed != Some(c.name.as_str()) {
                            return Err(invalid(format!(
                                "the checkpoint was made while copying {}, which is no longer \
                                 table {} of config.tables; keep the table list as it was until \
                                 the copy is done, or remove this pipeline's state to start over",
                                c.name,
                                c.table + 1
                            )));
                        }
                        if cp.snapshot.is_none() {
                            return Err(invalid(
                                "the checkpoint of a copy in progress lacks its snapshot",
                            ));
                        }
                        Some(CopyState {
                            table: c.table,
                            after: c.after,
                            tx: None,
                        })
                    }
                };
                // A checkpoint from before the first copied row may be one
                // the host has not stored yet (it reopens a rebuilt instance
                // from the last checkpoint polled): wait for its commit
                // again before emitting rows read with a fresh snapshot.
                let untouched = copy
                    .as_ref()
                    .is_some_and(|c| c.table == 0 && c.after.is_none());
                (
                    Position {
                        lsn: cp.lsn,
                        partial: cp.partial,
                    },
                    cp.snapshot,
                    copy,
                    !untouched,
                )
            }
        };
        if let Some(partial) = pos.partial
            && copy.is_some()
        {
            return Err(invalid(format!(
                "the checkpoint is inside the transaction committed at {} and in the copy at \
                 once",
                lsn_text(partial.commit)
            )));
        }
        let copy_version = pos.lsn.saturating_sub(1);
        ferry_plugin::log::info!(
            "slot {:?} at {}, position {}{}",
            config.slot,
            lsn_text(confirmed),
            lsn_text(pos.lsn),
            if copy.is_some() {
                ", copying the tables first"
            } else {
                ""
            }
        );
        Ok(Cdc {
            conn,
            slot: config.slot,
            publication: config.publication,
            table_field: config.table_field.clone(),
            tables,
            stream: Stream::new(specs, base_types, config.table_field, pos, snapshot),
            copy,
            snapshot_durable: durable,
            copy_version,
            window: 0,
            more: false,
        })
    }

    fn poll(&mut self, max_records: u32) -> Result<Polled, PluginError> {
        let max = max_records.max(1) as usize;
        if self.copy.is_some() {
            return self.poll_copy(max);
        }
        let mut out = Out::new(max);
        let mut fetches = 0;
        // The position moves as records are added: once there are some, a
        // failure must not lose them, so they go out and the failure comes
        // back on the next poll.
        let keep = |out: &Out, e: PluginError| -> Result<SourceStatus, PluginError> {
            if out.b.is_empty() {
                return Err(e);
            }
            ferry_plugin::log::debug!("delivering {} records first: {}", out.b.len(), e.message());
            Ok(SourceStatus::More)
        };
        let status = loop {
            match self.stream.fill(&mut out) {
                Ok(Fill::Full) => break SourceStatus::More,
                Ok(Fill::Drained) => {}
                Err(e) => break keep(&out, e)?,
            }
            if fetches == 2 || (fetches == 1 && !self.more) {
                break if self.more {
                    SourceStatus::More
                } else {
                    SourceStatus::CaughtUp
                };
            }
            // Rows, not records: each transaction adds a Begin and a Commit.
            let page = (max as u64).saturating_mul(4).saturating_add(1024);
            let fresh = match self.fetch(page) {
                Ok(fresh) => fresh,
                Err(e) => break keep(&out, e)?,
            };
            fetches += 1;
            if !fresh && !self.more {
                break SourceStatus::CaughtUp;
            }
        };
        Ok(Polled {
            records: out.b.finish(),
            checkpoint: self.checkpoint(),
            status,
        })
    }

    fn commit(&mut self, checkpoint: &[u8]) -> Result<(), PluginError> {
        let cp = Checkpoint::decode(checkpoint, &self.slot).map_err(PluginError::fatal)?;
        if cp.snapshot.is_some() {
            self.snapshot_durable = true;
        }
        if cp.copy.is_some() {
            return Ok(()); // the slot stays where the copy began
        }
        let params = [
            SqlValue::Text(self.slot.clone()),
            SqlValue::Text(lsn_text(cp.lsn)),
        ];
        sql::query(&self.conn, ADVANCE, &params)
            .map_err(|e| failed(e, &format!("advancing slot {:?}", self.slot)))?;
        Ok(())
    }
}

impl Cdc {
    fn checkpoint(&self) -> Vec<u8> {
        Checkpoint {
            v: 1,
            slot: self.slot.clone(),
            lsn: self.stream.pos.lsn,
            partial: self.stream.pos.partial,
            snapshot: self.stream.snapshot.clone(),
            copy: self.copy.as_ref().map(|c| Copy {
                table: c.table,
                name: self
                    .stream
                    .specs()
                    .get(c.table)
                    .map(|s| s.qualified.clone())
                    .unwrap_or_default(),
                after: c.after.clone(),
            }),
        }
        .encode()
    }

    /// Reads more changes into the stream; whether any transaction after
    /// the position came.
    fn fetch(&mut self, page: u64) -> Result<bool, PluginError> {
        let after = lsn_text(self.stream.pos.lsn);
        let mut limit = self.window.saturating_add(page);
        for _ in 0..32 {
            let doing = || format!("reading slot {:?}", self.slot);
            let tx = sql::begin(&self.conn, None, true).map_err(|e| failed(e, &doing()))?;
            tx.query(SETTINGS, &[]).map_err(|e| failed(e, &doing()))?;
            let params = [
                SqlValue::Text(self.slot.clone()),
                SqlValue::Int(i64::try_from(limit.min(i32::MAX as u64)).unwrap_or(i64::MAX)),
                SqlValue::Text(self.publication.clone()),
                SqlValue::Text(after.clone()),
            ];
            let rows = tx.query(PEEK, &params).map_err(|e| failed(e, &doing()))?;
            tx.commit().map_err(|e| failed(e, &doing()))?;
            let row = rows.rows.into_iter().next().unwrap_or_default();
            let mut values = row.into_iter();
            let total = int(values.next().as_ref())
                .and_then(|t| u64::try_from(t).ok())
                .ok_or_else(|| PluginError::fatal("the peek's answer has no row count"))?;
            let returned = int(values.next().as_ref()).unwrap_or(0);
            let data = match values.next() {
                Some(SqlValue::Bytes(blob)) => Messages::parse(blob)?,
                _ => Messages::default(),
            };
            if data.len() as i64 != returned {
                return Err(PluginError::fatal(format!(
                    "the peek announced {returned} messages but sent {}",
                    data.len()
                )));
            }
            let fresh = data.fresh() as u64;
            // The next peek comes once all of this was emitted, so all of it
            // is then before the position (less what a commit advanced the
            // slot past meanwhile: asking for a little more is harmless).
            self.window = total;
            self.more = total >= limit;
            if fresh == 0 && self.more {
                // Everything decoded was emitted before: the window up to
                // the position is larger than thought.
                limit = limit.saturating_mul(2);
                continue;
            }
            self.stream.push_messages(data);
            return Ok(fresh > 0);
        }
        Err(PluginError::retryable(format!(
            "slot {:?}: no new change found within {limit} decoded rows",
            self.slot
        )))
    }

    fn poll_copy(&mut self, max: usize) -> Result<Polled, PluginError> {
        let empty = |s: &Self| Polled {
            records: ferry_plugin::BatchBuilder::new().finish(),
            checkpoint: s.checkpoint(),
            status: SourceStatus::More,
        };
        if self.stream.snapshot.is_none() {
            // The first poll of a first run: take the snapshot, and emit
            // nothing until a checkpoint holding it is durable, so that
            // after a crash the stream skips by the snapshot whose rows
            // may have been delivered.
            let (tx, snapshot) = self.begin_copy(true)?;
            if let Some(copy) = &mut self.copy {
                copy.tx = Some(tx);
            }
            ferry_plugin::log::info!(
                "copying {} tables with snapshot {}:{} (xip {:?}), streaming from {}",
                self.tables.len(),
                snapshot.xmin,
                snapshot.xmax,
                snapshot.xip,
                lsn_text(self.stream.pos.lsn)
            );
            self.stream.snapshot = Some(snapshot);
            self.snapshot_durable = false;
            return Ok(empty(self));
        }
        if !self.snapshot_durable {
            return Ok(empty(self));
        }
        let Some(copy) = &mut self.copy else {
            return Ok(empty(self));
        };
        if copy.tx.is_none() {
            // A restart, or a failure of the transaction: read on with a
            // fresh snapshot (see the crate docs for why that is sound).
            let (tx, _) = self.begin_copy(false)?;
            if let Some(copy) = &mut self.copy {
                copy.tx = Some(tx);
            }
        }
        let mut out = ferry_plugin::BatchBuilder::with_capacity(max.min(4096));
        let result = self.copy_page(&mut out, max);
        if result.is_err()
            && let Some(copy) = &mut self.copy
        {
            copy.tx = None;
        }
        result?;
        Ok(Polled {
            records: out.finish(),
            checkpoint: self.checkpoint(),
            status: SourceStatus::More,
        })
    }

    /// Starts the copy's transaction; with `snapshot`, also reads its
    /// snapshot and the WAL position after it.
    fn begin_copy(&self, snapshot: bool) -> Result<(sql::Transaction, Snapshot), PluginError> {
        let doing = || "starting the copy".to_owned();
        let tx = sql::begin(&self.conn, Some("repeatable-read"), true)
            .map_err(|e| failed(e, &doing()))?;
        // The first statement fixes the transaction's snapshot.
        tx.query(SETTINGS, &[]).map_err(|e| failed(e, &doing()))?;
        if !snapshot {
            return Ok((
                tx,
                Snapshot {
                    xmin: 0,
                    xmax: 0,
                    xip: Vec::new(),
                    until: 0,
                },
            ));
        }
        let rows = tx
            .query("SELECT pg_current_snapshot()::text", &[])
            .map_err(|e| failed(e, &doing()))?;
        let snap = rows
            .rows
            .first()
            .and_then(|r| text(r.first()))
            .unwrap_or("")
            .to_owned();
        // Read after the snapshot was taken (the previous statement), so
        // every transaction the snapshot sees committed before it.
        let rows = tx
            .query("SELECT pg_current_wal_insert_lsn()::text", &[])
            .map_err(|e| failed(e, &doing()))?;
        let until = rows
            .rows
            .first()
            .and_then(|r| text(r.first()))
            .and_then(checkpoint::parse_lsn)
            .ok_or_else(|| PluginError::fatal("pg_current_wal_insert_lsn() gave no LSN"))?;
        let snapshot = Snapshot::parse(&snap, until).map_err(PluginError::fatal)?;
        Ok((tx, snapshot))
    }

    /// Copies one page of the current table into `out`.
    fn copy_page(
        &mut self,
        out: &mut ferry_plugin::BatchBuilder,
        max: usize,
    ) -> Result<(), PluginError> {
        let Some(copy) = &mut self.copy else {
            return Ok(());
        };
        let Some(tx) = &copy.tx else {
            return Ok(());
        };
        let (Some(table), Some(spec)) = (
            self.tables.get(copy.table),
            self.stream.specs().get(copy.table),
        ) else {
            return Ok(());
        };
        let mut params = vec![SqlValue::Int(max as i64)];
        let statement = match &copy.after {
            None => &table.first_page,
            Some(after) => {
                params.extend(after.iter().map(|k| SqlValue::Text(k.clone())));
                &table.next_page
            }
        };
        let rows = tx
            .query(statement, &params)
            .map_err(|e| failed(e, &format!("copying {}", spec.qualified)))?;
        let nkey = spec.key.len();
        let mut last: Option<Vec<String>> = None;
        let mut notes: Vec<String> = Vec::new();
        for row in &rows.rows {
            let keys: Vec<&str> = row
                .iter()
                .take(nkey)
                .filter_map(|v| text(Some(v)))
                .collect();
            if keys.len() != nkey {
                return Err(PluginError::fatal(format!(
                    "{}: a row without a key value",
                    spec.qualified
                )));
            }
            let mut r = out.row(&key_text(&keys), ferry_plugin::Op::Upsert);
            r.version(self.copy_version);
            if let Some(field) = &self.table_field {
                r.set(field, Value::Text(&spec.qualified));
            }
            for ((name, kind), v) in table.columns.iter().zip(row.iter().skip(nkey)) {
                match v {
                    SqlValue::Null => {
                        r.set(name, Value::Null);
                    }
                    SqlValue::Text(s) => match values::convert(*kind, s) {
                        Ok(c) => {
                            r.set(name, c.as_value());
                        }
                        Err(why) => {
                            r.set(name, Value::Text(s));
                            notes.push(format!("{}.{name}: {why}", spec.qualified));
                        }
                    },
                    other => {
                        return Err(PluginError::fatal(format!(
                            "{}.{name}: the copy read {other:?} where it asked for text",
                            spec.qualified
                        )));
                    }
                }
            }
            last = Some(keys.iter().map(|k| (*k).to_owned()).collect());
        }
        if let Some(note) = notes.first() {
            ferry_plugin::log::warn!(
                "{note}; passed on as text ({} such values in this page)",
                notes.len()
            );
        }
        if rows.rows.len() < max {
            // The table is done.
            copy.table += 1;
            copy.after = None;
            if copy.table >= self.tables.len() {
                // Read-only: a failure to end it loses nothing.
                if let Some(tx) = copy.tx.take()
                    && let Err(e) = tx.commit()
                {
                    ferry_plugin::log::warn!(
                        "ending the copy's transaction: {}",
                        sql::describe(&e)
                    );
                }
                ferry_plugin::log::info!(
                    "the copy is done; streaming changes from {}",
                    lsn_text(self.stream.pos.lsn)
                );
                self.copy = None;
            }
        } else {
            copy.after = last;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
