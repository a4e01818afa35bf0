//! The forwarder: one browser request to a workspace's app on a local
//! port, over a connection of its own (HTTP/1.1, hyper's client), with
//! both bodies streamed as they come.
//!
//! The request the app gets:
//!
//! - origin-form `/<path>?<query>` (the agent's prefix and `port_token`
//!   already gone, see [`super`]);
//! - no hop-by-hop headers (`Connection` and those it names, `Keep-Alive`,
//!   `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`, `Proxy-*`), except
//!   that an upgrade (WebSocket or any other) is asked for again with
//!   `Connection: upgrade` and the same `Upgrade`;
//! - `Host: localhost:<port>`, because dev servers (Vite, webpack, Next)
//!   refuse host names they do not know, with the browser's host in
//!   `X-Forwarded-Host` (the Worker's, else the request's `Host`),
//!   `X-Forwarded-Proto` (the Worker's, else `http`) and the peer appended
//!   to `X-Forwarded-For`;
//! - none of SAM's credentials: the `sam_ws` and every `sam_port_*` cookie
//!   are taken out of `Cookie` (the app's own cookies stay), and
//!   `X-Sam-Port-Access` is removed. `Authorization` belongs to the app
//!   and passes untouched.
//!
//! The answer goes back as it comes, minus hop-by-hop headers and any
//! `Set-Cookie` naming one of SAM's cookies (an app must not overwrite the
//! browser's session). A `101 Switching Protocols` to an upgrade joins the
//! browser's connection and the app's, byte for byte, until either side
//! closes.
//!
//! Connecting is bounded by [`CONNECT_TIMEOUT`]; nothing after it is (a dev
//! server may take long to compile a page, and a stream or a WebSocket may
//! last as long as it likes).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::uri::Authority;
use axum::http::{Extensions, StatusCode, Uri, Version};
use axum::response::Response;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::server::ApiError;

/// How long connecting to the app may take (per address tried).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The header the control plane's proxy vouches for a public port with.
pub(crate) const PORT_ACCESS_HEADER: &str = "x-sam-port-access";
/// The workspace cookie, never passed to an app.
const WORKSPACE_COOKIE: &str = crate::access::COOKIE_NAME;
/// Port cookies are `sam_port_<port>`.
pub(crate) const PORT_COOKIE_PREFIX: &str = "sam_port_";

/// Headers that concern one connection only (RFC 9110 §7.6.1, plus the
/// old `Keep-Alive` and `Proxy-Connection`).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Why a request could not reach the app.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ForwardError {
    #[error("nothing accepts connections on port {port}")]
    Unreachable {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("connecting to port {port} took too long")]
    Timeout { port: u16 },
    #[error("the app on port {port} did not answer")]
    Upstream {
        port: u16,
        #[source]
        source: hyper::Error,
    },
    #[error("the app on port {port} switched protocols without being asked to")]
    UnaskedUpgrade { port: u16 },
}

impl ForwardError {
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::Unreachable { .. } => "port_unreachable",
            Self::Timeout { .. } => "port_timeout",
            Self::Upstream { .. } | Self::UnaskedUpgrade { .. } => "port_bad_response",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

impl From<ForwardError> for ApiError {
    fn from(err: ForwardError) -> Self {
        tracing::info!(error = %err, "a forwarded request failed");
        ApiError::new(err.status(), err.code(), &err.to_string())
    }
}

/// Where to connect for a port listening on `addresses`, in order: a
/// wildcard address is reached over loopback (`0.0.0.0` at `127.0.0.1`;
/// `::` at `::1`, then `127.0.0.1` for a host without IPv6 loopback), an
/// IPv4-mapped one at its IPv4 address, any other at itself. IPv4
/// listeners come first.
pub(crate) fn connect_targets(port: u16, addresses: &[IpAddr]) -> Vec<SocketAddr> {
    let mut ordered: Vec<IpAddr> = addresses.to_vec();
    ordered.sort_by_key(IpAddr::is_ipv6);
    let mut targets: Vec<SocketAddr> = Vec::new();
    for address in ordered {
        // Only ever loopback: a listener "on" another host's address
        // (IP_FREEBIND needs no privilege) must not turn the forwarder
        // into a proxy to the cloud's metadata service or the network.
        let reach: &[IpAddr] = match address {
            IpAddr::V4(v4) if v4.is_unspecified() => &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
            IpAddr::V4(v4) if v4.is_loopback() => &[address],
            IpAddr::V6(v6) if v6.is_unspecified() => &[
                IpAddr::V6(Ipv6Addr::LOCALHOST),
                IpAddr::V4(Ipv4Addr::LOCALHOST),
            ],
            IpAddr::V6(v6) if v6.is_loopback() => &[address],
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if v4.is_unspecified() => &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
                Some(v4) if v4.is_loopback() => &[IpAddr::V4(v4)],
                _ => &[],
            },
            IpAddr::V4(_) => &[],
        };
        for ip in reach {
            let target = SocketAddr::new(*ip, port);
            if !targets.contains(&target) {
                targets.push(target);
            }
        }
    }
    targets
}

