//! Who may use a forwarded port (`/workspaces/{id}/ports/{port}/…`).
//!
//! Not the workspace's own credentials: the management bearer and the
//! `sam_ws` cookie open the workspace, not the apps it serves (the app owns
//! `Authorization`, and a page on a port must not be able to drive the
//! workspace, nor the other way round). A port is opened by, in this order:
//!
//! 1. a `port-access` ticket in `?port_token=`: a JWT scoped to this node,
//!    the workspace and the port, used once (the redeemed-ticket table is
//!    the terminal tickets'); on a plain `GET`/`HEAD` it buys the port's
//!    cookie (see [`super`]), on anything else it opens that one request;
//! 2. the header `X-Sam-Port-Access`: a port-access JWT with the same
//!    scope, which the control plane's proxy adds to each request for a
//!    workspace whose ports are public (after removing any the browser
//!    sent). Not single use: the proxy mints one per request;
//! 3. the cookie `sam_port_<port>`: an opaque session bound to the
//!    workspace and the port, held in memory like `sam_ws` sessions. A
//!    request carrying it with an `Origin` must come from the app or a
//!    host of the same workspace (`ws-<id>.` or any `ws-<id>--<n>.`), so a
//!    page of another workspace cannot use the cookie behind the user's
//!    back.
//!
//! A ticket that fails does not end the matter when the request has
//! another good credential (a stale ticket in a URL does no harm to a
//! browser that holds the cookie). A token for another node, workspace or
//! port is a 403 `token_scope_mismatch`; a bad or expired one a 401 with
//! its code; no credential at all a 401 `token_missing`.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use sam_auth::{Audience, TokenClaims};

use super::forward::{PORT_ACCESS_HEADER, PORT_COOKIE_PREFIX};
use crate::access::{
    cookie_values, known_workspace, now_ms, origin_matches, redeem_once, session_set_cookie,
    verify_error, workspace_id,
};
use crate::server::{ApiError, AppState};

/// How a request got in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// A ticket, redeemed by this very request.
    Ticket,
    /// The proxy's `X-Sam-Port-Access` token.
    Header,
    /// The port's cookie.
    Cookie,
}

/// The name of port `port`'s cookie.
pub(crate) fn cookie_name(port: u16) -> String {
    format!("{PORT_COOKIE_PREFIX}{port}")
}

/// Authorises a request for `port` of workspace `raw_id`; returns the
/// normalised workspace id and how. `ticket` is `?port_token=`, if any.
pub(crate) async fn authorize_port(
    state: &AppState,
    headers: &HeaderMap,
    ticket: Option<&str>,
    raw_id: &str,
    port: u16,
) -> Result<(String, Via), ApiError> {
    let Some(ticket) = ticket else {
        return other_credential(state, headers, raw_id, port).await;
    };
    match redeem_port_ticket(state, ticket, raw_id, port).await {
        Ok(id) => Ok((id, Via::Ticket)),
        Err(err) => other_credential(state, headers, raw_id, port)
            .await
            // Nothing else either: the ticket's own reason is the answer.
            .map_err(|_| err),
    }
}

/// The header token, else the cookie.
async fn other_credential(
    state: &AppState,
    headers: &HeaderMap,
    raw_id: &str,
    port: u16,
) -> Result<(String, Via), ApiError> {
    if let Some(token) = headers.get(PORT_ACCESS_HEADER) {
        let id = verify_header_token(state, token, raw_id, port).await?;
        return Ok((id, Via::Header));
    }
    let id = check_cookie(state, headers, raw_id, port)?;
    Ok((id, Via::Cookie))
}

/// Verifies a port JWT of `audience` (a ticket, or the proxy's token for a
/// public port) and its scope; returns the normalised id
/// and the claims.
async fn verify_scoped(
    state: &AppState,
    token: &str,
    audience: Audience,
    raw_id: &str,
    port: u16,
) -> Result<(String, TokenClaims), ApiError> {
    let claims = state
        .keys
        .verify(token, audience, now_ms())
        .await
        .map_err(|err| verify_error(&err))?;
    let id = known_workspace(raw_id)?;
    let scope = if claims.node != state.config.node_id {
        Some("node")
    } else if claims
        .workspace
        .as_deref()
        .and_then(workspace_id)
        .as_deref()
        != Some(id.as_str())
    {
        Some("workspace")
    } else if claims.port != Some(port) {
        Some("port")
    } else {
        None
    };
    if let Some(scope) = scope {
        tracing::info!(workspace = %id, port, scope, "refused a port-access token scoped elsewhere");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "token_scope_mismatch",
            &format!("the port-access token is scoped to a different {scope}"),
        ));
    }
    Ok((id, claims))
}

