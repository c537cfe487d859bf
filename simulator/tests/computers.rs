//! The computer behind a GUI session — its power state, the StopInstanceOnIdle add-on, the idle
//! rule and the cost meter — driven by the real `aws-sdk-lightsail` client over loopback.

mod simulator_support;

use aws_sdk_lightsail::config::retry::RetryConfig;
use aws_sdk_lightsail::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_lightsail::operation::start_instance::StartInstanceError;
use aws_sdk_lightsail::types::{
    AddOnRequest, AddOnType, Operation, OperationStatus, OperationType, RegionName, ResourceType,
    Status, StopInstanceOnIdleRequest,
};
use http::{Method, StatusCode};
use lightsail_sim::{
    AccountSpec, ComputerSpec, ErrorStyle, INSTANCE_NOT_RUNNING, InstanceState, LightsailException,
    RoleSpec, RunningSimulator, SessionWhenNotRunning, SimConfig, role_arn,
};
use serde_json::json;
use simulator_support::{
    TEST_REGION, client, control, refusal, run_binary, start, stop, wait_until,
};
use std::time::{Duration, SystemTime};

const WAIT: Duration = Duration::from_secs(10);
/// Short starting and stopping times, so transitions are watched rather than waited for.
const QUICK: Duration = Duration::from_millis(200);
const OTHER_ACCOUNT: &str = "111122223333";

fn the_operation(operations: &[Operation]) -> Operation {
    match operations {
        [operation] => operation.clone(),
        other => panic!("expected one operation, got {other:?}"),
    }
}

async fn state_of(client: &aws_sdk_lightsail::Client, name: &str) -> (i32, String) {
    match client.get_instance_state().instance_name(name).send().await {
        Ok(output) => {
            let state = output.state();
            (
                state.and_then(|s| s.code()).unwrap_or(-1),
                state.and_then(|s| s.name()).unwrap_or_default().to_owned(),
            )
        }
        Err(e) => panic!(
            "GetInstanceState {name} failed: {:?}",
            e.into_service_error()
        ),
    }
}

async fn wait_for_state(client: &aws_sdk_lightsail::Client, name: &str, wanted: InstanceState) {
    wait_until(&format!("{name} to be {wanted}"), WAIT, || async move {
        (state_of(client, name).await == (wanted.code(), wanted.name().to_owned())).then_some(())
    })
    .await;
}

async fn operation_status(client: &aws_sdk_lightsail::Client, id: &str) -> Operation {
    match client.get_operation().operation_id(id).send().await {
        Ok(output) => output
            .operation()
            .cloned()
            .unwrap_or_else(|| panic!("no operation")),
        Err(e) => panic!("GetOperation {id} failed: {:?}", e.into_service_error()),
    }
}

async fn wait_for_operation(
    client: &aws_sdk_lightsail::Client,
    id: &str,
    status: OperationStatus,
) -> Operation {
    let status = &status;
    wait_until(
        &format!("operation {id} to be {status:?}"),
        WAIT,
        || async move {
            let operation = operation_status(client, id).await;
            (operation.status() == Some(status)).then_some(operation)
        },
    )
    .await
}

async fn start_instance(client: &aws_sdk_lightsail::Client, name: &str) -> Operation {
    match client.start_instance().instance_name(name).send().await {
        Ok(output) => the_operation(output.operations()),
        Err(e) => panic!("StartInstance {name} failed: {:?}", e.into_service_error()),
    }
}

async fn stop_instance(client: &aws_sdk_lightsail::Client, name: &str) -> Operation {
    match client.stop_instance().instance_name(name).send().await {
        Ok(output) => the_operation(output.operations()),
        Err(e) => panic!("StopInstance {name} failed: {:?}", e.into_service_error()),
    }
}

fn idle_request(threshold: Option<&str>, duration: Option<&str>) -> AddOnRequest {
    let idle = StopInstanceOnIdleRequest::builder()
        .set_threshold(threshold.map(str::to_owned))
        .set_duration(duration.map(str::to_owned))
        .build();
    match AddOnRequest::builder()
        .add_on_type(AddOnType::StopInstanceOnIdle)
        .stop_instance_on_idle_request(idle)
        .build()
    {
        Ok(request) => request,
        Err(e) => panic!("{e}"),
    }
}

async fn enable_idle_stop(client: &aws_sdk_lightsail::Client, name: &str) -> Operation {
    let request = idle_request(Some("5"), Some("30"));
    match client
        .enable_add_on()
        .resource_name(name)
        .add_on_request(request)
        .send()
        .await
    {
        Ok(output) => the_operation(output.operations()),
        Err(e) => panic!("EnableAddOn {name} failed: {:?}", e.into_service_error()),
    }
}

