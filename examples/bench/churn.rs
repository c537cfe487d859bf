//! Churn (issue "Second review", item 6): whether what the operator keeps per GuiSession beyond
//! its cache returns to the live object count after many objects came and went, including after
//! relists that follow watch gaps (a relist reports no deletes for objects deleted during the
//! gap).
//!
//! N GuiSessions are created, then each of W waves (one per "simulated hour"):
//!
//! - relabels the objects it relabelled out in the wave before back into the operator's label
//!   selector (`--selector bench-churn=in`; a relabel out of a selected watch is a delete for
//!   the watcher, a relabel back in an add);
//! - creates a batch of new ones, every fourth deleted 0–300 ms after its create answered
//!   (while its start is in flight);
//! - relabels half a batch out of the selector and deletes as many as bring the object count
//!   back to N;
//! - every `--churn-gap-every` waves, makes part of those relabels and deletes during a **watch
//!   gap**: the operator is stopped (SIGSTOP) right after the creates, the changes are made, and
//!   it is continued (SIGCONT). Gaps alternate between a plain pause and a pause around a restart
//!   of kube-apiserver (`kill-apiserver` / `start-apiserver` of `scripts/control-plane-up`): the
//!   restarted apiserver's watch cache starts at the current revision, so a watch resumed from an
//!   older resourceVersion gets 410 Gone and the watcher relists;
//! - injects Lightsail `ServiceException`s (`--churn-error-rate`) while it runs, so that
//!   reconciles fail and the backoff map fills.
//!
//! After each wave the faults stop and the benchmark waits (polling /metrics, with a deadline)
//! until the operator has settled: every watched object counted by the sessions gauge and
//! active, no unconfirmed start and no backoff left, for 5 s in a row. Then it records the
//! objects the apiserver lists, the `tracked_objects` gauges, the sessions gauge, the operator's
//! RSS, and how often the operator listed GuiSessions (its relists) and was told 410 on a watch,
//! counted from its own log: the operator runs with `kube_runtime::watcher=debug` and with
//! kube's HTTP span at debug for GuiSession list and watch requests only.

use std::collections::{HashMap, HashSet};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use lightsail_gui_operator::guisession::types::GuiSession;
use lightsail_sim::{CallReport, ComputerSpec, Faults, RunningSimulator, SimConfig, Simulator};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::probe;
use crate::report::{MIB, Machine, Versions};
use crate::scenarios::{family_sum, progress, versions, with_retries};
use crate::support::operator::{Operator, OperatorOptions, metric_value};
use crate::support::{ControlPlane, control_plane, install_crds, test_namespace};
use crate::tracker::{object_name, ready};

/// What to run.
#[derive(Debug, Clone)]
pub struct ChurnOptions {
    /// Objects alive at the end of every wave.
    pub n: usize,
    pub operator: PathBuf,
    pub concurrency: u16,
    pub create_concurrency: usize,
    pub unthrottled_rate: u32,
    pub waves: usize,
    /// Objects created per wave (and, in all, deleted per wave); half as many relabelled out.
    pub batch: usize,
    /// A watch gap every this many waves (0: none).
    pub gap_every: usize,
    /// Share of Lightsail calls answering ServiceException while a wave's changes are made.
    pub error_rate: f64,
    /// How long a wave may take to settle before it is recorded as not settled.
    pub wave_deadline: Duration,
    /// The same after the last wave.
    pub final_deadline: Duration,
    /// Where to copy the operator's log at the end (the relist counts come from it).
    pub operator_log: Option<PathBuf>,
}

/// The label the churn operator selects on, and its two values.
const LABEL: &str = "bench-churn";
const IN: &str = "in";
const OUT: &str = "out";
/// The namespace label `--own-identity-namespaces` selects: with a namespace selector the
/// operator indexes every GuiSession that uses its own identity, so the account index holds one
/// entry per watched object.
const OWN_IDENTITY_LABEL: (&str, &str) = ("bench-churn-own", "yes");
const SIM_PREFIX: &str = "churn-";
/// The production log level, plus kube's watcher debug lines (watch errors, 410 among them)
/// and the HTTP span of GuiSession list and watch requests (the regex cannot hold `=` or `,`):
/// how relists are counted.
const LOG_FILTER: &str =
    "info,kube_runtime::watcher=debug,kube_client[HTTP{http.url=.*/guisessions[?].*}]=debug";
/// How long the settled state must hold before it is recorded: a backoff entry is added after
/// the failed reconcile published the gauge, and shows with the retry's reconcile.
const STABLE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(250);
/// Delays after which the objects deleted right after their create are deleted, in turn.
const IN_FLIGHT_DELAYS_MS: [u64; 4] = [0, 50, 150, 300];

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Gap {
    #[default]
    None,
    /// SIGSTOP of the operator, changes, SIGCONT.
    Pause,
    /// SIGSTOP, changes, kube-apiserver killed and started again, SIGCONT.
    ApiserverRestart,
}

