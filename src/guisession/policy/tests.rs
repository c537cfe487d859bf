use super::*;
use crate::aws::errors::{ErrorClass, LightsailError};
use crate::aws::model::Action;
use crate::aws::model::{AccessDetails, SessionUrl};
use crate::guisession::types::Operation;
use crate::guisession::types::{OperationStatus, PendingStart};

mod computer;
mod model;
mod policy;
mod review;

/// When the lookups of these tests were made: after every settle window they meet.
const LOOKED_UP_AT: Timestamp = Timestamp::MAX;

pub(super) const T0: &str = "2026-11-24T12:00:00Z";

pub(super) fn ts(s: &str) -> Timestamp {
    s.parse().expect("valid timestamp")
}
pub(super) fn t0() -> Timestamp {
    ts(T0)
}
pub(super) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
fn at(n: u64) -> Timestamp {
    add(t0(), secs(n))
}
pub(super) fn spec() -> GuiSessionSpec {
    GuiSessionSpec::for_computer("web-1")
}
pub(super) fn settings() -> Settings {
    Settings {
        min_session_age: secs(600),
        stalled_retry: secs(300),
        follow_backoff_initial: secs(2),
        follow_backoff_max: secs(60),
        start_settle: secs(60),
        default_region: Some("us-east-1".into()),
        identity: "replica-a".into(),
        access_secrets: true,
        computer_recheck_initial: secs(30),
        computer_recheck_max: secs(300),
    }
}
fn target() -> Target {
    Target {
        resource_name: "web-1".into(),
        region: Some("us-east-1".into()),
        account: None,
    }
}
pub(super) fn start_op(id: &str, created: Timestamp, status: OperationStatus) -> Operation {
    Operation {
        id: Some(id.into()),
        operation_type: Some("StartGUISession".into()),
        created_at: Some(created),
        status_changed_at: Some(created),
        is_terminal: Some(status != OperationStatus::Started),
        status: Some(status),
        ..Operation::default()
    }
}
fn stop_op(id: &str, created: Timestamp) -> Operation {
    Operation {
        operation_type: Some("StopGUISession".into()),
        ..start_op(id, created, OperationStatus::Succeeded)
    }
}
fn error(code: &str, class: ErrorClass, answered: bool) -> LightsailError {
    LightsailError {
        action: Action::StartGuiSession,
        code: code.into(),
        message: format!("{code} happened"),
        class,
        answered,
    }
}

/// One object, driven through transitions the way the controller drives it: every transition's
/// status becomes the object's status (as if the write won).
struct Obj {
    spec: GuiSessionSpec,
    status: GuiSessionStatus,
    generation: i64,
    deleting: bool,
    has_finalizer: bool,
    skip_stop: bool,
    secret: SecretSeen,
    /// Why `spec.accountRef` cannot be used, if it cannot.
    refusal: Option<crate::account::policy::AccountRefusal>,
    /// The default Region of the account `spec.accountRef` names.
    account_region: Option<String>,
    /// The start the controller holds in memory after [`Effect::Confirm`].
    unconfirmed: Option<UnconfirmedStart>,
    settings: Settings,
    /// The computer's state, answered at once to every read of it (`None`: reads are left to
    /// the test).
    computer: Option<&'static str>,
}

impl Obj {
    fn new() -> Obj {
        Obj {
            spec: spec(),
            status: GuiSessionStatus::default(),
            generation: 1,
            deleting: false,
            has_finalizer: false,
            skip_stop: false,
            secret: SecretSeen::NotRead,
            refusal: None,
            account_region: None,
            unconfirmed: None,
            settings: settings(),
            computer: Some("running"),
        }
    }

    /// One transition; a read of the computer it asks for is answered at once (as
    /// `self.computer`) and the transition after it returned.
    fn step(&mut self, input: Input, now: Timestamp) -> Transition {
        let t = self.step_once(input, now);
        match (&t.effect, self.computer) {
            (
                Effect::CheckComputer {
                    target,
                    add_ons,
                    before_start,
                },
                Some(state),
            ) => {
                let seen = crate::aws::model::ComputerSeen {
                    state: state.into(),
                    idle_stop: add_ons.then_some(None),
                };
                let input = Input::ComputerChecked {
                    target: target.clone(),
                    at: now,
                    before_start: before_start.clone(),
                    result: Ok(seen),
                };
                self.step_once(input, now)
            }
            _ => t,
        }
    }

