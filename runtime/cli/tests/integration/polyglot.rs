//! Plugins written in Python (componentize-py) and JavaScript
//! (componentize-js), built by `scripts/polyglot.sh` into `plugins/dist/`.
//!
//! Each mapper and validator runs in a real pipeline next to its Rust
//! original on the same input, and the two runs must agree record for
//! record: the lines written, the dead letters with their reasons, the
//! accounting. The Python JSON Lines source is checked against the Rust
//! `file` source the same way, and for resuming from its checkpoint.
//!
//! These components are tens of megabytes and take seconds to compile, so
//! each is compiled once per test binary, under a lock, into the shared
//! compile cache (`support::runtime()`, in `target/tmp/component-cache`):
//! tests running in parallel then load it from the cache instead of
//! compiling it again at the same time, and later runs of the tests start
//! from the cache too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use serde_json::{Value, json};

use crate::support::{Sandbox, runtime};

/// Grants for the Python and JavaScript plugins: their runtimes need more
/// memory than a Rust plugin, and a cold first call is slower.
const GRANTS: &str = "memory_mb = 128, timeout_ms = 10000";

/// The path of `plugins/dist/<name>.wasm`, compiled into the shared cache
/// once (the first test to ask compiles it; the others wait for it).
fn dist(name: &str) -> String {
    let root = crate::support::repo_root();
    let path = root.join("plugins/dist").join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run `bash scripts/polyglot.sh` first (it builds the Python and JavaScript plugins)",
        path.display()
    );
    static COMPILED: OnceLock<Mutex<HashMap<String, Arc<Mutex<bool>>>>> = OnceLock::new();
    let slot = {
        let mut all = COMPILED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Arc::clone(all.entry(name.to_string()).or_default())
    };
    let mut done = slot.lock().unwrap_or_else(|e| e.into_inner());
    if !*done {
        let started = Instant::now();
        let component = ferry_host::Component::load(runtime(), &path)
            .unwrap_or_else(|e| panic!("{name}.wasm does not load: {e}"));
        eprintln!(
            "polyglot: {name}.wasm ({} bytes) {} in {:.2?}",
            component.info().size,
            if component.info().from_cache {
                "loaded from the compile cache"
            } else {
                "compiled"
            },
            started.elapsed()
        );
        *done = true;
    }
    path.canonicalize().unwrap_or(path).display().to_string()
}

/// What a run produced, in a form two runs can be compared by.
#[derive(Debug, PartialEq)]
struct Outcome {
    /// (read, written, dead-lettered, filtered)
    accounting: (u64, u64, u64, u64),
    written: Vec<Value>,
    /// (stage, reason, detail, key, record), sorted: stages store them
    /// concurrently, so the order they are stored in is not the point.
    dead_letters: Vec<(String, String, String, String, String)>,
}

fn outcome(s: &Sandbox) -> Outcome {
    let report = s.run().expect("the pipeline runs");
    let a = &report.accounting;
    let mut dead_letters: Vec<_> = s
        .dead_letters()
        .into_iter()
        .map(|d| (d.stage, d.reason, d.detail, d.key, d.record.to_string()))
        .collect();
    dead_letters.sort();
    Outcome {
        accounting: (a.read, a.written, a.dead_lettered, a.filtered),
        written: s.jsonl("out/out.jsonl"),
        dead_letters,
    }
}

/// Fails with the first difference, not two pages of records.
fn assert_same(rust: &Outcome, other: &Outcome, who: &str) {
    assert_eq!(
        rust.accounting, other.accounting,
        "{who}: accounting (read, written, dead-lettered, filtered) differs from the Rust plugin's"
    );
    assert_eq!(
        rust.written.len(),
        other.written.len(),
        "{who}: number of lines written"
    );
    for (i, (r, o)) in rust.written.iter().zip(&other.written).enumerate() {
        assert_eq!(r, o, "{who}: written line {} differs (left: Rust)", i + 1);
    }
    assert_eq!(
        rust.dead_letters.len(),
        other.dead_letters.len(),
        "{who}: number of dead letters"
    );
    for (r, o) in rust.dead_letters.iter().zip(&other.dead_letters) {
        assert_eq!(r, o, "{who}: dead letter differs (left: Rust)");
    }
}

