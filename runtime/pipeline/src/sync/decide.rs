//! The decisions of two-way sync, without any I/O: has a side changed since
//! the last sync, is it a conflict, and what a strategy makes of one.

use std::collections::BTreeSet;

use ferry_manifest::{Detect, Side, Strategy, SyncSpec};
use serde::{Deserialize, Serialize};

use super::record::{Value, Version};

/// What ferry last saw of a key on one side, once synced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    /// The content checksum.
    pub hash: String,
    /// The side's version number, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// The version's timestamp, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<i64>,
}

/// The per-key sync state: the version both sides last agreed on, and what
/// each side held then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyState {
    /// The common ancestor of the next conflict.
    pub ancestor: Version,
    /// The left side's mark.
    pub left: Mark,
    /// The right side's mark.
    pub right: Mark,
}

impl KeyState {
    /// The mark of `side`.
    pub fn mark(&self, side: Side) -> &Mark {
        match side {
            Side::Left => &self.left,
            Side::Right => &self.right,
        }
    }
}

/// When a version was written: the `timestamp_field`, or the record's
/// updated-at. A delete without one is dated `now` (when ferry saw it).
pub fn timestamp(v: &Version, field: Option<&str>, now: i64) -> Option<i64> {
    if v.deleted {
        return Some(v.updated_at.unwrap_or(now));
    }
    match field {
        Some(f) => v.fields.get(f).and_then(Value::as_micros),
        None => v.updated_at,
    }
}

/// The mark of a version as it stands on a side; `hash` is its checksum.
pub fn mark_of(v: &Version, hash: &str, field: Option<&str>) -> Mark {
    Mark {
        hash: hash.to_string(),
        version: v.version,
        at: if v.deleted {
            None
        } else {
            timestamp(v, field, 0)
        },
    }
}

/// Whether a side's current version (checksum `hash`) changed since its
/// mark, by the manifest's detection. Version and timestamp detection fall
/// back to the checksum when either number is unknown (and for deletes).
pub fn changed(
    detect: &Detect,
    current: &Version,
    hash: &str,
    mark: Option<&Mark>,
    field: Option<&str>,
) -> bool {
    let Some(mark) = mark else {
        // Never synced: a key that exists is new.
        return !current.deleted;
    };
    let by_hash = hash != mark.hash;
    if current.deleted {
        return by_hash;
    }
    match detect {
        Detect::Version => match (current.version, mark.version) {
            (Some(now), Some(then)) => now > then,
            _ => by_hash,
        },
        Detect::Timestamp => match (timestamp(current, field, 0), mark.at) {
            (Some(now), Some(then)) => now > then,
            _ => by_hash,
        },
        Detect::Checksum | Detect::Validator(_) => by_hash,
    }
}

/// Whether a side still holds `seen`, the version a person decided on:
/// its current version (checksum `hash`) has the same content — the
/// checksum of the synced fields, in every detection mode, since that is
/// what a write would overwrite — and has not changed since `seen` by the
/// manifest's detection either (with `version` detection a higher version
/// number, a "touch" of the same content, is a change; with `timestamp`
/// detection a later timestamp). A decision is applied only while both
/// sides still hold what it was decided on.
pub fn still_holds(
    detect: &Detect,
    current: &Version,
    hash: &str,
    seen: &Version,
    field: Option<&str>,
) -> bool {
    let seen_hash = seen.hash();
    if hash != seen_hash {
        return false;
    }
    let mark = mark_of(seen, &seen_hash, field);
    !changed(detect, current, hash, Some(&mark), field)
}

/// A field-level three-way merge: fields changed on one side only come
/// from that side; `conflicting` lists fields changed on both sides to
/// different values (they hold the left value in `merged`).
pub struct FieldMerge {
    /// The merge.
    pub merged: Version,
    /// Fields both sides changed differently.
    pub conflicting: Vec<String>,
}

