//! The operator's OCI image as `scripts/image` builds it without a Docker daemon: what is in it,
//! that the Dockerfile describes the same image, and that a rebuild gives the same digest.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Runs `scripts/image --profile dev ARGS` and returns the archive path it prints. The dev
/// profile packs the debug binary this test run already built: what is checked here is the
/// image's layout, the same for either profile, and a release build would cost a cold run most of
/// a quarter of an hour.
fn build_image(args: &[&str]) -> PathBuf {
    let out = Command::new(Path::new(ROOT).join("scripts/image"))
        .args(["--profile", "dev"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/image: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/image {args:?} failed:\n{stderr}"
    );
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    eprintln!("{}", stderr.lines().last().unwrap_or_default());
    PathBuf::from(path)
}

/// An unpacked OCI image archive: the layout's index, manifest, config and the layer's listing.
struct Image {
    /// Holds the unpacked layout while the image is looked at.
    _dir: tempfile::TempDir,
    layer: PathBuf,
    manifest_digest: String,
    config: Value,
    /// `tar -tvzf` lines of the one layer: mode, owner, size, date, path.
    layer_listing: Vec<String>,
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn blob(dir: &Path, digest: &str) -> PathBuf {
    let (algorithm, hex) = digest.split_once(':').expect("digest is algorithm:hex");
    dir.join("blobs").join(algorithm).join(hex)
}

fn unpack(archive: &Path) -> Image {
    let dir = tempfile::tempdir().expect("tempdir");
    run(Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(dir.path()));
    let layout = read_json(&dir.path().join("oci-layout"));
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    let index = read_json(&dir.path().join("index.json"));
    let manifests = index["manifests"].as_array().expect("index.manifests");
    assert_eq!(manifests.len(), 1, "one image per archive: {index}");
    let manifest_digest = manifests[0]["digest"].as_str().expect("digest").to_owned();
    let manifest = read_json(&blob(dir.path(), &manifest_digest));
    assert_eq!(
        manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "{manifest}"
    );
    let config = read_json(&blob(
        dir.path(),
        manifest["config"]["digest"]
            .as_str()
            .expect("config digest"),
    ));
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "one layer: {manifest}");
    let layer = blob(
        dir.path(),
        layers[0]["digest"].as_str().expect("layer digest"),
    );
    let listing = run(Command::new("tar")
        .args(["--numeric-owner", "-tvzf"])
        .arg(&layer));
    Image {
        _dir: dir,
        layer,
        manifest_digest,
        config,
        layer_listing: listing.lines().map(str::to_owned).collect(),
    }
}

impl Image {
    fn paths(&self) -> BTreeSet<String> {
        self.layer_listing
            .iter()
            .filter_map(|line| line.split_whitespace().nth(5))
            .map(|p| p.trim_start_matches("./").trim_end_matches('/').to_owned())
            .filter(|p| !p.is_empty())
            .collect()
    }

    /// One file's text, read out of the layer.
    fn file(&self, path: &str) -> String {
        run(Command::new("tar").arg("-xzOf").arg(&self.layer).arg(path))
    }

    fn line_of(&self, path: &str) -> &str {
        self.layer_listing
            .iter()
            .find(|l| {
                l.split_whitespace()
                    .nth(5)
                    .is_some_and(|p| p.trim_start_matches("./").trim_end_matches('/') == path)
            })
            .unwrap_or_else(|| panic!("{path} is not in the layer"))
    }
}

/// The Dockerfile's runtime-stage instructions we promise to match.
struct DockerfileRuntime {
    user: String,
    exposed: Vec<String>,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    binary_path: String,
}

fn dockerfile_runtime() -> DockerfileRuntime {
    let text = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).expect("Dockerfile");
    // The last stage is what runs.
    let runtime = text.rsplit("\nFROM ").next().expect("a FROM line");
    let mut found = DockerfileRuntime {
        user: String::new(),
        exposed: Vec::new(),
        entrypoint: Vec::new(),
        cmd: Vec::new(),
        binary_path: String::new(),
    };
    let exec_form = |rest: &str| -> Vec<String> {
        serde_json::from_str(rest.trim())
            .unwrap_or_else(|e| panic!("Dockerfile: {rest} is not the JSON exec form: {e}"))
    };
    for line in runtime.lines() {
        let (instruction, rest) = line.split_once(' ').unwrap_or((line, ""));
        match instruction {
            "USER" => found.user = rest.trim().to_owned(),
            "EXPOSE" => found.exposed = rest.split_whitespace().map(str::to_owned).collect(),
            "ENTRYPOINT" => found.entrypoint = exec_form(rest),
            "CMD" => found.cmd = exec_form(rest),
            "COPY" => {
                found.binary_path = rest
                    .split_whitespace()
                    .last()
                    .unwrap_or_default()
                    .to_owned()
            }
            _ => {}
        }
    }
    found
}