impl Gap {
    fn label(self) -> &'static str {
        match self {
            Gap::None => "",
            Gap::Pause => "pause",
            Gap::ApiserverRestart => "apiserver restart",
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct ChurnConfig {
    pub n: usize,
    pub waves: usize,
    pub batch: usize,
    pub gap_every: usize,
    pub error_rate: f64,
    pub concurrency: u16,
    pub create_concurrency: usize,
    pub operator_binary: String,
    /// The churn operator's flags beyond `run --namespace NS --http-addr ... --log-format json`.
    pub operator_args: Vec<String>,
    pub log_filter: String,
    pub wave_deadline_s: f64,
    pub final_deadline_s: f64,
    pub started_at: String,
}

/// What the apiserver lists in the churn namespace.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq)]
pub struct Census {
    /// GuiSessions.
    pub live: usize,
    /// Those labelled `bench-churn=in`: the ones the operator watches.
    pub watched: usize,
    /// Watched and Ready.
    pub watched_ready: usize,
}

/// The operator's /metrics figures of interest.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq)]
pub struct Maps {
    /// `lightsail_gui_operator_sessions`, all states.
    pub sessions: u64,
    /// `lightsail_gui_operator_sessions{state="active"}`.
    pub active: u64,
    pub unconfirmed_starts: u64,
    pub backoffs: u64,
    pub account_index: u64,
    /// `lightsail_gui_operator_reconciles_total` with a result other than ok, so far.
    pub reconcile_errors: u64,
}

/// Largest `tracked_objects` values sampled (every 200 ms, not while the operator is stopped)
/// during a wave.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq)]
pub struct Peaks {
    pub unconfirmed_starts: u64,
    pub backoffs: u64,
    pub account_index: u64,
}

/// Counted in the operator's log since its start.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq)]
pub struct WatchLog {
    /// GuiSession list requests (first pages) after "GuiSession cache synced": relists.
    pub guisession_relists: u64,
    /// GuiSession watch requests (initial and resumed).
    pub guisession_watches: u64,
    /// kube_runtime::watcher lines reporting 410 Gone, for any of the operator's watches
    /// (GuiSessions, accounts, namespaces): each ends in a relist of that watch.
    pub watch_410s: u64,
    /// Other kube_runtime::watcher error lines (connection refused or reset, list failures).
    pub watch_errors: u64,
}

/// One row: the state after the initial creates, after a wave, or at the end.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct ChurnPoint {
    /// 0 for the initial population; the final row repeats the last wave's number.
    pub wave: usize,
    pub is_final: bool,
    pub gap: Gap,
    pub created: usize,
    /// Of `created`, deleted 0–300 ms after their create answered.
    pub deleted_in_flight: usize,
    /// Other deletes made while the operator was watching.
    pub deleted: usize,
    /// Deletes made while the operator was stopped.
    pub deleted_in_gap: usize,
    /// Of `deleted_in_gap`, objects created in this wave just before the operator was stopped.
    pub deleted_in_gap_new: usize,
    pub relabelled_out: usize,
    pub relabelled_out_in_gap: usize,
    pub relabelled_in: usize,
    /// `unconfirmed_starts` just before the operator was stopped.
    pub unconfirmed_at_stop: u64,
    /// How long the wave's changes took (gap included).
    pub changes_s: f64,
    /// From the end of the changes until the settled state began (or the deadline).
    pub settle_s: f64,
    pub settled: bool,
    /// What the benchmark's own bookkeeping expects the apiserver to list.
    pub expected: Census,
    pub census: Census,
    pub maps: Maps,
    pub peaks: Peaks,
    pub rss_mib: f64,
    pub peak_rss_mib: f64,
    pub watch: WatchLog,
    pub start_gui_session_calls: u64,
    pub service_exceptions_injected: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct ChurnSummary {
    pub created: usize,
    pub deleted: usize,
    pub deleted_in_flight: usize,
    pub deleted_in_gaps: usize,
    pub relabelled_out: usize,
    pub relabelled_in: usize,
    pub pause_gaps: usize,
    pub apiserver_restart_gaps: usize,
    pub points_settled: usize,
    pub points: usize,
    /// At every recorded point, each map at most the watched objects the apiserver lists.
    pub unconfirmed_starts_within_live: bool,
    pub backoffs_within_live: bool,
    pub account_index_within_live: bool,
    /// Points where account_index differed from the watched objects listed (with an own-identity
    /// namespace selector the index holds every watched GuiSession).
    pub account_index_off_points: usize,
    /// Points where the sessions gauge differed from the watched objects listed.
    pub sessions_off_points: usize,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct ChurnReport {
    pub machine: Machine,
    pub versions: Versions,
    pub config: ChurnConfig,
    pub points: Vec<ChurnPoint>,
    pub summary: ChurnSummary,
}

/// A small deterministic generator (SplitMix64): the same picks on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The live objects' indices, with O(1) insert, remove and random pick.
#[derive(Default)]
struct LiveSet {
    items: Vec<usize>,
    pos: HashMap<usize, usize>,
}

impl LiveSet {
    fn insert(&mut self, i: usize) {
        if !self.pos.contains_key(&i) {
            self.pos.insert(i, self.items.len());
            self.items.push(i);
        }
    }

    fn remove(&mut self, i: usize) {
        if let Some(p) = self.pos.remove(&i) {
            self.items.swap_remove(p);
            if let Some(&moved) = self.items.get(p) {
                self.pos.insert(moved, p);
            }
        }
    }

    fn len(&self) -> usize {
        self.items.len()
    }

    fn pick(&self, rng: &mut Rng) -> Option<usize> {
        (!self.items.is_empty()).then(|| self.items[rng.below(self.items.len())])
    }
}

/// The benchmark's view of the namespace: which objects exist and which are relabelled out.
struct World {
    api: Api<GuiSession>,
    live: LiveSet,
    out: HashSet<usize>,
    next: usize,
    rng: Rng,
    retries: AtomicU64,
    create_concurrency: usize,
}

impl World {
    fn expected(&self) -> Census {
        Census {
            live: self.live.len(),
            watched: self.live.len() - self.out.len(),
            watched_ready: self.live.len() - self.out.len(),
        }
    }

    /// Creates `count` new objects; with `delete_some`, every fourth is deleted right after its
    /// create answered. Returns the created indices that stay, oldest first, and how many were
    /// deleted.
    async fn create(
        &mut self,
        count: usize,
        delete_some: bool,
    ) -> anyhow::Result<(Vec<usize>, usize)> {
        let first = self.next;
        self.next += count;
        anyhow::ensure!(
            self.next <= 100_000,
            "more than 100,000 objects in all (names have five digits): lower --churn-waves or --churn-batch"
        );
        let api = &self.api;
        let retries = &self.retries;
        let results: Vec<(usize, bool)> = futures::stream::iter(first..first + count)
            .map(|i| async move {
                let obj = guisession(i)?;
                let params = PostParams::default();
                with_retries(&format!("create {}", object_name(i)), retries, || {
                    api.create(&params, &obj)
                })
                .await?;
                let doomed = delete_some && (i - first) % 4 == 3;
                if doomed {
                    let delay = IN_FLIGHT_DELAYS_MS[((i - first) / 4) % IN_FLIGHT_DELAYS_MS.len()];
                    // Deliberate timing: the delete lands at a different point of the start.
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    delete(api, i, retries).await?;
                }
                Ok::<(usize, bool), anyhow::Error>((i, doomed))
            })
            .buffer_unordered(self.create_concurrency)
            .try_collect()
            .await?;
        let mut kept: Vec<usize> = results
            .iter()
            .filter(|(_, doomed)| !doomed)
            .map(|(i, _)| *i)
            .collect();
        kept.sort_unstable();
        for &i in &kept {
            self.live.insert(i);
        }
        let deleted = count - kept.len();
        Ok((kept, deleted))
    }

    async fn delete_all(&mut self, indices: &[usize]) -> anyhow::Result<()> {
        let api = &self.api;
        let retries = &self.retries;
        futures::stream::iter(indices.iter().copied())
            .map(|i| delete(api, i, retries))
            .buffer_unordered(self.create_concurrency)
            .try_for_each(|()| futures::future::ready(Ok(())))
            .await?;
        for &i in indices {
            self.live.remove(i);
            self.out.remove(&i);
        }
        Ok(())
    }

    /// Picks `count` distinct live objects at random.
    fn pick(&mut self, count: usize, eligible: impl Fn(&World, usize) -> bool) -> Vec<usize> {
        let mut chosen = HashSet::new();
        let mut tries = 0;
        while chosen.len() < count && tries < count * 50 + 100 {
            tries += 1;
            if let Some(i) = self.live.pick(&mut self.rng)
                && eligible(self, i)
            {
                chosen.insert(i);
            }
        }
        let mut chosen: Vec<usize> = chosen.into_iter().collect();
        chosen.sort_unstable();
        chosen
    }

    async fn delete_random(&mut self, count: usize) -> anyhow::Result<usize> {
        let chosen = self.pick(count, |_, _| true);
        self.delete_all(&chosen).await?;
        Ok(chosen.len())
    }

    async fn relabel_all(&mut self, indices: &[usize], value: &'static str) -> anyhow::Result<()> {
        let api = &self.api;
        let retries = &self.retries;
        futures::stream::iter(indices.iter().copied())
            .map(|i| async move {
                let name = object_name(i);
                let patch = Patch::Merge(json!({ "metadata": { "labels": { LABEL: value } } }));
                let params = PatchParams::default();
                with_retries(&format!("relabel {name}"), retries, || {
                    api.patch(&name, &params, &patch)
                })
                .await?;
                Ok::<(), anyhow::Error>(())
            })
            .buffer_unordered(self.create_concurrency)
            .try_for_each(|()| futures::future::ready(Ok(())))
            .await?;
        for &i in indices {
            if value == OUT {
                self.out.insert(i);
            } else {
                self.out.remove(&i);
            }
        }
        Ok(())
    }

    /// Relabels `count` watched objects created before `before` out of the selector.
    async fn relabel_out(&mut self, count: usize, before: usize) -> anyhow::Result<usize> {
        let chosen = self.pick(count, |w, i| i < before && !w.out.contains(&i));
        self.relabel_all(&chosen, OUT).await?;
        Ok(chosen.len())
    }

    async fn relabel_back_in(&mut self) -> anyhow::Result<usize> {
        let mut back: Vec<usize> = self.out.iter().copied().collect();
        back.sort_unstable();
        self.relabel_all(&back, IN).await?;
        Ok(back.len())
    }

    /// What the apiserver lists (paged).
    async fn census(&self) -> anyhow::Result<Census> {
        let mut census = Census::default();
        let mut params = ListParams::default().limit(500);
        loop {
            let page =
                with_retries("list GuiSessions", &self.retries, || self.api.list(&params)).await?;
            for gs in &page.items {
                census.live += 1;
                let watched =
                    gs.metadata.labels.as_ref().and_then(|l| l.get(LABEL)) == Some(&IN.to_owned());
                if watched {
                    census.watched += 1;
                    if gs.status.as_ref().is_some_and(ready) {
                        census.watched_ready += 1;
                    }
                }
            }
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(census),
            }
        }
    }
}

async fn delete(api: &Api<GuiSession>, i: usize, retries: &AtomicU64) -> anyhow::Result<()> {
    let name = object_name(i);
    with_retries(&format!("delete {name}"), retries, || async {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            // Gone already (a retried delete whose first attempt went through).
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    })
    .await
}

fn guisession(i: usize) -> anyhow::Result<GuiSession> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "lightsail.operators.dev/v1alpha1",
        "kind": "GuiSession",
        "metadata": { "name": object_name(i), "labels": { LABEL: IN } },
        // Raised to the operator's --min-session-age (1h): no renewal during the run.
        "spec": { "resourceName": format!("{SIM_PREFIX}{i:05}"), "maxSessionAge": "1s" },
    }))?)
}

