//! `ferry plugin`: what a plugin author needs without writing a pipeline.
//!
//! - `inspect` prints what a component is: its worlds, exports, imports (and
//!   the grant each needs), digest, size and the toolchain that built it.
//! - `test` runs one plugin on fixture records (JSON Lines) and prints what
//!   came out as JSON Lines; with `--expect` it compares that with a file
//!   and prints a diff (exit 1 on a mismatch).
//! - `new` and `build` scaffold and build a plugin (see `scaffold`).
//!
//! What `test` prints, one JSON object per line, by kind:
//!
//! | kind | lines |
//! |---|---|
//! | mapper | each output record (`_key`, `_op`, fields), then `{"_key": k, "_rejected": reason}` per rejection |
//! | validator | per input record: `{"_key": k, "violations": [{"field", "rule", "message"}]}` |
//! | source | each record read, until the source is caught up or finished |
//! | sink | per input record: `{"_key": k, "result": "written" \| "rejected: ..." \| "conflict: ..."}` |
//! | resolver | per conflict (`{"left": {...}, "right": {...}, "ancestor": {...}}`; no `ancestor`: no common version; a side `null`: deleted there): `{"_key": k, "decision": "take-left" \| "take-right" \| "merged" \| "defer"}`, plus `"record"` (merged) or `"reason"` (defer) |

pub(crate) mod polyglot;
pub(crate) mod scaffold;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use ferry_host::batch::{BatchExt, JsonRecord, batch_from_json, op_name};
use ferry_host::{
    Batch, Capability, Component, FileGrant, InstanceSpec, MapperInstance, Op, PluginWorld,
    ResolverInstance, SinkInstance, SourceInstance, SourceStatus, ValidatorInstance,
};
use serde_json::{Value, json};

