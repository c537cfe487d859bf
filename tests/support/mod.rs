//! Test support: a real kube-apiserver + etcd shared by every test of one test binary.
//!
//! The control plane is started once per test binary by `scripts/control-plane-up` (the same
//! script developers use), or reused from `LGO_TEST_KUBECONFIG` when that names a running one.
//! The script runs until its stdin closes; this process holds the write end of that pipe for its
//! whole life, so however it ends (success, panic, abort, kill -9) the pipe closes and the script
//! stops etcd and kube-apiserver and removes its temp dir.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod audit;
pub mod chart;
pub mod env;
pub mod operator;
pub mod root;
pub mod tenant;
pub mod verdicts;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

pub struct ControlPlane {
    pub kubeconfig: PathBuf,
    /// Directory holding etcd, kube-apiserver, kubectl and helm.
    pub bin_dir: PathBuf,
    // Kept open for the life of the control plane: closing it stops the control plane.
    lifeline: Option<Mutex<Lifeline>>,
}

/// scripts/control-plane-up, running: its stdin (closing it stops the control plane; commands go
/// in there) and its stdout (answers to commands come out there).
struct Lifeline {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Drop for Lifeline {
    /// Stops the control plane and waits until the script has stopped everything it started.
    /// (The shared control plane is a static and is never dropped: the process's end closes
    /// the pipe instead.)
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The control plane of this test binary, started on first use.
pub fn control_plane() -> &'static ControlPlane {
    static CONTROL_PLANE: OnceLock<ControlPlane> = OnceLock::new();
    CONTROL_PLANE.get_or_init(|| start().unwrap_or_else(|e| panic!("control plane: {e}")))
}

/// Directory holding etcd, kube-apiserver, kubectl and helm, built (or found cached) on first use
/// without starting anything: for tests that only run helm or kubectl offline.
pub fn bin_dir() -> &'static Path {
    static BIN_DIR: OnceLock<PathBuf> = OnceLock::new();
    BIN_DIR.get_or_init(|| build_control_plane().unwrap_or_else(|e| panic!("control plane: {e}")))
}

/// The Helm chart's directory.
pub fn chart_dir() -> PathBuf {
    repo_root().join("charts/lightsail-gui-operator")
}

/// The pinned helm, run in the chart's directory (values files are named relative to it) and
/// kept away from the user's repositories, plugins and registry logins.
pub fn helm() -> Command {
    let mut cmd = Command::new(bin_dir().join("helm"));
    let home = std::env::temp_dir().join(format!("lgo-helm-home-{}", std::process::id()));
    cmd.env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .current_dir(chart_dir());
    cmd
}

