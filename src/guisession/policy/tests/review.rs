//! The holes a second review found in the policy (issue "Second review"), each pinned by a test
//! that failed before its fix.

use super::*;
use crate::account::policy::AccountRefusal;
use crate::guisession::types::{AccountKind, AccountRef, ScheduleWindow, SessionSchedule};

fn lab_account() -> AccountRef {
    AccountRef {
        kind: AccountKind::LightsailAccount,
        name: "grant-42".into(),
    }
}

fn lab_target(region: &str) -> Target {
    Target {
        resource_name: "web-1".into(),
        region: Some(region.into()),
        account: Some("LightsailAccount/grant-42".into()),
    }
}

/// An object whose session, started at t0 in its account's Region eu-west-1, is active.
fn active_in_account() -> Obj {
    let mut o = Obj::new();
    o.spec.account_ref = Some(lab_account());
    o.account_region = Some("eu-west-1".into());
    assert_eq!(
        o.observe(t0()).effect,
        Effect::Lookup(lab_target("eu-west-1"))
    );
    o.step(
        Input::LookedUp {
            target: lab_target("eu-west-1"),
            at: LOOKED_UP_AT,
            result: Ok(vec![]),
        },
        t0(),
    );
    o.step(
        Input::StartAnswered {
            target: lab_target("eu-west-1"),
            fence: o.status.pending_start.clone(),
            result: Ok(vec![start_op("op-1", t0(), OperationStatus::Succeeded)]),
        },
        t0(),
    );
    assert!(ready(&o.status), "{:?}", o.status);
    o
}

/// Item 2: an account that is only being checked (a transient STS error) is a wait; the
/// recorded session, its start time and its fence survive it; the renewal goes on afterwards.
#[test]
fn an_account_momentarily_unusable_never_makes_a_session_forgotten() {
    let mut o = active_in_account();
    let recorded = o.status.clone();
    o.refusal = Some(AccountRefusal {
        reason: "AccountNotReady",
        message: "LightsailAccount lab/grant-42: Throttling: rate exceeded (retrying)".into(),
        pending: true,
    });
    let t = o.observe(at(60));
    assert!(
        t.notes.iter().all(|n| n.reason != "ResourceChanged"),
        "no session forgotten: {:?}",
        t.notes
    );
    assert_eq!(t.effect, Effect::Done(Next::Change));
    assert_eq!(o.status.session_started_at, recorded.session_started_at);
    assert_eq!(o.status.last_start_at, recorded.last_start_at);
    assert_eq!(o.status.region, recorded.region);
    assert_eq!(o.condition("Stalled").0, "False", "a wait, not an error");
    // The account is back: the session is still the one recorded, renewed at its expiry.
    o.refusal = None;
    let t = o.observe(at(120));
    assert_eq!(t.effect, Effect::Done(Next::At(at(3600))));
    assert!(ready(&o.status));
}

/// Item 2: deleting while the account is being checked waits for it instead of skipping the
/// stop that stopOnDelete asks for.
#[test]
fn a_deletion_while_the_account_is_being_checked_still_stops_the_session() {
    let mut o = active_in_account();
    o.spec.stop_on_delete = true;
    o.has_finalizer = true;
    o.deleting = true;
    o.refusal = Some(AccountRefusal {
        reason: "AccountNotReady",
        message: "being checked".into(),
        pending: true,
    });
    let t = o.observe(at(60));
    assert_eq!(t.effect, Effect::Done(Next::Change));
    assert_eq!(t.finalizer, None, "the finalizer stays until the stop");
    assert!(t.notes.iter().all(|n| n.reason != "StopSkipped"));
    o.refusal = None;
    assert_eq!(
        o.observe(at(61)).effect,
        Effect::Stop(lab_target("eu-west-1"))
    );
}

/// The lookup of `target()` made at `now`, answered with `operations`.
fn looked_up(o: &mut Obj, now: Timestamp, operations: Vec<Operation>) -> Transition {
    o.step(
        Input::LookedUp {
            target: target(),
            at: now,
            result: Ok(operations),
        },
        now,
    )
}

/// A window from 12:00 to 13:00 UTC with stopAtWindowEnd, and a start fenced at 12:59:50 (a
/// lookup found nothing to adopt).
fn fenced_just_before_the_close() -> (Obj, Timestamp) {
    let mut o = Obj::new();
    o.spec.schedule = Some(SessionSchedule {
        time_zone: "UTC".into(),
        windows: vec![ScheduleWindow {
            start: "0 12 * * *".into(),
            duration: "1h".into(),
        }],
        exclusions: vec![],
        stop_at_window_end: true,
    });
    let fenced_at = ts("2026-11-24T12:59:50Z");
    assert_eq!(o.observe(fenced_at).effect, Effect::Lookup(target()));
    let t = o.step(
        Input::LookedUp {
            target: target(),
            at: LOOKED_UP_AT,
            result: Ok(vec![]),
        },
        fenced_at,
    );
    assert_eq!(t.effect, Effect::Start(target()));
    (o, fenced_at)
}

