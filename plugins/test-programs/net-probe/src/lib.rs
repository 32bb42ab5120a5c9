//! `test-net-probe`: a mapper that tries to open a TCP connection for every
//! batch, for the host's capability tests. Not a user plugin.
//!
//! Because it uses `std::net`, the component imports `wasi:sockets`, which
//! no manifest can grant yet: the host must refuse it at plan time, before
//! it runs. If it ever runs, each record is rejected with what the
//! connection attempt gave, so a test would see it.
//!
//! ```toml
//! [plugins.probe]
//! kind = "mapper"
//! wasm = "../../plugins/dist/test-net-probe.wasm"
//! config = { connect = "127.0.0.1:9" }
//! ```

use ferry_plugin::{Batch, Mapped, Mapper, PluginError};

/// The `config` table.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `host:port` to connect to.
    pub connect: String,
}

/// The plugin.
pub struct NetProbe {
    connect: String,
}

impl Mapper for NetProbe {
    type Config = Config;

    fn open(config: Config) -> Result<Self, PluginError> {
        Ok(NetProbe {
            connect: config.connect,
        })
    }

    fn map(&mut self, input: &Batch, out: &mut Mapped) -> Result<(), PluginError> {
        let outcome = match std::net::TcpStream::connect(&self.connect) {
            Ok(_) => format!("connected to {}", self.connect),
            Err(e) => format!("connecting to {} failed: {e}", self.connect),
        };
        for row in input.rows() {
            out.reject(&row, outcome.clone());
        }
        Ok(())
    }
}

ferry_plugin::export_mapper!(NetProbe, wit = "../../../wit");
