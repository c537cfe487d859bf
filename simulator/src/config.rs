//! What a simulator serves: test credentials and the AWS accounts (with their IAM roles) they
//! can reach, the inventory of virtual computers with their per-computer behaviours, session and
//! operation timings, the error body style, the faults and the offset of its clock.

pub use super::instance::InstanceState;
pub use super::meter::MeterWindow;
use super::trust_policy::TrustPolicy;
use jiff::SignedDuration;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Access key id the simulator accepts unless told otherwise.
pub const DEFAULT_ACCESS_KEY_ID: &str = "AKIDLIGHTSAILSIM";
/// Secret key the simulator accepts unless told otherwise.
pub const DEFAULT_SECRET_ACCESS_KEY: &str = "lightsail-sim-secret";
/// Account the base credentials belong to unless told otherwise.
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";
/// A role's maximum session duration unless told otherwise (AWS: 1 hour).
pub const DEFAULT_MAX_SESSION_DURATION: Duration = Duration::from_secs(3600);
/// Shortest maximum session duration a role may have (AWS: 1 hour).
pub const MIN_MAX_SESSION_DURATION: Duration = Duration::from_secs(3600);
/// Longest maximum session duration a role may have (AWS: 12 hours).
pub const MAX_MAX_SESSION_DURATION: Duration = Duration::from_secs(12 * 3600);
/// Longest value of the [`SimConfig::sts_credential_lifetime`] knob.
pub const MAX_STS_CREDENTIAL_LIFETIME: Duration = MAX_MAX_SESSION_DURATION;
/// Region of a computer that names none.
pub const DEFAULT_REGION: &str = "us-east-1";
/// How long a started GUI session lasts before it becomes `startExpired` (AWS: 1 hour).
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(3600);
/// How long an operation stays `Started` before it becomes terminal.
pub const DEFAULT_SETTLE_TIME: Duration = Duration::from_secs(1);
/// How long a started computer stays `pending` before it is `running`, unless its spec says.
pub const DEFAULT_INSTANCE_START_TIME: Duration = Duration::from_secs(2);
/// How long a stopped computer stays `stopping` before it is `stopped`, unless its spec says.
pub const DEFAULT_INSTANCE_STOP_TIME: Duration = Duration::from_secs(2);
/// Operations per `GetOperationsForResource` page.
pub const DEFAULT_OPERATIONS_PAGE_SIZE: usize = 10;
/// Most `accessSetupCalls` a computer may have: `percentageComplete` rises by at least one with
/// every setup call and stays below 100 until `started`.
pub const MAX_ACCESS_SETUP_CALLS: u32 = 99;
/// Largest clock offset accepted either way: enough for any skew test, small enough that a typo
/// such as `-2000000h` is caught.
pub const MAX_CLOCK_OFFSET: SignedDuration = SignedDuration::from_hours(366 * 24);

/// Everything a [`Simulator`](super::Simulator) needs to start.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// The only long-term access key id whose signatures are accepted; it belongs to
    /// [`account_id`](Self::account_id). Temporary credentials from STS `AssumeRole` are
    /// accepted too.
    pub access_key_id: String,
    /// Its secret key.
    pub secret_access_key: String,
    /// The base account: the one the base credentials belong to, and of computers that name
    /// none. Twelve digits.
    pub account_id: String,
    /// Other accounts, reached by assuming their roles through STS. An entry with the base
    /// account's id gives the base account roles.
    pub accounts: Vec<AccountSpec>,
    /// **Simulator knob, not an AWS setting:** when set, every credential STS issues expires
    /// after this long (whole seconds, 1 s to 12 h) whenever that is shorter than the
    /// `DurationSeconds` asked for, so tests can watch clients refresh. Changeable at run time.
    pub sts_credential_lifetime: Option<Duration>,
    /// The virtual computers the simulator knows at start.
    pub computers: Vec<ComputerSpec>,
    /// How long a GUI session stays `started` once it has settled.
    pub session_lifetime: Duration,
    /// How long each Start/Stop operation stays `Started` before it succeeds or fails.
    pub settle_time: Duration,
    /// How long a computer stays `pending` after `StartInstance` (its spec's `startingTime`
    /// wins).
    pub instance_start_time: Duration,
    /// How long a computer stays `stopping` after `StopInstance` (its spec's `stoppingTime`
    /// wins).
    pub instance_stop_time: Duration,
    /// How modelled Lightsail exceptions are written on the wire.
    pub error_style: ErrorStyle,
    /// Operations per `GetOperationsForResource` page.
    pub operations_page_size: usize,
    /// Faults in force at start; they can be replaced at run time.
    pub faults: Faults,
    /// How far the simulated AWS clock is from this machine's: `-2h` makes AWS two hours behind
    /// the node. Whole milliseconds, at most [`MAX_CLOCK_OFFSET`] either way; changeable at run
    /// time.
    pub clock_offset: SignedDuration,
    /// Bearer token the `/_sim/*` control routes require. Optional on loopback; the simulator
    /// refuses to listen anywhere else without one (it runs as a Pod behind a Service there).
    pub control_token: Option<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            access_key_id: DEFAULT_ACCESS_KEY_ID.to_owned(),
            secret_access_key: DEFAULT_SECRET_ACCESS_KEY.to_owned(),
            account_id: DEFAULT_ACCOUNT_ID.to_owned(),
            accounts: Vec::new(),
            sts_credential_lifetime: None,
            computers: Vec::new(),
            session_lifetime: DEFAULT_SESSION_LIFETIME,
            settle_time: DEFAULT_SETTLE_TIME,
            instance_start_time: DEFAULT_INSTANCE_START_TIME,
            instance_stop_time: DEFAULT_INSTANCE_STOP_TIME,
            error_style: ErrorStyle::default(),
            operations_page_size: DEFAULT_OPERATIONS_PAGE_SIZE,
            faults: Faults::default(),
            clock_offset: SignedDuration::ZERO,
            control_token: None,
        }
    }
}

impl SimConfig {
    /// Adds a computer to the inventory.
    pub fn with_computer(mut self, computer: ComputerSpec) -> Self {
        self.computers.push(computer);
        self
    }

    /// Sets the credentials whose signatures are accepted.
    pub fn with_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        self.access_key_id = access_key_id.into();
        self.secret_access_key = secret_access_key.into();
        self
    }

    /// Sets the base account, the one the base credentials belong to.
    pub fn with_account_id(mut self, account_id: impl Into<String>) -> Self {
        self.account_id = account_id.into();
        self
    }

    /// Adds an account with its roles (or roles of the base account, with its id).
    pub fn with_account(mut self, account: AccountSpec) -> Self {
        self.accounts.push(account);
        self
    }

    /// Makes every credential STS issues expire after `lifetime` at the latest (a simulator
    /// knob real AWS does not have; see [`SimConfig::sts_credential_lifetime`]).
    pub fn with_sts_credential_lifetime(mut self, lifetime: Duration) -> Self {
        self.sts_credential_lifetime = Some(lifetime);
        self
    }

    /// Requires `Authorization: Bearer TOKEN` on the control routes.
    pub fn with_control_token(mut self, token: impl Into<String>) -> Self {
        self.control_token = Some(token.into());
        self
    }

    /// Sets how long a started session lasts.
    pub fn with_session_lifetime(mut self, lifetime: Duration) -> Self {
        self.session_lifetime = lifetime;
        self
    }

    /// Sets how long operations take to settle.
    pub fn with_settle_time(mut self, settle_time: Duration) -> Self {
        self.settle_time = settle_time;
        self
    }

    /// Sets how long computers stay `pending` after a start and `stopping` after a stop,
    /// unless their spec says.
    pub fn with_instance_times(mut self, starting: Duration, stopping: Duration) -> Self {
        self.instance_start_time = starting;
        self.instance_stop_time = stopping;
        self
    }

    /// Sets the error body style.
    pub fn with_error_style(mut self, style: ErrorStyle) -> Self {
        self.error_style = style;
        self
    }

    /// Sets the operations per `GetOperationsForResource` page.
    pub fn with_operations_page_size(mut self, page_size: usize) -> Self {
        self.operations_page_size = page_size;
        self
    }

    /// Sets the faults in force at start.
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Sets the offset of the simulated AWS clock from this machine's.
    pub fn with_clock_offset(mut self, offset: SignedDuration) -> Self {
        self.clock_offset = offset;
        self
    }

    /// Checks everything a user could get wrong, naming the culprit.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_clock_offset(self.clock_offset)?;
        if self.access_key_id.is_empty() || self.secret_access_key.is_empty() {
            return Err(ConfigError::Invalid(
                "access key id and secret access key must not be empty".to_owned(),
            ));
        }
        if self.control_token.as_deref().is_some_and(str::is_empty) {
            return Err(ConfigError::Invalid(
                "the control token must not be empty".to_owned(),
            ));
        }
        validate_instance_time("the instance start time", self.instance_start_time)?;
        validate_instance_time("the instance stop time", self.instance_stop_time)?;
        if self.operations_page_size == 0 {
            return Err(ConfigError::Invalid(
                "operations page size must be at least 1".to_owned(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for computer in &self.computers {
            computer.validate()?;
            if !seen.insert(computer.name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "computer {:?} is defined more than once",
                    computer.name
                )));
            }
        }
        if let Some(lifetime) = self.sts_credential_lifetime {
            validate_sts_credential_lifetime(lifetime)?;
        }
        check_accounts(&self.account_id, &self.accounts, &self.computers)?;
        self.faults.validate()
    }
}

/// Checks the base account id, every account and role, that account ids are unique, and that
/// every trusted account and every computer's account is one the simulator knows.
pub fn check_accounts(
    base_account: &str,
    accounts: &[AccountSpec],
    computers: &[ComputerSpec],
) -> Result<(), ConfigError> {
    if !is_valid_account_id(base_account) {
        return Err(ConfigError::Invalid(format!(
            "base account id {base_account:?} is not 12 digits"
        )));
    }
    let mut ids = std::collections::HashSet::new();
    for account in accounts {
        account.validate()?;
        if !ids.insert(account.id.as_str()) {
            return Err(ConfigError::Invalid(format!(
                "account {} is defined more than once",
                account.id
            )));
        }
    }
    let known = |id: &str| id == base_account || ids.contains(id);
    for account in accounts {
        for role in &account.roles {
            if let Some(stranger) = role.trusted_accounts.iter().find(|id| !known(id)) {
                return Err(ConfigError::Invalid(format!(
                    "role {:?} of account {} trusts account {stranger}, which is neither the base \
                     account ({base_account}) nor one of the accounts configured",
                    role.name, account.id
                )));
            }
        }
    }
    for computer in computers {
        if let Some(account) = &computer.account
            && !known(account)
        {
            return Err(ConfigError::Invalid(format!(
                "computer {:?} is in account {account}, which is neither the base account \
                 ({base_account}) nor one of the accounts configured",
                computer.name
            )));
        }
    }
    Ok(())
}

