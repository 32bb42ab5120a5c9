//! One plugin instance for one pipeline stage: its Store, limits, and the
//! drop-and-rebuild cycle after a trap.
//!
//! Each call gets the stage's limits afresh: an epoch deadline (running
//! code is interrupted at `timeout_ms`), the same deadline as an instant in
//! the Store's data (host calls that wait give up at it: see
//! `deadline.rs`), the fuel budget if any, and the output cap, which is
//! also the Store's hostcall fuel (set once per Store: wasmtime starts
//! every copy out of the plugin, an answer or one host call's arguments,
//! with that budget).

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Store;

use crate::bindings::{self, Batch, PluginError, Texts};
use crate::component::{Component, PluginWorld};
use crate::deadline::DeadlineReached;
use crate::engine::EPOCH_TICK;
use crate::error::{CallError, FaultKind, HostError};
use crate::output::OutputSize;
use crate::store::{FileGrant, HostState, Identity};

/// Everything needed to build (and rebuild) a stage's plugin instance.
#[derive(Clone)]
pub struct InstanceSpec {
    /// The pipeline's name, for logs.
    pub pipeline: String,
    /// The stage's name in the manifest.
    pub stage: String,
    /// The plugin's `config` table, as JSON text.
    pub config: String,
    /// Folders the plugin may see.
    pub files: Vec<FileGrant>,
    /// The environment variables the plugin sees (name, value); the host's
    /// own environment never reaches it.
    pub env: Vec<(String, String)>,
    /// The outbound connections the plugin may open.
    pub network: crate::NetworkPolicy,
    /// The named SQL connections the plugin may use through the host.
    pub sql: Vec<crate::sql::ConnectionSpec>,
    /// Where run-time denials are recorded (besides the log).
    pub audit: Option<std::sync::Arc<dyn crate::AuditSink>>,
    /// The most linear memory the instance may have, in bytes.
    pub memory_bytes: usize,
    /// The longest a single call may run.
    pub timeout: Duration,
    /// Fuel (roughly, WebAssembly instructions) each call may use; `None`
    /// for no budget. Needs a component loaded with
    /// [`Component::load_metered`](crate::Component::load_metered).
    pub fuel: Option<u64>,
    /// The largest answer a call may return, in bytes on the host.
    pub max_output_bytes: usize,
}

impl InstanceSpec {
    /// A spec with the manifest's defaults: no grants, config `{}`, 64 MiB
    /// of memory, 5 s per call, no fuel budget, answers up to 32 MiB.
    pub fn new(pipeline: impl Into<String>, stage: impl Into<String>) -> Self {
        InstanceSpec {
            pipeline: pipeline.into(),
            stage: stage.into(),
            config: "{}".into(),
            files: Vec::new(),
            env: Vec::new(),
            network: crate::NetworkPolicy::default(),
            sql: Vec::new(),
            audit: None,
            memory_bytes: 64 << 20,
            timeout: Duration::from_secs(5),
            fuel: None,
            max_output_bytes: 32 << 20,
        }
    }
}

impl InstanceSpec {
    /// Whether `other` builds the same instance: the same config, grants and
    /// limits (the names and the audit sink aside).
    pub fn same_settings(&self, other: &InstanceSpec) -> bool {
        self.config == other.config
            && self.files == other.files
            && self.env == other.env
            && self.network == other.network
            && self.sql == other.sql
            && self.memory_bytes == other.memory_bytes
            && self.timeout == other.timeout
            && self.fuel == other.fuel
            && self.max_output_bytes == other.max_output_bytes
    }
}

impl std::fmt::Debug for InstanceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceSpec")
            .field("pipeline", &self.pipeline)
            .field("stage", &self.stage)
            .field("files", &self.files)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("network", &self.network)
            .field("sql", &self.sql.iter().map(|c| &c.name).collect::<Vec<_>>())
            .field("memory_bytes", &self.memory_bytes)
            .field("timeout", &self.timeout)
            .field("fuel", &self.fuel)
            .field("max_output_bytes", &self.max_output_bytes)
            .finish_non_exhaustive()
    }
}

