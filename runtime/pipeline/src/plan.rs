//! From a manifest to a checked graph of stages, with every plugin loaded.
//!
//! Nothing runs until the whole plan is valid: every plugin file exists and
//! is a component, its digest is pinned in the manifest's `sha256` and
//! matches it, it exports the interface its `kind` needs, every granted host
//! folder to read from exists, and it imports nothing its grants do not
//! cover (see `ferry_host::Capability`). All problems are reported at once, each pointing at the
//! manifest line it comes from.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use ferry_host::sql::{ConnectionSpec, Dialect, Tls};
use ferry_host::{
    Capability, Component, FileGrant, HostError, InstanceSpec, NetRule, NetworkPolicy, PluginWorld,
    Protocol, Runtime,
};
use ferry_manifest::{
    Access, Condition, Connection, ConnectionTarget, Diagnostic, EnvValue, Manifest, ManifestError,
    OnInvalid, Plugin, PluginKind, Span, TlsMode,
};

/// A stage of a planned pipeline.
#[derive(Clone)]
pub struct PlannedStage {
    /// Its name in the manifest.
    pub name: String,
    /// What it does.
    pub kind: PluginKind,
    /// The loaded component.
    pub component: Component,
    /// How to build its instance.
    pub spec: InstanceSpec,
    /// What to do with records it finds invalid (mappers and validators).
    pub on_invalid: OnInvalid,
    /// Where its output goes.
    pub outputs: Vec<Output>,
    /// How its retryable failures are retried.
    pub retry: ferry_manifest::RetryPolicy,
}

/// An edge of the stage graph.
#[derive(Debug, Clone)]
pub struct Output {
    /// Only records matching this go along the edge.
    pub when: Option<Condition>,
    /// Index of the receiving stage in [`Plan::stages`].
    pub to: usize,
}

/// A checked pipeline, ready to run.
#[derive(Clone)]
pub struct Plan {
    /// The pipeline's name.
    pub name: String,
    /// The manifest it came from.
    pub manifest: Manifest,
    /// Every stage; the source is at index 0 and each stage comes after the
    /// stage that feeds it.
    pub stages: Vec<PlannedStage>,
}

