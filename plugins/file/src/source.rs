//! The source side: JSON Lines and CSV files, read in order, with tail mode.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use ferry_plugin::csv::{self, FieldSpan};
use ferry_plugin::{BatchBuilder, ColumnId, Op, PluginError, Polled, Source, SourceStatus, Value};

use crate::checkpoint::{self, Position};

/// How many bytes each read asks for.
const CHUNK: usize = 256 * 1024;

/// A file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON Lines: one JSON object per line.
    Jsonl,
    /// CSV with a header record.
    Csv,
}

fn default_key() -> String {
    "id".to_owned()
}

fn yes() -> bool {
    true
}

/// The source's `config` table (see the crate docs).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// One file to read.
    #[serde(default)]
    pub path: Option<String>,
    /// Several files, read in order.
    #[serde(default)]
    pub paths: Option<Vec<String>>,
    /// The format; by extension when absent.
    #[serde(default)]
    pub format: Option<Format>,
    /// The field holding the record key.
    #[serde(default = "default_key")]
    pub key: String,
    /// The CSV field delimiter, one character.
    #[serde(default)]
    pub csv_delimiter: Option<String>,
    /// Wait for a last line's line feed (default true).
    #[serde(default = "yes")]
    pub tail: bool,
}

#[derive(Debug)]
struct Input {
    path: String,
    format: Format,
}

/// An open file: its handle and the bytes read ahead of the position.
#[derive(Debug)]
struct Reader {
    file: File,
    buf: Vec<u8>,
    /// The first byte of `buf` not consumed yet.
    start: usize,
    /// The CSV header, once read.
    header: Option<Header>,
    /// The file offset just past `buf`.
    end: u64,
    /// Whether the last read hit the end of the file.
    at_eof: bool,
}

#[derive(Debug)]
struct Header {
    names: Vec<String>,
    key: Option<usize>,
}

impl Reader {
    fn pending(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or(&[])
    }

    /// Reads more bytes; false at the end of the file (for now).
    fn fill(&mut self) -> std::io::Result<bool> {
        if self.at_eof {
            // The bytes not consumed yet (at the end of the file, an
            // unfinished last line) are read again, not kept: a writer that
            // crashed in the middle of a line may have removed its torn part
            // since and written the line anew (the file sink does).
            let unfinished = self.pending().len();
            self.buf.truncate(self.start);
            self.end -= unfinished as u64;
            // After a read at the end of the file, WASI's libc keeps the
            // file's input stream closed: later reads would see nothing even
            // when the file grew. Seeking opens a fresh stream.
            self.file.seek(SeekFrom::Start(self.end))?;
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + CHUNK, 0);
        let n = loop {
            match self.file.read(self.buf.get_mut(old..).unwrap_or(&mut [])) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(e);
                }
            }
        };
        self.buf.truncate(old + n);
        self.end += n as u64;
        self.at_eof = n == 0;
        Ok(n > 0)
    }
}

/// Why reading a file stopped.
enum Outcome {
    /// The batch is full.
    Full,
    /// No complete record is left in the file for now.
    Exhausted,
}

/// The file source.
#[derive(Debug)]
pub struct FileSource {
    inputs: Vec<Input>,
    key: String,
    delimiter: u8,
    tail: bool,
    pos: Position,
    reader: Option<Reader>,
    spans: Vec<FieldSpan>,
    /// The offset at which an unfinished last line was reported, so it is
    /// reported once.
    warned_at: Option<(usize, u64)>,
}

impl Source for FileSource {
    type Config = SourceConfig;

