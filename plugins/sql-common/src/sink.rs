//! The table sink: upserts and deletes records by key, a whole `write` in
//! one transaction.
//!
//! # What one `write` does
//!
//! 1. Each record is turned into parameters for the table's columns
//!    ([`crate::values::to_param`]); a record a column cannot hold is
//!    rejected with the reason, and the rest go on. Key columns take the
//!    record's field when it has one (not null), else the record key
//!    (`42`, or a JSON array `[42,"eu"]` for a key of several columns).
//! 2. Records with the same key: the last one wins (one `INSERT ... ON
//!    CONFLICT` cannot touch a row twice); the earlier ones count as
//!    written, since the last one overwrites them.
//! 3. In one transaction: deletes as `DELETE ... WHERE key IN (...)`,
//!    upserts as multi-row `INSERT ... ON CONFLICT (key) DO UPDATE SET` on
//!    the columns the batch has (a column the batch does not have is left
//!    as it is; a null field is written as NULL), in chunks that stay under
//!    the parameter limit. Then commit.
//! 4. A statement the database refuses because of the data (a constraint,
//!    a value the column refuses) does not fail the batch. The host ends a
//!    transaction at its first failed statement, so the culprits are found
//!    outside it: each chunk is tried again in a transaction that is rolled
//!    back, a chunk that fails is split in halves down to single records,
//!    and each record refused alone is rejected with the database's reason.
//!    Then the write runs again, in one transaction, without them. Passing
//!    failures (connection lost, deadlock, serialization failure, timeout)
//!    are `retryable`: the host writes the batch again later; anything else
//!    (a missing table, a statement the server cannot run) is `fatal`.
//!
//! # Version checks
//!
//! With `version_column`, a record is written only if its version is newer
//! than the stored one: `ON CONFLICT ... DO UPDATE ... WHERE t.v IS NULL OR
//! t.v < excluded.v`. The same version is accepted when the row would not
//! change (so writing a batch twice is harmless). Every other record is a
//! *conflict* in the report (the host sends it to the dead-letter store
//! with reason `conflict`, where two-way sync will pick it up). The version
//! is the record's field for that column, else its `version` (integer
//! columns) or `updated-at` (timestamp columns); an upsert without one is
//! rejected. A delete with a version deletes only a row whose stored
//! version is not newer; a delete without one deletes unconditionally (a
//! full sync's deletes carry none).
//!
//! With `version_check = false` the column is only read: `fetch` reports
//! it as each row's version (two-way sync's `detect = "version"`), and
//! writes neither check nor set it (a trigger in the database keeps it).

mod statements;

pub use statements::{
    changed_sql, create_table_sql, delete_sql, fetch_sql, remaining_sql, upsert_sql,
    versioned_delete_sql,
};

use std::collections::{BTreeSet, HashMap};

use ferry_plugin::sql::{SqlError, SqlErrorKind, Value as SqlValue};
use ferry_plugin::{
    Batch, BatchBuilder, Column, Op, PluginError, RecordIssue, Row, TextList, Value, ValueKind,
    WriteReport, types,
};

use crate::config::{ColumnsSpec, SinkConfig};
use crate::db::{Database, Tx, is_data_error};
use crate::dialect::{ColType, Dialect, create_type};
use crate::ident::{self, TableName};
use crate::schema::{ColumnMeta, TableMeta, introspect};
use crate::values::{key_text, parse_key, plain, read, to_param};

/// The most rows one statement writes: larger statements save little and
/// take long to plan.
const MAX_ROWS_PER_STATEMENT: usize = 1000;

/// How many times a write drops the records the database refuses and tries
/// again before it gives up.
const MAX_ATTEMPTS: usize = 4;

/// An upserting table sink over a [`Database`].
pub struct TableSink<D: Database> {
    db: D,
    dialect: Dialect,
    table: TableName,
    key_names: Option<Vec<String>>,
    columns: Option<ColumnsSpec>,
    version_column: Option<String>,
    /// Whether writes check (and set) the version column.
    version_check: bool,
    create_table: bool,
    /// The table, once it exists; the key's positions in it.
    target: Option<Target>,
    /// Batch fields already reported as not being columns.
    warned: BTreeSet<String>,
}

