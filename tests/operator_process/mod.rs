//! The real `lightsail-gui-operator` binary as a child process, talking to the test control plane
//! and to an in-process Lightsail simulator, plus waiting on GuiSession conditions.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kube::Api;
use kube::runtime::wait::await_condition;
use lightsail_gui_operator::crd::GuiSession;
use lightsail_gui_operator::simulator::RunningSimulator;

/// A running operator process. Dropping it kills the process (and prints its log when the test
/// is failing), so no test leaves one behind.
pub struct Operator {
    child: std::sync::Mutex<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Operator {
    /// Starts `lightsail-gui-operator ARGS` with `kubeconfig`, Lightsail at the simulator, and
    /// `env` on top. Nothing else is inherited from this process's environment (no stray
    /// AWS_PROFILE, LGO_* or ~/.aws), so what the operator runs with is exactly what is given.
    pub fn start(
        kubeconfig: &Path,
        sim: &RunningSimulator,
        args: &[&str],
        env: &[(String, String)],
    ) -> Operator {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("operator.log");
        let log_file = std::fs::File::create(&log).expect("create operator log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lightsail-gui-operator"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("KUBECONFIG", kubeconfig)
            .env("AWS_ENDPOINT_URL_LIGHTSAIL", sim.endpoint_url())
            .env("AWS_ACCESS_KEY_ID", sim.access_key_id())
            .env("AWS_SECRET_ACCESS_KEY", sim.secret_access_key())
            .env("AWS_REGION", "us-east-1")
            // No instance metadata service here: do not let the SDK wait for one.
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_BACKTRACE", "1")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone log handle"))
            .stderr(log_file);
        let child = cmd.spawn().expect("start the operator binary");
        Operator {
            child: std::sync::Mutex::new(child),
            log,
            _dir: dir,
        }
    }

    /// Everything the operator has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it has exited, with the status when it has.
    pub fn exited(&self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        child.try_wait().ok().flatten()
    }

    /// Resolves when the process has exited, checking every 200 ms: lets a wait fail at once
    /// with the log instead of running into its deadline.
    pub async fn until_exit(&self) -> std::process::ExitStatus {
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The last lines of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
        if std::thread::panicking() {
            eprintln!("--- operator log (last lines) ---\n{}", self.log_tail());
        }
    }
}

/// A loopback port that was free a moment ago, for the operator's HTTP server.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free port")
}

/// Whether condition `type_` of the object has `status`.
pub fn has_condition(obj: &GuiSession, type_: &str, status: &str) -> bool {
    obj.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == status))
}

/// Waits (watching, up to `deadline`) until `check` holds for GuiSession `name`; on timeout the
/// panic shows the object and the operator's log.
pub async fn wait_for(
    api: &Api<GuiSession>,
    name: &str,
    what: &str,
    deadline: Duration,
    operator: &Operator,
    check: impl Fn(&GuiSession) -> bool + Send + 'static,
) -> GuiSession {
    let cond = move |obj: Option<&GuiSession>| obj.is_some_and(&check);
    let waited = tokio::select! {
        waited = tokio::time::timeout(deadline, await_condition(api.clone(), name, cond)) => waited,
        status = operator.until_exit() => {
            panic!("the operator exited ({status}) while {name} was not yet {what}:\n{}", operator.log_tail())
        }
    };
    match waited {
        Ok(Ok(Some(obj))) => obj,
        Ok(Ok(None)) => panic!("GuiSession {name} disappeared while waiting for {what}"),
        Ok(Err(e)) => panic!("watching GuiSession {name}: {e}"),
        Err(_) => {
            let now = api.get_opt(name).await.ok().flatten();
            panic!(
                "GuiSession {name}: not {what} within {deadline:?}; it is now {}\n--- operator log ---\n{}",
                serde_json::to_string_pretty(&now).unwrap_or_default(),
                operator.log_tail()
            )
        }
    }
}

/// Waits up to `deadline` until `GET http://127.0.0.1:PORT/PATH` answers 200.
pub async fn wait_http_ok(port: u16, path: &str, deadline: Duration, operator: &Operator) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = tokio::time::Instant::now();
    let mut last = String::new();
    while started.elapsed() < deadline {
        if let Some(status) = operator.exited() {
            panic!("the operator exited ({status}):\n{}", operator.log_tail());
        }
        if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            let request =
                format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            let mut reply = Vec::new();
            if stream.write_all(request.as_bytes()).await.is_ok()
                && stream.read_to_end(&mut reply).await.is_ok()
            {
                last = String::from_utf8_lossy(&reply).into_owned();
                if last.starts_with("HTTP/1.1 200") {
                    return;
                }
            }
        }
        // A probe's period, not a synchronisation: the loop ends on the answer or the deadline.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{path} did not answer 200 within {deadline:?}; last reply: {last:?}\n{}",
        operator.log_tail()
    );
}
