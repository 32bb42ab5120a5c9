//! examples/two-way-sync, run as shipped: its run.sh plays every scenario
//! (concurrent edits in the CRM and billing, then one sync per strategy),
//! and each scenario's databases must end as its README says, with the
//! conflict queue and the audit log to match.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ferry_state::{CONFLICT_CAPABILITY, ConflictFilter, SqliteState, StateStore};

use crate::support::{Sandbox, ferry, ferry_bin, plugins};

fn example() -> PathBuf {
    crate::support::repo_root().join("examples/two-way-sync")
}

/// Copies the example's shipped files (not what run.sh leaves behind:
/// `work/` and the `customers.<scenario>.toml` variants) into `to`.
fn copy_shipped(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("the example folder") {
        let entry = entry.expect("an entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let generated = name == "work"
            || (name.starts_with("customers.")
                && name.ends_with(".toml")
                && name != "customers.toml");
        if generated {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_shipped(&path, &to.join(&name));
        } else {
            std::fs::copy(&path, to.join(&name)).expect("copy a file");
        }
    }
}

/// One customer as both systems store it.
#[derive(Debug, Clone, PartialEq)]
struct Customer {
    name: String,
    email: Option<String>,
    credit_limit: i64,
    street: Option<String>,
    city: Option<String>,
    address_updated_at: Option<String>,
    updated_at: String,
}

/// Times of the scenario: the seed's, and the edits' on 2026-11-27.
const SEED: &str = "2026-11-26T18:00:00Z";

fn at(hhmm: &str) -> String {
    format!("2026-11-27T{hhmm}:00Z")
}

#[allow(clippy::too_many_arguments)]
fn customer(
    name: &str,
    email: &str,
    credit_limit: i64,
    street: &str,
    city: &str,
    address_updated_at: &str,
    updated_at: &str,
) -> Customer {
    Customer {
        name: name.into(),
        email: Some(email.into()),
        credit_limit,
        street: Some(street.into()),
        city: Some(city.into()),
        address_updated_at: Some(address_updated_at.into()),
        updated_at: updated_at.into(),
    }
}

fn customers(db: &Path) -> BTreeMap<i64, Customer> {
    let c = rusqlite::Connection::open(db).unwrap_or_else(|e| panic!("{}: {e}", db.display()));
    let mut stmt = c
        .prepare(
            "SELECT id, name, email, credit_limit, street, city, address_updated_at, updated_at
             FROM customers ORDER BY id",
        )
        .expect("query");
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            Customer {
                name: r.get(1)?,
                email: r.get(2)?,
                credit_limit: r.get(3)?,
                street: r.get(4)?,
                city: r.get(5)?,
                address_updated_at: r.get(6)?,
                updated_at: r.get(7)?,
            },
        ))
    })
    .expect("rows")
    .map(|r| r.expect("a customer"))
    .collect()
}

/// What a scenario must end with: keys 1-3 (the conflicts) on each side
/// (`None`: deleted); keys 4-6 are the same in every scenario.
struct Expect {
    scenario: &'static str,
    crm: [Option<Customer>; 3],
    billing: [Option<Customer>; 3],
    /// The audit log's conflict events: (event, key).
    events: &'static [(&'static str, &'static str)],
}

