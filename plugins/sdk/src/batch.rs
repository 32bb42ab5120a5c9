//! Reading a batch: [`Batch`], its [`Row`]s and [`Column`]s.
//!
//! A [`Batch`] takes ownership of the columnar [`types::Batch`] the host sent
//! and checks it once (offsets in range, text on UTF-8 boundaries), moving
//! every buffer without copying it. After that every read is an index into a
//! vector: no allocation, no parsing, no per-value validation. Text values are
//! `&str` slices of the column's one buffer.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::PluginError;
use crate::types::{self, Op};
use crate::value::{Value, ValueKind};

/// A list of text values stored as one buffer plus offsets, as the contract
/// sends them (`texts` in the WIT). Used for keys, origins and text columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextList {
    offsets: Vec<u32>,
    data: String,
}

impl TextList {
    /// Takes a `texts` value holding `count` entries, checking it once.
    pub fn from_raw(raw: types::Texts, count: usize, what: &str) -> Result<TextList, PluginError> {
        let types::Texts { offsets, data } = raw;
        let data = String::from_utf8(data)
            .map_err(|e| PluginError::fatal(format!("{what}: text is not valid UTF-8 ({e})")))?;
        let offsets = check_offsets(offsets, count, data.len(), what)?;
        for &o in &offsets {
            if !data.is_char_boundary(o as usize) {
                return Err(PluginError::fatal(format!(
                    "{what}: offset {o} splits a UTF-8 character"
                )));
            }
        }
        Ok(TextList { offsets, data })
    }

    /// Gives the buffers back in the contract's form.
    pub fn into_raw(self) -> types::Texts {
        types::Texts {
            offsets: self.offsets,
            data: self.data.into_bytes(),
        }
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Whether the list holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value `i`, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<&str> {
        let start = *self.offsets.get(i)? as usize;
        let end = *self.offsets.get(i + 1)? as usize;
        self.data.get(start..end)
    }

    /// Value `i`, or `""` past the end (for internal use after checks).
    fn at(&self, i: usize) -> &str {
        self.get(i).unwrap_or("")
    }

    /// Every value in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.at(i))
    }
}

/// Bytes values stored as one buffer plus offsets.
#[derive(Debug, Clone, Default, PartialEq)]
struct BytesList {
    offsets: Vec<u32>,
    data: Vec<u8>,
}

impl BytesList {
    fn from_raw(raw: types::Texts, count: usize, what: &str) -> Result<BytesList, PluginError> {
        let offsets = check_offsets(raw.offsets, count, raw.data.len(), what)?;
        Ok(BytesList {
            offsets,
            data: raw.data,
        })
    }

    fn get(&self, i: usize) -> &[u8] {
        let (Some(&s), Some(&e)) = (self.offsets.get(i), self.offsets.get(i + 1)) else {
            return &[];
        };
        self.data.get(s as usize..e as usize).unwrap_or(&[])
    }
}

/// Checks `count + 1` non-decreasing offsets within `data_len`. An empty
/// offsets list is accepted for zero values.
fn check_offsets(
    offsets: Vec<u32>,
    count: usize,
    data_len: usize,
    what: &str,
) -> Result<Vec<u32>, PluginError> {
    if offsets.is_empty() && count == 0 {
        return Ok(vec![0]);
    }
    if offsets.len() != count + 1 {
        return Err(PluginError::fatal(format!(
            "{what}: {} offsets for {count} values (expected {})",
            offsets.len(),
            count + 1
        )));
    }
    let mut prev = 0u32;
    for &o in &offsets {
        if o < prev || o as usize > data_len {
            return Err(PluginError::fatal(format!(
                "{what}: offset {o} is out of order or past the data ({data_len} bytes)"
            )));
        }
        prev = o;
    }
    Ok(offsets)
}

/// A JSON column: the JSON texts, plus the decoded form of the JSON strings
/// that contain escapes (so they can be lent out as `&str` too).
#[derive(Debug, Clone, PartialEq)]
struct JsonList {
    texts: TextList,
    unescaped: Vec<Option<Box<str>>>,
}

impl JsonList {
    fn new(texts: TextList) -> JsonList {
        let mut unescaped = Vec::new();
        for i in 0..texts.len() {
            let s = texts.at(i).trim();
            if s.starts_with('"') && s.contains('\\') {
                if unescaped.is_empty() {
                    unescaped.resize(texts.len(), None);
                }
                if let (Ok(decoded), Some(slot)) =
                    (serde_json::from_str::<String>(s), unescaped.get_mut(i))
                {
                    *slot = Some(decoded.into_boxed_str());
                }
            }
        }
        JsonList { texts, unescaped }
    }

