//! What the controller should do next for one GuiSession: a pure function of spec, status, time
//! and operator settings, so every case can be tested without a cluster or AWS.

use std::time::Duration;

use jiff::Timestamp;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::crd::{
    DEFAULT_MAX_SESSION_AGE, GuiSessionSpec, GuiSessionStatus, Operation, OperationStatus,
    parse_go_duration,
};

/// Operator-wide settings that shape decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Guard rail: a `maxSessionAge` below this is raised to it.
    pub min_session_age: Duration,
    /// How long to wait before starting again after a start failed (terminal errors).
    pub stalled_retry: Duration,
    /// First delay when polling a non-terminal operation.
    pub follow_backoff_initial: Duration,
    /// Longest delay when polling a non-terminal operation.
    pub follow_backoff_max: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            min_session_age: Duration::from_secs(5 * 60),
            stalled_retry: Duration::from_secs(5 * 60),
            follow_backoff_initial: Duration::from_secs(1),
            follow_backoff_max: Duration::from_secs(30),
        }
    }
}

/// The next step for one GuiSession.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No session is recorded, or a start may have happened without its result being recorded:
    /// look up `GetOperationsForResource` to adopt a running session before starting a new one.
    LookupForAdoption,
    /// Start a new GUI session (the recorded one expired, or the last start failed and its
    /// retry delay elapsed).
    Start,
    /// The recorded operation is still running: poll it again after `after`.
    Follow {
        operation_id: String,
        after: Duration,
    },
    /// Nothing to do before this instant (session expiry or end of a retry delay): requeue then.
    WaitUntil(Timestamp),
    /// `spec.suspend` is set: start nothing.
    Suspended,
    /// The object is being deleted with `stopOnDelete`: stop the recorded session.
    Stop,
    /// Nothing to do, ever (for example: deleting without `stopOnDelete`).
    Nothing,
}

/// `spec.maxSessionAge`, raised to the guard rail. An unparsable value (admission should have
/// rejected it) falls back to the default of `1h`.
pub fn effective_max_session_age(spec: &GuiSessionSpec, settings: &Settings) -> Duration {
    let requested = parse_go_duration(&spec.max_session_age)
        .or_else(|_| parse_go_duration(DEFAULT_MAX_SESSION_AGE))
        .unwrap_or(Duration::from_secs(3600));
    requested.max(settings.min_session_age)
}

/// When a session started at `started` expires under `spec` and `settings`.
pub fn session_expiry(spec: &GuiSessionSpec, started: Timestamp, settings: &Settings) -> Timestamp {
    add(started, effective_max_session_age(spec, settings))
}

fn add(ts: Timestamp, d: Duration) -> Timestamp {
    ts.checked_add(d).unwrap_or(Timestamp::MAX)
}

fn parse_ts(s: Option<&String>) -> Option<Timestamp> {
    s.and_then(|s| s.parse().ok())
}

/// Reason of the `Reconciling` condition written just before `StartGUISession` is called. Until
/// the call's result is recorded, its presence means "a session may have been started": the next
/// reconcile (perhaps in another process, after a crash) looks up the resource's operations
/// before starting, so a crash between the call and the status write never starts twice.
pub const REASON_STARTING: &str = "SessionStarting";

fn condition_true<'a>(status: &'a GuiSessionStatus, type_: &str) -> Option<&'a Condition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// True while a start may be in flight (see [`REASON_STARTING`]).
pub fn start_pending(status: &GuiSessionStatus) -> bool {
    condition_true(status, "Reconciling").is_some_and(|c| c.reason == REASON_STARTING)
}