/// Item 4: a renewal fenced at 12:59:50 and answered at 13:00:05, after a window that closes at
/// 13:00 with stopAtWindowEnd, is recorded and stopped, not left running for an hour.
#[test]
fn a_start_answered_after_the_close_is_recorded_then_stopped() {
    let (mut o, fenced_at) = fenced_just_before_the_close();
    let answered_at = ts("2026-11-24T13:00:05Z");
    let t = o.step(
        started(&o, start_op("op-1", fenced_at, OperationStatus::Started)),
        answered_at,
    );
    assert!(matches!(t.effect, Effect::Confirm { .. }), "{:?}", t.effect);
    // The next reconcile, after the close: the start is recorded (its first poll) ...
    let t = o.observe(ts("2026-11-24T13:00:06Z"));
    assert_eq!(
        t.effect,
        Effect::Poll {
            target: target(),
            operation_id: "op-1".into()
        },
        "the start in flight at the close is recorded before anything else"
    );
    // ... and then stopped at once.
    let t = o.step(
        Input::Polled(Ok(Some(start_op(
            "op-1",
            fenced_at,
            OperationStatus::Succeeded,
        )))),
        ts("2026-11-24T13:00:07Z"),
    );
    assert_eq!(t.effect, Effect::Stop(target()));
}

/// Item 4, another replica's start: looked up after its settle window, adopted, then stopped;
/// and when the lookup finds nothing, nothing is started outside the window.
#[test]
fn another_replicas_start_at_the_close_is_looked_up_and_stopped_never_restarted() {
    for found in [true, false] {
        let (mut o, fenced_at) = fenced_just_before_the_close();
        // Another replica sees the fence after the close: it waits for the settle window ...
        o.unconfirmed = None;
        let settle_end = add(fenced_at, secs(60));
        assert_eq!(
            o.observe(ts("2026-11-24T13:00:06Z")).effect,
            Effect::Done(Next::At(settle_end))
        );
        // ... then looks the resource up.
        assert_eq!(o.observe(settle_end).effect, Effect::Lookup(target()));
        let operations = if found {
            vec![start_op("op-1", fenced_at, OperationStatus::Succeeded)]
        } else {
            vec![]
        };
        let t = looked_up(&mut o, settle_end, operations);
        if found {
            assert_eq!(t.effect, Effect::Stop(target()), "adopted, then stopped");
        } else {
            // A second lookup, for a call that landed late; then nothing more.
            let late = add(settle_end, secs(15));
            assert_eq!(t.effect, Effect::Done(Next::At(late)));
            assert_eq!(o.observe(late).effect, Effect::Lookup(target()));
            let t = looked_up(&mut o, late, vec![]);
            assert!(
                !is_start(&t) && o.status.pending_start.is_none(),
                "nothing starts outside the window: {:?}",
                t.effect
            );
        }
    }
}

/// Item 5: a terminal error on a side call (here a poll) while a session is live must not hold
/// the renewal past the session's expiry, whatever --stalled-retry says.
#[test]
fn a_terminal_error_never_delays_the_renewal_past_the_expiry() {
    let mut o = Obj::active(t0());
    o.settings.stalled_retry = secs(7 * 60);
    // 3 minutes before the session expires, a poll (of a recorded, running operation) fails
    // terminally.
    o.status.operation = Some(start_op("op-1", t0(), OperationStatus::Started));
    let when = at(3600 - 180);
    let t = o.step(
        Input::Polled(Err(LightsailError {
            action: Action::GetOperation,
            ..error("AccessDenied", ErrorClass::Terminal, true)
        })),
        when,
    );
    assert_eq!(
        t.effect,
        Effect::Done(Next::At(at(3600))),
        "back at the expiry, not 7 minutes later"
    );
    // At the expiry the stall does not hold the renewal back.
    let t = o.observe(at(3600));
    assert!(
        !matches!(t.effect, Effect::Done(Next::At(a)) if a > at(3600)),
        "renewal held back by the stall: {:?}",
        t.effect
    );
    // A start that fails terminally after the expiry stalls for the whole retry delay (no
    // hot loop).
    let mut o = Obj::fenced(t0());
    let t = o.step(
        answered(&o, Err(error("NotFound", ErrorClass::Terminal, true))),
        t0(),
    );
    assert_eq!(t.effect, Effect::Done(Next::At(at(300))));
    assert_eq!(o.observe(at(10)).effect, Effect::Done(Next::At(at(300))));
}

/// Item 8: a start whose call timed out at the client may still land at Lightsail after the
/// settle window. A pending start gets two lookups, at the settle end and a quarter window
/// later, and a late landing found by the second is adopted, not started again.
#[test]
fn a_start_that_lands_after_the_settle_window_is_found_by_the_second_lookup() {
    let mut o = Obj::fenced(t0());
    // The writer's call timed out and the writer crashed: only the fence is left.
    o.unconfirmed = None;
    let settle_end = at(60);
    assert_eq!(o.observe(settle_end).effect, Effect::Lookup(target()));
    let t = looked_up(&mut o, settle_end, vec![]);
    assert!(
        !is_start(&t),
        "one empty lookup is not enough: {:?}",
        t.effect
    );
    let late = at(75);
    assert_eq!(t.effect, Effect::Done(Next::At(late)));
    assert_eq!(o.observe(late).effect, Effect::Lookup(target()));
    let t = looked_up(
        &mut o,
        late,
        vec![start_op("op-late", at(62), OperationStatus::Succeeded)],
    );
    assert!(
        t.notes.iter().any(|n| n.reason == "SessionAdopted"),
        "{:?}",
        t.notes
    );
    assert!(o.status.pending_start.is_none());
    // With nothing found twice, the next start goes out.
    let mut o = Obj::fenced(t0());
    o.unconfirmed = None;
    o.observe(settle_end);
    looked_up(&mut o, settle_end, vec![]);
    o.observe(late);
    let t = looked_up(&mut o, late, vec![]);
    assert!(is_start(&t), "{:?}", t.effect);
}
