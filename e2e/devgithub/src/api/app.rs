//! Endpoints for the app itself (JWT): the app, its installations, and
//! installation access tokens.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::jwt::AppAuth;
use super::pagination::respond;
use super::{ApiError, JsonBody, Page};
use crate::changes;
use crate::clock::{now_ms, rfc3339_ms};
use crate::ids::{TokenKind, token};
use crate::render;
use crate::server::{AppState, Base};
use crate::state::{InstallationToken, RepoLookup};

fn parse_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found())
}

pub(super) async fn get_app(
    State(state): State<AppState>,
    Base(base): Base,
    _: AppAuth,
) -> Json<Value> {
    Json(
        state
            .store
            .read(|w| render::app(&base, &state.config.app, w)),
    )
}

pub(super) async fn list_installations(
    State(state): State<AppState>,
    Base(base): Base,
    _: AppAuth,
    page: Page,
) -> Response {
    let paged = state.store.read(|w| {
        let all: Vec<Value> = w
            .installations
            .values()
            .map(|i| render::installation(&base, &state.config.app, w, i))
            .collect();
        page.apply(all)
    });
    respond(Value::Array(paged.items), paged.link)
}

fn installation_json(state: &AppState, base: &str, id: u64) -> Result<Value, ApiError> {
    state
        .store
        .read(|w| {
            w.installations
                .get(&id)
                .map(|i| render::installation(base, &state.config.app, w, i))
        })
        .ok_or_else(|| {
            ApiError::not_found()
                .docs("https://docs.github.com/rest/apps/apps#get-an-installation-for-the-authenticated-app")
        })
}

pub(super) async fn get_installation(
    State(state): State<AppState>,
    Base(base): Base,
    _: AppAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(installation_json(&state, &base, parse_id(&id)?)?))
}

/// Uninstalls the app; GitHub answers 204 and sends `installation.deleted`.
pub(super) async fn delete_installation(
    State(state): State<AppState>,
    Base(base): Base,
    _: AppAuth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    changes::delete_installation(&state, &base, parse_id(&id)?, None)?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn repo_installation(
    State(state): State<AppState>,
    Base(base): Base,
    _: AppAuth,
    Path((owner, repo)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let id = state
        .store
        .read(|w| match w.lookup_repo(&owner, &repo) {
            RepoLookup::Found(id) | RepoLookup::Moved(id) => {
                w.installation_for_repo(id).map(|i| i.id)
            }
            RepoLookup::Missing => None,
        })
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(installation_json(&state, &base, id)?))
}

/// `GET /users/{login}/installation` and `GET /orgs/{login}/installation`.
pub(super) async fn account_installation(
    State(state): State<AppState>,
    Base(base): Base,
    _: AppAuth,
    Path(login): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = state
        .store
        .read(|w| {
            let account = w.account_by_login(&login)?;
            w.installation_for_account(account.id).map(|i| i.id)
        })
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(installation_json(&state, &base, id)?))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct TokenRequest {
    #[serde(default)]
    repositories: Option<Vec<String>>,
    #[serde(default)]
    repository_ids: Option<Vec<u64>>,
    #[serde(default)]
    permissions: Option<BTreeMap<String, String>>,
}

fn level(access: &str) -> u8 {
    match access {
        "read" => 1,
        "write" => 2,
        "admin" => 3,
        _ => u8::MAX,
    }
}

/// Issues an installation access token (`ghs_…`, one hour), optionally
/// narrowed to some repositories and permissions.
pub(super) async fn create_access_token(
    State(state): State<AppState>,
    Base(base): Base,
    _: AppAuth,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<TokenRequest>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let ttl_ms = i64::try_from(state.config.installation_token_ttl.as_millis()).unwrap_or(i64::MAX);
    let result = state.store.update(|w| {
        w.purge_expired(now_ms());
        let installation = w.installations.get(&id).ok_or_else(ApiError::not_found)?;
        let reachable = w.installation_repo_ids(installation);
        let narrowed = if request.repositories.is_some() || request.repository_ids.is_some() {
            let owner = w
                .accounts
                .get(&installation.account_id)
                .map_or("", |a| a.login.as_str());
            let mut ids = request.repository_ids.clone().unwrap_or_default();
            let mut unknown = false;
            for name in request.repositories.iter().flatten() {
                match w.repo_by_name(owner, name) {
                    Some(r) => ids.push(r.id),
                    None => unknown = true,
                }
            }
            if unknown || ids.iter().any(|r| !reachable.contains(r)) {
                return Err(ApiError::unprocessable(
                    "There is at least one repository that does not exist or is not accessible to the parent installation.",
                ));
            }
            ids.sort_unstable();
            ids.dedup();
            Some(ids)
        } else {
            None
        };
        let permissions = match &request.permissions {
            None => installation.permissions.clone(),
            Some(asked) => {
                let granted = asked.iter().all(|(k, v)| {
                    installation
                        .permissions
                        .get(k)
                        .is_some_and(|have| level(v) <= level(have))
                });
                if !granted {
                    return Err(ApiError::unprocessable(
                        "The permissions requested are not granted to this installation.",
                    ));
                }
                asked.clone()
            }
        };
        let selection = if narrowed.is_some() {
            "selected"
        } else {
            installation.repository_selection.as_str()
        };
        let expires_at_ms = now_ms().saturating_add(ttl_ms);
        let value = token(TokenKind::Installation);
        let mut body = json!({
            "token": value,
            "expires_at": rfc3339_ms(expires_at_ms),
            "permissions": permissions,
            "repository_selection": selection,
        });
        if let Some(ids) = &narrowed {
            body["repositories"] = ids
                .iter()
                .filter_map(|r| w.repos.get(r))
                .map(|r| render::repo(&base, w, r, None))
                .collect();
        }
        w.installation_tokens.insert(
            value,
            InstallationToken {
                installation_id: id,
                expires_at_ms,
                repository_ids: narrowed,
                permissions,
            },
        );
        Ok(body)
    })?;
    Ok((StatusCode::CREATED, Json(result)).into_response())
}
