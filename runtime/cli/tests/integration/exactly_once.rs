//! Nothing doubled, nothing dropped at a sink: writes a trap takes away
//! before their flush are sent again to the rebuilt instance, and commit
//! tokens (the optional `sink-commit` interface) make the file sink
//! exactly-once while sinks built without them keep loading. The crash test
//! (`crash.rs`) kills `ferry run` around the file sink; `dlq.rs` checks that
//! a replay commits the sink's length too.

use std::collections::BTreeMap;

use ferry_state::StateStore;

use crate::support::{Sandbox, file_pipeline};

/// `n` records `k0000`.. as JSON Lines.
fn records(n: usize) -> String {
    (0..n)
        .map(|i| format!("{{\"id\":\"k{i:04}\",\"n\":{i}}}\n"))
        .collect()
}

/// How many times each line occurs in a file.
fn counted(path: &std::path::Path) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        *counts.entry(line.to_string()).or_insert(0) += 1;
    }
    counts
}

/// The `test-buffering-sink` test program: it keeps writes in memory until
/// `flush`, so a trap drops the writes it had not flushed.
pub mod buffering {
    use super::*;

    /// src -> buffered (test-buffering-sink with `config`), 2,000 records in
    /// batches of 100, flushed only at the end (a long `max_wait`): when
    /// the sink traps, many written batches are still in its memory.
    fn buffered(s: &Sandbox, config: &str) {
        s.write("in/a.jsonl", &records(2_000));
        s.manifest(&format!(
            r#"[pipeline]
name = "buffered"
batch = {{ max_records = 100, max_wait_ms = 600000 }}

[plugins.src]
kind = "source"
wasm = "{{FILE}}"
config = {{ path = "/in/a.jsonl" }}
grants = {{ files = [{{ host = "in", guest = "/in" }}] }}

[plugins.buffered]
kind = "sink"
wasm = "{}"
config = {config}
grants = {{ files = [{{ host = "out", guest = "/out", mode = "rw" }}] }}

[[routes]]
from = "src"
to = ["buffered"]
"#,
            ferry_tests::plugins::TEST_BUFFERING_SINK
        ));
    }

    /// Asserts the sink's file holds every key but `skip` once; says which
    /// are missing or doubled.
    fn assert_each_once_but(s: &Sandbox, skip: &[usize]) {
        let got = counted(&s.path("out/keys.txt"));
        let missing: Vec<String> = (0..2_000)
            .filter(|i| !skip.contains(i))
            .map(|i| format!("k{i:04}"))
            .filter(|k| !got.contains_key(k))
            .collect();
        let doubled: Vec<&String> = got
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, _)| k)
            .collect();
        assert!(
            missing.is_empty() && doubled.is_empty(),
            "{} keys missing (first {:?}), {} doubled (first {:?})",
            missing.len(),
            missing.first(),
            doubled.len(),
            doubled.first()
        );
        assert_eq!(got.len(), 2_000 - skip.len(), "no other line");
    }

    #[test]
    fn writes_a_trap_took_before_their_flush_are_sent_again_to_the_new_instance() {
        let s = Sandbox::new();
        std::fs::create_dir_all(s.path("out")).expect("out/");
        // Record k1550 traps the sink: 15 batches and half of its own were
        // written to the instance the trap drops, unflushed.
        buffered(&s, r#"{ path = "/out/keys.txt", trap_keys = ["k1550"] }"#);
        let report = s.run().expect("runs");
        assert_eq!(
            (report.accounting.written, report.accounting.dead_lettered),
            (1_999, 1),
            "{report:?}"
        );
        assert!(report.rebuilds > 0, "the sink was rebuilt: {report:?}");
        // Every record the host counts as written is in the target, once;
        // only the poison record is not (it is a dead letter).
        assert_each_once_but(&s, &[1550]);
        let letters = s.dead_letters();
        assert_eq!(
            letters.iter().map(|l| l.key.as_str()).collect::<Vec<_>>(),
            ["k1550"]
        );
    }

    #[test]
    fn a_flush_that_traps_is_done_again_after_the_writes_are_sent_again() {
        let s = Sandbox::new();
        std::fs::create_dir_all(s.path("out")).expect("out/");
        buffered(
            &s,
            r#"{ path = "/out/keys.txt", trap_flush_marker = "/out/flush-trapped" }"#,
        );
        let report = s.run().expect("runs");
        assert!(
            s.path("out/flush-trapped").exists(),
            "the first flush trapped"
        );
        assert_eq!(report.accounting.written, 2_000, "{report:?}");
        assert_each_once_but(&s, &[]);
    }
}

