//! The computer behind the session, end to end (the operator binary, a real kube-apiserver +
//! etcd, the Lightsail simulator with instance states): a stopped computer started when its
//! window opens and stopped when it closes, a stop by the idle rule respected, a computer the
//! operator may not start, and three unelected replicas starting each computer once.

mod support;

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use lightsail_gui_operator::guisession::types::GuiSession;
use lightsail_sim::{ComputerSpec, InstanceState, SimConfig};
use serde_json::json;
use support::env::*;
use support::operator::*;
use support::verdicts::{argocd_health, kstatus};

/// How long the simulator's computers take to start and to stop.
const STARTING: Duration = Duration::from_secs(2);
const STOPPING: Duration = Duration::from_secs(1);

fn plus(t: Timestamp, secs: i64) -> Timestamp {
    t.checked_add(jiff::SignedDuration::from_secs(secs))
        .expect("in range")
}

/// The next whole second plus `secs`.
fn soon(secs: i64) -> Timestamp {
    plus(
        Timestamp::from_second(Timestamp::now().as_second()).expect("ts"),
        secs,
    )
}

/// A schedule open exactly in `windows` ([open, close), second precision): a window every
/// minute, cut by exclusions everywhere else.
fn schedule(windows: &[(Timestamp, Timestamp)]) -> serde_json::Value {
    let mut exclusions = Vec::new();
    let mut from = "2000-01-01T00:00:00Z".to_owned();
    for (open, close) in windows {
        exclusions.push(json!({"start": from, "end": open.to_string()}));
        from = close.to_string();
    }
    exclusions.push(json!({"start": from, "end": "2100-01-01T00:00:00Z"}));
    json!({
        "windows": [{"start": "* * * * *", "duration": "1m"}],
        "exclusions": exclusions,
    })
}

fn computer(name: &str) -> ComputerSpec {
    ComputerSpec::new(name)
        .starting_time(STARTING)
        .stopping_time(STOPPING)
}

fn reason(gs: &GuiSession, type_: &str) -> Option<String> {
    condition(gs, type_)
        .filter(|c| c.status == "True")
        .map(|c| c.reason.clone())
}

/// Ready with a session: not a settled window or a respected stop (Ready too).
fn session_ready(gs: &GuiSession) -> bool {
    ready(gs) && reason(gs, "Ready").as_deref() == Some("SessionActive")
}

fn computer_state(gs: &GuiSession) -> Option<String> {
    gs.status.as_ref()?.computer.as_ref()?.state.clone()
}

/// Times of the calls of `action` about `resource` (any outcome), oldest first.
fn calls(env: &Env, action: &str, resource: &str) -> Vec<Timestamp> {
    env.sim
        .call_log()
        .matching(Some(action), Some(resource), None)
        .map(|e| e.time)
        .collect()
}

