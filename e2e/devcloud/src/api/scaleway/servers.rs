//! `/zones/{zone}/servers[/{id}[/action]]`: create, list, get, delete and
//! power actions.
//!
//! Servers live in the shared world with a `scaleway` section; their
//! machine is the same emulation as Hetzner's. A new server is `stopped`
//! (no boot); `poweron` boots it, interpreting the `cloud-init` user data
//! on the first boot. `DELETE` needs a stopped server and leaves its volume
//! behind; `terminate` needs a running one and removes both at once, its
//! processes being ended in the background.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::super::AppState;
use super::super::power::{self, Power};
use super::super::query::Query;
use super::auth::check_project;
use super::catalog;
use super::error::ScwError;
use super::wire::{self, IdKind};
use crate::clock::now_rfc3339;
use crate::faults::Event;
use crate::state::{ScalewayMeta, ScalewayVolume, ServerRecord, ServerStatus, World};

const DEFAULT_PER_PAGE: usize = 50;
const MAX_PER_PAGE: usize = 100;

/// Parses a JSON object body, Scaleway-style errors on failure.
pub(super) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ScwError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ScwError::invalid_argument("body", format!("not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ScwError::invalid_argument("body", "must be a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| ScwError::invalid_argument("body", e.to_string()))
}

pub(super) fn server_not_found(uuid: &str) -> ScwError {
    ScwError::not_found("instance_server", uuid)
}

/// The internal id of `uuid` in `zone`, or Scaleway's 404.
pub(super) fn find(w: &World, zone: &str, uuid: &str) -> Result<u64, ScwError> {
    w.scaleway_server_id(zone, uuid)
        .ok_or_else(|| server_not_found(uuid))
}

fn render(w: &World, id: u64) -> Option<Value> {
    let record = w.servers.get(&id)?;
    Some(wire::server(record, record.scaleway.as_ref()?))
}

fn positive(query: &Query, name: &str, default: usize) -> Result<usize, ScwError> {
    match query.one(name) {
        None => Ok(default),
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| ScwError::invalid_argument(name, "must be a positive integer")),
    }
}

