//! Endpoints for an installation access token.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::auth::InstallationAuth;
use super::pagination::respond;
use super::{ApiError, Page};
use crate::render;
use crate::server::{AppState, Base};

pub(super) async fn repositories(
    State(state): State<AppState>,
    Base(base): Base,
    auth: InstallationAuth,
    page: Page,
) -> Result<Response, ApiError> {
    let (selection, paged) = state
        .store
        .read(|w| {
            let token = w.installation_tokens.get(&auth.token)?;
            let installation = w.installations.get(&auth.installation_id)?;
            let selection = if token.repository_ids.is_some() {
                "selected"
            } else {
                installation.repository_selection.as_str()
            };
            let repos: Vec<Value> = w
                .token_repo_ids(token)
                .into_iter()
                .filter_map(|id| w.repos.get(&id))
                .map(|r| render::repo(&base, w, r, None))
                .collect();
            Some((selection, page.apply(repos)))
        })
        .ok_or_else(ApiError::bad_credentials)?;
    let body = json!({
        "total_count": paged.total,
        "repository_selection": selection,
        "repositories": paged.items,
    });
    Ok(respond(body, paged.link))
}

/// `DELETE /installation/token`: revokes the token used to call it.
pub(super) async fn revoke(State(state): State<AppState>, auth: InstallationAuth) -> StatusCode {
    state
        .store
        .update(|w| w.installation_tokens.remove(&auth.token));
    StatusCode::NO_CONTENT
}
