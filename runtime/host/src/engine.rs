//! The wasmtime engine, the epoch ticker and the precompiled-component cache.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::Linker;

use crate::error::HostError;
use crate::store::HostState;

/// How often the epoch advances. Deadlines are counted in these ticks, so a
/// call's deadline is precise to about one tick.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Settings of a [`Runtime`].
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Where precompiled components are kept. `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
}

impl RuntimeOptions {
    /// The default cache folder: `$FERRY_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/ferry/components`, else `~/.cache/ferry/components`.
    pub fn default_cache_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("FERRY_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            return Some(PathBuf::from(dir).join("ferry/components"));
        }
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/ferry/components"))
    }
}

struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The shared WebAssembly runtime: an engine, its linker and the compile
/// cache; a second, fuel-metered engine is built the first time a plugin
/// with a `fuel` grant is loaded.
///
/// Cheap to clone; every pipeline of a process shares one.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

/// One engine configuration with its linker.
pub(crate) struct Flavor {
    engine: wasmtime::Engine,
    linker: Linker<HostState>,
    engine_hash: String,
}

impl Flavor {
    fn new(metered: bool) -> Result<Flavor, HostError> {
        let mut config = wasmtime::Config::new();
        // Plain synchronous calls: the component-model async machinery made
        // every sync call 3-4 times slower when measured on this workload.
        config.concurrency_support(false);
        // Epochs, not fuel, for deadlines: about 20% overhead instead of 27%.
        // Fuel (counting executed instructions) only for plugins that ask
        // for it, on this separate engine, so the others do not pay for it.
        config.epoch_interruption(true);
        config.consume_fuel(metered);
        let engine =
            wasmtime::Engine::new(&config).map_err(|e| HostError::Engine(e.to_string()))?;

        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| HostError::Engine(format!("linking WASI: {e}")))?;
        // File access stays as wasmtime-wasi implements it; refusals are
        // also reported to the audit log.
        crate::filesystem::add_audited_to_linker(&mut linker)
            .map_err(|e| HostError::Engine(format!("linking audited wasi:filesystem: {e}")))?;
        // Blocking wasi:io calls (sleeps, polls, blocking stream reads and
        // writes) end at the call's deadline, as running code does at its
        // epoch deadline.
        crate::deadline::add_bounded_io_to_linker(&mut linker)
            .map_err(|e| HostError::Engine(format!("linking bounded wasi:io: {e}")))?;
        // Outgoing HTTP; every request goes through the plugin's allow-list
        // in its send hook (a component without a network grant that imports
        // wasi:http is refused before it runs).
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)
            .map_err(|e| HostError::Engine(format!("linking wasi:http: {e}")))?;
        crate::bindings::common::ferry::plugin::host::add_to_linker::<
            HostState,
            wasmtime::component::HasSelf<HostState>,
        >(&mut linker, |s| s)
        .map_err(|e| HostError::Engine(format!("linking ferry:plugin/host: {e}")))?;
        crate::bindings::common::ferry::plugin::sql::add_to_linker::<
            HostState,
            wasmtime::component::HasSelf<HostState>,
        >(&mut linker, |s| s)
        .map_err(|e| HostError::Engine(format!("linking ferry:plugin/sql: {e}")))?;

        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Flavor {
            engine,
            linker,
            engine_hash: format!("{:016x}", hasher.finish()),
        })
    }

    pub(crate) fn engine(&self) -> &wasmtime::Engine {
        &self.engine
    }

    pub(crate) fn linker(&self) -> &Linker<HostState> {
        &self.linker
    }
}

struct Inner {
    plain: Flavor,
    metered: OnceLock<Flavor>,
    /// Engines whose epoch the ticker advances.
    ticked: Arc<Mutex<Vec<wasmtime::EngineWeak>>>,
    cache_dir: Option<PathBuf>,
    _ticker: Ticker,
}

impl Runtime {
    /// Builds the engine and starts the epoch ticker.
    pub fn new(options: RuntimeOptions) -> Result<Self, HostError> {
        let plain = Flavor::new(false)?;
        let ticked = Arc::new(Mutex::new(vec![plain.engine.weak()]));
        let stop = Arc::new(AtomicBool::new(false));
        let tick_engines = Arc::clone(&ticked);
        let tick_stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("ferry-epoch".into())
            .spawn(move || {
                while !tick_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    let engines = tick_engines.lock().unwrap_or_else(|e| e.into_inner());
                    for engine in engines.iter().filter_map(wasmtime::EngineWeak::upgrade) {
                        engine.increment_epoch();
                    }
                }
            })
            .map_err(|e| HostError::Engine(format!("starting the epoch thread: {e}")))?;

        Ok(Runtime {
            inner: Arc::new(Inner {
                plain,
                metered: OnceLock::new(),
                ticked,
                cache_dir: options.cache_dir,
                _ticker: Ticker { stop },
            }),
        })
    }

    /// The plain engine, or the fuel-metered one (built on first use).
    pub(crate) fn flavor(&self, metered: bool) -> Result<&Flavor, HostError> {
        if !metered {
            return Ok(&self.inner.plain);
        }
        if let Some(f) = self.inner.metered.get() {
            return Ok(f);
        }
        let flavor = Flavor::new(true)?;
        let weak = flavor.engine.weak();
        if self.inner.metered.set(flavor).is_ok() {
            self.inner
                .ticked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(weak);
        }
        self.inner
            .metered
            .get()
            .ok_or_else(|| HostError::Engine("the metered engine vanished".into()))
    }

    /// Compiles a component, or loads it precompiled from the cache.
    ///
    /// Returns the component and whether it came from the cache.
    pub(crate) fn compile(
        &self,
        flavor: &Flavor,
        path: &Path,
        bytes: &[u8],
        digest: &str,
    ) -> Result<(wasmtime::component::Component, bool), HostError> {
        let compile_err = |e: wasmtime::Error| HostError::Compile {
            path: path.to_path_buf(),
            detail: format!("{e:#}"),
        };
        let Some(dir) = &self.inner.cache_dir else {
            let c =
                wasmtime::component::Component::new(flavor.engine(), bytes).map_err(compile_err)?;
            return Ok((c, false));
        };
        let cached = dir.join(format!("{digest}-{}.cwasm", flavor.engine_hash));
        if cached.is_file() {
            // SAFETY: files in the cache are written only by `precompile_component`
            // of an engine with the same compatibility hash (part of the name),
            // through a temp file renamed into place, so a file with this name
            // is a complete artifact for this engine. A file that fails
            // deserialization is recompiled below.
            #[allow(unsafe_code)]
            let loaded = unsafe {
                wasmtime::component::Component::deserialize_file(flavor.engine(), &cached)
            };
            match loaded {
                Ok(c) => return Ok((c, true)),
                Err(e) => {
                    tracing::warn!(cache = %cached.display(), "ignoring unusable cached component: {e:#}")
                }
            }
        }
        let artifact = flavor
            .engine()
            .precompile_component(bytes)
            .map_err(compile_err)?;
        // The cache is an optimization: failing to write it is logged, not fatal.
        if let Err(e) = write_atomically(dir, &cached, &artifact) {
            tracing::warn!(cache = %cached.display(), "cannot write the component cache: {e}");
        }
        // SAFETY: `artifact` was produced just above by this engine.
        #[allow(unsafe_code)]
        let c = unsafe { wasmtime::component::Component::deserialize(flavor.engine(), &artifact) }
            .map_err(compile_err)?;
        Ok((c, false))
    }
}

fn write_atomically(dir: &Path, target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("component"),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, target)
}

/// The lowercase hex sha256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
