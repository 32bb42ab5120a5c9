//! `ferry_sql` (crate `sql-common`): what ferry's SQL connectors share.
//!
//! The `postgres` and `sqlite` plugins are thin: each checks that its
//! connection speaks its dialect and hands the work to this crate, which
//! reaches the database only through the host's `ferry:plugin/sql`
//! interface (a connection *name* the manifest declares and grants; the
//! host holds the driver and the credentials).
//!
//! - [`source::TableSource`]: a table as records, `delta` (rows whose
//!   cursor column moved, with a lookback window against late commits) or
//!   `full` (a snapshot in key order, then deletes for the keys that are
//!   gone). The module documentation explains both methods and their
//!   limits.
//! - [`sink::TableSink`]: multi-row `INSERT ... ON CONFLICT DO UPDATE` and
//!   `DELETE ... WHERE key IN (...)`, one transaction per write, optional
//!   version checks reporting conflicts, the database's refusals isolated
//!   to the records at fault.
//! - [`schema`]: the table's columns, types, primary key and unique
//!   indexes, read from the catalog; every name the configuration gives is
//!   checked there before it reaches SQL text, and always quoted
//!   ([`ident`]). Values are always bound as parameters.
//! - [`values`]: the type mapping between ferry values and SQL types.
//! - [`checkpoint`]: the compact binary pieces of the source's checkpoint.
//!
//! Everything runs against a [`db::Database`]: [`db::HostDb`] in a
//! component, an in-process SQLite database in this crate's unit tests.
//! The user documentation is `docs/databases.md`.

pub mod checkpoint;
pub mod config;
pub mod db;
pub mod dialect;
pub mod ident;
pub mod schema;
pub mod sink;
pub mod source;
pub mod values;

#[cfg(all(test, not(target_family = "wasm")))]
mod testdb;
#[cfg(all(test, not(target_family = "wasm")))]
mod tests;

use ferry_plugin::PluginError;
use ferry_plugin::sql::SqlErrorKind;

pub use config::{SinkConfig, SourceConfig};
pub use db::HostDb;
pub use dialect::Dialect;
pub use sink::TableSink;
pub use source::TableSource;

/// Connects to the granted connection `name` and checks it speaks
/// `expected` (each plugin serves one dialect).
pub fn connect(name: &str, expected: Dialect) -> Result<HostDb, PluginError> {
    let db = HostDb::connect(name).map_err(|e| match e.kind {
        SqlErrorKind::Denied => PluginError::invalid_config(format!(
            "connection: {} (declare it under [connections.{name}] and grant it: grants = {{ sql = [\"{name}\"] }})",
            ferry_plugin::sql::describe(&e)
        )),
        _ => PluginError::from(e),
    })?;
    use db::Database as _;
    if db.dialect() != expected {
        let plugin = match db.dialect() {
            Dialect::Postgres => "postgres",
            Dialect::Sqlite => "sqlite",
        };
        return Err(PluginError::invalid_config(format!(
            "connection: {name:?} is a {} database; this plugin reads and writes {} (use the {plugin} plugin)",
            db.dialect().name(),
            expected.name()
        )));
    }
    Ok(db)
}

/// Opens a table source on the granted connection the config names.
pub fn open_source(
    config: SourceConfig,
    checkpoint: Option<&[u8]>,
    expected: Dialect,
) -> Result<TableSource<HostDb>, PluginError> {
    let db = connect(&config.connection, expected)?;
    TableSource::open(db, config, checkpoint)
}

/// Opens a table sink on the granted connection the config names.
pub fn open_sink(config: SinkConfig, expected: Dialect) -> Result<TableSink<HostDb>, PluginError> {
    let db = connect(&config.connection, expected)?;
    TableSink::open(db, config)
}
