//! The Helm chart (`charts/lightsail-gui-operator`), proven with the pinned helm binary and on the
//! real kube-apiserver: lint, rendering with default and non-default values, the values schema,
//! the CRD staying the generated one, Pod Security admission of the pod the Deployment makes, and
//! RBAC that is enough for the real operator binary and nothing more.
mod support;

use support::chart::{
    apply, client_from, container, env_of, kinds, named, named_in, operator_env, render, render_ok,
    service_account_kubeconfig, the,
};
use support::{chart_dir, helm};

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use clap::ValueEnum;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::CustomResourceExt;
use kube::api::{Api, PostParams};
use lightsail_gui_operator::guisession::types::GuiSession;
use lightsail_gui_operator::process::cli::CrdKind;
use serde_json::{Value, json};

/// Rules as sorted (apiGroup, resource, verbs, resourceNames) rows, for exact comparison.
fn rules_of(role: &Value) -> BTreeSet<(String, String, String, String)> {
    let mut rows = BTreeSet::new();
    for rule in role["rules"].as_array().expect("rules") {
        let list = |key: &str| -> Vec<String> {
            rule[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|v| v.as_str().unwrap_or("?").to_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut verbs = list("verbs");
        verbs.sort();
        for group in list("apiGroups") {
            for resource in list("resources") {
                rows.insert((
                    group.clone(),
                    resource,
                    verbs.join(","),
                    list("resourceNames").join(","),
                ));
            }
        }
    }
    rows
}

/// `value` with every number as a float, to compare numbers whatever their YAML spelling.
fn numbers_as_f64(value: &Value) -> Value {
    match value {
        Value::Number(n) => n.as_f64().map_or(Value::Null, |f| json!(f)),
        Value::Array(items) => Value::Array(items.iter().map(numbers_as_f64).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), numbers_as_f64(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn row(group: &str, resource: &str, verbs: &str, names: &str) -> (String, String, String, String) {
    (group.into(), resource.into(), verbs.into(), names.into())
}

/// What the controller may do with GuiSessions, LightsailAccounts and Events, wherever it
/// watches: exactly the verbs it uses (every status write is a patch, no status is read through
/// the subresource, accounts are only listed and watched, Events only created).
fn expected_watch_rules() -> BTreeSet<(String, String, String, String)> {
    let group = "lightsail.operators.dev";
    BTreeSet::from([
        row(group, "guisessions", "get,list,patch,watch", ""),
        row(group, "guisessions/status", "patch", ""),
        row("events.k8s.io", "events", "create", ""),
        row(group, "lightsailaccounts", "list,watch", ""),
        row(group, "lightsailaccounts/status", "patch", ""),
    ])
}

/// What the controller may do cluster-wide for accounts, wherever it watches, plus reading its
/// own CRDs by name (checked against its own at start): with `kube_system` (no
/// `accounts.clusterId`) it may read that one Namespace, whose uid is the cluster's id; with
/// `static_keys` read Secrets cluster-wide (all namespaces watched).
fn expected_account_rules(
    static_keys: bool,
    kube_system: bool,
) -> BTreeSet<(String, String, String, String)> {
    let group = "lightsail.operators.dev";
    let mut rules = BTreeSet::from([
        row(group, "clusterlightsailaccounts", "list,watch", ""),
        row(group, "clusterlightsailaccounts/status", "patch", ""),
        row("", "namespaces", "list,watch", ""),
    ]);
    let own_crds: Vec<String> = CrdKind::value_variants()
        .iter()
        .filter_map(|kind| kind.crd().0.metadata.name)
        .collect();
    rules.insert(row(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "get",
        &own_crds.join(","),
    ));
    if kube_system {
        rules.insert(row("", "namespaces", "get", "kube-system"));
    }
    if static_keys {
        rules.insert(row("", "secrets", "get", ""));
    }
    rules
}

fn expected_lease_rules(lease: &str) -> BTreeSet<(String, String, String, String)> {
    BTreeSet::from([
        row("coordination.k8s.io", "leases", "get,patch", lease),
        row("coordination.k8s.io", "leases", "create", ""),
    ])
}

/// Every environment variable the operator's `run` reads, from its own `--help`: a flag added to
/// the binary without a chart value makes the default-render test fail.
fn operator_env_vars() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_lightsail-gui-operator"))
        .args(["run", "--help"])
        .output()
        .expect("run the operator binary");
    assert!(out.status.success(), "run --help failed: {out:?}");
    let help = String::from_utf8_lossy(&out.stdout);
    let vars: BTreeSet<String> = help
        .split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split(['=', ']']).next())
        .map(str::to_owned)
        .collect();
    assert!(vars.len() >= 10, "too few env vars in --help: {vars:?}");
    vars
}

#[test]
fn chart_crd_copy_is_the_generated_crd() {
    let generated = serde_yaml::to_string(&GuiSession::crd()).expect("CRD serialises");
    let copy =
        std::fs::read_to_string(chart_dir().join("files/crds/guisession.yaml")).unwrap_or_default();
    assert!(
        copy == generated,
        "charts/lightsail-gui-operator/files/crds/guisession.yaml is out of date with \
         src/guisession/types.rs; regenerate both copies with\n\n    \
         cargo run -- crd > crds/guisession.yaml && \
         cp crds/guisession.yaml charts/lightsail-gui-operator/files/crds/\n"
    );
}

/// Every value in values.yaml has a described property in values.schema.json (free-form
/// objects such as `resources` are described as a whole), and every property of the schema is a
/// value of values.yaml: the schema is the values' documentation (Artifact Hub and editors show
/// it) and cannot drift from them.
#[test]
fn the_values_schema_describes_every_value_and_no_other() {
    let values: Value = serde_yaml::from_str(
        &std::fs::read_to_string(chart_dir().join("values.yaml")).expect("values.yaml"),
    )
    .expect("values.yaml parses");
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(chart_dir().join("values.schema.json")).expect("schema"),
    )
    .expect("values.schema.json parses");
    fn leaves(v: &Value, path: &str, out: &mut Vec<String>) {
        match v.as_object().filter(|m| !m.is_empty()) {
            Some(map) => {
                for (k, x) in map {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    leaves(x, &p, out);
                }
            }
            None => out.push(path.to_owned()),
        }
    }
    fn properties(s: &Value, path: &str, out: &mut Vec<(String, Value)>) {
        for (k, x) in s["properties"].as_object().into_iter().flatten() {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            out.push((p.clone(), x.clone()));
            properties(x, &p, out);
        }
    }
    let mut value_paths = Vec::new();
    leaves(&values, "", &mut value_paths);
    let mut props = Vec::new();
    properties(&schema, "", &mut props);
    let described = |p: &str| {
        props.iter().any(|(path, x)| {
            path == p
                && x["description"]
                    .as_str()
                    .is_some_and(|d| !d.trim().is_empty())
        })
    };
    let mut undocumented = Vec::new();
    for value in &value_paths {
        // The value's own property, or the nearest enclosing free-form object's.
        let mut path = value.as_str();
        let ok = loop {
            if props.iter().any(|(p, _)| p == path) {
                break described(path);
            }
            match path.rsplit_once('.') {
                Some((parent, _)) => path = parent,
                None => break false,
            }
        };
        if !ok {
            undocumented.push(value.clone());
        }
    }
    assert!(
        undocumented.is_empty(),
        "values without a described property in values.schema.json: {undocumented:?}"
    );
    // `global` is Helm's own; `watchNamespace` is the documented old spelling of
    // `watchNamespaces`, accepted but no longer in values.yaml.
    let phantom: Vec<&String> = props
        .iter()
        .map(|(p, _)| p)
        .filter(|p| !matches!(p.as_str(), "global" | "watchNamespace"))
        .filter(|p| {
            !value_paths
                .iter()
                .any(|v| v == *p || v.starts_with(&format!("{p}.")))
        })
        .collect();
    assert!(
        phantom.is_empty(),
        "schema properties that are no value of values.yaml: {phantom:?}"
    );
}

/// Artifact Hub shows what the chart installs: every CRD of files/crds, and the image of this
/// version.
#[test]
fn artifact_hub_metadata_names_every_crd_and_the_image() {
    let text = std::fs::read_to_string(chart_dir().join("Chart.yaml")).expect("Chart.yaml");
    let chart: Value = serde_yaml::from_str(&text).expect("Chart.yaml parses");
    let annotation = |key: &str| -> Value {
        let text = chart["annotations"][key]
            .as_str()
            .unwrap_or_else(|| panic!("annotation {key}"));
        serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{key}: {e}"))
    };
    let listed: Vec<String> = annotation("artifacthub.io/crds")
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| c["name"].as_str().expect("name").to_owned())
        .collect();
    let mut shipped: Vec<String> = std::fs::read_dir(chart_dir().join("files/crds"))
        .expect("files/crds")
        .filter_map(|e| e.ok())
        .map(|e| {
            let crd: Value = serde_yaml::from_str(&std::fs::read_to_string(e.path()).expect("crd"))
                .expect("crd parses");
            crd["metadata"]["name"].as_str().expect("name").to_owned()
        })
        .collect();
    shipped.sort();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort();
    assert_eq!(listed_sorted, shipped, "artifacthub.io/crds");
    let images = annotation("artifacthub.io/images");
    let image = images[0]["image"].as_str().expect("image");
    assert_eq!(
        image,
        format!(
            "ghcr.io/lightsail-gui-operator/lightsail-gui-operator:{}",
            env!("CARGO_PKG_VERSION")
        )
    );
    for key in [
        "artifacthub.io/license",
        "artifacthub.io/links",
        "artifacthub.io/changes",
    ] {
        assert!(chart["annotations"][key].is_string(), "{key}");
    }
}

#[test]
fn chart_app_version_is_the_crate_version() {
    let text = std::fs::read_to_string(chart_dir().join("Chart.yaml")).expect("Chart.yaml");
    let chart: Value = serde_yaml::from_str(&text).expect("Chart.yaml parses");
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"));
}

/// The CRDs' validation rules are GA from Kubernetes 1.29: `kubeVersion` refuses an older
/// cluster with helm's own error before anything is applied, and admits 1.29 and the version the
/// tests run (which `helm template` assumes without a cluster, as a released helm does).
#[test]
fn the_chart_refuses_a_kubernetes_older_than_its_crds_need() {
    let versions =
        std::fs::read_to_string(support::repo_root().join("tools/control-plane/versions.env"))
            .expect("versions.env");
    let tested = versions
        .lines()
        .find_map(|l| l.strip_prefix("KUBERNETES_VERSION="))
        .expect("KUBERNETES_VERSION in versions.env");
    for admitted in ["1.29.0", tested] {
        render("lgo", "lgo-system", &["--kube-version", admitted])
            .unwrap_or_else(|e| panic!("Kubernetes {admitted} refused: {e}"));
    }
    let assumed = render_ok("lgo", "lgo-system", &[]);
    assert!(!assumed.is_empty(), "helm template without --kube-version");
    for refused in ["1.28.9", "1.25.0"] {
        let error = render("lgo", "lgo-system", &["--kube-version", refused])
            .err()
            .unwrap_or_else(|| panic!("Kubernetes {refused} admitted"));
        assert!(
            error.contains("chart requires kubeVersion: >=1.29.0-0")
                && error.contains(&format!("Kubernetes v{refused}")),
            "{error}"
        );
    }
    // The constraint stands for the CEL rules: the CRDs have them.
    let crds = std::fs::read_to_string(chart_dir().join("files/crds/guisession.yaml"))
        .expect("GuiSession CRD");
    assert!(crds.contains("x-kubernetes-validations"));
}

#[test]
fn lint_strict_passes_with_default_and_every_ci_values_file() {
    let mut ci_files: Vec<String> = std::fs::read_dir(chart_dir().join("ci"))
        .expect("ci/")
        .filter_map(|e| e.ok())
        .map(|e| format!("ci/{}", e.file_name().to_string_lossy()))
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    ci_files.sort();
    assert!(!ci_files.is_empty(), "the chart has ci/ values files");
    let mut runs: Vec<Vec<String>> = vec![Vec::new()];
    runs.extend(ci_files.into_iter().map(|f| vec!["--values".to_owned(), f]));
    for extra in &runs {
        let out = helm()
            .args(["lint", "--strict"])
            .arg(chart_dir())
            .args(extra)
            .current_dir(chart_dir())
            .output()
            .expect("run helm lint");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "helm lint {extra:?}:\n{text}");
        assert!(text.contains("0 chart(s) failed"), "{text}");
        // --strict fails on warnings; informational notes (a missing icon) are all it may print.
        for line in text.lines().filter(|l| l.starts_with('[')) {
            assert!(line.starts_with("[INFO]"), "helm lint {extra:?}: {line}");
        }
    }
}

