//! The state machine in a model of the world around it: an apiserver that refuses writes made
//! on a stale resourceVersion, Lightsail with faults and a skewed clock, and several replicas
//! (no leader election) whose caches lag, which crash between any two steps and stall for any
//! time (SIGSTOP). Each replica runs the controller's loop one I/O at a time, checking the start
//! budget right before sending as the controller does. proptest drives random schedules; the
//! property is the product's promise: no two sessions started in one window.

use super::*;
use proptest::prelude::*;

/// The object in the apiserver.
#[derive(Clone)]
struct Stored {
    rv: u64,
    spec: GuiSessionSpec,
    generation: i64,
    status: GuiSessionStatus,
}

/// A StartGUISession that reached Lightsail.
struct Sent {
    id: String,
    sent_at: Timestamp,
    /// When Lightsail has it recorded (a call that timed out at the client may land later).
    visible_at: Timestamp,
    /// The fence (`pendingStart.requestedAt`) it was sent under.
    fence: Timestamp,
    fails: bool,
}

enum Step {
    Idle,
    /// Next: run the transition for this input on the replica's view and write its status.
    Deciding(Input),
    /// Next: the I/O the transition asked for. `fence` is set for a start.
    Calling {
        effect: Effect,
        decided_at: Timestamp,
        fence: Option<PendingStart>,
    },
}

struct Replica {
    view: Stored,
    step: Step,
    settings: Settings,
    /// This replica's clock minus the world's, within [`MAX_CLOCK_SKEW`].
    clock: i64,
    /// The start held in memory after [`Effect::Confirm`]; a crash loses it.
    unconfirmed: Option<UnconfirmedStart>,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    None,
    /// Throttled: answered, nothing started.
    Throttled,
    /// A 5xx after the session was started.
    ServerErrorAfterStart,
    /// A 5xx, nothing started.
    ServerError,
    /// No answer; the session was started.
    TimeoutAfterStart,
    /// No answer; the session is started at Lightsail after the client gave up.
    TimeoutLandsLate,
    /// The operation is made, then fails.
    OperationFails,
    /// A terminal answer (AccessDenied).
    Denied,
}

#[derive(Debug, Clone)]
enum Act {
    Advance(u64),
    Sync(usize),
    Step(usize, Fault),
    Crash(usize),
    ToggleSuspend,
    /// The account of the GuiSession is momentarily unusable (a retryable STS error being
    /// retried) or usable again.
    ToggleAccount,
}

struct World {
    stored: Stored,
    replicas: Vec<Replica>,
    sent: Vec<Sent>,
    now: Timestamp,
    /// Lightsail's clock minus ours.
    skew: i64,
    budget: Duration,
    /// Whether the account is being checked again after a transient error.
    account_checking: bool,
    /// When the computer is running from (`None`: stopped until someone starts it).
    computer_running_at: Option<Timestamp>,
    /// StartInstance calls that reached Lightsail: when, and whether the computer was not
    /// stopped then (refused).
    instance_starts: Vec<(Timestamp, bool)>,
    /// StartGUISession calls that reached Lightsail while the computer was not running.
    sessions_on_a_stopped_computer: usize,
}

/// How long the model's computer stays `pending` after StartInstance.
const COMPUTER_START_TIME: Duration = Duration::from_secs(20);

const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The operator's `--max-clock-skew` default: replicas' clocks differ by at most this.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(1);
/// Longest a StartGUISession that timed out at the client takes to land at Lightsail after the
/// client gave up: a quarter of the settle window, the margin the second lookup allows.
const LATE_LANDING: u64 = 15;
/// How long a started operation stays `Started`.
const SETTLE_TIME: Duration = Duration::from_secs(2);

impl World {
    fn new(replicas: usize, skew: i64, clocks: &[i64]) -> World {
        let stored = Stored {
            rv: 1,
            spec: spec(),
            generation: 1,
            status: GuiSessionStatus::default(),
        };
        let replicas = (0..replicas)
            .map(|i| Replica {
                view: stored.clone(),
                step: Step::Idle,
                unconfirmed: None,
                settings: Settings {
                    identity: format!("replica-{i}"),
                    ..settings()
                },
                clock: clocks.get(i).copied().unwrap_or(0),
            })
            .collect();
        let s = settings();
        World {
            stored,
            replicas,
            sent: Vec::new(),
            now: t0(),
            skew,
            budget: crate::guisession::policy::start_budget(
                s.start_settle,
                CALL_TIMEOUT,
                MAX_CLOCK_SKEW,
            ),
            account_checking: false,
            computer_running_at: Some(t0()),
            instance_starts: Vec::new(),
            sessions_on_a_stopped_computer: 0,
        }
    }

