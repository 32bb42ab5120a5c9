//! Helpers over the columnar [`Batch`](crate::Batch) of the WIT contract: the checks the
//! host runs on a batch a plugin returns, selecting rows, reading values,
//! turning records into JSON.
//!
//! They live in the `ferry-batch` crate (which needs no wasmtime, so they
//! are fuzzed in a build that takes seconds) and are re-exported here, with
//! the one helper that needs the host's SQL timestamp parser.

pub use ferry_batch::check::*;

/// Parses RFC 3339 text (or PostgreSQL's timestamp text) into microseconds
/// since the Unix epoch.
pub fn parse_rfc3339_micros(text: &str) -> Option<i64> {
    ferry_sql::parse_timestamp(text).ok()
}