/// Checks a value of the [`SimConfig::sts_credential_lifetime`] knob.
pub fn validate_sts_credential_lifetime(lifetime: Duration) -> Result<(), ConfigError> {
    if lifetime < Duration::from_secs(1)
        || lifetime > MAX_STS_CREDENTIAL_LIFETIME
        || lifetime.subsec_nanos() != 0
    {
        return Err(ConfigError::Invalid(format!(
            "STS credential lifetime {} is not a whole number of seconds between 1s and {}",
            format_duration(lifetime),
            format_duration(MAX_STS_CREDENTIAL_LIFETIME)
        )));
    }
    Ok(())
}

/// An AWS account the simulator knows besides the base one, with the roles callers may assume
/// in it. Field names are camelCase in JSON/YAML: `{"id": "111122223333", "roles": [...]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccountSpec {
    /// Twelve digits.
    pub id: String,
    /// Its IAM roles.
    #[serde(default)]
    pub roles: Vec<RoleSpec>,
}

impl AccountSpec {
    /// An account without roles.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            roles: Vec::new(),
        }
    }

    /// Adds a role.
    pub fn with_role(mut self, role: RoleSpec) -> Self {
        self.roles.push(role);
        self
    }

    /// Checks the id and every role (not whether trusted accounts exist: see
    /// [`check_accounts`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !is_valid_account_id(&self.id) {
            return Err(ConfigError::Invalid(format!(
                "account id {:?} is not 12 digits",
                self.id
            )));
        }
        let mut names = std::collections::HashSet::new();
        for role in &self.roles {
            role.validate(&self.id)?;
            if !names.insert(role.name.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "role {:?} is defined more than once in account {}",
                    role.name, self.id
                )));
            }
        }
        Ok(())
    }
}

/// An IAM role: who may assume it and for how long. camelCase in JSON/YAML, in one of two forms:
///
/// * a **trust policy**, the JSON document an AWS admin attaches to the role (see
///   [`RoleSpec::trust_policy`]):
///   `{"name": "gui", "trustPolicy": {"Version": "2012-10-17", "Statement": [...]}}`;
/// * the **legacy form**, the policy reduced to accounts and an optional external id:
///   `{"name": "gui", "trustedAccounts": ["000000000000"], "externalId": "x1"}`.
///
/// Either takes `"maxSessionDuration": "1h"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RoleDocument", into = "RoleDocument")]
pub struct RoleSpec {
    /// Role name, `[\w+=,.@-]{1,64}`; its ARN is `arn:aws:iam::ACCOUNT:role/NAME`.
    pub name: String,
    /// Legacy form: accounts whose principals may assume it (`[]` trusts nobody). Empty with a
    /// [`trust_policy`](Self::trust_policy).
    pub trusted_accounts: Vec<String>,
    /// Legacy form: when set, `AssumeRole` must pass exactly this `ExternalId` (the trust
    /// policy's `sts:ExternalId` condition); 2 to 1224 characters of `[\w+=,.@:/-]`. None with a
    /// [`trust_policy`](Self::trust_policy).
    pub external_id: Option<String>,
    /// An IAM trust policy document, evaluated on every `AssumeRole` as IAM does: an explicit
    /// `Deny` wins, else an `Allow` statement must match (its `Action`, `Principal` and every
    /// `Condition`). When the request carries session tags, `sts:TagSession` must be allowed
    /// too. Checked when the role is configured; what it may contain is described in the
    /// simulator's crate documentation.
    pub trust_policy: Option<serde_json::Value>,
    /// Longest `DurationSeconds` accepted: 1 h (the default) to 12 h, whole seconds.
    pub max_session_duration: Duration,
}

/// [`RoleSpec`] as written: `trustedAccounts` is required unless there is a `trustPolicy`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RoleDocument {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trusted_accounts: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trust_policy: Option<serde_json::Value>,
    #[serde(default = "default_max_session_duration", with = "duration_text")]
    max_session_duration: Duration,
}

impl TryFrom<RoleDocument> for RoleSpec {
    type Error = String;

    fn try_from(document: RoleDocument) -> Result<Self, Self::Error> {
        let RoleDocument {
            name,
            trusted_accounts,
            external_id,
            trust_policy,
            max_session_duration,
        } = document;
        if trust_policy.is_none() && trusted_accounts.is_none() {
            return Err(format!(
                "missing field `trustedAccounts` (or `trustPolicy`) in role {name:?}"
            ));
        }
        if trust_policy.is_some() && (trusted_accounts.is_some() || external_id.is_some()) {
            return Err(both_forms_message(&name));
        }
        Ok(Self {
            name,
            trusted_accounts: trusted_accounts.unwrap_or_default(),
            external_id,
            trust_policy,
            max_session_duration,
        })
    }
}

impl From<RoleSpec> for RoleDocument {
    fn from(role: RoleSpec) -> Self {
        let trusted_accounts = (role.trust_policy.is_none() || !role.trusted_accounts.is_empty())
            .then_some(role.trusted_accounts);
        Self {
            name: role.name,
            trusted_accounts,
            external_id: role.external_id,
            trust_policy: role.trust_policy,
            max_session_duration: role.max_session_duration,
        }
    }
}

fn both_forms_message(name: &str) -> String {
    format!(
        "role {name:?} has a trustPolicy and trustedAccounts or externalId: give one form only \
         (in a trust policy, Principal says who may assume the role and a StringEquals \
         sts:ExternalId condition the external id)"
    )
}

fn default_max_session_duration() -> Duration {
    DEFAULT_MAX_SESSION_DURATION
}

impl RoleSpec {
    /// A role that trusts nobody yet, with the default maximum session duration.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            trusted_accounts: Vec::new(),
            external_id: None,
            trust_policy: None,
            max_session_duration: DEFAULT_MAX_SESSION_DURATION,
        }
    }

    /// Legacy form: lets principals of `account` assume it.
    pub fn trusting(mut self, account: impl Into<String>) -> Self {
        self.trusted_accounts.push(account.into());
        self
    }

    /// Legacy form: requires this `ExternalId`.
    pub fn with_external_id(mut self, external_id: impl Into<String>) -> Self {
        self.external_id = Some(external_id.into());
        self
    }

    /// Decides who may assume it by this IAM trust policy document (instead of
    /// [`trusting`](Self::trusting) and [`with_external_id`](Self::with_external_id)), e.g.
    /// `json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS":
    /// "arn:aws:iam::000000000000:root"}, "Action": "sts:AssumeRole"}]})`.
    pub fn with_trust_policy(mut self, document: serde_json::Value) -> Self {
        self.trust_policy = Some(document);
        self
    }

    /// Sets the longest session it grants.
    pub fn with_max_session_duration(mut self, duration: Duration) -> Self {
        self.max_session_duration = duration;
        self
    }

    /// Checks the name, the trust policy or the trusted account ids and the external id, and
    /// the maximum duration.
    pub fn validate(&self, account: &str) -> Result<(), ConfigError> {
        if !is_valid_role_name(&self.name) {
            return Err(ConfigError::Invalid(format!(
                "role name {:?} in account {account} does not match [\\w+=,.@-]{{1,64}}",
                self.name
            )));
        }
        if let Some(document) = &self.trust_policy {
            if !self.trusted_accounts.is_empty() || self.external_id.is_some() {
                return Err(ConfigError::Invalid(format!(
                    "{} (account {account})",
                    both_forms_message(&self.name)
                )));
            }
            TrustPolicy::parse(document).map_err(|error| {
                ConfigError::Invalid(format!(
                    "trustPolicy of role {:?} in account {account}: {error}",
                    self.name
                ))
            })?;
        }
        if let Some(bad) = self
            .trusted_accounts
            .iter()
            .find(|id| !is_valid_account_id(id))
        {
            return Err(ConfigError::Invalid(format!(
                "trusted account {bad:?} of role {:?} in account {account} is not 12 digits",
                self.name
            )));
        }
        if let Some(external_id) = &self.external_id
            && !is_valid_external_id(external_id)
        {
            return Err(ConfigError::Invalid(format!(
                "externalId of role {:?} in account {account} is not 2 to 1224 characters of \
                 [\\w+=,.@:/-]",
                self.name
            )));
        }
        let duration = self.max_session_duration;
        if duration < MIN_MAX_SESSION_DURATION
            || duration > MAX_MAX_SESSION_DURATION
            || duration.subsec_nanos() != 0
        {
            return Err(ConfigError::Invalid(format!(
                "maxSessionDuration {} of role {:?} in account {account} is not a whole number \
                 of seconds between 1h and 12h",
                format_duration(duration),
                self.name
            )));
        }
        Ok(())
    }
}

/// The ARN of role `name` in `account`: `arn:aws:iam::ACCOUNT:role/NAME`.
pub fn role_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:role/{name}")
}

/// Twelve ASCII digits.
pub fn is_valid_account_id(id: &str) -> bool {
    id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit())
}

/// IAM's role name pattern `[\w+=,.@-]{1,64}`.
pub fn is_valid_role_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(is_iam_name_byte)
}

/// STS's `RoleSessionName` constraint: 2 to 64 characters of `[\w+=,.@-]`.
pub fn is_valid_role_session_name(name: &str) -> bool {
    (2..=64).contains(&name.len()) && name.bytes().all(is_iam_name_byte)
}

/// STS's `ExternalId` constraint: 2 to 1224 characters of `[\w+=,.@:/-]`.
pub fn is_valid_external_id(id: &str) -> bool {
    (2..=1224).contains(&id.len())
        && id
            .bytes()
            .all(|b| is_iam_name_byte(b) || b == b':' || b == b'/')
}

fn is_iam_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b)
}