    /// Decodes JSON scalars (null, booleans, numbers, strings); objects and
    /// arrays stay JSON text.
    fn get(&self, i: usize) -> Value<'_> {
        let s = self.texts.at(i).trim();
        match s.as_bytes().first() {
            None | Some(b'n') if s.is_empty() || s == "null" => Value::Null,
            Some(b't') if s == "true" => Value::Bool(true),
            Some(b'f') if s == "false" => Value::Bool(false),
            Some(b'"') => {
                if let Some(Some(decoded)) = self.unescaped.get(i) {
                    Value::Text(decoded)
                } else if let Some(inner) =
                    s.get(1..s.len().saturating_sub(1)).filter(|_| s.len() >= 2)
                {
                    Value::Text(inner)
                } else {
                    Value::Json(s)
                }
            }
            Some(b'-' | b'0'..=b'9') => crate::json::parse_number(s).unwrap_or(Value::Json(s)),
            _ => Value::Json(s),
        }
    }
}

/// The values of one column, all of one type.
#[derive(Debug, Clone, PartialEq)]
enum Values {
    Ints(Vec<i64>),
    Floats(Vec<f64>),
    Bools(Vec<bool>),
    Text(TextList),
    Bytes(BytesList),
    Timestamps(Vec<i64>),
    Json(JsonList),
}

#[derive(Debug, Clone, PartialEq)]
struct ColumnData {
    name: String,
    values: Values,
    valid: Option<Vec<bool>>,
}

impl ColumnData {
    fn get(&self, i: usize) -> Value<'_> {
        if let Some(valid) = &self.valid
            && !valid.get(i).copied().unwrap_or(false)
        {
            return Value::Null;
        }
        match &self.values {
            Values::Ints(v) => v.get(i).map_or(Value::Null, |&n| Value::Int(n)),
            Values::Floats(v) => v.get(i).map_or(Value::Null, |&x| Value::Float(x)),
            Values::Bools(v) => v.get(i).map_or(Value::Null, |&b| Value::Bool(b)),
            Values::Timestamps(v) => v.get(i).map_or(Value::Null, |&t| Value::Timestamp(t)),
            Values::Text(t) => t.get(i).map_or(Value::Null, Value::Text),
            Values::Bytes(b) => Value::Bytes(b.get(i)),
            Values::Json(j) => j.get(i),
        }
    }

    fn kind(&self) -> ValueKind {
        match self.values {
            Values::Ints(_) => ValueKind::Int,
            Values::Floats(_) => ValueKind::Float,
            Values::Bools(_) => ValueKind::Bool,
            Values::Text(_) => ValueKind::Text,
            Values::Bytes(_) => ValueKind::Bytes,
            Values::Timestamps(_) => ValueKind::Timestamp,
            Values::Json(_) => ValueKind::Json,
        }
    }
}

static NEXT_BATCH_ID: AtomicU64 = AtomicU64::new(1);

/// A batch of records received from the host, read row by row or column by
/// column.
///
/// ```
/// use ferry_plugin::{Batch, BatchBuilder, Op};
///
/// let mut b = BatchBuilder::new();
/// b.row("1", Op::Upsert).set("name", "Ada").set("age", 36);
/// let batch = Batch::from_raw(b.finish())?;
///
/// let age = batch.column("age"); // looked up once per batch
/// for row in batch.rows() {
///     let name = row.text("name")?; // or by name, with a clear error
///     let age = age.map(|c| c.get(row.index()));
///     assert_eq!((row.key(), name), ("1", "Ada"));
///     assert_eq!(age, Some(ferry_plugin::Value::Int(36)));
/// }
/// # Ok::<(), ferry_plugin::PluginError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    id: u64,
    len: usize,
    keys: TextList,
    ops: Vec<Op>,
    versions: Option<Vec<u64>>,
    updated_at: Option<Vec<i64>>,
    origins: Option<TextList>,
    columns: Vec<ColumnData>,
}