    fn step_once(&mut self, input: Input, now: Timestamp) -> Transition {
        let view = View {
            name: "gs",
            spec: &self.spec,
            status: &self.status,
            generation: Some(self.generation),
            deleting: self.deleting,
            has_finalizer: self.has_finalizer,
            skip_stop: self.skip_stop,
            access_secret: self.secret,
            account: match (&self.refusal, &self.spec.account_ref) {
                (Some(r), _) => AccountView::Refused(r),
                (None, Some(_)) => AccountView::Usable {
                    region: self.account_region.as_deref(),
                },
                (None, None) => AccountView::Own,
            },
            unconfirmed: self.unconfirmed.as_ref(),
        };
        let t = transition(&view, input, now, &self.settings);
        self.status = t.status.clone();
        // As the controller does: kept until the status no longer carries its fence.
        if let Effect::Confirm { start, .. } = &t.effect {
            self.unconfirmed = Some((**start).clone());
        }
        if self
            .unconfirmed
            .as_ref()
            .is_some_and(|u| self.status.pending_start.as_ref() != Some(&u.fence))
        {
            self.unconfirmed = None;
        }
        if let Some(add) = t.finalizer {
            self.has_finalizer = add;
        }
        t
    }

    fn observe(&mut self, now: Timestamp) -> Transition {
        self.step(Input::Observed, now)
    }

    fn edit(&mut self, f: impl FnOnce(&mut GuiSessionSpec)) {
        f(&mut self.spec);
        self.generation += 1;
    }

    /// Drives a fresh object to the fence of its first start at `now` (the lookup found
    /// nothing to adopt).
    fn fenced(now: Timestamp) -> Obj {
        let mut o = Obj::new();
        assert_eq!(o.observe(now).effect, Effect::Lookup(target()));
        let t = o.step(
            Input::LookedUp {
                target: target(),
                at: LOOKED_UP_AT,
                result: Ok(vec![]),
            },
            now,
        );
        assert_eq!(t.effect, Effect::Start(target()));
        o
    }

    /// Drives a fresh object to an active session started at `now` (the start answers with a
    /// finished operation).
    fn active(now: Timestamp) -> Obj {
        let mut o = Obj::fenced(now);
        o.step(
            started(&o, start_op("op-1", now, OperationStatus::Succeeded)),
            now,
        );
        assert!(ready(&o.status), "{:?}", o.status);
        o
    }

    fn condition(&self, type_: &str) -> (String, String) {
        let c = self
            .status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_)
            .unwrap_or_else(|| panic!("no {type_} condition"));
        (c.status.clone(), c.reason.clone())
    }
}

/// The start answer for the fence `o` holds.
fn started(o: &Obj, op: Operation) -> Input {
    answered(o, Ok(vec![op]))
}

fn answered(o: &Obj, result: Result<Vec<Operation>, LightsailError>) -> Input {
    Input::StartAnswered {
        target: target(),
        fence: o.status.pending_start.clone(),
        result,
    }
}

fn ready(status: &GuiSessionStatus) -> bool {
    condition_true(status, "Ready").is_some()
}

fn is_start(t: &Transition) -> bool {
    matches!(t.effect, Effect::Start(_))
}

#[test]
fn a_new_object_looks_up_then_fences_then_starts() {
    let mut o = Obj::new();
    let t = o.observe(t0());
    assert_eq!(t.effect, Effect::Lookup(target()));
    assert_eq!(
        t.status,
        GuiSessionStatus::default(),
        "a lookup writes nothing"
    );

    let t = o.step(
        Input::LookedUp {
            target: target(),
            at: LOOKED_UP_AT,
            result: Ok(vec![]),
        },
        at(1),
    );
    assert_eq!(t.effect, Effect::Start(target()));
    assert_eq!(
        t.status.pending_start,
        Some(PendingStart {
            requested_at: at(1),
            resource_name: "web-1".into(),
            region: Some("us-east-1".into()),
            account: None,
            holder: "replica-a".into(),
        }),
        "the fence is in the status the controller writes before calling"
    );
    assert_eq!(
        o.condition("Reconciling"),
        ("True".into(), "SessionStarting".into())
    );

    let fenced = o.status.clone();
    let t = o.step(
        started(&o, start_op("op-1", at(1), OperationStatus::Started)),
        at(2),
    );
    assert_eq!(
        t.effect,
        Effect::Confirm {
            start: Box::new(UnconfirmedStart {
                target: target(),
                fence: fenced.pending_start.clone().expect("fenced"),
                operation: start_op("op-1", at(1), OperationStatus::Started),
            }),
            after: secs(2),
        },
        "a running operation is recorded with its first poll"
    );
    assert_eq!(t.status, fenced, "nothing is written before that poll");
    assert!(t.notes.is_empty());

    // The first poll finds it still running: recorded as it is, and polled again.
    let t = o.observe(at(4));
    assert_eq!(
        t.effect,
        Effect::Poll {
            target: target(),
            operation_id: "op-1".into()
        }
    );
    assert_eq!(t.status, fenced);
    let t = o.step(
        Input::Polled(Ok(Some(start_op("op-1", at(1), OperationStatus::Started)))),
        at(4),
    );
    assert_eq!(
        t.status.pending_start, None,
        "recording the operation clears the fence"
    );
    assert_eq!(
        t.status.session_started_at,
        Some(at(1)),
        "age counts from the fence"
    );
    assert_eq!(t.status.session_expires_at, Some(at(3601)));
    assert_eq!(t.status.last_start_at, Some(at(1)));
    assert_eq!(t.status.resource_name.as_deref(), Some("web-1"));
    assert_eq!(t.status.region.as_deref(), Some("us-east-1"));
    assert_eq!(t.effect, Effect::Done(Next::After(secs(3))));
    assert_eq!(t.notes[0].reason, "SessionStarted");

    // Polling it again: succeeded.
    let t = o.observe(at(7));
    assert_eq!(
        t.effect,
        Effect::Poll {
            target: target(),
            operation_id: "op-1".into()
        }
    );
    let t = o.step(
        Input::Polled(Ok(Some(start_op(
            "op-1",
            at(1),
            OperationStatus::Succeeded,
        )))),
        at(7),
    );
    assert!(ready(&t.status));
    assert_eq!(t.effect, Effect::Done(Next::At(at(3601))));
}

