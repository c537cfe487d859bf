//! Credentials for the AWS accounts GuiSessions name: one provider per account object, built
//! once from the operator's own identity (or static keys) with STS AssumeRole, shared by the
//! Lightsail client of every Region the account is used in, and refreshed before it expires.
//! Building a provider per call or per reconcile would assume the role again each time and run
//! into STS throttling.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{
    ProvideCredentials, SharedCredentialsProvider, error::CredentialsError, future,
};
use aws_sdk_lightsail::config::Region;
use aws_sdk_lightsail::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::operation::assume_role::AssumeRoleError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use super::{Lightsail, RateLimit, error_chain, one_line, sources};

/// Static access keys from a Secret. The secret key is never formatted.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticKeys")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// How to act in one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountConfig {
    /// Which account object this is (its cached credentials and clients are kept under it).
    pub key: String,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    /// STS session tags sent with AssumeRole (key, value), e.g. the namespace a LightsailAccount
    /// serves, so that the role's trust policy can name the namespaces it serves.
    pub session_tags: Vec<(String, String)>,
    pub session_name: String,
    pub session_duration: Duration,
    /// Instead of the operator's own identity.
    pub static_keys: Option<StaticKeys>,
    /// Region for STS (the account's default Region, else the operator's).
    pub region: Option<String>,
    /// The account's `rateLimit`. A cluster-scoped account's (set by a cluster admin) is the
    /// limit of its AWS account, shared by every account object naming that AWS account; a
    /// namespaced account's is only its own share, within that limit.
    pub rate: Option<RateLimit>,
    /// A ClusterLightsailAccount.
    pub cluster_scoped: bool,
}

/// Who an account's credentials turned out to be (GetCallerIdentity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    pub account_id: String,
    pub arn: String,
}

/// An account's credentials, as cached.
pub(super) struct AccountCredentials {
    pub(super) config: AccountConfig,
    pub(super) provider: SharedCredentialsProvider,
    /// Set once the identity check passed: the Lightsail rate limit is per AWS account, so
    /// account objects naming the same account share one.
    pub(super) account_id: Option<String>,
    checked_at: Instant,
    /// Whether the GuiSessions naming the account were told it can be used.
    announced: AtomicBool,
}

/// Why an account cannot be used. Never contains credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountCheckError {
    /// `AccessDenied` (the role does not trust the caller, or the external id is wrong),
    /// `InvalidClientTokenId`, `ExpiredToken`, `NoRegion`, `NoCredentials`, `Throttling`, ...
    pub code: String,
    pub message: String,
    /// Retrying without a change to the account, its role or its keys cannot help.
    pub terminal: bool,
}

/// STS error codes after which only a change helps.
const TERMINAL_STS_CODES: &[&str] = &[
    "AccessDenied",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ValidationError",
    "MalformedPolicyDocument",
    "RegionDisabledException",
    "NoRegion",
    "NoCredentials",
    "InvalidIdentityToken",
];

impl AccountCheckError {
    fn new(code: &str, message: String) -> Self {
        AccountCheckError {
            terminal: TERMINAL_STS_CODES.contains(&code),
            code: code.to_owned(),
            message: one_line(&message),
        }
    }
}

/// A provider that hands every client of an account the same credentials until shortly before
/// they expire: the role is assumed once per account, not once per client or Region.
#[derive(Debug)]
struct SharedUntilExpiry {
    inner: SharedCredentialsProvider,
    cached: tokio::sync::Mutex<Option<(Credentials, SystemTime)>>,
}

/// Credentials are renewed this long before they expire, or a quarter of their lifetime when
/// that is shorter.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

fn fresh(credentials: &Credentials, fetched_at: SystemTime, now: SystemTime) -> bool {
    let Some(expiry) = credentials.expiry() else {
        return true;
    };
    let lifetime = expiry.duration_since(fetched_at).unwrap_or_default();
    let margin = REFRESH_MARGIN.min(lifetime / 4);
    now + margin < expiry
}

