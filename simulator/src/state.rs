//! The simulated accounts' computers, their GUI sessions and the operation history. Every
//! computer and operation belongs to one account; callers see only their own account's.
//!
//! Nothing runs in the background: an operation's status, a session's state and a computer's
//! power state are computed at read time from when things happened, the settle time, the session
//! lifetime and the starting/stopping times. Times are kept on the wall clock; reported
//! timestamps are shifted by the [`SimClock`] offset.

mod instance_calls;
mod view;

pub(crate) use instance_calls::ControlRefusal;
pub use view::{BilledInterval, ComputerView, IdleStop};

use super::clock::SimClock;
use super::config::{
    ComputerSpec, INSTANCE_NOT_RUNNING, LightsailException, OperationFailure, SessionWhenNotRunning,
};
use super::instance::{InstanceState, Power};
use super::wire::{
    AccessDetailsBody, AwsError, EpochMillis, LocationBody, OperationBody, OperationsBody,
    OperationsPageBody, SessionBody, SingleOperationBody,
};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// Milliseconds since the epoch, the resolution of Lightsail timestamps.
pub(crate) fn now_millis() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A random version-4 UUID.
pub(crate) fn new_uuid() -> String {
    const VERSION_MASK: u128 = 0xf << 76;
    const VERSION_4: u128 = 0x4 << 76;
    const VARIANT_MASK: u128 = 0x3 << 62;
    const VARIANT_RFC_4122: u128 = 0x2 << 62;
    let random: u128 = rand::random();
    let bits = (random & !VERSION_MASK & !VARIANT_MASK) | VERSION_4 | VARIANT_RFC_4122;
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OperationKind {
    Start,
    Stop,
    StartInstance,
    StopInstance,
    EnableAddOn,
    DisableAddOn,
}

impl OperationKind {
    fn operation_type(self) -> &'static str {
        match self {
            Self::Start => "StartGUISession",
            Self::Stop => "StopGUISession",
            Self::StartInstance => "StartInstance",
            Self::StopInstance => "StopInstance",
            Self::EnableAddOn => "EnableAddOn",
            Self::DisableAddOn => "DisableAddOn",
        }
    }
}

/// One operation (a GUI-session Start or Stop, an instance start or stop, an add-on change),
/// immutable once made.
struct Operation {
    id: Arc<str>,
    resource: Arc<str>,
    region: Arc<str>,
    account: Arc<str>,
    kind: OperationKind,
    created_at: i64,
    settles_at: i64,
    failure: Option<OperationFailure>,
    /// Leave `isTerminal` out of the answers (the member is optional in the API model).
    omit_is_terminal: bool,
}

impl Operation {
    /// The operation as of wall-clock `now`, its timestamps shifted onto AWS's clock.
    fn body(&self, now: i64, clock_offset: i64) -> OperationBody<'_> {
        let settled = now >= self.settles_at;
        let (status, failure) = match (settled, &self.failure) {
            (false, _) => ("Started", None),
            (true, None) => ("Succeeded", None),
            (true, Some(failure)) => ("Failed", Some(failure)),
        };
        OperationBody {
            id: &self.id,
            resource_name: &self.resource,
            resource_type: "Instance",
            created_at: EpochMillis(self.created_at.saturating_add(clock_offset)),
            location: LocationBody {
                availability_zone: format!("{}a", self.region),
                region_name: &self.region,
            },
            is_terminal: (!self.omit_is_terminal).then_some(settled),
            operation_details: &self.resource,
            operation_type: self.kind.operation_type(),
            status,
            status_changed_at: EpochMillis(
                if settled {
                    self.settles_at
                } else {
                    self.created_at
                }
                .saturating_add(clock_offset),
            ),
            error_code: failure.map(|f| f.error_code.as_str()),
            error_details: failure.map(|f| f.error_details.as_str()),
        }
    }
}

