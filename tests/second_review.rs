//! The I/O holes of the second review, each shown against the real apiserver and the simulator
//! by driving the controller's reconcile in this process, where the test can order events
//! around it. The policy holes are pinned in src/guisession/policy/tests/review.rs.

mod support;

use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::Reporter;
use lightsail_gui_operator::aws::lightsail::Lightsail;
use lightsail_gui_operator::aws::model::RateLimit;
use lightsail_gui_operator::guisession::controller::{Context, RetryPolicy, reconcile};
use lightsail_gui_operator::guisession::policy::Settings;
use lightsail_gui_operator::leadership::LeaderGate;
use lightsail_gui_operator::metrics::Metrics;
use lightsail_gui_operator::process::metadata_of;
use lightsail_sim::{ComputerSpec, RunningSimulator, SimConfig};
use serde_json::json;
use support::operator::{apply, eventually, guisession, metric_value};

/// A reconcile context of this process's own, calling the simulator at `rate` requests a
/// second (burst 1), as replica `identity`.
fn context(client: kube::Client, sim: &RunningSimulator, rate: u32) -> Arc<Context> {
    lightsail_gui_operator::install_crypto_provider();
    let metrics = Arc::new(Metrics::default());
    let sdk = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(sim.endpoint_url())
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            sim.access_key_id(),
            sim.secret_access_key(),
            None,
            None,
            "tests",
        )))
        .build();
    let per_second = std::num::NonZeroU32::new(rate).expect("non-zero rate");
    let lightsail = Lightsail::from_sdk_config(
        sdk,
        Some("us-east-1".into()),
        RateLimit {
            per_second,
            burst: std::num::NonZeroU32::MIN,
        },
        metrics.clone(),
    )
    .with_call_timeout(Duration::from_secs(5));
    Arc::new(Context::new(
        client,
        Arc::new(lightsail),
        Reporter {
            controller: "second-review".into(),
            instance: None,
        },
        metrics,
        Settings {
            default_region: Some("us-east-1".into()),
            start_settle: Duration::from_secs(10),
            identity: "replica-test".into(),
            ..Settings::default()
        },
        RetryPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(2),
        },
        LeaderGate::always(),
        Duration::from_secs(5),
        Duration::from_secs(1),
    ))
}

/// Item 1: a GitOps sync edits the GuiSession (resource and Region) while a start waits for its
/// rate-limit permit. The fence write meets a conflict, the object is read again, and the start
/// goes to the new resource in the new Region: never the new name to the old Region's client.
#[tokio::test]
async fn a_start_after_a_conflict_goes_to_the_new_target_not_through_the_old_permit() {
    let env = support::env::env(
        "review-permit",
        SimConfig::default()
            .with_computer(ComputerSpec::new("vm-a").in_region("us-east-1"))
            .with_computer(ComputerSpec::new("vm-b").in_region("eu-west-1")),
    )
    .await;
    let (api, sim) = (&env.api, &env.sim);
    // One request a second: the start's permit waits about a second after the lookup's.
    let ctx = context(env.client.clone(), sim, 1);
    let created = apply(
        api,
        guisession(
            "desk",
            json!({"resourceName": "vm-a", "region": "us-east-1"}),
        ),
    )
    .await;
    let meta = match metadata_of(kube::runtime::watcher::Event::Apply(created)) {
        kube::runtime::watcher::Event::Apply(meta) => Arc::new(meta),
        _ => unreachable!("metadata_of keeps the event's kind"),
    };
    let running = tokio::spawn(reconcile(meta, ctx.clone()));
    // The lookup of vm-a went out: the start is now waiting for its permit.
    eventually(Duration::from_secs(20), "the lookup of vm-a", || {
        sim.calls()
            .count(Some("GetOperationsForResource"), Some("vm-a"), None)
            >= 1
    })
    .await;
    api.patch(
        "desk",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"resourceName": "vm-b", "region": "eu-west-1"}})),
    )
    .await
    .expect("the sync's edit");
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the reconcile ends")
        .expect("the reconcile did not panic")
        .expect("the reconcile succeeds");
    let conflicts = metric_value(
        &ctx.metrics.render(),
        "lightsail_gui_operator_status_conflicts_total",
    );
    assert!(
        conflicts >= 1.0,
        "the edit must land between the lookup and the fence write for this test to mean anything"
    );
    let calls = sim.calls();
    assert_eq!(
        calls.count(Some("StartGUISession"), Some("vm-b"), Some("ok")),
        1,
        "one start of the new resource, in its Region: {calls:?}"
    );
    assert_eq!(
        calls.count(Some("StartGUISession"), None, None),
        1,
        "no start anywhere else (the old client would answer NotFound): {calls:?}"
    );
}