fn expectations() -> Vec<Expect> {
    let acme_crm = customer(
        "Acme",
        "ap@acme.example",
        5000,
        "CRM St 9",
        "Berlin",
        &at("09:10"),
        &at("09:10"),
    );
    let acme_billing = customer(
        "Acme",
        "ap@acme.example",
        2000,
        "Billing Rd 2",
        "Hamburg",
        &at("09:15"),
        &at("09:15"),
    );
    // The CRM's credit limit with billing's address (the resolver's rules,
    // or the person's merged record in `manual`).
    let acme_merged = Customer {
        credit_limit: 5000,
        ..acme_billing.clone()
    };
    let globex_crm = customer(
        "Globex",
        "ap@globex.example",
        500,
        "Main St 5",
        "Paris",
        SEED,
        &at("09:20"),
    );
    let globex_billing = customer(
        "Globex",
        "billing@globex.example",
        750,
        "Main St 5",
        "Paris",
        SEED,
        &at("09:12"),
    );
    // The CRM's email (the later write) with billing's credit limit.
    let globex_merged = Customer {
        credit_limit: 750,
        ..globex_crm.clone()
    };
    let initech_billing = customer(
        "Initech",
        "accounts@initech.example",
        900,
        "Office Park 3",
        "Austin",
        SEED,
        &at("09:00"),
    );
    let alike = |k1: &Customer, k2: &Customer, k3: Option<&Customer>| {
        [Some(k1.clone()), Some(k2.clone()), k3.cloned()]
    };
    const SETTLED: &[(&str, &str)] = &[("settled", "1"), ("settled", "2"), ("settled", "3")];
    vec![
        Expect {
            scenario: "last-writer-wins",
            crm: alike(&acme_billing, &globex_crm, None),
            billing: alike(&acme_billing, &globex_crm, None),
            events: SETTLED,
        },
        Expect {
            scenario: "first-writer-wins",
            crm: alike(&acme_crm, &globex_billing, Some(&initech_billing)),
            billing: alike(&acme_crm, &globex_billing, Some(&initech_billing)),
            events: SETTLED,
        },
        Expect {
            scenario: "crm-wins",
            crm: alike(&acme_crm, &globex_crm, None),
            billing: alike(&acme_crm, &globex_crm, None),
            events: SETTLED,
        },
        Expect {
            scenario: "merge",
            crm: alike(&acme_billing, &globex_merged, None),
            billing: alike(&acme_billing, &globex_merged, None),
            events: SETTLED,
        },
        Expect {
            scenario: "owned",
            crm: alike(&acme_billing, &globex_merged, None),
            billing: alike(&acme_billing, &globex_merged, None),
            events: SETTLED,
        },
        Expect {
            scenario: "manual",
            crm: alike(&acme_merged, &globex_crm, Some(&initech_billing)),
            billing: alike(&acme_merged, &globex_crm, Some(&initech_billing)),
            events: &[
                ("queued", "1"),
                ("queued", "2"),
                ("queued", "3"),
                ("decided", "1"),
                ("decided", "2"),
                ("decided", "3"),
                ("applied", "1"),
                ("applied", "2"),
                ("applied", "3"),
            ],
        },
        Expect {
            scenario: "resolver",
            // Key 2 waits in the queue: each side keeps its own version.
            crm: alike(&acme_merged, &globex_crm, Some(&initech_billing)),
            billing: alike(&acme_merged, &globex_billing, Some(&initech_billing)),
            events: &[("settled", "1"), ("queued", "2"), ("settled", "3")],
        },
    ]
}

/// Keys 4-6, alike in every scenario: the CRM's rename, the change both
/// made, billing's new customer.
fn unconflicted() -> [(i64, Customer); 3] {
    [
        (
            4,
            customer(
                "Umbrella Corp",
                "finance@umbrella.example",
                300,
                "Hive Way 1",
                "Raccoon City",
                SEED,
                &at("09:05"),
            ),
        ),
        (
            5,
            customer(
                "Hooli",
                "ap@hooli.example",
                800,
                "Campus Dr 1",
                "Palo Alto",
                SEED,
                &at("09:30"),
            ),
        ),
        (
            6,
            customer(
                "Stark Industries",
                "pepper@stark.example",
                10000,
                "Tower Ave 1",
                "New York",
                &at("09:40"),
                &at("09:40"),
            ),
        ),
    ]
}

fn expected_side(conflicted: &[Option<Customer>; 3]) -> BTreeMap<i64, Customer> {
    let mut out: BTreeMap<i64, Customer> = conflicted
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.clone().map(|c| (i as i64 + 1, c)))
        .collect();
    out.extend(unconflicted());
    out
}

