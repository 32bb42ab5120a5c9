//! Unit tests of `stream`.

use super::*;
use crate::pgoutput::build;
use ferry_plugin::Batch;

const ORDERS: u32 = 16_401;
const ITEMS: u32 = 16_402;
const OTHER: u32 = 16_403;

fn specs() -> Vec<TableSpec> {
    vec![
        TableSpec {
            schema: "public".into(),
            name: "orders".into(),
            qualified: "public.orders".into(),
            key: vec!["id".into()],
        },
        TableSpec {
            schema: "shop".into(),
            name: "items".into(),
            qualified: "shop.items".into(),
            key: vec!["order_id".into(), "line".into()],
        },
    ]
}

fn stream(pos: u64) -> Stream {
    Stream::new(
        specs(),
        HashMap::from([(70_000, 20)]), // a domain over int8
        Some("table".into()),
        Position {
            lsn: pos,
            partial: None,
        },
        None,
    )
}

fn relations() -> Vec<Vec<u8>> {
    vec![
        build::relation(
            ORDERS,
            "public",
            "orders",
            b'd',
            &[
                (true, "id", 23),
                (false, "note", 25),
                (false, "amount", 1700),
                (false, "at", 1184),
                (false, "doc", 3802),
                (false, "blob", 17),
                (false, "n", 70_000),
            ],
        ),
        build::relation(
            ITEMS,
            "shop",
            "items",
            b'd',
            &[
                (true, "order_id", 23),
                (true, "line", 25),
                (false, "qty", 21),
            ],
        ),
        build::relation(OTHER, "public", "other", b'd', &[(true, "id", 23)]),
    ]
}

fn t(s: &str) -> Datum<'_> {
    Datum::Text(s.as_bytes())
}

/// One transaction: its rows (Begin, the changes, Commit).
fn tx(final_lsn: u64, xid: u32, changes: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut rows = vec![build::begin(final_lsn, 1_000_000, xid)];
    rows.extend(changes);
    rows.push(build::commit(final_lsn, final_lsn + 8, 1_000_000));
    rows
}

