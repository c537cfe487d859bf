//! STS and AWS accounts in the simulator, driven by the real `aws-sdk-sts`, `aws-config`
//! (`AssumeRoleProvider`, the config loader) and `aws-sdk-lightsail` clients over loopback.

mod simulator_support;

use aws_config::sts::AssumeRoleProvider;
use aws_sdk_lightsail::config::retry::RetryConfig;
use aws_sdk_lightsail::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_lightsail::error::SdkError;
use aws_sdk_sts::operation::assume_role::{AssumeRoleError, AssumeRoleOutput};
use aws_smithy_async::time::TimeSource;
use aws_types::os_shim_internal::{Env, Fs};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use hyper::body::Bytes;
use lightsail_sim::{
    AccountSpec, CallLog, ComputerSpec, DEFAULT_ACCOUNT_ID, Faults, RoleSpec, RunningSimulator,
    SignedDuration, SimConfig, StsFaults, role_arn,
};
use serde_json::json;
use simulator_support::{
    HttpReply, SimProcess, TEST_REGION, control, refusal, run_binary, send, start, stop,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

const BASE: &str = DEFAULT_ACCOUNT_ID;
const A: &str = "111122223333";
const B: &str = "444455556666";
const BASE_USER_ARN: &str = "arn:aws:iam::000000000000:user/lightsail-sim";

fn base_credentials(sim: &RunningSimulator) -> Credentials {
    Credentials::new(
        sim.access_key_id(),
        sim.secret_access_key(),
        None,
        None,
        "base",
    )
}

fn sts(endpoint: &str, credentials: Credentials) -> aws_sdk_sts::Client {
    let config = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(TEST_REGION))
        .credentials_provider(credentials)
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_sts::Client::from_conf(config)
}

fn lightsail(endpoint: &str, credentials: Credentials) -> aws_sdk_lightsail::Client {
    let config = aws_sdk_lightsail::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(TEST_REGION))
        .credentials_provider(credentials)
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_lightsail::Client::from_conf(config)
}

async fn assume(
    sts: &aws_sdk_sts::Client,
    role: &str,
    session: &str,
    external_id: Option<&str>,
    duration: Option<i32>,
) -> Result<AssumeRoleOutput, SdkError<AssumeRoleError>> {
    sts.assume_role()
        .role_arn(role)
        .role_session_name(session)
        .set_external_id(external_id.map(str::to_owned))
        .set_duration_seconds(duration)
        .send()
        .await
}

async fn assumed(
    sts: &aws_sdk_sts::Client,
    role: &str,
    session: &str,
    external_id: Option<&str>,
) -> AssumeRoleOutput {
    match assume(sts, role, session, external_id, None).await {
        Ok(output) => output,
        Err(e) => panic!("AssumeRole {role} failed: {:?}", e.into_service_error()),
    }
}

/// The temporary credentials of an `AssumeRole` answer, for an SDK client.
fn temporary(output: &AssumeRoleOutput) -> Credentials {
    let Some(credentials) = output.credentials() else {
        panic!("AssumeRole answered no credentials: {output:?}");
    };
    let expiry = SystemTime::try_from(*credentials.expiration()).ok();
    Credentials::new(
        credentials.access_key_id(),
        credentials.secret_access_key(),
        Some(credentials.session_token().to_owned()),
        expiry,
        "assumed",
    )
}

fn seconds_until(output: &AssumeRoleOutput) -> i64 {
    let expiration = output
        .credentials()
        .map(|c| c.expiration().secs())
        .unwrap_or_default();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    expiration - now
}

async fn start_session(client: &aws_sdk_lightsail::Client, name: &str) -> String {
    match client.start_gui_session().resource_name(name).send().await {
        Ok(output) => output
            .operations()
            .first()
            .and_then(|op| op.id())
            .unwrap_or_default()
            .to_owned(),
        Err(e) => panic!(
            "StartGUISession {name} failed: {:?}",
            e.into_service_error()
        ),
    }
}

/// Account, principal and outcome of each logged call of `action`, oldest first.
fn logged<'a>(log: &'a CallLog, action: &'a str) -> Vec<(&'a str, &'a str, &'a str, &'a str)> {
    log.matching(Some(action), None, None)
        .map(|e| {
            (
                e.resource.as_str(),
                e.outcome.as_str(),
                e.account.as_deref().unwrap_or("-"),
                e.caller_arn.as_deref().unwrap_or("-"),
            )
        })
        .collect()
}

fn two_accounts() -> SimConfig {
    SimConfig::default()
        .with_settle_time(Duration::ZERO)
        .with_account(AccountSpec::new(A).with_role(RoleSpec::new("gui").trusting(BASE)))
        .with_account(AccountSpec::new(B).with_role(RoleSpec::new("gui").trusting(BASE)))
        .with_computer(ComputerSpec::new("vm-base"))
        .with_computer(ComputerSpec::new("vm-a").in_account(A))
        .with_computer(ComputerSpec::new("vm-b").in_account(B))
}

#[tokio::test]
async fn assumed_credentials_see_only_their_accounts_computers_and_operations() {
    let sim = start(two_accounts()).await;
    let url = sim.endpoint_url();
    let base_sts = sts(&url, base_credentials(&sim));
    let role_a = role_arn(A, "gui");
    let in_a = assumed(&base_sts, &role_a, "op-a", None).await;
    let in_b = assumed(&base_sts, &role_arn(B, "gui"), "op-b", None).await;
    let user = in_a.assumed_role_user();
    assert_eq!(
        user.map(|u| u.arn()),
        Some("arn:aws:sts::111122223333:assumed-role/gui/op-a")
    );
    assert!(
        user.is_some_and(
            |u| u.assumed_role_id().starts_with("AROA") && u.assumed_role_id().ends_with(":op-a")
        ),
        "{user:?}"
    );
    let a = lightsail(&url, temporary(&in_a));
    let b = lightsail(&url, temporary(&in_b));
    let base = lightsail(&url, base_credentials(&sim));

    // Account A starts its own computer and sees its operation in every call.
    let operation = start_session(&a, "vm-a").await;
    assert!(
        a.get_operation()
            .operation_id(&operation)
            .send()
            .await
            .is_ok()
    );
    let listed = a
        .get_operations_for_resource()
        .resource_name("vm-a")
        .send()
        .await;
    assert!(listed.is_ok_and(|page| page.operations().len() == 1));
    let access = a
        .create_gui_session_access_details()
        .resource_name("vm-a")
        .send()
        .await;
    assert!(access.is_ok(), "{access:?}");

    // Another account's computer answers exactly as a missing one does.
    let missing = refusal(a.start_gui_session().resource_name("vm-none").send().await);
    assert_eq!(
        missing,
        (
            "NotFound".to_owned(),
            "The Instance does not exist: vm-none".to_owned(),
            400
        )
    );
    for (client, name) in [(&a, "vm-b"), (&a, "vm-base"), (&base, "vm-a"), (&b, "vm-a")] {
        let seen = refusal(client.start_gui_session().resource_name(name).send().await);
        assert_eq!(
            seen,
            (
                "NotFound".to_owned(),
                format!("The Instance does not exist: {name}"),
                400
            ),
            "{name}"
        );
        let access = client
            .create_gui_session_access_details()
            .resource_name(name)
            .send()
            .await;
        assert_eq!(refusal(access).0, "NotFound", "{name}");
        let listed = client
            .get_operations_for_resource()
            .resource_name(name)
            .send()
            .await;
        assert_eq!(refusal(listed).0, "NotFound", "{name}");
    }
    // Its operations too.
    for client in [&base, &b] {
        let seen = refusal(client.get_operation().operation_id(&operation).send().await);
        assert_eq!(
            seen,
            (
                "NotFound".to_owned(),
                format!("The Operation does not exist: {operation}"),
                400
            )
        );
    }
    start_session(&base, "vm-base").await;
    start_session(&b, "vm-b").await;
    assert_eq!(sim.computer("vm-a").map(|c| c.operation_count), Some(1));
    assert_eq!(sim.computer("vm-b").map(|c| c.operation_count), Some(1));
    assert_eq!(sim.computer("vm-base").map(|c| c.operation_count), Some(1));

    // The call log says which account made each call, and by which principal.
    let log = sim.call_log();
    let arn_a = "arn:aws:sts::111122223333:assumed-role/gui/op-a";
    let arn_b = "arn:aws:sts::444455556666:assumed-role/gui/op-b";
    assert_eq!(
        logged(&log, "StartGUISession"),
        [
            ("vm-a", "ok", A, arn_a),
            ("vm-none", "NotFoundException", A, arn_a),
            ("vm-b", "NotFoundException", A, arn_a),
            ("vm-base", "NotFoundException", A, arn_a),
            ("vm-a", "NotFoundException", BASE, BASE_USER_ARN),
            ("vm-a", "NotFoundException", B, arn_b),
            ("vm-base", "ok", BASE, BASE_USER_ARN),
            ("vm-b", "ok", B, arn_b),
        ]
    );
    let a_key = in_a
        .credentials()
        .map(|c| c.access_key_id().to_owned())
        .unwrap_or_default();
    assert!(a_key.starts_with("ASIA") && a_key.len() == 20, "{a_key}");
    assert!(
        log.from_account(A)
            .all(|e| e.access_key_id.as_deref() == Some(a_key.as_str()))
    );
    // AssumeRole calls, per role: in the log (made by the base account) and in the counts.
    assert_eq!(
        logged(&log, "AssumeRole"),
        [
            (role_a.as_str(), "ok", BASE, BASE_USER_ARN),
            (role_arn(B, "gui").as_str(), "ok", BASE, BASE_USER_ARN),
        ]
    );
    assert_eq!(
        log.matching(Some("AssumeRole"), Some(&role_a), Some("ok"))
            .count(),
        1
    );
    let calls = sim.calls();
    assert_eq!(
        calls.count(Some("AssumeRole"), Some(&role_a), Some("ok")),
        1
    );
    assert_eq!(calls.count(Some("AssumeRole"), None, None), 2);
    let metrics = control(Method::GET, &format!("{url}/_sim/metrics"), None).await;
    assert!(
        metrics.text().contains(&format!(
            "lightsail_sim_calls_total{{action=\"AssumeRole\",resource=\"{role_a}\",outcome=\"ok\"}} 1\n"
        )),
        "{}",
        metrics.text()
    );
    stop(sim).await;
}

