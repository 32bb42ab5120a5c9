//! Turning decoded WAL into records: the part of the source that involves
//! no SQL, so it is tested natively on byte fixtures.
//!
//! [`Stream`] holds the rows a peek returned but not yet emitted
//! (`pending`, whole transactions), the tables' layouts from `Relation`
//! messages, and the position reached ([`Position`]). [`Stream::fill`]
//! appends records to a batch until it is full or nothing is pending.
//!
//! Rules:
//!
//! - A transaction whose commit record is before the position was emitted
//!   already (a peek always starts again at the slot's confirmed position,
//!   which is behind the position until the host commits): it is skipped,
//!   except for its `Relation` messages, which describe later changes too.
//! - The transaction the position is inside of (`partial`) is skipped up
//!   to the number of row changes already emitted.
//! - A transaction that the initial copy's snapshot already saw is skipped.
//! - A transaction is not cut between batches when it fits in one: if it
//!   does not fit in what is left of the batch, the batch ends before it.
//!   A larger one is cut, and the position records how far into it.
//! - An update whose new row lacks an unchanged TOASTed value (`u`) takes
//!   it from the old row when the table has `REPLICA IDENTITY FULL`;
//!   otherwise the record leaves that column out, and goes in a batch
//!   where no record sets that column (a batch's columns are shared by its
//!   records), so no sink sees a null where the value was only not sent.

use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;

use ferry_plugin::{BatchBuilder, Op, PluginError, Value};

use crate::checkpoint::Partial;
use crate::pgoutput::{self, Begin, Datum, Message, Old, Tuple};
use crate::values::{self, Kind};
use crate::visibility::Snapshot;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A configured table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// Its schema.
    pub schema: String,
    /// Its name.
    pub name: String,
    /// `schema.table`, as set in `table_field`.
    pub qualified: String,
    /// The key columns, in key order.
    pub key: Vec<String>,
}

/// Where the stream stands: what was emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// Every transaction ending at or before this LSN was emitted.
    pub lsn: u64,
    /// A transaction emitted in part.
    pub partial: Option<Partial>,
}

/// A relation's layout, from its last `Relation` message.
#[derive(Debug, Clone)]
struct Rel {
    /// Index into the configured tables, or `None` for a table that is in
    /// the publication but not configured (its changes are ignored).
    table: Option<usize>,
    names: Vec<String>,
    kinds: Vec<Kind>,
    key: Vec<usize>,
}

/// The transaction being read.
#[derive(Debug, Clone)]
struct Tx {
    begin: Begin,
    origin: Option<String>,
    /// Row-change messages read so far.
    changes: u64,
    /// Skip every change (emitted before, or in the snapshot).
    skip_all: bool,
    /// Skip the first this many changes (emitted before a restart).
    skip_first: u64,
    /// Whether the size check was done for this transaction.
    sized: bool,
}

/// A batch being filled.
#[derive(Debug, Default)]
pub struct Out {
    /// The records.
    pub b: BatchBuilder,
    /// Columns some record of the batch leaves out (unchanged TOASTed
    /// values): no record of the batch may set them, or the others would
    /// read as null there.
    lacking: HashSet<String>,
    /// The most records it should hold.
    pub max: usize,
}

impl Out {
    /// An empty batch of at most `max` records.
    pub fn new(max: usize) -> Out {
        Out {
            b: BatchBuilder::with_capacity(max.min(4096)),
            lacking: HashSet::new(),
            max: max.max(1),
        }
    }

    /// Whether no more records fit.
    pub fn is_full(&self) -> bool {
        self.b.len() >= self.max
    }

