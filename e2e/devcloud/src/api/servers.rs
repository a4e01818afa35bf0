//! `/v1/servers`: create, list, get, update, delete, power actions and the
//! per-server action views.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::pagination::Page;
use super::power::{self, Power};
use super::query::Query;
use super::wire;
use crate::catalog;
use crate::clock::now_rfc3339;
use crate::faults::Event;
use crate::labels::{self, Selector};
use crate::state::{ActionRecord, Milestone, ServerRecord, ServerStatus, World};
use crate::vm::BootKind;

/// Hetzner's limit on `user_data`.
const MAX_USER_DATA: usize = 32 * 1024;

/// Parses a JSON request body: syntax errors are `json_error`, shape
/// errors `invalid_input`, as on the real API.
pub(crate) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::json_error(format!("request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::invalid_input(
            "request body must be a JSON object",
        ));
    }
    serde_json::from_value(value).map_err(|e| ApiError::invalid_input(e.to_string()))
}

pub(crate) fn parse_id(raw: &str, what: &str) -> Result<u64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("{what} with ID '{raw}' not found")))
}

fn server_not_found(id: u64) -> ApiError {
    ApiError::not_found(format!("server with ID '{id}' not found"))
}

/// IDs or names are both accepted where Hetzner accepts "ID or name".
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum IdOrName {
    Id(u64),
    Name(String),
}

impl IdOrName {
    fn key(&self) -> String {
        match self {
            IdOrName::Id(id) => id.to_string(),
            IdOrName::Name(name) => name.clone(),
        }
    }
}

/// The fields of `POST /servers` devcloud uses; others (ssh_keys,
/// networks, volumes, firewalls, public_net, ...) are accepted and ignored.
#[derive(Debug, Deserialize)]
struct CreateServer {
    name: Option<String>,
    server_type: Option<IdOrName>,
    image: Option<IdOrName>,
    location: Option<IdOrName>,
    datacenter: Option<IdOrName>,
    user_data: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    start_after_create: Option<bool>,
}

/// RFC 1123 hostname: dot-separated labels of letters, digits and inner
/// dashes, each at most 63 characters.
fn hostname_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("is required");
    }
    if name.len() > 253 {
        return Some("is too long");
    }
    let valid = name.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    });
    (!valid).then_some("is not a valid hostname")
}

/// Validation messages collected per request field.
struct FieldErrors(Vec<(String, Vec<String>)>);

impl FieldErrors {
    fn add(&mut self, name: &str, message: impl Into<String>) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some((_, messages)) => messages.push(message.into()),
            None => self.0.push((name.to_owned(), vec![message.into()])),
        }
    }
}

fn required<'a>(
    errors: &mut FieldErrors,
    field: &str,
    value: Option<&'a IdOrName>,
) -> Option<&'a IdOrName> {
    if value.is_none() {
        errors.add(field, "is required");
    }
    value
}

/// A validated create request.
struct NewServer {
    name: String,
    server_type: &'static catalog::ServerType,
    location: &'static catalog::Location,
    image: &'static catalog::Image,
    user_data: Option<String>,
    labels: BTreeMap<String, String>,
    start: bool,
}

