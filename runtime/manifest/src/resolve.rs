//! Raw sections to resolved types: keywords, ranges, names, paths, defaults.
//!
//! Each function checks one section and reports every problem it finds. What it
//! could make sense of is returned as a draft, so the semantic rules in
//! [`crate::rules`] still see a plugin's kind when its digest is malformed, and
//! a route's names when its `when` is wrong.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use crate::diagnostic::Span;
use crate::document::{Collector, KeyPath};
use crate::model::{
    Access, BatchPolicy, Condition, Connection, ConnectionTarget, EnvGrant, EnvValue, FileGrant,
    Grants, Mode, NetworkGrant, OnInvalid, Pipeline, PipelineSpans, Plugin, PluginKind,
    PluginSpans, RetryPolicy, Route, RouteSpans, Scalar, SqlGrant, Test, TlsMode,
};
use crate::raw::{
    RawBatch, RawConnection, RawGrants, RawPipeline, RawPlugin, RawRetry, RawRoute, RawWhen,
};
use crate::suggest::expected_hint;

/// Default `state` path, relative to the manifest's folder.
const DEFAULT_STATE: &str = ".ferry/state.db";
/// Default `poll_interval_ms`.
const DEFAULT_POLL_INTERVAL_MS: i64 = 500;

pub(crate) fn span_of<T>(value: &Spanned<T>) -> Span {
    value.span().into()
}

/// A name written in a route, with where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Name {
    pub text: String,
    pub span: Span,
}

impl Name {
    pub(crate) fn from_spanned(value: &Spanned<String>) -> Self {
        Self {
            text: value.get_ref().clone(),
            span: span_of(value),
        }
    }
}

/// What is known of one declared plugin, even a broken one.
#[derive(Debug)]
pub(crate) struct PluginDraft {
    pub name: String,
    pub header: Span,
    /// The kind, unless it is missing or unknown.
    pub kind: Option<PluginKind>,
    pub kind_span: Option<Span>,
    /// The resolved plugin, if everything in it checked out.
    pub plugin: Option<Plugin>,
}

/// What is known of one route that could be read.
#[derive(Debug)]
pub(crate) struct RouteDraft {
    pub from: Name,
    pub through: Vec<Name>,
    pub to: Vec<Name>,
    /// Whether the route was read without any error (so its names are all there).
    pub clean: bool,
    /// The resolved route, if everything in it checked out.
    pub route: Option<Route>,
}

/// Accepts one of a fixed set of words, or reports it with a "did you mean".
pub(crate) fn keyword<T: Copy>(
    cx: &mut Collector,
    value: &Spanned<String>,
    what: &str,
    options: &[(&str, T)],
) -> Option<T> {
    let text = value.get_ref();
    if let Some((_, found)) = options.iter().find(|(word, _)| word == text) {
        return Some(*found);
    }
    let words: Vec<&str> = options.iter().map(|(word, _)| *word).collect();
    cx.error(
        span_of(value),
        format!("unknown {what} `{text}`"),
        Some(expected_hint(text, &words)),
    );
    None
}

/// Accepts an integer in `range`, or reports it.
fn in_range(
    cx: &mut Collector,
    value: &Spanned<i64>,
    key: &str,
    range: RangeInclusive<i64>,
    default: i64,
) -> Option<i64> {
    let found = *value.get_ref();
    if range.contains(&found) {
        return Some(found);
    }
    let bounds = if *range.end() == i64::MAX {
        format!("at least {}", range.start())
    } else {
        format!("between {} and {}", range.start(), range.end())
    };
    cx.error(
        span_of(value),
        format!("`{key}` must be {bounds}, found {found}"),
        Some(format!("leave it out for the default, {default}")),
    );
    None
}

/// An optional integer setting: its default, or the checked value.
fn setting(
    cx: &mut Collector,
    value: Option<&Spanned<i64>>,
    key: &str,
    range: RangeInclusive<i64>,
    default: i64,
) -> Option<i64> {
    match value {
        None => Some(default),
        Some(value) => in_range(cx, value, key, range, default),
    }
}

/// A path relative to the manifest's folder; empty paths are refused.
fn relative_path(
    cx: &mut Collector,
    value: &Spanned<String>,
    key: &str,
    dir: &Path,
) -> Option<std::path::PathBuf> {
    if value.get_ref().is_empty() {
        cx.error(
            span_of(value),
            format!("`{key}` is empty"),
            Some("give a path, relative to the manifest's folder".to_owned()),
        );
        return None;
    }
    Some(dir.join(value.get_ref()))
}

