//! `ferry-manifest`: the pipeline manifest — its TOML schema, strict parsing,
//! and the checks that make a set of plugins and routes a pipeline.
//!
//! This crate owns step 1 of a record's life in ferry: an operator's
//! `pipeline.toml` becomes a [`Manifest`], or a list of everything wrong with it.
//! It knows nothing of WebAssembly or of running things (no wasmtime, no tokio):
//! it does not open the `.wasm` files nor check their digests. The planner
//! (`ferry-pipeline::plan`) does that next, and reports what it finds through
//! [`Manifest::diagnostic`] so its errors look like these.
//!
//! # The schema
//!
//! ```toml
//! [pipeline]
//! name = "contacts-to-warehouse"     # [a-z0-9][a-z0-9_-]*
//! mode = "once"                      # once | follow | schedule
//! schedule = "*/15 * * * *"          # schedule mode only: 5 cron fields in UTC, or "every 15m" (s, m, h, d)
//! batch = { max_records = 512, max_wait_ms = 200 }
//! poll_interval_ms = 500             # follow mode: wait between polls of a caught-up source
//! state = ".ferry/state.db"          # relative to the manifest's folder
//!
//! [connections.ops]                  # a named SQL connection: [a-z][a-z0-9_-]*
//! url = "postgres://ferry@db.internal:5432/ops"   # or "sqlite:warehouse.db" (relative to the manifest)
//! password_env = "OPS_PASSWORD"      # the password comes from ferry's environment, never the manifest (nor `user:pass@` nor `?password=` in the URL)
//! tls = "verify-full"                # disable (default) | require | verify-full
//! ca_file = "certs/ca.pem"           # optional, for verify-full against a private CA
//! pool = 4                           # most connections open at once (1 to 64)
//!
//! [plugins.crm]                      # a plugin (a stage): [a-z][a-z0-9_-]*
//! kind = "source"                    # source | sink | mapper | validator | resolver | connector
//! wasm = "../../plugins/dist/file.wasm"
//! sha256 = "9f2c…"                   # 64 lowercase hex characters, optional
//! config = { path = "/in/contacts.jsonl" }   # any table; the plugin gets it as JSON
//! grants = { files = [{ host = "data", guest = "/in", mode = "ro" }], memory_mb = 64, timeout_ms = 2000 }
//! # a database connector: grants = { sql = ["ops"] } (names of [connections.*] tables)
//!
//! [[routes]]
//! from = "crm"                       # the source, or a stage of an earlier route (a tap)
//! through = ["to_warehouse", "rules"]    # mappers and validators, in order
//! to = ["warehouse"]                 # sinks
//! when = { field = "region", equals = "EU" }   # or not_equals, in = [...], exists = true
//! on_invalid = "dead-letter"         # dead-letter | drop | stop
//! ```
//!
//! A two-way sync manifest has a `[sync]` table instead of routes: two
//! `connector` plugins kept alike, how changes are detected and conflicts
//! settled (see [`SyncSpec`] and `docs/two-way-sync.md`).
//!
//! Relative paths (`wasm`, `state`, a file grant's `host`) are resolved against
//! the manifest's folder, never against the working directory, so a manifest
//! means the same thing wherever `ferry` is started.
//!
//! # Raw, then resolved
//!
//! Two sets of types, as in Vector's config compiler and Spin's manifest crate:
//! the raw ones (private, in `raw`) are what serde reads, with
//! `deny_unknown_fields` on every table; the resolved ones ([`Manifest`],
//! [`Pipeline`], [`Plugin`], [`Route`], ...) are what the rest of the runtime
//! uses. Having a resolved value means it was checked: defaults are filled in,
//! numbers are in range, names refer to declared plugins of the right kind, and
//! the routes form a tree rooted at the one source.
//!
//! # Every error at once
//!
//! An operator fixing a manifest should see every mistake in one run, each at
//! its line and column, with a hint. A TOML syntax error is the one exception:
//! it is reported alone. Otherwise the document is parsed with spans and each
//! section — `[pipeline]`, each plugin, each route — is deserialized on its own.
//! Inside a section, when serde stops at an error, the entry at fault is found
//! by its span, reported, taken out of a working copy, and the section is read
//! again, so three mistakes in one table are three errors too, and what is left
//! still gets resolved and checked. The semantic rules then run over whatever
//! could be read, careful not to pile on: a misspelt plugin name is one error,
//! not also an "unused plugin". All [`Diagnostic`]s come back in source order in
//! one [`ManifestError`], whose `Display` renders them like rustc:
//!
//! ```text
//! error: unknown field `mdoe` in [pipeline]
//!  --> examples/bad/pipeline.toml:3:1
//!   |
//! 3 | mdoe = "once"
//!   | ^^^^
//!   = help: expected one of `name`, `mode`, `schedule`, `batch`, `poll_interval_ms`, `state`; did you mean `mode`?
//!
//! 1 error in examples/bad/pipeline.toml
//! ```
//!
//! # Example
//!
//! ```
//! use std::path::Path;
//!
//! let text = r#"
//! [pipeline]
//! name = "contacts"
//!
//! [plugins.crm]
//! kind = "source"
//! wasm = "plugins/file.wasm"
//!
//! [plugins.warehouse]
//! kind = "sink"
//! wasm = "plugins/file.wasm"
//!
//! [[routes]]
//! from = "crm"
//! to = ["warehouse"]
//! "#;
//! let manifest = ferry_manifest::parse(text, Path::new("examples/contacts/pipeline.toml")).unwrap();
//! assert_eq!(manifest.pipeline.batch.max_records, 512);
//! assert_eq!(manifest.plugins["crm"].wasm, Path::new("examples/contacts/plugins/file.wasm"));
//!
//! let error = ferry_manifest::parse("[pipeline]\nname = \"x\"\nmdoe = \"once\"\n", Path::new("bad.toml"))
//!     .unwrap_err();
//! assert!(error.to_string().contains("did you mean `mode`?"));
//! ```

mod compile;
mod diagnostic;
mod document;
mod model;
mod raw;
mod resolve;
mod rules;
mod schedule;
mod suggest;
mod sync;
mod url;

use std::path::Path;

pub use diagnostic::{Diagnostic, ManifestError, Span};
pub use model::{
    Access, BatchPolicy, Condition, Connection, ConnectionTarget, EnvGrant, EnvValue, FileGrant,
    Grants, Manifest, Mode, NetworkGrant, OnInvalid, Pipeline, PipelineSpans, Plugin, PluginKind,
    PluginSpans, RetryPolicy, Route, RouteSpans, Scalar, SqlGrant, Test, TlsMode,
};
pub use schedule::Schedule;
pub use sync::{Detect, ForeignChange, Side, Strategy, SyncSide, SyncSpec};
pub use url::{PasswordIn, is_password_param, password_in, redact_url};

/// Reads and checks the manifest at `path`.
///
/// Relative paths in the manifest are resolved against `path`'s folder.
/// Diagnostics show `path` as given.
///
/// # Errors
///
/// [`ManifestError::Read`] if the file cannot be read (it names the path), and
/// [`ManifestError::Invalid`] with every mistake found otherwise.
pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|io| ManifestError::Read {
        path: path.to_path_buf(),
        io,
    })?;
    parse(&text, path)
}

/// Checks a manifest's text; `path` is where it came from, shown in diagnostics
/// and used to resolve relative paths (the file is not read).
///
/// # Errors
///
/// [`ManifestError::Invalid`] with every mistake found.
pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
    compile::compile(text, path)
}

#[cfg(test)]
mod tests;