fn guarded_roles() -> SimConfig {
    SimConfig::default()
        .with_account(
            AccountSpec::new(A)
                .with_role(RoleSpec::new("gui").trusting(BASE))
                .with_role(
                    RoleSpec::new("guarded")
                        .trusting(BASE)
                        .with_external_id("ext-1")
                        .with_max_session_duration(Duration::from_secs(7200)),
                )
                .with_role(RoleSpec::new("closed").trusting(B)),
        )
        .with_account(
            AccountSpec::new(B).with_role(
                RoleSpec::new("hop")
                    .trusting(A)
                    .with_max_session_duration(Duration::from_secs(7200)),
            ),
        )
}

#[tokio::test]
async fn assume_role_is_denied_unless_trusted_with_the_right_external_id() {
    let sim = start(guarded_roles()).await;
    let url = sim.endpoint_url();
    let base = sts(&url, base_credentials(&sim));
    let guarded = role_arn(A, "guarded");
    let denied = |role: &str| {
        (
            "AccessDenied".to_owned(),
            format!(
                "User: {BASE_USER_ARN} is not authorized to perform: sts:AssumeRole on resource: {role}"
            ),
            403,
        )
    };
    for external_id in [None, Some("ext-2"), Some("EXT-1")] {
        let seen = refusal(assume(&base, &guarded, "s1", external_id, None).await);
        assert_eq!(seen, denied(&guarded), "{external_id:?}");
    }
    for role in [
        role_arn(A, "closed"),
        role_arn(A, "nope"),
        role_arn(B, "hop"),
        role_arn("999999999999", "gui"),
        "arn:aws:iam::111122223333:role/path/gui".to_owned(),
    ] {
        let seen = refusal(assume(&base, &role, "s1", None, None).await);
        assert_eq!(seen, denied(&role), "{role}");
    }
    let granted = assume(&base, &guarded, "s1", Some("ext-1"), Some(7200)).await;
    let Ok(granted) = granted else {
        panic!("{:?}", granted.map_err(|e| e.into_service_error()));
    };
    let left = seconds_until(&granted);
    assert!((7195..=7200).contains(&left), "{left}");
    let default = assumed(&base, &role_arn(A, "gui"), "s1", None).await;
    let left = seconds_until(&default);
    assert!((3595..=3600).contains(&left), "{left}");

    // Bad parameters are ValidationErrors (400).
    let gui = role_arn(A, "gui");
    for (role, session, duration, complaint) in [
        (
            gui.as_str(),
            "x",
            None,
            "1 validation error detected: Value 'x' at 'roleSessionName' failed to satisfy \
             constraint: Member must have length greater than or equal to 2",
        ),
        (gui.as_str(), "a b", None, "regular expression pattern"),
        (
            gui.as_str(),
            "s1",
            Some(899),
            "Member must have value greater than or equal to 900",
        ),
        (
            gui.as_str(),
            "s1",
            Some(3601),
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        ),
        (
            "arn:aws:iam::111122223333:user/gui",
            "s1",
            None,
            "Request ARN is invalid",
        ),
    ] {
        let (code, message, status) = refusal(assume(&base, role, session, None, duration).await);
        assert_eq!(
            (code.as_str(), status),
            ("ValidationError", 400),
            "{message}"
        );
        assert!(message.contains(complaint), "{message}");
    }

    // Role chaining: A's session assumes B's role that trusts A, for at most an hour.
    let chained = sts(&url, temporary(&default));
    let hop = role_arn(B, "hop");
    let hopped = assumed(&chained, &hop, "hop-1", None).await;
    assert_eq!(
        hopped.assumed_role_user().map(|u| u.arn()),
        Some("arn:aws:sts::444455556666:assumed-role/hop/hop-1")
    );
    let (code, message, _) = refusal(assume(&chained, &hop, "hop-1", None, Some(3601)).await);
    assert_eq!(code, "ValidationError");
    assert!(message.contains("role chaining"), "{message}");
    let seen = refusal(assume(&chained, &guarded, "s1", Some("ext-1"), None).await);
    assert_eq!(
        seen.1,
        format!(
            "User: arn:aws:sts::111122223333:assumed-role/gui/s1 is not authorized to perform: \
             sts:AssumeRole on resource: {guarded}"
        )
    );

    let calls = sim.calls();
    assert_eq!(
        calls.count(Some("AssumeRole"), Some(&guarded), Some("AccessDenied")),
        4
    );
    assert_eq!(
        calls.count(Some("AssumeRole"), Some(&guarded), Some("ok")),
        1
    );
    assert_eq!(
        calls.count(Some("AssumeRole"), None, Some("ValidationError")),
        6
    );
    let log = sim.call_log();
    assert_eq!(
        log.matching(Some("AssumeRole"), Some(&hop), Some("ok"))
            .map(|e| e.account.as_deref())
            .collect::<Vec<_>>(),
        [Some(A)]
    );
    stop(sim).await;
}

#[tokio::test]
async fn get_caller_identity_names_the_base_user_and_assumed_roles() {
    let sim = start(
        SimConfig::default()
            .with_account_id("123456789012")
            .with_account(
                AccountSpec::new(A).with_role(RoleSpec::new("gui").trusting("123456789012")),
            ),
    )
    .await;
    let url = sim.endpoint_url();
    assert_eq!(sim.account_id(), "123456789012");
    let base = sts(&url, base_credentials(&sim));
    let me = match base.get_caller_identity().send().await {
        Ok(me) => me,
        Err(e) => panic!("{:?}", e.into_service_error()),
    };
    assert_eq!(me.account(), Some("123456789012"));
    assert_eq!(
        me.arn(),
        Some("arn:aws:iam::123456789012:user/lightsail-sim")
    );
    assert!(
        me.user_id()
            .is_some_and(|id| id.starts_with("AIDA") && id.len() == 21),
        "{me:?}"
    );
    let granted = assumed(&base, &role_arn(A, "gui"), "who-am-i", None).await;
    let session = sts(&url, temporary(&granted));
    let them = match session.get_caller_identity().send().await {
        Ok(them) => them,
        Err(e) => panic!("{:?}", e.into_service_error()),
    };
    assert_eq!(them.account(), Some(A));
    assert_eq!(
        them.arn(),
        Some("arn:aws:sts::111122223333:assumed-role/gui/who-am-i")
    );
    assert_eq!(
        them.user_id(),
        granted.assumed_role_user().map(|u| u.assumed_role_id())
    );
    let log = sim.call_log();
    assert_eq!(
        logged(&log, "GetCallerIdentity"),
        [
            (
                "",
                "ok",
                "123456789012",
                "arn:aws:iam::123456789012:user/lightsail-sim"
            ),
            (
                "",
                "ok",
                A,
                "arn:aws:sts::111122223333:assumed-role/gui/who-am-i"
            ),
        ]
    );
    stop(sim).await;
}