impl ProvideCredentials for SharedUntilExpiry {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let mut cached = self.cached.lock().await;
            let now = SystemTime::now();
            if let Some((credentials, fetched_at)) = cached.as_ref()
                && fresh(credentials, *fetched_at, now)
            {
                return Ok(credentials.clone());
            }
            let credentials = self.inner.provide_credentials().await?;
            *cached = Some((credentials.clone(), now));
            Ok(credentials)
        })
    }
}

/// AssumeRole with session tags (aws-config's `AssumeRoleProvider` cannot send tags): each call
/// assumes the role once; [`SharedUntilExpiry`] in front of it makes that once per lifetime.
#[derive(Debug)]
struct AssumeRole {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    session_name: String,
    duration: Duration,
    external_id: Option<String>,
    session_tags: Vec<(String, String)>,
}

impl AssumeRole {
    async fn assume(&self) -> Result<Credentials, CredentialsError> {
        let mut request = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session_name)
            .duration_seconds(i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX))
            .set_external_id(self.external_id.clone());
        for (key, value) in &self.session_tags {
            let tag = aws_sdk_sts::types::Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(CredentialsError::invalid_configuration)?;
            request = request.tags(tag);
        }
        // The SDK error is kept as the source: `sts_error` finds STS's code in it.
        let out = request
            .send()
            .await
            .map_err(CredentialsError::provider_error)?;
        let Some(credentials) = out.credentials else {
            return Err(CredentialsError::unhandled(
                "AssumeRole answered without credentials",
            ));
        };
        let expiry =
            SystemTime::try_from(credentials.expiration).map_err(CredentialsError::unhandled)?;
        Ok(Credentials::new(
            credentials.access_key_id,
            credentials.secret_access_key,
            Some(credentials.session_token),
            Some(expiry),
            "lightsail-gui-operator-assume-role",
        ))
    }
}

impl ProvideCredentials for AssumeRole {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.assume())
    }
}

