//! Pinning plugin digests: `ferry lock` writes the sha256 of each plugin's
//! current wasm file into the manifest, editing it in place so comments and
//! layout stay. The planner refuses a plugin whose digest is not pinned, or
//! differs from the pinned one.

use std::path::{Path, PathBuf};

use ferry_manifest::Manifest;

/// Why a manifest could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The manifest is not valid.
    #[error(transparent)]
    Manifest(#[from] ferry_manifest::ManifestError),
    /// A plugin's wasm file could not be read.
    #[error("plugin `{plugin}`: cannot read {}: {source}", path.display())]
    Wasm {
        /// The plugin.
        plugin: String,
        /// Its wasm file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The manifest could not be edited or written.
    #[error("cannot update {}: {detail}", path.display())]
    Edit {
        /// The manifest.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

/// Which digests [`lock`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Every plugin's: pins the current builds, replacing digests that differ.
    All,
    /// Only plugins with no `sha256` yet whose wasm file exists.
    Missing,
}

/// Writes plugin digests into the manifest at `path`; returns the plugins
/// it pinned and their digests.
pub fn lock(path: &Path, mode: LockMode) -> Result<Vec<(String, String)>, LockError> {
    let manifest: Manifest = ferry_manifest::load(path)?;
    let edit = |detail: String| LockError::Edit {
        path: path.to_path_buf(),
        detail,
    };
    let mut doc: toml_edit::DocumentMut = manifest
        .source_text()
        .parse()
        .map_err(|e| edit(format!("{e}")))?;
    let mut pinned = Vec::new();
    for (name, plugin) in &manifest.plugins {
        if mode == LockMode::Missing && (plugin.sha256.is_some() || !plugin.wasm.is_file()) {
            continue;
        }
        let bytes = std::fs::read(&plugin.wasm).map_err(|source| LockError::Wasm {
            plugin: name.clone(),
            path: plugin.wasm.clone(),
            source,
        })?;
        let digest = ferry_host::sha256_hex(&bytes);
        if plugin.sha256.as_deref() == Some(digest.as_str()) {
            continue;
        }
        let table = doc
            .get_mut("plugins")
            .and_then(|p| p.get_mut(name.as_str()))
            .and_then(|t| t.as_table_like_mut())
            .ok_or_else(|| edit(format!("cannot find the table of plugin `{name}`")))?;
        table.insert("sha256", toml_edit::value(digest.clone()));
        pinned.push((name.clone(), digest));
    }
    if !pinned.is_empty() {
        std::fs::write(path, doc.to_string()).map_err(|e| edit(e.to_string()))?;
    }
    Ok(pinned)
}
