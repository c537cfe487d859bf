//! The Helm chart as tests use it: rendered with the pinned helm, applied to the control plane,
//! and run as the operator would run from it (its ServiceAccount's token, its Deployment's env),
//! plus what its RBAC grants that ServiceAccount, rule by rule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Stdio;

use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use super::{ControlPlane, chart_dir, documents, helm};

/// The kinds of the rendered objects.
pub fn kinds(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .map(|d| d["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// `helm template RELEASE CHART -n NAMESPACE ARGS...`: the manifests, or helm's error output.
pub fn render(release: &str, namespace: &str, args: &[&str]) -> Result<String, String> {
    let out = helm()
        .args(["template", release])
        .arg(chart_dir())
        .args(["--namespace", namespace])
        .args(args)
        .output()
        .expect("run helm");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

pub fn render_ok(release: &str, namespace: &str, args: &[&str]) -> Vec<Value> {
    let text = render(release, namespace, args).unwrap_or_else(|e| panic!("helm template: {e}"));
    documents(&text)
}

pub fn the<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<_> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind}, got {}", found.len());
    found[0]
}

pub fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {:?}", kinds(docs)))
}

/// The one `kind` named `name` in `namespace` (Roles of the same name sit in many namespaces).
pub fn named_in<'a>(docs: &'a [Value], kind: &str, name: &str, namespace: &str) -> &'a Value {
    docs.iter()
        .find(|d| {
            d["kind"] == kind
                && d["metadata"]["name"] == name
                && d["metadata"]["namespace"] == namespace
        })
        .unwrap_or_else(|| panic!("no {kind} {name} in namespace {namespace}"))
}

pub fn container(docs: &[Value]) -> &Value {
    &the(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

/// The container's env as name -> value (or the fieldRef path for downward-API values).
pub fn env_of(docs: &[Value]) -> BTreeMap<String, String> {
    let env = container(docs)["env"].as_array().expect("env list");
    env.iter()
        .map(|e| {
            let value = e["value"]
                .as_str()
                .or(e["valueFrom"]["fieldRef"]["fieldPath"].as_str())
                .unwrap_or_else(|| panic!("env {e} has neither value nor fieldRef"));
            (
                e["name"].as_str().expect("name").to_owned(),
                value.to_owned(),
            )
        })
        .collect()
}

/// Applies rendered manifests server-side, as `helm install` would create them; returns kubectl's
/// warnings (stderr).
pub fn apply(control_plane: &ControlPlane, manifests: &str) -> String {
    let mut child = control_plane
        .kubectl()
        .args([
            "apply",
            "--server-side",
            "--field-manager",
            "helm-chart-test",
        ])
        // The CRD is cluster-wide and shared by every test of this binary.
        .args(["--force-conflicts", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(manifests.as_bytes())
            .expect("write manifests");
    }
    let out = child.wait_with_output().expect("kubectl apply");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "kubectl apply failed:\n{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

/// A kubeconfig that authenticates as ServiceAccount `name` of `namespace` with a token from the
/// TokenRequest API, against the same server and CA as the admin kubeconfig.
pub async fn service_account_kubeconfig(
    control_plane: &ControlPlane,
    admin: &kube::Client,
    namespace: &str,
    name: &str,
    dir: &std::path::Path,
) -> PathBuf {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::ServiceAccount;
    let request: TokenRequest = serde_json::from_value(json!({
        "spec": {"audiences": [], "expirationSeconds": 3600}
    }))
    .expect("token request");
    let token = Api::<ServiceAccount>::namespaced(admin.clone(), namespace)
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .expect("TokenRequest for the chart's ServiceAccount")
        .status
        .expect("token status")
        .token;
    let admin_config: Value = serde_yaml::from_str(
        &std::fs::read_to_string(&control_plane.kubeconfig).expect("admin kubeconfig"),
    )
    .expect("kubeconfig parses");
    let cluster = &admin_config["clusters"][0]["cluster"];
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": "local", "user": name, "namespace": namespace}}],
        "current-context": name,
    });
    let path = dir.join("service-account.kubeconfig");
    std::fs::write(&path, serde_yaml::to_string(&config).expect("yaml")).expect("write kubeconfig");
    path
}

pub async fn client_from(kubeconfig: &std::path::Path) -> kube::Client {
    lightsail_gui_operator::install_crypto_provider();
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("kubeconfig");
    kube::Client::try_from(config).expect("client")
}

/// The Deployment's env as the operator binary gets it in a Pod, for a test that runs the binary
/// itself: the downward-API values filled in (the Lease namespace is the release's, the identity
/// stands for the Pod name), and without the HTTP address and log settings, which the test
/// harness sets by flag (it finds the port in the JSON log).
pub fn operator_env(
    docs: &[Value],
    release_namespace: &str,
    identity: &str,
) -> Vec<(String, String)> {
    env_of(docs)
        .into_iter()
        .filter(|(name, _)| {
            !["LGO_HTTP_ADDR", "LGO_LOG_FORMAT", "LGO_LOG"].contains(&name.as_str())
        })
        .map(|(name, value)| match name.as_str() {
            "LGO_LEASE_NAMESPACE" => (name, release_namespace.to_owned()),
            "LGO_IDENTITY" => (name, identity.to_owned()),
            _ => (name, value),
        })
        .collect()
}

/// One thing a role lets its subject do: a verb on a resource (`resource/subresource`) of an API
/// group, in one namespace (`None`: every namespace and the cluster-scoped objects, as a
/// ClusterRoleBinding grants), on one object by name (`None`: any).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    pub namespace: Option<String>,
    pub group: String,
    pub resource: String,
    pub verb: String,
    pub name: Option<String>,
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        write!(f, "{} {group}/{}", self.verb, self.resource)?;
        if let Some(name) = &self.name {
            write!(f, " {name}")?;
        }
        match &self.namespace {
            Some(ns) => write!(f, " in namespace {ns}"),
            None => write!(f, " cluster-wide"),
        }
    }
}

