//! The STS wire format (awsQuery): form-encoded `POST /` requests
//! (`Action=AssumeRole&Version=2011-06-15&…`), XML answers and XML errors in the
//! `https://sts.amazonaws.com/doc/2011-06-15/` namespace. What the actions do is in
//! [`identity`](super::identity); the routing is in [`server`](super::server).

use super::calls::{AssumeRoleRequest, SessionTag};
use super::config::{is_valid_external_id, is_valid_role_session_name};
use super::identity::{AssumeRoleInput, Caller, IssuedCredentials, Refusal, parse_role_arn};
use super::wire::{AwsError, ErrorCode};
use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::time::SystemTime;

/// SigV4 signing name of STS.
pub(crate) const SERVICE: &str = "sts";
/// The only API version STS has.
pub(crate) const VERSION: &str = "2011-06-15";
const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";
/// Shortest and longest `DurationSeconds` the API model allows.
const DURATION_RANGE: std::ops::RangeInclusive<i64> = 900..=43_200;
/// Most session tags, and most transitive tag keys, one `AssumeRole` may carry.
const MAX_SESSION_TAGS: usize = 50;
/// Longest session tag key and value, in characters.
const MAX_TAG_KEY_CHARS: usize = 128;
const MAX_TAG_VALUE_CHARS: usize = 256;

/// Whether a request is for STS: awsQuery requests are form-encoded, Lightsail's are JSON.
pub(crate) fn is_sts_request(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.get(..FORM_CONTENT_TYPE.len()))
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(FORM_CONTENT_TYPE))
}

/// The simulated STS actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StsAction {
    /// `AssumeRole`
    AssumeRole,
    /// `GetCallerIdentity`
    GetCallerIdentity,
}

impl StsAction {
    /// The action's wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::AssumeRole => "AssumeRole",
            Self::GetCallerIdentity => "GetCallerIdentity",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "AssumeRole" => Some(Self::AssumeRole),
            "GetCallerIdentity" => Some(Self::GetCallerIdentity),
            _ => None,
        }
    }
}

/// A decoded `application/x-www-form-urlencoded` body, its pairs in order.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// Decodes leniently, as form decoders do: `+` is a space, `%XX` a byte, a `%` not followed
    /// by two hex digits stays as it is, a pair without `=` has an empty value, and bytes that
    /// are not UTF-8 become U+FFFD.
    pub(crate) fn parse(body: &[u8]) -> Self {
        let pairs = body
            .split(|b| *b == b'&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = match pair.iter().position(|b| *b == b'=') {
                    Some(at) => (&pair[..at], &pair[at + 1..]),
                    None => (pair, &[][..]),
                };
                (decode_component(key), decode_component(value))
            })
            .collect();
        Self { pairs }
    }

    /// The first value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }

    /// The members of an awsQuery list, `PREFIXN` and `PREFIXN.FIELD` (N from 1), by N and
    /// field (empty for `PREFIXN`); the first value of each wins. Names with another N (not a
    /// positive number) are ignored, as other unknown parameters are.
    fn list(&self, prefix: &str) -> BTreeMap<u32, BTreeMap<&str, &str>> {
        let mut members: BTreeMap<u32, BTreeMap<&str, &str>> = BTreeMap::new();
        for (name, value) in &self.pairs {
            let Some(rest) = name.strip_prefix(prefix) else {
                continue;
            };
            let (index, field) = rest.split_once('.').unwrap_or((rest, ""));
            let Some(index) = index.parse::<u32>().ok().filter(|n| *n >= 1) else {
                continue;
            };
            members
                .entry(index)
                .or_default()
                .entry(field)
                .or_insert(value.as_str());
        }
        members
    }
}

/// The characters of a session tag key or value: `[\p{L}\p{Z}\p{N}_.:/=+\-@]`. Letters are
/// Rust's alphabetic characters, which also takes the few combining marks Unicode counts as
/// alphabetic.
fn is_session_tag_char(c: char) -> bool {
    c.is_alphabetic()
        || c.is_numeric()
        // White space that is not a control character is exactly Unicode's separators (Z).
        || (c.is_whitespace() && !c.is_control())
        || "_.:/=+-@".contains(c)
}

fn decode_component(bytes: &[u8]) -> String {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => decoded.push(b' '),
            b'%' => match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(high), Some(low)) => {
                    // Two hex digits make at most 0xff.
                    decoded.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                    i += 2;
                }
                _ => decoded.push(b'%'),
            },
            other => decoded.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// An STS error answer: `<ErrorResponse><Error><Type/><Code/><Message/></Error>…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StsError {
    /// `AccessDenied`, `ValidationError`, … (also the outcome in the call counts).
    pub code: &'static str,
    pub status: StatusCode,
    pub message: String,
}

