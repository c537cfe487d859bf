//! The calls about the computer behind a GUI session — its power state (`GetInstanceState`,
//! `GetInstance`, `StartInstance`, `StopInstance`) and its StopInstanceOnIdle rule
//! (`EnableAddOn`, `DisableAddOn`) — and the controls that act as AWS or a person would (the idle
//! rule firing, a state set in the console).

use super::view::IdleStop;
use super::{Answer, ComputerView, Operation, OperationKind, World, new_uuid, now_millis, to_json};
use crate::config::LightsailException;
use crate::instance::{InstanceState, Refused};
use crate::wire::{
    AddOnBody, AddOnRequestFields, AwsError, EpochMillis, GetInstanceBody, GetInstanceStateBody,
    InstanceBody, InstanceStateBody, LocationBody, OperationsBody,
};
use std::sync::Arc;

/// The add-on the simulator models.
const STOP_INSTANCE_ON_IDLE: &str = "StopInstanceOnIdle";
/// Lightsail's `AddOnType` enum.
const ADD_ON_TYPES: [&str; 2] = ["AutoSnapshot", STOP_INSTANCE_ON_IDLE];

/// Why a control request about a computer was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ControlRefusal {
    /// No such computer (404).
    NotFound(String),
    /// Not possible in its current state (409).
    Conflict(String),
}

impl ControlRefusal {
    pub(crate) fn message(&self) -> &str {
        match self {
            Self::NotFound(message) | Self::Conflict(message) => message,
        }
    }
}

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::lightsail(LightsailException::InvalidInput, message)
}

fn state_body(state: InstanceState) -> InstanceStateBody {
    InstanceStateBody {
        code: state.code(),
        name: state.name(),
    }
}

/// Checks `EnableAddOn`'s request: a StopInstanceOnIdle add-on with numeric threshold (a CPU
/// percentage, 0 to 100) and duration (idle minutes, more than 0).
fn idle_stop_request(request: Option<&AddOnRequestFields>) -> Result<IdleStop, AwsError> {
    let null = |member: &str| {
        invalid(format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy \
             constraint: Member must not be null"
        ))
    };
    let request = request.ok_or_else(|| null("addOnRequest"))?;
    let add_on_type = request
        .add_on_type
        .as_deref()
        .ok_or_else(|| null("addOnRequest.addOnType"))?;
    check_add_on_type("addOnRequest.addOnType", add_on_type)?;
    let idle = request
        .stop_instance_on_idle_request
        .as_ref()
        .ok_or_else(|| {
            invalid(
                "addOnRequest.stopInstanceOnIdleRequest is required for the StopInstanceOnIdle \
                 add-on",
            )
        })?;
    let number = |member: &str, value: Option<&str>, meaning: &str, ok: fn(f64) -> bool| {
        let path = format!("addOnRequest.stopInstanceOnIdleRequest.{member}");
        let value = value.ok_or_else(|| invalid(format!("{path} is required ({meaning})")))?;
        match value.trim().parse::<f64>() {
            Ok(number) if number.is_finite() && ok(number) => Ok(value.to_owned()),
            _ => Err(invalid(format!(
                "{path} '{value}' is not a valid number ({meaning})"
            ))),
        }
    };
    Ok(IdleStop {
        threshold: number(
            "threshold",
            idle.threshold.as_deref(),
            "a CPU percentage from 0 to 100",
            |n| (0.0..=100.0).contains(&n),
        )?,
        duration: number(
            "duration",
            idle.duration.as_deref(),
            "idle minutes, more than 0",
            |n| n > 0.0,
        )?,
    })
}

/// An `addOnType` must be one of Lightsail's, and the one the simulator models.
fn check_add_on_type(member: &str, add_on_type: &str) -> Result<(), AwsError> {
    if !ADD_ON_TYPES.contains(&add_on_type) {
        return Err(invalid(format!(
            "1 validation error detected: Value '{add_on_type}' at '{member}' failed to satisfy \
             constraint: Member must satisfy enum value set: [{}]",
            ADD_ON_TYPES.join(", ")
        )));
    }
    if add_on_type != STOP_INSTANCE_ON_IDLE {
        return Err(invalid(format!(
            "The {add_on_type} add-on is not available for Lightsail for Research computers in \
             lightsail-sim: only {STOP_INSTANCE_ON_IDLE} is"
        )));
    }
    Ok(())
}

