//! A computer's power state — `pending`, `running`, `stopping`, `stopped` — as a history of
//! transitions read at any instant, and the billed intervals that history makes.
//!
//! Pure: times are wall-clock epoch milliseconds handed in by the caller. Nothing moves by
//! itself: a `pending` entry simply reads `running` once its settle time has passed, and a
//! `stopping` one `stopped`.

use super::meter::Interval;
use serde::{Deserialize, Serialize};

/// An instance state, with the EC2 code Lightsail reports (`GetInstanceState`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceState {
    /// `pending` (0): starting; becomes `running` after the starting time.
    Pending,
    /// `running` (16).
    #[default]
    Running,
    /// `stopping` (64): becomes `stopped` after the stopping time.
    Stopping,
    /// `stopped` (80).
    Stopped,
}

impl InstanceState {
    /// Every state.
    pub const ALL: [Self; 4] = [Self::Pending, Self::Running, Self::Stopping, Self::Stopped];

    /// The `state.name` on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
        }
    }

    /// The `state.code` on the wire (EC2's codes).
    pub fn code(self) -> i32 {
        match self {
            Self::Pending => 0,
            Self::Running => 16,
            Self::Stopping => 64,
            Self::Stopped => 80,
        }
    }

    /// Whether the computer is billed while in this state: from the moment it starts pending
    /// until it is stopped (EC2's rule, which Lightsail's hourly compute follows).
    pub fn is_billed(self) -> bool {
        self != Self::Stopped
    }

    /// Where a transitional state settles.
    fn settled(self) -> Self {
        match self {
            Self::Pending => Self::Running,
            Self::Stopping => Self::Stopped,
            other => other,
        }
    }
}

impl std::fmt::Display for InstanceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One transition: at `at` the computer entered `entered`; a `pending` or `stopping` one settles
/// at `settles_at` (for the others it equals `at`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Transition {
    at: i64,
    entered: InstanceState,
    settles_at: i64,
}

impl Transition {
    fn state_at(self, now: i64) -> InstanceState {
        if now >= self.settles_at {
            self.entered.settled()
        } else {
            self.entered
        }
    }
}

/// Why a start or stop was refused: the state it found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Refused(pub InstanceState);

/// A computer's power history, oldest first; never empty.
#[derive(Clone, Debug)]
pub(crate) struct Power {
    transitions: Vec<Transition>,
}

impl Power {
    /// A computer that entered `state` at `now`; `pending` and `stopping` settle after the
    /// given times.
    pub(crate) fn new(now: i64, state: InstanceState, starting: i64, stopping: i64) -> Self {
        let mut power = Self {
            transitions: Vec::new(),
        };
        power.set(now, state, starting, stopping);
        power
    }

    fn latest(&self) -> Option<Transition> {
        self.transitions.last().copied()
    }

    /// The state at `now` (not before the latest transition).
    pub(crate) fn state_at(&self, now: i64) -> InstanceState {
        self.latest()
            .map_or(InstanceState::Stopped, |latest| latest.state_at(now))
    }

    /// When the current state was entered, as of `now`: the settle time once a transition has
    /// settled.
    pub(crate) fn state_since(&self, now: i64) -> i64 {
        self.latest().map_or(now, |latest| {
            if now >= latest.settles_at {
                latest.settles_at
            } else {
                latest.at
            }
        })
    }

    /// When the computer last began to stop (or was set stopped), if ever: a GUI session
    /// started before then has ended.
    pub(crate) fn last_stop_at(&self) -> Option<i64> {
        self.transitions
            .iter()
            .rev()
            .find(|t| matches!(t.entered, InstanceState::Stopping | InstanceState::Stopped))
            .map(|t| t.at)
    }

    /// `StartInstance`: only a stopped computer starts; it is `pending` for `starting`
    /// milliseconds. Returns when it will be running.
    pub(crate) fn start(&mut self, now: i64, starting: i64) -> Result<i64, Refused> {
        match self.state_at(now) {
            InstanceState::Stopped => {
                let running_at = now.saturating_add(starting);
                self.push(now, InstanceState::Pending, running_at);
                Ok(running_at)
            }
            other => Err(Refused(other)),
        }
    }

