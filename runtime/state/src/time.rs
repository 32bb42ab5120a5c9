//! The clock of the state store: times are microseconds since the Unix
//! epoch (an `i64`, as SQLite stores them), written for people as RFC 3339
//! UTC, both from ferry's one clock and calendar (`ferry-time`).

pub use ferry_time::now_us;

/// Microseconds since the Unix epoch as RFC 3339 UTC.
pub(crate) fn rfc3339(us: i64) -> String {
    ferry_time::rfc3339_micros(us)
}
