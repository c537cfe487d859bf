//! `helm upgrade` from the previous chart (committed in `tests/fixtures/upgrade/previous-chart`,
//! see the README there) to this one, on the real kube-apiserver, while GuiSessions have live
//! sessions: no session is started again because of the upgrade, the CRDs are updated in place
//! (same objects, the new schema), every object the release made is either in the new manifest
//! with the same uid or gone, and the operator of the new chart carries on from the status the
//! previous one left.
//!
//! No kubelet runs here, so the Deployment makes no Pods: the operator binary runs the way each
//! chart's Deployment would run it (its env, its ServiceAccount's token), and the rollout is
//! played as a Deployment plays it: the new replica starts, then the old one gets SIGTERM. Both
//! are this build's binary: there is no released image of the previous version to run.
//! A test binary of its own (so a control plane of its own): the release owns the CRDs.
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use clap::ValueEnum;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube::runtime::wait::await_condition;
use lightsail_gui_operator::guisession::types::GuiSession;
use lightsail_gui_operator::process::cli::CrdKind;
use lightsail_sim::{ComputerSpec, OUTCOME_OK, SimConfig, Simulator};
use serde_json::{Value, json};
use support::chart::{operator_env, service_account_kubeconfig, the};
use support::env::ready;
use support::operator::{Operator, OperatorOptions, apply, eventually, guisession, wait_for};
use support::{ControlPlane, chart_dir, documents, repo_root};

const RELEASE: &str = "lgo";
/// GuiSessions with a live session through the upgrade.
const N: usize = 6;
const MAX_AGE: Duration = Duration::from_secs(40);
/// The chart's start settle and Lightsail timeout here: a start goes out at most
/// settle - timeout - 1 s after its fence was written, so two starts of one session are at
/// least MAX_AGE minus that apart.
const START_SETTLE: Duration = Duration::from_secs(10);
const LIGHTSAIL_TIMEOUT: Duration = Duration::from_secs(5);
const WAIT: Duration = Duration::from_secs(120);

/// The values a user would pass to both charts (the same command line before and after).
const VALUES: [&str; 6] = [
    "controller.minSessionAge=10s",
    "controller.startSettle=10s",
    "controller.lightsailTimeout=5s",
    "controller.pollInitial=500ms",
    "leaderElection.leaseDuration=6s",
    "aws.region=us-east-1",
];

/// One object of a release: (apiVersion's group or "", kind, namespace or "", name).
type Key = (String, String, String, String);

fn key(doc: &Value) -> Key {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    let group = api_version
        .rsplit_once('/')
        .map_or("", |(group, _)| group)
        .to_owned();
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (
        group,
        text(&doc["kind"]),
        text(&doc["metadata"]["namespace"]),
        text(&doc["metadata"]["name"]),
    )
}

/// kubectl's name for a kind of a group: `Kind.group`, or `Kind` for the core group.
fn kind_arg(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    }
}

/// The release's objects as `helm get manifest` lists them.
fn manifest(control_plane: &ControlPlane, namespace: &str) -> Vec<Value> {
    documents(&control_plane.helm_ok(&["get", "manifest", RELEASE, "-n", namespace]))
}

fn kubectl(control_plane: &ControlPlane, args: &[&str]) -> String {
    let out = control_plane
        .kubectl()
        .args(args)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The uid of every object in the cluster for `keys` (absent objects are left out).
fn uids<'a>(
    control_plane: &ControlPlane,
    keys: impl IntoIterator<Item = &'a Key>,
) -> BTreeMap<Key, String> {
    keys.into_iter()
        .filter_map(|k| {
            let (group, kind, namespace, name) = k;
            let object = format!("{}/{name}", kind_arg(group, kind));
            let mut args = vec!["get", &object, "--ignore-not-found", "-o"];
            args.push("jsonpath={.metadata.uid}");
            if !namespace.is_empty() {
                args.extend(["-n", namespace]);
            }
            let uid = kubectl(control_plane, &args);
            (!uid.is_empty()).then(|| (k.clone(), uid))
        })
        .collect()
}

/// Every object of the kinds in `keys` that carries the release's instance label, anywhere.
fn labelled(control_plane: &ControlPlane, keys: &BTreeSet<Key>) -> BTreeSet<Key> {
    let kinds: BTreeSet<(String, String)> = keys
        .iter()
        .map(|(group, kind, _, _)| (group.clone(), kind.clone()))
        .collect();
    let mut found = BTreeSet::new();
    for (group, kind) in kinds {
        let listed = kubectl(
            control_plane,
            &[
                "get",
                &kind_arg(&group, &kind),
                "-A",
                "-l",
                &format!("app.kubernetes.io/instance={RELEASE}"),
                "-o",
                "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{\"\\n\"}{end}",
            ],
        );
        for line in listed.lines() {
            let (namespace, name) = line.split_once('/').unwrap_or(("", line));
            found.insert((group.clone(), kind.clone(), namespace.into(), name.into()));
        }
    }
    found
}

