//! Real workspaces for the tests of the workspace routes (terminals, files,
//! git view). The registry is the one authority on which workspaces exist
//! and where their checkouts are, so these tests create theirs the way the
//! control plane does: `POST /workspaces`, cloned from a local smart-HTTP
//! git server ([`GitHttp`]) through the agent's own credential helper (the
//! real `vm-agent` binary), the fake control plane handing out the git
//! token.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sam_auth::{Audience, Grant, SigningKey};
use sam_vm_agent::Agent;
use serde_json::{Value, json};

use super::git_http::GitHttp;
use super::{FakeControlPlane, NODE_ID, now_ms};

/// The repository every workspace checks out (branch `main`).
pub const REPO: &str = "app.git";
/// How long a creation may take before the test gives up.
const CREATION_LIMIT: Duration = Duration::from_secs(60);

/// A git server with [`REPO`], and the credential helper for in-process
/// agents.
pub struct Source {
    pub git: GitHttp,
    /// Holds the helper binary.
    bin: tempfile::TempDir,
}

impl Source {
    /// Starts the git server; `cp` hands out the password it accepts as the
    /// git token.
    pub async fn start(cp: &FakeControlPlane) -> Self {
        let token = format!("ghs_test{:x}{:x}", now_ms(), std::process::id());
        *cp.state.git_token.lock().unwrap() = Some(token.clone());
        let git = GitHttp::start(&token).await;
        git.create_repo(REPO, &[]);
        Self {
            git,
            bin: tempfile::tempdir().unwrap(),
        }
    }

    /// Makes git in `agent`'s workspaces run the real `vm-agent` binary as
    /// its credential helper (the agent runs inside the test binary, which
    /// is not one).
    pub fn equip(&self, agent: &Agent) {
        agent
            .workspaces()
            .set_credential_helper(helper_binary(self.bin.path()));
    }

    /// The `POST /workspaces` body for workspace `id`: host runtime, branch
    /// `main`, a callback token from `cp` signed with `key`.
    pub fn create_body(&self, cp: &FakeControlPlane, key: &SigningKey, id: &str) -> Value {
        json!({
            "id": id,
            "repository": { "clone_url": self.git.url(REPO), "branch": "main" },
            "git_identity": { "name": "Ada Lovelace", "email": "ada@example.com" },
            "runtime": "host",
            "callback_token": callback_token(cp, key, id),
        })
    }
}

/// A workspace-callback token for `id` on this node.
pub fn callback_token(cp: &FakeControlPlane, key: &SigningKey, id: &str) -> String {
    key.issue(
        &cp.url(),
        &Grant::workspace(Audience::WorkspaceCallback, NODE_ID, id, 3600),
        now_ms(),
    )
}

/// Polls `view` (the body of `GET /workspaces/{id}`) until the creation is
/// over; panics unless the workspace is running then.
pub async fn until_running(mut view: impl AsyncFnMut() -> Value) {
    let deadline = tokio::time::Instant::now() + CREATION_LIMIT;
    loop {
        let body = view().await;
        match body["workspace"]["status"].as_str() {
            Some("running") => return,
            Some("creating") if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => panic!("the workspace did not come up: {body}"),
        }
    }
}

/// Removes everything in `dir`, keeping `dir` itself.
pub fn empty(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if std::fs::symlink_metadata(&path).unwrap().is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
}

/// The `vm-agent` binary, linked (or copied) into `dir`: other builds in the
/// same target directory replace `CARGO_BIN_EXE_vm-agent` now and then, and
/// git must find its credential helper at every moment of a test.
pub fn helper_binary(dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_BIN_EXE_vm-agent"));
    let target = dir.join("bin/vm-agent");
    if target.exists() {
        return target;
    }
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    for _ in 0..300 {
        if std::fs::hard_link(source, &target).is_ok() || std::fs::copy(source, &target).is_ok() {
            return target;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{} did not appear", source.display());
}
