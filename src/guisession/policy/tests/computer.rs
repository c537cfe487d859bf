//! The computer behind the session (`spec.computer`, issue #21): its state is read before every
//! start, a stopped computer is started only when allowed (behind its own fence), a stop inside
//! a window is respected, the computer is stopped at a window's end, and its idle-stop rule is
//! kept as the spec says.

use super::*;
use crate::aws::model::{ComputerSeen, IdleStopAddOn};
use crate::guisession::types::{
    ComputerPolicy, ComputerStatus, IdleStopSpec, ScheduleExclusion, ScheduleWindow,
    SessionSchedule,
};

/// The close of the first window of [`half_hour`], and when the next one opens.
const CLOSE: &str = "2026-11-24T12:30:00Z";
const NEXT_OPEN: &str = "2026-11-25T12:00:00Z";
/// The second window of [`split_noon`] opens here.
const SECOND_OPEN: &str = "2026-11-24T12:30:05Z";

fn starts() -> ComputerPolicy {
    ComputerPolicy {
        start_if_stopped: true,
        ..ComputerPolicy::default()
    }
}

/// A fresh object with `policy`, whose computer reads are answered by the test.
fn with(policy: Option<ComputerPolicy>) -> Obj {
    let mut o = Obj::new();
    o.spec.computer = policy;
    o.computer = None;
    o
}

fn schedule(start: &str, duration: &str, exclusions: &[(&str, &str)]) -> SessionSchedule {
    SessionSchedule {
        time_zone: "UTC".into(),
        windows: vec![ScheduleWindow {
            start: start.into(),
            duration: duration.into(),
        }],
        exclusions: exclusions
            .iter()
            .map(|(start, end)| ScheduleExclusion {
                start: ts(start),
                end: ts(end),
            })
            .collect(),
        stop_at_window_end: false,
    }
}

/// 12:00–12:30 UTC every day (T0 is 12:00).
fn half_hour() -> SessionSchedule {
    schedule("0 12 * * *", "30m", &[])
}

/// 12:00–13:00 UTC, cut by a five-second exclusion into two windows on T0's day:
/// 12:00:00–12:30:00 and 12:30:05–13:00:00.
fn split_noon() -> SessionSchedule {
    schedule("0 12 * * *", "1h", &[(CLOSE, SECOND_OPEN)])
}

fn instance_op(id: &str, action: Action, created: Timestamp, status: OperationStatus) -> Operation {
    Operation {
        operation_type: Some(action.as_str().into()),
        ..start_op(id, created, status)
    }
}

fn fence(holder: &str, requested_at: Timestamp) -> PendingStart {
    PendingStart {
        requested_at,
        resource_name: "web-1".into(),
        region: Some("us-east-1".into()),
        account: None,
        holder: holder.into(),
    }
}

fn computer_fence(o: &Obj) -> Option<PendingStart> {
    o.status.computer.as_ref()?.pending_start.clone()
}

/// A condition's status and reason, as [`Obj::condition`] gives them.
fn cond(status: &str, reason: &str) -> (String, String) {
    (status.into(), reason.into())
}

/// A read of the computer as the machine asks for it: with its add-ons, and for a start.
fn check(add_ons: bool, for_start: bool) -> Effect {
    Effect::CheckComputer {
        target: target(),
        add_ons,
        before_start: for_start.then_some(StartCheck { fence: None }),
    }
}

/// A lookup's answer: nothing to adopt.
fn nothing_found(target: Target) -> Input {
    Input::LookedUp {
        target,
        at: LOOKED_UP_AT,
        result: Ok(vec![]),
    }
}

/// Observes `o` at `now`, answering a lookup with nothing to adopt.
fn wake(o: &mut Obj, now: Timestamp) -> Transition {
    let t = o.observe(now);
    match t.effect {
        Effect::Lookup(target) => o.step(nothing_found(target), now),
        _ => t,
    }
}

/// Answers the computer read `t` asks for: the computer is `state` (and has no idle-stop rule
/// when its add-ons were asked for).
fn read(o: &mut Obj, t: &Transition, state: &str, now: Timestamp) -> Transition {
    let Effect::CheckComputer {
        target,
        add_ons,
        before_start,
    } = &t.effect
    else {
        panic!("expected a read of the computer, got {:?}", t.effect);
    };
    let input = Input::ComputerChecked {
        target: target.clone(),
        at: now,
        before_start: before_start.clone(),
        result: Ok(ComputerSeen {
            state: state.into(),
            idle_stop: add_ons.then_some(None),
        }),
    };
    o.step(input, now)
}

/// Starts a session at `now` on a running computer.
fn start_session(o: &mut Obj, now: Timestamp) {
    let t = wake(o, now);
    let t = read(o, &t, RUNNING, now);
    assert!(is_start(&t), "{:?}", t.effect);
    let input = started(o, start_op("op-1", now, OperationStatus::Succeeded));
    o.step(input, now);
    assert!(ready(&o.status), "{:?}", o.status);
}

