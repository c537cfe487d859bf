//! The Kubernetes edge: runs the state machine of [`crate::guisession::policy`] for one GuiSession and
//! performs the I/O it asks for (status writes with an optimistic-concurrency precondition, the
//! finalizer, Events), calling Lightsail through the [`Lightsail`] edge. Nothing here decides
//! policy, and nothing here knows the AWS SDK.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, GetParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use tracing::warn;

use crate::account::policy::NamespaceSelector;
use crate::account::policy::{AccountRefusal, selector_matches};
use crate::account::types::{ClusterLightsailAccount, LightsailAccount};
use crate::aws::errors::LightsailError;
use crate::aws::lightsail::Lightsail;
use crate::guisession::policy::{SecretSeen, Settings, UnconfirmedStart};
use crate::guisession::types::GuiSession;
use crate::leadership::LeaderGate;
use crate::metrics::Metrics;

mod context;
mod effects;
mod reconcile;
mod secrets;

/// Annotation on an access Secret: the `sessionStartedAt` of the session its URLs open.
pub const SESSION_ANNOTATION: &str = "lightsail.operators.dev/session-started-at";
/// Annotation on an access Secret: SHA-256 of its data as written, to tell an edited Secret.
pub const DATA_DIGEST_ANNOTATION: &str = "lightsail.operators.dev/data-sha256";
/// Finalizer carried only by GuiSessions with `stopOnDelete`.
pub const FINALIZER: &str = "lightsail.operators.dev/stop-session";

/// Most state-machine steps in one reconcile. A first start takes five (a lookup, a read of the
/// computer, the permit, the fence and the call); a write conflict that moves the object to
/// another computer starts that chain again, and a stopped computer's start adds its own.
const MAX_STEPS: usize = 16;
/// Most write conflicts in one reconcile before it backs off.
const MAX_CONFLICTS: u32 = 5;

/// Per-object exponential backoff after retryable errors.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    /// Delay after the `failures`-th consecutive failure: doubling from `initial`, capped at
    /// `max`, then "equal jitter" (between half and all of it) so that objects failing together
    /// do not retry together.
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        let base = self.initial.saturating_mul(1u32 << exp).min(self.max);
        base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Lightsail(#[from] LightsailError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("GuiSession has no namespace")]
    MissingNamespace,
    #[error("encoding status: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the GuiSession kept changing under {0} consecutive writes")]
    Conflicts(u32),
}

impl Error {
    /// Label of the `reconciles` metric.
    pub fn metric_label(&self) -> String {
        match self {
            Error::Lightsail(e) => format!("lightsail_{}", e.code),
            Error::Kube(kube::Error::Api(s)) => format!("kube_{}", s.code),
            Error::Kube(_) => "kube".into(),
            Error::MissingNamespace => "missing_namespace".into(),
            Error::Encode(_) => "encode".into(),
            Error::Conflicts(_) => "conflicts".into(),
        }
    }
}

fn is_status(e: &Error, code: u16) -> bool {
    matches!(e, Error::Kube(kube::Error::Api(s)) if s.code == code)
}

/// The caches of the account kinds and of namespaces (for cluster accounts' selectors).
#[derive(Clone)]
pub struct AccountStores {
    pub namespaced: kube::runtime::reflector::Store<LightsailAccount>,
    pub cluster: kube::runtime::reflector::Store<ClusterLightsailAccount>,
    pub namespaces: kube::runtime::reflector::Store<k8s_openapi::api::core::v1::Namespace>,
}

impl AccountStores {
    /// Whether every account cache has had its first list.
    pub fn filled(&self) -> bool {
        use futures::FutureExt;
        let ready = |f: futures::future::BoxFuture<'_, _>| matches!(f.now_or_never(), Some(Ok(())));
        ready(self.namespaced.wait_until_ready().boxed())
            && ready(self.cluster.wait_until_ready().boxed())
            && ready(self.namespaces.wait_until_ready().boxed())
    }
}

