//! The `GuiSession` custom resource (`lightsail.operators.dev/v1alpha1`). The Lightsail operation it
//! records in `status.operation` is an AWS value, [`crate::aws::model::Operation`].

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

pub use crate::account::types::{AccountKind, AccountRef};
pub use crate::aws::model::{Location, Operation, OperationStatus};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The default for `spec.maxSessionAge`.
pub const DEFAULT_MAX_SESSION_AGE: &str = "1h";

// Doc comments on the CRD types below are user documentation (`kubectl explain`), which keeps
// their line breaks: keep one line per paragraph. The Expires column is a string because kubectl
// shows a future instant in a `date` column as `<invalid>`.
/// Desired state of a GuiSession: which Lightsail resource to keep a GUI session open for, and how long each session may live before a fresh one is started.
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[kube(
    group = "lightsail.operators.dev",
    version = "v1alpha1",
    kind = "GuiSession",
    namespaced,
    shortname = "guis",
    category = "lightsail",
    status = "GuiSessionStatus",
    doc = "A GuiSession keeps a browser-based GUI session of an Amazon Lightsail resource available. The operator starts a GUI session for the named resource and starts a fresh one whenever the current session is older than spec.maxSessionAge.",
    printcolumn = r#"{"name":"Resource","type":"string","description":"Name of the Lightsail resource","jsonPath":".spec.resourceName"}"#,
    printcolumn = r#"{"name":"Region","type":"string","description":"AWS Region of the last operation","jsonPath":".status.operation.location.regionName"}"#,
    printcolumn = r#"{"name":"Operation","type":"string","description":"Status of the last Lightsail operation","jsonPath":".status.operation.status"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","description":"Whether a GUI session is available","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Computer","type":"string","description":"State of the computer when the operator last read it (running, stopped, ...)","jsonPath":".status.computer.state"}"#,
    printcolumn = r#"{"name":"Expires","type":"string","description":"When the current session is replaced by a new one","jsonPath":".status.sessionExpiresAt"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.computer) || !has(self.computer.stopAtWindowEnd) || !self.computer.stopAtWindowEnd || has(self.schedule)",
    "message": "computer.stopAtWindowEnd needs a schedule: it stops the computer when a schedule window closes"
}]))]
pub struct GuiSessionSpec {
    /// Name of the Lightsail resource (for example an instance) whose GUI session is kept available. It must exist in the Region the operator works in (or in `region`).
    #[schemars(pattern(r"^\w[\w\-]*\w$"), length(max = 255))]
    pub resource_name: String,

    /// AWS Region of the resource, for example `eu-central-1`. When unset, the operator's default Region is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // `extend`, not `pattern(..)`: with `pattern(..)` on this Option the rule was missing from
    // the schema in test builds but present in the binary's, so the drift check failed.
    #[schemars(extend("pattern" = r"^[a-z]{2}(-[a-z]+)+-[0-9]+$", "maxLength" = 32))]
    pub region: Option<String>,

    /// How long a GUI session may live before the operator starts a new one, as a Go duration string such as `45m`, `1h` or `1h30m`. Must be greater than zero. The operator may raise very small values to its configured minimum session age.
    #[serde(default = "default_max_session_age")]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "duration(self) > duration('0s')",
        "message": "maxSessionAge must be a positive Go duration such as 45m, 1h or 1h30m"
    }]))]
    pub max_session_age: String,

    /// When true, the operator starts no new sessions for this resource. A running session is left alone and simply runs out.
    #[serde(default)]
    pub suspend: bool,

    /// When true, deleting this GuiSession also stops the resource's current GUI session. When false (the default), the session is left to run out on its own.
    #[serde(default)]
    pub stop_on_delete: bool,

    /// Opt-in: after every session start or renewal, the operator asks Lightsail for the session's access URLs (CreateGUISessionAccessDetails) and writes them into a Secret in this namespace, owned by this GuiSession. The operator must be installed with access Secrets enabled (chart value `accessSecrets.enabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessSpec>,

    /// The AWS account to manage the session in: a `LightsailAccount` in this namespace, or a `ClusterLightsailAccount` that allows this namespace. When unset, the operator's own AWS identity. A missing, not-ready or not-allowed account makes the GuiSession Stalled (reason AccountNotFound, AccountNotReady or AccountNotAllowed) until the account is fixed; no Lightsail call is made meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_ref: Option<AccountRef>,

    /// Opt-in: keep sessions alive only inside these windows. Outside a window no session is started or renewed. When unset, sessions are kept alive all the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<SessionSchedule>,

    /// What the operator may do with the computer behind the session. Before every session start the operator reads the computer's state (GetInstanceState); a session is only started on a `running` computer. When unset, a computer that is not running makes the GuiSession Stalled (reason ComputerStopped) and nothing else is done to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computer: Option<ComputerPolicy>,
}

