//! `POST /_devgithub/installations` (sends `installation.created`),
//! `DELETE /_devgithub/installations/{id}` (sends `installation.deleted`),
//! `POST /_devgithub/installations/{id}/repositories` (sends
//! `installation_repositories` `added` / `removed`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::repos::SenderQuery;
use super::sender_id;
use crate::api::{ApiError, JsonBody};
use crate::changes;
use crate::server::{AppState, Base};
use crate::state::{NewInstallation, Selection};

#[derive(Debug, Deserialize)]
pub(super) struct CreateInstallation {
    account_login: String,
    /// `all` or `selected`; defaults to `selected` when repositories are
    /// named, else `all`.
    #[serde(default)]
    repository_selection: Option<String>,
    #[serde(default)]
    repositories: Vec<String>,
    #[serde(default)]
    permissions: Option<BTreeMap<String, String>>,
    #[serde(default)]
    events: Option<Vec<String>>,
    #[serde(default)]
    sender: Option<String>,
}

pub(super) async fn create(
    State(state): State<AppState>,
    Base(base): Base,
    JsonBody(body): JsonBody<CreateInstallation>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let selection = match body.repository_selection.as_deref() {
        None if body.repositories.is_empty() => Selection::All,
        None => Selection::Selected,
        Some(raw) => Selection::parse(raw).ok_or_else(|| {
            ApiError::validation(json!([{
                "resource": "Installation",
                "code": "invalid",
                "field": "repository_selection",
                "message": "repository_selection must be \"all\" or \"selected\"",
            }]))
        })?,
    };
    let sender = state.store.read(|w| sender_id(w, body.sender.as_deref()))?;
    let installation = changes::create_installation(
        &state,
        &base,
        NewInstallation {
            account_login: body.account_login,
            selection,
            repositories: body.repositories,
            permissions: body.permissions,
            events: body.events,
        },
        sender,
    )?;
    Ok((StatusCode::CREATED, Json(installation)))
}

fn parse_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found())
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Base(base): Base,
    Path(id): Path<String>,
    Query(query): Query<SenderQuery>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    let sender = state
        .store
        .read(|w| sender_id(w, query.sender.as_deref()))?;
    changes::delete_installation(&state, &base, id, sender)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub(super) struct ChangeRepositories {
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
    #[serde(default)]
    sender: Option<String>,
}

/// Answers with the repository ids added and removed.
pub(super) async fn change_repositories(
    State(state): State<AppState>,
    Base(base): Base,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ChangeRepositories>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let (add, remove, sender) = state.store.read(|w| {
        let account_id = w
            .installations
            .get(&id)
            .map(|i| i.account_id)
            .ok_or_else(ApiError::not_found)?;
        let add = w.resolve_repos(account_id, &body.add)?;
        let remove = w.resolve_repos(account_id, &body.remove)?;
        let sender = sender_id(w, body.sender.as_deref())?;
        Ok::<_, ApiError>((add, remove, sender))
    })?;
    let diff = changes::change_installation_repos(&state, &base, id, &add, &remove, sender)?;
    Ok(Json(
        json!({ "added": diff.added, "removed": diff.removed }),
    ))
}
