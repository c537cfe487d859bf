//! Session policy a lab runs on, end to end (the operator binary, a real kube-apiserver + etcd, the
//! Lightsail simulator): access URLs in a Secret (`spec.access`) and schedules (`spec.schedule`).

mod support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use lightsail_gui_operator::guisession::types::GuiSession;
use lightsail_sim::{AccessFailureStatus, ComputerSpec, SimConfig};
use serde_json::json;
use support::env::*;
use support::operator::*;
use support::{control_plane, repo_root};

/// What every URL the simulator hands out carries: finding it anywhere but in the Secret is a leak.
const URL_TOKEN: &str = "authToken=";

fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

async fn wait_for_secret(
    api: &Api<Secret>,
    name: &str,
    what: &str,
    mut check: impl FnMut(&Secret) -> bool,
) -> Secret {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(secret) = api.get_opt(name).await.expect("get secret")
            && check(&secret)
        {
            return secret;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Secret {name}: {what} not within {WAIT:?}"
        );
        // Polling a read with a deadline, not a sleep deciding the outcome.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// kube-controller-manager running only its garbage collector against the test control plane:
/// the real component that deletes what a deleted owner owned. Killed on drop.
struct GarbageCollector(Child);

impl GarbageCollector {
    fn start() -> GarbageCollector {
        let cp = control_plane();
        let out = Command::new(repo_root().join("scripts/control-plane-build"))
            .arg("--node")
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/control-plane-build --node");
        assert!(out.status.success(), "control-plane-build --node failed");
        let bin = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(format!("{bin}/kube-controller-manager"))
            .arg(format!("--kubeconfig={}", cp.kubeconfig.display()))
            .arg(format!(
                "--authentication-kubeconfig={}",
                cp.kubeconfig.display()
            ))
            .arg(format!(
                "--authorization-kubeconfig={}",
                cp.kubeconfig.display()
            ))
            .args(["--controllers=garbagecollector", "--leader-elect=false"])
            .args(["--bind-address=127.0.0.1", &format!("--secure-port={port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kube-controller-manager");
        GarbageCollector(child)
    }
}

impl Drop for GarbageCollector {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn access_urls_live_in_an_owned_secret_and_nowhere_else() {
    // Two calls of set-up (settingUpInstance, starting) before the URLs, as a real computer
    // being prepared answers.
    let env = env(
        "access",
        SimConfig::default().with_computer(ComputerSpec::new("lab-vm").access_setup_calls(2)),
    )
    .await;
    let op = env.operator(|o| {
        o.arg("--access-secrets", "true")
            .arg("--min-session-age", "1s")
            .arg("--poll-initial", "200ms")
            .arg("--poll-max", "1s")
    });
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.namespace);
    let gs = env
        .apply_until_ready(
            "lab",
            json!({"resourceName": "lab-vm", "maxSessionAge": "8s",
                   "access": {"secretName": "lab-desktop"}}),
        )
        .await;
    let status = gs.status.clone().expect("status");
    let access = status.access.clone().expect("status.access");
    assert_eq!(access.status.as_deref(), Some("started"));
    assert_eq!(access.secret_name.as_deref(), Some("lab-desktop"));
    assert_eq!(access.session_started_at, status.session_started_at);
    assert!(access.secret_written_at.is_some());

    // Ready means the Secret is there, for this session, owned by the GuiSession.
    let secret = secrets.get("lab-desktop").await.expect("the access Secret");
    let first_url = secret_text(&secret, "primaryUrl").expect("primaryUrl");
    assert!(first_url.contains(URL_TOKEN), "{}", first_url.len());
    assert!(secret_text(&secret, "secondaryUrl").is_some());
    assert_eq!(
        secret_text(&secret, "resourceName").as_deref(),
        Some("lab-vm")
    );
    assert_eq!(
        secret_text(&secret, "expiresAt"),
        status.session_expires_at.map(|t| t.to_string())
    );
    let owner = &secret.metadata.owner_references.clone().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("GuiSession", "lab")
    );
    assert_eq!(Some(&owner.uid), gs.metadata.uid.as_ref());
    assert_eq!(owner.controller, Some(true));
    let mut urls = vec![first_url.clone()];

    // A renewal brings a new URL.
    let renewed = wait_for_secret(&secrets, "lab-desktop", "a new URL after renewal", |s| {
        secret_text(s, "primaryUrl").is_some_and(|u| u != first_url)
    })
    .await;
    let renewed_url = secret_text(&renewed, "primaryUrl").expect("primaryUrl");
    urls.push(renewed_url.clone());
    let now = env.api.get("lab").await.expect("get");
    assert!(env.starts("lab-vm") >= 2);
    assert_ne!(
        now.status.as_ref().and_then(|s| s.session_started_at),
        status.session_started_at,
        "the new URL belongs to a new session"
    );

    // Deleted by someone: back at once (not at the next renewal, 8 s away at most; the watch
    // brings it back, which is what the wait measures against the expiry below).
    secrets
        .delete("lab-desktop", &DeleteParams::default())
        .await
        .expect("delete the Secret");
    let back = wait_for_secret(&secrets, "lab-desktop", "recreated", |s| {
        secret_text(s, "primaryUrl").is_some_and(|u| u.contains(URL_TOKEN))
    })
    .await;
    urls.push(secret_text(&back, "primaryUrl").expect("primaryUrl"));

    // Edited by someone: the operator's URL comes back.
    secrets
        .patch(
            "lab-desktop",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"primaryUrl": "https://example.invalid/phish"}})),
        )
        .await
        .expect("edit the Secret");
    let restored = wait_for_secret(&secrets, "lab-desktop", "restored after an edit", |s| {
        secret_text(s, "primaryUrl").is_some_and(|u| u.contains(URL_TOKEN))
    })
    .await;
    urls.push(secret_text(&restored, "primaryUrl").expect("primaryUrl"));

    // No URL anywhere but in the Secret: status, Events, the operator's log and metrics.
    let gs = env.api.get("lab").await.expect("get");
    let places = [
        ("status", serde_json::to_string(&gs).expect("json")),
        (
            "events",
            serde_json::to_string(
                &Api::<Event>::namespaced(env.client.clone(), &env.namespace)
                    .list(&ListParams::default())
                    .await
                    .expect("events")
                    .items,
            )
            .expect("json"),
        ),
        ("log", op.log_text()),
        ("metrics", op.http_get("/metrics").1),
    ];
    for (place, text) in &places {
        assert!(
            !text.contains(URL_TOKEN),
            "a session URL token in the {place}"
        );
        for url in &urls {
            assert!(!text.contains(url.as_str()), "a session URL in the {place}");
        }
    }
    assert!(
        places[1].1.contains("AccessSecretWritten"),
        "the Secret writes are reported as Events"
    );

    // Deleting the GuiSession takes the Secret with it (Kubernetes' garbage collector).
    let _gc = GarbageCollector::start();
    env.api
        .delete("lab", &DeleteParams::default())
        .await
        .expect("delete");
    wait_deleted(&env.api, "lab").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while secrets.get_opt("lab-desktop").await.expect("get").is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the access Secret outlived its GuiSession"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn access_failures_and_a_foreign_secret_are_conditions_not_overwrites() {
    let env = env(
        "access-bad",
        SimConfig::default()
            .with_computer(ComputerSpec::new("broken-vm").access_failure(
                AccessFailureStatus::FailedStartingGuiSession,
                "the DCV server did not start",
            ))
            .with_computer(ComputerSpec::new("taken-vm")),
    )
    .await;
    let _op = env.operator(|o| o.arg("--access-secrets", "true"));
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.namespace);

    apply(
        &env.api,
        guisession(
            "broken",
            json!({"resourceName": "broken-vm", "access": {"secretName": "broken-desktop"}}),
        ),
    )
    .await;
    let gs = wait_for(&env.api, "broken", WAIT, "Stalled", |gs| {
        condition_is(gs, "Stalled", "True")
    })
    .await;
    let stalled = condition(&gs, "Stalled").expect("Stalled");
    assert_eq!(stalled.reason, "FailedStartingGUISession");
    assert!(stalled.message.contains("the DCV server did not start"));
    assert!(!condition_is(&gs, "Ready", "True"));
    let access = gs.status.and_then(|s| s.access).expect("status.access");
    assert_eq!(access.status.as_deref(), Some("failedStartingGUISession"));
    assert!(
        secrets
            .get_opt("broken-desktop")
            .await
            .expect("get")
            .is_none()
    );
    wait_for_event(&env.client, &env.namespace, "broken", WAIT, |(_, r, _)| {
        r == "AccessFailed"
    })
    .await;

    // A Secret someone else made is never overwritten.
    secrets
        .create(
            &Default::default(),
            &serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "team-secret"},
                "stringData": {"password": "keep-me"}
            }))
            .expect("secret"),
        )
        .await
        .expect("create a foreign Secret");
    apply(
        &env.api,
        guisession(
            "taken",
            json!({"resourceName": "taken-vm", "access": {"secretName": "team-secret"}}),
        ),
    )
    .await;
    let gs = wait_for(&env.api, "taken", WAIT, "Stalled", |gs| {
        condition_is(gs, "Stalled", "True")
    })
    .await;
    assert_eq!(
        condition(&gs, "Stalled").map(|c| c.reason.as_str()),
        Some("AccessSecretConflict")
    );
    let kept = secrets.get("team-secret").await.expect("get");
    assert_eq!(secret_text(&kept, "password").as_deref(), Some("keep-me"));
    assert!(kept.metadata.owner_references.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn without_secret_permission_access_is_a_clear_condition_and_sessions_go_on() {
    let env = env(
        "access-off",
        SimConfig::default().with_computer(ComputerSpec::new("off-vm")),
    )
    .await;
    // The default install: no --access-secrets.
    let _op = env.operator(|o| o);
    apply(
        &env.api,
        guisession(
            "off",
            json!({"resourceName": "off-vm", "access": {"secretName": "off-desktop"}}),
        ),
    )
    .await;
    let gs = wait_for(&env.api, "off", WAIT, "Stalled", |gs| {
        condition_is(gs, "Stalled", "True")
    })
    .await;
    let stalled = condition(&gs, "Stalled").expect("Stalled");
    assert_eq!(stalled.reason, "AccessSecretsDisabled");
    assert!(stalled.message.contains("accessSecrets.enabled"));
    // The session itself is kept alive.
    assert_eq!(env.starts("off-vm"), 1);
    assert!(gs.status.and_then(|s| s.session_expires_at).is_some());
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.namespace);
    assert!(secrets.get_opt("off-desktop").await.expect("get").is_none());
}

