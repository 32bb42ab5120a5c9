//! `{{name}}`: a ferry sink. It appends each record's fields as one JSON
//! line to its config's `path` (default `/out/records.jsonl`, in a folder
//! the manifest grants read-write). A JSON Lines file cannot delete a
//! record, so deletes are rejected (they go to the dead-letter store).
//!
//! ```toml
//! [plugins.{{name}}]
//! kind = "sink"
//! wasm = "{{name}}.wasm"
//! config = { path = "/out/records.jsonl" }
//! grants = { files = [{ host = "out", guest = "/out", mode = "rw" }] }
//! ```

use std::io::Write;

use ferry_plugin::{Batch, Op, PluginError, Sink, WriteReport};

/// The `config` table.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The file to append to.
    #[serde(default = "default_path")]
    path: String,
}

fn default_path() -> String {
    "/out/records.jsonl".to_string()
}

/// The plugin.
pub struct {{Type}} {
    file: std::fs::File,
}

impl Sink for {{Type}} {
    type Config = Config;

    fn open(config: Config) -> Result<Self, PluginError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.path)
            .map_err(|e| PluginError::fatal(format!("cannot open {}: {e}", config.path)))?;
        Ok({{Type}} { file })
    }

    fn write(&mut self, records: &Batch) -> Result<WriteReport, PluginError> {
        let mut report = WriteReport::ok();
        let mut lines = String::new();
        for row in records.rows() {
            if row.op() == Op::Delete {
                report.reject(&row, "a JSON Lines file cannot delete a record");
                continue;
            }
            lines.push_str(&row.to_json().to_string());
            lines.push('\n');
        }
        self.file
            .write_all(lines.as_bytes())
            .map_err(|e| PluginError::retryable(format!("cannot write: {e}")))?;
        Ok(report)
    }

    fn flush(&mut self) -> Result<(), PluginError> {
        self.file
            .sync_data()
            .map_err(|e| PluginError::retryable(format!("cannot flush: {e}")))
    }
}

ferry_plugin::export_sink!({{Type}}, wit = "wit");
