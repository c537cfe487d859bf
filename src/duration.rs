//! Durations as Kubernetes users write them: Go's `time.ParseDuration` syntax (`90s`, `1h30m`),
//! the form `kubectl` and most operators take.

use std::time::Duration;

/// Why a Go duration string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration: expected a Go duration such as 45m, 1h or 1h30m")]
    Empty,
    #[error("invalid duration {0:?}: negative durations are not allowed")]
    Negative(String),
    #[error(
        "invalid duration {0:?}: expected a number followed by a unit (ns, us, µs, ms, s, m, h), such as 1h30m"
    )]
    Invalid(String),
    #[error(
        "invalid duration {input:?}: missing unit after {number:?} (use ns, us, µs, ms, s, m or h)"
    )]
    MissingUnit { input: String, number: String },
    #[error("invalid duration {input:?}: unknown unit {unit:?} (use ns, us, µs, ms, s, m or h)")]
    UnknownUnit { input: String, unit: String },
    #[error("invalid duration {0:?}: too large")]
    Overflow(String),
}

/// Parses a Go `time.ParseDuration` string (`300ms`, `1.5h`, `2h45m`, `0`) into a [`Duration`].
/// Negative durations are rejected; the largest accepted value is Go's (`i64::MAX` nanoseconds).
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    const MAX_NANOS: u128 = i64::MAX as u128;
    let invalid = || DurationError::Invalid(input.to_owned());
    let overflow = || DurationError::Overflow(input.to_owned());

    if input.is_empty() {
        return Err(DurationError::Empty);
    }
    let (negative, mut s) = match input.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, input.strip_prefix('+').unwrap_or(input)),
    };
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }

    let mut total: u128 = 0;
    while !s.is_empty() {
        let start = input.len() - s.len();
        // Integer part.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, rest) = s.split_at(int_len);
        s = rest;
        // Fraction part.
        let mut frac_digits = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            let (f, r) = rest.split_at(frac_len);
            frac_digits = f;
            s = r;
        }
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(invalid());
        }
        let number = &input[start..input.len() - s.len()];
        // Unit.
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        let (unit, rest) = s.split_at(unit_len);
        s = rest;
        let unit_nanos: u128 = match unit {
            "" => {
                return Err(DurationError::MissingUnit {
                    input: input.to_owned(),
                    number: number.to_owned(),
                });
            }
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            other => {
                return Err(DurationError::UnknownUnit {
                    input: input.to_owned(),
                    unit: other.to_owned(),
                });
            }
        };
        let mut int_value: u128 = 0;
        for b in int_digits.bytes() {
            int_value = int_value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u128::from(b - b'0')))
                .filter(|v| *v <= MAX_NANOS)
                .ok_or_else(overflow)?;
        }
        let mut value = int_value.checked_mul(unit_nanos).ok_or_else(overflow)?;
        // Fractions finer than a nanosecond are dropped, as in Go.
        let mut scale = unit_nanos;
        for b in frac_digits.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            value += u128::from(b - b'0') * scale;
        }
        total = total.checked_add(value).ok_or_else(overflow)?;
        if total > MAX_NANOS {
            return Err(overflow());
        }
    }
    if negative && total != 0 {
        return Err(DurationError::Negative(input.to_owned()));
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| overflow())?;
    let nanos = u32::try_from(total % 1_000_000_000).map_err(|_| overflow())?;
    Ok(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        match parse_go_duration(s) {
            Ok(d) => d,
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    #[test]
    fn parses_go_durations() {
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("-0"), Duration::ZERO);
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("+5s"), Duration::from_secs(5));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("2h45m10s"), Duration::from_secs(2 * 3600 + 45 * 60 + 10));
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("1.s"), Duration::from_secs(1));
        assert_eq!(ok("300ms"), Duration::from_millis(300));
        assert_eq!(ok("10us"), Duration::from_micros(10));
        assert_eq!(ok("10µs"), Duration::from_micros(10));
        assert_eq!(ok("10μs"), Duration::from_micros(10));
        assert_eq!(ok("7ns"), Duration::from_nanos(7));
        assert_eq!(ok("1.0000000001s"), Duration::from_secs(1));
        assert_eq!(ok("1m0.5s"), Duration::from_millis(60_500));
        assert_eq!(
            ok("9223372036854775807ns"),
            Duration::from_nanos(i64::MAX as u64)
        );
    }

    #[test]
    fn rejects_bad_durations() {
        assert_eq!(parse_go_duration(""), Err(DurationError::Empty));
        assert!(matches!(
            parse_go_duration("-1h"),
            Err(DurationError::Negative(_))
        ));
        assert!(matches!(
            parse_go_duration("h"),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_go_duration("."),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_go_duration("-"),
            Err(DurationError::Invalid(_))
        ));
        assert_eq!(parse_go_duration("-0s"), Ok(Duration::ZERO));
        assert!(matches!(
            parse_go_duration("+"),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_go_duration("1h "),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_go_duration("1d"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_go_duration("1H"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_go_duration("10"),
            Err(DurationError::MissingUnit { number, .. }) if number == "10"
        ));
        assert!(matches!(
            parse_go_duration("1h30"),
            Err(DurationError::MissingUnit { .. })
        ));
        assert!(matches!(
            parse_go_duration("9223372036854775808ns"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse_go_duration("3000000h"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse_go_duration("99999999999999999999999999999999999999999h"),
            Err(DurationError::Overflow(_))
        ));
        let msg = parse_go_duration("1d")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("unknown unit \"d\""), "{msg}");
    }
}
