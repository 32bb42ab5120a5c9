//! `test-hostile-flood`: a mapper with no grant at all that floods the host
//! with requests it must refuse, for the flood test. Not a user
//! plugin.
//!
//! For each input record whose key is in `flood_keys`, it calls
//! `sql.dialect-of` with a connection name of `name_bytes` bytes (1 MiB by
//! default) in a loop, `iterations` times or until `max_ms` have passed,
//! whichever comes first (keep `max_ms` under the stage's `timeout_ms`).
//! Every call is denied: the plugin is granted no connection. Then it writes
//! `log_lines` log lines (`host.log`, no grant needed either) at level
//! `error`, each the same `name_bytes` of text. Each record goes on with
//! three more fields: `attempts` (the calls it made for that record),
//! `denied` (how many were answered `denied`) and `logged` (the log lines it
//! wrote); the other records get 0.
//!
//! ```toml
//! [plugins.flood]
//! kind = "mapper"
//! wasm = "…/test-hostile-flood.wasm"
//! config = { flood_keys = ["1"], iterations = 3000, name_bytes = 1048576, max_ms = 4000, log_lines = 5000 }
//! ```

use std::time::{Duration, Instant};

use ferry_plugin::sql::{self, SqlErrorKind};
use ferry_plugin::{Batch, Mapped, Mapper, PluginError};

/// What to flood with.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The keys of the records that set off a flood.
    #[serde(default)]
    pub flood_keys: Vec<String>,
    /// Calls per flood, at most.
    #[serde(default = "default_iterations")]
    pub iterations: u64,
    /// The length of the connection name, in bytes.
    #[serde(default = "default_name_bytes")]
    pub name_bytes: usize,
    /// How long a flood may last, at most.
    #[serde(default = "default_max_ms")]
    pub max_ms: u64,
    /// Log lines written after the calls.
    #[serde(default)]
    pub log_lines: u64,
}

fn default_iterations() -> u64 {
    1000
}
fn default_name_bytes() -> usize {
    1 << 20
}
fn default_max_ms() -> u64 {
    3000
}

/// The mapper.
pub struct Flood {
    config: Config,
    name: String,
}

impl Flood {
    /// Calls `dialect-of` until the budget is spent: (attempts, denied).
    fn flood(&self) -> (u64, u64) {
        let started = Instant::now();
        let budget = Duration::from_millis(self.config.max_ms);
        let (mut attempts, mut denied) = (0, 0);
        while attempts < self.config.iterations && started.elapsed() < budget {
            attempts += 1;
            if let Err(e) = sql::dialect_of(&self.name)
                && e.kind == SqlErrorKind::Denied
            {
                denied += 1;
            }
        }
        (attempts, denied)
    }
}

impl Mapper for Flood {
    type Config = Config;

    fn open(config: Config) -> Result<Self, PluginError> {
        let name = "n".repeat(config.name_bytes);
        Ok(Flood { config, name })
    }

    fn map(&mut self, input: &Batch, out: &mut Mapped) -> Result<(), PluginError> {
        for row in input.rows() {
            let flood = self.config.flood_keys.iter().any(|k| k == row.key());
            let (attempts, denied) = if flood { self.flood() } else { (0, 0) };
            let logged = if flood { self.config.log_lines } else { 0 };
            for _ in 0..logged {
                ferry_plugin::log::write(ferry_plugin::log::Level::Error, &self.name);
            }
            out.emit_copy(&row)
                .set("attempts", attempts as i64)
                .set("denied", denied as i64)
                .set("logged", logged as i64);
        }
        Ok(())
    }
}

// This crate sits one folder deeper than the plugins, hence `wit`.
ferry_plugin::export_mapper!(Flood, wit = "../../../wit");
