//! The chart as installed, one install per mode (defaults, a shard, the default instance of a
//! sharded fleet, access Secrets, static keys, a namespace-scoped install), each proven on the
//! real kube-apiserver by the real operator binary running on the chart's ServiceAccount token
//! with the Deployment's env and leader election on: it holds its Lease and does its whole job
//! (sessions, finalizer and stop on delete, Events, account statuses, access Secrets written,
//! rewritten and deleted, static keys read). Then the apiserver's audit log says what that
//! ServiceAccount asked for: nothing refused in any mode, and no rule the chart grants it that no
//! mode used.
//!
//! Every expectation comes from the rendered chart (its RBAC, its Deployment's env), so the test
//! follows the chart and the operator as they change together.
//!
//! `cargo test --test chart_modes -- --nocapture` shows the per-mode table.
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use lightsail_gui_operator::account::types::{ClusterLightsailAccount, LightsailAccount};
use lightsail_gui_operator::guisession::types::GuiSession;
use lightsail_sim::{
    AccountSpec, ComputerSpec, DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCOUNT_ID,
    DEFAULT_SECRET_ACCESS_KEY, RoleSpec, SimConfig, Simulator, role_arn,
};
use serde_json::{Value, json};
use support::audit::{self, AuditEvent};
use support::chart::{self, Grant};
use support::env::{WAIT, ready};
use support::operator::{
    Operator, OperatorOptions, apply_json, eventually, guisession, wait_for, wait_for_event,
};

/// The AWS account of the LightsailAccounts' role, and that of the ClusterLightsailAccount's.
const LAB: &str = "111122223333";
const SHARED: &str = "444455556666";
/// Flux's sharding label, which `--shard KEY` selects on.
const SHARD_LABEL: &str = "sharding.fluxcd.io/key";
/// The finalizer of GuiSessions with stopOnDelete.
const FINALIZER: &str = "lightsail.operators.dev/stop-session";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Default,
    Shard,
    Shards,
    AccessSecrets,
    StaticKeys,
    WatchNamespaces,
}

impl Mode {
    const ALL: [Mode; 6] = [
        Mode::Default,
        Mode::Shard,
        Mode::Shards,
        Mode::AccessSecrets,
        Mode::StaticKeys,
        Mode::WatchNamespaces,
    ];

    fn name(self) -> &'static str {
        match self {
            Mode::Default => "default",
            Mode::Shard => "sharding.shard=blue",
            Mode::Shards => "sharding.shards={blue}",
            Mode::AccessSecrets => "accessSecrets.enabled",
            Mode::StaticKeys => "accounts.staticKeys",
            Mode::WatchNamespaces => "watchNamespaces={a,b}",
        }
    }

    /// The release: a name of its own per mode, since ClusterRoles are cluster-wide.
    fn release(self) -> &'static str {
        match self {
            Mode::Default => "m-default",
            Mode::Shard => "m-shard",
            Mode::Shards => "m-shards",
            Mode::AccessSecrets => "m-access",
            Mode::StaticKeys => "m-keys",
            Mode::WatchNamespaces => "m-ns",
        }
    }

    /// How many namespaces of GuiSessions the mode's scenario uses.
    fn session_namespaces(self) -> usize {
        if self == Mode::WatchNamespaces { 2 } else { 1 }
    }

    /// `helm template` arguments; `namespaces` are the scenario's.
    fn values(self, namespaces: &[String]) -> Vec<String> {
        let args: Vec<String> = match self {
            Mode::Default => vec![],
            Mode::Shard => vec![
                "--set".into(),
                "sharding.shard=blue".into(),
                "--set".into(),
                "crds.install=false".into(),
            ],
            Mode::Shards => vec!["--set-json".into(), r#"sharding.shards=["blue"]"#.into()],
            Mode::AccessSecrets => vec!["--set".into(), "accessSecrets.enabled=true".into()],
            Mode::StaticKeys => vec!["--set".into(), "accounts.staticKeys=true".into()],
            Mode::WatchNamespaces => vec![
                "--set-json".into(),
                format!("watchNamespaces={}", json!(namespaces)),
            ],
        };
        args
    }
}

