//! A recording HTTP reverse proxy for the end-to-end harness.
//!
//! `cargo xtask test` puts it in front of the Worker so that
//! `secrets_never_leak` can search every response body the flows saw.
//! Every request goes to the upstream as the client sent it (method, path,
//! query, headers including `Host`, body); the upstream's status, headers
//! (every `Set-Cookie`) and body come back unchanged. Redirects are not
//! followed. Hop-by-hop headers (RFC 9110 §7.6.1) are dropped both ways.
//!
//! # What is recorded, and when
//!
//! Each exchange appends one JSON line to the record file (see
//! [`Exchange`]; a WebSocket tunnel adds one per message, below). Response
//! bodies are recorded up to [`MAX_RECORDED_BODY`] bytes and forwarded
//! whole. Whether a body is held or streamed:
//!
//! * **Held** (unlike in an ordinary proxy, so that a client that has its
//!   answer, even only its status, finds it recorded): a body with a
//!   `Content-Length` is read in full, recorded, then answered; likewise a
//!   response without a body (`HEAD`, 1xx, 204, 304). A body without
//!   `Content-Length` (chunked) is held while its chunks come less than
//!   [`STREAM_AFTER_QUIET`] apart and it stays under
//!   [`MAX_RECORDED_BODY`]; most such bodies end in that time and are
//!   handled the same way.
//! * **Streamed** (passed on chunk by chunk as the upstream sends it): a
//!   `text/event-stream` (Server-Sent Events never end on their own) from
//!   its first byte, and a chunked body that pauses or grows past those
//!   bounds from then on. The line is appended when the body ends, and
//!   still *before* the client can tell it has the whole body: before the
//!   end of a chunked body is passed on, and before the last chunk of one
//!   with a `Content-Length`. A client that gives up on a streamed body
//!   after the headers may find its line appended only after it left.
//! * A body that does not end, because the client went away, the upstream
//!   failed mid-way or the recorder is shutting down, is recorded as far as
//!   it was seen, with `"complete": false`. Once the shutdown future given
//!   to [`router_with_shutdown`] completes, streams still running are ended
//!   (the client sees an aborted body) so that a graceful shutdown is not
//!   held up by event streams.
//! * WebSocket upgrades (`Connection: upgrade`, `Upgrade: websocket`) are
//!   forwarded to the upstream with their `Upgrade`, `Connection`,
//!   `Sec-WebSocket-*` (and all end-to-end) headers. When the upstream
//!   answers 101 the client gets 101 with the upstream's headers, the
//!   handshake is recorded (`"kind": "upgrade"`, empty body) and the
//!   connection becomes a byte tunnel between client and upstream. The
//!   frames are not recorded as such; each *text message the upstream
//!   sends* gets a line of its own (`"kind": "message"`, the text as
//!   `body`, cut at [`MAX_RECORDED_BODY`]), appended as it passes (not
//!   before the client sees it). Frames from the client, binary messages,
//!   and compressed (`permessage-deflate`) messages are not recorded: the
//!   leak test sees those only through the Worker's other responses. An
//!   upstream that refuses the upgrade (any other status) is passed
//!   through and recorded like any response.
//! * The proxy's own answers are recorded too: 413 for a request body over
//!   [`MAX_REQUEST_BODY`], 501 for `CONNECT` and for upgrades to anything
//!   but WebSocket (h2c: the tunnel would hide the responses), 502 when
//!   the upstream cannot be reached or fails before a held body is in.

mod frames;

