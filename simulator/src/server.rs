//! HTTP routes: the AWS protocols on `POST /` (Lightsail's awsJson1_1, and STS's awsQuery told
//! apart by its form-encoded body) and the control endpoint under `/_sim/`.

use super::calls::{AssumeRoleRequest, CallCounter, CallLog, CallReport, Details, OUTCOME_OK, Who};
use super::clock::SimClock;
use super::config::{
    AccountSpec, ComputerSpec, ConfigError, ErrorStyle, Faults, LightsailException,
    optional_duration_text, signed_duration_text,
};
use super::faults::{FaultState, StsVerdict, Verdict};
use super::identity::{Caller, Identities};
use super::instance::InstanceState;
use super::sigv4::{Verifier, claimed_access_key_id};
use super::state::{ComputerView, ControlRefusal, World, new_uuid};
use super::sts::{self, Form, StsAction, StsError};
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
    pub identities: Mutex<Identities>,
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

/// SigV4 signing name of Lightsail.
const LIGHTSAIL_SERVICE: &str = "lightsail";

/// The session token a request carries (temporary credentials sign with one).
fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-amz-security-token")
        .and_then(|value| value.to_str().ok())
}

impl Shared {
    /// Checks a computer spec, including that its account is one the simulator knows.
    pub(crate) fn validate_computer(&self, spec: &ComputerSpec) -> Result<(), ConfigError> {
        spec.validate()?;
        let identities = lock(&self.identities);
        match &spec.account {
            Some(account) if !identities.knows_account(account) => {
                Err(ConfigError::Invalid(format!(
                    "computer {:?} is in account {account}, which is neither the base account \
                     ({}) nor one of the accounts configured",
                    spec.name,
                    identities.base_account()
                )))
            }
            _ => Ok(()),
        }
    }

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

    /// Counts a call (and logs it at debug level), with who made it: the verified caller, else
    /// whoever the claimed access key belongs to.
    fn count(&self, call: &CallContext<'_>, resource: Arc<str>, outcome: &'static str) {
        let looked_up = match (&call.caller, call.access_key_id) {
            (None, Some(key)) => lock(&self.identities).caller_of(key),
            _ => None,
        };
        let caller = call.caller.as_ref().or(looked_up.as_ref());
        let account = caller.map(|c| &*c.account);
        tracing::debug!(
            action = call.action,
            resource = &*resource,
            outcome,
            account,
            "call"
        );
        let who = Who {
            access_key_id: call.access_key_id,
            account,
            caller_arn: caller.map(|c| &*c.arn),
        };
        let details = Details {
            assume_role: call.assume_role.clone(),
            force: call.force,
        };
        lock(&self.calls).record(call.action, resource, outcome, who, details);
    }

    /// The resource a call is about, for counting calls that fail before reaching the world.
    fn claimed_resource(&self, action: Option<Action>, fields: Option<&RequestFields>) -> Arc<str> {
        let Some(fields) = fields else {
            return Arc::from("");
        };
        if let Some(name) = fields.computer_name() {
            return Arc::from(name);
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
        self.count(call, resource, error.code.type_name());
        error.into_response(self.error_style, call.request_id)
    }

    fn fail_sts(&self, call: &CallContext<'_>, resource: Arc<str>, error: StsError) -> Response {
        self.count(call, resource, error.code);
        error.into_response(call.request_id)
    }

    /// Checks a request's signature for `service` with the credentials it names.
    fn authenticate<'r>(
        &self,
        service: &str,
        method: &Method,
        uri: &Uri,
        headers: &'r HeaderMap,
        body: &[u8],
    ) -> Result<(&'r str, Caller), AwsError> {
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let token = session_token(headers);
        let now = self.clock.now();
        self.verifier
            .verify(service, method.as_str(), path, headers, body, now, |key| {
                lock(&self.identities).signing_key(key, token, now)
            })
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
        .route("/_sim/computers/{name}/idle-stop", post(post_idle_stop))
        .route("/_sim/computers/{name}/state", post(post_state))
        .route("/_sim/accounts", get(get_accounts).post(post_account))
        .route("/_sim/sts", get(get_sts).put(put_sts))
        .with_state(shared)
}

/// What every answer to one AWS call needs to know about it.
struct CallContext<'a> {
    action: &'static str,
    access_key_id: Option<&'a str>,
    /// Who signed it, once the signature holds.
    caller: Option<Caller>,
    request_id: &'a str,
    /// What an `AssumeRole` asked for, once its parameters hold (for the call log).
    assume_role: Option<AssumeRoleRequest>,
    /// A `StopInstance`'s `force` as sent (for the call log: the operator must never force).
    force: Option<bool>,
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
    if sts::is_sts_request(headers) {
        return answer_sts_call(shared, &method, &uri, headers, &body);
    }
    let request_id = new_uuid();
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    let action = Action::from_target(target);
    let mut call = CallContext {
        action: action.map_or(UNKNOWN_ACTION, Action::name),
        access_key_id: claimed_access_key_id(headers),
        caller: None,
        request_id: &request_id,
        assume_role: None,
        force: None,
    };
    let fields = RequestFields::parse(&body);
    if action == Some(Action::StopInstance)
        && let Ok(fields) = &fields
    {
        call.force = fields.force;
    }

