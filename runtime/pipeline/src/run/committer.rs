//! The committer: whenever pieces of source batches complete, it commits
//! what can be committed (the checkpoint past the completed batches, their
//! accounting, dead letters and sink tokens, in one transaction) and tells
//! the source task, which tells the source plugin.

use std::sync::atomic::Ordering;

use ferry_state::{Accounting, PipelineCommit, Replayed};
use tokio::sync::watch;

use super::{Shared, replay_detail};
use crate::PipelineError;

/// What the committer of one run needs.
pub(super) struct Committer {
    pub(super) shared: Shared,
    pub(super) run: i64,
    pub(super) pipeline: String,
    /// The name the checkpoint is stored under (a replay's is apart).
    pub(super) source: String,
    /// A replay's letter ids and stage: its records are one source batch,
    /// so its one commit settles every letter it replayed.
    pub(super) replay: Option<(Vec<i64>, String)>,
    /// Where each committed checkpoint goes (the source task).
    pub(super) committed: watch::Sender<Option<Vec<u8>>>,
}

impl Committer {
    /// Commits until `done` turns true, then once more; returns the
    /// accounting of everything it committed.
    pub(super) async fn run(
        mut self,
        mut done: watch::Receiver<bool>,
    ) -> Result<Accounting, PipelineError> {
        let mut total = Accounting::default();
        loop {
            let finishing = *done.borrow();
            if let Some(c) = self.shared.ledger.take_committable() {
                let replayed = self.replay.take().map(|(ids, stage)| Replayed {
                    detail: replay_detail(&stage, self.run, &c.closed),
                    ids,
                });
                let commit = PipelineCommit {
                    run: self.run,
                    pipeline: self.pipeline.clone(),
                    source: self.source.clone(),
                    checkpoint: c.checkpoint,
                    closed: c.closed,
                    dead_letters: c.dead_letters,
                    replayed,
                    sink_tokens: c.sink_tokens,
                };
                tokio::task::block_in_place(|| self.shared.state.commit(&commit))?;
                total.add(&commit.closed);
                let s = &self.shared.status;
                s.written
                    .fetch_add(commit.closed.written, Ordering::Relaxed);
                s.dead_lettered
                    .fetch_add(commit.closed.dead_lettered, Ordering::Relaxed);
                s.filtered
                    .fetch_add(commit.closed.filtered, Ordering::Relaxed);
                let _ = self.committed.send(Some(commit.checkpoint));
            }
            if finishing {
                return Ok(total);
            }
            tokio::select! {
                _ = self.shared.progress.notified() => {}
                _ = done.changed() => {}
            }
        }
    }
}
