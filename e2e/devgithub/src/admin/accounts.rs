//! `POST /_devgithub/users`, `GET /_devgithub/users`, `POST /_devgithub/orgs`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use crate::api::{ApiError, JsonBody};
use crate::render;
use crate::server::{AppState, Base};

#[derive(Debug, Deserialize)]
pub(super) struct NewUser {
    login: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

/// 201 with the user as `GET /user` would show it.
pub(super) async fn create_user(
    State(state): State<AppState>,
    Base(base): Base,
    JsonBody(body): JsonBody<NewUser>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = state.store.update(|w| {
        w.create_user(&body.login, body.name, body.email)
            .map(|u| render::private_user(&base, w, &u))
    })?;
    Ok((StatusCode::CREATED, Json(user)))
}

pub(super) async fn list_users(State(state): State<AppState>, Base(base): Base) -> Json<Value> {
    Json(state.store.read(|w| {
        w.users()
            .map(|u| render::private_user(&base, w, u))
            .collect()
    }))
}

#[derive(Debug, Deserialize)]
pub(super) struct NewOrg {
    login: String,
    #[serde(default)]
    name: Option<String>,
    /// Logins of existing users.
    #[serde(default)]
    members: Vec<String>,
}

pub(super) async fn create_org(
    State(state): State<AppState>,
    Base(base): Base,
    JsonBody(body): JsonBody<NewOrg>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let org = state.store.update(|w| {
        w.create_org(&body.login, body.name, &body.members)
            .map(|o| render::simple_user(&base, &o))
    })?;
    Ok((StatusCode::CREATED, Json(org)))
}
