//! The ACP host end to end with REAL coding agents from npm: the agent runs
//! in process (its real router, `Agent::serve`, so the outbox delivery loop
//! runs too), a workspace is cloned from a local smart-HTTP git server, the
//! model API is the `llmstub` stand-in, and a small fake control plane
//! records the session messages the outbox delivers.
//!
//! Agents are installed (by the vm-agent's own installer) into a shared
//! cache: `$SAM_TEST_AGENTS_DIR`, else `$HOME/.cache/sam/agents`. The npm
//! registry must be reachable the first time; an install failure fails the
//! test with the installer's message (`agent_start_failed`).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::git_http::{GitHttp, git};
use common::provision::helper_binary;
use common::{NODE_ID, now_ms};
use sam_auth::{Audience, Grant, JwkSet, SigningKey};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;
use tokio::net::TcpListener;

const WS: &str = "01JAB3C4D5E6F7G8H9J0K1M2N3";
const API_KEY: &str = "sk-sam-test-0123456789abcdef";
const TURN_LIMIT: Duration = Duration::from_secs(240);

/// One delivered message.
#[derive(Debug, Clone)]
struct Delivered {
    seq: u64,
    kind: String,
    payload: Value,
}

#[derive(Default)]
struct CpState {
    jwks: Mutex<Option<JwkSet>>,
    git_token: Mutex<String>,
    /// Per session, the messages taken (no duplicates, no gaps).
    messages: Mutex<HashMap<String, Vec<Delivered>>>,
    /// `Authorization` of every message batch, with its workspace.
    batch_auth: Mutex<Vec<(String, Option<String>)>>,
}

/// A control plane: keys, workspace callbacks, node ready/heartbeat, and
/// the session messages endpoint, which acks what it holds.
struct Cp {
    addr: SocketAddr,
    state: Arc<CpState>,
    key: SigningKey,
}

