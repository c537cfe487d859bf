//! The values the operator exchanges with Lightsail that policy reads: actions, session URLs,
//! access details and rate limits. Plain values, with no SDK client.

use std::num::NonZeroU32;

/// Lightsail actions the operator calls (also the `action` metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    StartGuiSession,
    StopGuiSession,
    GetOperation,
    GetOperationsForResource,
    CreateGuiSessionAccessDetails,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::StartGuiSession => "StartGUISession",
            Action::StopGuiSession => "StopGUISession",
            Action::GetOperation => "GetOperation",
            Action::GetOperationsForResource => "GetOperationsForResource",
            Action::CreateGuiSessionAccessDetails => "CreateGUISessionAccessDetails",
        }
    }
}

/// A GUI session access URL. It carries a bearer token: whoever has it can open the desktop, so
/// it is never formatted (`Debug` redacts it, there is no `Display`) and only
/// [`SessionUrl::expose`] hands it out, to the code that writes the access Secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionUrl(String);

impl SessionUrl {
    pub fn new(url: String) -> Self {
        SessionUrl(url)
    }

    /// The URL itself: for the access Secret's data and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SessionUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionUrl(<redacted>)")
    }
}

/// What `CreateGUISessionAccessDetails` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessDetails {
    /// Lightsail's status of the session (`started`, `settingUpInstance`, ...), as sent.
    pub status: Option<String>,
    pub percentage_complete: Option<i32>,
    pub failure_reason: Option<String>,
    /// The session to the computer's application (`isPrimary`).
    pub primary_url: Option<SessionUrl>,
    /// The session to its operating system.
    pub secondary_url: Option<SessionUrl>,
}

/// Client-side rate limit per Region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}
