//! Unit tests of `schedule`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use chrono::TimeZone;

use super::*;
use crate::{Mode, parse as parse_manifest};

/// Microseconds of a UTC date and time.
fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .unwrap()
        .timestamp()
        * MICROS
}

fn schedule(text: &str) -> Schedule {
    match parse(text) {
        Ok(s) => s,
        Err(e) => panic!("`{text}` should parse: {e:?}"),
    }
}

fn refused(text: &str) -> Invalid {
    match parse(text) {
        Ok(_) => panic!("`{text}` should be refused"),
        Err(e) => e,
    }
}

/// The next `n` ticks after `from`.
fn ticks(text: &str, from: i64, n: usize) -> Vec<i64> {
    let s = schedule(text);
    let mut out = Vec::new();
    let mut t = from;
    for _ in 0..n {
        t = s.next_after(t).expect("a next tick");
        out.push(t);
    }
    out
}

// ------------------------------------------------------------ cron fields

#[test]
fn every_field_is_read_in_order() {
    // 04:30 UTC on the 15th of March, and on every Monday in March.
    let s = schedule("30 4 15 3 1");
    let from = at(2027, 1, 1, 0, 0, 0);
    assert_eq!(
        ticks("30 4 15 3 1", from, 3),
        [
            at(2027, 3, 1, 4, 30, 0),  // a Monday
            at(2027, 3, 8, 4, 30, 0),  // a Monday
            at(2027, 3, 15, 4, 30, 0), // the 15th (also a Monday)
        ]
    );
    assert_eq!(s.as_str(), "30 4 15 3 1");
    assert_eq!(s.interval(), None);
}

#[test]
fn stars_ranges_steps_and_lists() {
    let from = at(2027, 6, 1, 10, 0, 0);
    assert_eq!(
        ticks("*/15 * * * *", from, 3),
        [
            at(2027, 6, 1, 10, 15, 0),
            at(2027, 6, 1, 10, 30, 0),
            at(2027, 6, 1, 10, 45, 0)
        ]
    );
    assert_eq!(
        ticks("0 9-11 * * *", from, 4),
        [
            at(2027, 6, 1, 11, 0, 0),
            at(2027, 6, 2, 9, 0, 0),
            at(2027, 6, 2, 10, 0, 0),
            at(2027, 6, 2, 11, 0, 0)
        ]
    );
    assert_eq!(
        ticks("10-30/10 12 * * *", from, 4),
        [
            at(2027, 6, 1, 12, 10, 0),
            at(2027, 6, 1, 12, 20, 0),
            at(2027, 6, 1, 12, 30, 0),
            at(2027, 6, 2, 12, 10, 0)
        ]
    );
    assert_eq!(
        ticks("5,50 1,13 * * *", from, 3),
        [
            at(2027, 6, 1, 13, 5, 0),
            at(2027, 6, 1, 13, 50, 0),
            at(2027, 6, 2, 1, 5, 0)
        ]
    );
    // A list of ranges and steps.
    assert_eq!(
        ticks("0 0-1,22-23/1 * * *", from, 4),
        [
            at(2027, 6, 1, 22, 0, 0),
            at(2027, 6, 1, 23, 0, 0),
            at(2027, 6, 2, 0, 0, 0),
            at(2027, 6, 2, 1, 0, 0)
        ]
    );
}

#[test]
fn names_of_months_and_days_and_sunday_as_7() {
    // 2027-06-01 is a Tuesday.
    let from = at(2027, 6, 1, 0, 0, 0);
    assert_eq!(
        ticks("0 8 * * MON-FRI", from, 2),
        [at(2027, 6, 1, 8, 0, 0), at(2027, 6, 2, 8, 0, 0)]
    );
    assert_eq!(ticks("0 8 * * sun", from, 1), [at(2027, 6, 6, 8, 0, 0)]);
    assert_eq!(ticks("0 8 * * 7", from, 1), [at(2027, 6, 6, 8, 0, 0)]);
    assert_eq!(ticks("0 8 * * 0", from, 1), [at(2027, 6, 6, 8, 0, 0)]);
    assert_eq!(ticks("0 0 1 DEC *", from, 1), [at(2027, 12, 1, 0, 0, 0)]);
}