/// Decides the next step. `generation` is the object's `metadata.generation`; `deleting` is
/// true once the object has a `deletionTimestamp`.
pub fn decide(
    spec: &GuiSessionSpec,
    status: Option<&GuiSessionStatus>,
    generation: Option<i64>,
    now: Timestamp,
    settings: &Settings,
    deleting: bool,
) -> Decision {
    let default_status = GuiSessionStatus::default();
    let status = status.unwrap_or(&default_status);
    let operation = status.operation.as_ref();

    if deleting {
        let has_session = operation.is_some() || status.session_started_at.is_some();
        return if spec.stop_on_delete && has_session {
            Decision::Stop
        } else {
            Decision::Nothing
        };
    }
    if spec.suspend {
        return Decision::Suspended;
    }

    if let Some(op) = operation {
        let failed = op.status == Some(OperationStatus::Failed);
        // Still running: follow it, backing off as it ages.
        if !failed
            && op.is_terminal != Some(true)
            && let Some(id) = op.id.as_ref()
        {
            let since = parse_ts(op.status_changed_at.as_ref())
                .or_else(|| parse_ts(op.created_at.as_ref()));
            let elapsed = since
                .and_then(|t| Duration::try_from(now.duration_since(t)).ok())
                .unwrap_or(Duration::ZERO);
            let after = elapsed
                .max(settings.follow_backoff_initial)
                .min(settings.follow_backoff_max);
            return Decision::Follow {
                operation_id: id.clone(),
                after,
            };
        }
    }
    if start_pending(status) {
        return Decision::LookupForAdoption;
    }
    // A spec change retries a stalled object at once; otherwise it waits out the retry delay.
    let spec_changed = generation.is_some() && status.observed_generation != generation;
    if let Some(op) = operation {
        // The last start failed: retry after the stalled-retry delay.
        if op.status == Some(OperationStatus::Failed) && !spec_changed {
            let failed_at = status
                .last_error
                .as_ref()
                .and_then(|e| parse_ts(e.time.as_ref()))
                .or_else(|| parse_ts(op.status_changed_at.as_ref()))
                .or_else(|| parse_ts(op.created_at.as_ref()));
            return match failed_at {
                Some(t) if now < add(t, settings.stalled_retry) => {
                    Decision::WaitUntil(add(t, settings.stalled_retry))
                }
                _ => Decision::Start,
            };
        }
    }
    // A terminal API error (no failed operation): the same wait.
    if !spec_changed
        && condition_true(status, "Stalled").is_some()
        && let Some(at) = status
            .last_error
            .as_ref()
            .and_then(|e| parse_ts(e.time.as_ref()))
        && now < add(at, settings.stalled_retry)
    {
        return Decision::WaitUntil(add(at, settings.stalled_retry));
    }
    if operation.is_some_and(|op| op.status == Some(OperationStatus::Failed)) {
        return Decision::Start;
    }

    let expiry = parse_ts(status.session_started_at.as_ref())
        .map(|started| session_expiry(spec, started, settings))
        .or_else(|| parse_ts(status.session_expires_at.as_ref()));
    match expiry {
        Some(at) if now < at => Decision::WaitUntil(at),
        Some(_) => Decision::Start,
        None => Decision::LookupForAdoption,
    }
}

