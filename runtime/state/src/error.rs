//! [`StateError`]: every way the state store fails, each message naming
//! the database file and, where there is one, the operator's fix. One error
//! type for the crate, whatever the backend, so callers match on one enum.

use std::path::PathBuf;

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The database could not be opened or created.
    #[error("cannot open the state database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The folder for the database could not be created.
    #[error("cannot create the state folder {path}: {source}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A query failed.
    #[error("state database {path}: {what}: {source}")]
    Query {
        /// The database file.
        path: PathBuf,
        /// What ferry was doing.
        what: &'static str,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The database file is damaged.
    #[error(
        "state database {path} is damaged ({detail}); ferry will not run on it. Restore it from a backup, or move it aside to start over: `mv {path} {path}.damaged`, with its -wal and -shm files if there are any. Starting over reads every source again from its beginning: records may be delivered twice, none is lost; the old dead letters and runs stay in the moved file"
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What the integrity or schema check said.
        detail: String,
    },
    /// The file is an SQLite database, but not one of ferry's.
    #[error(
        "{path} is not a ferry state database ({detail}); ferry leaves it as it is: point the pipeline's `state` at another file"
    )]
    NotFerry {
        /// The database file.
        path: PathBuf,
        /// Why not.
        detail: String,
    },
    /// The database was written by a newer ferry.
    #[error(
        "state database {path} was written by a newer ferry (schema version {found}; this ferry knows up to {known}); run it with that ferry, or restore a backup this one wrote"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest version this ferry knows.
        known: i64,
    },
    /// SQLite would not make commits durable.
    #[error("state database {path} cannot be made crash-safe: {detail}")]
    Durability {
        /// The database file.
        path: PathBuf,
        /// What SQLite kept.
        detail: String,
    },
    /// A commit would leave records unaccounted for; nothing of it landed.
    #[error(
        "state database {path}: the accounting does not balance ({detail}); the checkpoint was not committed, so these records will be read again. This is a bug in ferry: please report it"
    )]
    Accounting {
        /// The database file.
        path: PathBuf,
        /// What does not add up.
        detail: String,
    },
    /// A status (of a run, a scheduled run, a conflict) or a decision that
    /// is not one ferry knows: read from a file written by another program,
    /// or given by a caller.
    #[error("unknown {what} `{value}`: ferry knows {}", expected.join(", "))]
    Unknown {
        /// What kind of value.
        what: &'static str,
        /// The value.
        value: String,
        /// The values ferry knows.
        expected: &'static [&'static str],
    },
    /// A stored value could not be decoded.
    #[error("state database {path}: {what}: {source}")]
    Decode {
        /// The database file.
        path: PathBuf,
        /// Which value.
        what: &'static str,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
}
