//! Counts of GuiSessions by state, for the `lightsail_gui_operator_sessions` gauge, kept from the
//! watch rather than from a list.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::runtime::watcher;

use crate::guisession::conditions::state_label;
use crate::guisession::types::GuiSession;

/// What the gauges count of one GuiSession: its state label and whether its computer was last
/// seen running.
pub(super) type Seen = (&'static str, bool);

fn seen(obj: &GuiSession) -> Seen {
    let status = obj.status.as_ref();
    let running = status
        .and_then(|s| s.computer.as_ref())
        .and_then(|c| c.state.as_deref())
        == Some(crate::guisession::policy::RUNNING);
    (state_label(status), running)
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
        for (state, _) in self
            .by_object
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            *counts.entry(state).or_default() += 1;
        }
        counts
    }

    /// GuiSessions whose computer was last seen running.
    pub(super) fn computers_running(&self) -> i64 {
        let by_object = self.by_object.lock().unwrap_or_else(|p| p.into_inner());
        i64::try_from(by_object.values().filter(|(_, running)| *running).count())
            .unwrap_or(i64::MAX)
    }

    pub(super) fn clear(&self) {
        self.by_object
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}
