//! `test-faulty-sink`: a sink that fails on purpose, for the host's fault
//! tests. Not a user plugin: it writes nothing anywhere.
//!
//! For each `write` it walks the records in order; the first record whose
//! key is in one of the lists below decides what happens:
//!
//! | key | what happens |
//! |---|---|
//! | `trap_keys` | the plugin traps (`unreachable`) |
//! | `spin_keys` | the plugin loops forever (until the host's deadline) |
//! | `alloc_keys` | the plugin allocates until the memory limit is hit (then traps) |
//! | `fatal_keys` | `write` returns `plugin-error::fatal` naming the key |
//! | `retryable_keys` | `write` returns `plugin-error::retryable` naming the key; with `retryable_times = n`, only the first `n` calls that meet the key fail |
//! | `reject_keys` | the record is reported in `rejected` (reason `rejected on purpose: key "<key>"`) |
//! | `conflict_keys` | the record is reported in `conflicts` (reason `conflict on purpose: key "<key>"`) |
//! | `fail_open` | `"invalid-config"`, `"fatal"`, `"retryable"` or `"trap"`: `open` fails that way |
//! | `fail_flush` | `"fatal"` or `"retryable"`: every `flush` fails that way |
//!
//! Every other record counts as written. `fetch` answers an empty batch.
//!
//! ```toml
//! [plugins.faulty_sink]
//! kind = "sink"
//! wasm = "../../plugins/dist/test-faulty-sink.wasm"
//! config = { reject_keys = ["7"], conflict_keys = ["9"], fatal_keys = ["13"] }
//! ```

use std::collections::HashMap;

use ferry_plugin::{Batch, PluginError, Sink, WriteReport};

/// The `config` table (see the crate docs).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Keys that make the plugin trap.
    #[serde(default)]
    pub trap_keys: Vec<String>,
    /// Keys that make `write` return a fatal error.
    #[serde(default)]
    pub fatal_keys: Vec<String>,
    /// Keys that make `write` return a retryable error.
    #[serde(default)]
    pub retryable_keys: Vec<String>,
    /// How many calls meeting a retryable key fail (default: all).
    #[serde(default)]
    pub retryable_times: Option<u32>,
    /// Keys whose records are rejected.
    #[serde(default)]
    pub reject_keys: Vec<String>,
    /// Keys whose records are reported as conflicts.
    #[serde(default)]
    pub conflict_keys: Vec<String>,
    /// Keys that make the plugin loop forever.
    #[serde(default)]
    pub spin_keys: Vec<String>,
    /// Keys that make the plugin allocate until memory runs out.
    #[serde(default)]
    pub alloc_keys: Vec<String>,
    /// How `open` fails, if it should.
    #[serde(default)]
    pub fail_open: Option<String>,
    /// How `flush` fails, if it should.
    #[serde(default)]
    pub fail_flush: Option<String>,
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

/// The sink.
#[derive(Debug)]
pub struct FaultySink {
    config: Config,
    retry_failures: HashMap<String, u32>,
}

impl Sink for FaultySink {
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
        if let Some(other) = config
            .fail_flush
            .as_deref()
            .filter(|f| *f != "fatal" && *f != "retryable")
        {
            return Err(PluginError::invalid_config(format!(
                "config.fail_flush: unknown {other:?}, expected \"fatal\" or \"retryable\""
            )));
        }
        Ok(FaultySink {
            config,
            retry_failures: HashMap::new(),
        })
    }

    fn write(&mut self, records: &Batch) -> Result<WriteReport, PluginError> {
        let c = &self.config;
        let has = |list: &[String], key: &str| list.iter().any(|k| k == key);
        let mut report = WriteReport::ok();
        for row in records.rows() {
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
                report.reject(&row, format!("rejected on purpose: key {key:?}"));
            } else if has(&c.conflict_keys, key) {
                report.conflict(&row, format!("conflict on purpose: key {key:?}"));
            }
        }
        Ok(report)
    }

    fn flush(&mut self) -> Result<(), PluginError> {
        match self.config.fail_flush.as_deref() {
            Some("fatal") => Err(PluginError::fatal("flush fails on purpose")),
            Some("retryable") => Err(PluginError::retryable("flush fails on purpose")),
            _ => Ok(()),
        }
    }
}

// This crate sits one folder deeper than the plugins, hence `wit`.
ferry_plugin::export_sink!(FaultySink, wit = "../../../wit");

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_plugin::{BatchBuilder, Op};

    fn sink(json: &str) -> FaultySink {
        FaultySink::open(ferry_plugin::config::parse(json).unwrap()).unwrap()
    }

    fn batch(keys: &[&str]) -> Batch {
        let mut b = BatchBuilder::new();
        for k in keys {
            b.row(k, Op::Upsert);
        }
        Batch::from_raw(b.finish()).unwrap()
    }

    #[test]
    fn rejects_and_conflicts() {
        let mut s = sink(r#"{"reject_keys": ["2"], "conflict_keys": ["3"]}"#);
        let r = s.write(&batch(&["1", "2", "3"])).unwrap();
        assert_eq!(r.rejected.len(), 1);
        assert_eq!(r.rejected[0].row, 1);
        assert_eq!(r.conflicts[0].row, 2);
        assert_eq!(r.conflicts[0].reason, "conflict on purpose: key \"3\"");
        assert!(s.flush().is_ok());
    }

    #[test]
    fn errors() {
        let mut s = sink(
            r#"{"fatal_keys": ["f"], "retryable_keys": ["r"], "retryable_times": 1, "fail_flush": "retryable"}"#,
        );
        assert!(matches!(
            s.write(&batch(&["f"])),
            Err(PluginError::Fatal(_))
        ));
        assert!(matches!(
            s.write(&batch(&["r"])),
            Err(PluginError::Retryable(_))
        ));
        assert!(s.write(&batch(&["r"])).is_ok());
        assert!(matches!(s.flush(), Err(PluginError::Retryable(_))));
    }
}
