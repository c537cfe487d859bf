//! The scenarios of issues #7 and #15, run against a real control plane, the Lightsail simulator
//! and the operator binary as a separate process: burst, steady state, renewal wave, a restart
//! with nothing due, the plain-client baselines (every status replayed, and two writes per
//! object), a throttled Lightsail, the burst served by two shards at once, and the burst on
//! computers that are stopped (issue #21).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use lightsail_gui_operator::guisession::types::{GuiSession, GuiSessionStatus};
use lightsail_gui_operator::process::cli::SHARD_LABEL;
use lightsail_sim::{
    CallReport, ComputerSpec, Faults, InstanceState, RateLimit, RunningSimulator, SimConfig,
    Simulator,
};
use serde_json::json;

use crate::probe;
use crate::report::*;
use crate::support::operator::{Operator, OperatorOptions, metric_value};
use crate::support::{ControlPlane, control_plane, install_crds, repo_root, test_namespace};
use crate::tracker::{ObjectLog, Tracker, object_name, operation_id, ready};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub n: usize,
    pub operator: PathBuf,
    pub concurrency: u16,
    pub create_concurrency: usize,
    /// Operator's client-side Lightsail limit (rate and burst) when Lightsail is not throttled.
    pub unthrottled_rate: u32,
    pub steady_window: Duration,
    /// Shortest maxSessionAge for the renewal wave (it is at least twice the burst's time).
    pub min_renew_window: Duration,
    pub throttled_n: usize,
    pub throttle_rps: f64,
    pub throttle_burst: u32,
    pub throttled_operator_rate: u32,
    pub throttled_operator_burst: u32,
    /// Only the burst, the steady state and a restart (right after it): the memory figures, for
    /// comparing builds quickly. Everything else in the report stays zero.
    pub memory_only: bool,
    /// How long the stopped-computer variant's computers stay `pending` after StartInstance.
    pub stopped_starting_time: Duration,
    /// Only the burst and the stopped-computer variant right after it (time to Ready and calls
    /// per new session, running against stopped). Everything else in the report stays zero.
    pub stopped_only: bool,
}

const SIM_PREFIX: &str = "vm-";
const THROTTLED_SIM_PREFIX: &str = "thr-";
const BASELINE_MANAGER: &str = "lgo-bench-baseline";
/// The two-shard burst's computers: new ones, since for an object without a status the operator
/// adopts a young session of its computer instead of starting one.
const SHARDS_SIM_PREFIX: &str = "shard-";
/// The stopped-computer variant's computers: `stopped` when their GuiSessions are created.
const STOPPED_SIM_PREFIX: &str = "off-";
/// The stopped-computer variant's quiet window after all Ready, at most.
const STOPPED_QUIET: Duration = Duration::from_secs(10);
/// The shard key of the two-shard burst's second operator.
const BLUE: &str = "blue";
/// How long before the first session is due the restart's quiet window ends at the latest.
const RESTART_MARGIN: jiff::SignedDuration = jiff::SignedDuration::from_secs(2);
const ATTEMPTS: u32 = 5;
/// How often the operators' RSS is sampled for the RSS-over-the-run plot.
const RSS_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) fn progress(msg: impl AsRef<str>) {
    eprintln!("bench: {}", msg.as_ref());
}

/// Runs everything on runtimes of its own: one for the benchmark's clients, and one for the
/// simulator so that a busy watch in this process does not delay Lightsail's answers.
pub fn run_blocking(opts: &Options) -> anyhow::Result<Report> {
    on_runtimes(|sim| run(opts, sim))
}

/// Runs `scenario` on a runtime of its own, giving it the handle of a second runtime for the
/// simulator; the simulator's runtime is shut down when the scenario ends.
pub(crate) fn on_runtimes<T, F>(
    scenario: impl FnOnce(tokio::runtime::Handle) -> F,
) -> anyhow::Result<T>
where
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    let sim_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("lightsail-sim")
        .enable_all()
        .build()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(scenario(sim_rt.handle().clone()));
    sim_rt.shutdown_background();
    result
}

/// A measurement point: CPU seconds of the processes involved and the simulator's counts.
struct Snapshot {
    at: Instant,
    operator_cpu: f64,
    apiserver_cpu: f64,
    etcd_cpu: f64,
    calls: CallReport,
}

struct Bench<'a> {
    opts: &'a Options,
    cp: &'static ControlPlane,
    sim: RunningSimulator,
    sim_url: String,
    ticks: f64,
    /// (etcd, kube-apiserver); unknown for a control plane this process did not find.
    control_plane_pids: Option<(u32, u32)>,
    /// Every operator process's RSS over the run.
    rss: probe::RssSampler,
}

