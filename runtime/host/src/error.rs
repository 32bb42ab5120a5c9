//! Errors of the host.

use std::path::PathBuf;

/// Why a component could not be loaded or a plugin instance built.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The wasmtime engine could not be configured.
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
    /// A `.wasm` file could not be read.
    #[error("cannot read plugin {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid WebAssembly component.
    #[error("{path} is not a valid WebAssembly component: {detail}")]
    Compile {
        /// The file.
        path: PathBuf,
        /// What wasmtime said.
        detail: String,
    },
    /// The component cannot be linked: it imports something the host does not
    /// provide.
    #[error("plugin {path} cannot be linked: {detail}")]
    Link {
        /// The file.
        path: PathBuf,
        /// What wasmtime said.
        detail: String,
    },
    /// The component does not export the interface its stage needs.
    #[error("plugin {path} does not export `{wanted}`; it exports {found}")]
    WrongWorld {
        /// The file.
        path: PathBuf,
        /// The interface the stage needs.
        wanted: String,
        /// What it exports.
        found: String,
    },
    /// A granted folder could not be opened.
    #[error("cannot open granted folder {path}: {detail}")]
    Grant {
        /// The host folder.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// Instantiating the component failed.
    #[error("cannot instantiate plugin {stage}: {detail}")]
    Instantiate {
        /// The stage.
        stage: String,
        /// What wasmtime said.
        detail: String,
    },
    /// The plugin's `open` refused its configuration or failed.
    #[error("plugin {stage} failed to open: {error}")]
    Open {
        /// The stage.
        stage: String,
        /// What the plugin said, or why it trapped.
        error: CallError,
    },
}

/// What kind of fault ended a call in a trap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The plugin trapped (a panic, `unreachable`, an out-of-bounds access).
    Trap,
    /// The call ran past its deadline and was interrupted.
    Deadline,
    /// The plugin tried to grow its memory past its limit.
    Memory,
    /// The call used up its fuel budget (the `fuel` grant).
    Fuel,
    /// The plugin handed the host more data in one go than its
    /// `max_output_mb` grant allows: an answer, or the arguments of one host
    /// call. Caught while the data is copied out of the plugin (wasmtime's
    /// hostcall fuel), before the host holds more than the grant.
    OutputSize,
}

impl FaultKind {
    /// The short name used in dead letters and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Trap => "trap",
            FaultKind::Deadline => "deadline",
            FaultKind::Memory => "memory",
            FaultKind::Fuel => "fuel",
            FaultKind::OutputSize => "output-size",
        }
    }
}

/// Why a call into a plugin did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The plugin returned `invalid-config`.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The plugin returned `retryable`.
    #[error("retryable error: {0}")]
    Retryable(String),
    /// The plugin returned `fatal`.
    #[error("fatal error: {0}")]
    Fatal(String),
    /// The call trapped; the instance's Store was dropped and will be rebuilt.
    #[error("{} in plugin: {message}", kind.as_str())]
    Fault {
        /// Trap, deadline, memory, fuel or output size.
        kind: FaultKind,
        /// What happened, with the plugin's last stderr output if any.
        message: String,
    },
    /// The plugin's answer was larger than its `max_output_mb` grant; it was
    /// dropped.
    #[error(
        "the plugin's answer takes {} bytes, over its limit of {} MiB (grant `max_output_mb`); give it smaller batches or raise the limit",
        bytes,
        limit / (1024 * 1024)
    )]
    OutputTooLarge {
        /// The answer's size on the host.
        bytes: usize,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The plugin returned data that breaks the contract (a malformed batch,
    /// an index out of range).
    #[error("plugin broke the contract: {0}")]
    Contract(String),
}

impl CallError {
    /// The short category name used in dead letters.
    pub fn reason(&self) -> &'static str {
        match self {
            CallError::InvalidConfig(_) => "invalid-config",
            CallError::Retryable(_) => "retryable",
            CallError::Fatal(_) => "fatal",
            CallError::Fault { kind, .. } => kind.as_str(),
            CallError::OutputTooLarge { .. } => "output-size",
            CallError::Contract(_) => "malformed-output",
        }
    }
}

impl From<crate::PluginError> for CallError {
    /// The plugin's message is cut to
    /// [`MAX_MESSAGE_BYTES`](crate::audit::MAX_MESSAGE_BYTES): it is logged
    /// and kept in dead letters.
    fn from(e: crate::PluginError) -> Self {
        let cap = |m: String| crate::audit::cap_owned(m, crate::audit::MAX_MESSAGE_BYTES);
        match e {
            crate::PluginError::InvalidConfig(m) => CallError::InvalidConfig(cap(m)),
            crate::PluginError::Retryable(m) => CallError::Retryable(cap(m)),
            crate::PluginError::Fatal(m) => CallError::Fatal(cap(m)),
        }
    }
}