/// Glue between [`StageInstance`] and one bindgen world.
pub trait World: Sized {
    /// The world's typed `InstancePre`.
    #[doc(hidden)]
    type Pre: Clone + Send + Sync + 'static;
    /// The world's instantiated bindings.
    #[doc(hidden)]
    type Bindings: Send + 'static;
    /// The interface a component must export to serve this world.
    const WORLD: PluginWorld;
    #[doc(hidden)]
    fn pre(component: &Component) -> wasmtime::Result<Self::Pre>;
    #[doc(hidden)]
    fn instantiate(
        pre: &Self::Pre,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<Self::Bindings>;
    #[doc(hidden)]
    fn open(
        b: &Self::Bindings,
        store: &mut Store<HostState>,
        config: &str,
        checkpoint: Option<&[u8]>,
    ) -> wasmtime::Result<Result<(), PluginError>>;
    /// Hands an exactly-once sink its committed token before its first
    /// call; `None` for an instance that takes none (every world but a sink
    /// exporting `sink-commit`).
    #[doc(hidden)]
    fn resume(
        b: &Self::Bindings,
        store: &mut Store<HostState>,
        token: Option<&[u8]>,
    ) -> Option<wasmtime::Result<Result<(), PluginError>>> {
        let _ = (b, store, token);
        None
    }
}

macro_rules! world {
    ($marker:ident, $world:ident, $module:ident, $pre:ident, $bindings:ident, $accessor:ident, |$b:ident, $store:ident, $config:ident, $checkpoint:ident| $open:expr) => {
        #[doc = concat!("Marker for the `", stringify!($module), "` world.")]
        pub enum $marker {}
        impl World for $marker {
            type Pre = bindings::$module::$pre<HostState>;
            type Bindings = bindings::$module::$bindings;
            const WORLD: PluginWorld = PluginWorld::$world;
            fn pre(component: &Component) -> wasmtime::Result<Self::Pre> {
                bindings::$module::$pre::new(component.pre().clone())
            }
            fn instantiate(
                pre: &Self::Pre,
                store: &mut Store<HostState>,
            ) -> wasmtime::Result<Self::Bindings> {
                pre.instantiate(store)
            }
            fn open(
                $b: &Self::Bindings,
                $store: &mut Store<HostState>,
                $config: &str,
                $checkpoint: Option<&[u8]>,
            ) -> wasmtime::Result<Result<(), PluginError>> {
                let _ = &$checkpoint;
                let $b = $b.$accessor();
                $open
            }
        }
    };
}

world!(
    SourceWorld,
    Source,
    source,
    SourcePluginPre,
    SourcePlugin,
    ferry_plugin_source,
    |b, store, config, checkpoint| b.call_open(store, config, checkpoint)
);
use bindings::exactly_once_sink::exports::ferry::plugin::sink_commit;

/// Marker for the sink worlds: `sink-plugin`, and `exactly-once-sink-plugin`
/// when the component also exports `sink-commit` (detected at load).
pub enum SinkWorld {}

#[doc(hidden)]
#[derive(Clone)]
pub struct SinkPre {
    instance_pre: wasmtime::component::InstancePre<HostState>,
    sink: bindings::sink::SinkPluginIndices,
    commit: Option<sink_commit::GuestIndices>,
}

#[doc(hidden)]
pub struct SinkBindings {
    sink: bindings::sink::SinkPlugin,
    commit: Option<sink_commit::Guest>,
}

impl World for SinkWorld {
    type Pre = SinkPre;
    type Bindings = SinkBindings;
    const WORLD: PluginWorld = PluginWorld::Sink;
    fn pre(component: &Component) -> wasmtime::Result<Self::Pre> {
        let instance_pre = component.pre().clone();
        let sink = bindings::sink::SinkPluginIndices::new(&instance_pre)?;
        // A component that names the interface must export all of it: a
        // broken `sink-commit` is refused, not taken for at-least-once.
        let commit = if component.info().exactly_once {
            Some(sink_commit::GuestIndices::new(&instance_pre)?)
        } else {
            None
        };
        Ok(SinkPre {
            instance_pre,
            sink,
            commit,
        })
    }
    fn instantiate(
        pre: &Self::Pre,
        store: &mut Store<HostState>,
    ) -> wasmtime::Result<Self::Bindings> {
        let instance = pre.instance_pre.instantiate(&mut *store)?;
        let sink = pre.sink.load(&mut *store, &instance)?;
        let commit = match &pre.commit {
            Some(indices) => Some(indices.load(&mut *store, &instance)?),
            None => None,
        };
        Ok(SinkBindings { sink, commit })
    }
    fn open(
        b: &Self::Bindings,
        store: &mut Store<HostState>,
        config: &str,
        _checkpoint: Option<&[u8]>,
    ) -> wasmtime::Result<Result<(), PluginError>> {
        b.sink.ferry_plugin_sink().call_open(store, config)
    }
    fn resume(
        b: &Self::Bindings,
        store: &mut Store<HostState>,
        token: Option<&[u8]>,
    ) -> Option<wasmtime::Result<Result<(), PluginError>>> {
        let commit = b.commit.as_ref()?;
        Some(commit.call_resume(store, token))
    }
}
world!(
    MapperWorld,
    Mapper,
    mapper,
    MapperPluginPre,
    MapperPlugin,
    ferry_plugin_mapper,
    |b, store, config, checkpoint| b.call_open(store, config)
);
world!(
    ValidatorWorld,
    Validator,
    validator,
    ValidatorPluginPre,
    ValidatorPlugin,
    ferry_plugin_validator,
    |b, store, config, checkpoint| b.call_open(store, config)
);
world!(
    ResolverWorld,
    Resolver,
    resolver,
    ResolverPluginPre,
    ResolverPlugin,
    ferry_plugin_resolver,
    |b, store, config, checkpoint| b.call_open(store, config)
);

/// A source stage's instance.
pub type SourceInstance = StageInstance<SourceWorld>;
/// A sink stage's instance.
pub type SinkInstance = StageInstance<SinkWorld>;
/// A mapper stage's instance.
pub type MapperInstance = StageInstance<MapperWorld>;
/// A validator stage's instance.
pub type ValidatorInstance = StageInstance<ValidatorWorld>;
/// A resolver's instance.
pub type ResolverInstance = StageInstance<ResolverWorld>;

struct Live<W: World> {
    store: Store<HostState>,
    bindings: W::Bindings,
    /// An exactly-once sink's `resume` has not run yet on this instance.
    resume_due: bool,
}

/// One plugin instance serving one stage.
///
/// Owns a `Store` with the stage's memory limit; every call gets the stage's
/// deadline. After a trap the Store is poisoned, so it is dropped and the next
/// call builds a new one from the `InstancePre` and runs `open` again (for a
/// source, from the checkpoint set with [`StageInstance::set_resume_checkpoint`];
/// an exactly-once sink's `resume` gets the token set there before its next
/// call).
pub struct StageInstance<W: World> {
    component: Component,
    pre: W::Pre,
    spec: Arc<InstanceSpec>,
    identity: Identity,
    live: Option<Live<W>>,
    resume_checkpoint: Option<Vec<u8>>,
    rebuilds: u64,
}

impl<W: World> StageInstance<W> {
    /// Builds the instance and runs the plugin's `open`.
    ///
    /// `checkpoint` is handed to a source's `open`; other worlds ignore it.
    pub fn new(
        component: &Component,
        spec: InstanceSpec,
        checkpoint: Option<Vec<u8>>,
    ) -> Result<Self, HostError> {
        if !component.exports(W::WORLD) {
            return Err(component.wrong_world(W::WORLD));
        }
        let pre = W::pre(component).map_err(|e| HostError::Instantiate {
            stage: spec.stage.clone(),
            detail: format!("{e:#}"),
        })?;
        let identity = Identity::new(&spec, component.digest());
        let mut instance = StageInstance {
            component: component.clone(),
            pre,
            spec: Arc::new(spec),
            identity,
            live: None,
            resume_checkpoint: checkpoint,
            rebuilds: 0,
        };
        if let Err(e) = instance.ensure_live() {
            return Err(match e {
                BuildError::Host(h) => h,
                BuildError::Call(error) => HostError::Open {
                    stage: instance.spec.stage.clone(),
                    error,
                },
            });
        }
        instance.rebuilds = 0;
        Ok(instance)
    }

