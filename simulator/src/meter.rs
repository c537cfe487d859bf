//! The cost meter: how long a computer was billed, inside and outside metering windows.
//!
//! Pure arithmetic on half-open wall-clock intervals in epoch milliseconds, so it can be tested
//! without a clock.

use serde::{Deserialize, Serialize};

/// A half-open span `[start, end)` of wall-clock epoch milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Interval {
    pub start: i64,
    pub end: i64,
}

impl Interval {
    pub(crate) fn new(start: i64, end: i64) -> Self {
        Self { start, end }
    }

    fn len(self) -> i64 {
        (self.end - self.start).max(0)
    }
}

/// A metering window: `{"start": "2026-03-02T08:00:00Z", "end": "2026-03-02T18:00:00Z"}`,
/// RFC 3339 instants, half-open (`start` counts, `end` does not), compared on the wall clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeterWindow {
    /// First instant inside.
    pub start: jiff::Timestamp,
    /// First instant after.
    pub end: jiff::Timestamp,
}

impl MeterWindow {
    /// The window `[start, end)`.
    pub fn new(start: jiff::Timestamp, end: jiff::Timestamp) -> Self {
        Self { start, end }
    }

    pub(crate) fn interval(self) -> Interval {
        Interval::new(self.start.as_millisecond(), self.end.as_millisecond())
    }
}

/// Billed time, split by the windows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Reading {
    pub total_millis: i64,
    pub inside_millis: i64,
}

impl Reading {
    pub(crate) fn outside_millis(self) -> i64 {
        self.total_millis - self.inside_millis
    }
}

/// Billed time of `billed` (disjoint intervals) in all, and the part that falls inside any of
/// `windows`. Windows may overlap or come in any order: time inside two is counted once.
pub(crate) fn read(billed: &[Interval], windows: &[Interval]) -> Reading {
    let windows = merged(windows);
    let mut reading = Reading::default();
    for interval in billed {
        reading.total_millis += interval.len();
        for window in &windows {
            let start = interval.start.max(window.start);
            let end = interval.end.min(window.end);
            reading.inside_millis += Interval::new(start, end).len();
        }
    }
    reading
}

/// The union of `intervals`, sorted and disjoint (empty ones dropped).
fn merged(intervals: &[Interval]) -> Vec<Interval> {
    let mut sorted: Vec<Interval> = intervals.iter().copied().filter(|i| i.len() > 0).collect();
    sorted.sort_by_key(|i| i.start);
    let mut union: Vec<Interval> = Vec::with_capacity(sorted.len());
    for interval in sorted {
        match union.last_mut() {
            Some(last) if interval.start <= last.end => last.end = last.end.max(interval.end),
            _ => union.push(interval),
        }
    }
    union
}

/// Milliseconds as fractional seconds, as the views report them.
pub(crate) fn seconds(millis: i64) -> f64 {
    millis as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(start: i64, end: i64) -> Interval {
        Interval::new(start, end)
    }

    #[test]
    fn no_windows_means_everything_is_outside() {
        let reading = read(&[iv(0, 1000), iv(5000, 5500)], &[]);
        assert_eq!(reading.total_millis, 1500);
        assert_eq!(reading.inside_millis, 0);
        assert_eq!(reading.outside_millis(), 1500);
        assert_eq!(read(&[], &[iv(0, 10)]), Reading::default());
    }

    #[test]
    fn windows_are_half_open_and_cut_intervals_at_their_edges() {
        // Billed 0..10s; window 2..5s inside, the rest outside.
        let reading = read(&[iv(0, 10_000)], &[iv(2_000, 5_000)]);
        assert_eq!(
            (reading.inside_millis, reading.outside_millis()),
            (3_000, 7_000)
        );
        // Touching at an edge shares no time.
        assert_eq!(read(&[iv(0, 1_000)], &[iv(1_000, 2_000)]).inside_millis, 0);
        assert_eq!(read(&[iv(1_000, 2_000)], &[iv(0, 1_000)]).inside_millis, 0);
        // A window covering the interval takes it all.
        assert_eq!(read(&[iv(100, 200)], &[iv(0, 1_000)]).inside_millis, 100);
    }

    #[test]
    fn overlapping_windows_count_once_and_order_does_not_matter() {
        let billed = [iv(0, 10_000), iv(20_000, 30_000)];
        let windows = [iv(25_000, 40_000), iv(5_000, 8_000), iv(6_000, 9_000)];
        let reading = read(&billed, &windows);
        // 5..9s of the first interval, 25..30s of the second.
        assert_eq!(reading.total_millis, 20_000);
        assert_eq!(reading.inside_millis, 4_000 + 5_000);
        assert_eq!(reading.outside_millis(), 11_000);
    }

    #[test]
    fn empty_and_inverted_windows_count_nothing() {
        let reading = read(&[iv(0, 10_000)], &[iv(3_000, 3_000), iv(8_000, 2_000)]);
        assert_eq!(reading.inside_millis, 0);
        assert_eq!(merged(&[iv(5, 5), iv(1, 3), iv(2, 4)]), [iv(1, 4)]);
    }

    #[test]
    fn windows_read_and_write_rfc3339() {
        let json = serde_json::json!({"start": "2026-03-02T08:00:00Z", "end": "2026-03-02T18:00:00+01:00"});
        let window: Result<MeterWindow, _> = serde_json::from_value(json);
        let Ok(window) = window else {
            panic!("{window:?}");
        };
        assert_eq!(window.interval().len(), 9 * 3_600_000);
        assert_eq!(
            serde_json::to_value(window).ok(),
            Some(
                serde_json::json!({"start": "2026-03-02T08:00:00Z", "end": "2026-03-02T17:00:00Z"})
            )
        );
        assert_eq!(seconds(1_500), 1.5);
    }
}
