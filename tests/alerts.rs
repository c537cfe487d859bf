//! The chart's PrometheusRule (`templates/prometheusrule.yaml`), proven with promtool (pinned in
//! tools/promtool, built and cached by scripts/go-tool-build): rendered with the pinned helm, its
//! groups pass `promtool check rules`, and `promtool test rules` runs the unit tests in
//! tests/fixtures/alerts/alerts.test.yaml, where every alert has a case that fires and one that
//! stays silent. Every alert carries a severity, a summary naming its count, a description and a
//! runbook_url whose anchor is a heading of docs/runbooks.md.
//!
//! The chart's Grafana dashboard (`templates/grafana-dashboard.yaml`, files/dashboards/): every
//! panel's PromQL parses (promtool check rules on a rule file made of the panel expressions, as
//! promtool has no offline query parser), and every operator metric that the dashboard and the
//! alerts name is one of the operator's metric names (README's metrics table).
mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use support::chart::{kinds, render_ok, the};
use support::repo_root;
use support::verdicts::go_tool;

const ALERTS: [&str; 6] = [
    "GuiSessionRenewalOverdue",
    "GuiSessionsStalled",
    "LightsailThrottled",
    "LightsailAccountNotReady",
    "OperatorNoLeader",
    "OperatorReconcileErrors",
];

fn fixtures() -> PathBuf {
    repo_root().join("tests/fixtures/alerts")
}

/// The PrometheusRule rendered with the chart's defaults plus `args`.
fn rule(args: &[&str]) -> Value {
    let mut all = vec!["--set", "metrics.prometheusRule.enabled=true"];
    all.extend_from_slice(args);
    the(&render_ok("lgo", "ops", &all), "PrometheusRule").clone()
}

fn alert_rules(rule: &Value) -> Vec<Value> {
    rule["spec"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").clone())
        .collect()
}

/// A temp dir holding the rule's groups as `rules.yaml` (what Prometheus loads from the CRD).
fn rules_dir(rule: &Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let groups = json!({ "groups": rule["spec"]["groups"] });
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_yaml::to_string(&groups).expect("rules as YAML"),
    )
    .expect("write rules.yaml");
    dir
}

/// `promtool ARGS...`: success and everything it printed.
fn promtool(args: &[&Path]) -> (bool, String) {
    let out = Command::new(go_tool("promtool"))
        .args(args)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `promtool test rules` on `test_yaml`, beside the default rule's rules.yaml.
fn promtool_test(test_yaml: &str) -> (bool, String) {
    let dir = rules_dir(&rule(&[]));
    let test = dir.path().join("alerts.test.yaml");
    std::fs::write(&test, test_yaml).expect("write the test file");
    promtool(&[Path::new("test"), Path::new("rules"), &test])
}

fn fixture_tests() -> String {
    std::fs::read_to_string(fixtures().join("alerts.test.yaml")).expect("alerts.test.yaml")
}

#[test]
fn the_prometheus_rule_is_off_by_default_and_carries_its_labels() {
    let docs = render_ok("lgo", "ops", &[]);
    assert!(
        !kinds(&docs).contains("PrometheusRule"),
        "no PrometheusRule unless asked for"
    );
    let rule = rule(&[
        "--set",
        "metrics.prometheusRule.labels.release=prometheus",
        "--set",
        "metrics.prometheusRule.additionalAlertLabels.team=platform",
    ]);
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["metadata"]["namespace"], "ops");
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");
    let rules = alert_rules(&rule);
    let names: BTreeSet<_> = rules.iter().map(|r| r["alert"].as_str().unwrap()).collect();
    assert_eq!(names, BTreeSet::from(ALERTS));
    for r in &rules {
        assert_eq!(r["labels"]["team"], "platform", "{r}");
    }
}

#[test]
fn every_alert_has_severity_summary_description_and_a_runbook_that_exists() {
    let runbooks = std::fs::read_to_string(repo_root().join("docs/runbooks.md")).expect("runbooks");
    // GitHub's anchors of the `## Heading` lines: lowercase, spaces to dashes.
    let anchors: BTreeSet<String> = runbooks
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.trim().to_lowercase().replace(' ', "-"))
        .collect();
    for r in alert_rules(&rule(&[])) {
        let name = r["alert"].as_str().expect("alert name");
        assert!(
            matches!(
                r["labels"]["severity"].as_str(),
                Some("critical" | "warning")
            ),
            "{name}: severity"
        );
        let summary = r["annotations"]["summary"].as_str().expect("summary");
        assert!(
            summary.contains("{{ $value"),
            "{name}: summary names the count: {summary}"
        );
        assert!(
            r["annotations"]["description"].as_str().unwrap_or("").len() > 40,
            "{name}: description"
        );
        let url = r["annotations"]["runbook_url"]
            .as_str()
            .expect("runbook_url");
        let (base, anchor) = url.split_once('#').expect("runbook_url has an anchor");
        assert!(base.ends_with("docs/runbooks.md"), "{name}: {url}");
        assert_eq!(anchor, name.to_lowercase(), "{name}: anchor");
        assert!(
            anchors.contains(anchor),
            "{name}: docs/runbooks.md has no heading for #{anchor}"
        );
    }
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README");
    assert!(
        readme.contains("docs/runbooks.md"),
        "the README links the runbooks"
    );
}

