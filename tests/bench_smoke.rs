//! The scale benchmark (`examples/bench`, run by `scripts/bench`) at a smoke size, so that it
//! cannot rot. Asserts only what cannot depend on timing: everything got Ready, the call counts
//! that are exact by design, and that the report has every field. Timings are not checked.

mod support;

#[path = "../examples/bench/probe.rs"]
mod probe;
#[path = "../examples/bench/report.rs"]
mod report;
#[path = "../examples/bench/scenarios.rs"]
mod scenarios;
#[path = "../examples/bench/tracker.rs"]
mod tracker;

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

    // The JSON has every field, none null, and reads back as the same report.
    let json = serde_json::to_value(&report).expect("serializes");
    for key in [
        "machine",
        "versions",
        "config",
        "burst",
        "baseline",
        "ratios",
        "steady",
        "renewal",
        "throttled",
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
    assert_eq!(report.targets.len(), 11, "every target of issue #7 judged");
    for scenario in [
        "baseline",
        "burst",
        "steady",
        "renewal",
        "throttled",
        "memory",
    ] {
        assert!(
            table.contains(&format!("| {scenario} ")),
            "table lacks {scenario}"
        );
    }
}
