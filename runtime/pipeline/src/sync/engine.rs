//! The sync engine's loop: opening the sides, polling them in turn,
//! fetching both sides' current versions, writing and flushing (as one
//! retried step), and committing each batch's outcome in one transaction.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ferry_host::batch::BatchExt;
use ferry_host::{
    Batch, CallError, InstanceSpec, SinkInstance, SourceInstance, SourceStatus, Texts,
};
use ferry_manifest::{Detect, Mode, Side, Strategy};
use ferry_state::{
    AuditEvent, CONFLICT_CAPABILITY, ConflictFilter, ConflictStatus, DeadLetter, StateStore,
    SyncCommit,
};

use crate::run::{RunOptions, StateAudit};
use crate::{PipelineError, Plan};

use super::decide::KeyState;
use super::record::Version;
use super::{
    ATTEMPTS, Engine, Item, SideIo, SyncStats, Work, merged_config, open_err, origin, record,
};

impl Engine {
    pub(super) fn new(
        plan: &Plan,
        state: Arc<dyn StateStore>,
        options: RunOptions,
        run_id: i64,
    ) -> Result<Engine, PipelineError> {
        let Some(sync) = plan.manifest.sync.clone() else {
            return Err(PipelineError::Internal("not a sync manifest".into()));
        };
        let audit = Arc::new(StateAudit::new(Arc::clone(&state)));
        let stage = |name: &str| {
            plan.stages
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| PipelineError::Internal(format!("no stage `{name}`")))
        };
        let spec_of = |name: &str, config: Option<String>| -> Result<InstanceSpec, PipelineError> {
            let mut spec = stage(name)?.spec.clone();
            if let Some(c) = config {
                spec.config = c;
            }
            let sink: Arc<dyn ferry_host::AuditSink> = audit.clone();
            spec.audit = Some(sink);
            Ok(spec)
        };
        let side_io = |side: Side| -> Result<SideIo, PipelineError> {
            let s = sync.side(side);
            let planned = stage(&s.plugin)?;
            let base = &plan.manifest.plugins[&s.plugin].config;
            let checkpoint_name = format!("{}#{side}", s.plugin);
            let checkpoint = state.checkpoint(&plan.name, &checkpoint_name)?;
            let source = SourceInstance::new(
                &planned.component,
                spec_of(&s.plugin, Some(merged_config(base, &s.read)))?,
                checkpoint.clone(),
            )
            .map_err(open_err(&s.plugin))?;
            let sink = SinkInstance::new(
                &planned.component,
                spec_of(&s.plugin, Some(merged_config(base, &s.write)))?,
                None,
            )
            .map_err(open_err(&s.plugin))?;
            Ok(SideIo {
                plugin: s.plugin.clone(),
                digest: planned.component.digest().to_string(),
                source,
                sink,
                checkpoint_name,
                committed: checkpoint,
                done: false,
            })
        };
        let left = side_io(Side::Left)?;
        let right = side_io(Side::Right)?;
        // The resolver and validator plugins, when the manifest names them:
        // (name, digest, instance).
        fn named<W: ferry_host::World>(
            name: &str,
            planned: &crate::PlannedStage,
            spec: InstanceSpec,
        ) -> Result<(String, String, ferry_host::StageInstance<W>), PipelineError> {
            let instance = ferry_host::StageInstance::<W>::new(&planned.component, spec, None)
                .map_err(open_err(name))?;
            Ok((
                name.to_string(),
                planned.component.digest().to_string(),
                instance,
            ))
        }
        let resolver = match &sync.strategy {
            Strategy::Resolver(name) => Some(named(name, stage(name)?, spec_of(name, None)?)?),
            _ => None,
        };
        let validator = match &sync.detect {
            Detect::Validator(name) => Some(named(name, stage(name)?, spec_of(name, None)?)?),
            _ => None,
        };
        let mut blocked = HashMap::new();
        for c in state.conflicts(&ConflictFilter {
            pipeline: Some(plan.name.clone()),
            statuses: vec![ConflictStatus::Open, ConflictStatus::Decided],
            key: None,
        })? {
            let hash = |v: &serde_json::Value| {
                Version::from_stored(v)
                    .map(|v| v.hash())
                    .unwrap_or_default()
            };
            blocked.insert(c.key.clone(), (c.id, hash(&c.left), hash(&c.right)));
        }
        let p = &plan.manifest.pipeline;
        Ok(Engine {
            pipeline: plan.name.clone(),
            fields: sync.fields.clone(),
            sync,
            left,
            right,
            resolver,
            validator,
            state,
            options,
            blocked,
            stats: SyncStats::default(),
            totals: ferry_state::Accounting::default(),
            max_records: p.batch.max_records.max(1),
            poll_interval: p.poll_interval,
            once: p.mode != Mode::Follow,
            run_id,
        })
    }

    pub(super) fn io(&mut self, side: Side) -> &mut SideIo {
        match side {
            Side::Left => &mut self.left,
            Side::Right => &mut self.right,
        }
    }

    pub(super) fn stopping(&self) -> bool {
        *self.options.shutdown.borrow()
    }

    /// Calls a plugin, retrying passing failures (retryable errors, traps)
    /// with a growing pause; the run stops after [`ATTEMPTS`].
    pub(super) fn retry<T>(
        &mut self,
        what: &str,
        stage: &str,
        mut f: impl FnMut(&mut Engine) -> Result<T, CallError>,
    ) -> Result<T, PipelineError> {
        let mut pause = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match f(self) {
                Ok(v) => {
                    self.options.status.set_paused(None);
                    return Ok(v);
                }
                Err(e @ (CallError::Retryable(_) | CallError::Fault { .. }))
                    if attempt < ATTEMPTS && !self.stopping() =>
                {
                    tracing::warn!(pipeline = %self.pipeline, stage, "{what} failed (attempt {attempt}): {e}; trying again");
                    self.options
                        .status
                        .set_paused(Some(format!("{stage}: {what}: {e}")));
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
                Err(error) => {
                    return Err(PipelineError::Sync {
                        stage: stage.to_string(),
                        what: what.to_string(),
                        error,
                    });
                }
            }
        }
    }

    pub(super) fn run(&mut self) -> Result<(), PipelineError> {
        loop {
            self.apply_decisions()?;
            let mut more = false;
            for side in [Side::Left, Side::Right] {
                if self.io(side).done || self.stopping() {
                    continue;
                }
                let max = self.max_records;
                let stage = self.io(side).plugin.clone();
                let polled = self.retry("poll", &stage, |e| e.io(side).source.poll(max))?;
                let n = polled.records.len() as u64;
                self.options.status.read.fetch_add(n, Ordering::Relaxed);
                if let Err(e) = polled.records.check() {
                    return Err(PipelineError::Sync {
                        stage,
                        what: "poll".into(),
                        error: CallError::Fatal(format!("malformed batch: {e}")),
                    });
                }
                self.process(side, &polled.records, Some(polled.checkpoint.clone()))?;
                match polled.status {
                    SourceStatus::More => more = true,
                    SourceStatus::CaughtUp if !self.once => {}
                    _ => self.io(side).done = true,
                }
            }
            if self.stopping() || (self.left.done && self.right.done) {
                return Ok(());
            }
            if !more {
                let until = Instant::now() + self.poll_interval;
                while Instant::now() < until && !self.stopping() {
                    std::thread::sleep(Duration::from_millis(20).min(self.poll_interval));
                }
            }
        }
    }

    pub(super) fn fetch(
        &mut self,
        side: Side,
        keys: &[String],
    ) -> Result<HashMap<String, Version>, PipelineError> {
        let texts = Texts::from_strs(keys.iter().map(String::as_str));
        let stage = self.io(side).plugin.clone();
        let batch = self.retry("fetch", &stage, |e| e.io(side).sink.fetch(&texts))?;
        if let Err(e) = batch.check() {
            return Err(PipelineError::Sync {
                stage,
                what: "fetch".into(),
                error: CallError::Fatal(format!("malformed batch: {e}")),
            });
        }
        let rename = &self.sync.side(side).rename;
        Ok(record::versions_by_key(
            &batch,
            rename,
            self.fields.as_deref(),
        ))
    }

    /// Writes versions to a side and flushes; returns the keys the side
    /// refused or reported in conflict (their state is left as it was, so
    /// the next change retries them), with dead letters for the refused.
    pub(super) fn write(
        &mut self,
        side: Side,
        rows: &[(String, Version)],
        clear: &std::collections::BTreeSet<String>,
        letters: &mut Vec<DeadLetter>,
    ) -> Result<HashSet<String>, PipelineError> {
        let mut failed = HashSet::new();
        if rows.is_empty() {
            return Ok(failed);
        }
        let refs: Vec<(&str, &Version)> = rows.iter().map(|(k, v)| (k.as_str(), v)).collect();
        // Every synced field is sent, null where the version has none, so
        // a cleared field is cleared on the other side too.
        let also: Vec<String> = match &self.fields {
            Some(f) => f.clone(),
            None => clear.iter().cloned().collect(),
        };
        let batch = record::batch_of(
            &refs,
            &self.sync.side(side).rename,
            &origin(&self.pipeline),
            &also,
        );
        let stage = self.io(side).plugin.clone();
        // Written and flushed as one step: a flush that traps drops the
        // instance with whatever it buffered, so the retry writes again
        // (writes are upserts) before flushing the new instance.
        let report = self.retry("write", &stage, |e| {
            let sink = &mut e.io(side).sink;
            let report = sink.write(&batch)?;
            sink.flush()?;
            Ok(report)
        })?;
        let digest = self.io(side).digest.clone();
        for issue in &report.rejected {
            let Some((key, v)) = rows.get(issue.row as usize) else {
                continue;
            };
            failed.insert(key.clone());
            letters.push(DeadLetter {
                id: 0,
                pipeline: self.pipeline.clone(),
                stage: stage.clone(),
                plugin_digest: digest.clone(),
                reason: "rejected".into(),
                detail: format!(
                    "the {side} side refused the synced version: {}",
                    issue.reason
                ),
                key: key.clone(),
                record: v.to_plain(),
                attempts: 1,
                created_at_us: 0,
            });
        }
        for issue in &report.conflicts {
            if let Some((key, _)) = rows.get(issue.row as usize) {
                tracing::info!(pipeline = %self.pipeline, key, "the {side} side changed under the write ({}); it is compared again on its next change", issue.reason);
                failed.insert(key.clone());
            }
        }
        let n = (rows.len() - failed.len()) as u64;
        match side {
            Side::Left => self.stats.written_left += n,
            Side::Right => self.stats.written_right += n,
        }
        Ok(failed)
    }

    pub(super) fn audit(
        &self,
        key: &str,
        detail: serde_json::Value,
        by_plugin: Option<(&str, &str)>,
    ) -> AuditEvent {
        AuditEvent {
            id: 0,
            at_us: 0,
            pipeline: self.pipeline.clone(),
            stage: by_plugin.map_or("sync".to_string(), |(n, _)| n.to_string()),
            plugin_digest: by_plugin.map_or(String::new(), |(_, d)| d.to_string()),
            capability: CONFLICT_CAPABILITY.to_string(),
            target: key.to_string(),
            detail: detail.to_string(),
        }
    }

    /// Compares and syncs the keys of a polled batch from `side`.
    pub(super) fn process(
        &mut self,
        side: Side,
        records: &Batch,
        checkpoint: Option<Vec<u8>>,
    ) -> Result<(), PipelineError> {
        let mut keys: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        for i in 0..records.len() {
            let k = records.key(i);
            if seen.insert(k) {
                keys.push(k.to_string());
            }
        }
        if keys.is_empty() && checkpoint == self.io(side).committed {
            // Nothing new: no commit (an idle sync does not fsync).
            return Ok(());
        }
        let mut work = Work::default();
        if !keys.is_empty() {
            let lefts = self.fetch(Side::Left, &keys)?;
            let rights = self.fetch(Side::Right, &keys)?;
            let states: HashMap<String, KeyState> = self
                .state
                .sync_states(&self.pipeline, &keys)?
                .into_iter()
                .filter_map(|(k, s)| serde_json::from_str(&s).ok().map(|s| (k, s)))
                .collect();
            let items: Vec<Item> = keys
                .iter()
                .map(|k| Item::new(k, &lefts, &rights, states.get(k).cloned()))
                .collect();
            self.decide(items, &mut work)?;
        }
        let polled = records.len() as u64;
        self.stats.unchanged += work.unchanged;
        self.finish(work, checkpoint.map(|c| (side, c)), polled)
    }

    /// Writes the planned versions, then commits everything at once.
    pub(super) fn finish(
        &mut self,
        mut work: Work,
        checkpoint: Option<(Side, Vec<u8>)>,
        polled: u64,
    ) -> Result<(), PipelineError> {
        let mut letters = std::mem::take(&mut work.letters);
        let left = std::mem::take(&mut work.left);
        let right = std::mem::take(&mut work.right);
        let [clear_left, clear_right] = std::mem::take(&mut work.clear);
        let mut failed = self.write(Side::Left, &left, &clear_left, &mut letters)?;
        failed.extend(self.write(Side::Right, &right, &clear_right, &mut letters)?);
        if self.sync.detect == Detect::Version {
            self.read_back_versions(&left, &right, &mut work, &failed)?;
        }
        let states: Vec<(String, Option<String>)> = work
            .states
            .iter()
            .filter(|(k, _)| !failed.contains(k))
            .map(|(k, s)| {
                (
                    k.clone(),
                    s.as_ref().and_then(|s| serde_json::to_string(s).ok()),
                )
            })
            .collect();
        // Accounting of the polled records (decisions are per key, so a
        // key polled twice in a batch counts once as unchanged).
        let dead = (letters.len() as u64).min(polled);
        let filtered = work.unchanged.min(polled - dead);
        let closed = ferry_state::Accounting {
            read: polled,
            written: polled - dead - filtered,
            dead_lettered: dead,
            filtered,
        };
        let commit = SyncCommit {
            pipeline: self.pipeline.clone(),
            checkpoint: checkpoint
                .as_ref()
                .map(|(side, c)| (self.io(*side).checkpoint_name.clone(), c.clone())),
            states,
            queue: work.queue.iter().map(|(_, q, _)| q.clone()).collect(),
            refresh: work.refresh.clone(),
            resolved: work.resolved.clone(),
            reopen: work.reopen.clone(),
            audit: work.audit.clone(),
            dead_letters: letters,
            accounting: (polled > 0).then_some((self.run_id, closed)),
        };
        let ids = self.state.commit_sync(&commit)?;
        for ((key, _, (lh, rh)), id) in work.queue.iter().zip(ids) {
            self.blocked
                .insert(key.clone(), (id, lh.clone(), rh.clone()));
        }
        for key in &work.unblocked {
            self.blocked.remove(key);
        }
        for (key, blocked) in &work.reblocked {
            self.blocked.insert(key.clone(), blocked.clone());
        }
        self.totals.add(&closed);
        let status = &self.options.status;
        status
            .dead_lettered
            .fetch_add(closed.dead_lettered, Ordering::Relaxed);
        status.written.fetch_add(closed.written, Ordering::Relaxed);
        status
            .filtered
            .fetch_add(closed.filtered, Ordering::Relaxed);
        if let Some((side, c)) = checkpoint {
            let stage = self.io(side).plugin.clone();
            self.retry("commit", &stage, |e| e.io(side).source.commit(&c))?;
            // A source rebuilt after a trap reopens from here.
            let io = self.io(side);
            io.source.set_resume_checkpoint(Some(c.clone()));
            io.committed = Some(c);
        }
        Ok(())
    }

    /// Version detection: the sides' new version numbers, read back after
    /// the write, become their marks.
    pub(super) fn read_back_versions(
        &mut self,
        left: &[(String, Version)],
        right: &[(String, Version)],
        work: &mut Work,
        failed: &HashSet<String>,
    ) -> Result<(), PipelineError> {
        for (side, rows) in [(Side::Left, left), (Side::Right, right)] {
            let keys: Vec<String> = rows
                .iter()
                .map(|(k, _)| k.clone())
                .filter(|k| !failed.contains(k))
                .collect();
            if keys.is_empty() {
                continue;
            }
            let now = self.fetch(side, &keys)?;
            for (key, st) in work.states.iter_mut() {
                let (Some(st), Some(v)) = (st.as_mut(), now.get(key)) else {
                    continue;
                };
                let mark = match side {
                    Side::Left => &mut st.left,
                    Side::Right => &mut st.right,
                };
                if v.hash() == mark.hash {
                    mark.version = v.version;
                }
            }
        }
        Ok(())
    }
}
