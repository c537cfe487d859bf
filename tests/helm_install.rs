//! `helm install`, `helm upgrade` and `helm uninstall` of the chart, run the way users run them,
//! against the real kube-apiserver. A test binary of its own (so a control plane of its own):
//! the release takes ownership of the cluster-wide CRD, which other tests apply too.
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::runtime::wait::await_condition;
use lightsail_gui_operator::guisession::types::GuiSession;

const CRD: &str = "guisessions.lightsail.operators.dev";

/// A copy of the chart whose CRD gained a short name, standing in for a CRD change in a new
/// chart version.
fn chart_with_changed_crd(dir: &Path) -> std::path::PathBuf {
    let copy = dir.join("lightsail-gui-operator");
    let status = Command::new("cp")
        .arg("-r")
        .arg(support::chart_dir())
        .arg(&copy)
        .status()
        .expect("cp");
    assert!(status.success());
    let crd_path = copy.join("files/crds/guisession.yaml");
    let crd = std::fs::read_to_string(&crd_path).expect("chart CRD");
    let changed = crd.replacen("    - guis\n", "    - guis\n    - guisess\n", 1);
    assert_ne!(
        crd, changed,
        "the CRD copy no longer has the short name this test edits"
    );
    std::fs::write(&crd_path, changed).expect("write chart CRD");
    copy
}

#[tokio::test]
async fn install_upgrade_and_uninstall_like_a_user() {
    let control_plane = support::control_plane();
    let client = control_plane.client().await;
    let namespace = support::restricted_namespace(&client, "helm-install").await;
    let chart = support::chart_dir();
    let chart = chart.to_str().expect("utf-8 path");

    // Install: the release notes tell the user how to create and check a first GuiSession, and
    // nothing the chart makes breaks the namespace's restricted Pod Security Standard.
    let installed = control_plane.helm_ok(&["install", "lgo", chart, "-n", &namespace]);
    assert!(installed.contains("STATUS: deployed"), "{installed}");
    assert!(
        installed.contains("kubectl wait --for=condition=Ready guisession/research-desktop"),
        "NOTES:\n{installed}"
    );
    assert!(!installed.contains("PodSecurity"), "{installed}");
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let crd = crds.get(CRD).await.expect("the release installed the CRD");
    let annotations = crd.metadata.annotations.unwrap_or_default();
    assert_eq!(annotations["meta.helm.sh/release-name"], "lgo");
    assert_eq!(annotations["helm.sh/resource-policy"], "keep");

    // A user's GuiSession, from the example the NOTES point at.
    let mut apply = control_plane.kubectl();
    apply.args(["apply", "-n", &namespace, "-f"]);
    let out = apply
        .arg(support::repo_root().join("examples/guisession.yaml"))
        .output()
        .expect("kubectl apply");
    assert!(out.status.success(), "{out:?}");

    // Upgrade to a chart whose CRD changed, with two replicas: the CRD is upgraded (Helm's crds/
    // folder never would be) and the PodDisruptionBudget appears.
    let dir = tempfile::tempdir().expect("tempdir");
    let next = chart_with_changed_crd(dir.path());
    let upgraded = control_plane.helm_ok(&[
        "upgrade",
        "lgo",
        next.to_str().expect("utf-8 path"),
        "-n",
        &namespace,
        "--set",
        "replicas=2",
    ]);
    assert!(upgraded.contains("REVISION: 2"), "{upgraded}");
    let crd = crds.get(CRD).await.expect("CRD");
    assert!(
        crd.spec
            .names
            .short_names
            .unwrap_or_default()
            .contains(&"guisess".to_owned()),
        "helm upgrade did not upgrade the CRD"
    );
    let pdbs = Api::<PodDisruptionBudget>::namespaced(client.clone(), &namespace);
    pdbs.get("lgo-lightsail-gui-operator")
        .await
        .expect("a PodDisruptionBudget for two replicas");

    // Uninstall: the controller's objects go, the CRD and the user's GuiSession stay.
    let uninstalled = control_plane.helm_ok(&["uninstall", "lgo", "-n", &namespace]);
    assert!(
        uninstalled.contains("kept due to the resource policy"),
        "{uninstalled}"
    );
    let deployments = Api::<Deployment>::namespaced(client.clone(), &namespace);
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(
            deployments,
            "lgo-lightsail-gui-operator",
            |d: Option<&Deployment>| d.is_none(),
        ),
    )
    .await
    .expect("the Deployment is removed by helm uninstall")
    .expect("watch Deployment");
    crds.get(CRD).await.expect("the CRD is kept");
    Api::<GuiSession>::namespaced(client, &namespace)
        .get("research-desktop")
        .await
        .expect("the user's GuiSession is kept");
}