#[test]
fn a_live_session_waits_until_its_expiry_and_writes_nothing() {
    let mut o = Obj::active(t0());
    let before = o.status.clone();
    let t = o.observe(at(60));
    assert_eq!(t.effect, Effect::Done(Next::At(at(3600))));
    assert_eq!(t.status, before);
    let t = o.observe(at(3599));
    assert_eq!(t.effect, Effect::Done(Next::At(at(3600))));
}

#[test]
fn at_expiry_a_renewal_is_fenced_and_keeps_ready_true() {
    let mut o = Obj::active(t0());
    let ready_since = o
        .status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.last_transition_time.clone());
    let t = o.observe(at(3600));
    assert!(is_start(&t));
    assert!(t.status.pending_start.is_some());
    assert_eq!(
        o.condition("Ready"),
        ("True".into(), "SessionRenewing".into())
    );
    assert_eq!(o.condition("Reconciling").0, "False");
    let t = o.step(
        started(&o, start_op("op-2", at(3600), OperationStatus::Succeeded)),
        at(3601),
    );
    assert_eq!(t.notes[0].reason, "SessionRenewed");
    assert_eq!(
        o.condition("Ready"),
        ("True".into(), "SessionActive".into())
    );
    let still = o
        .status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.last_transition_time.clone());
    assert_eq!(ready_since, still, "Ready never went False");
}

#[test]
fn a_pending_start_is_never_overridden_within_the_settle_window() {
    let mut o = Obj::active(t0());
    o.observe(at(3600)); // fenced; the "process" dies here
    assert!(o.status.pending_start.is_some());
    for n in [3600, 3630, 3659] {
        let t = o.observe(at(n));
        assert_eq!(t.effect, Effect::Done(Next::At(at(3660))), "at +{n}");
        assert!(t.status.pending_start.is_some());
    }
    // After the window: a lookup, never a blind start.
    assert_eq!(o.observe(at(3660)).effect, Effect::Lookup(target()));
}

#[test]
fn after_the_window_a_start_that_happened_is_adopted_and_one_that_did_not_is_taken_over() {
    // The crashed writer's call reached Lightsail: adopt it, age counted from the fence.
    let mut o = Obj::active(t0());
    o.observe(at(3600));
    let ops = vec![
        start_op("op-1", t0(), OperationStatus::Succeeded),
        start_op("op-2", at(3600), OperationStatus::Succeeded),
    ];
    let t = o.step(
        Input::LookedUp {
            target: target(),
            at: LOOKED_UP_AT,
            result: Ok(ops.clone()),
        },
        at(3700),
    );
    assert_eq!(t.notes[0].reason, "SessionAdopted");
    assert_eq!(t.status.pending_start, None);
    assert_eq!(t.status.session_started_at, Some(at(3600)));
    assert_eq!(t.status.last_start_at, Some(at(3600)));
    assert_eq!(
        t.status.operation.as_ref().and_then(|o| o.id.as_deref()),
        Some("op-2")
    );
    assert_eq!(t.effect, Effect::Done(Next::At(at(7200))));

    // It did not: nothing newer than the recorded operation, so start, with a fresh fence.
    let mut o = Obj::active(t0());
    o.observe(at(3600));
    let t = o.step(
        Input::LookedUp {
            target: target(),
            at: LOOKED_UP_AT,
            result: Ok(ops[..1].to_vec()),
        },
        at(3700),
    );
    assert!(is_start(&t));
    assert_eq!(
        t.status.pending_start.as_ref().map(|p| p.requested_at),
        Some(at(3700))
    );
}

