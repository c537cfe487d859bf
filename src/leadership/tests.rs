use super::*;
use futures::FutureExt;
use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

const SECOND: Duration = Duration::from_secs(1);

fn timing() -> LeaseTiming {
    LeaseTiming::new(Duration::from_secs(15))
}

fn lease(holder: &str, renewed: Timestamp, seconds: i32) -> Lease {
    Lease {
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(renewed)),
            lease_duration_seconds: Some(seconds),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn gate_with(term: Term) -> (watch::Sender<Term>, LeaderGate) {
    let (tx, rx) = watch::channel(term);
    (tx, LeaderGate::following(rx))
}

#[test]
fn timing_follows_the_lease_duration() {
    let t = timing();
    assert_eq!(t.duration, 15 * SECOND);
    // Renewed 7 s after the last renewal, the gate closing 12.5 s after it.
    assert_eq!(t.grace, 8 * SECOND);
    assert_eq!(t.margin, Duration::from_millis(2500));
    assert_eq!(t.recheck, SECOND);
    assert_eq!(t.request_timeout(), Duration::from_millis(2750));
    // The Lease counts whole seconds, and kube-lease-manager needs 0 < grace < duration.
    let short = LeaseTiming::new(Duration::from_millis(1500));
    assert_eq!((short.duration, short.grace), (2 * SECOND, SECOND));
    assert_eq!(short.margin, SECOND / 3);
    assert_eq!(short.request_timeout(), 2 * SECOND);
    let three = LeaseTiming::new(3 * SECOND);
    assert_eq!((three.grace, three.margin), (2 * SECOND, SECOND / 2));
    assert_eq!(three.recheck, Duration::from_millis(375));
}

#[test]
fn a_renewal_by_this_replica_counts_from_its_renew_time_less_the_margin() {
    let read_at = Instant::now();
    let wall = Timestamp::now();
    let renewed = wall - jiff::SignedDuration::from_secs(4);
    let until = held_until(&lease("me", renewed, 15), "me", read_at, wall, &timing());
    // 15 s from the renewal, 4 s of them gone, 2.5 s of margin.
    assert_eq!(until, Some(read_at + Duration::from_millis(8500)));
}

#[test]
fn another_holder_an_expired_or_incomplete_lease_gives_nothing() {
    let (read_at, wall) = (Instant::now(), Timestamp::now());
    let t = timing();
    assert_eq!(
        held_until(&lease("other", wall, 15), "me", read_at, wall, &t),
        None
    );
    let old = wall - jiff::SignedDuration::from_millis(12_500);
    assert_eq!(
        held_until(&lease("me", old, 15), "me", read_at, wall, &t),
        None
    );
    let mut no_renewal = lease("me", wall, 15);
    if let Some(spec) = no_renewal.spec.as_mut() {
        spec.renew_time = None;
    }
    assert_eq!(held_until(&no_renewal, "me", read_at, wall, &t), None);
    assert_eq!(held_until(&Lease::default(), "me", read_at, wall, &t), None);
    assert_eq!(
        held_until(&lease("me", wall, -1), "me", read_at, wall, &t),
        None
    );
}

#[test]
fn a_shorter_lease_on_the_object_or_a_renewal_from_the_future_never_extends_the_term() {
    let (read_at, wall) = (Instant::now(), Timestamp::now());
    let t = timing();
    // Someone shortened the Lease: the others go by the Lease.
    let short = held_until(&lease("me", wall, 5), "me", read_at, wall, &t);
    assert_eq!(short, Some(read_at + Duration::from_millis(2500)));
    // Our clock stepped back after the renewal: it counts from the read, not beyond.
    let future = wall + jiff::SignedDuration::from_secs(60);
    let until = held_until(&lease("me", future, 15), "me", read_at, wall, &t);
    assert_eq!(until, Some(read_at + Duration::from_millis(12_500)));
}

#[test]
fn the_gate_needs_both_the_election_and_a_renewal_still_in_force() {
    let start = Instant::now();
    let elected = Term {
        elected_since: Some(start),
        sure_until: Some(start + 10 * SECOND),
    };
    let (_tx, gate) = gate_with(elected);
    assert!(gate.may_mutate_at(start));
    assert!(gate.may_mutate_at(start + 9 * SECOND));
    // The instant the renewal runs out, and ever after (a resumed process included).
    assert!(!gate.may_mutate_at(start + 10 * SECOND));
    assert!(!gate.may_mutate_at(start + 3600 * SECOND));

    let unconfirmed = Term {
        sure_until: None,
        ..elected
    };
    assert!(!gate_with(unconfirmed).1.may_mutate_at(start));
    let not_elected = Term {
        elected_since: None,
        ..elected
    };
    assert!(!gate_with(not_elected).1.may_mutate_at(start));
    assert!(LeaderGate::always().may_mutate());
}

#[test]
fn why_not_names_the_reason() {
    let start = Instant::now();
    let elected = Term {
        elected_since: Some(start),
        sure_until: Some(start + SECOND),
    };
    assert!(elected.why_not_at(start + 2 * SECOND).contains("run out"));
    assert!(
        Term::default()
            .why_not_at(start)
            .contains("another replica")
    );
    let unconfirmed = Term {
        sure_until: None,
        ..elected
    };
    assert!(unconfirmed.why_not_at(start).contains("does not show"));
}

#[test]
fn lost_resolves_at_once_when_the_renewal_ran_out_while_nothing_changed() {
    // As for a process resumed after SIGSTOP: the deadline passed, no event has arrived.
    let long_ago = Instant::now() - 20 * SECOND;
    let (_tx, gate) = gate_with(Term {
        elected_since: Some(long_ago),
        sure_until: Some(long_ago + 10 * SECOND),
    });
    assert!(!gate.may_mutate());
    assert!(gate.lost().now_or_never().is_some());
}

#[tokio::test]
async fn lost_waits_while_leading_and_resolves_when_the_term_ends() {
    let now = Instant::now();
    let (tx, gate) = gate_with(Term {
        elected_since: Some(now),
        sure_until: Some(now + 3600 * SECOND),
    });
    let mut lost = Box::pin(gate.lost());
    assert!((&mut lost).now_or_never().is_none());
    assert!(gate.acquired().now_or_never().is_some());
    set_elected(&tx, false);
    tokio::time::timeout(10 * SECOND, lost)
        .await
        .expect("lost() resolves once the lease manager no longer claims the Lease");
    assert!(LeaderGate::always().lost().now_or_never().is_none());
    assert!(LeaderGate::always().acquired().now_or_never().is_some());
}

#[test]
fn a_new_term_starts_unconfirmed() {
    let now = Instant::now();
    let tx = watch::Sender::new(Term {
        elected_since: Some(now),
        sure_until: Some(now + 10 * SECOND),
    });
    set_elected(&tx, true);
    assert_eq!(tx.borrow().sure_until, Some(now + 10 * SECOND), "no change");
    set_elected(&tx, false);
    assert_eq!(*tx.borrow(), Term::default());
    set_elected(&tx, true);
    assert!(tx.borrow().elected_since.is_some());
    assert_eq!(tx.borrow().sure_until, None);
}

#[test]
fn the_lease_is_read_just_after_each_renewal_is_due_then_every_recheck() {
    let t = timing();
    let now = Instant::now();
    let held = Term {
        elected_since: Some(now),
        sure_until: Some(now + 12 * SECOND),
    };
    // Renewal due 5.5 s (grace - margin) before sure_until.
    assert_eq!(
        next_read(held, now, &t),
        now + Duration::from_millis(6500) + t.recheck
    );
    let overdue = now + Duration::from_millis(6600);
    assert_eq!(next_read(held, overdue, &t), overdue + t.recheck);
    let unconfirmed = Term {
        sure_until: None,
        ..held
    };
    assert_eq!(next_read(unconfirmed, now, &t), now + t.recheck);
}

#[test]
fn the_field_manager_is_per_identity() {
    let config = |identity: &str| ElectionConfig {
        lease_name: "l".into(),
        namespace: "n".into(),
        identity: identity.into(),
        timing: timing(),
    };
    assert_eq!(config("a").field_manager(), "kube-lease-manager-a");
    assert_ne!(config("a").field_manager(), config("b").field_manager());
}

#[test]
fn the_retry_backoff_stays_within_three_seconds() {
    let delays: Vec<Duration> = api_retry_backoff().take(20).collect();
    assert!(delays[0] >= Duration::from_millis(500), "{delays:?}");
    assert!(delays.iter().all(|d| *d <= 3 * SECOND), "{delays:?}");
}