/// What the operator may do with the computer (the Lightsail instance) behind the session.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComputerPolicy {
    /// When true, a `stopped` computer is started (StartInstance) when a session is due, and the session is started once the computer is `running`. With a schedule this happens only inside an open window. When false (the default), a computer that is not running makes the GuiSession Stalled (reason ComputerStopped) and the operator reads its state again with backoff (after 30s, then as long again as it has been stopped, at most every 5m) until someone starts it.
    #[serde(default)]
    pub start_if_stopped: bool,

    /// Requires `schedule`. When true, when a window closes the operator stops the GUI session (StopGUISession) and then the computer (StopInstance, never forced), once per close. A computer someone starts again outside the window is left running.
    #[serde(default)]
    pub stop_at_window_end: bool,

    /// When true, a computer that stops inside an open window after the operator saw it running there (its idle-stop rule fired, or someone stopped it) is started again with `startIfStopped`. When false (the default), such a stop is respected until the next window opens (without a schedule: until it runs again): the GuiSession shows Ready with reason ComputerIdleStopped, and a computer someone starts again gets its session.
    #[serde(default)]
    pub restart_in_window: bool,

    /// The computer's cost-control rule (the `StopInstanceOnIdle` add-on): stop it after it has been idle for `duration`. When set, the operator enables the rule (EnableAddOn) when the computer's rule differs; when unset, the rule is left as it is. Either way `status.computer.idleStop` shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_stop: Option<IdleStopSpec>,
}

/// The `StopInstanceOnIdle` rule of a Lightsail for Research computer.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdleStopSpec {
    /// CPU utilization, in percent, at or below which the computer counts as idle.
    #[schemars(range(min = 1, max = 100))]
    pub threshold: u8,

    /// How long the computer must stay idle before it is stopped, as a Go duration in whole minutes such as `30m` or `1h30m`.
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "duration(self) >= duration('1m') && duration(self) <= duration('720h') && duration(self).getSeconds() % 60 == 0",
        "message": "duration must be a whole number of minutes between 1m and 720h, such as 30m or 1h30m"
    }]))]
    pub duration: String,
}

impl IdleStopSpec {
    /// `duration` in whole minutes, as EnableAddOn takes it; `None` when it is not a whole,
    /// positive number of minutes (admission refuses those).
    pub fn minutes(&self) -> Option<u64> {
        let d = crate::duration::parse_go_duration(&self.duration).ok()?;
        (d.as_secs() >= 60 && d.as_secs() % 60 == 0 && d.subsec_nanos() == 0)
            .then_some(d.as_secs() / 60)
    }
}

/// Where the access URLs of the GUI session go.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessSpec {
    /// Name of the Secret (in this GuiSession's namespace) that receives the access URLs; defaults to the GuiSession's name followed by `-access`. Keys: `primaryUrl` (a DCV session to the computer's application), `secondaryUrl` (to its operating system), `resourceName` and `expiresAt` (RFC 3339). The URLs are bearer credentials: whoever can read the Secret can open the desktop. The operator owns this Secret: it replaces edits and recreates it when deleted, and Kubernetes deletes it with the GuiSession. It must not name a Secret that someone else owns.
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

impl AccessSpec {
    /// The Secret's name for the GuiSession `owner`.
    pub fn secret_name_for(&self, owner: &str) -> String {
        self.secret_name
            .clone()
            .unwrap_or_else(|| format!("{owner}-access"))
    }
}

