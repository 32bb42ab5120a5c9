//! Reloading manifests while their pipelines run, through the
//! [`Supervisor`]: each kind of edit changes only what it must, and a bad
//! edit leaves the running version untouched.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferry_pipeline::{ReloadChange, ReloadOutcome, Supervisor};
use ferry_state::StateStore;

use crate::support::{Sandbox, with_plugins};

/// A follow-mode pipeline `name`: file source (`in/<name>.jsonl`) ->
/// test-faulty-mapper rejecting `reject` -> file sink `out/<name>.jsonl`.
fn manifest(name: &str, reject: &str, extra_grants: &str) -> String {
    manifest_in("", name, reject, extra_grants)
}

/// The same for a manifest in a subfolder: `up` leads back to the sandbox.
fn manifest_in(up: &str, name: &str, reject: &str, extra_grants: &str) -> String {
    format!(
        r#"
[pipeline]
name = "{name}"
mode = "follow"
poll_interval_ms = 5
batch = {{ max_records = 64, max_wait_ms = 10 }}
state = "{up}.ferry/{name}.db"

[plugins.src]
kind = "source"
wasm = "{{FILE}}"
config = {{ path = "/in/{name}.jsonl" }}
grants = {{ files = [{{ host = "{up}in", guest = "/in" }}] }}

[plugins.map]
kind = "mapper"
wasm = "{{FAULTY_MAPPER}}"
config = {{ reject_keys = ["{reject}"] }}
grants = {{ memory_mb = 16{extra_grants} }}

[plugins.out]
kind = "sink"
wasm = "{{FILE}}"
config = {{ path = "/out/{name}.jsonl" }}
grants = {{ files = [{{ host = "{up}out", guest = "/out", mode = "rw" }}] }}

[[routes]]
from = "src"
through = ["map"]
to = ["out"]
"#
    )
}

fn write_manifest(s: &Sandbox, file: &str, text: &str) -> PathBuf {
    let path = s.write(file, &with_plugins(text));
    ferry_pipeline::lock(&path, ferry_pipeline::LockMode::Missing).expect("lock");
    path
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio")
}

fn start(s: &Sandbox, path: &std::path::Path) -> Supervisor {
    let mut sup = Supervisor::new(crate::support::runtime().clone());
    for file in manifests(path) {
        let m = ferry_manifest::load(&file).expect("loads");
        let plan = ferry_pipeline::plan(m, crate::support::runtime()).expect("plans");
        sup.start(plan).expect("starts");
    }
    let _ = s;
    sup
}

