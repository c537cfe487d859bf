//! `spec.schedule`: whether a window is open at an instant, and when that changes next.
//!
//! A window opens at every civil minute its cron expression matches, read in the schedule's time
//! zone, and stays open for its duration (elapsed time). A civil minute that does not exist (spring
//! forward) opens the window later by the length of the gap (02:30 becomes 03:30); one that exists
//! twice (fall back) opens it once, at the first. This is jiff's
//! [`Disambiguation::Compatible`](jiff::tz::Disambiguation::Compatible). Consequence: a cron that
//! matches every few minutes opens nothing during the repeated hour of a fall back (its minutes
//! were all read as the first pass).
//!
//! The schedule is open at `now` when some window contains `now` (windows are half-open,
//! `[start, start + duration)`; overlapping and touching windows merge) and no exclusion
//! (`[start, end)`) does.
//!
//! Cron expressions are the classic five fields (minute hour day-of-month month day-of-week),
//! parsed and matched by the `croner` crate. Accepted: numbers, `*`, ranges `a-b`, lists `a,b`,
//! steps `*/n` and `a-b/n`, names `JAN`..`DEC` (month) and `SUN`..`SAT` (day of week, `0` and `7`
//! are Sunday), in any case. Rejected: seconds or a year (six or seven fields), `@daily` and the
//! like, and croner's extensions `L`, `W`, `#`, `?` and `+`, which the user documentation does not
//! promise. When both day-of-month and day-of-week are restricted, a day matching either counts
//! (Vixie cron); a field counts as unrestricted only when it is exactly `*`, so `*/2` in
//! day-of-month with `MON` in day-of-week means "odd days or Mondays".
//!
//! Changes are looked for up to [`SEARCH_HORIZON`] ahead of `now`; one further away is reported as
//! `None`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};

use crate::guisession::types::SessionSchedule;

mod parse;

use parse::{check_classic_cron, find_time_zone, window_duration};

/// How far ahead of `now` [`CompiledSchedule::at`] looks for the next change. A schedule whose next
/// change is further away reports none (`closes_at`/`opens_at` `None`); the caller evaluates again
/// long before then.
pub const SEARCH_HORIZON: SignedDuration = SignedDuration::from_hours(400 * 24);

/// The longest window duration, as the CRD's validation allows.
pub const MAX_WINDOW_DURATION: SignedDuration = SignedDuration::from_hours(168);

/// The most windows a schedule may have, as the CRD's validation allows.
pub const MAX_WINDOWS: usize = 32;

/// Every UTC offset jiff represents is below this, so a civil time read in any zone is within this
/// distance of the same civil time read as UTC. It bounds which civil days can hold a window start
/// near a given instant.
const OFFSET_BOUND: SignedDuration = SignedDuration::from_hours(26);

/// Whether the schedule is open at an instant, and when that changes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowState {
    /// A window is open and no exclusion applies. `closes_at`: the first instant after now at which
    /// that is no longer so (a window end or an exclusion start); `None` when that is beyond
    /// [`SEARCH_HORIZON`].
    Open { closes_at: Option<Timestamp> },
    /// No window is open, or an exclusion applies. `opens_at`: the first instant after now at which
    /// the schedule is open (a window start or an exclusion end); `None` when none is found within
    /// [`SEARCH_HORIZON`].
    Closed { opens_at: Option<Timestamp> },
}

/// Why a schedule cannot be evaluated. Messages name the offending field as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("windows: at least one window is required")]
    NoWindows,
    #[error("windows: at most {MAX_WINDOWS} windows are allowed, found {count}")]
    TooManyWindows { count: usize },
    #[error("timeZone {time_zone:?}: unknown time zone")]
    UnknownTimeZone { time_zone: String },
    #[error("windows[{index}].start {start:?}: {reason}")]
    InvalidStart {
        index: usize,
        start: String,
        reason: String,
    },
    #[error("windows[{index}].duration {duration:?}: {reason}")]
    InvalidDuration {
        index: usize,
        duration: String,
        reason: String,
    },
    #[error("exclusions[{index}]: end {end} must be after start {start}")]
    InvalidExclusion {
        index: usize,
        start: Timestamp,
        end: Timestamp,
    },
}

