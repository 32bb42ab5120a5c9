//! Schedules of `mode = "schedule"` pipelines: when each run starts.
//!
//! A schedule is one of:
//!
//! - **A cron expression** of five fields, always in UTC:
//!
//!   ```text
//!   ┌──────── minute        0-59
//!   │ ┌────── hour          0-23
//!   │ │ ┌──── day of month  1-31
//!   │ │ │ ┌── month         1-12 or JAN-DEC
//!   │ │ │ │ ┌ day of week   0-7 or SUN-SAT (0 and 7 are Sunday)
//!   * * * * *
//!   ```
//!
//!   Each field is `*`, a number, a range `a-b`, a step `*/n` or `a-b/n`, or a
//!   list of these, `1,15,30`. As in Vixie cron, when both the day of month
//!   and the day of week are restricted, a day matching either one runs.
//!   The shorthands `@hourly`, `@daily` (`@midnight`), `@weekly`, `@monthly`
//!   and `@yearly` (`@annually`) are accepted too. Expressions are parsed and
//!   evaluated by the `croner` crate (its extensions `L`, `W` and `#` work);
//!   this module adds what an operator needs on top: five fields exactly,
//!   errors that name the field and point at it, and a check that the
//!   expression matches a date at all (`0 0 30 2 *` never does).
//!
//! - **An interval**: `every 15m`, with units `s`, `m`, `h` and `d`, combined
//!   if need be (`every 1h30m`); from 1 second to 365 days. Its ticks are the
//!   multiples of the interval since 1970-01-01T00:00:00Z, so they do not
//!   depend on when ferry was started: `every 15m` ticks at :00, :15, :30 and
//!   :45, `every 1h` on the hour, `every 1d` at midnight UTC.
//!
//! Times are microseconds since the Unix epoch, as in the state store. Ticks
//! fall on whole seconds.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use toml::Spanned;

use crate::diagnostic::Span;
use crate::document::Collector;
use crate::model::Mode;

const MICROS: i64 = 1_000_000;
/// The longest interval: a year. Longer ones are a cron expression's job.
const MAX_INTERVAL_SECS: i64 = 365 * 86_400;

/// When a scheduled pipeline runs: a cron expression (UTC) or an interval.
///
/// Made by the manifest's `schedule` key (or [`str::parse`]); see the
/// module documentation for the syntax.
#[derive(Debug, Clone)]
pub struct Schedule {
    text: String,
    rule: Rule,
}

#[derive(Debug, Clone)]
enum Rule {
    /// Every so many seconds, counted from the Unix epoch.
    Every(i64),
    /// A cron expression, evaluated in UTC.
    Cron(Box<Cron>),
}

impl PartialEq for Schedule {
    /// Two schedules are equal when they are written the same way.
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Schedule {}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Schedule {
    /// What is wrong, and how to fix it.
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse(text).map_err(|e| format!("{}; {}", e.message, e.hint))
    }
}

impl Schedule {
    /// The schedule as written in the manifest.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The interval of an `every …` schedule; `None` for a cron expression.
    pub fn interval(&self) -> Option<Duration> {
        match self.rule {
            Rule::Every(secs) => Some(Duration::from_secs(secs.unsigned_abs())),
            Rule::Cron(_) => None,
        }
    }

    /// The first tick strictly after `after_us`, or `None` if there is none
    /// (past the year 5000).
    pub fn next_after(&self, after_us: i64) -> Option<i64> {
        match &self.rule {
            Rule::Every(secs) => {
                let step = secs.checked_mul(MICROS)?;
                after_us.div_euclid(step).checked_add(1)?.checked_mul(step)
            }
            Rule::Cron(cron) => {
                // A tick is a whole second: searching from the second that
                // holds `after_us`, exclusive, gives one after `after_us`.
                let from = utc(after_us.div_euclid(MICROS))?;
                let next = cron.find_next_occurrence(&from, false).ok()?;
                next.timestamp().checked_mul(MICROS)
            }
        }
    }

    /// The last tick at or before `at_us`, or `None` if there is none.
    pub fn last_at_or_before(&self, at_us: i64) -> Option<i64> {
        match &self.rule {
            Rule::Every(secs) => {
                let step = secs.checked_mul(MICROS)?;
                at_us.div_euclid(step).checked_mul(step)
            }
            Rule::Cron(cron) => {
                let from = utc(at_us.div_euclid(MICROS))?;
                let last = cron.find_previous_occurrence(&from, true).ok()?;
                last.timestamp().checked_mul(MICROS)
            }
        }
    }