/// The tokens of every `Connection` header, lower case.
fn connection_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .filter(|token| !token.is_empty())
        .collect()
}

/// The protocol a request asks to switch to (`Upgrade`, announced in
/// `Connection`), if any. Only WebSocket: what browsers use, and any other
/// protocol would turn the joined connections into a raw tunnel.
pub(crate) fn requested_upgrade(headers: &HeaderMap) -> Option<HeaderValue> {
    let announced = connection_tokens(headers).iter().any(|t| t == "upgrade");
    headers
        .get(header::UPGRADE)
        .filter(|value| announced && value.as_bytes().eq_ignore_ascii_case(b"websocket"))
        .cloned()
}

/// Removes the hop-by-hop headers, those `Connection` names included.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    for token in connection_tokens(headers) {
        if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Whether a cookie name is one of SAM's own.
fn is_sam_cookie(name: &str) -> bool {
    name == WORKSPACE_COOKIE || name.starts_with(PORT_COOKIE_PREFIX)
}

/// The request's cookies without SAM's, as one `Cookie` value (`None`
/// when none is left).
pub(crate) fn app_cookies(headers: &HeaderMap) -> Option<HeaderValue> {
    let kept: Vec<&str> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .filter(|pair| !is_sam_cookie(pair.split_once('=').map_or(*pair, |(name, _)| name).trim()))
        .collect();
    if kept.is_empty() {
        return None;
    }
    HeaderValue::from_str(&kept.join("; ")).ok()
}

/// Turns the browser's request headers into the app's (see the module
/// documentation). `authority` is the request URI's, for HTTP/2 requests
/// that carry no `Host`; `peer` the client's address, if known. Returns
/// the upgrade asked for, if any.
pub(crate) fn rewrite_request_headers(
    headers: &mut HeaderMap,
    port: u16,
    authority: Option<&str>,
    peer: Option<IpAddr>,
) -> Option<HeaderValue> {
    let upgrade = requested_upgrade(headers);
    let original_host = headers
        .get(header::HOST)
        .cloned()
        .or_else(|| authority.and_then(|a| HeaderValue::from_str(a).ok()));
    let cookies = app_cookies(headers);
    remove_hop_by_hop(headers);
    headers.remove(PORT_ACCESS_HEADER);
    headers.remove(header::COOKIE);
    if let Some(cookies) = cookies {
        headers.insert(header::COOKIE, cookies);
    }
    if let Some(upgrade) = &upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade.clone());
    }

    if !headers.contains_key("x-forwarded-host")
        && let Some(host) = original_host
    {
        headers.insert("x-forwarded-host", host);
    }
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    }
    if let Some(peer) = peer {
        let earlier: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect();
        let chain = if earlier.is_empty() {
            peer.to_string()
        } else {
            format!("{}, {peer}", earlier.join(", "))
        };
        if let Ok(chain) = HeaderValue::from_str(&chain) {
            headers.insert("x-forwarded-for", chain);
        }
    }
    if let Ok(host) = HeaderValue::from_str(&format!("localhost:{port}")) {
        headers.insert(header::HOST, host);
    }
    upgrade
}

