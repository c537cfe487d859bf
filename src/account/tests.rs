use super::policy::*;
use super::types::*;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    Condition, LabelSelector, LabelSelectorRequirement, Time,
};
use kube::CustomResourceExt;
use std::collections::BTreeMap;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn namespaces_are_allowed_by_name_or_selector_and_nothing_by_default() {
    let none = AllowedNamespaces::default();
    assert!(!none.allows("lab", &labels(&[])));
    let named = AllowedNamespaces {
        names: vec!["lab".into()],
        selector: None,
    };
    assert!(named.allows("lab", &labels(&[])));
    assert!(!named.allows("other", &labels(&[])));
    let selected = AllowedNamespaces {
        names: vec![],
        selector: Some(LabelSelector {
            match_labels: Some(labels(&[("grant", "nsf-123")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["student".into()]),
            }]),
        }),
    };
    assert!(selected.allows("a", &labels(&[("grant", "nsf-123")])));
    assert!(!selected.allows("a", &labels(&[("grant", "nsf-123"), ("tier", "student")])));
    assert!(!selected.allows("a", &labels(&[("grant", "other")])));
    let everything = AllowedNamespaces {
        names: vec![],
        selector: Some(LabelSelector::default()),
    };
    assert!(everything.allows("any", &labels(&[])));
    let unknown_operator = AllowedNamespaces {
        names: vec![],
        selector: Some(LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: "Matches".into(),
                values: None,
            }]),
        }),
    };
    assert!(!unknown_operator.allows("a", &labels(&[("a", "b")])));
}

#[test]
fn label_selectors_parse_as_kubectl_takes_them() {
    let s = parse_label_selector("team=lab, tier!=student,env in (a, b),x notin (y),ok,!gone")
        .expect("parses");
    assert!(selector_matches(
        &s,
        &labels(&[("team", "lab"), ("env", "a"), ("ok", "")])
    ));
    assert!(!selector_matches(
        &s,
        &labels(&[("team", "lab"), ("env", "a"), ("ok", ""), ("gone", "1")])
    ));
    assert!(!selector_matches(
        &s,
        &labels(&[("team", "lab"), ("env", "c"), ("ok", "")])
    ));
    assert!(!selector_matches(
        &s,
        &labels(&[
            ("team", "lab"),
            ("env", "a"),
            ("ok", ""),
            ("tier", "student")
        ])
    ));
    let eq = parse_label_selector("lightsail.operators.dev/own-account==true").expect("==");
    assert!(selector_matches(
        &eq,
        &labels(&[("lightsail.operators.dev/own-account", "true")])
    ));
    for bad in ["", "a=b,", "a in b", "a in (b c)", "a=b c", "a b=c"] {
        let e = parse_label_selector(bad).expect_err(bad);
        assert!(e.contains("invalid label selector"), "{bad}: {e}");
    }
}

fn account(ready: Option<(&str, i64)>, generation: i64) -> LightsailAccount {
    let mut a = LightsailAccount::new(
        "grant",
        LightsailAccountSpec {
            role_arn: Some("arn:aws:iam::111122223333:role/r".into()),
            external_id: None,
            session_name: None,
            session_duration: None,
            region: None,
            rate_limit: None,
            credentials_secret_ref: None,
        },
    );
    a.metadata.generation = Some(generation);
    a.status = ready.map(|(status, observed)| AccountStatus {
        observed_generation: Some(observed),
        conditions: Some(vec![Condition {
            type_: "Ready".into(),
            status: status.into(),
            reason: "AccessDenied".into(),
            message: "not trusted".into(),
            observed_generation: Some(observed),
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
        }]),
        ..AccountStatus::default()
    });
    a
}

#[test]
fn an_account_is_usable_only_when_it_exists_is_allowed_and_is_ready_for_its_spec() {
    let key = AccountKey {
        namespace: Some("lab".into()),
        name: "grant".into(),
    };
    let reason = |r: Result<&LightsailAccountSpec, AccountRefusal>| r.err().map(|e| e.reason);
    assert_eq!(reason(check_account(&key, None)), Some("AccountNotFound"));
    let ready = account(Some(("True", 2)), 2);
    assert!(check_account(&key, Some(AccountFound::Namespaced(&ready))).is_ok());
    let stale = account(Some(("True", 1)), 2);
    assert_eq!(
        reason(check_account(&key, Some(AccountFound::Namespaced(&stale)))),
        Some("AccountNotReady"),
        "Ready for an older spec says nothing about this one"
    );
    let broken = account(Some(("False", 2)), 2);
    let refusal =
        check_account(&key, Some(AccountFound::Namespaced(&broken))).expect_err("refused");
    assert_eq!(refusal.reason, "AccountNotReady");
    assert!(refusal.message.contains("AccessDenied: not trusted"));
    assert_eq!(
        reason(check_account(
            &key,
            Some(AccountFound::Namespaced(&account(None, 1)))
        )),
        Some("AccountNotReady")
    );
    let cluster = ClusterLightsailAccount::new(
        "shared",
        ClusterLightsailAccountSpec {
            account: ready.spec.clone(),
            namespaces: AllowedNamespaces::default(),
        },
    );
    assert_eq!(
        reason(check_account(
            &key,
            Some(AccountFound::Cluster(&cluster, false))
        )),
        Some("AccountNotAllowed")
    );
}

