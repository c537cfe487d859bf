//! What the controller watches and what wakes a GuiSession: its own changes (metadata only,
//! news only), and changes of the accounts and namespaces it depends on.

use futures::{StreamExt, TryStreamExt};
use kube::ResourceExt;
use kube::runtime::WatchStreamExt;
use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, predicates, reflector, watcher};
use tokio::sync::mpsc;

use super::http::Health;
use crate::account::controller::{AccountContext, AccountObject};
use crate::account::controller::{
    error_policy as account_error_policy, reconcile as reconcile_account,
};
use crate::account::index::AccountIndex;
use crate::account::policy::NamespaceSelector;
use crate::account::types::edge_key;
use crate::account::types::{AccountKey, ClusterLightsailAccount, LightsailAccount};
use crate::aws::lightsail::Lightsail;
use crate::guisession::controller::{AccountStores, CachedGuiSession, Context};
use crate::guisession::policy::SKIP_STOP_ANNOTATION;
use crate::guisession::types::GuiSession;
use crate::process::cli::RunArgs;
use crate::process::watch_scope::WatchScope;

/// What the cache keeps of a watch event: the metadata that is read from it, the name and
/// namespace to reconcile, the resourceVersion to read the object at, and the uid, generation
/// and skip-stop annotation that decide whether an event is news ([`Generations`]). The rest
/// (managedFields, kubectl's last-applied copy, finalizers, labels) is read with the object when
/// reconciled.
pub fn metadata_of(event: watcher::Event<GuiSession>) -> watcher::Event<CachedGuiSession> {
    let meta = |obj: GuiSession| {
        let ObjectMeta {
            name,
            namespace,
            uid,
            resource_version,
            generation,
            annotations,
            ..
        } = obj.metadata;
        // Only the one annotation that changes a decision, and only where it is set.
        let annotations = annotations
            .and_then(|mut a| a.remove_entry(SKIP_STOP_ANNOTATION))
            .map(|entry| std::collections::BTreeMap::from([entry]));
        PartialObjectMeta {
            types: None,
            metadata: ObjectMeta {
                name,
                namespace,
                uid,
                resource_version,
                generation,
                annotations,
                ..ObjectMeta::default()
            },
            _phantom: std::marker::PhantomData,
        }
    };
    match event {
        watcher::Event::Apply(obj) => watcher::Event::Apply(meta(obj)),
        watcher::Event::Delete(obj) => watcher::Event::Delete(meta(obj)),
        watcher::Event::InitApply(obj) => watcher::Event::InitApply(meta(obj)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// The generation of every watched GuiSession, by uid: an applied object is news (and
/// triggers a reconcile) when it is new to this process, its generation moved (a spec edit, a
/// deletion starting), as with kube's `predicates::generation` filter, or the skip-stop
/// annotation changed (metadata only, but it decides whether a deletion stops the session); the
/// operator's own status writes are not. 24 bytes per object where kube's filter copies three
/// strings, and a deleted object's entry goes with its Delete event or, if the watch missed
/// that, with the next relist.
#[derive(Default)]
pub(super) struct Generations {
    /// The generation, doubled, plus one when the skip-stop annotation is `true`.
    pub(super) by_uid: HashMap<u128, i64>,
    /// A relist in progress: it replaces `by_uid` once complete.
    pub(super) relisting: Option<HashMap<u128, i64>>,
}

impl Generations {
    pub(super) fn key(obj: &CachedGuiSession) -> Option<(u128, i64)> {
        let uid = obj.metadata.uid.as_deref()?;
        let uid = u128::from_str_radix(&uid.replace('-', ""), 16).ok()?;
        let skip_stop = obj
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SKIP_STOP_ANNOTATION))
            .is_some_and(|v| v == "true");
        let generation = obj.metadata.generation?;
        Some((uid, generation.saturating_mul(2) + i64::from(skip_stop)))
    }

    /// Records the event; whether it should trigger a reconcile (events that apply no object
    /// pass, `applied_objects` drops them).
    pub(super) fn is_news(&mut self, event: &watcher::Event<CachedGuiSession>) -> bool {
        match event {
            watcher::Event::Init => {
                self.relisting = Some(HashMap::new());
                true
            }
            watcher::Event::InitDone => {
                if let Some(list) = self.relisting.take() {
                    self.by_uid = list;
                }
                true
            }
            watcher::Event::Delete(obj) => {
                if let Some((uid, _)) = Self::key(obj) {
                    self.by_uid.remove(&uid);
                }
                true
            }
            watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => {
                // Without a uid or generation (never from a real apiserver) it always passes.
                let Some((uid, generation)) = Self::key(obj) else {
                    return true;
                };
                let seen = self.by_uid.get(&uid).copied();
                match self.relisting.as_mut() {
                    Some(list) => list.insert(uid, generation),
                    None => self.by_uid.insert(uid, generation),
                };
                seen != Some(generation)
            }
        }
    }
}

/// What the Controller keeps of a triggering object: the name it reconciles, held in its queue
/// until the object is due (twice over, per object). The uid and resourceVersion would make
/// every queued reference two allocations larger; the reconcile gets the cached object anyway.
pub(super) fn trigger_of(obj: CachedGuiSession) -> CachedGuiSession {
    PartialObjectMeta {
        types: None,
        metadata: ObjectMeta {
            name: obj.metadata.name,
            namespace: obj.metadata.namespace,
            ..ObjectMeta::default()
        },
        _phantom: std::marker::PhantomData,
    }
}

/// Keeps the account index (which GuiSessions name which account) from the GuiSession watch,
/// and asks the account controllers to recount the accounts whose count changed.
/// Records which account `event`'s object names, and sends the accounts whose count changed.
pub(super) fn accounts_named(
    index: &AccountIndex,
    counts: &mpsc::UnboundedSender<AccountKey>,
    event: &watcher::Event<GuiSession>,
) {
    let changed = match event {
        watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => index.apply(obj),
        watcher::Event::Delete(obj) => index.delete(obj).into_iter().collect(),
        _ => Vec::new(),
    };
    for key in changed {
        // The receiver only goes away when the controllers stop.
        let _ = counts.send(key);
    }
}

/// The account kinds' watches and controllers for one leadership term.
pub(super) struct AccountWatches {
    pub(super) index: Arc<AccountIndex>,
    /// Accounts whose GuiSession count changed.
    pub(super) counts: mpsc::UnboundedSender<AccountKey>,
    /// GuiSessions to reconcile because their account changed.
    pub(super) wakes: futures::stream::BoxStream<'static, ObjectRef<GuiSession>>,
    pub(super) controllers: futures::future::BoxFuture<'static, ()>,
}

/// What a GuiSession judges an account by: its generation, the generation its status is for,
/// and its conditions' statuses.
pub(super) type Usability = (Option<i64>, Option<i64>, Vec<(String, String)>);

/// Follows an account watch, after its cache is updated: wakes the account's GuiSessions when
/// what they judge it by changes, and forgets a deleted account's credentials. A wake sent
/// straight after the account's status write could reach a GuiSession before the cache holds
/// that status; it would then wait for a change that had already happened. At the start of a
/// term every account is news, which wakes the GuiSessions judged from an empty cache.
pub(super) fn account_events<K: AccountObject>(
    lightsail: Arc<Lightsail>,
    index: Arc<AccountIndex>,
    wake: mpsc::UnboundedSender<ObjectRef<GuiSession>>,
) -> impl FnMut(&watcher::Event<K>) {
    let mut seen: HashMap<AccountKey, Usability> = HashMap::new();
    let wake_all = move |key: &AccountKey| {
        for session in index.sessions(key) {
            // The receiver only goes away when the operator stops.
            let _ = wake.send(session);
        }
    };
    move |event| match event {
        watcher::Event::Delete(account) => {
            let key = account.key();
            seen.remove(&key);
            // A deleted account's credentials go at once, and its GuiSessions learn why.
            lightsail.forget_account(&edge_key(&key));
            wake_all(&key);
        }
        watcher::Event::Apply(account) | watcher::Event::InitApply(account) => {
            let status = account.account_status();
            let usability: Usability = (
                account.meta().generation,
                status.and_then(|s| s.observed_generation),
                status
                    .and_then(|s| s.conditions.as_ref())
                    .into_iter()
                    .flatten()
                    .map(|c| (c.type_.clone(), c.status.clone()))
                    .collect(),
            );
            let key = account.key();
            if seen.get(&key) != Some(&usability) {
                seen.insert(key.clone(), usability);
                wake_all(&key);
            }
        }
        watcher::Event::Init | watcher::Event::InitDone => {}
    }
}

pub(super) fn receiver_stream<T: Send + 'static>(
    rx: mpsc::UnboundedReceiver<T>,
) -> futures::stream::BoxStream<'static, T> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) }).boxed()
}

