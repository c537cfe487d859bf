//! How a GuiSession's state is shown: the kstatus conditions (`Ready`, `Reconciling`, `Stalled`)
//! for each phase, kept pure so every case is unit-tested.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::guisession::types::GuiSessionStatus;

/// What the controller knows about a GuiSession after a reconcile step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// A GUI session is available until `expires_at`.
    Active { expires_at: Timestamp },
    /// A routine renewal of a session that was available: Ready stays True, so GitOps tools do
    /// not see the object go unhealthy once an hour.
    Renewing { message: String },
    /// A first session is being started (or looked for), or its operation is running.
    Starting { message: String },
    /// `spec.suspend` is set: nothing to do, which is the desired state.
    Suspended,
    /// `spec.schedule` has no window open: nothing to do until `opens_at`, which is the desired
    /// state (settled, like Suspended).
    OutsideSchedule { opens_at: Option<Timestamp> },
    /// The computer is being started (by the operator or someone else), or is stopping before
    /// the operator starts it: in progress.
    ComputerStarting { message: String },
    /// The computer is not running and the operator may not start it: nothing changes until
    /// someone starts it (or the spec allows the operator to).
    ComputerStopped { message: String },
    /// The computer stopped inside the window after it ran there (its idle-stop rule, or a
    /// person): respected until the next window, which is the desired state (settled).
    ComputerIdleStopped { message: String },
    /// A transient error; the controller retries with backoff.
    Retrying { reason: String, message: String },
    /// A terminal error; retried slowly, or at once on a spec change.
    Stalled { reason: String, message: String },
}

impl Phase {
    /// The `state` label of the sessions metric.
    pub fn label(&self) -> &'static str {
        match self {
            Phase::Active { .. } | Phase::Renewing { .. } => "active",
            Phase::Starting { .. } | Phase::ComputerStarting { .. } => "starting",
            Phase::ComputerIdleStopped { .. } => "idle_stopped",
            Phase::Suspended => "suspended",
            Phase::OutsideSchedule { .. } => "outside_schedule",
            Phase::Retrying { .. } => "retrying",
            Phase::Stalled { .. } | Phase::ComputerStopped { .. } => "stalled",
        }
    }
}

/// The condition of `type_` when its status is `True`.
pub fn condition_true<'a>(status: &'a GuiSessionStatus, type_: &str) -> Option<&'a Condition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// The metric label for a stored status (what the sessions gauge counts).
pub fn state_label(status: Option<&GuiSessionStatus>) -> &'static str {
    let Some(status) = status.filter(|s| s.conditions.is_some()) else {
        return "starting";
    };
    match condition_true(status, "Ready") {
        Some(c) if c.reason == REASON_SUSPENDED => "suspended",
        Some(c) if c.reason == REASON_OUTSIDE_SCHEDULE => "outside_schedule",
        Some(c) if c.reason == REASON_COMPUTER_IDLE_STOPPED => "idle_stopped",
        Some(_) => "active",
        None if condition_true(status, "Stalled").is_some() => "stalled",
        None if condition_true(status, "Reconciling")
            .is_some_and(|c| c.reason == REASON_RETRYING) =>
        {
            "retrying"
        }
        None => "starting",
    }
}

pub const REASON_ACTIVE: &str = "SessionActive";
pub const REASON_RENEWING: &str = "SessionRenewing";
pub const REASON_STARTING: &str = "SessionStarting";
pub const REASON_SUSPENDED: &str = "Suspended";
pub const REASON_RETRYING: &str = "Retrying";
pub const REASON_OUTSIDE_SCHEDULE: &str = "OutsideSchedule";
pub const REASON_COMPUTER_STARTING: &str = "ComputerStarting";
pub const REASON_COMPUTER_STOPPED: &str = "ComputerStopped";
pub const REASON_COMPUTER_IDLE_STOPPED: &str = "ComputerIdleStopped";

/// Turns an error code into a valid condition reason (`^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`).
pub fn reason_from_code(code: &str) -> String {
    let cleaned: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    match cleaned.chars().next() {
        Some(c) if c.is_ascii_alphabetic() => cleaned,
        _ => "Error".to_owned(),
    }
}

