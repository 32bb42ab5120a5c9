//! Deciding and settling: comparing each key's versions with its state,
//! propagating one-sided changes, settling conflicts by the strategy or the
//! resolver plugin, queueing them for a person, and applying the decisions
//! people made.

use std::collections::HashMap;

use ferry_host::CallError;
use ferry_host::batch::BatchExt;
use ferry_manifest::{ForeignChange, Side, Strategy};
use ferry_state::{Choice, ConflictFilter, ConflictStatus, DeadLetter, NewConflict, now_us};

use crate::PipelineError;

use super::decide::{KeyState, Settled, mark_of};
use super::record::Version;
use super::{Engine, Item, Work, decide, origin, record};

impl Engine {
    /// Decides every item; fills `work` with writes, states, conflicts.
    pub(super) fn decide(
        &mut self,
        items: Vec<Item>,
        work: &mut Work,
    ) -> Result<(), PipelineError> {
        let now = now_us();
        let ts_field = self.sync.timestamp_field.clone();
        let mut conflicts: Vec<Item> = Vec::new();
        for item in items {
            if let Some((id, lh, rh)) = self.blocked.get(&item.key).cloned() {
                // Waiting for a person: keep the queued versions current.
                if item.lh != lh || item.rh != rh {
                    work.refresh
                        .push((id, item.l.to_stored(), item.r.to_stored()));
                    self.blocked
                        .insert(item.key.clone(), (id, item.lh.clone(), item.rh.clone()));
                }
                work.unchanged += 1;
                continue;
            }
            if item.lh == item.rh {
                // Alike (an echo, or both sides made the same change).
                let fresh = KeyState {
                    ancestor: item.l.clone(),
                    left: mark_of(&item.l, &item.lh, ts_field.as_deref()),
                    right: mark_of(&item.r, &item.rh, ts_field.as_deref()),
                };
                if item.st.as_ref() != Some(&fresh) {
                    work.states.push((item.key.clone(), Some(fresh)));
                }
                work.unchanged += 1;
                continue;
            }
            let detect = &self.sync.detect;
            let l_changed = decide::changed(
                detect,
                &item.l,
                &item.lh,
                item.st.as_ref().map(|s| &s.left),
                ts_field.as_deref(),
            );
            let r_changed = decide::changed(
                detect,
                &item.r,
                &item.rh,
                item.st.as_ref().map(|s| &s.right),
                ts_field.as_deref(),
            );
            let ancestor = item.st.as_ref().map(|s| &s.ancestor).filter(|a| !a.deleted);
            match (l_changed, r_changed) {
                (false, false) => {
                    // They differ, yet neither changed since it was last
                    // seen: a change refused on purpose (an owned field
                    // with `on_foreign_change = "reject"`), or, with
                    // version or timestamp detection, an edit that did
                    // not move the version. Left alone until a side
                    // changes.
                    work.unchanged += 1;
                }
                (true, false) => self.propagate(Side::Left, &item, ancestor.cloned(), work),
                (false, true) => self.propagate(Side::Right, &item, ancestor.cloned(), work),
                (true, true) => conflicts.push(item),
            }
        }
        if conflicts.is_empty() {
            return Ok(());
        }
        // Validator detection: concurrent edits of different fields merge
        // unless the validator finds the merge breaks a rule.
        let mut real: Vec<(Item, Option<String>)> = Vec::new();
        if self.validator.is_some() {
            let mut candidates: Vec<(Item, Version)> = Vec::new();
            for item in conflicts {
                let ancestor = item.st.as_ref().map(|s| &s.ancestor).filter(|a| !a.deleted);
                if !item.l.deleted && !item.r.deleted && ancestor.is_some() {
                    let fm = decide::merge_fields(&item.l, &item.r, ancestor);
                    if fm.conflicting.is_empty() {
                        candidates.push((item, fm.merged));
                        continue;
                    }
                }
                real.push((item, None));
            }
            if !candidates.is_empty() {
                let rows: Vec<(&str, &Version)> = candidates
                    .iter()
                    .map(|(i, m)| (i.key.as_str(), m))
                    .collect();
                let batch =
                    record::batch_of(&rows, &Default::default(), &origin(&self.pipeline), &[]);
                let name = self
                    .validator
                    .as_ref()
                    .map(|v| v.0.clone())
                    .unwrap_or_default();
                let violations =
                    match self.retry("validate", &name, |e| match e.validator.as_mut() {
                        Some(v) => v.2.validate(&batch),
                        None => Ok(Vec::new()),
                    }) {
                        Ok(v) => v,
                        // A validator that fails (after its retries) approves
                        // nothing: every candidate is a conflict.
                        Err(PipelineError::Sync { error, .. }) => (0..candidates.len())
                            .map(|row| ferry_host::Violation {
                                row: row as u32,
                                field: None,
                                rule: "validator-failed".into(),
                                message: format!("validator `{name}` failed: {error}"),
                            })
                            .collect(),
                        Err(other) => return Err(other),
                    };
                let mut broken: HashMap<usize, String> = HashMap::new();
                for v in violations {
                    broken
                        .entry(v.row as usize)
                        .or_insert_with(|| format!("{} ({})", v.message, v.rule));
                }
                for (i, (item, merged)) in candidates.into_iter().enumerate() {
                    match broken.remove(&i) {
                        Some(why) => real.push((item, Some(why))),
                        None => self.apply_outcome(&item, merged, work),
                    }
                }
            }
        } else {
            real = conflicts.into_iter().map(|i| (i, None)).collect();
        }
        self.settle_conflicts(real, now, work)
    }