/// Item 6: a reconcile that runs while its object is deleted stores its outcome (here the
/// answered start it holds until the first poll) after the delete was handled. Nothing it stores
/// may outlive the object: the map sizes the operator reports return to zero.
#[tokio::test]
async fn nothing_is_kept_for_an_object_deleted_while_its_start_was_in_flight() {
    let env = support::env::env(
        "review-leak",
        SimConfig::default().with_computer(ComputerSpec::new("vm").hold_start_response(true)),
    )
    .await;
    let op = env.operator(support::env::fast_settle);
    apply(&env.api, guisession("leak", json!({"resourceName": "vm"}))).await;
    eventually(
        Duration::from_secs(30),
        "the start of vm sent (and held)",
        || {
            env.sim
                .calls()
                .count(Some("StartGUISession"), Some("vm"), None)
                >= 1
        },
    )
    .await;
    env.api
        .delete("leak", &Default::default())
        .await
        .expect("delete the GuiSession");
    support::env::wait_deleted(&env.api, "leak").await;
    // The operator has handled the delete once its state gauge no longer counts the object.
    let sessions = |text: &str| -> f64 {
        lightsail_gui_operator::metrics::SESSION_STATES
            .iter()
            .map(|state| {
                metric_value(
                    text,
                    &format!("lightsail_gui_operator_sessions{{state=\"{state}\"}}"),
                )
            })
            .sum()
    };
    eventually(Duration::from_secs(30), "the delete handled", || {
        sessions(&op.http_get("/metrics").1) == 0.0
    })
    .await;
    let reconciles = |text: &str| {
        metric_value(
            text,
            "lightsail_gui_operator_reconciles_total{result=\"ok\"}",
        )
    };
    let before = reconciles(&op.http_get("/metrics").1);
    // Now the answer arrives: the reconcile that sent the start holds it for its first poll.
    assert!(env.sim.release_start_responses("vm"));
    eventually(
        Duration::from_secs(30),
        "the reconcile of the start ended",
        || reconciles(&op.http_get("/metrics").1) > before,
    )
    .await;
    let text = op.http_get("/metrics").1;
    for map in ["unconfirmed_starts", "backoffs", "account_index"] {
        assert_eq!(
            metric_value(
                &text,
                &format!("lightsail_gui_operator_tracked_objects{{map=\"{map}\"}}"),
            ),
            0.0,
            "{map} keeps an entry for a deleted object:\n{text}"
        );
    }
}