use std::borrow::Cow;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{
    CONNECTION, CONTENT_TYPE, EXPECT, HeaderMap, HeaderName, HeaderValue, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::{BoxError, Router};
use futures::future::{BoxFuture, FutureExt as _, Shared as SharedFuture};
use futures::stream::{BoxStream, Stream, StreamExt as _};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::sync::{Mutex, mpsc};

use crate::frames::TextMessages;

/// Request bodies larger than this get 413 from the proxy itself.
pub const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;

/// Response bodies (and WebSocket text messages) are recorded up to this
/// many bytes (and forwarded whole).
pub const MAX_RECORDED_BODY: usize = 2 * 1024 * 1024;

/// A response body without `Content-Length` (and not an event stream) is
/// held while chunks come no further apart than this; after a longer pause
/// it is streamed.
pub const STREAM_AFTER_QUIET: Duration = Duration::from_millis(250);

/// How much of an oversize request body is still read (and discarded) so
/// the client gets to see the 413 rather than a reset connection.
const MAX_DRAINED_BODY: usize = 64 * 1024 * 1024;

/// Body of the 501 answer to `CONNECT` and to upgrades to anything but
/// WebSocket.
pub const UPGRADE_REFUSAL: &str = "recorder tunnels only WebSocket upgrades\n";

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
    /// 101 for the lines of a WebSocket tunnel.
    pub status: u16,
    /// The response's `Content-Type`; `null` when it had none.
    pub content_type: Option<&'a str>,
    /// The response body (for a `message` line, the message), lossily
    /// decoded as UTF-8, cut at [`MAX_RECORDED_BODY`] bytes.
    pub body: Cow<'a, str>,
    /// Whether the body was seen to its end; `false` when the client went
    /// away, the upstream failed or the recorder stopped mid-body. (A body
    /// cut at [`MAX_RECORDED_BODY`] is still complete.)
    pub complete: bool,
    pub kind: Kind,
}

/// What an [`Exchange`] line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A response (the upstream's, or the proxy's own).
    Response,
    /// A 101 answer to a WebSocket upgrade: the connection became a tunnel.
    /// The body is empty.
    Upgrade,
    /// One text message the upstream sent through a WebSocket tunnel.
    Message,
}

/// The shutdown signal, as a future every stream can wait on.
type Closing = SharedFuture<BoxFuture<'static, ()>>;

struct Shared {
    client: reqwest::Client,
    /// Upstream base URL without a trailing slash.
    upstream: String,
    record: Mutex<tokio::fs::File>,
    record_path: PathBuf,
    closing: Closing,
}

/// The proxy as a router: serve it with `axum::serve`.
///
/// Opens (creating if needed, appending) the record file. Streamed
/// responses only end when the upstream ends them or the client goes away;
/// see [`router_with_shutdown`].
pub fn router(config: Config) -> Result<Router, StartError> {
    router_with_shutdown(config, std::future::pending())
}

