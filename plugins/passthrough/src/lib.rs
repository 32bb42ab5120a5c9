//! `passthrough`: a mapper that lets every record through unchanged, to
//! measure what the host and the component boundary cost per record.
//!
//! It has two modes, so both costs can be measured honestly:
//!
//! - `forward` (the default) returns the input batch exactly as it arrived,
//!   without looking at it: no row views, no builder. This is the floor:
//!   one lift and one lower of the batch across the boundary, plus the host.
//! - `copy` reads every record through the SDK's row views and re-emits it
//!   through the batch builder, as a real mapper that keeps every field
//!   would ([`Mapped::emit_copy`](ferry_plugin::Mapped::emit_copy)).
//!
//! ```toml
//! [plugins.noop]
//! kind = "mapper"
//! wasm = "../../plugins/dist/passthrough.wasm"
//! config = { mode = "copy" }   # or "forward", or no config at all
//! ```

use ferry_plugin::{Batch, MapOutput, Mapped, Mapper, PluginError, types};

/// What the mapper does with each batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Return the input as it came (the boundary floor).
    #[default]
    Forward,
    /// Read every record and build the output batch anew (the SDK path).
    Copy,
}

/// The `config` table.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `forward` (default) or `copy`.
    #[serde(default)]
    pub mode: Mode,
}

/// The mapper.
#[derive(Debug)]
pub struct Passthrough {
    mode: Mode,
}

impl Mapper for Passthrough {
    type Config = Config;

    fn open(config: Config) -> Result<Self, PluginError> {
        Ok(Passthrough { mode: config.mode })
    }

    fn map(&mut self, input: &Batch, out: &mut Mapped) -> Result<(), PluginError> {
        for row in input.rows() {
            out.emit_copy(&row);
        }
        Ok(())
    }

    fn map_raw(&mut self, input: types::Batch) -> Result<MapOutput, PluginError> {
        match self.mode {
            Mode::Forward => Ok(MapOutput::unchanged(input)),
            Mode::Copy => ferry_plugin::map_with_view(self, input),
        }
    }
}

ferry_plugin::export_mapper!(Passthrough);

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_plugin::{BatchBuilder, Op};

    fn input() -> types::Batch {
        let mut b = BatchBuilder::new();
        b.row("1", Op::Upsert).set("a", 1).set("b", "x").version(4);
        b.row("2", Op::Delete);
        b.row("3", Op::Upsert).set("b", "y");
        b.finish()
    }

    #[test]
    fn both_modes_return_the_input() {
        for mode in [Mode::Forward, Mode::Copy] {
            let mut p = Passthrough { mode };
            let out = p.map_raw(input()).unwrap();
            assert_eq!(out.records, input(), "{mode:?}");
            assert_eq!(out.derived_from, [0, 1, 2]);
            assert!(out.rejected.is_empty());
        }
    }

    #[test]
    fn config_defaults_to_forward() {
        let c: Config = ferry_plugin::config::parse("{}").unwrap();
        assert_eq!(c.mode, Mode::Forward);
        assert!(ferry_plugin::config::parse::<Config>(r#"{"mode": "fast"}"#).is_err());
    }
}
