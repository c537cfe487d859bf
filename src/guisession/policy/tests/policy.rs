//! Session policy: access Secrets (`spec.access`) and schedules (`spec.schedule`).

use super::*;
use crate::account::policy::AccountRefusal;
use crate::guisession::types::{
    AccessSpec, AccountKind, AccountRef, ScheduleExclusion, ScheduleWindow, SessionSchedule,
};

const SECRET: &str = "desktop";

fn url(s: &str) -> SessionUrl {
    SessionUrl::new(format!("https://dcv.example/{s}?authToken=secret-{s}"))
}

fn details(status: &str, percent: i32, urls: bool) -> AccessDetails {
    AccessDetails {
        status: Some(status.into()),
        percentage_complete: Some(percent),
        failure_reason: status
            .starts_with("failed")
            .then(|| "DCV did not start".to_owned()),
        primary_url: urls.then(|| url("primary")),
        secondary_url: urls.then(|| url("secondary")),
    }
}

fn access_answer(d: AccessDetails) -> Input {
    Input::AccessAnswered {
        target: target(),
        result: Ok(d),
    }
}

/// An object with `spec.access`, driven to a running session at `now` whose Secret is missing.
fn with_access(now: Timestamp) -> (Obj, Transition) {
    let mut o = Obj::fenced(now);
    o.spec.access = Some(AccessSpec {
        secret_name: Some(SECRET.into()),
    });
    o.secret = SecretSeen::Missing;
    let t = o.step(
        started(&o, start_op("op-1", now, OperationStatus::Succeeded)),
        now,
    );
    (o, t)
}

/// Feeds the Secret write's outcome back, as the controller does.
fn write_secret(o: &mut Obj, t: &Transition, now: Timestamp) -> Transition {
    let Effect::WriteSecret(secret) = &t.effect else {
        panic!("expected a Secret write, got {:?}", t.effect);
    };
    o.secret = SecretSeen::Ours {
        session_started_at: Some(secret.session_started_at),
        intact: true,
    };
    o.step(
        Input::SecretWritten {
            access: secret.access.clone(),
            result: Ok(()),
        },
        now,
    )
}

#[test]
fn a_started_session_is_ready_only_once_its_access_secret_is_written() {
    let (mut o, t) = with_access(t0());
    assert_eq!(t.effect, Effect::Access(target()));
    assert!(!ready(&t.status), "no URLs yet: not Ready");
    assert_eq!(o.condition("Reconciling").0, "True");

    // Lightsail is still setting the computer up: ask again with backoff, not at once.
    let t = o.step(access_answer(details("settingUpInstance", 20, false)), t0());
    let access = t.status.access.clone().expect("status.access");
    assert_eq!(access.status.as_deref(), Some("settingUpInstance"));
    assert_eq!(access.percentage_complete, Some(20));
    assert_eq!(t.effect, Effect::Done(Next::After(secs(2))));
    assert!(!ready(&t.status));
    // Woken early (say by an unrelated edit): still waiting, no call.
    assert_eq!(o.observe(at(1)).effect, Effect::Done(Next::At(at(2))));
    assert_eq!(o.observe(at(2)).effect, Effect::Access(target()));
    let t = o.step(access_answer(details("starting", 70, false)), at(2));
    assert_eq!(t.effect, Effect::Done(Next::After(secs(2))));
    assert_eq!(o.observe(at(4)).effect, Effect::Access(target()));
    let t = o.step(access_answer(details("starting", 90, false)), at(4));
    assert_eq!(
        t.effect,
        Effect::Done(Next::After(secs(4))),
        "the wait grows with the time spent waiting"
    );
    assert_eq!(o.observe(at(8)).effect, Effect::Access(target()));

    // Started: the Secret is written first, the status with its outcome (one write).
    let before = o.status.clone();
    let t = o.step(access_answer(details("started", 100, true)), at(8));
    assert_eq!(t.status, before, "nothing written before the Secret");
    let Effect::WriteSecret(secret) = &t.effect else {
        panic!("{:?}", t.effect);
    };
    assert_eq!(secret.name, SECRET);
    assert_eq!(secret.primary_url, url("primary"));
    assert_eq!(secret.secondary_url, Some(url("secondary")));
    assert_eq!(secret.session_started_at, t0());
    assert_eq!(secret.expires_at, at(3600));
    let t = write_secret(&mut o, &t, at(8));
    assert!(ready(&t.status));
    assert_eq!(t.effect, Effect::Done(Next::At(at(3600))));
    let access = t.status.access.clone().expect("status.access");
    assert_eq!(access.secret_name.as_deref(), Some(SECRET));
    assert_eq!(access.secret_written_at, Some(at(8)));
    assert_eq!(access.session_started_at, Some(t0()));
    assert!(t.notes.iter().any(|n| n.reason == "AccessSecretWritten"));

    // Settled: nothing to do until the renewal.
    let t = o.observe(at(60));
    assert_eq!(t.effect, Effect::Done(Next::At(at(3600))));
    assert_eq!(t.status, o.status);
}

