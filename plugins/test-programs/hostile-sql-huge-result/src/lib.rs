//! `test-hostile-sql-huge-result`: a mapper that runs each record's `sql`
//! as a query (`sql.query`, or inside a transaction when the record's `tx`
//! is true) and reports how big the answer was, for the host's tests of
//! results far larger than the plugin's `max_output_mb` (`zeroblob` in a
//! recursive CTE, `repeat()` over `generate_series`). Not a user plugin.
//!
//! The output is the record with `result`: `ok: <rows> rows, <bytes>
//! bytes` or `<kind>: <message>`.

use ferry_plugin::sql::{self, Rows, SqlError, Value};
use ferry_plugin::{Batch, Mapped, Mapper, PluginError};

/// The `config` table.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The granted connection.
    pub connection: String,
}

/// The plugin.
pub struct HugeResult {
    connection: String,
}

fn size(rows: &Rows) -> usize {
    rows.rows
        .iter()
        .flatten()
        .map(|v| match v {
            Value::Text(t) | Value::Json(t) => t.len(),
            Value::Bytes(b) => b.len(),
            _ => 8,
        })
        .sum()
}

impl HugeResult {
    fn run(&self, statement: &str, in_tx: bool) -> Result<Rows, SqlError> {
        if in_tx {
            let tx = sql::begin(&self.connection, None, true)?;
            let rows = tx.query(statement, &[])?;
            tx.rollback()?;
            Ok(rows)
        } else {
            sql::query(&self.connection, statement, &[])
        }
    }
}

impl Mapper for HugeResult {
    type Config = Config;

    fn open(config: Config) -> Result<Self, PluginError> {
        Ok(HugeResult {
            connection: config.connection,
        })
    }

    fn map(&mut self, input: &Batch, out: &mut Mapped) -> Result<(), PluginError> {
        for row in input.rows() {
            let statement = row
                .text("sql")
                .map_err(|e| PluginError::fatal(e.to_string()))?;
            let in_tx = row.text("tx").is_ok_and(|t| t == "yes");
            let result = match self.run(statement, in_tx) {
                Ok(rows) => format!("ok: {} rows, {} bytes", rows.rows.len(), size(&rows)),
                Err(e) => test_faults::describe_sql_error(&e),
            };
            out.emit_copy(&row).set("result", result.as_str());
        }
        Ok(())
    }
}

ferry_plugin::export_mapper!(HugeResult, wit = "../../../wit");