fn millis(value: i64) -> Duration {
    Duration::from_millis(u64::try_from(value).unwrap_or(0))
}

/// Whether `name` is `[a-z][a-z0-9_-]*` (or `[a-z0-9]...` with `digit_first`).
pub(crate) fn is_valid_name(name: &str, digit_first: bool) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || (digit_first && c.is_ascii_digit()));
    first_ok && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// A valid name close to an invalid one, to offer in a hint.
fn fixed_name(name: &str, digit_first: bool) -> Option<String> {
    let lowered: String = name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let fixed = lowered
        .trim_start_matches(|c: char| {
            !(c.is_ascii_lowercase() || (digit_first && c.is_ascii_digit()))
        })
        .to_owned();
    is_valid_name(&fixed, digit_first).then_some(fixed)
}

/// Reports an invalid pipeline or plugin name.
pub(crate) fn check_name(
    cx: &mut Collector,
    name: &str,
    span: Span,
    what: &str,
    digit_first: bool,
) -> bool {
    if is_valid_name(name, digit_first) {
        return true;
    }
    let start = if digit_first {
        "a letter or digit"
    } else {
        "a letter"
    };
    let mut hint =
        format!("a {what} name is lowercase letters, digits, `_` and `-`, starting with {start}");
    if let Some(fixed) = fixed_name(name, digit_first) {
        hint.push_str(&format!("; try `{fixed}`"));
    }
    cx.error(span, format!("invalid {what} name `{name}`"), Some(hint));
    false
}

/// `[pipeline]`
pub(crate) fn resolve_pipeline(
    cx: &mut Collector,
    raw: RawPipeline,
    header: Span,
    dir: &Path,
    schedule_lost: bool,
) -> Option<Pipeline> {
    let name_ok = check_name(cx, raw.name.get_ref(), span_of(&raw.name), "pipeline", true);
    let mode = match &raw.mode {
        None => Some(Mode::Once),
        Some(mode) => keyword(
            cx,
            mode,
            "mode",
            &[
                ("once", Mode::Once),
                ("follow", Mode::Follow),
                ("schedule", Mode::Schedule),
            ],
        ),
    };
    let schedule = crate::schedule::resolve(
        cx,
        mode,
        raw.mode.as_ref(),
        raw.schedule.as_ref(),
        schedule_lost,
    );
    let batch = match &raw.batch {
        None => Some(BatchPolicy::default()),
        Some(batch) => resolve_batch(cx, batch.get_ref()),
    };
    let poll = setting(
        cx,
        raw.poll_interval_ms.as_ref(),
        "poll_interval_ms",
        1..=i64::MAX,
        DEFAULT_POLL_INTERVAL_MS,
    );
    let state = match &raw.state {
        None => Some(dir.join(DEFAULT_STATE)),
        Some(state) => relative_path(cx, state, "state", dir),
    };
    name_ok.then_some(())?;
    Some(Pipeline {
        name: raw.name.get_ref().clone(),
        mode: mode?,
        schedule: schedule?,
        batch: batch?,
        poll_interval: millis(poll?),
        state: state?,
        spans: PipelineSpans {
            header,
            name: span_of(&raw.name),
            state: raw.state.as_ref().map(span_of),
            schedule: raw.schedule.as_ref().map(span_of),
        },
    })
}

fn resolve_batch(cx: &mut Collector, raw: &RawBatch) -> Option<BatchPolicy> {
    let max_records = setting(cx, raw.max_records.as_ref(), "max_records", 1..=65536, 512);
    let max_wait = setting(
        cx,
        raw.max_wait_ms.as_ref(),
        "max_wait_ms",
        0..=i64::MAX,
        200,
    );
    Some(BatchPolicy {
        max_records: u32::try_from(max_records?).ok()?,
        max_wait: millis(max_wait?),
    })
}

