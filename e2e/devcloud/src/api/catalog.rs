//! Read-only catalogue endpoints: server types, locations, datacenters.

use axum::Json;
use axum::extract::{Path, RawQuery};
use serde_json::{Value, json};

use super::error::ApiError;
use super::pagination::Page;
use super::query::Query;
use super::servers::parse_id;
use crate::catalog::{LOCATIONS, SERVER_TYPES};

/// A paginated list filtered by exact `name`.
fn listing(
    key: &str,
    raw: Option<&str>,
    items: impl Iterator<Item = (&'static str, Value)>,
) -> Result<Json<Value>, ApiError> {
    let query = Query::parse(raw);
    let page = Page::from_query(query.one("page"), query.one("per_page"))?;
    let name = query.one("name");
    let matching: Vec<Value> = items
        .filter(|(n, _)| name.is_none_or(|want| *n == want))
        .map(|(_, v)| v)
        .collect();
    let (items, meta) = page.apply(matching);
    Ok(Json(json!({ key: items, "meta": meta })))
}

pub(crate) async fn server_types(RawQuery(raw): RawQuery) -> Result<Json<Value>, ApiError> {
    listing(
        "server_types",
        raw.as_deref(),
        SERVER_TYPES.iter().map(|t| (t.name, t.to_json())),
    )
}

pub(crate) async fn server_type(Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "server type")?;
    SERVER_TYPES
        .iter()
        .find(|t| t.id == id)
        .map(|t| Json(json!({ "server_type": t.to_json() })))
        .ok_or_else(|| ApiError::not_found(format!("server type with ID '{id}' not found")))
}

pub(crate) async fn locations(RawQuery(raw): RawQuery) -> Result<Json<Value>, ApiError> {
    listing(
        "locations",
        raw.as_deref(),
        LOCATIONS.iter().map(|l| (l.name, l.to_json())),
    )
}

pub(crate) async fn location(Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "location")?;
    LOCATIONS
        .iter()
        .find(|l| l.id == id)
        .map(|l| Json(json!({ "location": l.to_json() })))
        .ok_or_else(|| ApiError::not_found(format!("location with ID '{id}' not found")))
}

pub(crate) async fn datacenters(RawQuery(raw): RawQuery) -> Result<Json<Value>, ApiError> {
    let Json(mut body) = listing(
        "datacenters",
        raw.as_deref(),
        LOCATIONS
            .iter()
            .map(|l| (l.datacenter, l.datacenter_json())),
    )?;
    body["recommendation"] = json!(LOCATIONS[0].datacenter_id);
    Ok(Json(body))
}

pub(crate) async fn datacenter(Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "datacenter")?;
    LOCATIONS
        .iter()
        .find(|l| l.datacenter_id == id)
        .map(|l| Json(json!({ "datacenter": l.datacenter_json() })))
        .ok_or_else(|| ApiError::not_found(format!("datacenter with ID '{id}' not found")))
}
