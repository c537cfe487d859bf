//! The decision taken on every observation: which of start, follow, look up, wait, stop or keep
//! the session alive comes next.

use jiff::Timestamp;

use super::{AccountView, Effect, Machine, Next, Target, Transition, UnconfirmedStart, add};
use crate::account::policy::AccountRefusal;
use crate::guisession::conditions::{Phase, condition_true};
use crate::guisession::types::Operation;
use crate::schedule::WindowState;

impl Machine<'_> {
    pub(super) fn observe(mut self) -> Transition {
        if self.view.deleting {
            return self.deleting();
        }
        self.finalizer = match (self.view.spec.stop_on_delete, self.view.has_finalizer) {
            (true, false) => Some(true),
            (false, true) => Some(false),
            _ => None,
        };
        if let AccountView::Refused(refusal) = self.view.account {
            return self.refused(refusal);
        }
        let target = self.target();
        self.follow_target(&target);
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
        self.next_for_session(target)
    }

    /// Nothing can be done in an account that cannot be used; the account's next change wakes
    /// this object (no polling meanwhile). Judged before the target: without its account the
    /// target's Region is unknown, and a session must never be forgotten because its account is
    /// momentarily unusable.
    fn refused(mut self, refusal: &AccountRefusal) -> Transition {
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
        self.done(Next::Change)
    }

    /// The recorded session and fence follow the target the spec names now.
    fn follow_target(&mut self, target: &Target) {
        match Target::recorded(&self.status) {
            Some(recorded) if recorded != *target => self.forget_session(&recorded, target),
            // A status written before targets were recorded: it is the spec's.
            None if self.status.operation.is_some() => self.record_target(target),
            _ => {}
        }
        if self
            .status
            .pending_start
            .as_ref()
            .is_some_and(|p| Target::pending(p) != *target)
        {
            // A start of a resource the spec no longer names cannot be this object's session.
            self.status.pending_start = None;
        }
    }

    /// What the session itself needs next: wait out a stall, record or follow a start, look up
    /// an unconfirmed one, keep a live session, or start a new one.
    fn next_for_session(mut self, target: Target) -> Transition {
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
            if self.now < settle_end {
                // Its writer may be calling Lightsail right now.
                return self.done(Next::At(settle_end));
            }
            return self.lookup(target);
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
        if let Some(effect) = self.idle_stop_effect(&target) {
            return self.finish(effect);
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
            None => self.lookup(target),
        }
    }

    /// The start this replica holds in memory, while the status still carries its fence and the
    /// spec still names its target.
    pub(super) fn own_unconfirmed(&self) -> Option<&UnconfirmedStart> {
        self.view.unconfirmed.filter(|start| {
            self.status.pending_start.as_ref() == Some(&start.fence)
                && start.target == self.target()
                && start.operation.id.is_some()
        })
    }

    /// The end of the wait after a terminal error, unless the spec changed since. A session that
    /// was live when the error happened is renewed when it expires, whatever the wait: an
    /// error on a side call (access details, a poll) must not let it lapse.
    pub(super) fn stalled_until(&self) -> Option<Timestamp> {
        if self.spec_changed() || condition_true(&self.status, "Stalled").is_none() {
            return None;
        }
        let failed_at = self.status.last_error.as_ref()?.time?;
        let at = self.capped_at_expiry(failed_at, add(failed_at, self.settings.stalled_retry));
        (self.now < at).then_some(at)
    }

    /// `at`, or the session's expiry when a session live at `since` expires before `at`.
    pub(super) fn capped_at_expiry(&self, since: Timestamp, at: Timestamp) -> Timestamp {
        match self.session_expiry() {
            Some(expiry) if since < expiry && expiry < at => expiry,
            _ => at,
        }
    }
}