/// `[connections.<name>]`, given what could be read of it.
pub(crate) fn resolve_connection(
    cx: &mut Collector,
    name: &str,
    name_span: Span,
    header: Span,
    raw: Option<RawConnection>,
    dir: &Path,
) -> Option<Connection> {
    let name_ok = check_name(cx, name, name_span, "connection", false);
    let raw = raw?;
    let url = raw.url.get_ref().trim();
    let url_span = span_of(&raw.url);
    let target = if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() || path == ":memory:" {
            let url = crate::url::redact_url(url);
            cx.error(
                url_span,
                format!("connection `{name}`: `{url}` names no database file"),
                Some("write `sqlite:warehouse.db` (relative to the manifest's folder) or `sqlite:/abs/path.db`".to_owned()),
            );
            None
        } else {
            Some(ConnectionTarget::Sqlite(dir.join(path)))
        }
    } else if let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    {
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        if let Some(place) = crate::url::password_in(url) {
            let env = format!("{}_PASSWORD", name.to_ascii_uppercase().replace('-', "_"));
            let (message, drop) = match place {
                crate::url::PasswordIn::Userinfo => (
                    format!("connection `{name}`: the URL holds a password"),
                    "drop it from the URL".to_owned(),
                ),
                crate::url::PasswordIn::Query(param) => (
                    format!(
                        "connection `{name}`: the URL holds a password (query parameter `{param}`)"
                    ),
                    format!("drop `{param}` from the URL"),
                ),
            };
            cx.error(
                url_span,
                message,
                Some(format!(
                    "keep secrets out of manifests: {drop} and set `password_env = \"{env}\"`, then export {env} where ferry runs"
                )),
            );
            None
        } else if authority.rsplit('@').next().is_none_or(str::is_empty) {
            let url = crate::url::redact_url(url);
            cx.error(
                url_span,
                format!("connection `{name}`: `{url}` names no host"),
                Some("write `postgres://user@host:5432/database`".to_owned()),
            );
            None
        } else {
            Some(ConnectionTarget::Postgres(url.to_owned()))
        }
    } else {
        let url = crate::url::redact_url(url);
        cx.error(
            url_span,
            format!("connection `{name}`: `{url}` is not a PostgreSQL or SQLite URL"),
            Some(
                "write `postgres://user@host:5432/database` or `sqlite:path/to/file.db`".to_owned(),
            ),
        );
        None
    };
    let tls = match &raw.tls {
        None => Some(TlsMode::Disable),
        Some(tls) => keyword(
            cx,
            tls,
            "TLS mode",
            &[
                ("disable", TlsMode::Disable),
                ("require", TlsMode::Require),
                ("verify-full", TlsMode::VerifyFull),
            ],
        ),
    };
    let ca_file = match &raw.ca_file {
        None => Some(None),
        Some(path) => relative_path(cx, path, "ca_file", dir).map(Some),
    };
    let pool = setting(cx, raw.pool.as_ref(), "pool", 1..=64, 4);
    let transaction_timeout_ms = setting(
        cx,
        raw.transaction_timeout_ms.as_ref(),
        "transaction_timeout_ms",
        100..=86_400_000,
        30_000,
    );
    let password_env = match &raw.password_env {
        None => Some(None),
        Some(var) => {
            let text = var.get_ref();
            if is_env_var_name(text) {
                Some(Some(text.clone()))
            } else {
                cx.error(
                    span_of(var),
                    format!("`{text}` is not an environment variable name"),
                    Some("name the variable holding the password, like `OPS_PASSWORD`".to_owned()),
                );
                None
            }
        }
    };
    if matches!(target, Some(ConnectionTarget::Sqlite(_)))
        && (raw.password_env.is_some() || raw.tls.is_some() || raw.ca_file.is_some())
    {
        cx.error(
            header,
            format!(
                "connection `{name}`: `password_env`, `tls` and `ca_file` apply to PostgreSQL only"
            ),
            Some("a SQLite connection is a local file: drop them".to_owned()),
        );
        return None;
    }
    name_ok.then_some(())?;
    Some(Connection {
        name: name.to_owned(),
        target: target?,
        password_env: password_env?,
        tls: tls?,
        ca_file: ca_file?,
        pool: u32::try_from(pool?).ok()?,
        transaction_timeout_ms: u32::try_from(transaction_timeout_ms?).ok()?,
        span: header,
        url_span,
    })
}

