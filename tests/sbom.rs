//! The SBOM the release attests, made here the way the release makes it: syft (pinned in
//! tools/syft, built by scripts/go-tool-build) scans the operator's OCI image layout as
//! `scripts/image` builds it, and writes SPDX JSON. The crates it lists must be the crates of
//! Cargo.lock that end up in the binary, by name and version.
//!
//! What ends up in the binary, computed from `cargo metadata`'s resolved graph for this host's
//! target (the image is linux/amd64, built on this host): every package reachable from
//! lightsail-gui-operator over normal dependency edges, not through a build-dependency edge
//! (build scripts run at compile time) and not through a proc-macro crate (it runs inside rustc;
//! nothing of it is linked). The image of the tests is `--profile dev`, built with the features
//! of `--workspace --benches` (see scripts/image): that is the feature set `cargo metadata`
//! resolves too, so the dev-dependencies' features (aws-sdk-lightsail/test-util) and the crates
//! they turn on are in both.
//!
//! The comparison is two-sided:
//! - every crate linked in is in the SBOM (the point of an SBOM: a vulnerable crate is found);
//! - every crate in the SBOM is in Cargo.lock and in the binary's normal dependency closure:
//!   nothing invented, no build-only crate (cc, autocfg, ...). The one documented allowance:
//!   cargo auditable (which records the list syft reads) marks a proc-macro crate, and the crates
//!   only it uses (syn, quote, ...), as a runtime dependency where a normal edge reaches it
//!   (kube-derive from kube, tracing-attributes from tracing), so the SBOM lists these
//!   compile-time crates too. Listing more than is linked is the safe side for an SBOM; they are
//!   accepted only if the crate is a proc-macro or reachable only through one.
//!
//! Without `cargo auditable` in scripts/image the binary carries no dependency list and syft
//! finds no crate at all: this test fails, saying so.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const BINARY: &str = "/usr/local/bin/lightsail-gui-operator";

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed ({})", out.status);
    out.stdout
}

fn path_from_stdout(stdout: Vec<u8>) -> PathBuf {
    PathBuf::from(String::from_utf8(stdout).expect("UTF-8 path").trim())
}

/// The image archive `scripts/image --profile dev` builds (or finds cached), as tests/image.rs
/// builds it.
fn image_archive() -> PathBuf {
    path_from_stdout(run(
        Command::new(Path::new(ROOT).join("scripts/image")).args(["--profile", "dev"])
    ))
}

fn syft() -> PathBuf {
    path_from_stdout(run(Command::new(
        Path::new(ROOT).join("scripts/go-tool-build"),
    )
    .arg("syft")))
}

/// syft's SPDX JSON for the OCI layout unpacked from `archive`.
fn spdx_of(archive: &Path) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = dir.path().join("layout");
    std::fs::create_dir(&layout).expect("mkdir layout");
    run(Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(&layout));
    let sbom = dir.path().join("sbom.spdx.json");
    run(Command::new(syft())
        .arg("scan")
        .arg(format!("oci-dir:{}", layout.display()))
        .arg("--quiet")
        .arg("--output")
        .arg(format!("spdx-json={}", sbom.display()))
        // No network here or in CI: no update check.
        .env("SYFT_CHECK_FOR_APP_UPDATE", "false"));
    let text = std::fs::read_to_string(&sbom).expect("read the SBOM");
    serde_json::from_str(&text).expect("SPDX JSON")
}