    fn open(config: SourceConfig, checkpoint: Option<&[u8]>) -> Result<Self, PluginError> {
        let paths = match (config.path, config.paths) {
            (Some(p), None) => vec![p],
            (None, Some(ps)) if !ps.is_empty() => ps,
            (None, Some(_)) => {
                return Err(PluginError::invalid_config(
                    "config.paths: the list is empty",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(PluginError::invalid_config(
                    "config: give either path or paths, not both",
                ));
            }
            (None, None) => {
                return Err(PluginError::invalid_config(
                    "config: path or paths is required",
                ));
            }
        };
        let delimiter = match config.csv_delimiter.as_deref() {
            None => b',',
            Some(d) if d.len() == 1 && d != "\"" && d != "\n" && d != "\r" => {
                d.as_bytes().first().copied().unwrap_or(b',')
            }
            Some(d) => {
                return Err(PluginError::invalid_config(format!(
                    "config.csv_delimiter: {d:?} is not a single ASCII character other than a quote or line break"
                )));
            }
        };
        let mut inputs = Vec::with_capacity(paths.len());
        for path in &paths {
            let format = match config.format {
                Some(f) => f,
                None => format_by_extension(path).ok_or_else(|| {
                    PluginError::invalid_config(format!(
                        "config.format: cannot tell the format of {path:?} by its extension \
                         (.jsonl, .ndjson or .csv); set format = \"jsonl\" or \"csv\""
                    ))
                })?,
            };
            match std::fs::metadata(path) {
                Ok(m) if m.is_file() => {}
                Ok(_) => {
                    return Err(PluginError::invalid_config(format!(
                        "{path:?} is not a file"
                    )));
                }
                Err(e) => {
                    return Err(PluginError::invalid_config(format!(
                        "cannot read {path:?}: {e} (is its folder granted to this plugin?)"
                    )));
                }
            }
            inputs.push(Input {
                path: path.clone(),
                format,
            });
        }
        let pos = match checkpoint {
            None => Position::default(),
            Some(bytes) => {
                checkpoint::decode(bytes, &paths).map_err(PluginError::invalid_config)?
            }
        };
        Ok(FileSource {
            inputs,
            key: config.key,
            delimiter,
            tail: config.tail,
            pos,
            reader: None,
            spans: Vec::new(),
            warned_at: None,
        })
    }

    fn poll(&mut self, max_records: u32) -> Result<Polled, PluginError> {
        let max = max_records.max(1) as usize;
        let mut b = BatchBuilder::with_capacity(max.min(4096));
        let status = loop {
            if self.pos.file >= self.inputs.len() {
                break if self.tail {
                    SourceStatus::CaughtUp
                } else {
                    SourceStatus::Finished
                };
            }
            let last = self.pos.file + 1 == self.inputs.len();
            let complete = !last || !self.tail;
            match self.read_file(&mut b, max, complete)? {
                Outcome::Full => break SourceStatus::More,
                Outcome::Exhausted if last && self.tail => {
                    self.warn_unfinished_line();
                    break SourceStatus::CaughtUp;
                }
                Outcome::Exhausted => {
                    self.pos = Position {
                        file: self.pos.file + 1,
                        offset: 0,
                        line: 0,
                    };
                    self.reader = None;
                    if !b.is_empty() {
                        // One file per batch: the next poll starts the next file.
                        break if self.pos.file < self.inputs.len() {
                            SourceStatus::More
                        } else {
                            SourceStatus::Finished
                        };
                    }
                }
            }
        };
        let path = self.inputs.get(self.pos.file).map(|i| i.path.as_str());
        Ok(Polled {
            records: b.finish(),
            checkpoint: checkpoint::encode(self.pos, path),
            status,
        })
    }
}

fn format_by_extension(path: &str) -> Option<Format> {
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    match ext.as_str() {
        "jsonl" | "ndjson" => Some(Format::Jsonl),
        "csv" => Some(Format::Csv),
        _ => None,
    }
}

fn io_error(path: &str, what: &str, e: std::io::Error) -> PluginError {
    PluginError::retryable(format!("{what} {path:?}: {e}"))
}

/// Removes one trailing `\r`.
fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn push_error(b: &mut BatchBuilder, path: &str, line: u64, raw: &str, error: &str) {
    b.row(&format!("{path}:{line}"), Op::Upsert)
        .set("_raw", raw)
        .set("_error", error);
}

impl FileSource {
    fn warn_unfinished_line(&mut self) {
        let pending = self.reader.as_ref().map_or(0, |r| r.pending().len());
        let here = (self.pos.file, self.pos.offset);
        if pending > 0 && self.warned_at != Some(here) {
            self.warned_at = Some(here);
            if let Some(input) = self.inputs.get(self.pos.file) {
                ferry_plugin::log::warn!(
                    "{}: {} bytes after the last line feed are not read yet (a line still being written?); \
                     set tail = false if the file is complete",
                    input.path,
                    pending
                );
            }
        }
    }

    /// Opens the current file at the current offset (reading the CSV header
    /// first when resuming past it).
    fn open_reader(&mut self) -> Result<(), PluginError> {
        let Some(input) = self.inputs.get(self.pos.file) else {
            return Ok(());
        };
        let format = input.format;
        let path = input.path.clone();
        let path = path.as_str();
        let mut file = File::open(path).map_err(|e| io_error(path, "cannot open", e))?;
        let len = file
            .metadata()
            .map_err(|e| io_error(path, "cannot read", e))?
            .len();
        if len < self.pos.offset {
            return Err(PluginError::fatal(format!(
                "{path:?} has {len} bytes but the checkpoint is at byte {}: the file was truncated or replaced",
                self.pos.offset
            )));
        }
        let header = if format == Format::Csv && self.pos.offset > 0 {
            Some(self.read_header(path, &mut file)?)
        } else {
            None
        };
        file.seek(SeekFrom::Start(self.pos.offset))
            .map_err(|e| io_error(path, "cannot seek in", e))?;
        self.reader = Some(Reader {
            file,
            buf: Vec::new(),
            start: 0,
            header,
            end: self.pos.offset,
            at_eof: false,
        });
        Ok(())
    }

    /// Reads the header record from the start of a CSV file.
    fn read_header(&mut self, path: &str, file: &mut File) -> Result<Header, PluginError> {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            // Skip a byte order mark and blank lines before the header, as
            // reading does.
            let mut at = if buf.starts_with(b"\xEF\xBB\xBF") {
                3
            } else {
                0
            };
            while let Some(rec) = buf
                .get(at..)
                .and_then(|rest| csv::read_record(rest, self.delimiter, false, &mut self.spans))
            {
                let body = buf.get(at..at + rec.content_end).unwrap_or(&[]);
                if !body.is_empty() {
                    let text = std::str::from_utf8(body).map_err(|_| {
                        PluginError::fatal(format!("{path:?}: the CSV header is not UTF-8"))
                    })?;
                    return Ok(header_from(&self.spans, text, &self.key));
                }
                at += rec.consumed;
            }
            let n = file
                .read(&mut chunk)
                .map_err(|e| io_error(path, "cannot read", e))?;
            if n == 0 || buf.len() as u64 > self.pos.offset {
                return Err(PluginError::fatal(format!(
                    "{path:?}: no complete CSV header before the checkpoint (byte {})",
                    self.pos.offset
                )));
            }
            buf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
        }
    }

    /// Reads records of the current file into `b` until it holds `max`
    /// records or no complete record is left. With `complete`, the end of
    /// the file also ends its last record (no line feed needed).
    fn read_file(
        &mut self,
        b: &mut BatchBuilder,
        max: usize,
        complete: bool,
    ) -> Result<Outcome, PluginError> {
        if self.reader.is_none() {
            self.open_reader()?;
        }
        let mut ids: Option<Vec<ColumnId>> = None;
        loop {
            if b.len() >= max {
                return Ok(Outcome::Full);
            }
            if self.next_record(b, &mut ids, false)? {
                continue;
            }
            let path = self
                .inputs
                .get(self.pos.file)
                .map_or("", |i| i.path.as_str());
            let more = match self.reader.as_mut() {
                Some(r) => r.fill().map_err(|e| io_error(path, "cannot read", e))?,
                None => false,
            };
            if more {
                continue;
            }
            if complete {
                while b.len() < max && self.next_record(b, &mut ids, true)? {}
                if self
                    .reader
                    .as_ref()
                    .is_some_and(|r| !r.pending().is_empty())
                {
                    return Ok(Outcome::Full);
                }
            }
            return Ok(Outcome::Exhausted);
        }
    }

    /// Reads one record from the buffered bytes, if a complete one is
    /// there. Returns whether a record (or a blank line, or the header) was
    /// consumed.
    fn next_record(
        &mut self,
        b: &mut BatchBuilder,
        ids: &mut Option<Vec<ColumnId>>,
        at_eof: bool,
    ) -> Result<bool, PluginError> {
        let FileSource {
            inputs,
            key,
            delimiter,
            pos,
            reader,
            spans,
            ..
        } = self;
        let (Some(input), Some(reader)) = (inputs.get(pos.file), reader.as_mut()) else {
            return Ok(false);
        };
        let Reader {
            buf, start, header, ..
        } = reader;
        let pending = buf.get(*start..).unwrap_or(&[]);
        let mut parser = Parser {
            path: &input.path,
            format: input.format,
            key,
            delimiter: *delimiter,
            spans,
            header,
        };
        let Some((consumed, newlines)) = parser.next(pending, *pos, b, ids, at_eof) else {
            return Ok(false);
        };
        *start += consumed;
        pos.offset += consumed as u64;
        pos.line += newlines as u64;
        Ok(true)
    }
}

/// Turns the bytes of one file into records: what the source does once the
/// bytes are read, apart from files and checkpoints, so [`read_records`]
/// (and through it the fuzz targets) runs exactly the source's parsing.
struct Parser<'a> {
    path: &'a str,
    format: Format,
    key: &'a str,
    delimiter: u8,
    spans: &'a mut Vec<FieldSpan>,
    /// The file's CSV header, once read.
    header: &'a mut Option<Header>,
}

