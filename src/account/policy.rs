//! The pure policy of the account kinds: which namespaces may use a cluster account, whether an
//! account may be used, which identity a check assumes (the deputy chooses the external id),
//! which roles admins allow, and the status an account check leads to.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::types::{
    AccountKey, AccountStatus, AllowedNamespaces, ClusterLightsailAccount, LightsailAccount,
    LightsailAccountSpec,
};

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
pub(super) fn wildcard_match(pattern: &str, text: &str) -> bool {
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

/// Which namespaces may use something: every one, none, or those whose labels match.
#[derive(Debug, Clone, PartialEq)]
pub enum NamespaceSelector {
    All,
    None,
    Matching(LabelSelector),
}
