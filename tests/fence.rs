//! Exactly one StartGUISession per window under faults, without trusting leader election: the
//! fenced start against the real apiserver and the simulator, with the operator binary as a
//! process (several of them at once), and one test per hole the fence closes.

mod support;

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, Patch, PatchParams};
use lightsail_gui_operator::guisession::types::GuiSession;
use lightsail_sim::{ComputerSpec, Faults, OUTCOME_OK, SimConfig};
use serde_json::json;
use support::env::*;
use support::operator::*;

/// The times of the StartGUISession calls for `resource` that started a session.
fn ok_starts(env: &Env, resource: &str) -> Vec<Timestamp> {
    let log = env.sim.call_log();
    assert_eq!(log.dropped, 0, "the simulator's call log overflowed");
    log.matching(Some("StartGUISession"), Some(resource), Some(OUTCOME_OK))
        .map(|e| e.time)
        .collect()
}

/// Asserts that no two sessions of `resource` started in one window. A renewal's fence is at
/// least `max_age` after the previous one, and each call went out at most `budget` (plus the
/// fence's whole-second rounding) after its fence: consecutive starts are at least
/// `max_age - budget - 1 s` apart. A duplicate start is seconds or less after its twin.
fn assert_one_start_per_window(env: &Env, resource: &str, max_age: Duration, budget: Duration) {
    let starts = ok_starts(env, resource);
    let least = SignedDuration::try_from(max_age - budget - Duration::from_secs(1))
        .expect("a small duration");
    for pair in starts.windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        assert!(
            gap >= least,
            "{resource}: two starts in one window, {gap:#} apart (at least {least:#} expected): {starts:?}"
        );
    }
}

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("vm-{i:03}")).collect()
}

/// The headline test: three operators, leader election off, 200 GuiSessions renewing every
/// 20 s under throttling and 5xx faults, until each has renewed five times.
#[tokio::test(flavor = "multi_thread")]
async fn three_operators_without_leader_election_start_once_per_window_under_faults() {
    const N: usize = 200;
    const RENEWALS: usize = 5;
    let max_age = Duration::from_secs(20);
    let vms = names(N);
    let sim = vms.iter().fold(
        SimConfig::default().with_faults(Faults {
            throttle_rate: 0.05,
            service_error_rate: 0.03,
            ..Faults::default()
        }),
        |sim, vm| sim.with_computer(ComputerSpec::new(vm.as_str())),
    );
    let env = env("three-operators", sim).await;
    let operators: Vec<Operator> = (0..3)
        .map(|i| {
            env.operator(|o| {
                fast_settle(o)
                    .arg("--identity", &format!("replica-{i}"))
                    .arg("--min-session-age", "5s")
                    .arg("--rate-limit", "500")
                    .arg("--rate-burst", "500")
                    .arg("--retry-initial", "500ms")
                    .arg("--retry-max", "4s")
                    .arg("--stalled-retry", "5s")
                    .arg("--poll-initial", "500ms")
                    .arg("--poll-max", "2s")
                    .log("info")
            })
        })
        .collect();
    for vm in &vms {
        apply(
            &env.api,
            guisession(vm, json!({"resourceName": vm, "maxSessionAge": "20s"})),
        )
        .await;
    }
    // Renewals happen for as long as it takes every object to have started RENEWALS + 1
    // sessions (about two minutes).
    eventually(
        Duration::from_secs(300),
        "every object renewed five times",
        || vms.iter().all(|vm| ok_starts(&env, vm).len() > RENEWALS),
    )
    .await;
    // settle 8 s - lightsail timeout 5 s - 1 s, as the operator computes it.
    let budget = Duration::from_secs(2);
    for vm in &vms {
        assert_one_start_per_window(&env, vm, max_age, budget);
    }
    let conflicts: f64 = operators
        .iter()
        .map(|o| o.metric("lightsail_gui_operator_status_conflicts_total"))
        .sum();
    let writes: f64 = operators
        .iter()
        .map(|o| o.metric("lightsail_gui_operator_status_writes_total"))
        .sum();
    let starts: usize = vms.iter().map(|vm| ok_starts(&env, vm).len()).sum();
    let failed_calls = env.sim.calls().count(None, None, None) as f64
        - env.sim.calls().count(None, None, Some(OUTCOME_OK)) as f64;
    eprintln!(
        "{N} objects, 3 operators: {starts} sessions started, {writes} status writes, \
         {conflicts} conflicts ({:.2} per object per session), {failed_calls} faulted calls",
        conflicts / starts as f64
    );
    assert!(failed_calls > 0.0, "the faults must have struck");
}

