//! Unit tests of `sink`.

use super::*;

fn pg(name: &str, declared: &str, typname: &str) -> ColumnMeta {
    ColumnMeta::test(name, Dialect::Postgres, declared, declared, typname)
}

fn lite(name: &str, declared: &str) -> ColumnMeta {
    ColumnMeta::test(name, Dialect::Sqlite, declared, declared, declared)
}

#[test]
fn upsert_statements() {
    let id = lite("id", "INTEGER");
    let name = lite("name", "TEXT");
    assert_eq!(
        upsert_sql(Dialect::Sqlite, "\"t\"", &[&id, &name], 1, None, 2),
        "INSERT INTO \"t\" AS \"t\" (\"id\", \"name\") VALUES (?1, ?2), (?3, ?4) ON CONFLICT (\"id\") DO UPDATE SET \"name\" = excluded.\"name\""
    );
    assert_eq!(
        upsert_sql(Dialect::Sqlite, "\"t\"", &[&id], 1, None, 1),
        "INSERT INTO \"t\" AS \"t\" (\"id\") VALUES (?1) ON CONFLICT (\"id\") DO NOTHING"
    );
    let id = pg("id", "bigint", "int8");
    let doc = pg("doc", "jsonb", "jsonb");
    let v = pg("v", "integer", "int4");
    assert_eq!(
        upsert_sql(
            Dialect::Postgres,
            "\"s\".\"t\"",
            &[&id, &doc, &v],
            1,
            Some(2),
            1
        ),
        "INSERT INTO \"s\".\"t\" AS \"t\" (\"id\", \"doc\", \"v\") VALUES ($1::bigint, $2::jsonb, $3::integer) \
ON CONFLICT (\"id\") DO UPDATE SET \"doc\" = excluded.\"doc\", \"v\" = excluded.\"v\" \
WHERE \"t\".\"v\" IS NULL OR \"t\".\"v\" < excluded.\"v\" OR (\"t\".\"v\" = excluded.\"v\" \
AND \"t\".\"doc\"::jsonb IS NOT DISTINCT FROM excluded.\"doc\"::jsonb)"
    );
    assert_eq!(
        changed_sql(Dialect::Postgres, "\"t\"", &[&id, &doc, &v], 1, 2),
        "WITH \"v\" (\"c0\", \"c1\", \"c2\", \"c3\") AS (VALUES ($1::bigint, $2::bigint, $3::jsonb, $4::integer), \
($5::bigint, $6::bigint, $7::jsonb, $8::integer)) SELECT \"v\".\"c0\" FROM \"v\" JOIN \"t\" AS \"t\" ON \"t\".\"id\" = \"v\".\"c1\" \
WHERE NOT (\"t\".\"doc\"::jsonb IS NOT DISTINCT FROM \"v\".\"c2\"::jsonb AND \"t\".\"v\" IS NOT DISTINCT FROM \"v\".\"c3\")"
    );
}

#[test]
fn delete_statements() {
    let a = lite("a", "INTEGER");
    let b = lite("b", "TEXT");
    assert_eq!(
        delete_sql(Dialect::Sqlite, "\"t\"", &[&a], 3),
        "DELETE FROM \"t\" WHERE \"a\" IN (?1, ?2, ?3)"
    );
    assert_eq!(
        delete_sql(Dialect::Sqlite, "\"t\"", &[&a, &b], 2),
        "DELETE FROM \"t\" WHERE (\"a\", \"b\") IN (VALUES (?1, ?2), (?3, ?4))"
    );
    let id = pg("id", "uuid", "uuid");
    let v = pg("v", "bigint", "int8");
    assert_eq!(
        delete_sql(Dialect::Postgres, "\"t\"", &[&id], 2),
        "DELETE FROM \"t\" WHERE \"id\" IN ($1::text::uuid, $2::text::uuid)"
    );
    assert_eq!(
        versioned_delete_sql(Dialect::Postgres, "\"t\"", &[&id], &v, 1),
        "WITH \"v\" (\"c0\", \"c1\", \"c2\") AS (VALUES ($1::bigint, $2::text::uuid, $3::bigint)) \
DELETE FROM \"t\" AS \"t\" WHERE EXISTS (SELECT 1 FROM \"v\" WHERE \"t\".\"id\" = \"v\".\"c1\" \
AND (\"t\".\"v\" IS NULL OR \"t\".\"v\" <= \"v\".\"c2\"))"
    );
    assert_eq!(
        remaining_sql(Dialect::Postgres, "\"t\"", &[&id], &v, 1),
        "WITH \"v\" (\"c0\", \"c1\", \"c2\") AS (VALUES ($1::bigint, $2::text::uuid, $3::bigint)) \
SELECT \"v\".\"c0\" FROM \"v\" JOIN \"t\" AS \"t\" ON \"t\".\"id\" = \"v\".\"c1\""
    );
}

#[test]
fn create_statement() {
    assert_eq!(
        create_table_sql(
            "\"t\"",
            &[("id".into(), "bigint"), ("Name".into(), "text")],
            &["id".into()]
        ),
        "CREATE TABLE IF NOT EXISTS \"t\" (\"id\" bigint, \"Name\" text, PRIMARY KEY (\"id\"))"
    );
}
