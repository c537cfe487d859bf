//! The GitHub Actions workflows (`.github/workflows/`), which cannot run here: actionlint (pinned
//! in tools/actionlint, built by scripts/go-tool-build) finds nothing in them, with shellcheck on
//! their `run:` scripts, and does flag a deliberately broken workflow, so the check is not
//! vacuous. The release workflow's version guard runs here on the checked-in Cargo.toml,
//! Chart.yaml and values.yaml: it accepts the tag of the crate's version in this repository and
//! refuses every kind of drift, and the image it publishes is the chart's default. Its signing,
//! SBOM and provenance steps are present, and its summary, run here, prints the cosign commands
//! that verify them (tests/sbom.rs makes the SBOM locally with the same pinned syft).
//!
//! shellcheck: actionlint checks `run:` scripts only with a shellcheck binary. .ci/run installs
//! it, so CI always checks them; on a machine without it these tests still run actionlint's own
//! checks and say on stderr that the scripts went unchecked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_yaml::Value;

const RELEASE: &str = ".github/workflows/release.yml";
/// The GitHub repository the release workflow publishes from.
const REPOSITORY: &str = "lightsail-gui-operator/lightsail-gui-operator";
const IMAGE: &str = "ghcr.io/lightsail-gui-operator/lightsail-gui-operator";
const CHARTS: &str = "oci://ghcr.io/lightsail-gui-operator/charts";
const CHART: &str = "charts/lightsail-gui-operator";
/// The chart's OCI repository, which its signature names.
const CHART_REPOSITORY: &str = "ghcr.io/lightsail-gui-operator/charts/lightsail-gui-operator";

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// actionlint, built (or found in the cache) once per test binary.
fn actionlint_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Command::new(repo_root().join("scripts/go-tool-build"))
            .arg("actionlint")
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/go-tool-build actionlint");
        assert!(out.status.success(), "building actionlint failed");
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// shellcheck on PATH, if any.
fn shellcheck() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("shellcheck"))
        .find(|p| p.is_file())
}

/// actionlint on `files`: exit code and everything it printed.
fn actionlint(files: &[PathBuf]) -> (i32, String) {
    let mut cmd = Command::new(actionlint_bin());
    cmd.arg("-no-color").arg("-pyflakes=");
    match shellcheck() {
        Some(path) => cmd.arg(format!("-shellcheck={}", path.display())),
        None => {
            eprintln!(
                "warning: shellcheck is not installed: actionlint does not check the workflows' \
                 run: scripts (.ci/run installs it; apt-get install shellcheck)"
            );
            cmd.arg("-shellcheck=")
        }
    };
    let out = cmd
        .args(files)
        .current_dir(repo_root())
        .output()
        .expect("run actionlint");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().expect("actionlint exit code"), text)
}

fn workflow_files() -> Vec<PathBuf> {
    let dir = repo_root().join(".github/workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")))
        .collect();
    files.sort();
    files
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn release_steps() -> Vec<Value> {
    let workflow = yaml(&repo_root().join(RELEASE));
    workflow["jobs"]["release"]["steps"]
        .as_sequence()
        .expect("jobs.release.steps")
        .clone()
}

fn step_with_id(id: &str) -> Value {
    release_steps()
        .into_iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step with id {id} in {RELEASE}"))
}

fn step_using(action: &str) -> Value {
    release_steps()
        .into_iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with(&format!("{action}@")))
        })
        .unwrap_or_else(|| panic!("no step uses {action} in {RELEASE}"))
}

fn run_script(step: &Value) -> &str {
    step["run"].as_str().expect("a run: step")
}

/// Runs a `run:` script the way GitHub's runner does (`bash --noprofile --norc -eo pipefail`),
/// in `dir`, with `env` and GITHUB_OUTPUT / GITHUB_STEP_SUMMARY files: its success, everything
/// it printed, and the outputs it set.
struct Ran {
    ok: bool,
    text: String,
    outputs: BTreeMap<String, String>,
    summary: String,
}

