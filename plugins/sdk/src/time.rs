//! Timestamps: microseconds since the Unix epoch (UTC), to and from text.
//!
//! Only the proleptic Gregorian calendar and fixed UTC offsets; no time
//! zone database. For other text formats, parse with a date library in the
//! plugin (the field mapper uses `chrono` for strftime formats).

/// Days since 1970-01-01 for a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `(year, month, day)` of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Formats an instant as RFC 3339 in UTC: `2024-05-01T12:00:00Z`, with six
/// fractional digits when the instant is not a whole second
/// (`2024-05-01T12:00:00.250000Z`).
pub fn format_rfc3339(micros: i64) -> String {
    let mut out = Vec::with_capacity(27);
    write_rfc3339(&mut out, micros);
    String::from_utf8(out).unwrap_or_default()
}

/// Writes [`format_rfc3339`]'s text to `out` without allocating or going
/// through `fmt` (this runs once per timestamp a sink writes).
pub fn write_rfc3339(out: &mut Vec<u8>, micros: i64) {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let in_day = micros.rem_euclid(MICROS_PER_DAY);
    let (y, mo, d) = civil_from_days(days);
    let secs = in_day / 1_000_000;
    let frac = in_day % 1_000_000;
    if (0..=9999).contains(&y) {
        push_digits(out, y as u64, 4);
    } else {
        // Years outside 0..=9999 are rare enough for `fmt`.
        out.extend_from_slice(format!("{y:04}").as_bytes());
    }
    out.push(b'-');
    push_digits(out, u64::from(mo), 2);
    out.push(b'-');
    push_digits(out, u64::from(d), 2);
    out.push(b'T');
    push_digits(out, (secs / 3600) as u64, 2);
    out.push(b':');
    push_digits(out, (secs / 60 % 60) as u64, 2);
    out.push(b':');
    push_digits(out, (secs % 60) as u64, 2);
    if frac != 0 {
        out.push(b'.');
        push_digits(out, frac as u64, 6);
    }
    out.push(b'Z');
}

/// Appends `n` in decimal, zero-padded to `width` digits.
pub(crate) fn push_digits(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    while n > 0 && i > 0 {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    let start = i.min(buf.len().saturating_sub(width));
    out.extend_from_slice(buf.get(start..).unwrap_or(&[]));
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0i64, |n, &d| {
        n.checked_mul(10)?.checked_add(i64::from(d - b'0'))
    })
}

/// Parses a plain date `YYYY-MM-DD` as midnight UTC.
pub fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let year = digits(b.get(0..4)?)?;
    let month = u32::try_from(digits(b.get(5..7)?)?).ok()?;
    let day = u32::try_from(digits(b.get(8..10)?)?).ok()?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    days_from_civil(year, month, day).checked_mul(MICROS_PER_DAY)
}

/// Parses an RFC 3339 instant: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
/// A space or lower-case `t` is accepted in place of `T`, and `z` for `Z`.
/// Fractions finer than a microsecond are cut.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let date = parse_date(s.get(0..10)?)?;
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    let h = digits(b.get(11..13)?)?;
    let mi = digits(b.get(14..16)?)?;
    let sec = digits(b.get(17..19)?)?;
    // 60 allows a leap second, read as the next second.
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 6 {
                frac = frac * 10 + i64::from(b.get(i).copied().unwrap_or(b'0') - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..6 {
            frac *= 10;
        }
    }
    let offset_secs = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), oh1, oh2, b':', om1, om2] => {
            let oh = digits(&[*oh1, *oh2])?;
            let om = digits(&[*om1, *om2])?;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    let secs = h * 3600 + mi * 60 + sec - offset_secs;
    date.checked_add(secs.checked_mul(1_000_000)?)?
        .checked_add(frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59.999999Z");
        let t = parse_rfc3339("2024-02-29T23:59:58.25Z").unwrap();
        assert_eq!(format_rfc3339(t), "2024-02-29T23:59:58.250000Z");
        assert_eq!(
            parse_rfc3339("2024-03-01T01:00:00+02:00"),
            parse_rfc3339("2024-02-29T23:00:00Z")
        );
        assert_eq!(
            parse_rfc3339("2024-03-01 01:00:00z"),
            parse_rfc3339("2024-03-01T01:00:00Z")
        );
        assert_eq!(parse_date("1970-01-02"), Some(MICROS_PER_DAY));
    }

    #[test]
    fn rejects_impossible_dates() {
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("2024-13-01"), None);
        assert_eq!(parse_date("24-01-01"), None);
        assert_eq!(parse_rfc3339("2024-01-01T24:00:00Z"), None);
        assert_eq!(parse_rfc3339("2024-01-01T10:00:00"), None);
        assert_eq!(parse_rfc3339("2024-01-01T10:00:00.Z"), None);
    }

    #[test]
    fn civil_round_trip() {
        for days in [-800_000, -1, 0, 1, 19_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
