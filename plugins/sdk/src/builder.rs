//! Writing a batch: [`BatchBuilder`] and [`RowBuilder`].
//!
//! Rows are pushed one at a time; columns appear as fields are first set.
//! A row that does not set a field gets a null there. A column's type is the
//! type of its values; when values of different types meet in one column:
//!
//! - `int` and `float` make a `float` column;
//! - any other mix makes a `json` column holding each value's JSON encoding
//!   (text as a JSON string, timestamps as RFC 3339 strings, bytes as base64
//!   strings, objects and arrays as they are), so nothing is lost. Reading
//!   such a column with [`Row::get`](crate::Row::get) decodes the scalars
//!   back to `Int`, `Float`, `Bool`, `Text` and `Null`.
//!
//! A column that only ever holds nulls is sent as an all-null `text` column.

use crate::batch::{Batch, Row};
use crate::types::{self, Op};
use crate::value::Value;

/// A handle to a column of one [`BatchBuilder`], for setting fields without
/// a name lookup ([`RowBuilder::set_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ColumnId(usize);

#[derive(Debug, Clone, Default)]
struct TextOut {
    offsets: Vec<u32>,
    data: Vec<u8>,
}

fn offset(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl TextOut {
    fn with_nulls(n: usize) -> TextOut {
        TextOut {
            offsets: vec![0; n + 1],
            data: Vec::new(),
        }
    }

    fn new() -> TextOut {
        TextOut::with_nulls(0)
    }

    fn push(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
        self.offsets.push(offset(self.data.len()));
    }

    fn push_empty(&mut self) {
        self.offsets.push(offset(self.data.len()));
    }

    fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    fn pop(&mut self) {
        if self.offsets.len() > 1 {
            self.offsets.pop();
            let end = self.offsets.last().copied().unwrap_or(0) as usize;
            self.data.truncate(end);
        }
    }

    fn get(&self, i: usize) -> &[u8] {
        let (Some(&s), Some(&e)) = (self.offsets.get(i), self.offsets.get(i + 1)) else {
            return &[];
        };
        self.data.get(s as usize..e as usize).unwrap_or(&[])
    }

    fn into_raw(self) -> types::Texts {
        types::Texts {
            offsets: self.offsets,
            data: self.data,
        }
    }
}

/// The values of a column being built. `Empty` until the first non-null
/// value fixes the type.
#[derive(Debug, Clone)]
enum Data {
    Empty,
    Ints(Vec<i64>),
    Floats(Vec<f64>),
    Bools(Vec<bool>),
    Text(TextOut),
    Bytes(TextOut),
    Timestamps(Vec<i64>),
    Json(TextOut),
}

#[derive(Debug, Clone)]
struct ColumnOut {
    name: String,
    data: Data,
    valid: Vec<bool>,
    nulls: usize,
}

impl ColumnOut {
    fn new(name: &str, capacity: usize) -> ColumnOut {
        ColumnOut {
            name: name.to_owned(),
            data: Data::Empty,
            valid: Vec::with_capacity(capacity),
            nulls: 0,
        }
    }

    fn len(&self) -> usize {
        self.valid.len()
    }

    fn push_null(&mut self) {
        self.valid.push(false);
        self.nulls += 1;
        match &mut self.data {
            Data::Empty => {}
            Data::Ints(v) | Data::Timestamps(v) => v.push(0),
            Data::Floats(v) => v.push(0.0),
            Data::Bools(v) => v.push(false),
            Data::Text(t) | Data::Bytes(t) | Data::Json(t) => t.push_empty(),
        }
    }

    /// Removes the last value (a field set twice in one row: last wins).
    fn pop(&mut self) {
        if let Some(was_valid) = self.valid.pop() {
            if !was_valid {
                self.nulls -= 1;
            }
            match &mut self.data {
                Data::Empty => {}
                Data::Ints(v) | Data::Timestamps(v) => {
                    v.pop();
                }
                Data::Floats(v) => {
                    v.pop();
                }
                Data::Bools(v) => {
                    v.pop();
                }
                Data::Text(t) | Data::Bytes(t) | Data::Json(t) => t.pop(),
            }
        }
    }

    /// Sets the value for row `row`: pads with nulls up to it, or replaces
    /// the value if this row already set the field.
    fn set(&mut self, row: usize, value: Value<'_>) {
        if self.len() > row {
            self.pop();
        }
        while self.len() < row {
            self.push_null();
        }
        self.push(value);
    }

    fn push(&mut self, value: Value<'_>) {
        if value.is_null() {
            self.push_null();
            return;
        }
        if matches!(self.data, Data::Empty) {
            self.data = Data::typed_for(value, self.len(), self.valid.capacity());
        }
        let pushed = match (&mut self.data, value) {
            (Data::Ints(v), Value::Int(n)) => {
                v.push(n);
                true
            }
            (Data::Floats(v), Value::Float(x)) => {
                v.push(x);
                true
            }
            (Data::Floats(v), Value::Int(n)) => {
                v.push(n as f64);
                true
            }
            (Data::Bools(v), Value::Bool(b)) => {
                v.push(b);
                true
            }
            (Data::Timestamps(v), Value::Timestamp(t)) => {
                v.push(t);
                true
            }
            (Data::Text(t), Value::Text(s)) => {
                t.push(s.as_bytes());
                true
            }
            (Data::Bytes(t), Value::Bytes(b)) => {
                t.push(b);
                true
            }
            (Data::Json(t), v) => {
                push_json_encoding(t, v);
                true
            }
            _ => false,
        };
        if pushed {
            self.valid.push(true);
            return;
        }
        // A value of another type: widen the column, then push again.
        if let (Data::Ints(ints), Value::Float(_)) = (&self.data, value) {
            self.data = Data::Floats(ints.iter().map(|&n| n as f64).collect());
        } else {
            self.widen_to_json();
        }
        self.push(value);
    }

    /// Turns the column into a JSON column holding each value's encoding.
    fn widen_to_json(&mut self) {
        let mut out = TextOut::new();
        let n = self.len();
        for i in 0..n {
            if !self.valid.get(i).copied().unwrap_or(false) {
                out.push_empty();
                continue;
            }
            let v = match &self.data {
                Data::Empty => Value::Null,
                Data::Ints(v) => Value::Int(v.get(i).copied().unwrap_or(0)),
                Data::Floats(v) => Value::Float(v.get(i).copied().unwrap_or(0.0)),
                Data::Bools(v) => Value::Bool(v.get(i).copied().unwrap_or(false)),
                Data::Timestamps(v) => Value::Timestamp(v.get(i).copied().unwrap_or(0)),
                Data::Text(t) => Value::Text(std::str::from_utf8(t.get(i)).unwrap_or("")),
                Data::Bytes(t) => Value::Bytes(t.get(i)),
                Data::Json(t) => Value::Json(std::str::from_utf8(t.get(i)).unwrap_or("null")),
            };
            push_json_encoding(&mut out, v);
        }
        self.data = Data::Json(out);
    }

    fn finish(mut self, rows: usize) -> types::Column {
        while self.len() < rows {
            self.push_null();
        }
        let values = match self.data {
            Data::Empty => types::Values::Text(types::Texts {
                offsets: vec![0; rows + 1],
                data: Vec::new(),
            }),
            Data::Ints(v) => types::Values::Ints(v),
            Data::Floats(v) => types::Values::Floats(v),
            Data::Bools(v) => types::Values::Bools(v),
            Data::Timestamps(v) => types::Values::Timestamps(v),
            Data::Text(t) => types::Values::Text(t.into_raw()),
            Data::Bytes(t) => types::Values::Bytes(t.into_raw()),
            Data::Json(t) => types::Values::Json(t.into_raw()),
        };
        types::Column {
            name: self.name,
            values,
            valid: (self.nulls > 0).then_some(self.valid),
        }
    }
}

/// A vector of `nulls` copies of `fill`, with room for `capacity` entries.
fn filled<T: Copy>(fill: T, nulls: usize, capacity: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(capacity.max(nulls));
    v.resize(nulls, fill);
    v
}

impl Data {
    /// An empty column of `value`'s type, with `nulls` null entries and
    /// room for `capacity` values.
    fn typed_for(value: Value<'_>, nulls: usize, capacity: usize) -> Data {
        let texts = || {
            let mut t = TextOut::with_nulls(nulls);
            t.offsets.reserve(capacity.saturating_sub(nulls));
            // A guess: most text fields are short.
            t.data.reserve(capacity.saturating_mul(16));
            t
        };
        match value {
            Value::Null => Data::Empty,
            Value::Int(_) => Data::Ints(filled(0, nulls, capacity)),
            Value::Float(_) => Data::Floats(filled(0.0, nulls, capacity)),
            Value::Bool(_) => Data::Bools(filled(false, nulls, capacity)),
            Value::Timestamp(_) => Data::Timestamps(filled(0, nulls, capacity)),
            Value::Text(_) => Data::Text(texts()),
            Value::Bytes(_) => Data::Bytes(texts()),
            Value::Json(_) => Data::Json(texts()),
        }
    }
}

fn push_json_encoding(out: &mut TextOut, v: Value<'_>) {
    match v {
        Value::Json(s) => out.push(s.as_bytes()),
        other => {
            crate::json::write_value(&mut out.data, other);
            out.offsets.push(offset(out.data.len()));
        }
    }
}

/// Builds a [`types::Batch`] row by row.
///
/// ```
/// use ferry_plugin::{BatchBuilder, Op, Value};
///
/// let mut b = BatchBuilder::new();
/// b.row("1", Op::Upsert).set("name", "Ada").set("age", 36);
/// b.row("2", Op::Upsert).set("name", "Grace"); // age: null
/// b.row("3", Op::Delete);
/// let email = b.column("email"); // a handle for hot loops
/// b.row("4", Op::Upsert).set_at(email, Value::Text("x@example.org"));
/// let batch = b.finish();
/// assert_eq!(batch.ops.len(), 4);
/// assert_eq!(batch.columns.len(), 3);
/// ```
#[derive(Debug, Clone, Default)]
pub struct BatchBuilder {
    keys: TextOut,
    ops: Vec<Op>,
    versions: Option<Vec<u64>>,
    updated_at: Option<Vec<i64>>,
    origins: Option<TextOut>,
    columns: Vec<ColumnOut>,
    /// The column after the one set last: rows usually set their fields in
    /// the same order, so this is where the next name is looked for first.
    hint: usize,
    /// For [`RowBuilder::copy_fields`]: the batch whose columns were last
    /// mapped to this builder's columns, and that mapping.
    copy_map: Option<(u64, Vec<ColumnId>)>,
    /// How many rows to make room for in each new column.
    capacity: usize,
}

impl BatchBuilder {
    /// An empty builder.
    pub fn new() -> BatchBuilder {
        BatchBuilder {
            keys: TextOut::new(),
            ..BatchBuilder::default()
        }
    }

    /// An empty builder with room for `rows` records.
    pub fn with_capacity(rows: usize) -> BatchBuilder {
        let mut b = BatchBuilder::new();
        b.ops.reserve(rows);
        b.keys.offsets.reserve(rows);
        b.keys.data.reserve(rows.saturating_mul(8));
        b.capacity = rows;
        b
    }

    /// The number of records pushed so far.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Starts a new record; set its fields on the returned [`RowBuilder`].
    pub fn row(&mut self, key: &str, op: Op) -> RowBuilder<'_> {
        if self.keys.offsets.is_empty() {
            self.keys.offsets.push(0);
        }
        self.keys.push(key.as_bytes());
        self.ops.push(op);
        let row = self.ops.len() - 1;
        self.hint = 0;
        RowBuilder { b: self, row }
    }

    /// Starts a new record that copies `from`'s key, operation, metadata
    /// (version, updated-at, origin) and every field. The mapper's fast path
    /// for records that go on mostly unchanged.
    pub fn copy_row(&mut self, from: &Row<'_>) -> RowBuilder<'_> {
        let mut r = self.row(from.key(), from.op());
        r.copy_meta(from);
        r.copy_fields(from);
        r
    }

    /// The column named `name`, created (all null so far) if it does not
    /// exist yet.
    pub fn column(&mut self, name: &str) -> ColumnId {
        if let Some(c) = self.columns.get(self.hint)
            && c.name == name
        {
            return ColumnId(self.hint);
        }
        match self.columns.iter().position(|c| c.name == name) {
            Some(i) => ColumnId(i),
            None => {
                let capacity = self.capacity.max(self.ops.capacity());
                self.columns.push(ColumnOut::new(name, capacity));
                ColumnId(self.columns.len() - 1)
            }
        }
    }

    /// The names of the columns so far, in order.
    pub fn column_names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }

    /// Finishes the batch: every column is padded with nulls to the number
    /// of records; metadata lists present in some rows only are filled with
    /// 0 (versions, updated-at) or `""` (origins).
    pub fn finish(self) -> types::Batch {
        let rows = self.ops.len();
        let mut keys = self.keys;
        if keys.offsets.is_empty() {
            keys.offsets.push(0);
        }
        let versions = self.versions.map(|mut v| {
            v.resize(rows, 0);
            v
        });
        let updated_at = self.updated_at.map(|mut v| {
            v.resize(rows, 0);
            v
        });
        let origins = self.origins.map(|mut o| {
            while o.len() < rows {
                o.push_empty();
            }
            o.into_raw()
        });
        types::Batch {
            keys: keys.into_raw(),
            ops: self.ops,
            versions,
            updated_at,
            origins,
            columns: self.columns.into_iter().map(|c| c.finish(rows)).collect(),
        }
    }

    fn set_at(&mut self, row: usize, col: ColumnId, value: Value<'_>) {
        if let Some(c) = self.columns.get_mut(col.0) {
            c.set(row, value);
            self.hint = col.0 + 1;
        }
    }
}