/// Verifies and redeems a port-access ticket.
async fn redeem_port_ticket(
    state: &AppState,
    ticket: &str,
    raw_id: &str,
    port: u16,
) -> Result<String, ApiError> {
    let (id, claims) = verify_scoped(state, ticket, Audience::PortAccess, raw_id, port).await?;
    redeem_once(state, ticket, claims.expires_at_ms, now_ms(), &id)?;
    Ok(id)
}

async fn verify_header_token(
    state: &AppState,
    token: &HeaderValue,
    raw_id: &str,
    port: u16,
) -> Result<String, ApiError> {
    let token = token.to_str().map_err(|_| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "token_malformed",
            "the port-access token is not text",
        )
    })?;
    verify_scoped(state, token.trim(), Audience::PublicPort, raw_id, port)
        .await
        .map(|(id, _)| id)
}

fn check_cookie(
    state: &AppState,
    headers: &HeaderMap,
    raw_id: &str,
    port: u16,
) -> Result<String, ApiError> {
    let values = cookie_values(headers, &cookie_name(port));
    if values.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "token_missing",
            "a port ticket (?port_token=), the port's cookie or a port-access token is required",
        ));
    }
    let now = now_ms();
    let sessions: Vec<_> = values
        .iter()
        .filter_map(|value| state.workspace_sessions.lookup(value, now))
        .filter(|session| session.node == state.config.node_id)
        .collect();
    if sessions.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "session_invalid",
            "the port session is unknown or has expired",
        ));
    }
    let id = known_workspace(raw_id)?;
    if !sessions
        .iter()
        .any(|session| session.workspace == id && session.port == Some(port))
    {
        tracing::info!(workspace = %id, port, "refused a port cookie for another workspace or port");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "token_scope_mismatch",
            "the port cookie is for a different workspace or port",
        ));
    }
    if !origin_matches(&state.config, headers, |label| same_workspace(label, &id)) {
        tracing::info!(workspace = %id, port, "refused a port cookie from a foreign origin");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "requests with a port cookie must come from the app or the same workspace",
        ));
    }
    Ok(id)
}

/// Whether a host's first label (lower case) is workspace `id`'s own
/// (`ws-<id>`) or one of its ports' (`ws-<id>--<port>`).
fn same_workspace(label: &str, id: &str) -> bool {
    let Some(rest) = label
        .strip_prefix("ws-")
        .and_then(|rest| rest.strip_prefix(id.to_ascii_lowercase().as_str()))
    else {
        return false;
    };
    rest.is_empty()
        || rest
            .strip_prefix("--")
            .is_some_and(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
}

/// Opens a session for `port` of workspace `id` and returns its
/// `Set-Cookie` value.
pub(crate) fn port_cookie(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    port: u16,
) -> Result<HeaderValue, ApiError> {
    let (value, _) = state
        .workspace_sessions
        .open_port(id, &state.config.node_id, port, now_ms());
    session_set_cookie(&state.config, headers, &cookie_name(port), &value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WS: &str = "01JAB3C4D5E6F7G8H9J0K1M2N3";

    #[test]
    fn a_workspace_s_hosts_are_its_own_and_its_ports() {
        let own = "ws-01jab3c4d5e6f7g8h9j0k1m2n3";
        for (label, expected) in [
            (own.to_owned(), true),
            (format!("{own}--3000"), true),
            (format!("{own}--5173"), true),
            (format!("{own}--"), false),
            (format!("{own}--30a0"), false),
            (format!("{own}-3000"), false),
            (format!("{own}x"), false),
            ("ws-01jab3c4d5e6f7g8h9j0k1m2n4--3000".to_owned(), false),
            ("app".to_owned(), false),
        ] {
            assert_eq!(same_workspace(&label, WS), expected, "{label}");
        }
    }

    #[test]
    fn port_cookies_are_named_after_their_port() {
        assert_eq!(cookie_name(3000), "sam_port_3000");
    }
}
