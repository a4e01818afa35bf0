//! Repository-wide structure checks that no single crate's tests can make.
//!
//! The pure crates (everything under `crates/`, plus `sam-cloud-init` and
//! `sam-web`) are shared by the wasm Worker and native binaries and must be
//! testable with plain `cargo test`. Pulling in the Worker runtime, the JS
//! bindings or tokio, even transitively, would break one side or the other,
//! so this test walks the resolved dependency graph and names the path to
//! any such crate.
//!
//! The graph is resolved for the host platform. `cargo metadata` cannot
//! resolve one package on its own: features are unified across the whole
//! workspace, Worker crates included, and on wasm32 the time and randomness
//! crates (`web-time`, `chrono`, `getrandom`) reach the JS clock and RNG
//! through `js-sys`. Those wasm32-only edges say nothing about a pure crate's
//! own choices, so they are left out of the walk; a pure crate *declaring*
//! a forbidden dependency for any target is still caught, directly.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::process::Command;

use cargo_metadata::{DependencyKind, MetadataCommand};

/// Crates a pure crate must never reach through normal or build dependencies.
const FORBIDDEN: &[&str] = &[
    "worker",
    "worker-sys",
    "wasm-bindgen",
    "wasm-bindgen-futures",
    "js-sys",
    "web-sys",
    "tokio",
];

/// Pure crates that live outside `crates/`.
const PURE_OUTSIDE_CRATES: &[&str] = &["sam-cloud-init", "sam-web"];

/// A dependency graph keyed by opaque package ids.
#[derive(Default)]
struct Graph {
    /// Package id → package name.
    names: HashMap<String, String>,
    /// Package id → ids of its normal and build dependencies.
    deps: HashMap<String, Vec<String>>,
}

impl Graph {
    fn name<'a>(&'a self, id: &'a str) -> &'a str {
        self.names.get(id).map_or(id, String::as_str)
    }
}

/// Breadth-first search from `start` to the nearest package named in
/// `forbidden`; returns the names along the way, `start` first.
///
/// Breadth-first so the reported path is a shortest one, which is the
/// easiest to act on.
fn forbidden_path(graph: &Graph, start: &str, forbidden: &[&str]) -> Option<Vec<String>> {
    let mut parent: HashMap<&str, &str> = HashMap::new();
    let mut seen: HashSet<&str> = HashSet::from([start]);
    let mut queue = VecDeque::from([start]);
    while let Some(id) = queue.pop_front() {
        if id != start && forbidden.contains(&graph.name(id)) {
            let mut path = vec![graph.name(id).to_owned()];
            let mut at = id;
            while let Some(&up) = parent.get(at) {
                path.push(graph.name(up).to_owned());
                at = up;
            }
            path.reverse();
            return Some(path);
        }
        for dep in graph.deps.get(id).into_iter().flatten() {
            if seen.insert(dep) {
                parent.insert(dep, id);
                queue.push_back(dep);
            }
        }
    }
    None
}

/// The platform `cargo` builds for by default, from `rustc -vV`.
fn host_triple() -> String {
    // Cargo sets RUSTC for the processes it runs when a wrapper or custom
    // compiler is configured; plain `rustc` otherwise.
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let output = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .expect("rustc -vV prints the host triple")
        .to_owned()
}

#[test]
fn pure_crates_do_not_depend_on_wasm_or_tokio() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the repository root");
    let metadata = MetadataCommand::new()
        .manifest_path(root.join("Cargo.toml"))
        .other_options(vec!["--filter-platform".to_owned(), host_triple()])
        .exec()
        .expect("cargo metadata");
    let resolve = metadata
        .resolve
        .as_ref()
        .expect("cargo metadata resolves dependencies");

    let mut graph = Graph::default();
    for package in &metadata.packages {
        graph
            .names
            .insert(package.id.repr.clone(), package.name.to_string());
    }
    for node in &resolve.nodes {
        let mut deps: Vec<String> = node
            .deps
            .iter()
            // Dev-dependencies only build tests; they may use tokio freely.
            .filter(|dep| {
                dep.dep_kinds
                    .iter()
                    .any(|k| matches!(k.kind, DependencyKind::Normal | DependencyKind::Build))
            })
            .map(|dep| dep.pkg.repr.clone())
            .collect();
        // Sorted by name so the reported path is stable from run to run.
        deps.sort_by(|a, b| graph.name(a).cmp(graph.name(b)));
        graph.deps.insert(node.id.repr.clone(), deps);
    }

    let crates_dir = metadata.workspace_root.join("crates");
    let pure: Vec<_> = metadata
        .workspace_packages()
        .into_iter()
        .filter(|p| {
            p.manifest_path.starts_with(&crates_dir)
                || PURE_OUTSIDE_CRATES.contains(&p.name.as_str())
        })
        .collect();
    for name in PURE_OUTSIDE_CRATES {
        assert!(
            pure.iter().any(|p| p.name.as_str() == *name),
            "{name} is no longer a workspace member; update PURE_OUTSIDE_CRATES"
        );
    }
    assert!(
        pure.len() > PURE_OUTSIDE_CRATES.len(),
        "found no workspace crates under {crates_dir}"
    );

    let mut offending: Vec<String> = pure
        .iter()
        .filter_map(|p| forbidden_path(&graph, &p.id.repr, FORBIDDEN))
        .map(|path| path.join(" -> "))
        .collect();
    // Declared dependencies, whatever their target: a `cfg(wasm32)` entry in
    // a pure crate's own manifest is exactly what the host walk cannot see.
    for package in &pure {
        for dep in &package.dependencies {
            if dep.kind != DependencyKind::Development && FORBIDDEN.contains(&dep.name.as_str()) {
                let target = dep
                    .target
                    .as_ref()
                    .map_or_else(String::new, |t| format!(" (for {t})"));
                offending.push(format!("{} -> {}{target}", package.name, dep.name));
            }
        }
    }
    assert!(
        offending.is_empty(),
        "pure crates must not depend (even transitively) on {FORBIDDEN:?}:\n  {}",
        offending.join("\n  ")
    );
}

#[test]
fn walker_finds_transitive_violations_and_survives_cycles() {
    let mut graph = Graph::default();
    for (id, deps) in [
        ("app", &["serde", "helper"][..]),
        ("serde", &[][..]),
        ("helper", &["util"][..]),
        ("util", &["helper", "tokio"][..]),
        ("tokio", &[][..]),
        ("clean", &["serde", "loop-a"][..]),
        ("loop-a", &["loop-b"][..]),
        ("loop-b", &["loop-a"][..]),
    ] {
        graph.names.insert(id.to_owned(), id.to_owned());
        graph.deps.insert(
            id.to_owned(),
            deps.iter().map(|d| (*d).to_owned()).collect(),
        );
    }
    assert_eq!(
        forbidden_path(&graph, "app", FORBIDDEN),
        Some(vec![
            "app".to_owned(),
            "helper".to_owned(),
            "util".to_owned(),
            "tokio".to_owned()
        ])
    );
    assert_eq!(forbidden_path(&graph, "clean", FORBIDDEN), None);
}
