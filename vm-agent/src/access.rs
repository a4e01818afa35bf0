//! Who may use a workspace's routes (`/workspaces/{id}/…`).
//!
//! Three kinds of credential open a workspace (`docs/workspaces.md`):
//!
//! - a node-management bearer token scoped to this node: the control plane;
//! - the workspace cookie `sam_ws`: an opaque 256-bit random session id the
//!   agent hands out in exchange for a terminal ticket, held in memory only
//!   (id → workspace, node, expiry; at most [`SESSION_TTL`]), and keyed by
//!   its SHA-256 so the table never holds a usable cookie;
//! - a `terminal` ticket (`?token=`), a short-lived JWT from the control
//!   plane scoped to this node and one workspace. Tickets are single use:
//!   a redeemed ticket is remembered until it could no longer verify, and
//!   its replay is a 401 `token_replayed`. A ticket is redeemed
//!   - by `GET /workspaces/{id}/session?token=` → 204 + `Set-Cookie` (for the
//!     app's `fetch` with credentials; CORS allows [`Config::app_origin`]
//!     only, and the preflight is answered),
//!   - by any other plain `GET`/`HEAD` under `/workspaces/{id}` carrying
//!     `?token=` → 303 to the same URL without the token, setting the
//!     cookie ([`exchange_ticket`], a middleware over the whole router),
//!   - or directly by a WebSocket upgrade ([`authorize_workspace_upgrade`]).
//!
//! `/workspaces/{id}/ports/…` is left alone: forwarded apps may use a
//! `token` parameter of their own, and ports have their own tickets and
//! cookies ([`crate::ports`]), which share the tables kept here: port
//! sessions are [`Session`]s with a `port`, and port tickets go into the
//! same redeemed-ticket table.
//!
//! A credential for another node or workspace is a 403
//! `token_scope_mismatch`; a bad, expired or replayed one a 401 with its
//! code. A cookie only ever opens the workspace it was issued for, and a
//! cookie-authenticated request that carries an `Origin` must come from the
//! app or from the workspace's own `ws-<id>.` host (not from a forwarded
//! port's `ws-<id>--<port>.`, which serves user content), so another site
//! on the same domain cannot use the cookie behind the user's back.
//!
//! The 303's `Location` is relative (`./<last segment>?<other params>`): the
//! browser sees `ws-<id>.<domain>/<path>` while the agent sees
//! `/workspaces/<ID>/<path>`, and a reference relative to the last segment
//! resolves to the right URL on both.
//!
//! Every check happens before the workspace id is used for anything, and a
//! malformed id is simply not found.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sam_auth::Audience;
use sha2::{Digest as _, Sha256};

use crate::config::Config;
use crate::jwks::VerifyError;
use crate::server::{ApiError, AppState, authorize};

/// The workspace cookie's name.
pub(crate) const COOKIE_NAME: &str = "sam_ws";
/// How long a workspace cookie (and its session) lasts.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Live sessions kept at most; past that, the one closest to expiry goes.
const MAX_SESSIONS: usize = 4096;
/// Redeemed tickets remembered at most. Tickets live ≤ 60 s, so this is far
/// beyond any real rate; when full of live ones, new tickets are refused
/// rather than an old one forgotten (which would allow its replay).
const MAX_REDEEMED_TICKETS: usize = 65_536;
/// `sam_auth` accepts a token this long past its expiry (clock skew), so a
/// redeemed ticket is remembered at least that much longer.
const TICKET_LEEWAY_MS: i64 = 30_000;
/// The query parameter carrying a ticket.
const TICKET_PARAM: &str = "token";

/// A workspace session: what a `sam_ws` cookie stands for, or with a
/// `port`, what a `sam_port_<port>` cookie stands for. Neither kind opens
/// what the other does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    pub(crate) workspace: String,
    pub(crate) node: String,
    /// The forwarded port of a port session; `None` for `sam_ws`.
    pub(crate) port: Option<u16>,
    pub(crate) expires_at_ms: i64,
}

/// Workspace sessions and redeemed tickets, in memory. Both tables are keyed
/// by SHA-256 digests and bounded.
#[derive(Default)]
pub struct WorkspaceSessions {
    inner: Mutex<Tables>,
}

#[derive(Default)]
struct Tables {
    /// SHA-256 of the cookie value → session.
    sessions: HashMap<[u8; 32], Session>,
    /// SHA-256 of a redeemed ticket → when it may be forgotten.
    redeemed: HashMap<[u8; 32], i64>,
}