#[test]
fn kill_9_after_the_call_then_a_terminal_lookup_error_never_starts_blindly() {
    // Hole 2: the marker was erased by the Stalled write; pendingStart is not.
    let mut o = Obj::active(t0());
    o.observe(at(3600));
    let t = o.step(
        Input::LookedUp {
            target: target(),
            at: LOOKED_UP_AT,
            result: Err(error("AccessDenied", ErrorClass::Terminal, true)),
        },
        at(3700),
    );
    assert_eq!(o.condition("Stalled").0, "True");
    assert!(
        t.status.pending_start.is_some(),
        "the fence survives the error"
    );
    assert_eq!(t.effect, Effect::Done(Next::At(at(4000))));
    assert_eq!(o.observe(at(3800)).effect, Effect::Done(Next::At(at(4000))));
    assert_eq!(o.observe(at(4000)).effect, Effect::Lookup(target()));
}

#[test]
fn suspend_and_resume_with_a_pending_start_looks_up() {
    let mut o = Obj::active(t0());
    o.observe(at(3600));
    o.edit(|s| s.suspend = true);
    let t = o.observe(at(3610));
    assert_eq!(t.effect, Effect::Done(Next::Change));
    assert!(t.status.pending_start.is_some());
    // Suspended settles: Ready True (reason Suspended), nothing reconciling or stalled.
    assert_eq!(o.condition("Ready"), ("True".into(), "Suspended".into()));
    assert_eq!(o.condition("Reconciling").0, "False");
    assert_eq!(o.condition("Stalled").0, "False");
    o.edit(|s| s.suspend = false);
    assert_eq!(o.observe(at(4000)).effect, Effect::Lookup(target()));
}

#[test]
fn a_new_resource_name_forgets_the_old_session() {
    let mut o = Obj::active(t0());
    o.edit(|s| s.resource_name = "web-2".into());
    let t = o.observe(at(60));
    let web2 = Target {
        resource_name: "web-2".into(),
        region: Some("us-east-1".into()),
        account: None,
    };
    assert_eq!(t.effect, Effect::Lookup(web2.clone()));
    assert_eq!(t.notes[0].reason, "ResourceChanged");
    assert_eq!(t.status.operation, None);
    assert_eq!(t.status.session_started_at, None);
    assert_eq!(t.status.resource_name, None);
    // The answer of a start for the old computer, arriving late, is not recorded.
    let t = o.step(
        started(&o, start_op("old", at(61), OperationStatus::Succeeded)),
        at(62),
    );
    assert_eq!(t.status.operation, None);
    assert_eq!(t.effect, Effect::Lookup(web2));
}

#[test]
fn a_region_change_while_an_operation_runs_does_not_poll_the_new_region() {
    let mut o = Obj::fenced(t0());
    o.step(
        started(&o, start_op("op-1", t0(), OperationStatus::Started)),
        t0(),
    );
    o.edit(|s| s.region = Some("eu-central-1".into()));
    let t = o.observe(at(5));
    assert_eq!(
        t.effect,
        Effect::Lookup(Target {
            resource_name: "web-1".into(),
            region: Some("eu-central-1".into()),
            account: None,
        })
    );
}

#[test]
fn stop_on_delete_stops_the_recorded_resource_not_the_edited_one() {
    let mut o = Obj::active(t0());
    o.spec.stop_on_delete = true;
    o.has_finalizer = true;
    o.spec.resource_name = "web-2".into(); // edited, not yet reconciled
    o.deleting = true;
    assert_eq!(o.observe(at(10)).effect, Effect::Stop(target()));
}

#[test]
fn adoption_ignores_starts_a_later_stop_ended() {
    // Hole 4: delete + recreate of a stopOnDelete object within the hour.
    let mut o = Obj::new();
    o.observe(at(600));
    let ops = vec![
        stop_op("stop", at(300)),
        start_op("start", t0(), OperationStatus::Succeeded),
    ];
    let t = o.step(
        Input::LookedUp {
            target: target(),
            at: LOOKED_UP_AT,
            result: Ok(ops),
        },
        at(600),
    );
    assert!(is_start(&t), "{:?}", t.effect);
}