/// What [`drive`] met.
struct Drive {
    /// Computer reads (GetInstanceState / GetInstance).
    reads: usize,
    /// GetOperationsForResource calls.
    lookups: usize,
    notes: Vec<Note>,
    /// The first effect that is neither a read, a lookup nor a wait, and when it was asked for.
    other: Option<(Effect, Timestamp)>,
    /// Where the drive's clock stopped.
    now: Timestamp,
}

/// Drives `o` from `from` until `until` the way the controller does: every wake-up it is told of
/// (`Next::After`, `Next::At`) is followed, every lookup finds nothing to adopt and every read
/// of the computer answers `state`. Stops at the first other effect. A wake-up that is not later
/// than the decision (a hot loop) fails the test.
fn drive(o: &mut Obj, from: Timestamp, until: Timestamp, state: &str) -> Drive {
    o.computer = None;
    let mut d = Drive {
        reads: 0,
        lookups: 0,
        notes: Vec::new(),
        other: None,
        now: from,
    };
    let mut input = Input::Observed;
    for _ in 0..10_000 {
        if input == Input::Observed && d.now >= until {
            return d;
        }
        let now = d.now;
        let t = o.step(input, now);
        d.notes.extend(t.notes.iter().cloned());
        input = Input::Observed;
        match t.effect {
            Effect::Lookup(target) => {
                d.lookups += 1;
                input = nothing_found(target);
            }
            Effect::CheckComputer {
                target,
                add_ons,
                before_start,
            } => {
                d.reads += 1;
                input = Input::ComputerChecked {
                    target,
                    at: now,
                    before_start,
                    result: Ok(ComputerSeen {
                        state: state.into(),
                        idle_stop: add_ons.then_some(None),
                    }),
                };
            }
            Effect::Done(Next::After(delay)) => {
                assert!(
                    delay > Duration::ZERO,
                    "hot loop at {now}: woken again at once"
                );
                d.now = add(now, delay);
            }
            Effect::Done(Next::At(wake_at)) => {
                assert!(
                    wake_at > now,
                    "hot loop at {now}: told to wait until {wake_at}, which has come"
                );
                d.now = wake_at;
            }
            other => {
                d.other = Some((other, now));
                return d;
            }
        }
    }
    panic!("no end after 10000 steps from {from}");
}

/// Reads of a computer that stays stopped, in its first hour: one now, then after a delay as
/// long as it has been stopped, between the re-check settings.
fn reads_per_hour(s: &Settings) -> usize {
    let (mut stopped_for, mut reads) = (Duration::ZERO, 0);
    while stopped_for < secs(3600) {
        reads += 1;
        stopped_for += stopped_for
            .max(s.computer_recheck_initial)
            .min(s.computer_recheck_max);
    }
    reads
}

// (1) A stopped computer and the default spec.

#[test]
fn a_stopped_computer_without_start_if_stopped_stalls_and_starts_nothing() {
    let mut o = with(None);
    let t = wake(&mut o, t0());
    assert_eq!(
        t.effect,
        check(false, true),
        "read before the start; no GetInstance without spec.computer"
    );
    let t = read(&mut o, &t, "stopped", t0());
    assert_eq!(t.effect, Effect::Done(Next::After(secs(30))));
    assert_eq!(o.condition("Stalled"), cond("True", "ComputerStopped"));
    assert_eq!(o.condition("Ready").0, "False");
    let mut messages = o.status.conditions.iter().flatten().map(|c| &c.message);
    assert!(messages.all(|m| m.contains("startIfStopped")), "the fix");
    assert_eq!(o.status.pending_start, None, "no session fence");
    let c = o.status.computer.clone().expect("status.computer");
    assert_eq!(c.state.as_deref(), Some("stopped"));
    assert_eq!(
        (c.checked_at, c.not_running_since),
        (Some(t0()), Some(t0()))
    );
    assert_eq!(c.pending_start, None, "no computer fence");
    assert_eq!(t.notes.len(), 1);
    assert!(t.notes[0].warning);
    assert_eq!(t.notes[0].reason, "ComputerStopped");
}

#[test]
fn an_hour_on_a_stopped_computer_reads_it_a_bounded_number_of_times_and_warns_once() {
    let mut o = with(None);
    let d = drive(&mut o, t0(), at(3600), "stopped");
    let expected = reads_per_hour(&o.settings);
    eprintln!(
        "stopped computer, default spec: {} computer reads and {} lookups in one hour (expected {expected} reads)",
        d.reads, d.lookups
    );
    assert_eq!(d.other, None, "no StartInstance, no StartGUISession");
    assert_eq!(d.reads, expected);
    assert_eq!(expected, 16, "0, 30s, 1m, 2m, 4m, 8m, then every 5m");
    assert_eq!(
        d.lookups, 1,
        "one lookup, before the computer was known stopped: no lookup per wake-up"
    );
    assert_eq!(d.notes.len(), 1, "{:?}", d.notes);
    assert_eq!(d.notes[0].reason, "ComputerStopped");
    assert_eq!(o.condition("Stalled"), cond("True", "ComputerStopped"));
}