/// `[plugins.<name>]`, given what could be read of it.
pub(crate) fn resolve_plugin(
    cx: &mut Collector,
    name: &str,
    name_span: Span,
    header: Span,
    raw: Option<RawPlugin>,
    dir: &Path,
) -> PluginDraft {
    let name_ok = check_name(cx, name, name_span, "plugin", false);
    let mut draft = PluginDraft {
        name: name.to_owned(),
        header,
        kind: None,
        kind_span: None,
        plugin: None,
    };
    let Some(raw) = raw else {
        return draft;
    };
    draft.kind_span = Some(span_of(&raw.kind));
    draft.kind = keyword(
        cx,
        &raw.kind,
        "plugin kind",
        &PluginKind::ALL.map(|kind| (kind.as_str(), kind)),
    );
    let wasm = relative_path(cx, &raw.wasm, "wasm", dir);
    let sha256_ok = raw
        .sha256
        .as_ref()
        .is_none_or(|digest| check_sha256(cx, digest));
    let config = raw
        .config
        .as_ref()
        .and_then(|config| config_to_json(cx, config));
    let config_ok = raw.config.is_none() || config.is_some();
    let grants = match &raw.grants {
        None => Some(Grants::default()),
        Some(grants) => resolve_grants(cx, grants.get_ref(), name, dir),
    };
    let retry = match &raw.retry {
        None => Some(RetryPolicy::default()),
        Some(retry) => resolve_retry(cx, retry),
    };

    draft.plugin = (|| {
        (name_ok && sha256_ok && config_ok).then_some(())?;
        Some(Plugin {
            name: name.to_owned(),
            kind: draft.kind?,
            wasm: wasm?,
            sha256: raw.sha256.as_ref().map(|digest| digest.get_ref().clone()),
            config: config.unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new())),
            grants: grants?,
            retry: retry?,
            spans: PluginSpans {
                header,
                name: name_span,
                kind: span_of(&raw.kind),
                wasm: span_of(&raw.wasm),
                sha256: raw.sha256.as_ref().map(span_of),
                config: raw.config.as_ref().map(span_of),
                grants: raw.grants.as_ref().map(span_of),
            },
        })
    })();
    draft
}

fn check_sha256(cx: &mut Collector, digest: &Spanned<String>) -> bool {
    let text = digest.get_ref();
    let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
    if text.len() == 64 && text.chars().all(hex) {
        return true;
    }
    let hint = if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
        "write the digest in lowercase".to_owned()
    } else {
        format!(
            "a sha256 digest is 64 lowercase hex characters (as `sha256sum` prints it); this has {} characters",
            text.chars().count()
        )
    };
    cx.error(
        span_of(digest),
        format!("`sha256` is not a sha256 digest: `{text}`"),
        Some(hint),
    );
    false
}

/// The `config` table as a JSON object; datetimes become RFC 3339 strings.
pub(crate) fn config_to_json(
    cx: &mut Collector,
    config: &Spanned<toml::Table>,
) -> Option<serde_json::Value> {
    let mut unrepresentable = Vec::new();
    let object = config
        .get_ref()
        .iter()
        .map(|(key, value)| (key.clone(), to_json(value, key, &mut unrepresentable)))
        .collect();
    for (path, value) in &unrepresentable {
        let toml = if value.is_nan() {
            "nan"
        } else if value.is_sign_negative() {
            "-inf"
        } else {
            "inf"
        };
        let key = path.rsplit(['.', '[']).next().unwrap_or(path);
        cx.error(
            span_of(config),
            format!("`config.{path}` is {toml}, which JSON cannot carry"),
            Some(format!("write it as a string: `{key} = \"{toml}\"`")),
        );
    }
    unrepresentable
        .is_empty()
        .then_some(serde_json::Value::Object(object))
}

fn to_json(
    value: &toml::Value,
    path: &str,
    unrepresentable: &mut Vec<(String, f64)>,
) -> serde_json::Value {
    use serde_json::Value as Json;
    match value {
        toml::Value::String(text) => Json::String(text.clone()),
        toml::Value::Integer(int) => Json::from(*int),
        toml::Value::Float(float) => match serde_json::Number::from_f64(*float) {
            Some(number) => Json::Number(number),
            None => {
                unrepresentable.push((path.to_owned(), *float));
                Json::Null
            }
        },
        toml::Value::Boolean(bool) => Json::Bool(*bool),
        toml::Value::Datetime(datetime) => Json::String(datetime.to_string()),
        toml::Value::Array(items) => Json::Array(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| to_json(item, &format!("{path}[{index}]"), unrepresentable))
                .collect(),
        ),
        toml::Value::Table(table) => Json::Object(
            table
                .iter()
                .map(|(key, item)| {
                    (
                        key.clone(),
                        to_json(item, &format!("{path}.{key}"), unrepresentable),
                    )
                })
                .collect(),
        ),
    }
}

