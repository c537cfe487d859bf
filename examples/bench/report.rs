//! The benchmark's results: what is written as JSON and printed as a table, and the targets of
//! issues #7 and #15 checked against them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub const MIB: f64 = 1024.0 * 1024.0;

/// Per-object latencies in milliseconds (nearest-rank percentiles).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Latency {
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    #[serde(default)]
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(mut samples: Vec<Duration>) -> Latency {
        samples.sort();
        let pick = |q: f64| -> f64 {
            if samples.is_empty() {
                return 0.0;
            }
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[rank - 1].as_secs_f64() * 1000.0
        };
        Latency {
            count: samples.len(),
            p50_ms: pick(0.50),
            p90_ms: pick(0.90),
            p95_ms: pick(0.95),
            p99_ms: pick(0.99),
            max_ms: pick(1.0),
        }
    }

    fn cell(&self) -> String {
        format!(
            "{} / {} / {} / {} s",
            secs(self.p50_ms),
            secs(self.p90_ms),
            secs(self.p99_ms),
            secs(self.max_ms)
        )
    }

    /// `p50 / p95 / max`, the columns of the running-against-stopped comparison.
    fn cell_p95(&self) -> String {
        format!(
            "{} / {} / {} s",
            secs(self.p50_ms),
            secs(self.p95_ms),
            secs(self.max_ms)
        )
    }
}