/// GET /metrics without panicking: the operator may be stopped or busy.
fn try_metrics(addr: SocketAddr) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").context("no HTTP header")?;
    anyhow::ensure!(
        head.split_whitespace().nth(1) == Some("200"),
        "GET /metrics: {head}"
    );
    Ok(body.to_owned())
}

fn maps_of(body: &str) -> Maps {
    let tracked = |map: &str| {
        metric_value(
            body,
            &format!("lightsail_gui_operator_tracked_objects{{map=\"{map}\"}}"),
        ) as u64
    };
    let reconciles = family_sum(body, "lightsail_gui_operator_reconciles_total") as u64;
    let ok = metric_value(
        body,
        "lightsail_gui_operator_reconciles_total{result=\"ok\"}",
    ) as u64;
    Maps {
        sessions: family_sum(body, "lightsail_gui_operator_sessions") as u64,
        active: metric_value(body, "lightsail_gui_operator_sessions{state=\"active\"}") as u64,
        unconfirmed_starts: tracked("unconfirmed_starts"),
        backoffs: tracked("backoffs"),
        account_index: tracked("account_index"),
        reconcile_errors: reconciles.saturating_sub(ok),
    }
}

fn settled(m: &Maps, expected: &Census) -> bool {
    let watched = expected.watched as u64;
    m.sessions == watched && m.active == watched && m.unconfirmed_starts == 0 && m.backoffs == 0
}

