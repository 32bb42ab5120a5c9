//! Python and JavaScript plugin projects for `ferry plugin new` and
//! `ferry plugin build`.
//!
//! A project holds its code (`app.py` or `plugin.js`), a copy of the helper
//! layer (`ferry_plugin/` or `ferry-plugin/`, embedded in this binary from
//! `plugins/python` and `plugins/js`), a copy of the contract
//! (`wit/ferry.wit`) and a small manifest naming the component and its
//! world (`pyproject.toml` or `package.json`). The helper is copied rather
//! than referenced because it is the language's binding of the contract:
//! it goes with the `wit/ferry.wit` beside it (the JavaScript helper even
//! names the contract's version in its imports), and componentize-js only
//! sees files inside the folder it builds in.
//!
//! The toolchains are large (CPython, SpiderMonkey, componentize-py,
//! componentize-js) and are not copied: `build` uses the ones
//! `bash scripts/polyglot.sh` installs in a ferry checkout, `$FERRY_CHECKOUT`
//! or else the checkout this binary was built from, as `plugin new` finds
//! the Rust SDK.
//!
//! A build whose inputs (the project's files, the toolchain) have not
//! changed since the last one is skipped: these builds take seconds and are
//! not reproducible, so rebuilding for nothing would also change the
//! component's digest.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// One file of a template: its path in the project and its text.
type File = (&'static str, &'static str);

/// The files of a helper layer: (path in the project, text).
macro_rules! helper {
    ($from:literal => $to:literal: $($file:literal),+ $(,)?) => {
        &[$((
            concat!($to, "/", $file),
            include_str!(concat!("../../../../plugins/", $from, "/", $file)),
        )),+]
    };
}

/// `plugins/python/ferry_plugin`, copied into every Python project.
const PYTHON_HELPER: &[File] = helper!("python/ferry_plugin" => "ferry_plugin":
    "__init__.py", "_wit.py", "batch.py", "config.py", "csv.py", "errors.py",
    "log.py", "plugin.py", "unicode.py", "values.py",
);

/// `plugins/js/ferry-plugin`, copied into every JavaScript project.
const JS_HELPER: &[File] = helper!("js/ferry-plugin" => "ferry-plugin":
    "batch.js", "config.js", "csv.js", "errors.js", "fs.js", "index.js",
    "json.js", "log.js", "plugin.js", "unicode.js", "values.js",
);

/// The template files of a Python or JavaScript plugin of `kind`.
pub(crate) fn files(lang: &str, kind: &str) -> Result<Vec<File>> {
    let mut files: Vec<File> = match lang {
        "python" => {
            let app = match kind {
                "mapper" => include_str!("../../templates/python/mapper.py"),
                "validator" => include_str!("../../templates/python/validator.py"),
                "source" => include_str!("../../templates/python/source.py"),
                "sink" => include_str!("../../templates/python/sink.py"),
                _ => include_str!("../../templates/python/resolver.py"),
            };
            vec![
                ("app.py", app),
                (
                    "pyproject.toml",
                    include_str!("../../templates/python/pyproject.toml.tmpl"),
                ),
                (".gitignore", "/target\n*.wasm\n/test/out\n__pycache__/\n"),
            ]
        }
        "js" => {
            let plugin = match kind {
                "mapper" => include_str!("../../templates/js/mapper.js"),
                "validator" => include_str!("../../templates/js/validator.js"),
                "source" => include_str!("../../templates/js/source.js"),
                "sink" => include_str!("../../templates/js/sink.js"),
                _ => include_str!("../../templates/js/resolver.js"),
            };
            // The sink writes files: its world imports wasi:filesystem.
            let package = if kind == "sink" {
                include_str!("../../templates/js/package-with-files.json.tmpl")
            } else {
                include_str!("../../templates/js/package.json.tmpl")
            };
            vec![
                ("plugin.js", plugin),
                ("package.json", package),
                (".gitignore", "/target\n*.wasm\n/test/out\n/node_modules\n"),
            ]
        }
        _ => bail!("`--lang {lang}`: this module makes Python and JavaScript projects only"),
    };
    files.extend_from_slice(if lang == "python" {
        PYTHON_HELPER
    } else {
        JS_HELPER
    });
    Ok(files)
}