    /// The component this instance runs.
    pub fn component(&self) -> &Component {
        &self.component
    }

    /// The stage's name.
    pub fn stage(&self) -> &str {
        &self.spec.stage
    }

    /// How many times the Store was rebuilt after a trap.
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds
    }

    /// The checkpoint a rebuilt source instance reopens from; for an
    /// exactly-once sink, the token its next instance resumes from.
    pub fn set_resume_checkpoint(&mut self, checkpoint: Option<Vec<u8>>) {
        self.resume_checkpoint = checkpoint;
    }

    /// What [`set_resume_checkpoint`](Self::set_resume_checkpoint) set last
    /// (or what the instance was built with).
    pub fn resume_checkpoint(&self) -> Option<&[u8]> {
        self.resume_checkpoint.as_deref()
    }

    fn ensure_live(&mut self) -> Result<&mut Live<W>, BuildError> {
        if self.live.is_none() {
            let state =
                HostState::new(self.identity.clone(), &self.spec).map_err(BuildError::Host)?;
            let mut store = Store::new(self.component_engine(), state);
            store.limiter(|s| &mut s.limiter);
            // What one call may copy out of the plugin (its answer, or the
            // arguments of one host call) follows its grant: wasmtime starts
            // every such copy with this budget and traps when the data would
            // exceed it, before allocating it on the host.
            store.set_hostcall_fuel(self.spec.max_output_bytes);
            self.refuel(&mut store);
            store.epoch_deadline_trap();
            store.set_epoch_deadline(self.deadline_ticks());
            store.data_mut().set_call_timeout(Some(self.spec.timeout));
            let bindings = W::instantiate(&self.pre, &mut store).map_err(|e| {
                BuildError::Host(HostError::Instantiate {
                    stage: self.spec.stage.clone(),
                    detail: format!("{e:#}"),
                })
            })?;
            store.set_epoch_deadline(self.deadline_ticks());
            store.data_mut().set_call_timeout(Some(self.spec.timeout));
            self.refuel(&mut store);
            let opened = W::open(
                &bindings,
                &mut store,
                &self.spec.config,
                self.resume_checkpoint.as_deref(),
            );
            store.data_mut().set_call_timeout(None);
            match opened {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(BuildError::Call(e.into())),
                Err(trap) => return Err(BuildError::Call(fault(&trap, &store))),
            }
            self.live = Some(Live {
                store,
                bindings,
                resume_due: true,
            });
            self.rebuilds += 1;
        }
        match self.live.as_mut() {
            Some(live) => Ok(live),
            None => Err(BuildError::Call(CallError::Contract(
                "instance vanished".into(),
            ))),
        }
    }

