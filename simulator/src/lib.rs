//! `lightsail-sim`: an in-process or stand-alone server that answers the Lightsail GUI-session
//! calls the way AWS does on the wire, for the operator's tests, demo and benchmarks.
//!
//! It shares no code with the operator. What it does:
//!
//! * **Protocol** — awsJson1_1 on `POST /` with `X-Amz-Target: Lightsail_20161128.<Action>`
//!   for `StartGUISession`, `StopGUISession`, `GetOperation`, `GetOperationsForResource`,
//!   `CreateGUISessionAccessDetails`, and for the computer behind a session `GetInstanceState`,
//!   `GetInstance`, `StartInstance`, `StopInstance`, `EnableAddOn` and `DisableAddOn` (see
//!   *Computers* below). Other targets answer `UnknownOperationException`, bodies
//!   that are not a JSON object `SerializationException`.
//! * **SigV4** — requests must be signed for service `lightsail` with the configured key pair
//!   (default [`DEFAULT_ACCESS_KEY_ID`] / [`DEFAULT_SECRET_ACCESS_KEY`]) or with temporary
//!   credentials from STS; the credential scope's region is the region called, and computers of
//!   other regions are `NotFoundException` there.
//! * **Accounts and STS** — the base key pair belongs to the base account
//!   ([`SimConfig::account_id`], default [`DEFAULT_ACCOUNT_ID`]; its principal is
//!   `arn:aws:iam::ACCOUNT:user/lightsail-sim`). Other accounts ([`AccountSpec`]) have IAM roles
//!   ([`RoleSpec`]: an IAM trust policy document, or in the legacy form trusted accounts and an
//!   optional external id; a maximum session duration; see *Trust policies* below), and each
//!   computer belongs to one account ([`ComputerSpec::account`], default the base one).
//!   The same listener answers STS (awsQuery: `POST /` with a form-encoded body,
//!   `Action=AssumeRole|GetCallerIdentity&Version=2011-06-15`, SigV4 service `sts`, XML answers),
//!   so one URL serves as both `AWS_ENDPOINT_URL_LIGHTSAIL` and `AWS_ENDPOINT_URL_STS`.
//!   `AssumeRole` checks `RoleArn` (`arn:aws:iam::ACCOUNT:role/NAME`), `RoleSessionName`
//!   (2–64 of `[\w+=,.@-]`), `ExternalId`, `DurationSeconds` (900 to the role's maximum; at most
//!   1 h for role chaining) and the session tags (`Tags.member.N.Key`/`.Value`: at most 50,
//!   keys 1–128 and values 0–256 characters of `[\p{L}\p{Z}\p{N}_.:/=+\-@]`, keys unique
//!   regardless of case; `TransitiveTagKeys.member.N`) as STS does (`ValidationError`, 400),
//!   answers `AccessDenied` (403) when the role does not exist or its trust policy does not
//!   allow the caller (`… is not authorized to perform: sts:AssumeRole on resource: ROLE`, or
//!   `sts:TagSession` when only the tags are refused), and otherwise issues `ASIA…` credentials
//!   with a session token; a session keeps its tags. Lightsail calls
//!   signed with them need the matching `X-Amz-Security-Token` (else `InvalidClientTokenId`,
//!   403) and see only their account's computers and operations: another account's are
//!   `NotFoundException`, exactly as missing ones. Past their `Expiration` they are refused with
//!   `ExpiredTokenException` (Lightsail, 400) or `ExpiredToken` (STS, 400). Expiry is judged on
//!   AWS's clock (below), so moving the clock offset past an `Expiration` expires credentials
//!   without waiting. [`SimConfig::sts_credential_lifetime`] is a **simulator knob real AWS does
//!   not have**: it caps every issued credential's lifetime (e.g. 20 s) whatever
//!   `DurationSeconds` asked, so tests can watch a client's identity cache refresh. STS errors
//!   are XML (`<ErrorResponse><Error><Type>Sender</Type><Code>…</Code><Message>…</Message>
//!   </Error><RequestId>…</RequestId></ErrorResponse>`); a bad signature is
//!   `SignatureDoesNotMatch`, an unknown action or version `InvalidAction`. The Lightsail
//!   faults below do not apply to STS, which has its own ([`StsFaults`], *Faults* below).
//!   Secret keys and session tokens appear in the `AssumeRole` answer only: never in the
//!   counts, the call log, the metrics, the `/_sim/` views or the simulator's logs (even at
//!   trace level).
//! * **Trust policies** — a role's `trustPolicy` is the JSON document an AWS admin attaches
//!   (`{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "…"},
//!   "Action": "sts:AssumeRole", "Condition": {…}}]}`), checked when the role is configured
//!   (an unknown `Effect`, an unsupported operator or a malformed principal is an error naming
//!   the role) and evaluated as IAM does: an explicit `Deny` wins, otherwise some `Allow`
//!   statement must match its `Action` (`*`/`?` wildcards, any case), its `Principal` and every
//!   `Condition`. When the request carries session tags, `sts:TagSession` must be allowed as
//!   well. Principals: `"*"`, and under `AWS` `"*"`, an account id or
//!   `arn:aws:iam::ACCOUNT:root` (any principal of it), `arn:aws:iam::ACCOUNT:user/NAME`,
//!   `arn:aws:iam::ACCOUNT:role/NAME` (that role's sessions) or
//!   `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`; `Service` and `Federated` principals load
//!   but never match. Operators: `StringEquals`, `StringNotEquals`, `StringEqualsIgnoreCase`,
//!   `StringNotEqualsIgnoreCase`, `StringLike`, `StringNotLike`, `ArnEquals`, `ArnNotEquals`,
//!   `ArnLike`, `ArnNotLike` (the ARN ones take wildcards, as in IAM), each also with `IfExists`
//!   and a `ForAnyValue:`/`ForAllValues:` prefix, and `Null`. Keys: `sts:ExternalId`,
//!   `sts:RoleSessionName`, `sts:TransitiveTagKeys`, `aws:RequestTag/KEY`, `aws:TagKeys`,
//!   `aws:PrincipalAccount`, `aws:PrincipalArn` (a session's role ARN) and
//!   `aws:PrincipalTag/KEY` (the calling session's tags); key names ignore case. A key the
//!   request lacks is absent: `String…`/`Arn…` operators are then false, their `Not` forms
//!   true, `Null` tells. The multi-valued keys (`aws:TagKeys`, `sts:TransitiveTagKeys`) need a
//!   set prefix. Not modelled: `NotPrincipal` and `NotAction` (refused), policy variables, and
//!   the transitive tags a chained session would inherit. Roles without `trustPolicy` keep the
//!   legacy check (the caller's account trusted, the external id exact; tags not checked).
//! * **Behaviour** — sessions go notStarted → starting → started → startExpired (after the
//!   session lifetime), stopping → stopped; each Start/Stop makes an operation that is `Started`
//!   for the settle time, then `Succeeded` or `Failed`. All of it is computed from timestamps
//!   when read; nothing runs in the background. A Start on a session that is already up
//!   starts it anew (AWS does not document that case); every Start/Stop is kept in the history.
//! * **Computers** — each computer has a power state ([`InstanceState`]): `pending` (code 0),
//!   `running` (16), `stopping` (64), `stopped` (80), `running` unless its spec's `state` says
//!   otherwise when it is added (an update keeps the live state). `StartInstance` starts only a
//!   `stopped` computer, `StopInstance` stops only a `running` or `pending` one (`force: true`
//!   also stops a `stopping` one at once); anything else is `InvalidInputException` (400). A
//!   start is `pending` for the computer's `startingTime`, a stop `stopping` for its
//!   `stoppingTime` (defaults [`SimConfig::instance_start_time`] and
//!   [`SimConfig::instance_stop_time`], 2 s), and their operations (`StartInstance`,
//!   `StopInstance`) are `Started` until then, then `Succeeded`. `EnableAddOn` /
//!   `DisableAddOn` set and remove the StopInstanceOnIdle add-on (`threshold` a CPU percentage
//!   0–100, `duration` idle minutes > 0, both numeric Strings; another `addOnType` is
//!   `InvalidInputException`), which `GetInstance` lists in `addOns`; their operations succeed
//!   at once. All of them appear in `GetOperation` / `GetOperationsForResource`. A computer that
//!   is not `running` has no session: `StartGUISession` answers per
//!   [`ComputerSpec::session_when_not_running`] (`InvalidInputException` "The instance NAME is
//!   not running (its state is STATE): start it before starting a GUI session", or an operation
//!   that ends `Failed` with errorCode [`INSTANCE_NOT_RUNNING`]); a session whose computer
//!   begins to stop ends, and `CreateGUISessionAccessDetails` answers `stopped` (no URLs) until
//!   a new `StartGUISession` on the running computer. The idle rule never fires by itself:
//!   [`RunningSimulator::trigger_idle_stop`] (or `POST /_sim/computers/NAME/idle-stop`) fires it,
//!   stopping the computer as an unforced `StopInstance` would (no operation is made).
//! * **Cost meter** — a computer is billed from the moment it starts `pending` until it is
//!   `stopped` (EC2's rule): `pending`, `running` and `stopping` count. [`ComputerView`] shows
//!   the billed seconds, the part inside the spec's `meterWindows` (half-open RFC 3339 spans,
//!   compared on the wall clock, overlapping ones counted once) and outside, and the billed
//!   intervals, since the computer was added or the last `POST /_sim/reset?scope=all`.
//! * **Access details** — `CreateGUISessionAccessDetails` answers the session status; while it
//!   is `started`, two sessions (`primary`: the computer's application, `secondary`: its
//!   operating system) whose URLs carry a bearer token, new on every call, so a renewal yields
//!   new URLs. The URLs appear in that answer only: never in the call counts, the call log, the
//!   metrics, the `/_sim/` views or the simulator's logs. Per computer, `accessSetupCalls: N`
//!   makes the first N calls after each Start answer `settingUpInstance`, then `starting`
//!   (rising `percentageComplete`, no sessions) before `started`, and
//!   `accessFailure: {status, reason}` makes access end `failedInstanceCreation` or
//!   `failedStartingGUISession` with that `failureReason` instead of `started` (see
//!   [`ComputerSpec`]). Calls are counted, not timed, so tests replay the same sequence.
//! * **Faults** — for Lightsail calls: latency and jitter, a share of `ServiceException`s, a
//!   share of `ThrottlingException`s and a token-bucket rate limit, per [`Faults`]; per-computer
//!   behaviours per [`ComputerSpec`]. For STS calls, separately ([`Faults::sts`], a
//!   [`StsFaults`]; `"sts"` in JSON): `unavailable` (STS down: every `AssumeRole` and
//!   `GetCallerIdentity` answers HTTP 503 `ServiceUnavailable`, a server error the SDK retries),
//!   `throttleRate` (a share answers 400 `Throttling`, "Rate exceeded") and `serviceErrorRate`
//!   (a share answers 500 `InternalFailure`), in STS's XML error shape. They strike once the
//!   signature, action and version hold, before the call is acted on; refused calls are counted
//!   and logged with the code as outcome. Lightsail keeps answering. A test takes STS down and
//!   brings it back with [`RunningSimulator::set_sts_faults`] (`StsFaults::unavailable()`, then
//!   `StsFaults::default()`; the Lightsail faults and their bucket stay as they are), or with
//!   [`RunningSimulator::set_faults`] / `PUT /_sim/faults` `{"sts": {"unavailable": true}}`,
//!   which replace all faults.
//! * **Clock** — AWS's clock can be set off this machine's by a signed offset (`-2h`: AWS two
//!   hours behind the node). It shifts every timestamp reported (`createdAt`,
//!   `statusChangedAt`), the `Date` header of every AWS answer (from which the SDK corrects its
//!   signing time) and the SigV4 window (±15 minutes, else `RequestExpired`). Ages are kept on
//!   the wall clock, so operations settle and sessions expire after the same durations on either
//!   clock, and changing the offset at run time acts like the node's clock jumping.
//! * **Call log** — besides the counts, every `StartGUISession`, `StopGUISession`,
//!   `StartInstance`, `StopInstance` (with its `force` as sent, so a test can check that nothing
//!   forces), `EnableAddOn` and `DisableAddOn` call answered is kept with its outcome (`ok`, or
//!   the error: refused ones too, so only `ok` entries changed something), resource, wall-clock time (not shifted), the access key id that signed it, and the
//!   `account` and `callerArn` of that key when the simulator knows it, up to
//!   [`CALL_LOG_CAPACITY`] entries (older ones are dropped and counted). `AssumeRole` and
//!   `GetCallerIdentity` calls are kept in the same log, an `AssumeRole` with the `RoleArn` asked
//!   for as its resource: `call_log().matching(Some("AssumeRole"), Some(&role_arn(..)),
//!   Some("ok")).count()` counts a role's assumptions, [`CallLog::from_account`] the calls of an
//!   account. An `AssumeRole` whose parameters were valid (granted or refused) also keeps what
//!   it asked for, [`AssumeRoleRequest`]: session name, external id, duration, session tags and
//!   transitive tag keys (`assumeRole` in JSON); [`CallLog::assume_role_requests`] lists them,
//!   e.g. to assert which tags the operator sent. The counts have them too (`AssumeRole` by role
//!   ARN).
//!
//! # Settings
//!
//! | [`SimConfig`] field | flag (env `LIGHTSAIL_SIM_…`) | config file | default |
//! | --- | --- | --- | --- |
//! | `computers` | `--computer NAME[@REGION]` | `computers:` (with `account:`) | none |
//! | `access_key_id`, `secret_access_key` | `--access-key-id`, `--secret-access-key` | | [`DEFAULT_ACCESS_KEY_ID`], [`DEFAULT_SECRET_ACCESS_KEY`] |
//! | `account_id` (of the base key pair) | `--account-id` (wins over the file) | `accountId:` | [`DEFAULT_ACCOUNT_ID`] |
//! | `accounts` ([`AccountSpec`] with [`RoleSpec`]s) | | `accounts:` | none |
//! | `sts_credential_lifetime` (simulator knob, not AWS) | `--sts-credential-lifetime 20s` (wins over the file) | `stsCredentialLifetime: 20s` | off; whole seconds, 1 s to 12 h |
//! | `session_lifetime` | `--session-lifetime` | | `1h` |
//! | `settle_time` | `--settle-time` | | `1s` |
//! | `instance_start_time`, `instance_stop_time` | `--instance-start-time`, `--instance-stop-time` (win over the file) | `instanceStartTime:`, `instanceStopTime:` | [`DEFAULT_INSTANCE_START_TIME`], [`DEFAULT_INSTANCE_STOP_TIME`] (2 s); per computer `startingTime`, `stoppingTime` |
//! | `error_style` | `--error-style code\|type` | | `code` |
//! | `operations_page_size` | `--operations-page-size` | | [`DEFAULT_OPERATIONS_PAGE_SIZE`] |
//! | `faults` (Lightsail) | `--latency`, `--latency-jitter`, `--service-error-rate`, `--throttle-rate`, `--rate-limit`, `--rate-burst` | | none |
//! | `faults.sts` ([`StsFaults`]) | `--sts-unavailable`, `--sts-throttle-rate`, `--sts-service-error-rate` | | none |
//! | `clock_offset` | `--clock-offset -2h` (wins over the file) | `clockOffset: -2h` | `0`; whole milliseconds, at most [`MAX_CLOCK_OFFSET`] either way |
//!
//! # Control endpoint
//!
//! On the same port, unauthenticated (a loopback test tool), under `/_sim/` which no AWS call
//! uses (they are all `POST /`):
//!
//! | method and path | does |
//! | --- | --- |
//! | `GET /_sim/calls` | [`CallReport`] `{"calls":[{"action","resource","outcome","count"}],"total"}` |
//! | `GET /_sim/calls/log` | [`CallLog`] `{"entries":[{"action","resource","outcome","time","accessKeyId","account","callerArn","assumeRole"}],"dropped"}`: Start/Stop and STS calls, oldest first; `assumeRole` (AssumeRole only) is `{"roleArn","roleSessionName","externalId","durationSeconds","tags":[{"key","value"}],"transitiveTagKeys"}` |
//! | `GET /_sim/metrics` | the counts as Prometheus text (`lightsail_sim_calls_total`) |
//! | `POST /_sim/reset` | zeroes the counts and empties the call log; `?scope=all` also forgets sessions and operations, restarts the cost meters (power states stay) and refills the rate-limit bucket (issued STS credentials stay valid) |
//! | `GET /_sim/clock` | `{"offset":"-2h","now":"…Z"}`: the clock offset and AWS's time it makes |
//! | `PUT /_sim/clock` | `{"offset":"-2h"}` sets the offset (answers as GET) |
//! | `GET /_sim/faults`, `PUT /_sim/faults` | [`Faults`] as JSON, `{"latency":"20ms","latencyJitter":"5ms","serviceErrorRate":0.1,"throttleRate":0.1,"rateLimit":{"requestsPerSecond":50,"burst":100},"sts":{"unavailable":false,"throttleRate":0,"serviceErrorRate":0}}`; PUT replaces them all (omitted fields are off): `{"sts":{"unavailable":true}}` takes STS down, `{}` clears everything |
//! | `GET /_sim/computers` | `{"computers":[`[`ComputerView`]`]}` |
//! | `POST /_sim/computers` | a [`ComputerSpec`]: adds a computer (201) or replaces the spec of one (200), keeping its history, power state and meter |
//! | `GET /_sim/computers/{name}`, `DELETE …` | one computer |
//! | `POST /_sim/computers/{name}/idle-stop` | the StopInstanceOnIdle rule fires: the computer goes `stopping`, then `stopped` (a [`ComputerView`]; 404 for no such computer, 409 when the add-on is not enabled or the computer is not `running`) |
//! | `POST /_sim/computers/{name}/state` | `{"state":"stopped"}`: sets the power state at once, as a person in the console would (`pending`/`stopping` then settle); no operation |
//! | `POST /_sim/computers/{name}/release` | clears `holdStartResponse`, sending the held responses |
//! | `GET /_sim/accounts` | [`AccountsView`] `{"accountId","baseUserArn","accounts":[`[`AccountSpec`]`]}` |
//! | `POST /_sim/accounts` | an [`AccountSpec`]: adds an account (201) or replaces its roles (200); legacy roles may trust only known accounts, trust policies are checked |
//! | `GET /_sim/sts` | `{"credentialLifetime":"20s"\|null,"issuedCredentials":N}` (a count: no secrets) |
//! | `PUT /_sim/sts` | `{"credentialLifetime":"20s"}` or `null`: the knob, for credentials issued from then on |
//!
//! Control errors answer 4xx with `{"error": "..."}`.
//!
//! # Throughput
//!
//! `GetOperation` over loopback, 64 calls in flight, SigV4 checked on every call, release build,
//! simulator and load generator sharing the 2-core development machine (Xeon):
//!
//! ```text
//! cargo build --release -p lightsail-sim --bin lightsail-sim --example sim_load
//! target/release/lightsail-sim --listen 127.0.0.1:4580 --computer bench-1 &
//! target/release/examples/sim_load --endpoint http://127.0.0.1:4580 --mode presigned --concurrency 64 --duration 10s
//!   → 65,316 req/s (p50 0.9 ms, p99 4.4 ms)
//! target/release/examples/sim_load --endpoint http://127.0.0.1:4580 --mode sdk --concurrency 64 --duration 10s
//!   → 10,851 req/s (p50 5.8 ms, p99 12.7 ms)
//! ```
//!
//! With the SDK as client, the SDK is the limit (the same simulator serves six times as much
//! to pre-signed requests), so the simulator is not the bottleneck of an SDK-driven benchmark.

