//! Who may use a workspace's routes (`/workspaces/{id}/…`).
//!
//! The control plane reaches them with a node-management bearer token
//! scoped to this node. (Browsers, through the Worker's `ws-<id>` proxy,
//! will use the workspace cookie exchanged from a terminal ticket; see
//! `docs/workspaces.md`.) Every check happens before the workspace id is
//! used for anything, and a malformed id is simply not found.

use axum::http::{HeaderMap, StatusCode};

use crate::server::{ApiError, AppState, authorize};

/// A workspace id as it arrives in a path or a host name: a ULID in any
/// case. Returns it normalised (upper case), or `None`.
pub(crate) fn workspace_id(raw: &str) -> Option<String> {
    let upper = raw.to_ascii_uppercase();
    (upper.len() == 26 && ulid::Ulid::from_string(&upper).is_ok()).then_some(upper)
}

/// Authorises a request for workspace `raw_id`; returns the normalised id.
pub(crate) async fn authorize_workspace(
    state: &AppState,
    headers: &HeaderMap,
    raw_id: &str,
) -> Result<String, ApiError> {
    authorize(state, headers).await?;
    workspace_id(raw_id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such workspace"))
}

#[cfg(test)]
mod tests {
    use super::workspace_id;

    #[test]
    fn workspace_ids_are_ulids_in_any_case() {
        assert_eq!(
            workspace_id("01jab3c4d5e6f7g8h9j0k1m2n3").as_deref(),
            Some("01JAB3C4D5E6F7G8H9J0K1M2N3")
        );
        for bad in [
            "",
            "..",
            "01JAB3C4D5E6F7G8H9J0K1M2N",
            "01JAB3C4D5E6F7G8H9J0K1M2N3/..",
            "0".repeat(27).as_str(),
            "01JAB3C4D5E6F7G8H9J0K1M2NU",
        ] {
            assert_eq!(workspace_id(bad), None, "{bad:?}");
        }
    }
}