#[test]
fn the_rules_pass_promtool_check_rules() {
    let full = ["-f", "ci/full-values.yaml"];
    for args in [&[][..], &full[..]] {
        let dir = rules_dir(&rule(args));
        let file = dir.path().join("rules.yaml");
        let (ok, text) = promtool(&[Path::new("check"), Path::new("rules"), &file]);
        assert!(ok, "promtool check rules ({args:?}):\n{text}");
        assert!(text.contains("SUCCESS: 6 rules found"), "{text}");
    }
}

#[test]
fn the_alerts_pass_their_promtool_unit_tests() {
    let (ok, text) = promtool_test(&fixture_tests());
    assert!(ok, "promtool test rules:\n{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}

/// The unit tests cover every alert both ways: at least one evaluation expects it to fire and
/// at least one expects silence.
#[test]
fn the_unit_tests_fire_and_silence_every_alert() {
    let tests: Value = serde_yaml::from_str(&fixture_tests()).expect("alerts.test.yaml parses");
    let mut fired = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for case in tests["tests"].as_array().expect("tests") {
        for eval in case["alert_rule_test"].as_array().expect("alert_rule_test") {
            let name = eval["alertname"].as_str().expect("alertname").to_owned();
            match eval["exp_alerts"].as_array() {
                Some(a) if !a.is_empty() => fired.insert(name),
                _ => silent.insert(name),
            };
        }
    }
    let all: BTreeSet<String> = ALERTS.iter().map(|a| a.to_string()).collect();
    assert_eq!(fired, all, "alerts with a firing case");
    assert_eq!(silent, all, "alerts with a silent case");
}

/// The harness can fail: a wrong expected value and an alert expected where none fires are both
/// reported by promtool, so a passing run means the expectations hold.
#[test]
fn promtool_test_rules_catches_a_wrong_expectation() {
    let text = fixture_tests();
    let wrong_value = text.replace("summary: 50% of", "summary: 40% of");
    assert_ne!(wrong_value, text);
    let (ok, out) = promtool_test(&wrong_value);
    assert!(!ok && out.contains("40% of reconciles failing"), "{out}");

    // The healthy-fleet case, told that OperatorNoLeader fires.
    let wrong_alert = text.replace(
        "{eval_time: 40m, alertname: OperatorNoLeader, exp_alerts: []}",
        "{eval_time: 40m, alertname: OperatorNoLeader, exp_alerts: [{exp_labels: {severity: critical}}]}",
    );
    assert_ne!(wrong_alert, text);
    let (ok, out) = promtool_test(&wrong_alert);
    assert!(!ok && out.contains("OperatorNoLeader"), "{out}");
}

/// The operator's metric names as exposed on /metrics (counters with `_total`), from README's
/// metrics table, which `tests/operator.rs` keeps in step with a running operator's /metrics;
/// and which of them are histograms (whose NAME_bucket, NAME_sum and NAME_count fold into NAME).
fn operator_metric_names() -> (BTreeSet<String>, BTreeSet<String>) {
    let documented = support::documented_metrics();
    let strip = |n: &str| n.strip_prefix(PREFIX).unwrap_or(n).to_owned();
    (
        documented.iter().map(|(n, _)| strip(n)).collect(),
        documented
            .iter()
            .filter(|(_, kind)| kind == "histogram")
            .map(|(n, _)| strip(n))
            .collect(),
    )
}

const PREFIX: &str = "lightsail_gui_operator_";

/// The operator metrics `expr` names, without the prefix, a histogram's series folded into its
/// name (NAME_bucket -> NAME).
fn operator_metrics(expr: &str) -> BTreeSet<String> {
    let (_, histograms) = operator_metric_names();
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find(PREFIX) {
        let tail = &rest[at + PREFIX.len()..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let folded = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|base| histograms.contains(*base))
            })
            .unwrap_or(name);
        names.insert(folded.to_owned());
        rest = &tail[end..];
    }
    names
}

