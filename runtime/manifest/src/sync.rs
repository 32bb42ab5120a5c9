//! The `[sync]` table: a two-way sync between two connectors.
//!
//! ```toml
//! [sync]
//! # each side: a connector, the settings it gets on top of its `config` when
//! # read (`read`) or written (`write`), and field renames (model = side)
//! left = { plugin = "crm", read = { mode = "full" } }
//! right = { plugin = "billing", read = { mode = "full" }, rename = { email = "email_address" } }
//! fields = ["name", "email", "credit_limit"]   # what is compared and copied (default: every field)
//! detect = "checksum"              # checksum | version | timestamp | validator
//! validator = "rules"              # detect = "validator": a validator plugin decides what conflicts
//! timestamp_field = "updated_at"   # when each version was written (default: the records' updated-at)
//! strategy = "last-writer-wins"    # last-writer-wins | first-writer-wins | left-wins | right-wins
//!                                  # | merge | manual | resolver
//! resolver = "credit_rules"        # strategy = "resolver": a resolver plugin decides
//! merge_fallback = "manual"        # strategy = "merge": for fields changed on both sides
//! field_strategies = { credit_limit = "right-wins" }    # per field, before the strategy
//! owned = { credit_limit = "right" }                    # fields only one side may change
//! on_foreign_change = "overwrite"  # overwrite | reject: a change to an owned field on the other side
//! ```
//!
//! `rename` maps this model's field names (the left side's, unless renamed
//! there too) to the side's own. `left` and `right` may also be tables of
//! their own (`[sync.left]`, after the `[sync]` keys). Keys are the records' keys: each
//! connector's own settings say which columns make them, and both sides
//! must give the same key to the same entity.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

use crate::diagnostic::Span;
use crate::document::Collector;
use crate::model::PluginKind;
use crate::resolve::{Name, PluginDraft, config_to_json, keyword, span_of};
use crate::suggest::expected_hint;

/// A checked `[sync]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncSpec {
    /// The left side.
    pub left: SyncSide,
    /// The right side.
    pub right: SyncSide,
    /// The fields compared and copied; `None`: every field either side has.
    pub fields: Option<Vec<String>>,
    /// How a change since the last sync is recognised.
    pub detect: Detect,
    /// The field holding when a version was written; `None`: the records'
    /// `updated-at`.
    pub timestamp_field: Option<String>,
    /// How a conflict is settled.
    pub strategy: Strategy,
    /// Strategy `merge`: how a field changed on both sides is settled.
    pub merge_fallback: Strategy,
    /// Per-field strategies, tried before `strategy`.
    pub field_strategies: IndexMap<String, Strategy>,
    /// Fields that only one side may change.
    pub owned: IndexMap<String, Side>,
    /// What a change to an owned field on the other side does.
    pub on_foreign_change: ForeignChange,
    /// Where the `[sync]` table is.
    pub span: Span,
}

impl SyncSpec {
    /// The side called `side`.
    pub fn side(&self, side: Side) -> &SyncSide {
        match side {
            Side::Left => &self.left,
            Side::Right => &self.right,
        }
    }
}

/// One side of a sync.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncSide {
    /// The connector plugin.
    pub plugin: String,
    /// Settings merged over the plugin's `config` when it is read (a JSON
    /// object).
    pub read: serde_json::Value,
    /// Settings merged over the plugin's `config` when it is written.
    pub write: serde_json::Value,
    /// Model field name -> this side's field name.
    pub rename: IndexMap<String, String>,
}

/// Left or right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// The `left` side.
    Left,
    /// The `right` side.
    Right,
}

impl Side {
    /// `left` or `right`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Right => "right",
        }
    }

    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a side's change since the last sync is recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detect {
    /// The content's checksum differs from the one last synced.
    Checksum,
    /// The record's version number is higher than the one last synced.
    Version,
    /// The record's timestamp is later than the one last synced.
    Timestamp,
    /// Changed by checksum; when both sides changed, this validator plugin
    /// decides whether the changes conflict (a violation) or merge.
    Validator(String),
}

impl Detect {
    /// The keyword.
    pub fn as_str(&self) -> &'static str {
        match self {
            Detect::Checksum => "checksum",
            Detect::Version => "version",
            Detect::Timestamp => "timestamp",
            Detect::Validator(_) => "validator",
        }
    }
}

