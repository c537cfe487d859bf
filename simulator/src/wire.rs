//! The awsJson1_1 wire format: targets, request fields, response shapes and error bodies.

use super::config::{ErrorStyle, LightsailException};
use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};

/// `X-Amz-Target` prefix of every Lightsail action.
pub(crate) const TARGET_PREFIX: &str = "Lightsail_20161128.";
/// Content type of every request and response.
pub(crate) const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const DOCS_URL: &str = "https://docs.aws.amazon.com/lightsail/2016-11-28/api-reference/";

/// The simulated actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// `StartGUISession`
    StartGuiSession,
    /// `StopGUISession`
    StopGuiSession,
    /// `GetOperation`
    GetOperation,
    /// `GetOperationsForResource`
    GetOperationsForResource,
    /// `CreateGUISessionAccessDetails`
    CreateGuiSessionAccessDetails,
    /// `GetInstanceState`
    GetInstanceState,
    /// `GetInstance`
    GetInstance,
    /// `StartInstance`
    StartInstance,
    /// `StopInstance`
    StopInstance,
    /// `EnableAddOn`
    EnableAddOn,
    /// `DisableAddOn`
    DisableAddOn,
}

/// How calls with a missing or unknown `X-Amz-Target` are counted.
pub const UNKNOWN_ACTION: &str = "Unknown";

impl Action {
    /// Every simulated action.
    pub const ALL: [Self; 11] = [
        Self::StartGuiSession,
        Self::StopGuiSession,
        Self::GetOperation,
        Self::GetOperationsForResource,
        Self::CreateGuiSessionAccessDetails,
        Self::GetInstanceState,
        Self::GetInstance,
        Self::StartInstance,
        Self::StopInstance,
        Self::EnableAddOn,
        Self::DisableAddOn,
    ];

    /// The action's wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::StartGuiSession => "StartGUISession",
            Self::StopGuiSession => "StopGUISession",
            Self::GetOperation => "GetOperation",
            Self::GetOperationsForResource => "GetOperationsForResource",
            Self::CreateGuiSessionAccessDetails => "CreateGUISessionAccessDetails",
            Self::GetInstanceState => "GetInstanceState",
            Self::GetInstance => "GetInstance",
            Self::StartInstance => "StartInstance",
            Self::StopInstance => "StopInstance",
            Self::EnableAddOn => "EnableAddOn",
            Self::DisableAddOn => "DisableAddOn",
        }
    }

    /// Resolves an `X-Amz-Target` value; `None` for anything not simulated.
    pub(crate) fn from_target(target: Option<&str>) -> Option<Self> {
        let name = target?.strip_prefix(TARGET_PREFIX)?;
        Self::ALL.into_iter().find(|action| action.name() == name)
    }
}

/// Every input member of the simulated actions; unknown members are ignored as AWS does.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RequestFields {
    pub resource_name: Option<String>,
    /// The computer's name in the instance calls (`GetInstance`, `StartInstance`, ...).
    pub instance_name: Option<String>,
    pub operation_id: Option<String>,
    pub page_token: Option<String>,
    /// `StopInstance`'s `force`.
    pub force: Option<bool>,
    /// `EnableAddOn`'s request.
    pub add_on_request: Option<AddOnRequestFields>,
    /// `DisableAddOn`'s add-on.
    pub add_on_type: Option<String>,
}

/// `EnableAddOn`'s `addOnRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AddOnRequestFields {
    pub add_on_type: Option<String>,
    pub stop_instance_on_idle_request: Option<StopInstanceOnIdleFields>,
}

/// `addOnRequest.stopInstanceOnIdleRequest`: both members are Strings on the wire.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StopInstanceOnIdleFields {
    pub threshold: Option<String>,
    pub duration: Option<String>,
}

impl RequestFields {
    /// The computer a call names, whichever member the action uses for it.
    pub(crate) fn computer_name(&self) -> Option<&str> {
        self.resource_name
            .as_deref()
            .or(self.instance_name.as_deref())
    }
}

impl RequestFields {
    /// An empty body counts as `{}`; anything but a JSON object is a `SerializationException`.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, AwsError> {
        let serialization = |detail: String| AwsError::new(ErrorCode::Serialization, detail);
        match body.iter().find(|b| !b.is_ascii_whitespace()) {
            None => Ok(Self::default()),
            // serde would also read a struct from a JSON array, which AWS does not accept.
            Some(b'{') => serde_json::from_slice(body).map_err(|e| serialization(e.to_string())),
            Some(_) => Err(serialization(
                "Start of list or value found where a structure was expected".to_owned(),
            )),
        }
    }
}

/// Every error the simulator answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ErrorCode {
    /// A modelled Lightsail exception.
    Lightsail(LightsailException),
    Throttling,
    MissingAuthenticationToken,
    InvalidClientTokenId,
    /// Temporary credentials past their expiration.
    ExpiredToken,
    InvalidSignature,
    IncompleteSignature,
    RequestExpired,
    UnknownOperation,
    Serialization,
}

