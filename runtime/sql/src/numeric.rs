//! PostgreSQL's `numeric` in its binary wire format, to and from decimal
//! text, exactly.
//!
//! The format (PostgreSQL's `numeric_send`): four big-endian 16-bit header
//! fields — `ndigits`, `weight` (the power of 10000 of the first digit),
//! `sign` (`0x0000` positive, `0x4000` negative, `0xC000` NaN, `0xD000`
//! +Infinity, `0xF000` -Infinity), `dscale` (digits after the decimal point
//! to display) — then `ndigits` base-10000 digits, most significant first,
//! without leading or trailing zero digits.

const SIGN_POS: u16 = 0x0000;
const SIGN_NEG: u16 = 0x4000;
const SIGN_NAN: u16 = 0xC000;
const SIGN_PINF: u16 = 0xD000;
const SIGN_NINF: u16 = 0xF000;
/// PostgreSQL's limits: `NUMERIC_MAX_DISPLAY_SCALE` is 1000 for typmod-less
/// input, but the wire format allows a dscale up to 0x3FFF.
const MAX_DSCALE: usize = 0x3FFF;
/// At most 131072 digits before the decimal point.
const MAX_INT_DIGITS: usize = 131_072;

/// Encodes decimal text (`-12.50`, `1e6`, `NaN`, `Infinity`) as a binary
/// `numeric`.
pub(crate) fn encode_text(text: &str) -> Result<Vec<u8>, String> {
    let t = text.trim();
    let special = match t.to_ascii_lowercase().as_str() {
        "nan" => Some(SIGN_NAN),
        "infinity" | "+infinity" | "inf" | "+inf" => Some(SIGN_PINF),
        "-infinity" | "-inf" => Some(SIGN_NINF),
        _ => None,
    };
    if let Some(sign) = special {
        return Ok(header(0, 0, sign, 0));
    }
    let bad = || format!("`{text}` is not a decimal number");
    let bytes = t.as_bytes();
    let mut pos = 0;
    let negative = match bytes.first() {
        Some(b'-') => {
            pos += 1;
            true
        }
        Some(b'+') => {
            pos += 1;
            false
        }
        _ => false,
    };
    // All significant digits in order, and how many of them came after the
    // decimal point.
    let mut digits: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut frac_len: i64 = 0;
    let mut seen_point = false;
    let mut any_digit = false;
    while let Some(&b) = bytes.get(pos) {
        match b {
            b'0'..=b'9' => {
                digits.push(b - b'0');
                any_digit = true;
                if seen_point {
                    frac_len += 1;
                }
            }
            b'.' if !seen_point => seen_point = true,
            _ => break,
        }
        pos += 1;
    }
    if !any_digit {
        return Err(bad());
    }
    let mut exponent: i64 = 0;
    if matches!(bytes.get(pos), Some(b'e' | b'E')) {
        pos += 1;
        let exp_text = t.get(pos..).ok_or_else(bad)?;
        exponent = exp_text.parse::<i64>().map_err(|_| bad())?;
        if exponent.abs() > 1_000_000 {
            return Err(format!("`{text}`: exponent out of range"));
        }
        pos = bytes.len();
    }
    if pos != bytes.len() {
        return Err(bad());
    }
    // value = digits * 10^(exponent - frac_len)
    let scale = frac_len - exponent; // digits after the point
    let dscale = usize::try_from(scale.max(0)).map_err(|_| bad())?;
    if dscale > MAX_DSCALE {
        return Err(format!("`{text}`: too many digits after the decimal point"));
    }
    // Split into integer digits and fraction digits of length `dscale`.
    let (int_digits, frac_digits): (Vec<u8>, Vec<u8>) = if scale <= 0 {
        let zeros = usize::try_from(-scale).map_err(|_| bad())?;
        let mut int = digits;
        int.extend(std::iter::repeat_n(0, zeros));
        (int, Vec::new())
    } else if (scale as usize) <= digits.len() {
        let split = digits.len() - scale as usize;
        let frac = digits.split_off(split);
        (digits, frac)
    } else {
        let mut frac = vec![0; scale as usize - digits.len()];
        frac.extend(digits);
        (Vec::new(), frac)
    };
    let first_nonzero = int_digits.iter().position(|&d| d != 0);
    let int_digits: &[u8] = match first_nonzero {
        Some(i) => &int_digits[i..],
        None => &[],
    };
    if int_digits.len() > MAX_INT_DIGITS {
        return Err(format!(
            "`{text}`: too many digits before the decimal point"
        ));
    }
    // Base-10000 groups, aligned on the decimal point.
    let mut groups: Vec<i16> = Vec::new();
    let lead = int_digits.len() % 4;
    let mut weight: i64 = (int_digits.len() as i64 + 3) / 4 - 1;
    let mut chunk = |ds: &[u8]| {
        let mut g: i16 = 0;
        for i in 0..4 {
            g = g * 10 + i16::from(ds.get(i).copied().unwrap_or(0));
        }
        groups.push(g);
    };
    if lead != 0 {
        let mut first = vec![0; 4 - lead];
        first.extend_from_slice(&int_digits[..lead]);
        chunk(&first);
    }
    for c in int_digits[lead..].chunks(4) {
        chunk(c);
    }
    for c in frac_digits.chunks(4) {
        chunk(c); // a short last chunk is padded with zeros on the right
    }
    // Drop leading zero groups (each lowers the weight) and trailing ones.
    let leading = groups.iter().take_while(|&&g| g == 0).count();
    groups.drain(..leading);
    weight -= leading as i64;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    let dscale = dscale as u16;
    if groups.is_empty() {
        return Ok(header(0, 0, SIGN_POS, dscale));
    }
    let weight = i16::try_from(weight).map_err(|_| format!("`{text}`: out of range"))?;
    let ndigits = u16::try_from(groups.len()).map_err(|_| format!("`{text}`: out of range"))?;
    let mut out = header(
        ndigits,
        weight,
        if negative { SIGN_NEG } else { SIGN_POS },
        dscale,
    );
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Ok(out)
}

