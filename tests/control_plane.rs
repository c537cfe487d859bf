//! Proves the test wiring: a real kube-apiserver + etcd, reached through kube::Client.
mod support;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, PostParams};

#[tokio::test]
async fn configmap_round_trips_through_the_real_apiserver() {
    let control_plane = support::control_plane();
    let client = control_plane.client().await;
    let namespace = support::test_namespace(&client, "configmap").await;
    let api = Api::<ConfigMap>::namespaced(client, &namespace);
    let config_map: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "greeting" },
        "data": { "hello": "world" }
    }))
    .expect("configmap");
    api.create(&PostParams::default(), &config_map)
        .await
        .expect("create");

    let read = api.get("greeting").await.expect("get");
    assert_eq!(
        read.data.and_then(|d| d.get("hello").cloned()).as_deref(),
        Some("world")
    );
}

#[tokio::test]
async fn server_reports_the_pinned_kubernetes_release() {
    let client = support::control_plane().client().await;
    let version = client.apiserver_version().await.expect("version");
    let pinned =
        std::fs::read_to_string(support::repo_root().join("tools/control-plane/versions.env"))
            .expect("versions.env");
    let expected = pinned
        .lines()
        .find_map(|l| l.strip_prefix("KUBERNETES_VERSION="))
        .expect("KUBERNETES_VERSION");
    assert_eq!(version.git_version, expected);
}

#[tokio::test]
async fn rbac_is_enforced_for_the_non_admin_user() {
    let control_plane = support::control_plane();
    let admin = control_plane.client().await;
    let namespace = support::test_namespace(&admin, "rbac").await;
    let developer = control_plane.client_as("developer").await;
    let err = Api::<Secret>::namespaced(developer, &namespace)
        .list(&Default::default())
        .await
        .expect_err("developer has no grants");
    match err {
        kube::Error::Api(status) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("expected 403, got {other:?}"),
    }
}

#[test]
fn kubectl_talks_to_the_control_plane() {
    let out = support::control_plane()
        .kubectl()
        .args(["get", "--raw", "/readyz"])
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

fn fake_assets() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["etcd", "kube-apiserver", "kubectl", "helm"] {
        let path = dir.path().join(name);
        std::fs::write(&path, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    dir
}

#[test]
fn kubebuilder_assets_are_used_without_building_anything() {
    let assets = fake_assets();
    let cache = tempfile::tempdir().expect("tempdir");
    // No Go on PATH and an empty cache: any attempt to build would fail or fill the cache.
    let out = std::process::Command::new(support::repo_root().join("scripts/control-plane-build"))
        .env("KUBEBUILDER_ASSETS", assets.path())
        .env("LGO_CACHE", cache.path())
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("run control-plane-build");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        assets.path().to_string_lossy()
    );
    assert_eq!(std::fs::read_dir(cache.path()).expect("cache").count(), 0);
}

#[test]
fn incomplete_kubebuilder_assets_are_a_clear_error() {
    let assets = fake_assets();
    std::fs::remove_file(assets.path().join("helm")).expect("remove helm");
    let out = std::process::Command::new(support::repo_root().join("scripts/control-plane-build"))
        .env("KUBEBUILDER_ASSETS", assets.path())
        .output()
        .expect("run control-plane-build");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("KUBEBUILDER_ASSETS") && stderr.contains("helm"),
        "{stderr}"
    );
}
