//! A recording HTTP reverse proxy for the end-to-end harness.
//!
//! `cargo xtask test` puts it in front of the Worker so that
//! `secrets_never_leak` can search every response body the flows saw.
//! Every request goes to the upstream as the client sent it (method, path,
//! query, headers including `Host`, body); the upstream's status, headers
//! (every `Set-Cookie`) and body come back unchanged. Redirects are not
//! followed. Hop-by-hop headers (RFC 9110 §7.6.1) are dropped both ways.
//!
//! Once a response body has been received in full, one JSON line is
//! appended to the record file (see [`Exchange`]) before the response goes
//! back to the client, so a client that has its answer finds it recorded.
//! The proxy's own answers are recorded too: 413 for a request body over
//! [`MAX_REQUEST_BODY`], 501 for upgrade requests, 502 when the upstream
//! cannot be reached.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{
    CONNECTION, CONTENT_TYPE, EXPECT, HeaderMap, HeaderName, HeaderValue, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde::Serialize;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::Mutex;

/// Request bodies larger than this get 413 from the proxy itself.
pub const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;

/// Response bodies are recorded up to this many bytes (and forwarded whole).
pub const MAX_RECORDED_BODY: usize = 2 * 1024 * 1024;

/// How much of an oversize request body is still read (and discarded) so
/// the client gets to see the 413 rather than a reset connection.
const MAX_DRAINED_BODY: usize = 64 * 1024 * 1024;

/// Body of the 501 answer to upgrade requests.
pub const UPGRADE_REFUSAL: &str = "recorder does not proxy upgrades\n";

/// Where to forward and where to record.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL of the upstream, e.g. `http://127.0.0.1:41234`; the
    /// request's path and query are appended to it.
    pub upstream: String,
    /// JSON-lines file every exchange is appended to (created if missing).
    pub record: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("upstream {0:?} is not an http:// or https:// base URL without query")]
    Upstream(String),
    #[error("opening record file {path}: {source}")]
    Record {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("building the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// One line of the record file.
#[derive(Debug, Serialize)]
pub struct Exchange<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The raw query string without `?`; `null` when the URL had none.
    pub query: Option<&'a str>,
    pub status: u16,
    /// The response's `Content-Type`; `null` when it had none.
    pub content_type: Option<&'a str>,
    /// The response body, lossily decoded as UTF-8, cut at
    /// [`MAX_RECORDED_BODY`] bytes.
    pub body: Cow<'a, str>,
}

struct Shared {
    client: reqwest::Client,
    /// Upstream base URL without a trailing slash.
    upstream: String,
    record: Mutex<tokio::fs::File>,
    record_path: PathBuf,
}

/// The proxy as a router: serve it with `axum::serve`.
///
/// Opens (creating if needed, appending) the record file.
pub fn router(config: Config) -> Result<Router, StartError> {
    let upstream = config.upstream.trim_end_matches('/').to_owned();
    match reqwest::Url::parse(&upstream) {
        Ok(url)
            if matches!(url.scheme(), "http" | "https")
                && url.has_host()
                && url.query().is_none()
                && url.fragment().is_none() => {}
        _ => return Err(StartError::Upstream(config.upstream)),
    }
    let file = open_record(&config.record).map_err(|source| StartError::Record {
        path: config.record.clone(),
        source,
    })?;
    let client = reqwest::Client::builder()
        // The client must see redirects, not their targets.
        .redirect(reqwest::redirect::Policy::none())
        // HTTP(S)_PROXY in the environment must not reroute local traffic.
        .no_proxy()
        // Bodies pass through as encoded; no Accept-Encoding is added.
        .no_gzip()
        .no_brotli()
        .no_deflate()
        .no_zstd()
        .connect_timeout(Duration::from_secs(10))
        .build()?;
    let shared = Arc::new(Shared {
        client,
        upstream,
        record: Mutex::new(tokio::fs::File::from_std(file)),
        record_path: config.record,
    });
    Ok(Router::new().fallback(proxy).with_state(shared))
}

fn open_record(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// A response held in full, so it can be recorded and then sent.
struct Captured {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Captured {
    /// An answer of the proxy's own.
    fn local(status: StatusCode, message: impl Into<String>) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        Self {
            status,
            headers,
            body: Bytes::from(message.into()),
        }
    }
}

impl IntoResponse for Captured {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        response
    }
}

async fn proxy(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let captured = exchange(&shared, &parts, body).await;
    let content_type = captured
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let recorded = &captured.body[..captured.body.len().min(MAX_RECORDED_BODY)];
    let line = Exchange {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        status: captured.status.as_u16(),
        content_type,
        body: String::from_utf8_lossy(recorded),
    };
    tracing::debug!(
        method = line.method,
        path = line.path,
        status = line.status,
        "exchange"
    );
    shared.append(&line).await;
    captured.into_response()
}

impl Shared {
    /// Appends one line; the lock makes each line a single uninterrupted
    /// write, and the flush makes it visible before the client is answered.
    async fn append(&self, exchange: &Exchange<'_>) {
        let mut line = match serde_json::to_vec(exchange) {
            Ok(line) => line,
            Err(e) => {
                tracing::error!(error = %e, "serialising an exchange failed");
                return;
            }
        };
        line.push(b'\n');
        let mut file = self.record.lock().await;
        let written = async {
            file.write_all(&line).await?;
            file.flush().await
        }
        .await;
        if let Err(e) = written {
            tracing::error!(path = %self.record_path.display(), error = %e, "recording failed");
        }
    }
}

/// Forwards one request and holds the answer (the upstream's or our own).
async fn exchange(shared: &Shared, parts: &axum::http::request::Parts, body: Body) -> Captured {
    if is_upgrade(&parts.method, &parts.headers) {
        return Captured::local(StatusCode::NOT_IMPLEMENTED, UPGRADE_REFUSAL);
    }
    let Some(body) = read_body(body).await else {
        return Captured::local(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("recorder: request body over {MAX_REQUEST_BODY} bytes\n"),
        );
    };

    let mut headers = parts.headers.clone();
    strip_hop_by_hop(&mut headers);
    // The body is already read in full: nothing left to wait for.
    headers.remove(EXPECT);
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let url = format!("{}{path_and_query}", shared.upstream);

    let mut request = shared
        .client
        .request(parts.method.clone(), &url)
        // An explicit Host is kept as is: the upstream routes on it.
        .headers(headers);
    if !body.is_empty() {
        request = request.body(body);
    }
    let upstream = async {
        let response = request.send().await?;
        let status = response.status();
        let mut headers = response.headers().clone();
        strip_hop_by_hop(&mut headers);
        let body = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, headers, body))
    };
    match upstream.await {
        Ok((status, headers, body)) => Captured {
            status,
            headers,
            body,
        },
        Err(e) => {
            tracing::warn!(url, error = %error_chain(&e), "upstream failed");
            Captured::local(
                StatusCode::BAD_GATEWAY,
                format!("recorder: upstream failed: {}\n", error_chain(&e)),
            )
        }
    }
}

