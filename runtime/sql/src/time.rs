//! Time for the SQL backend: PostgreSQL's epoch (2000-01-01), RFC 3339 and
//! PostgreSQL text for timestamps, dates and times, over ferry's one
//! calendar (`ferry-time`).

/// Microseconds in a day.
pub(crate) const MICROS_PER_DAY: i64 = 86_400_000_000;
/// Days from 1970-01-01 to 2000-01-01.
pub(crate) const PG_EPOCH_DAYS: i64 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
pub(crate) const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS * MICROS_PER_DAY;

// The calendar is ferry's one (`ferry-time`).
pub(crate) use ferry_time::{civil_from_days, days_from_civil, days_in_month};

/// `2026-11-27T10:00:00.123456Z`: microseconds since the Unix epoch as RFC
/// 3339 text in UTC, always with six fractional digits (so that the text
/// sorts like the instant).
pub(crate) fn format_rfc3339_micros(micros: i64) -> String {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let in_day = micros.rem_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let secs = in_day / 1_000_000;
    let frac = in_day % 1_000_000;
    format!(
        "{}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        format_year(y),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn format_year(y: i64) -> String {
    if y < 0 {
        format!("-{:04}", -y)
    } else {
        format!("{y:04}")
    }
}

/// PostgreSQL's text form of a date given as days since 1970-01-01:
/// `2026-11-27`, or `0044-03-15 BC` before year 1.
pub(crate) fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    if y <= 0 {
        format!("{:04}-{m:02}-{d:02} BC", 1 - y)
    } else {
        format!("{y:04}-{m:02}-{d:02}")
    }
}

