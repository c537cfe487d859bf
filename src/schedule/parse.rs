//! Reading a schedule's text: time zone names, classic five-field cron expressions and window
//! durations, each refused with a reason that names what is wrong.

use jiff::SignedDuration;
use jiff::tz::{TimeZone, TimeZoneDatabase};

use super::MAX_WINDOW_DURATION;
use crate::duration::{DurationError, parse_go_duration};
/// Looks `name` up in the system's time zone database (kept current by the image) and, when that
/// lacks it or is missing (a container without /usr/share/zoneinfo), in the copy compiled into the
/// binary.
pub(super) fn find_time_zone(name: &str) -> Option<TimeZone> {
    find_time_zone_in(jiff::tz::db(), name)
}

pub(super) fn find_time_zone_in(system: &TimeZoneDatabase, name: &str) -> Option<TimeZone> {
    let time_zone = system
        .get(name)
        .or_else(|_| TimeZoneDatabase::bundled().get(name))
        .ok()?;
    // jiff answers `Etc/Unknown` with a placeholder zone; it names no real place.
    (!time_zone.is_unknown()).then_some(time_zone)
}

/// Rejects what croner would accept beyond classic five-field cron (croner then checks the
/// structure and the ranges), and names the field at fault.
pub(super) fn check_classic_cron(expression: &str) -> Result<(), String> {
    const NONE: &[&str] = &[];
    const MONTHS: &[&str] = &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    const WEEKDAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    /// Each field: its name, the names it accepts, and what a value must be.
    const FIELDS: [(&str, &[&str], &str); 5] = [
        ("minute", NONE, "a number"),
        ("hour", NONE, "a number"),
        ("day-of-month", NONE, "a number"),
        ("month", MONTHS, "a number or JAN to DEC"),
        ("day-of-week", WEEKDAYS, "a number or SUN to SAT"),
    ];

    let fields: Vec<&str> = expression.split_whitespace().collect();
    if fields.len() != FIELDS.len() {
        let hint = match fields.len() {
            6 | 7 => " (seconds and years are not supported)",
            _ => "",
        };
        return Err(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week), found {}{hint}",
            fields.len()
        ));
    }
    for (field, (name, names, expected)) in fields.into_iter().zip(FIELDS) {
        if let Some(c) = field
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '*' | ',' | '-' | '/')))
        {
            return Err(format!(
                "{name} field {field:?}: {c:?} is not supported (use numbers, names, *, ranges, lists and steps)"
            ));
        }
        // The values between the separators of lists, ranges and steps.
        for value in field.split([',', '-', '/']) {
            if value.is_empty() {
                return Err(format!("{name} field {field:?}: a value is missing"));
            }
            let is_number = value.bytes().all(|b| b.is_ascii_digit());
            let is_name = names.iter().any(|n| n.eq_ignore_ascii_case(value));
            if !(value == "*" || is_number || is_name) {
                return Err(format!(
                    "{name} field {field:?}: {value:?} is not {expected}"
                ));
            }
        }
    }
    Ok(())
}

/// A window's duration: a Go duration, greater than zero and at most [`MAX_WINDOW_DURATION`].
pub(super) fn window_duration(input: &str) -> Result<SignedDuration, String> {
    let duration = match parse_go_duration(input) {
        Ok(duration) => duration,
        Err(DurationError::Negative(_)) => return Err("must be greater than zero".to_owned()),
        Err(e) => return Err(e.to_string()),
    };
    if duration.is_zero() {
        return Err("must be greater than zero".to_owned());
    }
    match SignedDuration::try_from(duration) {
        Ok(duration) if duration <= MAX_WINDOW_DURATION => Ok(duration),
        _ => Err("must be at most 168h (one week)".to_owned()),
    }
}
