//! The session routes and the publish route (see the module documentation
//! of [`crate::acp`] for the contract). The token is checked first; an
//! unknown or malformed workspace or session id is a 404.
//!
//! `POST /workspaces/{wid}/git/publish` stages everything in the checkout,
//! commits if anything changed (the checkout's identity, or `author` for
//! this commit), and pushes `HEAD:refs/heads/<branch>` to origin through the
//! credential helper: 200 `{"branch", "commit_sha", "committed", "pushed":
//! true}`. 400 `invalid_branch`, `invalid_commit_message`,
//! `invalid_git_identity`; 409 `workspace_busy`; 502 `git_push_failed`,
//! `git_commit_failed`, `git_add_failed`, `git_no_commit` (git's message,
//! scrubbed of secrets).

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{CreateSession, PromptBody, SessionView, SessionsError};
use crate::server::{ApiError, AppState, authorize};
use crate::workspaces::{PublishRequest, Published};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/workspaces/{wid}/sessions", post(create).get(list))
        .route("/workspaces/{wid}/sessions/{sid}", get(show).delete(remove))
        .route("/workspaces/{wid}/sessions/{sid}/prompts", post(prompt))
        .route("/workspaces/{wid}/sessions/{sid}/cancel", post(cancel))
        .route(
            "/workspaces/{wid}/sessions/{sid}/permissions/{rid}",
            post(permission),
        )
        .route("/workspaces/{wid}/git/publish", post(publish))
}

impl From<SessionsError> for ApiError {
    fn from(err: SessionsError) -> Self {
        use super::session::SessionError;
        let status = match &err {
            SessionsError::NoWorkspace
            | SessionsError::NoSession
            | SessionsError::Session(SessionError::NoSuchPermission) => StatusCode::NOT_FOUND,
            SessionsError::Exists
            | SessionsError::WorkspaceNotRunning
            | SessionsError::RuntimeUnsupported
            | SessionsError::Session(SessionError::NotRunning(_)) => StatusCode::CONFLICT,
            SessionsError::Invalid { .. } | SessionsError::Session(SessionError::InvalidOption) => {
                StatusCode::BAD_REQUEST
            }
            SessionsError::Outbox(_) => {
                tracing::error!(error = %err, "session outbox failure");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError::new(status, err.code(), &err.to_string())
    }
}

#[derive(Serialize)]
struct One {
    session: SessionView,
}

#[derive(Serialize)]
struct Many {
    sessions: Vec<SessionView>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    option_id: String,
}

fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such workspace or session",
    )
}

fn invalid_body(rejection: &JsonRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_body",
        &rejection.body_text(),
    )
}

/// The normalised workspace id (checked after the token).
fn workspace(raw: &str) -> Result<String, ApiError> {
    crate::access::workspace_id(raw).ok_or_else(not_found)
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<CreateSession>, JsonRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers).await?;
    let Path(raw) = path.map_err(|_| not_found())?;
    let wid = workspace(&raw)?;
    let Json(request) = body.map_err(|r| invalid_body(&r))?;
    let session = state.sessions.create(&wid, request).await?;
    Ok((StatusCode::ACCEPTED, Json(One { session })).into_response())
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Many>, ApiError> {
    authorize(&state, &headers).await?;
    let Path(raw) = path.map_err(|_| not_found())?;
    let wid = workspace(&raw)?;
    state.workspaces.get(&wid).await.ok_or_else(not_found)?;
    Ok(Json(Many {
        sessions: state.sessions.list(&wid),
    }))
}

type Ids = Result<Path<(String, String)>, PathRejection>;

async fn ids(
    state: &AppState,
    headers: &HeaderMap,
    path: Ids,
) -> Result<(String, String), ApiError> {
    authorize(state, headers).await?;
    let Path((wid, sid)) = path.map_err(|_| not_found())?;
    Ok((workspace(&wid)?, sid))
}

async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Ids,
) -> Result<Json<One>, ApiError> {
    let (wid, sid) = ids(&state, &headers, path).await?;
    Ok(Json(One {
        session: state.sessions.view(&wid, &sid)?,
    }))
}

async fn prompt(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Ids,
    body: Result<Json<PromptBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let (wid, sid) = ids(&state, &headers, path).await?;
    let Json(body) = body.map_err(|r| invalid_body(&r))?;
    let session = state.sessions.prompt(&wid, &sid, body)?;
    Ok((StatusCode::ACCEPTED, Json(One { session })).into_response())
}

async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Ids,
) -> Result<Json<One>, ApiError> {
    let (wid, sid) = ids(&state, &headers, path).await?;
    Ok(Json(One {
        session: state.sessions.cancel(&wid, &sid).await?,
    }))
}

async fn permission(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, String, String)>, PathRejection>,
    body: Result<Json<Answer>, JsonRejection>,
) -> Result<Json<One>, ApiError> {
    authorize(&state, &headers).await?;
    let Path((wid, sid, rid)) = path.map_err(|_| not_found())?;
    let wid = workspace(&wid)?;
    let Json(answer) = body.map_err(|r| invalid_body(&r))?;
    Ok(Json(One {
        session: state
            .sessions
            .answer_permission(&wid, &sid, &rid, &answer.option_id)
            .await?,
    }))
}

async fn remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Ids,
) -> Result<Json<One>, ApiError> {
    let (wid, sid) = ids(&state, &headers, path).await?;
    Ok(Json(One {
        session: state.sessions.delete(&wid, &sid).await?,
    }))
}

async fn publish(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<PublishRequest>, JsonRejection>,
) -> Result<Json<Published>, ApiError> {
    authorize(&state, &headers).await?;
    let Path(raw) = path.map_err(|_| not_found())?;
    let wid = workspace(&raw)?;
    let Json(request) = body.map_err(|r| invalid_body(&r))?;
    Ok(Json(state.workspaces.publish(&wid, &request).await?))
}
