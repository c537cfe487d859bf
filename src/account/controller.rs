//! The Kubernetes edge of the account kinds: checks each LightsailAccount and
//! ClusterLightsailAccount through the [`Lightsail`] edge (which keeps their credentials), writes
//! their status, and wakes the GuiSessions that name an account whenever it changes. Which
//! conditions to write is decided in [`crate::account::types`]; nothing here knows the AWS SDK.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::account::index::AccountIndex;
use crate::account::policy::{
    AccountError, Identity, account_status, assume_role_identity, role_allowed,
};
use crate::account::types::edge_key;
use crate::account::types::{
    AccountKey, AccountStatus, ClusterLightsailAccount, DEFAULT_SESSION_NAME, LightsailAccount,
    LightsailAccountSpec,
};
use crate::aws::lightsail::{AccountConfig, Lightsail, StaticKeys};
use crate::aws::model::RateLimit;
use crate::guisession::types::GuiSession;
use crate::kubernetes::FIELD_MANAGER;

/// What the account reconcilers share.
pub struct AccountContext {
    pub client: kube::Client,
    pub lightsail: Arc<Lightsail>,
    pub index: Arc<AccountIndex>,
    /// Wakes GuiSessions (the GuiSession controller's `reconcile_on`).
    pub wake: mpsc::UnboundedSender<ObjectRef<GuiSession>>,
    /// Whether the operator may read static-keys Secrets.
    pub static_keys: bool,
    /// Whether this instance writes account statuses (shard instances only load credentials:
    /// each counts only its own GuiSessions).
    pub write_status: bool,
    /// After a terminal error, when to check again without a change.
    pub stalled_retry: Duration,
    /// How often a working account is checked again (and its GuiSession count refreshed).
    pub recheck: Duration,
    /// This cluster's id, part of the external id of every namespaced account.
    pub cluster_id: String,
    /// Role ARN patterns namespaced accounts may assume (empty: any).
    pub namespaced_roles: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountReconcileError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("encoding status: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("{reason}: {message}")]
    Retryable { reason: String, message: String },
}

/// What the reconciler needs of either account kind.
pub trait AccountObject:
    Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug
{
    fn key(&self) -> AccountKey;
    fn account_spec(&self) -> &LightsailAccountSpec;
    fn account_status(&self) -> Option<&AccountStatus>;
    /// Where its static-keys Secret is: its own namespace, or the one the reference names.
    fn secret_namespace(&self) -> Option<String>;
    fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self>;
}

impl AccountObject for LightsailAccount {
    fn key(&self) -> AccountKey {
        AccountKey {
            namespace: self.namespace(),
            name: self.name_any(),
        }
    }
    fn account_spec(&self) -> &LightsailAccountSpec {
        &self.spec
    }
    fn account_status(&self) -> Option<&AccountStatus> {
        self.status.as_ref()
    }
    fn secret_namespace(&self) -> Option<String> {
        self.namespace()
    }
    fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self> {
        Api::namespaced(client, namespace.unwrap_or_default())
    }
}

impl AccountObject for ClusterLightsailAccount {
    fn key(&self) -> AccountKey {
        AccountKey {
            namespace: None,
            name: self.name_any(),
        }
    }
    fn account_spec(&self) -> &LightsailAccountSpec {
        &self.spec.account
    }
    fn account_status(&self) -> Option<&AccountStatus> {
        self.status.as_ref()
    }
    fn secret_namespace(&self) -> Option<String> {
        self.spec
            .account
            .credentials_secret_ref
            .as_ref()
            .and_then(|r| r.namespace.clone())
    }
    fn api(client: kube::Client, _namespace: Option<&str>) -> Api<Self> {
        Api::all(client)
    }
}

/// Checks one account (of either kind) and writes its status.
pub async fn reconcile<K: AccountObject>(
    obj: Arc<K>,
    ctx: Arc<AccountContext>,
) -> Result<Requeue, AccountReconcileError> {
    let key = obj.key();
    let previous = obj.account_status().cloned();
    let generation = obj.meta().generation;
    let spec = obj.account_spec();
    let (external_id, session_tags) = assume_role_identity(&key, spec, &ctx.cluster_id);
    let outcome = check(
        &ctx,
        &key,
        spec,
        Assume {
            external_id: external_id.clone(),
            session_tags,
        },
        obj.secret_namespace().as_deref(),
        current(previous.as_ref(), generation),
    )
    .await;
    let outcome = outcome.map_err(|mut e| {
        if let Some(ignored) = spec.external_id.as_deref().filter(|_| key.namespace.is_some())
            && Some(ignored) != external_id.as_deref()
        {
            e.message = format!(
                "{} (a LightsailAccount does not choose its external id: the operator sends {}, see status.externalId; spec.externalId {ignored:?} is not used)",
                e.message,
                external_id.as_deref().unwrap_or_default()
            );
        }
        e
    });
    let external_id = spec.role_arn.is_some().then_some(external_id).flatten();
    finish(&ctx, obj.as_ref(), outcome, external_id).await
}

/// What the operator sends with AssumeRole for an account (see [`assume_role_identity`]).
struct Assume {
    external_id: Option<String>,
    session_tags: Vec<(String, String)>,
}

/// The identity of a status that is Ready for `generation`.
fn current(status: Option<&AccountStatus>, generation: Option<i64>) -> Option<Identity> {
    let status = status?;
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    (ready && status.observed_generation == generation).then(|| Identity {
        account_id: status.account_id.clone().unwrap_or_default(),
        arn: status.arn.clone().unwrap_or_default(),
    })
}

pub fn error_policy<K>(
    obj: Arc<K>,
    error: &AccountReconcileError,
    _ctx: Arc<AccountContext>,
) -> Requeue
where
    K: Resource,
{
    warn!(name = obj.meta().name.as_deref().unwrap_or_default(), error = %error, "account check failed");
    Requeue::requeue(Duration::from_secs(5))
}

/// Builds the account's configuration (reading static keys when it names them) and has the
/// Lightsail edge check it.
async fn check(
    ctx: &AccountContext,
    key: &AccountKey,
    spec: &LightsailAccountSpec,
    assume: Assume,
    secret_namespace: Option<&str>,
    verified: Option<Identity>,
) -> Result<Identity, AccountError> {
    if key.namespace.is_some()
        && let Some(role_arn) = &spec.role_arn
        && !role_allowed(&ctx.namespaced_roles, role_arn)
    {
        return Err(AccountError {
            reason: "RoleNotAllowed".into(),
            message: format!(
                "this operator lets LightsailAccounts assume only roles matching {} (its --namespaced-account-roles); {role_arn} is not one: ask a cluster admin for a ClusterLightsailAccount or for the role to be allowed",
                ctx.namespaced_roles.join(", ")
            ),
            terminal: true,
        });
    }
    let static_keys = static_keys(ctx, spec, secret_namespace).await?;
    let config = account_config(key, spec, assume, static_keys);
    // Checked already for this spec, with these keys, and not long ago: nothing to ask STS.
    if let Some(identity) = verified
        && ctx.lightsail.account_checked_within(&config, ctx.recheck)
    {
        return Ok(identity);
    }
    match ctx.lightsail.check_account(config).await {
        Ok(identity) => Ok(Identity {
            account_id: identity.account_id,
            arn: identity.arn,
        }),
        Err(e) => {
            // Only a definite refusal drops the credentials; after a transient failure (STS
            // throttled or unreachable) the last good ones serve until they expire.
            if e.terminal {
                ctx.lightsail.forget_account(&edge_key(key));
            }
            Err(AccountError {
                reason: e.code,
                message: e.message,
                terminal: e.terminal,
            })
        }
    }
}

/// The static keys an account names in `credentialsSecretRef`, read from their Secret, when it
/// names any and this operator may read them.
async fn static_keys(
    ctx: &AccountContext,
    spec: &LightsailAccountSpec,
    secret_namespace: Option<&str>,
) -> Result<Option<StaticKeys>, AccountError> {
    Ok(match &spec.credentials_secret_ref {
        None => None,
        Some(_) if !ctx.static_keys => {
            return Err(AccountError {
                reason: "StaticKeysDisabled".into(),
                message: "credentialsSecretRef names a Secret, but this operator may not read Secrets of static keys (install it with the chart value accounts.staticKeys=true)".into(),
                terminal: true,
            });
        }
        Some(r) => {
            let Some(namespace) = secret_namespace else {
                return Err(AccountError {
                    reason: "InvalidSecretRef".into(),
                    message: "a ClusterLightsailAccount's credentialsSecretRef must name the Secret's namespace".into(),
                    terminal: true,
                });
            };
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
            let secret = match secrets.get_opt(&r.name).await {
                Ok(Some(s)) => s,
                Ok(None) => {
                    return Err(AccountError {
                        reason: "SecretNotFound".into(),
                        message: format!("the Secret {namespace}/{} does not exist", r.name),
                        terminal: true,
                    });
                }
                Err(e) => {
                    return Err(AccountError {
                        reason: "SecretUnreadable".into(),
                        message: format!("reading the Secret {namespace}/{}: {e}", r.name),
                        terminal: false,
                    });
                }
            };
            let value = |wanted: Option<&String>, default: &str| -> Option<String> {
                let key = wanted.map_or(default, String::as_str);
                let bytes = secret.data.as_ref()?.get(key)?;
                String::from_utf8(bytes.0.clone())
                    .ok()
                    .map(|s| s.trim().to_owned())
            };
            match (
                value(r.access_key_id_key.as_ref(), "AWS_ACCESS_KEY_ID"),
                value(r.secret_access_key_key.as_ref(), "AWS_SECRET_ACCESS_KEY"),
            ) {
                (Some(access_key_id), Some(secret_access_key)) => Some(StaticKeys {
                    access_key_id,
                    secret_access_key,
                }),
                _ => {
                    return Err(AccountError {
                        reason: "InvalidStaticKeys".into(),
                        message: format!(
                            "the Secret {namespace}/{} lacks the access key id or the secret access key (keys {} and {})",
                            r.name,
                            r.access_key_id_key
                                .as_deref()
                                .unwrap_or("AWS_ACCESS_KEY_ID"),
                            r.secret_access_key_key
                                .as_deref()
                                .unwrap_or("AWS_SECRET_ACCESS_KEY")
                        ),
                        terminal: true,
                    });
                }
            }
        }
    })
}

/// What the Lightsail edge needs to check the account and call Lightsail through it.
fn account_config(
    key: &AccountKey,
    spec: &LightsailAccountSpec,
    assume: Assume,
    static_keys: Option<StaticKeys>,
) -> AccountConfig {
    AccountConfig {
        key: edge_key(key),
        role_arn: spec.role_arn.clone(),
        external_id: assume.external_id,
        session_tags: assume.session_tags,
        session_name: spec
            .session_name
            .clone()
            .unwrap_or_else(|| DEFAULT_SESSION_NAME.to_owned()),
        session_duration: spec.session_duration(),
        static_keys,
        region: spec.region.clone(),
        cluster_scoped: key.namespace.is_none(),
        rate: spec.rate_limit.and_then(|r| {
            Some(RateLimit {
                per_second: std::num::NonZeroU32::new(r.requests_per_second)?,
                burst: std::num::NonZeroU32::new(r.burst)?,
            })
        }),
    }
}

/// Writes the status when it changed, wakes the account's GuiSessions, and says when to check
/// again.
async fn finish<K: AccountObject>(
    ctx: &AccountContext,
    obj: &K,
    outcome: Result<Identity, AccountError>,
    external_id: Option<String>,
) -> Result<Requeue, AccountReconcileError> {
    let key = &obj.key();
    if obj.meta().deletion_timestamp.is_some() {
        ctx.lightsail.forget_account(&edge_key(key));
        wake(ctx, key);
        return Ok(Requeue::await_change());
    }
    let api = K::api(ctx.client.clone(), key.namespace.as_deref());
    let previous = obj.account_status().cloned();
    let generation = obj.meta().generation;
    let status = account_status(
        generation,
        previous.as_ref(),
        &outcome,
        external_id.as_deref(),
        ctx.index.count(key),
        Timestamp::now(),
    );
    let changed = previous.as_ref().map(|p| AccountStatus {
        gui_sessions: status.gui_sessions,
        ..p.clone()
    }) != Some(status.clone());
    if ctx.write_status && previous.as_ref() != Some(&status) {
        let patch = json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "metadata": {"name": key.name},
            "status": status,
        });
        api.patch_status(
            &key.name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        info!(account = %key, ready = outcome.is_ok(), "account checked");
    }
    // Every GuiSession naming the account decides again: it may use it now, or no longer. (A
    // restarted operator's GuiSessions wait for their account's first check in the same way.)
    if ctx.lightsail.account_announce(&edge_key(key)) || changed {
        wake(ctx, key);
    }
    match outcome {
        Ok(_) => Ok(Requeue::requeue(ctx.recheck)),
        Err(e) if e.terminal => Ok(Requeue::requeue(ctx.stalled_retry)),
        Err(e) => Err(AccountReconcileError::Retryable {
            reason: e.reason,
            message: e.message,
        }),
    }
}

fn wake(ctx: &AccountContext, key: &AccountKey) {
    for session in ctx.index.sessions(key) {
        // The receiver only goes away when the operator stops.
        let _ = ctx.wake.send(session);
    }
}
