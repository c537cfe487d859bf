//! The operator as users run it: its OCI image (built by `scripts/image`, no Docker daemon)
//! installed with `helm install` onto a real single-node cluster (`scripts/cluster-up`: kubelet,
//! containerd, runc, CNI, kube-proxy), in a namespace that enforces the restricted Pod Security
//! Standard, with the Lightsail simulator running as a Pod behind a Service.
//!
//! One test walks the whole life of an install, because the node is expensive to start and each
//! phase starts from the state the previous one left: install -> the leader Pod deleted ->
//! `helm upgrade` while 200 GuiSessions renew -> `helm uninstall` -> the node stopped, with
//! nothing left behind. Each phase prints its figures. It needs root: otherwise it is skipped,
//! saying so, or fails under CI (support/root.rs).
mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use lightsail_gui_operator::guisession::types::GuiSession;
use lightsail_sim::CallLog;
use serde_json::{Value, json};
use support::env::ready;
use support::operator::{SIM_ACCESS_KEY_ID, SIM_SECRET_ACCESS_KEY, guisession, wait_for};
use support::{chart_dir, helm, repo_root};

const RELEASE: &str = "lgo";
const SYSTEM: &str = "lgo-system";
const SIM_NAMESPACE: &str = "lgo-sim";
const LAB: &str = "lab";
const OPERATOR_IMAGE: &str = "docker.io/library/lightsail-gui-operator";
const SIM_IMAGE: &str = "docker.io/library/lightsail-sim";
const SIM_TOKEN: &str = "node-test-control-token";
/// Objects renewing through the upgrade, and how often.
const N: usize = 200;
const MAX_AGE: Duration = Duration::from_secs(20);
/// The chart's start settle and Lightsail timeout for this test: a start goes out at most
/// settle - timeout - 1 s after its fence was written.
const START_SETTLE: Duration = Duration::from_secs(10);
const LIGHTSAIL_TIMEOUT: Duration = Duration::from_secs(5);
const LEASE_DURATION: &str = "6s";
const WAIT: Duration = Duration::from_secs(180);

/// `scripts/cluster-up`, running until its stdin closes.
struct Node {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr_log: PathBuf,
    kubeconfig: PathBuf,
    containerd: PathBuf,
    kubectl: PathBuf,
}

impl Node {
    fn start(stderr_log: PathBuf) -> Node {
        let stderr = std::fs::File::create(&stderr_log).expect("stderr log");
        let mut child = Command::new(repo_root().join("scripts/cluster-up"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("run scripts/cluster-up");
        let stdin = child.stdin.take();
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let (mut kubeconfig, mut containerd) = (None, None);
        // The script has its own deadlines; its end (error) ends this loop.
        for line in lines.by_ref() {
            let line = line.expect("read cluster-up");
            if let Some(path) = line.strip_prefix("kubeconfig: ") {
                kubeconfig = Some(PathBuf::from(path));
            } else if let Some(path) = line.strip_prefix("containerd: ") {
                containerd = Some(PathBuf::from(path));
            } else if line.starts_with("node-ip: ") {
                break;
            }
        }
        let (Some(kubeconfig), Some(containerd)) = (kubeconfig, containerd) else {
            let status = child.wait();
            let log = std::fs::read_to_string(&stderr_log).unwrap_or_default();
            panic!("scripts/cluster-up ended ({status:?}) before the node was Ready:\n{log}");
        };
        let kubectl = support::bin_dir().join("kubectl");
        Node {
            child,
            stdin,
            stderr_log,
            kubeconfig,
            containerd,
            kubectl,
        }
    }

    fn kubectl(&self, args: &[&str]) -> String {
        self.kubectl_stdin(args, None)
    }

    fn kubectl_stdin(&self, args: &[&str], input: Option<&str>) -> String {
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        run(&mut cmd, input)
    }

    fn apply(&self, manifest: &Value) {
        let text = serde_json::to_string(manifest).expect("json");
        self.kubectl_stdin(&["apply", "--server-side", "-f", "-"], Some(&text));
    }

    fn helm(&self, args: &[&str]) -> String {
        let mut cmd = helm();
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        run(&mut cmd, None)
    }

    fn import(&self, archive: &Path, name: &str) {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(&self.containerd)
            .args(["-n", "k8s.io", "images", "import", "--base-name", name])
            .arg(archive);
        run(&mut cmd, None);
    }

    fn tag(&self, from: &str, to: &str) {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(&self.containerd)
            .args(["-n", "k8s.io", "images", "tag", "--force", from, to]);
        run(&mut cmd, None);
    }

    async fn client(&self) -> kube::Client {
        lightsail_gui_operator::install_crypto_provider();
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("kubeconfig");
        kube::Client::try_from(config).expect("client")
    }

    /// Stops the node and returns what the script said on its way out.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait for cluster-up");
        let mut log = String::new();
        std::fs::File::open(&self.stderr_log)
            .and_then(|mut f| f.read_to_string(&mut log))
            .expect("cluster-up log");
        (status, log)
    }
}

fn run(cmd: &mut Command, input: Option<&str>) -> String {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        use std::io::Write;
        stdin.write_all(text.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `scripts/image --profile dev ARGS`: the debug binaries this test run already built, in the
/// image users get (the profile changes the binary only).
fn build_image(args: &[&str]) -> PathBuf {
    let mut cmd = Command::new(repo_root().join("scripts/image"));
    cmd.args(["--profile", "dev"]).args(args);
    PathBuf::from(run(&mut cmd, None).trim())
}

/// A namespace whose Pods must meet the restricted Pod Security Standard.
fn restricted_namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }}})
}

