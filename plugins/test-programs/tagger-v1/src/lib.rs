//! `test-tagger-v1`: tags each record with `version = "v1"`, for the
//! host's hot-reload tests. Not a user plugin.

/// The tag this build writes.
const VERSION: &str = "v1";

#[path = "../../tagger.rs"]
mod tagger;

// This crate sits one folder deeper than the plugins, hence `wit`.
ferry_plugin::export_mapper!(tagger::Tagger, wit = "../../../wit");