async fn session_status(client: &aws_sdk_lightsail::Client, name: &str) -> (Status, usize) {
    match client
        .create_gui_session_access_details()
        .resource_name(name)
        .send()
        .await
    {
        Ok(output) => (
            output
                .status()
                .cloned()
                .unwrap_or_else(|| panic!("no status")),
            output.sessions().len(),
        ),
        Err(e) => panic!(
            "CreateGUISessionAccessDetails failed: {:?}",
            e.into_service_error()
        ),
    }
}

fn view(sim: &RunningSimulator, name: &str) -> lightsail_sim::ComputerView {
    sim.computer(name)
        .unwrap_or_else(|| panic!("no computer {name}"))
}

#[tokio::test]
async fn get_instance_and_its_state_have_aws_shapes() {
    let sim = start(
        SimConfig::default().with_computer(ComputerSpec::new("vm-1").blueprint_id("lfr_ubuntu")),
    )
    .await;
    let client = client(&sim);
    assert_eq!(state_of(&client, "vm-1").await, (16, "running".to_owned()));

    let instance = match client.get_instance().instance_name("vm-1").send().await {
        Ok(output) => output.instance().cloned(),
        Err(e) => panic!("GetInstance failed: {:?}", e.into_service_error()),
    };
    let Some(instance) = instance else {
        panic!("GetInstance answered no instance");
    };
    assert_eq!(instance.name(), Some("vm-1"));
    let arn = instance.arn().unwrap_or_default();
    assert!(
        arn.starts_with("arn:aws:lightsail:us-east-1:000000000000:Instance/"),
        "{arn}"
    );
    assert_eq!(instance.resource_type(), Some(&ResourceType::Instance));
    assert_eq!(instance.blueprint_id(), Some("lfr_ubuntu"));
    let created = instance.created_at().map_or(0, |t| t.secs());
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    assert!((now - created).abs() < 60, "{instance:?}");
    let location = instance.location();
    assert_eq!(
        location.and_then(|l| l.availability_zone()),
        Some("us-east-1a")
    );
    assert_eq!(
        location.and_then(|l| l.region_name()),
        Some(&RegionName::UsEast1)
    );
    let state = instance.state();
    assert_eq!(state.and_then(|s| s.code()), Some(16));
    assert_eq!(state.and_then(|s| s.name()), Some("running"));
    assert!(instance.add_ons().is_empty(), "{instance:?}");

    // The add-on shows once enabled, with its threshold and duration as Strings.
    let enabled = enable_idle_stop(&client, "vm-1").await;
    assert_eq!(enabled.operation_type(), Some(&OperationType::EnableAddOn));
    assert_eq!(enabled.status(), Some(&OperationStatus::Succeeded));
    assert_eq!(enabled.is_terminal(), Some(true));
    let add_ons = match client.get_instance().instance_name("vm-1").send().await {
        Ok(output) => output.instance().map(|i| i.add_ons().to_vec()),
        Err(e) => panic!("GetInstance failed: {:?}", e.into_service_error()),
    };
    let Some([add_on]) = add_ons.as_deref() else {
        panic!("expected one add-on: {add_ons:?}");
    };
    assert_eq!(add_on.name(), Some("StopInstanceOnIdle"));
    assert_eq!(add_on.status(), Some("Enabled"));
    assert_eq!(add_on.threshold(), Some("5"));
    assert_eq!(add_on.duration(), Some("30"));
    stop(sim).await;
}

