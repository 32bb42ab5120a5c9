//! The SQL statements the table sink runs, built per dialect: upserts
//! (optionally versioned), deletes, the conflict checks of versioned
//! writes, key lookups for `fetch`, and the table a test creates. Every
//! value is a bound parameter; only quoted identifiers are spliced.

use crate::dialect::{ColType, Dialect};
use crate::ident;
use crate::schema::ColumnMeta;

use super::values_rows;

/// `"a"."c" IS NOT DISTINCT FROM "b"."c"` for one column: null-safe
/// equality (PostgreSQL compares JSON as `jsonb` and types it does not
/// bind as text).
pub(super) fn same(dialect: Dialect, column: &ColumnMeta, left: &str, right: &str) -> String {
    match dialect {
        Dialect::Sqlite => format!("{left} IS {right}"),
        Dialect::Postgres => match column.ty {
            ColType::Json => format!("{left}::jsonb IS NOT DISTINCT FROM {right}::jsonb"),
            ColType::Other => format!("{left}::text IS NOT DISTINCT FROM {right}::text"),
            _ => format!("{left} IS NOT DISTINCT FROM {right}"),
        },
    }
}

/// The multi-row upsert. Columns `cols`, the first `key_n` of them the
/// conflict target; with a version column, the update happens only when
/// the stored version is null or older, or equal with nothing else
/// changing.
pub fn upsert_sql(
    dialect: Dialect,
    table: &str,
    cols: &[&ColumnMeta],
    key_n: usize,
    version: Option<usize>,
    rows: usize,
) -> String {
    let names = ident::quoted_list(cols.iter().map(|c| c.name.as_str()));
    let keys = ident::quoted_list(cols.iter().take(key_n).map(|c| c.name.as_str()));
    let overriding = if dialect == Dialect::Postgres && cols.iter().any(|c| c.identity_always) {
        " OVERRIDING SYSTEM VALUE"
    } else {
        ""
    };
    let mut sql = format!(
        "INSERT INTO {table} AS \"t\" ({names}){overriding} VALUES {} ON CONFLICT ({keys}) ",
        values_rows(dialect, cols, rows, false, false)
    );
    let rest: Vec<&&ColumnMeta> = cols.iter().skip(key_n).collect();
    if rest.is_empty() {
        sql.push_str("DO NOTHING");
        return sql;
    }
    sql.push_str("DO UPDATE SET ");
    sql.push_str(
        &rest
            .iter()
            .map(|c| {
                let q = ident::quote(&c.name);
                format!("{q} = excluded.{q}")
            })
            .collect::<Vec<_>>()
            .join(", "),
    );
    if let Some(v) = version.and_then(|p| cols.get(p)) {
        let q = ident::quote(&v.name);
        let unchanged: Vec<String> = rest
            .iter()
            .filter(|c| c.name != v.name)
            .map(|c| {
                let q = ident::quote(&c.name);
                same(dialect, c, &format!("\"t\".{q}"), &format!("excluded.{q}"))
            })
            .collect();
        sql.push_str(&format!(
            " WHERE \"t\".{q} IS NULL OR \"t\".{q} < excluded.{q} OR (\"t\".{q} = excluded.{q}"
        ));
        for u in unchanged {
            sql.push_str(" AND ");
            sql.push_str(&u);
        }
        sql.push(')');
    }
    sql
}

/// After a version-checked upsert: the rows (by their `ord`) whose stored
/// values differ from what was written, i.e. that were not written.
/// Parameters per row: `ord`, then `cols`.
pub fn changed_sql(
    dialect: Dialect,
    table: &str,
    cols: &[&ColumnMeta],
    key_n: usize,
    rows: usize,
) -> String {
    let names: Vec<String> = (0..=cols.len()).map(|i| format!("\"c{i}\"")).collect();
    let on: Vec<String> = cols
        .iter()
        .take(key_n)
        .enumerate()
        .map(|(i, c)| format!("\"t\".{} = \"v\".\"c{}\"", ident::quote(&c.name), i + 1))
        .collect();
    let differ: Vec<String> = cols
        .iter()
        .enumerate()
        .skip(key_n)
        .map(|(i, c)| {
            same(
                dialect,
                c,
                &format!("\"t\".{}", ident::quote(&c.name)),
                &format!("\"v\".\"c{}\"", i + 1),
            )
        })
        .collect();
    format!(
        "WITH \"v\" ({}) AS (VALUES {}) SELECT \"v\".\"c0\" FROM \"v\" JOIN {table} AS \"t\" ON {} WHERE NOT ({})",
        names.join(", "),
        values_rows(dialect, cols, rows, true, true),
        on.join(" AND "),
        if differ.is_empty() {
            "TRUE".to_owned()
        } else {
            differ.join(" AND ")
        }
    )
}

