//! `ferry audit`: what each plugin of a manifest may touch, for a reviewer.
//!
//! For every plugin: the wasm file, its sha256 and whether it matches the
//! pinned one, the plugin interfaces it exports, its grants, every interface
//! the component imports with the grant class that covers it, grants it
//! does not use, and everything the planner would refuse (the same checks as
//! `ferry run`, from `ferry_pipeline::check_plugin`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use ferry_host::{Capability, Component};
use ferry_manifest::{Manifest, Plugin};
use serde_json::{Value, json};

/// What the audit found about one plugin.
struct Audited {
    report: Value,
    refused: bool,
}

pub(crate) fn audit(path: &Path, as_json: bool) -> Result<ExitCode> {
    let runtime = crate::runtime()?;
    let mut manifests = Vec::new();
    let mut refused = false;
    for file in crate::manifest_paths(path)? {
        let manifest = match ferry_manifest::load(&file) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("{e}");
                return Ok(ExitCode::FAILURE);
            }
        };
        let plugins: Vec<Audited> = manifest
            .plugins
            .values()
            .map(|p| audit_plugin(&manifest, p, &runtime))
            .collect();
        refused |= plugins.iter().any(|p| p.refused);
        manifests.push(json!({
            "manifest": manifest.path.display().to_string(),
            "pipeline": manifest.pipeline.name,
            "plugins": plugins.into_iter().map(|p| p.report).collect::<Vec<_>>(),
        }));
    }
    if as_json {
        let out = if manifests.len() == 1 {
            manifests.remove(0)
        } else {
            json!({ "manifests": manifests })
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for m in &manifests {
            print_text(m);
        }
    }
    Ok(if refused {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn audit_plugin(manifest: &Manifest, plugin: &Plugin, runtime: &ferry_host::Runtime) -> Audited {
    let grants = json!({
        "files": plugin.grants.files.iter().map(|g| json!({
            "host": g.host.display().to_string(),
            "guest": g.guest,
            "mode": g.mode.as_str(),
        })).collect::<Vec<_>>(),
        "env": plugin.grants.env.iter().map(|g| match &g.value {
            ferry_manifest::EnvValue::Literal(v) => json!({ "name": g.name, "value": v }),
            ferry_manifest::EnvValue::FromHost(h) => json!({ "name": g.name, "from_env": h }),
        }).collect::<Vec<_>>(),
        "network": plugin.grants.network.iter().map(|g| g.text.clone()).collect::<Vec<_>>(),
        "sql": plugin.grants.sql.iter().map(|g| {
            let connection = manifest.connections.get(&g.name);
            json!({
                "name": g.name,
                "target": connection.map(|c| c.target.display()),
                "tls": connection.map(|c| match c.tls {
                    ferry_manifest::TlsMode::Disable => "disable",
                    ferry_manifest::TlsMode::Require => "require",
                    ferry_manifest::TlsMode::VerifyFull => "verify-full",
                }),
            })
        }).collect::<Vec<_>>(),
        "memory_mb": plugin.grants.memory_mb,
        "timeout_ms": plugin.grants.timeout.as_millis() as u64,
        "fuel": plugin.grants.fuel,
        "max_output_mb": plugin.grants.max_output_mb,
    });
    let mut report = json!({
        "name": plugin.name,
        "kind": plugin.kind.as_str(),
        "wasm": plugin.wasm.display().to_string(),
        "pinned_sha256": plugin.sha256,
        "grants": grants,
    });
    let component = match Component::load(runtime, &plugin.wasm) {
        Ok(c) => c,
        Err(e) => {
            report["sha256"] = Value::Null;
            report["digest_ok"] = json!(false);
            report["world"] = Value::Null;
            report["imports"] = json!([]);
            report["refused"] = json!([e.to_string()]);
            return Audited {
                report,
                refused: true,
            };
        }
    };
    let info = component.info();
    let findings = ferry_pipeline::check_plugin(plugin, &component);
    let imports =
        |capability: Capability| info.imports.iter().any(|i| Capability::of(i) == capability);
    let mut unused = Vec::new();
    if !plugin.grants.files.is_empty() && !imports(Capability::Files) {
        unused.push("files: the component imports no wasi:filesystem interface".to_string());
    }
    if !plugin.grants.sql.is_empty() && !imports(Capability::Sql) {
        unused.push("sql: the component imports no ferry:plugin/sql interface".to_string());
    }
    report["sha256"] = json!(component.digest());
    report["digest_ok"] = json!(
        plugin
            .sha256
            .as_deref()
            .is_none_or(|p| p == component.digest())
    );
    report["digest_pinned"] = json!(plugin.sha256.is_some());
    report["world"] = json!(
        info.worlds
            .iter()
            .map(|w| w.qualified())
            .collect::<Vec<_>>()
    );
    report["size_bytes"] = json!(info.size);
    report["imports"] = json!(
        info.imports
            .iter()
            .map(|i| json!({ "name": i, "capability": Capability::of(i).as_str() }))
            .collect::<Vec<_>>()
    );
    report["unused_grants"] = json!(unused);
    report["refused"] = json!(
        findings
            .iter()
            .map(|f| manifest
                .diagnostic(f.span, f.message.clone(), f.hint.clone())
                .to_string())
            .collect::<Vec<_>>()
    );
    Audited {
        refused: !findings.is_empty(),
        report,
    }
}

fn print_text(m: &Value) {
    println!(
        "manifest {} (pipeline `{}`)",
        m["manifest"].as_str().unwrap_or(""),
        m["pipeline"].as_str().unwrap_or("")
    );
    for p in m["plugins"].as_array().into_iter().flatten() {
        println!();
        println!(
            "plugin `{}` ({})",
            p["name"].as_str().unwrap_or(""),
            p["kind"].as_str().unwrap_or("")
        );
        println!("  wasm      {}", p["wasm"].as_str().unwrap_or(""));
        match (p["sha256"].as_str(), p["pinned_sha256"].as_str()) {
            (Some(d), None) => println!("  sha256    {d} (not pinned in the manifest)"),
            (Some(d), Some(pinned)) if d == pinned => {
                println!("  sha256    {d} (matches the pinned digest)")
            }
            (Some(d), Some(pinned)) => {
                println!("  sha256    {d} (DIFFERS from the pinned {pinned})")
            }
            (None, _) => println!("  sha256    - (the component could not be loaded)"),
        }
        let worlds: Vec<&str> = p["world"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        println!(
            "  exports   {}",
            if worlds.is_empty() {
                "-".to_string()
            } else {
                worlds.join(", ")
            }
        );
        let g = &p["grants"];
        let files: Vec<String> = g["files"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                format!(
                    "{} as {} ({})",
                    f["host"].as_str().unwrap_or(""),
                    f["guest"].as_str().unwrap_or(""),
                    f["mode"].as_str().unwrap_or("")
                )
            })
            .collect();
        println!(
            "  files     {}",
            if files.is_empty() {
                "none (no folder is visible)".to_string()
            } else {
                files.join("; ")
            }
        );
        let network: Vec<&str> = g["network"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        println!(
            "  network   {}",
            if network.is_empty() {
                "none".to_string()
            } else {
                network.join(", ")
            }
        );
        let sql: Vec<String> = g["sql"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "{} = {} (tls {})",
                    c["name"].as_str().unwrap_or(""),
                    c["target"].as_str().unwrap_or("?"),
                    c["tls"].as_str().unwrap_or("?")
                )
            })
            .collect();
        println!(
            "  sql       {}",
            if sql.is_empty() {
                "none".to_string()
            } else {
                sql.join("; ")
            }
        );
        let env: Vec<String> = g["env"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| match (e["value"].as_str(), e["from_env"].as_str()) {
                (Some(v), _) => format!("{}={v}", e["name"].as_str().unwrap_or("")),
                (None, Some(h)) => {
                    format!("{} (from the host's {h})", e["name"].as_str().unwrap_or(""))
                }
                _ => String::new(),
            })
            .collect();
        println!(
            "  env       {}",
            if env.is_empty() {
                "none (the plugin sees an empty environment)".to_string()
            } else {
                env.join("; ")
            }
        );
        let fuel = match g["fuel"].as_u64() {
            Some(f) => format!(", {f} fuel per call"),
            None => String::new(),
        };
        println!(
            "  limits    memory {} MiB, {} ms per call{fuel}, answers up to {} MiB",
            g["memory_mb"], g["timeout_ms"], g["max_output_mb"]
        );
        println!("  imports");
        for i in p["imports"].as_array().into_iter().flatten() {
            println!(
                "    {:<44} {}",
                i["name"].as_str().unwrap_or(""),
                i["capability"].as_str().unwrap_or("")
            );
        }
        for u in p["unused_grants"].as_array().into_iter().flatten() {
            println!("  unused    {}", u.as_str().unwrap_or(""));
        }
        for r in p["refused"].as_array().into_iter().flatten() {
            println!("  REFUSED");
            for line in r.as_str().unwrap_or("").lines() {
                println!("    {line}");
            }
        }
    }
    println!();
}
