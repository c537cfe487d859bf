//! The Lightsail simulator driven by the real `aws-sdk-lightsail` client over loopback.

mod simulator_support;

use aws_sdk_lightsail::config::retry::RetryConfig;
use aws_sdk_lightsail::error::ProvideErrorMetadata;
use aws_sdk_lightsail::operation::create_gui_session_access_details::{
    CreateGUISessionAccessDetailsError, CreateGuiSessionAccessDetailsOutput,
};
use aws_sdk_lightsail::operation::get_operation::GetOperationError;
use aws_sdk_lightsail::operation::get_operations_for_resource::{
    GetOperationsForResourceError, GetOperationsForResourceOutput,
};
use aws_sdk_lightsail::operation::start_gui_session::StartGUISessionError;
use aws_sdk_lightsail::operation::stop_gui_session::StopGUISessionError;
use aws_sdk_lightsail::primitives::DateTime;
use aws_sdk_lightsail::types::{
    Operation, OperationStatus, OperationType, RegionName, ResourceType, Status,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use http::{Method, StatusCode};
use lightsail_sim::{
    AccessFailureStatus, CallLog, ComputerSpec, ErrorStyle, Faults, LightsailException, RateLimit,
    RunningSimulator, SignedDuration, SimConfig, Simulator, StsFaults,
};
use serde_json::json;
use simulator_support::{
    HttpReply, Signing, SimProcess, TEST_REGION, aws_request, client, control, request_bytes,
    run_binary, sdk_client, send, start, stop, wait_until,
};
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWriteExt;

const WAIT: Duration = Duration::from_secs(10);

fn signing(sim: &RunningSimulator) -> Signing<'_> {
    Signing {
        access_key_id: sim.access_key_id(),
        secret_access_key: sim.secret_access_key(),
        region: TEST_REGION,
        time: SystemTime::now(),
    }
}

/// Epoch milliseconds of an SDK timestamp; the SDK's float parsing can be a microsecond off.
fn millis(time: Option<&DateTime>) -> i64 {
    let Some(time) = time else {
        panic!("timestamp missing");
    };
    time.secs() * 1000 + (f64::from(time.subsec_nanos()) / 1e6).round() as i64
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn the_operation(operations: &[Operation]) -> &Operation {
    match operations {
        [operation] => operation,
        other => panic!("expected one operation, got {other:?}"),
    }
}

fn is_uuid(text: &str) -> bool {
    let lengths: Vec<usize> = text.split('-').map(str::len).collect();
    lengths == [8, 4, 4, 4, 12] && text.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

/// Checks every field of an operation the simulator made for `resource`.
fn assert_operation(
    operation: &Operation,
    resource: &str,
    operation_type: OperationType,
    status: OperationStatus,
) {
    assert!(is_uuid(operation.id().unwrap_or_default()), "{operation:?}");
    assert_eq!(operation.resource_name(), Some(resource));
    assert_eq!(operation.resource_type(), Some(&ResourceType::Instance));
    let created = millis(operation.created_at());
    assert!((created - now_millis()).abs() < 60_000, "{operation:?}");
    let location = operation.location();
    assert_eq!(
        location.and_then(|l| l.availability_zone()),
        Some("us-east-1a")
    );
    assert_eq!(
        location.and_then(|l| l.region_name()),
        Some(&RegionName::UsEast1)
    );
    assert_eq!(operation.operation_details(), Some(resource));
    assert_eq!(operation.operation_type(), Some(&operation_type));
    assert_eq!(operation.status(), Some(&status));
    let terminal = status != OperationStatus::Started;
    assert_eq!(operation.is_terminal(), Some(terminal));
    assert!(millis(operation.status_changed_at()) >= created);
    if status != OperationStatus::Failed {
        assert_eq!(operation.error_code(), None);
        assert_eq!(operation.error_details(), None);
    }
}

/// `nextPageCount` is deprecated in the model, yet Lightsail still sends it.
#[allow(deprecated)]
fn next_page_count(page: &GetOperationsForResourceOutput) -> Option<&str> {
    page.next_page_count()
}

async fn get_operation(client: &aws_sdk_lightsail::Client, id: &str) -> Operation {
    match client.get_operation().operation_id(id).send().await {
        Ok(output) => match output.operation() {
            Some(operation) => operation.clone(),
            None => panic!("GetOperation returned no operation"),
        },
        Err(e) => panic!("GetOperation failed: {e:?}"),
    }
}

async fn start_session(client: &aws_sdk_lightsail::Client, name: &str) -> Operation {
    match client.start_gui_session().resource_name(name).send().await {
        Ok(output) => the_operation(output.operations()).clone(),
        Err(e) => panic!("StartGUISession failed: {e:?}"),
    }
}

async fn session_status(client: &aws_sdk_lightsail::Client, name: &str) -> Option<Status> {
    match client
        .create_gui_session_access_details()
        .resource_name(name)
        .send()
        .await
    {
        Ok(output) => output.status().cloned(),
        Err(e) => panic!("CreateGUISessionAccessDetails failed: {e:?}"),
    }
}

#[tokio::test]
async fn start_then_get_shows_started_then_succeeded() {
    let settle = Duration::from_millis(300);
    let sim = start(
        SimConfig::default()
            .with_settle_time(settle)
            .with_computer(ComputerSpec::new("vm-1")),
    )
    .await;
    let client = client(&sim);

    let started = start_session(&client, "vm-1").await;
    assert_operation(
        &started,
        "vm-1",
        OperationType::StartGuiSession,
        OperationStatus::Started,
    );
    let id = started.id().unwrap_or_default().to_owned();
    let fetched = get_operation(&client, &id).await;
    assert_eq!(fetched.id(), Some(id.as_str()));
    assert_eq!(millis(fetched.created_at()), millis(started.created_at()));

    let succeeded = wait_until("the start to succeed", WAIT, || {
        let (client, id) = (&client, &id);
        async move {
            let operation = get_operation(client, id).await;
            assert_ne!(operation.status(), Some(&OperationStatus::Failed));
            (operation.status() == Some(&OperationStatus::Succeeded)).then_some(operation)
        }
    })
    .await;
    assert_operation(
        &succeeded,
        "vm-1",
        OperationType::StartGuiSession,
        OperationStatus::Succeeded,
    );
    assert_eq!(
        millis(succeeded.status_changed_at()) - millis(succeeded.created_at()),
        settle.as_millis() as i64
    );
    let calls = sim.calls();
    assert_eq!(
        calls.count(Some("StartGUISession"), Some("vm-1"), Some("ok")),
        1
    );
    assert!(calls.count(Some("GetOperation"), Some("vm-1"), Some("ok")) >= 2);
    stop(sim).await;
}

#[tokio::test]
async fn every_action_round_trips_every_field() {
    let sim = start(
        SimConfig::default()
            .with_settle_time(Duration::from_millis(50))
            .with_computer(ComputerSpec::new("vm-rt")),
    )
    .await;
    let client = client(&sim);

    let start_op = start_session(&client, "vm-rt").await;
    assert_operation(
        &start_op,
        "vm-rt",
        OperationType::StartGuiSession,
        OperationStatus::Started,
    );
    wait_until("the session to start", WAIT, || async {
        (session_status(&client, "vm-rt").await == Some(Status::Started)).then_some(())
    })
    .await;

    let details = match client
        .create_gui_session_access_details()
        .resource_name("vm-rt")
        .send()
        .await
    {
        Ok(details) => details,
        Err(e) => panic!("CreateGUISessionAccessDetails failed: {e:?}"),
    };
    assert_eq!(details.resource_name(), Some("vm-rt"));
    assert_eq!(details.status(), Some(&Status::Started));
    assert_eq!(details.percentage_complete(), Some(100));
    assert_eq!(details.failure_reason(), None);
    let sessions = details.sessions();
    assert_eq!(sessions.len(), 2);
    assert_eq!(
        sessions
            .iter()
            .filter(|s| s.is_primary() == Some(true))
            .count(),
        1
    );
    for session in sessions {
        assert!(session.name().is_some_and(|n| !n.is_empty()));
        assert!(session.url().is_some_and(|u| u.starts_with("https://")));
    }

    let stop_op = match client
        .stop_gui_session()
        .resource_name("vm-rt")
        .send()
        .await
    {
        Ok(output) => the_operation(output.operations()).clone(),
        Err(e) => panic!("StopGUISession failed: {e:?}"),
    };
    assert_operation(
        &stop_op,
        "vm-rt",
        OperationType::StopGuiSession,
        OperationStatus::Started,
    );
    wait_until("the session to stop", WAIT, || async {
        (session_status(&client, "vm-rt").await == Some(Status::Stopped)).then_some(())
    })
    .await;

    let history = match client
        .get_operations_for_resource()
        .resource_name("vm-rt")
        .send()
        .await
    {
        Ok(history) => history,
        Err(e) => panic!("GetOperationsForResource failed: {e:?}"),
    };
    let ids: Vec<Option<&str>> = history.operations().iter().map(Operation::id).collect();
    assert_eq!(ids, [stop_op.id(), start_op.id()], "newest first");
    assert_operation(
        &history.operations()[0],
        "vm-rt",
        OperationType::StopGuiSession,
        OperationStatus::Succeeded,
    );
    assert_operation(
        &history.operations()[1],
        "vm-rt",
        OperationType::StartGuiSession,
        OperationStatus::Succeeded,
    );
    assert_eq!(history.next_page_token(), None);
    assert_eq!(next_page_count(&history), None);
    stop(sim).await;
}

#[tokio::test]
async fn sessions_expire_after_their_lifetime() {
    let sim = start(
        SimConfig::default()
            .with_settle_time(Duration::from_millis(100))
            .with_session_lifetime(Duration::from_millis(300))
            .with_computer(ComputerSpec::new("vm-exp")),
    )
    .await;
    let client = client(&sim);
    assert_eq!(
        session_status(&client, "vm-exp").await,
        Some(Status::NotStarted)
    );
    start_session(&client, "vm-exp").await;
    // Settling takes 100 ms, far longer than one loopback call.
    assert_eq!(
        session_status(&client, "vm-exp").await,
        Some(Status::Starting)
    );
    wait_until("the session to start", WAIT, || async {
        (session_status(&client, "vm-exp").await == Some(Status::Started)).then_some(())
    })
    .await;
    wait_until("the session to expire", WAIT, || async {
        let status = session_status(&client, "vm-exp").await;
        assert!(
            matches!(status, Some(Status::Started | Status::StartExpired)),
            "{status:?}"
        );
        (status == Some(Status::StartExpired)).then_some(())
    })
    .await;
    stop(sim).await;
}

#[tokio::test]
async fn a_failing_start_ends_failed_with_its_error() {
    let sim = start(
        SimConfig::default()
            .with_settle_time(Duration::from_millis(50))
            .with_computer(ComputerSpec::new("vm-bad").start_fails_with("DcvError", "disk full")),
    )
    .await;
    let client = client(&sim);
    let started = start_session(&client, "vm-bad").await;
    assert_eq!(started.status(), Some(&OperationStatus::Started));
    let id = started.id().unwrap_or_default().to_owned();
    let failed = wait_until("the start to fail", WAIT, || {
        let (client, id) = (&client, &id);
        async move {
            let operation = get_operation(client, id).await;
            (operation.status() == Some(&OperationStatus::Failed)).then_some(operation)
        }
    })
    .await;
    assert_operation(
        &failed,
        "vm-bad",
        OperationType::StartGuiSession,
        OperationStatus::Failed,
    );
    assert_eq!(failed.error_code(), Some("DcvError"));
    assert_eq!(failed.error_details(), Some("disk full"));
    let details = client
        .create_gui_session_access_details()
        .resource_name("vm-bad")
        .send()
        .await;
    let details = match details {
        Ok(details) => details,
        Err(e) => panic!("{e:?}"),
    };
    assert_eq!(details.status(), Some(&Status::FailedStartingGuiSession));
    assert_eq!(details.failure_reason(), Some("disk full"));
    assert!(details.sessions().is_empty());
    stop(sim).await;
}

#[tokio::test]
async fn operations_page_newest_first() {
    let sim = start(
        SimConfig::default()
            .with_operations_page_size(2)
            .with_computer(ComputerSpec::new("vm-pages")),
    )
    .await;
    let client = client(&sim);
    let mut made = Vec::new();
    for _ in 0..5 {
        made.push(
            start_session(&client, "vm-pages")
                .await
                .id
                .unwrap_or_default(),
        );
    }
    made.reverse();

    let mut seen = Vec::new();
    let mut counts = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .get_operations_for_resource()
            .resource_name("vm-pages")
            .set_page_token(token.clone())
            .send()
            .await;
        let page = match page {
            Ok(page) => page,
            Err(e) => panic!("{e:?}"),
        };
        seen.extend(
            page.operations()
                .iter()
                .map(|o| o.id().unwrap_or_default().to_owned()),
        );
        counts.push((
            page.operations().len(),
            next_page_count(&page).map(str::to_owned),
        ));
        token = page.next_page_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
        assert!(counts.len() < 10, "paging does not end");
    }
    assert_eq!(seen, made);
    assert_eq!(
        counts,
        [
            (2, Some("2".to_owned())),
            (2, Some("1".to_owned())),
            (1, None)
        ]
    );

    let bad_token = client
        .get_operations_for_resource()
        .resource_name("vm-pages")
        .page_token("no-such-token")
        .send()
        .await;
    let error = bad_token.map(|_| ()).map_err(|e| e.into_service_error());
    assert!(
        matches!(&error, Err(e) if e.code() == Some("InvalidInput")),
        "{error:?}"
    );
    stop(sim).await;
}

/// What the SDK made of an error: the modelled variant's name (if any), its code and message.
#[derive(Debug, PartialEq)]
struct SdkErrorSeen {
    modelled: Option<&'static str>,
    code: Option<String>,
    message: Option<String>,
}

fn seen<E: ProvideErrorMetadata>(error: &E, modelled: Option<&'static str>) -> SdkErrorSeen {
    SdkErrorSeen {
        modelled,
        code: error.code().map(str::to_owned),
        message: error.message().map(str::to_owned),
    }
}

fn start_variant(error: &StartGUISessionError) -> Option<&'static str> {
    match error {
        StartGUISessionError::AccessDeniedException(_) => Some("AccessDeniedException"),
        StartGUISessionError::InvalidInputException(_) => Some("InvalidInputException"),
        StartGUISessionError::NotFoundException(_) => Some("NotFoundException"),
        StartGUISessionError::RegionSetupInProgressException(_) => {
            Some("RegionSetupInProgressException")
        }
        StartGUISessionError::ServiceException(_) => Some("ServiceException"),
        StartGUISessionError::UnauthenticatedException(_) => Some("UnauthenticatedException"),
        _ => None,
    }
}