#[test]
fn the_url_is_never_in_the_debug_form_of_what_the_controller_logs() {
    let (mut o, _) = with_access(t0());
    let t = o.step(access_answer(details("started", 100, true)), t0());
    let logged = format!("{:?} {:?}", t.effect, t.status);
    assert!(matches!(t.effect, Effect::WriteSecret(_)));
    assert!(!logged.contains("authToken"), "{logged}");
    let input = format!("{:?}", access_answer(details("started", 100, true)));
    assert!(!input.contains("authToken"), "{input}");
}

#[test]
fn a_deleted_or_edited_secret_is_written_again_with_fresh_urls() {
    let (mut o, t) = with_access(t0());
    assert_eq!(t.effect, Effect::Access(target()));
    let t = o.step(access_answer(details("started", 100, true)), t0());
    write_secret(&mut o, &t, t0());
    assert!(ready(&o.status));

    for seen in [
        SecretSeen::Missing,
        SecretSeen::Ours {
            session_started_at: Some(t0()),
            intact: false,
        },
        // A Secret for an older session (e.g. restored from a backup).
        SecretSeen::Ours {
            session_started_at: Some(at(1)),
            intact: true,
        },
    ] {
        o.secret = seen;
        let t = o.observe(at(30));
        assert_eq!(t.effect, Effect::Access(target()), "{seen:?}");
        assert!(ready(&t.status), "the session is still there: stays Ready");
    }
}

#[test]
fn a_renewal_asks_for_new_urls_and_stays_ready() {
    let (mut o, t) = with_access(t0());
    assert_eq!(t.effect, Effect::Access(target()));
    let t = o.step(access_answer(details("started", 100, true)), t0());
    write_secret(&mut o, &t, t0());

    let t = o.observe(at(3600));
    assert!(is_start(&t));
    assert!(ready(&t.status));
    let t = o.step(
        started(&o, start_op("op-2", at(3600), OperationStatus::Succeeded)),
        at(3600),
    );
    assert_eq!(t.effect, Effect::Access(target()));
    assert!(ready(&t.status), "a routine renewal keeps Ready");
    let t = o.step(access_answer(details("started", 100, true)), at(3601));
    let Effect::WriteSecret(secret) = &t.effect else {
        panic!("{:?}", t.effect);
    };
    assert_eq!(secret.session_started_at, at(3600));
    let t = write_secret(&mut o, &t, at(3601));
    assert_eq!(t.effect, Effect::Done(Next::At(at(7200))));
}

