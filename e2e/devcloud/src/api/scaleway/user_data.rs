//! `/zones/{zone}/servers/{id}/user_data[/{key}]`: the key/value store a
//! server's metadata service serves. The `cloud-init` key is what the
//! emulated machine interprets on its first boot; setting it later has no
//! effect on a server that already booted, as on a real instance.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::super::AppState;
use super::catalog;
use super::error::ScwError;
use super::servers::{find, server_not_found};
use crate::clock::now_rfc3339;

const CLOUD_INIT: &str = "cloud-init";

pub(crate) async fn list(
    State(state): State<AppState>,
    Path((zone, uuid)): Path<(String, String)>,
) -> Result<Json<Value>, ScwError> {
    let zone = catalog::zone(&zone)?;
    let keys: Vec<String> = state.store.read(|w| {
        let id = find(w, zone, &uuid)?;
        w.servers
            .get(&id)
            .and_then(|s| s.scaleway.as_ref())
            .map(|m| m.user_data.keys().cloned().collect())
            .ok_or_else(|| server_not_found(&uuid))
    })?;
    Ok(Json(json!({ "user_data": keys })))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    Path((zone, uuid, key)): Path<(String, String, String)>,
) -> Result<Response, ScwError> {
    let zone = catalog::zone(&zone)?;
    let value = state.store.read(|w| {
        let id = find(w, zone, &uuid)?;
        w.servers
            .get(&id)
            .and_then(|s| s.scaleway.as_ref())
            .and_then(|m| m.user_data.get(&key).cloned())
            .ok_or_else(|| ScwError::not_found("instance_user_data", &key))
    })?;
    Ok(([(header::CONTENT_TYPE, "text/plain")], value).into_response())
}

pub(crate) async fn set(
    State(state): State<AppState>,
    Path((zone, uuid, key)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ScwError> {
    let zone = catalog::zone(&zone)?;
    let is_text = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("text/plain"));
    if !is_text {
        return Err(ScwError::invalid_argument(
            "Content-Type",
            "user data must be sent as text/plain",
        ));
    }
    let value = String::from_utf8(body.to_vec())
        .map_err(|_| ScwError::invalid_argument("body", "user data must be UTF-8 text"))?;
    state.store.update(|w| {
        let id = find(w, zone, &uuid)?;
        let server = w
            .servers
            .get_mut(&id)
            .ok_or_else(|| server_not_found(&uuid))?;
        if key == CLOUD_INIT {
            server.user_data = Some(value.clone());
        }
        let meta = server
            .scaleway
            .as_mut()
            .ok_or_else(|| server_not_found(&uuid))?;
        meta.user_data.insert(key, value);
        meta.modified = now_rfc3339();
        Ok::<_, ScwError>(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Path((zone, uuid, key)): Path<(String, String, String)>,
) -> Result<StatusCode, ScwError> {
    let zone = catalog::zone(&zone)?;
    state.store.update(|w| {
        let id = find(w, zone, &uuid)?;
        let server = w
            .servers
            .get_mut(&id)
            .ok_or_else(|| server_not_found(&uuid))?;
        let meta = server
            .scaleway
            .as_mut()
            .ok_or_else(|| server_not_found(&uuid))?;
        meta.user_data
            .remove(&key)
            .ok_or_else(|| ScwError::not_found("instance_user_data", &key))?;
        if key == CLOUD_INIT {
            server.user_data = None;
        }
        Ok::<_, ScwError>(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}