fn order(id: &str, note: &str) -> Vec<u8> {
    build::insert(
        ORDERS,
        &[
            t(id),
            t(note),
            t("1.50"),
            t("2024-01-02 01:04:05.5+00"),
            t(r#"{"a": 1}"#),
            t("\\x0102"),
            t("7"),
        ],
    )
}

fn run(s: &mut Stream, max: usize) -> (Batch, Fill) {
    let mut out = Out::new(max);
    let fill = s.fill(&mut out).unwrap();
    (Batch::from_raw(out.b.finish()).unwrap(), fill)
}

fn keys(b: &Batch) -> Vec<(String, Op)> {
    b.rows().map(|r| (r.key().to_owned(), r.op())).collect()
}

#[test]
fn inserts_are_typed_upserts() {
    let mut s = stream(0);
    s.push(relations());
    s.push(tx(100, 5, vec![order("1", "héllo ✓")]));
    let (b, fill) = run(&mut s, 10);
    assert_eq!(fill, Fill::Drained);
    assert_eq!(keys(&b), [("1".to_owned(), Op::Upsert)]);
    let r = b.row(0).unwrap();
    assert_eq!(r.get("id"), Value::Int(1));
    assert_eq!(r.get("note"), Value::Text("héllo ✓"));
    assert_eq!(r.get("amount"), Value::Text("1.50"));
    assert_eq!(r.get("at"), Value::Timestamp(1_704_157_445_500_000));
    assert_eq!(r.get("doc"), Value::Json(r#"{"a": 1}"#));
    assert_eq!(r.get("blob"), Value::Bytes(&[1, 2]));
    assert_eq!(r.get("n"), Value::Int(7));
    assert_eq!(r.get("table"), Value::Text("public.orders"));
    assert_eq!(r.version(), Some(100));
    assert_eq!(r.updated_at(), Some(PG_EPOCH_MICROS + 1_000_000));
    assert_eq!(
        s.pos,
        Position {
            lsn: 108,
            partial: None
        }
    );
}

#[test]
fn updates_deletes_nulls_and_composite_keys() {
    let mut s = stream(0);
    s.push(relations());
    s.push(tx(
        100,
        5,
        vec![
            build::insert(ITEMS, &[t("7"), t("a"), Datum::Null]),
            build::update(ITEMS, None, &[t("7"), t("a"), t("3")]),
            build::delete(
                ORDERS,
                Old::Key,
                &[
                    t("9"),
                    Datum::Null,
                    Datum::Null,
                    Datum::Null,
                    Datum::Null,
                    Datum::Null,
                    Datum::Null,
                ],
            ),
            build::insert(OTHER, &[t("1")]),
        ],
    ));
    let (b, _) = run(&mut s, 10);
    assert_eq!(
        keys(&b),
        [
            (r#"["7","a"]"#.to_owned(), Op::Upsert),
            (r#"["7","a"]"#.to_owned(), Op::Upsert),
            ("9".to_owned(), Op::Delete),
        ]
    );
    assert_eq!(b.row(0).unwrap().get("qty"), Value::Null);
    assert_eq!(b.row(1).unwrap().get("qty"), Value::Int(3));
    let d = b.row(2).unwrap();
    assert_eq!(d.get("id"), Value::Int(9));
    assert_eq!(d.get("table"), Value::Text("public.orders"));
    assert_eq!(d.get("note"), Value::Null);
}

#[test]
fn a_key_change_deletes_the_old_key() {
    let mut s = stream(0);
    s.push(relations());
    s.push(tx(
        100,
        5,
        vec![build::update(
            ITEMS,
            Some((Old::Key, &[t("7"), t("a"), Datum::Null])),
            &[t("7"), t("b"), t("1")],
        )],
    ));
    let (b, _) = run(&mut s, 10);
    assert_eq!(
        keys(&b),
        [
            (r#"["7","a"]"#.to_owned(), Op::Delete),
            (r#"["7","b"]"#.to_owned(), Op::Upsert),
        ]
    );
}

#[test]
fn unchanged_toast_values_come_from_the_full_old_row() {
    let mut s = stream(0);
    s.push(relations());
    let full = [
        t("1"),
        t("big"),
        t("2"),
        Datum::Null,
        Datum::Null,
        Datum::Null,
        Datum::Null,
    ];
    let new = [
        t("1"),
        Datum::Unchanged,
        t("3"),
        Datum::Null,
        Datum::Null,
        Datum::Null,
        Datum::Null,
    ];
    s.push(tx(
        100,
        5,
        vec![build::update(ORDERS, Some((Old::Full, &full)), &new)],
    ));
    let (b, _) = run(&mut s, 10);
    assert_eq!(b.row(0).unwrap().get("note"), Value::Text("big"));
    assert_eq!(b.row(0).unwrap().get("amount"), Value::Text("3"));
}

#[test]
fn unchanged_toast_values_are_left_out_in_batches_of_their_own() {
    let mut s = stream(0);
    s.push(relations());
    let lacking = build::update(
        ORDERS,
        None,
        &[
            t("2"),
            Datum::Unchanged,
            t("3"),
            Datum::Null,
            Datum::Null,
            Datum::Null,
            Datum::Null,
        ],
    );
    s.push(tx(
        100,
        5,
        vec![
            order("1", "x"),
            lacking.clone(),
            lacking.clone(),
            order("3", "y"),
        ],
    ));
    let (b, fill) = run(&mut s, 10);
    assert_eq!(fill, Fill::Full);
    assert_eq!(keys(&b), [("1".to_owned(), Op::Upsert)]);
    assert_eq!(
        s.pos.partial,
        Some(Partial {
            commit: 100,
            done: 1
        })
    );
    let (b, fill) = run(&mut s, 10);
    assert_eq!(fill, Fill::Full);
    assert_eq!(keys(&b).len(), 2);
    assert!(
        b.column("note").is_none(),
        "the unsent column is absent, not null"
    );
    assert_eq!(b.row(0).unwrap().get("amount"), Value::Text("3"));
    assert_eq!(
        s.pos.partial,
        Some(Partial {
            commit: 100,
            done: 3
        })
    );
    let (b, fill) = run(&mut s, 10);
    assert_eq!(fill, Fill::Drained);
    assert_eq!(keys(&b), [("3".to_owned(), Op::Upsert)]);
    assert_eq!(
        s.pos,
        Position {
            lsn: 108,
            partial: None
        }
    );
}

#[test]
fn emitted_transactions_are_skipped_but_their_relations_kept() {
    let mut s = stream(108);
    let mut rows = relations();
    rows.extend(tx(100, 5, vec![order("1", "x")]));
    rows.extend(tx(200, 6, vec![order("2", "y")]));
    // The relation message came in the skipped transaction only.
    rows.retain(|r| r.first() != Some(&b'R') || r.get(1..5) == Some(&ORDERS.to_be_bytes()[..]));
    s.push(rows);
    let (b, _) = run(&mut s, 10);
    assert_eq!(keys(&b), [("2".to_owned(), Op::Upsert)]);
    assert_eq!(s.pos.lsn, 208);
}

#[test]
fn transactions_stay_whole_when_they_fit() {
    let mut s = stream(0);
    s.push(relations());
    s.push(tx(100, 5, vec![order("1", "a"), order("2", "b")]));
    s.push(tx(200, 6, vec![order("3", "c"), order("4", "d")]));
    let (b, fill) = run(&mut s, 3);
    assert_eq!(fill, Fill::Full);
    assert_eq!(
        keys(&b).len(),
        2,
        "the second transaction waits for the next batch"
    );
    assert_eq!(
        s.pos,
        Position {
            lsn: 108,
            partial: None
        }
    );
    let (b, fill) = run(&mut s, 3);
    assert_eq!(fill, Fill::Drained);
    assert_eq!(keys(&b).len(), 2);
    assert_eq!(s.pos.lsn, 208);
}

#[test]
fn large_transactions_span_batches_and_resume_after_a_restart() {
    let changes: Vec<Vec<u8>> = (1..=5).map(|i| order(&i.to_string(), "n")).collect();
    let mut s = stream(0);
    s.push(relations());
    s.push(tx(100, 5, changes.clone()));
    let (b, fill) = run(&mut s, 2);
    assert_eq!(fill, Fill::Full);
    assert_eq!(keys(&b).len(), 2);
    assert_eq!(
        s.pos,
        Position {
            lsn: 0,
            partial: Some(Partial {
                commit: 100,
                done: 2
            })
        }
    );
    let (b, _) = run(&mut s, 2);
    assert_eq!(b.row(0).unwrap().key(), "3");
    let saved = s.pos;
    assert_eq!(
        saved.partial,
        Some(Partial {
            commit: 100,
            done: 4
        })
    );

    // A restart from `saved`: the peek starts at the slot again.
    let mut s = stream(0);
    s.pos = saved;
    s.push(relations());
    s.push(tx(100, 5, changes));
    s.push(tx(200, 6, vec![order("6", "m")]));
    let (b, fill) = run(&mut s, 10);
    assert_eq!(fill, Fill::Drained);
    assert_eq!(
        keys(&b).into_iter().map(|k| k.0).collect::<Vec<_>>(),
        ["5", "6"]
    );
    assert_eq!(
        s.pos,
        Position {
            lsn: 208,
            partial: None
        }
    );
}

#[test]
fn snapshot_visible_transactions_are_skipped() {
    let mut s = stream(0);
    s.snapshot = Some(Snapshot::parse("10:20:12,15", 300).unwrap());
    s.push(relations());
    s.push(tx(100, 9, vec![order("1", "seen: below xmin")]));
    s.push(tx(110, 12, vec![order("2", "in progress: applied")]));
    s.push(tx(120, 13, vec![order("3", "seen")]));
    s.push(tx(130, 21, vec![order("4", "after xmax: applied")]));
    s.push(tx(
        300,
        11,
        vec![order("5", "committed after the snapshot")],
    ));
    s.push(tx(400, 14, vec![order("6", "applied")]));
    let (b, _) = run(&mut s, 10);
    assert_eq!(
        keys(&b).into_iter().map(|k| k.0).collect::<Vec<_>>(),
        ["2", "4", "5", "6"]
    );
    assert_eq!(s.snapshot, None, "dropped once the stream passed `until`");
    assert_eq!(s.pos.lsn, 408);
}

#[test]
fn truncates_and_other_tables_emit_nothing() {
    let mut s = stream(0);
    s.push(relations());
    s.push(tx(
        100,
        5,
        vec![
            build::truncate(0, &[ORDERS]),
            build::insert(OTHER, &[t("1")]),
        ],
    ));
    let (b, fill) = run(&mut s, 10);
    assert_eq!(fill, Fill::Drained);
    assert!(b.is_empty());
    assert_eq!(s.pos.lsn, 108);
}

#[test]
fn origins_are_recorded() {
    let mut s = stream(0);
    s.push(relations());
    let mut rows = tx(100, 5, vec![order("1", "x")]);
    rows.insert(1, build::origin(7, "crm"));
    s.push(rows);
    s.push(tx(200, 6, vec![order("2", "y")]));
    let (b, _) = run(&mut s, 10);
    assert_eq!(b.row(0).unwrap().origin(), Some("crm"));
    assert_eq!(b.row(1).unwrap().origin(), Some(""));
}

#[test]
fn values_that_do_not_fit_their_type_stay_text() {
    let mut s = stream(0);
    s.push(relations());
    s.push(tx(
        100,
        5,
        vec![build::insert(
            ORDERS,
            &[
                t("1"),
                t("x"),
                t("1"),
                t("yesterday"),
                Datum::Null,
                t("zz"),
                t("8"),
            ],
        )],
    ));
    let (b, _) = run(&mut s, 10);
    let r = b.row(0).unwrap();
    assert_eq!(r.get("at"), Value::Text("yesterday"));
    assert_eq!(r.get("blob"), Value::Text("zz"));
}

#[test]
fn broken_streams_are_fatal() {
    let mut s = stream(0);
    s.push(vec![order("1", "x")]);
    let mut out = Out::new(10);
    assert!(s.fill(&mut out).is_err());

    let mut s = stream(0);
    s.push(tx(100, 5, vec![order("1", "x")]));
    let mut out = Out::new(10);
    assert!(
        s.fill(&mut out)
            .unwrap_err()
            .message()
            .contains("before its Relation")
    );

    let mut s = stream(0);
    s.pos.partial = Some(Partial {
        commit: 50,
        done: 1,
    });
    s.push(relations());
    s.push(tx(100, 5, vec![order("1", "x")]));
    let mut out = Out::new(10);
    assert!(
        s.fill(&mut out)
            .unwrap_err()
            .message()
            .contains("no longer")
    );
}

#[test]
fn splits_length_prefixed_messages() {
    let mut blob = Vec::new();
    let y = build::type_(70_001, "public", "mood");
    for m in [&relations()[0][..], &y[..], &build::begin(1, 2, 3)[..]] {
        blob.extend_from_slice(&(m.len() as u32).to_be_bytes());
        blob.extend_from_slice(m);
    }
    let m = Messages::parse(blob.clone()).unwrap();
    assert_eq!((m.len(), m.fresh()), (3, 1));
    assert!(Messages::parse(Vec::new()).unwrap().is_empty());
    assert!(Messages::parse(blob[..blob.len() - 1].to_vec()).is_err());
    assert!(Messages::parse(vec![0, 0]).is_err());
    let mut s = stream(0);
    s.push_messages(m);
    s.push(vec![
        build::insert(ORDERS, &[t("1")]),
        build::commit(1, 9, 2),
    ]);
    let (b, _) = run(&mut s, 10);
    assert_eq!(keys(&b), [("1".to_owned(), Op::Upsert)]);
}

#[test]
fn key_texts() {
    assert_eq!(key_text(&["7"]), "7");
    assert_eq!(key_text(&["7", "a\"b"]), r#"["7","a\"b"]"#);
}