impl Bench<'_> {
    fn snapshot(&self, operator_pid: Option<u32>) -> anyhow::Result<Snapshot> {
        Ok(Snapshot {
            at: Instant::now(),
            operator_cpu: match operator_pid {
                Some(pid) => probe::cpu_seconds(pid, self.ticks)?,
                None => 0.0,
            },
            apiserver_cpu: match self.control_plane_pids {
                Some((_, apiserver)) => probe::cpu_seconds(apiserver, self.ticks)?,
                None => 0.0,
            },
            etcd_cpu: match self.control_plane_pids {
                Some((etcd, _)) => probe::cpu_seconds(etcd, self.ticks)?,
                None => 0.0,
            },
            calls: self.sim.calls(),
        })
    }

    /// Starts the operator of scenario `process` on `namespace` with `args`, waits for its cache
    /// to sync, and samples its RSS from then on.
    fn operator(&self, process: &str, namespace: &str, args: &[(&str, String)]) -> Operator {
        let mut opts = OperatorOptions::new(namespace, &self.sim_url)
            .binary(&self.opts.operator)
            // The production default: info, not the debug lines the tests ask for.
            .log("info")
            .arg("--concurrency", &self.opts.concurrency.to_string());
        for (flag, value) in args {
            opts = opts.arg(flag, value);
        }
        tokio::task::block_in_place(|| {
            let mut op = Operator::start(self.cp, opts);
            op.wait_for_log("GuiSession cache synced", Duration::from_secs(120), |_| {
                Some(())
            });
            if let Some(pid) = op.pid() {
                self.rss.watch(process, pid);
            }
            op
        })
    }

    fn unthrottled_args(&self, min_session_age: &str) -> Vec<(&'static str, String)> {
        vec![
            ("--min-session-age", min_session_age.to_owned()),
            ("--rate-limit", self.opts.unthrottled_rate.to_string()),
            ("--rate-burst", self.opts.unthrottled_rate.to_string()),
        ]
    }

    /// A plain-client baseline in a namespace of its own: creates objects 0..statuses.len() the
    /// way the burst did and writes `statuses[i]` to object i, in order, by server-side apply,
    /// with as many writers as the operator reconciles at once. Done when every object's last
    /// status (a Ready one) is seen on the watch.
    async fn baseline(
        &self,
        client: &Client,
        what: &str,
        statuses: &[Vec<GuiSessionStatus>],
        retries: &AtomicU64,
    ) -> anyhow::Result<Baseline> {
        let opts = self.opts;
        let n = statuses.len();
        let writes: u64 = statuses.iter().map(|s| s.len() as u64).sum();
        let ns = test_namespace(client, &format!("bench-{}", what.replace(' ', "-"))).await;
        let api: Api<GuiSession> = Api::namespaced(client.clone(), &ns);
        let tracker = Tracker::start(api.clone(), n);
        progress(format!(
            "{what}: creating {n} GuiSessions and writing {writes} statuses with {} writers",
            opts.concurrency
        ));
        let write_retries = AtomicU64::new(0);
        let (tx, rx) = futures::channel::mpsc::unbounded::<usize>();
        let before = self.snapshot(None)?;
        let create = async {
            let result = create_all(
                &api,
                &tracker,
                n,
                opts.create_concurrency,
                SIM_PREFIX,
                None,
                retries,
                unlabelled,
                |i| {
                    // The receiver lives until every index is sent: a send cannot fail here.
                    let _ = tx.unbounded_send(i);
                },
            )
            .await;
            tx.close_channel();
            result
        };
        let params = PatchParams::apply(BASELINE_MANAGER).force();
        let write = rx
            .map(|i| {
                let api = &api;
                let params = &params;
                let statuses = &statuses[i];
                let write_retries = &write_retries;
                async move {
                    let name = object_name(i);
                    for status in statuses {
                        let patch = Patch::Apply(json!({
                            "apiVersion": GuiSession::api_version(&()),
                            "kind": GuiSession::kind(&()),
                            "status": status,
                        }));
                        with_retries(&format!("status of {name}"), write_retries, || {
                            api.patch_status(&name, params, &patch)
                        })
                        .await?;
                    }
                    Ok::<(), anyhow::Error>(())
                }
            })
            .buffer_unordered(usize::from(opts.concurrency))
            .try_for_each(|()| futures::future::ready(Ok(())));
        let (created, written) = tokio::join!(create, write);
        let created = created?;
        written?;
        let all_ready = tracker
            .wait_all(
                deadline_for(n, Duration::from_millis(200)),
                "all Ready",
                ready,
            )
            .await?;
        let after = self.snapshot(None)?;
        let to_ready = tracker.read(|s| latencies(&s.objects, ready));
        let total = all_ready.duration_since(before.at).as_secs_f64();
        progress(format!("{what}: done after {total:.1} s"));
        Ok(Baseline {
            total_s: total,
            create_s: created.duration_since(before.at).as_secs_f64(),
            ready: to_ready.len(),
            writes,
            writes_per_object_mean: ratio(writes as f64, n as f64),
            concurrency: opts.concurrency,
            write_retries: write_retries.load(std::sync::atomic::Ordering::Relaxed),
            to_ready: Latency::of(to_ready),
            apiserver_cpu_s: after.apiserver_cpu - before.apiserver_cpu,
            etcd_cpu_s: after.etcd_cpu - before.etcd_cpu,
        })
    }
}

fn pid(op: &Operator) -> anyhow::Result<u32> {
    op.pid().context("operator not running")
}

fn calls_of(report: &CallReport, action: &str) -> u64 {
    report.count(Some(action), None, None)
}

fn throttled_of(report: &CallReport) -> u64 {
    report.count(None, None, Some("ThrottlingException"))
}

/// Calls between two reports.
fn calls_between(before: &CallReport, after: &CallReport) -> Calls {
    let d = |f: &dyn Fn(&CallReport) -> u64| f(after).saturating_sub(f(before));
    let mut by_action: BTreeMap<String, u64> = BTreeMap::new();
    for c in &after.calls {
        *by_action.entry(c.action.clone()).or_default() += c.count;
    }
    for c in &before.calls {
        if let Some(v) = by_action.get_mut(&c.action) {
            *v = v.saturating_sub(c.count);
        }
    }
    by_action.retain(|_, v| *v > 0);
    Calls {
        start_gui_session: d(&|r| calls_of(r, "StartGUISession")),
        get_operation: d(&|r| calls_of(r, "GetOperation")),
        get_operations_for_resource: d(&|r| calls_of(r, "GetOperationsForResource")),
        throttled: d(&|r| throttled_of(r)),
        total: after.total.saturating_sub(before.total),
        by_action,
    }
}

/// StartGUISession calls per resource between two reports.
fn starts_per_resource(before: &CallReport, after: &CallReport) -> HashMap<String, u64> {
    calls_per_resource(before, after, "StartGUISession")
}

/// Calls of `action` per resource between two reports.
fn calls_per_resource(
    before: &CallReport,
    after: &CallReport,
    action: &str,
) -> HashMap<String, u64> {
    let mut out: HashMap<String, u64> = HashMap::new();
    for c in after.calls.iter().filter(|c| c.action == action) {
        *out.entry(c.resource.clone()).or_default() += c.count;
    }
    for c in before.calls.iter().filter(|c| c.action == action) {
        if let Some(v) = out.get_mut(&c.resource) {
            *v = v.saturating_sub(c.count);
        }
    }
    out
}

/// A label for an object: (key, value).
type Label = Option<(&'static str, &'static str)>;

/// No label for any object.
fn unlabelled(_: usize) -> Label {
    None
}

/// Every odd object is shard blue's; the rest are the default instance's.
fn blue_if_odd(i: usize) -> Label {
    (i % 2 == 1).then_some((SHARD_LABEL, BLUE))
}

/// The i-th GuiSession of a scenario: computer `{resource_prefix}{i:05}`, labelled `label`,
/// with `spec.computer` when given.
fn guisession(
    i: usize,
    resource_prefix: &str,
    computer: Option<&serde_json::Value>,
    label: Label,
) -> anyhow::Result<GuiSession> {
    let mut metadata = serde_json::Map::new();
    metadata.insert("name".into(), object_name(i).into());
    if let Some((key, value)) = label {
        metadata.insert("labels".into(), json!({ key: value }));
    }
    // Below every --min-session-age used here: the operator's guard rail sets the real age, so
    // the renewal wave needs no spec change, only an operator with a lower guard rail.
    let mut spec =
        json!({ "resourceName": format!("{resource_prefix}{i:05}"), "maxSessionAge": "1s" });
    if let Some(computer) = computer {
        spec["computer"] = computer.clone();
    }
    Ok(serde_json::from_value(json!({
        "apiVersion": "lightsail.operators.dev/v1alpha1",
        "kind": "GuiSession",
        "metadata": metadata,
        "spec": spec,
    }))?)
}