/// A validated schedule, ready to be asked about instants.
#[derive(Debug, Clone)]
pub struct CompiledSchedule {
    time_zone: TimeZone,
    windows: Vec<CompiledWindow>,
    /// Sorted by start, overlapping and touching ones merged.
    exclusions: Vec<Interval>,
    longest_window: SignedDuration,
}

#[derive(Debug, Clone)]
struct CompiledWindow {
    cron: Cron,
    duration: SignedDuration,
    /// Minutes after civil midnight at which the window opens on a day whose date fields match,
    /// ascending. In five-field cron the time of day does not depend on the date.
    start_minutes: Vec<u16>,
    /// `start_minutes` cut into runs whose neighbours are at most `duration` apart, as (first,
    /// last). On a day without an offset change a run is one unbroken stretch of open time, so a
    /// `* * * * *` window costs one interval a day, not 1440.
    runs: Vec<(u16, u16)>,
}

/// A half-open span, `[start, end)`: of time, or of offsets from a midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Span<T> {
    start: T,
    end: T,
}

type Interval = Span<Timestamp>;

/// Per evaluation: the merged window time of a day without an offset change, as offsets from its
/// midnight, by the set of windows that open that day (bit i: `windows[i]`).
type DayShapes = HashMap<u32, Vec<Span<SignedDuration>>>;

/// Validates `spec` and compiles it for [`CompiledSchedule::at`].
pub fn compile(spec: &SessionSchedule) -> Result<CompiledSchedule, ScheduleError> {
    let time_zone =
        find_time_zone(&spec.time_zone).ok_or_else(|| ScheduleError::UnknownTimeZone {
            time_zone: spec.time_zone.clone(),
        })?;
    if spec.windows.is_empty() {
        return Err(ScheduleError::NoWindows);
    }
    if spec.windows.len() > MAX_WINDOWS {
        return Err(ScheduleError::TooManyWindows {
            count: spec.windows.len(),
        });
    }
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build();
    let mut windows = Vec::with_capacity(spec.windows.len());
    for (index, window) in spec.windows.iter().enumerate() {
        let invalid_start = |reason: String| ScheduleError::InvalidStart {
            index,
            start: window.start.clone(),
            reason,
        };
        check_classic_cron(&window.start).map_err(invalid_start)?;
        let cron = parser
            .parse(&window.start)
            .map_err(|e| invalid_start(format!("invalid cron expression: {e}")))?;
        let duration =
            window_duration(&window.duration).map_err(|reason| ScheduleError::InvalidDuration {
                index,
                duration: window.duration.clone(),
                reason,
            })?;
        windows.push(CompiledWindow::new(cron, duration));
    }
    let mut exclusions = Vec::with_capacity(spec.exclusions.len());
    for (index, exclusion) in spec.exclusions.iter().enumerate() {
        if exclusion.end <= exclusion.start {
            return Err(ScheduleError::InvalidExclusion {
                index,
                start: exclusion.start,
                end: exclusion.end,
            });
        }
        exclusions.push(Span {
            start: exclusion.start,
            end: exclusion.end,
        });
    }
    let longest_window = windows
        .iter()
        .map(|w| w.duration)
        .max()
        .unwrap_or(SignedDuration::ZERO);
    Ok(CompiledSchedule {
        time_zone,
        windows,
        exclusions: merge(exclusions),
        longest_window,
    })
}

/// Whether `spec` is open at `now`, and when that changes next: [`compile`], then
/// [`CompiledSchedule::at`].
pub fn evaluate(spec: &SessionSchedule, now: Timestamp) -> Result<WindowState, ScheduleError> {
    Ok(compile(spec)?.at(now))
}

