//! `test-faulty-mapper`: a mapper that fails on purpose, for the host's
//! fault tests. Not a user plugin.
//!
//! For each batch it walks the records in order; the first record whose key
//! is in one of the lists below decides what happens:
//!
//! | key | what happens |
//! |---|---|
//! | `trap_keys` | the plugin traps (`unreachable`) |
//! | `spin_keys` | the plugin loops forever (until the host's deadline) |
//! | `alloc_keys` | the plugin allocates until the memory limit is hit (then traps) |
//! | `fatal_keys` | `map` returns `plugin-error::fatal` naming the key |
//! | `retryable_keys` | `map` returns `plugin-error::retryable` naming the key; with `retryable_times = n`, only the first `n` calls that meet the key fail |
//! | `reject_keys` | the record is rejected (`record-issue` with reason `rejected on purpose: key "<key>"`); the others go on |
//! | `fail_open` | `"invalid-config"`, `"fatal"`, `"retryable"` or `"trap"`: `open` fails that way |
//!
//! Records with no listed key go on unchanged (the input batch itself is
//! returned when nothing is rejected).
//!
//! ```toml
//! [plugins.faulty]
//! kind = "mapper"
//! wasm = "../../plugins/dist/test-faulty-mapper.wasm"
//! config = { trap_keys = ["13"], reject_keys = ["7", "8"], retryable_keys = ["21"], retryable_times = 2 }
//! ```

use std::collections::HashMap;

use ferry_plugin::{Batch, Mapped, Mapper, PluginError};

/// The `config` table (see the crate docs).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Keys that make the plugin trap.
    #[serde(default)]
    pub trap_keys: Vec<String>,
    /// Keys that make `map` return a fatal error.
    #[serde(default)]
    pub fatal_keys: Vec<String>,
    /// Keys that make `map` return a retryable error.
    #[serde(default)]
    pub retryable_keys: Vec<String>,
    /// How many calls meeting a retryable key fail (default: all).
    #[serde(default)]
    pub retryable_times: Option<u32>,
    /// Keys whose records are rejected.
    #[serde(default)]
    pub reject_keys: Vec<String>,
    /// Keys that make the plugin loop forever.
    #[serde(default)]
    pub spin_keys: Vec<String>,
    /// Keys that make the plugin allocate until memory runs out.
    #[serde(default)]
    pub alloc_keys: Vec<String>,
    /// How `open` fails, if it should.
    #[serde(default)]
    pub fail_open: Option<String>,
}

/// Stops the instance with a trap.
fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

/// Loops until the host interrupts the call.
fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Allocates 1 MiB blocks, touching each, until allocation fails (which
/// aborts: a trap).
fn exhaust_memory() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 1 << 20];
        for b in block.iter_mut().step_by(4096) {
            *b = 1;
        }
        hoard.push(std::hint::black_box(block));
    }
}

/// The mapper.
#[derive(Debug)]
pub struct FaultyMapper {
    config: Config,
    retry_failures: HashMap<String, u32>,
}

impl Mapper for FaultyMapper {
    type Config = Config;

    fn open(config: Config) -> Result<Self, PluginError> {
        match config.fail_open.as_deref() {
            None => {}
            Some("invalid-config") => {
                return Err(PluginError::invalid_config("failing open on purpose"));
            }
            Some("fatal") => return Err(PluginError::fatal("failing open on purpose")),
            Some("retryable") => return Err(PluginError::retryable("failing open on purpose")),
            Some("trap") => trap(),
            Some(other) => {
                return Err(PluginError::invalid_config(format!(
                    "config.fail_open: unknown {other:?}, expected \"invalid-config\", \"fatal\", \"retryable\" or \"trap\""
                )));
            }
        }
        Ok(FaultyMapper {
            config,
            retry_failures: HashMap::new(),
        })
    }

    fn map(&mut self, input: &Batch, out: &mut Mapped) -> Result<(), PluginError> {
        let c = &self.config;
        let has = |list: &[String], key: &str| list.iter().any(|k| k == key);
        for row in input.rows() {
            let key = row.key();
            if has(&c.trap_keys, key) {
                ferry_plugin::log::warn!("trapping on key {key:?}");
                trap();
            }
            if has(&c.spin_keys, key) {
                ferry_plugin::log::warn!("spinning on key {key:?}");
                spin();
            }
            if has(&c.alloc_keys, key) {
                ferry_plugin::log::warn!("allocating without end on key {key:?}");
                exhaust_memory();
            }
            if has(&c.fatal_keys, key) {
                return Err(PluginError::fatal(format!("fatal on purpose: key {key:?}")));
            }
            if has(&c.retryable_keys, key) {
                let failed = self.retry_failures.entry(key.to_owned()).or_insert(0);
                if c.retryable_times.is_none_or(|n| *failed < n) {
                    *failed += 1;
                    return Err(PluginError::retryable(format!(
                        "retryable on purpose: key {key:?} (failure {failed})"
                    )));
                }
            }
            if has(&c.reject_keys, key) {
                out.reject(&row, format!("rejected on purpose: key {key:?}"));
            }
        }
        out.forward_all();
        Ok(())
    }
}

// This crate sits one folder deeper than the plugins, hence `wit`.
ferry_plugin::export_mapper!(FaultyMapper, wit = "../../../wit");

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_plugin::{BatchBuilder, Op, map_with_view};

    fn mapper(json: &str) -> FaultyMapper {
        FaultyMapper::open(ferry_plugin::config::parse(json).unwrap()).unwrap()
    }

    fn batch(keys: &[&str]) -> ferry_plugin::types::Batch {
        let mut b = BatchBuilder::new();
        for k in keys {
            b.row(k, Op::Upsert).set("k", *k);
        }
        b.finish()
    }

    #[test]
    fn passes_and_rejects() {
        let mut m = mapper(r#"{"reject_keys": ["2"]}"#);
        let out = map_with_view(&mut m, batch(&["1", "2", "3"])).unwrap();
        assert_eq!(out.derived_from, [0, 2]);
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].row, 1);
        assert_eq!(out.rejected[0].reason, "rejected on purpose: key \"2\"");
        let out = map_with_view(&mut m, batch(&["1"])).unwrap();
        assert_eq!(out.records, batch(&["1"]));
    }

    #[test]
    fn errors_and_retry_budget() {
        let mut m =
            mapper(r#"{"fatal_keys": ["f"], "retryable_keys": ["r"], "retryable_times": 2}"#);
        assert!(matches!(
            map_with_view(&mut m, batch(&["1", "f"])),
            Err(PluginError::Fatal(_))
        ));
        assert!(matches!(
            map_with_view(&mut m, batch(&["r"])),
            Err(PluginError::Retryable(_))
        ));
        assert!(matches!(
            map_with_view(&mut m, batch(&["r"])),
            Err(PluginError::Retryable(_))
        ));
        assert!(map_with_view(&mut m, batch(&["r"])).is_ok());
    }

    #[test]
    fn open_can_fail() {
        let c: Config = ferry_plugin::config::parse(r#"{"fail_open": "fatal"}"#).unwrap();
        assert!(matches!(FaultyMapper::open(c), Err(PluginError::Fatal(_))));
        let c: Config = ferry_plugin::config::parse(r#"{"fail_open": "nope"}"#).unwrap();
        assert!(matches!(
            FaultyMapper::open(c),
            Err(PluginError::InvalidConfig(_))
        ));
    }
}
