//! The layout of `src/` as the README's architecture section describes it, checked on the source:
//! every module belongs to one unit of the map below, units import each other one way only
//! (no cycles), policy and value units cannot do I/O (they name no Kubernetes client, no AWS SDK,
//! no tokio, no file system, network or clock), the AWS edge knows nothing of Kubernetes, and no
//! file but a test file grows past [`MAX_LINES`].
//!
//! The check reads the source text: `crate::`, `super::` and `lightsail_gui_operator::` paths for
//! the module graph, and a list of forbidden paths for purity. Test code (`tests.rs`, `tests/`,
//! inline `#[cfg(test)]` modules) is left out: tests may do what the code may not.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");

/// The longest a non-test source file may be.
const MAX_LINES: usize = 600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    /// Plain values and pure functions over them: API types, conditions, schedules, AWS values.
    Value,
    /// The decisions: what to do next, which conditions, what to write. Pure.
    Policy,
    /// The edges: code that talks to AWS, to the Lease API, or keeps process-wide metrics.
    Edge,
    /// The controllers: they run the policy and perform the I/O it asks for.
    Controller,
    /// The process: flags, watches, HTTP, leader election and shutdown, wired together.
    Wiring,
}

/// Every unit of the architecture, by module path, with its layer. A module belongs to the unit
/// with the longest matching path; a module that matches none fails the test, so a new module
/// has to find its room here (and in the README) first.
const UNITS: &[(&str, Layer)] = &[
    ("duration", Layer::Value),
    ("aws::model", Layer::Value),
    ("aws::errors", Layer::Value),
    ("guisession::types", Layer::Value),
    ("guisession::conditions", Layer::Value),
    ("account::types", Layer::Value),
    ("schedule", Layer::Value),
    ("guisession::policy", Layer::Policy),
    ("account::policy", Layer::Policy),
    ("aws::sdk", Layer::Edge),
    ("aws::lightsail", Layer::Edge),
    ("kubernetes", Layer::Edge),
    ("leadership", Layer::Edge),
    ("metrics", Layer::Edge),
    ("guisession::controller", Layer::Controller),
    ("account::controller", Layer::Controller),
    ("account::index", Layer::Controller),
    ("process", Layer::Wiring),
];

/// Paths that mean I/O (or a clock): a policy or value unit naming one could do what its layer
/// promises it cannot.
const IO_PATHS: &[&str] = &[
    "kube::Api",
    "kube::Client",
    "kube::api",
    "kube::runtime",
    "kube::client",
    "aws_sdk_",
    "aws_config",
    "aws_smithy",
    "aws_credential_types",
    "tokio",
    "futures",
    "axum",
    "hyper",
    "std::fs",
    "std::net",
    "std::process",
    "std::thread",
    "std::env",
    "Timestamp::now",
    "SystemTime::now",
    "Instant::now",
    "crate::metrics",
    "tracing::",
];

/// What a module of the AWS edge may not name: it knows nothing of Kubernetes.
const KUBERNETES_PATHS: &[&str] = &[
    "kube::",
    "k8s_openapi",
    "crate::kubernetes",
    "crate::guisession",
    "crate::account",
    "crate::process",
    "controller::",
];

struct Module {
    path: String,
    file: PathBuf,
    /// The source without test code.
    code: String,
    lines: usize,
    is_test: bool,
}

fn module_path(file: &Path) -> String {
    let rel = file.strip_prefix(SRC).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts.join("::")
}

/// The text with inline `#[cfg(test)] mod … { … }` blocks and comments removed.
fn without_tests_and_comments(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod ") && next.ends_with('{'))
        {
            // Skip to the closing brace at the same indentation.
            let indent = line.len() - line.trim_start().len();
            let close = format!("{}}}", " ".repeat(indent));
            for inner in lines.by_ref() {
                if inner == close {
                    break;
                }
            }
            continue;
        }
        let code = line.split("//").next().unwrap_or("");
        out.push_str(code);
        out.push('\n');
    }
    out
}

fn modules() -> Vec<Module> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(Path::new(SRC), &mut files);
    files.sort();
    files
        .into_iter()
        .filter(|f| f.file_name().is_some_and(|n| n != "main.rs"))
        .map(|file| {
            let text = fs::read_to_string(&file).expect("read source");
            let path = module_path(&file);
            let is_test = path
                .split("::")
                .any(|p| p == "tests" || p.ends_with("_tests"));
            Module {
                code: without_tests_and_comments(&text),
                lines: text.lines().count(),
                path,
                file,
                is_test,
            }
        })
        .collect()
}

