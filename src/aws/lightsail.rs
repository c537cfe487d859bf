//! The Lightsail clients: one per account and Region, the client-side rate limits, and the calls
//! the controller makes. Errors are classified in [`super::errors`], SDK types converted in
//! [`super::sdk`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_lightsail::Client;
use aws_sdk_lightsail::config::Region;
use aws_sdk_lightsail::config::retry::RetryConfig;
use aws_sdk_lightsail::config::timeout::TimeoutConfig;
use aws_sdk_lightsail::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::errors::{ErrorClass, LightsailError, error_chain, one_line, sources};
use super::model::Operation;
use super::model::{AccessDetails, Action, ComputerSeen, RateLimit};
use super::sdk::{ModelledCode, operation_from_sdk};
use crate::metrics::Metrics;

mod accounts;
pub use accounts::{AccountCheckError, AccountConfig, CallerIdentity, StaticKeys};

fn quota(rate: RateLimit) -> Quota {
    Quota::per_second(rate.per_second).allow_burst(rate.burst)
}

/// One rate-limit token for one call in one Region (see [`Lightsail::permit`]).
pub struct Permit {
    client: Client,
    action: Action,
}

impl Permit {
    /// The call this permit was taken for.
    pub fn action(&self) -> Action {
        self.action
    }
}

struct RegionClient {
    client: Client,
    /// The limit of the AWS account in this Region, shared by every account object naming it.
    limiter: Arc<DefaultDirectRateLimiter>,
    /// A namespaced account's own share (its `rateLimit`), taken before the shared one.
    own_share: Option<DefaultDirectRateLimiter>,
}

/// Most clients (account object × Region) and limiters (AWS account × Region) kept; past it,
/// those not in use are dropped, so that made-up Regions cannot grow memory without bound.
const MAX_CLIENTS: usize = 512;

