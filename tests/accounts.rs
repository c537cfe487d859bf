//! Many AWS accounts from one operator, end to end: LightsailAccount and ClusterLightsailAccount
//! objects on a real kube-apiserver, the operator binary assuming their roles through STS, and
//! the simulator (Lightsail and STS, reached through the standard AWS_ENDPOINT_URL_* overrides)
//! saying which credentials made each call.

mod support;

use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use lightsail_gui_operator::account::controller::AccountObject;
use lightsail_gui_operator::account::types::{ClusterLightsailAccount, LightsailAccount};
use lightsail_gui_operator::guisession::types::GuiSession;
use lightsail_sim::{AccountSpec, ComputerSpec, DEFAULT_ACCOUNT_ID, RoleSpec, SimConfig, role_arn};
use serde_json::json;
use support::env::*;
use support::operator::*;
use support::test_namespace;

const LAB_A: &str = "111122223333";
/// One test at a time: cluster-scoped accounts (and an operator watching every namespace) would
/// otherwise be seen by the other tests' operators too.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const LAB_B: &str = "444455556666";

fn accounts_sim() -> SimConfig {
    SimConfig::default()
        .with_account(
            AccountSpec::new(LAB_A).with_role(RoleSpec::new("gui").trusting(DEFAULT_ACCOUNT_ID)),
        )
        .with_account(
            AccountSpec::new(LAB_B).with_role(
                RoleSpec::new("gui")
                    .trusting(DEFAULT_ACCOUNT_ID)
                    .with_external_id("lab-b-external-id"),
            ),
        )
        .with_computer(ComputerSpec::new("vm-a").in_account(LAB_A))
        .with_computer(ComputerSpec::new("vm-b").in_account(LAB_B))
        .with_computer(ComputerSpec::new("vm-c").in_account(LAB_B))
}

fn with_sts(env: &Env) -> impl FnOnce(OperatorOptions) -> OperatorOptions + '_ {
    move |mut o: OperatorOptions| {
        o.env
            .push(("AWS_ENDPOINT_URL_STS".into(), env.sim.endpoint_url()));
        o.arg("--min-session-age", "1s")
    }
}

fn assume_role_calls(env: &Env, account: &str) -> u64 {
    env.sim
        .calls()
        .count(Some("AssumeRole"), Some(&role_arn(account, "gui")), None)
}

