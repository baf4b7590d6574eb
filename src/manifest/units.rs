//! Value syntaxes of wasmhook's annotations: Kubernetes quantities (`64Mi`, `1Gi`, `500M`,
//! `1.5Gi`, `1e6`, plain bytes) and Go durations (`500ms`, `5s`, `2m`, `1m30s`, `1.5h`).
//!
//! Invariants: parsing is total (no panics, all arithmetic checked, `u128` intermediates) and
//! rejects anything Kubernetes/Go would reject; quantities round *up* to whole bytes like
//! `Quantity.Value()`.

use std::time::Duration;

/// Parse a Kubernetes quantity into a whole number of bytes (rounded up). Negative values
/// and values above `i64::MAX` (Kubernetes' own cap) are errors.
pub fn parse_quantity_bytes(s: &str) -> Result<u64, String> {
    let bad =
        || "must be a quantity such as 64Mi, 1Gi, 500M or a plain number of bytes".to_string();
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    // number ::= digits | digits.digits | digits. | .digits
    let num_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    let (number, suffix) = rest.split_at(num_len);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err(bad());
    }
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    // Mantissa as an integer and the number of decimal places it carries.
    let mut mantissa: u128 = 0;
    for b in int_part.bytes().chain(frac_part.bytes()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(b - b'0')))
            .ok_or_else(|| "is too large".to_string())?;
    }
    let mut num: u128 = mantissa;
    let mut den: u128 = pow(10, frac_part.len() as u32).ok_or_else(bad)?;
    let scale = |base: u128, exp: u32| pow(base, exp).ok_or_else(|| "is too large".to_string());
    match suffix {
        "" => {}
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
            let exp = match suffix {
                "Ki" => 1,
                "Mi" => 2,
                "Gi" => 3,
                "Ti" => 4,
                "Pi" => 5,
                _ => 6,
            };
            num = num.checked_mul(scale(1024, exp)?).ok_or("is too large")?;
        }
        "m" => den = den.checked_mul(1000).ok_or_else(bad)?,
        "k" | "M" | "G" | "T" | "P" | "E" => {
            let exp = match suffix {
                "k" => 3,
                "M" => 6,
                "G" => 9,
                "T" => 12,
                "P" => 15,
                _ => 18,
            };
            num = num.checked_mul(scale(10, exp)?).ok_or("is too large")?;
        }
        _ => {
            // decimalExponent ::= "e" signedNumber | "E" signedNumber (an integer here).
            let exp = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))
                .ok_or_else(bad)?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let e: i64 = exp.parse().map_err(|_| bad())?;
            let mag = u32::try_from(e.unsigned_abs()).map_err(|_| "is too large".to_string())?;
            if e >= 0 {
                if num != 0 {
                    num = num.checked_mul(scale(10, mag)?).ok_or("is too large")?;
                }
            } else {
                // Tiny values round up to one byte; cap the exponent so pow cannot overflow.
                den = den
                    .checked_mul(pow(10, mag.min(30)).ok_or_else(bad)?)
                    .ok_or_else(bad)?;
            }
        }
    }
    if negative && num != 0 {
        return Err("must not be negative".to_string());
    }
    let bytes = num.div_ceil(den);
    if bytes > i64::MAX as u128 {
        return Err("is too large".to_string());
    }
    Ok(bytes as u64)
}

fn pow(base: u128, exp: u32) -> Option<u128> {
    base.checked_pow(exp)
}

/// Parse a Go `time.ParseDuration` string. Negative durations are rejected (wasmhook never
/// wants one); `"0"` is accepted as Go does.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let bad = || "must be a duration such as 500ms, 30s, 2m or 1m30s".to_string();
    let mut rest = s;
    if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    } else if rest.starts_with('-') {
        return Err("must not be negative".to_string());
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total_ns: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        let unit_len = after
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        let unit_ns: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        let too_large = || "is too large".to_string();
        let mut int_val: u128 = 0;
        for b in int_part.bytes() {
            int_val = int_val
                .checked_mul(10)
                .and_then(|v| v.checked_add(u128::from(b - b'0')))
                .ok_or_else(too_large)?;
        }
        let mut ns = int_val.checked_mul(unit_ns).ok_or_else(too_large)?;
        // Fractional part: Go truncates below a nanosecond.
        let mut scale = unit_ns;
        for b in frac_part.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            ns = ns
                .checked_add(u128::from(b - b'0') * scale)
                .ok_or_else(too_large)?;
        }
        total_ns = total_ns.checked_add(ns).ok_or_else(too_large)?;
        // Go's limit: the duration must fit in an int64 of nanoseconds.
        if total_ns > i64::MAX as u128 {
            return Err(too_large());
        }
        rest = after;
    }
    let secs = (total_ns / 1_000_000_000) as u64;
    let nanos = (total_ns % 1_000_000_000) as u32;
    Ok(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity_bytes("64Mi"), Ok(64 << 20));
        assert_eq!(parse_quantity_bytes("1Gi"), Ok(1 << 30));
        assert_eq!(parse_quantity_bytes("500M"), Ok(500_000_000));
        assert_eq!(parse_quantity_bytes("1.5Gi"), Ok(1_610_612_736));
        assert_eq!(parse_quantity_bytes("1e6"), Ok(1_000_000));
        assert_eq!(parse_quantity_bytes("1E"), Ok(1_000_000_000_000_000_000));
        assert_eq!(parse_quantity_bytes("4096"), Ok(4096));
        assert_eq!(parse_quantity_bytes("1500m"), Ok(2));
        assert_eq!(parse_quantity_bytes(".5k"), Ok(500));
        for bad in [
            "", "Mi", "64MB", "1..2", "1.2.3", "e3", "1e", "1e+", "-1Mi", "9Ei", "1e999",
        ] {
            assert!(parse_quantity_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_go_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("2us"), Ok(Duration::from_micros(2)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        for bad in [
            "",
            "5",
            "5x",
            "1m 30s",
            ".s",
            "-5s",
            "s",
            "1h1",
            "99999999999h",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }
}
