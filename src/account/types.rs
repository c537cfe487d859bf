//! The account kinds (`LightsailAccount`, namespaced, and `ClusterLightsailAccount`, cluster-wide
//! and limited to chosen namespaces), in the pattern of cert-manager's Issuer/ClusterIssuer: a
//! GuiSession with `spec.accountRef` manages its session in that AWS account instead of the
//! operator's own. Also the pure parts of their policy: which namespaces may use a cluster
//! account, whether an account may be used, and the status an account check leads to.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::guisession::types::parse_go_duration;

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

impl AllowedNamespaces {
    /// Whether the namespace `name`, with these labels, may use the account. A selector that
    /// cannot be evaluated (an unknown operator) allows nothing.
    pub fn allows(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.names.iter().any(|n| n == name)
            || self
                .selector
                .as_ref()
                .is_some_and(|s| selector_matches(s, labels))
    }
}

/// Parses a label selector as kubectl takes it (`a=b,c!=d,e in (x,y),f notin (z),g,!h`).
pub fn parse_label_selector(text: &str) -> Result<LabelSelector, String> {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    let mut match_labels = BTreeMap::new();
    let mut expressions = Vec::new();
    let bad = |term: &str, why: &str| format!("invalid label selector term {term:?}: {why}");
    let valid_key = |k: &str| {
        !k.is_empty()
            && k.len() <= 317
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
    };
    let valid_value = |v: &str| {
        v.len() <= 63
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    let mut depth = 0;
    let mut start = 0;
    let mut terms = Vec::new();
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    for term in terms.into_iter().map(str::trim) {
        if term.is_empty() {
            return Err(bad(term, "empty term"));
        }
        let requirement =
            |key: &str, operator: &str, values: Option<Vec<String>>| LabelSelectorRequirement {
                key: key.to_owned(),
                operator: operator.to_owned(),
                values,
            };
        let set =
            |key: &str, rest: &str, operator: &str| -> Result<LabelSelectorRequirement, String> {
                let inner = rest
                    .trim()
                    .strip_prefix('(')
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(|| bad(term, "expected a parenthesised list of values"))?;
                let values: Vec<String> = inner.split(',').map(|v| v.trim().to_owned()).collect();
                if values.iter().any(|v| !valid_value(v)) {
                    return Err(bad(term, "a value is not a label value"));
                }
                Ok(requirement(key, operator, Some(values)))
            };
        let expression = if let Some((key, rest)) = term.split_once(" notin ") {
            set(key.trim(), rest, "NotIn")?
        } else if let Some((key, rest)) = term.split_once(" in ") {
            set(key.trim(), rest, "In")?
        } else if let Some((key, value)) = term.split_once("!=") {
            if !valid_value(value.trim()) {
                return Err(bad(term, "not a label value"));
            }
            requirement(key.trim(), "NotIn", Some(vec![value.trim().to_owned()]))
        } else if let Some((key, value)) = term.split_once('=') {
            let value = value.strip_prefix('=').unwrap_or(value).trim();
            if !valid_key(key.trim()) || !valid_value(value) {
                return Err(bad(term, "not a label key and value"));
            }
            match_labels.insert(key.trim().to_owned(), value.to_owned());
            continue;
        } else if let Some(key) = term.strip_prefix('!') {
            requirement(key.trim(), "DoesNotExist", None)
        } else {
            requirement(term, "Exists", None)
        };
        if !valid_key(&expression.key) {
            return Err(bad(term, "not a label key"));
        }
        expressions.push(expression);
    }
    Ok(LabelSelector {
        match_labels: (!match_labels.is_empty()).then_some(match_labels),
        match_expressions: (!expressions.is_empty()).then_some(expressions),
    })
}

/// Whether a namespace with these labels is selected (see [`AllowedNamespaces::allows`]).
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
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

/// Why a GuiSession may not use the account it names: the condition reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRefusal {
    /// `AccountNotFound`, `AccountNotAllowed` or `AccountNotReady`.
    pub reason: &'static str,
    pub message: String,
    /// The account has not been checked for its current spec yet: a wait (Reconciling), not an
    /// error (Stalled).
    pub pending: bool,
}

