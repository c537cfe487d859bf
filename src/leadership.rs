//! Leader election, and whether this replica may call a Lightsail mutation (StartGUISession,
//! StopGUISession) right now.
//!
//! Correctness never rests on leadership (the fenced status write does that); leadership keeps
//! standbys from doing the leader's work, and keeps a replica that can no longer be sure it holds
//! the Lease from acting while another takes over.
//!
//! kube-lease-manager acquires, renews and releases the Lease. It is wrapped, not replaced, for
//! two things it does not do:
//! - It reports changes of holder only, never renewals, and goes on reporting "leader" while its
//!   renewals fail, for as long as they fail. So the [`LeaderGate`] also wants a renewal it has
//!   seen on the Lease itself, and turns false by this process's monotonic clock once that
//!   renewal may have run out. The renewal is seen by reading the Lease (a GET, which the chart's
//!   RBAC already grants) once per renewal, just after the manager is due to make it.
//! - Its `watch()` loop retries failed API calls with a backoff that grows to 30 s, which after
//!   an apiserver outage can leave no leader for half a minute; [`Election`] drives the
//!   manager's `changed()` itself and retries within seconds.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::utils::Backoff as _;
use kube::runtime::watcher;
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError, LeaseParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// How kube-lease-manager names the field manager of a replica (`LeaseParams::new`): its
/// identity behind this prefix.
const LEASE_FIELD_MANAGER_PREFIX: &str = "kube-lease-manager-";
/// The apiserver's limit on a field manager's length.
const MAX_FIELD_MANAGER_LEN: usize = 128;

/// Backoff after failed API calls, for the GuiSession watch and the lease manager: 0.5 s
/// doubling up to 1.5 s, plus up to as much again of jitter (so at most 3 s), reset by the
/// first success. kube's `DefaultBackoff` grows to 30 s (60 s with jitter) to spare an apiserver
/// the retries of many watches; with one watch and one Lease the operator can afford to be back
/// within seconds of an apiserver outage.
pub fn api_retry_backoff() -> watcher::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_millis(1500))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .into()
}

/// The timing of the Lease, derived from `--lease-duration`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long a renewal keeps the Lease (whole seconds: the Lease counts in seconds).
    pub duration: Duration,
    /// How long before the Lease would expire the lease manager renews it.
    pub grace: Duration,
    /// How long before the Lease would expire this replica stops mutating unless a renewal has
    /// landed: room for clock skew between replicas and for a call already past the gate.
    pub margin: Duration,
    /// Interval between reads of the Lease while a due renewal has not been seen yet.
    pub recheck: Duration,
}

impl LeaseTiming {
    pub fn new(requested: Duration) -> Self {
        let seconds = requested.as_secs().max(2);
        let duration = Duration::from_secs(seconds);
        // Renew halfway (rounded up, as grace must be whole seconds and below the duration), and
        // stop a sixth of the duration before expiry: between the two there is time for a failed
        // renewal to be retried (the lease manager retries within 3 s) before the gate closes.
        let grace = Duration::from_secs(seconds.div_ceil(2));
        let margin = duration / 6;
        let recheck =
            ((grace - margin) / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        LeaseTiming {
            duration,
            grace,
            margin,
            recheck,
        }
    }

    /// Longest wait for one Lease call: a renewal stuck on an unresponsive apiserver is retried
    /// before the gate closes instead of waiting out kube's default read timeout (295 s).
    pub fn request_timeout(&self) -> Duration {
        ((self.grace - self.margin) / 2).max(Duration::from_secs(2))
    }
}

/// What this replica knows of its hold on the Lease.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Term {
    /// Since when the lease manager has said that this replica holds the Lease; `None` while it
    /// says otherwise.
    elected_since: Option<Instant>,
    /// Until when the last renewal seen on the Lease lets this replica act, by its monotonic
    /// clock; `None` until one is seen in this term.
    sure_until: Option<Instant>,
}

impl Term {
    fn may_mutate_at(&self, now: Instant) -> bool {
        self.elected_since.is_some() && self.sure_until.is_some_and(|until| now < until)
    }

    fn why_not_at(&self, now: Instant) -> &'static str {
        if self.elected_since.is_none() {
            "the lease manager says another replica holds the Lease, or none does"
        } else if self.sure_until.is_none() {
            "the Lease does not show a renewal by this replica"
        } else if !self.may_mutate_at(now) {
            "the last renewal seen on the Lease has run out: it may expire before the next"
        } else {
            "it may still mutate"
        }
    }
}

/// Checked right before every Lightsail mutation: true while this replica may act.
#[derive(Clone, Debug)]
pub struct LeaderGate {
    term: Option<watch::Receiver<Term>>,
}

impl LeaderGate {
    /// No leader election: every replica may act (the fence keeps them apart).
    pub fn always() -> Self {
        LeaderGate { term: None }
    }

    fn following(term: watch::Receiver<Term>) -> Self {
        LeaderGate { term: Some(term) }
    }