// (2) Started by the operator, then the session.

#[test]
fn a_stopped_computer_is_started_followed_read_and_then_gets_its_session() {
    let mut o = with(Some(starts()));
    let mut notes = Vec::new();
    let t = wake(&mut o, t0());
    assert_eq!(
        t.effect,
        check(true, true),
        "GetInstance: the add-ons were never read"
    );
    let t = read(&mut o, &t, "stopped", t0());
    assert_eq!(t.effect, Effect::StartComputer(target()));
    assert_eq!(
        computer_fence(&o),
        Some(fence("replica-a", t0())),
        "the computer's fence is in the status written before StartInstance"
    );
    assert_eq!(o.status.pending_start, None, "no session fence yet");
    assert_eq!(o.condition("Reconciling"), cond("True", "ComputerStarting"));
    notes.extend(t.notes);

    let op = |status| instance_op("i-op-1", Action::StartInstance, t0(), status);
    let t = o.step(
        Input::ComputerStartAnswered {
            target: target(),
            fence: computer_fence(&o),
            result: Ok(vec![op(OperationStatus::Started)]),
        },
        at(1),
    );
    assert_eq!(t.effect, Effect::Done(Next::After(secs(2))));
    assert_eq!(computer_fence(&o), None, "answered: the fence goes");
    let c = o.status.computer.clone().expect("status.computer");
    assert_eq!(c.operation, Some(op(OperationStatus::Started)));
    assert_eq!(c.state.as_deref(), Some("pending"));
    assert_eq!(o.condition("Reconciling").1, "ComputerStarting");
    notes.extend(t.notes);

    let poll = Effect::PollComputer {
        target: target(),
        operation_id: "i-op-1".into(),
    };
    assert_eq!(wake(&mut o, at(3)).effect, poll);
    let polled = |status| Input::ComputerPolled {
        target: target(),
        result: Ok(Some(op(status))),
    };
    let t = o.step(polled(OperationStatus::Started), at(3));
    assert_eq!(t.effect, Effect::Done(Next::After(secs(3))));
    assert_eq!(wake(&mut o, at(6)).effect, poll);
    let t = o.step(polled(OperationStatus::Succeeded), at(6));
    notes.extend(t.notes.clone());
    assert_eq!(
        t.effect,
        check(false, false),
        "finished: the state is read again before the session's lookup"
    );
    let t = read(&mut o, &t, RUNNING, at(6));
    assert_eq!(t.effect, Effect::Lookup(target()));
    let t = o.step(nothing_found(target()), at(6));
    assert_eq!(t.effect, Effect::Start(target()), "the read still counts");
    assert_eq!(o.status.pending_start, Some(fence("replica-a", at(6))));
    let input = started(&o, start_op("op-1", at(6), OperationStatus::Succeeded));
    let t = o.step(input, at(7));
    notes.extend(t.notes);
    assert!(ready(&o.status));
    assert_eq!(
        o.status.computer.and_then(|c| c.running_seen_at),
        Some(at(6))
    );
    let reasons: Vec<_> = notes.iter().map(|n| (n.reason, n.warning)).collect();
    assert_eq!(
        reasons,
        [("ComputerStarting", false), ("SessionStarted", false)]
    );
}

#[test]
fn a_start_instance_refused_as_not_stopped_reads_the_computer_again_later() {
    let mut o = with(Some(starts()));
    let t = wake(&mut o, t0());
    read(&mut o, &t, "stopped", t0());
    let refused = LightsailError {
        action: Action::StartInstance,
        ..error("InvalidInput", ErrorClass::Terminal, true)
    };
    let t = o.step(
        Input::ComputerStartAnswered {
            target: target(),
            fence: computer_fence(&o),
            result: Err(refused),
        },
        at(1),
    );
    assert_eq!(t.effect, Effect::Done(Next::After(secs(30))));
    assert_eq!(computer_fence(&o), None);
    assert_eq!(t.notes[0].reason, "ComputerNotStopped");
    let d = drive(&mut o, at(31), at(120), RUNNING);
    assert_eq!(d.reads, 1);
    assert_eq!(d.other, Some((Effect::Start(target()), at(31))));
}

#[test]
fn a_stopping_computer_is_waited_for_and_started_once_stopped() {
    let mut o = with(Some(starts()));
    let t = wake(&mut o, t0());
    let t = read(&mut o, &t, "stopping", t0());
    assert_eq!(t.effect, Effect::Done(Next::After(secs(2))));
    assert_eq!(o.condition("Reconciling").1, "ComputerStarting");
    assert_eq!(computer_fence(&o), None, "StartInstance refuses it");
    let d = drive(&mut o, at(20), at(120), "stopped");
    assert_eq!(d.other, Some((Effect::StartComputer(target()), at(20))));
}

