//! What a simulator serves: test credentials, the inventory of virtual computers with their
//! per-computer behaviours, session and operation timings, the error body style, the faults and
//! the offset of its clock.

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Access key id the simulator accepts unless told otherwise.
pub const DEFAULT_ACCESS_KEY_ID: &str = "AKIDLIGHTSAILSIM";
/// Secret key the simulator accepts unless told otherwise.
pub const DEFAULT_SECRET_ACCESS_KEY: &str = "lightsail-sim-secret";
/// Region of a computer that names none.
pub const DEFAULT_REGION: &str = "us-east-1";
/// How long a started GUI session lasts before it becomes `startExpired` (AWS: 1 hour).
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(3600);
/// How long an operation stays `Started` before it becomes terminal.
pub const DEFAULT_SETTLE_TIME: Duration = Duration::from_secs(1);
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
    /// The only access key id whose signatures are accepted.
    pub access_key_id: String,
    /// Its secret key.
    pub secret_access_key: String,
    /// The virtual computers the simulator knows at start.
    pub computers: Vec<ComputerSpec>,
    /// How long a GUI session stays `started` once it has settled.
    pub session_lifetime: Duration,
    /// How long each Start/Stop operation stays `Started` before it succeeds or fails.
    pub settle_time: Duration,
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
            computers: Vec::new(),
            session_lifetime: DEFAULT_SESSION_LIFETIME,
            settle_time: DEFAULT_SETTLE_TIME,
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
        self.faults.validate()
    }
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
}

fn default_region() -> String {
    DEFAULT_REGION.to_owned()
}

impl ComputerSpec {
    /// A well-behaved computer in [`DEFAULT_REGION`].
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            region: default_region(),
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
        }
    }

    /// Places the computer in `region`.
    pub fn in_region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
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

/// Faults applied to every authenticated AWS call; replaceable at run time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Faults {
    /// Added to every call (text such as `"20ms"`).
    #[serde(with = "duration_text")]
    pub latency: Duration,
    /// A uniformly random extra delay in `[0, latency_jitter]` (text such as `"5ms"`).
    #[serde(with = "duration_text")]
    pub latency_jitter: Duration,
    /// Fraction (0..=1) of calls that answer `ServiceException`.
    pub service_error_rate: f64,
    /// Fraction (0..=1) of calls that answer `ThrottlingException`.
    pub throttle_rate: f64,
    /// Token bucket past which calls answer `ThrottlingException`; none means unlimited.
    pub rate_limit: Option<RateLimit>,
}

impl Faults {
    /// Checks rates and the bucket.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, rate) in [
            ("service error rate", self.service_error_rate),
            ("throttle rate", self.throttle_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(ConfigError::Invalid(format!(
                    "{name} {rate} is not a fraction between 0 and 1"
                )));
            }
        }
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

/// The config file: `computers:` is a list of [`ComputerSpec`]s, `clockOffset:` a signed
/// duration such as `-2h`. YAML, or JSON when the file name ends in `.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigFile {
    /// The inventory.
    #[serde(default)]
    pub computers: Vec<ComputerSpec>,
    /// [`SimConfig::clock_offset`]; `--clock-offset` overrides it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_signed_duration_text"
    )]
    pub clock_offset: Option<SignedDuration>,
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
        Ok(file)
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
}
