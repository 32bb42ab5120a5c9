//! Diagnostics: where a mistake is in a manifest, what it is, and how to fix it.
//!
//! A [`Diagnostic`] is built from a [`Span`] (byte offsets into the manifest's
//! text) by a [`SourceFile`], which knows where each line starts. It renders the
//! way rustc does, so an operator sees the line they wrote with a caret under the
//! part that is wrong.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A range of bytes in a manifest's text: where a key, a value or a table header is.
///
/// Spans are byte offsets (`start..end`) into the text given to [`crate::parse`].
/// Later stages keep the spans found in a [`crate::Manifest`] and turn them into
/// diagnostics with [`crate::Manifest::diagnostic`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// Offset of the first byte.
    pub start: usize,
    /// Offset one past the last byte.
    pub end: usize,
}

impl Span {
    /// A span from `start` (inclusive) to `end` (exclusive).
    pub fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// Whether `other` lies within this span.
    pub fn contains(&self, other: Span) -> bool {
        self.start <= other.start && other.end <= self.end
    }
}

impl From<Range<usize>> for Span {
    fn from(range: Range<usize>) -> Self {
        Self::new(range.start, range.end)
    }
}

/// One error found in a manifest, with its place and a hint.
///
/// `Display` renders it like rustc:
///
/// ```text
/// error: unknown field `mdoe` in [pipeline]
///  --> examples/bad/pipeline.toml:3:1
///   |
/// 3 | mdoe = "once"
///   | ^^^^
///   = help: expected one of `name`, `mode`, `schedule`, `batch`, `poll_interval_ms`, `state`; did you mean `mode`?
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The manifest's path, as the caller gave it (never canonicalized).
    pub file: PathBuf,
    /// The bytes of the manifest the diagnostic points at.
    pub span: Span,
    /// Line of `span.start`, counted from 1.
    pub line: usize,
    /// Column of `span.start` in characters, counted from 1.
    pub column: usize,
    /// What is wrong, in one line.
    pub message: String,
    /// How to fix it, when there is something to say.
    pub hint: Option<String>,
    /// The source line with a caret underline, gutter included, ready to print:
    /// the three lines between the `-->` line and the `= help:` line.
    pub snippet: String,
}

impl Diagnostic {
    /// Width of the line-number gutter, used to align `-->` and `= help:`.
    fn gutter(&self) -> usize {
        self.line.to_string().len()
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pad = " ".repeat(self.gutter());
        writeln!(f, "error: {}", self.message)?;
        writeln!(
            f,
            "{pad}--> {}:{}:{}",
            self.file.display(),
            self.line,
            self.column
        )?;
        write!(f, "{}", self.snippet)?;
        if let Some(hint) = &self.hint {
            let mut lines = hint.lines();
            if let Some(first) = lines.next() {
                write!(f, "\n{pad} = help: {first}")?;
            }
            for line in lines {
                write!(f, "\n{pad}         {line}")?;
            }
        }
        Ok(())
    }
}