#[test]
fn a_pending_computer_is_read_again_after_the_follow_backoff() {
    // Someone else started it: the session waits for it, reading it with the follow backoff.
    let mut o = with(None);
    let t = wake(&mut o, t0());
    let t = read(&mut o, &t, "pending", t0());
    assert_eq!(t.effect, Effect::Done(Next::After(secs(2))));
    assert_eq!(o.condition("Reconciling"), cond("True", "ComputerStarting"));
    let t = wake(&mut o, at(2));
    assert!(
        matches!(t.effect, Effect::CheckComputer { .. }),
        "woken after the follow backoff, the computer is read again, not judged on the read of 2s ago: {:?}",
        t.effect
    );
    let t = read(&mut o, &t, RUNNING, at(2));
    assert_eq!(
        t.effect,
        Effect::Lookup(target()),
        "a first start looks up first"
    );
    let t = o.step(nothing_found(target()), at(2));
    assert_eq!(t.effect, Effect::Start(target()));
}

// (3) The computer's fence.

/// A fresh object whose status carries another replica's computer fence, written at T0.
fn fenced_by_another() -> Obj {
    let mut o = with(Some(starts()));
    o.status.computer = Some(ComputerStatus {
        pending_start: Some(fence("replica-b", t0())),
        ..ComputerStatus::default()
    });
    o
}

#[test]
fn a_computer_fence_within_the_settle_window_blocks_other_starts() {
    let mut o = fenced_by_another();
    let t = wake(&mut o, at(10));
    let t = read(&mut o, &t, "stopped", at(10));
    assert_eq!(t.effect, Effect::Done(Next::At(at(60))));
    assert_eq!(computer_fence(&o), Some(fence("replica-b", t0())));
    assert_eq!(o.condition("Reconciling").1, "ComputerStarting");
    assert!(t.notes.is_empty());
}

#[test]
fn after_the_settle_window_a_still_stopped_computer_is_taken_over() {
    let mut o = fenced_by_another();
    let t = wake(&mut o, at(10));
    read(&mut o, &t, "stopped", at(10));
    let d = drive(&mut o, at(60), at(120), "stopped");
    assert_eq!(d.other, Some((Effect::StartComputer(target()), at(60))));
    assert_eq!(d.reads, 1, "read again after the settle end");
    assert_eq!(computer_fence(&o), Some(fence("replica-a", at(60))));
}

#[test]
fn a_computer_read_just_before_the_settle_end_does_not_wait_for_it_in_a_loop() {
    // The first read comes 50s after the other replica's fence: wait until the settle end.
    let mut o = fenced_by_another();
    let t = wake(&mut o, at(50));
    let t = read(&mut o, &t, "stopped", at(50));
    assert_eq!(t.effect, Effect::Done(Next::At(at(60))));
    // At the settle end that read is still fresh; the machine must not wait for a time that
    // has come (an immediate requeue, and a lookup, on every turn until the read goes stale).
    let d = drive(&mut o, at(60), at(120), "stopped");
    assert_eq!(d.other, Some((Effect::StartComputer(target()), at(60))));
    assert_eq!(computer_fence(&o), Some(fence("replica-a", at(60))));
}

#[test]
fn a_read_showing_the_computer_pending_or_running_clears_its_fence() {
    let mut o = fenced_by_another();
    let t = wake(&mut o, at(10));
    let t = read(&mut o, &t, "pending", at(10));
    assert_eq!(computer_fence(&o), None, "the start landed");
    assert_eq!(t.effect, Effect::Done(Next::After(secs(2))));
    assert_eq!(o.condition("Reconciling").1, "ComputerStarting");

    let mut o = fenced_by_another();
    let t = wake(&mut o, at(70));
    let t = read(&mut o, &t, RUNNING, at(70));
    assert_eq!(computer_fence(&o), None);
    assert_eq!(t.effect, Effect::Start(target()), "no StartInstance");
}

// (4) A stop inside a window.

/// A session started at T0 on a running computer, renewed every 10 minutes, in the windows of
/// [`split_noon`].
fn idle_in_split_window(policy: ComputerPolicy) -> Obj {
    let mut o = with(Some(policy));
    o.spec.schedule = Some(split_noon());
    o.spec.max_session_age = "10m".into();
    start_session(&mut o, t0());
    assert_eq!(
        o.status.computer.as_ref().unwrap().running_seen_at,
        Some(t0())
    );
    o
}

#[test]
fn a_stop_inside_the_window_is_respected_until_the_next_window() {
    let mut o = idle_in_split_window(starts());
    // 12:10, renewal: the idle-stop rule stopped the computer meanwhile.
    let t = wake(&mut o, at(600));
    let t = read(&mut o, &t, "stopped", at(600));
    assert_eq!(t.effect, Effect::Done(Next::After(secs(30))));
    assert_eq!(o.condition("Ready"), cond("True", "ComputerIdleStopped"));
    assert_eq!(o.condition("Reconciling").0, "False");
    assert_eq!(o.condition("Stalled").0, "False");
    assert!(t.notes.is_empty(), "{:?}", t.notes);
    // Through the rest of the window and the gap: nothing started.
    let d = drive(&mut o, at(630), ts(SECOND_OPEN), "stopped");
    assert_eq!(d.other, None);
    assert_eq!(d.now, ts(SECOND_OPEN), "woken when the next window opens");
    assert!(d.reads >= 5, "still read now and then: {}", d.reads);
    // The next window: started again.
    let d = drive(&mut o, ts(SECOND_OPEN), at(3600), "stopped");
    assert_eq!(
        d.other,
        Some((Effect::StartComputer(target()), ts(SECOND_OPEN)))
    );
}