#[tokio::test(flavor = "multi_thread")]
async fn each_namespace_starts_sessions_in_its_own_account_only() {
    let _one = ONE_AT_A_TIME.lock().await;
    let env = env("accounts", accounts_sim()).await;
    let ns_b = test_namespace(&env.client, "accounts-b").await;
    let ns_c = test_namespace(&env.client, "accounts-c").await;
    // One operator for every namespace, for this test's GuiSessions only (earlier tests leave
    // theirs behind in their namespaces).
    let _op = env.operator(|o| {
        let mut o = with_sts(&env)(o).arg("--selector", "accounts-test=multi");
        o.namespace = "";
        o
    });
    let labelled = |name: &str, spec: serde_json::Value| {
        let mut manifest = guisession(name, spec);
        manifest["metadata"]["labels"] = json!({"accounts-test": "multi"});
        manifest
    };

    // Namespace A: its own LightsailAccount.
    let accounts_a: Api<LightsailAccount> = Api::namespaced(env.client.clone(), &env.namespace);
    apply_json(
        &accounts_a,
        "grant",
        json!({"apiVersion": "lightsail.operators.dev/v1alpha1", "kind": "LightsailAccount",
               "metadata": {"name": "grant"},
               "spec": {"roleArn": role_arn(LAB_A, "gui")}}),
    )
    .await;
    // Namespace B: a ClusterLightsailAccount that allows it (by name), and not namespace C.
    let cluster: Api<ClusterLightsailAccount> = Api::all(env.client.clone());
    let shared = format!("shared-{ns_b}");
    let shared_account = |namespaces: serde_json::Value| {
        json!({"apiVersion": "lightsail.operators.dev/v1alpha1", "kind": "ClusterLightsailAccount",
               "metadata": {"name": shared},
               "spec": {"roleArn": role_arn(LAB_B, "gui"), "externalId": "lab-b-external-id",
                        "namespaces": namespaces}})
    };
    apply_json(&cluster, &shared, shared_account(json!({"names": [ns_b]}))).await;

    apply(
        &env.api,
        labelled(
            "a",
            json!({"resourceName": "vm-a",
                   "accountRef": {"kind": "LightsailAccount", "name": "grant"}}),
        ),
    )
    .await;
    let a = wait_for(&env.api, "a", WAIT, "Ready", ready).await;
    assert_eq!(
        a.status.as_ref().and_then(|s| s.account.clone()).as_deref(),
        Some("LightsailAccount/grant")
    );
    let sessions_b: Api<GuiSession> = Api::namespaced(env.client.clone(), &ns_b);
    apply(
        &sessions_b,
        labelled(
            "b",
            json!({"resourceName": "vm-b",
                   "accountRef": {"kind": "ClusterLightsailAccount", "name": shared}}),
        ),
    )
    .await;
    wait_for(&sessions_b, "b", WAIT, "Ready", ready).await;

    // Namespace C is not allowed: refused, and no Lightsail call about its computer.
    let sessions_c: Api<GuiSession> = Api::namespaced(env.client.clone(), &ns_c);
    apply(
        &sessions_c,
        labelled(
            "c",
            json!({"resourceName": "vm-c",
                   "accountRef": {"kind": "ClusterLightsailAccount", "name": shared}}),
        ),
    )
    .await;
    let c = wait_for(&sessions_c, "c", WAIT, "Stalled", |gs| {
        condition_is(gs, "Stalled", "True")
    })
    .await;
    assert_eq!(
        condition(&c, "Stalled").map(|c| c.reason.as_str()),
        Some("AccountNotAllowed")
    );
    assert_eq!(env.calls("vm-c"), 0);

    // The simulator says which credentials made each start.
    let log = env.sim.call_log();
    let starts = |resource: &'static str| {
        log.matching(Some("StartGUISession"), Some(resource), Some("ok"))
            .map(|e| e.account.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(starts("vm-a"), vec![Some(LAB_A.to_owned())]);
    assert_eq!(starts("vm-b"), vec![Some(LAB_B.to_owned())]);

    // The accounts report who they are and how many GuiSessions use them.
    let grant = wait_for_account(&accounts_a, "grant", |s| s.gui_sessions == Some(1)).await;
    assert_eq!(grant.account_id.as_deref(), Some(LAB_A));
    let shared_status = wait_for_account(&cluster, &shared, |s| s.gui_sessions == Some(2)).await;
    assert_eq!(shared_status.account_id.as_deref(), Some(LAB_B));

    // Allowing namespace C by a label selector lets its session go on, with no restart.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(env.client.clone());
    namespaces
        .patch(
            &ns_c,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"grant": "lab-b"}}})),
        )
        .await
        .expect("label namespace C");
    apply_json(
        &cluster,
        &shared,
        shared_account(json!({"names": [ns_b], "selector": {"matchLabels": {"grant": "lab-b"}}})),
    )
    .await;
    wait_for(&sessions_c, "c", WAIT, "Ready", ready).await;
    assert!(!op_log_has_secrets(&_op));
}

fn op_log_has_secrets(op: &Operator) -> bool {
    let log = op.log_text();
    log.contains(SIM_SECRET_ACCESS_KEY) || log.contains("SessionToken") || log.contains("ASIA")
}