fn restricted_container_security() -> Value {
    json!({
        "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
    })
}

/// The simulator as a Deployment + Service, its keys and control token from a Secret.
fn simulator_manifests(tag: &str, computers: &[String]) -> Vec<Value> {
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "lightsail-sim", "namespace": SIM_NAMESPACE},
        "stringData": {"LIGHTSAIL_SIM_ACCESS_KEY_ID": SIM_ACCESS_KEY_ID,
            "LIGHTSAIL_SIM_SECRET_ACCESS_KEY": SIM_SECRET_ACCESS_KEY,
            "LIGHTSAIL_SIM_CONTROL_TOKEN": SIM_TOKEN}});
    let labels = json!({"app.kubernetes.io/name": "lightsail-sim"});
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "lightsail-sim", "namespace": SIM_NAMESPACE},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {
                "securityContext": {"runAsNonRoot": true, "runAsUser": 65532,
                    "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "lightsail-sim",
                    "image": format!("{SIM_IMAGE}:{tag}"), "imagePullPolicy": "IfNotPresent",
                    "args": ["--listen", "0.0.0.0:4580", "--settle-time", "500ms"],
                    "env": [{"name": "LIGHTSAIL_SIM_COMPUTERS", "value": computers.join(",")}],
                    "envFrom": [{"secretRef": {"name": "lightsail-sim"}}],
                    "ports": [{"name": "http", "containerPort": 4580}],
                    "readinessProbe": {"tcpSocket": {"port": 4580}, "periodSeconds": 1},
                    "securityContext": restricted_container_security()}]}}}});
    let service = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "lightsail-sim", "namespace": SIM_NAMESPACE},
        "spec": {"selector": labels, "ports": [{"name": "http", "port": 4580, "targetPort": "http"}]}});
    vec![secret, deployment, service]
}

/// The simulator's control endpoint, reached from this host through its ClusterIP (kube-proxy's
/// rules cover the host's own traffic too).
struct SimControl {
    base: String,
}

impl SimControl {
    fn request(&self, method: &str, path: &str) -> String {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--fail-with-body", "-X", method, "--max-time", "20"])
            .arg("-H")
            .arg(format!("Authorization: Bearer {SIM_TOKEN}"))
            .arg(format!("{}{path}", self.base));
        run(&mut cmd, None)
    }

    fn call_log(&self) -> CallLog {
        serde_json::from_str(&self.request("GET", "/_sim/calls/log")).expect("call log JSON")
    }