/// What a Python or JavaScript project's README adds to the common text.
pub(crate) fn readme_notes(lang: &str) -> &'static str {
    match lang {
        "python" => {
            "## Python\n\n\
             `app.py` binds the name the world exports (`Mapper`, `Validator`, `Source`,\n\
             `Sink` or `Resolver`) to its class through `ferry_plugin`, the helper layer:\n\
             rows and a batch builder over the columnar contract, config checks, errors.\n\
             `ferry plugin new` copied the helper here to go with `wit/ferry.wit`; other\n\
             modules beside `app.py` and packages (folders with `__init__.py`) go into the\n\
             component too. `pyproject.toml` names the component and its world.\n\n\
             `ferry plugin build` uses componentize-py and ferry-deny-sockets from a ferry\n\
             checkout where `bash scripts/polyglot.sh` has run (the one ferry was built\n\
             from, or `$FERRY_CHECKOUT`), and skips the build when nothing changed. The\n\
             component holds CPython: about 18 MB, 10 s to build and 15 s to compile the\n\
             first time it runs; grant it `memory_mb = 128, timeout_ms = 10000`.\n\
             `python3 -c 'import app'` checks the code without building.\n"
        }
        _ => {
            "## JavaScript\n\n\
             `plugin.js` exports the interface its world names (`mapper`, `validator`,\n\
             `source`, `sink` or `resolver`) through `ferry-plugin/`, the helper layer:\n\
             rows and a batch builder over the columnar contract, config checks, errors,\n\
             files. Integers are bigints. `ferry plugin new` copied the helper here to go\n\
             with `wit/ferry.wit`. `package.json` names the component and its world; set\n\
             `\"files\": true` there when the plugin uses `ferry-plugin/fs.js` (granted\n\
             folders, through wasi:filesystem).\n\n\
             `ferry plugin build` runs componentize-js with `node` from a ferry checkout\n\
             where `bash scripts/polyglot.sh` has run (the one ferry was built from, or\n\
             `$FERRY_CHECKOUT`), and skips the build when nothing changed. The component\n\
             holds SpiderMonkey: about 13 MB, 10-20 s to build and 15 s to compile the\n\
             first time it runs; grant it `memory_mb = 128, timeout_ms = 10000`.\n"
        }
    }
}

/// Builds the Python or JavaScript project in `dir`, if it is one.
pub(crate) fn build(dir: &Path) -> Result<Option<PathBuf>> {
    if dir.join("app.py").is_file() {
        build_python(dir).map(Some)
    } else if dir.join("plugin.js").is_file() {
        build_js(dir).map(Some)
    } else {
        Ok(None)
    }
}

// --- where things are -----------------------------------------------------------

/// The ferry checkout whose toolchains build Python and JavaScript plugins:
/// `$FERRY_CHECKOUT`, else the one this binary was built from.
fn checkout() -> Result<PathBuf> {
    let dir = match std::env::var_os("FERRY_CHECKOUT") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."),
    };
    dir.canonicalize().with_context(|| {
        format!(
            "the ferry checkout is not at {}; set FERRY_CHECKOUT to a ferry checkout where `bash scripts/polyglot.sh` has run",
            dir.display()
        )
    })
}

/// A file of the toolchain `scripts/polyglot.sh` installs, or an error
/// saying how to get it.
fn tool(checkout: &Path, rel: &str, what: &str) -> Result<PathBuf> {
    let path = checkout.join(rel);
    if !path.exists() {
        bail!(
            "{what} is not installed ({} is missing): run `bash scripts/polyglot.sh` in {} (it installs the Python and JavaScript toolchains), or set FERRY_CHECKOUT to a ferry checkout where it has run",
            path.display(),
            checkout.display()
        );
    }
    Ok(path)
}

/// The version of `package ferry:plugin@X;` in the project's
/// `wit/ferry.wit`.
fn wit_version(dir: &Path) -> Result<String> {
    let path = dir.join("wit/ferry.wit");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {}: a plugin project keeps the contract it is built against there",
            path.display()
        )
    })?;
    package_version(&text, "ferry:plugin")
        .with_context(|| format!("{} declares no `package ferry:plugin@...;`", path.display()))
}

/// The version in a WIT text's `package <name>@<version>;` line.
fn package_version(wit: &str, name: &str) -> Option<String> {
    wit.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("package ")?.strip_prefix(name)?;
        Some(
            rest.strip_prefix('@')?
                .strip_suffix(';')?
                .trim()
                .to_string(),
        )
    })
}