/// The STS error code and message inside a credentials failure, when STS answered.
fn sts_error(err: &(dyn std::error::Error + 'static)) -> Option<(String, String)> {
    sources(err).find_map(|e| {
        let sdk = e.downcast_ref::<SdkError<AssumeRoleError, HttpResponse>>()?;
        let code = sdk.code()?.to_owned();
        let message = sdk.message().unwrap_or_default().to_owned();
        Some((code, message))
    })
}

impl Lightsail {
    /// Builds (or reuses) the credentials of `config` and checks them: assumes the role and asks
    /// STS who they are. On success they are kept for every later call in this account; a
    /// changed config replaces the cached credentials and drops the account's clients.
    pub async fn check_account(
        &self,
        config: AccountConfig,
    ) -> Result<CallerIdentity, AccountCheckError> {
        let Some(region) = config
            .region
            .clone()
            .or_else(|| self.default_region.clone())
        else {
            return Err(AccountCheckError::new(
                "NoRegion",
                "no AWS Region for STS: set the account's spec.region or the operator's default Region".into(),
            ));
        };
        let provider = match self.account_credentials(&config.key) {
            Some(cached) if cached.config == config => cached.provider.clone(),
            _ => self.build_provider(&config, &region).await?,
        };
        let sts_config = aws_sdk_sts::config::Builder::from(&self.base)
            .region(Region::new(region))
            .credentials_provider(provider.clone())
            .build();
        let identity = aws_sdk_sts::Client::from_conf(sts_config)
            .get_caller_identity()
            .send()
            .await;
        let out = match identity {
            Ok(out) => out,
            Err(err) => {
                let failed_credentials = sources(&err).any(|e| e.is::<CredentialsError>());
                let (code, message) = match sts_error(&err) {
                    Some(found) => found,
                    None if failed_credentials => ("NoCredentials".into(), error_chain(&err)),
                    None => (
                        err.code().unwrap_or("Unknown").to_owned(),
                        err.message()
                            .map(str::to_owned)
                            .unwrap_or_else(|| error_chain(&err)),
                    ),
                };
                return Err(AccountCheckError::new(&code, message));
            }
        };
        let identity = CallerIdentity {
            account_id: out.account().unwrap_or_default().to_owned(),
            arn: out.arn().unwrap_or_default().to_owned(),
        };
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        let previous = accounts.get(&config.key);
        let replaced = previous.is_some_and(|c| c.config != config);
        // A recheck of the same credentials is no news: the GuiSessions that were told the
        // account can be used are not woken again.
        let announced = previous.is_some_and(|c| {
            c.config == config
                && c.account_id.as_deref() == Some(identity.account_id.as_str())
                && c.announced.load(Ordering::SeqCst)
        });
        accounts.insert(
            config.key.clone(),
            Arc::new(AccountCredentials {
                config: config.clone(),
                provider,
                account_id: Some(identity.account_id.clone()),
                checked_at: Instant::now(),
                announced: AtomicBool::new(announced),
            }),
        );
        drop(accounts);
        if replaced {
            self.drop_clients(&config.key);
        }
        self.set_account_limit(
            &config.key,
            Some(&identity.account_id),
            config.rate.filter(|_| config.cluster_scoped),
        );
        Ok(identity)
    }

    /// Whether the credentials of `config` are loaded and were checked less than `within` ago.
    pub fn account_checked_within(&self, config: &AccountConfig, within: Duration) -> bool {
        self.account_credentials(&config.key).is_some_and(|c| {
            c.config == *config && c.account_id.is_some() && c.checked_at.elapsed() < within
        })
    }

    /// Whether calls in the account `key` can go out (its credentials are loaded and checked).
    pub fn account_loaded(&self, key: &str) -> bool {
        self.account_credentials(key)
            .is_some_and(|c| c.account_id.is_some())
    }

    /// True the first time it is asked for loaded credentials of `key` (after each load): the
    /// moment to wake the GuiSessions that wait for them.
    pub fn account_announce(&self, key: &str) -> bool {
        self.account_credentials(key)
            .is_some_and(|c| !c.announced.swap(true, Ordering::SeqCst))
    }

    /// Forgets an account (deleted, or changed until checked again): its credentials and clients.
    pub fn forget_account(&self, key: &str) {
        self.accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        self.drop_clients(key);
        self.set_account_limit(key, None, None);
    }

    pub(super) fn account_credentials(&self, key: &str) -> Option<Arc<AccountCredentials>> {
        self.accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    fn drop_clients(&self, key: &str) {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(account, _), _| account.as_deref() != Some(key));
    }

    async fn build_provider(
        &self,
        config: &AccountConfig,
        region: &str,
    ) -> Result<SharedCredentialsProvider, AccountCheckError> {
        let source = match &config.static_keys {
            Some(keys) => {
                if keys.access_key_id.is_empty() || keys.secret_access_key.is_empty() {
                    return Err(AccountCheckError::new(
                        "InvalidStaticKeys",
                        "the static keys Secret has an empty access key id or secret access key"
                            .into(),
                    ));
                }
                SharedCredentialsProvider::new(Credentials::new(
                    keys.access_key_id.clone(),
                    keys.secret_access_key.clone(),
                    None,
                    None,
                    "lightsail-account-static-keys",
                ))
            }
            None => match self.base.credentials_provider() {
                Some(p) => p,
                None => {
                    return Err(AccountCheckError::new(
                        "NoCredentials",
                        "the operator has no AWS credentials of its own to assume the role with"
                            .into(),
                    ));
                }
            },
        };
        let Some(role_arn) = &config.role_arn else {
            return Ok(source);
        };
        let sts_config = aws_sdk_sts::config::Builder::from(&self.base)
            .region(Region::new(region.to_owned()))
            .credentials_provider(source)
            .build();
        let assumed = AssumeRole {
            sts: aws_sdk_sts::Client::from_conf(sts_config),
            role_arn: role_arn.clone(),
            session_name: config.session_name.clone(),
            duration: config.session_duration,
            external_id: config.external_id.clone(),
            session_tags: config.session_tags.clone(),
        };
        Ok(SharedCredentialsProvider::new(SharedUntilExpiry {
            inner: SharedCredentialsProvider::new(assumed),
            cached: tokio::sync::Mutex::new(None),
        }))
    }

    /// The credentials of a client for `account`, the limit of its own share (a namespaced
    /// account's `rateLimit`), and the AWS account id its shared limiter is kept under.
    pub(super) fn account_client_parts(
        &self,
        account: &str,
    ) -> Option<(SharedCredentialsProvider, Option<RateLimit>, String)> {
        let creds = self.account_credentials(account)?;
        let account_id = creds.account_id.clone()?;
        let own_share = creds.config.rate.filter(|_| !creds.config.cluster_scoped);
        Some((creds.provider.clone(), own_share, account_id))
    }

    /// Records the limit a cluster-scoped account sets for its AWS account (or that `key` sets
    /// none any more). When the limit of that AWS account changes, its limiters and the clients
    /// holding them are dropped, to be rebuilt with the new limit.
    fn set_account_limit(&self, key: &str, account_id: Option<&str>, rate: Option<RateLimit>) {
        let mut limits = self
            .account_limits
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let before: HashMap<String, Option<RateLimit>> = limits
            .keys()
            .map(|id| (id.clone(), account_limit(&limits, id)))
            .collect();
        for by_key in limits.values_mut() {
            by_key.remove(key);
        }
        if let (Some(id), Some(rate)) = (account_id, rate) {
            limits
                .entry(id.to_owned())
                .or_default()
                .insert(key.to_owned(), rate);
        }
        let changed: Vec<String> = before
            .keys()
            .chain(account_id.map(str::to_owned).iter())
            .filter(|id| before.get(*id).copied().flatten() != account_limit(&limits, id))
            .cloned()
            .collect();
        limits.retain(|_, by_key| !by_key.is_empty());
        drop(limits);
        for id in changed {
            self.drop_account_limiters(&id);
        }
    }

    /// The limit of AWS account `account_id`: the lowest a cluster-scoped account sets, or the
    /// operator's flags.
    pub(super) fn shared_rate(&self, account_id: &str) -> RateLimit {
        let limits = self
            .account_limits
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        account_limit(&limits, account_id).unwrap_or(self.rate)
    }

    fn drop_account_limiters(&self, account_id: &str) {
        self.limiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(id, _), _| id != account_id);
        let keys: Vec<String> = self
            .accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, c)| c.account_id.as_deref() == Some(account_id))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.drop_clients(&key);
        }
    }
}

