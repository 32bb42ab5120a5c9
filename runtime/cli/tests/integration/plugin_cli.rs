//! `ferry plugin new | build | test | inspect`, end to end: a scaffolded
//! plugin builds and passes its own fixture as generated.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ferry_tests::plugins;

use crate::support::{Sandbox, ferry, ferry_with_env};

/// One target folder for every scaffolded Rust plugin, so the SDK and its
/// dependencies are compiled once.
fn scaffold_target() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("scaffold-target")
}

/// The test command a new plugin's README gives, as arguments.
fn readme_test_command(dir: &Path) -> Vec<String> {
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("README.md");
    let line = readme
        .lines()
        .find(|l| l.starts_with("ferry plugin test "))
        .expect("the README gives the test command");
    line.split_whitespace().skip(1).map(String::from).collect()
}

fn scaffold_build_and_test(kind: &str, lang: &str) {
    let s = Sandbox::new();
    let name = format!("my-{lang}-{kind}");
    let created = ferry(
        &["plugin", "new", &name, "--kind", kind, "--lang", lang],
        &s.path(""),
    )
    .expect("runs");
    assert_eq!(created.code, 0, "{}", created.stderr);
    let dir = s.path(&name);
    assert!(
        dir.join("wit/ferry.wit").is_file(),
        "the contract is copied"
    );

    let target = scaffold_target();
    let target = target.to_str().expect("utf-8 path");
    let built =
        ferry_with_env(&["plugin", "build"], &dir, &[("CARGO_TARGET_DIR", target)]).expect("runs");
    assert_eq!(built.code, 0, "{}\n{}", built.stdout, built.stderr);
    assert!(built.stdout.contains("sha256"), "{}", built.stdout);
    assert!(dir.join(format!("{name}.wasm")).is_file());

    if lang != "rust" {
        // Nothing changed: the build is skipped and the digest stays.
        let before = std::fs::read(dir.join(format!("{name}.wasm"))).expect("wasm");
        let again = ferry(&["plugin", "build"], &dir).expect("runs");
        assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
        assert!(again.stderr.contains("is up to date"), "{}", again.stderr);
        let after = std::fs::read(dir.join(format!("{name}.wasm"))).expect("wasm");
        assert!(before == after, "an unchanged project is not rebuilt");
    }

    let args = readme_test_command(&dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let tested = {
        // A Python or JavaScript component takes about 15 s to compile on
        // first use: one at a time, so that parallel tests do not compile
        // several at once on a small machine.
        let _compiling = (lang != "rust").then(|| {
            static COMPILING: Mutex<()> = Mutex::new(());
            COMPILING.lock().unwrap_or_else(|e| e.into_inner())
        });
        ferry(&args, &dir).expect("runs")
    };
    assert_eq!(tested.code, 0, "{}\n{}", tested.stdout, tested.stderr);
    assert!(
        tested.stderr.contains("ok: the output matches"),
        "{}",
        tested.stderr
    );
    if kind == "sink" {
        // The records written are in the file, the delete is not.
        let written = crate::support::read_jsonl(&dir.join("test/out/records.jsonl"));
        assert_eq!(
            written,
            vec![
                serde_json::json!({"id": "1", "name": "Ada"}),
                serde_json::json!({"id": "3", "name": "Grace"}),
            ]
        );
    }

    let inspected = ferry(
        &["plugin", "inspect", &format!("{name}.wasm"), "--json"],
        &dir,
    )
    .expect("runs");
    assert_eq!(inspected.code, 0, "{}", inspected.stderr);
    let report: serde_json::Value = serde_json::from_str(&inspected.stdout).expect("JSON");
    assert_eq!(report["worlds"], serde_json::json!([kind]));
}

#[test]
fn a_new_rust_mapper_builds_and_passes_its_test() {
    scaffold_build_and_test("mapper", "rust");
}

#[test]
fn a_new_rust_validator_builds_and_passes_its_test() {
    scaffold_build_and_test("validator", "rust");
}

#[test]
fn a_new_rust_source_builds_and_passes_its_test() {
    scaffold_build_and_test("source", "rust");
}

#[test]
fn a_new_rust_sink_builds_and_passes_its_test() {
    scaffold_build_and_test("sink", "rust");
}

#[test]
fn a_new_rust_resolver_builds_and_passes_its_test() {
    scaffold_build_and_test("resolver", "rust");
}

#[test]
fn a_new_python_mapper_builds_and_passes_its_test() {
    scaffold_build_and_test("mapper", "python");
}

#[test]
fn a_new_python_validator_builds_and_passes_its_test() {
    scaffold_build_and_test("validator", "python");
}

#[test]
fn a_new_python_source_builds_and_passes_its_test() {
    scaffold_build_and_test("source", "python");
}

#[test]
fn a_new_python_sink_builds_and_passes_its_test() {
    scaffold_build_and_test("sink", "python");
}

#[test]
fn a_new_python_resolver_builds_and_passes_its_test() {
    scaffold_build_and_test("resolver", "python");
}

#[test]
fn a_new_javascript_mapper_builds_and_passes_its_test() {
    scaffold_build_and_test("mapper", "js");
}

#[test]
fn a_new_javascript_validator_builds_and_passes_its_test() {
    scaffold_build_and_test("validator", "js");
}

#[test]
fn a_new_javascript_source_builds_and_passes_its_test() {
    scaffold_build_and_test("source", "js");
}

#[test]
fn a_new_javascript_sink_builds_and_passes_its_test() {
    scaffold_build_and_test("sink", "js");
}

#[test]
fn a_new_javascript_resolver_builds_and_passes_its_test() {
    scaffold_build_and_test("resolver", "js");
}

#[test]
fn plugin_test_shows_a_diff_and_fails_on_a_mismatch() {
    let s = Sandbox::new();
    s.write(
        "in.jsonl",
        "{\"id\":\"1\",\"name\":\"Ada\"}\n{\"_key\":\"2\",\"_op\":\"delete\"}\n",
    );
    s.write(
        "good.jsonl",
        "{\"_key\":\"1\",\"_op\":\"upsert\",\"name\":\"Ada\",\"id\":\"1\"}\n{\"_key\":\"2\",\"_op\":\"delete\"}\n",
    );
    s.write(
        "bad.jsonl",
        "{\"_key\":\"1\",\"_op\":\"upsert\",\"id\":\"1\",\"name\":\"Grace\"}\n",
    );
    let wasm = plugins::PASSTHROUGH;
    let good = ferry(
        &[
            "plugin",
            "test",
            wasm,
            "--input",
            "in.jsonl",
            "--expect",
            "good.jsonl",
        ],
        &s.path(""),
    )
    .expect("runs");
    assert_eq!(good.code, 0, "{}", good.stderr);
    let bad = ferry(
        &[
            "plugin",
            "test",
            wasm,
            "--input",
            "in.jsonl",
            "--expect",
            "bad.jsonl",
        ],
        &s.path(""),
    )
    .expect("runs");
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(bad.stderr.contains("- {\"_key\":\"1\""), "{}", bad.stderr);
    assert!(bad.stderr.contains("+ {\"_key\":\"1\""), "{}", bad.stderr);
    assert!(
        bad.stderr.contains("(not expected)"),
        "the extra output line is named: {}",
        bad.stderr
    );
}

#[test]
fn plugin_test_names_the_bad_input_line() {
    let s = Sandbox::new();
    s.write("in.jsonl", "{\"id\":\"1\"}\n[1, 2]\n");
    let out = ferry(
        &[
            "plugin",
            "test",
            plugins::PASSTHROUGH,
            "--input",
            "in.jsonl",
        ],
        &s.path(""),
    )
    .expect("runs");
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("in.jsonl:2"), "{}", out.stderr);
}

