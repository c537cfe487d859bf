//! The scale benchmark (`examples/bench`, run by `scripts/bench`) at a smoke size, so that it
//! cannot rot. Asserts only what cannot depend on timing: everything got Ready, the call counts
//! that are exact by design (one StartInstance and one StartGUISession per stopped computer),
//! and that the report has every field. Timings are not checked. Then draws the run's plots from
//! its JSON and reads them back as XML: one point per recorded sample.

mod support;

#[path = "../examples/bench/plot.rs"]
mod plot;
#[path = "../examples/bench/probe.rs"]
mod probe;
#[path = "../examples/bench/report.rs"]
mod report;
#[path = "../examples/bench/scenarios.rs"]
mod scenarios;
#[path = "../examples/bench/tracker.rs"]
mod tracker;

use std::path::Path;
use std::time::Duration;

const N: usize = 20;

/// Every leaf of `value`, with its path, so that a missing or null field names itself.
fn leaves(value: &serde_json::Value, path: String, out: &mut Vec<(String, serde_json::Value)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                leaves(v, format!("{path}.{k}"), out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                leaves(v, format!("{path}[{i}]"), out);
            }
        }
        other => out.push((path, other.clone())),
    }
}

#[test]
fn benchmark_runs_at_smoke_size() {
    let opts = scenarios::Options {
        n: N,
        operator: env!("CARGO_BIN_EXE_lightsail-gui-operator").into(),
        concurrency: 64,
        create_concurrency: 16,
        unthrottled_rate: 1_000_000,
        steady_window: Duration::from_secs(2),
        // Far longer than a 20-object wave takes, so the wave is one window even on a busy machine.
        min_renew_window: Duration::from_secs(10),
        throttled_n: N,
        throttle_rps: 50.0,
        throttle_burst: 50,
        throttled_operator_rate: 50,
        throttled_operator_burst: 50,
        memory_only: false,
        // Shorter than the benchmark's 3 s: the smoke run only checks that the variant works.
        stopped_starting_time: Duration::from_secs(2),
        stopped_only: false,
    };
    let report = scenarios::run_blocking(&opts).expect("benchmark runs");
    let table = report.table();
    println!("{table}");

    assert_eq!(report.burst.ready, N, "burst: all Ready");
    assert_eq!(report.baseline.ready, N, "baseline: all Ready");
    assert_eq!(report.renewal.renewed, N, "renewal: all renewed");
    assert_eq!(report.throttled.ready, N, "throttled: all Ready");
    assert_eq!(report.burst.calls.start_gui_session, N as u64);
    assert_eq!(report.renewal.calls.start_gui_session, N as u64);
    assert_eq!(report.renewal.objects_with_one_start, N);
    // The baseline writes exactly what the operator wrote.
    assert_eq!(report.baseline.writes, report.burst.status_writes_watched);
    // The two-write baseline writes each object's first and last status (just one for an
    // object with one), and is the replay baseline itself when no object had more than two.
    let two = &report.two_write_baseline;
    assert_eq!(two.figures.ready, N, "two-write baseline: all Ready");
    assert!(two.figures.writes <= 2 * N as u64 && two.figures.writes >= N as u64);
    assert_eq!(
        two.same_as_replay,
        report.burst.writes_per_object_max <= 2,
        "run again exactly when some object had more than 2 statuses"
    );
    if two.same_as_replay {
        assert_eq!(two.figures, report.baseline);
    }
    assert!(report.ratios.burst_total_over_two_write_baseline > 0.0);

    // A restart with nothing due: every object scheduled, no call, no write.
    let restart = &report.restart;
    assert!(
        restart.reconciles >= N as u64,
        "restart: {} reconciles",
        restart.reconciles
    );
    assert_eq!(restart.lightsail_calls, 0, "restart: Lightsail calls");
    assert_eq!(
        restart.status_writes_watched, 0,
        "restart: status writes seen"
    );
    assert_eq!(
        restart.status_writes_metric, 0,
        "restart: status writes counted"
    );
    assert!(restart.to_synced_s <= restart.to_all_scheduled_s);
    assert!(restart.rss_mib > 0.0 && restart.peak_rss_mib >= restart.rss_mib);

    // Two shards: everything Ready, one start each, and both processes did part of the work.
    let shards = &report.two_shards;
    assert_eq!(shards.ready, N, "two shards: all Ready");
    assert_eq!(
        shards.objects_with_one_start, N,
        "two shards: one start each"
    );
    assert_eq!(shards.calls.start_gui_session, N as u64);
    for process in [&shards.default_instance, &shards.shard_blue] {
        assert_eq!(
            process.objects,
            N / 2,
            "{}: half the objects",
            process.shard
        );
        assert!(
            process.reconciles >= process.objects as u64,
            "{}: {} reconciles for {} objects",
            process.shard,
            process.reconciles,
            process.objects
        );
        assert!(
            process.status_writes_metric > 0,
            "{}: wrote no status",
            process.shard
        );
    }

    // Stopped computers with startIfStopped: every one started exactly once, then its session
    // exactly once, and all of them running with a Ready session.
    let stopped = &report.stopped;
    assert_eq!(stopped.n, N);
    assert_eq!(
        stopped.ready, N,
        "stopped computers: all Ready with a session"
    );
    assert_eq!(
        stopped.computers_with_one_instance_start, N,
        "one StartInstance each"
    );
    assert_eq!(
        stopped.computers_with_one_session_start, N,
        "one StartGUISession each"
    );
    assert_eq!(
        stopped.computers_running, N,
        "stopped computers: all running"
    );
    let count =
        |calls: &report::Calls, action: &str| calls.by_action.get(action).copied().unwrap_or(0);
    assert_eq!(count(&stopped.calls, "StartInstance"), N as u64);
    assert_eq!(count(&stopped.calls, "StartGUISession"), N as u64);
    assert_eq!(stopped.calls.start_gui_session, N as u64);
    // Every new session read its computer first; on running computers nothing was started.
    for calls in [&report.burst.calls, &stopped.calls] {
        let reads = count(calls, "GetInstanceState") + count(calls, "GetInstance");
        assert!(reads >= N as u64, "a read per new session: {reads}");
        assert_eq!(calls.by_action.values().sum::<u64>(), calls.total);
    }
    assert_eq!(count(&report.burst.calls, "StartInstance"), 0);
    let comparison = report.new_sessions_table();
    for row in [
        "StartInstance",
        "GetInstanceState",
        "creation → Ready p50 / p95 / max",
    ] {
        assert!(
            comparison.contains(row),
            "comparison lacks {row}:\n{comparison}"
        );
    }

    // The JSON has every field, none null, and reads back as the same report.
    let json = serde_json::to_value(&report).expect("serializes");
    for key in [
        "machine",
        "versions",
        "config",
        "burst",
        "baseline",
        "two_write_baseline",
        "ratios",
        "steady",
        "renewal",
        "restart",
        "throttled",
        "two_shards",
        "stopped",
        "memory",
        "targets",
    ] {
        assert!(json.get(key).is_some(), "JSON lacks {key}");
    }
    let mut all = Vec::new();
    leaves(&json, String::new(), &mut all);
    let nulls: Vec<&String> = all
        .iter()
        .filter(|(_, v)| v.is_null())
        .map(|(p, _)| p)
        .collect();
    assert!(nulls.is_empty(), "null fields: {nulls:?}");
    let back: report::Report = serde_json::from_value(json).expect("reads back");
    assert_eq!(back, report);
    check_plots(&report);
    assert_eq!(
        report.targets.len(),
        15,
        "every target of issues #7, #15 and #21 judged"
    );
    for name in [
        "restart: Lightsail calls",
        "restart: status writes (watch events / metric)",
        "two shards: objects with exactly 1 start",
        "stopped computers: exactly 1 StartInstance and 1 StartGUISession each",
    ] {
        let target = report.targets.iter().find(|t| t.name == name);
        assert!(target.is_some_and(|t| t.met), "target {name}: {target:?}");
    }
    for scenario in [
        "baseline",
        "burst",
        "steady",
        "renewal",
        "restart",
        "throttled",
        "two-shard",
        "stopped",
        "memory",
    ] {
        assert!(
            table.contains(&format!("| {scenario} ")),
            "table lacks {scenario}"
        );
    }
}

