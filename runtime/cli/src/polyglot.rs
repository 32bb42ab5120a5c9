//! Python and JavaScript plugin projects for `ferry plugin new` and
//! `ferry plugin build`.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// The template files of a Python or JavaScript plugin of `kind`.
pub(crate) fn files(lang: &str, kind: &str) -> Result<Vec<(&'static str, &'static str)>> {
    bail!("`--lang {lang}` plugins ({kind}) cannot be scaffolded by this build yet")
}

/// Builds the Python or JavaScript project in `dir`, if it is one.
pub(crate) fn build(dir: &Path) -> Result<Option<PathBuf>> {
    let _ = dir;
    Ok(None)
}
