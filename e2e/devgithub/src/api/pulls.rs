//! Seam for pull requests (`/repos/{owner}/{repo}/pulls…`), not emulated
//! yet. The routes exist so a caller gets a clear 501 naming the gap
//! instead of a 404 that looks like a missing repository. An implementation
//! would keep pull requests in `state::World` next to the branches they
//! join, and announce changes as `pull_request` webhooks via `crate::hooks`.

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use super::ApiError;
use crate::server::AppState;

async fn not_emulated() -> Response {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "devgithub does not emulate pull requests yet",
    )
    .into_response()
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/repos/{owner}/{repo}/pulls", any(not_emulated))
        .route("/repos/{owner}/{repo}/pulls/{*rest}", any(not_emulated))
}