impl Parser<'_> {
    /// Reads one record from `pending` (the file's bytes from `pos` on) into
    /// `b`, if a complete one is there (with `at_eof`, the end of `pending`
    /// also ends its last record). Returns the bytes and line feeds consumed
    /// by the record (or the blank line, the header, the byte order mark), or
    /// `None` when more bytes are needed.
    fn next(
        &mut self,
        pending: &[u8],
        pos: Position,
        b: &mut BatchBuilder,
        ids: &mut Option<Vec<ColumnId>>,
        at_eof: bool,
    ) -> Option<(usize, usize)> {
        let Parser {
            path,
            format,
            key,
            delimiter,
            spans,
            header,
        } = self;
        let (path, key) = (*path, *key);
        if pending.is_empty() {
            return None;
        }
        if pos.offset == 0 && pending.starts_with(b"\xEF\xBB\xBF") {
            // A UTF-8 byte order mark (spreadsheet exports write one).
            return Some((3, 0));
        }
        let line = pos.line + 1;
        let (consumed, newlines) = match format {
            Format::Jsonl => {
                let (body, consumed) = match pending.iter().position(|&c| c == b'\n') {
                    Some(i) => (pending.get(..i).unwrap_or(&[]), i + 1),
                    None if at_eof => (pending, pending.len()),
                    None => return None,
                };
                let body = strip_cr(body);
                if !body.iter().all(u8::is_ascii_whitespace) {
                    match std::str::from_utf8(body) {
                        Ok(text) => {
                            if let Err(e) = b.push_json_line(text, key, Op::Upsert) {
                                push_error(b, path, line, text, &e.to_string());
                            }
                        }
                        Err(_) => {
                            let raw = String::from_utf8_lossy(body);
                            push_error(b, path, line, &raw, "the line is not valid UTF-8");
                        }
                    }
                }
                (consumed, 1)
            }
            Format::Csv => {
                let rec = csv::read_record(pending, *delimiter, at_eof, spans)?;
                let body = pending.get(..rec.content_end).unwrap_or(&[]);
                if !body.is_empty() {
                    match std::str::from_utf8(body) {
                        Err(_) => {
                            let raw = String::from_utf8_lossy(body);
                            push_error(b, path, line, &raw, "the record is not valid UTF-8");
                        }
                        Ok(text) => match &**header {
                            None => {
                                let new_header = header_from(spans, text, key);
                                if new_header.key.is_none() {
                                    ferry_plugin::log::warn!(
                                        "{path}: no column {key:?} in the header; its records get an empty key"
                                    );
                                }
                                **header = Some(new_header);
                            }
                            Some(header) => {
                                if let Some(problem) = rec.malformed {
                                    push_error(b, path, line, text, problem);
                                } else if spans.len() != header.names.len() {
                                    let msg = format!(
                                        "expected {} fields (as in the header), found {}",
                                        header.names.len(),
                                        spans.len()
                                    );
                                    push_error(b, path, line, text, &msg);
                                } else {
                                    let ids = ids.get_or_insert_with(|| {
                                        header.names.iter().map(|n| b.column(n)).collect()
                                    });
                                    let record_key = header
                                        .key
                                        .and_then(|k| spans.get(k))
                                        .filter(|s| !s.is_null())
                                        .map(|s| s.text(text));
                                    let mut row =
                                        b.row(record_key.as_deref().unwrap_or(""), Op::Upsert);
                                    for (span, &id) in spans.iter().zip(ids.iter()) {
                                        if span.is_null() {
                                            row.set_at(id, Value::Null);
                                        } else {
                                            row.set_at(id, Value::Text(&span.text(text)));
                                        }
                                    }
                                }
                            }
                        },
                    }
                }
                (rec.consumed, rec.newlines)
            }
        };
        Some((consumed, newlines))
    }
}