#[test]
fn shorthands() {
    let from = at(2027, 6, 1, 10, 20, 0);
    assert_eq!(ticks("@hourly", from, 1), [at(2027, 6, 1, 11, 0, 0)]);
    assert_eq!(ticks("@daily", from, 1), [at(2027, 6, 2, 0, 0, 0)]);
    assert_eq!(ticks("@midnight", from, 1), [at(2027, 6, 2, 0, 0, 0)]);
    assert_eq!(ticks("@weekly", from, 1), [at(2027, 6, 6, 0, 0, 0)]);
    assert_eq!(ticks("@monthly", from, 1), [at(2027, 7, 1, 0, 0, 0)]);
    assert_eq!(ticks("@yearly", from, 1), [at(2028, 1, 1, 0, 0, 0)]);
    assert_eq!(ticks("@annually", from, 1), [at(2028, 1, 1, 0, 0, 0)]);
}

// ------------------------------------------------------- next-tick math

#[test]
fn the_next_tick_is_strictly_after_and_crosses_month_and_year_ends() {
    // Exactly on a tick: the next one, not the same.
    let s = schedule("*/15 * * * *");
    assert_eq!(
        s.next_after(at(2027, 6, 1, 10, 15, 0)),
        Some(at(2027, 6, 1, 10, 30, 0))
    );
    // A microsecond before a tick: that tick.
    assert_eq!(
        s.next_after(at(2027, 6, 1, 10, 15, 0) - 1),
        Some(at(2027, 6, 1, 10, 15, 0))
    );
    // Year end.
    assert_eq!(
        s.next_after(at(2026, 12, 31, 23, 50, 0)),
        Some(at(2027, 1, 1, 0, 0, 0))
    );
    // Month ends of 30, 31, 28 and 29 days.
    let last_day = schedule("0 12 28-31 * *");
    assert_eq!(
        ticks("0 12 28-31 * *", at(2027, 4, 29, 13, 0, 0), 3),
        [
            at(2027, 4, 30, 12, 0, 0),
            at(2027, 5, 28, 12, 0, 0),
            at(2027, 5, 29, 12, 0, 0)
        ]
    );
    assert_eq!(
        last_day.next_after(at(2027, 2, 28, 13, 0, 0)),
        Some(at(2027, 3, 28, 12, 0, 0))
    );
    assert_eq!(
        last_day.next_after(at(2028, 2, 28, 13, 0, 0)),
        Some(at(2028, 2, 29, 12, 0, 0)) // 2028 is a leap year
    );
    // The 31st skips the months without one.
    assert_eq!(
        ticks("0 0 31 * *", at(2027, 1, 31, 1, 0, 0), 3),
        [
            at(2027, 3, 31, 0, 0, 0),
            at(2027, 5, 31, 0, 0, 0),
            at(2027, 7, 31, 0, 0, 0)
        ]
    );
    // Leap days: every 4 years, but not in 2100.
    assert_eq!(
        ticks("0 0 29 2 *", at(2027, 1, 1, 0, 0, 0), 2),
        [at(2028, 2, 29, 0, 0, 0), at(2032, 2, 29, 0, 0, 0)]
    );
    assert_eq!(
        schedule("0 0 29 2 *").next_after(at(2097, 1, 1, 0, 0, 0)),
        Some(at(2104, 2, 29, 0, 0, 0))
    );
    // New Year's Eve, from the day after.
    assert_eq!(
        schedule("59 23 31 12 *").next_after(at(2027, 1, 1, 0, 0, 0)),
        Some(at(2027, 12, 31, 23, 59, 0))
    );
}

#[test]
fn day_of_month_or_day_of_week_like_vixie_cron() {
    // The 13th, and every Friday: either one runs.
    let from = at(2027, 8, 1, 0, 0, 0); // a Sunday
    assert_eq!(
        ticks("0 0 13 * FRI", from, 3),
        [
            at(2027, 8, 6, 0, 0, 0),
            at(2027, 8, 13, 0, 0, 0), // the 13th, and a Friday
            at(2027, 8, 20, 0, 0, 0)
        ]
    );
}