/// How a conflict (or one field of it) is settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// The later write wins.
    LastWriterWins,
    /// The earlier write wins.
    FirstWriterWins,
    /// One side always wins (the system of record).
    SideWins(Side),
    /// Fields changed on one side only are kept from that side; fields
    /// changed on both go by `merge_fallback`.
    Merge,
    /// The conflict waits for a person (`ferry conflicts`).
    Manual,
    /// A resolver plugin decides.
    Resolver(String),
}

impl Strategy {
    /// The keyword.
    pub fn as_str(&self) -> &'static str {
        match self {
            Strategy::LastWriterWins => "last-writer-wins",
            Strategy::FirstWriterWins => "first-writer-wins",
            Strategy::SideWins(Side::Left) => "left-wins",
            Strategy::SideWins(Side::Right) => "right-wins",
            Strategy::Merge => "merge",
            Strategy::Manual => "manual",
            Strategy::Resolver(_) => "resolver",
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Strategy::Resolver(name) => write!(f, "resolver `{name}`"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// What a change to a field owned by the other side does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForeignChange {
    /// The owner's value is written back over it; the rest of the change
    /// syncs.
    Overwrite,
    /// The whole change is refused: it goes to the dead-letter store and
    /// nothing of it syncs.
    Reject,
}

/// `[sync]` as serde reads it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSync {
    pub left: Spanned<RawSide>,
    pub right: Spanned<RawSide>,
    pub fields: Option<Vec<Spanned<String>>>,
    pub detect: Option<Spanned<String>>,
    pub validator: Option<Spanned<String>>,
    pub timestamp_field: Option<Spanned<String>>,
    pub strategy: Option<Spanned<String>>,
    pub resolver: Option<Spanned<String>>,
    pub merge_fallback: Option<Spanned<String>>,
    pub field_strategies: Option<BTreeMap<String, Spanned<String>>>,
    pub owned: Option<BTreeMap<String, Spanned<String>>>,
    pub on_foreign_change: Option<Spanned<String>>,
}

/// `left = { plugin = "crm", read = {...}, write = {...}, rename = {...} }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSide {
    pub plugin: Spanned<String>,
    pub read: Option<Spanned<toml::Table>>,
    pub write: Option<Spanned<toml::Table>>,
    pub rename: Option<BTreeMap<String, Spanned<String>>>,
}

/// The plugin names `[sync]` refers to, for the rules that check plugins
/// are used.
#[derive(Debug, Default)]
pub(crate) struct SyncDraft {
    /// Every plugin name it mentions.
    pub names: Vec<Name>,
    /// The resolved table, if everything in it checked out.
    pub sync: Option<SyncSpec>,
    /// Where the table is.
    pub span: Span,
}

const STRATEGIES: [&str; 7] = [
    "last-writer-wins",
    "first-writer-wins",
    "left-wins",
    "right-wins",
    "merge",
    "manual",
    "resolver",
];

fn strategy_word(
    cx: &mut Collector,
    value: &Spanned<String>,
    what: &str,
    allowed: &[&str],
) -> Option<Strategy> {
    let options: Vec<(&str, &str)> = allowed.iter().map(|w| (*w, *w)).collect();
    let word = keyword(cx, value, what, &options)?;
    Some(match word {
        "last-writer-wins" => Strategy::LastWriterWins,
        "first-writer-wins" => Strategy::FirstWriterWins,
        "left-wins" => Strategy::SideWins(Side::Left),
        "right-wins" => Strategy::SideWins(Side::Right),
        "merge" => Strategy::Merge,
        "manual" => Strategy::Manual,
        _ => Strategy::Resolver(String::new()),
    })
}

/// Checks that `name` is a declared plugin of `kind`.
fn plugin_of_kind(
    cx: &mut Collector,
    plugins: &[PluginDraft],
    name: &Spanned<String>,
    kind: PluginKind,
    role: &str,
) -> bool {
    let text = name.get_ref();
    match plugins.iter().find(|p| &p.name == text) {
        None => {
            let names: Vec<&str> = plugins
                .iter()
                .filter(|p| p.kind.is_none_or(|k| k == kind))
                .map(|p| p.name.as_str())
                .collect();
            let hint = if names.is_empty() {
                format!("declare it: `[plugins.{text}]` with `kind = \"{kind}\"`")
            } else {
                expected_hint(text, &names)
            };
            cx.error(
                span_of(name),
                format!("{role} `{text}` is not a declared plugin"),
                Some(hint),
            );
            false
        }
        Some(p) => match p.kind {
            Some(k) if k != kind => {
                cx.error(
                    span_of(name),
                    format!("{role} `{text}` is a {k}, not a {kind}"),
                    Some(format!(
                        "declare `[plugins.{text}]` with `kind = \"{kind}\"`, or name a {kind} here"
                    )),
                );
                false
            }
            _ => true,
        },
    }
}

