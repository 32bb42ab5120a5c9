//! `ferry-plugin`: the Rust guest SDK for ferry plugins.
//!
//! A ferry plugin is a WebAssembly component that exports one world of the
//! `ferry:plugin@0.1.4` WIT package (`wit/ferry.wit`): a source, a sink, a
//! connector (both), a mapper, a validator or a resolver. Records cross the
//! boundary a batch at a time, stored column by column. This crate hides
//! that layout: a plugin reads a [`Batch`] through [`Row`] and [`Column`]
//! views and writes records with a [`BatchBuilder`], so it still reads like
//! "for each record, check the email".
//!
//! # Writing a plugin
//!
//! 1. A library crate with `crate-type = ["cdylib"]` that depends on this
//!    one as `ferry_plugin` (and on `serde` for its config).
//! 2. A type implementing the trait of its kind ([`Mapper`], [`Source`],
//!    [`Sink`], [`Validator`], [`Resolver`]). `open` builds it from the
//!    manifest's `config` table; the SDK keeps the one value per plugin
//!    instance and hands it to each later call (a call before `open`
//!    fails with `plugin-error::fatal("not opened")`).
//! 3. One export macro at the crate root: [`export_mapper!`],
//!    [`export_source!`], [`export_sink!`], [`export_connector!`],
//!    [`export_exactly_once_sink!`], [`export_exactly_once_connector!`],
//!    [`export_validator!`] or [`export_resolver!`]. See [`macros`] for what
//!    they expand to and where they look for the WIT files.
//! 4. `cargo build --release --target wasm32-wasip2` produces the component.
//!
//! # Config
//!
//! `open` receives the `config` table as JSON; the SDK parses it into the
//! trait's `Config` type with serde ([`config::parse`]). Errors become
//! [`PluginError::InvalidConfig`] naming the setting, such as
//! `config.cast.age: unknown variant "integer", expected one of "int", ...`.
//! Mark config structs `#[serde(deny_unknown_fields)]` so typos are caught.
//! `()` takes an empty table.
//!
//! # Errors
//!
//! Expected failures are [`PluginError`] values: `invalid-config` stops the
//! pipeline from starting, `retryable` makes the host call again later,
//! `fatal` sends the batch to the dead-letter store. A problem with one
//! record should not fail its batch: reject the record instead
//! ([`Mapped::reject`], [`WriteReport::reject`], a [`Violation`]). A panic
//! traps: the host drops the instance and builds a new one.
//!
//! # Reading and writing records
//!
//! - [`Batch`]: [`len`](Batch::len), [`rows`](Batch::rows),
//!   [`row`](Batch::row), [`columns`](Batch::columns),
//!   [`column`](Batch::column). Text is read in place, never copied.
//! - [`Row`]: [`key`](Row::key), [`op`](Row::op), [`get`](Row::get) a
//!   [`Value`], typed getters such as [`text`](Row::text) and
//!   [`int`](Row::int) whose [`FieldError`] names the field, the expected
//!   type and what was found.
//! - In a loop over many records, look columns up once with
//!   [`Batch::column`] and read them with [`Row::value`]: `Row::get` finds the
//!   column by name on every call.
//! - [`BatchBuilder`]: [`row`](BatchBuilder::row) then
//!   [`set`](RowBuilder::set); columns appear as fields are set, missing
//!   fields are null, and mixed types are widened (see [`builder`]).
//! - JSON: [`Row::to_json`], [`Row::write_json`],
//!   [`RowBuilder::set_json_value`], [`BatchBuilder::push_json_line`].
//! - [`log`]: `ferry_plugin::log::info!(...)` and friends, through the host.
//! - [`csv`] and [`time`]: small readers shared by the plugins.
//!
//! # Examples
//!
//! A mapper that upper-cases `name` and drops records without one:
//!
//! ```
//! use ferry_plugin::{Batch, Mapped, Mapper, PluginError};
//!
//! struct Upper;
//!
//! impl Mapper for Upper {
//!     type Config = ();
//!     fn open(_: ()) -> Result<Self, PluginError> {
//!         Ok(Upper)
//!     }
//!     fn map(&mut self, input: &Batch, out: &mut Mapped) -> Result<(), PluginError> {
//!         let name = input.column("name"); // once per batch
//!         for row in input.rows() {
//!             match name.map(|c| row.value(c)) {
//!                 Some(ferry_plugin::Value::Text(n)) => {
//!                     out.emit_copy(&row).set("name", n.to_uppercase().as_str());
//!                 }
//!                 Some(ferry_plugin::Value::Null) | None => {} // dropped on purpose
//!                 Some(other) => out.reject(&row, format!("name is {}", other.describe())),
//!             }
//!         }
//!         Ok(())
//!     }
//! }
//!
//! ferry_plugin::export_mapper!(Upper);
//! # fn main() {}
//! ```
//!
//! A source that counts from 0 to `count - 1`, with a checkpoint:
//!
//! ```
//! use ferry_plugin::{BatchBuilder, Op, PluginError, Polled, Source, SourceStatus};
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Config {
//!     count: u64,
//! }
//!
//! struct Counter {
//!     next: u64,
//!     count: u64,
//! }
//!
//! impl Source for Counter {
//!     type Config = Config;
//!     fn open(config: Config, checkpoint: Option<&[u8]>) -> Result<Self, PluginError> {
//!         let next = match checkpoint {
//!             None => 0,
//!             Some(bytes) => u64::from_le_bytes(
//!                 bytes.try_into().map_err(|_| PluginError::invalid_config("bad checkpoint"))?,
//!             ),
//!         };
//!         Ok(Counter { next, count: config.count })
//!     }
//!     fn poll(&mut self, max_records: u32) -> Result<Polled, PluginError> {
//!         let mut b = BatchBuilder::new();
//!         while self.next < self.count && b.len() < max_records as usize {
//!             b.row(&self.next.to_string(), Op::Upsert).set("n", self.next as i64);
//!             self.next += 1;
//!         }
//!         let status = if self.next < self.count { SourceStatus::More } else { SourceStatus::Finished };
//!         Ok(Polled { records: b.finish(), checkpoint: self.next.to_le_bytes().to_vec(), status })
//!     }
//! }
//!
//! ferry_plugin::export_source!(Counter);
//! # fn main() {}
//! ```
//!
//! A sink that logs each batch and refuses deletes:
//!
//! ```
//! use ferry_plugin::{Batch, Op, PluginError, Sink, WriteReport};
//!
//! struct Logger;
//!
//! impl Sink for Logger {
//!     type Config = ();
//!     fn open(_: ()) -> Result<Self, PluginError> {
//!         Ok(Logger)
//!     }
//!     fn write(&mut self, records: &Batch) -> Result<WriteReport, PluginError> {
//!         let mut report = WriteReport::ok();
//!         for row in records.rows() {
//!             if row.op() == Op::Delete {
//!                 report.reject(&row, "deletes are not supported");
//!             }
//!         }
//!         ferry_plugin::log::info!("{} records", records.len());
//!         Ok(report)
//!     }
//! }
//!
//! ferry_plugin::export_sink!(Logger);
//! # fn main() {}
//! ```
//!
//! A connector (source and sink in one component; the manifest's `kind`
//! picks the side, and each side keeps its own state):
//!
//! ```
//! use ferry_plugin::{Batch, BatchBuilder, PluginError, Polled, Sink, Source, SourceStatus, WriteReport};
//!
//! struct Nothing;
//! impl Source for Nothing {
//!     type Config = ();
//!     fn open(_: (), _: Option<&[u8]>) -> Result<Self, PluginError> {
//!         Ok(Nothing)
//!     }
//!     fn poll(&mut self, _: u32) -> Result<Polled, PluginError> {
//!         let records = BatchBuilder::new().finish();
//!         Ok(Polled { records, checkpoint: Vec::new(), status: SourceStatus::Finished })
//!     }
//! }
//!
//! struct Discard;
//! impl Sink for Discard {
//!     type Config = ();
//!     fn open(_: ()) -> Result<Self, PluginError> {
//!         Ok(Discard)
//!     }
//!     fn write(&mut self, _: &Batch) -> Result<WriteReport, PluginError> {
//!         Ok(WriteReport::ok())
//!     }
//! }
//!
//! ferry_plugin::export_connector!(Nothing, Discard);
//! # fn main() {}
//! ```
//!
//! A validator that wants an `@` in a configured field:
//!
//! ```
//! use ferry_plugin::{Batch, PluginError, Validator, Violations};
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Config {
//!     field: String,
//! }
//!
//! struct HasAt {
//!     field: String,
//! }
//!
//! impl Validator for HasAt {
//!     type Config = Config;
//!     fn open(config: Config) -> Result<Self, PluginError> {
//!         Ok(HasAt { field: config.field })
//!     }
//!     fn validate(&mut self, records: &Batch, out: &mut Violations) -> Result<(), PluginError> {
//!         let column = records.column(&self.field);
//!         for row in records.rows() {
//!             let value = column.and_then(|c| row.value(c).as_text());
//!             if !value.is_some_and(|v| v.contains('@')) {
//!                 out.field(&row, &self.field, "has_at", format!("{} has no @", self.field));
//!             }
//!         }
//!         Ok(())
//!     }
//! }
//!
//! ferry_plugin::export_validator!(HasAt);
//! # fn main() {}
//! ```
//!
//! A resolver where the newer change wins, unless only one side changed
//! since the common ancestor (then that change wins, however old):
//!
//! ```
//! use ferry_plugin::{Batch, PluginError, Resolutions, Resolver, Row};
//!
//! struct LastWriterWins;
//!
//! /// Whether two versions hold the same values (an absent field is null).
//! fn same(a: &Row<'_>, b: &Row<'_>) -> bool {
//!     a.op() == b.op()
//!         && a.fields().all(|(name, v)| b.get(name) == v)
//!         && b.fields().all(|(name, v)| a.get(name) == v)
//! }
//!
//! impl Resolver for LastWriterWins {
//!     type Config = ();
//!     fn open(_: ()) -> Result<Self, PluginError> {
//!         Ok(LastWriterWins)
//!     }
//!     fn resolve(
//!         &mut self,
//!         left: &Batch,
//!         right: &Batch,
//!         ancestor: &Batch,
//!         out: &mut Resolutions,
//!     ) -> Result<(), PluginError> {
//!         for ((l, r), a) in left.rows().zip(right.rows()).zip(ancestor.rows()) {
//!             if same(&l, &a) {
//!                 out.take_right();
//!             } else if same(&r, &a) {
//!                 out.take_left();
//!             } else {
//!                 match (l.updated_at(), r.updated_at()) {
//!                     (Some(x), Some(y)) if x > y => out.take_left(),
//!                     (Some(x), Some(y)) if y > x => out.take_right(),
//!                     _ => out.defer("both sides changed at the same or an unknown time"),
//!                 }
//!             }
//!         }
//!         Ok(())
//!     }
//! }
//!
//! ferry_plugin::export_resolver!(LastWriterWins);
//! # fn main() {}
//! ```

// Lets the export macros (which name `::ferry_plugin`) work in this crate's
// own tests.
extern crate self as ferry_plugin;

/// The bindings of the `sdk` world: the shared `types` and the `host`
/// imports, generated by wit-bindgen. Plugins' export macros map their
/// worlds' `types` and `host` to these modules.
#[allow(missing_docs, unsafe_code, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "ferry:plugin/sdk",
        additional_derives: [PartialEq],
    });
}

