use super::*;
use std::time::Duration;

use kube::CustomResourceExt;

use crate::duration::parse_go_duration;

fn ok(s: &str) -> Duration {
    match parse_go_duration(s) {
        Ok(d) => d,
        Err(e) => panic!("{s:?} should parse: {e}"),
    }
}

#[test]
fn default_max_session_age_parses() {
    assert_eq!(ok(DEFAULT_MAX_SESSION_AGE), Duration::from_secs(3600));
}

#[test]
fn spec_defaults_apply() {
    let spec: GuiSessionSpec =
        serde_json::from_str(r#"{"resourceName":"my-instance"}"#).expect("valid spec");
    assert_eq!(spec.max_session_age, "1h");
    assert!(!spec.suspend);
    assert!(!spec.stop_on_delete);
    assert_eq!(spec.region, None);
}

#[test]
fn crd_has_expected_shape() {
    let crd = GuiSession::crd();
    assert_eq!(crd.spec.group, "lightsail.operators.dev");
    assert_eq!(crd.spec.names.kind, "GuiSession");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names, Some(vec!["guis".to_owned()]));
    assert_eq!(
        crd.spec.names.categories,
        Some(vec!["lightsail".to_owned()])
    );
    let json = serde_json::to_string(&crd).expect("serialises");
    assert!(json.contains(r#""x-kubernetes-list-type":"map""#), "{json}");
    assert!(json.contains("duration(self) > duration('0s')"));
    assert!(json.contains(r#""maxLength":255"#));
    let columns = crd.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap_or_default();
    let names: Vec<_> = columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Resource",
            "Region",
            "Operation",
            "Ready",
            "Computer",
            "Expires",
            "Age"
        ]
    );
}

#[test]
fn status_timestamps_are_whole_seconds_in_rfc3339() {
    let ts: Timestamp = "2026-11-24T20:00:01.987Z".parse().expect("valid");
    let status = GuiSessionStatus {
        session_started_at: Some(whole_seconds(ts)),
        ..GuiSessionStatus::default()
    };
    let json = serde_json::to_value(&status).expect("serialises");
    assert_eq!(json["sessionStartedAt"], "2026-11-24T20:00:01Z");
    let schema = serde_json::to_value(GuiSession::crd()).expect("crd");
    let props = &schema["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        ["properties"];
    assert_eq!(props["sessionStartedAt"]["format"], "date-time");
    assert_eq!(
        props["pendingStart"]["properties"]["requestedAt"]["format"],
        "date-time"
    );
}

#[test]
fn finished_has_one_definition() {
    let op = |status, is_terminal| Operation {
        status,
        is_terminal,
        ..Operation::default()
    };
    assert!(op(Some(OperationStatus::Succeeded), None).finished());
    assert!(op(Some(OperationStatus::Completed), None).finished());
    assert!(op(Some(OperationStatus::Failed), None).finished());
    assert!(op(None, Some(true)).finished());
    assert!(op(Some(OperationStatus::Started), Some(true)).finished());
    assert!(!op(Some(OperationStatus::Started), Some(false)).finished());
    assert!(!op(Some(OperationStatus::NotStarted), None).finished());
    assert!(!op(None, None).finished());
}
