//! The reaper: one thread per hub (`ferry-sql-reaper`, started with the
//! first transaction) that rolls back transactions held past their
//! connection's `transaction_timeout` while the plugin holding them does
//! nothing.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::lock;
use super::transaction::TxShared;

/// The thread that rolls back transactions held past their connection's
/// `transaction_timeout` while the plugin holding them does nothing.
#[derive(Default)]
pub(crate) struct Reaper {
    state: Mutex<ReaperState>,
    wake: Condvar,
}

#[derive(Default)]
struct ReaperState {
    /// Every transaction begun since the reaper last looked, and every one
    /// still open then.
    watched: Vec<Weak<TxShared>>,
    started: bool,
    /// Something was added since the reaper last looked.
    woken: bool,
    closed: bool,
}

impl Reaper {
    pub(crate) fn watch(self: &Arc<Self>, tx: &Arc<TxShared>) {
        let mut state = lock(&self.state);
        if !state.started {
            let me = self.clone();
            match std::thread::Builder::new()
                .name("ferry-sql-reaper".into())
                .spawn(move || me.run())
            {
                Ok(_) => state.started = true,
                Err(e) => {
                    // Calls still find an expired transaction and roll it back.
                    tracing::warn!(
                        error = %e,
                        "cannot start the thread that rolls back transactions held too long"
                    );
                    return;
                }
            }
        }
        state.watched.push(Arc::downgrade(tx));
        state.woken = true;
        drop(state);
        self.wake.notify_all();
    }

    pub(crate) fn close(&self) {
        lock(&self.state).closed = true;
        self.wake.notify_all();
    }

    fn run(self: Arc<Self>) {
        let mut state = lock(&self.state);
        loop {
            if state.closed {
                return;
            }
            let seen = state.watched.len();
            let watched = state.watched.clone();
            state.woken = false;
            drop(state);
            // Rolling back blocks on the database: not under the lock.
            let now = Instant::now();
            let mut next: Option<Instant> = None;
            let mut keep = Vec::with_capacity(watched.len());
            for weak in watched {
                let Some(tx) = weak.upgrade() else { continue };
                if !tx.open.load(Ordering::Acquire) {
                    continue;
                }
                let again = if tx.expires <= now {
                    tx.try_expire()
                } else {
                    Some(tx.expires)
                };
                if let Some(at) = again {
                    next = Some(next.map_or(at, |n| n.min(at)));
                    keep.push(weak);
                }
            }
            state = lock(&self.state);
            let at = seen.min(state.watched.len());
            let added = state.watched.split_off(at);
            state.watched = keep;
            state.watched.extend(added);
            if state.woken || state.closed {
                continue;
            }
            let wait = next.map_or(Duration::from_secs(3600), |at| {
                at.saturating_duration_since(Instant::now())
            });
            state = self
                .wake
                .wait_timeout(state, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}
