//! The source and the sink against a real (in-process) SQLite database,
//! through the same [`Database`](crate::db::Database) trait the host
//! connection implements.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code fails loudly

use ferry_plugin::{Batch, BatchBuilder, Op, SourceStatus, TextList, Value, types};

use crate::config::{SinkConfig, SourceConfig};
use crate::sink::TableSink;
use crate::source::TableSource;
use crate::testdb::LiteDb;

fn source_config(json: &str) -> SourceConfig {
    ferry_plugin::config::parse(json).unwrap()
}

fn sink_config(json: &str) -> SinkConfig {
    ferry_plugin::config::parse(json).unwrap()
}

fn db(setup: &str) -> LiteDb {
    let db = LiteDb::new();
    db.batch(setup);
    db
}

/// Polls until caught up; returns `(key, op, fields)` of every record and
/// the last checkpoint.
fn drain(
    src: &mut TableSource<LiteDb>,
    max: u32,
) -> (Vec<(String, Op, serde_json::Value)>, Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut polls = 0;
    loop {
        polls += 1;
        assert!(polls < 1000, "the source never caught up");
        let p = src.poll(max).unwrap();
        let batch = Batch::from_raw(p.records).unwrap();
        assert!(batch.len() <= max as usize);
        for row in batch.rows() {
            out.push((row.key().to_string(), row.op(), row.to_json()));
        }
        match p.status {
            SourceStatus::More => {}
            SourceStatus::CaughtUp => return (out, p.checkpoint, polls),
            SourceStatus::Finished => panic!("a table source never finishes"),
        }
    }
}

fn keys(records: &[(String, Op, serde_json::Value)]) -> Vec<&str> {
    records.iter().map(|(k, _, _)| k.as_str()).collect()
}

const ORDERS: &str = "CREATE TABLE orders (id INTEGER PRIMARY KEY, name TEXT, v INTEGER NOT NULL);";

#[test]
fn delta_reads_in_cursor_order_in_pages_and_resumes() {
    let lite = db(ORDERS);
    for i in 1..=10 {
        lite.batch(&format!(
            "INSERT INTO orders VALUES ({i}, 'n{i}', {})",
            100 - i
        ));
    }
    let cfg = r#"{"connection":"db","mode":"delta","table":"orders","cursor":"v","lookback":0}"#;
    let mut src = TableSource::open(lite, source_config(cfg), None).unwrap();
    let p = src.poll(4).unwrap();
    assert_eq!(p.status, SourceStatus::More);
    let b = Batch::from_raw(p.records).unwrap();
    // Lowest cursor first: id 10 has v 90.
    assert_eq!(b.keys().iter().collect::<Vec<_>>(), ["10", "9", "8", "7"]);
    assert_eq!(b.row(0).unwrap().get("name"), Value::Text("n10"));
    // A restart from that checkpoint goes on after it.
    let checkpoint = p.checkpoint;
    let lite = std::mem::replace(src.db_mut(), LiteDb::new());
    let mut src = TableSource::open(lite, source_config(cfg), Some(&checkpoint)).unwrap();
    let (rest, checkpoint, _) = drain(&mut src, 4);
    assert_eq!(keys(&rest), ["6", "5", "4", "3", "2", "1"]);
    // Nothing new: a new pass reads nothing again.
    let (again, _, _) = drain(&mut src, 4);
    assert!(again.is_empty(), "{again:?}");
    // An update moves the row's cursor: it is read again.
    src.db_mut()
        .batch("UPDATE orders SET v = 200, name = 'changed' WHERE id = 3");
    let (changed, _, _) = drain(&mut src, 4);
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].2["name"], "changed");
    let _ = checkpoint;
}