#[tokio::test]
async fn expired_or_mismatched_credentials_are_refused() {
    let sim = start(
        SimConfig::default()
            .with_settle_time(Duration::ZERO)
            .with_sts_credential_lifetime(Duration::from_secs(20))
            .with_account(AccountSpec::new(A).with_role(RoleSpec::new("gui").trusting(BASE)))
            .with_computer(ComputerSpec::new("vm-a").in_account(A)),
    )
    .await;
    let url = sim.endpoint_url();
    let base = sts(&url, base_credentials(&sim));
    let role = role_arn(A, "gui");
    // The knob wins over DurationSeconds.
    let granted = match assume(&base, &role, "short", None, Some(3600)).await {
        Ok(granted) => granted,
        Err(e) => panic!("{:?}", e.into_service_error()),
    };
    let left = seconds_until(&granted);
    assert!((18..=20).contains(&left), "{left}");
    let credentials = temporary(&granted);
    let a = lightsail(&url, credentials.clone());
    start_session(&a, "vm-a").await;

    // Past the expiration on AWS's clock: refused, by Lightsail and by STS.
    assert!(sim.set_clock_offset(SignedDuration::from_secs(21)).is_ok());
    let expired = refusal(a.start_gui_session().resource_name("vm-a").send().await);
    assert_eq!(
        expired,
        (
            "ExpiredTokenException".to_owned(),
            "The security token included in the request is expired".to_owned(),
            400
        )
    );
    let session = sts(&url, credentials.clone());
    let expired = refusal(session.get_caller_identity().send().await);
    assert_eq!((expired.0.as_str(), expired.2), ("ExpiredToken", 400));
    let chained = refusal(assume(&session, &role, "again", None, None).await);
    assert_eq!(chained.0, "ExpiredToken");
    // Back before it: valid again (expiry is judged on AWS's clock only).
    assert!(sim.set_clock_offset(SignedDuration::ZERO).is_ok());
    start_session(&a, "vm-a").await;

    // The session token must be the one issued with the key, and only temporary keys take one.
    let key = credentials.access_key_id();
    let secret = credentials.secret_access_key();
    let token = credentials.session_token().unwrap_or_default();
    let wrong_token = Credentials::new(key, secret, Some(format!("{token}x")), None, "t");
    let no_token = Credentials::new(key, secret, None, None, "t");
    let base_with_token = Credentials::new(
        sim.access_key_id(),
        sim.secret_access_key(),
        Some(token.to_owned()),
        None,
        "t",
    );
    let unknown = Credentials::new(
        "ASIAUNKNOWNUNKNOWN00",
        secret,
        Some(token.to_owned()),
        None,
        "t",
    );
    for (what, credentials) in [
        ("wrong token", wrong_token),
        ("no token", no_token),
        ("base key with a token", base_with_token),
        ("unknown key", unknown),
    ] {
        let client = lightsail(&url, credentials.clone());
        let seen = refusal(
            client
                .start_gui_session()
                .resource_name("vm-a")
                .send()
                .await,
        );
        assert_eq!(
            seen,
            (
                "InvalidClientTokenId".to_owned(),
                "The security token included in the request is invalid.".to_owned(),
                403
            ),
            "{what}"
        );
        let seen = refusal(sts(&url, credentials).get_caller_identity().send().await);
        assert_eq!(
            (seen.0.as_str(), seen.2),
            ("InvalidClientTokenId", 403),
            "{what}"
        );
    }
    let wrong_secret = Credentials::new(key, "not-the-secret", Some(token.to_owned()), None, "t");
    let seen = refusal(
        lightsail(&url, wrong_secret.clone())
            .start_gui_session()
            .resource_name("vm-a")
            .send()
            .await,
    );
    assert_eq!(
        (seen.0.as_str(), seen.2),
        ("InvalidSignatureException", 403)
    );
    let seen = refusal(sts(&url, wrong_secret).get_caller_identity().send().await);
    assert_eq!((seen.0.as_str(), seen.2), ("SignatureDoesNotMatch", 403));

    // The log names the account of a known key even when refused.
    let log = sim.call_log();
    let starts: Vec<(&str, Option<&str>)> = log
        .matching(Some("StartGUISession"), None, None)
        .map(|e| (e.outcome.as_str(), e.account.as_deref()))
        .collect();
    assert_eq!(
        starts,
        [
            ("ok", Some(A)),
            ("ExpiredTokenException", Some(A)),
            ("ok", Some(A)),
            ("InvalidClientTokenId", Some(A)),
            ("InvalidClientTokenId", Some(A)),
            ("InvalidClientTokenId", Some(BASE)),
            ("InvalidClientTokenId", None),
            ("InvalidSignatureException", Some(A)),
        ]
    );

    // The knob can be cleared (and set) at run time, for credentials issued from then on.
    assert!(sim.set_sts_credential_lifetime(None).is_ok());
    let long = assumed(&base, &role, "long", None).await;
    assert!((3595..=3600).contains(&seconds_until(&long)));
    assert!(
        sim.set_sts_credential_lifetime(Some(Duration::from_millis(500)))
            .is_err()
    );
    assert_eq!(sim.sts_credential_lifetime(), None);
    stop(sim).await;
}

/// An environment for the config loader: the simulator's URL as the STS and Lightsail endpoint
/// overrides, the base credentials, a region, and nothing from this machine.
fn loader_env(sim: &RunningSimulator) -> Env {
    let url = sim.endpoint_url();
    Env::from_slice(&[
        ("AWS_ENDPOINT_URL_STS", url.as_str()),
        ("AWS_ENDPOINT_URL_LIGHTSAIL", url.as_str()),
        ("AWS_REGION", TEST_REGION),
        ("AWS_ACCESS_KEY_ID", sim.access_key_id()),
        ("AWS_SECRET_ACCESS_KEY", sim.secret_access_key()),
        ("AWS_MAX_ATTEMPTS", "1"),
    ])
}

/// A Lightsail client whose credentials come from assuming `role` through `config`.
async fn operator_client(
    config: &aws_config::SdkConfig,
    role: &str,
    session: &str,
    external_id: &str,
) -> aws_sdk_lightsail::Client {
    let provider = AssumeRoleProvider::builder(role)
        .session_name(session)
        .external_id(external_id)
        .configure(config)
        .build()
        .await;
    let lightsail = aws_sdk_lightsail::config::Builder::from(config)
        .credentials_provider(provider)
        .build();
    aws_sdk_lightsail::Client::from_conf(lightsail)
}

fn roles_for_the_operator() -> SimConfig {
    SimConfig::default()
        .with_settle_time(Duration::ZERO)
        .with_account(
            AccountSpec::new(A).with_role(
                RoleSpec::new("gui-operator")
                    .trusting(BASE)
                    .with_external_id("cluster-1"),
            ),
        )
        .with_computer(ComputerSpec::new("vm-base"))
        .with_computer(ComputerSpec::new("vm-a").in_account(A))
}

#[tokio::test]
async fn assume_role_provider_reaches_sts_through_aws_endpoint_url_sts() {
    let sim = start(roles_for_the_operator()).await;
    let config = aws_config::defaults(BehaviorVersion::latest())
        .env(loader_env(&sim))
        .fs(Fs::from_slice(&[]))
        .load()
        .await;
    // Only the environment names the endpoints.
    assert_eq!(config.endpoint_url(), None);
    let role = role_arn(A, "gui-operator");
    let client = operator_client(&config, &role, "operator", "cluster-1").await;
    let operation = start_session(&client, "vm-a").await;
    for _ in 0..3 {
        let got = client.get_operation().operation_id(&operation).send().await;
        assert!(got.is_ok(), "{got:?}");
    }
    let elsewhere = refusal(
        client
            .start_gui_session()
            .resource_name("vm-base")
            .send()
            .await,
    );
    assert_eq!(elsewhere.0, "NotFound");
    // One AssumeRole, by the base account, for all those calls: the SDK caches the identity.
    let log = sim.call_log();
    assert_eq!(
        logged(&log, "AssumeRole"),
        [(role.as_str(), "ok", BASE, BASE_USER_ARN)]
    );
    let operator = "arn:aws:sts::111122223333:assumed-role/gui-operator/operator";
    assert_eq!(
        logged(&log, "StartGUISession"),
        [
            ("vm-a", "ok", A, operator),
            ("vm-base", "NotFoundException", A, operator)
        ]
    );
    assert_eq!(sim.calls().count(Some("AssumeRole"), None, None), 1);

    // A wrong external id: the provider's AssumeRole is refused and so is the call.
    let wrong = operator_client(&config, &role, "operator", "cluster-2").await;
    let result = wrong.start_gui_session().resource_name("vm-a").send().await;
    let Err(error) = result else {
        panic!("started with a wrong external id");
    };
    let text = format!(
        "{:?}",
        aws_smithy_types::error::display::DisplayErrorContext(&error)
    );
    assert!(text.contains("AccessDenied"), "{text}");
    assert_eq!(
        sim.calls()
            .count(Some("AssumeRole"), Some(&role), Some("AccessDenied")),
        1
    );
    stop(sim).await;
}

/// A clock the test moves: this machine's time plus an offset.
#[derive(Clone, Debug, Default)]
struct MovableClock {
    ahead: Arc<Mutex<Duration>>,
}

impl MovableClock {
    fn advance_to(&self, ahead: Duration) {
        *self.ahead.lock().unwrap_or_else(|e| e.into_inner()) = ahead;
    }
}

