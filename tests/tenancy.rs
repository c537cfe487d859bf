//! The attack suite of `docs/security.md` ("Threat model"): what a namespace editor can make the
//! operator do, tried against the real thing.
//!
//! The operator binary runs as the Helm chart installs it (rendered with the pinned helm,
//! applied, its ServiceAccount's TokenRequest token its only Kubernetes credential, the
//! Deployment's env, with `accessSecrets.enabled`, a fixed `accounts.clusterId` and an
//! `aws.namespaceSelector`). Its AWS is the simulator, whose STS evaluates the two trust policies
//! of `docs/security.md`, loaded as they stand there. The attacker is `tenant-a`, a user bound to
//! the built-in `edit` ClusterRole in namespace A only, acting through impersonation.
//!
//! Team A (namespace A) has a role in AWS account LAB_A; team B (namespace B) a
//! ClusterLightsailAccount `team-b-shared` and a LightsailAccount `team-b`, both roles in LAB_B.
//! The legitimate paths are shown to work first, so that each refusal means something; then
//! each attack runs as its own step (a failing one does not hide the others), and the test
//! prints a table of them (`cargo test --test tenancy -- --nocapture`) and fails if any failed.
//!
//! `accounts.namespacedRoleArns` is left empty (any role may be named), the weakest setting: the
//! derived external id and the namespace session tag alone must keep team A out of team B's
//! roles.
//!
//! One test, one operator: it watches every namespace and the cluster-scoped accounts, so a
//! second operator in this binary would reconcile the first one's objects.
mod support;

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Resource;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::runtime::watcher;
use lightsail_gui_operator::account::controller::AccountObject;
use lightsail_gui_operator::account::types::{
    AccountStatus, ClusterLightsailAccount, LightsailAccount,
};
use lightsail_gui_operator::guisession::controller::FINALIZER;
use lightsail_gui_operator::guisession::types::GuiSession;
use lightsail_gui_operator::kubernetes::{FIELD_MANAGER, MANAGED_BY_LABEL};
use lightsail_sim::{
    AccountSpec, BASE_USER_NAME, CallLogEntry, ComputerSpec, DEFAULT_ACCOUNT_ID, RoleSpec,
    RunningSimulator, SimConfig, Simulator, role_arn,
};
use serde_json::{Value, json};
use support::audit;
use support::env::{WAIT, ready, wait_deleted};
use support::operator::{SIM_SECRET_ACCESS_KEY, condition, eventually, guisession, wait_for};
use support::tenant::{self, ChartOperator};

/// `accounts.clusterId`: part of every LightsailAccount's external id.
const CLUSTER_ID: &str = "tenancy-test-cluster";
/// Team A's AWS account, and team B's.
const LAB_A: &str = "111122223333";
const LAB_B: &str = "444455556666";
/// The external id a cluster admin chose for `team-b-shared` (and its role requires).
const TEAM_B_EXTERNAL_ID: &str = "team-b-2026";
const TEAM_B_SHARED: &str = "team-b-shared";
/// The attacker.
const TENANT: &str = "tenant-a";
const NAMESPACE_TAG: &str = "kubernetes-namespace";
/// `aws.namespaceSelector` selects namespaces with this label set to "true".
const OWN_IDENTITY_LABEL: &str = "lightsail.operators.dev/own-identity";
const API_VERSION: &str = "lightsail.operators.dev/v1alpha1";
/// The keys the operator writes into an access Secret.
const OPERATOR_KEYS: [&str; 4] = ["primaryUrl", "secondaryUrl", "resourceName", "expiresAt"];

/// Team A's computer, reached through its LightsailAccount (with an access Secret).
const A_DESKTOP: &str = "a-desktop";
/// Team A's computers for the access Secret races; `a-race-held` holds StartGUISession answers.
const A_RACE_BEFORE: &str = "a-race-before";
const A_RACE_JOIN: &str = "a-race-join";
const A_RACE_HELD: &str = "a-race-held";
/// Team B's computers: one through `team-b-shared`, one through its LightsailAccount `team-b`.
const B_DESKTOP: &str = "b-desktop";
const B_LAB: &str = "b-lab";
/// A computer of team B's that no legitimate GuiSession uses: every attack aims at it, so any
/// call about it, of any action in any account, is the attacker's.
const B_PRIVATE: &str = "b-private";
/// A computer of the operator's own AWS account.
const OWN_DESKTOP: &str = "own-desktop";

/// The external id the operator derives for a LightsailAccount in `namespace`.
fn derived_external_id(namespace: &str) -> String {
    format!("lightsail-gui-operator:{CLUSTER_ID}:{namespace}")
}

/// The simulator's AWS: the two trust policies of docs/security.md on team A's and team B's
/// roles, trusting the identity the operator runs as (the simulator's base user).
fn aws(a: &str, b: &str) -> SimConfig {
    let operator = format!("arn:aws:iam::{DEFAULT_ACCOUNT_ID}:user/{BASE_USER_NAME}");
    let namespaced = |namespace: &str| {
        tenant::trust_policy(
            "namespaced-account",
            &[
                ("<operator-role-arn>", &operator),
                ("<cluster-id>", CLUSTER_ID),
                ("<namespace>", namespace),
            ],
        )
    };
    let cluster = tenant::trust_policy(
        "cluster-account",
        &[
            ("<operator-role-arn>", &operator),
            ("<external-id>", TEAM_B_EXTERNAL_ID),
        ],
    );
    let mut config = SimConfig::default()
        .with_account(
            AccountSpec::new(LAB_A)
                .with_role(RoleSpec::new("team-a").with_trust_policy(namespaced(a))),
        )
        .with_account(
            AccountSpec::new(LAB_B)
                .with_role(RoleSpec::new(TEAM_B_SHARED).with_trust_policy(cluster))
                .with_role(RoleSpec::new("team-b").with_trust_policy(namespaced(b))),
        )
        .with_computer(
            ComputerSpec::new(A_RACE_HELD)
                .in_account(LAB_A)
                .hold_start_response(true),
        )
        .with_computer(ComputerSpec::new(OWN_DESKTOP));
    for computer in [A_DESKTOP, A_RACE_BEFORE, A_RACE_JOIN] {
        config = config.with_computer(ComputerSpec::new(computer).in_account(LAB_A));
    }
    for computer in [B_DESKTOP, B_LAB, B_PRIVATE] {
        config = config.with_computer(ComputerSpec::new(computer).in_account(LAB_B));
    }
    config
}