#[test]
fn delta_lookback_finds_late_commits_and_skips_what_was_sent() {
    for (lookback, found) in [(10, true), (0, false)] {
        let lite = db(ORDERS);
        lite.batch("INSERT INTO orders VALUES (1, 'a', 100), (2, 'b', 105)");
        let cfg = format!(
            r#"{{"connection":"db","mode":"delta","table":"orders","cursor":"v","lookback":{lookback}}}"#
        );
        let mut src = TableSource::open(lite, source_config(&cfg), None).unwrap();
        let (first, _, _) = drain(&mut src, 10);
        assert_eq!(keys(&first), ["1", "2"]);
        // A transaction that took version 103 commits only now, after 105
        // was read.
        src.db_mut()
            .batch("INSERT INTO orders VALUES (3, 'late', 103)");
        let (second, checkpoint, _) = drain(&mut src, 10);
        if found {
            // Only the late row: rows 1 and 2 are in the window too, but
            // were sent with the same cursor values already.
            assert_eq!(keys(&second), ["3"], "lookback {lookback}");
        } else {
            assert!(
                second.is_empty(),
                "lookback 0 misses the late row: {second:?}"
            );
        }
        // The skip set survives a restart.
        let lite = std::mem::replace(src.db_mut(), LiteDb::new());
        let mut src = TableSource::open(lite, source_config(&cfg), Some(&checkpoint)).unwrap();
        let (third, _, _) = drain(&mut src, 10);
        assert!(third.is_empty(), "{third:?}");
    }
}

#[test]
fn delta_with_timestamp_text_cursor_and_metadata() {
    let lite = db(
        "CREATE TABLE t (id TEXT PRIMARY KEY, at DATETIME, ver INTEGER, flag BOOLEAN, doc JSON);\
         INSERT INTO t VALUES ('a', '2024-01-01 10:00:00', 1, 1, '{\"x\":1}'), ('b', '2024-01-01 10:10:00', 7, 0, 'not json');",
    );
    let cfg = r#"{"connection":"db","mode":"delta","table":"t","cursor":"at","lookback":"5m",
        "version_column":"ver","updated_at_column":"at"}"#;
    let mut src = TableSource::open(lite, source_config(cfg), None).unwrap();
    let p = src.poll(10).unwrap();
    let b = Batch::from_raw(p.records).unwrap();
    let a = b.row(0).unwrap();
    assert_eq!(a.key(), "a");
    assert_eq!(a.get("flag"), Value::Bool(true));
    assert_eq!(a.get("doc"), Value::Json("{\"x\":1}"));
    assert_eq!(a.version(), Some(1));
    let ten = crate::values::parse_timestamp("2024-01-01T10:00:00Z").unwrap();
    assert_eq!(a.get("at"), Value::Timestamp(ten));
    assert_eq!(a.updated_at(), Some(ten));
    assert_eq!(b.row(1).unwrap().get("doc"), Value::Text("not json"));
    // A row at 10:06 (inside the 5 minutes before 10:10) committed late is
    // found; one at 10:04 is not.
    src.db_mut().batch(
        "INSERT INTO t VALUES ('late-in', '2024-01-01 10:06:00', 2, 0, NULL), ('late-out', '2024-01-01 10:04:00', 3, 0, NULL)",
    );
    let (next, _, _) = drain(&mut src, 10);
    assert_eq!(keys(&next), ["late-in"]);
}