/// A room's index (`src/aws/mod.rs`): a module whose path is a prefix of units'. It may only
/// declare and re-export its modules.
fn is_room_index(path: &str) -> bool {
    !path.is_empty()
        && UNITS
            .iter()
            .any(|(unit, _)| unit.starts_with(&format!("{path}::")))
}

fn unit_of(path: &str) -> Option<(&'static str, Layer)> {
    UNITS
        .iter()
        .filter(|(unit, _)| path == *unit || path.starts_with(&format!("{unit}::")))
        .max_by_key(|(unit, _)| unit.len())
        .copied()
}

/// The units a module's code names, through `crate::`, `super::` or the library's name.
fn units_named(module: &Module) -> BTreeSet<&'static str> {
    let mut named = BTreeSet::new();
    let parent: Vec<&str> = module.path.split("::").collect();
    let code = &module.code;
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let (base, len): (Vec<&str>, usize) = if rest.starts_with("crate::") {
            (vec![], "crate::".len())
        } else if rest.starts_with("lightsail_gui_operator::") {
            (vec![], "lightsail_gui_operator::".len())
        } else if rest.starts_with("super::")
            && !code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':')
        {
            // `super` is the parent module, whether the file is `a/b.rs` or `a/b/mod.rs`.
            (
                parent[..parent.len().saturating_sub(1)].to_vec(),
                "super::".len(),
            )
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        let tail: String = rest[len..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let mut path: Vec<&str> = base;
        path.extend(tail.split("::").filter(|s| !s.is_empty()));
        let full = path.join("::");
        if let Some((unit, _)) = unit_of(&full) {
            named.insert(unit);
        } else if let Some(first) = path.first()
            && UNITS.iter().any(|(u, _)| u.starts_with(first))
        {
            // `crate::account::{types::X, policy::Y}`: a group names each unit inside it.
            for (unit, _) in UNITS {
                if unit.starts_with(&format!("{first}::"))
                    && rest[len..].split(';').next().is_some_and(|stmt| {
                        stmt.contains(&unit[first.len() + 2..]) && stmt.contains('{')
                    })
                {
                    named.insert(unit);
                }
            }
        }
        i += len;
    }
    named
}

fn graph(modules: &[Module]) -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    let mut edges: BTreeMap<&'static str, BTreeSet<&'static str>> = BTreeMap::new();
    for module in modules
        .iter()
        .filter(|m| !m.is_test && !m.path.is_empty() && !is_room_index(&m.path))
    {
        let (unit, _) = unit_of(&module.path).expect("checked by every_module_has_a_room");
        let named = units_named(module);
        edges
            .entry(unit)
            .or_default()
            .extend(named.into_iter().filter(|u| *u != unit));
    }
    edges
}

#[test]
fn every_module_has_a_room_in_the_map() {
    let homeless: Vec<String> = modules()
        .iter()
        .filter(|m| !m.is_test && !m.path.is_empty() && !is_room_index(&m.path))
        .filter(|m| unit_of(&m.path).is_none())
        .map(|m| m.file.display().to_string())
        .collect();
    let busy_indexes: Vec<String> = modules()
        .iter()
        .filter(|m| is_room_index(&m.path))
        .filter(|m| {
            m.code.lines().any(|l| {
                let l = l.trim();
                !(l.is_empty()
                    || l.starts_with("mod ")
                    || l.starts_with("pub mod ")
                    || l.starts_with("#[cfg(test)]"))
            })
        })
        .map(|m| m.file.display().to_string())
        .collect();
    assert!(
        busy_indexes.is_empty(),
        "a room's index only declares its modules: {busy_indexes:?}"
    );
    assert!(
        homeless.is_empty(),
        "modules outside every unit of tests/architecture.rs (add them to UNITS and to the \
         README's architecture section): {homeless:?}"
    );
}

