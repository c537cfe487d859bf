//! Starting a session behind the fence (`status.pendingStart`), recording the answer and
//! following its Operation with GetOperation until it is terminal.

use std::time::Duration;

use jiff::Timestamp;

use super::{Effect, Machine, Next, Target, Transition, UnconfirmedStart, add, until};
use crate::aws::errors::LightsailError;
use crate::guisession::conditions::{Phase, reason_from_code};
use crate::guisession::types::{GuiSessionStatus, LastError, Operation, PendingStart};

impl Machine<'_> {
    pub(super) fn record_target(&mut self, target: &Target) {
        self.status.resource_name = Some(target.resource_name.clone());
        self.status.region = target.region.clone();
        self.status.account = target.account.clone();
    }

    /// The spec names another resource (or Region): the recorded session is not this object's
    /// any more. It is left to run out; the new resource gets a session of its own.
    pub(super) fn forget_session(&mut self, old: &Target, new: &Target) {
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
    pub(super) fn start(self, target: Target) -> Transition {
        if let Some(last) = self.status.last_start_at {
            let earliest = add(last, self.settings.min_session_age);
            if self.now < earliest && !self.computer_just_seen_stopped() {
                return self.done(Next::At(earliest));
            }
            if self.now < earliest {
                // Too soon for a session, but the computer's condition is news now.
                return match self.computer_ready(&target) {
                    Ok(this) => this.done(Next::At(earliest)),
                    Err(t) => *t,
                };
            }
        }
        match self.computer_ready(&target) {
            Ok(this) => this.fence_start(target),
            Err(t) => *t,
        }
    }

    /// Writes the fence of a start to a computer just seen running.
    fn fence_start(mut self, target: Target) -> Transition {
        self.status.pending_start = Some(self.fence_for(&target));
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

    pub(super) fn start_answered(
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
                let may_be_the_computer = may_be_the_computer(&error);
                let failed = self.failed(error, true);
                return read_computer_after(failed, may_be_the_computer, target);
            }
        };
        let Some(op) = operations
            .iter()
            .find(|op| op.is_start())
            .or(operations.first())
            .cloned()
        else {
            let error = LightsailError::invalid_response(
                crate::aws::model::Action::StartGuiSession,
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
    pub(super) fn record_start(
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
    pub(super) fn record(
        mut self,
        target: &Target,
        op: Operation,
        started_at: Timestamp,
    ) -> Transition {
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
            if newly_failed {
                // AWS does not say how a start on a computer that is not running fails: read
                // it, so that the condition says so at once.
                self.status.operation = Some(op);
                let retry = add(self.now, self.settings.stalled_retry);
                let failed = self.done(Next::At(retry));
                return read_computer_after(failed, true, target.clone());
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

    /// How long to wait before polling a running operation again: as long as it has been
    /// running, between the initial and the longest delay.
    pub(super) fn follow_delay(&self, op: &Operation) -> Duration {
        let since = op.status_changed_at.or(op.created_at);
        let elapsed = since.map_or(Duration::ZERO, |t| until(t, self.now));
        elapsed
            .max(self.settings.follow_backoff_initial)
            .min(self.settings.follow_backoff_max)
    }

    pub(super) fn polled(self, result: Result<Option<Operation>, LightsailError>) -> Transition {
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
                    crate::aws::model::Action::GetOperation,
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
}

/// Whether a failed StartGUISession may have failed because the computer is not running (AWS
/// does not document the answer): not when the error is about identity, Region or resource.
fn may_be_the_computer(error: &LightsailError) -> bool {
    error.class == crate::aws::errors::ErrorClass::Terminal
        && !matches!(
            error.code.as_str(),
            "NotFound"
                | "AccessDenied"
                | "Unauthenticated"
                | "NoCredentials"
                | "NoRegion"
                | "InvalidRegion"
                | "AccountNotReady"
        )
}

/// A failed start that may be the computer's doing reads the computer next (once: the stall
/// that follows waits as usual when it is running).
fn read_computer_after(
    failed: Transition,
    may_be_the_computer: bool,
    target: Target,
) -> Transition {
    if !may_be_the_computer || !matches!(failed.effect, Effect::Done(Next::At(_))) {
        return failed;
    }
    Transition {
        effect: Effect::CheckComputer {
            target,
            add_ons: false,
            before_start: None,
        },
        ..failed
    }
}