/// Builds the plan: loads every plugin and checks everything that needs the
/// wasm files.
pub fn plan(manifest: Manifest, runtime: &Runtime) -> Result<Plan, ManifestError> {
    let mut diagnostics: Vec<Diagnostic> = Vec::new();
    let mut loaded: HashMap<(PathBuf, bool), Result<Component, String>> = HashMap::new();
    let mut components: HashMap<String, Component> = HashMap::new();

    for (name, plugin) in &manifest.plugins {
        let metered = plugin.grants.fuel.is_some();
        let result = loaded
            .entry((plugin.wasm.clone(), metered))
            .or_insert_with(|| {
                let loaded = if metered {
                    Component::load_metered(runtime, &plugin.wasm)
                } else {
                    Component::load(runtime, &plugin.wasm)
                };
                loaded.map_err(|e| describe_load_error(&e))
            })
            .clone();
        let component = match result {
            Ok(c) => c,
            Err(detail) => {
                let hint = if plugin.wasm.exists() {
                    "build it again, or point `wasm` at a component built for wasm32-wasip2"
                        .to_string()
                } else {
                    "build the plugins (`bash plugins/build.sh`) or fix the path; it is relative to the manifest's folder".to_string()
                };
                diagnostics.push(manifest.diagnostic(
                    plugin.spans.wasm,
                    format!("plugin `{name}`: {detail}"),
                    Some(hint),
                ));
                continue;
            }
        };
        for finding in check_plugin(plugin, &component) {
            diagnostics.push(manifest.diagnostic(finding.span, finding.message, finding.hint));
        }
        components.insert(name.clone(), component);
    }
    diagnostics.extend(check_connections(&manifest));
    if !diagnostics.is_empty() {
        return Err(manifest.error(diagnostics));
    }

    // The manifest crate has checked the routes form a tree rooted at the one
    // source; lay it out so every stage comes after its feeder.
    let mut order: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut outputs: Vec<Vec<Output>> = Vec::new();
    let mut on_invalid: HashMap<String, OnInvalid> = HashMap::new();
    let mut add = |name: &str, order: &mut Vec<String>, outputs: &mut Vec<Vec<Output>>| -> usize {
        *index.entry(name.to_string()).or_insert_with(|| {
            order.push(name.to_string());
            outputs.push(Vec::new());
            order.len() - 1
        })
    };
    if manifest.sync.is_some() {
        // A two-way sync: every plugin is a stage without routes; the sync
        // engine (crate::sync) wires them.
        order.extend(manifest.plugins.keys().cloned());
        outputs.resize_with(order.len(), Vec::new);
    }
    // ferry-manifest guarantees exactly one source; say so if that changes.
    let source = manifest.source_plugin().map(|p| p.name.clone());
    let Some(source) = source.or_else(|| manifest.sync.as_ref().map(|_| String::new())) else {
        let span = manifest.pipeline.spans.header;
        let missing = manifest.diagnostic(span, "the pipeline has no source plugin", None);
        return Err(manifest.error(vec![missing]));
    };
    if !source.is_empty() {
        add(&source, &mut order, &mut outputs);
    }
    for route in &manifest.routes {
        let from = add(&route.from, &mut order, &mut outputs);
        let mut prev = from;
        let mut when = route.when.clone();
        for step in &route.through {
            on_invalid.insert(step.clone(), route.on_invalid);
            let i = add(step, &mut order, &mut outputs);
            outputs[prev].push(Output {
                when: when.take(),
                to: i,
            });
            prev = i;
        }
        for sink in &route.to {
            let i = add(sink, &mut order, &mut outputs);
            outputs[prev].push(Output {
                when: when.clone(),
                to: i,
            });
        }
    }

    let mut stages = Vec::with_capacity(order.len());
    for (name, outs) in order.into_iter().zip(outputs) {
        let Some(plugin) = manifest.plugins.get(&name) else {
            continue;
        };
        let Some(component) = components.get(&name) else {
            continue;
        };
        stages.push(PlannedStage {
            kind: plugin.kind,
            component: component.clone(),
            spec: InstanceSpec {
                pipeline: manifest.pipeline.name.clone(),
                stage: name.clone(),
                config: plugin.config.to_string(),
                files: plugin
                    .grants
                    .files
                    .iter()
                    .map(|g| FileGrant {
                        host: g.host.clone(),
                        guest: g.guest.clone(),
                        writable: g.mode == Access::ReadWrite,
                    })
                    .collect(),
                env: plugin
                    .grants
                    .env
                    .iter()
                    .filter_map(|g| env_value(&g.value).map(|v| (g.name.clone(), v)))
                    .collect(),
                network: NetworkPolicy::new(
                    plugin
                        .grants
                        .network
                        .iter()
                        .map(|g| NetRule {
                            protocol: match g.scheme.as_str() {
                                "udp" => Protocol::Udp,
                                "http" => Protocol::Http,
                                "https" => Protocol::Https,
                                _ => Protocol::Tcp,
                            },
                            host: g.host.clone(),
                            port: g.port,
                        })
                        .collect(),
                ),
                sql: plugin
                    .grants
                    .sql
                    .iter()
                    .filter_map(|g| manifest.connections.get(&g.name))
                    .map(connection_spec)
                    .collect(),
                audit: None,
                memory_bytes: plugin.grants.memory_mb as usize * 1024 * 1024,
                timeout: plugin.grants.timeout.max(Duration::from_millis(1)),
                fuel: plugin.grants.fuel,
                max_output_bytes: plugin.grants.max_output_mb as usize * 1024 * 1024,
            },
            on_invalid: on_invalid
                .get(&name)
                .copied()
                .unwrap_or(OnInvalid::DeadLetter),
            outputs: outs,
            retry: plugin.retry,
            name,
        });
    }
    Ok(Plan {
        name: manifest.pipeline.name.clone(),
        manifest,
        stages,
    })
}

