//! The code shared by `test-tagger-v1` and `test-tagger-v2`, the hot-reload
//! test programs (included with `#[path]`; each crate sets `VERSION`). Each
//! record goes on with a `version` field naming the build that processed
//! it, so a test can tell which instance saw which record.

use ferry_plugin::{Batch, Mapped, Mapper, PluginError};

/// The mapper; it takes no configuration.
pub struct Tagger;

impl Mapper for Tagger {
    type Config = ();

    fn open(_: ()) -> Result<Self, PluginError> {
        Ok(Tagger)
    }

    fn map(&mut self, input: &Batch, out: &mut Mapped) -> Result<(), PluginError> {
        for row in input.rows() {
            out.emit_copy(&row).set("version", super::VERSION);
        }
        Ok(())
    }
}
