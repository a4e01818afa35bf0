//! `/v1/actions`: looking up actions by ID.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::query::Query;
use super::servers::parse_id;
use super::wire;

pub(crate) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id, "action")?;
    let action = state
        .store
        .read(|w| w.actions.get(&id).cloned())
        .ok_or_else(|| ApiError::not_found(format!("action with ID '{id}' not found")))?;
    Ok(Json(json!({ "action": wire::action(&action) })))
}

/// `GET /actions?id=1&id=2`; listing all actions without `id` was removed
/// from the real API, so it is refused here too.
pub(crate) async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let query = Query::parse(raw.as_deref());
    let ids = query
        .all("id")
        .into_iter()
        .map(|raw| {
            raw.parse::<u64>().map_err(|_| {
                ApiError::invalid_fields(vec![("id".into(), vec![format!("'{raw}' is not an ID")])])
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Err(ApiError::invalid_fields(vec![(
            "id".into(),
            vec!["is required".into()],
        )]));
    }
    let actions: Vec<Value> = state.store.read(|w| {
        ids.iter()
            .filter_map(|id| w.actions.get(id))
            .map(wire::action)
            .collect()
    });
    Ok(Json(json!({ "actions": actions })))
}