impl TimeSource for MovableClock {
    fn now(&self) -> SystemTime {
        SystemTime::now() + *self.ahead.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[tokio::test]
async fn the_sdk_refreshes_short_lived_credentials_before_they_expire() {
    let sim =
        start(roles_for_the_operator().with_sts_credential_lifetime(Duration::from_secs(20))).await;
    let clock = MovableClock::default();
    let config = aws_config::defaults(BehaviorVersion::latest())
        .env(loader_env(&sim))
        .fs(Fs::from_slice(&[]))
        .time_source(clock.clone())
        .load()
        .await;
    let role = role_arn(A, "gui-operator");
    let client = operator_client(&config, &role, "operator", "cluster-1").await;
    let assumed = || {
        sim.calls()
            .count(Some("AssumeRole"), Some(&role), Some("ok"))
    };
    // Time moves on both sides (the client's clock and AWS's), no one waits. The SDK refreshes
    // credentials 10 to 15 s before they expire.
    let mut keys = Vec::new();
    for (ahead, expected_assumptions) in [(0, 1), (0, 1), (5, 1), (16, 2), (20, 2), (32, 3)] {
        let ahead = Duration::from_secs(ahead);
        clock.advance_to(ahead);
        let offset = SignedDuration::try_from(ahead).unwrap_or_default();
        assert!(sim.set_clock_offset(offset).is_ok());
        start_session(&client, "vm-a").await;
        assert_eq!(assumed(), expected_assumptions, "{ahead:?} ahead");
        let log = sim.call_log();
        let last = log.matching(Some("StartGUISession"), None, None).last();
        keys.push(
            last.and_then(|e| e.access_key_id.clone())
                .unwrap_or_default(),
        );
    }
    // Each refresh brought a new key, and no call ever met an expired one.
    let distinct: std::collections::BTreeSet<&String> = keys.iter().collect();
    assert_eq!(distinct.len(), 3, "{keys:?}");
    let log = sim.call_log();
    assert!(
        log.matching(Some("StartGUISession"), None, None)
            .all(|e| e.outcome == "ok" && e.account.as_deref() == Some(A)),
        "{log:?}"
    );
    stop(sim).await;
}

/// A form-encoded STS request, signed for `service` with `key` when given.
fn sts_request(
    endpoint: &str,
    body: &str,
    key: Option<(&str, &str, &str)>,
) -> Request<Full<Bytes>> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    let host = endpoint.trim_start_matches("http://").to_owned();
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("{endpoint}/"))
        .header("host", host)
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(Full::new(Bytes::from(body.to_owned())));
    let mut request = match request {
        Ok(request) => request,
        Err(e) => panic!("bad request: {e}"),
    };
    if let Some((access_key_id, secret, service)) = key {
        let identity = Credentials::new(access_key_id, secret, None, None, "raw").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(TEST_REGION)
            .name(service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .expect("signing params");
        let headers: Vec<(&str, &str)> = request
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect();
        let signable = SignableRequest::new(
            "POST",
            request.uri().to_string(),
            headers.into_iter(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .expect("signable request");
        let (instructions, _) = sign(signable, &params.into())
            .expect("signing")
            .into_parts();
        instructions.apply_to_request_http1x(&mut request);
    }
    request
}

/// The `<Code>` of an STS XML error.
fn xml_code(reply: &HttpReply) -> String {
    let text = reply.text();
    text.split("<Code>")
        .nth(1)
        .and_then(|rest| rest.split("</Code>").next())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn sts_answers_protocol_errors_in_xml_like_aws() {
    let sim = start(two_accounts()).await;
    let url = sim.endpoint_url();
    let key = (sim.access_key_id(), sim.secret_access_key(), "sts");
    let identity = "Action=GetCallerIdentity&Version=2011-06-15";

    let ok = send(sts_request(&url, identity, Some(key))).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(
        ok.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/xml")
    );
    let request_id = ok
        .headers
        .get("x-amzn-requestid")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        ok.text().contains(&format!(
            "<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
        )),
        "{}",
        ok.text()
    );
    assert!(ok.headers.contains_key("date"));

    for (body, signed_for, status, code) in [
        (identity, None, 403, "MissingAuthenticationToken"),
        (identity, Some("lightsail"), 403, "SignatureDoesNotMatch"),
        (
            "Action=GetSessionToken&Version=2011-06-15",
            Some("sts"),
            400,
            "InvalidAction",
        ),
        (
            "Action=GetCallerIdentity",
            Some("sts"),
            400,
            "InvalidAction",
        ),
        (
            "Action=GetCallerIdentity&Version=2010-01-01",
            Some("sts"),
            400,
            "InvalidAction",
        ),
        ("Version=2011-06-15", Some("sts"), 400, "MissingAction"),
        (
            "Action=AssumeRole&Version=2011-06-15&RoleSessionName=s1",
            Some("sts"),
            400,
            "ValidationError",
        ),
    ] {
        let key = signed_for.map(|service| (key.0, key.1, service));
        let reply = send(sts_request(&url, body, key)).await;
        assert_eq!(reply.status.as_u16(), status, "{body}: {}", reply.text());
        assert_eq!(xml_code(&reply), code, "{body}: {}", reply.text());
        let text = reply.text();
        assert!(
            text.starts_with("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>"),
            "{text}"
        );
        assert!(text.contains("<RequestId>"), "{text}");
    }
    // A role ARN with markup is escaped in the answer.
    let reply = send(sts_request(
        &url,
        "Action=AssumeRole&Version=2011-06-15&RoleSessionName=s1&RoleArn=arn:aws:iam::111122223333:role/%3Cb%3E%26",
        Some(key),
    ))
    .await;
    assert_eq!(xml_code(&reply), "AccessDenied");
    assert!(
        reply
            .text()
            .contains("on resource: arn:aws:iam::111122223333:role/&lt;b&gt;&amp;</Message>"),
        "{}",
        reply.text()
    );
    // Lightsail JSON signed for STS is refused by Lightsail, as the two endpoints would.
    let lightsail_request = simulator_support::aws_request(
        &url,
        Some("Lightsail_20161128.StartGUISession"),
        br#"{"resourceName":"vm-base"}"#,
        None,
    );
    assert_eq!(send(lightsail_request).await.status, StatusCode::FORBIDDEN);
    let calls = sim.calls();
    assert_eq!(calls.count(Some("GetCallerIdentity"), None, Some("ok")), 1);
    assert_eq!(calls.count(Some("Unknown"), None, Some("InvalidAction")), 1);
    assert_eq!(
        calls.count(Some("GetCallerIdentity"), None, Some("InvalidAction")),
        2
    );
    assert_eq!(calls.count(Some("Unknown"), None, Some("MissingAction")), 1);
    stop(sim).await;
}

/// An STS client that retries as the SDK does by default (standard mode), with short backoffs.
fn retrying_sts(endpoint: &str, credentials: Credentials, attempts: u32) -> aws_sdk_sts::Client {
    let config = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(TEST_REGION))
        .credentials_provider(credentials)
        .endpoint_url(endpoint)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(attempts)
                .with_initial_backoff(Duration::from_millis(1))
                .with_max_backoff(Duration::from_millis(5)),
        )
        .build();
    aws_sdk_sts::Client::from_conf(config)
}

#[tokio::test]
async fn an_sts_outage_fails_sts_calls_while_lightsail_answers_until_cleared() {
    let sim = start(two_accounts()).await;
    let url = sim.endpoint_url();
    let base_sts = sts(&url, base_credentials(&sim));
    let role_a = role_arn(A, "gui");
    // Credentials assumed before the outage keep working on Lightsail during it.
    let before = assumed(&base_sts, &role_a, "before", None).await;
    let in_a = lightsail(&url, temporary(&before));
    let base = lightsail(&url, base_credentials(&sim));
    let a_sts = sts(&url, temporary(&before));

    // STS goes down; the Lightsail faults are left as they are.
    sim.set_sts_faults(StsFaults::unavailable())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sim.faults(), Faults::sts_only(StsFaults::unavailable()));
    let unavailable = |(code, _, status): (String, String, u16)| (code, status);
    let expected = ("ServiceUnavailable".to_owned(), 503);
    assert_eq!(
        unavailable(refusal(
            assume(&base_sts, &role_a, "during", None, None).await
        )),
        expected
    );
    assert_eq!(
        unavailable(refusal(base_sts.get_caller_identity().send().await)),
        expected
    );
    assert_eq!(
        unavailable(refusal(a_sts.get_caller_identity().send().await)),
        expected
    );
    // Before the parameters are looked at: an invalid AssumeRole is down too.
    assert_eq!(
        unavailable(refusal(
            assume(&base_sts, &role_a, "x", None, Some(1)).await
        )),
        expected
    );
    // A server error, Receiver in the XML, which the SDK retries: three attempts, three calls.
    let retrying = retrying_sts(&url, base_credentials(&sim), 3);
    let retried = refusal(retrying.get_caller_identity().send().await);
    assert_eq!(unavailable(retried), expected);
    let raw = send(sts_request(
        &url,
        "Action=GetCallerIdentity&Version=2011-06-15",
        Some((sim.access_key_id(), sim.secret_access_key(), "sts")),
    ))
    .await;
    assert_eq!(raw.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        raw.text().starts_with(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
             <Type>Receiver</Type><Code>ServiceUnavailable</Code><Message>"
        ),
        "{}",
        raw.text()
    );
    // Unsigned calls are still refused for that first.
    let unsigned = send(sts_request(
        &url,
        "Action=GetCallerIdentity&Version=2011-06-15",
        None,
    ))
    .await;
    assert_eq!(xml_code(&unsigned), "MissingAuthenticationToken");
    // Lightsail answers all along, to base and assumed credentials alike.
    start_session(&in_a, "vm-a").await;
    let id = start_session(&base, "vm-base").await;
    assert!(base.get_operation().operation_id(id).send().await.is_ok());

