//! The `schema_validator` plugin in real pipelines.

use super::*;

#[test]
fn each_rule_names_its_violation() {
    let s = Sandbox::new();
    s.write(
        "in/a.jsonl",
        concat!(
            "{\"id\":\"ok\",\"email\":\"a@b.c\",\"age\":30,\"name\":\"Ann\",\"region\":\"EU\"}\n",
            "{\"id\":\"no-email\",\"age\":30,\"name\":\"Ann\",\"region\":\"EU\"}\n",
            "{\"id\":\"bad-email\",\"email\":\"nope\",\"age\":30,\"name\":\"Ann\",\"region\":\"EU\"}\n",
            "{\"id\":\"old\",\"email\":\"a@b.c\",\"age\":200,\"name\":\"Ann\",\"region\":\"EU\"}\n",
            "{\"id\":\"text-age\",\"email\":\"a@b.c\",\"age\":\"x\",\"name\":\"Ann\",\"region\":\"EU\"}\n",
            "{\"id\":\"long\",\"email\":\"a@b.c\",\"age\":3,\"name\":\"AnnAnnAnnAnn\",\"region\":\"EU\"}\n",
            "{\"id\":\"mars\",\"email\":\"a@b.c\",\"age\":3,\"name\":\"Ann\",\"region\":\"MARS\"}\n",
            "{\"id\":\"ok\",\"email\":\"a@b.c\",\"age\":31,\"name\":\"Ann\",\"region\":\"EU\"}\n",
        ),
    );
    let extra = r#"
[plugins.check]
kind = "validator"
wasm = "{SCHEMA_VALIDATOR}"
[plugins.check.config]
required = ["id", "email"]
types = { age = "int" }
ranges = { age = { min = 0, max = 150 } }
lengths = { name = { max = 10 } }
regex = { email = '^[^@\s]+@[^@\s]+$' }
enums = { region = ["EU", "US"] }
unique_key = true
"#;
    s.manifest(&pipeline(r#"{ path = "/in/a.jsonl" }"#, &["check"], extra));
    let report = s.run().expect("runs");
    assert_eq!(
        (report.accounting.written, report.accounting.dead_lettered),
        (1, 7)
    );
    let dl = s.dead_letters();
    let detail = |key: &str| {
        dl.iter()
            .find(|d| d.key == key)
            .map(|d| d.detail.clone())
            .unwrap_or_default()
    };
    assert!(
        detail("no-email").contains("required"),
        "{}",
        detail("no-email")
    );
    assert!(
        detail("bad-email").contains("regex"),
        "{}",
        detail("bad-email")
    );
    assert!(detail("old").contains("range"), "{}", detail("old"));
    assert!(
        detail("text-age").contains("type"),
        "{}",
        detail("text-age")
    );
    assert!(detail("long").contains("length"), "{}", detail("long"));
    assert!(detail("mars").contains("enum"), "{}", detail("mars"));
    assert!(
        dl.iter()
            .any(|d| d.key == "ok" && d.detail.contains("unique")),
        "{dl:?}"
    );
    assert!(
        dl.iter()
            .all(|d| d.reason == "invalid" && d.stage == "check")
    );
}
