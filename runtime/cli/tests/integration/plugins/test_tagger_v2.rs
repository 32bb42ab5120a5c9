//! The `test_tagger_v2` plugin in real pipelines.

use crate::support::Sandbox;

#[test]
fn tags_each_record_with_its_version() {
    let s = Sandbox::new();
    s.write("in/a.jsonl", "{\"id\":\"1\"}\n{\"id\":\"2\"}\n");
    s.manifest(&super::pipeline(
        r#"{ path = "/in/a.jsonl" }"#,
        &["tag"],
        "\n[plugins.tag]\nkind = \"mapper\"\nwasm = \"{TAGGER_V2}\"\n",
    ));
    s.run().expect("runs");
    let out = s.jsonl("out/out.jsonl");
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|r| r["version"] == "v2"), "{out:?}");
}