#[test]
fn units_import_each_other_one_way_only() {
    let edges = graph(&modules());
    // Depth-first search for a cycle, reporting it whole.
    fn visit<'a>(
        unit: &'a str,
        edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(at) = stack.iter().position(|u| *u == unit) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(unit);
            return Some(cycle);
        }
        if !done.insert(unit) {
            return None;
        }
        stack.push(unit);
        for next in edges.get(unit).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for unit in edges.keys() {
        if let Some(cycle) = visit(unit, &edges, &mut Vec::new(), &mut done) {
            panic!("units import each other: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn dependencies_point_from_wiring_to_controllers_to_policy_to_values() {
    let edges = graph(&modules());
    let layer = |u: &str| unit_of(u).map(|(_, l)| l).expect("a unit");
    let mut wrong = Vec::new();
    for (from, tos) in &edges {
        for to in tos {
            // Never up the layers. Sideways is allowed (types naming types, the AWS edge counting
            // calls in the metrics, one controller using another's index) as long as no two
            // units import each other, which `units_import_each_other_one_way_only` checks.
            let fine = layer(to) <= layer(from);
            if !fine {
                wrong.push(format!(
                    "{from} ({:?}) -> {to} ({:?})",
                    layer(from),
                    layer(to)
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies against the layers: {wrong:#?}"
    );
    // The AWS edge is used by the controllers (and the wiring that builds it) only.
    for (from, tos) in &edges {
        for to in tos
            .iter()
            .filter(|t| ["aws::lightsail", "aws::sdk"].contains(t))
        {
            assert!(
                from.starts_with("aws::") || layer(from) >= Layer::Controller,
                "{from} uses the AWS edge {to}: only controllers may"
            );
        }
    }
}

#[test]
fn policy_and_values_cannot_do_io() {
    let mut found = Vec::new();
    for module in modules().iter().filter(|m| !m.is_test) {
        let Some((unit, layer)) = unit_of(&module.path) else {
            continue;
        };
        if layer > Layer::Policy {
            continue;
        }
        for path in IO_PATHS {
            if module.code.contains(path) {
                found.push(format!("{} ({unit}) names {path}", module.file.display()));
            }
        }
        for edge in ["aws::lightsail", "aws::sdk"] {
            if module.code.contains(&format!("crate::{edge}")) {
                found.push(format!(
                    "{} ({unit}) names the AWS edge {edge}",
                    module.file.display()
                ));
            }
        }
    }
    assert!(found.is_empty(), "I/O in policy or values: {found:#?}");
}

#[test]
fn the_aws_edge_knows_nothing_of_kubernetes() {
    let mut found = Vec::new();
    for module in modules()
        .iter()
        .filter(|m| !m.is_test && m.path.starts_with("aws"))
    {
        for path in KUBERNETES_PATHS {
            if module.code.contains(path) {
                found.push(format!("{} names {path}", module.file.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the AWS edge names Kubernetes: {found:#?}"
    );
}

#[test]
fn no_source_file_but_a_test_is_longer_than_a_few_screens() {
    let long: Vec<String> = modules()
        .iter()
        .filter(|m| !m.is_test && m.lines > MAX_LINES)
        .map(|m| format!("{} ({} lines)", m.file.display(), m.lines))
        .collect();
    assert!(long.is_empty(), "files over {MAX_LINES} lines: {long:?}");
}

#[test]
fn the_readme_map_names_every_room_and_only_rooms_that_exist() {
    let readme = fs::read_to_string(README).expect("README.md");
    let start = readme
        .find("## Architecture")
        .expect("README.md has an '## Architecture' section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let root = Path::new(SRC).parent().expect("repo root");
    // Every unit has a file or folder, and the map names it.
    for (unit, _) in UNITS {
        let rel = unit.replace("::", "/");
        let (dir, file) = (format!("src/{rel}/"), format!("src/{rel}.rs"));
        let on_disk = if root.join(&file).is_file() {
            file
        } else {
            dir
        };
        assert!(root.join(&on_disk).exists(), "{unit}: no {on_disk}");
        assert!(
            section.contains(&format!("`{on_disk}`")),
            "the README's architecture section does not name `{on_disk}` ({unit})"
        );
    }
    // Every path the map names exists.
    for name in section.split('`').skip(1).step_by(2) {
        if name.starts_with("src/") {
            let path = name.split(&[' ', ':'][..]).next().unwrap_or(name);
            assert!(
                root.join(path).exists(),
                "the README's architecture section names {path}, which does not exist"
            );
        }
    }
}
