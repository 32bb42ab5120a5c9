//! `test-hostile-sleep`: a mapper that needs no grant at all and blocks in
//! the host instead of running code, for the host's deadline tests. Not a
//! user plugin.
//!
//! | config | what it does on a record with one of these keys |
//! |---|---|
//! | `sleep_keys` | `std::thread::sleep` for a day (`wasi:io/poll` `pollable.block` on a clock) |
//! | `poll_keys` | `wasi:io/poll` `poll` on a monotonic-clock pollable a day away |
//!
//! Other records go on unchanged. The epoch interruption that stops a busy
//! plugin at `timeout_ms` fires only in WebAssembly code, so these calls end
//! only if the host bounds its own waiting by the call's deadline.
//!
//! The component imports `wasi:io` at the version Rust's std was built
//! against (0.2.6 with this toolchain), older than the host's (0.2.12):
//! wasmtime links it to the host's definitions by semver, and the deadline
//! must hold there too. The poll bindings below are declared at 0.2.0 so
//! they add no newer version.

use std::time::Duration;

use ferry_plugin::{Batch, Mapped, Mapper, PluginError};

/// A day.
const DAY: Duration = Duration::from_secs(86_400);

/// The `config` table.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Keys on which the plugin sleeps for a day.
    #[serde(default)]
    pub sleep_keys: Vec<String>,
    /// Keys on which the plugin polls a clock a day away.
    #[serde(default)]
    pub poll_keys: Vec<String>,
}

/// The mapper.
#[derive(Debug)]
pub struct HostileSleep(Config);

#[cfg(target_arch = "wasm32")]
#[allow(missing_docs, unsafe_code, clippy::all)]
mod wasi {
    wit_bindgen::generate!({
        inline: r#"
            package ferry:hostile-sleep;

            package wasi:io@0.2.0 {
                interface poll {
                    resource pollable {
                        ready: func() -> bool;
                        block: func();
                    }
                    poll: func(in: list<borrow<pollable>>) -> list<u32>;
                }
            }

            package wasi:clocks@0.2.0 {
                interface monotonic-clock {
                    use wasi:io/poll@0.2.0.{pollable};
                    type instant = u64;
                    type duration = u64;
                    now: func() -> instant;
                    resolution: func() -> duration;
                    subscribe-instant: func(when: instant) -> pollable;
                    subscribe-duration: func(when: duration) -> pollable;
                }
            }

            world imports {
                import wasi:clocks/monotonic-clock@0.2.0;
            }
        "#,
        world: "imports",
        generate_all,
    });
}

#[cfg(target_arch = "wasm32")]
fn poll_far_clock() {
    let far = wasi::wasi::clocks::monotonic_clock::subscribe_duration(DAY.as_nanos() as u64);
    let _ = wasi::wasi::io::poll::poll(&[&far]);
}

#[cfg(not(target_arch = "wasm32"))]
fn poll_far_clock() {
    std::thread::sleep(DAY);
}

impl Mapper for HostileSleep {
    type Config = Config;

    fn open(config: Config) -> Result<Self, PluginError> {
        Ok(HostileSleep(config))
    }

    fn map(&mut self, input: &Batch, out: &mut Mapped) -> Result<(), PluginError> {
        for row in input.rows() {
            let key = row.key();
            if self.0.sleep_keys.iter().any(|k| k == key) {
                ferry_plugin::log::warn!("sleeping for a day on key {key:?}");
                std::thread::sleep(DAY);
            }
            if self.0.poll_keys.iter().any(|k| k == key) {
                ferry_plugin::log::warn!("polling a clock a day away on key {key:?}");
                poll_far_clock();
            }
        }
        out.forward_all();
        Ok(())
    }
}

// This crate sits one folder deeper than the plugins, hence `wit`.
ferry_plugin::export_mapper!(HostileSleep, wit = "../../../wit");
