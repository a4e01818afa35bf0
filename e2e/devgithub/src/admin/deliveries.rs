//! `GET /_devgithub/deliveries[?event=…&action=…]`: every recorded webhook
//! delivery, oldest first, with its outcome and payload.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::Value;

use crate::server::AppState;

#[derive(Debug, Default, Deserialize)]
pub(super) struct Filter {
    event: Option<String>,
    action: Option<String>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    Query(filter): Query<Filter>,
) -> Json<Value> {
    let deliveries = state.store.read(|w| {
        w.deliveries
            .iter()
            .filter(|d| filter.event.as_ref().is_none_or(|e| *e == d.event))
            .filter(|d| {
                filter
                    .action
                    .as_ref()
                    .is_none_or(|a| d.action.as_ref() == Some(a))
            })
            .map(|d| serde_json::to_value(d).unwrap_or(Value::Null))
            .collect()
    });
    Json(deliveries)
}