impl StsError {
    fn new(code: &'static str, status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            code,
            status,
            message: message.into(),
        }
    }

    /// AWS's answer when a role does not exist, does not trust the caller, or wants another
    /// external id: it does not say which.
    pub(crate) fn access_denied(caller: &Caller, role_arn: &str) -> Self {
        Self::not_authorized(caller, "sts:AssumeRole", role_arn)
    }

    /// `AccessDenied` naming the action refused (`sts:AssumeRole`, `sts:TagSession`).
    fn not_authorized(caller: &Caller, action: &str, role_arn: &str) -> Self {
        Self::new(
            "AccessDenied",
            StatusCode::FORBIDDEN,
            format!(
                "User: {} is not authorized to perform: {action} on resource: {role_arn}",
                caller.arn
            ),
        )
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::new("ValidationError", StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn refused(refusal: Refusal, caller: &Caller, role_arn: &str) -> Self {
        match refusal {
            Refusal::AccessDenied => Self::access_denied(caller, role_arn),
            Refusal::TagSessionDenied => Self::not_authorized(caller, "sts:TagSession", role_arn),
            Refusal::Duration(message) => Self::validation(message),
        }
    }

    /// A missing `Action`, an action STS does not have (or the simulator does not simulate),
    /// or a `Version` other than 2011-06-15.
    pub(crate) fn unknown_action(action: Option<&str>, version: Option<&str>) -> Self {
        let version = version.unwrap_or("NO_VERSION_SPECIFIED");
        match action {
            None => Self::new(
                "MissingAction",
                StatusCode::BAD_REQUEST,
                "The request must contain the parameter Action",
            ),
            Some(action) => Self::new(
                "InvalidAction",
                StatusCode::BAD_REQUEST,
                format!("Could not find operation {action} for version {version}"),
            ),
        }
    }

    /// The injected outage (`StsFaults::unavailable`): 503, a server error the SDK retries.
    pub(crate) fn service_unavailable() -> Self {
        Self::new(
            "ServiceUnavailable",
            StatusCode::SERVICE_UNAVAILABLE,
            "Service is unavailable. Please try again later. (injected by lightsail-sim)",
        )
    }

    /// Injected throttling (`StsFaults::throttle_rate`), as STS throttles: 400 `Throttling`.
    pub(crate) fn throttling() -> Self {
        Self::new("Throttling", StatusCode::BAD_REQUEST, "Rate exceeded")
    }

    /// An injected server fault (`StsFaults::service_error_rate`): 500 `InternalFailure`.
    pub(crate) fn internal_failure() -> Self {
        Self::new(
            "InternalFailure",
            StatusCode::INTERNAL_SERVER_ERROR,
            "An internal error occurred (injected by lightsail-sim).",
        )
    }

    /// The STS form of an authentication failure.
    pub(crate) fn from_auth(error: AwsError) -> Self {
        let AwsError { code, message } = error;
        match code {
            ErrorCode::MissingAuthenticationToken => Self::new(
                "MissingAuthenticationToken",
                StatusCode::FORBIDDEN,
                "Request is missing Authentication Token",
            ),
            ErrorCode::IncompleteSignature => {
                Self::new("IncompleteSignature", StatusCode::BAD_REQUEST, message)
            }
            ErrorCode::InvalidClientTokenId => {
                Self::new("InvalidClientTokenId", StatusCode::FORBIDDEN, message)
            }
            ErrorCode::ExpiredToken => Self::new("ExpiredToken", StatusCode::BAD_REQUEST, message),
            ErrorCode::InvalidSignature => {
                Self::new("SignatureDoesNotMatch", StatusCode::FORBIDDEN, message)
            }
            ErrorCode::RequestExpired => Self::new(
                "SignatureDoesNotMatch",
                StatusCode::FORBIDDEN,
                format!(
                    "Signature expired: {}",
                    message
                        .strip_prefix("Request has expired: ")
                        .unwrap_or(&message)
                ),
            ),
            ErrorCode::Lightsail(_)
            | ErrorCode::Throttling
            | ErrorCode::UnknownOperation
            | ErrorCode::Serialization => Self::new(
                "InternalFailure",
                StatusCode::INTERNAL_SERVER_ERROR,
                message,
            ),
        }
    }

    pub(crate) fn into_response(self, request_id: &str) -> Response {
        xml_response(self.status, error_xml(&self, request_id), request_id)
    }
}

/// `AssumeRole`'s parameters, checked as STS checks them before looking at the role: all
/// constraint violations are reported together, as AWS does.
pub(crate) fn assume_role_input(form: &Form) -> Result<AssumeRoleInput<'_>, StsError> {
    let mut errors = Vec::new();
    let mut violation = |value: Option<&str>, member: &str, constraint: String| {
        errors.push(match value {
            Some(value) => {
                format!("Value '{value}' at '{member}' failed to satisfy constraint: {constraint}")
            }
            None => format!("Value null at '{member}' failed to satisfy constraint: {constraint}"),
        });
    };
    let role_arn = form.get("RoleArn");
    match role_arn {
        None => violation(None, "roleArn", "Member must not be null".to_owned()),
        Some(arn) if arn.len() < 20 => violation(
            Some(arn),
            "roleArn",
            "Member must have length greater than or equal to 20".to_owned(),
        ),
        Some(arn) if arn.len() > 2048 => violation(
            Some(arn),
            "roleArn",
            "Member must have length less than or equal to 2048".to_owned(),
        ),
        Some(_) => {}
    }
    let session_name = form.get("RoleSessionName");
    match session_name {
        None => violation(
            None,
            "roleSessionName",
            "Member must not be null".to_owned(),
        ),
        Some(name) if !is_valid_role_session_name(name) => {
            let constraint = if name.len() < 2 {
                "Member must have length greater than or equal to 2"
            } else if name.len() > 64 {
                "Member must have length less than or equal to 64"
            } else {
                "Member must satisfy regular expression pattern: [\\w+=,.@-]*"
            };
            violation(Some(name), "roleSessionName", constraint.to_owned());
        }
        Some(_) => {}
    }
    let external_id = form.get("ExternalId");
    if let Some(id) = external_id
        && !is_valid_external_id(id)
    {
        let constraint = if id.len() < 2 {
            "Member must have length greater than or equal to 2"
        } else if id.len() > 1224 {
            "Member must have length less than or equal to 1224"
        } else {
            "Member must satisfy regular expression pattern: [\\w+=,.@:\\/-]*"
        };
        violation(Some(id), "externalId", constraint.to_owned());
    }
    let duration = form.get("DurationSeconds");
    let mut duration_seconds = None;
    if let Some(text) = duration {
        match text.parse::<i64>() {
            Err(_) => violation(
                Some(text),
                "durationSeconds",
                "Member must be a number".to_owned(),
            ),
            Ok(value) if value < *DURATION_RANGE.start() => violation(
                Some(text),
                "durationSeconds",
                format!(
                    "Member must have value greater than or equal to {}",
                    DURATION_RANGE.start()
                ),
            ),
            Ok(value) if value > *DURATION_RANGE.end() => violation(
                Some(text),
                "durationSeconds",
                format!(
                    "Member must have value less than or equal to {}",
                    DURATION_RANGE.end()
                ),
            ),
            Ok(value) => duration_seconds = u32::try_from(value).ok(),
        }
    }
    let tag_members = form.list("Tags.member.");
    if tag_members.len() > MAX_SESSION_TAGS {
        let keys: Vec<&str> = tag_members
            .values()
            .filter_map(|fields| fields.get("Key").copied())
            .collect();
        violation(
            Some(format!("[{}]", keys.join(", ")).as_str()),
            "tags",
            format!("Member must have length less than or equal to {MAX_SESSION_TAGS}"),
        );
    }
    let mut tags = Vec::new();
    for (n, fields) in &tag_members {
        let key = fields.get("Key").copied();
        let value = fields.get("Value").copied();
        let key_constraint = key.map_or(Some("Member must not be null".to_owned()), |key| {
            tag_text_constraint(key, 1, MAX_TAG_KEY_CHARS)
        });
        if let Some(constraint) = key_constraint {
            violation(key, &format!("tags.{n}.member.key"), constraint);
        }
        let value_constraint = value.map_or(Some("Member must not be null".to_owned()), |value| {
            tag_text_constraint(value, 0, MAX_TAG_VALUE_CHARS)
        });
        if let Some(constraint) = value_constraint {
            violation(value, &format!("tags.{n}.member.value"), constraint);
        }
        if let (Some(key), Some(value)) = (key, value) {
            tags.push(SessionTag::new(key, value));
        }
    }
    let transitive_members = form.list("TransitiveTagKeys.member.");
    if transitive_members.len() > MAX_SESSION_TAGS {
        let keys: Vec<&str> = transitive_members
            .values()
            .filter_map(|fields| fields.get("").copied())
            .collect();
        violation(
            Some(format!("[{}]", keys.join(", ")).as_str()),
            "transitiveTagKeys",
            format!("Member must have length less than or equal to {MAX_SESSION_TAGS}"),
        );
    }
    let mut transitive_tag_keys = Vec::new();
    for (n, fields) in &transitive_members {
        let Some(key) = fields.get("").copied() else {
            continue;
        };
        match tag_text_constraint(key, 1, MAX_TAG_KEY_CHARS) {
            Some(constraint) => violation(
                Some(key),
                &format!("transitiveTagKeys.{n}.member"),
                constraint,
            ),
            None => transitive_tag_keys.push(key.to_owned()),
        }
    }
    if !errors.is_empty() {
        let count = errors.len();
        let plural = if count == 1 { "" } else { "s" };
        return Err(StsError::validation(format!(
            "{count} validation error{plural} detected: {}",
            errors.join("; ")
        )));
    }
    let (Some(role_arn), Some(session_name)) = (role_arn, session_name) else {
        return Err(StsError::validation(
            "RoleArn and RoleSessionName are required",
        ));
    };
    let mut seen = HashSet::new();
    if !tags.iter().all(|tag| seen.insert(tag.key.to_lowercase())) {
        return Err(StsError::validation(
            "Duplicate tag keys found. Please note that Tag keys are case insensitive.",
        ));
    }
    let Some((account, role_name)) = parse_role_arn(role_arn) else {
        return Err(StsError::validation(format!(
            "Request ARN is invalid: {role_arn} is not arn:aws:iam::ACCOUNT:role/NAME"
        )));
    };
    Ok(AssumeRoleInput {
        role_arn,
        account,
        role_name,
        session_name,
        external_id,
        duration_seconds,
        tags,
        transitive_tag_keys,
    })
}

