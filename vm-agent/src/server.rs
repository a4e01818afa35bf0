//! The agent's HTTP API, called by the control plane.
//!
//! `/health` is open so load balancers and humans can probe it. Everything
//! else needs a node-management token scoped to this node:
//!
//! - `GET /system-info`: the node's facts and current metrics;
//! - `GET /logs?since=<seq>&limit=<n>`: the agent's recent log lines
//!   (`{"lines": [...]}`, seq > `since`, default 0; at most `limit`, default
//!   200, capped at 2000), so the control plane can show why a node is
//!   unhappy without SSH;
//! - `GET /logs/stream?since=<seq>`: the same lines as Server-Sent Events,
//!   first the buffered ones after `since`, then live ones. Each is
//!   `id: <seq>`, `event: log`, `data: <line JSON>`; a follower that fell
//!   behind gets one `event: gap` with `{"missed": n}`. Comments keep the
//!   connection alive every 15 s; the stream ends when the client goes away
//!   or the agent shuts down.
//!
//! Every error is a JSON [`ErrorBody`], like the API's own; a malformed query
//! is a 400 `invalid_query`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::{Stream, StreamExt as _};
use sam_auth::Audience;
use sam_wire::{ErrorBody, SystemInfo};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::AGENT_VERSION;
use crate::config::Config;
use crate::jwks::{KeyCache, VerifyError};
use crate::logs::{Followed, LogBuffer, LogLine};
use crate::metrics::{PROC_DIR, collect_metrics};

/// `/logs` returns this many lines unless asked otherwise...
const DEFAULT_LOG_LIMIT: usize = 200;
/// ...and never more than the buffer holds.
const MAX_LOG_LIMIT: usize = LogBuffer::CAPACITY;
/// Often enough for proxies and load balancers not to time out an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub keys: Arc<KeyCache>,
    /// The agent's recent log lines, served by `/logs`.
    pub logs: LogBuffer,
    /// Where `/proc` is read from; tests may point it elsewhere.
    pub proc_dir: PathBuf,
    /// Turns `true` when the agent shuts down, to end `/logs/stream`
    /// responses (which would otherwise hold the graceful shutdown open). If
    /// its sender is gone, streams end only when their client leaves.
    pub shutdown: watch::Receiver<bool>,
    /// Browser sessions (`sam_ws` and `sam_port_<port>` cookies) and
    /// redeemed tickets (terminal and port-access).
    pub(crate) workspace_sessions: Arc<crate::access::WorkspaceSessions>,
    /// Every workspace's terminals.
    pub(crate) terminals: Arc<crate::terminals::Terminals>,
    /// The forwarder's recent port scans.
    pub(crate) recent_scans: Arc<crate::ports::RecentScans>,
    /// The node's workspaces (registry, runtimes, creation). `Agent`
    /// replaces this one with its own, which it loads at start.
    pub workspaces: crate::workspaces::Workspaces,
    /// The agent sessions (ACP), over `workspaces`. `Agent` replaces this
    /// one with its own, whose outbox it delivers.
    pub sessions: crate::acp::Sessions,
}

impl AppState {
    #[allow(clippy::needless_pass_by_value)] // public signature; cloned into parts
    pub fn new(config: Arc<Config>, keys: Arc<KeyCache>, logs: LogBuffer) -> Self {
        let workspaces = crate::workspaces::Workspaces::new(
            Arc::clone(&config),
            crate::workspaces::default_client(),
        );
        Self {
            sessions: crate::acp::Sessions::new(Arc::clone(&config), workspaces.clone()),
            workspaces,
            config: Arc::clone(&config),
            keys,
            logs,
            proc_dir: PathBuf::from(PROC_DIR),
            shutdown: watch::channel(false).1,
            workspace_sessions: Arc::default(),
            terminals: Arc::default(),
            recent_scans: Arc::default(),
        }
    }
}

/// The router, not bound to any socket.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/system-info", get(system_info))
        .route("/logs", get(logs))
        .route("/logs/stream", get(log_stream))
        .merge(crate::files::routes())
        .merge(crate::gitview::routes())
        .merge(crate::access::routes())
        .merge(crate::terminals::routes())
        .merge(crate::ports::routes())
        .merge(crate::workspaces::routes())
        .merge(crate::acp::routes::routes())
        .fallback(not_found)
        // Keep last: it must wrap every route (tickets in `?token=` under
        // `/workspaces/{id}` are exchanged for the cookie before any
        // handler runs).
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::access::exchange_ticket,
        ))
        // Outermost, so every answer under a workspace (the ticket
        // exchange's too) carries it, and preflights stop here.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::access::app_cors,
        ))
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

#[derive(Deserialize)]
struct LogsQuery {
    since: Option<u64>,
    limit: Option<usize>,
}

#[derive(Serialize)]
struct Lines {
    lines: Vec<LogLine>,
}

async fn logs(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<LogsQuery>, QueryRejection>,
) -> Result<Json<Lines>, ApiError> {
    // The token first: an anonymous caller learns nothing, not even that its
    // query was malformed.
    authorize(&state, &headers).await?;
    let Query(query) = query.map_err(|rejection| invalid_query(&rejection))?;
    let limit = query.limit.unwrap_or(DEFAULT_LOG_LIMIT).min(MAX_LOG_LIMIT);
    Ok(Json(Lines {
        lines: state.logs.lines_since(query.since.unwrap_or(0), limit),
    }))
}

#[derive(Deserialize)]
struct StreamQuery {
    since: Option<u64>,
}

async fn log_stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, axum::Error>>>, ApiError> {
    authorize(&state, &headers).await?;
    let Query(query) = query.map_err(|rejection| invalid_query(&rejection))?;
    let events = state
        .logs
        .follow(query.since.unwrap_or(0), shut_down(state.shutdown.clone()))
        .map(|followed| match followed {
            Followed::Line(line) => Event::default()
                .id(line.seq.to_string())
                .event("log")
                .json_data(&line),
            Followed::Missed(missed) => Event::default()
                .event("gap")
                .json_data(serde_json::json!({ "missed": missed })),
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// Resolves once `shutdown` turns `true`; never, if its sender is gone first.
async fn shut_down(mut shutdown: watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn invalid_query(rejection: &QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        &rejection.body_text(),
    )
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// Checks the bearer token: node-management audience, scoped to this node.
pub(crate) async fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
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
pub(crate) struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &str, message: &str) -> Self {
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
