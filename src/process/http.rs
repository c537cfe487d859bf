//! The HTTP endpoints: `/metrics`, `/healthz` and `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::StatusCode;

use super::session_states::SessionStates;
use crate::metrics::Metrics;

/// What /readyz and /metrics need to know.
pub(super) struct Health {
    pub(super) electing: bool,
    pub(super) leader: AtomicBool,
    pub(super) synced: AtomicBool,
    pub(super) states: SessionStates,
    pub(super) metrics: Arc<Metrics>,
    /// For the accounts gauge.
    pub(super) ctx: Arc<crate::guisession::controller::Context>,
}

impl Health {
    pub(super) fn set_leading(&self, leading: bool) {
        self.leader.store(leading, Ordering::SeqCst);
        self.metrics.set_leader(leading);
        if !leading {
            self.synced.store(false, Ordering::SeqCst);
            self.states.clear();
        }
    }
}

pub(super) async fn metrics_handler(State(health): State<Arc<Health>>) -> String {
    let now = jiff::Timestamp::now().as_second();
    let states = &health.states;
    health.metrics.set_session_counts(&states.counts());
    health
        .metrics
        .set_renewal_overdue(states.renewal_overdue(now, crate::metrics::RENEWAL_OVERDUE_AFTER));
    health
        .metrics
        .set_condition_counts(&states.condition_counts());
    health
        .metrics
        .set_accounts_not_ready(health.ctx.accounts_not_ready());
    health
        .metrics
        .set_computers_running(health.states.computers_running());
    health.metrics.render()
}

pub(super) async fn readyz(State(health): State<Arc<Health>>) -> (StatusCode, &'static str) {
    let leader = health.leader.load(Ordering::SeqCst);
    let synced = health.synced.load(Ordering::SeqCst);
    match (health.electing, leader, synced) {
        (_, true, true) => (StatusCode::OK, "ready: leader, caches synced\n"),
        (true, false, _) => (StatusCode::OK, "ready: standby\n"),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: caches not synced\n",
        ),
    }
}