fn stop_variant(error: &StopGUISessionError) -> Option<&'static str> {
    match error {
        StopGUISessionError::AccessDeniedException(_) => Some("AccessDeniedException"),
        StopGUISessionError::InvalidInputException(_) => Some("InvalidInputException"),
        StopGUISessionError::NotFoundException(_) => Some("NotFoundException"),
        StopGUISessionError::RegionSetupInProgressException(_) => {
            Some("RegionSetupInProgressException")
        }
        StopGUISessionError::ServiceException(_) => Some("ServiceException"),
        StopGUISessionError::UnauthenticatedException(_) => Some("UnauthenticatedException"),
        _ => None,
    }
}

fn access_details_variant(error: &CreateGUISessionAccessDetailsError) -> Option<&'static str> {
    use CreateGUISessionAccessDetailsError as E;
    match error {
        E::AccessDeniedException(_) => Some("AccessDeniedException"),
        E::InvalidInputException(_) => Some("InvalidInputException"),
        E::NotFoundException(_) => Some("NotFoundException"),
        E::RegionSetupInProgressException(_) => Some("RegionSetupInProgressException"),
        E::ServiceException(_) => Some("ServiceException"),
        E::UnauthenticatedException(_) => Some("UnauthenticatedException"),
        _ => None,
    }
}

fn get_operation_variant(error: &GetOperationError) -> Option<&'static str> {
    match error {
        GetOperationError::AccessDeniedException(_) => Some("AccessDeniedException"),
        GetOperationError::AccountSetupInProgressException(_) => {
            Some("AccountSetupInProgressException")
        }
        GetOperationError::InvalidInputException(_) => Some("InvalidInputException"),
        GetOperationError::NotFoundException(_) => Some("NotFoundException"),
        GetOperationError::OperationFailureException(_) => Some("OperationFailureException"),
        GetOperationError::RegionSetupInProgressException(_) => {
            Some("RegionSetupInProgressException")
        }
        GetOperationError::ServiceException(_) => Some("ServiceException"),
        GetOperationError::UnauthenticatedException(_) => Some("UnauthenticatedException"),
        _ => None,
    }
}

fn operations_variant(error: &GetOperationsForResourceError) -> Option<&'static str> {
    use GetOperationsForResourceError as E;
    match error {
        E::AccessDeniedException(_) => Some("AccessDeniedException"),
        E::AccountSetupInProgressException(_) => Some("AccountSetupInProgressException"),
        E::InvalidInputException(_) => Some("InvalidInputException"),
        E::NotFoundException(_) => Some("NotFoundException"),
        E::OperationFailureException(_) => Some("OperationFailureException"),
        E::RegionSetupInProgressException(_) => Some("RegionSetupInProgressException"),
        E::ServiceException(_) => Some("ServiceException"),
        E::UnauthenticatedException(_) => Some("UnauthenticatedException"),
        _ => None,
    }
}

const MODELLED_BY_SESSION_CALLS: [LightsailException; 6] = [
    LightsailException::AccessDenied,
    LightsailException::InvalidInput,
    LightsailException::NotFound,
    LightsailException::RegionSetupInProgress,
    LightsailException::Service,
    LightsailException::Unauthenticated,
];

