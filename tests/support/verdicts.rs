//! How GitOps tools judge an object: the kstatus library Flux uses and the Argo CD health check in
//! examples/, each run on the object as JSON.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

/// Runs `cmd` with `stdin`, returning stdout; panics with stderr when it fails.
pub fn run(mut cmd: Command, stdin: &str) -> String {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A Go tool from tools/, built (or found in the cache) once per test binary.
pub fn go_tool(name: &str) -> PathBuf {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    built
        .entry(name.to_owned())
        .or_insert_with(|| {
            let out = Command::new(super::repo_root().join("scripts/go-tool-build"))
                .arg(name)
                .stderr(Stdio::inherit())
                .output()
                .expect("run scripts/go-tool-build");
            assert!(out.status.success(), "building {name} failed");
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        })
        .clone()
}

pub fn health_lua() -> PathBuf {
    super::repo_root().join("examples/argocd/health/guisession-health.lua")
}

/// (status, message) as judged by kstatus (`sigs.k8s.io/cli-utils/pkg/kstatus/status`).
pub fn kstatus(object: &Value) -> (String, String) {
    verdict(run(
        Command::new(go_tool("kstatus-check")),
        &object.to_string(),
    ))
}

/// (status, message) as judged by the Argo CD health check in examples/.
pub fn argocd_health(object: &Value) -> (String, String) {
    let mut cmd = Command::new(go_tool("argocd-health-check"));
    cmd.arg(health_lua());
    verdict(run(cmd, &object.to_string()))
}

fn verdict(json_line: String) -> (String, String) {
    let v: Value = serde_json::from_str(&json_line).expect("verdict is JSON");
    (
        v["status"].as_str().expect("status").to_owned(),
        v["message"].as_str().unwrap_or_default().to_owned(),
    )
}
