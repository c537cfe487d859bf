//! The operator end to end: the release binary as a process, a real kube-apiserver + etcd, and
//! the Lightsail simulator reached through the standard `AWS_ENDPOINT_URL_LIGHTSAIL`.

mod support;

use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use lightsail_gui_operator::aws::sdk::operation_from_sdk;
use lightsail_gui_operator::guisession::types::GuiSession;
use lightsail_sim::{ComputerSpec, Faults, SimConfig};
use serde_json::json;
use support::control_plane;
use support::env::*;
use support::operator::*;

const WAIT: Duration = Duration::from_secs(60);

fn stalled(gs: &GuiSession) -> bool {
    condition_is(gs, "Stalled", "True")
}

/// `status.sessionStartedAt` and `status.sessionExpiresAt`.
fn session_times(gs: &GuiSession) -> (jiff::Timestamp, jiff::Timestamp) {
    let status = gs.status.as_ref().expect("status");
    (
        status.session_started_at.expect("sessionStartedAt"),
        status.session_expires_at.expect("sessionExpiresAt"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn goes_ready_with_the_operation_lightsail_returned() {
    let env = env(
        "ready",
        SimConfig::default().with_computer(ComputerSpec::new("research-desktop")),
    )
    .await;
    let op = env.operator(|o| o);
    apply(
        &env.api,
        guisession("desktop", json!({"resourceName": "research-desktop"})),
    )
    .await;

    // What users (and GitOps tools) run.
    let out = control_plane()
        .kubectl()
        .args(["wait", "--for=condition=Ready", "--timeout=60s"])
        .args(["-n", &env.namespace, "guisession/desktop"])
        .output()
        .expect("kubectl wait");
    assert!(
        out.status.success(),
        "kubectl wait failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let gs = env.api.get("desktop").await.expect("get");
    let status = gs.status.clone().expect("status");
    let recorded = status.operation.clone().expect("operation recorded");
    let id = recorded.id.clone().expect("operation id");
    let from_lightsail = env
        .sdk()
        .get_operation()
        .operation_id(&id)
        .send()
        .await
        .expect("GetOperation");
    let expected = operation_from_sdk(from_lightsail.operation().expect("operation"));
    assert_eq!(
        recorded, expected,
        "every Operation field as Lightsail returned it"
    );
    assert_eq!(recorded.operation_type.as_deref(), Some("StartGUISession"));
    assert_eq!(recorded.resource_name.as_deref(), Some("research-desktop"));
    assert_eq!(
        recorded
            .location
            .as_ref()
            .and_then(|l| l.region_name.as_deref()),
        Some("us-east-1")
    );

    // Session times: started when the operation was created, next start one hour later.
    let (started, expires) = session_times(&gs);
    assert_eq!(expires.duration_since(started).as_secs(), 3600);
    assert_eq!(status.observed_generation, gs.metadata.generation);
    for type_ in ["Ready", "Reconciling", "Stalled"] {
        let c = condition(&gs, type_).expect("condition");
        assert_eq!(c.observed_generation, gs.metadata.generation, "{type_}");
    }
    assert!(condition_is(&gs, "Reconciling", "False"));
    assert!(condition_is(&gs, "Stalled", "False"));
    assert!(status.last_error.is_none());

    assert_eq!(env.starts("research-desktop"), 1);
    wait_for_event(&env.client, &env.namespace, "desktop", WAIT, |(t, r, _)| {
        t == "Normal" && r == "SessionStarted"
    })
    .await;

    // The HTTP endpoints.
    assert_eq!(op.http_get("/healthz").0, 200);
    assert_eq!(op.http_get("/readyz").0, 200);
    assert_eq!(
        op.metric(
            r#"lightsail_gui_operator_lightsail_calls_total{action="StartGUISession",outcome="ok"}"#
        ),
        1.0
    );
    assert_eq!(
        op.metric(r#"lightsail_gui_operator_sessions{state="active"}"#),
        1.0
    );
    assert!(op.metric(r#"lightsail_gui_operator_reconciles_total{result="ok"}"#) >= 1.0);
    let log = op.log_text();
    assert!(!log.contains(SIM_SECRET_ACCESS_KEY), "secret in the log");
}

#[tokio::test(flavor = "multi_thread")]
async fn status_is_not_written_again_once_ready() {
    let env = env(
        "no-rewrite",
        SimConfig::default().with_computer(ComputerSpec::new("quiet-vm")),
    )
    .await;
    let _op = env.operator(|o| o);
    let gs = env
        .apply_until_ready("quiet", json!({"resourceName": "quiet-vm"}))
        .await;
    let calls = env.calls("quiet-vm");

    // Watch from the Ready object's resourceVersion: any write at all would show up.
    let rv = gs
        .metadata
        .resource_version
        .clone()
        .expect("resourceVersion");
    let params = kube::api::WatchParams::default()
        .fields("metadata.name=quiet")
        .timeout(10);
    let mut stream = env.api.watch(&params, &rv).await.expect("watch").boxed();
    let mut writes = Vec::new();
    while let Some(event) = stream.next().await {
        if let Ok(kube::api::WatchEvent::Modified(o)) = event {
            writes.push(o.metadata.resource_version);
        }
    }
    assert!(
        writes.is_empty(),
        "status rewritten after Ready: {writes:?}"
    );
    assert_eq!(env.calls("quiet-vm"), calls, "Lightsail called while idle");
}

#[tokio::test(flavor = "multi_thread")]
async fn renews_after_max_session_age_and_not_before() {
    let env = env(
        "renew",
        SimConfig::default().with_computer(ComputerSpec::new("renew-vm")),
    )
    .await;
    let _op = env.operator(|o| o.arg("--min-session-age", "1s"));
    let first = env
        .apply_until_ready(
            "renew",
            json!({"resourceName": "renew-vm", "maxSessionAge": "6s"}),
        )
        .await;
    let first_status = first.status.clone().expect("status");
    let (started_1, _) = session_times(&first);
    assert_eq!(env.starts("renew-vm"), 1);

    let second = wait_for(&env.api, "renew", WAIT, "renewed and Ready", |gs| {
        ready(gs)
            && gs.status.as_ref().and_then(|s| s.session_started_at)
                != first_status.session_started_at
    })
    .await;
    let (started_2, _) = session_times(&second);
    // Not before expiry (whole seconds, as stored).
    assert!(
        started_2.duration_since(started_1).as_secs() >= 6,
        "renewed after {:?}",
        started_2.duration_since(started_1)
    );
    assert_eq!(env.starts("renew-vm"), 2, "exactly one start per window");
    assert_ne!(
        first_status.operation.and_then(|o| o.id),
        second
            .status
            .as_ref()
            .and_then(|s| s.operation.as_ref()?.id.clone())
    );
    wait_for_event(&env.client, &env.namespace, "renew", WAIT, |(_, r, _)| {
        r == "SessionRenewed"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn guard_rail_raises_a_too_small_max_session_age_and_says_so() {
    let env = env(
        "guard-rail",
        SimConfig::default().with_computer(ComputerSpec::new("guarded-vm")),
    )
    .await;
    let _op = env.operator(|o| o.arg("--min-session-age", "10m"));
    let gs = env
        .apply_until_ready(
            "guarded",
            json!({"resourceName": "guarded-vm", "maxSessionAge": "30s"}),
        )
        .await;
    let (started, expires) = session_times(&gs);
    assert_eq!(expires.duration_since(started).as_secs(), 600);
    let msg = &condition(&gs, "Ready").expect("Ready").message;
    assert!(msg.contains("maxSessionAge 30s is below"), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn terminal_errors_stall_with_conditions_events_and_bounded_calls() {
    let mut denied = ComputerSpec::new("denied-vm");
    denied.access_denied = true;
    let env = env(
        "terminal",
        SimConfig::default().with_computer(denied).with_computer(
            ComputerSpec::new("failing-vm")
                .start_fails_with("InstanceBusy", "the instance is busy"),
        ),
    )
    .await;
    let _op = env.operator(|o| o);
    for (name, resource) in [
        ("unknown", "no-such-vm"),
        ("denied", "denied-vm"),
        ("failing", "failing-vm"),
    ] {
        apply(
            &env.api,
            guisession(name, json!({"resourceName": resource})),
        )
        .await;
    }
    for (name, code) in [
        ("unknown", "NotFound"),
        ("denied", "AccessDenied"),
        ("failing", "InstanceBusy"),
    ] {
        let gs = wait_for(&env.api, name, WAIT, "Stalled", stalled).await;
        assert!(condition_is(&gs, "Ready", "False"), "{name}");
        assert!(condition_is(&gs, "Reconciling", "False"), "{name}");
        assert_eq!(condition(&gs, "Stalled").expect("Stalled").reason, code);
        let last_error = gs
            .status
            .as_ref()
            .and_then(|s| s.last_error.clone())
            .expect("lastError");
        assert_eq!(last_error.code.as_deref(), Some(code), "{name}");
        assert!(last_error.time.is_some());
        wait_for_event(&env.client, &env.namespace, name, WAIT, |(t, _, note)| {
            t == "Warning" && note.contains(code)
        })
        .await;
    }
    // The failing VM's operation is recorded, as Lightsail reported it.
    let failing = env.api.get("failing").await.expect("get");
    let op = failing.status.and_then(|s| s.operation).expect("operation");
    assert_eq!(op.error_code.as_deref(), Some("InstanceBusy"));
    assert_eq!(op.error_details.as_deref(), Some("the instance is busy"));

    // No hot loop: the stalled objects are left alone (retry delay 5m) ...
    let before: Vec<u64> = ["no-such-vm", "denied-vm", "failing-vm"]
        .iter()
        .map(|r| env.calls(r))
        .collect();
    // At most 3 calls each, as before the computer check, except failing-vm: its start now
    // costs 2 GetInstanceState more (the read before every start, and the one read after a
    // failed StartGUISession operation, which may be the computer's doing): lookup, state,
    // start, poll, state.
    let most = [3, 3, 5];
    assert!(
        before.iter().zip(most).all(|(n, most)| *n <= most),
        "calls per stalled object: {before:?}, at most {most:?}"
    );
    let quiet = wait_for_no_change(&env.api, "unknown", Duration::from_secs(5)).await;
    assert!(quiet, "status kept changing while stalled");
    let after: Vec<u64> = ["no-such-vm", "denied-vm", "failing-vm"]
        .iter()
        .map(|r| env.calls(r))
        .collect();
    assert_eq!(before, after, "Lightsail called again while stalled");

    // ... until their spec changes: then at once.
    env.sim
        .upsert_computer(ComputerSpec::new("no-such-vm"))
        .expect("add the computer");
    apply(
        &env.api,
        guisession(
            "unknown",
            json!({"resourceName": "no-such-vm", "maxSessionAge": "2h"}),
        ),
    )
    .await;
    let gs = wait_for(&env.api, "unknown", WAIT, "Ready after the fix", ready).await;
    assert!(
        gs.status.and_then(|s| s.last_error).is_none(),
        "lastError cleared"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_names_are_rejected_at_apply() {
    let env = env("invalid-name", SimConfig::default()).await;
    let err = env
        .api
        .patch(
            "bad",
            &PatchParams::apply("lgo-tests"),
            &Patch::Apply(guisession("bad", json!({"resourceName": "-bad name-"}))),
        )
        .await
        .expect_err("rejected by the apiserver");
    let text = err.to_string();
    assert!(text.contains("spec.resourceName"), "{text}");
    let err = env
        .api
        .patch(
            "bad",
            &PatchParams::apply("lgo-tests"),
            &Patch::Apply(guisession(
                "bad",
                json!({"resourceName": "vm", "maxSessionAge": "0s"}),
            )),
        )
        .await
        .expect_err("rejected by the apiserver");
    assert!(err.to_string().contains("maxSessionAge"), "{err}");
    let err = env
        .api
        .patch(
            "bad",
            &PatchParams::apply("lgo-tests"),
            &Patch::Apply(guisession(
                "bad",
                json!({"resourceName": "vm", "region": "the moon"}),
            )),
        )
        .await
        .expect_err("rejected by the apiserver");
    assert!(err.to_string().contains("spec.region"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_and_service_errors_retry_with_backoff_then_recover() {
    let mut broken = ComputerSpec::new("flaky-vm");
    broken.service_error = true;
    let env = env(
        "retryable",
        SimConfig::default()
            .with_computer(broken)
            .with_computer(ComputerSpec::new("throttled-vm")),
    )
    .await;
    env.sim
        .set_faults(Faults {
            throttle_rate: 1.0,
            ..Faults::default()
        })
        .expect("faults");
    let _op = env.operator(|o| o.arg("--retry-initial", "1s").arg("--retry-max", "4s"));
    apply(
        &env.api,
        guisession("throttled", json!({"resourceName": "throttled-vm"})),
    )
    .await;
    let gs = wait_for(&env.api, "throttled", WAIT, "retrying", |gs| {
        condition_is(gs, "Reconciling", "True")
            && gs
                .status
                .as_ref()
                .and_then(|s| s.last_error.as_ref())
                .is_some()
    })
    .await;
    assert!(condition_is(&gs, "Ready", "False"));
    assert!(condition_is(&gs, "Stalled", "False"));
    let code = gs
        .status
        .and_then(|s| s.last_error)
        .and_then(|e| e.code)
        .expect("code");
    assert_eq!(code, "Throttling");

    // Backoff, not a hot loop: with 1s doubling to 4s (with jitter down to half), at most
    // 1 + 8/0.5 + 1 calls in 8 s of throttling.
    let start = env.calls("throttled-vm");
    let window = Duration::from_secs(8);
    let until = std::time::Instant::now() + window;
    eventually(window + Duration::from_secs(1), "the window passes", || {
        std::time::Instant::now() >= until
    })
    .await;
    let in_window = env.calls("throttled-vm") - start;
    assert!(
        in_window >= 2,
        "retried only {in_window} times in {window:?}"
    );
    assert!(
        in_window <= 8,
        "{in_window} calls in {window:?}: no backoff"
    );

    // Throttling ends: Ready without help.
    env.sim.set_faults(Faults::default()).expect("faults");
    wait_for(&env.api, "throttled", WAIT, "Ready", ready).await;

    // A 5xx burst on one VM: Reconciling with the Service code, never Stalled.
    apply(
        &env.api,
        guisession("flaky", json!({"resourceName": "flaky-vm"})),
    )
    .await;
    let gs = wait_for(&env.api, "flaky", WAIT, "retrying", |gs| {
        condition_is(gs, "Reconciling", "True")
            && gs
                .status
                .as_ref()
                .and_then(|s| s.last_error.as_ref())
                .is_some()
    })
    .await;
    assert!(condition_is(&gs, "Stalled", "False"));
    assert_eq!(
        gs.status
            .and_then(|s| s.last_error)
            .and_then(|e| e.code)
            .as_deref(),
        Some("Service")
    );
    let mut fixed = ComputerSpec::new("flaky-vm");
    fixed.service_error = false;
    env.sim.upsert_computer(fixed).expect("fix");
    wait_for(&env.api, "flaky", WAIT, "Ready", ready).await;
    wait_for_event(
        &env.client,
        &env.namespace,
        "flaky",
        WAIT,
        |(t, _, note)| t == "Warning" && note.contains("Service"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_between_start_and_status_write_adopts_instead_of_starting_twice() {
    let env = env(
        "adopt",
        SimConfig::default().with_computer(ComputerSpec::new("held-vm").hold_start_response(true)),
    )
    .await;
    let mut first = env.operator(fast_settle);
    apply(
        &env.api,
        guisession("held", json!({"resourceName": "held-vm"})),
    )
    .await;
    // The simulator has performed the start but holds the response: the operator is between
    // the call and the status write. Kill it there.
    eventually(WAIT, "StartGUISession called", || {
        env.starts("held-vm") == 1
    })
    .await;
    first.kill9();
    let gs = env.api.get("held").await.expect("get");
    let status = gs.status.clone().expect("status");
    assert!(
        status.operation.is_none(),
        "the operation must not be recorded yet"
    );
    let fence = status
        .pending_start
        .expect("the fence is written before the call");
    assert_eq!(fence.resource_name, "held-vm");

    env.sim.release_start_responses("held-vm");
    let mut unheld = ComputerSpec::new("held-vm");
    unheld.hold_start_response = false;
    env.sim.upsert_computer(unheld).expect("stop holding");
    let _second = env.operator(fast_settle);
    let gs = wait_for(&env.api, "held", WAIT, "Ready", ready).await;
    assert_eq!(env.starts("held-vm"), 1, "started twice");
    let status = gs.status.expect("status");
    assert_eq!(status.pending_start, None);
    // The adopted session's age counts from the fence, on the operator's clock.
    assert_eq!(status.session_started_at, Some(fence.requested_at));
    wait_for_event(&env.client, &env.namespace, "held", WAIT, |(_, r, _)| {
        r == "SessionAdopted"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_object_adopts_a_session_that_is_already_running() {
    let env = env(
        "adopt-existing",
        SimConfig::default().with_computer(ComputerSpec::new("running-vm")),
    )
    .await;
    let started = env
        .sdk()
        .start_gui_session()
        .resource_name("running-vm")
        .send()
        .await
        .expect("start outside the operator");
    let op_id = started.operations()[0].id().expect("id").to_owned();
    let _op = env.operator(|o| o);
    let gs = env
        .apply_until_ready("running", json!({"resourceName": "running-vm"}))
        .await;
    assert_eq!(
        gs.status
            .and_then(|s| s.operation)
            .and_then(|o| o.id)
            .as_deref(),
        Some(op_id.as_str())
    );
    assert_eq!(env.starts("running-vm"), 1, "only the start made outside");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_leader_reconciles_and_a_standby_takes_over() {
    let env = env(
        "leader",
        SimConfig::default()
            .with_computer(ComputerSpec::new("vm-a"))
            .with_computer(ComputerSpec::new("vm-b")),
    )
    .await;
    let lease = "3s";
    let mut a = env.operator(|o| o.electing(lease).arg("--identity", "replica-a"));
    let mut b = env.operator(|o| o.electing(lease).arg("--identity", "replica-b"));
    env.apply_until_ready("a", json!({"resourceName": "vm-a"}))
        .await;
    let leader_metric = "lightsail_gui_operator_leader";
    let (la, lb) = (a.metric(leader_metric), b.metric(leader_metric));
    assert_eq!(la + lb, 1.0, "exactly one leader: a={la} b={lb}");
    let (leader, standby) = if la == 1.0 {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    let reconciles = r#"lightsail_gui_operator_reconciles_total{result="ok"}"#;
    assert_eq!(standby.metric(reconciles), 0.0, "the standby reconciled");
    assert_eq!(standby.http_get("/readyz").0, 200, "a standby is ready");
    assert_eq!(env.starts("vm-a"), 1);

    // The leader dies without releasing the Lease; the standby takes over once it expires.
    leader.kill9();
    let killed_at = std::time::Instant::now();
    apply(&env.api, guisession("b", json!({"resourceName": "vm-b"}))).await;
    wait_for(&env.api, "b", WAIT, "Ready under the new leader", ready).await;
    let took = killed_at.elapsed();
    assert_eq!(standby.metric(leader_metric), 1.0);
    assert_eq!(
        env.starts("vm-a"),
        1,
        "vm-a started again by the new leader"
    );
    assert_eq!(env.starts("vm-b"), 1);
    eprintln!("takeover to Ready took {took:?} (lease {lease})");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_releases_the_lease_and_exits_cleanly() {
    let env = env("sigterm", SimConfig::default()).await;
    let mut op = env.operator(|o| o.electing("15s").arg("--identity", "only"));
    op.wait_for_log("became leader", WAIT, |_| Some(()));
    let status = op.terminate();
    assert!(status.success(), "exit status {status}");
    let log = op.log_text();
    assert!(log.contains("released the leader Lease"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn suspend_starts_nothing_and_says_so() {
    let env = env(
        "suspend",
        SimConfig::default().with_computer(ComputerSpec::new("paused-vm")),
    )
    .await;
    let _op = env.operator(|o| o);
    apply(
        &env.api,
        guisession(
            "paused",
            json!({"resourceName": "paused-vm", "suspend": true}),
        ),
    )
    .await;
    let gs = wait_for(&env.api, "paused", WAIT, "Suspended", |gs| {
        condition(gs, "Ready").is_some_and(|c| c.reason == "Suspended")
    })
    .await;
    // Settled, as kstatus and GitOps tools need: the suspension is the desired state.
    assert!(condition_is(&gs, "Ready", "True"));
    assert!(condition_is(&gs, "Reconciling", "False"));
    assert!(condition_is(&gs, "Stalled", "False"));
    assert_eq!(env.calls("paused-vm"), 0);
    // Resuming starts a session.
    env.apply_until_ready(
        "paused",
        json!({"resourceName": "paused-vm", "suspend": false}),
    )
    .await;
    assert_eq!(env.starts("paused-vm"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_on_delete_stops_the_session_before_the_object_goes() {
    let env = env(
        "stop-on-delete",
        SimConfig::default()
            .with_computer(ComputerSpec::new("stop-vm"))
            .with_computer(ComputerSpec::new("keep-vm")),
    )
    .await;
    let _op = env.operator(|o| o);
    apply(
        &env.api,
        guisession(
            "stop",
            json!({"resourceName": "stop-vm", "stopOnDelete": true}),
        ),
    )
    .await;
    apply(
        &env.api,
        guisession("keep", json!({"resourceName": "keep-vm"})),
    )
    .await;
    let stop = wait_for(&env.api, "stop", WAIT, "Ready", ready).await;
    let keep = wait_for(&env.api, "keep", WAIT, "Ready", ready).await;
    assert!(
        stop.metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == "lightsail.operators.dev/stop-session"),
        "stopOnDelete carries the finalizer"
    );
    assert!(
        keep.metadata.finalizers.unwrap_or_default().is_empty(),
        "no finalizer without stopOnDelete"
    );

    for name in ["stop", "keep"] {
        env.api
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }
    for name in ["stop", "keep"] {
        wait_deleted(&env.api, name).await;
    }
    let stops = |r| env.sim.calls().count(Some("StopGUISession"), Some(r), None);
    assert_eq!(stops("stop-vm"), 1);
    assert_eq!(stops("keep-vm"), 0);
    let computer = env.sim.computer("stop-vm").expect("computer");
    assert!(
        matches!(computer.session_status.as_str(), "stopping" | "stopped"),
        "session still running: {}",
        computer.session_status
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_on_delete_lets_the_object_go_when_the_computer_is_gone() {
    let env = env(
        "stop-notfound",
        SimConfig::default().with_computer(ComputerSpec::new("gone-vm")),
    )
    .await;
    let _op = env.operator(|o| o);
    env.apply_until_ready(
        "gone",
        json!({"resourceName": "gone-vm", "stopOnDelete": true}),
    )
    .await;
    assert!(env.sim.remove_computer("gone-vm"));
    env.api
        .delete("gone", &DeleteParams::default())
        .await
        .expect("delete");
    wait_deleted(&env.api, "gone").await;
    assert_eq!(
        env.sim
            .calls()
            .count(Some("StopGUISession"), Some("gone-vm"), None),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn startup_fails_fast_with_a_clear_error_on_a_bad_selector() {
    let env = env("bad-selector", SimConfig::default()).await;
    let cp = control_plane();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lightsail-gui-operator"))
        .args([
            "run",
            "--leader-elect",
            "false",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .args(["--namespace", &env.namespace, "--selector", "a in (("])
        .env("KUBECONFIG", &cp.kubeconfig)
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot list GuiSessions"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn spec_region_selects_the_regional_client() {
    let env = env(
        "region",
        SimConfig::default().with_computer(ComputerSpec::new("eu-vm").in_region("eu-west-1")),
    )
    .await;
    let _op = env.operator(|o| o);
    apply(
        &env.api,
        guisession(
            "eu",
            json!({"resourceName": "eu-vm", "region": "eu-west-1"}),
        ),
    )
    .await;
    // Without spec.region the operator's default (us-east-1) is used, where it does not exist.
    apply(
        &env.api,
        guisession("default-region", json!({"resourceName": "eu-vm"})),
    )
    .await;
    let gs = wait_for(&env.api, "eu", WAIT, "Ready", ready).await;
    let location = gs
        .status
        .and_then(|s| s.operation)
        .and_then(|o| o.location)
        .expect("location");
    assert_eq!(location.region_name.as_deref(), Some("eu-west-1"));
    let gs = wait_for(&env.api, "default-region", WAIT, "Stalled", stalled).await;
    assert_eq!(
        condition(&gs, "Stalled").map(|c| c.reason.as_str()),
        Some("NotFound")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_that_loses_its_lease_stops_reconciling() {
    use k8s_openapi::api::coordination::v1::Lease;
    let env = env(
        "lease-lost",
        SimConfig::default().with_computer(ComputerSpec::new("late-vm")),
    )
    .await;
    let mut op = env.operator(|o| o.electing("3s").arg("--identity", "victim"));
    op.wait_for_log("became leader", WAIT, |_| Some(()));

    // Someone else takes the Lease and keeps renewing it, as another replica holding it would.
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), &env.namespace);
    let thief = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            let now =
                k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(jiff::Timestamp::now());
            let Ok(mut lease) = leases.get("lightsail-gui-operator").await else {
                continue;
            };
            let spec = lease.spec.get_or_insert_with(Default::default);
            if spec.holder_identity.as_deref() != Some("thief") {
                spec.holder_identity = Some("thief".into());
                spec.acquire_time = Some(now.clone());
            }
            spec.renew_time = Some(now);
            spec.lease_duration_seconds = Some(3);
            // A conflict with the victim's own renewal is retried on the next tick.
            let _ = leases
                .replace("lightsail-gui-operator", &Default::default(), &lease)
                .await;
        }
    });
    op.wait_for_log("lost leadership", WAIT, |_| Some(()));
    assert_eq!(op.metric("lightsail_gui_operator_leader"), 0.0);

    // No reconciling any more: a new GuiSession stays untouched.
    apply(
        &env.api,
        guisession("late", json!({"resourceName": "late-vm"})),
    )
    .await;
    assert!(
        wait_for_no_change(&env.api, "late", Duration::from_secs(5)).await,
        "reconciled without the lease"
    );
    let gs = env.api.get("late").await.expect("get");
    assert!(gs.status.is_none(), "status written without the lease");
    assert_eq!(env.calls("late-vm"), 0);
    assert_eq!(op.metric("lightsail_gui_operator_leader"), 0.0);
    thief.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guisession_moves_between_shards_without_a_second_start() {
    let env = env(
        "shards",
        SimConfig::default().with_computer(ComputerSpec::new("shard-vm")),
    )
    .await;
    // The default instance (every GuiSession not labelled for shard blue) and shard blue.
    let default = env.operator(|o| o.arg("--shards", "blue").arg("--min-session-age", "1s"));
    let blue = env.operator(|o| o.arg("--shard", "blue").arg("--min-session-age", "1s"));
    let reconciles =
        |op: &Operator| op.metric(r#"lightsail_gui_operator_reconciles_total{result="ok"}"#);
    let first = env
        .apply_until_ready("moving", json!({"resourceName": "shard-vm"}))
        .await;
    assert_eq!(env.starts("shard-vm"), 1);
    assert_eq!(
        reconciles(&blue),
        0.0,
        "blue does not see unlabelled objects"
    );

    // Move it to shard blue: blue takes the running session over, nobody starts another.
    env.api
        .patch(
            "moving",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"sharding.fluxcd.io/key": "blue"}}})),
        )
        .await
        .expect("label for shard blue");
    eventually(WAIT, "blue reconciles the moved object", || {
        reconciles(&blue) >= 1.0
    })
    .await;
    let default_before = reconciles(&default);
    // A spec edit is for blue alone now: it renews (a shorter maxSessionAge), default stays out.
    env.api
        .patch(
            "moving",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"maxSessionAge": "3s"}})),
        )
        .await
        .expect("edit");
    let renewed = wait_for(&env.api, "moving", WAIT, "renewed by blue", |gs| {
        ready(gs)
            && gs.status.as_ref().and_then(|s| s.session_started_at)
                != first.status.as_ref().and_then(|s| s.session_started_at)
    })
    .await;
    assert!(renewed.status.is_some());
    assert_eq!(
        env.starts("shard-vm"),
        2,
        "one start before the move, one renewal after it: never two in a window"
    );
    assert_eq!(
        reconciles(&default),
        default_before,
        "the default instance no longer reconciles it"
    );
    // Blue made the renewal (its log says so once the Event is out, just after the status).
    eventually(WAIT, "blue to log the renewal", || {
        blue.log_text().contains("renewed")
    })
    .await;
}

/// The families a scrape of `/metrics` exports, as the names a query uses (counters with
/// `_total`) and their types.
fn exported_metrics(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| match kind {
            "counter" => (format!("{name}_total"), kind.to_owned()),
            _ => (name.to_owned(), kind.to_owned()),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_exported_metric_is_documented_and_every_documented_one_exported() {
    let env = env(
        "metrics",
        SimConfig::default().with_computer(ComputerSpec::new("metrics-vm")),
    )
    .await;
    let op = env.operator(|o| o.arg("--min-session-age", "1s"));
    // A session that is renewed, and one that stalls (NotFound): every family gets a sample.
    apply(
        &env.api,
        guisession(
            "renewed",
            json!({"resourceName": "metrics-vm", "maxSessionAge": "3s"}),
        ),
    )
    .await;
    apply(
        &env.api,
        guisession("missing", json!({"resourceName": "metrics-missing"})),
    )
    .await;
    wait_for(&env.api, "missing", WAIT, "Stalled", stalled).await;
    let mut documented = support::documented_metrics();
    documented.sort();
    assert!(documented.len() >= 18, "{documented:?}");
    let mut exported = Vec::new();
    eventually(WAIT, "every documented metric exported", || {
        let (_, text) = op.http_get("/metrics");
        exported = exported_metrics(&text);
        exported.sort();
        documented.iter().all(|d| exported.contains(d))
    })
    .await;
    assert_eq!(
        exported, documented,
        "README's metrics table and /metrics differ (name and type)"
    );
    // A renewal recorded is a lateness observed.
    eventually(WAIT, "a renewal's lateness observed", || {
        op.metric("lightsail_gui_operator_renewal_lateness_seconds_count") >= 1.0
    })
    .await;
    assert!(env.starts("metrics-vm") >= 2);
    assert!(
        op.metric("lightsail_gui_operator_last_successful_reconcile_timestamp_seconds")
            > 1_700_000_000.0
    );
}