/// Calls `action` against a computer forced to answer `exception` and returns what the SDK saw.
async fn provoke(
    sim: &RunningSimulator,
    client: &aws_sdk_lightsail::Client,
    action: &str,
    exception: LightsailException,
    operation_id: &str,
) -> SdkErrorSeen {
    let forced = ComputerSpec::new("vm-err").calls_fail_with(exception);
    assert!(sim.upsert_computer(forced).is_ok());
    let seen = match action {
        "StartGUISession" => match client
            .start_gui_session()
            .resource_name("vm-err")
            .send()
            .await
        {
            Ok(_) => None,
            Err(e) => Some({
                let e = e.into_service_error();
                seen(&e, start_variant(&e))
            }),
        },
        "StopGUISession" => match client
            .stop_gui_session()
            .resource_name("vm-err")
            .send()
            .await
        {
            Ok(_) => None,
            Err(e) => Some({
                let e = e.into_service_error();
                seen(&e, stop_variant(&e))
            }),
        },
        "CreateGUISessionAccessDetails" => match client
            .create_gui_session_access_details()
            .resource_name("vm-err")
            .send()
            .await
        {
            Ok(_) => None,
            Err(e) => Some({
                let e = e.into_service_error();
                seen(&e, access_details_variant(&e))
            }),
        },
        "GetOperation" => match client
            .get_operation()
            .operation_id(operation_id)
            .send()
            .await
        {
            Ok(_) => None,
            Err(e) => Some({
                let e = e.into_service_error();
                seen(&e, get_operation_variant(&e))
            }),
        },
        "GetOperationsForResource" => match client
            .get_operations_for_resource()
            .resource_name("vm-err")
            .send()
            .await
        {
            Ok(_) => None,
            Err(e) => Some({
                let e = e.into_service_error();
                seen(&e, operations_variant(&e))
            }),
        },
        other => panic!("no such action {other}"),
    };
    match seen {
        Some(seen) => seen,
        None => panic!("{action} succeeded despite {exception:?}"),
    }
}

async fn assert_modelled_errors(style: ErrorStyle) {
    let sim = start(
        SimConfig::default()
            .with_error_style(style)
            .with_computer(ComputerSpec::new("vm-err")),
    )
    .await;
    let client = client(&sim);
    let operation_id = start_session(&client, "vm-err")
        .await
        .id
        .unwrap_or_default();
    let cases = [
        ("StartGUISession", &MODELLED_BY_SESSION_CALLS[..]),
        ("StopGUISession", &MODELLED_BY_SESSION_CALLS[..]),
        (
            "CreateGUISessionAccessDetails",
            &MODELLED_BY_SESSION_CALLS[..],
        ),
        ("GetOperation", &LightsailException::ALL[..]),
        ("GetOperationsForResource", &LightsailException::ALL[..]),
    ];
    for (action, exceptions) in cases {
        for &exception in exceptions {
            let got = provoke(&sim, &client, action, exception, &operation_id).await;
            let message = Some(format!(
                "{} configured for vm-err in the simulator",
                exception.type_name()
            ));
            let expected = match style {
                // Real Lightsail: `code` wins, so no modelled variant and the short code.
                ErrorStyle::Code => SdkErrorSeen {
                    modelled: None,
                    code: Some(exception.code().to_owned()),
                    message,
                },
                ErrorStyle::Type => SdkErrorSeen {
                    modelled: Some(exception.type_name()),
                    code: Some(exception.type_name().to_owned()),
                    message,
                },
            };
            assert_eq!(
                got, expected,
                "{action} answering {exception:?} in {style:?} style"
            );
            let counted =
                sim.calls()
                    .count(Some(action), Some("vm-err"), Some(exception.type_name()));
            assert_eq!(counted, 1, "{action} {exception:?} counted");
        }
    }

    // Errors that come from the request rather than the computer's behaviour.
    let unknown = client
        .start_gui_session()
        .resource_name("vm-nowhere")
        .send()
        .await;
    let bad_name = client
        .start_gui_session()
        .resource_name("-bad-")
        .send()
        .await;
    let missing = client.start_gui_session().send().await;
    for (result, exception) in [
        (unknown, LightsailException::NotFound),
        (bad_name, LightsailException::InvalidInput),
        (missing, LightsailException::InvalidInput),
    ] {
        let error = match result {
            Ok(_) => panic!("expected {exception:?}"),
            Err(e) => e.into_service_error(),
        };
        let (modelled, code) = match style {
            ErrorStyle::Code => (None, exception.code()),
            ErrorStyle::Type => (Some(exception.type_name()), exception.type_name()),
        };
        assert_eq!(start_variant(&error), modelled, "{error:?}");
        assert_eq!(error.code(), Some(code), "{error:?}");
    }
    stop(sim).await;
}

#[tokio::test]
async fn modelled_errors_with_code_arrive_as_unmodelled_codes() {
    assert_modelled_errors(ErrorStyle::Code).await;
}

#[tokio::test]
async fn modelled_errors_with_type_only_arrive_as_modelled_variants() {
    assert_modelled_errors(ErrorStyle::Type).await;
}

#[tokio::test]
async fn service_exception_is_a_server_fault_with_code_docs_and_tip() {
    let sim =
        start(SimConfig::default().with_computer(
            ComputerSpec::new("vm-500").calls_fail_with(LightsailException::Service),
        ))
        .await;
    let body = json!({"resourceName": "vm-500"}).to_string();
    let reply = send(aws_request(
        &sim.endpoint_url(),
        Some("Lightsail_20161128.StartGUISession"),
        body.as_bytes(),
        Some(signing(&sim)),
    ))
    .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    let json = reply.json();
    assert_eq!(json["__type"], "ServiceException");
    assert_eq!(json["code"], "Service");
    for member in ["message", "docs", "tip"] {
        assert!(
            json[member].as_str().is_some_and(|s| !s.is_empty()),
            "{json}"
        );
    }
    assert_eq!(
        reply
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/x-amz-json-1.1")
    );
    assert!(reply.headers.contains_key("x-amzn-requestid"));
    stop(sim).await;
}

#[tokio::test]
async fn computers_of_other_regions_are_not_found() {
    let sim = start(
        SimConfig::default().with_computer(ComputerSpec::new("vm-eu").in_region("eu-west-1")),
    )
    .await;
    let here = client(&sim);
    let result = here.start_gui_session().resource_name("vm-eu").send().await;
    let error = result.map(|_| ()).map_err(|e| e.into_service_error());
    assert!(
        matches!(&error, Err(e) if e.code() == Some("NotFound")),
        "{error:?}"
    );

    let there = sdk_client(
        &sim.endpoint_url(),
        sim.access_key_id(),
        sim.secret_access_key(),
        "eu-west-1",
        RetryConfig::disabled(),
    );
    let operation = start_session(&there, "vm-eu").await;
    let location = operation.location();
    assert_eq!(
        location.and_then(|l| l.availability_zone()),
        Some("eu-west-1a")
    );
    assert_eq!(
        location.and_then(|l| l.region_name()),
        Some(&RegionName::EuWest1)
    );
    let id = operation.id().unwrap_or_default();
    let elsewhere = here.get_operation().operation_id(id).send().await;
    let error = elsewhere.map(|_| ()).map_err(|e| e.into_service_error());
    assert!(
        matches!(&error, Err(e) if e.code() == Some("NotFound")),
        "{error:?}"
    );
    stop(sim).await;
}

#[tokio::test]
async fn bad_credentials_are_rejected() {
    let sim = start(SimConfig::default().with_computer(ComputerSpec::new("vm-auth"))).await;
    let wrong_secret = sdk_client(
        &sim.endpoint_url(),
        sim.access_key_id(),
        "not-the-secret",
        TEST_REGION,
        RetryConfig::disabled(),
    );
    let result = wrong_secret
        .start_gui_session()
        .resource_name("vm-auth")
        .send()
        .await;
    let error = result.map(|_| ()).map_err(|e| e.into_service_error());
    assert!(
        matches!(&error, Err(e) if e.code() == Some("InvalidSignatureException")),
        "{error:?}"
    );
    let wrong_key = sdk_client(
        &sim.endpoint_url(),
        "AKIDSOMEONEELSE",
        sim.secret_access_key(),
        TEST_REGION,
        RetryConfig::disabled(),
    );
    let result = wrong_key
        .start_gui_session()
        .resource_name("vm-auth")
        .send()
        .await;
    let error = result.map(|_| ()).map_err(|e| e.into_service_error());
    assert!(
        matches!(&error, Err(e) if e.code() == Some("InvalidClientTokenId")),
        "{error:?}"
    );

    let body = json!({"resourceName": "vm-auth"}).to_string();
    let target = Some("Lightsail_20161128.StartGUISession");
    let unsigned = send(aws_request(
        &sim.endpoint_url(),
        target,
        body.as_bytes(),
        None,
    ))
    .await;
    assert_error(
        &unsigned,
        StatusCode::FORBIDDEN,
        "MissingAuthenticationToken",
    );
    let stale = Signing {
        time: SystemTime::now() - Duration::from_secs(16 * 60),
        ..signing(&sim)
    };
    let expired = send(aws_request(
        &sim.endpoint_url(),
        target,
        body.as_bytes(),
        Some(stale),
    ))
    .await;
    assert_error(&expired, StatusCode::BAD_REQUEST, "RequestExpired");
    let slightly_off = Signing {
        time: SystemTime::now() - Duration::from_secs(10 * 60),
        ..signing(&sim)
    };
    let accepted = send(aws_request(
        &sim.endpoint_url(),
        target,
        body.as_bytes(),
        Some(slightly_off),
    ))
    .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text());

    let calls = sim.calls();
    for (outcome, expected) in [
        ("InvalidSignatureException", 1),
        ("InvalidClientTokenId", 1),
        ("MissingAuthenticationToken", 1),
        ("RequestExpired", 1),
        ("ok", 1),
    ] {
        assert_eq!(
            calls.count(Some("StartGUISession"), Some("vm-auth"), Some(outcome)),
            expected,
            "{outcome}: {calls:?}"
        );
    }
    assert_eq!(sim.computer("vm-auth").map(|c| c.operation_count), Some(1));
    stop(sim).await;
}