/// Why a ticket could not be redeemed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RedeemError {
    Replayed,
    Full,
}

impl WorkspaceSessions {
    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a session for `workspace`; returns the cookie value (64 hex
    /// digits of fresh randomness) and the session.
    pub(crate) fn open(&self, workspace: &str, node: &str, now_ms: i64) -> (String, Session) {
        self.open_session(workspace, node, None, now_ms)
    }

    /// Opens a session for forwarded `port` of `workspace` (a
    /// `sam_port_<port>` cookie), like [`Self::open`].
    pub(crate) fn open_port(
        &self,
        workspace: &str,
        node: &str,
        port: u16,
        now_ms: i64,
    ) -> (String, Session) {
        self.open_session(workspace, node, Some(port), now_ms)
    }

    fn open_session(
        &self,
        workspace: &str,
        node: &str,
        port: Option<u16>,
        now_ms: i64,
    ) -> (String, Session) {
        let value = hex::encode(rand::random::<[u8; 32]>());
        let ttl_ms = i64::try_from(SESSION_TTL.as_millis()).unwrap_or(i64::MAX);
        let session = Session {
            workspace: workspace.to_owned(),
            node: node.to_owned(),
            port,
            expires_at_ms: now_ms.saturating_add(ttl_ms),
        };
        let mut tables = self.tables();
        if tables.sessions.len() >= MAX_SESSIONS {
            tables.sessions.retain(|_, s| s.expires_at_ms > now_ms);
        }
        if tables.sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = tables
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.expires_at_ms)
                .map(|(key, _)| *key)
        {
            tables.sessions.remove(&oldest);
        }
        tables.sessions.insert(digest(&value), session.clone());
        (value, session)
    }

    /// The live session a cookie value stands for.
    pub(crate) fn lookup(&self, value: &str, now_ms: i64) -> Option<Session> {
        let key = digest(value);
        let mut tables = self.tables();
        match tables.sessions.get(&key) {
            Some(session) if session.expires_at_ms > now_ms => Some(session.clone()),
            Some(_) => {
                tables.sessions.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends every session of `workspace`, port sessions included (the
    /// management route's delete does, so a cookie never outlives its
    /// workspace).
    pub(crate) fn revoke_workspace(&self, workspace: &str) {
        self.tables()
            .sessions
            .retain(|_, session| session.workspace != workspace);
    }

    /// Ends the port sessions of `workspace` (stop, restart and rebuild
    /// end the apps behind them; a later app on the same port is another
    /// app and needs a new ticket).
    pub(crate) fn revoke_ports(&self, workspace: &str) {
        self.tables()
            .sessions
            .retain(|_, session| session.workspace != workspace || session.port.is_none());
    }

    /// How many sessions are held (live or not yet evicted).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.tables().sessions.len()
    }

    /// Records `ticket` (valid until `expires_at_ms`) as redeemed, unless it
    /// already was.
    pub(crate) fn redeem(
        &self,
        ticket: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> Result<(), RedeemError> {
        let key = digest(ticket);
        let mut tables = self.tables();
        if tables.redeemed.contains_key(&key) {
            return Err(RedeemError::Replayed);
        }
        if tables.redeemed.len() >= MAX_REDEEMED_TICKETS {
            tables.redeemed.retain(|_, forget_at| *forget_at > now_ms);
        }
        if tables.redeemed.len() >= MAX_REDEEMED_TICKETS {
            return Err(RedeemError::Full);
        }
        tables
            .redeemed
            .insert(key, expires_at_ms.saturating_add(TICKET_LEEWAY_MS));
        Ok(())
    }
}

fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// The wall clock in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// A workspace id as it arrives in a path or a host name: a ULID in any
/// case. Returns it normalised (upper case), or `None`.
pub(crate) fn workspace_id(raw: &str) -> Option<String> {
    let upper = raw.to_ascii_uppercase();
    (upper.len() == 26 && ulid::Ulid::from_string(&upper).is_ok()).then_some(upper)
}

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such workspace")
}

pub(crate) fn known_workspace(raw_id: &str) -> Result<String, ApiError> {
    workspace_id(raw_id).ok_or_else(not_found)
}

/// Authorises a request for workspace `raw_id` by management bearer or
/// workspace cookie; returns the normalised id. (Tickets in `?token=` are
/// exchanged by [`exchange_ticket`] before a plain request gets here.)
pub(crate) async fn authorize_workspace(
    state: &AppState,
    headers: &HeaderMap,
    raw_id: &str,
) -> Result<String, ApiError> {
    check(state, headers, None, raw_id).await
}

/// Authorises a WebSocket upgrade for workspace `raw_id`: like
/// [`authorize_workspace`], and a terminal ticket in the raw query string
/// (`token=`) is accepted (and redeemed) directly.
pub(crate) async fn authorize_workspace_upgrade(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    raw_id: &str,
) -> Result<String, ApiError> {
    let ticket = query.and_then(split_ticket).map(|(ticket, _)| ticket);
    check(state, headers, ticket.as_deref(), raw_id).await
}

/// Bearer first (if the request has an `Authorization` header at all), then
/// a ticket if given, then the cookie. A credential that fails is not
/// followed by a weaker one.
async fn check(
    state: &AppState,
    headers: &HeaderMap,
    ticket: Option<&str>,
    raw_id: &str,
) -> Result<String, ApiError> {
    if headers.contains_key(header::AUTHORIZATION) {
        authorize(state, headers).await?;
        return known_workspace(raw_id);
    }
    if let Some(ticket) = ticket {
        return redeem_ticket(state, ticket, raw_id).await;
    }
    let values = cookie_values(headers, COOKIE_NAME);
    if values.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "token_missing",
            "a bearer token, the workspace cookie or a terminal ticket is required",
        ));
    }
    let now = now_ms();
    let sessions: Vec<Session> = values
        .iter()
        .filter_map(|value| state.workspace_sessions.lookup(value, now))
        .filter(|session| session.node == state.config.node_id && session.port.is_none())
        .collect();
    if sessions.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "session_invalid",
            "the workspace session is unknown or has expired",
        ));
    }
    let id = known_workspace(raw_id)?;
    if !sessions.iter().any(|session| session.workspace == id) {
        tracing::info!(workspace = %id, "refused a workspace cookie for another workspace");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "token_scope_mismatch",
            "the workspace cookie is for a different workspace",
        ));
    }
    if !origin_allowed(&state.config, headers, &id) {
        tracing::info!(workspace = %id, "refused a cookie-authenticated request from a foreign origin");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "requests with the workspace cookie must come from the app or the workspace",
        ));
    }
    Ok(id)
}

