//! HTTP routes: the AWS protocol on `POST /` and the control endpoint under `/_sim/`.

use super::calls::{CallCounter, CallLog, CallReport, OUTCOME_OK};
use super::clock::SimClock;
use super::config::{ComputerSpec, ErrorStyle, Faults, LightsailException, signed_duration_text};
use super::faults::{FaultState, Verdict};
use super::sigv4::{Verifier, claimed_access_key_id};
use super::state::{ComputerView, World, new_uuid};
use super::wire::{Action, AwsError, ErrorCode, RequestFields, UNKNOWN_ACTION, json_response};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// State shared by all requests.
pub(crate) struct Shared {
    pub verifier: Verifier,
    pub error_style: ErrorStyle,
    pub clock: Arc<SimClock>,
    pub world: Mutex<World>,
    pub faults: Mutex<FaultState>,
    pub calls: Mutex<CallCounter>,
}

/// Locks, shrugging off poisoning: every critical section leaves its data consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn upsert_computer(&self, spec: ComputerSpec) -> (bool, Option<ComputerView>) {
        let name = spec.name.clone();
        let mut world = lock(&self.world);
        let created = world.upsert(spec);
        (created, world.view_of(&name))
    }

    pub(crate) fn release_start_responses(&self, name: &str) -> Option<ComputerView> {
        let mut world = lock(&self.world);
        let mut spec = world.get(name)?.spec.clone();
        spec.hold_start_response = false;
        world.upsert(spec);
        world.view_of(name)
    }

    fn count(
        &self,
        action: &'static str,
        resource: Arc<str>,
        outcome: &'static str,
        access_key_id: Option<&str>,
    ) {
        lock(&self.calls).record(action, resource, outcome, access_key_id);
    }

    /// The resource a call is about, for counting calls that fail before reaching the world.
    fn claimed_resource(&self, action: Option<Action>, fields: Option<&RequestFields>) -> Arc<str> {
        let Some(fields) = fields else {
            return Arc::from("");
        };
        if let Some(name) = &fields.resource_name {
            return Arc::from(name.as_str());
        }
        if action == Some(Action::GetOperation)
            && let Some(id) = &fields.operation_id
        {
            return lock(&self.world)
                .resource_of_operation(id)
                .unwrap_or_else(|| Arc::from(""));
        }
        Arc::from("")
    }

    fn fail(&self, call: &CallContext<'_>, resource: Arc<str>, error: AwsError) -> Response {
        let outcome = error.code.type_name();
        tracing::debug!(action = call.action, resource = &*resource, outcome, "call");
        self.count(call.action, resource, outcome, call.access_key_id);
        error.into_response(self.error_style, call.request_id)
    }
}

pub(crate) fn router(shared: Arc<Shared>, control_token: Option<String>) -> Router {
    let control = control_routes(Arc::clone(&shared));
    let control = match control_token {
        Some(token) => control.layer(axum::middleware::from_fn_with_state(
            Arc::<str>::from(token),
            require_control_token,
        )),
        None => control,
    };
    Router::new()
        .route("/", post(aws_call))
        .with_state(shared)
        .merge(control)
}

/// Answers 401 to a control request without `Authorization: Bearer <the token>`.
async fn require_control_token(
    State(token): State<Arc<str>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    // Constant-time enough for a test tool: compare whole byte strings of equal length.
    let matches = presented.is_some_and(|p| {
        p.len() == token.len()
            && p.bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if matches {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "the /_sim/ control routes need Authorization: Bearer <control token>\n",
        )
            .into_response()
    }
}

fn control_routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_sim/calls", get(get_calls))
        .route("/_sim/calls/log", get(get_call_log))
        .route("/_sim/clock", get(get_clock).put(put_clock))
        .route("/_sim/metrics", get(get_metrics))
        .route("/_sim/reset", post(post_reset))
        .route("/_sim/faults", get(get_faults).put(put_faults))
        .route("/_sim/computers", get(get_computers).post(post_computer))
        .route(
            "/_sim/computers/{name}",
            get(get_computer).delete(delete_computer),
        )
        .route("/_sim/computers/{name}/release", post(post_release))
        .with_state(shared)
}