/// The limits cluster-scoped accounts set, by AWS account id and account key.
pub(super) type AccountLimits = HashMap<String, BTreeMap<String, RateLimit>>;

fn account_limit(limits: &AccountLimits, account_id: &str) -> Option<RateLimit> {
    limits
        .get(account_id)?
        .values()
        .copied()
        .min_by_key(|r| (r.per_second, r.burst))
}

/// Accounts by key, held by [`Lightsail`].
pub(super) type Accounts = HashMap<String, Arc<AccountCredentials>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_refreshed_before_they_expire() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hour = Credentials::new("a", "b", None, Some(t0 + Duration::from_secs(3600)), "t");
        assert!(fresh(&hour, t0, t0 + Duration::from_secs(3200)));
        assert!(
            !fresh(&hour, t0, t0 + Duration::from_secs(3300)),
            "5 min before"
        );
        let short = Credentials::new("a", "b", None, Some(t0 + Duration::from_secs(20)), "t");
        assert!(fresh(&short, t0, t0 + Duration::from_secs(14)));
        assert!(
            !fresh(&short, t0, t0 + Duration::from_secs(15)),
            "a quarter"
        );
        let forever = Credentials::new("a", "b", None, None, "t");
        assert!(fresh(&forever, t0, t0 + Duration::from_secs(10_000_000)));
    }

    #[test]
    fn static_keys_never_show_their_secret() {
        let keys = StaticKeys {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI".into(),
        };
        let text = format!("{keys:?}");
        assert!(text.contains("AKIDEXAMPLE") && !text.contains("wJalrXUtnFEMI"));
    }
}
