//! Prometheus metrics (prometheus-client), shared by the AWS and Kubernetes edges.

use std::collections::HashMap;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    action: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MapLabels {
    map: String,
}

/// The session states counted by `lightsail_gui_operator_sessions`.
pub const SESSION_STATES: &[&str] = &[
    "active",
    "starting",
    "retrying",
    "stalled",
    "suspended",
    "outside_schedule",
    "idle_stopped",
];

pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    reconcile_duration: Histogram,
    calls: Family<CallLabels, Counter>,
    call_duration: Family<ActionLabels, Histogram>,
    sessions: Family<StateLabels, Gauge>,
    status_writes: Counter,
    status_conflicts: Counter,
    leader: Gauge,
    tracked: Family<MapLabels, Gauge>,
    computer_starts: Counter,
    computer_stops: Counter,
    computers_running: Gauge,
    renewal_overdue: Gauge,
    renewal_lateness: Histogram,
    conditions: Family<ConditionLabels, Gauge>,
    accounts_not_ready: Gauge,
    errors: Family<ErrorLabels, Counter>,
    last_success: Gauge<f64, std::sync::atomic::AtomicU64>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    r#type: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    action: String,
    class: String,
}

/// How long after a session's expiry a renewal still counts as on time in
/// `sessions_renewal_overdue`: a renewal takes a few calls, and a brief retry is normal.
pub const RENEWAL_OVERDUE_AFTER: std::time::Duration = std::time::Duration::from_secs(120);

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("lightsail_gui_operator");
        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by result (ok or an error label)",
            reconciles.clone(),
        );
        let reconcile_duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            reconcile_duration.clone(),
        );
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "lightsail_calls",
            "Lightsail API calls by action and outcome (ok or the error code)",
            calls.clone(),
        );
        let call_duration = Family::<ActionLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        registry.register(
            "lightsail_call_duration_seconds",
            "Latency of Lightsail API calls by action",
            call_duration.clone(),
        );
        let sessions = Family::<StateLabels, Gauge>::default();
        registry.register(
            "sessions",
            "GuiSessions by state (active, starting, retrying, stalled, suspended, outside_schedule, idle_stopped)",
            sessions.clone(),
        );
        for state in SESSION_STATES {
            sessions
                .get_or_create(&StateLabels {
                    state: (*state).to_owned(),
                })
                .set(0);
        }
        let status_writes = Counter::default();
        registry.register(
            "status_writes",
            "GuiSession status writes",
            status_writes.clone(),
        );
        let status_conflicts = Counter::default();
        registry.register(
            "status_conflicts",
            "GuiSession writes refused because the object changed since it was read (409); each is followed by a fresh read and decision",
            status_conflicts.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader lease (or runs without election)",
            leader.clone(),
        );
        let tracked = Family::<MapLabels, Gauge>::default();
        registry.register(
            "tracked_objects",
            "Entries the operator keeps per GuiSession beyond its cache, by map (unconfirmed_starts, backoffs, account_index): each returns to at most the live object count once objects are gone",
            tracked.clone(),
        );
        let computer_starts = Counter::default();
        registry.register(
            "computer_starts",
            "Computers started by the operator (StartInstance accepted)",
            computer_starts.clone(),
        );
        let computer_stops = Counter::default();
        registry.register(
            "computer_stops",
            "Computers stopped by the operator at a window's end (StopInstance accepted)",
            computer_stops.clone(),
        );
        let computers_running = Gauge::default();
        registry.register(
            "computers_running",
            "GuiSessions whose computer the operator last saw running",
            computers_running.clone(),
        );
        let renewal_overdue = Gauge::default();
        registry.register(
            "sessions_renewal_overdue",
            "GuiSessions whose session expired more than 2 minutes ago and has not been renewed (not suspended, inside their schedule window)",
            renewal_overdue.clone(),
        );
        let renewal_lateness =
            Histogram::new([0.0, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0]);
        registry.register(
            "renewal_lateness_seconds",
            "Time from a session's expiry to the decision that renewed it",
            renewal_lateness.clone(),
        );
        let conditions = Family::<ConditionLabels, Gauge>::default();
        registry.register(
            "conditions",
            "GuiSessions whose condition (Stalled or Reconciling) is True, by reason",
            conditions.clone(),
        );
        let accounts_not_ready = Gauge::default();
        registry.register(
            "accounts_not_ready",
            "LightsailAccounts and ClusterLightsailAccounts that are not Ready",
            accounts_not_ready.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "lightsail_errors",
            "Failed Lightsail calls by action and class (retryable or terminal)",
            errors.clone(),
        );
        let last_success = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "last_successful_reconcile_timestamp_seconds",
            "When a reconcile last ended without an error (Unix seconds; 0 before the first)",
            last_success.clone(),
        );
        Metrics {
            renewal_overdue,
            renewal_lateness,
            conditions,
            accounts_not_ready,
            errors,
            last_success,
            computer_starts,
            computer_stops,
            computers_running,
            tracked,
            registry,
            reconciles,
            reconcile_duration,
            calls,
            call_duration,
            sessions,
            status_writes,
            status_conflicts,
            leader,
        }
    }
}