/// When sessions are kept alive: windows that open at a cron time and stay open for a duration, in one time zone, minus exclusions.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionSchedule {
    /// IANA time zone the window start times are read in, for example `Europe/Berlin` or `America/New_York`. Defaults to `UTC`. An unknown time zone makes the GuiSession Stalled (reason InvalidSchedule).
    #[serde(default = "default_time_zone")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: String,

    /// The windows. A session is kept alive while any window is open. Overlapping windows merge.
    #[schemars(length(min = 1, max = 32))]
    pub windows: Vec<ScheduleWindow>,

    /// Periods (holidays, maintenance) during which no session is started or renewed, even inside a window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub exclusions: Vec<ScheduleExclusion>,

    /// When true, the running GUI session is stopped (StopGUISession) when a window closes. When false (the default) it is left to run out on its own, at most `maxSessionAge` after its start.
    #[serde(default)]
    pub stop_at_window_end: bool,
}

fn default_time_zone() -> String {
    "UTC".to_owned()
}

/// One recurring window.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleWindow {
    /// When the window opens: a standard five-field cron expression (minute hour day-of-month month day-of-week), read in `timeZone`, for example `0 8 * * MON-FRI`. Names (`MON`, `JAN`) and ranges are allowed. A start time that does not exist on a daylight-saving day (spring forward) moves forward by the length of the gap (02:30 becomes 03:30); one that exists twice (fall back) opens the window once, at the first. When both day-of-month and day-of-week are restricted, a day matching either counts, as in classic cron.
    #[schemars(length(min = 1, max = 128))]
    pub start: String,

    /// How long the window stays open, as a Go duration such as `10h` or `90m`: elapsed time, so a window that spans a daylight-saving change still lasts exactly this long. Must be greater than zero and at most 168h (one week).
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "duration(self) > duration('0s') && duration(self) <= duration('168h')",
        "message": "duration must be a positive Go duration of at most 168h, such as 10h or 90m"
    }]))]
    pub duration: String,
}

/// A period in which no session is started or renewed.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "timestamp(self.end) > timestamp(self.start)",
    "message": "an exclusion must end after it starts"
}]))]
pub struct ScheduleExclusion {
    /// Start of the exclusion, RFC 3339 with an offset, for example `2026-12-24T00:00:00+01:00`.
    pub start: Timestamp,
    /// End of the exclusion (exclusive), RFC 3339.
    pub end: Timestamp,
}

fn default_max_session_age() -> String {
    DEFAULT_MAX_SESSION_AGE.to_owned()
}

#[cfg(test)]
impl GuiSessionSpec {
    /// A spec naming only the computer, every policy at its default: the tests' usual object.
    pub(crate) fn for_computer(resource_name: &str) -> Self {
        Self {
            resource_name: resource_name.into(),
            region: None,
            max_session_age: default_max_session_age(),
            suspend: false,
            stop_on_delete: false,
            account_ref: None,
            access: None,
            schedule: None,
            computer: None,
        }
    }
}

/// Observed state of a GuiSession, written by the operator.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuiSessionStatus {
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The Lightsail resource the recorded session and operation belong to. When `spec.resourceName` or the effective Region changes, the recorded session is no longer this object's: the operator forgets it (the old session runs out on its own) and looks after the new resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,

    /// The AWS Region of `resourceName` (`spec.region`, the account's Region, or the operator's default Region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,

    /// The account the recorded session belongs to (`LightsailAccount/NAME` or `ClusterLightsailAccount/NAME`); unset for the operator's own identity. A different `spec.accountRef` means the recorded session is not this object's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,

    /// The last Lightsail operation the operator started or adopted for this resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,

    /// When the current GUI session started, on the operator's clock: for a session the operator started, when it decided to start it (never later than the real start, so a renewal is never late); for an adopted one, Lightsail's `createdAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_started_at: Option<Timestamp>,

    /// When the current GUI session will be replaced by a new one: `sessionStartedAt` plus the effective `maxSessionAge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expires_at: Option<Timestamp>,

    /// When the operator last called StartGUISession for this object, on its own clock. No new start follows sooner than the operator's minimum session age after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_start_at: Option<Timestamp>,

    /// Present while a StartGUISession call may be in flight. The operator writes it, with an optimistic-concurrency precondition, before every StartGUISession: only the writer that wins that write calls Lightsail. It is cleared only when the call's operation is recorded or Lightsail definitely did not start a session. While it is younger than the operator's settle window nobody else starts a session; an older one makes the operator look up the resource's operations and adopt what it finds before it starts again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_start: Option<PendingStart>,

    /// The last error the operator hit while managing the session, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,

    /// The access Secret asked for by `spec.access`. Never contains the URLs themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessStatus>,

    /// Where `spec.schedule` stands: whether a window is open and when that changes next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleStatus>,

    /// The computer behind the session, as the operator last saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computer: Option<ComputerStatus>,

    /// Standard kstatus conditions. `Ready` is `True` while a GUI session is available (or the object is suspended, which is its desired state); `Reconciling` is `True` while a first session is being started or an error is being retried; `Stalled` is `True` after an error that retrying will not fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Option<Vec<Condition>>,
}