#[test]
fn account_status_follows_the_check_and_keeps_transition_times() {
    let t0: Timestamp = "2026-12-06T10:00:00Z".parse().expect("ts");
    let t1: Timestamp = "2026-12-06T11:00:00Z".parse().expect("ts");
    let ok = Ok(Identity {
        account_id: "111122223333".into(),
        arn: "arn:aws:sts::111122223333:assumed-role/r/s".into(),
    });
    let s = account_status(Some(1), None, &ok, None, 3, t0);
    let by = |s: &AccountStatus, t: &str| {
        s.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == t)
            .map(|c| (c.status.clone(), c.reason.clone(), c.last_transition_time.0))
            .expect("condition")
    };
    assert_eq!(by(&s, "Ready"), ("True".into(), "Verified".into(), t0));
    assert_eq!(s.account_id.as_deref(), Some("111122223333"));
    assert_eq!(s.gui_sessions, Some(3));
    let again = account_status(Some(1), Some(&s), &ok, None, 3, t1);
    assert_eq!(
        again, s,
        "nothing changed: the same status, nothing to write"
    );
    let denied = Err(AccountError {
        reason: "AccessDenied".into(),
        message: "not authorized to perform sts:AssumeRole".into(),
        terminal: true,
    });
    let s2 = account_status(Some(2), Some(&s), &denied, None, 3, t1);
    assert_eq!(
        by(&s2, "Ready"),
        ("False".into(), "AccessDenied".into(), t1)
    );
    assert_eq!(by(&s2, "Stalled").0, "True");
    assert_eq!(s2.account_id.as_deref(), Some("111122223333"));
    let throttled = Err(AccountError {
        reason: "Throttling".into(),
        message: "slow down".into(),
        terminal: false,
    });
    let s3 = account_status(Some(2), Some(&s2), &throttled, None, 3, t1);
    assert_eq!(by(&s3, "Reconciling").0, "True");
    assert_eq!(by(&s3, "Stalled").0, "False");
    assert_eq!(by(&s3, "Ready").0, "False", "never checked for this spec");
    // A recheck of a working account that fails transiently: still Ready (the credentials
    // checked before are used until they expire), and Reconciling while it retries.
    let s4 = account_status(Some(1), Some(&s), &throttled, None, 3, t1);
    assert_eq!(by(&s4, "Ready"), ("True".into(), "Throttling".into(), t0));
    assert_eq!(by(&s4, "Reconciling").0, "True");
    assert_eq!(by(&s4, "Stalled").0, "False");
}

#[test]
fn the_deputy_chooses_the_external_id_of_a_namespaced_account() {
    let mut spec = account(None, 1).spec;
    spec.external_id = Some("teaching-2026".into());
    let namespaced = AccountKey {
        namespace: Some("physics".into()),
        name: "copy".into(),
    };
    let (id, tags) = assume_role_identity(&namespaced, &spec, "c0ffee");
    assert_eq!(
        id.as_deref(),
        Some("lightsail-gui-operator:c0ffee:physics"),
        "the tenant's spec.externalId is never sent"
    );
    assert_eq!(
        tags,
        vec![("kubernetes-namespace".to_owned(), "physics".to_owned())]
    );
    let cluster = AccountKey {
        namespace: None,
        name: "shared".into(),
    };
    let (id, tags) = assume_role_identity(&cluster, &spec, "c0ffee");
    assert_eq!(id.as_deref(), Some("teaching-2026"), "an admin's choice");
    assert!(tags.is_empty());
}

#[test]
fn role_patterns_allow_what_they_match_and_everything_when_empty() {
    let arn = "arn:aws:iam::111122223333:role/lab-physics";
    assert!(role_allowed(&[], arn));
    let patterns = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert!(role_allowed(
        &patterns(&["arn:aws:iam::111122223333:role/lab-*"]),
        arn
    ));
    assert!(role_allowed(
        &patterns(&["arn:aws:iam::*:role/*-physics"]),
        arn
    ));
    assert!(role_allowed(&patterns(&[arn]), arn));
    assert!(!role_allowed(
        &patterns(&["arn:aws:iam::444455556666:role/*"]),
        arn
    ));
    assert!(!role_allowed(
        &patterns(&["arn:aws:iam::111122223333:role/lab-"]),
        arn
    ));
    assert!(!role_allowed(&patterns(&["*-chemistry"]), arn));
    assert!(wildcard_match("a*b*c", "abc") && wildcard_match("a*b*c", "aXbYc"));
    assert!(!wildcard_match("a*bc*c", "abc"));
    assert!(wildcard_match("*", "") && !wildcard_match("", "x"));
}

#[test]
fn crds_have_the_validation_users_rely_on() {
    let json = serde_json::to_string(&LightsailAccount::crd()).expect("json");
    assert!(json.contains("has(self.roleArn) || has(self.credentialsSecretRef)"));
    assert!(json.contains("duration(self) >= duration('15m')"));
    let cluster = ClusterLightsailAccount::crd();
    assert_eq!(cluster.spec.scope, "Cluster");
    let json = serde_json::to_string(&cluster).expect("json");
    assert!(
        json.contains("roleArn") && json.contains("namespaces"),
        "{json}"
    );
}
