//! Setting a CDC source up on the server: checking its settings and the
//! role's rights, describing each table, and creating (or checking) the
//! publication and the replication slot.

use std::collections::HashMap;

use ferry_plugin::PluginError;
use ferry_plugin::sql::{self, Value as SqlValue};

use crate::checkpoint::{self, Checkpoint, lsn_text};
use crate::stream::TableSpec;
use crate::values;

use super::{CdcConfig, Table, boolean, failed, int, invalid, quote_ident, text};

/// The server-wide requirements: wal_level, encoding, version, role.
pub(super) fn check_server(conn: &str, snapshot: bool) -> Result<(), PluginError> {
    let rows = sql::query(
        conn,
        "SELECT current_setting('wal_level'), current_setting('server_encoding'), \
         current_setting('server_version_num')::int8, current_user::text, \
         (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user)",
        &[],
    )
    .map_err(|e| failed(e, "checking the server"))?;
    let row = rows.rows.first().cloned().unwrap_or_default();
    let wal_level = text(row.first()).unwrap_or("");
    let encoding = text(row.get(1)).unwrap_or("");
    let version = int(row.get(2)).unwrap_or(0);
    let role = text(row.get(3)).unwrap_or("");
    let replication = boolean(row.get(4)).unwrap_or(false);
    if wal_level != "logical" {
        return Err(invalid(format!(
            "wal_level is {wal_level:?}; logical decoding needs wal_level = logical: run \
             ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL"
        )));
    }
    if version < 130_000 {
        return Err(invalid(format!(
            "PostgreSQL {version} is too old for this source: it needs 13 or later"
        )));
    }
    if encoding != "UTF8" && encoding != "SQL_ASCII" {
        return Err(invalid(format!(
            "the database's encoding is {encoding}: logical decoding sends text in the \
             database's encoding, and this source reads UTF-8 only"
        )));
    }
    if !replication {
        return Err(invalid(format!(
            "role {role:?} may not use replication slots: run ALTER ROLE {} REPLICATION; \
             (as a superuser){}",
            quote_ident(role),
            if snapshot {
                ", and grant it SELECT on the tables for the copy"
            } else {
                ""
            }
        )));
    }
    Ok(())
}