fn header(ndigits: u16, weight: i16, sign: u16, dscale: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 2 * usize::from(ndigits));
    out.extend_from_slice(&ndigits.to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    out
}

/// Decodes a binary `numeric` into PostgreSQL's text form (`-12.50`, `NaN`,
/// `Infinity`), exactly.
pub(crate) fn decode_text(raw: &[u8]) -> Result<String, String> {
    let bad = || "malformed numeric value".to_string();
    let field = |i: usize| -> Result<[u8; 2], String> {
        raw.get(i * 2..i * 2 + 2)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(bad)
    };
    let ndigits = usize::from(u16::from_be_bytes(field(0)?));
    let weight = i64::from(i16::from_be_bytes(field(1)?));
    let sign = u16::from_be_bytes(field(2)?);
    let dscale = usize::from(u16::from_be_bytes(field(3)?));
    match sign {
        SIGN_NAN => return Ok("NaN".into()),
        SIGN_PINF => return Ok("Infinity".into()),
        SIGN_NINF => return Ok("-Infinity".into()),
        SIGN_POS | SIGN_NEG => {}
        _ => return Err(bad()),
    }
    if raw.len() != 8 + 2 * ndigits {
        return Err(bad());
    }
    let digits: Vec<i64> = (0..ndigits)
        .map(|i| field(4 + i).map(|b| i64::from(i16::from_be_bytes(b))))
        .collect::<Result<_, _>>()?;
    if digits.iter().any(|&d| !(0..10_000).contains(&d)) {
        return Err(bad());
    }
    // The digit of weight w (10000^w) is digits[weight - w].
    let digit_at = |w: i64| -> i64 {
        let idx = weight - w;
        if idx < 0 {
            return 0;
        }
        usize::try_from(idx)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    let mut out = String::new();
    if sign == SIGN_NEG && ndigits > 0 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        out.push_str(&digit_at(weight).to_string());
        for w in (0..weight).rev() {
            out.push_str(&format!("{:04}", digit_at(w)));
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut frac = String::with_capacity(dscale + 4);
        let mut w = -1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit_at(w)));
            w -= 1;
        }
        frac.truncate(dscale);
        out.push_str(&frac);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> String {
        decode_text(&encode_text(text).unwrap()).unwrap()
    }

    #[test]
    fn encodes_like_postgres() {
        // SELECT numeric_send('12345.678'::numeric): 0003 0001 0000 0003 0001 0929 1a5c
        assert_eq!(
            hex::encode(encode_text("12345.678").unwrap()),
            "0003000100000003000109291a7c"
        );
        // numeric_send('-0.0001'): 0001 ffff 4000 0004 0001
        assert_eq!(
            hex::encode(encode_text("-0.0001").unwrap()),
            "0001ffff400000040001"
        );
        // numeric_send('0'): 0000 0000 0000 0000
        assert_eq!(hex::encode(encode_text("0").unwrap()), "0000000000000000");
        // numeric_send('0.00'): dscale 2
        assert_eq!(
            hex::encode(encode_text("0.00").unwrap()),
            "0000000000000002"
        );
        // numeric_send('10000'): one digit 1, weight 1
        assert_eq!(
            hex::encode(encode_text("10000").unwrap()),
            "00010001000000000001"
        );
        assert_eq!(hex::encode(encode_text("NaN").unwrap()), "00000000c0000000");
        assert_eq!(
            hex::encode(encode_text("-Infinity").unwrap()),
            "00000000f0000000"
        );
    }

    #[test]
    fn text_round_trips() {
        for t in [
            "0",
            "1",
            "-1",
            "12345.678",
            "-12345.678",
            "0.0001",
            "-0.001",
            "1.50",
            "100000000",
            "99999999999999999999999999999999999999.000000000000000000000000001",
            "-123456789012345678901234567890.123456789",
            "0.000000000000000000000000000000000001",
            "9223372036854775807",
            "-9223372036854775808",
            "NaN",
            "Infinity",
            "-Infinity",
        ] {
            assert_eq!(round_trip(t), t);
        }
        assert_eq!(round_trip("+7"), "7");
        assert_eq!(round_trip("007.10"), "7.10");
        assert_eq!(round_trip("-0"), "0");
        assert_eq!(round_trip("-0.00"), "0.00");
        assert_eq!(round_trip("1e6"), "1000000");
        assert_eq!(round_trip("1.5E-3"), "0.0015");
        assert_eq!(round_trip("12.5e1"), "125");
        assert_eq!(round_trip(".5"), "0.5");
        assert_eq!(round_trip("5."), "5");
        assert_eq!(round_trip("nan"), "NaN");
    }

    #[test]
    fn refuses_non_numbers() {
        for t in ["", "-", "abc", "1.2.3", "1e", "1e5x", "12a", "--1"] {
            assert!(encode_text(t).is_err(), "{t}");
        }
        assert!(decode_text(&[0, 1]).is_err());
        assert!(decode_text(&hex::decode("0001000000000000").unwrap()).is_err());
    }
}