#[tokio::test]
async fn start_instance_is_pending_then_running_and_its_operation_succeeds() {
    let sim = start(
        SimConfig::default()
            .with_computer(ComputerSpec::new("vm-1").stopped().starting_time(QUICK)),
    )
    .await;
    let client = client(&sim);
    assert_eq!(state_of(&client, "vm-1").await, (80, "stopped".to_owned()));

    let operation = start_instance(&client, "vm-1").await;
    assert_eq!(
        operation.operation_type(),
        Some(&OperationType::StartInstance)
    );
    assert_eq!(operation.status(), Some(&OperationStatus::Started));
    assert_eq!(operation.is_terminal(), Some(false));
    assert_eq!(operation.resource_name(), Some("vm-1"));
    assert_eq!(operation.resource_type(), Some(&ResourceType::Instance));
    let id = operation.id().unwrap_or_default().to_owned();
    let (code, name) = state_of(&client, "vm-1").await;
    assert!(
        (code, name.as_str()) == (0, "pending") || (code, name.as_str()) == (16, "running"),
        "{code} {name}"
    );

    // Starting a computer that is not stopped is refused.
    let (code, message, status) =
        refusal(client.start_instance().instance_name("vm-1").send().await);
    assert_eq!((code.as_str(), status), ("InvalidInput", 400), "{message}");
    assert!(
        message.contains("only a stopped instance can be started"),
        "{message}"
    );

    let succeeded = wait_for_operation(&client, &id, OperationStatus::Succeeded).await;
    assert_eq!(succeeded.is_terminal(), Some(true));
    // Running once the operation has succeeded: both follow the same starting time.
    assert_eq!(state_of(&client, "vm-1").await, (16, "running".to_owned()));
    let (code, message, _) = refusal(client.start_instance().instance_name("vm-1").send().await);
    assert_eq!(code, "InvalidInput");
    assert!(message.contains("its state is running"), "{message}");

    // The operation is listed for the resource like the GUI-session ones.
    let listed = match client
        .get_operations_for_resource()
        .resource_name("vm-1")
        .send()
        .await
    {
        Ok(output) => output.operations().to_vec(),
        Err(e) => panic!("{:?}", e.into_service_error()),
    };
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id(), Some(id.as_str()));
    assert_eq!(
        sim.calls()
            .count(Some("StartInstance"), Some("vm-1"), Some("ok")),
        1
    );
    assert_eq!(
        sim.calls().count(
            Some("StartInstance"),
            Some("vm-1"),
            Some("InvalidInputException")
        ),
        2
    );
    let log = sim.call_log();
    let logged: Vec<&str> = log
        .matching(Some("StartInstance"), Some("vm-1"), None)
        .map(|e| e.outcome.as_str())
        .collect();
    assert_eq!(
        logged,
        ["ok", "InvalidInputException", "InvalidInputException"]
    );
    assert!(
        log.entries
            .iter()
            .all(|e| e.access_key_id.as_deref() == Some(sim.access_key_id()))
    );
    stop(sim).await;
}

#[tokio::test]
async fn invalid_input_arrives_as_the_modelled_variant_in_the_type_error_style() {
    let sim = start(
        SimConfig::default()
            .with_error_style(ErrorStyle::Type)
            .with_computer(ComputerSpec::new("vm-1")),
    )
    .await;
    let client = client(&sim);
    match client.start_instance().instance_name("vm-1").send().await {
        Ok(output) => panic!("started a running computer: {output:?}"),
        Err(e) => {
            let e = e.into_service_error();
            assert!(
                matches!(e, StartInstanceError::InvalidInputException(_)),
                "{e:?}"
            );
        }
    }
    stop(sim).await;
}

