//! Repositories and branches, by `owner/name` or by id. A renamed
//! repository's old name answers 301 to `/repositories/{id}…`, like GitHub.
//! Branches come from `Repo::branches`, which pushes over git keep equal
//! to the bare repository's `refs/heads/*` (see `crate::git`).
//!
//! Visibility: public repositories to anyone (installation tokens
//! included); private ones to users on the owner's side, and to
//! installation tokens that reach them. Anything else is 404.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use serde_json::Value;

use super::auth::Caller;
use super::pagination::respond;
use super::user::user_permissions;
use super::{ApiError, Page};
use crate::render;
use crate::server::{AppState, Base};
use crate::state::{Repo, RepoLookup, World};

/// How the request named the repository.
pub(super) enum RepoRef {
    Name(String, String),
    Id(String),
}

pub(super) fn visible(world: &World, caller: &Caller, repo: &Repo) -> bool {
    match caller {
        Caller::Anonymous => !repo.private,
        Caller::User { user_id, .. } => world.user_can_read(*user_id, repo),
        Caller::Installation { token, .. } => {
            !repo.private
                || world
                    .installation_tokens
                    .get(token)
                    .is_some_and(|t| world.token_repo_ids(t).contains(&repo.id))
        }
    }
}

fn permissions(world: &World, caller: &Caller, repo: &Repo) -> Option<Value> {
    match caller {
        Caller::User { user_id, .. } => Some(user_permissions(world, *user_id, repo)),
        _ => None,
    }
}

/// Resolves the repository and runs `f` on it, or answers 404 / 301.
pub(super) fn with_repo<R>(
    state: &AppState,
    base: &str,
    uri: &Uri,
    caller: &Caller,
    reference: RepoRef,
    f: impl FnOnce(&World, &Repo) -> Result<R, ApiError>,
) -> Result<R, ApiError> {
    state.store.read(|w| {
        let id = match reference {
            RepoRef::Id(raw) => raw.parse::<u64>().map_err(|_| ApiError::not_found())?,
            RepoRef::Name(owner, name) => match w.lookup_repo(&owner, &name) {
                RepoLookup::Found(id) => id,
                RepoLookup::Moved(id) => {
                    // Keep what followed `/repos/{owner}/{repo}` and the query.
                    let rest: String = uri
                        .path()
                        .splitn(5, '/')
                        .nth(4)
                        .map_or(String::new(), |r| format!("/{r}"));
                    let query = uri.query().map_or(String::new(), |q| format!("?{q}"));
                    return Err(ApiError::moved_permanently(format!(
                        "{base}/repositories/{id}{rest}{query}"
                    )));
                }
                RepoLookup::Missing => return Err(not_found()),
            },
        };
        let repo = w
            .repos
            .get(&id)
            .filter(|r| visible(w, caller, r))
            .ok_or_else(not_found)?;
        f(w, repo)
    })
}

fn not_found() -> ApiError {
    ApiError::not_found().docs("https://docs.github.com/rest/repos/repos#get-a-repository")
}

fn get_repo(
    state: &AppState,
    base: &str,
    uri: &Uri,
    caller: &Caller,
    reference: RepoRef,
) -> Result<Json<Value>, ApiError> {
    with_repo(state, base, uri, caller, reference, |w, repo| {
        Ok(Json(render::repo(
            base,
            w,
            repo,
            permissions(w, caller, repo),
        )))
    })
}

fn list_branches(
    state: &AppState,
    base: &str,
    uri: &Uri,
    caller: &Caller,
    page: &Page,
    reference: RepoRef,
) -> Result<Response, ApiError> {
    // `?protected=true|false` filters, as on GitHub.
    let protected = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "protected")
        .map(|(_, v)| v == "true" || v == "1");
    let paged = with_repo(state, base, uri, caller, reference, |w, repo| {
        let branches: Vec<Value> = repo
            .branches
            .iter()
            .filter(|b| protected.is_none_or(|p| b.protected == p))
            .map(|b| render::branch_short(base, w, repo, b))
            .collect();
        Ok(page.apply(branches))
    })?;
    Ok(respond(Value::Array(paged.items), paged.link))
}

fn get_branch(
    state: &AppState,
    base: &str,
    uri: &Uri,
    caller: &Caller,
    reference: RepoRef,
    branch: &str,
) -> Result<Json<Value>, ApiError> {
    with_repo(state, base, uri, caller, reference, |w, repo| {
        let b = repo
            .branches
            .iter()
            .find(|b| b.name == branch)
            .ok_or_else(|| {
                ApiError::new(axum::http::StatusCode::NOT_FOUND, "Branch not found")
                    .docs("https://docs.github.com/rest/branches/branches#get-a-branch")
            })?;
        Ok(Json(render::branch_full(base, w, repo, b)))
    })
}

pub(super) async fn get_by_name(
    State(state): State<AppState>,
    Base(base): Base,
    caller: Caller,
    uri: Uri,
    Path((owner, repo)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    get_repo(&state, &base, &uri, &caller, RepoRef::Name(owner, repo))
}

pub(super) async fn get_by_id(
    State(state): State<AppState>,
    Base(base): Base,
    caller: Caller,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    get_repo(&state, &base, &uri, &caller, RepoRef::Id(id))
}

pub(super) async fn branches_by_name(
    State(state): State<AppState>,
    Base(base): Base,
    caller: Caller,
    uri: Uri,
    page: Page,
    Path((owner, repo)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    list_branches(
        &state,
        &base,
        &uri,
        &caller,
        &page,
        RepoRef::Name(owner, repo),
    )
}

pub(super) async fn branches_by_id(
    State(state): State<AppState>,
    Base(base): Base,
    caller: Caller,
    uri: Uri,
    page: Page,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    list_branches(&state, &base, &uri, &caller, &page, RepoRef::Id(id))
}

pub(super) async fn branch_by_name(
    State(state): State<AppState>,
    Base(base): Base,
    caller: Caller,
    uri: Uri,
    Path((owner, repo, branch)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    get_branch(
        &state,
        &base,
        &uri,
        &caller,
        RepoRef::Name(owner, repo),
        &branch,
    )
}

pub(super) async fn branch_by_id(
    State(state): State<AppState>,
    Base(base): Base,
    caller: Caller,
    uri: Uri,
    Path((id, branch)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    get_branch(&state, &base, &uri, &caller, RepoRef::Id(id), &branch)
}
