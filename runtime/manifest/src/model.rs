//! The resolved manifest: the types the rest of the runtime reads.
//!
//! Everything here has been checked: names are valid and refer to declared
//! plugins of the right kind, defaults are filled in, numbers are in range, paths
//! are resolved against the manifest's folder, and routes form a tree rooted at
//! the one source. Spans are kept so later stages (the planner, which opens the
//! wasm files and checks digests) can point at the line that caused a problem.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;

use crate::diagnostic::{Diagnostic, ManifestError, SourceFile, Span};
use crate::schedule::Schedule;

/// A checked pipeline manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The manifest's path, as the caller gave it.
    pub path: PathBuf,
    /// The folder holding the manifest (`.` for a bare file name); relative
    /// paths in the manifest are resolved against it.
    pub dir: PathBuf,
    /// The `[pipeline]` table.
    pub pipeline: Pipeline,
    /// Every `[connections.<name>]` table (named SQL connections), in the
    /// order the manifest declares them.
    pub connections: IndexMap<String, Connection>,
    /// Every `[plugins.<name>]` table, in the order the manifest declares them.
    pub plugins: IndexMap<String, Plugin>,
    /// Every `[[routes]]` table, in the manifest's order (none in a two-way
    /// sync manifest).
    pub routes: Vec<Route>,
    /// The `[sync]` table of a two-way sync manifest.
    pub sync: Option<crate::sync::SyncSpec>,
    pub(crate) source: Arc<SourceFile>,
}

impl Manifest {
    /// The manifest's text, as it was parsed.
    pub fn source_text(&self) -> &str {
        self.source.text()
    }

    /// A diagnostic pointing at `span` of this manifest, rendered like every
    /// other manifest error. Later stages use it to report problems they find
    /// (a missing wasm file, a digest mismatch) at the line that caused them.
    pub fn diagnostic(
        &self,
        span: Span,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Diagnostic {
        self.source.diagnostic(span, message, hint)
    }

    /// Wraps diagnostics made with [`Manifest::diagnostic`] into the error this
    /// crate returns, so they print with the `N errors in <path>` summary.
    pub fn error(&self, mut diagnostics: Vec<Diagnostic>) -> ManifestError {
        diagnostics.sort_by_key(|d| d.span.start);
        ManifestError::Invalid {
            path: self.source.path().to_path_buf(),
            diagnostics,
        }
    }

    /// The plugin declared under `name`.
    pub fn plugin(&self, name: &str) -> Option<&Plugin> {
        self.plugins.get(name)
    }

    /// The pipeline's one source plugin (a checked manifest always has one).
    pub fn source_plugin(&self) -> Option<&Plugin> {
        self.plugins
            .values()
            .find(|plugin| plugin.kind == PluginKind::Source)
    }
}

/// The `[pipeline]` table: how the pipeline as a whole runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipeline {
    /// The pipeline's name: `[a-z0-9][a-z0-9_-]*`.
    pub name: String,
    /// Run once to the end of the source, keep following it, or run once on
    /// each tick of a schedule.
    pub mode: Mode,
    /// When a `schedule` pipeline runs: set exactly when `mode` is
    /// [`Mode::Schedule`].
    pub schedule: Option<Schedule>,
    /// When a batch is cut and sent on.
    pub batch: BatchPolicy,
    /// In `follow` mode, how long to wait before polling a caught-up source again.
    pub poll_interval: Duration,
    /// The state database (checkpoints, dead letters), resolved against the
    /// manifest's folder.
    pub state: PathBuf,
    /// Where the table's parts are in the manifest.
    pub spans: PipelineSpans,
}

/// Where the parts of `[pipeline]` are in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineSpans {
    /// The `[pipeline]` header (or the `pipeline` key of an inline table).
    pub header: Span,
    /// The `name` value.
    pub name: Span,
    /// The `state` value, when the manifest sets one.
    pub state: Option<Span>,
    /// The `schedule` value, when the manifest sets one.
    pub schedule: Option<Span>,
}

/// How a pipeline runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Read the source to its end, deliver everything, stop (`once`).
    #[default]
    Once,
    /// Keep polling the source for new records until stopped (`follow`).
    Follow,
    /// On each tick of the pipeline's [`Schedule`], run as `once` does; runs
    /// never overlap (`schedule`).
    Schedule,
}