/// The contract's data types (`ferry:plugin/types`), in their columnar
/// layout. Plugins rarely need them beyond [`types::Batch`] as the result
/// of [`BatchBuilder::finish`].
pub use bindings::ferry::plugin::types;

/// The host's imports (`ferry:plugin/host`); use [`log`] rather than
/// calling them directly.
pub use bindings::ferry::plugin::host;

pub mod sql;

mod batch;
pub mod builder;
pub mod csv;
pub mod json;
pub mod log;
pub mod macros;
mod mapper;
mod resolver;
mod sink;
mod source;
pub mod time;
mod validator;
mod value;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use batch::{Batch, Column, FieldError, Row, Rows, TextList};
pub use builder::{BatchBuilder, ColumnId, RowBuilder};
pub use json::JsonLineError;
pub use mapper::{MapOutput, Mapped, Mapper, map_with_view};
pub use resolver::{Resolution, Resolutions, Resolver, resolve_with_view};
pub use sink::{Sink, SinkCommit, WriteReport};
pub use source::{Polled, Source, SourceStatus};
pub use types::{Op, PluginError, RecordIssue};
pub use validator::{Validator, Violation, Violations};
pub use value::{Value, ValueKind, quote};

impl PluginError {
    /// The settings given to `open` are wrong; the text says which and why.
    pub fn invalid_config(message: impl Into<String>) -> PluginError {
        PluginError::InvalidConfig(message.into())
    }