/// Merges two live versions against their ancestor (`None`: no common
/// version, so every field that differs conflicts).
pub fn merge_fields(l: &Version, r: &Version, a: Option<&Version>) -> FieldMerge {
    let names: BTreeSet<&String> = l.fields.keys().chain(r.fields.keys()).collect();
    let mut merged = l.clone();
    let mut conflicting = Vec::new();
    let same = |x: Option<&Value>, y: Option<&Value>| match (x, y) {
        (None, None) => true,
        (Some(x), Some(y)) => x.normalized() == y.normalized(),
        _ => false,
    };
    for name in names {
        let lv = l.fields.get(name);
        let rv = r.fields.get(name);
        let av = a.filter(|a| !a.deleted).and_then(|a| a.fields.get(name));
        let l_changed = a.is_none_or(|_| !same(lv, av));
        let r_changed = a.is_none_or(|_| !same(rv, av));
        if same(lv, rv) {
            continue;
        }
        match (l_changed, r_changed) {
            (true, true) => conflicting.push(name.clone()),
            (false, true) => set(&mut merged, name, rv),
            _ => {}
        }
    }
    FieldMerge {
        merged,
        conflicting,
    }
}

fn set(v: &mut Version, name: &str, value: Option<&Value>) {
    match value {
        Some(x) => {
            v.fields.insert(name.to_string(), x.clone());
        }
        None => {
            v.fields.remove(name);
        }
    }
}

/// What settling a conflict came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Settled {
    /// Both sides get this version; `how` is `left`, `right` or `merged`.
    Take {
        /// The version.
        version: Version,
        /// `left`, `right` or `merged`.
        how: &'static str,
    },
    /// The conflict waits for a person; the text says why.
    Queue(String),
    /// The resolver plugin decides.
    AskResolver,
}

/// Which side a simple strategy picks, given each side's timestamp.
fn pick(
    strategy: &Strategy,
    l: &Version,
    r: &Version,
    sync: &SyncSpec,
    now: i64,
) -> Result<Side, String> {
    let field = sync.timestamp_field.as_deref();
    match strategy {
        Strategy::SideWins(side) => Ok(*side),
        Strategy::LastWriterWins | Strategy::FirstWriterWins => {
            let (Some(lt), Some(rt)) = (timestamp(l, field, now), timestamp(r, field, now)) else {
                let missing = if timestamp(l, field, now).is_none() {
                    "left"
                } else {
                    "right"
                };
                return Err(format!(
                    "{strategy}: the {missing} version has no timestamp ({})",
                    match field {
                        Some(f) => format!("field `{f}` is missing or not a time"),
                        None =>
                            "its connector reports no updated-at; set `timestamp_field`".to_string(),
                    }
                ));
            };
            let last = *strategy == Strategy::LastWriterWins;
            // Ties go left, so both sides decide alike.
            Ok(if (last && rt > lt) || (!last && rt < lt) {
                Side::Right
            } else {
                Side::Left
            })
        }
        Strategy::Manual => Err("the strategy is manual".to_string()),
        other => Err(format!("{other} cannot decide one field")),
    }
}

fn side_version<'a>(side: Side, l: &'a Version, r: &'a Version) -> &'a Version {
    match side {
        Side::Left => l,
        Side::Right => r,
    }
}

