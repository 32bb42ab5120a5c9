//! Where every source record stands, and which checkpoint may be committed.
//!
//! Each batch a source produces gets a sequence number and an entry here: one
//! state per record (filtered, written or dead-lettered, the worst one wins)
//! and a count of the pieces of it still moving through the stages. A stage
//! that forwards part of a batch adds a piece before it finishes its own, so
//! the count reaches zero only when every part of the batch has reached a
//! sink, the dead-letter store, or was dropped. A source checkpoint is
//! committed only when every batch up to it is complete, so the committed
//! checkpoint never passes a record that is still on its way.
//!
//! The dead letters of a batch wait here with it, and go to the state store
//! in the commit that closes the batch: a crash before that commit loses
//! both the letters and the checkpoint, so the next run reads the records
//! again and dead-letters them once more, never twice.

use std::collections::BTreeMap;
use std::sync::Mutex;

use ferry_state::{Accounting, DeadLetter};

/// The final state of one source record. Order matters: when parts of one
/// record end differently, the highest state is the record's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum RowState {
    /// Dropped on purpose, or no route matched (the default).
    Filtered = 0,
    /// Written by a sink.
    Written = 1,
    /// Dead-lettered (its letter is stored with the batch's commit).
    DeadLettered = 2,
}

struct Entry {
    states: Vec<RowState>,
    pending: usize,
    checkpoint: Vec<u8>,
    /// Exactly-once sinks' tokens after writing this batch: (stage, token).
    sink_tokens: Vec<(String, Vec<u8>)>,
    /// Dead letters of its records, until the batch is committed.
    letters: Vec<DeadLetter>,
}

/// What may be committed now.
#[derive(Debug, Clone, PartialEq)]
pub struct Committable {
    /// The source checkpoint just past the completed batches.
    pub checkpoint: Vec<u8>,
    /// The accounting of the records those batches held.
    pub closed: Accounting,
    /// For each exactly-once sink that wrote any of those batches, its
    /// token after the last of them: committed with the checkpoint.
    pub sink_tokens: Vec<(String, Vec<u8>)>,
    /// The dead letters of those records, to store in the same commit.
    pub dead_letters: Vec<DeadLetter>,
}

/// The record ledger of one running pipeline.
#[derive(Default)]
pub struct Ledger {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    batches: BTreeMap<u64, Entry>,
    read: u64,
}

impl Ledger {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a source batch of `rows` records, with one piece held by the
    /// source itself until it has forwarded the batch.
    pub fn open(&self, seq: u64, rows: usize, checkpoint: Vec<u8>) {
        let mut inner = self.lock();
        inner.read += rows as u64;
        inner.batches.insert(
            seq,
            Entry {
                states: vec![RowState::Filtered; rows],
                pending: 1,
                checkpoint,
                sink_tokens: Vec::new(),
                letters: Vec::new(),
            },
        );
    }

    /// Records that another piece of batch `seq` is on its way.
    pub fn add_piece(&self, seq: u64) {
        if let Some(e) = self.lock().batches.get_mut(&seq) {
            e.pending += 1;
        }
    }

    /// Sets the state of some records of batch `seq` (keeping a worse one).
    pub fn mark(&self, seq: u64, origins: impl IntoIterator<Item = u32>, state: RowState) {
        let mut inner = self.lock();
        if let Some(e) = inner.batches.get_mut(&seq) {
            for r in origins {
                if let Some(s) = e.states.get_mut(r as usize)
                    && *s < state
                {
                    *s = state;
                }
            }
        }
    }

    /// Records an exactly-once sink's token after it wrote (its part of)
    /// batch `seq`, replacing an earlier one of the same stage.
    pub fn sink_token(&self, seq: u64, stage: &str, token: Vec<u8>) {
        if let Some(e) = self.lock().batches.get_mut(&seq) {
            match e.sink_tokens.iter_mut().find(|(s, _)| s == stage) {
                Some((_, t)) => *t = token,
                None => e.sink_tokens.push((stage.to_string(), token)),
            }
        }
    }

    /// Marks records of batch `seq` dead-lettered and keeps their `letters`
    /// until the batch is committed.
    pub fn dead_letter(
        &self,
        seq: u64,
        origins: impl IntoIterator<Item = u32>,
        letters: Vec<DeadLetter>,
    ) {
        let mut inner = self.lock();
        if let Some(e) = inner.batches.get_mut(&seq) {
            for r in origins {
                if let Some(s) = e.states.get_mut(r as usize) {
                    *s = RowState::DeadLettered;
                }
            }
            e.letters.extend(letters);
        }
    }

    /// A piece of batch `seq` reached its end.
    pub fn done_piece(&self, seq: u64) {
        if let Some(e) = self.lock().batches.get_mut(&seq) {
            e.pending = e.pending.saturating_sub(1);
        }
    }

