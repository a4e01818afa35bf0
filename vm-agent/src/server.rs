//! The agent's HTTP API, called by the control plane.
//!
//! `/health` is open so load balancers and humans can probe it;
//! `/system-info` needs a node-management token scoped to this node.
//! Every error is a JSON [`ErrorBody`], like the API's own.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sam_auth::Audience;
use sam_wire::{ErrorBody, SystemInfo};
use serde::Serialize;

use crate::AGENT_VERSION;
use crate::config::Config;
use crate::jwks::{KeyCache, VerifyError};
use crate::metrics::{PROC_DIR, collect_metrics};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub keys: Arc<KeyCache>,
    /// Where `/proc` is read from; tests may point it elsewhere.
    pub proc_dir: PathBuf,
}

impl AppState {
    pub fn new(config: Arc<Config>, keys: Arc<KeyCache>) -> Self {
        Self {
            config,
            keys,
            proc_dir: PathBuf::from(PROC_DIR),
        }
    }
}

/// The router, not bound to any socket.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/system-info", get(system_info))
        .fallback(not_found)
        .with_state(state)
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    node_id: String,
    version: &'static str,
}

async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        node_id: state.config.node_id.clone(),
        version: AGENT_VERSION,
    })
}

async fn system_info(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<SystemInfo>, ApiError> {
    authorize(&state, &headers).await?;
    Ok(Json(SystemInfo {
        node_id: state.config.node_id.clone(),
        agent_version: AGENT_VERSION.to_owned(),
        hostname: hostname(&state.proc_dir),
        metrics: collect_metrics(&state.proc_dir, &state.config.disk_path()),
    }))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// Checks the bearer token: node-management audience, scoped to this node.
async fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "token_missing",
                "an Authorization: Bearer token is required",
            )
        })?;
    let claims = state
        .keys
        .verify(token, Audience::NodeManagement, now_ms())
        .await
        .map_err(|err| match err {
            VerifyError::Token(err) => {
                tracing::info!(code = err.code(), "refused a management token");
                ApiError::new(StatusCode::UNAUTHORIZED, err.code(), &err.to_string())
            }
            VerifyError::KeysUnavailable => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "jwks_unavailable",
                &err.to_string(),
            ),
        })?;
    if claims.node != state.config.node_id {
        tracing::info!(token_node = %claims.node, "refused a token scoped to another node");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "token_scope_mismatch",
            "token is scoped to a different node",
        ));
    }
    Ok(())
}

fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// The kernel's host name (not re-rooted: it is not a file the agent owns).
fn hostname(proc_dir: &Path) -> String {
    std::fs::read_to_string(proc_dir.join("sys/kernel/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// An error response: status plus the API-wide JSON body.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: &str) -> Self {
        Self {
            status,
            body: ErrorBody {
                code: code.to_owned(),
                message: message.to_owned(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
