//! Leader election end to end (#11): the operator binary as processes, a real kube-apiserver +
//! etcd and the Lightsail simulator. A replica applies the Lease as a field manager of its own; a
//! leader that cannot be sure of its Lease stops mutating, even one frozen past it and resumed;
//! SIGTERM lets running reconciles finish; and leadership and the watch come back within seconds
//! of a kube-apiserver outage.

mod support;

use std::time::{Duration, Instant};

use aws_sdk_lightsail::types::OperationType;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, Patch, PatchParams};
use lightsail_gui_operator::guisession::types::GuiSession;
use lightsail_sim::{ComputerSpec, RunningSimulator, SimConfig, Simulator};
use serde_json::json;
use support::env::{WAIT, ready};
use support::operator::*;
use support::{ControlPlane, control_plane, install_crds, test_namespace};

/// The `lightsail_gui_operator_leader` gauge: 1 while a replica reconciles as the leader.
const LEADER: &str = "lightsail_gui_operator_leader";
/// `--lease-name`'s default.
const LEASE: &str = "lightsail-gui-operator";

struct Env<'a> {
    cp: &'a ControlPlane,
    namespace: String,
    api: Api<GuiSession>,
    leases: Api<Lease>,
    sim: RunningSimulator,
}

async fn env<'a>(cp: &'a ControlPlane, test: &str, sim: SimConfig) -> Env<'a> {
    let client = cp.client().await;
    install_crds(&client).await;
    let namespace = test_namespace(&client, test).await;
    let sim = Simulator::start(sim, "127.0.0.1:0")
        .await
        .expect("simulator starts");
    Env {
        cp,
        api: Api::namespaced(client.clone(), &namespace),
        leases: Api::namespaced(client, &namespace),
        namespace,
        sim,
    }
}

impl Env<'_> {
    /// An operator watching this test's namespace and competing for the Lease there.
    fn replica(
        &self,
        identity: &str,
        lease_duration: &str,
        configure: impl FnOnce(OperatorOptions) -> OperatorOptions,
    ) -> Operator {
        let url = self.sim.endpoint_url();
        let options = OperatorOptions::new(&self.namespace, &url)
            .electing(lease_duration)
            .arg("--identity", identity);
        Operator::start(self.cp, configure(options))
    }

    fn starts(&self, resource: &str) -> u64 {
        self.sim
            .calls()
            .count(Some("StartGUISession"), Some(resource), None)
    }

    async fn lease(&self) -> Lease {
        self.leases.get(LEASE).await.expect("get the Lease")
    }

    fn sdk(&self) -> aws_sdk_lightsail::Client {
        sim_sdk(&self.sim.endpoint_url())
    }

    /// Every StartGUISession operation Lightsail holds for `resource` (all pages of
    /// GetOperationsForResource, through the real SDK): (id, createdAt), oldest first.
    async fn start_operations(&self, resource: &str) -> Vec<(String, Timestamp)> {
        let sdk = self.sdk();
        let mut starts = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let page = sdk
                .get_operations_for_resource()
                .resource_name(resource)
                .set_page_token(page_token.take())
                .send()
                .await
                .unwrap_or_else(|e| panic!("GetOperationsForResource {resource}: {e:?}"));
            for op in page.operations() {
                if op.operation_type() != Some(&OperationType::StartGuiSession) {
                    continue;
                }
                let created = op.created_at().expect("createdAt");
                let created = Timestamp::new(created.secs(), created.subsec_nanos() as i32)
                    .expect("createdAt in range");
                starts.push((op.id().expect("id").to_owned(), created));
            }
            match page.next_page_token() {
                Some(token) if !token.is_empty() => page_token = Some(token.to_owned()),
                _ => break,
            }
        }
        starts.sort_by_key(|(_, created)| *created);
        starts
    }
}

/// `Some(())` when `line`, a JSON log line, was logged after `t` (a `wait_for_log` parser).
fn logged_after(line: &str, t: Timestamp) -> Option<()> {
    let entry: serde_json::Value = serde_json::from_str(line).ok()?;
    let logged: Timestamp = entry["timestamp"].as_str()?.parse().ok()?;
    (logged > t).then_some(())
}