#[tokio::test]
async fn stop_instance_is_stopping_then_stopped_and_force_is_logged() {
    let slow = Duration::from_secs(3600);
    let sim = start(
        SimConfig::default()
            .with_computer(ComputerSpec::new("vm-1").stopping_time(QUICK))
            .with_computer(ComputerSpec::new("vm-stuck").stopping_time(slow)),
    )
    .await;
    let client = client(&sim);

    let operation = stop_instance(&client, "vm-1").await;
    assert_eq!(
        operation.operation_type(),
        Some(&OperationType::StopInstance)
    );
    assert_eq!(operation.status(), Some(&OperationStatus::Started));
    let id = operation.id().unwrap_or_default().to_owned();
    wait_for_operation(&client, &id, OperationStatus::Succeeded).await;
    assert_eq!(state_of(&client, "vm-1").await, (80, "stopped".to_owned()));
    // Stopping a stopped computer is refused, forced or not.
    let (code, message, _) = refusal(client.stop_instance().instance_name("vm-1").send().await);
    assert_eq!(code, "InvalidInput");
    assert!(message.contains("is already stopped"), "{message}");

    // A computer stuck in stopping: stopping again is refused, force stops it at once.
    let stuck = stop_instance(&client, "vm-stuck").await;
    assert_eq!(
        state_of(&client, "vm-stuck").await,
        (64, "stopping".to_owned())
    );
    let (code, message, _) = refusal(
        client
            .stop_instance()
            .instance_name("vm-stuck")
            .force(false)
            .send()
            .await,
    );
    assert_eq!(code, "InvalidInput");
    assert!(message.contains("already stopping"), "{message}");
    let forced = match client
        .stop_instance()
        .instance_name("vm-stuck")
        .force(true)
        .send()
        .await
    {
        Ok(output) => the_operation(output.operations()),
        Err(e) => panic!("forced StopInstance failed: {:?}", e.into_service_error()),
    };
    assert_eq!(forced.status(), Some(&OperationStatus::Succeeded));
    assert_eq!(
        state_of(&client, "vm-stuck").await,
        (80, "stopped".to_owned())
    );
    // The first, unforced stop of it is still running its course.
    let first = operation_status(&client, stuck.id().unwrap_or_default()).await;
    assert_eq!(first.status(), Some(&OperationStatus::Started));

    // The call log says which stops were forced: a test can assert the operator never does.
    let log = sim.call_log();
    let stops: Vec<(&str, &str, Option<bool>)> = log
        .matching(Some("StopInstance"), None, None)
        .map(|e| (e.resource.as_str(), e.outcome.as_str(), e.force))
        .collect();
    assert_eq!(
        stops,
        [
            ("vm-1", "ok", None),
            ("vm-1", "InvalidInputException", None),
            ("vm-stuck", "ok", None),
            ("vm-stuck", "InvalidInputException", Some(false)),
            ("vm-stuck", "ok", Some(true)),
        ]
    );
    let over_http = control(
        Method::GET,
        &format!("{}/_sim/calls/log", sim.endpoint_url()),
        None,
    )
    .await
    .json();
    let forces: Vec<serde_json::Value> = over_http["entries"]
        .as_array()
        .map(|entries| entries.iter().map(|e| e["force"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(
        forces,
        [
            json!(null),
            json!(null),
            json!(null),
            json!(false),
            json!(true)
        ]
    );
    stop(sim).await;
}

#[tokio::test]
async fn other_accounts_and_regions_do_not_find_the_computer() {
    let sim = start(
        SimConfig::default()
            .with_account(
                AccountSpec::new(OTHER_ACCOUNT)
                    .with_role(RoleSpec::new("gui").trusting(lightsail_sim::DEFAULT_ACCOUNT_ID)),
            )
            .with_computer(ComputerSpec::new("vm-base"))
            .with_computer(ComputerSpec::new("vm-other").in_account(OTHER_ACCOUNT))
            .with_computer(ComputerSpec::new("vm-west").in_region("us-west-2")),
    )
    .await;
    let base = client(&sim);
    // Credentials of the other account, from STS.
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(TEST_REGION))
            .credentials_provider(Credentials::new(
                sim.access_key_id(),
                sim.secret_access_key(),
                None,
                None,
                "base",
            ))
            .endpoint_url(sim.endpoint_url())
            .build(),
    );
    let assumed = match sts
        .assume_role()
        .role_arn(role_arn(OTHER_ACCOUNT, "gui"))
        .role_session_name("op")
        .send()
        .await
    {
        Ok(output) => output,
        Err(e) => panic!("AssumeRole failed: {:?}", e.into_service_error()),
    };
    let Some(credentials) = assumed.credentials() else {
        panic!("no credentials");
    };
    let other = aws_sdk_lightsail::Client::from_conf(
        aws_sdk_lightsail::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(TEST_REGION))
            .credentials_provider(Credentials::new(
                credentials.access_key_id(),
                credentials.secret_access_key(),
                Some(credentials.session_token().to_owned()),
                None,
                "assumed",
            ))
            .endpoint_url(sim.endpoint_url())
            .retry_config(RetryConfig::disabled())
            .build(),
    );

    assert_eq!(state_of(&other, "vm-other").await.0, 16);
    assert_eq!(state_of(&base, "vm-base").await.0, 16);
    for (client, name) in [(&other, "vm-base"), (&base, "vm-other"), (&base, "vm-west")] {
        let results = [
            refusal(client.get_instance_state().instance_name(name).send().await),
            refusal(client.get_instance().instance_name(name).send().await),
            refusal(client.start_instance().instance_name(name).send().await),
            refusal(client.stop_instance().instance_name(name).send().await),
            refusal(
                client
                    .enable_add_on()
                    .resource_name(name)
                    .add_on_request(idle_request(Some("5"), Some("30")))
                    .send()
                    .await,
            ),
            refusal(
                client
                    .disable_add_on()
                    .resource_name(name)
                    .add_on_type(AddOnType::StopInstanceOnIdle)
                    .send()
                    .await,
            ),
        ];
        for (code, message, status) in results {
            assert_eq!(
                (code.as_str(), status),
                ("NotFound", 400),
                "{name}: {message}"
            );
            assert_eq!(message, format!("The Instance does not exist: {name}"));
        }
    }
    // Nothing moved.
    assert_eq!(view(&sim, "vm-base").state, InstanceState::Running);
    assert_eq!(view(&sim, "vm-other").idle_stop, None);
    stop(sim).await;
}