/// Verifies and redeems a terminal ticket for workspace `raw_id`; returns
/// the normalised id.
async fn redeem_ticket(state: &AppState, ticket: &str, raw_id: &str) -> Result<String, ApiError> {
    let now = now_ms();
    let claims = state
        .keys
        .verify(ticket, Audience::Terminal, now)
        .await
        .map_err(|err| verify_error(&err))?;
    let id = known_workspace(raw_id)?;
    if claims.node != state.config.node_id {
        tracing::info!(token_node = %claims.node, "refused a ticket scoped to another node");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "token_scope_mismatch",
            "ticket is scoped to a different node",
        ));
    }
    if claims
        .workspace
        .as_deref()
        .and_then(workspace_id)
        .as_deref()
        != Some(id.as_str())
    {
        tracing::info!(workspace = %id, "refused a ticket scoped to another workspace");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "token_scope_mismatch",
            "ticket is scoped to a different workspace",
        ));
    }
    redeem_once(state, ticket, claims.expires_at_ms, now, &id)?;
    Ok(id)
}

/// Records a verified ticket of workspace `id` as redeemed: 401
/// `token_replayed` if it was already.
pub(crate) fn redeem_once(
    state: &AppState,
    ticket: &str,
    expires_at_ms: i64,
    now: i64,
    id: &str,
) -> Result<(), ApiError> {
    match state.workspace_sessions.redeem(ticket, expires_at_ms, now) {
        Ok(()) => Ok(()),
        Err(RedeemError::Replayed) => {
            tracing::warn!(workspace = %id, "refused a replayed ticket");
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "token_replayed",
                "ticket has already been used",
            ))
        }
        Err(RedeemError::Full) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_tickets",
            "too many tickets redeemed recently; try again shortly",
        )),
    }
}

