//! A scratch folder with a manifest, input files and an output folder, and
//! ways to run its pipeline and read what came out.

pub use ferry_tests::pg;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result};
use ferry_host::{Runtime, RuntimeOptions};
use ferry_pipeline::{PipelineError, RunOptions, RunReport};
use ferry_state::{DeadLetter, DeadLetterFilter, SqliteState, StateStore};

pub use ferry_tests::plugins;

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One runtime for the whole test binary, with its own compile cache.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache");
        Runtime::new(RuntimeOptions {
            cache_dir: Some(cache),
        })
        .expect("the wasm engine starts")
    })
}

pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::create_dir_all(dir.path().join("in")).expect("in/");
        std::fs::create_dir_all(dir.path().join("out")).expect("out/");
        Sandbox { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("parent folder");
        }
        std::fs::write(&p, text).expect("write a file");
        p
    }

    pub fn append(&self, rel: &str, text: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path(rel))
            .expect("open for append");
        f.write_all(text.as_bytes()).expect("append");
    }

    /// Writes `pipeline.toml` with `{FILE}`-style placeholders replaced by
    /// component paths.
    /// Pins the digest of every plugin that has none and whose wasm exists,
    /// as `ferry lock` would (a manifest that does not parse is left as is).
    pub fn manifest(&self, text: &str) -> PathBuf {
        let path = self.write("pipeline.toml", &with_plugins(text));
        let _ = ferry_pipeline::lock(&path, ferry_pipeline::LockMode::Missing);
        path
    }

    pub fn plan(&self) -> Result<ferry_pipeline::Plan> {
        let m = ferry_manifest::load(&self.path("pipeline.toml"))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        ferry_pipeline::plan(m, runtime()).map_err(|e| anyhow::anyhow!("{e}"))
    }

    pub fn state(&self) -> SqliteState {
        SqliteState::open(&self.path(".ferry/state.db")).expect("state opens")
    }

    /// Plans and runs the pipeline to its end.
    pub fn run(&self) -> Result<RunReport, PipelineError> {
        let plan = self.plan().expect("the manifest plans");
        let (options, _stop) = RunOptions::new();
        run_plan(plan, Arc::new(self.state()), options)
    }

    pub fn jsonl(&self, rel: &str) -> Vec<serde_json::Value> {
        read_jsonl(&self.path(rel))
    }

    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.state()
            .dead_letters(&DeadLetterFilter::default())
            .expect("dead letters")
    }
}

pub fn run_plan(
    plan: ferry_pipeline::Plan,
    state: Arc<dyn StateStore>,
    options: RunOptions,
) -> Result<RunReport, PipelineError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio")
        .block_on(ferry_pipeline::run(plan, state, options))
}

pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("bad JSON line in {}: {e}: {l}", path.display()))
        })
        .collect()
}

pub fn with_plugins(text: &str) -> String {
    text.replace("{FILE}", plugins::FILE)
        .replace("{FIELD_MAPPER}", plugins::FIELD_MAPPER)
        .replace("{SCHEMA_VALIDATOR}", plugins::SCHEMA_VALIDATOR)
        .replace("{PASSTHROUGH}", plugins::PASSTHROUGH)
        .replace("{FAULTY_MAPPER}", plugins::TEST_FAULTY_MAPPER)
        .replace("{FAULTY_SINK}", plugins::TEST_FAULTY_SINK)
        .replace("{NET_PROBE}", plugins::TEST_NET_PROBE)
        .replace("{ENV_PROBE}", plugins::TEST_ENV_PROBE)
        .replace("{FS_PROBE}", plugins::TEST_FS_PROBE)
        .replace("{HTTP_PROBE}", plugins::TEST_HTTP_PROBE)
        .replace("{TAGGER_V1}", plugins::TEST_TAGGER_V1)
        .replace("{TAGGER_V2}", plugins::TEST_TAGGER_V2)
}

/// The `ferry` binary of this crate: cargo builds it before it runs the
/// tests, so a test never drives a stale one.
pub fn ferry_bin() -> Result<PathBuf> {
    Ok(PathBuf::from(env!("CARGO_BIN_EXE_ferry")))
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn ferry(args: &[&str], cwd: &Path) -> Result<Output> {
    ferry_with_env(args, cwd, &[])
}

/// `ferry <args>` in `cwd`, with extra environment variables set and the
/// tests' compile cache.
fn ferry_command(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Result<Command> {
    let mut command = Command::new(ferry_bin()?);
    command
        .args(args)
        .current_dir(cwd)
        .envs(env.iter().copied())
        .env(
            "FERRY_CACHE_DIR",
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        );
    Ok(command)
}

/// Runs ferry with extra environment variables set.
pub fn ferry_with_env(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Result<Output> {
    let out = ferry_command(args, cwd, env)?
        .output()
        .context("running ferry")?;
    Ok(Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// `ferry <args>` in `cwd`, in the background, its output piped.
pub fn spawn_ferry(args: &[&str], cwd: &Path) -> Child {
    ferry_command(args, cwd, &[])
        .expect("ferry")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ferry run starts")
}

/// Sends `child` SIGINT, as Ctrl-C would.
pub fn interrupt(child: &Child) {
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
}

/// The key-value pairs of a record, for comparisons that ignore field order.
pub fn keys_of(records: &[serde_json::Value], field: &str) -> Vec<String> {
    let mut keys: Vec<String> = records
        .iter()
        .map(|r| match &r[field] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    keys.sort();
    keys
}

/// A pipeline from a file source through `steps` to a file sink at
/// `/out/out.jsonl`, with the given extra plugin tables.
pub fn file_pipeline(source_config: &str, steps: &[&str], extra: &str) -> String {
    let through = steps
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[pipeline]
name = "t"
batch = {{ max_records = 64 }}

[plugins.src]
kind = "source"
wasm = "{{FILE}}"
config = {source_config}
grants = {{ files = [{{ host = "in", guest = "/in" }}] }}

[plugins.out]
kind = "sink"
wasm = "{{FILE}}"
config = {{ path = "/out/out.jsonl" }}
grants = {{ files = [{{ host = "out", guest = "/out", mode = "rw" }}] }}
{extra}
[[routes]]
from = "src"
through = [{through}]
to = ["out"]
"#
    )
}
