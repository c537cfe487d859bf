//! Tenants, for tests of what one namespace's users can make the operator do
//! (`tests/tenancy.rs`): a user acting through impersonation, the built-in user-facing roles as
//! kube-controller-manager would aggregate them, the IAM trust policies of `docs/security.md` as
//! they stand there, and the operator binary running as the chart installs it.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

use super::chart;
use super::operator::{Operator, OperatorOptions, eventually};
use super::{ControlPlane, documents, repo_root};

/// A client that sends every request as `user` (`Impersonate-User`, through the admin's
/// credentials): the apiserver authorizes each one as that user, in the group
/// `system:authenticated` only, exactly as if the user had logged in.
pub async fn impersonating(control_plane: &ControlPlane, user: &str) -> kube::Client {
    lightsail_gui_operator::install_crypto_provider();
    let kubeconfig = Kubeconfig::read_from(&control_plane.kubeconfig).expect("read kubeconfig");
    let options = KubeConfigOptions {
        context: Some("admin".to_owned()),
        ..Default::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("kubeconfig");
    config.auth_info.impersonate = Some(user.to_owned());
    kube::Client::try_from(config).expect("impersonating client")
}

/// Binds the ClusterRole `cluster_role` to the user `user` in `namespace` only (a RoleBinding).
pub async fn bind_cluster_role(
    admin: &kube::Client,
    namespace: &str,
    cluster_role: &str,
    user: &str,
) {
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": format!("{user}-{cluster_role}"), "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": cluster_role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }))
    .expect("RoleBinding");
    Api::<RoleBinding>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap_or_else(|e| panic!("bind {cluster_role} to {user} in {namespace}: {e}"));
}

/// Does once what kube-controller-manager's ClusterRole aggregation controller keeps doing: every
/// ClusterRole with an `aggregationRule` gets, as its rules, the rules of every other ClusterRole
/// its selectors select (repeated until nothing changes, since `view` is aggregated into `edit`
/// and `edit` into `admin`). The test control plane runs only etcd and kube-apiserver, which
/// create the built-in `admin`, `edit` and `view` with an aggregationRule and no rules at all:
/// without this, binding `edit` would grant nothing.
pub async fn aggregate_cluster_roles(admin: &kube::Client) {
    let api: Api<ClusterRole> = Api::all(admin.clone());
    for _round in 0..10 {
        let mut roles = api
            .list(&ListParams::default())
            .await
            .expect("list ClusterRoles")
            .items;
        // The controller takes the selected roles in name order.
        roles.sort_by(|x, y| x.metadata.name.cmp(&y.metadata.name));
        let mut changed = false;
        for role in &roles {
            let Some(rule) = &role.aggregation_rule else {
                continue;
            };
            let selectors = rule.cluster_role_selectors.clone().unwrap_or_default();
            let mut rules: Vec<PolicyRule> = Vec::new();
            for other in &roles {
                if other.metadata.name == role.metadata.name {
                    continue;
                }
                let labels = other.metadata.labels.clone().unwrap_or_default();
                if !selectors.iter().any(|s| selects(s, &labels)) {
                    continue;
                }
                for r in other.rules.iter().flatten() {
                    if !rules.contains(r) {
                        rules.push(r.clone());
                    }
                }
            }
            if role.rules.clone().unwrap_or_default() != rules {
                let name = role.metadata.name.as_deref().expect("name");
                api.patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"rules": rules})),
                )
                .await
                .unwrap_or_else(|e| panic!("aggregate ClusterRole {name}: {e}"));
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
    panic!("ClusterRole aggregation did not settle in 10 rounds");
}

/// Whether `selector` (matchLabels only: the built-in aggregation rules use nothing else)
/// selects `labels`.
fn selects(selector: &LabelSelector, labels: &std::collections::BTreeMap<String, String>) -> bool {
    assert!(
        selector
            .match_expressions
            .as_ref()
            .is_none_or(|e| e.is_empty()),
        "aggregation selectors with matchExpressions are not emulated: {selector:?}"
    );
    selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v))
}