/// What each version of a CRD serves (schema, printer columns, subresources), as stored or as
/// shipped.
fn served(crd: &Value) -> BTreeMap<String, Value> {
    crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let name = v["name"].as_str().unwrap_or_default().to_owned();
            let columns = &v["additionalPrinterColumns"];
            (name, json!([v["schema"], columns, v["subresources"]]))
        })
        .collect()
}

/// What the cluster serves for each CRD `docs` ship, by name.
fn served_crds(
    control_plane: &ControlPlane,
    docs: &[Value],
) -> BTreeMap<String, (Value, BTreeMap<String, Value>)> {
    let mut out = BTreeMap::new();
    for doc in docs
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
    {
        let name = doc["metadata"]["name"].as_str().expect("CRD name");
        // As kubectl gets it: the typed client would turn the schema's integers into floats.
        let stored: Value =
            serde_json::from_str(&kubectl(control_plane, &["get", "crd", name, "-o", "json"]))
                .expect("CRD as JSON");
        assert_eq!(
            served(&stored),
            served(doc),
            "{name}: the cluster serves another CRD than the chart's"
        );
        assert_eq!(stored["status"]["storedVersions"], json!(["v1alpha1"]));
        out.insert(
            name.to_owned(),
            (stored["metadata"]["uid"].clone(), served(doc)),
        );
    }
    out
}

/// The operator as `docs`' Deployment runs it: its env and its ServiceAccount's token.
async fn operator_of(
    control_plane: &ControlPlane,
    docs: &[Value],
    namespace: &str,
    identity: &str,
    sim_url: &str,
    dir: &std::path::Path,
) -> Operator {
    let admin = control_plane.client().await;
    let service_account = the(docs, "ServiceAccount")["metadata"]["name"]
        .as_str()
        .expect("ServiceAccount name")
        .to_owned();
    let kubeconfig =
        service_account_kubeconfig(control_plane, &admin, namespace, &service_account, dir).await;
    let mut options = OperatorOptions::new("", sim_url);
    options.args.clear();
    options.kubeconfig = Some(kubeconfig);
    options.env = operator_env(docs, namespace, identity);
    let operator = Operator::start(control_plane, options);
    eventually(WAIT, &format!("{identity}: /readyz 200"), || {
        operator.http_get("/readyz").0 == 200
    })
    .await;
    operator
}

async fn wait_for_leader(leases: &Api<Lease>, lease: &str, identity: &str) {
    let holder = identity.to_owned();
    let held = await_condition(leases.clone(), lease, move |l: Option<&Lease>| {
        l.and_then(|l| l.spec.as_ref())
            .and_then(|s| s.holder_identity.as_deref())
            == Some(holder.as_str())
    });
    match tokio::time::timeout(WAIT, held).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("watching Lease {lease}: {e}"),
        Err(_) => panic!("{identity} did not hold Lease {lease} within {WAIT:?}"),
    }
}

fn started_at(gs: &GuiSession) -> Option<Timestamp> {
    gs.status.as_ref().and_then(|s| s.session_started_at)
}