/// Which account a reconcile acts in.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AccountUse {
    Own,
    /// Ready, with its edge key and default Region.
    Usable {
        edge: String,
        region: Option<String>,
    },
    Refused(AccountRefusal),
    /// Ready, but this process has not loaded its credentials yet, or its account caches have
    /// not had their first list: the account check, or the list, wakes the object.
    Loading,
}

/// Everything a reconcile needs, shared by all of them.
pub struct Context {
    pub client: kube::Client,
    pub lightsail: Arc<Lightsail>,
    /// Who reports Events. A `Recorder` is made per Event: kube's Recorder keeps every Event
    /// it published in a cache for series aggregation (about 2.5 KB per GuiSession, kept
    /// indefinitely in steady state, and scanned on every publish), which buys nothing here
    /// because an Event is only published when something changed.
    pub reporter: Reporter,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    pub retry: RetryPolicy,
    /// Checked right before every Lightsail mutation.
    pub leader: LeaderGate,
    /// Longest time from deciding to start (the fence's `requestedAt`) to sending
    /// StartGUISession: the settle window less the longest a call can take, a second for the
    /// whole-second `requestedAt`, and the largest clock difference between replicas (the
    /// others judge the settle window on their own clocks). A start that could not go out
    /// within it is not sent.
    pub start_budget: Duration,
    /// The account caches of the current leadership term; `None` when accounts are not watched.
    accounts: std::sync::RwLock<Option<AccountStores>>,
    failures: Mutex<HashMap<ObjectRef<GuiSession>, u32>>,
    /// Starts answered but not yet recorded, by object (see [`UnconfirmedStart`]): only between
    /// a StartGUISession's answer and its operation's first poll, a second or more (in a burst,
    /// thousands at once, hence boxed and without the object itself).
    unconfirmed: Mutex<HashMap<ObjectRef<GuiSession>, Box<Held>>>,
    /// Shutdown was requested: no reconcile comes after the running ones.
    draining: std::sync::atomic::AtomicBool,
    /// Which namespaces' GuiSessions may use the operator's own AWS identity.
    pub own_identity: NamespaceSelector,
    /// The GuiSession cache of the current term: what the watch says exists. Nothing is kept
    /// for an object it no longer holds.
    live: std::sync::RwLock<Option<Store<CachedGuiSession>>>,
}

/// What the operator caches of each GuiSession: its metadata only. Spec and status are read at
/// the start of every reconcile, at least as new as the cached metadata; see [`reconcile`].
pub type CachedGuiSession = PartialObjectMeta<GuiSession>;

/// An unconfirmed start and the status write that fenced it: the object as the apiserver
/// answered it, as JSON without managedFields (about a kilobyte, against two for the typed
/// object), and its resourceVersion.
struct Held {
    start: UnconfirmedStart,
    written: Box<[u8]>,
    version: Option<u64>,
}

/// The key of a GuiSession, cached or read, in this process's maps: without the `extra` (uid,
/// resourceVersion) that `ObjectRef::from_obj` copies and that equality ignores, since
/// thousands of keys may be held at once.
pub fn key_of(obj: &impl Resource) -> ObjectRef<GuiSession> {
    let meta = obj.meta();
    let key = ObjectRef::new(meta.name.as_deref().unwrap_or_default());
    match &meta.namespace {
        Some(ns) => key.within(ns),
        None => key,
    }
}

