//! Workspaces end to end, with real git and real processes: the agent (in
//! process, serving its real router) clones from a git server speaking
//! smart HTTP behind Basic authentication, through its own credential
//! helper (the real `vm-agent` binary) and credential socket, reporting to
//! a fake control plane.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::NODE_ID;
use common::git_http::{GitHttp, git, scan_processes};
use common::provision::helper_binary;
use common::workspace_cp::WorkspaceCp;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const WS1: &str = "01JAB3C4D5E6F7G8H9J0K1M2N3";
const WS2: &str = "01JAB3C4D5E6F7G8H9J0K1M2N4";
const OTHER_NODE: &str = "01HZX3Y0000000000000000001";

/// A token nobody could guess, so finding it anywhere means it leaked.
fn fresh_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "ghs_{nanos:x}{:x}{:04x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

struct Harness {
    cp: WorkspaceCp,
    git: GitHttp,
    /// The token the control plane hands out and the git server accepts.
    token: String,
    root: tempfile::TempDir,
    agent: SocketAddr,
    server: JoinHandle<()>,
    http: reqwest::Client,
}

async fn start_agent(cp: &WorkspaceCp, root: &Path) -> (SocketAddr, JoinHandle<()>) {
    let vars = [
        ("SAM_NODE_ID", NODE_ID.to_owned()),
        ("SAM_CONTROL_PLANE_URL", cp.url()),
        ("SAM_FS_ROOT", root.display().to_string()),
        ("SAM_BIND_HOST", "127.0.0.1".to_owned()),
        ("SAM_VM_AGENT_PORT", "1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut config = sam_vm_agent::Config::from_env_map(&vars).unwrap();
    config.backoff = sam_vm_agent::Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(50),
    };
    let agent = sam_vm_agent::Agent::new(config).unwrap();
    agent
        .workspaces()
        .set_credential_helper(helper_binary(root));
    agent.workspaces().load().await;
    let router = agent.router();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (addr, server)
}

impl Harness {
    async fn start() -> Self {
        let token = fresh_token();
        let cp = WorkspaceCp::start(Some(&token)).await;
        let git = GitHttp::start(&token).await;
        let root = tempfile::tempdir().unwrap();
        let (agent, server) = start_agent(&cp, root.path()).await;
        Self {
            cp,
            git,
            token,
            root,
            agent,
            server,
            http: reqwest::Client::new(),
        }
    }

    /// Stops the agent and starts a new one on the same files.
    async fn restart_agent(&mut self) {
        self.server.abort();
        let _ = (&mut self.server).await;
        let (agent, server) = start_agent(&self.cp, self.root.path()).await;
        self.agent = agent;
        self.server = server;
    }

    fn workspaces_dir(&self) -> PathBuf {
        self.root.path().join("var/lib/sam/workspaces")
    }

    fn repo_dir(&self, id: &str) -> PathBuf {
        self.workspaces_dir().join(id).join("repo")
    }

    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("http://{}{path}", self.agent));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request(reqwest::Method::GET, path, Some(&self.cp.token()), None)
            .await
    }

    async fn post(&self, path: &str) -> (StatusCode, Value) {
        self.request(reqwest::Method::POST, path, Some(&self.cp.token()), None)
            .await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.request(reqwest::Method::DELETE, path, Some(&self.cp.token()), None)
            .await
    }

    fn body(&self, id: &str, repo: &str, branch: &str, base: Option<&str>) -> Value {
        let mut repository = json!({ "clone_url": self.git.url(repo), "branch": branch });
        if let Some(base) = base {
            repository["base_branch"] = json!(base);
        }
        json!({
            "id": id,
            "repository": repository,
            "git_identity": { "name": "Ada Lovelace", "email": "ada@example.com" },
            "runtime": "host",
            "callback_token": self.cp.callback_token(id),
        })
    }

    async fn create(&self, body: &Value) -> (StatusCode, Value) {
        self.request(
            reqwest::Method::POST,
            "/workspaces",
            Some(&self.cp.token()),
            Some(body),
        )
        .await
    }

    /// Creates and waits until the control plane hears `ready`.
    async fn create_ready(&self, id: &str, repo: &str, branch: &str, base: Option<&str>) {
        let (status, body) = self.create(&self.body(id, repo, branch, base)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let outcome = self.cp.outcome(id).await;
        assert_eq!(outcome.kind, "ready", "{:?}", outcome.body);
    }
}