/// How records are grouped: a source is polled for at most `max_records`
/// records at a time, and a sink makes its writes durable (flushes, then
/// acknowledges them so the source checkpoint can advance) at least every
/// `max_wait`, so a record waits at most that long between being written and
/// being committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchPolicy {
    /// Most records in one batch (1 to 65536; default 512).
    pub max_records: u32,
    /// Longest time written records wait for their sink's flush (default 200 ms).
    pub max_wait: Duration,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        Self {
            max_records: 512,
            max_wait: Duration::from_millis(200),
        }
    }
}

/// One `[plugins.<name>]` table: a WebAssembly component and what it may touch.
#[derive(Debug, Clone, PartialEq)]
pub struct Plugin {
    /// The plugin's (stage's) name: `[a-z][a-z0-9_-]*`.
    pub name: String,
    /// What the plugin does in the pipeline.
    pub kind: PluginKind,
    /// The component file, resolved against the manifest's folder (not checked
    /// to exist here: the planner does that).
    pub wasm: PathBuf,
    /// The expected sha256 digest of `wasm`, 64 lowercase hex characters.
    pub sha256: Option<String>,
    /// The `config` table as JSON, handed to the plugin's `open`; always an object.
    pub config: serde_json::Value,
    /// What the plugin may touch.
    pub grants: Grants,
    /// How calls that fail with a retryable error are retried.
    pub retry: RetryPolicy,
    /// Where the plugin's parts are in the manifest.
    pub spans: PluginSpans,
}

/// How a stage retries a call that failed with a retryable error (the
/// plugin's `retryable`): up to `attempts` calls in all, waiting
/// `backoff`, then twice that, ... up to `max_backoff`, each wait with
/// random jitter (between half and all of it) so stages do not retry in
/// step. A mapper's or validator's records then go to the dead-letter
/// store; a sink is taken to be down and pauses its pipeline, retrying
/// every `max_backoff` until it answers or the pipeline is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Calls in all, the first included (1 to 100; default 3).
    pub attempts: u32,
    /// The first wait (1 ms to 1 min; default 50 ms).
    pub backoff: Duration,
    /// The longest wait (1 ms to 10 min; default 5 s).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (1-based `attempt`), before
    /// jitter.
    pub fn backoff_after(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// Where the parts of a plugin table are in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSpans {
    /// The `[plugins.<name>]` header (or the name's key for an inline table).
    pub header: Span,
    /// The plugin's name in the header.
    pub name: Span,
    /// The `kind` value.
    pub kind: Span,
    /// The `wasm` value.
    pub wasm: Span,
    /// The `sha256` value, when set.
    pub sha256: Option<Span>,
    /// The `config` value, when set.
    pub config: Option<Span>,
    /// The `grants` value, when set.
    pub grants: Option<Span>,
}

/// What a plugin does in a pipeline; each kind is its own WIT world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PluginKind {
    /// Reads records from a system (`source`); a manifest has exactly one.
    Source,
    /// Writes records to a system (`sink`).
    Sink,
    /// Turns a batch into another batch (`mapper`).
    Mapper,
    /// Gives a verdict on each record (`validator`).
    Validator,
    /// Settles two-way sync conflicts (`resolver`); not used in routes.
    Resolver,
    /// Reads and writes one system (`connector`): a side of a two-way sync,
    /// opened as a source and as a sink; not used in routes.
    Connector,
}

impl PluginKind {
    /// Every kind, in the order the manifest documentation lists them.
    pub const ALL: [PluginKind; 6] = [
        PluginKind::Source,
        PluginKind::Sink,
        PluginKind::Mapper,
        PluginKind::Validator,
        PluginKind::Resolver,
        PluginKind::Connector,
    ];