#[test]
fn restart_in_window_starts_a_computer_stopped_inside_the_window_at_once() {
    let mut o = idle_in_split_window(ComputerPolicy {
        restart_in_window: true,
        ..starts()
    });
    let t = wake(&mut o, at(600));
    let t = read(&mut o, &t, "stopped", at(600));
    assert_eq!(t.effect, Effect::StartComputer(target()));
    assert_eq!(computer_fence(&o), Some(fence("replica-a", at(600))));
}

#[test]
fn without_a_schedule_a_stop_is_respected_until_someone_starts_the_computer() {
    let mut o = with(Some(starts()));
    o.spec.max_session_age = "10m".into();
    start_session(&mut o, t0());
    let t = wake(&mut o, at(600));
    read(&mut o, &t, "stopped", at(600));
    assert_eq!(o.condition("Ready").1, "ComputerIdleStopped");
    let d = drive(&mut o, at(630), at(600 + 3600), "stopped");
    assert_eq!(d.other, None, "an hour later: still not started");
    assert!(d.reads <= reads_per_hour(&o.settings), "{}", d.reads);
    // Started by hand: the session comes back.
    let d = drive(&mut o, d.now, at(3 * 3600), RUNNING);
    assert_eq!(d.other.map(|(e, _)| e), Some(Effect::Start(target())));
}

#[test]
fn without_a_schedule_a_respected_stop_lasts_until_the_computer_runs_again() {
    // spec.computer.restartInWindow: "such a stop is respected until the next window opens
    // (without a schedule: until it runs again)". A spec edit (GitOps syncing another field)
    // does not undo it.
    let mut o = with(Some(starts()));
    o.spec.max_session_age = "10m".into();
    start_session(&mut o, t0());
    let t = wake(&mut o, at(600));
    read(&mut o, &t, "stopped", at(600));
    assert_eq!(o.condition("Ready").1, "ComputerIdleStopped");
    o.edit(|s| s.max_session_age = "20m".into());
    let d = drive(&mut o, at(700), at(3600), "stopped");
    assert_eq!(d.other, None, "not started: {:?}", o.condition("Ready"));
    assert_eq!(o.condition("Ready").1, "ComputerIdleStopped");
    // Someone starts it: its session comes back.
    let d = drive(&mut o, at(3600), at(7200), RUNNING);
    assert_eq!(d.other.map(|(e, _)| e), Some(Effect::Start(target())));
}

// (5) The window's end.

/// A session started at T0, in [`half_hour`], with `stopAtWindowEnd` for the computer.
fn stopping_at_window_end() -> Obj {
    let mut o = with(Some(ComputerPolicy {
        stop_at_window_end: true,
        ..ComputerPolicy::default()
    }));
    o.spec.schedule = Some(half_hour());
    start_session(&mut o, t0());
    o
}

/// At the close: the session is stopped first, then the computer is read.
fn close(o: &mut Obj) -> Transition {
    let t = o.observe(ts(CLOSE));
    assert_eq!(t.effect, Effect::Stop(target()), "the session first");
    let t = o.step(Input::StopAnswered(Ok(())), ts(CLOSE));
    assert!(t.notes.iter().any(|n| n.reason == "SessionStopped"));
    assert_eq!(t.effect, check(false, false));
    t
}

fn stop_answered(result: Result<Vec<Operation>, LightsailError>) -> Input {
    Input::ComputerStopAnswered {
        target: target(),
        result,
    }
}

fn stop_instance(status: OperationStatus) -> Operation {
    instance_op("i-stop", Action::StopInstance, ts(CLOSE), status)
}

/// StopInstance answered with its operation in `status`.
fn stopping(status: OperationStatus) -> Input {
    stop_answered(Ok(vec![stop_instance(status)]))
}

fn window_end_stop_at(o: &Obj) -> Option<Timestamp> {
    o.status.computer.as_ref()?.window_end_stop_at
}