/// RFC 3339 of `t` plus `secs` seconds.
fn plus(t: jiff::Timestamp, secs: i64) -> jiff::Timestamp {
    t.checked_add(jiff::SignedDuration::from_secs(secs))
        .expect("in range")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_window_starts_renews_and_stops_only_inside_it() {
    let env = env(
        "schedule",
        SimConfig::default().with_computer(ComputerSpec::new("class-vm")),
    )
    .await;
    let _op = env.operator(|o| o.arg("--min-session-age", "1s"));
    // A window open every minute, cut by exclusions to [opens, closes): second precision, so the
    // test need not wait for a cron minute.
    let now = jiff::Timestamp::now();
    let opens = plus(
        jiff::Timestamp::from_second(now.as_second()).expect("ts"),
        6,
    );
    let closes = plus(opens, 15);
    apply(
        &env.api,
        guisession(
            "class",
            json!({
                "resourceName": "class-vm",
                // A renewal inside the window (at +10 s) whose session outlives the close (at
                // +15 s), so that there is something to stop.
                "maxSessionAge": "10s",
                "schedule": {
                    "timeZone": "Europe/Berlin",
                    "windows": [{"start": "* * * * *", "duration": "1m"}],
                    "exclusions": [
                        {"start": "2000-01-01T00:00:00Z", "end": opens.to_string()},
                        {"start": closes.to_string(), "end": "2100-01-01T00:00:00Z"}
                    ],
                    "stopAtWindowEnd": true
                }
            }),
        ),
    )
    .await;
    // Before the window: settled, and says when it opens.
    let before = wait_for(&env.api, "class", WAIT, "OutsideSchedule", |gs| {
        condition(gs, "Ready").is_some_and(|c| c.reason == "OutsideSchedule")
    })
    .await;
    let schedule = before
        .status
        .as_ref()
        .and_then(|s| s.schedule.clone())
        .expect("status.schedule");
    if jiff::Timestamp::now() < opens {
        assert!(!schedule.open);
        assert_eq!(schedule.next_change_at, Some(opens));
    }
    // After the window: closed for good (the exclusion runs to 2100, past the look-ahead).
    wait_for(&env.api, "class", WAIT, "closed after the window", |gs| {
        gs.status
            .as_ref()
            .and_then(|s| s.schedule.as_ref())
            .is_some_and(|s| !s.open)
            && jiff::Timestamp::now() >= closes
            && gs
                .status
                .as_ref()
                .is_some_and(|s| s.session_expires_at.is_none())
    })
    .await;
    assert!(wait_for_no_change(&env.api, "class", Duration::from_secs(3)).await);

    let log = env.sim.call_log();
    let starts: Vec<_> = log
        .matching(Some("StartGUISession"), Some("class-vm"), Some("ok"))
        .map(|e| e.time)
        .collect();
    assert!(
        starts.len() >= 2,
        "a start at the window's opening and renewals inside it: {starts:?}"
    );
    for t in &starts {
        assert!(
            *t >= opens && *t < closes,
            "start at {t} outside the window [{opens}, {closes})"
        );
    }
    let stops: Vec<_> = log
        .matching(Some("StopGUISession"), Some("class-vm"), Some("ok"))
        .map(|e| e.time)
        .collect();
    assert_eq!(stops.len(), 1, "one Stop at the window's end: {stops:?}");
    assert!(
        stops[0] >= closes,
        "stopped at {} before {closes}",
        stops[0]
    );
    wait_for_event(&env.client, &env.namespace, "class", WAIT, |(_, r, _)| {
        r == "SessionStopped"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_time_zone_stalls_with_a_clear_reason_and_a_bad_duration_is_refused() {
    let env = env(
        "schedule-bad",
        SimConfig::default().with_computer(ComputerSpec::new("tz-vm")),
    )
    .await;
    let _op = env.operator(|o| o);
    apply(
        &env.api,
        guisession(
            "tz",
            json!({"resourceName": "tz-vm", "schedule": {
                "timeZone": "Mars/Olympus_Mons",
                "windows": [{"start": "0 8 * * MON-FRI", "duration": "10h"}]}}),
        ),
    )
    .await;
    let gs = wait_for(&env.api, "tz", WAIT, "Stalled", |gs| {
        condition_is(gs, "Stalled", "True")
    })
    .await;
    let stalled = condition(&gs, "Stalled").expect("Stalled");
    assert_eq!(stalled.reason, "InvalidSchedule");
    assert!(
        stalled.message.contains("Mars/Olympus_Mons"),
        "{}",
        stalled.message
    );
    assert_eq!(
        env.calls("tz-vm"),
        0,
        "no Lightsail call for a broken schedule"
    );

    // What CEL can check is refused at admission, with the field named.
    let refused = env
        .api
        .patch(
            "bad-duration",
            &PatchParams::apply("test").force(),
            &Patch::Apply(guisession(
                "bad-duration",
                json!({"resourceName": "tz-vm", "schedule": {
                    "windows": [{"start": "0 8 * * *", "duration": "0s"}]}}),
            )),
        )
        .await;
    match refused {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422, "{s:?}");
            assert!(
                s.message.contains("duration must be a positive"),
                "{}",
                s.message
            );
        }
        other => panic!("a zero duration was accepted: {other:?}"),
    }
    let _: Option<GuiSession> = env.api.get_opt("bad-duration").await.expect("get");
}
