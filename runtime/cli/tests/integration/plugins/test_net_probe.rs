//! The `test_net_probe` plugin in real pipelines.

use std::collections::HashMap;
use std::io::Read;

use ferry_state::StateStore;
use serde_json::Value;

use crate::support::{Sandbox, ferry};

fn probe(s: &Sandbox, network: &str, attempts: &[(&str, &str, String)]) -> HashMap<String, String> {
    let lines: String = attempts
        .iter()
        .map(|(id, op, addr)| format!("{{\"id\":\"{id}\",\"op\":\"{op}\",\"addr\":\"{addr}\"}}\n"))
        .collect();
    let grants = format!("{{ network = [{network}], timeout_ms = 3000 }}");
    super::run_probe(s, &lines, "{NET_PROBE}", &grants)
}

#[test]
fn connections_follow_the_allow_list_and_every_denial_is_audited() {
    // A real server on loopback; nothing here sends a packet elsewhere:
    // denied addresses are refused before any connection is tried.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut got = String::new();
        conn.read_to_string(&mut got).expect("read");
        got
    });
    let s = Sandbox::new();
    let results = probe(
        &s,
        &format!("\"tcp://127.0.0.1:{port}\", \"tcp://*:80\""),
        &[
            ("granted", "connect", format!("127.0.0.1:{port}")),
            (
                "other-port",
                "connect",
                format!("127.0.0.1:{}", if port == 65535 { 1 } else { port + 1 }),
            ),
            ("metadata", "connect", "169.254.169.254:80".to_string()),
            ("private", "connect", "10.1.2.3:80".to_string()),
            ("loopback-star", "connect", "127.0.0.1:80".to_string()),
            ("listen", "listen", "0.0.0.0:8080".to_string()),
            ("udp", "udp", format!("127.0.0.1:{port}")),
        ],
    );
    assert_eq!(results["granted"], "ok");
    assert_eq!(
        server.join().expect("server"),
        "hello from test-net-probe\n"
    );
    for id in [
        "other-port",
        "metadata",
        "private",
        "loopback-star",
        "listen",
        "udp",
    ] {
        assert!(results[id].starts_with("denied"), "{id}: {}", results[id]);
    }
    let events = s.state().audit_events(Some("t")).expect("audit log");
    let targets: Vec<&str> = events.iter().map(|e| e.target.as_str()).collect();
    for want in [
        format!(
            "tcp connect 127.0.0.1:{}",
            if port == 65535 { 1 } else { port + 1 }
        ),
        "tcp connect 169.254.169.254:80".to_string(),
        "tcp connect 10.1.2.3:80".to_string(),
        "tcp connect 127.0.0.1:80".to_string(),
        "tcp bind 0.0.0.0:8080".to_string(),
    ] {
        assert!(
            targets.contains(&want.as_str()),
            "{want} not audited: {targets:?}"
        );
    }
    assert!(
        events.iter().all(|e| e.stage == "probe"
            && e.capability == "network"
            && e.plugin_digest.len() == 64)
    );
    let log = ferry(&["audit-log", "pipeline.toml", "--json"], s.dir.path()).expect("ferry runs");
    assert_eq!(log.code, 0, "{}", log.stderr);
    let listed: Vec<Value> = serde_json::from_str(&log.stdout).expect("a JSON array");
    assert_eq!(listed.len(), events.len());
    assert!(
        listed
            .iter()
            .any(|e| e["target"] == "tcp connect 169.254.169.254:80"),
        "{listed:?}"
    );
}

#[test]
fn a_name_that_resolves_to_loopback_does_not_open_it() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let s = Sandbox::new();
    let results = probe(
        &s,
        &format!("\"tcp://localhost:{port}\""),
        &[("by-name", "connect", format!("localhost:{port}"))],
    );
    assert!(
        results["by-name"].starts_with("denied"),
        "{}",
        results["by-name"]
    );
    let events = s.state().audit_events(None).expect("audit log");
    assert!(
        events
            .iter()
            .any(|e| e.detail.contains("no grant names it")),
        "{events:?}"
    );
}

#[test]
fn a_component_importing_an_ungranted_interface_is_refused_before_it_runs() {
    let s = Sandbox::new();
    s.write("in/a.jsonl", "{\"id\":\"1\"}\n");
    let extra = r#"
[plugins.probe]
kind = "mapper"
wasm = "{NET_PROBE}"
"#;
    s.manifest(&super::pipeline(
        r#"{ path = "/in/a.jsonl" }"#,
        &["probe"],
        extra,
    ));
    let run = ferry(&["run", "pipeline.toml"], s.dir.path()).expect("ferry runs");
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("plugin `probe` imports `wasi:sockets/")
            && run.stderr.contains("it has no `network` grant"),
        "{}",
        run.stderr
    );
    assert!(!s.path(".ferry/state.db").exists(), "nothing ran");

    let audit = ferry(&["audit", "pipeline.toml", "--json"], s.dir.path()).expect("ferry runs");
    assert_eq!(
        audit.code, 1,
        "audit exits 1 when anything would be refused"
    );
    let report: Value = serde_json::from_str(&audit.stdout).expect("JSON");
    let probe = report["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .find(|p| p["name"] == "probe")
        .expect("probe");
    assert!(
        probe["imports"]
            .as_array()
            .expect("imports")
            .iter()
            .any(|i| i["capability"] == "network")
    );
    assert!(
        probe["refused"][0]
            .as_str()
            .unwrap_or("")
            .contains("wasi:sockets/"),
        "{probe}"
    );
}
