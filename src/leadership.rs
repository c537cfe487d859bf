//! Whether this replica may call a Lightsail mutation (StartGUISession, StopGUISession) right
//! now. Correctness never rests on it (the fenced status write does that); it keeps a replica
//! that lost its Lease from doing work another replica is about to do.

use tokio::sync::watch;

/// Checked right before every Lightsail mutation.
#[derive(Clone, Debug)]
pub struct LeaderGate {
    leading: Option<watch::Receiver<bool>>,
}

impl LeaderGate {
    /// No leader election: every replica may act (the fence keeps them apart).
    pub fn always() -> Self {
        LeaderGate { leading: None }
    }

    /// Follows a leader-election state (true while this replica leads).
    pub fn following(leading: watch::Receiver<bool>) -> Self {
        LeaderGate {
            leading: Some(leading),
        }
    }

    /// True while this replica may mutate.
    pub fn may_mutate(&self) -> bool {
        self.leading.as_ref().is_none_or(|rx| *rx.borrow())
    }
}
