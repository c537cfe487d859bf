//! All policy of the operator as one pure state machine. Given what is known of one GuiSession
//! (spec, status, metadata), what just happened (an [`Input`]) and the time, [`transition`] says
//! what the status must become, which Events to publish, whether the finalizer changes, and what
//! to do next ([`Effect`]). The controller performs exactly the I/O it is asked for and feeds the
//! outcome back in, so every case is tested here without a cluster or AWS.
//!
//! Exactly one StartGUISession per window rests on one rule: every start is preceded by a status
//! write that sets `status.pendingStart` (the fence), made with an optimistic-concurrency
//! precondition on the resourceVersion the decision was based on. The controller calls Lightsail
//! only when that write wins; a stale view ends in a conflict and a fresh decision. A pending start
//! is cleared only by recording an operation or by a definite "not started" answer; while it is
//! younger than the settle window nobody starts, and after that the resource's operations are
//! looked up (and adopted) before anyone starts again.

use std::time::Duration;

use jiff::Timestamp;

use crate::account::types::AccountRefusal;
use crate::aws::lightsail::{AccessDetails, ErrorClass, LightsailError, SessionUrl};
use crate::guisession::conditions::{Phase, condition_true, conditions, reason_from_code};
use crate::guisession::types::{
    AccessStatus, DEFAULT_MAX_SESSION_AGE, GuiSessionSpec, GuiSessionStatus, LastError, Operation,
    PendingStart, ScheduleStatus, parse_go_duration, whole_seconds,
};
use crate::schedule::{self, WindowState};

/// Annotation a user sets (to `"true"`) on a GuiSession with `stopOnDelete` so that deleting it
/// skips StopGUISession, e.g. after the operator lost its AWS access.
pub const SKIP_STOP_ANNOTATION: &str = "lightsail.operators.dev/skip-stop";

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

fn add(ts: Timestamp, d: Duration) -> Timestamp {
    ts.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// Which Lightsail resource, in which Region, a session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub resource_name: String,
    /// The effective Region; `None` only when neither the spec nor the operator names one (the
    /// Lightsail edge then answers with a terminal `NoRegion`).
    pub region: Option<String>,
    /// The account (`Kind/name` of `spec.accountRef`); `None`: the operator's own identity.
    pub account: Option<String>,
}

impl Target {
    /// The resource the spec names, in its effective Region (the spec's, else the account's,
    /// else the operator's).
    pub fn of(spec: &GuiSessionSpec, account: AccountView<'_>, settings: &Settings) -> Target {
        let account_region = match account {
            AccountView::Usable { region } => region.map(str::to_owned),
            _ => None,
        };
        Target {
            resource_name: spec.resource_name.clone(),
            region: spec
                .region
                .clone()
                .or(account_region)
                .or_else(|| settings.default_region.clone()),
            account: spec
                .account_ref
                .as_ref()
                .map(|r| format!("{:?}/{}", r.kind, r.name)),
        }
    }

    fn recorded(status: &GuiSessionStatus) -> Option<Target> {
        status.resource_name.as_ref().map(|name| Target {
            resource_name: name.clone(),
            region: status.region.clone(),
            account: status.account.clone(),
        })
    }

    fn pending(p: &PendingStart) -> Target {
        Target {
            resource_name: p.resource_name.clone(),
            region: p.region.clone(),
            account: p.account.clone(),
        }
    }

    fn describe(&self) -> String {
        match &self.region {
            Some(r) => format!("{} ({r})", self.resource_name),
            None => self.resource_name.clone(),
        }
    }
}

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

/// The one transition function: see the module documentation.
pub fn transition(
    view: &View<'_>,
    input: Input,
    now: Timestamp,
    settings: &Settings,
) -> Transition {
    let machine = Machine {
        view,
        now,
        settings,
        status: view.status.clone(),
        notes: Vec::new(),
        finalizer: None,
    };
    let mut t = match input {
        Input::Observed => machine.observe(),
        Input::StartAnswered {
            target,
            fence,
            result,
        } => machine.start_answered(target, fence, result),
        Input::Polled(result) => machine.polled(result),
        Input::LookedUp { target, at, result } => machine.looked_up(target, at, result),
        Input::StopAnswered(result) => machine.stop_answered(result),
        Input::AccessAnswered { target, result } => machine.access_answered(target, result),
        Input::SecretWritten { access, result } => machine.secret_written(access, result),
        Input::SecretDeleted(result) => machine.secret_deleted(result),
    };
    // Whatever else is due, come back when the schedule window closes.
    if let (
        false,
        Some(ScheduleStatus {
            open: true,
            next_change_at: Some(closes_at),
        }),
    ) = (view.deleting, t.status.schedule.as_ref())
        && let Effect::Done(next) = &t.effect
    {
        let later = match next {
            Next::At(at) => *at > *closes_at,
            Next::After(d) => add(now, *d) > *closes_at,
            Next::Change => true,
            Next::Retry(_) => false,
        };
        if later {
            t.effect = Effect::Done(Next::At(*closes_at));
        }
    }
    t
}

struct Machine<'a> {
    view: &'a View<'a>,
    now: Timestamp,
    settings: &'a Settings,
    status: GuiSessionStatus,
    notes: Vec<Note>,
    finalizer: Option<bool>,
}

