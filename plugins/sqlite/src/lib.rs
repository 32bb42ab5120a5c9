//! `sqlite`: a ferry connector (world `connector-plugin`) for SQLite
//! tables, reached through a named connection the manifest declares
//! (`[connections.<name>] url = "sqlite:/abs/path.db"`) and grants
//! (`grants = { sql = ["<name>"] }`); the plugin never opens the file
//! itself.
//!
//! - **Source** (`kind = "source"`): `mode = "delta"` reads the rows whose
//!   cursor column (an integer version, or a `TIMESTAMP`/`DATETIME` column
//!   holding ISO 8601 text) moved past the checkpoint, re-reading a
//!   lookback window against late commits; `mode = "full"` reads a whole
//!   snapshot in key order, then emits deletes for the keys that are gone.
//! - **Sink** (`kind = "sink"`): multi-row `INSERT ... ON CONFLICT DO
//!   UPDATE` and `DELETE`, one transaction per batch, optional version
//!   checks reporting conflicts, refused records rejected with SQLite's
//!   reason; `fetch` for two-way sync.
//!
//! The configuration reference is in this crate's `README.md`; how the
//! methods work, the type mapping and their limits are in
//! `docs/databases.md`. The work is done by `ferry_sql` (`plugins/sql-common`),
//! which the `postgres` plugin shares.

use ferry_plugin::{Batch, PluginError, Polled, Sink, Source, TextList, WriteReport, types};
use ferry_sql::{Dialect, HostDb, SinkConfig, SourceConfig, TableSink, TableSource};

/// The source side: a table in `delta` or `full` mode.
pub struct SqliteSource(TableSource<HostDb>);

impl Source for SqliteSource {
    type Config = SourceConfig;

    fn open(config: SourceConfig, checkpoint: Option<&[u8]>) -> Result<Self, PluginError> {
        ferry_sql::open_source(config, checkpoint, Dialect::Sqlite).map(SqliteSource)
    }

    fn poll(&mut self, max_records: u32) -> Result<Polled, PluginError> {
        self.0.poll(max_records)
    }
}

/// The sink side: upserts and deletes by key.
pub struct SqliteSink(TableSink<HostDb>);

impl Sink for SqliteSink {
    type Config = SinkConfig;

    fn open(config: SinkConfig) -> Result<Self, PluginError> {
        ferry_sql::open_sink(config, Dialect::Sqlite).map(SqliteSink)
    }

    fn write(&mut self, records: &Batch) -> Result<WriteReport, PluginError> {
        self.0.write(records)
    }

    fn fetch(&mut self, keys: &TextList) -> Result<types::Batch, PluginError> {
        self.0.fetch(keys)
    }
}

ferry_plugin::export_connector!(SqliteSource, SqliteSink);
