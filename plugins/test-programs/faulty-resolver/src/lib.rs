//! `test-faulty-resolver`: a conflict resolver that fails on purpose, for
//! two-way sync's fault tests. Not a user plugin. Its config is
//! `test-faults`' (trap, fatal and retryable keys apply; the others are for
//! mappers and sinks). When nothing fails, every conflict takes the left
//! version.
//!
//! ```toml
//! [plugins.faulty]
//! kind = "resolver"
//! wasm = "../../plugins/dist/test-faulty-resolver.wasm"
//! config = { fatal_keys = ["2"], retryable_keys = ["3"], retryable_times = 2 }
//! ```

use ferry_plugin::{Batch, PluginError, Resolutions, Resolver};
pub use test_faults::Config;
use test_faults::Faults;

/// The resolver.
#[derive(Debug)]
pub struct FaultyResolver(Faults);

impl Resolver for FaultyResolver {
    type Config = Config;

    fn open(config: Config) -> Result<Self, PluginError> {
        Faults::open(config).map(FaultyResolver)
    }

    fn resolve(
        &mut self,
        left: &Batch,
        _right: &Batch,
        _ancestor: &Batch,
        out: &mut Resolutions,
    ) -> Result<(), PluginError> {
        for row in left.rows() {
            self.0.on_key(row.key())?;
        }
        for _ in left.rows() {
            out.take_left();
        }
        Ok(())
    }
}

// This crate sits one folder deeper than the plugins, hence `wit`.
ferry_plugin::export_resolver!(FaultyResolver, wit = "../../../wit");
