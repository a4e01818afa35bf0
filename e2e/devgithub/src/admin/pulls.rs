//! `GET /_devgithub/pulls[?repo=owner/name&state=open|closed]`: every pull
//! request, oldest first, as stored, with its repository's full name.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::Value;

use crate::server::AppState;

#[derive(Debug, Default, Deserialize)]
pub(super) struct Filter {
    repo: Option<String>,
    state: Option<String>,
}

pub(super) async fn list(
    State(state): State<AppState>,
    Query(filter): Query<Filter>,
) -> Json<Value> {
    let pulls = state.store.read(|w| {
        w.pulls
            .values()
            .filter_map(|p| {
                let full_name = w.full_name(w.repos.get(&p.repo_id)?);
                let wanted_repo = filter
                    .repo
                    .as_ref()
                    .is_none_or(|r| r.eq_ignore_ascii_case(&full_name));
                let wanted_state = filter.state.as_ref().is_none_or(|s| s == p.state.as_str());
                if !(wanted_repo && wanted_state) {
                    return None;
                }
                let mut value = serde_json::to_value(p).unwrap_or(Value::Null);
                value["repository"] = Value::String(full_name);
                Some(value)
            })
            .collect()
    });
    Json(pulls)
}