async fn wait_for_account<K>(
    api: &Api<K>,
    name: &str,
    check: impl Fn(&lightsail_gui_operator::account::types::AccountStatus) -> bool,
) -> lightsail_gui_operator::account::types::AccountStatus
where
    K: AccountObject,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let obj = api.get(name).await.expect("get account");
        if let Some(status) = obj.account_status()
            && status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True")
            && check(status)
        {
            return status.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "account {name} not as expected within {WAIT:?}: {:?}",
            obj.account_status()
        );
        // A read polled with a deadline, not a sleep deciding the outcome.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fixing_a_broken_account_brings_its_sessions_back_without_polling() {
    let _one = ONE_AT_A_TIME.lock().await;
    let env = env("accounts-fix", accounts_sim()).await;
    let op = env.operator(with_sts(&env));
    // Only a cluster-scoped account chooses its external id (a LightsailAccount's is the
    // operator's), so the account a cluster admin mistypes and fixes is a cluster one.
    let accounts: Api<ClusterLightsailAccount> = Api::all(env.client.clone());
    let name = format!("lab-b-{}", env.namespace);
    let account = |external_id: &str| {
        json!({"apiVersion": "lightsail.operators.dev/v1alpha1", "kind": "ClusterLightsailAccount",
               "metadata": {"name": name},
               "spec": {"roleArn": role_arn(LAB_B, "gui"), "externalId": external_id,
                        "namespaces": {"names": [env.namespace]}}})
    };
    apply_json(&accounts, &name, account("wrong-external-id")).await;
    apply(
        &env.api,
        guisession(
            "b",
            json!({"resourceName": "vm-b",
                   "accountRef": {"kind": "ClusterLightsailAccount", "name": name}}),
        ),
    )
    .await;
    // Before the account's first check the session waits (Reconciling); the failed check makes
    // it Stalled, with the account's reason.
    let gs = wait_for(&env.api, "b", WAIT, "Stalled by the account", |gs| {
        condition(gs, "Stalled")
            .is_some_and(|c| c.status == "True" && c.message.contains("AccessDenied"))
    })
    .await;
    let stalled = condition(&gs, "Stalled").expect("Stalled");
    assert_eq!(stalled.reason, "AccountNotReady");
    let broken = accounts.get(&name).await.expect("account");
    let ready = broken
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Stalled").cloned())
        .expect("the account says why");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "AccessDenied")
    );

    // While broken: no polling. Once the account has counted its GuiSession (a change of its
    // own status, which may come with one more check), nothing changes and no further
    // AssumeRole with this account's external id goes out. Other tests' accounts may name the
    // same role: their checks are not this account's.
    wait_for_cluster_account(&accounts, &name, "counts its GuiSession", |a| {
        a.status.as_ref().and_then(|s| s.gui_sessions) == Some(1)
    })
    .await;
    let attempts_with = |external_id: &str| {
        env.sim
            .call_log()
            .assume_role_requests(Some(&role_arn(LAB_B, "gui")), None)
            .filter(|r| r.external_id.as_deref() == Some(external_id))
            .count()
    };
    let attempts = attempts_with("wrong-external-id");
    assert!(attempts >= 1, "the account was checked");
    assert!(wait_for_no_change(&env.api, "b", Duration::from_secs(4)).await);
    assert_eq!(
        attempts_with("wrong-external-id"),
        attempts,
        "no retry loop while broken"
    );
    assert_eq!(
        env.calls("vm-b"),
        0,
        "no Lightsail call while the account is broken"
    );

    // Fixed: Ready within seconds, no restart.
    apply_json(&accounts, &name, account("lab-b-external-id")).await;
    wait_for(&env.api, "b", WAIT, "Ready", ready_fn).await;
    assert_eq!(env.starts("vm-b"), 1);
    assert!(!op_log_has_secrets(&op));
    accounts
        .delete(&name, &Default::default())
        .await
        .expect("delete the cluster account");
}

