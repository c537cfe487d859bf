//! How a GuiSession's state is shown: the kstatus conditions (`Ready`, `Reconciling`, `Stalled`)
//! for each phase, kept pure so every case is unit-tested.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::{GuiSessionStatus, OperationStatus};
use crate::decision::REASON_STARTING;

/// What the controller knows about a GuiSession after a reconcile step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// A GUI session is available until `expires_at`.
    Active { expires_at: String },
    /// A start is requested or its operation is running.
    Starting { message: String },
    /// `spec.suspend` is set.
    Suspended,
    /// A transient error; the controller retries with backoff. `start_pending` keeps the
    /// start marker when the failed call may have started a session (no answer from Lightsail).
    Retrying {
        reason: String,
        message: String,
        start_pending: bool,
    },
    /// A terminal error; retried slowly, or at once on a spec change.
    Stalled { reason: String, message: String },
}

impl Phase {
    /// The `state` label of the sessions metric.
    pub fn label(&self) -> &'static str {
        match self {
            Phase::Active { .. } => "active",
            Phase::Starting { .. } => "starting",
            Phase::Suspended => "suspended",
            Phase::Retrying { .. } => "retrying",
            Phase::Stalled { .. } => "stalled",
        }
    }
}

/// The metric label for a stored status (what the sessions gauge counts).
pub fn state_label(status: Option<&GuiSessionStatus>) -> &'static str {
    let Some(conditions) = status.and_then(|s| s.conditions.as_ref()) else {
        return "starting";
    };
    let is_true = |t: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == t && c.status == "True")
    };
    let reason = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| c.reason.as_str())
    };
    if is_true("Ready") {
        "active"
    } else if is_true("Stalled") {
        "stalled"
    } else if reason("Ready") == Some(REASON_SUSPENDED) {
        "suspended"
    } else if is_true("Reconciling") && reason("Reconciling") != Some(REASON_STARTING) {
        "retrying"
    } else {
        "starting"
    }
}

pub const REASON_ACTIVE: &str = "SessionActive";
pub const REASON_SUSPENDED: &str = "Suspended";
pub const REASON_RETRYING: &str = "Retrying";

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
        Phase::Starting { message } => (
            ("False", REASON_STARTING, message.clone()),
            ("True", REASON_STARTING, message.clone()),
            ("False", REASON_STARTING, message.clone()),
        ),
        Phase::Suspended => {
            let msg = "spec.suspend is true: no new GUI sessions are started".to_owned();
            (
                ("False", REASON_SUSPENDED, msg.clone()),
                ("False", REASON_SUSPENDED, msg.clone()),
                ("False", REASON_SUSPENDED, msg),
            )
        }
        Phase::Retrying {
            reason,
            message,
            start_pending,
        } => {
            let reconciling_reason = if *start_pending {
                REASON_STARTING
            } else {
                REASON_RETRYING
            };
            (
                ("False", reason.as_str(), message.clone()),
                ("True", reconciling_reason, message.clone()),
                ("False", reason.as_str(), message.clone()),
            )
        }
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
    })
    .collect()
}

/// The phase a recorded operation puts the object in, given when its session expires.
pub fn phase_of_operation(
    status: Option<OperationStatus>,
    is_terminal: Option<bool>,
    expires_at: Option<&str>,
    error: Option<(&str, &str)>,
) -> Phase {
    match status {
        Some(OperationStatus::Failed) => {
            let (code, details) = error.unwrap_or(("OperationFailed", "the operation failed"));
            Phase::Stalled {
                reason: reason_from_code(code),
                message: format!("StartGUISession operation failed: {details}"),
            }
        }
        // Lightsail may omit the status of a finished operation; isTerminal then decides.
        Some(OperationStatus::Succeeded | OperationStatus::Completed) => Phase::Active {
            expires_at: expires_at.unwrap_or("unknown").to_owned(),
        },
        None if is_terminal == Some(true) => Phase::Active {
            expires_at: expires_at.unwrap_or("unknown").to_owned(),
        },
        _ => Phase::Starting {
            message: "StartGUISession operation running".to_owned(),
        },
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

    #[test]
    fn each_phase_maps_to_kstatus_conditions() {
        let t = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
        assert_eq!(
            statuses(&Phase::Active {
                expires_at: "x".into()
            }),
            t("True", "False", "False")
        );
        assert_eq!(
            statuses(&Phase::Starting {
                message: "m".into()
            }),
            t("False", "True", "False")
        );
        assert_eq!(statuses(&Phase::Suspended), t("False", "False", "False"));
        assert_eq!(
            statuses(&Phase::Retrying {
                reason: "Throttling".into(),
                message: "m".into(),
                start_pending: false
            }),
            t("False", "True", "False")
        );
        assert_eq!(
            statuses(&Phase::Stalled {
                reason: "NotFound".into(),
                message: "m".into()
            }),
            t("False", "False", "True")
        );
    }

    #[test]
    fn suspended_is_the_ready_reason() {
        let cs = conditions(&Phase::Suspended, None, None, None, now());
        assert_eq!(by_type(&cs, "Ready").reason, "Suspended");
        let status = GuiSessionStatus {
            conditions: Some(cs),
            ..GuiSessionStatus::default()
        };
        assert_eq!(state_label(Some(&status)), "suspended");
    }

    #[test]
    fn retrying_keeps_the_start_marker_only_when_a_start_may_have_happened() {
        let phase = |pending| Phase::Retrying {
            reason: "Timeout".into(),
            message: "m".into(),
            start_pending: pending,
        };
        let cs = conditions(&phase(true), None, None, None, now());
        assert_eq!(by_type(&cs, "Reconciling").reason, REASON_STARTING);
        let cs = conditions(&phase(false), None, None, None, now());
        assert_eq!(by_type(&cs, "Reconciling").reason, REASON_RETRYING);
        let status = GuiSessionStatus {
            conditions: Some(cs),
            ..GuiSessionStatus::default()
        };
        assert_eq!(state_label(Some(&status)), "retrying");
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
            &Phase::Active {
                expires_at: "x".into(),
            },
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
    }

    #[test]
    fn note_is_appended_to_every_message() {
        let cs = conditions(
            &Phase::Active {
                expires_at: "x".into(),
            },
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

    #[test]
    fn operation_phases() {
        assert_eq!(
            phase_of_operation(
                Some(OperationStatus::Succeeded),
                Some(true),
                Some("t"),
                None
            ),
            Phase::Active {
                expires_at: "t".into()
            }
        );
        assert_eq!(
            phase_of_operation(Some(OperationStatus::Completed), None, Some("t"), None),
            Phase::Active {
                expires_at: "t".into()
            }
        );
        assert!(matches!(
            phase_of_operation(Some(OperationStatus::Started), Some(false), None, None),
            Phase::Starting { .. }
        ));
        assert!(matches!(
            phase_of_operation(Some(OperationStatus::NotStarted), None, None, None),
            Phase::Starting { .. }
        ));
        assert_eq!(
            phase_of_operation(
                Some(OperationStatus::Failed),
                Some(true),
                None,
                Some(("InternalError", "disk full"))
            ),
            Phase::Stalled {
                reason: "InternalError".into(),
                message: "StartGUISession operation failed: disk full".into()
            }
        );
        assert_eq!(state_label(None), "starting");
    }
}