fn dashboard() -> Value {
    let docs = render_ok(
        "lgo",
        "ops",
        &["--set", "metrics.grafanaDashboard.enabled=true"],
    );
    let cm = the(&docs, "ConfigMap");
    serde_json::from_str(
        cm["data"]["lightsail-gui-operator.json"]
            .as_str()
            .expect("dashboard JSON in the ConfigMap"),
    )
    .expect("the dashboard is JSON")
}

/// (panel title, refId, expr) of every query panel.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String, String)> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().expect("panel title").to_owned();
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title} has no query");
        for t in targets {
            queries.push((
                title.clone(),
                t["refId"].as_str().expect("refId").to_owned(),
                t["expr"].as_str().expect("expr").to_owned(),
            ));
        }
    }
    queries
}

#[test]
fn the_dashboard_is_off_by_default_and_labelled_for_the_grafana_sidecar() {
    let docs = render_ok("lgo", "ops", &[]);
    assert!(
        !docs.iter().any(
            |d| d["kind"] == "ConfigMap" && d["metadata"]["labels"]["grafana_dashboard"] == "1"
        ),
        "no dashboard unless asked for"
    );
    let docs = render_ok(
        "lgo",
        "ops",
        &[
            "--set",
            "metrics.grafanaDashboard.enabled=true",
            "--set",
            "metrics.grafanaDashboard.namespace=monitoring",
        ],
    );
    let cm = the(&docs, "ConfigMap");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(cm["metadata"]["namespace"], "monitoring");
    let board = dashboard();
    assert_eq!(board["uid"], "lightsail-gui-operator");
    // Every panel reads the data source the user picks.
    for panel in board["panels"].as_array().unwrap() {
        if panel["type"] != "row" {
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{}",
                panel["title"]
            );
        }
    }
}

#[test]
fn every_dashboard_query_parses_with_promtool_and_names_only_operator_metrics() {
    let board = dashboard();
    let queries = dashboard_queries(&board);
    // Grafana's variables, as Grafana expands them for "All".
    let expand = |e: &str| {
        e.replace("$__rate_interval", "5m")
            .replace("$namespace", ".*")
            .replace("$job", ".*")
    };
    let rules: Vec<Value> = queries
        .iter()
        .enumerate()
        .map(|(i, (_, _, expr))| {
            let expr = expand(expr);
            assert!(!expr.contains('$'), "an unknown variable in {expr}");
            json!({ "record": format!("dashboard:query_{i}"), "expr": expr })
        })
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("dashboard-rules.yaml");
    let groups = json!({ "groups": [{ "name": "dashboard", "rules": rules }] });
    std::fs::write(&file, serde_yaml::to_string(&groups).unwrap()).unwrap();
    let (ok, text) = promtool(&[Path::new("check"), Path::new("rules"), &file]);
    assert!(ok, "a panel's PromQL does not parse:\n{text}");
    assert!(
        text.contains(&format!("SUCCESS: {} rules found", queries.len())),
        "{text}"
    );

    let (known, _) = operator_metric_names();
    let mut named = BTreeSet::new();
    for (title, ref_id, expr) in &queries {
        for m in operator_metrics(expr) {
            assert!(
                known.contains(m.as_str()),
                "panel {title} ({ref_id}) names {PREFIX}{m}, which the operator does not export"
            );
            named.insert(m);
        }
    }
    // The dashboard shows what issue #23 asks for, and the pods' CPU and memory.
    for m in [
        "sessions",
        "sessions_renewal_overdue",
        "renewal_lateness_seconds",
        "lightsail_calls_total",
        "lightsail_errors_total",
        "reconcile_duration_seconds",
        "leader",
    ] {
        assert!(named.contains(m), "no panel shows {PREFIX}{m}");
    }
    let all: String = queries.iter().map(|(_, _, e)| e.as_str()).collect();
    for m in [
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
    ] {
        assert!(all.contains(m), "no panel shows {m}");
    }
}

#[test]
fn every_metric_the_alerts_name_is_an_operator_metric() {
    // The scanner itself: histogram series fold into their name, an unknown name is reported.
    assert_eq!(
        operator_metrics(
            "rate(lightsail_gui_operator_renewal_lateness_seconds_bucket[5m]) \
             / lightsail_gui_operator_bogus_count + lightsail_gui_operator_leader"
        ),
        BTreeSet::from(["renewal_lateness_seconds", "bogus_count", "leader"].map(String::from))
    );
    let (known, _) = operator_metric_names();
    for r in alert_rules(&rule(&[])) {
        let expr = r["expr"].as_str().expect("expr");
        let names = operator_metrics(expr);
        assert!(!names.is_empty(), "{expr}");
        for m in names {
            assert!(
                known.contains(m.as_str()),
                "{}: {PREFIX}{m} is not exported",
                r["alert"]
            );
        }
    }
}

