//! The `ferry:plugin/sql` host interface: a plugin's named SQL connections.
//!
//! The manifest declares connections and grants each plugin some of them by
//! name; [`InstanceSpec::sql`](crate::InstanceSpec::sql) carries the granted
//! ones into the plugin's Store. Every call names a connection: a name the
//! plugin was not granted is answered with `denied` and recorded in the
//! audit log (capability `sql`), exactly like a refused socket or file. The
//! drivers, pools and credentials live in [`crate::sql::SqlHub`], one per
//! process; the plugin never sees a URL or a password.
//!
//! A statement may block the calling thread on the network. Epoch deadlines
//! only interrupt WebAssembly code, so every call carries what is left of the
//! plugin's call (its `timeout_ms` from the call's start) down to the driver,
//! which cancels the statement when it passes; the plugin gets a retryable
//! "timed out" error, and the call itself then ends at its deadline as
//! `deadline`.
//!
//! What a plugin may do with a granted connection is bounded here too:
//! results by its `max_output_mb` grant ([`SqlLimits`], applied inside the
//! backend while rows are read), open transactions by the connection's
//! `pool` (the next `begin` is denied rather than left waiting for a
//! connection the plugin itself holds). Every `denied` answer, whether for a
//! name not granted or for a statement the backend refused (an SQLite
//! `ATTACH`, a transaction left open), is logged and audited (capability
//! `sql`).

use std::sync::OnceLock;
use std::time::Duration;

use wasmtime::component::Resource;

use crate::bindings::common::ferry::plugin::sql as wit;
use crate::sql::{
    ConnectionSpec, Dialect, Isolation, SqlError, SqlErrorKind, SqlHub, SqlLimits, SqlValue,
    TxWatch,
};
use crate::store::HostState;

/// The process's SQL connections: one pool per connection, shared by every
/// plugin instance granted it.
pub fn hub() -> &'static SqlHub {
    static HUB: OnceLock<SqlHub> = OnceLock::new();
    HUB.get_or_init(SqlHub::new)
}

/// An open transaction, as the plugin's `transaction` resource.
pub struct Transaction {
    inner: crate::sql::SqlTransaction,
    connection: String,
}

/// What a Store knows of SQL: the connections granted, the call timeout,
/// the result limit, and the transactions the plugin holds.
#[derive(Clone)]
pub(crate) struct SqlAccess {
    granted: Vec<ConnectionSpec>,
    timeout: Duration,
    limits: SqlLimits,
    /// The plugin's transactions still holding a connection (pruned at
    /// each `begin`), with their connection's name.
    held: Vec<(String, TxWatch)>,
}

impl SqlAccess {
    /// `max_output_bytes` is the plugin's `max_output_mb` grant: no result
    /// larger than what the plugin may answer crosses back to it.
    pub(crate) fn new(
        granted: Vec<ConnectionSpec>,
        timeout: Duration,
        max_output_bytes: usize,
    ) -> Self {
        SqlAccess {
            granted,
            timeout,
            limits: SqlLimits {
                max_result_bytes: max_output_bytes,
            },
            held: Vec::new(),
        }
    }
}

fn to_sql(value: wit::Value) -> SqlValue {
    match value {
        wit::Value::Null => SqlValue::Null,
        wit::Value::Int(v) => SqlValue::Int(v),
        wit::Value::Float(v) => SqlValue::Float(v),
        wit::Value::Boolean(v) => SqlValue::Bool(v),
        wit::Value::Text(v) => SqlValue::Text(v),
        wit::Value::Bytes(v) => SqlValue::Bytes(v),
        wit::Value::Timestamp(v) => SqlValue::Timestamp(v),
        wit::Value::Json(v) => SqlValue::Json(v),
    }
}

fn to_wit(value: SqlValue) -> wit::Value {
    match value {
        SqlValue::Null => wit::Value::Null,
        SqlValue::Int(v) => wit::Value::Int(v),
        SqlValue::Float(v) => wit::Value::Float(v),
        SqlValue::Bool(v) => wit::Value::Boolean(v),
        SqlValue::Text(v) => wit::Value::Text(v),
        SqlValue::Bytes(v) => wit::Value::Bytes(v),
        SqlValue::Timestamp(v) => wit::Value::Timestamp(v),
        SqlValue::Json(v) => wit::Value::Json(v),
    }
}

fn params(values: Vec<wit::Value>) -> Vec<SqlValue> {
    values.into_iter().map(to_sql).collect()
}

