//! IAM trust policies (a role's `AssumeRolePolicyDocument`): the JSON document an AWS admin
//! writes, checked when a role is configured and evaluated on every `AssumeRole`, so that tests
//! can load the very trust policies the operator's documentation shows.
//!
//! Evaluation is IAM's: an explicit `Deny` wins; otherwise some `Allow` statement must match;
//! otherwise the call is denied. A statement matches when its `Action`, its `Principal` and every
//! entry of its `Condition` match. What is modelled:
//!
//! * `Principal`: `"*"`, or `{"AWS": …}` with `"*"`, an account id, `arn:aws:iam::ACCOUNT:root`,
//!   `arn:aws:iam::ACCOUNT:user/NAME`, `arn:aws:iam::ACCOUNT:role/NAME` (its sessions) or
//!   `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`. `Service` and `Federated` principals are
//!   accepted, so documented policies load, but never match: no such caller reaches `AssumeRole`
//!   here.
//! * `Action`: names with `*` and `?` wildcards, compared without regard to case.
//! * `Condition`: `String(Not)Equals`, `String(Not)EqualsIgnoreCase`, `String(Not)Like`,
//!   `Arn(Not)Equals`, `Arn(Not)Like` (ARN operators take wildcards, as in IAM), each with an
//!   `IfExists` form and the `ForAnyValue:`/`ForAllValues:` prefixes, and `Null`. Keys the
//!   request does not carry are absent: the positive operators are then false, the negated ones
//!   true.
//!
//! Not modelled: `NotPrincipal`, `NotAction` (refused when configured, rather than ignored) and
//! policy variables (`${aws:username}` is compared as written).

use crate::calls::SessionTag;
use serde_json::Value;

/// The only action a request without session tags needs.
pub(crate) const ASSUME_ROLE: &str = "sts:AssumeRole";
/// What AWS authorizes as well when `AssumeRole` carries session tags.
pub(crate) const TAG_SESSION: &str = "sts:TagSession";

/// Condition keys with several values per request: IAM wants a set operator for them.
const MULTI_VALUED_KEYS: [&str; 2] = ["aws:tagkeys", "sts:transitivetagkeys"];

const SUPPORTED_OPERATORS: &str = "StringEquals, StringNotEquals, StringEqualsIgnoreCase, \
     StringNotEqualsIgnoreCase, StringLike, StringNotLike, ArnEquals, ArnNotEquals, ArnLike, \
     ArnNotLike (each also with IfExists and a ForAnyValue: or ForAllValues: prefix) and Null";

/// A checked trust policy, ready to evaluate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TrustPolicy {
    statements: Vec<Statement>,
}

/// The outcome of evaluating a policy for one action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// An `Allow` statement matched and no `Deny` did.
    Allow,
    /// No statement matched.
    ImplicitDeny,
    /// A `Deny` statement matched.
    ExplicitDeny,
}

/// What a request tells the policy: who asks, and the condition keys its parameters make.
pub(crate) struct RequestContext<'a> {
    /// `aws:PrincipalAccount`: the caller's account.
    pub principal_account: &'a str,
    /// `aws:PrincipalArn`: the base user's ARN, or for a role session its role's ARN
    /// (`arn:aws:iam::ACCOUNT:role/NAME`).
    pub principal_arn: &'a str,
    /// The caller's own ARN: for a role session `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    pub caller_arn: &'a str,
    /// `sts:ExternalId`.
    pub external_id: Option<&'a str>,
    /// `sts:RoleSessionName`.
    pub role_session_name: &'a str,
    /// `aws:RequestTag/KEY` and `aws:TagKeys`.
    pub request_tags: &'a [SessionTag],
    /// `sts:TransitiveTagKeys`.
    pub transitive_tag_keys: &'a [String],
    /// `aws:PrincipalTag/KEY`: the calling session's tags.
    pub principal_tags: &'a [SessionTag],
}

impl RequestContext<'_> {
    /// The values of condition key `key` (lower case); `None` when the request lacks it.
    fn values(&self, key: &str) -> Option<Vec<&str>> {
        match key {
            "sts:externalid" => self.external_id.map(|id| vec![id]),
            "sts:rolesessionname" => Some(vec![self.role_session_name]),
            "aws:principalaccount" => Some(vec![self.principal_account]),
            "aws:principalarn" => Some(vec![self.principal_arn]),
            "aws:tagkeys" => present(self.request_tags.iter().map(|t| &*t.key).collect()),
            "sts:transitivetagkeys" => present(
                self.transitive_tag_keys
                    .iter()
                    .map(String::as_str)
                    .collect(),
            ),
            _ => {
                if let Some(wanted) = key.strip_prefix("aws:requesttag/") {
                    tag_value(self.request_tags, wanted)
                } else if let Some(wanted) = key.strip_prefix("aws:principaltag/") {
                    tag_value(self.principal_tags, wanted)
                } else {
                    None
                }
            }
        }
    }
}

/// A multi-valued key's values; absent when there are none.
fn present(values: Vec<&str>) -> Option<Vec<&str>> {
    (!values.is_empty()).then_some(values)
}

