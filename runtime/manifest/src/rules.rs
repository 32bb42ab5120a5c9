//! The semantic rules: what makes a set of plugins and routes a pipeline.
//!
//! - exactly one source per manifest;
//! - at least one route;
//! - every name in a route is a declared plugin of a kind that fits its place:
//!   `from` takes the source or a tap, `through` mappers and validators, `to`
//!   sinks; resolvers belong to two-way sync, not to routes;
//! - a mapper, validator or sink is used in one place across all routes, so the
//!   routes form a tree rooted at the source;
//! - a tap (a route whose `from` is a mapper or validator) comes after the route
//!   that has that stage in its `through`, and a route's `through` never holds
//!   its own `from`;
//! - every mapper, validator and sink is used by some route.
//!
//! Rules never pile onto an error reported earlier: a plugin whose kind could not
//! be read is not checked for kind, a misspelt name does not also make the plugin
//! it was meant to be "unused", and the rules that need every route (unused
//! plugins, taps with no route) are skipped when a route could not be read whole.

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;

use crate::diagnostic::Span;
use crate::document::Collector;
use crate::model::PluginKind;
use crate::resolve::{Name, PluginDraft, RouteDraft};
use crate::suggest::{did_you_mean, quoted_list};
use crate::sync::SyncDraft;

/// Where a name sits in a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    From,
    Through,
    To,
}

impl Place {
    fn key(self) -> &'static str {
        match self {
            Place::From => "from",
            Place::Through => "through",
            Place::To => "to",
        }
    }

    fn accepts(self, kind: PluginKind) -> bool {
        match self {
            Place::From => kind == PluginKind::Source || kind.is_transform(),
            Place::Through => kind.is_transform(),
            Place::To => kind == PluginKind::Sink,
        }
    }

    /// "`through` takes mappers and validators; sinks go in `to`"
    fn takes(self, kind: PluginKind) -> String {
        let takes = match self {
            Place::From => {
                "`from` takes the source, or a mapper or validator from the `through` of an earlier route (a tap)"
            }
            Place::Through => "`through` takes mappers and validators",
            Place::To => "`to` takes sinks",
        };
        let instead = match (self, kind) {
            (Place::Through, PluginKind::Sink) => "; sinks go in `to`",
            (Place::Through | Place::To, PluginKind::Source) => "; the source goes in `from`",
            (Place::To, PluginKind::Mapper | PluginKind::Validator) => {
                "; mappers and validators go in `through`"
            }
            _ => "",
        };
        format!("{takes}{instead}")
    }
}

/// "the source", "a sink", "a mapper", ...
pub(crate) fn kind_phrase(kind: PluginKind) -> String {
    match kind {
        PluginKind::Source => "the source".to_owned(),
        other => format!("a {other}"),
    }
}

struct Checker<'a, 'c> {
    cx: &'c mut Collector,
    declared: IndexMap<&'a str, &'a PluginDraft>,
    /// Where each stage is used: route number (from 0) and the name's span.
    used: HashMap<&'a str, (usize, Span)>,
    /// Plugins named in a route (in any place, rightly or not), or offered as
    /// "did you mean" for a misspelt name: never reported unused as well.
    mentioned: HashSet<String>,
}

/// Applies every rule, reporting each violation.
pub(crate) fn check(
    cx: &mut Collector,
    pipeline_header: Option<Span>,
    plugins: &[PluginDraft],
    plugins_read: bool,
    routes: &[Option<RouteDraft>],
    routes_key: Option<Span>,
    sync: Option<&SyncDraft>,
) {
    if let Some(sync) = sync {
        check_sync(cx, plugins, plugins_read, routes, routes_key, sync);
        return;
    }
    let declared: IndexMap<&str, &PluginDraft> = plugins
        .iter()
        .map(|plugin| (plugin.name.as_str(), plugin))
        .collect();
    let every_kind_known = plugins_read && plugins.iter().all(|plugin| plugin.kind.is_some());
    let every_route_read = routes
        .iter()
        .all(|route| route.as_ref().is_some_and(|route| route.clean));

    let sources: Vec<&PluginDraft> = plugins
        .iter()
        .filter(|plugin| plugin.kind == Some(PluginKind::Source))
        .collect();
    check_one_source(cx, pipeline_header, plugins, &sources, every_kind_known);

    if routes.is_empty() {
        let span = routes_key
            .or(sources.first().map(|source| source.header))
            .or(pipeline_header)
            .unwrap_or_default();
        let from = sources
            .first()
            .map_or("<source>", |source| source.name.as_str());
        cx.error(
            span,
            "no routes: records from the source go nowhere",
            Some(format!(
                "add a route: `[[routes]]` with `from = \"{from}\"` and `to = [\"<sink>\"]`"
            )),
        );
    }

    // Where each stage sits in a `through`, to check taps against.
    let mut in_through: HashMap<&str, (usize, Span)> = HashMap::new();
    for (index, route) in routes.iter().enumerate() {
        for name in route.iter().flat_map(|route| &route.through) {
            in_through
                .entry(name.text.as_str())
                .or_insert((index, name.span));
        }
    }

    let mut checker = Checker {
        cx,
        declared,
        used: HashMap::new(),
        mentioned: HashSet::new(),
    };
    for (index, route) in routes.iter().enumerate() {
        if let Some(route) = route {
            checker.route(index, route, &in_through, every_route_read);
        }
    }
    if every_route_read {
        checker.unused(plugins);
    }
}