impl Batch {
    /// Takes a batch in the contract's layout, checking once that every list
    /// has one entry per record, offsets are in range and text is UTF-8.
    /// A malformed batch is a [`PluginError::Fatal`].
    pub fn from_raw(raw: types::Batch) -> Result<Batch, PluginError> {
        let len = raw.ops.len();
        let keys = TextList::from_raw(raw.keys, len, "keys")?;
        let check = |n: usize, what: &str| {
            if n == len {
                Ok(())
            } else {
                Err(PluginError::fatal(format!(
                    "{what} has {n} entries for {len} records"
                )))
            }
        };
        if let Some(v) = &raw.versions {
            check(v.len(), "versions")?;
        }
        if let Some(v) = &raw.updated_at {
            check(v.len(), "updated-at")?;
        }
        let origins = match raw.origins {
            Some(o) => Some(TextList::from_raw(o, len, "origins")?),
            None => None,
        };
        let mut columns = Vec::with_capacity(raw.columns.len());
        for c in raw.columns {
            let what = format!("column {:?}", c.name);
            if let Some(valid) = &c.valid {
                check(valid.len(), &format!("{what} validity"))?;
            }
            let values = match c.values {
                types::Values::Ints(v) => {
                    check(v.len(), &what)?;
                    Values::Ints(v)
                }
                types::Values::Floats(v) => {
                    check(v.len(), &what)?;
                    Values::Floats(v)
                }
                types::Values::Bools(v) => {
                    check(v.len(), &what)?;
                    Values::Bools(v)
                }
                types::Values::Timestamps(v) => {
                    check(v.len(), &what)?;
                    Values::Timestamps(v)
                }
                types::Values::Text(t) => Values::Text(TextList::from_raw(t, len, &what)?),
                types::Values::Bytes(t) => Values::Bytes(BytesList::from_raw(t, len, &what)?),
                types::Values::Json(t) => {
                    Values::Json(JsonList::new(TextList::from_raw(t, len, &what)?))
                }
            };
            columns.push(ColumnData {
                name: c.name,
                values,
                valid: c.valid,
            });
        }
        Ok(Batch {
            id: NEXT_BATCH_ID.fetch_add(1, Ordering::Relaxed),
            len,
            keys,
            ops: raw.ops,
            versions: raw.versions,
            updated_at: raw.updated_at,
            origins,
            columns,
        })
    }

    /// Gives the buffers back in the contract's layout, without copying.
    pub fn into_raw(self) -> types::Batch {
        types::Batch {
            keys: self.keys.into_raw(),
            ops: self.ops,
            versions: self.versions,
            updated_at: self.updated_at,
            origins: self.origins.map(TextList::into_raw),
            columns: self
                .columns
                .into_iter()
                .map(|c| types::Column {
                    name: c.name,
                    values: match c.values {
                        Values::Ints(v) => types::Values::Ints(v),
                        Values::Floats(v) => types::Values::Floats(v),
                        Values::Bools(v) => types::Values::Bools(v),
                        Values::Timestamps(v) => types::Values::Timestamps(v),
                        Values::Text(t) => types::Values::Text(t.into_raw()),
                        Values::Bytes(b) => types::Values::Bytes(types::Texts {
                            offsets: b.offsets,
                            data: b.data,
                        }),
                        Values::Json(j) => types::Values::Json(j.texts.into_raw()),
                    },
                    valid: c.valid,
                })
                .collect(),
        }
    }

    /// A number unique to this batch within the plugin instance (used to
    /// cache column lookups against it).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The number of records.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch has no record.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Record `i`, or `None` past the end.
    pub fn row(&self, i: usize) -> Option<Row<'_>> {
        (i < self.len).then_some(Row {
            batch: self,
            index: i,
        })
    }

    /// Every record, in order.
    pub fn rows(&self) -> Rows<'_> {
        Rows {
            batch: self,
            next: 0,
        }
    }

    /// The keys of every record.
    pub fn keys(&self) -> &TextList {
        &self.keys
    }

    /// Every column, in order.
    pub fn columns(&self) -> impl ExactSizeIterator<Item = Column<'_>> + '_ {
        self.columns
            .iter()
            .enumerate()
            .map(move |(index, data)| Column { data, index })
    }

    /// The number of columns.
    pub fn column_count(&self) -> usize {
        self.columns.len()
    }

    /// The column with this name. Look columns up once per batch and read
    /// them with [`Column::get`] or [`Row::value`] in the per-record loop.
    pub fn column(&self, name: &str) -> Option<Column<'_>> {
        self.column_index(name).and_then(|i| self.column_at(i))
    }

    /// Column number `index`.
    pub fn column_at(&self, index: usize) -> Option<Column<'_>> {
        self.columns.get(index).map(|data| Column { data, index })
    }

    /// The position of the column with this name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Whether the batch carries version numbers.
    pub fn has_versions(&self) -> bool {
        self.versions.is_some()
    }

    /// Whether the batch carries last-change instants.
    pub fn has_updated_at(&self) -> bool {
        self.updated_at.is_some()
    }

    /// Whether the batch carries origins.
    pub fn has_origins(&self) -> bool {
        self.origins.is_some()
    }
}