impl AccountWatches {
    pub(super) fn new(ctx: &Arc<Context>, args: &RunArgs, scope: &WatchScope) -> AccountWatches {
        let client = ctx.client.clone();
        let index = Arc::new(match ctx.own_identity {
            NamespaceSelector::Matching(_) => AccountIndex::tracking_own_identity(),
            _ => AccountIndex::default(),
        });
        let (wake_tx, wake_rx) = mpsc::unbounded_channel();
        let (count_tx, count_rx) = mpsc::unbounded_channel::<AccountKey>();
        let account_ctx = Arc::new(account_context(ctx, args, index.clone(), wake_tx));
        let (namespaced, namespaced_writer) = reflector::store();
        let (cluster, cluster_writer) = reflector::store();
        let (namespaces, namespaces_writer) = reflector::store();
        ctx.set_accounts(Some(AccountStores {
            namespaced: namespaced.clone(),
            cluster: cluster.clone(),
            namespaces: namespaces.clone(),
        }));
        let (namespaced_counts, cluster_counts) = recounts_by_kind(count_rx);
        let namespaced_stream = account_triggers(
            scope.watch::<LightsailAccount>(&client, watcher::Config::default()),
            namespaced_writer,
            account_events(
                ctx.lightsail.clone(),
                index.clone(),
                account_ctx.wake.clone(),
            ),
        );
        let cluster_stream = account_triggers(
            watcher(
                Api::<ClusterLightsailAccount>::all(client.clone()),
                watcher::Config::default(),
            ),
            cluster_writer,
            account_events(
                ctx.lightsail.clone(),
                index.clone(),
                account_ctx.wake.clone(),
            ),
        );
        let namespaces_stream = namespace_wakes(
            &client,
            namespaces_writer,
            index.clone(),
            account_ctx.wake.clone(),
        );
        let namespaced_controller = Controller::for_stream(namespaced_stream, namespaced)
            .reconcile_on(namespaced_counts)
            .run(
                reconcile_account::<LightsailAccount>,
                account_error_policy,
                account_ctx.clone(),
            )
            .for_each(|_| futures::future::ready(()));
        let cluster_controller = Controller::for_stream(cluster_stream, cluster)
            .reconcile_on(cluster_counts)
            .run(
                reconcile_account::<ClusterLightsailAccount>,
                account_error_policy,
                account_ctx,
            )
            .for_each(|_| futures::future::ready(()));
        let controllers: futures::future::BoxFuture<'static, ()> = Box::pin(async move {
            tokio::join!(namespaced_controller, cluster_controller, namespaces_stream);
        });
        AccountWatches {
            index,
            counts: count_tx,
            wakes: receiver_stream(wake_rx),
            controllers,
        }
    }
}

