//! Deletion: StopGUISession when `stopOnDelete` asks for it, then the finalizer comes off.

use super::{AccountView, Effect, Machine, Next, SKIP_STOP_ANNOTATION, Target, Transition};
use crate::aws::errors::{ErrorClass, LightsailError};

impl Machine<'_> {
    pub(super) fn deleting(mut self) -> Transition {
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

    pub(super) fn stop_answered(mut self, result: Result<(), LightsailError>) -> Transition {
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
}