#[test]
fn delta_settings_are_checked() {
    let open = |cfg: &str| {
        TableSource::open(db(ORDERS), source_config(cfg), None)
            .err()
            .map(|e| e.message().to_string())
            .unwrap_or_default()
    };
    assert!(
        open(r#"{"connection":"db","mode":"delta","table":"orders"}"#).contains("needs a cursor")
    );
    assert!(
        open(r#"{"connection":"db","mode":"delta","table":"nope","cursor":"v"}"#)
            .contains("has no table or view nope")
    );
    assert!(
        open(r#"{"connection":"db","mode":"delta","table":"orders","cursor":"name"}"#)
            .contains("must be an integer or a timestamp")
    );
    assert!(
        open(r#"{"connection":"db","mode":"delta","table":"orders","cursor":"v","lookback":"5m"}"#)
            .contains("is an integer, so the lookback is a number")
    );
    assert!(
        open(r#"{"connection":"db","mode":"delta","table":"orders","cursor":"v","columns":["id","x\"y"]}"#)
            .contains("has no column \"x\\\"y\"")
    );
    assert!(
        open(r#"{"connection":"db","mode":"full","table":"orders","cursor":"v"}"#)
            .contains("only for mode \"delta\"")
    );
    let lite = db("CREATE TABLE nokey (a INTEGER, b TEXT)");
    let e = TableSource::open(
        lite,
        source_config(r#"{"connection":"db","mode":"full","table":"nokey"}"#),
        None,
    )
    .err()
    .unwrap();
    assert!(e.message().contains("no primary key"), "{e:?}");
}

#[test]
fn full_sync_snapshots_resumes_and_deletes_what_is_gone() {
    let lite = db("CREATE TABLE c (region TEXT, id INTEGER, name TEXT, PRIMARY KEY (region, id));");
    for i in 0..25 {
        lite.batch(&format!(
            "INSERT INTO c VALUES ('{}', {i}, 'n{i}')",
            if i % 2 == 0 { "eu" } else { "us" }
        ));
    }
    let cfg = r#"{"connection":"db","mode":"full","table":"c","columns":["name","region"]}"#;
    let mut src = TableSource::open(lite, source_config(cfg), None).unwrap();
    // Part of the snapshot, then a restart from its checkpoint.
    let p = src.poll(10).unwrap();
    assert_eq!(p.status, SourceStatus::More);
    let first = Batch::from_raw(p.records).unwrap();
    assert_eq!(first.row(0).unwrap().key(), "[\"eu\",0]");
    let lite = std::mem::replace(src.db_mut(), LiteDb::new());
    let mut src = TableSource::open(lite, source_config(cfg), Some(&p.checkpoint)).unwrap();
    let (rest, _, _) = drain(&mut src, 10);
    assert_eq!(first.len() + rest.len(), 25);
    assert!(rest.iter().all(|(_, op, _)| *op == Op::Upsert));
    // Changes between passes: two rows gone, one new, one changed.
    src.db_mut().batch(
        "DELETE FROM c WHERE id IN (3, 4); INSERT INTO c VALUES ('eu', 100, 'new'); UPDATE c SET name = 'x' WHERE id = 5",
    );
    let (second, checkpoint, _) = drain(&mut src, 7);
    let deletes: Vec<_> = second
        .iter()
        .filter(|(_, op, _)| *op == Op::Delete)
        .collect();
    assert_eq!(second.len() - deletes.len(), 24);
    let mut deleted: Vec<&str> = deletes.iter().map(|(k, _, _)| k.as_str()).collect();
    deleted.sort();
    assert_eq!(deleted, ["[\"eu\",4]", "[\"us\",3]"]);
    // A delete carries its key fields.
    assert!(
        deletes
            .iter()
            .any(|(_, _, f)| f["region"] == "eu" && f["name"].is_null())
    );
    // A third pass (after a restart) deletes nothing again.
    let lite = std::mem::replace(src.db_mut(), LiteDb::new());
    let mut src = TableSource::open(lite, source_config(cfg), Some(&checkpoint)).unwrap();
    let (third, _, _) = drain(&mut src, 100);
    assert_eq!(third.len(), 24);
    assert!(third.iter().all(|(_, op, _)| *op == Op::Upsert));
}

#[test]
fn full_sync_of_an_emptied_table_deletes_everything() {
    let lite = db(ORDERS);
    lite.batch("INSERT INTO orders VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)");
    let cfg = r#"{"connection":"db","mode":"full","table":"orders"}"#;
    let mut src = TableSource::open(lite, source_config(cfg), None).unwrap();
    assert_eq!(drain(&mut src, 2).0.len(), 3);
    src.db_mut().batch("DELETE FROM orders");
    let (second, _, polls) = drain(&mut src, 2);
    assert_eq!(keys(&second), ["1", "2", "3"]);
    assert!(second.iter().all(|(_, op, _)| *op == Op::Delete));
    assert_eq!(polls, 2);
}

fn batch(build: impl FnOnce(&mut BatchBuilder)) -> Batch {
    let mut b = BatchBuilder::new();
    build(&mut b);
    Batch::from_raw(b.finish()).unwrap()
}

fn people() -> TableSink<LiteDb> {
    let lite = db(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INTEGER CHECK (age >= 0), note TEXT, v INTEGER);",
    );
    TableSink::open(lite, sink_config(r#"{"connection":"db","table":"people"}"#)).unwrap()
}

#[test]
fn sink_upserts_deletes_and_is_idempotent() {
    let mut sink = people();
    sink.db_mut().batch(
        "INSERT INTO people VALUES (9, 'old', 1, 'keep me', NULL), (8, 'gone', 1, NULL, NULL)",
    );
    let b = batch(|b| {
        b.row("1", Op::Upsert)
            .set("id", 1)
            .set("name", "Ada")
            .set("age", 36);
        b.row("2", Op::Upsert).set("name", "Grace"); // id from the record key
        b.row("9", Op::Upsert)
            .set("id", 9)
            .set("name", "new")
            .set("age", 2);
        b.row("8", Op::Delete);
        b.row("404", Op::Delete); // nothing to delete: fine
    });
    for _ in 0..2 {
        let report = sink.write(&b).unwrap();
        assert_eq!(report, ferry_plugin::WriteReport::ok());
        assert_eq!(
            sink.db_mut().strings("SELECT id || ':' || name || ':' || coalesce(age, '-') || ':' || coalesce(note, '-') FROM people ORDER BY id"),
            // `note` is not in the batch: left as it was.
            ["1:Ada:36:-", "2:Grace:-:-", "9:new:2:keep me"]
        );
    }
}

#[test]
fn sink_keeps_the_last_record_per_key() {
    let mut sink = people();
    let b = batch(|b| {
        b.row("1", Op::Upsert).set("name", "first");
        b.row("1", Op::Delete);
        b.row("2", Op::Delete);
        b.row("2", Op::Upsert).set("name", "second");
    });
    assert_eq!(sink.write(&b).unwrap(), ferry_plugin::WriteReport::ok());
    assert_eq!(
        sink.db_mut().strings("SELECT id || name FROM people"),
        ["2second"]
    );
}

#[test]
fn sink_rejects_exactly_the_rows_the_database_refuses() {
    let mut sink = people();
    let b = batch(|b| {
        for i in 0..10 {
            let mut r = b.row(&i.to_string(), Op::Upsert);
            r.set("id", i).set("age", if i == 3 { -1 } else { 20 });
            if i != 6 {
                r.set("name", "x");
            }
        }
    });
    let report = sink.write(&b).unwrap();
    let mut rejected: Vec<(u32, String)> = report
        .rejected
        .iter()
        .map(|r| (r.row, r.reason.clone()))
        .collect();
    rejected.sort();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert_eq!(rejected[0].0, 3);
    assert!(
        rejected[0].1.contains("CHECK constraint failed"),
        "{}",
        rejected[0].1
    );
    assert_eq!(rejected[1].0, 6);
    assert!(
        rejected[1]
            .1
            .contains("NOT NULL constraint failed: people.name"),
        "{}",
        rejected[1].1
    );
    assert_eq!(sink.db_mut().strings("SELECT count(*) FROM people"), ["8"]);
}

#[test]
fn sink_version_check_reports_conflicts() {
    let lite = db(
        "CREATE TABLE doc (id TEXT PRIMARY KEY, body TEXT, v INTEGER); INSERT INTO doc VALUES ('a', 'stored', 5), ('b', 'stored', 5), ('c', 'stored', NULL), ('d', 'stored', 5);",
    );
    let mut sink = TableSink::open(
        lite,
        sink_config(r#"{"connection":"db","table":"doc","version_column":"v"}"#),
    )
    .unwrap();
    let b = batch(|b| {
        b.row("a", Op::Upsert).set("body", "newer").version(6); // written
        b.row("b", Op::Upsert).set("body", "older").version(4); // conflict
        b.row("c", Op::Upsert).set("body", "onto null").version(1); // written
        b.row("d", Op::Upsert)
            .set("body", "same version, other body")
            .version(5); // conflict
        b.row("e", Op::Upsert).set("body", "new row").version(1); // written
    });
    let report = sink.write(&b).unwrap();
    let conflicts: Vec<u32> = report.conflicts.iter().map(|c| c.row).collect();
    assert_eq!(conflicts, [1, 3]);
    assert!(report.conflicts[0].reason.contains("newer version"));
    assert!(report.rejected.is_empty());
    assert_eq!(
        sink.db_mut()
            .strings("SELECT id || ':' || body || ':' || v FROM doc ORDER BY id"),
        [
            "a:newer:6",
            "b:stored:5",
            "c:onto null:1",
            "d:stored:5",
            "e:new row:1"
        ]
    );
    // The same batch again: what was written is written again (no
    // conflict), the conflicts stay conflicts.
    let again = sink.write(&b).unwrap();
    assert_eq!(
        again.conflicts.iter().map(|c| c.row).collect::<Vec<_>>(),
        [1, 3]
    );
    // A record without a version cannot be checked: rejected.
    let none = batch(|b| {
        b.row("f", Op::Upsert).set("body", "no version");
    });
    let report = sink.write(&none).unwrap();
    assert_eq!(report.rejected.len(), 1);
    assert!(report.rejected[0].reason.contains("no version to check"));
    // Deletes: older version refused, newer accepted, no version deletes.
    let d = batch(|b| {
        b.row("a", Op::Delete).version(5);
        b.row("c", Op::Delete).version(2);
    });
    let report = sink.write(&d).unwrap();
    assert_eq!(
        report.conflicts.iter().map(|c| c.row).collect::<Vec<_>>(),
        [0]
    );
    // (A batch where only some records carry a version gives the others
    // version 0; a batch without versions deletes unconditionally.)
    let d = batch(|b| {
        b.row("e", Op::Delete);
    });
    assert_eq!(sink.write(&d).unwrap(), ferry_plugin::WriteReport::ok());
    assert_eq!(
        sink.db_mut().strings("SELECT id FROM doc ORDER BY id"),
        ["a", "b", "d"]
    );
}

#[test]
fn sink_composite_keys_renames_and_fetch() {
    let lite = db(
        "CREATE TABLE stock (site TEXT, sku INTEGER, qty INTEGER, seen TIMESTAMP, ok BOOLEAN, meta JSON, PRIMARY KEY (site, sku));",
    );
    let cfg = r#"{"connection":"db","table":"stock","columns":{"warehouse":"site","sku":"sku","count":"qty","seen":"seen","ok":"ok","meta":"meta"}}"#;
    let mut sink = TableSink::open(lite, sink_config(cfg)).unwrap();
    let b = batch(|b| {
        b.row("[\"north\",1]", Op::Upsert)
            .set("warehouse", "north")
            .set("sku", 1)
            .set("count", 5)
            .set_timestamp("seen", 1_700_000_000_000_001)
            .set("ok", true)
            .set_json("meta", "{\"bin\":[1,2]}")
            .set("ignored", "x");
        b.row("[\"south\",2]", Op::Upsert).set("count", 7); // key from the record key
        b.row("[\"south\"]", Op::Upsert).set("count", 1); // a key of one value: rejected
    });
    let report = sink.write(&b).unwrap();
    assert_eq!(report.rejected.len(), 1);
    assert!(
        report.rejected[0].reason.contains("has 1 values"),
        "{}",
        report.rejected[0].reason
    );
    assert_eq!(
        sink.db_mut().strings("SELECT site || sku || ':' || qty || ':' || coalesce(seen, '-') || ':' || coalesce(ok, '-') || ':' || coalesce(meta, '-') FROM stock ORDER BY site"),
        ["north1:5:2023-11-14T22:13:20.000001Z:1:{\"bin\":[1,2]}", "south2:7:-:-:-"]
    );
    let keys = texts(&[
        "[\"north\",1]",
        "[\"nowhere\",9]",
        "garbage",
        "[\"south\",2]",
    ]);
    let fetched = Batch::from_raw(sink.fetch(&keys).unwrap()).unwrap();
    assert_eq!(
        fetched.keys().iter().collect::<Vec<_>>(),
        ["[\"north\",1]", "[\"south\",2]"]
    );
    let north = fetched.row(0).unwrap();
    assert_eq!(north.get("count"), Value::Int(5));
    assert_eq!(north.get("warehouse"), Value::Text("north"));
    assert_eq!(north.get("seen"), Value::Timestamp(1_700_000_000_000_001));
    assert_eq!(north.get("ok"), Value::Bool(true));
    assert_eq!(north.get("meta"), Value::Json("{\"bin\":[1,2]}"));
}

fn texts(values: &[&str]) -> TextList {
    let mut offsets = vec![0u32];
    let mut data = Vec::new();
    for v in values {
        data.extend_from_slice(v.as_bytes());
        offsets.push(data.len() as u32);
    }
    TextList::from_raw(types::Texts { offsets, data }, values.len(), "keys").unwrap()
}

#[test]
fn sink_creates_the_table_from_the_first_batch() {
    let cfg =
        r#"{"connection":"db","table":"made","key":"id","create_table":true,"version_column":"v"}"#;
    let mut sink = TableSink::open(LiteDb::new(), sink_config(cfg)).unwrap();
    let b = batch(|b| {
        b.row("1", Op::Upsert)
            .set("id", 1)
            .set("name", Value::Null)
            .set("at", Value::Timestamp(0))
            .version(3);
        b.row("2", Op::Upsert)
            .set("id", 2)
            .set("name", "b")
            .set("score", 1.5)
            .version(1);
    });
    assert_eq!(sink.write(&b).unwrap(), ferry_plugin::WriteReport::ok());
    assert_eq!(
        sink.db_mut()
            .strings("SELECT name || ' ' || type FROM pragma_table_info('made') ORDER BY cid"),
        [
            "id INTEGER",
            "name TEXT",
            "at TIMESTAMP",
            "score REAL",
            "v INTEGER"
        ]
    );
    assert_eq!(
        sink.db_mut()
            .strings("SELECT id || ':' || v FROM made ORDER BY id"),
        ["1:3", "2:1"]
    );
    let e = TableSink::open(
        LiteDb::new(),
        sink_config(r#"{"connection":"db","table":"made"}"#),
    )
    .err()
    .unwrap();
    assert!(e.message().contains("create_table = true"), "{e:?}");
}

#[test]
fn sink_settings_are_checked() {
    let open = |setup: &str, cfg: &str| {
        TableSink::open(db(setup), sink_config(cfg))
            .err()
            .map(|e| e.message().to_string())
            .unwrap_or_default()
    };
    let t = "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT UNIQUE, g TEXT GENERATED ALWAYS AS (a || 'x'))";
    assert!(
        open(t, r#"{"connection":"db","table":"t","key":"a"}"#)
            .contains("no primary key or unique index on (a)")
    );
    assert_eq!(open(t, r#"{"connection":"db","table":"t","key":"b"}"#), "");
    assert!(
        open(t, r#"{"connection":"db","table":"t","columns":["zz"]}"#)
            .contains("has no column \"zz\"")
    );
    assert!(open(t, r#"{"connection":"db","table":"t","columns":["g"]}"#).contains("generated"));
    assert!(
        open(t, r#"{"connection":"db","table":"t","version_column":"a"}"#)
            .contains("a version is an integer or a timestamp")
    );
}

#[test]
fn sqlite_to_sqlite_round_trip_keeps_types() {
    let lite = db(
        "CREATE TABLE src (id INTEGER PRIMARY KEY, i INTEGER, f REAL, b BOOLEAN, t TEXT, bl BLOB, ts TIMESTAMP, j JSON, n NUMERIC);\
         INSERT INTO src VALUES (1, -5, 1.25, 1, 'héllo', x'00ff', '2024-02-29T12:00:00.000001Z', '{\"a\":[1,null]}', 12.5),\
                                (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);",
    );
    let mut src = TableSource::open(
        lite,
        source_config(r#"{"connection":"db","mode":"full","table":"src"}"#),
        None,
    )
    .unwrap();
    let p = src.poll(10).unwrap();
    let records = Batch::from_raw(p.records).unwrap();
    let target = db(
        "CREATE TABLE dst (id INTEGER PRIMARY KEY, i INTEGER, f REAL, b BOOLEAN, t TEXT, bl BLOB, ts TIMESTAMP, j JSON, n NUMERIC);",
    );
    let mut sink =
        TableSink::open(target, sink_config(r#"{"connection":"db","table":"dst"}"#)).unwrap();
    assert_eq!(
        sink.write(&records).unwrap(),
        ferry_plugin::WriteReport::ok()
    );
    let dump = |db: &LiteDb, t: &str| {
        db.strings(&format!(
            "SELECT quote(i) || quote(f) || quote(b) || quote(t) || quote(bl) || quote(ts) || quote(j) || quote(n) FROM {t} ORDER BY id"
        ))
    };
    let src_dump = dump(src.db_mut(), "src");
    assert_eq!(src_dump, dump(sink.db_mut(), "dst"));
    assert_eq!(src_dump[1], "NULLNULLNULLNULLNULLNULLNULLNULL");
}

#[test]
fn delta_pages_through_many_rows_sharing_one_cursor_value() {
    let lite = db(ORDERS);
    for i in 1..=20 {
        lite.batch(&format!("INSERT INTO orders VALUES ({i}, 'n{i}', 7)"));
    }
    // Only `name` is emitted; the key still comes from `id`.
    let cfg = r#"{"connection":"db","mode":"delta","table":"orders","cursor":"v","lookback":5,"columns":["name"]}"#;
    let mut src = TableSource::open(lite, source_config(cfg), None).unwrap();
    let (first, _, polls) = drain(&mut src, 3);
    let mut ids: Vec<i64> = keys(&first).iter().map(|k| k.parse().unwrap()).collect();
    assert_eq!(ids.len(), 20);
    ids.dedup();
    assert_eq!(ids, (1..=20).collect::<Vec<_>>(), "in key order, each once");
    assert_eq!(polls, 7);
    assert_eq!(first[0].2, serde_json::json!({ "name": "n1" }));
    // The next pass reads the 20 rows of the window again in full pages,
    // all already sent: it skips them and ends with nothing.
    let (second, _, polls) = drain(&mut src, 3);
    assert!(second.is_empty());
    assert!(polls <= 2, "{polls} polls");
    // One row changed: only it.
    src.db_mut()
        .batch("UPDATE orders SET v = 8, name = 'moved' WHERE id = 11");
    let (third, _, _) = drain(&mut src, 3);
    assert_eq!(keys(&third), ["11"]);
}

#[test]
fn a_checkpoint_for_another_table_or_mode_starts_over_and_a_damaged_one_is_refused() {
    let lite = db(ORDERS);
    lite.batch("INSERT INTO orders VALUES (1, 'a', 1)");
    let full = r#"{"connection":"db","mode":"full","table":"orders"}"#;
    let mut src = TableSource::open(lite, source_config(full), None).unwrap();
    let (_, checkpoint, _) = drain(&mut src, 10);
    let lite = std::mem::replace(src.db_mut(), LiteDb::new());
    let delta = r#"{"connection":"db","mode":"delta","table":"orders","cursor":"v"}"#;
    let mut src = TableSource::open(lite, source_config(delta), Some(&checkpoint)).unwrap();
    assert_eq!(
        keys(&drain(&mut src, 10).0),
        ["1"],
        "read from the beginning"
    );
    let lite = std::mem::replace(src.db_mut(), LiteDb::new());
    let mut damaged = checkpoint.clone();
    damaged.truncate(damaged.len() - 1);
    let e = TableSource::open(lite, source_config(full), Some(&damaged))
        .err()
        .unwrap();
    assert!(e.message().contains("checkpoint cannot be read"), "{e:?}");
}
