//! UI tests: each manifest in `tests/ui/` is loaded, and what an operator would
//! see — the rendered errors, or a compact view of the resolved manifest — is
//! compared with its snapshot in `tests/snapshots/`. A changed message fails the
//! test; review the new text, then accept it with `cargo insta review` (or
//! `INSTA_UPDATE=always`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use ferry_manifest::{Manifest, Scalar, Test};

/// What `ferry validate` would show for the manifest `tests/ui/<name>.toml`.
fn render(name: &str) -> String {
    // Relative on purpose: diagnostics show the path as given.
    let path = format!("tests/ui/{name}.toml");
    match ferry_manifest::load(Path::new(&path)) {
        Ok(manifest) => summary(&manifest),
        Err(error) => error.to_string(),
    }
}

/// A compact, stable view of a resolved manifest.
fn summary(manifest: &Manifest) -> String {
    let mut out = String::new();
    let p = &manifest.pipeline;
    writeln!(
        out,
        "manifest {} (dir {})",
        manifest.path.display(),
        manifest.dir.display()
    )
    .unwrap();
    writeln!(
        out,
        "pipeline {}: mode {}, batch {} records or {:?}, poll every {:?}, state {}",
        p.name,
        p.mode,
        p.batch.max_records,
        p.batch.max_wait,
        p.poll_interval,
        p.state.display()
    )
    .unwrap();
    for plugin in manifest.plugins.values() {
        let line = manifest.diagnostic(plugin.spans.header, "", None).line;
        writeln!(
            out,
            "plugin {} ({}, line {line}): wasm {}, sha256 {}, memory {} MiB, timeout {:?}",
            plugin.name,
            plugin.kind,
            plugin.wasm.display(),
            plugin.sha256.as_deref().unwrap_or("-"),
            plugin.grants.memory_mb,
            plugin.grants.timeout,
        )
        .unwrap();
        writeln!(out, "  config {}", canonical_json(&plugin.config)).unwrap();
        for file in &plugin.grants.files {
            writeln!(
                out,
                "  file {} -> {} ({})",
                file.host.display(),
                file.guest,
                file.mode
            )
            .unwrap();
        }
    }
    for (index, route) in manifest.routes.iter().enumerate() {
        let line = manifest.diagnostic(route.span, "", None).line;
        let mut stages = vec![route.from.clone()];
        stages.extend(route.through.iter().cloned());
        write!(
            out,
            "route #{} (line {line}): {} -> [{}], on_invalid {}",
            index + 1,
            stages.join(" -> "),
            route.to.join(", "),
            route.on_invalid
        )
        .unwrap();
        if let Some(when) = &route.when {
            let test = match &when.test {
                Test::Equals(value) => format!("== {value}"),
                Test::NotEquals(value) => format!("!= {value}"),
                Test::In(values) => format!(
                    "in [{}]",
                    values
                        .iter()
                        .map(Scalar::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Test::Exists(exists) => format!("exists = {exists}"),
            };
            write!(out, ", when {} {test}", when.field).unwrap();
        }
        out.push('\n');
    }
    out
}

/// JSON with object keys sorted, whatever serde_json's map order is.
fn canonical_json(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|key| format!("{key:?}: {}", canonical_json(&map[key])))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
        serde_json::Value::Array(items) => {
            format!(
                "[{}]",
                items
                    .iter()
                    .map(canonical_json)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        other => other.to_string(),
    }
}

macro_rules! ui_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let name = stringify!($name);
                insta::assert_snapshot!(name, render(name));
            }
        )*

        /// Every manifest in tests/ui has a test, and every test a manifest.
        #[test]
        fn every_ui_manifest_has_a_test() {
            let tested: BTreeSet<&str> = [$(stringify!($name)),*].into_iter().collect();
            let on_disk: BTreeSet<String> = std::fs::read_dir("tests/ui")
                .unwrap()
                .map(|entry| entry.unwrap().path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
                .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
                .collect();
            let on_disk: BTreeSet<&str> = on_disk.iter().map(String::as_str).collect();
            assert_eq!(tested, on_disk);
        }
    };
}

ui_tests!(
    valid,
    three_mistakes,
    syntax_error,
    wrong_kind,
    unused_plugin,
    missing_key,
    bad_when,
    two_sources,
    reused_stage,
    taps,
    resolver_in_route,
    bad_values,
    top_level,
    no_routes,
    wrong_shapes,
    sync_mistakes,
);

#[test]
fn a_missing_file_names_its_path() {
    let error = ferry_manifest::load(Path::new("tests/ui/no-such-manifest.toml")).unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with("cannot read manifest tests/ui/no-such-manifest.toml: "),
        "{text}"
    );
    assert!(error.diagnostics().is_empty());
    assert_eq!(error.path(), Path::new("tests/ui/no-such-manifest.toml"));
}