/// Holds the simulator's answer to StartGUISession for `vm`, lets an operator call it, and
/// kills that operator before it can record the operation: a start whose only trace is the
/// fence. Returns the GuiSession as the killed operator left it.
async fn kill_9_after_the_call(env: &Env, name: &str, spec: serde_json::Value) -> GuiSession {
    let vm = spec["resourceName"]
        .as_str()
        .expect("resourceName")
        .to_owned();
    env.sim
        .upsert_computer(ComputerSpec::new(vm.as_str()).hold_start_response(true))
        .expect("hold");
    let mut first = env.operator(fast_settle);
    apply(&env.api, guisession(name, spec)).await;
    eventually(WAIT, "StartGUISession called", || env.starts(&vm) == 1).await;
    first.kill9();
    let gs = env.api.get(name).await.expect("get");
    let status = gs.status.clone().expect("status");
    assert!(
        status.pending_start.is_some(),
        "the fence precedes the call"
    );
    assert!(status.operation.is_none());
    // The call did start a session; its answer is lost with the process.
    assert!(env.sim.release_start_responses(&vm));
    gs
}

#[tokio::test(flavor = "multi_thread")]
async fn a_terminal_lookup_error_after_kill_9_keeps_the_fence_and_adopts_later() {
    let env = env("lookup-error", SimConfig::default()).await;
    kill_9_after_the_call(&env, "held", json!({"resourceName": "held-vm"})).await;
    // Every call for the computer now fails terminally: the lookup stalls the object.
    let mut denied = ComputerSpec::new("held-vm");
    denied.access_denied = true;
    env.sim.upsert_computer(denied).expect("deny");
    let _second = env.operator(|o| fast_settle(o).arg("--stalled-retry", "3s"));
    let gs = wait_for(&env.api, "held", WAIT, "Stalled", |gs| {
        condition_is(gs, "Stalled", "True")
    })
    .await;
    assert!(
        gs.status
            .as_ref()
            .and_then(|s| s.pending_start.as_ref())
            .is_some(),
        "the Stalled write must not erase the fence"
    );
    env.sim
        .upsert_computer(ComputerSpec::new("held-vm"))
        .expect("allow again");
    wait_for(&env.api, "held", WAIT, "Ready", ready).await;
    assert_eq!(env.starts("held-vm"), 1, "a blind start after the stall");
}