/// A two-way sync manifest: no routes, and every plugin is named by [sync].
fn check_sync(
    cx: &mut Collector,
    plugins: &[PluginDraft],
    plugins_read: bool,
    routes: &[Option<RouteDraft>],
    routes_key: Option<Span>,
    sync: &SyncDraft,
) {
    if !routes.is_empty() {
        let line = cx.source().line_column(sync.span.start).0;
        cx.error(
            routes_key.unwrap_or(sync.span),
            "a two-way sync manifest has no routes",
            Some(format!(
                "records move between the [sync] table's `left` and `right` (line {line}); \
                 put one-way routes in a manifest of their own"
            )),
        );
    }
    if !plugins_read {
        return;
    }
    for plugin in plugins {
        if sync.names.iter().any(|n| n.text == plugin.name) {
            continue;
        }
        let what = plugin
            .kind
            .map(|k| format!(" ({})", kind_phrase(k)))
            .unwrap_or_default();
        cx.error(
            plugin.header,
            format!("plugin `{}`{what} is not used by [sync]", plugin.name),
            Some(
                "a sync uses two connectors (`left`, `right`), and optionally a `validator` and a `resolver`; remove it"
                    .to_owned(),
            ),
        );
    }
}

fn check_one_source(
    cx: &mut Collector,
    pipeline_header: Option<Span>,
    plugins: &[PluginDraft],
    sources: &[&PluginDraft],
    every_kind_known: bool,
) {
    let Some(first) = sources.first() else {
        if every_kind_known {
            let span = plugins
                .first()
                .map(|plugin| plugin.header)
                .or(pipeline_header)
                .unwrap_or_default();
            cx.error(
                span,
                "no source: a pipeline reads from exactly one plugin of kind `source`",
                Some("declare one: `[plugins.<name>]` with `kind = \"source\"`".to_owned()),
            );
        }
        return;
    };
    let (line, _) = cx.source().line_column(first.header.start);
    for extra in sources.iter().skip(1) {
        cx.error(
            extra.kind_span.unwrap_or(extra.header),
            format!(
                "a second source, `{}`: a manifest has exactly one source",
                extra.name
            ),
            Some(format!(
                "`{}` (line {line}) is this manifest's source; put `{}` and its routes in a manifest \
                 of their own: a folder of manifests runs them all",
                first.name, extra.name
            )),
        );
    }
}

