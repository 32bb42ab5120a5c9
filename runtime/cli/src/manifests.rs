//! Finding and planning manifests: `ferry validate`, `ferry lock` and
//! `ferry run`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use ferry_host::{Runtime, RuntimeOptions};

use crate::serve;

/// The manifests a path names: the file itself, or the `.toml` files of a
/// folder in name order.
pub(crate) fn manifest_paths(path: &Path) -> Result<Vec<PathBuf>> {
    if !path.exists() {
        bail!(
            "{} does not exist; give a manifest (.toml) or a folder of manifests",
            path.display()
        );
    }
    let files = ferry_pipeline::manifest_files(path)
        .with_context(|| format!("cannot read folder {}", path.display()))?;
    if files.is_empty() {
        bail!("no manifests (*.toml) in {}", path.display());
    }
    Ok(files)
}

pub(crate) fn runtime() -> Result<Runtime> {
    Ok(Runtime::new(RuntimeOptions {
        cache_dir: RuntimeOptions::default_cache_dir(),
    })?)
}

/// Loads and plans every manifest; prints every error of every manifest.
pub(crate) fn plan_all(
    path: &Path,
    runtime: &Runtime,
) -> Result<Option<Vec<ferry_pipeline::Plan>>> {
    let mut plans = Vec::new();
    let mut failed = false;
    for file in manifest_paths(path)? {
        let planned = ferry_manifest::load(&file).and_then(|m| ferry_pipeline::plan(m, runtime));
        match planned {
            Ok(p) => plans.push(p),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    Ok(if failed { None } else { Some(plans) })
}

pub(crate) fn validate(path: &Path) -> Result<ExitCode> {
    let runtime = runtime()?;
    let Some(plans) = plan_all(path, &runtime)? else {
        return Ok(ExitCode::FAILURE);
    };
    for p in &plans {
        let schedule = p
            .manifest
            .pipeline
            .schedule
            .as_ref()
            .map(|s| format!(", on schedule `{s}` (UTC)"))
            .unwrap_or_default();
        println!(
            "ok: {}: pipeline `{}`, {} stages{schedule}, every plugin loaded and checked",
            p.manifest.path.display(),
            p.name,
            p.stages.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run(path: &Path, quiet: bool, watching: bool, wait: bool) -> Result<ExitCode> {
    let runtime = runtime()?;
    let Some(plans) = plan_all(path, &runtime)? else {
        return Ok(ExitCode::FAILURE);
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(serve::serve(path, plans, quiet, watching, wait))
}

pub(crate) fn lock(path: &Path) -> Result<ExitCode> {
    for file in manifest_paths(path)? {
        match ferry_pipeline::lock(&file, ferry_pipeline::LockMode::All) {
            Ok(pinned) if pinned.is_empty() => {
                println!("{}: every digest already pinned", file.display())
            }
            Ok(pinned) => {
                for (name, digest) in pinned {
                    println!("{}: plugin `{name}`: sha256 = {digest}", file.display());
                }
            }
            Err(e) => {
                eprintln!("{e}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