impl World {
    /// `GetInstanceState`.
    pub(crate) fn instance_state(&self, name: Option<&str>, region: &str, account: &str) -> Answer {
        let computer = match self.resolve_member("instanceName", name, region, account) {
            Ok(computer) => computer,
            Err((error, resource)) => return Answer::error(error, resource),
        };
        Answer {
            body: to_json(&GetInstanceStateBody {
                state: state_body(computer.power.state_at(now_millis())),
            }),
            resource: Some(Arc::clone(&computer.name)),
            hold: None,
        }
    }

    /// `GetInstance`: the members the simulator knows, the add-on among them.
    pub(crate) fn instance(&self, name: Option<&str>, region: &str, account: &str) -> Answer {
        let computer = match self.resolve_member("instanceName", name, region, account) {
            Ok(computer) => computer,
            Err((error, resource)) => return Answer::error(error, resource),
        };
        let add_ons = computer
            .idle_stop
            .iter()
            .map(|idle| AddOnBody {
                name: STOP_INSTANCE_ON_IDLE,
                status: "Enabled",
                threshold: &idle.threshold,
                duration: &idle.duration,
            })
            .collect();
        let body = to_json(&GetInstanceBody {
            instance: InstanceBody {
                name: &computer.name,
                arn: format!(
                    "arn:aws:lightsail:{}:{}:Instance/{}",
                    computer.region, computer.account, computer.arn_id
                ),
                created_at: EpochMillis(
                    computer
                        .created_at
                        .saturating_add(self.clock.offset_millis()),
                ),
                location: LocationBody {
                    availability_zone: format!("{}a", computer.region),
                    region_name: &computer.region,
                },
                resource_type: "Instance",
                blueprint_id: computer.spec.blueprint_id.as_deref(),
                state: state_body(computer.power.state_at(now_millis())),
                add_ons,
            },
        });
        Answer {
            body,
            resource: Some(Arc::clone(&computer.name)),
            hold: None,
        }
    }

    /// `StartInstance`: a stopped computer goes `pending`, then `running` after its starting
    /// time; the operation is `Started` until then. Any other state is `InvalidInputException`.
    pub(crate) fn start_instance(
        &mut self,
        name: Option<&str>,
        region: &str,
        account: &str,
    ) -> Answer {
        let name = match self.resolve_member("instanceName", name, region, account) {
            Ok(computer) => Arc::clone(&computer.name),
            Err((error, resource)) => return Answer::error(error, resource),
        };
        let now = now_millis();
        match self.start_power(&name, now) {
            Some(Ok(running_at)) => {
                self.record_operation(&name, OperationKind::StartInstance, now, running_at)
            }
            None => vanished(name),
            Some(Err(Refused(state))) => Answer::error(
                invalid(format!(
                    "The instance {name} cannot be started: its state is {state}, and only a \
                     stopped instance can be started"
                )),
                Some(name),
            ),
        }
    }

    /// `StopInstance`: a running or pending computer goes `stopping`, then `stopped` after its
    /// stopping time; `force` stops a `stopping` one at once. Stopping a stopped or (without
    /// force) stopping one is `InvalidInputException`.
    pub(crate) fn stop_instance(
        &mut self,
        name: Option<&str>,
        force: bool,
        region: &str,
        account: &str,
    ) -> Answer {
        let name = match self.resolve_member("instanceName", name, region, account) {
            Ok(computer) => Arc::clone(&computer.name),
            Err((error, resource)) => return Answer::error(error, resource),
        };
        let now = now_millis();
        match self.stop_power(&name, now, force) {
            Some(Ok(stopped_at)) => {
                self.record_operation(&name, OperationKind::StopInstance, now, stopped_at)
            }
            Some(Err(Refused(state))) => {
                let message = match state {
                    InstanceState::Stopping => format!(
                        "The instance {name} is already stopping; only force (which AWS warns \
                         can lose data) stops it sooner"
                    ),
                    other => format!("The instance {name} is already {other}"),
                };
                Answer::error(invalid(message), Some(name))
            }
            None => vanished(name),
        }
    }

