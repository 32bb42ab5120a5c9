//! What the host tells the backend about a connection: its [`ConnectionSpec`]
//! (dialect, URL, password, TLS, pool size, transaction timeout), the
//! transaction [`Isolation`] levels and the per-plugin [`SqlLimits`]. A
//! password never shows in `Debug` output.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::SqlValue;

/// Which SQL a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// PostgreSQL, over the network.
    Postgres,
    /// An SQLite database file.
    Sqlite,
}

/// TLS for a PostgreSQL connection (SQLite ignores it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tls {
    /// Plain TCP.
    Disable,
    /// Encrypted, but the server's certificate is not checked (libpq's
    /// `sslmode=require`).
    Require,
    /// Encrypted; the certificate chain must lead to a trusted root
    /// (`ca_file`, else the Mozilla roots) and name the URL's host.
    VerifyFull,
}

/// A transaction's isolation level (PostgreSQL; SQLite is always
/// serializable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Isolation {
    /// `READ COMMITTED`, PostgreSQL's default.
    #[default]
    ReadCommitted,
    /// `REPEATABLE READ`.
    RepeatableRead,
    /// `SERIALIZABLE`.
    Serializable,
}

impl Isolation {
    /// The SQL words: `READ COMMITTED`...
    pub fn sql(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "READ COMMITTED",
            Isolation::RepeatableRead => "REPEATABLE READ",
            Isolation::Serializable => "SERIALIZABLE",
        }
    }
}

impl FromStr for Isolation {
    type Err = String;

    /// The WIT contract's spelling: `read-committed`, `repeatable-read`,
    /// `serializable` (also with spaces or underscores, any case).
    fn from_str(s: &str) -> Result<Isolation, String> {
        match s
            .trim()
            .to_ascii_lowercase()
            .replace([' ', '_'], "-")
            .as_str()
        {
            "read-committed" => Ok(Isolation::ReadCommitted),
            "repeatable-read" => Ok(Isolation::RepeatableRead),
            "serializable" => Ok(Isolation::Serializable),
            _ => Err(format!(
                "unknown isolation level `{s}`: use read-committed, repeatable-read or serializable"
            )),
        }
    }
}

/// Everything needed to open a named connection. The hub keeps one pool per
/// distinct spec, so a changed spec (a new password, another URL) gets
/// fresh connections.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ConnectionSpec {
    /// The connection's name in the manifest; prefixes every error message.
    pub name: String,
    /// PostgreSQL or SQLite.
    pub dialect: Dialect,
    /// PostgreSQL: `postgres://user@host:port/db?params`, without the
    /// password (libpq's key=value form works too). SQLite: an absolute
    /// file path.
    pub url: String,
    /// The PostgreSQL password, from the environment; never printed.
    pub password: Option<String>,
    /// PostgreSQL TLS.
    pub tls: Tls,
    /// PEM file of the certificate authorities trusted for
    /// [`Tls::VerifyFull`]; none means the Mozilla roots.
    pub ca_file: Option<PathBuf>,
    /// The most connections open at once for this spec (0 counts as 1).
    /// A plugin may hold at most this many open transactions on it.
    pub pool_size: u32,
    /// How long a transaction may stay open: past it the hub rolls it back
    /// and gives its connection back to the pool, even while the plugin
    /// does nothing ([`DEFAULT_TRANSACTION_TIMEOUT`] unless the manifest
    /// sets `transaction_timeout_ms`).
    pub transaction_timeout: Duration,
}

/// How long a transaction may stay open unless the connection says
/// otherwise: 30 s.
pub const DEFAULT_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// What one plugin's calls may bring back: the host's side of its
/// `max_output_mb` grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlLimits {
    /// The most bytes a query's result may take on the host, counting each
    /// value's bytes and a fixed cost per value and per row
    /// ([`SqlLimits::value_cost`]): the host stops reading rows past it and
    /// the call fails. On SQLite it also bounds every string, blob and row
    /// a statement builds (`SQLITE_LIMIT_LENGTH`, plus the bytes of the
    /// call's own parameters).
    pub max_result_bytes: usize,
}

impl SqlLimits {
    /// `max_output_mb`'s default, 32 MiB.
    pub const DEFAULT_MAX_RESULT_BYTES: usize = 32 << 20;

    /// What one value counts against [`SqlLimits::max_result_bytes`]: its
    /// bytes and the size of an [`SqlValue`].
    pub fn value_cost(payload: usize) -> usize {
        std::mem::size_of::<SqlValue>().saturating_add(payload)
    }

    /// What one row counts besides its values.
    pub const ROW_COST: usize = std::mem::size_of::<Vec<SqlValue>>();
}

impl Default for SqlLimits {
    fn default() -> SqlLimits {
        SqlLimits {
            max_result_bytes: SqlLimits::DEFAULT_MAX_RESULT_BYTES,
        }
    }
}

impl fmt::Debug for ConnectionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSpec")
            .field("name", &self.name)
            .field("dialect", &self.dialect)
            .field("url", &ferry_manifest::redact_url(&self.url))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("ca_file", &self.ca_file)
            .field("pool_size", &self.pool_size)
            .field("transaction_timeout", &self.transaction_timeout)
            .finish()
    }
}

impl ConnectionSpec {
    /// The most connections the pool opens (and transactions a plugin may
    /// hold) on this connection: `pool_size`, at least 1.
    pub fn max_connections(&self) -> usize {
        self.pool_size.max(1) as usize
    }
}