    /// The fuel each call starts with: `None` unless the component was
    /// compiled with metering.
    fn fuel_per_call(&self) -> Option<u64> {
        self.component
            .metered()
            .then(|| self.spec.fuel.unwrap_or(u64::MAX))
    }

    /// Gives a metered Store its per-call fuel budget.
    fn refuel(&self, store: &mut Store<HostState>) {
        refuel(store, self.fuel_per_call());
    }

    fn component_engine(&self) -> &wasmtime::Engine {
        self.component.pre().engine()
    }

    fn deadline_ticks(&self) -> u64 {
        let tick = EPOCH_TICK.as_millis().max(1);
        // One extra tick: the first tick may come at once.
        (self.spec.timeout.as_millis() / tick) as u64 + 1
    }

    /// Runs one call with the stage's deadline, fuel and output cap; a trap
    /// drops the Store.
    fn call<R: OutputSize>(
        &mut self,
        f: impl FnOnce(&W::Bindings, &mut Store<HostState>) -> wasmtime::Result<Result<R, PluginError>>,
    ) -> Result<R, CallError> {
        let ticks = self.deadline_ticks();
        let timeout = self.spec.timeout;
        let limit = self.spec.max_output_bytes;
        let fuel = self.fuel_per_call();
        match self.ensure_live() {
            Ok(_) => {}
            Err(BuildError::Call(e)) => return Err(e),
            Err(BuildError::Host(e)) => return Err(CallError::Fatal(e.to_string())),
        }
        let StageInstance {
            live: Some(live),
            resume_checkpoint,
            ..
        } = self
        else {
            return Err(CallError::Contract("instance vanished".into()));
        };
        live.store.set_epoch_deadline(ticks);
        live.store.data_mut().set_call_timeout(Some(timeout));
        refuel(&mut live.store, fuel);
        let result = if live.resume_due {
            // An exactly-once sink first discards what was written after
            // its committed token (lazily: a hot reload opens the new
            // instance while the old one still writes).
            match W::resume(
                &live.bindings,
                &mut live.store,
                resume_checkpoint.as_deref(),
            ) {
                Some(Ok(Ok(()))) | None => {
                    live.resume_due = false;
                    refuel(&mut live.store, fuel);
                    live.store.set_epoch_deadline(ticks);
                    f(&live.bindings, &mut live.store)
                }
                Some(Ok(Err(e))) => Ok(Err(e)),
                Some(Err(trap)) => Err(trap),
            }
        } else {
            f(&live.bindings, &mut live.store)
        };
        live.store.data_mut().set_call_timeout(None);
        match result {
            Ok(Ok(r)) => {
                let bytes = r.output_bytes();
                if bytes > limit {
                    return Err(CallError::OutputTooLarge { bytes, limit });
                }
                Ok(r)
            }
            Ok(Err(e)) => Err(e.into()),
            Err(trap) => {
                let err = fault(&trap, &live.store);
                tracing::warn!(
                    pipeline = %self.identity.pipeline,
                    stage = %self.identity.stage,
                    "{err}; dropping the instance, the next call rebuilds it"
                );
                self.live = None;
                Err(err)
            }
        }
    }
}