/// An iterator over the rows of a [`Batch`].
#[derive(Debug, Clone)]
pub struct Rows<'b> {
    batch: &'b Batch,
    next: usize,
}

impl<'b> Iterator for Rows<'b> {
    type Item = Row<'b>;

    fn next(&mut self) -> Option<Row<'b>> {
        let row = self.batch.row(self.next)?;
        self.next += 1;
        Some(row)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.batch.len.saturating_sub(self.next);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Rows<'_> {}

/// One column of a [`Batch`]: a name and one value per record.
#[derive(Debug, Clone, Copy)]
pub struct Column<'b> {
    data: &'b ColumnData,
    index: usize,
}

impl<'b> Column<'b> {
    /// The field name.
    pub fn name(&self) -> &'b str {
        &self.data.name
    }

    /// The column's position in the batch.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The column's type as sent. A `Json` column may still hold scalars,
    /// which [`Column::get`] decodes.
    pub fn kind(&self) -> ValueKind {
        self.data.kind()
    }

    /// The value of record `row` ([`Value::Null`] past the end).
    ///
    /// JSON scalars in a JSON column are decoded to `Int`, `Float`, `Bool`,
    /// `Text` or `Null`; objects and arrays stay [`Value::Json`].
    #[inline]
    pub fn get(&self, row: usize) -> Value<'b> {
        self.data.get(row)
    }

    /// The raw JSON text of record `row` of a JSON column, undecoded.
    pub fn raw_json(&self, row: usize) -> Option<&'b str> {
        match &self.data.values {
            Values::Json(j) if !self.get(row).is_null() => j.texts.get(row),
            _ => None,
        }
    }

    /// Whether record `row` has no value here.
    pub fn is_null(&self, row: usize) -> bool {
        self.get(row).is_null()
    }
}

/// One record of a [`Batch`].
#[derive(Debug, Clone, Copy)]
pub struct Row<'b> {
    batch: &'b Batch,
    index: usize,
}

