//! The `field_mapper` plugin in real pipelines.

use super::*;

#[test]
fn renames_casts_trims_computes_and_looks_up() {
    let s = Sandbox::new();
    s.write("in/regions.csv", "country,region\nDE,EU\nUS,NA\n");
    s.write(
        "in/a.jsonl",
        concat!(
            "{\"id\":\"1\",\"mail\":\" A@X.COM \",\"first\":\" ann \",\"last\":\"lee\",\"age\":\"41\",\"signup\":\"2024-02-03\",\"country\":\"DE\",\"secret\":1}\n",
            "{\"id\":\"2\",\"mail\":\"b@y.org\",\"first\":\"bob\",\"last\":\"ray\",\"age\":\"abc\",\"signup\":\"2024-02-03\",\"country\":\"US\"}\n",
            "{\"id\":\"3\",\"mail\":\"c@z.net\",\"first\":\"cy\",\"last\":\"do\",\"age\":\"7\",\"signup\":\"2023-12-31\",\"country\":\"FR\"}\n",
        ),
    );
    let extra = r#"
[plugins.map]
kind = "mapper"
wasm = "{FIELD_MAPPER}"
grants = { files = [{ host = "in", guest = "/ref" }] }
[plugins.map.config]
rename = { mail = "email" }
drop = ["secret"]
default = { tier = "basic" }
trim = ["email", "first"]
lowercase = ["email"]
titlecase = ["first", "last"]
cast = { age = "int", signup = "timestamp" }
computed = { name = "first + ' ' + last", age_next = "age + 1" }
lookup = [{ table = "/ref/regions.csv", match = "country", column = "region", into = "region" }]
"#;
    s.manifest(&pipeline(r#"{ path = "/in/a.jsonl" }"#, &["map"], extra));
    let report = s.run().expect("runs");
    assert_eq!(
        (report.accounting.written, report.accounting.dead_lettered),
        (2, 1)
    );
    let out = s.jsonl("out/out.jsonl");
    let ann = &out[0];
    assert_eq!(ann["email"], json!("a@x.com"));
    assert_eq!(ann["name"], json!("Ann Lee"));
    assert_eq!(ann["age"], json!(41));
    assert_eq!(ann["age_next"], json!(42));
    assert_eq!(ann["signup"], json!("2024-02-03T00:00:00Z"));
    assert_eq!(ann["region"], json!("EU"));
    assert_eq!(ann["tier"], json!("basic"));
    assert!(ann.get("secret").is_none() && ann.get("mail").is_none());
    assert_eq!(out[1]["region"], serde_json::Value::Null);
    let dl = s.dead_letters();
    assert_eq!(dl.len(), 1);
    assert_eq!(
        (
            dl[0].key.as_str(),
            dl[0].stage.as_str(),
            dl[0].reason.as_str()
        ),
        ("2", "map", "rejected")
    );
    assert!(
        dl[0].detail.contains("age") && dl[0].detail.contains("abc"),
        "{}",
        dl[0].detail
    );
}

#[test]
fn a_bad_expression_stops_the_pipeline_before_it_reads() {
    let s = Sandbox::new();
    s.write("in/a.jsonl", "{\"id\":\"1\"}\n");
    let extra = r#"
[plugins.map]
kind = "mapper"
wasm = "{FIELD_MAPPER}"
config = { computed = { x = "a + (b" } }
"#;
    s.manifest(&pipeline(r#"{ path = "/in/a.jsonl" }"#, &["map"], extra));
    let err = s.run().expect_err("open fails").to_string();
    assert!(
        err.contains("map") && err.contains("invalid configuration"),
        "{err}"
    );
    assert!(s.jsonl("out/out.jsonl").is_empty());
}
