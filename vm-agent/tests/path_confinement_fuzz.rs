//! Hostile paths against every path-taking workspace route, through the
//! agent's real router.
//!
//! The workspace is a real one, created through `POST /workspaces` (the
//! registry is what names its checkout). Each case rebuilds that checkout
//! from scratch (a git repository with a few files) next to secrets it must
//! never reveal — a directory outside, the registry's own `workspace.json`
//! (which holds the workspace's callback token), a file under the node's
//! root — and
//! plants generated symbolic links in it (out of the checkout by absolute
//! and relative targets, into it, loops, dangling). Then it sends a
//! generated path, encoded exactly once or with its `%` left raw (so the
//! server's single decoding turns `%2e%2e` into `..`), to list, content,
//! raw, download, upload (as the directory, and a generated file name) and
//! git diff, and checks that each request was either refused, or touched
//! only what lies inside the checkout:
//!
//! - no response ever contains a secret's content or the callback token
//!   (nor, except for git's display of a link's target, a secret's name);
//! - a listing or file served is the one the path names, and it resolves
//!   inside the checkout (checked independently with `canonicalize`);
//! - an upload that succeeded wrote inside the checkout, never into `.git`;
//! - nothing outside the checkout, and nothing in `.git`, changed (a digest
//!   of both before and after every case).

// Test helpers outside `#[test]` functions unwrap too; a panic is a failure.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/workspace_fs.rs"]
mod workspace_fs;

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::http::StatusCode;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use workspace_fs::{WS, Workspace, encode, git, hash_tree};

/// Content of every secret; must never be served.
const SECRET: &str = "SECRET-CONTENT-4f1d9c";
/// Part of every secret's name; must never be listed.
const SECRET_NAME: &str = "secret-name-83be";
const UPLOADED: &[u8] = b"UPLOADED-BY-THE-FUZZER";
const CASES: u32 = 256;

/// Path components: traversal in every disguise, names that exist, names of
/// the planted links, lookalikes and oversized names.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("..".to_owned()),
        2 => Just(".".to_owned()),
        2 => Just(String::new()),
        2 => Just("%2e%2e".to_owned()),
        1 => Just("%2E%2e%2f%2e%2e".to_owned()),
        1 => Just("%252e%252e".to_owned()),
        1 => Just("..%2f..".to_owned()),
        1 => Just("%2f".to_owned()),
        1 => Just("%00".to_owned()),
        1 => Just("..\\..".to_owned()),
        1 => Just("\\".to_owned()),
        1 => Just("\0".to_owned()),
        1 => Just("a\0b".to_owned()),
        1 => Just("\u{ff0e}\u{ff0e}".to_owned()),
        1 => Just("\u{2024}\u{2024}".to_owned()),
        1 => Just("\u{2215}".to_owned()),
        1 => Just("\u{ff0f}".to_owned()),
        1 => Just("..\u{200b}".to_owned()),
        1 => Just(" ".to_owned()),
        1 => Just("\n".to_owned()),
        1 => Just("~".to_owned()),
        1 => Just("*".to_owned()),
        1 => Just(":(glob)**".to_owned()),
        1 => Just("-rf".to_owned()),
        6 => prop::sample::select(vec![
            "sub", "file.txt", "sub/file.txt", ".git", "config", "HEAD", "objects",
            "outside", SECRET_NAME, "workspace.json", "repo", "etc", WS, "var",
        ])
        .prop_map(str::to_owned),
        6 => (0..LINKS.len()).prop_map(|i| LINKS[i].0.to_owned()),
        1 => Just("a".repeat(256)),
        1 => Just("b".repeat(255)),
        1 => "[a-z.%/\\\\]{1,12}",
    ]
}

fn separator() -> impl Strategy<Value = &'static str> {
    prop_oneof![6 => Just("/"), 1 => Just("//"), 1 => Just("/./"), 1 => Just("\\")]
}