    let verified = shared.authenticate(LIGHTSAIL_SERVICE, &method, &uri, headers, &body);
    let (region, caller) = match verified {
        Ok(verified) => verified,
        Err(error) => {
            let resource = shared.claimed_resource(action, fields.as_ref().ok());
            return shared.fail(&call, resource, error);
        }
    };
    let account = Arc::clone(&caller.account);
    call.caller = Some(caller);
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
        let account = &*account;
        match action {
            Action::StartGuiSession => world.start_or_stop(resource_name, region, account, true),
            Action::StopGuiSession => world.start_or_stop(resource_name, region, account, false),
            Action::GetOperation => {
                world.get_operation(fields.operation_id.as_deref(), region, account)
            }
            Action::GetOperationsForResource => world.operations_for_resource(
                resource_name,
                fields.page_token.as_deref(),
                region,
                account,
            ),
            Action::CreateGuiSessionAccessDetails => {
                world.access_details(resource_name, region, account)
            }
            Action::GetInstanceState => {
                world.instance_state(fields.instance_name.as_deref(), region, account)
            }
            Action::GetInstance => world.instance(fields.instance_name.as_deref(), region, account),
            Action::StartInstance => {
                world.start_instance(fields.instance_name.as_deref(), region, account)
            }
            Action::StopInstance => world.stop_instance(
                fields.instance_name.as_deref(),
                fields.force.unwrap_or(false),
                region,
                account,
            ),
            Action::EnableAddOn => world.enable_add_on(
                resource_name,
                fields.add_on_request.as_ref(),
                region,
                account,
            ),
            Action::DisableAddOn => world.disable_add_on(
                resource_name,
                fields.add_on_type.as_deref(),
                region,
                account,
            ),
        }
    };
    let resource = answer.resource.unwrap_or_else(|| Arc::from(""));
    match answer.body {
        Err(error) => shared.fail(&call, resource, error),
        Ok(body) => {
            shared.count(&call, resource, OUTCOME_OK);
            if let Some(held) = answer.hold {
                // Counted and recorded already; the client hears back only once released.
                held.released().await;
            }
            json_response(StatusCode::OK, body, &request_id)
        }
    }
}

