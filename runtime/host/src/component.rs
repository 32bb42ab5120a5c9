//! Loading a component: digest, compile (or cache hit), link, and what it
//! exports and imports.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::component::InstancePre;
use wasmtime::component::types::ComponentItem;

use crate::engine::{Runtime, sha256_hex};
use crate::error::HostError;
use crate::store::HostState;

/// The version of the `ferry:plugin` contract this host implements. A
/// component built against an earlier `0.1.x` loads too (wasmtime matches
/// semver-compatible names, and `PluginWorld::from_export` accepts `0.1.*`),
/// except a resolver built against 0.1.0-0.1.2: 0.1.3 changed `resolve` in
/// place (no host had called it), so such a component fails to instantiate.
pub const CONTRACT_VERSION: &str = "0.1.4";

/// The plugin interfaces a component can export; a stage needs one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PluginWorld {
    /// Exports `ferry:plugin/source`.
    Source,
    /// Exports `ferry:plugin/sink`.
    Sink,
    /// Exports `ferry:plugin/mapper`.
    Mapper,
    /// Exports `ferry:plugin/validator`.
    Validator,
    /// Exports `ferry:plugin/resolver`.
    Resolver,
}

impl PluginWorld {
    /// Every plugin world.
    pub const ALL: [PluginWorld; 5] = [
        PluginWorld::Source,
        PluginWorld::Sink,
        PluginWorld::Mapper,
        PluginWorld::Validator,
        PluginWorld::Resolver,
    ];

    /// The exported interface's name without package or version, e.g. `mapper`.
    pub fn interface(self) -> &'static str {
        match self {
            PluginWorld::Source => "source",
            PluginWorld::Sink => "sink",
            PluginWorld::Mapper => "mapper",
            PluginWorld::Validator => "validator",
            PluginWorld::Resolver => "resolver",
        }
    }

    /// The fully qualified interface name, e.g. `ferry:plugin/mapper@0.1.4`.
    pub fn qualified(self) -> String {
        format!("ferry:plugin/{}@{CONTRACT_VERSION}", self.interface())
    }

    fn from_export(name: &str) -> Option<PluginWorld> {
        let rest = name.strip_prefix("ferry:plugin/")?;
        let (iface, version) = rest.split_once('@')?;
        // Same major (0) and minor (1) version: later patch releases only fix docs.
        if !version.starts_with("0.1.") {
            return None;
        }
        PluginWorld::ALL
            .into_iter()
            .find(|w| w.interface() == iface)
    }
}

impl std::fmt::Display for PluginWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.interface())
    }
}

/// What a component declares, as a reviewer would want to see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentInfo {
    /// The sha256 of the `.wasm` file, lowercase hex.
    pub digest: String,
    /// The file's size in bytes.
    pub size: u64,
    /// The plugin interfaces it exports.
    pub worlds: Vec<PluginWorld>,
    /// Whether it exports `sink-commit` (an exactly-once sink).
    pub exactly_once: bool,
    /// Every export name.
    pub exports: Vec<String>,
    /// Every import name (WASI interfaces, `ferry:plugin/host`).
    pub imports: Vec<String>,
    /// Whether the compiled code came from the on-disk cache.
    pub from_cache: bool,
    /// What built it, from the `producers` sections of the component and
    /// its modules (language, tools and SDKs with versions), when it says.
    pub producers: Vec<Producer>,
}

/// One entry of a `producers` section, such as `language: Rust` or
/// `processed-by: wit-component 0.239.0`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Producer {
    /// `language`, `processed-by` or `sdk`.
    pub field: String,
    /// The language or tool.
    pub name: String,
    /// Its version, if given.
    pub version: String,
}

/// Every `producers` entry of a component and the modules inside it.
fn producers(bytes: &[u8]) -> Vec<Producer> {
    let mut out = std::collections::BTreeSet::new();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else { break };
        let wasmparser::Payload::CustomSection(section) = payload else {
            continue;
        };
        let wasmparser::KnownCustom::Producers(reader) = section.as_known() else {
            continue;
        };
        for field in reader.into_iter().flatten() {
            for value in field.values.into_iter().flatten() {
                out.insert(Producer {
                    field: field.name.to_string(),
                    name: value.name.to_string(),
                    version: value.version.to_string(),
                });
            }
        }
    }
    out.into_iter().collect()
}

/// A component compiled and linked once, ready to be instantiated any number
/// of times. Cheap to clone.
#[derive(Clone)]
pub struct Component {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    info: ComponentInfo,
    pre: InstancePre<HostState>,
    metered: bool,
}

impl Component {
    /// Reads, hashes, compiles (or loads from the cache) and links a component.
    pub fn load(runtime: &Runtime, path: &Path) -> Result<Self, HostError> {
        Self::load_with(runtime, path, false)
    }

    /// Like [`Component::load`], compiled with fuel metering, for a plugin
    /// whose grants set `fuel`: every call then gets that budget of fuel.
    pub fn load_metered(runtime: &Runtime, path: &Path) -> Result<Self, HostError> {
        Self::load_with(runtime, path, true)
    }

    fn load_with(runtime: &Runtime, path: &Path, metered: bool) -> Result<Self, HostError> {
        let flavor = runtime.flavor(metered)?;
        let bytes = std::fs::read(path).map_err(|source| HostError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let digest = sha256_hex(&bytes);
        let (component, from_cache) = runtime.compile(flavor, path, &bytes, &digest)?;
        let ty = component.component_type();
        let engine = flavor.engine();
        let imports: Vec<String> = ty
            .imports(engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let exports: Vec<String> = ty
            .exports(engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let worlds = ty
            .exports(engine)
            .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentInstance(_)))
            .filter_map(|(name, _)| PluginWorld::from_export(name))
            .collect();
        let exactly_once = exports.iter().any(|name| {
            name.strip_prefix("ferry:plugin/sink-commit@")
                .is_some_and(|version| version.starts_with("0.1."))
        });
        let pre = flavor
            .linker()
            .instantiate_pre(&component)
            .map_err(|e| HostError::Link {
                path: path.to_path_buf(),
                detail: format!("{e:#}"),
            })?;
        Ok(Component {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                info: ComponentInfo {
                    digest,
                    size: bytes.len() as u64,
                    worlds,
                    exactly_once,
                    exports,
                    imports,
                    from_cache,
                    producers: producers(&bytes),
                },
                pre,
                metered,
            }),
        })
    }

    /// Whether it was compiled with fuel metering.
    pub fn metered(&self) -> bool {
        self.inner.metered
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Its digest, exports and imports.
    pub fn info(&self) -> &ComponentInfo {
        &self.inner.info
    }

    /// The sha256 of the file, lowercase hex.
    pub fn digest(&self) -> &str {
        &self.inner.info.digest
    }

    /// Whether it exports the interface a stage of this kind needs.
    pub fn exports(&self, world: PluginWorld) -> bool {
        self.inner.info.worlds.contains(&world)
    }

    pub(crate) fn pre(&self) -> &InstancePre<HostState> {
        &self.inner.pre
    }

    pub(crate) fn wrong_world(&self, wanted: PluginWorld) -> HostError {
        let found = if self.inner.info.worlds.is_empty() {
            "no ferry:plugin interface".to_string()
        } else {
            self.inner
                .info
                .worlds
                .iter()
                .map(|w| format!("`{}`", w.qualified()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        HostError::WrongWorld {
            path: self.inner.path.clone(),
            wanted: wanted.qualified(),
            found,
        }
    }
}
