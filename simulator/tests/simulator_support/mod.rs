//! Helpers for the simulator tests: SDK clients, raw (optionally signed) HTTP requests, the
//! control endpoint, waiting on conditions, and the `lightsail-sim` binary as a child process.

#![allow(dead_code)] // Each test binary uses a different subset.

use aws_sdk_lightsail::config::retry::RetryConfig;
use aws_sdk_lightsail::config::{BehaviorVersion, Credentials, Region};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

pub const TEST_REGION: &str = "us-east-1";

/// An SDK client for `endpoint` signing with the given key pair in `region`.
pub fn sdk_client(
    endpoint: &str,
    access_key_id: &str,
    secret_access_key: &str,
    region: &str,
    retry: RetryConfig,
) -> aws_sdk_lightsail::Client {
    let config = aws_sdk_lightsail::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(
            access_key_id,
            secret_access_key,
            None,
            None,
            "simulator-tests",
        ))
        .endpoint_url(endpoint)
        .retry_config(retry)
        .build();
    aws_sdk_lightsail::Client::from_conf(config)
}

/// A response, read to the end.
#[derive(Debug)]
pub struct HttpReply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HttpReply {
    pub fn json(&self) -> serde_json::Value {
        match serde_json::from_slice(&self.body) {
            Ok(value) => value,
            Err(e) => panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            ),
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `request` and reads the whole answer.
pub async fn send(request: Request<Full<Bytes>>) -> HttpReply {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let response = match client.request(request).await {
        Ok(response) => response,
        Err(e) => panic!("HTTP request failed: {e}"),
    };
    let (parts, body) = response.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => panic!("reading the HTTP body failed: {e}"),
    };
    HttpReply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// A plain request to the control endpoint.
pub async fn control(method: Method, url: &str, body: Option<serde_json::Value>) -> HttpReply {
    let mut builder = Request::builder().method(method).uri(url);
    let bytes = match body {
        Some(json) => {
            builder = builder.header("content-type", "application/json");
            Bytes::from(json.to_string())
        }
        None => Bytes::new(),
    };
    match builder.body(Full::new(bytes)) {
        Ok(request) => send(request).await,
        Err(e) => panic!("bad control request: {e}"),
    }
}

/// How to sign a raw AWS request; `None` leaves it unsigned.
pub struct Signing<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
    pub time: SystemTime,
}

/// A `POST /` awsJson1_1 request with the given target and body, signed as told.
pub fn aws_request(
    endpoint: &str,
    target: Option<&str>,
    body: &[u8],
    signing: Option<Signing<'_>>,
) -> Request<Full<Bytes>> {
    let host = endpoint.trim_start_matches("http://").to_owned();
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(format!("{endpoint}/"))
        .header("host", host)
        .header("content-type", "application/x-amz-json-1.1");
    if let Some(target) = target {
        request = request.header("x-amz-target", target);
    }
    let mut request = match request.body(Full::new(Bytes::copy_from_slice(body))) {
        Ok(request) => request,
        Err(e) => panic!("bad AWS request: {e}"),
    };
    if let Some(signing) = signing {
        let identity: Identity = Credentials::new(
            signing.access_key_id,
            signing.secret_access_key,
            None,
            None,
            "simulator-tests",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(signing.region)
            .name("lightsail")
            .time(signing.time)
            .settings(SigningSettings::default())
            .build();
        let params = match params {
            Ok(params) => params.into(),
            Err(e) => panic!("signing params: {e}"),
        };
        let uri = request.uri().to_string();
        let headers: Vec<(&str, &str)> = request
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect();
        let signable =
            match SignableRequest::new("POST", uri, headers.into_iter(), SignableBody::Bytes(body))
            {
                Ok(signable) => signable,
                Err(e) => panic!("signable request: {e}"),
            };
        let instructions = match sign(signable, &params) {
            Ok(output) => output.into_parts().0,
            Err(e) => panic!("signing: {e}"),
        };
        instructions.apply_to_request_http1x(&mut request);
    }
    request
}

/// The bytes of `request` as HTTP/1.1, for sending over a bare socket.
pub async fn request_bytes(request: Request<Full<Bytes>>) -> Vec<u8> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => match e {},
    };
    let mut bytes = format!("{} {} HTTP/1.1\r\n", parts.method, parts.uri.path()).into_bytes();
    for (name, value) in &parts.headers {
        bytes.extend_from_slice(name.as_str().as_bytes());
        bytes.extend_from_slice(b": ");
        bytes.extend_from_slice(value.as_bytes());
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    bytes.extend_from_slice(&body);
    bytes
}

/// Polls `probe` every 10 ms until it yields a value, failing the test after `timeout`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `lightsail-sim` as a child process; killed on drop if still running.
pub struct SimProcess {
    child: Child,
    pub endpoint: String,
}

impl SimProcess {
    /// Starts the binary with `args` (plus `--listen 127.0.0.1:0`) and reads its endpoint
    /// from the first stdout line.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with(args, None)
    }

