//! The account kinds (`LightsailAccount`, namespaced, and `ClusterLightsailAccount`, cluster-wide
//! and limited to chosen namespaces), in the pattern of cert-manager's Issuer/ClusterIssuer: a
//! GuiSession with `spec.accountRef` manages its session in that AWS account instead of the
//! operator's own. Their policy is in [`super::policy`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::parse_go_duration;

/// Session name of an assumed role when the account names none.
pub const DEFAULT_SESSION_NAME: &str = "lightsail-gui-operator";
/// Lifetime of assumed-role credentials when the account names none.
pub const DEFAULT_SESSION_DURATION: std::time::Duration = std::time::Duration::from_secs(3600);

// Doc comments below are user documentation (`kubectl explain`): one line per paragraph.
/// An AWS account the operator manages GUI sessions in, for GuiSessions of this namespace that name it in `spec.accountRef`. The operator assumes `roleArn` with its own AWS identity (IRSA, EKS Pod Identity, environment), or with the static keys of `credentialsSecretRef`.
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[kube(
    group = "lightsail.operators.dev",
    version = "v1alpha1",
    kind = "LightsailAccount",
    namespaced,
    shortname = "lsaccount",
    category = "lightsail",
    status = "AccountStatus",
    doc = "An AWS account GuiSessions of this namespace may use (spec.accountRef): a role the operator assumes, and defaults for the sessions in it.",
    printcolumn = r#"{"name":"Account","type":"string","description":"The AWS account id the credentials resolved to","jsonPath":".status.accountId"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"GuiSessions","type":"integer","jsonPath":".status.guiSessions"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.roleArn) || has(self.credentialsSecretRef)",
    "message": "name a role to assume (roleArn), static keys (credentialsSecretRef), or both"
}]))]
pub struct LightsailAccountSpec {
    /// ARN of the IAM role to assume in the account, for example `arn:aws:iam::111122223333:role/lightsail-gui-sessions`. Its trust policy must allow the operator's identity (see the IAM guide).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend(
        "pattern" = r"^arn:aws[a-zA-Z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}$",
        "maxLength" = 2048
    ))]
    pub role_arn: Option<String>,

    /// ClusterLightsailAccount only: the external id the role's trust policy requires (`sts:ExternalId`), if any. A LightsailAccount cannot choose its external id: the operator always sends `lightsail-gui-operator:<cluster id>:<namespace>` (shown in `status.externalId`) and the session tag `kubernetes-namespace=<namespace>`, so that one namespace can never present another's id; a value set here in a LightsailAccount is not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minLength" = 2, "maxLength" = 1224, "pattern" = r"^[\w+=,.@:/-]*$"))]
    pub external_id: Option<String>,

    /// Session name of the assumed role, shown in the account's CloudTrail. Defaults to `lightsail-gui-operator`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = r"^[\w+=,.@-]{2,64}$"))]
    pub session_name: Option<String>,

    /// How long assumed-role credentials live, as a Go duration between 15m and 12h (and at most the role's maximum session duration). Defaults to 1h. The operator refreshes them before they expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxLength" = 32, "x-kubernetes-validations" = [{
        "rule": "duration(self) >= duration('15m') && duration(self) <= duration('12h')",
        "message": "sessionDuration must be a Go duration between 15m and 12h"
    }]))]
    pub session_duration: Option<String>,

    /// AWS Region of GuiSessions that use this account and name none themselves. When unset, the operator's default Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("pattern" = r"^[a-z]{2}(-[a-z]+)+-[0-9]+$", "maxLength" = 32))]
    pub region: Option<String>,

    /// Client-side limit on Lightsail requests, per Region. In a ClusterLightsailAccount it is the limit of its AWS account, shared by every account object naming that AWS account (the lowest wins when several cluster accounts set one); without one, the operator's `--rate-limit` and `--rate-burst` are. In a LightsailAccount it is only this account's own share, taken within that shared limit: it can lower, never raise, what the namespace may send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<AccountRateLimit>,

    /// For clusters outside AWS: a Secret holding static access keys to use instead of the operator's own identity (to assume `roleArn`, or, without it, directly). Keys are never written in this object. The operator must be installed with permission to read it (chart value `accounts.staticKeys`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<StaticKeysRef>,
}