#[tokio::test]
async fn the_new_calls_honour_forced_exceptions_and_name_missing_members() {
    let sim = start(SimConfig::default().with_computer(ComputerSpec::new("vm-1"))).await;
    let client = client(&sim);
    for exception in [
        LightsailException::AccessDenied,
        LightsailException::OperationFailure,
        LightsailException::Service,
    ] {
        assert!(
            sim.upsert_computer(ComputerSpec::new("vm-1").calls_fail_with(exception))
                .is_ok()
        );
        let results = [
            refusal(
                client
                    .get_instance_state()
                    .instance_name("vm-1")
                    .send()
                    .await,
            ),
            refusal(client.get_instance().instance_name("vm-1").send().await),
            refusal(client.start_instance().instance_name("vm-1").send().await),
            refusal(client.stop_instance().instance_name("vm-1").send().await),
            refusal(
                client
                    .enable_add_on()
                    .resource_name("vm-1")
                    .add_on_request(idle_request(Some("5"), Some("30")))
                    .send()
                    .await,
            ),
            refusal(
                client
                    .disable_add_on()
                    .resource_name("vm-1")
                    .add_on_type(AddOnType::StopInstanceOnIdle)
                    .send()
                    .await,
            ),
        ];
        for (code, _, status) in results {
            assert_eq!(code, exception.code());
            assert_eq!(status, exception.http_status());
        }
    }
    assert!(sim.upsert_computer(ComputerSpec::new("vm-1")).is_ok());
    // The upsert kept the computer running and made no operation.
    assert_eq!(view(&sim, "vm-1").state, InstanceState::Running);
    assert_eq!(view(&sim, "vm-1").operation_count, 0);
    let (code, message, _) = refusal(client.get_instance_state().send().await);
    assert_eq!(code, "InvalidInput");
    assert!(
        message.contains("Value null at 'instanceName'"),
        "{message}"
    );
    stop(sim).await;
}

#[tokio::test]
async fn add_on_requests_are_validated_and_disable_removes_the_rule() {
    let sim = start(SimConfig::default().with_computer(ComputerSpec::new("vm-1"))).await;
    let client = client(&sim);
    let enable = |request: AddOnRequest| {
        let client = client.clone();
        async move {
            client
                .enable_add_on()
                .resource_name("vm-1")
                .add_on_request(request)
                .send()
                .await
        }
    };
    let unknown = match AddOnRequest::builder()
        .add_on_type(AddOnType::from("Turbo"))
        .build()
    {
        Ok(request) => request,
        Err(e) => panic!("{e}"),
    };
    let without_settings = match AddOnRequest::builder()
        .add_on_type(AddOnType::StopInstanceOnIdle)
        .build()
    {
        Ok(request) => request,
        Err(e) => panic!("{e}"),
    };
    for (request, complaint) in [
        (unknown, "Value 'Turbo' at 'addOnRequest.addOnType'"),
        (without_settings, "stopInstanceOnIdleRequest is required"),
        (idle_request(None, Some("30")), "threshold is required"),
        (idle_request(Some("5"), None), "duration is required"),
        (
            idle_request(Some("low"), Some("30")),
            "threshold 'low' is not a valid number",
        ),
        (
            idle_request(Some("5"), Some("half an hour")),
            "duration 'half an hour' is not a valid number",
        ),
    ] {
        let (code, message, status) = refusal(enable(request).await);
        assert_eq!((code.as_str(), status), ("InvalidInput", 400), "{message}");
        assert!(message.contains(complaint), "{message}");
    }
    assert_eq!(view(&sim, "vm-1").idle_stop, None);
    assert_eq!(view(&sim, "vm-1").operation_count, 0);

    enable_idle_stop(&client, "vm-1").await;
    // Enabling again modifies it.
    let modified = match enable(idle_request(Some("10"), Some("15"))).await {
        Ok(output) => the_operation(output.operations()),
        Err(e) => panic!("{:?}", e.into_service_error()),
    };
    assert_eq!(modified.operation_type(), Some(&OperationType::EnableAddOn));
    let idle = view(&sim, "vm-1").idle_stop;
    assert_eq!(
        idle.map(|i| (i.threshold, i.duration)),
        Some(("10".to_owned(), "15".to_owned()))
    );
    let disabled = match client
        .disable_add_on()
        .resource_name("vm-1")
        .add_on_type(AddOnType::StopInstanceOnIdle)
        .send()
        .await
    {
        Ok(output) => the_operation(output.operations()),
        Err(e) => panic!("{:?}", e.into_service_error()),
    };
    assert_eq!(
        disabled.operation_type(),
        Some(&OperationType::DisableAddOn)
    );
    assert_eq!(disabled.status(), Some(&OperationStatus::Succeeded));
    let fetched = operation_status(&client, disabled.id().unwrap_or_default()).await;
    assert_eq!(fetched.operation_type(), Some(&OperationType::DisableAddOn));
    assert_eq!(view(&sim, "vm-1").idle_stop, None);
    let (code, message, _) = refusal(
        client
            .disable_add_on()
            .resource_name("vm-1")
            .add_on_type(AddOnType::from("Turbo"))
            .send()
            .await,
    );
    assert_eq!(code, "InvalidInput");
    assert!(message.contains("enum value set"), "{message}");
    let log = sim.call_log();
    let logged: Vec<(&str, &str)> = log
        .entries
        .iter()
        .map(|e| (e.action.as_str(), e.outcome.as_str()))
        .filter(|(_, outcome)| *outcome == "ok")
        .collect();
    assert_eq!(
        logged,
        [
            ("EnableAddOn", "ok"),
            ("EnableAddOn", "ok"),
            ("DisableAddOn", "ok")
        ]
    );
    stop(sim).await;
}