impl CreateServer {
    fn validate(self) -> Result<NewServer, ApiError> {
        let mut errors = FieldErrors(Vec::new());
        let name = self.name.unwrap_or_default();
        if let Some(problem) = hostname_problem(&name) {
            errors.add("name", problem);
        }
        let server_type =
            required(&mut errors, "server_type", self.server_type.as_ref()).and_then(|t| {
                let found = catalog::server_type(&t.key());
                if found.is_none() {
                    errors.add(
                        "server_type",
                        format!("server type '{}' not found", t.key()),
                    );
                }
                found
            });
        let image = required(&mut errors, "image", self.image.as_ref()).and_then(|i| {
            let found = catalog::image(&i.key());
            if found.is_none() {
                errors.add("image", format!("image '{}' not found", i.key()));
            }
            found
        });
        let location = match (&self.location, &self.datacenter) {
            (Some(_), Some(_)) => {
                errors.add("location", "must not be used together with datacenter");
                None
            }
            (Some(l), None) => {
                let found = catalog::location(&l.key());
                if found.is_none() {
                    errors.add("location", format!("location '{}' not found", l.key()));
                }
                found
            }
            (None, Some(d)) => {
                let found = catalog::location_by_datacenter(&d.key());
                if found.is_none() {
                    errors.add("datacenter", format!("datacenter '{}' not found", d.key()));
                }
                found
            }
            // Hetzner picks a location when none is given.
            (None, None) => catalog::LOCATIONS.first(),
        };
        if let Some(data) = &self.user_data
            && data.len() > MAX_USER_DATA
        {
            errors.add(
                "user_data",
                format!(
                    "is too long ({} bytes, at most {MAX_USER_DATA})",
                    data.len()
                ),
            );
        }
        let labels = self.labels.unwrap_or_default();
        for problem in labels::problems(&labels) {
            errors.add("labels", problem);
        }
        match (server_type, location, image) {
            (Some(server_type), Some(location), Some(image)) if errors.0.is_empty() => {
                Ok(NewServer {
                    name,
                    server_type,
                    location,
                    image,
                    user_data: self.user_data,
                    labels,
                    start: self.start_after_create.unwrap_or(true),
                })
            }
            _ => Err(ApiError::invalid_fields(errors.0)),
        }
    }
}

fn name_taken(w: &World, name: &str, except: Option<u64>) -> bool {
    w.hetzner_servers()
        .any(|s| s.name == name && Some(s.id) != except)
}

pub(crate) async fn create(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let new = parse_body::<CreateServer>(&body)?.validate()?;
    let start = new.start;
    let (server, action, next) = state.store.update(|w| {
        if name_taken(w, &new.name, None) {
            return Err(ApiError::uniqueness("name", "server name is already used"));
        }
        let id = w.allocate_server_id();
        let record = ServerRecord {
            id,
            name: new.name,
            status: ServerStatus::Initializing,
            created: now_rfc3339(),
            server_type: new.server_type.name.to_owned(),
            location: new.location.name.to_owned(),
            image: new.image.name.to_owned(),
            labels: new.labels,
            ipv4: w.allocate_ipv4(),
            user_data: new.user_data,
            start_after_create: start,
            cloud_init_done: false,
            enabled_units: Vec::new(),
            processes: Vec::new(),
            pending_actions: Vec::new(),
            scaleway: None,
        };
        w.servers.insert(id, record.clone());
        let action = w.start_pending_action("create_server", id, Milestone::Created);
        let next = start.then(|| w.start_pending_action("start_server", id, Milestone::Running));
        Ok((record, action, next))
    })?;
    if let Err(e) = state.fleet.provision(server.id) {
        state.store.update(|w| w.servers.remove(&server.id));
        return Err(ApiError::server_error(format!("creating server disk: {e}")));
    }
    state.fleet.boot(server.id, BootKind::Create { start });
    state.faults.record(Event::ServerCreated);
    let next_actions: Vec<Value> = next.iter().map(wire::action).collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "server": wire::server(&server),
            "action": wire::action(&action),
            "next_actions": next_actions,
            // devcloud servers have no login, so no password is generated.
            "root_password": null,
        })),
    ))
}

fn sort_order(keys: &[&str]) -> Result<Vec<(&'static str, bool)>, ApiError> {
    keys.iter()
        .map(|key| {
            let (field, dir) = key.split_once(':').unwrap_or((key, "asc"));
            let field = match field {
                "id" => "id",
                "name" => "name",
                "created" => "created",
                _ => {
                    return Err(ApiError::invalid_fields(vec![(
                        "sort".into(),
                        vec![format!("cannot sort by '{key}'")],
                    )]));
                }
            };
            match dir {
                "asc" => Ok((field, false)),
                "desc" => Ok((field, true)),
                _ => Err(ApiError::invalid_fields(vec![(
                    "sort".into(),
                    vec![format!("bad direction in '{key}'")],
                )])),
            }
        })
        .collect()
}