fn refuel(store: &mut Store<HostState>, fuel: Option<u64>) {
    if let Some(fuel) = fuel {
        // Only fails on an engine without fuel, which `Some` rules out.
        let _ = store.set_fuel(fuel);
    }
}

enum BuildError {
    Host(HostError),
    Call(CallError),
}

/// What wasmtime 48 says when a copy out of the plugin exceeds the Store's
/// hostcall fuel (its error type is private, so the text is matched; the
/// `hostile-alias` tests fail if a wasmtime upgrade changes it).
const HOSTCALL_FUEL_EXHAUSTED: &str = "fuel allocated for hostcalls has been exhausted";

fn fault(trap: &wasmtime::Error, store: &Store<HostState>) -> CallError {
    let kind = if store.data().limiter.breached {
        FaultKind::Memory
    } else if trap.downcast_ref::<DeadlineReached>().is_some() {
        FaultKind::Deadline
    } else if trap
        .chain()
        .any(|e| e.to_string().contains(HOSTCALL_FUEL_EXHAUSTED))
    {
        FaultKind::OutputSize
    } else {
        match trap.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => FaultKind::Deadline,
            Some(wasmtime::Trap::OutOfFuel) => FaultKind::Fuel,
            _ => FaultKind::Trap,
        }
    };
    let mut message = match kind {
        FaultKind::Deadline => "the call ran past its time limit".to_string(),
        FaultKind::Fuel => "the call used up its fuel (grant `fuel`)".to_string(),
        FaultKind::OutputSize => format!(
            "the plugin handed the host data over its limit of {} MiB in one go (an answer, or the arguments of one host call; grant `max_output_mb`); give it smaller batches or raise the limit",
            store.data().max_output_bytes / (1024 * 1024)
        ),
        _ => {
            let text = format!("{trap:#}");
            text.lines().take(3).collect::<Vec<_>>().join("; ")
        }
    };
    let stderr = store.data().stderr_tail();
    if !stderr.is_empty() {
        message.push_str(&format!(" (plugin stderr: {stderr})"));
    }
    CallError::Fault { kind, message }
}