/// Retries a Kubernetes call a few times: a benchmark that loads the apiserver to its limit may
/// see timeouts, and one of them must not end a run of many minutes.
pub(crate) async fn with_retries<T, F, Fut>(
    what: &str,
    retries: &AtomicU64,
    f: F,
) -> anyhow::Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt + 1 < ATTEMPTS => {
                attempt += 1;
                retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                progress(format!("{what}: {e}; retrying"));
                // Backoff between attempts of one call, not a wait for another component.
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("{what} failed {ATTEMPTS} times")),
        }
    }
}

/// Creates objects 0..n, object i labelled with `label(i)` and with `spec.computer` set to
/// `computer` when given, with `concurrency` calls in flight, recording when each create
/// answered, and hands each created index to `created`.
#[allow(clippy::too_many_arguments)]
async fn create_all(
    api: &Api<GuiSession>,
    tracker: &Tracker,
    n: usize,
    concurrency: usize,
    resource_prefix: &str,
    computer: Option<&serde_json::Value>,
    retries: &AtomicU64,
    label: impl Fn(usize) -> Label,
    created: impl Fn(usize),
) -> anyhow::Result<Instant> {
    let label = &label;
    futures::stream::iter(0..n)
        .map(|i| async move {
            let obj = guisession(i, resource_prefix, computer, label(i))?;
            let params = PostParams::default();
            with_retries(&format!("create {}", object_name(i)), retries, || {
                api.create(&params, &obj)
            })
            .await?;
            Ok::<usize, anyhow::Error>(i)
        })
        .buffer_unordered(concurrency)
        .try_for_each(|i| {
            tracker.set_created(i, Instant::now());
            created(i);
            futures::future::ready(Ok(()))
        })
        .await?;
    Ok(Instant::now())
}

/// Time from each object's creation to the first status satisfying `pred`.
fn latencies(
    objects: &[ObjectLog],
    pred: impl Fn(&GuiSessionStatus) -> bool + Copy,
) -> Vec<Duration> {
    objects
        .iter()
        .filter_map(|o| {
            let created = o.created?;
            let seen = o.seen.iter().find(|s| pred(&s.status))?;
            Some(seen.at.saturating_duration_since(created))
        })
        .collect()
}

async fn count_events(client: &Client, namespace: &str) -> anyhow::Result<u64> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let mut params = ListParams::default().limit(500);
    let mut total = 0;
    loop {
        let page = api.list(&params).await?;
        total += page.items.len() as u64;
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(total),
        }
    }
}

/// Opens the client's connections, and pays the apiserver's one-time cost of the first write
/// of a just-installed CRD (about 2 s here) in a namespace of its own, so that the burst does
/// not pay it and the baseline (run later, on a warm apiserver) does not either.
async fn warm_up(client: &Client, api: &Api<GuiSession>, concurrency: usize) -> anyhow::Result<()> {
    let retries = AtomicU64::new(0);
    let ns = test_namespace(client, "bench-warm-up").await;
    let warm: Api<GuiSession> = Api::namespaced(client.clone(), &ns);
    let obj = guisession(0, "warm-up-", None, None)?;
    let started = Instant::now();
    let post = PostParams::default();
    with_retries("warm-up create", &retries, || warm.create(&post, &obj)).await?;
    progress(format!(
        "warm-up: first GuiSession create took {:.2} s",
        started.elapsed().as_secs_f64()
    ));
    let params = ListParams::default().limit(1);
    futures::stream::iter(0..concurrency)
        .map(|_| with_retries("warm-up list", &retries, || api.list(&params)))
        .buffer_unordered(concurrency)
        .try_for_each(|_| futures::future::ready(Ok(())))
        .await
}

fn deadline_for(n: usize, per_object: Duration) -> Duration {
    Duration::from_secs(120) + per_object.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX))
}

fn status_writes_metric(op: &Operator) -> u64 {
    let (_, body) = op.http_get("/metrics");
    metric_value(&body, "lightsail_gui_operator_status_writes_total") as u64
}

/// Writes the apiserver refused with 409 (the fence's precondition), each followed by a read.
fn status_conflicts_metric(op: &Operator) -> u64 {
    let (_, body) = op.http_get("/metrics");
    metric_value(&body, "lightsail_gui_operator_status_conflicts_total") as u64
}

/// The sum of a counter family's series over all their labels (0 when absent).
pub(crate) fn family_sum(text: &str, family: &str) -> f64 {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(family)?;
            let value = match rest.strip_prefix('{') {
                Some(labelled) => &labelled[labelled.rfind('}')? + 1..],
                None => rest,
            };
            value.strip_prefix(' ')?.trim().parse::<f64>().ok()
        })
        .sum()
}

/// Reconciles the operator finished, whatever their result.
fn reconciles_metric(op: &Operator) -> u64 {
    let (_, body) = op.http_get("/metrics");
    family_sum(&body, "lightsail_gui_operator_reconciles_total") as u64
}

/// Waits until the operator has finished at least `n` reconciles; fails after `deadline`. The
/// count is only on /metrics, so it is polled at a short interval, bounded by the deadline.
async fn wait_for_reconciles(op: &Operator, n: u64, deadline: Duration) -> anyhow::Result<Instant> {
    let until = Instant::now() + deadline;
    loop {
        let done = reconciles_metric(op);
        if done >= n {
            return Ok(Instant::now());
        }
        if Instant::now() >= until {
            bail!("not {n} reconciles within {deadline:?}: {done} so far");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// When the operator logged a line containing `needle`, from the line's own timestamp (JSON
/// logs), so that the time does not depend on how often the log is read.
fn logged_at(op: &Operator, needle: &str) -> Option<jiff::Timestamp> {
    op.log_text()
        .lines()
        .filter(|l| l.contains(needle))
        .find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            v.get("timestamp")?.as_str()?.parse().ok()
        })
}

/// Each object's first and last status: the two writes per start the operator aims for.
fn first_and_last(statuses: &[Vec<GuiSessionStatus>]) -> Vec<Vec<GuiSessionStatus>> {
    statuses
        .iter()
        .map(|s| match s.as_slice() {
            [first, .., last] => vec![first.clone(), last.clone()],
            other => other.to_vec(),
        })
        .collect()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

/// What was measured: the operator, the commit, Kubernetes, etcd and rustc.
pub(crate) async fn versions(
    operator: &std::path::Path,
    cp: &ControlPlane,
    client: &Client,
) -> Versions {
    Versions {
        operator: probe::version_of(operator, &["--version"]),
        git_commit: git_commit(),
        kubernetes: client
            .apiserver_version()
            .await
            .map(|v| v.git_version)
            .unwrap_or_else(|_| "unknown".into()),
        etcd: probe::version_of(&cp.bin_dir.join("etcd"), &["--version"]),
        rustc: probe::version_of(std::path::Path::new("rustc"), &["-V"]),
    }
}

pub(crate) fn git_commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(repo_root())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(head) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown".into();
    };
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty { format!("{head}-dirty") } else { head }
}

