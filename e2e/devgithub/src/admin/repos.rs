//! `POST /_devgithub/repos` (also creates the bare git repository),
//! `POST /_devgithub/repos/{owner}/{repo}/rename` (sends
//! `repository.renamed`), `DELETE /_devgithub/repos/{owner}/{repo}` (sends
//! `repository.deleted`, removes the bare repository).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::sender_id;
use crate::api::{ApiError, JsonBody};
use crate::changes;
use crate::git;
use crate::render;
use crate::server::{AppState, Base};
use crate::state::{BranchSpec, NewRepo};

/// A branch as a bare name or with details.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum BranchInput {
    Name(String),
    Full {
        name: String,
        #[serde(default)]
        sha: Option<String>,
        #[serde(default)]
        protected: bool,
    },
}

impl From<BranchInput> for BranchSpec {
    fn from(input: BranchInput) -> Self {
        match input {
            BranchInput::Name(name) => BranchSpec {
                name,
                sha: None,
                protected: false,
            },
            BranchInput::Full {
                name,
                sha,
                protected,
            } => BranchSpec {
                name,
                sha,
                protected,
            },
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct CreateRepo {
    owner: String,
    name: String,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    default_branch: Option<String>,
    #[serde(default)]
    branches: Vec<BranchInput>,
}

/// 201 with the repository JSON. An unknown owner becomes an organization.
/// The bare git repository is built before answering; branches point at
/// its initial commit, except those seeded with an explicit `sha`. If git
/// fails, the repository is not created (500).
pub(super) async fn create(
    State(state): State<AppState>,
    Base(base): Base,
    JsonBody(body): JsonBody<CreateRepo>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let spec = NewRepo {
        owner: body.owner,
        name: body.name,
        private: body.private,
        description: body.description,
        default_branch: body.default_branch,
        branches: body.branches.into_iter().map(BranchSpec::from).collect(),
    };
    let pinned: Vec<String> = spec
        .branches
        .iter()
        .filter(|b| b.sha.is_some())
        .map(|b| b.name.clone())
        .collect();
    let id = state.store.update(|w| w.create_repo(spec).map(|r| r.id))?;
    if let Err(error) = git::materialize(&state, id, &pinned).await {
        tracing::error!(%error, "creating a bare repository");
        state.store.update(|w| w.delete_repo(id));
        git::remove(&state, id).await;
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("creating the git repository failed: {error}"),
        ));
    }
    let repo = state
        .store
        .read(|w| w.repos.get(&id).map(|r| render::repo(&base, w, r, None)))
        .ok_or_else(ApiError::not_found)?;
    Ok((StatusCode::CREATED, Json(repo)))
}

fn repo_id(state: &AppState, owner: &str, name: &str) -> Result<u64, ApiError> {
    state
        .store
        .read(|w| w.repo_by_name(owner, name).map(|r| r.id))
        .ok_or_else(ApiError::not_found)
}

#[derive(Debug, Deserialize)]
pub(super) struct Rename {
    name: String,
    #[serde(default)]
    sender: Option<String>,
}

pub(super) async fn rename(
    State(state): State<AppState>,
    Base(base): Base,
    Path((owner, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<Rename>,
) -> Result<Json<Value>, ApiError> {
    let id = repo_id(&state, &owner, &name)?;
    let sender = state.store.read(|w| sender_id(w, body.sender.as_deref()))?;
    Ok(Json(changes::rename_repo(
        &state, &base, id, &body.name, sender,
    )?))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct SenderQuery {
    pub(super) sender: Option<String>,
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Base(base): Base,
    Path((owner, name)): Path<(String, String)>,
    Query(query): Query<SenderQuery>,
) -> Result<StatusCode, ApiError> {
    let id = repo_id(&state, &owner, &name)?;
    let sender = state
        .store
        .read(|w| sender_id(w, query.sender.as_deref()))?;
    changes::delete_repo(&state, &base, id, sender)?;
    git::remove(&state, id).await;
    Ok(StatusCode::NO_CONTENT)
}