/// One record being built; returned by [`BatchBuilder::row`]. Every setter
/// returns `&mut Self` so calls chain.
#[derive(Debug)]
pub struct RowBuilder<'a> {
    b: &'a mut BatchBuilder,
    row: usize,
}

impl RowBuilder<'_> {
    /// The record's position in the batch being built.
    pub fn index(&self) -> usize {
        self.row
    }

    /// Sets field `name` (creating the column if needed). Setting a field
    /// twice keeps the last value.
    pub fn set<'v>(&mut self, name: &str, value: impl Into<Value<'v>>) -> &mut Self {
        let col = self.b.column(name);
        self.b.set_at(self.row, col, value.into());
        self
    }

    /// Sets the field in column `col` (from [`BatchBuilder::column`]).
    pub fn set_at<'v>(&mut self, col: ColumnId, value: impl Into<Value<'v>>) -> &mut Self {
        self.b.set_at(self.row, col, value.into());
        self
    }

    /// Sets field `name` to null (creating the column if needed).
    pub fn set_null(&mut self, name: &str) -> &mut Self {
        self.set(name, Value::Null)
    }

    /// Sets a text field.
    pub fn set_text(&mut self, name: &str, value: &str) -> &mut Self {
        self.set(name, Value::Text(value))
    }

    /// Sets an integer field.
    pub fn set_int(&mut self, name: &str, value: i64) -> &mut Self {
        self.set(name, Value::Int(value))
    }

    /// Sets a float field.
    pub fn set_float(&mut self, name: &str, value: f64) -> &mut Self {
        self.set(name, Value::Float(value))
    }

    /// Sets a boolean field.
    pub fn set_bool(&mut self, name: &str, value: bool) -> &mut Self {
        self.set(name, Value::Bool(value))
    }

    /// Sets a timestamp field (microseconds since the epoch, UTC).
    pub fn set_timestamp(&mut self, name: &str, micros: i64) -> &mut Self {
        self.set(name, Value::Timestamp(micros))
    }

    /// Sets a bytes field.
    pub fn set_bytes(&mut self, name: &str, value: &[u8]) -> &mut Self {
        self.set(name, Value::Bytes(value))
    }

    /// Sets a JSON field from JSON text, which must be valid JSON (it is not
    /// checked).
    pub fn set_json(&mut self, name: &str, json: &str) -> &mut Self {
        self.set(name, Value::Json(json))
    }

    /// Sets the record's version number.
    pub fn version(&mut self, version: u64) -> &mut Self {
        let v = self.b.versions.get_or_insert_with(Vec::new);
        set_meta(v, self.row, version, 0);
        self
    }

    /// Sets the record's last-change instant (microseconds since the epoch).
    pub fn updated_at(&mut self, micros: i64) -> &mut Self {
        let v = self.b.updated_at.get_or_insert_with(Vec::new);
        set_meta(v, self.row, micros, 0);
        self
    }

    /// Sets the system the change came from.
    pub fn origin(&mut self, origin: &str) -> &mut Self {
        let o = self.b.origins.get_or_insert_with(TextOut::new);
        if o.len() > self.row {
            // Only the last record can be open, so this is its origin.
            o.pop();
        }
        while o.len() < self.row {
            o.push_empty();
        }
        o.push(origin.as_bytes());
        self
    }

    /// Copies `from`'s version, updated-at and origin (those it has).
    pub fn copy_meta(&mut self, from: &Row<'_>) -> &mut Self {
        if let Some(v) = from.version() {
            self.version(v);
        }
        if let Some(t) = from.updated_at() {
            self.updated_at(t);
        }
        if let Some(o) = from.origin() {
            self.origin(o);
        }
        self
    }

    /// Copies every field of `from`, null or not. The mapping from `from`'s
    /// columns to this builder's columns is computed once per input batch.
    pub fn copy_fields(&mut self, from: &Row<'_>) -> &mut Self {
        let batch: &Batch = from.batch();
        let ids = match self.b.copy_map.take() {
            Some((id, ids)) if id == batch.id() => ids,
            _ => batch.columns().map(|c| self.b.column(c.name())).collect(),
        };
        for (column, &id) in batch.columns().zip(&ids) {
            self.b.set_at(self.row, id, from.value(column));
        }
        self.b.copy_map = Some((batch.id(), ids));
        self
    }
}