/// Settles a conflict between live or deleted versions `l` and `r` whose
/// common ancestor is `a`, by the manifest's strategy and field
/// strategies. Owned fields are applied afterwards by [`apply_owned`].
pub fn settle(sync: &SyncSpec, l: &Version, r: &Version, a: Option<&Version>, now: i64) -> Settled {
    let ts_field = sync.timestamp_field.as_deref();
    let both_live = !l.deleted && !r.deleted;
    let fm = both_live.then(|| merge_fields(l, r, a));
    // Field strategies decide the fields they name; when they decide every
    // conflicting field, the record merges without the record strategy.
    if let Some(fm) = &fm
        && !sync.field_strategies.is_empty()
        && fm
            .conflicting
            .iter()
            .all(|f| sync.field_strategies.contains_key(f) || Some(f.as_str()) == ts_field)
    {
        let mut merged = fm.merged.clone();
        for f in &fm.conflicting {
            let s = sync
                .field_strategies
                .get(f)
                .cloned()
                .unwrap_or(Strategy::LastWriterWins);
            match pick(&s, l, r, sync, now) {
                Ok(side) => set(&mut merged, f, side_version(side, l, r).fields.get(f)),
                Err(why) => return Settled::Queue(format!("field `{f}`: {why}")),
            }
        }
        newest_timestamp(&mut merged, l, r, ts_field);
        return taken(merged, l, r);
    }
    let whole = |side: Side| -> Settled {
        let mut v = side_version(side, l, r).clone();
        // Field strategies still decide their fields.
        if both_live && let Some(fm) = &fm {
            for f in &fm.conflicting {
                if let Some(s) = sync.field_strategies.get(f)
                    && let Ok(s_side) = pick(s, l, r, sync, now)
                {
                    set(&mut v, f, side_version(s_side, l, r).fields.get(f));
                }
            }
        }
        taken(v, l, r)
    };
    match &sync.strategy {
        Strategy::Manual => Settled::Queue("the strategy is manual".to_string()),
        Strategy::Resolver(_) => Settled::AskResolver,
        s @ (Strategy::LastWriterWins | Strategy::FirstWriterWins | Strategy::SideWins(_)) => {
            match pick(s, l, r, sync, now) {
                Ok(side) => whole(side),
                Err(why) => Settled::Queue(why),
            }
        }
        Strategy::Merge => {
            let fallback = &sync.merge_fallback;
            let Some(fm) = fm else {
                // A delete against an edit has no fields to merge.
                return match pick(fallback, l, r, sync, now) {
                    Ok(side) => whole(side),
                    Err(why) => {
                        Settled::Queue(format!("merge: one side deleted the record; {why}"))
                    }
                };
            };
            let mut merged = fm.merged.clone();
            for f in &fm.conflicting {
                if Some(f.as_str()) == ts_field {
                    continue;
                }
                let s = sync.field_strategies.get(f).unwrap_or(fallback);
                match pick(s, l, r, sync, now) {
                    Ok(side) => set(&mut merged, f, side_version(side, l, r).fields.get(f)),
                    Err(why) => {
                        return Settled::Queue(format!(
                            "merge: field `{f}` changed on both sides; {why}"
                        ));
                    }
                }
            }
            newest_timestamp(&mut merged, l, r, ts_field);
            taken(merged, l, r)
        }
    }
}

/// A merged record carries the later of the two timestamps.
fn newest_timestamp(merged: &mut Version, l: &Version, r: &Version, field: Option<&str>) {
    if let Some(f) = field {
        let lt = l.fields.get(f).and_then(Value::as_micros);
        let rt = r.fields.get(f).and_then(Value::as_micros);
        let newer = if rt > lt { r } else { l };
        set(merged, f, newer.fields.get(f));
    }
    merged.updated_at = l.updated_at.max(r.updated_at);
}

/// `Take`, named after the side it equals, if any.
fn taken(version: Version, l: &Version, r: &Version) -> Settled {
    let how = if version.same_content(l) {
        "left"
    } else if version.same_content(r) {
        "right"
    } else {
        "merged"
    };
    Settled::Take { version, how }
}

/// Gives each owned field its owner's value (when both the outcome and the
/// owner's version exist).
pub fn apply_owned(sync: &SyncSpec, outcome: &mut Version, l: &Version, r: &Version) {
    if outcome.deleted {
        return;
    }
    for (field, owner) in &sync.owned {
        let src = side_version(*owner, l, r);
        if !src.deleted {
            set(outcome, field, src.fields.get(field));
        }
    }
}

