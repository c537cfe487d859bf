//! The binary's command line as users type it, and what its text log looks like in a file.

use std::process::Command;

/// `--access-secrets` alone means true (the README's table reads so), and a text log written to
/// a pipe carries no colour codes.
#[test]
fn bare_switches_parse_and_a_piped_text_log_has_no_colour_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_lightsail-gui-operator"))
        .args([
            "run",
            "--access-secrets",
            "--account-static-keys",
            "--leader-elect=false",
            "--log-format",
            "text",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .env_clear()
        // No cluster to reach: the operator logs why and exits, which is all this test needs.
        .env("KUBECONFIG", dir.path().join("missing-kubeconfig"))
        .env("HOME", dir.path())
        .output()
        .expect("run the operator");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "no cluster, no success: {stderr}");
    assert!(
        !stderr.contains("a value is required"),
        "bare switches refused: {stderr}"
    );
    assert!(
        stderr.contains("ERROR"),
        "the failure is logged at error level: {stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in a piped log: {stderr:?}"
    );
}
