//! The operator binary as a child process (the way it runs for real), with a Lightsail simulator
//! as its AWS endpoint, plus waits on GuiSession state with deadlines.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use lightsail_gui_operator::guisession::types::GuiSession;

use super::ControlPlane;

pub const SIM_ACCESS_KEY_ID: &str = "AKIDLIGHTSAILSIM";
pub const SIM_SECRET_ACCESS_KEY: &str = "lightsail-sim-secret";

/// A running `lightsail-gui-operator run`. Killed (SIGKILL) and reaped on drop.
pub struct Operator {
    child: Option<Child>,
    pub log: PathBuf,
    pub http: SocketAddr,
    _dir: tempfile::TempDir,
}

/// How to start an operator: the namespace it watches (empty: all) plus extra flags.
pub struct OperatorOptions<'a> {
    pub namespace: &'a str,
    pub sim_url: &'a str,
    pub args: Vec<String>,
    /// Run with this kubeconfig instead of the control plane's admin one (e.g. as a
    /// ServiceAccount).
    pub kubeconfig: Option<PathBuf>,
    /// Extra environment, e.g. the LGO_* settings of the Helm chart's Deployment.
    pub env: Vec<(String, String)>,
    /// The executable; `None` means the one Cargo built for this test binary. The benchmark (an
    /// example, for which Cargo names no binary) passes the release build.
    pub binary: Option<PathBuf>,
    /// `--log` filter. Tests want the debug lines; a benchmark measures the production default.
    pub log: String,
    /// Give the operator the simulator's AWS keys (false: no credentials anywhere).
    pub credentials: bool,
}

impl<'a> OperatorOptions<'a> {
    pub fn new(namespace: &'a str, sim_url: &'a str) -> Self {
        OperatorOptions {
            namespace,
            sim_url,
            args: vec!["--leader-elect".into(), "false".into()],
            kubeconfig: None,
            env: Vec::new(),
            binary: None,
            log: "info,lightsail_gui_operator=debug".into(),
            credentials: true,
        }
    }

    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    pub fn log(mut self, filter: &str) -> Self {
        self.log = filter.into();
        self
    }

    pub fn arg(mut self, flag: &str, value: &str) -> Self {
        self.args.push(flag.into());
        self.args.push(value.into());
        self
    }

    /// Replaces the default `--leader-elect false`.
    pub fn electing(mut self, lease_duration: &str) -> Self {
        self.args.clear();
        let namespace = self.namespace;
        self.arg("--leader-elect", "true")
            .arg("--lease-namespace", namespace)
            .arg("--lease-duration", lease_duration)
    }
}

