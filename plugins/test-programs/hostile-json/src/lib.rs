//! `test-hostile-json`: a mapper that writes malformed JSON into a `json`
//! column for the records whose key is in `bad_keys`, and a valid document
//! for the others, for the JSON column test. Not a user plugin.
//!
//! The SDK does not check the text it is given for a `json` value
//! (`set_json`), so the malformed text reaches the host as a plugin written
//! against the WIT alone would send it.
//!
//! ```toml
//! [plugins.json]
//! kind = "mapper"
//! wasm = "…/test-hostile-json.wasm"
//! config = { bad_keys = ["3", "7"], bad = "{[" }
//! ```

use ferry_plugin::{Batch, Mapped, Mapper, PluginError};

/// Which records get which text.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The keys whose `doc` is malformed.
    #[serde(default)]
    pub bad_keys: Vec<String>,
    /// The malformed text.
    #[serde(default = "default_bad")]
    pub bad: String,
}

fn default_bad() -> String {
    "{[".to_string()
}

/// The mapper.
pub struct HostileJson(Config);

impl Mapper for HostileJson {
    type Config = Config;

    fn open(config: Config) -> Result<Self, PluginError> {
        Ok(HostileJson(config))
    }

    fn map(&mut self, input: &Batch, out: &mut Mapped) -> Result<(), PluginError> {
        for row in input.rows() {
            let key = row.key();
            let doc = if self.0.bad_keys.iter().any(|k| k == key) {
                self.0.bad.clone()
            } else {
                format!("{{\"row\":{},\"ok\":[true]}}", row.index())
            };
            out.emit_copy(&row).set_json("doc", &doc);
        }
        Ok(())
    }
}

// This crate sits one folder deeper than the plugins, hence `wit`.
ferry_plugin::export_mapper!(HostileJson, wit = "../../../wit");
