//! `avatar_url` targets: a generated SVG per account, so pages showing
//! avatars render something instead of a broken image.

use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use crate::api::ApiError;
use crate::html::escape;
use crate::server::AppState;

const COLORS: [&str; 6] = [
    "#0969da", "#1f883d", "#8250df", "#bf3989", "#bc4c00", "#1b7c83",
];

pub(crate) async fn avatar(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let id: u64 = match id.parse() {
        Ok(id) => id,
        Err(_) => return ApiError::not_found().into_response(),
    };
    let login = state
        .store
        .read(|w| w.accounts.get(&id).map(|a| a.login.clone()))
        .unwrap_or_else(|| "devgithub".into());
    let initial = login
        .chars()
        .next()
        .map_or_else(String::new, |c| c.to_uppercase().collect());
    let color = COLORS[usize::try_from(id % 6).unwrap_or(0)];
    let svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="120" height="120" viewBox="0 0 120 120"><rect width="120" height="120" fill="{color}"/><text x="60" y="78" font-family="sans-serif" font-size="56" fill="#fff" text-anchor="middle">{}</text></svg>"##,
        escape(&initial)
    );
    (
        [
            (CONTENT_TYPE, "image/svg+xml"),
            (CACHE_CONTROL, "max-age=300"),
        ],
        svg,
    )
        .into_response()
}
