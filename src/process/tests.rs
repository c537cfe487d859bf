use super::*;
use crate::guisession::policy::SKIP_STOP_ANNOTATION;
use crate::guisession::types::GuiSessionSpec;

fn session(name: &str) -> GuiSession {
    let mut gs = GuiSession::new(name, GuiSessionSpec::for_computer("vm"));
    gs.metadata.namespace = Some("ns".into());
    gs
}

#[test]
fn the_sessions_gauge_keeps_its_counts_through_a_relist_and_drops_what_it_lost() {
    let states = SessionStates::default();
    states.observe(&watcher::Event::Apply(session("a")));
    states.observe(&watcher::Event::Apply(session("b")));
    assert_eq!(states.counts().get("starting"), Some(&2));
    // A relist after a watch error: "b" was deleted meanwhile.
    states.observe(&watcher::Event::Init);
    states.observe(&watcher::Event::InitApply(session("a")));
    assert_eq!(
        states.counts().get("starting"),
        Some(&2),
        "no dip while it runs"
    );
    states.observe(&watcher::Event::InitDone);
    assert_eq!(states.counts().get("starting"), Some(&1));
    states.observe(&watcher::Event::Delete(session("a")));
    assert_eq!(states.counts().get("starting"), None);
}

/// A GuiSession whose status says `phase` and that its session expires at `expires` (Unix s).
fn with_status(
    name: &str,
    phase: crate::guisession::conditions::Phase,
    expires: i64,
) -> GuiSession {
    let mut gs = session(name);
    let now = jiff::Timestamp::from_second(expires).expect("ts");
    gs.status = Some(crate::guisession::types::GuiSessionStatus {
        session_expires_at: Some(now),
        conditions: Some(crate::guisession::conditions::conditions(
            &phase, None, None, None, now,
        )),
        ..Default::default()
    });
    gs
}

#[test]
fn overdue_renewals_and_condition_reasons_are_counted_from_the_watch() {
    use crate::guisession::conditions::Phase;
    let states = SessionStates::default();
    let grace = std::time::Duration::from_secs(120);
    let stalled = Phase::Stalled {
        reason: "AccessDenied".into(),
        message: "m".into(),
    };
    let retrying = Phase::Retrying {
        reason: "Throttling".into(),
        message: "m".into(),
    };
    // Expired at 1000: overdue from 1120 on, unless nothing is meant to run.
    states.observe(&watcher::Event::Apply(with_status(
        "retrying", retrying, 1000,
    )));
    states.observe(&watcher::Event::Apply(with_status(
        "stalled", stalled, 1000,
    )));
    states.observe(&watcher::Event::Apply(with_status(
        "closed",
        Phase::OutsideSchedule { opens_at: None },
        1000,
    )));
    states.observe(&watcher::Event::Apply(with_status(
        "fresh",
        Phase::Active {
            expires_at: jiff::Timestamp::from_second(5000).expect("ts"),
        },
        5000,
    )));
    assert_eq!(states.renewal_overdue(1100, grace), 0, "within the grace");
    assert_eq!(
        states.renewal_overdue(1121, grace),
        2,
        "retrying and stalled"
    );
    let conditions = states.condition_counts();
    assert_eq!(
        conditions.get(&("Stalled", "AccessDenied".to_owned())),
        Some(&1)
    );
    assert_eq!(
        conditions.get(&("Reconciling", "Retrying".to_owned())),
        Some(&1)
    );
    assert_eq!(conditions.len(), 2, "{conditions:?}");
}

fn cached(name: &str, uid: &str, generation: i64) -> CachedGuiSession {
    let mut obj = session(name);
    obj.metadata.uid = Some(uid.into());
    obj.metadata.generation = Some(generation);
    obj.metadata.resource_version = Some("7".into());
    match metadata_of(watcher::Event::Apply(obj)) {
        watcher::Event::Apply(meta) => meta,
        _ => unreachable!("metadata_of keeps the event's kind"),
    }
}