/// Item 3: a new leadership term starts with empty account caches. A GuiSession reconciled
/// before they are filled must not be judged from them (it was Stalled `AccountNotFound`
/// "until a change", and nothing changed): it waits, and goes on once the caches are in.
#[tokio::test]
async fn a_guisession_reconciled_before_the_account_caches_are_filled_waits_for_them() {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::Api;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;
    use lightsail_gui_operator::account::types::edge_key;
    use lightsail_gui_operator::account::types::{AccountKey, LightsailAccount};
    use lightsail_gui_operator::aws::lightsail::AccountConfig;
    use lightsail_gui_operator::guisession::controller::AccountStores;
    use lightsail_sim::{AccountSpec, DEFAULT_ACCOUNT_ID, RoleSpec, role_arn};

    const LAB: &str = "111122223333";
    let env = support::env::env(
        "review-caches",
        SimConfig::default()
            .with_account(
                AccountSpec::new(LAB).with_role(RoleSpec::new("gui").trusting(DEFAULT_ACCOUNT_ID)),
            )
            .with_computer(ComputerSpec::new("vm-a").in_account(LAB)),
    )
    .await;
    let ctx = context(env.client.clone(), &env.sim, 100);
    // The account, Ready for its spec, with its credentials loaded in this process.
    let accounts: Api<LightsailAccount> = Api::namespaced(env.client.clone(), &env.namespace);
    accounts
        .patch(
            "lab",
            &PatchParams::apply("second-review"),
            &Patch::Apply(json!({
                "apiVersion": "lightsail.operators.dev/v1alpha1", "kind": "LightsailAccount",
                "metadata": {"name": "lab"},
                "spec": {"roleArn": role_arn(LAB, "gui")},
            })),
        )
        .await
        .expect("account");
    let account = accounts
        .patch_status(
            "lab",
            &PatchParams::apply("second-review"),
            &Patch::Apply(json!({
                "apiVersion": "lightsail.operators.dev/v1alpha1", "kind": "LightsailAccount",
                "metadata": {"name": "lab"},
                "status": {"observedGeneration": 1, "conditions": [{
                    "type": "Ready", "status": "True", "reason": "Verified", "message": "ok",
                    "lastTransitionTime": "2026-12-06T00:00:00Z", "observedGeneration": 1}]},
            })),
        )
        .await
        .expect("account status");
    let key = AccountKey {
        namespace: Some(env.namespace.clone()),
        name: "lab".into(),
    };
    ctx.lightsail
        .check_account(AccountConfig {
            key: edge_key(&key),
            role_arn: Some(role_arn(LAB, "gui")),
            external_id: None,
            session_tags: Vec::new(),
            session_name: "second-review".into(),
            session_duration: Duration::from_secs(3600),
            static_keys: None,
            region: Some("us-east-1".into()),
            rate: None,
            cluster_scoped: false,
        })
        .await
        .expect("credentials load");
    // A new term: caches made, not listed yet.
    let (namespaced, mut namespaced_writer) = reflector::store::<LightsailAccount>();
    let (cluster, mut cluster_writer) = reflector::store();
    let (namespaces, mut namespaces_writer) = reflector::store::<Namespace>();
    ctx.set_accounts(Some(AccountStores {
        namespaced,
        cluster,
        namespaces,
    }));
    let created = apply(
        &env.api,
        guisession(
            "desk",
            json!({"resourceName": "vm-a", "accountRef": {"kind": "LightsailAccount", "name": "lab"}}),
        ),
    )
    .await;
    let meta = match metadata_of(kube::runtime::watcher::Event::Apply(created)) {
        kube::runtime::watcher::Event::Apply(meta) => Arc::new(meta),
        _ => unreachable!("metadata_of keeps the event's kind"),
    };
    reconcile(meta.clone(), ctx.clone())
        .await
        .expect("first reconcile");
    let seen = env.api.get("desk").await.expect("get");
    let stalled = seen
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .find(|c| c.type_ == "Stalled" && c.status == "True");
    assert!(stalled.is_none(), "judged from an empty cache: {stalled:?}");
    assert_eq!(
        env.calls("vm-a"),
        0,
        "nothing done before the account is known"
    );
    // The lists come in (the watch would now wake the GuiSession): it goes on in its account.
    namespaced_writer.apply_watcher_event(&Event::Init);
    namespaced_writer.apply_watcher_event(&Event::InitApply(account));
    namespaced_writer.apply_watcher_event(&Event::InitDone);
    cluster_writer.apply_watcher_event(&Event::Init);
    cluster_writer.apply_watcher_event(&Event::InitDone);
    namespaces_writer.apply_watcher_event(&Event::Init);
    namespaces_writer.apply_watcher_event(&Event::InitDone);
    reconcile(meta, ctx.clone())
        .await
        .expect("second reconcile");
    assert_eq!(
        env.sim
            .calls()
            .count(Some("StartGUISession"), Some("vm-a"), Some("ok")),
        1,
        "the session started in the account"
    );
}
