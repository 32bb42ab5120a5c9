//! A small CSV reader (RFC 4180), used by the file source and by lookup
//! tables.
//!
//! Fields are separated by a delimiter (`,` by default); records end at a
//! line feed (`\n` or `\r\n`) outside quotes. A field that starts with `"` is
//! quoted: it may hold delimiters, line breaks and doubled quotes (`""`
//! reads as `"`). An empty unquoted field is distinguishable from a quoted
//! empty one (`""`), so callers can read the first as null.
//!
//! [`read_record`] works on a byte buffer that may end in the middle of a
//! record (a file still being written): it then says the record is
//! incomplete instead of guessing.

use std::borrow::Cow;

/// Where one field lies in a record buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpan {
    /// Start of the field's content (after an opening quote).
    pub start: usize,
    /// End of the field's content (before a closing quote).
    pub end: usize,
    /// Whether the field was quoted.
    pub quoted: bool,
    /// Whether the content holds doubled quotes to undo.
    pub escaped: bool,
}

impl FieldSpan {
    /// The field's text within `text`, the buffer the spans refer to;
    /// doubled quotes are undone (the only case that allocates).
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let raw = text.get(self.start..self.end).unwrap_or("");
        if self.escaped {
            Cow::Owned(raw.replace("\"\"", "\""))
        } else {
            Cow::Borrowed(raw)
        }
    }

    /// Whether the field is empty and unquoted (a null, for most uses).
    pub fn is_null(&self) -> bool {
        !self.quoted && self.start == self.end
    }
}

/// One record found by [`read_record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSpan {
    /// End of the record's content, before its line terminator.
    pub content_end: usize,
    /// Bytes consumed, terminator included: where the next record starts.
    pub consumed: usize,
    /// Line feeds consumed (inside quotes and the terminator).
    pub newlines: usize,
    /// Set when the record breaks the quoting rules: text after a closing
    /// quote, or a quote left open at the end of the input.
    pub malformed: Option<&'static str>,
}

/// Reads the record at the start of `buf`, pushing its fields' spans to
/// `fields` (cleared first).
///
/// Returns `None` when `buf` ends before the record does (no line feed yet,
/// or inside quotes) and `at_eof` is false. When `at_eof` is true the end of
/// `buf` also ends the record. An empty `buf` gives `None`.
pub fn read_record(
    buf: &[u8],
    delimiter: u8,
    at_eof: bool,
    fields: &mut Vec<FieldSpan>,
) -> Option<RecordSpan> {
    fields.clear();
    if buf.is_empty() {
        return None;
    }
    let mut pos = 0;
    let mut newlines = 0;
    let mut malformed = None;
    loop {
        // One field starts at `pos`.
        if buf.get(pos) == Some(&b'"') {
            let start = pos + 1;
            let mut i = start;
            let mut escaped = false;
            let end = loop {
                match buf
                    .get(i..)
                    .and_then(|rest| rest.iter().position(|&c| c == b'"' || c == b'\n'))
                {
                    Some(off) => {
                        let q = i + off;
                        if buf.get(q) == Some(&b'\n') {
                            newlines += 1;
                            i = q + 1;
                            continue;
                        }
                        match buf.get(q + 1) {
                            Some(b'"') => {
                                escaped = true;
                                i = q + 2;
                            }
                            None if !at_eof => return None,
                            _ => {
                                pos = q + 1;
                                break q;
                            }
                        }
                    }
                    None if !at_eof => return None,
                    None => {
                        malformed = Some("a quoted field is not closed");
                        pos = buf.len();
                        break buf.len();
                    }
                }
            };
            fields.push(FieldSpan {
                start,
                end,
                quoted: true,
                escaped,
            });
            // Anything between the closing quote and the next separator.
            let rest = buf.get(pos..).unwrap_or(&[]);
            let skip = rest
                .iter()
                .position(|&c| c == delimiter || c == b'\n')
                .unwrap_or(rest.len());
            let junk = rest.get(..skip).unwrap_or(&[]);
            if !(junk.is_empty() || junk == b"\r") {
                malformed = Some("text after a closing quote");
            }
            pos += skip;
        } else {
            let rest = buf.get(pos..).unwrap_or(&[]);
            let len = rest
                .iter()
                .position(|&c| c == delimiter || c == b'\n')
                .unwrap_or(rest.len());
            let mut end = pos + len;
            if buf.get(end) == Some(&b'\n') && end > pos && buf.get(end - 1) == Some(&b'\r') {
                end -= 1;
            }
            fields.push(FieldSpan {
                start: pos,
                end,
                quoted: false,
                escaped: false,
            });
            pos += len;
        }
        match buf.get(pos) {
            Some(&c) if c == delimiter => pos += 1,
            Some(b'\n') => {
                let content_end = if pos > 0 && buf.get(pos - 1) == Some(&b'\r') {
                    pos - 1
                } else {
                    pos
                };
                return Some(RecordSpan {
                    content_end,
                    consumed: pos + 1,
                    newlines: newlines + 1,
                    malformed,
                });
            }
            _ if at_eof => {
                return Some(RecordSpan {
                    content_end: buf.len(),
                    consumed: buf.len(),
                    newlines,
                    malformed,
                });
            }
            _ => return None,
        }
    }
}