pub async fn run(opts: &Options, sim_rt: tokio::runtime::Handle) -> anyhow::Result<Report> {
    lightsail_gui_operator::install_crypto_provider();
    let rss = probe::RssSampler::start(Instant::now(), RSS_INTERVAL);
    let n = opts.n;
    if n == 0 || n > 99_999 {
        bail!("N must be between 1 and 99,999 (object names have five digits)");
    }
    let machine = Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model: probe::cpu_model(),
        kernel: probe::kernel(),
        mem_total_mib: probe::mem_total_mib(),
        loadavg_start: probe::loadavg(),
        loadavg_end: [0.0; 3],
    };
    let config = Config {
        n,
        operator_binary: opts.operator.display().to_string(),
        concurrency: opts.concurrency,
        create_concurrency: opts.create_concurrency,
        unthrottled_rate_limit: opts.unthrottled_rate,
        unthrottled_rate_burst: opts.unthrottled_rate,
        settle_time_s: lightsail_sim::DEFAULT_SETTLE_TIME.as_secs_f64(),
        steady_window_s: opts.steady_window.as_secs_f64(),
        throttled_n: opts.throttled_n,
        throttle_rps: opts.throttle_rps,
        throttle_burst: opts.throttle_burst,
        throttled_operator_rate_limit: opts.throttled_operator_rate,
        throttled_operator_rate_burst: opts.throttled_operator_burst,
        stopped_starting_time_s: opts.stopped_starting_time.as_secs_f64(),
        started_at: jiff::Timestamp::now().to_string(),
    };
    let mut report = Report {
        machine,
        config,
        ..Report::default()
    };

    progress("starting the control plane");
    let cp = tokio::task::block_in_place(control_plane);
    let client = cp.client().await;
    install_crds(&client).await;
    let control_plane_pids = match probe::control_plane_pids(&cp.kubeconfig) {
        Ok(pids) => Some(pids),
        Err(e) => {
            progress(format!("{e:#}: apiserver and etcd CPU are not measured"));
            None
        }
    };
    report.versions = versions(&opts.operator, cp, &client).await;

    let mut config = SimConfig::default();
    for i in 0..n {
        config = config.with_computer(ComputerSpec::new(format!("{SIM_PREFIX}{i:05}")));
    }
    for i in 0..n {
        config = config.with_computer(ComputerSpec::new(format!("{SHARDS_SIM_PREFIX}{i:05}")));
    }
    for i in 0..opts.throttled_n {
        config = config.with_computer(ComputerSpec::new(format!("{THROTTLED_SIM_PREFIX}{i:05}")));
    }
    for i in 0..n {
        config = config.with_computer(
            ComputerSpec::new(format!("{STOPPED_SIM_PREFIX}{i:05}"))
                .stopped()
                .starting_time(opts.stopped_starting_time),
        );
    }
    let sim = sim_rt
        .spawn(Simulator::start(config, "127.0.0.1:0"))
        .await??;
    let bench = Bench {
        opts,
        cp,
        sim_url: sim.endpoint_url(),
        sim,
        ticks: probe::clock_ticks(),
        control_plane_pids,
        rss,
    };

    // ---- Burst --------------------------------------------------------------------------------
    let ns = test_namespace(&client, "bench-burst").await;
    let api: Api<GuiSession> = Api::namespaced(client.clone(), &ns);
    let tracker = Tracker::start(api.clone(), n);
    warm_up(&client, &api, opts.create_concurrency).await?;
    let op = bench.operator("burst + steady state", &ns, &bench.unthrottled_args("1h"));
    let op_pid = pid(&op)?;
    let empty = probe::memory(op_pid)?;
    progress(format!("burst: creating {n} GuiSessions"));
    let retries = AtomicU64::new(0);
    let before = bench.snapshot(Some(op_pid))?;
    let created = create_all(
        &api,
        &tracker,
        n,
        opts.create_concurrency,
        SIM_PREFIX,
        None,
        &retries,
        unlabelled,
        |_| {},
    )
    .await?;
    progress(format!(
        "burst: created in {:.1} s; waiting for all Ready",
        created.duration_since(before.at).as_secs_f64()
    ));
    let all_ready = tracker
        .wait_all(
            deadline_for(n, Duration::from_millis(200)),
            "all Ready",
            ready,
        )
        .await?;
    let after = bench.snapshot(Some(op_pid))?;
    let burst_total = all_ready.duration_since(before.at);
    progress(format!(
        "burst: all Ready after {:.1} s",
        burst_total.as_secs_f64()
    ));
    // Each object's statuses, in order: what the baseline writes again.
    let (burst_statuses, burst_op_ids, writes, to_op, to_ready) = tracker.read(|s| {
        let statuses: Vec<Vec<GuiSessionStatus>> = s
            .objects
            .iter()
            .map(|o| o.seen.iter().map(|x| x.status.clone()).collect())
            .collect();
        let ids: Vec<Option<String>> = s
            .objects
            .iter()
            .map(|o| o.last().and_then(operation_id).map(str::to_owned))
            .collect();
        let writes: Vec<usize> = s.objects.iter().map(|o| o.seen.len()).collect();
        (
            statuses,
            ids,
            writes,
            latencies(&s.objects, |st| st.operation.is_some()),
            latencies(&s.objects, ready),
        )
    });
    report.series.burst_ready_s = tracker.read(|s| {
        let mut at: Vec<f64> = s
            .objects
            .iter()
            .filter_map(|o| {
                let seen = o.seen.iter().find(|x| ready(&x.status))?;
                Some(round3(
                    seen.at.saturating_duration_since(before.at).as_secs_f64(),
                ))
            })
            .collect();
        at.sort_by(f64::total_cmp);
        at
    });
    let calls = calls_between(&before.calls, &after.calls);
    let watched: u64 = writes.iter().map(|w| *w as u64).sum();
    report.burst = Burst {
        total_s: burst_total.as_secs_f64(),
        create_s: created.duration_since(before.at).as_secs_f64(),
        ready: to_ready.len(),
        to_operation: Latency::of(to_op),
        to_ready: Latency::of(to_ready),
        // Read after the steady-state window: the operator counts a write once its answer is in,
        // which can be after the watch has shown it.
        status_writes_metric: 0,
        status_conflicts_metric: 0,
        status_writes_watched: watched,
        writes_per_object_mean: ratio(watched as f64, n as f64),
        writes_per_object_min: writes.iter().copied().min().unwrap_or(0),
        writes_per_object_max: writes.iter().copied().max().unwrap_or(0),
        events: 0,
        get_operation_per_start: ratio(calls.get_operation as f64, calls.start_gui_session as f64),
        calls,
        operator_cpu_s: after.operator_cpu - before.operator_cpu,
        apiserver_cpu_s: after.apiserver_cpu - before.apiserver_cpu,
        etcd_cpu_s: after.etcd_cpu - before.etcd_cpu,
    };

    if opts.stopped_only {
        tokio::task::block_in_place(|| {
            let mut op = op;
            op.terminate()
        });
        drop(tracker);
        report.stopped = stopped_computers(&bench, &client, &retries).await?;
        (report.series.rss_interval_s, report.series.rss) = bench.rss.series();
        report.machine.loadavg_end = probe::loadavg();
        return Ok(report);
    }

    // ---- Steady state -------------------------------------------------------------------------
    progress(format!(
        "steady state: {:.0} s idle window",
        opts.steady_window.as_secs_f64()
    ));
    let writes_metric_before = status_writes_metric(&op);
    let changes_before = tracker.status_changes();
    let before = bench.snapshot(Some(op_pid))?;
    // A fixed measurement window: nothing is expected to happen, and that is what is measured.
    tokio::time::sleep(opts.steady_window).await;
    let after = bench.snapshot(Some(op_pid))?;
    let changes_after = tracker.status_changes();
    let mem = probe::memory(op_pid)?;
    let writes_metric_after = status_writes_metric(&op);
    let window = after.at.duration_since(before.at).as_secs_f64();
    let idle_cpu = after.operator_cpu - before.operator_cpu;
    report.steady = Steady {
        window_s: window,
        operator_cpu_s: idle_cpu,
        operator_cpu_percent_of_core: ratio(idle_cpu, window) * 100.0,
        lightsail_calls: after.calls.total.saturating_sub(before.calls.total),
        status_writes_watched: changes_after - changes_before,
        status_writes_metric: writes_metric_after.saturating_sub(writes_metric_before),
        rss_mib: mem.rss_bytes as f64 / MIB,
    };
    report.memory = Memory {
        empty_rss_mib: empty.rss_bytes as f64 / MIB,
        peak_rss_mib: mem.hwm_bytes as f64 / MIB,
        steady_rss_mib: mem.rss_bytes as f64 / MIB,
        bytes_per_guisession: ratio(
            mem.rss_bytes.saturating_sub(empty.rss_bytes) as f64,
            n as f64,
        ),
    };
    report.burst.status_writes_metric = writes_metric_after;
    report.burst.status_conflicts_metric = status_conflicts_metric(&op);
    // Every Event of the burst has long been written by now.
    report.burst.events = count_events(&client, &ns).await?;

    // ---- Renewal wave -------------------------------------------------------------------------
    // maxSessionAge for the wave: long enough that the wave ends inside one window (twice the
    // burst's time), and every session already older than it when the new operator starts.
    let window_secs = if opts.memory_only {
        tokio::task::block_in_place(|| {
            let mut op = op;
            op.terminate()
        });
        // The burst's --min-session-age (1h): nothing falls due during the restart.
        3600.0
    } else {
        let window_secs = opts
            .min_renew_window
            .max(burst_total * 2)
            .as_secs_f64()
            .ceil();
        let youngest = tracker.read(|s| {
            s.objects
                .iter()
                .filter_map(|o| o.last()?.session_started_at)
                .max()
        });
        let youngest = youngest.context("no sessionStartedAt recorded")?;
        let all_expired = youngest
            .checked_add(jiff::SignedDuration::from_secs_f64(window_secs + 1.0))
            .context("timestamp overflow")?;
        let wait = all_expired.duration_since(jiff::Timestamp::now());
        if wait.is_positive() {
            progress(format!(
                "renewal: waiting {:.0} s until every session is older than {window_secs:.0} s",
                wait.as_secs_f64()
            ));
            // Waiting for a point in time (the sessions' age), not for another component.
            tokio::time::sleep(Duration::try_from(wait).unwrap_or_default()).await;
        }
        tokio::task::block_in_place(|| {
            let mut op = op;
            op.terminate()
        });
        progress(format!(
            "renewal: restarting the operator with --min-session-age {window_secs:.0}s"
        ));
        let changes_before = tracker.status_changes();
        let before = bench.snapshot(None)?;
        // The same instant on the wall clock, which sessionStartedAt is on.
        let spawned_wall = jiff::Timestamp::now();
        let wave_op = bench.operator(
            "renewal",
            &ns,
            &bench.unthrottled_args(&format!("{window_secs:.0}s")),
        );
        let synced = Instant::now();
        let wave_pid = pid(&wave_op)?;
        let renewed = |s: &crate::tracker::State| {
            s.objects
                .iter()
                .zip(&burst_op_ids)
                .filter(|(o, old)| {
                    o.last()
                        .is_some_and(|st| ready(st) && operation_id(st) != old.as_deref())
                })
                .count()
        };
        let done = tracker
            .wait_for(
                deadline_for(n, Duration::from_millis(200)),
                "all renewed",
                |s| renewed(s) == n,
                |s| format!("{} of {n} renewed", renewed(s)),
            )
            .await?;
        let after = bench.snapshot(Some(wave_pid))?;
        let wave_mem = probe::memory(wave_pid)?;
        let calls = calls_between(&before.calls, &after.calls);
        let starts = starts_per_resource(&before.calls, &after.calls);
        let one = (0..n)
            .filter(|i| starts.get(&format!("{SIM_PREFIX}{i:05}")) == Some(&1))
            .count();
        let to_ready_after_start = tracker.read(|s| {
            s.objects
                .iter()
                .zip(&burst_op_ids)
                .filter_map(|(o, old)| {
                    let seen = o.first_after(before.at, |st| {
                        ready(st) && operation_id(st) != old.as_deref()
                    })?;
                    Some(seen.at.saturating_duration_since(before.at))
                })
                .collect::<Vec<_>>()
        });
        // Each renewed session's due instant and lateness, both against the wave's spawn.
        let max_age = jiff::SignedDuration::from_secs_f64(window_secs);
        let (due, lateness): (Vec<f64>, Vec<f64>) = tracker.read(|s| {
            s.objects
                .iter()
                .zip(&burst_op_ids)
                .zip(&burst_statuses)
                .filter_map(|((o, old), statuses)| {
                    let due = statuses
                        .last()?
                        .session_started_at?
                        .checked_add(max_age)
                        .ok()?;
                    let due_s = due.duration_since(spawned_wall).as_secs_f64();
                    let seen = o.first_after(before.at, |st| {
                        ready(st) && operation_id(st) != old.as_deref()
                    })?;
                    let seen_s = seen.at.saturating_duration_since(before.at).as_secs_f64();
                    Some((round3(due_s), round3(seen_s - due_s)))
                })
                .unzip()
        });
        report.series.renewal_due_s = due;
        report.series.renewal_lateness_s = lateness;
        let wave_writes = tracker.status_changes() - changes_before;
        let total = done.duration_since(before.at).as_secs_f64();
        report.renewal = Renewal {
            max_session_age_s: window_secs,
            total_s: total,
            after_sync_s: done.duration_since(synced).as_secs_f64(),
            renewed: to_ready_after_start.len(),
            objects_with_one_start: one,
            objects_with_other_starts: n - one,
            calls_per_object: ratio(calls.total as f64, n as f64),
            get_operation_per_start: ratio(
                calls.get_operation as f64,
                calls.start_gui_session as f64,
            ),
            calls,
            status_writes_watched: wave_writes,
            writes_per_object_mean: ratio(wave_writes as f64, n as f64),
            to_ready_after_start: Latency::of(to_ready_after_start),
            // A new process: all of its CPU time, start-up and cache sync included.
            operator_cpu_s: after.operator_cpu,
            operator_peak_rss_mib: wave_mem.hwm_bytes as f64 / MIB,
            longer_than_window: total > window_secs,
        };
        progress(format!("renewal: all {n} renewed after {total:.1} s"));
        tokio::task::block_in_place(|| {
            let mut op = wave_op;
            op.terminate()
        });
        window_secs
    };

    // ---- Restart at scale ---------------------------------------------------------------------
    // Every session was just renewed: a fresh operator with the wave's --min-session-age (any
    // other would change every status's sessionExpiresAt) has nothing to do but sync its cache
    // and schedule each object's next renewal. The oldest renewed session expires first.
    let first_expiry = tracker
        .read(|s| {
            s.objects
                .iter()
                .filter_map(|o| o.last()?.session_started_at)
                .min()
        })
        .context("no sessionStartedAt recorded")?
        .checked_add(jiff::SignedDuration::from_secs_f64(window_secs))
        .context("timestamp overflow")?;
    progress(format!(
        "restart: a fresh operator with --min-session-age {window_secs:.0}s on {n} fresh sessions"
    ));
    let changes_before = tracker.status_changes();
    let before = bench.snapshot(None)?;
    let spawned_at = jiff::Timestamp::now();
    let spawned = Instant::now();
    let restart_op = bench.operator(
        "restart",
        &ns,
        &bench.unthrottled_args(&format!("{window_secs:.0}s")),
    );
    let to_synced = match logged_at(&restart_op, "GuiSession cache synced") {
        Some(at) => at.duration_since(spawned_at).as_secs_f64(),
        None => spawned.elapsed().as_secs_f64(),
    };
    let restart_pid = pid(&restart_op)?;
    let scheduled = wait_for_reconciles(
        &restart_op,
        n as u64,
        deadline_for(n, Duration::from_millis(50)),
    )
    .await?;
    let to_scheduled = scheduled.duration_since(spawned).as_secs_f64();
    // The quiet window is --steady-window long, but ends before the first session is due (less
    // a margin for clocks and timers): a short maxSessionAge (small N) shortens it.
    let due_in = first_expiry.duration_since(jiff::Timestamp::now()) - RESTART_MARGIN;
    let quiet = Duration::try_from(due_in)
        .unwrap_or_default()
        .min(opts.steady_window);
    progress(format!(
        "restart: synced after {to_synced:.2} s, {n} reconciled after {to_scheduled:.2} s; \
         {:.1} s quiet window{}",
        quiet.as_secs_f64(),
        if quiet < opts.steady_window {
            " (shorter than --steady-window: sessions are due after it)"
        } else {
            ""
        }
    ));
    let window_start = Instant::now();
    // A fixed measurement window: nothing is expected to happen, and that is what is measured.
    tokio::time::sleep(quiet).await;
    let after = bench.snapshot(Some(restart_pid))?;
    let restart_mem = probe::memory(restart_pid)?;
    report.restart = Restart {
        min_session_age_s: window_secs,
        to_synced_s: to_synced,
        to_all_scheduled_s: to_scheduled,
        reconciles: reconciles_metric(&restart_op),
        lightsail_calls: after.calls.total.saturating_sub(before.calls.total),
        status_writes_watched: tracker.status_changes() - changes_before,
        status_writes_metric: status_writes_metric(&restart_op),
        rss_mib: mib(restart_mem.rss_bytes),
        peak_rss_mib: mib(restart_mem.hwm_bytes),
        bytes_per_guisession: ratio(
            restart_mem.rss_bytes.saturating_sub(empty.rss_bytes) as f64,
            n as f64,
        ),
        window_s: after.at.duration_since(window_start).as_secs_f64(),
        operator_cpu_s: after.operator_cpu,
    };
    progress(format!(
        "restart: {} Lightsail calls, {} status writes, {:.1} MiB",
        report.restart.lightsail_calls,
        report.restart.status_writes_watched,
        report.restart.rss_mib
    ));
    tokio::task::block_in_place(|| {
        let mut op = restart_op;
        op.terminate()
    });
    drop(tracker);
    if opts.memory_only {
        (report.series.rss_interval_s, report.series.rss) = bench.rss.series();
        report.machine.loadavg_end = probe::loadavg();
        return Ok(report);
    }

    // ---- Baselines ----------------------------------------------------------------------------
    // The same objects, created the same way, and each one's statuses from the burst written
    // again in the same order by a plain client with as many writers as the operator reconciles
    // at once: the fastest this apiserver takes the operator's writes. Then the same with only
    // each object's first and last status: the two writes per start the operator aims for.
    report.baseline = bench
        .baseline(&client, "baseline", &burst_statuses, &retries)
        .await?;
    let same_as_replay = burst_statuses.iter().all(|s| s.len() <= 2);
    report.two_write_baseline = TwoWriteBaseline {
        same_as_replay,
        figures: if same_as_replay {
            progress("two-write baseline: no object had more than 2 statuses; same as the replay");
            report.baseline.clone()
        } else {
            bench
                .baseline(
                    &client,
                    "two-write baseline",
                    &first_and_last(&burst_statuses),
                    &retries,
                )
                .await?
        },
    };
    report.ratios = Ratios {
        burst_total_over_baseline: ratio(report.burst.total_s, report.baseline.total_s),
        burst_apiserver_etcd_cpu_over_baseline: ratio(
            report.burst.apiserver_cpu_s + report.burst.etcd_cpu_s,
            report.baseline.apiserver_cpu_s + report.baseline.etcd_cpu_s,
        ),
        burst_total_over_two_write_baseline: ratio(
            report.burst.total_s,
            report.two_write_baseline.figures.total_s,
        ),
    };

    // ---- Throttled Lightsail ------------------------------------------------------------------
    let tn = opts.throttled_n;
    let ns = test_namespace(&client, "bench-throttled").await;
    let api: Api<GuiSession> = Api::namespaced(client.clone(), &ns);
    let tracker = Tracker::start(api.clone(), tn);
    bench
        .sim
        .set_faults(Faults {
            rate_limit: Some(RateLimit::new(opts.throttle_rps, opts.throttle_burst)),
            ..Faults::default()
        })
        .map_err(|e| anyhow::anyhow!("simulator faults: {e}"))?;
    let op = bench.operator(
        "throttled",
        &ns,
        &[
            ("--min-session-age", "1h".into()),
            ("--rate-limit", opts.throttled_operator_rate.to_string()),
            ("--rate-burst", opts.throttled_operator_burst.to_string()),
        ],
    );
    progress(format!(
        "throttled: {tn} GuiSessions against {} req/s (burst {})",
        opts.throttle_rps, opts.throttle_burst
    ));
    let before = bench.snapshot(None)?;
    create_all(
        &api,
        &tracker,
        tn,
        opts.create_concurrency,
        THROTTLED_SIM_PREFIX,
        None,
        &retries,
        unlabelled,
        |_| {},
    )
    .await?;
    let per_object = Duration::from_secs_f64((8.0 / opts.throttle_rps).max(0.2));
    let all_ready = tracker
        .wait_all(deadline_for(tn, per_object), "all Ready (throttled)", ready)
        .await?;
    let after = bench.snapshot(None)?;
    let to_ready = tracker.read(|s| latencies(&s.objects, ready));
    let total = all_ready.duration_since(before.at).as_secs_f64();
    let ok = after
        .calls
        .count(None, None, Some("ok"))
        .saturating_sub(before.calls.count(None, None, Some("ok")));
    let throttled = throttled_of(&after.calls).saturating_sub(throttled_of(&before.calls));
    let achieved = ratio(ok as f64, total);
    report.throttled = Throttled {
        n: tn,
        limit_rps: opts.throttle_rps,
        limit_burst: opts.throttle_burst,
        operator_rate_limit: opts.throttled_operator_rate,
        operator_rate_burst: opts.throttled_operator_burst,
        total_s: total,
        ready: to_ready.len(),
        calls_ok: ok,
        calls_throttled: throttled,
        throttled_share: ratio(throttled as f64, (ok + throttled) as f64),
        achieved_rps: achieved,
        fraction_of_limit: ratio(achieved, opts.throttle_rps),
        to_ready: Latency::of(to_ready),
    };
    progress(format!("throttled: all Ready after {total:.1} s"));
    bench
        .sim
        .set_faults(Faults::default())
        .map_err(|e| anyhow::anyhow!("simulator faults: {e}"))?;
    tokio::task::block_in_place(|| {
        let mut op = op;
        op.terminate()
    });
    drop(tracker);

    // ---- Two shards -------------------------------------------------------------------------
    // The burst again in a fresh namespace and on computers of its own, every odd object
    // labelled for shard blue, served by two operators at once: the default instance
    // (`--shards blue`) and shard blue's (`--shard blue`).
    report.two_shards = two_shards(&bench, &client, &retries, &report).await?;

    // ---- Stopped computers ------------------------------------------------------------------
    report.stopped = stopped_computers(&bench, &client, &retries).await?;

    (report.series.rss_interval_s, report.series.rss) = bench.rss.series();
    report.machine.loadavg_end = probe::loadavg();
    report.judge();
    Ok(report)
}