fn manifests(path: &std::path::Path) -> Vec<PathBuf> {
    if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .expect("dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    }
}

/// Waits until `pipeline` committed `n` records.
async fn committed(sup: &Supervisor, pipeline: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = sup
            .running()
            .into_iter()
            .find(|(name, _, _)| name == pipeline)
            .map(|(_, _, s)| s)
            .expect("running");
        if status.committed().read >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{pipeline}: {} of {n} committed",
            status.committed().read
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn records(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("{{\"id\":\"{k}\"}}\n"))
        .collect()
}

#[test]
fn a_config_change_swaps_only_that_stage() {
    let s = Sandbox::new();
    s.write("in/p.jsonl", &records(&["a", "b"]));
    let path = write_manifest(&s, "p.toml", &manifest("p", "a", ""));
    let rt = rt();
    rt.block_on(async {
        let mut sup = start(&s, &path);
        committed(&sup, "p", 2).await;
        let same = sup.reload(std::slice::from_ref(&path), "test").await;
        assert_eq!(same.outcome, ReloadOutcome::NoChange, "{same}");

        write_manifest(&s, "p.toml", &manifest("p", "b", ""));
        let event = sup.reload(std::slice::from_ref(&path), "test").await;
        assert_eq!(event.outcome, ReloadOutcome::Applied, "{event}");
        assert_eq!(event.changes.len(), 1, "{event}");
        match &event.changes[0] {
            ReloadChange::Swapped {
                stage,
                old_digest,
                new_digest,
                grants,
                widened,
                ..
            } => {
                assert_eq!(stage, "map");
                assert_eq!(old_digest, new_digest, "same component, new config");
                assert!(grants.is_empty() && !widened, "{grants:?}");
            }
            other => panic!("expected a swap, got {other}"),
        }
        s.append("in/p.jsonl", &records(&["a", "b"]));
        committed(&sup, "p", 4).await;
        sup.shutdown();
        let ended = sup.wait().await;
        assert!(ended.iter().all(|e| e.result.is_ok()));
    });
    // Before the swap `a` was rejected, after it `b`.
    let written: Vec<String> = s
        .jsonl("out/p.jsonl")
        .iter()
        .map(|r| r["id"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(written, ["b", "a"]);
    let state = ferry_state::SqliteState::open(&s.path(".ferry/p.db")).expect("state");
    let reloads: Vec<_> = state
        .audit_events(Some("p"))
        .expect("audit")
        .into_iter()
        .filter(|e| e.capability == "reload")
        .collect();
    assert_eq!(
        reloads
            .iter()
            .map(|e| e.target.as_str())
            .collect::<Vec<_>>(),
        ["no-change", "applied"]
    );
    assert_eq!(reloads[1].stage, "map");
}

#[test]
fn an_invalid_edit_is_rolled_back_and_the_old_version_keeps_running() {
    let s = Sandbox::new();
    s.write("in/p.jsonl", &records(&["a", "b"]));
    let path = write_manifest(&s, "p.toml", &manifest("p", "a", ""));
    let rt = rt();
    rt.block_on(async {
        let mut sup = start(&s, &path);
        committed(&sup, "p", 2).await;
        let good = std::fs::read_to_string(&path).expect("manifest");
        std::fs::write(
            &path,
            good.replace("poll_interval_ms = 5", "poll_interval_ms = \"soon\""),
        )
        .expect("edit");
        let event = sup.reload(std::slice::from_ref(&path), "test").await;
        assert_eq!(event.outcome, ReloadOutcome::RolledBack, "{event}");
        let reason = event.reason.clone().unwrap_or_default();
        assert!(reason.contains("p.toml:5:"), "line and column: {reason}");
        assert!(reason.contains("poll_interval_ms"), "{reason}");
        // A component that fails to open is rolled back too.
        std::fs::write(
            &path,
            good.replace(
                "config = { reject_keys = [\"a\"] }",
                "config = { fail_open = \"invalid-config\" }",
            ),
        )
        .expect("edit");
        let event = sup.reload(std::slice::from_ref(&path), "test").await;
        assert_eq!(event.outcome, ReloadOutcome::RolledBack, "{event}");
        assert!(
            event
                .reason
                .as_deref()
                .unwrap_or("")
                .contains("failing open on purpose"),
            "{event}"
        );
        // The old version still serves: `a` is still rejected.
        s.append("in/p.jsonl", &records(&["a", "c"]));
        committed(&sup, "p", 4).await;
        sup.shutdown();
        sup.wait().await;
    });
    let written: Vec<String> = s
        .jsonl("out/p.jsonl")
        .iter()
        .map(|r| r["id"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(written, ["b", "c"]);
}

#[test]
fn an_edit_that_adds_a_route_restarts_only_its_pipeline() {
    let s = Sandbox::new();
    s.write("in/p.jsonl", &records(&["a", "b"]));
    s.write("in/q.jsonl", &records(&["x"]));
    let dir = s.path("manifests");
    std::fs::create_dir_all(&dir).expect("dir");
    let p = write_manifest(&s, "manifests/p.toml", &manifest_in("../", "p", "none", ""));
    write_manifest(&s, "manifests/q.toml", &manifest_in("../", "q", "none", ""));
    let rt = rt();
    rt.block_on(async {
        let mut sup = start(&s, &dir);
        committed(&sup, "p", 2).await;
        committed(&sup, "q", 1).await;
        let text = std::fs::read_to_string(&p).expect("manifest");
        let extra = "\n[plugins.copy]\nkind = \"sink\"\nwasm = \"{FILE}\"\nconfig = { path = \"/out/copy.jsonl\" }\ngrants = { files = [{ host = \"../out\", guest = \"/out\", mode = \"rw\" }] }\n\n[[routes]]\nfrom = \"src\"\nto = [\"copy\"]\n";
        write_manifest(&s, "manifests/p.toml", &format!("{text}{extra}"));
        let event = sup.reload(std::slice::from_ref(&dir), "test").await;
        assert_eq!(event.outcome, ReloadOutcome::Applied, "{event}");
        assert_eq!(event.changes.len(), 1, "only p changes: {event}");
        assert!(
            matches!(&event.changes[0], ReloadChange::Restarted { pipeline, .. } if pipeline == "p"),
            "{event}"
        );
        s.append("in/p.jsonl", &records(&["c"]));
        s.append("in/q.jsonl", &records(&["y"]));
        // The restarted run counts from its own start.
        committed(&sup, "p", 1).await;
        committed(&sup, "q", 2).await;
        sup.shutdown();
        let ended = sup.wait().await;
        assert!(ended.iter().all(|e| e.result.is_ok()));
    });
    let ids = |file: &str| -> Vec<String> {
        s.jsonl(file)
            .iter()
            .map(|r| r["id"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(ids("out/p.jsonl"), ["a", "b", "c"], "nothing read twice");
    assert_eq!(ids("out/copy.jsonl"), ["c"], "the new route");
    assert_eq!(ids("out/q.jsonl"), ["x", "y"]);
}

#[test]
fn removing_a_manifest_drains_and_stops_its_pipeline() {
    let s = Sandbox::new();
    s.write("in/p.jsonl", &records(&["a", "b"]));
    s.write("in/q.jsonl", &records(&["x"]));
    let dir = s.path("manifests");
    std::fs::create_dir_all(&dir).expect("dir");
    write_manifest(&s, "manifests/p.toml", &manifest_in("../", "p", "none", ""));
    let q = write_manifest(&s, "manifests/q.toml", &manifest_in("../", "q", "none", ""));
    let rt = rt();
    rt.block_on(async {
        let mut sup = start(&s, &dir);
        committed(&sup, "q", 1).await;
        std::fs::remove_file(&q).expect("remove");
        let event = sup.reload(std::slice::from_ref(&dir), "test").await;
        assert_eq!(event.outcome, ReloadOutcome::Applied, "{event}");
        assert!(
            matches!(&event.changes[..], [ReloadChange::Removed { pipeline }] if pipeline == "q"),
            "{event}"
        );
        let ended = sup.take_ended();
        assert_eq!(ended.len(), 1);
        let report = ended[0].result.as_ref().expect("q ended cleanly");
        assert_eq!(report.accounting.written, 1, "q committed before stopping");
        assert_eq!(
            sup.running().into_iter().map(|r| r.0).collect::<Vec<_>>(),
            ["p"]
        );
        sup.shutdown();
        sup.wait().await;
    });
    let state = ferry_state::SqliteState::open(&s.path(".ferry/q.db")).expect("state");
    assert_eq!(state.total_accounting("q").expect("accounting").written, 1);
    assert!(
        state
            .audit_events(Some("q"))
            .expect("audit")
            .iter()
            .any(|e| e.capability == "reload" && e.detail.contains("removed")),
        "the removal is in q's audit log"
    );
}

#[test]
fn a_reload_that_widens_grants_is_reported_as_such() {
    let s = Sandbox::new();
    s.write("in/p.jsonl", &records(&["a"]));
    let path = write_manifest(&s, "p.toml", &manifest("p", "none", ""));
    let rt = rt();
    rt.block_on(async {
        let mut sup = start(&s, &path);
        committed(&sup, "p", 1).await;
        write_manifest(
            &s,
            "p.toml",
            &manifest("p", "none", ", env = { MODE = \"fast\" }"),
        );
        let event = sup.reload(std::slice::from_ref(&path), "test").await;
        assert_eq!(event.outcome, ReloadOutcome::Applied, "{event}");
        match &event.changes[..] {
            [
                ReloadChange::Swapped {
                    grants, widened, ..
                },
            ] => {
                assert!(*widened, "{grants:?}");
                assert_eq!(grants, &["+ env: MODE"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(event.to_string().contains("WIDENED"), "{event}");
        sup.shutdown();
        sup.wait().await;
    });
}

/// `ferry run` watches its manifest: an edit is applied while it runs;
/// `ferry reload` (SIGHUP) reloads on demand; `ferry status` shows both.
#[test]
fn ferry_run_reloads_on_an_edit_and_on_ferry_reload() {
    let s = Sandbox::new();
    s.write("in/p.jsonl", &records(&["a", "b"]));
    let path = write_manifest(&s, "p.toml", &manifest("p", "a", ""));
    let child = crate::support::spawn_ferry(&["run", "p.toml", "--quiet"], &s.path(""));
    let wait_for = |what: &str, check: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let written = |s: &Sandbox| -> Vec<String> {
        s.jsonl("out/p.jsonl")
            .iter()
            .map(|r| r["id"].as_str().unwrap_or("").to_string())
            .collect()
    };
    wait_for("the first records", &|| written(&s) == ["b"]);
    // An edit: reject `b` instead of `a`.
    write_manifest(&s, "p.toml", &manifest("p", "b", ""));
    let status = || {
        crate::support::ferry(&["status", "p.toml", "--json"], &s.path(""))
            .expect("status")
            .stdout
    };
    wait_for("the edit to be applied", &|| {
        status().contains("\"applied\"")
    });
    s.append("in/p.jsonl", &records(&["a", "b"]));
    wait_for("records after the edit", &|| written(&s) == ["b", "a"]);
    // On demand: nothing changed, so `no-change`.
    let reload = crate::support::ferry(&["reload", "p.toml"], &s.path("")).expect("reload");
    assert_eq!(reload.code, 0, "{}", reload.stderr);
    wait_for("the SIGHUP reload", &|| status().contains("\"no-change\""));
    let report: serde_json::Value = serde_json::from_str(&status()).expect("JSON");
    let p = &report["pipelines"][0];
    assert_eq!(p["pipeline"], "p");
    assert_eq!(p["served_by_pid"], child.id());
    // Stop it as Ctrl-C would: it drains, commits and exits 0.
    crate::support::interrupt(&child);
    let out = child.wait_with_output().expect("exits");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.ends_with("accounting: read=4 written=2 dead_lettered=2 filtered=0\n"),
        "{stdout}"
    );
    assert!(stderr.contains("reload (file change): applied"), "{stderr}");
    assert!(
        !s.path(".ferry/p.pid").exists(),
        "the pid file is removed on exit"
    );
    let _ = path;
}

#[test]
fn a_pipeline_added_by_a_reload_takes_its_lock_and_a_removed_one_releases_it() {
    use ferry_pipeline::{Ownership, owner::holder};
    let s = Sandbox::new();
    s.write("in/p.jsonl", &records(&["a"]));
    s.write("in/q.jsonl", &records(&["x"]));
    let dir = s.path("manifests");
    std::fs::create_dir_all(&dir).expect("dir");
    let p = write_manifest(&s, "manifests/p.toml", &manifest_in("../", "p", "none", ""));
    let (p_state, q_state) = (s.path(".ferry/p.db"), s.path(".ferry/q.db"));
    let me = std::process::id();
    let rt = rt();
    rt.block_on(async {
        let mut sup = start(&s, &dir);
        committed(&sup, "p", 1).await;
        assert_eq!(
            holder(&p_state, "p").expect("look").map(|h| h.pid),
            Some(me)
        );
        // Another owner holds q: adding q rolls the reload back, naming it.
        let other = Ownership::take(&q_state, "q", "ferry dlq replay").expect("q's lock");
        write_manifest(&s, "manifests/q.toml", &manifest_in("../", "q", "none", ""));
        let event = sup.reload(std::slice::from_ref(&dir), "test").await;
        assert_eq!(event.outcome, ReloadOutcome::RolledBack, "{event}");
        let reason = event.reason.clone().unwrap_or_default();
        assert!(
            reason.contains("pipeline `q` is already served by `ferry dlq replay` on host ")
                && reason.contains(&format!(", pid {me}, since ")),
            "{event}"
        );
        assert_eq!(
            sup.running().into_iter().map(|r| r.0).collect::<Vec<_>>(),
            ["p"]
        );
        // Once it is free, the reload adds q, which takes the lock.
        drop(other);
        let event = sup.reload(std::slice::from_ref(&dir), "test").await;
        assert!(
            matches!(&event.changes[..], [ReloadChange::Added { pipeline }] if pipeline == "q"),
            "{event}"
        );
        committed(&sup, "q", 1).await;
        let q_holder = holder(&q_state, "q").expect("look").expect("q held");
        assert_eq!((q_holder.pid, q_holder.command.as_str()), (me, "ferry run"));
        // Removing p releases its lock, after its last commit.
        std::fs::remove_file(&p).expect("remove");
        let event = sup.reload(std::slice::from_ref(&dir), "test").await;
        assert!(
            matches!(&event.changes[..], [ReloadChange::Removed { pipeline }] if pipeline == "p"),
            "{event}"
        );
        assert_eq!(holder(&p_state, "p").expect("look"), None);
        assert!(holder(&q_state, "q").expect("look").is_some());
        sup.shutdown();
        sup.wait().await;
        assert_eq!(holder(&q_state, "q").expect("look"), None);
    });
}