fn holder(lease: &Lease) -> Option<String> {
    lease.spec.as_ref()?.holder_identity.clone()
}

/// Field managers of the Lease that own `spec.holderIdentity`, with their operation.
fn holder_owners(lease: &Lease) -> Vec<(String, String)> {
    lease
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|entry| {
            entry
                .fields_v1
                .as_ref()
                .and_then(|f| f.0.get("f:spec")?.get("f:holderIdentity"))
                .is_some()
        })
        .map(|entry| {
            (
                entry.manager.clone().unwrap_or_default(),
                entry.operation.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn managers(lease: &Lease) -> Vec<String> {
    lease
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|entry| entry.manager.clone())
        .collect()
}

/// What kube-lease-manager names the field manager of a replica.
fn lease_manager_of(identity: &str) -> String {
    format!("kube-lease-manager-{identity}")
}

/// Two replicas started together find the Lease free and race for it. Each applies it as its own
/// field manager, so the loser's apply conflicts instead of also succeeding (with one shared
/// manager both applies succeed and both replicas lead until their next renewal).
#[tokio::test(flavor = "multi_thread")]
async fn replicas_racing_for_a_free_lease_apply_it_as_their_own_field_managers() {
    let env = env(control_plane(), "field-managers", SimConfig::default()).await;
    let (mut a, mut b) = tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            let a = s.spawn(|| env.replica("replica-a", "3s", |o| o));
            let b = s.spawn(|| env.replica("replica-b", "3s", |o| o));
            (a.join(), b.join())
        })
    });
    let (a, b) = (
        a.as_mut().expect("replica-a starts"),
        b.as_mut().expect("replica-b starts"),
    );
    eventually(WAIT, "a leader", || {
        a.metric(LEADER) + b.metric(LEADER) > 0.0
    })
    .await;
    let (la, lb) = (a.metric(LEADER), b.metric(LEADER));
    assert_eq!(la + lb, 1.0, "exactly one leader: a={la} b={lb}");
    let (leader, follower, leader_id, follower_id) = if la == 1.0 {
        (a, b, "replica-a", "replica-b")
    } else {
        (b, a, "replica-b", "replica-a")
    };

    let lease = env.lease().await;
    assert_eq!(holder(&lease).as_deref(), Some(leader_id));
    assert_eq!(
        holder_owners(&lease),
        [(lease_manager_of(leader_id), "Apply".to_owned())],
        "holderIdentity is applied by the leader's own field manager"
    );
    assert!(
        !managers(&lease).contains(&"lightsail-gui-operator-lease".to_owned()),
        "the old shared field manager: {:?}",
        managers(&lease)
    );

    // What the follower's lease manager does when it finds the Lease free: apply it, without
    // force, as its own field manager. While the leader holds it, that conflicts.
    let now = MicroTime(Timestamp::now());
    let grab = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "spec": {
            "holderIdentity": follower_id,
            "acquireTime": now,
            "renewTime": now,
            "leaseDurationSeconds": 3,
        },
    });
    let err = env
        .leases
        .patch(
            LEASE,
            &PatchParams::apply(&lease_manager_of(follower_id)),
            &Patch::Apply(&grab),
        )
        .await
        .expect_err("the follower's apply must conflict while the leader holds the Lease");
    match err {
        kube::Error::Api(status) => assert_eq!(status.code, 409, "{status:?}"),
        other => panic!("expected a 409 Conflict, got {other}"),
    }
    assert_eq!(holder(&env.lease().await).as_deref(), Some(leader_id));
    assert_eq!(follower.metric(LEADER), 0.0, "the follower leads too");

    // The leader lets go on SIGTERM; the follower takes the Lease as its own manager.
    let status = leader.terminate();
    assert!(status.success(), "exit status {status}");
    eventually(WAIT, "the follower leads", || {
        follower.metric(LEADER) == 1.0
    })
    .await;
    let lease = env.lease().await;
    assert_eq!(holder(&lease).as_deref(), Some(follower_id));
    assert_eq!(
        holder_owners(&lease),
        [(lease_manager_of(follower_id), "Apply".to_owned())]
    );
}