/// How modelled Lightsail exceptions are written on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ErrorStyle {
    /// As real Lightsail: `__type`, `code` (e.g. `NotFound`), `message`, `docs`, `tip`. The Rust
    /// SDK prefers `code`, so it reports an unmodelled error whose `code()` is `NotFound`.
    #[default]
    Code,
    /// Only `__type` and `message`: the SDK reports the modelled variant (`NotFoundException`).
    Type,
}

/// A virtual computer and how it misbehaves. Field names are camelCase in JSON/YAML.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComputerSpec {
    /// Lightsail resource name; must match `\w[\w\-]*\w`.
    pub name: String,
    /// Region the computer lives in; calls signed for another region do not find it.
    #[serde(default = "default_region")]
    pub region: String,
    /// Account the computer belongs to (default: the base account). Calls made with credentials
    /// of another account do not find it, nor its operations. Names are unique across the
    /// simulator whatever their account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Start operations end `Failed` with this error instead of `Succeeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_fails_with: Option<OperationFailure>,
    /// Stop operations end `Failed` with this error instead of `Succeeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_fails_with: Option<OperationFailure>,
    /// Every call about this computer answers `AccessDeniedException`.
    #[serde(default)]
    pub access_denied: bool,
    /// Every call about this computer answers `UnauthenticatedException`.
    #[serde(default)]
    pub unauthenticated: bool,
    /// Every call about this computer answers `InvalidInputException`.
    #[serde(default)]
    pub invalid_input: bool,
    /// Every call about this computer answers `ServiceException` (HTTP 500).
    #[serde(default)]
    pub service_error: bool,
    /// Every call about this computer answers this modelled exception (after the flags above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls_fail_with: Option<LightsailException>,
    /// `StartGUISession` is performed and counted, but its response is held back until this is
    /// cleared at run time (or the client goes away).
    #[serde(default)]
    pub hold_start_response: bool,
    /// Operations of this computer leave out `isTerminal` (optional in the API model): a
    /// finished one says so only by its `status`.
    #[serde(default)]
    pub omit_is_terminal: bool,
    /// How many `CreateGUISessionAccessDetails` calls after each `StartGUISession` answer before
    /// the session is `started` (at most [`MAX_ACCESS_SETUP_CALLS`]): the first half (rounded
    /// up) answer `settingUpInstance`, the rest `starting`, with `percentageComplete` rising
    /// from call to call and no sessions. Calls are counted, not timed, so tests stay
    /// deterministic; each Start begins the count anew. `0` (the default): the session is
    /// `started` as soon as the start operation has succeeded.
    #[serde(default)]
    pub access_setup_calls: u32,
    /// After the setup calls and once the start operation has succeeded,
    /// `CreateGUISessionAccessDetails` answers this failure status with this `failureReason`
    /// (and no sessions) instead of `started`. The start operation itself still `Succeeded`
    /// (for a `Failed` one use `startFailsWith`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_failure: Option<AccessFailure>,
    /// The state the computer is in when it is added (default `running`; `pending` and
    /// `stopping` then settle as after a start or stop). An update of an existing computer
    /// keeps its live state: change that with `POST /_sim/computers/NAME/state`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<InstanceState>,
    /// How long it stays `pending` after a start (default: the simulator's
    /// `instanceStartTime`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_duration_text"
    )]
    pub starting_time: Option<Duration>,
    /// How long it stays `stopping` after a stop (default: the simulator's
    /// `instanceStopTime`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_duration_text"
    )]
    pub stopping_time: Option<Duration>,
    /// What `StartGUISession` answers while the computer is not `running`, which AWS does not
    /// document: an `InvalidInputException` (the default) or a `Failed` operation.
    #[serde(default)]
    pub session_when_not_running: SessionWhenNotRunning,
    /// Metering windows (half-open, RFC 3339, compared on the wall clock): the view splits the
    /// billed time into the part inside any of them and the rest. Changing them keeps the
    /// meter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub meter_windows: Vec<MeterWindow>,
    /// The `blueprintId` `GetInstance` reports, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blueprint_id: Option<String>,
}

/// What `StartGUISession` answers for a computer that is not `running` (AWS does not document
/// it; the console asks to start the computer first).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SessionWhenNotRunning {
    /// `error`: `InvalidInputException` (HTTP 400), no operation made.
    #[default]
    Error,
    /// `failedOperation`: an operation is made, `Started` for the settle time, then `Failed`
    /// with errorCode [`INSTANCE_NOT_RUNNING`].
    FailedOperation,
}

/// The `errorCode` of a `StartGUISession` operation failed because its computer was not
/// running (see [`SessionWhenNotRunning::FailedOperation`]).
pub const INSTANCE_NOT_RUNNING: &str = "InstanceNotRunning";

fn default_region() -> String {
    DEFAULT_REGION.to_owned()
}

impl ComputerSpec {
    /// A well-behaved computer in [`DEFAULT_REGION`].
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            region: default_region(),
            account: None,
            start_fails_with: None,
            stop_fails_with: None,
            access_denied: false,
            unauthenticated: false,
            invalid_input: false,
            service_error: false,
            calls_fail_with: None,
            hold_start_response: false,
            omit_is_terminal: false,
            access_setup_calls: 0,
            access_failure: None,
            state: None,
            starting_time: None,
            stopping_time: None,
            session_when_not_running: SessionWhenNotRunning::Error,
            meter_windows: Vec::new(),
            blueprint_id: None,
        }
    }

    /// Adds it in `state` (see [`ComputerSpec::state`]).
    pub fn in_state(mut self, state: InstanceState) -> Self {
        self.state = Some(state);
        self
    }

    /// Adds it `stopped`.
    pub fn stopped(self) -> Self {
        self.in_state(InstanceState::Stopped)
    }

    /// Makes it `pending` for `time` after each start.
    pub fn starting_time(mut self, time: Duration) -> Self {
        self.starting_time = Some(time);
        self
    }

    /// Makes it `stopping` for `time` after each stop.
    pub fn stopping_time(mut self, time: Duration) -> Self {
        self.stopping_time = Some(time);
        self
    }

    /// Sets what `StartGUISession` answers while it is not running.
    pub fn session_when_not_running(mut self, answer: SessionWhenNotRunning) -> Self {
        self.session_when_not_running = answer;
        self
    }

    /// Adds a metering window `[start, end)`.
    pub fn meter_window(mut self, start: jiff::Timestamp, end: jiff::Timestamp) -> Self {
        self.meter_windows.push(MeterWindow::new(start, end));
        self
    }

    /// Sets the `blueprintId` `GetInstance` reports.
    pub fn blueprint_id(mut self, blueprint_id: impl Into<String>) -> Self {
        self.blueprint_id = Some(blueprint_id.into());
        self
    }

    /// Places the computer in `region`.
    pub fn in_region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// Places the computer in `account` (which the simulator must know).
    pub fn in_account(mut self, account: impl Into<String>) -> Self {
        self.account = Some(account.into());
        self
    }

    /// Makes its start operations end `Failed`.
    pub fn start_fails_with(
        mut self,
        error_code: impl Into<String>,
        error_details: impl Into<String>,
    ) -> Self {
        self.start_fails_with = Some(OperationFailure {
            error_code: error_code.into(),
            error_details: error_details.into(),
        });
        self
    }

    /// Makes every call about it answer `exception`.
    pub fn calls_fail_with(mut self, exception: LightsailException) -> Self {
        self.calls_fail_with = Some(exception);
        self
    }

    /// Holds (or stops holding) its `StartGUISession` responses.
    pub fn hold_start_response(mut self, hold: bool) -> Self {
        self.hold_start_response = hold;
        self
    }

    /// Makes `calls` access-details calls after each start answer `settingUpInstance`, then
    /// `starting`, before `started` (see [`ComputerSpec::access_setup_calls`]).
    pub fn access_setup_calls(mut self, calls: u32) -> Self {
        self.access_setup_calls = calls;
        self
    }

    /// Makes access fail with `status` and `reason` where it would be `started`.
    pub fn access_failure(
        mut self,
        status: AccessFailureStatus,
        reason: impl Into<String>,
    ) -> Self {
        self.access_failure = Some(AccessFailure {
            status,
            reason: reason.into(),
        });
        self
    }

    /// Parses the `NAME[@REGION]` form of `--computer`.
    pub fn parse_flag(text: &str) -> Result<Self, ConfigError> {
        let spec = match text.split_once('@') {
            Some((name, region)) => Self::new(name).in_region(region),
            None => Self::new(text),
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the name, the region and the access knobs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !is_valid_resource_name(&self.name) {
            return Err(ConfigError::Invalid(format!(
                "computer name {:?} does not match \\w[\\w\\-]*\\w",
                self.name
            )));
        }
        let region_ok = !self.region.is_empty()
            && self
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err(ConfigError::Invalid(format!(
                "region {:?} of computer {:?} is not a region name like us-east-1",
                self.region, self.name
            )));
        }
        if let Some(account) = &self.account
            && !is_valid_account_id(account)
        {
            return Err(ConfigError::Invalid(format!(
                "account {account:?} of computer {:?} is not 12 digits",
                self.name
            )));
        }
        if self.access_setup_calls > MAX_ACCESS_SETUP_CALLS {
            return Err(ConfigError::Invalid(format!(
                "accessSetupCalls {} of computer {:?} is more than {MAX_ACCESS_SETUP_CALLS} \
                 (percentageComplete must rise with every setup call and stay below 100)",
                self.access_setup_calls, self.name
            )));
        }
        if let Some(failure) = &self.access_failure
            && failure.reason.trim().is_empty()
        {
            return Err(ConfigError::Invalid(format!(
                "accessFailure of computer {:?} needs a non-empty reason (its failureReason)",
                self.name
            )));
        }
        for window in &self.meter_windows {
            if window.start >= window.end {
                return Err(ConfigError::Invalid(format!(
                    "meter window {} to {} of computer {:?} does not end after it starts",
                    window.start, window.end, self.name
                )));
            }
        }
        for (field, time) in [
            ("startingTime", self.starting_time),
            ("stoppingTime", self.stopping_time),
        ] {
            if let Some(time) = time {
                validate_instance_time(&format!("{field} of computer {:?}", self.name), time)?;
            }
        }
        if self
            .blueprint_id
            .as_deref()
            .is_some_and(|id| id.trim().is_empty())
        {
            return Err(ConfigError::Invalid(format!(
                "blueprintId of computer {:?} must not be empty",
                self.name
            )));
        }
        Ok(())
    }

    /// The exception every call about this computer answers, if any.
    pub(crate) fn forced_exception(&self) -> Option<LightsailException> {
        if self.access_denied {
            Some(LightsailException::AccessDenied)
        } else if self.unauthenticated {
            Some(LightsailException::Unauthenticated)
        } else if self.invalid_input {
            Some(LightsailException::InvalidInput)
        } else if self.service_error {
            Some(LightsailException::Service)
        } else {
            self.calls_fail_with
        }
    }
}

