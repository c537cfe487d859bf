//! `scripts/demo`, the README's "run it" command, end to end: a real control plane, the simulator
//! and the operator that cargo built for this test run. Each test checks what the demo promises a
//! new user: a Ready GuiSession and a Stalled one, printed; a scheduled desktop whose stopped
//! computer is started when its window opens; URLs that answer while it runs; and no process or
//! temp dir left once it stops, whether it exits by itself, on Ctrl-C, or on a failure.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

#[path = "support/root.rs"]
mod root;

/// Every demo starts a control plane of its own; one at a time keeps a 2-core machine responsive
/// enough for the demo's own deadlines.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The operator cargo built for this test run; the demo runs it instead of building one.
const OPERATOR: &str = env!("CARGO_BIN_EXE_lightsail-gui-operator");

/// Longest a test lets one demo run, start to cleanup; the demo's own waits are shorter.
const DEADLINE: Duration = Duration::from_secs(300);

/// The simulator's binary, from its own workspace member: cargo gives a test the paths of its
/// own package's binaries only, so this builds it (a no-op when `cargo test --workspace` already
/// did) next to this test binary. `--workspace --benches` resolves features as that test run
/// did (every member, dev-dependencies on; there are no bench targets): `-p lightsail-sim` alone
/// would build a second simulator of ~150 crates with fewer features. The nested cargo runs
/// without the variables cargo sets for tests, which build scripts watch and would rebuild on.
fn sim_binary() -> &'static Path {
    static SIM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    SIM.get_or_init(|| {
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args([
                "build",
                "--quiet",
                "--workspace",
                "--bin",
                "lightsail-sim",
                "--benches",
            ])
            .current_dir(repo_root());
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("CARGO_")
                && !matches!(&*name, "CARGO_HOME" | "CARGO_TARGET_DIR")
                && !name.starts_with("CARGO_BUILD_")
            {
                cargo.env_remove(&*name);
            }
        }
        let status = cargo.status().expect("run cargo build --bin lightsail-sim");
        assert!(status.success(), "cargo build --bin lightsail-sim failed");
        // target/debug/deps/demo-HASH -> target/debug/lightsail-sim
        let exe = std::env::current_exe().expect("current exe");
        let debug = exe
            .parent()
            .and_then(Path::parent)
            .expect("a target/debug directory");
        debug.join("lightsail-sim")
    })
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

struct Run {
    status: ExitStatus,
    output: String,
}

impl Run {
    /// The text after `prefix` on the first line that holds it.
    fn after(&self, prefix: &str) -> Option<&str> {
        self.output
            .lines()
            .find_map(|l| l.split_once(prefix).map(|(_, rest)| rest))
    }
}

/// Runs `scripts/demo ARGS` in a process group of its own (as a terminal would run it), stdout
/// and stderr into one pipe. `on_line` sees each line as it comes and may signal the group (for
/// Ctrl-C). Fails the test if the demo is still running, or something still holds its output
/// pipe, after DEADLINE.
fn run_demo(
    args: &[&str],
    env: &[(&str, &str)],
    mut on_line: impl FnMut(&str) -> Option<&'static str>,
) -> Run {
    let (reader, writer) = std::io::pipe().expect("pipe");
    let mut command = Command::new(repo_root().join("scripts/demo"));
    command
        .args(args)
        .env("LGO_DEMO_OPERATOR_BIN", OPERATOR)
        .env("LGO_DEMO_SIM_BIN", sim_binary())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(writer.try_clone().expect("pipe"))
        .stderr(writer)
        .process_group(0);
    let mut child = command.spawn().expect("run scripts/demo");
    // The pipe's write ends live in `command` too; EOF comes only once no process holds one.
    drop(command);
    let pid = child.id();

    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut output = String::new();
    loop {
        let left = DEADLINE.saturating_sub(start.elapsed());
        match received.recv_timeout(left) {
            Ok(line) => {
                println!("{line}");
                if let Some(signal) = on_line(&line) {
                    signal_group(pid, signal);
                }
                output.push_str(&line);
                output.push('\n');
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                // Let the demo clean up after itself before the test gives up on it.
                signal_group(pid, "TERM");
                panic!(
                    "scripts/demo {args:?} still running (or its output pipe still open) after \
                     {DEADLINE:?}; output so far:\n{output}"
                );
            }
        }
    }
    let status = child.wait().expect("wait for scripts/demo");
    Run { status, output }
}

fn signal_group(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{pid}")])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} -{pid} failed");
}