/// The constraint a session tag key (`min` 1, `max` 128) or value (0, 256) breaks, if any.
fn tag_text_constraint(text: &str, min: usize, max: usize) -> Option<String> {
    let chars = text.chars().count();
    if chars < min {
        Some(format!(
            "Member must have length greater than or equal to {min}"
        ))
    } else if chars > max {
        Some(format!(
            "Member must have length less than or equal to {max}"
        ))
    } else if !text.chars().all(is_session_tag_char) {
        let repeat = if min == 0 { '*' } else { '+' };
        Some(format!(
            "Member must satisfy regular expression pattern: [\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@]{repeat}"
        ))
    } else {
        None
    }
}

/// What the call log keeps of an `AssumeRole` (no secrets: it has none).
pub(crate) fn logged_request(input: &AssumeRoleInput<'_>) -> AssumeRoleRequest {
    AssumeRoleRequest {
        role_arn: input.role_arn.to_owned(),
        role_session_name: input.session_name.to_owned(),
        external_id: input.external_id.map(str::to_owned),
        duration_seconds: input.duration_seconds,
        tags: input.tags.clone(),
        transitive_tag_keys: input.transitive_tag_keys.clone(),
    }
}

/// Escapes text for XML element content and attributes. Characters XML 1.0 cannot carry at all
/// (most control characters, U+FFFE, U+FFFF) become U+FFFD.
pub(crate) fn xml_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            '\t' | '\n' | '\r' => escaped.push(c),
            c if c < ' ' || c == '\u{fffe}' || c == '\u{ffff}' => escaped.push('\u{fffd}'),
            c => escaped.push(c),
        }
    }
    escaped
}