impl StageInstance<SourceWorld> {
    /// Reads up to `max` records.
    pub fn poll(&mut self, max: u32) -> Result<crate::Polled, CallError> {
        self.call(|b, s| b.ferry_plugin_source().call_poll(s, max))
    }

    /// Tells the source a checkpoint is durable.
    pub fn commit(&mut self, checkpoint: &[u8]) -> Result<(), CallError> {
        self.call(|b, s| b.ferry_plugin_source().call_commit(s, checkpoint))
    }
}

impl StageInstance<SinkWorld> {
    /// Writes a batch.
    pub fn write(&mut self, batch: &Batch) -> Result<crate::WriteReport, CallError> {
        self.call(|b, s| b.sink.ferry_plugin_sink().call_write(s, batch))
    }

    /// Makes writes durable.
    pub fn flush(&mut self) -> Result<(), CallError> {
        self.call(|b, s| b.sink.ferry_plugin_sink().call_flush(s))
    }

    /// Current state of keys in the target system.
    pub fn fetch(&mut self, keys: &Texts) -> Result<Batch, CallError> {
        self.call(|b, s| b.sink.ferry_plugin_sink().call_fetch(s, keys))
    }

    /// Whether the sink exports `sink-commit` (commit tokens make it
    /// exactly-once).
    pub fn exactly_once(&self) -> bool {
        self.component.info().exactly_once
    }

    /// The token naming the sink's state after every write so far; `None`
    /// for a sink without `sink-commit`.
    pub fn position(&mut self) -> Result<Option<Vec<u8>>, CallError> {
        if !self.exactly_once() {
            return Ok(None);
        }
        self.call(|b, s| match &b.commit {
            Some(commit) => commit.call_position(s),
            None => Ok(Err(PluginError::Fatal(
                "the sink lost its sink-commit export".into(),
            ))),
        })
        .map(Some)
    }

    /// Whether the current instance is live (a trap drops it; the next
    /// call builds a new one).
    pub fn is_live(&self) -> bool {
        self.live.is_some()
    }

    /// Builds the instance if a trap dropped it, and, for an exactly-once
    /// sink, runs its `resume` with the token set by
    /// [`set_resume_checkpoint`](Self::set_resume_checkpoint). Returns
    /// whether a new instance was built: its writes since the last flush
    /// were lost with the old one.
    pub fn revive(&mut self) -> Result<bool, CallError> {
        let rebuilt = self.live.is_none();
        // `position` is the cheapest call; for a sink without tokens the
        // build alone is what is wanted.
        if self.exactly_once() {
            self.position()?;
        } else if let Err(e) = self.ensure_live() {
            return Err(match e {
                BuildError::Call(e) => e,
                BuildError::Host(e) => CallError::Fatal(e.to_string()),
            });
        }
        Ok(rebuilt)
    }
}

impl StageInstance<MapperWorld> {
    /// Maps a batch.
    pub fn map(&mut self, batch: &Batch) -> Result<crate::Mapped, CallError> {
        self.call(|b, s| b.ferry_plugin_mapper().call_map(s, batch))
    }
}

impl StageInstance<ValidatorWorld> {
    /// Validates a batch.
    pub fn validate(&mut self, batch: &Batch) -> Result<Vec<crate::Violation>, CallError> {
        self.call(|b, s| b.ferry_plugin_validator().call_validate(s, batch))
    }
}

impl StageInstance<ResolverWorld> {
    /// Decides conflicts: row `i` of `left`, `right` and `ancestor` is the
    /// same key (a `delete` row is a version where the key does not exist).
    pub fn resolve(
        &mut self,
        left: &Batch,
        right: &Batch,
        ancestor: &Batch,
    ) -> Result<crate::Resolutions, CallError> {
        self.call(|b, s| {
            b.ferry_plugin_resolver()
                .call_resolve(s, left, right, ancestor)
        })
    }
}
