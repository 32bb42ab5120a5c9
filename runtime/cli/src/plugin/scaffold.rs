//! `ferry plugin new` and `ferry plugin build`.
//!
//! `new` writes a plugin project that does something small but real for its
//! kind (the same behaviour in every language), with a fixture under `test/`
//! that `ferry plugin test` checks, and a copy of the WIT contract it is
//! built against under `wit/`. `build` turns the project in a folder into
//! `<folder>/<name>.wasm`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

/// The contract every new plugin is built against.
pub(crate) const WIT: &str = include_str!("../../../../wit/ferry.wit");

const KINDS: [&str; 5] = ["source", "sink", "mapper", "validator", "resolver"];
const LANGS: [&str; 3] = ["rust", "python", "js"];

/// One file of a template: its path in the project and its text.
type File = (&'static str, &'static str);

fn rust_files(kind: &str) -> Vec<File> {
    let lib = match kind {
        "mapper" => include_str!("../../templates/rust/mapper.rs"),
        "validator" => include_str!("../../templates/rust/validator.rs"),
        "source" => include_str!("../../templates/rust/source.rs"),
        "sink" => include_str!("../../templates/rust/sink.rs"),
        _ => include_str!("../../templates/rust/resolver.rs"),
    };
    vec![
        (
            "Cargo.toml",
            include_str!("../../templates/rust/Cargo.toml.tmpl"),
        ),
        ("src/lib.rs", lib),
        (".gitignore", "/target\n*.wasm\n/test/out\n"),
    ]
}

/// The fixture of a kind: the same in every language.
fn fixture_files(kind: &str) -> Vec<File> {
    macro_rules! fixture {
        ($kind:literal) => {
            vec![
                (
                    "test/config.toml",
                    include_str!(concat!("../../templates/fixtures/", $kind, "/config.toml")),
                ),
                (
                    "test/expected.jsonl",
                    include_str!(concat!(
                        "../../templates/fixtures/",
                        $kind,
                        "/expected.jsonl"
                    )),
                ),
            ]
        };
        ($kind:literal, input) => {{
            let mut files = fixture!($kind);
            files.push((
                "test/input.jsonl",
                include_str!(concat!("../../templates/fixtures/", $kind, "/input.jsonl")),
            ));
            files
        }};
    }
    match kind {
        "mapper" => fixture!("mapper", input),
        "validator" => fixture!("validator", input),
        "source" => fixture!("source"),
        "sink" => fixture!("sink", input),
        _ => fixture!("resolver", input),
    }
}

/// The command that checks a new plugin against its fixture, run in its
/// folder.
pub(crate) fn test_command(name: &str, kind: &str) -> String {
    let mut cmd = format!("ferry plugin test {name}.wasm --config test/config.toml");
    if kind != "source" {
        cmd.push_str(" --input test/input.jsonl");
    }
    if kind == "sink" {
        cmd.push_str(" --dir test/out:/out:rw");
    }
    cmd.push_str(" --expect test/expected.jsonl");
    cmd
}

fn camel(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// Where the Rust SDK is: `$FERRY_SDK_DIR`, else the `plugins/sdk` of the
/// checkout this binary was built from.
fn sdk_dir() -> Result<PathBuf> {
    let dir = match std::env::var_os("FERRY_SDK_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/sdk"),
    };
    dir.canonicalize().with_context(|| {
        format!(
            "the ferry plugin SDK is not at {}; set FERRY_SDK_DIR to the `plugins/sdk` folder of a ferry checkout",
            dir.display()
        )
    })
}