    /// A world whose computer is stopped and whose GuiSession may start it.
    fn with_stopped_computer(mut self) -> World {
        self.computer_running_at = None;
        self.stored.spec.computer = Some(crate::guisession::types::ComputerPolicy {
            start_if_stopped: true,
            ..Default::default()
        });
        for replica in &mut self.replicas {
            replica.view = self.stored.clone();
        }
        self
    }

    fn computer_state(&self) -> &'static str {
        match self.computer_running_at {
            None => "stopped",
            Some(at) if self.now < at => "pending",
            Some(_) => "running",
        }
    }

    /// Replica `r`'s clock.
    fn clock(&self, r: usize) -> Timestamp {
        self.now
            .checked_add(jiff::SignedDuration::from_secs(self.replicas[r].clock))
            .unwrap_or(self.now)
    }

    fn lightsail_time(&self, t: Timestamp) -> Timestamp {
        whole_seconds(
            t.checked_add(jiff::SignedDuration::from_secs(self.skew))
                .unwrap_or(t),
        )
    }

    /// The operations Lightsail has recorded by now.
    fn visible(&self) -> impl Iterator<Item = &Sent> {
        self.sent.iter().filter(|s| s.visible_at <= self.now)
    }

    fn operation(&self, sent: &Sent) -> Operation {
        let done = self.now >= add(sent.sent_at, SETTLE_TIME);
        let status = match (done, sent.fails) {
            (false, _) => OperationStatus::Started,
            (true, false) => OperationStatus::Succeeded,
            (true, true) => OperationStatus::Failed,
        };
        Operation {
            error_code: (status == OperationStatus::Failed).then(|| "InternalError".into()),
            ..start_op(&sent.id, self.lightsail_time(sent.sent_at), status)
        }
    }

    fn fault_error(fault: Fault, action: Action) -> Option<LightsailError> {
        let e = |code: &str, class, answered| LightsailError {
            action,
            code: code.into(),
            message: "fault".into(),
            class,
            answered,
        };
        match fault {
            Fault::Throttled => Some(e("Throttling", ErrorClass::Retryable, true)),
            Fault::ServerError | Fault::ServerErrorAfterStart => {
                Some(e("Service", ErrorClass::Retryable, false))
            }
            Fault::TimeoutAfterStart | Fault::TimeoutLandsLate => {
                Some(e("Timeout", ErrorClass::Retryable, false))
            }
            Fault::Denied => Some(e("AccessDenied", ErrorClass::Terminal, true)),
            Fault::None | Fault::OperationFails => None,
        }
    }

    fn act(&mut self, act: &Act) {
        match *act {
            Act::Advance(n) => self.now = add(self.now, secs(n)),
            Act::Sync(r) => self.replicas[r].view = self.stored.clone(),
            Act::Crash(r) => {
                // A new process: nothing in flight, a freshly listed cache.
                self.replicas[r].step = Step::Idle;
                self.replicas[r].view = self.stored.clone();
                self.replicas[r].unconfirmed = None;
            }
            Act::ToggleSuspend => {
                self.stored.spec.suspend = !self.stored.spec.suspend;
                self.stored.generation += 1;
                self.stored.rv += 1;
            }
            Act::ToggleAccount => self.account_checking = !self.account_checking,
            Act::Step(r, fault) => self.step(r, fault),
        }
    }

    fn step(&mut self, r: usize, fault: Fault) {
        let step = std::mem::replace(&mut self.replicas[r].step, Step::Idle);
        self.replicas[r].step = match step {
            Step::Idle => Step::Deciding(Input::Observed),
            Step::Deciding(input) => self.decide(r, input),
            Step::Calling {
                effect,
                decided_at,
                fence,
            } => self.call(r, effect, decided_at, fence, fault),
        };
    }

    fn decide(&mut self, r: usize, input: Input) -> Step {
        let trace = std::env::var_os("MODEL_TRACE").is_some();
        let replica = &self.replicas[r];
        let refusal = crate::account::policy::AccountRefusal {
            reason: "AccountNotReady",
            message: "being checked again".into(),
            pending: true,
        };
        let view = View {
            name: "gs",
            spec: &replica.view.spec,
            status: &replica.view.status,
            generation: Some(replica.view.generation),
            deleting: false,
            has_finalizer: false,
            skip_stop: false,
            access_secret: SecretSeen::NotRead,
            account: if self.account_checking {
                AccountView::Refused(&refusal)
            } else {
                AccountView::Own
            },
            unconfirmed: replica.unconfirmed.as_ref(),
        };
        let now = self.clock(r);
        let t = transition(&view, input.clone(), now, &replica.settings);
        if trace {
            eprintln!(
                "{} r{r} rv{}/{} input={:?}\n   status={:?}\n   -> {:?} pending={:?}",
                self.now,
                replica.view.rv,
                self.stored.rv,
                input,
                replica.view.status.pending_start,
                t.effect,
                t.status.pending_start
            );
        }
        if t.status != replica.view.status {
            if replica.view.rv != self.stored.rv {
                // 409: read again and decide again with the same input.
                self.replicas[r].view = self.stored.clone();
                return Step::Deciding(input);
            }
            self.stored.status = t.status.clone();
            self.stored.rv += 1;
            self.replicas[r].view = self.stored.clone();
        }
        let fence = t.status.pending_start.clone();
        // As the controller does: an unconfirmed start is kept until the status it wrote (or
        // read after a conflict) no longer carries its fence.
        let replica = &mut self.replicas[r];
        if replica
            .unconfirmed
            .as_ref()
            .is_some_and(|u| replica.view.status.pending_start.as_ref() != Some(&u.fence))
        {
            replica.unconfirmed = None;
        }
        match t.effect {
            Effect::Done(_) => Step::Idle,
            Effect::Confirm { start, .. } => {
                replica.unconfirmed = Some(*start);
                Step::Idle
            }
            effect => Step::Calling {
                effect,
                decided_at: now,
                fence,
            },
        }
    }

    fn call(
        &mut self,
        r: usize,
        effect: Effect,
        decided_at: Timestamp,
        fence: Option<PendingStart>,
        fault: Fault,
    ) -> Step {
        match effect {
            Effect::Start(target) => {
                if until(decided_at, self.clock(r)) > self.budget {
                    // The controller's check right before sending.
                    return Step::Idle;
                }
                if self.computer_state() != "running" {
                    self.sessions_on_a_stopped_computer += 1;
                }
                let started = matches!(
                    fault,
                    Fault::None
                        | Fault::ServerErrorAfterStart
                        | Fault::TimeoutAfterStart
                        | Fault::TimeoutLandsLate
                        | Fault::OperationFails
                );
                let mut operations = Vec::new();
                if started {
                    // A call that timed out may have been processed as late as the client's
                    // timeout (the worst case), and Lightsail may record a late one up to
                    // LATE_LANDING after that.
                    let landed = match fault {
                        Fault::TimeoutAfterStart => add(self.now, CALL_TIMEOUT),
                        Fault::TimeoutLandsLate => add(self.now, CALL_TIMEOUT + secs(LATE_LANDING)),
                        _ => self.now,
                    };
                    let sent = Sent {
                        id: format!("op-{}", self.sent.len()),
                        sent_at: landed,
                        visible_at: landed,
                        fence: fence
                            .as_ref()
                            .map(|f| f.requested_at)
                            .expect("a start is always fenced"),
                        fails: matches!(fault, Fault::OperationFails),
                    };
                    operations.push(self.operation(&sent));
                    self.sent.push(sent);
                }
                let result = match Self::fault_error(fault, Action::StartGuiSession) {
                    Some(e) => Err(e),
                    None => Ok(operations),
                };
                Step::Deciding(Input::StartAnswered {
                    target,
                    fence,
                    result,
                })
            }
            Effect::Poll { operation_id, .. } => {
                let result = match Self::fault_error(fault, Action::GetOperation) {
                    Some(e) => Err(e),
                    None => Ok(self
                        .visible()
                        .find(|s| s.id == operation_id)
                        .map(|s| self.operation(s))),
                };
                Step::Deciding(Input::Polled(result))
            }
            Effect::Lookup(target) => {
                let result = match Self::fault_error(fault, Action::GetOperationsForResource) {
                    Some(e) => Err(e),
                    None => Ok(self
                        .visible()
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .map(|s| self.operation(s))
                        .collect()),
                };
                Step::Deciding(Input::LookedUp {
                    target,
                    at: self.clock(r),
                    result,
                })
            }
            Effect::CheckComputer {
                target,
                before_start,
                ..
            } => {
                let result = match Self::fault_error(fault, Action::GetInstanceState) {
                    Some(e) => Err(e),
                    None => Ok(crate::aws::model::ComputerSeen {
                        state: self.computer_state().into(),
                        idle_stop: None,
                    }),
                };
                Step::Deciding(Input::ComputerChecked {
                    target,
                    at: self.clock(r),
                    before_start,
                    result,
                })
            }
            Effect::StartComputer(target) => {
                if until(decided_at, self.clock(r)) > self.budget {
                    return Step::Idle;
                }
                let fence = self.replicas[r]
                    .view
                    .status
                    .computer
                    .as_ref()
                    .and_then(|c| c.pending_start.clone());
                let refused = self.computer_state() != "stopped";
                self.instance_starts.push((self.now, refused));
                let result = match Self::fault_error(fault, Action::StartInstance) {
                    Some(e) => Err(e),
                    None if refused => Err(LightsailError {
                        action: Action::StartInstance,
                        code: "InvalidInput".into(),
                        message: "not stopped".into(),
                        class: ErrorClass::Terminal,
                        answered: true,
                    }),
                    None => {
                        self.computer_running_at = Some(add(self.now, COMPUTER_START_TIME));
                        Ok(vec![Operation {
                            operation_type: Some("StartInstance".into()),
                            ..start_op(
                                &format!("instance-op-{}", self.instance_starts.len()),
                                self.lightsail_time(self.now),
                                OperationStatus::Started,
                            )
                        }])
                    }
                };
                Step::Deciding(Input::ComputerStartAnswered {
                    target,
                    fence,
                    result,
                })
            }
            Effect::PollComputer {
                target,
                operation_id,
            } => {
                let done = self.computer_state() == "running";
                let result = match Self::fault_error(fault, Action::GetOperation) {
                    Some(e) => Err(e),
                    None => Ok(Some(Operation {
                        operation_type: Some("StartInstance".into()),
                        ..start_op(
                            &operation_id,
                            self.lightsail_time(self.now),
                            if done {
                                OperationStatus::Succeeded
                            } else {
                                OperationStatus::Started
                            },
                        )
                    })),
                };
                Step::Deciding(Input::ComputerPolled { target, result })
            }
            Effect::Stop(_)
            | Effect::StopComputer(_)
            | Effect::EnableIdleStop { .. }
            | Effect::Done(_)
            | Effect::Confirm { .. } => Step::Idle,
            effect @ (Effect::Access(_) | Effect::WriteSecret(_) | Effect::DeleteSecret(_)) => {
                panic!("the model's GuiSession asks for no access Secret, yet: {effect:?}")
            }
        }
    }

    /// Two sessions that did not fail, started in one window: the later one's fence is less
    /// than a session age after the earlier one's.
    fn duplicate(&self) -> Option<String> {
        let max_age = effective_max_session_age(&spec(), &settings());
        let mut ok: Vec<&Sent> = self.sent.iter().filter(|s| !s.fails).collect();
        ok.sort_by_key(|s| s.sent_at);
        ok.windows(2).find_map(|w| {
            (w[1].fence < add(w[0].fence, max_age)).then(|| {
                format!(
                    "{} (fence {}, sent {}) and {} (fence {}, sent {})",
                    w[0].id, w[0].fence, w[0].sent_at, w[1].id, w[1].fence, w[1].sent_at
                )
            })
        })
    }
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        6 => Just(Fault::None),
        1 => Just(Fault::Throttled),
        1 => Just(Fault::ServerErrorAfterStart),
        1 => Just(Fault::ServerError),
        1 => Just(Fault::TimeoutAfterStart),
        1 => Just(Fault::TimeoutLandsLate),
        1 => Just(Fault::OperationFails),
        1 => Just(Fault::Denied),
    ]
}

