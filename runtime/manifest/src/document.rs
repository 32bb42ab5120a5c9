//! Reading the spanned TOML document, one section at a time, collecting errors.
//!
//! serde stops at the first error it meets. To report every mistake at once,
//! each section (the `[pipeline]` table, each plugin, each route) is deserialized
//! on its own from the spanned document, and when serde fails inside a section
//! the failing entry is located by its span, reported, removed from a working
//! copy of the section, and deserialization is tried again. A section with three
//! mistakes therefore gives three errors, and the section still resolves (minus
//! the broken entries) so the semantic rules can look at it. A required key that
//! was removed because it was wrong is not reported a second time as missing.
//!
//! serde's messages ("invalid type: string \"64\", expected i64") are rewritten
//! into the manifest's words ("wrong type for `memory_mb` in
//! [plugins.crm.grants]: expected an integer, found a string"), using the spanned
//! document to name the key and the type that was found.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use serde::de::{DeserializeOwned, IntoDeserializer};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::{Diagnostic, ManifestError, SourceFile, Span};
use crate::raw::SCALAR_EXPECTED;
use crate::suggest::expected_hint;

/// Gathers diagnostics while the manifest is read, resolved and checked.
pub(crate) struct Collector {
    source: Arc<SourceFile>,
    diagnostics: Vec<Diagnostic>,
}

impl Collector {
    pub(crate) fn new(source: Arc<SourceFile>) -> Self {
        Self {
            source,
            diagnostics: Vec::new(),
        }
    }

    /// Records an error at `span`.
    pub(crate) fn error(
        &mut self,
        span: impl Into<Span>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let diagnostic = self.source.diagnostic(span.into(), message, hint);
        self.diagnostics.push(diagnostic);
    }

    /// How many errors have been recorded so far.
    pub(crate) fn count(&self) -> usize {
        self.diagnostics.len()
    }

    pub(crate) fn source(&self) -> &Arc<SourceFile> {
        &self.source
    }

    /// The text behind a span (empty if the span is out of range).
    pub(crate) fn text(&self, span: impl Into<Span>) -> &str {
        let span = span.into();
        self.source.text().get(span.start..span.end).unwrap_or("")
    }

    /// All errors, in source order, as the crate's error.
    pub(crate) fn into_error(mut self) -> ManifestError {
        // Stable: errors at the same place keep the order they were found in.
        self.diagnostics.sort_by_key(|d| d.span.start);
        ManifestError::Invalid {
            path: self.source.path().to_path_buf(),
            diagnostics: self.diagnostics,
        }
    }
}

/// One step of a path into the document: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Key(String),
    Index(usize),
}

/// Where a value is in the document, e.g. `plugins.crm.grants.files[0]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct KeyPath(Vec<Step>);

impl KeyPath {
    /// The document's top.
    pub(crate) fn root() -> Self {
        Self::default()
    }

    /// This path, then a key.
    pub(crate) fn key(&self, key: &str) -> Self {
        let mut steps = self.0.clone();
        steps.push(Step::Key(key.to_owned()));
        Self(steps)
    }

    /// This path, then an array index.
    pub(crate) fn index(&self, index: usize) -> Self {
        let mut steps = self.0.clone();
        steps.push(Step::Index(index));
        Self(steps)
    }

    fn join(&self, other: &KeyPath) -> Self {
        Self(self.0.iter().chain(&other.0).cloned().collect())
    }

    /// Splits at the last key: the path of the table holding it, the key, and
    /// whether array indices follow the key (an element of an array).
    fn last_key(&self) -> Option<(KeyPath, &str, bool)> {
        let at = self.0.iter().rposition(|s| matches!(s, Step::Key(_)))?;
        match self.0.get(at) {
            Some(Step::Key(key)) => Some((
                Self(self.0[..at].to_vec()),
                key.as_str(),
                at + 1 < self.0.len(),
            )),
            _ => None,
        }
    }

    /// The path up to and including its last key (drops trailing indices).
    fn up_to_last_key(&self) -> Option<KeyPath> {
        let at = self.0.iter().rposition(|s| matches!(s, Step::Key(_)))?;
        Some(Self(self.0[..=at].to_vec()))
    }

    /// How diagnostics name the table at this path: `[pipeline]`,
    /// `[plugins.crm.grants]`, `route #2`, `` `when` of route #2 ``,
    /// `` `files` #1 in [plugins.crm.grants] ``.
    pub(crate) fn label(&self) -> String {
        label(&self.0)
    }
}

fn dotted(steps: &[Step]) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            Step::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Step::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

