use super::parse::find_time_zone_in;
use super::*;
use crate::duration::parse_go_duration;
use crate::guisession::types::{ScheduleExclusion, ScheduleWindow};
use jiff::tz::TimeZoneDatabase;
use proptest::prelude::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn schedule(time_zone: &str, windows: &[(&str, &str)]) -> SessionSchedule {
    SessionSchedule {
        time_zone: time_zone.to_owned(),
        windows: windows
            .iter()
            .map(|(start, duration)| ScheduleWindow {
                start: (*start).to_owned(),
                duration: (*duration).to_owned(),
            })
            .collect(),
        exclusions: Vec::new(),
        stop_at_window_end: false,
    }
}

fn excluding(mut spec: SessionSchedule, exclusions: &[(&str, &str)]) -> SessionSchedule {
    spec.exclusions = exclusions
        .iter()
        .map(|(start, end)| ScheduleExclusion {
            start: ts(start),
            end: ts(end),
        })
        .collect();
    spec
}

fn at(spec: &SessionSchedule, now: &str) -> WindowState {
    at_ts(spec, ts(now))
}

fn at_ts(spec: &SessionSchedule, now: Timestamp) -> WindowState {
    match evaluate(spec, now) {
        Ok(state) => state,
        Err(e) => panic!("{spec:?} should compile: {e}"),
    }
}

fn open_until(closes_at: &str) -> WindowState {
    WindowState::Open {
        closes_at: Some(ts(closes_at)),
    }
}

fn closed_until(opens_at: &str) -> WindowState {
    WindowState::Closed {
        opens_at: Some(ts(opens_at)),
    }
}