#[tokio::test(flavor = "multi_thread")]
async fn a_namespace_editor_cannot_make_the_operator_act_outside_its_namespace() {
    let control_plane = support::control_plane();
    let admin = control_plane.client().await;
    let a = support::test_namespace(&admin, "tenancy-a").await;
    let b = support::test_namespace(&admin, "tenancy-b").await;
    let release_namespace = support::test_namespace(&admin, "tenancy-release").await;
    let sim = Simulator::start(aws(&a, &b), "127.0.0.1:0")
        .await
        .expect("simulator starts");
    let sim_url = sim.endpoint_url();
    let cluster_id = format!("accounts.clusterId={CLUSTER_ID}");
    let own_identity = format!("aws.namespaceSelector={OWN_IDENTITY_LABEL}=true");
    let operator = ChartOperator::start(
        control_plane,
        &admin,
        "tenancy",
        &release_namespace,
        &[
            "--set",
            "accessSecrets.enabled=true",
            "--set",
            &cluster_id,
            "--set",
            &own_identity,
        ],
        &sim_url,
        &[("AWS_ENDPOINT_URL_STS", &sim_url)],
    )
    .await;
    let env = support::chart::env_of(&operator.docs);
    assert_eq!(
        env.get("LGO_CLUSTER_ID").map(String::as_str),
        Some(CLUSTER_ID)
    );
    assert_eq!(
        env.get("LGO_ACCESS_SECRETS").map(String::as_str),
        Some("true")
    );

    // The tenant: the built-in edit ClusterRole, bound in namespace A only. This control plane
    // runs no kube-controller-manager, so the built-in edit/view/admin have an aggregationRule
    // but no rules at all; they are filled here as its aggregation controller would fill them
    // (system:aggregate-to-edit, view, and the chart's tenancy-lightsail-gui-operator-edit and
    // -view, which is how the tenant may manage GuiSessions and LightsailAccounts at all).
    tenant::aggregate_cluster_roles(&admin).await;
    tenant::bind_cluster_role(&admin, &a, "edit", TENANT).await;
    let tenant_client = tenant::impersonating(control_plane, TENANT).await;

    let scenario = Scenario {
        admin,
        tenant: tenant_client,
        a,
        b,
        sim,
        operator,
    };
    scenario.legitimate_paths_work().await;

    let mut report = Report::default();
    report
        .step(
            "a. LightsailAccount copying team-b-shared's role ARN and external id, or only its ARN, or team-b's role and B's derived id",
            "STS refuses (A's id and tag sent); account Stalled AccessDenied; GuiSession naming it AccountNotReady; 0 calls in LAB_B",
            scenario.copied_accounts(),
        )
        .await;
    report
        .step(
            "b. GuiSession naming team B's LightsailAccount, or team-b-shared",
            "AccountNotFound (resolved in A) / AccountNotAllowed; 0 calls in LAB_B",
            scenario.foreign_account_refs(),
        )
        .await;
    report
        .step(
            "c1. Secret <gs>-access created before the GuiSession",
            "AccessSecretConflict; Secret never written, owned or deleted",
            scenario.secret_before_the_session(),
        )
        .await;
    report
        .step(
            "c2. Secret <gs>-access created concurrently with the GuiSession",
            "either the tenant's create wins (AccessSecretConflict, Secret untouched) or it gets AlreadyExists",
            scenario.secret_with_the_session(),
        )
        .await;
    report
        .step(
            "c3. Secret <gs>-access created after the operator read it absent and before its create; then spec.access removed",
            "the operator's create refused (409), AccessSecretConflict; the Secret not written, owned or deleted, also when spec.access goes",
            scenario.secret_during_the_start(),
        )
        .await;
    report
        .step(
            "d. a key added to an access Secret",
            "at most 2 CreateGUISessionAccessDetails in the next 60 s; the key stays",
            scenario.key_added_to_the_access_secret(),
        )
        .await;
    report
        .step(
            "e. GuiSession without accountRef in a namespace aws.namespaceSelector does not select",
            "Stalled OwnIdentityNotAllowed, 0 calls; Ready once the namespace is labelled",
            scenario.own_identity_by_namespace_label(),
        )
        .await;
    report
        .step(
            "f. RBAC: ClusterLightsailAccount, Secrets of namespace B, status writes",
            "403 each",
            scenario.rbac_refusals(),
        )
        .await;
    report
        .step(
            "the operator: log and audit log",
            "no forbidden request or error, no key, token or URL logged; nothing of LAB_B used by A",
            scenario.operator_kept_its_limits(),
        )
        .await;
    report.print();
    report.assert_all_passed();

    let Scenario { operator, sim, .. } = scenario;
    drop(operator);
    sim.shutdown().await.expect("simulator shutdown");
}

/// Each attack's outcome, for the closing table.
#[derive(Default)]
struct Report {
    rows: Vec<(&'static str, &'static str, Result<String, String>)>,
}

impl Report {
    /// Runs one attack; a panic (a failed assertion) is recorded, not propagated, so that every
    /// attack runs and the table shows them all.
    async fn step(
        &mut self,
        attack: &'static str,
        expected: &'static str,
        run: impl Future<Output = String>,
    ) {
        let outcome = AssertUnwindSafe(run).catch_unwind().await.map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "panicked".to_owned())
        });
        self.rows.push((attack, expected, outcome));
    }

    fn print(&self) {
        println!("\n| attack | expected | observed | result |");
        println!("| --- | --- | --- | --- |");
        for (attack, expected, outcome) in &self.rows {
            let (observed, result) = match outcome {
                Ok(observed) => (observed.clone(), "pass"),
                Err(failure) => (
                    failure
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .chars()
                        .take(240)
                        .collect(),
                    "FAIL",
                ),
            };
            println!(
                "| {attack} | {expected} | {} | {result} |",
                observed.replace('|', "/")
            );
        }
        println!();
    }

    fn assert_all_passed(&self) {
        let failed: Vec<String> = self
            .rows
            .iter()
            .filter_map(|(attack, _, outcome)| {
                outcome
                    .as_ref()
                    .err()
                    .map(|failure| format!("{attack}:\n  {failure}"))
            })
            .collect();
        assert!(
            failed.is_empty(),
            "{} attack step(s) failed:\n{}",
            failed.len(),
            failed.join("\n")
        );
    }
}

