//! Introspection: a table's columns, their types, its primary key and its
//! unique indexes, read from the catalog (`pg_catalog` on PostgreSQL,
//! `pragma_table_xinfo` and `pragma_index_list` on SQLite). Everything a
//! statement names is checked against this first.

use ferry_plugin::sql::{Rows, SqlError, Value};

use crate::db::Database;
use crate::dialect::{ColType, Dialect};
use crate::ident::TableName;

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMeta {
    /// Its name, as the catalog spells it.
    pub name: String,
    /// Its type as declared, with modifiers: `numeric(10,2)`,
    /// `character varying(20)`; SQLite: the declared type text.
    pub declared: String,
    /// Its type without modifiers (PostgreSQL), for casts that must not cut
    /// values: `character varying`; SQLite: the declared type.
    pub base: String,
    /// PostgreSQL's `typname` (`int4`, `_text`); SQLite: the declared type.
    pub type_name: String,
    /// How ferry reads and writes it.
    pub ty: ColType,
    /// `NOT NULL`.
    pub not_null: bool,
    /// A generated column: it cannot be written.
    pub generated: bool,
    /// PostgreSQL `GENERATED ALWAYS AS IDENTITY`: inserts need `OVERRIDING
    /// SYSTEM VALUE`.
    pub identity_always: bool,
}

impl ColumnMeta {
    /// Whether an explicit cast to the declared type may change a value
    /// that an insert would refuse instead (`varchar(n)`, `char(n)` and
    /// `bit(n)` cut or pad silently).
    pub fn cast_loses_data(&self) -> bool {
        matches!(
            self.type_name.trim_start_matches('_'),
            "varchar" | "bpchar" | "bit" | "varbit"
        )
    }

    /// A column for unit tests.
    #[cfg(test)]
    pub fn test(
        name: &str,
        dialect: Dialect,
        declared: &str,
        base: &str,
        type_name: &str,
    ) -> ColumnMeta {
        ColumnMeta {
            name: name.into(),
            declared: declared.into(),
            base: base.into(),
            type_name: type_name.into(),
            ty: match dialect {
                Dialect::Postgres => ColType::classify_postgres(type_name),
                Dialect::Sqlite => ColType::classify_sqlite(declared),
            },
            not_null: false,
            generated: false,
            identity_always: false,
        }
    }
}

/// What the catalog says about a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMeta {
    /// The table.
    pub table: TableName,
    /// Its columns, in table order.
    pub columns: Vec<ColumnMeta>,
    /// The primary key's columns, in key order; empty without one.
    pub primary_key: Vec<String>,
    /// The column lists of its unique indexes and constraints (the primary
    /// key included), without partial and expression indexes.
    pub unique_keys: Vec<Vec<String>>,
}

impl TableMeta {
    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnMeta> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The column named `name`, or a message for setting `what` listing the
    /// columns there are.
    pub fn require(&self, name: &str, what: &str) -> Result<&ColumnMeta, String> {
        self.column(name).ok_or_else(|| {
            let names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
            format!(
                "{what}: table {} has no column {name:?}; its columns are {}",
                self.table,
                names.join(", ")
            )
        })
    }

    /// Whether a unique index or the primary key is on exactly `columns`
    /// (in any order), as `ON CONFLICT (columns)` needs.
    pub fn has_unique(&self, columns: &[String]) -> bool {
        self.unique_keys
            .iter()
            .any(|u| u.len() == columns.len() && columns.iter().all(|c| u.contains(c)))
    }
}

/// Reads what the catalog says about `table`; `None` if there is no such
/// table (or view).
pub fn introspect(db: &mut dyn Database, table: &TableName) -> Result<Option<TableMeta>, SqlError> {
    match db.dialect() {
        Dialect::Postgres => introspect_postgres(db, table),
        Dialect::Sqlite => introspect_sqlite(db, table),
    }
}

/// The PostgreSQL catalog query for columns; `$1` is the quoted table name.
pub const PG_COLUMNS: &str = "SELECT a.attname::text AS name, \
pg_catalog.format_type(a.atttypid, a.atttypmod) AS declared, \
pg_catalog.format_type(a.atttypid, NULL) AS base, \
t.typname::text AS typname, \
a.attnotnull AS not_null, \
(a.attgenerated <> '') AS generated, \
(a.attidentity = 'a') AS identity_always \
FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
ORDER BY a.attnum";

/// The PostgreSQL catalog query for the primary key and unique indexes.
pub const PG_KEYS: &str = "SELECT i.indexrelid::int8 AS idx, i.indisprimary AS is_primary, \
a.attname::text AS name \
FROM pg_catalog.pg_index i \
JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) \
WHERE i.indrelid = pg_catalog.to_regclass($1) AND i.indisunique \
AND i.indpred IS NULL AND i.indexprs IS NULL \
ORDER BY i.indexrelid, pg_catalog.array_position(i.indkey::int2[], a.attnum)";