/// A mode, installed: what the scenario and the audit need to know of it.
#[derive(Clone)]
struct Install {
    mode: Mode,
    release_namespace: String,
    namespaces: Vec<String>,
    docs: Vec<Value>,
    service_account: String,
    /// What the chart's RBAC grants the ServiceAccount.
    grants: BTreeSet<Grant>,
}

impl Install {
    fn username(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.release_namespace, self.service_account
        )
    }

    fn env(&self) -> BTreeMap<String, String> {
        chart::env_of(&self.docs)
    }

    fn shard(&self) -> Option<String> {
        self.env()
            .get("LGO_SHARD")
            .filter(|s| !s.is_empty())
            .cloned()
    }

    fn flag(&self, name: &str) -> bool {
        self.env().get(name).map(String::as_str) == Some("true")
    }

    /// The Lease the operator holds: `LGO_LEASE_NAME`, plus `-KEY` on a shard (as the operator's
    /// `lease_name()` makes it; the chart's Lease Role must agree, or the audit shows a 403).
    fn lease(&self) -> String {
        let base = self.env()["LGO_LEASE_NAME"].clone();
        match self.shard() {
            Some(key) => format!("{base}-{key}"),
            None => base,
        }
    }

    fn cluster_account(&self) -> String {
        format!("{}-shared", self.mode.release())
    }

    /// The labels every GuiSession of the scenario carries: the shard's key on a shard.
    fn labels(&self) -> Value {
        match self.shard() {
            Some(key) => json!({ SHARD_LABEL: key }),
            None => json!({}),
        }
    }

    fn session(&self, name: &str, spec: Value) -> Value {
        let mut manifest = guisession(name, spec);
        manifest["metadata"]["labels"] = self.labels();
        manifest
    }
}

/// Creates the namespaces, renders the chart for `mode` and applies it (as `helm install` would).
async fn install(mode: Mode, admin: &kube::Client) -> Install {
    let control_plane = support::control_plane();
    let release_namespace =
        support::test_namespace(admin, &format!("{}-ops", mode.release())).await;
    let mut namespaces = Vec::new();
    for i in 0..mode.session_namespaces() {
        namespaces.push(support::test_namespace(admin, &format!("{}-s{i}", mode.release())).await);
    }
    let values = mode.values(&namespaces);
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    let manifests = chart::render(mode.release(), &release_namespace, &values)
        .unwrap_or_else(|e| panic!("{}: helm template: {e}", mode.name()));
    chart::apply(control_plane, &manifests);
    let docs = support::documents(&manifests);
    let service_account = chart::the(&docs, "ServiceAccount")["metadata"]["name"]
        .as_str()
        .expect("ServiceAccount name")
        .to_owned();
    let grants = chart::grants_to_service_account(&docs, &release_namespace, &service_account);
    assert!(
        !grants.is_empty(),
        "{}: the chart grants nothing",
        mode.name()
    );
    Install {
        mode,
        release_namespace,
        namespaces,
        docs,
        service_account,
        grants,
    }
}

fn simulator_config(namespaces: usize) -> SimConfig {
    let mut config = SimConfig::default()
        .with_account(
            AccountSpec::new(LAB).with_role(RoleSpec::new("gui").trusting(DEFAULT_ACCOUNT_ID)),
        )
        .with_account(
            AccountSpec::new(SHARED).with_role(RoleSpec::new("gui").trusting(DEFAULT_ACCOUNT_ID)),
        );
    for i in 0..namespaces {
        config = config
            .with_computer(ComputerSpec::new(format!("vm-own-{i}")))
            .with_computer(ComputerSpec::new(format!("vm-desk-{i}")))
            .with_computer(ComputerSpec::new(format!("vm-lab-{i}")).in_account(LAB))
            .with_computer(ComputerSpec::new(format!("vm-shared-{i}")).in_account(SHARED));
    }
    config
}