/// PostgreSQL's text form of a time of day given in microseconds:
/// `HH:MM:SS`, with the fraction's trailing zeros dropped (`10:00:00.5`).
pub(crate) fn format_time(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let mut out = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac != 0 {
        let digits = format!("{frac:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out
}

/// Parses `YYYY-MM-DD` into days since 1970-01-01.
pub(crate) fn parse_date(text: &str) -> Result<i64, String> {
    let mut cur = Cursor::new(text.trim());
    let days = cur.date()?;
    if !cur.done() {
        return Err(format!("`{text}` is not a date (YYYY-MM-DD)"));
    }
    Ok(days)
}

/// Parses RFC 3339 (`2026-11-27T10:00:00.123456Z`, `2026-11-27 10:00:00+02:00`)
/// and its relatives: a space instead of `T`, seconds and fraction optional,
/// up to nine fractional digits (rounded to microseconds), an offset of `Z`,
/// `±HH`, `±HHMM` or `±HH:MM`, or none (then the time is UTC); a bare date
/// means midnight. Returns microseconds since the Unix epoch.
pub fn parse_timestamp(text: &str) -> Result<i64, String> {
    let bad =
        || format!("`{text}` is not an RFC 3339 timestamp (such as 2026-11-27T10:00:00.123456Z)");
    let mut cur = Cursor::new(text.trim());
    let days = cur.date().map_err(|_| bad())?;
    let mut micros_in_day: i64 = 0;
    if cur.eat(b'T') || cur.eat(b't') || cur.eat(b' ') {
        let h = cur.digits(2).ok_or_else(bad)?;
        if !cur.eat(b':') {
            return Err(bad());
        }
        let mi = cur.digits(2).ok_or_else(bad)?;
        let mut s = 0;
        let mut frac_micros = 0;
        if cur.eat(b':') {
            s = cur.digits(2).ok_or_else(bad)?;
            if cur.eat(b'.') || cur.eat(b',') {
                let (value, count) = cur.fraction();
                if count == 0 || count > 9 {
                    return Err(bad());
                }
                // Scale to nanoseconds, then round to microseconds.
                let nanos = value * 10_i64.pow(9 - count);
                frac_micros = (nanos + 500) / 1000;
            }
        }
        if h > 24 || mi > 59 || s > 60 || (h == 24 && (mi != 0 || s != 0 || frac_micros != 0)) {
            return Err(bad());
        }
        // A leap second (:60) is folded into the next minute's first second.
        micros_in_day = ((h * 60 + mi) * 60 + s) * 1_000_000 + frac_micros;
    }
    let mut offset_secs: i64 = 0;
    if cur.eat(b'Z') || cur.eat(b'z') {
        // UTC
    } else if let Some(sign) = cur.sign() {
        let oh = cur.digits(2).ok_or_else(bad)?;
        cur.eat(b':');
        let om = cur.digits(2).unwrap_or(0);
        if oh > 15 || om > 59 {
            return Err(bad());
        }
        offset_secs = sign * (oh * 3600 + om * 60);
    }
    if !cur.done() {
        return Err(bad());
    }
    days.checked_mul(MICROS_PER_DAY)
        .and_then(|v| v.checked_add(micros_in_day))
        .and_then(|v| v.checked_sub(offset_secs * 1_000_000))
        .ok_or_else(bad)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Cursor<'a> {
        Cursor {
            bytes: text.as_bytes(),
            pos: 0,
        }
    }

    fn done(&self) -> bool {
        self.pos == self.bytes.len()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.bytes.get(self.pos) == Some(&b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn sign(&mut self) -> Option<i64> {
        if self.eat(b'+') {
            Some(1)
        } else if self.eat(b'-') {
            Some(-1)
        } else {
            None
        }
    }

    /// Exactly `n` ASCII digits.
    fn digits(&mut self, n: usize) -> Option<i64> {
        let end = self.pos.checked_add(n)?;
        let slice = self.bytes.get(self.pos..end)?;
        let mut value = 0_i64;
        for &b in slice {
            if !b.is_ascii_digit() {
                return None;
            }
            value = value * 10 + i64::from(b - b'0');
        }
        self.pos = end;
        Some(value)
    }

    /// Digits up to the first non-digit: (value of the first nine, count).
    fn fraction(&mut self) -> (i64, u32) {
        let mut value = 0_i64;
        let mut count = 0_u32;
        while let Some(&b) = self.bytes.get(self.pos) {
            if !b.is_ascii_digit() {
                break;
            }
            count += 1;
            if count <= 9 {
                value = value * 10 + i64::from(b - b'0');
            }
            self.pos += 1;
        }
        (value, count)
    }

    /// `YYYY-MM-DD` (four or more year digits, optionally signed).
    fn date(&mut self) -> Result<i64, String> {
        let start = self.pos;
        let bad = || "not a date (YYYY-MM-DD)".to_string();
        let negative = self.eat(b'-');
        let digits_start = self.pos;
        let mut year: i64 = 0;
        while let Some(&b) = self.bytes.get(self.pos) {
            if !b.is_ascii_digit() {
                break;
            }
            year = year
                .checked_mul(10)
                .and_then(|y| y.checked_add(i64::from(b - b'0')))
                .ok_or_else(bad)?;
            self.pos += 1;
            if self.pos - digits_start > 7 {
                return Err(bad());
            }
        }
        if self.pos - digits_start < 4 {
            self.pos = start;
            return Err(bad());
        }
        if negative {
            year = -year;
        }
        if !self.eat(b'-') {
            return Err(bad());
        }
        let month = self.digits(2).ok_or_else(bad)?;
        if !self.eat(b'-') {
            return Err(bad());
        }
        let day = self.digits(2).ok_or_else(bad)?;
        let (month, day) = (
            u32::try_from(month).map_err(|_| bad())?,
            u32::try_from(day).map_err(|_| bad())?,
        );
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return Err(bad());
        }
        Ok(days_from_civil(year, month, day))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in [-800_000_i64, -719_468, -1, 0, 1, 10_957, 20_000, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(PG_EPOCH_DAYS), (2000, 1, 1));
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
    }

    #[test]
    fn rfc3339_format_and_parse() {
        let t = parse_timestamp("2026-11-27T10:00:00.123456Z").unwrap();
        assert_eq!(t, 1_795_773_600_123_456);
        assert_eq!(format_rfc3339_micros(t), "2026-11-27T10:00:00.123456Z");
        assert_eq!(format_rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(format_rfc3339_micros(-1), "1969-12-31T23:59:59.999999Z");
        let plus2 = parse_timestamp("2026-11-27 12:00:00.123456+02:00").unwrap();
        assert_eq!(plus2, t);
        let minus = parse_timestamp("2026-11-27T05:30-0430").unwrap();
        assert_eq!(format_rfc3339_micros(minus), "2026-11-27T10:00:00.000000Z");
        let naive = parse_timestamp("2026-11-27").unwrap();
        assert_eq!(format_rfc3339_micros(naive), "2026-11-27T00:00:00.000000Z");
        let nanos = parse_timestamp("2026-11-27T10:00:00.1234567Z").unwrap();
        assert_eq!(nanos, t + 1);
        let round_up = parse_timestamp("2026-11-27T23:59:59.9999999Z").unwrap();
        assert_eq!(
            format_rfc3339_micros(round_up),
            "2026-11-28T00:00:00.000000Z"
        );
        for bad in [
            "2026-13-01T00:00:00Z",
            "2026-02-30",
            "2026-11-27T25:00:00Z",
            "2026-11-27T10:00:00ZZ",
            "yesterday",
            "26-11-27",
            "",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(parse_date("2000-01-01").unwrap(), PG_EPOCH_DAYS);
        assert_eq!(format_date(PG_EPOCH_DAYS), "2000-01-01");
        assert_eq!(format_date(days_from_civil(-43, 3, 15)), "0044-03-15 BC");
        assert_eq!(format_date(days_from_civil(12_345, 6, 7)), "12345-06-07");
        assert!(parse_date("2000-01-01T00:00:00Z").is_err());
        assert_eq!(format_time(0), "00:00:00");
        assert_eq!(format_time(36_000_500_000), "10:00:00.5");
        assert_eq!(format_time(86_399_999_999), "23:59:59.999999");
        assert_eq!(format_time(MICROS_PER_DAY), "24:00:00");
    }
}
