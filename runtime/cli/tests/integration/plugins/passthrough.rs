//! The `passthrough` plugin in real pipelines.

use super::*;

#[test]
fn returns_every_record_unchanged() {
    let s = Sandbox::new();
    s.write(
        "in/a.jsonl",
        "{\"id\":\"1\",\"v\":[1,{\"a\":null}]}\n{\"id\":\"2\",\"v\":2}\n",
    );
    let extra = r#"
[plugins.same]
kind = "mapper"
wasm = "{PASSTHROUGH}"
"#;
    s.manifest(&pipeline(r#"{ path = "/in/a.jsonl" }"#, &["same"], extra));
    assert_eq!(s.run().expect("runs").accounting.written, 2);
    let out = s.jsonl("out/out.jsonl");
    assert_eq!(out[0], json!({ "id": "1", "v": [1, { "a": null }] }));
    assert_eq!(out[1], json!({ "id": "2", "v": 2 }));
}