/// Waits (watching, with a deadline) until object `name` satisfies `check`.
async fn wait_until<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    check: impl Fn(Option<&K>) -> bool + Send + 'static,
) where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    match tokio::time::timeout(WAIT, await_condition(api.clone(), name, check)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("{name}: watching for {what}: {e}"),
        Err(_) => panic!(
            "{name}: not {what} within {WAIT:?}; last seen: {:?}",
            api.get_opt(name).await
        ),
    }
}

fn account_ready(status: Option<&lightsail_gui_operator::account::types::AccountStatus>) -> bool {
    status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn secret_value(secret: Option<&Secret>, key: &str) -> Option<Vec<u8>> {
    Some(secret?.data.as_ref()?.get(key)?.0.clone())
}

/// The audit events of `username`, once `enough` holds of them (waiting with a deadline: the
/// apiserver writes an event as its request completes, not before the client sees the answer).
async fn audit_events(
    log: &Path,
    username: &str,
    what: &str,
    enough: impl Fn(&[AuditEvent]) -> bool,
) -> Vec<AuditEvent> {
    let mut events = Vec::new();
    eventually(Duration::from_secs(30), what, || {
        events = audit::of_user(&audit::read(log), username);
        enough(&events)
    })
    .await;
    events
}

/// The mode's whole job, as the chart's ServiceAccount: panics (with the operator's log) when
/// the operator does not get it done.
async fn scenario(install: Install) {
    let control_plane = support::control_plane();
    let admin = control_plane.client().await;
    let name = install.mode.name();
    let shard = install.shard();
    let access_secrets = install.flag("LGO_ACCESS_SECRETS");
    let static_keys = install.flag("LGO_ACCOUNT_STATIC_KEYS");
    // Shards leave account statuses to the default instance (they only load credentials), so
    // a shard alone cannot make an account usable: its scenario has no accounts.
    let uses_accounts = shard.is_none();

    let sim = Simulator::start(simulator_config(install.namespaces.len()), "127.0.0.1:0")
        .await
        .expect("simulator");
    let sim_url = sim.endpoint_url();
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = chart::service_account_kubeconfig(
        control_plane,
        &admin,
        &install.release_namespace,
        &install.service_account,
        dir.path(),
    )
    .await;
    let identity = format!("{}-0", install.mode.release());
    let mut options = OperatorOptions::new("", &sim_url);
    options.args.clear();
    options.kubeconfig = Some(kubeconfig);
    options.env = chart::operator_env(&install.docs, &install.release_namespace, &identity);
    options
        .env
        .push(("AWS_ENDPOINT_URL_STS".into(), sim_url.clone()));
    let operator = Operator::start(control_plane, options);
    eventually(WAIT, &format!("{name}: ready (/readyz 200)"), || {
        operator.http_get("/readyz").0 == 200
    })
    .await;

    // It leads: it holds its Lease (LGO_LEASE_NAME, with -KEY on a shard) in the release
    // namespace, which only works if the chart's Lease Role names that one.
    let lease = install.lease();
    let leases = Api::<Lease>::namespaced(admin.clone(), &install.release_namespace);
    let holder = identity.clone();
    wait_until(
        &leases,
        &lease,
        "held by the operator",
        move |l: Option<&Lease>| {
            l.and_then(|l| l.spec.as_ref())
                .and_then(|s| s.holder_identity.as_deref())
                == Some(holder.as_str())
        },
    )
    .await;

    // Accounts, where this install writes their statuses (a shard leaves that to the default
    // instance, which is another install, and its GuiSessions wait for it): a
    // ClusterLightsailAccount for the scenario's namespaces, and a LightsailAccount in each (with
    // static keys from a Secret when the install allows them). Ready before GuiSessions name
    // them, as an admin would set them up. (A GuiSession created together with its account can
    // stay "not checked yet": the operator wakes it right after patching the account's status,
    // which its account cache may not hold yet. That is the controller's to fix, not the
    // chart's; this test is about RBAC.)
    let clusters = Api::<ClusterLightsailAccount>::all(admin.clone());
    let cluster_account = install.cluster_account();
    if uses_accounts {
        apply_json(
            &clusters,
            &cluster_account,
            json!({"apiVersion": "lightsail.operators.dev/v1alpha1",
                   "kind": "ClusterLightsailAccount",
                   "metadata": {"name": cluster_account},
                   "spec": {"roleArn": role_arn(SHARED, "gui"),
                            "namespaces": {"names": install.namespaces}}}),
        )
        .await;
        for ns in &install.namespaces {
            let mut account = json!({"roleArn": role_arn(LAB, "gui")});
            if static_keys {
                let keys: Secret = serde_json::from_value(json!({
                    "metadata": {"name": "lab-keys"},
                    "stringData": {"AWS_ACCESS_KEY_ID": DEFAULT_ACCESS_KEY_ID,
                                   "AWS_SECRET_ACCESS_KEY": DEFAULT_SECRET_ACCESS_KEY},
                }))
                .expect("secret");
                Api::<Secret>::namespaced(admin.clone(), ns)
                    .create(&PostParams::default(), &keys)
                    .await
                    .expect("create the static keys Secret");
                account["credentialsSecretRef"] = json!({"name": "lab-keys"});
            }
            let accounts = Api::<LightsailAccount>::namespaced(admin.clone(), ns);
            apply_json(
                &accounts,
                "lab",
                json!({"apiVersion": "lightsail.operators.dev/v1alpha1",
                       "kind": "LightsailAccount",
                       "metadata": {"name": "lab"}, "spec": account}),
            )
            .await;
            wait_until(&accounts, "lab", "Ready", |a: Option<&LightsailAccount>| {
                account_ready(a.and_then(|a| a.status.as_ref()))
            })
            .await;
        }
        wait_until(
            &clusters,
            &cluster_account,
            "Ready",
            |a: Option<&ClusterLightsailAccount>| account_ready(a.and_then(|a| a.status.as_ref())),
        )
        .await;
    }

    // GuiSessions: on the operator's own identity with stopOnDelete, in each account kind, and
    // (access Secrets) one with spec.access.
    let mut names = vec!["own"];
    if uses_accounts {
        names.extend(["lab", "shared"]);
    }
    if access_secrets {
        names.push("desk");
    }
    for (i, ns) in install.namespaces.iter().enumerate() {
        let sessions = Api::<GuiSession>::namespaced(admin.clone(), ns);
        for session in &names {
            let spec = match *session {
                "own" => json!({"resourceName": format!("vm-own-{i}"), "stopOnDelete": true}),
                "lab" => json!({"resourceName": format!("vm-lab-{i}"),
                                "accountRef": {"kind": "LightsailAccount", "name": "lab"}}),
                "shared" => json!({"resourceName": format!("vm-shared-{i}"),
                                   "accountRef": {"kind": "ClusterLightsailAccount",
                                                  "name": cluster_account}}),
                _ => json!({"resourceName": format!("vm-desk-{i}"), "access": {}}),
            };
            support::operator::apply(&sessions, install.session(session, spec)).await;
        }
    }

    for (i, ns) in install.namespaces.iter().enumerate() {
        let sessions = Api::<GuiSession>::namespaced(admin.clone(), ns);
        for session in &names {
            wait_for(&sessions, session, WAIT, &format!("{name}: Ready"), ready).await;
        }
        let own = sessions.get("own").await.expect("own");
        assert!(
            own.metadata
                .finalizers
                .as_ref()
                .is_some_and(|f| f.iter().any(|f| f == FINALIZER)),
            "{name}: finalizer not added: {:?}",
            own.metadata
        );
        // Events are best effort for the operator, so a refused create would not stop Ready.
        wait_for_event(&admin, ns, "own", WAIT, |(_, reason, _)| {
            reason == "SessionStarted"
        })
        .await;

        if access_secrets {
            // The Secret is written (created), rewritten when someone edits it (patched), and
            // deleted when spec.access goes.
            let secrets = Api::<Secret>::namespaced(admin.clone(), ns);
            wait_until(&secrets, "desk-access", "written", |s: Option<&Secret>| {
                secret_value(s, "primaryUrl").is_some()
            })
            .await;
            let edited = b"https://edited.invalid/".to_vec();
            let mut data = BTreeMap::new();
            data.insert("primaryUrl".to_owned(), ByteString(edited.clone()));
            secrets
                .patch(
                    "desk-access",
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "data": data })),
                )
                .await
                .expect("edit the access Secret");
            wait_until(
                &secrets,
                "desk-access",
                "rewritten",
                move |s: Option<&Secret>| {
                    secret_value(s, "primaryUrl").is_some_and(|v| v != edited)
                },
            )
            .await;
            support::operator::apply(
                &sessions,
                install.session("desk", json!({"resourceName": format!("vm-desk-{i}")})),
            )
            .await;
            wait_until(&secrets, "desk-access", "deleted", |s: Option<&Secret>| {
                s.is_none()
            })
            .await;
        }
    }

    // Deleting `own`: StopGUISession, then the finalizer goes (a patch) and so does the object.
    for (i, ns) in install.namespaces.iter().enumerate() {
        let sessions = Api::<GuiSession>::namespaced(admin.clone(), ns);
        sessions
            .delete("own", &DeleteParams::default())
            .await
            .expect("delete own");
        wait_until(&sessions, "own", "deleted", |s: Option<&GuiSession>| {
            s.is_none()
        })
        .await;
        let stops = sim
            .calls()
            .count(Some("StopGUISession"), Some(&format!("vm-own-{i}")), None);
        assert_eq!(stops, 1, "{name}: one StopGUISession on delete in {ns}");
    }

    // The audit log has caught up with the deletes: two patches of each `own` (finalizer in and
    // out) by the operator.
    let username = install.username();
    let namespaces = install.namespaces.clone();
    audit_events(
        &control_plane.audit_log(),
        &username,
        &format!("{name}: the finalizer patches in the audit log"),
        move |events| {
            namespaces.iter().all(|ns| {
                events
                    .iter()
                    .filter(|e| {
                        e.verb == "patch"
                            && e.resource() == "guisessions"
                            && e.object_ref
                                .as_ref()
                                .is_some_and(|o| o.namespace == *ns && o.name == "own")
                    })
                    .count()
                    >= 2
            })
        },
    )
    .await;

    drop(operator);
    sim.shutdown().await.expect("simulator shutdown");
}

