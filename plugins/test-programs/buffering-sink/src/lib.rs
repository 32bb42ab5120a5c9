//! `test-buffering-sink`: a sink that keeps every write in memory and
//! appends it to a file only at `flush`, as a sink batching its target's
//! requests may do, and traps on purpose. Not a user plugin: it shows what
//! the host does with writes a trap takes away before their flush.
//!
//! | key | meaning |
//! |---|---|
//! | `path` | the file `flush` appends one line per written key to |
//! | `trap_keys` | keys whose `write` traps (before it buffers anything of the batch) |
//! | `trap_flush_marker` | a path: the first `flush` that finds no file there creates it and traps, so one flush (in one run) traps and the others work |
//!
//! ```toml
//! [plugins.buffered]
//! kind = "sink"
//! wasm = "../../plugins/dist/test-buffering-sink.wasm"
//! config = { path = "/out/keys.txt", trap_keys = ["13"] }
//! grants = { files = [{ host = "out", guest = "/out", mode = "rw" }] }
//! ```

use std::io::Write;

use ferry_plugin::{Batch, PluginError, Sink, WriteReport};

/// The sink's config.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where flushed keys go.
    pub path: String,
    /// Keys whose write traps.
    #[serde(default)]
    pub trap_keys: Vec<String>,
    /// See the crate docs.
    #[serde(default)]
    pub trap_flush_marker: Option<String>,
}

/// The sink: keys written since the last flush.
#[derive(Debug)]
pub struct BufferingSink {
    config: Config,
    buffered: Vec<String>,
}

impl Sink for BufferingSink {
    type Config = Config;

    fn open(config: Config) -> Result<Self, PluginError> {
        Ok(BufferingSink {
            config,
            buffered: Vec::new(),
        })
    }

    fn write(&mut self, records: &Batch) -> Result<WriteReport, PluginError> {
        if let Some(k) = records
            .rows()
            .find(|r| self.config.trap_keys.iter().any(|t| t == r.key()))
        {
            trap(&format!("key {:?}", k.key()));
        }
        self.buffered
            .extend(records.rows().map(|r| r.key().to_string()));
        Ok(WriteReport::ok())
    }

    fn flush(&mut self) -> Result<(), PluginError> {
        if let Some(marker) = &self.config.trap_flush_marker
            && std::fs::metadata(marker).is_err()
        {
            std::fs::write(marker, b"trapped\n")
                .map_err(|e| PluginError::fatal(format!("cannot create {marker:?}: {e}")))?;
            trap("flush");
        }
        let mut text = String::new();
        for k in self.buffered.drain(..) {
            text.push_str(&k);
            text.push('\n');
        }
        let io = |e: std::io::Error| PluginError::retryable(format!("{:?}: {e}", self.config.path));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.config.path)
            .map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_data().map_err(io)
    }
}

/// Stops the instance with a trap, saying why on stderr.
fn trap(what: &str) -> ! {
    eprintln!("trapping on purpose: {what}");
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

// This crate sits one folder deeper than the plugins, hence `wit`.
ferry_plugin::export_sink!(BufferingSink, wit = "../../../wit");