struct Scenario {
    admin: kube::Client,
    /// `tenant-a`, through impersonation.
    tenant: kube::Client,
    /// Team A's namespace (the tenant's) and team B's.
    a: String,
    b: String,
    sim: RunningSimulator,
    operator: ChartOperator,
}

impl Scenario {
    fn sessions(&self, client: &kube::Client, namespace: &str) -> Api<GuiSession> {
        Api::namespaced(client.clone(), namespace)
    }

    /// GuiSessions of namespace A, seen by the admin (for waits: watches of any object).
    fn watched_a(&self) -> Api<GuiSession> {
        self.sessions(&self.admin, &self.a)
    }

    fn tenant_sessions(&self) -> Api<GuiSession> {
        self.sessions(&self.tenant, &self.a)
    }

    fn tenant_secrets(&self) -> Api<Secret> {
        Api::namespaced(self.tenant.clone(), &self.a)
    }

    fn secrets_a(&self) -> Api<Secret> {
        Api::namespaced(self.admin.clone(), &self.a)
    }

    /// Lightsail calls about `resource`, of any action and outcome, in any account.
    fn calls(&self, resource: &str) -> u64 {
        self.sim.calls().count(None, Some(resource), None)
    }

    fn access_calls(&self, resource: &str) -> u64 {
        self.sim
            .calls()
            .count(Some("CreateGUISessionAccessDetails"), Some(resource), None)
    }

    /// The tenant creates a GuiSession in its namespace.
    async fn tenant_creates_session(
        &self,
        name: &str,
        spec: Value,
    ) -> Result<GuiSession, kube::Error> {
        create(&self.tenant_sessions(), guisession(name, spec)).await
    }

    async fn legitimate_paths_work(&self) {
        // Team A's own LightsailAccount, made by the tenant: the operator chooses its external id.
        create(
            &Api::<LightsailAccount>::namespaced(self.tenant.clone(), &self.a),
            account("team-a", json!({"roleArn": role_arn(LAB_A, "team-a")})),
        )
        .await
        .expect("the tenant may create a LightsailAccount in its namespace");
        // Team B's: the cluster admin's ClusterLightsailAccount for namespace B only, with the
        // external id its role requires, and B's own LightsailAccount.
        Api::<ClusterLightsailAccount>::all(self.admin.clone())
            .patch(
                TEAM_B_SHARED,
                &PatchParams::apply("tenancy-test").force(),
                &Patch::Apply(json!({
                    "apiVersion": API_VERSION, "kind": "ClusterLightsailAccount",
                    "metadata": {"name": TEAM_B_SHARED},
                    "spec": {"roleArn": role_arn(LAB_B, TEAM_B_SHARED),
                             "externalId": TEAM_B_EXTERNAL_ID,
                             "namespaces": {"names": [self.b]}},
                })),
            )
            .await
            .expect("apply team-b-shared");
        create(
            &Api::<LightsailAccount>::namespaced(self.admin.clone(), &self.b),
            account("team-b", json!({"roleArn": role_arn(LAB_B, "team-b")})),
        )
        .await
        .expect("create team B's LightsailAccount");

        let team_a = wait_account(
            &Api::<LightsailAccount>::namespaced(self.admin.clone(), &self.a),
            "team-a",
            "Ready",
            account_ready,
        )
        .await;
        assert_eq!(team_a.account_id.as_deref(), Some(LAB_A));
        assert_eq!(
            team_a.external_id,
            Some(derived_external_id(&self.a)),
            "status.externalId is the derived one"
        );
        let shared = wait_account(
            &Api::<ClusterLightsailAccount>::all(self.admin.clone()),
            TEAM_B_SHARED,
            "Ready",
            account_ready,
        )
        .await;
        assert_eq!(shared.account_id.as_deref(), Some(LAB_B));
        let team_b = wait_account(
            &Api::<LightsailAccount>::namespaced(self.admin.clone(), &self.b),
            "team-b",
            "Ready",
            account_ready,
        )
        .await;
        assert_eq!(team_b.account_id.as_deref(), Some(LAB_B));

        // Sessions: team A's (by the tenant, with an access Secret), team B's through both of
        // its accounts.
        self.tenant_creates_session(
            "desk-a",
            // With the computer options a tenant may use on its own computer, under the
            // chart's RBAC: GetInstance and EnableAddOn in its own account.
            json!({"resourceName": A_DESKTOP, "access": {},
                   "accountRef": {"kind": "LightsailAccount", "name": "team-a"},
                   "computer": {"startIfStopped": true,
                                "idleStop": {"threshold": 5, "duration": "30m"}}}),
        )
        .await
        .expect("the tenant may create GuiSessions in its namespace");
        let sessions_b = self.sessions(&self.admin, &self.b);
        create(
            &sessions_b,
            guisession(
                "desk-b",
                json!({"resourceName": B_DESKTOP,
                       "accountRef": {"kind": "ClusterLightsailAccount", "name": TEAM_B_SHARED}}),
            ),
        )
        .await
        .expect("create desk-b");
        create(
            &sessions_b,
            guisession(
                "lab-b",
                json!({"resourceName": B_LAB,
                       "accountRef": {"kind": "LightsailAccount", "name": "team-b"}}),
            ),
        )
        .await
        .expect("create lab-b");
        let desk_a = wait_for(&self.watched_a(), "desk-a", WAIT, "Ready", ready).await;
        let idle_stop = desk_a
            .status
            .as_ref()
            .and_then(|s| s.computer.as_ref())
            .and_then(|c| c.idle_stop.as_ref())
            .and_then(|r| r.threshold.clone());
        assert_eq!(
            idle_stop.as_deref(),
            Some("5"),
            "desk-a's idle-stop rule, set in LAB_A"
        );
        wait_for(&sessions_b, "desk-b", WAIT, "Ready", ready).await;
        wait_for(&sessions_b, "lab-b", WAIT, "Ready", ready).await;
        let secret = self
            .secrets_a()
            .get("desk-a-access")
            .await
            .expect("desk-a's access Secret");
        assert!(
            owned_by(&secret, &desk_a),
            "desk-a-access is desk-a's: {:?}",
            secret.metadata.owner_references
        );

        // Each start was made in its team's AWS account, with the identity its trust policy wants.
        let log = self.sim.call_log();
        for (computer, lab) in [(A_DESKTOP, LAB_A), (B_DESKTOP, LAB_B), (B_LAB, LAB_B)] {
            let accounts: Vec<_> = log
                .matching(Some("StartGUISession"), Some(computer), Some("ok"))
                .map(|e| e.account.clone())
                .collect();
            assert_eq!(accounts, vec![Some(lab.to_owned())], "starts of {computer}");
        }
        let granted = |role: &str| -> Vec<(Option<String>, Option<String>)> {
            log.assume_role_requests(Some(role), Some("ok"))
                .map(|r| {
                    (
                        r.external_id.clone(),
                        r.tag(NAMESPACE_TAG).map(str::to_owned),
                    )
                })
                .collect()
        };
        for (role, expected) in [
            (
                role_arn(LAB_A, "team-a"),
                (Some(derived_external_id(&self.a)), Some(self.a.clone())),
            ),
            (
                role_arn(LAB_B, TEAM_B_SHARED),
                (Some(TEAM_B_EXTERNAL_ID.to_owned()), None),
            ),
            (
                role_arn(LAB_B, "team-b"),
                (Some(derived_external_id(&self.b)), Some(self.b.clone())),
            ),
        ] {
            let asked = granted(&role);
            assert!(!asked.is_empty(), "no granted AssumeRole of {role}");
            assert!(
                asked.iter().all(|x| *x == expected),
                "AssumeRole of {role} asked {asked:?}, expected {expected:?}"
            );
        }
    }