fn assert_error(reply: &HttpReply, status: StatusCode, type_name: &str) {
    assert_eq!(reply.status, status, "{}", reply.text());
    let json = reply.json();
    assert_eq!(json["__type"], type_name, "{json}");
    assert!(
        json["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{json}"
    );
}

#[tokio::test]
async fn protocol_errors_are_answered_like_aws() {
    let sim = start(SimConfig::default().with_computer(ComputerSpec::new("vm-proto"))).await;
    let url = sim.endpoint_url();
    let body = br#"{"resourceName":"vm-proto"}"#;
    let unknown = send(aws_request(
        &url,
        Some("Lightsail_20161128.GetInstances"),
        body,
        Some(signing(&sim)),
    ))
    .await;
    assert_error(
        &unknown,
        StatusCode::BAD_REQUEST,
        "UnknownOperationException",
    );
    let other_service = send(aws_request(
        &url,
        Some("AmazonEC2.StartGUISession"),
        body,
        Some(signing(&sim)),
    ))
    .await;
    assert_error(
        &other_service,
        StatusCode::BAD_REQUEST,
        "UnknownOperationException",
    );
    let no_target = send(aws_request(&url, None, body, Some(signing(&sim)))).await;
    assert_error(
        &no_target,
        StatusCode::BAD_REQUEST,
        "UnknownOperationException",
    );
    let target = Some("Lightsail_20161128.StartGUISession");
    for malformed in [
        &b"{\"resourceName\":"[..],
        b"[\"vm-proto\"]",
        b"{\"resourceName\": 7}",
    ] {
        let reply = send(aws_request(&url, target, malformed, Some(signing(&sim)))).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "SerializationException");
    }
    let calls = sim.calls();
    assert_eq!(
        calls.count(Some("Unknown"), None, Some("UnknownOperationException")),
        3
    );
    assert_eq!(
        calls.count(
            Some("StartGUISession"),
            None,
            Some("SerializationException")
        ),
        3
    );
    assert_eq!(sim.computer("vm-proto").map(|c| c.operation_count), Some(0));
    stop(sim).await;
}

