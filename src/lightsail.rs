//! The AWS edge: Lightsail clients per Region, a client-side rate limit, error classification and
//! conversion of SDK operations into the status types. Nothing here knows about Kubernetes.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_lightsail::Client;
use aws_sdk_lightsail::config::Region;
use aws_sdk_lightsail::config::retry::RetryConfig;
use aws_sdk_lightsail::config::timeout::TimeoutConfig;
use aws_sdk_lightsail::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lightsail::types as sdk;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::crd::{Location, Operation, OperationStatus};
use crate::metrics::Metrics;

/// Lightsail actions the operator calls (also the `action` metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    StartGuiSession,
    StopGuiSession,
    GetOperation,
    GetOperationsForResource,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::StartGuiSession => "StartGUISession",
            Action::StopGuiSession => "StopGUISession",
            Action::GetOperation => "GetOperation",
            Action::GetOperationsForResource => "GetOperationsForResource",
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
    /// The error code without the `Exception` suffix (`NotFound`, `Throttling`, ...), or
    /// `Timeout` / `ConnectionFailed` / `InvalidResponse` when there was no service answer.
    pub code: String,
    /// The message and its causes, joined with `: `.
    pub message: String,
    pub class: ErrorClass,
    /// False when the request may or may not have reached Lightsail (timeouts, dropped
    /// connections): then a StartGUISession may have happened.
    pub answered: bool,
}

/// Terminal error codes, as Lightsail writes them in `code` (the `__type` form has an
/// `Exception` suffix, stripped before lookup).
const TERMINAL_CODES: &[&str] = &[
    "NotFound",
    "InvalidInput",
    "AccessDenied",
    "Unauthenticated",
    "OperationFailure",
    "InvalidClientTokenId",
    "UnrecognizedClient",
    "MissingAuthenticationToken",
    "IncompleteSignature",
    "InvalidSignature",
    "SignatureDoesNotMatch",
    "AuthFailure",
    "UnauthorizedOperation",
    "OptInRequired",
    "ValidationError",
    "NoRegion",
];

/// Classifies an error code. Unknown codes are retryable: a bounded backoff is safer than
/// giving up on something we do not understand.
pub fn classify(code: &str) -> ErrorClass {
    if TERMINAL_CODES.contains(&normalize_code(code)) {
        ErrorClass::Terminal
    } else {
        ErrorClass::Retryable
    }
}

