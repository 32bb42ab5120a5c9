//! `{{name}}`: a ferry source. It counts from 1 to its config's `count`
//! (default 10), one record per number: key and `id` the number as text,
//! `n` the number. Its checkpoint is the last number read, so after a
//! restart it goes on from there.
//!
//! ```toml
//! [plugins.{{name}}]
//! kind = "source"
//! wasm = "{{name}}.wasm"
//! config = { count = 10 }
//! ```

use ferry_plugin::{BatchBuilder, Op, PluginError, Polled, Source, SourceStatus};

/// The `config` table.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How many records to produce.
    #[serde(default = "default_count")]
    count: i64,
}

fn default_count() -> i64 {
    10
}

/// The plugin.
pub struct {{Type}} {
    next: i64,
    count: i64,
}

impl Source for {{Type}} {
    type Config = Config;

    fn open(config: Config, checkpoint: Option<&[u8]>) -> Result<Self, PluginError> {
        let last = match checkpoint {
            None => 0,
            Some(bytes) => std::str::from_utf8(bytes)
                .ok()
                .and_then(|text| text.parse::<i64>().ok())
                .ok_or_else(|| PluginError::fatal("the checkpoint is not a number"))?,
        };
        Ok({{Type}} {
            next: last + 1,
            count: config.count,
        })
    }

    fn poll(&mut self, max_records: u32) -> Result<Polled, PluginError> {
        let mut batch = BatchBuilder::new();
        let mut taken = 0;
        while self.next <= self.count && taken < max_records {
            let key = self.next.to_string();
            batch
                .row(&key, Op::Upsert)
                .set("id", key.as_str())
                .set("n", self.next);
            self.next += 1;
            taken += 1;
        }
        Ok(Polled {
            records: batch.finish(),
            checkpoint: (self.next - 1).to_string().into_bytes(),
            status: if self.next > self.count {
                SourceStatus::Finished
            } else {
                SourceStatus::More
            },
        })
    }
}

ferry_plugin::export_source!({{Type}}, wit = "wit");
