//! Wires the operator together: logging, clients, the HTTP server, leader election and the
//! controller loop.

pub mod cli;
pub mod watch_scope;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams};
use kube::core::PartialObjectMeta;
use kube::runtime::events::Reporter;
use kube::runtime::reflector;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, WatchStreamExt, controller, predicates, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::mpsc;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::account::controller::{
    AccountContext, AccountIndex, AccountObject, edge_key, error_policy as account_error_policy,
    reconcile as reconcile_account,
};
use crate::account::types::{AccountKey, ClusterLightsailAccount, LightsailAccount};
use crate::aws::lightsail::Lightsail;
use crate::aws::model::RateLimit;
use crate::guisession::conditions::state_label;
use crate::guisession::controller::{
    AccountStores, CachedGuiSession, Context, FIELD_MANAGER, MANAGED_BY_LABEL, RetryPolicy,
    error_policy, reconcile,
};
use crate::guisession::policy::{SKIP_STOP_ANNOTATION, Settings, start_budget};
use crate::guisession::types::GuiSession;
use crate::leadership::{Election, ElectionConfig, LeaderGate, LeaseTiming, api_retry_backoff};
use crate::metrics::Metrics;
use crate::process::cli::{LogFormat, NamespaceSelector, RunArgs};
use crate::process::watch_scope::WatchScope;

/// Sets up logging. Nothing the operator logs carries credentials or session URLs: the URLs
/// live in a type that redacts itself when formatted and are only ever put into the access
/// Secret, and AWS and Kubernetes client internals log below `info`.
pub fn init_logging(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .with_context(|| format!("invalid log filter {filter:?}"))?;
    // Colour only on a terminal: escape codes in a file or a pipe are noise to every reader.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

/// What /readyz and /metrics need to know.
struct Health {
    electing: bool,
    leader: AtomicBool,
    synced: AtomicBool,
    states: SessionStates,
    metrics: Arc<Metrics>,
}

impl Health {
    fn set_leading(&self, leading: bool) {
        self.leader.store(leading, Ordering::SeqCst);
        self.metrics.set_leader(leading);
        if !leading {
            self.synced.store(false, Ordering::SeqCst);
            self.states.clear();
        }
    }
}

/// The state of every watched GuiSession, for the sessions gauge. The cache holds metadata only,
/// so the watch's full objects leave their state label here: 24 bytes per object, keyed by a
/// 64-bit hash of namespace and name (a collision among a cluster's objects is negligible, and
/// would only miscount the gauge).
#[derive(Default)]
struct SessionStates {
    by_object: Mutex<HashMap<u64, &'static str>>,
    /// A relist in progress: it replaces `by_object` once complete, so that the gauge does not
    /// dip while it runs (as kube's reflector store does with the cache).
    relisting: Mutex<Option<HashMap<u64, &'static str>>>,
}

impl SessionStates {
    fn key(obj: &GuiSession) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        obj.metadata.namespace.hash(&mut h);
        obj.metadata.name.hash(&mut h);
        h.finish()
    }

    fn observe(&self, event: &watcher::Event<GuiSession>) {
        let mut relisting = self.relisting.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            watcher::Event::Init => *relisting = Some(HashMap::new()),
            watcher::Event::InitApply(obj) => {
                if let Some(list) = relisting.as_mut() {
                    list.insert(Self::key(obj), state_label(obj.status.as_ref()));
                }
            }
            watcher::Event::InitDone => {
                if let Some(list) = relisting.take() {
                    *self.by_object.lock().unwrap_or_else(|p| p.into_inner()) = list;
                }
            }
            watcher::Event::Apply(obj) => {
                self.by_object
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(Self::key(obj), state_label(obj.status.as_ref()));
            }
            watcher::Event::Delete(obj) => {
                self.by_object
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&Self::key(obj));
            }
        }
    }

    fn counts(&self) -> HashMap<&'static str, i64> {
        let mut counts: HashMap<&'static str, i64> = HashMap::new();
        for state in self
            .by_object
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            *counts.entry(state).or_default() += 1;
        }
        counts
    }

    fn clear(&self) {
        self.by_object
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

async fn metrics_handler(State(health): State<Arc<Health>>) -> String {
    health.metrics.set_session_counts(&health.states.counts());
    health.metrics.render()
}

async fn readyz(State(health): State<Arc<Health>>) -> (StatusCode, &'static str) {
    let leader = health.leader.load(Ordering::SeqCst);
    let synced = health.synced.load(Ordering::SeqCst);
    match (health.electing, leader, synced) {
        (_, true, true) => (StatusCode::OK, "ready: leader, caches synced\n"),
        (true, false, _) => (StatusCode::OK, "ready: standby\n"),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: caches not synced\n",
        ),
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        _ = term => info!("SIGTERM received, shutting down"),
        _ = tokio::signal::ctrl_c() => info!("SIGINT received, shutting down"),
    }
}