/// The two-shard burst: like the burst, with two operator processes, then a quiet window of
/// `--steady-window` after which each process's memory and metrics are read.
async fn two_shards(
    bench: &Bench<'_>,
    client: &Client,
    retries: &AtomicU64,
    report: &Report,
) -> anyhow::Result<TwoShards> {
    let opts = bench.opts;
    let n = opts.n;
    let ns = test_namespace(client, "bench-two-shards").await;
    let api: Api<GuiSession> = Api::namespaced(client.clone(), &ns);
    let tracker = Tracker::start(api.clone(), n);
    let mut default_args = bench.unthrottled_args("1h");
    default_args.push(("--shards", BLUE.into()));
    let mut blue_args = bench.unthrottled_args("1h");
    blue_args.push(("--shard", BLUE.into()));
    let default_op = bench.operator("two shards: default", &ns, &default_args);
    let blue_op = bench.operator("two shards: blue", &ns, &blue_args);
    let (default_pid, blue_pid) = (pid(&default_op)?, pid(&blue_op)?);
    let (default_empty, blue_empty) = (probe::memory(default_pid)?, probe::memory(blue_pid)?);
    progress(format!(
        "two shards: creating {n} GuiSessions, every odd one labelled {SHARD_LABEL}={BLUE}"
    ));
    let before = bench.snapshot(Some(default_pid))?;
    let blue_cpu_before = probe::cpu_seconds(blue_pid, bench.ticks)?;
    let created = create_all(
        &api,
        &tracker,
        n,
        opts.create_concurrency,
        SHARDS_SIM_PREFIX,
        None,
        retries,
        blue_if_odd,
        |_| {},
    )
    .await?;
    let all_ready = tracker
        .wait_all(
            deadline_for(n, Duration::from_millis(200)),
            "all Ready (two shards)",
            ready,
        )
        .await?;
    let after = bench.snapshot(Some(default_pid))?;
    let blue_cpu_after = probe::cpu_seconds(blue_pid, bench.ticks)?;
    let total = all_ready.duration_since(before.at).as_secs_f64();
    let to_ready = tracker.read(|s| latencies(&s.objects, ready));
    let watched = tracker.status_changes();
    progress(format!(
        "two shards: all Ready after {total:.1} s; {:.0} s quiet window",
        opts.steady_window.as_secs_f64()
    ));
    let window_start = Instant::now();
    // A fixed window, as in the steady state: the processes settle, then memory is read.
    tokio::time::sleep(opts.steady_window).await;
    let end = bench.snapshot(None)?;
    let calls = calls_between(&before.calls, &end.calls);
    let starts = starts_per_resource(&before.calls, &end.calls);
    let one = (0..n)
        .filter(|i| starts.get(&format!("{SHARDS_SIM_PREFIX}{i:05}")) == Some(&1))
        .count();
    let process = |op: &Operator,
                   pid: u32,
                   shard: &str,
                   objects: usize,
                   empty: probe::Memory,
                   cpu_s: f64|
     -> anyhow::Result<ShardProcess> {
        let mem = probe::memory(pid)?;
        Ok(ShardProcess {
            shard: shard.into(),
            objects,
            empty_rss_mib: mib(empty.rss_bytes),
            peak_rss_mib: mib(mem.hwm_bytes),
            steady_rss_mib: mib(mem.rss_bytes),
            reconciles: reconciles_metric(op),
            status_writes_metric: status_writes_metric(op),
            cpu_s,
        })
    };
    let blue_objects = (0..n).filter(|i| blue_if_odd(*i).is_some()).count();
    let default_instance = process(
        &default_op,
        default_pid,
        "default",
        n - blue_objects,
        default_empty,
        after.operator_cpu - before.operator_cpu,
    )?;
    let shard_blue = process(
        &blue_op,
        blue_pid,
        BLUE,
        blue_objects,
        blue_empty,
        blue_cpu_after - blue_cpu_before,
    )?;
    tokio::task::block_in_place(|| {
        let (mut a, mut b) = (default_op, blue_op);
        a.terminate();
        b.terminate();
    });
    Ok(TwoShards {
        total_s: total,
        create_s: created.duration_since(before.at).as_secs_f64(),
        ready: to_ready.len(),
        to_ready: Latency::of(to_ready),
        total_over_one_shard: ratio(total, report.burst.total_s),
        objects_with_one_start: one,
        objects_with_other_starts: n - one,
        calls,
        status_writes_watched: watched,
        apiserver_cpu_s: after.apiserver_cpu - before.apiserver_cpu,
        etcd_cpu_s: after.etcd_cpu - before.etcd_cpu,
        window_s: end.at.duration_since(window_start).as_secs_f64(),
        default_instance,
        shard_blue,
    })
}