impl CompiledSchedule {
    /// Whether the schedule is open at `now`, and when that changes next (within
    /// [`SEARCH_HORIZON`]). Returned instants are exact, to the nanosecond.
    pub fn at(&self, now: Timestamp) -> WindowState {
        let horizon_end = shift(now, SEARCH_HORIZON);
        let within_horizon = |t: Timestamp| (t <= horizon_end).then_some(t);
        // A window that contains `now` started at most `longest_window` before it.
        let lookback = shift(now, -self.longest_window);
        // Two days of margin: every start of a civil day outside [first_day, last_day] lies more
        // than OFFSET_BOUND away from [lookback, horizon_end], hence outside it.
        let day_margin = SignedDuration::from_hours(48);
        let first_day = utc_date(shift(lookback, -day_margin));
        let last_day = utc_date(shift(horizon_end, day_margin));
        let mut stretches = Stretches::new(self, first_day, last_day);

        let Some(mut stretch) = stretches.by_ref().find(|s| s.end > now) else {
            return WindowState::Closed { opens_at: None };
        };
        if stretch.start <= now && self.exclusion_containing(now).is_none() {
            // Ends up to the horizon are exact; one beyond it may have been cut short where
            // generation stopped.
            let window_end = within_horizon(stretch.end);
            let exclusion_start = self
                .next_exclusion_start_after(now)
                .and_then(within_horizon);
            let closes_at = match (window_end, exclusion_start) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            return WindowState::Open { closes_at };
        }
        loop {
            if stretch.start > horizon_end {
                return WindowState::Closed { opens_at: None };
            }
            // Merged exclusions do not touch, so the end of the one containing a point is not
            // excluded.
            let mut candidate = stretch.start.max(now);
            if let Some(exclusion) = self.exclusion_containing(candidate) {
                candidate = exclusion.end;
            }
            if candidate < stretch.end {
                return WindowState::Closed {
                    opens_at: within_horizon(candidate),
                };
            }
            match stretches.next() {
                Some(next) => stretch = next,
                None => return WindowState::Closed { opens_at: None },
            }
        }
    }

    fn exclusion_containing(&self, t: Timestamp) -> Option<Interval> {
        let after = self.exclusions.partition_point(|x| x.start <= t);
        let candidate = self.exclusions.get(after.checked_sub(1)?)?;
        (t < candidate.end).then_some(*candidate)
    }

    fn next_exclusion_start_after(&self, t: Timestamp) -> Option<Timestamp> {
        let after = self.exclusions.partition_point(|x| x.start <= t);
        self.exclusions.get(after).map(|x| x.start)
    }

    /// Whether one exclusion covers all of `[from, to)`.
    fn excluded_throughout(&self, from: Timestamp, to: Timestamp) -> bool {
        self.exclusion_containing(from).is_some_and(|x| to <= x.end)
    }

    /// The offset in force throughout `[from, to]`, when the zone has no transition in it.
    fn fixed_offset_between(&self, from: Timestamp, to: Timestamp) -> Option<Offset> {
        // `following` excludes a transition exactly at `from`; `to_offset(from)` includes it.
        match self.time_zone.following(from).next() {
            Some(transition) if transition.timestamp() <= to => None,
            _ => Some(self.time_zone.to_offset(from)),
        }
    }

