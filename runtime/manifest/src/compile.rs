//! The manifest compiler: text in, a checked [`Manifest`] or every error out.
//!
//! 1. Parse the TOML into a spanned document. A syntax error stops here: it is
//!    the one error reported, since nothing after it can be trusted.
//! 2. Walk the top level by hand (`pipeline`, `connections`, `plugins`, `routes`), and hand each
//!    section to [`deserialize_section`]: `[pipeline]`, then every plugin, then
//!    every route, each on its own, so mistakes in three places give three errors.
//! 3. Resolve each section (keywords, ranges, names, paths, defaults).
//! 4. Run the semantic rules over what could be read.
//! 5. No error at all: assemble the [`Manifest`]. Otherwise return them all, in
//!    source order.

use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::{ManifestError, SourceFile, Span};
use crate::document::{Collector, KeyPath, deserialize_section, in_source_order, type_name};
use crate::model::{Manifest, manifest_dir};
use crate::raw::{RawConnection, RawPipeline, RawPlugin, RawRoute, TOP_LEVEL_KEYS};
use crate::resolve::{
    PluginDraft, RouteDraft, resolve_connection, resolve_pipeline, resolve_plugin, resolve_route,
};
use crate::rules;
use crate::suggest::{did_you_mean, expected_hint};
use crate::sync::{RawSync, resolve_sync};

/// Keys of `[pipeline]`, to tell an operator who wrote one at the top level
/// where it belongs.
const PIPELINE_KEYS: &[&str] = &[
    "name",
    "mode",
    "schedule",
    "batch",
    "poll_interval_ms",
    "state",
];

type Entry<'t, 'i> = (
    &'t Spanned<std::borrow::Cow<'i, str>>,
    &'t Spanned<DeValue<'i>>,
);