impl Metrics {
    pub fn observe_reconcile(&self, result: &str, took: Duration) {
        self.reconciles
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
        self.reconcile_duration.observe(took.as_secs_f64());
        if result == "ok" {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            self.last_success.set(now.as_secs_f64());
        }
    }

    /// A failed Lightsail call, by its class.
    pub fn count_lightsail_error(&self, action: &str, class: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                action: action.to_owned(),
                class: class.to_owned(),
            })
            .inc();
    }

    /// A renewal decided `late` after the session's expiry.
    pub fn observe_renewal_lateness(&self, late: Duration) {
        self.renewal_lateness.observe(late.as_secs_f64());
    }

    pub fn set_renewal_overdue(&self, overdue: i64) {
        self.renewal_overdue.set(overdue);
    }

    pub fn set_accounts_not_ready(&self, count: i64) {
        self.accounts_not_ready.set(count);
    }

    /// Sets the conditions gauge from counts by (type, reason). Reasons no object has any more
    /// are dropped, so that the series stay as few as the reasons in use.
    pub fn set_condition_counts(&self, counts: &HashMap<(&'static str, String), i64>) {
        self.conditions.clear();
        for ((type_, reason), count) in counts {
            self.conditions
                .get_or_create(&ConditionLabels {
                    r#type: (*type_).to_owned(),
                    reason: reason.clone(),
                })
                .set(*count);
        }
    }

    pub fn observe_lightsail_call(&self, action: &str, outcome: &str, took: Duration) {
        self.calls
            .get_or_create(&CallLabels {
                action: action.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.call_duration
            .get_or_create(&ActionLabels {
                action: action.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn count_status_write(&self) {
        self.status_writes.inc();
    }

    pub fn count_status_conflict(&self) {
        self.status_conflicts.inc();
    }

    /// Sets the size of one per-object map.
    pub fn set_tracked(&self, map: &str, entries: usize) {
        self.tracked
            .get_or_create(&MapLabels {
                map: map.to_owned(),
            })
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
    }

    pub fn count_computer_start(&self) {
        self.computer_starts.inc();
    }

    pub fn count_computer_stop(&self) {
        self.computer_stops.inc();
    }

    pub fn set_computers_running(&self, running: i64) {
        self.computers_running.set(running);
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Sets the sessions gauge from counts by state (computed from the watch cache at scrape
    /// time, so deleted objects can never linger in it).
    pub fn set_session_counts(&self, counts: &HashMap<&'static str, i64>) {
        for state in SESSION_STATES {
            self.sessions
                .get_or_create(&StateLabels {
                    state: (*state).to_owned(),
                })
                .set(counts.get(state).copied().unwrap_or(0));
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_counts_are_labelled_by_type_and_reason_and_forget_old_reasons() {
        let m = Metrics::default();
        m.set_condition_counts(&HashMap::from([
            (("Stalled", "NotFound".to_owned()), 2),
            (("Reconciling", "Retrying".to_owned()), 1),
        ]));
        m.set_condition_counts(&HashMap::from([(
            ("Stalled", "AccessDenied".to_owned()),
            1,
        )]));
        let text = m.render();
        assert!(
            text.contains(
                r#"lightsail_gui_operator_conditions{type="Stalled",reason="AccessDenied"} 1"#
            ),
            "{text}"
        );
        assert!(!text.contains("NotFound"), "{text}");
    }

    #[test]
    fn session_gauge_is_set_from_counts() {
        let m = Metrics::default();
        m.set_session_counts(&HashMap::from([("active", 3), ("stalled", 1)]));
        m.set_session_counts(&HashMap::from([("active", 2)]));
        let text = m.render();
        assert!(
            text.contains(r#"lightsail_gui_operator_sessions{state="active"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"lightsail_gui_operator_sessions{state="stalled"} 0"#),
            "{text}"
        );
    }

    #[test]
    fn reconciles_and_calls_are_labelled() {
        let m = Metrics::default();
        m.observe_reconcile("ok", Duration::from_millis(3));
        m.observe_lightsail_call("GetOperation", "Throttling", Duration::from_millis(2));
        m.set_leader(true);
        let text = m.render();
        assert!(
            text.contains(r#"lightsail_gui_operator_reconciles_total{result="ok"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"lightsail_gui_operator_lightsail_calls_total{action="GetOperation",outcome="Throttling"} 1"#), "{text}");
        assert!(text.contains("lightsail_gui_operator_leader 1"), "{text}");
    }
}
