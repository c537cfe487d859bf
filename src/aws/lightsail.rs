//! The AWS edge: Lightsail clients per Region, a client-side rate limit, error classification and
//! conversion of SDK operations into the status types. Nothing here knows about Kubernetes.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_lightsail::Client;
use aws_sdk_lightsail::config::Region;
use aws_sdk_lightsail::config::retry::RetryConfig;
use aws_sdk_lightsail::config::timeout::TimeoutConfig;
use aws_sdk_lightsail::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lightsail::types as sdk;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::guisession::types::{Location, Operation, OperationStatus};
use crate::metrics::Metrics;

mod accounts;
pub use accounts::{AccountCheckError, AccountConfig, CallerIdentity, StaticKeys};

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

/// Whether retrying the same call can succeed without someone changing something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request is wrong or not allowed (NotFound, InvalidInput, AccessDenied,
    /// Unauthenticated, ...): retrying soon only repeats the error.
    Terminal,
    /// A transient condition (throttling, service faults, setup in progress, timeouts,
    /// connection failures): retry with backoff.
    Retryable,
}

/// A failed Lightsail call, reduced to what the controller needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{action}: {code}: {message}", action = .action.as_str())]
pub struct LightsailError {
    pub action: Action,
    /// The error code without the `Exception` suffix (`NotFound`, `Throttling`, ...), or one of
    /// the operator's own: `NoRegion`, `NoCredentials`, `InvalidRequest` (nothing was sent),
    /// `Timeout`, `ConnectionFailed`, `InvalidResponse` (no usable answer).
    pub code: String,
    /// The message and its causes, joined with `: `, then what to do about it where the
    /// classification table has a hint. Never contains credentials.
    pub message: String,
    pub class: ErrorClass,
    /// True when no `StartGUISession` can have happened: nothing was sent (no Region, no
    /// credentials, a request that could not be built) or Lightsail answered with a client error
    /// (HTTP 4xx: `NotFound`, `InvalidInput`, `Throttling`, `AccessDenied`, ...). False when it
    /// may have: a 5xx answer (the service may have acted before failing), a timeout, a dropped
    /// connection or an answer that could not be read. A caller that fences starts keeps its
    /// fence exactly when this is false.
    pub answered: bool,
}

/// What the operator makes of an error code: whether to retry, and what a user can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeInfo {
    pub class: ErrorClass,
    /// A short instruction, appended to [`LightsailError::message`].
    pub hint: Option<&'static str>,
}

const fn terminal(hint: &'static str) -> CodeInfo {
    CodeInfo {
        class: ErrorClass::Terminal,
        hint: Some(hint),
    }
}

const fn retryable(hint: &'static str) -> CodeInfo {
    CodeInfo {
        class: ErrorClass::Retryable,
        hint: Some(hint),
    }
}

const CHECK_CREDENTIALS: &str = "AWS did not accept the operator's credentials: check the \
     access key, or the IRSA / EKS Pod Identity role";
const CHECK_IAM: &str = "the operator's IAM role needs lightsail:StartGUISession, \
     lightsail:StopGUISession, lightsail:GetOperation and lightsail:GetOperationsForResource";
const THROTTLED: &str = "Lightsail is throttling the account: retrying with backoff; if it \
     persists, lower --rate-limit";
const NO_ANSWER: &str = "no usable answer from Lightsail: retrying; if it persists, check \
     network egress to lightsail.<region>.amazonaws.com (or AWS_ENDPOINT_URL_LIGHTSAIL)";

/// Where the default credential chain looks, for the `NoCredentials` message. Names only the
/// variables, never their values.
const CREDENTIAL_SOURCES: &str = "no AWS credentials could be loaded. The operator uses the \
     AWS SDK's default chain: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; web identity / IRSA \
     (AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE, set from the ServiceAccount annotation \
     eks.amazonaws.com/role-arn); EKS Pod Identity (AWS_CONTAINER_CREDENTIALS_FULL_URI); a \
     shared profile (AWS_PROFILE, ~/.aws/config, ~/.aws/credentials); instance metadata (IMDS)";

/// The classification table: every error code the operator knows, without the `Exception`
/// suffix (Lightsail's `code` member has none, its `__type` has one; both reach us).
/// Codes not listed are retryable: a bounded backoff is safer than giving up on something new.
const CODES: &[(&str, CodeInfo)] = &[
    // Modelled Lightsail exceptions.
    (
        "NotFound",
        terminal("no such resource in that Region: check spec.resourceName and spec.region"),
    ),
    (
        "InvalidInput",
        terminal(
            "Lightsail rejected the request: check spec.resourceName; GUI sessions need a \
             Lightsail for Research computer",
        ),
    ),
    ("AccessDenied", terminal(CHECK_IAM)),
    ("Unauthenticated", terminal(CHECK_CREDENTIALS)),
    (
        "OperationFailure",
        terminal("Lightsail could not perform the operation: see the message"),
    ),
    (
        "Service",
        retryable("Lightsail had an internal error: retrying with backoff"),
    ),
    (
        "RegionSetupInProgress",
        retryable("the Region is still being set up for the account: retrying"),
    ),
    (
        "AccountSetupInProgress",
        retryable("the account is still being set up: retrying"),
    ),
    // Common AWS errors: validation and authentication.
    (
        "Validation",
        terminal("AWS rejected the request as invalid"),
    ),
    (
        "ValidationError",
        terminal("AWS rejected the request as invalid"),
    ),
    ("InvalidClientTokenId", terminal(CHECK_CREDENTIALS)),
    ("UnrecognizedClient", terminal(CHECK_CREDENTIALS)),
    ("MissingAuthenticationToken", terminal(CHECK_CREDENTIALS)),
    ("IncompleteSignature", terminal(CHECK_CREDENTIALS)),
    ("InvalidSignature", terminal(CHECK_CREDENTIALS)),
    ("SignatureDoesNotMatch", terminal(CHECK_CREDENTIALS)),
    ("AuthFailure", terminal(CHECK_CREDENTIALS)),
    (
        "ExpiredToken",
        terminal("the session token has expired: check where the credentials come from"),
    ),
    ("UnauthorizedOperation", terminal(CHECK_IAM)),
    (
        "OptInRequired",
        terminal("the account is not subscribed to this service in this Region"),
    ),
    (
        "UnknownOperation",
        terminal("the endpoint is not Lightsail: check AWS_ENDPOINT_URL_LIGHTSAIL"),
    ),
    (
        "Serialization",
        terminal("Lightsail could not read the request"),
    ),
    // A node clock more than 15 minutes off AWS's. Retryable: the SDK reads AWS's time from
    // this very answer's `Date` header and signs the client's later calls with it (aws-runtime's
    // clock-skew correction), so the next attempt passes even before the clock is fixed.
    (
        "RequestExpired",
        retryable(
            "this node's clock is more than 15 minutes off AWS's: the next call is signed with \
             AWS's time, but fix the node's clock (NTP)",
        ),
    ),
    (
        "RequestTimeTooSkewed",
        retryable(
            "this node's clock is more than 15 minutes off AWS's: the next call is signed with \
             AWS's time, but fix the node's clock (NTP)",
        ),
    ),
    // Throttling, in every spelling the SDK's own retry classifier knows
    // (aws-runtime THROTTLING_ERRORS).
    ("Throttling", retryable(THROTTLED)),
    ("Throttled", retryable(THROTTLED)),
    ("RequestThrottled", retryable(THROTTLED)),
    ("TooManyRequests", retryable(THROTTLED)),
    ("RequestLimitExceeded", retryable(THROTTLED)),
    ("ProvisionedThroughputExceeded", retryable(THROTTLED)),
    ("TransactionInProgress", retryable(THROTTLED)),
    ("BandwidthLimitExceeded", retryable(THROTTLED)),
    ("LimitExceeded", retryable(THROTTLED)),
    ("SlowDown", retryable(THROTTLED)),
    ("PriorRequestNotComplete", retryable(THROTTLED)),
    ("EC2Throttled", retryable(THROTTLED)),
    // Server faults.
    (
        "InternalFailure",
        retryable("AWS had an internal error: retrying"),
    ),
    (
        "InternalError",
        retryable("AWS had an internal error: retrying"),
    ),
    (
        "ServiceUnavailable",
        retryable("Lightsail is unavailable: retrying"),
    ),
    ("RequestTimeout", retryable(NO_ANSWER)),
    // The operator's own codes.
    (
        "NoRegion",
        terminal("set spec.region, or give the operator --region / AWS_REGION"),
    ),
    // The message says where credentials come from; terminal even when a source failed
    // (IMDS forbidden, STS refusing a web identity token): the cause is in the message, and a
    // stalled object is retried after --stalled-retry anyway.
    (
        "NoCredentials",
        CodeInfo {
            class: ErrorClass::Terminal,
            hint: None,
        },
    ),
    (
        "InvalidRequest",
        terminal("the SDK could not build the request: check spec.region"),
    ),
    ("Timeout", retryable(NO_ANSWER)),
    ("ConnectionFailed", retryable(NO_ANSWER)),
    ("InvalidResponse", retryable(NO_ANSWER)),
];

