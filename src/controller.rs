//! The Kubernetes edge: reconciles GuiSessions (finalizer, status by server-side apply, Events)
//! by carrying out what [`decide`] says, through the [`Lightsail`] edge. Nothing here knows the
//! AWS SDK.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use crate::crd::{
    GuiSession, GuiSessionStatus, LastError, Operation, OperationStatus, rfc3339_seconds,
};
use crate::decision::{
    Decision, Settings, decide, effective_max_session_age, pick_adoptable, session_expiry,
    start_pending,
};
use crate::leadership::LeaderGate;
use crate::lightsail::{ErrorClass, Lightsail, LightsailError};
use crate::metrics::Metrics;
use crate::status::{Phase, conditions, phase_of_operation, reason_from_code};

/// Field manager of every status write (server-side apply).
pub const FIELD_MANAGER: &str = "lightsail-gui-operator";
/// Finalizer carried only by GuiSessions with `stopOnDelete`.
pub const FINALIZER: &str = "lightsail.operators.dev/stop-session";

/// Per-object exponential backoff after retryable errors.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    /// Delay after the `failures`-th consecutive failure: doubling from `initial`, capped at
    /// `max`, then "equal jitter" (between half and all of it) so that objects failing together
    /// do not retry together.
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        let base = self.initial.saturating_mul(1u32 << exp).min(self.max);
        base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Lightsail(#[from] LightsailError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("GuiSession has no namespace")]
    MissingNamespace,
    #[error("encoding status: {0}")]
    Encode(#[from] serde_json::Error),
}

impl Error {
    /// Label of the `reconciles` metric.
    pub fn metric_label(&self) -> String {
        match self {
            Error::Lightsail(e) => format!("lightsail_{}", e.code),
            Error::Kube(kube::Error::Api(s)) => format!("kube_{}", s.code),
            Error::Kube(_) => "kube".into(),
            Error::MissingNamespace => "missing_namespace".into(),
            Error::Encode(_) => "encode".into(),
        }
    }
}

/// Everything a reconcile needs, shared by all of them.
pub struct Context {
    pub client: kube::Client,
    pub lightsail: Arc<Lightsail>,
    /// Who reports Events. A `Recorder` is made per Event: kube's Recorder keeps every Event
    /// it published in a cache for series aggregation (about 2.5 KB per GuiSession, kept
    /// indefinitely in steady state, and scanned on every publish), which buys nothing here
    /// because an Event is only published when something changed.
    pub reporter: Reporter,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    pub retry: RetryPolicy,
    /// Checked right before every Lightsail mutation.
    pub leader: LeaderGate,
    failures: Mutex<HashMap<ObjectRef<GuiSession>, u32>>,
    /// Status this process wrote, by object, until the watch cache has caught up with it (see
    /// [`Context::fresh_status`]).
    written: Mutex<HashMap<ObjectRef<GuiSession>, (u64, GuiSessionStatus)>>,
}

impl Context {
    pub fn new(
        client: kube::Client,
        lightsail: Arc<Lightsail>,
        reporter: Reporter,
        metrics: Arc<Metrics>,
        settings: Settings,
        retry: RetryPolicy,
        leader: LeaderGate,
    ) -> Self {
        Context {
            client,
            lightsail,
            reporter,
            metrics,
            settings,
            retry,
            leader,
            failures: Mutex::default(),
            written: Mutex::default(),
        }
    }

    /// The status to decide on: the cached object's, unless this process wrote a newer one that
    /// the watch has not delivered yet. Deciding on a stale status could start a session twice.
    /// (resourceVersions are etcd revisions, so newer means larger; an unparsable one is trusted.)
    fn fresh_status(&self, obj: &GuiSession) -> Option<GuiSessionStatus> {
        let key = ObjectRef::from_obj(obj);
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((rv, status)) = written.get(&key) {
            let cached_rv = obj.resource_version().and_then(|v| v.parse::<u64>().ok());
            match cached_rv {
                Some(cached) if cached < *rv => return Some(status.clone()),
                _ => {
                    written.remove(&key);
                }
            }
        }
        obj.status.clone()
    }

    /// Called for every object the watch delivers: forgets a written status once the cache
    /// holds it (or something newer), so the map only holds writes still in flight instead of
    /// one status per object until its next reconcile, an hour later.
    pub fn watch_caught_up(&self, obj: &GuiSession) {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        if written.is_empty() {
            return;
        }
        let key = ObjectRef::from_obj(obj);
        let cached_rv = obj.resource_version().and_then(|v| v.parse::<u64>().ok());
        if let (Some((rv, _)), Some(cached)) = (written.get(&key), cached_rv)
            && cached >= *rv
        {
            written.remove(&key);
        }
    }

    fn remember_written(&self, obj: &GuiSession, rv: Option<String>, status: &GuiSessionStatus) {
        if let Some(rv) = rv.and_then(|v| v.parse::<u64>().ok()) {
            self.written
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(ObjectRef::from_obj(obj), (rv, status.clone()));
        }
    }

    fn next_backoff(&self, obj: &GuiSession) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(ObjectRef::from_obj(obj)).or_insert(0);
        *n = n.saturating_add(1);
        self.retry.delay(*n, rand::random::<f64>())
    }

    fn forget_failures(&self, obj: &GuiSession) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ObjectRef::from_obj(obj));
    }
}