    /// `StopInstance` (and the idle rule): a running or pending computer is `stopping` for
    /// `stopping` milliseconds; `force` stops a `stopping` one at once. Returns when it will be
    /// stopped.
    pub(crate) fn stop(&mut self, now: i64, stopping: i64, force: bool) -> Result<i64, Refused> {
        match self.state_at(now) {
            InstanceState::Running | InstanceState::Pending => {
                let stopped_at = now.saturating_add(stopping);
                self.push(now, InstanceState::Stopping, stopped_at);
                Ok(stopped_at)
            }
            InstanceState::Stopping if force => {
                self.push(now, InstanceState::Stopped, now);
                Ok(now)
            }
            other => Err(Refused(other)),
        }
    }

    /// Puts the computer in `state` at `now`, whatever it was (a person in the console, or
    /// the spec's initial state): `pending` and `stopping` then settle as a start or stop
    /// would.
    pub(crate) fn set(&mut self, now: i64, state: InstanceState, starting: i64, stopping: i64) {
        let settles_at = match state {
            InstanceState::Pending => now.saturating_add(starting),
            InstanceState::Stopping => now.saturating_add(stopping),
            InstanceState::Running | InstanceState::Stopped => now,
        };
        self.push(now, state, settles_at);
    }

    fn push(&mut self, at: i64, entered: InstanceState, settles_at: i64) {
        self.transitions.push(Transition {
            at,
            entered,
            settles_at,
        });
    }

    /// Forgets the history before `now`, keeping the state (and a transition under way):
    /// the meter starts again from `now`.
    pub(crate) fn restart_meter(&mut self, now: i64) {
        if let Some(latest) = self.latest() {
            let at = latest.at.max(now);
            let settles_at = latest.settles_at.max(at);
            self.transitions = vec![Transition {
                at,
                entered: latest.entered,
                settles_at,
            }];
        }
    }