/// The part of `plan` that a dead letter of `stage` is replayed through:
/// the source (which the replay's records stand in for), then `stage` and
/// every stage downstream of it, with the routes between them.
pub fn replay_plan(plan: &Plan, stage: &str) -> Result<Plan, String> {
    let Some(start) = plan.stages.iter().position(|s| s.name == stage) else {
        return Err(format!(
            "pipeline `{}` has no stage `{stage}` (the manifest changed since?)",
            plan.name
        ));
    };
    if start == 0 {
        return Err(format!(
            "`{stage}` is the source; a source's records cannot be replayed into it"
        ));
    }
    // `stage` and what it feeds, in plan order (feeders come first).
    let mut keep = vec![false; plan.stages.len()];
    keep[start] = true;
    for i in start..plan.stages.len() {
        if keep[i] {
            for o in &plan.stages[i].outputs {
                if let Some(k) = keep.get_mut(o.to) {
                    *k = true;
                }
            }
        }
    }
    let mut index = vec![usize::MAX; plan.stages.len()];
    let mut order = vec![0];
    index[0] = 0;
    for (i, kept) in keep.iter().enumerate() {
        if *kept && i != 0 {
            index[i] = order.len();
            order.push(i);
        }
    }
    let stages = order
        .iter()
        .map(|&i| {
            let mut s = plan.stages[i].clone();
            s.outputs = if i == 0 {
                vec![Output { when: None, to: 1 }]
            } else {
                s.outputs
                    .iter()
                    .filter(|o| keep.get(o.to).copied().unwrap_or(false))
                    .map(|o| Output {
                        when: o.when.clone(),
                        to: index[o.to],
                    })
                    .collect()
            };
            s
        })
        .collect();
    Ok(Plan {
        name: plan.name.clone(),
        manifest: plan.manifest.clone(),
        stages,
    })
}

/// A reason to refuse a plugin, pointing at its manifest entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The part of the manifest at fault.
    pub span: Span,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

/// Everything that makes the planner refuse a plugin whose component loaded:
/// a digest that differs from the pinned one, a component that does not
/// export the interface its `kind` needs, a read-only folder that does not
/// exist, and imports its grants do not cover. `ferry audit` reports the
/// same findings.
pub fn check_plugin(plugin: &Plugin, component: &Component) -> Vec<Finding> {
    let name = &plugin.name;
    let mut findings = Vec::new();
    if plugin.sha256.is_none() {
        findings.push(Finding {
            span: plugin.spans.wasm,
            message: format!(
                "plugin `{name}` has no pinned sha256 (its component is {})",
                component.digest()
            ),
            hint: Some(
                "pin the components you reviewed: `ferry lock <manifest>` writes each plugin's sha256".to_string(),
            ),
        });
    }
    if let Some(expected) = &plugin.sha256
        && expected != component.digest()
    {
        findings.push(Finding {
            span: plugin.spans.sha256.unwrap_or(plugin.spans.wasm),
            message: format!(
                "plugin `{name}`: {} has sha256 {}, the manifest expects {expected}",
                plugin.wasm.display(),
                component.digest()
            ),
            hint: Some(
                "if the new build is intended, put its digest in `sha256`; otherwise restore the expected file"
                    .to_string(),
            ),
        });
    }
    for &world in worlds_of(plugin.kind) {
        if !component.exports(world) {
            let found: Vec<String> = component
                .info()
                .worlds
                .iter()
                .map(|w| format!("`{w}`"))
                .collect();
            let found = if found.is_empty() {
                "no ferry plugin interface".to_string()
            } else {
                found.join(", ")
            };
            findings.push(Finding {
                span: plugin.spans.kind,
                message: format!(
                    "plugin `{name}` is declared as a {} but {} exports {found}",
                    plugin.kind,
                    plugin.wasm.display()
                ),
                hint: Some(format!(
                    "use a component that exports `{}`, or change `kind`",
                    world.qualified()
                )),
            });
        }
    }
    for grant in &plugin.grants.files {
        // A writable folder is created when the stage starts; a folder to
        // read from must exist.
        if grant.mode == Access::ReadOnly && !grant.host.is_dir() {
            findings.push(Finding {
                span: grant.span,
                message: format!(
                    "plugin `{name}`: granted folder {} does not exist",
                    grant.host.display()
                ),
                hint: Some(
                    "create it, or fix `host`; it is relative to the manifest's folder".to_string(),
                ),
            });
        }
    }
    for grant in &plugin.grants.env {
        if let EnvValue::FromHost(host) = &grant.value
            && env_value(&grant.value).is_none()
        {
            findings.push(Finding {
                span: grant.span,
                message: format!(
                    "plugin `{name}`: environment variable `{}` comes from the host's `{host}`, which is not set",
                    grant.name
                ),
                hint: Some(format!("set `{host}` in the environment ferry runs in, or drop the grant")),
            });
        }
    }
    let span = plugin.spans.grants.unwrap_or(plugin.spans.header);
    for import in &component.info().imports {
        let refusal = match Capability::of(import) {
            // Without a `files` grant there is no preopened folder, so a
            // filesystem import reaches nothing, like an empty environment.
            Capability::Baseline
            | Capability::Environment
            | Capability::Files
            | Capability::Sql => None,
            Capability::Network if !plugin.grants.network.is_empty() => None,
            Capability::Network => Some((
                "it has no `network` grant",
                "allow the connections it needs: grants = { network = [\"tcp://db.example.com:5432\"] }",
            )),
            Capability::Unknown => Some((
                "the host does not provide this interface",
                "rebuild the plugin against ferry:plugin and WASI 0.2 only",
            )),
        };
        if let Some((why, hint)) = refusal {
            findings.push(Finding {
                span,
                message: format!("plugin `{name}` imports `{import}`, but {why}"),
                hint: Some(hint.to_string()),
            });
        }
    }
    findings
}

