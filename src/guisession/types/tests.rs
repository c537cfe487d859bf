use super::*;
use kube::CustomResourceExt;

fn ok(s: &str) -> Duration {
    match parse_go_duration(s) {
        Ok(d) => d,
        Err(e) => panic!("{s:?} should parse: {e}"),
    }
}

#[test]
fn parses_go_durations() {
    assert_eq!(ok("0"), Duration::ZERO);
    assert_eq!(ok("-0"), Duration::ZERO);
    assert_eq!(ok("0s"), Duration::ZERO);
    assert_eq!(ok("1h"), Duration::from_secs(3600));
    assert_eq!(ok("+5s"), Duration::from_secs(5));
    assert_eq!(ok("1h30m"), Duration::from_secs(5400));
    assert_eq!(ok("2h45m10s"), Duration::from_secs(2 * 3600 + 45 * 60 + 10));
    assert_eq!(ok("1.5h"), Duration::from_secs(5400));
    assert_eq!(ok(".5s"), Duration::from_millis(500));
    assert_eq!(ok("1.s"), Duration::from_secs(1));
    assert_eq!(ok("300ms"), Duration::from_millis(300));
    assert_eq!(ok("10us"), Duration::from_micros(10));
    assert_eq!(ok("10µs"), Duration::from_micros(10));
    assert_eq!(ok("10μs"), Duration::from_micros(10));
    assert_eq!(ok("7ns"), Duration::from_nanos(7));
    assert_eq!(ok("1.0000000001s"), Duration::from_secs(1));
    assert_eq!(ok("1m0.5s"), Duration::from_millis(60_500));
    assert_eq!(
        ok("9223372036854775807ns"),
        Duration::from_nanos(i64::MAX as u64)
    );
}

#[test]
fn rejects_bad_durations() {
    assert_eq!(parse_go_duration(""), Err(DurationError::Empty));
    assert!(matches!(
        parse_go_duration("-1h"),
        Err(DurationError::Negative(_))
    ));
    assert!(matches!(
        parse_go_duration("h"),
        Err(DurationError::Invalid(_))
    ));
    assert!(matches!(
        parse_go_duration("."),
        Err(DurationError::Invalid(_))
    ));
    assert!(matches!(
        parse_go_duration("-"),
        Err(DurationError::Invalid(_))
    ));
    assert_eq!(parse_go_duration("-0s"), Ok(Duration::ZERO));
    assert!(matches!(
        parse_go_duration("+"),
        Err(DurationError::Invalid(_))
    ));
    assert!(matches!(
        parse_go_duration("1h "),
        Err(DurationError::UnknownUnit { .. })
    ));
    assert!(matches!(
        parse_go_duration("1d"),
        Err(DurationError::UnknownUnit { .. })
    ));
    assert!(matches!(
        parse_go_duration("1H"),
        Err(DurationError::UnknownUnit { .. })
    ));
    assert!(matches!(
        parse_go_duration("10"),
        Err(DurationError::MissingUnit { number, .. }) if number == "10"
    ));
    assert!(matches!(
        parse_go_duration("1h30"),
        Err(DurationError::MissingUnit { .. })
    ));
    assert!(matches!(
        parse_go_duration("9223372036854775808ns"),
        Err(DurationError::Overflow(_))
    ));
    assert!(matches!(
        parse_go_duration("3000000h"),
        Err(DurationError::Overflow(_))
    ));
    assert!(matches!(
        parse_go_duration("99999999999999999999999999999999999999999h"),
        Err(DurationError::Overflow(_))
    ));
    let msg = parse_go_duration("1d")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.contains("unknown unit \"d\""), "{msg}");
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
        ["Resource", "Region", "Operation", "Ready", "Expires", "Age"]
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