#[tokio::test]
async fn throttling_is_retried_by_the_sdk_and_counted() {
    let sim = start(
        SimConfig::default()
            .with_computer(ComputerSpec::new("vm-throttle"))
            .with_faults(Faults {
                rate_limit: Some(RateLimit::new(2.0, 1)),
                ..Faults::default()
            }),
    )
    .await;
    let retrying = sdk_client(
        &sim.endpoint_url(),
        sim.access_key_id(),
        sim.secret_access_key(),
        TEST_REGION,
        RetryConfig::standard()
            .with_max_attempts(10)
            .with_initial_backoff(Duration::from_millis(50))
            .with_max_backoff(Duration::from_millis(500)),
    );
    // The bucket holds one call and refills every 500 ms: the second call is throttled at
    // least once and succeeds on a retry.
    let first = start_session(&retrying, "vm-throttle").await;
    let id = first.id().unwrap_or_default();
    let second = retrying.get_operation().operation_id(id).send().await;
    assert!(second.is_ok(), "{second:?}");
    let calls = sim.calls();
    assert_eq!(
        calls.count(Some("StartGUISession"), Some("vm-throttle"), Some("ok")),
        1
    );
    assert_eq!(
        calls.count(Some("GetOperation"), Some("vm-throttle"), Some("ok")),
        1
    );
    assert!(
        calls.count(
            Some("GetOperation"),
            Some("vm-throttle"),
            Some("ThrottlingException")
        ) >= 1,
        "{calls:?}"
    );

    // Without retries the SDK shows the throttling error as such.
    sim.set_faults(Faults {
        throttle_rate: 1.0,
        ..Faults::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let result = client(&sim).get_operation().operation_id(id).send().await;
    let error = result.map(|_| ()).map_err(|e| e.into_service_error());
    assert!(
        matches!(&error, Err(e) if e.code() == Some("ThrottlingException")),
        "{error:?}"
    );
    stop(sim).await;
}

#[tokio::test]
async fn injected_service_errors_and_latency_apply() {
    let sim = start(SimConfig::default().with_computer(ComputerSpec::new("vm-faults"))).await;
    let client = client(&sim);
    let reply = control(
        Method::PUT,
        &format!("{}/_sim/faults", sim.endpoint_url()),
        Some(json!({"serviceErrorRate": 1.0, "latency": "150ms"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(sim.faults().latency, Duration::from_millis(150));
    let began = std::time::Instant::now();
    let result = client
        .start_gui_session()
        .resource_name("vm-faults")
        .send()
        .await;
    assert!(began.elapsed() >= Duration::from_millis(150));
    let error = result.map(|_| ()).map_err(|e| e.into_service_error());
    assert!(
        matches!(&error, Err(e) if e.code() == Some("Service")),
        "{error:?}"
    );
    assert_eq!(
        sim.computer("vm-faults").map(|c| c.operation_count),
        Some(0)
    );
    assert_eq!(
        sim.calls().count(
            Some("StartGUISession"),
            Some("vm-faults"),
            Some("ServiceException")
        ),
        1
    );
    stop(sim).await;
}

#[tokio::test]
async fn held_start_responses_wait_for_release() {
    let sim = start(SimConfig::default()).await;
    let url = sim.endpoint_url();
    // Added at run time over the control endpoint, as the operator's tests do.
    let added = control(
        Method::POST,
        &format!("{url}/_sim/computers"),
        Some(json!({"name": "vm-hold", "holdStartResponse": true})),
    )
    .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text());

    let client = client(&sim);
    let pending = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .start_gui_session()
                .resource_name("vm-hold")
                .send()
                .await
        }
    });
    wait_until("the start to be counted and held", WAIT, || async {
        let counted = sim
            .calls()
            .count(Some("StartGUISession"), Some("vm-hold"), Some("ok"));
        let held = sim
            .computer("vm-hold")
            .map_or(0, |c| c.held_start_responses);
        (counted == 1 && held == 1).then_some(())
    })
    .await;
    assert!(!pending.is_finished(), "the response was not held");
    assert_eq!(sim.computer("vm-hold").map(|c| c.operation_count), Some(1));

    let released = control(
        Method::POST,
        &format!("{url}/_sim/computers/vm-hold/release"),
        None,
    )
    .await;
    assert_eq!(released.status, StatusCode::OK, "{}", released.text());
    assert_eq!(released.json()["holdStartResponse"], false);
    let answered = match tokio::time::timeout(WAIT, pending).await {
        Ok(Ok(Ok(output))) => output,
        other => panic!("held start did not complete: {other:?}"),
    };
    assert_eq!(
        the_operation(answered.operations()).status(),
        Some(&OperationStatus::Started)
    );
    assert_eq!(
        sim.computer("vm-hold").map(|c| c.held_start_responses),
        Some(0)
    );

    // A client that gives up frees its held response.
    assert!(
        sim.upsert_computer(ComputerSpec::new("vm-hold").hold_start_response(true))
            .is_ok()
    );
    let request = aws_request(
        &url,
        Some("Lightsail_20161128.StartGUISession"),
        br#"{"resourceName":"vm-hold"}"#,
        Some(signing(&sim)),
    );
    let bytes = request_bytes(request).await;
    let mut socket = match tokio::net::TcpStream::connect(sim.local_addr()).await {
        Ok(socket) => socket,
        Err(e) => panic!("connect: {e}"),
    };
    assert!(socket.write_all(&bytes).await.is_ok());
    wait_until("the second start to be held", WAIT, || async {
        (sim.computer("vm-hold").map(|c| c.held_start_responses) == Some(1)).then_some(())
    })
    .await;
    drop(socket);
    wait_until("the abandoned response to be dropped", WAIT, || async {
        (sim.computer("vm-hold").map(|c| c.held_start_responses) == Some(0)).then_some(())
    })
    .await;
    assert_eq!(sim.computer("vm-hold").map(|c| c.operation_count), Some(2));
    stop(sim).await;
}

#[tokio::test]
async fn shutdown_releases_held_responses() {
    let sim = start(
        SimConfig::default().with_computer(ComputerSpec::new("vm-held").hold_start_response(true)),
    )
    .await;
    let client = client(&sim);
    let pending = tokio::spawn(async move {
        client
            .start_gui_session()
            .resource_name("vm-held")
            .send()
            .await
    });
    wait_until("the start to be held", WAIT, || async {
        (sim.computer("vm-held").map(|c| c.held_start_responses) == Some(1)).then_some(())
    })
    .await;
    match tokio::time::timeout(WAIT, sim.shutdown()).await {
        Ok(Ok(())) => {}
        other => panic!("shutdown with a held response: {other:?}"),
    }
    assert!(matches!(
        tokio::time::timeout(WAIT, pending).await,
        Ok(Ok(_))
    ));
}

#[tokio::test]
async fn control_endpoint_reports_and_changes_state() {
    let sim = start(SimConfig::default().with_computer(ComputerSpec::new("vm-ctl"))).await;
    let url = sim.endpoint_url();
    let client = client(&sim);
    start_session(&client, "vm-ctl").await;
    let missing = client
        .start_gui_session()
        .resource_name("vm-none")
        .send()
        .await;
    assert!(missing.is_err());

    let calls = control(Method::GET, &format!("{url}/_sim/calls"), None).await;
    assert_eq!(calls.status, StatusCode::OK);
    assert_eq!(
        calls.json(),
        json!({"calls": [
            {"action": "StartGUISession", "resource": "vm-ctl", "outcome": "ok", "count": 1},
            {"action": "StartGUISession", "resource": "vm-none", "outcome": "NotFoundException", "count": 1},
        ], "total": 2})
    );
    let metrics = control(Method::GET, &format!("{url}/_sim/metrics"), None).await;
    assert!(metrics.text().contains(
        "lightsail_sim_calls_total{action=\"StartGUISession\",resource=\"vm-ctl\",outcome=\"ok\"} 1\n"
    ), "{}", metrics.text());
    assert!(
        metrics
            .text()
            .contains("# TYPE lightsail_sim_calls_total counter")
    );

    let reset = control(Method::POST, &format!("{url}/_sim/reset"), None).await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT);
    assert_eq!(sim.calls().total, 0);
    assert_eq!(sim.computer("vm-ctl").map(|c| c.operation_count), Some(1));
    let reset_all = control(Method::POST, &format!("{url}/_sim/reset?scope=all"), None).await;
    assert_eq!(reset_all.status, StatusCode::NO_CONTENT);
    assert_eq!(sim.computer("vm-ctl").map(|c| c.operation_count), Some(0));
    let bad_scope = control(Method::POST, &format!("{url}/_sim/reset?scope=most"), None).await;
    assert_eq!(bad_scope.status, StatusCode::BAD_REQUEST);

    let faults = json!({
        "latency": "20ms", "latencyJitter": "5ms", "serviceErrorRate": 0.25,
        "throttleRate": 0.5, "rateLimit": {"requestsPerSecond": 50.0, "burst": 100},
        "sts": {"unavailable": true, "throttleRate": 0.125, "serviceErrorRate": 0.0625}
    });
    let put = control(
        Method::PUT,
        &format!("{url}/_sim/faults"),
        Some(faults.clone()),
    )
    .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    let got = control(Method::GET, &format!("{url}/_sim/faults"), None).await;
    assert_eq!(got.json(), faults);
    assert_eq!(sim.faults().rate_limit, Some(RateLimit::new(50.0, 100)));
    assert_eq!(
        sim.sts_faults(),
        StsFaults {
            unavailable: true,
            throttle_rate: 0.125,
            service_error_rate: 0.0625
        }
    );
    for bad in [
        json!({"throttleRate": 2.0}),
        json!({"sts": {"throttleRate": 2.0}}),
        json!({"sts": {"serviceErrorRate": -1}}),
        json!({"sts": {"unavailable": 1}}),
        json!({"sts": {"outage": true}}),
        json!({"latency": "fast"}),
        json!({"rateLimit": {"requestsPerSecond": 0.0, "burst": 1}}),
        json!({"latencyMs": 5}),
    ] {
        let reply = control(
            Method::PUT,
            &format!("{url}/_sim/faults"),
            Some(bad.clone()),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            reply.json()["error"]
                .as_str()
                .is_some_and(|e| !e.is_empty())
        );
    }
    assert_eq!(
        sim.faults().rate_limit,
        Some(RateLimit::new(50.0, 100)),
        "bad PUTs change nothing"
    );
    assert!(sim.sts_faults().unavailable, "bad PUTs change nothing");
    // Older bodies, without "sts", still do: they turn the STS faults off, as any omitted field.
    let older = json!({"throttleRate": 0.5});
    let put = control(Method::PUT, &format!("{url}/_sim/faults"), Some(older)).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    let got = control(Method::GET, &format!("{url}/_sim/faults"), None).await;
    assert_eq!(
        got.json()["sts"],
        json!({"unavailable": false, "throttleRate": 0.0, "serviceErrorRate": 0.0})
    );
    assert_eq!(sim.faults().throttle_rate, 0.5);
    assert!(sim.set_faults(Faults::default()).is_ok());

    let update = control(
        Method::POST,
        &format!("{url}/_sim/computers"),
        Some(json!({"name": "vm-ctl", "accessDenied": true})),
    )
    .await;
    assert_eq!(update.status, StatusCode::OK, "{}", update.text());
    let denied = client
        .start_gui_session()
        .resource_name("vm-ctl")
        .send()
        .await;
    let error = denied.map(|_| ()).map_err(|e| e.into_service_error());
    assert!(
        matches!(&error, Err(e) if e.code() == Some("AccessDenied")),
        "{error:?}"
    );
    for bad in [
        json!({"name": "-x"}),
        json!({"name": "vm-x", "acessDenied": true}),
        json!({"region": "us-east-1"}),
    ] {
        let reply = control(
            Method::POST,
            &format!("{url}/_sim/computers"),
            Some(bad.clone()),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let listed = control(Method::GET, &format!("{url}/_sim/computers"), None).await;
    let listed = listed.json();
    assert_eq!(listed["computers"][0]["name"], "vm-ctl");
    assert_eq!(listed["computers"][0]["accessDenied"], true);
    assert_eq!(listed["computers"][0]["sessionStatus"], "notStarted");
    let one = control(Method::GET, &format!("{url}/_sim/computers/vm-ctl"), None).await;
    assert_eq!(one.json()["region"], "us-east-1");
    let deleted = control(
        Method::DELETE,
        &format!("{url}/_sim/computers/vm-ctl"),
        None,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = control(Method::GET, &format!("{url}/_sim/computers/vm-ctl"), None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    stop(sim).await;
}

/// Epoch milliseconds of the `Date` header of the answer behind an SDK error.
fn date_header_millis<E: std::fmt::Debug>(
    error: &aws_sdk_lightsail::error::SdkError<E, HttpResponse>,
) -> i64 {
    let date = error
        .raw_response()
        .and_then(|response| response.headers().get("date"));
    let Some(date) = date else {
        panic!("no Date header in the answer: {error:?}");
    };
    match DateTime::from_str(date, aws_smithy_types::date_time::Format::HttpDate) {
        Ok(time) => time.secs() * 1000,
        Err(e) => panic!("Date {date:?} is not an HTTP date: {e}"),
    }
}

/// `abs(a - b)` is within `tolerance_ms`.
fn assert_close(what: &str, a: i64, b: i64, tolerance_ms: i64) {
    assert!(
        (a - b).abs() <= tolerance_ms,
        "{what}: {a} and {b} differ by {} ms",
        a - b
    );
}

#[tokio::test]
async fn the_clock_offset_shifts_timestamps_the_date_header_and_the_signing_window() {
    const TWO_HOURS_MS: i64 = 2 * 3600 * 1000;
    let settle = Duration::from_millis(200);
    let sim = start(
        SimConfig::default()
            .with_settle_time(settle)
            .with_clock_offset(SignedDuration::from_hours(-2))
            .with_computer(ComputerSpec::new("vm-clock")),
    )
    .await;
    assert_eq!(sim.clock_offset(), SignedDuration::from_hours(-2));
    let client = client(&sim);

    // Signed with this machine's time, two hours ahead of the simulated AWS: refused, and the
    // answer's Date header carries AWS's time.
    let refused = client
        .start_gui_session()
        .resource_name("vm-clock")
        .send()
        .await;
    let error = match refused {
        Ok(_) => panic!("a request signed two hours ahead was accepted"),
        Err(e) => e,
    };
    assert_eq!(error.code(), Some("RequestExpired"), "{error:?}");
    assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(400));
    // HTTP dates have whole seconds.
    assert_close(
        "Date header",
        date_header_millis(&error),
        now_millis() - TWO_HOURS_MS,
        2_000,
    );

    // The SDK learned AWS's time from that Date header and signs with it now.
    let started = start_session(&client, "vm-clock").await;
    let created = millis(started.created_at());
    assert_close("createdAt", created, now_millis() - TWO_HOURS_MS, 2_000);
    let id = started.id().unwrap_or_default().to_owned();
    let settled = wait_until("the start to settle", WAIT, || {
        let (client, id) = (&client, &id);
        async move {
            let operation = get_operation(client, id).await;
            (operation.status() == Some(&OperationStatus::Succeeded)).then_some(operation)
        }
    })
    .await;
    // Settling is computed on the same clock as the timestamps it reports.
    assert_eq!(millis(settled.created_at()), created);
    assert_eq!(
        millis(settled.status_changed_at()) - created,
        settle.as_millis() as i64
    );
    assert_eq!(
        sim.calls()
            .count(Some("StartGUISession"), Some("vm-clock"), None),
        2
    );

    // At run time: the node's clock "jumps". History keeps its ages, its timestamps move.
    let url = sim.endpoint_url();
    let put = control(
        Method::PUT,
        &format!("{url}/_sim/clock"),
        Some(json!({"offset": "+1h"})),
    )
    .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    assert_eq!(put.json()["offset"], "1h");
    assert_eq!(sim.clock_offset(), SignedDuration::from_hours(1));
    let got = control(Method::GET, &format!("{url}/_sim/clock"), None).await;
    let got = got.json();
    assert_eq!(got["offset"], "1h");
    let aws_now: jiff::Timestamp = match got["now"].as_str().map(str::parse) {
        Some(Ok(now)) => now,
        other => panic!("GET /_sim/clock now: {other:?} in {got}"),
    };
    assert_close(
        "GET /_sim/clock now",
        aws_now.as_millisecond(),
        now_millis() + 3600 * 1000,
        2_000,
    );
    // The client still signs two hours behind the node: three hours off AWS now.
    let refused = client.get_operation().operation_id(&id).send().await;
    let error = match refused {
        Ok(_) => panic!("a request signed three hours off was accepted"),
        Err(e) => e,
    };
    assert_eq!(error.code(), Some("RequestExpired"), "{error:?}");
    let moved = get_operation(&client, &id).await;
    assert_eq!(
        millis(moved.created_at()) - created,
        3 * 3600 * 1000,
        "the same operation, reported on the moved clock"
    );
    assert_eq!(moved.status(), Some(&OperationStatus::Succeeded));

    for bad in [
        json!({"offset": "9000h"}),
        json!({"offset": "1.5us"}),
        json!({"offset": "soon"}),
        json!({"offset": "1h", "drift": "1s"}),
        json!({}),
    ] {
        let reply = control(Method::PUT, &format!("{url}/_sim/clock"), Some(bad.clone())).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            reply.json()["error"]
                .as_str()
                .is_some_and(|e| !e.is_empty()),
            "{bad}"
        );
    }
    assert_eq!(
        sim.clock_offset(),
        SignedDuration::from_hours(1),
        "bad PUTs change nothing"
    );
    assert!(
        sim.set_clock_offset(SignedDuration::from_hours(-9000))
            .is_err()
    );
    assert!(sim.set_clock_offset(SignedDuration::ZERO).is_ok());
    stop(sim).await;
}

#[tokio::test]
async fn the_call_log_keeps_session_calls_with_wall_clock_time_outcome_and_key() {
    // AWS's clock is off; the log's times are not.
    let sim = start(
        SimConfig::default()
            .with_clock_offset(SignedDuration::from_hours(-2))
            .with_computer(ComputerSpec::new("vm-log")),
    )
    .await;
    let client = client(&sim);
    let someone_else = sdk_client(
        &sim.endpoint_url(),
        "AKIDSOMEONEELSE",
        sim.secret_access_key(),
        TEST_REGION,
        RetryConfig::disabled(),
    );
    let began = jiff::Timestamp::now();
    // Refused for the clock, then signed with AWS's time.
    assert!(
        client
            .start_gui_session()
            .resource_name("vm-log")
            .send()
            .await
            .is_err()
    );
    let started = start_session(&client, "vm-log").await;
    get_operation(&client, started.id().unwrap_or_default()).await;
    assert!(
        client
            .stop_gui_session()
            .resource_name("vm-log")
            .send()
            .await
            .is_ok()
    );
    assert!(
        client
            .start_gui_session()
            .resource_name("vm-nowhere")
            .send()
            .await
            .is_err()
    );
    assert!(
        someone_else
            .start_gui_session()
            .resource_name("vm-log")
            .send()
            .await
            .is_err()
    );
    let ended = jiff::Timestamp::now();

    let log = sim.call_log();
    assert_eq!(log.dropped, 0);
    let key = Some(sim.access_key_id());
    let seen: Vec<(&str, &str, &str, Option<&str>)> = log
        .entries
        .iter()
        .map(|e| {
            (
                e.action.as_str(),
                e.resource.as_str(),
                e.outcome.as_str(),
                e.access_key_id.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("StartGUISession", "vm-log", "RequestExpired", key),
            ("StartGUISession", "vm-log", "ok", key),
            ("StopGUISession", "vm-log", "ok", key),
            ("StartGUISession", "vm-nowhere", "NotFoundException", key),
            (
                "StartGUISession",
                "vm-log",
                "InvalidClientTokenId",
                Some("AKIDSOMEONEELSE")
            ),
        ]
    );
    for pair in log.entries.windows(2) {
        assert!(pair[0].time <= pair[1].time, "{pair:?}");
    }
    for entry in &log.entries {
        assert!(began <= entry.time && entry.time <= ended, "{entry:?}");
    }
    assert_eq!(
        log.matching(Some("StartGUISession"), Some("vm-log"), Some("ok"))
            .count(),
        1
    );

    let url = sim.endpoint_url();
    let over_http = control(Method::GET, &format!("{url}/_sim/calls/log"), None).await;
    assert_eq!(over_http.status, StatusCode::OK);
    let json = over_http.json();
    assert_eq!(json["entries"][1]["accessKeyId"], sim.access_key_id());
    assert_eq!(json["entries"][1]["outcome"], "ok");
    let parsed: Result<CallLog, _> = serde_json::from_value(json);
    assert_eq!(parsed.ok(), Some(log));

    let reset = control(Method::POST, &format!("{url}/_sim/reset"), None).await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT);
    assert_eq!(sim.call_log(), CallLog::default());
    stop(sim).await;
}

#[test]
fn help_documents_every_flag() {
    let (status, stdout, _) = run_binary(&["--help"]);
    assert!(status.success());
    for flag in [
        "--listen",
        "--config",
        "--computer",
        "--access-key-id",
        "--secret-access-key",
        "--session-lifetime",
        "--settle-time",
        "--error-style",
        "--operations-page-size",
        "--latency",
        "--latency-jitter",
        "--service-error-rate",
        "--throttle-rate",
        "--rate-limit",
        "--rate-burst",
        "--sts-unavailable",
        "--sts-throttle-rate",
        "--sts-service-error-rate",
        "--clock-offset",
    ] {
        assert!(stdout.contains(flag), "--help lacks {flag}:\n{stdout}");
    }
    assert!(
        stdout.starts_with("Serves the Lightsail GUI-session API"),
        "{stdout}"
    );
    for documented in [
        "LIGHTSAIL_SIM_LISTEN",
        "/_sim/calls",
        "/_sim/faults",
        "/_sim/clock",
        "/_sim/calls/log",
        "clockOffset",
        "holdStartResponse",
        "accessSetupCalls",
        "accessFailure",
        "failedStartingGUISession",
        "lightsail-sim listening on",
    ] {
        assert!(stdout.contains(documented), "--help lacks {documented}");
    }
}

#[test]
fn bad_flags_and_bad_config_give_clear_errors() {
    for (args, complaint) in [
        (vec!["--error-style", "nope"], "invalid value 'nope'"),
        (vec!["--settle-time", "5"], "invalid duration"),
        (vec!["--throttle-rate", "1.5"], "not a fraction"),
        (vec!["--computer", "bad name"], "does not match"),
        (vec!["--clock-offset", "-2d"], "invalid signed duration"),
        (vec!["--bogus"], "unexpected argument '--bogus'"),
    ] {
        let (status, _, stderr) = run_binary(&args);
        assert_eq!(status.code(), Some(2), "{args:?}");
        assert!(stderr.contains(complaint), "{args:?}: {stderr}");
    }

    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => panic!("{e}"),
    };
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        assert!(std::fs::write(&path, text).is_ok());
        path.display().to_string()
    };
    let missing = dir.path().join("missing.yaml").display().to_string();
    let cases = [
        (missing.clone(), "cannot read config file".to_owned()),
        (
            write(
                "typo.yaml",
                "computers:\n  - name: vm-1\n    acessDenied: true\n",
            ),
            "unknown field `acessDenied`".to_owned(),
        ),
        (
            write("name.yaml", "computers:\n  - name: -vm\n"),
            "does not match".to_owned(),
        ),
        (
            write("broken.json", "{\"computers\": [}"),
            "invalid config file".to_owned(),
        ),
        (
            write("twice.yaml", "computers: [{name: vm-1}, {name: vm-1}]\n"),
            "more than once".to_owned(),
        ),
        (
            write("far.yaml", "clockOffset: -9000h\n"),
            "more than".to_owned(),
        ),
        (
            write(
                "access.yaml",
                "computers:\n  - name: vm-1\n    accessFailure: {status: stopped, reason: x}\n",
            ),
            "is not one of failedInstanceCreation, failedStartingGUISession".to_owned(),
        ),
        (
            write(
                "setup.yaml",
                "computers:\n  - name: vm-1\n    accessSetupCalls: 1000\n",
            ),
            "is more than 99".to_owned(),
        ),
    ];
    for (path, complaint) in cases {
        let (status, stdout, stderr) = run_binary(&["--listen", "127.0.0.1:0", "--config", &path]);
        assert_eq!(status.code(), Some(1), "{path}: {stderr}");
        assert!(stderr.contains(&complaint), "{path}: {stderr}");
        assert!(stderr.contains(&path), "{path}: {stderr}");
        assert!(stdout.is_empty());
    }
}

#[tokio::test]
async fn the_binary_serves_its_config_and_stops_on_sigterm() {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => panic!("{e}"),
    };
    let config = dir.path().join("sim.yaml");
    // Five minutes is inside SigV4's window: the SDK's first call passes.
    let yaml = "clockOffset: 5m\ncomputers:\n  - name: vm-file\n    region: us-east-1\n    startFailsWith: {errorCode: Boom, errorDetails: no}\n  - name: vm-access\n    accessSetupCalls: 1\n    accessFailure: {status: failedInstanceCreation, reason: no capacity}\n";
    assert!(std::fs::write(&config, yaml).is_ok());
    let config = config.display().to_string();
    let mut process = SimProcess::start(&[
        "--config",
        &config,
        "--computer",
        "vm-flag",
        "--settle-time",
        "0",
        "--access-key-id",
        "AKIDBINARY",
        "--secret-access-key",
        "binary-secret",
    ]);
    let client = sdk_client(
        &process.endpoint,
        "AKIDBINARY",
        "binary-secret",
        TEST_REGION,
        RetryConfig::disabled(),
    );
    let from_flag = start_session(&client, "vm-flag").await;
    assert_close(
        "createdAt five minutes ahead",
        millis(from_flag.created_at()),
        now_millis() + 5 * 60 * 1000,
        2_000,
    );
    let id = from_flag.id().unwrap_or_default();
    assert_eq!(
        get_operation(&client, id).await.status(),
        Some(&OperationStatus::Succeeded)
    );
    let from_file = start_session(&client, "vm-file").await;
    let failed = get_operation(&client, from_file.id().unwrap_or_default()).await;
    assert_eq!(failed.error_code(), Some("Boom"));
    let calls = control(
        Method::GET,
        &format!("{}/_sim/calls", process.endpoint),
        None,
    )
    .await;
    assert_eq!(calls.json()["total"], 4);
    let clock = control(
        Method::GET,
        &format!("{}/_sim/clock", process.endpoint),
        None,
    )
    .await;
    assert_eq!(clock.json()["offset"], "5m");
    start_session(&client, "vm-access").await;
    assert_eq!(
        access_steps(&client, "vm-access", 2).await,
        [
            step(Status::SettingUpInstance, 50, 0),
            failure_step(Status::FailedInstanceCreation, "no capacity"),
        ]
    );
    let status = process.terminate();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn a_control_token_guards_the_control_routes_but_not_the_aws_api() {
    let sim = start(
        SimConfig::default()
            .with_computer(ComputerSpec::new("vm-1"))
            .with_control_token("s3cret-token"),
    )
    .await;
    let calls = format!("{}/_sim/calls", sim.endpoint_url());
    let refused = control(Method::GET, &calls, None).await;
    assert_eq!(
        refused.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        refused.text()
    );
    assert!(refused.text().contains("Bearer"), "{}", refused.text());

    let wrong = http::Request::builder()
        .uri(&calls)
        .header("authorization", "Bearer s3cret-tokem")
        .body(http_body_util::Full::new(hyper::body::Bytes::new()))
        .expect("request");
    assert_eq!(send(wrong).await.status, StatusCode::UNAUTHORIZED);

    // The AWS protocol is authenticated by SigV4 alone: the token is not asked for there.
    start_session(&client(&sim), "vm-1").await;
    let right = http::Request::builder()
        .uri(&calls)
        .header("authorization", "Bearer s3cret-token")
        .body(http_body_util::Full::new(hyper::body::Bytes::new()))
        .expect("request");
    let reply = send(right).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        sim.calls()
            .count(Some("StartGUISession"), Some("vm-1"), Some("ok")),
        1
    );
    stop(sim).await;
}