/// Cleans the app's answer headers (see the module documentation);
/// `upgrade` is the protocol of a 101 to an upgrade.
pub(crate) fn rewrite_response_headers(headers: &mut HeaderMap, upgrade: Option<HeaderValue>) {
    remove_hop_by_hop(headers);
    if let Some(upgrade) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade);
    }
    // A forwarded app shares the site with SAM's own hosts: it may not
    // clear their cookies, set cookies for its siblings (`Domain=`), or
    // set cookies with SAM's names.
    headers.remove("clear-site-data");
    let kept: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|value| {
            let text = String::from_utf8_lossy(value.as_bytes());
            let mut parts = text.split(';');
            let name = parts.next().unwrap_or_default();
            let name = name.split_once('=').map_or(name, |(name, _)| name);
            let for_siblings = parts.any(|attribute| {
                attribute
                    .trim()
                    .get(..6)
                    .is_some_and(|key| key.eq_ignore_ascii_case("domain"))
            });
            !is_sam_cookie(name.trim()) && !for_siblings
        })
        .cloned()
        .collect();
    headers.remove(header::SET_COOKIE);
    for value in kept {
        headers.append(header::SET_COOKIE, value);
    }
}

/// Connects to the first of `targets` that accepts.
async fn connect(port: u16, targets: &[SocketAddr]) -> Result<TcpStream, ForwardError> {
    let mut failure = ForwardError::Timeout { port };
    for target in targets {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
            Ok(Ok(stream)) => {
                // Small writes (keystrokes over a WebSocket, HMR pings)
                // should not wait for more.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(source)) => failure = ForwardError::Unreachable { port, source },
            Err(_) => failure = ForwardError::Timeout { port },
        }
    }
    Err(failure)
}

