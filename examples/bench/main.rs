//! Scale benchmark of issues #7 and #15: the release-built operator as a separate process against
//! a real kube-apiserver + etcd and the Lightsail simulator, beside a plain-client baseline doing
//! the same status writes. Prints a table and writes JSON. `scripts/bench` builds and runs it.
//!
//! ```text
//! cargo build --release --bin lightsail-gui-operator --example bench
//! $CARGO_TARGET_DIR/release/examples/bench --n 1000 --json bench-1000.json
//! $CARGO_TARGET_DIR/release/examples/bench --n 1000 --churn --json churn-1000.json
//! $CARGO_TARGET_DIR/release/examples/bench --plot benchmarks/scale-n1000.json benchmarks
//! ```
//!
//! A run with `--json x.json` also draws its plots beside it (`x-ready-over-time.svg`,
//! `x-renewal-lateness.svg`, `x-rss.svg`; examples/bench/plot.rs).

#[path = "../../tests/support/mod.rs"]
mod support;

mod churn;
mod plot;
mod probe;
mod report;
mod scenarios;
mod tracker;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;

fn duration(s: &str) -> Result<Duration, String> {
    lightsail_gui_operator::duration::parse_go_duration(s).map_err(|e| e.to_string())
}

/// Measures the operator: burst, steady state, renewal wave, a restart with nothing due,
/// throttled Lightsail, a burst served by two shards, a burst on stopped computers, memory, and
/// plain-client baselines, all in one run. With `--churn`, only the churn scenario
/// (examples/bench/churn.rs); with `--stopped-only`, only the burst and the stopped-computer
/// variant.
#[derive(Parser, Debug)]
struct Args {
    /// GuiSessions.
    #[arg(long, default_value_t = 1000)]
    n: usize,
    /// The operator executable (default: lightsail-gui-operator beside this example's directory,
    /// i.e. the build of the same profile).
    #[arg(long)]
    operator: Option<PathBuf>,
    /// Operator `--concurrency`, and the baseline's writers.
    #[arg(long, default_value_t = 64)]
    concurrency: u16,
    /// Create calls in flight.
    #[arg(long, default_value_t = 64)]
    create_concurrency: usize,
    /// Operator `--rate-limit` and `--rate-burst` when Lightsail is not throttled: high, so that
    /// the apiserver and not the client-side limiter is the bottleneck.
    #[arg(long, default_value_t = 1_000_000)]
    unthrottled_rate: u32,
    /// Steady-state measurement window (Go duration); also the quiet window of the restart (cut
    /// short before its first session is due) and of the two-shard burst.
    #[arg(long, default_value = "60s", value_parser = duration)]
    steady_window: Duration,
    /// Shortest maxSessionAge of the renewal wave (it is at least twice the burst's time).
    #[arg(long, default_value = "30s", value_parser = duration)]
    min_renew_window: Duration,
    /// GuiSessions of the throttled scenario (default: N).
    #[arg(long)]
    throttled_n: Option<usize>,
    /// The simulator's rate limit in the throttled scenario.
    #[arg(long, default_value_t = 50.0)]
    throttle_rps: f64,
    /// The simulator's burst in the throttled scenario.
    #[arg(long, default_value_t = 50)]
    throttle_burst: u32,
    /// Operator `--rate-limit` in the throttled scenario (default: the simulator's limit, as an
    /// operator configured for its account would be).
    #[arg(long)]
    throttled_operator_rate: Option<u32>,
    /// Operator `--rate-burst` in the throttled scenario (default: the simulator's burst).
    #[arg(long)]
    throttled_operator_burst: Option<u32>,
    /// Run only the burst, the steady state and a restart right after it (the memory figures),
    /// e.g. to compare allocators; the rest of the report stays zero.
    #[arg(long)]
    memory_only: bool,
    /// How long the stopped-computer variant's computers stay `pending` after StartInstance (Go
    /// duration): part of its time to Ready. The operator polls the StartInstance operation
    /// 1 s after the call, then after as long again as has passed since the operation's
    /// `createdAt` (whole seconds): the second poll comes 2–3 s after the call, the third 4–7 s.
    /// With the default, 3s, under a burst's load the second poll finds the computer running
    /// (990 of 1,000 at N = 1,000).
    #[arg(long, default_value = "3s", value_parser = duration)]
    stopped_start_time: Duration,
    /// Run only the burst (new sessions on running computers) and the stopped-computer variant
    /// (new sessions on stopped computers with startIfStopped); the rest of the report stays
    /// zero.
    #[arg(long, conflicts_with = "memory_only")]
    stopped_only: bool,
    /// Run only the churn scenario (issue "Second review", item 6): N GuiSessions, then waves
    /// that create, delete and relabel them, with watch gaps; records the operator's
    /// per-object maps (`tracked_objects`) against the live count after each wave.
    #[arg(long)]
    churn: bool,
    /// Churn: waves (one per "simulated hour").
    #[arg(long, default_value_t = 24)]
    churn_waves: usize,
    /// Churn: objects created per wave (default: N / 10); half as many are relabelled out of
    /// the operator's selector, and as many deleted as bring the count back to N.
    #[arg(long)]
    churn_batch: Option<usize>,
    /// Churn: a watch gap every this many waves (0: none), alternately an apiserver restart and
    /// a pause of the operator.
    #[arg(long, default_value_t = 2)]
    churn_gap_every: usize,
    /// Churn: share of Lightsail calls answering ServiceException while a wave's changes are
    /// made (so that reconciles fail and back off).
    #[arg(long, default_value_t = 0.05)]
    churn_error_rate: f64,
    /// Churn: how long a wave may take to settle before it is recorded as not settled.
    #[arg(long, default_value = "120s", value_parser = duration)]
    churn_wave_deadline: Duration,
    /// Churn: the same after the last wave.
    #[arg(long, default_value = "300s", value_parser = duration)]
    churn_final_deadline: Duration,
    /// Write the results here as JSON, and draw the plots beside it.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Run nothing: draw the plots of a JSON file written by an earlier run into a directory
    /// (`<dir>/<json file's stem>-<plot>.svg`).
    #[arg(long, num_args = 2, value_names = ["JSON", "DIR"])]
    plot: Option<Vec<PathBuf>>,
    /// Ignored: `cargo bench`-style runners pass it.
    #[arg(long, hide = true)]
    bench: bool,
}