#[tokio::test]
async fn listening_off_loopback_without_a_control_token_is_refused() {
    match Simulator::start(SimConfig::default(), "0.0.0.0:0").await {
        Ok(sim) => panic!("started on {} without a token", sim.endpoint_url()),
        Err(e) => assert!(format!("{e:#}").contains("control token"), "{e:#}"),
    }
    let sim =
        match Simulator::start(SimConfig::default().with_control_token("t"), "0.0.0.0:0").await {
            Ok(sim) => sim,
            Err(e) => panic!("with a token it starts: {e:#}"),
        };
    stop(sim).await;
    let (status, _, stderr) = run_binary(&["--listen", "0.0.0.0:0"]);
    assert!(!status.success());
    assert!(stderr.contains("LIGHTSAIL_SIM_CONTROL_TOKEN"), "{stderr}");
}

// ---- CreateGUISessionAccessDetails: setup calls, access failures and the session URLs ----

async fn access_details(
    client: &aws_sdk_lightsail::Client,
    name: &str,
) -> CreateGuiSessionAccessDetailsOutput {
    match client
        .create_gui_session_access_details()
        .resource_name(name)
        .send()
        .await
    {
        Ok(output) => output,
        Err(e) => panic!("CreateGUISessionAccessDetails failed: {e:?}"),
    }
}

