//! `test-faulty-mapper`: a mapper that fails on purpose, for the host's
//! fault tests. Not a user plugin. Its config and what each key does are
//! `test-faults`' (`conflict_keys` and `fail_flush` are for the sink).
//! Records with no listed key go on unchanged (the input batch itself is
//! returned when nothing is rejected).
//!
//! ```toml
//! [plugins.faulty]
//! kind = "mapper"
//! wasm = "../../plugins/dist/test-faulty-mapper.wasm"
//! config = { trap_keys = ["13"], reject_keys = ["7", "8"], retryable_keys = ["21"], retryable_times = 2 }
//! ```

use ferry_plugin::{Batch, Mapped, Mapper, PluginError};
pub use test_faults::Config;
use test_faults::Faults;

/// The mapper.
#[derive(Debug)]
pub struct FaultyMapper(Faults);

impl Mapper for FaultyMapper {
    type Config = Config;

    fn open(config: Config) -> Result<Self, PluginError> {
        Faults::open(config).map(FaultyMapper)
    }

    fn map(&mut self, input: &Batch, out: &mut Mapped) -> Result<(), PluginError> {
        let mut rejected = vec![false; input.len()];
        for row in input.rows() {
            self.0.on_key(row.key())?;
            if let Some(reason) = self.0.rejection(row.key()) {
                out.reject(&row, reason);
                rejected[row.index()] = true;
            }
        }
        if !input.rows().any(|row| self.0.padding(row.key()).is_some()) {
            out.forward_all();
            return Ok(());
        }
        for row in input.rows().filter(|row| !rejected[row.index()]) {
            let padding = self.0.padding(row.key());
            let mut record = out.emit_copy(&row);
            if let Some(n) = padding {
                record.set("padding", "x".repeat(n).as_str());
            }
        }
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
    fn huge_keys_are_padded() {
        let mut m = mapper(r#"{"huge_keys": ["2"], "huge_bytes": 10, "reject_keys": ["3"]}"#);
        let out = map_with_view(&mut m, batch(&["1", "2", "3"])).unwrap();
        assert_eq!(out.derived_from, [0, 1]);
        let view = ferry_plugin::Batch::from_raw(out.records).unwrap();
        let rows: Vec<_> = view.rows().collect();
        assert!(rows[0].text("padding").is_err());
        assert_eq!(rows[1].text("padding").unwrap(), "x".repeat(10));
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