fn secs(ms: f64) -> String {
    format!("{:.2}", ms / 1000.0)
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub mem_total_mib: u64,
    /// 1/5/15-minute load averages when the run started and ended: the machine is shared.
    pub loadavg_start: [f64; 3],
    pub loadavg_end: [f64; 3],
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Versions {
    pub operator: String,
    pub git_commit: String,
    pub kubernetes: String,
    pub etcd: String,
    pub rustc: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub n: usize,
    pub operator_binary: String,
    /// `--concurrency` of the operator, and the baseline's writers.
    pub concurrency: u16,
    /// Create calls in flight, for the operator's and the baseline's objects alike.
    pub create_concurrency: usize,
    /// Client-side Lightsail limit given to the operator in the unthrottled scenarios: high, so
    /// that the apiserver and not the limiter is the bottleneck.
    pub unthrottled_rate_limit: u32,
    pub unthrottled_rate_burst: u32,
    pub settle_time_s: f64,
    pub steady_window_s: f64,
    pub throttled_n: usize,
    pub throttle_rps: f64,
    pub throttle_burst: u32,
    pub throttled_operator_rate_limit: u32,
    pub throttled_operator_rate_burst: u32,
    /// How long the stopped-computer variant's computers stay `pending` after StartInstance.
    #[serde(default)]
    pub stopped_starting_time_s: f64,
    pub started_at: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Calls {
    pub start_gui_session: u64,
    pub get_operation: u64,
    pub get_operations_for_resource: u64,
    pub throttled: u64,
    pub total: u64,
    /// Every action's calls, whatever their outcome.
    #[serde(default)]
    pub by_action: BTreeMap<String, u64>,
}

/// The order actions are listed in: the path of a new session, then the rest by name.
const ACTION_ORDER: [&str; 6] = [
    "GetInstanceState",
    "GetInstance",
    "StartInstance",
    "GetOperationsForResource",
    "StartGUISession",
    "GetOperation",
];

fn action_rank(action: &str) -> usize {
    ACTION_ORDER
        .iter()
        .position(|a| *a == action)
        .unwrap_or(ACTION_ORDER.len())
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Burst {
    /// First create sent → last object seen Ready.
    pub total_s: f64,
    /// First create sent → last create answered.
    pub create_s: f64,
    pub ready: usize,
    pub to_operation: Latency,
    pub to_ready: Latency,
    /// `lightsail_gui_operator_status_writes_total`, read at the end of the steady-state window.
    pub status_writes_metric: u64,
    /// `lightsail_gui_operator_status_conflicts_total` at the same time: writes refused by the
    /// resourceVersion precondition of the fenced start.
    #[serde(default)]
    pub status_conflicts_metric: u64,
    /// Distinct statuses seen on the watch.
    pub status_writes_watched: u64,
    pub writes_per_object_mean: f64,
    pub writes_per_object_min: usize,
    pub writes_per_object_max: usize,
    /// events.k8s.io Events the operator wrote into the namespace: apiserver writes the baseline
    /// does not do.
    pub events: u64,
    pub calls: Calls,
    pub get_operation_per_start: f64,
    pub operator_cpu_s: f64,
    pub apiserver_cpu_s: f64,
    pub etcd_cpu_s: f64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Baseline {
    pub total_s: f64,
    pub create_s: f64,
    pub ready: usize,
    /// Status writes made: each object's statuses from the burst run, replayed.
    pub writes: u64,
    pub writes_per_object_mean: f64,
    pub concurrency: u16,
    pub write_retries: u64,
    pub to_ready: Latency,
    pub apiserver_cpu_s: f64,
    pub etcd_cpu_s: f64,
}

/// The baseline with only each object's first and last status from the burst: the two writes
/// per start the operator aims for (the fence, then the operation after a first poll).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct TwoWriteBaseline {
    /// True when no object had more than two statuses in the burst: then this baseline is the
    /// replay baseline, not run again, and its figures are copied from it.
    pub same_as_replay: bool,
    #[serde(flatten)]
    pub figures: Baseline,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Ratios {
    pub burst_total_over_baseline: f64,
    pub burst_apiserver_etcd_cpu_over_baseline: f64,
    /// Burst total over the two-writes-per-object baseline's.
    #[serde(default)]
    pub burst_total_over_two_write_baseline: f64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Steady {
    pub window_s: f64,
    pub operator_cpu_s: f64,
    pub operator_cpu_percent_of_core: f64,
    pub lightsail_calls: u64,
    pub status_writes_watched: u64,
    pub status_writes_metric: u64,
    pub rss_mib: f64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Renewal {
    /// The effective maxSessionAge of the wave (spec 1s, raised to `--min-session-age`).
    pub max_session_age_s: f64,
    /// Operator started → every object Ready with a new operation.
    pub total_s: f64,
    /// Operator's cache synced → every object renewed.
    pub after_sync_s: f64,
    pub renewed: usize,
    pub objects_with_one_start: usize,
    pub objects_with_other_starts: usize,
    pub calls: Calls,
    pub calls_per_object: f64,
    pub get_operation_per_start: f64,
    pub status_writes_watched: u64,
    pub writes_per_object_mean: f64,
    pub to_ready_after_start: Latency,
    pub operator_cpu_s: f64,
    pub operator_peak_rss_mib: f64,
    /// True when the wave took longer than maxSessionAge (then a second window began).
    pub longer_than_window: bool,
}

/// A fresh operator started on the N sessions the renewal wave just renewed, none of them due:
/// what a restart costs when there is nothing to do.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Restart {
    /// `--min-session-age` of the restarted operator: the renewal wave's.
    pub min_session_age_s: f64,
    /// Process spawned → "GuiSession cache synced" (the log line's timestamp).
    pub to_synced_s: f64,
    /// Process spawned → its reconciles counter (all results) reached N.
    pub to_all_scheduled_s: f64,
    /// Reconciles counter (all results) at the end of the quiet window.
    pub reconciles: u64,
    /// Lightsail calls from spawn to the end of the quiet window.
    pub lightsail_calls: u64,
    /// Status changes on the watch from spawn to the end of the quiet window.
    pub status_writes_watched: u64,
    /// `lightsail_gui_operator_status_writes_total` at the end of the quiet window.
    pub status_writes_metric: u64,
    /// VmRSS at the end of the quiet window: a synced cache of N objects, no work done.
    pub rss_mib: f64,
    /// VmHWM at the same time.
    pub peak_rss_mib: f64,
    /// (rss − the burst operator's empty RSS) / N.
    pub bytes_per_guisession: f64,
    /// The quiet window after all N were scheduled: `--steady-window`, or shorter when the first
    /// session is due before (2 s before) its end.
    pub window_s: f64,
    /// CPU seconds of the restarted process, start-up and cache sync included.
    pub operator_cpu_s: f64,
}

/// One of the two operator processes of the two-shard burst.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct ShardProcess {
    /// `--shard` key, or "default" for the instance started with `--shards`.
    pub shard: String,
    /// GuiSessions labelled for it.
    pub objects: usize,
    /// VmRSS once its (empty) cache synced.
    pub empty_rss_mib: f64,
    /// VmHWM at the end of the quiet window.
    pub peak_rss_mib: f64,
    /// VmRSS at the end of the quiet window.
    pub steady_rss_mib: f64,
    /// Reconciles counter (all results) at the end of the quiet window.
    pub reconciles: u64,
    /// `lightsail_gui_operator_status_writes_total` at the end of the quiet window.
    pub status_writes_metric: u64,
    /// CPU seconds from the first create to all Ready.
    pub cpu_s: f64,
}

/// The burst again, in a fresh namespace and on computers of its own, served by two operator
/// processes at once: half the objects labelled for shard `blue`, the rest left to the default
/// instance.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct TwoShards {
    /// First create sent → last object seen Ready.
    pub total_s: f64,
    pub create_s: f64,
    pub ready: usize,
    pub to_ready: Latency,
    /// Two-shard total over the one-shard burst's.
    pub total_over_one_shard: f64,
    /// Objects with exactly one StartGUISession from the first create to the end of the quiet
    /// window after all Ready.
    pub objects_with_one_start: usize,
    pub objects_with_other_starts: usize,
    pub calls: Calls,
    pub status_writes_watched: u64,
    pub apiserver_cpu_s: f64,
    pub etcd_cpu_s: f64,
    /// The quiet window after all Ready, after which memory and metrics are read.
    pub window_s: f64,
    pub default_instance: ShardProcess,
    pub shard_blue: ShardProcess,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Throttled {
    pub n: usize,
    pub limit_rps: f64,
    pub limit_burst: u32,
    pub operator_rate_limit: u32,
    pub operator_rate_burst: u32,
    pub total_s: f64,
    pub ready: usize,
    pub calls_ok: u64,
    pub calls_throttled: u64,
    pub throttled_share: f64,
    /// Calls answered without throttling per second over the run.
    pub achieved_rps: f64,
    pub fraction_of_limit: f64,
    pub to_ready: Latency,
}

/// The burst again on computers that are `stopped` when their GuiSession is created, with
/// `computer: {startIfStopped: true}`: each new session first starts its computer
/// (StartInstance, followed with GetOperation), then starts as on a running one.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Stopped {
    pub n: usize,
    /// How long the simulator keeps a computer `pending` after StartInstance.
    pub starting_time_s: f64,
    /// First create sent → last object seen Ready with a session.
    pub total_s: f64,
    /// First create sent → last create answered.
    pub create_s: f64,
    pub ready: usize,
    /// Creation → `status.operation` (the session's start recorded).
    pub to_operation: Latency,
    /// Creation → Ready with a session.
    pub to_ready: Latency,
    /// First create → all Ready.
    pub calls: Calls,
    /// Computers with exactly one StartInstance, and with exactly one StartGUISession, from the
    /// first create to the end of the quiet window.
    pub computers_with_one_instance_start: usize,
    pub computers_with_one_session_start: usize,
    /// Computers the simulator has `running` at the end.
    pub computers_running: usize,
    pub status_writes_watched: u64,
    pub writes_per_object_mean: f64,
    pub writes_per_object_min: usize,
    pub writes_per_object_max: usize,
    /// Lightsail calls in a quiet window after all Ready (none expected).
    pub calls_after_ready: u64,
    pub quiet_window_s: f64,
    pub operator_cpu_s: f64,
    pub apiserver_cpu_s: f64,
    pub etcd_cpu_s: f64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Memory {
    /// Operator RSS once its (empty) cache synced, before any object existed.
    pub empty_rss_mib: f64,
    /// VmHWM of the operator that ran burst and steady state.
    pub peak_rss_mib: f64,
    /// VmRSS at the end of the steady-state window.
    pub steady_rss_mib: f64,
    /// (steady − empty) / N.
    pub bytes_per_guisession: f64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Target {
    pub name: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub machine: Machine,
    pub versions: Versions,
    pub config: Config,
    pub burst: Burst,
    pub baseline: Baseline,
    #[serde(default)]
    pub two_write_baseline: TwoWriteBaseline,
    pub ratios: Ratios,
    pub steady: Steady,
    pub renewal: Renewal,
    #[serde(default)]
    pub restart: Restart,
    pub throttled: Throttled,
    #[serde(default)]
    pub two_shards: TwoShards,
    #[serde(default)]
    pub stopped: Stopped,
    pub memory: Memory,
    pub targets: Vec<Target>,
    /// The time series the plots are drawn from (examples/bench/plot.rs); empty in JSON written
    /// before they were recorded.
    #[serde(default)]
    pub series: Series,
}

/// What the plots of BENCHMARKS.md are drawn from. Times in seconds, rounded to the millisecond;
/// memory in MiB.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Burst: for each object, first create sent → its first Ready status seen on the watch,
    /// sorted, so that the k-th value (from 1) is when k objects were Ready.
    #[serde(default)]
    pub burst_ready_s: Vec<f64>,
    /// Renewal wave, one entry per renewed session (in object order): when it was due (its old
    /// session's start + the wave's maxSessionAge), relative to the wave's operator being
    /// spawned (negative: due before that operator ran)...
    #[serde(default)]
    pub renewal_due_s: Vec<f64>,
    /// ...and how late it was renewed: its first Ready status with a new operation seen on the
    /// watch, minus when it was due. The operator being down until the wave started is part of
    /// it: every session was due before.
    #[serde(default)]
    pub renewal_lateness_s: Vec<f64>,
    /// How often the operators' RSS was sampled.
    #[serde(default)]
    pub rss_interval_s: f64,
    /// VmRSS of each operator process the run started, sampled from its start to its end.
    #[serde(default)]
    pub rss: Vec<RssSeries>,
}

/// One operator process's RSS over the run.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct RssSeries {
    /// The scenario it served (`burst + steady`, `renewal`, ...).
    pub process: String,
    /// Seconds since the run started (the control plane's start included).
    pub t_s: Vec<f64>,
    pub rss_mib: Vec<f64>,
}

/// `x` rounded to three decimals: milliseconds of a time in seconds, KiB of a size in MiB.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `a / b`, 0 when there is nothing to divide by (JSON has no NaN).
pub fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

impl Report {
    /// Checks the targets of issues #7 and #15. The 10,000-object targets are judged on whatever
    /// N ran; the table says which N that was.
    pub fn judge(&mut self) {
        let n = self.config.n as u64;
        let mut t = Vec::new();
        let mut add = |name: &str, target: &str, measured: String, met: bool| {
            t.push(Target {
                name: name.into(),
                target: target.into(),
                measured,
                met,
            })
        };
        let r = self.ratios.burst_total_over_baseline;
        add(
            "burst total / baseline",
            "≤ 1.25",
            format!("{r:.2}"),
            r > 0.0 && r <= 1.25,
        );
        let peak = self.memory.peak_rss_mib;
        add(
            "operator peak RSS",
            "≤ 64 MiB",
            format!("{peak:.1} MiB"),
            peak <= 64.0,
        );
        let cpu = self.steady.operator_cpu_percent_of_core;
        add(
            "idle CPU",
            "≤ 0.5 % of a core",
            format!("{cpu:.3} %"),
            cpu <= 0.5,
        );
        add(
            "idle Lightsail calls",
            "0",
            self.steady.lightsail_calls.to_string(),
            self.steady.lightsail_calls == 0,
        );
        add(
            "idle status writes",
            "0",
            self.steady.status_writes_watched.to_string(),
            self.steady.status_writes_watched == 0,
        );
        let starts = self.burst.calls.start_gui_session;
        add(
            "StartGUISession calls, burst",
            "= N",
            format!("{starts} (N = {n})"),
            starts == n,
        );
        let one = self.renewal.objects_with_one_start;
        add(
            "objects with exactly 1 start, renewal window",
            "= N",
            format!("{one} of {n}"),
            one as u64 == n && self.renewal.calls.start_gui_session == n,
        );
        let g = self.burst.get_operation_per_start;
        add(
            "GetOperation per start (1 s settle), burst",
            "≤ 2",
            format!("{g:.2}"),
            g <= 2.0,
        );
        let g = self.renewal.get_operation_per_start;
        add(
            "GetOperation per start (1 s settle), renewal",
            "≤ 2",
            format!("{g:.2}"),
            g <= 2.0,
        );
        let f = self.throttled.fraction_of_limit;
        add(
            "throttled: share of the limit used",
            "≥ 90 %",
            format!("{:.1} %", f * 100.0),
            f >= 0.9,
        );
        let s = self.throttled.throttled_share;
        add(
            "throttled: calls throttled",
            "≤ 1 %",
            format!("{:.2} %", s * 100.0),
            s <= 0.01,
        );
        let rs = &self.restart;
        add(
            "restart: Lightsail calls",
            "0",
            rs.lightsail_calls.to_string(),
            rs.lightsail_calls == 0,
        );
        add(
            "restart: status writes (watch events / metric)",
            "0 / 0",
            format!("{} / {}", rs.status_writes_watched, rs.status_writes_metric),
            rs.status_writes_watched == 0 && rs.status_writes_metric == 0,
        );
        let one = self.two_shards.objects_with_one_start;
        add(
            "two shards: objects with exactly 1 start",
            "= N",
            format!("{one} of {n}"),
            one as u64 == n && self.two_shards.calls.start_gui_session == n,
        );
        let st = &self.stopped;
        add(
            "stopped computers: exactly 1 StartInstance and 1 StartGUISession each",
            "= N",
            format!(
                "{} / {} of {n}",
                st.computers_with_one_instance_start, st.computers_with_one_session_start
            ),
            st.computers_with_one_instance_start as u64 == n
                && st.computers_with_one_session_start as u64 == n
                && st.calls.by_action.get("StartInstance") == Some(&n)
                && st.calls.start_gui_session == n,
        );
        self.targets = t;
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let c = &self.config;
        let b = &self.burst;
        let base = &self.baseline;
        let s = &self.steady;
        let w = &self.renewal;
        let th = &self.throttled;
        let m = &self.memory;
        let two = &self.two_write_baseline;
        let rs = &self.restart;
        let ts = &self.two_shards;
        let mut rows: Vec<(&str, String, String)> = Vec::new();
        let mut row = |scenario: &'static str, figure: String, value: String| {
            rows.push((scenario, figure, value));
        };
        row(
            "baseline",
            format!(
                "total: plain client, {:.2} status writes/object, {} writers",
                base.writes_per_object_mean, base.concurrency
            ),
            format!("{:.2} s", base.total_s),
        );
        row(
            "baseline",
            "creation → last write seen p50/p90/p99/max".into(),
            base.to_ready.cell(),
        );
        row(
            "baseline",
            "apiserver + etcd CPU".into(),
            format!("{:.1} s", base.apiserver_cpu_s + base.etcd_cpu_s),
        );
        row(
            "baseline",
            format!(
                "total: two writes/object (first and last status; {:.2}/object){}",
                two.figures.writes_per_object_mean,
                if two.same_as_replay {
                    ", same as the replay: not run again"
                } else {
                    ""
                }
            ),
            format!("{:.2} s", two.figures.total_s),
        );
        row(
            "burst",
            "total: creation → all Ready".into(),
            format!("{:.2} s", b.total_s),
        );
        row(
            "burst",
            "total / baseline".into(),
            format!("{:.2}", self.ratios.burst_total_over_baseline),
        );
        row(
            "burst",
            "total / two-write baseline".into(),
            format!("{:.2}", self.ratios.burst_total_over_two_write_baseline),
        );
        row(
            "burst",
            "creation → status.operation p50/p90/p99/max".into(),
            b.to_operation.cell(),
        );
        row(
            "burst",
            "creation → Ready p50/p90/p99/max".into(),
            b.to_ready.cell(),
        );
        row(
            "burst",
            "status writes/object (metric; min–max seen)".into(),
            format!(
                "{:.2} ({}–{})",
                ratio(b.status_writes_metric as f64, c.n as f64),
                b.writes_per_object_min,
                b.writes_per_object_max
            ),
        );
        row(
            "burst",
            "409 conflicts/object (metric)".into(),
            format!("{:.3}", ratio(b.status_conflicts_metric as f64, c.n as f64)),
        );
        row(
            "burst",
            "Events written/object".into(),
            format!("{:.2}", ratio(b.events as f64, c.n as f64)),
        );
        row(
            "burst",
            "StartGUISession / GetOperation / GetOperationsForResource".into(),
            format!(
                "{} / {} / {}",
                b.calls.start_gui_session,
                b.calls.get_operation,
                b.calls.get_operations_for_resource
            ),
        );
        row(
            "burst",
            "GetOperation per start".into(),
            format!("{:.2}", b.get_operation_per_start),
        );
        row(
            "burst",
            "CPU: operator / apiserver + etcd".into(),
            format!(
                "{:.1} s / {:.1} s",
                b.operator_cpu_s,
                b.apiserver_cpu_s + b.etcd_cpu_s
            ),
        );
        row(
            "burst",
            "apiserver + etcd CPU / baseline's".into(),
            format!("{:.2}", self.ratios.burst_apiserver_etcd_cpu_over_baseline),
        );
        row(
            "steady",
            format!("operator CPU over {:.0} s idle", s.window_s),
            format!(
                "{:.2} s = {:.3} % of a core",
                s.operator_cpu_s, s.operator_cpu_percent_of_core
            ),
        );
        row(
            "steady",
            "Lightsail calls / status writes (watch events)".into(),
            format!("{} / {}", s.lightsail_calls, s.status_writes_watched),
        );
        row(
            "steady",
            "operator RSS".into(),
            format!("{:.1} MiB", s.rss_mib),
        );
        row(
            "renewal",
            format!(
                "time to renew all (maxSessionAge {:.0} s; after cache sync)",
                w.max_session_age_s
            ),
            format!("{:.2} s ({:.2} s)", w.total_s, w.after_sync_s),
        );
        row(
            "renewal",
            "objects with exactly 1 StartGUISession in the window".into(),
            format!("{} of {}", w.objects_with_one_start, c.n),
        );
        row(
            "renewal",
            "Lightsail calls/object; GetOperation per start".into(),
            format!(
                "{:.2}; {:.2}",
                w.calls_per_object, w.get_operation_per_start
            ),
        );
        row(
            "renewal",
            "status writes/object; operator CPU".into(),
            format!("{:.2}; {:.1} s", w.writes_per_object_mean, w.operator_cpu_s),
        );
        row(
            "restart",
            format!(
                "spawn → cache synced / all N scheduled (--min-session-age {:.0} s)",
                rs.min_session_age_s
            ),
            format!("{:.2} s / {:.2} s", rs.to_synced_s, rs.to_all_scheduled_s),
        );
        row(
            "restart",
            format!(
                "reconciles; Lightsail calls; status writes (watch / metric), spawn → {:.1} s quiet",
                rs.window_s
            ),
            format!(
                "{}; {}; {} / {}",
                rs.reconciles,
                rs.lightsail_calls,
                rs.status_writes_watched,
                rs.status_writes_metric
            ),
        );
        row(
            "restart",
            "operator RSS / peak with N synced, no work; bytes per GuiSession".into(),
            format!(
                "{:.1} / {:.1} MiB; {:.0}",
                rs.rss_mib, rs.peak_rss_mib, rs.bytes_per_guisession
            ),
        );
        row(
            "throttled",
            format!(
                "N={} at {} req/s burst {} (operator limit {}/s burst {}): time to all Ready",
                th.n, th.limit_rps, th.limit_burst, th.operator_rate_limit, th.operator_rate_burst
            ),
            format!("{:.2} s", th.total_s),
        );
        row(
            "throttled",
            "achieved rate; share of the limit".into(),
            format!(
                "{:.1} req/s; {:.1} %",
                th.achieved_rps,
                th.fraction_of_limit * 100.0
            ),
        );
        row(
            "throttled",
            "calls throttled".into(),
            format!(
                "{} of {} ({:.2} %)",
                th.calls_throttled,
                th.calls_ok + th.calls_throttled,
                th.throttled_share * 100.0
            ),
        );
        let (d, bl) = (&ts.default_instance, &ts.shard_blue);
        row(
            "two-shard",
            "total: creation → all Ready (one shard's)".into(),
            format!("{:.2} s ({:.2} s)", ts.total_s, b.total_s),
        );
        row(
            "two-shard",
            "total / one shard's".into(),
            format!("{:.2}", ts.total_over_one_shard),
        );
        row(
            "two-shard",
            "objects with exactly 1 StartGUISession".into(),
            format!("{} of {}", ts.objects_with_one_start, c.n),
        );
        row(
            "two-shard",
            format!(
                "objects; reconciles; status writes (metric): {} / {}",
                d.shard, bl.shard
            ),
            format!(
                "{} / {}; {} / {}; {} / {}",
                d.objects,
                bl.objects,
                d.reconciles,
                bl.reconciles,
                d.status_writes_metric,
                bl.status_writes_metric
            ),
        );
        row(
            "two-shard",
            format!("operator CPU: {} / {}", d.shard, bl.shard),
            format!("{:.1} s / {:.1} s", d.cpu_s, bl.cpu_s),
        );
        row(
            "two-shard",
            format!("peak RSS: {} / {} (one shard's)", d.shard, bl.shard),
            format!(
                "{:.1} / {:.1} MiB ({:.1} MiB)",
                d.peak_rss_mib, bl.peak_rss_mib, m.peak_rss_mib
            ),
        );
        row(
            "two-shard",
            format!(
                "RSS after {:.0} s quiet: {} / {} (one shard's)",
                ts.window_s, d.shard, bl.shard
            ),
            format!(
                "{:.1} / {:.1} MiB ({:.1} MiB)",
                d.steady_rss_mib, bl.steady_rss_mib, m.steady_rss_mib
            ),
        );
        let st = &self.stopped;
        row(
            "stopped",
            format!(
                "total: creation → all Ready, computers start in {:.1} s (running: burst's)",
                st.starting_time_s
            ),
            format!("{:.2} s ({:.2} s)", st.total_s, b.total_s),
        );
        row(
            "stopped",
            "creation → Ready p50/p90/p99/max".into(),
            st.to_ready.cell(),
        );
        row(
            "stopped",
            "computers with exactly 1 StartInstance / 1 StartGUISession; running".into(),
            format!(
                "{} / {} of {}; {}",
                st.computers_with_one_instance_start,
                st.computers_with_one_session_start,
                st.n,
                st.computers_running
            ),
        );
        row(
            "stopped",
            "Lightsail calls per new session (running: burst's)".into(),
            format!(
                "{:.2} ({:.2})",
                ratio(st.calls.total as f64, st.n as f64),
                ratio(b.calls.total as f64, c.n as f64)
            ),
        );
        row(
            "stopped",
            format!(
                "Lightsail calls in {:.0} s quiet after all Ready",
                st.quiet_window_s
            ),
            st.calls_after_ready.to_string(),
        );
        row(
            "memory",
            "operator RSS: empty / peak / steady".into(),
            format!(
                "{:.1} / {:.1} / {:.1} MiB",
                m.empty_rss_mib, m.peak_rss_mib, m.steady_rss_mib
            ),
        );
        row(
            "memory",
            "bytes per GuiSession (steady − empty) / N".into(),
            format!("{:.0}", m.bytes_per_guisession),
        );

        let mut out = String::new();
        let _ = writeln!(
            out,
            "N = {}; {} × {}; load average {:.2} at start, {:.2} at end; {}; kube-apiserver {}",
            c.n,
            self.machine.nproc,
            self.machine.cpu_model,
            self.machine.loadavg_start[0],
            self.machine.loadavg_end[0],
            self.versions.operator,
            self.versions.kubernetes,
        );
        let _ = writeln!(
            out,
            "unthrottled runs: operator --rate-limit {} --rate-burst {} (the apiserver, not the limiter, is the bottleneck), --concurrency {}",
            c.unthrottled_rate_limit, c.unthrottled_rate_burst, c.concurrency
        );
        out.push('\n');
        let w1 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(8);
        let w2 = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
        let _ = writeln!(out, "| {:w1$} | {:w2$} | value |", "scenario", "figure");
        let _ = writeln!(out, "|{}|{}|---|", "-".repeat(w1 + 2), "-".repeat(w2 + 2));
        for (scenario, figure, value) in &rows {
            let pad = w2 - figure.chars().count();
            let _ = writeln!(
                out,
                "| {scenario:w1$} | {figure}{} | {value} |",
                " ".repeat(pad)
            );
        }
        out.push('\n');
        out.push_str(&self.new_sessions_table());
        out.push('\n');
        let _ = writeln!(out, "| target | wanted | measured | met |");
        let _ = writeln!(out, "|---|---|---|---|");
        for t in &self.targets {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                t.name,
                t.target,
                t.measured,
                if t.met { "yes" } else { "**no**" }
            );
        }
        out
    }

    /// New sessions on running computers (the burst) beside new sessions on stopped ones (the
    /// stopped-computer variant): time to Ready and Lightsail calls per new session by action.
    pub fn new_sessions_table(&self) -> String {
        let (b, st) = (&self.burst, &self.stopped);
        let (n_run, n_stop) = (self.config.n as f64, st.n as f64);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| new sessions | running computers (burst) | stopped computers, startIfStopped ({:.1} s start) |",
            st.starting_time_s
        );
        let _ = writeln!(out, "|---|---|---|");
        let mut line = |figure: &str, running: String, stopped: String| {
            let _ = writeln!(out, "| {figure} | {running} | {stopped} |");
        };
        line(
            "total: first create → all Ready",
            format!("{:.2} s", b.total_s),
            format!("{:.2} s", st.total_s),
        );
        line(
            "creation → status.operation p50 / p95 / max",
            b.to_operation.cell_p95(),
            st.to_operation.cell_p95(),
        );
        line(
            "creation → Ready p50 / p95 / max",
            b.to_ready.cell_p95(),
            st.to_ready.cell_p95(),
        );
        line(
            "**Lightsail calls per new session**",
            format!("{:.2}", ratio(b.calls.total as f64, n_run)),
            format!("{:.2}", ratio(st.calls.total as f64, n_stop)),
        );
        let mut actions: Vec<&String> = b
            .calls
            .by_action
            .keys()
            .chain(st.calls.by_action.keys())
            .collect();
        actions.sort_by_key(|a| (action_rank(a), a.as_str()));
        actions.dedup();
        for action in actions {
            let per = |calls: &Calls, n: f64| {
                ratio(calls.by_action.get(action).copied().unwrap_or(0) as f64, n)
            };
            line(
                &format!("  {action}"),
                format!("{:.2}", per(&b.calls, n_run)),
                format!("{:.2}", per(&st.calls, n_stop)),
            );
        }
        line(
            "status writes/object (min–max seen)",
            format!(
                "{:.2} ({}–{})",
                b.writes_per_object_mean, b.writes_per_object_min, b.writes_per_object_max
            ),
            format!(
                "{:.2} ({}–{})",
                st.writes_per_object_mean, st.writes_per_object_min, st.writes_per_object_max
            ),
        );
        line(
            "CPU: operator / apiserver + etcd",
            format!(
                "{:.1} s / {:.1} s",
                b.operator_cpu_s,
                b.apiserver_cpu_s + b.etcd_cpu_s
            ),
            format!(
                "{:.1} s / {:.1} s",
                st.operator_cpu_s,
                st.apiserver_cpu_s + st.etcd_cpu_s
            ),
        );
        out
    }
}