impl Cp {
    async fn start() -> Self {
        let key = SigningKey::from_seed([9; 32]);
        let state = Arc::new(CpState::default());
        *state.jwks.lock().unwrap() = Some(JwkSet {
            keys: vec![key.public_jwk()],
        });
        let app = Router::new()
            .route("/.well-known/jwks.json", get(jwks))
            .route("/api/nodes/{id}/{kind}", post(node_call))
            .route("/api/workspaces/{id}/{kind}", post(workspace_call))
            .route(
                "/api/workspaces/{wid}/sessions/{sid}/messages",
                post(messages),
            )
            .with_state(Arc::clone(&state));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, state, key }
    }

    fn url(&self) -> String {
        format!("http://api.localhost:{}", self.addr.port())
    }

    fn management_token(&self) -> String {
        self.key.issue(
            &self.url(),
            &Grant::node(Audience::NodeManagement, NODE_ID, 3600),
            now_ms(),
        )
    }

    fn callback_token(&self, workspace: &str) -> String {
        self.key.issue(
            &self.url(),
            &Grant::workspace(Audience::WorkspaceCallback, NODE_ID, workspace, 3600),
            now_ms(),
        )
    }

    fn messages(&self, session: &str) -> Vec<Delivered> {
        self.state
            .messages
            .lock()
            .unwrap()
            .get(session)
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `cond` holds for the session's messages.
    async fn wait_for(
        &self,
        session: &str,
        what: &str,
        cond: impl Fn(&[Delivered]) -> bool,
    ) -> Vec<Delivered> {
        let deadline = Instant::now() + TURN_LIMIT;
        loop {
            let got = self.messages(session);
            if cond(&got) {
                return got;
            }
            if let Some(failed) = got.iter().find(|m| m.kind == "agent_start_failed") {
                panic!("the agent did not start: {}", failed.payload);
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; messages so far:\n{}",
                summary(&got)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn summary(messages: &[Delivered]) -> String {
    messages
        .iter()
        .map(|m| {
            let detail = match m.kind.as_str() {
                "update" => m.payload["update"]["sessionUpdate"].to_string(),
                _ => m.payload.to_string(),
            };
            format!("{} {} {}", m.seq, m.kind, detail)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn jwks(State(state): State<Arc<CpState>>) -> Response {
    match state.jwks.lock().unwrap().clone() {
        Some(set) => Json(set).into_response(),
        None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

async fn node_call(UrlPath((_id, kind)): UrlPath<(String, String)>) -> Response {
    match kind.as_str() {
        "ready" => Json(json!({})).into_response(),
        _ => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn workspace_call(
    State(state): State<Arc<CpState>>,
    UrlPath((_id, kind)): UrlPath<(String, String)>,
) -> Response {
    match kind.as_str() {
        "git-token" => Json(json!({
            "token": state.git_token.lock().unwrap().clone(),
            "expires_at": now_ms() + 3_600_000,
        }))
        .into_response(),
        _ => StatusCode::NO_CONTENT.into_response(),
    }
}

/// Takes the messages right after what it holds, drops redeliveries, stops
/// at a gap; answers the highest seq it holds.
async fn messages(
    State(state): State<Arc<CpState>>,
    UrlPath((wid, sid)): UrlPath<(String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    state.batch_auth.lock().unwrap().push((
        wid,
        headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap().to_owned()),
    ));
    let mut all = state.messages.lock().unwrap();
    let held = all.entry(sid).or_default();
    for message in body["messages"].as_array().unwrap() {
        let seq = message["seq"].as_u64().unwrap();
        let next = held.last().map_or(1, |m| m.seq + 1);
        if seq < next {
            continue;
        }
        if seq > next {
            break;
        }
        held.push(Delivered {
            seq,
            kind: message["kind"].as_str().unwrap().to_owned(),
            payload: message["payload"].clone(),
        });
    }
    Json(json!({ "acked_up_to": held.last().map_or(0, |m| m.seq) })).into_response()
}

/// The shared agent cache.
fn agents_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SAM_TEST_AGENTS_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").expect("HOME must be set to find the agent cache");
    PathBuf::from(home).join(".cache/sam/agents")
}

/// The llmstub binary, built if needed.
fn llmstub_binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let bin = target.join("debug/llmstub");
    if !bin.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "sam-llmstub"])
            .current_dir(root)
            .status()
            .unwrap();
        assert!(status.success(), "cannot build llmstub");
    }
    bin
}

/// The model API stand-in, answering from `script`.
struct Llm {
    url: String,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Llm {
    async fn start(script: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../e2e/llmstub/scripts")
            .join(script);
        let mut child = tokio::process::Command::new(llmstub_binary())
            .args(["--listen", "127.0.0.1:0", "--state-dir"])
            .arg(dir.path())
            .arg("--script")
            .arg(script)
            .args(["--require-key", API_KEY])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("llmstub did not announce its port")
            .unwrap()
            .unwrap();
        let url = line
            .strip_prefix("llmstub listening on ")
            .unwrap_or_else(|| panic!("unexpected llmstub output: {line}"))
            .trim()
            .to_owned();
        Self {
            url,
            _child: child,
            _dir: dir,
        }
    }
}

struct Harness {
    cp: Cp,
    git: GitHttp,
    root: tempfile::TempDir,
    agent: SocketAddr,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Harness {
    async fn start() -> Self {
        let cp = Cp::start().await;
        let password = format!("ghs_acp{:x}{:x}", now_ms(), std::process::id());
        cp.state.git_token.lock().unwrap().clone_from(&password);
        let git = GitHttp::start(&password).await;
        git.create_repo("app.git", &[]);
        let root = tempfile::tempdir().unwrap();
        let vars = [
            ("SAM_NODE_ID", NODE_ID.to_owned()),
            ("SAM_CONTROL_PLANE_URL", cp.url()),
            ("SAM_FS_ROOT", root.path().display().to_string()),
            ("SAM_BIND_HOST", "127.0.0.1".to_owned()),
            ("SAM_VM_AGENT_PORT", "1".to_owned()),
            ("SAM_AGENTS_DIR", agents_dir().display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut config = sam_vm_agent::Config::from_env_map(&vars).unwrap();
        config.backoff = sam_vm_agent::Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
        };
        common::write_token(root.path(), "node-callback-token");
        let agent = sam_vm_agent::Agent::new(config).unwrap();
        agent
            .workspaces()
            .set_credential_helper(helper_binary(root.path()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = agent
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            cp,
            git,
            root,
            agent: addr,
            http: reqwest::Client::new(),
            _stop: stop,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("http://{}{path}", self.agent))
            .bearer_auth(self.cp.management_token());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn workspace(&self) {
        let (status, body) = self
            .post(
                "/workspaces",
                json!({
                    "id": WS,
                    "repository": { "clone_url": self.git.url("app.git"), "branch": "main" },
                    "git_identity": { "name": "Ada Lovelace", "email": "ada@example.com" },
                    "runtime": "host",
                    "callback_token": self.cp.callback_token(WS),
                }),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, body) = self
                .call(reqwest::Method::GET, &format!("/workspaces/{WS}"), None)
                .await;
            match body["workspace"]["status"].as_str() {
                Some("running") => return,
                Some("creating") if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                _ => panic!("the workspace did not come up: {body}"),
            }
        }
    }

    fn checkout(&self) -> PathBuf {
        self.root
            .path()
            .join("var/lib/sam/workspaces")
            .join(WS)
            .join("repo")
    }
}

fn kinds(messages: &[Delivered]) -> Vec<String> {
    messages.iter().map(|m| m.kind.clone()).collect()
}

fn turn_end<'a>(messages: &'a [Delivered], prompt: &str) -> Option<&'a Delivered> {
    messages.iter().find(|m| {
        (m.kind == "turn_ended" || m.kind == "turn_failed") && m.payload["prompt_id"] == prompt
    })
}

fn position(messages: &[Delivered], kind: &str, prompt: &str) -> usize {
    messages
        .iter()
        .position(|m| m.kind == kind && m.payload["prompt_id"] == prompt)
        .unwrap_or_else(|| panic!("no {kind} for {prompt}:\n{}", summary(messages)))
}

/// Answers every permission request the user is asked (policy `ask`) with
/// an allow option, until `prompt`'s turn ends.
async fn answer_until_turn_ends(h: &Harness, session: &str, prompt: &str) -> Vec<Delivered> {
    let mut answered = std::collections::HashSet::new();
    let deadline = Instant::now() + TURN_LIMIT;
    loop {
        let got = h.cp.messages(session);
        if turn_end(&got, prompt).is_some() {
            return got;
        }
        if let Some(failed) = got.iter().find(|m| m.kind == "agent_start_failed") {
            panic!("the agent did not start: {}", failed.payload);
        }
        for request in got.iter().filter(|m| m.kind == "permission_requested") {
            let id = request.payload["request_id"].as_str().unwrap().to_owned();
            if !answered.insert(id.clone()) {
                continue;
            }
            let options = request.payload["options"].as_array().unwrap();
            let allow = options
                .iter()
                .find(|o| o["kind"] == "allow_once")
                .or_else(|| options.iter().find(|o| o["kind"] == "allow_always"))
                .unwrap();
            let (status, body) = h
                .post(
                    &format!("/workspaces/{WS}/sessions/{session}/permissions/{id}"),
                    json!({ "option_id": allow["optionId"] }),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        assert!(
            Instant::now() < deadline,
            "the turn of {prompt} did not end:\n{}",
            summary(&got)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn codex_edits_queues_cancels_and_publishes() {
    let started = Instant::now();
    let h = Harness::start().await;
    let llm = Llm::start("acp-host.json").await;
    h.workspace().await;
    let session = "01JAB3C4D5E6F7G8H9J0K1M2S1";

    let (status, body) = h
        .post(
            &format!("/workspaces/{WS}/sessions"),
            json!({
                "session_id": session,
                "agent": "openai-codex",
                "api_key": API_KEY,
                "base_url": llm.url,
                "model": null,
                "permission_policy": "approve",
                "prompt": { "prompt_id": "p1", "text": "Please create hello.txt in the repository." },
                "acp_session_id": null,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["session"]["status"], "starting");
    // The same id again is refused.
    let (status, body) = h
        .post(
            &format!("/workspaces/{WS}/sessions"),
            json!({
                "session_id": session, "agent": "openai-codex", "api_key": API_KEY,
                "permission_policy": "approve",
            }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("session_exists"))
    );

    // Turn 1: the file is written.
    let got =
        h.cp.wait_for(session, "turn 1", |m| turn_end(m, "p1").is_some())
            .await;
    let first_turn = started.elapsed();
    assert_eq!(got[0].kind, "session_started", "{}", summary(&got));
    assert_eq!(got[0].payload["agent"], "openai-codex");
    let pid = got[0].payload["agent_pid"].as_u64().unwrap();
    let p1_sent = position(&got, "prompt_sent", "p1");
    let p1_end = position(&got, "turn_ended", "p1");
    assert_eq!(
        got[p1_end].payload["stop_reason"],
        "end_turn",
        "{}",
        summary(&got)
    );
    assert!(
        got[p1_sent..p1_end]
            .iter()
            .any(|m| m.kind == "update" && m.payload["update"]["sessionUpdate"] == "tool_call"),
        "no tool_call update in turn 1:\n{}",
        summary(&got)
    );
    assert_eq!(
        std::fs::read_to_string(h.checkout().join("hello.txt")).unwrap(),
        "hello from the agent\n"
    );
    // Sequence numbers are 1, 2, 3, ... as delivered.
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.seq, i as u64 + 1);
    }
    // Every batch carried the workspace's callback token.
    let auth = h.cp.state.batch_auth.lock().unwrap().clone();
    assert!(
        auth.iter()
            .all(|(wid, a)| wid == WS && a.as_deref().is_some_and(|a| a.starts_with("Bearer ey")))
    );

    // Turn 2 runs a slow command; turn 3 is queued behind it (twice: the
    // repeat is a no-op); turn 2 is cancelled.
    let prompts = format!("/workspaces/{WS}/sessions/{session}/prompts");
    let (status, body) = h
        .post(
            &prompts,
            json!({"prompt_id": "p2", "text": "Take your time: run the slow command."}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    for _ in 0..2 {
        let (status, body) = h
            .post(
                &prompts,
                json!({"prompt_id": "p3", "text": "Now say hello."}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let got =
        h.cp.wait_for(session, "the slow command", |m| {
            m.iter()
                .position(|x| x.kind == "prompt_sent" && x.payload["prompt_id"] == "p2")
                .is_some_and(|at| {
                    m[at..].iter().any(|x| {
                        x.kind == "update" && x.payload["update"]["sessionUpdate"] == "tool_call"
                    })
                })
        })
        .await;
    assert!(turn_end(&got, "p2").is_none(), "{}", summary(&got));
    let (_, view) = h
        .call(
            reqwest::Method::GET,
            &format!("/workspaces/{WS}/sessions/{session}"),
            None,
        )
        .await;
    assert_eq!(view["session"]["status"], "busy", "{view}");
    assert_eq!(view["session"]["current_prompt_id"], "p2", "{view}");
    assert_eq!(
        view["session"]["queued_prompt_ids"],
        json!(["p3"]),
        "{view}"
    );
    let cancel_at = Instant::now();
    let (status, body) = h
        .post(
            &format!("/workspaces/{WS}/sessions/{session}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got =
        h.cp.wait_for(session, "turn 3", |m| turn_end(m, "p3").is_some())
            .await;
    let cancel_took = cancel_at.elapsed();
    let p2_end = position(&got, "turn_ended", "p2");
    assert_eq!(
        got[p2_end].payload["stop_reason"],
        "cancelled",
        "{}",
        summary(&got)
    );
    let p3_sent = position(&got, "prompt_sent", "p3");
    assert!(p3_sent > p2_end);
    assert_eq!(
        got[position(&got, "turn_ended", "p3")].payload["stop_reason"],
        "end_turn"
    );
    let k = kinds(&got);
    assert_eq!(k.iter().filter(|k| *k == "session_started").count(), 1);
    assert_eq!(
        k.iter().filter(|k| *k == "prompt_sent").count(),
        3,
        "{}",
        summary(&got)
    );
    assert!(!k.contains(&"agent_exited".to_owned()));
    let (_, view) = h
        .call(
            reqwest::Method::GET,
            &format!("/workspaces/{WS}/sessions/{session}"),
            None,
        )
        .await;
    assert_eq!(view["session"]["agent_pid"].as_u64(), Some(pid), "{view}");
    assert_eq!(view["session"]["status"], "idle", "{view}");

    // Publish: commit and push to the bare repository, twice.
    let publish =
        json!({"branch": "sam/acp-test", "commit_message": "Add hello.txt", "author": null});
    let (status, body) = h
        .post(&format!("/workspaces/{WS}/git/publish"), publish.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["committed"], true);
    assert_eq!(body["pushed"], true);
    let sha = body["commit_sha"].as_str().unwrap().to_owned();
    let bare = h.git.root().join("app.git");
    assert_eq!(git(&bare, &["rev-parse", "refs/heads/sam/acp-test"]), sha);
    assert_eq!(
        git(&bare, &["show", "sam/acp-test:hello.txt"]),
        "hello from the agent"
    );
    let (status, body) = h
        .post(&format!("/workspaces/{WS}/git/publish"), publish)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["committed"], false);
    assert_eq!(body["commit_sha"], sha.as_str());
    let (status, body) = h
        .post(
            &format!("/workspaces/{WS}/git/publish"),
            json!({"branch": "-bad", "commit_message": "x"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_branch"))
    );

    // Delete: the agent is stopped, agent_exited is the last message.
    let (status, body) = h
        .call(
            reqwest::Method::DELETE,
            &format!("/workspaces/{WS}/sessions/{session}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["session"]["status"], "exited");
    let got =
        h.cp.wait_for(session, "agent_exited", |m| {
            m.last().is_some_and(|m| m.kind == "agent_exited")
        })
        .await;
    assert_eq!(got.last().unwrap().payload["during_turn"], false);
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    assert!(
        rustix::process::test_kill_process(pid).is_err(),
        "the agent still runs"
    );
    let (status, _) = h
        .call(
            reqwest::Method::GET,
            &format!("/workspaces/{WS}/sessions/{session}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    eprintln!(
        "codex: first turn (incl. install if needed) {:.1}s, cancel→turn 3 end {:.1}s, whole test {:.1}s",
        first_turn.as_secs_f32(),
        cancel_took.as_secs_f32(),
        started.elapsed().as_secs_f32()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claude_creates_a_file_with_user_approved_permissions() {
    let started = Instant::now();
    let h = Harness::start().await;
    let llm = Llm::start("edit-file.json").await;
    h.workspace().await;
    let session = "01JAB3C4D5E6F7G8H9J0K1M2S2";
    let (status, body) = h
        .post(
            &format!("/workspaces/{WS}/sessions"),
            json!({
                "session_id": session,
                "agent": "claude-code",
                "api_key": API_KEY,
                "base_url": llm.url,
                "permission_policy": "ask",
                "prompt": { "prompt_id": "p1", "text": "Please create hello.txt in the repository." },
            }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let got = answer_until_turn_ends(&h, session, "p1").await;
    assert_eq!(got[0].kind, "session_started", "{}", summary(&got));
    let end = turn_end(&got, "p1").unwrap();
    assert_eq!(end.kind, "turn_ended", "{}", summary(&got));
    assert_eq!(end.payload["stop_reason"], "end_turn", "{}", summary(&got));
    assert!(
        got.iter()
            .any(|m| m.kind == "update" && m.payload["update"]["sessionUpdate"] == "tool_call"),
        "{}",
        summary(&got)
    );
    // Every permission asked was answered by the user.
    let asked = got
        .iter()
        .filter(|m| m.kind == "permission_requested")
        .count();
    let by_user = got
        .iter()
        .filter(|m| m.kind == "permission_answered" && m.payload["by"] == "user")
        .count();
    assert_eq!(asked, by_user, "{}", summary(&got));
    assert_eq!(
        std::fs::read_to_string(h.checkout().join("hello.txt")).unwrap(),
        "hello from the agent\n"
    );
    // The key is in no argv on the machine.
    assert!(
        common::git_http::scan_processes(API_KEY)
            .iter()
            .all(|place| !place.ends_with("cmdline"))
    );
    // Deleting the workspace stops the session.
    let (status, body) = h
        .call(reqwest::Method::DELETE, &format!("/workspaces/{WS}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    h.cp.wait_for(session, "agent_exited", |m| {
        m.last().is_some_and(|m| m.kind == "agent_exited")
    })
    .await;
    eprintln!(
        "claude: {asked} permission request(s) answered by the user; whole test {:.1}s",
        started.elapsed().as_secs_f32()
    );
}