/// Compiles a manifest's text; `path` is used for display and to resolve paths.
pub(crate) fn compile(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
    let source = Arc::new(SourceFile::new(path, text));
    let mut cx = Collector::new(Arc::clone(&source));
    let dir = manifest_dir(path);

    let document = match DeTable::parse(text) {
        Ok(document) => document,
        Err(error) => {
            let span = error.span().map_or(Span::default(), Span::from);
            cx.error(
                span,
                format!("invalid TOML: {}", error.message().trim()),
                None,
            );
            return Err(cx.into_error());
        }
    };

    if document.get_ref().is_empty() {
        cx.error(
            Span::default(),
            "the manifest is empty",
            Some(
                "a manifest has a `[pipeline]` table, a `[plugins.<name>]` table per plugin, \
                 and `[[routes]]` between them"
                    .to_owned(),
            ),
        );
        return Err(cx.into_error());
    }

    let mut pipeline_entry: Option<Entry<'_, '_>> = None;
    let mut plugins_entry: Option<Entry<'_, '_>> = None;
    let mut connections_entry: Option<Entry<'_, '_>> = None;
    let mut routes_entry: Option<Entry<'_, '_>> = None;
    let mut sync_entry: Option<Entry<'_, '_>> = None;
    // Sections an unknown top-level key was probably meant to be: they are not
    // reported missing as well.
    let mut misspelt: Vec<&str> = Vec::new();
    for (key, value) in in_source_order(document.get_ref()) {
        match key.get_ref().as_ref() {
            "pipeline" => pipeline_entry = Some((key, value)),
            "plugins" => plugins_entry = Some((key, value)),
            "connections" => connections_entry = Some((key, value)),
            "routes" => routes_entry = Some((key, value)),
            "sync" => sync_entry = Some((key, value)),
            other => misspelt.extend(unknown_top_level(
                &mut cx,
                other,
                key.span().into(),
                value.get_ref(),
            )),
        }
    }

    // [pipeline]
    let pipeline_header = pipeline_entry.map(|(_, value)| Span::from(value.span()));
    let pipeline = match pipeline_entry {
        None if misspelt.contains(&"pipeline") => None,
        None => {
            cx.error(
                Span::default(),
                "missing [pipeline] table",
                Some(
                    "start the manifest with `[pipeline]` and `name = \"<pipeline-name>\"`"
                        .to_owned(),
                ),
            );
            None
        }
        Some((_, value)) => {
            let path = KeyPath::root().key("pipeline");
            let header = value.span().into();
            let section = deserialize_section::<RawPipeline>(&mut cx, &path, value);
            // A `schedule` of the wrong type has its error: not also "missing".
            let schedule_lost = section.lost("schedule");
            section
                .value
                .and_then(|raw| resolve_pipeline(&mut cx, raw, header, &dir, schedule_lost))
        }
    };

    // [connections.<name>]
    let mut connections: IndexMap<String, Option<crate::model::Connection>> = IndexMap::new();
    if let Some((_, value)) = connections_entry {
        match value.get_ref() {
            DeValue::Table(table) => {
                for (name, connection) in in_source_order(table) {
                    let path = KeyPath::root().key("connections").key(name.get_ref());
                    let raw =
                        deserialize_section::<RawConnection>(&mut cx, &path, connection).value;
                    let resolved = resolve_connection(
                        &mut cx,
                        name.get_ref(),
                        name.span().into(),
                        connection.span().into(),
                        raw,
                        &dir,
                    );
                    connections.insert(name.get_ref().to_string(), resolved);
                }
            }
            other => {
                cx.error(
                    value.span(),
                    format!(
                        "wrong type for `connections`: expected a table, found {}",
                        type_name(other)
                    ),
                    Some(
                        "declare each connection as a table of its own: `[connections.<name>]`"
                            .to_owned(),
                    ),
                );
            }
        }
    }

    // [plugins.<name>]
    let mut plugins: Vec<PluginDraft> = Vec::new();
    // Whether every plugin could be read (so "no source" is a fair complaint).
    let mut plugins_read = !(plugins_entry.is_none() && misspelt.contains(&"plugins"));
    if let Some((_, value)) = plugins_entry {
        match value.get_ref() {
            DeValue::Table(table) => {
                for (name, plugin) in in_source_order(table) {
                    let path = KeyPath::root().key("plugins").key(name.get_ref());
                    let raw = deserialize_section::<RawPlugin>(&mut cx, &path, plugin).value;
                    plugins.push(resolve_plugin(
                        &mut cx,
                        name.get_ref(),
                        name.span().into(),
                        plugin.span().into(),
                        raw,
                        &dir,
                    ));
                }
            }
            other => {
                cx.error(
                    value.span(),
                    format!(
                        "wrong type for `plugins`: expected a table, found {}",
                        type_name(other)
                    ),
                    Some(
                        "declare each plugin as a table of its own: `[plugins.<name>]`".to_owned(),
                    ),
                );
                plugins_read = false;
            }
        }
    }

    // [[routes]]
    let mut routes: Vec<Option<RouteDraft>> = Vec::new();
    let mut routes_key = None;
    if routes_entry.is_none() && misspelt.contains(&"routes") {
        // Routes exist under a misspelt key: do not also say there are none.
        routes.push(None);
    }
    if let Some((key, value)) = routes_entry {
        routes_key = Some(Span::from(key.span()));
        match value.get_ref() {
            DeValue::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    let path = KeyPath::root().key("routes").index(index);
                    let section = deserialize_section::<RawRoute>(&mut cx, &path, item);
                    let header = item.span().into();
                    let when_lost = section.lost("when");
                    routes.push(section.value.map(|raw| {
                        resolve_route(&mut cx, raw, index, header, section.clean, when_lost)
                    }));
                }
            }
            other => {
                cx.error(
                    value.span(),
                    format!(
                        "wrong type for `routes`: expected an array of tables, found {}",
                        type_name(other)
                    ),
                    Some("write each route as `[[routes]]`, with double brackets".to_owned()),
                );
                // Routes exist, just unreadable: do not also say there are none.
                routes.push(None);
            }
        }
    }

    // Every SQL grant names a declared connection.
    for plugin in plugins.iter().filter_map(|draft| draft.plugin.as_ref()) {
        for grant in &plugin.grants.sql {
            if connections.contains_key(&grant.name) {
                continue;
            }
            let mut hint = if connections.is_empty() {
                format!(
                    "declare it: `[connections.{}]` with `url = \"postgres://user@host:5432/db\"` or `url = \"sqlite:file.db\"`",
                    grant.name
                )
            } else {
                let names: Vec<&str> = connections.keys().map(String::as_str).collect();
                expected_hint(&grant.name, &names)
            };
            if connections_entry.is_none() {
                hint.push_str("; connections are declared at the top of the manifest");
            }
            cx.error(
                grant.span,
                format!(
                    "plugin `{}` is granted connection `{}`, which is not declared",
                    plugin.name, grant.name
                ),
                Some(hint),
            );
        }
    }

    // [sync]
    let sync = sync_entry.map(|(_, value)| {
        let path = KeyPath::root().key("sync");
        let raw = deserialize_section::<RawSync>(&mut cx, &path, value).value;
        resolve_sync(&mut cx, raw, value.span().into(), &plugins)
    });

    rules::check(
        &mut cx,
        pipeline_header,
        &plugins,
        plugins_read,
        &routes,
        routes_key,
        sync.as_ref(),
    );
    if let (Some(draft), Some(pipeline)) = (&sync, &pipeline)
        && pipeline.mode == crate::model::Mode::Schedule
    {
        cx.error(
            pipeline.spans.schedule.unwrap_or(pipeline.spans.header),
            "a two-way sync runs `once` or `follow`, not on a schedule",
            Some(format!(
                "set `mode = \"follow\"` (line {}'s [sync] then syncs changes as they come)",
                cx.source().line_column(draft.span.start).0
            )),
        );
    }

    if cx.count() > 0 {
        return Err(cx.into_error());
    }
    let plugins: Option<IndexMap<_, _>> = plugins
        .into_iter()
        .map(|draft| draft.plugin.map(|plugin| (draft.name, plugin)))
        .collect();
    let routes: Option<Vec<_>> = routes
        .into_iter()
        .map(|draft| draft.and_then(|draft| draft.route))
        .collect();
    let connections: Option<IndexMap<_, _>> = connections
        .into_iter()
        .map(|(name, connection)| connection.map(|c| (name, c)))
        .collect();
    let sync = match sync {
        None => Some(None),
        Some(draft) => draft.sync.map(Some),
    };
    match (pipeline, plugins, routes, connections, sync) {
        (Some(pipeline), Some(plugins), Some(routes), Some(connections), Some(sync)) => {
            Ok(Manifest {
                path: path.to_path_buf(),
                dir,
                pipeline,
                connections,
                plugins,
                routes,
                sync,
                source,
            })
        }
        // Every part that fails to resolve reports why; this is a safety net.
        _ => {
            cx.error(
                Span::default(),
                "internal error: the manifest did not resolve, but no error says why",
                Some("please report this manifest to the ferry developers".to_owned()),
            );
            Err(cx.into_error())
        }
    }
}

/// Reports a key at the top of the manifest that is not a known section, and
/// returns the section it was probably meant to be.
fn unknown_top_level(
    cx: &mut Collector,
    key: &str,
    span: Span,
    value: &DeValue<'_>,
) -> Option<&'static str> {
    let array_of_tables = value.as_array().is_some_and(|items| {
        !items.is_empty() && items.iter().all(|item| item.get_ref().is_table())
    });
    let message = if value.is_table() {
        format!("unknown table `[{key}]`")
    } else if array_of_tables {
        format!("unknown table `[[{key}]]`")
    } else {
        format!("unknown key `{key}` at the top of the manifest")
    };
    let mut hint = expected_hint(key, TOP_LEVEL_KEYS);
    if PIPELINE_KEYS.contains(&key) {
        hint = format!("`{key}` belongs in the [pipeline] table");
    } else if matches!(key, "kind" | "wasm" | "sha256" | "config" | "grants") {
        hint = format!("`{key}` belongs in a plugin's table, `[plugins.<name>]`");
    }
    cx.error(span, message, Some(hint));
    did_you_mean(key, TOP_LEVEL_KEYS.iter().copied())
}
