//! `/zones/{zone}/volumes/{id}`: a server's root volume while attached, and
//! the volumes `DELETE /servers/{id}` leaves behind until they are deleted.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::super::AppState;
use super::catalog;
use super::error::ScwError;
use super::wire;

fn not_found(uuid: &str) -> ScwError {
    ScwError::not_found("instance_volume", uuid)
}

pub(crate) async fn get(
    State(state): State<AppState>,
    Path((zone, uuid)): Path<(String, String)>,
) -> Result<Json<Value>, ScwError> {
    let zone = catalog::zone(&zone)?;
    let volume = state.store.read(|w| {
        let attached = w.servers.values().find_map(|s| {
            let meta = s.scaleway.as_ref()?;
            (meta.zone == zone && meta.volume.uuid.eq_ignore_ascii_case(&uuid))
                .then(|| wire::volume(&meta.volume, Some((&meta.uuid, &s.name))))
        });
        attached.or_else(|| {
            w.scaleway_volumes
                .get(&uuid.to_ascii_lowercase())
                .filter(|v| v.zone == zone)
                .map(|v| wire::volume(v, None))
        })
    });
    volume
        .map(|v| Json(json!({ "volume": v })))
        .ok_or_else(|| not_found(&uuid))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Path((zone, uuid)): Path<(String, String)>,
) -> Result<StatusCode, ScwError> {
    let zone = catalog::zone(&zone)?;
    let uuid = uuid.to_ascii_lowercase();
    state.store.update(|w| {
        let attached = w.servers.values().any(|s| {
            s.scaleway
                .as_ref()
                .is_some_and(|m| m.zone == zone && m.volume.uuid == uuid)
        });
        if attached {
            return Err(ScwError::invalid_request(
                "volume is attached to a server; detach it or terminate the server",
            ));
        }
        match w.scaleway_volumes.get(&uuid) {
            Some(v) if v.zone == zone => {
                w.scaleway_volumes.remove(&uuid);
                Ok(())
            }
            _ => Err(not_found(&uuid)),
        }
    })?;
    Ok(StatusCode::NO_CONTENT)
}
