//! The chart's PrometheusRule (`templates/prometheusrule.yaml`), proven with promtool (pinned in
//! tools/promtool, built and cached by scripts/go-tool-build): rendered with the pinned helm, its
//! groups pass `promtool check rules`, and `promtool test rules` runs the unit tests in
//! tests/fixtures/alerts/alerts.test.yaml, where every alert has a case that fires and one that
//! stays silent. Every alert carries a severity, a summary naming its count, a description and a
//! runbook_url whose anchor is a heading of docs/runbooks.md.
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