#[test]
fn values_schema_rejects_wrong_types_with_a_clear_error() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--set", "replicas=two"],
            "at '/replicas': got string, want integer",
        ),
        (
            &["--set", "crds.install=yes"],
            "at '/crds/install': got string, want boolean",
        ),
        (&["--set", "logging.format=xml"], "at '/logging/format'"),
        (
            &["--set", "controller.minSessionAge=5 minutes"],
            "at '/controller/minSessionAge'",
        ),
        (
            &["--set", "controller.rateLimit=0"],
            "at '/controller/rateLimit'",
        ),
        (
            &["--set-json", r#"serviceAccount.annotations={"a":1}"#],
            "got number, want string",
        ),
        // Role ARN patterns travel comma-joined: a comma in one would split it.
        (
            &[
                "--set-json",
                r#"accounts.namespacedRoleArns=["arn:aws:iam::1:role/a,b"]"#,
            ],
            "at '/accounts/namespacedRoleArns/0'",
        ),
        (
            &["--set", "accounts.namespacedRoleArns=arn:aws:iam::1:role/a"],
            "at '/accounts/namespacedRoleArns': got string, want array",
        ),
        (
            &["--set", "watchNamespaces=research"],
            "at '/watchNamespaces': got string, want array",
        ),
        // The cluster id becomes part of an STS external id.
        (
            &["--set", "accounts.clusterId=prod cluster"],
            "at '/accounts/clusterId'",
        ),
        // A misspelt key is an error, not a silently ignored value.
        (
            &["--set", "replica=2"],
            "additional properties 'replica' not allowed",
        ),
    ];
    for (args, message) in cases {
        let err = render("r", "ops", args).expect_err("schema must reject this");
        assert!(
            err.contains("values don't meet the specifications of the schema"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains(message),
            "{args:?}: expected {message:?} in: {err}"
        );
    }
    // The same values with the right types render.
    render_ok(
        "r",
        "ops",
        &["--set", "replicas=2", "--set", "logging.format=text"],
    );
}