    /// Removes the completed batches at the front and returns the checkpoint
    /// and accounting they close, if any.
    pub fn take_committable(&self) -> Option<Committable> {
        let mut inner = self.lock();
        let mut closed = Accounting::default();
        let mut checkpoint = None;
        let mut sink_tokens: Vec<(String, Vec<u8>)> = Vec::new();
        let mut dead_letters = Vec::new();
        while let Some(entry) = inner.batches.first_entry() {
            if entry.get().pending > 0 {
                break;
            }
            let e = entry.remove();
            // Batches come in order: a later token of a stage replaces an
            // earlier one.
            for (stage, token) in e.sink_tokens {
                match sink_tokens.iter_mut().find(|(s, _)| *s == stage) {
                    Some((_, t)) => *t = token,
                    None => sink_tokens.push((stage, token)),
                }
            }
            closed.read += e.states.len() as u64;
            for s in &e.states {
                match s {
                    RowState::Filtered => closed.filtered += 1,
                    RowState::Written => closed.written += 1,
                    RowState::DeadLettered => closed.dead_lettered += 1,
                }
            }
            dead_letters.extend(e.letters);
            checkpoint = Some(e.checkpoint);
        }
        checkpoint.map(|checkpoint| Committable {
            checkpoint,
            closed,
            sink_tokens,
            dead_letters,
        })
    }

    /// Records read so far (committed or not).
    pub fn read(&self) -> u64 {
        self.lock().read
    }

    /// Batches not yet complete.
    pub fn in_flight(&self) -> usize {
        self.lock().batches.len()
    }
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_waits_for_the_lowest_incomplete_batch() {
        let l = Ledger::default();
        l.open(0, 2, b"a".to_vec());
        l.open(1, 1, b"b".to_vec());
        // Batch 1 completes first: nothing may be committed yet.
        l.mark(1, [0], RowState::Written);
        l.done_piece(1);
        assert_eq!(l.take_committable(), None);
        // Batch 0 forwards to two sinks, one rejects a record.
        l.add_piece(0);
        l.add_piece(0);
        l.done_piece(0);
        l.mark(0, [0, 1], RowState::Written);
        l.done_piece(0);
        assert_eq!(l.take_committable(), None);
        l.mark(0, [1], RowState::DeadLettered);
        l.mark(0, [1], RowState::Written);
        l.done_piece(0);
        let c = l.take_committable().expect("both batches complete");
        assert_eq!(c.checkpoint, b"b".to_vec());
        assert_eq!(
            c.closed,
            Accounting {
                read: 3,
                written: 2,
                dead_lettered: 1,
                filtered: 0
            }
        );
        assert!(c.closed.balances());
        assert_eq!(l.in_flight(), 0);
    }

    fn letter(key: &str) -> DeadLetter {
        DeadLetter {
            id: 0,
            pipeline: "p".into(),
            stage: "rules".into(),
            plugin_digest: "d".into(),
            reason: "invalid".into(),
            detail: "no email".into(),
            key: key.into(),
            record: serde_json::json!({ "id": key }),
            attempts: 1,
            created_at_us: 0,
        }
    }

    #[test]
    fn dead_letters_wait_for_their_batch_and_leave_with_its_commit() {
        let l = Ledger::default();
        l.open(0, 2, b"a".to_vec());
        l.open(1, 2, b"b".to_vec());
        l.dead_letter(1, [1], vec![letter("b1")]);
        l.done_piece(1);
        // Batch 1 is complete, batch 0 is not: its letter waits.
        assert_eq!(l.take_committable(), None);
        l.dead_letter(0, [0], vec![letter("a0")]);
        l.mark(0, [1], RowState::Written);
        l.done_piece(0);
        let c = l.take_committable().expect("both complete");
        assert_eq!(
            c.dead_letters
                .iter()
                .map(|d| d.key.as_str())
                .collect::<Vec<_>>(),
            ["a0", "b1"]
        );
        assert_eq!(
            c.closed,
            Accounting {
                read: 4,
                written: 1,
                dead_lettered: 2,
                filtered: 1
            }
        );
        // Handed out once.
        l.open(2, 1, b"c".to_vec());
        l.done_piece(2);
        let c = l.take_committable().expect("complete");
        assert!(c.dead_letters.is_empty());
    }

    #[test]
    fn a_commit_carries_each_sinks_token_after_its_last_committed_batch() {
        let l = Ledger::default();
        for seq in 0..3 {
            l.open(seq, 1, vec![seq as u8]);
        }
        // Two sinks: `a` writes batches 0 and 1, `b` only batch 0 (a route
        // sent it nothing else); batch 2 is written by `a` but not done.
        l.sink_token(0, "a", b"a0".to_vec());
        l.sink_token(0, "b", b"b0".to_vec());
        l.sink_token(1, "a", b"a1".to_vec());
        // A rebuilt instance wrote batch 1 again: its new token wins.
        l.sink_token(1, "a", b"a1'".to_vec());
        l.sink_token(2, "a", b"a2".to_vec());
        l.done_piece(0);
        l.done_piece(1);
        let c = l.take_committable().expect("batches 0 and 1");
        assert_eq!(c.checkpoint, vec![1]);
        assert_eq!(
            c.sink_tokens,
            vec![
                ("a".to_string(), b"a1'".to_vec()),
                ("b".to_string(), b"b0".to_vec())
            ]
        );
        l.done_piece(2);
        let c = l.take_committable().expect("batch 2");
        assert_eq!(c.sink_tokens, vec![("a".to_string(), b"a2".to_vec())]);
    }

    #[test]
    fn records_nobody_took_are_filtered() {
        let l = Ledger::default();
        l.open(7, 3, vec![]);
        l.mark(7, [2], RowState::Written);
        l.done_piece(7);
        let c = l.take_committable().expect("complete");
        assert_eq!(
            c.closed,
            Accounting {
                read: 3,
                written: 1,
                dead_lettered: 0,
                filtered: 2
            }
        );
    }
}