fn rows(rows: crate::sql::SqlRows) -> wit::Rows {
    wit::Rows {
        columns: rows
            .columns
            .into_iter()
            .map(|c| wit::ColumnInfo {
                name: c.name,
                type_name: c.type_name,
            })
            .collect(),
        rows: rows
            .rows
            .into_iter()
            .map(|row| row.into_iter().map(to_wit).collect())
            .collect(),
    }
}

fn error(e: SqlError) -> wit::SqlError {
    wit::SqlError {
        kind: match e.kind {
            SqlErrorKind::Denied => wit::SqlErrorKind::Denied,
            SqlErrorKind::Retryable => wit::SqlErrorKind::Retryable,
            SqlErrorKind::Constraint => wit::SqlErrorKind::Constraint,
            SqlErrorKind::Failed => wit::SqlErrorKind::Failed,
        },
        code: e.code,
        message: e.message,
    }
}

fn failed(message: String) -> wit::SqlError {
    wit::SqlError {
        kind: wit::SqlErrorKind::Failed,
        code: None,
        message,
    }
}

impl HostState {
    /// The granted connection `name`, or a denial (logged and audited).
    fn connection(&self, name: &str, action: &str) -> Result<&ConnectionSpec, wit::SqlError> {
        if let Some(spec) = self.sql.granted.iter().find(|c| c.name == name) {
            return Ok(spec);
        }
        let granted: Vec<&str> = self.sql.granted.iter().map(|c| c.name.as_str()).collect();
        let reason = if granted.is_empty() {
            "the plugin is granted no SQL connection".to_string()
        } else {
            format!("the plugin is granted only {}", granted.join(", "))
        };
        // The name is the plugin's: cut it before it is formatted anywhere.
        let name = crate::audit::cap(name, crate::audit::MAX_QUOTED_BYTES);
        self.report_denial(crate::Denial::new(
            "sql",
            format!("{action} on connection `{name}`"),
            reason.clone(),
        ));
        Err(wit::SqlError {
            kind: wit::SqlErrorKind::Denied,
            code: None,
            message: format!(
                "connection `{name}` is not granted to this plugin ({reason}); grant it in the manifest: grants = {{ sql = [\"{name}\"] }}"
            ),
        })
    }

    /// The error a plugin gets for `e`; a `denied` one (a statement the
    /// backend refused) is logged and audited like a refused name.
    fn sql_error(&self, action: &str, connection: &str, e: SqlError) -> wit::SqlError {
        if e.kind == SqlErrorKind::Denied {
            let prefix = format!("connection `{connection}`: ");
            self.report_denial(crate::Denial {
                capability: "sql",
                target: format!("{action} on connection `{connection}`"),
                reason: e
                    .message
                    .strip_prefix(&prefix)
                    .unwrap_or(&e.message)
                    .to_owned(),
            });
        }
        error(e)
    }

    /// The transaction behind the plugin's handle. The bindings type the
    /// handle with their own placeholder; the table holds ours at the same
    /// index.
    fn transaction(
        &mut self,
        tx: &Resource<wit::Transaction>,
    ) -> Result<&mut Transaction, wit::SqlError> {
        let ours: Resource<Transaction> = Resource::new_borrow(tx.rep());
        self.table
            .get_mut(&ours)
            .map_err(|e| failed(format!("unknown transaction: {e}")))
    }

    /// How long the next statement may take: the plugin's call timeout, cut
    /// to what is left of the call in progress, so a statement ends at the
    /// call's deadline like any other wait in the host.
    fn sql_timeout(&self) -> Duration {
        match self.remaining() {
            Some(left) => left.min(self.sql.timeout),
            None => self.sql.timeout,
        }
    }

    /// Runs `f` on the transaction behind `tx`; a `denied` error is audited.
    fn in_transaction<T>(
        &mut self,
        tx: &Resource<wit::Transaction>,
        action: &str,
        f: impl FnOnce(&mut crate::sql::SqlTransaction, Duration) -> Result<T, SqlError>,
    ) -> Result<T, wit::SqlError> {
        let timeout = self.sql_timeout();
        let tx = self.transaction(tx)?;
        match f(&mut tx.inner, timeout) {
            Ok(value) => Ok(value),
            Err(e) => {
                let connection = tx.connection.clone();
                Err(self.sql_error(action, &connection, e))
            }
        }
    }
}

impl wit::Host for HostState {
    fn dialect_of(&mut self, connection: String) -> Result<wit::Dialect, wit::SqlError> {
        let spec = self.connection(&connection, "dialect-of")?;
        Ok(match spec.dialect {
            Dialect::Postgres => wit::Dialect::Postgres,
            Dialect::Sqlite => wit::Dialect::Sqlite,
        })
    }

