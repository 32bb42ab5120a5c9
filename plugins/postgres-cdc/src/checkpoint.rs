//! The source's position, and its encoding as checkpoint bytes.
//!
//! A checkpoint is a small JSON object (so it can be read in `ferry status`
//! and evolve by adding fields), with a version number:
//!
//! ```json
//! {"v":1,"slot":"ferry_orders","lsn":26367232,
//!  "partial":{"commit":26367184,"done":500},
//!  "snapshot":{"xmin":729,"xmax":731,"xip":[730],"until":26367000},
//!  "copy":{"table":1,"name":"public.items","after":["42"]}}
//! ```
//!
//! - `lsn`: every transaction whose commit record ends at or before this
//!   WAL position was emitted (it is a `Commit`'s `end_lsn`, or the slot's
//!   start). This is what `commit` advances the slot to.
//! - `partial`: the transaction whose commit record is at `commit` was cut
//!   between two polls; its first `done` row changes were emitted. Only
//!   transactions larger than a batch are cut.
//! - `snapshot`: the initial copy's snapshot while its visibility rule still
//!   matters (see [`crate::visibility`]).
//! - `copy`: the initial copy is under way: the next rows come from table
//!   number `table` (named `name`), after the key `after` (text forms).

use crate::visibility::Snapshot;

/// The current checkpoint format.
const VERSION: u32 = 1;

/// A transaction cut between polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Partial {
    /// The LSN of its commit record.
    pub commit: u64,
    /// How many of its row changes (`I`, `U`, `D`, `T` messages) were
    /// emitted.
    pub done: u64,
}

/// How far the initial copy went.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Copy {
    /// Index of the table being copied in the configured `tables`.
    pub table: usize,
    /// Its name, to refuse a checkpoint made for another table list.
    pub name: String,
    /// The text form of the last key copied, one entry per key column;
    /// `None` before the table's first row.
    pub after: Option<Vec<String>>,
}

/// Where the source stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// The format version.
    pub v: u32,
    /// The replication slot this position belongs to.
    pub slot: String,
    /// Every transaction ending at or before this LSN was emitted.
    pub lsn: u64,
    /// A transaction emitted in part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<Partial>,
    /// The initial copy's snapshot, while it matters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Snapshot>,
    /// The initial copy's progress, while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy: Option<Copy>,
}

impl Checkpoint {
    /// A position at `lsn` of `slot`, with nothing else.
    pub fn at(slot: &str, lsn: u64) -> Checkpoint {
        Checkpoint {
            v: VERSION,
            slot: slot.to_owned(),
            lsn,
            partial: None,
            snapshot: None,
            copy: None,
        }
    }

    /// The checkpoint bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads checkpoint bytes made for `slot`.
    pub fn decode(bytes: &[u8], slot: &str) -> Result<Checkpoint, String> {
        #[derive(serde::Deserialize)]
        struct Version {
            v: u32,
        }
        let version: Version = serde_json::from_slice(bytes).map_err(|_| {
            format!(
                "the checkpoint ({} bytes) was not made by the postgres CDC source",
                bytes.len()
            )
        })?;
        if version.v != VERSION {
            return Err(format!(
                "the checkpoint has format version {}; this build reads version {VERSION}",
                version.v
            ));
        }
        let cp: Checkpoint = serde_json::from_slice(bytes)
            .map_err(|e| format!("the checkpoint cannot be read: {e}"))?;
        if cp.slot != slot {
            return Err(format!(
                "the checkpoint was made for replication slot {:?}, not {slot:?}: a \
                 position in one slot means nothing for another. To start over with the new \
                 slot, remove this pipeline's state (its changes are then read from the slot's \
                 start, or copied again with snapshot = true)",
                cp.slot
            ));
        }
        Ok(cp)
    }
}

/// An LSN in PostgreSQL's text form, `16/B374D848`.
pub fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// Parses an LSN's text form.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    let hi = u32::from_str_radix(hi, 16).ok()?;
    let lo = u32::from_str_radix(lo, 16).ok()?;
    Some(u64::from(hi) << 32 | u64::from(lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut cp = Checkpoint::at("s", 0x1_0192_5500);
        assert_eq!(Checkpoint::decode(&cp.encode(), "s").unwrap(), cp);
        assert_eq!(
            String::from_utf8(cp.encode()).unwrap(),
            r#"{"v":1,"slot":"s","lsn":4321334528}"#
        );
        cp.partial = Some(Partial {
            commit: 0x1_0192_5600,
            done: 512,
        });
        cp.snapshot = Some(Snapshot::parse("10:20:12,15", 0x1_0000_0000).unwrap());
        cp.copy = Some(Copy {
            table: 1,
            name: "public.items".into(),
            after: Some(vec!["4".into(), "a\"b".into()]),
        });
        assert_eq!(Checkpoint::decode(&cp.encode(), "s").unwrap(), cp);
        // The largest LSN survives JSON.
        let top = Checkpoint::at("s", u64::MAX);
        assert_eq!(
            Checkpoint::decode(&top.encode(), "s").unwrap().lsn,
            u64::MAX
        );
    }

    #[test]
    fn refuses_foreign_checkpoints() {
        assert!(
            Checkpoint::decode(b"\x01\x02", "s")
                .unwrap_err()
                .contains("not made by")
        );
        assert!(
            Checkpoint::decode(br#"{"v":2,"slot":"s","lsn":1}"#, "s")
                .unwrap_err()
                .contains("version 2")
        );
        assert!(
            Checkpoint::decode(&Checkpoint::at("other", 1).encode(), "s")
                .unwrap_err()
                .contains("\"other\"")
        );
        assert!(Checkpoint::decode(br#"{"v":1,"slot":"s"}"#, "s").is_err());
    }

    #[test]
    fn lsn_text_forms() {
        assert_eq!(lsn_text(0x0192_5500), "0/1925500");
        assert_eq!(lsn_text(0x16_B374_D848), "16/B374D848");
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("FFFFFFFF/FFFFFFFF"), Some(u64::MAX));
        assert_eq!(parse_lsn("12"), None);
        assert_eq!(parse_lsn("x/1"), None);
    }
}