/// What every answer to one AWS call needs to know about it.
struct CallContext<'a> {
    action: &'static str,
    access_key_id: Option<&'a str>,
    request_id: &'a str,
}

/// One AWS call, answered with AWS's `Date` (the shifted clock), as AWS does on every answer:
/// the SDK corrects its signing clock from it.
async fn aws_call(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut response = answer_aws_call(&shared, method, uri, &headers, body).await;
    let date = aws_smithy_types::DateTime::from(shared.clock.now())
        .fmt(aws_smithy_types::date_time::Format::HttpDate)
        .ok()
        .and_then(|date| HeaderValue::try_from(date).ok());
    // Formatting fails only far outside the offsets allowed; hyper then writes its own Date.
    if let Some(date) = date {
        response.headers_mut().insert(header::DATE, date);
    }
    response
}

/// Authenticate, route, apply faults, act, count, answer.
async fn answer_aws_call(
    shared: &Shared,
    method: Method,
    uri: Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = new_uuid();
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    let action = Action::from_target(target);
    let call = CallContext {
        action: action.map_or(UNKNOWN_ACTION, Action::name),
        access_key_id: claimed_access_key_id(headers),
        request_id: &request_id,
    };
    let fields = RequestFields::parse(&body);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());

    let verified =
        shared
            .verifier
            .verify(method.as_str(), path, headers, &body, shared.clock.now());
    let region = match verified {
        Ok(region) => region,
        Err(error) => {
            let resource = shared.claimed_resource(action, fields.as_ref().ok());
            return shared.fail(&call, resource, error);
        }
    };
    let Some(action) = action else {
        let error = AwsError::new(
            ErrorCode::UnknownOperation,
            format!(
                "Operation {} is not supported by lightsail-sim",
                target.unwrap_or("(no X-Amz-Target)")
            ),
        );
        let resource = shared.claimed_resource(None, fields.as_ref().ok());
        return shared.fail(&call, resource, error);
    };
    let fields = match fields {
        Ok(fields) => fields,
        Err(error) => return shared.fail(&call, Arc::from(""), error),
    };

    let (verdict, latency) = lock(&shared.faults).judge(Instant::now());
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let injected = match verdict {
        Verdict::Proceed => None,
        Verdict::Throttle => Some(AwsError::new(ErrorCode::Throttling, "Rate exceeded")),
        Verdict::ServiceError => Some(AwsError::lightsail(
            LightsailException::Service,
            "An internal error occurred (injected by lightsail-sim).",
        )),
    };
    if let Some(error) = injected {
        let resource = shared.claimed_resource(Some(action), Some(&fields));
        return shared.fail(&call, resource, error);
    }

    let answer = {
        let mut world = lock(&shared.world);
        let resource_name = fields.resource_name.as_deref();
        match action {
            Action::StartGuiSession => world.start_or_stop(resource_name, region, true),
            Action::StopGuiSession => world.start_or_stop(resource_name, region, false),
            Action::GetOperation => world.get_operation(fields.operation_id.as_deref(), region),
            Action::GetOperationsForResource => {
                world.operations_for_resource(resource_name, fields.page_token.as_deref(), region)
            }
            Action::CreateGuiSessionAccessDetails => world.access_details(resource_name, region),
        }
    };
    let resource = answer.resource.unwrap_or_else(|| Arc::from(""));
    match answer.body {
        Err(error) => shared.fail(&call, resource, error),
        Ok(body) => {
            tracing::debug!(
                action = call.action,
                resource = &*resource,
                outcome = OUTCOME_OK,
                "call"
            );
            shared.count(call.action, resource, OUTCOME_OK, call.access_key_id);
            if let Some(held) = answer.hold {
                // Counted and recorded already; the client hears back only once released.
                held.released().await;
            }
            json_response(StatusCode::OK, body, &request_id)
        }
    }
}

fn control_error(status: StatusCode, message: impl Into<String>) -> Response {
    #[derive(Serialize)]
    struct ErrorBody {
        error: String,
    }
    (
        status,
        Json(ErrorBody {
            error: message.into(),
        }),
    )
        .into_response()
}