/// Looks a configured table up in the catalog.
pub(super) fn describe_table(
    conn: &str,
    name: &str,
    config: &CdcConfig,
    base_types: &mut HashMap<u32, u32>,
) -> Result<(TableSpec, Table), PluginError> {
    let doing = || format!("looking up table {name:?}");
    let rows = sql::query(
        conn,
        "SELECT c.oid::int8, n.nspname::text, c.relname::text, c.relkind::text, \
         c.relreplident::text, has_table_privilege(c.oid, 'SELECT') \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.oid = to_regclass($1::text)",
        &[SqlValue::Text(if name.contains('.') {
            name.to_owned()
        } else {
            format!("public.{name}")
        })],
    )
    .map_err(|e| match e.code.as_deref() {
        Some("42602") | Some("3F000") => invalid(format!(
            "config.tables: {name:?} is not a table name: write \"schema.table\""
        )),
        _ => failed(e, &doing()),
    })?;
    let Some(row) = rows.rows.first() else {
        return Err(invalid(format!(
            "config.tables: table {name:?} does not exist (or the connection's role cannot see \
             it); write \"schema.table\", quoting mixed-case names"
        )));
    };
    let oid = int(row.first()).unwrap_or(0);
    let schema = text(row.get(1)).unwrap_or("").to_owned();
    let relname = text(row.get(2)).unwrap_or("").to_owned();
    let relkind = text(row.get(3)).unwrap_or("");
    let identity = text(row.get(4)).unwrap_or("d").to_owned();
    let can_select = boolean(row.get(5)).unwrap_or(false);
    let qualified = format!("{schema}.{relname}");
    let sql_name = format!("{}.{}", quote_ident(&schema), quote_ident(&relname));
    if relkind != "r" {
        return Err(invalid(format!(
            "config.tables: {qualified} is not an ordinary table (relkind {relkind:?}); \
             capture its partitions or base tables instead"
        )));
    }
    if identity == "n" {
        return Err(invalid(format!(
            "{qualified} has REPLICA IDENTITY NOTHING, so its updates and deletes cannot be \
             decoded: ALTER TABLE {sql_name} REPLICA IDENTITY DEFAULT (with a primary key) or \
             REPLICA IDENTITY FULL"
        )));
    }
    let key_rows = sql::query(
        conn,
        "SELECT a.attname::text, a.atttypid::regtype::text \
         FROM pg_index i \
         CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
         WHERE i.indrelid = $1::int8::oid \
           AND CASE WHEN $2::text = 'i' THEN i.indisreplident ELSE i.indisprimary END \
         ORDER BY k.ord",
        &[SqlValue::Int(oid), SqlValue::Text(identity.clone())],
    )
    .map_err(|e| failed(e, &doing()))?;
    let key: Vec<(String, String)> = key_rows
        .rows
        .iter()
        .filter_map(|r| Some((text(r.first())?.to_owned(), text(r.get(1))?.to_owned())))
        .collect();
    if key.is_empty() {
        return Err(invalid(if identity == "f" {
            format!(
                "{qualified} has REPLICA IDENTITY FULL but no primary key: records need a key; \
                 add one (ALTER TABLE {sql_name} ADD PRIMARY KEY (...))"
            )
        } else {
            format!(
                "{qualified} has no primary key, so its changes cannot be keyed: ALTER TABLE \
                 {sql_name} ADD PRIMARY KEY (...), or REPLICA IDENTITY USING INDEX <a unique \
                 index on NOT NULL columns>"
            )
        }));
    }
    let col_rows = sql::query(
        conn,
        "SELECT a.attname::text, a.atttypid::int8, \
         (CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END)::int8 \
         FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
         WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attnum",
        &[SqlValue::Int(oid)],
    )
    .map_err(|e| failed(e, &doing()))?;
    let mut columns = Vec::with_capacity(col_rows.rows.len());
    for r in &col_rows.rows {
        let (Some(col), Some(ty), Some(base)) = (text(r.first()), int(r.get(1)), int(r.get(2)))
        else {
            continue;
        };
        let (ty, base) = (
            u32::try_from(ty).unwrap_or(0),
            u32::try_from(base).unwrap_or(0),
        );
        if ty != base {
            base_types.insert(ty, base);
        }
        columns.push((col.to_owned(), values::kind_of(base)));
    }
    if let Some(field) = &config.table_field
        && columns.iter().any(|(c, _)| c == field)
    {
        return Err(invalid(format!(
            "config.table_field: {qualified} has a column named {field:?}; choose another name"
        )));
    }
    if config.snapshot && !can_select {
        return Err(invalid(format!(
            "the copy (snapshot = true) reads {qualified}, but the connection's role may not: \
             GRANT SELECT ON {sql_name} TO <role>"
        )));
    }
    // Qualified column references: in ORDER BY, a bare name would mean the
    // output column of that name, which is the `::text` copy.
    let key_list = key
        .iter()
        .map(|(k, _)| format!("t.{}", quote_ident(k)))
        .collect::<Vec<_>>()
        .join(", ");
    let select = key
        .iter()
        .map(|(k, _)| k)
        .chain(columns.iter().map(|(c, _)| c))
        .enumerate()
        .map(|(i, c)| format!("t.{}::text AS c{i}", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(", ");
    let bounds = key
        .iter()
        .enumerate()
        .map(|(i, (_, ty))| format!("${}::text::{ty}", i + 2))
        .collect::<Vec<_>>()
        .join(", ");
    let first_page = format!("SELECT {select} FROM {sql_name} AS t ORDER BY {key_list} LIMIT $1");
    let next_page = format!(
        "SELECT {select} FROM {sql_name} AS t WHERE ({key_list}) > ({bounds}) \
         ORDER BY {key_list} LIMIT $1"
    );
    let spec = TableSpec {
        schema,
        name: relname,
        qualified,
        key: key.into_iter().map(|(k, _)| k).collect(),
    };
    Ok((
        spec,
        Table {
            columns,
            first_page,
            next_page,
        },
    ))
}

/// Checks the publication (creating it, or adding tables, with `create`).
pub(super) fn ensure_publication(
    conn: &str,
    config: &CdcConfig,
    specs: &[TableSpec],
) -> Result<(), PluginError> {
    let pub_name = &config.publication;
    let doing = || format!("checking publication {pub_name:?}");
    let quoted = |s: &TableSpec| format!("{}.{}", quote_ident(&s.schema), quote_ident(&s.name));
    let all = specs.iter().map(quoted).collect::<Vec<_>>().join(", ");
    let rows = sql::query(
        conn,
        "SELECT puballtables, pubinsert, pubupdate, pubdelete FROM pg_publication \
         WHERE pubname = $1::text",
        &[SqlValue::Text(pub_name.clone())],
    )
    .map_err(|e| failed(e, &doing()))?;
    let Some(row) = rows.rows.first() else {
        let create = format!(
            "CREATE PUBLICATION {} FOR TABLE {all}",
            quote_ident(pub_name)
        );
        if !config.create {
            return Err(invalid(format!(
                "publication {pub_name:?} does not exist: run {create}; (or set create = true)"
            )));
        }
        sql::execute(conn, &create, &[])
            .map_err(|e| failed(e, &format!("creating the publication ({create})")))?;
        ferry_plugin::log::info!("created publication {pub_name:?} for {all}");
        return Ok(());
    };
    let flag = |i: usize| boolean(row.get(i)).unwrap_or(false);
    if !(flag(1) && flag(2) && flag(3)) {
        return Err(invalid(format!(
            "publication {pub_name:?} does not publish every insert, update and delete: run \
             ALTER PUBLICATION {} SET (publish = 'insert, update, delete, truncate')",
            quote_ident(pub_name)
        )));
    }
    if flag(0) {
        return Ok(()); // FOR ALL TABLES
    }
    let rows = sql::query(
        conn,
        "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1::text",
        &[SqlValue::Text(pub_name.clone())],
    )
    .map_err(|e| failed(e, &doing()))?;
    let published: Vec<(String, String)> = rows
        .rows
        .iter()
        .filter_map(|r| Some((text(r.first())?.to_owned(), text(r.get(1))?.to_owned())))
        .collect();
    let missing: Vec<String> = specs
        .iter()
        .filter(|s| {
            !published
                .iter()
                .any(|(n, t)| *n == s.schema && *t == s.name)
        })
        .map(quoted)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let alter = format!(
        "ALTER PUBLICATION {} ADD TABLE {}",
        quote_ident(pub_name),
        missing.join(", ")
    );
    if !config.create {
        return Err(invalid(format!(
            "publication {pub_name:?} lacks {}: run {alter}; (or set create = true)",
            missing.join(", ")
        )));
    }
    sql::execute(conn, &alter, &[])
        .map_err(|e| failed(e, &format!("adding tables to the publication ({alter})")))?;
    ferry_plugin::log::info!("added {} to publication {pub_name:?}", missing.join(", "));
    Ok(())
}

/// Checks the slot (creating it with `create` on a first run); returns its
/// confirmed position.
pub(super) fn ensure_slot(
    conn: &str,
    config: &CdcConfig,
    checkpoint: Option<&Checkpoint>,
) -> Result<u64, PluginError> {
    let slot = &config.slot;
    let doing = || format!("checking replication slot {slot:?}");
    let rows = sql::query(
        conn,
        "SELECT plugin::text, slot_type, (database = current_database()), \
         confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1::text",
        &[SqlValue::Text(slot.clone())],
    )
    .map_err(|e| failed(e, &doing()))?;
    let create = format!("SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')");
    let Some(row) = rows.rows.first() else {
        if let Some(cp) = checkpoint {
            return Err(invalid(format!(
                "replication slot {slot:?} is gone, but this pipeline read changes up to {} \
                 through it: the changes since are lost to it. Create the slot again ({create}) \
                 and remove this pipeline's state to start over (with snapshot = true to copy \
                 the tables again)",
                lsn_text(cp.lsn)
            )));
        }
        if !config.create {
            return Err(invalid(format!(
                "replication slot {slot:?} does not exist: run {create}; (or set create = true)"
            )));
        }
        let made = sql::query(
            conn,
            "SELECT lsn::text FROM pg_create_logical_replication_slot($1::text, 'pgoutput')",
            &[SqlValue::Text(slot.clone())],
        )
        .map_err(|e| failed(e, &format!("creating replication slot {slot:?}")))?;
        let lsn = made
            .rows
            .first()
            .and_then(|r| text(r.first()))
            .and_then(checkpoint::parse_lsn)
            .ok_or_else(|| PluginError::fatal("the new slot reported no LSN"))?;
        ferry_plugin::log::info!("created replication slot {slot:?} at {}", lsn_text(lsn));
        return Ok(lsn);
    };
    let plugin = text(row.first()).unwrap_or("");
    let kind = text(row.get(1)).unwrap_or("");
    if kind != "logical" || plugin != "pgoutput" {
        return Err(invalid(format!(
            "replication slot {slot:?} is a {kind} slot for plugin {plugin:?}; this source needs \
             a logical slot for pgoutput: choose another name, or drop it \
             (SELECT pg_drop_replication_slot('{slot}')) and let it be created"
        )));
    }
    if !boolean(row.get(2)).unwrap_or(false) {
        return Err(invalid(format!(
            "replication slot {slot:?} belongs to another database; a logical slot reads one \
             database: choose another slot name"
        )));
    }
    text(row.get(3))
        .and_then(checkpoint::parse_lsn)
        .ok_or_else(|| PluginError::fatal(format!("slot {slot:?} has no confirmed position")))
}