#[test]
fn a_failed_access_stalls_says_why_once_and_asks_again_only_after_the_retry_delay() {
    let (mut o, _) = with_access(t0());
    let t = o.step(
        access_answer(details("failedStartingGUISession", 100, false)),
        t0(),
    );
    assert_eq!(
        o.condition("Stalled"),
        ("True".into(), "FailedStartingGUISession".into())
    );
    let warnings: Vec<_> = t.notes.iter().filter(|n| n.warning).collect();
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].reason, "AccessFailed");
    assert!(warnings[0].message.contains("DCV did not start"));
    assert_eq!(t.effect, Effect::Done(Next::At(at(300))));
    assert_eq!(o.observe(at(100)).effect, Effect::Done(Next::At(at(300))));
    assert_eq!(o.observe(at(300)).effect, Effect::Access(target()));
    let t = o.step(
        access_answer(details("failedStartingGUISession", 100, false)),
        at(300),
    );
    assert!(
        t.notes.iter().all(|n| n.reason != "AccessFailed"),
        "the same failure is not announced again"
    );
    // It recovers by itself.
    assert_eq!(o.observe(at(600)).effect, Effect::Access(target()));
    let t = o.step(access_answer(details("started", 100, true)), at(600));
    let t = write_secret(&mut o, &t, at(600));
    assert!(ready(&t.status));
    assert_eq!(o.condition("Stalled").0, "False");
}

#[test]
fn without_secret_permission_access_is_a_condition_and_sessions_are_still_renewed() {
    let (mut o, _) = with_access(t0());
    o.settings.access_secrets = false;
    o.secret = SecretSeen::NotRead;
    let t = o.observe(at(10));
    assert_eq!(
        o.condition("Stalled"),
        ("True".into(), "AccessSecretsDisabled".into())
    );
    assert_eq!(t.effect, Effect::Done(Next::At(at(3600))));
    assert!(is_start(&o.observe(at(3600))), "the session is kept alive");
}

#[test]
fn a_secret_someone_else_owns_is_never_touched() {
    let (mut o, _) = with_access(t0());
    o.secret = SecretSeen::Foreign;
    let t = o.observe(at(10));
    assert_eq!(
        o.condition("Stalled"),
        ("True".into(), "AccessSecretConflict".into())
    );
    assert_eq!(t.effect, Effect::Done(Next::At(at(310))));
    // Renamed to a free name: back on track.
    o.edit(|s| {
        s.access = Some(AccessSpec {
            secret_name: Some("desktop-2".into()),
        })
    });
    o.secret = SecretSeen::Missing;
    assert_eq!(o.observe(at(20)).effect, Effect::Access(target()));
}

#[test]
fn the_secret_is_named_after_the_guisession_unless_named() {
    let mut o = Obj::fenced(t0());
    o.spec.access = Some(AccessSpec { secret_name: None });
    o.secret = SecretSeen::Missing;
    o.step(
        started(&o, start_op("op-1", t0(), OperationStatus::Succeeded)),
        t0(),
    );
    let t = o.step(access_answer(details("started", 100, true)), t0());
    let Effect::WriteSecret(secret) = &t.effect else {
        panic!("{:?}", t.effect);
    };
    assert_eq!(secret.name, "gs-access");
}

#[test]
fn a_secret_no_longer_asked_for_is_deleted_and_forgotten() {
    let (mut o, _) = with_access(t0());
    let t = o.step(access_answer(details("started", 100, true)), t0());
    write_secret(&mut o, &t, t0());
    o.edit(|s| s.access = None);
    o.secret = SecretSeen::NotRead;
    let t = o.observe(at(10));
    assert_eq!(t.effect, Effect::DeleteSecret(SECRET.into()));
    let t = o.step(Input::SecretDeleted(Ok(())), at(10));
    assert_eq!(t.status.access, None);
    assert!(ready(&t.status));
    assert_eq!(t.effect, Effect::Done(Next::At(at(3600))));
}

#[test]
fn a_forbidden_secret_write_stalls_and_other_failures_retry() {
    for (forbidden, stalled, reason) in [
        (true, "True", "AccessSecretForbidden"),
        (false, "False", "AccessSecretFailed"),
    ] {
        let (mut o, _) = with_access(t0());
        let t = o.step(access_answer(details("started", 100, true)), t0());
        let Effect::WriteSecret(secret) = t.effect else {
            panic!("no write");
        };
        let t = o.step(
            Input::SecretWritten {
                access: secret.access.clone(),
                result: Err(SecretError {
                    forbidden,
                    conflict: false,
                    message: "secrets is forbidden".into(),
                }),
            },
            t0(),
        );
        assert_eq!(o.condition("Stalled").0, stalled);
        assert_eq!(o.condition("Ready"), ("False".into(), reason.into()));
        assert!(t.notes.iter().any(|n| n.warning));
        assert_eq!(
            o.status.access.as_ref().and_then(|a| a.secret_written_at),
            None
        );
    }
}