/// A computer's state besides its spec.
pub(crate) struct Computer {
    pub name: Arc<str>,
    region: Arc<str>,
    /// Its account, resolved (the base account when the spec names none).
    account: Arc<str>,
    pub spec: ComputerSpec,
    /// When it was added (wall clock): `GetInstance`'s `createdAt`.
    created_at: i64,
    /// The resource id in its ARN.
    arn_id: Arc<str>,
    /// Its power history: the state and the meter.
    power: Power,
    /// The StopInstanceOnIdle add-on, while enabled.
    idle_stop: Option<IdleStop>,
    /// Operation ids, oldest first.
    operations: Vec<Arc<str>>,
    /// The latest Start or Stop, which decides the session state.
    last_session_operation: Option<Arc<str>>,
    /// `CreateGUISessionAccessDetails` calls answered since the latest Start (or since the
    /// computer was added or its history cleared): what `accessSetupCalls` counts.
    access_calls: u32,
    /// `true` while StartGUISession responses are held back.
    hold: watch::Sender<bool>,
    /// Responses currently held back.
    held: Arc<AtomicUsize>,
}

/// A held-back response's ticket: released when the hold is cleared, counted while it waits.
pub(crate) struct HeldResponse {
    hold: watch::Receiver<bool>,
    held: Arc<AtomicUsize>,
}

impl HeldResponse {
    /// Waits until the hold is cleared or the computer is removed.
    pub(crate) async fn released(mut self) {
        self.held.fetch_add(1, Ordering::SeqCst);
        let _uncount = DecrementOnDrop(Arc::clone(&self.held));
        // An error means the sender is gone (computer removed or simulator stopped): release.
        let _ = self.hold.wait_for(|held| !*held).await;
    }
}

struct DecrementOnDrop(Arc<AtomicUsize>);