#[test]
fn adoption_reads_every_page_in_any_order() {
    let ops = vec![
        start_op("older", at(100), OperationStatus::Succeeded),
        start_op("failed", at(900), OperationStatus::Failed),
        start_op("newest", at(500), OperationStatus::Started),
        stop_op("stop-before", at(400)),
        start_op("oldest", t0(), OperationStatus::Succeeded),
        Operation {
            created_at: None,
            ..start_op("undated", t0(), OperationStatus::Succeeded)
        },
    ];
    let mut o = Obj::new();
    o.observe(at(1000));
    let t = o.step(
        Input::LookedUp {
            target: target(),
            at: LOOKED_UP_AT,
            result: Ok(ops),
        },
        at(1000),
    );
    assert_eq!(t.status.operation.and_then(|o| o.id), Some("newest".into()));
    assert_eq!(t.status.session_started_at, Some(at(500)));
}

#[test]
fn adoption_ignores_sessions_older_than_max_session_age() {
    let ops = vec![start_op("a", t0(), OperationStatus::Succeeded)];
    let lookup = |now| {
        let mut o = Obj::new();
        o.observe(now);
        o.step(
            Input::LookedUp {
                target: target(),
                at: LOOKED_UP_AT,
                result: Ok(ops.clone()),
            },
            now,
        )
    };
    assert!(is_start(&lookup(at(3600))));
    assert_eq!(lookup(at(3599)).notes[0].reason, "SessionAdopted");
}

#[test]
fn a_node_clock_far_ahead_does_not_start_in_a_loop() {
    // Hole 5: Lightsail's createdAt is two hours behind the operator's clock.
    let mut o = Obj::fenced(t0());
    let skewed = t0().checked_sub(secs(7200)).expect("in range");
    let t = o.step(
        started(&o, start_op("op-1", skewed, OperationStatus::Succeeded)),
        at(1),
    );
    assert_eq!(t.status.session_started_at, Some(t0()));
    assert_eq!(t.effect, Effect::Done(Next::At(at(3600))));
    assert_eq!(o.observe(at(2)).effect, Effect::Done(Next::At(at(3600))));
    // The same after a crash between the renewal's call and its record: the operation found
    // is newer than the recorded one (both on Lightsail's clock), so it is adopted.
    o.observe(at(3600));
    o.observe(at(3700));
    let renewed = skewed.checked_add(secs(3600)).expect("in range");
    let t = o.step(
        Input::LookedUp {
            target: target(),
            at: LOOKED_UP_AT,
            result: Ok(vec![
                start_op("op-1", skewed, OperationStatus::Succeeded),
                start_op("op-2", renewed, OperationStatus::Succeeded),
            ]),
        },
        at(3700),
    );
    assert_eq!(t.notes[0].reason, "SessionAdopted");
    assert_eq!(t.effect, Effect::Done(Next::At(at(7200))));
}

#[test]
fn no_start_sooner_than_the_guard_rail_after_the_last_one() {
    let mut o = Obj::active(t0());
    // The operation failed right after starting; the stalled retry (5 min) is shorter than the
    // guard rail (10 min).
    o.step(
        Input::Polled(Ok(Some(start_op("op-1", t0(), OperationStatus::Failed)))),
        at(10),
    );
    assert_eq!(o.observe(at(310)).effect, Effect::Done(Next::At(at(600))));
    assert!(is_start(&o.observe(at(600))));
}

#[test]
fn succeeded_without_is_terminal_is_finished_and_renewed() {
    // Hole 6.
    let mut o = Obj::fenced(t0());
    let op = Operation {
        is_terminal: None,
        ..start_op("op-1", t0(), OperationStatus::Succeeded)
    };
    let t = o.step(started(&o, op), at(1));
    assert!(ready(&t.status));
    assert_eq!(t.effect, Effect::Done(Next::At(at(3600))));
    assert!(is_start(&o.observe(at(3600))));
}

#[test]
fn an_operation_that_never_finishes_is_renewed_at_expiry_not_polled_forever() {
    let mut o = Obj::fenced(t0());
    let unknown = Operation {
        status: None,
        is_terminal: None,
        ..start_op("op-1", t0(), OperationStatus::Started)
    };
    o.step(started(&o, unknown.clone()), at(1));
    assert!(matches!(o.observe(at(2)).effect, Effect::Poll { .. }));
    o.step(Input::Polled(Ok(Some(unknown))), at(2));
    assert!(matches!(o.observe(at(1800)).effect, Effect::Poll { .. }));
    assert!(is_start(&o.observe(at(3600))));
}

