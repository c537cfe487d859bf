//! Who may call: the base credentials and their account, the other accounts with their IAM
//! roles, and the temporary credentials STS `AssumeRole` has issued.
//!
//! Credential expiry is judged on AWS's clock (the shifted [`SimClock`](super::clock::SimClock)):
//! the `Expiration` a client is told is an AWS time, so moving the clock offset forward past it
//! expires the credentials, which is how tests expire them without waiting.
//!
//! Secrets (secret keys, session tokens) live here and in the one answer that hands them out;
//! nothing here is `Debug`, and no view, count or log entry carries them.

use super::calls::SessionTag;
use super::config::{
    AccountSpec, ConfigError, RoleSpec, check_accounts, validate_sts_credential_lifetime,
};
use super::sigv4::constant_time_eq;
use super::trust_policy::{ASSUME_ROLE, Decision, RequestContext, TAG_SESSION, TrustPolicy};
use super::wire::{AwsError, ErrorCode};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// IAM user name of the base credentials, in their ARN `arn:aws:iam::ACCOUNT:user/lightsail-sim`.
pub const BASE_USER_NAME: &str = "lightsail-sim";
/// Issued credentials kept at most; past this the oldest are forgotten (then unknown).
const MAX_ISSUED_CREDENTIALS: usize = 100_000;
/// `DurationSeconds` when the request names none.
pub(crate) const DEFAULT_DURATION_SECONDS: u32 = 3600;
/// Longest session of a role assumed with temporary credentials (AWS's role-chaining limit).
const ROLE_CHAINING_LIMIT_SECONDS: u32 = 3600;

const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The principal behind a signature (no secrets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Caller {
    /// The account its credentials belong to.
    pub account: Arc<str>,
    /// `arn:aws:iam::ACCOUNT:user/lightsail-sim` or
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    pub arn: Arc<str>,
    /// `AIDA…` for the base user, `AROA…:SESSION` for a role session.
    pub user_id: Arc<str>,
    /// Temporary credentials from `AssumeRole` (role chaining limits what they may assume).
    pub assumed_role: bool,
    /// What trust policies see as `aws:PrincipalArn`: the base user's ARN, or for a role
    /// session its role's `arn:aws:iam::ACCOUNT:role/NAME`.
    pub principal_arn: Arc<str>,
    /// A role session's tags (`aws:PrincipalTag/KEY`); none for the base user.
    pub session_tags: Arc<[SessionTag]>,
}

/// Temporary credentials as issued.
struct Issued {
    secret_access_key: String,
    session_token: String,
    /// On AWS's clock, whole seconds (what the client was told).
    expires_at: SystemTime,
    caller: Caller,
}

/// What `AssumeRole` asks for, already checked for syntax.
pub(crate) struct AssumeRoleInput<'a> {
    pub role_arn: &'a str,
    pub account: &'a str,
    pub role_name: &'a str,
    pub session_name: &'a str,
    pub external_id: Option<&'a str>,
    pub duration_seconds: Option<u32>,
    /// Session tags, checked for syntax and unique keys.
    pub tags: Vec<SessionTag>,
    pub transitive_tag_keys: Vec<String>,
}

/// What `AssumeRole` answers. Holds secrets: rendered into the answer and dropped.
pub(crate) struct IssuedCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expiration: SystemTime,
    pub assumed_role_arn: Arc<str>,
    pub assumed_role_id: Arc<str>,
}

/// Why `AssumeRole` said no.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The role does not exist, or its trust policy does not allow the caller `sts:AssumeRole`
    /// (the legacy form: does not trust the caller's account, or the external id is missing
    /// or wrong): AWS does not say which.
    AccessDenied,
    /// The request carries session tags and the trust policy does not allow `sts:TagSession`.
    TagSessionDenied,
    /// `DurationSeconds` longer than the role (or role chaining) allows.
    Duration(&'static str),
}

