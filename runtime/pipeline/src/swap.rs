//! Replacing a running stage's plugin instance at a batch boundary.
//!
//! A reload prepares the new instance off the hot path ([`prepare_swap`]: load,
//! instantiate, `open`), while the old one keeps serving. Only when every
//! changed stage of the reload is prepared are the swaps sent, through the
//! run's [`SwapController`]; each stage task takes its swap between two
//! batches: the batch in flight finishes on the old instance and the next
//! one starts on the new, so no record is processed by both or by neither,
//! and the stage's order is kept. A sink flushes its old instance's writes
//! before the new one writes; a source's new instance opens from the
//! checkpoint of the last records the old one read.

use std::sync::Arc;
use std::time::Duration;

use ferry_manifest::PluginKind;
use ferry_state::StateStore;
use tokio::sync::{mpsc, oneshot};

use crate::PipelineError;
use crate::plan::PlannedStage;
use crate::run::{Instance, StateAudit, build};

/// A stage's new instance, built and opened, ready to be swapped in.
pub struct PreparedSwap {
    pub(crate) stage: PlannedStage,
    /// The opened instance; `None` for a source, which is opened again at
    /// the swap from the checkpoint its predecessor reached.
    pub(crate) instance: Option<Instance>,
}

impl PreparedSwap {
    /// The stage it replaces.
    pub fn stage(&self) -> &str {
        &self.stage.name
    }

    /// The new component's digest.
    pub fn digest(&self) -> &str {
        self.stage.component.digest()
    }
}

impl std::fmt::Debug for PreparedSwap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedSwap")
            .field("stage", &self.stage.name)
            .field("digest", &self.digest())
            .finish_non_exhaustive()
    }
}

/// Builds and opens a stage's new instance. A source is opened from the
/// pipeline's committed checkpoint to check that `open` succeeds, then
/// dropped: the swap opens it again from where the old source stopped.
///
/// Blocks (plugin `open` calls): run it on a blocking thread.
pub fn prepare_swap(
    stage: &PlannedStage,
    pipeline: &str,
    state: &Arc<dyn StateStore>,
) -> Result<PreparedSwap, PipelineError> {
    let audit = Arc::new(StateAudit::new(Arc::clone(state)));
    let checkpoint = if stage.kind == PluginKind::Source {
        state.checkpoint(pipeline, &stage.name)?
    } else {
        None
    };
    let instance = build(stage, checkpoint, &audit)?;
    Ok(PreparedSwap {
        stage: stage.clone(),
        instance: (stage.kind != PluginKind::Source).then_some(instance),
    })
}

/// What a swap did.
#[derive(Debug, Clone)]
pub struct SwapReport {
    /// The stage.
    pub stage: String,
    /// The digest of the component it ran before.
    pub old_digest: String,
    /// The digest of the component it runs now.
    pub new_digest: String,
    /// How long the stage did not process records: from the end of the last
    /// batch on the old instance until the new one was ready (a sink's
    /// flush and a source's `open` included).
    pub pause: Duration,
}

pub(crate) struct SwapRequest {
    pub prepared: PreparedSwap,
    pub reply: oneshot::Sender<Result<SwapReport, PipelineError>>,
}

/// Sends swaps to a running pipeline. Cheap to clone.
#[derive(Clone)]
pub struct SwapController {
    tx: mpsc::UnboundedSender<SwapRequest>,
}

/// The receiving end of a [`SwapController`], handed to
/// [`run_controlled`](crate::run::run_controlled).
pub struct RunControl {
    pub(crate) rx: mpsc::UnboundedReceiver<SwapRequest>,
}

/// A controller and the control end for one run.
pub fn swap_control() -> (SwapController, RunControl) {
    let (tx, rx) = mpsc::unbounded_channel();
    (SwapController { tx }, RunControl { rx })
}

impl SwapController {
    /// Swaps a stage's instance at its next batch boundary and waits until
    /// it is done.
    pub async fn swap(&self, prepared: PreparedSwap) -> Result<SwapReport, PipelineError> {
        let stage = prepared.stage.name.clone();
        let (reply, done) = oneshot::channel();
        let stopped = || PipelineError::Internal(format!("stage `{stage}` is not running"));
        self.tx
            .send(SwapRequest { prepared, reply })
            .map_err(|_| stopped())?;
        done.await.map_err(|_| stopped())?
    }
}