/// One access-details answer in brief: status, percentageComplete, failureReason, sessions.
type AccessStep = (Option<Status>, Option<i32>, Option<String>, usize);

fn brief(output: &CreateGuiSessionAccessDetailsOutput) -> AccessStep {
    (
        output.status().cloned(),
        output.percentage_complete(),
        output.failure_reason().map(str::to_owned),
        output.sessions().len(),
    )
}

/// `calls` access-details calls in a row, in brief.
async fn access_steps(
    client: &aws_sdk_lightsail::Client,
    name: &str,
    calls: usize,
) -> Vec<AccessStep> {
    let mut steps = Vec::with_capacity(calls);
    for _ in 0..calls {
        steps.push(brief(&access_details(client, name).await));
    }
    steps
}

fn step(status: Status, percentage: i32, sessions: usize) -> AccessStep {
    (Some(status), Some(percentage), None, sessions)
}

fn failure_step(status: Status, reason: &str) -> AccessStep {
    (Some(status), Some(100), Some(reason.to_owned()), 0)
}

/// The view's session status and access calls counted since the latest start.
fn access_view(sim: &RunningSimulator, name: &str) -> Option<(String, u32)> {
    sim.computer(name)
        .map(|view| (view.session_status, view.access_calls_since_start))
}

async fn stop_session(client: &aws_sdk_lightsail::Client, name: &str) -> Operation {
    match client.stop_gui_session().resource_name(name).send().await {
        Ok(output) => the_operation(output.operations()).clone(),
        Err(e) => panic!("StopGUISession failed: {e:?}"),
    }
}

#[tokio::test]
async fn access_setup_calls_set_up_then_start_and_each_start_begins_them_anew() {
    let sim = start(
        SimConfig::default()
            .with_settle_time(Duration::ZERO)
            .with_computer(ComputerSpec::new("vm-setup").access_setup_calls(4)),
    )
    .await;
    let client = client(&sim);
    assert_eq!(
        access_steps(&client, "vm-setup", 1).await,
        [step(Status::NotStarted, 0, 0)]
    );

    let operation = start_session(&client, "vm-setup").await;
    // Settle time zero: the operation is over at once; the setup calls are not.
    assert_eq!(operation.status(), Some(&OperationStatus::Succeeded));
    assert_eq!(
        access_view(&sim, "vm-setup"),
        Some(("settingUpInstance".to_owned(), 0))
    );
    assert_eq!(
        access_steps(&client, "vm-setup", 6).await,
        [
            step(Status::SettingUpInstance, 20, 0),
            step(Status::SettingUpInstance, 40, 0),
            step(Status::Starting, 60, 0),
            step(Status::Starting, 80, 0),
            step(Status::Started, 100, 2),
            step(Status::Started, 100, 2),
        ]
    );
    assert_eq!(
        access_view(&sim, "vm-setup"),
        Some(("started".to_owned(), 6))
    );

    // A Start on a started session starts it anew, setup included.
    start_session(&client, "vm-setup").await;
    assert_eq!(
        access_steps(&client, "vm-setup", 2).await,
        [
            step(Status::SettingUpInstance, 20, 0),
            step(Status::SettingUpInstance, 40, 0),
        ]
    );

    // A Stop ends it whatever the setup reached; the next Start begins from the first call.
    stop_session(&client, "vm-setup").await;
    assert_eq!(
        access_steps(&client, "vm-setup", 2).await,
        [step(Status::Stopped, 100, 0), step(Status::Stopped, 100, 0)]
    );
    start_session(&client, "vm-setup").await;
    assert_eq!(
        access_steps(&client, "vm-setup", 5).await,
        [
            step(Status::SettingUpInstance, 20, 0),
            step(Status::SettingUpInstance, 40, 0),
            step(Status::Starting, 60, 0),
            step(Status::Starting, 80, 0),
            step(Status::Started, 100, 2),
        ]
    );
    assert_eq!(
        sim.calls().count(
            Some("CreateGUISessionAccessDetails"),
            Some("vm-setup"),
            Some("ok")
        ),
        16
    );

    // The knob changes at run time (the count so far is kept); the next start follows it.
    let url = sim.endpoint_url();
    let update = control(
        Method::POST,
        &format!("{url}/_sim/computers"),
        Some(json!({"name": "vm-setup", "accessSetupCalls": 2})),
    )
    .await;
    assert_eq!(update.status, StatusCode::OK, "{}", update.text());
    assert_eq!(update.json()["accessSetupCalls"], 2);
    assert_eq!(update.json()["accessCallsSinceStart"], 5);
    start_session(&client, "vm-setup").await;
    assert_eq!(
        access_steps(&client, "vm-setup", 3).await,
        [
            step(Status::SettingUpInstance, 33, 0),
            step(Status::Starting, 66, 0),
            step(Status::Started, 100, 2),
        ]
    );
    stop(sim).await;
}

#[tokio::test]
async fn setup_calls_count_while_the_start_runs_and_then_it_is_starting_until_it_settles() {
    // An hour's settle time: the start operation runs throughout the test.
    let sim = start(
        SimConfig::default()
            .with_settle_time(Duration::from_secs(3600))
            .with_computer(ComputerSpec::new("vm-slow").access_setup_calls(2)),
    )
    .await;
    let client = client(&sim);
    let operation = start_session(&client, "vm-slow").await;
    assert_eq!(
        access_steps(&client, "vm-slow", 4).await,
        [
            step(Status::SettingUpInstance, 33, 0),
            step(Status::Starting, 66, 0),
            // Setup calls used up, operation still running: starting, never going back.
            step(Status::Starting, 66, 0),
            step(Status::Starting, 66, 0),
        ]
    );
    let id = operation.id().unwrap_or_default();
    assert_eq!(
        get_operation(&client, id).await.status(),
        Some(&OperationStatus::Started)
    );
    stop(sim).await;
}

