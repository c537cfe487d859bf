//! Wires the operator together: logging, clients, the HTTP server, leader election and the
//! controller loop.

pub mod cli;
mod crd_check;
mod http;
mod logging;
mod session_states;
mod shutdown;
pub mod watch_scope;
mod watches;

pub use logging::init_logging;
pub use watches::metadata_of;

use http::{Health, metrics_handler, readyz};
use session_states::SessionStates;
use shutdown::Shutdown;
use watches::{
    AccountWatches, Generations, forget_what_the_cache_lost, index_and_count, trigger_of,
};

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::Router;
use axum::routing::get;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, ListParams};
use kube::runtime::events::Reporter;
use kube::runtime::reflector;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, WatchStreamExt, controller, watcher};
use tracing::{info, warn};

use crate::account::policy::NamespaceSelector;
use crate::aws::lightsail::Lightsail;
use crate::aws::model::RateLimit;
use crate::guisession::controller::{
    CachedGuiSession, Context, RetryPolicy, error_policy, reconcile,
};
use crate::guisession::policy::{Settings, start_budget};
use crate::guisession::types::GuiSession;
use crate::kubernetes::{FIELD_MANAGER, MANAGED_BY_LABEL};
use crate::leadership::{Election, ElectionConfig, LeaderGate, LeaseTiming, api_retry_backoff};
use crate::metrics::Metrics;
use crate::process::cli::RunArgs;
use crate::process::watch_scope::WatchScope;

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
    let cluster_id = preflight(&client, &args, &scope).await?;
    info!(
        cluster_id,
        "cluster id (part of every LightsailAccount's external id)"
    );
    let args = RunArgs {
        cluster_id: Some(cluster_id),
        ..args
    };

    let metrics = Arc::new(Metrics::default());
    let lightsail = Arc::new(lightsail_edge(&args, metrics.clone()).await?);
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let shutdown = Shutdown::on_signals();
    let election = if args.leader_elect {
        Some(start_election(&kube_config, &client, &args, &identity).await?)
    } else {
        None
    };
    let gate = election
        .as_ref()
        .map_or_else(LeaderGate::always, Election::gate);
    let ctx = Arc::new(context(
        &args,
        client,
        lightsail,
        metrics.clone(),
        &identity,
        gate.clone(),
    ));
    let health = Arc::new(Health {
        electing: args.leader_elect,
        leader: AtomicBool::new(false),
        synced: AtomicBool::new(false),
        states: SessionStates::default(),
        metrics,
        ctx: ctx.clone(),
    });
    let server = serve_http(&args, health.clone()).await?;

    if let Some(election) = election {
        info!(identity, "waiting to become leader");
        lead_until_shutdown(&gate, &scope, &args, &ctx, &health, &shutdown, &identity).await;
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

/// Fails fast, with the reason, on what would otherwise be an endless watch retry or an endless
/// run of failed status writes (an unreachable apiserver, a missing or outdated CRD, missing
/// RBAC or a bad label selector), and returns the cluster id.
async fn preflight(client: &Client, args: &RunArgs, scope: &WatchScope) -> anyhow::Result<String> {
    args.check_shards().map_err(anyhow::Error::msg)?;
    let mut probe = ListParams::default().limit(1);
    if let Some(sel) = args.watch_selector() {
        probe = probe.labels(&sel);
    }
    for api in scope.apis::<GuiSession>(client) {
        api.list_metadata(&probe).await.with_context(|| {
            "cannot list GuiSessions: is the CRD installed (`lightsail-gui-operator crd | kubectl apply -f -`), \
             may this identity list them (in every namespace of --namespace), and is --selector valid?"
        })?;
    }
    crd_check::check_installed_crds(client).await?;
    Ok(match &args.cluster_id {
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
    })
}

/// The Lightsail edge as the flags set it up, once they are known to leave a start time to
/// finish inside the settle window.
async fn lightsail_edge(args: &RunArgs, metrics: Arc<Metrics>) -> anyhow::Result<Lightsail> {
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
    let lightsail = Lightsail::load(args.region.clone(), rate, metrics)
        .await
        .with_call_timeout(args.lightsail_timeout);
    match lightsail.default_region() {
        Some(r) => info!(region = r, "default AWS Region"),
        None => warn!(
            "no default AWS Region (--region / AWS_REGION): GuiSessions without spec.region will stall"
        ),
    }
    Ok(lightsail)
}

/// The GuiSession controller's context: the policy's settings from the flags, and its edges.
fn context(
    args: &RunArgs,
    client: Client,
    lightsail: Arc<Lightsail>,
    metrics: Arc<Metrics>,
    identity: &str,
    gate: LeaderGate,
) -> Context {
    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance: Some(identity.to_owned()),
    };
    let settings = Settings {
        min_session_age: args.min_session_age,
        stalled_retry: args.stalled_retry,
        follow_backoff_initial: args.poll_initial,
        follow_backoff_max: args.poll_max,
        computer_recheck_initial: args.computer_recheck_initial,
        computer_recheck_max: args.computer_recheck_max,
        start_settle: args.start_settle,
        default_region: lightsail.default_region().map(str::to_owned),
        identity: identity.to_owned(),
        access_secrets: args.access_secrets,
    };
    let retry = RetryPolicy {
        initial: args.retry_initial,
        max: args.retry_max,
    };
    Context::new(
        client,
        lightsail,
        reporter,
        metrics,
        settings,
        retry,
        gate,
        args.lightsail_timeout,
        args.max_clock_skew,
    )
    .with_own_identity(
        args.own_identity_namespaces
            .clone()
            .unwrap_or(NamespaceSelector::All),
    )
}

/// Serves /metrics, /healthz and /readyz on `--http-addr` until aborted.
async fn serve_http(
    args: &RunArgs,
    health: Arc<Health>,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.http_addr))?;
    info!(address = %listener.local_addr()?, "serving /metrics, /healthz and /readyz");
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(health);
    Ok(tokio::spawn(
        async move { axum::serve(listener, app).await },
    ))
}

/// Reconciles whenever this replica leads, until shutdown.
async fn lead_until_shutdown(
    gate: &LeaderGate,
    scope: &WatchScope,
    args: &RunArgs,
    ctx: &Arc<Context>,
    health: &Arc<Health>,
    shutdown: &Shutdown,
    identity: &str,
) {
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
        // the fence makes that safe, see guisession/controller/effects.rs) before the
        // controller can start anything.
        let outcome = tokio::select! {
            biased;
            _ = gate.lost() => Outcome::Lost,
            outcome = reconcile_until_shutdown(scope, args, ctx.clone(), health.clone(), shutdown) => outcome,
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
        .inspect_ok(index_and_count(
            accounts.index.clone(),
            accounts.counts.clone(),
            health.clone(),
        ))
        .map_ok(metadata_of)
        .reflect(writer)
        // After the cache: what is kept per object goes with the object, and after a relist
        // (which reports no deletes for objects deleted during a watch gap) with every object
        // the cache no longer has.
        .inspect_ok(forget_what_the_cache_lost(
            ctx.clone(),
            accounts.index.clone(),
            accounts.counts.clone(),
            reader.clone(),
        ))
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

#[cfg(test)]
mod tests;