    /// Attack a: a LightsailAccount in A naming team B's roles, with the external id copied.
    async fn copied_accounts(&self) -> String {
        let shared_role = role_arn(LAB_B, TEAM_B_SHARED);
        let team_b_role = role_arn(LAB_B, "team-b");
        let copies = [
            (
                "copy-shared",
                json!({"roleArn": shared_role, "externalId": TEAM_B_EXTERNAL_ID}),
            ),
            ("copy-shared-arn", json!({"roleArn": shared_role})),
            (
                "copy-team-b",
                json!({"roleArn": team_b_role, "externalId": derived_external_id(&self.b)}),
            ),
        ];
        let tenant_accounts = Api::<LightsailAccount>::namespaced(self.tenant.clone(), &self.a);
        let accounts_a = Api::<LightsailAccount>::namespaced(self.admin.clone(), &self.a);
        for (name, spec) in &copies {
            create(&tenant_accounts, account(name, spec.clone()))
                .await
                .unwrap_or_else(|e| panic!("the tenant creates LightsailAccount {name}: {e}"));
            // And a GuiSession that would use it, on team B's private computer.
            self.tenant_creates_session(
                &format!("use-{name}"),
                // The computer options reach no further than the session: nothing is read,
                // started or changed on team B's computer through a refused account.
                json!({"resourceName": B_PRIVATE,
                       "accountRef": {"kind": "LightsailAccount", "name": name},
                       "computer": {"startIfStopped": true,
                                    "idleStop": {"threshold": 1, "duration": "1m"}}}),
            )
            .await
            .unwrap_or_else(|e| panic!("the tenant creates GuiSession use-{name}: {e}"));
        }
        for (name, spec) in &copies {
            let status = wait_account(&accounts_a, name, "Stalled", |s| {
                account_condition(s, "Stalled").is_some_and(|c| c.status == "True")
            })
            .await;
            let stalled = account_condition(&status, "Stalled").expect("Stalled");
            assert_eq!(
                stalled.reason, "AccessDenied",
                "{name}: Stalled for the wrong reason: {stalled:?}"
            );
            assert!(
                !account_ready(&status),
                "{name} must not be Ready: {status:?}"
            );
            assert_eq!(
                status.external_id,
                Some(derived_external_id(&self.a)),
                "{name}: the operator must present namespace A's own external id"
            );
            if spec.get("externalId").is_some() {
                assert!(
                    stalled.message.contains("spec.externalId"),
                    "{name}: the refusal should say spec.externalId is not used: {}",
                    stalled.message
                );
            }
            let session = wait_for(
                &self.watched_a(),
                &format!("use-{name}"),
                WAIT,
                "Stalled",
                stalled_with("AccountNotReady"),
            )
            .await;
            let message = &condition(&session, "Stalled").expect("Stalled").message;
            assert!(
                message.contains("AccessDenied"),
                "use-{name}: the refusal should carry the account's: {message}"
            );
        }

        // What STS was asked by namespace A: its own id and tag, refused, for both roles.
        let log = self.sim.call_log();
        let mut refused = 0;
        for role in [&shared_role, &team_b_role] {
            let from_a: Vec<&CallLogEntry> = log
                .matching(Some("AssumeRole"), Some(role), None)
                .filter(|e| {
                    e.assume_role.as_ref().and_then(|r| r.tag(NAMESPACE_TAG))
                        != Some(self.b.as_str())
                        && e.assume_role
                            .as_ref()
                            .is_none_or(|r| r.external_id.as_deref() != Some(TEAM_B_EXTERNAL_ID))
                })
                .collect();
            assert!(
                !from_a.is_empty(),
                "no AssumeRole of {role} for the copied accounts"
            );
            for entry in &from_a {
                let asked = entry.assume_role.as_ref().unwrap_or_else(|| {
                    panic!("AssumeRole of {role} without its request: {entry:?}")
                });
                assert_eq!(
                    (
                        asked.external_id.as_deref(),
                        asked.tag(NAMESPACE_TAG),
                        entry.outcome.as_str()
                    ),
                    (
                        Some(derived_external_id(&self.a).as_str()),
                        Some(self.a.as_str()),
                        "AccessDenied"
                    ),
                    "AssumeRole of {role} from namespace A: {asked:?}"
                );
            }
            refused += from_a.len();
        }
        let lab_b = self.nothing_in_lab_b_for_a();
        format!(
            "3 accounts Stalled/AccessDenied, status.externalId = A's; {refused} AssumeRole with A's id + tag {NAMESPACE_TAG}=A, all AccessDenied; 3 GuiSessions AccountNotReady; {lab_b}"
        )
    }

