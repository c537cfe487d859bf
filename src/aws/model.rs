//! The values the operator exchanges with Lightsail that policy reads: actions, operations (as
//! `status.operation` records them), session URLs, access details and rate limits. Plain values,
//! with no SDK client.

use std::num::NonZeroU32;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Lightsail actions the operator calls (also the `action` metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    StartGuiSession,
    StopGuiSession,
    GetOperation,
    GetOperationsForResource,
    CreateGuiSessionAccessDetails,
    GetInstanceState,
    GetInstance,
    StartInstance,
    StopInstance,
    EnableAddOn,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::StartGuiSession => "StartGUISession",
            Action::StopGuiSession => "StopGUISession",
            Action::GetOperation => "GetOperation",
            Action::GetOperationsForResource => "GetOperationsForResource",
            Action::CreateGuiSessionAccessDetails => "CreateGUISessionAccessDetails",
            Action::GetInstanceState => "GetInstanceState",
            Action::GetInstance => "GetInstance",
            Action::StartInstance => "StartInstance",
            Action::StopInstance => "StopInstance",
            Action::EnableAddOn => "EnableAddOn",
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

/// What GetInstanceState (or GetInstance) says of a computer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputerSeen {
    /// The state's name as sent (`running`, `stopped`, ...); empty when Lightsail sent none.
    pub state: String,
    /// The `StopInstanceOnIdle` add-on, when the answer came from GetInstance (`None`: not
    /// asked); `Some(None)`: the computer has no such add-on.
    pub idle_stop: Option<Option<IdleStopAddOn>>,
}

/// The computer's `StopInstanceOnIdle` add-on as GetInstance reports it. Lightsail sends its
/// numbers as strings; they are kept as sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdleStopAddOn {
    pub status: Option<String>,
    /// CPU percentage at or below which the computer counts as idle.
    pub threshold: Option<String>,
    /// Idle minutes before the computer is stopped.
    pub duration: Option<String>,
}

/// Client-side rate limit per Region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

/// A Lightsail operation, as reported by the Lightsail API. Timestamps are in whole seconds.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// The operation ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Name of the resource the operation acts on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// Type of the resource, for example `Instance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// When the operation was created, on Lightsail's clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// Where the operation runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Whether the operation has finished (successfully or not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_terminal: Option<bool>,
    /// Free-form details Lightsail gives about the operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_details: Option<String>,
    /// The kind of operation, for example `StartGUISession`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_type: Option<String>,
    /// Status of the operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<OperationStatus>,
    /// When the status last changed, on Lightsail's clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_changed_at: Option<Timestamp>,
    /// Error code, when the operation failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Error details, when the operation failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_details: Option<String>,
}

impl Operation {
    /// Whether the operation has finished: Lightsail says it is terminal, or its status is one
    /// only a finished operation has (Lightsail may omit `isTerminal`).
    pub fn finished(&self) -> bool {
        self.is_terminal == Some(true)
            || matches!(
                self.status,
                Some(
                    OperationStatus::Succeeded
                        | OperationStatus::Completed
                        | OperationStatus::Failed
                )
            )
    }

    /// Whether the operation failed.
    pub fn failed(&self) -> bool {
        self.status == Some(OperationStatus::Failed)
    }

    /// Whether this is a StartGUISession operation.
    pub fn is_start(&self) -> bool {
        self.operation_type.as_deref() == Some("StartGUISession")
    }

    /// Whether this is a StopGUISession operation.
    pub fn is_stop(&self) -> bool {
        self.operation_type.as_deref() == Some("StopGUISession")
    }

    /// Whether this operation is of `action` (e.g. a StartInstance).
    pub fn is(&self, action: Action) -> bool {
        self.operation_type.as_deref() == Some(action.as_str())
    }
}

/// Where a Lightsail operation runs.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    /// Availability Zone, for example `eu-central-1a`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// AWS Region, for example `eu-central-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_name: Option<String>,
}

/// Status of a Lightsail operation.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub enum OperationStatus {
    NotStarted,
    Started,
    Failed,
    Completed,
    Succeeded,
}
