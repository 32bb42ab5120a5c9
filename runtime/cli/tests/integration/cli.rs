//! The `ferry` command as an operator uses it.

use crate::support::{Sandbox, ferry};

fn small_pipeline(s: &Sandbox) {
    s.write(
        "in/a.jsonl",
        "{\"id\":\"1\",\"email\":\"a@b.c\"}\n{\"id\":\"2\"}\n{\"id\":\"3\",\"email\":\"c@d.e\"}\n",
    );
    s.manifest(
        r#"[pipeline]
name = "small"

[plugins.src]
kind = "source"
wasm = "{FILE}"
config = { path = "/in/a.jsonl" }
grants = { files = [{ host = "in", guest = "/in" }] }

[plugins.rules]
kind = "validator"
wasm = "{SCHEMA_VALIDATOR}"
config = { required = ["email"] }

[plugins.out]
kind = "sink"
wasm = "{FILE}"
config = { path = "/out/out.jsonl" }
grants = { files = [{ host = "out", guest = "/out", mode = "rw" }] }

[[routes]]
from = "src"
through = ["rules"]
to = ["out"]
"#,
    );
}

#[test]
fn run_prints_the_accounting_line_last_and_dlq_lists_the_rejects() {
    let s = Sandbox::new();
    small_pipeline(&s);
    let out = ferry(&["run", "pipeline.toml"], s.dir.path()).expect("ferry runs");
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let last = out.stdout.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        "accounting: read=3 written=2 dead_lettered=1 filtered=0"
    );

    let list =
        ferry(&["dlq", "list", "pipeline.toml", "--json"], s.dir.path()).expect("ferry runs");
    assert_eq!(list.code, 0, "{}", list.stderr);
    let letters: serde_json::Value = serde_json::from_str(&list.stdout).expect("a JSON array");
    let letters = letters.as_array().expect("array");
    assert_eq!(letters.len(), 1);
    let l = &letters[0];
    assert_eq!(
        (
            l["pipeline"].as_str(),
            l["stage"].as_str(),
            l["key"].as_str()
        ),
        (Some("small"), Some("rules"), Some("2"))
    );
    assert_eq!(l["reason"], "invalid");

    // Without a path, ./.ferry/state.db is read: the manifest's folder here.
    let default = ferry(&["dlq", "list", "--json"], s.dir.path()).expect("ferry runs");
    assert_eq!(default.stdout, list.stdout);

    let id = l["id"].as_i64().expect("an id").to_string();
    let show = ferry(&["dlq", "show", &id, "pipeline.toml"], s.dir.path()).expect("ferry runs");
    assert_eq!(show.code, 0, "{}", show.stderr);
    assert!(
        show.stdout.contains("email") && show.stdout.contains("required"),
        "{}",
        show.stdout
    );

    // A second run reads nothing new.
    let again = ferry(&["run", "pipeline.toml"], s.dir.path()).expect("ferry runs");
    assert!(
        again
            .stdout
            .ends_with("accounting: read=0 written=0 dead_lettered=0 filtered=0\n"),
        "{}",
        again.stdout
    );
    assert_eq!(s.jsonl("out/out.jsonl").len(), 2);
}

#[test]
fn run_refuses_an_invalid_manifest_without_reading_anything() {
    let s = Sandbox::new();
    small_pipeline(&s);
    let text = std::fs::read_to_string(s.path("pipeline.toml")).expect("read");
    s.write(
        "pipeline.toml",
        &text.replace("to = [\"out\"]", "to = [\"outt\"]"),
    );
    let out = ferry(&["run", "pipeline.toml"], s.dir.path()).expect("ferry runs");
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("did you mean `out`"), "{}", out.stderr);
    assert!(!s.path(".ferry/state.db").exists());
}

#[test]
fn run_takes_a_folder_of_manifests_and_sums_the_accounting() {
    let s = Sandbox::new();
    small_pipeline(&s);
    let text = std::fs::read_to_string(s.path("pipeline.toml")).expect("read");
    std::fs::create_dir_all(s.path("all")).expect("folder");
    let first = text
        .replace("name = \"small\"", "name = \"first\"")
        .replace("in\", guest", "../in\", guest")
        .replace("\"out\", guest", "\"../out\", guest");
    s.write(
        "all/a.toml",
        &first.replace("/out/out.jsonl", "/out/a.jsonl"),
    );
    s.write(
        "all/b.toml",
        &first
            .replace("name = \"first\"", "name = \"second\"")
            .replace("/out/out.jsonl", "/out/b.jsonl"),
    );
    let out = ferry(&["run", "all"], s.dir.path()).expect("ferry runs");
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("first: finished") && out.stdout.contains("second: finished"),
        "{}",
        out.stdout
    );
    assert_eq!(
        out.stdout.lines().last(),
        Some("accounting: read=6 written=4 dead_lettered=2 filtered=0")
    );
    assert_eq!(s.jsonl("out/a.jsonl").len(), 2);
    assert_eq!(s.jsonl("out/b.jsonl").len(), 2);
}
