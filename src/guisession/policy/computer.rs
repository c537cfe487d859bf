//! The computer behind the session: its state is read before every start (or lookup that may
//! lead to one), a stopped computer is started when the spec allows it (behind a fence, like a
//! session start), it is stopped when a window closes, a stop inside a window is respected,
//! and its idle-stop rule is kept as the spec says.

use std::time::Duration;

use jiff::Timestamp;

use super::{Effect, Machine, Next, StartCheck, Target, Transition, add, until};
use crate::aws::errors::LightsailError;
use crate::aws::model::{Action, ComputerSeen, IdleStopAddOn};
use crate::guisession::conditions::{Phase, reason_from_code};
use crate::guisession::types::{
    ComputerPolicy, ComputerStatus, IdleStopStatus, LastError, Operation, PendingStart,
    whole_seconds,
};
use crate::schedule::{self, WindowState};

/// The state name of a computer a session can run on. Any other name, known or not, is "not
/// running".
pub const RUNNING: &str = "running";
pub(super) const PENDING: &str = "pending";
const STOPPED: &str = "stopped";
pub(super) const STOPPING: &str = "stopping";

/// How often the add-ons are read again for `status.computer.idleStop` when the spec does not
/// manage them.
const ADD_ONS_REFRESH: Duration = Duration::from_secs(24 * 3600);