/// Owned fields that `side` changed (against the ancestor) though the
/// other side owns them.
pub fn foreign_changes(
    sync: &SyncSpec,
    side: Side,
    current: &Version,
    a: Option<&Version>,
) -> Vec<String> {
    let Some(a) = a.filter(|a| !a.deleted) else {
        return Vec::new();
    };
    if current.deleted {
        return Vec::new();
    }
    sync.owned
        .iter()
        .filter(|(_, owner)| **owner != side)
        .filter(|(f, _)| {
            let now = current.fields.get(*f).map(Value::normalized);
            let then = a.fields.get(*f).map(Value::normalized);
            now != then
        })
        .map(|(f, _)| f.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_manifest::{ForeignChange, SyncSide};

    fn sync(strategy: Strategy) -> SyncSpec {
        let side = |p: &str| SyncSide {
            plugin: p.into(),
            read: serde_json::json!({}),
            write: serde_json::json!({}),
            rename: Default::default(),
        };
        SyncSpec {
            left: side("a"),
            right: side("b"),
            fields: None,
            detect: Detect::Checksum,
            timestamp_field: Some("at".into()),
            strategy,
            merge_fallback: Strategy::Manual,
            field_strategies: Default::default(),
            owned: Default::default(),
            on_foreign_change: ForeignChange::Overwrite,
            span: Default::default(),
        }
    }

    fn v(fields: &[(&str, i64)]) -> Version {
        Version {
            fields: fields
                .iter()
                .map(|(k, x)| (k.to_string(), Value::Int(*x)))
                .collect(),
            ..Version::default()
        }
    }

    #[test]
    fn a_side_still_holds_a_decided_on_version_only_unchanged_by_its_detection() {
        let seen = Version {
            version: Some(7),
            updated_at: Some(10),
            ..v(&[("x", 1), ("at", 5)])
        };
        let same = seen.clone();
        let edited = Version {
            version: Some(8),
            ..v(&[("x", 2), ("at", 6)])
        };
        let touched = Version {
            version: Some(8),
            updated_at: Some(11),
            ..seen.clone()
        };
        let gone = Version::absent();
        for detect in [Detect::Checksum, Detect::Version, Detect::Timestamp] {
            let holds = |c: &Version, f: Option<&str>| still_holds(&detect, c, &c.hash(), &seen, f);
            assert!(holds(&same, Some("at")), "{detect:?}: unchanged");
            assert!(!holds(&edited, Some("at")), "{detect:?}: new content");
            assert!(!holds(&gone, Some("at")), "{detect:?}: deleted since");
        }
        // A touch (same content, a new version number or updated-at) is a
        // change only where the detection sees it.
        let touch = |d: Detect, f| still_holds(&d, &touched, &touched.hash(), &seen, f);
        assert!(touch(Detect::Checksum, Some("at")));
        assert!(!touch(Detect::Version, Some("at")));
        assert!(!touch(Detect::Timestamp, None), "updated-at moved");
        assert!(touch(Detect::Timestamp, Some("at")), "the field did not");
        // A decision on a deleted key holds while it stays deleted.
        assert!(still_holds(
            &Detect::Version,
            &gone,
            &gone.hash(),
            &gone,
            None
        ));
    }

    #[test]
    fn last_and_first_writer_pick_by_timestamp_and_say_why_they_cannot() {
        let a = v(&[("x", 1), ("at", 1)]);
        let l = v(&[("x", 2), ("at", 5)]);
        let r = v(&[("x", 3), ("at", 7)]);
        let s = settle(&sync(Strategy::LastWriterWins), &l, &r, Some(&a), 0);
        assert_eq!(
            s,
            Settled::Take {
                version: r.clone(),
                how: "right"
            }
        );
        let s = settle(&sync(Strategy::FirstWriterWins), &l, &r, Some(&a), 0);
        assert_eq!(
            s,
            Settled::Take {
                version: l.clone(),
                how: "left"
            }
        );
        let no_time = v(&[("x", 4)]);
        match settle(&sync(Strategy::LastWriterWins), &l, &no_time, Some(&a), 0) {
            Settled::Queue(why) => assert!(why.contains("right version has no timestamp"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn merge_keeps_both_sides_changes_and_queues_an_overlap() {
        let a = v(&[("x", 1), ("y", 1), ("at", 1)]);
        let l = v(&[("x", 2), ("y", 1), ("at", 5)]);
        let r = v(&[("x", 1), ("y", 9), ("at", 7)]);
        let Settled::Take { version, how } = settle(&sync(Strategy::Merge), &l, &r, Some(&a), 0)
        else {
            panic!()
        };
        assert_eq!(how, "merged");
        assert_eq!(version, v(&[("x", 2), ("y", 9), ("at", 7)]));
        let r2 = v(&[("x", 3), ("y", 1), ("at", 7)]);
        match settle(&sync(Strategy::Merge), &l, &r2, Some(&a), 0) {
            Settled::Queue(why) => assert!(why.contains("field `x`"), "{why}"),
            other => panic!("{other:?}"),
        }
        let mut lww = sync(Strategy::Merge);
        lww.merge_fallback = Strategy::LastWriterWins;
        assert!(matches!(
            settle(&lww, &l, &r2, Some(&a), 0),
            Settled::Take { how: "right", .. }
        ));
    }

    #[test]
    fn field_strategies_decide_their_fields_under_any_strategy() {
        let mut s = sync(Strategy::Manual);
        s.field_strategies
            .insert("x".into(), Strategy::SideWins(Side::Left));
        let a = v(&[("x", 1), ("y", 1), ("at", 1)]);
        let l = v(&[("x", 2), ("y", 1), ("at", 5)]);
        let r = v(&[("x", 3), ("y", 4), ("at", 7)]);
        let Settled::Take { version, .. } = settle(&s, &l, &r, Some(&a), 0) else {
            panic!()
        };
        assert_eq!(version, v(&[("x", 2), ("y", 4), ("at", 7)]));
        s.strategy = Strategy::LastWriterWins;
        s.field_strategies.clear();
        s.field_strategies
            .insert("y".into(), Strategy::SideWins(Side::Left));
        let l = v(&[("x", 2), ("y", 5), ("at", 5)]);
        let Settled::Take { version, .. } = settle(&s, &l, &r, Some(&a), 0) else {
            panic!()
        };
        // x from the later writer (right), y from its field strategy (left).
        assert_eq!(version, v(&[("x", 3), ("y", 5), ("at", 7)]));
    }

    #[test]
    fn owned_fields_take_the_owners_value_and_foreign_changes_are_named() {
        let mut s = sync(Strategy::SideWins(Side::Left));
        s.owned.insert("limit".into(), Side::Right);
        let a = v(&[("limit", 10), ("x", 1)]);
        let l = v(&[("limit", 99), ("x", 2)]);
        let r = v(&[("limit", 10), ("x", 1)]);
        assert_eq!(foreign_changes(&s, Side::Left, &l, Some(&a)), vec!["limit"]);
        assert!(foreign_changes(&s, Side::Right, &r, Some(&a)).is_empty());
        let mut out = l.clone();
        apply_owned(&s, &mut out, &l, &r);
        assert_eq!(out, v(&[("limit", 10), ("x", 2)]));
    }

    #[test]
    fn detection_by_version_timestamp_and_checksum() {
        let cur = Version {
            version: Some(5),
            ..v(&[("x", 1), ("at", 10)])
        };
        let mark = mark_of(&cur, &cur.hash(), Some("at"));
        let changed = |d: &Detect, v: &Version, m: Option<&Mark>, f: Option<&str>| {
            changed(d, v, &v.hash(), m, f)
        };
        for d in [Detect::Checksum, Detect::Version, Detect::Timestamp] {
            assert!(!changed(&d, &cur, Some(&mark), Some("at")), "{d:?}");
            assert!(changed(&d, &cur, None, Some("at")), "{d:?}: new key");
            assert!(
                changed(&d, &Version::absent(), Some(&mark), Some("at")),
                "{d:?}: deleted"
            );
        }
        let bumped = Version {
            version: Some(6),
            ..cur.clone()
        };
        assert!(changed(&Detect::Version, &bumped, Some(&mark), Some("at")));
        assert!(!changed(
            &Detect::Checksum,
            &bumped,
            Some(&mark),
            Some("at")
        ));
        let later = v(&[("x", 1), ("at", 11)]);
        assert!(changed(&Detect::Timestamp, &later, Some(&mark), Some("at")));
        let same_time = v(&[("x", 2), ("at", 10)]);
        assert!(!changed(
            &Detect::Timestamp,
            &same_time,
            Some(&mark),
            Some("at")
        ));
        assert!(changed(
            &Detect::Checksum,
            &same_time,
            Some(&mark),
            Some("at")
        ));
    }
}