#[tokio::test(flavor = "multi_thread")]
async fn helm_upgrade_from_the_previous_chart_restarts_no_session_and_orphans_nothing() {
    let control_plane = support::control_plane();
    let admin = control_plane.client().await;
    let system = support::restricted_namespace(&admin, "upgrade-system").await;
    let desks = support::test_namespace(&admin, "upgrade-desks").await;
    let computers: Vec<String> = (0..N).map(|i| format!("vm-upgrade-{i}")).collect();
    let config = computers.iter().fold(SimConfig::default(), |c, name| {
        c.with_computer(ComputerSpec::new(name.clone()))
    });
    let sim = Simulator::start(config, "127.0.0.1:0")
        .await
        .expect("simulator");
    let sim_url = sim.endpoint_url();
    let dir = tempfile::tempdir().expect("tempdir");
    // `helm install|upgrade` of a chart, with the same values each time, as a user repeats a
    // command line; returns helm's output and the release's manifest.
    let helm_release = |verb: &str, chart: &std::path::Path| {
        let mut args = vec![
            verb,
            RELEASE,
            chart.to_str().expect("utf-8 path"),
            "-n",
            &system,
        ];
        args.extend(VALUES.iter().flat_map(|v| ["--set", *v]));
        let out = control_plane.helm_ok(&args);
        (out, manifest(control_plane, &system))
    };

    // ---- the previous chart, installed the way its users installed it
    let previous = repo_root().join("tests/fixtures/upgrade/previous-chart");
    let (installed, before_docs) = helm_release("install", &previous);
    assert!(installed.contains("STATUS: deployed"), "{installed}");
    let before: BTreeSet<Key> = before_docs.iter().map(key).collect();
    let crds_before = served_crds(control_plane, &before_docs);

    let leases = Api::<Lease>::namespaced(admin.clone(), &system);
    let lease = format!("{RELEASE}-lightsail-gui-operator");
    let mut previous_operator = operator_of(
        control_plane,
        &before_docs,
        &system,
        "lgo-previous-0",
        &sim_url,
        dir.path(),
    )
    .await;
    wait_for_leader(&leases, &lease, "lgo-previous-0").await;

    // ---- GuiSessions with live sessions
    let sessions = Api::<GuiSession>::namespaced(admin.clone(), &desks);
    let max_age = format!("{}s", MAX_AGE.as_secs());
    for vm in &computers {
        apply(
            &sessions,
            guisession(vm, json!({"resourceName": vm, "maxSessionAge": max_age})),
        )
        .await;
    }
    let mut live = BTreeMap::new();
    for vm in &computers {
        let gs = wait_for(&sessions, vm, WAIT, "Ready", ready).await;
        live.insert(vm.clone(), (gs.metadata.uid.clone(), started_at(&gs)));
    }

    // ---- helm upgrade to this chart, same command line; the previous operator still runs
    let upgrade_started = Timestamp::now();
    let (upgraded, after_docs) = helm_release("upgrade", &chart_dir());
    assert!(upgraded.contains("REVISION: 2"), "{upgraded}");
    let after: BTreeSet<Key> = after_docs.iter().map(key).collect();

    // Nothing orphaned: what the previous chart made and this one does not is gone; what both
    // make is the same object (same uid: updated in place, never deleted and re-created); no
    // object of those kinds carries the release's label without being in its manifest.
    let uids_before = uids(control_plane, &before);
    assert_eq!(
        uids_before.len(),
        before.len(),
        "every object of the previous manifest existed"
    );
    let uids_after = uids(control_plane, before.union(&after));
    let mut gone = Vec::new();
    for k in before.difference(&after) {
        assert!(
            !uids_after.contains_key(k),
            "{k:?}: the previous chart made it, this one does not, and it is still there"
        );
        gone.push(format!("{}/{}", k.1, k.3));
    }
    for k in &after {
        assert!(
            uids_after.contains_key(k),
            "{k:?}: in the manifest, not in the cluster"
        );
        if let Some(uid) = uids_before.get(k) {
            assert_eq!(
                Some(uid),
                uids_after.get(k),
                "{k:?} was deleted and re-created by the upgrade"
            );
        }
    }
    let union: BTreeSet<Key> = before.union(&after).cloned().collect();
    let stray: Vec<_> = labelled(control_plane, &union)
        .difference(&after)
        .cloned()
        .collect();
    assert!(
        stray.is_empty(),
        "labelled as the release's but not in its manifest: {stray:?}"
    );

    // The CRDs: the same objects (same uid), serving this chart's schema and columns, stored in
    // one version.
    let crds_after = served_crds(control_plane, &after_docs);
    assert_eq!(
        crds_after.keys().collect::<Vec<_>>(),
        crds_before.keys().collect::<Vec<_>>(),
        "the chart ships the same CRDs"
    );
    let mut crds_changed = Vec::new();
    for (name, (uid, versions)) in &crds_after {
        let (uid_before, versions_before) = &crds_before[name];
        assert_eq!(uid, uid_before, "{name} was deleted and re-created");
        if versions != versions_before {
            crds_changed.push(name.clone());
        }
    }

    // The GuiSessions: the same objects, their sessions untouched by the upgrade itself.
    for vm in &computers {
        let gs = sessions
            .get(vm)
            .await
            .expect("GuiSession after the upgrade");
        assert_eq!((gs.metadata.uid.clone(), started_at(&gs)), live[vm], "{vm}");
    }

    // ---- the rollout: the new replica starts, then the old one is terminated and hands over
    let mut next_operator = operator_of(
        control_plane,
        &after_docs,
        &system,
        "lgo-next-0",
        &sim_url,
        dir.path(),
    )
    .await;
    let exit = previous_operator.terminate();
    assert!(
        exit.success(),
        "the previous operator exits 0 on SIGTERM: {exit}"
    );
    wait_for_leader(&leases, &lease, "lgo-next-0").await;
    let handed_over = Timestamp::now();

    // The new operator renews each session when it is due, not before.
    for vm in &computers {
        let previous_start = live[vm].1;
        wait_for(&sessions, vm, WAIT, "renewed by the new operator", |gs| {
            ready(gs) && started_at(gs) > previous_start
        })
        .await;
    }
    // What users see through the upgraded CRD: its printer columns over the stored status.
    let table = kubectl(control_plane, &["get", "guisessions", "-n", &desks]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let columns: Vec<String> = crds_after["guisessions.lightsail.operators.dev"].1["v1alpha1"][1]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["name"].as_str().unwrap_or_default().to_uppercase())
        .collect();
    assert_eq!(
        ["NAME"]
            .into_iter()
            .chain(columns.iter().map(String::as_str))
            .collect::<Vec<_>>(),
        header,
        "{table}"
    );
    let log = sim.call_log();
    assert_eq!(log.dropped, 0, "the simulator's call log overflowed");
    let budget = START_SETTLE - LIGHTSAIL_TIMEOUT - Duration::from_secs(1);
    let least = SignedDuration::try_from(MAX_AGE - budget - Duration::from_secs(1))
        .expect("a small duration");
    let mut renewals_after = 0;
    for vm in &computers {
        let starts: Vec<Timestamp> = log
            .matching(Some("StartGUISession"), Some(vm), Some(OUTCOME_OK))
            .map(|e| e.time)
            .collect();
        for pair in starts.windows(2) {
            let gap = pair[1].duration_since(pair[0]);
            assert!(
                gap >= least,
                "{vm}: started again {gap:#} after its last start (at least {least:#}): \
                 {starts:?}"
            );
        }
        renewals_after += starts.iter().filter(|t| **t >= upgrade_started).count();
    }
    assert!(renewals_after >= N, "every session renewed once due");
    assert_eq!(
        log.matching(Some("StopGUISession"), None, None).count(),
        0,
        "the upgrade stopped a session"
    );
    next_operator.terminate();
    eprintln!(
        "helm upgrade from the previous chart: {} objects before, {} after, gone: {gone:?}; \
         CRDs in place, changed: {crds_changed:?}; {N} sessions renewed by the new operator only \
         when due (handover at {handed_over}), none started twice within {least:#}",
        before.len(),
        after.len()
    );
}