    /// How many ticks fall in `(after_us, until_us]`, counting at most
    /// `cap` of them.
    pub fn ticks_between(&self, after_us: i64, until_us: i64, cap: u64) -> u64 {
        if until_us <= after_us {
            return 0;
        }
        match &self.rule {
            Rule::Every(secs) => {
                let step = secs.saturating_mul(MICROS);
                let n = until_us.div_euclid(step) - after_us.div_euclid(step);
                n.unsigned_abs().min(cap)
            }
            Rule::Cron(_) => {
                let mut n = 0;
                let mut at = after_us;
                while n < cap {
                    match self.next_after(at) {
                        Some(tick) if tick <= until_us => {
                            n += 1;
                            at = tick;
                        }
                        _ => break,
                    }
                }
                n
            }
        }
    }
}

/// Checks `[pipeline]`'s `schedule` against its `mode` (`None` when the
/// mode could not be read): `Some(schedule)` for a scheduled pipeline,
/// `Some(None)` for another, `None` after reporting an error. `lost`: the
/// `schedule` was there but refused already (a wrong type).
pub(crate) fn resolve(
    cx: &mut Collector,
    mode: Option<Mode>,
    mode_value: Option<&Spanned<String>>,
    value: Option<&Spanned<String>>,
    lost: bool,
) -> Option<Option<Schedule>> {
    let parsed = match value {
        None => None,
        Some(value) => match parse(value.get_ref()) {
            Ok(schedule) => Some(schedule),
            Err(e) => {
                let span = Span::from(value.span());
                // Point into the string when its text is the value as
                // written (no escapes); at the whole value otherwise.
                let written = cx.text(span);
                let plain = [
                    format!("\"{}\"", value.get_ref()),
                    format!("'{}'", value.get_ref()),
                ];
                let span = match e.at {
                    Some(at) if plain.iter().any(|p| p == written) => {
                        Span::new(span.start + 1 + at.start, span.start + 1 + at.end)
                    }
                    _ => span,
                };
                cx.error(span, e.message, Some(e.hint));
                return None;
            }
        },
    };
    if lost {
        return None;
    }
    match (mode?, value, parsed) {
        (Mode::Schedule, Some(_), schedule) => Some(schedule),
        (Mode::Schedule, None, _) => {
            let span = mode_value.map(|m| Span::from(m.span())).unwrap_or_default();
            cx.error(
                span,
                "`mode = \"schedule\"` needs a `schedule`",
                Some(
                    "add `schedule = \"*/15 * * * *\"` (5 cron fields in UTC: minute, hour, day of month, \
                     month, day of week) or `schedule = \"every 15m\"` (an interval; units s, m, h, d)"
                        .to_owned(),
                ),
            );
            None
        }
        (other, Some(value), _) => {
            let hint = if mode_value.is_some() {
                "change `mode` to \"schedule\" to run on this schedule, or remove `schedule`"
            } else {
                "add `mode = \"schedule\"` to [pipeline] to run on this schedule, or remove `schedule`"
            };
            cx.error(
                value.span(),
                format!("`schedule` is set, but the pipeline's mode is `{other}`"),
                Some(hint.to_owned()),
            );
            None
        }
        (_, None, _) => Some(None),
    }
}

fn utc(secs: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp(secs, 0)
}

/// Why a schedule is refused: what is wrong, how to fix it, and which bytes
/// of the schedule's text are at fault (all of it when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub message: String,
    pub hint: String,
    pub at: Option<Range<usize>>,
}

fn invalid(
    message: impl Into<String>,
    hint: impl Into<String>,
    at: Option<Range<usize>>,
) -> Invalid {
    Invalid {
        message: message.into(),
        hint: hint.into(),
        at,
    }
}

/// What every cron hint ends with.
const CRON_FIELDS: &str = "the 5 fields are minute (0-59), hour (0-23), day of month (1-31), \
                           month (1-12 or JAN-DEC) and day of week (0-7 or SUN-SAT, 0 and 7 are Sunday), in UTC";

/// What a schedule can be, for hints about a schedule that is neither.
const BOTH_FORMS: &str = "a schedule is a cron expression of 5 fields in UTC (`*/15 * * * *`: \
                          every 15 minutes) or an interval (`every 15m`; units s, m, h, d)";