mod calls;
mod cli;
mod clock;
mod config;
mod faults;
mod identity;
mod instance;
mod meter;
mod server;
mod sigv4;
mod state;
mod sts;
mod trust_policy;
mod wire;

pub use calls::{
    AssumeRoleRequest, CALL_LOG_CAPACITY, CallCount, CallLog, CallLogEntry, CallReport, OUTCOME_OK,
    SessionTag,
};
pub use cli::SimArgs;
pub use config::{
    AccessFailure, AccessFailureStatus, AccountSpec, ComputerSpec, ConfigError, ConfigFile,
    DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCOUNT_ID, DEFAULT_INSTANCE_START_TIME,
    DEFAULT_INSTANCE_STOP_TIME, DEFAULT_MAX_SESSION_DURATION, DEFAULT_OPERATIONS_PAGE_SIZE,
    DEFAULT_REGION, DEFAULT_SECRET_ACCESS_KEY, DEFAULT_SESSION_LIFETIME, DEFAULT_SETTLE_TIME,
    ErrorStyle, Faults, INSTANCE_NOT_RUNNING, InstanceState, LightsailException,
    MAX_ACCESS_SETUP_CALLS, MAX_CLOCK_OFFSET, MAX_INSTANCE_TIME, MAX_MAX_SESSION_DURATION,
    MAX_STS_CREDENTIAL_LIFETIME, MIN_MAX_SESSION_DURATION, MeterWindow, OperationFailure,
    RateLimit, RoleSpec, SessionWhenNotRunning, SimConfig, StsFaults, check_accounts,
    format_duration, format_signed_duration, is_valid_account_id, is_valid_external_id,
    is_valid_resource_name, is_valid_role_name, is_valid_role_session_name, parse_duration,
    parse_signed_duration, role_arn, validate_clock_offset, validate_instance_time,
    validate_sts_credential_lifetime,
};
pub use identity::BASE_USER_NAME;
pub use jiff::SignedDuration;
pub use server::AccountsView;
pub use state::{BilledInterval, ComputerView, IdleStop};
pub use sts::StsAction;
pub use wire::{Action, UNKNOWN_ACTION};

