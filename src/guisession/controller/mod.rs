//! The Kubernetes edge: runs the state machine of [`crate::guisession::policy`] for one GuiSession and
//! performs the I/O it asks for (status writes with an optimistic-concurrency precondition, the
//! finalizer, Events), calling Lightsail through the [`Lightsail`] edge. Nothing here decides
//! policy, and nothing here knows the AWS SDK.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, GetParams, Patch, PatchParams, PostParams, Preconditions};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use crate::account::controller::{edge_key, namespace_labels};
use crate::account::types::{
    AccountFound, AccountKey, AccountRefusal, ClusterLightsailAccount, LightsailAccount,
    check_account, selector_matches,
};
use crate::aws::errors::LightsailError;
use crate::aws::lightsail::{Lightsail, Permit, Scope};
use crate::aws::model::Action;
use crate::guisession::policy::{
    AccessSecret, AccountView, Effect, Input, Next, Note, SKIP_STOP_ANNOTATION, SecretError,
    SecretSeen, Settings, Transition, UnconfirmedStart, View, transition, until,
};
use crate::guisession::types::{AccountKind, GuiSession, GuiSessionStatus};
use crate::leadership::LeaderGate;
use crate::metrics::Metrics;
use crate::process::cli::NamespaceSelector;

/// Field manager of every status write (server-side apply).
pub const FIELD_MANAGER: &str = "lightsail-gui-operator";
/// Label on every Secret the operator writes (value [`FIELD_MANAGER`]): the operator watches only
/// Secrets carrying it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Annotation on an access Secret: the `sessionStartedAt` of the session its URLs open.
pub const SESSION_ANNOTATION: &str = "lightsail.operators.dev/session-started-at";
/// Annotation on an access Secret: SHA-256 of its data as written, to tell an edited Secret.
pub const DATA_DIGEST_ANNOTATION: &str = "lightsail.operators.dev/data-sha256";
/// The keys of an access Secret that the operator writes (and judges intact).
const KEY_PRIMARY_URL: &str = "primaryUrl";
const KEY_SECONDARY_URL: &str = "secondaryUrl";
const KEY_RESOURCE_NAME: &str = "resourceName";
const KEY_EXPIRES_AT: &str = "expiresAt";
const OPERATOR_KEYS: &[&str] = &[
    KEY_PRIMARY_URL,
    KEY_SECONDARY_URL,
    KEY_RESOURCE_NAME,
    KEY_EXPIRES_AT,
];
/// Finalizer carried only by GuiSessions with `stopOnDelete`.
pub const FINALIZER: &str = "lightsail.operators.dev/stop-session";

/// Most state-machine steps in one reconcile (a lookup, a start and a first record take three).
const MAX_STEPS: usize = 8;
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