fn run_step(step: &Value, dir: &Path, env: &[(&str, &str)]) -> Ran {
    let tmp = tempfile::tempdir().expect("tempdir");
    let script = tmp.path().join("step.sh");
    std::fs::write(&script, run_script(step)).expect("write step script");
    let output_file = tmp.path().join("output");
    let summary_file = tmp.path().join("summary");
    std::fs::write(&output_file, "").expect("output file");
    std::fs::write(&summary_file, "").expect("summary file");
    let out: Output = Command::new("bash")
        .args(["--noprofile", "--norc", "-eo", "pipefail"])
        .arg(&script)
        .current_dir(dir)
        .env("GITHUB_OUTPUT", &output_file)
        .env("GITHUB_STEP_SUMMARY", &summary_file)
        .env("RUNNER_TEMP", tmp.path())
        .envs(env.iter().copied())
        .output()
        .expect("run bash");
    let outputs = std::fs::read_to_string(&output_file)
        .expect("read GITHUB_OUTPUT")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Ran {
        ok: out.status.success(),
        text: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        outputs,
        summary: std::fs::read_to_string(&summary_file).expect("read GITHUB_STEP_SUMMARY"),
    }
}

/// The release workflow's guard step (id `version`) for `tag` pushed in `repository`, run in `dir`.
fn guard(dir: &Path, tag: &str, repository: &str) -> Ran {
    let owner = repository.split('/').next().expect("owner/name");
    run_step(
        &step_with_id("version"),
        dir,
        &[("TAG", tag), ("REPOSITORY", repository), ("OWNER", owner)],
    )
}

/// A copy of the files the guard reads, with `edit` applied to (relative path, text).
fn edited_copy(edit: impl Fn(&str, String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for file in [
        "Cargo.toml".to_owned(),
        format!("{CHART}/Chart.yaml"),
        format!("{CHART}/values.yaml"),
    ] {
        let text = std::fs::read_to_string(repo_root().join(&file)).expect("read");
        let target = dir.path().join(&file);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        std::fs::write(&target, edit(&file, text)).expect("write");
    }
    dir
}

/// Replaces exactly one occurrence, so that a fixture cannot silently stop applying.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} must occur once");
    text.replacen(from, to, 1)
}

#[test]
fn workflows_pass_actionlint() {
    let files = workflow_files();
    assert!(
        files.iter().any(|f| f.ends_with(RELEASE)),
        "{RELEASE} missing: {files:?}"
    );
    let (code, findings) = actionlint(&files);
    assert!(
        code == 0 && findings.trim().is_empty(),
        "actionlint (exit {code}) found problems in .github/workflows:\n{findings}"
    );
}

#[test]
fn actionlint_flags_a_broken_workflow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("broken.yml");
    std::fs::write(
        &broken,
        "name: broken\n\
         on: push\n\
         jobs:\n  \
           build:\n    \
             runs-on: ubuntu-lates\n    \
             steps:\n      \
               - run: echo ${{ steps.nope.outputs.x }}\n      \
               - run: echo $UNQUOTED\n",
    )
    .expect("write broken workflow");
    let (code, findings) = actionlint(&[broken]);
    assert_eq!(code, 1, "actionlint must report problems:\n{findings}");
    for expected in ["broken.yml", "\"ubuntu-lates\" is unknown", "\"nope\""] {
        assert!(
            findings.contains(expected),
            "no {expected:?} in actionlint's findings:\n{findings}"
        );
    }
    if shellcheck().is_some() {
        assert!(
            findings.contains("SC2086"),
            "shellcheck did not flag the unquoted variable:\n{findings}"
        );
    }
}

#[test]
fn release_guard_accepts_the_crate_version_and_the_charts_default_image() {
    let version = env!("CARGO_PKG_VERSION");
    let chart = yaml(&repo_root().join(CHART).join("Chart.yaml"));
    let values = yaml(&repo_root().join(CHART).join("values.yaml"));
    assert_eq!(chart["version"], version, "Chart.yaml version");
    assert_eq!(chart["appVersion"], version, "Chart.yaml appVersion");
    assert_eq!(values["image"]["repository"], IMAGE, "values.yaml");

    // What the workflow hands the guard: the tag and the repository, as GitHub names them.
    let step = step_with_id("version");
    let env = &step["env"];
    assert_eq!(env["TAG"], "${{ github.ref_name }}");
    assert_eq!(env["REPOSITORY"], "${{ github.repository }}");
    assert_eq!(env["OWNER"], "${{ github.repository_owner }}");

    let tag = format!("v{version}");
    // GitHub keeps the owner's and repository's capitals; GHCR names are lower case.
    for repository in [REPOSITORY, "Lightsail-GUI-Operator/Lightsail-GUI-Operator"] {
        let ran = guard(repo_root(), &tag, repository);
        assert!(ran.ok, "guard refused {tag} in {repository}:\n{}", ran.text);
        let expected: BTreeMap<String, String> =
            [("version", version), ("image", IMAGE), ("charts", CHARTS)]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into();
        assert_eq!(ran.outputs, expected, "{}", ran.text);
    }

    // A pre-release, when the crate and the chart say so: the guard reads the files.
    let pre = format!("{version}-rc.1");
    let copy = edited_copy(|file, text| {
        if file == "Cargo.toml" {
            replace_once(
                &text,
                &format!("\nversion = \"{version}\""),
                &format!("\nversion = \"{pre}\""),
            )
        } else if file.ends_with("Chart.yaml") {
            let text = replace_once(
                &text,
                &format!("\nversion: {version}"),
                &format!("\nversion: {pre}"),
            );
            replace_once(
                &text,
                &format!("\nappVersion: \"{version}\""),
                &format!("\nappVersion: \"{pre}\""),
            )
        } else {
            text
        }
    });
    let ran = guard(copy.path(), &format!("v{pre}"), REPOSITORY);
    assert!(ran.ok, "guard refused v{pre}:\n{}", ran.text);
    assert_eq!(ran.outputs["version"], pre);
}