fn compare(a: &ServerRecord, b: &ServerRecord, order: &[(&str, bool)]) -> Ordering {
    for (field, descending) in order {
        let ord = match *field {
            "name" => a.name.cmp(&b.name),
            "created" => a.created.cmp(&b.created),
            _ => a.id.cmp(&b.id),
        };
        let ord = if *descending { ord.reverse() } else { ord };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    a.id.cmp(&b.id)
}

pub(crate) async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let query = Query::parse(raw.as_deref());
    let selector = query
        .one("label_selector")
        .map(Selector::parse)
        .transpose()
        .map_err(|e| {
            ApiError::invalid_fields(vec![("label_selector".into(), vec![e.to_string()])])
        })?;
    let statuses = query.all("status");
    for status in &statuses {
        if ![
            "initializing",
            "starting",
            "running",
            "stopping",
            "off",
            "deleting",
            "migrating",
            "rebuilding",
            "unknown",
        ]
        .contains(status)
        {
            return Err(ApiError::invalid_fields(vec![(
                "status".into(),
                vec![format!("unknown status '{status}'")],
            )]));
        }
    }
    let order = sort_order(&query.all("sort"))?;
    let page = Page::from_query(query.one("page"), query.one("per_page"))?;
    let name = query.one("name");

    let mut servers: Vec<ServerRecord> = state.store.read(|w| {
        w.hetzner_servers()
            .filter(|s| name.is_none_or(|n| s.name == n))
            .filter(|s| selector.as_ref().is_none_or(|sel| sel.matches(&s.labels)))
            .filter(|s| statuses.is_empty() || statuses.contains(&s.status.as_str()))
            .cloned()
            .collect()
    });
    servers.sort_by(|a, b| compare(a, b, &order));
    let (servers, meta) = page.apply(servers);
    let servers: Vec<Value> = servers.iter().map(wire::server).collect();
    Ok(Json(json!({ "servers": servers, "meta": meta })))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "server")?;
    let server = state
        .store
        .read(|w| w.hetzner_server(id).cloned())
        .ok_or_else(|| server_not_found(id))?;
    Ok(Json(json!({ "server": wire::server(&server) })))
}

#[derive(Debug, Deserialize)]
struct UpdateServer {
    name: Option<String>,
    labels: Option<BTreeMap<String, String>>,
}

pub(crate) async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "server")?;
    let request: UpdateServer = parse_body(&body)?;
    let mut errors = FieldErrors(Vec::new());
    if let Some(problem) = request.name.as_deref().and_then(hostname_problem) {
        errors.add("name", problem);
    }
    for problem in request
        .labels
        .as_ref()
        .map(labels::problems)
        .unwrap_or_default()
    {
        errors.add("labels", problem);
    }
    if !errors.0.is_empty() {
        return Err(ApiError::invalid_fields(errors.0));
    }
    let server = state.store.update(|w| {
        if w.hetzner_server(id).is_none() {
            return Err(server_not_found(id));
        }
        if let Some(name) = &request.name
            && name_taken(w, name, Some(id))
        {
            return Err(ApiError::uniqueness("name", "server name is already used"));
        }
        let server = w.servers.get_mut(&id).ok_or_else(|| server_not_found(id))?;
        if let Some(name) = request.name {
            server.name = name;
        }
        if let Some(labels) = request.labels {
            server.labels = labels;
        }
        Ok(server.clone())
    })?;
    Ok(Json(json!({ "server": wire::server(&server) })))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "server")?;
    // The server leaves the project at once (GET answers 404, the name is
    // free again); its processes are ended in the background and the
    // action finishes once they are gone.
    let action = state
        .store
        .update(|w| {
            w.hetzner_server(id)?;
            let server = w.servers.remove(&id)?;
            w.orphans.extend(server.processes);
            Some(w.start_action("delete_server", id))
        })
        .ok_or_else(|| server_not_found(id))?;
    state.faults.record(Event::ServerDeleted);
    let (fleet, store, action_id) = (state.fleet.clone(), state.store.clone(), action.id);
    tokio::spawn(async move {
        fleet.halt(id).await;
        fleet.console_line(id, "server deleted");
        store.update(|w| w.finish_action(action_id));
    });
    Ok(Json(json!({ "action": wire::action(&action) })))
}