fn resolve_retry(cx: &mut Collector, raw: &Spanned<RawRetry>) -> Option<RetryPolicy> {
    let r = raw.get_ref();
    let attempts = setting(cx, r.attempts.as_ref(), "attempts", 1..=100, 3);
    let backoff = setting(cx, r.backoff_ms.as_ref(), "backoff_ms", 1..=60_000, 50);
    let max_backoff = setting(
        cx,
        r.max_backoff_ms.as_ref(),
        "max_backoff_ms",
        1..=600_000,
        5000,
    );
    let (attempts, backoff, max_backoff) = (attempts?, backoff?, max_backoff?);
    if max_backoff < backoff {
        cx.error(
            span_of(raw),
            format!("`max_backoff_ms` ({max_backoff}) is less than `backoff_ms` ({backoff})"),
            Some("the waits grow from `backoff_ms` up to `max_backoff_ms`".to_owned()),
        );
        return None;
    }
    Some(RetryPolicy {
        attempts: u32::try_from(attempts).ok()?,
        backoff: millis(backoff),
        max_backoff: millis(max_backoff),
    })
}

fn resolve_grants(cx: &mut Collector, raw: &RawGrants, plugin: &str, dir: &Path) -> Option<Grants> {
    let memory_mb = setting(cx, raw.memory_mb.as_ref(), "memory_mb", 1..=4096, 64);
    let timeout_ms = setting(cx, raw.timeout_ms.as_ref(), "timeout_ms", 1..=600_000, 5000);
    let max_output_mb = setting(
        cx,
        raw.max_output_mb.as_ref(),
        "max_output_mb",
        1..=4096,
        32,
    );
    let fuel = match &raw.fuel {
        None => Some(None),
        Some(v) if *v.get_ref() >= 1 => Some(u64::try_from(*v.get_ref()).ok()),
        Some(v) => {
            cx.error(
                span_of(v),
                format!("`fuel` must be at least 1, found {}", v.get_ref()),
                Some("leave it out for no fuel budget (`timeout_ms` still applies)".to_owned()),
            );
            None
        }
    };
    let mut files = Vec::new();
    let mut all_files_ok = true;
    let mut guests: HashMap<String, Span> = HashMap::new();
    for grant in raw.files.iter().flatten() {
        let raw_grant = grant.get_ref();
        let host = relative_path(cx, &raw_grant.host, "host", dir);
        let guest = raw_grant.guest.get_ref();
        let guest_span = span_of(&raw_grant.guest);
        let mut guest_ok = true;
        if !guest.starts_with('/') {
            let fix = format!("/{}", guest.trim_start_matches("./"));
            cx.error(
                guest_span,
                format!("guest path `{guest}` is not absolute"),
                Some(format!(
                    "a guest path is where the plugin sees the folder, like `/in`; try `{fix}`"
                )),
            );
            guest_ok = false;
        } else {
            let normal = match guest.trim_end_matches('/') {
                "" => "/",
                trimmed => trimmed,
            };
            if let Some(first) = guests.get(normal) {
                let (line, column) = cx.source().line_column(first.start);
                cx.error(
                    guest_span,
                    format!("guest path `{guest}` is granted twice to plugin `{plugin}`"),
                    Some(format!(
                        "it is first granted at line {line}, column {column}; a guest path shows one host folder"
                    )),
                );
                guest_ok = false;
            } else {
                guests.insert(normal.to_owned(), guest_span);
            }
        }
        let mode = match &raw_grant.mode {
            None => Some(Access::ReadOnly),
            Some(mode) => keyword(
                cx,
                mode,
                "file access mode",
                &[("ro", Access::ReadOnly), ("rw", Access::ReadWrite)],
            ),
        };
        match (host, mode, guest_ok) {
            (Some(host), Some(mode), true) => files.push(FileGrant {
                host,
                guest: guest.clone(),
                mode,
                span: span_of(grant),
            }),
            _ => all_files_ok = false,
        }
    }
    let env = resolve_env(cx, raw.env.as_ref());
    let network = resolve_network(cx, raw.network.as_deref().unwrap_or(&[]));
    let mut sql: Vec<SqlGrant> = Vec::new();
    for entry in raw.sql.iter().flatten() {
        let name = entry.get_ref();
        if let Some(first) = sql.iter().find(|g| &g.name == name) {
            let (line, column) = cx.source().line_column(first.span.start);
            cx.error(
                span_of(entry),
                format!("connection `{name}` is granted twice to plugin `{plugin}`"),
                Some(format!(
                    "it is first granted at line {line}, column {column}; drop this entry"
                )),
            );
            continue;
        }
        sql.push(SqlGrant {
            name: name.clone(),
            span: span_of(entry),
        });
    }
    all_files_ok.then_some(())?;
    Some(Grants {
        files,
        env: env?,
        network: network?,
        sql,
        memory_mb: u32::try_from(memory_mb?).ok()?,
        timeout: millis(timeout_ms?),
        fuel: fuel?,
        max_output_mb: u32::try_from(max_output_mb?).ok()?,
    })
}

