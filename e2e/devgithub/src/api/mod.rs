//! The REST host: GitHub's v3 API paths for users, the app, installations
//! and repositories, with GitHub's auth rules and error bodies.

mod app;
mod auth;
mod body;
mod error;
mod installation;
mod jwt;
mod pagination;
mod pulls;
mod repos;
mod user;

use axum::Router;
use axum::routing::{get, put};

pub(crate) use auth::UserAuth;
pub(crate) use body::JsonBody;
pub(crate) use error::ApiError;
pub(crate) use pagination::Page;

use crate::server::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/user", get(user::get_user))
        .route("/user/emails", get(user::emails))
        .route("/user/installations", get(user::installations))
        .route(
            "/user/installations/{id}/repositories",
            get(user::installation_repositories),
        )
        .route(
            "/user/installations/{id}/repositories/{repository_id}",
            put(user::add_repository).delete(user::remove_repository),
        )
        .route("/app", get(app::get_app))
        .route("/app/installations", get(app::list_installations))
        .route(
            "/app/installations/{id}",
            get(app::get_installation).delete(app::delete_installation),
        )
        .route(
            "/app/installations/{id}/access_tokens",
            axum::routing::post(app::create_access_token),
        )
        .route(
            "/repos/{owner}/{repo}/installation",
            get(app::repo_installation),
        )
        .route(
            "/users/{login}/installation",
            get(app::account_installation),
        )
        .route("/orgs/{login}/installation", get(app::account_installation))
        .route(
            "/installation/repositories",
            get(installation::repositories),
        )
        .route(
            "/installation/token",
            axum::routing::delete(installation::revoke),
        )
        .route("/repos/{owner}/{repo}", get(repos::get_by_name))
        .route(
            "/repos/{owner}/{repo}/branches",
            get(repos::branches_by_name),
        )
        .route(
            "/repos/{owner}/{repo}/branches/{*branch}",
            get(repos::branch_by_name),
        )
        .route("/repositories/{id}", get(repos::get_by_id))
        .route("/repositories/{id}/branches", get(repos::branches_by_id))
        .route(
            "/repositories/{id}/branches/{*branch}",
            get(repos::branch_by_id),
        )
        .merge(pulls::routes())
}
