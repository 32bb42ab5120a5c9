//! `{{name}}`: a ferry validator. Every field named in its config's
//! `required` list (default `["id"]`) must be present and, if text, not
//! blank.
//!
//! ```toml
//! [plugins.{{name}}]
//! kind = "validator"
//! wasm = "{{name}}.wasm"
//! config = { required = ["id", "email"] }
//! ```

use ferry_plugin::{Batch, PluginError, Validator, Value, Violations};

/// The `config` table.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The fields every record must have.
    #[serde(default = "default_required")]
    required: Vec<String>,
}

fn default_required() -> Vec<String> {
    vec!["id".to_string()]
}

/// The plugin.
pub struct {{Type}} {
    required: Vec<String>,
}

impl Validator for {{Type}} {
    type Config = Config;

    fn open(config: Config) -> Result<Self, PluginError> {
        Ok({{Type}} {
            required: config.required,
        })
    }

    fn validate(&mut self, records: &Batch, out: &mut Violations) -> Result<(), PluginError> {
        for row in records.rows() {
            for field in &self.required {
                match row.get(field) {
                    Value::Null => {
                        out.field(&row, field, "required", format!("`{field}` is required"));
                    }
                    Value::Text(text) if text.trim().is_empty() => {
                        out.field(&row, field, "required", format!("`{field}` is empty"));
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

ferry_plugin::export_validator!({{Type}}, wit = "wit");