/// Accounts, roles and credentials.
pub(crate) struct Identities {
    base_access_key_id: String,
    base_secret_access_key: String,
    base: Caller,
    accounts: BTreeMap<String, AccountSpec>,
    /// The trust policies of the roles that have one, checked, by (account, role name).
    trust_policies: HashMap<(String, String), TrustPolicy>,
    issued: HashMap<String, Issued>,
    /// Access key ids in the order issued, to forget the oldest past the cap.
    issue_order: VecDeque<String>,
    credential_lifetime: Option<Duration>,
}

impl Identities {
    /// From a validated configuration.
    pub(crate) fn new(
        base_account: &str,
        access_key_id: &str,
        secret_access_key: &str,
        accounts: &[AccountSpec],
        credential_lifetime: Option<Duration>,
    ) -> Self {
        let arn: Arc<str> = Arc::from(format!("arn:aws:iam::{base_account}:user/{BASE_USER_NAME}"));
        let base = Caller {
            account: Arc::from(base_account),
            arn: Arc::clone(&arn),
            user_id: Arc::from(stable_id("AIDA", &[base_account, BASE_USER_NAME])),
            assumed_role: false,
            principal_arn: arn,
            session_tags: Arc::from([]),
        };
        let mut identities = Self {
            base_access_key_id: access_key_id.to_owned(),
            base_secret_access_key: secret_access_key.to_owned(),
            base,
            accounts: BTreeMap::new(),
            trust_policies: HashMap::new(),
            issued: HashMap::new(),
            issue_order: VecDeque::new(),
            credential_lifetime,
        };
        for account in accounts {
            identities.insert_account(account.clone());
        }
        identities
    }

    /// Keeps an account (already checked), compiling its roles' trust policies; `true` when it
    /// is new.
    fn insert_account(&mut self, account: AccountSpec) -> bool {
        self.trust_policies.retain(|(id, _), _| *id != account.id);
        for role in &account.roles {
            let Some(document) = &role.trust_policy else {
                continue;
            };
            match TrustPolicy::parse(document) {
                Ok(policy) => {
                    self.trust_policies
                        .insert((account.id.clone(), role.name.clone()), policy);
                }
                // Unreachable after validation; such a role stays closed (it trusts no account).
                Err(error) => tracing::error!(role = %role.name, %error, "trust policy refused"),
            }
        }
        self.accounts.insert(account.id.clone(), account).is_none()
    }

    pub(crate) fn base_account(&self) -> &str {
        &self.base.account
    }

    /// Whether `id` is the base account or one configured.
    pub(crate) fn knows_account(&self, id: &str) -> bool {
        id == &*self.base.account || self.accounts.contains_key(id)
    }

    /// The configured accounts, by id.
    pub(crate) fn accounts(&self) -> Vec<AccountSpec> {
        self.accounts.values().cloned().collect()
    }

    /// Adds an account or replaces its roles; `true` when it is new. Its roles may trust only
    /// known accounts (itself included). Credentials issued already stay valid.
    pub(crate) fn upsert_account(&mut self, account: AccountSpec) -> Result<bool, ConfigError> {
        let mut all: Vec<AccountSpec> = self
            .accounts
            .values()
            .filter(|known| known.id != account.id)
            .cloned()
            .collect();
        all.push(account.clone());
        check_accounts(&self.base.account, &all, &[])?;
        Ok(self.insert_account(account))
    }

    pub(crate) fn credential_lifetime(&self) -> Option<Duration> {
        self.credential_lifetime
    }

    pub(crate) fn set_credential_lifetime(
        &mut self,
        lifetime: Option<Duration>,
    ) -> Result<(), ConfigError> {
        if let Some(lifetime) = lifetime {
            validate_sts_credential_lifetime(lifetime)?;
        }
        self.credential_lifetime = lifetime;
        Ok(())
    }

    /// Temporary credentials held (valid or expired).
    pub(crate) fn issued_count(&self) -> usize {
        self.issued.len()
    }

    /// The principal an access key id belongs to, whether or not a request using it holds up
    /// (for the call log of refused calls).
    pub(crate) fn caller_of(&self, access_key_id: &str) -> Option<Caller> {
        if access_key_id == self.base_access_key_id {
            Some(self.base.clone())
        } else {
            self.issued
                .get(access_key_id)
                .map(|issued| issued.caller.clone())
        }
    }

