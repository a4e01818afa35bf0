//! Forwarded ports: which ports a workspace's apps listen on, and the
//! forwarder that lets a browser reach them (`docs/workspaces.md`).
//!
//! - `GET /workspaces/{id}/ports` (management bearer or `sam_ws` cookie,
//!   like every workspace route) → `{ports: [{port, address}]}`: the
//!   listening TCP sockets of the workspace's processes ([`detect`]),
//!   sorted by port, then address, one entry per port and address. An
//!   unknown workspace is a 404 `not_found`.
//! - any method on `/workspaces/{id}/ports/{port}` and
//!   `/workspaces/{id}/ports/{port}/{*path}` → the app on that port, as
//!   `/{path}` with the query string minus `port_token` ([`forward`]).
//!   Authorised by the port's own credentials only ([`access`]). In order:
//!   the port must be 1..=65535 in plain decimal (400 `invalid_port`); the
//!   credential; the workspace must exist (404 `not_found`); the port must
//!   be one the workspace listens on right now (404 `port_not_listening`,
//!   so the forwarder never reaches a port of the agent, another workspace
//!   or anything else on the node); a refused connection is a 502
//!   `port_unreachable`.
//!
//! A plain `GET`/`HEAD` carrying `?port_token=` is answered with a 303 to
//! the same URL without it, setting the port's cookie when the ticket was
//! redeemed. Its `Location` is relative, like the workspace cookie's
//! exchange ([`crate::access`]): the browser sees
//! `ws-<id>--<port>.<domain>/<path>` while the agent sees
//! `/workspaces/<ID>/ports/<port>/<path>`, so `./<last segment>` lands on
//! the same URL for both, and an empty path (the browser's `/`) is `./`.

mod access;
mod detect;
mod forward;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde::Serialize;

use self::access::{Via, authorize_port, port_cookie};
use self::detect::{Listener, detect};
use crate::access::{authorize_workspace, see_other, split_param};
use crate::server::{ApiError, AppState};
use crate::workspaces::WorkspaceStatus;

/// The query parameter a port-access ticket comes in.
const TICKET_PARAM: &str = "port_token";

/// The port routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/workspaces/{id}/ports", get(list))
        .route("/workspaces/{id}/ports/{port}", any(forward_route))
        .route("/workspaces/{id}/ports/{port}/", any(forward_route))
        .route("/workspaces/{id}/ports/{port}/{*path}", any(forward_route))
}

#[derive(Serialize)]
struct PortList {
    ports: Vec<Listener>,
}

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such workspace")
}

