//! A mapper's `json` column was trusted. `test-hostile-json`
//! emits malformed text (`{[`, 100,000 unclosed `[`) in its `json` column
//! for chosen keys; it used to be written verbatim, so every line of the
//! output file was broken. Now the host checks each `json` value with a
//! validating scan and dead-letters only the records at fault, with a
//! reason naming the column and the problem.

pub mod json {
    use crate::support::{Sandbox, file_pipeline, plugins};

    const BAD_KEYS: [&str; 3] = ["3", "7", "12"];

    /// Runs 20 records through the mapper with `bad` as the malformed text;
    /// returns the dead letters' (key, reason, detail).
    fn run_with(bad: &str) -> (Sandbox, Vec<(String, String, String)>) {
        let s = Sandbox::new();
        let lines: String = (1..=20)
            .map(|i| format!("{{\"id\":\"{i}\",\"n\":{i}}}\n"))
            .collect();
        s.write("in/a.jsonl", &lines);
        let config = serde_json::json!({ "bad_keys": BAD_KEYS, "bad": bad });
        let extra = format!(
            "\n[plugins.json]\nkind = \"mapper\"\nwasm = \"{}\"\nconfig = {}\n",
            plugins::TEST_HOSTILE_JSON,
            toml_inline(&config)
        );
        s.manifest(&file_pipeline(
            r#"{ path = "/in/a.jsonl", key = "id" }"#,
            &["json"],
            &extra,
        ));
        let report = s.run().expect("the pipeline runs to its end");
        assert_eq!(
            (
                report.accounting.read,
                report.accounting.written,
                report.accounting.dead_lettered
            ),
            (20, 17, 3)
        );
        let letters = s
            .dead_letters()
            .into_iter()
            .map(|l| (l.key, l.reason, l.detail))
            .collect();
        (s, letters)
    }

    /// A JSON object as a TOML inline table (strings and arrays of strings).
    fn toml_inline(v: &serde_json::Value) -> String {
        let fields: Vec<String> = v
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        format!("{{ {} }}", fields.join(", "))
    }

    #[test]
    fn malformed_json_from_a_mapper_dead_letters_only_the_records_at_fault() {
        for (bad, problem) in [
            (
                "{[",
                "is not valid JSON (key must be a string at line 1 column 2)",
            ),
            (
                "{\"a\":1} trailing",
                "is not valid JSON (trailing characters",
            ),
            (
                &"[".repeat(100_000),
                "is not valid JSON (nested deeper than 127 levels)",
            ),
        ] {
            let (s, letters) = run_with(bad);
            let mut keys: Vec<&str> = letters.iter().map(|(k, _, _)| k.as_str()).collect();
            keys.sort_by_key(|k| k.parse::<u32>().unwrap_or(0));
            assert_eq!(keys, BAD_KEYS, "only the records at fault");
            for (key, reason, detail) in &letters {
                assert_eq!(reason, "malformed-output");
                assert!(
                    detail.contains(&format!("(key `{key}`): column `doc` {problem}")),
                    "{detail}"
                );
            }
            // Every line of the output is JSON (read_jsonl fails on one that
            // is not), and the others went on with their documents.
            let out = s.jsonl("out/out.jsonl");
            assert_eq!(out.len(), 17);
            for r in &out {
                assert_eq!(r["doc"]["ok"], serde_json::json!([true]), "{r}");
                assert!(!BAD_KEYS.contains(&r["id"].as_str().unwrap_or("")));
            }
        }
    }
}