/// The keys of a delete: `"k" IN (p, ...)`, or `("a", "b") IN (VALUES (p,
/// p), ...)` for a key of several columns.
pub fn delete_sql(dialect: Dialect, table: &str, key: &[&ColumnMeta], rows: usize) -> String {
    format!("DELETE FROM {table} WHERE {}", key_in(dialect, key, rows))
}

pub(super) fn key_in(dialect: Dialect, key: &[&ColumnMeta], rows: usize) -> String {
    if let [one] = key {
        let params: Vec<String> = (1..=rows)
            .map(|n| dialect.value_param(one, n, false))
            .collect();
        format!("{} IN ({})", ident::quote(&one.name), params.join(", "))
    } else {
        format!(
            "({}) IN (VALUES {})",
            ident::quoted_list(key.iter().map(|c| c.name.as_str())),
            values_rows(dialect, key, rows, false, false)
        )
    }
}

pub(super) fn versioned_cte(
    dialect: Dialect,
    key: &[&ColumnMeta],
    version: &ColumnMeta,
    rows: usize,
) -> (String, String) {
    let mut cols: Vec<&ColumnMeta> = key.to_vec();
    cols.push(version);
    let names: Vec<String> = (0..=cols.len()).map(|i| format!("\"c{i}\"")).collect();
    let on: Vec<String> = key
        .iter()
        .enumerate()
        .map(|(i, c)| format!("\"t\".{} = \"v\".\"c{}\"", ident::quote(&c.name), i + 1))
        .collect();
    (
        format!(
            "WITH \"v\" ({}) AS (VALUES {})",
            names.join(", "),
            values_rows(dialect, &cols, rows, true, true)
        ),
        on.join(" AND "),
    )
}

/// A version-checked delete: a row goes only if its stored version is null
/// or not newer than the record's. Parameters per row: `ord`, the key, the
/// version.
pub fn versioned_delete_sql(
    dialect: Dialect,
    table: &str,
    key: &[&ColumnMeta],
    version: &ColumnMeta,
    rows: usize,
) -> String {
    let (cte, on) = versioned_cte(dialect, key, version, rows);
    let v = ident::quote(&version.name);
    let last = key.len() + 1;
    format!(
        "{cte} DELETE FROM {table} AS \"t\" WHERE EXISTS (SELECT 1 FROM \"v\" WHERE {on} AND (\"t\".{v} IS NULL OR \"t\".{v} <= \"v\".\"c{last}\"))"
    )
}

/// After a version-checked delete: the rows (by `ord`) still there.
pub fn remaining_sql(
    dialect: Dialect,
    table: &str,
    key: &[&ColumnMeta],
    version: &ColumnMeta,
    rows: usize,
) -> String {
    let (cte, on) = versioned_cte(dialect, key, version, rows);
    format!("{cte} SELECT \"v\".\"c0\" FROM \"v\" JOIN {table} AS \"t\" ON {on}")
}

/// The rows of some keys.
pub fn fetch_sql(
    dialect: Dialect,
    table: &str,
    select_list: &str,
    key: &[&ColumnMeta],
    rows: usize,
) -> String {
    format!(
        "SELECT {select_list} FROM {table} WHERE {}",
        key_in(dialect, key, rows)
    )
}

/// `CREATE TABLE IF NOT EXISTS` with these columns and primary key.
pub fn create_table_sql(table: &str, cols: &[(String, &str)], key: &[String]) -> String {
    let defs: Vec<String> = cols
        .iter()
        .map(|(n, t)| format!("{} {t}", ident::quote(n)))
        .collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {table} ({}, PRIMARY KEY ({}))",
        defs.join(", "),
        ident::quoted_list(key.iter().map(String::as_str))
    )
}