fn label(steps: &[Step]) -> String {
    match steps {
        [] => "the manifest".to_owned(),
        [Step::Key(routes), Step::Index(i)] if routes == "routes" => format!("route #{}", i + 1),
        [Step::Key(routes), Step::Index(i), rest @ ..] if routes == "routes" => {
            format!("`{}` of route #{}", dotted(rest), i + 1)
        }
        [prefix @ .., Step::Key(key), Step::Index(i)] => {
            format!("`{key}` #{} in {}", i + 1, label(prefix))
        }
        _ => format!("[{}]", dotted(steps)),
    }
}

/// The outcome of deserializing one section.
pub(crate) struct Section<T> {
    /// The section, unless it could not be read at all (then an error says why).
    pub value: Option<T>,
    /// Whether the section was read without any error.
    pub clean: bool,
    /// Entries taken out after an error, as paths from the section.
    removed: Vec<KeyPath>,
}

impl<T> Section<T> {
    /// Whether an entry at or under `key` was taken out because it was wrong,
    /// so a check on what is left there would only repeat that error.
    pub(crate) fn lost(&self, key: &str) -> bool {
        self.removed
            .iter()
            .any(|path| matches!(path.0.first(), Some(Step::Key(first)) if first == key))
    }
}

/// Deserializes one section (the value at `path`), reporting every error in it.
pub(crate) fn deserialize_section<T: DeserializeOwned>(
    cx: &mut Collector,
    path: &KeyPath,
    value: &Spanned<DeValue<'_>>,
) -> Section<T> {
    let before = cx.count();
    let section_span = value.span();
    let mut work = value.clone();
    // Keys removed after an error, by the table that held them: a required key
    // removed because it was wrong must not be reported again as missing.
    let mut removed: HashSet<(KeyPath, String)> = HashSet::new();

    // Every pass removes one entry, so this ends; the bound is a safety net.
    for _ in 0..1024 {
        let error = match T::deserialize(work.clone().into_deserializer()) {
            Ok(parsed) => {
                return Section {
                    value: Some(parsed),
                    clean: cx.count() == before,
                    removed: removed
                        .into_iter()
                        .map(|(table, key)| table.key(&key))
                        .collect(),
                };
            }
            Err(error) => error,
        };
        let span = error.span().unwrap_or(section_span.clone());
        let message = error.message();

        if let Some(field) = between(message, "missing field `", "`") {
            let table = locate(&work, &span).map(|hit| hit.path).unwrap_or_default();
            if !removed.contains(&(table.clone(), field.to_owned())) {
                cx.error(
                    span.clone(),
                    format!(
                        "missing required key `{field}` in {}",
                        path.join(&table).label()
                    ),
                    missing_hint(path, &table, field),
                );
            }
            // A broken nested table goes, so the rest of the section can still
            // be read; the section itself cannot do without the key.
            match table.up_to_last_key() {
                Some(entry) if remove(&mut work, &entry, &mut removed) => continue,
                _ => break,
            }
        }

        let hit = locate(&work, &span);
        report(cx, path, &work, &error, &span, hit.as_ref());
        match hit.and_then(|hit| hit.path.up_to_last_key()) {
            Some(entry) if remove(&mut work, &entry, &mut removed) => {}
            _ => break,
        }
    }
    Section {
        value: None,
        clean: false,
        removed: removed
            .into_iter()
            .map(|(table, key)| table.key(&key))
            .collect(),
    }
}

/// The text between `prefix` (at the start of `text`) and the next `end`.
fn between<'a>(text: &'a str, prefix: &str, end: &str) -> Option<&'a str> {
    let rest = text.strip_prefix(prefix)?;
    rest.split(end).next()
}

/// Hints for a missing key, for the keys whose shape is worth showing.
fn missing_hint(section: &KeyPath, table: &KeyPath, field: &str) -> Option<String> {
    let full = section.join(table);
    let hint = match (full.0.first(), field) {
        (Some(Step::Key(top)), "name") if top == "pipeline" => {
            "name the pipeline: `name = \"contacts-to-warehouse\"`"
        }
        (Some(Step::Key(top)), "kind") if top == "plugins" => {
            "add `kind = \"source\"` (or `sink`, `mapper`, `validator`, `resolver`)"
        }
        (Some(Step::Key(top)), "wasm") if top == "plugins" => {
            "add the component's path, relative to the manifest: `wasm = \"plugins/file.wasm\"`"
        }
        (Some(Step::Key(top)), "from") if top == "routes" => {
            "a route starts at the source, or at a mapper or validator of an earlier route: `from = \"<name>\"`"
        }
        (Some(Step::Key(top)), "to") if top == "routes" => {
            "a route ends at one or more sinks: `to = [\"<sink>\"]`"
        }
        (Some(Step::Key(top)), "host" | "guest") if top == "plugins" => {
            "a file grant is `{ host = \"data\", guest = \"/in\", mode = \"ro\" }`"
        }
        (Some(Step::Key(top)), "field") if top == "routes" => {
            "name the record field to test: `when = { field = \"region\", equals = \"EU\" }`"
        }
        _ => return None,
    };
    Some(hint.to_owned())
}