/// The JSON trust policy that `docs/security.md` shows right after the marker comment
/// `<!-- trust-policy: MARKER -->`, with its placeholders (`<operator-role-arn>`, ...) replaced
/// textually, as an admin following that page would. Every placeholder given must occur, and
/// none may be left.
pub fn trust_policy(marker: &str, substitutions: &[(&str, &str)]) -> Value {
    let path = repo_root().join("docs/security.md");
    let text = std::fs::read_to_string(&path).expect("read docs/security.md");
    let marker_line = format!("<!-- trust-policy: {marker} -->");
    let (_, after) = text
        .split_once(&marker_line)
        .unwrap_or_else(|| panic!("no {marker_line} in docs/security.md"));
    let block = after
        .trim_start()
        .strip_prefix("```json")
        .unwrap_or_else(|| panic!("no ```json block right after {marker_line}"));
    let (document, _) = block
        .split_once("```")
        .unwrap_or_else(|| panic!("the JSON block after {marker_line} is not closed"));
    let mut document = document.to_owned();
    for (placeholder, value) in substitutions {
        assert!(
            document.contains(placeholder),
            "the {marker} trust policy has no {placeholder}:\n{document}"
        );
        document = document.replace(placeholder, value);
    }
    let left: Vec<&str> = document
        .split('<')
        .skip(1)
        .filter_map(|rest| rest.split_once('>').map(|(p, _)| p))
        .filter(|p| p.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        .collect();
    assert!(
        left.is_empty(),
        "placeholders left in the {marker} trust policy: {left:?}"
    );
    serde_json::from_str(&document)
        .unwrap_or_else(|e| panic!("the {marker} trust policy is not JSON ({e}):\n{document}"))
}

/// The operator binary running as the chart installs it: the rendered manifests applied, its
/// ServiceAccount's TokenRequest token as its only Kubernetes credential, the Deployment's env
/// (leader election on, every namespace watched).
pub struct ChartOperator {
    pub operator: Operator,
    pub release_namespace: String,
    pub service_account: String,
    pub docs: Vec<Value>,
    _dir: tempfile::TempDir,
}

impl ChartOperator {
    /// `helm template RELEASE -n RELEASE_NAMESPACE VALUES...`, applied, and the operator started
    /// with the Deployment's env plus `extra_env`; returns once it is ready (/readyz).
    pub async fn start(
        control_plane: &ControlPlane,
        admin: &kube::Client,
        release: &str,
        release_namespace: &str,
        values: &[&str],
        sim_url: &str,
        extra_env: &[(&str, &str)],
    ) -> ChartOperator {
        let manifests = chart::render(release, release_namespace, values)
            .unwrap_or_else(|e| panic!("helm template: {e}"));
        chart::apply(control_plane, &manifests);
        let docs = documents(&manifests);
        let service_account = chart::the(&docs, "ServiceAccount")["metadata"]["name"]
            .as_str()
            .expect("ServiceAccount name")
            .to_owned();
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = chart::service_account_kubeconfig(
            control_plane,
            admin,
            release_namespace,
            &service_account,
            dir.path(),
        )
        .await;
        let operator = start_operator(
            control_plane,
            &docs,
            release_namespace,
            &kubeconfig,
            sim_url,
            extra_env,
        );
        eventually(
            Duration::from_secs(60),
            "the operator ready (/readyz)",
            || operator.http_get("/readyz").0 == 200,
        )
        .await;
        ChartOperator {
            operator,
            release_namespace: release_namespace.to_owned(),
            service_account,
            docs,
            _dir: dir,
        }
    }

    /// The ServiceAccount's user name, as the audit log has it.
    pub fn username(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.release_namespace, self.service_account
        )
    }
}

fn start_operator(
    control_plane: &ControlPlane,
    docs: &[Value],
    release_namespace: &str,
    kubeconfig: &Path,
    sim_url: &str,
    extra_env: &[(&str, &str)],
) -> Operator {
    let mut options = OperatorOptions::new("", sim_url);
    // The Deployment's args are ["run"] and its settings are env: none of the harness's flags.
    options.args.clear();
    options.kubeconfig = Some(kubeconfig.to_path_buf());
    options.env = chart::operator_env(docs, release_namespace, "tenancy-operator-0");
    options.env.extend(
        extra_env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Operator::start(control_plane, options)
}