#[test]
fn the_daemonless_image_is_what_the_dockerfile_describes_and_nothing_more() {
    let archive = build_image(&[]);
    let image = unpack(&archive);
    let config = &image.config["config"];
    let docker = dockerfile_runtime();

    // The Dockerfile and scripts/image agree on everything the chart and the kubelet rely on.
    assert_eq!(config["User"], docker.user.as_str());
    assert_eq!(
        config["User"], "65532:65532",
        "non-root, numeric for runAsNonRoot"
    );
    assert_eq!(config["Entrypoint"], serde_json::json!(docker.entrypoint));
    assert_eq!(docker.entrypoint, std::slice::from_ref(&docker.binary_path));
    assert_eq!(config["Cmd"], serde_json::json!(docker.cmd));
    let exposed: Vec<String> = config["ExposedPorts"]
        .as_object()
        .map(|ports| ports.keys().cloned().collect())
        .unwrap_or_default();
    let docker_exposed: Vec<String> = docker
        .exposed
        .iter()
        .map(|p| {
            if p.contains('/') {
                p.clone()
            } else {
                format!("{p}/tcp")
            }
        })
        .collect();
    assert_eq!(exposed, docker_exposed);
    assert_eq!(image.config["os"], "linux");

    // OCI labels: where it comes from, which version and which commit.
    let labels = &config["Labels"];
    let cargo_version = env!("CARGO_PKG_VERSION");
    assert_eq!(labels["org.opencontainers.image.version"], cargo_version);
    let source = labels["org.opencontainers.image.source"]
        .as_str()
        .unwrap_or_default();
    assert!(source.starts_with("https://github.com/"), "{labels}");
    let revision = labels["org.opencontainers.image.revision"]
        .as_str()
        .unwrap_or_default();
    let head = run(Command::new("git").args(["-C", ROOT, "rev-parse", "HEAD"]));
    assert!(
        revision.starts_with(head.trim()),
        "revision {revision} vs HEAD {head}"
    );

    // Only what distroless/cc ships for this binary: no shell, no package manager.
    let paths = image.paths();
    let binary = docker.binary_path.trim_start_matches('/');
    assert!(paths.contains(binary), "{paths:?}");
    for needed in [
        "etc/passwd",
        "etc/group",
        "etc/nsswitch.conf",
        "etc/ssl/certs/ca-certificates.crt",
        "lib64/ld-linux-x86-64.so.2",
        "lib/x86_64-linux-gnu/libc.so.6",
        "lib/x86_64-linux-gnu/libgcc_s.so.1",
        "tmp",
        "home/nonroot",
    ] {
        assert!(paths.contains(needed), "{needed} missing: {paths:?}");
    }
    for absent in [
        "bin/sh",
        "bin/bash",
        "usr/bin/apt",
        "usr/bin/dpkg",
        "bin/busybox",
    ] {
        assert!(!paths.contains(absent), "{absent} must not be in the image");
    }
    let files: Vec<&String> = paths
        .iter()
        .filter(|p| {
            !["etc", "lib", "lib64", "usr", "home", "tmp"]
                .iter()
                .any(|d| d == p)
        })
        .filter(|p| {
            !p.starts_with("etc/ssl")
                && !p.starts_with("lib/x86_64-linux-gnu")
                && !p.starts_with("usr/local")
                && !p.starts_with("home/")
        })
        .collect();
    assert!(
        files.iter().all(|p| [
            "etc/passwd",
            "etc/group",
            "etc/nsswitch.conf",
            "lib64/ld-linux-x86-64.so.2"
        ]
        .contains(&p.as_str())),
        "unexpected files: {files:?}"
    );
    let passwd = image.line_of("etc/passwd");
    assert!(passwd.contains(" 0/0 "), "owned by root: {passwd}");
    assert!(image.line_of("home/nonroot").contains(" 65532/65532 "));
    let passwd_text = image.file("etc/passwd");
    assert!(
        passwd_text
            .lines()
            .any(|l| l.starts_with("nonroot:x:65532:65532:")),
        "{passwd_text}"
    );
    assert!(
        image.line_of(binary).starts_with("-rwxr-xr-x"),
        "{}",
        image.line_of(binary)
    );

    // Reproducible: the same commit gives the same digest, to another path and another time.
    let again_dir = tempfile::tempdir().expect("tempdir");
    let again_path = again_dir.path().join("again.oci.tar");
    let again = unpack(&build_image(&[
        "--out",
        again_path.to_str().expect("utf-8 path"),
    ]));
    assert_eq!(
        image.manifest_digest, again.manifest_digest,
        "same commit, same digest"
    );
    let archive_bytes = std::fs::read(&archive).expect("archive");
    let again_bytes = std::fs::read(&again_path).expect("archive");
    assert!(
        archive_bytes == again_bytes,
        "the archives are byte for byte the same"
    );
    eprintln!(
        "image: {} ({:.1} MB archive)",
        image.manifest_digest,
        archive_bytes.len() as f64 / 1e6
    );
}

#[test]
fn a_bad_tag_is_refused_with_a_clear_error() {
    let out = Command::new(Path::new(ROOT).join("scripts/image"))
        .args(["--tag", "no spaces/allowed"])
        .output()
        .expect("run scripts/image");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a valid image tag"), "{stderr}");
}

#[test]
fn the_dockerfile_build_context_holds_every_workspace_member() {
    // cargo reads the whole workspace before building one binary: a member missing from the
    // build context breaks `docker build` even though only the operator is built.
    let metadata: Value = serde_json::from_str(&run(Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(ROOT)))
    .expect("cargo metadata JSON");
    let members: Vec<String> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter_map(|p| p["manifest_path"].as_str())
        .filter_map(|m| Path::new(m).parent()?.strip_prefix(ROOT).ok())
        .map(|dir| dir.to_string_lossy().into_owned())
        .filter(|dir| !dir.is_empty())
        .collect();
    assert!(
        !members.is_empty(),
        "no workspace member besides the root: {metadata}"
    );
    let dockerfile =
        std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).expect("Dockerfile");
    let ignore =
        std::fs::read_to_string(Path::new(ROOT).join(".dockerignore")).expect(".dockerignore");
    for member in &members {
        for path in [format!("{member}/Cargo.toml"), format!("{member}/src")] {
            assert!(
                dockerfile
                    .lines()
                    .any(|l| l.starts_with("COPY ") && l.contains(&path)),
                "the Dockerfile does not copy {path}"
            );
            assert!(
                ignore
                    .lines()
                    .any(|l| l.trim_end_matches('/') == format!("!{path}")),
                ".dockerignore does not let {path} through"
            );
        }
    }
}