    /// Whether `n` records that set the columns `sets` and leave out the
    /// columns `lacks` may join the batch; if so, notes what they leave out.
    fn admit(&mut self, n: usize, sets: &[&str], lacks: &[&str]) -> bool {
        if self.b.is_empty() {
            self.lacking.clear();
        } else {
            if self.b.len() + n > self.max {
                return false;
            }
            if !self.lacking.is_empty() && sets.iter().any(|c| self.lacking.contains(*c)) {
                return false;
            }
            if !lacks.is_empty() && self.b.column_names().any(|c| lacks.contains(&c)) {
                return false;
            }
        }
        self.lacking.extend(lacks.iter().map(|c| (*c).to_owned()));
        true
    }
}

/// One message waiting to be handled: a range of a buffer shared by the
/// messages of one peek, so they are not copied one by one.
#[derive(Debug, Clone)]
struct Msg {
    buf: Rc<Vec<u8>>,
    start: usize,
    end: usize,
}

impl Msg {
    fn bytes(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or(&[])
    }
}

/// The messages of a peek's answer: one buffer of length-prefixed messages
/// (4 bytes, big-endian, then the message), split without copying.
#[derive(Debug, Clone, Default)]
pub struct Messages {
    buf: Rc<Vec<u8>>,
    ranges: Vec<(usize, usize)>,
}

impl Messages {
    /// Splits `blob`; an error if a length runs past its end.
    pub fn parse(blob: Vec<u8>) -> Result<Messages, PluginError> {
        let mut ranges = Vec::new();
        let mut at = 0usize;
        while at < blob.len() {
            let len = blob
                .get(at..at + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes)
                .ok_or_else(|| fatal("the peek's answer is cut short"))?;
            let start = at + 4;
            let end = start
                .checked_add(len as usize)
                .filter(|&e| e <= blob.len())
                .ok_or_else(|| fatal("the peek's answer is cut short"))?;
            ranges.push((start, end));
            at = end;
        }
        Ok(Messages {
            buf: Rc::new(blob),
            ranges,
        })
    }

    /// How many messages there are.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// How many messages there are from the first `Begin` on (those before
    /// it describe tables only).
    pub fn fresh(&self) -> usize {
        let first = self
            .ranges
            .iter()
            .position(|&(s, _)| self.buf.get(s) == Some(&b'B'));
        first.map_or(0, |i| self.ranges.len() - i)
    }
}

/// Why [`Stream::fill`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// The batch is full (or the next record needs a batch of another
    /// kind); more is pending.
    Full,
    /// Nothing is pending: the position is at a transaction boundary.
    Drained,
}

/// The stream of changes.
#[derive(Debug)]
pub struct Stream {
    specs: Vec<TableSpec>,
    by_name: HashMap<(String, String), usize>,
    base_types: HashMap<u32, u32>,
    table_field: Option<String>,
    relations: HashMap<u32, Rel>,
    pending: VecDeque<Msg>,
    tx: Option<Tx>,
    /// What was emitted.
    pub pos: Position,
    /// The initial copy's snapshot, while it matters.
    pub snapshot: Option<Snapshot>,
    warned: HashSet<String>,
}

fn fatal(message: impl Into<String>) -> PluginError {
    PluginError::fatal(message)
}

impl Stream {
    /// A stream of the `specs` tables from `pos`. `base_types` maps domain
    /// type OIDs to their base types.
    pub fn new(
        specs: Vec<TableSpec>,
        base_types: HashMap<u32, u32>,
        table_field: Option<String>,
        pos: Position,
        snapshot: Option<Snapshot>,
    ) -> Stream {
        let by_name = specs
            .iter()
            .enumerate()
            .map(|(i, s)| ((s.schema.clone(), s.name.clone()), i))
            .collect();
        Stream {
            specs,
            by_name,
            base_types,
            table_field,
            relations: HashMap::new(),
            pending: VecDeque::new(),
            tx: None,
            pos,
            snapshot,
            warned: HashSet::new(),
        }
    }

    /// The configured tables.
    pub fn specs(&self) -> &[TableSpec] {
        &self.specs
    }

    /// The kind of a column of type `type_oid`, through its base type.
    pub fn kind(&self, type_oid: u32) -> Kind {
        values::kind_of(self.base_types.get(&type_oid).copied().unwrap_or(type_oid))
    }