/// Waits (with a deadline) until the cluster account `name` satisfies `check`, Ready or not.
async fn wait_for_cluster_account(
    accounts: &Api<ClusterLightsailAccount>,
    name: &str,
    what: &str,
    check: impl Fn(&ClusterLightsailAccount) -> bool,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if accounts
            .get_opt(name)
            .await
            .expect("get")
            .as_ref()
            .is_some_and(&check)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "account {name}: not {what} within {WAIT:?}"
        );
        // Polling a read with a deadline, not a sleep deciding the outcome.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ready_fn(gs: &GuiSession) -> bool {
    ready(gs)
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_are_assumed_once_and_refreshed_before_they_expire() {
    let _one = ONE_AT_A_TIME.lock().await;
    // Credentials that live 20 s, and sessions renewed every 3 s: many Lightsail calls per
    // credential, across several refreshes.
    let env = env(
        "accounts-refresh",
        accounts_sim().with_sts_credential_lifetime(Duration::from_secs(20)),
    )
    .await;
    let _op = env.operator(with_sts(&env));
    let accounts: Api<LightsailAccount> = Api::namespaced(env.client.clone(), &env.namespace);
    apply_json(
        &accounts,
        "lab-a",
        json!({"apiVersion": "lightsail.operators.dev/v1alpha1", "kind": "LightsailAccount",
               "metadata": {"name": "lab-a"},
               "spec": {"roleArn": role_arn(LAB_A, "gui"), "region": "us-east-1"}}),
    )
    .await;
    env.apply_until_ready(
        "a",
        json!({"resourceName": "vm-a", "maxSessionAge": "3s",
               "accountRef": {"kind": "LightsailAccount", "name": "lab-a"}}),
    )
    .await;
    // Run until the credentials were refreshed at least twice.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while assume_role_calls(&env, LAB_A) < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "credentials not refreshed: {} AssumeRole calls",
            assume_role_calls(&env, LAB_A)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let report = env.sim.calls();
    let lightsail_calls = report.count(None, Some("vm-a"), None);
    let assumed = assume_role_calls(&env, LAB_A);
    // Once per credential lifetime, not once per call (or per reconcile).
    assert!(
        lightsail_calls >= 3 * assumed,
        "{assumed} AssumeRole calls for {lightsail_calls} Lightsail calls"
    );
    // Refreshed before expiry: no call was ever refused for an expired token.
    let refused = report.count(None, Some("vm-a"), Some("ExpiredTokenException"));
    assert_eq!(refused, 0, "a call went out with expired credentials");
    assert_eq!(
        report.count(None, Some("vm-a"), Some("ok")),
        lightsail_calls
    );
}