#[test]
fn at_a_window_end_the_session_then_the_computer_is_stopped_once_per_close() {
    let mut o = stopping_at_window_end();
    let t = close(&mut o);
    let t = read(&mut o, &t, RUNNING, ts(CLOSE));
    assert_eq!(t.effect, Effect::StopComputer(target()));
    assert_eq!(window_end_stop_at(&o), Some(ts(CLOSE)), "before the call");
    let t = o.step(stopping(OperationStatus::Started), at(1801));
    assert_eq!(t.notes[0].reason, "ComputerStopped");
    assert!(!t.notes[0].warning);
    assert_eq!(t.effect, Effect::Done(Next::After(secs(2))));
    let state = o.status.computer.as_ref().and_then(|c| c.state.clone());
    assert_eq!(state.as_deref(), Some("stopping"));
    let poll = Effect::PollComputer {
        target: target(),
        operation_id: "i-stop".into(),
    };
    assert_eq!(o.observe(at(1803)).effect, poll);
    let polled = Input::ComputerPolled {
        target: target(),
        result: Ok(Some(stop_instance(OperationStatus::Succeeded))),
    };
    let t = o.step(polled, at(1803));
    assert_eq!(t.effect, Effect::Done(Next::At(ts(NEXT_OPEN))));
    // Observed again, and someone starts the computer outside the window: left running.
    let d = drive(&mut o, at(1810), ts(NEXT_OPEN), RUNNING);
    assert_eq!((d.other, d.reads), (None, 0));

    // The next close is handled again.
    let (open, next_close) = (ts(NEXT_OPEN), ts("2026-11-25T12:30:00Z"));
    let d = drive(&mut o, open, next_close, RUNNING);
    assert_eq!(d.other, Some((Effect::Start(target()), open)));
    let input = started(&o, start_op("op-2", open, OperationStatus::Succeeded));
    o.step(input, open);
    assert_eq!(o.observe(next_close).effect, Effect::Stop(target()));
    let t = o.step(Input::StopAnswered(Ok(())), next_close);
    let t = read(&mut o, &t, RUNNING, next_close);
    assert_eq!(t.effect, Effect::StopComputer(target()));
}

#[test]
fn a_computer_pending_at_the_window_end_is_stopped_once_it_runs() {
    let mut o = stopping_at_window_end();
    let t = close(&mut o);
    let t = read(&mut o, &t, "pending", ts(CLOSE));
    assert_eq!(t.effect, Effect::Done(Next::After(secs(2))), "not yet");
    assert_eq!(window_end_stop_at(&o), None);
    let d = drive(&mut o, at(1802), ts(NEXT_OPEN), RUNNING);
    let (effect, when) = d.other.expect("stopped");
    assert_eq!(effect, Effect::StopComputer(target()));
    assert!(when <= at(1800 + 30), "stopped soon after it runs: {when}");
    let t = o.step(stopping(OperationStatus::Succeeded), when);
    assert_eq!(t.effect, Effect::Done(Next::At(ts(NEXT_OPEN))));
    let d = drive(&mut o, add(when, secs(1)), ts(NEXT_OPEN), RUNNING);
    assert_eq!(d.other, None, "once");
}

#[test]
fn a_computer_stopped_at_the_window_end_is_not_stopped() {
    let mut o = stopping_at_window_end();
    let t = close(&mut o);
    let t = read(&mut o, &t, "stopped", ts(CLOSE));
    assert_eq!(t.effect, Effect::Done(Next::At(ts(NEXT_OPEN))));
    assert_eq!(window_end_stop_at(&o), Some(ts(CLOSE)), "handled");
    let d = drive(&mut o, at(1801), ts(NEXT_OPEN), RUNNING);
    assert_eq!((d.other, d.reads), (None, 0));
}

#[test]
fn a_stop_instance_refused_is_left_and_a_throttled_one_is_tried_again() {
    let refused = |code, class| LightsailError {
        action: Action::StopInstance,
        ..error(code, class, true)
    };
    // Not running any more: left as it is, this close is handled.
    let mut o = stopping_at_window_end();
    let t = close(&mut o);
    read(&mut o, &t, RUNNING, ts(CLOSE));
    let t = o.step(
        stop_answered(Err(refused("InvalidInput", ErrorClass::Terminal))),
        at(1801),
    );
    assert_eq!(t.notes[0].reason, "ComputerNotRunning");
    assert_eq!(t.effect, Effect::Done(Next::At(ts(NEXT_OPEN))));
    let d = drive(&mut o, at(1802), ts(NEXT_OPEN), RUNNING);
    assert_eq!(d.other, None);

    // Throttled: the marker goes, and the stop is tried again.
    let mut o = stopping_at_window_end();
    let t = close(&mut o);
    read(&mut o, &t, RUNNING, ts(CLOSE));
    let throttled = refused("Throttling", ErrorClass::Retryable);
    let t = o.step(stop_answered(Err(throttled.clone())), at(1801));
    assert_eq!(t.effect, Effect::Done(Next::Retry(throttled)));
    assert_eq!(window_end_stop_at(&o), None);
    assert!(t.notes[0].warning);
    let d = drive(&mut o, at(1805), ts(NEXT_OPEN), RUNNING);
    assert_eq!(d.other, Some((Effect::StopComputer(target()), at(1805))));
}

// (6) The idle-stop rule.

fn idle_stop(threshold: u8, duration: &str) -> ComputerPolicy {
    ComputerPolicy {
        idle_stop: Some(IdleStopSpec {
            threshold,
            duration: duration.into(),
        }),
        ..ComputerPolicy::default()
    }
}