/// `#rrggbb` of a series colour, as the SVG backend writes it.
fn hex(c: plotters::style::RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

/// An SVG file parsed (so well-formed XML, or the test fails), as its text.
fn read_svg(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("{} is not well-formed XML: {e}", path.display()));
    assert_eq!(
        doc.root_element().tag_name().name(),
        "svg",
        "{}",
        path.display()
    );
    text
}

/// The data series of a plot: the points of each `<polyline>` drawn in a series colour, and the
/// `<circle>`s filled with one (axes, grid and marks are black or grey).
struct Drawn {
    lines: Vec<usize>,
    dots: usize,
}

fn drawn(text: &str) -> Drawn {
    let doc = roxmltree::Document::parse(text).expect("parsed before");
    let palette: Vec<String> = plot::PALETTE.iter().map(|c| hex(*c)).collect();
    let is_series = |colour: Option<&str>| colour.is_some_and(|c| palette.iter().any(|p| p == c));
    let mut out = Drawn {
        lines: Vec::new(),
        dots: 0,
    };
    for node in doc.descendants() {
        match node.tag_name().name() {
            "polyline" if is_series(node.attribute("stroke")) => out.lines.push(
                node.attribute("points")
                    .unwrap_or("")
                    .split_whitespace()
                    .count(),
            ),
            "circle" if is_series(node.attribute("fill")) => out.dots += 1,
            _ => {}
        }
    }
    out
}