impl Context {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: kube::Client,
        lightsail: Arc<Lightsail>,
        reporter: Reporter,
        metrics: Arc<Metrics>,
        settings: Settings,
        retry: RetryPolicy,
        leader: LeaderGate,
        call_timeout: Duration,
        max_clock_skew: Duration,
    ) -> Self {
        let start_budget = start_budget(settings.start_settle, call_timeout, max_clock_skew);
        Context {
            client,
            lightsail,
            reporter,
            metrics,
            settings,
            retry,
            leader,
            start_budget,
            accounts: std::sync::RwLock::new(None),
            failures: Mutex::default(),
            unconfirmed: Mutex::default(),
            draining: std::sync::atomic::AtomicBool::new(false),
            own_identity: NamespaceSelector::All,
            live: std::sync::RwLock::new(None),
        }
    }

    /// Sets the GuiSession cache of the current term (`None` between terms).
    pub fn set_live(&self, store: Option<Store<CachedGuiSession>>) {
        *self.live.write().unwrap_or_else(|p| p.into_inner()) = store;
    }

    /// Whether the watch no longer holds `key` (false without a cache, e.g. in tests).
    fn is_gone(&self, key: &ObjectRef<GuiSession>) -> bool {
        let live = self.live.read().unwrap_or_else(|p| p.into_inner());
        live.as_ref().is_some_and(|store| {
            let mut cached = ObjectRef::<CachedGuiSession>::new(&key.name);
            cached.namespace = key.namespace.clone();
            store.get(&cached).is_none()
        })
    }

    /// Drops what is held for objects the cache no longer has: after a relist, which reports
    /// no deletes for objects deleted during a watch gap.
    pub fn retain_live(&self) {
        let live = self.live.read().unwrap_or_else(|p| p.into_inner());
        let Some(store) = live.as_ref() else {
            return;
        };
        let keep = |key: &ObjectRef<GuiSession>| {
            let mut cached = ObjectRef::<CachedGuiSession>::new(&key.name);
            cached.namespace = key.namespace.clone();
            store.get(&cached).is_some()
        };
        self.unconfirmed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|key, _| keep(key));
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|key, _| keep(key));
        drop(live);
        self.report_tracked();
    }

    /// Publishes the sizes of the per-object maps (`lightsail_gui_operator_tracked_objects`).
    fn report_tracked(&self) {
        let unconfirmed = self
            .unconfirmed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len();
        let failures = self
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len();
        self.metrics.set_tracked("unconfirmed_starts", unconfirmed);
        self.metrics.set_tracked("backoffs", failures);
    }

    /// Limits the operator's own AWS identity to the namespaces `selector` selects.
    pub fn with_own_identity(mut self, selector: NamespaceSelector) -> Self {
        self.own_identity = selector;
        self
    }

    /// Shutdown was requested: running reconciles finish what they started themselves, since no
    /// later reconcile will.
    pub fn drain(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Sets the account caches (each leadership term watches afresh).
    pub fn set_accounts(&self, stores: Option<AccountStores>) {
        *self.accounts.write().unwrap_or_else(|p| p.into_inner()) = stores;
    }

    fn account_stores(&self) -> Option<AccountStores> {
        self.accounts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn next_backoff(&self, key: ObjectRef<GuiSession>) -> Duration {
        let delay = {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            let n = failures.entry(key.clone()).or_insert(0);
            *n = n.saturating_add(1);
            self.retry.delay(*n, rand::random::<f64>())
        };
        self.drop_if_gone(&key);
        delay
    }

    /// A reconcile that ran while its object was deleted stores its outcome after the delete
    /// was handled: checked against the cache after storing (the delete is handled after the
    /// cache dropped the object), so nothing outlives its object.
    fn drop_if_gone(&self, key: &ObjectRef<GuiSession>) {
        if self.is_gone(key) {
            self.forget(key);
        }
    }

    fn unconfirmed_of(&self, obj: &GuiSession) -> Option<UnconfirmedStart> {
        let unconfirmed = self.unconfirmed.lock().unwrap_or_else(|p| p.into_inner());
        if unconfirmed.is_empty() {
            return None;
        }
        unconfirmed.get(&key_of(obj)).map(|held| held.start.clone())
    }

    fn keep_unconfirmed(&self, obj: &GuiSession, start: UnconfirmedStart) {
        let version = obj.resource_version().and_then(|rv| rv.parse().ok());
        // managedFields are most of an object's size and nothing here reads them. Should the
        // object not serialize, the recording reconcile reads it at `version` instead.
        let mut slim = obj.clone();
        slim.metadata.managed_fields = None;
        let written = serde_json::to_vec(&slim)
            .map(Vec::into_boxed_slice)
            .unwrap_or_default();
        let key = key_of(obj);
        self.unconfirmed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                key.clone(),
                Box::new(Held {
                    start,
                    written,
                    version,
                }),
            );
        self.drop_if_gone(&key);
    }

    /// The object as this process's fence write left it, if the cache is not newer than that
    /// write: the reconcile that records the start then needs no read. A write on it that
    /// turns out stale ends in a conflict and a fresh read, never in a second start.
    fn written_object(
        &self,
        key: &ObjectRef<GuiSession>,
        cached: Option<&str>,
    ) -> Option<GuiSession> {
        let cached = cached?.parse::<u64>().ok()?;
        let written = {
            let unconfirmed = self.unconfirmed.lock().unwrap_or_else(|p| p.into_inner());
            let held = unconfirmed.get(key)?;
            if held.version? < cached {
                return None;
            }
            held.written.clone()
        };
        serde_json::from_slice(&written).ok()
    }

    /// The resourceVersion to read the object at: the cached one, or the fence this process
    /// wrote for an unconfirmed start when the watch has not caught up with it yet (a read at
    /// the cached version would then miss the fence, and the start would wait for the settle
    /// window's lookup). resourceVersions are etcd revisions, newer is larger; one that is not
    /// a number is taken as it is.
    fn read_version(&self, key: &ObjectRef<GuiSession>, cached: Option<String>) -> Option<String> {
        let written = {
            let unconfirmed = self.unconfirmed.lock().unwrap_or_else(|p| p.into_inner());
            unconfirmed.get(key).and_then(|held| held.version)
        };
        let newer_written = written.filter(|ours| match cached.as_deref() {
            None => true,
            Some(cached) => cached.parse::<u64>().is_ok_and(|cached| cached < *ours),
        });
        newer_written.map(|ours| ours.to_string()).or(cached)
    }

    /// Forgets the object's unconfirmed start once its status no longer carries that start's
    /// fence: recorded, taken over by another writer, or given up.
    fn settle_unconfirmed(&self, obj: &GuiSession) {
        let mut unconfirmed = self.unconfirmed.lock().unwrap_or_else(|p| p.into_inner());
        if unconfirmed.is_empty() {
            return;
        }
        let key = key_of(obj);
        let fence = obj.status.as_ref().and_then(|s| s.pending_start.as_ref());
        if unconfirmed
            .get(&key)
            .is_some_and(|held| Some(&held.start.fence) != fence)
        {
            unconfirmed.remove(&key);
        }
    }

    /// Called for every object the watch reports deleted, after the cache dropped it: drops
    /// what this process held for it.
    pub fn forget_object(&self, obj: &impl Resource) {
        self.forget(&key_of(obj));
        self.report_tracked();
    }

    fn forget(&self, key: &ObjectRef<GuiSession>) {
        self.unconfirmed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    fn forget_failures(&self, key: &ObjectRef<GuiSession>) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if !failures.is_empty() {
            failures.remove(key);
        }
    }
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

impl SecretVersion {
    fn of(secret: &Secret) -> Option<SecretVersion> {
        Some(SecretVersion {
            uid: secret.metadata.uid.clone()?,
            resource_version: secret.metadata.resource_version.clone()?,
        })
    }
}

impl Reconcile<'_> {
    fn transition(&self, input: Input, now: Timestamp) -> Transition {
        let default_status = GuiSessionStatus::default();
        let meta = self.obj.meta();
        let name = self.obj.name_any();
        let unconfirmed = self.ctx.unconfirmed_of(&self.obj);
        let view = View {
            name: &name,
            spec: &self.obj.spec,
            status: self.obj.status.as_ref().unwrap_or(&default_status),
            generation: meta.generation,
            deleting: meta.deletion_timestamp.is_some(),
            has_finalizer: self.obj.finalizers().iter().any(|f| f == FINALIZER),
            skip_stop: self
                .obj
                .annotations()
                .get(SKIP_STOP_ANNOTATION)
                .is_some_and(|v| v == "true"),
            access_secret: self.secret,
            account: match &self.account {
                AccountUse::Own | AccountUse::Loading => AccountView::Own,
                AccountUse::Usable { region, .. } => AccountView::Usable {
                    region: region.as_deref(),
                },
                AccountUse::Refused(r) => AccountView::Refused(r),
            },
            unconfirmed: unconfirmed.as_ref(),
        };
        transition(&view, input, now, &self.ctx.settings)
    }

    /// Which client a permit for `target` belongs to: its account and Region.
    fn scope_key(&self, target: &crate::guisession::policy::Target) -> ScopeKey {
        let scope = self.scope(target);
        (
            scope.account.map(str::to_owned),
            scope.region.map(str::to_owned),
        )
    }

    /// Where Lightsail calls for `target` go.
    fn scope<'t>(&'t self, target: &'t crate::guisession::policy::Target) -> Scope<'t> {
        Scope {
            account: match &self.account {
                AccountUse::Usable { edge, .. } => Some(edge.as_str()),
                _ => None,
            },
            region: target.region.as_deref(),
        }
    }

    /// The account `spec.accountRef` names, as the caches and the Lightsail edge know it.
    fn resolve_account(&self) -> AccountUse {
        let namespace = self.obj.namespace().unwrap_or_default();
        // At the start of a leadership term the account caches are empty until their first
        // list: an account judged from them then would look missing. The object waits; the
        // lists, once in, wake it (every account and namespace is news to a new term).
        let stores = self.ctx.account_stores();
        let unfilled = stores.as_ref().is_some_and(|s| !s.filled());
        let Some(reference) = &self.obj.spec.account_ref else {
            if unfilled && matches!(self.ctx.own_identity, NamespaceSelector::Matching(_)) {
                return AccountUse::Loading;
            }
            let labels = stores.map(|stores| namespace_labels(&stores.namespaces, &namespace));
            return match own_identity_refusal(&self.ctx.own_identity, &namespace, labels) {
                None => AccountUse::Own,
                Some(refusal) => AccountUse::Refused(refusal),
            };
        };
        let key = AccountKey::of(reference, &namespace);
        if unfilled {
            return AccountUse::Loading;
        }
        let Some(stores) = stores else {
            return AccountUse::Refused(AccountRefusal {
                reason: "AccountNotReady",
                message: "this operator does not watch LightsailAccounts".into(),
                pending: false,
            });
        };
        let namespaced;
        let cluster;
        let found = match reference.kind {
            AccountKind::LightsailAccount => {
                namespaced = stores
                    .namespaced
                    .get(&ObjectRef::new(&reference.name).within(&namespace));
                namespaced.as_deref().map(AccountFound::Namespaced)
            }
            AccountKind::ClusterLightsailAccount => {
                cluster = stores.cluster.get(&ObjectRef::new(&reference.name));
                cluster.as_deref().map(|a| {
                    let labels = namespace_labels(&stores.namespaces, &namespace);
                    AccountFound::Cluster(a, a.spec.namespaces.allows(&namespace, &labels))
                })
            }
        };
        match check_account(&key, found) {
            Err(refusal) => AccountUse::Refused(refusal),
            Ok(spec) => {
                let edge = edge_key(&key);
                if self.ctx.lightsail.account_loaded(&edge) {
                    AccountUse::Usable {
                        edge,
                        region: spec.region.clone(),
                    }
                } else {
                    AccountUse::Loading
                }
            }
        }
    }

    async fn run(mut self) -> Result<Requeue, Error> {
        self.account = self.resolve_account();
        if self.account == AccountUse::Loading {
            debug!(
                name = self.obj.name_any(),
                "waiting for the account's credentials to be loaded"
            );
            return Ok(Requeue::await_change());
        }
        (self.secret, self.secret_version) = self.read_secret().await?;
        let mut input = Input::Observed;
        // A rate-limit permit carries the client of one account and Region: it is kept only for
        // the target it was taken for.
        let mut permit: Option<(Permit, ScopeKey)> = None;
        let mut conflicts = 0;
        for _ in 0..MAX_STEPS {
            let now = Timestamp::now();
            let decided_at = Instant::now();
            let step = self.transition(input.clone(), now);
            debug!(
                namespace = self.obj.namespace().unwrap_or_default(),
                name = self.obj.name_any(),
                effect = ?step.effect,
                "reconciling"
            );
            if let Effect::Start(target) = &step.effect
                && permit
                    .as_ref()
                    .is_none_or(|(_, key)| *key != self.scope_key(target))
            {
                // The rate-limit wait comes before the fence, then the decision is made again
                // with the time after it: the fence must be fresh when the call goes out.
                if !self.ctx.leader.may_mutate() {
                    return Ok(self.not_leader());
                }
                match self
                    .ctx
                    .lightsail
                    .permit(self.scope(target), Action::StartGuiSession)
                    .await
                {
                    Ok(p) => permit = Some((p, self.scope_key(target))),
                    Err(e) => {
                        input = Input::StartAnswered {
                            target: target.clone(),
                            fence: None,
                            result: Err(e),
                        };
                    }
                }
                continue;
            }
            match self.apply(&step).await {
                Ok(()) => {}
                Err(e) if is_status(&e, 409) => {
                    conflicts += 1;
                    self.ctx.metrics.count_status_conflict();
                    if conflicts > MAX_CONFLICTS {
                        return Err(Error::Conflicts(conflicts));
                    }
                    // Someone else changed the object since it was read: read it again and
                    // decide again on what is there now, with the same input. Its account may
                    // have changed with it.
                    self.obj = self.api.get(&self.obj.name_any()).await?;
                    self.account = self.resolve_account();
                    if self.account == AccountUse::Loading {
                        return Ok(Requeue::await_change());
                    }
                    continue;
                }
                Err(e) if is_status(&e, 404) => return Ok(Requeue::await_change()),
                Err(e) => return Err(e),
            }
            self.ctx.settle_unconfirmed(&self.obj);
            self.publish(&step.notes).await;
            input = match step.effect {
                Effect::Done(next) => return self.requeue(next),
                Effect::Confirm { start, after } => {
                    debug!(
                        namespace = self.obj.namespace().unwrap_or_default(),
                        name = self.obj.name_any(),
                        operation = start.operation.id.as_deref().unwrap_or_default(),
                        "start answered; recording it with its first poll"
                    );
                    let operation_id = start.operation.id.clone().unwrap_or_default();
                    let scope_target = start.target.clone();
                    self.ctx.keep_unconfirmed(&self.obj, *start);
                    if !self.ctx.is_draining() {
                        return self.requeue(Next::After(after));
                    }
                    // Shutting down: no later reconcile will record this start, so this one
                    // polls it (within the shutdown grace) instead of leaving it to the lookup
                    // of the next leader.
                    tokio::time::sleep(after).await;
                    Input::Polled(
                        self.ctx
                            .lightsail
                            .get_operation(self.scope(&scope_target), &operation_id)
                            .await,
                    )
                }
                Effect::Start(target) => {
                    let Some((permit, key)) = permit.take() else {
                        continue;
                    };
                    if key != self.scope_key(&target) {
                        // Not expected (the permit is taken for the decided target just before
                        // its fence), but never send a start through another target's client.
                        continue;
                    }
                    if !self.ctx.leader.may_mutate() {
                        return Ok(self.not_leader());
                    }
                    if decided_at.elapsed() > self.ctx.start_budget {
                        // Too late for the call to end inside the settle window. The fence
                        // stays; after the window the resource is looked up and started anew.
                        warn!(
                            namespace = self.obj.namespace().unwrap_or_default(),
                            name = self.obj.name_any(),
                            "start fenced but not sent in time; retrying after the settle window"
                        );
                        return Ok(Requeue::requeue(self.ctx.settings.start_settle));
                    }
                    let fence = step.status.pending_start.clone();
                    let result = self
                        .ctx
                        .lightsail
                        .start_gui_session(permit, &target.resource_name)
                        .await;
                    Input::StartAnswered {
                        target,
                        fence,
                        result,
                    }
                }
                Effect::Poll {
                    target,
                    operation_id,
                } => Input::Polled(
                    self.ctx
                        .lightsail
                        .get_operation(self.scope(&target), &operation_id)
                        .await,
                ),
                Effect::Lookup(target) => {
                    let at = Timestamp::now();
                    let result = self
                        .ctx
                        .lightsail
                        .operations_for_resource(self.scope(&target), &target.resource_name)
                        .await;
                    Input::LookedUp { target, at, result }
                }
                Effect::Access(target) => Input::AccessAnswered {
                    result: self
                        .ctx
                        .lightsail
                        .create_gui_session_access_details(
                            self.scope(&target),
                            &target.resource_name,
                        )
                        .await,
                    target,
                },
                Effect::WriteSecret(secret) => {
                    let result = self.write_secret(&secret).await;
                    if let Ok(written) = &result {
                        self.secret = SecretSeen::Ours {
                            session_started_at: Some(secret.session_started_at),
                            intact: true,
                        };
                        self.secret_version = SecretVersion::of(written);
                    }
                    let result = result.map(|_| ());
                    Input::SecretWritten {
                        access: secret.access,
                        result,
                    }
                }
                Effect::DeleteSecret(name) => Input::SecretDeleted(self.delete_secret(&name).await),
                Effect::Stop(target) => {
                    if !self.ctx.leader.may_mutate() {
                        return Ok(self.not_leader());
                    }
                    Input::StopAnswered(
                        self.ctx
                            .lightsail
                            .stop_gui_session(self.scope(&target), &target.resource_name)
                            .await
                            .map(|_| ()),
                    )
                }
            };
        }
        // Not expected: every path ends within a few steps. Come back soon rather than never.
        Ok(Requeue::requeue(self.ctx.settings.follow_backoff_initial))
    }

    fn not_leader(&self) -> Requeue {
        debug!(
            name = self.obj.name_any(),
            "not the leader: leaving the Lightsail call to the leader"
        );
        Requeue::requeue(self.ctx.settings.start_settle)
    }

    fn requeue(&self, next: Next) -> Result<Requeue, Error> {
        match next {
            // Never zero: the state machine only asks for future instants.
            Next::At(at) => Ok(Requeue::requeue(
                until(Timestamp::now(), at).max(Duration::from_millis(100)),
            )),
            Next::After(d) => Ok(Requeue::requeue(d.max(Duration::from_millis(100)))),
            Next::Change => Ok(Requeue::await_change()),
            Next::Retry(e) => Err(Error::Lightsail(e)),
        }
    }

    /// The finalizer change, then the status when it changed, each with a precondition on the
    /// resourceVersion the transition was computed from. Every answer becomes the new view.
    async fn apply(&mut self, step: &Transition) -> Result<(), Error> {
        if let Some(add) = step.finalizer {
            let mut finalizers: Vec<String> = self
                .obj
                .finalizers()
                .iter()
                .filter(|f| *f != FINALIZER)
                .cloned()
                .collect();
            if add {
                finalizers.push(FINALIZER.to_owned());
            }
            let patch = json!({
                "metadata": {
                    "finalizers": finalizers,
                    "resourceVersion": self.obj.resource_version(),
                }
            });
            self.obj = self
                .api
                .patch(
                    &self.obj.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
        }
        let current = self.obj.status.clone().unwrap_or_default();
        if step.status == current {
            // A write that changes nothing still costs an etcd write and a watch event for
            // every watcher, GitOps tools included.
            return Ok(());
        }
        let patch = json!({
            "apiVersion": GuiSession::api_version(&()),
            "kind": GuiSession::kind(&()),
            "metadata": {
                "name": self.obj.name_any(),
                "resourceVersion": self.obj.resource_version(),
            },
            "status": step.status,
        });
        self.obj = self
            .api
            .patch_status(
                &self.obj.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
        self.ctx.metrics.count_status_write();
        Ok(())
    }

    /// Reads the Secret `spec.access` names, when there is one to read.
    async fn read_secret(&self) -> Result<(SecretSeen, Option<SecretVersion>), Error> {
        let Some(access) = &self.obj.spec.access else {
            return Ok((SecretSeen::NotRead, None));
        };
        if !self.ctx.settings.access_secrets {
            return Ok((SecretSeen::NotRead, None));
        }
        match self
            .secrets
            .get_opt(&access.secret_name_for(&self.obj.name_any()))
            .await
        {
            Ok(Some(secret)) => Ok((secret_seen(&secret, &self.obj), SecretVersion::of(&secret))),
            Ok(None) => Ok((SecretSeen::Missing, None)),
            // Not allowed to read: the write will tell the same, and the state machine shows it.
            Err(kube::Error::Api(s)) if s.code == 403 => Ok((SecretSeen::Missing, None)),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes the access Secret: created when it was missing (a create fails if someone else
    /// was first, so a Secret made in between is never taken over), otherwise updated with the
    /// resourceVersion it was judged at as a precondition (so it is still the GuiSession's own).
    /// Only the operator's keys are written; keys others added stay.
    async fn write_secret(&self, secret: &AccessSecret) -> Result<Secret, SecretError> {
        let mut data = BTreeMap::new();
        data.insert(KEY_PRIMARY_URL, secret.primary_url.expose().to_owned());
        if let Some(url) = &secret.secondary_url {
            data.insert(KEY_SECONDARY_URL, url.expose().to_owned());
        }
        data.insert(KEY_RESOURCE_NAME, secret.resource_name.clone());
        data.insert(KEY_EXPIRES_AT, secret.expires_at.to_string());
        let data: BTreeMap<String, ByteString> = data
            .into_iter()
            .map(|(k, v)| (k.to_owned(), ByteString(v.into_bytes())))
            .collect();
        let annotations = BTreeMap::from([
            (
                SESSION_ANNOTATION.to_owned(),
                secret.session_started_at.to_string(),
            ),
            (DATA_DIGEST_ANNOTATION.to_owned(), data_digest(&data)),
        ]);
        let labels = BTreeMap::from([(MANAGED_BY_LABEL.to_owned(), FIELD_MANAGER.to_owned())]);
        let Some(version) = &self.secret_version else {
            let owner = OwnerReference {
                api_version: GuiSession::api_version(&()).into_owned(),
                kind: GuiSession::kind(&()).into_owned(),
                name: self.obj.name_any(),
                uid: self.obj.uid().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: None,
            };
            let body = Secret {
                metadata: ObjectMeta {
                    name: Some(secret.name.clone()),
                    labels: Some(labels),
                    annotations: Some(annotations),
                    owner_references: Some(vec![owner]),
                    ..ObjectMeta::default()
                },
                type_: Some("Opaque".into()),
                data: Some(data),
                ..Secret::default()
            };
            return self
                .secrets
                .create(&PostParams::default(), &body)
                .await
                .map_err(secret_error);
        };
        // A merge patch replaces the operator's keys and removes those of its keys this session
        // has none of; the resourceVersion makes it conditional on the Secret judged ours.
        let mut patch_data = serde_json::Map::new();
        for key in OPERATOR_KEYS {
            let value = data.get(*key).map_or(serde_json::Value::Null, |v| {
                serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
            });
            patch_data.insert((*key).to_owned(), value);
        }
        let patch = json!({
            "metadata": {
                "uid": version.uid,
                "resourceVersion": version.resource_version,
                "labels": labels,
                "annotations": annotations,
            },
            "data": patch_data,
        });
        self.secrets
            .patch(&secret.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(secret_error)
    }

    /// Deletes an access Secret this GuiSession owns, on the condition that it is still the
    /// object (uid) and the version (resourceVersion) that was judged to be its own.
    async fn delete_secret(&self, name: &str) -> Result<(), SecretError> {
        let secret = match self.secrets.get_opt(name).await {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(()),
            Err(e) => return Err(secret_error(e)),
        };
        // Only a Secret this GuiSession owns is ever deleted.
        if secret_seen(&secret, &self.obj) == SecretSeen::Foreign {
            return Ok(());
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: secret.metadata.uid.clone(),
                resource_version: secret.metadata.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        match self.secrets.delete(name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(secret_error(e)),
        }
    }

    async fn publish(&self, notes: &[Note]) {
        for note in notes {
            let namespace = self.obj.namespace().unwrap_or_default();
            let name = self.obj.name_any();
            if note.warning {
                warn!(namespace, name, reason = note.reason, "{}", note.message);
            } else {
                info!(namespace, name, reason = note.reason, "{}", note.message);
            }
            let reference: ObjectReference = self.obj.object_ref(&());
            let event = Event {
                type_: if note.warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: note.reason.to_owned(),
                note: Some(note.message.clone()),
                action: note.action.to_owned(),
                secondary: None,
            };
            // An Event that cannot be written must not fail the reconcile that it reports on.
            let recorder = Recorder::new(self.ctx.client.clone(), self.ctx.reporter.clone());
            if let Err(e) = recorder.publish(&event, &reference).await {
                warn!(name, error = %e, "cannot publish event");
            }
        }
    }
}

/// How long after its fence a start may still be sent (see [`Context::start_budget`]); zero
/// when the settings leave no time at all (the operator refuses such settings at start).
pub fn start_budget(
    settle: Duration,
    call_timeout: Duration,
    max_clock_skew: Duration,
) -> Duration {
    settle
        .saturating_sub(call_timeout)
        .saturating_sub(Duration::from_secs(1))
        .saturating_sub(max_clock_skew)
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

/// What a read Secret is to `owner`: its own (for which session, edited or not) or someone else's.
fn secret_seen(secret: &Secret, owner: &GuiSession) -> SecretSeen {
    let owned = owner.uid().is_some_and(|uid| {
        secret
            .owner_references()
            .iter()
            .any(|r| r.uid == uid && r.controller == Some(true))
    });
    if !owned {
        return SecretSeen::Foreign;
    }
    let annotations = secret.annotations();
    // Judged on the operator's own keys only: a key someone else added is theirs to keep, and
    // must not make the Secret look edited (and so rewritten, with an access call, forever).
    let ours: BTreeMap<String, ByteString> = secret
        .data
        .iter()
        .flatten()
        .filter(|(k, _)| OPERATOR_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let intact = annotations.get(DATA_DIGEST_ANNOTATION) == Some(&data_digest(&ours));
    SecretSeen::Ours {
        session_started_at: annotations
            .get(SESSION_ANNOTATION)
            .and_then(|t| t.parse().ok()),
        intact,
    }
}

/// SHA-256 (hex) over a Secret's data, keys in order. Only a digest of the URLs is ever kept.
fn data_digest(data: &BTreeMap<String, ByteString>) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for (key, value) in data {
        hasher.update(key.as_bytes());
        hasher.update([0]);
        hasher.update(&value.0);
        hasher.update([0]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn secret_error(e: kube::Error) -> SecretError {
    match e {
        kube::Error::Api(s) => SecretError {
            forbidden: s.code == 403,
            // AlreadyExists on a create, a failed precondition on an update or delete: someone
            // else wrote the Secret since it was read.
            conflict: s.code == 409,
            message: format!("{} ({})", s.message, s.code),
        },
        e => SecretError {
            forbidden: false,
            conflict: false,
            message: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guisession::types::GuiSessionSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    fn context() -> Context {
        crate::install_crypto_provider();
        let url = "http://127.0.0.1:9".parse().expect("url");
        let client = kube::Client::try_from(kube::Config::new(url)).expect("client");
        let metrics = Arc::new(Metrics::default());
        let rate = crate::aws::model::RateLimit {
            per_second: std::num::NonZeroU32::MIN,
            burst: std::num::NonZeroU32::MIN,
        };
        let lightsail = Lightsail::from_sdk_config(
            aws_config::SdkConfig::builder().build(),
            None,
            rate,
            metrics.clone(),
        );
        let reporter = Reporter {
            controller: "test".into(),
            instance: None,
        };
        Context::new(
            client,
            Arc::new(lightsail),
            reporter,
            metrics,
            Settings::default(),
            RetryPolicy {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(2),
            },
            LeaderGate::always(),
            Duration::from_secs(30),
            Duration::from_secs(1),
        )
    }

    fn object(rv: &str, status: Option<GuiSessionStatus>) -> GuiSession {
        let mut gs = GuiSession::new("gs", GuiSessionSpec::for_computer("vm"));
        gs.metadata.namespace = Some("ns".into());
        gs.metadata.resource_version = Some(rv.into());
        gs.status = status;
        gs
    }

    /// What the watch caches of `gs` in namespace `ns`.
    fn cached(name: &str) -> CachedGuiSession {
        let mut gs = GuiSession::new(name, GuiSessionSpec::for_computer("vm"));
        gs.metadata.namespace = Some("ns".into());
        match crate::process::metadata_of(kube::runtime::watcher::Event::Apply(gs)) {
            kube::runtime::watcher::Event::Apply(meta) => meta,
            _ => unreachable!("metadata_of keeps the event's kind"),
        }
    }

    #[test]
    fn the_start_budget_leaves_room_for_the_call_the_whole_second_and_the_clock_skew() {
        let s = Duration::from_secs;
        assert_eq!(start_budget(s(60), s(30), s(1)), s(28));
        assert_eq!(start_budget(s(8), s(5), s(1)), s(1));
        assert_eq!(
            start_budget(s(8), s(5), s(2)),
            Duration::ZERO,
            "no room: refused"
        );
        assert_eq!(start_budget(s(8), s(5), Duration::ZERO), s(2));
    }

    #[tokio::test]
    async fn a_relist_drops_what_is_kept_for_objects_deleted_during_a_watch_gap() {
        use kube::runtime::watcher::Event;
        let ctx = context();
        let (reader, mut writer) = kube::runtime::reflector::store::<CachedGuiSession>();
        writer.apply_watcher_event(&Event::Apply(cached("a")));
        writer.apply_watcher_event(&Event::Apply(cached("b")));
        ctx.set_live(Some(reader));
        let key = |name: &str| ObjectRef::<GuiSession>::new(name).within("ns");
        ctx.next_backoff(key("a"));
        ctx.next_backoff(key("b"));
        // Stored for an object the cache never had (its delete handled before): not kept.
        ctx.next_backoff(key("gone"));
        assert_eq!(ctx.failures.lock().expect("lock").len(), 2);
        // A relist after a watch gap in which b was deleted: no Delete event for it.
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitApply(cached("a")));
        writer.apply_watcher_event(&Event::InitDone);
        ctx.retain_live();
        let kept: Vec<String> = ctx
            .failures
            .lock()
            .expect("lock")
            .keys()
            .map(|k| k.name.clone())
            .collect();
        assert_eq!(kept, ["a"]);
        assert!(
            ctx.metrics
                .render()
                .contains("lightsail_gui_operator_tracked_objects{map=\"backoffs\"} 1"),
            "{}",
            ctx.metrics.render()
        );
    }

    #[tokio::test]
    async fn an_unconfirmed_start_is_kept_until_its_fence_leaves_the_status_or_the_object_goes() {
        use crate::guisession::policy::Target;
        use crate::guisession::types::{Operation, PendingStart};
        let ctx = context();
        let fence = PendingStart {
            requested_at: "2026-11-24T12:00:00Z".parse().expect("timestamp"),
            resource_name: "vm".into(),
            region: None,
            account: None,
            holder: "a".into(),
        };
        let mut fenced = object(
            "5",
            Some(GuiSessionStatus {
                pending_start: Some(fence.clone()),
                ..GuiSessionStatus::default()
            }),
        );
        fenced.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some(FIELD_MANAGER.into()),
            ..ManagedFieldsEntry::default()
        }]);
        let start = UnconfirmedStart {
            target: Target {
                resource_name: "vm".into(),
                region: None,
                account: None,
            },
            fence,
            operation: Operation {
                id: Some("op-1".into()),
                ..Operation::default()
            },
        };
        ctx.keep_unconfirmed(&fenced, start.clone());
        ctx.settle_unconfirmed(&fenced);
        assert_eq!(ctx.unconfirmed_of(&fenced), Some(start.clone()));
        // The reconcile that records it reads at least at the fence's version, even while the
        // cache is older (the watch has not caught up); a newer or opaque cached version stands.
        let key = ObjectRef::from_obj(&fenced);
        for (cached, read_at) in [
            (Some("4"), Some("5")),
            (Some("5"), Some("5")),
            (Some("6"), Some("6")),
            (Some("opaque"), Some("opaque")),
            (None, Some("5")),
        ] {
            assert_eq!(
                ctx.read_version(&key, cached.map(String::from)).as_deref(),
                read_at,
                "cache at {cached:?}, fence written at 5"
            );
        }
        // The object as written stands in for that read while the cache is not newer than it
        // (managedFields left out); a newer or opaque cached version is read.
        let mut slim = fenced.clone();
        slim.metadata.managed_fields = None;
        for (cached, stands_in) in [
            (Some("4"), true),
            (Some("5"), true),
            (Some("6"), false),
            (Some("opaque"), false),
            (None, false),
        ] {
            let json = |o: Option<GuiSession>| o.map(|o| serde_json::to_value(o).expect("json"));
            assert_eq!(
                json(ctx.written_object(&key, cached)),
                json(stands_in.then(|| slim.clone())),
                "cache at {cached:?}, fence written at 5"
            );
        }
        // Recorded (the fence cleared): forgotten.
        let recorded = object("6", Some(GuiSessionStatus::default()));
        ctx.settle_unconfirmed(&recorded);
        assert_eq!(ctx.unconfirmed_of(&fenced), None);
        assert_eq!(
            ctx.read_version(&key, Some("4".into())).as_deref(),
            Some("4")
        );
        assert!(ctx.written_object(&key, Some("4")).is_none());
        // Deleted before its poll: forgotten with the object, and so is its backoff.
        ctx.keep_unconfirmed(&fenced, start);
        ctx.next_backoff(key.clone());
        ctx.forget_object(&fenced);
        assert_eq!(ctx.unconfirmed_of(&fenced), None);
        assert!(!ctx.failures.lock().expect("lock").contains_key(&key));
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let p = RetryPolicy {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(60),
        };
        assert_eq!(p.delay(1, 1.0), Duration::from_secs(2));
        assert_eq!(p.delay(2, 1.0), Duration::from_secs(4));
        assert_eq!(p.delay(3, 1.0), Duration::from_secs(8));
        assert_eq!(p.delay(10, 1.0), Duration::from_secs(60));
        assert_eq!(p.delay(u32::MAX, 1.0), Duration::from_secs(60));
        assert_eq!(p.delay(3, 0.0), Duration::from_secs(4));
        assert_eq!(p.delay(0, 1.0), Duration::from_secs(2));
    }
}