async fn list(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<PortList>, ApiError> {
    let raw_id = path.map(|Path(raw)| raw).unwrap_or_default();
    let id = authorize_workspace(&state, &headers, &raw_id).await?;
    Ok(Json(PortList {
        ports: listeners(&state, &id).await?,
    }))
}

/// How long a scan of a workspace's listeners is reused by the forwarder.
const SCAN_REUSE: Duration = Duration::from_secs(2);
/// How long a scan is reused even to say no: a client walking the port
/// numbers (anyone may, while ports are public) gets at most a few scans a
/// second per workspace.
const MIN_RESCAN: Duration = Duration::from_millis(250);
/// Scans running at once, over all workspaces.
const MAX_CONCURRENT_SCANS: usize = 2;

/// The last scan of each workspace's listeners. One page of a dev server
/// is dozens of requests, and a scan reads every process's file
/// descriptors, so the forwarder reuses a scan for [`SCAN_REUSE`] — but
/// only to say yes: a port missing from it is scanned for again at once,
/// so a server that just started is reachable immediately. (One that just
/// stopped is, for at most that long, a 502 instead of a 404.) Scans are
/// bounded: none more often than [`MIN_RESCAN`] per workspace for the
/// forwarder, at most [`MAX_CONCURRENT_SCANS`] at once. The port listing
/// always scans afresh and refreshes the cache.
pub(crate) struct RecentScans {
    by_workspace: Mutex<HashMap<String, (Instant, Vec<Listener>)>>,
    running: tokio::sync::Semaphore,
}

impl Default for RecentScans {
    fn default() -> Self {
        Self {
            by_workspace: Mutex::default(),
            running: tokio::sync::Semaphore::new(MAX_CONCURRENT_SCANS),
        }
    }
}

impl RecentScans {
    /// The addresses of `port` from a recent enough scan, if there is one:
    /// a scan says yes for [`SCAN_REUSE`], and no for [`MIN_RESCAN`].
    fn reuse(&self, id: &str, port: u16) -> Option<Vec<IpAddr>> {
        let scans = self
            .by_workspace
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (at, listeners) = scans.get(id)?;
        let age = at.elapsed();
        let addresses = addresses_on(listeners, port);
        let usable = age <= MIN_RESCAN || (age <= SCAN_REUSE && !addresses.is_empty());
        usable.then_some(addresses)
    }

    fn store(&self, id: &str, listeners: &[Listener]) {
        let mut scans = self
            .by_workspace
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Stale entries of deleted workspaces go whenever a scan is stored.
        scans.retain(|_, (at, _)| at.elapsed() <= SCAN_REUSE);
        scans.insert(id.to_owned(), (Instant::now(), listeners.to_vec()));
    }
}

fn addresses_on(listeners: &[Listener], port: u16) -> Vec<IpAddr> {
    listeners
        .iter()
        .filter(|listener| listener.port == port)
        .map(|listener| listener.address)
        .collect()
}

/// What the workspace `id` listens on now; 404 for a workspace the
/// registry does not know (or is deleting).
async fn listeners(state: &AppState, id: &str) -> Result<Vec<Listener>, ApiError> {
    let info = state
        .workspaces
        .get(id)
        .await
        .filter(|info| info.view.status != WorkspaceStatus::Deleting)
        .ok_or_else(not_found)?;
    let shells = state.terminals.shell_pids(id);
    let proc_dir = state.proc_dir.clone();
    // The semaphore is never closed; a failure would only mean no limit.
    let _permit = state.recent_scans.running.acquire().await.ok();
    let scanned = tokio::task::spawn_blocking(move || detect(&proc_dir, &info.dir, &shells))
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "port detection failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "port detection failed",
            )
        })?;
    state.recent_scans.store(id, &scanned);
    Ok(scanned)
}

/// A request path under `/workspaces/{id}/ports/{port}`, split (still
/// percent-encoded, as it came).
#[derive(Debug, PartialEq, Eq)]
struct PortPath<'a> {
    raw_id: &'a str,
    raw_port: &'a str,
    /// Empty or `/…`.
    rest: &'a str,
}

impl<'a> PortPath<'a> {
    fn parse(path: &'a str) -> Option<Self> {
        let rest = path.strip_prefix("/workspaces/")?;
        let (raw_id, rest) = rest.split_once('/')?;
        let rest = rest.strip_prefix("ports/")?;
        let (raw_port, rest) = rest
            .find('/')
            .map_or((rest, ""), |slash| rest.split_at(slash));
        Some(Self {
            raw_id,
            raw_port,
            rest,
        })
    }

    /// The path the app sees: `/` for an empty one.
    fn app_path(&self) -> &'a str {
        if self.rest.is_empty() { "/" } else { self.rest }
    }

    /// The relative `Location` of the same URL with `query` (see the
    /// module documentation).
    fn location(&self, query: &str) -> String {
        let last = self.app_path().rsplit('/').next().unwrap_or_default();
        if query.is_empty() {
            format!("./{last}")
        } else {
            format!("./{last}?{query}")
        }
    }
}