    // Throttling and internal failures, set through the control endpoint.
    for (faults, code, status) in [
        (json!({"sts": {"throttleRate": 1.0}}), "Throttling", 400),
        (
            json!({"sts": {"serviceErrorRate": 1.0}}),
            "InternalFailure",
            500,
        ),
    ] {
        let put = control(
            Method::PUT,
            &format!("{url}/_sim/faults"),
            Some(faults.clone()),
        )
        .await;
        assert_eq!(put.status, StatusCode::OK, "{}", put.text());
        let got = control(Method::GET, &format!("{url}/_sim/faults"), None).await;
        assert_eq!(got.json()["sts"]["unavailable"], json!(false), "{faults}");
        let (got_code, message, got_status) =
            refusal(assume(&base_sts, &role_a, "flaky", None, None).await);
        assert_eq!((got_code.as_str(), got_status), (code, status), "{faults}");
        if code == "Throttling" {
            assert_eq!(message, "Rate exceeded");
        }
        assert_eq!(
            unavailable(refusal(base_sts.get_caller_identity().send().await)),
            (code.to_owned(), status),
            "{faults}"
        );
        start_session(&in_a, "vm-a").await;
    }

    // STS comes back: the same clients succeed, the retrying one at its first attempt.
    let cleared = control(Method::PUT, &format!("{url}/_sim/faults"), Some(json!({}))).await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.text());
    assert_eq!(sim.sts_faults(), StsFaults::default());
    let after = assumed(&base_sts, &role_a, "after", None).await;
    let identity = sts(&url, temporary(&after))
        .get_caller_identity()
        .send()
        .await;
    assert_eq!(
        identity.ok().and_then(|i| i.account().map(str::to_owned)),
        Some(A.to_owned())
    );
    assert!(retrying.get_caller_identity().send().await.is_ok());
    assert!(a_sts.get_caller_identity().send().await.is_ok());
    start_session(&lightsail(&url, temporary(&after)), "vm-a").await;

    // Refused calls are counted and logged with the code as outcome, and who made them.
    let calls = sim.calls();
    let count = |action: &str, resource: Option<&str>, outcome: &str| {
        calls.count(Some(action), resource, Some(outcome))
    };
    assert_eq!(count("AssumeRole", Some(&role_a), "ServiceUnavailable"), 2);
    assert_eq!(count("AssumeRole", Some(&role_a), "Throttling"), 1);
    assert_eq!(count("AssumeRole", Some(&role_a), "InternalFailure"), 1);
    assert_eq!(count("AssumeRole", Some(&role_a), "ok"), 2);
    // Base once, assumed once, three attempts, once raw.
    assert_eq!(count("GetCallerIdentity", None, "ServiceUnavailable"), 6);
    assert_eq!(count("GetCallerIdentity", None, "Throttling"), 1);
    assert_eq!(count("GetCallerIdentity", None, "InternalFailure"), 1);
    assert_eq!(
        count("GetCallerIdentity", None, "MissingAuthenticationToken"),
        1
    );
    assert_eq!(count("GetCallerIdentity", None, "ok"), 3);
    assert_eq!(count("StartGUISession", Some("vm-a"), "ok"), 4);
    let log = sim.call_log();
    let assumptions = logged(&log, "AssumeRole");
    let outcomes: Vec<&str> = assumptions
        .iter()
        .map(|(_, outcome, _, _)| *outcome)
        .collect();
    assert_eq!(
        outcomes,
        [
            "ok",
            "ServiceUnavailable",
            "ServiceUnavailable",
            "Throttling",
            "InternalFailure",
            "ok"
        ]
    );
    assert!(
        assumptions
            .iter()
            .all(|entry| (entry.0, entry.2, entry.3) == (role_a.as_str(), BASE, BASE_USER_ARN)),
        "{assumptions:?}"
    );
    let a_user = format!("arn:aws:sts::{A}:assumed-role/gui/before");
    assert!(
        logged(&log, "GetCallerIdentity").contains(&("", "ServiceUnavailable", A, a_user.as_str())),
        "{log:?}"
    );
    stop(sim).await;
}

#[tokio::test]
async fn accounts_and_the_lifetime_knob_come_from_the_config_file_flags_and_control_api() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("sim.yaml");
    let yaml = "accountId: \"000000000000\"\nstsCredentialLifetime: 20s\naccounts:\n  - id: \"111122223333\"\n    roles:\n      - name: gui\n        trustedAccounts: [\"000000000000\"]\n        externalId: ext-1\n        maxSessionDuration: 2h\ncomputers:\n  - name: vm-a\n    account: \"111122223333\"\n";
    std::fs::write(&config, yaml).expect("config written");
    let config = config.display().to_string();
    let process = SimProcess::start(&[
        "--config",
        &config,
        "--settle-time",
        "0",
        "--sts-credential-lifetime",
        "30s",
    ]);
    let url = process.endpoint.clone();
    let get = |path: &str| {
        let target = format!("{url}{path}");
        async move { control(Method::GET, &target, None).await }
    };

    let accounts = get("/_sim/accounts").await;
    assert_eq!(accounts.status, StatusCode::OK);
    assert_eq!(
        accounts.json(),
        json!({"accountId": "000000000000", "baseUserArn": BASE_USER_ARN, "accounts": [
            {"id": "111122223333", "roles": [{"name": "gui", "trustedAccounts": ["000000000000"],
             "externalId": "ext-1", "maxSessionDuration": "2h"}]}
        ]})
    );
    let knob = get("/_sim/sts").await;
    assert_eq!(
        knob.json(),
        json!({"credentialLifetime": "30s", "issuedCredentials": 0}),
        "the flag wins over the file"
    );
    let computer = get("/_sim/computers/vm-a").await;
    assert_eq!(computer.json()["account"], A);

    // The config file's role works with the SDK, with the flag's lifetime.
    let base = Credentials::new(
        lightsail_sim::DEFAULT_ACCESS_KEY_ID,
        lightsail_sim::DEFAULT_SECRET_ACCESS_KEY,
        None,
        None,
        "base",
    );
    let base_sts = sts(&url, base);
    let granted = assumed(&base_sts, &role_arn(A, "gui"), "s1", Some("ext-1")).await;
    let left = seconds_until(&granted);
    assert!((28..=30).contains(&left), "{left}");
    start_session(&lightsail(&url, temporary(&granted)), "vm-a").await;

    // The knob and the accounts change at run time.
    let put = control(
        Method::PUT,
        &format!("{url}/_sim/sts"),
        Some(json!({"credentialLifetime": null})),
    )
    .await;
    assert_eq!(
        put.json(),
        json!({"credentialLifetime": null, "issuedCredentials": 1})
    );
    for bad in [
        json!({"credentialLifetime": "0"}),
        json!({"credentialLifetime": "1500ms"}),
        json!({"credentialLifetime": "soon"}),
        json!({"lifetime": "20s"}),
    ] {
        let reply = control(Method::PUT, &format!("{url}/_sim/sts"), Some(bad.clone())).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            reply.json()["error"]
                .as_str()
                .is_some_and(|e| !e.is_empty())
        );
    }
    let account_b = json!({"id": B, "roles": [{"name": "gui", "trustedAccounts": [BASE, A]}]});
    let created = control(
        Method::POST,
        &format!("{url}/_sim/accounts"),
        Some(account_b.clone()),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let replaced = control(
        Method::POST,
        &format!("{url}/_sim/accounts"),
        Some(account_b),
    )
    .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text());
    for (bad, complaint) in [
        (
            json!({"id": "4444"}),
            "account id \"4444\" is not 12 digits",
        ),
        (
            json!({"id": B, "roles": [{"name": "gui", "trustedAccounts": ["999999999999"]}]}),
            "trusts account 999999999999, which is neither the base account",
        ),
        (
            json!({"id": B, "roles": [{"name": "gui"}]}),
            "missing field `trustedAccounts`",
        ),
    ] {
        let reply = control(
            Method::POST,
            &format!("{url}/_sim/accounts"),
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
    let stray = control(
        Method::POST,
        &format!("{url}/_sim/computers"),
        Some(json!({"name": "vm-x", "account": "999999999999"})),
    )
    .await;
    assert_eq!(stray.status, StatusCode::BAD_REQUEST);
    assert!(
        stray.text().contains("account 999999999999"),
        "{}",
        stray.text()
    );
    let placed = control(
        Method::POST,
        &format!("{url}/_sim/computers"),
        Some(json!({"name": "vm-b", "account": B})),
    )
    .await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.text());
    let in_b = assumed(&base_sts, &role_arn(B, "gui"), "s2", None).await;
    assert!(
        (3595..=3600).contains(&seconds_until(&in_b)),
        "the knob is off"
    );
    start_session(&lightsail(&url, temporary(&in_b)), "vm-b").await;
    drop(process);
}

