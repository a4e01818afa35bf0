//! `POST /_devgithub/repos`, `POST /_devgithub/repos/{owner}/{repo}/rename`
//! (sends `repository.renamed`), `DELETE /_devgithub/repos/{owner}/{repo}`
//! (sends `repository.deleted`).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::sender_id;
use crate::api::{ApiError, JsonBody};
use crate::changes;
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
    let repo = state.store.update(|w| {
        w.create_repo(spec)
            .map(|r| render::repo(&base, w, &r, None))
    })?;
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
    Ok(StatusCode::NO_CONTENT)
}