/// STS down during a renewal wave (issue "Second review", item 2): the account's recheck fails
/// with a retryable error, the account stays Ready on its last good credentials (Reconciling
/// while it retries), and every GuiSession keeps renewing: none is Stalled, none forgotten.
/// The suite runs 50 GuiSessions; `LGO_STS_OUTAGE_SESSIONS=200 LGO_STS_OUTAGE_SECS=120` gives
/// the figures of the issue (printed).
#[tokio::test(flavor = "multi_thread")]
async fn an_sts_outage_during_a_renewal_wave_forgets_and_stalls_nothing() {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    use lightsail_sim::StsFaults;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    let _one = ONE_AT_A_TIME.lock().await;
    let sessions: usize = std::env::var("LGO_STS_OUTAGE_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let outage_at_least = Duration::from_secs(
        std::env::var("LGO_STS_OUTAGE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    );
    let mut sim = SimConfig::default().with_account(
        AccountSpec::new(LAB_A).with_role(RoleSpec::new("gui").trusting(DEFAULT_ACCOUNT_ID)),
    );
    for i in 0..sessions {
        sim = sim.with_computer(ComputerSpec::new(format!("vm-{i}")).in_account(LAB_A));
    }
    let env = env("accounts-sts-outage", sim).await;
    let op = env.operator(|o| {
        with_sts(&env)(o)
            .arg("--account-recheck", "5s")
            .arg("--rate-limit", "100")
            .arg("--rate-burst", "400")
    });
    let accounts: Api<LightsailAccount> = Api::namespaced(env.client.clone(), &env.namespace);
    apply_json(
        &accounts,
        "lab-a",
        json!({"apiVersion": "lightsail.operators.dev/v1alpha1", "kind": "LightsailAccount",
               "metadata": {"name": "lab-a"}, "spec": {"roleArn": role_arn(LAB_A, "gui")}}),
    )
    .await;
    for i in 0..sessions {
        apply(
            &env.api,
            guisession(
                &format!("desk-{i}"),
                json!({"resourceName": format!("vm-{i}"), "maxSessionAge": "20s",
                       "accountRef": {"kind": "LightsailAccount", "name": "lab-a"}}),
            ),
        )
        .await;
    }
    for i in 0..sessions {
        wait_for(&env.api, &format!("desk-{i}"), WAIT, "Ready", ready_fn).await;
    }

    // From here on, watch for anything Stalled and count it.
    let stalled = Arc::new(AtomicU64::new(0));
    let observer = tokio::spawn({
        let api = env.api.clone();
        let stalled = stalled.clone();
        async move {
            let mut events = watcher(api, watcher::Config::default())
                .applied_objects()
                .boxed();
            while let Some(Ok(gs)) = events.next().await {
                if condition(&gs, "Stalled").is_some_and(|c| c.status == "True") {
                    stalled.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    });
    let starts = || {
        env.sim
            .calls()
            .count(Some("StartGUISession"), None, Some("ok"))
    };
    let sts_refused = || {
        env.sim
            .calls()
            .count(None, None, Some("ServiceUnavailable"))
    };
    let before = starts();
    let began = std::time::Instant::now();
    env.sim
        .set_sts_faults(StsFaults::unavailable())
        .expect("STS down");
    // The account's recheck meets the outage: still Ready, Reconciling.
    let status = wait_for_account(&accounts, "lab-a", |s| {
        let is = |t: &str, v: &str| {
            s.conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == t && c.status == v)
        };
        is("Reconciling", "True") && is("Ready", "True")
    })
    .await;
    // Every GuiSession renews at least once more while STS is down.
    eventually(
        Duration::from_secs(120),
        "a renewal of every GuiSession during the outage",
        || starts() >= before + sessions as u64,
    )
    .await;
    if let Some(rest) = outage_at_least.checked_sub(began.elapsed()) {
        // The outage's length is the scenario, not a synchronisation.
        tokio::time::sleep(rest).await;
    }
    let outage = began.elapsed();
    let renewed_during = starts() - before;
    let refused = sts_refused();
    env.sim
        .set_sts_faults(StsFaults::default())
        .expect("STS back");
    wait_for_account(&accounts, "lab-a", |s| {
        s.conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Reconciling" && c.status == "False")
    })
    .await;
    for i in 0..sessions {
        let gs = wait_for(&env.api, &format!("desk-{i}"), WAIT, "Ready", ready_fn).await;
        assert!(
            gs.status
                .as_ref()
                .and_then(|s| s.session_started_at)
                .is_some(),
            "desk-{i} forgot its session"
        );
    }
    observer.abort();
    let events = kube::Api::<k8s_openapi::api::events::v1::Event>::namespaced(
        env.client.clone(),
        &env.namespace,
    )
    .list(&Default::default())
    .await
    .expect("events");
    let forgotten = events
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("ResourceChanged"))
        .count();
    println!(
        "STS outage: {sessions} GuiSessions, {:.0} s down, {renewed_during} renewals during it, \
         {refused} STS calls refused, {} Stalled, {forgotten} forgotten; account while down: {:?}",
        outage.as_secs_f64(),
        stalled.load(Ordering::SeqCst),
        status
            .conditions
            .iter()
            .flatten()
            .map(|c| format!("{}={} ({})", c.type_, c.status, c.reason))
            .collect::<Vec<_>>()
    );
    assert!(refused > 0, "the outage was real");
    assert_eq!(stalled.load(Ordering::SeqCst), 0, "no GuiSession Stalled");
    assert_eq!(forgotten, 0, "no session forgotten");
    assert!(!op_log_has_secrets(&op));
}