/// A port in plain decimal, 1..=65535 (no sign, no leading zero: a port
/// has one spelling, and so one cookie).
fn parse_port(raw: &str) -> Option<u16> {
    if raw.is_empty() || raw.starts_with('0') || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

async fn forward_route(State(state): State<AppState>, request: Request) -> Response {
    forward_request(&state, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn forward_request(state: &AppState, request: Request) -> Result<Response, ApiError> {
    let uri = request.uri().clone();
    let target = PortPath::parse(uri.path()).ok_or_else(not_found)?;
    let port = parse_port(target.raw_port).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_port",
            "the port must be a number from 1 to 65535",
        )
    })?;
    let query = uri.query().unwrap_or_default();
    let (ticket, kept_query) = match split_param(query, TICKET_PARAM) {
        Some((ticket, kept)) => (Some(ticket), kept),
        None => (None, query.to_owned()),
    };
    let headers = request.headers();
    let plain = (request.method() == Method::GET || request.method() == Method::HEAD)
        && !headers.contains_key(header::UPGRADE);

    let (id, via) = authorize_port(state, headers, ticket.as_deref(), target.raw_id, port).await?;
    if ticket.is_some() && plain {
        // A cookie only for a workspace that exists.
        state
            .workspaces
            .get(&id)
            .await
            .filter(|info| info.view.status != WorkspaceStatus::Deleting)
            .ok_or_else(not_found)?;
        let cookie = match via {
            Via::Ticket => {
                tracing::info!(workspace = %id, port, "port ticket exchanged for a cookie");
                Some(port_cookie(state, headers, &id, port)?)
            }
            Via::Header | Via::Cookie => None,
        };
        return Ok(see_other(&target.location(&kept_query), cookie));
    }

    let addresses = match state.recent_scans.reuse(&id, port) {
        Some(addresses) => addresses,
        None => addresses_on(&listeners(state, &id).await?, port),
    };
    if addresses.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "port_not_listening",
            "nothing of the workspace listens on this port",
        ));
    }
    let targets = forward::connect_targets(port, &addresses);
    let path_and_query = if kept_query.is_empty() {
        target.app_path().to_owned()
    } else {
        format!("{}?{kept_query}", target.app_path())
    };
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    Ok(forward::forward(request, port, &targets, &path_and_query, peer).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WS: &str = "01JAB3C4D5E6F7G8H9J0K1M2N3";

    #[test]
    fn ports_have_one_decimal_spelling() {
        assert_eq!(parse_port("1"), Some(1));
        assert_eq!(parse_port("3000"), Some(3000));
        assert_eq!(parse_port("65535"), Some(65535));
        for bad in [
            "", "0", "03000", "+3000", "65536", "70000", "3e3", "abc", "-1",
        ] {
            assert_eq!(parse_port(bad), None, "{bad}");
        }
    }

    #[test]
    fn port_paths_split_into_workspace_port_and_the_app_s_path() {
        let p = PortPath::parse("/workspaces/01jab/ports/3000/a/b%20c?x").unwrap();
        assert_eq!(
            p,
            PortPath {
                raw_id: "01jab",
                raw_port: "3000",
                rest: "/a/b%20c?x",
            }
        );
        let bare = PortPath::parse("/workspaces/01jab/ports/3000").unwrap();
        assert_eq!((bare.rest, bare.app_path()), ("", "/"));
        let slash = PortPath::parse("/workspaces/01jab/ports/3000/").unwrap();
        assert_eq!((slash.rest, slash.app_path()), ("/", "/"));
        assert_eq!(PortPath::parse("/workspaces/01jab/terminals/x"), None);
        assert_eq!(PortPath::parse("/workspaces/01jab"), None);
    }

    #[test]
    fn the_exchange_redirects_relative_to_the_last_segment() {
        fn at(path: &str) -> PortPath<'_> {
            PortPath::parse(path).unwrap()
        }
        let prefix = format!("/workspaces/{WS}/ports/3000");
        assert_eq!(at(&format!("{prefix}/")).location(""), "./");
        assert_eq!(at(&prefix).location("a=1"), "./?a=1");
        assert_eq!(
            at(&format!("{prefix}/dir/page.html")).location("a=1&b=%20"),
            "./page.html?a=1&b=%20"
        );
        assert_eq!(at(&format!("{prefix}/dir/")).location(""), "./");

        // Relative to the browser's URL and to the agent's, the same place.
        for (agent, browser) in [
            (format!("{prefix}/dir/page.html"), "/dir/page.html"),
            (format!("{prefix}/"), "/"),
            (format!("{prefix}/dir/"), "/dir/"),
        ] {
            let location = at(&agent).location("a=1");
            let on_agent = url::Url::parse(&format!("http://agent{agent}?port_token=T"))
                .unwrap()
                .join(&location)
                .unwrap();
            assert_eq!(on_agent.path(), agent);
            let on_browser = url::Url::parse(&format!(
                "https://ws-x--3000.example.com{browser}?port_token=T"
            ))
            .unwrap()
            .join(&location)
            .unwrap();
            assert_eq!(on_browser.path(), browser);
            assert_eq!(on_browser.query(), Some("a=1"));
        }
    }
}