#[test]
fn a_secret_someone_else_made_first_is_a_conflict_judged_again_never_overwritten() {
    let (mut o, _) = with_access(t0());
    let t = o.step(access_answer(details("started", 100, true)), t0());
    let Effect::WriteSecret(secret) = t.effect else {
        panic!("no write");
    };
    // The create failed: someone created a Secret of that name after it was read missing.
    let t = o.step(
        Input::SecretWritten {
            access: secret.access.clone(),
            result: Err(SecretError {
                forbidden: false,
                conflict: true,
                message: "secrets \"desktop\" already exists (409)".into(),
            }),
        },
        t0(),
    );
    assert_eq!(
        o.condition("Ready"),
        ("False".into(), "AccessSecretConflict".into())
    );
    assert_eq!(
        t.effect,
        Effect::Done(Next::After(secs(2))),
        "read again soon"
    );
    // The fresh read finds someone else's Secret: Stalled, nothing written or deleted.
    o.secret = SecretSeen::Foreign;
    let t = o.observe(at(1));
    assert_eq!(
        o.condition("Stalled"),
        ("True".into(), "AccessSecretConflict".into())
    );
    assert!(matches!(t.effect, Effect::Done(_)), "{:?}", t.effect);
}

#[test]
fn a_secret_that_keeps_changing_cannot_drive_access_calls_faster_than_the_backoff() {
    let (mut o, t) = with_access(t0());
    assert_eq!(t.effect, Effect::Access(target()));
    let t = o.step(access_answer(details("started", 100, true)), t0());
    write_secret(&mut o, &t, t0());
    // Someone edits one of the operator's keys again and again; each time the Secret is judged
    // edited. Count the access calls the machine asks for over ten minutes of such edits, one
    // every 100 ms.
    let mut calls = 0;
    let mut last_call = None;
    for tenth in 1..=6000u64 {
        let now = t0() + Duration::from_millis(100 * tenth);
        o.secret = SecretSeen::Ours {
            session_started_at: o.status.session_started_at,
            intact: false,
        };
        let t = o.observe(now);
        if t.effect == Effect::Access(target()) {
            if let Some(last) = last_call {
                assert!(
                    until(last, now) >= secs(1),
                    "two access calls {:?} apart",
                    until(last, now)
                );
            }
            calls += 1;
            last_call = Some(now);
            let t = o.step(access_answer(details("started", 100, true)), now);
            write_secret(&mut o, &t, now);
        }
    }
    assert!(
        calls <= 20,
        "{calls} access calls in 10 minutes of edits: the delay grows with the session's age"
    );
    assert!(calls >= 2, "an edited Secret is still written again");
}

fn schedule(windows: &[(&str, &str)], exclusions: &[(&str, &str)], stop: bool) -> SessionSchedule {
    SessionSchedule {
        time_zone: "UTC".into(),
        windows: windows
            .iter()
            .map(|(start, duration)| ScheduleWindow {
                start: (*start).into(),
                duration: (*duration).into(),
            })
            .collect(),
        exclusions: exclusions
            .iter()
            .map(|(start, end)| ScheduleExclusion {
                start: ts(start),
                end: ts(end),
            })
            .collect(),
        stop_at_window_end: stop,
    }
}

/// A window 12:00–13:00 UTC every day (T0 is 12:00).
fn noon_hour(stop: bool) -> SessionSchedule {
    schedule(&[("0 12 * * *", "1h")], &[], stop)
}