pub(crate) async fn power_action(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = parse_id(&id, "server")?;
    let command = match name.as_str() {
        "poweroff" => "stop_server",
        "shutdown" => "shutdown_server",
        "poweron" => "start_server",
        "reboot" => "reboot_server",
        "reset" => "reset_server",
        _ => {
            return Err(ApiError::not_found(format!(
                "server action '{name}' not found"
            )));
        }
    };
    let (action, effect) = state
        .store
        .update(|w| -> Result<(ActionRecord, Power), ApiError> {
            let status = w
                .hetzner_server(id)
                .ok_or_else(|| server_not_found(id))?
                .status;
            let immediate = |w: &mut World| {
                let action = w.start_action(command, id);
                w.finish_action(action.id);
                w.actions[&action.id].clone()
            };
            let locked = || ApiError::locked("server is locked by a running stop action");
            Ok(match (name.as_str(), status) {
                ("poweroff" | "shutdown", ServerStatus::Off) => (immediate(w), Power::Nothing),
                ("poweroff" | "shutdown", ServerStatus::Stopping) => (
                    w.start_pending_action(command, id, Milestone::Off),
                    Power::Nothing,
                ),
                ("poweroff" | "shutdown", _) => {
                    w.set_status(id, ServerStatus::Stopping);
                    (
                        w.start_pending_action(command, id, Milestone::Off),
                        Power::Halt,
                    )
                }
                (_, ServerStatus::Stopping) => return Err(locked()),
                ("poweron", ServerStatus::Off) => {
                    w.set_status(id, ServerStatus::Starting);
                    (
                        w.start_pending_action(command, id, Milestone::Running),
                        Power::Boot,
                    )
                }
                ("poweron", ServerStatus::Running) | (_, ServerStatus::Off) => {
                    (immediate(w), Power::Nothing)
                }
                ("poweron", _) => (
                    w.start_pending_action(command, id, Milestone::Running),
                    Power::Nothing,
                ),
                _ => {
                    w.set_status(id, ServerStatus::Starting);
                    (
                        w.start_pending_action(command, id, Milestone::Running),
                        Power::Reboot,
                    )
                }
            })
        })?;
    power::apply(&state, id, effect);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "action": wire::action(&action) })),
    ))
}

pub(crate) async fn list_actions(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "server")?;
    let query = Query::parse(raw.as_deref());
    let page = Page::from_query(query.one("page"), query.one("per_page"))?;
    let actions = state
        .store
        .read(|w| {
            w.hetzner_server(id).is_some().then(|| {
                w.actions
                    .values()
                    .filter(|a| a.server_id == id)
                    .cloned()
                    .collect::<Vec<_>>()
            })
        })
        .ok_or_else(|| server_not_found(id))?;
    let (actions, meta) = page.apply(actions);
    let actions: Vec<Value> = actions.iter().map(wire::action).collect();
    Ok(Json(json!({ "actions": actions, "meta": meta })))
}

pub(crate) async fn get_action(
    State(state): State<AppState>,
    Path((id, action_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "server")?;
    let action_id = parse_id(&action_id, "action")?;
    let action = state
        .store
        .read(|w| {
            w.actions
                .get(&action_id)
                .filter(|a| a.server_id == id)
                .cloned()
        })
        .ok_or_else(|| ApiError::not_found(format!("action with ID '{action_id}' not found")))?;
    Ok(Json(json!({ "action": wire::action(&action) })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        assert_eq!(hostname_problem("node-1"), None);
        assert_eq!(hostname_problem("sam-node.example"), None);
        assert_eq!(hostname_problem("Node1"), None);
        assert!(hostname_problem("").is_some());
        assert!(hostname_problem("-node").is_some());
        assert!(hostname_problem("node_1").is_some());
        assert!(hostname_problem("a..b").is_some());
        assert!(hostname_problem(&"a".repeat(64)).is_some());
    }
}