    /// Queues rows of a peek (whole transactions, in order).
    pub fn push(&mut self, rows: impl IntoIterator<Item = Vec<u8>>) {
        self.pending.extend(rows.into_iter().map(|row| {
            let end = row.len();
            Msg {
                buf: Rc::new(row),
                start: 0,
                end,
            }
        }));
    }

    /// Queues the messages of a peek's answer.
    pub fn push_messages(&mut self, messages: Messages) {
        let Messages { buf, ranges } = messages;
        self.pending
            .extend(ranges.into_iter().map(|(start, end)| Msg {
                buf: Rc::clone(&buf),
                start,
                end,
            }));
    }

    fn warn_once(&mut self, key: String, message: impl FnOnce() -> String) {
        if self.warned.insert(key) {
            ferry_plugin::log::warn!("{}", message());
        }
    }

    /// Appends records to `out` from the pending rows.
    pub fn fill(&mut self, out: &mut Out) -> Result<Fill, PluginError> {
        while let Some(row) = self.pending.pop_front() {
            match self.step(row.bytes(), out) {
                Ok(true) => {}
                Ok(false) => {
                    // Not consumed: it starts the next batch.
                    self.pending.push_front(row);
                    return Ok(Fill::Full);
                }
                Err(e) => {
                    self.pending.push_front(row);
                    return Err(e);
                }
            }
        }
        Ok(Fill::Drained)
    }

    /// Handles one message; `false` when it must wait for the next batch.
    fn step(&mut self, row: &[u8], out: &mut Out) -> Result<bool, PluginError> {
        let kind = pgoutput::kind(row).unwrap_or(0);
        if pgoutput::is_change(kind) {
            return self.change(row, out);
        }
        match pgoutput::parse(row).map_err(|e| fatal(e.to_string()))? {
            Message::Begin(begin) => self.begin(begin)?,
            Message::Commit(c) => {
                let Some(tx) = self.tx.take() else {
                    return Err(fatal("a Commit message without a Begin"));
                };
                if c.commit_lsn != tx.begin.final_lsn {
                    return Err(fatal(format!(
                        "the Commit at {} does not close the transaction begun for {}",
                        c.commit_lsn, tx.begin.final_lsn
                    )));
                }
                if c.end_lsn > self.pos.lsn {
                    self.pos = Position {
                        lsn: c.end_lsn,
                        partial: None,
                    };
                }
                if self
                    .snapshot
                    .as_ref()
                    .is_some_and(|s| c.commit_lsn >= s.until)
                {
                    // Every later transaction committed after the snapshot.
                    self.snapshot = None;
                }
            }
            Message::Origin { name, .. } => {
                if let Some(tx) = &mut self.tx {
                    tx.origin = Some(name.to_owned());
                }
            }
            Message::Relation(r) => {
                let table = self
                    .by_name
                    .get(&(r.namespace.to_owned(), r.name.to_owned()));
                let names: Vec<String> = r.columns.iter().map(|c| c.name.to_owned()).collect();
                let kinds = r.columns.iter().map(|c| self.kind(c.type_oid)).collect();
                let mut key = Vec::new();
                if let Some(spec) = table.and_then(|&t| self.specs.get(t)) {
                    for k in &spec.key {
                        match names.iter().position(|n| n == k) {
                            Some(i) => key.push(i),
                            None => {
                                return Err(fatal(format!(
                                    "{}: the key column {k:?} is not among the columns the \
                                     stream sends ({}); was the table altered?",
                                    spec.qualified,
                                    names.join(", ")
                                )));
                            }
                        }
                    }
                }
                self.relations.insert(
                    r.oid,
                    Rel {
                        table: table.copied(),
                        names,
                        kinds,
                        key,
                    },
                );
            }
            Message::Type { .. } | Message::Message { .. } => {}
            Message::Insert { .. }
            | Message::Update { .. }
            | Message::Delete { .. }
            | Message::Truncate { .. } => {}
        }
        Ok(true)
    }