/// The file sink and commit tokens.
pub mod tokens {
    use super::*;

    #[test]
    fn the_file_sink_commits_its_length_with_the_checkpoint() {
        let s = Sandbox::new();
        s.write("in/a.jsonl", &records(300));
        s.manifest(&file_pipeline(r#"{ path = "/in/a.jsonl" }"#, &[], ""));
        let component = ferry_host::Component::load(
            crate::support::runtime(),
            std::path::Path::new(ferry_tests::plugins::FILE),
        )
        .expect("loads");
        assert!(
            component.info().exactly_once,
            "the file plugin exports sink-commit: {:?}",
            component.info().exports
        );
        s.run().expect("runs");
        let out = std::fs::metadata(s.path("out/out.jsonl"))
            .expect("out")
            .len();
        let token = s
            .state()
            .sink_token("t", "out")
            .expect("reads")
            .expect("a committed token");
        // Layout version, path hash, then the length (little-endian).
        assert_eq!(token.len(), 13);
        assert_eq!(
            u64::from_le_bytes(token[5..13].try_into().expect("8 bytes")),
            out
        );

        // Lines after the committed length (written by a run that died
        // before its commit) are removed by the next run.
        s.append(
            "out/out.jsonl",
            "{\"id\":\"k0299\",\"n\":299}\n{\"id\":\"k0300\"",
        );
        s.append("in/a.jsonl", "{\"id\":\"k0300\",\"n\":300}\n");
        let report = s.run().expect("runs");
        assert_eq!(report.accounting.written, 1);
        let lines = counted(&s.path("out/out.jsonl"));
        assert_eq!(lines.len(), 301);
        assert!(lines.values().all(|&n| n == 1), "no line twice");
    }

    /// A sink built against contract 0.1.3 (before `sink-commit`): the file
    /// plugin as it was, kept in tests/fixtures/contract-0.1.3. It loads,
    /// writes at least once, and no token is stored for it.
    #[test]
    fn a_sink_built_before_commit_tokens_keeps_loading_and_working() {
        let old = crate::support::repo_root().join("tests/fixtures/contract-0.1.3/file.wasm");
        let component =
            ferry_host::Component::load(crate::support::runtime(), &old).expect("loads");
        assert!(
            component
                .info()
                .exports
                .iter()
                .any(|e| e == "ferry:plugin/sink@0.1.3"),
            "it is an old build: {:?}",
            component.info().exports
        );
        assert!(!component.info().exactly_once);

        let s = Sandbox::new();
        s.write("in/a.jsonl", &records(50));
        let text = file_pipeline(r#"{ path = "/in/a.jsonl" }"#, &[], "").replacen(
            "[plugins.out]\nkind = \"sink\"\nwasm = \"{FILE}\"",
            &format!(
                "[plugins.out]\nkind = \"sink\"\nwasm = \"{}\"",
                old.display()
            ),
            1,
        );
        assert!(text.contains("contract-0.1.3"), "{text}");
        s.manifest(&text);
        let report = s.run().expect("runs");
        assert_eq!(report.accounting.written, 50);
        assert_eq!(s.jsonl("out/out.jsonl").len(), 50);
        assert_eq!(s.state().sink_token("t", "out").expect("reads"), None);
    }

    #[test]
    fn a_token_the_sink_cannot_read_stops_the_run_before_anything_is_read() {
        let s = Sandbox::new();
        s.write("in/a.jsonl", &records(10));
        s.manifest(&file_pipeline(r#"{ path = "/in/a.jsonl" }"#, &[], ""));
        s.state()
            .baseline_sink_token("t", "out", b"not a token")
            .expect("stored");
        let err = s.run().expect_err("refused");
        let text = err.to_string();
        assert!(
            text.contains("sink `out` could not resume from its committed position")
                && text.contains("cannot be read"),
            "{text}"
        );
        assert_eq!(s.state().checkpoint("t", "src").expect("reads"), None);
    }
}