#[tokio::test]
async fn start_gui_session_on_a_computer_not_running_answers_as_configured() {
    let sim = start(
        SimConfig::default()
            .with_settle_time(QUICK)
            .with_computer(ComputerSpec::new("vm-error").stopped())
            .with_computer(
                ComputerSpec::new("vm-failing")
                    .stopped()
                    .session_when_not_running(SessionWhenNotRunning::FailedOperation),
            ),
    )
    .await;
    let client = client(&sim);

    let (code, message, status) = refusal(
        client
            .start_gui_session()
            .resource_name("vm-error")
            .send()
            .await,
    );
    assert_eq!((code.as_str(), status), ("InvalidInput", 400));
    assert_eq!(
        message,
        "The instance vm-error is not running (its state is stopped): start it before starting a \
         GUI session"
    );
    assert_eq!(view(&sim, "vm-error").operation_count, 0);

    let operation = match client
        .start_gui_session()
        .resource_name("vm-failing")
        .send()
        .await
    {
        Ok(output) => the_operation(output.operations()),
        Err(e) => panic!("{:?}", e.into_service_error()),
    };
    assert_eq!(
        operation.operation_type(),
        Some(&OperationType::StartGuiSession)
    );
    assert_eq!(operation.status(), Some(&OperationStatus::Started));
    let failed = wait_for_operation(
        &client,
        operation.id().unwrap_or_default(),
        OperationStatus::Failed,
    )
    .await;
    assert_eq!(failed.error_code(), Some(INSTANCE_NOT_RUNNING));
    assert!(
        failed
            .error_details()
            .is_some_and(|d| d.contains("is not running (its state is stopped)")),
        "{failed:?}"
    );
    assert_eq!(failed.is_terminal(), Some(true));
    assert_eq!(
        session_status(&client, "vm-failing").await,
        (Status::Stopped, 0)
    );
    stop(sim).await;
}

#[tokio::test]
async fn a_session_ends_when_its_computer_stops_and_stays_ended_after_a_restart() {
    let sim = start(
        SimConfig::default()
            .with_settle_time(Duration::ZERO)
            // Pending until set running by hand, so the pending answer is certain.
            .with_computer(
                ComputerSpec::new("vm-1")
                    .starting_time(Duration::from_secs(3600))
                    .stopping_time(QUICK),
            ),
    )
    .await;
    let client = client(&sim);
    assert!(
        client
            .start_gui_session()
            .resource_name("vm-1")
            .send()
            .await
            .is_ok()
    );
    assert_eq!(session_status(&client, "vm-1").await, (Status::Started, 2));

    stop_instance(&client, "vm-1").await;
    // Stopping already ends the session: no URLs while the computer is not running.
    assert_eq!(session_status(&client, "vm-1").await, (Status::Stopped, 0));
    wait_for_state(&client, "vm-1", InstanceState::Stopped).await;
    assert_eq!(session_status(&client, "vm-1").await, (Status::Stopped, 0));
    assert_eq!(view(&sim, "vm-1").session_status, "stopped");

    start_instance(&client, "vm-1").await;
    // Pending is not running: a new session is refused until the computer runs.
    let (code, message, _) = refusal(
        client
            .start_gui_session()
            .resource_name("vm-1")
            .send()
            .await,
    );
    assert_eq!(code, "InvalidInput");
    assert!(message.contains("its state is pending"), "{message}");
    assert!(
        sim.set_computer_state("vm-1", InstanceState::Running)
            .is_ok()
    );
    // The old session does not come back by itself.
    assert_eq!(session_status(&client, "vm-1").await, (Status::Stopped, 0));
    assert!(
        client
            .start_gui_session()
            .resource_name("vm-1")
            .send()
            .await
            .is_ok()
    );
    assert_eq!(session_status(&client, "vm-1").await, (Status::Started, 2));
    stop(sim).await;
}

