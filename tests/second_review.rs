//! The I/O holes of the second review, each shown against the real apiserver and the simulator
//! by driving the controller's reconcile in this process, where the test can order events
//! around it. The policy holes are pinned in src/decision/tests/review.rs.

mod support;

use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::Reporter;
use lightsail_gui_operator::controller::{Context, RetryPolicy, reconcile};
use lightsail_gui_operator::decision::Settings;
use lightsail_gui_operator::leadership::LeaderGate;
use lightsail_gui_operator::lightsail::{Lightsail, RateLimit};
use lightsail_gui_operator::metrics::Metrics;
use lightsail_gui_operator::operator::metadata_of;
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
