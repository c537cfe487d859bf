//! What the machine asks of the controller: the status to write, the Events to publish and the
//! one piece of I/O to perform next.

use std::time::Duration;

use jiff::Timestamp;

use super::{Target, UnconfirmedStart};
use crate::aws::errors::LightsailError;
use crate::aws::model::SessionUrl;
use crate::guisession::types::{AccessStatus, GuiSessionStatus};
/// The access Secret to write (see `spec.access`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessSecret {
    pub name: String,
    pub resource_name: String,
    /// The session the URLs open; also how a later read tells which session the Secret is for.
    pub session_started_at: Timestamp,
    pub expires_at: Timestamp,
    pub primary_url: SessionUrl,
    pub secondary_url: Option<SessionUrl>,
    /// `status.access` to record once the Secret is written.
    pub access: AccessStatus,
}

/// A read of the computer made for a session start: the start goes on after the read (without a
/// new lookup) only while the status still carries the same session fence as when it was
/// decided (none, or the one being taken over).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartCheck {
    pub fence: Option<crate::guisession::types::PendingStart>,
}

/// What the controller does after writing the new status.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Call StartGUISession, but only once the status carrying the fence is written.
    Start(Target),
    /// Call GetOperation.
    Poll {
        target: Target,
        operation_id: String,
    },
    /// Call GetOperationsForResource to find a session to adopt.
    Lookup(Target),
    /// Call StopGUISession.
    Stop(Target),
    /// Call CreateGUISessionAccessDetails.
    Access(Target),
    /// Create or replace the access Secret, owned by the GuiSession.
    WriteSecret(Box<AccessSecret>),
    /// Delete the access Secret of this name (one the operator wrote and no longer needs).
    DeleteSecret(String),
    /// Keep this start in memory (see [`UnconfirmedStart`]) and poll its operation after
    /// `after`; nothing is written now.
    Confirm {
        start: Box<UnconfirmedStart>,
        after: Duration,
    },
    /// Read the computer's state: GetInstance when `add_ons` (it carries the add-ons too),
    /// GetInstanceState otherwise. `before_start`: read for a session start, which goes on
    /// when the computer runs (see [`StartCheck`]).
    CheckComputer {
        target: Target,
        add_ons: bool,
        before_start: Option<StartCheck>,
    },
    /// Call StartInstance, but only once the status carrying its fence
    /// (`status.computer.pendingStart`) is written.
    StartComputer(Target),
    /// Call StopInstance (never forced), once the status recording the window end is written.
    StopComputer(Target),
    /// Call GetOperation for the computer's recorded operation.
    PollComputer {
        target: Target,
        operation_id: String,
    },
    /// Call EnableAddOn for the StopInstanceOnIdle rule.
    EnableIdleStop {
        target: Target,
        threshold: String,
        duration: String,
    },
    /// Nothing more now.
    Done(Next),
}

/// When to reconcile again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    At(Timestamp),
    After(Duration),
    /// Only when the object changes.
    Change,
    /// A retryable error: per-object backoff.
    Retry(LightsailError),
}

/// An Event to publish about the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: &'static str,
    pub action: &'static str,
    pub message: String,
}

/// The outcome of one [`transition`].
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// The status to have; written (with the precondition) only when it differs.
    pub status: GuiSessionStatus,
    /// `Some(true)`: add the finalizer, `Some(false)`: remove it.
    pub finalizer: Option<bool>,
    /// Events, published after the status is written.
    pub notes: Vec<Note>,
    pub effect: Effect,
}