    /// The secret to check a signature made with `access_key_id`, and its principal, if the
    /// key is known, the session token presented matches it (temporary credentials need theirs;
    /// long-term ones take none) and, for temporary credentials, they have not expired by AWS's
    /// `now`.
    pub(crate) fn signing_key(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
        now: SystemTime,
    ) -> Result<(String, Caller), AwsError> {
        let invalid = || {
            AwsError::new(
                ErrorCode::InvalidClientTokenId,
                "The security token included in the request is invalid.",
            )
        };
        if access_key_id == self.base_access_key_id {
            if session_token.is_some() {
                return Err(invalid());
            }
            return Ok((self.base_secret_access_key.clone(), self.base.clone()));
        }
        let issued = self.issued.get(access_key_id).ok_or_else(invalid)?;
        let token_matches = session_token.is_some_and(|token| {
            constant_time_eq(token.as_bytes(), issued.session_token.as_bytes())
        });
        if !token_matches {
            return Err(invalid());
        }
        if now >= issued.expires_at {
            return Err(AwsError::new(
                ErrorCode::ExpiredToken,
                "The security token included in the request is expired",
            ));
        }
        Ok((issued.secret_access_key.clone(), issued.caller.clone()))
    }

    /// `AssumeRole` for `caller` at AWS's `now`.
    pub(crate) fn assume_role(
        &mut self,
        caller: &Caller,
        input: &AssumeRoleInput<'_>,
        now: SystemTime,
    ) -> Result<IssuedCredentials, Refusal> {
        let role = self.role(input.account, input.role_name).ok_or_else(|| {
            tracing::debug!(role = input.role_arn, "AssumeRole denied: no such role");
            Refusal::AccessDenied
        })?;
        let policy = self
            .trust_policies
            .get(&(input.account.to_owned(), input.role_name.to_owned()));
        match policy {
            Some(policy) => authorize(policy, caller, input)?,
            None => trusts_legacy(role, caller, input)?,
        }
        let requested = input.duration_seconds.unwrap_or(DEFAULT_DURATION_SECONDS);
        if caller.assumed_role && requested > ROLE_CHAINING_LIMIT_SECONDS {
            return Err(Refusal::Duration(
                "The requested DurationSeconds exceeds the 1 hour session limit for roles \
                 assumed by role chaining.",
            ));
        }
        if u64::from(requested) > role.max_session_duration.as_secs() {
            return Err(Refusal::Duration(
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            ));
        }
        let mut lifetime = Duration::from_secs(u64::from(requested));
        if let Some(knob) = self.credential_lifetime {
            lifetime = lifetime.min(knob);
        }
        let expiration = whole_seconds(now) + lifetime;

        let account = input.account;
        let role_id = stable_id("AROA", &[account, input.role_name]);
        let assumed_role_arn: Arc<str> = Arc::from(format!(
            "arn:aws:sts::{account}:assumed-role/{}/{}",
            input.role_name, input.session_name
        ));
        let assumed_role_id: Arc<str> = Arc::from(format!("{role_id}:{}", input.session_name));
        let access_key_id = format!("ASIA{}", random_string(BASE32, 16));
        let secret_access_key = random_string(BASE64, 40);
        let session_token = format!("IQoJb3JpZ2luX2Vj{}", random_string(BASE64, 300));
        let issued = Issued {
            secret_access_key: secret_access_key.clone(),
            session_token: session_token.clone(),
            expires_at: expiration,
            caller: Caller {
                account: Arc::from(account),
                arn: Arc::clone(&assumed_role_arn),
                user_id: Arc::clone(&assumed_role_id),
                assumed_role: true,
                principal_arn: Arc::from(super::config::role_arn(account, input.role_name)),
                session_tags: Arc::from(input.tags.as_slice()),
            },
        };
        if self.issue_order.len() >= MAX_ISSUED_CREDENTIALS
            && let Some(oldest) = self.issue_order.pop_front()
        {
            self.issued.remove(&oldest);
        }
        self.issue_order.push_back(access_key_id.clone());
        self.issued.insert(access_key_id.clone(), issued);
        Ok(IssuedCredentials {
            access_key_id,
            secret_access_key,
            session_token,
            expiration,
            assumed_role_arn,
            assumed_role_id,
        })
    }

