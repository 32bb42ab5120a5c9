//! Builds every guest plugin of `plugins/` for `wasm32-wasip2` (release
#![allow(clippy::panic)] // a build script reports failure by panicking
//! profile, into `plugins/target`), copies them to `plugins/dist/` (where the
//! example manifests point), and writes `$OUT_DIR/plugins.rs` with a
//! constant holding each component's path and a `foreach_plugin!` macro.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let plugins = root.join("plugins");
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    for entry in walk(&plugins) {
        println!("cargo:rerun-if-changed={}", entry.display());
    }

    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // The outer cargo's settings (target, flags, profile) must not leak into
    // the guest build.
    for (key, _) in std::env::vars() {
        if (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || key.starts_with("RUSTC")
            || key == "RUSTFLAGS"
        {
            cmd.env_remove(&key);
        }
    }
    let status = cmd
        .current_dir(&plugins)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--workspace",
        ])
        .env("CARGO_TARGET_DIR", plugins.join("target"))
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the plugins: {e}"));
    assert!(
        status.success(),
        "building the guest plugins failed; run `bash scripts/setup.sh` (it installs the wasm32-wasip2 target) and see the errors above"
    );

    let out_wasm = plugins.join("target/wasm32-wasip2/release");
    let dist = plugins.join("dist");
    std::fs::create_dir_all(&dist)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dist.display()));
    let mut consts = String::new();
    let mut names = Vec::new();
    for (lib, name) in plugin_libraries(&plugins) {
        let built = out_wasm.join(format!("{lib}.wasm"));
        // Constants and test modules are named after the shipped file.
        let file = name.replace('-', "_");
        if !built.is_file() {
            panic!("{} is missing after the plugins' build", built.display());
        }
        let shipped = dist.join(format!("{name}.wasm"));
        copy_if_changed(&built, &shipped);
        let ident = file.to_uppercase();
        consts.push_str(&format!(
            "/// The `{name}` component.\npub const {ident}: &str = {:?};\n",
            shipped
                .canonicalize()
                .unwrap_or(shipped.clone())
                .display()
                .to_string()
        ));
        names.push(file);
    }
    consts.push_str(&format!(
        "/// Calls `$mac!` with the name of every guest plugin.\n#[macro_export]\nmacro_rules! foreach_plugin {{\n    ($mac:ident) => {{\n        $mac!({});\n    }};\n}}\n",
        names.join(", ")
    ));
    let out =
        PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into())).join("plugins.rs");
    std::fs::write(&out, consts).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}

fn copy_if_changed(from: &Path, to: &Path) {
    let new = std::fs::read(from).unwrap_or_else(|e| panic!("cannot read {}: {e}", from.display()));
    if std::fs::read(to).ok().as_deref() != Some(&new[..]) {
        std::fs::write(to, &new).unwrap_or_else(|e| panic!("cannot write {}: {e}", to.display()));
    }
}

/// The plugins: every package of the plugins workspace with a cdylib
/// target, as (library name, dist name), read from `cargo metadata` (the
/// same rule as plugins/build.sh): the library's `<lib>.wasm` ships as
/// `dist/<package name, without a ferry- prefix>.wasm`.
fn plugin_libraries(plugins: &Path) -> Vec<(String, String)> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (key, _) in std::env::vars() {
        if key.starts_with("CARGO_") && key != "CARGO_HOME" {
            cmd.env_remove(&key);
        }
    }
    let out = cmd
        .current_dir(plugins)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo metadata for the plugins: {e}"));
    assert!(
        out.status.success(),
        "cargo metadata failed for the plugins workspace: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("cargo metadata printed something else than JSON: {e}"));
    let mut libs = Vec::new();
    for package in meta["packages"].as_array().into_iter().flatten() {
        let name = package["name"].as_str().unwrap_or_default();
        for target in package["targets"].as_array().into_iter().flatten() {
            let cdylib = target["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "cdylib"));
            if cdylib && let Some(lib) = target["name"].as_str() {
                let dist = name.strip_prefix("ferry-").unwrap_or(name);
                libs.push((lib.to_string(), dist.to_string()));
            }
        }
    }
    libs.sort();
    libs
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        if name == "target" || name == "dist" || name == "node_modules" {
            continue;
        }
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p
            .extension()
            .is_some_and(|x| x == "rs" || x == "toml" || x == "wit")
        {
            out.push(p);
        }
    }
    out
}