#[test]
fn the_two_way_sync_example_settles_each_scenario_as_its_readme_says() {
    let s = Sandbox::new();
    let dir = s.path("two-way-sync");
    copy_shipped(&example(), &dir);
    let dist = PathBuf::from(plugins::SQLITE)
        .parent()
        .expect("plugins/dist")
        .display()
        .to_string();
    let manifest = dir.join("customers.toml");
    let text = std::fs::read_to_string(&manifest).expect("customers.toml");
    assert!(text.contains("../../plugins/dist"), "{text}");
    std::fs::write(&manifest, text.replace("../../plugins/dist", &dist)).expect("write");

    let started = Instant::now();
    let out = Command::new("bash")
        .arg("run.sh")
        .current_dir(&dir)
        .env("FERRY", ferry_bin().expect("the ferry binary"))
        .env(
            "FERRY_CACHE_DIR",
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        )
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "run.sh failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    eprintln!("run.sh: {:.1} s", started.elapsed().as_secs_f64());

    for want in expectations() {
        let sc = want.scenario;
        let work = dir.join("work").join(sc);
        let crm = customers(&work.join("crm.db"));
        let billing = customers(&work.join("billing.db"));
        assert_eq!(crm, expected_side(&want.crm), "{sc}: the CRM");
        assert_eq!(billing, expected_side(&want.billing), "{sc}: billing");
        if sc != "resolver" {
            assert_eq!(crm, billing, "{sc}: both systems alike");
        }

        let state = SqliteState::open(&work.join("state.db")).expect("the state opens");
        let conflicts = state
            .conflicts(&ConflictFilter {
                pipeline: Some("customers".into()),
                statuses: Vec::new(),
                key: None,
            })
            .expect("conflicts");
        let queue: Vec<(&str, &str, Option<&str>)> = conflicts
            .iter()
            .map(|c| {
                (
                    c.key.as_str(),
                    c.status.as_str(),
                    c.decision.map(ferry_state::Choice::as_str),
                )
            })
            .collect();
        match sc {
            "manual" => assert_eq!(
                queue,
                [
                    ("1", "resolved", Some("merged")),
                    ("2", "resolved", Some("left")),
                    ("3", "resolved", Some("right")),
                ],
                "{sc}: every decision applied"
            ),
            "resolver" => {
                assert_eq!(queue, [("2", "open", None)], "{sc}: Globex waits");
                assert_eq!(
                    conflicts[0].reason,
                    "resolver `settle` deferred: `email` changed on both sides and no rule decides it",
                    "{sc}"
                );
            }
            _ => assert!(queue.is_empty(), "{sc}: nothing queued: {queue:?}"),
        }
        let waiting = ferry(
            &["conflicts", "list", &format!("customers.{sc}.toml")],
            &dir,
        )
        .expect("ferry conflicts list");
        assert_eq!(waiting.code, 0, "{}", waiting.stderr);
        assert_eq!(
            waiting.stdout.contains("no conflicts waiting"),
            sc != "resolver",
            "{sc}: {}",
            waiting.stdout
        );

        let events: Vec<(String, String)> = state
            .audit_events(Some("customers"))
            .expect("audit events")
            .into_iter()
            .filter(|e| e.capability == CONFLICT_CAPABILITY)
            .map(|e| {
                let d: serde_json::Value = serde_json::from_str(&e.detail).expect("JSON detail");
                (
                    d["event"].as_str().unwrap_or_default().to_string(),
                    d["key"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let want_events: Vec<(String, String)> = want
            .events
            .iter()
            .map(|(e, k)| (e.to_string(), k.to_string()))
            .collect();
        assert_eq!(events, want_events, "{sc}: the audit log's conflict events");
        assert!(
            stdout.contains(&format!("== {sc}: ")),
            "run.sh prints a header for {sc}"
        );
    }
    // What run.sh shows of the queue: the manual conflicts, and the
    // resolver's deferred one with its reason.
    assert!(stdout.contains("3 conflicts;"), "{stdout}");
    assert!(
        stdout.contains("deferred: `email` changed on both sides"),
        "{stdout}"
    );
}

#[test]
fn the_shipped_two_way_manifest_validates_as_is() {
    let out = ferry(&["validate", "customers.toml"], &example()).expect("ferry validate");
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
}