/// What a run started, read from what it printed.
struct Started {
    /// (what, pid, a string its command line holds)
    processes: Vec<(&'static str, u32, String)>,
    /// The demo's temp dir and the control plane's.
    dirs: Vec<PathBuf>,
}

/// `operator` is the operator binary the run was given.
fn started(run: &Run, operator: &str) -> Started {
    let sim = sim_binary().to_str().expect("utf-8 path");
    let pid_after = |prefix: &str| -> Option<u32> {
        let digits = run
            .after(prefix)?
            .split(|c: char| !c.is_ascii_digit())
            .next()?;
        digits.parse().ok()
    };
    let mut processes = Vec::new();
    for (what, prefix, program) in [
        (
            "control plane",
            "control plane up (pid ",
            "control-plane-up",
        ),
        ("simulator", "lightsail-sim up (pid ", sim),
        ("operator", "lightsail-gui-operator started (pid ", operator),
    ] {
        if let Some(pid) = pid_after(prefix) {
            processes.push((what, pid, program.to_owned()));
        }
    }
    let operator_log = run
        .after("logging to ")
        .expect("the demo names its operator log");
    let cp_dir = run
        .after("generating certificates in ")
        .expect("the control plane names its temp dir");
    Started {
        processes,
        dirs: vec![
            Path::new(operator_log)
                .parent()
                .expect("log dir")
                .to_owned(),
            PathBuf::from(cp_dir),
        ],
    }
}

/// Processes whose command line or environment mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let read = |file: &str| std::fs::read(entry.path().join(file)).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&read("cmdline")).replace('\0', " ");
        let environ = String::from_utf8_lossy(&read("environ")).into_owned();
        if cmdline.contains(needle) || environ.contains(needle) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

fn command_line(pid: u32) -> Option<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
}

/// Nothing the demo started is alive and its temp dirs are gone. PIDs are checked with their
/// command line, so that a recycled PID does not count.
fn assert_nothing_left(started: &Started, run: &Run) {
    for (what, pid, program) in &started.processes {
        if let Some(cmdline) = command_line(*pid) {
            assert!(
                !cmdline.contains(program.as_str()),
                "the {what} (pid {pid}) is still running: {cmdline}\n{}",
                run.output
            );
        }
    }
    for dir in &started.dirs {
        assert!(!dir.exists(), "{} was not removed", dir.display());
        let left = processes_mentioning(&dir.to_string_lossy());
        assert!(left.is_empty(), "processes left behind: {left:#?}");
    }
}

/// The condition `kind` of `kubectl describe` output, as (status, reason).
fn describe_condition(describe: &str, kind: &str) -> Option<(String, String)> {
    let lines: Vec<Vec<&str>> = describe
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    // Each condition is a block of "Key: value" lines in alphabetical order, ending with Type.
    let at = lines.iter().position(|l| l.as_slice() == ["Type:", kind])?;
    let block = &lines[at.saturating_sub(6)..at];
    let value = |key: &str| {
        block
            .iter()
            .rev()
            .find(|l| l.first() == Some(&key))
            .map(|l| l[1..].join(" "))
    };
    Some((value("Status:")?, value("Reason:")?))
}

#[test]
fn exit_when_ready_prints_a_ready_session_and_leaves_nothing_behind() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let run = run_demo(&["--exit-when-ready"], &[], |_| None);
    assert!(run.status.success(), "{}\n{}", run.status, run.output);

    let describe = run
        .output
        .split_once("The full status of research-desktop")
        .map(|(_, rest)| rest)
        .expect("the demo prints the full status of research-desktop");
    assert!(
        describe.contains("Name:         research-desktop"),
        "{describe}"
    );
    let (status, reason) = describe_condition(describe, "Ready").expect("a Ready condition");
    assert_eq!(
        status, "True",
        "Ready condition (reason {reason}):\n{describe}"
    );
    // The operation the simulator answered and the Event about it are part of what is shown.
    let has_line = |words: &[&str]| {
        describe
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == words)
    };
    assert!(
        has_line(&["Operation", "Type:", "StartGUISession"]),
        "{describe}"
    );
    assert!(has_line(&["Status:", "Succeeded"]), "{describe}");
    assert!(
        describe
            .lines()
            .any(|l| l.contains("SessionStarted") && l.contains("research-desktop")),
        "no SessionStarted event in:\n{describe}"
    );
    let stalled = run
        .after("no-such-computer is Stalled on purpose: ")
        .expect("the demo says why no-such-computer is Stalled");
    assert!(stalled.contains("NotFound"), "{stalled}");
    // The GuiSession with access: its Secret is named with the keys it holds, and no URL (a
    // bearer credential) is printed.
    let access = run
        .after("lab-workstation's access URLs are in the Secret lab-workstation-access (keys: ")
        .expect("the demo names the access Secret");
    for key in ["expiresAt", "primaryUrl", "resourceName", "secondaryUrl"] {
        assert!(access.contains(key), "{access}");
    }
    assert!(
        !run.output.contains("authToken"),
        "a session URL was printed"
    );
    assert_scheduled_desktop_got_there(&run);
    for promised in [
        "export KUBECONFIG=",
        "/_sim/calls",
        "/metrics",
        "operator.log",
    ] {
        assert!(run.output.contains(promised), "missing {promised:?}");
    }

    let started = started(&run, OPERATOR);
    assert_eq!(started.processes.len(), 3, "{}", run.output);
    assert_nothing_left(&started, &run);
}