#[tokio::test(flavor = "multi_thread")]
async fn suspend_and_resume_with_a_pending_start_adopts_it() {
    let env = env("suspend-pending", SimConfig::default()).await;
    kill_9_after_the_call(&env, "held", json!({"resourceName": "held-vm"})).await;
    env.sim
        .upsert_computer(ComputerSpec::new("held-vm"))
        .expect("stop holding");
    apply(
        &env.api,
        guisession("held", json!({"resourceName": "held-vm", "suspend": true})),
    )
    .await;
    let _second = env.operator(fast_settle);
    let gs = wait_for(&env.api, "held", WAIT, "Suspended", |gs| {
        condition(gs, "Ready").is_some_and(|c| c.reason == "Suspended")
            && gs.status.as_ref().and_then(|s| s.observed_generation) == gs.metadata.generation
    })
    .await;
    assert!(
        gs.status
            .as_ref()
            .and_then(|s| s.pending_start.as_ref())
            .is_some(),
        "suspending must not erase the fence"
    );
    apply(
        &env.api,
        guisession("held", json!({"resourceName": "held-vm", "suspend": false})),
    )
    .await;
    wait_for(&env.api, "held", WAIT, "Ready", ready).await;
    assert_eq!(
        env.starts("held-vm"),
        1,
        "resuming started a second session"
    );
    wait_for_event(&env.client, &env.namespace, "held", WAIT, |(_, r, _)| {
        r == "SessionAdopted"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn editing_the_resource_or_region_moves_the_session() {
    let env = env(
        "spec-edits",
        SimConfig::default()
            // Operations run for a while: the first edit comes while one is running.
            .with_settle_time(Duration::from_secs(10))
            .with_computer(ComputerSpec::new("vm-a"))
            .with_computer(ComputerSpec::new("vm-b"))
            .with_computer(ComputerSpec::new("vm-eu").in_region("eu-central-1")),
    )
    .await;
    let _op = env.operator(|o| o);
    apply(
        &env.api,
        guisession("desk", json!({"resourceName": "vm-a"})),
    )
    .await;
    wait_for(&env.api, "desk", WAIT, "vm-a's operation running", |gs| {
        gs.status
            .as_ref()
            .and_then(|s| s.operation.as_ref())
            .is_some()
    })
    .await;
    // Another computer in another Region while vm-a's operation still runs: that operation
    // is not polled in the new Region (where it does not exist); the new computer gets a
    // session of its own.
    let gs = env
        .apply_until_ready(
            "desk",
            json!({"resourceName": "vm-eu", "region": "eu-central-1"}),
        )
        .await;
    let status = gs.status.expect("status");
    assert_eq!(status.resource_name.as_deref(), Some("vm-eu"));
    assert_eq!(status.region.as_deref(), Some("eu-central-1"));
    assert_eq!(
        status
            .operation
            .and_then(|o| o.location)
            .and_then(|l| l.region_name)
            .as_deref(),
        Some("eu-central-1")
    );
    wait_for_event(&env.client, &env.namespace, "desk", WAIT, |(_, r, _)| {
        r == "ResourceChanged"
    })
    .await;
    // Only the name, back in the default Region.
    let gs = env
        .apply_until_ready("desk", json!({"resourceName": "vm-b"}))
        .await;
    let status = gs.status.expect("status");
    assert_eq!(status.resource_name.as_deref(), Some("vm-b"));
    assert_eq!(
        status.operation.and_then(|o| o.resource_name).as_deref(),
        Some("vm-b"),
        "Ready must describe the new computer's session"
    );
    assert_eq!(env.starts("vm-a"), 1);
    assert_eq!(env.starts("vm-eu"), 1);
    assert_eq!(env.starts("vm-b"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_session_is_not_adopted_when_the_object_is_recreated() {
    let env = env(
        "stop-recreate",
        SimConfig::default().with_computer(ComputerSpec::new("lab-vm")),
    )
    .await;
    let _op = env.operator(|o| o);
    let spec = json!({"resourceName": "lab-vm", "stopOnDelete": true});
    env.apply_until_ready("lab", spec.clone()).await;
    env.api
        .delete("lab", &DeleteParams::default())
        .await
        .expect("delete");
    eventually(WAIT, "the session stopped", || {
        env.sim
            .calls()
            .count(Some("StopGUISession"), Some("lab-vm"), Some(OUTCOME_OK))
            == 1
    })
    .await;
    wait_deleted(&env.api, "lab").await;
    let gs = env.apply_until_ready("lab", spec).await;
    assert_eq!(env.starts("lab-vm"), 2, "the stopped session was adopted");
    assert_eq!(
        gs.status
            .and_then(|s| s.operation)
            .and_then(|o| o.operation_type)
            .as_deref(),
        Some("StartGUISession")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_clock_two_hours_ahead_starts_one_session_not_a_loop() {
    // Lightsail's clock two hours behind the node's: every createdAt looks two hours old.
    let env = env(
        "clock-skew",
        SimConfig::default()
            .with_computer(ComputerSpec::new("skew-vm"))
            .with_clock_offset(SignedDuration::from_hours(-2)),
    )
    .await;
    let _op = env.operator(|o| o);
    let gs = env
        .apply_until_ready("skew", json!({"resourceName": "skew-vm"}))
        .await;
    let status = gs.status.expect("status");
    let started = status.session_started_at.expect("sessionStartedAt");
    let now = Timestamp::now();
    assert!(
        now.duration_since(started) < SignedDuration::from_mins(5),
        "session age must be on the operator's clock: started {started}, now {now}"
    );
    assert_eq!(
        status.session_expires_at,
        Some(started + SignedDuration::from_hours(1))
    );
    // Were the age taken from createdAt, every reconcile would start anew.
    assert!(
        wait_for_no_change(&env.api, "skew", Duration::from_secs(5)).await,
        "the status kept changing"
    );
    assert_eq!(env.starts("skew-vm"), 1);
}

/// A GuiSession `name` with `stopOnDelete`, Ready with a session of `vm`.
async fn ready_with_stop_on_delete(name: &str, vm: &str) -> (Env, Operator) {
    let env = env(
        name,
        SimConfig::default().with_computer(ComputerSpec::new(vm)),
    )
    .await;
    let op = env.operator(|o| o);
    env.apply_until_ready(name, json!({"resourceName": vm, "stopOnDelete": true}))
        .await;
    (env, op)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_role_does_not_hold_a_deleted_object_forever() {
    let (env, _op) = ready_with_stop_on_delete("revoked", "gone-vm").await;
    let mut denied = ComputerSpec::new("gone-vm");
    denied.access_denied = true;
    env.sim.upsert_computer(denied).expect("revoke");
    env.api
        .delete("revoked", &DeleteParams::default())
        .await
        .expect("delete");
    let events = wait_for_event(&env.client, &env.namespace, "revoked", WAIT, |(t, r, _)| {
        t == "Warning" && r == "StopFailed"
    })
    .await;
    let note = &events.last().expect("event").2;
    assert!(note.contains("AccessDenied"), "{note}");
    wait_deleted(&env.api, "revoked").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_skip_stop_annotation_lets_an_object_go_without_a_stop() {
    let (env, _op) = ready_with_stop_on_delete("kept", "kept-vm").await;
    let annotate =
        json!({"metadata": {"annotations": {"lightsail.operators.dev/skip-stop": "true"}}});
    env.api
        .patch("kept", &PatchParams::default(), &Patch::Merge(&annotate))
        .await
        .expect("annotate");
    env.api
        .delete("kept", &DeleteParams::default())
        .await
        .expect("delete");
    wait_deleted(&env.api, "kept").await;
    assert_eq!(
        env.sim
            .calls()
            .count(Some("StopGUISession"), Some("kept-vm"), None),
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_credentials_at_all_stalls_with_where_they_come_from() {
    let env = env(
        "no-credentials",
        SimConfig::default().with_computer(ComputerSpec::new("any-vm")),
    )
    .await;
    let op = env.operator(|mut o| {
        o.credentials = false;
        o
    });
    apply(
        &env.api,
        guisession("nocreds", json!({"resourceName": "any-vm"})),
    )
    .await;
    let gs = wait_for(&env.api, "nocreds", WAIT, "Stalled", |gs| {
        condition_is(gs, "Stalled", "True")
    })
    .await;
    let stalled = condition(&gs, "Stalled").expect("Stalled");
    assert_eq!(stalled.reason, "NoCredentials");
    assert!(
        stalled.message.contains("AWS_ACCESS_KEY_ID"),
        "{}",
        stalled.message
    );
    assert_eq!(env.calls("any-vm"), 0, "nothing reached Lightsail");
    assert!(!op.log_text().contains(SIM_SECRET_ACCESS_KEY));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operation_answered_succeeded_without_is_terminal_is_finished_and_renewed() {
    let mut quiet = ComputerSpec::new("quiet-vm");
    quiet.omit_is_terminal = true;
    let env = env("no-is-terminal", SimConfig::default().with_computer(quiet)).await;
    let _op = env.operator(|o| o.arg("--min-session-age", "2s"));
    let first = env
        .apply_until_ready(
            "quiet",
            json!({"resourceName": "quiet-vm", "maxSessionAge": "3s"}),
        )
        .await;
    let operation = first
        .status
        .as_ref()
        .and_then(|s| s.operation.clone())
        .expect("operation");
    assert_eq!(operation.is_terminal, None, "the simulator left it out");
    assert_eq!(
        operation.status,
        Some(lightsail_gui_operator::guisession::types::OperationStatus::Succeeded)
    );
    // Finished by its status alone: renewed when the session expires, not polled forever.
    let started = first.status.and_then(|s| s.session_started_at);
    wait_for(&env.api, "quiet", WAIT, "renewed", |gs| {
        ready(gs) && gs.status.as_ref().and_then(|s| s.session_started_at) != started
    })
    .await;
    assert_eq!(env.starts("quiet-vm"), 2);
}