#[tokio::test]
async fn the_idle_rule_fires_only_when_enabled_and_running() {
    let sim = start(
        SimConfig::default()
            .with_instance_times(QUICK, QUICK)
            .with_computer(ComputerSpec::new("vm-1")),
    )
    .await;
    let client = client(&sim);
    let url = sim.endpoint_url();
    let idle_stop = |name: &str| {
        let url = format!("{url}/_sim/computers/{name}/idle-stop");
        async move { control(Method::POST, &url, None).await }
    };

    let without_add_on = idle_stop("vm-1").await;
    assert_eq!(without_add_on.status, StatusCode::CONFLICT);
    assert!(
        without_add_on
            .text()
            .contains("no StopInstanceOnIdle add-on enabled"),
        "{}",
        without_add_on.text()
    );
    assert_eq!(idle_stop("vm-none").await.status, StatusCode::NOT_FOUND);

    enable_idle_stop(&client, "vm-1").await;
    let fired = idle_stop("vm-1").await;
    assert_eq!(fired.status, StatusCode::OK, "{}", fired.text());
    assert_eq!(fired.json()["state"], "stopping");
    wait_for_state(&client, "vm-1", InstanceState::Stopped).await;
    let again = idle_stop("vm-1").await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.text().contains("is stopped"), "{}", again.text());
    // The rule is not a call: nothing logged, no operation, never a forced stop.
    assert_eq!(
        sim.call_log()
            .matching(Some("StopInstance"), None, None)
            .count(),
        0
    );
    assert_eq!(view(&sim, "vm-1").operation_count, 1);

    // The same through the handle; the add-on stays enabled after firing.
    start_instance(&client, "vm-1").await;
    assert!(
        sim.trigger_idle_stop("vm-1")
            .is_err_and(|e| e.contains("is pending"))
    );
    wait_for_state(&client, "vm-1", InstanceState::Running).await;
    let fired = sim.trigger_idle_stop("vm-1");
    assert_eq!(fired.map(|v| v.state), Ok(InstanceState::Stopping));
    assert!(
        sim.trigger_idle_stop("vm-none")
            .is_err_and(|e| e.contains("no computer"))
    );
    stop(sim).await;
}

