//! What the controller tells the machine: what it knows of one GuiSession ([`View`]) and what
//! just happened ([`Input`]).

use jiff::Timestamp;

use super::Target;
use crate::account::policy::AccountRefusal;
use crate::aws::errors::LightsailError;
use crate::aws::model::{AccessDetails, ComputerSeen};
use crate::guisession::types::{
    AccessStatus, GuiSessionSpec, GuiSessionStatus, Operation, PendingStart,
};
/// What the state machine sees of one GuiSession.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// `metadata.name`.
    pub name: &'a str,
    pub spec: &'a GuiSessionSpec,
    pub status: &'a GuiSessionStatus,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The object has a `deletionTimestamp`.
    pub deleting: bool,
    /// The object carries the operator's finalizer.
    pub has_finalizer: bool,
    /// The object carries [`SKIP_STOP_ANNOTATION`] set to `"true"`.
    pub skip_stop: bool,
    /// The Secret `spec.access` names, as read before deciding.
    pub access_secret: SecretSeen,
    /// The account `spec.accountRef` names, as found before deciding.
    pub account: AccountView<'a>,
    /// This replica's answered but not yet recorded start of this object, if it holds one.
    pub unconfirmed: Option<&'a UnconfirmedStart>,
}

/// A StartGUISession this replica sent and got a running operation back for, not yet recorded:
/// the operation is recorded with the answer of its first poll, so a start costs two status
/// writes (the fence, then the operation) instead of three. Held in memory only: after a crash
/// the fence left in the status leads to the lookup that adopts the session.
#[derive(Debug, Clone, PartialEq)]
pub struct UnconfirmedStart {
    pub target: Target,
    /// The pending start the call was sent under; the start is this replica's to record only
    /// while the status still carries it.
    pub fence: PendingStart,
    pub operation: Operation,
}

/// Whether the account a GuiSession names can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccountView<'a> {
    /// No `spec.accountRef`: the operator's own identity.
    #[default]
    Own,
    /// The account exists, allows the namespace and is Ready; its default Region.
    Usable { region: Option<&'a str> },
    /// Why it cannot be used (missing, not allowed, not ready).
    Refused(&'a AccountRefusal),
}

/// What the controller found of the access Secret `spec.access.secretName` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecretSeen {
    /// Not read: no access is asked for, or the operator may not read Secrets.
    #[default]
    NotRead,
    Missing,
    /// Written by the operator for this GuiSession: for the session that started at
    /// `session_started_at`, and whether its data is still what the operator wrote.
    Ours {
        session_started_at: Option<Timestamp>,
        intact: bool,
    },
    /// A Secret of that name that this GuiSession does not own: never overwritten.
    Foreign,
}

/// A failed write or delete of an access Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretError {
    /// The operator lacks the permission (HTTP 403): retrying will not help until RBAC changes.
    pub forbidden: bool,
    /// Someone else created or changed the Secret since it was read (HTTP 409): it is judged
    /// again from a fresh read, and never written over meanwhile.
    pub conflict: bool,
    pub message: String,
}

/// What just happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A reconcile: decide from what is known.
    Observed,
    /// StartGUISession for `target` answered. `fence` is the pending start it was sent under
    /// (`None`: it was never sent, e.g. no Region to send it to).
    StartAnswered {
        target: Target,
        fence: Option<PendingStart>,
        result: Result<Vec<Operation>, LightsailError>,
    },
    /// GetOperation answered.
    Polled(Result<Option<Operation>, LightsailError>),
    /// GetOperationsForResource for `target` answered (every page). `at` is when the first
    /// request was sent: the answer knows every call that reached Lightsail before it.
    LookedUp {
        target: Target,
        at: Timestamp,
        result: Result<Vec<Operation>, LightsailError>,
    },
    /// StopGUISession answered.
    StopAnswered(Result<(), LightsailError>),
    /// CreateGUISessionAccessDetails for `target` answered.
    AccessAnswered {
        target: Target,
        result: Result<AccessDetails, LightsailError>,
    },
    /// The access Secret was written (or not); `access` is what the effect asked to record.
    SecretWritten {
        access: AccessStatus,
        result: Result<(), SecretError>,
    },
    /// An access Secret no longer asked for was deleted (or was gone already).
    SecretDeleted(Result<(), SecretError>),
    /// GetInstanceState (or GetInstance, when add-ons were asked for) for `target` answered.
    /// `at`: when the call was sent.
    ComputerChecked {
        target: Target,
        at: Timestamp,
        /// As the effect asked (see [`super::StartCheck`]).
        before_start: Option<super::StartCheck>,
        result: Result<ComputerSeen, LightsailError>,
    },
    /// StartInstance for `target` answered; `fence` as for [`Input::StartAnswered`].
    ComputerStartAnswered {
        target: Target,
        fence: Option<PendingStart>,
        result: Result<Vec<Operation>, LightsailError>,
    },
    /// StopInstance for `target` answered.
    ComputerStopAnswered {
        target: Target,
        result: Result<Vec<Operation>, LightsailError>,
    },
    /// GetOperation for the computer's recorded operation answered.
    ComputerPolled {
        target: Target,
        result: Result<Option<Operation>, LightsailError>,
    },
    /// EnableAddOn (StopInstanceOnIdle) for `target` answered; `threshold` and `duration` are
    /// what was sent.
    IdleStopAnswered {
        target: Target,
        threshold: String,
        duration: String,
        result: Result<Vec<Operation>, LightsailError>,
    },
}