/// Removes what the scenario left (also after a failure), so that the next mode's operator,
/// which may watch every namespace, sees none of it: GuiSessions (finalizers dropped: no
/// operator runs), accounts. No kube-controller-manager runs here to collect anything.
async fn clean_up(install: &Install, admin: &kube::Client) {
    for ns in &install.namespaces {
        let sessions = Api::<GuiSession>::namespaced(admin.clone(), ns);
        for session in sessions.list(&ListParams::default()).await.expect("list") {
            let name = session.metadata.name.clone().expect("name");
            if session.metadata.finalizers.is_some() {
                sessions
                    .patch(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                    )
                    .await
                    .expect("drop finalizers");
            }
            let _ = sessions.delete(&name, &DeleteParams::default()).await;
        }
        let accounts = Api::<LightsailAccount>::namespaced(admin.clone(), ns);
        let _ = accounts
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await;
    }
    let _ = Api::<ClusterLightsailAccount>::all(admin.clone())
        .delete(&install.cluster_account(), &DeleteParams::default())
        .await;
}

fn panic_message(error: tokio::task::JoinError) -> String {
    match error.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic".to_owned()),
        Err(e) => e.to_string(),
    }
}

/// (cluster-wide or namespaced, group, resource, verb, name): a grant, wherever its namespace is.
type GrantKey = (&'static str, String, String, String, String);

fn key(grant: &Grant) -> GrantKey {
    (
        if grant.namespace.is_some() {
            "namespaced"
        } else {
            "cluster-wide"
        },
        grant.group.clone(),
        grant.resource.clone(),
        grant.verb.clone(),
        grant.name.clone().unwrap_or_default(),
    )
}

/// The grant keys of every mode that no request of that mode used, with the modes granting them.
fn unused(installs: &[Install], events: &[AuditEvent]) -> BTreeMap<GrantKey, Vec<&'static str>> {
    let mut used = BTreeSet::new();
    let mut granted: BTreeMap<GrantKey, Vec<&'static str>> = BTreeMap::new();
    for install in installs {
        let mine = audit::of_user(events, &install.username());
        for grant in &install.grants {
            let modes = granted.entry(key(grant)).or_default();
            if !modes.contains(&install.mode.name()) {
                modes.push(install.mode.name());
            }
            if mine.iter().any(|e| e.uses(grant)) {
                used.insert(key(grant));
            }
        }
    }
    granted.retain(|k, _| !used.contains(k));
    granted
}

