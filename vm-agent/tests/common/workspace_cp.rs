//! A fake control plane for the workspace tests: serves its key set, hands
//! out git tokens and records every workspace callback
//! (`/api/workspaces/{id}/{boot-log,ready,provisioning-failed,git-token}`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sam_auth::{Audience, Grant, JwkSet, SigningKey};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::{NODE_ID, now_ms};

/// One recorded workspace callback.
#[derive(Debug, Clone)]
pub struct WsCall {
    pub workspace: String,
    /// `boot-log`, `ready`, `provisioning-failed` or `git-token`.
    pub kind: String,
    pub authorization: Option<String>,
    pub body: Value,
}

pub struct WsCpState {
    jwks: JwkSet,
    pub calls: Mutex<Vec<WsCall>>,
    /// What `git-token` answers with; `None`: 403 `git_token_denied`.
    pub git_token: Mutex<Option<String>>,
}

pub struct WorkspaceCp {
    pub addr: SocketAddr,
    pub state: Arc<WsCpState>,
    key: SigningKey,
}

impl WorkspaceCp {
    pub async fn start(git_token: Option<&str>) -> Self {
        let key = SigningKey::from_seed([7; 32]);
        let state = Arc::new(WsCpState {
            jwks: JwkSet {
                keys: vec![key.public_jwk()],
            },
            calls: Mutex::new(Vec::new()),
            git_token: Mutex::new(git_token.map(str::to_owned)),
        });
        let app = Router::new()
            .route("/.well-known/jwks.json", get(jwks))
            .route("/api/workspaces/{id}/{kind}", post(callback))
            .with_state(Arc::clone(&state));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, state, key }
    }

    /// Named `api.localhost`, like the real local control plane.
    pub fn url(&self) -> String {
        format!("http://api.localhost:{}", self.addr.port())
    }

    fn issue(&self, grant: &Grant) -> String {
        self.key.issue(&self.url(), grant, now_ms())
    }

    /// A node-management token for `node`.
    pub fn management_token(&self, node: &str) -> String {
        self.issue(&Grant::node(Audience::NodeManagement, node, 3600))
    }

    /// This node's management token.
    pub fn token(&self) -> String {
        self.management_token(NODE_ID)
    }

    /// A workspace-callback token for `workspace` on this node.
    pub fn callback_token(&self, workspace: &str) -> String {
        self.issue(&Grant::workspace(
            Audience::WorkspaceCallback,
            NODE_ID,
            workspace,
            3600,
        ))
    }

    pub fn calls(&self) -> Vec<WsCall> {
        self.state.calls.lock().unwrap().clone()
    }

    pub fn calls_for(&self, workspace: &str, kind: &str) -> Vec<WsCall> {
        self.calls()
            .into_iter()
            .filter(|c| c.workspace == workspace && c.kind == kind)
            .collect()
    }

    /// `step:status` of each boot log entry of `workspace`, in order.
    pub fn boot_log(&self, workspace: &str) -> Vec<String> {
        self.calls_for(workspace, "boot-log")
            .iter()
            .map(|c| {
                format!(
                    "{}:{}",
                    c.body["step"].as_str().unwrap(),
                    c.body["status"].as_str().unwrap()
                )
            })
            .collect()
    }

    /// Waits for `ready` or `provisioning-failed` of `workspace`.
    pub async fn outcome(&self, workspace: &str) -> WsCall {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(call) = self.calls().into_iter().find(|c| {
                c.workspace == workspace && (c.kind == "ready" || c.kind == "provisioning-failed")
            }) {
                return call;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no outcome for {workspace}; calls: {:#?}",
                self.calls()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn jwks(State(state): State<Arc<WsCpState>>) -> Json<JwkSet> {
    Json(state.jwks.clone())
}

async fn callback(
    State(state): State<Arc<WsCpState>>,
    UrlPath((workspace, kind)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    state.calls.lock().unwrap().push(WsCall {
        workspace,
        kind: kind.clone(),
        authorization: headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap().to_owned()),
        body,
    });
    match kind.as_str() {
        "git-token" => match state.git_token.lock().unwrap().clone() {
            Some(token) => {
                Json(json!({ "token": token, "expires_at": now_ms() + 3_600_000 })).into_response()
            }
            None => (
                StatusCode::FORBIDDEN,
                Json(json!({ "code": "git_token_denied", "message": "no installation" })),
            )
                .into_response(),
        },
        "boot-log" | "ready" | "provisioning-failed" => StatusCode::NO_CONTENT.into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
