//! `test-hostile-sql-begin`: a mapper that runs each record's `sql` on its
//! connection outside any transaction (`sql.execute`), for the host's tests
//! of a `BEGIN` hidden from its text check (`/* /* */ */ BEGIN`,
//! `-- x\rBEGIN`...). Not a user plugin.
//!
//! The output is the record with `result`: `ok: <rows changed>` or
//! `<kind>: <message>`.

use ferry_plugin::sql;
use ferry_plugin::{Batch, Mapped, Mapper, PluginError};

/// The `config` table.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The granted connection.
    pub connection: String,
}

/// The plugin.
pub struct HiddenBegin {
    connection: String,
}

impl Mapper for HiddenBegin {
    type Config = Config;

    fn open(config: Config) -> Result<Self, PluginError> {
        Ok(HiddenBegin {
            connection: config.connection,
        })
    }

    fn map(&mut self, input: &Batch, out: &mut Mapped) -> Result<(), PluginError> {
        for row in input.rows() {
            let statement = row
                .text("sql")
                .map_err(|e| PluginError::fatal(e.to_string()))?;
            let result = match sql::execute(&self.connection, statement, &[]) {
                Ok(n) => format!("ok: {n}"),
                Err(e) => test_faults::describe_sql_error(&e),
            };
            out.emit_copy(&row).set("result", result.as_str());
        }
        Ok(())
    }
}

ferry_plugin::export_mapper!(HiddenBegin, wit = "../../../wit");