/// Like [`router`]; once `shutdown` completes, streamed responses still
/// running are recorded (`"complete": false`) and aborted, so that
/// `axum::serve(…).with_graceful_shutdown(…)` given the same signal can
/// finish.
pub fn router_with_shutdown(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Router, StartError> {
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
        closing: shutdown.boxed().shared(),
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

/// An [`Exchange`] being put together.
#[derive(Debug, Clone)]
struct Line {
    method: String,
    path: String,
    query: Option<String>,
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
    kind: Kind,
}

impl Line {
    /// The request's side; the response's is filled in by [`Self::answer`].
    fn request(parts: &Parts) -> Self {
        Self {
            method: parts.method.as_str().to_owned(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            status: 0,
            content_type: None,
            body: Vec::new(),
            kind: Kind::Response,
        }
    }

    fn answer(&mut self, status: StatusCode, headers: &HeaderMap) {
        self.status = status.as_u16();
        self.content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
    }

    /// Appends body bytes, up to [`MAX_RECORDED_BODY`].
    fn see(&mut self, chunk: &[u8]) {
        let room = MAX_RECORDED_BODY.saturating_sub(self.body.len());
        self.body.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    fn exchange(&self, complete: bool) -> Exchange<'_> {
        Exchange {
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            status: self.status,
            content_type: self.content_type.as_deref(),
            body: String::from_utf8_lossy(&self.body),
            complete,
            kind: self.kind,
        }
    }
}

/// A line that is appended exactly once: by [`Self::finish`], or, if the
/// body is dropped first (the client went away), as incomplete on drop.
struct Recording {
    shared: Arc<Shared>,
    line: Option<Line>,
}

impl Recording {
    fn see(&mut self, chunk: &[u8]) {
        if let Some(line) = &mut self.line {
            line.see(chunk);
        }
    }

    async fn finish(&mut self, complete: bool) {
        if let Some(line) = self.line.take() {
            self.shared.append(&line.exchange(complete)).await;
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        let Some(line) = self.line.take() else {
            return;
        };
        let shared = Arc::clone(&self.shared);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { shared.append(&line.exchange(false)).await });
        } else {
            tracing::error!(
                method = line.method,
                path = line.path,
                "no runtime left to record an unfinished exchange"
            );
        }
    }
}

impl Shared {
    /// Appends one line; the lock makes each line a single uninterrupted
    /// write, and the flush makes it visible before the client is answered.
    async fn append(&self, exchange: &Exchange<'_>) {
        tracing::debug!(
            method = exchange.method,
            path = exchange.path,
            status = exchange.status,
            complete = exchange.complete,
            kind = ?exchange.kind,
            "exchange"
        );
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

    /// Records and returns an answer of the proxy's own.
    async fn local(&self, mut line: Line, status: StatusCode, message: String) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        line.answer(status, &headers);
        line.see(message.as_bytes());
        self.append(&line.exchange(true)).await;
        response(status, headers, Body::from(message))
    }
}

fn response(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

async fn proxy(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let line = Line::request(&parts);

    let upgrade = upgrade_protocol(&parts.headers).cloned();
    let tunnel = upgrade
        .as_ref()
        .filter(|protocol| is_websocket(protocol))
        .and_then(|protocol| {
            let client = parts.extensions.remove::<hyper::upgrade::OnUpgrade>()?;
            Some((client, protocol.clone()))
        });
    if parts.method == Method::CONNECT || (upgrade.is_some() && tunnel.is_none()) {
        return shared
            .local(
                line,
                StatusCode::NOT_IMPLEMENTED,
                UPGRADE_REFUSAL.to_owned(),
            )
            .await;
    }

    let Some(body) = read_body(body).await else {
        return shared
            .local(
                line,
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("recorder: request body over {MAX_REQUEST_BODY} bytes\n"),
            )
            .await;
    };
    let url = format!(
        "{}{}",
        shared.upstream,
        parts.uri.path_and_query().map_or("/", |pq| pq.as_str())
    );
    let upstream = match forward(&shared, &url, &parts, upgrade.as_ref(), body).await {
        Ok(upstream) => upstream,
        Err(e) => {
            let error = error_chain(&e);
            tracing::warn!(url, error, "upstream failed");
            return shared
                .local(
                    line,
                    StatusCode::BAD_GATEWAY,
                    format!("recorder: upstream failed: {error}\n"),
                )
                .await;
        }
    };
    match tunnel {
        Some((client, protocol)) if upstream.status() == StatusCode::SWITCHING_PROTOCOLS => {
            open_tunnel(shared, line, client, &protocol, upstream).await
        }
        _ => pass_through(shared, line, &parts.method, upstream).await,
    }
}

/// Sends the request on, with `Connection: upgrade` and `Upgrade` put back
/// for a tunnel.
async fn forward(
    shared: &Shared,
    url: &str,
    parts: &Parts,
    upgrade: Option<&HeaderValue>,
    body: Bytes,
) -> reqwest::Result<reqwest::Response> {
    let mut headers = parts.headers.clone();
    strip_hop_by_hop(&mut headers);
    // The body is already read in full: nothing left to wait for.
    headers.remove(EXPECT);
    if let Some(protocol) = upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, protocol.clone());
        // No compression is negotiated, so every text message the upstream
        // sends can be read and recorded (browsers offer permessage-deflate).
        headers.remove("sec-websocket-extensions");
    }
    let mut request = shared
        .client
        .request(parts.method.clone(), url)
        // An explicit Host is kept as is: the upstream routes on it.
        .headers(headers);
    if !body.is_empty() {
        request = request.body(body);
    }
    request.send().await
}

/// The upstream's answer: held in full and recorded before it is passed
/// on, or streamed and recorded on the way (see the module doc).
async fn pass_through(
    shared: Arc<Shared>,
    mut line: Line,
    method: &Method,
    upstream: reqwest::Response,
) -> Response {
    let status = upstream.status();
    let mut headers = upstream.headers().clone();
    strip_hop_by_hop(&mut headers);
    line.answer(status, &headers);
    let length = upstream.content_length();
    let bodyless = *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || length == Some(0);
    let events = line.content_type.as_deref().is_some_and(is_event_stream);
    let mut chunks = upstream.bytes_stream().boxed();

    // Hold the body while it keeps coming: all of it when its length is
    // known, else until the upstream goes quiet or sends a lot.
    let mut held = Vec::new();
    if !events || bodyless {
        loop {
            let next = if length.is_some() || bodyless {
                chunks.next().await
            } else {
                match tokio::time::timeout(STREAM_AFTER_QUIET, chunks.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                }
            };
            match next {
                Some(Ok(chunk)) => {
                    held.extend_from_slice(&chunk);
                    if length.is_none() && held.len() > MAX_RECORDED_BODY {
                        break;
                    }
                }
                None => {
                    line.see(&held);
                    shared.append(&line.exchange(true)).await;
                    return response(status, headers, Body::from(held));
                }
                Some(Err(e)) => {
                    let error = error_chain(&e);
                    tracing::warn!(path = line.path, error, "upstream body failed");
                    return shared
                        .local(
                            line,
                            StatusCode::BAD_GATEWAY,
                            format!("recorder: upstream failed: {error}\n"),
                        )
                        .await;
                }
            }
        }
    }
    // Stream what is left, the held part first.
    if !held.is_empty() {
        let held = Bytes::from(held);
        chunks = futures::stream::once(async { Ok(held) })
            .chain(chunks)
            .boxed();
    }
    let recording = Recording {
        shared: Arc::clone(&shared),
        line: Some(line),
    };
    let body = Body::from_stream(relay(chunks, length, recording, shared.closing.clone()));
    response(status, headers, body)
}

/// Whether a `Content-Type` is `text/event-stream` (Server-Sent Events).
fn is_event_stream(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("text/event-stream"))
}