/// One field of a cron expression.
struct Field {
    /// `minute`, `day of month`, ...
    name: &'static str,
    /// "minutes are 0-59"
    range: &'static str,
    min: u32,
    max: u32,
    /// Names allowed in place of numbers (`JAN`, `MON`), index = value - `names_from`.
    names: &'static [&'static str],
    names_from: u32,
    /// croner's letters for this field (`L`ast, `W`eekday), kept as they are.
    extensions: &'static [&'static str],
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        range: "minutes are 0-59",
        min: 0,
        max: 59,
        names: &[],
        names_from: 0,
        extensions: &[],
    },
    Field {
        name: "hour",
        range: "hours are 0-23",
        min: 0,
        max: 23,
        names: &[],
        names_from: 0,
        extensions: &[],
    },
    Field {
        name: "day of month",
        range: "days of the month are 1-31",
        min: 1,
        max: 31,
        names: &[],
        names_from: 0,
        extensions: &["L", "W", "LW"],
    },
    Field {
        name: "month",
        range: "months are 1-12 or JAN-DEC",
        min: 1,
        max: 12,
        names: &[
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ],
        names_from: 1,
        extensions: &[],
    },
    Field {
        name: "day of week",
        range: "days of the week are 0-7 or SUN-SAT (0 and 7 are Sunday)",
        min: 0,
        max: 7,
        names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
        names_from: 0,
        extensions: &["L"],
    },
];