#[test]
fn bad_account_flags_and_files_give_clear_errors() {
    let (status, _, stderr) = run_binary(&["--listen", "127.0.0.1:0", "--account-id", "12"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("base account id \"12\" is not 12 digits"),
        "{stderr}"
    );
    let (status, _, stderr) = run_binary(&["--sts-credential-lifetime", "soon"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid duration"), "{stderr}");
    let (status, _, stderr) = run_binary(&[
        "--listen",
        "127.0.0.1:0",
        "--sts-credential-lifetime",
        "13h",
    ]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("STS credential lifetime 13h"), "{stderr}");

    let dir = tempfile::tempdir().expect("temporary directory");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("written");
        path.display().to_string()
    };
    for (path, complaint) in [
        (
            write(
                "stranger.yaml",
                "accounts:\n  - id: \"111122223333\"\n    roles: [{name: gui, trustedAccounts: [\"999999999999\"]}]\n",
            ),
            "trusts account 999999999999, which is neither the base account (000000000000)",
        ),
        (
            write(
                "placed.yaml",
                "computers:\n  - {name: vm-1, account: \"111122223333\"}\n",
            ),
            "computer \"vm-1\" is in account 111122223333, which is neither the base account",
        ),
        (
            write(
                "duration.yaml",
                "accounts:\n  - id: \"111122223333\"\n    roles: [{name: gui, trustedAccounts: [], maxSessionDuration: 30m}]\n",
            ),
            "maxSessionDuration 30m of role \"gui\"",
        ),
        (
            write("typo.yaml", "acounts: []\n"),
            "unknown field `acounts`",
        ),
        (
            write(
                "policy.yaml",
                "accounts:\n  - id: \"111122223333\"\n    roles:\n      - name: gui\n        trustPolicy: {Statement: [{Effect: Allow, Principal: \"*\", Action: \"sts:AssumeRole\", Condition: {NumericEquals: {\"sts:ExternalId\": \"1\"}}}]}\n",
            ),
            "trustPolicy of role \"gui\" in account 111122223333: Statement[0]: unsupported \
             condition operator \"NumericEquals\"",
        ),
    ] {
        let (status, stdout, stderr) = run_binary(&["--listen", "127.0.0.1:0", "--config", &path]);
        assert_eq!(status.code(), Some(1), "{path}: {stderr}");
        assert!(stderr.contains(complaint), "{path}: {stderr}");
        assert!(stderr.contains(&path), "{path}: {stderr}");
        assert!(stdout.is_empty());
    }
    // The file's base account may come from the flag instead.
    let path = write(
        "base.yaml",
        "computers:\n  - {name: vm-1, account: \"123456789012\"}\n",
    );
    let mut process = SimProcess::start(&["--config", &path, "--account-id", "123456789012"]);
    assert!(process.terminate().success());
}

#[test]
fn help_documents_accounts_sts_and_the_lifetime_knob() {
    let (status, stdout, _) = run_binary(&["--help"]);
    assert!(status.success());
    for documented in [
        "--account-id",
        "LIGHTSAIL_SIM_ACCOUNT_ID",
        "--sts-credential-lifetime",
        "LIGHTSAIL_SIM_STS_CREDENTIAL_LIFETIME",
        "Simulator knob, not an AWS setting",
        "accountId:",
        "stsCredentialLifetime:",
        "accounts:",
        "trustedAccounts:",
        "trustPolicy:",
        "sts:TagSession",
        "externalId:",
        "maxSessionDuration:",
        "account: ",
        "AWS_ENDPOINT_URL_STS",
        "/_sim/accounts",
        "/_sim/sts",
        "callerArn",
        "assumeRole: {roleArn, roleSessionName,",
        "ExpiredTokenException",
        "--sts-unavailable",
        "LIGHTSAIL_SIM_STS_UNAVAILABLE",
        "--sts-throttle-rate",
        "--sts-service-error-rate",
        "{\"sts\":{\"unavailable\":true}}",
        "503 ServiceUnavailable",
        "400 Throttling",
        "InternalFailure",
    ] {
        assert!(
            stdout.contains(documented),
            "--help lacks {documented}:\n{stdout}"
        );
    }
}

#[tokio::test]
async fn secrets_never_show_in_views_counts_metrics_or_logs() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let log = dir.path().join("sim.log");
    let config = dir.path().join("sim.yaml");
    let yaml = "accounts:\n  - id: \"111122223333\"\n    roles: [{name: gui, trustedAccounts: [\"000000000000\"]}]\ncomputers:\n  - {name: vm-a, account: \"111122223333\"}\n";
    std::fs::write(&config, yaml).expect("config written");
    let config = config.display().to_string();
    let mut process = SimProcess::start_logging(
        &[
            "--config",
            &config,
            "--settle-time",
            "0",
            "--sts-credential-lifetime",
            "20s",
        ],
        "trace",
        &log,
    );
    let url = process.endpoint.clone();
    let base = sts(
        &url,
        Credentials::new(
            lightsail_sim::DEFAULT_ACCESS_KEY_ID,
            lightsail_sim::DEFAULT_SECRET_ACCESS_KEY,
            None,
            None,
            "base",
        ),
    );
    let granted = assumed(&base, &role_arn(A, "gui"), "s1", None).await;
    let credentials = temporary(&granted);
    let a = lightsail(&url, credentials.clone());
    start_session(&a, "vm-a").await;
    assert!(
        sts(&url, credentials.clone())
            .get_caller_identity()
            .send()
            .await
            .is_ok()
    );
    // Refused calls too: an expired token, a wrong one.
    let moved = control(
        Method::PUT,
        &format!("{url}/_sim/clock"),
        Some(json!({"offset": "30s"})),
    )
    .await;
    assert_eq!(moved.status, StatusCode::OK);
    assert!(
        a.start_gui_session()
            .resource_name("vm-a")
            .send()
            .await
            .is_err()
    );
    let mut shown = Vec::new();
    for path in [
        "/_sim/calls",
        "/_sim/calls/log",
        "/_sim/metrics",
        "/_sim/computers",
        "/_sim/accounts",
        "/_sim/sts",
        "/_sim/faults",
        "/_sim/clock",
    ] {
        let reply = control(Method::GET, &format!("{url}{path}"), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        shown.push((path.to_owned(), reply.text()));
    }
    let status = process.terminate();
    assert!(status.success(), "{status:?}");
    let logged = std::fs::read_to_string(&log).expect("log read");
    assert!(logged.contains("AssumeRole"), "{logged}");
    shown.push(("the log".to_owned(), logged));
    let token = credentials.session_token().unwrap_or_default();
    let secrets = [
        credentials.secret_access_key(),
        token,
        // Any 40-character stretch of the token is as bad as the whole.
        &token[token.len() / 2..token.len() / 2 + 40],
        lightsail_sim::DEFAULT_SECRET_ACCESS_KEY,
    ];
    for (what, text) in &shown {
        for secret in secrets {
            assert!(!text.contains(secret), "{what} shows a secret: {text}");
        }
    }
    // The access key id is no secret: the call log names it.
    let (_, call_log) = &shown[1];
    assert!(call_log.contains(credentials.access_key_id()), "{call_log}");
}

// Trust policy documents and session tags.

/// The trust policy docs/helm-and-gitops.md shows for other accounts ("Other AWS accounts"),
/// with the operator's role `operator` in `account`.
fn documented_trust_policy(account: &str) -> serde_json::Value {
    json!({
      "Version": "2012-10-17",
      "Statement": [{
        "Effect": "Allow",
        "Principal": { "AWS": format!("arn:aws:iam::{account}:role/lightsail-gui-operator") },
        "Action": "sts:AssumeRole",
        "Condition": { "StringEquals": { "sts:ExternalId": "lab-2026-physics" } }
      }]
    })
}

fn allowing(
    principal: serde_json::Value,
    action: serde_json::Value,
    condition: serde_json::Value,
) -> serde_json::Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": principal,
        "Action": action, "Condition": condition}]})
}

/// Account A holds the operator's role (`lightsail-gui-operator`) and another one, both
/// assumable by the base user in the legacy form; account B the tenants' roles, each with a
/// trust policy.
fn tenant_roles() -> SimConfig {
    let operator = role_arn(A, "lightsail-gui-operator");
    SimConfig::default()
        .with_account(
            AccountSpec::new(A)
                .with_role(RoleSpec::new("lightsail-gui-operator").trusting(BASE))
                .with_role(RoleSpec::new("other").trusting(BASE)),
        )
        .with_account(
            AccountSpec::new(B)
                .with_role(
                    RoleSpec::new("lightsail-gui-sessions")
                        .with_trust_policy(documented_trust_policy(A)),
                )
                .with_role(RoleSpec::new("namespaced").with_trust_policy(allowing(
                    json!({"AWS": BASE}),
                    json!(["sts:AssumeRole", "sts:TagSession"]),
                    json!({"StringEquals": {"aws:RequestTag/kubernetes-namespace": "physics"}}),
                )))
                .with_role(RoleSpec::new("untaggable").with_trust_policy(allowing(
                    json!({"AWS": format!("arn:aws:iam::{BASE}:root")}),
                    json!("sts:AssumeRole"),
                    json!({}),
                )))
                .with_role(RoleSpec::new("deny-wins").with_trust_policy(json!({
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Principal": {"AWS": [BASE, A]}, "Action": "sts:*"},
                        {"Effect": "Deny", "Principal": {"AWS": operator}, "Action": "sts:AssumeRole"}
                    ]
                })))
                .with_role(RoleSpec::new("needs-id").with_trust_policy(allowing(
                    json!({"AWS": BASE}),
                    json!(["sts:AssumeRole", "sts:TagSession"]),
                    json!({"Null": {"sts:ExternalId": "false", "aws:TagKeys": "true"}}),
                ))),
        )
}

