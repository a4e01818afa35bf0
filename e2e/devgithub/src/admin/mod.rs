//! devgithub's own admin API under `/_devgithub/`, for tests and scripts:
//! seed users, organizations, repositories and installations, make the
//! changes GitHub would announce (rename, delete, uninstall, change an
//! installation's repositories) and read back the webhook deliveries and
//! pull requests.
//! No authentication: devgithub only ever listens on loopback. Errors use
//! GitHub's REST error body.

mod accounts;
mod deliveries;
mod installations;
mod pulls;
mod repos;

use axum::Router;
use axum::routing::{delete, get, post};

use crate::api::ApiError;
use crate::server::AppState;
use crate::state::World;

/// Resolves an optional `sender` login to a user id.
fn sender_id(world: &World, login: Option<&str>) -> Result<Option<u64>, ApiError> {
    match login {
        None => Ok(None),
        Some(login) => world
            .user_by_login(login)
            .map(|u| Some(u.id))
            .ok_or_else(|| ApiError::unprocessable(format!("sender {login:?} is not a user"))),
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/_devgithub/users",
            get(accounts::list_users).post(accounts::create_user),
        )
        .route("/_devgithub/orgs", post(accounts::create_org))
        .route("/_devgithub/repos", post(repos::create))
        .route("/_devgithub/repos/{owner}/{repo}", delete(repos::delete))
        .route(
            "/_devgithub/repos/{owner}/{repo}/rename",
            post(repos::rename),
        )
        .route("/_devgithub/installations", post(installations::create))
        .route(
            "/_devgithub/installations/{id}",
            delete(installations::delete),
        )
        .route(
            "/_devgithub/installations/{id}/repositories",
            post(installations::change_repositories),
        )
        .route("/_devgithub/deliveries", get(deliveries::list))
        .route("/_devgithub/pulls", get(pulls::list))
}
