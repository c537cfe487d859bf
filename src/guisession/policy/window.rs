//! `spec.schedule`: whether a window is open, and stopping the session when it closes.

use std::time::Duration;

use jiff::Timestamp;

use super::{Effect, Machine, Next, Target, Transition};
use crate::aws::errors::{ErrorClass, LightsailError};
use crate::guisession::conditions::Phase;
use crate::guisession::types::ScheduleStatus;
use crate::schedule::{self, WindowState};

impl Machine<'_> {
    /// `stopAtWindowEnd` is set and no window is open now.
    pub(super) fn stops_at_a_closed_window(&mut self) -> bool {
        self.stops_at_window_end() && matches!(self.window(), Ok(Some(WindowState::Closed { .. })))
    }

    /// The session is stopped when a window closes: `spec.schedule.stopAtWindowEnd`, or
    /// `spec.computer.stopAtWindowEnd` (which stops the session before the computer).
    pub(super) fn stops_at_window_end(&self) -> bool {
        let spec = self.view.spec;
        spec.schedule.as_ref().is_some_and(|s| s.stop_at_window_end)
            || spec.computer.as_ref().is_some_and(|c| c.stop_at_window_end)
    }

    /// Where `spec.schedule` stands now, recorded in `status.schedule`. `Ok(None)`: no schedule.
    /// `Err`: a schedule that cannot be evaluated (admission checks what it can; a cron
    /// expression or a time zone can only be checked here).
    pub(super) fn window(&mut self) -> Result<Option<WindowState>, String> {
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
    pub(super) fn outside_schedule(mut self, opens_at: Option<Timestamp>) -> Transition {
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
        // Then the computer, once no session runs on it.
        let this = match self.stop_computer_at_close(opens_at) {
            Ok(this) => this,
            Err(t) => return *t,
        };
        // No window within the evaluator's look-ahead: look again a day later (an exclusion
        // ending beyond the horizon, or a spec edit, may change that).
        let next = opens_at.map_or(Next::After(Duration::from_secs(24 * 3600)), Next::At);
        this.done(next)
    }

    /// StopGUISession at the end of a schedule window answered.
    pub(super) fn window_stop_answered(mut self, result: Result<(), LightsailError>) -> Transition {
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
}
