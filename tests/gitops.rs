//! The GitOps side: the examples apply to the real apiserver, the team policy kustomization builds,
//! the Argo CD and Flux manifests point at what exists, and GuiSession conditions mean what the
//! operator intends to the kstatus library Flux uses and to the Argo CD health check - judged on
//! objects the real operator wrote.
mod support;

use support::documents;
use support::verdicts::{argocd_health, health_lua, kstatus, run};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use kube::api::PostParams;
use lightsail_gui_operator::guisession::types::GuiSession;
use serde_json::{Value, json};

fn examples() -> PathBuf {
    support::repo_root().join("examples")
}

fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    documents(&text)
}

/// `kubectl apply --dry-run=server` of `manifests` in `namespace`: Ok(stdout) or Err(stderr).
fn dry_run(namespace: &str, manifests: &str) -> Result<String, String> {
    let mut child = support::control_plane()
        .kubectl()
        .args(["apply", "--dry-run=server", "-n", namespace, "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(manifests.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("kubectl apply");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test]
async fn guisession_examples_pass_server_side_validation() {
    let client = support::control_plane().client().await;
    support::install_crds(&client).await;
    let namespace = support::test_namespace(&client, "examples").await;
    for (file, name, resource) in [
        ("guisession.yaml", "research-desktop", "research-desktop"),
        (
            "guisession-unknown.yaml",
            "no-such-computer",
            "no-such-computer",
        ),
        (
            "guisession-scheduled.yaml",
            "scheduled-desktop",
            "scheduled-desktop",
        ),
    ] {
        let text = std::fs::read_to_string(examples().join(file)).expect("example");
        let docs = documents(&text);
        assert_eq!(docs.len(), 1, "{file}");
        assert_eq!(docs[0]["metadata"]["name"], name, "{file}");
        assert_eq!(docs[0]["spec"]["resourceName"], resource, "{file}");
        let out = dry_run(&namespace, &text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(out.contains("(server dry run)"), "{file}: {out}");
    }
    // The same check refuses what the CRD rejects, so passing it means something.
    let broken = std::fs::read_to_string(examples().join("guisession.yaml"))
        .expect("example")
        .replace(
            "  resourceName: research-desktop\n",
            "  resourceName: research-desktop\n  maxSessionAge: 0s\n",
        );
    let err = dry_run(&namespace, &broken).expect_err("a zero maxSessionAge must be rejected");
    assert!(
        err.contains("maxSessionAge must be a positive Go duration"),
        "{err}"
    );
}

/// The built team policy: every GuiSession in the team namespace with the team label and the
/// policy's settings.
fn team_policy() -> Vec<Value> {
    let out = support::bin_dir().join("kubectl");
    let mut cmd = Command::new(out);
    cmd.arg("kustomize")
        .arg(examples().join("gitops/team-research"));
    documents(&run(cmd, ""))
}

#[tokio::test]
async fn team_policy_kustomization_builds_and_applies() {
    let docs = team_policy();
    let sessions: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "GuiSession").collect();
    assert!(sessions.len() >= 2, "{docs:?}");
    for s in &sessions {
        assert_eq!(s["metadata"]["namespace"], "team-research", "{s}");
        assert_eq!(s["metadata"]["labels"]["team"], "research", "{s}");
        assert_eq!(s["spec"]["region"], "us-east-1", "{s}");
        assert_eq!(s["spec"]["maxSessionAge"], "50m", "{s}");
        assert_eq!(s["spec"]["stopOnDelete"], true, "{s}");
        assert_eq!(
            s["spec"]["schedule"]["windows"][0]["start"], "0 8 * * MON-FRI",
            "{s}"
        );
        assert_eq!(s["spec"]["access"], json!({}), "{s}");
        // The schedule the patch gives is one the operator can evaluate (admission cannot check
        // a cron expression or a time zone).
        let spec: lightsail_gui_operator::guisession::types::GuiSessionSpec =
            serde_json::from_value(s["spec"].clone()).expect("a valid spec");
        let schedule = spec.schedule.expect("schedule");
        lightsail_gui_operator::schedule::compile(&schedule).expect("the schedule compiles");
    }

    // Server-side validation of the whole build; the namespace must exist for its objects to be
    // dry-run, so create it (this control plane belongs to this test binary).
    let client = support::control_plane().client().await;
    support::install_crds(&client).await;
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "team-research"}})).expect("ns");
    match Api::<Namespace>::all(client)
        .create(&PostParams::default(), &namespace)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("create namespace: {e}"),
    }
    let manifests = docs
        .iter()
        .map(|d| serde_yaml::to_string(d).expect("yaml"))
        .collect::<Vec<_>>()
        .join("---\n");
    let out = dry_run("team-research", &manifests).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.matches("(server dry run)").count(), docs.len(), "{out}");
}