    /// `EnableAddOn`: enables or modifies the StopInstanceOnIdle rule; the operation succeeds at
    /// once.
    pub(crate) fn enable_add_on(
        &mut self,
        name: Option<&str>,
        request: Option<&AddOnRequestFields>,
        region: &str,
        account: &str,
    ) -> Answer {
        let idle = match idle_stop_request(request) {
            Ok(idle) => idle,
            Err(error) => return Answer::error(error, name.map(Arc::from)),
        };
        let name = match self.resolve(name, region, account) {
            Ok(computer) => Arc::clone(&computer.name),
            Err((error, resource)) => return Answer::error(error, resource),
        };
        if let Some(computer) = self.computers.get_mut(&name) {
            computer.idle_stop = Some(idle);
        }
        let now = now_millis();
        self.record_operation(&name, OperationKind::EnableAddOn, now, now)
    }

    /// `DisableAddOn`: removes the StopInstanceOnIdle rule (also when it was not enabled); the
    /// operation succeeds at once.
    pub(crate) fn disable_add_on(
        &mut self,
        name: Option<&str>,
        add_on_type: Option<&str>,
        region: &str,
        account: &str,
    ) -> Answer {
        let checked = match add_on_type {
            None => Err(invalid(
                "1 validation error detected: Value null at 'addOnType' failed to satisfy \
                 constraint: Member must not be null",
            )),
            Some(add_on_type) => check_add_on_type("addOnType", add_on_type),
        };
        if let Err(error) = checked {
            return Answer::error(error, name.map(Arc::from));
        }
        let name = match self.resolve(name, region, account) {
            Ok(computer) => Arc::clone(&computer.name),
            Err((error, resource)) => return Answer::error(error, resource),
        };
        if let Some(computer) = self.computers.get_mut(&name) {
            computer.idle_stop = None;
        }
        let now = now_millis();
        self.record_operation(&name, OperationKind::DisableAddOn, now, now)
    }

    /// The StopInstanceOnIdle rule fires (as AWS would after the idle duration): the computer
    /// goes `stopping`, then `stopped`, as after a `StopInstance` without force. Only while the
    /// add-on is enabled and the computer is running.
    pub(crate) fn trigger_idle_stop(&mut self, name: &str) -> Result<ComputerView, ControlRefusal> {
        let computer = self
            .computers
            .get(name)
            .ok_or_else(|| ControlRefusal::NotFound(format!("no computer {name:?}")))?;
        if computer.idle_stop.is_none() {
            return Err(ControlRefusal::Conflict(format!(
                "computer {name:?} has no StopInstanceOnIdle add-on enabled (EnableAddOn first)"
            )));
        }
        let now = now_millis();
        let state = computer.power.state_at(now);
        if state != InstanceState::Running {
            return Err(ControlRefusal::Conflict(format!(
                "computer {name:?} is {state}: the idle rule stops only a running computer"
            )));
        }
        let name = Arc::clone(&computer.name);
        match self.stop_power(&name, now, false) {
            Some(Ok(_)) => {}
            Some(Err(Refused(state))) => {
                return Err(ControlRefusal::Conflict(format!(
                    "computer {name:?} is {state}: the idle rule stops only a running computer"
                )));
            }
            None => return Err(ControlRefusal::NotFound(format!("no computer {name:?}"))),
        }
        self.view_of(&name)
            .ok_or_else(|| ControlRefusal::NotFound(format!("no computer {name:?}")))
    }

    /// Puts a computer in `state` at once, as a person in the console would; `pending` and
    /// `stopping` then settle after its starting or stopping time. No operation is made.
    pub(crate) fn set_state(
        &mut self,
        name: &str,
        state: InstanceState,
    ) -> Result<ComputerView, ControlRefusal> {
        let times = self
            .computers
            .get(name)
            .map(|computer| self.power_times(&computer.spec));
        let (Some((starting, stopping)), Some(computer)) = (times, self.computers.get_mut(name))
        else {
            return Err(ControlRefusal::NotFound(format!("no computer {name:?}")));
        };
        computer.power.set(now_millis(), state, starting, stopping);
        self.view_of(name)
            .ok_or_else(|| ControlRefusal::NotFound(format!("no computer {name:?}")))
    }

    /// Stops a computer's power (see [`Power::stop`](crate::instance::Power::stop)) with its
    /// stopping time; `None` when there is no such computer.
    fn stop_power(&mut self, name: &str, now: i64, force: bool) -> Option<Result<i64, Refused>> {
        let computer = self.computers.get(name)?;
        let (_, stopping) = self.power_times(&computer.spec);
        let computer = self.computers.get_mut(name)?;
        Some(computer.power.stop(now, stopping, force))
    }

