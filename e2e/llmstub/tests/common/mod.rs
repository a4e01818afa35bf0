//! Shared test harness: an in-process llmstub on 127.0.0.1:0 and an SSE
//! parser that turns a streamed body back into events.

#![allow(dead_code)] // each test crate uses a different subset

use sam_llmstub::{Config, LlmStub, Script};
use serde_json::Value;

pub const EDIT_FILE: &str = include_str!("../../scripts/edit-file.json");

pub struct TestStub {
    pub base: String,
    pub client: reqwest::Client,
    pub stub: LlmStub,
}

pub async fn start(config: Config) -> TestStub {
    let stub = LlmStub::new(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = stub.router();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    TestStub {
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::new(),
        stub,
    }
}

/// A stand-in running the end-to-end script.
pub async fn start_edit_file() -> TestStub {
    start(Config {
        script: Script::from_json(EDIT_FILE).unwrap(),
        require_key: None,
    })
    .await
}

/// One server-sent event: its `event:` name (if any) and its `data:`.
#[derive(Debug, Clone)]
pub struct Event {
    pub name: Option<String>,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {}", self.data))
    }
}

/// Parses an SSE body (events separated by blank lines).
pub fn parse_sse(body: &str) -> Vec<Event> {
    body.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut name = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push(d);
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            Event {
                name,
                data: data.join("\n"),
            }
        })
        .collect()
}

/// Sends a request and returns the status, content type and body text.
pub async fn send(request: reqwest::RequestBuilder) -> (u16, String, String) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}