/// One STS call: authenticate (signing name `sts`), check the action and version, apply the STS
/// faults, act, count, answer in XML. The Lightsail faults do not apply here; the STS ones
/// ([`Faults::sts`]) strike before the call is acted on, its parameters unread.
fn answer_sts_call(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let request_id = new_uuid();
    let form = Form::parse(body);
    let action_name = form.get("Action");
    let action = action_name.and_then(StsAction::from_name);
    let mut call = CallContext {
        action: action.map_or(UNKNOWN_ACTION, StsAction::name),
        access_key_id: claimed_access_key_id(headers),
        caller: None,
        request_id: &request_id,
        assume_role: None,
        force: None,
    };
    // AssumeRole calls are counted (and logged) by the role they ask for.
    let resource: Arc<str> = match action {
        Some(StsAction::AssumeRole) => Arc::from(form.get("RoleArn").unwrap_or("")),
        _ => Arc::from(""),
    };
    let caller = match shared.authenticate(sts::SERVICE, method, uri, headers, body) {
        Ok((_region, caller)) => caller,
        Err(error) => return shared.fail_sts(&call, resource, StsError::from_auth(error)),
    };
    call.caller = Some(caller.clone());
    let version = form.get("Version");
    let action = match action {
        Some(action) if version == Some(sts::VERSION) => action,
        _ => {
            let error = StsError::unknown_action(action_name, version);
            return shared.fail_sts(&call, resource, error);
        }
    };
    let injected = match lock(&shared.faults).judge_sts() {
        StsVerdict::Proceed => None,
        StsVerdict::Unavailable => Some(StsError::service_unavailable()),
        StsVerdict::Throttle => Some(StsError::throttling()),
        StsVerdict::ServiceError => Some(StsError::internal_failure()),
    };
    if let Some(error) = injected {
        return shared.fail_sts(&call, resource, error);
    }
    let answer = match action {
        StsAction::GetCallerIdentity => Ok(sts::caller_identity_xml(&caller, &request_id)),
        StsAction::AssumeRole => sts::assume_role_input(&form).and_then(|input| {
            call.assume_role = Some(sts::logged_request(&input));
            let issued = lock(&shared.identities).assume_role(&caller, &input, shared.clock.now());
            issued
                .map(|issued| sts::assume_role_xml(&issued, &request_id))
                .map_err(|refusal| StsError::refused(refusal, &caller, input.role_arn))
        }),
    };
    match answer {
        Ok(xml) => {
            shared.count(&call, resource, OUTCOME_OK);
            sts::xml_response(StatusCode::OK, xml, &request_id)
        }
        Err(error) => shared.fail_sts(&call, resource, error),
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
    if let Err(error) = shared.validate_computer(&spec) {
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

/// A refused control request about a computer: 404 when there is none, else 409.
fn refused(refusal: &ControlRefusal) -> Response {
    let status = match refusal {
        ControlRefusal::NotFound(_) => StatusCode::NOT_FOUND,
        ControlRefusal::Conflict(_) => StatusCode::CONFLICT,
    };
    control_error(status, refusal.message())
}

async fn post_idle_stop(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    match lock(&shared.world).trigger_idle_stop(&name) {
        Ok(view) => {
            tracing::info!(computer = %name, "idle rule fired");
            Json(view).into_response()
        }
        Err(refusal) => refused(&refusal),
    }
}

/// `POST /_sim/computers/NAME/state` body: `{"state": "stopped"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateBody {
    state: InstanceState,
}

async fn post_state(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let body: StateBody = match parse_control_body(&body) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    match lock(&shared.world).set_state(&name, body.state) {
        Ok(view) => {
            tracing::info!(computer = %name, state = %body.state, "state set by hand");
            Json(view).into_response()
        }
        Err(refusal) => refused(&refusal),
    }
}

/// What `GET /_sim/accounts` returns: the base account and the others with their roles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountsView {
    /// The base account (of the base credentials and of computers that name none).
    pub account_id: String,
    /// The principal the base credentials are: `arn:aws:iam::ACCOUNT:user/lightsail-sim`.
    pub base_user_arn: String,
    /// The accounts configured, by id.
    pub accounts: Vec<AccountSpec>,
}

pub(crate) fn accounts_view(identities: &Identities) -> AccountsView {
    AccountsView {
        account_id: identities.base_account().to_owned(),
        base_user_arn: format!(
            "arn:aws:iam::{}:user/{}",
            identities.base_account(),
            super::identity::BASE_USER_NAME
        ),
        accounts: identities.accounts(),
    }
}

async fn get_accounts(State(shared): State<Arc<Shared>>) -> Json<AccountsView> {
    Json(accounts_view(&lock(&shared.identities)))
}

async fn post_account(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let account: AccountSpec = match parse_control_body(&body) {
        Ok(account) => account,
        Err(response) => return *response,
    };
    let id = account.id.clone();
    match lock(&shared.identities).upsert_account(account.clone()) {
        Ok(created) => {
            tracing::info!(account = %id, created, "account set");
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, Json(account)).into_response()
        }
        Err(error) => control_error(StatusCode::BAD_REQUEST, error.to_string()),
    }
}

/// `PUT /_sim/sts` body: the simulator knob, `{"credentialLifetime": "20s"}` (or `null`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StsBody {
    #[serde(default, with = "optional_duration_text")]
    credential_lifetime: Option<std::time::Duration>,
}

/// What `GET /_sim/sts` returns.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StsView {
    #[serde(with = "optional_duration_text")]
    credential_lifetime: Option<std::time::Duration>,
    issued_credentials: usize,
}

fn sts_view(identities: &Identities) -> Json<StsView> {
    Json(StsView {
        credential_lifetime: identities.credential_lifetime(),
        issued_credentials: identities.issued_count(),
    })
}

async fn get_sts(State(shared): State<Arc<Shared>>) -> Json<StsView> {
    sts_view(&lock(&shared.identities))
}

async fn put_sts(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let body: StsBody = match parse_control_body(&body) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    let mut identities = lock(&shared.identities);
    if let Err(error) = identities.set_credential_lifetime(body.credential_lifetime) {
        return control_error(StatusCode::BAD_REQUEST, error.to_string());
    }
    tracing::info!(
        lifetime = body
            .credential_lifetime
            .map(super::config::format_duration)
            .as_deref(),
        "STS credential lifetime set"
    );
    sts_view(&identities).into_response()
}
