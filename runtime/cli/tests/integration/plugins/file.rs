//! The `file` plugin in real pipelines.

use super::*;

#[test]
fn reads_jsonl_and_csv_with_quoting_and_writes_jsonl() {
    let s = Sandbox::new();
    s.write("in/a.jsonl", "{\"id\":\"1\",\"n\":1,\"x\":1.5,\"ok\":true,\"tags\":[\"a\"]}\n{\"id\":\"2\",\"n\":2,\"x\":2.5,\"ok\":false,\"tags\":[]}\n");
    s.write(
        "in/b.csv",
        "id,name,note\n3,\"Smith, Ann\",\"said \"\"hi\"\"\"\n4,Bob,\"two\nlines\"\n5,Eve,\n",
    );
    s.manifest(&pipeline(
        r#"{ paths = ["/in/a.jsonl", "/in/b.csv"] }"#,
        &[],
        "",
    ));
    let report = s.run().expect("runs");
    assert_eq!((report.accounting.read, report.accounting.written), (5, 5));
    let out = s.jsonl("out/out.jsonl");
    assert_eq!(
        out[0],
        json!({ "id": "1", "n": 1, "x": 1.5, "ok": true, "tags": ["a"] })
    );
    assert_eq!(
        out[2],
        json!({ "id": "3", "name": "Smith, Ann", "note": "said \"hi\"" })
    );
    assert_eq!(out[3]["note"], json!("two\nlines"));
    assert_eq!(out[4]["note"], serde_json::Value::Null);
}

#[test]
fn a_second_run_resumes_from_the_checkpoint_and_writes_nothing_twice() {
    let s = Sandbox::new();
    let lines: String = (0..300).map(|i| format!("{{\"id\":\"{i}\"}}\n")).collect();
    s.write("in/a.jsonl", &lines);
    s.manifest(&pipeline(r#"{ path = "/in/a.jsonl" }"#, &[], ""));
    assert_eq!(s.run().expect("first run").accounting.written, 300);
    let again = s.run().expect("second run");
    assert_eq!(again.accounting.read, 0);
    assert_eq!(s.jsonl("out/out.jsonl").len(), 300);
    // New lines are picked up from where the last run stopped.
    s.append("in/a.jsonl", "{\"id\":\"300\"}\n{\"id\":\"301\"}\n");
    assert_eq!(s.run().expect("third run").accounting.written, 2);
    let out = s.jsonl("out/out.jsonl");
    assert_eq!(out.len(), 302);
    assert_eq!(out[301]["id"], json!("301"));
}

#[test]
fn a_partial_last_line_waits_for_its_newline() {
    let s = Sandbox::new();
    s.write("in/a.jsonl", "{\"id\":\"1\"}\n{\"id\":");
    s.manifest(&pipeline(r#"{ path = "/in/a.jsonl" }"#, &[], ""));
    assert_eq!(s.run().expect("runs").accounting.read, 1);
    s.append("in/a.jsonl", "\"2\"}\n");
    assert_eq!(s.run().expect("runs").accounting.written, 1);
    assert_eq!(
        crate::support::keys_of(&s.jsonl("out/out.jsonl"), "id"),
        ["1", "2"]
    );
}

#[test]
fn malformed_lines_are_kept_and_dead_lettered_by_the_validator() {
    let s = Sandbox::new();
    s.write("in/a.jsonl", "{\"id\":\"1\"}\nnot json\n{\"id\":\"3\"}\n");
    let extra = r#"
[plugins.check]
kind = "validator"
wasm = "{SCHEMA_VALIDATOR}"
config = { required = ["id"] }
"#;
    s.manifest(&pipeline(r#"{ path = "/in/a.jsonl" }"#, &["check"], extra));
    let report = s.run().expect("runs");
    assert_eq!(
        (report.accounting.written, report.accounting.dead_lettered),
        (2, 1)
    );
    let dl = s.dead_letters();
    assert_eq!(dl.len(), 1);
    assert_eq!(dl[0].stage, "check");
    assert_eq!(dl[0].record["_raw"], json!("not json"));
}