    fn role(&self, account: &str, name: &str) -> Option<&RoleSpec> {
        self.accounts
            .get(account)?
            .roles
            .iter()
            .find(|role| role.name == name)
    }
}

/// Whether a role's trust policy lets `caller` make this request: `sts:AssumeRole`, and with
/// session tags `sts:TagSession` too, as AWS authorizes both.
fn authorize(
    policy: &TrustPolicy,
    caller: &Caller,
    input: &AssumeRoleInput<'_>,
) -> Result<(), Refusal> {
    let request = RequestContext {
        principal_account: &caller.account,
        principal_arn: &caller.principal_arn,
        caller_arn: &caller.arn,
        external_id: input.external_id,
        role_session_name: input.session_name,
        request_tags: &input.tags,
        transitive_tag_keys: &input.transitive_tag_keys,
        principal_tags: &caller.session_tags,
    };
    let decision = policy.decide(ASSUME_ROLE, &request);
    if decision != Decision::Allow {
        tracing::debug!(
            role = input.role_arn,
            caller = &*caller.arn,
            ?decision,
            "AssumeRole denied by the trust policy"
        );
        return Err(Refusal::AccessDenied);
    }
    if !input.tags.is_empty() {
        let decision = policy.decide(TAG_SESSION, &request);
        if decision != Decision::Allow {
            tracing::debug!(
                role = input.role_arn,
                caller = &*caller.arn,
                ?decision,
                "AssumeRole with session tags denied: the trust policy does not allow \
                 sts:TagSession"
            );
            return Err(Refusal::TagSessionDenied);
        }
    }
    Ok(())
}

/// The legacy form of a role: the caller's account must be trusted and the external id, when
/// the role wants one, right. Session tags are not checked.
fn trusts_legacy(
    role: &RoleSpec,
    caller: &Caller,
    input: &AssumeRoleInput<'_>,
) -> Result<(), Refusal> {
    if !role
        .trusted_accounts
        .iter()
        .any(|trusted| trusted.as_str() == &*caller.account)
    {
        tracing::debug!(
            role = input.role_arn,
            account = &*caller.account,
            "AssumeRole denied: the role does not trust the caller's account"
        );
        return Err(Refusal::AccessDenied);
    }
    if let Some(required) = &role.external_id
        && input.external_id != Some(required.as_str())
    {
        tracing::debug!(
            role = input.role_arn,
            "AssumeRole denied: external id missing or wrong"
        );
        return Err(Refusal::AccessDenied);
    }
    Ok(())
}

/// `time` without its fraction of a second (STS writes expirations to the second).
fn whole_seconds(time: SystemTime) -> SystemTime {
    let since_epoch = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    SystemTime::UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs())
}

fn random_string(alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| char::from(alphabet[rand::random_range(0..alphabet.len())]))
        .collect()
}

/// `PREFIX` and 17 base32 characters derived from `parts`: the same for the same principal in
/// every run, as IAM's unique ids are for the life of a user or role.
fn stable_id(prefix: &str, parts: &[&str]) -> String {
    let mut bits: u128 = 0;
    for seed in 0u8..2 {
        let mut hasher = std::hash::DefaultHasher::new();
        seed.hash(&mut hasher);
        parts.hash(&mut hasher);
        bits = (bits << 64) | u128::from(hasher.finish());
    }
    let id: String = (0..17)
        .map(|i| char::from(BASE32[((bits >> (i * 5)) & 0x1f) as usize]))
        .collect();
    format!("{prefix}{id}")
}