/// Longest starting or stopping time: a typo such as `2000h` is caught.
pub const MAX_INSTANCE_TIME: Duration = Duration::from_secs(24 * 3600);

/// Checks a starting or stopping time (`what` names it): whole milliseconds, at most
/// [`MAX_INSTANCE_TIME`].
pub fn validate_instance_time(what: &str, time: Duration) -> Result<(), ConfigError> {
    if time > MAX_INSTANCE_TIME {
        return Err(ConfigError::Invalid(format!(
            "{what} {} is more than {}",
            format_duration(time),
            format_duration(MAX_INSTANCE_TIME)
        )));
    }
    if !time.subsec_nanos().is_multiple_of(1_000_000) {
        return Err(ConfigError::Invalid(format!(
            "{what} {} is not a whole number of milliseconds",
            format_duration(time)
        )));
    }
    Ok(())
}

/// Lightsail's `resourceName` pattern `\w[\w\-]*\w` (`\w` being ASCII word characters).
pub fn is_valid_resource_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    match bytes {
        [first, middle @ .., last] => {
            word(first) && word(last) && middle.iter().all(|b| word(b) || *b == b'-')
        }
        _ => false,
    }
}

/// The `errorCode` / `errorDetails` a failing operation ends with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperationFailure {
    /// Operation `errorCode`.
    pub error_code: String,
    /// Operation `errorDetails`.
    #[serde(default)]
    pub error_details: String,
}

/// How `CreateGUISessionAccessDetails` fails for a computer: `{"status": "failedInstanceCreation",
/// "reason": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessFailure {
    /// The `status` answered.
    pub status: AccessFailureStatus,
    /// The `failureReason` answered; must not be empty.
    pub reason: String,
}

/// The failure statuses an [`AccessFailure`] may answer. `failedStoppingGUISession` comes from
/// a failing stop (`stopFailsWith`), not from here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum AccessFailureStatus {
    /// `failedInstanceCreation`
    FailedInstanceCreation,
    /// `failedStartingGUISession`
    FailedStartingGuiSession,
}

impl AccessFailureStatus {
    /// Every value, as written on the wire.
    pub const ALL: [Self; 2] = [Self::FailedInstanceCreation, Self::FailedStartingGuiSession];

    /// The value as written on the wire and in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FailedInstanceCreation => "failedInstanceCreation",
            Self::FailedStartingGuiSession => "failedStartingGUISession",
        }
    }
}

impl From<AccessFailureStatus> for &'static str {
    fn from(status: AccessFailureStatus) -> Self {
        status.as_str()
    }
}

impl TryFrom<String> for AccessFailureStatus {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| {
                format!(
                    "accessFailure status {text:?} is not one of failedInstanceCreation, \
                     failedStartingGUISession (failedStoppingGUISession comes from stopFailsWith)"
                )
            })
    }
}

/// The exceptions Lightsail models for the simulated actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LightsailException {
    /// `AccessDeniedException`
    #[serde(rename = "AccessDeniedException")]
    AccessDenied,
    /// `AccountSetupInProgressException`
    #[serde(rename = "AccountSetupInProgressException")]
    AccountSetupInProgress,
    /// `InvalidInputException`
    #[serde(rename = "InvalidInputException")]
    InvalidInput,
    /// `NotFoundException`
    #[serde(rename = "NotFoundException")]
    NotFound,
    /// `OperationFailureException`
    #[serde(rename = "OperationFailureException")]
    OperationFailure,
    /// `RegionSetupInProgressException`
    #[serde(rename = "RegionSetupInProgressException")]
    RegionSetupInProgress,
    /// `ServiceException` (the only server fault, HTTP 500)
    #[serde(rename = "ServiceException")]
    Service,
    /// `UnauthenticatedException`
    #[serde(rename = "UnauthenticatedException")]
    Unauthenticated,
}

impl LightsailException {
    /// Every modelled exception.
    pub const ALL: [Self; 8] = [
        Self::AccessDenied,
        Self::AccountSetupInProgress,
        Self::InvalidInput,
        Self::NotFound,
        Self::OperationFailure,
        Self::RegionSetupInProgress,
        Self::Service,
        Self::Unauthenticated,
    ];

    /// The shape name, written as `__type` (e.g. `NotFoundException`).
    pub fn type_name(self) -> &'static str {
        match self {
            Self::AccessDenied => "AccessDeniedException",
            Self::AccountSetupInProgress => "AccountSetupInProgressException",
            Self::InvalidInput => "InvalidInputException",
            Self::NotFound => "NotFoundException",
            Self::OperationFailure => "OperationFailureException",
            Self::RegionSetupInProgress => "RegionSetupInProgressException",
            Self::Service => "ServiceException",
            Self::Unauthenticated => "UnauthenticatedException",
        }
    }

    /// The body's `code` member in the `code` error style: the shape name without `Exception`,
    /// which is what the Rust SDK then reports as the error code (e.g. `NotFound`).
    pub fn code(self) -> &'static str {
        let name = self.type_name();
        name.strip_suffix("Exception").unwrap_or(name)
    }

    /// HTTP status: `ServiceException` is a server fault, the rest are client errors.
    pub fn http_status(self) -> u16 {
        match self {
            Self::Service => 500,
            _ => 400,
        }
    }
}

/// Faults applied to every authenticated AWS call; replaceable at run time. The Lightsail
/// fields (all but [`sts`](Self::sts)) apply to Lightsail calls only; STS calls have their own,
/// [`StsFaults`]. camelCase in JSON, every field optional (omitted ones are off).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Faults {
    /// Added to every Lightsail call (text such as `"20ms"`).
    #[serde(with = "duration_text")]
    pub latency: Duration,
    /// A uniformly random extra delay in `[0, latency_jitter]` (text such as `"5ms"`).
    #[serde(with = "duration_text")]
    pub latency_jitter: Duration,
    /// Fraction (0..=1) of Lightsail calls that answer `ServiceException`.
    pub service_error_rate: f64,
    /// Fraction (0..=1) of Lightsail calls that answer `ThrottlingException`.
    pub throttle_rate: f64,
    /// Token bucket past which Lightsail calls answer `ThrottlingException`; none means
    /// unlimited.
    pub rate_limit: Option<RateLimit>,
    /// Faults of STS calls (`AssumeRole`, `GetCallerIdentity`): `{"unavailable": true}` makes
    /// STS down while Lightsail keeps answering. Off by default.
    pub sts: StsFaults,
}

impl Faults {
    /// No Lightsail faults, and `sts` for STS calls.
    pub fn sts_only(sts: StsFaults) -> Self {
        Self {
            sts,
            ..Self::default()
        }
    }

    /// Checks rates and the bucket.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, rate) in [
            ("service error rate", self.service_error_rate),
            ("throttle rate", self.throttle_rate),
        ] {
            check_fraction(name, rate)?;
        }
        self.sts.validate()?;
        if let Some(limit) = &self.rate_limit {
            if !(limit.requests_per_second.is_finite() && limit.requests_per_second > 0.0) {
                return Err(ConfigError::Invalid(format!(
                    "rate limit {} is not a positive number of requests per second",
                    limit.requests_per_second
                )));
            }
            if limit.burst == 0 {
                return Err(ConfigError::Invalid(
                    "rate burst must be at least 1".to_owned(),
                ));
            }
        }
        Ok(())
    }
}

fn check_fraction(name: &str, rate: f64) -> Result<(), ConfigError> {
    if (0.0..=1.0).contains(&rate) {
        Ok(())
    } else {
        Err(ConfigError::Invalid(format!(
            "{name} {rate} is not a fraction between 0 and 1"
        )))
    }
}

/// Faults of STS calls, the [`Faults::sts`] part; replaceable at run time. Checked on every
/// `AssumeRole` and `GetCallerIdentity` once its signature, action and version hold and before
/// it is acted on (its parameters are not looked at), and answered in STS's XML error shape; a
/// refused call is counted and logged with the code as its outcome. camelCase in JSON, every
/// field optional: `{"unavailable": false, "throttleRate": 0.0, "serviceErrorRate": 0.0}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct StsFaults {
    /// STS is down: every call answers HTTP 503 `ServiceUnavailable` (a server error the AWS
    /// SDK retries), until cleared.
    pub unavailable: bool,
    /// Fraction (0..=1) of calls that answer HTTP 400 `Throttling` ("Rate exceeded").
    pub throttle_rate: f64,
    /// Fraction (0..=1) of calls that answer HTTP 500 `InternalFailure`.
    pub service_error_rate: f64,
}

impl StsFaults {
    /// STS down: every call answers 503 `ServiceUnavailable`.
    pub fn unavailable() -> Self {
        Self {
            unavailable: true,
            ..Self::default()
        }
    }

    /// Checks the rates.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_fraction("STS throttle rate", self.throttle_rate)?;
        check_fraction("STS service error rate", self.service_error_rate)
    }
}

/// A token bucket: `burst` tokens, refilled at `requests_per_second`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// Refill rate.
    pub requests_per_second: f64,
    /// Bucket size: calls allowed back to back after a quiet spell.
    pub burst: u32,
}

impl RateLimit {
    /// A bucket of `burst` refilled at `requests_per_second`.
    pub fn new(requests_per_second: f64, burst: u32) -> Self {
        Self {
            requests_per_second,
            burst,
        }
    }
}

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid YAML/JSON of the expected shape.
    #[error("invalid config file {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's complaint, with line and column where it knows them.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("{0}")]
    Invalid(String),
}