/// `network = ["tcp://db.example.com:5432", "https://api.example.com"]`.
fn resolve_network(cx: &mut Collector, raw: &[Spanned<String>]) -> Option<Vec<NetworkGrant>> {
    let mut out = Vec::new();
    let mut ok = true;
    for entry in raw {
        let text = entry.get_ref();
        let parsed = text.split_once("://").and_then(|(scheme, rest)| {
            let default_port = match scheme {
                "http" => Some("80"),
                "https" => Some("443"),
                _ => None,
            };
            let (host, port) = match rest.rsplit_once(':').filter(|(_, p)| !p.ends_with(']')) {
                Some(split) => split,
                None => (rest, default_port?),
            };
            let port = match port {
                "*" => None,
                p => Some(p.parse::<u16>().ok().filter(|p| *p > 0)?),
            };
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            let valid_host = !host.is_empty()
                && (host.parse::<std::net::IpAddr>().is_ok()
                    || host.trim_start_matches("*.").split('.').all(|l| {
                        l == "*"
                            || (!l.is_empty()
                                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
                    }));
            (matches!(scheme, "tcp" | "udp" | "http" | "https") && valid_host)
                .then(|| (scheme.to_string(), host.to_ascii_lowercase(), port))
        });
        match parsed {
            Some((scheme, host, port)) => out.push(NetworkGrant {
                scheme,
                host,
                port,
                text: text.clone(),
                span: span_of(entry),
            }),
            None => {
                cx.error(
                    span_of(entry),
                    format!("`{text}` is not a network grant"),
                    Some("write `scheme://host:port` with scheme `tcp`, `udp`, `http` or `https` (the port may be left out for http and https); host is a name, `*.example.com`, `*`, or an IP (`[::1]` for IPv6); port is a number or `*`".to_string()),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// Letters, digits and `_`, not starting with a digit.
fn is_env_var_name(n: &str) -> bool {
    n.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `env = { MODE = "fast", TOKEN = { from_env = "CRM_TOKEN" } }`.
fn resolve_env(cx: &mut Collector, raw: Option<&Spanned<toml::Table>>) -> Option<Vec<EnvGrant>> {
    let Some(raw) = raw else {
        return Some(Vec::new());
    };
    let span = span_of(raw);
    let mut out = Vec::new();
    let mut ok = true;
    for (name, value) in raw.get_ref() {
        if !is_env_var_name(name) {
            cx.error(
                span,
                format!("`{name}` is not a valid environment variable name"),
                Some("use letters, digits and `_`, not starting with a digit".to_string()),
            );
            ok = false;
            continue;
        }
        let value = match value {
            toml::Value::String(text) => Some(EnvValue::Literal(text.clone())),
            toml::Value::Table(t) => match (t.get("from_env"), t.len()) {
                (Some(toml::Value::String(host)), 1) if is_env_var_name(host) => {
                    Some(EnvValue::FromHost(host.clone()))
                }
                _ => None,
            },
            _ => None,
        };
        match value {
            Some(value) => out.push(EnvGrant {
                name: name.clone(),
                value,
                span,
            }),
            None => {
                cx.error(
                    span,
                    format!("environment variable `{name}` needs a text value or `{{ from_env = \"HOST_VARIABLE\" }}`"),
                    Some(format!(
                        "write `{name} = \"value\"`, or `{name} = {{ from_env = \"{name}\" }}` to pass the host's variable without writing its value here"
                    )),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// `[[routes]]` number `index` (from 0), given what could be read of it.
pub(crate) fn resolve_route(
    cx: &mut Collector,
    raw: RawRoute,
    index: usize,
    header: Span,
    clean: bool,
    when_lost: bool,
) -> RouteDraft {
    let label = KeyPath::root().key("routes").index(index).label();
    let from = Name::from_spanned(&raw.from);
    let through: Vec<Name> = raw
        .through
        .iter()
        .flatten()
        .map(Name::from_spanned)
        .collect();
    let to: Vec<Name> = raw.to.get_ref().iter().map(Name::from_spanned).collect();
    let mut ok = true;
    if to.is_empty() {
        cx.error(
            span_of(&raw.to),
            format!("`to` of {label} is empty"),
            Some("list at least one sink: `to = [\"warehouse\"]`".to_owned()),
        );
        ok = false;
    }
    let when = match &raw.when {
        None => Some(None),
        Some(when) => resolve_when(cx, when, &label, when_lost).map(Some),
    };
    let on_invalid = match &raw.on_invalid {
        None => Some(OnInvalid::DeadLetter),
        Some(policy) => keyword(
            cx,
            policy,
            "`on_invalid` policy",
            &[
                ("dead-letter", OnInvalid::DeadLetter),
                ("drop", OnInvalid::Drop),
                ("stop", OnInvalid::Stop),
            ],
        ),
    };
    let route = (|| {
        ok.then_some(())?;
        Some(Route {
            from: from.text.clone(),
            through: through.iter().map(|name| name.text.clone()).collect(),
            to: to.iter().map(|name| name.text.clone()).collect(),
            when: when?,
            on_invalid: on_invalid?,
            span: header,
            spans: RouteSpans {
                from: from.span,
                through: through.iter().map(|name| name.span).collect(),
                to: to.iter().map(|name| name.span).collect(),
                when: raw.when.as_ref().map(span_of),
            },
        })
    })();
    RouteDraft {
        from,
        through,
        to,
        clean,
        route,
    }
}

const TESTS: &str = "`equals`, `not_equals`, `in`, `exists`";

/// `when`; `lost` says a test was taken out of it after an error of its own.
fn resolve_when(
    cx: &mut Collector,
    when: &Spanned<RawWhen>,
    label: &str,
    lost: bool,
) -> Option<Condition> {
    let raw = when.get_ref();
    let mut ok = true;
    if raw.field.get_ref().is_empty() {
        cx.error(
            span_of(&raw.field),
            format!("`field` of `when` in {label} is empty"),
            Some("name the record field to test, like `field = \"region\"`".to_owned()),
        );
        ok = false;
    }
    let mut tests: Vec<(&str, Span, Test)> = Vec::new();
    if let Some(value) = &raw.equals {
        tests.push((
            "equals",
            span_of(value),
            Test::Equals(value.get_ref().0.clone()),
        ));
    }
    if let Some(value) = &raw.not_equals {
        tests.push((
            "not_equals",
            span_of(value),
            Test::NotEquals(value.get_ref().0.clone()),
        ));
    }
    if let Some(values) = &raw.in_ {
        let list: Vec<Scalar> = values
            .get_ref()
            .iter()
            .map(|v| v.get_ref().0.clone())
            .collect();
        if list.is_empty() {
            cx.error(
                span_of(values),
                format!("`in` of `when` in {label} is empty"),
                Some("list the values to accept, like `in = [\"EU\", \"UK\"]`".to_owned()),
            );
            ok = false;
        }
        tests.push(("in", span_of(values), Test::In(list)));
    }
    if let Some(value) = &raw.exists {
        tests.push(("exists", span_of(value), Test::Exists(*value.get_ref())));
    }
    // Tests are reported in the order they are written.
    tests.sort_by_key(|(_, span, _)| span.start);
    let mut tests = tests.into_iter();
    let Some((first, _, test)) = tests.next() else {
        if lost {
            return None;
        }
        cx.error(
            span_of(when),
            format!("`when` in {label} has no test"),
            Some(format!(
                "add exactly one of {TESTS}, like `when = {{ field = \"region\", equals = \"EU\" }}`"
            )),
        );
        return None;
    };
    for (extra, span, _) in tests {
        cx.error(
            span,
            format!("`when` in {label} has more than one test: `{first}` and `{extra}`"),
            Some(format!(
                "keep exactly one of {TESTS}; to accept several values use `in = [...]`"
            )),
        );
        ok = false;
    }
    ok.then_some(Condition {
        field: raw.field.get_ref().clone(),
        test,
    })
}

#[cfg(test)]
mod tests;