    fn begin(&mut self, begin: Begin) -> Result<(), PluginError> {
        if self.tx.is_some() {
            return Err(fatal("a Begin message inside a transaction"));
        }
        let mut skip_first = 0;
        let mut skip_all = begin.final_lsn < self.pos.lsn;
        if let Some(p) = self.pos.partial
            && !skip_all
        {
            if p.commit == begin.final_lsn {
                skip_first = p.done;
            } else if begin.final_lsn > p.commit {
                return Err(fatal(format!(
                    "the transaction committed at {} was being read, but the slot no longer \
                     has it (was the slot advanced by another consumer?)",
                    crate::checkpoint::lsn_text(p.commit)
                )));
            } else {
                skip_all = true;
            }
        }
        if !skip_all
            && skip_first == 0
            && self
                .snapshot
                .as_ref()
                .is_some_and(|s| s.contains(begin.xid, begin.final_lsn))
        {
            skip_all = true;
        }
        self.tx = Some(Tx {
            begin,
            origin: None,
            changes: 0,
            skip_all,
            skip_first,
            sized: false,
        });
        Ok(())
    }

    /// The row changes left in the current transaction (in `pending`, after
    /// the row being handled).
    fn changes_ahead(&self) -> u64 {
        let mut n = 1;
        for row in &self.pending {
            match pgoutput::kind(row.bytes()) {
                Some(b'C') => break,
                Some(k) if pgoutput::is_change(k) => n += 1,
                _ => {}
            }
        }
        n
    }

    fn change(&mut self, row: &[u8], out: &mut Out) -> Result<bool, PluginError> {
        let Some(tx) = &self.tx else {
            return Err(fatal("a row change outside a transaction"));
        };
        let index = tx.changes;
        if tx.skip_all || index < tx.skip_first {
            if let Some(tx) = &mut self.tx {
                tx.changes += 1;
            }
            return Ok(true);
        }
        if !tx.sized {
            // Keep a transaction in one batch when it fits in one.
            let ahead = self.changes_ahead();
            if !out.b.is_empty()
                && ahead <= out.max as u64
                && out.b.len() as u64 + ahead > out.max as u64
            {
                return self.cut(out, index);
            }
            if let Some(tx) = &mut self.tx {
                tx.sized = true;
            }
        }
        if out.is_full() {
            return self.cut(out, index);
        }
        let message = pgoutput::parse(row).map_err(|e| fatal(e.to_string()))?;
        if !self.emit(message, out)? {
            return self.cut(out, index);
        }
        if let Some(tx) = &mut self.tx {
            tx.changes += 1;
        }
        Ok(true)
    }

    /// Ends the batch before change number `index` of the current
    /// transaction.
    fn cut(&mut self, out: &Out, index: u64) -> Result<bool, PluginError> {
        if out.b.is_empty() {
            return Err(fatal("a change does not fit in an empty batch"));
        }
        if let Some(tx) = &self.tx
            && (index > 0 || tx.skip_first > 0 || self.pos.partial.is_some())
        {
            self.pos.partial = Some(Partial {
                commit: tx.begin.final_lsn,
                done: index,
            });
        }
        Ok(false)
    }