/// The reconcile entry point for kube's Controller.
pub async fn reconcile(obj: Arc<GuiSession>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = Step::new(&obj, &ctx)?.run().await;
    let label = match &result {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.metric_label(),
    };
    ctx.metrics.observe_reconcile(&label, started.elapsed());
    if result.is_ok() {
        ctx.forget_failures(&obj);
    }
    result
}

/// What kube's Controller does after a failed reconcile: per-object backoff with jitter.
pub fn error_policy(obj: Arc<GuiSession>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.next_backoff(&obj);
    warn!(
        namespace = obj.namespace().unwrap_or_default(),
        name = obj.name_any(),
        error = %error,
        retry_in = ?delay,
        "reconcile failed"
    );
    Action::requeue(delay)
}

/// One reconcile of one object.
struct Step<'a> {
    obj: &'a GuiSession,
    ctx: &'a Context,
    api: Api<GuiSession>,
    status: GuiSessionStatus,
    now: Timestamp,
}

fn until(now: Timestamp, at: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
}

impl<'a> Step<'a> {
    fn new(obj: &'a GuiSession, ctx: &'a Context) -> Result<Self, Error> {
        let namespace = obj.namespace().ok_or(Error::MissingNamespace)?;
        Ok(Step {
            obj,
            ctx,
            api: Api::namespaced(ctx.client.clone(), &namespace),
            status: ctx.fresh_status(obj).unwrap_or_default(),
            now: Timestamp::now(),
        })
    }

    fn region(&self) -> Option<&str> {
        self.obj.spec.region.as_deref()
    }

    fn generation(&self) -> Option<i64> {
        self.obj.meta().generation
    }

    fn decide(&self, status: &GuiSessionStatus) -> Decision {
        decide(
            &self.obj.spec,
            Some(status),
            self.generation(),
            self.now,
            &self.ctx.settings,
            self.obj.meta().deletion_timestamp.is_some(),
        )
    }

    async fn run(mut self) -> Result<Action, Error> {
        let deleting = self.obj.meta().deletion_timestamp.is_some();
        if !deleting {
            self.sync_finalizer().await?;
        }
        let decision = self.decide(&self.status);
        debug!(
            namespace = self.obj.namespace().unwrap_or_default(),
            name = self.obj.name_any(),
            ?decision,
            "reconciling"
        );
        match decision {
            Decision::Nothing => {
                self.remove_finalizer().await?;
                Ok(Action::await_change())
            }
            Decision::Stop => self.stop().await,
            Decision::Suspended => {
                let status = self.status.clone();
                self.write(status, &Phase::Suspended).await?;
                Ok(Action::await_change())
            }
            Decision::WaitUntil(at) => {
                self.refresh().await?;
                Ok(Action::requeue(until(self.now, at)))
            }
            Decision::Follow { operation_id, .. } => self.follow(&operation_id).await,
            Decision::LookupForAdoption => self.lookup_then_start().await,
            Decision::Start => self.start().await,
        }
    }