/// Whether SIGTERM or SIGINT has arrived.
#[derive(Clone)]
struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    fn on_signals() -> Self {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = tx.send(true);
        });
        Shutdown(rx)
    }

    fn is_requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown is requested (`Send + Sync + 'static`, as kube's Controller wants
    /// its shutdown trigger).
    fn requested(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut rx = self.0.clone();
        async move {
            // An error means the signal task has gone, which it only does after sending.
            let _ = rx.wait_for(|requested| *requested).await;
        }
    }
}

/// How a stretch of reconciling ended.
enum Outcome {
    /// The leader gate closed.
    Lost,
    /// SIGTERM/SIGINT: the reconciles in flight have finished or the shutdown grace has passed.
    Stopped,
    /// The controller's stream ended by itself.
    Ended,
}

/// Longest wait for the Lease to be released on the way out: the Pod's termination grace period
/// must cover `--shutdown-grace` and this.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "lightsail-gui-operator".into());
    format!("{host}-{:08x}", rand::random::<u32>())
}

/// Runs the operator until SIGTERM/SIGINT.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let kube_config = kube::Config::infer()
        .await
        .context("cannot configure the Kubernetes client (KUBECONFIG or in-cluster config)")?;
    let client = Client::try_from(kube_config.clone())
        .context("cannot configure the Kubernetes client (KUBECONFIG or in-cluster config)")?;
    let scope = WatchScope::new(&args.namespaces());
    // Fail fast, with the reason, on what would otherwise be an endless watch retry: an
    // unreachable apiserver, a missing CRD, missing RBAC or a bad label selector.
    args.check_shards().map_err(anyhow::Error::msg)?;
    let mut probe = ListParams::default().limit(1);
    if let Some(sel) = args.watch_selector() {
        probe = probe.labels(&sel);
    }
    for api in scope.apis::<GuiSession>(&client) {
        api.list_metadata(&probe).await.with_context(|| {
            "cannot list GuiSessions: is the CRD installed (`lightsail-gui-operator crd | kubectl apply -f -`), \
             may this identity list them (in every namespace of --namespace), and is --selector valid?"
        })?;
    }
    let cluster_id = match &args.cluster_id {
        Some(id) => id.clone(),
        None => Api::<Namespace>::all(client.clone())
            .get("kube-system")
            .await
            .ok()
            .and_then(|ns| ns.metadata.uid)
            .context(
                "cannot read the uid of the Namespace kube-system, the default cluster id: set --cluster-id \
                 (chart value accounts.clusterId) or let this identity get that Namespace",
            )?,
    };
    info!(
        cluster_id,
        "cluster id (part of every LightsailAccount's external id)"
    );
    let args = RunArgs {
        cluster_id: Some(cluster_id),
        ..args
    };

    let metrics = Arc::new(Metrics::default());
    let rate = RateLimit {
        per_second: NonZeroU32::new(args.rate_limit).context("--rate-limit must be > 0")?,
        burst: NonZeroU32::new(args.rate_burst).context("--rate-burst must be > 0")?,
    };
    if start_budget(
        args.start_settle,
        args.lightsail_timeout,
        args.max_clock_skew,
    )
    .is_zero()
    {
        bail!(
            "--start-settle ({:?}) must be longer than --lightsail-timeout ({:?}) plus a second \
             plus --max-clock-skew ({:?}): a start must be able to finish inside the settle \
             window as every replica's clock sees it",
            args.start_settle,
            args.lightsail_timeout,
            args.max_clock_skew
        );
    }
    let lightsail = Arc::new(
        Lightsail::load(args.region.clone(), rate, metrics.clone())
            .await
            .with_call_timeout(args.lightsail_timeout),
    );
    match lightsail.default_region() {
        Some(r) => info!(region = r, "default AWS Region"),
        None => warn!(
            "no default AWS Region (--region / AWS_REGION): GuiSessions without spec.region will stall"
        ),
    }
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance: Some(identity.clone()),
    };
    let settings = Settings {
        min_session_age: args.min_session_age,
        stalled_retry: args.stalled_retry,
        follow_backoff_initial: args.poll_initial,
        follow_backoff_max: args.poll_max,
        start_settle: args.start_settle,
        default_region: lightsail.default_region().map(str::to_owned),
        identity: identity.clone(),
        access_secrets: args.access_secrets,
    };
    let retry = RetryPolicy {
        initial: args.retry_initial,
        max: args.retry_max,
    };
    let shutdown = Shutdown::on_signals();
    let election = if args.leader_elect {
        Some(start_election(&kube_config, &client, &args, &identity).await?)
    } else {
        None
    };
    let gate = election
        .as_ref()
        .map_or_else(LeaderGate::always, Election::gate);
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            lightsail,
            reporter,
            metrics.clone(),
            settings,
            retry,
            gate.clone(),
            args.lightsail_timeout,
            args.max_clock_skew,
        )
        .with_own_identity(
            args.own_identity_namespaces
                .clone()
                .unwrap_or(NamespaceSelector::All),
        ),
    );
    let health = Arc::new(Health {
        electing: args.leader_elect,
        leader: AtomicBool::new(false),
        synced: AtomicBool::new(false),
        states: SessionStates::default(),
        metrics: metrics.clone(),
    });

    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.http_addr))?;
    info!(address = %listener.local_addr()?, "serving /metrics, /healthz and /readyz");
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(health.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    if let Some(election) = election {
        info!(identity, "waiting to become leader");
        loop {
            tokio::select! {
                biased;
                _ = shutdown.requested() => break,
                _ = gate.acquired() => {}
            }
            info!(identity, "became leader: reconciling");
            health.set_leading(true);
            // The gate goes first and reads the clock on every poll: a process resumed after its
            // Lease ran out drops the controller (stopping every reconcile, mid-call if need be;
            // the start marker makes that safe, see controller::Step::start) before the
            // controller can start anything.
            let outcome = tokio::select! {
                biased;
                _ = gate.lost() => Outcome::Lost,
                outcome = reconcile_until_shutdown(&scope, &args, ctx.clone(), health.clone(), &shutdown) => outcome,
            };
            health.set_leading(false);
            match outcome {
                Outcome::Lost => warn!(
                    identity,
                    reason = gate.why_not(),
                    "lost leadership: stopped reconciling"
                ),
                Outcome::Stopped => break,
                Outcome::Ended => warn!("controller stopped unexpectedly"),
            }
        }
        match tokio::time::timeout(RELEASE_TIMEOUT, election.release()).await {
            Ok(Ok(())) => info!("released the leader Lease"),
            Ok(Err(e)) => warn!(error = %format!("{e:#}"), "could not release the leader Lease"),
            Err(_) => warn!(
                timeout = ?RELEASE_TIMEOUT,
                "could not release the leader Lease in time: a standby takes over once it expires"
            ),
        }
    } else {
        health.set_leading(true);
        if let Outcome::Ended =
            reconcile_until_shutdown(&scope, &args, ctx, health.clone(), &shutdown).await
        {
            warn!("controller stopped unexpectedly");
        }
    }
    server.abort();
    info!("stopped");
    Ok(())
}