/// Class and hint of an error code, with or without its `Exception` suffix.
pub fn describe(code: &str) -> CodeInfo {
    let code = normalize_code(code);
    CODES.iter().find(|(known, _)| *known == code).map_or(
        CodeInfo {
            class: ErrorClass::Retryable,
            hint: None,
        },
        |(_, info)| *info,
    )
}

/// Classifies an error code (see [`describe`]).
pub fn classify(code: &str) -> ErrorClass {
    describe(code).class
}

fn normalize_code(code: &str) -> &str {
    code.strip_suffix("Exception").unwrap_or(code)
}

/// The message on one line (status conditions and log lines read badly with line breaks; the
/// SDK's credential chain lists what it tried one per line).
fn one_line(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for line in message.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !out.is_empty() {
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(line);
    }
    out
}

fn with_hint(message: String, hint: Option<&str>) -> String {
    let message = one_line(&message);
    match hint {
        Some(hint) if !message.is_empty() => format!("{message} ({hint})"),
        Some(hint) => hint.to_owned(),
        None => message,
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The error and its sources, outermost first.
fn sources<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
}

/// Why the credentials could not be resolved, when that is why the call failed. The SDK
/// resolves them before sending anything and reports a failure as a `DispatchFailure` whose
/// source is the provider's `CredentialsError`; the identity cache's own load timeout has no
/// public type, so that one is recognised by its text.
fn credentials_failure(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(cause) = sources(err).find(|e| e.is::<CredentialsError>()) {
        return Some(error_chain(cause));
    }
    sources(err)
        .find(|e| e.to_string().starts_with("identity resolver timed out"))
        .map(error_chain)
}

/// The code of a modelled SDK error variant, for errors whose metadata carries no code.
pub trait ModelledCode {
    fn modelled_code(&self) -> Option<&'static str>;
}

macro_rules! modelled_codes {
    ($($ty:ident { $($variant:ident => $code:literal),* $(,)? })*) => {$(
        impl ModelledCode for $ty {
            fn modelled_code(&self) -> Option<&'static str> {
                match self {
                    $($ty::$variant(_) => Some($code),)*
                    _ => None,
                }
            }
        }
    )*};
}

use aws_sdk_lightsail::operation::create_gui_session_access_details::CreateGUISessionAccessDetailsError;
use aws_sdk_lightsail::operation::get_operation::GetOperationError;
use aws_sdk_lightsail::operation::get_operations_for_resource::GetOperationsForResourceError;
use aws_sdk_lightsail::operation::start_gui_session::StartGUISessionError;
use aws_sdk_lightsail::operation::stop_gui_session::StopGUISessionError;

modelled_codes! {
    StartGUISessionError {
        AccessDeniedException => "AccessDenied", InvalidInputException => "InvalidInput",
        NotFoundException => "NotFound", RegionSetupInProgressException => "RegionSetupInProgress",
        ServiceException => "Service", UnauthenticatedException => "Unauthenticated",
    }
    StopGUISessionError {
        AccessDeniedException => "AccessDenied", InvalidInputException => "InvalidInput",
        NotFoundException => "NotFound", RegionSetupInProgressException => "RegionSetupInProgress",
        ServiceException => "Service", UnauthenticatedException => "Unauthenticated",
    }
    CreateGUISessionAccessDetailsError {
        AccessDeniedException => "AccessDenied", InvalidInputException => "InvalidInput",
        NotFoundException => "NotFound", RegionSetupInProgressException => "RegionSetupInProgress",
        ServiceException => "Service", UnauthenticatedException => "Unauthenticated",
    }
    GetOperationError {
        AccessDeniedException => "AccessDenied", AccountSetupInProgressException => "AccountSetupInProgress",
        InvalidInputException => "InvalidInput", NotFoundException => "NotFound",
        OperationFailureException => "OperationFailure", RegionSetupInProgressException => "RegionSetupInProgress",
        ServiceException => "Service", UnauthenticatedException => "Unauthenticated",
    }
    GetOperationsForResourceError {
        AccessDeniedException => "AccessDenied", AccountSetupInProgressException => "AccountSetupInProgress",
        InvalidInputException => "InvalidInput", NotFoundException => "NotFound",
        OperationFailureException => "OperationFailure", RegionSetupInProgressException => "RegionSetupInProgress",
        ServiceException => "Service", UnauthenticatedException => "Unauthenticated",
    }
}

impl LightsailError {
    /// Lightsail answered, but not with what the call promises. Counted as "no answer": for a
    /// start, a session may have been made.
    pub fn invalid_response(action: Action, message: &str) -> Self {
        LightsailError {
            action,
            code: "InvalidResponse".into(),
            message: message.into(),
            class: ErrorClass::Retryable,
            answered: false,
        }
    }

    /// An error for a call that was never sent because there are no credentials.
    fn no_credentials(action: Action, cause: &str) -> Self {
        LightsailError {
            action,
            code: "NoCredentials".into(),
            message: one_line(&format!("{CREDENTIAL_SOURCES}. The SDK said: {cause}")),
            class: classify("NoCredentials"),
            answered: true,
        }
    }

    fn from_sdk<E>(action: Action, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + ModelledCode + std::error::Error + Send + Sync + 'static,
    {
        // Identity resolution happens before sending and fails as a dispatch failure.
        if let SdkError::DispatchFailure(_) = &err
            && let Some(cause) = credentials_failure(&err)
        {
            return LightsailError::no_credentials(action, &cause);
        }
        let (code, answered, message) = match &err {
            // The code string first: real Lightsail bodies carry `code` (e.g. `NotFound`) and
            // then the SDK reports an unmodelled error; the variant when no code came along.
            SdkError::ServiceError(service) => (
                err.code()
                    .map(|c| normalize_code(c).to_owned())
                    .or_else(|| service.err().modelled_code().map(str::to_owned))
                    .unwrap_or_else(|| "Unknown".into()),
                // A client error means the request was refused as a whole; after a server
                // error the service may have acted before failing.
                service.raw().status().is_client_error(),
                err.message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| error_chain(service.err())),
            ),
            SdkError::TimeoutError(_) => ("Timeout".into(), false, error_chain(&err)),
            SdkError::DispatchFailure(f) if f.is_timeout() => {
                ("Timeout".into(), false, error_chain(&err))
            }
            SdkError::DispatchFailure(_) => ("ConnectionFailed".into(), false, error_chain(&err)),
            SdkError::ResponseError(_) => ("InvalidResponse".into(), false, error_chain(&err)),
            SdkError::ConstructionFailure(_) => ("InvalidRequest".into(), true, error_chain(&err)),
            _ => ("Unknown".into(), false, error_chain(&err)),
        };
        let info = describe(&code);
        LightsailError {
            action,
            message: with_hint(message, info.hint),
            code,
            class: info.class,
            answered,
        }
    }
}

