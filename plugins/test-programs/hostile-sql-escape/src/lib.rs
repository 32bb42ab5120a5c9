//! `test-hostile-sql-escape`: a mapper granted one SQLite connection that
//! tries to use it as a way out of the sandbox, for the host's SQL tests.
//! Not a user plugin.
//!
//! Each input record's `op` names one attempt; the output is the record with
//! `result`: `ok: <what it got>` or `<kind>: <message>` (`denied`,
//! `failed`...).
//!
//! | op | what it tries |
//! |---|---|
//! | `attach_state` | `ATTACH` the file `state_path` (ferry's state file), then `DELETE FROM st.audit_events` |
//! | `attach_other` | `ATTACH ?1` with `other_path` (another connection's database) bound, then read its `secrets` |
//! | `vacuum_into` | `VACUUM INTO` the file `vacuum_into`, outside every files grant |
//! | `vacuum` | a plain `VACUUM` (it attaches a scratch database) |
//! | `detach` | `DETACH` the `st` attached above |
//! | `database_list` | `PRAGMA database_list`, which names the files behind the connection |
//! | `database_list_fn` | the same through the table-valued function `pragma_database_list` |
//! | `pragma_unlisted` | `PRAGMA synchronous = OFF`, outside the allow-list |
//! | `query_only` | `PRAGMA query_only = OFF`, which only the host may run |
//! | `load_extension` | `SELECT load_extension(...)` |
//! | `schema` | `SELECT name FROM pragma_table_xinfo('items')`, which plugins may run |

use ferry_plugin::sql::{self, SqlError, Value};
use ferry_plugin::{Batch, Mapped, Mapper, PluginError};

/// The `config` table.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The granted SQLite connection.
    pub connection: String,
    /// ferry's state file.
    pub state_path: String,
    /// A database the plugin is not granted.
    pub other_path: String,
    /// Where `VACUUM INTO` writes.
    pub vacuum_into: String,
}

/// The plugin.
pub struct Escape {
    config: Config,
}

fn text_of(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Int(i) => i.to_string(),
        Value::Text(t) | Value::Json(t) => t.clone(),
        other => format!("{other:?}"),
    }
}

impl Escape {
    fn exec(&self, sql: &str, params: &[Value]) -> Result<String, SqlError> {
        sql::execute(&self.config.connection, sql, params).map(|n| n.to_string())
    }

    fn query(&self, sql: &str) -> Result<String, SqlError> {
        let rows = sql::query(&self.config.connection, sql, &[])?;
        Ok(rows
            .rows
            .iter()
            .map(|r| r.iter().map(text_of).collect::<Vec<_>>().join("|"))
            .collect::<Vec<_>>()
            .join(", "))
    }

    fn attempt(&self, op: &str) -> Result<String, SqlError> {
        let c = &self.config;
        match op {
            "attach_state" => {
                let path = c.state_path.replace('\'', "''");
                self.exec(&format!("ATTACH DATABASE '{path}' AS st"), &[])?;
                let deleted = self.exec("DELETE FROM st.audit_events", &[])?;
                Ok(format!("deleted {deleted} audit events"))
            }
            "attach_other" => {
                self.exec(
                    "ATTACH DATABASE ?1 AS other",
                    &[Value::Text(c.other_path.clone())],
                )?;
                self.query("SELECT secret FROM other.secrets")
            }
            "vacuum_into" => self.exec("VACUUM INTO ?1", &[Value::Text(c.vacuum_into.clone())]),
            "vacuum" => self.exec("VACUUM", &[]),
            "detach" => self.exec("DETACH DATABASE st", &[]),
            "database_list" => self.query("PRAGMA database_list"),
            "database_list_fn" => self.query("SELECT name, file FROM pragma_database_list"),
            "pragma_unlisted" => self.exec("PRAGMA synchronous = OFF", &[]),
            "query_only" => self.exec("PRAGMA query_only = OFF", &[]),
            "load_extension" => self.query("SELECT load_extension('/nonexistent/evil.so')"),
            "schema" => self.query("SELECT name FROM pragma_table_xinfo('items')"),
            other => Ok(format!("unknown op {other}")),
        }
    }
}

impl Mapper for Escape {
    type Config = Config;

    fn open(config: Config) -> Result<Self, PluginError> {
        Ok(Escape { config })
    }

    fn map(&mut self, input: &Batch, out: &mut Mapped) -> Result<(), PluginError> {
        for row in input.rows() {
            let op = row
                .text("op")
                .map_err(|e| PluginError::fatal(e.to_string()))?;
            let result = match self.attempt(op) {
                Ok(got) => format!("ok: {got}"),
                Err(e) => test_faults::describe_sql_error(&e),
            };
            out.emit_copy(&row).set("result", result.as_str());
        }
        Ok(())
    }
}

ferry_plugin::export_mapper!(Escape, wit = "../../../wit");
