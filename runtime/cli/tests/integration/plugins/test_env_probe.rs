//! The `test_env_probe` plugin in real pipelines.

use serde_json::json;

use crate::support::{Sandbox, ferry_with_env};

const EXTRA: &str = r#"
[plugins.probe]
kind = "mapper"
wasm = "{ENV_PROBE}"
grants = { env = { MODE = "fast", TOKEN = { from_env = "FERRY_TEST_SECRET" } } }
"#;

#[test]
fn a_plugin_sees_exactly_its_granted_variables_and_nothing_of_the_host() {
    let s = Sandbox::new();
    s.write("in/a.jsonl", "{\"id\":\"1\"}\n");
    s.manifest(&super::pipeline(
        r#"{ path = "/in/a.jsonl" }"#,
        &["probe"],
        EXTRA,
    ));
    let run = ferry_with_env(
        &["run", "pipeline.toml"],
        s.dir.path(),
        &[
            ("FERRY_TEST_SECRET", "s3cret"),
            ("FERRY_TEST_OTHER", "must not leak"),
        ],
    )
    .expect("ferry runs");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = s.jsonl("out/out.jsonl");
    assert_eq!(
        out[0]["env"],
        json!({ "MODE": "fast", "TOKEN": "s3cret" }),
        "no PATH, HOME or other host variable"
    );
}

#[test]
fn a_missing_host_variable_is_refused_before_the_run() {
    let s = Sandbox::new();
    s.write("in/a.jsonl", "{\"id\":\"1\"}\n");
    s.manifest(&super::pipeline(
        r#"{ path = "/in/a.jsonl" }"#,
        &["probe"],
        EXTRA,
    ));
    let run =
        ferry_with_env(&["validate", "pipeline.toml"], s.dir.path(), &[]).expect("ferry runs");
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("`TOKEN` comes from the host's `FERRY_TEST_SECRET`, which is not set"),
        "{}",
        run.stderr
    );
    let audit = ferry_with_env(
        &["audit", "pipeline.toml"],
        s.dir.path(),
        &[("FERRY_TEST_SECRET", "s3cret")],
    )
    .expect("ferry runs");
    assert_eq!(audit.code, 0, "{}{}", audit.stdout, audit.stderr);
    assert!(
        audit
            .stdout
            .contains("TOKEN (from the host's FERRY_TEST_SECRET)"),
        "{}",
        audit.stdout
    );
    assert!(
        !audit.stdout.contains("s3cret"),
        "audit never prints a host variable's value"
    );
}