#[tokio::test(flavor = "multi_thread")]
async fn every_mode_runs_on_its_own_rbac_with_nothing_refused_and_nothing_unused() {
    let control_plane = support::control_plane();
    let admin = control_plane.client().await;
    // The shard install leaves the CRDs out (crds.install=false): they must be there already.
    support::install_crds(&admin).await;

    let mut installs = Vec::new();
    let mut failures = Vec::new();
    for mode in Mode::ALL {
        let install = install(mode, &admin).await;
        // A failing mode is reported with the others, not in place of them.
        if let Err(e) = tokio::spawn(scenario(install.clone())).await {
            failures.push(format!("{}: {}", mode.name(), panic_message(e)));
        }
        clean_up(&install, &admin).await;
        installs.push(install);
    }

    // Every rule used somewhere: wait (with a deadline) for late audit entries before judging.
    let log = control_plane.audit_log();
    let mut events = audit::read(&log);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !unused(&installs, &events).is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        events = audit::read(&log);
    }

    println!("\n{:<26} {:>9} {:>10}", "mode", "requests", "forbidden");
    for install in &installs {
        let mine = audit::of_user(&events, &install.username());
        let requests: BTreeSet<&str> = mine.iter().map(|e| e.audit_id.as_str()).collect();
        let refused: Vec<&AuditEvent> = mine.iter().filter(|e| e.forbidden()).collect();
        let forbidden: BTreeSet<&str> = refused.iter().map(|e| e.audit_id.as_str()).collect();
        println!(
            "{:<26} {:>9} {:>10}",
            install.mode.name(),
            requests.len(),
            forbidden.len()
        );
        if !forbidden.is_empty() {
            let what: BTreeSet<String> = refused.iter().map(|e| e.describe()).collect();
            failures.push(format!(
                "{}: {} forbidden requests: {what:#?}",
                install.mode.name(),
                forbidden.len()
            ));
        }
    }
    let unused = unused(&installs, &events);
    if !unused.is_empty() {
        let lines: Vec<String> = unused
            .iter()
            .map(|((scope, group, resource, verb, name), modes)| {
                let group = if group.is_empty() { "core" } else { group };
                let name = if name.is_empty() {
                    String::new()
                } else {
                    format!(" {name}")
                };
                format!("{verb} {group}/{resource}{name} ({scope}), granted in {modes:?}")
            })
            .collect();
        failures.push(format!(
            "granted but used in no mode:\n  {}",
            lines.join("\n  ")
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
