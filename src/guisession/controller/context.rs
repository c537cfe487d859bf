//! What the controller keeps between reconciles: the objects it tracks, the starts it has not seen
//! confirmed yet, backoffs, and what it forgets when objects go.

use kube::{Resource, ResourceExt};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ObjectRef, Store};

use super::{AccountStores, CachedGuiSession, Context, Held, RetryPolicy, key_of};
use crate::account::policy::NamespaceSelector;
use crate::aws::lightsail::Lightsail;
use crate::guisession::policy::start_budget;
use crate::guisession::policy::{Settings, UnconfirmedStart};
use crate::guisession::types::GuiSession;
use crate::leadership::LeaderGate;
use crate::metrics::Metrics;

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
    pub(super) fn is_gone(&self, key: &ObjectRef<GuiSession>) -> bool {
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
    pub(super) fn report_tracked(&self) {
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

    pub(super) fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Sets the account caches (each leadership term watches afresh).
    pub fn set_accounts(&self, stores: Option<AccountStores>) {
        *self.accounts.write().unwrap_or_else(|p| p.into_inner()) = stores;
    }

    /// Accounts of either kind in the caches that are not Ready (0 while no cache is held).
    pub fn accounts_not_ready(&self) -> i64 {
        use crate::account::controller::AccountObject;
        fn not_ready<K: AccountObject>(store: &Store<K>) -> usize {
            store
                .state()
                .iter()
                .filter(|a| {
                    !a.account_status()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| {
                            cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        })
                })
                .count()
        }
        self.account_stores().map_or(0, |s| {
            i64::try_from(not_ready(&s.namespaced) + not_ready(&s.cluster)).unwrap_or(i64::MAX)
        })
    }

    pub(super) fn account_stores(&self) -> Option<AccountStores> {
        self.accounts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) fn next_backoff(&self, key: ObjectRef<GuiSession>) -> Duration {
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
    pub(super) fn drop_if_gone(&self, key: &ObjectRef<GuiSession>) {
        if self.is_gone(key) {
            self.forget(key);
        }
    }

    pub(super) fn unconfirmed_of(&self, obj: &GuiSession) -> Option<UnconfirmedStart> {
        let unconfirmed = self.unconfirmed.lock().unwrap_or_else(|p| p.into_inner());
        if unconfirmed.is_empty() {
            return None;
        }
        unconfirmed.get(&key_of(obj)).map(|held| held.start.clone())
    }

    pub(super) fn keep_unconfirmed(&self, obj: &GuiSession, start: UnconfirmedStart) {
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
    pub(super) fn written_object(
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
    pub(super) fn read_version(
        &self,
        key: &ObjectRef<GuiSession>,
        cached: Option<String>,
    ) -> Option<String> {
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
    pub(super) fn settle_unconfirmed(&self, obj: &GuiSession) {
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

    pub(super) fn forget(&self, key: &ObjectRef<GuiSession>) {
        self.unconfirmed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    pub(super) fn forget_failures(&self, key: &ObjectRef<GuiSession>) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if !failures.is_empty() {
            failures.remove(key);
        }
    }
}