impl<'b> Row<'b> {
    /// The record's position in its batch (what `record-issue.row`,
    /// `violation.row` and `derived-from` refer to).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The batch this record belongs to.
    pub fn batch(&self) -> &'b Batch {
        self.batch
    }

    /// The record's key.
    pub fn key(&self) -> &'b str {
        self.batch.keys.at(self.index)
    }

    /// The record's operation.
    pub fn op(&self) -> Op {
        self.batch
            .ops
            .get(self.index)
            .copied()
            .unwrap_or(Op::Upsert)
    }

    /// The record's version, if the batch has versions.
    pub fn version(&self) -> Option<u64> {
        self.batch.versions.as_ref()?.get(self.index).copied()
    }

    /// The record's last-change instant (micros since the epoch), if known.
    pub fn updated_at(&self) -> Option<i64> {
        self.batch.updated_at.as_ref()?.get(self.index).copied()
    }

    /// The system the change came from, if known.
    pub fn origin(&self) -> Option<&'b str> {
        self.batch.origins.as_ref()?.get(self.index)
    }

    /// The value of field `name` ([`Value::Null`] if absent or null).
    ///
    /// This finds the column by name on each call: in a loop over many
    /// records prefer [`Batch::column`] once and [`Row::value`].
    pub fn get(&self, name: &str) -> Value<'b> {
        self.batch
            .column(name)
            .map_or(Value::Null, |c| c.get(self.index))
    }

    /// The value of this record in `column` (a column of the same batch).
    #[inline]
    pub fn value(&self, column: Column<'b>) -> Value<'b> {
        column.get(self.index)
    }

    /// Whether field `name` is present and not null.
    pub fn has(&self, name: &str) -> bool {
        !self.get(name).is_null()
    }

    /// Every field of the record, in column order, nulls included.
    pub fn fields(&self) -> impl Iterator<Item = (&'b str, Value<'b>)> + 'b {
        let index = self.index;
        self.batch.columns().map(move |c| (c.name(), c.get(index)))
    }

    fn typed<T>(
        &self,
        name: &str,
        expected: &'static str,
        pick: impl Fn(Value<'b>) -> Option<T>,
    ) -> Result<Option<T>, FieldError> {
        let Some(column) = self.batch.column(name) else {
            return Ok(None);
        };
        let value = column.get(self.index);
        if value.is_null() {
            return Ok(None);
        }
        pick(value).map(Some).ok_or_else(|| FieldError {
            field: name.to_owned(),
            problem: Problem::WrongType {
                expected,
                found: value.describe(),
            },
        })
    }

    fn required<T>(
        &self,
        name: &str,
        found: Result<Option<T>, FieldError>,
    ) -> Result<T, FieldError> {
        found?.ok_or_else(|| FieldError {
            field: name.to_owned(),
            problem: if self.batch.column(name).is_some() {
                Problem::Null
            } else {
                Problem::Missing
            },
        })
    }

    /// Field `name` as text; an error if absent, null or not text.
    pub fn text(&self, name: &str) -> Result<&'b str, FieldError> {
        self.required(name, self.opt_text(name))
    }

    /// Field `name` as text, `None` if absent or null; an error if not text.
    pub fn opt_text(&self, name: &str) -> Result<Option<&'b str>, FieldError> {
        self.typed(name, "text", |v| v.as_text())
    }

    /// Field `name` as an integer; an error if absent, null or not an int.
    pub fn int(&self, name: &str) -> Result<i64, FieldError> {
        self.required(name, self.opt_int(name))
    }

    /// Field `name` as an integer, `None` if absent or null.
    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, FieldError> {
        self.typed(name, "int", |v| v.as_int())
    }

    /// Field `name` as a float (an int is accepted); an error if absent, null
    /// or not a number.
    pub fn float(&self, name: &str) -> Result<f64, FieldError> {
        self.required(name, self.opt_float(name))
    }

    /// Field `name` as a float, `None` if absent or null.
    pub fn opt_float(&self, name: &str) -> Result<Option<f64>, FieldError> {
        self.typed(name, "float", |v| v.as_float())
    }

    /// Field `name` as a boolean; an error if absent, null or not a bool.
    pub fn bool(&self, name: &str) -> Result<bool, FieldError> {
        self.required(name, self.opt_bool(name))
    }

    /// Field `name` as a boolean, `None` if absent or null.
    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, FieldError> {
        self.typed(name, "bool", |v| v.as_bool())
    }

    /// Field `name` as a timestamp (micros since the epoch); an error if
    /// absent, null or not a timestamp.
    pub fn timestamp(&self, name: &str) -> Result<i64, FieldError> {
        self.required(name, self.opt_timestamp(name))
    }

    /// Field `name` as a timestamp, `None` if absent or null.
    pub fn opt_timestamp(&self, name: &str) -> Result<Option<i64>, FieldError> {
        self.typed(name, "timestamp", |v| v.as_timestamp())
    }

    /// Field `name` as bytes; an error if absent, null or not bytes.
    pub fn bytes(&self, name: &str) -> Result<&'b [u8], FieldError> {
        self.required(name, self.typed(name, "bytes", |v| v.as_bytes()))
    }

    /// Field `name` as JSON text (an object or array); an error if absent,
    /// null or not JSON.
    pub fn json(&self, name: &str) -> Result<&'b str, FieldError> {
        self.required(name, self.typed(name, "json", |v| v.as_json()))
    }
}

/// Why a typed getter such as [`Row::text`] failed; its message names the
/// field, the expected type and what was found, for example
/// `field "age": expected int, found text "abc"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    field: String,
    problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Problem {
    Missing,
    Null,
    WrongType {
        expected: &'static str,
        found: String,
    },
}

impl FieldError {
    /// The field at fault.
    pub fn field(&self) -> &str {
        &self.field
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.problem {
            Problem::Missing => write!(f, "field {:?} is missing", self.field),
            Problem::Null => write!(f, "field {:?} is null", self.field),
            Problem::WrongType { expected, found } => {
                write!(
                    f,
                    "field {:?}: expected {expected}, found {found}",
                    self.field
                )
            }
        }
    }
}

impl std::error::Error for FieldError {}

