//! Wires the operator together: logging, clients, the HTTP server, leader election and the
//! controller loop.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, bail};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ListParams};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{Controller, WatchStreamExt, controller, predicates, watcher};
use kube::{Client, ResourceExt};
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::cli::{LogFormat, RunArgs};
use crate::controller::{Context, FIELD_MANAGER, RetryPolicy, error_policy, reconcile};
use crate::crd::GuiSession;
use crate::decision::Settings;
use crate::lightsail::{Lightsail, RateLimit};
use crate::metrics::Metrics;
use crate::status::state_label;

/// Sets up logging. Nothing the operator logs carries credentials or session URLs: it never
/// asks Lightsail for access details, and AWS and Kubernetes client internals log below `info`.
pub fn init_logging(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .with_context(|| format!("invalid log filter {filter:?}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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
    store: Mutex<Option<Store<GuiSession>>>,
    metrics: Arc<Metrics>,
}

impl Health {
    fn set_leading(&self, leading: bool) {
        self.leader.store(leading, Ordering::SeqCst);
        self.metrics.set_leader(leading);
        if !leading {
            self.synced.store(false, Ordering::SeqCst);
            *self.store.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }
}

async fn metrics_handler(State(health): State<Arc<Health>>) -> String {
    let mut counts: HashMap<&'static str, i64> = HashMap::new();
    if let Some(store) = health
        .store
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
    {
        for obj in store.state() {
            *counts.entry(state_label(obj.status.as_ref())).or_default() += 1;
        }
    }
    health.metrics.set_session_counts(&counts);
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
    let client = Client::try_default()
        .await
        .context("cannot configure the Kubernetes client (KUBECONFIG or in-cluster config)")?;
    let api: Api<GuiSession> = match &args.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    // Fail fast, with the reason, on what would otherwise be an endless watch retry: an
    // unreachable apiserver, a missing CRD, missing RBAC or a bad label selector.
    let mut probe = ListParams::default().limit(1);
    if let Some(sel) = &args.selector {
        probe = probe.labels(sel);
    }
    api.list_metadata(&probe).await.with_context(|| {
        "cannot list GuiSessions: is the CRD installed (`lightsail-gui-operator crd | kubectl apply -f -`), \
         may this identity list them, and is --selector valid?"
    })?;

    let metrics = Arc::new(Metrics::default());
    let rate = RateLimit {
        per_second: NonZeroU32::new(args.rate_limit).context("--rate-limit must be > 0")?,
        burst: NonZeroU32::new(args.rate_burst).context("--rate-burst must be > 0")?,
    };
    if args.start_settle <= args.lightsail_timeout + std::time::Duration::from_secs(1) {
        bail!(
            "--start-settle ({:?}) must be longer than --lightsail-timeout ({:?}) plus a second: \
             a start must be able to finish inside the settle window",
            args.start_settle,
            args.lightsail_timeout
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
    };
    let retry = RetryPolicy {
        initial: args.retry_initial,
        max: args.retry_max,
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        lightsail,
        reporter,
        metrics.clone(),
        settings,
        retry,
        crate::leadership::LeaderGate::always(),
        args.lightsail_timeout,
    ));
    let health = Arc::new(Health {
        electing: args.leader_elect,
        leader: AtomicBool::new(false),
        synced: AtomicBool::new(false),
        store: Mutex::new(None),
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

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = {
        let rx = stop_rx.clone();
        move || {
            let mut rx = rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        }
    };

    if args.leader_elect {
        let namespace = args
            .lease_namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_owned());
        let duration = args.lease_duration.as_secs().max(2);
        let manager = LeaseManagerBuilder::new(client.clone(), &args.lease_name)
            .with_namespace(&namespace)
            .with_identity(&identity)
            .with_duration(duration)
            .with_grace((duration / 3).max(1))
            .with_field_manager(format!("{FIELD_MANAGER}-lease"))
            .build()
            .await
            .with_context(|| format!("cannot set up the Lease {namespace}/{}", args.lease_name))?;
        let (mut leading, lease_task) = manager.watch().await;
        info!(
            identity,
            lease = args.lease_name,
            namespace,
            "waiting to become leader"
        );
        loop {
            tokio::select! {
                _ = stopped() => break,
                r = leading.wait_for(|l| *l) => if r.is_err() { bail!("leader election stopped") },
            }
            info!(identity, "became leader: reconciling");
            health.set_leading(true);
            // Dropping the controller future on a lost lease stops every reconcile at once,
            // mid-call if need be; the start marker makes that safe (see controller::Step::start).
            tokio::select! {
                _ = stopped() => { health.set_leading(false); break }
                _ = run_controller(api.clone(), &args, ctx.clone(), health.clone()) => {
                    warn!("controller stopped unexpectedly");
                }
                _ = leading.wait_for(|l| !*l) => warn!(identity, "lost leadership: stopped reconciling"),
            }
            health.set_leading(false);
        }
        // Closing the channel makes the lease task release the Lease, so a standby takes over
        // at once instead of after the lease duration.
        drop(leading);
        match lease_task.await {
            Ok(Ok(_)) => info!("released the leader Lease"),
            Ok(Err(e)) => warn!(error = %e, "could not release the leader Lease"),
            Err(e) => warn!(error = %e, "lease task failed"),
        }
    } else {
        health.set_leading(true);
        tokio::select! {
            _ = stopped() => {}
            _ = run_controller(api, &args, ctx, health.clone()) => warn!("controller stopped unexpectedly"),
        }
    }
    server.abort();
    info!("stopped");
    Ok(())
}

async fn run_controller(
    api: Api<GuiSession>,
    args: &RunArgs,
    ctx: Arc<Context>,
    health: Arc<Health>,
) {
    let mut config = watcher::Config::default();
    if let Some(sel) = &args.selector {
        config = config.labels(sel);
    }
    let (reader, writer) = reflector::store();
    *health.store.lock().unwrap_or_else(|p| p.into_inner()) = Some(reader.clone());
    // managedFields and kubectl's last-applied copy are dropped from the cache (they are most
    // of an object's size). Only generation changes (spec edits, deletion) trigger a reconcile:
    // the operator's own status writes do not, and timers come from the requeues it asks for.
    let stream = watcher(api, config)
        .default_backoff()
        .modify(|obj| {
            obj.managed_fields_mut().clear();
            // `kubectl apply` (client-side) repeats the whole object in this annotation.
            obj.annotations_mut()
                .remove("kubectl.kubernetes.io/last-applied-configuration");
        })
        .reflect(writer)
        .applied_objects()
        .inspect_ok({
            let ctx = ctx.clone();
            move |obj| ctx.watch_caught_up(obj)
        })
        .predicate_filter(predicates::generation, Default::default());
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
    let controller = Controller::for_stream(stream, reader)
        .with_config(controller::Config::default().concurrency(args.concurrency))
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()));
    tokio::join!(synced, controller);
}