    /// Pushes the window time of the windows that open on civil day `day` (read in the schedule's
    /// zone), merged.
    fn push_windows_opening_on(
        &self,
        day: Date,
        shapes: &mut DayShapes,
        out: &mut BinaryHeap<Reverse<Interval>>,
    ) {
        let Ok(midnight_as_utc) = Offset::UTC.to_timestamp(day.to_datetime(Time::midnight()))
        else {
            return;
        };
        // Every start on this day lies in [earliest, latest]; its window ends by `latest_end`.
        let earliest = shift(midnight_as_utc, -OFFSET_BOUND);
        let latest = shift(
            midnight_as_utc,
            SignedDuration::from_hours(24) + OFFSET_BOUND,
        );
        let latest_end = shift(latest, self.longest_window);
        // A long exclusion (a holiday season) costs nothing per day. Skipping the day only leaves
        // holes inside that exclusion: a point there is closed anyway, and a stretch cut short
        // there ends after the exclusion starts, which closes the schedule first.
        if self.excluded_throughout(earliest, latest_end) {
            return;
        }
        let opening = self
            .windows
            .iter()
            .zip(0u32..)
            .filter(|(window, _)| window.opens_on(day))
            .fold(0u32, |set, (_, index)| set | 1 << index);
        if opening == 0 {
            return;
        }
        match self.fixed_offset_between(earliest, latest) {
            Some(offset) => {
                let midnight = shift(
                    midnight_as_utc,
                    -SignedDuration::from_secs(i64::from(offset.seconds())),
                );
                // The same windows make the same shape on every such day: merge them once.
                let shape = shapes
                    .entry(opening)
                    .or_insert_with(|| self.day_shape(opening));
                out.extend(shape.iter().map(|span| {
                    Reverse(Span {
                        start: shift(midnight, span.start),
                        end: shift(midnight, span.end),
                    })
                }));
            }
            // A day near an offset change: each start read on its own.
            None => {
                let mut intervals = Vec::new();
                for window in self.windows_in(opening) {
                    for &minute in &window.start_minutes {
                        let civil = civil_minute(day, minute);
                        let Ok(start) = self.time_zone.to_ambiguous_timestamp(civil).compatible()
                        else {
                            continue;
                        };
                        intervals.push(Span {
                            start,
                            end: shift(start, window.duration),
                        });
                    }
                }
                out.extend(merge(intervals).into_iter().map(Reverse));
            }
        }
    }

    /// The windows whose bit is set in `set` (bit i: `windows[i]`).
    fn windows_in(&self, set: u32) -> impl Iterator<Item = &CompiledWindow> {
        self.windows
            .iter()
            .zip(0u32..)
            .filter(move |(_, index)| set & (1 << index) != 0)
            .map(|(window, _)| window)
    }

    /// The window time, as offsets from midnight, of a day without an offset change on which the
    /// windows in `set` open.
    fn day_shape(&self, set: u32) -> Vec<Span<SignedDuration>> {
        let spans = self
            .windows_in(set)
            .flat_map(|window| {
                window.runs.iter().map(|&(first, last)| Span {
                    start: minutes(first),
                    end: minutes(last).saturating_add(window.duration),
                })
            })
            .collect();
        merge(spans)
    }
}

impl CompiledWindow {
    fn new(cron: Cron, duration: SignedDuration) -> CompiledWindow {
        let start_minutes: Vec<u16> = (0..24u16)
            .filter(|&hour| cron.pattern.hour_match(u32::from(hour)).unwrap_or(false))
            .flat_map(|hour| {
                (0..60u16)
                    .filter(|&minute| {
                        cron.pattern
                            .minute_match(u32::from(minute))
                            .unwrap_or(false)
                    })
                    .map(move |minute| hour * 60 + minute)
            })
            .collect();
        let mut runs: Vec<(u16, u16)> = Vec::new();
        for &minute in &start_minutes {
            match runs.last_mut() {
                Some((_, last)) if minutes(minute - *last) <= duration => *last = minute,
                _ => runs.push((minute, minute)),
            }
        }
        CompiledWindow {
            cron,
            duration,
            start_minutes,
            runs,
        }
    }

    /// Whether the date fields (day of month, month, day of week) match `day`.
    fn opens_on(&self, day: Date) -> bool {
        let Some(&first) = self.start_minutes.first() else {
            return false;
        };
        // The first start's time of day matches by construction, so this asks about the date.
        self.cron
            .is_time_matching(&civil_minute(day, first))
            .unwrap_or(false)
    }
}