/// A pipeline: `source` (a plugin table body) → `step` (kind, wasm,
/// config) → a file sink at `/out/out.jsonl`.
fn manifest(source: &str, step: Option<(&str, &str, &str, &str)>) -> String {
    let (table, through) = match step {
        Some((kind, wasm, config, grants)) => (
            format!(
                "[plugins.step]\nkind = \"{kind}\"\nwasm = \"{wasm}\"\nconfig = {config}\ngrants = {grants}\n"
            ),
            "\"step\"",
        ),
        None => (String::new(), ""),
    };
    format!(
        r#"
[pipeline]
name = "polyglot"
batch = {{ max_records = 64 }}

[plugins.src]
{source}

[plugins.out]
kind = "sink"
wasm = "{{FILE}}"
config = {{ path = "/out/out.jsonl" }}
grants = {{ files = [{{ host = "out", guest = "/out", mode = "rw" }}] }}

{table}
[[routes]]
from = "src"
through = [{through}]
to = ["out"]
"#
    )
}

fn file_source(path: &str) -> String {
    format!(
        "kind = \"source\"\nwasm = \"{{FILE}}\"\nconfig = {{ path = \"{path}\" }}\ngrants = {{ files = [{{ host = \"in\", guest = \"/in\" }}] }}"
    )
}

/// Runs the same pipeline over the same files with the Rust plugin and with
/// `wasm`, and returns both outcomes.
fn run_both(
    files: &[(&str, &str)],
    kind: &str,
    rust_wasm: &str,
    wasm: &str,
    config: &str,
    grants: &str,
) -> (Outcome, Outcome) {
    let run = |plugin: &str, grants: &str| {
        let s = Sandbox::new();
        for (rel, text) in files {
            s.write(rel, text);
        }
        s.manifest(&manifest(
            &file_source("/in/a.jsonl"),
            Some((kind, plugin, config, grants)),
        ));
        outcome(&s)
    };
    let rust = run(
        rust_wasm,
        "{ files = [{ host = \"in\", guest = \"/ref\" }] }",
    );
    let other = run(wasm, grants);
    (rust, other)
}

// --- the field mapper -----------------------------------------------------------

const MAPPER_CONFIG: &str = r#"{ rename = { mail = "email", nick = "first" }, drop = ["secret"], default = { tier = "basic", weight = 1.5, tags = [1, "a"] }, trim = ["email", "first", "last"], lowercase = ["email"], uppercase = ["country"], titlecase = ["first", "last"], cast = { age = "int", score = "float", active = "bool", signup = "timestamp", joined = { to = "timestamp", format = "%d/%m/%Y" }, ratio = "text", code = "text" }, computed = { full_name = "first + ' ' + last", age_next = "age + 1", half = "age / 2", label = "'id-' + id + ':' + ratio", neg = "-(age * 3) - 1", per_item = "total / qty" }, lookup = [{ table = "/ref/regions.csv", match = "country", column = "region" }, { table = "/ref/codes.tsv", match = "code", key = "code", column = "name", into = "code_name", delimiter = "\t" }] }"#;