/// A field error that escapes a plugin call fails the whole batch; to send
/// only the record to the dead-letter store, reject it instead (for example
/// with [`Mapped::reject`](crate::Mapped::reject)).
impl From<FieldError> for PluginError {
    fn from(e: FieldError) -> PluginError {
        PluginError::fatal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BatchBuilder;

    fn texts(values: &[&str]) -> types::Texts {
        let mut offsets = vec![0u32];
        let mut data = Vec::new();
        for v in values {
            data.extend_from_slice(v.as_bytes());
            offsets.push(data.len() as u32);
        }
        types::Texts { offsets, data }
    }

    fn raw_batch(columns: Vec<types::Column>, n: usize) -> types::Batch {
        let keys: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        types::Batch {
            keys: texts(&keys),
            ops: vec![Op::Upsert; n],
            versions: None,
            updated_at: None,
            origins: None,
            columns,
        }
    }

    #[test]
    fn reads_text_without_copying_and_nulls_from_validity() {
        let raw = raw_batch(
            vec![types::Column {
                name: "name".into(),
                values: types::Values::Text(texts(&["Ada", "", "Grace"])),
                valid: Some(vec![true, false, true]),
            }],
            3,
        );
        let b = Batch::from_raw(raw).unwrap();
        let rows: Vec<_> = b.rows().map(|r| r.get("name")).collect();
        assert_eq!(
            rows,
            [Value::Text("Ada"), Value::Null, Value::Text("Grace")]
        );
        assert_eq!(b.row(1).unwrap().key(), "1");
        assert!(b.row(3).is_none());
    }

    #[test]
    fn typed_getters_explain_errors() {
        let mut bb = BatchBuilder::new();
        bb.row("k", Op::Upsert)
            .set("age", "abc")
            .set("n", Value::Null);
        let b = Batch::from_raw(bb.finish()).unwrap();
        let r = b.row(0).unwrap();
        assert_eq!(
            r.int("age").unwrap_err().to_string(),
            r#"field "age": expected int, found text "abc""#
        );
        assert_eq!(
            r.text("email").unwrap_err().to_string(),
            r#"field "email" is missing"#
        );
        assert_eq!(r.text("n").unwrap_err().to_string(), r#"field "n" is null"#);
        assert_eq!(r.opt_text("n").unwrap(), None);
        assert_eq!(r.text("age").unwrap(), "abc");
    }

    #[test]
    fn rejects_malformed_batches() {
        let mut raw = raw_batch(
            vec![types::Column {
                name: "x".into(),
                values: types::Values::Ints(vec![1]),
                valid: None,
            }],
            2,
        );
        assert!(Batch::from_raw(raw.clone()).is_err());
        raw.columns.clear();
        raw.keys.offsets = vec![0, 5, 1];
        assert!(Batch::from_raw(raw.clone()).is_err());
        raw.keys = types::Texts {
            offsets: vec![0, 1, 2],
            data: vec![0xC3, 0xA9],
        };
        assert!(
            Batch::from_raw(raw).is_err(),
            "offset inside a UTF-8 character"
        );
    }

    #[test]
    fn json_column_decodes_scalars() {
        let raw = raw_batch(
            vec![types::Column {
                name: "j".into(),
                values: types::Values::Json(texts(&[
                    "12",
                    "1.5",
                    "\"a\\\"b\"",
                    "\"plain\"",
                    "true",
                    "null",
                    "{\"x\":1}",
                    "[1]",
                ])),
                valid: None,
            }],
            8,
        );
        let b = Batch::from_raw(raw).unwrap();
        let got: Vec<_> = b.rows().map(|r| r.get("j")).collect();
        assert_eq!(
            got,
            [
                Value::Int(12),
                Value::Float(1.5),
                Value::Text("a\"b"),
                Value::Text("plain"),
                Value::Bool(true),
                Value::Null,
                Value::Json("{\"x\":1}"),
                Value::Json("[1]"),
            ]
        );
        assert_eq!(b.column("j").unwrap().raw_json(0), Some("12"));
    }

    #[test]
    fn into_raw_gives_back_the_same_batch() {
        let mut bb = BatchBuilder::new();
        bb.row("a", Op::Delete).set("x", 1).version(3);
        bb.row("b", Op::Upsert).set("y", "t");
        let raw = bb.finish();
        let back = Batch::from_raw(raw.clone()).unwrap().into_raw();
        assert_eq!(raw, back);
    }
}