/// `AssumeRole` with session tags and transitive tag keys, through the SDK's fluent builder.
async fn assume_tagged(
    sts: &aws_sdk_sts::Client,
    role: &str,
    external_id: Option<&str>,
    tags: &[(&str, &str)],
    transitive: &[&str],
) -> Result<AssumeRoleOutput, SdkError<AssumeRoleError>> {
    let mut request = sts
        .assume_role()
        .role_arn(role)
        .role_session_name("op-1")
        .set_external_id(external_id.map(str::to_owned));
    for (key, value) in tags {
        let tag = aws_sdk_sts::types::Tag::builder()
            .key(*key)
            .value(*value)
            .build()
            .expect("a tag has a key and a value");
        request = request.tags(tag);
    }
    for key in transitive {
        request = request.transitive_tag_keys(*key);
    }
    request.send().await
}

/// What `refusal` sees when the trust policy refuses `action` to `caller` on `role`.
fn not_authorized(caller: &str, action: &str, role: &str) -> (String, String, u16) {
    (
        "AccessDenied".to_owned(),
        format!("User: {caller} is not authorized to perform: {action} on resource: {role}"),
        403,
    )
}

/// An STS client for a session of `role` (a legacy role the base user may assume).
async fn session_of(sim: &RunningSimulator, role: &str) -> aws_sdk_sts::Client {
    let url = sim.endpoint_url();
    let granted = assumed(&sts(&url, base_credentials(sim)), role, "op-1", None).await;
    sts(&url, temporary(&granted))
}

#[tokio::test]
async fn a_trust_policy_external_id_condition_refuses_a_wrong_or_missing_id() {
    let sim = start(tenant_roles()).await;
    let operator = session_of(&sim, &role_arn(A, "lightsail-gui-operator")).await;
    let role = role_arn(B, "lightsail-gui-sessions");
    let caller = "arn:aws:sts::111122223333:assumed-role/lightsail-gui-operator/op-1";
    for external_id in [None, Some("lab-2026-PHYSICS"), Some("lab-2026-physic")] {
        let seen = refusal(assume_tagged(&operator, &role, external_id, &[], &[]).await);
        assert_eq!(
            seen,
            not_authorized(caller, "sts:AssumeRole", &role),
            "{external_id:?}"
        );
    }
    let granted = assume_tagged(&operator, &role, Some("lab-2026-physics"), &[], &[]).await;
    let Ok(granted) = granted else {
        panic!("{:?}", granted.map_err(|e| e.into_service_error()));
    };
    let tenant = sts(&sim.endpoint_url(), temporary(&granted));
    let them = tenant.get_caller_identity().send().await;
    assert_eq!(
        them.ok()
            .and_then(|t| t.arn().map(str::to_owned))
            .as_deref(),
        Some("arn:aws:sts::444455556666:assumed-role/lightsail-gui-sessions/op-1")
    );
    // The call log keeps the external id each call sent (it is no secret).
    let log = sim.call_log();
    let asked: Vec<(&str, Option<&str>)> = log
        .matching(Some("AssumeRole"), Some(&role), None)
        .map(|e| {
            let external_id = e
                .assume_role
                .as_ref()
                .and_then(|a| a.external_id.as_deref());
            (e.outcome.as_str(), external_id)
        })
        .collect();
    assert_eq!(
        asked,
        [
            ("AccessDenied", None),
            ("AccessDenied", Some("lab-2026-PHYSICS")),
            ("AccessDenied", Some("lab-2026-physic")),
            ("ok", Some("lab-2026-physics")),
        ]
    );
    stop(sim).await;
}

#[tokio::test]
async fn a_role_arn_principal_admits_that_roles_sessions_only() {
    let sim = start(tenant_roles()).await;
    let url = sim.endpoint_url();
    let role = role_arn(B, "lightsail-gui-sessions");
    let id = Some("lab-2026-physics");
    // Neither the base user nor a session of another role of the operator's account.
    let base = sts(&url, base_credentials(&sim));
    let seen = refusal(assume_tagged(&base, &role, id, &[], &[]).await);
    assert_eq!(seen, not_authorized(BASE_USER_ARN, "sts:AssumeRole", &role));
    let other = session_of(&sim, &role_arn(A, "other")).await;
    let seen = refusal(assume_tagged(&other, &role, id, &[], &[]).await);
    assert_eq!(
        seen,
        not_authorized(
            "arn:aws:sts::111122223333:assumed-role/other/op-1",
            "sts:AssumeRole",
            &role
        )
    );
    // Any session of the named role: two session names, one principal.
    let granted = assumed(&base, &role_arn(A, "lightsail-gui-operator"), "op-2", None).await;
    let operator = sts(&url, temporary(&granted));
    let hopped = assume_tagged(&operator, &role, id, &[], &[]).await;
    let Ok(hopped) = hopped else {
        panic!("{:?}", hopped.map_err(|e| e.into_service_error()));
    };
    // Role chaining keeps its one-hour limit.
    assert!((3595..=3600).contains(&seconds_until(&hopped)));
    let chained = operator
        .assume_role()
        .role_arn(&role)
        .role_session_name("op-2")
        .external_id("lab-2026-physics")
        .duration_seconds(3601)
        .send()
        .await;
    let (code, message, _) = refusal(chained);
    assert_eq!(code, "ValidationError");
    assert!(message.contains("role chaining"), "{message}");
    let operator = session_of(&sim, &role_arn(A, "lightsail-gui-operator")).await;
    assert!(assume_tagged(&operator, &role, id, &[], &[]).await.is_ok());
    stop(sim).await;
}

#[tokio::test]
async fn a_request_tag_condition_admits_that_namespace_only_and_the_log_shows_the_tags() {
    let sim = start(tenant_roles()).await;
    let base = sts(&sim.endpoint_url(), base_credentials(&sim));
    let role = role_arn(B, "namespaced");
    let physics = ("kubernetes-namespace", "physics");
    let granted = assume_tagged(&base, &role, None, &[physics, ("team", "lab 1")], &["team"]).await;
    assert!(
        granted.is_ok(),
        "{:?}",
        granted.map_err(|e| e.into_service_error())
    );
    for tags in [
        &[("kubernetes-namespace", "chemistry")][..],
        &[("kubernetes-namespace", "Physics")][..],
        &[("namespace", "physics")][..],
        &[][..],
    ] {
        let seen = refusal(assume_tagged(&base, &role, None, tags, &[]).await);
        assert_eq!(
            seen,
            not_authorized(BASE_USER_ARN, "sts:AssumeRole", &role),
            "{tags:?}"
        );
    }
    // Bad tags are ValidationErrors, as in STS, before any policy is read.
    let (code, message, status) = refusal(
        assume_tagged(
            &base,
            &role,
            None,
            &[physics, ("Kubernetes-Namespace", "x")],
            &[],
        )
        .await,
    );
    assert_eq!((code.as_str(), status), ("ValidationError", 400));
    assert_eq!(
        message,
        "Duplicate tag keys found. Please note that Tag keys are case insensitive."
    );
    let (code, message, _) = refusal(assume_tagged(&base, &role, None, &[("a#b", "x")], &[]).await);
    assert_eq!(code, "ValidationError");
    assert!(
        message.contains("Value 'a#b' at 'tags.1.member.key' failed to satisfy constraint"),
        "{message}"
    );

    // What the operator sent, per call: the granted one and the refused ones (not the invalid).
    let log = sim.call_log();
    let sent: Vec<(&str, Vec<(&str, &str)>)> = log
        .matching(Some("AssumeRole"), Some(&role), None)
        .filter_map(|e| {
            let asked = e.assume_role.as_ref()?;
            let tags = asked.tags.iter().map(|t| (&*t.key, &*t.value)).collect();
            Some((e.outcome.as_str(), tags))
        })
        .collect();
    assert_eq!(
        sent,
        [
            ("ok", vec![physics, ("team", "lab 1")]),
            ("AccessDenied", vec![("kubernetes-namespace", "chemistry")]),
            ("AccessDenied", vec![("kubernetes-namespace", "Physics")]),
            ("AccessDenied", vec![("namespace", "physics")]),
            ("AccessDenied", vec![]),
        ]
    );
    let Some(first) = log.assume_role_requests(Some(&role), Some("ok")).next() else {
        panic!("no granted AssumeRole in {log:?}");
    };
    assert_eq!(first.tag("kubernetes-namespace"), Some("physics"));
    assert_eq!(first.transitive_tag_keys, ["team"]);
    assert_eq!(first.role_session_name, "op-1");
    assert_eq!(
        log.matching(Some("AssumeRole"), Some(&role), Some("ValidationError"))
            .filter(|e| e.assume_role.is_some())
            .count(),
        0
    );
    stop(sim).await;
}

#[tokio::test]
async fn session_tags_need_sts_tag_session_in_the_trust_policy() {
    let sim = start(tenant_roles()).await;
    let base = sts(&sim.endpoint_url(), base_credentials(&sim));
    let role = role_arn(B, "untaggable");
    assert!(assume_tagged(&base, &role, None, &[], &[]).await.is_ok());
    let tag = [("kubernetes-namespace", "physics")];
    let seen = refusal(assume_tagged(&base, &role, None, &tag, &[]).await);
    assert_eq!(seen, not_authorized(BASE_USER_ARN, "sts:TagSession", &role));
    // A role in the legacy form takes tags as before.
    let legacy = role_arn(A, "other");
    assert!(assume_tagged(&base, &legacy, None, &tag, &[]).await.is_ok());
    let calls = sim.calls();
    assert_eq!(calls.count(Some("AssumeRole"), Some(&role), Some("ok")), 1);
    assert_eq!(
        calls.count(Some("AssumeRole"), Some(&role), Some("AccessDenied")),
        1
    );
    stop(sim).await;
}