/// The cron shorthands and what they stand for.
const SHORTHANDS: &[(&str, &str)] = &[
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// Reads a schedule: `every <interval>`, a `@shorthand`, or 5 cron fields.
pub(crate) fn parse(text: &str) -> Result<Schedule, Invalid> {
    let trimmed = text.trim();
    let lead = text.len() - text.trim_start().len();
    if trimmed.is_empty() {
        return Err(invalid("the schedule is empty", BOTH_FORMS, None));
    }
    if let Some(rest) = trimmed.strip_prefix("every") {
        let offset = lead + "every".len() + (rest.len() - rest.trim_start().len());
        let secs = interval(rest.trim(), offset)?;
        return Ok(Schedule {
            text: text.to_owned(),
            rule: Rule::Every(secs),
        });
    }
    if trimmed.starts_with('@') {
        let Some((_, expanded)) = SHORTHANDS.iter().find(|(name, _)| *name == trimmed) else {
            let names: Vec<String> = SHORTHANDS.iter().map(|(n, _)| format!("`{n}`")).collect();
            return Err(invalid(
                format!("unknown schedule shorthand `{trimmed}`"),
                format!("expected one of {}; or 5 cron fields", names.join(", ")),
                None,
            ));
        };
        let cron = croner(expanded).map_err(|e| invalid(e, BOTH_FORMS, None))?;
        return Ok(Schedule {
            text: text.to_owned(),
            rule: Rule::Cron(Box::new(cron)),
        });
    }
    if looks_like_interval(trimmed) {
        return Err(invalid(
            format!("`{trimmed}` is neither a cron expression nor an interval"),
            format!("did you mean `every {trimmed}`?"),
            None,
        ));
    }
    let cron = cron(text)?;
    let schedule = Schedule {
        text: text.to_owned(),
        rule: Rule::Cron(Box::new(cron)),
    };
    // A pattern such as `0 0 30 2 *` parses but never matches. Any date
    // matches within 8 years of any other (leap days included), so a
    // search from 2001 that finds nothing means never.
    if schedule.next_after(978_307_200 * MICROS).is_none() {
        return Err(invalid(
            format!("the schedule `{trimmed}` never runs: no date matches it"),
            "check the day of month against the month: February has 29 days at most, \
             April, June, September and November 30",
            None,
        ));
    }
    Ok(schedule)
}

/// `15m`, `2h`, `1h30m`: what someone who forgot `every` writes.
fn looks_like_interval(text: &str) -> bool {
    text.ends_with(['s', 'm', 'h', 'd'])
        && text.starts_with(|c: char| c.is_ascii_digit())
        && text.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The seconds of `every <text>`; `offset` is where `text` starts in the schedule.
fn interval(text: &str, offset: usize) -> Result<i64, Invalid> {
    let at = Some(offset..offset + text.len());
    let how = "write a number and its unit together, `every 15m`: units are s, m, h and d, \
               and they combine, `every 1h30m`";
    if text.is_empty() {
        return Err(invalid("`every` needs an interval", how, None));
    }
    let mut total: i64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let number = rest.get(..digits).and_then(|n| n.parse::<i64>().ok());
        let unit = rest.get(digits..).and_then(|r| r.chars().next());
        let seconds = match unit {
            Some('s') => Some(1),
            Some('m') => Some(60),
            Some('h') => Some(3_600),
            Some('d') => Some(86_400),
            _ => None,
        };
        let (Some(number), Some(seconds)) = (number, seconds) else {
            return Err(invalid(format!("`{text}` is not an interval"), how, at));
        };
        total = number
            .checked_mul(seconds)
            .and_then(|s| total.checked_add(s))
            .unwrap_or(i64::MAX);
        rest = rest.get(digits + 1..).unwrap_or("");
    }
    if total == 0 {
        return Err(invalid(
            "an interval of 0 never ends",
            "the shortest is `every 1s`",
            at,
        ));
    }
    if total > MAX_INTERVAL_SECS {
        return Err(invalid(
            format!("`every {text}` is longer than a year"),
            "the longest interval is `every 365d`; for a yearly run use cron: `0 0 1 1 *` \
             (midnight UTC on January 1st)",
            at,
        ));
    }
    Ok(total)
}

/// croner, set to 5 fields (no seconds, no years).
fn croner(pattern: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(pattern)
        .map_err(|e| {
            let text = e.to_string();
            let text = text
                .strip_prefix("Component error: ")
                .or_else(|| text.strip_prefix("Invalid pattern: "))
                .unwrap_or(&text)
                .trim_end_matches('.')
                .to_owned();
            lower_first(&text)
        })
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Five cron fields, each checked on its own first so an error names its
/// field and points at it.
fn cron(text: &str) -> Result<Cron, Invalid> {
    let fields: Vec<(usize, &str)> = text
        .split_whitespace()
        .map(|field| (field.as_ptr() as usize - text.as_ptr() as usize, field))
        .collect();
    if fields.len() != FIELDS.len() {
        let mut hint = format!("{CRON_FIELDS}: `*/15 * * * *` runs every 15 minutes");
        if fields.len() == 6 {
            hint.push_str(
                "; there is no seconds field (for less than a minute, use an interval: `every 30s`)",
            );
        } else if fields.len() < FIELDS.len() {
            hint.push_str("; `*` fills a field that does not matter");
        }
        return Err(invalid(
            format!(
                "a cron schedule has 5 fields, this one has {}",
                fields.len()
            ),
            hint,
            None,
        ));
    }
    let mut numeric_fields = Vec::new();
    for (index, &(start, field)) in fields.iter().enumerate() {
        // croner skips empty list entries (`1,,2`); a typo is likelier.
        if field.split(',').any(str::is_empty) {
            return Err(explain(index, field, start, String::new()));
        }
        let numeric = numeric(index, field, start)?;
        let mut alone = vec!["*".to_owned(); FIELDS.len()];
        if let Some(slot) = alone.get_mut(index) {
            slot.clone_from(&numeric);
        }
        if let Err(reason) = croner(&alone.join(" ")) {
            return Err(explain(index, field, start, reason));
        }
        numeric_fields.push(numeric);
    }
    croner(&numeric_fields.join(" "))
        .map_err(|reason| invalid(format!("invalid schedule: {reason}"), CRON_FIELDS, None))
}

/// Cron field `index` (`text`, at byte `start` of the schedule) with its
/// names (`JAN`, `MON`) replaced by numbers. croner would replace any name
/// in any field (`0 MON * * *` would run at 01:00), so this is done here,
/// field by field, and a word that is not a name of its field is refused.
fn numeric(index: usize, text: &str, start: usize) -> Result<String, Invalid> {
    let Some(field) = FIELDS.get(index) else {
        return Ok(text.to_owned());
    };
    let mut out = String::with_capacity(text.len());
    let mut word_start = None;
    // One past the end, so a word at the end of the field is closed too.
    for (at, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        if c.is_ascii_alphabetic() {
            word_start.get_or_insert(at);
            continue;
        }
        if let Some(from) = word_start.take() {
            let word = text.get(from..at).unwrap_or("");
            let upper = word.to_ascii_uppercase();
            if let Some(i) = field.names.iter().position(|n| *n == upper) {
                let mut number = field.names_from + i as u32;
                // `FRI-SUN`: Sunday ends a range as 7.
                if number == 0 && text.get(..from).is_some_and(|b| b.ends_with('-')) {
                    number = 7;
                }
                out.push_str(&number.to_string());
            } else if field.extensions.contains(&upper.as_str()) {
                out.push_str(&upper);
            } else if text.get(..from).is_some_and(|b| b.ends_with('/')) {
                return Err(invalid(
                    format!(
                        "invalid schedule: `/{word}` in the {} field is not a step",
                        field.name
                    ),
                    format!("a step is a number after `/`, as in `*/5`; {}", field.range),
                    Some(start + from - 1..start + at),
                ));
            } else {
                let takes = if field.names.is_empty() {
                    "numbers"
                } else {
                    "numbers or 3-letter names"
                };
                return Err(invalid(
                    format!(
                        "invalid schedule: `{word}` in the {} field, which takes {takes}",
                        field.name
                    ),
                    format!(
                        "{}; a field is `*`, a number, a range `a-b`, a step `*/n` or `a-b/n`, or a list `a,b,c`; {CRON_FIELDS}",
                        field.range
                    ),
                    Some(start + from..start + at),
                ));
            }
        }
        if at < text.len() {
            out.push(c);
        }
    }
    Ok(out)
}

/// Says what is wrong with cron field `index` (`text`, at byte `start` of
/// the schedule), which croner refused for `reason`.
fn explain(index: usize, text: &str, start: usize, reason: String) -> Invalid {
    let Some(field) = FIELDS.get(index) else {
        return invalid(format!("invalid schedule: {reason}"), CRON_FIELDS, None);
    };
    let name = field.name;
    let syntax = format!(
        "{}; a field is `*`, a number, a range `a-b`, a step `*/n` or `a-b/n`, or a list `a,b,c`; {CRON_FIELDS}",
        field.range
    );
    let mut offset = start;
    for item in text.split(',') {
        let at = Some(offset..offset + item.len());
        offset += item.len() + 1;
        if item.is_empty() {
            return invalid(
                format!("invalid schedule: an empty entry in the {name} field `{text}`"),
                "a list has a value between each two commas, and none at its ends",
                Some(start..start + text.len()),
            );
        }
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => (base, Some(step)),
            None => (item, None),
        };
        if let Some(step) = step {
            match step.parse::<u32>() {
                Ok(0) => {
                    return invalid(
                        format!("invalid schedule: a step of 0 in the {name} field, `{item}`"),
                        "a step is 1 or more: `*/5` is every 5th",
                        at,
                    );
                }
                Ok(_) => {}
                Err(_) => {
                    return invalid(
                        format!("invalid schedule: `/{step}` in the {name} field is not a step"),
                        format!("a step is a number after `/`, as in `*/5`; {}", field.range),
                        at,
                    );
                }
            }
            if !base.contains('-') && base != "*" && value(field, base).is_ok() {
                return invalid(
                    format!(
                        "invalid schedule: `{item}` in the {name} field: a step goes from `*` or a range"
                    ),
                    format!(
                        "write `*/{step}` for every {step}th {name} from the first, or `{base}-{}/{step}` to start at {base}",
                        field.max
                    ),
                    at,
                );
            }
        }
        if base == "*" {
            continue;
        }
        let (low, high) = match base.split_once('-') {
            Some((low, high)) => (low, Some(high)),
            None => (base, None),
        };
        let low_value = match value(field, low) {
            Ok(v) => v,
            Err(Some(problem)) => return invalid(problem, syntax, at),
            Err(None) => continue,
        };
        if let Some(high) = high {
            let high_value = match value(field, high) {
                Ok(v) => v,
                Err(Some(problem)) => return invalid(problem, syntax, at),
                Err(None) => continue,
            };
            if low_value > high_value {
                return invalid(
                    format!("invalid schedule: the {name} range `{base}` runs backwards"),
                    format!(
                        "write the smaller value first, `{high}-{low}`; a range that wraps around is a list: `{low}-{},{}-{high}`",
                        field.max, field.min
                    ),
                    at,
                );
            }
        }
    }
    invalid(
        format!("invalid schedule: the {name} field `{text}`: {reason}"),
        syntax,
        Some(start..start + text.len()),
    )
}

/// A number or name of `field`. `Err(Some(message))` for a value that is
/// wrong, `Err(None)` for something this check does not know (croner's
/// extensions), left to croner's own message.
fn value(field: &Field, text: &str) -> Result<u32, Option<String>> {
    let name = field.name;
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let number: u32 = text.parse().unwrap_or(u32::MAX);
        if number < field.min || number > field.max {
            return Err(Some(format!(
                "invalid schedule: {name} `{text}` is out of range"
            )));
        }
        return Ok(number);
    }
    if text.len() == 3 && text.bytes().all(|b| b.is_ascii_alphabetic()) {
        let upper = text.to_ascii_uppercase();
        if let Some(i) = field.names.iter().position(|n| *n == upper) {
            return Ok(field.names_from + i as u32);
        }
    }
    if text.is_empty() {
        return Err(Some(format!(
            "invalid schedule: a value is missing in the {name} field"
        )));
    }
    if text.bytes().all(|b| b.is_ascii_alphabetic()) && !matches!(text, "L" | "W" | "LW") {
        let takes = if field.names.is_empty() {
            "numbers"
        } else {
            "numbers or 3-letter names"
        };
        return Err(Some(format!(
            "invalid schedule: `{text}` in the {name} field, which takes {takes}"
        )));
    }
    Err(None)
}

#[cfg(test)]
mod tests;