#[test]
fn polling_backs_off_with_the_operations_age_and_stops_at_expiry() {
    let mut o = Obj::fenced(t0());
    let running = start_op("op-1", t0(), OperationStatus::Started);
    let after = |o: &mut Obj, n| match o
        .step(Input::Polled(Ok(Some(running.clone()))), at(n))
        .effect
    {
        Effect::Done(Next::After(d)) => d,
        other => panic!("expected After, got {other:?}"),
    };
    o.step(started(&o, running.clone()), t0());
    assert_eq!(after(&mut o, 0), secs(2));
    assert_eq!(after(&mut o, 8), secs(8));
    assert_eq!(after(&mut o, 600), secs(60));
    assert_eq!(after(&mut o, 3590), secs(10), "never past the expiry");
}

#[test]
fn a_definite_no_clears_the_fence_and_no_answer_keeps_it() {
    for (code, class, is_answered) in [
        ("Throttling", ErrorClass::Retryable, true),
        ("NotFound", ErrorClass::Terminal, true),
        ("Service", ErrorClass::Retryable, false),
        ("Timeout", ErrorClass::Retryable, false),
    ] {
        let mut o = Obj::fenced(t0());
        let t = o.step(answered(&o, Err(error(code, class, is_answered))), at(1));
        assert_eq!(t.status.pending_start.is_some(), !is_answered, "{code}");
        assert_eq!(t.notes[0].reason, "StartFailed", "{code}");
        match class {
            ErrorClass::Terminal => {
                assert_eq!(o.condition("Stalled").0, "True");
                assert_eq!(t.effect, Effect::Done(Next::At(at(301))));
            }
            ErrorClass::Retryable => {
                assert_eq!(
                    o.condition("Reconciling"),
                    ("True".into(), "Retrying".into())
                );
                assert!(matches!(t.effect, Effect::Done(Next::Retry(_))));
            }
        }
    }
}

#[test]
fn the_same_retryable_error_again_writes_nothing_new() {
    let mut o = Obj::new();
    o.observe(t0());
    let throttled = || Input::LookedUp {
        target: target(),
        at: LOOKED_UP_AT,
        result: Err(error("Throttling", ErrorClass::Retryable, true)),
    };
    let first = o.step(throttled(), t0());
    assert_eq!(first.notes.len(), 1);
    let again = o.step(throttled(), at(5));
    assert_eq!(again.status, first.status);
    assert!(again.notes.is_empty());
}

#[test]
fn a_spec_change_retries_a_stalled_object_at_once() {
    let mut o = Obj::new();
    o.observe(t0());
    o.step(
        Input::LookedUp {
            target: target(),
            at: LOOKED_UP_AT,
            result: Err(error("NotFound", ErrorClass::Terminal, true)),
        },
        t0(),
    );
    assert_eq!(o.observe(at(10)).effect, Effect::Done(Next::At(at(300))));
    o.edit(|s| s.max_session_age = "2h".into());
    assert_eq!(o.observe(at(10)).effect, Effect::Lookup(target()));
}

#[test]
fn finalizer_follows_stop_on_delete() {
    let mut o = Obj::active(t0());
    o.edit(|s| s.stop_on_delete = true);
    assert_eq!(o.observe(at(1)).finalizer, Some(true));
    assert_eq!(o.observe(at(2)).finalizer, None);
    o.edit(|s| s.stop_on_delete = false);
    assert_eq!(o.observe(at(3)).finalizer, Some(false));
}

fn deleting_with_session() -> Obj {
    let mut o = Obj::active(t0());
    o.edit(|s| s.stop_on_delete = true);
    o.observe(at(1));
    o.deleting = true;
    o
}

#[test]
fn deleting_stops_and_then_lets_the_object_go() {
    let mut o = deleting_with_session();
    assert_eq!(o.observe(at(10)).effect, Effect::Stop(target()));
    let t = o.step(Input::StopAnswered(Ok(())), at(11));
    assert_eq!(t.finalizer, Some(false));
    assert_eq!(t.notes[0].reason, "SessionStopped");
}

#[test]
fn a_finalizer_never_holds_an_object_forever() {
    // Hole 7: terminal stop errors (revoked role, no credentials) let the object go.
    for code in ["AccessDenied", "NoCredentials", "NotFound"] {
        let mut o = deleting_with_session();
        o.observe(at(10));
        let t = o.step(
            Input::StopAnswered(Err(error(code, ErrorClass::Terminal, true))),
            at(11),
        );
        assert_eq!(t.finalizer, Some(false), "{code}");
        assert_eq!(t.effect, Effect::Done(Next::Change));
    }
    // Retryable: keep it and retry with backoff.
    let mut o = deleting_with_session();
    let t = o.step(
        Input::StopAnswered(Err(error("Throttling", ErrorClass::Retryable, true))),
        at(11),
    );
    assert_eq!(t.finalizer, None);
    assert!(matches!(t.effect, Effect::Done(Next::Retry(_))));
    // The annotation skips the stop altogether.
    let mut o = deleting_with_session();
    o.skip_stop = true;
    let t = o.observe(at(12));
    assert_eq!(t.finalizer, Some(false));
    assert_eq!(t.notes[0].reason, "StopSkipped");
    assert!(t.notes[0].warning);
}

