//! ferry's integration tests: real components, real files, real SQLite.
//!
//! Every guest plugin is compiled by `build.rs`; `foreach_plugin!` below makes
//! a plugin without a test module here a compile error.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // tests fail loudly

mod support;

mod audit;
mod cdc_example;
mod cli;
mod crash;
mod dlq;
mod dlq_once;
mod exactly_once;
mod host;
mod hostile_engine;
mod hostile_flood;
mod hostile_json;
mod hostile_sql;
mod manifest_errors;
mod ownership;
mod pg_cdc;
mod pipeline;
mod plugin_cli;
mod plugins;
mod polyglot;
mod quickstart;
mod reload;
mod schedule;
mod secrets;
mod sql;
mod sql_sync;
mod two_way;
mod two_way_example;
mod two_way_pg;

macro_rules! every_plugin_has_tests {
    ($($name:ident),* $(,)?) => {
        $( #[allow(unused_imports)] use crate::plugins::$name as _; )*
    };
}
ferry_tests::foreach_plugin!(every_plugin_has_tests);
