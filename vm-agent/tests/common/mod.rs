//! A fake control plane for the agent's integration tests: serves a JWKS
//! document that tests can rotate, records ready calls and heartbeats with
//! scripted replies, and answers workspace callbacks (git tokens, when
//! given one, for [`provision`]).

#![allow(dead_code)] // each test binary uses a different part

pub mod browser;
pub mod git_http;
pub mod provision;
pub mod workspace_cp;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sam_auth::{Audience, Grant, JwkSet, SigningKey};
use sam_vm_agent::Config;
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub const NODE_ID: &str = "01HZX3Y0000000000000000000";

/// One recorded call from the agent.
#[derive(Debug, Clone)]
pub struct Call {
    pub node_id: String,
    pub authorization: Option<String>,
    pub body: Value,
    pub at: Instant,
}

/// A scripted reply: status and JSON body (`None` for an empty body).
pub type Reply = (StatusCode, Option<Value>);

#[derive(Default)]
pub struct CpState {
    pub jwks: Mutex<Option<JwkSet>>,
    pub jwks_fetches: AtomicUsize,
    /// How long the key set takes to serve, to hold refreshes in flight.
    pub jwks_delay: Mutex<Duration>,
    /// Replies to ready calls, in order; when empty, 200 `{}`.
    pub ready_script: Mutex<VecDeque<Reply>>,
    /// Replies to heartbeats, in order; when empty, `heartbeat_default`.
    pub heartbeat_script: Mutex<VecDeque<Reply>>,
    pub heartbeat_default: Mutex<Option<Reply>>,
    pub ready_calls: Mutex<Vec<Call>>,
    pub heartbeats: Mutex<Vec<Call>>,
    /// What `POST /api/workspaces/{id}/git-token` answers with; `None`: 403.
    pub git_token: Mutex<Option<String>>,
}

/// The fake control plane, listening on 127.0.0.1.
pub struct FakeControlPlane {
    pub addr: SocketAddr,
    pub state: Arc<CpState>,
}

impl FakeControlPlane {
    pub async fn start() -> Self {
        let state = Arc::new(CpState::default());
        let app = Router::new()
            .route("/.well-known/jwks.json", get(jwks))
            .route("/api/nodes/{id}/ready", post(ready))
            .route("/api/nodes/{id}/heartbeat", post(heartbeat))
            .route("/api/workspaces/{id}/{kind}", post(workspace_callback))
            .with_state(Arc::clone(&state));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, state }
    }

    /// The URL the agent is told to use. It names `api.localhost` so every
    /// test also exercises the agent's own resolver.
    pub fn url(&self) -> String {
        format!("http://api.localhost:{}", self.addr.port())
    }

    pub fn serve_keys(&self, keys: &[&SigningKey]) {
        let set = JwkSet {
            keys: keys.iter().map(|k| k.public_jwk()).collect(),
        };
        *self.state.jwks.lock().unwrap() = Some(set);
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    pub fn script_ready(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.ready_script.lock().unwrap().extend(replies);
    }

    pub fn script_heartbeats(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.heartbeat_script.lock().unwrap().extend(replies);
    }

    pub fn ready_calls(&self) -> Vec<Call> {
        self.state.ready_calls.lock().unwrap().clone()
    }

    pub fn heartbeats(&self) -> Vec<Call> {
        self.state.heartbeats.lock().unwrap().clone()
    }

    /// A token for `node` and `audience` issued by this control plane.
    pub fn token(&self, key: &SigningKey, audience: Audience, node: &str) -> String {
        self.token_at(key, audience, node, now_ms())
    }

    pub fn token_at(&self, key: &SigningKey, audience: Audience, node: &str, at_ms: i64) -> String {
        key.issue(
            &self.url(),
            &Grant {
                audience,
                node_id: node.to_owned(),
                workspace_id: None,
                port: None,
                ttl_secs: 3600,
            },
            at_ms,
        )
    }
}

async fn jwks(State(state): State<Arc<CpState>>) -> Response {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let delay = *state.jwks_delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    match state.jwks.lock().unwrap().clone() {
        Some(set) => Json(set).into_response(),
        None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

fn record(list: &Mutex<Vec<Call>>, id: String, headers: &HeaderMap, body: Value) {
    list.lock().unwrap().push(Call {
        node_id: id,
        authorization: headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap().to_owned()),
        body,
        at: Instant::now(),
    });
}

fn reply((status, body): Reply) -> Response {
    match body {
        Some(body) => (status, Json(body)).into_response(),
        None => status.into_response(),
    }
}

async fn ready(
    State(state): State<Arc<CpState>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    record(&state.ready_calls, id, &headers, body);
    let next = state.ready_script.lock().unwrap().pop_front();
    reply(next.unwrap_or((StatusCode::OK, Some(json!({})))))
}

async fn heartbeat(
    State(state): State<Arc<CpState>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    record(&state.heartbeats, id, &headers, body);
    let next = state.heartbeat_script.lock().unwrap().pop_front();
    let default = state.heartbeat_default.lock().unwrap().clone();
    reply(next.or(default).unwrap_or((StatusCode::NO_CONTENT, None)))
}

/// Boot log, ready and provisioning-failed are taken; a git token is handed
/// out if there is one.
async fn workspace_callback(
    State(state): State<Arc<CpState>>,
    UrlPath((_id, kind)): UrlPath<(String, String)>,
) -> Response {
    match kind.as_str() {
        "git-token" => match state.git_token.lock().unwrap().clone() {
            Some(token) => {
                Json(json!({ "token": token, "expires_at": now_ms() + 3_600_000 })).into_response()
            }
            None => (
                StatusCode::FORBIDDEN,
                Json(json!({ "code": "git_token_denied", "message": "no token" })),
            )
                .into_response(),
        },
        "boot-log" | "ready" | "provisioning-failed" => StatusCode::NO_CONTENT.into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

pub fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

/// A config for an agent talking to `cp`, with its files under `root`.
pub fn config(cp: &FakeControlPlane, root: &Path) -> Config {
    let vars: HashMap<String, String> = [
        ("SAM_NODE_ID", NODE_ID.to_owned()),
        ("SAM_CONTROL_PLANE_URL", cp.url()),
        ("SAM_FS_ROOT", root.display().to_string()),
        ("SAM_BIND_HOST", "127.0.0.1".to_owned()),
        ("SAM_VM_AGENT_PORT", "1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Config::from_env_map(&vars).unwrap()
}

/// Writes the callback token where the default config expects it.
pub fn write_token(root: &Path, token: &str) {
    let path = root.join("etc/sam/callback-token");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("{token}\n")).unwrap();
}

/// Polls `cond` until it holds or `limit` passes.
pub async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}