#[test]
fn the_last_tick_and_counting_ticks() {
    let s = schedule("*/15 * * * *");
    assert_eq!(
        s.last_at_or_before(at(2027, 6, 1, 10, 29, 59)),
        Some(at(2027, 6, 1, 10, 15, 0))
    );
    assert_eq!(
        s.last_at_or_before(at(2027, 6, 1, 10, 30, 0)),
        Some(at(2027, 6, 1, 10, 30, 0))
    );
    // (10:00, 11:00] holds 10:15, 10:30, 10:45 and 11:00.
    assert_eq!(
        s.ticks_between(at(2027, 6, 1, 10, 0, 0), at(2027, 6, 1, 11, 0, 0), 100),
        4
    );
    assert_eq!(
        s.ticks_between(at(2027, 6, 1, 10, 0, 0), at(2027, 6, 1, 11, 0, 0), 2),
        2
    );
    assert_eq!(
        s.ticks_between(at(2027, 6, 1, 10, 0, 0), at(2027, 6, 1, 10, 0, 0), 100),
        0
    );
}

// -------------------------------------------------------------- intervals

#[test]
fn intervals_tick_on_multiples_since_the_epoch() {
    let s = schedule("every 15m");
    assert_eq!(s.interval(), Some(Duration::from_secs(900)));
    assert_eq!(
        s.next_after(at(2027, 6, 1, 10, 7, 3)),
        Some(at(2027, 6, 1, 10, 15, 0))
    );
    assert_eq!(
        s.next_after(at(2027, 6, 1, 10, 15, 0)),
        Some(at(2027, 6, 1, 10, 30, 0))
    );
    assert_eq!(
        s.last_at_or_before(at(2027, 6, 1, 10, 29, 0)),
        Some(at(2027, 6, 1, 10, 15, 0))
    );
    assert_eq!(
        schedule("every 1d").next_after(at(2027, 12, 31, 10, 0, 0)),
        Some(at(2028, 1, 1, 0, 0, 0))
    );
    assert_eq!(
        schedule("every 1h30m").interval(),
        Some(Duration::from_secs(5400))
    );
    assert_eq!(
        schedule("every 1s").interval(),
        Some(Duration::from_secs(1))
    );
    assert_eq!(
        schedule("  every   2h ").interval(),
        Some(Duration::from_secs(7200))
    );
    // (10:00, 11:00] holds 4 ticks of 15 minutes; a week of seconds is
    // counted without walking it.
    assert_eq!(
        s.ticks_between(at(2027, 6, 1, 10, 0, 0), at(2027, 6, 1, 11, 0, 0), 100),
        4
    );
    assert_eq!(
        schedule("every 1s").ticks_between(0, 7 * 86_400 * MICROS, u64::MAX),
        7 * 86_400
    );
}

#[test]
fn bad_intervals_say_how_to_write_one() {
    let e = refused("every");
    assert_eq!(e.message, "`every` needs an interval");
    assert!(e.hint.contains("`every 15m`"), "{e:?}");
    let e = refused("every 15 minutes");
    assert_eq!(e.message, "`15 minutes` is not an interval");
    assert_eq!(e.at, Some(6..16));
    let e = refused("every 15x");
    assert_eq!(e.message, "`15x` is not an interval");
    assert!(e.hint.contains("units are s, m, h and d"), "{e:?}");
    let e = refused("every 0s");
    assert_eq!(e.message, "an interval of 0 never ends");
    assert_eq!(e.hint, "the shortest is `every 1s`");
    let e = refused("every 366d");
    assert_eq!(e.message, "`every 366d` is longer than a year");
    assert!(e.hint.contains("`0 0 1 1 *`"), "{e:?}");
    let e = refused("every 99999999999999999999d");
    assert!(e.message.contains("is not an interval"), "{e:?}");
    let e = refused("15m");
    assert_eq!(
        e.message,
        "`15m` is neither a cron expression nor an interval"
    );
    assert_eq!(e.hint, "did you mean `every 15m`?");
}

// ------------------------------------------------------ invalid cron text

#[test]
fn a_wrong_number_of_fields_is_named() {
    let e = refused("*/15 * * *");
    assert_eq!(e.message, "a cron schedule has 5 fields, this one has 4");
    assert!(
        e.hint.starts_with("the 5 fields are minute (0-59)"),
        "{e:?}"
    );
    let e = refused("0 */15 * * * *");
    assert_eq!(e.message, "a cron schedule has 5 fields, this one has 6");
    assert!(e.hint.contains("there is no seconds field"), "{e:?}");
    let e = refused("");
    assert_eq!(e.message, "the schedule is empty");
    let e = refused("@fortnightly");
    assert_eq!(e.message, "unknown schedule shorthand `@fortnightly`");
    assert!(e.hint.contains("`@daily`"), "{e:?}");
}