    /// Starts a computer's power with its starting time; `None` when there is no such
    /// computer.
    fn start_power(&mut self, name: &str, now: i64) -> Option<Result<i64, Refused>> {
        let computer = self.computers.get(name)?;
        let (starting, _) = self.power_times(&computer.spec);
        let computer = self.computers.get_mut(name)?;
        Some(computer.power.start(now, starting))
    }

    /// Makes an operation of `kind` for computer `name`, `Started` until `settles_at`, then
    /// `Succeeded`, and answers `{operations: [it]}`.
    fn record_operation(
        &mut self,
        name: &Arc<str>,
        kind: OperationKind,
        now: i64,
        settles_at: i64,
    ) -> Answer {
        let Some(computer) = self.computers.get_mut(name) else {
            return vanished(Arc::clone(name));
        };
        let operation = Operation {
            id: Arc::from(new_uuid()),
            resource: Arc::clone(&computer.name),
            region: Arc::clone(&computer.region),
            account: Arc::clone(&computer.account),
            kind,
            created_at: now,
            settles_at,
            failure: None,
            omit_is_terminal: computer.spec.omit_is_terminal,
        };
        computer.operations.push(Arc::clone(&operation.id));
        let body = to_json(&OperationsBody {
            operations: vec![operation.body(now, self.clock.offset_millis())],
        });
        self.operations.insert(Arc::clone(&operation.id), operation);
        Answer {
            body,
            resource: Some(Arc::clone(name)),
            hold: None,
        }
    }
}

fn vanished(name: Arc<str>) -> Answer {
    Answer::error(
        AwsError::lightsail(LightsailException::Service, "computer vanished"),
        Some(name),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::StopInstanceOnIdleFields;

    fn request(
        add_on_type: Option<&str>,
        threshold: Option<&str>,
        duration: Option<&str>,
    ) -> AddOnRequestFields {
        AddOnRequestFields {
            add_on_type: add_on_type.map(str::to_owned),
            stop_instance_on_idle_request: Some(StopInstanceOnIdleFields {
                threshold: threshold.map(str::to_owned),
                duration: duration.map(str::to_owned),
            }),
        }
    }

    fn refusal(request: Option<&AddOnRequestFields>) -> String {
        match idle_stop_request(request) {
            Ok(idle) => panic!("accepted {idle:?}"),
            Err(error) => {
                assert_eq!(
                    error.code,
                    crate::wire::ErrorCode::Lightsail(LightsailException::InvalidInput)
                );
                error.message
            }
        }
    }

    #[test]
    fn enable_add_on_requests_are_checked() {
        let good = request(Some("StopInstanceOnIdle"), Some("5"), Some("30"));
        assert_eq!(
            idle_stop_request(Some(&good)).ok(),
            Some(IdleStop {
                threshold: "5".to_owned(),
                duration: "30".to_owned()
            })
        );
        assert!(refusal(None).contains("Value null at 'addOnRequest'"));
        let no_type = request(None, Some("5"), Some("30"));
        assert!(refusal(Some(&no_type)).contains("'addOnRequest.addOnType'"));
        let unknown = request(Some("Turbo"), Some("5"), Some("30"));
        assert!(
            refusal(Some(&unknown)).contains("enum value set: [AutoSnapshot, StopInstanceOnIdle]")
        );
        let snapshot = request(Some("AutoSnapshot"), Some("5"), Some("30"));
        assert!(refusal(Some(&snapshot)).contains("only StopInstanceOnIdle"));
        let no_idle = AddOnRequestFields {
            add_on_type: Some("StopInstanceOnIdle".to_owned()),
            stop_instance_on_idle_request: None,
        };
        assert!(refusal(Some(&no_idle)).contains("stopInstanceOnIdleRequest is required"));
        let missing = request(Some("StopInstanceOnIdle"), None, Some("30"));
        assert!(refusal(Some(&missing)).contains("threshold is required"));
        let words = request(Some("StopInstanceOnIdle"), Some("five"), Some("30"));
        assert!(refusal(Some(&words)).contains("threshold 'five' is not a valid number"));
        let too_high = request(Some("StopInstanceOnIdle"), Some("101"), Some("30"));
        assert!(refusal(Some(&too_high)).contains("0 to 100"));
        let zero = request(Some("StopInstanceOnIdle"), Some("5"), Some("0"));
        assert!(refusal(Some(&zero)).contains("duration '0' is not a valid number"));
    }
}