#[tokio::test]
async fn a_state_set_by_hand_takes_effect_at_once() {
    let sim =
        start(SimConfig::default().with_computer(ComputerSpec::new("vm-1").starting_time(QUICK)))
            .await;
    let client = client(&sim);
    let url = format!("{}/_sim/computers/vm-1/state", sim.endpoint_url());
    let set = control(Method::POST, &url, Some(json!({"state": "stopped"}))).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text());
    assert_eq!(set.json()["state"], "stopped");
    assert_eq!(state_of(&client, "vm-1").await, (80, "stopped".to_owned()));
    let bad = control(Method::POST, &url, Some(json!({"state": "asleep"}))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let missing = control(
        Method::POST,
        &format!("{}/_sim/computers/vm-none/state", sim.endpoint_url()),
        Some(json!({"state": "running"})),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let pending = sim.set_computer_state("vm-1", InstanceState::Pending);
    assert_eq!(pending.map(|v| v.state), Ok(InstanceState::Pending));
    wait_for_state(&client, "vm-1", InstanceState::Running).await;
    // No operation: nobody called AWS.
    assert_eq!(view(&sim, "vm-1").operation_count, 0);
    stop(sim).await;
}

/// `[start, end)` around now: wide enough that the whole test falls inside.
fn window_around_now() -> (jiff::Timestamp, jiff::Timestamp) {
    let now = jiff::Timestamp::now();
    let hour = jiff::SignedDuration::from_hours(1);
    (
        now.checked_sub(hour).unwrap_or(now),
        now.checked_add(hour).unwrap_or(now),
    )
}

#[tokio::test]
async fn the_meter_counts_billed_time_inside_and_outside_windows() {
    let (start_at, end_at) = window_around_now();
    let sim = start(
        SimConfig::default()
            .with_instance_times(QUICK, QUICK)
            .with_computer(ComputerSpec::new("vm-inside").meter_window(start_at, end_at))
            .with_computer(ComputerSpec::new("vm-outside").stopped()),
    )
    .await;
    let client = client(&sim);
    // A computer that never ran has billed nothing.
    let idle = view(&sim, "vm-outside");
    assert_eq!(idle.running_seconds, 0.0);
    assert!(idle.billed_intervals.is_empty());

    start_instance(&client, "vm-outside").await;
    stop_instance(&client, "vm-inside").await;
    wait_for_state(&client, "vm-inside", InstanceState::Stopped).await;
    wait_for_state(&client, "vm-outside", InstanceState::Running).await;

    // vm-inside ran from being added until stopped, all inside its window.
    let inside = view(&sim, "vm-inside");
    assert!(inside.running_seconds >= QUICK.as_secs_f64(), "{inside:?}");
    assert_eq!(
        inside.running_seconds_inside_windows,
        inside.running_seconds
    );
    assert_eq!(inside.running_seconds_outside_windows, 0.0);
    let [interval] = inside.billed_intervals.as_slice() else {
        panic!("{inside:?}");
    };
    assert!(interval.end.is_some(), "{inside:?}");
    let frozen = inside.running_seconds;
    assert_eq!(view(&sim, "vm-inside").running_seconds, frozen);

    // vm-outside is still billed (pending counted), with no window: all outside, interval open.
    let outside = view(&sim, "vm-outside");
    assert!(
        outside.running_seconds >= QUICK.as_secs_f64(),
        "{outside:?}"
    );
    assert_eq!(outside.running_seconds_inside_windows, 0.0);
    assert_eq!(
        outside.running_seconds_outside_windows,
        outside.running_seconds
    );
    assert!(
        matches!(outside.billed_intervals.as_slice(), [i] if i.end.is_none()),
        "{outside:?}"
    );

    // Windows change at run time; the state and the meter stay.
    let past = jiff::Timestamp::UNIX_EPOCH;
    let later = past
        .checked_add(jiff::SignedDuration::from_hours(1))
        .unwrap_or(past);
    let updated = ComputerSpec::new("vm-inside").meter_window(past, later);
    assert!(matches!(sim.upsert_computer(updated), Ok(false)));
    let moved = view(&sim, "vm-inside");
    assert_eq!(moved.state, InstanceState::Stopped);
    assert_eq!(moved.running_seconds, frozen);
    assert_eq!(moved.running_seconds_inside_windows, 0.0);
    assert_eq!(moved.running_seconds_outside_windows, frozen);

    // The same over HTTP, windows posted as JSON.
    let posted = control(
        Method::POST,
        &format!("{}/_sim/computers", sim.endpoint_url()),
        Some(json!({"name": "vm-inside", "meterWindows": [
            {"start": start_at.to_string(), "end": end_at.to_string()}]})),
    )
    .await;
    assert_eq!(posted.status, StatusCode::OK, "{}", posted.text());
    let json = posted.json();
    assert_eq!(json["state"], "stopped");
    assert_eq!(json["runningSecondsInsideWindows"], json!(frozen));
    assert_eq!(json["runningSecondsOutsideWindows"], json!(0.0));
    assert!(json["billedIntervals"][0]["end"].is_string(), "{json}");
    let listed = control(
        Method::GET,
        &format!("{}/_sim/computers", sim.endpoint_url()),
        None,
    )
    .await
    .json();
    assert_eq!(listed["computers"][1]["name"], "vm-outside");
    assert!(listed["computers"][1]["billedIntervals"][0]["end"].is_null());
    stop(sim).await;
}

#[test]
fn help_documents_the_computer_flags_calls_and_controls() {
    let (status, stdout, _) = run_binary(&["--help"]);
    assert!(status.success());
    for documented in [
        "--instance-start-time",
        "--instance-stop-time",
        "instanceStartTime",
        "startingTime",
        "stoppingTime",
        "sessionWhenNotRunning",
        "meterWindows",
        "StartInstance",
        "EnableAddOn",
        "/_sim/computers/NAME/idle-stop",
        "/_sim/computers/NAME/state",
        "runningSeconds",
    ] {
        assert!(stdout.contains(documented), "--help lacks {documented}");
    }
}