    /// Asserts that nothing of team A's reached LAB_B: no call about team B's private computer
    /// (any action, any account), no AssumeRole tagged with namespace A granted there, and every
    /// start or stop made with LAB_B's credentials was one of team B's own computers.
    fn nothing_in_lab_b_for_a(&self) -> String {
        assert_eq!(
            self.calls(B_PRIVATE),
            0,
            "Lightsail calls about {B_PRIVATE}: {:?}",
            self.sim
                .calls()
                .calls
                .into_iter()
                .filter(|c| c.resource == B_PRIVATE)
                .collect::<Vec<_>>()
        );
        let log = self.sim.call_log();
        let granted_to_a: Vec<&CallLogEntry> = log
            .matching(Some("AssumeRole"), None, Some("ok"))
            .filter(|e| e.resource.contains(LAB_B))
            .filter(|e| {
                e.assume_role.as_ref().is_none_or(|r| {
                    r.tag(NAMESPACE_TAG) == Some(self.a.as_str())
                        || r.external_id == Some(derived_external_id(&self.a))
                })
            })
            .collect();
        assert!(
            granted_to_a.is_empty(),
            "roles in LAB_B assumed for namespace A: {granted_to_a:?}"
        );
        // Every Lightsail call (sessions, instances, add-ons), not STS.
        let in_lab_b: Vec<&CallLogEntry> = log
            .from_account(LAB_B)
            .filter(|e| !matches!(e.action.as_str(), "AssumeRole" | "GetCallerIdentity"))
            .collect();
        assert!(
            in_lab_b
                .iter()
                .all(|e| e.resource == B_DESKTOP || e.resource == B_LAB),
            "Lightsail calls in LAB_B other than team B's own: {in_lab_b:?}"
        );
        format!("0 calls about {B_PRIVATE}; LAB_B's starts only team B's")
    }

    /// Attack b: accountRef naming team B's accounts.
    async fn foreign_account_refs(&self) -> String {
        self.tenant_creates_session(
            "borrow-team-b",
            json!({"resourceName": B_PRIVATE,
                   "accountRef": {"kind": "LightsailAccount", "name": "team-b"},
                   "computer": {"startIfStopped": true}}),
        )
        .await
        .expect("create borrow-team-b");
        self.tenant_creates_session(
            "borrow-shared",
            json!({"resourceName": B_PRIVATE,
                   "accountRef": {"kind": "ClusterLightsailAccount", "name": TEAM_B_SHARED}}),
        )
        .await
        .expect("create borrow-shared");
        let by_name = wait_for(
            &self.watched_a(),
            "borrow-team-b",
            WAIT,
            "Stalled (AccountNotFound)",
            stalled_with("AccountNotFound"),
        )
        .await;
        let message = &condition(&by_name, "Stalled").expect("Stalled").message;
        assert!(
            message.contains(&format!("LightsailAccount {}/team-b", self.a)),
            "the reference must resolve in the GuiSession's own namespace: {message}"
        );
        wait_for(
            &self.watched_a(),
            "borrow-shared",
            WAIT,
            "Stalled (AccountNotAllowed)",
            stalled_with("AccountNotAllowed"),
        )
        .await;
        let lab_b = self.nothing_in_lab_b_for_a();
        format!(
            "team-b: AccountNotFound (looked up as {}/team-b); team-b-shared: AccountNotAllowed; {lab_b}",
            self.a
        )
    }

