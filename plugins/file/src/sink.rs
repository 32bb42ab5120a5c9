//! The sink side: JSON Lines, appended.

use std::fs::{File, OpenOptions};
use std::io::Write;

use ferry_plugin::json::{write_string, write_value};
use ferry_plugin::{Batch, Column, Op, PluginError, Sink, Value, WriteReport};

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
            self.file.write_all(&self.buf).map_err(|e| {
                PluginError::retryable(format!("cannot write to {:?}: {e}", self.path))
            })?;
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