/// The scheduled desktop went through its three steps in order, each announced by the demo, and
/// ended Ready with its computer running, started by one StartInstance call.
fn assert_scheduled_desktop_got_there(run: &Run) {
    let steps = [
        "scheduled-desktop: outside its schedule (Ready True, reason OutsideSchedule)",
        "scheduled-desktop: its window is open and its computer stopped: the operator starts the \
         computer (Reconciling True, reason ComputerStarting)",
        "scheduled-desktop: Ready (reason SessionActive)",
    ];
    let at: Vec<usize> = steps
        .iter()
        .map(|step| {
            run.output
                .find(step)
                .unwrap_or_else(|| panic!("the demo never said {step:?}:\n{}", run.output))
        })
        .collect();
    assert!(
        at.is_sorted(),
        "scheduled-desktop's steps out of order {at:?}:\n{}",
        run.output
    );
    // The table printed once all got there.
    let table = run
        .output
        .split_once("==> all got there")
        .map(|(_, rest)| rest)
        .expect("the demo says when all got there");
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some("scheduled-desktop"))
        .unwrap_or_else(|| panic!("no row for scheduled-desktop:\n{table}"))
        .split_whitespace()
        .collect();
    assert_eq!(row.get(4), Some(&"True"), "READY column of {row:?}");
    assert_eq!(
        run.after("  status.computer.state: "),
        Some("running"),
        "{}",
        run.output
    );
    assert_eq!(
        run.after("  status.computer.operation: "),
        Some("StartInstance Succeeded"),
        "{}",
        run.output
    );
    assert_eq!(
        run.after("StartInstance calls the simulator answered for scheduled-desktop: "),
        Some("1"),
        "the computer is started once:\n{}",
        run.output
    );
}

/// GET `url` (plain http on loopback) and return the status code and body.
fn http_get(url: &str) -> Result<(u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or(format!("not http: {url}"))?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut stream = TcpStream::connect(host).map_err(|e| format!("{url}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("{url}: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("{url}: {e}"))?;
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or(format!("{url}: no status line in {response:?}"))?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((code, body.to_owned()))
}

#[test]
fn ctrl_c_stops_every_process_the_demo_started() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Checked while the demo runs, asserted once it has stopped: a panic inside the callback
    // would leave the demo running.
    let mut urls = Vec::new();
    let mut running: Vec<(u32, Option<String>)> = Vec::new();
    let mut answers = Vec::new();
    let run = run_demo(&[], &[], |line| {
        if let Some((_, url)) = line.split_once("curl -s ") {
            urls.push(url.split_whitespace().next().unwrap_or_default().to_owned());
        }
        if let Some(pids) = line.strip_prefix("Processes: ") {
            running = pids
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|p| p.parse().ok())
                .map(|pid| (pid, command_line(pid)))
                .collect();
        }
        if !line.contains("press Ctrl-C to stop everything") {
            return None;
        }
        answers = urls
            .iter()
            .map(|url| (url.clone(), http_get(url)))
            .collect();
        Some("INT")
    });
    assert_eq!(run.status.code(), Some(130), "{}", run.output);

    // Before Ctrl-C: three processes ran and the printed URLs answered.
    assert_eq!(running.len(), 3, "pids in the Processes line: {running:?}");
    for (pid, cmdline) in &running {
        assert!(cmdline.is_some(), "pid {pid} was not running before Ctrl-C");
    }
    assert_eq!(answers.len(), 2, "{answers:?}");
    for (url, answer) in &answers {
        let (code, body) = answer.as_ref().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(*code, 200, "{url}: {body}");
        let expected = if url.ends_with("/_sim/calls") {
            "StartGUISession"
        } else {
            "lightsail_gui_operator_reconciles_total"
        };
        assert!(body.contains(expected), "{url}: {body}");
        if url.ends_with("/_sim/calls") {
            // The scheduled desktop's computer, stopped at first, was started once, by the
            // operator, when its window opened.
            let report: serde_json::Value = serde_json::from_str(body).expect("JSON");
            let starts: Vec<&serde_json::Value> = report["calls"]
                .as_array()
                .expect("calls")
                .iter()
                .filter(|c| c["action"] == "StartInstance")
                .collect();
            assert_eq!(starts.len(), 1, "{body}");
            assert_eq!(starts[0]["resource"], "scheduled-desktop", "{body}");
            assert_eq!(starts[0]["outcome"], "ok", "{body}");
            assert_eq!(starts[0]["count"], 1, "{body}");
        }
    }

    // After: all of them gone, and the URLs no longer answer.
    let started = started(&run, OPERATOR);
    assert_eq!(started.processes.len(), 3, "{}", run.output);
    assert_nothing_left(&started, &run);
    for url in &urls {
        assert!(http_get(url).is_err(), "{url} still answers after Ctrl-C");
    }
}