fn build_control_plane() -> Result<PathBuf, String> {
    let out = Command::new(repo_root().join("scripts/control-plane-build"))
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running scripts/control-plane-build: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "scripts/control-plane-build failed ({})",
            out.status
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn start() -> Result<ControlPlane, String> {
    let bin_dir = bin_dir().to_path_buf();
    if let Ok(kubeconfig) = std::env::var("LGO_TEST_KUBECONFIG") {
        return Ok(ControlPlane {
            kubeconfig: kubeconfig.into(),
            bin_dir,
            lifeline: None,
        });
    }
    start_script()
}

fn start_script() -> Result<ControlPlane, String> {
    let bin_dir = bin_dir().to_path_buf();
    let mut child = Command::new(repo_root().join("scripts/control-plane-up"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("running scripts/control-plane-up: {e}"))?;
    let stdin = child.stdin.take().ok_or("no stdin pipe")?;
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    let mut lifeline = Lifeline {
        child,
        stdin: Some(stdin),
        stdout: BufReader::new(stdout),
    };
    let kubeconfig =
        lifeline.read_until(|line| line.strip_prefix("kubeconfig: ").map(PathBuf::from));
    let Some(kubeconfig) = kubeconfig else {
        let status = lifeline.child.wait().map_err(|e| e.to_string())?;
        return Err(format!(
            "scripts/control-plane-up exited ({status}) before it was ready"
        ));
    };
    Ok(ControlPlane {
        kubeconfig,
        bin_dir,
        lifeline: Some(Mutex::new(lifeline)),
    })
}

impl Lifeline {
    /// Reads the script's stdout until `parse` accepts a line; `None` at its end.
    fn read_until<T>(&mut self, parse: impl Fn(&str) -> Option<T>) -> Option<T> {
        let mut line = String::new();
        loop {
            line.clear();
            match self.stdout.read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {
                    if let Some(v) = parse(line.trim_end()) {
                        return Some(v);
                    }
                }
            }
        }
    }
}

impl ControlPlane {
    /// A control plane of one test's own, stopped when it is dropped: for a test that kills and
    /// restarts its kube-apiserver, which must not disturb the other tests of its binary.
    pub fn start_own() -> ControlPlane {
        start_script().unwrap_or_else(|e| panic!("own control plane: {e}"))
    }

    /// kill -9 of kube-apiserver (etcd keeps running); returns once it is dead.
    pub fn kill_apiserver(&self) {
        self.command("kill-apiserver", "apiserver: killed");
    }

    /// Starts kube-apiserver again on the same port and etcd; returns once /readyz answers.
    pub fn start_apiserver(&self) {
        self.command("start-apiserver", "apiserver: ready");
    }

    fn command(&self, command: &str, reply: &str) {
        let lifeline = self
            .lifeline
            .as_ref()
            .expect("a control plane this process started (not LGO_TEST_KUBECONFIG's)");
        let mut lifeline = lifeline.lock().unwrap_or_else(|p| p.into_inner());
        let stdin = lifeline.stdin.as_mut().expect("control plane running");
        writeln!(stdin, "{command}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("control-plane-up {command}: {e}"));
        assert!(
            lifeline
                .read_until(|line| (line == reply).then_some(()))
                .is_some(),
            "control-plane-up ended before answering {command}"
        );
    }

    /// A client for `context` of the generated kubeconfig: `admin` or `developer` (no grants).
    pub async fn client_as(&self, context: &str) -> Client {
        lightsail_gui_operator::install_crypto_provider();
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let options = KubeConfigOptions {
            context: Some(context.to_owned()),
            ..Default::default()
        };
        let config = Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .expect("kubeconfig");
        Client::try_from(config).expect("client")
    }

    pub async fn client(&self) -> Client {
        self.client_as("admin").await
    }

    /// kube-apiserver's audit log (JSON lines), next to the kubeconfig: the requests of
    /// ServiceAccounts at level Metadata (see scripts/control-plane-up). Written as requests
    /// complete: wait for the entries you need. A control plane reused through
    /// LGO_TEST_KUBECONFIG has one only if it was started by that script.
    pub fn audit_log(&self) -> PathBuf {
        self.kubeconfig
            .parent()
            .expect("the kubeconfig is in the control plane's directory")
            .join("audit.log")
    }

    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(self.bin_dir.join("kubectl"));
        cmd.arg("--kubeconfig").arg(&self.kubeconfig);
        cmd
    }
}

impl ControlPlane {
    /// `helm ARGS` against this control plane, the way a user runs it: stdout and stderr
    /// together, or a panic with both.
    pub fn helm_ok(&self, args: &[&str]) -> String {
        let out = helm()
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .expect("run helm");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "helm {args:?} failed:\n{text}");
        text
    }
}

/// Creates a namespace of its own for one test, named after it.
pub async fn test_namespace(client: &Client, test: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "{}-{}-{}",
        test.replace('_', "-"),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let namespace: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name }
    }))
    .expect("namespace");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create namespace");
    name
}

/// The non-empty documents of a multi-document YAML stream (rendered charts, kustomize output,
/// example files), as JSON values.
pub fn documents(text: &str) -> Vec<serde_json::Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| serde_json::Value::deserialize(doc).expect("YAML parses"))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// A namespace of its own for one test whose Pods must meet the restricted Pod Security Standard.
pub async fn restricted_namespace(client: &Client, test: &str) -> String {
    let name = test_namespace(client, test).await;
    let labels = serde_json::json!({"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }}});
    Api::<Namespace>::all(client.clone())
        .patch(&name, &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .expect("label namespace");
    name
}

/// Applies every CRD in `crds/` (server-side apply), once per test binary.
pub async fn install_crds(client: &Client) {
    let dir = repo_root().join("crds");
    let mut entries: Vec<_> = std::fs::read_dir(&dir).expect("crds/").flatten().collect();
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read crd");
        apply_crd(client, &serde_yaml::from_str(&text).expect("parse crd")).await;
    }
}

/// Applies one CRD (server-side apply) and returns once it is Established.
pub async fn apply_crd(
    client: &Client,
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let name = crd.metadata.name.clone().expect("crd name");
    api.patch(
        &name,
        &PatchParams::apply("lgo-tests").force(),
        &Patch::Apply(crd),
    )
    .await
    .expect("apply crd");
    // Served only once Established: a request before that is a 404.
    let established = kube::runtime::wait::await_condition(
        api.clone(),
        &name,
        kube::runtime::wait::conditions::is_crd_established(),
    );
    match tokio::time::timeout(std::time::Duration::from_secs(60), established).await {
        Ok(Ok(_)) => {}
        other => panic!("CRD {name} not established within 60 s: {other:?}"),
    }
}

/// The metrics table of README.md, as (name, type) rows.
pub fn documented_metrics() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README");
    let table = readme
        .split("| metric | type | labels | meaning |")
        .nth(1)
        .expect("README has the metrics table");
    table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_owned(), cells[2].to_owned())
        })
        .collect()
}