/// A whole hostile path.
fn hostile_path() -> impl Strategy<Value = String> {
    let joined = (
        prop::collection::vec((segment(), separator()), 0..6),
        prop_oneof![4 => Just(""), 1 => Just("/"), 1 => Just("//")],
        prop_oneof![4 => Just(""), 1 => Just("/")],
    )
        .prop_map(|(parts, lead, trail)| {
            let mut path = lead.to_owned();
            for (i, (segment, sep)) in parts.iter().enumerate() {
                if i > 0 {
                    path.push_str(sep);
                }
                path.push_str(segment);
            }
            path.push_str(trail);
            path
        });
    // Paths that could exist: names of files, directories and planted links,
    // so that resolution (through links in and out) is what is tested.
    let name = prop_oneof![
        3 => (0..LINKS.len()).prop_map(|i| LINKS[i].0.to_owned()),
        2 => prop::sample::select(vec![
            "sub", "file.txt", ".git", "HEAD", "config", "etc", "repo",
            "workspace.json", "outside", "secret-name-83be.txt", "secret-name-83be",
        ])
        .prop_map(str::to_owned),
    ];
    let plausible = prop_oneof![
        2 => prop::collection::vec(name.clone(), 1..3),
        1 => prop::collection::vec(name, 3..5),
    ]
    .prop_map(|parts| parts.join("/"));
    prop_oneof![
        10 => plausible,
        10 => joined,
        1 => Just("a/".repeat(2100)),
        1 => Just(format!("{}/file.txt", "sub/.".repeat(10))),
    ]
}

/// File names for uploads.
fn upload_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just("uploaded.txt".to_owned()),
        1 => Just("..".to_owned()),
        1 => Just(".".to_owned()),
        1 => Just(String::new()),
        1 => Just(".git".to_owned()),
        1 => Just("a/b".to_owned()),
        1 => Just("../escape".to_owned()),
        1 => Just("..\\escape".to_owned()),
        1 => Just("C:\\fakepath\\x".to_owned()),
        1 => Just("x\ny".to_owned()),
        1 => Just("\u{ff0e}\u{ff0e}".to_owned()),
        1 => Just("%2e%2e".to_owned()),
        1 => Just("a".repeat(256)),
        1 => Just("sub".to_owned()),
        2 => (0..LINKS.len()).prop_map(|i| LINKS[i].0.to_owned()),
    ]
}

/// Link names and where they may point (`{out}` is the outside directory,
/// `{ws}` the workspace directory holding `workspace.json`).
const LINKS: &[(&str, &[&str])] = &[
    ("l-abs", &["{out}", "{out}/{name}.txt", "/", "/etc", "{ws}"]),
    (
        "l-rel",
        &[
            "../../../../../../outside",
            "../workspace.json",
            "..",
            "../..",
            "../../../../etc",
        ],
    ),
    (
        "l-in",
        &["sub", "sub/file.txt", ".", ".git", "l-in", "l-loop"],
    ),
    ("l-loop", &["l-loop", "l-in", "l-deep/../l-loop"]),
    (
        "l-deep",
        &[
            "sub/../..",
            "./sub/./../../outside",
            "{out}/missing",
            "sub/nothing",
        ],
    ),
];

/// Each link's target this case (an index into its list): every link is
/// planted both in the root and in `sub/`.
fn links() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..5usize, LINKS.len() * 2)
}

#[derive(Debug, Clone)]
struct Case {
    path: String,
    /// Leave `%` unencoded, so the server's decoding acts on it.
    raw_percent: bool,
    name: String,
    links: Vec<usize>,
}

fn case() -> impl Strategy<Value = Case> {
    (hostile_path(), any::<bool>(), upload_name(), links()).prop_map(
        |(path, raw_percent, name, links)| Case {
            path,
            raw_percent,
            name,
            links,
        },
    )
}

/// The fixture of one case, rebuilt from scratch (the workspace's
/// directory and `workspace.json` are the registry's and stay).
fn build(ws: &Workspace, case: &Case) {
    let ws_dir = ws.repo.parent().unwrap().to_path_buf();
    let _ = std::fs::remove_dir_all(&ws.repo);
    let _ = std::fs::remove_dir_all(&ws.outside);
    std::fs::create_dir_all(ws.repo.join("sub")).unwrap();
    std::fs::create_dir_all(&ws.outside).unwrap();
    std::fs::create_dir_all(ws.fs_root().join("etc")).unwrap();
    std::fs::write(ws.outside.join(format!("{SECRET_NAME}.txt")), SECRET).unwrap();
    std::fs::write(ws.outside.join("file.txt"), SECRET).unwrap();
    std::fs::write(ws.fs_root().join(format!("etc/{SECRET_NAME}")), SECRET).unwrap();
    // Inside files named like the secrets and like git's own, so that both
    // sides of every check are reached.
    std::fs::create_dir_all(ws.repo.join("etc")).unwrap();
    for (name, content) in [
        ("file.txt", "inside\n"),
        ("config", "inside config\n"),
        ("workspace.json", "{}\n"),
        ("sub/file.txt", "inside sub\n"),
        ("sub/HEAD", "inside head\n"),
        ("etc/config", "inside etc\n"),
    ] {
        std::fs::write(ws.repo.join(name), content).unwrap();
    }
    git(&ws.repo, &["init", "-q"]);
    git(&ws.repo, &["add", "-A"]);
    git(&ws.repo, &["commit", "-q", "-m", "base"]);
    std::fs::write(ws.repo.join("sub/file.txt"), "changed\n").unwrap();
    for (i, &target) in case.links.iter().enumerate() {
        let (name, targets) = LINKS[i % LINKS.len()];
        let in_sub = i >= LINKS.len();
        let target = targets[target % targets.len()]
            .replace("{out}", ws.outside.to_str().unwrap())
            .replace("{ws}", ws_dir.to_str().unwrap())
            .replace("{name}", SECRET_NAME);
        let at = if in_sub {
            ws.repo.join("sub").join(name)
        } else {
            ws.repo.join(name)
        };
        let _ = symlink(target, at);
    }
}

