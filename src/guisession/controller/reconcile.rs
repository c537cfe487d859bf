//! One reconcile of one GuiSession: read what is known, ask the policy, perform the one piece of
//! I/O it names, feed the outcome back, until the policy says when to come back.

use kube::{Resource, ResourceExt};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::ObjectRef;
use serde_json::json;
use tracing::{debug, info, warn};

use super::effects::Flow;
use super::{
    AccountUse, Error, FINALIZER, MAX_CONFLICTS, MAX_STEPS, Reconcile, ScopeKey, is_status,
    own_identity_refusal,
};
use crate::account::policy::NamespaceSelector;
use crate::account::policy::{AccountFound, AccountRefusal, check_account};
use crate::account::types::AccountKey;
use crate::account::types::edge_key;
use crate::aws::lightsail::{Permit, Scope};
use crate::aws::model::Action;
use crate::guisession::policy::{
    AccountView, Effect, Input, Next, Note, SKIP_STOP_ANNOTATION, Target, Transition, View,
    transition, until,
};
use crate::guisession::types::{AccountKind, GuiSession, GuiSessionStatus};
use crate::kubernetes::FIELD_MANAGER;
use crate::kubernetes::namespace_labels;

impl Reconcile<'_> {
    pub(super) fn transition(&self, input: Input, now: Timestamp) -> Transition {
        let default_status = GuiSessionStatus::default();
        let meta = self.obj.meta();
        let name = self.obj.name_any();
        let unconfirmed = self.ctx.unconfirmed_of(&self.obj);
        let view = View {
            name: &name,
            spec: &self.obj.spec,
            status: self.obj.status.as_ref().unwrap_or(&default_status),
            generation: meta.generation,
            deleting: meta.deletion_timestamp.is_some(),
            has_finalizer: self.obj.finalizers().iter().any(|f| f == FINALIZER),
            skip_stop: self
                .obj
                .annotations()
                .get(SKIP_STOP_ANNOTATION)
                .is_some_and(|v| v == "true"),
            access_secret: self.secret,
            account: match &self.account {
                AccountUse::Own | AccountUse::Loading => AccountView::Own,
                AccountUse::Usable { region, .. } => AccountView::Usable {
                    region: region.as_deref(),
                },
                AccountUse::Refused(r) => AccountView::Refused(r),
            },
            unconfirmed: unconfirmed.as_ref(),
        };
        transition(&view, input, now, &self.ctx.settings)
    }

    /// Which client a permit for `target` belongs to: its account and Region.
    pub(super) fn scope_key(&self, target: &crate::guisession::policy::Target) -> ScopeKey {
        let scope = self.scope(target);
        (
            scope.account.map(str::to_owned),
            scope.region.map(str::to_owned),
        )
    }

    /// Where Lightsail calls for `target` go.
    pub(super) fn scope<'t>(&'t self, target: &'t crate::guisession::policy::Target) -> Scope<'t> {
        Scope {
            account: match &self.account {
                AccountUse::Usable { edge, .. } => Some(edge.as_str()),
                _ => None,
            },
            region: target.region.as_deref(),
        }
    }

    /// The account `spec.accountRef` names, as the caches and the Lightsail edge know it.
    pub(super) fn resolve_account(&self) -> AccountUse {
        let namespace = self.obj.namespace().unwrap_or_default();
        // At the start of a leadership term the account caches are empty until their first
        // list: an account judged from them then would look missing. The object waits; the
        // lists, once in, wake it (every account and namespace is news to a new term).
        let stores = self.ctx.account_stores();
        let unfilled = stores.as_ref().is_some_and(|s| !s.filled());
        let Some(reference) = &self.obj.spec.account_ref else {
            if unfilled && matches!(self.ctx.own_identity, NamespaceSelector::Matching(_)) {
                return AccountUse::Loading;
            }
            let labels = stores.map(|stores| namespace_labels(&stores.namespaces, &namespace));
            return match own_identity_refusal(&self.ctx.own_identity, &namespace, labels) {
                None => AccountUse::Own,
                Some(refusal) => AccountUse::Refused(refusal),
            };
        };
        let key = AccountKey::of(reference, &namespace);
        if unfilled {
            return AccountUse::Loading;
        }
        let Some(stores) = stores else {
            return AccountUse::Refused(AccountRefusal {
                reason: "AccountNotReady",
                message: "this operator does not watch LightsailAccounts".into(),
                pending: false,
            });
        };
        let namespaced;
        let cluster;
        let found = match reference.kind {
            AccountKind::LightsailAccount => {
                namespaced = stores
                    .namespaced
                    .get(&ObjectRef::new(&reference.name).within(&namespace));
                namespaced.as_deref().map(AccountFound::Namespaced)
            }
            AccountKind::ClusterLightsailAccount => {
                cluster = stores.cluster.get(&ObjectRef::new(&reference.name));
                cluster.as_deref().map(|a| {
                    let labels = namespace_labels(&stores.namespaces, &namespace);
                    AccountFound::Cluster(a, a.spec.namespaces.allows(&namespace, &labels))
                })
            }
        };
        match check_account(&key, found) {
            Err(refusal) => AccountUse::Refused(refusal),
            Ok(spec) => {
                let edge = edge_key(&key);
                if self.ctx.lightsail.account_loaded(&edge) {
                    AccountUse::Usable {
                        edge,
                        region: spec.region.clone(),
                    }
                } else {
                    AccountUse::Loading
                }
            }
        }
    }

    pub(super) async fn run(mut self) -> Result<Requeue, Error> {
        self.account = self.resolve_account();
        if self.account == AccountUse::Loading {
            debug!(
                name = self.obj.name_any(),
                "waiting for the account's credentials to be loaded"
            );
            return Ok(Requeue::await_change());
        }
        (self.secret, self.secret_version) = self.read_secret().await?;
        let mut input = Input::Observed;
        // A rate-limit permit carries the client of one account and Region: it is kept only for
        // the target it was taken for.
        let mut permit: Option<(Permit, ScopeKey)> = None;
        let mut conflicts = 0;
        for _ in 0..MAX_STEPS {
            let now = Timestamp::now();
            let decided_at = Instant::now();
            let step = self.transition(input.clone(), now);
            debug!(
                namespace = self.obj.namespace().unwrap_or_default(),
                name = self.obj.name_any(),
                effect = ?step.effect,
                "reconciling"
            );
            let fenced = match &step.effect {
                Effect::Start(target) => Some((target, Action::StartGuiSession)),
                Effect::StartComputer(target) => Some((target, Action::StartInstance)),
                _ => None,
            };
            if let Some((target, action)) = fenced
                && permit
                    .as_ref()
                    .is_none_or(|(p, key)| *key != self.scope_key(target) || p.action() != action)
            {
                // The rate-limit wait comes before the fence, then the decision is made again
                // with the time after it: the fence must be fresh when the call goes out.
                match self.take_permit(target, action, &mut permit).await {
                    Flow::Next(next) => input = *next,
                    Flow::Proceed | Flow::Again => {}
                    Flow::Exit(result) => return result,
                }
                continue;
            }
            match self.write(&step, &mut conflicts).await {
                Flow::Proceed => {}
                Flow::Next(next) => input = *next,
                Flow::Again => continue,
                Flow::Exit(result) => return result,
            }
            self.ctx.settle_unconfirmed(&self.obj);
            self.publish(&step.notes).await;
            match self.perform(step, &mut permit, decided_at).await {
                Flow::Next(next) => input = *next,
                Flow::Proceed | Flow::Again => continue,
                Flow::Exit(result) => return result,
            }
        }
        // Not expected: every path ends within a few steps. Come back soon rather than never.
        Ok(Requeue::requeue(self.ctx.settings.follow_backoff_initial))
    }

    /// The rate-limit permit for a start to `target`, taken before its fence is written.
    async fn take_permit(
        &self,
        target: &Target,
        action: Action,
        permit: &mut Option<(Permit, ScopeKey)>,
    ) -> Flow {
        if !self.ctx.leader.may_mutate() {
            return Flow::Exit(Ok(self.not_leader()));
        }
        match self.ctx.lightsail.permit(self.scope(target), action).await {
            Ok(p) => {
                *permit = Some((p, self.scope_key(target)));
                Flow::Again
            }
            Err(e) if action == Action::StartInstance => {
                Flow::Next(Box::new(Input::ComputerStartAnswered {
                    target: target.clone(),
                    fence: None,
                    result: Err(e),
                }))
            }
            Err(e) => Flow::Next(Box::new(Input::StartAnswered {
                target: target.clone(),
                fence: None,
                result: Err(e),
            })),
        }
    }

    /// Writes what the step changes. A conflict means someone else changed the object since it
    /// was read: read it again and decide again on what is there now, with the same input (its
    /// account may have changed with it).
    async fn write(&mut self, step: &Transition, conflicts: &mut u32) -> Flow {
        match self.apply(step).await {
            Ok(()) => Flow::Proceed,
            Err(e) if is_status(&e, 409) => {
                *conflicts += 1;
                self.ctx.metrics.count_status_conflict();
                if *conflicts > MAX_CONFLICTS {
                    return Flow::Exit(Err(Error::Conflicts(*conflicts)));
                }
                self.obj = match self.api.get(&self.obj.name_any()).await {
                    Ok(obj) => obj,
                    Err(e) => return Flow::Exit(Err(e.into())),
                };
                self.account = self.resolve_account();
                if self.account == AccountUse::Loading {
                    return Flow::Exit(Ok(Requeue::await_change()));
                }
                Flow::Again
            }
            Err(e) if is_status(&e, 404) => Flow::Exit(Ok(Requeue::await_change())),
            Err(e) => Flow::Exit(Err(e)),
        }
    }

    pub(super) fn not_leader(&self) -> Requeue {
        debug!(
            name = self.obj.name_any(),
            "not the leader: leaving the Lightsail call to the leader"
        );
        Requeue::requeue(self.ctx.settings.start_settle)
    }

    pub(super) fn requeue(&self, next: Next) -> Result<Requeue, Error> {
        match next {
            // Never zero: the state machine only asks for future instants.
            Next::At(at) => Ok(Requeue::requeue(
                until(Timestamp::now(), at).max(Duration::from_millis(100)),
            )),
            Next::After(d) => Ok(Requeue::requeue(d.max(Duration::from_millis(100)))),
            Next::Change => Ok(Requeue::await_change()),
            Next::Retry(e) => Err(Error::Lightsail(e)),
        }
    }

    /// The finalizer change, then the status when it changed, each with a precondition on the
    /// resourceVersion the transition was computed from. Every answer becomes the new view.
    pub(super) async fn apply(&mut self, step: &Transition) -> Result<(), Error> {
        if let Some(add) = step.finalizer {
            let mut finalizers: Vec<String> = self
                .obj
                .finalizers()
                .iter()
                .filter(|f| *f != FINALIZER)
                .cloned()
                .collect();
            if add {
                finalizers.push(FINALIZER.to_owned());
            }
            let patch = json!({
                "metadata": {
                    "finalizers": finalizers,
                    "resourceVersion": self.obj.resource_version(),
                }
            });
            self.obj = self
                .api
                .patch(
                    &self.obj.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
        }
        let current = self.obj.status.clone().unwrap_or_default();
        if step.status == current {
            // A write that changes nothing still costs an etcd write and a watch event for
            // every watcher, GitOps tools included.
            return Ok(());
        }
        let patch = json!({
            "apiVersion": GuiSession::api_version(&()),
            "kind": GuiSession::kind(&()),
            "metadata": {
                "name": self.obj.name_any(),
                "resourceVersion": self.obj.resource_version(),
            },
            "status": step.status,
        });
        self.obj = self
            .api
            .patch_status(
                &self.obj.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
        self.ctx.metrics.count_status_write();
        // A renewal recorded: how long after the old session's expiry it was decided.
        if let (Some(due), Some(renewed)) =
            (current.session_expires_at, step.status.session_started_at)
            && current.session_started_at.is_some_and(|old| old != renewed)
        {
            self.ctx
                .metrics
                .observe_renewal_lateness(until(due, renewed));
        }
        Ok(())
    }

    pub(super) async fn publish(&self, notes: &[Note]) {
        for note in notes {
            let namespace = self.obj.namespace().unwrap_or_default();
            let name = self.obj.name_any();
            if note.warning {
                warn!(namespace, name, reason = note.reason, "{}", note.message);
            } else {
                info!(namespace, name, reason = note.reason, "{}", note.message);
            }
            let reference: ObjectReference = self.obj.object_ref(&());
            let event = Event {
                type_: if note.warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: note.reason.to_owned(),
                note: Some(note.message.clone()),
                action: note.action.to_owned(),
                secondary: None,
            };
            // An Event that cannot be written must not fail the reconcile that it reports on.
            let recorder = Recorder::new(self.ctx.client.clone(), self.ctx.reporter.clone());
            if let Err(e) = recorder.publish(&event, &reference).await {
                warn!(name, error = %e, "cannot publish event");
            }
        }
    }
}