/// The three kstatus conditions for `phase`. `note` (e.g. the guard-rail message) is appended
/// to every message. A condition keeps its `lastTransitionTime` while its status is unchanged.
pub fn conditions(
    phase: &Phase,
    note: Option<&str>,
    generation: Option<i64>,
    previous: Option<&[Condition]>,
    now: Timestamp,
) -> Vec<Condition> {
    let (ready, reconciling, stalled) = match phase {
        Phase::Active { expires_at } => {
            let msg = format!("GUI session active; the next one starts at {expires_at}");
            (
                ("True", REASON_ACTIVE, msg.clone()),
                ("False", REASON_ACTIVE, msg.clone()),
                ("False", REASON_ACTIVE, msg),
            )
        }
        Phase::Renewing { message } => (
            ("True", REASON_RENEWING, message.clone()),
            ("False", REASON_RENEWING, message.clone()),
            ("False", REASON_RENEWING, message.clone()),
        ),
        Phase::Starting { message } => (
            ("False", REASON_STARTING, message.clone()),
            ("True", REASON_STARTING, message.clone()),
            ("False", REASON_STARTING, message.clone()),
        ),
        Phase::Suspended => {
            let msg = "spec.suspend is true: no new GUI sessions are started".to_owned();
            (
                ("True", REASON_SUSPENDED, msg.clone()),
                ("False", REASON_SUSPENDED, msg.clone()),
                ("False", REASON_SUSPENDED, msg),
            )
        }
        Phase::OutsideSchedule { opens_at } => {
            let msg = match opens_at {
                Some(at) => format!("no schedule window is open: the next opens at {at}"),
                None => "no schedule window opens within the next 400 days".to_owned(),
            };
            (
                ("True", REASON_OUTSIDE_SCHEDULE, msg.clone()),
                ("False", REASON_OUTSIDE_SCHEDULE, msg.clone()),
                ("False", REASON_OUTSIDE_SCHEDULE, msg),
            )
        }
        Phase::ComputerStarting { message } => (
            ("False", REASON_COMPUTER_STARTING, message.clone()),
            ("True", REASON_COMPUTER_STARTING, message.clone()),
            ("False", REASON_COMPUTER_STARTING, message.clone()),
        ),
        Phase::ComputerStopped { message } => (
            ("False", REASON_COMPUTER_STOPPED, message.clone()),
            ("False", REASON_COMPUTER_STOPPED, message.clone()),
            ("True", REASON_COMPUTER_STOPPED, message.clone()),
        ),
        Phase::ComputerIdleStopped { message } => (
            ("True", REASON_COMPUTER_IDLE_STOPPED, message.clone()),
            ("False", REASON_COMPUTER_IDLE_STOPPED, message.clone()),
            ("False", REASON_COMPUTER_IDLE_STOPPED, message.clone()),
        ),
        Phase::Retrying { reason, message } => (
            ("False", reason.as_str(), message.clone()),
            ("True", REASON_RETRYING, message.clone()),
            ("False", reason.as_str(), message.clone()),
        ),
        Phase::Stalled { reason, message } => (
            ("False", reason.as_str(), message.clone()),
            ("False", reason.as_str(), message.clone()),
            ("True", reason.as_str(), message.clone()),
        ),
    };
    [
        ("Ready", ready),
        ("Reconciling", reconciling),
        ("Stalled", stalled),
    ]
    .into_iter()
    .map(|(type_, (status, reason, message))| {
        let message = match note {
            Some(n) => format!("{message}. {n}"),
            None => message,
        };
        condition(type_, status, reason, message, generation, previous, now)
    })
    .collect()
}

