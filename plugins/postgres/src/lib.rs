//! `postgres`: a ferry connector (world `connector-plugin`) for PostgreSQL
//! tables, reached through a named connection the manifest declares
//! (`[connections.<name>] url = "postgres://user@host:5432/db"`,
//! `password_env`, `tls`, `pool`) and grants (`grants = { sql = ["<name>"]
//! }`); the host holds the driver, the pool and the password.
//!
//! - **Source** (`kind = "source"`): `mode = "delta"` reads the rows whose
//!   cursor column (an integer version or a timestamp) moved past the
//!   checkpoint, re-reading a lookback window against late commits; `mode =
//!   "full"` reads a whole snapshot in key order, then emits deletes for
//!   the keys that are gone; `mode = "cdc"` streams changes through logical
//!   decoding (crate `ferry_postgres_cdc`, `plugins/postgres-cdc`, whose
//!   README is its reference).
//! - **Sink** (`kind = "sink"`): multi-row `INSERT ... ON CONFLICT DO
//!   UPDATE` and `DELETE`, one transaction per batch, optional version
//!   checks reporting conflicts, refused records rejected with
//!   PostgreSQL's reason; `fetch` for two-way sync.
//!
//! The configuration reference is in this crate's `README.md`; how the
//! methods work, the type mapping and their limits are in
//! `docs/databases.md`. The table work is done by `ferry_sql`
//! (`plugins/sql-common`), which the `sqlite` plugin shares.

use ferry_plugin::{
    Batch, PluginError, Polled, Sink, Source, TextList, WriteReport, config, types,
};
use ferry_postgres_cdc::{Cdc, CdcConfig};
use ferry_sql::{Dialect, HostDb, SinkConfig, SourceConfig, TableSink, TableSource};

/// The source side: a table (`delta`, `full`) or a change stream (`cdc`).
pub enum PostgresSource {
    /// `mode = "delta"` or `"full"`.
    Table(Box<TableSource<HostDb>>),
    /// `mode = "cdc"`.
    Cdc(Box<Cdc>),
}

impl Source for PostgresSource {
    /// Parsed here by `mode`: `"cdc"` takes the CDC source's settings, the
    /// other modes the table source's.
    type Config = serde_json::Value;

    fn open(config: serde_json::Value, checkpoint: Option<&[u8]>) -> Result<Self, PluginError> {
        let text = if config.is_null() {
            "{}".to_owned()
        } else {
            config.to_string()
        };
        if config.get("mode").and_then(serde_json::Value::as_str) == Some("cdc") {
            let c: CdcConfig = config::parse(&text)?;
            return Cdc::open(c, checkpoint).map(|c| PostgresSource::Cdc(Box::new(c)));
        }
        let c: SourceConfig = config::parse(&text).map_err(|e| match e {
            PluginError::InvalidConfig(m)
                if m.contains("unknown variant") && m.starts_with("config.mode") =>
            {
                PluginError::invalid_config(format!("{m}, or \"cdc\""))
            }
            other => other,
        })?;
        ferry_sql::open_source(c, checkpoint, Dialect::Postgres)
            .map(|t| PostgresSource::Table(Box::new(t)))
    }

    fn poll(&mut self, max_records: u32) -> Result<Polled, PluginError> {
        match self {
            PostgresSource::Table(t) => t.poll(max_records),
            PostgresSource::Cdc(c) => c.poll(max_records),
        }
    }

    fn commit(&mut self, checkpoint: &[u8]) -> Result<(), PluginError> {
        match self {
            PostgresSource::Table(_) => Ok(()),
            PostgresSource::Cdc(c) => c.commit(checkpoint),
        }
    }
}

/// The sink side: upserts and deletes by key.
pub struct PostgresSink(TableSink<HostDb>);

impl Sink for PostgresSink {
    type Config = SinkConfig;

    fn open(config: SinkConfig) -> Result<Self, PluginError> {
        ferry_sql::open_sink(config, Dialect::Postgres).map(PostgresSink)
    }

    fn write(&mut self, records: &Batch) -> Result<WriteReport, PluginError> {
        self.0.write(records)
    }

    fn fetch(&mut self, keys: &TextList) -> Result<types::Batch, PluginError> {
        self.0.fetch(keys)
    }
}

ferry_plugin::export_connector!(PostgresSource, PostgresSink);