#[test]
fn deleting_waits_for_a_start_in_flight_before_stopping() {
    let mut o = Obj::active(t0());
    o.edit(|s| s.stop_on_delete = true);
    o.observe(at(1));
    o.observe(at(3600)); // fenced renewal
    o.deleting = true;
    assert_eq!(o.observe(at(3601)).effect, Effect::Done(Next::At(at(3660))));
    assert_eq!(o.observe(at(3660)).effect, Effect::Stop(target()));
}

#[test]
fn deleting_without_stop_on_delete_or_session_does_nothing() {
    let mut o = Obj::new();
    o.has_finalizer = true;
    o.deleting = true;
    assert_eq!(o.observe(t0()).finalizer, Some(false));
    let mut o = Obj::new();
    o.spec.stop_on_delete = true;
    o.has_finalizer = true;
    o.deleting = true;
    let t = o.observe(t0());
    assert_eq!(t.finalizer, Some(false));
    assert_eq!(t.effect, Effect::Done(Next::Change));
}

#[test]
fn guard_rail_raises_a_small_max_session_age_and_says_so() {
    let mut o = Obj::fenced(t0());
    o.spec.max_session_age = "1m".into();
    assert_eq!(effective_max_session_age(&o.spec, &o.settings), secs(600));
    let t = o.step(
        started(&o, start_op("op-1", t0(), OperationStatus::Succeeded)),
        t0(),
    );
    assert_eq!(t.effect, Effect::Done(Next::At(at(600))));
    assert!(t.status.conditions.iter().flatten().all(|c| {
        c.message
            .contains("below the operator's minimum session age")
    }));
    o.spec.max_session_age = "forever".into();
    assert_eq!(effective_max_session_age(&o.spec, &o.settings), secs(3600));
}

#[test]
fn a_new_resource_while_an_operation_runs_is_looked_up_and_started_at_once() {
    let mut o = Obj::fenced(t0());
    o.step(
        started(&o, start_op("op-1", t0(), OperationStatus::Started)),
        t0(),
    );
    o.edit(|s| {
        s.region = Some("eu-central-1".into());
        s.resource_name = "vm-eu".into();
    });
    let eu = Target {
        resource_name: "vm-eu".into(),
        region: Some("eu-central-1".into()),
        account: None,
    };
    assert_eq!(o.observe(at(1)).effect, Effect::Lookup(eu.clone()));
    let t = o.step(
        Input::LookedUp {
            target: eu.clone(),
            at: at(1),
            result: Ok(vec![]),
        },
        at(1),
    );
    assert_eq!(t.effect, Effect::Start(eu));
}

#[test]
fn no_region_anywhere_stalls_with_the_fix_in_the_message() {
    let mut o = Obj::new();
    o.settings.default_region = None;
    o.observe(t0());
    let t = o.step(
        Input::LookedUp {
            target: Target {
                resource_name: "web-1".into(),
                region: None,
                account: None,
            },
            at: LOOKED_UP_AT,
            result: Err(LightsailError {
                action: Action::GetOperationsForResource,
                code: "NoRegion".into(),
                message: "set spec.region".into(),
                class: ErrorClass::Terminal,
                answered: true,
            }),
        },
        t0(),
    );
    assert_eq!(o.condition("Stalled"), ("True".into(), "NoRegion".into()));
    assert!(
        t.status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.message.contains("spec.region"))
    );
}

/// A fresh object whose start at t0 answered with a running operation, held unconfirmed.
fn unconfirmed() -> Obj {
    let mut o = Obj::fenced(t0());
    let t = o.step(
        started(&o, start_op("op-1", t0(), OperationStatus::Started)),
        at(1),
    );
    assert!(matches!(t.effect, Effect::Confirm { .. }), "{:?}", t.effect);
    assert!(o.unconfirmed.is_some());
    o
}