/// Where the access Secret stands (see `spec.access`).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessStatus {
    /// The Secret the URLs are written to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Lightsail's status of the session's access details, as CreateGUISessionAccessDetails last reported it: `settingUpInstance`, `starting`, `started`, `startExpired`, `notStarted`, `stopping`, `stopped`, `failedInstanceCreation`, `failedStartingGUISession` or `failedStoppingGUISession`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// How far Lightsail is in setting up access, 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage_complete: Option<i32>,
    /// Why Lightsail could not set up access, when it says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// The session (its `sessionStartedAt`) the access details were asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_started_at: Option<Timestamp>,
    /// When the operator first asked for this session's access details (the retry backoff counts from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<Timestamp>,
    /// When the operator last asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<Timestamp>,
    /// When the Secret was last written with this session's URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_written_at: Option<Timestamp>,
}

/// Where the schedule stands (see `spec.schedule`).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleStatus {
    /// Whether a window is open now (and no exclusion applies).
    pub open: bool,
    /// When that changes next: the end of the open window, or the start of the next one. Unset when the schedule never opens again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_change_at: Option<Timestamp>,
}

/// The computer behind the session (see `spec.computer`).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComputerStatus {
    /// The computer's state as Lightsail last reported it: `pending`, `running`, `stopping`, `stopped` (or another name, which the operator treats as not running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// When the operator last read the state (GetInstanceState or GetInstance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<Timestamp>,
    /// When the operator last saw the computer `running`: a later stop inside the same window is respected (see `spec.computer.restartInWindow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_seen_at: Option<Timestamp>,
    /// Since when the computer has been seen not running without a break; the re-check backoff counts from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_running_since: Option<Timestamp>,
    /// The computer's idle-stop rule (`StopInstanceOnIdle` add-on) as GetInstance last reported it, or as the operator last set it. Unset while not read, or when the computer has no such rule (see `addOnsCheckedAt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_stop: Option<IdleStopStatus>,
    /// When the operator last read the computer's add-ons (GetInstance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_ons_checked_at: Option<Timestamp>,
    /// Present while a StartInstance call may be in flight: written with an optimistic-concurrency precondition before the call, exactly like `status.pendingStart`, so that only one operator replica starts the computer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_start: Option<PendingStart>,
    /// The last StartInstance, StopInstance or EnableAddOn operation of the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
    /// When the operator last had the computer started or stopped: a read made before it (by a replica that was slow to record it) is out of date and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acted_at: Option<Timestamp>,
    /// When the operator last handled the end of a schedule window (`spec.computer.stopAtWindowEnd`): it stopped the computer, or found it not running. Once per close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_end_stop_at: Option<Timestamp>,
}

/// A computer's idle-stop rule.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdleStopStatus {
    /// The add-on's status as Lightsail reports it, for example `Enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// CPU percentage at or below which the computer counts as idle, as Lightsail sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<String>,
    /// Idle minutes before the computer is stopped, as Lightsail sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
}

/// A StartGUISession call that may be in flight (see `status.pendingStart`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingStart {
    /// When the operator decided to start the session, on its own clock.
    pub requested_at: Timestamp,
    /// The Lightsail resource being started.
    pub resource_name: String,
    /// Its AWS Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Its account (as in `status.account`); unset for the operator's own identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The operator replica that wrote it.
    pub holder: String,
}

/// The last error the operator hit.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    /// Machine-readable error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Human-readable description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the error happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Timestamp>,
}

/// `ts` truncated to whole seconds, as every status timestamp is stored (sub-second digits would
/// make status differ on every read of the same instant).
pub fn whole_seconds(ts: Timestamp) -> Timestamp {
    Timestamp::from_second(ts.as_second()).unwrap_or(ts)
}

#[cfg(test)]
mod tests;