/// The account controllers' context, from the GuiSession controller's and the flags.
fn account_context(
    ctx: &Context,
    args: &RunArgs,
    index: Arc<AccountIndex>,
    wake_tx: mpsc::UnboundedSender<ObjectRef<GuiSession>>,
) -> AccountContext {
    AccountContext {
        client: ctx.client.clone(),
        lightsail: ctx.lightsail.clone(),
        index,
        wake: wake_tx,
        static_keys: args.account_static_keys,
        // One writer per account status: the default instance (shards only load credentials).
        write_status: args.shard().is_none(),
        stalled_retry: args.stalled_retry,
        recheck: args.account_recheck,
        cluster_id: args.cluster_id.clone().unwrap_or_default(),
        namespaced_roles: args
            .namespaced_account_roles
            .iter()
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect(),
    }
}

/// Recounts go to the controller of the account's kind: one stream of namespaced and one of
/// cluster account references.
fn recounts_by_kind(
    mut count_rx: mpsc::UnboundedReceiver<AccountKey>,
) -> (
    futures::stream::BoxStream<'static, ObjectRef<LightsailAccount>>,
    futures::stream::BoxStream<'static, ObjectRef<ClusterLightsailAccount>>,
) {
    let (ns_tx, ns_rx) = mpsc::unbounded_channel();
    let (cl_tx, cl_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(key) = count_rx.recv().await {
            let sent = match &key.namespace {
                Some(ns) => ns_tx.send(ObjectRef::new(&key.name).within(ns)).is_ok(),
                None => cl_tx.send(ObjectRef::new(&key.name)).is_ok(),
            };
            if !sent {
                break;
            }
        }
    });
    (receiver_stream(ns_rx), receiver_stream(cl_rx))
}