#[test]
fn argocd_and_flux_manifests_point_at_what_exists() {
    let repo = support::repo_root();
    let policy = team_policy();
    let session = |name: &str| {
        policy
            .iter()
            .find(|d| d["kind"] == "GuiSession" && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no GuiSession {name} in the team policy"))
            .clone()
    };

    let apps = yaml_documents(&examples().join("argocd/applications.yaml"));
    assert!(apps.iter().all(|a| a["kind"] == "Application"));
    for app in &apps {
        let path = app["spec"]["source"]["path"].as_str().expect("source path");
        assert!(
            repo.join(path).is_dir(),
            "Argo CD source path {path} does not exist"
        );
    }

    let flux = yaml_documents(&examples().join("flux/team-research.yaml"));
    for doc in &flux {
        let path = doc["spec"]["path"]
            .as_str()
            .or(doc["spec"]["chart"]["spec"]["chart"].as_str());
        if let Some(path) = path {
            assert!(repo.join(path).is_dir(), "Flux path {path} does not exist");
        }
    }
    let kustomization = flux
        .iter()
        .find(|d| d["kind"] == "Kustomization")
        .expect("a Flux Kustomization");
    let checks = kustomization["spec"]["healthChecks"]
        .as_array()
        .expect("healthChecks");
    assert!(!checks.is_empty());
    for check in checks {
        let name = check["name"].as_str().expect("name");
        let s = session(name);
        assert_eq!(check["namespace"], s["metadata"]["namespace"]);
        assert_eq!(check["apiVersion"], "lightsail.operators.dev/v1alpha1");
        // kstatus keeps a suspended session InProgress, which would time the sync out.
        assert_ne!(
            s["spec"]["suspend"], true,
            "{name} is suspended but health-checked"
        );
    }

    // The health check registers under the key Argo CD looks up: <group>_<kind>.
    let mut cmd = Command::new(support::bin_dir().join("kubectl"));
    cmd.arg("kustomize").arg(examples().join("argocd/health"));
    let cm = documents(&run(cmd, ""));
    assert_eq!(cm.len(), 1);
    assert_eq!(cm[0]["metadata"]["name"], "argocd-cm");
    let lua = std::fs::read_to_string(health_lua()).expect("lua");
    assert_eq!(
        cm[0]["data"]["resource.customizations.health.lightsail.operators.dev_GuiSession"],
        lua.as_str()
    );
}

#[tokio::test]
async fn argocd_health_key_merges_into_an_existing_argocd_cm() {
    let control_plane = support::control_plane();
    let client = control_plane.client().await;
    let namespace = support::test_namespace(&client, "argocd").await;
    // argocd-cm as an Argo CD install leaves it, with a setting of its own.
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "argocd-cm", "labels": {"app.kubernetes.io/part-of": "argocd"}},
        "data": {"url": "https://argocd.example.com"}
    }))
    .expect("configmap");
    let cms = Api::<ConfigMap>::namespaced(client, &namespace);
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create argocd-cm");
    // The documented command, into this test's namespace instead of `argocd`.
    let mut cmd = control_plane.kubectl();
    cmd.args(["kustomize"])
        .arg(examples().join("argocd/health"));
    let built = run(cmd, "").replace("namespace: argocd", &format!("namespace: {namespace}"));
    let mut cmd = control_plane.kubectl();
    cmd.args([
        "apply",
        "--server-side",
        "--field-manager=lightsail-gui-operator-health",
        "-f",
        "-",
    ]);
    run(cmd, &built);
    let data = cms
        .get("argocd-cm")
        .await
        .expect("argocd-cm")
        .data
        .expect("data");
    assert_eq!(
        data["url"], "https://argocd.example.com",
        "existing key kept"
    );
    assert!(
        data["resource.customizations.health.lightsail.operators.dev_GuiSession"]
            .contains("hs.status = \"Degraded\"")
    );
}

fn condition(type_: &str, status: &str, reason: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": format!("{type_} {reason}"),
           "observedGeneration": 2, "lastTransitionTime": "2026-01-01T00:00:00Z"})
}

fn session_with(generation: i64, observed: i64, conditions: Vec<Value>) -> Value {
    json!({
        "apiVersion": "lightsail.operators.dev/v1alpha1",
        "kind": "GuiSession",
        "metadata": {"name": "s", "namespace": "n", "generation": generation},
        "spec": {"resourceName": "s"},
        "status": {"observedGeneration": observed, "conditions": conditions}
    })
}