    /// Emits the records of one change; `false` when they need another
    /// batch.
    fn emit(&mut self, message: Message<'_>, out: &mut Out) -> Result<bool, PluginError> {
        let (relation, old, new) = match message {
            Message::Insert { relation, new } => (relation, None, Some(new)),
            Message::Update { relation, old, new } => (relation, old, Some(new)),
            Message::Delete {
                relation,
                kind,
                old,
            } => (relation, Some((kind, old)), None),
            Message::Truncate { relations, .. } => {
                self.truncated(&relations);
                return Ok(true);
            }
            _ => return Ok(true),
        };
        let Some(rel) = self.relations.get(&relation) else {
            return Err(fatal(format!(
                "a change of relation {relation} arrived before its Relation message"
            )));
        };
        let Some(spec) = rel.table.and_then(|t| self.specs.get(t)) else {
            return Ok(true); // published, but not one of ours
        };
        let Some(tx) = &self.tx else {
            return Err(fatal("a row change outside a transaction"));
        };
        let w = Writer {
            spec,
            rel,
            tx,
            table_field: self.table_field.as_deref(),
        };
        let mut notes = Vec::new();
        let admitted = w.emit(old, new, out, &mut notes)?;
        for (key, message) in notes {
            self.warn_once(key, || message);
        }
        Ok(admitted)
    }

    fn truncated(&mut self, relations: &[u32]) {
        let lsn = self.tx.as_ref().map_or(0, |tx| tx.begin.final_lsn);
        for oid in relations {
            let Some(spec) = self
                .relations
                .get(oid)
                .and_then(|r| r.table)
                .and_then(|t| self.specs.get(t))
            else {
                continue;
            };
            ferry_plugin::log::warn!(
                "{} was truncated (transaction committed at {}): a TRUNCATE removes rows \
                 without naming their keys, so no deletes are emitted for it; copy the table \
                 again (a new slot with snapshot = true) if the targets must forget its rows",
                spec.qualified,
                crate::checkpoint::lsn_text(lsn)
            );
        }
    }
}

/// Writes the records of one change of one table.
struct Writer<'s> {
    spec: &'s TableSpec,
    rel: &'s Rel,
    tx: &'s Tx,
    table_field: Option<&'s str>,
}

/// Warnings to log once: a key to deduplicate them, and the text.
type Notes = Vec<(String, String)>;