#[test]
fn only_new_objects_and_new_generations_trigger_a_reconcile() {
    use watcher::Event::{Apply, Delete, Init, InitApply, InitDone};
    const A: &str = "0b6e1c52-9f7a-4d0e-8a51-3f1f0e6c2a01";
    const A_AGAIN: &str = "5d2f7e40-1c3b-4b7a-9e0d-6a8c4f2b1e02";
    const B: &str = "9a1d3c7e-2b4f-4e6a-8c0d-1f3e5a7b9c03";
    let mut seen = Generations::default();
    let mut news = |event| seen.is_news(&event);
    assert!(news(Apply(cached("a", A, 1))), "a new object");
    assert!(!news(Apply(cached("a", A, 1))), "its own status write");
    assert!(news(Apply(cached("a", A, 2))), "a spec edit");
    assert!(news(Apply(cached("b", B, 1))));
    // Deleted and created again under the same name: a new object.
    assert!(news(Delete(cached("a", A, 2))));
    assert!(news(Apply(cached("a", A_AGAIN, 1))));
    // A relist: "b" was edited and "a" deleted while the watch was down.
    assert!(news(Init));
    assert!(!news(InitApply(cached("a", A_AGAIN, 1))), "unchanged");
    assert!(news(InitApply(cached("b", B, 3))));
    assert!(news(InitDone));
    assert!(!news(Apply(cached("b", B, 3))));
    // Without a uid nothing can be compared: it passes.
    let mut no_uid = cached("c", B, 1);
    no_uid.metadata.uid = None;
    assert!(news(Apply(no_uid.clone())));
    assert!(news(Apply(no_uid)));
}

#[test]
fn the_skip_stop_annotation_triggers_a_reconcile_and_other_annotations_do_not() {
    use watcher::Event::Apply;
    const A: &str = "0b6e1c52-9f7a-4d0e-8a51-3f1f0e6c2a01";
    let annotated = |pairs: &[(&str, &str)]| {
        let mut obj = session("a");
        obj.metadata.uid = Some(A.into());
        obj.metadata.generation = Some(3);
        obj.metadata.annotations = Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        match metadata_of(Apply(obj)) {
            Apply(meta) => meta,
            _ => unreachable!("metadata_of keeps the event's kind"),
        }
    };
    let mut seen = Generations::default();
    assert!(seen.is_news(&Apply(annotated(&[]))));
    assert!(
        !seen.is_news(&Apply(annotated(&[("team", "lab")]))),
        "an unrelated annotation"
    );
    let skip = annotated(&[(SKIP_STOP_ANNOTATION, "true"), ("team", "lab")]);
    assert_eq!(
        skip.metadata.annotations.as_ref().map(|a| a.len()),
        Some(1),
        "only the annotation that decides is cached"
    );
    assert!(seen.is_news(&Apply(skip.clone())), "skip-stop set");
    assert!(!seen.is_news(&Apply(skip)));
    assert!(seen.is_news(&Apply(annotated(&[]))), "skip-stop removed");
}

#[test]
fn a_relist_drops_the_generations_of_objects_deleted_meanwhile() {
    use watcher::Event::{Apply, Init, InitApply, InitDone};
    const A: &str = "0b6e1c52-9f7a-4d0e-8a51-3f1f0e6c2a01";
    const B: &str = "9a1d3c7e-2b4f-4e6a-8c0d-1f3e5a7b9c03";
    let mut seen = Generations::default();
    seen.is_news(&Apply(cached("a", A, 1)));
    seen.is_news(&Apply(cached("b", B, 1)));
    seen.is_news(&Init);
    seen.is_news(&InitApply(cached("a", A, 1)));
    assert_eq!(seen.by_uid.len(), 2, "kept while the relist runs");
    seen.is_news(&InitDone);
    assert_eq!(seen.by_uid.len(), 1);
    assert!(
        seen.by_uid
            .contains_key(&0x0b6e1c52_9f7a_4d0e_8a51_3f1f0e6c2a01)
    );
}