/// Every case of the condition semantics, through both judges, including the ones the operator
/// rarely shows (an old observedGeneration, no status yet).
#[test]
fn kstatus_and_argocd_agree_on_every_condition_case() {
    let ready = condition("Ready", "True", "SessionActive");
    let renewing = condition("Ready", "True", "SessionRenewing");
    let not_ready = condition("Ready", "False", "Starting");
    let reconciling = condition("Reconciling", "True", "Starting");
    let not_reconciling = condition("Reconciling", "False", "SessionStarted");
    let stalled = condition("Stalled", "True", "NotFound");
    let not_stalled = condition("Stalled", "False", "SessionStarted");
    let suspended = condition("Ready", "True", "Suspended");
    let outside_schedule = condition("Ready", "True", "OutsideSchedule");
    let cases = [
        (
            // Outside its schedule: settled and healthy, every night and weekend.
            "outside its schedule",
            session_with(
                2,
                2,
                vec![
                    outside_schedule,
                    not_reconciling.clone(),
                    not_stalled.clone(),
                ],
            ),
            "Current",
            "Healthy",
        ),
        (
            "ready",
            session_with(
                2,
                2,
                vec![ready.clone(), not_reconciling.clone(), not_stalled.clone()],
            ),
            "Current",
            "Healthy",
        ),
        (
            // A routine renewal: still healthy, never Progressing once an hour.
            "renewing",
            session_with(
                2,
                2,
                vec![renewing, not_reconciling.clone(), not_stalled.clone()],
            ),
            "Current",
            "Healthy",
        ),
        (
            "starting",
            session_with(
                2,
                2,
                vec![not_ready.clone(), reconciling, not_stalled.clone()],
            ),
            "InProgress",
            "Progressing",
        ),
        (
            "stalled",
            session_with(2, 2, vec![not_ready, not_reconciling.clone(), stalled]),
            "Failed",
            "Degraded",
        ),
        (
            "suspended",
            // Settled: `kubectl wait`, Flux health checks and Argo CD all stop waiting.
            session_with(2, 2, vec![suspended, not_reconciling, not_stalled]),
            "Current",
            "Suspended",
        ),
        (
            "spec changed since",
            session_with(3, 2, vec![ready]),
            "InProgress",
            "Progressing",
        ),
        (
            "not seen yet",
            json!({"apiVersion": "lightsail.operators.dev/v1alpha1", "kind": "GuiSession",
                   "metadata": {"name": "s", "namespace": "n", "generation": 1},
                   "spec": {"resourceName": "s"}}),
            // kstatus has nothing to go on for a custom resource without status.
            "Current",
            "Progressing",
        ),
    ];
    for (case, object, want_kstatus, want_argocd) in cases {
        assert_eq!(kstatus(&object).0, want_kstatus, "kstatus, {case}");
        assert_eq!(argocd_health(&object).0, want_argocd, "Argo CD, {case}");
    }
    let (_, message) = argocd_health(&session_with(
        2,
        2,
        vec![condition("Stalled", "True", "NotFound")],
    ));
    assert_eq!(message, "NotFound: Stalled NotFound");
}