/// Every file under `dir` (recursively) as bytes.
fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                out.push((entry.path(), std::fs::read(entry.path()).unwrap()));
            }
        }
    }
    out
}

/// Everything under `dir`: path → (size, modification time).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            }
            out.insert(entry.path(), (meta.len(), meta.modified().unwrap()));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn create_clones_the_branch_through_the_credential_helper_and_reports_ready() {
    let h = Harness::start().await;
    let heads = h.git.create_repo("app.git", &["feature/login"]);

    // Watch every process while the workspace is created.
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (token, done) = (h.token.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut scans = 0;
            while !done.load(Ordering::SeqCst) {
                seen.extend(scan_processes(&token));
                scans += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (scans, seen)
        })
    };

    let request = h.body(&WS1.to_ascii_lowercase(), "app.git", "feature/login", None);
    let callback_token = request["callback_token"].as_str().unwrap().to_owned();
    let (status, body) = h.create(&request).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["workspace"]["id"], WS1, "ids are normalised");
    assert_eq!(body["workspace"]["status"], "creating");
    assert_eq!(body["workspace"]["runtime"], "host");
    assert_eq!(body["workspace"]["branch"], "feature/login");

    let outcome = h.cp.outcome(WS1).await;
    assert_eq!(outcome.kind, "ready", "{:?}", h.cp.calls());
    done.store(true, Ordering::SeqCst);
    let (scans, seen) = watcher.await.unwrap();
    assert!(scans > 0);

    // The checkout is on the branch, at the remote's commit, with the identity.
    let repo = h.repo_dir(WS1);
    assert_eq!(git(&repo, &["branch", "--show-current"]), "feature/login");
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), heads[1].1);
    assert_eq!(
        std::fs::read_to_string(repo.join("BRANCH")).unwrap(),
        "feature/login\n"
    );
    assert_eq!(
        git(&repo, &["config", "--local", "user.name"]),
        "Ada Lovelace"
    );
    assert_eq!(
        git(&repo, &["config", "--local", "user.email"]),
        "ada@example.com"
    );

    // Git asked the agent: first without credentials, then with the token.
    assert!(h.git.state.unauthenticated.load(Ordering::SeqCst) >= 1);
    assert!(h.git.state.authenticated.load(Ordering::SeqCst) >= 1);
    let token_calls = h.cp.calls_for(WS1, "git-token");
    assert!(!token_calls.is_empty());
    // Every callback carried the workspace's callback token.
    let bearer = format!("Bearer {callback_token}");
    for call in h.cp.calls() {
        assert_eq!(call.workspace, WS1);
        assert_eq!(
            call.authorization.as_deref(),
            Some(bearer.as_str()),
            "{call:?}"
        );
    }

    // The boot log, step by step.
    assert_eq!(
        h.cp.boot_log(WS1),
        [
            "clone:started",
            "clone:done",
            "branch:started",
            "branch:done",
            "git_identity:started",
            "git_identity:done",
            "runtime_start:started",
            "runtime_start:done",
        ]
    );
    for entry in h.cp.calls_for(WS1, "boot-log") {
        assert!(entry.body["at"].as_i64().unwrap() > 1_700_000_000_000);
    }

    // The token was in no process's argv or environment...
    assert_eq!(h.git.leaks(), Vec::<String>::new());
    assert_eq!(seen, Vec::<String>::new());
    // ...and is nowhere on disk in the workspace.
    let files = all_files(&h.workspaces_dir().join(WS1));
    assert!(files.len() > 5);
    for (path, bytes) in &files {
        assert!(!contains(bytes, &h.token), "token in {}", path.display());
    }
    // The remote has no credentials; the helper is the agent binary.
    let config = std::fs::read_to_string(repo.join(".git/config")).unwrap();
    let url_line = config
        .lines()
        .find(|l| l.trim_start().starts_with("url = "))
        .unwrap();
    assert_eq!(url_line.trim(), format!("url = {}", h.git.url("app.git")));
    assert!(
        config.contains(&format!(
            "{} git-credential --workspace {WS1} --socket",
            h.root.path().join("bin/vm-agent").display()
        )),
        "{config}"
    );

    // workspace.json is private.
    let state = h.workspaces_dir().join(WS1).join("workspace.json");
    assert_eq!(
        std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let (status, body) = h.get(&format!("/workspaces/{WS1}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["workspace"]["status"], "running");
    assert!(body["workspace"].get("error").is_none());
    let (status, body) = h.get("/workspaces").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["workspaces"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_branch_the_remote_lacks_is_created_from_the_base_or_default_branch() {
    let h = Harness::start().await;
    let heads = h.git.create_repo("app.git", &["develop"]);
    let main = heads[0].1.clone();
    let develop = heads[1].1.clone();

    h.create_ready(WS1, "app.git", "sam/new-work", Some("develop"))
        .await;
    let repo = h.repo_dir(WS1);
    assert_eq!(git(&repo, &["branch", "--show-current"]), "sam/new-work");
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), develop);
    let branch_done =
        h.cp.calls_for(WS1, "boot-log")
            .into_iter()
            .find(|c| c.body["step"] == "branch" && c.body["status"] == "done")
            .unwrap();
    assert_eq!(
        branch_done.body["detail"],
        "created sam/new-work from develop"
    );

    // Without a base: from the remote's default branch.
    h.create_ready(WS2, "app.git", "sam/other", None).await;
    let repo = h.repo_dir(WS2);
    assert_eq!(git(&repo, &["branch", "--show-current"]), "sam/other");
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), main);
}