/// The operation to adopt instead of starting a session: the newest `StartGUISession` operation
/// that did not fail and whose session is still younger than the effective `maxSessionAge`.
pub fn pick_adoptable<'a>(
    operations: &'a [Operation],
    spec: &GuiSessionSpec,
    now: Timestamp,
    settings: &Settings,
) -> Option<&'a Operation> {
    operations
        .iter()
        .filter(|op| op.operation_type.as_deref() == Some("StartGUISession"))
        .filter(|op| op.status != Some(OperationStatus::Failed))
        .filter_map(|op| parse_ts(op.created_at.as_ref()).map(|created| (created, op)))
        .filter(|(created, _)| now < session_expiry(spec, *created, settings))
        .max_by_key(|(created, _)| *created)
        .map(|(_, op)| op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{LastError, Operation};

    const T0: &str = "2026-11-24T12:00:00Z";

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("valid timestamp")
    }
    fn t0() -> Timestamp {
        ts(T0)
    }
    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }
    fn spec() -> GuiSessionSpec {
        GuiSessionSpec {
            resource_name: "web-1".into(),
            region: None,
            max_session_age: "1h".into(),
            suspend: false,
            stop_on_delete: false,
        }
    }
    fn settings() -> Settings {
        Settings {
            min_session_age: secs(600),
            stalled_retry: secs(300),
            follow_backoff_initial: secs(2),
            follow_backoff_max: secs(60),
        }
    }
    fn condition(type_: &str, status: &str, reason: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t0()),
        }
    }
    fn stalled_by_api_error(at: &str) -> GuiSessionStatus {
        GuiSessionStatus {
            observed_generation: Some(1),
            last_error: Some(LastError {
                code: Some("NotFound".into()),
                message: Some("no such instance".into()),
                time: Some(at.into()),
            }),
            conditions: Some(vec![
                condition("Ready", "False", "NotFound"),
                condition("Reconciling", "False", "NotFound"),
                condition("Stalled", "True", "NotFound"),
            ]),
            ..GuiSessionStatus::default()
        }
    }
    fn start_op(id: &str, created: &str, status: OperationStatus) -> Operation {
        Operation {
            id: Some(id.into()),
            operation_type: Some("StartGUISession".into()),
            created_at: Some(created.into()),
            status: Some(status),
            ..Operation::default()
        }
    }
    fn started(at: &str) -> GuiSessionStatus {
        GuiSessionStatus {
            session_started_at: Some(at.into()),
            session_expires_at: None,
            operation: Some(Operation {
                id: Some("op-1".into()),
                created_at: Some(at.into()),
                status_changed_at: Some(at.into()),
                is_terminal: Some(true),
                status: Some(OperationStatus::Succeeded),
                ..Operation::default()
            }),
            ..GuiSessionStatus::default()
        }
    }
    fn running(changed_at: &str) -> GuiSessionStatus {
        GuiSessionStatus {
            operation: Some(Operation {
                id: Some("op-2".into()),
                created_at: Some(changed_at.into()),
                status_changed_at: Some(changed_at.into()),
                is_terminal: Some(false),
                status: Some(OperationStatus::Started),
                ..Operation::default()
            }),
            ..GuiSessionStatus::default()
        }
    }
    fn failed(at: &str, last_error_at: Option<&str>) -> GuiSessionStatus {
        GuiSessionStatus {
            operation: Some(Operation {
                id: Some("op-3".into()),
                created_at: Some(at.into()),
                status_changed_at: Some(at.into()),
                is_terminal: Some(true),
                status: Some(OperationStatus::Failed),
                error_code: Some("InvalidInput".into()),
                ..Operation::default()
            }),
            last_error: last_error_at.map(|t| LastError {
                code: Some("InvalidInput".into()),
                message: Some("boom".into()),
                time: Some(t.into()),
            }),
            ..GuiSessionStatus::default()
        }
    }
    fn d(spec: &GuiSessionSpec, status: Option<&GuiSessionStatus>, now: Timestamp) -> Decision {
        let generation = status.and_then(|s| s.observed_generation);
        decide(spec, status, generation, now, &settings(), false)
    }

    #[test]
    fn no_status_looks_up_for_adoption() {
        assert_eq!(d(&spec(), None, t0()), Decision::LookupForAdoption);
        let empty = GuiSessionStatus::default();
        assert_eq!(d(&spec(), Some(&empty), t0()), Decision::LookupForAdoption);
    }

    #[test]
    fn unparsable_timestamps_count_as_no_session() {
        let mut st = started("yesterday");
        st.operation = None;
        assert_eq!(d(&spec(), Some(&st), t0()), Decision::LookupForAdoption);
    }

    #[test]
    fn live_session_waits_until_expiry() {
        let st = started(T0);
        let now = add(t0(), secs(60));
        assert_eq!(
            d(&spec(), Some(&st), now),
            Decision::WaitUntil(add(t0(), secs(3600)))
        );
    }

    #[test]
    fn one_second_before_expiry_still_waits() {
        let st = started(T0);
        let now = add(t0(), secs(3599));
        assert_eq!(
            d(&spec(), Some(&st), now),
            Decision::WaitUntil(add(t0(), secs(3600)))
        );
    }

    #[test]
    fn exactly_at_expiry_starts() {
        let st = started(T0);
        assert_eq!(
            d(&spec(), Some(&st), add(t0(), secs(3600))),
            Decision::Start
        );
    }

    #[test]
    fn after_expiry_starts() {
        let st = started(T0);
        assert_eq!(
            d(&spec(), Some(&st), add(t0(), secs(7200))),
            Decision::Start
        );
    }

    #[test]
    fn expires_at_is_used_when_started_at_is_missing() {
        let st = GuiSessionStatus {
            session_expires_at: Some("2026-11-24T12:30:00Z".into()),
            ..GuiSessionStatus::default()
        };
        assert_eq!(
            d(&spec(), Some(&st), t0()),
            Decision::WaitUntil(ts("2026-11-24T12:30:00Z"))
        );
        assert_eq!(
            d(&spec(), Some(&st), ts("2026-11-24T12:30:00Z")),
            Decision::Start
        );
    }

    #[test]
    fn guard_rail_raises_small_max_session_age() {
        let mut sp = spec();
        sp.max_session_age = "1m".into();
        assert_eq!(effective_max_session_age(&sp, &settings()), secs(600));
        let st = started(T0);
        assert_eq!(
            d(&sp, Some(&st), add(t0(), secs(120))),
            Decision::WaitUntil(add(t0(), secs(600)))
        );
        assert_eq!(d(&sp, Some(&st), add(t0(), secs(600))), Decision::Start);
    }

    #[test]
    fn guard_rail_boundary_and_larger_values_are_kept() {
        let mut sp = spec();
        sp.max_session_age = "10m".into();
        assert_eq!(effective_max_session_age(&sp, &settings()), secs(600));
        sp.max_session_age = "1h30m".into();
        assert_eq!(effective_max_session_age(&sp, &settings()), secs(5400));
    }

    #[test]
    fn invalid_max_session_age_falls_back_to_default() {
        let mut sp = spec();
        sp.max_session_age = "forever".into();
        assert_eq!(effective_max_session_age(&sp, &settings()), secs(3600));
    }

    #[test]
    fn suspend_without_session() {
        let mut sp = spec();
        sp.suspend = true;
        assert_eq!(d(&sp, None, t0()), Decision::Suspended);
    }

    #[test]
    fn suspend_while_recorded_and_expired() {
        let mut sp = spec();
        sp.suspend = true;
        let st = started(T0);
        assert_eq!(
            d(&sp, Some(&st), add(t0(), secs(7200))),
            Decision::Suspended
        );
        let st = running(T0);
        assert_eq!(d(&sp, Some(&st), t0()), Decision::Suspended);
    }

    #[test]
    fn running_operation_is_followed_with_initial_backoff() {
        let st = running(T0);
        assert_eq!(
            d(&spec(), Some(&st), add(t0(), secs(1))),
            Decision::Follow {
                operation_id: "op-2".into(),
                after: secs(2)
            }
        );
    }

    #[test]
    fn follow_backoff_grows_with_age_and_is_capped() {
        let st = running(T0);
        let after = |n| match d(&spec(), Some(&st), add(t0(), secs(n))) {
            Decision::Follow { after, .. } => after,
            other => panic!("expected Follow, got {other:?}"),
        };
        assert_eq!(after(0), secs(2));
        assert_eq!(after(8), secs(8));
        assert_eq!(after(60), secs(60));
        assert_eq!(after(600), secs(60));
    }

    #[test]
    fn follow_with_clock_skew_uses_initial_backoff() {
        let st = running("2026-11-24T12:10:00Z");
        assert_eq!(
            d(&spec(), Some(&st), t0()),
            Decision::Follow {
                operation_id: "op-2".into(),
                after: secs(2)
            }
        );
    }

    #[test]
    fn not_started_operation_without_terminal_flag_is_followed() {
        let mut st = running(T0);
        if let Some(op) = st.operation.as_mut() {
            op.is_terminal = None;
            op.status = Some(OperationStatus::NotStarted);
            op.created_at = None;
            op.status_changed_at = None;
        }
        assert_eq!(
            d(&spec(), Some(&st), t0()),
            Decision::Follow {
                operation_id: "op-2".into(),
                after: secs(2)
            }
        );
    }

    #[test]
    fn running_operation_without_id_is_looked_up() {
        let mut st = running(T0);
        if let Some(op) = st.operation.as_mut() {
            op.id = None;
        }
        assert_eq!(d(&spec(), Some(&st), t0()), Decision::LookupForAdoption);
    }

    #[test]
    fn failed_operation_backs_off_then_starts() {
        let st = failed(T0, None);
        assert_eq!(
            d(&spec(), Some(&st), add(t0(), secs(10))),
            Decision::WaitUntil(add(t0(), secs(300)))
        );
        assert_eq!(
            d(&spec(), Some(&st), add(t0(), secs(299))),
            Decision::WaitUntil(add(t0(), secs(300)))
        );
        assert_eq!(d(&spec(), Some(&st), add(t0(), secs(300))), Decision::Start);
    }

    #[test]
    fn failed_operation_backoff_counts_from_last_error() {
        let st = failed(T0, Some("2026-11-24T12:01:00Z"));
        assert_eq!(
            d(&spec(), Some(&st), add(t0(), secs(299))),
            Decision::WaitUntil(add(t0(), secs(360)))
        );
        assert_eq!(d(&spec(), Some(&st), add(t0(), secs(360))), Decision::Start);
    }

    #[test]
    fn failed_operation_without_times_starts() {
        let mut st = failed(T0, None);
        if let Some(op) = st.operation.as_mut() {
            op.created_at = None;
            op.status_changed_at = None;
        }
        assert_eq!(d(&spec(), Some(&st), t0()), Decision::Start);
    }

    #[test]
    fn failed_operation_wins_over_live_session() {
        let mut st = failed(T0, None);
        st.session_started_at = Some(T0.into());
        assert_eq!(
            d(&spec(), Some(&st), add(t0(), secs(1))),
            Decision::WaitUntil(add(t0(), secs(300)))
        );
    }

    #[test]
    fn deleting_with_stop_on_delete_stops_recorded_session() {
        let mut sp = spec();
        sp.stop_on_delete = true;
        let st = started(T0);
        assert_eq!(
            decide(&sp, Some(&st), None, t0(), &settings(), true),
            Decision::Stop
        );
        // Deletion wins over suspend.
        sp.suspend = true;
        assert_eq!(
            decide(&sp, Some(&st), None, t0(), &settings(), true),
            Decision::Stop
        );
    }

    #[test]
    fn deleting_without_session_or_without_stop_on_delete_does_nothing() {
        let mut sp = spec();
        let st = started(T0);
        assert_eq!(
            decide(&sp, Some(&st), None, t0(), &settings(), true),
            Decision::Nothing
        );
        sp.stop_on_delete = true;
        assert_eq!(
            decide(&sp, None, None, t0(), &settings(), true),
            Decision::Nothing
        );
    }

    #[test]
    fn session_expiry_saturates() {
        let mut sp = spec();
        sp.max_session_age = "2562047h".into();
        assert_eq!(
            session_expiry(&sp, Timestamp::MAX, &settings()),
            Timestamp::MAX
        );
    }

    #[test]
    fn start_marker_forces_a_lookup_even_with_an_expired_session() {
        let mut st = started(T0);
        st.conditions = Some(vec![condition("Reconciling", "True", REASON_STARTING)]);
        assert_eq!(
            d(&spec(), Some(&st), add(t0(), secs(7200))),
            Decision::LookupForAdoption
        );
        // ... and before expiry too (a crash right after the marker was written).
        assert_eq!(
            d(&spec(), Some(&st), add(t0(), secs(60))),
            Decision::LookupForAdoption
        );
        // A marker with another reason, or not True, is not a pending start.
        st.conditions = Some(vec![condition("Reconciling", "True", "Throttling")]);
        assert_eq!(
            d(&spec(), Some(&st), add(t0(), secs(7200))),
            Decision::Start
        );
        st.conditions = Some(vec![condition("Reconciling", "False", REASON_STARTING)]);
        assert_eq!(
            d(&spec(), Some(&st), add(t0(), secs(7200))),
            Decision::Start
        );
    }

    #[test]
    fn running_operation_is_followed_even_with_the_start_marker() {
        let mut st = running(T0);
        st.conditions = Some(vec![condition("Reconciling", "True", REASON_STARTING)]);
        assert!(matches!(
            d(&spec(), Some(&st), t0()),
            Decision::Follow { .. }
        ));
    }

    #[test]
    fn terminal_api_error_waits_the_stalled_retry_then_looks_up() {
        let st = stalled_by_api_error(T0);
        assert_eq!(
            d(&spec(), Some(&st), add(t0(), secs(299))),
            Decision::WaitUntil(add(t0(), secs(300)))
        );
        assert_eq!(
            d(&spec(), Some(&st), add(t0(), secs(300))),
            Decision::LookupForAdoption
        );
    }

    #[test]
    fn spec_change_retries_a_stalled_object_at_once() {
        let st = stalled_by_api_error(T0);
        let now = add(t0(), secs(10));
        assert_eq!(
            decide(&spec(), Some(&st), Some(2), now, &settings(), false),
            Decision::LookupForAdoption
        );
        let st = failed(T0, Some(T0));
        assert_eq!(
            decide(&spec(), Some(&st), Some(2), now, &settings(), false),
            Decision::Start
        );
        // Same generation: still waiting.
        assert_eq!(
            decide(&spec(), Some(&st), None, now, &settings(), false),
            Decision::WaitUntil(add(t0(), secs(300)))
        );
    }

    #[test]
    fn stalled_without_error_time_does_not_wait() {
        let mut st = stalled_by_api_error(T0);
        st.last_error = None;
        assert_eq!(d(&spec(), Some(&st), t0()), Decision::LookupForAdoption);
    }

    #[test]
    fn adoption_picks_the_newest_live_start() {
        let now = add(t0(), secs(1800));
        let ops = vec![
            start_op("old", "2026-11-24T10:00:00Z", OperationStatus::Succeeded),
            start_op("live", "2026-11-24T12:10:00Z", OperationStatus::Succeeded),
            start_op("newer", "2026-11-24T12:20:00Z", OperationStatus::Started),
            start_op("failed", "2026-11-24T12:25:00Z", OperationStatus::Failed),
            Operation {
                operation_type: Some("StopGUISession".into()),
                ..start_op("stop", "2026-11-24T12:26:00Z", OperationStatus::Succeeded)
            },
            Operation {
                created_at: None,
                ..start_op("undated", "", OperationStatus::Succeeded)
            },
        ];
        let got = pick_adoptable(&ops, &spec(), now, &settings()).map(|o| o.id.clone());
        assert_eq!(got, Some(Some("newer".into())));
    }

    #[test]
    fn adoption_ignores_sessions_older_than_max_age() {
        let ops = vec![start_op("a", T0, OperationStatus::Succeeded)];
        assert!(pick_adoptable(&ops, &spec(), add(t0(), secs(3600)), &settings()).is_none());
        assert!(pick_adoptable(&ops, &spec(), add(t0(), secs(3599)), &settings()).is_some());
        // The guard rail applies: 1m is raised to 10m.
        let mut sp = spec();
        sp.max_session_age = "1m".into();
        assert!(pick_adoptable(&ops, &sp, add(t0(), secs(599)), &settings()).is_some());
        assert!(pick_adoptable(&[], &sp, t0(), &settings()).is_none());
    }
}
