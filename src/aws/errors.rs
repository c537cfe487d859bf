//! Lightsail errors as the operator sees them: the code, whether retrying can help
//! ([`ErrorClass`]), what a user can do about it, and whether a start may have happened.
//! Plain values, with no SDK client: the policy reads them.

use super::model::Action;

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
     lightsail:StopGUISession, lightsail:GetOperation, lightsail:GetOperationsForResource and \
     lightsail:GetInstanceState (with spec.computer also lightsail:GetInstance, \
     lightsail:StartInstance, lightsail:StopInstance and lightsail:EnableAddOn)";

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

pub(super) fn normalize_code(code: &str) -> &str {
    code.strip_suffix("Exception").unwrap_or(code)
}

/// The message on one line (status conditions and log lines read badly with line breaks; the
/// SDK's credential chain lists what it tried one per line).
pub(super) fn one_line(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for line in message.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !out.is_empty() {
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(line);
    }
    out
}

pub(super) fn with_hint(message: String, hint: Option<&str>) -> String {
    let message = one_line(&message);
    match hint {
        Some(hint) if !message.is_empty() => format!("{message} ({hint})"),
        Some(hint) => hint.to_owned(),
        None => message,
    }
}

pub(super) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
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
pub(super) fn sources<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| e.source())
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

    /// A request the SDK could not build (never sent).
    pub(super) fn invalid_request(action: Action, message: &str) -> Self {
        LightsailError {
            action,
            code: "InvalidRequest".into(),
            message: message.into(),
            class: describe("InvalidRequest").class,
            answered: true,
        }
    }

    /// An error for a call that was never sent because there are no credentials.
    pub(super) fn no_credentials(action: Action, cause: &str) -> Self {
        LightsailError {
            action,
            code: "NoCredentials".into(),
            message: one_line(&format!("{CREDENTIAL_SOURCES}. The SDK said: {cause}")),
            class: classify("NoCredentials"),
            answered: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