/// Merged window time, generated civil day by civil day and yielded in order: each item is a
/// maximal stretch of time some window covers (exclusions aside).
struct Stretches<'a> {
    schedule: &'a CompiledSchedule,
    next_day: Option<Date>,
    last_day: Date,
    /// Every window not generated yet starts at or after this; `None` once all days are.
    frontier: Option<Timestamp>,
    pending: BinaryHeap<Reverse<Interval>>,
    current: Option<Interval>,
    shapes: DayShapes,
}

impl<'a> Stretches<'a> {
    fn new(schedule: &'a CompiledSchedule, first_day: Date, last_day: Date) -> Stretches<'a> {
        let frontier = earliest_start_on(first_day);
        Stretches {
            schedule,
            next_day: (frontier.is_some() && first_day <= last_day).then_some(first_day),
            last_day,
            frontier,
            pending: BinaryHeap::new(),
            current: None,
            shapes: DayShapes::new(),
        }
    }

    fn generate_next_day(&mut self) {
        let Some(day) = self.next_day else {
            self.frontier = None;
            return;
        };
        self.next_day = day.tomorrow().ok().filter(|d| *d <= self.last_day);
        self.frontier = self.next_day.and_then(earliest_start_on);
        if self.frontier.is_none() {
            self.next_day = None;
        }
        self.schedule
            .push_windows_opening_on(day, &mut self.shapes, &mut self.pending);
    }
}

impl Iterator for Stretches<'_> {
    type Item = Interval;

    fn next(&mut self) -> Option<Interval> {
        loop {
            // Windows that start before the frontier are all known: merge them in order.
            while let Some(&Reverse(window)) = self.pending.peek() {
                if self.frontier.is_some_and(|f| window.start >= f) {
                    break;
                }
                self.pending.pop();
                match self.current.as_mut() {
                    Some(current) if window.start <= current.end => {
                        current.end = current.end.max(window.end);
                    }
                    _ => {
                        if let Some(done) = self.current.replace(window) {
                            return Some(done);
                        }
                    }
                }
            }
            match (self.current, self.frontier) {
                // Nothing still unknown can start at or before its end.
                (Some(current), Some(frontier)) if current.end < frontier => {
                    return self.current.take();
                }
                (_, None) => return self.current.take(),
                _ => self.generate_next_day(),
            }
        }
    }
}

/// Sorts `spans` and merges the overlapping and touching ones.
fn merge<T: Ord + Copy>(mut spans: Vec<Span<T>>) -> Vec<Span<T>> {
    spans.sort();
    let mut merged: Vec<Span<T>> = Vec::with_capacity(spans.len());
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
            _ => merged.push(span),
        }
    }
    merged
}

/// The earliest instant at which a civil time on `day` or later can fall, in any zone.
fn earliest_start_on(day: Date) -> Option<Timestamp> {
    let midnight_as_utc = Offset::UTC
        .to_timestamp(day.to_datetime(Time::midnight()))
        .ok()?;
    Some(shift(midnight_as_utc, -OFFSET_BOUND))
}

fn utc_date(t: Timestamp) -> Date {
    Offset::UTC.to_datetime(t).date()
}

/// `minute_of_day` (below 1440, as every start minute is) on `day`.
fn civil_minute(day: Date, minute_of_day: u16) -> DateTime {
    // Both parts are in range by construction (hour < 24, minute < 60).
    day.at((minute_of_day / 60) as i8, (minute_of_day % 60) as i8, 0, 0)
}

fn minutes(count: u16) -> SignedDuration {
    SignedDuration::from_mins(i64::from(count))
}

/// `t + d`, clamped to the instants jiff represents (reached only near the years ±9999).
fn shift(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_add(d).unwrap_or(if d.is_negative() {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

#[cfg(test)]
mod tests;