/// Forwards `request` to the app on `port` (reached at the first of
/// `targets` that accepts) as `path_and_query`; `peer` is the client's
/// address, if known.
pub(crate) async fn forward(
    mut request: Request,
    port: u16,
    targets: &[SocketAddr],
    path_and_query: &str,
    peer: Option<IpAddr>,
) -> Result<Response, ForwardError> {
    // The browser's side of an upgrade, taken before the request is
    // passed on (hyper hands it over once the 101 is sent).
    let browser_side: Option<OnUpgrade> = requested_upgrade(request.headers())
        .is_some()
        .then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    let upgrade = rewrite_request_headers(
        &mut parts.headers,
        port,
        parts.uri.authority().map(Authority::as_str),
        peer,
    );
    // Any path that arrived here parses again; `/` is the fallback only
    // for the impossible case.
    parts.uri = path_and_query
        .parse()
        .unwrap_or_else(|_| Uri::from_static("/"));
    parts.version = Version::HTTP_11;
    // Nothing of the agent's own request state goes along.
    parts.extensions = Extensions::new();

    let stream = connect(port, targets).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|source| ForwardError::Upstream { port, source })?;
    tokio::spawn(async move {
        if let Err(err) = connection.with_upgrades().await {
            tracing::debug!(port, error = %err, "a forwarded connection ended with an error");
        }
    });
    let mut response = sender
        .send_request(hyper::Request::from_parts(parts, body))
        .await
        .map_err(|source| ForwardError::Upstream { port, source })?;

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let (Some(browser_side), Some(_)) = (browser_side, &upgrade) else {
            return Err(ForwardError::UnaskedUpgrade { port });
        };
        let app_side = hyper::upgrade::on(&mut response);
        let protocol = response.headers().get(header::UPGRADE).cloned();
        tokio::spawn(join(port, browser_side, app_side));
        let (mut parts, _) = response.into_parts();
        rewrite_response_headers(&mut parts.headers, protocol.or(upgrade));
        parts.extensions = Extensions::new();
        return Ok(Response::from_parts(parts, Body::empty()));
    }
    let (mut parts, body) = response.into_parts();
    rewrite_response_headers(&mut parts.headers, None);
    parts.extensions = Extensions::new();
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// Joins the browser's and the app's upgraded connections until either
/// side closes.
async fn join(port: u16, browser_side: OnUpgrade, app_side: OnUpgrade) {
    let (browser, app) = match tokio::join!(browser_side, app_side) {
        (Ok(browser), Ok(app)) => (browser, app),
        (Err(err), _) | (_, Err(err)) => {
            tracing::debug!(port, error = %err, "an upgrade did not complete");
            return;
        }
    };
    let (mut browser, mut app) = (TokioIo::new(browser), TokioIo::new(app));
    if let Err(err) = tokio::io::copy_bidirectional(&mut browser, &mut app).await {
        tracing::debug!(port, error = %err, "an upgraded connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn all(map: &HeaderMap, name: &str) -> Vec<String> {
        map.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn the_app_gets_its_own_host_and_cookies_and_none_of_sam_s_credentials() {
        let mut map = headers(&[
            ("host", "agent.example:8443"),
            ("cookie", "app=1; sam_ws=secret; sam_port_3000=s3"),
            ("cookie", "sam_port_8080=s4 ; theme=dark;;"),
            ("x-sam-port-access", "jwt"),
            ("authorization", "Basic YXBwOmFwcA=="),
            ("connection", "keep-alive, x-hop"),
            ("keep-alive", "timeout=5"),
            ("x-hop", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic x"),
            ("accept", "text/html"),
        ]);
        let upgrade = rewrite_request_headers(&mut map, 3000, None, Some([10, 0, 0, 9].into()));
        assert_eq!(upgrade, None);
        assert_eq!(all(&map, "host"), ["localhost:3000"]);
        assert_eq!(all(&map, "cookie"), ["app=1; theme=dark"]);
        assert_eq!(all(&map, "x-forwarded-host"), ["agent.example:8443"]);
        assert_eq!(all(&map, "x-forwarded-proto"), ["http"]);
        assert_eq!(all(&map, "x-forwarded-for"), ["10.0.0.9"]);
        assert_eq!(all(&map, "authorization"), ["Basic YXBwOmFwcA=="]);
        assert_eq!(all(&map, "accept"), ["text/html"]);
        for gone in [
            "x-sam-port-access",
            "connection",
            "keep-alive",
            "x-hop",
            "te",
            "transfer-encoding",
            "proxy-authorization",
            "upgrade",
        ] {
            assert!(!map.contains_key(gone), "{gone}");
        }
    }

    #[test]
    fn the_worker_s_forwarded_headers_are_kept_and_the_peer_appended() {
        let mut map = headers(&[
            ("host", "10.0.0.5:8443"),
            ("x-forwarded-host", "ws-01abc--3000.example.com"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-for", "203.0.113.7"),
            ("cookie", "sam_ws=only"),
        ]);
        rewrite_request_headers(&mut map, 3000, None, Some([198, 51, 100, 1].into()));
        assert_eq!(
            all(&map, "x-forwarded-host"),
            ["ws-01abc--3000.example.com"]
        );
        assert_eq!(all(&map, "x-forwarded-proto"), ["https"]);
        assert_eq!(all(&map, "x-forwarded-for"), ["203.0.113.7, 198.51.100.1"]);
        // Nothing left of the cookies: no header at all.
        assert!(!map.contains_key("cookie"));

        // HTTP/2 has no Host: the authority stands in.
        let mut map = HeaderMap::new();
        rewrite_request_headers(&mut map, 80, Some("agent:8443"), None);
        assert_eq!(all(&map, "x-forwarded-host"), ["agent:8443"]);
        assert_eq!(all(&map, "host"), ["localhost:80"]);
        assert!(!map.contains_key("x-forwarded-for"));
    }

    #[test]
    fn upgrades_are_asked_for_again() {
        let mut map = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
        ]);
        let upgrade = rewrite_request_headers(&mut map, 5173, None, None);
        assert_eq!(upgrade.unwrap(), "websocket");
        assert_eq!(all(&map, "connection"), ["upgrade"]);
        assert_eq!(all(&map, "upgrade"), ["websocket"]);
        assert_eq!(all(&map, "sec-websocket-key"), ["dGhlIHNhbXBsZSBub25jZQ=="]);

        // An Upgrade header that Connection does not announce is dropped,
        // and so is any protocol but WebSocket.
        let mut map = headers(&[("upgrade", "websocket")]);
        assert_eq!(rewrite_request_headers(&mut map, 5173, None, None), None);
        assert!(!map.contains_key("upgrade"));
        let mut map = headers(&[("connection", "Upgrade"), ("upgrade", "h2c")]);
        assert_eq!(rewrite_request_headers(&mut map, 5173, None, None), None);
        assert!(!map.contains_key("upgrade"));
    }

    #[test]
    fn answers_lose_hop_by_hop_headers_and_sam_s_cookies() {
        let mut map = headers(&[
            ("connection", "close"),
            ("transfer-encoding", "chunked"),
            ("content-type", "text/html"),
            ("set-cookie", "app=1; Path=/"),
            ("set-cookie", "sam_ws=forged; Domain=example.com"),
            ("set-cookie", " sam_port_3000=forged"),
            ("set-cookie", "theme=dark"),
            (
                "set-cookie",
                "sam_session=forged; Path=/api; domain=.example.com",
            ),
            ("set-cookie", "wide=1; Path=/; DOMAIN=example.com"),
            ("clear-site-data", "\"cookies\""),
        ]);
        rewrite_response_headers(&mut map, None);
        assert!(!map.contains_key("connection"));
        assert!(!map.contains_key("transfer-encoding"));
        assert_eq!(all(&map, "content-type"), ["text/html"]);
        assert_eq!(all(&map, "set-cookie"), ["app=1; Path=/", "theme=dark"]);
        assert!(!map.contains_key("clear-site-data"));

        let mut map = headers(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        rewrite_response_headers(&mut map, Some(HeaderValue::from_static("websocket")));
        assert_eq!(all(&map, "connection"), ["upgrade"]);
        assert_eq!(all(&map, "upgrade"), ["websocket"]);
    }

    #[test]
    fn wildcards_are_reached_over_loopback_ipv4_first() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            connect_targets(3000, &[ip("0.0.0.0")]),
            [addr("127.0.0.1:3000")]
        );
        assert_eq!(connect_targets(3000, &[ip("::1")]), [addr("[::1]:3000")]);
        assert_eq!(
            connect_targets(3000, &[ip("::")]),
            [addr("[::1]:3000"), addr("127.0.0.1:3000")]
        );
        assert_eq!(
            connect_targets(3000, &[ip("::"), ip("0.0.0.0")]),
            [addr("127.0.0.1:3000"), addr("[::1]:3000")]
        );
        assert_eq!(
            connect_targets(8080, &[ip("::ffff:127.0.0.1"), ip("127.0.0.2")]),
            [addr("127.0.0.2:8080"), addr("127.0.0.1:8080")]
        );
        // Never anywhere but loopback.
        for elsewhere in [
            "192.168.1.5",
            "169.254.169.254",
            "::ffff:10.0.0.1",
            "2001:db8::1",
        ] {
            assert!(
                connect_targets(8080, &[ip(elsewhere)]).is_empty(),
                "{elsewhere}"
            );
        }
        assert!(connect_targets(8080, &[]).is_empty());
    }

    #[tokio::test]
    async fn a_port_nobody_accepts_on_is_unreachable() {
        // Bound but never listening: connections are refused, and no other
        // test can take the port meanwhile.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let target = socket.local_addr().unwrap();
        let request = Request::new(Body::empty());
        let err = forward(request, target.port(), &[target], "/", None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "port_unreachable", "{err}");
        let api: ApiError = err.into();
        assert_eq!(
            axum::response::IntoResponse::into_response(api).status(),
            StatusCode::BAD_GATEWAY
        );
    }
}
