//! The sink side: JSON Lines, appended.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};

use ferry_plugin::json::{write_string, write_value};
use ferry_plugin::{Batch, Column, Op, PluginError, Sink, SinkCommit, Value, WriteReport};

use crate::checkpoint::path_hash;

/// The sink's `config` table (see the crate docs).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// The file to append to.
    pub path: String,
    /// Add `_key` and `_op` to each line.
    #[serde(default)]
    pub include_meta: bool,
    /// Write only these fields, in this order (null when a record lacks
    /// one); all of a batch's fields when absent.
    #[serde(default)]
    pub fields: Option<Vec<String>>,
}

/// The JSON Lines sink.
#[derive(Debug)]
pub struct FileSink {
    path: String,
    file: File,
    include_meta: bool,
    fields: Option<Vec<String>>,
    buf: Vec<u8>,
    /// Whether the end of the file was checked for a torn last line since
    /// this instance opened it or a write of it failed.
    tail_checked: bool,
}

impl Sink for FileSink {
    type Config = SinkConfig;

    fn open(config: SinkConfig) -> Result<Self, PluginError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.path)
            .map_err(|e| {
                PluginError::invalid_config(format!(
                    "cannot open {:?} for appending: {e} (is its folder granted read-write?)",
                    config.path
                ))
            })?;
        Ok(FileSink {
            path: config.path,
            file,
            include_meta: config.include_meta,
            fields: config.fields,
            buf: Vec::new(),
            tail_checked: false,
        })
    }

    fn write(&mut self, records: &Batch) -> Result<WriteReport, PluginError> {
        self.buf.clear();
        match &self.fields {
            None => {
                for row in records.rows() {
                    row.write_json(&mut self.buf, self.include_meta);
                    self.buf.push(b'\n');
                }
            }
            Some(fields) => {
                // Columns are looked up once per batch.
                let columns: Vec<(&str, Option<Column<'_>>)> = fields
                    .iter()
                    .map(|f| (f.as_str(), records.column(f)))
                    .collect();
                for row in records.rows() {
                    if row.op() == Op::Delete {
                        row.write_json(&mut self.buf, self.include_meta);
                    } else {
                        self.buf.push(b'{');
                        let mut first = true;
                        if self.include_meta {
                            self.buf.extend_from_slice(b"\"_key\":");
                            write_string(&mut self.buf, row.key());
                            self.buf.extend_from_slice(b",\"_op\":\"upsert\"");
                            first = false;
                        }
                        for (name, column) in &columns {
                            if !first {
                                self.buf.push(b',');
                            }
                            first = false;
                            write_string(&mut self.buf, name);
                            self.buf.push(b':');
                            write_value(
                                &mut self.buf,
                                column.map_or(Value::Null, |c| row.value(c)),
                            );
                        }
                        self.buf.push(b'}');
                    }
                    self.buf.push(b'\n');
                }
            }
        }
        if !self.buf.is_empty() {
            if !self.tail_checked {
                self.repair_tail()?;
                self.tail_checked = true;
            }
            if let Err(e) = self.file.write_all(&self.buf) {
                // Part of the lines may have been written: look again
                // before the retry appends.
                self.tail_checked = false;
                return Err(PluginError::retryable(format!(
                    "cannot write to {:?}: {e}",
                    self.path
                )));
            }
        }
        // Keep the buffer for the next batch, unless one batch made it huge.
        if self.buf.capacity() > 16 << 20 {
            self.buf = Vec::new();
        }
        Ok(WriteReport::ok())
    }

    fn flush(&mut self) -> Result<(), PluginError> {
        self.file
            .sync_data()
            .map_err(|e| PluginError::retryable(format!("cannot sync {:?}: {e}", self.path)))
    }
}

/// The first byte of a commit token: its layout's version.
const TOKEN_VERSION: u8 = 1;