    fn query(
        &mut self,
        connection: String,
        statement: String,
        values: Vec<wit::Value>,
    ) -> Result<wit::Rows, wit::SqlError> {
        let spec = self.connection(&connection, "query")?;
        hub()
            .query_with(
                spec,
                &statement,
                params(values),
                self.sql_timeout(),
                self.sql.limits,
            )
            .map(rows)
            .map_err(|e| self.sql_error("query", &connection, e))
    }

    fn execute(
        &mut self,
        connection: String,
        statement: String,
        values: Vec<wit::Value>,
    ) -> Result<u64, wit::SqlError> {
        let spec = self.connection(&connection, "execute")?;
        hub()
            .execute_with(
                spec,
                &statement,
                params(values),
                self.sql_timeout(),
                self.sql.limits,
            )
            .map_err(|e| self.sql_error("execute", &connection, e))
    }

    fn begin(
        &mut self,
        connection: String,
        isolation: Option<String>,
        read_only: bool,
    ) -> Result<Resource<wit::Transaction>, wit::SqlError> {
        let spec = self.connection(&connection, "begin")?.clone();
        let isolation = match isolation.as_deref() {
            None | Some("read-committed") => Isolation::ReadCommitted,
            Some("repeatable-read") => Isolation::RepeatableRead,
            Some("serializable") => Isolation::Serializable,
            Some(other) => {
                return Err(failed(format!(
                    "unknown isolation level `{other}`: use read-committed, repeatable-read or serializable"
                )));
            }
        };
        // Each open transaction holds one of the pool's connections: one
        // more than the pool would wait for a connection the plugin itself
        // holds.
        self.sql.held.retain(|(_, watch)| watch.holds_connection());
        let holding = self
            .sql
            .held
            .iter()
            .filter(|(name, _)| *name == connection)
            .count();
        let pool = spec.max_connections();
        if holding >= pool {
            let e = SqlError::new(
                SqlErrorKind::Denied,
                &connection,
                format!(
                    "this plugin already holds {holding} open transaction{} on it, as many as \
                     the connection's pool (`pool = {pool}`): commit, roll back or drop one \
                     before beginning another",
                    if holding == 1 { "" } else { "s" }
                ),
            );
            return Err(self.sql_error("begin", &connection, e));
        }
        let inner = hub()
            .begin_with(
                &spec,
                isolation,
                read_only,
                self.sql_timeout(),
                self.sql.limits,
            )
            .map_err(|e| self.sql_error("begin", &connection, e))?;
        let watch = inner.watch();
        let handle = self
            .table
            .push(Transaction {
                inner,
                connection: connection.clone(),
            })
            .map(|ours| Resource::new_own(ours.rep()))
            .map_err(|e| failed(format!("too many open transactions: {e}")))?;
        self.sql.held.push((connection, watch));
        Ok(handle)
    }
}

impl wit::HostTransaction for HostState {
    fn query(
        &mut self,
        tx: Resource<wit::Transaction>,
        statement: String,
        values: Vec<wit::Value>,
    ) -> Result<wit::Rows, wit::SqlError> {
        self.in_transaction(&tx, "query", |tx, timeout| {
            tx.query(&statement, params(values), timeout)
        })
        .map(rows)
    }

    fn execute(
        &mut self,
        tx: Resource<wit::Transaction>,
        statement: String,
        values: Vec<wit::Value>,
    ) -> Result<u64, wit::SqlError> {
        self.in_transaction(&tx, "execute", |tx, timeout| {
            tx.execute(&statement, params(values), timeout)
        })
    }

    fn execute_many(
        &mut self,
        tx: Resource<wit::Transaction>,
        statement: String,
        values: Vec<Vec<wit::Value>>,
    ) -> Result<u64, wit::SqlError> {
        let values = values.into_iter().map(params).collect();
        self.in_transaction(&tx, "execute-many", |tx, timeout| {
            tx.execute_many(&statement, values, timeout)
        })
    }

    fn commit(&mut self, tx: Resource<wit::Transaction>) -> Result<(), wit::SqlError> {
        self.in_transaction(&tx, "commit", |tx, timeout| tx.commit(timeout))
    }

    fn rollback(&mut self, tx: Resource<wit::Transaction>) -> Result<(), wit::SqlError> {
        self.in_transaction(&tx, "rollback", |tx, timeout| tx.rollback(timeout))
    }

    fn drop(&mut self, tx: Resource<wit::Transaction>) -> wasmtime::Result<()> {
        // Dropping the driver's transaction rolls it back if still open.
        let ours: Resource<Transaction> = Resource::new_own(tx.rep());
        let tx = self.table.delete(ours)?;
        tracing::trace!(connection = %tx.connection, "transaction resource dropped");
        Ok(())
    }
}
