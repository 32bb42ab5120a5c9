//! The ledger against a model, over random interleavings of what the tasks of
//! a running pipeline do to it (`run.rs` is the reference for the calls):
//!
//! - the source opens a batch with its checkpoint and holds its first piece;
//! - a stage holding a live piece forwards parts of it to one or more outputs
//!   (`add_piece` before the send; a `when` route may select no record, a
//!   splitting mapper may repeat one), marks some of its records (a sink's
//!   flush marks them written, a dead letter marks them dead-lettered), and
//!   ends it (`done_piece`), in any order across pieces and stages;
//! - retries and bisected calls show up as the same records marked again,
//!   with the same or another state;
//! - the committer takes what is committable at any moment;
//! - a stage fails: pieces still on their way never end, the committer takes
//!   what it can one last time (or not at all, when the process is killed),
//!   and the next run starts again from the committed checkpoint with a new
//!   ledger, reading again what was not committed.
//!
//! Checked after every step: the checkpoint handed out never passes a record
//! that is still on its way; it closes exactly the complete batches at the
//! front; each record is committed exactly once, in the worst state any of
//! its parts reached; and `read = written + dead_lettered + filtered + in
//! flight` holds for the run, and the committed counts balance over all runs.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::Index;

use super::*;

#[derive(Debug, Clone)]
enum Op {
    /// The source reads a batch of `rows` records.
    Open { rows: usize },
    /// A live piece is forwarded to `copies` outputs; `pick` chooses, for
    /// each output, how many times each record goes (0, 1 or 2).
    Forward {
        piece: Index,
        copies: usize,
        pick: u64,
    },
    /// Some records of a live piece reach a state.
    Mark {
        piece: Index,
        pick: u64,
        state: RowState,
    },
    /// A live piece reaches its end.
    Done { piece: Index },
    /// The committer takes what it can.
    Take,
    /// A stage fails; the next run starts from the committed checkpoint.
    Crash { graceful: bool },
}

fn op() -> impl Strategy<Value = Op> {
    let state = prop_oneof![
        Just(RowState::Filtered),
        Just(RowState::Written),
        Just(RowState::DeadLettered),
    ];
    prop_oneof![
        3 => (0usize..6).prop_map(|rows| Op::Open { rows }),
        4 => (any::<Index>(), 1usize..=3, any::<u64>())
            .prop_map(|(piece, copies, pick)| Op::Forward { piece, copies, pick }),
        // Few bits set, so the same records are often marked again.
        5 => (any::<Index>(), any::<u64>(), any::<u64>(), state)
            .prop_map(|(piece, a, b, state)| Op::Mark { piece, pick: a & b, state }),
        6 => any::<Index>().prop_map(|piece| Op::Done { piece }),
        2 => Just(Op::Take),
        1 => any::<bool>().prop_map(|graceful| Op::Crash { graceful }),
    ]
}

/// A piece on its way: the source batch it belongs to and, for each of its
/// records, its index in that batch.
#[derive(Debug)]
struct Piece {
    seq: u64,
    origins: Vec<u32>,
}

/// A batch opened and not yet committed.
#[derive(Debug)]
struct Batch {
    /// Offset of its first record in the source.
    start: u64,
    /// The worst state each record's parts reached so far.
    expected: Vec<RowState>,
}

impl Batch {
    fn end(&self) -> u64 {
        self.start + self.expected.len() as u64
    }
}

/// One run: its ledger and what the model expects of it.
struct Run {
    ledger: Ledger,
    live: Vec<Piece>,
    open: BTreeMap<u64, Batch>,
    next_seq: u64,
    /// The source's position: offset of the next record it reads.
    next_offset: u64,
    read: u64,
    committed: Accounting,
}

impl Run {
    fn starting_at(offset: u64) -> Run {
        Run {
            ledger: Ledger::default(),
            live: Vec::new(),
            open: BTreeMap::new(),
            next_seq: 0,
            next_offset: offset,
            read: 0,
            committed: Accounting::default(),
        }
    }
}

/// The source and the durable state, across runs.
struct World {
    run: Run,
    /// The committed source checkpoint: an offset.
    durable: u64,
    /// Committed accounting over every run.
    total: Accounting,
    /// For each source record, the state it was committed in.
    finals: Vec<Option<RowState>>,
}

fn checkpoint(offset: u64) -> Vec<u8> {
    offset.to_be_bytes().to_vec()
}

fn count(a: &mut Accounting, s: RowState) {
    a.read += 1;
    match s {
        RowState::Filtered => a.filtered += 1,
        RowState::Written => a.written += 1,
        RowState::DeadLettered => a.dead_lettered += 1,
    }
}