/// Contacts with every kind of value the mapper's steps meet: text to clean
/// up, casts that work and casts that fail, arithmetic that fails, nulls,
/// absent fields, JSON values, Unicode.
fn mapper_input() -> String {
    let firsts = [
        " ann ",
        "BOB",
        "émilie",
        "mary-jane",
        "o'neil",
        "ß straße",
        "zoë",
        "",
        "  ",
        "Łukasz",
    ];
    let ages = [
        json!("41"),
        json!(" 42 "),
        json!("42.0"),
        json!("abc"),
        json!(7),
        json!(1.5),
        json!("1e3"),
        json!(null),
        json!(true),
        json!("99999999999999999999"),
        json!(-12),
        json!(""),
    ];
    let scores = [
        json!("3.25"),
        json!(2),
        json!("x"),
        json!(null),
        json!(" 1e2 "),
        json!("inf"),
    ];
    let actives = [
        json!("yes"),
        json!("No"),
        json!("1"),
        json!(0),
        json!("maybe"),
        json!(false),
        json!(2),
    ];
    let signups = [
        json!("2024-02-03"),
        json!("2024-02-03T10:00:00+02:00"),
        json!("2024-02-29 23:59:58.25Z"),
        json!("2023-02-29"),
        json!("yesterday"),
        json!(null),
    ];
    let joined = [
        json!("31/12/2023"),
        json!("1/2/2024"),
        json!("31/02/2020"),
        json!("2024-01-01"),
        json!(null),
    ];
    let ratios = [
        json!(0.1),
        json!(100.0),
        json!(1e21),
        json!(7),
        json!(true),
        json!([1, 2]),
        json!({"a": 1}),
        json!(-0.000001),
    ];
    let countries = [
        json!("de"),
        json!("US"),
        json!("fr"),
        json!(null),
        json!("Jp"),
    ];
    let codes = [json!(7), json!("12"), json!(3.5), json!(null), json!("x")];
    let mut text = String::new();
    for i in 0..240usize {
        // Every third record takes the first (good) value of each list, so
        // both outcomes, written and rejected, are common.
        let k = if i % 3 == 0 { 0 } else { i };
        let mut r = serde_json::Map::new();
        r.insert("id".into(), json!(format!("c{i}")));
        if i % 13 != 5 {
            r.insert("mail".into(), json!(format!(" User{i}@Example.COM ")));
        }
        let first = firsts[i % firsts.len()];
        if i % 17 == 3 {
            r.insert("nick".into(), json!(first));
        } else {
            r.insert("first".into(), json!(first));
        }
        r.insert(
            "last".into(),
            json!(["lee", "RAY", "van der berg", "d'arc"][i % 4]),
        );
        r.insert("age".into(), ages[k % ages.len()].clone());
        r.insert("score".into(), scores[k % scores.len()].clone());
        r.insert("active".into(), actives[k % actives.len()].clone());
        r.insert("signup".into(), signups[k % signups.len()].clone());
        r.insert("joined".into(), joined[k % joined.len()].clone());
        r.insert("ratio".into(), ratios[k % ratios.len()].clone());
        r.insert("country".into(), countries[k % countries.len()].clone());
        r.insert("code".into(), codes[k % codes.len()].clone());
        if i % 3 == 0 {
            r.insert("secret".into(), json!("s3cr3t"));
        }
        if i % 4 != 1 {
            r.insert("total".into(), json!(i as i64 * 10));
            r.insert("qty".into(), json!((k % 5) as i64 + i64::from(k == 0)));
        }
        if i % 7 == 0 {
            r.insert("tier".into(), json!("gold"));
        }
        if i % 11 == 0 {
            r.insert("weight".into(), json!(null));
        }
        text.push_str(&Value::Object(r).to_string());
        text.push('\n');
    }
    text
}

const REGIONS: &str = "country,region\nDE,EU\nUS,NA\nFR,EU\n\"JP\",\"APAC, east\"\n";
const CODES: &str = "code\tname\n7\tseven\n12\ttwelve\n3.5\tthree and a half\n";

fn mapper_matches_rust(wasm: &str, who: &str) {
    let input = mapper_input();
    let files = [
        ("in/a.jsonl", input.as_str()),
        ("in/regions.csv", REGIONS),
        ("in/codes.tsv", CODES),
    ];
    let grants = format!("{{ files = [{{ host = \"in\", guest = \"/ref\" }}], {GRANTS} }}");
    let (rust, other) = run_both(
        &files,
        "mapper",
        crate::support::plugins::FIELD_MAPPER,
        wasm,
        MAPPER_CONFIG,
        &grants,
    );
    // The input is built so that both paths are taken many times: if this
    // fails, the input (not the plugin) changed.
    assert_eq!(rust.accounting.0, 240);
    assert!(
        rust.accounting.1 > 60 && rust.accounting.2 > 60,
        "the Rust mapper wrote {} and rejected {}",
        rust.accounting.1,
        rust.accounting.2
    );
    assert_same(&rust, &other, who);
}

#[test]
fn python_field_mapper_matches_the_rust_one() {
    mapper_matches_rust(&dist("py-field-mapper"), "py-field-mapper");
}

#[test]
fn javascript_field_mapper_matches_the_rust_one() {
    mapper_matches_rust(&dist("js-field-mapper"), "js-field-mapper");
}

/// A config error names the setting, as the Rust mapper's does, and the
/// pipeline does not start.
fn mapper_refuses_bad_config(wasm: &str) {
    for (config, expected) in [
        (
            r#"{ cast = { age = "integer" } }"#,
            r#"config.cast.age: unknown type "integer", expected "int", "float", "bool", "text" or "timestamp""#,
        ),
        (
            r#"{ computed = { x = "a + " } }"#,
            r#"config.computed.x: expected a value, found the end at position 5 in "a + ""#,
        ),
    ] {
        let s = Sandbox::new();
        s.write("in/a.jsonl", "{\"id\":\"1\"}\n");
        s.manifest(&manifest(
            &file_source("/in/a.jsonl"),
            Some(("mapper", wasm, config, &format!("{{ {GRANTS} }}"))),
        ));
        let err = s.run().expect_err("a bad config stops the pipeline");
        assert!(
            err.to_string().contains(expected),
            "expected {expected:?} in: {err}"
        );
    }
}