    /// The Secret a tenant makes under an access Secret's name: posing as the operator's (its
    /// label) and holding a URL of the tenant's where the desktop's would be.
    async fn tenant_creates_secret(&self, name: &str) -> Result<Secret, kube::Error> {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: FIELD_MANAGER}},
            "stringData": {"primaryUrl": "https://tenant-a.example/not-the-desktop",
                           "owner": TENANT},
        }))
        .expect("Secret");
        self.tenant_secrets()
            .create(&PostParams::default(), &secret)
            .await
    }

    /// GuiSession `name` ends in AccessSecretConflict over the tenant's `secret`, which stays
    /// untouched while it is in conflict and after the GuiSession is deleted.
    async fn conflict_then_delete(&self, name: &str, secret: &Secret) {
        wait_for(
            &self.watched_a(),
            name,
            WAIT,
            "Stalled (AccessSecretConflict)",
            stalled_with("AccessSecretConflict"),
        )
        .await;
        self.assert_secret_untouched(secret, "while in conflict")
            .await;
        self.tenant_deletes_session(name).await;
        self.assert_secret_untouched(secret, "after the GuiSession's deletion")
            .await;
    }

    /// The tenant's Secret is as the tenant made it: the same object (never deleted and made
    /// again), never written since (same resourceVersion, same data), owned by nothing.
    async fn assert_secret_untouched(&self, created: &Secret, when: &str) {
        let name = created.metadata.name.as_deref().expect("name");
        let now = self
            .secrets_a()
            .get_opt(name)
            .await
            .expect("get Secret")
            .unwrap_or_else(|| panic!("{when}: the tenant's Secret {name} was deleted"));
        assert_eq!(
            now.metadata.uid, created.metadata.uid,
            "{when}: {name} was replaced"
        );
        assert_eq!(now.data, created.data, "{when}: {name}'s data changed");
        assert_eq!(
            now.metadata.owner_references.unwrap_or_default(),
            vec![],
            "{when}: {name} gained an ownerReference"
        );
        assert_eq!(
            now.metadata.resource_version, created.metadata.resource_version,
            "{when}: {name} was written"
        );
    }

    /// Deletes the GuiSession as the tenant and waits until it is gone: with its finalizer
    /// (stopOnDelete), that is after the operator has handled the deletion.
    async fn tenant_deletes_session(&self, name: &str) {
        let gs = self.watched_a().get(name).await.expect("get GuiSession");
        assert!(
            gs.metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == FINALIZER),
            "{name} has no finalizer: its deletion would not wait for the operator"
        );
        self.tenant_sessions()
            .delete(name, &DeleteParams::default())
            .await
            .expect("the tenant deletes its GuiSession");
        wait_deleted(&self.watched_a(), name).await;
    }

    fn access_session(computer: &str) -> Value {
        json!({"resourceName": computer, "access": {}, "stopOnDelete": true,
               "accountRef": {"kind": "LightsailAccount", "name": "team-a"}})
    }

    /// Attack c1: the Secret exists before the GuiSession.
    async fn secret_before_the_session(&self) -> String {
        let secret = self
            .tenant_creates_secret("race-before-access")
            .await
            .expect("the tenant may create Secrets");
        self.tenant_creates_session("race-before", Self::access_session(A_RACE_BEFORE))
            .await
            .expect("create race-before");
        self.conflict_then_delete("race-before", &secret).await;
        "AccessSecretConflict; Secret unchanged (same rv, no ownerReference), kept after the GuiSession was deleted".into()
    }

    /// Attack c2: the Secret and the GuiSession created at the same time.
    async fn secret_with_the_session(&self) -> String {
        let (session, secret) = tokio::join!(
            self.tenant_creates_session("race-join", Self::access_session(A_RACE_JOIN)),
            self.tenant_creates_secret("race-join-access"),
        );
        session.expect("create race-join");
        match secret {
            Ok(secret) => {
                self.conflict_then_delete("race-join", &secret).await;
                "the tenant's create won: AccessSecretConflict; Secret unchanged, kept after deletion".into()
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                // The operator's create came first: the Secret is the GuiSession's, with the
                // operator's keys only, and the tenant got AlreadyExists.
                let gs = wait_for(&self.watched_a(), "race-join", WAIT, "Ready", ready).await;
                let secret = self
                    .secrets_a()
                    .get("race-join-access")
                    .await
                    .expect("race-join-access");
                assert!(owned_by(&secret, &gs), "the operator's Secret: {secret:?}");
                assert!(
                    !secret.data.iter().flatten().any(|(k, _)| k == "owner"),
                    "the tenant's data got in"
                );
                self.tenant_deletes_session("race-join").await;
                "the operator's create won: the tenant's create got AlreadyExists (409)".into()
            }
            Err(e) => panic!("the tenant's create failed otherwise: {e}"),
        }
    }

    /// Attack c3: the Secret created after the operator read it absent and before its create,
    /// the one window that only "create, never overwrite" closes. The first start is held in
    /// the simulator (so the GuiSession is mid-flight and the operator's first read is done);
    /// once it is let go, the operator's next run reads the Secret (absent) and then makes two
    /// Lightsail calls (GetOperation, CreateGUISessionAccessDetails), slowed to 2 s each, before
    /// its create: the tenant's Secret goes in as soon as the apiserver's audit log shows that
    /// read. Then the tenant removes spec.access, which makes the operator clean up the Secret
    /// it meant to write.
    async fn secret_during_the_start(&self) -> String {
        const SECRET: &str = "race-held-access";
        self.tenant_creates_session("race-held", Self::access_session(A_RACE_HELD))
            .await
            .expect("create race-held");
        eventually(WAIT, "the operator's StartGUISession held", || {
            self.sim
                .computer(A_RACE_HELD)
                .is_some_and(|c| c.held_start_responses == 1)
        })
        .await;
        let username = self.operator.username();
        let reads = || {
            let events = audit::read(&support::control_plane().audit_log());
            audit::of_user(&events, &username)
                .iter()
                .filter(|e| {
                    e.verb == "get"
                        && e.object_ref.as_ref().is_some_and(|o| {
                            o.resource == "secrets" && o.namespace == self.a && o.name == SECRET
                        })
                })
                .count()
        };
        let refused_creates = || {
            // (A refused create's audit entry may lack the name: counted by namespace; only this
            // step's create can be refused.)
            let events = audit::read(&support::control_plane().audit_log());
            audit::of_user(&events, &username)
                .iter()
                .filter(|e| {
                    e.verb == "create"
                        && e.code() == 409
                        && e.object_ref
                            .as_ref()
                            .is_some_and(|o| o.resource == "secrets" && o.namespace == self.a)
                })
                .count()
        };
        let refused_before = refused_creates();
        let reads_before = reads();
        assert!(
            reads_before >= 1,
            "the operator never read {SECRET} before starting"
        );
        self.sim
            .set_faults(lightsail_sim::Faults {
                latency: Duration::from_secs(2),
                ..Default::default()
            })
            .expect("latency");
        assert!(self.sim.release_start_responses(A_RACE_HELD));
        eventually(WAIT, "the operator's next read of the Secret", || {
            reads() > reads_before
        })
        .await;
        let secret = match self.tenant_creates_secret(SECRET).await {
            Ok(secret) => secret,
            Err(kube::Error::Api(s)) if s.code == 409 => {
                panic!("the operator created {SECRET} before the tenant: the window was missed")
            }
            Err(e) => panic!("the tenant may create Secrets: {e}"),
        };
        let stalled = wait_for(
            &self.watched_a(),
            "race-held",
            WAIT,
            "Stalled (AccessSecretConflict)",
            stalled_with("AccessSecretConflict"),
        )
        .await;
        self.sim
            .set_faults(lightsail_sim::Faults::default())
            .expect("no faults");
        // The operator did try to create it, after the tenant: refused, and left alone. (The
        // audit log is written as requests complete: waited for, briefly.)
        eventually(
            Duration::from_secs(10),
            "the operator's create of the Secret refused with 409 (the window between its read and its write hit)",
            || refused_creates() > refused_before,
        )
        .await;
        let refused = refused_creates() - refused_before;
        let recorded = stalled
            .status
            .as_ref()
            .and_then(|s| s.access.as_ref())
            .and_then(|a| a.secret_name.clone());
        self.assert_secret_untouched(&secret, "while in conflict")
            .await;

        // No access Secret wanted any more: the operator forgets the name, deleting nothing.
        self.tenant_sessions()
            .patch(
                "race-held",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"access": null}})),
            )
            .await
            .expect("the tenant removes spec.access");
        let without = wait_for(
            &self.watched_a(),
            "race-held",
            WAIT,
            "Ready without access",
            |gs| ready(gs) && gs.status.as_ref().is_some_and(|s| s.access.is_none()),
        )
        .await;
        assert!(without.spec.access.is_none());
        self.assert_secret_untouched(&secret, "after spec.access was removed")
            .await;
        self.tenant_deletes_session("race-held").await;
        self.assert_secret_untouched(&secret, "after the GuiSession's deletion")
            .await;

        // The operator's requests about the race Secrets: never a write other than a create.
        let races = ["race-before-access", "race-join-access", "race-held-access"];
        let events = audit::read(&support::control_plane().audit_log());
        let about_races: Vec<audit::AuditEvent> =
            audit::of_user(&events, &self.operator.username())
                .into_iter()
                .filter(|e| {
                    e.object_ref.as_ref().is_some_and(|o| {
                        o.resource == "secrets"
                            && o.namespace == self.a
                            && races.contains(&o.name.as_str())
                    })
                })
                .collect();
        let writes: Vec<String> = about_races
            .iter()
            .filter(|e| !["get", "create", "list", "watch"].contains(&e.verb.as_str()))
            .map(audit::AuditEvent::describe)
            .collect();
        assert!(
            writes.is_empty(),
            "the operator wrote or deleted a tenant's Secret: {writes:?}"
        );
        format!(
            "operator's create refused (409) {refused}x; AccessSecretConflict (status.access.secretName {}); Secret unchanged after spec.access removal and deletion; operator never patched/deleted a race Secret (audit)",
            recorded.as_deref().unwrap_or("unset")
        )
    }

    /// Attack d: a key added to desk-a's access Secret.
    async fn key_added_to_the_access_secret(&self) -> String {
        const NAME: &str = "desk-a-access";
        let operator_keys = |s: &Secret| -> BTreeMap<String, ByteString> {
            s.data
                .iter()
                .flatten()
                .filter(|(k, _)| OPERATOR_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let before = self.secrets_a().get(NAME).await.expect(NAME);
        let written = operator_keys(&before);
        assert!(written.contains_key("primaryUrl"), "{NAME} has no URL");
        let calls_before = self.access_calls(A_DESKTOP);
        let patched = self
            .tenant_secrets()
            .patch(
                NAME,
                &PatchParams::default(),
                &Patch::Merge(json!({"stringData": {"note": "x"}})),
            )
            .await
            .expect("the tenant may patch Secrets in its namespace");
        let has_note = |s: &Secret| {
            s.data
                .iter()
                .flatten()
                .any(|(k, v)| k == "note" && v.0 == b"x")
        };
        assert!(has_note(&patched));

        // The acceptance criterion is a bound over the 60 s after the edit, so this watches
        // those 60 s (no shorter window can show it): the Secret's changes and the simulator's
        // count, failing as soon as the bound is broken or the key is gone.
        let window = Duration::from_secs(60);
        let deadline = tokio::time::Instant::now() + window;
        let config = watcher::Config::default().fields(&format!("metadata.name={NAME}"));
        let mut changes = watcher(self.secrets_a(), config).boxed();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut rewrites = 0;
        let extra_calls = || self.access_calls(A_DESKTOP) - calls_before;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => break,
                event = changes.next() => match event {
                    Some(Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s))) => {
                        assert!(has_note(&s), "the added key is gone: {:?}", s.data.as_ref().map(|d| d.keys().collect::<Vec<_>>()));
                        if operator_keys(&s) != written {
                            rewrites += 1;
                        }
                    }
                    Some(Ok(watcher::Event::Delete(_))) => panic!("{NAME} was deleted"),
                    Some(_) => {}
                    None => panic!("the watch of {NAME} ended"),
                },
                _ = tick.tick() => {
                    assert!(extra_calls() <= 2, "{} CreateGUISessionAccessDetails calls within {window:?} of the edit", extra_calls());
                }
            }
        }
        let calls = extra_calls();
        assert!(
            calls <= 2,
            "{calls} CreateGUISessionAccessDetails calls within {window:?} of the edit"
        );
        let after = self.secrets_a().get(NAME).await.expect(NAME);
        assert!(has_note(&after), "the added key is gone");
        assert_eq!(
            after.metadata.uid, before.metadata.uid,
            "{NAME} was replaced"
        );
        format!(
            "{calls} CreateGUISessionAccessDetails in 60 s; note kept; operator's keys rewritten {rewrites} times"
        )
    }

    /// Attack e: the operator's own identity from a namespace the selector does not select.
    async fn own_identity_by_namespace_label(&self) -> String {
        self.tenant_creates_session("own", json!({"resourceName": OWN_DESKTOP}))
            .await
            .expect("create own");
        let refused = wait_for(
            &self.watched_a(),
            "own",
            WAIT,
            "Stalled (OwnIdentityNotAllowed)",
            stalled_with("OwnIdentityNotAllowed"),
        )
        .await;
        assert_eq!(
            self.calls(OWN_DESKTOP),
            0,
            "Lightsail calls about {OWN_DESKTOP} while refused"
        );
        Api::<Namespace>::all(self.admin.clone())
            .patch(
                &self.a,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {OWN_IDENTITY_LABEL: "true"}}})),
            )
            .await
            .expect("the admin labels namespace A");
        let ready_now = wait_for(&self.watched_a(), "own", WAIT, "Ready", ready).await;
        assert_eq!(
            ready_now.metadata.generation, refused.metadata.generation,
            "the GuiSession was changed"
        );
        let starts: Vec<_> = self
            .sim
            .call_log()
            .matching(Some("StartGUISession"), Some(OWN_DESKTOP), Some("ok"))
            .map(|e| e.account.clone())
            .collect();
        assert_eq!(starts, vec![Some(DEFAULT_ACCOUNT_ID.to_owned())]);
        "Stalled OwnIdentityNotAllowed with 0 calls; Ready (own account) after labelling, spec untouched".into()
    }

    /// Attack f: what RBAC refuses the tenant.
    async fn rbac_refusals(&self) -> String {
        let tenant = &self.tenant;
        // A control: the tenant does have edit rights in its own namespace.
        self.tenant_secrets()
            .list(&ListParams::default())
            .await
            .expect("the tenant may list Secrets in namespace A");
        let mut refused = Vec::new();
        let cluster_account = create(
            &Api::<ClusterLightsailAccount>::all(tenant.clone()),
            json!({"apiVersion": API_VERSION, "kind": "ClusterLightsailAccount",
                   "metadata": {"name": "tenant-a-everything"},
                   "spec": {"roleArn": role_arn(LAB_B, TEAM_B_SHARED),
                            "externalId": TEAM_B_EXTERNAL_ID,
                            "namespaces": {"names": [self.a]}}}),
        )
        .await;
        refused.push(forbidden("create ClusterLightsailAccount", cluster_account));
        // A Secret team B has, e.g. keys of its own.
        let team_b_keys: Secret = serde_json::from_value(json!({
            "metadata": {"name": "team-b-keys"}, "stringData": {"key": "team B's"}
        }))
        .expect("Secret");
        Api::<Secret>::namespaced(self.admin.clone(), &self.b)
            .create(&PostParams::default(), &team_b_keys)
            .await
            .expect("create team B's Secret");
        let secrets_b = Api::<Secret>::namespaced(tenant.clone(), &self.b);
        refused.push(forbidden(
            "list Secrets in B",
            secrets_b.list(&ListParams::default()).await,
        ));
        refused.push(forbidden(
            "get a Secret in B",
            secrets_b.get("team-b-keys").await,
        ));
        refused.push(forbidden(
            "patch GuiSession status",
            self.tenant_sessions()
                .patch_status(
                    "desk-a",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {"observedGeneration": 1000}})),
                )
                .await,
        ));
        refused.push(forbidden(
            "patch LightsailAccount status",
            Api::<LightsailAccount>::namespaced(tenant.clone(), &self.a)
                .patch_status(
                    "team-a",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {"accountId": LAB_B}})),
                )
                .await,
        ));
        refused.push(forbidden(
            "create LightsailAccount in B",
            create(
                &Api::<LightsailAccount>::namespaced(tenant.clone(), &self.b),
                account("tenant-a", json!({"roleArn": role_arn(LAB_B, "team-b")})),
            )
            .await,
        ));
        refused.push(forbidden(
            "create GuiSession in B",
            create(
                &self.sessions(tenant, &self.b),
                guisession("tenant-a", json!({"resourceName": B_PRIVATE})),
            )
            .await,
        ));
        format!("403: {}", refused.join(", "))
    }

    /// The operator's side: nothing refused to it, nothing secret in its log, nothing of
    /// team A's in LAB_B after all the attacks.
    async fn operator_kept_its_limits(&self) -> String {
        let log = self.operator.operator.log_text();
        assert!(
            !log.to_lowercase().contains("forbidden"),
            "the operator was refused something:\n{log}"
        );
        let mut secrets = vec![
            SIM_SECRET_ACCESS_KEY.to_owned(),
            "SessionToken".to_owned(),
            "ASIA".to_owned(),
        ];
        let written = self
            .secrets_a()
            .list(&ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={FIELD_MANAGER}")))
            .await
            .expect("list access Secrets");
        for secret in written.items.iter().filter(|s| {
            s.metadata
                .owner_references
                .as_ref()
                .is_some_and(|o| !o.is_empty())
        }) {
            for key in ["primaryUrl", "secondaryUrl"] {
                if let Some(url) = secret.data.as_ref().and_then(|d| d.get(key)) {
                    secrets.push(String::from_utf8_lossy(&url.0).into_owned());
                }
            }
        }
        assert!(secrets.len() > 3, "no access URLs to look for");
        let leaked: Vec<&String> = secrets
            .iter()
            .filter(|s| log.contains(s.as_str()))
            .collect();
        assert!(leaked.is_empty(), "the operator logged secrets: {leaked:?}");
        let events = audit::read(&support::control_plane().audit_log());
        let mine = audit::of_user(&events, &self.operator.username());
        assert!(!mine.is_empty(), "no audit events of the operator");
        let denied: Vec<String> = mine
            .iter()
            .filter(|e| e.forbidden())
            .map(audit::AuditEvent::describe)
            .collect();
        assert!(
            denied.is_empty(),
            "the apiserver refused the operator: {denied:?}"
        );
        let lab_b = self.nothing_in_lab_b_for_a();
        format!(
            "log: no forbidden, no key/token/{} URLs; audit: {} requests, 0 refused; {lab_b}",
            secrets.len() - 3,
            mine.len()
        )
    }
}