#[test]
fn aws_keys_are_refused_as_literal_values() {
    let err = render(
        "r",
        "ops",
        &[
            "--set-json",
            r#"extraEnv=[{"name":"AWS_SECRET_ACCESS_KEY","value":"s3cr3t"}]"#,
        ],
    )
    .expect_err("a literal AWS key must be refused");
    assert!(err.contains("must not be a literal value"), "{err}");
    // From a Secret it is allowed: clusters outside EKS have no IRSA or Pod Identity.
    let docs = render_ok(
        "r",
        "ops",
        &[
            "--set-json",
            r#"extraEnv=[{"name":"AWS_SECRET_ACCESS_KEY","valueFrom":{"secretKeyRef":{"name":"aws","key":"secret"}}}]"#,
        ],
    );
    assert!(container(&docs)["env"].to_string().contains("secretKeyRef"));
}

#[test]
fn a_credentials_secret_reaches_the_controller_as_secret_references_only() {
    let docs = render_ok(
        "r",
        "ops",
        &["--set", "aws.credentialsSecret=lightsail-credentials"],
    );
    let env = container(&docs)["env"].as_array().expect("env list");
    let by_name = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {env:?}"))
    };
    for (name, optional) in [
        ("AWS_ACCESS_KEY_ID", false),
        ("AWS_SECRET_ACCESS_KEY", false),
        ("AWS_SESSION_TOKEN", true),
    ] {
        let entry = by_name(name);
        assert!(entry.get("value").is_none(), "{entry}");
        let reference = &entry["valueFrom"]["secretKeyRef"];
        assert_eq!(reference["name"], "lightsail-credentials", "{entry}");
        assert_eq!(reference["key"], name, "{entry}");
        assert_eq!(reference["optional"].as_bool().unwrap_or(false), optional);
    }
    let err = render("r", "ops", &["--set", "aws.credentialsSecret=Not_A_Name"])
        .expect_err("a Secret name must be a DNS subdomain");
    assert!(err.contains("credentialsSecret"), "{err}");
}

#[test]
fn default_values_render_the_documented_install() {
    let docs = render_ok("lgo", "ops", &[]);
    assert_eq!(
        kinds(&docs),
        BTreeSet::from_iter(
            [
                "ClusterRole",
                "ClusterRoleBinding",
                "CustomResourceDefinition",
                "Deployment",
                "Role",
                "RoleBinding",
                "Service",
                "ServiceAccount",
            ]
            .map(String::from)
        ),
        "no PDB for one replica, no ServiceMonitor or NetworkPolicy unless asked"
    );
    let fullname = "lgo-lightsail-gui-operator";

    // Every CRD is the generated one, plus Helm's labels and the keep policy.
    let crds: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
        .collect();
    assert_eq!(crds.len(), CrdKind::value_variants().len());
    for kind in CrdKind::value_variants() {
        let generated = serde_json::to_value(kind.crd().0).expect("CRD as JSON");
        let name = generated["metadata"]["name"].as_str().expect("name");
        let crd = named(&docs, "CustomResourceDefinition", name);
        // Helm renders k8s-openapi's float bounds (`minimum: 1.0`) as `1`: the same number.
        assert_eq!(
            numbers_as_f64(&crd["spec"]),
            numbers_as_f64(&generated["spec"])
        );
        assert_eq!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"],
            "keep"
        );
    }

    // RBAC: exactly the documented rules, cluster-wide for GuiSessions, the Lease in the release
    // namespace only, and nothing about Secrets anywhere.
    assert_eq!(
        rules_of(named(&docs, "ClusterRole", fullname)),
        expected_watch_rules()
    );
    assert_eq!(
        rules_of(named(&docs, "ClusterRole", &format!("{fullname}-accounts"))),
        expected_account_rules(false, true)
    );
    let lease_role = named(&docs, "Role", &format!("{fullname}-leader-election"));
    assert_eq!(lease_role["metadata"]["namespace"], "ops");
    assert_eq!(rules_of(lease_role), expected_lease_rules(fullname));
    let everything = serde_json::to_string(&docs).expect("json");
    assert!(!everything.contains("secrets"), "a rule mentions secrets");

    // The Deployment: `run`, every controller flag as env, Lease and identity from the Pod.
    let deployment = the(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], fullname);
    let c = container(&docs);
    assert_eq!(c["args"], json!(["run"]));
    // The image the release workflow publishes, at the chart's appVersion.
    assert_eq!(
        c["image"],
        format!(
            "ghcr.io/lightsail-gui-operator/lightsail-gui-operator:{}",
            env!("CARGO_PKG_VERSION")
        )
    );
    let env = env_of(&docs);
    let missing: Vec<_> = operator_env_vars()
        .into_iter()
        .filter(|v| !env.contains_key(v))
        .filter(|v| {
            // Optional settings the chart sets only when given a value.
            ![
                "LGO_WATCH_NAMESPACE",
                "LGO_LABEL_SELECTOR",
                "LGO_DEFAULT_REGION",
                "LGO_CLUSTER_ID",
                "LGO_NAMESPACED_ACCOUNT_ROLES",
                "LGO_OWN_IDENTITY_NAMESPACES",
            ]
            .contains(&v.as_str())
        })
        .collect();
    assert!(missing.is_empty(), "flags without chart env: {missing:?}");
    assert_eq!(env["LGO_LOG_FORMAT"], "json");
    assert_eq!(env["LGO_LEADER_ELECT"], "true");
    assert_eq!(env["LGO_LEASE_NAME"], fullname);
    assert_eq!(env["LGO_LEASE_NAMESPACE"], "metadata.namespace");
    assert_eq!(env["LGO_IDENTITY"], "metadata.name");
    assert_eq!(env["LGO_HTTP_ADDR"], "0.0.0.0:8080");
    for name in [
        "AWS_REGION",
        "LGO_WATCH_NAMESPACE",
        "LGO_CLUSTER_ID",
        "LGO_NAMESPACED_ACCOUNT_ROLES",
        "LGO_OWN_IDENTITY_NAMESPACES",
    ] {
        assert!(
            !env.contains_key(name),
            "{name}: unset unless its value is given"
        );
    }

    // Probes on the named port, restricted security context, read-only root filesystem.
    assert_eq!(
        c["ports"][0],
        json!({"name": "http", "containerPort": 8080, "protocol": "TCP"})
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "http"})
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "http"})
    );
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());

    let service = the(&docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
}