/// The reconcile entry point for kube's Controller: reads the object, then runs the state
/// machine on it.
pub async fn reconcile(meta: Arc<CachedGuiSession>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let started = Instant::now();
    let key = key_of(meta.as_ref());
    let result = match meta.namespace() {
        Some(namespace) => {
            let api: Api<GuiSession> = Api::namespaced(ctx.client.clone(), &namespace);
            let read = match ctx.written_object(&key, meta.resource_version().as_deref()) {
                Some(written) => Ok(written),
                None => {
                    // At least as new as the cache (or this process's last fence), served from
                    // the apiserver's watch cache rather than by a quorum read from etcd: a
                    // stale answer ends in a write conflict and a fresh read, never in a
                    // second start.
                    let params = match ctx.read_version(&key, meta.resource_version()) {
                        Some(rv) => GetParams::at(&rv),
                        None => GetParams::default(),
                    };
                    api.get_with(&meta.name_any(), &params).await
                }
            };
            match read {
                // Deleted since the watch saw it: its Delete event is on the way.
                Err(e) if matches!(&e, kube::Error::Api(s) if s.code == 404) => {
                    Ok(Requeue::await_change())
                }
                Ok(obj) => {
                    let secrets = Api::namespaced(ctx.client.clone(), &namespace);
                    Reconcile {
                        obj,
                        ctx: &ctx,
                        api,
                        secrets,
                        secret: SecretSeen::NotRead,
                        secret_version: None,
                        account: AccountUse::Own,
                    }
                    .run()
                    .await
                }
                Err(e) => Err(e.into()),
            }
        }
        None => Err(Error::MissingNamespace),
    };
    let label = match &result {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.metric_label(),
    };
    ctx.metrics.observe_reconcile(&label, started.elapsed());
    if result.is_ok() {
        ctx.forget_failures(&key);
    }
    ctx.report_tracked();
    result
}

/// What kube's Controller does after a failed reconcile: per-object backoff with jitter.
pub fn error_policy(meta: Arc<CachedGuiSession>, error: &Error, ctx: Arc<Context>) -> Requeue {
    let delay = ctx.next_backoff(key_of(meta.as_ref()));
    ctx.report_tracked();
    warn!(
        namespace = meta.namespace().unwrap_or_default(),
        name = meta.name_any(),
        error = %error,
        retry_in = ?delay,
        "reconcile failed"
    );
    Requeue::requeue(delay)
}

/// One reconcile of one object: the state machine's steps, with the I/O between them.
struct Reconcile<'a> {
    /// The latest known version of the object (replaced by every write's answer).
    obj: GuiSession,
    ctx: &'a Context,
    api: Api<GuiSession>,
    secrets: Api<Secret>,
    /// The access Secret as last read or written.
    secret: SecretSeen,
    /// Which object that was (uid and resourceVersion), when there was one: every update and
    /// delete is made with it as a precondition, so a Secret replaced or edited since it was
    /// judged is never written over or deleted.
    secret_version: Option<SecretVersion>,
    account: AccountUse,
}

/// The account (edge key) and Region a Lightsail client serves.
type ScopeKey = (Option<String>, Option<String>);

/// The uid and resourceVersion of an access Secret as read or written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SecretVersion {
    uid: String,
    resource_version: String,
}

/// Why a GuiSession in `namespace` (with these labels, when the namespaces are watched) may not
/// use the operator's own AWS identity, if it may not.
fn own_identity_refusal(
    selector: &NamespaceSelector,
    namespace: &str,
    labels: Option<BTreeMap<String, String>>,
) -> Option<AccountRefusal> {
    let selector = match selector {
        NamespaceSelector::All => return None,
        NamespaceSelector::None => {
            return Some(AccountRefusal {
                reason: "OwnIdentityNotAllowed",
                message: "this operator's own AWS identity serves no namespace (--own-identity-namespaces none): name a LightsailAccount or ClusterLightsailAccount in spec.accountRef".into(),
                pending: false,
            });
        }
        NamespaceSelector::Matching(selector) => selector,
    };
    let labels = labels.unwrap_or_default();
    if selector_matches(selector, &labels) {
        return None;
    }
    Some(AccountRefusal {
        reason: "OwnIdentityNotAllowed",
        message: format!(
            "the namespace {namespace} is not one of those allowed to use this operator's own AWS identity (--own-identity-namespaces): name a LightsailAccount or ClusterLightsailAccount in spec.accountRef"
        ),
        pending: false,
    })
}

#[cfg(test)]
mod tests;
