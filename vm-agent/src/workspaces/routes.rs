//! The workspace management routes, for the control plane (node-management
//! bearer scoped to this node):
//!
//! - `POST /workspaces` → 202 `{workspace}` (`creating`; the rest happens in
//!   the background and is reported through callbacks); 409
//!   `workspace_exists`; 400 with a stable code for invalid input
//!   (`invalid_body`, `invalid_workspace_id`, `invalid_clone_url`,
//!   `invalid_branch`, `invalid_git_identity`, `invalid_devcontainer_config`,
//!   `invalid_callback_token`).
//! - `GET /workspaces` → `{workspaces: [...]}`; `GET /workspaces/{id}` →
//!   `{workspace}`.
//! - `POST /workspaces/{id}/stop|restart|rebuild` → 200 `{workspace}` once
//!   done; 409 `workspace_busy` while it is being created or deleted; a
//!   runtime failure is a 500 with the runtime's code (and the workspace is
//!   `error`).
//! - `DELETE /workspaces/{id}` → 204 once its processes are stopped and its
//!   directory is gone.
//!
//! The registry knows nothing of the agent's other parts; these routes end
//! what hangs on a workspace's processes and existence:
//!
//! - stop, restart and rebuild end the workspace's terminals (their sockets
//!   close with 1000 `terminal closed`): before the operation, so the shells
//!   hang up instead of waiting out the runtime's SIGTERM, and again after
//!   it, for terminals that started meanwhile (once the workspace is no
//!   longer running, the terminal route refuses new ones and drops one that
//!   raced past its check). Whatever the outcome: a failed operation leaves
//!   the workspace `error`, with processes stopped or not. They end its
//!   port sessions (`sam_port_<port>` cookies) at the same two moments:
//!   the apps behind them are gone, and whatever listens on the port next
//!   needs a new ticket.
//! - delete also revokes the workspace's cookie sessions (`sam_ws` and
//!   port sessions), before and after, so a cookie never opens a workspace
//!   that is going or gone.
//!
//! The token is checked first; then an unknown or malformed id (`..`,
//! `%2e%2e`, anything that is not a ULID) is a 404 before anything else
//! happens.

use std::future::Future;

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use super::model::{CreateWorkspace, WorkspaceView};
use super::registry::WorkspaceError;
use crate::server::{ApiError, AppState, authorize};

/// The routes, to be merged into the agent's router.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/workspaces", post(create).get(list))
        .route("/workspaces/{id}", get(show).delete(remove))
        .route("/workspaces/{id}/stop", post(stop))
        .route("/workspaces/{id}/restart", post(restart))
        .route("/workspaces/{id}/rebuild", post(rebuild))
}

#[derive(Serialize)]
struct One {
    workspace: WorkspaceView,
}

#[derive(Serialize)]
struct Many {
    workspaces: Vec<WorkspaceView>,
}

impl From<WorkspaceError> for ApiError {
    fn from(err: WorkspaceError) -> Self {
        let status = match &err {
            WorkspaceError::NotFound => StatusCode::NOT_FOUND,
            WorkspaceError::Exists | WorkspaceError::Busy(_) | WorkspaceError::NotRunning => {
                StatusCode::CONFLICT
            }
            WorkspaceError::Invalid { .. } => StatusCode::BAD_REQUEST,
            WorkspaceError::Runtime(super::RuntimeError::NotStarted) => StatusCode::CONFLICT,
            // A git command that failed on the remote's side (or ours).
            WorkspaceError::Git { .. } => StatusCode::BAD_GATEWAY,
            WorkspaceError::Runtime(_) | WorkspaceError::Storage { .. } => {
                tracing::error!(error = %err, "workspace operation failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError::new(status, err.code(), &err.to_string())
    }
}

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such workspace")
}

/// The path's id, after the token: a malformed one (or one that does not
/// even decode) is simply not found.
async fn authorized_id(
    state: &AppState,
    headers: &HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<String, ApiError> {
    authorize(state, headers).await?;
    let Path(raw) = path.map_err(|_| not_found())?;
    crate::access::workspace_id(&raw).ok_or_else(not_found)
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<CreateWorkspace>, JsonRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers).await?;
    let Json(request) = body.map_err(|rejection| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            &rejection.body_text(),
        )
    })?;
    let workspace = state.workspaces.create(request).await?;
    Ok((StatusCode::ACCEPTED, Json(One { workspace })).into_response())
}

async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Many>, ApiError> {
    authorize(&state, &headers).await?;
    Ok(Json(Many {
        workspaces: state.workspaces.list().await,
    }))
}

async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<One>, ApiError> {
    let id = authorized_id(&state, &headers, path).await?;
    Ok(Json(One {
        workspace: state.workspaces.view(&id).await?,
    }))
}

async fn stop(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<One>, ApiError> {
    let id = authorized_id(&state, &headers, path).await?;
    let workspace = ending_terminals(&state, &id, state.workspaces.stop(&id)).await?;
    Ok(Json(One { workspace }))
}

async fn restart(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<One>, ApiError> {
    let id = authorized_id(&state, &headers, path).await?;
    let workspace = ending_terminals(&state, &id, state.workspaces.restart(&id)).await?;
    Ok(Json(One { workspace }))
}

async fn rebuild(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<One>, ApiError> {
    let id = authorized_id(&state, &headers, path).await?;
    let workspace = ending_terminals(&state, &id, state.workspaces.rebuild(&id)).await?;
    Ok(Json(One { workspace }))
}

async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = authorized_id(&state, &headers, path).await?;
    state.workspace_sessions.revoke_workspace(&id);
    let deleted = ending_terminals(&state, &id, state.workspaces.delete(&id)).await;
    // Tickets redeemed while the deletion ran.
    state.workspace_sessions.revoke_workspace(&id);
    deleted?;
    Ok(StatusCode::NO_CONTENT)
}

/// Runs `operation` (which stops the workspace's processes) between two
/// ends of its terminals and port sessions; see the module documentation.
async fn ending_terminals<T>(
    state: &AppState,
    id: &str,
    operation: impl Future<Output = Result<T, WorkspaceError>>,
) -> Result<T, WorkspaceError> {
    state.terminals.remove_workspace(id);
    state.workspace_sessions.revoke_ports(id);
    // Agent sessions run in the checkout: they end before its processes do.
    state.sessions.stop_workspace(id).await;
    let outcome = operation.await;
    state.terminals.remove_workspace(id);
    state.workspace_sessions.revoke_ports(id);
    outcome
}