/// The leader is frozen (SIGSTOP) while several sessions renew every few seconds, until the
/// standby has taken over and renewed some of them, then thawed (SIGCONT). The thawed replica's
/// own clock says its Lease ran out, so it stops at once, before its stale cache can start a
/// session the new leader has just started: Lightsail never sees two StartGUISession calls for
/// one computer within a session window.
#[tokio::test(flavor = "multi_thread")]
async fn a_leader_frozen_past_its_lease_never_starts_a_session_the_new_leader_started() {
    const MAX_SESSION_AGE: Duration = Duration::from_secs(5);
    const VMS: [&str; 4] = ["frozen-1", "frozen-2", "frozen-3", "frozen-4"];
    let mut sim = SimConfig::default();
    for vm in VMS {
        sim = sim.with_computer(ComputerSpec::new(vm));
    }
    let env = env(control_plane(), "frozen", sim).await;
    fn fast_renewals(o: OperatorOptions) -> OperatorOptions {
        o.arg("--min-session-age", "1s")
    }
    let mut old = env.replica("old-leader", "6s", fast_renewals);
    old.wait_for_log("became leader", WAIT, |_| Some(()));
    let mut new = env.replica("standby", "6s", fast_renewals);
    for vm in VMS {
        apply(
            &env.api,
            guisession(vm, json!({"resourceName": vm, "maxSessionAge": "5s"})),
        )
        .await;
    }
    for vm in VMS {
        wait_for(&env.api, vm, WAIT, "Ready", ready).await;
    }
    // Freeze the leader while it is renewing: once every session has been renewed once.
    eventually(WAIT, "every session renewed by the leader", || {
        VMS.iter().all(|vm| env.starts(vm) >= 2)
    })
    .await;
    assert_eq!(new.metric(LEADER), 0.0, "the standby leads too");
    old.suspend();
    let frozen_at = Timestamp::now();
    let frozen = Instant::now();

    new.wait_for_log("became leader", WAIT, |_| Some(()));
    eprintln!(
        "the standby led {:?} after the leader froze (lease 6s)",
        frozen.elapsed()
    );
    // Whatever the old leader had sent before it froze has landed by now (the Lease ran out
    // since): starts from here on are the new leader's.
    let total = || VMS.iter().map(|vm| env.starts(vm)).sum::<u64>();
    let at_takeover = total();
    eventually(WAIT, "the new leader renews sessions", || {
        total() > at_takeover
    })
    .await;
    let thawed_at = Timestamp::now();
    old.resume();

    old.wait_for_log("lost leadership", WAIT, |line| {
        logged_after(line, thawed_at)
    });
    assert_eq!(old.metric(LEADER), 0.0, "the thawed replica still leads");
    assert_eq!(new.metric(LEADER), 1.0);
    // Two more session windows under the new leader, with the old one awake.
    let at_thaw = total();
    eventually(WAIT, "two more renewals of every session", || {
        total() >= at_thaw + 2 * VMS.len() as u64
    })
    .await;
    assert_eq!(old.metric(LEADER), 0.0, "the thawed replica leads again");
    // Its timers for the sessions it thought due fired on the thaw, yet it began no reconcile:
    // the gate was closed by the clock before the controller could run.
    let reconciled_after_thaw: Vec<String> = old
        .log_text()
        .lines()
        .filter(|line| line.contains(r#""message":"reconciling""#))
        .filter(|line| logged_after(line, thawed_at).is_some())
        .map(str::to_owned)
        .collect();
    assert!(
        reconciled_after_thaw.is_empty(),
        "the thawed replica reconciled: {reconciled_after_thaw:#?}"
    );

    let window =
        jiff::SignedDuration::try_from(MAX_SESSION_AGE - Duration::from_secs(1)).expect("window");
    let mut started_while_frozen = 0;
    for vm in VMS {
        let starts = env.start_operations(vm).await;
        assert_eq!(
            starts.len() as u64,
            env.starts(vm),
            "{vm}: history vs calls"
        );
        for pair in starts.windows(2) {
            let gap = pair[1].1.duration_since(pair[0].1);
            assert!(
                gap >= window,
                "{vm}: StartGUISession twice within {gap:#} (window {MAX_SESSION_AGE:?}): {starts:?}"
            );
        }
        started_while_frozen += starts
            .iter()
            .filter(|(_, created)| *created > frozen_at && *created < thawed_at)
            .count();
    }
    assert!(
        started_while_frozen > 0,
        "the standby started nothing while the leader was frozen"
    );
    eprintln!(
        "{started_while_frozen} sessions started by the new leader while the old one was frozen"
    );
}

/// SIGTERM while a StartGUISession is in flight (Lightsail holds its response): no new
/// reconciles, but the running one finishes and records the operation; then the Lease is released
/// and the process exits 0.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_a_running_start_finish_and_record_it_then_releases_the_lease() {
    let env = env(
        control_plane(),
        "drain",
        SimConfig::default().with_computer(ComputerSpec::new("drain-vm").hold_start_response(true)),
    )
    .await;
    let mut op = env.replica("draining", "15s", |o| o.arg("--shutdown-grace", "60s"));
    op.wait_for_log("became leader", WAIT, |_| Some(()));
    apply(
        &env.api,
        guisession("drain", json!({"resourceName": "drain-vm"})),
    )
    .await;
    eventually(WAIT, "StartGUISession performed, response held", || {
        env.sim
            .computer("drain-vm")
            .is_some_and(|c| c.held_start_responses == 1)
    })
    .await;

    op.signal("TERM");
    op.wait_for_log("shutting down: no new reconciles", WAIT, |_| Some(()));
    assert!(op.is_running(), "exited with a StartGUISession in flight");
    assert_eq!(holder(&env.lease().await).as_deref(), Some("draining"));

    // Lightsail answers: the reconcile records the operation, then the process exits.
    env.sim.release_start_responses("drain-vm");
    let status = op.wait_exit(WAIT);
    assert!(status.success(), "exit status {status}");
    let log = op.log_text();
    assert!(log.contains("running reconciles finished"), "{log}");
    assert!(log.contains("released the leader Lease"), "{log}");

    let started = env.start_operations("drain-vm").await;
    assert_eq!(started.len(), 1, "{started:?}");
    let gs = env.api.get("drain").await.expect("get");
    let recorded = gs
        .status
        .as_ref()
        .and_then(|s| s.operation.as_ref())
        .and_then(|o| o.id.clone());
    assert_eq!(recorded.as_deref(), Some(started[0].0.as_str()));
    assert_eq!(holder(&env.lease().await), None, "the Lease is released");
}

/// `--shutdown-grace` bounds the wait: a reconcile that outlasts it is abandoned (its start
/// marker lets the next leader adopt what it started), the Lease released, exit 0.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_gives_up_on_reconciles_that_outlast_the_shutdown_grace() {
    let env = env(
        control_plane(),
        "drain-grace",
        SimConfig::default().with_computer(ComputerSpec::new("stuck-vm").hold_start_response(true)),
    )
    .await;
    let grace = Duration::from_secs(2);
    let mut op = env.replica("impatient", "15s", |o| o.arg("--shutdown-grace", "2s"));
    op.wait_for_log("became leader", WAIT, |_| Some(()));
    apply(
        &env.api,
        guisession("stuck", json!({"resourceName": "stuck-vm"})),
    )
    .await;
    eventually(WAIT, "StartGUISession performed, response held", || {
        env.sim
            .computer("stuck-vm")
            .is_some_and(|c| c.held_start_responses == 1)
    })
    .await;

    let terminated_at = Instant::now();
    op.signal("TERM");
    let status = op.wait_exit(WAIT);
    let took = terminated_at.elapsed();
    assert!(status.success(), "exit status {status}");
    assert!(
        took >= grace,
        "exited after {took:?}, before the {grace:?} grace"
    );
    let log = op.log_text();
    assert!(log.contains("shutdown grace elapsed"), "{log}");
    assert!(log.contains("released the leader Lease"), "{log}");
    assert_eq!(holder(&env.lease().await), None, "the Lease is released");
    env.sim.release_start_responses("stuck-vm");
}