fn introspect_postgres(
    db: &mut dyn Database,
    table: &TableName,
) -> Result<Option<TableMeta>, SqlError> {
    let name = Value::Text(table.quoted());
    let rows = db.query(PG_COLUMNS, std::slice::from_ref(&name))?;
    if rows.rows.is_empty() {
        return Ok(None);
    }
    let get = Getter::new(&rows);
    let mut columns = Vec::with_capacity(rows.rows.len());
    for row in &rows.rows {
        let type_name = get.text(row, "typname");
        let mut base = get.text(row, "base");
        if type_name == "bit" {
            // `bit` alone means `bit(1)`.
            base = "bit varying".into();
        }
        columns.push(ColumnMeta {
            name: get.text(row, "name"),
            declared: get.text(row, "declared"),
            base,
            ty: ColType::classify_postgres(&type_name),
            type_name,
            not_null: get.flag(row, "not_null"),
            generated: get.flag(row, "generated"),
            identity_always: get.flag(row, "identity_always"),
        });
    }
    let keys = db.query(PG_KEYS, std::slice::from_ref(&name))?;
    let get = Getter::new(&keys);
    let mut primary_key = Vec::new();
    let mut unique_keys: Vec<Vec<String>> = Vec::new();
    let mut current: Option<i64> = None;
    for row in &keys.rows {
        let idx = get.int(row, "idx");
        if current != Some(idx) {
            unique_keys.push(Vec::new());
            current = Some(idx);
        }
        let col = get.text(row, "name");
        if get.flag(row, "is_primary") {
            primary_key.push(col.clone());
        }
        if let Some(last) = unique_keys.last_mut() {
            last.push(col);
        }
    }
    Ok(Some(TableMeta {
        table: table.clone(),
        columns,
        primary_key,
        unique_keys,
    }))
}

/// The SQLite column query; `?1` is the table, `?2` the schema.
pub const SQLITE_COLUMNS: &str = "SELECT name, type, \"notnull\" AS not_null, pk, hidden FROM pragma_table_xinfo(?1, ?2) ORDER BY cid";

/// The SQLite unique-index query; `?1` is the table, `?2` the schema.
pub const SQLITE_KEYS: &str = "SELECT il.name AS idx, ii.name AS name \
FROM pragma_index_list(?1, ?2) AS il, pragma_index_info(il.name, ?2) AS ii \
WHERE il.\"unique\" = 1 AND il.partial = 0 ORDER BY il.seq, ii.seqno";

fn introspect_sqlite(
    db: &mut dyn Database,
    table: &TableName,
) -> Result<Option<TableMeta>, SqlError> {
    let schema = Value::Text(table.schema.clone().unwrap_or_else(|| "main".into()));
    let params = [Value::Text(table.name.clone()), schema];
    let rows = db.query(SQLITE_COLUMNS, &params)?;
    if rows.rows.is_empty() {
        return Ok(None);
    }
    let get = Getter::new(&rows);
    let mut columns = Vec::with_capacity(rows.rows.len());
    let mut pk: Vec<(i64, String)> = Vec::new();
    for row in &rows.rows {
        let hidden = get.int(row, "hidden");
        if hidden == 1 {
            continue; // a virtual table's hidden column
        }
        let name = get.text(row, "name");
        let declared = get.text(row, "type");
        let position = get.int(row, "pk");
        if position > 0 {
            pk.push((position, name.clone()));
        }
        columns.push(ColumnMeta {
            ty: ColType::classify_sqlite(&declared),
            base: declared.clone(),
            type_name: declared.clone(),
            declared,
            name,
            not_null: get.flag(row, "not_null"),
            generated: hidden == 2 || hidden == 3,
            identity_always: false,
        });
    }
    pk.sort();
    let primary_key: Vec<String> = pk.into_iter().map(|(_, n)| n).collect();
    let keys = db.query(SQLITE_KEYS, &params)?;
    let get = Getter::new(&keys);
    let mut unique_keys: Vec<Vec<String>> = Vec::new();
    let mut current: Option<String> = None;
    let mut expression_index = false;
    for row in &keys.rows {
        let idx = get.text(row, "idx");
        if current.as_deref() != Some(idx.as_str()) {
            if expression_index {
                unique_keys.pop();
            }
            expression_index = false;
            unique_keys.push(Vec::new());
            current = Some(idx);
        }
        match get.opt_text(row, "name") {
            Some(col) => {
                if let Some(last) = unique_keys.last_mut() {
                    last.push(col);
                }
            }
            None => expression_index = true,
        }
    }
    if expression_index {
        unique_keys.pop();
    }
    if !primary_key.is_empty() && !unique_keys.contains(&primary_key) {
        // An INTEGER PRIMARY KEY is the rowid: it has no index of its own.
        unique_keys.push(primary_key.clone());
    }
    Ok(Some(TableMeta {
        table: table.clone(),
        columns,
        primary_key,
        unique_keys,
    }))
}

/// Reads result columns by name.
pub(crate) struct Getter<'r> {
    rows: &'r Rows,
}

impl<'r> Getter<'r> {
    pub(crate) fn new(rows: &'r Rows) -> Getter<'r> {
        Getter { rows }
    }

    fn at<'v>(&self, row: &'v [Value], name: &str) -> Option<&'v Value> {
        self.rows.column(name).and_then(|i| row.get(i))
    }

    pub(crate) fn opt_text(&self, row: &[Value], name: &str) -> Option<String> {
        match self.at(row, name)? {
            Value::Text(s) | Value::Json(s) => Some(s.clone()),
            Value::Int(n) => Some(n.to_string()),
            _ => None,
        }
    }

    pub(crate) fn text(&self, row: &[Value], name: &str) -> String {
        self.opt_text(row, name).unwrap_or_default()
    }

    pub(crate) fn int(&self, row: &[Value], name: &str) -> i64 {
        match self.at(row, name) {
            Some(Value::Int(n)) => *n,
            Some(Value::Boolean(b)) => i64::from(*b),
            Some(Value::Text(s)) => s.parse().unwrap_or(0),
            _ => 0,
        }
    }

    pub(crate) fn flag(&self, row: &[Value], name: &str) -> bool {
        match self.at(row, name) {
            Some(Value::Boolean(b)) => *b,
            Some(Value::Int(n)) => *n != 0,
            Some(Value::Text(s)) => matches!(s.as_str(), "t" | "true" | "1"),
            _ => false,
        }
    }
}