    /// As [`start`](Self::start), logging with `RUST_LOG=filter` into the file `log`.
    pub fn start_logging(args: &[&str], filter: &str, log: &std::path::Path) -> Self {
        match std::fs::File::create(log) {
            Ok(file) => Self::start_with(args, Some((filter, file))),
            Err(e) => panic!("cannot create {}: {e}", log.display()),
        }
    }

    fn start_with(args: &[&str], logging: Option<(&str, std::fs::File)>) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lightsail-sim"));
        command
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped());
        match logging {
            Some((filter, file)) => command.env("RUST_LOG", filter).stderr(file),
            None => command.stderr(Stdio::null()),
        };
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => panic!("cannot start lightsail-sim: {e}"),
        };
        let Some(stdout) = child.stdout.take() else {
            panic!("no stdout pipe");
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let read = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = tx.send(read);
        });
        let mut process = Self {
            child,
            endpoint: String::new(),
        };
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => panic!("reading lightsail-sim's stdout: {e}"),
            Err(_) => panic!("lightsail-sim printed no line within 20 s"),
        };
        let Some(endpoint) = line.trim().strip_prefix("lightsail-sim listening on ") else {
            panic!("unexpected first line: {line:?}");
        };
        process.endpoint = endpoint.to_owned();
        process
    }

    /// Sends SIGTERM and waits (with a deadline) for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid} failed");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => panic!("lightsail-sim did not exit within 10 s of SIGTERM"),
                Err(e) => panic!("waiting for lightsail-sim: {e}"),
            }
        }
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs the binary to completion with `args`, returning (status, stdout, stderr).
pub fn run_binary(args: &[&str]) -> (ExitStatus, String, String) {
    let output = match Command::new(env!("CARGO_BIN_EXE_lightsail-sim"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
    {
        Ok(output) => output,
        Err(e) => panic!("cannot run lightsail-sim: {e}"),
    };
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A simulator on a free local port; the test fails if it cannot start.
pub async fn start(config: lightsail_sim::SimConfig) -> lightsail_sim::RunningSimulator {
    match lightsail_sim::Simulator::start(config, "127.0.0.1:0").await {
        Ok(simulator) => simulator,
        Err(e) => panic!("simulator did not start: {e:#}"),
    }
}

/// Shuts `simulator` down; the test fails if it does not stop cleanly.
pub async fn stop(simulator: lightsail_sim::RunningSimulator) {
    if let Err(e) = simulator.shutdown().await {
        panic!("simulator did not shut down cleanly: {e:#}");
    }
}

/// An SDK client for `sim` with its base credentials in [`TEST_REGION`], retries off.
pub fn client(sim: &lightsail_sim::RunningSimulator) -> aws_sdk_lightsail::Client {
    sdk_client(
        &sim.endpoint_url(),
        sim.access_key_id(),
        sim.secret_access_key(),
        TEST_REGION,
        aws_sdk_lightsail::config::retry::RetryConfig::disabled(),
    )
}

/// The error code, message and HTTP status of a failed SDK call; panics if it succeeded.
pub fn refusal<E, R: std::fmt::Debug>(
    result: Result<
        R,
        aws_sdk_lightsail::error::SdkError<
            E,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
    >,
) -> (String, String, u16)
where
    E: aws_sdk_lightsail::error::ProvideErrorMetadata
        + std::error::Error
        + Send
        + Sync
        + aws_smithy_runtime_api::client::result::CreateUnhandledError
        + 'static,
{
    match result {
        Ok(output) => panic!("succeeded: {output:?}"),
        Err(error) => {
            let status = error.raw_response().map_or(0, |r| r.status().as_u16());
            let error = error.into_service_error();
            (
                error.code().unwrap_or_default().to_owned(),
                error.message().unwrap_or_default().to_owned(),
                status,
            )
        }
    }
}
