//! The one router: the web host (`/login/oauth/…`, `/apps/…`, pull request
//! pages at `/{owner}/{repo}/pull/{number}`), the REST
//! host (`/user`, `/app`, `/installation`, `/repos/…`) and devgithub's own
//! admin paths (`/_devgithub/…`) share a port, since their paths do not
//! collide. Also the shared request state and the base-URL extractor.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::header::HOST;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jsonwebtoken::DecodingKey;

use crate::api::ApiError;
use crate::config::Config;
use crate::git::GitRepos;
use crate::hooks::Webhooks;
use crate::state::Store;
use crate::{admin, api, avatars, git, install, oauth, pull_page};

#[derive(Clone)]
pub(crate) struct AppState {
    pub store: Arc<Store>,
    pub config: Arc<Config>,
    /// Verifies the app's RS256 JWTs.
    pub app_key: Arc<DecodingKey>,
    pub hooks: Webhooks,
    /// The bare repositories behind git's smart HTTP.
    pub git: Arc<GitRepos>,
}

/// The base URL this request reached the server at, without a trailing
/// slash: `--public-url` when configured, else `http://{Host}`.
#[derive(Debug, Clone)]
pub(crate) struct Base(pub String);

impl FromRequestParts<AppState> for Base {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        if let Some(url) = &state.config.public_url {
            return Ok(Base(url.trim_end_matches('/').to_owned()));
        }
        let host = parts
            .headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| {
                parts
                    .uri
                    .authority()
                    .map(axum::http::uri::Authority::as_str)
            })
            .unwrap_or("127.0.0.1");
        Ok(Base(format!("http://{host}")))
    }
}

/// Unknown paths: git's smart HTTP paths (`/{owner}/{repo}.git/…`) go to
/// `git`, everything else gets GitHub's JSON 404. Routing git here rather
/// than by route patterns keeps `/{owner}/…` from shadowing anything.
async fn fallback(State(state): State<AppState>, Base(base): Base, request: Request) -> Response {
    if git::is_git_path(request.uri().path()) {
        return git::serve(state, base, request).await;
    }
    ApiError::not_found().into_response()
}

async fn wrong_method() -> Response {
    // GitHub answers 404, not 405, for a method a route does not take.
    ApiError::new(StatusCode::NOT_FOUND, "Not Found").into_response()
}

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/login/oauth/authorize",
            get(oauth::authorize_page).post(oauth::authorize_submit),
        )
        .route("/login/oauth/access_token", post(oauth::access_token))
        .route(
            "/apps/{slug}/installations/new",
            get(install::show).post(install::submit),
        )
        .route("/avatars/u/{id}", get(avatars::avatar))
        .route("/{owner}/{repo}/pull/{number}", get(pull_page::show))
        .merge(api::routes())
        .merge(admin::routes())
        .fallback(fallback)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state)
}