impl<'a> Checker<'a, '_> {
    fn line(&self, span: Span) -> usize {
        self.cx.source().line_column(span.start).0
    }

    fn route(
        &mut self,
        index: usize,
        route: &'a RouteDraft,
        in_through: &HashMap<&str, (usize, Span)>,
        every_route_read: bool,
    ) {
        let mut own_from_reported = false;
        if let Some(kind) = self.kind_at(index, &route.from, Place::From)
            && kind.is_transform()
        {
            own_from_reported = self.tap(index, route, in_through, every_route_read);
        }
        for name in &route.through {
            if own_from_reported && name.text == route.from.text {
                continue;
            }
            if self.kind_at(index, name, Place::Through).is_some() {
                self.use_once(index, name);
            }
        }
        for name in &route.to {
            if self.kind_at(index, name, Place::To).is_some() {
                self.use_once(index, name);
            }
        }
    }

    /// The kind of a name in a route, if it is declared, readable and fits the
    /// place; reports it otherwise.
    fn kind_at(&mut self, index: usize, name: &Name, place: Place) -> Option<PluginKind> {
        let route = index + 1;
        self.mentioned.insert(name.text.clone());
        let Some(plugin) = self.declared.get(name.text.as_str()) else {
            let near = did_you_mean(&name.text, self.declared.keys().copied());
            let hint = if self.declared.is_empty() {
                "no plugins are declared; declare one with `[plugins.<name>]`".to_owned()
            } else {
                let mut hint = format!(
                    "declared plugins are: {}",
                    quoted_list(self.declared.keys().copied())
                );
                if let Some(near) = near {
                    hint.push_str(&format!("; did you mean `{near}`?"));
                    self.mentioned.insert(near.to_owned());
                }
                hint
            };
            self.cx.error(
                name.span,
                format!(
                    "unknown plugin `{}` in `{}` of route #{route}",
                    name.text,
                    place.key()
                ),
                Some(hint),
            );
            return None;
        };
        // A plugin whose kind could not be read has its own error already.
        let kind = plugin.kind?;
        if matches!(kind, PluginKind::Resolver | PluginKind::Connector) {
            self.cx.error(
                name.span,
                format!(
                    "`{}` is a {kind}: {kind}s are used by two-way sync ([sync]), not in routes",
                    name.text
                ),
                Some(format!(
                    "remove `{}` from route #{route}; it can stay declared",
                    name.text
                )),
            );
            return None;
        }
        if !place.accepts(kind) {
            self.cx.error(
                name.span,
                format!(
                    "`{}` cannot go in `{}` of route #{route}",
                    name.text,
                    place.key()
                ),
                Some(format!(
                    "`{}` is {}; {}",
                    name.text,
                    kind_phrase(kind),
                    place.takes(kind)
                )),
            );
            return None;
        }
        Some(kind)
    }

    /// A mapper, validator or sink has one place in the routes.
    fn use_once(&mut self, index: usize, name: &'a Name) {
        match self.used.get(name.text.as_str()) {
            Some(&(first_route, first_span)) => {
                let line = self.line(first_span);
                let first = if first_route == index {
                    "earlier in this route".to_owned()
                } else {
                    format!("in route #{}", first_route + 1)
                };
                self.cx.error(
                    name.span,
                    format!("`{}` is already used {first}", name.text),
                    Some(format!(
                        "line {line} uses it first; a stage has one place, so routes form a tree \
                         (to run the same component again, declare another plugin with the same `wasm`)"
                    )),
                );
            }
            None => {
                self.used.insert(&name.text, (index, name.span));
            }
        }
    }

    /// A route starting at a mapper or validator taps the records leaving it.
    /// Returns whether the route was reported for holding its own `from` in
    /// its `through`.
    fn tap(
        &mut self,
        index: usize,
        route: &RouteDraft,
        in_through: &HashMap<&str, (usize, Span)>,
        every_route_read: bool,
    ) -> bool {
        let from = &route.from;
        if let Some(own) = route.through.iter().find(|name| name.text == from.text) {
            self.cx.error(
                own.span,
                format!(
                    "route #{} has its own `from`, `{}`, in its `through`",
                    index + 1,
                    from.text
                ),
                Some(format!(
                    "the route starts with the records leaving `{}`; remove it from `through`",
                    from.text
                )),
            );
            return true;
        }
        match in_through.get(from.text.as_str()) {
            Some(&(earlier, _)) if earlier < index => {}
            Some(&(later, span)) => {
                let later_line = self.line(span);
                self.cx.error(
                    from.span,
                    format!(
                        "route #{} taps `{}` before the route that runs it",
                        index + 1,
                        from.text
                    ),
                    Some(format!(
                        "move this route after route #{} (line {later_line}), which has `{}` in its `through`",
                        later + 1,
                        from.text
                    )),
                );
            }
            None if every_route_read => {
                self.cx.error(
                    from.span,
                    format!(
                        "`{}` is not in the `through` of any route, so no records leave it",
                        from.text
                    ),
                    Some(format!(
                        "put `{}` in the `through` of a route from the source first; a route after that one can tap it",
                        from.text
                    )),
                );
            }
            None => {}
        }
        false
    }

    /// Every mapper, validator and sink must be used by a route.
    fn unused(&mut self, plugins: &[PluginDraft]) {
        for plugin in plugins {
            let Some(kind) = plugin.kind else { continue };
            let stage =
                kind.is_transform() || kind == PluginKind::Sink || kind == PluginKind::Connector;
            if stage
                && !self.used.contains_key(plugin.name.as_str())
                && !self.mentioned.contains(&plugin.name)
            {
                self.cx.error(
                    plugin.header,
                    format!(
                        "plugin `{}` ({}) is not used by any route",
                        plugin.name,
                        kind_phrase(kind)
                    ),
                    Some("add it to a route or remove it".to_owned()),
                );
            }
        }
    }
}
