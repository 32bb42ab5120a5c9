//! Which state databases a command reads (the manifests' `state` files),
//! and who runs the command, for the audit log.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use ferry_manifest::Manifest;
use ferry_state::SqliteState;

use crate::manifest_paths;

/// The state databases a `dlq` path names.
pub(crate) fn state_paths(path: Option<&Path>) -> Result<Vec<PathBuf>> {
    Ok(state_targets(path)?.into_iter().map(|(p, _)| p).collect())
}

/// The state databases a `dlq` path names, each with the pipelines of the
/// manifests that use it (none when the path names a database, or nothing).
pub(crate) fn state_targets(path: Option<&Path>) -> Result<Vec<(PathBuf, Vec<String>)>> {
    let Some(path) = path else {
        let default = PathBuf::from(".ferry/state.db");
        if default.is_file() {
            return Ok(vec![(default, Vec::new())]);
        }
        bail!(
            "no state database at ./.ferry/state.db; name the pipeline's manifest, e.g. `ferry dlq list examples/quickstart/pipeline.toml`"
        );
    };
    if path.is_file() && path.extension().is_none_or(|x| x != "toml") {
        return Ok(vec![(path.to_path_buf(), Vec::new())]);
    }
    let mut out: Vec<(PathBuf, Vec<String>)> = Vec::new();
    for file in manifest_paths(path)? {
        let m: Manifest = ferry_manifest::load(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
        let name = m.pipeline.name.clone();
        match out.iter_mut().find(|(p, _)| *p == m.pipeline.state) {
            Some((_, pipelines)) => pipelines.push(name),
            None => out.push((m.pipeline.state.clone(), vec![name])),
        }
    }
    Ok(out)
}

pub(crate) fn open_state(path: &Path) -> Result<SqliteState> {
    if !path.is_file() {
        bail!(
            "no state database at {} yet: the pipeline has not run",
            path.display()
        );
    }
    Ok(SqliteState::open(path)?)
}

/// Who runs this command, for the audit log: `$USER` (or `$USERNAME`).
pub(crate) fn operator() -> Option<String> {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .ok()
        .filter(|u| !u.is_empty())
}
