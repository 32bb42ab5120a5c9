//! `{{name}}`: a ferry conflict resolver. Of two edited versions, the one
//! with the larger integer in its config's `field` (default `updated_at`)
//! wins; a tie, and a delete on either side, are left to a person.
//!
//! ```toml
//! [plugins.{{name}}]
//! kind = "resolver"
//! wasm = "{{name}}.wasm"
//! config = { field = "updated_at" }
//! ```

use std::cmp::Ordering;

use ferry_plugin::{Batch, Op, PluginError, Resolutions, Resolver, Value};

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

    /// Row `i` of `left`, `right` and `ancestor` (the version both sides
    /// last agreed on; this resolver does not need it) is the same key; a
    /// `delete` row is a version where the key does not exist.
    fn resolve(
        &mut self,
        left: &Batch,
        right: &Batch,
        _ancestor: &Batch,
        out: &mut Resolutions,
    ) -> Result<(), PluginError> {
        let stamp = |v: Value<'_>| match v {
            Value::Int(n) => n,
            _ => i64::MIN,
        };
        for (l, r) in left.rows().zip(right.rows()) {
            if l.op() == Op::Delete || r.op() == Op::Delete {
                let side = if l.op() == Op::Delete { "left" } else { "right" };
                out.defer(format!("deleted on the {side} side, edited on the other"));
                continue;
            }
            let (a, b) = (stamp(l.get(&self.field)), stamp(r.get(&self.field)));
            match a.cmp(&b) {
                Ordering::Less => out.take_right(),
                Ordering::Greater => out.take_left(),
                Ordering::Equal => out.defer(format!("both sides have {} = {a}", self.field)),
            }
        }
        Ok(())
    }
}

ferry_plugin::export_resolver!({{Type}}, wit = "wit");
