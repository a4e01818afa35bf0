//! Endpoints for an OAuth user token: the user, their emails, and the
//! installations and repositories they can reach.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::pagination::respond;
use super::{ApiError, Page, UserAuth};
use crate::changes;
use crate::render;
use crate::server::{AppState, Base};
use crate::state::{Repo, World};

/// `X-OAuth-Scopes`, as GitHub adds to responses for OAuth tokens.
fn with_scopes(mut response: Response, scopes: &[String]) -> Response {
    if let Ok(value) = HeaderValue::from_str(&scopes.join(", ")) {
        response.headers_mut().insert("x-oauth-scopes", value);
    }
    response
}

/// `permissions` on a repository, as seen by `user_id`.
pub(super) fn user_permissions(world: &World, user_id: u64, repo: &Repo) -> Value {
    let full = world.user_is_owner_side(user_id, repo);
    json!({
        "admin": full,
        "maintain": full,
        "push": full,
        "triage": full,
        "pull": true,
    })
}

pub(super) async fn get_user(
    State(state): State<AppState>,
    Base(base): Base,
    auth: UserAuth,
) -> Result<Response, ApiError> {
    let body = state
        .store
        .read(|w| {
            w.accounts
                .get(&auth.user_id)
                .map(|a| render::private_user(&base, w, a))
        })
        .ok_or_else(ApiError::bad_credentials)?;
    Ok(with_scopes(Json(body).into_response(), &auth.scopes))
}

/// Needs the `user` or `user:email` scope; without it GitHub answers 404.
pub(super) async fn emails(
    State(state): State<AppState>,
    auth: UserAuth,
) -> Result<Response, ApiError> {
    if !auth.scopes.iter().any(|s| s == "user" || s == "user:email") {
        return Err(ApiError::not_found()
            .docs("https://docs.github.com/rest/users/emails#list-email-addresses-for-the-authenticated-user"));
    }
    let body = state
        .store
        .read(|w| {
            let user = w.accounts.get(&auth.user_id)?;
            let noreply = format!("{}+{}@users.noreply.github.com", user.id, user.login);
            let mut list = Vec::new();
            if let Some(email) = &user.email {
                list.push(json!({
                    "email": email, "primary": true, "verified": true, "visibility": "public",
                }));
            }
            list.push(json!({
                "email": noreply,
                "primary": user.email.is_none(),
                "verified": true,
                "visibility": null,
            }));
            Some(Value::Array(list))
        })
        .ok_or_else(ApiError::bad_credentials)?;
    Ok(with_scopes(Json(body).into_response(), &auth.scopes))
}

pub(super) async fn installations(
    State(state): State<AppState>,
    Base(base): Base,
    auth: UserAuth,
    page: Page,
) -> Response {
    let paged = state.store.read(|w| {
        let all: Vec<Value> = w
            .installations
            .values()
            .filter(|i| w.user_sees_installation(auth.user_id, i))
            .map(|i| render::installation(&base, &state.config.app, w, i))
            .collect();
        page.apply(all)
    });
    let body = json!({ "total_count": paged.total, "installations": paged.items });
    with_scopes(respond(body, paged.link), &auth.scopes)
}

fn parse_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found())
}

pub(super) async fn installation_repositories(
    State(state): State<AppState>,
    Base(base): Base,
    auth: UserAuth,
    Path(id): Path<String>,
    page: Page,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let (selection, paged) = state
        .store
        .read(|w| {
            let installation = w
                .installations
                .get(&id)
                .filter(|i| w.user_sees_installation(auth.user_id, i))?;
            let repos: Vec<Value> = w
                .installation_repo_ids(installation)
                .into_iter()
                .filter_map(|rid| w.repos.get(&rid))
                .filter(|r| w.user_can_read(auth.user_id, r))
                .map(|r| render::repo(&base, w, r, Some(user_permissions(w, auth.user_id, r))))
                .collect();
            Some((installation.repository_selection, page.apply(repos)))
        })
        .ok_or_else(ApiError::not_found)?;
    let body = json!({
        "total_count": paged.total,
        "repository_selection": selection.as_str(),
        "repositories": paged.items,
    });
    Ok(with_scopes(respond(body, paged.link), &auth.scopes))
}

/// Checks the user may manage `repository_id` in installation `id`.
fn check_manage(
    state: &AppState,
    user_id: u64,
    id: u64,
    repository_id: u64,
) -> Result<(), ApiError> {
    state.store.read(|w| {
        let installation = w
            .installations
            .get(&id)
            .filter(|i| w.user_sees_installation(user_id, i))
            .ok_or_else(ApiError::not_found)?;
        w.repos
            .get(&repository_id)
            .filter(|r| r.owner_id == installation.account_id && w.user_is_owner_side(user_id, r))
            .map(|_| ())
            .ok_or_else(ApiError::not_found)
    })
}

fn change(
    state: &AppState,
    base: &str,
    auth: &UserAuth,
    ids: &(String, String),
    add: bool,
) -> Result<Response, ApiError> {
    let id = parse_id(&ids.0)?;
    let repository_id = parse_id(&ids.1)?;
    check_manage(state, auth.user_id, id, repository_id)?;
    let (add, remove) = if add {
        (vec![repository_id], Vec::new())
    } else {
        (Vec::new(), vec![repository_id])
    };
    changes::change_installation_repos(state, base, id, &add, &remove, Some(auth.user_id))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn add_repository(
    State(state): State<AppState>,
    Base(base): Base,
    auth: UserAuth,
    Path(ids): Path<(String, String)>,
) -> Result<Response, ApiError> {
    change(&state, &base, &auth, &ids, true)
}

pub(super) async fn remove_repository(
    State(state): State<AppState>,
    Base(base): Base,
    auth: UserAuth,
    Path(ids): Path<(String, String)>,
) -> Result<Response, ApiError> {
    change(&state, &base, &auth, &ids, false)
}