/// Reads every record of `bytes`, the whole content of one file in
/// `format`, as the source does (with `tail = false`: the end of the bytes
/// ends the last record): the same records, error records included, in one
/// batch. A library function over bytes, without files or WASI, for the
/// fuzz targets (`plugins/fuzz`) and their corpus replay tests. `delimiter`
/// is the CSV field delimiter (the source's `csv_delimiter`).
pub fn read_records(
    bytes: &[u8],
    format: Format,
    key: &str,
    delimiter: u8,
) -> ferry_plugin::types::Batch {
    let mut b = BatchBuilder::new();
    let (mut spans, mut header, mut ids) = (Vec::new(), None, None);
    let mut parser = Parser {
        path: "input",
        format,
        key,
        delimiter,
        spans: &mut spans,
        header: &mut header,
    };
    let mut pos = Position::default();
    let mut at = 0usize;
    for at_eof in [false, true] {
        while let Some((consumed, newlines)) = bytes
            .get(at..)
            .and_then(|pending| parser.next(pending, pos, &mut b, &mut ids, at_eof))
        {
            at += consumed;
            pos.offset += consumed as u64;
            pos.line += newlines as u64;
        }
    }
    b.finish()
}

/// Builds a header from the spans of the record in `text` (free function
/// for use while `self` is split into its fields).
fn header_from(spans: &[FieldSpan], text: &str, key: &str) -> Header {
    let mut names: Vec<String> = Vec::with_capacity(spans.len());
    for (i, span) in spans.iter().enumerate() {
        let raw = span.text(text);
        let base = if raw.trim().is_empty() {
            format!("column{}", i + 1)
        } else {
            raw.into_owned()
        };
        let mut name = base.clone();
        let mut n = 2;
        while names.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        names.push(name);
    }
    let key = names.iter().position(|n| n == key);
    Header { names, key }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_plugin::Batch;
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn temp_dir() -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ferry-file-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write(dir: &Path, name: &str, text: &str) -> String {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    }

    fn config(json: serde_json::Value) -> SourceConfig {
        ferry_plugin::config::parse(&json.to_string()).unwrap()
    }

    fn open(json: serde_json::Value, checkpoint: Option<&[u8]>) -> FileSource {
        FileSource::open(config(json), checkpoint).unwrap()
    }

    fn poll(s: &mut FileSource, max: u32) -> (Batch, Vec<u8>, SourceStatus) {
        let p = s.poll(max).unwrap();
        (Batch::from_raw(p.records).unwrap(), p.checkpoint, p.status)
    }

    #[test]
    fn reads_jsonl_with_types_and_error_records() {
        let dir = temp_dir();
        let path = write(
            &dir,
            "a.jsonl",
            "{\"id\": 1, \"name\": \"Ada\", \"age\": 36.5}\n\n{\"id\": \"x\"\n[1]\n{\"name\": \"no key\"}\n",
        );
        let mut s = open(serde_json::json!({ "path": path }), None);
        let (b, _, status) = poll(&mut s, 100);
        assert_eq!(status, SourceStatus::CaughtUp);
        assert_eq!(b.len(), 4);
        let r = b.row(0).unwrap();
        assert_eq!(r.key(), "1");
        assert_eq!(r.get("id"), Value::Int(1));
        assert_eq!(r.get("age"), Value::Float(36.5));
        let bad = b.row(1).unwrap();
        assert_eq!(bad.key(), format!("{path}:3"));
        assert_eq!(bad.get("_raw"), Value::Text("{\"id\": \"x\""));
        assert!(
            bad.text("_error").unwrap().starts_with("invalid JSON"),
            "{:?}",
            bad.get("_error")
        );
        assert_eq!(b.row(2).unwrap().key(), format!("{path}:4"));
        assert_eq!(
            b.row(2).unwrap().get("_error"),
            Value::Text("not a JSON object")
        );
        assert_eq!(b.row(3).unwrap().key(), "");
        assert_eq!(b.row(3).unwrap().get("name"), Value::Text("no key"));
    }

    #[test]
    fn read_records_reads_bytes_as_the_source_reads_the_file() {
        let dir = temp_dir();
        let csv =
            "\u{feff}id;name;note\r\n1;\"Ann \"\"A\"\"\";\n\n2;;\"multi\nline\"\n3;x\n4;\"open";
        let jsonl = "{\"id\": 1, \"a\": [1]}\r\n\n not json\n\u{ff}\n{\"id\": 2}";
        for (name, text, format) in [
            ("a.csv", csv, Format::Csv),
            ("a.jsonl", jsonl, Format::Jsonl),
        ] {
            let path = write(&dir, name, text);
            let mut s = open(
                serde_json::json!({ "path": path, "tail": false, "csv_delimiter": ";" }),
                None,
            );
            let polled = s.poll(100).unwrap();
            assert_eq!(polled.status, SourceStatus::Finished);
            let mut read = read_records(text.as_bytes(), format, "id", b';');
            let mut from_file = polled.records;
            // Error records are keyed `<path>:<line>`; read_records names
            // its input `input`.
            let keys = |b: &ferry_plugin::types::Batch| -> Vec<String> {
                let view = Batch::from_raw(b.clone()).unwrap();
                (0..view.len())
                    .map(|i| view.row(i).unwrap().key().to_string())
                    .collect()
            };
            let want: Vec<String> = keys(&from_file)
                .iter()
                .map(|k| k.replace(&path, "input"))
                .collect();
            assert_eq!(keys(&read), want, "{name}");
            assert!(want.len() >= 4, "{name}: {want:?}");
            read.keys.data.clear();
            from_file.keys.data.clear();
            read.keys.offsets.clear();
            from_file.keys.offsets.clear();
            assert_eq!(format!("{read:?}"), format!("{from_file:?}"), "{name}");
        }
    }

    #[test]
    fn reads_csv_with_quoting_and_nulls() {
        let dir = temp_dir();
        let path = write(
            &dir,
            "c.csv",
            "id,name,note\r\n1,\"Lovelace, Ada\",\"said \"\"hi\"\"\nthen left\"\r\n2,,\"\"\n3,too,many,fields\n\"4\",x,\"open\n",
        );
        let mut s = open(serde_json::json!({ "path": path, "tail": false }), None);
        let (b, _, status) = poll(&mut s, 100);
        assert_eq!(status, SourceStatus::Finished);
        assert_eq!(b.len(), 4);
        let r = b.row(0).unwrap();
        assert_eq!(r.key(), "1");
        assert_eq!(r.get("name"), Value::Text("Lovelace, Ada"));
        assert_eq!(r.get("note"), Value::Text("said \"hi\"\nthen left"));
        let r = b.row(1).unwrap();
        assert_eq!(r.get("name"), Value::Null);
        assert_eq!(r.get("note"), Value::Text(""));
        let r = b.row(2).unwrap();
        assert_eq!(r.key(), format!("{path}:5"));
        assert_eq!(r.get("_raw"), Value::Text("3,too,many,fields"));
        assert_eq!(
            r.get("_error"),
            Value::Text("expected 3 fields (as in the header), found 4")
        );
        let r = b.row(3).unwrap();
        assert_eq!(r.key(), format!("{path}:6"));
        assert_eq!(r.get("_error"), Value::Text("a quoted field is not closed"));
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        let dir = temp_dir();
        let path = write(&dir, "bom.csv", "\u{feff}id,name\n1,a\n");
        let mut s = open(serde_json::json!({ "path": &path }), None);
        let (b, _, _) = poll(&mut s, 10);
        assert_eq!(b.row(0).unwrap().key(), "1");
        assert_eq!(b.column_at(0).unwrap().name(), "id");
        // Resuming past the header reads it again, without the mark.
        let (_, cp, _) = poll(&mut open(serde_json::json!({ "path": &path }), None), 1);
        std::fs::write(&path, "\u{feff}id,name\n1,a\n2,b\n").unwrap();
        let (b, _, _) = poll(
            &mut open(serde_json::json!({ "path": &path }), Some(&cp)),
            10,
        );
        assert_eq!(b.row(0).unwrap().key(), "2");
        assert_eq!(b.row(0).unwrap().get("name"), Value::Text("b"));
    }

    #[test]
    fn csv_delimiter_and_header_names() {
        let dir = temp_dir();
        let path = write(&dir, "c.txt", "id;;id\n1;a;b\n");
        let mut s = open(
            serde_json::json!({ "path": path, "format": "csv", "csv_delimiter": ";" }),
            None,
        );
        let (b, _, _) = poll(&mut s, 10);
        let names: Vec<_> = b.columns().map(|c| c.name().to_owned()).collect();
        assert_eq!(names, ["id", "column2", "id_2"]);
        assert_eq!(b.row(0).unwrap().key(), "1");
    }

    #[test]
    fn partial_last_line_waits_in_tail_mode() {
        let dir = temp_dir();
        let path = write(&dir, "t.jsonl", "{\"id\": 1}\n{\"id\": 2");
        let mut s = open(serde_json::json!({ "path": &path }), None);
        let (b, cp, status) = poll(&mut s, 10);
        assert_eq!((b.len(), status), (1, SourceStatus::CaughtUp));
        // The writer finishes the line and adds another.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b", \"late\": true}\n{\"id\": 3}\n").unwrap();
        let (b, cp2, _) = poll(&mut s, 10);
        assert_eq!(b.keys().iter().collect::<Vec<_>>(), ["2", "3"]);
        assert_eq!(b.row(0).unwrap().get("late"), Value::Bool(true));
        // A restart from the first checkpoint reads the same two records.
        let mut again = open(serde_json::json!({ "path": &path }), Some(&cp));
        let (b2, cp3, _) = poll(&mut again, 10);
        assert_eq!(b2.keys().iter().collect::<Vec<_>>(), ["2", "3"]);
        assert_eq!(cp2, cp3);
    }

    #[test]
    fn an_unfinished_last_line_is_read_again_not_kept() {
        // A writer cut off in the middle of a line (a crash) may remove the
        // torn part and write the line anew, as the file sink does: the
        // bytes after the last line feed are read again from the file.
        let dir = temp_dir();
        let path = write(&dir, "w.jsonl", "{\"id\": 1}\n{\"id\": 2, \"torn");
        let mut s = open(serde_json::json!({ "path": &path }), None);
        let (b, _, status) = poll(&mut s, 10);
        assert_eq!((b.len(), status), (1, SourceStatus::CaughtUp));
        std::fs::write(&path, "{\"id\": 1}\n{\"id\": 2}\n{\"id\": 3}\n").unwrap();
        let (b, _, _) = poll(&mut s, 10);
        assert_eq!(b.keys().iter().collect::<Vec<_>>(), ["2", "3"]);
        assert_eq!(b.row(0).unwrap().get("torn"), Value::Null);
    }

    #[test]
    fn respects_max_records_and_resumes_exactly() {
        let dir = temp_dir();
        let mut text = String::from("id,n\n");
        for i in 0..25 {
            text.push_str(&format!("{i},\"v{i}\"\n"));
        }
        let path = write(&dir, "m.csv", &text);
        let cfg = serde_json::json!({ "path": &path });
        let mut s = open(cfg.clone(), None);
        let mut keys = Vec::new();
        let mut checkpoint: Option<Vec<u8>> = None;
        loop {
            // Reopen from the last checkpoint before every poll.
            let mut s2 = open(cfg.clone(), checkpoint.as_deref());
            let (b, cp, status) = poll(&mut s2, 7);
            assert!(b.len() <= 7);
            keys.extend(b.keys().iter().map(str::to_owned));
            checkpoint = Some(cp);
            if status == SourceStatus::CaughtUp {
                break;
            }
        }
        let expected: Vec<String> = (0..25).map(|i| i.to_string()).collect();
        assert_eq!(keys, expected);
        // Without reopening, same result.
        let mut all = Vec::new();
        loop {
            let (b, _, status) = poll(&mut s, 7);
            all.extend(b.keys().iter().map(str::to_owned));
            if status != SourceStatus::More {
                break;
            }
        }
        assert_eq!(all, expected);
    }

    #[test]
    fn several_files_in_order_one_file_per_batch() {
        let dir = temp_dir();
        let a = write(&dir, "a.jsonl", "{\"id\": \"a1\"}\n{\"id\": \"a2\"}");
        let c = write(&dir, "c.csv", "id,x\nc1,1\n");
        let mut s = open(serde_json::json!({ "paths": [&a, &c] }), None);
        let (b1, _, st1) = poll(&mut s, 100);
        // a.jsonl is not the last file: its unfinished last line is read.
        assert_eq!(b1.keys().iter().collect::<Vec<_>>(), ["a1", "a2"]);
        assert_eq!(st1, SourceStatus::More);
        let (b2, cp, st2) = poll(&mut s, 100);
        assert_eq!(b2.keys().iter().collect::<Vec<_>>(), ["c1"]);
        assert_eq!(st2, SourceStatus::CaughtUp);
        let (b3, _, _) = poll(&mut s, 100);
        assert!(b3.is_empty());
        // Line numbers survive a restart (error keys stay stable).
        std::fs::write(&c, "id,x\nc1,1\nc2,2,3\n").unwrap();
        let mut s = open(serde_json::json!({ "paths": [&a, &c] }), Some(&cp));
        let (b4, _, _) = poll(&mut s, 100);
        assert_eq!(b4.keys().iter().collect::<Vec<_>>(), [format!("{c}:3")]);
    }

    #[test]
    fn config_errors() {
        let dir = temp_dir();
        let p = write(&dir, "x.txt", "");
        let err = |json: serde_json::Value| match FileSource::open(config(json), None) {
            Err(PluginError::InvalidConfig(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(err(serde_json::json!({ "path": &p })).contains("cannot tell the format"));
        assert!(err(serde_json::json!({})).contains("path or paths"));
        assert!(err(serde_json::json!({ "path": "/nope/x.csv" })).contains("cannot read"));
        assert!(
            err(serde_json::json!({ "path": &p, "format": "csv", "csv_delimiter": ";;" }))
                .contains("csv_delimiter")
        );
        let good = write(&dir, "g.csv", "id\n");
        match FileSource::open(config(serde_json::json!({ "path": good })), Some(b"junk")) {
            Err(PluginError::InvalidConfig(m)) => assert!(m.contains("checkpoint"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncated_file_is_fatal() {
        let dir = temp_dir();
        let path = write(&dir, "t.jsonl", "{\"id\": 1}\n{\"id\": 2}\n");
        let mut s = open(serde_json::json!({ "path": &path }), None);
        let (_, cp, _) = poll(&mut s, 10);
        std::fs::write(&path, "{}\n").unwrap();
        let mut s = open(serde_json::json!({ "path": &path }), Some(&cp));
        assert!(matches!(s.poll(10), Err(PluginError::Fatal(_))));
    }
}