#[test]
fn a_bad_field_is_named_and_pointed_at() {
    let e = refused("*/15 25 * * *");
    assert_eq!(e.message, "invalid schedule: hour `25` is out of range");
    assert!(e.hint.starts_with("hours are 0-23;"), "{e:?}");
    assert_eq!(e.at, Some(5..7));

    let e = refused("60 * * * *");
    assert_eq!(e.message, "invalid schedule: minute `60` is out of range");
    assert_eq!(e.at, Some(0..2));

    let e = refused("0 0 0 * *");
    assert_eq!(
        e.message,
        "invalid schedule: day of month `0` is out of range"
    );
    assert!(e.hint.starts_with("days of the month are 1-31"), "{e:?}");

    let e = refused("0 0 * 13 *");
    assert_eq!(e.message, "invalid schedule: month `13` is out of range");

    let e = refused("0 0 * * 8");
    assert_eq!(
        e.message,
        "invalid schedule: day of week `8` is out of range"
    );
    assert!(e.hint.contains("0 and 7 are Sunday"), "{e:?}");

    // In a list, the entry at fault.
    let e = refused("0 1,2,99 * * *");
    assert_eq!(e.message, "invalid schedule: hour `99` is out of range");
    assert_eq!(e.at, Some(6..8));

    let e = refused("0 0 * JANUARY *");
    assert_eq!(
        e.message,
        "invalid schedule: `JANUARY` in the month field, which takes numbers or 3-letter names"
    );
    let e = refused("0 0 * * FUN");
    assert_eq!(
        e.message,
        "invalid schedule: `FUN` in the day of week field, which takes numbers or 3-letter names"
    );
    assert_eq!(e.at, Some(8..11));
    // A name in a field it does not belong to (croner would read
    // `0 MON * * *` as 01:00).
    let e = refused("0 MON * * *");
    assert_eq!(
        e.message,
        "invalid schedule: `MON` in the hour field, which takes numbers"
    );
    assert_eq!(e.at, Some(2..5));
    let e = refused("0 0 * * MAR");
    assert!(
        e.message.contains("`MAR` in the day of week field"),
        "{e:?}"
    );
    let e = refused("x * * * *");
    assert_eq!(
        e.message,
        "invalid schedule: `x` in the minute field, which takes numbers"
    );
}

#[test]
fn bad_ranges_steps_and_lists() {
    let e = refused("0 17-9 * * *");
    assert_eq!(
        e.message,
        "invalid schedule: the hour range `17-9` runs backwards"
    );
    assert!(e.hint.contains("`9-17`"), "{e:?}");
    assert!(e.hint.contains("`17-23,0-9`"), "{e:?}");

    let e = refused("*/0 * * * *");
    assert_eq!(
        e.message,
        "invalid schedule: a step of 0 in the minute field, `*/0`"
    );
    let e = refused("*/x * * * *");
    assert_eq!(
        e.message,
        "invalid schedule: `/x` in the minute field is not a step"
    );
    let e = refused("5/15 * * * *");
    assert_eq!(
        e.message,
        "invalid schedule: `5/15` in the minute field: a step goes from `*` or a range"
    );
    assert!(
        e.hint.contains("`*/15`") && e.hint.contains("`5-59/15`"),
        "{e:?}"
    );

    let e = refused("1,,2 * * * *");
    assert_eq!(
        e.message,
        "invalid schedule: an empty entry in the minute field `1,,2`"
    );
    let e = refused("0 0 30 2 *");
    assert_eq!(
        e.message,
        "the schedule `0 0 30 2 *` never runs: no date matches it"
    );
}

#[test]
fn from_str_joins_message_and_hint() {
    let e = "every 0s".parse::<Schedule>().unwrap_err();
    assert_eq!(e, "an interval of 0 never ends; the shortest is `every 1s`");
    let s: Schedule = "every 5m".parse().unwrap();
    assert_eq!(s.to_string(), "every 5m");
    assert_eq!(s, schedule("every 5m"));
    assert_ne!(s, schedule("every 300s"));
}

// ------------------------------------------------------ in the manifest

