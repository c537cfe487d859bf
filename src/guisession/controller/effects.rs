//! Performing the one effect a transition names: a Lightsail call, a Secret write or delete, or
//! the requeue that ends the reconcile. The outcome goes back to the policy as the next input.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action as Requeue;
use tracing::{debug, warn};

use super::{Error, Reconcile, ScopeKey, SecretVersion};
use crate::aws::lightsail::Permit;
use crate::guisession::policy::{
    Effect, Input, Next, SecretSeen, Target, Transition, UnconfirmedStart,
};
use crate::guisession::types::PendingStart;

/// What a reconcile does after one part of a step.
pub(super) enum Flow {
    /// Go on with this step.
    Proceed,
    /// Decide again, on this input.
    Next(Box<Input>),
    /// Decide again, on the same input.
    Again,
    /// End the reconcile with this result.
    Exit(Result<Requeue, Error>),
}

impl Reconcile<'_> {
    /// Performs the effect of a step whose status is written.
    pub(super) async fn perform(
        &mut self,
        step: Transition,
        permit: &mut Option<(Permit, ScopeKey)>,
        decided_at: Instant,
    ) -> Flow {
        let input = match step.effect {
            Effect::Done(next) => return Flow::Exit(self.requeue(next)),
            Effect::Confirm { start, after } => return self.confirm(*start, after).await,
            Effect::Start(target) => {
                let fence = step.status.pending_start.clone();
                return self.send_start(target, fence, permit, decided_at).await;
            }
            Effect::StartComputer(target) => {
                let fence = step
                    .status
                    .computer
                    .as_ref()
                    .and_then(|c| c.pending_start.clone());
                return self
                    .send_computer_start(target, fence, permit, decided_at)
                    .await;
            }
            Effect::CheckComputer {
                target,
                add_ons,
                before_start,
            } => {
                let at = Timestamp::now();
                let scope = self.scope(&target);
                let result = if add_ons {
                    self.ctx
                        .lightsail
                        .get_instance(scope, &target.resource_name)
                        .await
                } else {
                    self.ctx
                        .lightsail
                        .get_instance_state(scope, &target.resource_name)
                        .await
                };
                Input::ComputerChecked {
                    target,
                    at,
                    before_start,
                    result,
                }
            }
            Effect::StopComputer(target) => {
                if !self.ctx.leader.may_mutate() {
                    return Flow::Exit(Ok(self.not_leader()));
                }
                let result = self
                    .ctx
                    .lightsail
                    .stop_instance(self.scope(&target), &target.resource_name)
                    .await;
                if result.is_ok() {
                    self.ctx.metrics.count_computer_stop();
                }
                Input::ComputerStopAnswered { target, result }
            }
            Effect::PollComputer {
                target,
                operation_id,
            } => Input::ComputerPolled {
                result: self
                    .ctx
                    .lightsail
                    .get_operation(self.scope(&target), &operation_id)
                    .await,
                target,
            },
            Effect::EnableIdleStop {
                target,
                threshold,
                duration,
            } => {
                if !self.ctx.leader.may_mutate() {
                    return Flow::Exit(Ok(self.not_leader()));
                }
                let result = self
                    .ctx
                    .lightsail
                    .enable_idle_stop(
                        self.scope(&target),
                        &target.resource_name,
                        &threshold,
                        &duration,
                    )
                    .await;
                Input::IdleStopAnswered {
                    target,
                    threshold,
                    duration,
                    result,
                }
            }
            Effect::Poll {
                target,
                operation_id,
            } => Input::Polled(
                self.ctx
                    .lightsail
                    .get_operation(self.scope(&target), &operation_id)
                    .await,
            ),
            Effect::Lookup(target) => {
                let at = Timestamp::now();
                let result = self
                    .ctx
                    .lightsail
                    .operations_for_resource(self.scope(&target), &target.resource_name)
                    .await;
                Input::LookedUp { target, at, result }
            }
            Effect::Access(target) => Input::AccessAnswered {
                result: self
                    .ctx
                    .lightsail
                    .create_gui_session_access_details(self.scope(&target), &target.resource_name)
                    .await,
                target,
            },
            Effect::WriteSecret(secret) => {
                let result = self.write_secret(&secret).await;
                if let Ok(written) = &result {
                    self.secret = SecretSeen::Ours {
                        session_started_at: Some(secret.session_started_at),
                        intact: true,
                    };
                    self.secret_version = SecretVersion::of(written);
                }
                let result = result.map(|_| ());
                Input::SecretWritten {
                    access: secret.access,
                    result,
                }
            }
            Effect::DeleteSecret(name) => Input::SecretDeleted(self.delete_secret(&name).await),
            Effect::Stop(target) => {
                if !self.ctx.leader.may_mutate() {
                    return Flow::Exit(Ok(self.not_leader()));
                }
                Input::StopAnswered(
                    self.ctx
                        .lightsail
                        .stop_gui_session(self.scope(&target), &target.resource_name)
                        .await
                        .map(|_| ()),
                )
            }
        };
        Flow::Next(Box::new(input))
    }

    /// A start was answered and its fence replaced by the operation: it is kept until the watch
    /// shows it, and recorded with its first poll.
    async fn confirm(&mut self, start: UnconfirmedStart, after: Duration) -> Flow {
        debug!(
            namespace = self.obj.namespace().unwrap_or_default(),
            name = self.obj.name_any(),
            operation = start.operation.id.as_deref().unwrap_or_default(),
            "start answered; recording it with its first poll"
        );
        let operation_id = start.operation.id.clone().unwrap_or_default();
        let scope_target = start.target.clone();
        self.ctx.keep_unconfirmed(&self.obj, start);
        if !self.ctx.is_draining() {
            return Flow::Exit(self.requeue(Next::After(after)));
        }
        // Shutting down: no later reconcile will record this start, so this one polls it
        // (within the shutdown grace) instead of leaving it to the lookup of the next leader.
        tokio::time::sleep(after).await;
        Flow::Next(Box::new(Input::Polled(
            self.ctx
                .lightsail
                .get_operation(self.scope(&scope_target), &operation_id)
                .await,
        )))
    }

    /// Sends StartInstance behind its written fence, under the same rules as a session start.
    async fn send_computer_start(
        &mut self,
        target: Target,
        fence: Option<PendingStart>,
        permit: &mut Option<(Permit, ScopeKey)>,
        decided_at: Instant,
    ) -> Flow {
        let permit = match self.fenced_permit(&target, permit, decided_at) {
            Ok(permit) => permit,
            Err(flow) => return flow,
        };
        let result = self
            .ctx
            .lightsail
            .start_instance(permit, &target.resource_name)
            .await;
        if result.is_ok() {
            self.ctx.metrics.count_computer_start();
        }
        Flow::Next(Box::new(Input::ComputerStartAnswered {
            target,
            fence,
            result,
        }))
    }

    /// The permit for a fenced call to `target`, while this replica leads and the call can
    /// still end inside the settle window; otherwise how the reconcile goes on.
    fn fenced_permit(
        &self,
        target: &Target,
        permit: &mut Option<(Permit, ScopeKey)>,
        decided_at: Instant,
    ) -> Result<Permit, Flow> {
        let Some((permit, key)) = permit.take() else {
            return Err(Flow::Again);
        };
        if key != self.scope_key(target) {
            // Not expected (the permit is taken for the decided target just before its fence),
            // but never send a start through another target's client.
            return Err(Flow::Again);
        }
        if !self.ctx.leader.may_mutate() {
            return Err(Flow::Exit(Ok(self.not_leader())));
        }
        if decided_at.elapsed() > self.ctx.start_budget {
            // Too late for the call to end inside the settle window. The fence stays; after the
            // window the state is read again and the start made anew.
            warn!(
                namespace = self.obj.namespace().unwrap_or_default(),
                name = self.obj.name_any(),
                "start fenced but not sent in time; retrying after the settle window"
            );
            return Err(Flow::Exit(Ok(Requeue::requeue(
                self.ctx.settings.start_settle,
            ))));
        }
        Ok(permit)
    }

    /// Sends StartGUISession behind its written fence, with the permit taken for this target,
    /// while this replica leads and while the call can still end inside the settle window.
    async fn send_start(
        &mut self,
        target: Target,
        fence: Option<PendingStart>,
        permit: &mut Option<(Permit, ScopeKey)>,
        decided_at: Instant,
    ) -> Flow {
        let permit = match self.fenced_permit(&target, permit, decided_at) {
            Ok(permit) => permit,
            Err(flow) => return flow,
        };
        let result = self
            .ctx
            .lightsail
            .start_gui_session(permit, &target.resource_name)
            .await;
        Flow::Next(Box::new(Input::StartAnswered {
            target,
            fence,
            result,
        }))
    }
}