/// Everything the rendered Roles and ClusterRoles grant ServiceAccount `name` of `namespace`
/// through the rendered bindings that name it, one [`Grant`] per verb, resource and resource
/// name. Roles nothing binds to it (e.g. the aggregated `-edit`/`-view` roles, which are for
/// people) grant it nothing.
pub fn grants_to_service_account(docs: &[Value], namespace: &str, name: &str) -> BTreeSet<Grant> {
    let subject = json!({"kind": "ServiceAccount", "name": name, "namespace": namespace});
    let strings = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut grants = BTreeSet::new();
    for binding in docs.iter().filter(|d| {
        (d["kind"] == "RoleBinding" || d["kind"] == "ClusterRoleBinding")
            && d["subjects"]
                .as_array()
                .is_some_and(|s| s.contains(&subject))
    }) {
        let scope = (binding["kind"] == "RoleBinding").then(|| {
            binding["metadata"]["namespace"]
                .as_str()
                .expect("a RoleBinding has a namespace")
                .to_owned()
        });
        let role_kind = binding["roleRef"]["kind"].as_str().unwrap_or_default();
        let role_name = &binding["roleRef"]["name"];
        let role = docs
            .iter()
            .find(|d| {
                d["kind"] == role_kind
                    && d["metadata"]["name"] == *role_name
                    && (role_kind == "ClusterRole"
                        || d["metadata"]["namespace"].as_str() == scope.as_deref())
            })
            .unwrap_or_else(|| panic!("{binding} binds a role the chart does not render"));
        for rule in role["rules"].as_array().into_iter().flatten() {
            let names = strings(&rule["resourceNames"]);
            let names: Vec<Option<String>> = if names.is_empty() {
                vec![None]
            } else {
                names.into_iter().map(Some).collect()
            };
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    for verb in strings(&rule["verbs"]) {
                        for name in &names {
                            grants.insert(Grant {
                                namespace: scope.clone(),
                                group: group.clone(),
                                resource: resource.clone(),
                                verb: verb.clone(),
                                name: name.clone(),
                            });
                        }
                    }
                }
            }
        }
    }
    grants
}