/// An operator newer than the CRDs in the cluster (CRDs kept outside the chart with
/// `crds.install=false` and not updated) would fail every status write ("field not declared in
/// schema"): it refuses to start instead, naming the CRD, the missing field and the command that
/// updates it; with the CRD updated it starts. A control plane of its own: the other test's
/// release owns the CRDs of this binary's shared one.
#[tokio::test(flavor = "multi_thread")]
async fn an_operator_newer_than_the_crds_refuses_to_start_and_names_what_they_lack() {
    let control_plane = ControlPlane::start_own();
    let admin = control_plane.client().await;
    // This version's CRDs, except that GuiSession's lacks status.computer, as before the
    // computer behind the session was managed.
    for kind in CrdKind::value_variants() {
        let mut crd = kind.crd().0;
        if let CrdKind::GuiSession = kind {
            let status = crd.spec.versions[0]
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
                .and_then(|s| s.properties.as_mut())
                .and_then(|p| p.get_mut("status"))
                .and_then(|s| s.properties.as_mut())
                .expect("status properties");
            assert!(status.remove("computer").is_some(), "status.computer");
        }
        support::apply_crd(&admin, &crd).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_lightsail-gui-operator"))
        .args(["run", "--leader-elect=false", "--http-addr", "127.0.0.1:0"])
        .args(["--log-format", "text"])
        .env_clear()
        .env("KUBECONFIG", &control_plane.kubeconfig)
        .env("HOME", dir.path())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT, run)
        .await
        .expect("the operator exits instead of running on CRDs older than itself")
        .expect("run the operator");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for expected in [
        "the CustomResourceDefinition guisessions.lightsail.operators.dev in the cluster is older \
         than this operator: it does not declare v1alpha1: .status.computer.",
        "lightsail-gui-operator crd --kind guisession | kubectl apply --server-side -f -",
    ] {
        assert!(stderr.contains(expected), "{expected:?} not in:\n{stderr}");
    }

    // Updated, the same binary starts and serves.
    support::install_crds(&admin).await;
    let operator = Operator::start(
        &control_plane,
        OperatorOptions::new("", "http://127.0.0.1:9"),
    );
    eventually(WAIT, "/readyz 200 on updated CRDs", || {
        operator.http_get("/readyz").0 == 200
    })
    .await;
}