/// The request body, or `None` if it is over [`MAX_REQUEST_BODY`] (or
/// cannot be read). The excess is drained, up to a bound, so the client
/// is still reading when the 413 comes.
async fn read_body(body: Body) -> Option<Bytes> {
    let mut stream = body.into_data_stream();
    let mut buffer = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.ok()?;
        seen = seen.saturating_add(chunk.len());
        if seen > MAX_DRAINED_BODY {
            return None;
        }
        if seen <= MAX_REQUEST_BODY {
            buffer.extend_from_slice(&chunk);
        }
    }
    (seen <= MAX_REQUEST_BODY).then(|| Bytes::from(buffer))
}

/// `Connection: upgrade` with an `Upgrade` header (WebSocket, h2c), or
/// `CONNECT`.
fn is_upgrade(method: &Method, headers: &HeaderMap) -> bool {
    *method == Method::CONNECT
        || (headers.contains_key(UPGRADE)
            && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade")))
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Removes the hop-by-hop fields of RFC 9110 §7.6.1: `Connection` and the
/// fields it names, `Keep-Alive`, `Transfer-Encoding`, `Upgrade`, `TE`,
/// `Trailer` and every `Proxy-*`.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    let proxy: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for name in named.into_iter().chain(proxy) {
        headers.remove(name);
    }
    for name in [CONNECTION, TRANSFER_ENCODING, UPGRADE, TE, TRAILER] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
}

/// `error sending request: connection refused`-style text: reqwest's
/// top-level message alone does not say what went wrong.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_fields_go_end_to_end_fields_stay() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("proxy-authorization", "Basic Zm9v"),
            ("proxy-connection", "keep-alive"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("host", "api.localhost:8787"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        strip_hop_by_hop(&mut headers);
        let left: Vec<_> = headers
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
            .collect();
        assert_eq!(
            left,
            [
                "set-cookie: a=1",
                "set-cookie: b=2",
                "host: api.localhost:8787"
            ]
        );
    }

    #[test]
    fn upgrades_are_recognised() {
        let mut headers = HeaderMap::new();
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        assert!(!is_upgrade(&Method::GET, &headers));
        headers.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        assert!(is_upgrade(&Method::GET, &headers));
        assert!(is_upgrade(&Method::CONNECT, &HeaderMap::new()));
    }

    #[test]
    fn upstream_must_be_a_base_url() {
        for bad in ["", "127.0.0.1:80", "ftp://x", "http://x/?q=1"] {
            let dir = tempfile::tempdir().unwrap();
            let err = router(Config {
                upstream: bad.to_owned(),
                record: dir.path().join("r.jsonl"),
            })
            .err();
            assert!(matches!(err, Some(StartError::Upstream(_))), "{bad}");
        }
    }
}