/// A control request's JSON body, or the 400 explaining why it is not one.
fn parse_control_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(control_error(
            StatusCode::BAD_REQUEST,
            format!("invalid JSON body: {e}"),
        ))
    })
}

async fn get_calls(State(shared): State<Arc<Shared>>) -> Json<CallReport> {
    Json(lock(&shared.calls).report())
}

async fn get_call_log(State(shared): State<Arc<Shared>>) -> Json<CallLog> {
    Json(lock(&shared.calls).log())
}

/// `GET` / `PUT /_sim/clock` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    #[serde(with = "signed_duration_text")]
    offset: jiff::SignedDuration,
}

/// The offset and the AWS time it makes.
#[derive(Serialize)]
struct ClockView {
    #[serde(with = "signed_duration_text")]
    offset: jiff::SignedDuration,
    now: jiff::Timestamp,
}

fn clock_view(clock: &SimClock) -> Json<ClockView> {
    Json(ClockView {
        offset: clock.offset(),
        now: jiff::Timestamp::try_from(clock.now()).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
    })
}

async fn get_clock(State(shared): State<Arc<Shared>>) -> Json<ClockView> {
    clock_view(&shared.clock)
}

async fn put_clock(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let body: ClockBody = match parse_control_body(&body) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    if let Err(error) = shared.clock.set_offset(body.offset) {
        return control_error(StatusCode::BAD_REQUEST, error.to_string());
    }
    tracing::info!(
        offset = super::config::format_signed_duration(body.offset),
        "clock offset set"
    );
    clock_view(&shared.clock).into_response()
}

async fn get_metrics(State(shared): State<Arc<Shared>>) -> Response {
    let text = lock(&shared.calls).report().to_prometheus();
    let mut response = Response::new(Body::from(text));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetQuery {
    scope: Option<String>,
}

async fn post_reset(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<ResetQuery>,
) -> Response {
    match query.scope.as_deref() {
        None | Some("calls") => lock(&shared.calls).reset(),
        Some("all") => {
            lock(&shared.calls).reset();
            lock(&shared.world).clear_history();
            lock(&shared.faults).refill();
        }
        Some(other) => {
            return control_error(
                StatusCode::BAD_REQUEST,
                format!("unknown reset scope {other:?}: use calls or all"),
            );
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Json<Faults> {
    Json(lock(&shared.faults).faults().clone())
}

async fn put_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let faults: Faults = match parse_control_body(&body) {
        Ok(faults) => faults,
        Err(response) => return *response,
    };
    if let Err(error) = faults.validate() {
        return control_error(StatusCode::BAD_REQUEST, error.to_string());
    }
    lock(&shared.faults).replace(faults.clone());
    tracing::info!(?faults, "faults replaced");
    Json(faults).into_response()
}

#[derive(Serialize)]
struct ComputersBody {
    computers: Vec<ComputerView>,
}

async fn get_computers(State(shared): State<Arc<Shared>>) -> Json<ComputersBody> {
    Json(ComputersBody {
        computers: lock(&shared.world).views(),
    })
}

async fn post_computer(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let spec: ComputerSpec = match parse_control_body(&body) {
        Ok(spec) => spec,
        Err(response) => return *response,
    };
    if let Err(error) = spec.validate() {
        return control_error(StatusCode::BAD_REQUEST, error.to_string());
    }
    let name = spec.name.clone();
    match shared.upsert_computer(spec) {
        (created, Some(view)) => {
            tracing::info!(computer = %name, created, "computer set");
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, Json(view)).into_response()
        }
        (_, None) => control_error(StatusCode::INTERNAL_SERVER_ERROR, "computer vanished"),
    }
}

async fn get_computer(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    match lock(&shared.world).view_of(&name) {
        Some(view) => Json(view).into_response(),
        None => control_error(StatusCode::NOT_FOUND, format!("no computer {name:?}")),
    }
}

async fn delete_computer(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    if lock(&shared.world).remove(&name) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        control_error(StatusCode::NOT_FOUND, format!("no computer {name:?}"))
    }
}

async fn post_release(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    match shared.release_start_responses(&name) {
        Some(view) => Json(view).into_response(),
        None => control_error(StatusCode::NOT_FOUND, format!("no computer {name:?}")),
    }
}
