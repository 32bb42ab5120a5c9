//! The quickstart example, run the way the README says, checked against the
//! facts its generator wrote down (`examples/quickstart/expected/summary.json`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{ferry, read_jsonl};

fn repo() -> PathBuf {
    crate::support::repo_root()
}

/// A copy of examples/quickstart in a temp folder, with the plugin paths
/// made absolute, so the test leaves the repository untouched.
fn copy_quickstart() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    let src = repo().join("examples/quickstart");
    std::fs::create_dir_all(dir.path().join("data")).expect("data/");
    for entry in std::fs::read_dir(src.join("data")).expect("data").flatten() {
        std::fs::copy(
            entry.path(),
            dir.path().join("data").join(entry.file_name()),
        )
        .expect("copy");
    }
    let dist = repo()
        .join("plugins/dist")
        .canonicalize()
        .expect("plugins/dist exists");
    let manifest = std::fs::read_to_string(src.join("pipeline.toml"))
        .expect("manifest")
        .replace("../../plugins/dist", &dist.display().to_string());
    std::fs::write(dir.path().join("pipeline.toml"), manifest).expect("write");
    dir
}

fn summary() -> Value {
    let text = std::fs::read_to_string(repo().join("examples/quickstart/expected/summary.json"))
        .expect("summary");
    serde_json::from_str(&text).expect("json")
}

fn n(v: &Value) -> u64 {
    v.as_u64().expect("a count")
}

#[test]
fn the_quickstart_writes_exactly_the_valid_records_and_dead_letters_the_rest() {
    let dir = copy_quickstart();
    let expected = summary();
    let total = n(&expected["records"]["total"]);
    let valid = n(&expected["valid"]);
    let invalid = n(&expected["invalid"]);

    let out = ferry(&["run", "pipeline.toml"], dir.path()).expect("ferry runs");
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        out.stdout.lines().last().unwrap_or_default(),
        format!("accounting: read={total} written={valid} dead_lettered={invalid} filtered=0")
    );

    // The warehouse holds exactly the valid records, mapped.
    let warehouse = read_jsonl(&dir.path().join("out/warehouse.jsonl"));
    assert_eq!(warehouse.len() as u64, valid);
    let ids: HashSet<&str> = warehouse.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids.len() as u64, valid, "every valid record exactly once");
    let bad_ids: HashSet<&str> = expected["invalid_records"]
        .as_array()
        .expect("list")
        .iter()
        .filter(|r| r["reason"] != "duplicate_key")
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert!(
        ids.is_disjoint(&bad_ids),
        "no invalid record reached the warehouse"
    );
    for r in &warehouse {
        let email = r["email"].as_str().expect("email is text");
        assert_eq!(
            email,
            email.trim().to_lowercase(),
            "email is trimmed and lower-cased: {r}"
        );
        assert!(r.get("mail").is_none(), "mail was renamed: {r}");
        assert!(
            r["age"].is_i64() || r["age"].is_null(),
            "age is an integer: {r}"
        );
        assert!(r["region"].is_string(), "region was looked up: {r}");
        let full = format!(
            "{} {}",
            r["first_name"].as_str().unwrap_or(""),
            r["last_name"].as_str().unwrap_or("")
        );
        assert_eq!(r["full_name"].as_str(), Some(full.as_str()), "{r}");
    }
    let mut by_region: HashMap<&str, u64> = HashMap::new();
    for r in &warehouse {
        *by_region
            .entry(r["region"].as_str().unwrap_or(""))
            .or_default() += 1;
    }
    for (region, count) in expected["valid_by_region"].as_object().expect("map") {
        assert_eq!(
            by_region.get(region.as_str()).copied().unwrap_or(0),
            n(count),
            "region {region}"
        );
    }
    // The EU route got exactly the EU records.
    let eu = read_jsonl(&dir.path().join("out/eu.jsonl"));
    assert_eq!(eu.len() as u64, n(&expected["eu_output"]));
    assert!(eu.iter().all(|r| r["region"] == "EU"));

    // The dead-letter store holds exactly the invalid ones, each with its reason.
    let list = ferry(&["dlq", "list", "pipeline.toml", "--json"], dir.path()).expect("ferry runs");
    assert_eq!(list.code, 0, "{}", list.stderr);
    let letters: Vec<Value> = serde_json::from_str(&list.stdout).expect("a JSON array");
    assert_eq!(letters.len() as u64, invalid);
    let by_key: HashMap<String, &Value> = letters
        .iter()
        .map(|l| (l["key"].as_str().unwrap_or("").to_string(), l))
        .collect();
    for bad in expected["invalid_records"].as_array().expect("list") {
        let reason = bad["reason"].as_str().expect("reason");
        let facts = &expected["invalid_by_reason"][reason];
        let key = match bad["id"].as_str() {
            Some(id) => id.to_string(),
            None => format!("/in/{}:{}", bad["file"].as_str().unwrap_or(""), bad["line"]),
        };
        let letter = by_key
            .get(&key)
            .unwrap_or_else(|| panic!("no dead letter for {key} ({reason})"));
        let stage = if facts["stage"] == "mapper" {
            "to_warehouse"
        } else {
            "rules"
        };
        assert_eq!(letter["stage"], stage, "{key}: {letter}");
        let detail = letter["detail"].as_str().unwrap_or("");
        if let Some(field) = facts["field"].as_str() {
            assert!(detail.contains(field), "{key} ({reason}): {detail}");
        }
        assert_eq!(letter["plugin_digest"].as_str().map(str::len), Some(64));
    }

    // Running it again writes nothing twice.
    let again = ferry(&["run", "pipeline.toml"], dir.path()).expect("ferry runs");
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        again.stdout.lines().last().unwrap_or_default(),
        "accounting: read=0 written=0 dead_lettered=0 filtered=0"
    );
    assert_eq!(
        read_jsonl(&dir.path().join("out/warehouse.jsonl")).len() as u64,
        valid
    );
    let list = ferry(&["dlq", "list", "pipeline.toml", "--json"], dir.path()).expect("ferry runs");
    let letters: Vec<Value> = serde_json::from_str(&list.stdout).expect("a JSON array");
    assert_eq!(letters.len() as u64, invalid);
}

#[test]
fn the_shipped_manifest_validates_from_the_repository_root() {
    let out =
        ferry(&["validate", "examples/quickstart/pipeline.toml"], &repo()).expect("ferry runs");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        Path::new(&repo())
            .join("examples/quickstart/data/contacts.jsonl")
            .is_file()
    );
}