    /// The HTTP status of an unauthenticated GET /_sim/calls; "000" when nothing answered.
    fn status_without_token(&self) -> String {
        Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "5",
            ])
            .arg(format!("{}/_sim/calls", self.base))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Waits until the Service answers: kube-proxy programs its rules a moment after the
    /// endpoint is ready, and until then the ClusterIP refuses connections.
    async fn wait_reachable(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let code = self.status_without_token();
            if code != "000" && !code.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the simulator's Service {} did not answer within {WAIT:?}",
                self.base
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn lease_holder(lease: &Lease) -> Option<String> {
    lease.spec.as_ref()?.holder_identity.clone()
}

/// Watches the Lease until `done` holds, returning every holder seen on the way.
async fn watch_lease(
    api: &Api<Lease>,
    name: &str,
    deadline: Duration,
    done: impl Fn(&Option<String>) -> bool,
) -> Vec<Option<String>> {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(api.clone(), config).boxed();
    let mut seen: Vec<Option<String>> = Vec::new();
    let finished = tokio::time::timeout(deadline, async {
        while let Some(event) = stream.next().await {
            if let Ok(watcher::Event::Apply(lease) | watcher::Event::InitApply(lease)) = event {
                let holder = lease_holder(&lease);
                if seen.last() != Some(&holder) {
                    seen.push(holder.clone());
                }
                if done(&holder) {
                    return true;
                }
            }
        }
        false
    })
    .await;
    assert!(
        matches!(finished, Ok(true)),
        "Lease {name}: not as expected within {deadline:?}; holders seen: {seen:?}"
    );
    seen
}

/// Watches a Pod until it is gone, returning its container's last terminated exit code and
/// reason, as the kubelet reported them.
async fn watch_pod_exit(api: &Api<Pod>, name: &str) -> Option<(i32, String)> {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(api.clone(), config).boxed();
    let mut exit = None;
    let gone = tokio::time::timeout(WAIT, async {
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                    let terminated = pod
                        .status
                        .and_then(|s| s.container_statuses)
                        .and_then(|c| c.into_iter().next())
                        .and_then(|c| c.state)
                        .and_then(|s| s.terminated);
                    if let Some(t) = terminated {
                        exit = Some((t.exit_code, t.reason.unwrap_or_default()));
                    }
                }
                Ok(watcher::Event::Delete(_)) => return true,
                _ => {}
            }
        }
        false
    })
    .await;
    assert!(
        matches!(gone, Ok(true)),
        "Pod {name} not gone within {WAIT:?}"
    );
    exit
}

/// A GuiSession in the lab namespace for `computer`, with an optional maxSessionAge.
fn lab_session(name: &str, computer: &str, max_age: Option<&str>) -> Value {
    let mut spec = json!({"resourceName": computer});
    if let Some(age) = max_age {
        spec["maxSessionAge"] = json!(age);
    }
    let mut manifest = guisession(name, spec);
    manifest["metadata"]["namespace"] = json!(LAB);
    manifest
}

fn started_at(gs: &GuiSession) -> Option<Timestamp> {
    gs.status.as_ref().and_then(|s| s.session_started_at)
}