/// Where an error span is in a section.
struct Hit {
    /// Path from the section to the entry (or array element) at fault.
    path: KeyPath,
}

/// Finds the entry an error span points at: a key with exactly that span, else
/// a value with exactly that span, else the innermost value containing it.
fn locate(root: &Spanned<DeValue<'_>>, span: &Range<usize>) -> Option<Hit> {
    if root.span() == *span {
        return Some(Hit {
            path: KeyPath::root(),
        });
    }
    let mut best: Option<(KeyPath, bool)> = None;
    search(root.get_ref(), &KeyPath::root(), span, &mut best);
    best.map(|(path, _)| Hit { path })
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

/// Depth-first search for [`locate`]; `best` holds the path and whether it was
/// an exact match (an exact match is never replaced by a containing one).
fn search(
    value: &DeValue<'_>,
    path: &KeyPath,
    span: &Range<usize>,
    best: &mut Option<(KeyPath, bool)>,
) {
    let consider = |best: &mut Option<(KeyPath, bool)>, here: &KeyPath, value_span| {
        if value_span == *span {
            *best = Some((here.clone(), true));
        } else if contains(&value_span, span) && !best.as_ref().is_some_and(|(_, exact)| *exact) {
            *best = Some((here.clone(), false));
        }
    };
    match value {
        DeValue::Table(table) => {
            for (key, entry) in table.iter() {
                let here = path.key(key.get_ref());
                if key.span() == *span {
                    *best = Some((here, true));
                    return;
                }
                consider(best, &here, entry.span());
                search(entry.get_ref(), &here, span, best);
            }
        }
        DeValue::Array(array) => {
            for (index, element) in array.iter().enumerate() {
                let here = path.index(index);
                consider(best, &here, element.span());
                search(element.get_ref(), &here, span, best);
            }
        }
        _ => {}
    }
}

/// The value at exactly `span`, looking through the whole section.
fn value_at<'a, 'i>(
    value: &'a Spanned<DeValue<'i>>,
    span: &Range<usize>,
) -> Option<&'a DeValue<'i>> {
    if value.span() == *span {
        return Some(value.get_ref());
    }
    match value.get_ref() {
        DeValue::Table(table) => table.values().find_map(|entry| value_at(entry, span)),
        DeValue::Array(array) => array.iter().find_map(|element| value_at(element, span)),
        _ => None,
    }
}

/// Removes the entry at `path` (which ends with a key) from the working copy.
fn remove(
    root: &mut Spanned<DeValue<'_>>,
    path: &KeyPath,
    removed: &mut HashSet<(KeyPath, String)>,
) -> bool {
    let Some((parent, key, _)) = path.last_key() else {
        return false;
    };
    let mut value = root.get_mut();
    for step in &parent.0 {
        let next = match (value, step) {
            (DeValue::Table(table), Step::Key(key)) => table.get_mut(key.as_str()),
            (DeValue::Array(array), Step::Index(index)) => array.get_mut(*index),
            _ => None,
        };
        match next {
            Some(next) => value = next.get_mut(),
            None => return false,
        }
    }
    let DeValue::Table(table) = value else {
        return false;
    };
    let gone = table.remove(key).is_some();
    if gone {
        removed.insert((parent, key.to_owned()));
    }
    gone
}

/// "a string", "an integer", ... for the type of a TOML value.
pub(crate) fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// serde's name for what it expected, in the manifest's words.
fn expected_name(serde: &str) -> &str {
    match serde {
        "i8" | "i16" | "i32" | "i64" | "i128" | "u8" | "u16" | "u32" | "u64" | "u128" | "isize"
        | "usize" => "an integer",
        "f32" | "f64" => "a number",
        "a sequence" => "an array",
        "a map" => "a table",
        other if other.starts_with("struct ") => "a table",
        other => other,
    }
}

/// Reports one serde error found inside a section.
fn report(
    cx: &mut Collector,
    section: &KeyPath,
    work: &Spanned<DeValue<'_>>,
    error: &toml::de::Error,
    span: &Range<usize>,
    hit: Option<&Hit>,
) {
    let message = error.message();
    let located = hit.and_then(|hit| hit.path.last_key());

    if let Some(field) = between(message, "unknown field `", "`") {
        let rest = message
            .get("unknown field `".len() + field.len() + 1..)
            .unwrap_or("");
        let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
        let table = located.map_or_else(KeyPath::root, |(parent, _, _)| parent);
        cx.error(
            span.clone(),
            format!(
                "unknown field `{field}` in {}",
                section.join(&table).label()
            ),
            Some(expected_hint(field, &expected)),
        );
        return;
    }

    let Some((parent, key, element)) = located else {
        // The section itself has the wrong shape (e.g. a plugin that is a string).
        let found = value_at(work, span).map(type_name);
        let expected = message
            .rsplit_once(", expected ")
            .map(|(_, expected)| expected_name(expected));
        let text = match (message.starts_with("invalid type: "), expected, found) {
            (true, Some(expected), Some(found)) => format!(
                "wrong type for {}: expected {expected}, found {found}",
                section_name(section)
            ),
            _ => format!("invalid {}: {message}", section_name(section)),
        };
        cx.error(span.clone(), text, section_hint(section));
        return;
    };

    let where_ = section.join(&parent).label();
    let subject = if element {
        format!("for an element of `{key}` in {where_}")
    } else {
        format!("for `{key}` in {where_}")
    };
    if message.starts_with("invalid type: ") {
        let expected = message
            .rsplit_once(", expected ")
            .map_or("another type", |(_, expected)| expected_name(expected));
        let found = value_at(work, span).map_or("another type", type_name);
        let hint = type_hint(
            cx.text(span.clone()),
            (!element).then_some(key),
            expected,
            found,
        );
        cx.error(
            span.clone(),
            format!("wrong type {subject}: expected {expected}, found {found}"),
            hint,
        );
    } else {
        cx.error(
            span.clone(),
            format!("invalid value {subject}: {message}"),
            None,
        );
    }
}

/// How a section is named when the section itself is wrong.
fn section_name(section: &KeyPath) -> String {
    match section.0.last() {
        Some(Step::Index(_)) => section.label(),
        _ => format!("`{}`", dotted(&section.0)),
    }
}

/// Hints for a section of the wrong shape.
fn section_hint(section: &KeyPath) -> Option<String> {
    let hint = match section.0.first() {
        Some(Step::Key(top)) if top == "plugins" => {
            "each plugin is a table of its own: `[plugins.<name>]` followed by `kind = …`, `wasm = …`"
        }
        Some(Step::Key(top)) if top == "routes" => {
            "each route is a table: `[[routes]]` followed by `from = …`, `to = [...]`"
        }
        _ => return None,
    };
    Some(hint.to_owned())
}

/// A hint for a value of the wrong type, when the fix is plain to see; `key`
/// is `None` for an element of an array.
fn type_hint(text: &str, key: Option<&str>, expected: &str, found: &str) -> Option<String> {
    // `key = value`, or just `value` for an array element.
    let show = |value: &str| match key {
        Some(key) => format!("`{key} = {value}`"),
        None => format!("`{value}`"),
    };
    let unquoted = text.trim_matches(|c| c == '"' || c == '\'');
    let short = text.len() <= 60 && !text.contains('\n');
    match (expected, found) {
        ("an integer", "a string") if unquoted.trim().parse::<i64>().is_ok() => Some(format!(
            "write the number without quotes: {}",
            show(unquoted.trim())
        )),
        ("a boolean", "a string") if matches!(unquoted, "true" | "false") => Some(format!(
            "write the boolean without quotes: {}",
            show(unquoted)
        )),
        ("an array", _) if short => Some(format!("write a list: {}", show(&format!("[{text}]")))),
        ("a string", "an integer" | "a float" | "a boolean" | "a datetime") => Some(format!(
            "put it in quotes: {}",
            show(&format!("\"{text}\""))
        )),
        (SCALAR_EXPECTED, "a datetime") => Some(format!(
            "quote it to compare it as text: {}",
            show(&format!("\"{text}\""))
        )),
        ("a table", _) if key == Some("config") => Some(
            "`config` is a table, handed to the plugin as JSON: `config = { path = \"/out\" }`"
                .to_owned(),
        ),
        _ => None,
    }
}

/// Entries of a table in the order they appear in the manifest (the parsed
/// table is sorted by key).
pub(crate) fn in_source_order<'t, 'i>(
    table: &'t DeTable<'i>,
) -> Vec<(
    &'t Spanned<std::borrow::Cow<'i, str>>,
    &'t Spanned<DeValue<'i>>,
)> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_tables_as_an_operator_reads_them() {
        let pipeline = KeyPath::root().key("pipeline");
        assert_eq!(pipeline.label(), "[pipeline]");
        assert_eq!(pipeline.key("batch").label(), "[pipeline.batch]");
        let route = KeyPath::root().key("routes").index(1);
        assert_eq!(route.label(), "route #2");
        assert_eq!(route.key("when").label(), "`when` of route #2");
        let files = KeyPath::root()
            .key("plugins")
            .key("crm")
            .key("grants")
            .key("files")
            .index(0);
        assert_eq!(files.label(), "`files` #1 in [plugins.crm.grants]");
        assert_eq!(KeyPath::root().label(), "the manifest");
    }
}
