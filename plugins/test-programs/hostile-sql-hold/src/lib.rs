//! `test-hostile-sql-hold`: a mapper that keeps SQL transactions open across
//! calls and begins more of them than its connection's pool, for the host's
//! tests of held transactions. Not a user plugin.
//!
//! Each input record has `op` (and `id`, an integer):
//!
//! | op | what it does |
//! |---|---|
//! | `hold` | begins a transaction, inserts `id` into table `t`, and keeps the transaction (never commits) |
//! | `hold_read` | begins a read-only transaction, counts `t`'s rows, and keeps it |
//! | `count` | counts the rows of `t` outside any transaction |
//! | `use_held` | inserts `id` through the oldest transaction it keeps |
//! | `write` | begins, inserts `id`, commits |
//!
//! With `only` in the config it acts only on records whose `db` is that
//! name and passes the others on unchanged.
//!
//! The output is the record with `result`: `ok: <detail>` or
//! `<kind>: <message>`.

use ferry_plugin::sql::{self, SqlError, Transaction, Value};
use ferry_plugin::{Batch, Mapped, Mapper, PluginError};

/// The `config` table.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The granted connection.
    pub connection: String,
    /// Act only on records whose `db` is this (others pass unchanged).
    #[serde(default)]
    pub only: Option<String>,
}

/// The plugin, with the transactions it keeps.
pub struct Hold {
    connection: String,
    only: Option<String>,
    held: Vec<Transaction>,
}

impl Hold {
    fn attempt(&mut self, op: &str, id: i64) -> Result<String, SqlError> {
        let insert = "INSERT INTO t (id) VALUES ($1)";
        let insert = if sql::dialect_of(&self.connection)? == sql::Dialect::Sqlite {
            "INSERT INTO t (id) VALUES (?1)"
        } else {
            insert
        };
        match op {
            "hold" => {
                let tx = sql::begin(&self.connection, None, false)?;
                tx.execute(insert, &[Value::Int(id)])?;
                self.held.push(tx);
                Ok(format!("holding {}", self.held.len()))
            }
            "hold_read" => {
                let tx = sql::begin(&self.connection, None, true)?;
                tx.query("SELECT count(*) FROM t", &[])?;
                self.held.push(tx);
                Ok(format!("holding {}", self.held.len()))
            }
            "count" => {
                let rows = sql::query(&self.connection, "SELECT count(*) FROM t", &[])?;
                Ok(match rows.rows.first().and_then(|r| r.first()) {
                    Some(Value::Int(n)) => n.to_string(),
                    _ => "no count".into(),
                })
            }
            "use_held" => match self.held.first() {
                Some(tx) => tx.execute(insert, &[Value::Int(id)]).map(|n| n.to_string()),
                None => Ok("nothing held".into()),
            },
            "write" => {
                let tx = sql::begin(&self.connection, None, false)?;
                tx.execute(insert, &[Value::Int(id)])?;
                tx.commit()?;
                Ok("committed".into())
            }
            other => Ok(format!("unknown op {other}")),
        }
    }
}

impl Mapper for Hold {
    type Config = Config;

    fn open(config: Config) -> Result<Self, PluginError> {
        Ok(Hold {
            connection: config.connection,
            only: config.only,
            held: Vec::new(),
        })
    }

    fn map(&mut self, input: &Batch, out: &mut Mapped) -> Result<(), PluginError> {
        for row in input.rows() {
            if let Some(only) = &self.only
                && row.text("db").ok() != Some(only.as_str())
            {
                out.emit_copy(&row);
                continue;
            }
            let op = row
                .text("op")
                .map_err(|e| PluginError::fatal(e.to_string()))?;
            let id = row.int("id").unwrap_or(0);
            let result = match self.attempt(op, id) {
                Ok(got) => format!("ok: {got}"),
                Err(e) => test_faults::describe_sql_error(&e),
            };
            out.emit_copy(&row).set("result", result.as_str());
        }
        Ok(())
    }
}

ferry_plugin::export_mapper!(Hold, wit = "../../../wit");