/// One record read by [`parse_str`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvLine {
    /// The line the record starts on, counting from 1.
    pub line: usize,
    /// The fields; `None` for an empty unquoted field.
    pub fields: Vec<Option<String>>,
    /// Set when the record broke the quoting rules (see [`RecordSpan`]).
    pub malformed: Option<&'static str>,
}

/// Reads a whole CSV text into records. Blank lines are skipped.
pub fn parse_str(text: &str, delimiter: u8) -> Vec<CsvLine> {
    let mut out = Vec::new();
    let mut spans = Vec::new();
    let mut at = 0;
    let mut line = 1;
    let bytes = text.as_bytes();
    while let Some(rec) = bytes
        .get(at..)
        .and_then(|rest| read_record(rest, delimiter, true, &mut spans))
    {
        let body = text.get(at..).unwrap_or("");
        let blank = rec.content_end == 0;
        if !blank {
            let fields = spans
                .iter()
                .map(|s| (!s.is_null()).then(|| s.text(body).into_owned()))
                .collect();
            out.push(CsvLine {
                line,
                fields,
                malformed: rec.malformed,
            });
        }
        line += rec.newlines;
        at += rec.consumed;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(s: &str) -> (Vec<Option<String>>, RecordSpan) {
        let mut spans = Vec::new();
        let rec = read_record(s.as_bytes(), b',', false, &mut spans).unwrap();
        let f = spans
            .iter()
            .map(|sp| (!sp.is_null()).then(|| sp.text(s).into_owned()))
            .collect();
        (f, rec)
    }

    #[test]
    fn plain_and_quoted_fields() {
        let (f, rec) = fields("a,\"b,c\",\"say \"\"hi\"\"\",,\"\"\nnext");
        assert_eq!(
            f,
            [
                Some("a".into()),
                Some("b,c".into()),
                Some("say \"hi\"".into()),
                None,
                Some(String::new())
            ]
        );
        assert_eq!(rec.consumed, "a,\"b,c\",\"say \"\"hi\"\"\",,\"\"\n".len());
        assert_eq!(rec.newlines, 1);
        assert_eq!(rec.malformed, None);
    }

    #[test]
    fn newline_inside_quotes() {
        let (f, rec) = fields("1,\"two\nlines\",3\r\n");
        assert_eq!(
            f,
            [
                Some("1".into()),
                Some("two\nlines".into()),
                Some("3".into())
            ]
        );
        assert_eq!(rec.newlines, 2);
        assert_eq!(rec.content_end, "1,\"two\nlines\",3".len());
    }

    #[test]
    fn crlf_is_stripped() {
        let (f, _) = fields("a,b\r\n");
        assert_eq!(f, [Some("a".into()), Some("b".into())]);
    }

    #[test]
    fn incomplete_records_wait() {
        let mut spans = Vec::new();
        assert_eq!(read_record(b"a,b", b',', false, &mut spans), None);
        assert_eq!(read_record(b"a,\"b\nc", b',', false, &mut spans), None);
        assert_eq!(read_record(b"a,\"b\"", b',', false, &mut spans), None);
        let rec = read_record(b"a,b", b',', true, &mut spans).unwrap();
        assert_eq!(rec.consumed, 3);
        assert_eq!(rec.newlines, 0);
    }

    #[test]
    fn malformed_quoting_is_reported() {
        let mut spans = Vec::new();
        let rec = read_record(b"\"ab\"c,d\n", b',', false, &mut spans).unwrap();
        assert_eq!(rec.malformed, Some("text after a closing quote"));
        assert_eq!(spans.len(), 2);
        let rec = read_record(b"\"open", b',', true, &mut spans).unwrap();
        assert_eq!(rec.malformed, Some("a quoted field is not closed"));
    }

    #[test]
    fn other_delimiters() {
        let mut spans = Vec::new();
        let text = "a;b,c\n";
        read_record(text.as_bytes(), b';', false, &mut spans).unwrap();
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[1].text(text), "b,c");
    }

    #[test]
    fn parse_str_numbers_lines() {
        let rows = parse_str("h1,h2\n\nx,\"y\nz\"\nlast,row", b',');
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].line, 1);
        assert_eq!(rows[1].line, 3);
        assert_eq!(rows[2].line, 5);
        assert_eq!(rows[2].fields, [Some("last".into()), Some("row".into())]);
    }
}