#[test]
fn python_field_mapper_names_a_bad_setting() {
    mapper_refuses_bad_config(&dist("py-field-mapper"));
}

#[test]
fn javascript_field_mapper_names_a_bad_setting() {
    mapper_refuses_bad_config(&dist("js-field-mapper"));
}

// --- the schema validator ---------------------------------------------------------

const VALIDATOR_CONFIG: &str = r#"{ required = ["id", "email"], non_empty = ["name"], types = { age = "int", score = "number", ratio = "float", active = "bool", name = "text", tags = "json" }, ranges = { age = { min = 0, max = 120 }, score = { min = 0.5 } }, lengths = { name = { min = 2, max = 8 } }, regex = { email = '^[^@\s]+@[^@\s]+\.[a-z]+$', code = '^[A-Z]{2}\d+' }, enums = { region = ["EU", "US", "APAC"], tier = [1, 2, 3.5], active = [true] }, unique_key = true }"#;

fn validator_input() -> String {
    let names = [
        json!("Ann"),
        json!("Ådalovelace"),
        json!("A"),
        json!("   "),
        json!(""),
        json!(42),
        json!(null),
        json!("Zoë"),
    ];
    let emails = [
        json!("a@b.org"),
        json!("bob(at)example"),
        json!("x@y.COM"),
        json!(null),
        json!(7),
        json!("  "),
    ];
    let ages = [
        json!(30),
        json!(150),
        json!(-1),
        json!("abc"),
        json!(42.5),
        json!(null),
        json!(120),
    ];
    let scores = [json!(1), json!(0.25), json!(0.5), json!("x"), json!(1e300)];
    let ratios = [json!(1), json!(2.5), json!(true), json!("1.5")];
    let regions = [json!("EU"), json!("XX"), json!("eu"), json!(null), json!(3)];
    let tiers = [
        json!(1),
        json!(3.5),
        json!(2.0),
        json!(4),
        json!("1"),
        json!(true),
    ];
    let codes = [
        json!("DE123"),
        json!("de123"),
        json!("XX"),
        json!(12),
        json!("AB1x"),
    ];
    let actives = [json!(true), json!(false), json!("true"), json!(null)];
    let tags = [
        json!(["a"]),
        json!({"k": 1}),
        json!("a"),
        json!(null),
        json!([]),
    ];
    let mut text = String::new();
    for i in 0..200usize {
        if i % 37 == 11 {
            text.push_str("{\"id\": \"broken\"\n");
            continue;
        }
        if i % 41 == 20 {
            text.push_str("[1, 2]\n");
            continue;
        }
        let k = if i % 3 == 0 { 0 } else { i };
        let mut r = serde_json::Map::new();
        // Some keys repeat within a batch, some records have none.
        if i % 23 != 7 {
            let id = if i % 19 == 4 { i - 1 } else { i };
            r.insert("id".into(), json!(format!("k{id}")));
        }
        r.insert("name".into(), names[k % names.len()].clone());
        r.insert("email".into(), emails[k % emails.len()].clone());
        r.insert("age".into(), ages[k % ages.len()].clone());
        r.insert("score".into(), scores[k % scores.len()].clone());
        r.insert("ratio".into(), ratios[k % ratios.len()].clone());
        r.insert("region".into(), regions[k % regions.len()].clone());
        r.insert("tier".into(), tiers[k % tiers.len()].clone());
        r.insert("code".into(), codes[k % codes.len()].clone());
        r.insert("active".into(), actives[k % actives.len()].clone());
        r.insert("tags".into(), tags[k % tags.len()].clone());
        text.push_str(&Value::Object(r).to_string());
        text.push('\n');
    }
    text
}

fn validator_matches_rust(wasm: &str, who: &str) {
    let input = validator_input();
    let (rust, other) = run_both(
        &[("in/a.jsonl", input.as_str())],
        "validator",
        crate::support::plugins::SCHEMA_VALIDATOR,
        wasm,
        VALIDATOR_CONFIG,
        &format!("{{ {GRANTS} }}"),
    );
    assert_eq!(rust.accounting.0, 200);
    assert!(
        rust.accounting.1 > 40 && rust.accounting.2 > 100,
        "the Rust validator passed {} and refused {}",
        rust.accounting.1,
        rust.accounting.2
    );
    assert_same(&rust, &other, who);
}

#[test]
fn python_schema_validator_matches_the_rust_one() {
    validator_matches_rust(&dist("py-schema-validator"), "py-schema-validator");
}