/// GetInstance answered at `at`: the computer runs, with `rule`.
fn got_instance(
    rule: Option<IdleStopAddOn>,
    at: Timestamp,
    before_start: Option<StartCheck>,
) -> Input {
    Input::ComputerChecked {
        target: target(),
        at,
        before_start,
        result: Ok(ComputerSeen {
            state: RUNNING.into(),
            idle_stop: Some(rule),
        }),
    }
}

fn rule(status: &str, threshold: &str, duration: &str) -> Option<IdleStopAddOn> {
    Some(IdleStopAddOn {
        status: Some(status.into()),
        threshold: Some(threshold.into()),
        duration: Some(duration.into()),
    })
}

#[test]
fn the_idle_stop_rule_is_enabled_only_when_it_differs_from_the_spec() {
    let enable = Effect::EnableIdleStop {
        target: target(),
        threshold: "10".into(),
        duration: "90".into(),
    };
    for (seen, differs) in [
        (None, true),
        (rule("Enabled", "5", "90"), true),
        (rule("Enabled", "10", "30"), true),
        (rule("Disabled", "10", "90"), true),
        (rule("Enabled", "10", "90"), false),
        (rule("Enabled", "10.0", " 90.00 "), false),
    ] {
        let mut o = with(Some(idle_stop(10, "1h30m")));
        let t = o.observe(t0());
        assert_eq!(t.effect, check(true, false), "GetInstance first");
        let t = o.step(got_instance(seen.clone(), t0(), None), t0());
        if differs {
            assert_eq!(t.effect, enable, "{seen:?}");
        } else {
            assert_eq!(
                t.effect,
                Effect::Lookup(target()),
                "{seen:?}: left as it is"
            );
        }
    }
}

#[test]
fn an_enabled_idle_stop_rule_is_not_enabled_again() {
    let mut o = with(Some(idle_stop(10, "30m")));
    let t = o.observe(t0());
    let t = read(&mut o, &t, RUNNING, t0());
    assert!(matches!(t.effect, Effect::EnableIdleStop { .. }));
    let addon = instance_op("a", Action::EnableAddOn, t0(), OperationStatus::Started);
    let t = o.step(
        Input::IdleStopAnswered {
            target: target(),
            threshold: "10".into(),
            duration: "30".into(),
            result: Ok(vec![addon]),
        },
        t0(),
    );
    assert_eq!(t.notes[0].reason, "IdleStopSet");
    assert_eq!(t.effect, Effect::Lookup(target()));
    // The session starts on the read just made.
    let t = o.step(nothing_found(target()), t0());
    assert!(is_start(&t), "{:?}", t.effect);
    let input = started(&o, start_op("op-1", t0(), OperationStatus::Succeeded));
    o.step(input, t0());
    // The renewal: the rule set matches, only the state is read.
    let t = o.observe(at(3600));
    assert_eq!(t.effect, check(false, true));
    assert!(is_start(&read(&mut o, &t, RUNNING, at(3600))));
    let input = started(&o, start_op("op-2", at(3600), OperationStatus::Succeeded));
    o.step(input, at(3600));
    // A day later the add-ons are read again; the rule found matches: nothing enabled.
    let day = at(25 * 3600);
    assert_eq!(o.observe(day).effect, check(true, true));
    let matching = rule("Enabled", "10", "30");
    let t = o.step(
        got_instance(matching, day, Some(StartCheck { fence: None })),
        day,
    );
    assert!(is_start(&t), "{:?}", t.effect);
}

// (7) StartGUISession on a computer that stopped after it was read.

#[test]
fn without_spec_computer_a_computer_stopped_after_it_ran_is_stalled_not_ready() {
    // spec.computer: "When unset, a computer that is not running makes the GuiSession Stalled
    // (reason ComputerStopped) and nothing else is done to it."
    let mut o = Obj::active(t0());
    o.computer = None;
    let t = o.observe(at(3600));
    let t = read(&mut o, &t, "stopped", at(3600));
    assert_eq!(
        o.condition("Stalled"),
        cond("True", "ComputerStopped"),
        "Ready is {:?}",
        o.condition("Ready")
    );
    assert_eq!(t.notes.len(), 1, "one warning: {:?}", t.notes);
    assert!(t.notes[0].warning);
}

#[test]
fn a_start_refused_as_invalid_input_on_a_stopped_computer_shows_computer_stopped_and_waits() {
    let mut o = Obj::fenced(t0());
    o.computer = None;
    let refused = error("InvalidInput", ErrorClass::Terminal, true);
    let t = o.step(answered(&o, Err(refused)), at(1));
    assert_eq!(t.notes[0].reason, "StartFailed");
    assert_eq!(o.status.pending_start, None, "a definite no");
    assert_eq!(t.effect, check(false, false));
    let t = read(&mut o, &t, "stopped", at(1));
    assert_eq!(
        (&t.effect, o.condition("Stalled")),
        (
            &Effect::Done(Next::After(secs(30))),
            cond("True", "ComputerStopped")
        ),
        "the read's answer is the computer's condition and a wait"
    );
    assert_eq!(o.status.last_error, None);
    let d = drive(&mut o, at(31), at(3600), "stopped");
    assert_eq!(d.other, None);
}

