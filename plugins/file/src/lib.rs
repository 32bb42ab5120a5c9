//! `file`: a ferry connector (world `exactly-once-connector-plugin`) that reads records
//! from JSON Lines and CSV files and writes records to a JSON Lines file.
//! The manifest's `kind` (`source` or `sink`) says which side a stage uses;
//! each side has its own settings. Paths are guest paths: the folders must
//! be granted in the stage's `grants.files`.
//!
//! # Source
//!
//! | key | meaning |
//! |---|---|
//! | `path` | one file to read |
//! | `paths` | several files, read one after the other (give `path` or `paths`) |
//! | `format` | `"jsonl"` or `"csv"`; when absent, by extension: `.jsonl`/`.ndjson` are JSON Lines, `.csv` is CSV |
//! | `key` | the field whose value is the record key (default `"id"`) |
//! | `csv_delimiter` | one character separating CSV fields (default `","`) |
//! | `tail` | `true` (default): a last line without its line feed is not read yet (it may still be being written; it is read again from the file later, so a writer may also cut it off and write it anew, as this plugin's sink does after a crash) and the end of the last file is `caught-up`; `false`: the files are complete, the last line is read even without a line feed, and the end is `finished` |
//!
//! ```toml
//! [plugins.crm]
//! kind = "source"
//! wasm = "../../plugins/dist/file.wasm"
//! config = { paths = ["/in/contacts.jsonl", "/in/contacts.csv"], key = "id" }
//! grants = { files = [{ host = "data", guest = "/in", mode = "ro" }] }
//! ```
//!
//! **JSON Lines**: one object per line; values keep their JSON types
//! (integral numbers are `int`, other numbers `float`, objects and arrays
//! `json`). Blank lines are skipped.
//!
//! **CSV**: the first record is the header (an empty name becomes
//! `columnN`, a repeated one `name_N`); RFC 4180 quoting (quoted fields
//! may hold the delimiter, doubled quotes and line feeds); every value is
//! text, and an empty unquoted field is null (`""` is an empty text).
//!
//! **Keys**: a record without the key field is not dropped: it is emitted
//! with an empty key, for the validator (or the host) to reject it to the
//! dead-letter store.
//!
//! **Broken lines are records too.** A line that is not a JSON object, a
//! CSV record with the wrong number of fields or broken quoting, or bytes
//! that are not UTF-8, never stop the source and are never skipped: each
//! becomes a record whose key is `<path>:<line>` with two text fields,
//! `_raw` (the line as read) and `_error` (what is wrong with it). The
//! `schema-validator` plugin rejects such records by default
//! (`reject_errors`), so they land in the dead-letter store with the
//! reason.
//!
//! **Batches and checkpoints**: a poll returns at most `max-records`
//! records and never mixes two files. The checkpoint is the index of the
//! file, its byte offset after the last complete line returned and the
//! line number there (plus a hash of the path, to refuse a checkpoint made
//! for another file). After a restart reading resumes exactly there. A
//! checkpoint that cannot be decoded, or was made for another file list,
//! is an `invalid-config` error. A file that became shorter than its
//! checkpoint is a `fatal` error (it was truncated or replaced; rotation is
//! not supported).
//!
//! # Sink
//!
//! | key | meaning |
//! |---|---|
//! | `path` | the JSON Lines file to append to (created if needed) |
//! | `include_meta` | `true` adds `"_key"` and `"_op"` first in each object (default `false`) |
//! | `fields` | write only these fields, in this order, null where a record lacks one (default: every field of the batch) |
//!
//! ```toml
//! [plugins.warehouse]
//! kind = "sink"
//! wasm = "../../plugins/dist/file.wasm"
//! config = { path = "/out/warehouse.jsonl", include_meta = true }
//! grants = { files = [{ host = "out", guest = "/out", mode = "rw" }] }
//! ```
//!
//! Each record is one JSON object on one line, fields in column order (a
//! batch's columns are the union of its records' fields, so without
//! `fields` a line may carry nulls for fields only other records have),
//! nulls as `null`, timestamps as RFC 3339 text in UTC, JSON fields
//! embedded. A delete is the line `{"_key": "...", "_op": "delete"}`. Each
//! `write` appends all of its lines with one write to a file opened in
//! append mode, and `flush` syncs the file to disk (`sync_data`).
//!
//! **Exactly once.** A JSON Lines file is a log, not a table: it cannot
//! upsert by key, so the sink makes each record reach it once by commit
//! tokens (the WIT interface `sink-commit`): after each batch ferry asks
//! the file's length, and commits the length of the last delivered batch
//! in the same transaction as the source checkpoint. When the sink starts
//! again (after a crash, a trap, a restart), ferry hands it the committed
//! length and the sink truncates the file to it: the lines after it belong
//! to records whose checkpoint was never committed, and ferry writes them
//! again. The token carries a hash of the path: after the `path` changes,
//! the old length is ignored. A file found shorter than its committed
//! length (truncated or replaced outside ferry) is appended to as it is,
//! with a warning. The file is ferry's alone: a line another program
//! appends after the committed length is removed with the rest.
//!
//! For the same reason `fetch` answers an empty batch: the file has no
//! index to look keys up in; two-way sync is for databases.
//!
//! **Without a committed length** (a first run, or a host that does not
//! commit tokens) a crash can leave part of a line. ferry killed in the
//! middle of a `write` can leave the file ending in part of a line (the
//! system may have copied only part of the one write), and, without a
//! committed length, the lines written after the last checkpoint stay and
//! are written again (readers keep the last line per key: write with
//! `include_meta = true`). Before its first write, the sink looks at what
//! follows the file's last line feed:
//!
//! - the start of a JSON object cut short is removed: it is the rest of a
//!   write that never finished, so its records were not flushed, their
//!   source checkpoint was not committed, and ferry writes them again;
//! - a complete JSON value that only lacks its line feed gets one and stays
//!   (a JSON Lines file may end without one), and so does anything else,
//!   which this sink did not write: the lines appended after it stay whole.
//!
//! It looks on the first write, not at `open`: during a hot reload the new
//! instance is opened while the old one may still be writing. It looks
//! again after a write that failed, before the retry appends. A reader
//! tailing the file should not keep bytes after the last line feed (this
//! plugin's source reads them again).

mod checkpoint;
mod sink;
mod source;

pub use sink::{FileSink, SinkConfig};
pub use source::{FileSource, Format, SourceConfig, read_records};

ferry_plugin::export_exactly_once_connector!(FileSource, FileSink);

/// The bodies of the fuzz targets `file_csv` and `file_jsonl`
/// (`plugins/fuzz`, run by `scripts/fuzz.sh`), shared with the corpus
/// replay test (`tests/fuzz_corpus.rs`): any bytes are records or error
/// records, never a panic.
#[doc(hidden)]
pub mod fuzz {
    use crate::{Format, read_records};

    /// CSV: the first byte picks the delimiter, the rest is the file.
    pub fn csv(data: &[u8]) {
        let (pick, file) = data.split_first().map_or((0, data), |(&p, f)| (p, f));
        let delimiter = [b',', b';', b'\t', b'|'][usize::from(pick % 4)];
        let _ = read_records(file, Format::Csv, "id", delimiter);
    }

    /// JSON Lines: the bytes are the file.
    pub fn jsonl(data: &[u8]) {
        let _ = read_records(data, Format::Jsonl, "id", b',');
    }
}