/// State of one streamed body.
struct Relay {
    upstream: BoxStream<'static, reqwest::Result<Bytes>>,
    recording: Recording,
    /// The upstream's `Content-Length`.
    expected: Option<u64>,
    seen: u64,
    closing: Closing,
}

/// The upstream body as it comes, recording each chunk; the line is
/// appended before the client can see the body end (see the module doc).
fn relay(
    upstream: BoxStream<'static, reqwest::Result<Bytes>>,
    expected: Option<u64>,
    recording: Recording,
    closing: Closing,
) -> impl Stream<Item = Result<Bytes, BoxError>> + Send + 'static {
    let state = Relay {
        upstream,
        recording,
        expected,
        seen: 0,
        closing,
    };
    futures::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        let next = tokio::select! {
            next = state.upstream.next() => Some(next),
            () = &mut state.closing => None,
        };
        match next {
            Some(Some(Ok(chunk))) => {
                state.recording.see(&chunk);
                state.seen += chunk.len() as u64;
                if state.expected.is_some_and(|n| state.seen >= n) {
                    state.recording.finish(true).await;
                }
                Some((Ok(chunk), Some(state)))
            }
            Some(None) => {
                state.recording.finish(true).await;
                None
            }
            Some(Some(Err(e))) => {
                tracing::warn!(error = error_chain(&e), "upstream body failed");
                state.recording.finish(false).await;
                Some((Err(e.into()), None))
            }
            None => {
                state.recording.finish(false).await;
                let stopping: BoxError = "recorder shutting down".into();
                Some((Err(stopping), None))
            }
        }
    })
}

