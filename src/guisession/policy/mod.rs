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

use crate::guisession::conditions::{Phase, condition_true, conditions};
use crate::guisession::types::{
    GuiSessionSpec, GuiSessionStatus, PendingStart, ScheduleStatus, whole_seconds,
};

mod access;
mod computer;
mod effects;
mod failure;
mod idle_stop;
mod inputs;
mod lookup;
mod observe;
mod settings;
mod start;
mod stop;
mod window;
mod window_end;

pub use computer::RUNNING;
pub use effects::{AccessSecret, Effect, Next, Note, StartCheck, Transition};
pub use inputs::{AccountView, Input, SecretError, SecretSeen, UnconfirmedStart, View};
pub use settings::{Settings, effective_max_session_age, guard_rail_note, start_budget};

/// Annotation a user sets (to `"true"`) on a GuiSession with `stopOnDelete` so that deleting it
/// skips StopGUISession, e.g. after the operator lost its AWS access.
pub const SKIP_STOP_ANNOTATION: &str = "lightsail.operators.dev/skip-stop";

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
        chained: !matches!(input, Input::Observed),
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
        Input::ComputerChecked {
            target,
            at,
            before_start,
            result,
        } => machine.computer_checked(target, at, before_start, result),
        Input::ComputerStartAnswered {
            target,
            fence,
            result,
        } => machine.computer_start_answered(target, fence, result),
        Input::ComputerStopAnswered { target, result } => {
            machine.computer_stop_answered(target, result)
        }
        Input::ComputerPolled { target, result } => machine.computer_polled(target, result),
        Input::IdleStopAnswered {
            target,
            threshold,
            duration,
            result,
        } => machine.idle_stop_answered(target, threshold, duration, result),
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
    /// This decision follows an answer within one reconcile (any input but
    /// [`Input::Observed`]): a computer read made in that chain still counts. A decision that
    /// starts afresh (after a wait, a restart) reads the computer again.
    chained: bool,
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
            chained: self.chained,
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

    /// A fence for a start of `target` (a session's or the computer's) decided now by this
    /// replica.
    fn fence_for(&self, target: &Target) -> PendingStart {
        PendingStart {
            requested_at: self.stamp(),
            resource_name: target.resource_name.clone(),
            region: target.region.clone(),
            account: target.account.clone(),
            holder: self.settings.identity.clone(),
        }
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
}

/// The time from `from` to `to`, zero when `to` is not later.
pub fn until(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests;
