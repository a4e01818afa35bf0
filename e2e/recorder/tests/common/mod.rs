//! An in-process upstream and recorder on port 0, and a client that, like
//! a browser under test, never follows redirects.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use futures::StreamExt as _;
use serde_json::{Value, json};

/// Answers what it was asked: method, path, query, selected headers and
/// the body, as JSON. POST answers 201 so statuses are seen to pass.
async fn echo(request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let status = if parts.method == "POST" {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (
        status,
        [("x-upstream", "echo")],
        axum::Json(json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "query": parts.uri.query(),
            "host": header("host"),
            "cookie": header("cookie"),
            "origin": header("origin"),
            "accept_encoding": header("accept-encoding"),
            "connection": header("connection"),
            "x_private": header("x-private"),
            "body": String::from_utf8_lossy(&body),
        })),
    )
        .into_response()
}

async fn cookies() -> Response {
    let mut headers = HeaderMap::new();
    headers.append(header::SET_COOKIE, "a=1; Path=/; HttpOnly".parse().unwrap());
    headers.append(header::SET_COOKIE, "b=2; Path=/; Secure".parse().unwrap());
    (headers, "two cookies").into_response()
}

async fn redirect() -> Response {
    (
        StatusCode::FOUND,
        [(header::LOCATION, "/echo?from=redirect")],
        "see elsewhere",
    )
        .into_response()
}

async fn hops() -> Response {
    (
        [
            ("keep-alive", "timeout=5"),
            ("proxy-authenticate", "Basic realm=x"),
            ("x-end-to-end", "kept"),
        ],
        "hops",
    )
        .into_response()
}

async fn big() -> String {
    "a".repeat(3 * 1024 * 1024)
}

async fn len(body: Bytes) -> String {
    body.len().to_string()
}

/// Chunks 20 ms apart, then the end; no `Content-Length`.
fn paced(content_type: &'static str, chunks: &'static [&'static str]) -> Response {
    let stream = futures::stream::iter(chunks).then(|chunk| async move {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        Ok::<_, std::convert::Infallible>(*chunk)
    });
    (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Server-Sent Events that end.
async fn finite_events() -> Response {
    paced("text/event-stream", &["data: one\n\n", "data: two\n\n"])
}

/// A chunked body that is not an event stream.
async fn chunked() -> Response {
    paced("text/plain", &["first ", "second ", "third"])
}

/// One event, then a stream that never ends.
async fn endless_events() -> Response {
    let stream =
        futures::stream::once(async { Ok::<_, std::convert::Infallible>("data: hello\n\n") })
            .chain(futures::stream::pending());
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}

pub fn upstream_router() -> Router {
    Router::new()
        .route("/cookies", get(cookies))
        .route("/redirect", get(redirect))
        .route("/hops", get(hops))
        .route("/big", get(big))
        .route("/len", any(len))
        .route("/events/finite", get(finite_events))
        .route("/events/endless", get(endless_events))
        .route("/chunked", get(chunked))
        .fallback(echo)
        .layer(DefaultBodyLimit::disable())
}

/// Serves `router` on a free port in the background.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

pub struct Setup {
    /// Base URL of the recorder.
    pub base: String,
    pub record: PathBuf,
    _dir: tempfile::TempDir,
}

impl Setup {
    /// The recorder in front of the echo upstream.
    pub async fn new() -> Self {
        let upstream = serve(upstream_router()).await;
        Self::in_front_of(&format!("http://{upstream}")).await
    }

    pub async fn in_front_of(upstream: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("records/responses.jsonl");
        let router = sam_recorder::router(sam_recorder::Config {
            upstream: upstream.to_owned(),
            record: record.clone(),
        })
        .unwrap();
        let addr = serve(router).await;
        Self {
            base: format!("http://{addr}"),
            record,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Every recorded exchange; panics on a line that is not one JSON
    /// object.
    pub fn records(&self) -> Vec<Value> {
        read_records(&self.record)
    }
}

pub fn read_records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "record ends mid-line"
    );
    text.lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("bad record line ({e}): {line:.200}"));
            assert!(value.is_object(), "{line:.200}");
            value
        })
        .collect()
}

/// The records once there are `n` of them (appended in the background,
/// e.g. after a client went away); panics after 10 s.
pub async fn wait_for_records(path: &Path, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let records = read_records(path);
        if records.len() >= n {
            return records;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} records, waiting for {n}: {records:?}",
            records.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        // A test that goes wrong fails instead of hanging the suite.
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap()
}