impl Drop for DecrementOnDrop {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Timings that shape every session and operation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timings {
    pub settle_time: Duration,
    pub session_lifetime: Duration,
    pub page_size: usize,
    /// Default `pending` time of computers whose spec names none.
    pub instance_start_time: Duration,
    /// Default `stopping` time of computers whose spec names none.
    pub instance_stop_time: Duration,
}

/// All computers and operations.
pub(crate) struct World {
    timings: Timings,
    clock: Arc<SimClock>,
    /// Account of computers whose spec names none.
    base_account: Arc<str>,
    computers: HashMap<Arc<str>, Computer>,
    operations: HashMap<Arc<str>, Operation>,
}

/// The answer to a call, with the resource it was about (for counting).
pub(crate) struct Answer {
    pub body: Result<Vec<u8>, AwsError>,
    pub resource: Option<Arc<str>>,
    pub hold: Option<HeldResponse>,
}

impl Answer {
    fn error(error: AwsError, resource: Option<Arc<str>>) -> Self {
        Self {
            body: Err(error),
            resource,
            hold: None,
        }
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, AwsError> {
    serde_json::to_vec(value)
        .map_err(|e| AwsError::lightsail(LightsailException::Service, e.to_string()))
}

impl World {
    pub(crate) fn new(timings: Timings, clock: Arc<SimClock>, base_account: &str) -> Self {
        Self {
            timings,
            clock,
            base_account: Arc::from(base_account),
            computers: HashMap::new(),
            operations: HashMap::new(),
        }
    }

    /// Adds a computer, or replaces the spec of an existing one while keeping its session and
    /// operations. Returns whether it is new. Clearing `holdStartResponse` releases held calls.
    pub(crate) fn upsert(&mut self, spec: ComputerSpec) -> bool {
        let account = spec
            .account
            .as_deref()
            .map_or_else(|| Arc::clone(&self.base_account), Arc::from);
        match self.computers.get_mut(spec.name.as_str()) {
            Some(computer) => {
                computer.region = Arc::from(spec.region.as_str());
                computer.account = account;
                computer.hold.send_replace(spec.hold_start_response);
                computer.spec = spec;
                false
            }
            None => {
                let name: Arc<str> = Arc::from(spec.name.as_str());
                let now = now_millis();
                let (starting, stopping) = self.power_times(&spec);
                let power = Power::new(now, spec.state.unwrap_or_default(), starting, stopping);
                let computer = Computer {
                    name: Arc::clone(&name),
                    region: Arc::from(spec.region.as_str()),
                    account,
                    created_at: now,
                    arn_id: Arc::from(new_uuid()),
                    power,
                    idle_stop: None,
                    hold: watch::Sender::new(spec.hold_start_response),
                    held: Arc::new(AtomicUsize::new(0)),
                    spec,
                    operations: Vec::new(),
                    last_session_operation: None,
                    access_calls: 0,
                };
                self.computers.insert(name, computer);
                true
            }
        }
    }

    /// Removes a computer and its operations; held responses are released.
    pub(crate) fn remove(&mut self, name: &str) -> bool {
        match self.computers.remove(name) {
            Some(computer) => {
                for id in &computer.operations {
                    self.operations.remove(id);
                }
                true
            }
            None => false,
        }
    }

    /// Releases every held response (used at shutdown).
    pub(crate) fn release_all(&mut self) {
        for computer in self.computers.values_mut() {
            computer.spec.hold_start_response = false;
            computer.hold.send_replace(false);
        }
    }

    /// Forgets all sessions and operations, keeping the computers in their power state; their
    /// meters start again from now.
    pub(crate) fn clear_history(&mut self) {
        self.operations.clear();
        let now = now_millis();
        for computer in self.computers.values_mut() {
            computer.operations.clear();
            computer.last_session_operation = None;
            computer.access_calls = 0;
            computer.power.restart_meter(now);
        }
    }

    /// A computer's (pending, stopping) times in milliseconds: its spec's, else the defaults.
    fn power_times(&self, spec: &ComputerSpec) -> (i64, i64) {
        (
            millis(
                spec.starting_time
                    .unwrap_or(self.timings.instance_start_time),
            ),
            millis(
                spec.stopping_time
                    .unwrap_or(self.timings.instance_stop_time),
            ),
        )
    }

    /// The computer an operation belongs to.
    pub(crate) fn resource_of_operation(&self, id: &str) -> Option<Arc<str>> {
        self.operations
            .get(id)
            .map(|operation| Arc::clone(&operation.resource))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Computer> {
        self.computers.get(name)
    }

    pub(crate) fn views(&self) -> Vec<ComputerView> {
        let now = now_millis();
        let mut views: Vec<ComputerView> = self
            .computers
            .values()
            .map(|computer| self.view(computer, now))
            .collect();
        views.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        views
    }

    pub(crate) fn view_of(&self, name: &str) -> Option<ComputerView> {
        self.computers
            .get(name)
            .map(|computer| self.view(computer, now_millis()))
    }

    fn view(&self, computer: &Computer, now: i64) -> ComputerView {
        view::of(
            computer,
            self.session_status(computer, now).status,
            computer.held.load(Ordering::SeqCst),
            now,
        )
    }

    /// The computer a call names, as seen from `region` by a caller of `account`, after its
    /// forced exceptions. Computers of other regions or accounts are not found, exactly as
    /// missing ones.
    fn resolve(
        &self,
        resource_name: Option<&str>,
        region: &str,
        account: &str,
    ) -> Result<&Computer, (AwsError, Option<Arc<str>>)> {
        self.resolve_member("resourceName", resource_name, region, account)
    }

    /// [`resolve`](Self::resolve) for a call that names the computer in `member` (e.g.
    /// `instanceName`).
    fn resolve_member(
        &self,
        member: &str,
        resource_name: Option<&str>,
        region: &str,
        account: &str,
    ) -> Result<&Computer, (AwsError, Option<Arc<str>>)> {
        let Some(name) = resource_name else {
            return Err((
                AwsError::lightsail(
                    LightsailException::InvalidInput,
                    format!(
                        "1 validation error detected: Value null at '{member}' failed to \
                         satisfy constraint: Member must not be null"
                    ),
                ),
                None,
            ));
        };
        let named = || Some(Arc::<str>::from(name));
        if !super::config::is_valid_resource_name(name) {
            return Err((
                AwsError::lightsail(
                    LightsailException::InvalidInput,
                    format!(
                        "1 validation error detected: Value '{name}' at '{member}' failed to \
                         satisfy constraint: Member must satisfy regular expression pattern: \
                         \\w[\\w\\-]*\\w"
                    ),
                ),
                named(),
            ));
        }
        let computer = match self.computers.get(name) {
            Some(computer) if &*computer.region == region && &*computer.account == account => {
                computer
            }
            _ => {
                return Err((
                    AwsError::lightsail(
                        LightsailException::NotFound,
                        format!("The Instance does not exist: {name}"),
                    ),
                    named(),
                ));
            }
        };
        forced(computer).map_err(|e| (e, Some(Arc::clone(&computer.name))))?;
        Ok(computer)
    }

    /// `StartGUISession` / `StopGUISession`.
    pub(crate) fn start_or_stop(
        &mut self,
        resource_name: Option<&str>,
        region: &str,
        account: &str,
        start: bool,
    ) -> Answer {
        let name = match self.resolve(resource_name, region, account) {
            Ok(computer) => Arc::clone(&computer.name),
            Err((error, resource)) => return Answer::error(error, resource),
        };
        let now = now_millis();
        let Some(computer) = self.computers.get_mut(&name) else {
            return Answer::error(
                AwsError::lightsail(LightsailException::Service, "computer vanished"),
                Some(name),
            );
        };
        let power_state = computer.power.state_at(now);
        let not_running = start && power_state != InstanceState::Running;
        let (kind, failure) = if not_running {
            let message = not_running_message(&computer.name, power_state);
            match computer.spec.session_when_not_running {
                SessionWhenNotRunning::Error => {
                    return Answer::error(
                        AwsError::lightsail(LightsailException::InvalidInput, message),
                        Some(name),
                    );
                }
                SessionWhenNotRunning::FailedOperation => (
                    OperationKind::Start,
                    Some(OperationFailure {
                        error_code: INSTANCE_NOT_RUNNING.to_owned(),
                        error_details: message,
                    }),
                ),
            }
        } else if start {
            (OperationKind::Start, computer.spec.start_fails_with.clone())
        } else {
            (OperationKind::Stop, computer.spec.stop_fails_with.clone())
        };
        let operation = Operation {
            id: Arc::from(new_uuid()),
            resource: Arc::clone(&computer.name),
            region: Arc::clone(&computer.region),
            account: Arc::clone(&computer.account),
            kind,
            created_at: now,
            settles_at: now.saturating_add(millis(self.timings.settle_time)),
            failure,
            omit_is_terminal: computer.spec.omit_is_terminal,
        };
        computer.operations.push(Arc::clone(&operation.id));
        computer.last_session_operation = Some(Arc::clone(&operation.id));
        if start {
            // A new session start: its access lifecycle begins again.
            computer.access_calls = 0;
        }
        let hold = (start && *computer.hold.borrow()).then(|| HeldResponse {
            hold: computer.hold.subscribe(),
            held: Arc::clone(&computer.held),
        });
        let body = to_json(&OperationsBody {
            operations: vec![operation.body(now, self.clock.offset_millis())],
        });
        self.operations.insert(Arc::clone(&operation.id), operation);
        Answer {
            body,
            resource: Some(name),
            hold,
        }
    }

    /// `GetOperation`.
    pub(crate) fn get_operation(
        &self,
        operation_id: Option<&str>,
        region: &str,
        account: &str,
    ) -> Answer {
        let Some(id) = operation_id else {
            return Answer::error(
                AwsError::lightsail(
                    LightsailException::InvalidInput,
                    "1 validation error detected: Value null at 'operationId' failed to satisfy \
                     constraint: Member must not be null",
                ),
                None,
            );
        };
        let found = self
            .operations
            .get(id)
            .filter(|operation| &*operation.region == region && &*operation.account == account);
        let Some(operation) = found else {
            return Answer::error(
                AwsError::lightsail(
                    LightsailException::NotFound,
                    format!("The Operation does not exist: {id}"),
                ),
                None,
            );
        };
        let resource = Some(Arc::clone(&operation.resource));
        if let Some(computer) = self.computers.get(&operation.resource)
            && let Err(error) = forced(computer)
        {
            return Answer::error(error, resource);
        }
        Answer {
            body: to_json(&SingleOperationBody {
                operation: operation.body(now_millis(), self.clock.offset_millis()),
            }),
            resource,
            hold: None,
        }
    }

    /// `GetOperationsForResource`: newest first, `page_size` per page; the page token is the
    /// id of the first operation of the next page, so it stays valid as new ones are added.
    pub(crate) fn operations_for_resource(
        &self,
        resource_name: Option<&str>,
        page_token: Option<&str>,
        region: &str,
        account: &str,
    ) -> Answer {
        let computer = match self.resolve(resource_name, region, account) {
            Ok(computer) => computer,
            Err((error, resource)) => return Answer::error(error, resource),
        };
        let resource = Some(Arc::clone(&computer.name));
        let skip = match page_token {
            None => 0,
            Some(token) => match computer
                .operations
                .iter()
                .rev()
                .position(|id| **id == *token)
            {
                Some(position) => position,
                None => {
                    return Answer::error(
                        AwsError::lightsail(
                            LightsailException::InvalidInput,
                            format!("The page token is not valid: {token}"),
                        ),
                        resource,
                    );
                }
            },
        };
        let page_size = self.timings.page_size;
        let now = now_millis();
        let clock_offset = self.clock.offset_millis();
        let operations: Vec<OperationBody<'_>> = computer
            .operations
            .iter()
            .rev()
            .skip(skip)
            .take(page_size)
            .filter_map(|id| self.operations.get(id))
            .map(|operation| operation.body(now, clock_offset))
            .collect();
        let remaining = computer.operations.len().saturating_sub(skip + page_size);
        let (next_page_count, next_page_token) = if remaining > 0 {
            (
                Some(remaining.div_ceil(page_size).to_string()),
                computer
                    .operations
                    .iter()
                    .rev()
                    .nth(skip + page_size)
                    .map(|id| id.to_string()),
            )
        } else {
            (None, None)
        };
        Answer {
            body: to_json(&OperationsPageBody {
                operations,
                next_page_count,
                next_page_token,
            }),
            resource,
            hold: None,
        }
    }

    /// `CreateGUISessionAccessDetails`: the session status, and while `started` two URLs with
    /// fresh bearer tokens. The URLs go into the answer only: never into the log, the counts
    /// or the views.
    pub(crate) fn access_details(
        &mut self,
        resource_name: Option<&str>,
        region: &str,
        account: &str,
    ) -> Answer {
        let computer = match self.resolve(resource_name, region, account) {
            Ok(computer) => computer,
            Err((error, resource)) => return Answer::error(error, resource),
        };
        let name = Arc::clone(&computer.name);
        let session = self.session_status(computer, now_millis());
        let sessions = if session.status == "started" {
            session_urls(computer)
        } else {
            Vec::new()
        };
        let body = to_json(&AccessDetailsBody {
            resource_name: &computer.name,
            status: session.status,
            percentage_complete: session.percentage_complete,
            failure_reason: session.failure_reason,
            sessions,
        });
        if let Some(computer) = self.computers.get_mut(&name) {
            computer.access_calls = computer.access_calls.saturating_add(1);
        }
        Answer {
            body,
            resource: Some(name),
            hold: None,
        }
    }

    /// What the next `CreateGUISessionAccessDetails` call answers, as of wall-clock `now`:
    ///
    /// * no Start or Stop yet: `notStarted`;
    /// * latest is a Stop: `stopping` until it settles, then `stopped` or
    ///   `failedStoppingGUISession`;
    /// * latest is a Start whose operation has settled `Failed`: `failedStartingGUISession`
    ///   with the operation's `errorDetails`;
    /// * otherwise the first `accessSetupCalls` calls since the Start answer
    ///   `settingUpInstance`, then `starting` (see [`setup_step`]); after them `starting`
    ///   while the operation runs (progress by time), then the `accessFailure` if one is set,
    ///   else `started` until the session lifetime has passed since the operation settled, then
    ///   `startExpired`.
    fn session_status<'a>(&'a self, computer: &'a Computer, now: i64) -> SessionStatus<'a> {
        let latest = computer
            .last_session_operation
            .as_ref()
            .and_then(|id| self.operations.get(id));
        let Some(operation) = latest else {
            return SessionStatus::new("notStarted", 0);
        };
        // The computer stopping ends the session: it reads `stopped` while the computer is not
        // running, and stays so after a restart until a new StartGUISession.
        let ended_by_stop = computer
            .power
            .last_stop_at()
            .is_some_and(|stop| stop >= operation.created_at);
        if ended_by_stop || computer.power.state_at(now) != InstanceState::Running {
            return SessionStatus::new("stopped", 100);
        }
        let span = (operation.settles_at - operation.created_at).max(1);
        let progress = ((now - operation.created_at) * 100 / span).clamp(0, 99) as u8;
        let settled = now >= operation.settles_at;
        match (operation.kind, settled, &operation.failure) {
            (OperationKind::Stop, false, _) => SessionStatus::new("stopping", progress),
            (OperationKind::Stop, true, Some(failure)) => SessionStatus {
                status: "failedStoppingGUISession",
                percentage_complete: 100,
                failure_reason: Some(&failure.error_details),
            },
            (OperationKind::Stop, true, None) => SessionStatus::new("stopped", 100),
            (OperationKind::Start, true, Some(failure)) => SessionStatus {
                status: "failedStartingGUISession",
                percentage_complete: 100,
                failure_reason: Some(&failure.error_details),
            },
            (OperationKind::Start, _, _) => {
                let setup_calls = computer.spec.access_setup_calls;
                if let Some(step) = setup_step(computer.access_calls, setup_calls) {
                    return step;
                }
                if !settled {
                    // Never below what the setup calls already reported.
                    let after_setup = setup_percentage(setup_calls, setup_calls);
                    return SessionStatus::new("starting", progress.max(after_setup));
                }
                if let Some(failure) = &computer.spec.access_failure {
                    return SessionStatus {
                        status: failure.status.as_str(),
                        percentage_complete: 100,
                        failure_reason: Some(&failure.reason),
                    };
                }
                let expires_at = operation
                    .settles_at
                    .saturating_add(millis(self.timings.session_lifetime));
                let status = if now < expires_at {
                    "started"
                } else {
                    "startExpired"
                };
                SessionStatus::new(status, 100)
            }
            // Only GUI-session operations become the latest session operation.
            (
                OperationKind::StartInstance
                | OperationKind::StopInstance
                | OperationKind::EnableAddOn
                | OperationKind::DisableAddOn,
                _,
                _,
            ) => SessionStatus::new("notStarted", 0),
        }
    }
}

/// The answer to setup call `call` (counted from 0) of `setup_calls` after a start, or `None`
/// once they are used up: the first half (rounded up) `settingUpInstance`, the rest
/// `starting`, `percentageComplete` rising strictly from call to call and staying below 100.
fn setup_step(call: u32, setup_calls: u32) -> Option<SessionStatus<'static>> {
    if call >= setup_calls {
        return None;
    }
    let status = if call < setup_calls.div_ceil(2) {
        "settingUpInstance"
    } else {
        "starting"
    };
    Some(SessionStatus::new(
        status,
        setup_percentage(call + 1, setup_calls),
    ))
}

/// `percentageComplete` once `done` of `setup_calls` setup calls have been answered: evenly
/// spaced between 0 and 100, exclusive (strictly rising for up to 99 setup calls).
fn setup_percentage(done: u32, setup_calls: u32) -> u8 {
    let percent = u64::from(done.min(setup_calls)) * 100 / (u64::from(setup_calls) + 1);
    u8::try_from(percent.min(99)).unwrap_or(99)
}

/// The two session URLs, each with its own fresh bearer token (as real ones carry): the
/// primary opens the computer's application, the secondary its operating system.
fn session_urls(computer: &Computer) -> Vec<SessionBody> {
    let url = |view: &str| {
        format!(
            "https://{}.dcv.lightsail-sim.invalid/{}?authToken={}&view={view}",
            computer.region,
            computer.name,
            new_uuid().replace('-', "")
        )
    };
    vec![
        SessionBody {
            name: "primary",
            url: url("application"),
            is_primary: true,
        },
        SessionBody {
            name: "secondary",
            url: url("desktop"),
            is_primary: false,
        },
    ]
}

struct SessionStatus<'a> {
    status: &'static str,
    percentage_complete: u8,
    failure_reason: Option<&'a str>,
}

impl SessionStatus<'_> {
    fn new(status: &'static str, percentage_complete: u8) -> Self {
        Self {
            status,
            percentage_complete,
            failure_reason: None,
        }
    }
}

/// What `StartGUISession` says about a computer that is not running.
fn not_running_message(name: &str, state: InstanceState) -> String {
    format!(
        "The instance {name} is not running (its state is {state}): start it before starting a \
         GUI session"
    )
}

fn forced(computer: &Computer) -> Result<(), AwsError> {
    match computer.spec.forced_exception() {
        None => Ok(()),
        Some(exception) => Err(AwsError::lightsail(
            exception,
            format!(
                "{} configured for {} in the simulator",
                exception.type_name(),
                computer.name
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_calls_set_up_then_start_with_rising_percentages() {
        let steps = |setup_calls: u32| -> Vec<(&'static str, u8)> {
            (0..=setup_calls)
                .map_while(|call| setup_step(call, setup_calls))
                .map(|step| (step.status, step.percentage_complete))
                .collect()
        };
        assert_eq!(steps(0), []);
        assert_eq!(steps(1), [("settingUpInstance", 50)]);
        assert_eq!(
            steps(4),
            [
                ("settingUpInstance", 20),
                ("settingUpInstance", 40),
                ("starting", 60),
                ("starting", 80),
            ]
        );
        assert_eq!(
            steps(3).iter().map(|s| s.0).collect::<Vec<_>>(),
            ["settingUpInstance", "settingUpInstance", "starting"]
        );
        for setup_calls in 1..=crate::config::MAX_ACCESS_SETUP_CALLS {
            let percentages: Vec<u8> = steps(setup_calls).iter().map(|s| s.1).collect();
            assert_eq!(percentages.len(), setup_calls as usize);
            assert!(percentages[0] > 0, "{setup_calls}: {percentages:?}");
            assert!(
                percentages.windows(2).all(|w| w[0] < w[1]),
                "{setup_calls}: {percentages:?}"
            );
            assert!(percentages.iter().all(|p| *p < 100));
        }
        assert_eq!(setup_step(7, 4).map(|s| s.status), None);
    }

    #[test]
    fn uuids_are_version_4() {
        let id = new_uuid();
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(groups[2].starts_with('4'), "{id}");
        assert!(
            matches!(groups[3].chars().next(), Some('8' | '9' | 'a' | 'b')),
            "{id}"
        );
        assert_ne!(new_uuid(), id);
    }
}