impl World {
    fn new() -> World {
        World {
            run: Run::starting_at(0),
            durable: 0,
            total: Accounting::default(),
            finals: Vec::new(),
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let run = &mut self.run;
        match op {
            Op::Open { rows } => {
                let seq = run.next_seq;
                run.next_seq += 1;
                let start = run.next_offset;
                run.next_offset += *rows as u64;
                run.read += *rows as u64;
                run.ledger.open(seq, *rows, checkpoint(run.next_offset));
                run.open.insert(
                    seq,
                    Batch {
                        start,
                        expected: vec![RowState::Filtered; *rows],
                    },
                );
                run.live.push(Piece {
                    seq,
                    origins: (0..*rows as u32).collect(),
                });
            }
            Op::Forward {
                piece,
                copies,
                pick,
            } => {
                if run.live.is_empty() {
                    return Ok(());
                }
                let i = piece.index(run.live.len());
                let (seq, parent) = (run.live[i].seq, run.live[i].origins.clone());
                for c in 0..*copies {
                    let bits = pick.rotate_left(17 * c as u32);
                    let mut origins = Vec::new();
                    for (j, &o) in parent.iter().enumerate() {
                        let times = match (bits >> ((2 * j) % 64)) & 3 {
                            0 => 0,
                            3 => 2,
                            _ => 1,
                        };
                        origins.extend(std::iter::repeat_n(o, times));
                    }
                    run.ledger.add_piece(seq);
                    run.live.push(Piece { seq, origins });
                }
            }
            Op::Mark { piece, pick, state } => {
                if run.live.is_empty() {
                    return Ok(());
                }
                let p = &run.live[piece.index(run.live.len())];
                let marked: Vec<u32> = p
                    .origins
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| pick >> (j % 64) & 1 == 1)
                    .map(|(_, &o)| o)
                    .collect();
                let batch = run
                    .open
                    .get_mut(&p.seq)
                    .ok_or_else(|| TestCaseError::fail("a live piece of a committed batch"))?;
                for &o in &marked {
                    let s = &mut batch.expected[o as usize];
                    *s = (*s).max(*state);
                }
                run.ledger.mark(p.seq, marked, *state);
            }
            Op::Done { piece } => {
                if run.live.is_empty() {
                    return Ok(());
                }
                let p = run.live.swap_remove(piece.index(run.live.len()));
                run.ledger.done_piece(p.seq);
            }
            Op::Take => self.take()?,
            Op::Crash { graceful } => {
                if *graceful {
                    self.take()?;
                }
                self.run = Run::starting_at(self.durable);
            }
        }
        self.check()
    }

    /// The committer's step: the ledger must hand out exactly the complete
    /// batches at the front.
    fn take(&mut self) -> Result<(), TestCaseError> {
        let run = &mut self.run;
        let got = run.ledger.take_committable();
        let complete: Vec<u64> = run
            .open
            .keys()
            .copied()
            .take_while(|seq| !run.live.iter().any(|p| p.seq == *seq))
            .collect();
        let Some(c) = got else {
            prop_assert!(
                complete.is_empty(),
                "batches {complete:?} are complete but nothing was committable"
            );
            return Ok(());
        };
        prop_assert!(!complete.is_empty(), "a checkpoint with no complete batch");
        let mut closed = Accounting::default();
        let mut end = self.durable;
        for seq in complete {
            let Some(b) = run.open.remove(&seq) else {
                continue;
            };
            prop_assert_eq!(b.start, end, "batches are contiguous from the checkpoint");
            end = b.end();
            if self.finals.len() < end as usize {
                self.finals.resize(end as usize, None);
            }
            for (i, s) in b.expected.iter().enumerate() {
                let r = b.start as usize + i;
                prop_assert!(self.finals[r].is_none(), "record {r} committed twice");
                self.finals[r] = Some(*s);
                count(&mut closed, *s);
            }
        }
        prop_assert_eq!(
            &c.checkpoint,
            &checkpoint(end),
            "the checkpoint closes them"
        );
        // The checkpoint never passes a record still on its way.
        for p in &run.live {
            let start = run.open.get(&p.seq).map(|b| b.start);
            prop_assert!(
                start.is_some_and(|s| s >= end),
                "checkpoint {end} passes a live piece of batch {}",
                p.seq
            );
        }
        prop_assert_eq!(c.closed, closed, "each record in its worst state");
        prop_assert!(c.closed.balances());
        self.durable = end;
        run.committed.add(&c.closed);
        self.total.add(&c.closed);
        Ok(())
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let run = &self.run;
        let in_flight: u64 = run.open.values().map(|b| b.expected.len() as u64).sum();
        prop_assert_eq!(run.ledger.read(), run.read);
        prop_assert_eq!(
            run.read,
            run.committed.written
                + run.committed.dead_lettered
                + run.committed.filtered
                + in_flight,
            "read = written + dead_lettered + filtered + in flight"
        );
        prop_assert!(run.committed.balances());
        prop_assert_eq!(run.ledger.in_flight(), run.open.len());
        // Every record before the checkpoint was committed once, in one state.
        prop_assert!(self.total.balances());
        prop_assert_eq!(self.total.read, self.durable);
        let mut by_state = Accounting::default();
        for s in self.finals.iter().take(self.durable as usize) {
            match s {
                Some(s) => count(&mut by_state, *s),
                None => prop_assert!(false, "a record before the checkpoint has no state"),
            }
        }
        prop_assert_eq!(by_state, self.total);
        Ok(())
    }

    /// Ends every piece still on its way: everything must then commit.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        while let Some(p) = self.run.live.pop() {
            self.run.ledger.done_piece(p.seq);
        }
        self.take()?;
        self.check()?;
        prop_assert!(self.run.open.is_empty(), "complete batches left behind");
        prop_assert_eq!(self.run.ledger.in_flight(), 0);
        prop_assert_eq!(self.durable, self.run.next_offset);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_ledger_commits_every_record_once_and_never_ahead(
        ops in prop::collection::vec(op(), 0..200)
    ) {
        let mut world = World::new();
        for op in &ops {
            world.apply(op)?;
        }
        world.drain()?;
    }
}
