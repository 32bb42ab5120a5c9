//! The table source: reads a table (or view) as records, in `delta` or
//! `full` mode.
//!
//! # Delta
//!
//! Each *pass* reads the rows whose cursor is at least `high - lookback`
//! (`high`: the largest cursor value read so far), in `(cursor, key)`
//! order, a page of `max-records` rows per poll, the next page starting
//! after the last `(cursor, key)` read. Rows already emitted with the same
//! `(key, cursor)` are skipped: the checkpoint keeps a hash of each pair
//! whose cursor is inside the window (the *skip set*; older pairs are
//! dropped as the window moves). The pass ends at a page that is not full:
//! the poll answers `caught-up`, and the next poll starts a new pass.
//!
//! Why a window: a cursor is usually set when a transaction writes the row
//! (`now()`, a trigger, the application), but the row becomes visible only
//! when that transaction commits. A transaction that writes `updated_at =
//! 10:00:00` and commits at 10:00:07 makes its row appear *behind* rows
//! committed meanwhile with 10:00:05, which a pass may already have read
//! past. Reading the last `lookback` of cursor values again on each pass
//! finds such rows, and the skip set keeps the rows already sent from being
//! sent twice. This needs no privileges and works the same on PostgreSQL
//! and SQLite. Its limit: a row that becomes visible more than `lookback`
//! (in cursor values) behind `high` is missed, so the window must be longer
//! than the longest write transaction (plus the clock skew between the
//! writers, when applications set the cursor). For a change feed without
//! that limit, use PostgreSQL's `mode = "cdc"`.
//!
//! # Full
//!
//! A pass reads the whole table in key order, a page per poll (the next
//! page starts after the last key read, so a restart resumes
//! mid-snapshot), and emits every row as an upsert. The checkpoint keeps
//! the keys the previous pass emitted; a key read again is struck from that
//! set, and what is left when the snapshot ends are the keys that are gone:
//! they are emitted as deletes, then the keys of this pass become the
//! previous pass's. So the target converges to exactly the table's keys.
//! The key sets live in the checkpoint, front-coded (a few bytes per key
//! for sequential keys), so full mode suits tables up to a few hundred
//! thousand rows; beyond that, use delta mode.

use std::collections::BTreeSet;

use ferry_plugin::sql::Value as SqlValue;
use ferry_plugin::{BatchBuilder, ColumnId, Op, PluginError, Polled, SourceStatus, Value};

use crate::checkpoint::{self, Reader, Writer};
use crate::config::{Lookback, Mode, SourceConfig, parse_duration};
use crate::db::Database;
use crate::dialect::{ColType, Dialect};
use crate::ident::{self, TableName};
use crate::schema::{ColumnMeta, introspect};
use crate::values::{key_text, parse_timestamp, read};

/// How many full pages a poll reads at most while every row of them was
/// already sent (skipped), before it answers an empty batch with `more`.
const MAX_EMPTY_PAGES: usize = 8;

/// The default lookback of a timestamp cursor: five minutes.
pub const DEFAULT_LOOKBACK_MICROS: i64 = 300_000_000;

const MAGIC: &[u8; 4] = b"FSQL";
const FORMAT: u8 = 1;

/// A table source over a [`Database`].
pub struct TableSource<D: Database> {
    db: D,
    shape: Shape,
    state: State,
}

/// What does not change after `open`: the table, the columns read, where
/// the key and the metadata are among them.
#[derive(Debug, Clone)]
struct Shape {
    dialect: Dialect,
    table: TableName,
    /// The columns read, in select order.
    columns: Vec<ColumnMeta>,
    select_list: String,
    /// Positions of the key columns in `columns`.
    key: Vec<usize>,
    /// `(position, field name)` of each emitted field.
    emit: Vec<(usize, String)>,
    version: Option<usize>,
    updated_at: Option<usize>,
    fingerprint: u64,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Delta(DeltaState),
    Full(FullState),
}