impl Operator {
    pub fn start(cp: &ControlPlane, opts: OperatorOptions<'_>) -> Operator {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("operator.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        // option_env!: examples that include this module have no CARGO_BIN_EXE_* at all.
        let binary = opts
            .binary
            .clone()
            .or_else(|| option_env!("CARGO_BIN_EXE_lightsail-gui-operator").map(PathBuf::from))
            .expect("no operator binary: set OperatorOptions::binary");
        let mut cmd = Command::new(binary);
        cmd.arg("run");
        if !opts.namespace.is_empty() {
            cmd.args(["--namespace", opts.namespace]);
        }
        let kubeconfig = opts.kubeconfig.as_ref().unwrap_or(&cp.kubeconfig);
        let credentials = [
            ("AWS_ACCESS_KEY_ID", SIM_ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SIM_SECRET_ACCESS_KEY),
        ];
        let child = cmd
            .args(["--http-addr", "127.0.0.1:0", "--log-format", "json"])
            .args(["--log", &opts.log])
            .args(&opts.args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KUBECONFIG", kubeconfig)
            .env("AWS_ENDPOINT_URL_LIGHTSAIL", opts.sim_url)
            .env("AWS_REGION", "us-east-1")
            // Keep the SDK away from IMDS and config files of the machine running the tests.
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", dir.path().join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.path().join("no-aws-credentials"),
            )
            .envs(credentials.iter().filter(|_| opts.credentials).copied())
            .envs(opts.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn lightsail-gui-operator");
        let mut op = Operator {
            child: Some(child),
            log,
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            _dir: dir,
        };
        op.http = op.wait_for_log("serving /metrics", Duration::from_secs(60), |line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            v.get("address")?.as_str()?.parse().ok()
        });
        op
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until a log line containing `needle` yields `Some` from `parse`; panics with the
    /// log after `deadline` or when the process exits.
    pub fn wait_for_log<T>(
        &mut self,
        needle: &str,
        deadline: Duration,
        parse: impl Fn(&str) -> Option<T>,
    ) -> T {
        let until = Instant::now() + deadline;
        loop {
            let text = self.log_text();
            if let Some(v) = text.lines().filter(|l| l.contains(needle)).find_map(&parse) {
                return v;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("operator exited ({status}) before logging {needle:?}:\n{text}");
            }
            assert!(
                Instant::now() < until,
                "no {needle:?} in the operator log within {deadline:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, as a crash or an OOM kill would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        child.wait().expect("wait")
    }

    /// Sends `signal` (a name for kill(1): TERM, STOP, CONT, ...) without waiting for anything.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("running").to_string();
        let status = Command::new("kill")
            .args([format!("-{signal}"), pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed: {status}");
    }

    /// SIGSTOP: the process stops where it is, as in a long GC pause or a frozen VM. Drop still
    /// kills it (SIGKILL works on a stopped process).
    pub fn suspend(&self) {
        self.signal("STOP");
    }

    /// SIGCONT after [`Operator::suspend`].
    pub fn resume(&self) {
        self.signal("CONT");
    }

    /// Whether the process is still running (not yet exited).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Waits until the process exits and reaps it; panics with the log after `deadline`.
    pub fn wait_exit(&mut self, deadline: Duration) -> std::process::ExitStatus {
        let until = Instant::now() + deadline;
        loop {
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < until,
                "operator still running {deadline:?} later:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// GET `path` from the operator's HTTP server: (status code, body).
    pub fn http_get(&self, path: &str) -> (u16, String) {
        http_get(self.http, path)
    }

    /// The value of a metric line (`name{labels}`), 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        let (_, body) = self.http_get("/metrics");
        metric_value(&body, series)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "--- operator log ({}) ---\n{}",
                self.log.display(),
                self.log_text()
            );
        }
    }
}

pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// A minimal HTTP/1.0 GET (the operator's endpoints are plain text).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, body.to_owned())
}

pub fn condition<'a>(gs: &'a GuiSession, type_: &str) -> Option<&'a Condition> {
    gs.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

pub fn condition_is(gs: &GuiSession, type_: &str, status: &str) -> bool {
    condition(gs, type_).is_some_and(|c| c.status == status)
}

/// Waits until the GuiSession satisfies `pred`, watching it (no polling); panics with its last
/// state after `deadline`.
pub async fn wait_for(
    api: &Api<GuiSession>,
    name: &str,
    deadline: Duration,
    what: &str,
    pred: impl Fn(&GuiSession) -> bool,
) -> GuiSession {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(api.clone(), config).boxed();
    let mut last = None;
    let found = tokio::time::timeout(deadline, async {
        while let Some(event) = stream.next().await {
            let objects = match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => vec![o],
                _ => continue,
            };
            for o in objects {
                if pred(&o) {
                    return Some(o);
                }
                last = Some(o);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(o)) => o,
        _ => panic!(
            "GuiSession {name}: not {what} within {deadline:?}; last seen: {:#?}",
            last.map(|o| o.status)
        ),
    }
}

/// Applies a GuiSession from JSON (server-side apply, as `kubectl apply --server-side` does).
/// Server-side applies object `name` of any kind (an account, a Secret, ...) from JSON.
pub async fn apply_json<K>(api: &Api<K>, name: &str, body: serde_json::Value) -> K
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply("lgo-tests").force(),
        &Patch::Apply(body),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {name}: {e}"))
}

pub async fn apply(api: &Api<GuiSession>, manifest: serde_json::Value) -> GuiSession {
    let name = manifest["metadata"]["name"]
        .as_str()
        .expect("manifest has a name")
        .to_owned();
    api.patch(
        &name,
        &PatchParams::apply("lgo-tests").force(),
        &Patch::Apply(&manifest),
    )
    .await
    .unwrap_or_else(|e| panic!("apply GuiSession {name}: {e}"))
}

pub fn guisession(name: &str, spec: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "lightsail.operators.dev/v1alpha1",
        "kind": "GuiSession",
        "metadata": { "name": name },
        "spec": spec,
    })
}

/// Waits (watching Events, with a deadline) until an Event about `name` satisfies `pred`;
/// returns every Event about `name` seen by then. Events are written after the status they
/// report on, so a test that has seen the status must still wait for them.
pub async fn wait_for_event(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    deadline: Duration,
    pred: impl Fn(&(String, String, String)) -> bool,
) -> Vec<(String, String, String)> {
    use k8s_openapi::api::events::v1::Event;
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    let mut seen = Vec::new();
    let found = tokio::time::timeout(deadline, async {
        while let Some(event) = stream.next().await {
            let e = match event {
                Ok(watcher::Event::Apply(e) | watcher::Event::InitApply(e)) => e,
                _ => continue,
            };
            if e.regarding.as_ref().and_then(|r| r.name.as_deref()) != Some(name) {
                continue;
            }
            let entry = (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
            );
            let hit = pred(&entry);
            seen.push(entry);
            if hit {
                return true;
            }
        }
        false
    })
    .await;
    match found {
        Ok(true) => seen,
        _ => panic!("no matching Event about {name} within {deadline:?}; seen: {seen:?}"),
    }
}

/// Waits until `check` holds, re-evaluating every 50 ms (for state outside Kubernetes, such as
/// the simulator's call counters); panics with `what` after `deadline`.
pub async fn eventually(deadline: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !check() {
        assert!(Instant::now() < until, "not {what} within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An SDK client for the simulator at `endpoint`, signing with its test key, retries off (a test
/// counts every call).
pub fn sim_sdk(endpoint: &str) -> aws_sdk_lightsail::Client {
    use aws_sdk_lightsail::config::retry::RetryConfig;
    use aws_sdk_lightsail::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_lightsail::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            SIM_ACCESS_KEY_ID,
            SIM_SECRET_ACCESS_KEY,
            None,
            None,
            "tests",
        ))
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_lightsail::Client::from_conf(config)
}
