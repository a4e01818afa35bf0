//! Shared test harness for the provider clients: the HTTP port implemented
//! with reqwest (so tests exercise real HTTP framing, headers and status
//! codes), and a tiny local server that replays canned responses and records
//! what it was sent.

#![allow(dead_code)] // each test crate uses a different subset

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use sam_providers::{HttpClient, HttpRequest, HttpResponse, Method, TransportError};
use serde_json::Value;

// ---- The HTTP port, implemented with reqwest ----

pub struct ReqwestHttp(pub reqwest::Client);

impl ReqwestHttp {
    pub fn new() -> Self {
        ReqwestHttp(reqwest::Client::new())
    }
}

impl HttpClient for ReqwestHttp {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        let method = match req.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Delete => reqwest::Method::DELETE,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
        };
        let mut builder = self.0.request(method, &req.url);
        for (name, value) in &req.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = req.body {
            builder = builder.body(body);
        }
        let resp = builder
            .send()
            .await
            .map_err(|e| TransportError::new(e.to_string()))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let body = resp
            .bytes()
            .await
            .map_err(|e| TransportError::new(e.to_string()))?
            .to_vec();
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

/// A loopback URL (`http://127.0.0.1:port`, no trailing slash) nothing
/// listens on: bound, then released.
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

// ---- The canned-response server ----

/// One scripted answer. The body goes out as `application/json` unless a
/// `content-type` in `headers` says otherwise.
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// A JSON answer; `Value::Null` stands for an empty body.
// By value so call sites can pass `json!(...)` literals directly.
#[allow(clippy::needless_pass_by_value)]
pub fn canned(status: u16, body: Value) -> Canned {
    Canned {
        status,
        headers: Vec::new(),
        body: if body.is_null() {
            String::new()
        } else {
            body.to_string()
        },
    }
}

pub fn with_header(mut c: Canned, name: &'static str, value: &str) -> Canned {
    c.headers.push((name, value.to_owned()));
    c
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The token of an `Authorization: Bearer ...` header.
    pub fn bearer(&self) -> &str {
        self.header("authorization")
            .unwrap()
            .strip_prefix("Bearer ")
            .unwrap()
    }

    /// The body, which must be JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

pub type Log = Arc<Mutex<Vec<Recorded>>>;

/// A snapshot of the requests received so far.
pub fn log(recorded: &Log) -> Vec<Recorded> {
    recorded.lock().unwrap().clone()
}

#[derive(Clone, Default)]
struct Script {
    responses: Arc<Mutex<VecDeque<Canned>>>,
    recorded: Log,
}

async fn replay(
    State(script): State<Script>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    script.recorded.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    });
    let Some(next) = script.responses.lock().unwrap().pop_front() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "script exhausted").into_response();
    };
    let mut resp = (
        StatusCode::from_u16(next.status).unwrap(),
        [("content-type", "application/json")],
        next.body,
    )
        .into_response();
    for (name, value) in next.headers {
        resp.headers_mut().insert(name, value.parse().unwrap());
    }
    resp
}

/// Starts a server that answers with `responses` in order; returns its base
/// URL (`http://127.0.0.1:port/`) and the log of requests it received.
pub async fn start(responses: Vec<Canned>) -> (String, Log) {
    let script = Script::default();
    script.responses.lock().unwrap().extend(responses);
    let app = Router::new().fallback(replay).with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/"), script.recorded)
}
