//! Go's `time.ParseDuration` syntax ("10s", "5m", "1h30m", "100ms", "1.5h"), which Nomad
//! uses for `?wait=`, duration-valued agent config keys and driver options.

use std::time::Duration;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Empty input, a missing number or a number without a unit.
    #[error("invalid duration {0:?}")]
    Invalid(String),
    /// A unit other than ns, us, µs, ms, s, m, h.
    #[error("unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit {
        /// The offending unit.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// The value does not fit in Go's int64 nanoseconds.
    #[error("invalid duration {0:?}: out of range")]
    Overflow(String),
    /// A negative value where only non-negative durations make sense.
    #[error("invalid duration {0:?}: must not be negative")]
    Negative(String),
}

/// Nanoseconds per unit suffix; `µ` (micro sign) and `μ` (Greek mu) both mean micro, as in Go.
fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Parses a Go duration into signed nanoseconds (Go's `time.Duration`).
pub fn parse_go_duration_nanos(input: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError::Invalid(input.to_string());
    let (negative, mut rest) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    // Go accepts a bare "0" (with optional sign) and nothing else without a unit.
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after_int) = rest.split_at(int_len);
        let (frac_part, after_num) = match after_int.strip_prefix('.') {
            Some(tail) => {
                let frac_len = tail.bytes().take_while(u8::is_ascii_digit).count();
                tail.split_at(frac_len)
            }
            None => ("", after_int),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = after_num
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(after_num.len(), |(i, _)| i);
        let (unit, tail) = after_num.split_at(unit_len);
        if unit.is_empty() {
            return Err(invalid());
        }
        let scale = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit.to_string(),
            input: input.to_string(),
        })?;
        let overflow = || DurationError::Overflow(input.to_string());
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| overflow())?
        };
        let mut value = whole.checked_mul(scale).ok_or_else(overflow)?;
        if !frac_part.is_empty() {
            // Digits past nanosecond precision of the largest unit cannot change the result.
            let digits = &frac_part[..frac_part.len().min(20)];
            let numer: u128 = digits.parse().map_err(|_| overflow())?;
            let denom = 10u128.pow(digits.len() as u32);
            value = value
                .checked_add(numer * scale / denom)
                .ok_or_else(overflow)?;
        }
        total = total.checked_add(value).ok_or_else(overflow)?;
        rest = tail;
    }
    let limit = if negative {
        i64::MAX as u128 + 1
    } else {
        i64::MAX as u128
    };
    if total > limit {
        return Err(DurationError::Overflow(input.to_string()));
    }
    let signed = if negative {
        (total as i128).wrapping_neg() as i64
    } else {
        total as i64
    };
    Ok(signed)
}

/// Parses a non-negative Go duration.
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let nanos = parse_go_duration_nanos(input)?;
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| DurationError::Negative(input.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_examples() {
        let ms = |n: u64| Duration::from_millis(n);
        assert_eq!(parse_go_duration("10s"), Ok(ms(10_000)));
        assert_eq!(parse_go_duration("5m"), Ok(ms(300_000)));
        assert_eq!(parse_go_duration("100ms"), Ok(ms(100)));
        assert_eq!(parse_go_duration("1h30m"), Ok(ms(5_400_000)));
        assert_eq!(parse_go_duration("1.5h"), Ok(ms(5_400_000)));
        assert_eq!(parse_go_duration(".5s"), Ok(ms(500)));
        assert_eq!(parse_go_duration("1.s"), Ok(ms(1_000)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_go_duration("+3s"), Ok(ms(3_000)));
        assert_eq!(parse_go_duration("3us"), Ok(Duration::from_nanos(3_000)));
        assert_eq!(parse_go_duration("3µs"), Ok(Duration::from_nanos(3_000)));
        assert_eq!(parse_go_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_go_duration_nanos("-2s"), Ok(-2_000_000_000));
    }

    #[test]
    fn rejects_what_go_rejects() {
        for bad in [
            "",
            "s",
            "10",
            "1.5",
            "-",
            ".s",
            "10x",
            "1s2",
            "ten seconds",
            "1e3s",
        ] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?} should fail");
        }
        assert!(matches!(
            parse_go_duration("3d"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_go_duration("99999999999999999999h"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse_go_duration("-1s"),
            Err(DurationError::Negative(_))
        ));
    }
}