/// A token that did not verify: 401 with its code, or 503 without keys.
pub(crate) fn verify_error(err: &VerifyError) -> ApiError {
    match err {
        VerifyError::Token(err) => {
            tracing::info!(code = err.code(), "refused a ticket or token");
            ApiError::new(StatusCode::UNAUTHORIZED, err.code(), &err.to_string())
        }
        VerifyError::KeysUnavailable => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "jwks_unavailable",
            &err.to_string(),
        ),
    }
}

/// Every value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().trim_matches('"').to_owned())
        .filter(|value| !value.is_empty())
        .collect()
}

/// Whether a cookie-authenticated request may come from its `Origin`: none
/// (not a browser, or a same-origin navigation), the app, or the
/// workspace's own host.
fn origin_allowed(config: &Config, headers: &HeaderMap, workspace: &str) -> bool {
    let label = format!("ws-{}", workspace.to_ascii_lowercase());
    origin_matches(config, headers, |first| first == label)
}

/// Whether a request's `Origin` is none, the app, or a host of the
/// Worker's domain (same scheme and port as the app) whose first label,
/// lower case, satisfies `label_ok`. Without an app origin the domain is
/// unknown, and only the first label is checked.
pub(crate) fn origin_matches(
    config: &Config,
    headers: &HeaderMap,
    label_ok: impl Fn(&str) -> bool,
) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if config.app_origin.as_deref() == Some(origin) {
        return true;
    }
    let Ok(url) = url::Url::parse(origin) else {
        return false;
    };
    let Some(host) = url.host_str() else {
        return false;
    };
    match config.app_origin.as_deref().map(url::Url::parse) {
        // The Worker's hosts: `app.<domain>` and `ws-<id>….<domain>`, same
        // scheme and port.
        Some(Ok(app)) => {
            let domain = app
                .host_str()
                .and_then(|host| host.split_once('.'))
                .map(|(_, domain)| domain);
            domain
                .and_then(|domain| host.strip_suffix(domain)?.strip_suffix('.'))
                .is_some_and(|first| !first.contains('.') && label_ok(first))
                && url.scheme() == app.scheme()
                && url.port_or_known_default() == app.port_or_known_default()
        }
        // Without an app origin the domain is unknown: only the first
        // label can be checked.
        _ => host
            .split('.')
            .next()
            .is_some_and(|first| label_ok(&first.to_ascii_lowercase())),
    }
}

/// Splits a raw query string into its first ticket (decoded) and the other
/// parameters, verbatim. `None` when it has no ticket.
fn split_ticket(query: &str) -> Option<(String, String)> {
    split_param(query, TICKET_PARAM)
}

/// Splits a raw query string into the first value (decoded) of parameter
/// `name` and the other parameters, verbatim; every `name` goes. `None`
/// when it has no `name`.
pub(crate) fn split_param(query: &str, name: &str) -> Option<(String, String)> {
    let mut ticket = None;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let key = pair.split_once('=').map_or(pair, |(key, _)| key);
        if key == name {
            if ticket.is_none() {
                ticket = Some(
                    url::form_urlencoded::parse(pair.as_bytes())
                        .next()
                        .map(|(_, value)| value.into_owned())
                        .unwrap_or_default(),
                );
            }
        } else if !pair.is_empty() {
            kept.push(pair);
        }
    }
    ticket.map(|ticket| (ticket, kept.join("&")))
}

/// A plain request carrying a ticket, to be answered with a 303.
#[derive(Debug, PartialEq, Eq)]
struct Exchange {
    raw_id: String,
    ticket: String,
    location: String,
}

impl Exchange {
    fn of(method: &Method, uri: &axum::http::Uri, headers: &HeaderMap) -> Option<Self> {
        if !(method == Method::GET || method == Method::HEAD)
            || headers.contains_key(header::UPGRADE)
        {
            return None;
        }
        let path = uri.path();
        let rest = path.strip_prefix("/workspaces/")?;
        let (raw_id, tail) = rest.split_once('/').unwrap_or((rest, ""));
        if raw_id.is_empty() || matches!(tail.split('/').next(), Some("session" | "ports")) {
            return None;
        }
        let (ticket, kept) = split_ticket(uri.query()?)?;
        let last = path.rsplit('/').next().unwrap_or_default();
        let location = if kept.is_empty() {
            format!("./{last}")
        } else {
            format!("./{last}?{kept}")
        };
        Some(Self {
            raw_id: raw_id.to_owned(),
            ticket,
            location,
        })
    }
}

