//! What an operator sees for a broken manifest, as snapshots.

use crate::support::{Sandbox, ferry};

const THREE_MISTAKES: &str = r#"[pipeline]
name = "contacts"
mdoe = "once"

[plugins.crm]
kind = "source"
wasm = "{FILE}"
grants = { memory_mb = "lots" }

[plugins.warehouse]
kind = "sink"
wasm = "{FILE}"

[[routes]]
from = "crm"
to = ["warehose"]
"#;

#[test]
fn validate_reports_three_mistakes_at_once_with_line_and_column() {
    let s = Sandbox::new();
    s.manifest(THREE_MISTAKES);
    let out = ferry(&["validate", "pipeline.toml"], s.dir.path()).expect("ferry runs");
    assert_eq!(
        out.code, 1,
        "stdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    let text = out.stderr.replace(crate::support::plugins::FILE, "{FILE}");
    assert!(text.contains("pipeline.toml:3:1"), "{text}");
    assert!(text.contains("pipeline.toml:8:"), "{text}");
    assert!(text.contains("pipeline.toml:16:"), "{text}");
    insta::assert_snapshot!("three_mistakes", text);
}

#[test]
fn a_toml_syntax_error_names_its_place() {
    let s = Sandbox::new();
    s.write("pipeline.toml", "[pipeline\nname = \"x\"\n");
    let out = ferry(&["validate", "pipeline.toml"], s.dir.path()).expect("ferry runs");
    assert_eq!(out.code, 1);
    insta::assert_snapshot!("toml_syntax", out.stderr);
}

#[test]
fn a_valid_manifest_validates() {
    let s = Sandbox::new();
    s.manifest(
        r#"[pipeline]
name = "fine"

[plugins.src]
kind = "source"
wasm = "{FILE}"
config = { path = "/in/a.jsonl" }
grants = { files = [{ host = "in", guest = "/in" }] }

[plugins.out]
kind = "sink"
wasm = "{FILE}"
config = { path = "/out/out.jsonl" }
grants = { files = [{ host = "out", guest = "/out", mode = "rw" }] }

[[routes]]
from = "src"
to = ["out"]
"#,
    );
    let out = ferry(&["validate", "pipeline.toml"], s.dir.path()).expect("ferry runs");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("pipeline `fine`, 2 stages"),
        "{}",
        out.stdout
    );
}
