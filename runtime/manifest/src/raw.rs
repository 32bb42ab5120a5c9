//! The raw manifest: what serde reads, before any name or value is checked.
//!
//! These structs are the schema's single source of truth for which keys exist:
//! every one refuses unknown fields, and serde's list of expected fields is what
//! the "did you mean" hints offer. Values are kept loose on purpose (keywords as
//! strings, numbers as `i64`) and wrapped in [`Spanned`], so the resolver can say
//! "`memory_mb` must be between 1 and 4096" or "did you mean `source`?" at the
//! exact place, instead of serde's first complaint.
//!
//! The top level (`pipeline`, `plugins`, `routes`) is walked by hand in
//! [`crate::document`], so each plugin and each route is deserialized on its own
//! and one broken table does not hide the others.

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

use crate::model::Scalar;

/// The keys allowed at the top of a manifest.
pub(crate) const TOP_LEVEL_KEYS: &[&str] =
    &["pipeline", "connections", "plugins", "routes", "sync"];

/// `[pipeline]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPipeline {
    pub name: Spanned<String>,
    pub mode: Option<Spanned<String>>,
    pub schedule: Option<Spanned<String>>,
    pub batch: Option<Spanned<RawBatch>>,
    pub poll_interval_ms: Option<Spanned<i64>>,
    pub state: Option<Spanned<String>>,
}

/// `batch = { max_records = 512, max_wait_ms = 200 }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBatch {
    pub max_records: Option<Spanned<i64>>,
    pub max_wait_ms: Option<Spanned<i64>>,
}

/// `[connections.<name>]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConnection {
    pub url: Spanned<String>,
    pub password_env: Option<Spanned<String>>,
    pub tls: Option<Spanned<String>>,
    pub ca_file: Option<Spanned<String>>,
    pub pool: Option<Spanned<i64>>,
    pub transaction_timeout_ms: Option<Spanned<i64>>,
}

/// `[plugins.<name>]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPlugin {
    pub kind: Spanned<String>,
    pub wasm: Spanned<String>,
    pub sha256: Option<Spanned<String>>,
    pub config: Option<Spanned<toml::Table>>,
    pub grants: Option<Spanned<RawGrants>>,
    pub retry: Option<Spanned<RawRetry>>,
}

/// `retry = { attempts = 5, backoff_ms = 100, max_backoff_ms = 10000 }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetry {
    pub attempts: Option<Spanned<i64>>,
    pub backoff_ms: Option<Spanned<i64>>,
    pub max_backoff_ms: Option<Spanned<i64>>,
}

/// `grants = { files = [...], env = { ... }, memory_mb = 64, timeout_ms = 2000 }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGrants {
    pub files: Option<Vec<Spanned<RawFileGrant>>>,
    pub env: Option<Spanned<toml::Table>>,
    pub network: Option<Vec<Spanned<String>>>,
    pub sql: Option<Vec<Spanned<String>>>,
    pub memory_mb: Option<Spanned<i64>>,
    pub timeout_ms: Option<Spanned<i64>>,
    pub fuel: Option<Spanned<i64>>,
    pub max_output_mb: Option<Spanned<i64>>,
}

/// `{ host = "data", guest = "/in", mode = "ro" }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFileGrant {
    pub host: Spanned<String>,
    pub guest: Spanned<String>,
    pub mode: Option<Spanned<String>>,
}

/// `[[routes]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub from: Spanned<String>,
    pub through: Option<Vec<Spanned<String>>>,
    pub to: Spanned<Vec<Spanned<String>>>,
    pub when: Option<Spanned<RawWhen>>,
    pub on_invalid: Option<Spanned<String>>,
}

/// `when = { field = "region", equals = "EU" }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWhen {
    pub field: Spanned<String>,
    pub equals: Option<Spanned<RawScalar>>,
    pub not_equals: Option<Spanned<RawScalar>>,
    #[serde(rename = "in")]
    pub in_: Option<Spanned<Vec<Spanned<RawScalar>>>>,
    pub exists: Option<Spanned<bool>>,
}

/// A string, integer, float or boolean in a `when` test.
#[derive(Debug)]
pub(crate) struct RawScalar(pub Scalar);

/// What serde says a [`RawScalar`] expects; the error translation knows it.
pub(crate) const SCALAR_EXPECTED: &str = "a string, integer, float or boolean";

impl<'de> Deserialize<'de> for RawScalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;

        impl Visitor<'_> for ScalarVisitor {
            type Value = RawScalar;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(SCALAR_EXPECTED)
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawScalar, E> {
                Ok(RawScalar(Scalar::Bool(v)))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawScalar, E> {
                Ok(RawScalar(Scalar::Int(v)))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawScalar, E> {
                i64::try_from(v)
                    .map(|v| RawScalar(Scalar::Int(v)))
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawScalar, E> {
                Ok(RawScalar(Scalar::Float(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawScalar, E> {
                Ok(RawScalar(Scalar::Text(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<RawScalar, E> {
                Ok(RawScalar(Scalar::Text(v)))
            }
        }

        deserializer.deserialize_any(ScalarVisitor)
    }
}