/// Middleware over the whole router: a plain `GET`/`HEAD` under
/// `/workspaces/{id}` with `?token=` redeems the ticket and answers 303 to
/// the same URL without it, setting the workspace cookie.
pub(crate) async fn exchange_ticket(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(exchange) = Exchange::of(request.method(), request.uri(), request.headers()) else {
        return next.run(request).await;
    };
    let headers = request.headers();
    match redeem_ticket(&state, &exchange.ticket, &exchange.raw_id).await {
        Ok(id) => match session_cookie(&state, headers, &id) {
            Ok(cookie) => see_other(&exchange.location, Some(cookie)),
            Err(err) => err.into_response(),
        },
        // A stale ticket left in a URL does no harm to a browser that
        // already holds a good cookie for the workspace.
        Err(err) => match authorize_workspace(&state, headers, &exchange.raw_id).await {
            Ok(_) => see_other(&exchange.location, None),
            Err(_) => err.into_response(),
        },
    }
}

/// A 303 to `location`, optionally setting a cookie; never cached, and
/// without a referrer (the URL it came from held a ticket).
pub(crate) fn see_other(location: &str, cookie: Option<HeaderValue>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, location);
    }
    if let Some(cookie) = cookie {
        headers.insert(header::SET_COOKIE, cookie);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Opens a session for workspace `id` and returns its `Set-Cookie` value.
fn session_cookie(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<HeaderValue, ApiError> {
    let (value, _) = state
        .workspace_sessions
        .open(id, &state.config.node_id, now_ms());
    session_set_cookie(&state.config, headers, COOKIE_NAME, &value)
}

/// The `Set-Cookie` value of a session cookie `name` = `value`: HttpOnly,
/// SameSite=Lax, the whole host, as long as a session lasts, and Secure
/// when configured or when the browser came over https.
pub(crate) fn session_set_cookie(
    config: &Config,
    headers: &HeaderMap,
    name: &str,
    value: &str,
) -> Result<HeaderValue, ApiError> {
    let secure = config.secure_cookies || forwarded_https(headers);
    let cookie = format!(
        "{name}={value}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{}",
        SESSION_TTL.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&cookie).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "cannot build the session cookie",
        )
    })
}

/// Whether the Worker says the browser's request came over https.
fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// The access routes: the ticket → cookie exchange for `fetch`.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route(
        "/workspaces/{id}/session",
        get(session).options(session_preflight),
    )
}

/// `GET /workspaces/{id}/session?token=`: 204 + the cookie.
async fn session(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let ticket = query
        .as_deref()
        .and_then(split_ticket)
        .map(|(ticket, _)| ticket);
    let outcome = match ticket.filter(|ticket| !ticket.is_empty()) {
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "token_missing",
            "a terminal ticket (?token=) is required",
        )),
        Some(ticket) => match redeem_ticket(&state, &ticket, &raw_id).await {
            Ok(id) => session_cookie(&state, &headers, &id),
            Err(err) => Err(err),
        },
    };
    let mut response = match outcome {
        Ok(cookie) => (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response(),
        Err(err) => err.into_response(),
    };
    let out = response.headers_mut();
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    cors(&state.config, &headers, out);
    response
}

/// The CORS preflight of `/session`.
async fn session_preflight(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let out = response.headers_mut();
    if cors(&state.config, &headers, out) {
        out.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET"),
        );
        out.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
    response
}

/// CORS for the app's pages on the workspace routes (the workspace page
/// `fetch`es terminals, files and git from `ws-<id>.` with credentials):
/// exactly the app's origin may read the answers, and its preflights are
/// answered here. Not for `/session` (its own handlers) nor `/ports/…`,
/// whose answers belong to the forwarded app. Whether a cookie may be used
/// at all is still decided by the routes' own origin check.
pub(crate) async fn app_cors(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let mut segments = request.uri().path().split('/').skip(1);
    let applies = segments.next() == Some("workspaces")
        && segments.next().is_some_and(|id| !id.is_empty())
        && match segments.next() {
            None | Some("session") => false,
            // The list of ports is the page's; what is under a port is
            // the forwarded app's.
            Some("ports") => segments.next().is_none(),
            Some(_) => true,
        };
    if !applies {
        return next.run(request).await;
    }
    let origin = request.headers().get(header::ORIGIN).cloned();
    let mut asked = HeaderMap::new();
    if let Some(origin) = origin {
        asked.insert(header::ORIGIN, origin);
    }
    if request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let out = response.headers_mut();
        if cors(&state.config, &asked, out) {
            out.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, PATCH, DELETE"),
            );
            out.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("content-type"),
            );
            out.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
        return response;
    }
    let mut response = next.run(request).await;
    cors(&state.config, &asked, response.headers_mut());
    response
}

