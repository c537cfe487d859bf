//! Conversions from the AWS SDK's types into the operator's: error codes and classes,
//! operations, access details.

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_lightsail::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lightsail::types as sdk;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use super::errors::{LightsailError, describe, error_chain, normalize_code, sources, with_hint};
use super::model::{AccessDetails, Action, ComputerSeen, IdleStopAddOn, SessionUrl};
use super::model::{Location, Operation, OperationStatus};

/// Why the credentials could not be resolved, when that is why the call failed. The SDK
/// resolves them before sending anything and reports a failure as a `DispatchFailure` whose
/// source is the provider's `CredentialsError`; the identity cache's own load timeout has no
/// public type, so that one is recognised by its text.
pub(super) fn credentials_failure(err: &(dyn std::error::Error + 'static)) -> Option<String> {
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
use aws_sdk_lightsail::operation::enable_add_on::EnableAddOnError;
use aws_sdk_lightsail::operation::get_instance::GetInstanceError;
use aws_sdk_lightsail::operation::get_instance_state::GetInstanceStateError;
use aws_sdk_lightsail::operation::get_operation::GetOperationError;
use aws_sdk_lightsail::operation::get_operations_for_resource::GetOperationsForResourceError;
use aws_sdk_lightsail::operation::start_gui_session::StartGUISessionError;
use aws_sdk_lightsail::operation::start_instance::StartInstanceError;
use aws_sdk_lightsail::operation::stop_gui_session::StopGUISessionError;
use aws_sdk_lightsail::operation::stop_instance::StopInstanceError;

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
    EnableAddOnError {
        AccessDeniedException => "AccessDenied", InvalidInputException => "InvalidInput",
        NotFoundException => "NotFound", OperationFailureException => "OperationFailure",
        RegionSetupInProgressException => "RegionSetupInProgress", ServiceException => "Service",
        UnauthenticatedException => "Unauthenticated",
    }
}

/// The errors of calls that model every Lightsail exception but the ones of account setup.
macro_rules! modelled_codes_of_read_and_instance_calls {
    ($($ty:ident),* $(,)?) => {
        modelled_codes! {$(
            $ty {
                AccessDeniedException => "AccessDenied", AccountSetupInProgressException => "AccountSetupInProgress",
                InvalidInputException => "InvalidInput", NotFoundException => "NotFound",
                OperationFailureException => "OperationFailure", RegionSetupInProgressException => "RegionSetupInProgress",
                ServiceException => "Service", UnauthenticatedException => "Unauthenticated",
            }
        )*}
    };
}

modelled_codes_of_read_and_instance_calls!(
    GetOperationError,
    GetOperationsForResourceError,
    GetInstanceStateError,
    GetInstanceError,
    StartInstanceError,
    StopInstanceError
);

impl LightsailError {
    pub(super) fn from_sdk<E>(action: Action, err: SdkError<E, HttpResponse>) -> Self
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

impl AccessDetails {
    pub(super) fn from_sdk(
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

impl ComputerSeen {
    /// GetInstanceState's answer: the state only.
    pub(super) fn from_state(state: Option<&sdk::InstanceState>) -> Self {
        ComputerSeen {
            state: state_name(state),
            idle_stop: None,
        }
    }

    /// GetInstance's answer: the state and the `StopInstanceOnIdle` add-on.
    pub(super) fn from_instance(instance: Option<&sdk::Instance>) -> Self {
        let idle_stop = instance
            .map(|i| i.add_ons())
            .unwrap_or_default()
            .iter()
            .find(|a| a.name() == Some(sdk::AddOnType::StopInstanceOnIdle.as_str()))
            .map(|a| IdleStopAddOn {
                status: a.status().map(str::to_owned),
                threshold: a.threshold().map(str::to_owned),
                duration: a.duration().map(str::to_owned),
            });
        ComputerSeen {
            state: state_name(instance.and_then(|i| i.state())),
            idle_stop: Some(idle_stop),
        }
    }
}

fn state_name(state: Option<&sdk::InstanceState>) -> String {
    state
        .and_then(|s| s.name())
        .map(str::to_owned)
        .unwrap_or_default()
}