/// The real operator's conditions, as kstatus and Argo CD see them: InProgress/Progressing while a
/// first start is under way, Current/Healthy when Ready and while a routine renewal is under way,
/// Failed/Degraded when Stalled, and Current/Suspended for a suspended session.
#[tokio::test]
async fn kstatus_and_argocd_judge_what_the_operator_writes() {
    use lightsail_sim::{ComputerSpec, SimConfig, Simulator};
    use support::operator::{
        Operator, OperatorOptions, apply, condition, condition_is, eventually, guisession, wait_for,
    };

    let control_plane = support::control_plane();
    let client = control_plane.client().await;
    support::install_crds(&client).await;
    let namespace = support::test_namespace(&client, "kstatus").await;
    let sim = Simulator::start(
        SimConfig::default()
            .with_computer(ComputerSpec::new("research-desktop"))
            // Its StartGUISession is performed but not answered until released: a start that is
            // under way for as long as the test needs.
            .with_computer(ComputerSpec::new("slow-desktop").hold_start_response(true))
            .with_computer(ComputerSpec::new("paused-desktop"))
            .with_computer(ComputerSpec::new("renewing-desktop")),
        "127.0.0.1:0",
    )
    .await
    .expect("simulator");
    let sim_url = sim.endpoint_url();
    let operator = Operator::start(
        control_plane,
        // Sessions of a few seconds, so that one renews during the test.
        OperatorOptions::new(&namespace, &sim_url).arg("--min-session-age", "1s"),
    );
    let sessions = Api::<GuiSession>::namespaced(client.clone(), &namespace);
    for (name, suspend) in [
        ("research-desktop", false),
        ("slow-desktop", false),
        ("paused-desktop", true),
        ("no-such-computer", false),
    ] {
        apply(
            &sessions,
            guisession(name, json!({"resourceName": name, "suspend": suspend})),
        )
        .await;
    }
    apply(
        &sessions,
        guisession(
            "renewing-desktop",
            json!({"resourceName": "renewing-desktop", "maxSessionAge": "4s"}),
        ),
    )
    .await;
    // The object as the API serves it, as a GitOps tool reads it.
    let served = |name: &str| -> Value {
        let mut cmd = control_plane.kubectl();
        cmd.args(["get", "guisession", name, "-n", &namespace, "-o", "json"]);
        serde_json::from_str(&run(cmd, "")).expect("kubectl get -o json")
    };
    let deadline = Duration::from_secs(60);

    wait_for(&sessions, "slow-desktop", deadline, "Reconciling", |s| {
        condition_is(s, "Reconciling", "True")
    })
    .await;
    // Judge it while its StartGUISession is provably in flight (held by the simulator).
    eventually(deadline, "StartGUISession for slow-desktop held", || {
        sim.computer("slow-desktop").map(|c| c.held_start_responses) == Some(1)
    })
    .await;
    let starting = served("slow-desktop");
    assert_eq!(kstatus(&starting).0, "InProgress", "{starting}");
    assert_eq!(argocd_health(&starting).0, "Progressing", "{starting}");

    wait_for(&sessions, "research-desktop", deadline, "Ready", |s| {
        condition_is(s, "Ready", "True")
    })
    .await;
    let ready = served("research-desktop");
    assert_eq!(kstatus(&ready).0, "Current", "{ready}");
    assert_eq!(argocd_health(&ready).0, "Healthy", "{ready}");

    wait_for(&sessions, "no-such-computer", deadline, "Stalled", |s| {
        condition_is(s, "Stalled", "True")
    })
    .await;
    let stalled = served("no-such-computer");
    let (status, message) = kstatus(&stalled);
    assert_eq!(status, "Failed", "{stalled}");
    let (health, health_message) = argocd_health(&stalled);
    assert_eq!(health, "Degraded", "{stalled}");
    assert!(health_message.starts_with("NotFound"), "{health_message}");
    assert!(!message.is_empty());

    wait_for(&sessions, "paused-desktop", deadline, "Suspended", |s| {
        condition(s, "Ready").is_some_and(|c| c.reason == "Suspended")
    })
    .await;
    let paused = served("paused-desktop");
    assert_eq!(argocd_health(&paused).0, "Suspended", "{paused}");
    assert_eq!(kstatus(&paused).0, "Current", "{paused}");

    // A routine renewal, judged while its StartGUISession is provably in flight: still Current
    // and Healthy (the fence is in status.pendingStart, not in the conditions).
    wait_for(&sessions, "renewing-desktop", deadline, "Ready", |s| {
        condition_is(s, "Ready", "True")
    })
    .await;
    let mut held = ComputerSpec::new("renewing-desktop");
    held.hold_start_response = true;
    sim.upsert_computer(held).expect("hold the renewal");
    eventually(deadline, "the renewal's StartGUISession held", || {
        sim.computer("renewing-desktop")
            .map(|c| c.held_start_responses)
            == Some(1)
    })
    .await;
    let renewing = served("renewing-desktop");
    assert!(
        renewing["status"]["pendingStart"].is_object(),
        "the renewal is fenced: {renewing}"
    );
    assert_eq!(kstatus(&renewing).0, "Current", "{renewing}");
    assert_eq!(argocd_health(&renewing).0, "Healthy", "{renewing}");
    assert!(sim.release_start_responses("renewing-desktop"));

    // Releasing the held start lets it finish: the same object turns Current.
    assert!(sim.release_start_responses("slow-desktop"));
    wait_for(&sessions, "slow-desktop", deadline, "Ready", |s| {
        condition_is(s, "Ready", "True")
    })
    .await;
    let started = served("slow-desktop");
    assert_eq!(kstatus(&started).0, "Current", "{started}");
    assert_eq!(argocd_health(&started).0, "Healthy", "{started}");

    drop(operator);
    sim.shutdown().await.expect("simulator shutdown");
}
