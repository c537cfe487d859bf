//! `spec.computer.idleStop`: the computer's StopInstanceOnIdle rule, read with GetInstance and
//! set with EnableAddOn only when it differs from the spec.

use super::computer::pick;
use super::{Effect, Machine, Target, Transition};
use crate::aws::errors::LightsailError;
use crate::aws::model::Action;
use crate::guisession::types::{IdleStopStatus, Operation};

impl Machine<'_> {
    /// `spec.computer.idleStop`: the effect that brings the computer's rule in line, when it
    /// differs from what was last read (read again first, unless just read).
    pub(super) fn idle_stop_effect(&self, target: &Target) -> Option<Effect> {
        let want = self.view.spec.computer.as_ref()?.idle_stop.as_ref()?;
        let minutes = want.minutes()?;
        let computer = self.status.computer.as_ref();
        let recorded = computer.and_then(|c| c.idle_stop.as_ref());
        let same = |sent: Option<&String>, wanted: f64| {
            sent.and_then(|s| s.trim().parse::<f64>().ok())
                .is_some_and(|v| (v - wanted).abs() < 1e-9)
        };
        let matches = recorded.is_some_and(|r| {
            !r.status
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("disabled"))
                && same(r.threshold.as_ref(), f64::from(want.threshold))
                && same(r.duration.as_ref(), minutes as f64)
        });
        if matches {
            return None;
        }
        if self.fresh(computer.and_then(|c| c.add_ons_checked_at)) {
            return Some(Effect::EnableIdleStop {
                target: target.clone(),
                threshold: want.threshold.to_string(),
                duration: minutes.to_string(),
            });
        }
        Some(Effect::CheckComputer {
            target: target.clone(),
            add_ons: true,
            before_start: None,
        })
    }

    /// EnableAddOn answered.
    pub(super) fn idle_stop_answered(
        mut self,
        target: Target,
        threshold: String,
        duration: String,
        result: Result<Vec<Operation>, LightsailError>,
    ) -> Transition {
        if target != self.target() {
            return self.observe();
        }
        let operations = match result {
            Ok(operations) => operations,
            Err(error) => return self.failed(error, false),
        };
        self.note(
            false,
            "IdleStopSet",
            "EnableAddOn",
            format!(
                "the computer {} stops after {duration} idle minutes at or below {threshold}% CPU",
                target.resource_name
            ),
        );
        let c = self.computer();
        c.idle_stop = Some(IdleStopStatus {
            status: Some("Enabled".into()),
            threshold: Some(threshold),
            duration: Some(duration),
        });
        if let Some(op) = pick(operations, Action::EnableAddOn) {
            c.operation = Some(op);
        }
        self.observe()
    }
}