    /// One side changed: its version goes to the other side.
    pub(super) fn propagate(
        &mut self,
        from: Side,
        item: &Item,
        ancestor: Option<Version>,
        work: &mut Work,
    ) {
        let cur = match from {
            Side::Left => &item.l,
            Side::Right => &item.r,
        };
        let foreign = decide::foreign_changes(&self.sync, from, cur, ancestor.as_ref());
        if !foreign.is_empty() && self.sync.on_foreign_change == ForeignChange::Reject {
            let io = self.io(from);
            let (stage, digest) = (io.plugin.clone(), io.digest.clone());
            let other_side = from.other();
            work.letters.push(DeadLetter {
                id: 0,
                pipeline: self.pipeline.clone(),
                stage,
                plugin_digest: digest,
                reason: "owned-field".into(),
                detail: format!(
                    "the {from} side changed {} owned by the {other_side} side (on_foreign_change = \"reject\"): the change was not synced",
                    foreign.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", "),
                ),
                key: item.key.clone(),
                record: cur.to_plain(),
                attempts: 1,
                created_at_us: 0,
            });
            // Seen: not reported again until it changes again.
            if let Some(mut st) = item.st.clone() {
                let hash = match from {
                    Side::Left => &item.lh,
                    Side::Right => &item.rh,
                };
                let mark = mark_of(cur, hash, self.sync.timestamp_field.as_deref());
                match from {
                    Side::Left => st.left = mark,
                    Side::Right => st.right = mark,
                }
                work.states.push((item.key.clone(), Some(st)));
            }
            return;
        }
        let mut out = cur.clone();
        decide::apply_owned(&self.sync, &mut out, &item.l, &item.r);
        self.apply_outcome(item, out, work);
    }

    /// Plans writing `outcome` to the sides that differ from it, and the
    /// key's new state.
    pub(super) fn apply_outcome(&mut self, item: &Item, outcome: Version, work: &mut Work) {
        let ts = self.sync.timestamp_field.as_deref();
        let oh = outcome.hash();
        let mut st = KeyState {
            ancestor: outcome.clone(),
            left: mark_of(&item.l, &item.lh, ts),
            right: mark_of(&item.r, &item.rh, ts),
        };
        if oh != item.lh {
            work.left.push((item.key.clone(), outcome.clone()));
            work.clear[0].extend(item.l.fields.keys().cloned());
            st.left = mark_of(&outcome, &oh, ts);
        }
        if oh != item.rh {
            work.right.push((item.key.clone(), outcome.clone()));
            work.clear[1].extend(item.r.fields.keys().cloned());
            st.right = mark_of(&outcome, &oh, ts);
        }
        work.states.push((item.key.clone(), Some(st)));
    }

    pub(super) fn strategy_name(&self) -> String {
        match &self.sync.strategy {
            Strategy::Resolver(n) => format!("resolver:{n}"),
            s => s.as_str().to_string(),
        }
    }

    pub(super) fn settle_conflicts(
        &mut self,
        items: Vec<(Item, Option<String>)>,
        now: i64,
        work: &mut Work,
    ) -> Result<(), PipelineError> {
        let mut ask: Vec<(Item, Option<String>)> = Vec::new();
        for (item, why) in items {
            self.stats.conflicts += 1;
            let ancestor = item.st.as_ref().map(|s| &s.ancestor).filter(|a| !a.deleted);
            match decide::settle(&self.sync, &item.l, &item.r, ancestor, now) {
                Settled::Take { mut version, how } => {
                    decide::apply_owned(&self.sync, &mut version, &item.l, &item.r);
                    let how = outcome_name(&version, &item, how);
                    let by = format!("strategy {}", self.sync.strategy);
                    self.record_settled(&item, &version, how, &by, why.as_deref(), None, work);
                    self.apply_outcome(&item, version, work);
                }
                Settled::Queue(reason) => self.queue(&item, &reason, why.as_deref(), work),
                Settled::AskResolver => ask.push((item, why)),
            }
        }
        if ask.is_empty() {
            return Ok(());
        }
        let Some((name, digest, _)) = self
            .resolver
            .as_ref()
            .map(|r| (r.0.clone(), r.1.clone(), ()))
        else {
            return Err(PipelineError::Internal(
                "strategy resolver without a resolver".into(),
            ));
        };
        let none = indexmap::IndexMap::new();
        let l_rows: Vec<(&str, &Version)> =
            ask.iter().map(|(i, _)| (i.key.as_str(), &i.l)).collect();
        let r_rows: Vec<(&str, &Version)> =
            ask.iter().map(|(i, _)| (i.key.as_str(), &i.r)).collect();
        let absent = Version::absent();
        let a_rows: Vec<(&str, &Version)> = ask
            .iter()
            .map(|(i, _)| {
                (
                    i.key.as_str(),
                    i.st.as_ref().map(|s| &s.ancestor).unwrap_or(&absent),
                )
            })
            .collect();
        let origin = origin(&self.pipeline);
        let (lb, rb, ab) = (
            record::batch_of(&l_rows, &none, &origin, &[]),
            record::batch_of(&r_rows, &none, &origin, &[]),
            record::batch_of(&a_rows, &none, &origin, &[]),
        );
        let answer = match self.retry("resolve", &name, |e| match e.resolver.as_mut() {
            Some(r) => r.2.resolve(&lb, &rb, &ab),
            None => Err(CallError::Fatal("no resolver".into())),
        }) {
            Ok(a) => a,
            // A resolver that fails (after its retries) decides nothing:
            // its conflicts wait for a person, with the error as reason.
            Err(PipelineError::Sync { error, .. }) => {
                let reason = format!("resolver `{name}` failed: {error}");
                for (item, why) in &ask {
                    self.queue(item, &reason, why.as_deref(), work);
                }
                return Ok(());
            }
            Err(other) => return Err(other),
        };
        let merged = answer.merged;
        let merged_ok = merged.check().is_ok();
        for (i, (item, why)) in ask.into_iter().enumerate() {
            use ferry_host::Resolution;
            let by = format!("resolver `{name}`");
            let plugin = Some((name.as_str(), digest.as_str()));
            let chosen = match answer.decisions.get(i) {
                Some(Resolution::TakeLeft) => Ok((item.l.clone(), "left")),
                Some(Resolution::TakeRight) => Ok((item.r.clone(), "right")),
                Some(Resolution::Merged(n)) if merged_ok && (*n as usize) < merged.len() => {
                    let mut v = record::version_of(
                        &merged,
                        *n as usize,
                        &Default::default(),
                        self.fields.as_deref(),
                    );
                    if v.deleted {
                        v = Version::absent();
                    }
                    Ok((v, "merged"))
                }
                Some(Resolution::Merged(n)) => Err(format!(
                    "resolver `{name}` answered merged({n}), which is not a row of its merged batch"
                )),
                Some(Resolution::Defer(reason)) => {
                    Err(format!("resolver `{name}` deferred: {reason}"))
                }
                None => Err(format!(
                    "resolver `{name}` gave no decision for this conflict"
                )),
            };
            match chosen {
                Ok((mut version, how)) => {
                    decide::apply_owned(&self.sync, &mut version, &item.l, &item.r);
                    let how = outcome_name(&version, &item, how);
                    self.record_settled(&item, &version, how, &by, why.as_deref(), plugin, work);
                    self.apply_outcome(&item, version, work);
                }
                Err(reason) => self.queue(&item, &reason, why.as_deref(), work),
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn record_settled(
        &self,
        item: &Item,
        version: &Version,
        how: &str,
        by: &str,
        detected: Option<&str>,
        plugin: Option<(&str, &str)>,
        work: &mut Work,
    ) {
        let mut detail = self.conflict_detail("settled", item);
        detail.extend([
            ("validator_found".to_string(), detected.into()),
            ("outcome".to_string(), how.into()),
            ("result".to_string(), version.to_plain()),
            ("decided_by".to_string(), by.into()),
        ]);
        let detail = serde_json::Value::Object(detail);
        work.audit.push(self.audit(&item.key, detail, plugin));
    }

    /// What every audit event of a detected conflict holds: the key, both
    /// versions, the ancestor, the strategy, the detection, when.
    pub(super) fn conflict_detail(
        &self,
        event: &str,
        item: &Item,
    ) -> serde_json::Map<String, serde_json::Value> {
        let ancestor = item
            .st
            .as_ref()
            .map_or(serde_json::Value::Null, |s| s.ancestor.to_plain());
        let serde_json::Value::Object(map) = serde_json::json!({
            "event": event,
            "key": item.key,
            "left": item.l.to_plain(),
            "right": item.r.to_plain(),
            "ancestor": ancestor,
            "strategy": self.strategy_name(),
            "detected_by": self.sync.detect.as_str(),
            "at": ferry_host::batch::rfc3339_micros(now_us()),
        }) else {
            return serde_json::Map::new();
        };
        map
    }

    pub(super) fn queue(
        &mut self,
        item: &Item,
        reason: &str,
        detected: Option<&str>,
        work: &mut Work,
    ) {
        self.stats.queued += 1;
        let ancestor = item
            .st
            .as_ref()
            .map(|s| s.ancestor.to_stored())
            .unwrap_or(serde_json::Value::Null);
        let reason = match detected {
            Some(d) => format!("{reason} (validator: {d})"),
            None => reason.to_string(),
        };
        work.queue.push((
            item.key.clone(),
            NewConflict {
                key: item.key.clone(),
                left: item.l.to_stored(),
                right: item.r.to_stored(),
                ancestor,
                strategy: self.strategy_name(),
                reason: reason.clone(),
            },
            (item.lh.clone(), item.rh.clone()),
        ));
        let mut detail = self.conflict_detail("queued", item);
        detail.extend([
            ("outcome".to_string(), "queued".into()),
            ("reason".to_string(), reason.into()),
            (
                "decided_by".to_string(),
                "nobody yet: `ferry conflicts resolve`".into(),
            ),
        ]);
        let detail = serde_json::Value::Object(detail);
        work.audit.push(self.audit(&item.key, detail, None));
    }

    /// Applies the decisions people made with `ferry conflicts resolve`,
    /// each only while both sides still hold the versions it was made on;
    /// a stale one reopens its conflict instead.
    pub(super) fn apply_decisions(&mut self) -> Result<(), PipelineError> {
        let decided = self.state.conflicts(&ConflictFilter {
            pipeline: Some(self.pipeline.clone()),
            statuses: vec![ConflictStatus::Decided],
            key: None,
        })?;
        if decided.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = decided.iter().map(|c| c.key.clone()).collect();
        let lefts = self.fetch(Side::Left, &keys)?;
        let rights = self.fetch(Side::Right, &keys)?;
        let mut work = Work::default();
        let ts = self.sync.timestamp_field.clone();
        for c in decided {
            // What the decision was made on. A decision recorded before
            // these were stored: the queued versions, which the engine
            // never refreshes once a conflict is decided.
            let on_left = c.decided_left.as_ref().unwrap_or(&c.left);
            let on_right = c.decided_right.as_ref().unwrap_or(&c.right);
            let (Some(on_l), Some(on_r)) = (
                Version::from_stored(on_left),
                Version::from_stored(on_right),
            ) else {
                tracing::error!(pipeline = %self.pipeline, id = c.id, "conflict {} has unreadable versions; resolve it again", c.id);
                continue;
            };
            let chosen = match c.decision {
                Some(Choice::Left) => Some(on_l.clone()),
                Some(Choice::Right) => Some(on_r.clone()),
                _ => c.merged.as_ref().and_then(Version::from_stored),
            };
            let Some(version) = chosen else {
                tracing::error!(pipeline = %self.pipeline, id = c.id, "conflict {} has an unreadable decision; resolve it again", c.id);
                continue;
            };
            let item = Item::new(&c.key, &lefts, &rights, None);
            let changed: Vec<&str> = [
                ("left", &item.l, &item.lh, &on_l),
                ("right", &item.r, &item.rh, &on_r),
            ]
            .into_iter()
            .filter(|(_, now, hash, seen)| {
                !decide::still_holds(&self.sync.detect, now, hash, seen, ts.as_deref())
            })
            .map(|(side, ..)| side)
            .collect();
            let decision = c.decision.map(Choice::as_str).unwrap_or_default();
            let by = c.decided_by.clone().unwrap_or_else(|| "?".to_string());
            let decided_at = c.decided_at_us.map(ferry_host::batch::rfc3339_micros);
            if !changed.is_empty() {
                let sides = match changed.as_slice() {
                    [one] => format!("the {one} side"),
                    _ => "both sides".to_string(),
                };
                let note = format!(
                    "the decision `take {decision}` by {by}{} was not applied: {sides} changed after it was made; decide again on the current versions",
                    decided_at
                        .as_deref()
                        .map(|t| format!(" at {t}"))
                        .unwrap_or_default(),
                );
                tracing::warn!(pipeline = %self.pipeline, key = %c.key, "conflict {}: {note} (`ferry conflicts show {}`)", c.id, c.id);
                let detail = serde_json::json!({
                    "event": "stale",
                    "conflict": c.id,
                    "key": c.key,
                    "strategy": c.strategy,
                    "outcome": "reopened",
                    "decision": c.decision,
                    "not_written": version.to_plain(),
                    "changed": changed,
                    "decided_on": {"left": on_l.to_plain(), "right": on_r.to_plain()},
                    "left": item.l.to_plain(),
                    "right": item.r.to_plain(),
                    "decided_by": c.decided_by,
                    "decided_at": decided_at,
                    "at": ferry_host::batch::rfc3339_micros(now_us()),
                });
                work.audit.push(self.audit(&c.key, detail, None));
                work.reopen.push(ferry_state::Reopen {
                    id: c.id,
                    left: item.l.to_stored(),
                    right: item.r.to_stored(),
                    note,
                });
                work.reblocked
                    .push((c.key.clone(), (c.id, item.lh.clone(), item.rh.clone())));
                self.stats.stale += 1;
                continue;
            }
            let detail = serde_json::json!({
                "event": "applied",
                "conflict": c.id,
                "key": c.key,
                "strategy": c.strategy,
                "outcome": c.decision,
                "decision": c.decision,
                "left": item.l.to_plain(),
                "right": item.r.to_plain(),
                "result": version.to_plain(),
                "decided_by": c.decided_by,
                "decided_at": decided_at,
                "at": ferry_host::batch::rfc3339_micros(now_us()),
            });
            work.audit.push(self.audit(&c.key, detail, None));
            self.apply_outcome(&item, version, &mut work);
            work.resolved.push(c.id);
            work.unblocked.push(c.key.clone());
            self.stats.applied += 1;
        }
        self.finish(work, None, 0)
    }
}

/// What an outcome is, once owned fields are applied: `left` or `right`
/// when it equals that side, else `merged` (or the settlement's own name).
pub(super) fn outcome_name(version: &Version, item: &Item, how: &'static str) -> &'static str {
    let hash = version.hash();
    if hash == item.lh {
        "left"
    } else if hash == item.rh {
        "right"
    } else if how == "left" || how == "right" {
        "merged"
    } else {
        how
    }
}