fn act(replicas: usize) -> impl Strategy<Value = Act> {
    prop_oneof![
        4 => (0u64..40).prop_map(Act::Advance),
        1 => (0u64..4000).prop_map(Act::Advance),
        3 => (0..replicas).prop_map(Act::Sync),
        12 => (0..replicas, fault()).prop_map(|(r, f)| Act::Step(r, f)),
        1 => (0..replicas).prop_map(Act::Crash),
        1 => Just(Act::ToggleSuspend),
        1 => Just(Act::ToggleAccount),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_schedule_of_replicas_crashes_stalls_and_faults_starts_twice_in_a_window(
        // Crash recovery of a first start tolerates a skew below one session age (1h here).
        skew in prop_oneof![Just(0i64), -3500i64..3500],
        // Each replica's clock, within the documented bound (--max-clock-skew, 1 s): the
        // replicas differ from one another by up to twice that... so by at most 1 s here.
        clocks in proptest::collection::vec(0i64..=1, 3),
        acts in proptest::collection::vec(act(3), 1..400),
    ) {
        let mut world = World::new(3, skew, &clocks);
        for (i, a) in acts.iter().enumerate() {
            world.act(a);
            if let Some(dup) = world.duplicate() {
                prop_assert!(false, "two starts in one window after step {i} ({a:?}): {dup}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A stopped computer with `startIfStopped`: the fence on StartInstance keeps three
    /// replicas with stale caches, crashes and faults from starting it twice, and no session is
    /// started before it runs.
    #[test]
    fn no_schedule_of_replicas_starts_a_stopped_computer_twice_or_a_session_before_it_runs(
        clocks in proptest::collection::vec(0i64..=1, 3),
        acts in proptest::collection::vec(act(3), 1..400),
    ) {
        let mut world = World::new(3, 0, &clocks).with_stopped_computer();
        for (i, a) in acts.iter().enumerate() {
            world.act(a);
            let refused: Vec<_> = world.instance_starts.iter().filter(|(_, r)| *r).collect();
            prop_assert!(refused.is_empty(), "StartInstance sent to a computer not stopped after step {i} ({a:?}): {refused:?}");
            prop_assert!(world.sessions_on_a_stopped_computer == 0, "a session started on a computer not running after step {i} ({a:?})");
            if let Some(dup) = world.duplicate() {
                prop_assert!(false, "two starts in one window after step {i} ({a:?}): {dup}");
            }
        }
    }
}

/// The model must be able to fail: without the fence (a replica that starts on its own stale
/// view), the same kind of schedule finds a duplicate.
#[test]
fn the_model_catches_a_start_made_on_a_stale_view() {
    let mut world = World::new(2, 0, &[0, 0]);
    // Replica 0 starts a session; replica 1 never sees it.
    for _ in 0..20 {
        if world.sent.is_empty() {
            world.act(&Act::Step(0, Fault::None));
        }
    }
    assert_eq!(world.sent.len(), 1);
    // Replica 1 decides on its stale view and, ignoring the conflict, calls anyway.
    let view = &world.replicas[1].view;
    let t = transition(
        &View {
            name: "gs",
            spec: &view.spec,
            status: &view.status,
            generation: Some(1),
            deleting: false,
            has_finalizer: false,
            skip_stop: false,
            access_secret: SecretSeen::NotRead,
            account: AccountView::Own,
            unconfirmed: None,
        },
        // The computer read that follows its lookup, which found nothing.
        Input::ComputerChecked {
            target: target(),
            at: world.now,
            before_start: Some(crate::guisession::policy::StartCheck { fence: None }),
            result: Ok(crate::aws::model::ComputerSeen {
                state: "running".into(),
                idle_stop: None,
            }),
        },
        world.now,
        &world.replicas[1].settings,
    );
    assert!(matches!(t.effect, Effect::Start(_)), "{:?}", t.effect);
    let fence = t.status.pending_start.clone();
    world.call(1, t.effect, world.now, fence, Fault::None);
    assert!(world.duplicate().is_some());
}

/// The stopped-computer property is not vacuous: one replica left alone starts the computer
/// once, waits while it is pending, and starts the session once it runs.
#[test]
fn the_model_starts_a_stopped_computer_then_its_session() {
    let mut world = World::new(1, 0, &[0]).with_stopped_computer();
    for _ in 0..60 {
        world.act(&Act::Step(0, Fault::None));
        world.act(&Act::Advance(2));
    }
    assert_eq!(world.instance_starts.len(), 1, "one StartInstance");
    assert_eq!(world.sent.len(), 1, "then one StartGUISession");
    assert_eq!(world.sessions_on_a_stopped_computer, 0);
    assert!(
        world.sent[0].sent_at >= add(world.instance_starts[0].0, COMPUTER_START_TIME),
        "the session waited for the computer"
    );
}