#[test]
fn full_values_render_every_option() {
    let docs = render_ok("r", "ops", &["--values", "ci/full-values.yaml"]);
    let found = kinds(&docs);
    for kind in ["PodDisruptionBudget", "ServiceMonitor", "NetworkPolicy"] {
        assert!(found.contains(kind), "{kind} missing from {found:?}");
    }
    // watchNamespaces: a Role in each of them instead of a ClusterRole; cluster-wide only what
    // is cluster-scoped (ClusterLightsailAccounts, namespaces).
    let cluster_roles: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "ClusterRole").collect();
    assert_eq!(cluster_roles.len(), 1, "{cluster_roles:?}");
    assert_eq!(cluster_roles[0]["metadata"]["name"], "lgo-accounts");
    // accounts.clusterId: the operator has no reason to read Namespace kube-system.
    assert_eq!(
        rules_of(cluster_roles[0]),
        expected_account_rules(false, false)
    );
    assert_eq!(env_of(&docs)["LGO_ACCESS_SECRETS"], "true");
    assert_eq!(env_of(&docs)["LGO_SHARDS"], "blue,green");
    let subjects =
        json!([{"kind": "ServiceAccount", "name": "lightsail-controller", "namespace": "ops"}]);
    for namespace in ["research", "teaching"] {
        // accessSecrets.enabled: Secrets too, in the watched namespaces only.
        let mut rules = expected_watch_rules();
        rules.insert(row("", "secrets", "create,delete,get,list,patch,watch", ""));
        assert_eq!(rules_of(named_in(&docs, "Role", "lgo", namespace)), rules);
        let binding = named_in(&docs, "RoleBinding", "lgo", namespace);
        assert_eq!(binding["roleRef"]["name"], "lgo");
        assert_eq!(binding["subjects"], subjects);
    }
    // accounts.staticKeys: Secrets are read in the watched namespaces and the release namespace
    // only (a ClusterLightsailAccount's Secret goes there), not cluster-wide.
    for namespace in ["research", "teaching", "ops"] {
        let role = named_in(&docs, "Role", "lgo-static-keys", namespace);
        assert_eq!(
            rules_of(role),
            BTreeSet::from([row("", "secrets", "get", "")])
        );
        let binding = named_in(&docs, "RoleBinding", "lgo-static-keys", namespace);
        assert_eq!(binding["subjects"], subjects);
    }
    let secret_roles = docs
        .iter()
        .filter(|d| d["kind"] == "Role" && d["metadata"]["name"] == "lgo-static-keys")
        .count();
    assert_eq!(secret_roles, 3);
    // The Lease stays in the release namespace, under its configured name.
    let lease_role = named(&docs, "Role", "lgo-leader-election");
    assert_eq!(lease_role["metadata"]["namespace"], "ops");
    assert_eq!(rules_of(lease_role), expected_lease_rules("lgo-leader"));

    let sa = the(&docs, "ServiceAccount");
    assert_eq!(sa["metadata"]["name"], "lightsail-controller");
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/lightsail-gui-operator"
    );
    for crd in docs
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
    {
        assert_eq!(
            crd["metadata"]["annotations"],
            json!({"argocd.argoproj.io/sync-options": "Prune=false"}),
            "crds.keep=false: extra annotations only, no keep policy"
        );
    }

    let deployment = the(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let pdb = the(&docs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["minAvailable"], 2);
    let c = container(&docs);
    assert_eq!(
        c["image"],
        "registry.example.com/platform/lightsail-gui-operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );
    let env = env_of(&docs);
    for (name, value) in [
        ("AWS_REGION", "eu-central-1"),
        ("LGO_DEFAULT_REGION", "eu-west-1"),
        ("LGO_WATCH_NAMESPACE", "research,teaching"),
        ("LGO_LABEL_SELECTOR", "team=research"),
        ("LGO_MIN_SESSION_AGE", "10m"),
        ("LGO_STALLED_RETRY", "2m"),
        ("LGO_RETRY_INITIAL", "1s"),
        ("LGO_RETRY_MAX", "1m"),
        ("LGO_POLL_INITIAL", "500ms"),
        ("LGO_POLL_MAX", "10s"),
        ("LGO_COMPUTER_RECHECK_INITIAL", "15s"),
        ("LGO_COMPUTER_RECHECK_MAX", "2m"),
        ("LGO_RATE_LIMIT", "2"),
        ("LGO_RATE_BURST", "10"),
        ("LGO_CONCURRENCY", "8"),
        ("LGO_LEASE_NAME", "lgo-leader"),
        ("LGO_LEASE_DURATION", "30s"),
        ("LGO_LOG_FORMAT", "text"),
        ("LGO_LOG", "info,lightsail_gui_operator=debug"),
        ("AWS_STS_REGIONAL_ENDPOINTS", "regional"),
        ("LGO_CLUSTER_ID", "prod-eu-central-1"),
        (
            "LGO_NAMESPACED_ACCOUNT_ROLES",
            "arn:aws:iam::111122223333:role/lightsail-*,arn:aws:iam::*:role/research-gui-sessions",
        ),
        (
            "LGO_OWN_IDENTITY_NAMESPACES",
            "lightsail.operators.dev/own-identity=true",
        ),
    ] {
        assert_eq!(env.get(name).map(String::as_str), Some(value), "{name}");
    }
    // Every LGO_* variable the chart sets is one the operator reads (no typo goes unnoticed).
    let known = operator_env_vars();
    let unknown: Vec<&String> = env
        .keys()
        .filter(|name| name.starts_with("LGO_") && !known.contains(*name))
        .collect();
    assert!(
        unknown.is_empty(),
        "the chart sets what the operator does not read: {unknown:?}"
    );
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": "tmp", "mountPath": "/tmp"}])
    );
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["volumes"], json!([{"name": "tmp", "emptyDir": {}}]));
    assert_eq!(pod["priorityClassName"], "system-cluster-critical");
    assert_eq!(
        pod["imagePullSecrets"],
        json!([{"name": "registry-credentials"}])
    );

    let service = the(&docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["port"], 9090);
    let monitor = the(&docs, "ServiceMonitor");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http");
    let policy = the(&docs, "NetworkPolicy");
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
}