fn resolve_side(
    cx: &mut Collector,
    plugins: &[PluginDraft],
    raw: &Spanned<RawSide>,
    which: &str,
    names: &mut Vec<Name>,
) -> Option<SyncSide> {
    let side = raw.get_ref();
    names.push(Name::from_spanned(&side.plugin));
    let ok = plugin_of_kind(
        cx,
        plugins,
        &side.plugin,
        PluginKind::Connector,
        &format!("`{which}`"),
    );
    let empty = || serde_json::Value::Object(serde_json::Map::new());
    let read = match &side.read {
        None => Some(empty()),
        Some(t) => config_to_json(cx, t),
    };
    let write = match &side.write {
        None => Some(empty()),
        Some(t) => config_to_json(cx, t),
    };
    let mut rename = IndexMap::new();
    let mut rename_ok = true;
    for (model, own) in side.rename.iter().flatten() {
        if own.get_ref().is_empty() || model.is_empty() {
            cx.error(
                span_of(own),
                format!("`{which}.rename`: empty field name"),
                Some("write `model_field = \"side_field\"`".to_owned()),
            );
            rename_ok = false;
        }
        rename.insert(model.clone(), own.get_ref().clone());
    }
    (ok && rename_ok).then_some(())?;
    Some(SyncSide {
        plugin: side.plugin.get_ref().clone(),
        read: read?,
        write: write?,
        rename,
    })
}