use anyhow::Context as _;
use server::{Shared, lock};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long [`RunningSimulator::shutdown`] lets open connections finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Starts simulators.
pub struct Simulator;

impl Simulator {
    /// Validates `config`, binds `bind_addr` (e.g. `"127.0.0.1:0"` for any free port) and
    /// serves on the current tokio runtime until [`RunningSimulator::shutdown`] or drop.
    pub async fn start(
        config: SimConfig,
        bind_addr: impl tokio::net::ToSocketAddrs,
    ) -> anyhow::Result<RunningSimulator> {
        config.validate()?;
        let clock = Arc::new(clock::SimClock::new(config.clock_offset));
        let mut world = state::World::new(
            state::Timings {
                settle_time: config.settle_time,
                session_lifetime: config.session_lifetime,
                page_size: config.operations_page_size,
                instance_start_time: config.instance_start_time,
                instance_stop_time: config.instance_stop_time,
            },
            Arc::clone(&clock),
            &config.account_id,
        );
        for computer in &config.computers {
            world.upsert(computer.clone());
        }
        let shared = Arc::new(Shared {
            verifier: sigv4::Verifier::new(),
            identities: Mutex::new(identity::Identities::new(
                &config.account_id,
                &config.access_key_id,
                &config.secret_access_key,
                &config.accounts,
                config.sts_credential_lifetime,
            )),
            error_style: config.error_style,
            clock,
            world: Mutex::new(world),
            faults: Mutex::new(faults::FaultState::new(config.faults.clone())),
            calls: Mutex::new(calls::CallCounter::default()),
        });
        let listener = tokio::net::TcpListener::bind(bind_addr)
            .await
            .context("cannot bind the simulator's listen address")?;
        let local_addr = listener.local_addr()?;
        // Off loopback anyone who reaches the port could reset counts or inject faults: the
        // control routes then need the token.
        if !local_addr.ip().is_loopback() && config.control_token.is_none() {
            anyhow::bail!(
                "listening on {local_addr}, which is not a loopback address, needs a control token \
                 (--control-token or LIGHTSAIL_SIM_CONTROL_TOKEN) to guard the /_sim/ routes"
            );
        }
        let (stop, mut stopped) = watch::channel(false);
        let app = server::router(Arc::clone(&shared), config.control_token.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    // An error means the handle is gone: stop too.
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await
        });
        tracing::info!(
            %local_addr,
            computers = config.computers.len(),
            accounts = config.accounts.len(),
            "lightsail-sim started"
        );
        Ok(RunningSimulator {
            local_addr,
            access_key_id: config.access_key_id,
            secret_access_key: config.secret_access_key,
            account_id: config.account_id,
            shared,
            stop,
            task: Some(task),
        })
    }
}