/// Competes for the Lease named by the flags, through a client of its own whose calls time out
/// within the grace period (see [`LeaseTiming::request_timeout`]).
async fn start_election(
    kube_config: &kube::Config,
    client: &Client,
    args: &RunArgs,
    identity: &str,
) -> anyhow::Result<Election> {
    let namespace = args
        .lease_namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let timing = LeaseTiming::new(args.lease_duration);
    let mut lease_config = kube_config.clone();
    lease_config.connect_timeout = Some(timing.request_timeout());
    lease_config.read_timeout = Some(timing.request_timeout());
    lease_config.write_timeout = Some(timing.request_timeout());
    let lease_client = Client::try_from(lease_config)
        .context("cannot configure the Kubernetes client of the Lease")?;
    let lease_name = args.lease_name();
    let config = ElectionConfig {
        lease_name: lease_name.clone(),
        namespace: namespace.clone(),
        identity: identity.to_owned(),
        timing,
    };
    info!(
        identity,
        lease = lease_name,
        namespace,
        field_manager = config.field_manager(),
        "competing for the leader Lease"
    );
    Election::start(lease_client, config)
        .await
        .with_context(|| format!("cannot set up the Lease {namespace}/{lease_name}"))
}

/// Runs the controller until shutdown is requested; then starts no new reconciles but lets those
/// in flight finish, so that they record what they started, for at most `--shutdown-grace`.
async fn reconcile_until_shutdown(
    scope: &WatchScope,
    args: &RunArgs,
    ctx: Arc<Context>,
    health: Arc<Health>,
    shutdown: &Shutdown,
) -> Outcome {
    let controller = run_controller(scope, args, ctx.clone(), health, shutdown.requested());
    tokio::pin!(controller);
    tokio::select! {
        biased;
        _ = shutdown.requested() => ctx.drain(),
        _ = &mut controller => {
            // It may have drained at once on the same signal.
            return if shutdown.is_requested() { Outcome::Stopped } else { Outcome::Ended };
        }
    }
    info!(
        grace = ?args.shutdown_grace,
        "shutting down: no new reconciles, waiting for running ones to finish"
    );
    match tokio::time::timeout(args.shutdown_grace, controller).await {
        Ok(()) => info!("running reconciles finished"),
        Err(_) => warn!(
            grace = ?args.shutdown_grace,
            "shutdown grace elapsed: abandoning running reconciles (their start markers let the \
             next leader adopt what they started)"
        ),
    }
    Outcome::Stopped
}