impl Machine<'_> {
    pub(super) fn computer_policy(&self) -> ComputerPolicy {
        self.view.spec.computer.clone().unwrap_or_default()
    }

    pub(super) fn computer(&mut self) -> &mut ComputerStatus {
        self.status
            .computer
            .get_or_insert_with(ComputerStatus::default)
    }

    pub(super) fn computer_state(&self) -> Option<&str> {
        self.status.computer.as_ref()?.state.as_deref()
    }

    /// How long a read of the computer's state counts as "just now": a start or lookup decided
    /// within it needs no new read.
    fn check_freshness(&self) -> Duration {
        (self.settings.start_settle / 4).max(Duration::from_secs(1))
    }

    /// Whether a read made at `at` still counts: only within the chain of answers it belongs
    /// to (see [`Machine::chained`]) and for a short while.
    pub(super) fn fresh(&self, at: Option<Timestamp>) -> bool {
        self.chained && at.is_some_and(|at| self.now < add(at, self.check_freshness()))
    }

    /// The computer was last seen not running: a lookup (for a session to adopt) would be for
    /// nothing until it is read again and runs.
    fn known_not_running(&self) -> bool {
        self.computer_state().is_some_and(|s| s != RUNNING)
    }

    /// [`Effect::Lookup`], unless the computer was last seen not running: then it is read
    /// first, and looked up only once it runs.
    pub(super) fn lookup(self, target: Target) -> Transition {
        if !self.known_not_running() {
            return self.finish(Effect::Lookup(target));
        }
        match self.gate(&target, false) {
            Ok(this) => this.finish(Effect::Lookup(target)),
            Err(t) => *t,
        }
    }

    /// Whether the next read should be GetInstance, to show the idle-stop rule in status.
    fn add_ons_due(&self) -> bool {
        self.view.spec.computer.is_some()
            && self
                .status
                .computer
                .as_ref()
                .and_then(|c| c.add_ons_checked_at)
                .is_none_or(|at| self.now >= add(at, ADD_ONS_REFRESH))
    }

    fn check_computer(self, target: Target, before_start: Option<StartCheck>) -> Transition {
        let add_ons = self.add_ons_due();
        self.finish(Effect::CheckComputer {
            target,
            add_ons,
            before_start,
        })
    }

    /// The gate before a session start (or a lookup that may lead to one): `Ok` when the
    /// computer was just seen running; otherwise the transition that reads it, follows its
    /// start, starts it or says why no session can start.
    pub(super) fn computer_ready(self, target: &Target) -> Result<Self, Box<Transition>> {
        self.gate(target, true)
    }

    /// [`Machine::computer_ready`]; `for_start`: the read is for a start, which goes on right
    /// after it (see [`StartCheck`]).
    fn gate(self, target: &Target, for_start: bool) -> Result<Self, Box<Transition>> {
        if let Some(effect) = self.computer_operation_to_follow(target) {
            return Err(Box::new(self.finish(effect)));
        }
        let checked_at = self.status.computer.as_ref().and_then(|c| c.checked_at);
        let Some(at) = checked_at.filter(|_| self.fresh(checked_at)) else {
            let check = for_start.then(|| StartCheck {
                fence: self.status.pending_start.clone(),
            });
            return Err(Box::new(self.check_computer(target.clone(), check)));
        };
        if self.computer_state() == Some(RUNNING) {
            return Ok(self);
        }
        Err(Box::new(self.computer_not_running(target.clone(), at)))
    }

    /// Whether the computer was just read and is not running.
    pub(super) fn computer_just_seen_stopped(&self) -> bool {
        let computer = self.status.computer.as_ref();
        self.fresh(computer.and_then(|c| c.checked_at)) && self.computer_state() != Some(RUNNING)
    }

    /// A recorded StartInstance or StopInstance that has not finished: followed with
    /// GetOperation.
    pub(super) fn computer_operation_to_follow(&self, target: &Target) -> Option<Effect> {
        let op = self.status.computer.as_ref()?.operation.as_ref()?;
        let ours = op.is(Action::StartInstance) || op.is(Action::StopInstance);
        if !ours || op.finished() {
            return None;
        }
        Some(Effect::PollComputer {
            target: target.clone(),
            operation_id: op.id.clone()?,
        })
    }

    /// GetInstanceState (or GetInstance) answered.
    pub(super) fn computer_checked(
        mut self,
        target: Target,
        at: Timestamp,
        before_start: Option<StartCheck>,
        result: Result<ComputerSeen, LightsailError>,
    ) -> Transition {
        if target != self.target() {
            return self.observe();
        }
        let seen = match result {
            Ok(seen) => seen,
            Err(error) => return self.failed(error, false),
        };
        let at = whole_seconds(at);
        let known = self.status.computer.as_ref();
        if known.and_then(|c| c.checked_at).is_some_and(|c| c > at)
            || known.and_then(|c| c.acted_at).is_some_and(|a| at <= a)
        {
            // Read before what the status already knows (replayed on a fresher status after a
            // write conflict): acting on it could start the computer a second time.
            return self.observe();
        }
        let running = seen.state == RUNNING;
        let c = self.computer();
        c.state = (!seen.state.is_empty()).then(|| seen.state.clone());
        c.checked_at = Some(at);
        if running {
            c.running_seen_at = Some(at);
            c.not_running_since = None;
        } else if c.not_running_since.is_none() {
            c.not_running_since = Some(at);
        }
        if let Some(idle_stop) = seen.idle_stop {
            c.idle_stop = idle_stop.map(IdleStopStatus::from);
            c.add_ons_checked_at = Some(at);
        }
        if c.pending_start
            .as_ref()
            .is_some_and(|p| seen.state != STOPPED && at >= p.requested_at)
        {
            // Read after the fence: the computer is no longer stopped, so a StartInstance made
            // under it has landed (or none is needed any more).
            c.pending_start = None;
        }
        if !running {
            // A session start that failed on this computer failed because it is not running:
            // the computer's condition says so, and says what comes next.
            self.status.last_error = None;
        }
        let observed = self.fork().observe();
        match before_start {
            // Read for a start that a lookup decided: observing again would only look up
            // again. The start goes on while the status is as it was then.
            Some(check)
                if observed.effect == Effect::Lookup(target.clone())
                    && self.status.pending_start == check.fence =>
            {
                self.start(target)
            }
            _ => observed,
        }
    }

    /// A computer just seen not running (`at`): wait for a start in flight, respect a stop
    /// inside the window, start it when allowed, or say that it is stopped.
    fn computer_not_running(mut self, target: Target, at: Timestamp) -> Transition {
        let state = self.computer_state().unwrap_or("unknown").to_owned();
        let name = target.resource_name.clone();
        if let Some(pending) = self
            .status
            .computer
            .as_ref()
            .and_then(|c| c.pending_start.clone())
        {
            let settle_end = self.settle_end(&pending);
            if at < settle_end {
                // Its writer may be calling StartInstance right now.
                self.phase(Phase::ComputerStarting {
                    message: format!("starting the computer {name}"),
                });
                return self.done(Next::At(settle_end));
            }
            if state == STOPPED && self.may_start_computer() {
                // Still stopped after the settle window: that start never landed. Taken over.
                return self.start_computer(target);
            }
            self.computer().pending_start = None;
        }
        if state == PENDING {
            self.phase(Phase::ComputerStarting {
                message: format!("the computer {name} is starting"),
            });
            let delay = self.pending_delay();
            return self.done(Next::After(delay));
        }
        if self.respects_stop() {
            self.phase(Phase::ComputerIdleStopped {
                message: format!(
                    "the computer {name} stopped ({state}) after it ran in this window, by its idle-stop rule or by hand: it is not started again before the next window (spec.computer.restartInWindow); starting it by hand brings the session back"
                ),
            });
            let delay = self.recheck_delay();
            return self.done(Next::After(delay));
        }
        if self.may_start_computer() {
            if state == STOPPED {
                return self.start_computer(target);
            }
            if state == STOPPING {
                self.phase(Phase::ComputerStarting {
                    message: format!(
                        "the computer {name} is stopping; it is started once it has stopped"
                    ),
                });
                let delay = self.pending_delay();
                return self.done(Next::After(delay));
            }
        }
        let hint = if self.computer_policy().start_if_stopped {
            format!("its state {state:?} is not one the operator starts from")
        } else {
            "start it, or set spec.computer.startIfStopped".to_owned()
        };
        let message = format!("the computer {name} is {state}, not running: {hint}");
        if !self.condition_reason_was(
            "Stalled",
            crate::guisession::conditions::REASON_COMPUTER_STOPPED,
        ) {
            self.note(true, "ComputerStopped", "GetInstanceState", message.clone());
        }
        self.phase(Phase::ComputerStopped { message });
        let delay = self.recheck_delay();
        self.done(Next::After(delay))
    }

    fn may_start_computer(&self) -> bool {
        self.computer_policy().start_if_stopped
    }

    fn condition_reason_was(&self, type_: &str, reason: &str) -> bool {
        crate::guisession::conditions::condition_true(self.view.status, type_)
            .is_some_and(|c| c.reason == reason)
    }

    /// With `spec.computer`, a stop inside the window the computer was last seen running in is
    /// respected (unless `restartInWindow`): the idle-stop rule stopped it to save money, or a
    /// person did. Without a schedule the whole time is one window, until it runs again.
    fn respects_stop(&self) -> bool {
        // Without spec.computer the computer is not the operator's concern: not running is
        // ComputerStopped, whoever stopped it.
        if self.view.spec.computer.is_none() || self.computer_policy().restart_in_window {
            return false;
        }
        let Some(seen) = self
            .status
            .computer
            .as_ref()
            .and_then(|c| c.running_seen_at)
        else {
            return false;
        };
        match &self.view.spec.schedule {
            None => true,
            Some(spec) => matches!(
                (schedule::evaluate(spec, seen), schedule::evaluate(spec, self.now)),
                (Ok(WindowState::Open { closes_at: a }), Ok(WindowState::Open { closes_at: b })) if a == b
            ),
        }
    }

    /// The delay before reading a computer that is not running again: as long as it has not
    /// been running, between the initial and the longest re-check delay.
    pub(super) fn recheck_delay(&self) -> Duration {
        self.not_running_for()
            .max(self.settings.computer_recheck_initial)
            .min(self.settings.computer_recheck_max)
    }

    /// The delay while the computer is on its way (pending, or stopping before a start).
    pub(super) fn pending_delay(&self) -> Duration {
        self.not_running_for()
            .max(self.settings.follow_backoff_initial)
            .min(self.settings.follow_backoff_max)
    }

    fn not_running_for(&self) -> Duration {
        self.status
            .computer
            .as_ref()
            .and_then(|c| c.not_running_since)
            .map_or(Duration::ZERO, |since| until(since, self.now))
    }

    /// Writes the computer's fence and asks for StartInstance.
    fn start_computer(mut self, target: Target) -> Transition {
        let fence = self.fence_for(&target);
        self.computer().pending_start = Some(fence);
        self.phase(Phase::ComputerStarting {
            message: format!("starting the computer {}", target.resource_name),
        });
        self.finish(Effect::StartComputer(target))
    }

    /// StartInstance answered.
    pub(super) fn computer_start_answered(
        mut self,
        target: Target,
        fence: Option<PendingStart>,
        result: Result<Vec<Operation>, LightsailError>,
    ) -> Transition {
        let ours = fence.is_some()
            && self
                .status
                .computer
                .as_ref()
                .and_then(|c| c.pending_start.as_ref())
                == fence.as_ref();
        if ours && (result.is_ok() || result.as_ref().is_err_and(|e| e.answered)) {
            self.computer().pending_start = None;
        }
        if target != self.target() {
            return self.observe();
        }
        let operations = match result {
            Ok(operations) => operations,
            Err(error) if error.answered && error.code == "InvalidInput" => {
                // Not stopped any more (someone started it, or it is stopping): read it again.
                self.note(
                    false,
                    "ComputerNotStopped",
                    "StartInstance",
                    format!("{error}; reading the computer's state again"),
                );
                self.forget_computer_state();
                let delay = self.settings.computer_recheck_initial;
                return self.done(Next::After(delay));
            }
            Err(error) => return self.failed(error, false),
        };
        let Some(op) = pick(operations, Action::StartInstance) else {
            let error = LightsailError::invalid_response(
                Action::StartInstance,
                "StartInstance returned no operation",
            );
            return self.failed(error, false);
        };
        self.note(
            false,
            "ComputerStarting",
            "StartInstance",
            format!(
                "starting the computer {} (operation {})",
                target.resource_name,
                op.id.as_deref().unwrap_or("?")
            ),
        );
        self.record_computer_operation(op, PENDING)
    }

    /// A StartInstance or StopInstance answered with its operation: recorded, and the state
    /// it moves the computer to (`pending`, `stopping`) shown until it is read again.
    pub(super) fn record_computer_operation(
        mut self,
        op: Operation,
        moving_to: &str,
    ) -> Transition {
        let delay = self.follow_delay(&op);
        let finished = op.finished();
        let failed = op.failed();
        let stamp = self.stamp();
        let c = self.computer();
        c.operation = Some(op.clone());
        c.state = Some(moving_to.to_owned());
        c.checked_at = None;
        c.acted_at = Some(stamp);
        if failed {
            return self.computer_operation_failed(&op);
        }
        if finished {
            return self.observe();
        }
        self.done(Next::After(delay))
    }

    /// The state shown came from an answer, not a read: the next decision reads it.
    pub(super) fn forget_computer_state(&mut self) {
        self.computer().checked_at = None;
    }

    /// GetOperation for the computer's operation answered.
    pub(super) fn computer_polled(
        mut self,
        target: Target,
        result: Result<Option<Operation>, LightsailError>,
    ) -> Transition {
        if target != self.target() {
            return self.observe();
        }
        let op = match result {
            Ok(Some(op)) => op,
            Ok(None) => {
                let error = LightsailError::invalid_response(
                    Action::GetOperation,
                    "GetOperation returned no operation",
                );
                return self.failed(error, false);
            }
            Err(error) => return self.failed(error, false),
        };
        let recorded = self
            .status
            .computer
            .as_ref()
            .and_then(|c| c.operation.as_ref());
        if recorded.is_none_or(|r| r.id != op.id) {
            return self.observe();
        }
        let newly_failed = op.failed() && recorded.is_some_and(|r| !r.failed());
        let delay = self.follow_delay(&op);
        let finished = op.finished();
        self.computer().operation = Some(op.clone());
        if newly_failed {
            return self.computer_operation_failed(&op);
        }
        if !finished {
            return self.done(Next::After(delay));
        }
        self.forget_computer_state();
        self.observe()
    }

    fn computer_operation_failed(mut self, op: &Operation) -> Transition {
        let action = op
            .operation_type
            .clone()
            .unwrap_or_else(|| "operation".into());
        let code = op
            .error_code
            .clone()
            .unwrap_or_else(|| "OperationFailed".into());
        let details = op
            .error_details
            .clone()
            .unwrap_or_else(|| "the operation failed".into());
        self.forget_computer_state();
        self.status.last_error = Some(LastError {
            code: Some(code.clone()),
            message: Some(details.clone()),
            time: Some(self.stamp()),
        });
        let message = format!("{action} operation failed: {code}: {details}");
        self.note(
            true,
            "ComputerOperationFailed",
            "GetOperation",
            message.clone(),
        );
        self.phase(Phase::Stalled {
            reason: reason_from_code(&code),
            message,
        });
        let retry = add(self.now, self.settings.stalled_retry);
        self.done(Next::At(retry))
    }
}

/// The operation of `action` among `operations`, else the first.
pub(super) fn pick(operations: Vec<Operation>, action: Action) -> Option<Operation> {
    let position = operations.iter().position(|op| op.is(action)).unwrap_or(0);
    operations.into_iter().nth(position)
}

impl From<IdleStopAddOn> for IdleStopStatus {
    fn from(a: IdleStopAddOn) -> Self {
        IdleStopStatus {
            status: a.status,
            threshold: a.threshold,
            duration: a.duration,
        }
    }
}