#[test]
fn outside_a_window_nothing_starts_and_the_object_is_settled() {
    let mut o = Obj::new();
    o.spec.schedule = Some(noon_hour(false));
    let t = o.observe(at(2 * 3600));
    assert_eq!(
        t.effect,
        Effect::Done(Next::At(ts("2026-11-25T12:00:00Z"))),
        "no lookup, no start: wake at the next window"
    );
    assert_eq!(
        o.condition("Ready"),
        ("True".into(), "OutsideSchedule".into())
    );
    assert_eq!(o.condition("Reconciling").0, "False");
    let s = o.status.schedule.clone().expect("status.schedule");
    assert!(!s.open);
    assert_eq!(s.next_change_at, Some(ts("2026-11-25T12:00:00Z")));
}

#[test]
fn inside_a_window_sessions_start_and_renew_and_the_close_is_a_timer() {
    let mut o = Obj::new();
    o.spec.schedule = Some(noon_hour(false));
    o.edit(|s| s.max_session_age = "40m".into());
    assert_eq!(o.observe(t0()).effect, Effect::Lookup(target()));
    let t = o.step(
        Input::LookedUp {
            target: target(),
            at: LOOKED_UP_AT,
            result: Ok(vec![]),
        },
        t0(),
    );
    assert!(is_start(&t));
    let t = o.step(
        started(&o, start_op("op-1", t0(), OperationStatus::Succeeded)),
        t0(),
    );
    assert!(ready(&t.status));
    assert_eq!(t.effect, Effect::Done(Next::At(at(2400))), "renewal first");
    // Renewed at 12:40; the session would expire at 13:20, after the window closes at 13:00.
    assert!(is_start(&o.observe(at(2400))));
    let t = o.step(
        started(&o, start_op("op-2", at(2400), OperationStatus::Succeeded)),
        at(2400),
    );
    assert_eq!(
        t.effect,
        Effect::Done(Next::At(at(3600))),
        "the close comes first"
    );
    // At the close: no renewal, and the running session is left to run out.
    let t = o.observe(at(3600));
    assert_eq!(t.effect, Effect::Done(Next::At(ts("2026-11-25T12:00:00Z"))));
    assert_eq!(o.condition("Ready").1, "OutsideSchedule");
    assert_eq!(
        o.observe(at(4800)).effect,
        t.effect,
        "nothing at the old expiry"
    );
}

#[test]
fn stop_at_window_end_stops_the_running_session_once() {
    let mut o = Obj::active(t0());
    // The window closes at 12:30, the session would run until 13:00.
    o.spec.schedule = Some(schedule(&[("0 12 * * *", "30m")], &[], true));
    let t = o.observe(at(1800));
    assert_eq!(t.effect, Effect::Stop(target()));
    let t = o.step(Input::StopAnswered(Ok(())), at(3601));
    assert!(t.notes.iter().any(|n| n.reason == "SessionStopped"));
    assert_eq!(o.status.session_expires_at, None);
    assert_eq!(t.effect, Effect::Done(Next::At(ts("2026-11-25T12:00:00Z"))));
    assert_eq!(t.finalizer, None, "not a deletion");
    let again = o.observe(at(3700));
    assert_eq!(again.effect, t.effect, "stopped once");
    // The next window starts afresh (a lookup finds the stopped session, then a start).
    assert_eq!(
        o.observe(ts("2026-11-25T12:00:00Z")).effect,
        Effect::Lookup(target())
    );
}

#[test]
fn an_exclusion_keeps_a_window_closed_and_reopens_it_at_its_end() {
    let mut o = Obj::new();
    o.spec.schedule = Some(schedule(
        &[("0 12 * * *", "1h")],
        &[("2026-11-24T00:00:00Z", "2026-11-24T12:30:00Z")],
        false,
    ));
    let t = o.observe(at(60));
    assert_eq!(t.effect, Effect::Done(Next::At(at(1800))));
    assert_eq!(o.observe(at(1800)).effect, Effect::Lookup(target()));
}

