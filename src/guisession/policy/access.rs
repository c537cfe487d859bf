//! A live session and its access: CreateGUISessionAccessDetails and the Secret that holds the
//! URLs.

use std::time::Duration;

use jiff::Timestamp;

use super::{
    AccessSecret, Effect, Machine, Next, SecretError, SecretSeen, Target, Transition, add, until,
};
use crate::aws::errors::LightsailError;
use crate::aws::model::AccessDetails;
use crate::guisession::conditions::{Phase, reason_from_code};
use crate::guisession::types::AccessStatus;

impl Machine<'_> {
    /// A session is available until `expires_at`. With `spec.access`, it is Ready once its
    /// access Secret holds this session's URLs.
    pub(super) fn active(mut self, expires_at: Timestamp) -> Transition {
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
    pub(super) fn access_secret_name(&self) -> Option<String> {
        let access = self.view.spec.access.as_ref()?;
        Some(access.secret_name_for(self.view.name))
    }

    /// Not Ready yet (a first session) or still Ready (a renewal, a rewrite), with `message`.
    pub(super) fn waiting(&mut self, message: String) {
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
    pub(super) fn access_delay(&self, access: &AccessStatus, at: Timestamp) -> Duration {
        let elapsed = access.requested_at.map_or(Duration::ZERO, |r| until(r, at));
        elapsed
            .max(self.settings.follow_backoff_initial)
            .min(self.settings.follow_backoff_max)
    }

    pub(super) fn access_answered(
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

    pub(super) fn secret_written(
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

    pub(super) fn secret_deleted(mut self, result: Result<(), SecretError>) -> Transition {
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
    pub(super) fn secret_failed(mut self, name: &str, e: SecretError) -> Transition {
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