/// A commit token: version (1 byte), FNV-1a hash of the path (u32, LE),
/// the file's length (u64, LE).
fn encode_token(path: &str, len: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(13);
    out.push(TOKEN_VERSION);
    out.extend_from_slice(&path_hash(path).to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out
}

/// The (path hash, length) of a token, or why it cannot be read.
fn decode_token(token: &[u8]) -> Result<(u32, u64), String> {
    let [version, h0, h1, h2, h3, l @ ..] = token else {
        return Err(format!("{} bytes, too short", token.len()));
    };
    if *version != TOKEN_VERSION {
        return Err(format!(
            "layout version {version}, this plugin writes {TOKEN_VERSION}"
        ));
    }
    let len: [u8; 8] = l
        .try_into()
        .map_err(|_| format!("{} bytes, expected 13", token.len()))?;
    Ok((
        u32::from_le_bytes([*h0, *h1, *h2, *h3]),
        u64::from_le_bytes(len),
    ))
}

impl SinkCommit for FileSink {
    /// Truncates the file to the committed length: what follows was
    /// written after the last committed checkpoint, and ferry writes those
    /// records again. Then it repairs a torn last line (see the crate docs).
    fn resume(&mut self, token: Option<&[u8]>) -> Result<(), PluginError> {
        if let Some(token) = token {
            self.truncate_to(token)?;
        }
        // ferry resumes a sink when no other instance writes: the end of
        // the file can be repaired now, so the position reflects it.
        if !self.tail_checked {
            self.repair_tail()?;
            self.tail_checked = true;
        }
        Ok(())
    }

    fn position(&mut self) -> Result<Vec<u8>, PluginError> {
        let len = self
            .file
            .metadata()
            .map_err(|e| PluginError::retryable(format!("cannot stat {:?}: {e}", self.path)))?
            .len();
        Ok(encode_token(&self.path, len))
    }
}

impl FileSink {
    /// Truncates the file to a commit token's length.
    fn truncate_to(&mut self, token: &[u8]) -> Result<(), PluginError> {
        let (hash, committed) = decode_token(token).map_err(|e| {
            PluginError::invalid_config(format!(
                "the commit token ferry kept for {:?} cannot be read ({e}); was it written by another plugin for this stage?",
                self.path
            ))
        })?;
        let path = &self.path;
        if hash != path_hash(path) {
            ferry_plugin::log::warn!(
                "{path}: the committed length was made for another file (the `path` changed); nothing is truncated"
            );
            return Ok(());
        }
        let io = |e: std::io::Error| {
            PluginError::retryable(format!(
                "cannot truncate {path:?} to its committed length: {e}"
            ))
        };
        let len = self.file.metadata().map_err(io)?.len();
        if len > committed {
            self.file.set_len(committed).map_err(io)?;
            self.file.sync_data().map_err(io)?;
            ferry_plugin::log::info!(
                "{path}: removed {} bytes written after the last commit (from byte {committed}); their records are written again",
                len - committed
            );
            self.tail_checked = true;
        } else if len < committed {
            ferry_plugin::log::warn!(
                "{path}: the file has {len} bytes, fewer than the {committed} committed: it was truncated or replaced outside ferry; appending to it as it is"
            );
        } else {
            self.tail_checked = true;
        }
        Ok(())
    }
}

/// What follows the last line feed of the file.
#[derive(Debug, PartialEq, Eq)]
enum Tail {
    /// Nothing: the file is empty or ends with a line feed.
    Clean,
    /// A JSON object cut short: the rest of a write a crash interrupted.
    Torn,
    /// Something complete, only without its line feed: a whole JSON value,
    /// or bytes this sink did not write.
    Unterminated,
}

impl FileSink {
    /// Makes the file end with a whole line before the first append (see
    /// the crate docs, "After a crash"): a torn last line is removed, any
    /// other unterminated one gets its line feed.
    fn repair_tail(&mut self) -> Result<(), PluginError> {
        let path = &self.path;
        let io = |e: std::io::Error| {
            PluginError::retryable(format!("cannot check the end of {path:?}: {e}"))
        };
        let mut reader = File::open(path).map_err(io)?;
        let len = reader.metadata().map_err(io)?.len();
        let start = after_last_line_feed(&mut reader, len).map_err(io)?;
        match classify_tail(&mut reader, start, len).map_err(io)? {
            Tail::Clean => {}
            Tail::Torn => {
                self.file.set_len(start).map_err(io)?;
                ferry_plugin::log::warn!(
                    "{path}: removed a torn last line ({} bytes from byte {start}): a write \
                     cut short by a crash, whose records were not committed and are written again",
                    len - start
                );
            }
            Tail::Unterminated => {
                self.file.write_all(b"\n").map_err(io)?;
                ferry_plugin::log::warn!(
                    "{path}: the last line (from byte {start}) had no line feed; added one"
                );
            }
        }
        Ok(())
    }
}

/// The offset just past the last line feed of the first `len` bytes of
/// `file` (0 when there is none), read backwards in chunks.
fn after_last_line_feed(file: &mut File, len: u64) -> std::io::Result<u64> {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let part = chunk
            .get_mut(..usize::try_from(end - start).unwrap_or(0))
            .unwrap_or_default();
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(part)?;
        if let Some(i) = part.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Looks at the bytes from `start` (just past the last line feed) to `len`.
/// Only a strict prefix of a JSON object is torn: every line this sink
/// writes is one whole object, so a write cut short leaves such a prefix.
fn classify_tail(file: &mut File, start: u64, len: u64) -> std::io::Result<Tail> {
    if start >= len {
        return Ok(Tail::Clean);
    }
    file.seek(SeekFrom::Start(start))?;
    let mut first = [0u8];
    file.read_exact(&mut first)?;
    if first != *b"{" {
        return Ok(Tail::Unterminated);
    }
    file.seek(SeekFrom::Start(start))?;
    // Streamed, so a long line costs no memory.
    let mut de = serde_json::Deserializer::from_reader(BufReader::new(file.take(len - start)));
    let parsed =
        <serde::de::IgnoredAny as serde::Deserialize>::deserialize(&mut de).and_then(|_| de.end());
    match parsed {
        Ok(()) => Ok(Tail::Unterminated),
        Err(e) if e.is_io() => Err(std::io::Error::other(e)),
        Err(e) if e.is_eof() => Ok(Tail::Torn),
        Err(_) => Ok(Tail::Unterminated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_plugin::{BatchBuilder, Op, TextList};

    #[test]
    fn appends_json_lines() {
        let dir = std::env::temp_dir().join(format!("ferry-file-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.jsonl");
        let _ = std::fs::remove_file(&path);
        let config = |meta: bool| SinkConfig {
            path: path.to_string_lossy().into_owned(),
            include_meta: meta,
            fields: None,
        };
        let mut b = BatchBuilder::new();
        b.row("1", Op::Upsert)
            .set("name", "Ada")
            .set("age", 36)
            .set_timestamp("t", 0);
        b.row("2", Op::Delete);
        let batch = Batch::from_raw(b.finish()).unwrap();
        let mut sink = FileSink::open(config(false)).unwrap();
        assert_eq!(sink.write(&batch).unwrap(), WriteReport::ok());
        sink.flush().unwrap();
        let mut sink = FileSink::open(config(true)).unwrap();
        sink.write(&batch).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\"name\":\"Ada\",\"age\":36,\"t\":\"1970-01-01T00:00:00Z\"}\n\
             {\"_key\":\"2\",\"_op\":\"delete\"}\n\
             {\"_key\":\"1\",\"_op\":\"upsert\",\"name\":\"Ada\",\"age\":36,\"t\":\"1970-01-01T00:00:00Z\"}\n\
             {\"_key\":\"2\",\"_op\":\"delete\"}\n"
        );
        let fetched = sink.fetch(&TextList::default()).unwrap();
        assert!(fetched.ops.is_empty());

        std::fs::remove_file(&path).unwrap();
        let mut sink = FileSink::open(SinkConfig {
            fields: Some(vec!["age".into(), "email".into()]),
            ..config(false)
        })
        .unwrap();
        sink.write(&batch).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"age\":36,\"email\":null}\n{\"_key\":\"2\",\"_op\":\"delete\"}\n"
        );
    }

    fn one_record(key: &str) -> Batch {
        let mut b = BatchBuilder::new();
        b.row(key, Op::Upsert).set("n", 1);
        Batch::from_raw(b.finish()).unwrap()
    }

    /// Opens a sink on a file holding `before`, writes one record, and
    /// returns what the file then holds; checks that `open` alone changed
    /// nothing.
    fn append_after(name: &str, before: &[u8]) -> String {
        let dir = std::env::temp_dir().join(format!("ferry-file-sink-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, before).unwrap();
        let mut sink = FileSink::open(SinkConfig {
            path: path.to_string_lossy().into_owned(),
            include_meta: true,
            fields: None,
        })
        .unwrap();
        // During a hot reload the new instance is opened while the old one
        // may still be writing: only a write may touch the file.
        assert_eq!(std::fs::read(&path).unwrap(), before);
        sink.write(&one_record("9")).unwrap();
        sink.flush().unwrap();
        // The next write of the same instance only appends.
        sink.write(&one_record("10")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        text
    }

    const NINE_TEN: &str = "{\"_key\":\"9\",\"_op\":\"upsert\",\"n\":1}\n\
                            {\"_key\":\"10\",\"_op\":\"upsert\",\"n\":1}\n";

    #[test]
    fn a_torn_last_line_is_removed_before_the_first_write() {
        let whole = "{\"_key\":\"1\",\"_op\":\"upsert\",\"n\":1}\n";
        // A crash in the middle of a write: the next line is cut anywhere,
        // even inside a string or a multi-byte character.
        let next = "{\"_key\":\"2\",\"_op\":\"upsert\",\"name\":\"Zoë\",\"ok\":true}";
        for cut in 1..next.len() {
            let torn = [whole.as_bytes(), &next.as_bytes()[..cut]].concat();
            assert_eq!(
                append_after("torn.jsonl", &torn),
                format!("{whole}{NINE_TEN}"),
                "cut after {cut} bytes"
            );
        }
        // A torn first line of the file.
        assert_eq!(
            append_after("first.jsonl", b"{\"_key\":\"1\",\"_o"),
            NINE_TEN
        );
    }

    #[test]
    fn a_complete_last_line_without_a_line_feed_is_kept_and_terminated() {
        let whole = "{\"_key\":\"1\",\"_op\":\"upsert\",\"n\":1}\n";
        let last = "{\"_key\":\"2\",\"_op\":\"upsert\",\"n\":2} ";
        assert_eq!(
            append_after("complete.jsonl", format!("{whole}{last}").as_bytes()),
            format!("{whole}{last}\n{NINE_TEN}")
        );
        // Bytes this sink did not write stay too: only a prefix of a JSON
        // object is a torn line.
        for foreign in ["just text", "{\"a\": 1} trailing", "[1, 2"] {
            assert_eq!(
                append_after("foreign.jsonl", format!("{whole}{foreign}").as_bytes()),
                format!("{whole}{foreign}\n{NINE_TEN}")
            );
        }
        // Clean files are appended to as they are.
        assert_eq!(append_after("empty.jsonl", b""), NINE_TEN);
        assert_eq!(
            append_after("clean.jsonl", whole.as_bytes()),
            format!("{whole}{NINE_TEN}")
        );
    }

    #[test]
    fn the_tail_is_found_across_read_chunks() {
        // A last line longer than the 64 KiB the backwards scan reads at a
        // time, cut short.
        let whole = "{\"_key\":\"1\",\"_op\":\"upsert\",\"n\":1}\n";
        let long = format!("{{\"_key\":\"2\",\"text\":\"{}", "x".repeat(200_000));
        assert_eq!(
            append_after("long.jsonl", format!("{whole}{long}").as_bytes()),
            format!("{whole}{NINE_TEN}")
        );
        let complete = format!("{long}\"}}");
        assert_eq!(
            append_after(
                "long-complete.jsonl",
                format!("{whole}{complete}").as_bytes()
            ),
            format!("{whole}{complete}\n{NINE_TEN}")
        );
    }

    #[test]
    fn resume_truncates_to_the_committed_length_and_ignores_another_files_token() {
        let dir =
            std::env::temp_dir().join(format!("ferry-file-sink-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.jsonl");
        std::fs::write(&path, b"{\"_key\":\"0\"}\n").unwrap();
        let config = || SinkConfig {
            path: path.to_string_lossy().into_owned(),
            include_meta: true,
            fields: None,
        };
        let mut sink = FileSink::open(config()).unwrap();
        sink.resume(None).unwrap();
        let baseline = sink.position().unwrap();
        sink.write(&one_record("1")).unwrap();
        let committed = sink.position().unwrap();
        sink.write(&one_record("2")).unwrap();
        sink.flush().unwrap();
        let one = "{\"_key\":\"0\"}\n{\"_key\":\"1\",\"_op\":\"upsert\",\"n\":1}\n";
        // A new instance resumes at the committed token: record 2 (after
        // it) is removed, and written again by ferry.
        let mut again = FileSink::open(config()).unwrap();
        again.resume(Some(&committed)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), one);
        assert_eq!(again.position().unwrap(), committed);
        again.write(&one_record("2")).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{one}{{\"_key\":\"2\",\"_op\":\"upsert\",\"n\":1}}\n")
        );
        // The baseline undoes every write of a first run.
        FileSink::open(config())
            .unwrap()
            .resume(Some(&baseline))
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"_key\":\"0\"}\n"
        );
        // A token of another path truncates nothing; one that cannot be
        // read is a configuration error.
        let foreign = encode_token("/elsewhere.jsonl", 0);
        FileSink::open(config())
            .unwrap()
            .resume(Some(&foreign))
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"_key\":\"0\"}\n"
        );
        let err = FileSink::open(config())
            .unwrap()
            .resume(Some(b"junk"))
            .unwrap_err();
        assert!(
            matches!(&err, PluginError::InvalidConfig(m) if m.contains("cannot be read")),
            "{err:?}"
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn unwritable_path_is_invalid_config() {
        let config = SinkConfig {
            path: "/nonexistent-dir/x.jsonl".into(),
            include_meta: false,
            fields: None,
        };
        assert!(matches!(
            FileSink::open(config),
            Err(PluginError::InvalidConfig(_))
        ));
    }
}
