//! `test-env-probe`: a mapper that copies each record and adds a field `env`
//! holding every environment variable the plugin can see, as a JSON object.
//! The host's tests use it to check that a plugin sees exactly its granted
//! variables and nothing of the host's environment. Not a user plugin.
//!
//! ```toml
//! [plugins.probe]
//! kind = "mapper"
//! wasm = "../../plugins/dist/test-env-probe.wasm"
//! grants = { env = { MODE = "fast" } }
//! ```

use ferry_plugin::{Batch, Mapped, Mapper, PluginError};

/// The plugin; it takes no configuration.
pub struct EnvProbe;

impl Mapper for EnvProbe {
    type Config = ();

    fn open(_: ()) -> Result<Self, PluginError> {
        Ok(EnvProbe)
    }

    fn map(&mut self, input: &Batch, out: &mut Mapped) -> Result<(), PluginError> {
        let env: serde_json::Map<String, serde_json::Value> = std::env::vars()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        let env = serde_json::Value::Object(env);
        for row in input.rows() {
            out.emit_copy(&row).set_json_value("env", &env);
        }
        Ok(())
    }
}

ferry_plugin::export_mapper!(EnvProbe, wit = "../../../wit");