/// The text of one manifest, its path for display, and where its lines start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceFile {
    path: PathBuf,
    text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub(crate) fn new(path: &Path, text: &str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        Self {
            path: path.to_path_buf(),
            text: text.to_owned(),
            line_starts,
        }
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Clamps an offset into the text and moves it back to a character boundary.
    fn clamp(&self, offset: usize) -> usize {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }

    /// Index (from 0) of the line holding `offset`, and that line's start.
    fn line_of(&self, offset: usize) -> (usize, usize) {
        let index = self
            .line_starts
            .partition_point(|&start| start <= offset)
            .saturating_sub(1);
        let start = self.line_starts.get(index).copied().unwrap_or(0);
        (index, start)
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub(crate) fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = self.clamp(offset);
        let (index, start) = self.line_of(offset);
        let column = self
            .text
            .get(start..offset)
            .map_or(0, |s| s.chars().count());
        (index + 1, column + 1)
    }

    /// Builds the diagnostic for `span`, with its rendered snippet.
    pub(crate) fn diagnostic(
        &self,
        span: Span,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Diagnostic {
        let start = self.clamp(span.start);
        let end = self.clamp(span.end.max(span.start));
        let (index, line_start) = self.line_of(start);
        let line_end = self.text[line_start..]
            .find('\n')
            .map_or(self.text.len(), |at| line_start + at);
        let under_end = end.min(line_end).max(start);
        // A URL on the line is shown without its passwords; the line is
        // redacted in three parts so the carets stay under their text.
        let before = crate::url::redact_urls_in(&self.text[line_start..start]);
        let under = crate::url::redact_urls_in(&self.text[start..under_end]);
        let after = crate::url::redact_urls_in(&self.text[under_end..line_end]);
        let source_line = format!("{before}{under}{after}");
        let source_line = source_line.trim_end_matches('\r');

        // Tabs are shown as four spaces, and the underline follows suit.
        let shown_line = source_line.replace('\t', "    ");
        let indent: String = before
            .chars()
            .map(|c| if c == '\t' { "    " } else { " " })
            .collect();
        let width: usize = under
            .trim_end_matches('\r')
            .chars()
            .map(|c| if c == '\t' { 4 } else { 1 })
            .sum();
        let carets = "^".repeat(width.max(1));

        let number = (index + 1).to_string();
        let pad = " ".repeat(number.len());
        let source_row = format!("{number} | {shown_line}");
        let snippet = format!(
            "{pad} |\n{}\n{pad} | {indent}{carets}",
            source_row.trim_end()
        );
        let column = self.text[line_start..start].chars().count() + 1;
        Diagnostic {
            file: self.path.clone(),
            span: Span::new(start, end),
            line: index + 1,
            column,
            message: message.into(),
            hint,
            snippet,
        }
    }
}

/// Why a manifest could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read (missing, unreadable, or not UTF-8).
    #[error("cannot read manifest {}: {io}", path.display())]
    Read {
        /// The path as the caller gave it.
        path: PathBuf,
        /// What the operating system said.
        io: std::io::Error,
    },
    /// The file was read and is wrong: every mistake found, in source order.
    #[error("{}", render_all(path, diagnostics))]
    Invalid {
        /// The path as the caller gave it.
        path: PathBuf,
        /// One diagnostic per mistake; never empty.
        diagnostics: Vec<Diagnostic>,
    },
}

impl ManifestError {
    /// The diagnostics of an invalid manifest; empty for a read error.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ManifestError::Read { .. } => &[],
            ManifestError::Invalid { diagnostics, .. } => diagnostics,
        }
    }

    /// The manifest's path, as the caller gave it.
    pub fn path(&self) -> &Path {
        match self {
            ManifestError::Read { path, .. } | ManifestError::Invalid { path, .. } => path,
        }
    }
}

/// Every diagnostic, a blank line after each, then `N errors in <path>`.
fn render_all(path: &Path, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for diagnostic in diagnostics {
        out.push_str(&diagnostic.to_string());
        out.push_str("\n\n");
    }
    let count = diagnostics.len();
    let noun = if count == 1 { "error" } else { "errors" };
    out.push_str(&format!("{count} {noun} in {}", path.display()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_rustc() {
        let source = SourceFile::new(
            Path::new("examples/bad/pipeline.toml"),
            "[pipeline]\nname = \"x\"\nmdoe = \"once\"\n",
        );
        let diagnostic = source.diagnostic(
            Span::new(22, 26),
            "unknown field `mdoe` in [pipeline]",
            Some("did you mean `mode`?".to_owned()),
        );
        assert_eq!((diagnostic.line, diagnostic.column), (3, 1));
        assert_eq!(
            diagnostic.to_string(),
            "error: unknown field `mdoe` in [pipeline]\n \
             --> examples/bad/pipeline.toml:3:1\n  |\n3 | mdoe = \"once\"\n  | ^^^^\n  \
             = help: did you mean `mode`?"
        );
    }

    #[test]
    fn columns_count_characters_and_tabs_keep_alignment() {
        let source = SourceFile::new(Path::new("m.toml"), "a = \"é\"\n\tb = 1\n");
        let d = source.diagnostic(Span::new(14, 15), "x", None);
        assert_eq!((d.line, d.column), (2, 6));
        assert!(
            d.snippet.ends_with("2 |     b = 1\n  |         ^"),
            "{}",
            d.snippet
        );
        let (line, column) = source.line_column(7);
        assert_eq!((line, column), (1, 7));
    }

    #[test]
    fn spans_past_the_end_are_clamped() {
        let source = SourceFile::new(Path::new("m.toml"), "");
        let d = source.diagnostic(Span::new(10, 20), "empty", None);
        assert_eq!((d.line, d.column), (1, 1));
        assert_eq!(d.snippet, "  |\n1 |\n  | ^");
    }
}