#[test]
fn a_start_whose_first_poll_finds_it_finished_costs_two_writes() {
    let mut o = Obj::new();
    let mut writes = 0;
    let mut step = |o: &mut Obj, input: Input, now: Timestamp| {
        let before = o.status.clone();
        let t = o.step(input, now);
        if t.status != before {
            writes += 1;
        }
        t
    };
    step(&mut o, Input::Observed, t0());
    step(
        &mut o,
        Input::LookedUp {
            target: target(),
            at: LOOKED_UP_AT,
            result: Ok(vec![]),
        },
        t0(),
    );
    let answer = started(&o, start_op("op-1", t0(), OperationStatus::Started));
    step(&mut o, answer, at(1));
    let t = step(&mut o, Input::Observed, at(2));
    assert!(matches!(t.effect, Effect::Poll { .. }));
    let t = step(
        &mut o,
        Input::Polled(Ok(Some(start_op("op-1", t0(), OperationStatus::Succeeded)))),
        at(2),
    );
    assert_eq!(writes, 2, "the fence, then the finished operation");
    assert!(ready(&t.status));
    assert_eq!(t.status.pending_start, None);
    assert_eq!(t.status.session_started_at, Some(t0()));
    assert_eq!(t.status.last_start_at, Some(t0()));
    assert_eq!(t.notes.len(), 1);
    assert_eq!(t.notes[0].reason, "SessionStarted");
    assert_eq!(t.effect, Effect::Done(Next::At(at(3600))));
    assert!(o.unconfirmed.is_none(), "forgotten once recorded");
}

#[test]
fn a_failed_first_poll_records_the_start_as_running_and_polls_again() {
    let mut o = unconfirmed();
    let mut e = error("ServiceUnavailable", ErrorClass::Retryable, true);
    e.action = Action::GetOperation;
    let t = o.step(Input::Polled(Err(e)), at(2));
    assert_eq!(t.status.pending_start, None, "the session exists: recorded");
    assert_eq!(
        t.status.operation.as_ref().and_then(|op| op.status),
        Some(OperationStatus::Started)
    );
    assert_eq!(t.notes[0].reason, "SessionStarted");
    assert!(matches!(t.effect, Effect::Done(Next::After(_))));
    assert!(matches!(o.observe(at(5)).effect, Effect::Poll { .. }));
}

#[test]
fn a_crash_before_the_first_poll_leaves_the_fence_to_a_lookup_that_adopts() {
    let mut o = unconfirmed();
    // A new process: nothing in memory.
    o.unconfirmed = None;
    assert_eq!(o.observe(at(2)).effect, Effect::Done(Next::At(at(60))));
    assert_eq!(o.observe(at(60)).effect, Effect::Lookup(target()));
    let t = o.step(
        Input::LookedUp {
            target: target(),
            at: at(60),
            result: Ok(vec![start_op("op-1", t0(), OperationStatus::Succeeded)]),
        },
        at(60),
    );
    assert_eq!(t.notes[0].reason, "SessionAdopted");
    assert_eq!(t.status.session_started_at, Some(t0()));
    assert!(ready(&t.status));
}

#[test]
fn an_unconfirmed_start_whose_fence_was_taken_over_is_not_recorded() {
    let mut o = unconfirmed();
    // After the settle window another replica took the fence over.
    let mut theirs = o.status.pending_start.clone().expect("fenced");
    theirs.requested_at = at(61);
    theirs.holder = "replica-b".into();
    o.status.pending_start = Some(theirs.clone());
    let t = o.observe(at(62));
    assert_eq!(t.effect, Effect::Done(Next::At(at(121))));
    let t = o.step(
        Input::Polled(Ok(Some(start_op("op-1", t0(), OperationStatus::Succeeded)))),
        at(62),
    );
    assert_eq!(t.status.pending_start, Some(theirs), "not ours to clear");
    assert_eq!(t.status.operation, None);
    assert!(o.unconfirmed.is_none());
}

#[test]
fn an_unconfirmed_start_of_a_resource_the_spec_no_longer_names_is_dropped() {
    let mut o = unconfirmed();
    o.edit(|s| s.resource_name = "web-2".into());
    let t = o.observe(at(2));
    assert_eq!(t.status.pending_start, None);
    assert!(o.unconfirmed.is_none());
    assert!(matches!(t.effect, Effect::Lookup(ref t) if t.resource_name == "web-2"));
}

#[test]
fn deleting_with_an_unconfirmed_start_stops_it_without_waiting_for_the_settle_window() {
    let mut o = unconfirmed();
    o.spec.stop_on_delete = true;
    o.has_finalizer = true;
    o.deleting = true;
    assert_eq!(o.observe(at(2)).effect, Effect::Stop(target()));
    // Without it in memory, the start might still be in flight: wait for the window.
    o.unconfirmed = None;
    assert_eq!(o.observe(at(2)).effect, Effect::Done(Next::At(at(60))));
}
