//! devcloud's own admin API under `/_devcloud/`, for tests and chaos runs:
//! API and boot fault rules, servers that vanish or whose agent is killed
//! or frozen, a view of every server with its processes, and counters.
//! No authentication (devcloud only ever listens on loopback); errors use
//! Hetzner's envelope.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::servers::parse_body;
use crate::faults::{ApiFaultSpec, BootFaultSpec, Event};
use crate::state::{ServerRecord, World};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/_devcloud/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/_devcloud/faults/{id}", delete(remove_fault))
        .route(
            "/_devcloud/boot-faults",
            get(list_boot_faults)
                .post(add_boot_fault)
                .delete(clear_boot_faults),
        )
        .route("/_devcloud/servers", get(list_servers))
        .route("/_devcloud/servers/{id}/vanish", post(vanish))
        .route("/_devcloud/servers/{id}/kill-agent", post(kill_agent))
        .route("/_devcloud/servers/{id}/freeze", post(freeze))
        .route("/_devcloud/servers/{id}/thaw", post(thaw))
        .route("/_devcloud/stats", get(stats))
}

async fn add_fault(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let spec: ApiFaultSpec = parse_body(&body)?;
    let rule = state
        .faults
        .add_api(spec)
        .map_err(ApiError::invalid_input)?;
    Ok((StatusCode::CREATED, Json(rule)))
}

async fn list_faults(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "seed": state.faults.seed(),
        "faults": state.faults.api_rules(),
        "boot_faults": state.faults.boot_rules(),
    }))
}

async fn clear_faults(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "cleared": state.faults.clear() }))
}

async fn remove_fault(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let not_found = || ApiError::not_found(format!("fault rule '{id}' not found"));
    let n: u64 = id.parse().map_err(|_| not_found())?;
    if state.faults.remove(n) {
        Ok(Json(json!({ "removed": n })))
    } else {
        Err(not_found())
    }
}

async fn add_boot_fault(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let spec: BootFaultSpec = parse_body(&body)?;
    let rule = state
        .faults
        .add_boot(spec)
        .map_err(ApiError::invalid_input)?;
    Ok((StatusCode::CREATED, Json(rule)))
}

async fn list_boot_faults(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "seed": state.faults.seed(),
        "boot_faults": state.faults.boot_rules(),
    }))
}

async fn clear_boot_faults(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "cleared": state.faults.clear_boot() }))
}

async fn stats(State(state): State<AppState>) -> Json<Value> {
    let live = state.store.read(|w| w.servers.len());
    Json(state.faults.stats(live))
}

/// One server as the admin API shows it, whichever API owns it.
fn summary(server: &ServerRecord) -> Value {
    let (api, provider_id, zone, tags) = match &server.scaleway {
        Some(meta) => (
            "scaleway",
            meta.uuid.clone(),
            Some(meta.zone.clone()),
            meta.tags.clone(),
        ),
        None => ("hetzner", server.id.to_string(), None, Vec::new()),
    };
    json!({
        "id": server.id,
        "api": api,
        "provider_id": provider_id,
        "zone": zone,
        "name": server.name,
        "status": server.status.as_str(),
        "ipv4": server.ipv4.to_string(),
        "labels": server.labels,
        "tags": tags,
        "processes": server.processes.iter().map(|p| p.pid).collect::<Vec<_>>(),
    })
}

async fn list_servers(State(state): State<AppState>) -> Json<Value> {
    Json(state.store.read(|w| {
        json!({
            "servers": w.servers.values().map(summary).collect::<Vec<_>>(),
            "orphan_processes": w.orphans.iter().map(|p| p.pid).collect::<Vec<_>>(),
        })
    }))
}

/// A server named by its internal (= Hetzner) id or its Scaleway UUID.
fn resolve(w: &World, raw: &str) -> Result<u64, ApiError> {
    let found = match raw.parse::<u64>() {
        Ok(id) => w.servers.contains_key(&id).then_some(id),
        Err(_) => w
            .servers
            .values()
            .find(|s| {
                s.scaleway
                    .as_ref()
                    .is_some_and(|m| m.uuid.eq_ignore_ascii_case(raw))
            })
            .map(|s| s.id),
    };
    found.ok_or_else(|| ApiError::not_found(format!("server '{raw}' not found")))
}

/// The server disappears at the provider (volume included), as if deleted
/// behind everyone's back; its processes are SIGKILLed before this answers.
async fn vanish(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let server = state.store.update(|w| {
        let id = resolve(w, &raw)?;
        let server = w
            .servers
            .remove(&id)
            .ok_or_else(|| ApiError::not_found(format!("server '{raw}' not found")))?;
        w.orphans.extend(server.processes.iter().cloned());
        Ok::<_, ApiError>(server)
    })?;
    state.fleet.halt_hard(server.id).await;
    state
        .fleet
        .console_line(server.id, "fault injected: server vanished");
    state.faults.record(Event::ServerVanished);
    tracing::info!(id = server.id, "fault injected: server vanished");
    Ok(Json(json!({ "server": summary(&server) })))
}

/// SIGKILLs the server's service processes (its agent); they are not
/// restarted. The server itself stays as it is.
async fn kill_agent(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = state.store.read(|w| resolve(w, &raw))?;
    let killed = state.fleet.kill_services(id).await;
    if !killed.is_empty() {
        state
            .fleet
            .console_line(id, &format!("fault injected: killed {}", killed.join(", ")));
        state.faults.record(Event::AgentKilled);
    }
    Ok(Json(json!({ "id": id, "killed": killed })))
}

fn signalled(id: u64, groups: Vec<(String, i32)>) -> Json<Value> {
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(unit, pgid)| json!({ "unit": unit, "pgid": pgid }))
        .collect();
    Json(json!({ "id": id, "signalled": groups }))
}

/// SIGSTOPs every service process group of the server: the agent hangs
/// (no heartbeats, no answers) until thawed.
async fn freeze(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = state.store.read(|w| resolve(w, &raw))?;
    let groups = state.fleet.signal_services(id, Signal::SIGSTOP);
    if !groups.is_empty() {
        state.fleet.console_line(id, "fault injected: frozen");
        state.faults.record(Event::AgentFrozen);
    }
    Ok(signalled(id, groups))
}

/// SIGCONTs what [`freeze`] stopped.
async fn thaw(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = state.store.read(|w| resolve(w, &raw))?;
    let groups = state.fleet.signal_services(id, Signal::SIGCONT);
    state.fleet.console_line(id, "thawed");
    Ok(signalled(id, groups))
}