/// Adds the CORS headers when the request's `Origin` is exactly the app's;
/// returns whether it was.
fn cors(config: &Config, request: &HeaderMap, out: &mut HeaderMap) -> bool {
    out.append(header::VARY, HeaderValue::from_static("Origin"));
    let Some(app) = config.app_origin.as_deref() else {
        return false;
    };
    let Some(origin) = request.get(header::ORIGIN).filter(|origin| *origin == app) else {
        return false;
    };
    out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    out.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    true
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};

    use super::*;

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

    const WS: &str = "01JAB3C4D5E6F7G8H9J0K1M2N3";
    const HOUR_MS: i64 = 3600 * 1000;

    #[test]
    fn sessions_last_eight_hours_and_are_found_only_by_their_value() {
        let sessions = WorkspaceSessions::default();
        let (value, session) = sessions.open(WS, "node", 1_000);
        assert_eq!(value.len(), 64);
        assert!(value.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(session.expires_at_ms, 1_000 + 8 * HOUR_MS);
        assert_eq!(sessions.lookup(&value, 2_000), Some(session.clone()));
        assert_eq!(sessions.lookup(&value.to_uppercase(), 2_000), None);
        assert_eq!(sessions.lookup("", 2_000), None);

        // Two sessions never share a value.
        let (other, _) = sessions.open(WS, "node", 1_000);
        assert_ne!(value, other);

        // Expired: gone, and forgotten.
        assert_eq!(sessions.lookup(&value, session.expires_at_ms), None);
        assert_eq!(sessions.len(), 1);
    }

    #[test]
    fn sessions_are_bounded_expired_ones_going_first() {
        let sessions = WorkspaceSessions::default();
        let (old, _) = sessions.open(WS, "node", 0);
        for _ in 1..MAX_SESSIONS {
            sessions.open(WS, "node", 8 * HOUR_MS);
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        // The first has expired by now: it makes room.
        let (newest, _) = sessions.open(WS, "node", 8 * HOUR_MS + 1);
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert_eq!(sessions.lookup(&old, 1), None);
        assert!(sessions.lookup(&newest, 8 * HOUR_MS + 2).is_some());
        // All live: the one closest to expiry goes (one of those opened at
        // 8 h), not the newer ones.
        sessions.open(WS, "node", 8 * HOUR_MS + 3);
        assert_eq!(sessions.len(), MAX_SESSIONS);
        let opened_at_8h = sessions
            .tables()
            .sessions
            .values()
            .filter(|s| s.expires_at_ms == 16 * HOUR_MS)
            .count();
        assert_eq!(opened_at_8h, MAX_SESSIONS - 2);
        assert!(sessions.lookup(&newest, 8 * HOUR_MS + 4).is_some());
    }

    #[test]
    fn revoking_a_workspace_ends_its_sessions_only() {
        let sessions = WorkspaceSessions::default();
        let (a, _) = sessions.open(WS, "node", 0);
        let (b, _) = sessions.open("01JAB3C4D5E6F7G8H9J0K1M2N4", "node", 0);
        sessions.revoke_workspace(WS);
        assert_eq!(sessions.lookup(&a, 1), None);
        assert!(sessions.lookup(&b, 1).is_some());
    }

    #[test]
    fn port_sessions_are_bound_to_their_port_and_end_with_a_stop() {
        let sessions = WorkspaceSessions::default();
        let (ws, _) = sessions.open(WS, "node", 0);
        let (port, session) = sessions.open_port(WS, "node", 3000, 0);
        assert_eq!(session.port, Some(3000));
        assert_eq!(sessions.lookup(&ws, 1).unwrap().port, None);
        let (other, _) = sessions.open_port("01JAB3C4D5E6F7G8H9J0K1M2N4", "node", 3000, 0);
        // A stop ends the workspace's port sessions only.
        sessions.revoke_ports(WS);
        assert_eq!(sessions.lookup(&port, 1), None);
        assert!(sessions.lookup(&ws, 1).is_some());
        assert!(sessions.lookup(&other, 1).is_some());
        // A delete ends them all.
        let (port, _) = sessions.open_port(WS, "node", 3000, 0);
        sessions.revoke_workspace(WS);
        assert_eq!(sessions.lookup(&port, 1), None);
        assert_eq!(sessions.lookup(&ws, 1), None);
    }

    #[test]
    fn tickets_redeem_once_and_are_forgotten_after_they_could_verify() {
        let sessions = WorkspaceSessions::default();
        assert_eq!(sessions.redeem("t1", 60_000, 0), Ok(()));
        assert_eq!(
            sessions.redeem("t1", 60_000, 1_000),
            Err(RedeemError::Replayed)
        );
        assert_eq!(sessions.redeem("t2", 60_000, 1_000), Ok(()));
        let forget_at = sessions.tables().redeemed[&digest("t1")];
        assert_eq!(forget_at, 60_000 + TICKET_LEEWAY_MS);
    }

    #[test]
    fn redeemed_tickets_are_bounded_without_forgetting_live_ones() {
        let sessions = WorkspaceSessions::default();
        for n in 0..MAX_REDEEMED_TICKETS {
            assert_eq!(sessions.redeem(&format!("t{n}"), 60_000, 0), Ok(()));
        }
        // Full of tickets that could still verify: refuse, never forget.
        assert_eq!(
            sessions.redeem("new", 60_000, 1_000),
            Err(RedeemError::Full)
        );
        assert_eq!(
            sessions.redeem("t0", 60_000, 1_000),
            Err(RedeemError::Replayed)
        );
        // Once they could no longer verify, they make room.
        assert_eq!(
            sessions.redeem("new", 200_000, 60_000 + TICKET_LEEWAY_MS),
            Ok(())
        );
        assert_eq!(sessions.tables().redeemed.len(), 1);
    }

    #[test]
    fn cookies_are_read_from_every_cookie_header() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; sam_ws=abc ; other=x"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("sam_ws=\"def\""));
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("sam_ws=; sam_wsx=no"),
        );
        assert_eq!(cookie_values(&headers, COOKIE_NAME), ["abc", "def"]);
    }

    #[test]
    fn the_ticket_is_split_from_the_other_parameters_verbatim() {
        assert_eq!(
            split_ticket("token=a.b.c"),
            Some(("a.b.c".to_owned(), String::new()))
        );
        assert_eq!(
            split_ticket("x=1&token=a%2Eb&y=%20&token=second"),
            Some(("a.b".to_owned(), "x=1&y=%20".to_owned()))
        );
        assert_eq!(split_ticket("tokens=1&x=token"), None);
        assert_eq!(split_ticket("token"), Some((String::new(), String::new())));
    }

    fn exchange(method: &Method, uri: &str, upgrade: bool) -> Option<Exchange> {
        let mut headers = HeaderMap::new();
        if upgrade {
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        }
        Exchange::of(method, &uri.parse::<Uri>().unwrap(), &headers)
    }

    #[test]
    fn plain_gets_with_a_ticket_are_exchanged_with_a_relative_redirect() {
        let got = exchange(
            &Method::GET,
            "/workspaces/01jab3c4d5e6f7g8h9j0k1m2n3/files/a%20b/c.txt?token=T&raw=1",
            false,
        )
        .unwrap();
        assert_eq!(got.raw_id, "01jab3c4d5e6f7g8h9j0k1m2n3");
        assert_eq!(got.ticket, "T");
        assert_eq!(got.location, "./c.txt?raw=1");

        let dir = exchange(
            &Method::HEAD,
            &format!("/workspaces/{WS}/files/?token=T"),
            false,
        );
        assert_eq!(dir.unwrap().location, "./");
        let root = exchange(&Method::GET, &format!("/workspaces/{WS}?token=T"), false);
        assert_eq!(root.unwrap().location, format!("./{WS}"));

        // The relative reference lands on the same path, with the proxy's
        // host mapping or without it.
        for base in [
            format!("http://agent:8443/workspaces/{WS}/files/a%20b/c.txt?token=T&raw=1"),
            "https://ws-x.example.com/files/a%20b/c.txt?token=T&raw=1".to_owned(),
        ] {
            let base = url::Url::parse(&base).unwrap();
            let to = base.join("./c.txt?raw=1").unwrap();
            assert_eq!(to.path(), base.path());
            assert_eq!(to.query(), Some("raw=1"));
        }
    }

    #[test]
    fn upgrades_other_methods_sessions_ports_and_other_paths_are_not_exchanged() {
        for (method, uri, upgrade) in [
            (
                Method::GET,
                format!("/workspaces/{WS}/terminals/T/ws?token=T"),
                true,
            ),
            (
                Method::POST,
                format!("/workspaces/{WS}/terminals?token=T"),
                false,
            ),
            (
                Method::GET,
                format!("/workspaces/{WS}/session?token=T"),
                false,
            ),
            (
                Method::GET,
                format!("/workspaces/{WS}/ports/3000/?token=T"),
                false,
            ),
            (Method::GET, format!("/workspaces/{WS}/terminals"), false),
            (
                Method::GET,
                format!("/workspaces/{WS}/terminals?tokens=T"),
                false,
            ),
            (Method::GET, "/system-info?token=T".to_owned(), false),
            (Method::GET, "/workspaces/?token=T".to_owned(), false),
        ] {
            assert_eq!(exchange(&method, &uri, upgrade), None, "{method} {uri}");
        }
    }

    fn config(app_origin: Option<&str>) -> Config {
        let mut vars: HashMap<String, String> = [
            ("SAM_NODE_ID", "node"),
            ("SAM_CONTROL_PLANE_URL", "http://api.localhost:8787"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        if let Some(origin) = app_origin {
            vars.insert("SAM_APP_ORIGIN".to_owned(), origin.to_owned());
        }
        Config::from_env_map(&vars).unwrap()
    }

    fn with_origin(origin: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        }
        headers
    }

    #[test]
    fn cookie_requests_come_from_the_app_or_the_workspace_host_only() {
        let ws = "ws-01jab3c4d5e6f7g8h9j0k1m2n3";
        let with_app = config(Some("https://app.example.com"));
        for (origin, allowed) in [
            (None, true),
            (Some("https://app.example.com".to_owned()), true),
            (Some(format!("https://{ws}.example.com")), true),
            (
                Some(format!("https://{}.example.com", ws.to_uppercase())),
                true,
            ),
            (Some(format!("https://{ws}--3000.example.com")), false),
            (
                Some("https://ws-01jab3c4d5e6f7g8h9j0k1m2n4.example.com".to_owned()),
                false,
            ),
            (Some(format!("https://{ws}.evil.com")), false),
            (Some(format!("http://{ws}.example.com")), false),
            (Some(format!("https://{ws}.example.com:8443")), false),
            (Some("null".to_owned()), false),
        ] {
            let headers = with_origin(origin.as_deref());
            assert_eq!(
                origin_allowed(&with_app, &headers, WS),
                allowed,
                "{origin:?}"
            );
        }

        let local = config(Some("http://app.localhost:8787"));
        assert!(origin_allowed(
            &local,
            &with_origin(Some(&format!("http://{ws}.localhost:8787"))),
            WS
        ));

        let without_app = config(None);
        assert!(origin_allowed(
            &without_app,
            &with_origin(Some(&format!("https://{ws}.anything.test"))),
            WS
        ));
        assert!(!origin_allowed(
            &without_app,
            &with_origin(Some(&format!("https://{ws}--8080.anything.test"))),
            WS
        ));
    }

    #[test]
    fn cors_answers_the_configured_origin_only() {
        let cfg = config(Some("https://app.example.com"));
        let mut out = HeaderMap::new();
        assert!(cors(
            &cfg,
            &with_origin(Some("https://app.example.com")),
            &mut out
        ));
        assert_eq!(
            out[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );
        assert_eq!(out[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(out[header::VARY], "Origin");

        for origin in [Some("https://evil.example.com"), Some("null"), None] {
            let mut out = HeaderMap::new();
            assert!(!cors(&cfg, &with_origin(origin), &mut out));
            assert!(!out.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
        }
        let mut out = HeaderMap::new();
        assert!(!cors(
            &config(None),
            &with_origin(Some("https://app.example.com")),
            &mut out
        ));
    }

    #[test]
    fn https_is_read_from_the_forwarded_proto() {
        let mut headers = HeaderMap::new();
        assert!(!forwarded_https(&headers));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("HTTPS, http"));
        assert!(forwarded_https(&headers));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        assert!(!forwarded_https(&headers));
    }
}
