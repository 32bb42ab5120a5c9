//! `test-hostile-stall`: a mapper that connects to a TCP peer and waits for
//! an answer that never comes, for the host's deadline tests. Not a user
//! plugin; it imports `wasi:sockets`, so its manifest must grant the peer's
//! address.
//!
//! ```toml
//! config = { addr = "127.0.0.1:40000", stall_keys = ["k3"] }
//! grants = { network = ["tcp://127.0.0.1:40000"] }
//! ```
//!
//! On a record whose key is in `stall_keys` it connects to `addr` and reads
//! (a blocking read on the socket's input stream). Other records go on
//! unchanged.

use std::io::Read;

use ferry_plugin::{Batch, Mapped, Mapper, PluginError};

/// The `config` table.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The peer, `ip:port`.
    pub addr: String,
    /// Keys on which the plugin reads from the peer.
    #[serde(default)]
    pub stall_keys: Vec<String>,
}

/// The mapper.
#[derive(Debug)]
pub struct HostileStall(Config);

impl Mapper for HostileStall {
    type Config = Config;

    fn open(config: Config) -> Result<Self, PluginError> {
        Ok(HostileStall(config))
    }

    fn map(&mut self, input: &Batch, out: &mut Mapped) -> Result<(), PluginError> {
        for row in input.rows() {
            let key = row.key();
            if self.0.stall_keys.iter().any(|k| k == key) {
                ferry_plugin::log::warn!("reading from {} on key {key:?}", self.0.addr);
                let mut peer = std::net::TcpStream::connect(&self.0.addr)
                    .map_err(|e| PluginError::fatal(format!("connect {}: {e}", self.0.addr)))?;
                let mut answer = [0u8; 1];
                let n = peer
                    .read(&mut answer)
                    .map_err(|e| PluginError::fatal(format!("read: {e}")))?;
                return Err(PluginError::fatal(format!(
                    "the peer answered {n} bytes, it was meant to stay silent"
                )));
            }
        }
        out.forward_all();
        Ok(())
    }
}

// This crate sits one folder deeper than the plugins, hence `wit`.
ferry_plugin::export_mapper!(HostileStall, wit = "../../../wit");
