//! The initial snapshot's visibility rule: which streamed transactions the
//! snapshot already contains.
//!
//! `pg_current_snapshot()` reports the snapshot the table copy reads with
//! as `xmin:xmax:xip1,xip2,...`, in 64-bit transaction ids (`xid8`: the
//! 32-bit xid with its wraparound epoch above it). A transaction is visible
//! in it, so its effects are in the copy, when it committed before the
//! snapshot was taken:
//!
//! - its id is below `xmin` (every transaction below it had finished), or
//! - its id is below `xmax` and not in the in-progress list `xip`.
//!
//! Ids at or above `xmax` started after the snapshot, and those in `xip`
//! were still running: both are invisible. Aborted transactions never reach
//! the stream, so "finished" means "committed" here.
//!
//! The `Begin` message carries the 32-bit xid only. Transactions seen while
//! streaming are close to the snapshot in time (far less than 2^31
//! transactions away), so the 32-bit id is widened to the 64-bit id nearest
//! to the snapshot's `xmax` with the same low 32 bits.

/// A snapshot of the copy, and the WAL position after which it is moot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// Every transaction below this had finished.
    pub xmin: u64,
    /// Every transaction from this on had not started.
    pub xmax: u64,
    /// Transactions in progress when the snapshot was taken.
    pub xip: Vec<u64>,
    /// `pg_current_wal_insert_lsn()` read after the snapshot was taken:
    /// a transaction whose commit record is at or after this LSN committed
    /// after the snapshot, so the rule is only needed below it.
    pub until: u64,
}

impl Snapshot {
    /// Parses `pg_current_snapshot()::text` (`xmin:xmax:xip,...`).
    pub fn parse(text: &str, until: u64) -> Result<Snapshot, String> {
        let bad = || format!("unexpected snapshot text {text:?}");
        let mut parts = text.split(':');
        let xmin = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let xmax = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let list = parts.next().ok_or_else(bad)?;
        if parts.next().is_some() {
            return Err(bad());
        }
        let mut xip = Vec::new();
        for x in list.split(',').filter(|s| !s.is_empty()) {
            xip.push(x.parse::<u64>().map_err(|_| bad())?);
        }
        xip.sort_unstable();
        if xmin > xmax {
            return Err(bad());
        }
        Ok(Snapshot {
            xmin,
            xmax,
            xip,
            until,
        })
    }

    /// The 64-bit id of the 32-bit `xid` (as in a `Begin` message): the
    /// one nearest to `xmax` with these low 32 bits.
    pub fn widen(&self, xid: u32) -> u64 {
        let epoch_base = self.xmax & !0xFFFF_FFFF;
        let candidate = epoch_base | u64::from(xid);
        let half = 1u64 << 31;
        if candidate > self.xmax.saturating_add(half) && candidate >= 1 << 32 {
            candidate - (1 << 32)
        } else if candidate.saturating_add(half) < self.xmax {
            candidate + (1 << 32)
        } else {
            candidate
        }
    }

    /// Whether the transaction with 64-bit id `xid` committed before the
    /// snapshot.
    pub fn sees(&self, xid: u64) -> bool {
        xid < self.xmin || (xid < self.xmax && self.xip.binary_search(&xid).is_err())
    }

    /// Whether a streamed transaction (32-bit `xid`, commit record at
    /// `commit_lsn`) is already in the copy and must be skipped.
    pub fn contains(&self, xid: u32, commit_lsn: u64) -> bool {
        commit_lsn < self.until && self.sees(self.widen(xid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pg_current_snapshot() {
        let s = Snapshot::parse("729:729:", 5).unwrap();
        assert_eq!(
            (s.xmin, s.xmax, s.xip.clone(), s.until),
            (729, 729, vec![], 5)
        );
        let s = Snapshot::parse("100:110:105,101", 0).unwrap();
        assert_eq!(s.xip, vec![101, 105]);
        for bad in ["", "1:2", "1:2:3:4", "a:2:", "3:2:", "1:2:x"] {
            assert!(Snapshot::parse(bad, 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn visibility_rule() {
        let s = Snapshot::parse("100:110:101,105", u64::MAX).unwrap();
        assert!(s.sees(3));
        assert!(s.sees(99));
        assert!(s.sees(100));
        assert!(!s.sees(101));
        assert!(s.sees(104));
        assert!(!s.sees(105));
        assert!(s.sees(109));
        assert!(!s.sees(110));
        assert!(!s.sees(5000));
        // An empty snapshot (xmin = xmax): everything before it is seen.
        let e = Snapshot::parse("729:729:", u64::MAX).unwrap();
        assert!(e.sees(728));
        assert!(!e.sees(729));
    }

    #[test]
    fn commit_after_until_is_never_contained() {
        let s = Snapshot::parse("100:110:", 1000).unwrap();
        assert!(s.contains(50, 999));
        assert!(!s.contains(50, 1000));
        assert!(!s.contains(120, 10));
    }

    #[test]
    fn widens_32_bit_xids_across_epochs() {
        let epoch = 1u64 << 32;
        // Epoch 5, far from a wraparound.
        let s = Snapshot::parse(&format!("{}:{}:", 5 * epoch + 1000, 5 * epoch + 1010), 0).unwrap();
        assert_eq!(s.widen(1005), 5 * epoch + 1005);
        assert_eq!(s.widen(999), 5 * epoch + 999);
        assert!(s.sees(s.widen(999)));
        assert!(!s.sees(s.widen(2000)));
        // Near the end of epoch 5: xids just after the wraparound belong to
        // epoch 6.
        let top = 6 * epoch - 10;
        let s = Snapshot::parse(&format!("{}:{}:", top - 5, top), 0).unwrap();
        assert_eq!(s.widen(0xFFFF_FFF0), 5 * epoch + 0xFFFF_FFF0);
        assert_eq!(s.widen(3), 6 * epoch + 3);
        assert!(!s.sees(s.widen(3)));
        assert!(s.sees(s.widen(0xFFFF_FFF0)));
        // Just after a wraparound: large 32-bit xids are from the epoch
        // before, and visible.
        let s = Snapshot::parse(&format!("{}:{}:", 6 * epoch + 3, 6 * epoch + 20), 0).unwrap();
        assert_eq!(s.widen(0xFFFF_FFFE), 5 * epoch + 0xFFFF_FFFE);
        assert!(s.sees(s.widen(0xFFFF_FFFE)));
        assert_eq!(s.widen(25), 6 * epoch + 25);
        assert!(!s.sees(s.widen(25)));
        // Epoch 0: nothing below zero.
        let s = Snapshot::parse("10:20:", 0).unwrap();
        assert_eq!(s.widen(0xFFFF_FFF0), 0xFFFF_FFF0);
        assert!(!s.sees(s.widen(0xFFFF_FFF0)));
    }
}