impl Writer<'_> {
    /// `false` when the records need another batch.
    fn emit(
        &self,
        old: Option<(Old, Tuple<'_>)>,
        new: Option<Tuple<'_>>,
        out: &mut Out,
        notes: &mut Notes,
    ) -> Result<bool, PluginError> {
        let rel = self.rel;
        let Some(mut new) = new else {
            // A delete.
            let Some((_, old)) = old else {
                return Ok(true);
            };
            if !out.admit(1, &self.sets(&old, Some(&rel.key)), &[]) {
                return Ok(false);
            }
            let key = self.key(&old)?;
            self.record(out, &key, Op::Delete, &old, Some(&rel.key), notes);
            return Ok(true);
        };
        // Unchanged TOASTed values: from the old row when it came whole.
        if let Some((Old::Full, full)) = &old {
            for (v, o) in new.values.iter_mut().zip(&full.values) {
                if *v == Datum::Unchanged {
                    *v = *o;
                }
            }
        }
        let lacks: Vec<&str> = new
            .values
            .iter()
            .zip(&rel.names)
            .filter(|(v, _)| **v == Datum::Unchanged)
            .map(|(_, n)| n.as_str())
            .collect();
        let key = self.key(&new)?;
        let moved = match &old {
            Some((_, o)) => {
                let old_key = self.key(o)?;
                (old_key != key).then_some((old_key, o))
            }
            None => None,
        };
        let mut sets = self.sets(&new, None);
        if moved.is_some() {
            sets.extend(
                rel.key
                    .iter()
                    .filter_map(|&i| rel.names.get(i).map(String::as_str)),
            );
        }
        if !out.admit(if moved.is_some() { 2 } else { 1 }, &sets, &lacks) {
            return Ok(false);
        }
        if !lacks.is_empty() {
            let q = &self.spec.qualified;
            notes.push((
                format!("{q}:{}", lacks.join(",")),
                format!(
                    "{q}: updates that leave {} unchanged do not carry {} (TOASTed values are \
                     not sent again); those records leave the column out, so a target keeps \
                     what it has. ALTER TABLE {q} REPLICA IDENTITY FULL makes the stream send \
                     them",
                    lacks.join(", "),
                    if lacks.len() == 1 {
                        "its value"
                    } else {
                        "their values"
                    },
                ),
            ));
        }
        if let Some((old_key, o)) = moved {
            self.record(out, &old_key, Op::Delete, o, Some(&rel.key), notes);
        }
        self.record(out, &key, Op::Upsert, &new, None, notes);
        Ok(true)
    }

    /// The columns a record of `tuple` sets (`only` these, for a delete).
    fn sets<'r>(&'r self, tuple: &Tuple<'_>, only: Option<&[usize]>) -> Vec<&'r str> {
        let mut sets: Vec<&str> = match only {
            Some(only) => only
                .iter()
                .filter_map(|&i| self.rel.names.get(i).map(String::as_str))
                .collect(),
            None => tuple
                .values
                .iter()
                .zip(&self.rel.names)
                .filter(|(v, _)| **v != Datum::Unchanged)
                .map(|(_, n)| n.as_str())
                .collect(),
        };
        if let Some(f) = self.table_field {
            sets.push(f);
        }
        sets
    }

    /// The record key: the key columns' text, a JSON array of texts when
    /// there are several.
    fn key(&self, tuple: &Tuple<'_>) -> Result<String, PluginError> {
        let mut parts = Vec::with_capacity(self.rel.key.len());
        for &i in &self.rel.key {
            match tuple.values.get(i) {
                Some(Datum::Text(t)) => parts.push(std::str::from_utf8(t).map_err(|_| {
                    fatal(format!("{}: a key value is not UTF-8", self.spec.qualified))
                })?),
                _ => {
                    return Err(fatal(format!(
                        "{}: a change without a value for the key column {:?}",
                        self.spec.qualified,
                        self.rel.names.get(i).map(String::as_str).unwrap_or("?")
                    )));
                }
            }
        }
        Ok(key_text(&parts))
    }

    /// Appends one record. `only`: set only these columns (a delete's key).
    fn record(
        &self,
        out: &mut Out,
        key: &str,
        op: Op,
        tuple: &Tuple<'_>,
        only: Option<&[usize]>,
        notes: &mut Notes,
    ) {
        let q = &self.spec.qualified;
        let mut r = out.b.row(key, op);
        r.version(self.tx.begin.final_lsn)
            .updated_at(self.tx.begin.commit_time.saturating_add(PG_EPOCH_MICROS));
        if let Some(o) = &self.tx.origin {
            r.origin(o);
        }
        if let Some(field) = self.table_field {
            r.set(field, Value::Text(q));
        }
        for (i, ((name, kind), v)) in self
            .rel
            .names
            .iter()
            .zip(&self.rel.kinds)
            .zip(&tuple.values)
            .enumerate()
        {
            if only.is_some_and(|o| !o.contains(&i)) {
                continue;
            }
            match v {
                Datum::Unchanged => {}
                Datum::Null => {
                    r.set(name, Value::Null);
                }
                Datum::Text(t) | Datum::Binary(t) => match std::str::from_utf8(t) {
                    Ok(text) => match values::convert(*kind, text) {
                        Ok(v) => {
                            r.set(name, v.as_value());
                        }
                        Err(why) => {
                            r.set(name, Value::Text(text));
                            notes.push((
                                format!("{q}.{name}"),
                                format!("{q}.{name}: {why}; the value is passed on as text"),
                            ));
                        }
                    },
                    Err(_) => {
                        r.set(name, Value::Bytes(t));
                        notes.push((
                            format!("{q}.{name}"),
                            format!("{q}.{name}: a value is not UTF-8; it is passed on as bytes"),
                        ));
                    }
                },
            }
        }
    }
}

/// A record key from the key columns' text forms: the text itself for one
/// column, a JSON array of texts for several.
pub fn key_text(parts: &[&str]) -> String {
    match parts {
        [one] => (*one).to_owned(),
        _ => serde_json::to_string(parts).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests;
