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
}

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
        Metrics {
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