/// The value of the tag whose key is `wanted` (lower case): tag keys are unique regardless of
/// case, and condition keys ignore case.
fn tag_value<'a>(tags: &'a [SessionTag], wanted: &str) -> Option<Vec<&'a str>> {
    tags.iter()
        .find(|tag| tag.key.to_lowercase() == wanted)
        .map(|tag| vec![tag.value.as_str()])
}

impl TrustPolicy {
    /// Checks a trust policy document; the error says what is wrong and where
    /// (`Statement[1]: …`).
    pub(crate) fn parse(document: &Value) -> Result<Self, String> {
        let Value::Object(fields) = document else {
            return Err(format!("{document} is not a JSON object"));
        };
        for (field, value) in fields {
            match field.as_str() {
                "Version" => {
                    if !matches!(value.as_str(), Some("2012-10-17" | "2008-10-17")) {
                        return Err(format!(
                            "Version {value} is not \"2012-10-17\" (or \"2008-10-17\")"
                        ));
                    }
                }
                "Id" if value.is_string() => {}
                "Id" => return Err(format!("Id {value} is not a string")),
                "Statement" => {}
                other => {
                    return Err(format!(
                        "unknown field {other:?} (a policy has Version, Id and Statement)"
                    ));
                }
            }
        }
        let statements: Vec<&Value> = match fields.get("Statement") {
            None => return Err("has no Statement".to_owned()),
            Some(Value::Array(list)) => list.iter().collect(),
            Some(one @ Value::Object(_)) => vec![one],
            Some(other) => {
                return Err(format!(
                    "Statement {other} is neither an object nor a list of objects"
                ));
            }
        };
        if statements.is_empty() {
            return Err("Statement is empty".to_owned());
        }
        let statements = statements
            .into_iter()
            .enumerate()
            .map(|(i, statement)| {
                Statement::parse(statement).map_err(|error| format!("Statement[{i}]: {error}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { statements })
    }

    /// Whether the policy allows `action` for the request.
    pub(crate) fn decide(&self, action: &str, request: &RequestContext<'_>) -> Decision {
        let mut allowed = false;
        for statement in &self.statements {
            if statement.matches(action, request) {
                match statement.effect {
                    Effect::Deny => return Decision::ExplicitDeny,
                    Effect::Allow => allowed = true,
                }
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Statement {
    effect: Effect,
    principal: Principal,
    /// Lower-case patterns.
    actions: Vec<String>,
    conditions: Vec<Condition>,
}

impl Statement {
    fn parse(value: &Value) -> Result<Self, String> {
        let Value::Object(fields) = value else {
            return Err(format!("{value} is not an object"));
        };
        for (field, value) in fields {
            match field.as_str() {
                "Sid" if value.is_string() => {}
                "Sid" => return Err(format!("Sid {value} is not a string")),
                "Effect" | "Principal" | "Action" | "Condition" => {}
                "NotPrincipal" | "NotAction" => {
                    return Err(format!(
                        "{field} is not supported by lightsail-sim; write Principal or Action \
                         (with a Deny statement or a condition to exclude)"
                    ));
                }
                "Resource" | "NotResource" => {
                    return Err(format!(
                        "{field} has no place in a trust policy (the role is the resource)"
                    ));
                }
                other => {
                    return Err(format!(
                        "unknown field {other:?} (a statement has Sid, Effect, Principal, \
                         Action and Condition)"
                    ));
                }
            }
        }
        let effect = match fields.get("Effect") {
            Some(Value::String(effect)) if effect == "Allow" => Effect::Allow,
            Some(Value::String(effect)) if effect == "Deny" => Effect::Deny,
            Some(other) => {
                return Err(format!(
                    "unknown Effect {other} (expected \"Allow\" or \"Deny\")"
                ));
            }
            None => return Err("has no Effect".to_owned()),
        };
        let principal = match fields.get("Principal") {
            Some(principal) => Principal::parse(principal)?,
            None => {
                return Err(
                    "has no Principal (a trust policy names who may assume the role)".to_owned(),
                );
            }
        };
        let actions = match fields.get("Action") {
            Some(actions) => parse_actions(actions)?,
            None => return Err("has no Action".to_owned()),
        };
        let conditions = match fields.get("Condition") {
            Some(conditions) => parse_conditions(conditions)?,
            None => Vec::new(),
        };
        Ok(Self {
            effect,
            principal,
            actions,
            conditions,
        })
    }

    fn matches(&self, action: &str, request: &RequestContext<'_>) -> bool {
        let action = action.to_lowercase();
        self.actions.iter().any(|pattern| like(pattern, &action))
            && self.principal.matches(request)
            && self
                .conditions
                .iter()
                .all(|condition| condition.holds(request))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Principal {
    /// `"Principal": "*"`.
    Anyone,
    /// The `AWS` principals (none when only `Service` or `Federated` ones are named).
    Aws(Vec<AwsPrincipal>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum AwsPrincipal {
    Anyone,
    /// Any principal of this account (`ACCOUNT` or `arn:aws:iam::ACCOUNT:root`).
    Account(String),
    /// A user, a role (whose sessions match) or one role session.
    Arn(String),
}

impl Principal {
    fn parse(value: &Value) -> Result<Self, String> {
        let kinds = match value {
            Value::String(any) if any == "*" => return Ok(Self::Anyone),
            Value::Object(kinds) if !kinds.is_empty() => kinds,
            other => {
                return Err(format!(
                    "Principal {other} is neither \"*\" nor an object such as \
                     {{\"AWS\": \"arn:aws:iam::111122223333:root\"}}"
                ));
            }
        };
        let mut aws = Vec::new();
        for (kind, names) in kinds {
            let names = strings(names).map_err(|error| format!("Principal {kind}: {error}"))?;
            match kind.as_str() {
                "AWS" => {
                    for name in names {
                        aws.push(parse_aws_principal(&name)?);
                    }
                }
                // Accepted so documented policies load; no such caller reaches AssumeRole here.
                "Service" | "Federated" => {}
                other => {
                    return Err(format!(
                        "unknown principal type {other:?} (expected AWS, Service or Federated)"
                    ));
                }
            }
        }
        Ok(Self::Aws(aws))
    }

    fn matches(&self, request: &RequestContext<'_>) -> bool {
        match self {
            Self::Anyone => true,
            Self::Aws(principals) => principals.iter().any(|principal| match principal {
                AwsPrincipal::Anyone => true,
                AwsPrincipal::Account(account) => account == request.principal_account,
                AwsPrincipal::Arn(arn) => arn == request.principal_arn || arn == request.caller_arn,
            }),
        }
    }
}

fn parse_aws_principal(name: &str) -> Result<AwsPrincipal, String> {
    if name == "*" {
        return Ok(AwsPrincipal::Anyone);
    }
    if crate::config::is_valid_account_id(name) {
        return Ok(AwsPrincipal::Account(name.to_owned()));
    }
    if name.contains(['*', '?']) {
        return Err(format!(
            "AWS principal {name:?} has a wildcard: IAM allows only \"*\" alone; to admit \
             several principals use a condition such as ArnLike on aws:PrincipalArn"
        ));
    }
    let malformed = || {
        format!(
            "malformed AWS principal {name:?}: expected \"*\", a 12-digit account id, \
             arn:aws:iam::ACCOUNT:root, arn:aws:iam::ACCOUNT:user/NAME, \
             arn:aws:iam::ACCOUNT:role/NAME or arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION"
        )
    };
    let mut parts = name.splitn(6, ':');
    let (Some("arn"), Some("aws"), Some(service), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(malformed());
    };
    if !crate::config::is_valid_account_id(account) {
        return Err(malformed());
    }
    // Each `/`-separated part of a name (paths included) is an IAM name.
    let names = |rest: &str, count: Option<usize>| {
        let parts: Vec<&str> = rest.split('/').collect();
        count.is_none_or(|count| parts.len() == count)
            && parts
                .iter()
                .all(|part| crate::config::is_valid_role_name(part))
    };
    let valid = match (service, resource) {
        ("iam", "root") => return Ok(AwsPrincipal::Account(account.to_owned())),
        ("iam", resource) => resource
            .strip_prefix("user/")
            .or_else(|| resource.strip_prefix("role/"))
            .is_some_and(|rest| names(rest, None)),
        ("sts", resource) => resource
            .strip_prefix("assumed-role/")
            .is_some_and(|rest| names(rest, Some(2))),
        _ => false,
    };
    if valid {
        Ok(AwsPrincipal::Arn(name.to_owned()))
    } else {
        Err(malformed())
    }
}

fn parse_actions(value: &Value) -> Result<Vec<String>, String> {
    let actions = strings(value).map_err(|error| format!("Action: {error}"))?;
    actions
        .into_iter()
        .map(|action| {
            let valid = action == "*"
                || action.split_once(':').is_some_and(|(service, name)| {
                    !service.is_empty()
                        && service
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !name.is_empty()
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'*' || b == b'?')
                });
            if valid {
                Ok(action.to_lowercase())
            } else {
                Err(format!(
                    "Action {action:?} is not \"*\" or SERVICE:ACTION such as \"sts:AssumeRole\" \
                     (wildcards * and ? allowed)"
                ))
            }
        })
        .collect()
}

/// A string or a non-empty list of strings. Numbers count as their text, as in IAM: an
/// unquoted account id in YAML is a number (and one with leading zeros a string, kept whole).
fn strings(value: &Value) -> Result<Vec<String>, String> {
    let one = |value: &Value| match value {
        Value::String(text) => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        other => Err(format!("{other} is not a string")),
    };
    match value {
        Value::Array(list) if list.is_empty() => Err("the list is empty".to_owned()),
        Value::Array(list) => list.iter().map(one).collect(),
        single => one(single).map(|text| vec![text]),
    }
}

/// Which request values must satisfy a test: `ForAnyValue:` one, `ForAllValues:` every one
/// (and none: true when the key is absent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SetOperator {
    ForAnyValue,
    ForAllValues,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Comparison {
    Equals,
    EqualsIgnoreCase,
    /// `*` matches any run of characters, `?` one.
    Like,
}

impl Comparison {
    fn matches(self, policy_value: &str, request_value: &str) -> bool {
        match self {
            Self::Equals => policy_value == request_value,
            Self::EqualsIgnoreCase => policy_value.to_lowercase() == request_value.to_lowercase(),
            Self::Like => like(policy_value, request_value),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Test {
    Compare {
        comparison: Comparison,
        negated: bool,
        set: Option<SetOperator>,
        if_exists: bool,
    },
    /// `Null`: `true` wants the key absent, `false` present.
    Null { absent: bool },
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Condition {
    test: Test,
    /// Lower case: condition key names ignore case.
    key: String,
    values: Vec<String>,
}

impl Condition {
    fn holds(&self, request: &RequestContext<'_>) -> bool {
        let found = request.values(&self.key);
        let (comparison, negated, set, if_exists) = match self.test {
            Test::Null { absent } => return found.is_none() == absent,
            Test::Compare {
                comparison,
                negated,
                set,
                if_exists,
            } => (comparison, negated, set, if_exists),
        };
        let satisfies = |request_value: &&str| {
            let hit = self
                .values
                .iter()
                .any(|policy_value| comparison.matches(policy_value, request_value));
            hit != negated
        };
        match (found, set) {
            (None, _) if if_exists => true,
            (None, None) => negated,
            (None, Some(SetOperator::ForAnyValue)) => false,
            (None, Some(SetOperator::ForAllValues)) => true,
            (Some(values), None | Some(SetOperator::ForAllValues)) => values.iter().all(satisfies),
            (Some(values), Some(SetOperator::ForAnyValue)) => values.iter().any(satisfies),
        }
    }
}

fn parse_operator(name: &str) -> Result<Test, String> {
    let unsupported = || {
        format!(
            "unsupported condition operator {name:?} (lightsail-sim supports {SUPPORTED_OPERATORS})"
        )
    };
    let (set, rest) = if let Some(rest) = name.strip_prefix("ForAnyValue:") {
        (Some(SetOperator::ForAnyValue), rest)
    } else if let Some(rest) = name.strip_prefix("ForAllValues:") {
        (Some(SetOperator::ForAllValues), rest)
    } else {
        (None, name)
    };
    if rest == "Null" {
        return if set.is_none() {
            Ok(Test::Null { absent: true })
        } else {
            Err(format!(
                "condition operator {name:?}: Null takes no ForAnyValue:/ForAllValues: prefix"
            ))
        };
    }
    let (if_exists, base) = match rest.strip_suffix("IfExists") {
        Some(base) => (true, base),
        None => (false, rest),
    };
    let (comparison, negated) = match base {
        "StringEquals" => (Comparison::Equals, false),
        "StringNotEquals" => (Comparison::Equals, true),
        "StringEqualsIgnoreCase" => (Comparison::EqualsIgnoreCase, false),
        "StringNotEqualsIgnoreCase" => (Comparison::EqualsIgnoreCase, true),
        "StringLike" | "ArnEquals" | "ArnLike" => (Comparison::Like, false),
        "StringNotLike" | "ArnNotEquals" | "ArnNotLike" => (Comparison::Like, true),
        _ => return Err(unsupported()),
    };
    Ok(Test::Compare {
        comparison,
        negated,
        set,
        if_exists,
    })
}

fn parse_conditions(value: &Value) -> Result<Vec<Condition>, String> {
    let Value::Object(operators) = value else {
        return Err(format!(
            "Condition {value} is not an object such as {{\"StringEquals\": {{\"sts:ExternalId\": \"x\"}}}}"
        ));
    };
    let mut conditions = Vec::new();
    for (operator, block) in operators {
        let mut test = parse_operator(operator)?;
        let keys = match block {
            Value::Object(keys) if !keys.is_empty() => keys,
            other => {
                return Err(format!(
                    "Condition {operator}: {other} is not an object of condition keys"
                ));
            }
        };
        for (key, values) in keys {
            if key.is_empty() {
                return Err(format!("Condition {operator}: a condition key is empty"));
            }
            let values = condition_values(values)
                .map_err(|error| format!("Condition {operator} {key}: {error}"))?;
            let lower = key.to_lowercase();
            match &mut test {
                Test::Null { absent } => {
                    *absent = match values.as_slice() {
                        [value] if value.eq_ignore_ascii_case("true") => true,
                        [value] if value.eq_ignore_ascii_case("false") => false,
                        _ => {
                            return Err(format!(
                                "Condition Null {key}: the value is not \"true\" (the key is \
                                 absent) or \"false\" (present)"
                            ));
                        }
                    };
                }
                Test::Compare { set: None, .. } if MULTI_VALUED_KEYS.contains(&lower.as_str()) => {
                    return Err(format!(
                        "Condition {operator} {key}: {key} is multi-valued, so IAM wants a set \
                         operator: ForAnyValue:{operator} or ForAllValues:{operator}"
                    ));
                }
                Test::Compare { .. } => {}
            }
            conditions.push(Condition {
                test,
                key: lower,
                values,
            });
        }
    }
    Ok(conditions)
}

/// A condition's values: strings (booleans as `true`/`false`), one or a list.
fn condition_values(value: &Value) -> Result<Vec<String>, String> {
    let as_text = |value: &Value| match value {
        Value::Bool(flag) => Value::String(flag.to_string()),
        other => other.clone(),
    };
    match value {
        Value::Array(list) => strings(&Value::Array(list.iter().map(as_text).collect())),
        single => strings(&as_text(single)),
    }
}

/// IAM's wildcard match: `*` any run of characters (none too), `?` exactly one.
fn like(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // After a `*`: where it is in the pattern, and where in the text its run ends for now.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                // Let the last `*` take one more character and try again.
                Some((star_p, star_t)) => {
                    star = Some((star_p, star_t + 1));
                    p = star_p + 1;
                    t = star_t + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const BASE: &str = "000000000000";
    const OPERATOR: &str = "123456789012";
    const BASE_USER: &str = "arn:aws:iam::000000000000:user/lightsail-sim";
    const OPERATOR_ROLE: &str = "arn:aws:iam::123456789012:role/lightsail-gui-operator";
    const OPERATOR_SESSION: &str =
        "arn:aws:sts::123456789012:assumed-role/lightsail-gui-operator/op-1";

    fn tag(key: &str, value: &str) -> SessionTag {
        SessionTag {
            key: key.to_owned(),
            value: value.to_owned(),
        }
    }

    /// A request by the base user, without external id or tags.
    fn by_base() -> RequestContext<'static> {
        RequestContext {
            principal_account: BASE,
            principal_arn: BASE_USER,
            caller_arn: BASE_USER,
            external_id: None,
            role_session_name: "s1",
            request_tags: &[],
            transitive_tag_keys: &[],
            principal_tags: &[],
        }
    }

    /// A request by a session of the operator's role.
    fn by_operator() -> RequestContext<'static> {
        RequestContext {
            principal_account: OPERATOR,
            principal_arn: OPERATOR_ROLE,
            caller_arn: OPERATOR_SESSION,
            ..by_base()
        }
    }

    fn policy(document: Value) -> TrustPolicy {
        match TrustPolicy::parse(&document) {
            Ok(policy) => policy,
            Err(error) => panic!("{document} refused: {error}"),
        }
    }

    fn allow(principal: Value, condition: Value) -> TrustPolicy {
        policy(json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole",
            "Condition": condition}]}))
    }

    fn decide(policy: &TrustPolicy, request: &RequestContext<'_>) -> Decision {
        policy.decide(ASSUME_ROLE, request)
    }

    #[test]
    fn the_documented_cross_account_policy_wants_the_role_and_the_external_id() {
        // docs/helm-and-gitops.md, "Other AWS accounts".
        let documented = policy(json!({
          "Version": "2012-10-17",
          "Statement": [{
            "Effect": "Allow",
            "Principal": { "AWS": "arn:aws:iam::123456789012:role/lightsail-gui-operator" },
            "Action": "sts:AssumeRole",
            "Condition": { "StringEquals": { "sts:ExternalId": "lab-2026-physics" } }
          }]
        }));
        let with_id = |id| RequestContext {
            external_id: id,
            ..by_operator()
        };
        assert_eq!(
            decide(&documented, &with_id(Some("lab-2026-physics"))),
            Decision::Allow
        );
        for wrong in [None, Some("lab-2026-PHYSICS"), Some("lab-2026-physics2")] {
            assert_eq!(
                decide(&documented, &with_id(wrong)),
                Decision::ImplicitDeny,
                "{wrong:?}"
            );
        }
        // The base user of the same account as the role's sessions is not the role.
        let same_account_user = RequestContext {
            principal_account: OPERATOR,
            principal_arn: "arn:aws:iam::123456789012:user/lightsail-sim",
            caller_arn: "arn:aws:iam::123456789012:user/lightsail-sim",
            external_id: Some("lab-2026-physics"),
            ..by_base()
        };
        assert_eq!(
            decide(&documented, &same_account_user),
            Decision::ImplicitDeny
        );
        // Another role of the operator's account is not it either.
        let other_role = RequestContext {
            principal_arn: "arn:aws:iam::123456789012:role/lightsail-gui-operator2",
            caller_arn: "arn:aws:sts::123456789012:assumed-role/lightsail-gui-operator2/op-1",
            external_id: Some("lab-2026-physics"),
            ..by_operator()
        };
        assert_eq!(decide(&documented, &other_role), Decision::ImplicitDeny);
        // Tagging is another action the policy does not allow.
        assert_eq!(
            documented.decide(TAG_SESSION, &with_id(Some("lab-2026-physics"))),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn principals_match_accounts_users_roles_sessions_and_anyone() {
        let cases = [
            (json!("*"), true, true),
            (json!({"AWS": "*"}), true, true),
            (json!({"AWS": BASE}), true, false),
            (
                json!({"AWS": "arn:aws:iam::000000000000:root"}),
                true,
                false,
            ),
            (json!({"AWS": BASE_USER}), true, false),
            (json!({"AWS": [OPERATOR]}), false, true),
            (json!({"AWS": [BASE_USER, OPERATOR_ROLE]}), true, true),
            (json!({"AWS": OPERATOR_SESSION}), false, true),
            (
                json!({"AWS": "arn:aws:sts::123456789012:assumed-role/lightsail-gui-operator/op-2"}),
                false,
                false,
            ),
            (
                json!({"AWS": "arn:aws:iam::123456789012:role/other"}),
                false,
                false,
            ),
            (
                json!({"AWS": "arn:aws:iam::000000000000:user/other"}),
                false,
                false,
            ),
            (json!({"Service": "pods.eks.amazonaws.com"}), false, false),
            (
                json!({"Federated": "arn:aws:iam::123456789012:oidc-provider/OIDC"}),
                false,
                false,
            ),
        ];
        for (principal, base, operator) in cases {
            let policy = allow(principal.clone(), json!({}));
            let decided = (decide(&policy, &by_base()), decide(&policy, &by_operator()));
            let expected = |allowed| {
                if allowed {
                    Decision::Allow
                } else {
                    Decision::ImplicitDeny
                }
            };
            assert_eq!(decided, (expected(base), expected(operator)), "{principal}");
        }
    }

    #[test]
    fn numbers_are_read_as_their_text() {
        let policy = allow(
            json!({"AWS": [123456789012_u64]}),
            json!({"StringEquals": {"sts:RoleSessionName": 42}}),
        );
        let request = RequestContext {
            role_session_name: "42",
            ..by_operator()
        };
        assert_eq!(decide(&policy, &request), Decision::Allow);
        assert_eq!(decide(&policy, &by_operator()), Decision::ImplicitDeny);
    }

    #[test]
    fn an_explicit_deny_wins_and_actions_match_with_wildcards() {
        let policy = policy(json!({"Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "STS:assume*"},
            {"Effect": "Deny", "Principal": {"AWS": OPERATOR_ROLE}, "Action": "sts:*"},
            {"Effect": "Allow", "Principal": "*", "Action": ["sts:TagSession"]},
        ]}));
        assert_eq!(decide(&policy, &by_base()), Decision::Allow);
        assert_eq!(policy.decide(TAG_SESSION, &by_base()), Decision::Allow);
        assert_eq!(decide(&policy, &by_operator()), Decision::ExplicitDeny);
        assert_eq!(
            policy.decide(TAG_SESSION, &by_operator()),
            Decision::ExplicitDeny
        );
        assert_eq!(
            policy.decide("sts:GetCallerIdentity", &by_base()),
            Decision::ImplicitDeny
        );
        let single = policy_from_one_statement();
        assert_eq!(decide(&single, &by_base()), Decision::Allow);
        assert_eq!(single.decide(TAG_SESSION, &by_base()), Decision::Allow);
    }

    /// `Statement` may be one object rather than a list; `?` stands for one character.
    fn policy_from_one_statement() -> TrustPolicy {
        policy(json!({"Version": "2008-10-17", "Id": "x", "Statement": {
            "Sid": "one", "Effect": "Allow", "Principal": {"AWS": [BASE]},
            "Action": ["sts:AssumeRol?", "sts:TagSession"]}}))
    }

    #[test]
    fn string_conditions_follow_iam_including_absent_keys() {
        let tags = [tag("kubernetes-namespace", "physics"), tag("Team", "lab-1")];
        let transitive = ["Team".to_owned()];
        let tagged = RequestContext {
            external_id: Some("Ext-1"),
            request_tags: &tags,
            transitive_tag_keys: &transitive,
            ..by_base()
        };
        let untagged = by_base();
        // (condition, tagged request, untagged request)
        let cases = [
            (
                json!({"StringEquals": {"sts:ExternalId": "Ext-1"}}),
                true,
                false,
            ),
            (
                json!({"StringEquals": {"STS:EXTERNALID": ["x", "Ext-1"]}}),
                true,
                false,
            ),
            (
                json!({"StringEqualsIgnoreCase": {"sts:ExternalId": "ext-1"}}),
                true,
                false,
            ),
            (
                json!({"StringNotEquals": {"sts:ExternalId": "Ext-1"}}),
                false,
                true,
            ),
            (
                json!({"StringNotEqualsIgnoreCase": {"sts:ExternalId": "EXT-1"}}),
                false,
                true,
            ),
            (
                json!({"StringLike": {"sts:ExternalId": "E*-?"}}),
                true,
                false,
            ),
            (
                json!({"StringNotLike": {"sts:ExternalId": "x*"}}),
                true,
                true,
            ),
            (
                json!({"StringEqualsIfExists": {"sts:ExternalId": "Ext-1"}}),
                true,
                true,
            ),
            (
                json!({"StringEqualsIfExists": {"sts:ExternalId": "other"}}),
                false,
                true,
            ),
            (
                json!({"StringEquals": {"aws:RequestTag/kubernetes-namespace": "physics"}}),
                true,
                false,
            ),
            (
                json!({"StringEquals": {"aws:requesttag/KUBERNETES-NAMESPACE": "physics"}}),
                true,
                false,
            ),
            (
                json!({"StringEquals": {"aws:RequestTag/kubernetes-namespace": "chemistry"}}),
                false,
                false,
            ),
            (json!({"Null": {"sts:ExternalId": "true"}}), false, true),
            (json!({"Null": {"sts:ExternalId": false}}), true, false),
            (json!({"Null": {"aws:TagKeys": "true"}}), false, true),
            (
                json!({"Null": {"aws:RequestTag/Team": "false"}}),
                true,
                false,
            ),
            (
                json!({"ForAllValues:StringEquals": {"aws:TagKeys": ["kubernetes-namespace", "Team"]}}),
                true,
                true,
            ),
            (
                json!({"ForAllValues:StringEquals": {"aws:TagKeys": ["kubernetes-namespace"]}}),
                false,
                true,
            ),
            (
                json!({"ForAnyValue:StringEquals": {"aws:TagKeys": ["Team"]}}),
                true,
                false,
            ),
            (
                json!({"ForAnyValue:StringLike": {"aws:TagKeys": "kube*"}}),
                true,
                false,
            ),
            (
                json!({"ForAllValues:StringNotLike": {"aws:TagKeys": "aws*"}}),
                true,
                true,
            ),
            (
                json!({"ForAnyValue:StringEquals": {"sts:TransitiveTagKeys": "Team"}}),
                true,
                false,
            ),
            (
                json!({"StringEquals": {"sts:RoleSessionName": "s1"}}),
                true,
                true,
            ),
            (
                json!({"StringEquals": {"aws:PrincipalAccount": BASE}}),
                true,
                true,
            ),
            (
                json!({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::000000000000:user/*"}}),
                true,
                true,
            ),
            (
                json!({"ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::*:role/*"}}),
                false,
                false,
            ),
            (
                json!({"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/*"}}),
                true,
                true,
            ),
            (
                json!({"StringEquals": {"aws:SourceIp": "10.0.0.1"}}),
                false,
                false,
            ),
            (
                json!({"StringNotEquals": {"aws:SourceIp": "10.0.0.1"}}),
                true,
                true,
            ),
            // Every key of a block and every block must hold.
            (
                json!({"StringEquals": {"sts:ExternalId": "Ext-1", "aws:RequestTag/Team": "x"}}),
                false,
                false,
            ),
            (
                json!({"StringEquals": {"sts:ExternalId": "Ext-1"}, "Null": {"aws:TagKeys": "false"}}),
                true,
                false,
            ),
        ];
        for (condition, on_tagged, on_untagged) in cases {
            let policy = allow(json!("*"), condition.clone());
            let decided = (
                decide(&policy, &tagged) == Decision::Allow,
                decide(&policy, &untagged) == Decision::Allow,
            );
            assert_eq!(decided, (on_tagged, on_untagged), "{condition}");
        }
    }

    #[test]
    fn principal_tags_and_the_role_arn_of_a_session_are_condition_keys() {
        let tags = [tag("tenant", "physics")];
        let session = RequestContext {
            principal_tags: &tags,
            ..by_operator()
        };
        let policy = allow(
            json!({"AWS": OPERATOR}),
            json!({"StringEquals": {"aws:PrincipalTag/tenant": "physics",
                                    "aws:PrincipalArn": OPERATOR_ROLE}}),
        );
        assert_eq!(decide(&policy, &session), Decision::Allow);
        assert_eq!(decide(&policy, &by_operator()), Decision::ImplicitDeny);
    }

    #[test]
    fn wildcards_match_runs_and_single_characters() {
        for (pattern, text, expected) in [
            ("*", "", true),
            ("*", "anything", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*-physics", "lab-2026-physics", true),
            ("**a", "bbba", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("é?", "éü", true),
            ("", "", true),
            ("", "x", false),
        ] {
            assert_eq!(like(pattern, text), expected, "{pattern} ~ {text}");
        }
    }

    fn refusal(document: Value) -> String {
        match TrustPolicy::parse(&document) {
            Ok(policy) => panic!("{document} was accepted: {policy:?}"),
            Err(error) => error,
        }
    }

    #[test]
    fn malformed_documents_are_refused_saying_what_and_where() {
        let statement = |extra: Value| {
            let mut statement =
                json!({"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"});
            if let (Value::Object(fields), Value::Object(extra)) = (&mut statement, extra) {
                fields.extend(extra);
            }
            json!({"Version": "2012-10-17", "Statement": [statement]})
        };
        for (document, complaint) in [
            (json!("policy"), "\"policy\" is not a JSON object"),
            (json!({"Version": "2012-10-17"}), "has no Statement"),
            (json!({"Statement": []}), "Statement is empty"),
            (json!({"Statement": "x"}), "neither an object nor a list"),
            (
                json!({"Version": "2020-01-01", "Statement": []}),
                "Version \"2020-01-01\" is not \"2012-10-17\"",
            ),
            (json!({"Statment": []}), "unknown field \"Statment\""),
            (
                statement(json!({"Effect": "allow"})),
                "Statement[0]: unknown Effect \"allow\" (expected \"Allow\" or \"Deny\")",
            ),
            (
                json!({"Statement": [{"Principal": "*", "Action": "sts:AssumeRole"}]}),
                "Statement[0]: has no Effect",
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole"}]}),
                "has no Principal",
            ),
            (
                json!({"Statement": [{"Effect": "Allow", "Principal": "*"}]}),
                "has no Action",
            ),
            (
                statement(json!({"Principal": "root"})),
                "Principal \"root\" is neither \"*\" nor an object",
            ),
            (
                statement(json!({"Principal": {}})),
                "Principal {} is neither",
            ),
            (
                statement(json!({"Principal": {"AWS": "arn:aws:iam::123:root"}})),
                "malformed AWS principal \"arn:aws:iam::123:root\"",
            ),
            (
                statement(json!({"Principal": {"AWS": "arn:aws:iam::123456789012:group/g"}})),
                "malformed AWS principal",
            ),
            (
                statement(
                    json!({"Principal": {"AWS": "arn:aws:sts::123456789012:assumed-role/r"}}),
                ),
                "malformed AWS principal",
            ),
            (
                statement(json!({"Principal": {"AWS": "lightsail-gui-operator"}})),
                "malformed AWS principal",
            ),
            (
                statement(json!({"Principal": {"AWS": "arn:aws:iam::123456789012:role/*"}})),
                "has a wildcard: IAM allows only \"*\" alone",
            ),
            (
                statement(json!({"Principal": {"AWS": 12345_u64}})),
                "malformed AWS principal \"12345\"",
            ),
            (
                statement(json!({"Principal": {"AWS": null}})),
                "null is not a string",
            ),
            (
                statement(json!({"Principal": {"AWS": []}})),
                "Principal AWS: the list is empty",
            ),
            (
                statement(json!({"Principal": {"Aws": BASE}})),
                "unknown principal type \"Aws\"",
            ),
            (
                statement(json!({"Action": "AssumeRole"})),
                "Action \"AssumeRole\" is not \"*\" or SERVICE:ACTION",
            ),
            (
                statement(json!({"Action": ["sts:AssumeRole", true]})),
                "true is not a string",
            ),
            (
                statement(json!({"Resource": "*"})),
                "Resource has no place in a trust policy",
            ),
            (
                statement(json!({"NotPrincipal": {"AWS": BASE}})),
                "NotPrincipal is not supported",
            ),
            (
                statement(json!({"Effects": "Allow"})),
                "unknown field \"Effects\"",
            ),
            (
                statement(
                    json!({"Condition": {"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}}}),
                ),
                "unsupported condition operator \"NumericLessThan\" (lightsail-sim supports",
            ),
            (
                statement(json!({"Condition": {"stringEquals": {"sts:ExternalId": "x1"}}})),
                "unsupported condition operator \"stringEquals\"",
            ),
            (
                statement(json!({"Condition": {"ForAnyValue:Null": {"aws:TagKeys": "true"}}})),
                "Null takes no ForAnyValue:/ForAllValues: prefix",
            ),
            (
                statement(json!({"Condition": {"NullIfExists": {"aws:TagKeys": "true"}}})),
                "unsupported condition operator \"NullIfExists\"",
            ),
            (
                statement(json!({"Condition": {"Null": {"sts:ExternalId": "yes"}}})),
                "Condition Null sts:ExternalId: the value is not \"true\"",
            ),
            (
                statement(json!({"Condition": {"StringEquals": {"aws:TagKeys": "a"}}})),
                "aws:TagKeys is multi-valued, so IAM wants a set operator: \
                 ForAnyValue:StringEquals or ForAllValues:StringEquals",
            ),
            (
                statement(json!({"Condition": {"StringEquals": {"sts:ExternalId": {"a": 1}}}})),
                "Condition StringEquals sts:ExternalId: {\"a\":1} is not a string",
            ),
            (
                statement(json!({"Condition": {"StringEquals": {}}})),
                "Condition StringEquals: {} is not an object of condition keys",
            ),
            (
                statement(json!({"Condition": ["StringEquals"]})),
                "Condition [\"StringEquals\"] is not an object",
            ),
        ] {
            let error = refusal(document.clone());
            assert!(
                error.contains(complaint),
                "{document}:\n  {error}\n  wanted: {complaint}"
            );
        }
        // Statements are numbered from 0.
        let second = json!({"Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"},
            {"Effect": "Permit", "Principal": "*", "Action": "sts:AssumeRole"}]});
        assert!(refusal(second).starts_with("Statement[1]: unknown Effect"));
    }
}
