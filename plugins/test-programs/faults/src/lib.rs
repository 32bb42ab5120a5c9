//! `test-faults`: the fault injection shared by `test-faulty-mapper` and
//! `test-faulty-sink`, the host's fault-test programs, and what the hostile
//! SQL test programs report ([`describe_sql_error`]). Not a plugin.
//!
//! Both take this [`Config`]. For each call they walk the records in order;
//! the first record whose key is in one of the lists decides what happens:
//!
//! | key | what happens |
//! |---|---|
//! | `trap_keys` | the plugin traps (`unreachable`) |
//! | `spin_keys` | the plugin loops forever (until the host's deadline) |
//! | `alloc_keys` | the plugin allocates until the memory limit is hit (then traps) |
//! | `fatal_keys` | the call returns `plugin-error::fatal` naming the key |
//! | `retryable_keys` | the call returns `plugin-error::retryable` naming the key; with `retryable_times = n`, only the first `n` calls that meet the key fail |
//! | `huge_keys` | (mapper) the record comes out with a `padding` field of `huge_bytes` bytes (default 2 MiB) |
//! | `reject_keys` | the record is rejected, reason `rejected on purpose: key "<key>"` |
//! | `conflict_keys` | (sink) the record is reported as a conflict |
//! | `fail_open` | `"invalid-config"`, `"fatal"`, `"retryable"` or `"trap"`: `open` fails that way |
//! | `fail_flush` | (sink) `"fatal"` or `"retryable"`: every `flush` fails that way |

use std::collections::HashMap;

use ferry_plugin::PluginError;

/// The `config` table of both fault-test programs.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Keys that make the plugin trap.
    #[serde(default)]
    pub trap_keys: Vec<String>,
    /// Keys that make the call return a fatal error.
    #[serde(default)]
    pub fatal_keys: Vec<String>,
    /// Keys that make the call return a retryable error.
    #[serde(default)]
    pub retryable_keys: Vec<String>,
    /// How many calls meeting a retryable key fail (default: all).
    #[serde(default)]
    pub retryable_times: Option<u32>,
    /// Keys whose records are rejected.
    #[serde(default)]
    pub reject_keys: Vec<String>,
    /// Keys whose records are reported as conflicts (sink only).
    #[serde(default)]
    pub conflict_keys: Vec<String>,
    /// Keys that make the plugin loop forever.
    #[serde(default)]
    pub spin_keys: Vec<String>,
    /// Keys that make the plugin allocate until memory runs out.
    #[serde(default)]
    pub alloc_keys: Vec<String>,
    /// Keys whose output record carries `huge_bytes` of padding (mapper only).
    #[serde(default)]
    pub huge_keys: Vec<String>,
    /// The padding of a `huge_keys` record, in bytes (default 2 MiB).
    #[serde(default)]
    pub huge_bytes: Option<usize>,
    /// How `open` fails, if it should.
    #[serde(default)]
    pub fail_open: Option<String>,
    /// How `flush` fails, if it should (sink only).
    #[serde(default)]
    pub fail_flush: Option<String>,
}

/// The faults of one plugin instance.
#[derive(Debug)]
pub struct Faults {
    config: Config,
    retry_failures: HashMap<String, u32>,
}

fn has(list: &[String], key: &str) -> bool {
    list.iter().any(|k| k == key)
}

impl Faults {
    /// Applies `fail_open` and checks `fail_flush`.
    pub fn open(config: Config) -> Result<Faults, PluginError> {
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
        Ok(Faults {
            config,
            retry_failures: HashMap::new(),
        })
    }

    /// Does what `key` asks for: trap, spin, exhaust memory, or return an
    /// error. `Ok` when the key asks for none of these.
    pub fn on_key(&mut self, key: &str) -> Result<(), PluginError> {
        let c = &self.config;
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
        Ok(())
    }

    /// Why the record with `key` is rejected, if it is.
    pub fn rejection(&self, key: &str) -> Option<String> {
        has(&self.config.reject_keys, key).then(|| format!("rejected on purpose: key {key:?}"))
    }

    /// How many bytes of padding the output record of `key` carries, if any.
    pub fn padding(&self, key: &str) -> Option<usize> {
        has(&self.config.huge_keys, key).then(|| self.config.huge_bytes.unwrap_or(2 << 20))
    }

    /// Why the record with `key` is a conflict, if it is.
    pub fn conflict(&self, key: &str) -> Option<String> {
        has(&self.config.conflict_keys, key).then(|| format!("conflict on purpose: key {key:?}"))
    }

    /// What `flush` returns.
    pub fn flush(&self) -> Result<(), PluginError> {
        match self.config.fail_flush.as_deref() {
            Some("fatal") => Err(PluginError::fatal("flush fails on purpose")),
            Some("retryable") => Err(PluginError::retryable("flush fails on purpose")),
            _ => Ok(()),
        }
    }
}

/// Stops the instance with a trap.
pub fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

/// Loops until the host interrupts the call.
pub fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Allocates 1 MiB blocks, touching each, until allocation fails (which
/// aborts: a trap).
pub fn exhaust_memory() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 1 << 20];
        for b in block.iter_mut().step_by(4096) {
            *b = 1;
        }
        hoard.push(std::hint::black_box(block));
    }
}

/// `<kind>: <message>`, the kind as the WIT spells it: what the hostile SQL
/// test programs write into a record's `result` for the host's tests to read.
pub fn describe_sql_error(e: &ferry_plugin::sql::SqlError) -> String {
    use ferry_plugin::sql::SqlErrorKind;
    let kind = match e.kind {
        SqlErrorKind::Denied => "denied",
        SqlErrorKind::Retryable => "retryable",
        SqlErrorKind::Constraint => "constraint",
        SqlErrorKind::Failed => "failed",
    };
    format!("{kind}: {}", e.message)
}