#[derive(Debug, Clone)]
struct Target {
    meta: TableMeta,
    key: Vec<String>,
    version: Option<ColumnMeta>,
}

/// Where a written column's value comes from.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// A batch field (for key columns: the record key when it is null;
    /// for the version: the record's version when it is null).
    Field(usize),
    /// The record key.
    Key,
    /// The record's version or updated-at.
    Meta,
}

/// The columns one batch writes: the key first, in key order.
#[derive(Debug, Clone)]
struct Layout {
    cols: Vec<ColumnMeta>,
    from: Vec<Origin>,
    key_n: usize,
    version: Option<usize>,
}

/// One record ready to write.
#[derive(Debug, Clone)]
struct Item {
    row: usize,
    values: Vec<SqlValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Upsert,
    Delete,
    VersionedDelete,
}

#[derive(Debug, Default)]
struct Outcome {
    rejected: Vec<RecordIssue>,
    conflicts: Vec<RecordIssue>,
}

fn invalid(message: impl Into<String>) -> PluginError {
    PluginError::invalid_config(message.into())
}

fn row_no(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

impl<D: Database> TableSink<D> {
    /// Opens the sink: checks the settings against the table (if it does
    /// not exist yet, `create_table` must be set; it is created at the
    /// first write, from that batch's fields).
    pub fn open(db: D, config: SinkConfig) -> Result<Self, PluginError> {
        let dialect = db.dialect();
        let table = TableName::parse(&config.table).map_err(invalid)?;
        if let Some(k) = &config.key {
            for n in k.clone().into_vec() {
                ident::check(&n, "key").map_err(invalid)?;
            }
        }
        if let Some(spec) = &config.columns {
            for (field, column) in spec.pairs() {
                ident::check(&column, &format!("columns.{field}")).map_err(invalid)?;
            }
        }
        if let Some(v) = &config.version_column {
            ident::check(v, "version_column").map_err(invalid)?;
        }
        let mut sink = TableSink {
            db,
            dialect,
            table,
            key_names: config.key.map(|k| k.into_vec()),
            columns: config.columns,
            version_column: config.version_column,
            version_check: config.version_check,
            create_table: config.create_table,
            target: None,
            warned: BTreeSet::new(),
        };
        match introspect(&mut sink.db, &sink.table)? {
            Some(meta) => sink.target = Some(sink.check_target(meta)?),
            None if sink.create_table => {}
            None => {
                return Err(invalid(format!(
                    "table: {} has no table {} (set create_table = true to create it from the first batch)",
                    dialect.name(),
                    sink.table
                )));
            }
        }
        Ok(sink)
    }

    fn check_target(&self, meta: TableMeta) -> Result<Target, PluginError> {
        let key = match &self.key_names {
            Some(k) if k.is_empty() => return Err(invalid("key: give at least one column")),
            Some(k) => k.clone(),
            None if meta.primary_key.is_empty() => {
                return Err(invalid(format!(
                    "key: table {} has no primary key; set `key` to columns with a unique index",
                    self.table
                )));
            }
            None => meta.primary_key.clone(),
        };
        for k in &key {
            meta.require(k, "key").map_err(invalid)?;
        }
        if !meta.has_unique(&key) {
            return Err(invalid(format!(
                "key: table {} has no primary key or unique index on ({}), which INSERT ... ON CONFLICT needs",
                self.table,
                key.join(", ")
            )));
        }
        if let Some(spec) = &self.columns {
            for (field, column) in spec.pairs() {
                let c = meta
                    .require(&column, &format!("columns.{field}"))
                    .map_err(invalid)?;
                if c.generated {
                    return Err(invalid(format!(
                        "columns.{field}: column {column:?} is generated and cannot be written"
                    )));
                }
            }
        }
        let version = match &self.version_column {
            Some(v) => {
                let c = meta.require(v, "version_column").map_err(invalid)?;
                if !matches!(c.ty, ColType::Int { .. } | ColType::Timestamp) {
                    return Err(invalid(format!(
                        "version_column: {v:?} is {}; a version is an integer or a timestamp",
                        c.declared
                    )));
                }
                if key.contains(v) {
                    return Err(invalid(
                        "version_column: a key column cannot be the version",
                    ));
                }
                Some(c.clone())
            }
            None => None,
        };
        Ok(Target { meta, key, version })
    }

    /// Writes a batch (see the module documentation).
    pub fn write(&mut self, batch: &Batch) -> Result<WriteReport, PluginError> {
        if batch.is_empty() {
            return Ok(WriteReport::ok());
        }
        if self.target.is_none() {
            self.create(batch)?;
        }
        let layout = self.layout(batch)?;
        let mut outcome = Outcome::default();
        let (upserts, deletes, vdeletes) = self.prepare(batch, &layout, &mut outcome);
        let mut work = [
            (Kind::Delete, deletes),
            (Kind::VersionedDelete, vdeletes),
            (Kind::Upsert, upserts),
        ];
        for _ in 0..MAX_ATTEMPTS {
            match self.run(&layout, &work) {
                Ok(conflicts) => {
                    outcome.conflicts.extend(conflicts);
                    return Ok(WriteReport {
                        rejected: outcome.rejected,
                        conflicts: outcome.conflicts,
                    });
                }
                Err(e) if is_data_error(self.dialect, &e) => {
                    let culprits = self
                        .find_culprits(&layout, &work)
                        .map_err(|e| self.error(e))?;
                    if culprits.is_empty() {
                        // Refused together, accepted one by one: no single
                        // record to blame; the host splits the batch.
                        return Err(self.error(e));
                    }
                    let refused: BTreeSet<u32> = culprits.iter().map(|c| c.row).collect();
                    for (_, items) in &mut work {
                        items.retain(|i| !refused.contains(&row_no(i.row)));
                    }
                    outcome.rejected.extend(culprits);
                }
                Err(e) => return Err(self.error(e)),
            }
        }
        Err(PluginError::fatal(format!(
            "writing to {}: still refused after rejecting records {MAX_ATTEMPTS} times",
            self.table
        )))
    }

    fn error(&self, e: SqlError) -> PluginError {
        let text = format!(
            "writing to {}: {}",
            self.table,
            ferry_plugin::sql::describe(&e)
        );
        match e.kind {
            SqlErrorKind::Retryable => PluginError::retryable(text),
            _ => PluginError::fatal(text),
        }
    }

    /// `(field, column)` pairs: the `columns` map, or every batch field
    /// into the column of its name.
    fn pairs(&self, batch: &Batch) -> Vec<(String, String)> {
        match &self.columns {
            Some(spec) => spec.pairs(),
            None => batch
                .columns()
                .map(|c| (c.name().to_owned(), c.name().to_owned()))
                .collect(),
        }
    }

    /// Creates the table from the batch's fields.
    fn create(&mut self, batch: &Batch) -> Result<(), PluginError> {
        let key = self.key_names.clone().unwrap_or_else(|| vec!["id".into()]);
        let pairs = self.pairs(batch);
        let mut cols: Vec<(String, &'static str)> = Vec::new();
        for (field, column) in &pairs {
            ident::check(column, "a batch field").map_err(PluginError::fatal)?;
            let kind = batch
                .column(field)
                .map_or(ValueKind::Null, |c| first_kind(batch, c));
            if !cols.iter().any(|(n, _)| n == column) {
                cols.push((column.clone(), create_type(self.dialect, kind)));
            }
        }
        // The key first, in key order (a key column the batch lacks comes
        // from the record key: text).
        for (i, k) in key.iter().enumerate() {
            let col = match cols.iter().position(|(n, _)| n == k) {
                Some(p) => cols.remove(p),
                None => (k.clone(), create_type(self.dialect, ValueKind::Text)),
            };
            cols.insert(i, col);
        }
        if let Some(v) = &self.version_column
            && !cols.iter().any(|(n, _)| n == v)
        {
            let kind = if batch.has_updated_at() && !batch.has_versions() {
                ValueKind::Timestamp
            } else {
                ValueKind::Int
            };
            cols.push((v.clone(), create_type(self.dialect, kind)));
        }
        let sql = create_table_sql(&self.table.quoted(), &cols, &key);
        ferry_plugin::log::info!("creating table {}: {sql}", self.table);
        self.db.execute(&sql, &[]).map_err(|e| self.error(e))?;
        let meta = introspect(&mut self.db, &self.table)?.ok_or_else(|| {
            PluginError::fatal(format!(
                "table {} is still missing after CREATE TABLE",
                self.table
            ))
        })?;
        self.target = Some(self.check_target(meta)?);
        Ok(())
    }

    /// Which columns this batch writes, and from where.
    fn layout(&mut self, batch: &Batch) -> Result<Layout, PluginError> {
        let target = self
            .target
            .as_ref()
            .ok_or_else(|| PluginError::fatal("the table is not known"))?;
        let meta = &target.meta;
        let mut cols: Vec<ColumnMeta> = Vec::new();
        let mut from: Vec<Origin> = Vec::new();
        let pairs = self.pairs(batch);
        let mut field_of: HashMap<&str, usize> = HashMap::new();
        let mut others: Vec<(ColumnMeta, usize)> = Vec::new();
        for (field, column) in &pairs {
            let Some(index) = batch.column_index(field) else {
                continue; // not in this batch: the column is left as it is
            };
            match meta.column(column) {
                Some(c) if !c.generated => {
                    if target.key.contains(&c.name) {
                        field_of.insert(c.name.as_str(), index);
                    } else if !others.iter().any(|(o, _)| o.name == c.name) {
                        others.push((c.clone(), index));
                    }
                }
                Some(_) | None => {
                    if self.warned.insert(field.clone()) {
                        ferry_plugin::log::warn!(
                            "field {field:?} is not a writable column of {}; it is not written",
                            self.table
                        );
                    }
                }
            }
        }
        for k in &target.key {
            let c = meta.require(k, "key").map_err(PluginError::fatal)?;
            cols.push(c.clone());
            from.push(match field_of.get(k.as_str()) {
                Some(&i) => Origin::Field(i),
                None => Origin::Key,
            });
        }
        let key_n = cols.len();
        for (c, i) in others {
            cols.push(c);
            from.push(Origin::Field(i));
        }
        let checked = target.version.as_ref().filter(|_| self.version_check);
        if !self.version_check
            && let Some(v) = &target.version
            && let Some(p) = cols.iter().position(|c| c.name == v.name)
        {
            // Left to the database.
            cols.remove(p);
            from.remove(p);
        }
        let version = checked.map(|v| match cols.iter().position(|c| c.name == v.name) {
            Some(p) => p,
            None => {
                cols.push(v.clone());
                from.push(Origin::Meta);
                cols.len() - 1
            }
        });
        Ok(Layout {
            cols,
            from,
            key_n,
            version,
        })
    }

    /// Turns records into parameters; rejects those that do not fit;
    /// keeps the last record per key.
    fn prepare(
        &self,
        batch: &Batch,
        layout: &Layout,
        outcome: &mut Outcome,
    ) -> (Vec<Item>, Vec<Item>, Vec<Item>) {
        let columns: Vec<Option<Column<'_>>> = (0..batch.column_count())
            .map(|i| batch.column_at(i))
            .collect();
        let mut latest: HashMap<String, (Kind, Item)> = HashMap::new();
        for row in batch.rows() {
            match self.prepare_record(layout, &row, &columns) {
                Ok((kind, values)) => {
                    let key_values: Vec<Value<'_>> =
                        values.iter().take(layout.key_n).map(plain).collect();
                    let canonical = key_text(&key_values);
                    latest.insert(
                        canonical,
                        (
                            kind,
                            Item {
                                row: row.index(),
                                values,
                            },
                        ),
                    );
                }
                Err(reason) => outcome.rejected.push(RecordIssue {
                    row: row_no(row.index()),
                    reason,
                }),
            }
        }
        let mut items: Vec<(Kind, Item)> = latest.into_values().collect();
        items.sort_by_key(|(_, item)| item.row);
        let mut upserts = Vec::new();
        let mut deletes = Vec::new();
        let mut vdeletes = Vec::new();
        for (kind, item) in items {
            match kind {
                Kind::Upsert => upserts.push(item),
                Kind::Delete => deletes.push(item),
                Kind::VersionedDelete => vdeletes.push(item),
            }
        }
        (upserts, deletes, vdeletes)
    }

    /// One record's parameters: every written column for an upsert; the
    /// key (and the version, if any) for a delete.
    fn prepare_record(
        &self,
        layout: &Layout,
        row: &Row<'_>,
        columns: &[Option<Column<'_>>],
    ) -> Result<(Kind, Vec<SqlValue>), String> {
        let dialect = self.dialect;
        let upsert = row.op() == Op::Upsert;
        let mut parts: Option<Vec<SqlValue>> = None;
        let mut values = Vec::with_capacity(layout.cols.len());
        for (i, (col, from)) in layout.cols.iter().zip(&layout.from).enumerate() {
            let is_key = i < layout.key_n;
            let is_version = layout.version == Some(i);
            if !upsert && !is_key && !is_version {
                continue;
            }
            let field = match *from {
                Origin::Field(f) => columns
                    .get(f)
                    .copied()
                    .flatten()
                    .map_or(Value::Null, |c| row.value(c)),
                Origin::Key | Origin::Meta => Value::Null,
            };
            let param = if !field.is_null() {
                to_param(dialect, col, field)?
            } else if is_key {
                if parts.is_none() {
                    parts = Some(parse_key(row.key(), layout.key_n)?);
                }
                let v = parts
                    .as_ref()
                    .and_then(|p| p.get(i))
                    .map_or(Value::Null, plain);
                if v.is_null() {
                    return Err(format!("key column {:?} has no value", col.name));
                }
                to_param(dialect, col, v)?
            } else if is_version {
                to_param(dialect, col, meta_version(row, col))?
            } else {
                SqlValue::Null
            };
            values.push(param);
        }
        let version = layout.version.and_then(|p| layout.cols.get(p));
        let kind = match (upsert, version) {
            (true, Some(v)) => {
                let at = layout.version.unwrap_or(0);
                if values.get(at).is_none_or(|x| *x == SqlValue::Null) {
                    return Err(format!(
                        "no version to check: version_column is {:?}, and the record has neither that field nor a version",
                        v.name
                    ));
                }
                Kind::Upsert
            }
            (true, None) => Kind::Upsert,
            (false, Some(_)) if values.last().is_some_and(|x| *x != SqlValue::Null) => {
                Kind::VersionedDelete
            }
            (false, Some(_)) => {
                values.pop();
                Kind::Delete
            }
            (false, None) => Kind::Delete,
        };
        Ok((kind, values))
    }

    /// Runs the work in one transaction; returns the conflicts.
    fn run(
        &mut self,
        layout: &Layout,
        work: &[(Kind, Vec<Item>)],
    ) -> Result<Vec<RecordIssue>, SqlError> {
        let dialect = self.dialect;
        let table = self.table.quoted();
        let mut conflicts = Vec::new();
        let mut tx = self.db.begin()?;
        for (kind, items) in work {
            for chunk in items.chunks(chunk_rows(dialect, layout, *kind)) {
                conflicts.extend(exec(tx.as_mut(), dialect, &table, layout, *kind, chunk)?);
            }
        }
        tx.commit()?;
        Ok(conflicts)
    }

    /// Finds the records the database refuses: each chunk is tried in a
    /// transaction that is rolled back, and a chunk that fails is split in
    /// halves until single records are left, each with the database's
    /// reason. (The host ends a transaction at the first failed statement,
    /// so the records cannot be tried one by one inside the write's own
    /// transaction, nor behind savepoints.)
    fn find_culprits(
        &mut self,
        layout: &Layout,
        work: &[(Kind, Vec<Item>)],
    ) -> Result<Vec<RecordIssue>, SqlError> {
        let mut found = Vec::new();
        for (kind, items) in work {
            for chunk in items.chunks(chunk_rows(self.dialect, layout, *kind)) {
                self.probe(layout, *kind, chunk, &mut found)?;
            }
        }
        Ok(found)
    }

    fn probe(
        &mut self,
        layout: &Layout,
        kind: Kind,
        items: &[Item],
        found: &mut Vec<RecordIssue>,
    ) -> Result<(), SqlError> {
        if items.is_empty() {
            return Ok(());
        }
        let dialect = self.dialect;
        let table = self.table.quoted();
        let result = {
            let mut tx = self.db.begin()?;
            exec(tx.as_mut(), dialect, &table, layout, kind, items)
            // Dropped without a commit: rolled back.
        };
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_data_error(dialect, &e) => match items {
                [one] => {
                    found.push(RecordIssue {
                        row: row_no(one.row),
                        reason: ferry_plugin::sql::describe(&e),
                    });
                    Ok(())
                }
                _ => {
                    let (a, b) = items.split_at(items.len() / 2);
                    self.probe(layout, kind, a, found)?;
                    self.probe(layout, kind, b, found)
                }
            },
            Err(e) => Err(e),
        }
    }

    /// The current rows of `keys` (for two-way sync), keys that do not
    /// exist left out.
    pub fn fetch(&mut self, keys: &TextList) -> Result<types::Batch, PluginError> {
        let Some(target) = &self.target else {
            return Ok(BatchBuilder::new().finish());
        };
        let dialect = self.dialect;
        let meta = &target.meta;
        let key_cols: Vec<&ColumnMeta> = target.key.iter().filter_map(|k| meta.column(k)).collect();
        // Fields: the mapped columns (all columns without a map), named as
        // the batch names them.
        let fields: Vec<(String, &ColumnMeta)> = match &self.columns {
            Some(spec) => {
                let pairs = spec.pairs();
                let mut f: Vec<(String, &ColumnMeta)> = Vec::new();
                for k in &key_cols {
                    if !pairs.iter().any(|(_, c)| *c == k.name) {
                        f.push((k.name.clone(), k));
                    }
                }
                for (field, column) in pairs {
                    if let Some(c) = meta.column(&column) {
                        f.push((field, c));
                    }
                }
                f
            }
            None => meta.columns.iter().map(|c| (c.name.clone(), c)).collect(),
        };
        let mut select: Vec<&ColumnMeta> = key_cols.clone();
        for (_, c) in &fields {
            if !select.iter().any(|s| s.name == c.name) {
                select.push(c);
            }
        }
        if let Some(v) = &target.version
            && !select.iter().any(|s| s.name == v.name)
        {
            select.push(v);
        }
        let select_list = select
            .iter()
            .map(|c| dialect.select_expr(c))
            .collect::<Vec<_>>()
            .join(", ");
        let mut params: Vec<Vec<SqlValue>> = Vec::new();
        for key in keys.iter() {
            let parts = match parse_key(key, key_cols.len()) {
                Ok(p) => p,
                Err(_) => continue, // cannot be a key of this table
            };
            let converted: Result<Vec<SqlValue>, String> = key_cols
                .iter()
                .zip(&parts)
                .map(|(c, v)| to_param(dialect, c, plain(v)))
                .collect();
            if let Ok(c) = converted {
                params.push(c);
            }
        }
        // In the order asked for (as far as the keys read back match the
        // keys asked for; the others follow).
        let order: HashMap<String, usize> = params
            .iter()
            .enumerate()
            .map(|(i, p)| (key_text(&p.iter().map(plain).collect::<Vec<_>>()), i))
            .collect();
        // Where each column is in a result row, looked up once.
        let position = |name: &str| select.iter().position(|c| c.name == name);
        let key_at: Vec<Option<usize>> = key_cols.iter().map(|c| position(&c.name)).collect();
        let field_at: Vec<Option<usize>> = fields.iter().map(|(_, c)| position(&c.name)).collect();
        let version_at = target.version.as_ref().map(|v| (v, position(&v.name)));
        let chunk_rows =
            (dialect.max_params() / key_cols.len().max(1)).clamp(1, MAX_ROWS_PER_STATEMENT);
        let table = self.table.quoted();
        let mut found: Vec<(usize, String, Vec<SqlValue>)> = Vec::new();
        for chunk in params.chunks(chunk_rows) {
            let sql = fetch_sql(dialect, &table, &select_list, &key_cols, chunk.len());
            let flat: Vec<SqlValue> = chunk.iter().flatten().cloned().collect();
            let rows = self.db.query(&sql, &flat).map_err(|e| self.error(e))?;
            for r in rows.rows {
                let asked: Vec<Value<'_>> = key_at
                    .iter()
                    .map(|p| p.and_then(|p| r.get(p)).map_or(Value::Null, plain))
                    .collect();
                let rank = order.get(&key_text(&asked)).copied().unwrap_or(usize::MAX);
                let key: Vec<Value<'_>> = key_cols
                    .iter()
                    .zip(&key_at)
                    .map(|(c, p)| {
                        p.and_then(|p| r.get(p))
                            .map_or(Value::Null, |v| read(dialect, c.ty, v))
                    })
                    .collect();
                let text = key_text(&key);
                found.push((rank, text, r));
            }
        }
        found.sort_by_key(|(rank, _, _)| *rank);
        let mut out = BatchBuilder::with_capacity(found.len());
        let ids: Vec<_> = fields.iter().map(|(name, _)| out.column(name)).collect();
        for (_, key, r) in &found {
            let at = |p: Option<usize>| p.and_then(|p| r.get(p)).unwrap_or(&SqlValue::Null);
            let mut b = out.row(key, Op::Upsert);
            for (((_, c), id), p) in fields.iter().zip(&ids).zip(&field_at) {
                b.set_at(*id, read(dialect, c.ty, at(*p)));
            }
            if let Some((v, p)) = version_at {
                match read(dialect, v.ty, at(p)) {
                    Value::Int(n) => {
                        if let Ok(n) = u64::try_from(n) {
                            b.version(n);
                        }
                    }
                    Value::Timestamp(t) => {
                        b.updated_at(t);
                    }
                    _ => {}
                }
            }
        }
        Ok(out.finish())
    }

    /// The database, for tests.
    pub fn db_mut(&mut self) -> &mut D {
        &mut self.db
    }
}

/// The record's version (integer columns) or updated-at (timestamp
/// columns), as a value for `col`.
fn meta_version(row: &Row<'_>, col: &ColumnMeta) -> Value<'static> {
    match col.ty {
        ColType::Timestamp => row.updated_at().map_or(Value::Null, Value::Timestamp),
        _ => row
            .version()
            .and_then(|v| i64::try_from(v).ok())
            .map_or(Value::Null, Value::Int),
    }
}

/// The ferry type of a column's first non-null value.
fn first_kind(batch: &Batch, column: Column<'_>) -> ValueKind {
    (0..batch.len())
        .map(|i| column.get(i).kind())
        .find(|k| *k != ValueKind::Null)
        .unwrap_or(ValueKind::Null)
}

/// How many rows of `kind` one statement carries: under the dialect's
/// parameter limit and [`MAX_ROWS_PER_STATEMENT`].
fn chunk_rows(dialect: Dialect, layout: &Layout, kind: Kind) -> usize {
    let per_row = match kind {
        Kind::Upsert => layout.cols.len() + 1,
        Kind::Delete => layout.key_n,
        Kind::VersionedDelete => layout.key_n + 2,
    };
    (dialect.max_params() / per_row.max(1)).clamp(1, MAX_ROWS_PER_STATEMENT)
}

/// Runs one chunk; returns its conflicts.
fn exec(
    tx: &mut dyn Tx,
    dialect: Dialect,
    table: &str,
    layout: &Layout,
    kind: Kind,
    chunk: &[Item],
) -> Result<Vec<RecordIssue>, SqlError> {
    let cols: Vec<&ColumnMeta> = layout.cols.iter().collect();
    let key_cols = cols.get(..layout.key_n).unwrap_or(&[]);
    match kind {
        Kind::Delete => {
            let sql = delete_sql(dialect, table, key_cols, chunk.len());
            let params: Vec<SqlValue> = chunk
                .iter()
                .flat_map(|i| i.values.iter().cloned())
                .collect();
            tx.execute(&sql, &params)?;
            Ok(Vec::new())
        }
        Kind::VersionedDelete => {
            let version = layout
                .version
                .and_then(|p| cols.get(p).copied())
                .ok_or_else(|| crate::db::failed("no version column"))?;
            let params = with_ord(chunk);
            tx.execute(
                &versioned_delete_sql(dialect, table, key_cols, version, chunk.len()),
                &params,
            )?;
            let left = tx.query(
                &remaining_sql(dialect, table, key_cols, version, chunk.len()),
                &params,
            )?;
            Ok(conflicts_from(
                left,
                "the target holds a newer version; the delete was not applied",
            ))
        }
        Kind::Upsert => {
            let params: Vec<SqlValue> = chunk
                .iter()
                .flat_map(|i| i.values.iter().cloned())
                .collect();
            let sql = upsert_sql(
                dialect,
                table,
                &cols,
                layout.key_n,
                layout.version,
                chunk.len(),
            );
            tx.execute(&sql, &params)?;
            if layout.version.is_none() {
                return Ok(Vec::new());
            }
            let params = with_ord(chunk);
            let left = tx.query(
                &changed_sql(dialect, table, &cols, layout.key_n, chunk.len()),
                &params,
            )?;
            Ok(conflicts_from(
                left,
                "the target holds a newer version (or the same version with other values); the record was not written",
            ))
        }
    }
}

fn with_ord(chunk: &[Item]) -> Vec<SqlValue> {
    let mut params =
        Vec::with_capacity(chunk.len() * (chunk.first().map_or(0, |i| i.values.len()) + 1));
    for item in chunk {
        params.push(SqlValue::Int(i64::try_from(item.row).unwrap_or(i64::MAX)));
        params.extend(item.values.iter().cloned());
    }
    params
}

fn conflicts_from(rows: ferry_plugin::sql::Rows, reason: &str) -> Vec<RecordIssue> {
    rows.rows
        .iter()
        .filter_map(|r| match r.first() {
            Some(SqlValue::Int(n)) => u32::try_from(*n).ok(),
            _ => None,
        })
        .map(|row| RecordIssue {
            row,
            reason: reason.to_owned(),
        })
        .collect()
}

/// `(p, p, ...), (p, p, ...)` for `rows` rows of `cols`, numbered from
/// 1; with `ord`, each row starts with an integer parameter (the record's
/// row in the batch, which post-write queries return).
fn values_rows(
    dialect: Dialect,
    cols: &[&ColumnMeta],
    rows: usize,
    ord: bool,
    exact: bool,
) -> String {
    let mut out = String::new();
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        if ord {
            n += 1;
            out.push_str(&match dialect {
                Dialect::Postgres => format!("${n}::bigint"),
                Dialect::Sqlite => format!("?{n}"),
            });
        }
        for (i, c) in cols.iter().enumerate() {
            if i > 0 || ord {
                out.push_str(", ");
            }
            n += 1;
            out.push_str(&dialect.value_param(c, n, exact));
        }
        out.push(')');
    }
    out
}

#[cfg(test)]
mod tests;
