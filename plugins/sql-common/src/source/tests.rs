//! Unit tests of `source`.

use super::*;

fn col(name: &str, dialect: Dialect, declared: &str, typname: &str) -> ColumnMeta {
    ColumnMeta::test(name, dialect, declared, declared, typname)
}

#[test]
fn delta_sql() {
    let pg = Dialect::Postgres;
    let cursor = col("updated_at", pg, "timestamp with time zone", "timestamptz");
    let id = col("id", pg, "bigint", "int8");
    let region = col("region", pg, "uuid", "uuid");
    assert_eq!(
        delta_page_sql(
            pg,
            "SELECT \"id\", \"updated_at\" FROM \"t\"",
            &cursor,
            &[&id],
            false,
            false,
            100
        ),
        "SELECT \"id\", \"updated_at\" FROM \"t\" WHERE \"updated_at\" IS NOT NULL ORDER BY \"updated_at\", \"id\" LIMIT 100"
    );
    assert_eq!(
        delta_page_sql(
            pg,
            "SELECT * FROM \"t\"",
            &cursor,
            &[&id, &region],
            true,
            true,
            5
        ),
        "SELECT * FROM \"t\" WHERE \"updated_at\" >= $1::timestamp with time zone \
AND (\"updated_at\", \"id\", \"region\") > ($2::timestamp with time zone, $3::bigint, $4::text::uuid) \
ORDER BY \"updated_at\", \"id\", \"region\" LIMIT 5"
    );
    let lite = Dialect::Sqlite;
    let cursor = col("v", lite, "INTEGER", "INTEGER");
    let id = col("id", lite, "TEXT", "TEXT");
    assert_eq!(
        delta_page_sql(lite, "SELECT * FROM \"t\"", &cursor, &[&id], true, true, 5),
        "SELECT * FROM \"t\" WHERE \"v\" >= ?1 AND (\"v\", \"id\") > (?2, ?3) ORDER BY \"v\", \"id\" LIMIT 5"
    );
}

#[test]
fn full_sql() {
    let lite = Dialect::Sqlite;
    let a = col("a", lite, "INTEGER", "INTEGER");
    let b = col("b b", lite, "TEXT", "TEXT");
    assert_eq!(
        full_page_sql(lite, "\"t\"", "*", &[&a, &b], false, 10),
        "SELECT * FROM \"t\" ORDER BY \"a\", \"b b\" LIMIT 10"
    );
    assert_eq!(
        full_page_sql(lite, "\"t\"", "*", &[&a, &b], true, 10),
        "SELECT * FROM \"t\" WHERE (\"a\", \"b b\") > (?1, ?2) ORDER BY \"a\", \"b b\" LIMIT 10"
    );
}

#[test]
fn cursors_step_back_in_their_own_form() {
    let c = Cursor::read(
        CursorKind::Timestamp,
        &SqlValue::Text("2024-01-01 00:05:00".into()),
        "u",
    )
    .unwrap();
    assert_eq!(
        c.back(DEFAULT_LOOKBACK_MICROS).value,
        SqlValue::Text("2024-01-01 00:00:00".into())
    );
    let c = Cursor::read(CursorKind::Int, &SqlValue::Int(10), "v").unwrap();
    assert_eq!(c.back(3).value, SqlValue::Int(7));
    let c = Cursor::read(CursorKind::Timestamp, &SqlValue::Timestamp(10), "u").unwrap();
    assert_eq!(c.back(3).value, SqlValue::Timestamp(7));
    assert!(
        Cursor::read(CursorKind::Int, &SqlValue::Text("x".into()), "v")
            .unwrap_err()
            .contains("not an integer")
    );
    assert!(Cursor::read(CursorKind::Timestamp, &SqlValue::Text("x".into()), "u").is_err());
}

fn shape() -> Shape {
    let lite = Dialect::Sqlite;
    Shape {
        dialect: lite,
        table: TableName::parse("t").unwrap(),
        columns: vec![
            col("id", lite, "INTEGER", "INTEGER"),
            col("v", lite, "INTEGER", "INTEGER"),
        ],
        select_list: "\"id\", \"v\"".into(),
        key: vec![0],
        emit: vec![(0, "id".into()), (1, "v".into())],
        version: None,
        updated_at: None,
        fingerprint: 77,
    }
}

#[test]
fn delta_checkpoints_round_trip() {
    let shape = shape();
    let mut seen = BTreeSet::new();
    seen.insert((5, 99));
    seen.insert((6, 1));
    let state = State::Delta(DeltaState {
        cursor: 1,
        kind: CursorKind::Int,
        lookback: 2,
        high: Some(Cursor {
            order: 6,
            value: SqlValue::Int(6),
        }),
        pass: Some(DeltaPass {
            low: Some(Cursor {
                order: 4,
                value: SqlValue::Int(4),
            }),
            last: Some((
                Cursor {
                    order: 5,
                    value: SqlValue::Int(5),
                },
                vec![SqlValue::Text("k".into())],
            )),
        }),
        seen,
    });
    let fresh = State::Delta(DeltaState {
        cursor: 1,
        kind: CursorKind::Int,
        lookback: 2,
        high: None,
        pass: None,
        seen: BTreeSet::new(),
    });
    let bytes = encode_state(&shape, &state);
    assert_eq!(decode_state(&shape, fresh.clone(), &bytes), Ok(Some(state)));
    // Another table, key, cursor or mode: start over.
    let mut other = shape.clone();
    other.fingerprint = 78;
    assert_eq!(decode_state(&other, fresh.clone(), &bytes), Ok(None));
    assert_eq!(decode_state(&shape, fresh.clone(), b"not ours"), Ok(None));
    // Damaged: refused.
    assert!(decode_state(&shape, fresh.clone(), &bytes[..bytes.len() - 3]).is_err());
    let full = State::Full(FullState {
        phase: Phase::Idle,
        remaining: BTreeSet::new(),
        current: BTreeSet::new(),
    });
    assert_eq!(decode_state(&shape, full, &bytes), Ok(None));
}

#[test]
fn full_checkpoints_round_trip() {
    let shape = shape();
    let keys = |r: std::ops::Range<i64>| -> BTreeSet<Vec<u8>> {
        r.map(|i| checkpoint::encode_key(&[SqlValue::Int(i)]))
            .collect()
    };
    for phase in [
        Phase::Idle,
        Phase::Snapshot(None),
        Phase::Snapshot(Some(vec![SqlValue::Int(3)])),
        Phase::Deleting,
    ] {
        let state = State::Full(FullState {
            phase,
            remaining: keys(0..100),
            current: keys(50..60),
        });
        let fresh = State::Full(FullState {
            phase: Phase::Idle,
            remaining: BTreeSet::new(),
            current: BTreeSet::new(),
        });
        let bytes = encode_state(&shape, &state);
        assert_eq!(decode_state(&shape, fresh, &bytes), Ok(Some(state)));
    }
}