/// `[sync]`, given what could be read of it and the plugins declared.
pub(crate) fn resolve_sync(
    cx: &mut Collector,
    raw: Option<RawSync>,
    span: Span,
    plugins: &[PluginDraft],
) -> SyncDraft {
    let mut draft = SyncDraft {
        span,
        ..SyncDraft::default()
    };
    let Some(raw) = raw else {
        return draft;
    };
    let errors_before = cx.count();
    let left = resolve_side(cx, plugins, &raw.left, "left", &mut draft.names);
    let right = resolve_side(cx, plugins, &raw.right, "right", &mut draft.names);
    if raw.left.get_ref().plugin.get_ref() == raw.right.get_ref().plugin.get_ref() {
        cx.error(
            span_of(&raw.right.get_ref().plugin),
            format!(
                "`left` and `right` are the same plugin, `{}`",
                raw.right.get_ref().plugin.get_ref()
            ),
            Some("a sync keeps two systems alike: declare a connector for each".to_owned()),
        );
    }

    let mut fields: Option<Vec<String>> = None;
    if let Some(list) = &raw.fields {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for f in list {
            if f.get_ref().is_empty() {
                cx.error(span_of(f), "`fields`: empty field name", None);
            } else if !seen.insert(f.get_ref().clone()) {
                cx.error(
                    span_of(f),
                    format!("`fields` names `{}` twice", f.get_ref()),
                    None,
                );
            }
            out.push(f.get_ref().clone());
        }
        if out.is_empty() {
            cx.error(
                span,
                "`fields` is empty: nothing would be synced",
                Some("list the fields to keep alike, or leave `fields` out for all".to_owned()),
            );
        }
        fields = Some(out);
    }
    // Names of fields in other settings must be synced fields.
    let known_field = |cx: &mut Collector, name: &str, at: Span, setting: &str| {
        if let Some(list) = &fields
            && !list.iter().any(|f| f == name)
        {
            let names: Vec<&str> = list.iter().map(String::as_str).collect();
            let mut hint = format!("add `{name}` to `fields`, or remove it here");
            if let Some(near) = crate::suggest::did_you_mean(name, names.iter().copied()) {
                hint = format!("did you mean `{near}`? Otherwise {hint}");
            }
            cx.error(
                at,
                format!("`{setting}` names `{name}`, which is not in `fields`"),
                Some(hint),
            );
        }
    };

    let detect = match &raw.detect {
        None => Some(Detect::Checksum),
        Some(word) => keyword(
            cx,
            word,
            "conflict detection",
            &[
                ("checksum", 0),
                ("version", 1),
                ("timestamp", 2),
                ("validator", 3),
            ],
        )
        .and_then(|n| match n {
            0 => Some(Detect::Checksum),
            1 => Some(Detect::Version),
            2 => Some(Detect::Timestamp),
            _ => match &raw.validator {
                Some(v) => {
                    draft.names.push(Name::from_spanned(v));
                    plugin_of_kind(cx, plugins, v, PluginKind::Validator, "`validator`")
                        .then(|| Detect::Validator(v.get_ref().clone()))
                }
                None => {
                    cx.error(
                        span_of(word),
                        "`detect = \"validator\"` needs `validator`",
                        Some(
                            "name the validator plugin that decides what conflicts: `validator = \"<plugin>\"`"
                                .to_owned(),
                        ),
                    );
                    None
                }
            },
        }),
    };
    if let Some(v) = &raw.validator
        && !matches!(detect, Some(Detect::Validator(_)))
        && raw
            .detect
            .as_ref()
            .is_none_or(|d| d.get_ref() != "validator")
    {
        draft.names.push(Name::from_spanned(v));
        cx.error(
            span_of(v),
            "`validator` is set but `detect` is not \"validator\"",
            Some("add `detect = \"validator\"`, or remove `validator`".to_owned()),
        );
    }

    let strategy = match &raw.strategy {
        None => Some(Strategy::LastWriterWins),
        Some(word) => match strategy_word(cx, word, "strategy", &STRATEGIES) {
            Some(Strategy::Resolver(_)) => match &raw.resolver {
                Some(r) => {
                    draft.names.push(Name::from_spanned(r));
                    plugin_of_kind(cx, plugins, r, PluginKind::Resolver, "`resolver`")
                        .then(|| Strategy::Resolver(r.get_ref().clone()))
                }
                None => {
                    cx.error(
                        span_of(word),
                        "`strategy = \"resolver\"` needs `resolver`",
                        Some("name the resolver plugin: `resolver = \"<plugin>\"`".to_owned()),
                    );
                    None
                }
            },
            other => other,
        },
    };
    if let Some(r) = &raw.resolver
        && raw
            .strategy
            .as_ref()
            .is_none_or(|s| s.get_ref() != "resolver")
    {
        draft.names.push(Name::from_spanned(r));
        cx.error(
            span_of(r),
            "`resolver` is set but `strategy` is not \"resolver\"",
            Some("add `strategy = \"resolver\"`, or remove `resolver`".to_owned()),
        );
    }

    const SIMPLE: [&str; 5] = [
        "last-writer-wins",
        "first-writer-wins",
        "left-wins",
        "right-wins",
        "manual",
    ];
    let merge_fallback = match &raw.merge_fallback {
        None => Some(Strategy::Manual),
        Some(word) => {
            if raw.strategy.as_ref().is_none_or(|s| s.get_ref() != "merge") {
                cx.error(
                    span_of(word),
                    "`merge_fallback` is set but `strategy` is not \"merge\"",
                    Some("add `strategy = \"merge\"`, or remove `merge_fallback`".to_owned()),
                );
            }
            strategy_word(cx, word, "merge fallback", &SIMPLE)
        }
    };

    let mut field_strategies = IndexMap::new();
    for (field, word) in raw.field_strategies.iter().flatten() {
        known_field(cx, field, span_of(word), "field_strategies");
        if let Some(s) = strategy_word(cx, word, "field strategy", &SIMPLE) {
            field_strategies.insert(field.clone(), s);
        }
    }

    let mut owned = IndexMap::new();
    for (field, word) in raw.owned.iter().flatten() {
        known_field(cx, field, span_of(word), "owned");
        if let Some(side) = keyword(
            cx,
            word,
            "owner",
            &[("left", Side::Left), ("right", Side::Right)],
        ) {
            owned.insert(field.clone(), side);
        }
    }
    let on_foreign_change = match &raw.on_foreign_change {
        None => Some(ForeignChange::Overwrite),
        Some(word) => keyword(
            cx,
            word,
            "on_foreign_change",
            &[
                ("overwrite", ForeignChange::Overwrite),
                ("reject", ForeignChange::Reject),
            ],
        ),
    };
    if let Some(t) = &raw.timestamp_field
        && t.get_ref().is_empty()
    {
        cx.error(span_of(t), "`timestamp_field` is empty", None);
    }
    if let Some(t) = &raw.timestamp_field {
        known_field(cx, t.get_ref(), span_of(t), "timestamp_field");
    }

    if cx.count() > errors_before {
        return draft;
    }
    draft.sync = (|| {
        Some(SyncSpec {
            left: left?,
            right: right?,
            fields,
            detect: detect?,
            timestamp_field: raw.timestamp_field.as_ref().map(|t| t.get_ref().clone()),
            strategy: strategy?,
            merge_fallback: merge_fallback?,
            field_strategies,
            owned,
            on_foreign_change: on_foreign_change?,
            span,
        })
    })();
    draft
}
