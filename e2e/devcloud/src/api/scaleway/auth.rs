//! `X-Auth-Token` authentication, checked before routing like the real API.
//! Project scoping (403) is the handlers' business: only they know which
//! project a request is about.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::super::AppState;
use super::error::ScwError;

pub(crate) async fn require_secret_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let accepted = state
        .config
        .scaleway
        .as_ref()
        .map(|c| c.secret_key.as_str());
    match (presented, accepted) {
        (Some(key), Some(secret)) if !key.is_empty() && key == secret => next.run(request).await,
        _ => ScwError::denied_authentication().into_response(),
    }
}

/// Answers 403 when a request names a project other than the key's one.
pub(crate) fn check_project(state: &AppState, project: Option<&str>) -> Result<String, ScwError> {
    let own = state
        .config
        .scaleway
        .as_ref()
        .map(|c| c.project_id.clone())
        .ok_or_else(ScwError::denied_authentication)?;
    match project {
        None => Ok(own),
        Some(p) if p.eq_ignore_ascii_case(&own) => Ok(own),
        Some(_) => Err(ScwError::permissions_denied()),
    }
}