#[test]
fn plugin_inspect_shows_world_digest_imports_and_toolchain() {
    let out = ferry(
        &["plugin", "inspect", plugins::SCHEMA_VALIDATOR, "--json"],
        Path::new("."),
    )
    .expect("runs");
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    let bytes = std::fs::read(plugins::SCHEMA_VALIDATOR).expect("wasm");
    assert_eq!(report["sha256"], ferry_host::sha256_hex(&bytes));
    assert_eq!(report["size_bytes"], bytes.len());
    assert_eq!(report["worlds"], serde_json::json!(["validator"]));
    assert_eq!(report["exactly_once"], false);
    let imports = report["imports"].as_array().expect("imports");
    assert!(
        imports
            .iter()
            .any(|i| i["name"] == "ferry:plugin/types@0.1.4" && i["capability"] == "baseline"),
        "{imports:?}"
    );
    let producers = report["producers"].as_array().expect("producers");
    assert!(
        producers
            .iter()
            .any(|p| p["name"].as_str().is_some_and(|n| n.starts_with("wit-"))),
        "{producers:?}"
    );

    // A sink says how it delivers: the file connector exports sink-commit.
    let out = ferry(&["plugin", "inspect", plugins::FILE], Path::new(".")).expect("runs");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("  delivery  exactly once (exports sink-commit")
            && out.stdout.contains("ferry:plugin/sink-commit@0.1.4"),
        "{}",
        out.stdout
    );
}