/// The config file: `computers:` is a list of [`ComputerSpec`]s, `accounts:` a list of
/// [`AccountSpec`]s, `accountId:` the base account, `clockOffset:` a signed duration such as
/// `-2h`, `stsCredentialLifetime:` a duration such as `20s`, `instanceStartTime:` and
/// `instanceStopTime:` durations such as `2s`. YAML, or JSON when the file name
/// ends in `.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigFile {
    /// The inventory.
    #[serde(default)]
    pub computers: Vec<ComputerSpec>,
    /// [`SimConfig::account_id`]; `--account-id` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// [`SimConfig::accounts`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<AccountSpec>,
    /// [`SimConfig::sts_credential_lifetime`]; `--sts-credential-lifetime` overrides it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_duration_text"
    )]
    pub sts_credential_lifetime: Option<Duration>,
    /// [`SimConfig::clock_offset`]; `--clock-offset` overrides it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_signed_duration_text"
    )]
    pub clock_offset: Option<SignedDuration>,
    /// [`SimConfig::instance_start_time`]; `--instance-start-time` overrides it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_duration_text"
    )]
    pub instance_start_time: Option<Duration>,
    /// [`SimConfig::instance_stop_time`]; `--instance-stop-time` overrides it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_duration_text"
    )]
    pub instance_stop_time: Option<Duration>,
}

impl ConfigFile {
    /// Reads and checks a config file; errors name the file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let parse_error = |message: String| ConfigError::Parse {
            path: path.to_owned(),
            message,
        };
        let is_json = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
        let file: Self = if is_json {
            serde_json::from_str(&text).map_err(|e| parse_error(e.to_string()))?
        } else {
            serde_yaml::from_str(&text).map_err(|e| parse_error(e.to_string()))?
        };
        if let Some(offset) = file.clock_offset {
            validate_clock_offset(offset).map_err(|e| parse_error(e.to_string()))?;
        }
        if let Some(lifetime) = file.sts_credential_lifetime {
            validate_sts_credential_lifetime(lifetime).map_err(|e| parse_error(e.to_string()))?;
        }
        for (field, time) in [
            ("instanceStartTime", file.instance_start_time),
            ("instanceStopTime", file.instance_stop_time),
        ] {
            if let Some(time) = time {
                validate_instance_time(field, time).map_err(|e| parse_error(e.to_string()))?;
            }
        }
        if let Some(id) = &file.account_id
            && !is_valid_account_id(id)
        {
            return Err(parse_error(format!("accountId {id:?} is not 12 digits")));
        }
        let mut seen = std::collections::HashSet::new();
        for computer in &file.computers {
            computer
                .validate()
                .map_err(|e| parse_error(e.to_string()))?;
            if !seen.insert(computer.name.as_str()) {
                return Err(parse_error(format!(
                    "computer {:?} is defined more than once",
                    computer.name
                )));
            }
        }
        let mut ids = std::collections::HashSet::new();
        for account in &file.accounts {
            account.validate().map_err(|e| parse_error(e.to_string()))?;
            if !ids.insert(account.id.as_str()) {
                return Err(parse_error(format!(
                    "account {} is defined more than once",
                    account.id
                )));
            }
        }
        Ok(file)
    }

    /// Checks that the roles' trusted accounts and the computers' accounts are known, given the
    /// base account in force (the file's `accountId` may be overridden by a flag); errors name
    /// the file.
    pub fn check_references(&self, path: &Path, base_account: &str) -> Result<(), ConfigError> {
        check_accounts(base_account, &self.accounts, &self.computers).map_err(|e| {
            ConfigError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            }
        })
    }
}

/// Parses durations such as `500ms`, `2s`, `1.5m`, `1h`, `250us` or a bare `0`.
pub fn parse_duration(text: &str) -> Result<Duration, ConfigError> {
    let invalid = || {
        ConfigError::Invalid(format!(
            "invalid duration {text:?}: expected a number followed by ns, us, ms, s, m or h \
             (e.g. 500ms, 2s, 1h)"
        ))
    };
    let trimmed = text.trim();
    if trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(invalid)?;
    let (number, unit) = trimmed.split_at(split);
    let value: f64 = number.parse().map_err(|_| invalid())?;
    let seconds_per_unit = match unit {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(invalid()),
    };
    Duration::try_from_secs_f64(value * seconds_per_unit).map_err(|_| invalid())
}

/// Parses signed durations: [`parse_duration`]'s forms with an optional `-` or `+` (`-2h`).
pub fn parse_signed_duration(text: &str) -> Result<SignedDuration, ConfigError> {
    let trimmed = text.trim();
    let (negative, magnitude) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    let invalid = || {
        ConfigError::Invalid(format!(
            "invalid signed duration {text:?}: expected an optional - or + and a number followed \
             by ns, us, ms, s, m or h (e.g. -2h, 90s)"
        ))
    };
    if magnitude.starts_with(|c: char| c == '-' || c == '+' || c.is_whitespace()) {
        return Err(invalid());
    }
    let magnitude = SignedDuration::try_from(parse_duration(magnitude).map_err(|_| invalid())?)
        .map_err(|_| invalid())?;
    Ok(if negative { -magnitude } else { magnitude })
}

/// Writes a signed duration as [`format_duration`] does, with `-` when negative (`-2h`).
pub fn format_signed_duration(duration: SignedDuration) -> String {
    let sign = if duration.is_negative() { "-" } else { "" };
    format!("{sign}{}", format_duration(duration.unsigned_abs()))
}

/// Checks a clock offset: whole milliseconds (the resolution of Lightsail timestamps, so
/// nothing is silently dropped) and within [`MAX_CLOCK_OFFSET`].
pub fn validate_clock_offset(offset: SignedDuration) -> Result<(), ConfigError> {
    if offset.abs() > MAX_CLOCK_OFFSET {
        return Err(ConfigError::Invalid(format!(
            "clock offset {} is more than {} either way",
            format_signed_duration(offset),
            format_signed_duration(MAX_CLOCK_OFFSET)
        )));
    }
    if offset.subsec_nanos() % 1_000_000 != 0 {
        return Err(ConfigError::Invalid(format!(
            "clock offset {} is not a whole number of milliseconds",
            format_signed_duration(offset)
        )));
    }
    Ok(())
}

/// Writes a duration in the largest unit that represents it exactly (`1h`, `1500ms`).
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    const UNITS: [(u128, &str); 6] = [
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
        (1, "ns"),
    ];
    UNITS
        .iter()
        .find(|(size, _)| nanos.is_multiple_of(*size))
        .map(|(size, unit)| format!("{}{unit}", nanos / size))
        .unwrap_or_else(|| format!("{nanos}ns"))
}

