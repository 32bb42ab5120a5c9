//! The `test_http_probe` plugin in real pipelines.

use std::collections::HashMap;
use std::io::{Read, Write};

use ferry_state::StateStore;

use crate::support::Sandbox;

/// A one-request HTTP server on loopback; returns its port and the
/// request line it received.
fn serve_once() -> (u16, std::thread::JoinHandle<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut buf = [0u8; 4096];
        let n = conn.read(&mut buf).expect("read");
        conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            .expect("write");
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    });
    (port, server)
}

fn probe(s: &Sandbox, network: &str, urls: &[(&str, String)]) -> HashMap<String, String> {
    let lines: String = urls
        .iter()
        .map(|(id, url)| format!("{{\"id\":\"{id}\",\"url\":\"{url}\"}}\n"))
        .collect();
    let grants = format!("{{ network = [{network}], timeout_ms = 5000 }}");
    super::run_probe(s, &lines, "{HTTP_PROBE}", &grants)
}

#[test]
fn http_requests_follow_the_allow_list_and_denials_are_audited() {
    let (port, server) = serve_once();
    let s = Sandbox::new();
    let results = probe(
        &s,
        &format!("\"http://127.0.0.1:{port}\", \"http://*:80\""),
        &[
            ("granted", format!("http://127.0.0.1:{port}/hello")),
            (
                "metadata",
                "http://169.254.169.254/latest/meta-data".to_string(),
            ),
            ("private", "http://10.1.2.3/".to_string()),
            ("https-not-granted", format!("https://127.0.0.1:{port}/")),
        ],
    );
    assert_eq!(results["granted"], "status 200", "{results:?}");
    assert_eq!(server.join().expect("server"), "GET /hello HTTP/1.1");
    for id in ["metadata", "private", "https-not-granted"] {
        assert!(
            results[id].starts_with("denied") && results[id].contains("HttpRequestDenied"),
            "{id}: {}",
            results[id]
        );
    }
    let events = s.state().audit_events(None).expect("audit log");
    let targets: Vec<&str> = events.iter().map(|e| e.target.as_str()).collect();
    assert!(
        targets.contains(&"http GET http://169.254.169.254/latest/meta-data"),
        "{targets:?}"
    );
    assert!(
        targets.contains(&"http GET http://10.1.2.3/"),
        "{targets:?}"
    );
    assert_eq!(events.len(), 3, "{targets:?}");
}

#[test]
fn a_name_that_resolves_to_loopback_does_not_open_it() {
    let s = Sandbox::new();
    let results = probe(
        &s,
        "\"http://localhost:9\"",
        &[("by-name", "http://localhost:9/".to_string())],
    );
    assert!(
        results["by-name"].starts_with("denied"),
        "{}",
        results["by-name"]
    );
    let events = s.state().audit_events(None).expect("audit log");
    assert!(
        events.iter().any(|e| e.detail.contains("resolves to")),
        "{events:?}"
    );
}