async fn run_controller(
    scope: &WatchScope,
    args: &RunArgs,
    ctx: Arc<Context>,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let mut config = watcher::Config::default();
    if let Some(sel) = args.watch_selector() {
        config = config.labels(&sel);
    }
    let (reader, writer) = reflector::store::<CachedGuiSession>();
    ctx.set_live(Some(reader.clone()));
    let accounts = AccountWatches::new(&ctx, args, scope);
    // The watch delivers full objects: the account index and the state gauge take what they need
    // from them, and only their metadata is cached (every reconcile reads the object). Only
    // generation changes (spec edits, deletion) trigger a reconcile: the operator's own status
    // writes do not, and timers come from the requeues it asks for.
    let stream = scope
        .watch::<GuiSession>(&ctx.client, config)
        .inspect_ok({
            let index = accounts.index.clone();
            let counts = accounts.counts.clone();
            let health = health.clone();
            move |event| {
                accounts_named(&index, &counts, event);
                if matches!(event, watcher::Event::Apply(_) | watcher::Event::Delete(_)) {
                    // Own-identity sessions change the index without changing a count.
                    health.metrics.set_tracked("account_index", index.indexed());
                }
                health.states.observe(event);
            }
        })
        .map_ok(metadata_of)
        .reflect(writer)
        // After the cache: what is kept per object goes with the object, and after a relist
        // (which reports no deletes for objects deleted during a watch gap) with every object
        // the cache no longer has.
        .inspect_ok({
            let ctx = ctx.clone();
            let index = accounts.index.clone();
            let counts = accounts.counts.clone();
            let reader = reader.clone();
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
        })
        .try_filter({
            let mut generations = Generations::default();
            move |event| futures::future::ready(generations.is_news(event))
        })
        .applied_objects()
        .map_ok(trigger_of);
    let synced = {
        let reader = reader.clone();
        let health = health.clone();
        async move {
            if reader.wait_until_ready().await.is_ok() {
                health.synced.store(true, Ordering::SeqCst);
                info!("GuiSession cache synced");
            }
        }
    };
    // The Controller backs off its trigger stream after watch errors (kube's DefaultBackoff
    // unless told otherwise, so a backoff on the stream itself would only add to it): retry
    // within seconds, not at the default's 30 s cap, to be back soon after an apiserver outage.
    let mut controller =
        Controller::for_stream(stream, reader).reconcile_on(accounts.wakes.map(|r| {
            let cached = ObjectRef::<CachedGuiSession>::new(&r.name);
            match &r.namespace {
                Some(ns) => cached.within(ns),
                None => cached,
            }
        }));
    if args.access_secrets {
        // A deleted or edited access Secret is written again at once. Only the operator's own
        // Secrets are watched (by label), never every Secret in the cluster.
        let secrets = scope
            .watch::<Secret>(
                &ctx.client,
                watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={FIELD_MANAGER}")),
            )
            .touched_objects();
        controller = controller.owns_stream(secrets);
    }
    let controller = controller
        .trigger_backoff(api_retry_backoff())
        .with_config(controller::Config::default().concurrency(args.concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()));
    // The account controllers serve the GuiSession controller: they stop when it has stopped
    // (after its graceful shutdown), never on their own.
    tokio::select! {
        _ = async { tokio::join!(synced, controller) } => {}
        _ = accounts.controllers => {}
    }
    ctx.set_accounts(None);
    ctx.set_live(None);
}

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
struct Generations {
    /// The generation, doubled, plus one when the skip-stop annotation is `true`.
    by_uid: HashMap<u128, i64>,
    /// A relist in progress: it replaces `by_uid` once complete.
    relisting: Option<HashMap<u128, i64>>,
}