    /// The kind as written in a manifest: `source`, `sink`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Source => "source",
            PluginKind::Sink => "sink",
            PluginKind::Mapper => "mapper",
            PluginKind::Validator => "validator",
            PluginKind::Resolver => "resolver",
            PluginKind::Connector => "connector",
        }
    }

    /// Whether the kind is a stage that can sit in a route's `through`.
    pub fn is_transform(self) -> bool {
        matches!(self, PluginKind::Mapper | PluginKind::Validator)
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Mode {
    /// The mode as written in a manifest: `once`, `follow` or `schedule`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Once => "once",
            Mode::Follow => "follow",
            Mode::Schedule => "schedule",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A plugin's grants: deny by default, so everything it may touch is listed here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants {
    /// Host folders the plugin sees, and where.
    pub files: Vec<FileGrant>,
    /// The environment variables the plugin sees; nothing else of the
    /// host's environment reaches it.
    pub env: Vec<EnvGrant>,
    /// The outbound connections the plugin may open; none by default.
    pub network: Vec<NetworkGrant>,
    /// The named SQL connections (`[connections.<name>]`) the plugin may
    /// use through the host; none by default.
    pub sql: Vec<SqlGrant>,
    /// Memory limit of the plugin's instance in MiB (1 to 4096; default 64).
    pub memory_mb: u32,
    /// Time limit of one call into the plugin (1 ms to 10 min; default 5 s).
    pub timeout: Duration,
    /// Fuel budget of one call (roughly, WebAssembly instructions executed),
    /// when the plugin's work per call must be bounded independently of the
    /// machine's speed; `None` (the default) for none.
    pub fuel: Option<u64>,
    /// The largest answer one call may return, in MiB (1 to 4096; default 32).
    pub max_output_mb: u32,
}

impl Default for Grants {
    fn default() -> Self {
        Self {
            files: Vec::new(),
            env: Vec::new(),
            network: Vec::new(),
            sql: Vec::new(),
            memory_mb: 64,
            timeout: Duration::from_millis(5000),
            fuel: None,
            max_output_mb: 32,
        }
    }
}

/// A named SQL connection: `[connections.<name>]`. Plugins never see its
/// URL or password, only its name, and only when granted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The connection's name, as plugins and grants refer to it.
    pub name: String,
    /// Which database it reaches.
    pub target: ConnectionTarget,
    /// The environment variable holding the password, read when the
    /// pipeline is planned; `None` for no password.
    pub password_env: Option<String>,
    /// Transport security (PostgreSQL only).
    pub tls: TlsMode,
    /// A PEM file of certificate authorities to verify the server with,
    /// resolved against the manifest's folder; `None` for the bundled web
    /// roots.
    pub ca_file: Option<PathBuf>,
    /// Most connections open at once (1 to 64; default 4); also the most
    /// transactions one plugin may hold open on it.
    pub pool: u32,
    /// How long a plugin's transaction may stay open before the host rolls
    /// it back and takes its connection back (100 ms to 24 h; default
    /// 30,000 ms).
    pub transaction_timeout_ms: u32,
    /// The `[connections.<name>]` table in the manifest.
    pub span: Span,
    /// The `url` value.
    pub url_span: Span,
}

/// Where a connection goes. Its `Debug` shows the URL through
/// [`redact_url`](crate::redact_url).
#[derive(Clone, PartialEq, Eq)]
pub enum ConnectionTarget {
    /// A PostgreSQL server: the URL as written (`postgres://user@host:port/db`),
    /// which holds no password (validation refuses one).
    Postgres(String),
    /// A SQLite database file, resolved against the manifest's folder.
    Sqlite(PathBuf),
}

impl std::fmt::Debug for ConnectionTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectionTarget::Postgres(url) => f
                .debug_tuple("Postgres")
                .field(&crate::url::redact_url(url))
                .finish(),
            ConnectionTarget::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
        }
    }
}

impl ConnectionTarget {
    /// The target for display: a PostgreSQL URL through
    /// [`redact_url`](crate::redact_url), a SQLite file as `sqlite:<path>`.
    pub fn display(&self) -> String {
        match self {
            ConnectionTarget::Postgres(url) => crate::url::redact_url(url).into_owned(),
            ConnectionTarget::Sqlite(path) => format!("sqlite:{}", path.display()),
        }
    }
}

/// Transport security of a PostgreSQL connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Plain TCP (`disable`, the default; fine on loopback or a private link).
    #[default]
    Disable,
    /// Encrypted, without checking the server's certificate (`require`).
    Require,
    /// Encrypted, the certificate chain and host name checked (`verify-full`).
    VerifyFull,
}

/// One connection a plugin may use: `grants = { sql = ["ops"] }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlGrant {
    /// The connection's name.
    pub name: String,
    /// The entry in the manifest.
    pub span: Span,
}