#[test]
fn a_schedule_that_cannot_be_evaluated_stalls_without_calling_lightsail() {
    let mut o = Obj::new();
    let mut bad = noon_hour(false);
    bad.time_zone = "Mars/Olympus_Mons".into();
    o.spec.schedule = Some(bad);
    let t = o.observe(t0());
    assert_eq!(t.effect, Effect::Done(Next::Change));
    let (status, reason) = o.condition("Stalled");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "InvalidSchedule")
    );
    let message = o
        .status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Stalled")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(message.contains("Mars/Olympus_Mons"), "{message}");
    // Fixed by an edit: on track at once.
    o.edit(|s| s.schedule = Some(noon_hour(false)));
    assert_eq!(o.observe(t0()).effect, Effect::Lookup(target()));
}

fn lab_account() -> AccountRef {
    AccountRef {
        kind: AccountKind::LightsailAccount,
        name: "grant-42".into(),
    }
}

#[test]
fn an_account_that_cannot_be_used_stalls_without_calling_lightsail_until_it_is_fixed() {
    let mut o = Obj::new();
    o.spec.account_ref = Some(lab_account());
    for reason in ["AccountNotFound", "AccountNotAllowed", "AccountNotReady"] {
        o.refusal = Some(AccountRefusal {
            reason,
            message: format!("LightsailAccount lab/grant-42: {reason}"),
            pending: false,
        });
        let t = o.observe(t0());
        assert_eq!(t.effect, Effect::Done(Next::Change), "no call, no polling");
        assert_eq!(o.condition("Stalled"), ("True".into(), reason.into()));
    }
    // Not checked yet (just created, or just edited): a wait, not an error.
    o.refusal = Some(AccountRefusal {
        reason: "AccountNotReady",
        message: "LightsailAccount lab/grant-42 has not been checked yet".into(),
        pending: true,
    });
    assert_eq!(o.observe(t0()).effect, Effect::Done(Next::Change));
    assert_eq!(o.condition("Stalled").0, "False");
    assert_eq!(o.condition("Reconciling").0, "True");
    // Fixed: the account's change wakes the object, which goes on in that account.
    o.refusal = None;
    o.account_region = Some("eu-west-1".into());
    let t = o.observe(at(1));
    let Effect::Lookup(target) = t.effect else {
        panic!("{:?}", t.effect);
    };
    assert_eq!(target.account.as_deref(), Some("LightsailAccount/grant-42"));
    assert_eq!(
        target.region.as_deref(),
        Some("eu-west-1"),
        "the account's Region"
    );
    o.edit(|s| s.region = Some("ap-south-1".into()));
    let Effect::Lookup(target) = o.observe(at(2)).effect else {
        panic!("expected a lookup");
    };
    assert_eq!(
        target.region.as_deref(),
        Some("ap-south-1"),
        "the spec's Region wins"
    );
}

#[test]
fn a_session_in_another_account_is_not_this_objects_after_the_ref_changes() {
    let mut o = Obj::active(t0());
    assert_eq!(o.status.account, None);
    o.edit(|s| s.account_ref = Some(lab_account()));
    let t = o.observe(at(60));
    assert!(
        t.notes.iter().any(|n| n.reason == "ResourceChanged"),
        "the own-identity session is forgotten"
    );
    assert_eq!(o.status.session_started_at, None);
}

#[test]
fn deleting_with_an_unusable_account_lets_the_object_go() {
    let mut o = Obj::active(t0());
    o.spec.stop_on_delete = true;
    o.spec.account_ref = Some(lab_account());
    o.status.account = Some("LightsailAccount/grant-42".into());
    o.has_finalizer = true;
    o.deleting = true;
    o.refusal = Some(AccountRefusal {
        reason: "AccountNotFound",
        message: "LightsailAccount lab/grant-42 does not exist".into(),
        pending: false,
    });
    let t = o.observe(at(60));
    assert_eq!(t.finalizer, Some(false));
    assert!(
        t.notes
            .iter()
            .any(|n| n.reason == "StopSkipped" && n.warning)
    );
}