impl ErrorCode {
    /// The `__type` and the outcome name in call counts. The common errors are named as on
    /// Lightsail's "Common Errors" page, except a bad signature, which AWS JSON services call
    /// `InvalidSignatureException`.
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            Self::Lightsail(exception) => exception.type_name(),
            Self::Throttling => "ThrottlingException",
            Self::MissingAuthenticationToken => "MissingAuthenticationToken",
            Self::InvalidClientTokenId => "InvalidClientTokenId",
            Self::ExpiredToken => "ExpiredTokenException",
            Self::InvalidSignature => "InvalidSignatureException",
            Self::IncompleteSignature => "IncompleteSignature",
            Self::RequestExpired => "RequestExpired",
            Self::UnknownOperation => "UnknownOperationException",
            Self::Serialization => "SerializationException",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Self::Lightsail(exception) => StatusCode::from_u16(exception.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Self::MissingAuthenticationToken
            | Self::InvalidClientTokenId
            | Self::InvalidSignature => StatusCode::FORBIDDEN,
            Self::Throttling
            | Self::ExpiredToken
            | Self::IncompleteSignature
            | Self::RequestExpired
            | Self::UnknownOperation
            | Self::Serialization => StatusCode::BAD_REQUEST,
        }
    }
}

/// An error answer: which error and what it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AwsError {
    pub code: ErrorCode,
    pub message: String,
}

impl AwsError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn lightsail(exception: LightsailException, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Lightsail(exception), message)
    }

    /// The HTTP response. Only modelled Lightsail exceptions carry `code`/`docs`/`tip` in the
    /// `code` style: the common errors come from AWS's front end, which writes `__type` only.
    pub(crate) fn into_response(self, style: ErrorStyle, request_id: &str) -> Response {
        #[derive(Serialize)]
        struct TypeBody<'a> {
            #[serde(rename = "__type")]
            type_name: &'a str,
            message: &'a str,
        }
        #[derive(Serialize)]
        struct CodeBody<'a> {
            #[serde(rename = "__type")]
            type_name: &'a str,
            code: &'a str,
            docs: &'a str,
            message: &'a str,
            tip: &'a str,
        }
        let type_name = self.code.type_name();
        let body = match (style, self.code) {
            (ErrorStyle::Code, ErrorCode::Lightsail(exception)) => serde_json::to_vec(&CodeBody {
                type_name,
                code: exception.code(),
                docs: DOCS_URL,
                message: &self.message,
                tip: tip(exception),
            }),
            _ => serde_json::to_vec(&TypeBody {
                type_name,
                message: &self.message,
            }),
        };
        // Serializing two string fields cannot fail; an empty body would still carry the status.
        json_response(self.code.status(), body.unwrap_or_default(), request_id)
    }
}

fn tip(exception: LightsailException) -> &'static str {
    match exception {
        LightsailException::AccessDenied => {
            "Check that your IAM policy allows this action on this resource."
        }
        LightsailException::AccountSetupInProgress => "Wait for your account setup to finish.",
        LightsailException::InvalidInput => "Check the request's parameters and try again.",
        LightsailException::NotFound => "Check the resource name and the Region you are calling.",
        LightsailException::OperationFailure => "Check the operation's details and try again.",
        LightsailException::RegionSetupInProgress => "Wait for the Region setup to finish.",
        LightsailException::Service => "Retry the request later.",
        LightsailException::Unauthenticated => "Check your credentials.",
    }
}

/// A JSON response with the headers AWS sends on every answer.
pub(crate) fn json_response(status: StatusCode, body: Vec<u8>, request_id: &str) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", value);
    }
    response
}

/// Epoch seconds with a millisecond fraction, as Lightsail writes timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct EpochMillis(pub i64);

impl Serialize for EpochMillis {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // f64 holds epoch milliseconds exactly, and its shortest form prints e.g. 1479816991.349.
        serializer.serialize_f64(self.0 as f64 / 1000.0)
    }
}

/// `Operation` as Lightsail writes it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OperationBody<'a> {
    pub id: &'a str,
    pub resource_name: &'a str,
    pub resource_type: &'static str,
    pub created_at: EpochMillis,
    pub location: LocationBody<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_terminal: Option<bool>,
    pub operation_details: &'a str,
    pub operation_type: &'static str,
    pub status: &'static str,
    pub status_changed_at: EpochMillis,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_details: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LocationBody<'a> {
    pub availability_zone: String,
    pub region_name: &'a str,
}

#[derive(Serialize)]
pub(crate) struct OperationsBody<'a> {
    pub operations: Vec<OperationBody<'a>>,
}

#[derive(Serialize)]
pub(crate) struct SingleOperationBody<'a> {
    pub operation: OperationBody<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OperationsPageBody<'a> {
    pub operations: Vec<OperationBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_count: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AccessDetailsBody<'a> {
    pub resource_name: &'a str,
    pub status: &'static str,
    pub percentage_complete: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<&'a str>,
    pub sessions: Vec<SessionBody>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionBody {
    pub name: &'static str,
    pub url: String,
    pub is_primary: bool,
}

/// `InstanceState`: `{code, name}`.
#[derive(Serialize)]
pub(crate) struct InstanceStateBody {
    pub code: i32,
    pub name: &'static str,
}

#[derive(Serialize)]
pub(crate) struct GetInstanceStateBody {
    pub state: InstanceStateBody,
}

/// `AddOn`: threshold and duration belong to `StopInstanceOnIdle` only.
#[derive(Serialize)]
pub(crate) struct AddOnBody<'a> {
    pub name: &'static str,
    pub status: &'static str,
    pub threshold: &'a str,
    pub duration: &'a str,
}

/// The members of `Instance` the simulator knows.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InstanceBody<'a> {
    pub name: &'a str,
    pub arn: String,
    pub created_at: EpochMillis,
    pub location: LocationBody<'a>,
    pub resource_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blueprint_id: Option<&'a str>,
    pub state: InstanceStateBody,
    pub add_ons: Vec<AddOnBody<'a>>,
}

#[derive(Serialize)]
pub(crate) struct GetInstanceBody<'a> {
    pub instance: InstanceBody<'a>,
}