/// The shape of an AWS Region name (`eu-central-1`, `us-gov-west-1`): what admission allows
/// for `spec.region`, checked again at the edge.
pub fn is_region_name(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let lower = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
    match parts.as_slice() {
        [first, middle @ .., last] if !middle.is_empty() => {
            region.len() <= 32
                && first.len() == 2
                && lower(first)
                && middle.iter().all(lower)
                && !last.is_empty()
                && last.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

/// A client's account key (`None`: the operator's own identity) and Region.
type ClientKey = (Option<String>, String);

/// Where a call goes: which account (`None`: the operator's own identity; otherwise the key an
/// account was checked under, see [`Lightsail::check_account`]) and which Region (`None`: the
/// default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope<'a> {
    pub account: Option<&'a str>,
    pub region: Option<&'a str>,
}

impl<'a> Scope<'a> {
    /// The operator's own identity, in `region`.
    pub fn own(region: Option<&'a str>) -> Self {
        Scope {
            account: None,
            region,
        }
    }
}

/// Lightsail clients for every Region in use, built from one AWS configuration load.
pub struct Lightsail {
    base: SdkConfig,
    default_region: Option<String>,
    rate: RateLimit,
    /// By account key (`None`: the operator's own identity) and Region.
    clients: Mutex<HashMap<ClientKey, Arc<RegionClient>>>,
    /// Rate limiters by AWS account id (empty: the operator's own) and Region: Lightsail's
    /// limits are per account, whatever object names it.
    limiters: Mutex<HashMap<(String, String), Arc<DefaultDirectRateLimiter>>>,
    accounts: Mutex<accounts::Accounts>,
    /// The limits cluster-scoped accounts set for their AWS accounts.
    account_limits: Mutex<accounts::AccountLimits>,
    metrics: Arc<Metrics>,
    call_timeout: Duration,
}

/// Default for the longest a Lightsail call may take, connection included.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Most pages of `GetOperationsForResource` read in one lookup.
pub const MAX_OPERATION_PAGES: usize = 50;

impl Lightsail {
    /// Loads the AWS configuration once (default credential chain: environment, profile, web
    /// identity / IRSA, EKS Pod Identity, IMDS; `AWS_ENDPOINT_URL_LIGHTSAIL` is honoured by the
    /// SDK when each Region's client is built from it).
    pub async fn load(
        default_region: Option<String>,
        rate: RateLimit,
        metrics: Arc<Metrics>,
    ) -> Self {
        let base = aws_config::defaults(BehaviorVersion::latest()).load().await;
        let default_region = default_region.or_else(|| base.region().map(|r| r.to_string()));
        Lightsail::from_sdk_config(base, default_region, rate, metrics)
    }

    pub fn from_sdk_config(
        base: SdkConfig,
        default_region: Option<String>,
        rate: RateLimit,
        metrics: Arc<Metrics>,
    ) -> Self {
        Lightsail {
            base,
            default_region,
            rate,
            clients: Mutex::new(HashMap::new()),
            limiters: Mutex::new(HashMap::new()),
            accounts: Mutex::new(HashMap::new()),
            account_limits: Mutex::new(HashMap::new()),
            metrics,
            call_timeout: DEFAULT_CALL_TIMEOUT,
        }
    }

    /// Sets the longest a call may take, connection included (default
    /// [`DEFAULT_CALL_TIMEOUT`]). Applies to clients built afterwards.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// The longest a call may take.
    pub fn call_timeout(&self) -> Duration {
        self.call_timeout
    }

    pub fn default_region(&self) -> Option<&str> {
        self.default_region.as_deref()
    }

    fn region_client(
        &self,
        scope: Scope<'_>,
        action: Action,
    ) -> Result<Arc<RegionClient>, LightsailError> {
        let region = self.checked_region(scope, action)?;
        let key = (scope.account.map(str::to_owned), region.to_owned());
        if let Some(c) = self
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(c.clone());
        }
        let (credentials, own_share, account_id) = match scope.account {
            None => (None, None, String::new()),
            Some(account) => match self.account_client_parts(account) {
                Some((provider, own_share, id)) => (Some(provider), own_share, id),
                None => {
                    return Err(LightsailError {
                        action,
                        code: "AccountNotReady".into(),
                        message: format!("the credentials of {account} are not loaded"),
                        class: ErrorClass::Retryable,
                        answered: true,
                    });
                }
            },
        };
        if credentials.is_none() && self.base.credentials_provider().is_none() {
            // The SDK would fail every call with "no identity resolver for sigv4".
            return Err(LightsailError::no_credentials(
                action,
                "no credentials provider is configured",
            ));
        }
        let config = self.client_config(credentials, region);
        let rate = if account_id.is_empty() {
            self.rate
        } else {
            self.shared_rate(&account_id)
        };
        let c = Arc::new(RegionClient {
            client: Client::from_conf(config),
            limiter: self.shared_limiter(account_id, region, rate),
            own_share: own_share.map(|r| RateLimiter::direct(quota(r))),
        });
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.len() >= MAX_CLIENTS {
            clients.retain(|_, c| Arc::strong_count(c) > 1);
        }
        clients.insert(key, c.clone());
        Ok(c)
    }

    /// The Region a call in `scope` goes to: the scope's or the default, and a Region name.
    fn checked_region<'s>(
        &'s self,
        scope: Scope<'s>,
        action: Action,
    ) -> Result<&'s str, LightsailError> {
        let Some(region) = scope.region.or(self.default_region.as_deref()) else {
            return Err(LightsailError {
                action,
                code: "NoRegion".into(),
                message: "no AWS Region: set spec.region, or give the operator a default Region (--region, AWS_REGION)".into(),
                class: ErrorClass::Terminal,
                answered: true,
            });
        };
        if !is_region_name(region) {
            return Err(LightsailError {
                action,
                code: "InvalidRegion".into(),
                message: format!(
                    "{region:?} is not an AWS Region name (like eu-central-1): check spec.region or the account's region"
                ),
                class: ErrorClass::Terminal,
                answered: true,
            });
        }
        Ok(region)
    }

    /// The SDK configuration of a client in `region`, signing with `credentials` (the
    /// operator's own when `None`).
    fn client_config(
        &self,
        credentials: Option<SharedCredentialsProvider>,
        region: &str,
    ) -> aws_sdk_lightsail::Config {
        let mut builder = aws_sdk_lightsail::config::Builder::from(&self.base);
        if let Some(provider) = credentials {
            builder = builder.credentials_provider(provider);
        }
        builder
            .region(Region::new(region.to_owned()))
            // Retries are the controller's job (per-object backoff with jitter, visible in
            // status and metrics); SDK retries underneath would multiply them.
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5).min(self.call_timeout))
                    .operation_timeout(self.call_timeout)
                    .build(),
            )
            .build()
    }

    /// The limiter of an AWS account (`""`: the operator's own) in a Region, shared by every
    /// client that calls there.
    fn shared_limiter(
        &self,
        account_id: String,
        region: &str,
        rate: RateLimit,
    ) -> Arc<DefaultDirectRateLimiter> {
        let mut limiters = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        if limiters.len() >= MAX_CLIENTS {
            limiters.retain(|_, l| Arc::strong_count(l) > 1);
        }
        limiters
            .entry((account_id, region.to_owned()))
            .or_insert_with(|| Arc::new(RateLimiter::direct(quota(rate))))
            .clone()
    }

    /// Waits for the Region's rate limit. Taken apart from the call so that a caller can do its
    /// last steps (the fenced status write before a start) after the wait, right before the call.
    pub async fn permit(&self, scope: Scope<'_>, action: Action) -> Result<Permit, LightsailError> {
        let rc = self.region_client(scope, action)?;
        if let Some(own) = &rc.own_share {
            own.until_ready().await;
        }
        rc.limiter.until_ready().await;
        Ok(Permit {
            client: rc.client.clone(),
            action,
        })
    }

    /// Waits for the Region's rate limit, runs the call and records its metrics.
    async fn call<T, F, Fut, E>(
        &self,
        scope: Scope<'_>,
        action: Action,
        f: F,
    ) -> Result<T, LightsailError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + ModelledCode + std::error::Error + Send + Sync + 'static,
    {
        let permit = self.permit(scope, action).await?;
        self.call_with(permit, f).await
    }

    /// Runs a call under a permit already taken and records its metrics.
    async fn call_with<T, F, Fut, E>(&self, permit: Permit, f: F) -> Result<T, LightsailError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + ModelledCode + std::error::Error + Send + Sync + 'static,
    {
        let action = permit.action;
        let started = Instant::now();
        let result = f(permit.client)
            .await
            .map_err(|e| LightsailError::from_sdk(action, e));
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => {
                let class = match e.class {
                    ErrorClass::Retryable => "retryable",
                    ErrorClass::Terminal => "terminal",
                };
                self.metrics.count_lightsail_error(action.as_str(), class);
                e.code.as_str()
            }
        };
        self.metrics
            .observe_lightsail_call(action.as_str(), outcome, started.elapsed());
        result
    }

    /// `StartGUISession` under a permit from [`Lightsail::permit`]: the operations it started
    /// (normally one). The call goes out at once: no rate-limit wait between the caller's last
    /// check and the request.
    pub async fn start_gui_session(
        &self,
        permit: Permit,
        resource_name: &str,
    ) -> Result<Vec<Operation>, LightsailError> {
        debug_assert_eq!(permit.action, Action::StartGuiSession);
        let out = self
            .call_with(permit, |c| {
                c.start_gui_session().resource_name(resource_name).send()
            })
            .await?;
        Ok(out.operations().iter().map(operation_from_sdk).collect())
    }

    /// `StopGUISession`.
    pub async fn stop_gui_session(
        &self,
        scope: Scope<'_>,
        resource_name: &str,
    ) -> Result<Vec<Operation>, LightsailError> {
        let out = self
            .call(scope, Action::StopGuiSession, |c| {
                c.stop_gui_session().resource_name(resource_name).send()
            })
            .await?;
        Ok(out.operations().iter().map(operation_from_sdk).collect())
    }

    /// `CreateGUISessionAccessDetails`: the session's status and, once it has started, its
    /// access URLs.
    pub async fn create_gui_session_access_details(
        &self,
        scope: Scope<'_>,
        resource_name: &str,
    ) -> Result<AccessDetails, LightsailError> {
        let out = self
            .call(scope, Action::CreateGuiSessionAccessDetails, |c| {
                c.create_gui_session_access_details()
                    .resource_name(resource_name)
                    .send()
            })
            .await?;
        Ok(AccessDetails::from_sdk(&out))
    }

    /// `GetInstanceState`: the computer's state.
    pub async fn get_instance_state(
        &self,
        scope: Scope<'_>,
        instance_name: &str,
    ) -> Result<ComputerSeen, LightsailError> {
        let out = self
            .call(scope, Action::GetInstanceState, |c| {
                c.get_instance_state().instance_name(instance_name).send()
            })
            .await?;
        Ok(ComputerSeen::from_state(out.state()))
    }

    /// `GetInstance`: the computer's state and its `StopInstanceOnIdle` add-on.
    pub async fn get_instance(
        &self,
        scope: Scope<'_>,
        instance_name: &str,
    ) -> Result<ComputerSeen, LightsailError> {
        let out = self
            .call(scope, Action::GetInstance, |c| {
                c.get_instance().instance_name(instance_name).send()
            })
            .await?;
        Ok(ComputerSeen::from_instance(out.instance()))
    }

    /// `StartInstance` under a permit from [`Lightsail::permit`] (like StartGUISession: the
    /// call goes out right after the fence is written).
    pub async fn start_instance(
        &self,
        permit: Permit,
        instance_name: &str,
    ) -> Result<Vec<Operation>, LightsailError> {
        debug_assert_eq!(permit.action, Action::StartInstance);
        let out = self
            .call_with(permit, |c| {
                c.start_instance().instance_name(instance_name).send()
            })
            .await?;
        Ok(out.operations().iter().map(operation_from_sdk).collect())
    }

    /// `StopInstance`, never forced: AWS warns that forcing can lose data.
    pub async fn stop_instance(
        &self,
        scope: Scope<'_>,
        instance_name: &str,
    ) -> Result<Vec<Operation>, LightsailError> {
        let out = self
            .call(scope, Action::StopInstance, |c| {
                c.stop_instance().instance_name(instance_name).send()
            })
            .await?;
        Ok(out.operations().iter().map(operation_from_sdk).collect())
    }

    /// `EnableAddOn` for `StopInstanceOnIdle`: enables the idle-stop rule, or changes it.
    /// `threshold` (CPU percent) and `duration` (idle minutes) go as strings, as Lightsail
    /// takes them.
    pub async fn enable_idle_stop(
        &self,
        scope: Scope<'_>,
        resource_name: &str,
        threshold: &str,
        duration: &str,
    ) -> Result<Vec<Operation>, LightsailError> {
        use aws_sdk_lightsail::types::{AddOnRequest, AddOnType, StopInstanceOnIdleRequest};
        let request = AddOnRequest::builder()
            .add_on_type(AddOnType::StopInstanceOnIdle)
            .stop_instance_on_idle_request(
                StopInstanceOnIdleRequest::builder()
                    .threshold(threshold)
                    .duration(duration)
                    .build(),
            )
            .build()
            .map_err(|e| LightsailError::invalid_request(Action::EnableAddOn, &e.to_string()))?;
        let out = self
            .call(scope, Action::EnableAddOn, |c| {
                c.enable_add_on()
                    .resource_name(resource_name)
                    .add_on_request(request)
                    .send()
            })
            .await?;
        Ok(out.operations().iter().map(operation_from_sdk).collect())
    }

    /// `GetOperation`.
    pub async fn get_operation(
        &self,
        scope: Scope<'_>,
        operation_id: &str,
    ) -> Result<Option<Operation>, LightsailError> {
        let out = self
            .call(scope, Action::GetOperation, |c| {
                c.get_operation().operation_id(operation_id).send()
            })
            .await?;
        Ok(out.operation().map(operation_from_sdk))
    }

    /// `GetOperationsForResource`: every page, in no particular order (AWS documents none;
    /// callers sort by `createdAt`). At most [`MAX_OPERATION_PAGES`] pages are read; past that
    /// the operations read so far are returned and a warning is logged, because failing would
    /// block the object for good over a history far longer than adoption looks at.
    pub async fn operations_for_resource(
        &self,
        scope: Scope<'_>,
        resource_name: &str,
    ) -> Result<Vec<Operation>, LightsailError> {
        let mut operations = Vec::new();
        let mut page_token: Option<String> = None;
        for _ in 0..MAX_OPERATION_PAGES {
            let token = page_token.take();
            let out = self
                .call(scope, Action::GetOperationsForResource, |c| {
                    c.get_operations_for_resource()
                        .resource_name(resource_name)
                        .set_page_token(token)
                        .send()
                })
                .await?;
            operations.extend(out.operations().iter().map(operation_from_sdk));
            match out.next_page_token() {
                Some(t) if !t.is_empty() => page_token = Some(t.to_owned()),
                _ => return Ok(operations),
            }
        }
        tracing::warn!(
            resource = resource_name,
            pages = MAX_OPERATION_PAGES,
            operations = operations.len(),
            "GetOperationsForResource has more pages than the operator reads; using the ones read"
        );
        Ok(operations)
    }
}

#[cfg(test)]
mod tests;