    /// Keeps the finalizer in step with `spec.stopOnDelete` (metadata only; spec is never written).
    async fn sync_finalizer(&self) -> Result<(), Error> {
        let has = self.obj.finalizers().iter().any(|f| f == FINALIZER);
        if self.obj.spec.stop_on_delete && !has {
            let mut finalizers = self.obj.finalizers().to_vec();
            finalizers.push(FINALIZER.to_owned());
            self.patch_finalizers(finalizers).await
        } else if !self.obj.spec.stop_on_delete && has {
            self.remove_finalizer().await
        } else {
            Ok(())
        }
    }

    async fn remove_finalizer(&self) -> Result<(), Error> {
        if !self.obj.finalizers().iter().any(|f| f == FINALIZER) {
            return Ok(());
        }
        let finalizers: Vec<String> = self
            .obj
            .finalizers()
            .iter()
            .filter(|f| *f != FINALIZER)
            .cloned()
            .collect();
        self.patch_finalizers(finalizers).await
    }

    /// A merge patch carrying the resourceVersion, so a concurrent change to the list conflicts
    /// (and is retried) instead of being overwritten.
    async fn patch_finalizers(&self, finalizers: Vec<String>) -> Result<(), Error> {
        let patch = json!({
            "metadata": {
                "finalizers": finalizers,
                "resourceVersion": self.obj.resource_version(),
            }
        });
        self.api
            .patch(
                &self.obj.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        Ok(())
    }

    /// Condition note when the guard rail raised `maxSessionAge`.
    fn guard_rail_note(&self) -> Option<String> {
        let requested = crate::crd::parse_go_duration(&self.obj.spec.max_session_age).ok()?;
        let effective = effective_max_session_age(&self.obj.spec, &self.ctx.settings);
        (requested < effective).then(|| {
            format!(
                "maxSessionAge {} is below the operator's minimum session age; using {}",
                self.obj.spec.max_session_age,
                jiff::SignedDuration::try_from(effective)
                    .map(|d| format!("{d:#}"))
                    .unwrap_or_else(|_| format!("{effective:?}"))
            )
        })
    }

    /// Writes `status` with the conditions of `phase`, by server-side apply, unless nothing
    /// changed (a status write that changes nothing still costs an etcd write and a watch event
    /// for every watcher, GitOps tools included).
    async fn write(&mut self, mut status: GuiSessionStatus, phase: &Phase) -> Result<(), Error> {
        let generation = self.generation();
        status.observed_generation = generation;
        status.conditions = Some(conditions(
            phase,
            self.guard_rail_note().as_deref(),
            generation,
            self.status.conditions.as_deref(),
            self.now,
        ));
        if status == self.status {
            return Ok(());
        }
        let patch = json!({
            "apiVersion": GuiSession::api_version(&()),
            "kind": GuiSession::kind(&()),
            "status": status,
        });
        let written = self
            .api
            .patch_status(
                &self.obj.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await?;
        self.ctx.metrics.count_status_write();
        self.ctx
            .remember_written(self.obj, written.resource_version(), &status);
        self.status = status;
        Ok(())
    }

    async fn event(&self, type_: EventType, reason: &str, action: &str, note: String) {
        let reference: ObjectReference = self.obj.object_ref(&());
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        // An Event that cannot be written must not fail the reconcile that it reports on.
        let recorder = Recorder::new(self.ctx.client.clone(), self.ctx.reporter.clone());
        if let Err(e) = recorder.publish(&event, &reference).await {
            warn!(name = self.obj.name_any(), error = %e, "cannot publish event");
        }
    }

    /// Re-derives the status of a live or stalled session (expiry after a spec or guard-rail
    /// change, conditions after a restart); writes only if that changes something.
    async fn refresh(&mut self) -> Result<(), Error> {
        let stalled = self
            .status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Stalled" && c.status == "True");
        let failed = self
            .status
            .operation
            .as_ref()
            .is_some_and(|op| op.status == Some(OperationStatus::Failed));
        if stalled || failed {
            return Ok(());
        }
        let mut status = self.status.clone();
        let started = status
            .session_started_at
            .as_ref()
            .and_then(|s| s.parse::<Timestamp>().ok());
        if let Some(started) = started {
            status.session_expires_at = Some(rfc3339_seconds(session_expiry(
                &self.obj.spec,
                started,
                &self.ctx.settings,
            )));
        }
        let phase = Phase::Active {
            expires_at: status.session_expires_at.clone().unwrap_or_default(),
        };
        self.write(status, &phase).await
    }

    /// Records an operation (from a start, a poll or an adoption) and schedules what comes next.
    async fn record(&mut self, op: Operation) -> Result<Action, Error> {
        let mut status = self.status.clone();
        let failed = op.status == Some(OperationStatus::Failed);
        if failed {
            status.session_started_at = None;
            status.session_expires_at = None;
            status.last_error = Some(LastError {
                code: Some(
                    op.error_code
                        .clone()
                        .unwrap_or_else(|| "OperationFailed".into()),
                ),
                message: op.error_details.clone(),
                time: Some(rfc3339_seconds(self.now)),
            });
        } else {
            let started = op
                .created_at
                .as_ref()
                .and_then(|s| s.parse::<Timestamp>().ok())
                .unwrap_or(self.now);
            status.session_started_at = Some(rfc3339_seconds(started));
            status.session_expires_at = Some(rfc3339_seconds(session_expiry(
                &self.obj.spec,
                started,
                &self.ctx.settings,
            )));
            status.last_error = None;
        }
        let phase = phase_of_operation(
            op.status,
            op.is_terminal,
            status.session_expires_at.as_deref(),
            op.error_code
                .as_deref()
                .map(|c| (c, op.error_details.as_deref().unwrap_or(""))),
        );
        let newly_failed = failed
            && self.status.operation.as_ref().map(|o| (&o.id, o.status))
                != Some((&op.id, op.status));
        status.operation = Some(op);
        self.write(status.clone(), &phase).await?;
        if newly_failed {
            let note = match &self.status.last_error {
                Some(LastError { code, message, .. }) => format!(
                    "StartGUISession operation failed: {}: {}",
                    code.as_deref().unwrap_or("OperationFailed"),
                    message.as_deref().unwrap_or("")
                ),
                None => "StartGUISession operation failed".into(),
            };
            self.event(EventType::Warning, "StartFailed", "StartGUISession", note)
                .await;
        }
        Ok(self.next_action(&status))
    }

    /// When to come back after writing `status`.
    fn next_action(&self, status: &GuiSessionStatus) -> Action {
        match self.decide(status) {
            Decision::Follow { after, .. } => Action::requeue(after),
            Decision::WaitUntil(at) => Action::requeue(until(self.now, at)),
            Decision::Suspended | Decision::Nothing => Action::await_change(),
            // Not expected right after a write; come back soon rather than never.
            Decision::Start | Decision::LookupForAdoption | Decision::Stop => {
                Action::requeue(self.ctx.settings.follow_backoff_initial)
            }
        }
    }

    /// Records a failed call. Terminal errors stall the object until the retry delay or a spec
    /// change; retryable ones go back to kube's Controller for per-object backoff.
    async fn fail(&mut self, error: LightsailError, start_attempt: bool) -> Result<Action, Error> {
        let mut status = self.status.clone();
        let same_error = status
            .last_error
            .as_ref()
            .is_some_and(|e| e.code.as_deref() == Some(error.code.as_str()));
        status.last_error = Some(LastError {
            code: Some(error.code.clone()),
            message: Some(error.message.clone()),
            time: Some(rfc3339_seconds(self.now)),
        });
        let reason = reason_from_code(&error.code);
        let message = error.to_string();
        let phase = match error.class {
            ErrorClass::Terminal => Phase::Stalled { reason, message },
            ErrorClass::Retryable => Phase::Retrying {
                reason,
                message,
                // Keep the start marker while a session may have been started: when the call
                // itself got no answer, or when an earlier start is still unaccounted for.
                start_pending: (start_attempt && !error.answered) || start_pending(&self.status),
            },
        };
        self.write(status, &phase).await?;
        if !same_error {
            let reason = if start_attempt {
                "StartFailed"
            } else {
                "LightsailError"
            };
            self.event(
                EventType::Warning,
                reason,
                error.action.as_str(),
                error.to_string(),
            )
            .await;
        }
        match error.class {
            ErrorClass::Terminal => {
                info!(
                    namespace = self.obj.namespace().unwrap_or_default(),
                    name = self.obj.name_any(),
                    error = %error,
                    "stalled; retrying after the stalled-retry delay or on a spec change"
                );
                Ok(Action::requeue(self.ctx.settings.stalled_retry))
            }
            ErrorClass::Retryable => Err(Error::Lightsail(error)),
        }
    }

    async fn follow(&mut self, operation_id: &str) -> Result<Action, Error> {
        match self
            .ctx
            .lightsail
            .get_operation(self.region(), operation_id)
            .await
        {
            Ok(Some(op)) => self.record(op).await,
            Ok(None) => {
                let error = LightsailError {
                    action: crate::lightsail::Action::GetOperation,
                    code: "InvalidResponse".into(),
                    message: format!("GetOperation returned no operation for {operation_id}"),
                    class: ErrorClass::Retryable,
                    answered: true,
                };
                self.fail(error, false).await
            }
            Err(e) => self.fail(e, false).await,
        }
    }

    async fn lookup_then_start(&mut self) -> Result<Action, Error> {
        let operations = match self
            .ctx
            .lightsail
            .operations_for_resource(self.region(), &self.obj.spec.resource_name)
            .await
        {
            Ok(ops) => ops,
            Err(e) => return self.fail(e, false).await,
        };
        match pick_adoptable(&operations, &self.obj.spec, self.now, &self.ctx.settings) {
            Some(op) => {
                let note = format!(
                    "adopted running GUI session of {} (operation {}) instead of starting another",
                    self.obj.spec.resource_name,
                    op.id.as_deref().unwrap_or("?")
                );
                let action = self.record(op.clone()).await?;
                self.event(EventType::Normal, "SessionAdopted", "Adopt", note)
                    .await;
                Ok(action)
            }
            None => self.start().await,
        }
    }

    /// Starts a session. Write order (what makes a kill -9 anywhere safe):
    /// 1. the start marker (`Reconciling=True`, reason `SessionStarting`) is written first;
    /// 2. only then is `StartGUISession` called;
    /// 3. its operation replaces the marker in the status.
    ///
    /// A crash before 2 leaves the marker: the next reconcile looks up the resource's
    /// operations, finds no new start, and starts. A crash between 2 and 3 leaves the marker:
    /// the lookup finds the started operation and adopts it. Either way one start per window.
    async fn start(&mut self) -> Result<Action, Error> {
        let renewal = self.status.session_started_at.is_some() || self.status.operation.is_some();
        if !start_pending(&self.status) {
            let status = self.status.clone();
            let message = if renewal {
                "starting a new GUI session"
            } else {
                "starting a GUI session"
            };
            self.write(
                status,
                &Phase::Starting {
                    message: message.into(),
                },
            )
            .await?;
        }
        let result = match self
            .ctx
            .lightsail
            .permit(self.region(), crate::lightsail::Action::StartGuiSession)
            .await
        {
            Ok(permit) => {
                self.ctx
                    .lightsail
                    .start_gui_session(permit, &self.obj.spec.resource_name)
                    .await
            }
            Err(e) => Err(e),
        };
        let operations = match result {
            Ok(ops) => ops,
            Err(e) => return self.fail(e, true).await,
        };
        let Some(op) = operations
            .iter()
            .find(|op| op.operation_type.as_deref() == Some("StartGUISession"))
            .or(operations.first())
            .cloned()
        else {
            let error = LightsailError {
                action: crate::lightsail::Action::StartGuiSession,
                code: "InvalidResponse".into(),
                message: "StartGUISession returned no operation".into(),
                class: ErrorClass::Retryable,
                answered: false,
            };
            return self.fail(error, true).await;
        };
        let op_id = op.id.clone().unwrap_or_default();
        let action = self.record(op).await?;
        let (reason, verb) = if renewal {
            ("SessionRenewed", "renewed")
        } else {
            ("SessionStarted", "started")
        };
        info!(
            namespace = self.obj.namespace().unwrap_or_default(),
            name = self.obj.name_any(),
            resource = self.obj.spec.resource_name,
            operation = op_id,
            "GUI session {verb}"
        );
        self.event(
            EventType::Normal,
            reason,
            "StartGUISession",
            format!(
                "GUI session of {} {verb} (operation {op_id})",
                self.obj.spec.resource_name
            ),
        )
        .await;
        Ok(action)
    }

    async fn stop(&mut self) -> Result<Action, Error> {
        let result = self
            .ctx
            .lightsail
            .stop_gui_session(self.region(), &self.obj.spec.resource_name)
            .await;
        match result {
            // NotFound: the resource is gone, so is its session; the object may go too.
            Ok(_) => {}
            Err(e) if e.code == "NotFound" => {}
            Err(e) => {
                self.event(
                    EventType::Warning,
                    "StopFailed",
                    "StopGUISession",
                    e.to_string(),
                )
                .await;
                return Err(Error::Lightsail(e));
            }
        }
        self.event(
            EventType::Normal,
            "SessionStopped",
            "StopGUISession",
            format!("GUI session of {} stopped", self.obj.spec.resource_name),
        )
        .await;
        self.remove_finalizer().await?;
        Ok(Action::await_change())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::GuiSessionSpec;

    fn context() -> Context {
        crate::install_crypto_provider();
        let url = "http://127.0.0.1:9".parse().expect("url");
        let client = kube::Client::try_from(kube::Config::new(url)).expect("client");
        let metrics = Arc::new(Metrics::default());
        let rate = crate::lightsail::RateLimit {
            per_second: std::num::NonZeroU32::MIN,
            burst: std::num::NonZeroU32::MIN,
        };
        let lightsail = Lightsail::from_sdk_config(
            aws_config::SdkConfig::builder().build(),
            None,
            rate,
            metrics.clone(),
        );
        let reporter = Reporter {
            controller: "test".into(),
            instance: None,
        };
        Context::new(
            client,
            Arc::new(lightsail),
            reporter,
            metrics,
            Settings::default(),
            RetryPolicy {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(2),
            },
            LeaderGate::always(),
        )
    }

    fn object(rv: &str, status: Option<GuiSessionStatus>) -> GuiSession {
        let mut gs = GuiSession::new(
            "gs",
            GuiSessionSpec {
                resource_name: "vm".into(),
                region: None,
                max_session_age: "1h".into(),
                suspend: false,
                stop_on_delete: false,
            },
        );
        gs.metadata.namespace = Some("ns".into());
        gs.metadata.resource_version = Some(rv.into());
        gs.status = status;
        gs
    }

    #[tokio::test]
    async fn a_status_this_process_wrote_wins_until_the_watch_delivers_it() {
        let ctx = context();
        let written = GuiSessionStatus {
            session_started_at: Some("2026-11-24T12:00:00Z".into()),
            ..GuiSessionStatus::default()
        };
        let stale = object("4", None);
        ctx.remember_written(&stale, Some("5".into()), &written);
        // The cache still has the object from before the write: decide on what was written.
        assert_eq!(ctx.fresh_status(&stale), Some(written.clone()));
        ctx.watch_caught_up(&stale);
        assert_eq!(ctx.fresh_status(&stale), Some(written.clone()));
        // The watch delivers the write: the entry goes, the cache is the truth again.
        let current = object("5", Some(GuiSessionStatus::default()));
        ctx.watch_caught_up(&current);
        assert!(ctx.written.lock().expect("lock").is_empty());
        assert_eq!(ctx.fresh_status(&stale), None);
        assert_eq!(
            ctx.fresh_status(&current),
            Some(GuiSessionStatus::default())
        );
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered() {
        let p = RetryPolicy {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(60),
        };
        assert_eq!(p.delay(1, 1.0), Duration::from_secs(2));
        assert_eq!(p.delay(2, 1.0), Duration::from_secs(4));
        assert_eq!(p.delay(3, 1.0), Duration::from_secs(8));
        assert_eq!(p.delay(10, 1.0), Duration::from_secs(60));
        assert_eq!(p.delay(u32::MAX, 1.0), Duration::from_secs(60));
        assert_eq!(p.delay(3, 0.0), Duration::from_secs(4));
        assert_eq!(p.delay(0, 1.0), Duration::from_secs(2));
    }
}