/// A cursor value: `order` compares, `value` is bound in SQL (an integer,
/// a timestamp, or SQLite's timestamp text as stored).
#[derive(Debug, Clone, PartialEq)]
struct Cursor {
    order: i64,
    value: SqlValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CursorKind {
    Int,
    Timestamp,
}

impl Cursor {
    fn read(kind: CursorKind, v: &SqlValue, column: &str) -> Result<Cursor, String> {
        match (kind, v) {
            (CursorKind::Int, SqlValue::Int(n)) => Ok(Cursor {
                order: *n,
                value: SqlValue::Int(*n),
            }),
            (CursorKind::Timestamp, SqlValue::Timestamp(t)) => Ok(Cursor {
                order: *t,
                value: SqlValue::Timestamp(*t),
            }),
            (CursorKind::Timestamp, SqlValue::Text(s)) => match parse_timestamp(s) {
                Some(t) => Ok(Cursor {
                    order: t,
                    value: SqlValue::Text(s.clone()),
                }),
                None => Err(format!(
                    "cursor column {column:?} holds {s:?}, which is not a timestamp"
                )),
            },
            (_, other) => Err(format!(
                "cursor column {column:?} holds {}, not {}",
                crate::values::plain(other).describe(),
                match kind {
                    CursorKind::Int => "an integer",
                    CursorKind::Timestamp => "a timestamp",
                }
            )),
        }
    }

    /// The cursor `by` units earlier, in the same form.
    fn back(&self, by: i64) -> Cursor {
        let order = self.order.saturating_sub(by);
        let value = match &self.value {
            SqlValue::Int(_) => SqlValue::Int(order),
            SqlValue::Timestamp(_) => SqlValue::Timestamp(order),
            SqlValue::Text(sample) => SqlValue::Text(crate::values::format_like(sample, order)),
            other => other.clone(),
        };
        Cursor { order, value }
    }

    fn write(&self, w: &mut Writer) {
        w.zigzag(self.order);
        w.value(&self.value);
    }