/// A world name from a project manifest: `mapper-plugin` and the like.
fn check_world(world: &str, manifest: &Path) -> Result<()> {
    let ok = !world.is_empty()
        && world
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!(
            "{}: `{world}` is not the name of a world of wit/ferry.wit (such as `mapper-plugin`)",
            manifest.display()
        );
    }
    Ok(())
}

/// A component name from a project manifest.
fn check_name(name: &str, manifest: &Path) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        bail!(
            "{}: `{name}` cannot name a component: use letters, digits, dashes and underscores",
            manifest.display()
        );
    }
    Ok(())
}

/// Runs a build tool; what it prints goes to stderr, so that stdout holds
/// only what `ferry plugin build` reports.
fn run(mut command: Command, what: &str) -> Result<()> {
    let status = command
        .stdout(Stdio::from(std::io::stderr()))
        .stderr(Stdio::inherit())
        .status()
        .with_context(|| format!("cannot run {what}"))?;
    if !status.success() {
        bail!("{what} failed (see above)");
    }
    Ok(())
}

// --- skipping a build that would change nothing -----------------------------------

/// The files at or under `path`, sorted, leaving out hidden entries,
/// `__pycache__` and `node_modules`, and whatever `skip(name, depth)` says
/// (depth 0 is `path`'s own entries).
fn files_under(path: &Path, skip: &dyn Fn(&str, usize) -> bool) -> Result<Vec<PathBuf>> {
    fn walk(
        dir: &Path,
        depth: usize,
        skip: &dyn Fn(&str, usize) -> bool,
        out: &mut Vec<PathBuf>,
    ) -> Result<()> {
        let entries =
            std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.')
                || name == "__pycache__"
                || name == "node_modules"
                || skip(&name, depth)
            {
                continue;
            }
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                walk(&path, depth + 1, skip, out)?;
            } else {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    if path.is_dir() {
        walk(path, 0, skip, &mut out)?;
    } else {
        out.push(path.to_path_buf());
    }
    out.sort();
    Ok(out)
}

/// A digest of the inputs of a build: the files' paths and contents, and
/// `extra` (the toolchain).
fn inputs_digest(dir: &Path, files: &[PathBuf], extra: &str) -> Result<String> {
    let mut all = Vec::new();
    all.extend_from_slice(extra.as_bytes());
    for file in files {
        let rel = file.strip_prefix(dir).unwrap_or(file);
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        all.extend_from_slice(format!("\n{} {}\n", rel.display(), bytes.len()).as_bytes());
        all.extend_from_slice(&bytes);
    }
    Ok(ferry_host::sha256_hex(&all))
}

/// Who a toolchain file is, cheaply: its path, size and modification time.
fn identity(path: &Path) -> String {
    let meta = std::fs::metadata(path).ok();
    let len = meta.as_ref().map_or(0, std::fs::Metadata::len);
    let modified = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("{} {len} {modified}", path.display())
}

/// The stamp of the last build: where it is and the line it holds.
struct Stamp {
    path: PathBuf,
    inputs: String,
}

impl Stamp {
    fn new(dir: &Path, inputs: String) -> Stamp {
        Stamp {
            path: dir.join("target/ferry-build.stamp"),
            inputs,
        }
    }

    /// Whether `wasm` is what the last build made from the same inputs.
    fn fresh(&self, wasm: &Path) -> bool {
        let (Ok(stamp), Ok(bytes)) = (std::fs::read_to_string(&self.path), std::fs::read(wasm))
        else {
            return false;
        };
        stamp == format!("{} {}", self.inputs, ferry_host::sha256_hex(&bytes))
    }

    fn write(&self, wasm: &Path) -> Result<()> {
        let bytes =
            std::fs::read(wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
        let line = format!("{} {}", self.inputs, ferry_host::sha256_hex(&bytes));
        std::fs::write(&self.path, line)
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

/// Puts a fresh build at `<dir>/<name>.wasm` in one step, so that a
/// pipeline watching it (`ferry run` reloads a changed plugin) never reads
/// half a file.
fn ship(built: &Path, target: &Path) -> Result<()> {
    let partial = target.with_extension("wasm.partial");
    std::fs::copy(built, &partial)
        .with_context(|| format!("cannot copy {} to {}", built.display(), partial.display()))?;
    std::fs::rename(&partial, target).with_context(|| format!("cannot write {}", target.display()))
}

fn fresh_dir(path: &Path) -> Result<()> {
    if path.exists() {
        std::fs::remove_dir_all(path)
            .with_context(|| format!("cannot remove {}", path.display()))?;
    }
    std::fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry.with_context(|| format!("cannot read {}", from.display()))?;
        let name = entry.file_name();
        if name == "__pycache__" {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if entry.file_type()?.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst)
                .with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}

// --- Python ------------------------------------------------------------------------

/// `pyproject.toml`: `[project] name` and `[tool.ferry] world`.
fn python_project(dir: &Path) -> Result<(String, String)> {
    let manifest = dir.join("pyproject.toml");
    let text = std::fs::read_to_string(&manifest).with_context(|| {
        format!(
            "cannot read {}: a Python plugin project names its component and world there",
            manifest.display()
        )
    })?;
    let table: toml::Table = toml::from_str(&text)
        .with_context(|| format!("{} is not valid TOML", manifest.display()))?;
    let name = table
        .get("project")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .with_context(|| format!("{} has no [project] name", manifest.display()))?;
    let world = table
        .get("tool")
        .and_then(|t| t.get("ferry"))
        .and_then(|f| f.get("world"))
        .and_then(|w| w.as_str())
        .with_context(|| {
            format!(
                "{} has no [tool.ferry] world (such as `world = \"mapper-plugin\"`)",
                manifest.display()
            )
        })?;
    check_name(name, &manifest)?;
    check_world(world, &manifest)?;
    Ok((name.to_string(), world.to_string()))
}

/// What goes into a Python component: the top-level modules and packages.
fn python_sources(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("cannot read {}", dir.display()))?
            .path();
        let is_module = path.is_file() && path.extension().is_some_and(|e| e == "py");
        let is_package = path.is_dir() && path.join("__init__.py").is_file();
        if is_module || is_package {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// The files a Python build reads: its manifest, the contract and the
/// modules and packages that go into the component.
fn python_inputs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut inputs = vec![dir.join("pyproject.toml")];
    inputs.extend(files_under(&dir.join("wit"), &|_, _| false)?);
    for src in python_sources(dir)? {
        inputs.extend(files_under(&src, &|_, _| false)?);
    }
    Ok(inputs)
}

/// componentize-py, then ferry-deny-sockets (as `scripts/polyglot.sh`
/// builds the Python plugins of this repository).
fn build_python(dir: &Path) -> Result<PathBuf> {
    let (name, world) = python_project(dir)?;
    wit_version(dir)?;
    let checkout = checkout()?;
    let componentize = tool(
        &checkout,
        "target/polyglot/venv/bin/componentize-py",
        "componentize-py",
    )?;
    let deny_sockets = tool(
        &checkout,
        "target/polyglot/deny-sockets/release/ferry-deny-sockets",
        "ferry-deny-sockets",
    )?;
    let target = dir.join(format!("{name}.wasm"));
    let stamp = Stamp::new(
        dir,
        inputs_digest(
            dir,
            &python_inputs(dir)?,
            &format!(
                "python 1 {world}\n{}\n{}",
                identity(&componentize),
                identity(&deny_sockets)
            ),
        )?,
    );
    if stamp.fresh(&target) {
        eprintln!("{} is up to date", target.display());
        return Ok(target);
    }

    // Only the plugin's modules and packages go into the component.
    let work = dir.join("target");
    let stage = work.join("py");
    fresh_dir(&stage)?;
    for src in python_sources(dir)? {
        let dst = stage.join(src.file_name().unwrap_or_default());
        if src.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst)
                .with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
        }
    }
    let raw = work.join(format!("{name}.raw.wasm"));
    let built = work.join(format!("{name}.wasm"));
    eprintln!("building {name} (Python, world {world}) with componentize-py");
    let mut componentize_py = Command::new(&componentize);
    componentize_py
        .current_dir(&stage)
        .arg("--quiet")
        .arg("-d")
        .arg(dir.join("wit"))
        .args([
            "-w",
            &format!("ferry:plugin/{world}"),
            "componentize",
            "app",
        ])
        .args(["-p", "."])
        .arg("-o")
        .arg(&raw);
    run(componentize_py, "componentize-py")?;

    // Every componentize-py component imports wasi:sockets, which the host
    // refuses without a network grant: replace them with trapping stubs.
    let denied = Command::new(&deny_sockets)
        .arg(&raw)
        .arg(&built)
        .output()
        .with_context(|| format!("cannot run {}", deny_sockets.display()))?;
    if !denied.status.success() {
        bail!(
            "ferry-deny-sockets failed on {}:\n{}",
            raw.display(),
            String::from_utf8_lossy(&denied.stderr)
        );
    }
    ship(&built, &target)?;
    stamp.write(&target)?;
    Ok(target)
}

// --- JavaScript --------------------------------------------------------------------

/// `package.json`: `name`, `ferry.world` and `ferry.files`.
fn js_project(dir: &Path) -> Result<(String, String, bool)> {
    let manifest = dir.join("package.json");
    let text = std::fs::read_to_string(&manifest).with_context(|| {
        format!(
            "cannot read {}: a JavaScript plugin project names its component and world there",
            manifest.display()
        )
    })?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", manifest.display()))?;
    let name = value["name"]
        .as_str()
        .with_context(|| format!("{} has no \"name\"", manifest.display()))?;
    let world = value["ferry"]["world"].as_str().with_context(|| {
        format!(
            "{} has no \"ferry\": {{ \"world\": ... }} (such as \"mapper-plugin\")",
            manifest.display()
        )
    })?;
    let files = match &value["ferry"]["files"] {
        serde_json::Value::Null => false,
        serde_json::Value::Bool(b) => *b,
        other => bail!(
            "{}: \"ferry\".\"files\" is {other}; use true or false",
            manifest.display()
        ),
    };
    check_name(name, &manifest)?;
    check_world(world, &manifest)?;
    Ok((name.to_string(), world.to_string(), files))
}

/// Refuses JavaScript that imports `ferry:plugin/...@V` for a `V` other than
/// the project's contract: the build would fail with a less helpful error.
fn check_js_imports(dir: &Path, inputs: &[PathBuf], version: &str) -> Result<()> {
    const PACKAGE: &str = "ferry:plugin/";
    for file in inputs
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "js" || e == "mjs"))
    {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        for (at, _) in text.match_indices(PACKAGE) {
            // An import specifier: the text between quotes.
            let Some(quote) = text[..at]
                .chars()
                .next_back()
                .filter(|c| "'\"`".contains(*c))
            else {
                continue;
            };
            let spec = text[at..].split(quote).next().unwrap_or_default();
            let Some((_, used)) = spec.split_once('@') else {
                continue;
            };
            if used != version {
                bail!(
                    "{} imports `{spec}` but {} is `ferry:plugin@{version}`: the helper layer goes with the contract, so copy both from the same ferry (a project made by `ferry plugin new` has a matching pair)",
                    file.strip_prefix(dir).unwrap_or(file).display(),
                    dir.join("wit/ferry.wit").display()
                );
            }
        }
    }
    Ok(())
}

