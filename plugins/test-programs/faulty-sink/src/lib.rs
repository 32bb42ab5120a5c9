//! `test-faulty-sink`: a sink that fails on purpose, for the host's fault
//! tests. Not a user plugin: it writes nothing anywhere. Its config and
//! what each key does are `test-faults'`. Every record with no listed key
//! counts as written; `fetch` answers an empty batch.
//!
//! ```toml
//! [plugins.faulty_sink]
//! kind = "sink"
//! wasm = "../../plugins/dist/test-faulty-sink.wasm"
//! config = { reject_keys = ["7"], conflict_keys = ["9"], fatal_keys = ["13"] }
//! ```

use ferry_plugin::{Batch, PluginError, Sink, WriteReport};
pub use test_faults::Config;
use test_faults::Faults;

/// The sink.
#[derive(Debug)]
pub struct FaultySink(Faults);

impl Sink for FaultySink {
    type Config = Config;

    fn open(config: Config) -> Result<Self, PluginError> {
        Faults::open(config).map(FaultySink)
    }

    fn write(&mut self, records: &Batch) -> Result<WriteReport, PluginError> {
        let mut report = WriteReport::ok();
        for row in records.rows() {
            self.0.on_key(row.key())?;
            if let Some(reason) = self.0.rejection(row.key()) {
                report.reject(&row, reason);
            } else if let Some(reason) = self.0.conflict(row.key()) {
                report.conflict(&row, reason);
            }
        }
        Ok(report)
    }

    fn flush(&mut self) -> Result<(), PluginError> {
        self.0.flush()
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