const REST: &str = "[plugins.crm]\nkind = \"source\"\nwasm = \"file.wasm\"\n\
                    [plugins.out]\nkind = \"sink\"\nwasm = \"file.wasm\"\n\
                    [[routes]]\nfrom = \"crm\"\nto = [\"out\"]\n";

fn manifest(pipeline: &str) -> Result<crate::Manifest, crate::ManifestError> {
    parse_manifest(
        &format!("[pipeline]\nname = \"p\"\n{pipeline}{REST}"),
        Path::new("m/pipeline.toml"),
    )
}

fn only_error(pipeline: &str) -> crate::Diagnostic {
    match manifest(pipeline) {
        Ok(_) => panic!("expected an error for {pipeline}"),
        Err(e) => {
            let all = e.diagnostics().to_vec();
            assert_eq!(all.len(), 1, "{e}");
            all.into_iter().next().unwrap()
        }
    }
}

#[test]
fn a_scheduled_pipeline_has_its_schedule() {
    let m = manifest("mode = \"schedule\"\nschedule = \"*/15 * * * *\"\n").unwrap();
    assert_eq!(m.pipeline.mode, Mode::Schedule);
    assert_eq!(
        m.pipeline.schedule.as_ref().map(Schedule::as_str),
        Some("*/15 * * * *")
    );
    assert_eq!(Mode::Schedule.as_str(), "schedule");
    let m = manifest("mode = \"schedule\"\nschedule = 'every 1s'\n").unwrap();
    assert_eq!(
        m.pipeline.schedule.and_then(|s| s.interval()),
        Some(Duration::from_secs(1))
    );
    let m = manifest("").unwrap();
    assert_eq!(m.pipeline.schedule, None);
}

#[test]
fn mode_and_schedule_go_together() {
    let d = only_error("mode = \"schedule\"\n");
    assert_eq!(d.message, "`mode = \"schedule\"` needs a `schedule`");
    assert_eq!((d.line, d.column), (3, 8));
    assert!(
        d.hint
            .as_deref()
            .unwrap_or("")
            .contains("`schedule = \"every 15m\"`"),
        "{d}"
    );

    let d = only_error("schedule = \"every 1m\"\n");
    assert_eq!(
        d.message,
        "`schedule` is set, but the pipeline's mode is `once`"
    );
    assert_eq!((d.line, d.column), (3, 12));
    assert!(
        d.hint
            .as_deref()
            .unwrap_or("")
            .contains("add `mode = \"schedule\"`"),
        "{d}"
    );

    let d = only_error("mode = \"follow\"\nschedule = \"every 1m\"\n");
    assert_eq!(
        d.message,
        "`schedule` is set, but the pipeline's mode is `follow`"
    );
    // A misspelt mode is one error, not also a complaint about `schedule`.
    let d = only_error("mode = \"schedul\"\nschedule = \"every 1m\"\n");
    assert_eq!(d.message, "unknown mode `schedul`");
    assert!(
        d.hint.as_deref().unwrap_or("").contains("`schedule`"),
        "{d}"
    );
}

#[test]
fn a_bad_schedule_points_into_the_string() {
    let d = only_error("mode = \"schedule\"\nschedule = \"*/15 25 * * *\"\n");
    assert_eq!(d.message, "invalid schedule: hour `25` is out of range");
    // Line 4 is `schedule = "*/15 25 * * *"`: the caret is under `25`.
    assert_eq!((d.line, d.column), (4, 18));
    assert!(d.to_string().contains("                 ^^"), "{d}");
    assert!(
        d.hint
            .as_deref()
            .unwrap_or("")
            .starts_with("hours are 0-23"),
        "{d}"
    );

    // An escape in the string: the whole value is pointed at.
    let d = only_error("mode = \"schedule\"\nschedule = \"\\u002A/15 25 * * *\"\n");
    assert_eq!(d.message, "invalid schedule: hour `25` is out of range");
    assert_eq!((d.line, d.column), (4, 12));

    let d = only_error("mode = \"schedule\"\nschedule = \"every 15 m\"\n");
    assert_eq!(d.message, "`15 m` is not an interval");
    assert_eq!((d.line, d.column), (4, 19));

    let d = only_error("mode = \"schedule\"\nschedule = 15\n");
    assert!(d.message.contains("wrong type for `schedule`"), "{d}");
}