pub(crate) fn new(name: &str, kind: &str, lang: &str, parent: Option<&Path>) -> Result<ExitCode> {
    let valid_name = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !valid_name {
        bail!(
            "`{name}` cannot be a plugin name: use lowercase letters, digits and dashes, starting with a letter (such as `crm-mapper`)"
        );
    }
    if !KINDS.contains(&kind) {
        bail!("unknown --kind `{kind}`: use one of {}", KINDS.join(", "));
    }
    if !LANGS.contains(&lang) {
        bail!("unknown --lang `{lang}`: use one of {}", LANGS.join(", "));
    }
    let dir = parent.unwrap_or(Path::new(".")).join(name);
    if dir.exists()
        && std::fs::read_dir(&dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} already exists and is not empty; choose another name or --dir",
            dir.display()
        );
    }
    let mut files = match lang {
        "rust" => rust_files(kind),
        other => crate::plugin::polyglot::files(other, kind)?,
    };
    files.extend(fixture_files(kind));
    let sdk = if lang == "rust" {
        sdk_dir()?.display().to_string()
    } else {
        String::new()
    };
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{Type}}", &camel(name))
            .replace("{{kind}}", kind)
            .replace("{{sdk}}", &sdk)
    };
    for (path, text) in &files {
        write(&dir.join(path), &fill(text))?;
    }
    write(&dir.join("wit/ferry.wit"), WIT)?;
    write(&dir.join("README.md"), &readme(name, kind, lang))?;
    println!("created {} ({lang} {kind})", dir.display());
    println!("next:");
    println!("  cd {}", dir.display());
    println!("  ferry plugin build");
    println!("  {}", test_command(name, kind));
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn readme(name: &str, kind: &str, lang: &str) -> String {
    let source = match lang {
        "rust" => "src/lib.rs",
        "python" => "app.py",
        _ => "plugin.js",
    };
    format!(
        "# {name}\n\n\
         A ferry {kind} plugin in {lang}. Its logic is in `{source}`; `wit/ferry.wit` is\n\
         the contract it is built against (`ferry:plugin@{version}`).\n\n\
         ```sh\n\
         ferry plugin build      # writes {name}.wasm\n\
         {test}\n\
         ferry plugin inspect {name}.wasm\n\
         ```\n\n\
         `test/` holds the fixture: the config, the input records (JSON Lines) and\n\
         the expected output. Change the logic, then the fixture, and test again.\n\
         The plugin author guide is `docs/plugin-guide.md` in the ferry repository.\n\
         {notes}",
        test = test_command(name, kind),
        notes = match lang {
            "rust" => String::new(),
            other => format!("\n{}", crate::plugin::polyglot::readme_notes(other)),
        },
        version = ferry_host::CONTRACT_VERSION
    )
}

pub(crate) fn build(path: Option<&Path>) -> Result<ExitCode> {
    let dir = path.unwrap_or(Path::new("."));
    let dir = dir
        .canonicalize()
        .with_context(|| format!("{} does not exist", dir.display()))?;
    let wasm = if dir.join("Cargo.toml").is_file() {
        build_rust(&dir)?
    } else if let Some(built) = crate::plugin::polyglot::build(&dir)? {
        built
    } else {
        bail!(
            "{} holds no plugin project: expected Cargo.toml (Rust), app.py (Python) or plugin.js (JavaScript); create one with `ferry plugin new`",
            dir.display()
        );
    };
    let bytes = std::fs::read(&wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
    println!(
        "built {} ({} bytes, sha256 {})",
        wasm.display(),
        bytes.len(),
        ferry_host::sha256_hex(&bytes)
    );
    Ok(ExitCode::SUCCESS)
}

/// `cargo build` for wasm32-wasip2, then copies the component to
/// `<dir>/<package>.wasm`.
fn build_rust(dir: &Path) -> Result<PathBuf> {
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let table: toml::Table = toml::from_str(&text)
        .with_context(|| format!("{} is not valid TOML", manifest.display()))?;
    let name = table
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .with_context(|| format!("{} has no [package] name", manifest.display()))?
        .to_string();
    let output = Command::new("cargo")
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(&manifest)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot run cargo; is Rust installed?")?;
    if !output.status.success() {
        bail!(
            "cargo build failed (see above). If it says the wasm32-wasip2 target is missing, run `rustup target add wasm32-wasip2`"
        );
    }
    let mut built = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        for file in msg["filenames"].as_array().into_iter().flatten() {
            if let Some(f) = file.as_str().filter(|f| f.ends_with(".wasm")) {
                built = Some(PathBuf::from(f));
            }
        }
    }
    let built = built.context("cargo built no .wasm file; is the crate a `cdylib`?")?;
    let target = dir.join(format!("{name}.wasm"));
    std::fs::copy(&built, &target)
        .with_context(|| format!("cannot copy {} to {}", built.display(), target.display()))?;
    Ok(target)
}
