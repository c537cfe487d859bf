//! Counts of GuiSessions by state, for the `lightsail_gui_operator_sessions` gauge, kept from the
//! watch rather than from a list.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::runtime::watcher;

use crate::guisession::conditions::{condition_true, state_label};
use crate::guisession::types::GuiSession;

/// What the gauges count of one GuiSession: its state label, whether its computer was last seen
/// running, when its session expires (Unix seconds) and the reason of a True Stalled or
/// Reconciling condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Seen {
    pub(super) state: &'static str,
    pub(super) computer_running: bool,
    pub(super) expires_at: Option<i64>,
    pub(super) condition: Option<(&'static str, Box<str>)>,
}

fn seen(obj: &GuiSession) -> Seen {
    let status = obj.status.as_ref();
    let computer_running = status
        .and_then(|s| s.computer.as_ref())
        .and_then(|c| c.state.as_deref())
        == Some(crate::guisession::policy::RUNNING);
    let condition = status.and_then(|s| {
        ["Stalled", "Reconciling"]
            .into_iter()
            .find_map(|type_| condition_true(s, type_).map(|c| (type_, c.reason.as_str().into())))
    });
    Seen {
        state: state_label(status),
        computer_running,
        expires_at: status
            .and_then(|s| s.session_expires_at)
            .map(|t| t.as_second()),
        condition,
    }
}

/// The state of every watched GuiSession, for the sessions gauge. The cache holds metadata only,
/// so the watch's full objects leave their state label here: 24 bytes per object, keyed by a
/// 64-bit hash of namespace and name (a collision among a cluster's objects is negligible, and
/// would only miscount the gauge).
#[derive(Default)]
pub(super) struct SessionStates {
    pub(super) by_object: Mutex<HashMap<u64, Seen>>,
    /// A relist in progress: it replaces `by_object` once complete, so that the gauge does not
    /// dip while it runs (as kube's reflector store does with the cache).
    pub(super) relisting: Mutex<Option<HashMap<u64, Seen>>>,
}

impl SessionStates {
    pub(super) fn key(obj: &GuiSession) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        obj.metadata.namespace.hash(&mut h);
        obj.metadata.name.hash(&mut h);
        h.finish()
    }

    pub(super) fn observe(&self, event: &watcher::Event<GuiSession>) {
        let mut relisting = self.relisting.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            watcher::Event::Init => *relisting = Some(HashMap::new()),
            watcher::Event::InitApply(obj) => {
                if let Some(list) = relisting.as_mut() {
                    list.insert(Self::key(obj), seen(obj));
                }
            }
            watcher::Event::InitDone => {
                if let Some(list) = relisting.take() {
                    *self.by_object.lock().unwrap_or_else(|p| p.into_inner()) = list;
                }
            }
            watcher::Event::Apply(obj) => {
                self.by_object
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(Self::key(obj), seen(obj));
            }
            watcher::Event::Delete(obj) => {
                self.by_object
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&Self::key(obj));
            }
        }
    }

    pub(super) fn counts(&self) -> HashMap<&'static str, i64> {
        let mut counts: HashMap<&'static str, i64> = HashMap::new();
        for seen in self
            .by_object
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            *counts.entry(seen.state).or_default() += 1;
        }
        counts
    }

    /// GuiSessions whose session expired more than `grace` before `now` (Unix seconds) and is
    /// still recorded: not renewed. Objects that are meant to have no session (suspended,
    /// outside their window, a respected stop) are not overdue.
    pub(super) fn renewal_overdue(&self, now: i64, grace: std::time::Duration) -> i64 {
        let grace = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
        let by_object = self.by_object.lock().unwrap_or_else(|p| p.into_inner());
        let overdue = by_object
            .values()
            .filter(|s| !matches!(s.state, "suspended" | "outside_schedule" | "idle_stopped"))
            .filter(|s| {
                s.expires_at
                    .is_some_and(|at| at.saturating_add(grace) < now)
            })
            .count();
        i64::try_from(overdue).unwrap_or(i64::MAX)
    }

    /// GuiSessions by the type and reason of their True Stalled or Reconciling condition.
    pub(super) fn condition_counts(&self) -> HashMap<(&'static str, String), i64> {
        let mut counts = HashMap::new();
        let by_object = self.by_object.lock().unwrap_or_else(|p| p.into_inner());
        for (type_, reason) in by_object.values().filter_map(|s| s.condition.as_ref()) {
            *counts.entry((*type_, reason.to_string())).or_default() += 1;
        }
        counts
    }

    /// GuiSessions whose computer was last seen running.
    pub(super) fn computers_running(&self) -> i64 {
        let by_object = self.by_object.lock().unwrap_or_else(|p| p.into_inner());
        i64::try_from(by_object.values().filter(|s| s.computer_running).count()).unwrap_or(i64::MAX)
    }

    pub(super) fn clear(&self) {
        self.by_object
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}
