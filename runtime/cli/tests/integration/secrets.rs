//! A password in a connection URL's query string
//! (`?password=`, any case, percent-encoded names) is refused at validate
//! like `user:pass@`, and no command prints one.

use serde_json::Value;

use crate::support::{Sandbox, ferry_with_env};

fn manifest(url: &str) -> String {
    format!(
        r#"[pipeline]
name = "t"

[connections.ops]
url = "{url}"
password_env = "FERRY_TEST_OPS_PASSWORD"

[plugins.src]
kind = "source"
wasm = "{{FILE}}"
config = {{ path = "/in/a.jsonl", key = "id" }}
grants = {{ files = [{{ host = "in", guest = "/in" }}] }}

[plugins.out]
kind = "sink"
wasm = "{sqlite}"
config = {{ connection = "ops", table = "items" }}
grants = {{ sql = ["ops"] }}

[[routes]]
from = "src"
to = ["out"]
"#,
        sqlite = crate::support::plugins::SQLITE,
    )
}

#[test]
fn a_password_in_a_connection_urls_query_is_refused_and_no_command_prints_it() {
    let s = Sandbox::new();
    s.write("in/a.jsonl", "{\"id\": 1}\n");
    let env = [("FERRY_TEST_OPS_PASSWORD", "from-the-env-s3cret")];
    for (url, param) in [
        (
            "postgres://ferry@127.0.0.1:1/ops?sslmode=disable&password=hunter2",
            "password",
        ),
        (
            "postgres://ferry@127.0.0.1:1/ops?PASSWORD=hunter2",
            "PASSWORD",
        ),
        (
            "postgres://ferry@127.0.0.1:1/ops?pass%77ord=hunter2",
            "pass%77ord",
        ),
    ] {
        s.manifest(&manifest(url));
        for args in [
            &["validate", "pipeline.toml"][..],
            &["audit", "pipeline.toml"],
            &["audit", "pipeline.toml", "--json"],
            &["run", "pipeline.toml", "--no-watch"],
        ] {
            let out = ferry_with_env(args, s.dir.path(), &env).expect("ferry runs");
            let all = format!("{}{}", out.stdout, out.stderr);
            assert_ne!(out.code, 0, "{args:?}: {all}");
            assert!(
                !all.contains("hunter2"),
                "{args:?} printed the password: {all}"
            );
            assert!(
                all.contains(&format!(
                    "connection `ops`: the URL holds a password (query parameter `{param}`)"
                )) && all.contains("pipeline.toml:5:7")
                    && all.contains("password_env = \"OPS_PASSWORD\""),
                "{args:?}: {all}"
            );
        }
    }

    // A valid URL is shown as written, and the password from the
    // environment never is.
    s.manifest(&manifest(
        "postgres://ferry@127.0.0.1:1/ops?sslmode=disable",
    ));
    let out = ferry_with_env(&["audit", "pipeline.toml", "--json"], s.dir.path(), &env)
        .expect("ferry runs");
    assert!(
        !out.stdout.contains("from-the-env-s3cret"),
        "{}",
        out.stdout
    );
    let report: Value = serde_json::from_str(&out.stdout).expect("JSON");
    let sink = report["plugins"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "out")
        .expect("the sink");
    assert_eq!(
        sink["grants"]["sql"][0]["target"],
        "postgres://ferry@127.0.0.1:1/ops?sslmode=disable"
    );
}