/// The burst on stopped computers: N new GuiSessions with `computer: {startIfStopped: true}`
/// for computers that are `stopped` (each `pending` for `--stopped-start-time` after its
/// start), in a fresh namespace, served by a fresh operator with the burst's flags. Counts the
/// Lightsail calls from the first create to all Ready (with a session), by action, then those
/// of a short quiet window.
async fn stopped_computers(
    bench: &Bench<'_>,
    client: &Client,
    retries: &AtomicU64,
) -> anyhow::Result<Stopped> {
    let opts = bench.opts;
    let n = opts.n;
    let ns = test_namespace(client, "bench-stopped").await;
    let api: Api<GuiSession> = Api::namespaced(client.clone(), &ns);
    let tracker = Tracker::start(api.clone(), n);
    let op = bench.operator("stopped computers", &ns, &bench.unthrottled_args("1h"));
    let op_pid = pid(&op)?;
    progress(format!(
        "stopped computers: creating {n} GuiSessions with startIfStopped for stopped computers \
         ({:.1} s to start)",
        opts.stopped_starting_time.as_secs_f64()
    ));
    let computer = json!({ "startIfStopped": true });
    let before = bench.snapshot(Some(op_pid))?;
    let created = create_all(
        &api,
        &tracker,
        n,
        opts.create_concurrency,
        STOPPED_SIM_PREFIX,
        Some(&computer),
        retries,
        unlabelled,
        |_| {},
    )
    .await?;
    let all_ready = tracker
        .wait_all(
            deadline_for(n, Duration::from_millis(200)) + opts.stopped_starting_time * 4,
            "all Ready with a session (stopped computers)",
            session_ready,
        )
        .await?;
    let after = bench.snapshot(Some(op_pid))?;
    let total = all_ready.duration_since(before.at).as_secs_f64();
    progress(format!("stopped computers: all Ready after {total:.1} s"));
    let quiet = STOPPED_QUIET.min(opts.steady_window);
    let window_start = Instant::now();
    // A fixed window: nothing is expected to happen after all are Ready, and that is measured.
    tokio::time::sleep(quiet).await;
    let end = bench.snapshot(None)?;
    let (writes, to_op, to_ready) = tracker.read(|s| {
        let writes: Vec<usize> = s.objects.iter().map(|o| o.seen.len()).collect();
        (
            writes,
            latencies(&s.objects, |st| st.operation.is_some()),
            latencies(&s.objects, session_ready),
        )
    });
    let name = |i: usize| format!("{STOPPED_SIM_PREFIX}{i:05}");
    let instance_starts = calls_per_resource(&before.calls, &end.calls, "StartInstance");
    let session_starts = starts_per_resource(&before.calls, &end.calls);
    let one = |starts: &HashMap<String, u64>| {
        (0..n).filter(|i| starts.get(&name(*i)) == Some(&1)).count()
    };
    let running = (0..n)
        .filter(|i| {
            bench
                .sim
                .computer(&name(*i))
                .is_some_and(|c| c.state == InstanceState::Running)
        })
        .count();
    let watched: u64 = writes.iter().map(|w| *w as u64).sum();
    tokio::task::block_in_place(|| {
        let mut op = op;
        op.terminate()
    });
    Ok(Stopped {
        n,
        starting_time_s: opts.stopped_starting_time.as_secs_f64(),
        total_s: total,
        create_s: created.duration_since(before.at).as_secs_f64(),
        ready: to_ready.len(),
        to_operation: Latency::of(to_op),
        to_ready: Latency::of(to_ready),
        calls: calls_between(&before.calls, &after.calls),
        computers_with_one_instance_start: one(&instance_starts),
        computers_with_one_session_start: one(&session_starts),
        computers_running: running,
        status_writes_watched: watched,
        writes_per_object_mean: ratio(watched as f64, n as f64),
        writes_per_object_min: writes.iter().copied().min().unwrap_or(0),
        writes_per_object_max: writes.iter().copied().max().unwrap_or(0),
        calls_after_ready: end.calls.total.saturating_sub(after.calls.total),
        quiet_window_s: end.at.duration_since(window_start).as_secs_f64(),
        operator_cpu_s: after.operator_cpu - before.operator_cpu,
        apiserver_cpu_s: after.apiserver_cpu - before.apiserver_cpu,
        etcd_cpu_s: after.etcd_cpu - before.etcd_cpu,
    })
}

/// Ready with a session: a status with Ready=True for a computer not yet started has none.
fn session_ready(status: &GuiSessionStatus) -> bool {
    ready(status) && status.operation.is_some()
}