#[test]
fn javascript_schema_validator_matches_the_rust_one() {
    validator_matches_rust(&dist("js-schema-validator"), "js-schema-validator");
}

// --- the Python JSON Lines source ---------------------------------------------------

fn py_source(config: &str) -> String {
    format!(
        "kind = \"source\"\nwasm = \"{}\"\nconfig = {config}\ngrants = {{ files = [{{ host = \"in\", guest = \"/in\" }}], {GRANTS} }}",
        dist("py-jsonl-source")
    )
}

#[test]
fn python_jsonl_source_reads_what_the_rust_file_source_reads() {
    let mut bytes: Vec<u8> = b"\xEF\xBB\xBF".to_vec();
    for i in 0..150 {
        let line = match i % 10 {
            0 => format!(
                "{{\"id\": {i}, \"n\": {i}, \"x\": 1.5, \"ok\": true, \"tags\": [\"a\", {{\"b\": 2.50}}]}}\n"
            ),
            1 => format!("{{\"id\": \"s{i}\", \"name\": \"A\\\"da \\u00e9\", \"none\": null}}\r\n"),
            2 => "\n   \n".to_string(),
            3 => "[1, 2]\n".to_string(),
            4 => format!("{{\"name\": \"no key {i}\"}}\n"),
            5 => {
                format!("{{\"id\": {i}.0, \"big\": 123456789012345678901234567890, \"neg\": -0}}\n")
            }
            6 => format!("{{\"id\": \"d{i}\", \"id\": \"dup{i}\", \"v\": 1}}\n"),
            7 => "\"just text\"\n".to_string(),
            _ => format!(
                "{{\"id\": \"k{i}\", \"obj\": {{\"a\": [1, {{\"b\": null}}]}}, \"f\": 1e2}}\n"
            ),
        };
        bytes.extend_from_slice(line.as_bytes());
    }
    bytes.extend_from_slice(b"{\"id\": \"bad\", \"v\": \"\xff\xfe\"}\n");
    // A last line still being written: neither source reads it yet.
    bytes.extend_from_slice(b"{\"id\": \"late\"");
    let run = |source: &str| {
        let s = Sandbox::new();
        std::fs::write(s.path("in/a.jsonl"), &bytes).expect("write the input");
        s.manifest(&manifest(source, None));
        outcome(&s)
    };
    let rust = run(&file_source("/in/a.jsonl"));
    let python = run(&py_source("{ path = \"/in/a.jsonl\" }"));
    assert_eq!(rust.accounting.0, 136, "records the Rust file source read");
    assert!(
        rust.written
            .iter()
            .any(|r| r["_error"] == json!("not a JSON object")),
        "the input has broken lines"
    );
    assert_same(&rust, &python, "py-jsonl-source");
}

#[test]
fn python_jsonl_source_resumes_from_its_checkpoint() {
    let s = Sandbox::new();
    let lines: String = (0..300)
        .map(|i| format!("{{\"id\":\"{i}\",\"n\":{i}}}\n"))
        .collect();
    s.write("in/a.jsonl", &lines);
    s.manifest(&manifest(&py_source("{ path = \"/in/a.jsonl\" }"), None));
    assert_eq!(s.run().expect("first run").accounting.written, 300);
    let again = s.run().expect("second run");
    assert_eq!(
        again.accounting.read, 0,
        "the second run starts at the checkpoint"
    );
    assert_eq!(s.jsonl("out/out.jsonl").len(), 300);
    // New lines, and a broken one, are picked up from where the last run stopped.
    s.append(
        "in/a.jsonl",
        "{\"id\":\"300\"}\nnot json\n{\"id\":\"301\"}\n",
    );
    let third = s.run().expect("third run");
    assert_eq!((third.accounting.read, third.accounting.written), (3, 3));
    let out = s.jsonl("out/out.jsonl");
    assert_eq!(out.len(), 303);
    assert_eq!(out[300]["id"], json!("300"));
    assert_eq!(out[300]["n"], Value::Null);
    assert!(
        out[301]["_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("invalid JSON")),
        "{}",
        out[301]
    );
    assert_eq!(out[302]["id"], json!("301"));
    // A checkpoint made for another file is refused.
    s.write("in/b.jsonl", "{\"id\":\"b\"}\n");
    s.manifest(&manifest(&py_source("{ path = \"/in/b.jsonl\" }"), None));
    let err = s.run().expect_err("a checkpoint for another file");
    assert!(err.to_string().contains("another file list"), "{err}");
}