fn normalize_code(code: &str) -> &str {
    code.strip_suffix("Exception").unwrap_or(code)
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

    fn from_sdk<E, R>(action: Action, err: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + ModelledCode + std::error::Error + Send + Sync + 'static,
        R: fmt::Debug + Send + Sync + 'static,
    {
        let (code, answered) = match &err {
            // The code string first: real Lightsail bodies carry `code` (e.g. `NotFound`) and
            // then the SDK reports an unmodelled error; the variant when no code came along.
            SdkError::ServiceError(service) => (
                err.code()
                    .map(|c| normalize_code(c).to_owned())
                    .or_else(|| service.err().modelled_code().map(str::to_owned))
                    .unwrap_or_else(|| "Unknown".into()),
                true,
            ),
            SdkError::TimeoutError(_) => ("Timeout".into(), false),
            SdkError::DispatchFailure(f) if f.is_timeout() => ("Timeout".into(), false),
            SdkError::DispatchFailure(_) => ("ConnectionFailed".into(), false),
            SdkError::ResponseError(_) => ("InvalidResponse".into(), false),
            SdkError::ConstructionFailure(_) => ("InvalidRequest".into(), true),
            _ => ("Unknown".into(), false),
        };
        let message = match (&err, err.message()) {
            (_, Some(m)) => m.to_owned(),
            (SdkError::ServiceError(service), None) => error_chain(service.err()),
            _ => error_chain(&err),
        };
        let class = match &err {
            SdkError::ServiceError(_) => classify(&code),
            // A request the SDK cannot even build (e.g. no credentials) fails the same way again.
            SdkError::ConstructionFailure(_) => ErrorClass::Terminal,
            _ => ErrorClass::Retryable,
        };
        LightsailError {
            action,
            code,
            message,
            class,
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

/// Client-side rate limit per Region.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

/// One rate-limit token for one call in one Region (see [`Lightsail::permit`]).
pub struct Permit {
    client: Client,
    action: Action,
}

struct RegionClient {
    client: Client,
    limiter: Arc<DefaultDirectRateLimiter>,
}

/// Lightsail clients for every Region in use, built from one AWS configuration load.
pub struct Lightsail {
    base: SdkConfig,
    default_region: Option<String>,
    rate: RateLimit,
    clients: Mutex<HashMap<String, Arc<RegionClient>>>,
    metrics: Arc<Metrics>,
    call_timeout: Duration,
}

/// Default for the longest a Lightsail call may take, connection included.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Most pages of GetOperationsForResource read when looking for a session to adopt.
const MAX_OPERATION_PAGES: usize = 10;

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
        region: Option<&str>,
        action: Action,
    ) -> Result<Arc<RegionClient>, LightsailError> {
        let Some(region) = region.or(self.default_region.as_deref()) else {
            return Err(LightsailError {
                action,
                code: "NoRegion".into(),
                message: "no AWS Region: set spec.region, or give the operator a default Region (--region, AWS_REGION)".into(),
                class: ErrorClass::Terminal,
                answered: true,
            });
        };
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(region) {
            return Ok(c.clone());
        }
        let config = aws_sdk_lightsail::config::Builder::from(&self.base)
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
        let quota = Quota::per_second(self.rate.per_second).allow_burst(self.rate.burst);
        let c = Arc::new(RegionClient {
            client: Client::from_conf(config),
            limiter: Arc::new(RateLimiter::direct(quota)),
        });
        clients.insert(region.to_owned(), c.clone());
        Ok(c)
    }

    /// Waits for the Region's rate limit. Taken apart from the call so that a caller can do its
    /// last steps (the fenced status write before a start) after the wait, right before the call.
    pub async fn permit(
        &self,
        region: Option<&str>,
        action: Action,
    ) -> Result<Permit, LightsailError> {
        let rc = self.region_client(region, action)?;
        rc.limiter.until_ready().await;
        Ok(Permit {
            client: rc.client.clone(),
            action,
        })
    }

    /// Waits for the Region's rate limit, runs the call and records its metrics.
    async fn call<T, F, Fut, E, R>(
        &self,
        region: Option<&str>,
        action: Action,
        f: F,
    ) -> Result<T, LightsailError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, R>>>,
        E: ProvideErrorMetadata + ModelledCode + std::error::Error + Send + Sync + 'static,
        R: fmt::Debug + Send + Sync + 'static,
    {
        let permit = self.permit(region, action).await?;
        self.call_with(permit, f).await
    }

    /// Runs a call under a permit already taken and records its metrics.
    async fn call_with<T, F, Fut, E, R>(&self, permit: Permit, f: F) -> Result<T, LightsailError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, R>>>,
        E: ProvideErrorMetadata + ModelledCode + std::error::Error + Send + Sync + 'static,
        R: fmt::Debug + Send + Sync + 'static,
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
        region: Option<&str>,
        resource_name: &str,
    ) -> Result<Vec<Operation>, LightsailError> {
        let out = self
            .call(region, Action::StopGuiSession, |c| {
                c.stop_gui_session().resource_name(resource_name).send()
            })
            .await?;
        Ok(out.operations().iter().map(operation_from_sdk).collect())
    }

    /// `GetOperation`.
    pub async fn get_operation(
        &self,
        region: Option<&str>,
        operation_id: &str,
    ) -> Result<Option<Operation>, LightsailError> {
        let out = self
            .call(region, Action::GetOperation, |c| {
                c.get_operation().operation_id(operation_id).send()
            })
            .await?;
        Ok(out.operation().map(operation_from_sdk))
    }

    /// `GetOperationsForResource`, following page tokens (at most a few pages: adoption only
    /// cares about the last hours).
    pub async fn operations_for_resource(
        &self,
        region: Option<&str>,
        resource_name: &str,
    ) -> Result<Vec<Operation>, LightsailError> {
        let mut operations = Vec::new();
        let mut page_token: Option<String> = None;
        for _ in 0..MAX_OPERATION_PAGES {
            let token = page_token.take();
            let out = self
                .call(region, Action::GetOperationsForResource, |c| {
                    c.get_operations_for_resource()
                        .resource_name(resource_name)
                        .set_page_token(token)
                        .send()
                })
                .await?;
            operations.extend(out.operations().iter().map(operation_from_sdk));
            match out.next_page_token() {
                Some(t) if !t.is_empty() => page_token = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(operations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_lightsail::operation::get_operation::GetOperationOutput;
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
            "us-east-1".into(),
            Arc::new(RegionClient {
                client,
                limiter: Arc::new(RateLimiter::direct(quota)),
            }),
        );
        l
    }

    async fn permit(l: &Lightsail) -> Permit {
        l.permit(None, Action::StartGuiSession)
            .await
            .expect("a permit")
    }

    #[test]
    fn codes_are_classified_with_or_without_the_exception_suffix() {
        for code in [
            "NotFound",
            "NotFoundException",
            "InvalidInput",
            "AccessDeniedException",
            "Unauthenticated",
            "InvalidClientTokenId",
        ] {
            assert_eq!(classify(code), ErrorClass::Terminal, "{code}");
        }
        for code in [
            "Service",
            "ServiceException",
            "ThrottlingException",
            "RegionSetupInProgress",
            "AccountSetupInProgressException",
            "InternalFailure",
            "ServiceUnavailable",
            "SomethingNew",
        ] {
            assert_eq!(classify(code), ErrorClass::Retryable, "{code}");
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
        assert_eq!(l.get_operation(None, "op-9").await.expect("ok"), None);
    }

    #[tokio::test]
    async fn no_region_anywhere_is_a_terminal_error_naming_the_fix() {
        let l = Lightsail::from_sdk_config(SdkConfig::builder().build(), None, rate(), metrics());
        let Err(e) = l.permit(None, Action::StartGuiSession).await else {
            panic!("a permit without a Region");
        };
        assert_eq!(e.code, "NoRegion");
        assert_eq!(e.class, ErrorClass::Terminal);
        assert!(e.message.contains("spec.region"), "{}", e.message);
    }
}