/// What the manifest crate cannot check of the connections some plugin is
/// granted: the password variable is set, the CA file exists.
fn check_connections(manifest: &Manifest) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for connection in manifest.connections.values() {
        let granted = manifest
            .plugins
            .values()
            .any(|p| p.grants.sql.iter().any(|g| g.name == connection.name));
        if !granted {
            continue;
        }
        if let Some(var) = &connection.password_env
            && std::env::var(var).is_err()
        {
            out.push(manifest.diagnostic(
                connection.span,
                format!(
                    "connection `{}` takes its password from `{var}`, which is not set",
                    connection.name
                ),
                Some(format!("export {var} in the environment ferry runs in")),
            ));
        }
        if let Some(ca) = &connection.ca_file
            && !ca.is_file()
        {
            out.push(manifest.diagnostic(
                connection.span,
                format!(
                    "connection `{}`: CA file {} does not exist",
                    connection.name,
                    ca.display()
                ),
                Some("fix `ca_file`; it is relative to the manifest's folder".to_string()),
            ));
        }
    }
    out
}

/// The host's view of a declared connection, with its password read from
/// the environment now (`None` when the variable is unset: the plan reports
/// that before anything runs).
pub fn connection_spec(connection: &Connection) -> ConnectionSpec {
    let (dialect, url) = match &connection.target {
        ConnectionTarget::Postgres(url) => (Dialect::Postgres, url.clone()),
        ConnectionTarget::Sqlite(path) => (
            Dialect::Sqlite,
            std::path::absolute(path)
                .unwrap_or_else(|_| path.clone())
                .display()
                .to_string(),
        ),
    };
    ConnectionSpec {
        name: connection.name.clone(),
        dialect,
        url,
        password: connection
            .password_env
            .as_ref()
            .and_then(|var| std::env::var(var).ok()),
        tls: match connection.tls {
            TlsMode::Disable => Tls::Disable,
            TlsMode::Require => Tls::Require,
            TlsMode::VerifyFull => Tls::VerifyFull,
        },
        ca_file: connection.ca_file.clone(),
        pool_size: connection.pool,
        transaction_timeout: std::time::Duration::from_millis(u64::from(
            connection.transaction_timeout_ms,
        )),
    }
}

/// The value a granted variable has now: read from the host's environment
/// for `from_env` grants (`None` when it is not set or not UTF-8).
pub fn env_value(value: &EnvValue) -> Option<String> {
    match value {
        EnvValue::Literal(text) => Some(text.clone()),
        EnvValue::FromHost(host) => std::env::var(host).ok(),
    }
}

/// The interfaces a plugin of this kind exports (a connector: source and
/// sink).
pub fn worlds_of(kind: PluginKind) -> &'static [PluginWorld] {
    match kind {
        PluginKind::Source => &[PluginWorld::Source],
        PluginKind::Sink => &[PluginWorld::Sink],
        PluginKind::Mapper => &[PluginWorld::Mapper],
        PluginKind::Validator => &[PluginWorld::Validator],
        PluginKind::Resolver => &[PluginWorld::Resolver],
        PluginKind::Connector => &[PluginWorld::Source, PluginWorld::Sink],
    }
}

fn describe_load_error(e: &HostError) -> String {
    match e {
        HostError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            "the wasm file does not exist".to_string()
        }
        other => other.to_string(),
    }
}