/// A client-side rate limit.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountRateLimit {
    /// Sustained requests per second.
    #[schemars(extend("minimum" = 1, "maximum" = 1000))]
    pub requests_per_second: u32,
    /// Requests allowed at once after a quiet period.
    #[schemars(extend("minimum" = 1, "maximum" = 10000))]
    pub burst: u32,
}

/// Where static access keys are.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StaticKeysRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the Secret; only for a ClusterLightsailAccount, which has no namespace of its own (a LightsailAccount always reads its own namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
    /// Key of the access key id. Defaults to `AWS_ACCESS_KEY_ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id_key: Option<String>,
    /// Key of the secret access key. Defaults to `AWS_SECRET_ACCESS_KEY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key_key: Option<String>,
}

/// An AWS account GuiSessions of the namespaces in `namespaces` may use (spec.accountRef with kind ClusterLightsailAccount). Like LightsailAccount, plus the namespaces allowed to use it.
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[kube(
    group = "lightsail.operators.dev",
    version = "v1alpha1",
    kind = "ClusterLightsailAccount",
    shortname = "clsaccount",
    category = "lightsail",
    status = "AccountStatus",
    doc = "An AWS account GuiSessions of the allowed namespaces may use (spec.accountRef): a role the operator assumes, defaults for the sessions in it, and which namespaces may use it.",
    printcolumn = r#"{"name":"Account","type":"string","description":"The AWS account id the credentials resolved to","jsonPath":".status.accountId"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"GuiSessions","type":"integer","jsonPath":".status.guiSessions"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterLightsailAccountSpec {
    #[serde(flatten)]
    pub account: LightsailAccountSpec,

    /// Which namespaces' GuiSessions may use this account: those named in `names` and those matching `selector`. With neither, no namespace may.
    #[serde(default)]
    pub namespaces: AllowedNamespaces,
}

/// Namespaces allowed to use a ClusterLightsailAccount.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowedNamespaces {
    /// Namespaces allowed by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024))]
    pub names: Vec<String>,
    /// Namespaces allowed by their labels (a standard label selector, as in a NetworkPolicy's namespaceSelector). An empty selector (`{}`) allows every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// Observed state of an account, written by the operator.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The AWS account id the credentials resolved to (GetCallerIdentity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The identity the operator acts as in the account, for example the assumed role's session ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// The external id the operator sends when it assumes `roleArn`: for a LightsailAccount the one it derives for the namespace (put it in the role's trust policy), for a ClusterLightsailAccount `spec.externalId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// How many GuiSessions name this account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gui_sessions: Option<u32>,
    /// Standard kstatus conditions: `Ready` is `True` once the role was assumed and the identity checked; `Stalled` is `True` after an error that retrying will not fix (AccessDenied: the trust policy or the external id); `Reconciling` while it is checked or retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Option<Vec<Condition>>,
}

impl LightsailAccountSpec {
    /// `sessionDuration`, or the default; an unparsable value (admission rejects it) is the
    /// default.
    pub fn session_duration(&self) -> std::time::Duration {
        self.session_duration
            .as_deref()
            .and_then(|d| parse_go_duration(d).ok())
            .unwrap_or(DEFAULT_SESSION_DURATION)
    }
}

/// A GuiSession's reference to an account (`spec.accountRef`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountRef {
    /// `LightsailAccount` (in the GuiSession's namespace) or `ClusterLightsailAccount`.
    pub kind: AccountKind,
    /// Name of the account object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// The two account kinds.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, JsonSchema)]
pub enum AccountKind {
    LightsailAccount,
    ClusterLightsailAccount,
}

/// One account object, wherever it lives: what GuiSessions name, and the key of its cached
/// credentials.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountKey {
    /// `None` for a ClusterLightsailAccount.
    pub namespace: Option<String>,
    pub name: String,
}

impl AccountKey {
    /// The account `reference` names, from a GuiSession in `namespace`.
    pub fn of(reference: &AccountRef, namespace: &str) -> AccountKey {
        AccountKey {
            namespace: match reference.kind {
                AccountKind::LightsailAccount => Some(namespace.to_owned()),
                AccountKind::ClusterLightsailAccount => None,
            },
            name: reference.name.clone(),
        }
    }
}

impl std::fmt::Display for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "LightsailAccount {ns}/{}", self.name),
            None => write!(f, "ClusterLightsailAccount {}", self.name),
        }
    }
}

/// The account's key as the Lightsail edge keeps its credentials.
pub fn edge_key(key: &AccountKey) -> String {
    key.to_string()
}
