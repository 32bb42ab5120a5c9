//! Times an operator types on the command line (`--since`, `--until`): an
//! RFC 3339 time (`2026-11-27T08:00:00Z`, `2026-11-27T09:00:00+01:00`, or a
//! date alone, `2026-11-27`, meaning its midnight UTC), or a duration ago
//! (`30m`, `2h`, `7d`, `1w`, `1h30m`; units s, m, h, d, w).

use ferry_state::now_us;

const SECOND: i64 = 1_000_000;

/// `clap` value parser: microseconds since the Unix epoch.
pub fn parse_arg(text: &str) -> Result<i64, String> {
    parse(text, now_us())
}

/// `text` as microseconds since the Unix epoch, durations counted back from
/// `now_us`.
pub fn parse(text: &str, now_us: i64) -> Result<i64, String> {
    let t = text.trim();
    let parsed = if t.is_empty() {
        None
    } else {
        ago(t)
            .map(|d| now_us.saturating_sub(d))
            .or_else(|| rfc3339(t))
    };
    parsed.ok_or_else(|| {
        format!(
            "`{text}` is neither an RFC 3339 time (2026-11-27T08:00:00Z, 2026-11-27T09:00:00+01:00, 2026-11-27) nor a duration ago (30m, 2h, 7d, 1w)"
        )
    })
}

/// A duration such as `2h` or `1h30m`, in microseconds.
fn ago(t: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: i64 = rest.get(..digits)?.parse().ok()?;
        let unit = rest.get(digits..)?.chars().next()?;
        let seconds = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(seconds)?.checked_mul(SECOND)?)?;
        rest = rest.get(digits + 1..)?;
    }
    Some(total)
}

/// `YYYY-MM-DD`, or `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
fn rfc3339(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let s = t.get(from..from + len)?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (y, m, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || !(1..=12).contains(&m) {
        return None;
    }
    if d < 1 || d > days_in_month(y, m) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    if b.len() == 10 {
        return days.checked_mul(86_400 * SECOND);
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' '))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    let (hh, mm, ss) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let mut i = 19;
    let mut micros = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let frac = t.get(start..i.min(start + 6))?;
        micros = frac.parse::<i64>().ok()? * 10i64.pow(6 - frac.len() as u32);
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if b.len() == i + 1 => 0,
        Some(sign @ (b'+' | b'-')) if b.len() == i + 6 && b.get(i + 3) == Some(&b':') => {
            let (oh, om) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3_600 + om * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    let secs = days.checked_mul(86_400)? + hh * 3_600 + mm * 60 + ss - offset;
    secs.checked_mul(SECOND)?.checked_add(micros)
}

/// The days of month `m` (checked 1-12 before) of year `y`.
fn days_in_month(y: i64, m: i64) -> i64 {
    i64::from(ferry_time::days_in_month(y, u32::try_from(m).unwrap_or(0)))
}

/// Days since 1970-01-01 of a civil date checked before.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    ferry_time::days_from_civil(
        y,
        u32::try_from(m).unwrap_or(0),
        u32::try_from(d).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_766_400_000_000; // 2026-11-27T08:00:00Z

    #[test]
    fn rfc3339_times_and_dates() {
        for (text, want) in [
            ("2026-11-27T08:00:00Z", NOW),
            ("2026-11-27T09:30:00+01:30", NOW),
            ("2026-11-27T03:00:00-05:00", NOW),
            ("2026-11-27t08:00:00.5z", NOW + 500_000),
            ("2026-11-27 08:00:00.123456789Z", NOW + 123_456),
            ("2026-11-27", NOW - 8 * 3_600 * SECOND),
            ("1970-01-01T00:00:00Z", 0),
            ("2000-02-29T23:59:59Z", 951_868_799 * SECOND),
        ] {
            assert_eq!(parse(text, NOW), Ok(want), "{text}");
        }
    }

    #[test]
    fn durations_count_back_from_now() {
        for (text, secs) in [
            ("30s", 30),
            ("45m", 45 * 60),
            ("2h", 7_200),
            ("7d", 7 * 86_400),
            ("1w", 7 * 86_400),
            ("1h30m", 5_400),
        ] {
            assert_eq!(parse(text, NOW), Ok(NOW - secs * SECOND), "{text}");
        }
    }

    #[test]
    fn anything_else_is_refused_with_examples() {
        for text in [
            "",
            "yesterday",
            "2h ago",
            "5x",
            "h",
            "2026-02-29",
            "2026-13-01",
            "2026-11-27T08:00:00",
            "2026-11-27T24:00:00Z",
            "2026-11-27T08:00Z",
            "2026-11-27T08:00:00.Z",
            "2026-11-27T08:00:00+0100",
            "99999999999999999999d",
        ] {
            let e = parse(text, NOW).expect_err(text);
            assert!(e.contains("RFC 3339") && e.contains("7d"), "{e}");
        }
    }
}