/// (name, version) of every cargo package the SBOM lists, by its purl `pkg:cargo/NAME@VERSION`,
/// and where syft says it read each.
fn sbom_crates(spdx: &Value) -> BTreeMap<(String, String), String> {
    assert_eq!(
        spdx["spdxVersion"], "SPDX-2.3",
        "not SPDX 2.3: {}",
        spdx["spdxVersion"]
    );
    let mut crates = BTreeMap::new();
    for package in spdx["packages"].as_array().expect("packages") {
        let purls: Vec<&str> = package["externalRefs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["referenceType"] == "purl")
            .filter_map(|r| r["referenceLocator"].as_str())
            .filter(|p| p.starts_with("pkg:cargo/"))
            .collect();
        let [purl] = purls[..] else { continue };
        // The purl percent-encodes the version (0.9.34+deprecated is 0.9.34%2Bdeprecated): the
        // name and version are the package's own fields, which the purl must name.
        let name = package["name"].as_str().expect("name");
        let version = package["versionInfo"].as_str().expect("versionInfo");
        assert!(
            purl.starts_with(&format!("pkg:cargo/{name}@")),
            "purl {purl} is not of {name}: {package}"
        );
        let source = package["sourceInfo"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        crates.insert((name.to_owned(), version.to_owned()), source);
    }
    crates
}

/// This host's target triple: the image's binary is built for it.
fn host_target() -> String {
    let out = String::from_utf8(run(Command::new("rustc").arg("-vV"))).expect("UTF-8");
    out.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_owned()
}

struct Graph {
    /// id -> (name, version)
    packages: BTreeMap<String, (String, String)>,
    proc_macros: BTreeSet<String>,
    /// id -> the ids it depends on over a normal (not build, not dev) edge, for this target
    normal_deps: BTreeMap<String, Vec<String>>,
    root: String,
}

fn cargo_graph() -> Graph {
    let metadata: Value = serde_json::from_slice(&run(Command::new(
        std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
    )
    .args([
        "metadata",
        "--format-version",
        "1",
        "--locked",
        "--filter-platform",
    ])
    .arg(host_target())
    .current_dir(ROOT)))
    .expect("cargo metadata JSON");
    let mut packages = BTreeMap::new();
    let mut proc_macros = BTreeSet::new();
    let mut root = None;
    for p in metadata["packages"].as_array().expect("packages") {
        let id = p["id"].as_str().expect("id").to_owned();
        let name = p["name"].as_str().expect("name").to_owned();
        if name == "lightsail-gui-operator" {
            root = Some(id.clone());
        }
        let is_proc_macro = p["targets"].as_array().expect("targets").iter().any(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "proc-macro"))
        });
        if is_proc_macro {
            proc_macros.insert(id.clone());
        }
        let version = p["version"].as_str().expect("version").to_owned();
        packages.insert(id, (name, version));
    }
    let normal_deps = metadata["resolve"]["nodes"]
        .as_array()
        .expect("resolve.nodes")
        .iter()
        .map(|node| {
            let deps = node["deps"]
                .as_array()
                .expect("deps")
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .expect("dep_kinds")
                        .iter()
                        .any(|k| k["kind"].is_null())
                })
                .map(|d| d["pkg"].as_str().expect("pkg").to_owned())
                .collect();
            (node["id"].as_str().expect("id").to_owned(), deps)
        })
        .collect();
    Graph {
        packages,
        proc_macros,
        normal_deps,
        root: root.expect("lightsail-gui-operator in cargo metadata"),
    }
}

impl Graph {
    /// The ids reachable from the root over normal edges, descending into proc-macros or not.
    fn reachable(&self, through_proc_macros: bool) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![self.root.clone()];
        while let Some(id) = todo.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            for dep in &self.normal_deps[&id] {
                if through_proc_macros || !self.proc_macros.contains(dep) {
                    todo.push(dep.clone());
                }
            }
        }
        seen
    }

    fn names(&self, ids: &BTreeSet<String>) -> BTreeSet<(String, String)> {
        ids.iter().map(|id| self.packages[id].clone()).collect()
    }
}

#[test]
fn the_images_sbom_lists_every_crate_linked_into_the_binary_and_nothing_else() {
    let graph = cargo_graph();
    let linked_ids = graph.reachable(false);
    let linked = graph.names(&linked_ids);
    let compile_time = graph.names(&graph.reachable(true));
    // The traversal itself: it found the dependencies the operator is built on, and kept out what
    // only runs at build time.
    for (name, linked_in) in [
        ("kube-client", true),
        ("aws-sdk-lightsail", true),
        ("tokio", true),
        ("serde_derive", false),
        ("cc", false),
    ] {
        assert_eq!(
            linked.iter().any(|(n, _)| n == name),
            linked_in,
            "{name} is {}expected among the crates linked in",
            if linked_in { "" } else { "not " }
        );
    }

    let archive = image_archive();
    let spdx = spdx_of(&archive);
    let listed = sbom_crates(&spdx);
    assert!(
        !listed.is_empty(),
        "syft found no crate in the image {}: does the binary still carry cargo auditable's \
         dependency list (scripts/image builds with `cargo auditable build`)?",
        archive.display()
    );
    // Read from the binary in the image, not from some Cargo.lock.
    for ((name, version), source) in &listed {
        assert!(
            source.ends_with(BINARY),
            "{name} {version} was not read from {BINARY}: {source:?}"
        );
    }
    let listed: BTreeSet<(String, String)> = listed.into_keys().collect();

    let missing: Vec<_> = linked.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "{} of the {} crates linked into the binary are not in the SBOM: {missing:?}",
        missing.len(),
        linked.len()
    );
    // Anything more must be compile-time-only code reached through a proc-macro: nothing that is
    // not in Cargo.lock, nothing that is only a build-dependency.
    let unexpected: Vec<_> = listed.difference(&compile_time).collect();
    assert!(
        unexpected.is_empty(),
        "the SBOM lists crates that are not in the binary's dependency graph: {unexpected:?}"
    );
    let extra: Vec<_> = listed.difference(&linked).collect();
    eprintln!(
        "SBOM of {}: {} crates, the {} linked in and {} compile-time crates reached through \
         proc-macros: {extra:?}",
        archive.display(),
        listed.len(),
        linked.len(),
        extra.len()
    );
}