/// Counts the operator's relists and watch errors in its log (see [`LOG_FILTER`]).
fn watch_log(text: &str) -> WatchLog {
    let mut log = WatchLog::default();
    let mut synced = false;
    for line in text.lines() {
        if line.contains("GuiSession cache synced") {
            synced = true;
        } else if line.contains("\"requesting\"") && line.contains("/guisessions?") {
            if line.contains("watch=true") {
                log.guisession_watches += 1;
            } else if synced && !line.contains("continue=") {
                log.guisession_relists += 1;
            }
        } else if line.contains("kube_runtime::watcher") && line.contains("\"DEBUG\"") {
            if line.contains("code: 410") {
                log.watch_410s += 1;
            } else if line.contains("error") {
                log.watch_errors += 1;
            }
        }
    }
    log
}

/// Samples the tracked maps every 200 ms in a thread of its own, keeping their peaks; paused
/// while the operator is stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    peaks: Arc<Mutex<Peaks>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(addr: SocketAddr) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let peaks = Arc::new(Mutex::new(Peaks::default()));
        let thread = {
            let (stop, paused, peaks) = (stop.clone(), paused.clone(), peaks.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if !paused.load(Ordering::SeqCst)
                        && let Ok(body) = try_metrics(addr)
                    {
                        let m = maps_of(&body);
                        let mut p = peaks.lock().unwrap_or_else(|e| e.into_inner());
                        p.unconfirmed_starts = p.unconfirmed_starts.max(m.unconfirmed_starts);
                        p.backoffs = p.backoffs.max(m.backoffs);
                        p.account_index = p.account_index.max(m.account_index);
                    }
                    // A sampling interval, not a wait for another component.
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        Sampler {
            stop,
            paused,
            peaks,
            thread: Some(thread),
        }
    }

    fn take(&self) -> Peaks {
        std::mem::take(&mut *self.peaks.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs the churn scenario on runtimes of its own (see [`crate::scenarios::run_blocking`]).
pub fn run_blocking(opts: &ChurnOptions) -> anyhow::Result<ChurnReport> {
    crate::scenarios::on_runtimes(|sim| run(opts, sim))
}

/// Everything a wave needs besides the world.
struct Stage<'a> {
    opts: &'a ChurnOptions,
    cp: &'static ControlPlane,
    sim: RunningSimulator,
    op: Operator,
    sampler: Sampler,
}

impl Stage<'_> {
    fn maps(&self) -> anyhow::Result<Maps> {
        Ok(maps_of(&try_metrics(self.op.http)?))
    }

    fn faults(&self, error_rate: f64) -> anyhow::Result<()> {
        self.sim
            .set_faults(Faults {
                service_error_rate: error_rate,
                ..Faults::default()
            })
            .map_err(|e| anyhow::anyhow!("simulator faults: {e}"))
    }

    /// Waits until the operator has settled for [`STABLE`] (see [`settled`]); returns whether it
    /// did, and when the settled state began (or the deadline).
    async fn settle(&self, expected: &Census, deadline: Duration) -> (bool, Instant) {
        let start = Instant::now();
        let mut since: Option<Instant> = None;
        loop {
            let now = Instant::now();
            match self.maps() {
                Ok(m) if settled(&m, expected) => {
                    let began = *since.get_or_insert(now);
                    if now.duration_since(began) >= STABLE {
                        return (true, began);
                    }
                }
                _ => since = None,
            }
            if now.duration_since(start) >= deadline {
                return (false, now);
            }
            // Polling /metrics: the gauges are only there.
            tokio::time::sleep(POLL).await;
        }
    }

    /// Records a point once the operator settled (or the deadline passed).
    async fn record(
        &self,
        world: &World,
        mut point: ChurnPoint,
        changes_done: Instant,
        deadline: Duration,
    ) -> anyhow::Result<ChurnPoint> {
        let expected = world.expected();
        let (ok, began) = self.settle(&expected, deadline).await;
        point.settled = ok;
        point.settle_s = began.duration_since(changes_done).as_secs_f64();
        point.expected = expected;
        point.census = world.census().await?;
        point.maps = self.maps()?;
        point.peaks = self.sampler.take();
        let pid = self.op.pid().context("operator not running")?;
        let mem = probe::memory(pid)?;
        point.rss_mib = mem.rss_bytes as f64 / MIB;
        point.peak_rss_mib = mem.hwm_bytes as f64 / MIB;
        point.watch = watch_log(&self.op.log_text());
        let calls: CallReport = self.sim.calls();
        point.start_gui_session_calls = calls.count(Some("StartGUISession"), None, None);
        point.service_exceptions_injected = calls.count(None, None, Some("ServiceException"));
        let m = &point.maps;
        progress(format!(
            "churn: {} {}: live {} (watched {}, Ready {}); sessions {}; unconfirmed_starts {} \
             (peak {}); backoffs {} (peak {}); account_index {}; RSS {:.1} MiB; relists {}, \
             410s {}; {} after {:.1} s",
            if point.is_final { "final" } else { "wave" },
            point.wave,
            point.census.live,
            point.census.watched,
            point.census.watched_ready,
            m.sessions,
            m.unconfirmed_starts,
            point.peaks.unconfirmed_starts,
            m.backoffs,
            point.peaks.backoffs,
            m.account_index,
            point.rss_mib,
            point.watch.guisession_relists,
            point.watch.watch_410s,
            if ok { "settled" } else { "NOT settled" },
            point.settle_s
        ));
        Ok(point)
    }

    /// One wave of changes (see the module's doc).
    async fn wave(
        &mut self,
        world: &mut World,
        wave: usize,
        gap: Gap,
    ) -> anyhow::Result<ChurnPoint> {
        let opts = self.opts;
        let n = opts.n;
        let batch = opts.batch;
        let mut point = ChurnPoint {
            wave,
            gap,
            ..ChurnPoint::default()
        };
        self.sampler.take();
        self.faults(opts.error_rate)?;
        let started = Instant::now();
        point.relabelled_in = world.relabel_back_in().await?;
        let first_new = world.next;
        let (kept, doomed) = world.create(batch, true).await?;
        point.created = batch;
        point.deleted_in_flight = doomed;
        let excess = world.live.len().saturating_sub(n);
        let relabels = batch / 2;
        if gap != Gap::None {
            point.unconfirmed_at_stop = self.maps().map(|m| m.unconfirmed_starts).unwrap_or(0);
            self.sampler.pause(true);
            self.op.suspend();
            // Half the gap's deletes are objects created just now (starts in flight when the
            // operator stopped), the rest any live objects; then a quarter batch relabelled out.
            let gap_deletes = excess / 2;
            let newest: Vec<usize> = kept.iter().rev().take(gap_deletes / 2).copied().collect();
            world.delete_all(&newest).await?;
            point.deleted_in_gap_new = newest.len();
            point.deleted_in_gap = newest.len()
                + world
                    .delete_random(gap_deletes.saturating_sub(newest.len()))
                    .await?;
            point.relabelled_out_in_gap = world.relabel_out(relabels / 2, first_new).await?;
            if gap == Gap::ApiserverRestart {
                progress(format!("churn: wave {wave}: restarting kube-apiserver"));
                let cp = self.cp;
                tokio::task::block_in_place(|| {
                    cp.kill_apiserver();
                    cp.start_apiserver();
                });
            }
            self.op.resume();
            self.sampler.pause(false);
        }
        let more_relabels = relabels.saturating_sub(point.relabelled_out_in_gap);
        point.relabelled_out =
            point.relabelled_out_in_gap + world.relabel_out(more_relabels, first_new).await?;
        let more_deletes = world.live.len().saturating_sub(n);
        point.deleted = world.delete_random(more_deletes).await?;
        self.faults(0.0)?;
        let done = Instant::now();
        point.changes_s = done.duration_since(started).as_secs_f64();
        self.record(world, point, done, opts.wave_deadline).await
    }
}

pub async fn run(
    opts: &ChurnOptions,
    sim_rt: tokio::runtime::Handle,
) -> anyhow::Result<ChurnReport> {
    lightsail_gui_operator::install_crypto_provider();
    let n = opts.n;
    if n == 0 || opts.batch == 0 || opts.batch > n {
        bail!("churn needs 1 ≤ batch ≤ N");
    }
    if std::env::var_os("LGO_TEST_KUBECONFIG").is_some() {
        bail!(
            "churn restarts kube-apiserver: it needs a control plane of its own (unset LGO_TEST_KUBECONFIG)"
        );
    }
    let total = n + opts.waves * opts.batch;
    if total > 100_000 {
        bail!("{total} objects in all: more than names of five digits allow");
    }
    let machine = Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model: probe::cpu_model(),
        kernel: probe::kernel(),
        mem_total_mib: probe::mem_total_mib(),
        loadavg_start: probe::loadavg(),
        loadavg_end: [0.0; 3],
    };

    progress("starting the control plane");
    let cp = tokio::task::block_in_place(control_plane);
    let client = cp.client().await;
    install_crds(&client).await;
    let versions = versions(&opts.operator, cp, &client).await;

    let mut config = SimConfig::default();
    for i in 0..total {
        config = config.with_computer(ComputerSpec::new(format!("{SIM_PREFIX}{i:05}")));
    }
    let sim = sim_rt
        .spawn(Simulator::start(config, "127.0.0.1:0"))
        .await??;
    let sim_url = sim.endpoint_url();

    let ns = test_namespace(&client, "bench-churn").await;
    label_namespace(&client, &ns).await?;
    let api: Api<GuiSession> = Api::namespaced(client.clone(), &ns);
    let selector = format!("{LABEL}={IN}");
    let own = format!("{}={}", OWN_IDENTITY_LABEL.0, OWN_IDENTITY_LABEL.1);
    let rate = opts.unthrottled_rate.to_string();
    let operator_args: Vec<(&str, String)> = vec![
        ("--concurrency", opts.concurrency.to_string()),
        ("--selector", selector),
        ("--own-identity-namespaces", own),
        ("--min-session-age", "1h".into()),
        ("--rate-limit", rate.clone()),
        ("--rate-burst", rate),
        // Shorter than the defaults (60 s, 30 s): a start whose answer was a ServiceException
        // (the service may have acted) is looked up once the settle window has passed, and the
        // waves should not wait a minute for it.
        ("--start-settle", "10s".into()),
        ("--lightsail-timeout", "5s".into()),
    ];
    let mut options = OperatorOptions::new(&ns, &sim_url)
        .binary(&opts.operator)
        .log(LOG_FILTER);
    for (flag, value) in &operator_args {
        options = options.arg(flag, value);
    }
    let op = tokio::task::block_in_place(|| {
        let mut op = Operator::start(cp, options);
        op.wait_for_log("GuiSession cache synced", Duration::from_secs(120), |_| {
            Some(())
        });
        op
    });
    let sampler = Sampler::start(op.http);
    let mut stage = Stage {
        opts,
        cp,
        sim,
        op,
        sampler,
    };
    let mut world = World {
        api,
        live: LiveSet::default(),
        out: HashSet::new(),
        next: 0,
        rng: Rng(0x5EED_C4A2),
        retries: AtomicU64::new(0),
        create_concurrency: opts.create_concurrency,
    };
    let mut report = ChurnReport {
        machine,
        versions,
        config: ChurnConfig {
            n,
            waves: opts.waves,
            batch: opts.batch,
            gap_every: opts.gap_every,
            error_rate: opts.error_rate,
            concurrency: opts.concurrency,
            create_concurrency: opts.create_concurrency,
            operator_binary: opts.operator.display().to_string(),
            operator_args: operator_args
                .iter()
                .flat_map(|(f, v)| [f.to_string(), v.clone()])
                .collect(),
            log_filter: LOG_FILTER.into(),
            wave_deadline_s: opts.wave_deadline.as_secs_f64(),
            final_deadline_s: opts.final_deadline.as_secs_f64(),
            started_at: jiff::Timestamp::now().to_string(),
        },
        ..ChurnReport::default()
    };

    progress(format!("churn: creating {n} GuiSessions"));
    let started = Instant::now();
    world.create(n, false).await?;
    let done = Instant::now();
    let initial = ChurnPoint {
        created: n,
        changes_s: done.duration_since(started).as_secs_f64(),
        ..ChurnPoint::default()
    };
    let initial_deadline = Duration::from_secs(120) + Duration::from_millis(50) * n as u32;
    report.points.push(
        stage
            .record(&world, initial, done, initial_deadline)
            .await?,
    );

    let mut gaps = 0;
    for wave in 1..=opts.waves {
        let gap = if opts.gap_every > 0 && wave % opts.gap_every == 0 {
            gaps += 1;
            // The first gap restarts the apiserver, the next one only pauses, and so on.
            if gaps % 2 == 1 {
                Gap::ApiserverRestart
            } else {
                Gap::Pause
            }
        } else {
            Gap::None
        };
        progress(format!(
            "churn: wave {wave} of {}{}",
            opts.waves,
            match gap {
                Gap::None => String::new(),
                g => format!(" (watch gap: {})", g.label()),
            }
        ));
        let point = stage.wave(&mut world, wave, gap).await?;
        report.points.push(point);
    }

    // After the last wave: once more, with the longer deadline.
    let last = ChurnPoint {
        wave: opts.waves,
        is_final: true,
        ..ChurnPoint::default()
    };
    let final_point = stage
        .record(&world, last, Instant::now(), opts.final_deadline)
        .await?;
    report.points.push(final_point);

    let Stage {
        mut op, sampler, ..
    } = stage;
    drop(sampler);
    tokio::task::block_in_place(|| op.terminate());
    if let Some(path) = &opts.operator_log {
        std::fs::copy(&op.log, path)
            .with_context(|| format!("copying the operator's log to {}", path.display()))?;
        progress(format!(
            "churn: the operator's log is in {}",
            path.display()
        ));
    }
    report.summary = summarize(&report.points);
    report.machine.loadavg_end = probe::loadavg();
    Ok(report)
}