    /// True while this replica may mutate: the lease manager says it holds the Lease, and a
    /// renewal it has seen still covers now, less the safety margin, by the monotonic clock. A
    /// process that was stopped (SIGSTOP, a frozen VM) past that point sees false at once, before
    /// anything has noticed that the Lease moved on.
    pub fn may_mutate(&self) -> bool {
        self.may_mutate_at(Instant::now())
    }

    fn may_mutate_at(&self, now: Instant) -> bool {
        self.term
            .as_ref()
            .is_none_or(|term| term.borrow().may_mutate_at(now))
    }

    /// Why [`may_mutate`](Self::may_mutate) is false, for the log.
    pub fn why_not(&self) -> &'static str {
        match &self.term {
            None => "it may always mutate",
            Some(term) => term.borrow().why_not_at(Instant::now()),
        }
    }

    /// Resolves once this replica may mutate (at once without leader election).
    pub async fn acquired(&self) {
        let Some(term) = &self.term else { return };
        let mut term = term.clone();
        // The term changes whenever a renewal is seen, so checking on every change suffices.
        if term
            .wait_for(|t| t.may_mutate_at(Instant::now()))
            .await
            .is_err()
        {
            // The election has ended: this replica will not lead again.
            std::future::pending::<()>().await;
        }
    }

    /// Resolves once [`may_mutate`](Self::may_mutate) is false. It looks at the clock every time
    /// it is polled, so a process resumed after its lease ran out finds it lost before anything
    /// else polled in the same `select!` (put it first, `biased`) gets to run. Never resolves for
    /// [`LeaderGate::always`].
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let gate = self.clone();
        let mut until_lost = Box::pin(self.clone().until_lost());
        futures::future::poll_fn(move |cx| {
            if !gate.may_mutate() {
                return Poll::Ready(());
            }
            until_lost.as_mut().poll(cx)
        })
    }

    async fn until_lost(self) {
        let Some(mut term) = self.term else {
            return std::future::pending().await;
        };
        loop {
            let current = *term.borrow_and_update();
            let Some(until) = current
                .sure_until
                .filter(|_| current.may_mutate_at(Instant::now()))
            else {
                return;
            };
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                changed = term.changed() => if changed.is_err() { return },
            }
        }
    }
}

/// Until when a read of `lease` lets `identity` act, by the monotonic clock: the renewal time it
/// wrote, plus the lease duration (the shorter of the Lease's and ours), less the margin.
/// `read_at` and `wall_at` are the monotonic and wall-clock times taken together just before the
/// read. Other replicas judge expiry by `renewTime` against their wall clocks, hence the wall
/// clock here; a renewal stamped later than `wall_at` (it landed during the read, or the clock
/// stepped back) counts from `read_at`, so a stepped clock never extends the term.
fn held_until(
    lease: &Lease,
    identity: &str,
    read_at: Instant,
    wall_at: Timestamp,
    timing: &LeaseTiming,
) -> Option<Instant> {
    let spec = lease.spec.as_ref()?;
    if spec.holder_identity.as_deref() != Some(identity) {
        return None;
    }
    let renewed = spec.renew_time.as_ref()?.0;
    let seconds = u64::try_from(spec.lease_duration_seconds?).ok()?;
    let duration = Duration::from_secs(seconds).min(timing.duration);
    let age = Duration::try_from(wall_at.duration_since(renewed)).unwrap_or(Duration::ZERO);
    let left = duration.checked_sub(age)?.checked_sub(timing.margin)?;
    (!left.is_zero()).then(|| read_at + left)
}

/// When to read the Lease next, while elected: just after the manager is due to renew it, and
/// then every `recheck` until the renewal shows.
fn next_read(term: Term, now: Instant, timing: &LeaseTiming) -> Instant {
    // The manager renews `grace` before expiry, which is `grace - margin` before `sure_until`.
    let renewal_due = term
        .sure_until
        .and_then(|until| until.checked_sub(timing.grace - timing.margin));
    match renewal_due {
        Some(due) if now < due => due + timing.recheck,
        _ => now + timing.recheck,
    }
}

/// Where and as whom to compete for the Lease.
#[derive(Clone, Debug)]
pub struct ElectionConfig {
    pub lease_name: String,
    pub namespace: String,
    pub identity: String,
    pub timing: LeaseTiming,
}

impl ElectionConfig {
    /// The field manager this replica's Lease writes carry.
    pub fn field_manager(&self) -> String {
        format!("{LEASE_FIELD_MANAGER_PREFIX}{}", self.identity)
    }
}

/// This replica competing for the Lease: the lease manager's loop and the reads that confirm its
/// renewals, until [`Election::release`].
pub struct Election {
    gate: LeaderGate,
    stop: watch::Sender<bool>,
    manager: JoinHandle<Result<(), LeaseManagerError>>,
    reader: JoinHandle<()>,
}