/// The samples of a `/metrics` scrape, each as a promtool input series that keeps its value for
/// `minutes`, with the labels a ServiceMonitor scrape adds (`namespace`, `job`, `instance`).
fn scraped_series(text: &str, minutes: u32) -> Vec<Value> {
    let target = r#"namespace="ops",job="lgo",instance="op-0""#;
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(_, value)| value.parse::<f64>().is_ok_and(f64::is_finite))
        .map(|(series, value)| {
            let series = match series.split_once('{') {
                Some((name, labels)) => format!("{name}{{{target},{labels}"),
                None => format!("{series}{{{target}}}"),
            };
            json!({"series": series, "values": format!("{value}+0x{minutes}")})
        })
        .collect()
}

/// Acceptance of #23: one GuiSession's computer vanishes while 50 others renew. Evaluated with
/// promtool on what the operator then exports, exactly one alert expression has a value,
/// GuiSessionsStalled's, and it is 1, for the vanished computer's reason; the others are empty.
#[tokio::test(flavor = "multi_thread")]
async fn a_vanished_computer_among_50_renewing_drives_exactly_the_stalled_alert_to_1() {
    use support::env::*;
    use support::operator::*;
    const N: usize = 51;
    let names: Vec<String> = (0..N).map(|i| format!("fleet-{i:02}")).collect();
    let config = names
        .iter()
        .fold(lightsail_sim::SimConfig::default(), |c, n| {
            c.with_computer(lightsail_sim::ComputerSpec::new(n))
        });
    let env = env("alerts-vanish", config).await;
    // 51 sessions renewed every 10 s need more than the default 5 requests a second.
    let op = env.operator(|o| {
        o.arg("--min-session-age", "1s")
            .arg("--rate-limit", "200")
            .arg("--rate-burst", "200")
    });
    for name in &names {
        apply(
            &env.api,
            guisession(name, json!({"resourceName": name, "maxSessionAge": "10s"})),
        )
        .await;
    }
    for name in &names {
        wait_for(&env.api, name, WAIT, "Ready", ready).await;
    }
    let gone = &names[0];
    assert!(env.sim.remove_computer(gone));
    wait_for(&env.api, gone, WAIT, "Stalled (NotFound)", |gs| {
        condition(gs, "Stalled").is_some_and(|c| c.status == "True" && c.reason == "NotFound")
    })
    .await;
    // The others renew meanwhile: each starts again after the computer went.
    for name in &names[1..] {
        eventually(WAIT, "a renewal of every other session", || {
            env.starts(name) >= 2
        })
        .await;
    }
    // The operator's own watch may see the stall a moment after the test's did.
    let stalled_series = r#"lightsail_gui_operator_conditions{type="Stalled",reason="NotFound"} 1"#;
    let mut scraped = String::new();
    eventually(WAIT, "the stall in the operator's metrics", || {
        scraped = op.http_get("/metrics").1;
        scraped.lines().any(|l| l == stalled_series)
    })
    .await;

    let rule = rule(&[]);
    let dir = rules_dir(&rule);
    let exprs: Vec<(String, String)> = alert_rules(&rule)
        .iter()
        .map(|r| {
            (
                r["alert"].as_str().expect("alert").to_owned(),
                r["expr"].as_str().expect("expr").to_owned(),
            )
        })
        .collect();
    assert_eq!(exprs.len(), 6, "{exprs:?}");
    let tests = exprs
        .iter()
        .map(|(alert, expr)| {
            let expected = if alert == "GuiSessionsStalled" {
                json!([{"labels": r#"{namespace="ops",job="lgo",reason="NotFound"}"#, "value": 1}])
            } else {
                json!([])
            };
            json!({"expr": expr, "eval_time": "20m", "exp_samples": expected})
        })
        .collect::<Vec<_>>();
    let test = json!({
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": scraped_series(&scraped, 30),
            "promql_expr_test": tests,
        }],
    });
    let file = dir.path().join("vanished.test.yaml");
    std::fs::write(&file, serde_yaml::to_string(&test).expect("yaml")).expect("write");
    let (ok, out) = promtool(&[Path::new("test"), Path::new("rules"), &file]);
    assert!(
        ok,
        "the alert expressions on the scraped metrics:\n{out}\n--- scraped:\n{scraped}"
    );
}