/// The WIT folder and world of a plugin that uses files: the project's
/// world plus `wasi:filesystem/preopens`, with the WASI WIT `plugins/js/wit`
/// of the checkout holds.
fn files_world(dir: &Path, wasi: &Path, world: &str, version: &str) -> Result<(PathBuf, String)> {
    let filesystem = std::fs::read_to_string(wasi.join("filesystem/filesystem.wit"))
        .with_context(|| format!("cannot read {}", wasi.join("filesystem").display()))?;
    let wasi_version = package_version(&filesystem, "wasi:filesystem").with_context(|| {
        format!(
            "{} declares no `package wasi:filesystem@...;`",
            wasi.display()
        )
    })?;
    let wit = dir.join("target/wit");
    fresh_dir(&wit)?;
    copy_tree(wasi, &wit.join("deps"))?;
    std::fs::create_dir_all(wit.join("deps/ferry-plugin"))?;
    std::fs::copy(
        dir.join("wit/ferry.wit"),
        wit.join("deps/ferry-plugin/ferry.wit"),
    )
    .context("cannot copy wit/ferry.wit")?;
    let text = format!(
        "// Written by `ferry plugin build`: the world of package.json with\n\
         // wasi:filesystem, for a plugin that reaches granted folders.\n\
         package ferry:project;\n\n\
         world {world}-with-files {{\n    \
         include ferry:plugin/{world}@{version};\n    \
         import wasi:filesystem/preopens@{wasi_version};\n\
         }}\n"
    );
    std::fs::write(wit.join("world.wit"), text).context("cannot write target/wit/world.wit")?;
    Ok((wit, format!("ferry:project/{world}-with-files")))
}