/// One condition, keeping the `lastTransitionTime` of `previous` while its status is unchanged.
pub fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    generation: Option<i64>,
    previous: Option<&[Condition]>,
    now: Timestamp,
) -> Condition {
    let last_transition_time = previous
        .and_then(|p| p.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-11-24T12:00:00Z".parse().expect("timestamp")
    }

    fn by_type<'a>(cs: &'a [Condition], t: &str) -> &'a Condition {
        cs.iter().find(|c| c.type_ == t).expect("condition present")
    }

    fn statuses(phase: &Phase) -> (String, String, String) {
        let cs = conditions(phase, None, Some(3), None, now());
        assert!(cs.iter().all(|c| c.observed_generation == Some(3)));
        (
            by_type(&cs, "Ready").status.clone(),
            by_type(&cs, "Reconciling").status.clone(),
            by_type(&cs, "Stalled").status.clone(),
        )
    }

    fn labelled(phase: &Phase) -> &'static str {
        let status = GuiSessionStatus {
            conditions: Some(conditions(phase, None, None, None, now())),
            ..GuiSessionStatus::default()
        };
        state_label(Some(&status))
    }

    fn all_phases() -> Vec<Phase> {
        vec![
            Phase::Active { expires_at: now() },
            Phase::Renewing {
                message: "m".into(),
            },
            Phase::Starting {
                message: "m".into(),
            },
            Phase::Suspended,
            Phase::OutsideSchedule { opens_at: None },
            Phase::OutsideSchedule {
                opens_at: Some(now()),
            },
            Phase::Retrying {
                reason: "Throttling".into(),
                message: "m".into(),
            },
            Phase::Stalled {
                reason: "NotFound".into(),
                message: "m".into(),
            },
            Phase::ComputerStarting {
                message: "m".into(),
            },
            Phase::ComputerStopped {
                message: "m".into(),
            },
            Phase::ComputerIdleStopped {
                message: "m".into(),
            },
        ]
    }

    #[test]
    fn each_phase_maps_to_kstatus_conditions() {
        let t = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
        let expected = [
            t("True", "False", "False"),
            // A routine renewal stays Ready: kstatus Current, Argo CD Healthy.
            t("True", "False", "False"),
            t("False", "True", "False"),
            // Suspended is the desired state: settled, so `kubectl wait` and Flux see Current.
            t("True", "False", "False"),
            // Outside the schedule is settled too, whether or not a window opens again.
            t("True", "False", "False"),
            t("True", "False", "False"),
            t("False", "True", "False"),
            t("False", "False", "True"),
            // A computer being started is in progress, not failed.
            t("False", "True", "False"),
            // A stopped computer the operator may not start needs a person: Stalled.
            t("False", "False", "True"),
            // A stop the operator respects is settled, like a closed window.
            t("True", "False", "False"),
        ];
        for (phase, want) in all_phases().iter().zip(expected) {
            assert_eq!(statuses(phase), want, "{phase:?}");
        }
    }

    #[test]
    fn the_metric_label_read_back_from_conditions_is_the_phase_label() {
        for phase in all_phases() {
            assert_eq!(labelled(&phase), phase.label(), "{phase:?}");
        }
        assert_eq!(state_label(None), "starting");
    }

    #[test]
    fn suspended_is_the_ready_reason() {
        let cs = conditions(&Phase::Suspended, None, None, None, now());
        assert_eq!(by_type(&cs, "Ready").reason, "Suspended");
    }

    #[test]
    fn transition_time_is_kept_while_status_is_unchanged() {
        let earlier: Timestamp = "2026-11-24T11:00:00Z".parse().expect("timestamp");
        let first = conditions(
            &Phase::Starting {
                message: "m".into(),
            },
            None,
            Some(1),
            None,
            earlier,
        );
        let second = conditions(
            &Phase::Active { expires_at: now() },
            None,
            Some(1),
            Some(&first),
            now(),
        );
        // Ready and Reconciling flipped; Stalled stayed False.
        assert_eq!(by_type(&second, "Ready").last_transition_time, Time(now()));
        assert_eq!(
            by_type(&second, "Reconciling").last_transition_time,
            Time(now())
        );
        assert_eq!(
            by_type(&second, "Stalled").last_transition_time,
            Time(earlier)
        );
        // A renewal after that keeps Ready's transition time: it never went False.
        let third = conditions(
            &Phase::Renewing {
                message: "m".into(),
            },
            None,
            Some(1),
            Some(&second),
            now() + jiff::SignedDuration::from_hours(1),
        );
        assert_eq!(by_type(&third, "Ready").last_transition_time, Time(now()));
    }

    #[test]
    fn note_is_appended_to_every_message() {
        let cs = conditions(
            &Phase::Active { expires_at: now() },
            Some("maxSessionAge 2s raised to 5m"),
            None,
            None,
            now(),
        );
        assert!(cs.iter().all(|c| c.message.ends_with("raised to 5m")));
    }

    #[test]
    fn reasons_are_valid_condition_reasons() {
        assert_eq!(reason_from_code("NotFound"), "NotFound");
        assert_eq!(reason_from_code("Not Found!"), "NotFound");
        assert_eq!(reason_from_code(""), "Error");
        assert_eq!(reason_from_code("500"), "Error");
    }
}