impl Generations {
    fn key(obj: &CachedGuiSession) -> Option<(u128, i64)> {
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
    fn is_news(&mut self, event: &watcher::Event<CachedGuiSession>) -> bool {
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
fn trigger_of(obj: CachedGuiSession) -> CachedGuiSession {
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
fn accounts_named(
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
struct AccountWatches {
    index: Arc<AccountIndex>,
    /// Accounts whose GuiSession count changed.
    counts: mpsc::UnboundedSender<AccountKey>,
    /// GuiSessions to reconcile because their account changed.
    wakes: futures::stream::BoxStream<'static, ObjectRef<GuiSession>>,
    controllers: futures::future::BoxFuture<'static, ()>,
}

/// What a GuiSession judges an account by: its generation, the generation its status is for,
/// and its conditions' statuses.
type Usability = (Option<i64>, Option<i64>, Vec<(String, String)>);

/// Follows an account watch, after its cache is updated: wakes the account's GuiSessions when
/// what they judge it by changes, and forgets a deleted account's credentials. A wake sent
/// straight after the account's status write could reach a GuiSession before the cache holds
/// that status; it would then wait for a change that had already happened. At the start of a
/// term every account is news, which wakes the GuiSessions judged from an empty cache.
fn account_events<K: AccountObject>(
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

fn receiver_stream<T: Send + 'static>(
    rx: mpsc::UnboundedReceiver<T>,
) -> futures::stream::BoxStream<'static, T> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) }).boxed()
}

impl AccountWatches {
    fn new(ctx: &Arc<Context>, args: &RunArgs, scope: &WatchScope) -> AccountWatches {
        let client = ctx.client.clone();
        let index = Arc::new(match ctx.own_identity {
            NamespaceSelector::Matching(_) => AccountIndex::tracking_own_identity(),
            _ => AccountIndex::default(),
        });
        let (wake_tx, wake_rx) = mpsc::unbounded_channel();
        let (count_tx, count_rx) = mpsc::unbounded_channel::<AccountKey>();
        let account_ctx = Arc::new(AccountContext {
            client: client.clone(),
            lightsail: ctx.lightsail.clone(),
            index: index.clone(),
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
        });
        let (namespaced, namespaced_writer) = reflector::store();
        let (cluster, cluster_writer) = reflector::store();
        let (namespaces, namespaces_writer) = reflector::store();
        ctx.set_accounts(Some(AccountStores {
            namespaced: namespaced.clone(),
            cluster: cluster.clone(),
            namespaces: namespaces.clone(),
        }));
        // Recounts go to the controller of the account's kind.
        let (namespaced_counts, cluster_counts) = {
            let (ns_tx, ns_rx) = mpsc::unbounded_channel();
            let (cl_tx, cl_rx) = mpsc::unbounded_channel();
            let mut count_rx = count_rx;
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
        };
        let namespaced_stream = scope
            .watch::<LightsailAccount>(&client, watcher::Config::default())
            .default_backoff()
            .reflect(namespaced_writer)
            .inspect_ok(account_events(
                ctx.lightsail.clone(),
                index.clone(),
                account_ctx.wake.clone(),
            ))
            .applied_objects()
            .predicate_filter(predicates::generation, Default::default());
        let cluster_stream = watcher(
            Api::<ClusterLightsailAccount>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(cluster_writer)
        .inspect_ok(account_events(
            ctx.lightsail.clone(),
            index.clone(),
            account_ctx.wake.clone(),
        ))
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
        // A namespace's labels decide which cluster accounts it may use: when they change, its
        // GuiSessions that name a cluster account decide again.
        let namespace_index = index.clone();
        let namespace_wake = account_ctx.wake.clone();
        let namespaces_stream = watcher(
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(namespaces_writer)
        .applied_objects()
        .predicate_filter(predicates::labels, Default::default())
        .for_each(move |ns| {
            if let Ok(ns) = ns {
                for session in namespace_index.label_dependent_sessions_in(&ns.name_any()) {
                    let _ = namespace_wake.send(session);
                }
            }
            futures::future::ready(())
        });
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

#[cfg(test)]
mod tests;
