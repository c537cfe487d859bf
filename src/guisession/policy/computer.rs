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
const PENDING: &str = "pending";
const STOPPED: &str = "stopped";
const STOPPING: &str = "stopping";

/// How often the add-ons are read again for `status.computer.idleStop` when the spec does not
/// manage them.
const ADD_ONS_REFRESH: Duration = Duration::from_secs(24 * 3600);

impl Machine<'_> {
    fn computer_policy(&self) -> ComputerPolicy {
        self.view.spec.computer.clone().unwrap_or_default()
    }

    fn computer(&mut self) -> &mut ComputerStatus {
        self.status
            .computer
            .get_or_insert_with(ComputerStatus::default)
    }

    fn computer_state(&self) -> Option<&str> {
        self.status.computer.as_ref()?.state.as_deref()
    }

    /// How long a read of the computer's state counts as "just now": a start or lookup decided
    /// within it needs no new read.
    fn check_freshness(&self) -> Duration {
        (self.settings.start_settle / 4).max(Duration::from_secs(1))
    }

    fn fresh(&self, at: Option<Timestamp>) -> bool {
        at.is_some_and(|at| self.now < add(at, self.check_freshness()))
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
        if let Some(effect) = self.computer_operation_to_follow(target) {
            return Err(Box::new(self.finish(effect)));
        }
        let checked_at = self.status.computer.as_ref().and_then(|c| c.checked_at);
        let Some(at) = checked_at.filter(|_| self.fresh(checked_at)) else {
            let fence = self.status.pending_start.clone();
            return Err(Box::new(
                self.check_computer(target.clone(), Some(StartCheck { fence })),
            ));
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
    fn computer_operation_to_follow(&self, target: &Target) -> Option<Effect> {
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

    /// A stop inside the window the computer was last seen running in is respected (unless
    /// `restartInWindow`): the idle-stop rule stopped it to save money, or a person did.
    /// Without a schedule the whole time is one window.
    fn respects_stop(&self) -> bool {
        if self.computer_policy().restart_in_window {
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
    fn pending_delay(&self) -> Duration {
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
        let fence = PendingStart {
            requested_at: self.stamp(),
            resource_name: target.resource_name.clone(),
            region: target.region.clone(),
            account: target.account.clone(),
            holder: self.settings.identity.clone(),
        };
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

    /// StopInstance at a window's end answered.
    pub(super) fn computer_stop_answered(
        mut self,
        target: Target,
        result: Result<Vec<Operation>, LightsailError>,
    ) -> Transition {
        if target != self.target() {
            return self.observe();
        }
        let name = target.resource_name;
        match result {
            Ok(operations) => {
                let Some(op) = pick(operations, Action::StopInstance) else {
                    return self.observe();
                };
                self.note(
                    false,
                    "ComputerStopped",
                    "StopInstance",
                    format!(
                        "schedule window closed: stopping the computer {name} (operation {})",
                        op.id.as_deref().unwrap_or("?")
                    ),
                );
                self.record_computer_operation(op, STOPPING)
            }
            Err(e) if e.answered && e.code == "InvalidInput" => {
                // Not running any more: nothing to stop.
                self.note(
                    false,
                    "ComputerNotRunning",
                    "StopInstance",
                    format!("{e}; the computer {name} is left as it is"),
                );
                self.forget_computer_state();
                self.observe()
            }
            Err(e) if e.class == crate::aws::errors::ErrorClass::Retryable => {
                // Tried again: the end of this window is not handled yet.
                self.computer().window_end_stop_at = None;
                self.note(true, "ComputerStopFailed", "StopInstance", e.to_string());
                self.done(Next::Retry(e))
            }
            Err(e) => {
                self.note(
                    true,
                    "ComputerStopFailed",
                    "StopInstance",
                    format!("{e}; the computer {name} keeps running"),
                );
                self.observe()
            }
        }
    }

    /// A StartInstance or StopInstance answered with its operation: recorded, and the state
    /// it moves the computer to (`pending`, `stopping`) shown until it is read again.
    fn record_computer_operation(mut self, op: Operation, moving_to: &str) -> Transition {
        let delay = self.follow_delay(&op);
        let finished = op.finished();
        let failed = op.failed();
        let c = self.computer();
        c.operation = Some(op.clone());
        c.state = Some(moving_to.to_owned());
        c.checked_at = None;
        if failed {
            return self.computer_operation_failed(&op);
        }
        if finished {
            return self.observe();
        }
        self.done(Next::After(delay))
    }

    /// The state shown came from an answer, not a read: the next decision reads it.
    fn forget_computer_state(&mut self) {
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

    /// `spec.computer.stopAtWindowEnd`, in a closed window once the session is stopped: `Ok`
    /// when nothing (more) is to be done for this close.
    pub(super) fn stop_computer_at_close(
        mut self,
        opens_at: Option<Timestamp>,
    ) -> Result<Self, Box<Transition>> {
        if !self.computer_policy().stop_at_window_end {
            return Ok(self);
        }
        let target = self.target();
        if let Some(pending) = self
            .status
            .computer
            .as_ref()
            .and_then(|c| c.pending_start.clone())
        {
            // A StartInstance fenced before the close: its call has landed (or never will) by
            // the settle end. Nobody takes it over outside a window.
            let settle_end = self.settle_end(&pending);
            if self.now < settle_end {
                return Err(Box::new(self.done(Next::At(settle_end))));
            }
            self.computer().pending_start = None;
        }
        if let Some(effect) = self.computer_operation_to_follow(&target) {
            return Err(Box::new(self.finish(effect)));
        }
        if self.window_end_handled(opens_at) {
            return Ok(self);
        }
        let checked_at = self.status.computer.as_ref().and_then(|c| c.checked_at);
        if !self.fresh(checked_at) {
            return Err(Box::new(self.finish(Effect::CheckComputer {
                target,
                add_ons: false,
                before_start: None,
            })));
        }
        match self.computer_state() {
            Some(RUNNING) => {
                // Written before the call, with the precondition: one stop per close.
                let stamp = self.stamp();
                self.computer().window_end_stop_at = Some(stamp);
                Err(Box::new(self.finish(Effect::StopComputer(target))))
            }
            Some(PENDING) => {
                // Stopped once it is running: StopInstance refuses a pending computer.
                let delay = self.pending_delay();
                Err(Box::new(self.done(Next::After(delay))))
            }
            _ => {
                let stamp = self.stamp();
                self.computer().window_end_stop_at = Some(stamp);
                Ok(self)
            }
        }
    }

    /// Whether the close that `opens_at` ends was handled already: the recorded window-end
    /// stop falls in the same closed stretch.
    fn window_end_handled(&self, opens_at: Option<Timestamp>) -> bool {
        let Some(at) = self
            .status
            .computer
            .as_ref()
            .and_then(|c| c.window_end_stop_at)
        else {
            return false;
        };
        let Some(spec) = &self.view.spec.schedule else {
            return false;
        };
        matches!(schedule::evaluate(spec, at), Ok(WindowState::Closed { opens_at: o }) if o == opens_at)
    }

    /// `spec.computer.idleStop`: the effect that brings the computer's rule in line, when it
    /// differs from what was last read (read again first, unless just read).
    pub(super) fn idle_stop_effect(&self, target: &Target) -> Option<Effect> {
        let want = self.view.spec.computer.as_ref()?.idle_stop.as_ref()?;
        let minutes = want.minutes()?;
        let computer = self.status.computer.as_ref();
        let recorded = computer.and_then(|c| c.idle_stop.as_ref());
        let same = |sent: Option<&String>, wanted: f64| {
            sent.and_then(|s| s.trim().parse::<f64>().ok())
                .is_some_and(|v| (v - wanted).abs() < 1e-9)
        };
        let matches = recorded.is_some_and(|r| {
            !r.status
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("disabled"))
                && same(r.threshold.as_ref(), f64::from(want.threshold))
                && same(r.duration.as_ref(), minutes as f64)
        });
        if matches {
            return None;
        }
        if self.fresh(computer.and_then(|c| c.add_ons_checked_at)) {
            return Some(Effect::EnableIdleStop {
                target: target.clone(),
                threshold: want.threshold.to_string(),
                duration: minutes.to_string(),
            });
        }
        Some(Effect::CheckComputer {
            target: target.clone(),
            add_ons: true,
            before_start: None,
        })
    }

    /// EnableAddOn answered.
    pub(super) fn idle_stop_answered(
        mut self,
        target: Target,
        threshold: String,
        duration: String,
        result: Result<Vec<Operation>, LightsailError>,
    ) -> Transition {
        if target != self.target() {
            return self.observe();
        }
        let operations = match result {
            Ok(operations) => operations,
            Err(error) => return self.failed(error, false),
        };
        self.note(
            false,
            "IdleStopSet",
            "EnableAddOn",
            format!(
                "the computer {} stops after {duration} idle minutes at or below {threshold}% CPU",
                target.resource_name
            ),
        );
        let c = self.computer();
        c.idle_stop = Some(IdleStopStatus {
            status: Some("Enabled".into()),
            threshold: Some(threshold),
            duration: Some(duration),
        });
        if let Some(op) = pick(operations, Action::EnableAddOn) {
            c.operation = Some(op);
        }
        self.observe()
    }
}

/// The operation of `action` among `operations`, else the first.
fn pick(operations: Vec<Operation>, action: Action) -> Option<Operation> {
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