#[test]
fn a_start_refused_as_invalid_input_on_a_running_computer_stays_stalled() {
    let mut o = Obj::fenced(t0());
    o.computer = None;
    let t = o.step(
        answered(&o, Err(error("InvalidInput", ErrorClass::Terminal, true))),
        at(1),
    );
    let t = read(&mut o, &t, RUNNING, at(1));
    assert_eq!(t.effect, Effect::Done(Next::At(at(301))));
    assert_eq!(o.condition("Stalled"), cond("True", "InvalidInput"));
}

#[test]
fn a_failed_start_operation_on_a_stopped_computer_shows_computer_stopped_and_waits() {
    let mut o = Obj::fenced(t0());
    o.computer = None;
    let input = started(&o, start_op("op-1", t0(), OperationStatus::Failed));
    let t = o.step(input, at(1));
    assert!(t.notes.iter().any(|n| n.reason == "StartFailed"));
    assert_eq!(t.effect, check(false, false));
    let t = read(&mut o, &t, "stopped", at(1));
    assert_eq!(t.effect, Effect::Done(Next::After(secs(30))));
    assert_eq!(o.condition("Stalled"), cond("True", "ComputerStopped"));
    assert_eq!(o.status.last_error, None);
    assert_eq!(t.notes.len(), 1);
    assert_eq!(t.notes[0].reason, "ComputerStopped");
    let d = drive(&mut o, at(31), at(3600), "stopped");
    assert_eq!(d.other, None);
    assert!(d.reads <= reads_per_hour(&o.settings), "{}", d.reads);
    assert!(d.notes.is_empty(), "{:?}", d.notes);
}

// (8) States the operator does not know.

#[test]
fn a_state_the_operator_does_not_know_is_not_running() {
    for policy in [None, Some(starts())] {
        for state in ["shutting-down", "weird", ""] {
            let mut o = with(policy.clone());
            let d = drive(&mut o, t0(), at(600), state);
            let case = format!("{state:?} with {policy:?}");
            assert_eq!(d.other, None, "{case}: nothing started");
            assert_eq!(
                o.condition("Stalled"),
                cond("True", "ComputerStopped"),
                "{case}"
            );
            assert_eq!(d.notes.len(), 1, "{case}: {:?}", d.notes);
            assert_eq!(computer_fence(&o), None, "{case}");
        }
    }
}

/// A replica that read `stopped` before another one started the computer, and replays that
/// read on the fresher status after a write conflict, must not start it again (seen with three
/// replicas and 100 computers): the read is older than `actedAt`.
#[test]
fn a_read_older_than_the_last_start_is_ignored_not_acted_on() {
    let mut o = with(Some(starts()));
    let t = wake(&mut o, t0());
    let stale = t.effect.clone();
    let t = read(&mut o, &t, "stopped", t0());
    assert_eq!(t.effect, Effect::StartComputer(target()));
    let fence = computer_fence(&o);
    let answer = Input::ComputerStartAnswered {
        target: target(),
        fence,
        result: Ok(vec![instance_op(
            "i-op-1",
            Action::StartInstance,
            t0(),
            OperationStatus::Succeeded,
        )]),
    };
    o.step(answer, at(5));
    assert_eq!(
        o.status.computer.as_ref().and_then(|c| c.acted_at),
        Some(at(5))
    );
    // The other replica's read, from before the start, replayed now.
    let Effect::CheckComputer { before_start, .. } = stale else {
        panic!("{stale:?}");
    };
    let replayed = Input::ComputerChecked {
        target: target(),
        at: at(4),
        before_start,
        result: Ok(ComputerSeen {
            state: "stopped".into(),
            idle_stop: Some(None),
        }),
    };
    let t = o.step(replayed, at(6));
    assert!(
        !matches!(t.effect, Effect::StartComputer(_)),
        "a stale read starts nothing: {:?}",
        t.effect
    );
    assert_eq!(
        o.status.computer.as_ref().and_then(|c| c.state.as_deref()),
        Some("pending"),
        "and is not recorded"
    );
}

/// While the computer's start runs, waking up follows its operation: no lookup for a session
/// that cannot exist yet (a lookup per wake-up was seen in the benchmark's debug runs).
#[test]
fn a_computer_being_started_is_followed_without_lookups() {
    let mut o = with(Some(starts()));
    let t = wake(&mut o, t0());
    let t = read(&mut o, &t, "stopped", t0());
    assert_eq!(t.effect, Effect::StartComputer(target()));
    let fence = computer_fence(&o);
    let started = instance_op(
        "i-op-1",
        Action::StartInstance,
        t0(),
        OperationStatus::Started,
    );
    let answer = Input::ComputerStartAnswered {
        target: target(),
        fence,
        result: Ok(vec![started]),
    };
    o.step(answer, at(1));
    let poll = Effect::PollComputer {
        target: target(),
        operation_id: "i-op-1".into(),
    };
    assert_eq!(
        o.observe(at(2)).effect,
        poll,
        "woken: the operation is followed"
    );
}