#[derive(Subcommand)]
pub(crate) enum PluginCommand {
    /// Show a component's worlds, exports, imports, digest, size and
    /// toolchain.
    Inspect {
        /// The .wasm component.
        wasm: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a plugin on fixture records and show what comes out.
    Test(TestOptions),
    /// Create a plugin project that builds and passes its own test.
    New {
        /// The plugin's name (lowercase letters, digits and dashes); also
        /// the folder created.
        name: String,
        /// source, sink, mapper, validator or resolver.
        #[arg(long)]
        kind: String,
        /// rust, python or js.
        #[arg(long)]
        lang: String,
        /// Where to create the folder (default: the current folder).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Build the plugin project in a folder into a component,
    /// `<folder>/<name>.wasm`.
    Build {
        /// The plugin's folder (default: the current folder).
        path: Option<PathBuf>,
    },
}

pub(crate) fn dispatch(command: PluginCommand) -> Result<ExitCode> {
    match command {
        PluginCommand::Inspect { wasm, json } => inspect(&wasm, json),
        PluginCommand::Test(options) => test(&options),
        PluginCommand::New {
            name,
            kind,
            lang,
            dir,
        } => crate::plugin::scaffold::new(&name, &kind, &lang, dir.as_deref()),
        PluginCommand::Build { path } => crate::plugin::scaffold::build(path.as_deref()),
    }
}

fn load(wasm: &Path) -> Result<Component> {
    let runtime = crate::runtime()?;
    Ok(Component::load(&runtime, wasm)?)
}

fn inspect(wasm: &Path, as_json: bool) -> Result<ExitCode> {
    let component = load(wasm)?;
    let info = component.info();
    let report = json!({
        "wasm": wasm.display().to_string(),
        "sha256": info.digest,
        "size_bytes": info.size,
        "worlds": info.worlds.iter().map(|w| w.interface()).collect::<Vec<_>>(),
        "exactly_once": info.exactly_once,
        "exports": info.exports,
        "imports": info.imports.iter().map(|i| json!({
            "name": i,
            "capability": Capability::of(i).as_str(),
        })).collect::<Vec<_>>(),
        "producers": info.producers.iter().map(|p| json!({
            "field": p.field,
            "name": p.name,
            "version": p.version,
        })).collect::<Vec<_>>(),
    });
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", wasm.display());
    println!("  sha256    {}", info.digest);
    println!("  size      {} bytes", info.size);
    let worlds: Vec<String> = info.worlds.iter().map(|w| w.qualified()).collect();
    println!(
        "  world     {}",
        if worlds.is_empty() {
            "none: exports no ferry:plugin interface".to_string()
        } else {
            worlds.join(", ")
        }
    );
    if info.worlds.contains(&ferry_host::PluginWorld::Sink) {
        println!(
            "  delivery  {}",
            if info.exactly_once {
                "exactly once (exports sink-commit: its commit tokens are stored with the checkpoint)"
            } else {
                "at least once (no sink-commit: writes after the last checkpoint are made again after a crash)"
            }
        );
    }
    println!("  exports");
    for e in &info.exports {
        println!("    {e}");
    }
    println!("  imports                                        grant needed");
    for i in &info.imports {
        let grant = match Capability::of(i) {
            Capability::Baseline => "none",
            Capability::Environment => "none (sees only `env` grants)",
            Capability::Files => "none (sees only `files` grants)",
            Capability::Network => "network",
            Capability::Sql => "none (reaches only `sql` grants)",
            Capability::Unknown => "refused: the host does not provide it",
        };
        println!("    {i:<44} {grant}");
    }
    if info.producers.is_empty() {
        println!("  built by  (the component does not say)");
    } else {
        println!("  built by");
        for p in &info.producers {
            println!("    {:<13} {} {}", p.field, p.name, p.version);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub(crate) struct TestOptions {
    /// The .wasm component.
    wasm: PathBuf,
    /// Records as JSON Lines (not needed for a source). A line may carry
    /// `_key` and `_op` ("upsert" or "delete"); otherwise the key is the
    /// `--key` field. For a resolver, each line is one conflict,
    /// `{"left": {...}, "right": {...}, "ancestor": {...}}`: no `ancestor`
    /// when the sides have no common version, a side `null` where the key
    /// was deleted.
    #[arg(long)]
    input: Option<PathBuf>,
    /// The plugin's config as a TOML file (what its manifest `config`
    /// table would hold).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Compare the output with this JSON Lines file; exit 1 on a
    /// mismatch.
    #[arg(long)]
    expect: Option<PathBuf>,
    /// Which interface to test when the component exports several
    /// (source, sink, mapper, validator, resolver).
    #[arg(long)]
    kind: Option<String>,
    /// The field holding each record's key, for lines without `_key`.
    #[arg(long, default_value = "id")]
    key: String,
    /// A folder grant, `HOST:GUEST` (read-only) or `HOST:GUEST:rw`.
    #[arg(long = "dir", value_name = "HOST:GUEST[:rw]")]
    dirs: Vec<String>,
    /// Memory limit in MiB.
    #[arg(long, default_value_t = 64)]
    memory_mb: u32,
    /// Time limit per call in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
}

fn test(options: &TestOptions) -> Result<ExitCode> {
    let wasm = options.wasm.as_path();
    let component = load(wasm)?;
    let world = pick_world(&component, options.kind.as_deref())?;
    let mut spec = InstanceSpec::new("plugin-test", world.interface());
    spec.config = match &options.config {
        Some(path) => config_json(path)?,
        None => "{}".to_string(),
    };
    spec.files = options
        .dirs
        .iter()
        .map(|d| parse_dir(d))
        .collect::<Result<_>>()?;
    spec.memory_bytes = options.memory_mb as usize * 1024 * 1024;
    spec.timeout = Duration::from_millis(options.timeout_ms.max(1));
    let lines = match world {
        PluginWorld::Source => test_source(&component, spec)?,
        PluginWorld::Resolver => {
            let input = input_lines(options)?;
            test_resolver(&component, spec, &input, &options.key)?
        }
        _ => {
            let input = input_lines(options)?;
            let records = input
                .iter()
                .map(|(line, v)| record(v, &options.key).with_context(|| line.clone()))
                .collect::<Result<Vec<_>>>()?;
            let batch = batch_from_json(&records);
            match world {
                PluginWorld::Mapper => test_mapper(&component, spec, &batch)?,
                PluginWorld::Validator => test_validator(&component, spec, &batch)?,
                _ => test_sink(&component, spec, &batch)?,
            }
        }
    };
    for line in &lines {
        println!("{line}");
    }
    match &options.expect {
        None => Ok(ExitCode::SUCCESS),
        Some(path) => compare(path, &lines),
    }
}

/// The world to test: `--kind`, or the only one the component exports.
fn pick_world(component: &Component, kind: Option<&str>) -> Result<PluginWorld> {
    let worlds = &component.info().worlds;
    let names: Vec<&str> = worlds.iter().map(|w| w.interface()).collect();
    match kind {
        Some(kind) => {
            let world = PluginWorld::ALL
                .into_iter()
                .find(|w| w.interface() == kind)
                .with_context(|| {
                    format!(
                        "unknown --kind `{kind}`: use source, sink, mapper, validator or resolver"
                    )
                })?;
            if !worlds.contains(&world) {
                bail!(
                    "{} does not export `{}`; it exports {}",
                    component.path().display(),
                    world.qualified(),
                    if names.is_empty() {
                        "no ferry:plugin interface".to_string()
                    } else {
                        names.join(", ")
                    }
                );
            }
            Ok(world)
        }
        None => match worlds.as_slice() {
            [one] => Ok(*one),
            [] => bail!(
                "{} exports no ferry:plugin interface; is it a ferry plugin?",
                component.path().display()
            ),
            _ => bail!(
                "{} exports {}; say which to test with --kind",
                component.path().display(),
                names.join(" and ")
            ),
        },
    }
}

/// A TOML config file as the JSON text a plugin's `open` receives.
fn config_json(path: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    Ok(serde_json::to_string(&table)?)
}

/// `HOST:GUEST` or `HOST:GUEST:rw`.
fn parse_dir(text: &str) -> Result<FileGrant> {
    let parts: Vec<&str> = text.split(':').collect();
    let (host, guest, writable) = match parts.as_slice() {
        [host, guest] => (host, guest, false),
        [host, guest, "rw"] => (host, guest, true),
        [host, guest, "ro"] => (host, guest, false),
        _ => bail!("--dir {text}: write HOST:GUEST or HOST:GUEST:rw, such as --dir out:/out:rw"),
    };
    if !guest.starts_with('/') {
        bail!("--dir {text}: the guest path must be absolute, such as /{guest}");
    }
    Ok(FileGrant {
        host: PathBuf::from(host),
        guest: guest.to_string(),
        writable,
    })
}

/// The input file's lines as JSON objects, each with its `file:line`.
fn input_lines(options: &TestOptions) -> Result<Vec<(String, Value)>> {
    let Some(path) = &options.input else {
        bail!("give the records to test with --input records.jsonl");
    };
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{}:{}", path.display(), i + 1);
        let value: Value = serde_json::from_str(&line)
            .with_context(|| format!("{at}: not a JSON object: {line}"))?;
        if !value.is_object() {
            bail!("{at}: each line must be a JSON object, found {line}");
        }
        out.push((at, value));
    }
    Ok(out)
}

/// A JSON object as a record: `_key`/`_op` if present, else the key field.
fn record(value: &Value, key_field: &str) -> Result<JsonRecord> {
    let mut fields = value.as_object().cloned().unwrap_or_default();
    let key = match fields.remove("_key") {
        Some(Value::String(k)) => k,
        Some(other) => other.to_string(),
        None => match fields.get(key_field) {
            Some(Value::String(k)) => k.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        },
    };
    let op = match fields.remove("_op").as_ref().and_then(Value::as_str) {
        None | Some("upsert") => Op::Upsert,
        Some("delete") => Op::Delete,
        Some(other) => bail!("`_op` is `{other}`; use \"upsert\" or \"delete\""),
    };
    Ok(JsonRecord { key, op, fields })
}

/// A batch's record `i` as a line: `_key`, `_op`, then its fields.
fn record_line(batch: &Batch, i: usize) -> Value {
    let mut map = serde_json::Map::new();
    map.insert("_key".into(), json!(batch.key(i)));
    map.insert(
        "_op".into(),
        json!(op_name(batch.ops.get(i).copied().unwrap_or(Op::Upsert))),
    );
    if let Value::Object(fields) = batch.row_json(i) {
        map.extend(fields);
    }
    Value::Object(map)
}

fn call_failed(what: &str, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("the plugin's {what} failed: {e}")
}

fn test_mapper(component: &Component, spec: InstanceSpec, batch: &Batch) -> Result<Vec<Value>> {
    let mut mapper = MapperInstance::new(component, spec, None)?;
    let mapped = mapper.map(batch).map_err(|e| call_failed("map", e))?;
    mapped
        .records
        .check()
        .map_err(|e| anyhow::anyhow!("the plugin returned a malformed batch: {e}"))?;
    let mut lines: Vec<Value> = (0..mapped.records.len())
        .map(|i| record_line(&mapped.records, i))
        .collect();
    for r in &mapped.rejected {
        lines.push(json!({ "_key": batch.key(r.row as usize), "_rejected": r.reason }));
    }
    eprintln!(
        "{} in, {} out, {} rejected",
        batch.len(),
        mapped.records.len(),
        mapped.rejected.len()
    );
    Ok(lines)
}

fn test_validator(component: &Component, spec: InstanceSpec, batch: &Batch) -> Result<Vec<Value>> {
    let mut validator = ValidatorInstance::new(component, spec, None)?;
    let violations = validator
        .validate(batch)
        .map_err(|e| call_failed("validate", e))?;
    let mut per_row: Vec<Vec<Value>> = vec![Vec::new(); batch.len()];
    for v in &violations {
        let Some(slot) = per_row.get_mut(v.row as usize) else {
            bail!(
                "the plugin named record {} of a batch of {}",
                v.row,
                batch.len()
            );
        };
        slot.push(json!({ "field": v.field, "rule": v.rule, "message": v.message }));
    }
    let invalid = per_row.iter().filter(|v| !v.is_empty()).count();
    eprintln!(
        "{} records, {} valid, {invalid} with violations",
        batch.len(),
        batch.len() - invalid
    );
    Ok(per_row
        .into_iter()
        .enumerate()
        .map(|(i, v)| json!({ "_key": batch.key(i), "violations": v }))
        .collect())
}

/// Polls a source until it is caught up or finished.
fn test_source(component: &Component, spec: InstanceSpec) -> Result<Vec<Value>> {
    const MAX_POLLS: usize = 100_000;
    let mut source = SourceInstance::new(component, spec, None)?;
    let mut lines = Vec::new();
    let mut polls = 0;
    let status = loop {
        polls += 1;
        let polled = source.poll(512).map_err(|e| call_failed("poll", e))?;
        polled
            .records
            .check()
            .map_err(|e| anyhow::anyhow!("the plugin returned a malformed batch: {e}"))?;
        lines.extend((0..polled.records.len()).map(|i| record_line(&polled.records, i)));
        source
            .commit(&polled.checkpoint)
            .map_err(|e| call_failed("commit", e))?;
        match polled.status {
            SourceStatus::More if polls < MAX_POLLS => {}
            SourceStatus::More => break "still had more after 100000 polls",
            SourceStatus::CaughtUp => break "caught up",
            SourceStatus::Finished => break "finished",
        }
    };
    eprintln!(
        "{} records in {polls} polls; the source {status}",
        lines.len()
    );
    Ok(lines)
}

fn test_sink(component: &Component, spec: InstanceSpec, batch: &Batch) -> Result<Vec<Value>> {
    let mut sink = SinkInstance::new(component, spec, None)?;
    let report = sink.write(batch).map_err(|e| call_failed("write", e))?;
    sink.flush().map_err(|e| call_failed("flush", e))?;
    let mut results = vec!["written".to_string(); batch.len()];
    for (issues, what) in [
        (&report.rejected, "rejected"),
        (&report.conflicts, "conflict"),
    ] {
        for issue in issues {
            match results.get_mut(issue.row as usize) {
                Some(r) => *r = format!("{what}: {}", issue.reason),
                None => bail!(
                    "the plugin named record {} of a batch of {}",
                    issue.row,
                    batch.len()
                ),
            }
        }
    }
    eprintln!(
        "{} records: {} written, {} rejected, {} conflicts",
        batch.len(),
        batch.len() - report.rejected.len() - report.conflicts.len(),
        report.rejected.len(),
        report.conflicts.len()
    );
    Ok(results
        .into_iter()
        .enumerate()
        .map(|(i, r)| json!({ "_key": batch.key(i), "result": r }))
        .collect())
}

fn test_resolver(
    component: &Component,
    spec: InstanceSpec,
    input: &[(String, Value)],
    key_field: &str,
) -> Result<Vec<Value>> {
    use ferry_host::Resolution;
    const SIDES: [&str; 3] = ["left", "right", "ancestor"];
    let mut batches: [Vec<JsonRecord>; 3] = Default::default();
    for (at, line) in input {
        if let Some(other) = line
            .as_object()
            .and_then(|o| o.keys().find(|k| !SIDES.contains(&k.as_str())))
        {
            bail!(
                "{at}: unknown `{other}`: a resolver's input line has `left`, `right` and `ancestor`"
            );
        }
        let mut versions: [Option<JsonRecord>; 3] = Default::default();
        for (side, version) in SIDES.into_iter().zip(&mut versions) {
            *version = match line.get(side) {
                Some(value @ Value::Object(_)) => {
                    Some(record(value, key_field).with_context(|| format!("{at}: `{side}`"))?)
                }
                Some(Value::Null) => None,
                None if side == "ancestor" => None,
                None => bail!(
                    "{at}: a resolver's input line needs `{side}`: {{...}}, or null where the key \
                     was deleted"
                ),
                Some(other) => bail!("{at}: `{side}` is {other}; give an object, or null"),
            };
        }
        let [left, right, _] = &versions;
        if left.is_none() && right.is_none() {
            bail!("{at}: `left` and `right` are both null: deleted on both sides is no conflict");
        }
        let mut keys = versions.iter().flatten().map(|r| r.key.as_str());
        let key = keys.next().unwrap_or_default().to_string();
        if let Some(other) = keys.find(|k| *k != key) {
            bail!("{at}: the versions name different keys, `{key}` and `{other}`");
        }
        for (version, batch) in versions.into_iter().zip(&mut batches) {
            batch.push(version.unwrap_or_else(|| JsonRecord {
                key: key.clone(),
                op: Op::Delete,
                fields: serde_json::Map::new(),
            }));
        }
    }
    let [left, right, ancestor] = batches.map(|records| batch_from_json(&records));
    let mut resolver = ResolverInstance::new(component, spec, None)?;
    let resolutions = resolver
        .resolve(&left, &right, &ancestor)
        .map_err(|e| call_failed("resolve", e))?;
    if resolutions.decisions.len() != left.len() {
        bail!(
            "the plugin made {} decisions for {} conflicts",
            resolutions.decisions.len(),
            left.len()
        );
    }
    let merged = &resolutions.merged;
    resolutions
        .decisions
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let key = left.key(i);
            Ok(match d {
                Resolution::TakeLeft => json!({ "_key": key, "decision": "take-left" }),
                Resolution::TakeRight => json!({ "_key": key, "decision": "take-right" }),
                Resolution::Defer(why) => {
                    json!({ "_key": key, "decision": "defer", "reason": why })
                }
                Resolution::Merged(n) if (*n as usize) < merged.len() => json!({
                    "_key": key,
                    "decision": "merged",
                    "record": record_line(merged, *n as usize),
                }),
                Resolution::Merged(n) => {
                    bail!("the plugin named merged record {n} of {}", merged.len())
                }
            })
        })
        .collect()
}

/// Compares the output with the expected lines; prints a diff.
fn compare(path: &Path, actual: &[Value]) -> Result<ExitCode> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut expected = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON: {line}", path.display(), i + 1))?;
        expected.push((i + 1, v));
    }
    let mut differences = 0;
    let n = expected.len().max(actual.len());
    for i in 0..n {
        match (expected.get(i), actual.get(i)) {
            (Some((_, e)), Some(a)) if e == a => {}
            (Some((line, e)), Some(a)) => {
                differences += 1;
                eprintln!("@@ {}:{line}\n- {e}\n+ {a}", path.display());
            }
            (Some((line, e)), None) => {
                differences += 1;
                eprintln!(
                    "@@ {}:{line} (missing from the output)\n- {e}",
                    path.display()
                );
            }
            (None, Some(a)) => {
                differences += 1;
                eprintln!("@@ output line {} (not expected)\n+ {a}", i + 1);
            }
            (None, None) => {}
        }
    }
    if differences == 0 {
        eprintln!("ok: the output matches {}", path.display());
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "mismatch: {differences} of {n} lines differ from {}",
            path.display()
        );
        Ok(ExitCode::FAILURE)
    }
}