/// People get GuiSessions and LightsailAccounts through the built-in user-facing roles: the chart's
/// `-edit` ClusterRole carries the aggregate-to-edit and aggregate-to-admin labels, `-view` the
/// aggregate-to-view one; ClusterLightsailAccounts and every status stay out. Nothing binds them
/// to the operator. Checked on the rendered labels (here) and against the selectors of the
/// apiserver's own edit/admin/view roles (`people_roles_match_the_apiservers_aggregation_selectors`):
/// the control plane of the tests runs no kube-controller-manager, whose aggregation controller
/// would copy the rules, so aggregation itself cannot be watched happening there.
#[test]
fn people_roles_aggregate_into_edit_admin_and_view() {
    let fullname = "lgo-lightsail-gui-operator";
    let docs = render_ok("lgo", "ops", &[]);
    let edit = named(&docs, "ClusterRole", &format!("{fullname}-edit"));
    let labels = &edit["metadata"]["labels"];
    assert_eq!(
        labels["rbac.authorization.k8s.io/aggregate-to-edit"],
        "true"
    );
    assert_eq!(
        labels["rbac.authorization.k8s.io/aggregate-to-admin"],
        "true"
    );
    assert!(labels["rbac.authorization.k8s.io/aggregate-to-view"].is_null());
    let group = "lightsail.operators.dev";
    let all = "create,delete,deletecollection,get,list,patch,update,watch";
    assert_eq!(
        rules_of(edit),
        BTreeSet::from([
            row(group, "guisessions", all, ""),
            row(group, "lightsailaccounts", all, ""),
        ])
    );
    let view = named(&docs, "ClusterRole", &format!("{fullname}-view"));
    let labels = &view["metadata"]["labels"];
    assert_eq!(
        labels["rbac.authorization.k8s.io/aggregate-to-view"],
        "true"
    );
    assert!(labels["rbac.authorization.k8s.io/aggregate-to-edit"].is_null());
    assert_eq!(
        rules_of(view),
        BTreeSet::from([
            row(group, "guisessions", "get,list,watch", ""),
            row(group, "lightsailaccounts", "get,list,watch", ""),
        ])
    );
    // No binding names them: they are for people, through the built-in roles.
    for binding in docs
        .iter()
        .filter(|d| d["kind"].as_str().is_some_and(|k| k.ends_with("Binding")))
    {
        let role = binding["roleRef"]["name"].as_str().unwrap_or_default();
        assert!(
            !role.ends_with("-edit") && !role.ends_with("-view"),
            "{binding}"
        );
    }
    // Off, or without rbac.create: neither.
    for args in [
        &["--set", "rbac.aggregateToDefaultRoles=false"][..],
        &["--set", "rbac.create=false"][..],
    ] {
        let names = rbac_objects(&render_ok("lgo", "ops", args));
        assert!(
            names
                .iter()
                .all(|(_, _, n)| !n.ends_with("-edit") && !n.ends_with("-view")),
            "{args:?}: {names:?}"
        );
    }
}

/// The labels of the chart's people roles are the ones the apiserver's bootstrap `edit`, `admin`
/// and `view` ClusterRoles aggregate by (their aggregationRule selectors), on the real apiserver.
#[tokio::test]
async fn people_roles_match_the_apiservers_aggregation_selectors() {
    use k8s_openapi::api::rbac::v1::ClusterRole;
    let control_plane = support::control_plane();
    let admin = control_plane.client().await;
    let docs = render_ok("lgo", "ops", &[]);
    let labels_of = |name: &str| -> BTreeMap<String, String> {
        serde_json::from_value(named(&docs, "ClusterRole", name)["metadata"]["labels"].clone())
            .expect("labels")
    };
    let edit = labels_of("lgo-lightsail-gui-operator-edit");
    let view = labels_of("lgo-lightsail-gui-operator-view");
    let roles = Api::<ClusterRole>::all(admin);
    for (builtin, ours, selected) in [
        ("admin", &edit, true),
        ("edit", &edit, true),
        ("view", &view, true),
        ("view", &edit, false),
        ("edit", &view, false),
    ] {
        let role = roles.get(builtin).await.expect("bootstrap ClusterRole");
        let selectors = role
            .aggregation_rule
            .and_then(|a| a.cluster_role_selectors)
            .unwrap_or_default();
        assert!(!selectors.is_empty(), "{builtin} aggregates nothing");
        let matches = selectors.iter().any(|s| {
            s.match_expressions.as_ref().is_none_or(Vec::is_empty)
                && s.match_labels
                    .as_ref()
                    .is_some_and(|m| m.iter().all(|(k, v)| ours.get(k) == Some(v)))
        });
        assert_eq!(
            matches, selected,
            "{builtin}'s selectors {selectors:?} against {ours:?}"
        );
    }
}

