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
    for crate_dir in members(&plugins) {
        let Some(name) = package_name(&crate_dir) else {
            continue;
        };
        if name == "ferry-plugin" {
            continue;
        }
        let file = name.replace('-', "_");
        let built = out_wasm.join(format!("{file}.wasm"));
        if !built.is_file() {
            continue;
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

/// Crate folders listed in the plugins workspace's `members`.
fn members(plugins: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(plugins.join("Cargo.toml")).unwrap_or_default();
    let Some(start) = text.find("members") else {
        return Vec::new();
    };
    let rest = &text[start..];
    let Some(open) = rest.find('[') else {
        return Vec::new();
    };
    let Some(close) = rest.find(']') else {
        return Vec::new();
    };
    rest[open + 1..close]
        .split(',')
        .map(|s| s.trim().trim_matches('"'))
        .filter(|s| !s.is_empty() && !s.starts_with('#'))
        .map(|s| plugins.join(s))
        .collect()
}

fn package_name(crate_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(crate_dir.join("Cargo.toml")).ok()?;
    let line = text.lines().find(|l| l.trim_start().starts_with("name"))?;
    Some(line.split('=').nth(1)?.trim().trim_matches('"').to_string())
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