/// One entry of a plugin's outbound allow-list: `scheme://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkGrant {
    /// `tcp`, `udp` (sockets), `http` or `https` (requests through `wasi:http`).
    pub scheme: String,
    /// A name (`db.example.com`), a wildcard name (`*.example.com`), `*`, or
    /// an IP literal (`10.0.0.5`, `[::1]`). Loopback, link-local and private
    /// addresses are reached only through an entry that names the IP literal.
    pub host: String,
    /// The port (80 and 443 when an http or https entry leaves it out);
    /// `None` for `*`.
    pub port: Option<u16>,
    /// The entry as written.
    pub text: String,
    /// The entry in the manifest.
    pub span: Span,
}

/// One environment variable a plugin sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvGrant {
    /// The variable's name inside the plugin.
    pub name: String,
    /// Where its value comes from.
    pub value: EnvValue,
    /// The entry in the manifest.
    pub span: Span,
}

/// Where a granted environment variable's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    /// Written in the manifest: `MODE = "fast"`.
    Literal(String),
    /// Read from the host's environment when the pipeline starts, so secrets
    /// stay out of manifests: `TOKEN = { from_env = "CRM_TOKEN" }`.
    FromHost(String),
}

/// A host folder made visible to a plugin at a guest path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileGrant {
    /// The host folder, resolved against the manifest's folder.
    pub host: PathBuf,
    /// Where the plugin sees it: an absolute guest path such as `/in`.
    pub guest: String,
    /// Read-only or read-write.
    pub mode: Access,
    /// The grant's `{ host = …, guest = … }` table in the manifest.
    pub span: Span,
}

/// How a plugin may use a granted folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Access {
    /// Read only (`ro`, the default).
    #[default]
    ReadOnly,
    /// Read and write (`rw`).
    ReadWrite,
}

impl Access {
    /// The access as written in a manifest: `ro` or `rw`.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::ReadOnly => "ro",
            Access::ReadWrite => "rw",
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[[routes]]` table: records from `from`, through the `through` stages in
/// order, to every sink in `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The source, or (a tap) a mapper or validator in an earlier route's `through`.
    pub from: String,
    /// Mappers and validators, in order.
    pub through: Vec<String>,
    /// Sinks; each gets every record that reaches the end of the route.
    pub to: Vec<String>,
    /// Only records matching this condition take the route.
    pub when: Option<Condition>,
    /// What happens to a record a validator on this route rejects.
    pub on_invalid: OnInvalid,
    /// The `[[routes]]` header (or the inline table) in the manifest.
    pub span: Span,
    /// Where the route's names are in the manifest.
    pub spans: RouteSpans,
}

/// Where the names of a route are in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpans {
    /// The `from` value.
    pub from: Span,
    /// Each name in `through`, in order.
    pub through: Vec<Span>,
    /// Each name in `to`, in order.
    pub to: Vec<Span>,
    /// The `when` table, when set.
    pub when: Option<Span>,
}

/// A test on one field of a record: `when = { field = "region", equals = "EU" }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The record field tested.
    pub field: String,
    /// The test.
    pub test: Test,
}

/// The test of a [`Condition`]; a manifest gives exactly one.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// The field equals the value (`equals`).
    Equals(Scalar),
    /// The field is missing or differs from the value (`not_equals`).
    NotEquals(Scalar),
    /// The field equals one of the values (`in`, never empty).
    In(Vec<Scalar>),
    /// The field is present (`exists = true`) or absent (`exists = false`).
    Exists(bool),
}

/// A value a condition compares a field with.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A string.
    Text(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl fmt::Display for Scalar {
    /// Shows the value as TOML would write it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Text(text) => write!(f, "{text:?}"),
            Scalar::Int(int) => write!(f, "{int}"),
            Scalar::Float(float) => write!(f, "{float:?}"),
            Scalar::Bool(bool) => write!(f, "{bool}"),
        }
    }
}

/// What happens to a record a validator rejects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OnInvalid {
    /// Keep it in the dead-letter queue for replay (`dead-letter`, the default).
    #[default]
    DeadLetter,
    /// Count it and let it go (`drop`).
    Drop,
    /// Stop the pipeline (`stop`).
    Stop,
}

impl OnInvalid {
    /// The policy as written in a manifest: `dead-letter`, `drop` or `stop`.
    pub fn as_str(self) -> &'static str {
        match self {
            OnInvalid::DeadLetter => "dead-letter",
            OnInvalid::Drop => "drop",
            OnInvalid::Stop => "stop",
        }
    }
}

impl fmt::Display for OnInvalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The folder relative paths of the manifest at `path` are resolved against.
pub(crate) fn manifest_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