#[test]
fn release_guard_refuses_drift() {
    let version = env!("CARGO_PKG_VERSION");
    let tag = format!("v{version}");
    let refused = |dir: &Path, tag: &str, repository: &str, why: &str| {
        let ran = guard(dir, tag, repository);
        assert!(
            !ran.ok,
            "guard accepted {tag} in {repository} ({why}):\n{}",
            ran.text
        );
        assert!(
            ran.text.contains("::error") && ran.text.contains(why),
            "guard's refusal of {tag} in {repository} does not say {why:?}:\n{}",
            ran.text
        );
        assert!(ran.outputs.is_empty(), "outputs set: {:?}", ran.outputs);
    };

    // A tag that is not the crate's version, or not a version at all.
    let (major, rest) = version.split_once('.').expect("X.Y.Z");
    let next_major = format!("v{}.{rest}", major.parse::<u64>().expect("major") + 1);
    refused(repo_root(), &next_major, REPOSITORY, "Cargo.toml's version");
    for bad in [version, "v0.1", "v0.1.0.1", "latest", "v0.1.0 "] {
        refused(repo_root(), bad, REPOSITORY, "is not vX.Y.Z");
    }

    // A fork would publish ghcr.io/<fork>/...: not the chart's default image.
    refused(
        repo_root(),
        &tag,
        "someone/lightsail-gui-operator",
        "values.yaml's image.repository",
    );

    // The chart's version or appVersion behind the crate's.
    let stale_version = edited_copy(|file, text| {
        if file.ends_with("Chart.yaml") {
            replace_once(&text, &format!("\nversion: {version}"), "\nversion: 0.0.9")
        } else {
            text
        }
    });
    refused(
        stale_version.path(),
        &tag,
        REPOSITORY,
        "Chart.yaml's version is '0.0.9'",
    );
    let stale_app_version = edited_copy(|file, text| {
        if file.ends_with("Chart.yaml") {
            replace_once(
                &text,
                &format!("\nappVersion: \"{version}\""),
                "\nappVersion: \"0.0.9\"",
            )
        } else {
            text
        }
    });
    refused(
        stale_app_version.path(),
        &tag,
        REPOSITORY,
        "Chart.yaml's appVersion is '0.0.9'",
    );

    // The chart's default image changed without the workflow's repository.
    let other_default = edited_copy(|file, text| {
        if file.ends_with("values.yaml") {
            replace_once(
                &text,
                &format!("repository: {IMAGE}\n"),
                "repository: registry.example.com/lightsail-gui-operator\n",
            )
        } else {
            text
        }
    });
    refused(
        other_default.path(),
        &tag,
        REPOSITORY,
        "image.repository is 'registry.example.com/lightsail-gui-operator'",
    );
}