/// Converts an SDK operation into the status type; timestamps truncated to whole seconds (the
/// SDK's float timestamps otherwise change status on every read).
pub fn operation_from_sdk(op: &sdk::Operation) -> Operation {
    fn ts(t: Option<&aws_smithy_types::DateTime>) -> Option<jiff::Timestamp> {
        t.and_then(|t| jiff::Timestamp::from_second(t.secs()).ok())
    }
    Operation {
        id: op.id().map(str::to_owned),
        resource_name: op.resource_name().map(str::to_owned),
        resource_type: op.resource_type().map(|t| t.as_str().to_owned()),
        created_at: ts(op.created_at()),
        location: op.location().map(|l| Location {
            availability_zone: l.availability_zone().map(str::to_owned),
            region_name: l.region_name().map(|r| r.as_str().to_owned()),
        }),
        is_terminal: op.is_terminal(),
        operation_details: op.operation_details().map(str::to_owned),
        operation_type: op.operation_type().map(|t| t.as_str().to_owned()),
        status: op.status().and_then(|s| match s {
            sdk::OperationStatus::NotStarted => Some(OperationStatus::NotStarted),
            sdk::OperationStatus::Started => Some(OperationStatus::Started),
            sdk::OperationStatus::Failed => Some(OperationStatus::Failed),
            sdk::OperationStatus::Completed => Some(OperationStatus::Completed),
            sdk::OperationStatus::Succeeded => Some(OperationStatus::Succeeded),
            _ => None,
        }),
        status_changed_at: ts(op.status_changed_at()),
        error_code: op.error_code().map(str::to_owned),
        error_details: op.error_details().map(str::to_owned),
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

impl AccessDetails {
    fn from_sdk(
        out: &aws_sdk_lightsail::operation::create_gui_session_access_details::CreateGuiSessionAccessDetailsOutput,
    ) -> Self {
        let url = |primary: bool| {
            out.sessions()
                .iter()
                .find(|s| s.is_primary().unwrap_or(false) == primary)
                .and_then(|s| s.url())
                .filter(|u| !u.is_empty())
                .map(|u| SessionUrl::new(u.to_owned()))
        };
        AccessDetails {
            status: out.status().map(|s| s.as_str().to_owned()),
            percentage_complete: out.percentage_complete(),
            failure_reason: out.failure_reason().map(str::to_owned),
            primary_url: url(true),
            secondary_url: url(false),
        }
    }
}

/// Client-side rate limit per Region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

fn quota(rate: RateLimit) -> Quota {
    Quota::per_second(rate.per_second).allow_burst(rate.burst)
}

/// One rate-limit token for one call in one Region (see [`Lightsail::permit`]).
pub struct Permit {
    client: Client,
    action: Action,
}

struct RegionClient {
    client: Client,
    /// The limit of the AWS account in this Region, shared by every account object naming it.
    limiter: Arc<DefaultDirectRateLimiter>,
    /// A namespaced account's own share (its `rateLimit`), taken before the shared one.
    own_share: Option<DefaultDirectRateLimiter>,
}

/// Most clients (account object × Region) and limiters (AWS account × Region) kept; past it,
/// those not in use are dropped, so that made-up Regions cannot grow memory without bound.
const MAX_CLIENTS: usize = 512;

/// The shape of an AWS Region name (`eu-central-1`, `us-gov-west-1`): what admission allows
/// for `spec.region`, checked again at the edge.
pub fn is_region_name(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let lower = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
    match parts.as_slice() {
        [first, middle @ .., last] if !middle.is_empty() => {
            region.len() <= 32
                && first.len() == 2
                && lower(first)
                && middle.iter().all(lower)
                && !last.is_empty()
                && last.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

/// A client's account key (`None`: the operator's own identity) and Region.
type ClientKey = (Option<String>, String);

/// Where a call goes: which account (`None`: the operator's own identity; otherwise the key an
/// account was checked under, see [`Lightsail::check_account`]) and which Region (`None`: the
/// default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    pub account: Option<&'a str>,
    pub region: Option<&'a str>,
}

impl<'a> Scope<'a> {
    /// The operator's own identity, in `region`.
    pub fn own(region: Option<&'a str>) -> Self {
        Scope {
            account: None,
            region,
        }
    }
}

/// Lightsail clients for every Region in use, built from one AWS configuration load.
pub struct Lightsail {
    base: SdkConfig,
    default_region: Option<String>,
    rate: RateLimit,
    /// By account key (`None`: the operator's own identity) and Region.
    clients: Mutex<HashMap<ClientKey, Arc<RegionClient>>>,
    /// Rate limiters by AWS account id (empty: the operator's own) and Region: Lightsail's
    /// limits are per account, whatever object names it.
    limiters: Mutex<HashMap<(String, String), Arc<DefaultDirectRateLimiter>>>,
    accounts: Mutex<accounts::Accounts>,
    /// The limits cluster-scoped accounts set for their AWS accounts.
    account_limits: Mutex<accounts::AccountLimits>,
    metrics: Arc<Metrics>,
    call_timeout: Duration,
}

/// Default for the longest a Lightsail call may take, connection included.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Most pages of `GetOperationsForResource` read in one lookup.
pub const MAX_OPERATION_PAGES: usize = 50;

impl Lightsail {
    /// Loads the AWS configuration once (default credential chain: environment, profile, web
    /// identity / IRSA, EKS Pod Identity, IMDS; `AWS_ENDPOINT_URL_LIGHTSAIL` is honoured by the
    /// SDK when each Region's client is built from it).
    pub async fn load(
        default_region: Option<String>,
        rate: RateLimit,
        metrics: Arc<Metrics>,
    ) -> Self {
        let base = aws_config::defaults(BehaviorVersion::latest()).load().await;
        let default_region = default_region.or_else(|| base.region().map(|r| r.to_string()));
        Lightsail::from_sdk_config(base, default_region, rate, metrics)
    }

    pub fn from_sdk_config(
        base: SdkConfig,
        default_region: Option<String>,
        rate: RateLimit,
        metrics: Arc<Metrics>,
    ) -> Self {
        Lightsail {
            base,
            default_region,
            rate,
            clients: Mutex::new(HashMap::new()),
            limiters: Mutex::new(HashMap::new()),
            accounts: Mutex::new(HashMap::new()),
            account_limits: Mutex::new(HashMap::new()),
            metrics,
            call_timeout: DEFAULT_CALL_TIMEOUT,
        }
    }

    /// Sets the longest a call may take, connection included (default
    /// [`DEFAULT_CALL_TIMEOUT`]). Applies to clients built afterwards.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// The longest a call may take.
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    pub fn default_region(&self) -> Option<&str> {
        self.default_region.as_deref()
    }

    fn region_client(
        &self,
        scope: Scope<'_>,
        action: Action,
    ) -> Result<Arc<RegionClient>, LightsailError> {
        let Some(region) = scope.region.or(self.default_region.as_deref()) else {
            return Err(LightsailError {
                action,
                code: "NoRegion".into(),
                message: "no AWS Region: set spec.region, or give the operator a default Region (--region, AWS_REGION)".into(),
                class: ErrorClass::Terminal,
                answered: true,
            });
        };
        if !is_region_name(region) {
            return Err(LightsailError {
                action,
                code: "InvalidRegion".into(),
                message: format!(
                    "{region:?} is not an AWS Region name (like eu-central-1): check spec.region or the account's region"
                ),
                class: ErrorClass::Terminal,
                answered: true,
            });
        }
        let key = (scope.account.map(str::to_owned), region.to_owned());
        if let Some(c) = self
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(c.clone());
        }
        let (credentials, own_share, account_id) = match scope.account {
            None => (None, None, String::new()),
            Some(account) => match self.account_client_parts(account) {
                Some((provider, own_share, id)) => (Some(provider), own_share, id),
                None => {
                    return Err(LightsailError {
                        action,
                        code: "AccountNotReady".into(),
                        message: format!("the credentials of {account} are not loaded"),
                        class: ErrorClass::Retryable,
                        answered: true,
                    });
                }
            },
        };
        if credentials.is_none() && self.base.credentials_provider().is_none() {
            // The SDK would fail every call with "no identity resolver for sigv4".
            return Err(LightsailError::no_credentials(
                action,
                "no credentials provider is configured",
            ));
        }
        let mut builder = aws_sdk_lightsail::config::Builder::from(&self.base);
        if let Some(provider) = credentials {
            builder = builder.credentials_provider(provider);
        }
        let config = builder
            .region(Region::new(region.to_owned()))
            // Retries are the controller's job (per-object backoff with jitter, visible in
            // status and metrics); SDK retries underneath would multiply them.
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5).min(self.call_timeout))
                    .operation_timeout(self.call_timeout)
                    .build(),
            )
            .build();
        let rate = if account_id.is_empty() {
            self.rate
        } else {
            self.shared_rate(&account_id)
        };
        let limiter = {
            let mut limiters = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
            if limiters.len() >= MAX_CLIENTS {
                limiters.retain(|_, l| Arc::strong_count(l) > 1);
            }
            limiters
                .entry((account_id, region.to_owned()))
                .or_insert_with(|| Arc::new(RateLimiter::direct(quota(rate))))
                .clone()
        };
        let c = Arc::new(RegionClient {
            client: Client::from_conf(config),
            limiter,
            own_share: own_share.map(|r| RateLimiter::direct(quota(r))),
        });
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.len() >= MAX_CLIENTS {
            clients.retain(|_, c| Arc::strong_count(c) > 1);
        }
        clients.insert(key, c.clone());
        Ok(c)
    }

    /// Waits for the Region's rate limit. Taken apart from the call so that a caller can do its
    /// last steps (the fenced status write before a start) after the wait, right before the call.
    pub async fn permit(&self, scope: Scope<'_>, action: Action) -> Result<Permit, LightsailError> {
        let rc = self.region_client(scope, action)?;
        if let Some(own) = &rc.own_share {
            own.until_ready().await;
        }
        rc.limiter.until_ready().await;
        Ok(Permit {
            client: rc.client.clone(),
            action,
        })
    }

    /// Waits for the Region's rate limit, runs the call and records its metrics.
    async fn call<T, F, Fut, E>(
        &self,
        scope: Scope<'_>,
        action: Action,
        f: F,
    ) -> Result<T, LightsailError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + ModelledCode + std::error::Error + Send + Sync + 'static,
    {
        let permit = self.permit(scope, action).await?;
        self.call_with(permit, f).await
    }

    /// Runs a call under a permit already taken and records its metrics.
    async fn call_with<T, F, Fut, E>(&self, permit: Permit, f: F) -> Result<T, LightsailError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + ModelledCode + std::error::Error + Send + Sync + 'static,
    {
        let action = permit.action;
        let started = Instant::now();
        let result = f(permit.client)
            .await
            .map_err(|e| LightsailError::from_sdk(action, e));
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.code.as_str(),
        };
        self.metrics
            .observe_lightsail_call(action.as_str(), outcome, started.elapsed());
        result
    }

    /// `StartGUISession` under a permit from [`Lightsail::permit`]: the operations it started
    /// (normally one). The call goes out at once: no rate-limit wait between the caller's last
    /// check and the request.
    pub async fn start_gui_session(
        &self,
        permit: Permit,
        resource_name: &str,
    ) -> Result<Vec<Operation>, LightsailError> {
        debug_assert_eq!(permit.action, Action::StartGuiSession);
        let out = self
            .call_with(permit, |c| {
                c.start_gui_session().resource_name(resource_name).send()
            })
            .await?;
        Ok(out.operations().iter().map(operation_from_sdk).collect())
    }

    /// `StopGUISession`.
    pub async fn stop_gui_session(
        &self,
        scope: Scope<'_>,
        resource_name: &str,
    ) -> Result<Vec<Operation>, LightsailError> {
        let out = self
            .call(scope, Action::StopGuiSession, |c| {
                c.stop_gui_session().resource_name(resource_name).send()
            })
            .await?;
        Ok(out.operations().iter().map(operation_from_sdk).collect())
    }

    /// `CreateGUISessionAccessDetails`: the session's status and, once it has started, its
    /// access URLs.
    pub async fn create_gui_session_access_details(
        &self,
        scope: Scope<'_>,
        resource_name: &str,
    ) -> Result<AccessDetails, LightsailError> {
        let out = self
            .call(scope, Action::CreateGuiSessionAccessDetails, |c| {
                c.create_gui_session_access_details()
                    .resource_name(resource_name)
                    .send()
            })
            .await?;
        Ok(AccessDetails::from_sdk(&out))
    }

    /// `GetOperation`.
    pub async fn get_operation(
        &self,
        scope: Scope<'_>,
        operation_id: &str,
    ) -> Result<Option<Operation>, LightsailError> {
        let out = self
            .call(scope, Action::GetOperation, |c| {
                c.get_operation().operation_id(operation_id).send()
            })
            .await?;
        Ok(out.operation().map(operation_from_sdk))
    }

    /// `GetOperationsForResource`: every page, in no particular order (AWS documents none;
    /// callers sort by `createdAt`). At most [`MAX_OPERATION_PAGES`] pages are read; past that
    /// the operations read so far are returned and a warning is logged, because failing would
    /// block the object for good over a history far longer than adoption looks at.
    pub async fn operations_for_resource(
        &self,
        scope: Scope<'_>,
        resource_name: &str,
    ) -> Result<Vec<Operation>, LightsailError> {
        let mut operations = Vec::new();
        let mut page_token: Option<String> = None;
        for _ in 0..MAX_OPERATION_PAGES {
            let token = page_token.take();
            let out = self
                .call(scope, Action::GetOperationsForResource, |c| {
                    c.get_operations_for_resource()
                        .resource_name(resource_name)
                        .set_page_token(token)
                        .send()
                })
                .await?;
            operations.extend(out.operations().iter().map(operation_from_sdk));
            match out.next_page_token() {
                Some(t) if !t.is_empty() => page_token = Some(t.to_owned()),
                _ => return Ok(operations),
            }
        }
        tracing::warn!(
            resource = resource_name,
            pages = MAX_OPERATION_PAGES,
            operations = operations.len(),
            "GetOperationsForResource has more pages than the operator reads; using the ones read"
        );
        Ok(operations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_lightsail::operation::get_operation::GetOperationOutput;
    use aws_sdk_lightsail::operation::get_operations_for_resource::GetOperationsForResourceOutput;
    use aws_sdk_lightsail::operation::start_gui_session::StartGuiSessionOutput;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_types::DateTime;
    use aws_smithy_types::error::ErrorMetadata;

    fn metrics() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    fn rate() -> RateLimit {
        RateLimit {
            per_second: NonZeroU32::new(1000).expect("non-zero"),
            burst: NonZeroU32::new(1000).expect("non-zero"),
        }
    }

    fn with_client(client: Client) -> Lightsail {
        let l = Lightsail::from_sdk_config(
            SdkConfig::builder().build(),
            Some("us-east-1".into()),
            rate(),
            metrics(),
        );
        let quota = Quota::per_second(rate().per_second);
        l.clients.lock().expect("lock").insert(
            (None, "us-east-1".into()),
            Arc::new(RegionClient {
                client,
                limiter: Arc::new(RateLimiter::direct(quota)),
                own_share: None,
            }),
        );
        l
    }

    async fn permit(l: &Lightsail) -> Permit {
        l.permit(Scope::default(), Action::StartGuiSession)
            .await
            .expect("a permit")
    }

    /// Every code the issue names, by class.
    const TERMINAL: &[&str] = &[
        "NotFound",
        "InvalidInput",
        "AccessDenied",
        "Unauthenticated",
        "OperationFailure",
        "Validation",
        "ValidationError",
        "InvalidClientTokenId",
        "UnrecognizedClient",
        "MissingAuthenticationToken",
        "IncompleteSignature",
        "InvalidSignature",
        "SignatureDoesNotMatch",
        "AuthFailure",
        "UnauthorizedOperation",
        "OptInRequired",
        "NoRegion",
        "NoCredentials",
        "InvalidRequest",
    ];
    const RETRYABLE: &[&str] = &[
        "Service",
        "Throttling",
        "TooManyRequests",
        "RequestLimitExceeded",
        "RegionSetupInProgress",
        "AccountSetupInProgress",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestTimeout",
        "Timeout",
        "ConnectionFailed",
        "InvalidResponse",
        "RequestExpired",
    ];
    /// aws-runtime's THROTTLING_ERRORS and TRANSIENT_ERRORS, as the SDK's retry classifier
    /// spells them.
    const SDK_RETRY_CODES: &[&str] = &[
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "RequestTimeout",
        "RequestTimeoutException",
    ];

    #[test]
    fn the_table_classifies_codes_with_or_without_the_exception_suffix() {
        for code in TERMINAL {
            for spelling in [code.to_string(), format!("{code}Exception")] {
                assert_eq!(classify(&spelling), ErrorClass::Terminal, "{spelling}");
            }
        }
        for code in RETRYABLE {
            for spelling in [code.to_string(), format!("{code}Exception")] {
                assert_eq!(classify(&spelling), ErrorClass::Retryable, "{spelling}");
            }
        }
        for code in SDK_RETRY_CODES {
            let info = describe(code);
            assert_eq!(info.class, ErrorClass::Retryable, "{code}");
            assert!(info.hint.is_some(), "{code} has no hint");
        }
        assert_eq!(
            describe("SomethingNewException"),
            CodeInfo {
                class: ErrorClass::Retryable,
                hint: None
            }
        );
        assert!(
            describe("AccessDenied")
                .hint
                .is_some_and(|h| h.contains("lightsail:StartGUISession"))
        );
    }

    #[test]
    fn messages_are_one_line() {
        assert_eq!(
            one_line("not found. Attempted:\n  Environment: unset\n  Profile: none\n"),
            "not found. Attempted: Environment: unset; Profile: none"
        );
        assert_eq!(with_hint("gone".into(), Some("look")), "gone (look)");
    }

    #[test]
    fn the_table_has_one_row_per_code_without_suffixes() {
        let mut seen = std::collections::HashSet::new();
        for (code, _) in CODES {
            assert!(seen.insert(*code), "{code} twice");
            assert_eq!(normalize_code(code), *code, "{code} keeps its suffix");
        }
    }

    #[test]
    fn operation_fields_are_copied_and_timestamps_truncated() {
        let op = sdk::Operation::builder()
            .id("op-1")
            .resource_name("vm-1")
            .resource_type(sdk::ResourceType::Instance)
            .created_at(DateTime::from_fractional_secs(1_479_816_991, 0.349))
            .location(
                sdk::ResourceLocation::builder()
                    .availability_zone("us-east-1a")
                    .region_name(sdk::RegionName::UsEast1)
                    .build(),
            )
            .is_terminal(false)
            .operation_details("details")
            .operation_type(sdk::OperationType::StartGuiSession)
            .status(sdk::OperationStatus::Started)
            .status_changed_at(DateTime::from_fractional_secs(1_479_816_992, 0.999_999))
            .error_code("E")
            .error_details("D")
            .build();
        let got = operation_from_sdk(&op);
        assert_eq!(
            got,
            Operation {
                id: Some("op-1".into()),
                resource_name: Some("vm-1".into()),
                resource_type: Some("Instance".into()),
                created_at: Some("2016-11-22T12:16:31Z".parse().expect("timestamp")),
                location: Some(Location {
                    availability_zone: Some("us-east-1a".into()),
                    region_name: Some("us-east-1".into()),
                }),
                is_terminal: Some(false),
                operation_details: Some("details".into()),
                operation_type: Some("StartGUISession".into()),
                status: Some(OperationStatus::Started),
                status_changed_at: Some("2016-11-22T12:16:32Z".parse().expect("timestamp")),
                error_code: Some("E".into()),
                error_details: Some("D".into()),
            }
        );
    }

    #[tokio::test]
    async fn modelled_and_unmodelled_errors_get_the_same_code() {
        let modelled = mock!(Client::start_gui_session).then_error(|| {
            StartGUISessionError::NotFoundException(
                aws_sdk_lightsail::types::error::NotFoundException::builder()
                    .message("no such instance")
                    .build(),
            )
        });
        // What the SDK makes of a real Lightsail body carrying `"code": "NotFound"`.
        let unmodelled = mock!(Client::start_gui_session).then_error(|| {
            StartGUISessionError::generic(
                ErrorMetadata::builder()
                    .code("NotFound")
                    .message("no such instance")
                    .build(),
            )
        });
        let client = mock_client!(
            aws_sdk_lightsail,
            RuleMode::Sequential,
            [&modelled, &unmodelled]
        );
        let l = with_client(client);
        for _ in 0..2 {
            let e = l
                .start_gui_session(permit(&l).await, "vm-1")
                .await
                .expect_err("fails");
            assert_eq!(e.code, "NotFound");
            assert_eq!(e.class, ErrorClass::Terminal);
            assert!(e.answered);
            assert!(e.message.contains("no such instance"), "{}", e.message);
        }
        let text = l.metrics.render();
        assert!(
            text.contains(r#"lightsail_gui_operator_lightsail_calls_total{action="StartGUISession",outcome="NotFound"} 2"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn start_returns_the_operations() {
        let rule = mock!(Client::start_gui_session).then_output(|| {
            StartGuiSessionOutput::builder()
                .operations(
                    sdk::Operation::builder()
                        .id("op-9")
                        .status(sdk::OperationStatus::Started)
                        .build(),
                )
                .build()
        });
        let get =
            mock!(Client::get_operation).then_output(|| GetOperationOutput::builder().build());
        let l = with_client(mock_client!(aws_sdk_lightsail, [&rule, &get]));
        let ops = l
            .start_gui_session(permit(&l).await, "vm-1")
            .await
            .expect("starts");
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].id.as_deref(), Some("op-9"));
        assert_eq!(
            l.get_operation(Scope::default(), "op-9").await.expect("ok"),
            None
        );
    }

    #[tokio::test]
    async fn no_region_anywhere_is_a_terminal_error_naming_the_fix() {
        let l = Lightsail::from_sdk_config(SdkConfig::builder().build(), None, rate(), metrics());
        let Err(e) = l.permit(Scope::default(), Action::StartGuiSession).await else {
            panic!("a permit without a Region");
        };
        assert_eq!(e.code, "NoRegion");
        assert_eq!(e.class, ErrorClass::Terminal);
        assert!(e.message.contains("spec.region"), "{}", e.message);
    }

    // ---- Through the real SDK, against the simulator. ----

    use aws_credential_types::Credentials;
    use aws_credential_types::credential_fn::provide_credentials_fn;
    use aws_credential_types::provider::SharedCredentialsProvider;
    use lightsail_sim::{
        ComputerSpec, ErrorStyle, Faults, LightsailException, RunningSimulator, SignedDuration,
        SimConfig, Simulator,
    };

    async fn simulator(config: SimConfig) -> RunningSimulator {
        match Simulator::start(config, "127.0.0.1:0").await {
            Ok(sim) => sim,
            Err(e) => panic!("simulator did not start: {e:#}"),
        }
    }

    const REGION: &str = "us-east-1";

    /// Configuration for `endpoint`, signing with `credentials`.
    fn sdk_config(endpoint: &str, credentials: SharedCredentialsProvider) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(endpoint)
            .credentials_provider(credentials)
            .build()
    }

    fn signing_as(key: &str, secret: &str) -> SharedCredentialsProvider {
        SharedCredentialsProvider::new(Credentials::new(key, secret, None, None, "tests"))
    }

    /// A `Lightsail` for the simulator, with its credentials.
    fn lightsail_for(sim: &RunningSimulator) -> Lightsail {
        let credentials = signing_as(sim.access_key_id(), sim.secret_access_key());
        Lightsail::from_sdk_config(
            sdk_config(&sim.endpoint_url(), credentials),
            Some(REGION.into()),
            rate(),
            metrics(),
        )
    }

    fn account(key: &str, cluster_scoped: bool, rate: Option<(u32, u32)>) -> AccountConfig {
        AccountConfig {
            key: key.into(),
            role_arn: Some(lightsail_sim::role_arn(LAB, "gui")),
            external_id: None,
            session_tags: Vec::new(),
            session_name: "tests".into(),
            session_duration: Duration::from_secs(3600),
            static_keys: None,
            region: Some(REGION.into()),
            rate: rate.and_then(|(per_second, burst)| {
                Some(RateLimit {
                    per_second: NonZeroU32::new(per_second)?,
                    burst: NonZeroU32::new(burst)?,
                })
            }),
            cluster_scoped,
        }
    }

    const LAB: &str = "111122223333";

    /// How many calls a limiter lets through at once.
    fn burst(limiter: &DefaultDirectRateLimiter) -> usize {
        (0..20_000).take_while(|_| limiter.check().is_ok()).count()
    }

    #[tokio::test]
    async fn the_limit_of_an_aws_account_is_the_admins_and_a_namespace_only_lowers_its_own_share() {
        use lightsail_sim::{AccountSpec, DEFAULT_ACCOUNT_ID, RoleSpec};
        let sim = simulator(SimConfig::default().with_account(
            AccountSpec::new(LAB).with_role(RoleSpec::new("gui").trusting(DEFAULT_ACCOUNT_ID)),
        ))
        .await;
        // One token a second: nothing refills while a test counts a burst.
        let flags = RateLimit {
            per_second: NonZeroU32::new(1).expect("non-zero"),
            burst: NonZeroU32::new(50).expect("non-zero"),
        };
        let l = Lightsail::from_sdk_config(
            sdk_config(
                &sim.endpoint_url(),
                signing_as(sim.access_key_id(), sim.secret_access_key()),
            ),
            Some(REGION.into()),
            flags,
            metrics(),
        );
        // A tenant's LightsailAccount asks for a huge limit on the shared AWS account first.
        let greedy = account("LightsailAccount t/greedy", false, Some((1, 10_000)));
        l.check_account(greedy.clone()).await.expect("checked");
        let scope = |key: &'static str| Scope {
            account: Some(key),
            region: Some(REGION),
        };
        let tenant = l
            .region_client(scope("LightsailAccount t/greedy"), Action::StartGuiSession)
            .expect("client");
        let flags = flags.burst.get() as usize;
        assert_eq!(
            burst(&tenant.limiter),
            flags,
            "the operator's flags hold, whatever a tenant asks"
        );
        assert_eq!(burst(tenant.own_share.as_ref().expect("own share")), 10_000);
        // A cluster admin sets the AWS account's limit: every client of it is rebuilt with it.
        let admin = account("ClusterLightsailAccount shared", true, Some((1, 3)));
        l.check_account(admin).await.expect("checked");
        let tenant = l
            .region_client(scope("LightsailAccount t/greedy"), Action::StartGuiSession)
            .expect("client");
        let shared = l
            .region_client(
                scope("ClusterLightsailAccount shared"),
                Action::StartGuiSession,
            )
            .expect("client");
        assert!(
            Arc::ptr_eq(&tenant.limiter, &shared.limiter),
            "one limiter per AWS account"
        );
        assert_eq!(burst(&shared.limiter), 3);
        assert!(shared.own_share.is_none());
        // A modest tenant's share is its own, within the shared limit.
        let modest = account("LightsailAccount t/modest", false, Some((1, 1)));
        l.check_account(modest).await.expect("checked");
        let modest = l
            .region_client(scope("LightsailAccount t/modest"), Action::StartGuiSession)
            .expect("client");
        assert_eq!(burst(modest.own_share.as_ref().expect("own share")), 1);
        // The admin's account goes: the flags hold again.
        l.forget_account("ClusterLightsailAccount shared");
        let tenant = l
            .region_client(scope("LightsailAccount t/greedy"), Action::StartGuiSession)
            .expect("client");
        assert_eq!(burst(&tenant.limiter), flags);
        sim.shutdown().await.expect("shutdown");
    }

    #[test]
    fn region_names_are_checked_and_made_up_regions_cannot_grow_the_cache() {
        for good in [
            "eu-central-1",
            "us-gov-west-1",
            "ap-southeast-3",
            "cn-north-1",
        ] {
            assert!(is_region_name(good), "{good}");
        }
        for bad in [
            "",
            "eu",
            "eu-central",
            "EU-central-1",
            "eu--1",
            "e-central-1",
            "eu-central-x",
        ] {
            assert!(!is_region_name(bad), "{bad}");
        }
        let l = Lightsail::from_sdk_config(
            SdkConfig::builder()
                .behavior_version(BehaviorVersion::latest())
                .credentials_provider(signing_as("a", "b"))
                .build(),
            Some(REGION.into()),
            rate(),
            metrics(),
        );
        let refused = l
            .region_client(Scope::own(Some("not a region")), Action::StartGuiSession)
            .err()
            .expect("refused");
        assert_eq!(
            (refused.code.as_str(), refused.class),
            ("InvalidRegion", ErrorClass::Terminal)
        );
        for i in 0..(3 * MAX_CLIENTS) {
            let region = format!("xx-made-up-{i}");
            l.region_client(Scope::own(Some(&region)), Action::StartGuiSession)
                .expect("client");
        }
        assert!(l.clients.lock().expect("lock").len() <= MAX_CLIENTS);
        assert!(l.limiters.lock().expect("lock").len() <= MAX_CLIENTS);
    }

    async fn start(l: &Lightsail, name: &str) -> Result<Vec<Operation>, LightsailError> {
        l.start_gui_session(permit(l).await, name).await
    }

    /// A loopback port nothing listens on.
    fn closed_port() -> u16 {
        let listener = match std::net::TcpListener::bind("127.0.0.1:0") {
            Ok(listener) => listener,
            Err(e) => panic!("bind: {e}"),
        };
        match listener.local_addr() {
            Ok(addr) => addr.port(),
            Err(e) => panic!("local_addr: {e}"),
        }
    }

    /// (action, code, class, answered) of each modelled exception from each action.
    type Seen = Vec<(Action, LightsailException, String, ErrorClass, bool)>;

    async fn errors_in_style(style: ErrorStyle) -> Seen {
        let sim = simulator(
            SimConfig::default()
                .with_error_style(style)
                .with_computer(ComputerSpec::new("vm-err")),
        )
        .await;
        let l = lightsail_for(&sim);
        let operation_id = match start(&l, "vm-err").await.as_deref() {
            Ok([op]) => op.id.clone().unwrap_or_default(),
            other => panic!("start: {other:?}"),
        };
        let mut seen = Vec::new();
        for exception in LightsailException::ALL {
            let forced = ComputerSpec::new("vm-err").calls_fail_with(exception);
            assert!(sim.upsert_computer(forced).is_ok());
            let results = [
                (Action::StartGuiSession, start(&l, "vm-err").await.map(drop)),
                (
                    Action::StopGuiSession,
                    l.stop_gui_session(Scope::default(), "vm-err")
                        .await
                        .map(drop),
                ),
                (
                    Action::GetOperation,
                    l.get_operation(Scope::default(), &operation_id)
                        .await
                        .map(drop),
                ),
                (
                    Action::GetOperationsForResource,
                    l.operations_for_resource(Scope::default(), "vm-err")
                        .await
                        .map(drop),
                ),
            ];
            for (action, result) in results {
                let Err(e) = result else {
                    panic!("{action:?} succeeded despite {exception:?}");
                };
                assert_eq!(e.action, action);
                assert!(
                    e.message.contains("configured for vm-err"),
                    "{action:?} {exception:?}: {}",
                    e.message
                );
                seen.push((action, exception, e.code, e.class, e.answered));
            }
        }
        assert!(sim.upsert_computer(ComputerSpec::new("vm-err")).is_ok());
        let throttled = Faults {
            throttle_rate: 1.0,
            ..Faults::default()
        };
        assert!(sim.set_faults(throttled).is_ok());
        match start(&l, "vm-err").await {
            Err(e) => {
                assert_eq!(
                    (e.code.as_str(), e.class, e.answered),
                    ("Throttling", ErrorClass::Retryable, true),
                    "{e}"
                );
                assert!(e.message.contains("--rate-limit"), "{}", e.message);
            }
            Ok(ops) => panic!("throttled start succeeded: {ops:?}"),
        }
        if let Err(e) = sim.shutdown().await {
            panic!("{e:#}");
        }
        seen
    }

    #[tokio::test]
    async fn both_error_body_styles_give_the_same_code_class_and_answered() {
        let with_code = errors_in_style(ErrorStyle::Code).await;
        let with_type = errors_in_style(ErrorStyle::Type).await;
        assert_eq!(with_code, with_type);
        for (action, exception, code, class, answered) in &with_code {
            assert_eq!(code, exception.code(), "{action:?}");
            let expected = match exception {
                LightsailException::AccessDenied
                | LightsailException::InvalidInput
                | LightsailException::NotFound
                | LightsailException::OperationFailure
                | LightsailException::Unauthenticated => ErrorClass::Terminal,
                LightsailException::AccountSetupInProgress
                | LightsailException::RegionSetupInProgress
                | LightsailException::Service => ErrorClass::Retryable,
            };
            assert_eq!(*class, expected, "{action:?} {exception:?}");
            // ServiceException is the one server fault (HTTP 500): the service may have acted.
            let client_error = *exception != LightsailException::Service;
            assert_eq!(*answered, client_error, "{action:?} {exception:?}");
        }
    }

    #[tokio::test]
    async fn refused_signatures_are_terminal_answered_and_never_show_the_secret() {
        let sim = simulator(SimConfig::default().with_computer(ComputerSpec::new("vm-auth"))).await;
        for (key, secret, code) in [
            (sim.access_key_id(), "not-the-secret", "InvalidSignature"),
            (
                "AKIDSOMEONEELSE",
                sim.secret_access_key(),
                "InvalidClientTokenId",
            ),
        ] {
            let l = Lightsail::from_sdk_config(
                sdk_config(&sim.endpoint_url(), signing_as(key, secret)),
                Some(REGION.into()),
                rate(),
                metrics(),
            );
            let Err(e) = start(&l, "vm-auth").await else {
                panic!("{code}: accepted");
            };
            assert_eq!(
                (e.code.as_str(), e.class, e.answered),
                (code, ErrorClass::Terminal, true)
            );
            assert!(e.message.contains("credentials"), "{}", e.message);
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains(secret), "{shown}");
        }
        assert_eq!(sim.computer("vm-auth").map(|c| c.operation_count), Some(0));
    }

    #[tokio::test]
    async fn request_expired_is_retryable_because_the_next_call_uses_aws_time() {
        let sim = simulator(
            SimConfig::default()
                .with_clock_offset(SignedDuration::from_hours(-2))
                .with_computer(ComputerSpec::new("vm-skew")),
        )
        .await;
        let l = lightsail_for(&sim);
        let Err(e) = start(&l, "vm-skew").await else {
            panic!("a start signed two hours off was accepted");
        };
        assert_eq!(
            (e.code.as_str(), e.class, e.answered),
            ("RequestExpired", ErrorClass::Retryable, true)
        );
        assert!(e.message.contains("NTP"), "{}", e.message);
        let ops = start(&l, "vm-skew").await;
        assert!(ops.as_ref().is_ok_and(|ops| ops.len() == 1), "{ops:?}");
        let log = sim.call_log();
        let outcomes: Vec<&str> = log.entries.iter().map(|e| e.outcome.as_str()).collect();
        assert_eq!(outcomes, ["RequestExpired", "ok"]);
    }

    /// Checks a `NoCredentials` error and that nothing reached the simulator.
    fn assert_no_credentials(e: &LightsailError, sim: &RunningSimulator) {
        assert_eq!(
            (e.code.as_str(), e.class, e.answered),
            ("NoCredentials", ErrorClass::Terminal, true),
            "{e}"
        );
        for source in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "EKS Pod Identity",
            "profile",
            "IMDS",
        ] {
            assert!(e.message.contains(source), "no {source}: {}", e.message);
        }
        assert_eq!(sim.calls().total, 0, "a call was sent");
    }

    #[tokio::test]
    async fn the_default_chain_without_credentials_fails_before_sending_as_no_credentials() {
        let sim = simulator(SimConfig::default().with_computer(ComputerSpec::new("vm-1"))).await;
        // The SDK's default chain with nothing to find: no environment, a profile without
        // credentials, and instance metadata (IMDS) at a port nobody listens on.
        let profile = format!(
            "[default]\nec2_metadata_service_endpoint = http://127.0.0.1:{}\n",
            closed_port()
        );
        // aws-runtime, which owns the type, is not a dependency; the alias is the same type.
        #[allow(deprecated)]
        let profile_files = aws_config::profile::profile_file::ProfileFiles::builder()
            .with_contents(
                aws_config::profile::profile_file::ProfileFileKind::Config,
                profile,
            )
            .build();
        let base = aws_config::defaults(BehaviorVersion::latest())
            .empty_test_environment()
            .profile_files(profile_files)
            .region(Region::new("us-east-1"))
            .endpoint_url(sim.endpoint_url())
            .load()
            .await;

        // What the SDK itself reports: a dispatch failure caused by the provider's
        // CredentialsError, raised before anything is sent.
        let raw = Client::new(&base)
            .start_gui_session()
            .resource_name("vm-1")
            .send()
            .await;
        let Err(raw) = raw else {
            panic!("started without credentials");
        };
        assert!(matches!(raw, SdkError::DispatchFailure(_)), "{raw:?}");
        let cause = sources(&raw).find_map(|e| e.downcast_ref::<CredentialsError>());
        assert!(
            matches!(cause, Some(CredentialsError::CredentialsNotLoaded(_))),
            "{raw:?}"
        );

        let l = Lightsail::from_sdk_config(base, Some(REGION.into()), rate(), metrics());
        let Err(e) = start(&l, "vm-1").await else {
            panic!("started without credentials");
        };
        assert_no_credentials(&e, &sim);
        assert!(
            e.message.contains("The SDK said: ")
                && e.message.contains("Ec2InstanceMetadata")
                && !e.message.contains('\n'),
            "{}",
            e.message
        );
    }

    #[tokio::test]
    async fn every_way_credentials_fail_is_no_credentials() {
        let sim = simulator(SimConfig::default().with_computer(ComputerSpec::new("vm-1"))).await;
        let failing = [
            SharedCredentialsProvider::new(provide_credentials_fn(|| async {
                Err(CredentialsError::not_loaded("nothing in the environment"))
            })),
            // What IMDS answering 403 looks like.
            SharedCredentialsProvider::new(provide_credentials_fn(|| async {
                Err(CredentialsError::provider_error("IMDS: request forbidden"))
            })),
            SharedCredentialsProvider::new(provide_credentials_fn(|| async {
                Err(CredentialsError::invalid_configuration(
                    "AWS_SECRET_ACCESS_KEY is not set",
                ))
            })),
        ];
        for provider in failing {
            let l = Lightsail::from_sdk_config(
                sdk_config(&sim.endpoint_url(), provider),
                Some(REGION.into()),
                rate(),
                metrics(),
            );
            let Err(e) = start(&l, "vm-1").await else {
                panic!("started without credentials");
            };
            assert_no_credentials(&e, &sim);
        }

        // A provider that never answers, cut off by the identity cache's load timeout.
        let never = SharedCredentialsProvider::new(provide_credentials_fn(
            std::future::pending::<aws_credential_types::provider::Result>,
        ));
        let hanging = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(sim.endpoint_url())
            .credentials_provider(never)
            .identity_cache(
                aws_config::identity::IdentityCache::lazy()
                    .load_timeout(Duration::from_millis(100))
                    .build(),
            )
            .build();
        let l = Lightsail::from_sdk_config(hanging, Some(REGION.into()), rate(), metrics());
        let Err(e) = start(&l, "vm-1").await else {
            panic!("started without credentials");
        };
        assert_no_credentials(&e, &sim);
        assert!(e.message.contains("timed out"), "{}", e.message);

        // No credentials provider at all.
        let bare = SdkConfig::builder()
            .region(Region::new("us-east-1"))
            .endpoint_url(sim.endpoint_url())
            .build();
        let l = Lightsail::from_sdk_config(bare, Some(REGION.into()), rate(), metrics());
        let Err(e) = l.permit(Scope::default(), Action::StartGuiSession).await else {
            panic!("a permit without credentials");
        };
        assert_no_credentials(&e, &sim);
    }

    #[tokio::test]
    async fn answered_follows_the_http_status_and_unanswered_calls_are_not() {
        fn reply(status: u16, body: &'static str) -> HttpResponse {
            let status = match status.try_into() {
                Ok(status) => status,
                Err(e) => panic!("{e}"),
            };
            HttpResponse::new(status, aws_smithy_types::body::SdkBody::from(body))
        }
        let answers = mock!(Client::start_gui_session)
            .sequence()
            .http_response(|| {
                reply(
                    503,
                    r#"{"__type":"ServiceUnavailableException","message":"down"}"#,
                )
            })
            .http_response(|| reply(500, r#"{"__type":"InternalFailure","message":"oops"}"#))
            .http_response(|| {
                reply(
                    400,
                    r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
                )
            })
            .http_response(|| reply(400, r#"{"__type":"ValidationException","message":"bad"}"#))
            .http_response(|| reply(200, "this is not JSON"))
            .build();
        // The operator's clients do not retry; the SDK would otherwise retry 5xx and throttling.
        let l = with_client(mock_client!(
            aws_sdk_lightsail,
            RuleMode::Sequential,
            [&answers],
            |conf| conf.retry_config(RetryConfig::disabled())
        ));
        let expected = [
            ("ServiceUnavailable", ErrorClass::Retryable, false),
            ("InternalFailure", ErrorClass::Retryable, false),
            ("Throttling", ErrorClass::Retryable, true),
            ("Validation", ErrorClass::Terminal, true),
            ("InvalidResponse", ErrorClass::Retryable, false),
        ];
        for (code, class, answered) in expected {
            let Err(e) = start(&l, "vm-1").await else {
                panic!("{code}: succeeded");
            };
            assert_eq!(
                (e.code.as_str(), e.class, e.answered),
                (code, class, answered),
                "{e}"
            );
        }

        // Nobody listening: the request may or may not have left.
        let refused = Lightsail::from_sdk_config(
            sdk_config(
                &format!("http://127.0.0.1:{}", closed_port()),
                signing_as("AKID", "secret"),
            ),
            Some(REGION.into()),
            rate(),
            metrics(),
        );
        let Err(e) = start(&refused, "vm-1").await else {
            panic!("a start without a server succeeded");
        };
        assert_eq!(
            (e.code.as_str(), e.class, e.answered),
            ("ConnectionFailed", ErrorClass::Retryable, false),
            "{e}"
        );
        assert!(e.message.contains("network egress"), "{}", e.message);
    }

    #[tokio::test]
    async fn operations_for_resource_reads_every_page() {
        let sim = simulator(
            SimConfig::default()
                .with_operations_page_size(2)
                .with_computer(ComputerSpec::new("vm-pages")),
        )
        .await;
        let l = lightsail_for(&sim);
        let mut started = std::collections::BTreeSet::new();
        for _ in 0..7 {
            match start(&l, "vm-pages").await.as_deref() {
                Ok([op]) => started.insert(op.id.clone()),
                other => panic!("start: {other:?}"),
            };
        }
        let listed = match l
            .operations_for_resource(Scope::default(), "vm-pages")
            .await
        {
            Ok(ops) => ops,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(listed.len(), 7);
        let listed: std::collections::BTreeSet<_> = listed.into_iter().map(|op| op.id).collect();
        assert_eq!(listed, started);
        assert_eq!(
            sim.calls().count(
                Some("GetOperationsForResource"),
                Some("vm-pages"),
                Some("ok")
            ),
            4
        );
    }

    #[tokio::test]
    async fn operations_for_resource_stops_at_the_page_bound() {
        let endless = mock!(Client::get_operations_for_resource)
            .sequence()
            .output(|| {
                GetOperationsForResourceOutput::builder()
                    .operations(sdk::Operation::builder().id("op").build())
                    .next_page_token("more")
                    .build()
            })
            .repeatedly()
            .build();
        let l = with_client(mock_client!(aws_sdk_lightsail, [&endless]));
        let listed = l.operations_for_resource(Scope::default(), "vm-1").await;
        assert_eq!(listed.map(|ops| ops.len()), Ok(MAX_OPERATION_PAGES));
        assert_eq!(endless.num_calls(), MAX_OPERATION_PAGES);
    }
}