fn default_operator() -> anyhow::Result<PathBuf> {
    // target/<profile>/examples/bench -> target/<profile>/lightsail-gui-operator
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(|p| p.parent())
        .context("cannot locate the target directory")?;
    Ok(profile_dir.join("lightsail-gui-operator"))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some([json, dir]) = args.plot.as_deref() {
        plot::render_file(json, dir)?;
        return Ok(());
    }
    let operator = match args.operator {
        Some(p) => p,
        None => default_operator()?,
    };
    anyhow::ensure!(
        operator.is_file(),
        "no operator binary at {} (cargo build --release --bin lightsail-gui-operator)",
        operator.display()
    );
    if args.churn {
        let opts = churn::ChurnOptions {
            n: args.n,
            operator,
            concurrency: args.concurrency,
            create_concurrency: args.create_concurrency,
            unthrottled_rate: args.unthrottled_rate,
            waves: args.churn_waves,
            batch: args.churn_batch.unwrap_or((args.n / 10).max(4)).min(args.n),
            gap_every: args.churn_gap_every,
            error_rate: args.churn_error_rate,
            wave_deadline: args.churn_wave_deadline,
            final_deadline: args.churn_final_deadline,
            operator_log: args.json.as_ref().map(|j| j.with_extension("operator.log")),
        };
        let report = churn::run_blocking(&opts)?;
        print!("{}", report.table());
        return write_json(args.json, &report);
    }
    let opts = scenarios::Options {
        n: args.n,
        operator,
        concurrency: args.concurrency,
        create_concurrency: args.create_concurrency,
        unthrottled_rate: args.unthrottled_rate,
        steady_window: args.steady_window,
        min_renew_window: args.min_renew_window,
        throttled_n: args.throttled_n.unwrap_or(args.n),
        throttle_rps: args.throttle_rps,
        throttle_burst: args.throttle_burst,
        throttled_operator_rate: args
            .throttled_operator_rate
            .unwrap_or(args.throttle_rps.ceil() as u32),
        throttled_operator_burst: args.throttled_operator_burst.unwrap_or(args.throttle_burst),
        memory_only: args.memory_only,
        stopped_starting_time: args.stopped_start_time,
        stopped_only: args.stopped_only,
    };
    let report = scenarios::run_blocking(&opts)?;
    print!("{}", report.table());
    write_json(args.json.clone(), &report)?;
    if let Some(json) = &args.json {
        let name = json
            .file_stem()
            .and_then(|s| s.to_str())
            .context("the JSON file has no name")?;
        let dir = json.parent().unwrap_or(std::path::Path::new("."));
        plot::render(&report, name, dir)?;
    }
    Ok(())
}

fn write_json(path: Option<PathBuf>, report: &impl serde::Serialize) -> anyhow::Result<()> {
    if let Some(path) = path {
        std::fs::write(&path, serde_json::to_string_pretty(report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("bench: wrote {}", path.display());
    }
    Ok(())
}
