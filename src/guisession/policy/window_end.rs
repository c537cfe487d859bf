//! `spec.computer.stopAtWindowEnd`: once the session is stopped at a window's close, the
//! computer is stopped too (StopInstance, never forced), once per close.

use jiff::Timestamp;

use super::computer::{PENDING, RUNNING, STOPPING, pick};
use super::{Effect, Machine, Next, Target, Transition};
use crate::aws::errors::{ErrorClass, LightsailError};
use crate::aws::model::Action;
use crate::guisession::types::Operation;
use crate::schedule::{self, WindowState};

impl Machine<'_> {
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
            Err(e) if e.class == ErrorClass::Retryable => {
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
}
