//! Replays the committed fuzz corpora of the CSV and JSON Lines readers
//! (`plugins/fuzz/corpus/file_csv/` and `file_jsonl/`, and the inputs that
//! once crashed them in `plugins/fuzz/regressions/`) through the targets'
//! bodies on stable: an input that once crashed a reader fails here.

// A test harness: a failure is a panic, in helpers too.
#![allow(clippy::expect_used, clippy::panic)]

include!("../../fuzz/replay.rs");

#[test]
fn file_csv_corpus() {
    replay("file_csv", file::fuzz::csv);
}

#[test]
fn file_jsonl_corpus() {
    replay("file_jsonl", file::fuzz::jsonl);
}