fn set_meta<T: Copy>(v: &mut Vec<T>, row: usize, value: T, fill: T) {
    if v.len() <= row {
        v.resize(row + 1, fill);
    }
    if let Some(slot) = v.get_mut(row) {
        *slot = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Batch;

    fn read(b: BatchBuilder) -> Batch {
        Batch::from_raw(b.finish()).unwrap()
    }

    #[test]
    fn missing_fields_are_null() {
        let mut b = BatchBuilder::new();
        b.row("1", Op::Upsert).set("a", 1);
        b.row("2", Op::Upsert).set("b", "x");
        b.row("3", Op::Upsert);
        let raw = b.finish();
        assert_eq!(raw.columns[0].valid, Some(vec![true, false, false]));
        assert_eq!(raw.columns[1].valid, Some(vec![false, true, false]));
        let batch = Batch::from_raw(raw).unwrap();
        assert_eq!(batch.row(1).unwrap().get("a"), Value::Null);
        assert_eq!(batch.row(1).unwrap().get("b"), Value::Text("x"));
    }

    #[test]
    fn no_validity_list_without_nulls() {
        let mut b = BatchBuilder::new();
        b.row("1", Op::Upsert).set("a", 1);
        b.row("2", Op::Upsert).set("a", 2);
        let raw = b.finish();
        assert_eq!(raw.columns[0].valid, None);
        assert_eq!(raw.columns[0].values, types::Values::Ints(vec![1, 2]));
    }

    #[test]
    fn int_and_float_make_float() {
        let mut b = BatchBuilder::new();
        b.row("1", Op::Upsert).set("x", 1);
        b.row("2", Op::Upsert).set("x", 2.5);
        b.row("3", Op::Upsert).set("x", 3);
        let raw = b.finish();
        assert_eq!(
            raw.columns[0].values,
            types::Values::Floats(vec![1.0, 2.5, 3.0])
        );
    }

    #[test]
    fn other_mixes_make_json_and_read_back() {
        let mut b = BatchBuilder::new();
        b.row("1", Op::Upsert).set("x", 34);
        b.row("2", Op::Upsert).set("x", "thirty \"four\"");
        b.row("3", Op::Upsert).set("x", Value::Null);
        b.row("4", Op::Upsert).set("x", true);
        b.row("5", Op::Upsert).set_json("x", "{\"a\":[1,2]}");
        b.row("6", Op::Upsert).set("x", 1.5);
        let batch = read(b);
        assert_eq!(batch.column("x").unwrap().kind(), crate::ValueKind::Json);
        let got: Vec<_> = batch.rows().map(|r| r.get("x")).collect();
        assert_eq!(
            got,
            [
                Value::Int(34),
                Value::Text("thirty \"four\""),
                Value::Null,
                Value::Bool(true),
                Value::Json("{\"a\":[1,2]}"),
                Value::Float(1.5),
            ]
        );
    }

    #[test]
    fn text_then_json_keeps_text() {
        let mut b = BatchBuilder::new();
        b.row("1", Op::Upsert).set("x", "plain");
        b.row("2", Op::Upsert).set_json("x", "[1]");
        let batch = read(b);
        assert_eq!(batch.row(0).unwrap().get("x"), Value::Text("plain"));
        assert_eq!(batch.row(1).unwrap().get("x"), Value::Json("[1]"));
    }

    #[test]
    fn setting_twice_keeps_the_last_value() {
        let mut b = BatchBuilder::new();
        b.row("1", Op::Upsert).set("x", "first").set("x", "second");
        b.row("2", Op::Upsert)
            .set("x", Value::Null)
            .set("x", "third");
        let raw = b.finish();
        assert_eq!(raw.columns[0].valid, None);
        let batch = Batch::from_raw(raw).unwrap();
        assert_eq!(batch.row(0).unwrap().get("x"), Value::Text("second"));
        assert_eq!(batch.row(1).unwrap().get("x"), Value::Text("third"));
    }

    #[test]
    fn all_null_column_is_text() {
        let mut b = BatchBuilder::new();
        b.row("1", Op::Upsert).set_null("x");
        b.row("2", Op::Upsert);
        let raw = b.finish();
        assert_eq!(raw.columns[0].valid, Some(vec![false, false]));
        assert!(matches!(raw.columns[0].values, types::Values::Text(_)));
        assert!(Batch::from_raw(raw).is_ok());
    }

    #[test]
    fn metadata_is_padded() {
        let mut b = BatchBuilder::new();
        b.row("1", Op::Upsert);
        b.row("2", Op::Upsert)
            .version(7)
            .origin("crm")
            .updated_at(5);
        b.row("3", Op::Delete);
        let raw = b.finish();
        assert_eq!(raw.versions, Some(vec![0, 7, 0]));
        assert_eq!(raw.updated_at, Some(vec![0, 5, 0]));
        let batch = Batch::from_raw(raw).unwrap();
        assert_eq!(batch.row(1).unwrap().origin(), Some("crm"));
        assert_eq!(batch.row(2).unwrap().origin(), Some(""));
        assert_eq!(batch.row(2).unwrap().op(), Op::Delete);
    }

    #[test]
    fn empty_batch_is_well_formed() {
        let raw = BatchBuilder::new().finish();
        assert_eq!(raw.keys.offsets, vec![0]);
        assert!(Batch::from_raw(raw).unwrap().is_empty());
    }

    #[test]
    fn copy_row_copies_everything() {
        let mut b = BatchBuilder::new();
        b.row("1", Op::Upsert)
            .set("a", 1)
            .set("b", "x")
            .version(3)
            .origin("o");
        b.row("2", Op::Delete).set("b", "y").updated_at(9);
        let input = read(b);
        let mut out = BatchBuilder::new();
        for row in input.rows() {
            out.copy_row(&row).set("c", true);
        }
        let copied = read(out);
        for (i, o) in input.rows().zip(copied.rows()) {
            assert_eq!(i.key(), o.key());
            assert_eq!(i.op(), o.op());
            assert_eq!(i.get("a"), o.get("a"));
            assert_eq!(i.get("b"), o.get("b"));
            assert_eq!(o.get("c"), Value::Bool(true));
            assert_eq!(i.origin(), o.origin());
        }
        assert_eq!(copied.row(0).unwrap().version(), Some(3));
        assert_eq!(copied.row(1).unwrap().updated_at(), Some(9));
    }

    #[test]
    fn timestamps_and_bytes_round_trip() {
        let mut b = BatchBuilder::new();
        b.row("1", Op::Upsert)
            .set_timestamp("t", 1_700_000_000_000_000)
            .set_bytes("b", &[0, 255]);
        let batch = read(b);
        let r = batch.row(0).unwrap();
        assert_eq!(r.timestamp("t").unwrap(), 1_700_000_000_000_000);
        assert_eq!(r.bytes("b").unwrap(), &[0, 255]);
    }
}