/// kube-apiserver is killed (-9) for ~15 s and restarted on the same etcd. A GuiSession created
/// once it answers again is Ready within 10 s, both for a replica without leader election (the
/// watch retries within seconds) and for one with it, whose Lease ran out during the outage (it
/// stopped reconciling then, and renews and leads again within seconds).
#[tokio::test(flavor = "multi_thread")]
async fn after_a_kube_apiserver_outage_a_new_guisession_is_ready_within_10_s() {
    const OUTAGE: Duration = Duration::from_secs(15);
    const READY_WITHIN: Duration = Duration::from_secs(10);
    // A control plane of its own: killing the shared one would fail the other tests.
    let cp = tokio::task::block_in_place(ControlPlane::start_own);
    let env = env(
        &cp,
        "outage",
        SimConfig::default()
            .with_computer(ComputerSpec::new("before-plain"))
            .with_computer(ComputerSpec::new("after-plain"))
            .with_computer(ComputerSpec::new("before-elected"))
            .with_computer(ComputerSpec::new("after-elected")),
    )
    .await;
    let plain_ns = test_namespace(&cp.client().await, "outage-plain").await;
    let url = env.sim.endpoint_url();
    let _plain = Operator::start(&cp, OperatorOptions::new(&plain_ns, &url));
    let mut elected = env.replica("through-outage", "15s", |o| o);
    elected.wait_for_log("became leader", WAIT, |_| Some(()));
    let plain_api: Api<GuiSession> = Api::namespaced(cp.client().await, &plain_ns);
    for (api, vm) in [(&plain_api, "before-plain"), (&env.api, "before-elected")] {
        apply(api, guisession(vm, json!({"resourceName": vm}))).await;
        wait_for(api, vm, WAIT, "Ready", ready).await;
    }

    let killed = Timestamp::now();
    tokio::task::block_in_place(|| cp.kill_apiserver());
    let killed_at = Instant::now();
    // Renewals fail: the elected replica stops reconciling before its Lease could expire.
    elected.wait_for_log("lost leadership", OUTAGE + WAIT, |line| {
        logged_after(line, killed)
    });
    assert_eq!(elected.metric(LEADER), 0.0);
    // The rest of the outage is its length, not a wait for anything.
    tokio::time::sleep(OUTAGE.saturating_sub(killed_at.elapsed())).await;
    tokio::task::block_in_place(|| cp.start_apiserver());
    let back = Instant::now();
    eprintln!(
        "kube-apiserver down for {:?} (killed, then restarted until /readyz answered)",
        back - killed_at
    );

    // New clients: the old ones' connections died with the apiserver.
    let client = cp.client().await;
    let plain_api: Api<GuiSession> = Api::namespaced(client.clone(), &plain_ns);
    let elected_api: Api<GuiSession> = Api::namespaced(client, &env.namespace);
    let ready_in = |api: Api<GuiSession>, vm: &'static str| async move {
        apply(&api, guisession(vm, json!({"resourceName": vm}))).await;
        let left = READY_WITHIN.saturating_sub(back.elapsed());
        wait_for(
            &api,
            vm,
            left,
            "Ready within 10 s of the apiserver's return",
            ready,
        )
        .await;
        back.elapsed()
    };
    let (plain_took, elected_took) = tokio::join!(
        ready_in(plain_api, "after-plain"),
        ready_in(elected_api, "after-elected"),
    );
    eprintln!(
        "Ready after the apiserver answered again: {plain_took:?} without leader election, \
         {elected_took:?} with it"
    );
    assert!(plain_took <= READY_WITHIN && elected_took <= READY_WITHIN);
    assert_eq!(elected.metric(LEADER), 1.0);
}