/// Digest of everything the routes must leave alone: the whole temporary
/// directory minus the checkout's working files, plus the checkout's `.git`.
fn protected(ws: &Workspace) -> (String, String, String) {
    let ws_dir = ws.repo.parent().unwrap();
    (
        hash_tree(&ws.outside),
        hash_tree(&ws.fs_root().join("etc")) + &hash_tree(&ws_dir.join("workspace.json")),
        hash_tree(&ws.repo.join(".git")),
    )
}

/// The query value as sent, and what the server decodes it to.
fn query_value(case: &Case) -> (String, String) {
    let sent = if case.raw_percent {
        encode(&case.path).replace("%25", "%")
    } else {
        encode(&case.path)
    };
    let decoded = url::form_urlencoded::parse(format!("path={sent}").as_bytes())
        .find(|(k, _)| k == "path")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    (sent, decoded)
}

/// Where `decoded` really leads, if it exists: checked with `canonicalize`,
/// independently of the agent's code.
fn real_target(repo: &Path, decoded: &str) -> Option<PathBuf> {
    let relative = decoded.trim_start_matches('/');
    std::fs::canonicalize(repo.join(relative)).ok()
}

fn inside(repo: &Path, path: &Path) -> bool {
    path.starts_with(std::fs::canonicalize(repo).unwrap())
}

/// A refusal about the path, not about the credential (which would make
/// every case pass without testing anything).
fn refused(status: StatusCode) -> bool {
    status.is_client_error() && status != StatusCode::UNAUTHORIZED
}

/// How often each route answered what (`"<route> <status> <code>"`), to
/// show the cases reach both sides: refusals of every kind, and successes.
type Stats = Mutex<BTreeMap<String, usize>>;

fn count(stats: &Stats, route: &str, reply: &workspace_fs::Reply) {
    let code = if reply.status.is_success() {
        String::new()
    } else {
        reply.code()
    };
    let key = format!("{route} {} {code}", reply.status.as_u16());
    *stats.lock().unwrap().entry(key).or_default() += 1;
}

