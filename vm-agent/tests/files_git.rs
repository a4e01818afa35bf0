//! The workspace git view (status and diff) on real repositories, through
//! the agent's real router.

// Test helpers outside `#[test]` functions unwrap too; a panic is a failure.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/workspace_fs.rs"]
mod workspace_fs;

use std::os::unix::fs::symlink;

use axum::http::StatusCode;
use serde_json::Value;
use workspace_fs::{WS, Workspace, git, hash_tree};

fn write(ws: &Workspace, rel: &str, content: &str) {
    let path = ws.repo.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// A repository with one commit pushed to a bare remote, then every kind of
/// change: unstaged, staged, renamed, deleted (with its directory),
/// untracked (in a new directory, with a newline in its name, and a link
/// out of the checkout), and one more local commit.
async fn messy_repo() -> Workspace {
    let ws = Workspace::start().await;
    let repo = ws.repo.clone();
    git(&repo, &["init", "-q"]);
    write(&ws, "a file.txt", "one\ntwo\n");
    write(&ws, "staged.txt", "staged before\n");
    write(
        &ws,
        "old name.txt",
        "a file that moves\nwith enough lines\nto be a rename\n",
    );
    write(&ws, "gone/deleted.txt", "soon deleted\n");
    write(&ws, "ahead.txt", "v1\n");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    let remote = ws.tmp.path().join("remote.git");
    git(ws.tmp.path(), &["init", "-q", "--bare", "remote.git"]);
    git(
        &repo,
        &["remote", "add", "origin", remote.to_str().unwrap()],
    );
    git(&repo, &["push", "-q", "-u", "origin", "main"]);
    write(&ws, "ahead.txt", "v2\n");
    git(&repo, &["commit", "-q", "-am", "second"]);

    write(&ws, "a file.txt", "one\ntwo\nunstaged change\n");
    write(&ws, "staged.txt", "staged after\n");
    git(&repo, &["add", "staged.txt"]);
    git(&repo, &["mv", "old name.txt", "new name.txt"]);
    std::fs::remove_dir_all(repo.join("gone")).unwrap();
    write(&ws, "untracked dir/u.txt", "untracked content\n");
    write(&ws, "new\nline.txt", "odd name\n");
    std::fs::write(ws.outside.join("secret.txt"), "TOP-SECRET").unwrap();
    symlink(ws.outside.join("secret.txt"), repo.join("out")).unwrap();
    write(&ws, ".gitignore", "ignored.log\n");
    write(&ws, "ignored.log", "not shown\n");
    ws
}

fn files(status: &Value) -> Vec<(String, Option<String>, String, String)> {
    status["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["orig_path"].as_str().map(str::to_owned),
                f["index"].as_str().unwrap().to_owned(),
                f["worktree"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn entry(
    path: &str,
    orig: Option<&str>,
    index: &str,
    worktree: &str,
) -> (String, Option<String>, String, String) {
    (
        path.to_owned(),
        orig.map(str::to_owned),
        index.to_owned(),
        worktree.to_owned(),
    )
}

#[tokio::test]
async fn status_reports_branch_tracking_and_every_kind_of_change() {
    let ws = messy_repo().await;
    let index_before = hash_tree(&ws.repo.join(".git"));

    let reply = ws.get(&format!("/workspaces/{WS}/git/status")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let status = reply.json();
    assert_eq!(status["branch"], "main");
    assert_eq!(status["upstream"], "origin/main");
    assert_eq!(status["ahead"], 1);
    assert_eq!(status["behind"], 0);
    assert_eq!(status["head"].as_str().unwrap().len(), 40);
    assert_eq!(status["truncated"], false);
    let mut got = files(&status);
    got.sort();
    let mut expected = vec![
        entry("a file.txt", None, ".", "M"),
        entry("staged.txt", None, "M", "."),
        entry("new name.txt", Some("old name.txt"), "R", "."),
        entry("gone/deleted.txt", None, ".", "D"),
        entry("untracked dir/u.txt", None, "?", "?"),
        entry("new\nline.txt", None, "?", "?"),
        entry("out", None, "?", "?"),
        entry(".gitignore", None, "?", "?"),
    ];
    expected.sort();
    assert_eq!(got, expected);

    // Reading the status wrote nothing into the repository.
    assert_eq!(hash_tree(&ws.repo.join(".git")), index_before);
}

#[tokio::test]
async fn whole_tree_diffs_include_untracked_files_and_show_links_as_links() {
    let ws = messy_repo().await;
    let git_dir_before = hash_tree(&ws.repo.join(".git"));

    let reply = ws.get(&format!("/workspaces/{WS}/git/diff")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert_eq!(body["truncated"], false);
    assert_eq!(body["path"], "");
    let diff = body["diff"].as_str().unwrap();
    for expected in [
        "diff --git a/a file.txt b/a file.txt",
        "+unstaged change",
        "diff --git a/staged.txt b/staged.txt",
        "-staged before",
        "+staged after",
        "rename from old name.txt",
        "rename to new name.txt",
        "diff --git a/gone/deleted.txt b/gone/deleted.txt",
        "deleted file mode 100644",
        "diff --git a/untracked dir/u.txt b/untracked dir/u.txt\nnew file mode 100644\n--- /dev/null\n+++ b/untracked dir/u.txt\t\n@@ -0,0 +1 @@\n+untracked content\n",
        "diff --git \"a/new\\nline.txt\" \"b/new\\nline.txt\"\nnew file mode 100644",
        "+odd name",
        "diff --git a/out b/out\nnew file mode 120000",
    ] {
        assert!(diff.contains(expected), "missing {expected:?} in\n{diff}");
    }
    // The link is shown as its target's name, never its content; committed
    // history is not part of the diff; ignored files are not either.
    assert!(!diff.contains("TOP-SECRET"));
    assert!(!diff.contains("ahead.txt"));
    assert!(!diff.contains("not shown"));

    // What git itself would say about the untracked file, modulo the index
    // line git adds.
    let theirs = std::process::Command::new("git")
        .current_dir(&ws.repo)
        .args([
            "diff",
            "--no-index",
            "--",
            "/dev/null",
            "untracked dir/u.txt",
        ])
        .output()
        .unwrap();
    let theirs = String::from_utf8(theirs.stdout).unwrap();
    let theirs: String = theirs
        .split_inclusive('\n')
        .filter(|l| !l.starts_with("index "))
        .collect();
    assert!(diff.contains(&theirs), "{theirs}");

    // Staged only: the index against HEAD.
    let staged = ws
        .get(&format!("/workspaces/{WS}/git/diff?staged=true"))
        .await
        .json();
    let staged = staged["diff"].as_str().unwrap();
    assert!(staged.contains("+staged after"));
    assert!(staged.contains("rename to new name.txt"));
    assert!(!staged.contains("unstaged change"));
    assert!(!staged.contains("untracked content"));

    assert_eq!(hash_tree(&ws.repo.join(".git")), git_dir_before);
}

#[tokio::test]
async fn single_path_diffs_are_confined_first() {
    let ws = messy_repo().await;
    let diff = |path: &str| {
        let ws = &ws;
        let uri = Workspace::url("git/diff", path);
        async move { ws.get(&uri).await }
    };

    let one = diff("a file.txt").await.json();
    assert_eq!(one["path"], "a file.txt");
    let text = one["diff"].as_str().unwrap();
    assert!(text.contains("+unstaged change"));
    assert!(!text.contains("staged.txt"));

    let untracked = diff("untracked dir/u.txt").await.json();
    assert!(
        untracked["diff"]
            .as_str()
            .unwrap()
            .contains("+untracked content")
    );
    let dir = diff("untracked dir").await.json();
    assert!(dir["diff"].as_str().unwrap().contains("+untracked content"));

    // A file deleted with its directory can still be named.
    let deleted = diff("gone/deleted.txt").await.json();
    assert!(deleted["diff"].as_str().unwrap().contains("-soon deleted"));

    // The link itself is fine; a path through it is not.
    let link = diff("out").await.json();
    assert!(
        link["diff"]
            .as_str()
            .unwrap()
            .contains("new file mode 120000")
    );
    assert!(!link["diff"].as_str().unwrap().contains("TOP-SECRET"));
    for (path, code) in [
        ("out/secret.txt", "path_outside_workspace"),
        ("../outside", "path_invalid"),
        ("/etc/passwd", "path_invalid"),
    ] {
        let reply = diff(path).await;
        assert_eq!(reply.code(), code, "{path}");
        assert!(!String::from_utf8_lossy(&reply.body).contains("TOP-SECRET"));
    }

    // Pathspec magic is not magic: `*` is a literal name.
    let star = diff("*.txt").await.json();
    assert_eq!(star["diff"], "");
    let magic = diff(":(glob)*").await.json();
    assert_eq!(magic["diff"], "");
}

#[tokio::test]
async fn long_diffs_are_truncated_on_a_line() {
    let ws = Workspace::start().await;
    git(&ws.repo, &["init", "-q"]);
    // No commit yet: the diff is against the empty tree.
    let line = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n";
    write(&ws, "big.txt", &line.repeat(40_000));
    let body = ws.get(&format!("/workspaces/{WS}/git/diff")).await.json();
    assert_eq!(body["truncated"], true);
    let diff = body["diff"].as_str().unwrap();
    assert!(diff.len() <= 2 * 1024 * 1024);
    assert!(diff.ends_with('\n'));
    assert!(diff.starts_with("diff --git a/big.txt b/big.txt\nnew file mode 100644\n"));

    // Staged in a repository without commits.
    git(&ws.repo, &["add", "big.txt"]);
    let staged = ws
        .get(&format!("/workspaces/{WS}/git/diff?staged=true"))
        .await
        .json();
    assert_eq!(staged["truncated"], true);
    assert!(
        staged["diff"]
            .as_str()
            .unwrap()
            .contains("new file mode 100644")
    );
    let status = ws.get(&format!("/workspaces/{WS}/git/status")).await.json();
    assert_eq!(status["branch"], "main");
    assert_eq!(status["head"], Value::Null);
    assert_eq!(files(&status), [entry("big.txt", None, "A", ".")]);
}

#[tokio::test]
async fn a_checkout_without_its_own_git_directory_is_not_a_repository() {
    let ws = Workspace::start().await;
    // Even inside another repository, git never looks above the checkout.
    git(&ws.fs_root(), &["init", "-q"]);
    write(&ws, "x.txt", "x");
    for route in ["git/status", "git/diff"] {
        let reply = ws.get(&format!("/workspaces/{WS}/{route}")).await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "{route}");
        assert_eq!(reply.code(), "not_a_git_repository");
    }
    // A `.git` that is a link to another repository is refused too.
    symlink(ws.fs_root().join(".git"), ws.repo.join(".git")).unwrap();
    let reply = ws.get(&format!("/workspaces/{WS}/git/status")).await;
    assert_eq!(reply.code(), "not_a_git_repository");
}