/// Writes the run's JSON, draws its plots from the file as `bench --plot` does, and checks
/// that each is well-formed SVG with one point per sample.
fn check_plots(report: &report::Report) {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("smoke.json");
    std::fs::write(
        &json,
        serde_json::to_string_pretty(report).expect("serializes"),
    )
    .expect("writes the JSON");
    let written = plot::render_file(&json, dir.path()).expect("draws the plots");
    let s = &report.series;
    let path = |p: &str| plot::file(dir.path(), "smoke", p);
    assert_eq!(
        written,
        [path(plot::READY), path(plot::LATENESS), path(plot::RSS)],
        "all three plots drawn"
    );

    // Burst: one Ready time per object, sorted; the line is (0, 0) and then one point each.
    assert_eq!(s.burst_ready_s.len(), N, "a Ready time per object");
    assert!(s.burst_ready_s.is_sorted(), "Ready times sorted");
    let ready = drawn(&read_svg(&path(plot::READY)));
    assert_eq!(
        ready.lines,
        [N + 1],
        "ready over time: one line of N + 1 points"
    );
    assert_eq!(ready.dots, 0);

    // Renewal: a due instant and a lateness per renewed session; two cumulative curves (past
    // due, and past due or the operator's start), each (0, 0) and then a point per renewal.
    assert_eq!(s.renewal_due_s.len(), N, "a due instant per renewal");
    assert_eq!(s.renewal_lateness_s.len(), N, "a lateness per renewal");
    let lateness = drawn(&read_svg(&path(plot::LATENESS)));
    assert_eq!(
        lateness.lines,
        [N + 1, N + 1],
        "renewal lateness: two curves of N + 1 points"
    );
    assert_eq!(lateness.dots, 0);

    // RSS: one series per operator process the run started (burst + steady state, renewal,
    // restart, throttled, two shards' two, stopped computers), a line each with every sample.
    let processes: Vec<&str> = s.rss.iter().map(|r| r.process.as_str()).collect();
    assert_eq!(
        processes,
        [
            "burst + steady state",
            "renewal",
            "restart",
            "throttled",
            "two shards: default",
            "two shards: blue",
            "stopped computers"
        ],
        "an RSS series per operator process"
    );
    assert!(s.rss_interval_s > 0.0);
    for r in &s.rss {
        assert_eq!(
            r.t_s.len(),
            r.rss_mib.len(),
            "{}: a value per sample",
            r.process
        );
        assert!(!r.t_s.is_empty(), "{}: sampled", r.process);
        assert!(r.t_s.is_sorted(), "{}: times in order", r.process);
    }
    let text = read_svg(&path(plot::RSS));
    let rss = drawn(&text);
    let samples: Vec<usize> = s.rss.iter().map(|r| r.t_s.len()).collect();
    assert_eq!(
        rss.lines, samples,
        "RSS: a line per process, a point per sample"
    );
    for process in processes {
        assert!(text.contains(process), "RSS legend lacks {process}");
    }
}

/// JSON written before the series were recorded still reads, and draws nothing.
#[test]
fn plots_of_older_json_are_skipped() {
    let json = Path::new(env!("CARGO_MANIFEST_DIR")).join("benchmarks/scale-n1000.json");
    let dir = tempfile::tempdir().expect("temp dir");
    let written = plot::render_file(&json, dir.path()).expect("reads the older JSON");
    assert!(written.is_empty(), "drew {written:?} without series");
}