#[tokio::test]
async fn an_explicit_deny_wins_over_an_allow() {
    let sim = start(tenant_roles()).await;
    let role = role_arn(B, "deny-wins");
    let base = sts(&sim.endpoint_url(), base_credentials(&sim));
    assert!(assume_tagged(&base, &role, None, &[], &[]).await.is_ok());
    // Account A is allowed, but its operator role is denied.
    let other = session_of(&sim, &role_arn(A, "other")).await;
    assert!(assume_tagged(&other, &role, None, &[], &[]).await.is_ok());
    let operator = session_of(&sim, &role_arn(A, "lightsail-gui-operator")).await;
    let seen = refusal(assume_tagged(&operator, &role, None, &[], &[]).await);
    assert_eq!(
        seen,
        not_authorized(
            "arn:aws:sts::111122223333:assumed-role/lightsail-gui-operator/op-1",
            "sts:AssumeRole",
            &role
        )
    );
    // `sts:*` allows tagging, and the Deny is of AssumeRole only: tags pass for the others.
    let tag = [("kubernetes-namespace", "physics")];
    assert!(assume_tagged(&base, &role, None, &tag, &[]).await.is_ok());
    stop(sim).await;
}

#[tokio::test]
async fn null_conditions_test_whether_a_key_is_present() {
    let sim = start(tenant_roles()).await;
    let role = role_arn(B, "needs-id");
    let base = sts(&sim.endpoint_url(), base_credentials(&sim));
    // "sts:ExternalId": "false": some external id, any; "aws:TagKeys": "true": no tags.
    let seen = refusal(assume_tagged(&base, &role, None, &[], &[]).await);
    assert_eq!(seen, not_authorized(BASE_USER_ARN, "sts:AssumeRole", &role));
    for id in ["any-id", "another"] {
        assert!(
            assume_tagged(&base, &role, Some(id), &[], &[])
                .await
                .is_ok(),
            "{id}"
        );
    }
    let seen = refusal(assume_tagged(&base, &role, Some("any-id"), &[("k", "v")], &[]).await);
    assert_eq!(seen, not_authorized(BASE_USER_ARN, "sts:AssumeRole", &role));
    stop(sim).await;
}

#[tokio::test]
async fn bad_trust_policies_are_refused_with_clear_errors() {
    let sim = start(tenant_roles()).await;
    let url = sim.endpoint_url();
    let statement =
        |statement: serde_json::Value| json!({"Version": "2012-10-17", "Statement": [statement]});
    for (policy, complaint) in [
        (
            statement(json!({"Effect": "Allows", "Principal": "*", "Action": "sts:AssumeRole"})),
            "trustPolicy of role \"gui\" in account 444455556666: Statement[0]: unknown Effect \
             \"Allows\" (expected \"Allow\" or \"Deny\")",
        ),
        (
            statement(
                json!({"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole",
                "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}),
            ),
            "trustPolicy of role \"gui\" in account 444455556666: Statement[0]: unsupported \
             condition operator \"IpAddress\"",
        ),
        (
            statement(
                json!({"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/ops/*"},
                "Action": "sts:AssumeRole"}),
            ),
            "trustPolicy of role \"gui\" in account 444455556666: Statement[0]: AWS principal \
             \"arn:aws:iam::111122223333:role/ops/*\" has a wildcard",
        ),
        (
            statement(
                json!({"Effect": "Allow", "Principal": {"AWS": "111122223333:role/ops"},
                "Action": "sts:AssumeRole"}),
            ),
            "Statement[0]: malformed AWS principal \"111122223333:role/ops\"",
        ),
    ] {
        let account =
            AccountSpec::new(B).with_role(RoleSpec::new("gui").with_trust_policy(policy.clone()));
        match sim.upsert_account(account) {
            Ok(created) => panic!("{policy} was accepted (created: {created})"),
            Err(error) => {
                let error = error.to_string();
                assert!(error.contains(complaint), "{error}\n  wanted: {complaint}");
            }
        }
        let body = json!({"id": B, "roles": [{"name": "gui", "trustPolicy": policy}]});
        let reply = control(Method::POST, &format!("{url}/_sim/accounts"), Some(body)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
        let error = reply.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(error.contains(complaint), "{error}\n  wanted: {complaint}");
    }
    let mixed = json!({"id": B, "roles": [{"name": "gui", "trustedAccounts": [BASE],
        "trustPolicy": documented_trust_policy(A)}]});
    let reply = control(Method::POST, &format!("{url}/_sim/accounts"), Some(mixed)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let error = reply.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains(
            "role \"gui\" has a trustPolicy and trustedAccounts or externalId: give one form only"
        ),
        "{error}"
    );
    // The refused documents changed nothing: B's roles still decide as before.
    let base = sts(&url, base_credentials(&sim));
    assert!(
        assume_tagged(&base, &role_arn(B, "untaggable"), None, &[], &[])
            .await
            .is_ok()
    );
    let accounts = sim.accounts();
    let b = accounts.accounts.iter().find(|account| account.id == B);
    assert_eq!(b.map(|account| account.roles.len()), Some(5));
    stop(sim).await;
}

#[tokio::test]
async fn trust_policies_come_from_config_files_and_the_log_view_shows_session_tags() {
    // The documented setup: the operator's role in its own account (the base one here), the
    // tenant's role in another with the documented trust policy, as JSON written by hand.
    let operator_account = "123456789012";
    let config = json!({
        "accountId": operator_account,
        "accounts": [
            {"id": operator_account, "roles": [
                {"name": "lightsail-gui-operator", "trustedAccounts": [operator_account]}]},
            {"id": A, "roles": [
                {"name": "lightsail-gui-sessions",
                 "trustPolicy": documented_trust_policy(operator_account),
                 "maxSessionDuration": "2h"}]}
        ]
    });
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("tenants.json");
    std::fs::write(&path, config.to_string()).expect("config written");
    let path = path.display().to_string();
    let mut process = SimProcess::start(&["--config", &path]);
    let url = process.endpoint.clone();
    let base = sts(
        &url,
        Credentials::new(
            lightsail_sim::DEFAULT_ACCESS_KEY_ID,
            lightsail_sim::DEFAULT_SECRET_ACCESS_KEY,
            None,
            None,
            "base",
        ),
    );
    let source = assumed(
        &base,
        &role_arn(operator_account, "lightsail-gui-operator"),
        "op-1",
        None,
    )
    .await;
    let operator = sts(&url, temporary(&source));
    let role = role_arn(A, "lightsail-gui-sessions");
    let id = Some("lab-2026-physics");
    // The documented policy does not allow sts:TagSession: tags are refused.
    let tags = [("kubernetes-namespace", "physics")];
    let seen = refusal(assume_tagged(&operator, &role, id, &tags, &[]).await);
    assert_eq!(
        seen,
        not_authorized(
            "arn:aws:sts::123456789012:assumed-role/lightsail-gui-operator/op-1",
            "sts:TagSession",
            &role
        )
    );
    let granted = assume_tagged(&operator, &role, id, &[], &[]).await;
    let Ok(granted) = granted else {
        panic!("{:?}", granted.map_err(|e| e.into_service_error()));
    };
    let credentials = temporary(&granted);

    let log = control(Method::GET, &format!("{url}/_sim/calls/log"), None).await;
    assert_eq!(log.status, StatusCode::OK);
    let asked: Vec<serde_json::Value> = log.json()["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["resource"] == json!(role))
        .map(|e| json!([e["outcome"], e["assumeRole"]]))
        .collect();
    let request = |tags: serde_json::Value| {
        json!({"roleArn": role, "roleSessionName": "op-1", "externalId": "lab-2026-physics",
            "durationSeconds": null, "tags": tags, "transitiveTagKeys": []})
    };
    assert_eq!(
        asked,
        [
            json!([
                "AccessDenied",
                request(json!([{"key": "kubernetes-namespace", "value": "physics"}]))
            ]),
            json!(["ok", request(json!([]))]),
        ]
    );
    let text = log.text();
    for secret in [
        credentials.secret_access_key(),
        credentials.session_token().unwrap_or("no token"),
        lightsail_sim::DEFAULT_SECRET_ACCESS_KEY,
    ] {
        assert!(
            !text.contains(secret),
            "the call log shows a secret: {text}"
        );
    }
    // The accounts view gives the policy back as written.
    let accounts = control(Method::GET, &format!("{url}/_sim/accounts"), None).await;
    let roles = &accounts.json()["accounts"];
    let shown = roles
        .as_array()
        .into_iter()
        .flatten()
        .find(|account| account["id"] == json!(A))
        .map(|account| account["roles"][0]["trustPolicy"].clone());
    assert_eq!(shown, Some(documented_trust_policy(operator_account)));
    assert!(process.terminate().success());
}