/// A serving simulator. Dropping it stops the server (without waiting); prefer
/// [`shutdown`](Self::shutdown).
pub struct RunningSimulator {
    local_addr: SocketAddr,
    access_key_id: String,
    secret_access_key: String,
    account_id: String,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningSimulator {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://ADDR`, for `endpoint_url` / `AWS_ENDPOINT_URL_LIGHTSAIL` and
    /// `AWS_ENDPOINT_URL_STS` (the same URL serves both; or set `AWS_ENDPOINT_URL`).
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.local_addr)
    }

    /// The access key id it accepts.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The secret key it accepts.
    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    /// The base account, the one its access key belongs to.
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// The base account, the other accounts and their roles.
    pub fn accounts(&self) -> AccountsView {
        server::accounts_view(&lock(&self.shared.identities))
    }

    /// Adds an account or replaces its roles (credentials issued already stay valid); `true`
    /// when it is new. Its roles may trust only accounts the simulator knows.
    pub fn upsert_account(&self, account: AccountSpec) -> Result<bool, ConfigError> {
        lock(&self.shared.identities).upsert_account(account)
    }

    /// The simulator knob shortening STS credentials (see
    /// [`SimConfig::sts_credential_lifetime`]).
    pub fn sts_credential_lifetime(&self) -> Option<Duration> {
        lock(&self.shared.identities).credential_lifetime()
    }

    /// Sets (or, with `None`, clears) the knob for credentials issued from now on; those issued
    /// already keep their expiration.
    pub fn set_sts_credential_lifetime(
        &self,
        lifetime: Option<Duration>,
    ) -> Result<(), ConfigError> {
        lock(&self.shared.identities).set_credential_lifetime(lifetime)
    }

    /// The call counts so far.
    pub fn calls(&self) -> CallReport {
        lock(&self.shared.calls).report()
    }

    /// The Start/Stop call log so far (see [`CallLog`]).
    pub fn call_log(&self) -> CallLog {
        lock(&self.shared.calls).log()
    }

    /// Zeroes the call counts and empties the call log.
    pub fn reset_calls(&self) {
        lock(&self.shared.calls).reset();
    }

    /// How far the simulated AWS clock is from this machine's.
    pub fn clock_offset(&self) -> SignedDuration {
        self.shared.clock.offset()
    }

    /// Moves the simulated AWS clock to `offset` from this machine's (e.g. `-2h`: AWS two hours
    /// behind the node); see [`SimConfig::clock_offset`].
    pub fn set_clock_offset(&self, offset: SignedDuration) -> Result<(), ConfigError> {
        self.shared.clock.set_offset(offset)
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        lock(&self.shared.faults).faults().clone()
    }

    /// Replaces the faults, the STS ones ([`Faults::sts`]) included (a new rate limit starts
    /// with a full bucket).
    pub fn set_faults(&self, faults: Faults) -> Result<(), ConfigError> {
        faults.validate()?;
        lock(&self.shared.faults).replace(faults);
        Ok(())
    }

    /// The STS faults in force ([`Faults::sts`]).
    pub fn sts_faults(&self) -> StsFaults {
        lock(&self.shared.faults).faults().sts.clone()
    }

    /// Replaces the STS faults only, from the next STS call on: the Lightsail faults and their
    /// rate-limit bucket stay as they are. `set_sts_faults(StsFaults::unavailable())` takes STS
    /// down, `set_sts_faults(StsFaults::default())` brings it back.
    pub fn set_sts_faults(&self, sts: StsFaults) -> Result<(), ConfigError> {
        sts.validate()?;
        tracing::info!(?sts, "STS faults replaced");
        lock(&self.shared.faults).replace_sts(sts);
        Ok(())
    }

    /// Adds a computer or replaces its spec (keeping its history); `true` when it is new.
    pub fn upsert_computer(&self, spec: ComputerSpec) -> Result<bool, ConfigError> {
        self.shared.validate_computer(&spec)?;
        Ok(self.shared.upsert_computer(spec).0)
    }

    /// Removes a computer and its operations; `false` when there was none.
    pub fn remove_computer(&self, name: &str) -> bool {
        lock(&self.shared.world).remove(name)
    }

    /// Every computer with its current state, sorted by name.
    pub fn computers(&self) -> Vec<ComputerView> {
        lock(&self.shared.world).views()
    }

    /// One computer with its current state.
    pub fn computer(&self, name: &str) -> Option<ComputerView> {
        lock(&self.shared.world).view_of(name)
    }

    /// Makes the StopInstanceOnIdle rule of `name` fire, as AWS would after the idle duration:
    /// the computer goes `stopping`, then `stopped` (as a `StopInstance` without force). Refused
    /// (with the reason) when there is no such computer, its add-on is not enabled or it is not
    /// running.
    pub fn trigger_idle_stop(&self, name: &str) -> Result<ComputerView, String> {
        lock(&self.shared.world)
            .trigger_idle_stop(name)
            .map_err(|refusal| refusal.message().to_owned())
    }

    /// Puts `name` in `state` at once, as a person in the console would (`pending` and
    /// `stopping` then settle after its starting or stopping time); no operation is made.
    /// Refused when there is no such computer.
    pub fn set_computer_state(
        &self,
        name: &str,
        state: InstanceState,
    ) -> Result<ComputerView, String> {
        lock(&self.shared.world)
            .set_state(name, state)
            .map_err(|refusal| refusal.message().to_owned())
    }

    /// Clears `holdStartResponse` for `name`, sending its held responses; `false` when there
    /// is no such computer.
    pub fn release_start_responses(&self, name: &str) -> bool {
        self.shared.release_start_responses(name).is_some()
    }

    /// Stops accepting, releases held responses, and waits (up to a few seconds) for open
    /// connections to finish.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.signal_stop();
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
            Ok(joined) => Ok(joined.context("simulator task failed")??),
            Err(_) => {
                task.abort();
                tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; closed them");
                Ok(())
            }
        }
    }

    fn signal_stop(&self) {
        lock(&self.shared.world).release_all();
        self.stop.send_replace(true);
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            self.signal_stop();
            // Nobody waits for a graceful end here, so make the end certain.
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    /// Other test binaries share one handle across tasks.
    #[test]
    fn handle_is_shareable_across_tasks() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<super::RunningSimulator>();
    }
}
