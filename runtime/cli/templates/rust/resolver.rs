//! `{{name}}`: a ferry conflict resolver. The version with the larger
//! integer in its config's `field` (default `updated_at`) wins; a tie is
//! left to a person.
//!
//! ```toml
//! [plugins.{{name}}]
//! kind = "resolver"
//! wasm = "{{name}}.wasm"
//! config = { field = "updated_at" }
//! ```

use std::cmp::Ordering;

use ferry_plugin::{Batch, PluginError, Resolutions, Resolver, Value};

/// The `config` table.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The integer field that orders versions.
    #[serde(default = "default_field")]
    field: String,
}

fn default_field() -> String {
    "updated_at".to_string()
}

/// The plugin.
pub struct {{Type}} {
    field: String,
}

impl Resolver for {{Type}} {
    type Config = Config;

    fn open(config: Config) -> Result<Self, PluginError> {
        Ok({{Type}} {
            field: config.field,
        })
    }

    fn resolve(
        &mut self,
        local: &Batch,
        remote: &Batch,
        out: &mut Resolutions,
    ) -> Result<(), PluginError> {
        let stamp = |v: Value<'_>| match v {
            Value::Int(n) => n,
            _ => i64::MIN,
        };
        for (l, r) in local.rows().zip(remote.rows()) {
            let (a, b) = (stamp(l.get(&self.field)), stamp(r.get(&self.field)));
            match a.cmp(&b) {
                Ordering::Less => out.take_remote(),
                Ordering::Greater => out.keep_local(),
                Ordering::Equal => out.defer(format!("both sides have {} = {a}", self.field)),
            }
        }
        Ok(())
    }
}

ferry_plugin::export_resolver!({{Type}}, wit = "wit");
