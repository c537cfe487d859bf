//! After an unconfirmed start: looking up the resource's operations and adopting the one that
//! start made, so that no window gets two sessions.

use jiff::Timestamp;

use super::{Effect, Machine, Next, Target, Transition, add};
use crate::aws::errors::LightsailError;
use crate::guisession::types::{Operation, PendingStart};

impl Machine<'_> {
    pub(super) fn looked_up(
        mut self,
        target: Target,
        looked_at: Timestamp,
        result: Result<Vec<Operation>, LightsailError>,
    ) -> Transition {
        // The answer only matters while the object still needs a lookup: applied again to a
        // fresher status (after a write conflict) that records a session, it must not start.
        let observed = self.fork().observe();
        if observed.effect != Effect::Lookup(target.clone()) {
            return observed;
        }
        if let Some(pending) = &self.status.pending_start
            && looked_at < self.settle_end(pending)
        {
            // Looked up before the pending start's call was sure to have landed (or to never
            // be sent): the answer may miss it. Look again.
            return self.finish(Effect::Lookup(target));
        }
        let operations = match result {
            Ok(operations) => operations,
            Err(error) => return self.failed(error, false),
        };
        if let Some(pending) = &self.status.pending_start
            && self.adoptable(&operations, Some(pending)).is_none()
            && looked_at < self.late_landing_end(pending)
        {
            // A call that timed out at the client may still reach Lightsail a little after the
            // settle window: a pending start gets a second lookup before anyone starts anew.
            let again = self.late_landing_end(pending);
            return self.done(Next::At(again));
        }
        let pending = self.status.pending_start.take();
        let Some(op) = self.adoptable(&operations, pending.as_ref()).cloned() else {
            if self.stops_at_a_closed_window() {
                // Looked up to stop what a start at the close made: nothing came of it, and
                // nothing starts outside the window.
                return self.observe();
            }
            // Nothing to adopt: start, taking the fence over from a writer that did not finish.
            self.status.pending_start = pending;
            return self.start(target);
        };
        let started_at = match &pending {
            // The session this object's own start made: it cannot have begun before the fence.
            Some(p) => {
                self.status.last_start_at = Some(p.requested_at);
                p.requested_at
            }
            None => op.created_at.map_or(self.stamp(), |c| c.min(self.stamp())),
        };
        self.note(
            false,
            "SessionAdopted",
            "Adopt",
            format!(
                "adopted the GUI session of {} (operation {}) instead of starting another",
                target.resource_name,
                op.id.as_deref().unwrap_or("?")
            ),
        );
        self.record(&target, op, started_at)
    }

    /// The StartGUISession operation to adopt instead of starting: the newest start that did not
    /// fail, that no later StopGUISession ended, that is not the recorded operation or older
    /// than it, and that is still young (with a pending start: that plausibly came from it).
    /// Operations may come in any order.
    pub(super) fn adoptable<'o>(
        &self,
        operations: &'o [Operation],
        pending: Option<&PendingStart>,
    ) -> Option<&'o Operation> {
        let (created, op) = operations
            .iter()
            .filter(|op| op.is_start() && !op.failed())
            .filter_map(|op| op.created_at.map(|c| (c, op)))
            .max_by_key(|(created, _)| *created)?;
        let stopped_after = operations
            .iter()
            .filter(|o| o.is_stop() && !o.failed())
            .filter_map(|o| o.created_at)
            .any(|stopped| stopped > created);
        if stopped_after {
            return None;
        }
        if let Some(recorded) = &self.status.operation
            && (recorded.id.is_some() && recorded.id == op.id
                || recorded.created_at.is_some_and(|r| created <= r))
        {
            return None;
        }
        let recorded_created = self.status.operation.as_ref().and_then(|r| r.created_at);
        let young = match (pending, recorded_created) {
            // Newer than the last recorded session (both on Lightsail's clock), with a start
            // pending: that start's session, or one made after it.
            (Some(_), Some(_)) => true,
            // A first start: Lightsail's clock may differ from ours by up to a session age.
            (Some(p), None) => {
                created
                    >= p.requested_at
                        .checked_sub(self.max_age())
                        .unwrap_or(Timestamp::MIN)
            }
            (None, _) => self.now < add(created, self.max_age()),
        };
        young.then_some(op)
    }
}