async fn label_namespace(client: &Client, ns: &str) -> anyhow::Result<()> {
    let (key, value) = OWN_IDENTITY_LABEL;
    Api::<Namespace>::all(client.clone())
        .patch(
            ns,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { key: value } } })),
        )
        .await
        .with_context(|| format!("labelling namespace {ns}"))?;
    Ok(())
}

fn summarize(points: &[ChurnPoint]) -> ChurnSummary {
    let waves = points.iter().filter(|p| p.wave > 0 && !p.is_final);
    let mut s = ChurnSummary {
        points: points.len(),
        points_settled: points.iter().filter(|p| p.settled).count(),
        unconfirmed_starts_within_live: true,
        backoffs_within_live: true,
        account_index_within_live: true,
        ..ChurnSummary::default()
    };
    for p in waves {
        s.created += p.created;
        s.deleted += p.deleted_in_flight + p.deleted + p.deleted_in_gap;
        s.deleted_in_flight += p.deleted_in_flight;
        s.deleted_in_gaps += p.deleted_in_gap;
        s.relabelled_out += p.relabelled_out;
        s.relabelled_in += p.relabelled_in;
        match p.gap {
            Gap::None => {}
            Gap::Pause => s.pause_gaps += 1,
            Gap::ApiserverRestart => s.apiserver_restart_gaps += 1,
        }
    }
    if let Some(first) = points.first() {
        s.created += first.created;
    }
    for p in points {
        let live = p.census.watched as u64;
        s.unconfirmed_starts_within_live &= p.maps.unconfirmed_starts <= live;
        s.backoffs_within_live &= p.maps.backoffs <= live;
        s.account_index_within_live &= p.maps.account_index <= live;
        s.account_index_off_points += usize::from(p.maps.account_index != live);
        s.sessions_off_points += usize::from(p.maps.sessions != live);
    }
    s
}