#[tokio::test]
async fn an_access_failure_ends_the_setup_with_its_status_and_reason_and_no_urls() {
    let reason = "no capacity in us-east-1a";
    let sim = start(
        SimConfig::default()
            .with_settle_time(Duration::ZERO)
            .with_computer(
                ComputerSpec::new("vm-fic")
                    .access_setup_calls(2)
                    .access_failure(AccessFailureStatus::FailedInstanceCreation, reason),
            ),
    )
    .await;
    let client = client(&sim);
    let operation = start_session(&client, "vm-fic").await;
    assert_eq!(
        access_steps(&client, "vm-fic", 4).await,
        [
            step(Status::SettingUpInstance, 33, 0),
            step(Status::Starting, 66, 0),
            failure_step(Status::FailedInstanceCreation, reason),
            failure_step(Status::FailedInstanceCreation, reason),
        ]
    );
    // Access failed, yet the start operation itself succeeded.
    let id = operation.id().unwrap_or_default();
    assert_eq!(
        get_operation(&client, id).await.status(),
        Some(&OperationStatus::Succeeded)
    );
    assert_eq!(
        access_view(&sim, "vm-fic"),
        Some(("failedInstanceCreation".to_owned(), 4))
    );

    // Set at run time through the control API, on a new computer, without setup calls.
    let url = sim.endpoint_url();
    let created = control(
        Method::POST,
        &format!("{url}/_sim/computers"),
        Some(json!({"name": "vm-fsg", "accessFailure":
            {"status": "failedStartingGUISession", "reason": "DCV did not start"}})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    assert_eq!(
        created.json()["accessFailure"],
        json!({"status": "failedStartingGUISession", "reason": "DCV did not start"})
    );
    assert_eq!(created.json()["accessSetupCalls"], 0);
    start_session(&client, "vm-fsg").await;
    assert_eq!(
        access_steps(&client, "vm-fsg", 1).await,
        [failure_step(
            Status::FailedStartingGuiSession,
            "DCV did not start"
        )]
    );
    // Cleared at run time: the same session is started from the next call on.
    let cleared = control(
        Method::POST,
        &format!("{url}/_sim/computers"),
        Some(json!({"name": "vm-fsg"})),
    )
    .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.text());
    assert_eq!(cleared.json().get("accessFailure"), None);
    assert_eq!(
        access_steps(&client, "vm-fsg", 1).await,
        [step(Status::Started, 100, 2)]
    );

    // Bad values are refused, saying why, and change nothing.
    for (bad, complaint) in [
        (
            json!({"name": "vm-fsg", "accessFailure": {"status": "stopped", "reason": "x"}}),
            "is not one of failedInstanceCreation, failedStartingGUISession",
        ),
        (
            json!({"name": "vm-fsg", "accessFailure":
                {"status": "failedStoppingGUISession", "reason": "x"}}),
            "stopFailsWith",
        ),
        (
            json!({"name": "vm-fsg", "accessFailure": {"status": "failedInstanceCreation"}}),
            "missing field `reason`",
        ),
        (
            json!({"name": "vm-fsg", "accessFailure":
                {"status": "failedInstanceCreation", "reason": ""}}),
            "non-empty reason",
        ),
        (
            json!({"name": "vm-fsg", "accessSetupCalls": 100}),
            "is more than 99",
        ),
        (
            json!({"name": "vm-fsg", "accessSetupCalls": -2}),
            "invalid value",
        ),
    ] {
        let reply = control(
            Method::POST,
            &format!("{url}/_sim/computers"),
            Some(bad.clone()),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        let error = reply.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(error.contains(complaint), "{bad}: {error}");
    }
    assert_eq!(
        sim.computer("vm-fsg")
            .map(|view| (view.spec.access_setup_calls, view.spec.access_failure)),
        Some((0, None))
    );
    assert!(
        sim.upsert_computer(ComputerSpec::new("vm-many").access_setup_calls(100))
            .is_err()
    );
    assert!(sim.computer("vm-many").is_none());
    stop(sim).await;
}

fn session_urls(output: &CreateGuiSessionAccessDetailsOutput) -> Vec<String> {
    output
        .sessions()
        .iter()
        .filter_map(|s| s.url().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn started_answers_carry_fresh_urls_that_nothing_else_shows() {
    let sim = start(
        SimConfig::default()
            .with_settle_time(Duration::ZERO)
            .with_computer(ComputerSpec::new("vm-url").access_setup_calls(1)),
    )
    .await;
    let client = client(&sim);
    start_session(&client, "vm-url").await;
    let setting_up = access_details(&client, "vm-url").await;
    assert_eq!(setting_up.status(), Some(&Status::SettingUpInstance));
    assert!(setting_up.sessions().is_empty());

    let first = access_details(&client, "vm-url").await;
    let second = access_details(&client, "vm-url").await;
    let mut urls = Vec::new();
    for output in [&first, &second] {
        assert_eq!(output.status(), Some(&Status::Started));
        let sessions: Vec<(Option<&str>, Option<bool>)> = output
            .sessions()
            .iter()
            .map(|s| (s.name(), s.is_primary()))
            .collect();
        assert_eq!(
            sessions,
            [
                (Some("primary"), Some(true)),
                (Some("secondary"), Some(false))
            ]
        );
        let these = session_urls(output);
        assert_eq!(these.len(), 2);
        for url in &these {
            assert!(url.starts_with("https://"), "{url}");
            assert!(url.contains("authToken="), "{url}");
        }
        // The SDK models Session.url as sensitive: its Debug output redacts it.
        let debug = format!("{output:?}");
        assert!(debug.contains("Redacted"), "{debug}");
        for url in &these {
            assert!(!debug.contains(url.as_str()), "Debug shows a URL: {debug}");
        }
        urls.extend(these);
    }
    let distinct: std::collections::HashSet<&String> = urls.iter().collect();
    assert_eq!(distinct.len(), 4, "every URL of every call is new");
    let tokens: Vec<String> = [&first, &second].into_iter().flat_map(url_tokens).collect();
    assert_eq!(tokens.len(), 4);
    let distinct: std::collections::HashSet<&String> = tokens.iter().collect();
    assert_eq!(distinct.len(), 4, "every URL has its own token");
    assert!(tokens.iter().all(|t| t.len() >= 32), "{tokens:?}");

    // Nowhere else: counts, call log, metrics, views (the logs: see the test below).
    stop_session(&client, "vm-url").await;
    let endpoint = sim.endpoint_url();
    let mut shown = vec![
        ("call report", format!("{:?}", sim.calls())),
        ("call log", format!("{:?}", sim.call_log())),
        ("computers", format!("{:?}", sim.computers())),
    ];
    for path in [
        "/_sim/calls",
        "/_sim/calls/log",
        "/_sim/metrics",
        "/_sim/computers",
        "/_sim/computers/vm-url",
        "/_sim/faults",
        "/_sim/clock",
    ] {
        let reply = control(Method::GET, &format!("{endpoint}{path}"), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        shown.push((path, reply.text()));
    }
    stop(sim).await;
    for (what, text) in &shown {
        for token in &tokens {
            assert!(
                !text.contains(token.as_str()),
                "{what} shows a token: {text}"
            );
        }
        assert!(!text.contains("authToken"), "{what} shows a URL: {text}");
    }
    let (_, metrics) = &shown[5];
    assert!(
        metrics.contains(
            "lightsail_sim_calls_total{action=\"CreateGUISessionAccessDetails\",resource=\"vm-url\",outcome=\"ok\"} 3\n"
        ),
        "{metrics}"
    );
}

/// The tokens in the URLs of an access-details answer.
fn url_tokens(output: &CreateGuiSessionAccessDetailsOutput) -> Vec<String> {
    session_urls(output)
        .iter()
        .filter_map(|url| url.split("authToken=").nth(1))
        .filter_map(|rest| rest.split('&').next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_simulator_logs_no_session_urls_even_at_trace_level() {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => panic!("{e}"),
    };
    let log = dir.path().join("sim.log");
    let mut process = SimProcess::start_logging(&["--settle-time", "0"], "trace", &log);
    let endpoint = process.endpoint.clone();
    // Knobs set at run time through the control API, as the operator's tests will.
    let created = control(
        Method::POST,
        &format!("{endpoint}/_sim/computers"),
        Some(json!({"name": "vm-log", "accessSetupCalls": 1})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let client = sdk_client(
        &endpoint,
        lightsail_sim::DEFAULT_ACCESS_KEY_ID,
        lightsail_sim::DEFAULT_SECRET_ACCESS_KEY,
        TEST_REGION,
        RetryConfig::disabled(),
    );
    start_session(&client, "vm-log").await;
    assert_eq!(
        access_steps(&client, "vm-log", 1).await,
        [step(Status::SettingUpInstance, 50, 0)]
    );
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let output = access_details(&client, "vm-log").await;
        assert_eq!(output.status(), Some(&Status::Started));
        tokens.extend(url_tokens(&output));
    }
    assert_eq!(tokens.len(), 4);
    for path in [
        "/_sim/computers",
        "/_sim/calls",
        "/_sim/calls/log",
        "/_sim/metrics",
    ] {
        let reply = control(Method::GET, &format!("{endpoint}{path}"), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
    }
    let status = process.terminate();
    assert!(status.success(), "{status:?}");
    let logged = match std::fs::read_to_string(&log) {
        Ok(text) => text,
        Err(e) => panic!("cannot read {}: {e}", log.display()),
    };
    // The log is there and speaks of these very calls ...
    assert!(
        logged.contains("action=\"CreateGUISessionAccessDetails\"")
            || logged.contains("action=CreateGUISessionAccessDetails"),
        "{logged}"
    );
    assert!(logged.contains("vm-log"), "{logged}");
    // ... without their URLs.
    for token in &tokens {
        assert!(!logged.contains(token.as_str()), "the log shows a token");
    }
    assert!(!logged.contains("authToken"), "the log shows a URL");
}