/// Answers 101 with the upstream's headers, records the handshake, and
/// copies bytes both ways once both sides have switched.
async fn open_tunnel(
    shared: Arc<Shared>,
    mut line: Line,
    client: hyper::upgrade::OnUpgrade,
    requested: &HeaderValue,
    upstream: reqwest::Response,
) -> Response {
    let status = upstream.status();
    let mut headers = upstream.headers().clone();
    let protocol = headers
        .get(UPGRADE)
        .cloned()
        .unwrap_or_else(|| requested.clone());
    strip_hop_by_hop(&mut headers);
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, protocol);
    line.answer(status, &headers);
    line.kind = Kind::Upgrade;
    shared.append(&line.exchange(true)).await;

    line.kind = Kind::Message;
    line.content_type = None;
    tokio::spawn(async move {
        let (client, upstream) = tokio::join!(client, upstream.upgrade());
        let (client, upstream) = match (client, upstream) {
            (Ok(client), Ok(upstream)) => (client, upstream),
            (Err(e), _) => {
                tracing::warn!(path = line.path, error = %e, "client upgrade failed");
                return;
            }
            (_, Err(e)) => {
                tracing::warn!(
                    path = line.path,
                    error = error_chain(&e),
                    "upstream upgrade failed"
                );
                return;
            }
        };
        let (messages, mut received) = mpsc::unbounded_channel();
        let upstream = Observed {
            inner: upstream,
            reader: TextMessages::new(MAX_RECORDED_BODY),
            messages,
        };
        let copy = copy_both_ways(TokioIo::new(client), upstream, line.path.clone());
        let record = async {
            while let Some(message) = received.recv().await {
                let mut line = line.clone();
                line.body = message;
                shared.append(&line.exchange(true)).await;
            }
        };
        tokio::join!(copy, record);
    });
    response(status, headers, Body::empty())
}

/// Runs a tunnel to its end; dropping `upstream` then ends the recording
/// of its messages.
async fn copy_both_ways<C, U>(mut client: C, mut upstream: Observed<U>, path: String)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok((up, down)) => tracing::debug!(path, up, down, "tunnel closed"),
        Err(e) => tracing::debug!(path, error = %e, "tunnel broke"),
    }
    if upstream.reader.skipped_compressed() {
        tracing::warn!(path, "compressed WebSocket messages went unrecorded");
    }
}

/// The upstream side of a tunnel: what is read from it is also fed to the
/// text-message reader, whose messages go to the recording task.
struct Observed<S> {
    inner: S,
    reader: TextMessages,
    messages: mpsc::UnboundedSender<Vec<u8>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Observed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            for message in this.reader.feed(&buf.filled()[before..]) {
                // The recording task outlives the tunnel; a send can only
                // fail once it is gone, and then there is nobody to tell.
                let _ = this.messages.send(message);
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Observed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
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

/// The `Upgrade` header of a request that asks for one (`Connection:
/// upgrade` too).
fn upgrade_protocol(headers: &HeaderMap) -> Option<&HeaderValue> {
    connection_tokens(headers)
        .any(|t| t.eq_ignore_ascii_case("upgrade"))
        .then(|| headers.get(UPGRADE))
        .flatten()
}

/// Whether an `Upgrade` value asks for WebSocket.
fn is_websocket(protocol: &HeaderValue) -> bool {
    protocol.to_str().is_ok_and(|p| {
        p.split(',')
            .map(str::trim)
            .any(|p| p.eq_ignore_ascii_case("websocket"))
    })
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
        assert_eq!(upgrade_protocol(&headers), None);
        headers.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        assert_eq!(upgrade_protocol(&headers).unwrap(), "websocket");
        for (protocol, websocket) in [
            ("websocket", true),
            ("WebSocket", true),
            ("h2c", false),
            ("foo/2, websocket", true),
            ("websockets", false),
        ] {
            assert_eq!(
                is_websocket(&HeaderValue::from_static(protocol)),
                websocket,
                "{protocol}"
            );
        }
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