    /// A passing failure: the host retries the same call later.
    pub fn retryable(message: impl Into<String>) -> PluginError {
        PluginError::Retryable(message.into())
    }

    /// The call cannot succeed: the batch goes to the dead-letter store.
    pub fn fatal(message: impl Into<String>) -> PluginError {
        PluginError::Fatal(message.into())
    }

    /// The error's text, without its kind.
    pub fn message(&self) -> &str {
        match self {
            PluginError::InvalidConfig(m) | PluginError::Retryable(m) | PluginError::Fatal(m) => m,
        }
    }
}

pub mod config {
    //! Parsing a plugin's `config` table.

    use crate::PluginError;

    /// Parses the JSON text of a `config` table into `T`. An empty text
    /// reads as `{}`, and an empty table also fits `T`s that read from
    /// `null` (`()`, `Option<_>`), so `type Config = ();` takes no settings.
    /// Errors are [`PluginError::InvalidConfig`] naming the setting's path,
    /// e.g. `config.lookup[0]: missing field "table"`.
    pub fn parse<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, PluginError> {
        let value: serde_json::Value = if json.trim().is_empty() {
            serde_json::Value::Object(serde_json::Map::new())
        } else {
            serde_json::from_str(json).map_err(|e| {
                PluginError::invalid_config(format!(
                    "config is not valid JSON: {}",
                    clean(&e.to_string())
                ))
            })?
        };
        match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(parsed) => Ok(parsed),
            Err(e) => {
                let empty = value.is_null() || value.as_object().is_some_and(|o| o.is_empty());
                if empty && let Ok(parsed) = T::deserialize(&serde_json::Value::Null) {
                    return Ok(parsed);
                }
                let path = e.path().to_string();
                let message = clean(&e.inner().to_string());
                Err(if path.is_empty() || path == "." {
                    PluginError::invalid_config(format!("config: {message}"))
                } else {
                    PluginError::invalid_config(format!("config.{path}: {message}"))
                })
            }
        }
    }

    /// Drops serde_json's position suffix (the position in the JSON the
    /// host made, not in the manifest) and uses plain double quotes.
    fn clean(message: &str) -> String {
        let message = match message.rfind(" at line ") {
            Some(at) => message.get(..at).unwrap_or(message),
            None => message,
        };
        message.replace('`', "\"")
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::collections::BTreeMap;

        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Config {
            path: String,
            #[serde(default)]
            cast: BTreeMap<String, Kind>,
        }

        #[derive(Debug, serde::Deserialize)]
        #[serde(rename_all = "lowercase")]
        enum Kind {
            Int,
            Text,
        }

        fn err(json: &str) -> String {
            match parse::<Config>(json).unwrap_err() {
                PluginError::InvalidConfig(m) => m,
                other => panic!("{other:?}"),
            }
        }

        #[test]
        fn names_the_setting() {
            assert_eq!(
                err(r#"{"path": "x", "cast": {"age": "integer"}}"#),
                r#"config.cast.age: unknown variant "integer", expected "int" or "text""#
            );
            assert_eq!(
                err(r#"{"path": 3}"#),
                r#"config.path: invalid type: integer "3", expected a string"#
            );
            assert_eq!(
                err(r#"{"path": "x", "paht": 1}"#),
                r#"config.paht: unknown field "paht", expected "path" or "cast""#
            );
            assert_eq!(err("{}"), r#"config: missing field "path""#);
        }

        #[test]
        fn empty_config_is_an_empty_table() {
            parse::<()>("").unwrap();
            parse::<()>("{}").unwrap();
            assert!(parse::<()>(r#"{"x": 1}"#).is_err());
            assert!(parse::<BTreeMap<String, String>>("").unwrap().is_empty());
        }
    }
}