/// `<name>escaped text</name>`.
fn element(xml: &mut String, name: &str, text: &str) {
    // Writing into a String cannot fail.
    let _ = write!(xml, "<{name}>{}</{name}>", xml_escape(text));
}

/// `2026-11-28T17:00:00Z`, the form STS writes `Expiration` in.
fn iso8601(time: SystemTime) -> String {
    jiff::Timestamp::try_from(time)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

fn response_metadata(xml: &mut String, request_id: &str) {
    xml.push_str("<ResponseMetadata>");
    element(xml, "RequestId", request_id);
    xml.push_str("</ResponseMetadata>");
}

/// The `AssumeRole` answer. It carries the new secret key and session token: it goes to the
/// client only, never into a log.
pub(crate) fn assume_role_xml(issued: &IssuedCredentials, request_id: &str) -> String {
    let mut xml = format!("<AssumeRoleResponse xmlns=\"{NAMESPACE}\"><AssumeRoleResult>");
    xml.push_str("<Credentials>");
    element(&mut xml, "AccessKeyId", &issued.access_key_id);
    element(&mut xml, "SecretAccessKey", &issued.secret_access_key);
    element(&mut xml, "SessionToken", &issued.session_token);
    element(&mut xml, "Expiration", &iso8601(issued.expiration));
    xml.push_str("</Credentials><AssumedRoleUser>");
    element(&mut xml, "Arn", &issued.assumed_role_arn);
    element(&mut xml, "AssumedRoleId", &issued.assumed_role_id);
    xml.push_str("</AssumedRoleUser></AssumeRoleResult>");
    response_metadata(&mut xml, request_id);
    xml.push_str("</AssumeRoleResponse>");
    xml
}

/// The `GetCallerIdentity` answer.
pub(crate) fn caller_identity_xml(caller: &Caller, request_id: &str) -> String {
    let mut xml =
        format!("<GetCallerIdentityResponse xmlns=\"{NAMESPACE}\"><GetCallerIdentityResult>");
    element(&mut xml, "Arn", &caller.arn);
    element(&mut xml, "UserId", &caller.user_id);
    element(&mut xml, "Account", &caller.account);
    xml.push_str("</GetCallerIdentityResult>");
    response_metadata(&mut xml, request_id);
    xml.push_str("</GetCallerIdentityResponse>");
    xml
}

/// The error body: `Sender` for client errors, `Receiver` for server faults.
pub(crate) fn error_xml(error: &StsError, request_id: &str) -> String {
    let fault = if error.status.is_server_error() {
        "Receiver"
    } else {
        "Sender"
    };
    let mut xml = format!("<ErrorResponse xmlns=\"{NAMESPACE}\"><Error>");
    element(&mut xml, "Type", fault);
    element(&mut xml, "Code", error.code);
    element(&mut xml, "Message", &error.message);
    xml.push_str("</Error>");
    element(&mut xml, "RequestId", request_id);
    xml.push_str("</ErrorResponse>");
    xml
}

/// An XML response with the headers STS sends.
pub(crate) fn xml_response(status: StatusCode, body: String, request_id: &str) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn form(text: &str) -> Form {
        Form::parse(text.as_bytes())
    }

    #[test]
    fn forms_decode_plus_percent_and_oddities() {
        let parsed = form(
            "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fgui\
             &RoleSessionName=a+b&ExternalId=100%25&Empty=&Bare&&Bad=%zz%4&Dup=1&Dup=2&Utf=%C3%A9%FF",
        );
        assert_eq!(parsed.get("Action"), Some("AssumeRole"));
        assert_eq!(
            parsed.get("RoleArn"),
            Some("arn:aws:iam::111122223333:role/gui")
        );
        assert_eq!(parsed.get("RoleSessionName"), Some("a b"));
        assert_eq!(parsed.get("ExternalId"), Some("100%"));
        assert_eq!(parsed.get("Empty"), Some(""));
        assert_eq!(parsed.get("Bare"), Some(""));
        assert_eq!(parsed.get("Bad"), Some("%zz%4"));
        assert_eq!(parsed.get("Dup"), Some("1"));
        assert_eq!(parsed.get("Utf"), Some("é\u{fffd}"));
        assert_eq!(parsed.get("Missing"), None);
        assert_eq!(Form::parse(b""), Form::default());
        // The key is decoded too.
        assert_eq!(
            form("Role%53essionName=x").get("RoleSessionName"),
            Some("x")
        );
    }

    #[test]
    fn sts_requests_are_told_apart_by_their_content_type() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            is_sts_request(&headers)
        };
        assert!(with("application/x-www-form-urlencoded"));
        assert!(with("application/x-www-form-urlencoded; charset=utf-8"));
        assert!(with("Application/X-WWW-Form-Urlencoded"));
        assert!(!with("application/x-amz-json-1.1"));
        assert!(!with("application/x-www"));
        assert!(!is_sts_request(&HeaderMap::new()));
    }

    #[test]
    fn xml_text_is_escaped_and_unrepresentable_characters_replaced() {
        assert_eq!(
            xml_escape(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &apos;Jerry&apos;&lt;/a&gt;"
        );
        assert_eq!(
            xml_escape("tab\tline\nnul\0bell\u{7}\u{ffff}"),
            "tab\tline\nnul\u{fffd}bell\u{fffd}\u{fffd}"
        );
        assert_eq!(xml_escape("plain é"), "plain é");
    }

    fn caller() -> Caller {
        Caller {
            account: Arc::from("111122223333"),
            arn: Arc::from("arn:aws:sts::111122223333:assumed-role/gui/s<1>"),
            user_id: Arc::from("AROAEXAMPLE:s<1>"),
            assumed_role: true,
            principal_arn: Arc::from("arn:aws:iam::111122223333:role/gui"),
            session_tags: Arc::from([]),
        }
    }

    #[test]
    fn answers_render_in_the_sts_shapes() {
        let issued = IssuedCredentials {
            access_key_id: "ASIAEXAMPLE".to_owned(),
            secret_access_key: "se/cr+et".to_owned(),
            session_token: "to&ken".to_owned(),
            expiration: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_885_200),
            assumed_role_arn: Arc::from("arn:aws:sts::111122223333:assumed-role/gui/s1"),
            assumed_role_id: Arc::from("AROAEXAMPLE:s1"),
        };
        assert_eq!(
            assume_role_xml(&issued, "req-1"),
            "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <AssumeRoleResult><Credentials><AccessKeyId>ASIAEXAMPLE</AccessKeyId>\
             <SecretAccessKey>se/cr+et</SecretAccessKey><SessionToken>to&amp;ken</SessionToken>\
             <Expiration>2026-11-28T17:00:00Z</Expiration></Credentials><AssumedRoleUser>\
             <Arn>arn:aws:sts::111122223333:assumed-role/gui/s1</Arn>\
             <AssumedRoleId>AROAEXAMPLE:s1</AssumedRoleId></AssumedRoleUser></AssumeRoleResult>\
             <ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></AssumeRoleResponse>"
        );
        assert_eq!(
            caller_identity_xml(&caller(), "req-2"),
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <GetCallerIdentityResult><Arn>arn:aws:sts::111122223333:assumed-role/gui/s&lt;1&gt;</Arn>\
             <UserId>AROAEXAMPLE:s&lt;1&gt;</UserId><Account>111122223333</Account>\
             </GetCallerIdentityResult><ResponseMetadata><RequestId>req-2</RequestId>\
             </ResponseMetadata></GetCallerIdentityResponse>"
        );
        let denied = StsError::access_denied(&caller(), "arn:aws:iam::1:role/<x>&");
        assert_eq!(denied.status, StatusCode::FORBIDDEN);
        assert_eq!(
            error_xml(&denied, "req-3"),
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
             <Type>Sender</Type><Code>AccessDenied</Code><Message>User: \
             arn:aws:sts::111122223333:assumed-role/gui/s&lt;1&gt; is not authorized to perform: \
             sts:AssumeRole on resource: arn:aws:iam::1:role/&lt;x&gt;&amp;</Message></Error>\
             <RequestId>req-3</RequestId></ErrorResponse>"
        );
        let fault = StsError::from_auth(AwsError::new(ErrorCode::Throttling, "x"));
        assert!(error_xml(&fault, "r").contains("<Type>Receiver</Type>"));
    }

    #[test]
    fn injected_faults_answer_in_the_sts_error_shape() {
        let shape = |error: StsError| {
            let status = error.status.as_u16();
            let xml = error_xml(&error, "req-9");
            let fault = xml
                .split("<Type>")
                .nth(1)
                .and_then(|rest| rest.split("</Type>").next())
                .unwrap_or_default()
                .to_owned();
            assert!(
                xml.starts_with(
                    "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>"
                ) && xml.ends_with("</Error><RequestId>req-9</RequestId></ErrorResponse>"),
                "{xml}"
            );
            (error.code, status, fault)
        };
        assert_eq!(
            shape(StsError::service_unavailable()),
            ("ServiceUnavailable", 503, "Receiver".to_owned())
        );
        assert_eq!(
            shape(StsError::throttling()),
            ("Throttling", 400, "Sender".to_owned())
        );
        assert_eq!(StsError::throttling().message, "Rate exceeded");
        assert_eq!(
            shape(StsError::internal_failure()),
            ("InternalFailure", 500, "Receiver".to_owned())
        );
    }

    #[test]
    fn auth_failures_take_their_sts_names() {
        let sts = |code, message: &str| {
            let error = StsError::from_auth(AwsError::new(code, message));
            (error.code, error.status.as_u16(), error.message)
        };
        assert_eq!(
            sts(ErrorCode::InvalidClientTokenId, "m").0,
            "InvalidClientTokenId"
        );
        assert_eq!(sts(ErrorCode::ExpiredToken, "m").0, "ExpiredToken");
        assert_eq!(sts(ErrorCode::ExpiredToken, "m").1, 400);
        assert_eq!(
            sts(ErrorCode::InvalidSignature, "m").0,
            "SignatureDoesNotMatch"
        );
        assert_eq!(
            sts(
                ErrorCode::RequestExpired,
                "Request has expired: X-Amz-Date d is old."
            ),
            (
                "SignatureDoesNotMatch",
                403,
                "Signature expired: X-Amz-Date d is old.".to_owned()
            )
        );
        assert_eq!(sts(ErrorCode::MissingAuthenticationToken, "m").1, 403);
    }

    fn input_error(text: &str) -> String {
        match assume_role_input(&form(text)) {
            Ok(_) => panic!("{text} was accepted"),
            Err(error) => {
                assert_eq!(
                    (error.code, error.status),
                    ("ValidationError", StatusCode::BAD_REQUEST)
                );
                error.message
            }
        }
    }

    #[test]
    fn assume_role_parameters_are_validated_like_sts() {
        let arn = "RoleArn=arn:aws:iam::111122223333:role/gui";
        let valid = form(&format!(
            "{arn}&RoleSessionName=op-1&ExternalId=ext:1/2&DurationSeconds=900"
        ));
        let Ok(input) = assume_role_input(&valid) else {
            panic!("valid input refused");
        };
        assert_eq!(
            (
                input.account,
                input.role_name,
                input.session_name,
                input.external_id,
                input.duration_seconds
            ),
            ("111122223333", "gui", "op-1", Some("ext:1/2"), Some(900))
        );
        assert_eq!(
            input_error("Action=AssumeRole"),
            "2 validation errors detected: Value null at 'roleArn' failed to satisfy constraint: \
             Member must not be null; Value null at 'roleSessionName' failed to satisfy \
             constraint: Member must not be null"
        );
        for (extra, complaint) in [
            (
                "RoleSessionName=x",
                "Value 'x' at 'roleSessionName' failed to satisfy constraint: Member must have length greater than or equal to 2",
            ),
            (
                "RoleSessionName=a+b",
                "regular expression pattern: [\\w+=,.@-]*",
            ),
            ("RoleSessionName=s1&ExternalId=x", "at 'externalId'"),
            ("RoleSessionName=s1&ExternalId=a%20b", "[\\w+=,.@:\\/-]*"),
            (
                "RoleSessionName=s1&DurationSeconds=899",
                "Member must have value greater than or equal to 900",
            ),
            (
                "RoleSessionName=s1&DurationSeconds=43201",
                "Member must have value less than or equal to 43200",
            ),
            (
                "RoleSessionName=s1&DurationSeconds=soon",
                "Member must be a number",
            ),
        ] {
            let message = input_error(&format!("{arn}&{extra}"));
            assert!(message.contains(complaint), "{extra}: {message}");
            assert!(
                message.starts_with("1 validation error detected: "),
                "{message}"
            );
        }
        let long = "a".repeat(65);
        assert!(
            input_error(&format!("{arn}&RoleSessionName={long}"))
                .contains("less than or equal to 64")
        );
        assert!(
            input_error("RoleArn=arn:aws:iam::1:r/x&RoleSessionName=s1")
                .contains("length greater than or equal to 20")
        );
        assert!(
            input_error("RoleArn=arn:aws:iam::111122223333:user/gui&RoleSessionName=s1")
                .starts_with("Request ARN is invalid")
        );
    }

    #[test]
    fn session_tags_and_transitive_keys_are_read_and_checked_like_sts() {
        let arn = "RoleArn=arn:aws:iam::111122223333:role/gui&RoleSessionName=op-1";
        let valid = form(&format!(
            "{arn}&Tags.member.2.Key=Cl%C3%A9+du+lab&Tags.member.2.Value=\
             &Tags.member.1.Key=kubernetes-namespace&Tags.member.1.Value=physics\
             &TransitiveTagKeys.member.1=kubernetes-namespace&Tags.member.x.Key=ignored"
        ));
        let Ok(input) = assume_role_input(&valid) else {
            panic!("valid tags refused");
        };
        assert_eq!(
            input.tags,
            [
                SessionTag::new("kubernetes-namespace", "physics"),
                SessionTag::new("Clé du lab", ""),
            ]
        );
        assert_eq!(input.transitive_tag_keys, ["kubernetes-namespace"]);
        let logged = logged_request(&input);
        assert_eq!(
            (
                logged.role_session_name.as_str(),
                logged.tag("KUBERNETES-namespace")
            ),
            ("op-1", Some("physics"))
        );
        let untagged = form(arn);
        let Ok(untagged) = assume_role_input(&untagged) else {
            panic!("no tags refused");
        };
        assert!(untagged.tags.is_empty() && untagged.transitive_tag_keys.is_empty());

        let many: String = (1..=51)
            .map(|n| format!("&Tags.member.{n}.Key=k{n}&Tags.member.{n}.Value=v"))
            .collect();
        let long_key = "k".repeat(129);
        let long_value = "v".repeat(257);
        for (extra, complaint) in [
            (
                "&Tags.member.1.Key=team".to_owned(),
                "Value null at 'tags.1.member.value' failed to satisfy constraint: Member must not \
                 be null",
            ),
            (
                "&Tags.member.1.Value=x".to_owned(),
                "Value null at 'tags.1.member.key' failed to satisfy constraint: Member must not be null",
            ),
            (
                "&Tags.member.1.Key=&Tags.member.1.Value=x".to_owned(),
                "Value '' at 'tags.1.member.key' failed to satisfy constraint: Member must have \
                 length greater than or equal to 1",
            ),
            (
                format!("&Tags.member.1.Key={long_key}&Tags.member.1.Value=x"),
                "Member must have length less than or equal to 128",
            ),
            (
                format!("&Tags.member.1.Key=k&Tags.member.1.Value={long_value}"),
                "at 'tags.1.member.value' failed to satisfy constraint: Member must have length \
                 less than or equal to 256",
            ),
            (
                "&Tags.member.1.Key=a%23b&Tags.member.1.Value=x".to_owned(),
                "Value 'a#b' at 'tags.1.member.key' failed to satisfy constraint: Member must \
                 satisfy regular expression pattern: [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+",
            ),
            (
                "&Tags.member.1.Key=k&Tags.member.1.Value=tab%09".to_owned(),
                "regular expression pattern: [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*",
            ),
            (
                many,
                "at 'tags' failed to satisfy constraint: Member must have length less than or \
                 equal to 50",
            ),
            (
                "&TransitiveTagKeys.member.1=a%26b".to_owned(),
                "Value 'a&b' at 'transitiveTagKeys.1.member' failed to satisfy constraint",
            ),
        ] {
            let message = input_error(&format!("{arn}{extra}"));
            assert!(message.contains(complaint), "{extra}: {message}");
            assert!(
                message.starts_with("1 validation error detected: "),
                "{message}"
            );
        }
        assert_eq!(
            input_error(&format!(
                "{arn}&Tags.member.1.Key=Team&Tags.member.1.Value=a\
                 &Tags.member.2.Key=team&Tags.member.2.Value=b"
            )),
            "Duplicate tag keys found. Please note that Tag keys are case insensitive."
        );
    }

    #[test]
    fn a_refused_tag_session_names_sts_tag_session() {
        let role = "arn:aws:iam::111122223333:role/gui";
        let denied = StsError::refused(Refusal::TagSessionDenied, &caller(), role);
        assert_eq!(
            (denied.code, denied.status, denied.message.as_str()),
            (
                "AccessDenied",
                StatusCode::FORBIDDEN,
                "User: arn:aws:sts::111122223333:assumed-role/gui/s<1> is not authorized to \
                 perform: sts:TagSession on resource: arn:aws:iam::111122223333:role/gui"
            )
        );
        let denied = StsError::refused(Refusal::AccessDenied, &caller(), role);
        assert!(
            denied.message.contains("perform: sts:AssumeRole on"),
            "{}",
            denied.message
        );
    }

    #[test]
    fn unknown_actions_and_versions_are_named() {
        let missing = StsError::unknown_action(None, Some(VERSION));
        assert_eq!(missing.code, "MissingAction");
        let unknown = StsError::unknown_action(Some("GetSessionToken"), None);
        assert_eq!(
            (unknown.code, unknown.message.as_str()),
            (
                "InvalidAction",
                "Could not find operation GetSessionToken for version NO_VERSION_SPECIFIED"
            )
        );
        assert_eq!(
            StsAction::from_name("AssumeRole"),
            Some(StsAction::AssumeRole)
        );
        assert_eq!(StsAction::GetCallerIdentity.name(), "GetCallerIdentity");
    }
}