#[tokio::test(flavor = "multi_thread")]
async fn helm_install_failover_upgrade_and_uninstall_on_a_real_node() {
    if !support::root::node_test_can_run(
        "tests/node.rs helm_install_failover_upgrade_and_uninstall_on_a_real_node",
    ) {
        return;
    }
    let version = env!("CARGO_PKG_VERSION");
    let upgrade_tag = format!("{version}-upgrade");

    // ---- images, without a Docker daemon
    let started = Instant::now();
    let operator_archive = build_image(&["operator"]);
    let sim_archive = build_image(&["simulator"]);
    eprintln!(
        "images built in {:.1} s: {} ({:.1} MB), {} ({:.1} MB)",
        started.elapsed().as_secs_f64(),
        operator_archive.display(),
        std::fs::metadata(&operator_archive).map_or(0, |m| m.len()) as f64 / 1e6,
        sim_archive.display(),
        std::fs::metadata(&sim_archive).map_or(0, |m| m.len()) as f64 / 1e6,
    );

    // ---- the node
    let logs = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let node = Node::start(logs.path().join("cluster-up.log"));
    eprintln!("node Ready in {:.1} s", started.elapsed().as_secs_f64());
    node.import(&operator_archive, OPERATOR_IMAGE);
    node.import(&sim_archive, SIM_IMAGE);
    node.tag(
        &format!("{OPERATOR_IMAGE}:{version}"),
        &format!("{OPERATOR_IMAGE}:{upgrade_tag}"),
    );
    let client = node.client().await;

    // ---- the simulator, a Pod behind a Service
    let computers: Vec<String> = (0..N)
        .map(|i| format!("vm-{i:03}"))
        .chain(["research-desktop".to_owned(), "failover-desktop".to_owned()])
        .collect();
    node.apply(&restricted_namespace(SIM_NAMESPACE));
    for manifest in simulator_manifests(version, &computers) {
        node.apply(&manifest);
    }
    node.kubectl(&[
        "rollout",
        "status",
        "-n",
        SIM_NAMESPACE,
        "deployment/lightsail-sim",
        "--timeout=180s",
    ]);
    let sim_ip = node.kubectl(&[
        "get",
        "service",
        "-n",
        SIM_NAMESPACE,
        "lightsail-sim",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let sim_url = format!("http://{sim_ip}:4580");
    let sim = SimControl {
        base: sim_url.clone(),
    };
    sim.wait_reachable().await;
    assert_eq!(
        sim.status_without_token(),
        "401",
        "the control routes need the token off loopback"
    );

    // ---- helm install into a restricted namespace, credentials from a Secret
    node.apply(&restricted_namespace(SYSTEM));
    node.apply(&json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "lightsail-credentials", "namespace": SYSTEM},
        "stringData": {"AWS_ACCESS_KEY_ID": SIM_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SIM_SECRET_ACCESS_KEY}}));
    let extra_env = json!([{"name": "AWS_ENDPOINT_URL_LIGHTSAIL", "value": sim_url}]).to_string();
    let settle = format!("{}s", START_SETTLE.as_secs());
    let timeout = format!("{}s", LIGHTSAIL_TIMEOUT.as_secs());
    let chart = chart_dir();
    let started = Instant::now();
    let values = [
        format!("image.repository={OPERATOR_IMAGE}"),
        format!("image.tag={version}"),
        "image.pullPolicy=IfNotPresent".to_owned(),
        "replicas=2".to_owned(),
        "aws.region=us-east-1".to_owned(),
        "aws.credentialsSecret=lightsail-credentials".to_owned(),
        "controller.minSessionAge=10s".to_owned(),
        format!("controller.startSettle={settle}"),
        format!("controller.lightsailTimeout={timeout}"),
        "controller.pollInitial=500ms".to_owned(),
        // 200 objects renewing every 20 s make 10 starts and ~20 polls a second; the default
        // client-side limit (5/s) would make renewals late, which is not what this test is about.
        "controller.rateLimit=200".to_owned(),
        "controller.rateBurst=400".to_owned(),
        format!("leaderElection.leaseDuration={LEASE_DURATION}"),
        "logging.format=text".to_owned(),
    ];
    let mut install: Vec<&str> = vec!["install", RELEASE, chart.to_str().expect("utf-8 path")];
    install.extend(["-n", SYSTEM, "--wait", "--timeout", "5m"]);
    for value in &values {
        install.extend(["--set", value.as_str()]);
    }
    let extra_env = format!("extraEnv={extra_env}");
    install.extend(["--set-json", &extra_env]);
    node.helm(&install);
    let install_to_available = started.elapsed();
    let available = node.kubectl(&[
        "get",
        "deployment",
        "-n",
        SYSTEM,
        "-l",
        "app.kubernetes.io/instance=lgo",
        "-o",
        "jsonpath={.items[0].status.conditions[?(@.type==\"Available\")].status}",
    ]);
    assert_eq!(available, "True");
    eprintln!(
        "helm install --wait: Available in {:.1} s",
        install_to_available.as_secs_f64()
    );

    let lab_ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LAB}});
    node.apply(&lab_ns);
    let sessions: Api<GuiSession> = Api::namespaced(client.clone(), LAB);
    node.apply(&lab_session("research-desktop", "research-desktop", None));
    wait_for(&sessions, "research-desktop", WAIT, "Ready", ready).await;

    // /metrics through the chart's Service, by the apiserver's service proxy.
    let metrics = node.kubectl(&[
        "get", "--raw",
        &format!("/api/v1/namespaces/{SYSTEM}/services/http:{RELEASE}-lightsail-gui-operator-metrics:8080/proxy/metrics"),
    ]);
    assert!(
        metrics.contains("lightsail_gui_operator_"),
        "no operator metrics: {metrics}"
    );

    // ---- the leader Pod deleted: the standby takes over, the leaver releases and exits 0
    let leases: Api<Lease> = Api::namespaced(client.clone(), SYSTEM);
    let lease_name = format!("{RELEASE}-lightsail-gui-operator");
    let lease = leases.get(&lease_name).await.expect("the Lease");
    let leader = lease_holder(&lease).expect("a leader");
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM);
    let leader_pod = pods
        .list(&Default::default())
        .await
        .expect("pods")
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .find(|name| *name == leader)
        .unwrap_or_else(|| panic!("no Pod is the leader {leader}"));
    let exit = tokio::spawn({
        let pods = pods.clone();
        let leader_pod = leader_pod.clone();
        async move { watch_pod_exit(&pods, &leader_pod).await }
    });
    let deleted_at = Instant::now();
    node.kubectl(&["delete", "pod", "-n", SYSTEM, &leader_pod, "--wait=false"]);
    let holders = watch_lease(&leases, &lease_name, WAIT, |h| {
        h.as_ref()
            .is_some_and(|h| !h.is_empty() && *h != leader_pod)
    })
    .await;
    let takeover = deleted_at.elapsed();
    node.apply(&lab_session("after-failover", "failover-desktop", None));
    wait_for(&sessions, "after-failover", WAIT, "Ready", ready).await;
    let reconciling_again = deleted_at.elapsed();
    let (code, reason) = exit
        .await
        .expect("watch task")
        .expect("the deleted Pod's container reported how it ended");
    assert_eq!(
        (code, reason.as_str()),
        (0, "Completed"),
        "the leaver exits 0 within its grace period"
    );
    assert!(
        holders.contains(&None) || holders.iter().any(|h| h.as_deref() == Some("")),
        "the leaver released the Lease on SIGTERM (holders seen: {holders:?})"
    );
    eprintln!(
        "leader Pod deleted: Lease taken over in {:.1} s (leaseDuration {LEASE_DURATION}), a new \
         GuiSession Ready {:.1} s after the delete; holders seen: {holders:?}",
        takeover.as_secs_f64(),
        reconciling_again.as_secs_f64()
    );
    node.kubectl(&[
        "rollout",
        "status",
        "-n",
        SYSTEM,
        &format!("deployment/{RELEASE}-lightsail-gui-operator"),
        "--timeout=180s",
    ]);

    // ---- helm upgrade while 200 GuiSessions renew every 20 s
    for vm in &computers[..N] {
        node.apply(&lab_session(
            vm,
            vm,
            Some(&format!("{}s", MAX_AGE.as_secs())),
        ));
    }
    for vm in &computers[..N] {
        wait_for(&sessions, vm, WAIT, "Ready", ready).await;
    }
    let upgrade_started = Timestamp::now();
    let started = Instant::now();
    node.helm(&[
        "upgrade",
        RELEASE,
        chart.to_str().expect("utf-8 path"),
        "-n",
        SYSTEM,
        "--reuse-values",
        "--set",
        &format!("image.tag={upgrade_tag}"),
        "--wait",
        "--timeout",
        "5m",
    ]);
    // helm's --wait is satisfied by the new replicas being ready; the old Pods are still in
    // their grace period (draining reconciles, releasing the Lease). The rollout is complete
    // when they are gone.
    let old_pods = node.kubectl(&[
        "get",
        "pods",
        "-n",
        SYSTEM,
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.containers[0].image}{\"\\n\"}{end}",
    ]);
    for line in old_pods.lines() {
        if let Some((pod, image)) = line.split_once(' ')
            && !image.ends_with(&upgrade_tag)
        {
            node.kubectl(&[
                "wait",
                "--for=delete",
                &format!("pod/{pod}"),
                "-n",
                SYSTEM,
                "--timeout=120s",
            ]);
        }
    }
    let upgrade = started.elapsed();
    let upgraded = Timestamp::now();
    let images = node.kubectl(&[
        "get",
        "pods",
        "-n",
        SYSTEM,
        "-o",
        "jsonpath={.items[*].spec.containers[0].image}",
    ]);
    assert_eq!(images.split_whitespace().count(), 2, "{images}");
    assert!(
        images.split_whitespace().all(|i| i.ends_with(&upgrade_tag)),
        "every Pod runs the new tag: {images}"
    );
    // Every object renews at least once after the rollout: the new Pods carry on.
    for vm in &computers[..N] {
        wait_for(&sessions, vm, WAIT, "renewed after the upgrade", |gs| {
            ready(gs) && started_at(gs).is_some_and(|t| t > upgraded)
        })
        .await;
    }
    let log = sim.call_log();
    assert_eq!(log.dropped, 0, "the simulator's call log overflowed");
    let budget = START_SETTLE - LIGHTSAIL_TIMEOUT - Duration::from_secs(1);
    let least = SignedDuration::try_from(MAX_AGE - budget - Duration::from_secs(1))
        .expect("a small duration");
    let mut starts_during = 0;
    for vm in &computers[..N] {
        let starts: Vec<Timestamp> = log
            .matching(Some("StartGUISession"), Some(vm), Some("ok"))
            .map(|e| e.time)
            .collect();
        starts_during += starts
            .iter()
            .filter(|t| **t >= upgrade_started && **t <= upgraded)
            .count();
        for pair in starts.windows(2) {
            let gap = pair[1].duration_since(pair[0]);
            assert!(
                gap >= least,
                "{vm}: two starts in one window, {gap:#} apart (at least {least:#}): {starts:?}"
            );
        }
    }
    eprintln!(
        "helm upgrade: rolled out (old Pods gone) in {:.1} s with {N} GuiSessions renewing every {}s; \
         {starts_during} renewals during the rollout, no object started twice in a window \
         ({} starts in the log)",
        upgrade.as_secs_f64(),
        MAX_AGE.as_secs(),
        log.matching(Some("StartGUISession"), None, Some("ok"))
            .count()
    );

    // ---- helm uninstall keeps the CRD and the GuiSessions, and leaves no Pods
    node.helm(&[
        "uninstall",
        RELEASE,
        "-n",
        SYSTEM,
        "--wait",
        "--timeout",
        "3m",
    ]);
    node.kubectl(&["get", "crd", "guisessions.lightsail.operators.dev"]);
    let left = sessions.list(&Default::default()).await.expect("list");
    assert_eq!(left.items.len(), N + 2, "every GuiSession is kept");
    node.kubectl(&[
        "wait",
        "--for=delete",
        "pods",
        "--all",
        "-n",
        SYSTEM,
        "--timeout=120s",
    ]);
    let pods_left = node.kubectl(&["get", "pods", "-n", SYSTEM, "-o", "name"]);
    assert_eq!(pods_left.trim(), "", "no operator Pods after uninstall");

    // ---- the node stops and leaves nothing behind
    let (status, log) = node.stop();
    assert!(status.success(), "cluster-up failed on the way out:\n{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("cluster-up: nothing left behind")),
        "cluster-up did not confirm a clean stop:\n{log}"
    );
}
