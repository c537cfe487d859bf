//! What `GET /_sim/computers` shows of a computer: its spec, session, power state, idle rule and
//! cost meter.

use super::Computer;
use crate::config::ComputerSpec;
use crate::instance::InstanceState;
use crate::meter::{self, MeterWindow};
use serde::{Deserialize, Serialize};

/// What `GET /_sim/computers` shows of a computer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComputerView {
    /// The spec as last set, without its initial `state`: the live `state` below replaces it
    /// (posting a view back as a spec adds the computer in its current state).
    #[serde(flatten)]
    pub spec: ComputerSpec,
    /// The power state now.
    pub state: InstanceState,
    /// When it entered that state (wall clock; a `pending` or `stopping` computer that has
    /// settled entered `running` or `stopped` when it settled).
    pub state_since: jiff::Timestamp,
    /// The StopInstanceOnIdle add-on, while enabled (`EnableAddOn`).
    #[serde(default)]
    pub idle_stop: Option<IdleStop>,
    /// Session status as `CreateGUISessionAccessDetails` would report it now.
    pub session_status: String,
    /// Operations made so far (GUI-session, instance and add-on ones).
    pub operation_count: usize,
    /// `CreateGUISessionAccessDetails` calls answered since the latest `StartGUISession` (or
    /// since the computer was added or its history cleared), which `accessSetupCalls` counts.
    /// Reading the view counts no call.
    pub access_calls_since_start: u32,
    /// `StartGUISession` responses currently held back.
    pub held_start_responses: usize,
    /// Billed seconds so far: time spent `pending`, `running` or `stopping` (a computer is
    /// billed from the moment it starts until it is stopped), since it was added or the last
    /// `POST /_sim/reset?scope=all`.
    pub running_seconds: f64,
    /// The part of `runningSeconds` inside any of the spec's `meterWindows`.
    pub running_seconds_inside_windows: f64,
    /// The rest of `runningSeconds`.
    pub running_seconds_outside_windows: f64,
    /// The billed intervals, oldest first (wall clock).
    pub billed_intervals: Vec<BilledInterval>,
}

/// The StopInstanceOnIdle add-on as enabled: `{"threshold": "5", "duration": "30"}` (CPU
/// percent, idle minutes; Strings, as on the wire).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdleStop {
    /// CPU percentage at or below which the computer counts as idle.
    pub threshold: String,
    /// Idle minutes after which it is stopped.
    pub duration: String,
}

/// One billed interval: `{"start": "…Z", "end": "…Z"}`, `end` null while it goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BilledInterval {
    /// When billing began.
    pub start: jiff::Timestamp,
    /// When it ended; none while the computer is still billed.
    pub end: Option<jiff::Timestamp>,
}

fn timestamp(millis: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(millis).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

pub(super) fn of(
    computer: &Computer,
    session_status: &str,
    held_start_responses: usize,
    now: i64,
) -> ComputerView {
    let billed = computer.power.billed_intervals(now);
    let windows: Vec<meter::Interval> = computer
        .spec
        .meter_windows
        .iter()
        .map(|window: &MeterWindow| window.interval())
        .collect();
    let reading = meter::read(&billed, &windows);
    let state = computer.power.state_at(now);
    let billed_intervals = billed
        .iter()
        .map(|interval| {
            // Only the last interval can reach `now`, and it goes on while still billed.
            let ongoing = interval.end >= now && state.is_billed();
            BilledInterval {
                start: timestamp(interval.start),
                end: (!ongoing).then(|| timestamp(interval.end)),
            }
        })
        .collect();
    let mut spec = computer.spec.clone();
    spec.state = None;
    ComputerView {
        spec,
        state,
        state_since: timestamp(computer.power.state_since(now)),
        idle_stop: computer.idle_stop.clone(),
        session_status: session_status.to_owned(),
        operation_count: computer.operations.len(),
        access_calls_since_start: computer.access_calls,
        held_start_responses,
        running_seconds: meter::seconds(reading.total_millis),
        running_seconds_inside_windows: meter::seconds(reading.inside_millis),
        running_seconds_outside_windows: meter::seconds(reading.outside_millis()),
        billed_intervals,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computer_views_read_back_from_json() {
        let view = ComputerView {
            spec: ComputerSpec::new("vm-1").hold_start_response(true),
            state: InstanceState::Stopping,
            state_since: jiff::Timestamp::UNIX_EPOCH,
            idle_stop: Some(IdleStop {
                threshold: "5".to_owned(),
                duration: "30".to_owned(),
            }),
            session_status: "started".to_owned(),
            operation_count: 2,
            access_calls_since_start: 3,
            held_start_responses: 1,
            running_seconds: 1.5,
            running_seconds_inside_windows: 1.0,
            running_seconds_outside_windows: 0.5,
            billed_intervals: vec![BilledInterval {
                start: jiff::Timestamp::UNIX_EPOCH,
                end: None,
            }],
        };
        let json = serde_json::to_value(&view).ok();
        assert_eq!(
            json.as_ref()
                .map(|j| (j["holdStartResponse"].clone(), j["state"].clone())),
            Some((serde_json::json!(true), serde_json::json!("stopping")))
        );
        assert_eq!(
            json.as_ref().map(|j| j["idleStop"]["threshold"].clone()),
            Some(serde_json::json!("5"))
        );
        let back: Option<ComputerView> = json.and_then(|j| serde_json::from_value(j).ok());
        assert_eq!(back, Some(view));
    }
}