/// Serde adapter writing durations as text (`"500ms"`).
pub(crate) mod duration_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_duration(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// Serde adapter writing signed durations as text (`"-2h"`).
pub(crate) mod signed_duration_text {
    use jiff::SignedDuration;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        value: &SignedDuration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_signed_duration(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<SignedDuration, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_signed_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// [`duration_text`] for an optional field; `null` is none.
pub(crate) mod optional_duration_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => super::duration_text::serialize(value, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| super::parse_duration(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// [`signed_duration_text`] for an optional field.
mod optional_signed_duration_text {
    use jiff::SignedDuration;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        value: &Option<SignedDuration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => super::signed_duration_text::serialize(value, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SignedDuration>, D::Error> {
        super::signed_duration_text::deserialize(deserializer).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_follow_the_lightsail_pattern() {
        for good in ["ab", "vm-1", "a_b", "A-9-z"] {
            assert!(is_valid_resource_name(good), "{good}");
        }
        for bad in ["", "a", "-ab", "ab-", "a b", "vm.1", "vé"] {
            assert!(!is_valid_resource_name(bad), "{bad}");
        }
    }

    #[test]
    fn sts_faults_are_optional_in_json_off_by_default_and_validated() {
        let parse = |json: &str| serde_json::from_str::<Faults>(json).map_err(|e| e.to_string());
        // Configs written before the STS faults existed read as before, STS faults off.
        let older =
            parse(r#"{"throttleRate": 0.5, "rateLimit": {"requestsPerSecond": 5, "burst": 2}}"#);
        assert_eq!(
            older,
            Ok(Faults {
                throttle_rate: 0.5,
                rate_limit: Some(RateLimit::new(5.0, 2)),
                ..Faults::default()
            })
        );
        assert_eq!(parse("{}").map(|f| f.sts), Ok(StsFaults::default()));
        assert_eq!(
            parse(r#"{"sts": {"unavailable": true}}"#),
            Ok(Faults::sts_only(StsFaults::unavailable()))
        );
        assert_eq!(
            parse(r#"{"sts": {"throttleRate": 0.25, "serviceErrorRate": 1}}"#).map(|f| f.sts),
            Ok(StsFaults {
                unavailable: false,
                throttle_rate: 0.25,
                service_error_rate: 1.0,
            })
        );
        // Read back whole, camelCase.
        let faults = Faults::sts_only(StsFaults::unavailable());
        let json = serde_json::to_value(&faults).ok();
        assert_eq!(
            json.as_ref().map(|j| j["sts"].clone()),
            Some(
                serde_json::json!({"unavailable": true, "throttleRate": 0.0, "serviceErrorRate": 0.0})
            )
        );
        assert_eq!(
            json.and_then(|j| serde_json::from_value::<Faults>(j).ok()),
            Some(faults)
        );
        for (json, complaint) in [
            (r#"{"sts": {"down": true}}"#, "unknown field `down`"),
            (
                r#"{"sts": {"throttle_rate": 0.5}}"#,
                "unknown field `throttle_rate`",
            ),
            (r#"{"sts": {"unavailable": "yes"}}"#, "invalid type"),
            (r#"{"sts": true}"#, "invalid type"),
            (
                r#"{"stsUnavailable": true}"#,
                "unknown field `stsUnavailable`",
            ),
        ] {
            let parsed = parse(json);
            assert!(
                parsed.as_ref().is_err_and(|e| e.contains(complaint)),
                "{json}: {parsed:?}"
            );
        }

        assert!(StsFaults::unavailable().validate().is_ok());
        for (sts, complaint) in [
            (
                StsFaults {
                    throttle_rate: 1.5,
                    ..StsFaults::default()
                },
                "STS throttle rate 1.5 is not a fraction between 0 and 1",
            ),
            (
                StsFaults {
                    throttle_rate: f64::NAN,
                    ..StsFaults::default()
                },
                "STS throttle rate NaN is not a fraction",
            ),
            (
                StsFaults {
                    unavailable: true,
                    service_error_rate: -0.1,
                    ..StsFaults::default()
                },
                "STS service error rate -0.1 is not a fraction between 0 and 1",
            ),
        ] {
            for error in [
                sts.validate().map_err(|e| e.to_string()),
                Faults::sts_only(sts.clone())
                    .validate()
                    .map_err(|e| e.to_string()),
                SimConfig::default()
                    .with_faults(Faults::sts_only(sts.clone()))
                    .validate()
                    .map_err(|e| e.to_string()),
            ] {
                assert!(
                    error.as_ref().is_err_and(|e| e.contains(complaint)),
                    "{sts:?}: {error:?}"
                );
            }
        }
        // The Lightsail rates keep their own names.
        let lightsail = Faults {
            throttle_rate: 2.0,
            ..Faults::default()
        };
        assert!(
            lightsail
                .validate()
                .is_err_and(|e| e.to_string().starts_with("throttle rate 2 "))
        );
    }

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(
            parse_duration("500ms").ok(),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_duration("1.5s").ok(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_duration("1h").ok(), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0").ok(), Some(Duration::ZERO));
        for bad in ["", "5", "ms", "1d", "-1s", "1..2s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn signed_durations_parse_print_and_validate() {
        for (text, millis) in [
            ("-2h", -7_200_000),
            ("+90s", 90_000),
            ("1.5m", 90_000),
            ("-250ms", -250),
            ("0", 0),
        ] {
            let parsed = parse_signed_duration(text).ok();
            assert_eq!(parsed, Some(SignedDuration::from_millis(millis)), "{text}");
        }
        for bad in ["", "-", "--2h", "-+2h", "2", "- 2h", "2d"] {
            assert!(parse_signed_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(
            format_signed_duration(SignedDuration::from_hours(-2)),
            "-2h"
        );
        assert_eq!(
            format_signed_duration(SignedDuration::from_millis(1500)),
            "1500ms"
        );
        assert_eq!(format_signed_duration(SignedDuration::ZERO), "0s");

        assert!(validate_clock_offset(-MAX_CLOCK_OFFSET).is_ok());
        assert!(validate_clock_offset(MAX_CLOCK_OFFSET + SignedDuration::from_millis(1)).is_err());
        assert!(validate_clock_offset(SignedDuration::from_micros(1500)).is_err());
        let config = SimConfig::default().with_clock_offset(SignedDuration::from_hours(-9000));
        assert!(config.validate().is_err());
    }

    #[test]
    fn flag_computers_take_an_optional_region() {
        let plain = ComputerSpec::parse_flag("vm-1").ok();
        assert_eq!(plain.map(|c| c.region), Some(DEFAULT_REGION.to_owned()));
        let placed = ComputerSpec::parse_flag("vm-2@eu-west-1").ok();
        assert_eq!(placed.map(|c| c.region), Some("eu-west-1".to_owned()));
        assert!(ComputerSpec::parse_flag("vm-3@").is_err());
        assert!(ComputerSpec::parse_flag("-x@us-east-1").is_err());
    }

    /// A computer from JSON, validated as the control API does; errors as text.
    fn computer_from_json(json: &str) -> Result<ComputerSpec, String> {
        let spec: ComputerSpec = serde_json::from_str(json).map_err(|e| e.to_string())?;
        spec.validate().map_err(|e| e.to_string())?;
        Ok(spec)
    }

    #[test]
    fn access_knobs_default_to_the_plain_lifecycle() {
        let plain = computer_from_json(r#"{"name": "vm-1"}"#);
        assert_eq!(plain, Ok(ComputerSpec::new("vm-1")));
        let plain = ComputerSpec::new("vm-1");
        assert_eq!(plain.access_setup_calls, 0);
        assert_eq!(plain.access_failure, None);
        let json = serde_json::to_value(&plain).ok();
        assert_eq!(
            json.as_ref().map(|j| j["accessSetupCalls"].clone()),
            Some(serde_json::json!(0))
        );
        assert_eq!(
            json.as_ref().and_then(|j| j.get("accessFailure")),
            None,
            "no failure is left out"
        );
    }

    #[test]
    fn access_knobs_parse_from_json_and_yaml_and_read_back() {
        let spec = computer_from_json(
            r#"{"name": "vm-1", "accessSetupCalls": 4,
                "accessFailure": {"status": "failedInstanceCreation", "reason": "no capacity"}}"#,
        );
        let expected = ComputerSpec::new("vm-1")
            .access_setup_calls(4)
            .access_failure(AccessFailureStatus::FailedInstanceCreation, "no capacity");
        assert_eq!(spec, Ok(expected.clone()));
        let yaml = "name: vm-1\naccessSetupCalls: 4\naccessFailure: {status: failedInstanceCreation, reason: no capacity}\n";
        let from_yaml: Result<ComputerSpec, String> =
            serde_yaml::from_str(yaml).map_err(|e| e.to_string());
        assert_eq!(from_yaml, Ok(expected.clone()));
        let gui = computer_from_json(
            r#"{"name": "vm-2", "accessFailure": {"status": "failedStartingGUISession", "reason": "dcv down"}}"#,
        );
        assert_eq!(
            gui.ok().and_then(|s| s.access_failure).map(|f| f.status),
            Some(AccessFailureStatus::FailedStartingGuiSession)
        );
        let json = serde_json::to_value(&expected).ok();
        assert_eq!(
            json.as_ref().map(|j| j["accessFailure"].clone()),
            Some(serde_json::json!({"status": "failedInstanceCreation", "reason": "no capacity"}))
        );
        let back: Option<ComputerSpec> = json.and_then(|j| serde_json::from_value(j).ok());
        assert_eq!(back, Some(expected));
        assert_eq!(
            computer_from_json(r#"{"name": "vm-1", "accessSetupCalls": 99}"#)
                .map(|s| s.access_setup_calls),
            Ok(MAX_ACCESS_SETUP_CALLS)
        );
    }

    #[test]
    fn bad_access_knobs_are_refused_with_a_clear_error() {
        for (json, complaint) in [
            (
                r#"{"name": "vm-1", "accessFailure": {"status": "stopped", "reason": "x"}}"#,
                "accessFailure status \"stopped\" is not one of failedInstanceCreation, failedStartingGUISession",
            ),
            (
                r#"{"name": "vm-1", "accessFailure": {"status": "failedStoppingGUISession", "reason": "x"}}"#,
                "comes from stopFailsWith",
            ),
            (
                r#"{"name": "vm-1", "accessFailure": {"status": "FailedInstanceCreation", "reason": "x"}}"#,
                "is not one of",
            ),
            (
                r#"{"name": "vm-1", "accessFailure": {"status": "failedInstanceCreation"}}"#,
                "missing field `reason`",
            ),
            (
                r#"{"name": "vm-1", "accessFailure": {"status": "failedInstanceCreation", "reason": " "}}"#,
                "needs a non-empty reason",
            ),
            (
                r#"{"name": "vm-1", "accessFailure": {"status": "failedInstanceCreation", "reason": "x", "code": 1}}"#,
                "unknown field `code`",
            ),
            (
                r#"{"name": "vm-1", "accessSetupCalls": 100}"#,
                "accessSetupCalls 100 of computer \"vm-1\" is more than 99",
            ),
            (
                r#"{"name": "vm-1", "accessSetupCalls": -1}"#,
                "invalid value",
            ),
            (
                r#"{"name": "vm-1", "accessSetupCalls": "3"}"#,
                "invalid type",
            ),
            (
                r#"{"name": "vm-1", "accessSetUpCalls": 3}"#,
                "unknown field",
            ),
        ] {
            match computer_from_json(json) {
                Ok(spec) => panic!("{json} was accepted: {spec:?}"),
                Err(error) => assert!(error.contains(complaint), "{json}: {error}"),
            }
        }
    }

    #[test]
    fn computer_power_knobs_parse_and_bad_ones_are_refused() {
        let json = r#"{"name": "vm-1", "state": "stopped", "startingTime": "200ms",
            "stoppingTime": "1s", "sessionWhenNotRunning": "failedOperation",
            "meterWindows": [{"start": "2026-03-02T08:00:00Z", "end": "2026-03-02T18:00:00Z"}],
            "blueprintId": "lfr_ubuntu"}"#;
        let spec: Result<ComputerSpec, _> = serde_json::from_str(json);
        let Ok(spec) = spec else {
            panic!("{spec:?}");
        };
        assert!(spec.validate().is_ok());
        let expected = ComputerSpec::new("vm-1")
            .stopped()
            .starting_time(Duration::from_millis(200))
            .stopping_time(Duration::from_secs(1))
            .session_when_not_running(SessionWhenNotRunning::FailedOperation)
            .meter_window(
                jiff::Timestamp::from_second(1_772_438_400).unwrap_or_default(),
                jiff::Timestamp::from_second(1_772_474_400).unwrap_or_default(),
            )
            .blueprint_id("lfr_ubuntu");
        assert_eq!(spec, expected);
        // The defaults: running, simulator-wide times, an error when not running.
        let plain: Result<ComputerSpec, _> = serde_json::from_str(r#"{"name": "vm-2"}"#);
        assert_eq!(plain.ok(), Some(ComputerSpec::new("vm-2")));
        assert_eq!(
            ComputerSpec::new("vm-2").session_when_not_running,
            SessionWhenNotRunning::Error
        );
        for (json, complaint) in [
            (
                r#"{"name": "vm-1", "state": "asleep"}"#,
                "unknown variant `asleep`",
            ),
            (
                r#"{"name": "vm-1", "sessionWhenNotRunning": "ignore"}"#,
                "unknown variant `ignore`",
            ),
            (
                r#"{"name": "vm-1", "meterWindows": [{"start": "2026-03-02T18:00:00Z", "end": "2026-03-02T08:00:00Z"}]}"#,
                "does not end after it starts",
            ),
            (
                r#"{"name": "vm-1", "startingTime": "48h"}"#,
                "startingTime of computer \"vm-1\" 48h is more than 24h",
            ),
            (
                r#"{"name": "vm-1", "stoppingTime": "1500us"}"#,
                "not a whole number of milliseconds",
            ),
        ] {
            let checked = serde_json::from_str::<ComputerSpec>(json)
                .map_err(|e| e.to_string())
                .and_then(|spec| spec.validate().map_err(|e| e.to_string()));
            assert!(
                checked.as_ref().is_err_and(|e| e.contains(complaint)),
                "{json}: {checked:?}"
            );
        }
    }

    #[test]
    fn config_files_carry_the_access_knobs_and_name_the_file_when_bad() {
        let Ok(dir) = tempfile::tempdir() else {
            panic!("no temporary directory");
        };
        let good = dir.path().join("good.yaml");
        let yaml = "computers:\n  - name: vm-1\n    accessSetupCalls: 2\n    accessFailure: {status: failedStartingGUISession, reason: dcv down}\n";
        assert!(std::fs::write(&good, yaml).is_ok());
        let loaded = ConfigFile::load(&good).map_err(|e| e.to_string());
        assert_eq!(
            loaded.map(|f| f.computers),
            Ok(vec![
                ComputerSpec::new("vm-1")
                    .access_setup_calls(2)
                    .access_failure(AccessFailureStatus::FailedStartingGuiSession, "dcv down")
            ])
        );
        for (name, text, complaint) in [
            (
                "status.yaml",
                "computers:\n  - name: vm-1\n    accessFailure: {status: started, reason: x}\n",
                "is not one of",
            ),
            (
                "calls.json",
                r#"{"computers": [{"name": "vm-1", "accessSetupCalls": 500}]}"#,
                "is more than 99",
            ),
        ] {
            let path = dir.path().join(name);
            assert!(std::fs::write(&path, text).is_ok());
            match ConfigFile::load(&path) {
                Ok(file) => panic!("{name} was accepted: {file:?}"),
                Err(error) => {
                    let error = error.to_string();
                    assert!(error.contains(complaint), "{name}: {error}");
                    assert!(error.contains(name), "{name}: {error}");
                }
            }
        }
        let config =
            SimConfig::default().with_computer(ComputerSpec::new("vm-1").access_setup_calls(100));
        assert!(config.validate().is_err());
    }

    fn config_error(config: &SimConfig) -> String {
        match config.validate() {
            Ok(()) => panic!("accepted: {config:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn accounts_and_roles_parse_with_defaults_and_read_back() {
        let yaml = "id: \"111122223333\"\nroles:\n  - name: gui\n    trustedAccounts: [\"000000000000\"]\n  - name: ops.admin@x\n    trustedAccounts: []\n    externalId: \"ext:1/2\"\n    maxSessionDuration: 12h\n";
        let parsed: Result<AccountSpec, String> =
            serde_yaml::from_str(yaml).map_err(|e| e.to_string());
        let expected = AccountSpec::new("111122223333")
            .with_role(RoleSpec::new("gui").trusting(DEFAULT_ACCOUNT_ID))
            .with_role(
                RoleSpec::new("ops.admin@x")
                    .with_external_id("ext:1/2")
                    .with_max_session_duration(Duration::from_secs(12 * 3600)),
            );
        assert_eq!(parsed, Ok(expected.clone()));
        assert_eq!(
            expected.roles[0].max_session_duration,
            DEFAULT_MAX_SESSION_DURATION
        );
        let json = serde_json::to_value(&expected).ok();
        assert_eq!(
            json.clone(),
            Some(serde_json::json!({"id": "111122223333", "roles": [
                {"name": "gui", "trustedAccounts": ["000000000000"], "maxSessionDuration": "1h"},
                {"name": "ops.admin@x", "trustedAccounts": [], "externalId": "ext:1/2",
                 "maxSessionDuration": "12h"},
            ]}))
        );
        let back: Option<AccountSpec> = json.and_then(|j| serde_json::from_value(j).ok());
        assert_eq!(back, Some(expected.clone()));

        let config = SimConfig::default()
            .with_account(expected)
            .with_computer(ComputerSpec::new("vm-a").in_account("111122223333"))
            .with_computer(ComputerSpec::new("vm-b").in_account(DEFAULT_ACCOUNT_ID))
            .with_sts_credential_lifetime(Duration::from_secs(20));
        assert!(config.validate().is_ok(), "{:?}", config.validate());
        assert_eq!(config.account_id, DEFAULT_ACCOUNT_ID);
        let computer: Result<ComputerSpec, String> =
            computer_from_json(r#"{"name": "vm-a", "account": "111122223333"}"#);
        assert_eq!(
            computer,
            Ok(ComputerSpec::new("vm-a").in_account("111122223333"))
        );
        assert_eq!(
            role_arn("111122223333", "gui"),
            "arn:aws:iam::111122223333:role/gui"
        );
    }

    #[test]
    fn bad_accounts_roles_and_knobs_are_refused_with_clear_errors() {
        let other = || AccountSpec::new("111122223333");
        let gui = || RoleSpec::new("gui").trusting(DEFAULT_ACCOUNT_ID);
        for (config, complaint) in [
            (
                SimConfig::default().with_account_id("12345"),
                "base account id \"12345\" is not 12 digits",
            ),
            (
                SimConfig::default().with_account(AccountSpec::new("1111-2222-3333")),
                "account id \"1111-2222-3333\" is not 12 digits",
            ),
            (
                SimConfig::default()
                    .with_account(other())
                    .with_account(other()),
                "account 111122223333 is defined more than once",
            ),
            (
                SimConfig::default().with_account(other().with_role(RoleSpec::new("a/b"))),
                "role name \"a/b\" in account 111122223333 does not match [\\w+=,.@-]{1,64}",
            ),
            (
                SimConfig::default().with_account(other().with_role(RoleSpec::new("x".repeat(65)))),
                "does not match",
            ),
            (
                SimConfig::default().with_account(other().with_role(gui()).with_role(gui())),
                "role \"gui\" is defined more than once in account 111122223333",
            ),
            (
                SimConfig::default()
                    .with_account(other().with_role(RoleSpec::new("gui").trusting("999999999999"))),
                "role \"gui\" of account 111122223333 trusts account 999999999999, which is \
                 neither the base account (000000000000) nor one of the accounts configured",
            ),
            (
                SimConfig::default()
                    .with_account(other().with_role(RoleSpec::new("gui").trusting("99"))),
                "trusted account \"99\" of role \"gui\" in account 111122223333 is not 12 digits",
            ),
            (
                SimConfig::default().with_account(other().with_role(gui().with_external_id("x"))),
                "externalId of role \"gui\" in account 111122223333 is not 2 to 1224 characters",
            ),
            (
                SimConfig::default().with_account(
                    other().with_role(gui().with_max_session_duration(Duration::from_secs(1800))),
                ),
                "maxSessionDuration 30m of role \"gui\" in account 111122223333 is not a whole \
                 number of seconds between 1h and 12h",
            ),
            (
                SimConfig::default()
                    .with_account(other().with_role(
                        gui().with_max_session_duration(Duration::from_secs(13 * 3600)),
                    )),
                "between 1h and 12h",
            ),
            (
                SimConfig::default()
                    .with_computer(ComputerSpec::new("vm-1").in_account("444455556666")),
                "computer \"vm-1\" is in account 444455556666, which is neither the base account \
                 (000000000000) nor one of the accounts configured",
            ),
            (
                SimConfig::default().with_computer(ComputerSpec::new("vm-1").in_account("4444")),
                "account \"4444\" of computer \"vm-1\" is not 12 digits",
            ),
            (
                SimConfig::default().with_sts_credential_lifetime(Duration::ZERO),
                "STS credential lifetime 0s is not a whole number of seconds between 1s and 12h",
            ),
            (
                SimConfig::default().with_sts_credential_lifetime(Duration::from_millis(1500)),
                "STS credential lifetime 1500ms is not",
            ),
            (
                SimConfig::default().with_sts_credential_lifetime(Duration::from_secs(13 * 3600)),
                "STS credential lifetime 13h is not",
            ),
        ] {
            let error = config_error(&config);
            assert!(error.contains(complaint), "{error}\n  wanted: {complaint}");
        }
        // A role of the base account, and one trusting its own account, are fine.
        let config = SimConfig::default()
            .with_account(AccountSpec::new(DEFAULT_ACCOUNT_ID).with_role(gui()))
            .with_account(other().with_role(RoleSpec::new("self").trusting("111122223333")));
        assert!(config.validate().is_ok(), "{:?}", config.validate());

        for (json, complaint) in [
            (
                r#"{"id": "111122223333", "roles": [{"name": "gui"}]}"#,
                "missing field `trustedAccounts`",
            ),
            (
                r#"{"id": "111122223333", "roles": [{"name": "gui", "trustedAccounts": [], "maxSessionDuration": "long"}]}"#,
                "invalid duration",
            ),
            (
                r#"{"id": "111122223333", "roles": [{"name": "gui", "trustedAccounts": [], "externalID": "x1"}]}"#,
                "unknown field `externalID`",
            ),
            (r#"{"id": 111122223333}"#, "invalid type"),
            (
                r#"{"id": "111122223333", "role": []}"#,
                "unknown field `role`",
            ),
        ] {
            let parsed: Result<AccountSpec, String> =
                serde_json::from_str(json).map_err(|e| e.to_string());
            match parsed {
                Ok(account) => panic!("{json} was accepted: {account:?}"),
                Err(error) => assert!(error.contains(complaint), "{json}: {error}"),
            }
        }
    }

    #[test]
    fn config_files_carry_accounts_and_name_the_file_when_bad() {
        let Ok(dir) = tempfile::tempdir() else {
            panic!("no temporary directory");
        };
        let good = dir.path().join("accounts.yaml");
        let yaml = "accountId: \"123456789012\"\nstsCredentialLifetime: 20s\naccounts:\n  - id: \"111122223333\"\n    roles:\n      - {name: gui, trustedAccounts: [\"123456789012\"], externalId: ext-1}\ncomputers:\n  - {name: vm-1, account: \"111122223333\"}\n";
        assert!(std::fs::write(&good, yaml).is_ok());
        let loaded = ConfigFile::load(&good).map_err(|e| e.to_string());
        let Ok(file) = loaded else {
            panic!("{loaded:?}");
        };
        assert_eq!(file.account_id.as_deref(), Some("123456789012"));
        assert_eq!(file.sts_credential_lifetime, Some(Duration::from_secs(20)));
        assert_eq!(file.accounts.len(), 1);
        assert!(file.check_references(&good, "123456789012").is_ok());
        // With another base account the role trusts a stranger: the error names the file.
        match file.check_references(&good, DEFAULT_ACCOUNT_ID) {
            Ok(()) => panic!("a stranger was trusted"),
            Err(error) => {
                let error = error.to_string();
                assert!(error.contains("trusts account 123456789012"), "{error}");
                assert!(error.contains("accounts.yaml"), "{error}");
            }
        }
        for (name, text, complaint) in [
            (
                "id.yaml",
                "accountId: \"abc\"\n",
                "accountId \"abc\" is not 12 digits",
            ),
            (
                "life.yaml",
                "stsCredentialLifetime: 0\n",
                "STS credential lifetime 0s",
            ),
            (
                "twice.json",
                r#"{"accounts": [{"id": "111122223333"}, {"id": "111122223333"}]}"#,
                "account 111122223333 is defined more than once",
            ),
            (
                "role.yaml",
                "accounts:\n  - id: \"111122223333\"\n    roles: [{name: \"a b\", trustedAccounts: []}]\n",
                "does not match",
            ),
            (
                "computer.yaml",
                "computers:\n  - {name: vm-1, account: \"12\"}\n",
                "account \"12\" of computer \"vm-1\" is not 12 digits",
            ),
        ] {
            let path = dir.path().join(name);
            assert!(std::fs::write(&path, text).is_ok());
            match ConfigFile::load(&path) {
                Ok(file) => panic!("{name} was accepted: {file:?}"),
                Err(error) => {
                    let error = error.to_string();
                    assert!(error.contains(complaint), "{name}: {error}");
                    assert!(error.contains(name), "{name}: {error}");
                }
            }
        }
        // Unquoted ids read as written, leading zeros and all.
        let unquoted = dir.path().join("unquoted.yaml");
        let yaml = "accountId: 000000000000\naccounts:\n  - id: 011122223333\n    roles: [{name: gui, trustedAccounts: [000000000000]}]\n";
        assert!(std::fs::write(&unquoted, yaml).is_ok());
        let loaded = ConfigFile::load(&unquoted).map_err(|e| e.to_string());
        assert_eq!(
            loaded.map(|f| (f.account_id, f.accounts)),
            Ok((
                Some(DEFAULT_ACCOUNT_ID.to_owned()),
                vec![
                    AccountSpec::new("011122223333")
                        .with_role(RoleSpec::new("gui").trusting(DEFAULT_ACCOUNT_ID))
                ]
            ))
        );
        let null = dir.path().join("null.yaml");
        assert!(std::fs::write(&null, "stsCredentialLifetime: null\n").is_ok());
        assert_eq!(
            ConfigFile::load(&null)
                .ok()
                .map(|f| f.sts_credential_lifetime),
            Some(None)
        );
    }

    /// The trust policy of docs/helm-and-gitops.md ("Other AWS accounts").
    fn documented_trust_policy() -> serde_json::Value {
        serde_json::json!({
          "Version": "2012-10-17",
          "Statement": [{
            "Effect": "Allow",
            "Principal": { "AWS": "arn:aws:iam::123456789012:role/lightsail-gui-operator" },
            "Action": "sts:AssumeRole",
            "Condition": { "StringEquals": { "sts:ExternalId": "lab-2026-physics" } }
          }]
        })
    }

    #[test]
    fn roles_take_a_trust_policy_as_written_and_read_it_back() {
        let yaml = "id: \"111122223333\"\nroles:\n  - name: lightsail-gui-sessions\n    maxSessionDuration: 2h\n    trustPolicy:\n      Version: \"2012-10-17\"\n      Statement:\n        - Effect: Allow\n          Principal: {AWS: \"arn:aws:iam::123456789012:role/lightsail-gui-operator\"}\n          Action: sts:AssumeRole\n          Condition: {StringEquals: {\"sts:ExternalId\": lab-2026-physics}}\n";
        let parsed: Result<AccountSpec, String> =
            serde_yaml::from_str(yaml).map_err(|e| e.to_string());
        let expected = AccountSpec::new("111122223333").with_role(
            RoleSpec::new("lightsail-gui-sessions")
                .with_trust_policy(documented_trust_policy())
                .with_max_session_duration(Duration::from_secs(7200)),
        );
        assert_eq!(parsed, Ok(expected.clone()));
        let json = serde_json::to_value(&expected).ok();
        assert_eq!(
            json.clone(),
            Some(serde_json::json!({"id": "111122223333", "roles": [{
                "name": "lightsail-gui-sessions",
                "trustPolicy": documented_trust_policy(),
                "maxSessionDuration": "2h"}]}))
        );
        let back: Option<AccountSpec> = json.and_then(|j| serde_json::from_value(j).ok());
        assert_eq!(back, Some(expected.clone()));
        // The trusted principals' accounts need not be configured: a policy may name anyone.
        let config = SimConfig::default().with_account(expected);
        assert!(config.validate().is_ok(), "{:?}", config.validate());
    }

    #[test]
    fn bad_trust_policies_and_mixed_forms_are_refused_naming_the_role() {
        let other = |role: RoleSpec| {
            SimConfig::default().with_account(AccountSpec::new("111122223333").with_role(role))
        };
        let with_policy =
            |policy: serde_json::Value| other(RoleSpec::new("gui").with_trust_policy(policy));
        let statement = |statement: serde_json::Value| serde_json::json!({"Version": "2012-10-17", "Statement": [statement]});
        for (config, complaint) in [
            (
                with_policy(statement(
                    serde_json::json!({"Effect": "Allwo", "Principal": "*", "Action": "sts:AssumeRole"}),
                )),
                "trustPolicy of role \"gui\" in account 111122223333: Statement[0]: unknown Effect \"Allwo\"",
            ),
            (
                with_policy(statement(
                    serde_json::json!({"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole",
                    "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2026-01-01T00:00:00Z"}}}),
                )),
                "trustPolicy of role \"gui\" in account 111122223333: Statement[0]: unsupported condition operator \"DateGreaterThan\"",
            ),
            (
                with_policy(statement(
                    serde_json::json!({"Effect": "Allow", "Principal": {"AWS": "111122223333:root"}, "Action": "sts:AssumeRole"}),
                )),
                "trustPolicy of role \"gui\" in account 111122223333: Statement[0]: malformed AWS principal \"111122223333:root\"",
            ),
            (
                with_policy(serde_json::json!(["not", "a", "policy"])),
                "trustPolicy of role \"gui\" in account 111122223333: [\"not\",\"a\",\"policy\"] is not a JSON object",
            ),
            (
                other(
                    RoleSpec::new("gui")
                        .trusting(DEFAULT_ACCOUNT_ID)
                        .with_trust_policy(documented_trust_policy()),
                ),
                "role \"gui\" has a trustPolicy and trustedAccounts or externalId: give one form only",
            ),
            (
                other(
                    RoleSpec::new("gui")
                        .with_external_id("x1")
                        .with_trust_policy(documented_trust_policy()),
                ),
                "give one form only",
            ),
        ] {
            let error = config_error(&config);
            assert!(error.contains(complaint), "{error}\n  wanted: {complaint}");
        }
        for (json, complaint) in [
            (
                r#"{"name": "gui"}"#,
                "missing field `trustedAccounts` (or `trustPolicy`) in role \"gui\"",
            ),
            (
                r#"{"name": "gui", "trustedAccounts": [], "trustPolicy": {"Statement": []}}"#,
                "role \"gui\" has a trustPolicy and trustedAccounts or externalId",
            ),
            (
                r#"{"name": "gui", "externalId": "x1", "trustPolicy": {"Statement": []}}"#,
                "give one form only",
            ),
            (
                r#"{"name": "gui", "trustpolicy": {}}"#,
                "unknown field `trustpolicy`",
            ),
        ] {
            let parsed: Result<RoleSpec, String> =
                serde_json::from_str(json).map_err(|e| e.to_string());
            match parsed {
                Ok(role) => panic!("{json} was accepted: {role:?}"),
                Err(error) => assert!(error.contains(complaint), "{json}: {error}"),
            }
        }
    }

    #[test]
    fn config_files_carry_trust_policies_and_name_the_file_and_role_when_bad() {
        use crate::trust_policy::{ASSUME_ROLE, Decision, RequestContext, TrustPolicy};
        let Ok(dir) = tempfile::tempdir() else {
            panic!("no temporary directory");
        };
        // Unquoted account ids read as the account: with leading zeros as a string, without as
        // a number.
        let good = dir.path().join("policy.yaml");
        let yaml = "accounts:\n  - id: \"111122223333\"\n    roles:\n      - name: gui\n        trustPolicy:\n          Statement:\n            - {Effect: Allow, Principal: {AWS: [000000000000, 444455556666]}, Action: \"sts:AssumeRole\"}\n";
        assert!(std::fs::write(&good, yaml).is_ok());
        let loaded = ConfigFile::load(&good).map_err(|e| e.to_string());
        let document = match &loaded {
            Ok(file) => file.accounts[0].roles[0].trust_policy.clone(),
            Err(error) => panic!("{error}"),
        };
        let Some(Ok(policy)) = document.as_ref().map(TrustPolicy::parse) else {
            panic!("{document:?}");
        };
        let decide = |account: &str| {
            let arn = format!("arn:aws:iam::{account}:user/lightsail-sim");
            policy.decide(
                ASSUME_ROLE,
                &RequestContext {
                    principal_account: account,
                    principal_arn: &arn,
                    caller_arn: &arn,
                    external_id: None,
                    role_session_name: "s1",
                    request_tags: &[],
                    transitive_tag_keys: &[],
                    principal_tags: &[],
                },
            )
        };
        assert_eq!(
            [
                decide("000000000000"),
                decide("444455556666"),
                decide("111122223333")
            ],
            [Decision::Allow, Decision::Allow, Decision::ImplicitDeny]
        );

        let bad = dir.path().join("bad-policy.yaml");
        let yaml = "accounts:\n  - id: \"111122223333\"\n    roles:\n      - name: gui\n        trustPolicy:\n          Statement:\n            - {Effect: allow, Principal: \"*\", Action: \"sts:AssumeRole\"}\n";
        assert!(std::fs::write(&bad, yaml).is_ok());
        match ConfigFile::load(&bad) {
            Ok(file) => panic!("accepted: {file:?}"),
            Err(error) => {
                let error = error.to_string();
                for part in [
                    "bad-policy.yaml",
                    "trustPolicy of role \"gui\" in account 111122223333: Statement[0]: \
                     unknown Effect \"allow\"",
                ] {
                    assert!(error.contains(part), "{error}\n  wanted: {part}");
                }
            }
        }
    }
}