/// A namespace's labels decide which cluster accounts it may use: when they change, its
/// GuiSessions that name a cluster account decide again.
fn namespace_wakes(
    client: &kube::Client,
    writer: reflector::store::Writer<Namespace>,
    index: Arc<AccountIndex>,
    wake: mpsc::UnboundedSender<ObjectRef<GuiSession>>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    watcher(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .applied_objects()
    .predicate_filter(predicates::labels, Default::default())
    .for_each(move |ns| {
        if let Ok(ns) = ns {
            for session in index.label_dependent_sessions_in(&ns.name_any()) {
                let _ = wake.send(session);
            }
        }
        futures::future::ready(())
    })
}

/// Before the cache: the account index and the state gauge take what they need from the full
/// object.
pub(super) fn index_and_count(
    index: Arc<AccountIndex>,
    counts: mpsc::UnboundedSender<AccountKey>,
    health: Arc<Health>,
) -> impl FnMut(&watcher::Event<GuiSession>) {
    move |event| {
        accounts_named(&index, &counts, event);
        if matches!(event, watcher::Event::Apply(_) | watcher::Event::Delete(_)) {
            // Own-identity sessions change the index without changing a count.
            health.metrics.set_tracked("account_index", index.indexed());
        }
        health.states.observe(event);
    }
}

/// After the cache: what is kept per object goes with the object, and after a relist (which
/// reports no deletes for objects deleted during a watch gap) with every object the cache no
/// longer has.
pub(super) fn forget_what_the_cache_lost(
    ctx: Arc<Context>,
    index: Arc<AccountIndex>,
    counts: mpsc::UnboundedSender<AccountKey>,
    reader: reflector::Store<CachedGuiSession>,
) -> impl FnMut(&watcher::Event<CachedGuiSession>) {
    move |event| match event {
        watcher::Event::Delete(obj) => ctx.forget_object(obj),
        watcher::Event::InitDone => {
            ctx.retain_live();
            let gone = index.retain(|session| {
                let mut cached = ObjectRef::<CachedGuiSession>::new(&session.name);
                cached.namespace = session.namespace.clone();
                reader.get(&cached).is_some()
            });
            for account in gone {
                let _ = counts.send(account);
            }
            ctx.metrics.set_tracked("account_index", index.indexed());
        }
        _ => {}
    }
}

/// What triggers an account's reconcile: its changes of generation, after the cache and the
/// wake-ups of its GuiSessions (`on_event`) have seen every event.
fn account_triggers<K: AccountObject + Send + Sync + 'static>(
    watch: impl futures::Stream<Item = watcher::Result<watcher::Event<K>>> + Send,
    writer: reflector::store::Writer<K>,
    on_event: impl FnMut(&watcher::Event<K>) + Send,
) -> impl futures::Stream<Item = watcher::Result<K>> + Send {
    watch
        .default_backoff()
        .reflect(writer)
        .inspect_ok(on_event)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default())
}
