//! `{{name}}`: a ferry mapper. It upper-cases the text field named by its
//! config's `field` (default `name`) and keeps every other field as it is.
//!
//! ```toml
//! [plugins.{{name}}]
//! kind = "mapper"
//! wasm = "{{name}}.wasm"
//! config = { field = "name" }
//! ```

use ferry_plugin::{Batch, Mapped, Mapper, PluginError, Value};

/// The `config` table.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The field to upper-case.
    #[serde(default = "default_field")]
    field: String,
}

fn default_field() -> String {
    "name".to_string()
}

/// The plugin.
pub struct {{Type}} {
    field: String,
}

impl Mapper for {{Type}} {
    type Config = Config;

    fn open(config: Config) -> Result<Self, PluginError> {
        Ok({{Type}} {
            field: config.field,
        })
    }

    fn map(&mut self, input: &Batch, out: &mut Mapped) -> Result<(), PluginError> {
        for row in input.rows() {
            let upper = match row.get(&self.field) {
                Value::Text(text) => Some(text.to_uppercase()),
                _ => None,
            };
            let mut record = out.emit_copy(&row);
            if let Some(upper) = &upper {
                record.set(&self.field, upper.as_str());
            }
        }
        Ok(())
    }
}

ferry_plugin::export_mapper!({{Type}}, wit = "wit");