#[test]
fn a_failing_step_still_stops_everything_and_shows_the_operator_log() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // An operator that dies at once: the control plane and the simulator are up by then.
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = dir.path().join("broken-operator");
    std::fs::write(
        &broken,
        "#!/bin/sh\necho 'operator failed on purpose' >&2\nexit 3\n",
    )
    .expect("write");
    std::fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let run = run_demo(
        &["--exit-when-ready"],
        &[(
            "LGO_DEMO_OPERATOR_BIN",
            broken.to_str().expect("utf-8 path"),
        )],
        |_| None,
    );
    assert!(!run.status.success(), "{}", run.output);
    assert!(
        run.output.contains("the operator exited (status 3)"),
        "{}",
        run.output
    );
    assert!(
        run.output.contains("operator failed on purpose"),
        "the operator log's tail is shown:\n{}",
        run.output
    );
    let started = started(&run, broken.to_str().expect("utf-8 path"));
    assert_eq!(started.processes.len(), 3, "{}", run.output);
    assert_nothing_left(&started, &run);
}

#[test]
fn help_documents_every_flag_the_script_takes() {
    let script = std::fs::read_to_string(repo_root().join("scripts/demo")).expect("read");
    // The flags are the arms of the argument loop's case: `    --name)` or `    -h | --help)`.
    let flags: Vec<&str> = script
        .lines()
        .filter_map(|l| l.trim_start().split_once(')').map(|(arm, _)| arm))
        .flat_map(|arm| arm.split(" | "))
        .filter(|f| f.starts_with("--") && !f.contains(' '))
        .collect();
    assert!(flags.len() >= 5, "found flags {flags:?}");

    let help = Command::new(repo_root().join("scripts/demo"))
        .arg("--help")
        .output()
        .expect("run scripts/demo --help");
    assert!(help.status.success(), "{help:?}");
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in flags {
        assert!(
            // An option line: "  -h, --help   text" or "  --timeout SECONDS  text".
            text.lines().any(|l| l
                .trim_start()
                .split("  ")
                .next()
                .is_some_and(|column| column.split([' ', ',']).any(|w| w == flag))),
            "--help does not describe {flag}:\n{text}"
        );
    }

    let bad = Command::new(repo_root().join("scripts/demo"))
        .arg("--no-such-flag")
        .output()
        .expect("run scripts/demo");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown argument '--no-such-flag'"));
}

#[test]
fn node_demo_installs_with_helm_on_a_real_node_and_leaves_nothing_behind() {
    if !root::node_test_can_run(
        "tests/demo.rs node_demo_installs_with_helm_on_a_real_node_and_leaves_nothing_behind",
    ) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // The builds are the slow part on a cold cache and have no deadline of their own here; the
    // demo then finds them cached and its run is what DEADLINE bounds. The images hold the debug
    // binaries this test run built (--profile dev, and LGO_IMAGE_PROFILE for the demo's own
    // scripts/image): the demo's output is the same, without a release build of the tree.
    for args in [&["operator"][..], &["simulator"][..]] {
        let out = Command::new(repo_root().join("scripts/image"))
            .args(["--profile", "dev"])
            .args(args)
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/image");
        assert!(out.status.success(), "scripts/image {args:?} failed");
    }
    let out = Command::new(repo_root().join("scripts/control-plane-build"))
        .arg("--node")
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/control-plane-build --node");
    assert!(
        out.status.success(),
        "scripts/control-plane-build --node failed"
    );

    let run = run_demo(
        &["--node", "--exit-when-ready"],
        &[("LGO_IMAGE_PROFILE", "dev")],
        |_| None,
    );
    assert!(run.status.success(), "{}", run.output);
    let row = |name: &str| {
        run.output
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{}", run.output))
            .to_owned()
    };
    assert!(row("research-desktop").contains("True"), "{}", run.output);
    assert!(row("no-such-computer").contains("False"), "{}", run.output);
    // Two operator Pods, installed by Helm, Running on the node.
    let running = run
        .output
        .lines()
        .filter(|l| l.starts_with("lightsail-gui-operator-") && l.contains("Running"))
        .count();
    assert_eq!(running, 2, "{}", run.output);
    assert!(
        run.output.contains("cluster-up: nothing left behind"),
        "{}",
        run.output
    );
}