/// A role's ARN, parsed: `arn:aws:iam::ACCOUNT:role/NAME` → (ACCOUNT, NAME). A name with a
/// path (`role/path/name`) is kept whole and so matches no configured role.
pub(crate) fn parse_role_arn(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let name = resource.strip_prefix("role/")?;
    let valid = super::config::is_valid_account_id(account)
        && !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    valid.then_some((account, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::role_arn;

    const BASE: &str = "000000000000";
    const OTHER: &str = "111122223333";

    fn identities() -> Identities {
        Identities::new(
            BASE,
            "AKIDBASE",
            "base-secret",
            &[AccountSpec::new(OTHER)
                .with_role(RoleSpec::new("gui").trusting(BASE))
                .with_role(
                    RoleSpec::new("guarded")
                        .trusting(BASE)
                        .with_external_id("ext-1")
                        .with_max_session_duration(Duration::from_secs(7200)),
                )
                .with_role(RoleSpec::new("closed").trusting(OTHER))],
            None,
        )
    }

    fn input<'a>(
        name: &'a str,
        external_id: Option<&'a str>,
        duration: Option<u32>,
    ) -> AssumeRoleInput<'a> {
        AssumeRoleInput {
            role_arn: "arn",
            account: OTHER,
            role_name: name,
            session_name: "s1",
            external_id,
            duration_seconds: duration,
            tags: Vec::new(),
            transitive_tag_keys: Vec::new(),
        }
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn trust_and_external_ids_decide_who_assumes_what() {
        let mut ids = identities();
        let base = ids.base.clone();
        let now = at(1_000_000);
        assert!(
            ids.assume_role(&base, &input("gui", None, None), now)
                .is_ok()
        );
        assert!(
            ids.assume_role(&base, &input("gui", Some("whatever"), None), now)
                .is_ok()
        );
        for denied in [
            input("nope", None, None),
            input("closed", None, None),
            input("guarded", None, None),
            input("guarded", Some("ext-2"), None),
        ] {
            assert_eq!(
                ids.assume_role(&base, &denied, now).err(),
                Some(Refusal::AccessDenied),
                "{}",
                denied.role_name
            );
        }
        let issued = ids.assume_role(&base, &input("guarded", Some("ext-1"), Some(7200)), now);
        assert!(issued.is_ok());
        assert!(matches!(
            ids.assume_role(&base, &input("gui", None, Some(3601)), now),
            Err(Refusal::Duration(m)) if m.contains("MaxSessionDuration")
        ));
    }

    #[test]
    fn issued_credentials_sign_until_they_expire_and_need_their_token() {
        let mut ids = identities();
        let base = ids.base.clone();
        let now = at(1_000_000);
        let Ok(issued) = ids.assume_role(&base, &input("gui", None, Some(900)), now) else {
            panic!("assume role");
        };
        assert!(issued.access_key_id.starts_with("ASIA") && issued.access_key_id.len() == 20);
        assert_eq!(issued.secret_access_key.len(), 40);
        assert_eq!(issued.expiration, at(1_000_900));
        assert_eq!(
            &*issued.assumed_role_arn,
            "arn:aws:sts::111122223333:assumed-role/gui/s1"
        );
        assert!(issued.assumed_role_id.starts_with("AROA"));
        assert!(issued.assumed_role_id.ends_with(":s1"));

        let key = |token: Option<&str>, when| {
            ids.signing_key(&issued.access_key_id, token, when)
                .map(|(secret, caller)| (secret, caller.account.to_string()))
                .map_err(|e| e.code)
        };
        assert_eq!(
            key(Some(&issued.session_token), at(1_000_899)),
            Ok((issued.secret_access_key.clone(), OTHER.to_owned()))
        );
        assert_eq!(
            key(Some(&issued.session_token), at(1_000_900)),
            Err(ErrorCode::ExpiredToken)
        );
        assert_eq!(key(None, now), Err(ErrorCode::InvalidClientTokenId));
        assert_eq!(
            key(Some("other"), now),
            Err(ErrorCode::InvalidClientTokenId)
        );
        assert_eq!(
            ids.signing_key("AKIDBASE", Some("token"), now)
                .map_err(|e| e.code)
                .err(),
            Some(ErrorCode::InvalidClientTokenId)
        );
        assert_eq!(
            ids.signing_key("ASIAUNKNOWN", Some("token"), now)
                .map_err(|e| e.code)
                .err(),
            Some(ErrorCode::InvalidClientTokenId)
        );
        assert_eq!(
            ids.caller_of(&issued.access_key_id).map(|c| c.arn),
            Some(Arc::clone(&issued.assumed_role_arn))
        );
    }

    #[test]
    fn the_lifetime_knob_shortens_and_role_chaining_is_limited() {
        let mut ids = identities();
        assert!(
            ids.set_credential_lifetime(Some(Duration::from_millis(1500)))
                .is_err()
        );
        assert!(
            ids.set_credential_lifetime(Some(Duration::from_secs(20)))
                .is_ok()
        );
        let base = ids.base.clone();
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_000_000_700);
        let Ok(issued) = ids.assume_role(&base, &input("guarded", Some("ext-1"), Some(7200)), now)
        else {
            panic!("assume role");
        };
        assert_eq!(issued.expiration, at(1_000_020));
        let Some(session) = ids.caller_of(&issued.access_key_id) else {
            panic!("issued caller");
        };
        // The chained session's account (OTHER) is trusted by "closed".
        assert!(
            ids.assume_role(&session, &input("closed", None, None), now)
                .is_ok()
        );
        assert!(matches!(
            ids.assume_role(&session, &input("closed", None, Some(3601)), now),
            Err(Refusal::Duration(m)) if m.contains("role chaining")
        ));
    }

    #[test]
    fn accounts_are_added_and_replaced_with_known_trust_only() {
        let mut ids = identities();
        assert!(ids.knows_account(BASE) && ids.knows_account(OTHER));
        assert!(!ids.knows_account("444455556666"));
        let new = AccountSpec::new("444455556666").with_role(RoleSpec::new("r").trusting(OTHER));
        assert_eq!(ids.upsert_account(new.clone()).ok(), Some(true));
        assert_eq!(ids.upsert_account(new).ok(), Some(false));
        let stranger =
            AccountSpec::new("555555555555").with_role(RoleSpec::new("r").trusting("999999999999"));
        assert!(ids.upsert_account(stranger).is_err());
        assert_eq!(ids.accounts().len(), 2);
    }

    /// Account OTHER's roles decided by trust policies: "tenant" admits the base account
    /// with a namespace tag, "plain" allows only `sts:AssumeRole`, "hop" the sessions of
    /// "tenant" only.
    fn policy_identities() -> Identities {
        let allow = |principal: serde_json::Value,
                     actions: serde_json::Value,
                     condition: serde_json::Value| {
            serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": principal, "Action": actions, "Condition": condition}]})
        };
        Identities::new(
            BASE,
            "AKIDBASE",
            "base-secret",
            &[AccountSpec::new(OTHER)
                .with_role(RoleSpec::new("tenant").with_trust_policy(allow(
                    serde_json::json!({"AWS": BASE}),
                    serde_json::json!(["sts:AssumeRole", "sts:TagSession"]),
                    serde_json::json!({"StringEquals":
                        {"aws:RequestTag/kubernetes-namespace": "physics"}}),
                )))
                .with_role(RoleSpec::new("plain").with_trust_policy(allow(
                    serde_json::json!({"AWS": format!("arn:aws:iam::{BASE}:root")}),
                    serde_json::json!("sts:AssumeRole"),
                    serde_json::json!({}),
                )))
                .with_role(RoleSpec::new("hop").with_trust_policy(allow(
                    serde_json::json!({"AWS": role_arn(OTHER, "tenant")}),
                    serde_json::json!("sts:AssumeRole"),
                    serde_json::json!({}),
                )))
                .with_role(RoleSpec::new("gui").trusting(BASE))],
            None,
        )
    }

    fn tagged<'a>(name: &'a str, tags: &[(&str, &str)]) -> AssumeRoleInput<'a> {
        AssumeRoleInput {
            tags: tags.iter().map(|(k, v)| SessionTag::new(*k, *v)).collect(),
            ..input(name, None, None)
        }
    }

    #[test]
    fn trust_policies_decide_with_session_tags_and_tag_session() {
        let mut ids = policy_identities();
        let base = ids.base.clone();
        let now = at(1_000_000);
        let physics = [("kubernetes-namespace", "physics")];
        let Ok(issued) = ids.assume_role(&base, &tagged("tenant", &physics), now) else {
            panic!("the tenant role refused its namespace");
        };
        for (role, tags, refusal) in [
            (
                "tenant",
                &[("kubernetes-namespace", "chemistry")][..],
                Refusal::AccessDenied,
            ),
            ("tenant", &[][..], Refusal::AccessDenied),
            ("plain", &physics[..], Refusal::TagSessionDenied),
            ("hop", &[][..], Refusal::AccessDenied),
        ] {
            assert_eq!(
                ids.assume_role(&base, &tagged(role, tags), now).err(),
                Some(refusal),
                "{role} {tags:?}"
            );
        }
        assert!(ids.assume_role(&base, &tagged("plain", &[]), now).is_ok());
        // The legacy form ignores tags, as before.
        assert!(
            ids.assume_role(&base, &tagged("gui", &physics), now)
                .is_ok()
        );

        // The session keeps its tags, and is the tenant role's session to "hop".
        let Some(session) = ids.caller_of(&issued.access_key_id) else {
            panic!("issued caller");
        };
        assert_eq!(
            session.session_tags.to_vec(),
            [SessionTag::new("kubernetes-namespace", "physics")]
        );
        assert_eq!(&*session.principal_arn, role_arn(OTHER, "tenant"));
        assert!(ids.assume_role(&session, &tagged("hop", &[]), now).is_ok());
        assert!(matches!(
            ids.assume_role(&session, &input("hop", None, Some(3601)), now),
            Err(Refusal::Duration(m)) if m.contains("role chaining")
        ));
        let Ok(plain) = ids.assume_role(&base, &tagged("plain", &[]), now) else {
            panic!("plain");
        };
        let Some(plain) = ids.caller_of(&plain.access_key_id) else {
            panic!("plain caller");
        };
        assert_eq!(
            ids.assume_role(&plain, &tagged("hop", &[]), now).err(),
            Some(Refusal::AccessDenied)
        );

        // Replacing the account replaces its policies: "tenant" becomes a legacy role.
        let replaced = AccountSpec::new(OTHER).with_role(RoleSpec::new("tenant").trusting(BASE));
        assert_eq!(ids.upsert_account(replaced).ok(), Some(false));
        assert!(ids.assume_role(&base, &tagged("tenant", &[]), now).is_ok());
        assert_eq!(
            ids.assume_role(&base, &tagged("plain", &[]), now).err(),
            Some(Refusal::AccessDenied)
        );
    }

    #[test]
    fn role_arns_parse_and_ids_are_stable() {
        assert_eq!(
            parse_role_arn("arn:aws:iam::111122223333:role/gui"),
            Some(("111122223333", "gui"))
        );
        assert_eq!(
            parse_role_arn("arn:aws:iam::111122223333:role/path/gui"),
            Some(("111122223333", "path/gui"))
        );
        for bad in [
            "arn:aws:iam::1111:role/gui",
            "arn:aws:iam::111122223333:user/gui",
            "arn:aws:iam::111122223333:role/",
            "arn:aws-cn:iam::111122223333:role/gui",
            "gui",
        ] {
            assert_eq!(parse_role_arn(bad), None, "{bad}");
        }
        assert_eq!(role_arn(OTHER, "gui"), "arn:aws:iam::111122223333:role/gui");
        let id = stable_id("AROA", &[OTHER, "gui"]);
        assert_eq!(id, stable_id("AROA", &[OTHER, "gui"]));
        assert_ne!(id, stable_id("AROA", &[OTHER, "gui2"]));
        assert_eq!(id.len(), 21);
    }
}