/// `LightsailAccount` manifest.
fn account(name: &str, spec: Value) -> Value {
    json!({"apiVersion": API_VERSION, "kind": "LightsailAccount",
           "metadata": {"name": name}, "spec": spec})
}

/// Creates an object from JSON (a plain create, as `kubectl create` does).
async fn create<K>(api: &Api<K>, manifest: Value) -> Result<K, kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(manifest).expect("manifest parses");
    api.create(&PostParams::default(), &object).await
}

/// Asserts a request was refused by RBAC (403); returns `what`.
fn forbidden<T: std::fmt::Debug>(what: &str, result: Result<T, kube::Error>) -> String {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => what.to_owned(),
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

fn stalled_with(reason: &'static str) -> impl Fn(&GuiSession) -> bool {
    move |gs| condition(gs, "Stalled").is_some_and(|c| c.status == "True" && c.reason == reason)
}

fn owned_by(secret: &Secret, gs: &GuiSession) -> bool {
    secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| Some(&r.uid) == gs.metadata.uid.as_ref() && r.controller == Some(true))
}

fn account_condition<'a>(status: &'a AccountStatus, type_: &str) -> Option<&'a Condition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

fn account_ready(status: &AccountStatus) -> bool {
    account_condition(status, "Ready").is_some_and(|c| c.status == "True")
}

/// Waits (watching, with a deadline) until the account's status satisfies `check`.
async fn wait_account<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    check: impl Fn(&AccountStatus) -> bool,
) -> AccountStatus
where
    K: AccountObject + Send + 'static,
{
    let satisfied = |obj: Option<&K>| obj.and_then(|o| o.account_status()).is_some_and(&check);
    let found = tokio::time::timeout(WAIT, await_condition(api.clone(), name, satisfied)).await;
    match found {
        Ok(Ok(Some(obj))) => obj.account_status().cloned().expect("status"),
        other => {
            let last = api
                .get_opt(name)
                .await
                .ok()
                .flatten()
                .and_then(|o| o.account_status().cloned());
            panic!("account {name}: not {what} within {WAIT:?} ({other:?}); last status: {last:#?}")
        }
    }
}