/// GetInstanceState and GetInstance calls about `resource` (counted, not logged).
fn reads(env: &Env, resource: &str) -> u64 {
    let counts = env.sim.calls();
    counts.count(Some("GetInstanceState"), Some(resource), None)
        + counts.count(Some("GetInstance"), Some(resource), None)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_computer_is_started_once_when_its_window_opens_then_gets_one_session() {
    let env = env(
        "computer-open",
        SimConfig::default().with_computer(computer("lab-vm").stopped()),
    )
    .await;
    let _op = env.operator(|o| o.arg("--access-secrets", "true"));
    let opens = soon(6);
    let closes = plus(opens, 300);
    apply(
        &env.api,
        guisession(
            "lab",
            json!({
                "resourceName": "lab-vm",
                "access": {},
                "schedule": schedule(&[(opens, closes)]),
                "computer": {"startIfStopped": true},
            }),
        ),
    )
    .await;
    // Before the window: settled, nothing started.
    wait_for(&env.api, "lab", WAIT, "OutsideSchedule", |gs| {
        reason(gs, "Ready").as_deref() == Some("OutsideSchedule")
    })
    .await;
    // While the computer starts: in progress for kstatus and Argo CD, not failed.
    let starting = wait_for(&env.api, "lab", WAIT, "ComputerStarting", |gs| {
        reason(gs, "Reconciling").as_deref() == Some("ComputerStarting")
    })
    .await;
    let object = serde_json::to_value(&starting).expect("json");
    assert_eq!(kstatus(&object).0, "InProgress");
    assert_eq!(argocd_health(&object).0, "Progressing");

    let gs = wait_for(&env.api, "lab", WAIT, "Ready", session_ready).await;
    assert_eq!(computer_state(&gs).as_deref(), Some("running"));
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.namespace);
    let secret = secrets.get("lab-access").await.expect("the access Secret");
    assert!(secret.data.is_some_and(|d| d.contains_key("primaryUrl")));

    let instance_starts = calls(&env, "StartInstance", "lab-vm");
    let session_starts = calls(&env, "StartGUISession", "lab-vm");
    assert_eq!(instance_starts.len(), 1, "one StartInstance");
    assert_eq!(
        session_starts.len(),
        1,
        "one StartGUISession, no attempt before"
    );
    assert!(instance_starts[0] >= opens, "started inside the window");
    let running_from = env
        .sim
        .computer("lab-vm")
        .expect("computer")
        .billed_intervals[0]
        .start;
    assert!(
        session_starts[0] >= plus(running_from, STARTING.as_secs() as i64),
        "the session ({}) waited for the computer to run (started {running_from})",
        session_starts[0]
    );
    let reads = reads(&env, "lab-vm");
    assert!(
        reads >= 2,
        "read before the start and again before the session: {reads}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn three_windows_start_and_stop_the_computer_once_each_and_meter_no_time_outside() {
    // Windows of 14 s with 12 s between them.
    let first = soon(8);
    let windows: Vec<(Timestamp, Timestamp)> = (0..3)
        .map(|i| (plus(first, i * 26), plus(first, i * 26 + 14)))
        .collect();
    let mut vm = computer("night-vm").stopped();
    for (open, close) in &windows {
        vm = vm.meter_window(*open, *close);
    }
    let env = env("computer-windows", SimConfig::default().with_computer(vm)).await;
    // A session per window, however close the windows: the guard rail is lowered.
    let op = env.operator(|o| o.arg("--min-session-age", "1s"));
    apply(
        &env.api,
        guisession(
            "night",
            json!({
                "resourceName": "night-vm",
                "schedule": schedule(&windows),
                "computer": {"startIfStopped": true, "stopAtWindowEnd": true},
            }),
        ),
    )
    .await;
    let last_close = windows[2].1;
    let deadline = Duration::from_secs(
        u64::try_from((last_close - Timestamp::now()).get_seconds()).unwrap_or(0),
    ) + WAIT;
    eventually(
        deadline,
        "three StopInstance and a stopped computer",
        || {
            calls(&env, "StopInstance", "night-vm").len() == 3
                && env
                    .sim
                    .computer("night-vm")
                    .is_some_and(|c| c.state == InstanceState::Stopped)
        },
    )
    .await;
    let gs = wait_for(
        &env.api,
        "night",
        WAIT,
        "settled after the last window",
        |gs| reason(gs, "Ready").as_deref() == Some("OutsideSchedule"),
    )
    .await;
    let object = serde_json::to_value(&gs).expect("json");
    assert_eq!(kstatus(&object).0, "Current", "a closed window is settled");
    assert_eq!(argocd_health(&object).0, "Healthy");

    let log = env.sim.call_log();
    let of = |action: &str| -> Vec<Timestamp> {
        log.matching(Some(action), Some("night-vm"), None)
            .map(|e| e.time)
            .collect()
    };
    let (instance_starts, session_starts) = (of("StartInstance"), of("StartGUISession"));
    let (session_stops, instance_stops) = (of("StopGUISession"), of("StopInstance"));
    for (what, times) in [
        ("StartInstance", &instance_starts),
        ("StartGUISession", &session_starts),
        ("StopGUISession", &session_stops),
        ("StopInstance", &instance_stops),
    ] {
        assert_eq!(times.len(), 3, "{what} once per window: {times:?}");
    }
    for (i, (open, close)) in windows.iter().enumerate() {
        assert!(instance_starts[i] >= *open && instance_starts[i] < *close);
        assert!(session_starts[i] > instance_starts[i] && session_starts[i] < *close);
        assert!(session_stops[i] >= *close, "the session stops at the close");
        assert!(
            instance_stops[i] >= session_stops[i],
            "the computer stops after its session"
        );
    }
    assert!(
        log.matching(Some("StopInstance"), None, None)
            .all(|e| e.force != Some(true)),
        "never forced"
    );
    let meter = env.sim.computer("night-vm").expect("computer");
    let grace_per_close = STOPPING.as_secs_f64() + 5.0;
    eprintln!(
        "meter: {:.1} s running inside the windows, {:.1} s outside ({:.1} s per close)",
        meter.running_seconds_inside_windows,
        meter.running_seconds_outside_windows,
        meter.running_seconds_outside_windows / 3.0
    );
    assert!(
        meter.running_seconds_outside_windows <= 3.0 * grace_per_close,
        "running time outside the windows beyond the grace: {meter:?}"
    );
    assert_eq!(
        op.metric("lightsail_gui_operator_computer_starts_total"),
        3.0
    );
    assert_eq!(
        op.metric("lightsail_gui_operator_computer_stops_total"),
        3.0
    );
    wait_for_event(&env.client, &env.namespace, "night", WAIT, |(_, r, _)| {
        r == "ComputerStopped"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_by_the_idle_rule_inside_a_window_is_respected_until_the_next_window() {
    let env = env(
        "computer-idle",
        SimConfig::default().with_computer(computer("idle-vm")),
    )
    .await;
    let _op = env.operator(|o| o.arg("--min-session-age", "1s"));
    let first = (soon(4), soon(40));
    let second = (soon(52), soon(300));
    apply(
        &env.api,
        guisession(
            "idle",
            json!({
                "resourceName": "idle-vm",
                // A renewal every 6 s: the first one after the stop finds the computer stopped.
                "maxSessionAge": "6s",
                "schedule": schedule(&[first, second]),
                "computer": {
                    "startIfStopped": true,
                    "idleStop": {"threshold": 5, "duration": "30m"},
                },
            }),
        ),
    )
    .await;
    let gs = wait_for(
        &env.api,
        "idle",
        WAIT,
        "Ready in the first window",
        session_ready,
    )
    .await;
    let idle = gs
        .status
        .as_ref()
        .and_then(|s| s.computer.as_ref())
        .and_then(|c| c.idle_stop.clone())
        .expect("status.computer.idleStop");
    assert_eq!(
        (idle.threshold.as_deref(), idle.duration.as_deref()),
        (Some("5"), Some("30"))
    );
    let rule = env.sim.computer("idle-vm").and_then(|c| c.idle_stop);
    assert_eq!(
        rule.map(|r| (r.threshold, r.duration)),
        Some(("5".to_owned(), "30".to_owned()))
    );
    env.sim
        .trigger_idle_stop("idle-vm")
        .expect("the idle rule fires");
    let gs = wait_for(&env.api, "idle", WAIT, "ComputerIdleStopped", |gs| {
        reason(gs, "Ready").as_deref() == Some("ComputerIdleStopped")
    })
    .await;
    let object = serde_json::to_value(&gs).expect("json");
    assert_eq!(kstatus(&object).0, "Current", "a respected stop is settled");
    assert!(Timestamp::now() < first.1, "seen inside the first window");
    // No restart in this window; the next one starts it again.
    let gs = wait_for(&env.api, "idle", WAIT, "Ready in the second window", |gs| {
        session_ready(gs) && Timestamp::now() >= second.0
    })
    .await;
    assert_eq!(computer_state(&gs).as_deref(), Some("running"));
    let starts = calls(&env, "StartInstance", "idle-vm");
    assert_eq!(
        starts.len(),
        1,
        "one start, in the second window: {starts:?}"
    );
    assert!(starts[0] >= second.0);
    assert_eq!(
        calls(&env, "EnableAddOn", "idle-vm").len(),
        1,
        "the rule is set once, then left alone while it matches"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_computer_the_operator_may_not_start_is_a_condition_not_a_call() {
    let env = env(
        "computer-stopped",
        SimConfig::default().with_computer(computer("off-vm").stopped()),
    )
    .await;
    let _op = env.operator(|o| o.arg("--computer-recheck-initial", "1s"));
    apply(
        &env.api,
        guisession("off", json!({"resourceName": "off-vm"})),
    )
    .await;
    let gs = wait_for(&env.api, "off", WAIT, "Stalled ComputerStopped", |gs| {
        reason(gs, "Stalled").as_deref() == Some("ComputerStopped")
    })
    .await;
    let message = condition(&gs, "Stalled").map(|c| c.message.clone());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("off-vm") && m.contains("startIfStopped")),
        "{message:?}"
    );
    assert_eq!(
        kstatus(&serde_json::to_value(&gs).expect("json")).0,
        "Failed"
    );
    wait_for_event(&env.client, &env.namespace, "off", WAIT, |(_, r, _)| {
        r == "ComputerStopped"
    })
    .await;
    // It is read again, with backoff; nothing is started.
    eventually(WAIT, "a second read", || reads(&env, "off-vm") >= 2).await;
    assert!(calls(&env, "StartInstance", "off-vm").is_empty());
    assert!(calls(&env, "StartGUISession", "off-vm").is_empty());
    // Someone starts it by hand: the session follows.
    env.sim
        .set_computer_state("off-vm", InstanceState::Running)
        .expect("set state");
    wait_for(&env.api, "off", WAIT, "Ready once it runs", session_ready).await;
    assert!(calls(&env, "StartInstance", "off-vm").is_empty());
    assert_eq!(calls(&env, "StartGUISession", "off-vm").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn three_unelected_replicas_start_each_of_100_stopped_computers_once() {
    const N: usize = 100;
    let names: Vec<String> = (0..N).map(|i| format!("fleet-{i:03}")).collect();
    let config = names.iter().fold(SimConfig::default(), |c, name| {
        c.with_computer(computer(name).stopped())
    });
    let env = env("computer-fleet", config).await;
    let _ops: Vec<_> = (0..3).map(|_| env.operator(|o| o)).collect();
    // The window opens once every replica is watching.
    let opens = soon(15);
    for name in &names {
        apply(
            &env.api,
            guisession(
                name,
                json!({
                    "resourceName": name,
                    "schedule": schedule(&[(opens, plus(opens, 3600))]),
                    "computer": {"startIfStopped": true},
                }),
            ),
        )
        .await;
    }
    for name in &names {
        wait_for(
            &env.api,
            name,
            Duration::from_secs(180),
            "Ready",
            session_ready,
        )
        .await;
    }
    let log = env.sim.call_log();
    for name in &names {
        let count = |action: &str| log.matching(Some(action), Some(name), None).count();
        let history: Vec<_> = log
            .matching(None, Some(name), None)
            .map(|e| (e.action.clone(), e.outcome.clone(), e.time))
            .collect();
        assert_eq!(
            count("StartInstance"),
            1,
            "{name}: one StartInstance: {history:?}"
        );
        assert_eq!(count("StartGUISession"), 1, "{name}: one StartGUISession");
    }
}