    /// The billed intervals up to `now`, oldest first, disjoint and merged where they touch: the
    /// time spent `pending`, `running` or `stopping`. The last one ends at `now` while the
    /// computer is still billed.
    pub(crate) fn billed_intervals(&self, now: i64) -> Vec<Interval> {
        let mut billed: Vec<Interval> = Vec::new();
        for (index, transition) in self.transitions.iter().enumerate() {
            let next = self
                .transitions
                .get(index + 1)
                .map_or(now, |next| next.at)
                .min(now);
            let end = match transition.entered {
                InstanceState::Pending | InstanceState::Running => next,
                InstanceState::Stopping => transition.settles_at.min(next),
                InstanceState::Stopped => transition.at,
            };
            if end <= transition.at {
                continue;
            }
            match billed.last_mut() {
                Some(last) if last.end >= transition.at => last.end = last.end.max(end),
                _ => billed.push(Interval::new(transition.at, end)),
            }
        }
        billed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use InstanceState::{Pending, Running, Stopped, Stopping};

    const START: i64 = 200;
    const STOP: i64 = 300;

    #[test]
    fn codes_and_names_are_ec2s() {
        let wire: Vec<(i32, &str)> = InstanceState::ALL
            .iter()
            .map(|s| (s.code(), s.name()))
            .collect();
        assert_eq!(
            wire,
            [
                (0, "pending"),
                (16, "running"),
                (64, "stopping"),
                (80, "stopped")
            ]
        );
        assert_eq!(
            serde_json::to_value(Stopping).ok(),
            Some(serde_json::json!("stopping"))
        );
        assert_eq!(InstanceState::default(), Running);
    }

    #[test]
    fn a_start_is_pending_for_the_starting_time_then_running() {
        let mut power = Power::new(0, Stopped, START, STOP);
        assert_eq!(power.state_at(1_000), Stopped);
        assert_eq!(power.start(1_000, START), Ok(1_200));
        assert_eq!(power.state_at(1_000), Pending);
        assert_eq!(power.state_at(1_199), Pending);
        assert_eq!(power.state_at(1_200), Running);
        assert_eq!(power.state_since(1_500), 1_200);
        // Only a stopped computer starts.
        assert_eq!(power.start(1_100, START), Err(Refused(Pending)));
        assert_eq!(power.start(1_300, START), Err(Refused(Running)));
    }

    #[test]
    fn a_stop_is_stopping_for_the_stopping_time_then_stopped_and_force_cuts_it_short() {
        let mut power = Power::new(0, Running, START, STOP);
        assert_eq!(power.stop(1_000, STOP, false), Ok(1_300));
        assert_eq!(power.state_at(1_299), Stopping);
        assert_eq!(power.state_at(1_300), Stopped);
        assert_eq!(power.last_stop_at(), Some(1_000));
        // Stopping or stopped again is refused; force stops a stopping one at once.
        let mut stuck = Power::new(0, Running, START, STOP);
        assert_eq!(stuck.stop(10, 1_000_000, false), Ok(1_000_010));
        assert_eq!(stuck.stop(20, STOP, false), Err(Refused(Stopping)));
        assert_eq!(stuck.stop(30, STOP, true), Ok(30));
        assert_eq!(stuck.state_at(30), Stopped);
        assert_eq!(stuck.stop(40, STOP, true), Err(Refused(Stopped)));
        // A pending computer may be stopped.
        let mut starting = Power::new(0, Pending, START, STOP);
        assert_eq!(starting.state_at(100), Pending);
        assert_eq!(starting.stop(100, STOP, false), Ok(400));
    }

    #[test]
    fn set_states_settle_like_starts_and_stops() {
        let mut power = Power::new(0, Stopping, START, STOP);
        assert_eq!(power.state_at(299), Stopping);
        assert_eq!(power.state_at(300), Stopped);
        power.set(1_000, Pending, START, STOP);
        assert_eq!(power.state_at(1_199), Pending);
        assert_eq!(power.state_at(1_200), Running);
        power.set(2_000, Stopped, START, STOP);
        assert_eq!(power.state_at(2_000), Stopped);
        assert_eq!(power.last_stop_at(), Some(2_000));
        assert_eq!(Power::new(5, Running, START, STOP).last_stop_at(), None);
    }

    #[test]
    fn pending_running_and_stopping_are_billed_stopped_is_not() {
        let mut power = Power::new(0, Stopped, START, STOP);
        assert_eq!(power.billed_intervals(500), []);
        assert!(power.start(1_000, START).is_ok()); // pending 1000..1200, running after
        assert!(power.stop(5_000, STOP, false).is_ok()); // stopping 5000..5300
        assert_eq!(power.billed_intervals(4_000), [Interval::new(1_000, 4_000)]);
        assert_eq!(power.billed_intervals(5_100), [Interval::new(1_000, 5_100)]);
        assert_eq!(power.billed_intervals(9_000), [Interval::new(1_000, 5_300)]);
        assert!(power.start(10_000, START).is_ok());
        assert_eq!(
            power.billed_intervals(10_500),
            [Interval::new(1_000, 5_300), Interval::new(10_000, 10_500)]
        );
        // A forced stop ends the stopping time early.
        assert!(power.stop(11_000, 60_000, false).is_ok());
        assert!(power.stop(11_100, STOP, true).is_ok());
        assert_eq!(
            power.billed_intervals(20_000),
            [Interval::new(1_000, 5_300), Interval::new(10_000, 11_100)]
        );
    }

    #[test]
    fn restarting_the_meter_keeps_the_state_and_a_transition_under_way() {
        let mut power = Power::new(0, Running, START, STOP);
        assert!(power.stop(1_000, STOP, false).is_ok());
        power.restart_meter(1_100);
        assert_eq!(power.state_at(1_200), Stopping);
        assert_eq!(power.state_at(1_300), Stopped);
        assert_eq!(power.billed_intervals(2_000), [Interval::new(1_100, 1_300)]);
        let mut running = Power::new(0, Running, START, STOP);
        running.restart_meter(5_000);
        assert_eq!(running.state_at(5_000), Running);
        assert_eq!(
            running.billed_intervals(6_000),
            [Interval::new(5_000, 6_000)]
        );
    }
}