fn error(spec: &SessionSchedule) -> String {
    match compile(spec) {
        Ok(_) => panic!("{spec:?} should be rejected"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bundled_database_resolves_berlin_and_new_york() {
    let bundled = TimeZoneDatabase::bundled();
    let berlin = bundled
        .get("Europe/Berlin")
        .expect("Europe/Berlin is bundled");
    let new_york = bundled
        .get("America/New_York")
        .expect("America/New_York is bundled");
    assert_eq!(berlin.to_offset(ts("2026-01-15T12:00:00Z")).seconds(), 3600);
    assert_eq!(berlin.to_offset(ts("2026-07-15T12:00:00Z")).seconds(), 7200);
    assert_eq!(
        new_york.to_offset(ts("2026-01-15T12:00:00Z")).seconds(),
        -5 * 3600
    );
    assert_eq!(
        new_york.to_offset(ts("2026-07-15T12:00:00Z")).seconds(),
        -4 * 3600
    );
}

#[test]
fn zones_resolve_without_a_system_database() {
    // What a container without /usr/share/zoneinfo gives jiff: a database that finds nothing.
    let no_system = TimeZoneDatabase::none();
    for name in ["Europe/Berlin", "America/New_York", "UTC", "europe/berlin"] {
        assert!(find_time_zone_in(&no_system, name).is_some(), "{name}");
    }
    for name in ["Mars/Olympus", "", "Etc/Unknown", "+02:00"] {
        assert!(find_time_zone_in(&no_system, name).is_none(), "{name:?}");
    }
}

#[test]
fn rejects_invalid_schedules_naming_the_field() {
    let cases: &[(SessionSchedule, &str)] = &[
        (
            schedule("UTC", &[("0 25 * * *", "1h")]),
            r#"windows[0].start "0 25 * * *": invalid cron expression: "#,
        ),
        (
            schedule("UTC", &[("0 8 * * *", "1h"), ("0 0 8 * * *", "1h")]),
            r#"windows[1].start "0 0 8 * * *": expected 5 fields (minute hour day-of-month month day-of-week), found 6 (seconds and years are not supported)"#,
        ),
        (
            schedule("UTC", &[("0 8 * *", "1h")]),
            r#"windows[0].start "0 8 * *": expected 5 fields"#,
        ),
        (
            schedule("UTC", &[("", "1h")]),
            r#"windows[0].start "": expected 5 fields (minute hour day-of-month month day-of-week), found 0"#,
        ),
        (
            schedule("UTC", &[("@daily", "1h")]),
            r#"windows[0].start "@daily": expected 5 fields"#,
        ),
        (
            schedule("UTC", &[("0 8 L * *", "1h")]),
            r#"windows[0].start "0 8 L * *": day-of-month field "L": "L" is not a number"#,
        ),
        (
            schedule("UTC", &[("0 8 * * 5#2", "1h")]),
            r#"windows[0].start "0 8 * * 5#2": day-of-week field "5#2": '#' is not supported"#,
        ),
        (
            schedule("UTC", &[("0 8 ? * MON", "1h")]),
            r#"windows[0].start "0 8 ? * MON": day-of-month field "?": '?' is not supported"#,
        ),
        (
            schedule("UTC", &[("0 8 * * +MON", "1h")]),
            r#"windows[0].start "0 8 * * +MON": day-of-week field "+MON": '+' is not supported"#,
        ),
        (
            schedule("UTC", &[("0 8 * MON *", "1h")]),
            r#"windows[0].start "0 8 * MON *": month field "MON": "MON" is not a number or JAN to DEC"#,
        ),
        (
            schedule("UTC", &[("0 8 * * MONDAY", "1h")]),
            r#"windows[0].start "0 8 * * MONDAY": day-of-week field "MONDAY": "MONDAY" is not a number or SUN to SAT"#,
        ),
        (
            schedule("UTC", &[("0 8 * * 1SUN", "1h")]),
            r#"windows[0].start "0 8 * * 1SUN": day-of-week field "1SUN": "1SUN" is not a number or SUN to SAT"#,
        ),
        (
            schedule("UTC", &[("0 8-17/ * * *", "1h")]),
            r#"windows[0].start "0 8-17/ * * *": hour field "8-17/": a value is missing"#,
        ),
        (
            schedule("UTC", &[("0,,30 8 * * *", "1h")]),
            r#"windows[0].start "0,,30 8 * * *": minute field "0,,30": a value is missing"#,
        ),
        (
            schedule("UTC", &[("*/0 8 * * *", "1h")]),
            r#"windows[0].start "*/0 8 * * *": invalid cron expression: "#,
        ),
        (
            schedule("Mars/Olympus", &[("0 8 * * *", "1h")]),
            r#"timeZone "Mars/Olympus": unknown time zone"#,
        ),
        (
            schedule("", &[("0 8 * * *", "1h")]),
            r#"timeZone "": unknown time zone"#,
        ),
        (
            schedule("UTC", &[("0 8 * * *", "1h"), ("0 9 * * *", "0s")]),
            r#"windows[1].duration "0s": must be greater than zero"#,
        ),
        (
            schedule("UTC", &[("0 8 * * *", "0")]),
            r#"windows[0].duration "0": must be greater than zero"#,
        ),
        (
            schedule("UTC", &[("0 8 * * *", "-1h")]),
            r#"windows[0].duration "-1h": must be greater than zero"#,
        ),
        (
            schedule("UTC", &[("0 8 * * *", "168h0m0.001s")]),
            r#"windows[0].duration "168h0m0.001s": must be at most 168h (one week)"#,
        ),
        (
            schedule("UTC", &[("0 8 * * *", "3000000h")]),
            r#"windows[0].duration "3000000h": invalid duration "3000000h": too large"#,
        ),
        (
            schedule("UTC", &[("0 8 * * *", "10")]),
            r#"windows[0].duration "10": invalid duration "10": missing unit"#,
        ),
        (
            schedule("UTC", &[("0 8 * * *", "")]),
            r#"windows[0].duration "": empty duration"#,
        ),
        (
            schedule("UTC", &[]),
            "windows: at least one window is required",
        ),
        (
            schedule("UTC", &[("0 8 * * *", "1h"); 33]),
            "windows: at most 32 windows are allowed, found 33",
        ),
        (
            excluding(
                schedule("UTC", &[("0 8 * * *", "1h")]),
                &[
                    ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
                    ("2026-02-01T00:00:00Z", "2026-02-01T00:00:00Z"),
                ],
            ),
            "exclusions[1]: end 2026-02-01T00:00:00Z must be after start 2026-02-01T00:00:00Z",
        ),
    ];
    for (spec, expected) in cases {
        let message = error(spec);
        assert!(
            message.starts_with(expected),
            "{spec:?}:\n  got      {message}\n  expected {expected}…"
        );
    }
}

#[test]
fn accepts_classic_cron_syntax() {
    for start in [
        "0 8 * * MON-FRI",
        "0 8 * * mon-fri",
        "0 8 * * Sat,Sun",
        "0 8 * * 1-5",
        "0 8 * * 7",
        "0 8 * * MON-SUN",
        "0 8 1 JAN,jul *",
        "0 8 1 jan-mar/2 *",
        "*/15 8-17 * * *",
        "0-30/10 */6 1-31/7 * *",
        "  0   8 * *   *  ",
    ] {
        assert!(
            compile(&schedule("UTC", &[(start, "1h")])).is_ok(),
            "{start:?} should be accepted"
        );
    }
    assert!(compile(&schedule("UTC", &[("0 8 * * *", "168h")])).is_ok());
    assert!(compile(&schedule("UTC", &[("0 8 * * *", "1.5s")])).is_ok());
}

#[test]
fn daily_window_boundaries_are_half_open() {
    let spec = schedule("UTC", &[("0 8 * * *", "10h")]);
    assert_eq!(
        at(&spec, "2026-05-04T07:59:59Z"),
        closed_until("2026-05-04T08:00:00Z")
    );
    assert_eq!(
        at(&spec, "2026-05-04T08:00:00Z"),
        open_until("2026-05-04T18:00:00Z")
    );
    assert_eq!(
        at(&spec, "2026-05-04T17:59:59.999999999Z"),
        open_until("2026-05-04T18:00:00Z")
    );
    assert_eq!(
        at(&spec, "2026-05-04T18:00:00Z"),
        closed_until("2026-05-05T08:00:00Z")
    );
}

#[test]
fn instants_are_exact_to_the_nanosecond() {
    let spec = schedule("UTC", &[("0 8 * * *", "1h0m0.000000001s")]);
    assert_eq!(
        at(&spec, "2026-05-04T08:30:00Z"),
        open_until("2026-05-04T09:00:00.000000001Z")
    );
    assert_eq!(
        at(&spec, "2026-05-04T09:00:00.000000001Z"),
        closed_until("2026-05-05T08:00:00Z")
    );
    let spec = excluding(
        spec,
        &[("2026-05-05T08:00:00.25Z", "2026-05-05T08:10:00.5Z")],
    );
    assert_eq!(
        at(&spec, "2026-05-05T08:00:00.1Z"),
        open_until("2026-05-05T08:00:00.25Z")
    );
    assert_eq!(
        at(&spec, "2026-05-05T08:00:00.25Z"),
        closed_until("2026-05-05T08:10:00.5Z")
    );
}

#[test]
fn window_crossing_midnight() {
    let spec = schedule("Europe/Berlin", &[("0 22 * * *", "10h")]);
    assert_eq!(
        at(&spec, "2026-05-04T23:30:00+02:00"),
        open_until("2026-05-05T08:00:00+02:00")
    );
    assert_eq!(
        at(&spec, "2026-05-05T07:59:00+02:00"),
        open_until("2026-05-05T08:00:00+02:00")
    );
    assert_eq!(
        at(&spec, "2026-05-05T08:00:00+02:00"),
        closed_until("2026-05-05T22:00:00+02:00")
    );
}

#[test]
fn weekday_window_closed_over_the_weekend() {
    // Friday 2026-03-27 is in winter time, Monday 2026-03-30 in summer time.
    let spec = schedule("Europe/Berlin", &[("0 8 * * MON-FRI", "10h")]);
    assert_eq!(
        at(&spec, "2026-03-27T17:59:00+01:00"),
        open_until("2026-03-27T18:00:00+01:00")
    );
    assert_eq!(
        at(&spec, "2026-03-27T18:00:00+01:00"),
        closed_until("2026-03-30T08:00:00+02:00")
    );
    assert_eq!(
        at(&spec, "2026-03-28T12:00:00+01:00"),
        closed_until("2026-03-30T08:00:00+02:00")
    );
    assert_eq!(
        at(&spec, "2026-03-30T07:00:00+02:00"),
        closed_until("2026-03-30T08:00:00+02:00")
    );
}

#[test]
fn thirty_first_skips_short_months() {
    let spec = schedule("UTC", &[("0 8 31 * *", "1h")]);
    assert_eq!(
        at(&spec, "2026-01-31T08:30:00Z"),
        open_until("2026-01-31T09:00:00Z")
    );
    // February and then March 31st; April has 30 days.
    assert_eq!(
        at(&spec, "2026-01-31T09:00:00Z"),
        closed_until("2026-03-31T08:00:00Z")
    );
    assert_eq!(
        at(&spec, "2026-04-01T00:00:00Z"),
        closed_until("2026-05-31T08:00:00Z")
    );
}

#[test]
fn february_end_and_leap_day() {
    let feb_28 = schedule("UTC", &[("0 8 28 2 *", "1h")]);
    assert_eq!(
        at(&feb_28, "2026-03-01T00:00:00Z"),
        closed_until("2027-02-28T08:00:00Z")
    );
    let feb_29 = schedule("UTC", &[("0 8 29 2 *", "1h")]);
    assert_eq!(
        at(&feb_29, "2027-03-01T00:00:00Z"),
        closed_until("2028-02-29T08:00:00Z")
    );
    assert_eq!(
        at(&feb_29, "2028-02-29T08:30:00Z"),
        open_until("2028-02-29T09:00:00Z")
    );
    // 2028-02-29 is more than SEARCH_HORIZON after 2026-03-01.
    assert_eq!(
        at(&feb_29, "2026-03-01T00:00:00Z"),
        WindowState::Closed { opens_at: None }
    );
}

#[test]
fn search_horizon_is_inclusive_and_exact() {
    let spec = schedule("UTC", &[("0 8 29 2 *", "1h")]);
    let opens = ts("2028-02-29T08:00:00Z");
    let Ok(now) = opens.checked_sub(SEARCH_HORIZON) else {
        panic!("in range")
    };
    assert_eq!(
        at_ts(&spec, now),
        WindowState::Closed {
            opens_at: Some(opens)
        }
    );
    let Ok(earlier) = now.checked_sub(SignedDuration::from_nanos(1)) else {
        panic!("in range")
    };
    assert_eq!(
        at_ts(&spec, earlier),
        WindowState::Closed { opens_at: None }
    );
}

#[test]
fn berlin_spring_forward() {
    // 2026-03-29: 02:00 CET becomes 03:00 CEST.
    let in_gap = schedule("Europe/Berlin", &[("30 2 * * *", "1h")]);
    // The day before, 02:30 exists.
    assert_eq!(
        at(&in_gap, "2026-03-28T02:00:00+01:00"),
        closed_until("2026-03-28T02:30:00+01:00")
    );
    // 02:30 does not exist: the window opens at 03:30 CEST, an hour later.
    assert_eq!(
        at(&in_gap, "2026-03-29T01:00:00+01:00"),
        closed_until("2026-03-29T03:30:00+02:00")
    );
    assert_eq!(
        at(&in_gap, "2026-03-29T03:45:00+02:00"),
        open_until("2026-03-29T04:30:00+02:00")
    );
    // A window spanning the change lasts its elapsed duration: 00:00 CET + 10h is 11:00 CEST.
    let spanning = schedule("Europe/Berlin", &[("0 0 * * *", "10h")]);
    assert_eq!(
        at(&spanning, "2026-03-29T09:00:00+02:00"),
        open_until("2026-03-29T11:00:00+02:00")
    );
}

#[test]
fn berlin_fall_back() {
    // 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:00 to 03:00 happens twice.
    let repeated = schedule("Europe/Berlin", &[("30 2 * * *", "1h")]);
    assert_eq!(
        at(&repeated, "2026-10-25T02:00:00+02:00"),
        closed_until("2026-10-25T02:30:00+02:00")
    );
    assert_eq!(
        at(&repeated, "2026-10-25T02:45:00+02:00"),
        open_until("2026-10-25T02:30:00+01:00")
    );
    // The second 02:30 opens nothing: the window opened once, at the first.
    assert_eq!(
        at(&repeated, "2026-10-25T02:45:00+01:00"),
        closed_until("2026-10-26T02:30:00+01:00")
    );
    // 00:00 CEST + 10h is 09:00 CET.
    let spanning = schedule("Europe/Berlin", &[("0 0 * * *", "10h")]);
    assert_eq!(
        at(&spanning, "2026-10-25T08:30:00+01:00"),
        open_until("2026-10-25T09:00:00+01:00")
    );
}

#[test]
fn new_york_spring_forward() {
    // 2026-03-08: 02:00 EST becomes 03:00 EDT.
    let in_gap = schedule("America/New_York", &[("30 2 * * *", "1h")]);
    assert_eq!(
        at(&in_gap, "2026-03-08T01:00:00-05:00"),
        closed_until("2026-03-08T03:30:00-04:00")
    );
    assert_eq!(
        at(&in_gap, "2026-03-08T04:00:00-04:00"),
        open_until("2026-03-08T04:30:00-04:00")
    );
    assert_eq!(
        at(&in_gap, "2026-03-08T04:30:00-04:00"),
        closed_until("2026-03-09T02:30:00-04:00")
    );
    // 20:00 EST + 10h is 07:00 EDT.
    let spanning = schedule("America/New_York", &[("0 20 * * *", "10h")]);
    assert_eq!(
        at(&spanning, "2026-03-08T06:30:00-04:00"),
        open_until("2026-03-08T07:00:00-04:00")
    );
}

#[test]
fn new_york_fall_back() {
    // 2026-11-01: 02:00 EDT becomes 01:00 EST; 01:00 to 02:00 happens twice.
    let repeated = schedule("America/New_York", &[("30 1 * * *", "30m")]);
    assert_eq!(
        at(&repeated, "2026-11-01T01:45:00-04:00"),
        open_until("2026-11-01T01:00:00-05:00")
    );
    assert_eq!(
        at(&repeated, "2026-11-01T01:30:00-05:00"),
        closed_until("2026-11-02T01:30:00-05:00")
    );
    // 20:00 EDT + 10h is 05:00 EST.
    let spanning = schedule("America/New_York", &[("0 20 * * *", "10h")]);
    assert_eq!(
        at(&spanning, "2026-11-01T04:00:00-05:00"),
        open_until("2026-11-01T05:00:00-05:00")
    );
}

#[test]
fn half_hour_gap_in_lord_howe() {
    // 2026-10-04: 02:00 (+10:30) becomes 02:30 (+11:00), so 02:15 opens at 02:45.
    let spec = schedule("Australia/Lord_Howe", &[("15 2 * * *", "1h")]);
    assert_eq!(
        at(&spec, "2026-10-04T01:00:00+10:30"),
        closed_until("2026-10-04T02:45:00+11:00")
    );
    assert_eq!(
        at(&spec, "2026-10-04T03:00:00+11:00"),
        open_until("2026-10-04T03:45:00+11:00")
    );
}

#[test]
fn frequent_windows_leave_the_repeated_hour_closed() {
    // Every 15 minutes for 15 minutes: open all year, except during the second pass of the
    // fall-back hour, whose civil minutes all opened their window in the first.
    let spec = schedule("Europe/Berlin", &[("*/15 * * * *", "15m")]);
    assert_eq!(
        at(&spec, "2026-03-29T03:05:00+02:00"),
        open_until("2026-10-25T02:00:00+01:00")
    );
    assert_eq!(
        at(&spec, "2026-10-25T02:10:00+01:00"),
        closed_until("2026-10-25T03:00:00+01:00")
    );
}

#[test]
fn exclusion_of_a_whole_day() {
    let spec = excluding(
        schedule("UTC", &[("0 8 * * *", "10h")]),
        &[("2026-12-24T00:00:00Z", "2026-12-25T00:00:00Z")],
    );
    assert_eq!(
        at(&spec, "2026-12-23T09:00:00Z"),
        open_until("2026-12-23T18:00:00Z")
    );
    assert_eq!(
        at(&spec, "2026-12-23T20:00:00Z"),
        closed_until("2026-12-25T08:00:00Z")
    );
    assert_eq!(
        at(&spec, "2026-12-24T09:00:00Z"),
        closed_until("2026-12-25T08:00:00Z")
    );
}

#[test]
fn exclusion_ending_mid_window_reopens_at_its_end() {
    let spec = excluding(
        schedule("UTC", &[("0 8 * * *", "10h")]),
        &[("2026-05-04T07:00:00Z", "2026-05-04T12:00:00Z")],
    );
    // It covers the window's start, too.
    assert_eq!(
        at(&spec, "2026-05-04T06:00:00Z"),
        closed_until("2026-05-04T12:00:00Z")
    );
    assert_eq!(
        at(&spec, "2026-05-04T08:00:00Z"),
        closed_until("2026-05-04T12:00:00Z")
    );
    assert_eq!(
        at(&spec, "2026-05-04T12:00:00Z"),
        open_until("2026-05-04T18:00:00Z")
    );
}

#[test]
fn exclusion_starting_mid_window_closes_it() {
    let spec = excluding(
        schedule("UTC", &[("0 8 * * *", "10h")]),
        &[
            ("2026-05-04T12:00:00Z", "2026-05-04T13:00:00Z"),
            // Touching exclusions act as one.
            ("2026-05-04T13:00:00Z", "2026-05-04T14:00:00Z"),
            // Past the window's end: the next opening is the next day's window, after it.
            ("2026-05-05T16:00:00Z", "2026-05-06T09:00:00Z"),
        ],
    );
    assert_eq!(
        at(&spec, "2026-05-04T09:00:00Z"),
        open_until("2026-05-04T12:00:00Z")
    );
    assert_eq!(
        at(&spec, "2026-05-04T12:30:00Z"),
        closed_until("2026-05-04T14:00:00Z")
    );
    assert_eq!(
        at(&spec, "2026-05-05T10:00:00Z"),
        open_until("2026-05-05T16:00:00Z")
    );
    assert_eq!(
        at(&spec, "2026-05-05T17:00:00Z"),
        closed_until("2026-05-06T09:00:00Z")
    );
}

#[test]
fn exclusion_covering_a_whole_window() {
    let spec = excluding(
        schedule("UTC", &[("0 8 * * *", "2h")]),
        &[("2026-05-04T07:00:00Z", "2026-05-04T11:00:00Z")],
    );
    assert_eq!(
        at(&spec, "2026-05-04T06:00:00Z"),
        closed_until("2026-05-05T08:00:00Z")
    );
}

#[test]
fn long_exclusion_over_frequent_windows() {
    let spec = excluding(
        schedule("UTC", &[("*/2 * * * *", "1m")]),
        &[("2026-01-01T00:00:00Z", "2026-11-01T00:01:30Z")],
    );
    assert_eq!(
        at(&spec, "2025-12-31T23:58:30Z"),
        open_until("2025-12-31T23:59:00Z")
    );
    assert_eq!(
        at(&spec, "2026-01-02T00:00:00Z"),
        closed_until("2026-11-01T00:02:00Z")
    );
}

#[test]
fn overlapping_and_touching_windows_merge() {
    let overlapping = schedule("UTC", &[("0 8 * * *", "4h"), ("0 10 * * *", "4h")]);
    assert_eq!(
        at(&overlapping, "2026-05-04T09:00:00Z"),
        open_until("2026-05-04T14:00:00Z")
    );
    let touching = schedule("UTC", &[("0 10 * * *", "2h"), ("0 8 * * *", "2h")]);
    assert_eq!(
        at(&touching, "2026-05-04T09:00:00Z"),
        open_until("2026-05-04T12:00:00Z")
    );
    let apart = schedule("UTC", &[("0 8 * * *", "2h"), ("1 10 * * *", "2h")]);
    assert_eq!(
        at(&apart, "2026-05-04T09:00:00Z"),
        open_until("2026-05-04T10:00:00Z")
    );
    assert_eq!(
        at(&apart, "2026-05-04T10:00:30Z"),
        closed_until("2026-05-04T10:01:00Z")
    );
    // Neither window alone stays open, together they never close.
    let alternating = schedule("UTC", &[("*/2 * * * *", "1m"), ("1-59/2 * * * *", "1m")]);
    assert_eq!(
        at(&alternating, "2026-05-04T09:00:30Z"),
        WindowState::Open { closes_at: None }
    );
    // A night window overlapping a morning one, across midnight.
    let night_and_morning = schedule("UTC", &[("0 22 * * *", "10h"), ("0 7 * * *", "2h")]);
    assert_eq!(
        at(&night_and_morning, "2026-05-04T23:00:00Z"),
        open_until("2026-05-05T09:00:00Z")
    );
}

#[test]
fn cron_that_never_matches() {
    for start in ["0 0 30 2 *", "0 0 31 4,6,9,11 *"] {
        let spec = schedule("Europe/Berlin", &[(start, "1h")]);
        assert_eq!(
            at(&spec, "2026-05-04T09:00:00Z"),
            WindowState::Closed { opens_at: None },
            "{start}"
        );
        let with_daily = schedule("Europe/Berlin", &[(start, "1h"), ("0 8 * * *", "1h")]);
        assert_eq!(
            at(&with_daily, "2026-05-04T09:00:00+02:00"),
            closed_until("2026-05-05T08:00:00+02:00"),
            "{start}"
        );
    }
}

#[test]
fn every_minute() {
    let always = schedule("UTC", &[("* * * * *", "1m")]);
    assert_eq!(
        at(&always, "2026-05-04T09:00:00Z"),
        WindowState::Open { closes_at: None }
    );
    // In a zone with daylight-saving time, only the repeated hour of a fall back closes it.
    let berlin = schedule("Europe/Berlin", &[("* * * * *", "1m")]);
    for now in ["2026-05-04T09:00:00Z", "2026-03-29T03:00:00+02:00"] {
        assert_eq!(
            at(&berlin, now),
            open_until("2026-10-25T02:00:00+01:00"),
            "{now}"
        );
    }
    assert_eq!(
        at(&berlin, "2026-10-25T02:00:00+01:00"),
        closed_until("2026-10-25T03:00:00+01:00")
    );
    let half_minutes = schedule("UTC", &[("* * * * *", "30s")]);
    assert_eq!(
        at(&half_minutes, "2026-05-04T12:00:10Z"),
        open_until("2026-05-04T12:00:30Z")
    );
    assert_eq!(
        at(&half_minutes, "2026-05-04T12:00:45Z"),
        closed_until("2026-05-04T12:01:00Z")
    );
    let office_hours = schedule("UTC", &[("* 8-17 * * *", "1m")]);
    assert_eq!(
        at(&office_hours, "2026-05-04T12:00:00Z"),
        open_until("2026-05-04T18:00:00Z")
    );
}

#[test]
fn restricted_day_of_month_and_day_of_week_match_either() {
    // The 13th of any month, and every Friday.
    let spec = schedule("UTC", &[("0 8 13 * FRI", "1h")]);
    // Sunday 2026-03-01: the next Friday (the 6th) comes before the 13th.
    assert_eq!(
        at(&spec, "2026-03-01T00:00:00Z"),
        closed_until("2026-03-06T08:00:00Z")
    );
    // Saturday 2026-04-11: Monday the 13th comes before Friday the 17th.
    assert_eq!(
        at(&spec, "2026-04-11T00:00:00Z"),
        closed_until("2026-04-13T08:00:00Z")
    );
    // An unrestricted day of month: only the day of week counts.
    let fridays = schedule("UTC", &[("0 8 * * FRI", "1h")]);
    assert_eq!(
        at(&fridays, "2026-04-11T00:00:00Z"),
        closed_until("2026-04-17T08:00:00Z")
    );
    // A step is a restriction: odd days, or Mondays. Wednesday 2026-04-29 (odd) → Thursday
    // the 30th does not match, Friday May 1st does.
    let odd_or_monday = schedule("UTC", &[("0 8 */2 * MON", "1h")]);
    assert_eq!(
        at(&odd_or_monday, "2026-04-29T09:00:00Z"),
        closed_until("2026-05-01T08:00:00Z")
    );
    // Tuesday 2026-05-12 (even) → Wednesday the 13th; Saturday the 16th → Sunday the 17th.
    assert_eq!(
        at(&odd_or_monday, "2026-05-12T09:00:00Z"),
        closed_until("2026-05-13T08:00:00Z")
    );
    assert_eq!(
        at(&odd_or_monday, "2026-05-16T09:00:00Z"),
        closed_until("2026-05-17T08:00:00Z")
    );
    // Monday 2026-05-18 is even yet a Monday.
    assert_eq!(
        at(&odd_or_monday, "2026-05-17T09:00:00Z"),
        closed_until("2026-05-18T08:00:00Z")
    );
}

#[test]
fn extreme_instants_do_not_panic() {
    let specs = [
        schedule("UTC", &[("* * * * *", "1m")]),
        schedule("Europe/Berlin", &[("0 8 * * MON-FRI", "168h")]),
        excluding(
            schedule("America/New_York", &[("0 0 1 1 *", "1h")]),
            &[("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z")],
        ),
    ];
    let almost_max = Timestamp::MAX
        .checked_sub(SignedDuration::from_hours(24))
        .unwrap_or(Timestamp::MAX);
    for spec in &specs {
        for now in [
            Timestamp::MIN,
            Timestamp::MAX,
            almost_max,
            Timestamp::UNIX_EPOCH,
        ] {
            let _ = at_ts(spec, now);
        }
    }
}

#[test]
fn evaluate_is_compile_then_at() {
    let spec = excluding(
        schedule(
            "Europe/Berlin",
            &[("0 8 * * MON-FRI", "10h"), ("0 22 * * SAT", "3h")],
        ),
        &[("2026-05-05T10:00:00Z", "2026-05-05T11:00:00Z")],
    );
    let compiled = compile(&spec).expect("valid");
    let mut now = ts("2026-05-01T00:00:00Z");
    for _ in 0..200 {
        assert_eq!(evaluate(&spec, now), Ok(compiled.at(now)));
        now = shift(now, SignedDuration::from_mins(97));
    }
}

// --- Against a brute-force oracle ---

const ZONES: [&str; 6] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "America/Santiago",
];
/// Instants near offset changes of the zones above, and one far from any.
const ANCHORS: [&str; 9] = [
    "2026-03-29T01:00:00Z",
    "2026-10-25T01:00:00Z",
    "2026-03-08T07:00:00Z",
    "2026-11-01T06:00:00Z",
    "2026-04-04T15:00:00Z",
    "2026-10-03T15:30:00Z",
    "2026-04-05T03:00:00Z",
    "2026-09-06T04:00:00Z",
    "2026-07-01T00:00:00Z",
];
const MINUTES: [&str; 8] = ["0", "15", "30", "59", "0,30", "*/20", "*/5", "*"];
const HOURS: [&str; 11] = [
    "0", "1", "2", "3", "8", "22", "23", "1-3", "*/6", "8-17", "*",
];
const WEEKDAYS: [&str; 5] = ["*", "MON-FRI", "SAT,SUN", "TUE", "0"];

/// How far after `now` the oracle knows every window start.
const ORACLE_REACH: SignedDuration = SignedDuration::from_hours(13 * 24);

/// Open at `now`, and the first change within ORACLE_REACH, found by reading every civil
/// minute from a week before `now` to two weeks after it.
fn oracle(spec: &SessionSchedule, now: Timestamp) -> (bool, Option<Timestamp>) {
    let time_zone = TimeZoneDatabase::bundled()
        .get(&spec.time_zone)
        .expect("known zone");
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build();
    let windows: Vec<(Cron, SignedDuration)> = spec
        .windows
        .iter()
        .map(|w| {
            let cron = parser.parse(&w.start).expect("valid cron");
            let duration = parse_go_duration(&w.duration).expect("valid duration");
            (cron, SignedDuration::try_from(duration).expect("small"))
        })
        .collect();
    let mut intervals = Vec::new();
    let first = time_zone
        .to_datetime(shift(now, SignedDuration::from_hours(-8 * 24)))
        .with()
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .expect("valid");
    let last = time_zone.to_datetime(shift(now, SignedDuration::from_hours(15 * 24)));
    let mut civil = first;
    while civil <= last {
        for (cron, duration) in &windows {
            if cron.is_time_matching(&civil).expect("matchable") {
                let start = time_zone
                    .to_ambiguous_timestamp(civil)
                    .compatible()
                    .expect("in range");
                intervals.push((start, shift(start, *duration)));
            }
        }
        civil = civil
            .checked_add(SignedDuration::from_mins(1))
            .expect("in range");
    }
    let exclusions: Vec<(Timestamp, Timestamp)> =
        spec.exclusions.iter().map(|x| (x.start, x.end)).collect();
    let open = |t: Timestamp| {
        intervals.iter().any(|&(s, e)| s <= t && t < e)
            && !exclusions.iter().any(|&(s, e)| s <= t && t < e)
    };
    let is_open = open(now);
    // The state changes only where a window or an exclusion begins or ends.
    let mut candidates: Vec<Timestamp> = if is_open {
        intervals
            .iter()
            .map(|i| i.1)
            .chain(exclusions.iter().map(|x| x.0))
            .collect()
    } else {
        intervals
            .iter()
            .map(|i| i.0)
            .chain(exclusions.iter().map(|x| x.1))
            .collect()
    };
    candidates.retain(|&t| now < t && t <= shift(now, ORACLE_REACH));
    candidates.sort();
    let change = candidates.into_iter().find(|&t| open(t) != is_open);
    (is_open, change)
}

#[derive(Debug, Clone)]
struct Case {
    spec: SessionSchedule,
    now: Timestamp,
}

fn window_strategy() -> impl Strategy<Value = ScheduleWindow> {
    (
        0..MINUTES.len(),
        0..HOURS.len(),
        0..WEEKDAYS.len(),
        1i64..=3000,
        prop_oneof![Just(0i64), 0i64..60],
    )
        .prop_map(
            |(minute, hour, weekday, duration_minutes, duration_seconds)| ScheduleWindow {
                start: format!(
                    "{} {} * * {}",
                    MINUTES[minute], HOURS[hour], WEEKDAYS[weekday]
                ),
                duration: format!("{duration_minutes}m{duration_seconds}s"),
            },
        )
}

fn case_strategy() -> impl Strategy<Value = Case> {
    let now = (
        0..ANCHORS.len(),
        -4 * 1440i64..=4 * 1440,
        prop_oneof![Just(0i64), 0i64..60],
    )
        .prop_map(|(anchor, minutes, seconds)| {
            shift(
                ts(ANCHORS[anchor]),
                SignedDuration::from_secs(minutes * 60 + seconds),
            )
        });
    // Exclusions near `now`: start (minutes from `now`), length (minutes), extra seconds. Up
    // to three days long, or long enough to cover whole days of windows.
    let length = prop_oneof![1i64..=3 * 1440, 5 * 1440i64..=9 * 1440];
    let exclusions = proptest::collection::vec((-3 * 1440i64..=6 * 1440, length, 0i64..60), 0..=3);
    (
        0..ZONES.len(),
        proptest::collection::vec(window_strategy(), 1..=3),
        now,
        exclusions,
    )
        .prop_map(|(zone, windows, now, exclusions)| Case {
            spec: SessionSchedule {
                time_zone: ZONES[zone].to_owned(),
                windows,
                exclusions: exclusions
                    .into_iter()
                    .map(|(start_minutes, length_minutes, seconds)| {
                        let start =
                            shift(now, SignedDuration::from_secs(start_minutes * 60 + seconds));
                        ScheduleExclusion {
                            start,
                            end: shift(start, SignedDuration::from_mins(length_minutes)),
                        }
                    })
                    .collect(),
                stop_at_window_end: false,
            },
            now,
        })
}

proptest! {
    #[test]
    fn arbitrary_input_never_panics(
        start in prop_oneof![
            "[0-9A-Za-z*,/ -]{0,24}",
            proptest::collection::vec("[0-9*,/-]{1,6}|[0-9]{1,12}|[A-Za-z]{3}(-[A-Za-z]{3})?", 4..=6)
                .prop_map(|fields| fields.join(" ")),
        ],
        duration in prop_oneof!["[0-9.a-z-]{0,8}", "[0-9]{1,3}(h|m|s)"],
        zone in prop_oneof![Just("UTC".to_owned()), Just("Europe/Berlin".to_owned()), "\\PC{0,12}"],
        now in any::<i64>(),
    ) {
        let spec = SessionSchedule {
            time_zone: zone,
            windows: vec![ScheduleWindow { start, duration }],
            exclusions: Vec::new(),
            stop_at_window_end: false,
        };
        let now = Timestamp::from_second(now % Timestamp::MAX.as_second())
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let _ = evaluate(&spec, now);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn agrees_with_a_minute_by_minute_oracle(case in case_strategy()) {
        let state = at_ts(&case.spec, case.now);
        let (open, change) = oracle(&case.spec, case.now);
        let (got_open, got_change) = match state {
            WindowState::Open { closes_at } => (true, closes_at),
            WindowState::Closed { opens_at } => (false, opens_at),
        };
        prop_assert_eq!(got_open, open, "open at {}", case.now);
        match change {
            Some(expected) => prop_assert_eq!(got_change, Some(expected)),
            // Nothing within the oracle's reach: nothing within it from `at` either.
            None => prop_assert!(
                got_change.is_none_or(|t| t > shift(case.now, ORACLE_REACH)),
                "unexpected change at {:?}", got_change
            ),
        }
    }
}