impl ChurnReport {
    /// The human-readable table.
    pub fn table(&self) -> String {
        let c = &self.config;
        let mut out = String::new();
        use std::fmt::Write as _;
        let _ = writeln!(
            out,
            "churn: N = {}, {} waves of {} creates (every 4th deleted at once), {} relabels out \
             and deletes back to N, a watch gap every {} waves; ServiceException rate {} during \
             changes; {} × {}; load average {:.2} at start, {:.2} at end; {}; kube-apiserver {}",
            c.n,
            c.waves,
            c.batch,
            c.batch / 2,
            c.gap_every,
            c.error_rate,
            self.machine.nproc,
            self.machine.cpu_model,
            self.machine.loadavg_start[0],
            self.machine.loadavg_end[0],
            self.versions.operator,
            self.versions.kubernetes,
        );
        let _ = writeln!(out, "operator: {}", c.operator_args.join(" "));
        out.push('\n');
        let _ = writeln!(
            out,
            "| wave | gap | created (deleted at once) | deleted (in gap: new) | relabelled out (in gap) / in | \
             listed: all / watched / Ready | sessions gauge | unconfirmed_starts (peak; at stop) | \
             backoffs (peak) | account_index (peak) | reconcile errors | RSS (peak) MiB | \
             GuiSession relists / watch 410s so far | settled after |"
        );
        let _ = writeln!(
            out,
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for p in &self.points {
            let wave = if p.is_final {
                "final".to_owned()
            } else if p.wave == 0 {
                "0 (initial)".to_owned()
            } else {
                p.wave.to_string()
            };
            let changes = if p.is_final {
                "—".to_owned()
            } else {
                format!("{} ({})", p.created, p.deleted_in_flight)
            };
            let deletes = if p.is_final || p.wave == 0 {
                "—".to_owned()
            } else {
                format!(
                    "{} ({}: {})",
                    p.deleted + p.deleted_in_gap,
                    p.deleted_in_gap,
                    p.deleted_in_gap_new
                )
            };
            let relabels = if p.is_final || p.wave == 0 {
                "—".to_owned()
            } else {
                format!(
                    "{} ({}) / {}",
                    p.relabelled_out, p.relabelled_out_in_gap, p.relabelled_in
                )
            };
            let at_stop = if p.gap == Gap::None {
                String::new()
            } else {
                format!("; {}", p.unconfirmed_at_stop)
            };
            let _ = writeln!(
                out,
                "| {wave} | {} | {changes} | {deletes} | {relabels} | {} / {} / {} | {} | {} ({}{at_stop}) | {} ({}) | {} ({}) | {} | {:.1} ({:.1}) | {} / {} | {}{:.1} s |",
                p.gap.label(),
                p.census.live,
                p.census.watched,
                p.census.watched_ready,
                p.maps.sessions,
                p.maps.unconfirmed_starts,
                p.peaks.unconfirmed_starts,
                p.maps.backoffs,
                p.peaks.backoffs,
                p.maps.account_index,
                p.peaks.account_index,
                p.maps.reconcile_errors,
                p.rss_mib,
                p.peak_rss_mib,
                p.watch.guisession_relists,
                p.watch.watch_410s,
                if p.settled { "" } else { "NOT settled, " },
                p.settle_s,
            );
        }
        let s = &self.summary;
        let yes = |b: bool| if b { "yes" } else { "**no**" };
        out.push('\n');
        let _ = writeln!(
            out,
            "in all: {} created, {} deleted ({} right after their create, {} during watch gaps), \
             {} relabelled out and {} back in; {} apiserver-restart gaps and {} pause gaps; \
             {} of {} points settled",
            s.created,
            s.deleted,
            s.deleted_in_flight,
            s.deleted_in_gaps,
            s.relabelled_out,
            s.relabelled_in,
            s.apiserver_restart_gaps,
            s.pause_gaps,
            s.points_settled,
            s.points
        );
        let _ = writeln!(
            out,
            "at every point, at most the watched objects listed: unconfirmed_starts {}, backoffs {}, \
             account_index {}; points where account_index ≠ watched: {}; where the sessions gauge ≠ \
             watched: {}",
            yes(s.unconfirmed_starts_within_live),
            yes(s.backoffs_within_live),
            yes(s.account_index_within_live),
            s.account_index_off_points,
            s.sessions_off_points
        );
        if let Some(last) = self.points.last() {
            let _ = writeln!(
                out,
                "operator log: {} GuiSession relists (list requests after its cache synced), {} \
                 GuiSession watch requests, {} watch 410s (any watch), {} other watcher errors; \
                 Lightsail: {} StartGUISession calls, {} ServiceExceptions injected",
                last.watch.guisession_relists,
                last.watch.guisession_watches,
                last.watch.watch_410s,
                last.watch.watch_errors,
                last.start_gui_session_calls,
                last.service_exceptions_injected
            );
        }
        out
    }
}
