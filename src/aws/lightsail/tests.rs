use super::*;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_lightsail::operation::start_gui_session::StartGUISessionError;

use crate::guisession::types::{Location, OperationStatus};
use aws_sdk_lightsail::operation::get_operation::GetOperationOutput;
use aws_sdk_lightsail::operation::get_operations_for_resource::GetOperationsForResourceOutput;
use aws_sdk_lightsail::operation::start_gui_session::StartGuiSessionOutput;
use aws_sdk_lightsail::types as sdk;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_types::DateTime;
use aws_smithy_types::error::ErrorMetadata;
use std::num::NonZeroU32;

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
    let get = mock!(Client::get_operation).then_output(|| GetOperationOutput::builder().build());
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