pub(crate) async fn list(
    State(state): State<AppState>,
    Path(zone): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ScwError> {
    let zone = catalog::zone(&zone)?;
    let query = Query::parse(raw.as_deref());
    let project = check_project(&state, query.one("project"))?;
    let tags: Vec<&str> = query
        .one("tags")
        .map(|t| t.split(',').filter(|t| !t.is_empty()).collect())
        .unwrap_or_default();
    let name = query.one("name");
    let page = positive(&query, "page", 1)?;
    let per_page = positive(&query, "per_page", DEFAULT_PER_PAGE)?;
    if per_page > MAX_PER_PAGE {
        return Err(ScwError::invalid_argument(
            "per_page",
            format!("must be at most {MAX_PER_PAGE}"),
        ));
    }
    let servers: Vec<Value> = state.store.read(|w| {
        w.servers
            .values()
            .filter_map(|s| s.scaleway.as_ref().map(|m| (s, m)))
            .filter(|(_, m)| m.zone == zone && m.project == project)
            .filter(|(_, m)| tags.iter().all(|t| m.tags.iter().any(|have| have == t)))
            .filter(|(s, _)| name.is_none_or(|n| s.name.contains(n)))
            .map(|(s, m)| wire::server(s, m))
            .collect()
    });
    let total = servers.len();
    let servers: Vec<Value> = servers
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .collect();
    Ok((
        [("x-total-count", total.to_string())],
        Json(json!({ "servers": servers })),
    )
        .into_response())
}

pub(crate) async fn get(
    State(state): State<AppState>,
    Path((zone, uuid)): Path<(String, String)>,
) -> Result<Json<Value>, ScwError> {
    let zone = catalog::zone(&zone)?;
    let server = state.store.read(|w| {
        let id = find(w, zone, &uuid)?;
        render(w, id).ok_or_else(|| server_not_found(&uuid))
    })?;
    Ok(Json(json!({ "server": server })))
}

/// The fields of `POST /servers` devcloud uses; others (volumes,
/// security_group, placement_group, ...) are accepted and ignored.
#[derive(Debug, Deserialize)]
struct CreateServer {
    name: Option<String>,
    commercial_type: Option<String>,
    image: Option<String>,
    project: Option<String>,
    /// Older accounts name the organization instead; same check.
    organization: Option<String>,
    tags: Option<Vec<String>>,
}

pub(crate) async fn create(
    State(state): State<AppState>,
    Path(zone): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ScwError> {
    let zone = catalog::zone(&zone)?;
    let req: CreateServer = parse_body(&body)?;
    let project = check_project(
        &state,
        req.project.as_deref().or(req.organization.as_deref()),
    )?;

    let mut problems = Vec::new();
    let name = req.name.unwrap_or_default();
    if name.is_empty() || name.len() > 255 {
        problems.push(("name".to_owned(), "must be 1 to 255 characters".to_owned()));
    }
    let commercial_type = match req.commercial_type.as_deref() {
        None => {
            problems.push(("commercial_type".to_owned(), "is required".to_owned()));
            None
        }
        Some(t) => {
            let found = catalog::commercial_type(t);
            if found.is_none() {
                let known: Vec<&str> = catalog::COMMERCIAL_TYPES.iter().map(|t| t.name).collect();
                problems.push((
                    "commercial_type".to_owned(),
                    format!(
                        "unknown commercial type '{t}' in {zone}, expected one of {}",
                        known.join(", ")
                    ),
                ));
            }
            found
        }
    };
    let image = match req.image.as_deref() {
        None => {
            problems.push(("image".to_owned(), "is required".to_owned()));
            None
        }
        Some(i) => {
            let found = catalog::image(i);
            if found.is_none() {
                problems.push(("image".to_owned(), format!("image '{i}' not found")));
            }
            found
        }
    };
    let tags = req.tags.unwrap_or_default();
    if tags.iter().any(String::is_empty) {
        problems.push(("tags".to_owned(), "tags must not be empty".to_owned()));
    }
    let (Some(commercial_type), Some(image)) = (commercial_type, image) else {
        return Err(ScwError::invalid_arguments(problems));
    };
    if !problems.is_empty() {
        return Err(ScwError::invalid_arguments(problems));
    }

    let server = state.store.update(|w| {
        let id = w.allocate_server_id();
        let now = now_rfc3339();
        let uuid = wire::uuid(IdKind::Server, id);
        let record = ServerRecord {
            id,
            name: name.clone(),
            status: ServerStatus::Off,
            created: now.clone(),
            server_type: commercial_type.name.to_owned(),
            location: zone.to_owned(),
            image: image.label.to_owned(),
            labels: std::collections::BTreeMap::new(),
            ipv4: w.allocate_ipv4(),
            user_data: None,
            start_after_create: false,
            cloud_init_done: false,
            enabled_units: Vec::new(),
            processes: Vec::new(),
            pending_actions: Vec::new(),
            scaleway: Some(ScalewayMeta {
                uuid: uuid.clone(),
                zone: zone.to_owned(),
                project: project.clone(),
                tags,
                modified: now.clone(),
                volume: ScalewayVolume {
                    uuid: wire::uuid(IdKind::Volume, id),
                    name: format!("{} root volume", image.name),
                    size_bytes: commercial_type.disk_bytes(),
                    zone: zone.to_owned(),
                    project,
                    created: now,
                },
                user_data: std::collections::BTreeMap::new(),
            }),
        };
        w.servers.insert(id, record);
        id
    });
    if let Err(e) = state.fleet.provision(server) {
        state.store.update(|w| w.servers.remove(&server));
        return Err(ScwError::internal(format!("creating server disk: {e}")));
    }
    state.faults.record(Event::ServerCreated);
    let body = state
        .store
        .read(|w| render(w, server))
        .ok_or_else(|| ScwError::internal("server vanished while being created"))?;
    Ok((StatusCode::CREATED, Json(json!({ "server": body }))))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Path((zone, uuid)): Path<(String, String)>,
) -> Result<StatusCode, ScwError> {
    let zone = catalog::zone(&zone)?;
    let id = state.store.update(|w| {
        let id = find(w, zone, &uuid)?;
        if w.servers.get(&id).map(|s| s.status) != Some(ServerStatus::Off) {
            return Err(ScwError::invalid_request("server should be stopped"));
        }
        let server = w
            .servers
            .remove(&id)
            .ok_or_else(|| server_not_found(&uuid))?;
        if let Some(meta) = server.scaleway {
            w.scaleway_volumes
                .insert(meta.volume.uuid.clone(), meta.volume);
        }
        w.orphans.extend(server.processes);
        Ok(id)
    })?;
    state.faults.record(Event::ServerDeleted);
    let fleet = state.fleet.clone();
    tokio::spawn(async move {
        fleet.halt(id).await;
        fleet.console_line(id, "server deleted");
    });
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct ServerAction {
    action: Option<String>,
}

pub(crate) async fn action(
    State(state): State<AppState>,
    Path((zone, uuid)): Path<(String, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ScwError> {
    let zone = catalog::zone(&zone)?;
    let req: ServerAction = parse_body(&body)?;
    // The real API defaults to `poweron`.
    let action = req.action.unwrap_or_else(|| "poweron".to_owned());
    let (id, task, effect) = state.store.update(|w| {
        let id = find(w, zone, &uuid)?;
        let status = w
            .servers
            .get(&id)
            .map(|s| s.status)
            .ok_or_else(|| server_not_found(&uuid))?;
        let transient = || ScwError::transient_state("instance_server", &uuid, wire::state(status));
        let should_be = |s: &str| ScwError::invalid_request(format!("server should be {s}"));
        let (next, effect) = match (action.as_str(), status) {
            ("poweron" | "poweroff" | "reboot" | "terminate", ServerStatus::Stopping)
            | ("reboot" | "terminate", ServerStatus::Initializing | ServerStatus::Starting) => {
                return Err(transient());
            }
            ("poweron", ServerStatus::Off) => (Some(ServerStatus::Starting), Power::Boot),
            ("poweron", _) => return Err(should_be("stopped")),
            ("poweroff" | "reboot" | "terminate", ServerStatus::Off) => {
                return Err(should_be("running"));
            }
            ("poweroff", _) => (Some(ServerStatus::Stopping), Power::Halt),
            ("reboot", _) => (Some(ServerStatus::Starting), Power::Reboot),
            ("terminate", _) => (None, Power::Terminate),
            (other, _) => {
                return Err(ScwError::invalid_argument(
                    "action",
                    format!(
                        "unknown action '{other}', devcloud emulates poweron, poweroff, \
                         reboot and terminate"
                    ),
                ));
            }
        };
        let task = w.allocate_task_number();
        match next {
            Some(status) => {
                w.set_status(id, status);
                if let Some(meta) = w.servers.get_mut(&id).and_then(|s| s.scaleway.as_mut()) {
                    meta.modified = now_rfc3339();
                }
            }
            None => {
                // Terminated: gone at once, volume included; processes are
                // ended in the background.
                if let Some(server) = w.servers.remove(&id) {
                    w.orphans.extend(server.processes);
                }
            }
        }
        Ok((id, task, effect))
    })?;

    if matches!(effect, Power::Terminate) {
        state.faults.record(Event::ServerDeleted);
    }
    power::apply(&state, id, effect);
    Ok((
        StatusCode::ACCEPTED,
        Json(wire::task(task, &action, &uuid, zone)),
    ))
}