impl Election {
    /// Makes sure the Lease exists (creating it if need be) and starts competing for it.
    pub async fn start(client: Client, config: ElectionConfig) -> anyhow::Result<Election> {
        let field_manager = config.field_manager();
        if field_manager.len() > MAX_FIELD_MANAGER_LEN {
            anyhow::bail!(
                "identity {:?} is too long: its Lease field manager {field_manager:?} would exceed \
                 {MAX_FIELD_MANAGER_LEN} characters",
                config.identity
            );
        }
        let manager = build_manager(&client, &config).await?;
        let term = Arc::new(watch::Sender::new(Term::default()));
        let (stop, stopped) = watch::channel(false);
        let api = Api::namespaced(client.clone(), &config.namespace);
        let reader = tokio::spawn(confirm_renewals(
            api,
            config.clone(),
            term.clone(),
            stopped.clone(),
        ));
        let gate = LeaderGate::following(term.subscribe());
        let manager = tokio::spawn(drive(manager, client, config, term, stopped));
        Ok(Election {
            gate,
            stop,
            manager,
            reader,
        })
    }

    pub fn gate(&self) -> LeaderGate {
        self.gate.clone()
    }

    /// Stops competing and releases the Lease if this replica holds it, so that a standby takes
    /// over at once instead of after the lease duration.
    pub async fn release(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        let _ = self.reader.await;
        match self.manager.await {
            Ok(released) => Ok(released?),
            Err(e) => Err(anyhow::anyhow!("the lease manager task failed: {e}")),
        }
    }
}

async fn build_manager(
    client: &Client,
    config: &ElectionConfig,
) -> Result<LeaseManager, LeaseManagerError> {
    // LeaseParams::new names the field manager after the identity. Every replica must apply the
    // Lease as a manager of its own: kube-lease-manager takes a free Lease by server-side apply
    // without force and counts on a rival's apply failing with a conflict, which it does not
    // when both share a manager (then both lead until their next renewal). The builder's
    // with_identity would keep the manager of its random default identity instead.
    let params = LeaseParams::new(
        &config.identity,
        config.timing.duration.as_secs(),
        config.timing.grace.as_secs(),
    );
    LeaseManagerBuilder::new(client.clone(), &config.lease_name)
        .with_namespace(&config.namespace)
        .with_parameters(params)
        .build()
        .await
}

fn set_elected(term: &watch::Sender<Term>, elected: bool) {
    term.send_if_modified(|t| {
        if t.elected_since.is_some() == elected {
            return false;
        }
        // A new term starts unconfirmed; an ended one leaves nothing behind.
        *t = Term {
            elected_since: elected.then(Instant::now),
            sure_until: None,
        };
        true
    });
}

/// The lease manager's loop, as its `watch()` runs it but with [`api_retry_backoff`] between
/// failures, and a new Lease when someone deleted it. Releases the Lease when told to stop.
async fn drive(
    mut manager: LeaseManager,
    client: Client,
    config: ElectionConfig,
    term: Arc<watch::Sender<Term>>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), LeaseManagerError> {
    let mut backoff = api_retry_backoff();
    loop {
        // Dropping `changed()` midway is how the library's own watch() stops too.
        let changed = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            changed = manager.changed() => changed,
        };
        let failed = match changed {
            Ok(elected) => {
                backoff.reset();
                debug!(
                    identity = config.identity,
                    elected, "the lease manager changed state"
                );
                set_elected(&term, elected);
                continue;
            }
            Err(LeaseManagerError::NonexistentLease(_)) => {
                warn!(
                    lease = config.lease_name,
                    "the leader Lease was deleted: creating it again"
                );
                set_elected(&term, false);
                match build_manager(&client, &config).await {
                    Ok(fresh) => {
                        manager = fresh;
                        continue;
                    }
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        warn!(error = %failed, "cannot acquire or renew the leader Lease: retrying");
        let delay = backoff.next().unwrap_or(Duration::from_secs(3));
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    set_elected(&term, false);
    manager.release().await
}

/// Reads the Lease while the lease manager says this replica holds it, to learn until when it
/// surely does (see [`held_until`]).
async fn confirm_renewals(
    api: Api<Lease>,
    config: ElectionConfig,
    term: Arc<watch::Sender<Term>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut seen = term.subscribe();
    loop {
        // Nothing to confirm while the lease manager does not claim the Lease.
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            elected = seen.wait_for(|t| t.elected_since.is_some()) => if elected.is_err() { return },
        }
        let read_at = Instant::now();
        let wall_at = Timestamp::now();
        match api.get_opt(&config.lease_name).await {
            Ok(lease) => {
                let until = lease.and_then(|lease| {
                    held_until(&lease, &config.identity, read_at, wall_at, &config.timing)
                });
                let changed = term.send_if_modified(|t| {
                    // A read begun before this term began says nothing about it.
                    let current = t.elected_since.is_some_and(|since| since <= read_at);
                    if !current || t.sure_until == until {
                        return false;
                    }
                    t.sure_until = until;
                    true
                });
                if changed && until.is_none() {
                    info!(
                        identity = config.identity,
                        "the Lease shows no renewal by this replica still in force"
                    );
                }
            }
            Err(e) => debug!(error = %e, "cannot read the leader Lease: retrying"),
        }
        let next = next_read(*seen.borrow_and_update(), Instant::now(), &config.timing);
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            _ = seen.changed() => {}
            _ = tokio::time::sleep_until(next.into()) => {}
        }
    }
}

#[cfg(test)]
mod tests;