/// What the controller found of an account a GuiSession names.
#[derive(Debug, Clone, Copy)]
pub enum AccountFound<'a> {
    Namespaced(&'a LightsailAccount),
    /// With whether the GuiSession's namespace is allowed to use it.
    Cluster(&'a ClusterLightsailAccount, bool),
}

/// Whether `status` says Ready for `generation`.
fn was_ready_for(status: Option<&AccountStatus>, generation: Option<i64>) -> bool {
    status.is_some_and(|s| {
        s.observed_generation == generation
            && s.conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Whether a GuiSession may use the account `key`: it exists, its namespace is allowed, and it
/// is Ready for its current spec. `Ok` carries the account's spec.
pub fn check_account<'a>(
    key: &AccountKey,
    found: Option<AccountFound<'a>>,
) -> Result<&'a LightsailAccountSpec, AccountRefusal> {
    let (spec, status, generation) = match found {
        None => {
            return Err(AccountRefusal {
                reason: "AccountNotFound",
                message: format!("{key} does not exist"),
                pending: false,
            });
        }
        Some(AccountFound::Cluster(_, false)) => {
            return Err(AccountRefusal {
                reason: "AccountNotAllowed",
                message: format!(
                    "{key} does not allow this namespace (its spec.namespaces names or selects the namespaces that may use it)"
                ),
                pending: false,
            });
        }
        Some(AccountFound::Cluster(a, true)) => {
            (&a.spec.account, a.status.as_ref(), a.metadata.generation)
        }
        Some(AccountFound::Namespaced(a)) => (&a.spec, a.status.as_ref(), a.metadata.generation),
    };
    let find = |type_: &str| {
        status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
    };
    let ready = find("Ready");
    // Still being checked (a retryable error): a wait, never an error of the GuiSession's.
    let reconciling = find("Reconciling").is_some_and(|c| c.status == "True");
    let current = status.and_then(|s| s.observed_generation) == generation;
    match ready {
        Some(c) if c.status == "True" && current => Ok(spec),
        Some(c) if current => Err(AccountRefusal {
            reason: "AccountNotReady",
            message: format!("{key} is not ready: {}: {}", c.reason, c.message),
            pending: reconciling,
        }),
        _ => Err(AccountRefusal {
            reason: "AccountNotReady",
            message: format!("{key} has not been checked yet"),
            pending: true,
        }),
    }
}

/// Who the account's credentials turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub account_id: String,
    pub arn: String,
}

/// Why an account could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountError {
    /// A condition reason, e.g. `AccessDenied`, `SecretNotFound`, `InvalidStaticKeys`.
    pub reason: String,
    /// Never contains credentials.
    pub message: String,
    /// Retrying without a change (to the account, its role or its Secret) cannot help.
    pub terminal: bool,
}

/// The STS session tag that carries the namespace of a LightsailAccount.
pub const NAMESPACE_SESSION_TAG: &str = "kubernetes-namespace";

/// What the operator, the deputy, sends when it assumes a role for an account: the external id
/// and the session tags. A cluster-scoped account, made by a cluster admin, chooses its external
/// id; a namespaced one never does: its id is derived from the cluster and its namespace, and its
/// namespace is sent as a session tag, so that a tenant who copies another team's role ARN and
/// external id still presents its own namespace, which that role's trust policy refuses.
pub fn assume_role_identity(
    key: &AccountKey,
    spec: &LightsailAccountSpec,
    cluster_id: &str,
) -> (Option<String>, Vec<(String, String)>) {
    match &key.namespace {
        None => (spec.external_id.clone(), Vec::new()),
        Some(namespace) => (
            Some(format!("lightsail-gui-operator:{cluster_id}:{namespace}")),
            vec![(NAMESPACE_SESSION_TAG.to_owned(), namespace.clone())],
        ),
    }
}

/// Whether a namespaced account may assume `role_arn`: the admin's patterns (`*` matches any
/// run of characters) allow it, or there are none.
pub fn role_allowed(patterns: &[String], role_arn: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| wildcard_match(p, role_arn))
}

/// `*` matches any run of characters (none included); everything else matches itself.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The status after checking an account (`outcome`), used by `gui_sessions` GuiSessions. A
/// condition keeps its lastTransitionTime while its status is unchanged.
pub fn account_status(
    generation: Option<i64>,
    previous: Option<&AccountStatus>,
    outcome: &Result<Identity, AccountError>,
    external_id: Option<&str>,
    gui_sessions: u32,
    now: Timestamp,
) -> AccountStatus {
    let previous_conditions = previous.and_then(|p| p.conditions.as_deref());
    let (ready, reconciling, stalled, reason, message) = match outcome {
        Ok(identity) => (
            "True",
            "False",
            "False",
            "Verified".to_owned(),
            format!(
                "credentials work: account {} as {}",
                identity.account_id, identity.arn
            ),
        ),
        Err(e) if e.terminal => (
            "False",
            "False",
            "True",
            e.reason.clone(),
            e.message.clone(),
        ),
        // A transient failure of a recheck: the credentials checked before stay in use until
        // they expire, so the account stays Ready (and its GuiSessions go on) while it retries.
        Err(e) if was_ready_for(previous, generation) => (
            "True",
            "True",
            "False",
            e.reason.clone(),
            format!(
                "the last check failed ({}: {}); retrying, and the credentials checked before are used until they expire",
                e.reason, e.message
            ),
        ),
        Err(e) => (
            "False",
            "True",
            "False",
            e.reason.clone(),
            e.message.clone(),
        ),
    };
    let reason = crate::guisession::conditions::reason_from_code(&reason);
    let condition = |type_: &str, status: &str| {
        crate::guisession::conditions::condition(
            type_,
            status,
            &reason,
            message.clone(),
            generation,
            previous_conditions,
            now,
        )
    };
    let identity = outcome.as_ref().ok();
    AccountStatus {
        observed_generation: generation,
        account_id: identity
            .map(|i| i.account_id.clone())
            .or_else(|| previous.and_then(|p| p.account_id.clone())),
        arn: identity
            .map(|i| i.arn.clone())
            .or_else(|| previous.and_then(|p| p.arn.clone())),
        external_id: external_id.map(str::to_owned),
        gui_sessions: Some(gui_sessions),
        conditions: Some(vec![
            condition("Ready", ready),
            condition("Reconciling", reconciling),
            condition("Stalled", stalled),
        ]),
    }
}

#[cfg(test)]
mod tests;