async fn run_case(ws: &Workspace, case: &Case, stats: &Stats) -> Result<(), TestCaseError> {
    build(ws, case);
    let before = protected(ws);
    let (sent, decoded) = query_value(case);
    let target = real_target(&ws.repo, &decoded);

    for route in [
        "files",
        "files/content",
        "files/raw",
        "files/download",
        "git/diff",
    ] {
        let uri = format!("/workspaces/{WS}/{route}?path={sent}");
        let reply = ws.get(&uri).await;
        count(stats, route, &reply);
        let body = String::from_utf8_lossy(&reply.body);
        prop_assert!(
            !body.contains(SECRET) && !body.contains(&ws.callback_token),
            "{route} served a secret for {:?}",
            case.path
        );
        if route != "git/diff" {
            prop_assert!(
                !body.contains(SECRET_NAME),
                "{route} named a secret for {:?}",
                case.path
            );
        }
        prop_assert!(
            reply.status.is_success() || refused(reply.status),
            "{route} {:?}: {} {body}",
            case.path,
            reply.status
        );
        if !reply.status.is_success() {
            continue;
        }
        match route {
            "files" => {
                let dir = target.clone().unwrap_or_default();
                prop_assert!(dir.is_dir() && inside(&ws.repo, &dir), "listed {dir:?}");
            }
            "files/content" | "files/raw" | "files/download" => {
                let file = target.clone().unwrap_or_default();
                prop_assert!(inside(&ws.repo, &file), "served {file:?}");
                let on_disk = std::fs::read(&file).unwrap();
                if route == "files/content" {
                    let json = reply.json();
                    prop_assert_eq!(json["size"].as_u64(), Some(on_disk.len() as u64));
                    if let Some(text) = json["text"].as_str() {
                        prop_assert_eq!(text.as_bytes(), &on_disk[..]);
                    }
                } else {
                    prop_assert_eq!(&reply.body[..], &on_disk[..]);
                }
            }
            _ => {}
        }
    }

    // Upload into the hostile path, under a generated name.
    let uri = format!("/workspaces/{WS}/files/upload?path={sent}");
    let reply = ws.upload_to(&uri, &[(case.name.as_str(), UPLOADED)]).await;
    count(stats, "files/upload", &reply);
    let body = String::from_utf8_lossy(&reply.body);
    prop_assert!(!body.contains(SECRET) && !body.contains(&ws.callback_token));
    prop_assert!(
        reply.status.is_success() || refused(reply.status),
        "upload {:?} {:?}: {} {body}",
        case.path,
        case.name,
        reply.status
    );
    if reply.status.is_success() {
        let dir = target.clone().unwrap_or_default();
        prop_assert!(inside(&ws.repo, &dir), "uploaded into {dir:?}");
        // The name as the server understood it (a multipart client encodes
        // some characters), which must still be a single component.
        let json = reply.json();
        let name = json["files"][0]["name"].as_str().unwrap_or_default();
        prop_assert!(!name.is_empty() && !name.contains('/') && name != "..");
        let written = dir.join(name);
        let metadata = std::fs::symlink_metadata(&written);
        prop_assert!(
            metadata.is_ok_and(|m| m.is_file()),
            "no file at {written:?}"
        );
        prop_assert_eq!(std::fs::read(&written).unwrap(), UPLOADED.to_vec());
        prop_assert!(!written.components().any(|c| c.as_os_str() == ".git"));
    }

    let after = protected(ws);
    prop_assert_eq!(&before.0, &after.0, "the outside directory changed");
    prop_assert_eq!(&before.1, &after.1, "the node's other files changed");
    prop_assert_eq!(&before.2, &after.2, ".git changed");
    Ok(())
}

#[test]
fn path_confinement_fuzz() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ws = runtime.block_on(Workspace::start());
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let stats = Stats::default();
    // Fixed cases first, so that both sides of every check are reached
    // whatever the generated ones happen to be.
    for (path, name) in [
        ("", "uploaded.txt"),
        ("sub/", "uploaded.txt"),
        ("file.txt", "uploaded.txt"),
        ("l-in/file.txt", "l-abs"),
        ("l-abs", "uploaded.txt"),
        ("l-abs/file.txt", "uploaded.txt"),
        ("../outside", "uploaded.txt"),
    ] {
        let case = Case {
            path: path.to_owned(),
            raw_percent: false,
            name: name.to_owned(),
            links: vec![0; LINKS.len() * 2],
        };
        if let Err(err) = runtime.block_on(run_case(&ws, &case, &stats)) {
            panic!("{case:?}: {err}");
        }
    }
    let ran = std::sync::atomic::AtomicU32::new(0);
    let result = runner.run(&case(), |case| {
        ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        runtime.block_on(run_case(&ws, &case, &stats))
    });
    let ran = ran.into_inner();
    if let Err(err) = result {
        panic!("{err}");
    }
    let stats = stats.into_inner().unwrap();
    println!("path_confinement_fuzz: {ran} generated cases (plus 7 fixed ones)");
    for (key, n) in &stats {
        println!("  {n:5}  {key}");
    }
    assert!(ran >= CASES, "only {ran} cases ran");
    // Both sides were reached: every route succeeded sometimes, and paths
    // were refused as outside and as invalid.
    let seen = |prefix: &str| stats.keys().any(|key| key.starts_with(prefix));
    for route in [
        "files",
        "files/content",
        "files/raw",
        "files/download",
        "files/upload",
        "git/diff",
    ] {
        let ok = if route == "files/upload" {
            "201"
        } else {
            "200"
        };
        assert!(seen(&format!("{route} {ok}")), "{route} never succeeded");
    }
    assert!(stats.keys().any(|k| k.ends_with("path_outside_workspace")));
    assert!(stats.keys().any(|k| k.ends_with("path_invalid")));
}