    fn read_from(r: &mut Reader<'_>) -> Result<Cursor, String> {
        Ok(Cursor {
            order: r.zigzag()?,
            value: r.value()?,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
struct DeltaState {
    cursor: usize,
    kind: CursorKind,
    lookback: i64,
    /// The largest cursor value read.
    high: Option<Cursor>,
    /// The pass under way, if any.
    pass: Option<DeltaPass>,
    /// `(cursor order, hash of the key)` of the rows emitted inside the
    /// window.
    seen: BTreeSet<(i64, u64)>,
}

#[derive(Debug, Clone, PartialEq)]
struct DeltaPass {
    /// Where the pass started (`None`: from the first row).
    low: Option<Cursor>,
    /// The last `(cursor, key)` read.
    last: Option<(Cursor, Vec<SqlValue>)>,
}

#[derive(Debug, Clone, PartialEq)]
struct FullState {
    phase: Phase,
    /// Keys of the previous pass not read again (yet) in this one.
    remaining: BTreeSet<Vec<u8>>,
    /// Keys read in this pass.
    current: BTreeSet<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    /// Between passes: `remaining` holds the last pass's keys.
    Idle,
    /// Reading the snapshot; the last key read.
    Snapshot(Option<Vec<SqlValue>>),
    /// Emitting deletes for the keys left in `remaining`.
    Deleting,
}

fn invalid(message: impl Into<String>) -> PluginError {
    PluginError::invalid_config(message.into())
}

impl<D: Database> TableSource<D> {
    /// Opens the source: checks the settings against the table's catalog
    /// entry and resumes from `checkpoint`.
    pub fn open(
        mut db: D,
        config: SourceConfig,
        checkpoint: Option<&[u8]>,
    ) -> Result<Self, PluginError> {
        let dialect = db.dialect();
        let table = TableName::parse(&config.table).map_err(invalid)?;
        let Some(meta) = introspect(&mut db, &table)? else {
            return Err(invalid(not_found(dialect, &table)));
        };
        let key_names = match config.key.clone() {
            Some(k) => k.into_vec(),
            None if meta.primary_key.is_empty() => {
                return Err(invalid(format!(
                    "key: table {table} has no primary key; set `key` to the columns that identify a row"
                )));
            }
            None => meta.primary_key.clone(),
        };
        if key_names.is_empty() {
            return Err(invalid("key: give at least one column"));
        }
        let emit_names: Vec<String> = match &config.columns {
            Some(c) if c.is_empty() => return Err(invalid("columns: give at least one column")),
            Some(c) => c.clone(),
            None => meta.columns.iter().map(|c| c.name.clone()).collect(),
        };
        let mut selected: Vec<ColumnMeta> = Vec::new();
        let position = |name: &str,
                        what: &str,
                        selected: &mut Vec<ColumnMeta>|
         -> Result<usize, PluginError> {
            ident::check(name, what).map_err(invalid)?;
            let col = meta.require(name, what).map_err(invalid)?;
            Ok(match selected.iter().position(|c| c.name == name) {
                Some(p) => p,
                None => {
                    selected.push(col.clone());
                    selected.len() - 1
                }
            })
        };
        let mut emit = Vec::with_capacity(emit_names.len());
        for name in &emit_names {
            let p = position(name, "columns", &mut selected)?;
            emit.push((p, name.clone()));
        }
        let mut key = Vec::with_capacity(key_names.len());
        for name in &key_names {
            key.push(position(name, "key", &mut selected)?);
        }
        let version = match &config.version_column {
            Some(name) => {
                let p = position(name, "version_column", &mut selected)?;
                if !matches!(selected.get(p).map(|c| c.ty), Some(ColType::Int { .. })) {
                    return Err(invalid(format!(
                        "version_column: {name:?} is not an integer column"
                    )));
                }
                Some(p)
            }
            None => None,
        };
        let updated_at = match &config.updated_at_column {
            Some(name) => {
                let p = position(name, "updated_at_column", &mut selected)?;
                if selected.get(p).map(|c| c.ty) != Some(ColType::Timestamp) {
                    return Err(invalid(format!(
                        "updated_at_column: {name:?} is not a timestamp column"
                    )));
                }
                Some(p)
            }
            None => None,
        };
        let cursor = match (config.mode, &config.cursor) {
            (Mode::Delta, Some(name)) => Some(position(name, "cursor", &mut selected)?),
            (Mode::Delta, None) => {
                return Err(invalid(
                    "cursor: mode \"delta\" needs a cursor, an integer or timestamp column that grows with every change (such as updated_at)",
                ));
            }
            (Mode::Full, Some(_)) => {
                return Err(invalid(
                    "cursor: only for mode \"delta\"; mode \"full\" reads the whole table",
                ));
            }
            (Mode::Full, None) => None,
        };
        if config.mode == Mode::Full && config.lookback.is_some() {
            return Err(invalid("lookback: only for mode \"delta\""));
        }
        if !meta.has_unique(&key_names) {
            ferry_plugin::log::warn!(
                "table {table}: no primary key or unique index on ({}); rows sharing a key would be read as one record, and paging needs the key to be unique",
                key_names.join(", ")
            );
        }
        let select_list = selected
            .iter()
            .map(|c| dialect.select_expr(c))
            .collect::<Vec<_>>()
            .join(", ");
        let mut print = format!("{}\0{}", config.mode.name(), table.quoted());
        for k in &key_names {
            print.push('\0');
            print.push_str(k);
        }
        print.push('\0');
        print.push_str(config.cursor.as_deref().unwrap_or(""));
        let shape = Shape {
            dialect,
            table,
            columns: selected,
            select_list,
            key,
            emit,
            version,
            updated_at,
            fingerprint: checkpoint::hash64(print.as_bytes()),
        };
        let fresh = match (config.mode, cursor) {
            (Mode::Delta, Some(cursor)) => {
                let col = shape.columns.get(cursor).ok_or_else(|| invalid("cursor"))?;
                let kind = match col.ty {
                    ColType::Int { .. } => CursorKind::Int,
                    ColType::Timestamp => CursorKind::Timestamp,
                    _ => {
                        return Err(invalid(format!(
                            "cursor: column {:?} is {}; a cursor must be an integer or a timestamp column",
                            col.name, col.declared
                        )));
                    }
                };
                let lookback = lookback_width(kind, config.lookback.as_ref(), &col.name)?;
                State::Delta(DeltaState {
                    cursor,
                    kind,
                    lookback,
                    high: None,
                    pass: None,
                    seen: BTreeSet::new(),
                })
            }
            _ => State::Full(FullState {
                phase: Phase::Idle,
                remaining: BTreeSet::new(),
                current: BTreeSet::new(),
            }),
        };
        let state = match checkpoint {
            None => fresh,
            Some(bytes) => match decode_state(&shape, fresh.clone(), bytes) {
                Ok(Some(state)) => state,
                Ok(None) => {
                    ferry_plugin::log::warn!(
                        "the checkpoint was made for another table, key, cursor or mode; reading {} from the beginning",
                        shape.table
                    );
                    fresh
                }
                Err(e) => {
                    return Err(invalid(format!(
                        "the checkpoint cannot be read ({e}); it was not made by this version of the SQL source"
                    )));
                }
            },
        };
        Ok(TableSource { db, shape, state })
    }

    /// Reads up to `max_records` records.
    pub fn poll(&mut self, max_records: u32) -> Result<Polled, PluginError> {
        let limit = max_records.max(1) as usize;
        let mut out = BatchBuilder::with_capacity(limit);
        let ids: Vec<ColumnId> = self
            .shape
            .emit
            .iter()
            .map(|(_, name)| out.column(name))
            .collect();
        let status = match &mut self.state {
            State::Delta(d) => poll_delta(&mut self.db, &self.shape, d, &mut out, &ids, limit)?,
            State::Full(f) => poll_full(&mut self.db, &self.shape, f, &mut out, &ids, limit)?,
        };
        Ok(Polled {
            records: out.finish(),
            checkpoint: encode_state(&self.shape, &self.state),
            status,
        })
    }

    /// The database, for tests.
    pub fn db_mut(&mut self) -> &mut D {
        &mut self.db
    }
}

fn not_found(dialect: Dialect, table: &TableName) -> String {
    let mut m = format!("table: {} has no table or view {table}", dialect.name());
    if dialect == Dialect::Postgres && table.name.chars().any(char::is_uppercase) {
        m.push_str(&format!(
            " (names are case-sensitive here: a table created without quotes is stored in lower case, {:?})",
            table.name.to_lowercase()
        ));
    }
    m
}

fn lookback_width(
    kind: CursorKind,
    lookback: Option<&Lookback>,
    column: &str,
) -> Result<i64, PluginError> {
    match (kind, lookback) {
        (CursorKind::Timestamp, None) => Ok(DEFAULT_LOOKBACK_MICROS),
        (CursorKind::Timestamp, Some(Lookback::Duration(d))) => {
            parse_duration(d).map_err(|e| invalid(format!("lookback: {e}")))
        }
        (CursorKind::Timestamp, Some(Lookback::Count(_))) => Err(invalid(format!(
            "lookback: cursor {column:?} is a timestamp, so the lookback is a duration such as \"5m\""
        ))),
        (CursorKind::Int, Some(Lookback::Count(n))) if *n >= 0 => Ok(*n),
        (CursorKind::Int, Some(Lookback::Count(_))) => {
            Err(invalid("lookback: a window cannot be negative"))
        }
        (CursorKind::Int, Some(Lookback::Duration(_))) => Err(invalid(format!(
            "lookback: cursor {column:?} is an integer, so the lookback is a number of cursor values such as 1000"
        ))),
        (CursorKind::Int, None) => {
            ferry_plugin::log::warn!(
                "cursor {column:?} is an integer and `lookback` is not set, so it is 0: a row committed late with a lower value than rows already read is missed; set `lookback` to cover the values written during your longest transaction"
            );
            Ok(0)
        }
    }
}

impl Shape {
    fn key_sql(&self) -> Vec<&ColumnMeta> {
        self.key
            .iter()
            .filter_map(|&p| self.columns.get(p))
            .collect()
    }

    fn emit_upsert(&self, out: &mut BatchBuilder, ids: &[ColumnId], row: &[SqlValue]) {
        let null = SqlValue::Null;
        let at = |p: usize| row.get(p).unwrap_or(&null);
        let ty = |p: usize| self.columns.get(p).map_or(ColType::Other, |c| c.ty);
        let key: Vec<Value<'_>> = self
            .key
            .iter()
            .map(|&p| read(self.dialect, ty(p), at(p)))
            .collect();
        let mut r = out.row(&key_text(&key), Op::Upsert);
        for ((p, _), id) in self.emit.iter().zip(ids) {
            r.set_at(*id, read(self.dialect, ty(*p), at(*p)));
        }
        if let Some(p) = self.version
            && let SqlValue::Int(n) = at(p)
            && let Ok(v) = u64::try_from(*n)
        {
            r.version(v);
        }
        if let Some(p) = self.updated_at
            && let Value::Timestamp(t) = read(self.dialect, ty(p), at(p))
        {
            r.updated_at(t);
        }
    }

    fn emit_delete(&self, out: &mut BatchBuilder, ids: &[ColumnId], key: &[SqlValue]) {
        let ty = |p: usize| self.columns.get(p).map_or(ColType::Other, |c| c.ty);
        let values: Vec<Value<'_>> = self
            .key
            .iter()
            .zip(key)
            .map(|(&p, v)| read(self.dialect, ty(p), v))
            .collect();
        let mut r = out.row(&key_text(&values), Op::Delete);
        for (&p, v) in self.key.iter().zip(&values) {
            if let Some(i) = self.emit.iter().position(|(e, _)| *e == p)
                && let Some(id) = ids.get(i)
            {
                r.set_at(*id, *v);
            }
        }
    }

    fn key_values(&self, row: &[SqlValue]) -> Vec<SqlValue> {
        self.key
            .iter()
            .map(|&p| row.get(p).cloned().unwrap_or(SqlValue::Null))
            .collect()
    }
}

/// The statement reading one delta page: rows with a cursor at least the
/// pass's low bound (or any non-null cursor), after the last `(cursor,
/// key)` read, in that order. `head` is `SELECT <columns> FROM <table>`.
pub fn delta_page_sql(
    dialect: Dialect,
    head: &str,
    cursor: &ColumnMeta,
    key: &[&ColumnMeta],
    has_low: bool,
    has_last: bool,
    limit: usize,
) -> String {
    let c = ident::quote(&cursor.name);
    let mut n = 0;
    let mut next = |col: &ColumnMeta| {
        n += 1;
        dialect.value_param(col, n, false)
    };
    let mut sql = format!("{head} WHERE ");
    if has_low {
        sql.push_str(&format!("{c} >= {}", next(cursor)));
    } else {
        sql.push_str(&format!("{c} IS NOT NULL"));
    }
    let order = std::iter::once(c.clone())
        .chain(key.iter().map(|k| ident::quote(&k.name)))
        .collect::<Vec<_>>()
        .join(", ");
    if has_last {
        let params = std::iter::once(cursor)
            .chain(key.iter().copied())
            .map(&mut next)
            .collect::<Vec<_>>()
            .join(", ");
        sql.push_str(&format!(" AND ({order}) > ({params})"));
    }
    sql.push_str(&format!(" ORDER BY {order} LIMIT {limit}"));
    sql
}

/// The statement reading one page of a full snapshot: rows after the last
/// key read, in key order.
pub fn full_page_sql(
    dialect: Dialect,
    table: &str,
    select_list: &str,
    key: &[&ColumnMeta],
    has_last: bool,
    limit: usize,
) -> String {
    let order = ident::quoted_list(key.iter().map(|k| k.name.as_str()));
    let mut sql = format!("SELECT {select_list} FROM {table}");
    if has_last {
        let params = key
            .iter()
            .enumerate()
            .map(|(i, k)| dialect.value_param(k, i + 1, false))
            .collect::<Vec<_>>()
            .join(", ");
        sql.push_str(&format!(" WHERE ({order}) > ({params})"));
    }
    sql.push_str(&format!(" ORDER BY {order} LIMIT {limit}"));
    sql
}

fn poll_delta<D: Database>(
    db: &mut D,
    shape: &Shape,
    d: &mut DeltaState,
    out: &mut BatchBuilder,
    ids: &[ColumnId],
    limit: usize,
) -> Result<SourceStatus, PluginError> {
    let cursor_col = shape
        .columns
        .get(d.cursor)
        .ok_or_else(|| PluginError::fatal("the cursor column is gone"))?;
    let head = format!("SELECT {} FROM {}", shape.select_list, shape.table.quoted());
    let keys = shape.key_sql();
    for _ in 0..MAX_EMPTY_PAGES {
        let pass = match &mut d.pass {
            Some(p) => p,
            None => {
                let low = d.high.as_ref().map(|h| h.back(d.lookback));
                if let Some(l) = &low {
                    d.seen = d.seen.split_off(&(l.order, 0));
                }
                d.pass.insert(DeltaPass { low, last: None })
            }
        };
        let sql = delta_page_sql(
            shape.dialect,
            &head,
            cursor_col,
            &keys,
            pass.low.is_some(),
            pass.last.is_some(),
            limit,
        );
        let mut params = Vec::new();
        if let Some(low) = &pass.low {
            params.push(low.value.clone());
        }
        if let Some((c, k)) = &pass.last {
            params.push(c.value.clone());
            params.extend(k.iter().cloned());
        }
        let page = db.query(&sql, &params)?;
        let full = page.rows.len() >= limit;
        for row in &page.rows {
            let raw = row.get(d.cursor).unwrap_or(&SqlValue::Null);
            let cursor = Cursor::read(d.kind, raw, &cursor_col.name).map_err(PluginError::fatal)?;
            let key = shape.key_values(row);
            let entry = (
                cursor.order,
                checkpoint::hash64(&checkpoint::encode_key(&key)),
            );
            if d.seen.insert(entry) {
                shape.emit_upsert(out, ids, row);
            }
            if d.high.as_ref().is_none_or(|h| cursor.order > h.order) {
                d.high = Some(cursor.clone());
            }
            pass.last = Some((cursor, key));
        }
        if !full {
            d.pass = None;
            return Ok(SourceStatus::CaughtUp);
        }
        if !out.is_empty() {
            break;
        }
    }
    Ok(SourceStatus::More)
}

fn poll_full<D: Database>(
    db: &mut D,
    shape: &Shape,
    f: &mut FullState,
    out: &mut BatchBuilder,
    ids: &[ColumnId],
    limit: usize,
) -> Result<SourceStatus, PluginError> {
    let table = shape.table.quoted();
    let keys = shape.key_sql();
    loop {
        match &mut f.phase {
            Phase::Idle => f.phase = Phase::Snapshot(None),
            Phase::Snapshot(last) => {
                let room = limit.saturating_sub(out.len());
                if room == 0 {
                    return Ok(SourceStatus::More);
                }
                let sql = full_page_sql(
                    shape.dialect,
                    &table,
                    &shape.select_list,
                    &keys,
                    last.is_some(),
                    room,
                );
                let params = last.clone().unwrap_or_default();
                let page = db.query(&sql, &params)?;
                for row in &page.rows {
                    shape.emit_upsert(out, ids, row);
                    let key = shape.key_values(row);
                    let bytes = checkpoint::encode_key(&key);
                    f.remaining.remove(&bytes);
                    f.current.insert(bytes);
                    *last = Some(key);
                }
                if page.rows.len() < room {
                    f.phase = Phase::Deleting;
                } else {
                    return Ok(SourceStatus::More);
                }
            }
            Phase::Deleting => {
                while out.len() < limit {
                    let Some(bytes) = f.remaining.pop_first() else {
                        break;
                    };
                    let key = checkpoint::decode_key(&bytes).map_err(PluginError::fatal)?;
                    shape.emit_delete(out, ids, &key);
                }
                if !f.remaining.is_empty() {
                    return Ok(SourceStatus::More);
                }
                f.remaining = std::mem::take(&mut f.current);
                f.phase = Phase::Idle;
                return Ok(SourceStatus::CaughtUp);
            }
        }
    }
}

/// Checkpoint layout: `FSQL`, format 1, mode (1 delta, 2 full), the 8-byte
/// fingerprint of mode, table, key and cursor; then for delta: high
/// (flag, cursor), pass (flag, low (flag, cursor), last (flag, cursor,
/// values)), the skip set; for full: phase (0 idle, 1 snapshot, 2
/// deleting), last key (flag, values) while in a snapshot, the previous
/// pass's remaining keys, this pass's keys.
fn encode_state(shape: &Shape, state: &State) -> Vec<u8> {
    let mut w = Writer::new();
    w.raw(MAGIC);
    w.u8(FORMAT);
    match state {
        State::Delta(d) => {
            w.u8(1);
            w.u64_fixed(shape.fingerprint);
            match &d.high {
                Some(h) => {
                    w.u8(1);
                    h.write(&mut w);
                }
                None => w.u8(0),
            }
            match &d.pass {
                Some(p) => {
                    w.u8(1);
                    match &p.low {
                        Some(l) => {
                            w.u8(1);
                            l.write(&mut w);
                        }
                        None => w.u8(0),
                    }
                    match &p.last {
                        Some((c, k)) => {
                            w.u8(1);
                            c.write(&mut w);
                            w.values(k);
                        }
                        None => w.u8(0),
                    }
                }
                None => w.u8(0),
            }
            checkpoint::write_seen(&mut w, &d.seen);
        }
        State::Full(f) => {
            w.u8(2);
            w.u64_fixed(shape.fingerprint);
            match &f.phase {
                Phase::Idle => w.u8(0),
                Phase::Snapshot(last) => {
                    w.u8(1);
                    match last {
                        Some(k) => {
                            w.u8(1);
                            w.values(k);
                        }
                        None => w.u8(0),
                    }
                }
                Phase::Deleting => w.u8(2),
            }
            checkpoint::write_key_set(&mut w, &f.remaining);
            checkpoint::write_key_set(&mut w, &f.current);
        }
    }
    w.finish()
}

/// Decodes a checkpoint into `fresh`'s mode; `Ok(None)` if it was made for
/// another configuration (or by another source), `Err` if it is damaged.
fn decode_state(shape: &Shape, fresh: State, bytes: &[u8]) -> Result<Option<State>, String> {
    let mut r = Reader::new(bytes);
    if r.raw(4).ok() != Some(MAGIC.as_slice()) {
        return Ok(None);
    }
    if r.u8()? != FORMAT {
        return Ok(None);
    }
    let mode = r.u8()?;
    let fingerprint = r.u64_fixed()?;
    if fingerprint != shape.fingerprint {
        return Ok(None);
    }
    let flag = |r: &mut Reader<'_>| -> Result<bool, String> { Ok(r.u8()? != 0) };
    let state = match (fresh, mode) {
        (State::Delta(mut d), 1) => {
            d.high = if flag(&mut r)? {
                Some(Cursor::read_from(&mut r)?)
            } else {
                None
            };
            d.pass = if flag(&mut r)? {
                let low = if flag(&mut r)? {
                    Some(Cursor::read_from(&mut r)?)
                } else {
                    None
                };
                let last = if flag(&mut r)? {
                    let c = Cursor::read_from(&mut r)?;
                    Some((c, r.values()?))
                } else {
                    None
                };
                Some(DeltaPass { low, last })
            } else {
                None
            };
            d.seen = checkpoint::read_seen(&mut r)?;
            State::Delta(d)
        }
        (State::Full(mut f), 2) => {
            f.phase = match r.u8()? {
                0 => Phase::Idle,
                1 => Phase::Snapshot(if flag(&mut r)? {
                    Some(r.values()?)
                } else {
                    None
                }),
                2 => Phase::Deleting,
                p => return Err(format!("unknown phase {p}")),
            };
            f.remaining = checkpoint::read_key_set(&mut r)?;
            f.current = checkpoint::read_key_set(&mut r)?;
            State::Full(f)
        }
        _ => return Ok(None),
    };
    if !r.is_done() {
        return Err("bytes after the end".into());
    }
    Ok(Some(state))
}

#[cfg(test)]
mod tests;
