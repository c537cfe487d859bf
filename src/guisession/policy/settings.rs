//! Operator-wide settings that shape decisions, and the limits they put on a GuiSession's own
//! policy.

use std::time::Duration;

use crate::duration::parse_go_duration;
use crate::guisession::types::{DEFAULT_MAX_SESSION_AGE, GuiSessionSpec};
/// Operator-wide settings that shape decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Guard rail: a `maxSessionAge` below this is raised to it, and no new start follows the
    /// last one sooner than this.
    pub min_session_age: Duration,
    /// How long to wait before retrying after a terminal error.
    pub stalled_retry: Duration,
    /// First delay when polling a running operation.
    pub follow_backoff_initial: Duration,
    /// Longest delay when polling a running operation.
    pub follow_backoff_max: Duration,
    /// How long a pending start belongs to its writer. Longer than a StartGUISession call can
    /// take, so that after it the call has either reached Lightsail or never will.
    pub start_settle: Duration,
    /// The Region of GuiSessions without `spec.region`.
    pub default_region: Option<String>,
    /// This replica's name, written into `pendingStart.holder`.
    pub identity: String,
    /// First delay before reading the state of a computer that is not running again; later
    /// delays grow with how long it has not been running.
    pub computer_recheck_initial: Duration,
    /// Longest delay between two reads of a computer that is not running.
    pub computer_recheck_max: Duration,
    /// Whether the operator may write access Secrets (`spec.access`): off unless the chart grants
    /// it the Secret permissions.
    pub access_secrets: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            min_session_age: Duration::from_secs(5 * 60),
            stalled_retry: Duration::from_secs(5 * 60),
            follow_backoff_initial: Duration::from_secs(1),
            follow_backoff_max: Duration::from_secs(30),
            start_settle: Duration::from_secs(60),
            default_region: None,
            computer_recheck_initial: Duration::from_secs(30),
            computer_recheck_max: Duration::from_secs(5 * 60),
            identity: "lightsail-gui-operator".into(),
            access_secrets: false,
        }
    }
}

/// `spec.maxSessionAge`, raised to the guard rail. An unparsable value (admission should have
/// rejected it) falls back to the default of `1h`.
pub fn effective_max_session_age(spec: &GuiSessionSpec, settings: &Settings) -> Duration {
    let requested = parse_go_duration(&spec.max_session_age)
        .or_else(|_| parse_go_duration(DEFAULT_MAX_SESSION_AGE))
        .unwrap_or(Duration::from_secs(3600));
    requested.max(settings.min_session_age)
}

/// The condition note when the guard rail raised `maxSessionAge`.
pub fn guard_rail_note(spec: &GuiSessionSpec, settings: &Settings) -> Option<String> {
    let requested = parse_go_duration(&spec.max_session_age).ok()?;
    let effective = effective_max_session_age(spec, settings);
    (requested < effective).then(|| {
        format!(
            "maxSessionAge {} is below the operator's minimum session age; using {}",
            spec.max_session_age,
            jiff::SignedDuration::try_from(effective)
                .map(|d| format!("{d:#}"))
                .unwrap_or_else(|_| format!("{effective:?}"))
        )
    })
}

/// How long after its fence a start may still be sent (see `Context::start_budget`); zero
/// when the settings leave no time at all (the operator refuses such settings at start).
pub fn start_budget(
    settle: Duration,
    call_timeout: Duration,
    max_clock_skew: Duration,
) -> Duration {
    settle
        .saturating_sub(call_timeout)
        .saturating_sub(Duration::from_secs(1))
        .saturating_sub(max_clock_skew)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_budget_leaves_room_for_the_call_the_whole_second_and_the_clock_skew() {
        let s = Duration::from_secs;
        assert_eq!(start_budget(s(60), s(30), s(1)), s(28));
        assert_eq!(start_budget(s(8), s(5), s(1)), s(1));
        assert_eq!(
            start_budget(s(8), s(5), s(2)),
            Duration::ZERO,
            "no room: refused"
        );
        assert_eq!(start_budget(s(8), s(5), Duration::ZERO), s(2));
    }
}