/// componentize-js through `plugins/js/build.mjs` (as `scripts/polyglot.sh`
/// builds the JavaScript plugins of this repository).
fn build_js(dir: &Path) -> Result<PathBuf> {
    let (name, world, files) = js_project(dir)?;
    let version = wit_version(dir)?;
    let checkout = checkout()?;
    let componentize = tool(
        &checkout,
        "plugins/js/node_modules/@bytecodealliance/componentize-js/package.json",
        "componentize-js",
    )?;
    let build_mjs = tool(&checkout, "plugins/js/build.mjs", "componentize-js")?;
    let wasi = tool(&checkout, "plugins/js/wit/deps", "componentize-js")?;
    // Whatever plugin.js may import: every file of the project but its
    // fixture, build folder, components and text for people.
    let inputs = files_under(dir, &|name, depth| {
        (depth == 0 && (name == "target" || name == "test"))
            || name.ends_with(".wasm")
            || name.ends_with(".md")
    })?;
    check_js_imports(dir, &inputs, &version)?;
    let target = dir.join(format!("{name}.wasm"));
    let stamp = Stamp::new(
        dir,
        inputs_digest(
            dir,
            &inputs,
            &format!(
                "js 1 {world} {files}\n{}\n{}\n{}",
                identity(&build_mjs),
                identity(&componentize),
                identity(&wasi.join("filesystem/filesystem.wit")),
            ),
        )?,
    );
    if stamp.fresh(&target) {
        eprintln!("{} is up to date", target.display());
        return Ok(target);
    }

    let work = dir.join("target");
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let (wit, world_name) = if files {
        files_world(dir, &wasi, &world, &version)?
    } else {
        (dir.join("wit"), format!("ferry:plugin/{world}"))
    };
    let built = work.join(format!("{name}.wasm"));
    eprintln!("building {name} (JavaScript, world {world}) with componentize-js");
    let node_found = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !node_found {
        bail!(
            "cannot run `node`: JavaScript plugins are built with Node.js (20 or later); install it"
        );
    }
    // componentize-js sees only the folder it runs in, which is why the
    // helper is beside plugin.js.
    let mut node = Command::new("node");
    node.current_dir(dir)
        .arg(&build_mjs)
        .arg("plugin.js")
        .arg(&wit)
        .arg(&world_name)
        .arg(&built);
    run(node, "componentize-js (node plugins/js/build.mjs)")?;
    ship(&built, &target)?;
    stamp.write(&target)?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// Every file of a helper layer is embedded, so a scaffolded project
    /// gets all of it.
    #[test]
    fn the_helper_layers_are_embedded_whole() {
        let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins");
        for (helper, from, to, ext) in [
            (PYTHON_HELPER, "python/ferry_plugin", "ferry_plugin", "py"),
            (JS_HELPER, "js/ferry-plugin", "ferry-plugin", "js"),
        ] {
            let mut on_disk: Vec<String> = std::fs::read_dir(plugins.join(from))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(&format!(".{ext}")))
                .map(|n| format!("{to}/{n}"))
                .collect();
            on_disk.sort();
            let mut embedded: Vec<String> = helper.iter().map(|(p, _)| p.to_string()).collect();
            embedded.sort();
            assert_eq!(embedded, on_disk, "the files of {from}");
        }
    }

    /// The JavaScript helper's imports name the contract it is embedded
    /// with, or every JavaScript project would fail to build.
    #[test]
    fn the_js_helper_imports_the_embedded_contract() {
        let version = package_version(crate::plugin::scaffold::WIT, "ferry:plugin").unwrap();
        let dir = tempdir();
        std::fs::create_dir_all(dir.join("ferry-plugin")).unwrap();
        let mut inputs = Vec::new();
        for (path, text) in JS_HELPER {
            std::fs::write(dir.join(path), text).unwrap();
            inputs.push(dir.join(path));
        }
        check_js_imports(&dir, &inputs, &version).unwrap();
        let err = check_js_imports(&dir, &inputs, "0.0.9").unwrap_err();
        assert!(err.to_string().contains("ferry-plugin/log.js"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn versions_come_from_package_lines() {
        let wit = "/// docs\npackage ferry:plugin@0.4.2;\n\ninterface x {}\n";
        assert_eq!(
            package_version(wit, "ferry:plugin").as_deref(),
            Some("0.4.2")
        );
        assert_eq!(package_version(wit, "wasi:filesystem"), None);
        assert_eq!(
            package_version("package wasi:filesystem@0.2.12;", "wasi:filesystem").as_deref(),
            Some("0.2.12")
        );
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "ferry-polyglot-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
