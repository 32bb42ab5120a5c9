//! The `test_fs_probe` plugin in real pipelines.

use std::collections::HashMap;

use ferry_state::StateStore;

use crate::support::Sandbox;

#[test]
fn file_access_stays_inside_the_granted_folders() {
    let s = Sandbox::new();
    s.write("ro/readable.txt", "hello");
    s.write("outside/secret.txt", "the secret");
    std::os::unix::fs::symlink(s.path("outside/secret.txt"), s.path("ro/link-out"))
        .expect("symlink");
    let attempts = [
        ("granted", "read", "/ro/readable.txt"),
        ("dotdot", "read", "/ro/../outside/secret.txt"),
        ("absolute", "read", "/outside/secret.txt"),
        ("etc", "read", "/etc/passwd"),
        ("symlink", "read", "/ro/link-out"),
        ("write-ro", "write", "/ro/new.txt"),
        ("write-rw", "write", "/scratch/new.txt"),
        // Past libc, straight to the host: relative to the /ro grant.
        ("raw-granted", "raw-read", "readable.txt"),
        ("raw-absolute", "raw-read", "/etc/passwd"),
        ("raw-dotdot", "raw-read", "../outside/secret.txt"),
    ];
    let lines: String = attempts
        .iter()
        .map(|(id, op, path)| {
            format!("{{\"id\":\"{id}\",\"op\":\"{op}\",\"path\":\"{path}\",\"dir\":\"/ro\"}}\n")
        })
        .collect();
    s.write("in/a.jsonl", &lines);
    let extra = r#"
[plugins.probe]
kind = "mapper"
wasm = "{FS_PROBE}"
grants = { files = [{ host = "ro", guest = "/ro" }, { host = "scratch", guest = "/scratch", mode = "rw" }] }
"#;
    s.manifest(&super::pipeline(
        r#"{ path = "/in/a.jsonl" }"#,
        &["probe"],
        extra,
    ));
    let report = s.run().expect("runs");
    assert_eq!(report.accounting.written, attempts.len() as u64);
    let results: HashMap<String, serde_json::Value> = s
        .jsonl("out/out.jsonl")
        .into_iter()
        .map(|r| (r["id"].as_str().unwrap_or("").to_string(), r))
        .collect();
    let result = |id: &str| results[id]["result"].as_str().unwrap_or("").to_string();
    assert_eq!(result("granted"), "ok");
    assert_eq!(results["granted"]["content"], "hello");
    assert_eq!(result("raw-granted"), "ok");
    assert_eq!(results["raw-granted"]["content"], "hello");
    for id in [
        "dotdot",
        "absolute",
        "etc",
        "symlink",
        "write-ro",
        "raw-absolute",
        "raw-dotdot",
    ] {
        assert!(result(id).starts_with("denied"), "{id}: {}", results[id]);
        assert!(
            results[id]["content"].is_null(),
            "{id} read nothing: {}",
            results[id]
        );
    }
    assert_eq!(result("write-rw"), "ok");
    assert!(
        s.path("scratch/new.txt").is_file(),
        "the rw grant was written"
    );
    assert!(!s.path("ro/new.txt").exists(), "the ro grant was not");
    // Every refusal the host saw is in the audit log with the plugin's
    // digest. (`absolute` and `etc` name no granted folder: the plugin's
    // libc refuses them itself, nothing reaches the host.)
    let events = s.state().audit_events(None).expect("audit log");
    let targets: Vec<&str> = events.iter().map(|e| e.target.as_str()).collect();
    for want in [
        "open \"../outside/secret.txt\" for read",
        "open \"link-out\" for read",
        "open \"new.txt\" for write",
        "open \"/etc/passwd\" for read",
    ] {
        assert!(targets.contains(&want), "{want} missing from {targets:?}");
    }
    assert!(
        events.iter().all(|e| e.capability == "filesystem"
            && e.stage == "probe"
            && e.plugin_digest.len() == 64),
        "{events:?}"
    );
    assert_eq!(
        targets
            .iter()
            .filter(|t| **t == "open \"../outside/secret.txt\" for read")
            .count(),
        2,
        "the libc and the raw `..` attempts: {targets:?}"
    );
}