#[test]
fn release_publishes_the_guarded_image_and_chart_and_records_the_digest() {
    let workflow = yaml(&repo_root().join(RELEASE));
    // Tags only, and nothing more than pushing packages.
    assert_eq!(
        workflow["on"]["push"]["tags"],
        serde_yaml::from_str::<Value>("[v*]").unwrap()
    );
    assert!(workflow["on"]["push"]["branches"].is_null());
    assert!(workflow["on"]["pull_request"].is_null());
    let permissions = &workflow["jobs"]["release"]["permissions"];
    assert_eq!(permissions["packages"], "write");
    assert_eq!(permissions["contents"], "read");
    // Keyless signing and GitHub's attestations, and nothing else.
    assert_eq!(permissions["id-token"], "write");
    assert_eq!(permissions["attestations"], "write");
    assert_eq!(permissions.as_mapping().expect("permissions").len(), 4);

    // The image: both platforms, tagged with the guarded version, pushed.
    let build = step_using("docker/build-push-action");
    assert_eq!(build["id"], "image");
    let with = &build["with"];
    assert_eq!(with["platforms"], "linux/amd64,linux/arm64");
    assert_eq!(with["push"], true);
    assert_eq!(
        with["tags"],
        "${{ steps.version.outputs.image }}:${{ steps.version.outputs.version }}"
    );
    step_using("docker/setup-qemu-action");
    step_using("docker/setup-buildx-action");
    assert_eq!(
        step_using("docker/login-action")["with"]["registry"],
        "ghcr.io"
    );

    // The chart: packaged from the checked-in chart, pushed to the guarded OCI location.
    assert!(run_script(&step_with_id("package")).contains(&format!("helm package {CHART} ")));
    let chart = step_with_id("chart");
    assert_eq!(
        chart["env"]["CHARTS"],
        "${{ steps.version.outputs.charts }}"
    );
    assert!(run_script(&chart).contains(r#"helm push "$PACKAGE" "$CHARTS""#));

    // Signed by digest, the image recursively (index and platforms) and the chart; the SBOM made
    // by the pinned syft of tests/sbom.rs and attested as SPDX JSON; provenance two ways.
    let scripts: String = release_steps().iter().map(run_script_or_empty).collect();
    for expected in [
        r#"cosign sign --yes --recursive "$IMAGE@$DIGEST""#,
        r#"cosign sign --yes "$repository@$digest""#,
        "scripts/go-tool-build syft",
        r#"cosign attest --yes --type spdxjson --predicate "$sbom" "$subject""#,
    ] {
        assert!(scripts.contains(expected), "no {expected:?} in {RELEASE}");
    }
    step_using("sigstore/cosign-installer");
    assert_eq!(with["provenance"], "mode=max");
    let provenance: Vec<Value> = release_steps()
        .into_iter()
        .filter(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/attest-build-provenance@"))
        })
        .map(|s| s["with"]["subject-digest"].clone())
        .collect();
    assert_eq!(
        provenance,
        [
            "${{ steps.image.outputs.digest }}",
            "${{ steps.chart.outputs.digest }}"
        ]
        .map(Value::from),
        "build provenance of the image and of the chart"
    );

    // The summary step, run here: it records the image's digest and how to pin it.
    let summary_step = release_steps()
        .into_iter()
        .find(|s| run_script_or_empty(s).contains("GITHUB_STEP_SUMMARY"))
        .expect("a step writing the job summary");
    assert_eq!(
        summary_step["env"]["DIGEST"],
        "${{ steps.image.outputs.digest }}"
    );
    let digest = format!("sha256:{}", "ab".repeat(32));
    let chart_digest = format!("sha256:{}", "cd".repeat(32));
    let version = env!("CARGO_PKG_VERSION");
    let ran = run_step(
        &summary_step,
        repo_root(),
        &[
            ("IMAGE", IMAGE),
            ("VERSION", version),
            ("DIGEST", &digest),
            ("CHARTS", CHARTS),
            ("CHART_DIGEST", &chart_digest),
            ("CHART_REPOSITORY", CHART_REPOSITORY),
            ("REPOSITORY", REPOSITORY),
        ],
    );
    assert!(ran.ok, "{}", ran.text);
    // How to verify, with this workflow's identity at a release tag and GitHub's OIDC issuer.
    let identity = format!(
        "--certificate-identity-regexp '^https://github.com/{REPOSITORY}/.github/workflows/\
         release.yml@refs/tags/v.*$' --certificate-oidc-issuer \
         https://token.actions.githubusercontent.com"
    );
    for expected in [
        format!("`{IMAGE}:{version}` | `{digest}`"),
        format!("`{CHARTS}/lightsail-gui-operator --version {version}` | `{chart_digest}`"),
        format!("--set image.digest={digest}"),
        format!("\ncosign verify {IMAGE}@{digest} {identity}\n"),
        format!("\ncosign verify-attestation --type spdxjson {IMAGE}@{digest} {identity}\n"),
        format!("\ncosign verify {CHART_REPOSITORY}@{chart_digest} {identity}\n"),
        format!("gh attestation verify oci://{IMAGE}@{digest} --repo {REPOSITORY}"),
    ] {
        assert!(
            ran.summary.contains(&expected),
            "no {expected:?} in the summary:\n{}",
            ran.summary
        );
    }
}

fn run_script_or_empty(step: &Value) -> &str {
    step["run"].as_str().unwrap_or_default()
}
