//! Failed calls: terminal errors stall the object, retryable ones back off.

use super::{Machine, Next, Transition, add};
use crate::aws::errors::{ErrorClass, LightsailError};
use crate::guisession::conditions::{Phase, reason_from_code};
use crate::guisession::types::LastError;

impl Machine<'_> {
    /// A failed call. Terminal errors stall the object until the retry delay or a spec change;
    /// retryable ones go back to per-object backoff. The fence is left as the caller set it.
    pub(super) fn failed(mut self, error: LightsailError, start_call: bool) -> Transition {
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