impl Machine<'_> {
    fn fork(&self) -> Self {
        Machine {
            view: self.view,
            now: self.now,
            settings: self.settings,
            status: self.status.clone(),
            notes: self.notes.clone(),
            finalizer: self.finalizer,
        }
    }

    fn finish(self, effect: Effect) -> Transition {
        Transition {
            status: self.status,
            finalizer: self.finalizer,
            notes: self.notes,
            effect,
        }
    }

    fn done(self, next: Next) -> Transition {
        self.finish(Effect::Done(next))
    }

    /// `now` as stored in the status (whole seconds, rounded down: a session start stored
    /// early makes a renewal early, never late).
    fn stamp(&self) -> Timestamp {
        whole_seconds(self.now)
    }

    fn note(&mut self, warning: bool, reason: &'static str, action: &'static str, message: String) {
        self.notes.push(Note {
            warning,
            reason,
            action,
            message,
        });
    }

    /// Sets the conditions (and observedGeneration) for `phase`.
    fn phase(&mut self, phase: Phase) {
        let note = guard_rail_note(self.view.spec, self.settings);
        self.status.observed_generation = self.view.generation;
        self.status.conditions = Some(conditions(
            &phase,
            note.as_deref(),
            self.view.generation,
            self.view.status.conditions.as_deref(),
            self.stamp(),
        ));
    }

    fn target(&self) -> Target {
        Target::of(self.view.spec, self.view.account, self.settings)
    }

    fn max_age(&self) -> Duration {
        effective_max_session_age(self.view.spec, self.settings)
    }

    fn spec_changed(&self) -> bool {
        self.view.generation.is_some()
            && self.view.status.observed_generation != self.view.generation
    }

    fn was_ready(&self) -> bool {
        condition_true(self.view.status, "Ready").is_some()
    }

    fn settle_end(&self, pending: &PendingStart) -> Timestamp {
        add(pending.requested_at, self.settings.start_settle)
    }

    /// When the second (last) lookup of a pending start is made: a quarter of the settle window
    /// after its end. A StartGUISession that timed out at the client can still be processed by
    /// Lightsail after the client gave up; the first lookup, at the settle end, may read before
    /// it is recorded.
    fn late_landing_end(&self, pending: &PendingStart) -> Timestamp {
        add(self.settle_end(pending), self.settings.start_settle / 4)
    }

    fn session_expiry(&self) -> Option<Timestamp> {
        self.status
            .session_started_at
            .map(|started| add(started, self.max_age()))
    }

    fn observe(mut self) -> Transition {
        if self.view.deleting {
            return self.deleting();
        }
        self.finalizer = match (self.view.spec.stop_on_delete, self.view.has_finalizer) {
            (true, false) => Some(true),
            (false, true) => Some(false),
            _ => None,
        };
        if let AccountView::Refused(refusal) = self.view.account {
            // Nothing can be done in an account that cannot be used; the account's next change
            // wakes this object (no polling meanwhile). Judged before the target: without its
            // account the target's Region is unknown, and a session must never be forgotten
            // because its account is momentarily unusable.
            if self.view.spec.suspend {
                self.phase(Phase::Suspended);
            } else if refusal.pending {
                self.waiting(refusal.message.clone());
            } else {
                self.phase(Phase::Stalled {
                    reason: refusal.reason.to_owned(),
                    message: refusal.message.clone(),
                });
            }
            return self.done(Next::Change);
        }
        let target = self.target();
        match Target::recorded(&self.status) {
            Some(recorded) if recorded != target => self.forget_session(&recorded, &target),
            // A status written before targets were recorded: it is the spec's.
            None if self.status.operation.is_some() => self.record_target(&target),
            _ => {}
        }
        if self
            .status
            .pending_start
            .as_ref()
            .is_some_and(|p| Target::pending(p) != target)
        {
            // A start of a resource the spec no longer names cannot be this object's session.
            self.status.pending_start = None;
        }
        if self.view.spec.suspend {
            self.phase(Phase::Suspended);
            return self.done(Next::Change);
        }
        match self.window() {
            Err(message) => {
                self.phase(Phase::Stalled {
                    reason: "InvalidSchedule".into(),
                    message,
                });
                return self.done(Next::Change);
            }
            Ok(Some(WindowState::Closed { opens_at })) => return self.outside_schedule(opens_at),
            Ok(_) => {}
        }
        if let Some(at) = self.stalled_until() {
            return self.done(Next::At(at));
        }
        if let Some(operation_id) = self.own_unconfirmed().and_then(|s| s.operation.id.clone()) {
            // This replica's start, answered: its first poll records it.
            return self.finish(Effect::Poll {
                target,
                operation_id,
            });
        }
        if let Some(pending) = self.status.pending_start.clone() {
            let settle_end = self.settle_end(&pending);
            return if self.now < settle_end {
                // Its writer may be calling Lightsail right now.
                self.done(Next::At(settle_end))
            } else {
                self.finish(Effect::Lookup(target))
            };
        }
        let expiry = self.session_expiry();
        let live = expiry.is_some_and(|at| self.now < at);
        if let Some(op) = self.status.operation.as_ref()
            && !op.finished()
            && (live || expiry.is_none())
        {
            return match op.id.clone() {
                Some(operation_id) => self.finish(Effect::Poll {
                    target,
                    operation_id,
                }),
                None => self.finish(Effect::Lookup(target)),
            };
        }
        match expiry {
            Some(at) if live => {
                self.status.session_expires_at = Some(at);
                self.active(at)
            }
            Some(_) => self.start(target),
            None if self
                .status
                .operation
                .as_ref()
                .is_some_and(Operation::failed) =>
            {
                self.start(target)
            }
            None => self.finish(Effect::Lookup(target)),
        }
    }

    /// The start this replica holds in memory, while the status still carries its fence and the
    /// spec still names its target.
    fn own_unconfirmed(&self) -> Option<&UnconfirmedStart> {
        self.view.unconfirmed.filter(|start| {
            self.status.pending_start.as_ref() == Some(&start.fence)
                && start.target == self.target()
                && start.operation.id.is_some()
        })
    }

    /// The end of the wait after a terminal error, unless the spec changed since. A session that
    /// was live when the error happened is renewed when it expires, whatever the wait: an
    /// error on a side call (access details, a poll) must not let it lapse.
    fn stalled_until(&self) -> Option<Timestamp> {
        if self.spec_changed() || condition_true(&self.status, "Stalled").is_none() {
            return None;
        }
        let failed_at = self.status.last_error.as_ref()?.time?;
        let at = self.capped_at_expiry(failed_at, add(failed_at, self.settings.stalled_retry));
        (self.now < at).then_some(at)
    }

    /// `at`, or the session's expiry when a session live at `since` expires before `at`.
    fn capped_at_expiry(&self, since: Timestamp, at: Timestamp) -> Timestamp {
        match self.session_expiry() {
            Some(expiry) if since < expiry && expiry < at => expiry,
            _ => at,
        }
    }

    fn record_target(&mut self, target: &Target) {
        self.status.resource_name = Some(target.resource_name.clone());
        self.status.region = target.region.clone();
        self.status.account = target.account.clone();
    }

    /// The spec names another resource (or Region): the recorded session is not this object's
    /// any more. It is left to run out; the new resource gets a session of its own.
    fn forget_session(&mut self, old: &Target, new: &Target) {
        self.note(
            false,
            "ResourceChanged",
            "Forget",
            format!(
                "spec now names {}: the session of {} is no longer managed and runs out on its own",
                new.describe(),
                old.describe()
            ),
        );
        let pending = self.status.pending_start.take();
        self.status = GuiSessionStatus {
            observed_generation: self.status.observed_generation,
            conditions: self.status.conditions.take(),
            pending_start: pending,
            // The Secret stays the operator's to refresh (or delete) for the new resource.
            access: self.status.access.take(),
            ..GuiSessionStatus::default()
        };
    }

    /// Writes the fence and asks for StartGUISession, unless the guard rail says it is too soon
    /// after the last start.
    fn start(mut self, target: Target) -> Transition {
        if let Some(last) = self.status.last_start_at {
            let earliest = add(last, self.settings.min_session_age);
            if self.now < earliest {
                return self.done(Next::At(earliest));
            }
        }
        self.status.pending_start = Some(PendingStart {
            requested_at: self.stamp(),
            resource_name: target.resource_name.clone(),
            region: target.region.clone(),
            account: target.account.clone(),
            holder: self.settings.identity.clone(),
        });
        let renewing = self.was_ready() && self.status.session_started_at.is_some();
        if renewing {
            self.phase(Phase::Renewing {
                message: format!("renewing the GUI session of {}", target.resource_name),
            });
        } else {
            self.phase(Phase::Starting {
                message: format!("starting a GUI session of {}", target.resource_name),
            });
        }
        self.finish(Effect::Start(target))
    }

    fn start_answered(
        mut self,
        target: Target,
        fence: Option<PendingStart>,
        result: Result<Vec<Operation>, LightsailError>,
    ) -> Transition {
        // Only the fence this call was sent under may be cleared by its answer: after the
        // settle window another writer may have taken it over, and its call may be in flight.
        let ours = fence.is_some() && self.status.pending_start == fence;
        if target != self.target() {
            // The spec moved on while the call ran: the answer is about a resource this object
            // no longer names.
            if ours {
                self.status.pending_start = None;
            }
            return self.observe();
        }
        let operations = match result {
            Ok(operations) => operations,
            Err(error) => {
                if error.answered && ours {
                    // Lightsail definitely started nothing: the fence may go.
                    self.status.pending_start = None;
                }
                return self.failed(error, true);
            }
        };
        let Some(op) = operations
            .iter()
            .find(|op| op.is_start())
            .or(operations.first())
            .cloned()
        else {
            let error = LightsailError::invalid_response(
                crate::aws::lightsail::Action::StartGuiSession,
                "StartGUISession returned no operation",
            );
            return self.failed(error, true);
        };
        if self.status.operation.as_ref().is_some_and(|recorded| {
            recorded.id == op.id || recorded.created_at > op.created_at && op.created_at.is_some()
        }) {
            // Recorded already (a retried write), or someone recorded a newer one meanwhile.
            if ours {
                self.status.pending_start = None;
            }
            return self.observe();
        }
        if ours
            && !op.finished()
            && op.id.is_some()
            && let Some(fence) = fence
        {
            // Recorded with its first poll's answer: one status write for both when the operation
            // has finished by then.
            let after = self.follow_delay(&op);
            return self.finish(Effect::Confirm {
                start: Box::new(UnconfirmedStart {
                    target,
                    fence,
                    operation: op,
                }),
                after,
            });
        }
        self.record_start(target, fence, ours, op)
    }

    /// Records the operation of this object's start (clearing its fence when it is `ours`), with
    /// its Event.
    fn record_start(
        mut self,
        target: Target,
        fence: Option<PendingStart>,
        ours: bool,
        op: Operation,
    ) -> Transition {
        let requested_at = match fence {
            Some(f) => {
                if ours {
                    self.status.pending_start = None;
                }
                f.requested_at
            }
            None => self.stamp(),
        };
        let renewal =
            self.view.status.session_started_at.is_some() || self.view.status.operation.is_some();
        let (reason, verb) = if renewal {
            ("SessionRenewed", "renewed")
        } else {
            ("SessionStarted", "started")
        };
        self.note(
            false,
            reason,
            "StartGUISession",
            format!(
                "GUI session of {} {verb} (operation {})",
                target.resource_name,
                op.id.as_deref().unwrap_or("?")
            ),
        );
        self.status.last_start_at = Some(requested_at);
        self.record(&target, op, requested_at)
    }

    /// Records an operation (started, polled or adopted) with its session's start on the
    /// operator's clock, and says when to come back.
    fn record(mut self, target: &Target, op: Operation, started_at: Timestamp) -> Transition {
        self.record_target(target);
        let newly_failed = op.failed()
            && self
                .view
                .status
                .operation
                .as_ref()
                .is_none_or(|o| o.id != op.id || !o.failed());
        let next = if op.failed() {
            let code = op
                .error_code
                .clone()
                .unwrap_or_else(|| "OperationFailed".into());
            let details = op
                .error_details
                .clone()
                .unwrap_or_else(|| "the operation failed".into());
            self.status.session_started_at = None;
            self.status.session_expires_at = None;
            self.status.last_error = Some(LastError {
                code: Some(code.clone()),
                message: op.error_details.clone(),
                time: Some(self.stamp()),
            });
            self.phase(Phase::Stalled {
                reason: reason_from_code(&code),
                message: format!("StartGUISession operation failed: {details}"),
            });
            if newly_failed {
                self.note(
                    true,
                    "StartFailed",
                    "StartGUISession",
                    format!("StartGUISession operation failed: {code}: {details}"),
                );
            }
            Next::At(add(self.now, self.settings.stalled_retry))
        } else {
            let expires_at = add(started_at, self.max_age());
            self.status.session_started_at = Some(started_at);
            self.status.session_expires_at = Some(expires_at);
            self.status.last_error = None;
            if op.finished() {
                self.status.operation = Some(op);
                if self.stops_at_a_closed_window() {
                    // Recorded after its window closed: stopped now, not left for an hour.
                    return self.observe();
                }
                return self.active(expires_at);
            } else {
                if self.was_ready() {
                    self.phase(Phase::Renewing {
                        message: "StartGUISession operation running".into(),
                    });
                } else {
                    self.phase(Phase::Starting {
                        message: "StartGUISession operation running".into(),
                    });
                }
                Next::After(self.follow_delay(&op).min(until(self.now, expires_at)))
            }
        };
        self.status.operation = Some(op);
        self.done(next)
    }

    /// `stopAtWindowEnd` is set and no window is open now.
    fn stops_at_a_closed_window(&mut self) -> bool {
        self.stops_at_window_end() && matches!(self.window(), Ok(Some(WindowState::Closed { .. })))
    }

    fn stops_at_window_end(&self) -> bool {
        self.view
            .spec
            .schedule
            .as_ref()
            .is_some_and(|s| s.stop_at_window_end)
    }

    /// How long to wait before polling a running operation again: as long as it has been
    /// running, between the initial and the longest delay.
    fn follow_delay(&self, op: &Operation) -> Duration {
        let since = op.status_changed_at.or(op.created_at);
        let elapsed = since.map_or(Duration::ZERO, |t| until(t, self.now));
        elapsed
            .max(self.settings.follow_backoff_initial)
            .min(self.settings.follow_backoff_max)
    }

    fn polled(self, result: Result<Option<Operation>, LightsailError>) -> Transition {
        if let Some(start) = self.own_unconfirmed().cloned() {
            // The first poll of this replica's start. Whatever it answered, the start is
            // recorded now; a failed poll leaves the operation as started, to be polled again.
            let op = match result {
                Ok(Some(polled)) if polled.id == start.operation.id => polled,
                _ => start.operation,
            };
            return self.record_start(start.target, Some(start.fence), true, op);
        }
        let op = match result {
            Ok(Some(op)) => op,
            Ok(None) => {
                let error = LightsailError::invalid_response(
                    crate::aws::lightsail::Action::GetOperation,
                    "GetOperation returned no operation",
                );
                return self.failed(error, false);
            }
            Err(error) => return self.failed(error, false),
        };
        if self.status.operation.as_ref().is_none_or(|r| r.id != op.id) {
            // Someone recorded another operation meanwhile: decide again.
            return self.observe();
        }
        let started_at = self.status.session_started_at.unwrap_or(self.stamp());
        let target = Target::recorded(&self.status).unwrap_or_else(|| self.target());
        self.record(&target, op, started_at)
    }

    fn looked_up(
        mut self,
        target: Target,
        looked_at: Timestamp,
        result: Result<Vec<Operation>, LightsailError>,
    ) -> Transition {
        // The answer only matters while the object still needs a lookup: applied again to a
        // fresher status (after a write conflict) that records a session, it must not start.
        let observed = self.fork().observe();
        if observed.effect != Effect::Lookup(target.clone()) {
            return observed;
        }
        if let Some(pending) = &self.status.pending_start
            && looked_at < self.settle_end(pending)
        {
            // Looked up before the pending start's call was sure to have landed (or to never
            // be sent): the answer may miss it. Look again.
            return self.finish(Effect::Lookup(target));
        }
        let operations = match result {
            Ok(operations) => operations,
            Err(error) => return self.failed(error, false),
        };
        if let Some(pending) = &self.status.pending_start
            && self.adoptable(&operations, Some(pending)).is_none()
            && looked_at < self.late_landing_end(pending)
        {
            // A call that timed out at the client may still reach Lightsail a little after the
            // settle window: a pending start gets a second lookup before anyone starts anew.
            let again = self.late_landing_end(pending);
            return self.done(Next::At(again));
        }
        let pending = self.status.pending_start.take();
        let Some(op) = self.adoptable(&operations, pending.as_ref()).cloned() else {
            if self.stops_at_a_closed_window() {
                // Looked up to stop what a start at the close made: nothing came of it, and
                // nothing starts outside the window.
                return self.observe();
            }
            // Nothing to adopt: start, taking the fence over from a writer that did not finish.
            self.status.pending_start = pending;
            return self.start(target);
        };
        let started_at = match &pending {
            // The session this object's own start made: it cannot have begun before the fence.
            Some(p) => {
                self.status.last_start_at = Some(p.requested_at);
                p.requested_at
            }
            None => op.created_at.map_or(self.stamp(), |c| c.min(self.stamp())),
        };
        self.note(
            false,
            "SessionAdopted",
            "Adopt",
            format!(
                "adopted the GUI session of {} (operation {}) instead of starting another",
                target.resource_name,
                op.id.as_deref().unwrap_or("?")
            ),
        );
        self.record(&target, op, started_at)
    }

    /// The StartGUISession operation to adopt instead of starting: the newest start that did not
    /// fail, that no later StopGUISession ended, that is not the recorded operation or older
    /// than it, and that is still young (with a pending start: that plausibly came from it).
    /// Operations may come in any order.
    fn adoptable<'o>(
        &self,
        operations: &'o [Operation],
        pending: Option<&PendingStart>,
    ) -> Option<&'o Operation> {
        let (created, op) = operations
            .iter()
            .filter(|op| op.is_start() && !op.failed())
            .filter_map(|op| op.created_at.map(|c| (c, op)))
            .max_by_key(|(created, _)| *created)?;
        let stopped_after = operations
            .iter()
            .filter(|o| o.is_stop() && !o.failed())
            .filter_map(|o| o.created_at)
            .any(|stopped| stopped > created);
        if stopped_after {
            return None;
        }
        if let Some(recorded) = &self.status.operation
            && (recorded.id.is_some() && recorded.id == op.id
                || recorded.created_at.is_some_and(|r| created <= r))
        {
            return None;
        }
        let recorded_created = self.status.operation.as_ref().and_then(|r| r.created_at);
        let young = match (pending, recorded_created) {
            // Newer than the last recorded session (both on Lightsail's clock), with a start
            // pending: that start's session, or one made after it.
            (Some(_), Some(_)) => true,
            // A first start: Lightsail's clock may differ from ours by up to a session age.
            (Some(p), None) => {
                created
                    >= p.requested_at
                        .checked_sub(self.max_age())
                        .unwrap_or(Timestamp::MIN)
            }
            (None, _) => self.now < add(created, self.max_age()),
        };
        young.then_some(op)
    }

    /// Where `spec.schedule` stands now, recorded in `status.schedule`. `Ok(None)`: no schedule.
    /// `Err`: a schedule that cannot be evaluated (admission checks what it can; a cron
    /// expression or a time zone can only be checked here).
    fn window(&mut self) -> Result<Option<WindowState>, String> {
        let Some(spec) = self.view.spec.schedule.as_ref() else {
            self.status.schedule = None;
            return Ok(None);
        };
        match schedule::evaluate(spec, self.now) {
            Ok(state) => {
                self.status.schedule = Some(match state {
                    WindowState::Open { closes_at } => ScheduleStatus {
                        open: true,
                        next_change_at: closes_at,
                    },
                    WindowState::Closed { opens_at } => ScheduleStatus {
                        open: false,
                        next_change_at: opens_at,
                    },
                });
                Ok(Some(state))
            }
            Err(e) => {
                self.status.schedule = None;
                Err(format!("spec.schedule: {e}"))
            }
        }
    }

    /// No window is open: nothing starts or renews. With `stopAtWindowEnd`, a session that is
    /// still running is stopped first (once: its record is cleared when the stop is answered).
    fn outside_schedule(mut self, opens_at: Option<Timestamp>) -> Transition {
        self.phase(Phase::OutsideSchedule { opens_at });
        let stop = self.stops_at_window_end();
        if stop && let Some(pending) = self.status.pending_start.clone() {
            // A start fenced before the close and answered after it: record its session first
            // (this replica's answer, or a lookup once its writer's call has surely landed), so
            // that it is stopped too, not left running outside the window.
            let target = Target::pending(&pending);
            if let Some(operation_id) = self.own_unconfirmed().and_then(|s| s.operation.id.clone())
            {
                return self.finish(Effect::Poll {
                    target,
                    operation_id,
                });
            }
            let settle_end = self.settle_end(&pending);
            if self.now < settle_end {
                return self.done(Next::At(settle_end));
            }
            return self.finish(Effect::Lookup(target));
        }
        let running = self.session_expiry().is_some_and(|at| self.now < at);
        if stop
            && running
            && let Some(target) = Target::recorded(&self.status)
        {
            return self.finish(Effect::Stop(target));
        }
        // No window within the evaluator's look-ahead: look again a day later (an exclusion
        // ending beyond the horizon, or a spec edit, may change that).
        let next = opens_at.map_or(Next::After(Duration::from_secs(24 * 3600)), Next::At);
        self.done(next)
    }

    /// StopGUISession at the end of a schedule window answered.
    fn window_stop_answered(mut self, result: Result<(), LightsailError>) -> Transition {
        let resource = Target::recorded(&self.status)
            .map_or_else(|| self.view.spec.resource_name.clone(), |t| t.resource_name);
        match result {
            Ok(()) => self.note(
                false,
                "SessionStopped",
                "StopGUISession",
                format!("schedule window closed: GUI session of {resource} stopped"),
            ),
            Err(e) if e.code == "NotFound" || e.class == ErrorClass::Terminal => self.note(
                true,
                "StopFailed",
                "StopGUISession",
                format!("{e}; the GUI session of {resource} runs out on its own"),
            ),
            Err(e) => {
                self.note(true, "StopFailed", "StopGUISession", e.to_string());
                return self.done(Next::Retry(e));
            }
        }
        // No session is running (or none can be stopped): forget it so that the next window
        // starts afresh instead of stopping again.
        self.status.session_started_at = None;
        self.status.session_expires_at = None;
        self.observe()
    }

    /// A session is available until `expires_at`. With `spec.access`, it is Ready once its
    /// access Secret holds this session's URLs.
    fn active(mut self, expires_at: Timestamp) -> Transition {
        let wanted = self.access_secret_name();
        let written = self
            .status
            .access
            .as_ref()
            .and_then(|a| a.secret_name.clone());
        if let Some(old) = written.filter(|w| Some(w) != wanted.as_ref())
            && self.settings.access_secrets
        {
            return self.finish(Effect::DeleteSecret(old));
        }
        let Some(name) = wanted else {
            self.status.access = None;
            self.phase(Phase::Active { expires_at });
            return self.done(Next::At(expires_at));
        };
        if !self.settings.access_secrets {
            self.status.access = None;
            self.phase(Phase::Stalled {
                reason: "AccessSecretsDisabled".into(),
                message: format!(
                    "spec.access asks for the Secret {name}, but this operator may not write Secrets (install it with the chart value accessSecrets.enabled=true); the GUI session itself is kept alive until {expires_at}"
                ),
            });
            return self.done(Next::At(expires_at));
        }
        let session = self.status.session_started_at;
        let access = self.status.access.clone().unwrap_or_default();
        let for_this_session = session.is_some() && access.session_started_at == session;
        match self.view.access_secret {
            SecretSeen::Foreign => {
                self.phase(Phase::Stalled {
                    reason: "AccessSecretConflict".into(),
                    message: format!(
                        "the Secret {name} exists and does not belong to this GuiSession: choose another spec.access.secretName or delete that Secret"
                    ),
                });
                let retry = add(self.now, self.settings.stalled_retry).min(expires_at);
                return self.done(Next::At(retry));
            }
            SecretSeen::Ours {
                session_started_at,
                intact: true,
            } if session_started_at == session
                && for_this_session
                && access.secret_name.as_deref() == Some(name.as_str())
                && access.secret_written_at.is_some() =>
            {
                self.phase(Phase::Active { expires_at });
                return self.done(Next::At(expires_at));
            }
            _ => {}
        }
        // The Secret needs this session's URLs: ask Lightsail, unless it answered lately for this
        // session and the wait it asked for is not over.
        if for_this_session && let Some(checked) = access.checked_at {
            let state = AccessState::of(access.status.as_deref());
            let wait_until = match state {
                AccessState::Failed => add(checked, self.settings.stalled_retry),
                AccessState::Pending => add(checked, self.access_delay(&access, checked)),
                // Answered already, but the Secret needs writing again (deleted, edited, or the
                // write failed): asked again with the same growing delay, so that a Secret
                // someone keeps changing cannot drive access calls faster than the backoff.
                AccessState::Started => add(checked, self.access_delay(&access, checked)),
            };
            if self.now < wait_until {
                self.access_phase(&name, &access, state);
                return self.done(Next::At(wait_until.min(expires_at)));
            }
        }
        let target = self.target();
        self.waiting(format!(
            "asking Lightsail for the access URLs of the GUI session of {}",
            target.resource_name
        ));
        self.finish(Effect::Access(target))
    }

    /// The access Secret `spec.access` asks for.
    fn access_secret_name(&self) -> Option<String> {
        let access = self.view.spec.access.as_ref()?;
        Some(access.secret_name_for(self.view.name))
    }

    /// Not Ready yet (a first session) or still Ready (a renewal, a rewrite), with `message`.
    fn waiting(&mut self, message: String) {
        if self.was_ready() {
            self.phase(Phase::Renewing { message });
        } else {
            self.phase(Phase::Starting { message });
        }
    }

    /// The conditions while Lightsail sets up access, or after it said it could not.
    fn access_phase(&mut self, name: &str, access: &AccessStatus, state: AccessState) {
        let status = access.status.as_deref().unwrap_or("unknown");
        match state {
            AccessState::Failed => self.phase(Phase::Stalled {
                reason: reason_from_code(&upper_first(status)),
                message: format!(
                    "Lightsail could not give access to the GUI session ({status}{}): the Secret {name} is not written; asking again later",
                    access
                        .failure_reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
            }),
            _ => self.waiting(format!(
                "Lightsail is setting up access to the GUI session ({status}, {}% complete)",
                access.percentage_complete.unwrap_or(0)
            )),
        }
    }

    /// How long to wait before asking for access details again: as long as this session's
    /// access has been asked for, between the initial and the longest delay.
    fn access_delay(&self, access: &AccessStatus, at: Timestamp) -> Duration {
        let elapsed = access.requested_at.map_or(Duration::ZERO, |r| until(r, at));
        elapsed
            .max(self.settings.follow_backoff_initial)
            .min(self.settings.follow_backoff_max)
    }

    fn access_answered(
        mut self,
        target: Target,
        result: Result<AccessDetails, LightsailError>,
    ) -> Transition {
        // Only an answer the object still waits for counts (the status may have moved on while
        // the call ran, e.g. after a write conflict).
        let observed = self.fork().observe();
        if observed.effect != Effect::Access(target.clone()) {
            return observed;
        }
        let details = match result {
            Ok(details) => details,
            Err(error) => return self.failed(error, false),
        };
        let (Some(session), Some(expires_at), Some(name)) = (
            self.status.session_started_at,
            self.status.session_expires_at,
            self.access_secret_name(),
        ) else {
            return observed;
        };
        let previous = self.status.access.clone().unwrap_or_default();
        let mut access = if previous.session_started_at == Some(session) {
            previous
        } else {
            AccessStatus {
                secret_name: previous.secret_name,
                session_started_at: Some(session),
                requested_at: Some(self.stamp()),
                ..AccessStatus::default()
            }
        };
        let was_failed = AccessState::of(access.status.as_deref()) == AccessState::Failed
            && access.status == details.status;
        access.checked_at = Some(self.stamp());
        access.status = details.status.clone();
        access.percentage_complete = details.percentage_complete;
        access.failure_reason = details.failure_reason.clone();
        let state = AccessState::of(details.status.as_deref());
        match (state, details.primary_url) {
            (AccessState::Started, Some(primary_url)) => {
                let mut written = access.clone();
                written.secret_name = Some(name.clone());
                written.secret_written_at = Some(self.stamp());
                // The status is written together with the Secret's outcome (one write, not two).
                self.status = self.view.status.clone();
                self.finish(Effect::WriteSecret(Box::new(AccessSecret {
                    name,
                    resource_name: target.resource_name,
                    session_started_at: session,
                    expires_at,
                    primary_url,
                    secondary_url: details.secondary_url,
                    access: written,
                })))
            }
            (AccessState::Failed, _) => {
                if !was_failed {
                    self.note(
                        true,
                        "AccessFailed",
                        "CreateGUISessionAccessDetails",
                        format!(
                            "Lightsail could not give access to the GUI session of {}: {}{}",
                            target.resource_name,
                            details.status.as_deref().unwrap_or("unknown"),
                            details
                                .failure_reason
                                .as_deref()
                                .map(|r| format!(": {r}"))
                                .unwrap_or_default()
                        ),
                    );
                }
                self.access_phase(&name, &access, state);
                self.status.access = Some(access);
                let retry = add(self.now, self.settings.stalled_retry).min(expires_at);
                self.done(Next::At(retry))
            }
            _ => {
                let delay = self.access_delay(&access, self.now);
                self.access_phase(&name, &access, AccessState::Pending);
                self.status.access = Some(access);
                let wait = delay.min(until(self.now, expires_at));
                self.done(Next::After(wait))
            }
        }
    }

    fn secret_written(
        mut self,
        access: AccessStatus,
        result: Result<(), SecretError>,
    ) -> Transition {
        let name = access.secret_name.clone().unwrap_or_default();
        match result {
            Ok(()) => {
                self.note(
                    false,
                    "AccessSecretWritten",
                    "WriteSecret",
                    format!("access URLs of the GUI session written to the Secret {name}"),
                );
                self.status.access = Some(access);
                self.observe()
            }
            Err(e) => {
                // The access call is recorded all the same: its time bounds the next one.
                self.status.access = Some(AccessStatus {
                    secret_written_at: None,
                    ..access
                });
                self.secret_failed(&name, e)
            }
        }
    }

    fn secret_deleted(mut self, result: Result<(), SecretError>) -> Transition {
        let name = self
            .status
            .access
            .as_ref()
            .and_then(|a| a.secret_name.clone())
            .unwrap_or_default();
        match result {
            Ok(()) => {
                self.status.access = None;
                self.observe()
            }
            Err(e) => self.secret_failed(&name, e),
        }
    }

    /// A Secret write or delete failed: stalled when forbidden, retried otherwise.
    fn secret_failed(mut self, name: &str, e: SecretError) -> Transition {
        let message = format!("access Secret {name}: {}", e.message);
        self.note(true, "AccessSecretFailed", "WriteSecret", message.clone());
        if e.conflict {
            // Judged again from a fresh read soon: a Secret that is someone else's now ends in
            // AccessSecretConflict, one that is still this GuiSession's is written again.
            self.phase(Phase::Retrying {
                reason: "AccessSecretConflict".into(),
                message: format!(
                    "{message}: the Secret was created or changed by someone else since it was read; it is not written over"
                ),
            });
            let after = self.settings.follow_backoff_initial;
            return self.done(Next::After(after));
        }
        if e.forbidden {
            self.phase(Phase::Stalled {
                reason: "AccessSecretForbidden".into(),
                message,
            });
            let at = self.capped_at_expiry(self.now, add(self.now, self.settings.stalled_retry));
            self.done(Next::At(at))
        } else {
            self.phase(Phase::Retrying {
                reason: "AccessSecretFailed".into(),
                message,
            });
            let after = self.settings.follow_backoff_max;
            self.done(Next::After(after))
        }
    }

    fn deleting(mut self) -> Transition {
        if !self.view.has_finalizer {
            return self.done(Next::Change);
        }
        if !self.view.spec.stop_on_delete {
            self.finalizer = Some(false);
            return self.done(Next::Change);
        }
        let target = Target::recorded(&self.status)
            .or_else(|| self.status.pending_start.as_ref().map(Target::pending))
            .unwrap_or_else(|| self.target());
        if let AccountView::Refused(refusal) = self.view.account
            && refusal.pending
        {
            // Being checked (a transient STS error, a new leader's first check): its next change
            // wakes this object, and the stop goes out then.
            self.waiting(format!(
                "stopping once the account can be used: {}",
                refusal.message
            ));
            return self.done(Next::Change);
        }
        // Holding the object until someone fixes its account would hold its namespace too.
        let skip = match self.view.account {
            AccountView::Refused(refusal) => Some(refusal.message.clone()),
            _ if self.view.skip_stop => Some(format!("{SKIP_STOP_ANNOTATION} is set")),
            _ => None,
        };
        if let Some(why) = skip {
            self.finalizer = Some(false);
            self.note(
                true,
                "StopSkipped",
                "StopGUISession",
                format!(
                    "{why}: the GUI session of {} is not stopped and runs out on its own",
                    target.resource_name
                ),
            );
            return self.done(Next::Change);
        }
        let has_session = self.status.operation.is_some()
            || self.status.session_started_at.is_some()
            || self.status.pending_start.is_some();
        if !has_session {
            self.finalizer = Some(false);
            return self.done(Next::Change);
        }
        if let Some(pending) = &self.status.pending_start
            && self.own_unconfirmed().is_none()
        {
            let settle_end = self.settle_end(pending);
            if self.now < settle_end {
                // Stopping before a start in flight lands would leave its session running.
                return self.done(Next::At(settle_end));
            }
        }
        self.finish(Effect::Stop(target))
    }

    fn stop_answered(mut self, result: Result<(), LightsailError>) -> Transition {
        if !self.view.deleting {
            return self.window_stop_answered(result);
        }
        let resource = Target::recorded(&self.status)
            .map_or_else(|| self.view.spec.resource_name.clone(), |t| t.resource_name);
        match result {
            Ok(()) => {
                self.finalizer = Some(false);
                self.note(
                    false,
                    "SessionStopped",
                    "StopGUISession",
                    format!("GUI session of {resource} stopped"),
                );
                self.done(Next::Change)
            }
            Err(e) if e.code == "NotFound" => {
                // The resource is gone, and so is its session.
                self.finalizer = Some(false);
                self.note(
                    false,
                    "SessionStopped",
                    "StopGUISession",
                    format!("{resource} no longer exists: nothing to stop"),
                );
                self.done(Next::Change)
            }
            Err(e) if e.class == ErrorClass::Terminal => {
                // Retrying cannot help (revoked role, no credentials, ...): keeping the
                // finalizer would hold the object, and its namespace, Terminating forever.
                self.finalizer = Some(false);
                self.note(
                    true,
                    "StopFailed",
                    "StopGUISession",
                    format!(
                        "{e}; the finalizer is removed and the GUI session of {resource} runs out on its own"
                    ),
                );
                self.done(Next::Change)
            }
            Err(e) => {
                self.note(true, "StopFailed", "StopGUISession", e.to_string());
                self.done(Next::Retry(e))
            }
        }
    }

    /// A failed call. Terminal errors stall the object until the retry delay or a spec change;
    /// retryable ones go back to per-object backoff. The fence is left as the caller set it.
    fn failed(mut self, error: LightsailError, start_call: bool) -> Transition {
        let same_error = self
            .status
            .last_error
            .as_ref()
            .is_some_and(|e| e.code.as_deref() == Some(error.code.as_str()));
        let reason = reason_from_code(&error.code);
        let message = error.to_string();
        if !same_error {
            let event_reason = if start_call {
                "StartFailed"
            } else {
                "LightsailError"
            };
            self.note(true, event_reason, error.action.as_str(), message.clone());
        }
        match error.class {
            ErrorClass::Terminal => {
                // The time moves on every attempt: the retry delay counts from the last one.
                self.status.last_error = Some(LastError {
                    code: Some(error.code.clone()),
                    message: Some(error.message.clone()),
                    time: Some(self.stamp()),
                });
                self.phase(Phase::Stalled { reason, message });
                let at =
                    self.capped_at_expiry(self.now, add(self.now, self.settings.stalled_retry));
                self.done(Next::At(at))
            }
            ErrorClass::Retryable => {
                // The same error again keeps its first time: nothing worth a status write.
                if !same_error {
                    self.status.last_error = Some(LastError {
                        code: Some(error.code.clone()),
                        message: Some(error.message.clone()),
                        time: Some(self.stamp()),
                    });
                }
                self.phase(Phase::Retrying { reason, message });
                self.done(Next::Retry(error))
            }
        }
    }
}

/// Lightsail's access status, as far as decisions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AccessState {
    /// `started`: the URLs are there.
    Started,
    /// `failed…`: Lightsail gave up; asking again much later.
    Failed,
    /// Anything else (`settingUpInstance`, `starting`, `notStarted`, a status this operator does
    /// not know): ask again with backoff.
    Pending,
}

impl AccessState {
    fn of(status: Option<&str>) -> AccessState {
        match status {
            Some("started") => AccessState::Started,
            Some(s) if s.starts_with("failed") => AccessState::Failed,
            _ => AccessState::Pending,
        }
    }
}

fn upper_first(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// The time from `from` to `to`, zero when `to` is not later.
pub fn until(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests;