/// The kinds and (namespace, name)s of the Roles, ClusterRoles and their bindings.
fn rbac_objects(docs: &[Value]) -> BTreeSet<(String, String, String)> {
    docs.iter()
        .filter(|d| {
            d["kind"]
                .as_str()
                .is_some_and(|k| k.ends_with("Role") || k.ends_with("RoleBinding"))
        })
        .map(|d| {
            (
                d["kind"].as_str().unwrap_or_default().to_owned(),
                d["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                d["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

/// `watchNamespaces`: a Role and RoleBinding per namespace for what lives there, Secret rights
/// only there, a ClusterRole only for what is cluster-scoped, and the list in
/// LGO_WATCH_NAMESPACE. The deprecated `watchNamespace` is merged into the list.
#[test]
fn watch_namespaces_get_a_role_each_and_nothing_cluster_wide_but_cluster_objects() {
    let object = |kind: &str, namespace: &str, name: &str| {
        (kind.to_owned(), namespace.to_owned(), name.to_owned())
    };
    let fullname = "lgo-lightsail-gui-operator";
    let accounts = format!("{fullname}-accounts");
    let lease = format!("{fullname}-leader-election");
    let static_keys = format!("{fullname}-static-keys");
    for (args, watched) in [
        (&["--set-json", r#"watchNamespaces=["a","b"]"#][..], "a,b"),
        (&["--set", "watchNamespace=a"][..], "a"),
        (
            &[
                "--set-json",
                r#"watchNamespaces=["a","b"]"#,
                "--set",
                "watchNamespace=c",
            ][..],
            "a,b,c",
        ),
        (
            &[
                "--set-json",
                r#"watchNamespaces=["a","b"]"#,
                "--set",
                "watchNamespace=b",
            ][..],
            "a,b",
        ),
    ] {
        let mut with_secrets = args.to_vec();
        with_secrets.extend([
            "--set",
            "accessSecrets.enabled=true",
            "--set",
            "accounts.staticKeys=true",
        ]);
        for (args, secrets) in [(args, false), (&with_secrets[..], true)] {
            let docs = render_ok("lgo", "ops", args);
            assert_eq!(env_of(&docs)["LGO_WATCH_NAMESPACE"], watched, "{args:?}");
            let namespaces: Vec<&str> = watched.split(',').collect();
            let mut expected = BTreeSet::from([
                object("ClusterRole", "", &accounts),
                object("ClusterRoleBinding", "", &accounts),
                object("Role", "ops", &lease),
                object("RoleBinding", "ops", &lease),
            ]);
            for namespace in &namespaces {
                expected.insert(object("Role", namespace, fullname));
                expected.insert(object("RoleBinding", namespace, fullname));
                let mut rules = expected_watch_rules();
                if secrets {
                    rules.insert(row("", "secrets", "create,delete,get,list,patch,watch", ""));
                }
                let role = named_in(&docs, "Role", fullname, namespace);
                assert_eq!(rules_of(role), rules, "{args:?}");
                let binding = named_in(&docs, "RoleBinding", fullname, namespace);
                assert_eq!(binding["roleRef"]["kind"], "Role");
                assert_eq!(
                    binding["subjects"],
                    json!([{"kind": "ServiceAccount", "name": fullname, "namespace": "ops"}])
                );
            }
            if secrets {
                for namespace in namespaces.iter().copied().chain(["ops"]) {
                    expected.insert(object("Role", namespace, &static_keys));
                    expected.insert(object("RoleBinding", namespace, &static_keys));
                    let role = named_in(&docs, "Role", &static_keys, namespace);
                    assert_eq!(
                        rules_of(role),
                        BTreeSet::from([row("", "secrets", "get", "")])
                    );
                }
            }
            assert_eq!(
                rbac_objects(&docs)
                    .into_iter()
                    .filter(|(_, _, name)| !name.ends_with("-edit") && !name.ends_with("-view"))
                    .collect::<BTreeSet<_>>(),
                expected,
                "{args:?}"
            );
            // Nothing about Secrets cluster-wide: static keys are read in the Roles only.
            assert_eq!(
                rules_of(named(&docs, "ClusterRole", &accounts)),
                expected_account_rules(false, true),
                "{args:?}"
            );
        }
    }
    // Namespace names are checked by the schema.
    let err = render(
        "lgo",
        "ops",
        &["--set-json", r#"watchNamespaces=["Not_A_Name"]"#],
    )
    .expect_err("an invalid namespace must be refused");
    assert!(err.contains("/watchNamespaces/0"), "{err}");
}

/// A shard (`--shard KEY`) holds the Lease `<lease name>-KEY` (src/process/cli.rs `lease_name()`): the
/// Lease Role must name that one, or the shard is forbidden to lead. The operator still gets the
/// base name (it appends the key itself).
#[test]
fn a_shard_may_use_its_own_lease() {
    for (args, base) in [
        (&[][..], "lgo-lightsail-gui-operator"),
        (&["--set", "leaderElection.leaseName=leader"][..], "leader"),
    ] {
        let mut shard_args = vec![
            "--set",
            "sharding.shard=blue",
            "--set",
            "crds.install=false",
        ];
        shard_args.extend_from_slice(args);
        let docs = render_ok("lgo", "ops", &shard_args);
        let lease_role = named(&docs, "Role", "lgo-lightsail-gui-operator-leader-election");
        assert_eq!(
            rules_of(lease_role),
            expected_lease_rules(&format!("{base}-blue")),
            "{args:?}"
        );
        let env = env_of(&docs);
        assert_eq!(env["LGO_LEASE_NAME"], base);
        assert_eq!(env["LGO_SHARD"], "blue");

        // The default instance keeps the base name, whatever shards it leaves to others.
        let mut default_args = vec!["--set-json", r#"sharding.shards=["blue"]"#];
        default_args.extend_from_slice(args);
        let docs = render_ok("lgo", "ops", &default_args);
        let lease_role = named(&docs, "Role", "lgo-lightsail-gui-operator-leader-election");
        assert_eq!(rules_of(lease_role), expected_lease_rules(base), "{args:?}");
    }
    // A shard key that is a valid label value but would make an invalid Lease name is refused at
    // render time, instead of an operator that cannot create its Lease.
    let err = render("lgo", "ops", &["--set", "sharding.shard=Blue_1"])
        .expect_err("an invalid Lease name must be refused");
    assert!(err.contains("is not a valid object name"), "{err}");
}

#[test]
fn crds_can_be_left_out_and_leader_election_off() {
    let docs = render_ok(
        "r",
        "ops",
        &[
            "--set",
            "crds.install=false",
            "--set",
            "leaderElection.enabled=false",
        ],
    );
    let found = kinds(&docs);
    assert!(!found.contains("CustomResourceDefinition"), "{found:?}");
    // Without leader election the Lease Role goes too; only the watch rules remain.
    assert!(!found.contains("Role"), "{found:?}");
    assert_eq!(env_of(&docs)["LGO_LEADER_ELECT"], "false");
}

fn pod_from_template(deployment: &Deployment, name: &str) -> Pod {
    let template = deployment
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .expect("deployment has a pod template");
    let mut metadata = template.metadata.unwrap_or_default();
    metadata.name = Some(name.to_owned());
    Pod {
        metadata,
        spec: template.spec,
        ..Default::default()
    }
}

async fn expect_rejected(pods: &Api<Pod>, pod: &Pod, field: &str) {
    match pods.create(&PostParams::default(), pod).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            assert!(
                status
                    .message
                    .contains("violates PodSecurity \"restricted:latest\"")
                    && status.message.contains(field),
                "expected a restricted-standard violation naming {field}: {}",
                status.message
            );
        }
        Ok(_) => panic!("a pod breaking the restricted standard ({field}) was admitted"),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[tokio::test]
async fn chart_applies_and_its_pod_passes_restricted_pod_security() {
    let control_plane = support::control_plane();
    let client = control_plane.client().await;
    let namespace = support::restricted_namespace(&client, "helm-pss").await;
    let release = format!("pss-{}", std::process::id());
    // Every optional object the apiserver can take (no ServiceMonitor or PrometheusRule: their
    // CRDs are not here).
    let manifests = render(
        &release,
        &namespace,
        &[
            "--set",
            "replicas=2",
            "--set",
            "metrics.grafanaDashboard.enabled=true",
            "--set",
            "networkPolicy.enabled=true",
            "--set",
            "networkPolicy.egress.enabled=true",
        ],
    )
    .unwrap_or_else(|e| panic!("helm template: {e}"));
    let warnings = apply(control_plane, &manifests);
    // PodSecurity only warns for a Deployment; a warning here means its Pods would be refused.
    assert!(
        !warnings.contains("PodSecurity"),
        "the Deployment's pod template breaks the namespace's standard:\n{warnings}"
    );

    let deployment = Api::<Deployment>::namespaced(client.clone(), &namespace)
        .get(&format!("{release}-lightsail-gui-operator"))
        .await
        .expect("the Deployment was created");
    let pods = Api::<Pod>::namespaced(client.clone(), &namespace);
    // No controller-manager runs here, so make the Pod the Deployment would make.
    pods.create(
        &PostParams::default(),
        &pod_from_template(&deployment, "operator"),
    )
    .await
    .expect("the chart's pod is admitted under the restricted standard");

    // The check can fail: copies that break the standard are refused.
    let mut escalating = pod_from_template(&deployment, "escalating");
    escalating.spec.as_mut().expect("spec").containers[0]
        .security_context
        .as_mut()
        .expect("securityContext")
        .allow_privilege_escalation = Some(true);
    expect_rejected(&pods, &escalating, "allowPrivilegeEscalation").await;

    let mut rooted = pod_from_template(&deployment, "rooted");
    let spec = rooted.spec.as_mut().expect("spec");
    spec.security_context
        .as_mut()
        .expect("pod securityContext")
        .run_as_non_root = None;
    spec.containers[0]
        .security_context
        .as_mut()
        .expect("securityContext")
        .run_as_non_root = None;
    expect_rejected(&pods, &rooted, "runAsNonRoot").await;
}

#[test]
fn dockerfile_builds_the_binary_the_chart_runs() {
    let text =
        std::fs::read_to_string(support::repo_root().join("Dockerfile")).expect("Dockerfile");
    let stages: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(stages.len(), 2, "a build and a runtime stage: {stages:?}");
    // glibc-linked binary: build and runtime on the same Debian release.
    assert!(stages[0].contains("-bookworm"), "{}", stages[0]);
    assert!(
        stages[1].contains("distroless/cc-debian12:nonroot"),
        "{}",
        stages[1]
    );
    assert!(text.contains("--bin lightsail-gui-operator"));
    assert!(text.contains("USER 65532:65532"));
    assert!(text.contains(r#"ENTRYPOINT ["/usr/local/bin/lightsail-gui-operator"]"#));
    // The chart's securityContext runs as the image's user.
    let values: Value = serde_yaml::from_str(
        &std::fs::read_to_string(chart_dir().join("values.yaml")).expect("values.yaml"),
    )
    .expect("values parse");
    assert_eq!(values["podSecurityContext"]["runAsUser"], 65532);
    // By default the chart runs the image the release workflow builds from this Dockerfile.
    assert_eq!(
        values["image"]["repository"],
        "ghcr.io/lightsail-gui-operator/lightsail-gui-operator"
    );
}

/// The runtime image has glibc 2.36, libgcc_s and CA certificates, and nothing else a binary
/// could link (no OpenSSL): the operator built here must need no more than that.
#[test]
fn operator_binary_needs_only_what_distroless_cc_debian12_ships() {
    let binary = env!("CARGO_BIN_EXE_lightsail-gui-operator");
    let out = Command::new("readelf")
        .args(["--dynamic", "--version-info", "--wide", binary])
        .output()
        .expect("run readelf (binutils)");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let shipped = [
        "libc.so.6",
        "libm.so.6",
        "libgcc_s.so.1",
        "ld-linux-x86-64.so.2",
    ];
    let needed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next())
        .collect();
    assert!(
        !needed.is_empty(),
        "no NEEDED entries: is it linked dynamically?\n{text}"
    );
    for lib in &needed {
        assert!(
            shipped.contains(lib),
            "{lib} is not in distroless/cc-debian12"
        );
    }
    // Symbol versions above the runtime's glibc would fail at start-up there.
    for version in text.split("GLIBC_").skip(1) {
        let version: String = version
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let parts: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
        assert!(
            parts.as_slice() <= [2, 36].as_slice(),
            "needs GLIBC_{version}, newer than Debian 12's 2.36"
        );
    }
}

/// What `identity` may do in `namespace` according to the apiserver itself, less the grants every
/// authenticated user has (self-reviews), as rows comparable with the chart's rules.
async fn granted_rules(
    identity: &kube::Client,
    namespace: &str,
) -> BTreeSet<(String, String, String, String)> {
    use k8s_openapi::api::authorization::v1::SelfSubjectRulesReview;
    let review: SelfSubjectRulesReview =
        serde_json::from_value(json!({"spec": {"namespace": namespace}})).expect("review");
    let review = Api::<SelfSubjectRulesReview>::all(identity.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SelfSubjectRulesReview");
    let status = review.status.expect("review status");
    assert!(!status.incomplete, "rules review incomplete: {status:?}");
    let rules = json!({"rules": status.resource_rules
        .into_iter()
        .filter(|r| {
            let groups = r.api_groups.clone().unwrap_or_default();
            !groups.iter().any(|g| g == "authorization.k8s.io" || g == "authentication.k8s.io")
        })
        .collect::<Vec<_>>()});
    rules_of(&rules)
}

/// The chart's ServiceAccount, RBAC and Deployment settings are enough for the real operator to
/// do its whole job (lease, status, events, finalizer, stop on delete) and allow nothing more.
#[tokio::test]
async fn chart_service_account_runs_the_operator_and_may_do_nothing_else() {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{DeleteParams, ListParams};
    use kube::runtime::wait::await_condition;
    use lightsail_sim::{ComputerSpec, SimConfig, Simulator};
    use std::time::Duration;
    use support::operator::{
        Operator, OperatorOptions, condition_is, eventually, guisession, wait_for, wait_for_event,
    };

    let control_plane = support::control_plane();
    let admin = control_plane.client().await;
    let release_ns = support::restricted_namespace(&admin, "helm-rbac").await;
    let sessions_ns = support::test_namespace(&admin, "helm-rbac-sessions").await;
    let fullname = "rbac-lightsail-gui-operator";
    let manifests =
        render("rbac", &release_ns, &[]).unwrap_or_else(|e| panic!("helm template: {e}"));
    apply(control_plane, &manifests);
    let docs = support::documents(&manifests);
    assert_eq!(
        container(&docs)["args"],
        json!(["run"]),
        "the harness runs `run`"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig =
        service_account_kubeconfig(control_plane, &admin, &release_ns, fullname, dir.path()).await;
    let sim = Simulator::start(
        SimConfig::default().with_computer(ComputerSpec::new("research-desktop")),
        "127.0.0.1:0",
    )
    .await
    .expect("simulator");
    let sim_url = sim.endpoint_url();

    // The Deployment's own env, with the downward-API values a kubelet would fill in, so the
    // binary proves the chart's configuration parses and works: leader election on, the Lease
    // named by the chart in the release namespace, all namespaces watched. (HTTP address and
    // log settings are set by flag by the harness, which finds the port in the JSON log.)
    let identity = "rbac-operator-0";
    let mut options = OperatorOptions::new("", &sim_url);
    options.args.clear();
    options.kubeconfig = Some(kubeconfig.clone());
    options.env = operator_env(&docs, &release_ns, identity);
    let operator = Operator::start(control_plane, options);
    eventually(Duration::from_secs(60), "ready (/readyz 200)", || {
        operator.http_get("/readyz").0 == 200
    })
    .await;
    assert_eq!(operator.http_get("/healthz").0, 200);

    // Leader election works with the Lease Role (get/patch on its one Lease, create).
    let leases = Api::<Lease>::namespaced(admin.clone(), &release_ns);
    let holder = |lease: Option<&Lease>| {
        lease
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.holder_identity.clone())
    };
    let lease = tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(leases.clone(), fullname, move |l: Option<&Lease>| {
            holder(l).as_deref() == Some(identity)
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("no Lease {fullname} held by {identity}"))
    .expect("watch lease")
    .expect("lease");
    let first_renewal = lease.spec.as_ref().and_then(|s| s.renew_time.clone());

    // A GuiSession with stopOnDelete: the operator patches in its finalizer, writes status and
    // records Events, all as the chart's ServiceAccount.
    let sessions = Api::<GuiSession>::namespaced(admin.clone(), &sessions_ns);
    let session: GuiSession = serde_json::from_value(guisession(
        "research-desktop",
        json!({"resourceName": "research-desktop", "stopOnDelete": true}),
    ))
    .expect("GuiSession");
    sessions
        .create(&PostParams::default(), &session)
        .await
        .expect("create GuiSession");
    let ready = wait_for(
        &sessions,
        "research-desktop",
        Duration::from_secs(60),
        "Ready",
        |s| condition_is(s, "Ready", "True"),
    )
    .await;
    assert!(
        ready.metadata.finalizers.as_ref().is_some_and(|f| f
            .iter()
            .any(|f| f == "lightsail.operators.dev/stop-session")),
        "finalizer not added: {:?}",
        ready.metadata
    );
    // Events are best effort for the operator, so a denied create would not stop Ready: look.
    wait_for_event(
        &admin,
        &sessions_ns,
        "research-desktop",
        Duration::from_secs(30),
        |(_, reason, _)| reason == "SessionStarted",
    )
    .await;

    // Deleting it: StopGUISession, then the finalizer goes (metadata patch) and so does the object.
    sessions
        .delete("research-desktop", &DeleteParams::default())
        .await
        .expect("delete GuiSession");
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(
            sessions.clone(),
            "research-desktop",
            |s: Option<&GuiSession>| s.is_none(),
        ),
    )
    .await
    .unwrap_or_else(|_| panic!("GuiSession not released after delete"))
    .expect("watch deletion");
    let stops: u64 = sim
        .calls()
        .calls
        .iter()
        .filter(|c| c.action == "StopGUISession")
        .map(|c| c.count)
        .sum();
    assert_eq!(stops, 1, "one StopGUISession on delete");

    // The Lease keeps being renewed (patch on the named Lease).
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(leases, fullname, move |l: Option<&Lease>| {
            l.and_then(|l| l.spec.as_ref())
                .and_then(|s| s.renew_time.clone())
                != first_renewal
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("Lease {fullname} not renewed"))
    .expect("watch lease");

    // Nothing more: Secrets are refused, and the apiserver's own view of the identity's rights is
    // exactly the chart's rules.
    let identity_client = client_from(&kubeconfig).await;
    for ns in [&sessions_ns, &release_ns] {
        match Api::<Secret>::namespaced(identity_client.clone(), ns)
            .list(&ListParams::default())
            .await
        {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
            other => panic!("listing Secrets in {ns} must be forbidden, got {other:?}"),
        }
    }
    let mut expected = expected_watch_rules();
    expected.extend(expected_account_rules(false, true));
    assert_eq!(
        granted_rules(&identity_client, &sessions_ns).await,
        expected
    );
    let mut in_release_ns = expected_watch_rules();
    in_release_ns.extend(expected_account_rules(false, true));
    in_release_ns.extend(expected_lease_rules(fullname));
    assert_eq!(
        granted_rules(&identity_client, &release_ns).await,
        in_release_ns
    );
    assert!(
        !operator.log_text().contains("forbidden"),
        "the operator was refused something:\n{}",
        operator.log_text()
    );

    drop(operator);
    sim.shutdown().await.expect("simulator shutdown");
}