#[tokio::test]
async fn refused_credentials_fail_provisioning_with_a_scrubbed_reason() {
    let h = Harness::start().await;
    h.git.create_repo("app.git", &[]);
    // The control plane hands out a token the git server does not take.
    let wrong = fresh_token();
    *h.cp.state.git_token.lock().unwrap() = Some(wrong.clone());

    let request = h.body(WS1, "app.git", "main", None);
    let callback_token = request["callback_token"].as_str().unwrap().to_owned();
    let (status, _) = h.create(&request).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let outcome = h.cp.outcome(WS1).await;
    assert_eq!(outcome.kind, "provisioning-failed");
    let reason = outcome.body["reason"].as_str().unwrap().to_owned();
    assert!(reason.starts_with("clone failed:"), "{reason}");
    assert!(reason.contains("Authentication failed"), "{reason}");
    assert!(!reason.contains(&wrong), "{reason}");
    assert!(!reason.contains(&callback_token), "{reason}");
    assert!(h.git.state.refused.load(Ordering::SeqCst) >= 1);
    assert!(h.cp.calls_for(WS1, "ready").is_empty());
    assert_eq!(h.cp.boot_log(WS1), ["clone:started", "clone:failed"]);
    let failed = &h.cp.calls_for(WS1, "boot-log")[1];
    assert_eq!(failed.body["detail"].as_str().unwrap(), reason);

    let (_, body) = h.get(&format!("/workspaces/{WS1}")).await;
    assert_eq!(body["workspace"]["status"], "error");
    assert_eq!(body["workspace"]["error"].as_str().unwrap(), reason);
    // The wrong token is not on disk either.
    for (path, bytes) in all_files(&h.workspaces_dir().join(WS1)) {
        assert!(!contains(&bytes, &wrong), "token in {}", path.display());
    }

    // A control plane that refuses a git token: also a clean failure.
    *h.cp.state.git_token.lock().unwrap() = None;
    let (status, _) = h.create(&h.body(WS2, "app.git", "main", None)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let outcome = h.cp.outcome(WS2).await;
    assert_eq!(outcome.kind, "provisioning-failed");
    let reason = outcome.body["reason"].as_str().unwrap();
    assert!(reason.starts_with("clone failed:"), "{reason}");
}

#[tokio::test]
async fn an_unreachable_repository_fails_provisioning() {
    let h = Harness::start().await;
    let mut body = h.body(WS1, "app.git", "main", None);
    body["repository"]["clone_url"] = json!("http://127.0.0.1:1/nothing.git");
    let (status, _) = h.create(&body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let outcome = h.cp.outcome(WS1).await;
    assert_eq!(outcome.kind, "provisioning-failed");
    let reason = outcome.body["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("clone failed: git ls-remote failed:"),
        "{reason}"
    );
    // Nothing was asked of the control plane for a server never reached.
    assert!(h.cp.calls_for(WS1, "git-token").is_empty());

    // A missing base branch fails the clone.
    h.git.create_repo("app.git", &[]);
    let (status, _) = h
        .create(&h.body(WS2, "app.git", "sam/x", Some("no-such-base")))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let outcome = h.cp.outcome(WS2).await;
    assert_eq!(outcome.kind, "provisioning-failed");
    let reason = outcome.body["reason"].as_str().unwrap();
    assert!(reason.contains("no-such-base"), "{reason}");
}

#[tokio::test]
async fn stop_restart_rebuild_and_delete() {
    let h = Harness::start().await;
    h.git.create_repo("app.git", &[]);
    h.create_ready(WS1, "app.git", "main", None).await;
    let repo = h.repo_dir(WS1);

    // A process in the workspace, like a terminal's shell.
    let mut shell = std::process::Command::new("/bin/sh")
        .args(["-c", "exec sleep 300"])
        .current_dir(&repo)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let (status, body) = h.post(&format!("/workspaces/{WS1}/stop")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["workspace"]["status"], "stopped");
    let exit = shell.wait().unwrap();
    assert!(
        !exit.success(),
        "the workspace's process was stopped: {exit:?}"
    );
    // Idempotent.
    let (status, body) = h.post(&format!("/workspaces/{WS1}/stop")).await;
    assert_eq!(
        (status, &body["workspace"]["status"]),
        (StatusCode::OK, &json!("stopped"))
    );

    let (status, body) = h.post(&format!("/workspaces/{WS1}/restart")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["workspace"]["status"], "running");
    let (status, body) = h.post(&format!("/workspaces/{WS1}/rebuild")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["workspace"]["status"], "running");

    // Concurrent operations on one workspace are serialised, and all succeed.
    let (stop, restart) = (
        format!("/workspaces/{WS1}/stop"),
        format!("/workspaces/{WS1}/restart"),
    );
    let (a, b, c) = tokio::join!(h.post(&stop), h.post(&restart), h.post(&stop));
    for (status, body) in [a, b, c] {
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    // Delete: processes stopped, directory gone, workspace forgotten.
    let mut shell = std::process::Command::new("/bin/sh")
        .args(["-c", "exec sleep 300"])
        .current_dir(&repo)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _) = h.delete(&format!("/workspaces/{WS1}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!shell.wait().unwrap().success());
    assert!(!h.workspaces_dir().join(WS1).exists());
    let (status, body) = h.get(&format!("/workspaces/{WS1}")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (_, body) = h.get("/workspaces").await;
    assert_eq!(body["workspaces"], json!([]));
    let (status, _) = h.delete(&format!("/workspaces/{WS1}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = h.post(&format!("/workspaces/{WS1}/restart")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The id is free again.
    h.create_ready(WS1, "app.git", "main", None).await;
}

#[tokio::test]
async fn operations_wait_for_creation_and_a_delete_cancels_it() {
    let h = Harness::start().await;
    h.git.create_repo("app.git", &[]);
    // A slow server keeps the creation busy.
    h.git.set_delay(Duration::from_secs(2));
    let (status, _) = h.create(&h.body(WS1, "app.git", "main", None)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(300)).await;

    for op in ["stop", "restart", "rebuild"] {
        let (status, body) = h.post(&format!("/workspaces/{WS1}/{op}")).await;
        assert_eq!(status, StatusCode::CONFLICT, "{op}: {body}");
        assert_eq!(body["code"], "workspace_busy");
    }
    let (status, body) = h.create(&h.body(WS1, "app.git", "main", None)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "workspace_exists");

    let ours = |found: Vec<String>| -> Vec<String> {
        found
            .into_iter()
            .filter(|p| p.contains("/cmdline"))
            .collect()
    };
    let root = h.root.path().display().to_string();
    assert!(
        !ours(scan_processes(&root)).is_empty(),
        "git is at work for the workspace"
    );

    let started = tokio::time::Instant::now();
    let (status, _) = h.delete(&format!("/workspaces/{WS1}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!h.workspaces_dir().join(WS1).exists());
    // Cancelled, not failed: neither outcome is reported.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(h.cp.calls_for(WS1, "ready").is_empty());
    assert!(h.cp.calls_for(WS1, "provisioning-failed").is_empty());
    // No git process of that workspace is left behind.
    // (Other tests use the same workspace id: their sockets differ.)
    let leftovers = ours(scan_processes(&root));
    assert_eq!(leftovers, Vec::<String>::new());
}

#[tokio::test]
async fn workspaces_survive_an_agent_restart() {
    let mut h = Harness::start().await;
    h.git.create_repo("app.git", &["feature"]);
    h.create_ready(WS1, "app.git", "feature", None).await;
    h.create_ready(WS2, "app.git", "main", None).await;
    let (status, _) = h.post(&format!("/workspaces/{WS2}/stop")).await;
    assert_eq!(status, StatusCode::OK);
    let (_, before) = h.get("/workspaces").await;

    h.restart_agent().await;

    let (status, after) = h.get("/workspaces").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(after, before);
    let list = after["workspaces"].as_array().unwrap();
    assert_eq!(list[0]["id"], WS1);
    assert_eq!(list[0]["status"], "running");
    assert_eq!(list[1]["status"], "stopped");

    // The restarted agent operates them, and still gives git credentials
    // (a `git fetch` in the checkout goes through the new socket).
    let (status, body) = h.post(&format!("/workspaces/{WS2}/restart")).await;
    assert_eq!(
        (status, &body["workspace"]["status"]),
        (StatusCode::OK, &json!("running"))
    );
    let before_calls = h.cp.calls_for(WS1, "git-token").len();
    // Not blocking: the agent runs on this test's thread.
    let fetch = tokio::process::Command::new("git")
        .args(["fetch", "origin"])
        .current_dir(h.repo_dir(WS1))
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .await
        .unwrap();
    assert!(
        fetch.status.success(),
        "{}",
        String::from_utf8_lossy(&fetch.stderr)
    );
    assert!(h.cp.calls_for(WS1, "git-token").len() > before_calls);

    let (status, _) = h.delete(&format!("/workspaces/{WS1}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    h.restart_agent().await;
    let (_, body) = h.get("/workspaces").await;
    assert_eq!(body["workspaces"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_credential_helper_answers_git_only_for_the_repository_host() {
    let h = Harness::start().await;
    h.git.create_repo("app.git", &[]);
    h.create_ready(WS1, "app.git", "main", None).await;
    let repo = h.repo_dir(WS1);

    let fill = |input: String| {
        let repo = repo.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut child = std::process::Command::new("git")
                    .args(["credential", "fill"])
                    .current_dir(&repo)
                    .env("GIT_TERMINAL_PROMPT", "0")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(input.as_bytes())
                    .unwrap();
                child.wait_with_output().unwrap()
            })
            .await
            .unwrap()
        }
    };

    // The repository's host: the control plane's token.
    let ours = fill(format!(
        "protocol=http\nhost=127.0.0.1:{}\n\n",
        h.git.addr.port()
    ))
    .await;
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let out = String::from_utf8_lossy(&ours.stdout);
    assert!(out.contains("username=x-access-token\n"), "{out}");
    assert!(out.contains(&format!("password={}\n", h.token)), "{out}");

    // Another host (a submodule, a redirect): nothing, and git gives up.
    let calls = h.cp.calls_for(WS1, "git-token").len();
    for input in [
        "protocol=https\nhost=evil.example\n\n".to_owned(),
        format!("protocol=https\nhost=127.0.0.1:{}\n\n", h.git.addr.port()),
        "protocol=http\nhost=127.0.0.1\n\n".to_owned(),
    ] {
        let other = fill(input.clone()).await;
        assert!(!other.status.success(), "{input}");
        assert!(
            !String::from_utf8_lossy(&other.stdout).contains("password="),
            "{input}"
        );
        assert!(
            String::from_utf8_lossy(&other.stderr).contains("host_mismatch"),
            "{input}"
        );
    }
    assert_eq!(
        h.cp.calls_for(WS1, "git-token").len(),
        calls,
        "no token fetched for them"
    );
}

/// Sends a request with a raw path (no client-side normalisation).
async fn raw_request(addr: SocketAddr, method: &str, path: &str, token: &str) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: agent\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn malformed_ids_and_traversal_are_not_found_and_touch_nothing() {
    let h = Harness::start().await;
    h.git.create_repo("app.git", &[]);
    h.create_ready(WS1, "app.git", "main", None).await;
    // Something worth protecting next to the workspaces.
    let canary = h.root.path().join("var/lib/sam/canary");
    std::fs::write(&canary, "keep").unwrap();
    let before = snapshot(h.root.path());
    let token = h.cp.token();

    let ids = [
        "..",
        "%2e%2e",
        "%2E%2E",
        ".%2e",
        "..%2f..%2fcanary",
        "%2e%2e%2f%2e%2e%2fcanary",
        "01JAB3C4D5E6F7G8H9J0K1M2N3%2f..",
        "01JAB3C4D5E6F7G8H9J0K1M2N3%00",
        "not-a-ulid",
        "01JAB3C4D5E6F7G8H9J0K1M2NU",
        "01JAB3C4D5E6F7G8H9J0K1M2N9", // valid, unknown
        "%ff%fe",
        "canary",
    ];
    for id in ids {
        for (method, suffix) in [
            ("GET", ""),
            ("DELETE", ""),
            ("POST", "/stop"),
            ("POST", "/restart"),
            ("POST", "/rebuild"),
        ] {
            let path = format!("/workspaces/{id}{suffix}");
            let (status, body) = raw_request(h.agent, method, &path, &token).await;
            assert_eq!(status, 404, "{method} {path}: {body}");
            assert_eq!(body["code"], "not_found", "{method} {path}");
        }
    }
    for (method, path) in [
        ("DELETE", "/workspaces/../var/lib/sam/canary"),
        ("POST", "/workspaces/..%2f../stop"),
        ("POST", "/workspaces/%2e%2e/%2e%2e/stop"),
    ] {
        let (status, _) = raw_request(h.agent, method, path, &token).await;
        assert_eq!(status, 404, "{method} {path}");
    }

    assert_eq!(snapshot(h.root.path()), before, "nothing was touched");
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "keep");
    let (_, body) = h.get(&format!("/workspaces/{WS1}")).await;
    assert_eq!(body["workspace"]["status"], "running");
}

#[tokio::test]
async fn another_node_s_token_is_403_and_no_token_401() {
    let h = Harness::start().await;
    h.git.create_repo("app.git", &[]);
    h.create_ready(WS1, "app.git", "main", None).await;
    let before = snapshot(h.root.path());
    let foreign = h.cp.management_token(OTHER_NODE);
    let callback = h.cp.callback_token(WS1);
    let create = h.body(WS2, "app.git", "main", None);

    let attempts: [(reqwest::Method, String, Option<&Value>); 7] = [
        (
            reqwest::Method::POST,
            "/workspaces".to_owned(),
            Some(&create),
        ),
        (reqwest::Method::GET, "/workspaces".to_owned(), None),
        (reqwest::Method::GET, format!("/workspaces/{WS1}"), None),
        (
            reqwest::Method::POST,
            format!("/workspaces/{WS1}/stop"),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/workspaces/{WS1}/restart"),
            None,
        ),
        (
            reqwest::Method::POST,
            format!("/workspaces/{WS1}/rebuild"),
            None,
        ),
        (reqwest::Method::DELETE, format!("/workspaces/{WS1}"), None),
    ];
    for (method, path, body) in &attempts {
        let (status, reply) = h.request(method.clone(), path, Some(&foreign), *body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(reply["code"], "token_scope_mismatch");
        let (status, reply) = h.request(method.clone(), path, None, *body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(reply["code"], "token_missing");
        // The workspace's own callback token opens nothing here.
        let (status, _) = h
            .request(method.clone(), path, Some(&callback), *body)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    // Unknown and malformed ids with a foreign token: 403 first, too.
    for path in [
        "/workspaces/..",
        "/workspaces/%2e%2e",
        "/workspaces/01JAB3C4D5E6F7G8H9J0K1M2N9",
    ] {
        let (status, body) = raw_request(h.agent, "GET", path, &foreign).await;
        assert_eq!(status, 403, "{path}: {body}");
    }

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(snapshot(h.root.path()), before, "nothing was touched");
    assert!(h.cp.calls_for(WS2, "boot-log").is_empty());
    let (_, body) = h.get(&format!("/workspaces/{WS1}")).await;
    assert_eq!(body["workspace"]["status"], "running");
}

#[tokio::test]
async fn invalid_input_is_400_with_stable_codes() {
    let h = Harness::start().await;
    let good = h.body(WS1, "app.git", "main", None);
    let with = |pointer: &str, value: Value| {
        let mut body = good.clone();
        *body.pointer_mut(pointer).unwrap() = value;
        body
    };
    let cases = [
        (with("/id", json!("../../etc")), "invalid_workspace_id"),
        (
            with("/id", json!("01JAB3C4D5E6F7G8H9J0K1M2NU")),
            "invalid_workspace_id",
        ),
        (
            with("/repository/clone_url", json!("file:///etc")),
            "invalid_clone_url",
        ),
        (
            with("/repository/clone_url", json!("ext::sh -c id")),
            "invalid_clone_url",
        ),
        (
            with(
                "/repository/clone_url",
                json!("https://x-access-token:ghs_abc@github.com/a/b"),
            ),
            "invalid_clone_url",
        ),
        (with("/repository/branch", json!("../x")), "invalid_branch"),
        (
            with("/repository/branch", json!("--upload-pack=touch /tmp/x")),
            "invalid_branch",
        ),
        (with("/repository/branch", json!("a b")), "invalid_branch"),
        (with("/repository/branch", json!("")), "invalid_branch"),
        (
            {
                let mut body = good.clone();
                body["repository"]["base_branch"] = json!("x.lock");
                body
            },
            "invalid_branch",
        ),
        (
            with("/git_identity/name", json!("Ada\nLovelace")),
            "invalid_git_identity",
        ),
        (
            with("/git_identity/email", json!("ada@x\u{0}")),
            "invalid_git_identity",
        ),
        (
            with("/git_identity/email", json!("")),
            "invalid_git_identity",
        ),
        (
            with("/callback_token", json!("not-a-token")),
            "invalid_callback_token",
        ),
        (with("/runtime", json!("qemu")), "invalid_body"),
        (
            with("/repository", json!({ "branch": "main" })),
            "invalid_body",
        ),
        (json!({ "id": WS1 }), "invalid_body"),
        (
            {
                let mut body = good.clone();
                body["devcontainer_config"] = json!("python");
                body
            },
            "invalid_devcontainer_config",
        ),
        (
            {
                let mut body = good.clone();
                body["runtime"] = json!("devcontainer");
                body["devcontainer_config"] = json!("../../etc");
                body
            },
            "invalid_devcontainer_config",
        ),
    ];
    for (body, code) in &cases {
        let (status, reply) = h.create(body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {reply}");
        assert_eq!(reply["code"], *code, "{body}");
    }
    // Not JSON at all.
    let resp = h
        .http
        .post(format!("http://{}/workspaces", h.agent))
        .bearer_auth(h.cp.token())
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        !h.workspaces_dir().exists() || std::fs::read_dir(h.workspaces_dir()).unwrap().count() == 0
    );
    assert!(h.cp.calls().is_empty());

    // A directory the registry could not read is not replaced.
    std::fs::create_dir_all(h.workspaces_dir().join(WS2)).unwrap();
    let (status, reply) = h.create(&h.body(WS2, "app.git", "main", None)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(reply["code"], "workspace_exists");
}
