//! `/logs` and `/logs/stream`: the agent's own recent log lines, read and
//! followed by the control plane with a management token.
//!
//! Each test records into its own buffer through a thread-local subscriber;
//! `#[tokio::test]` runs the agent's tasks on the test's thread, so the
//! agent's own events land there too.

// Test helpers outside `#[test]` functions unwrap too; a panic is a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{FakeControlPlane, NODE_ID, config, now_ms, wait_until, write_token};
use reqwest::StatusCode;
use sam_auth::{Audience, SigningKey};
use sam_vm_agent::{Agent, AgentError, LogBuffer, LogLine};
use sam_wire::ErrorBody;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;

/// The target of the lines the tests log themselves.
const TARGET: &str = "logs_test";
const OTHER_NODE: &str = "01HZX3Y9999999999999999999";

struct Harness {
    cp: FakeControlPlane,
    agent: SocketAddr,
    logs: LogBuffer,
    http: reqwest::Client,
    key: SigningKey,
    _logging: DefaultGuard,
    _root: tempfile::TempDir,
}

/// Records this thread's events at INFO and above into a fresh buffer.
fn capture_logs() -> (LogBuffer, DefaultGuard) {
    let logs = LogBuffer::new();
    let subscriber = tracing_subscriber::registry()
        .with(LevelFilter::INFO)
        .with(logs.layer());
    let guard = tracing::subscriber::set_default(subscriber);
    (logs, guard)
}

impl Harness {
    async fn start() -> Self {
        let (logs, logging) = capture_logs();
        let cp = FakeControlPlane::start().await;
        let key = SigningKey::from_seed([1; 32]);
        cp.serve_keys(&[&key]);
        let root = tempfile::tempdir().unwrap();
        let router = Agent::new(config(&cp, root.path()))
            .unwrap()
            .with_log_buffer(logs.clone())
            .router();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let agent = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            cp,
            agent,
            logs,
            http: client(),
            key,
            _logging: logging,
            _root: root,
        }
    }

    fn token(&self) -> String {
        self.cp.token(&self.key, Audience::NodeManagement, NODE_ID)
    }

    fn request(&self, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let req = self.http.get(format!("http://{}{path}", self.agent));
        match token {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let resp = self.request(path, token).send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }

    /// `/logs` with a valid token; only the lines the test itself logged.
    async fn test_lines(&self, query: &str) -> Vec<LogLine> {
        let (status, body) = self
            .get(&format!("/logs{query}"), Some(&self.token()))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let lines: Vec<LogLine> = serde_json::from_value(body["lines"].clone()).unwrap();
        lines.into_iter().filter(|l| l.target == TARGET).collect()
    }

    async fn stream(&self, query: &str) -> SseReader {
        let resp = self
            .request(&format!("/logs/stream{query}"), Some(&self.token()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        SseReader {
            resp,
            buf: String::new(),
        }
    }
}

/// Requests give up after a while, so an endless stream where a JSON error
/// was expected fails the test instead of hanging it.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn code(body: &Value) -> String {
    serde_json::from_value::<ErrorBody>(body.clone())
        .unwrap()
        .code
}

fn messages(lines: &[LogLine]) -> Vec<&str> {
    lines.iter().map(|l| l.message.as_str()).collect()
}

/// One server-sent event.
#[derive(Debug)]
struct SseEvent {
    id: Option<String>,
    event: Option<String>,
    data: String,
}

impl SseEvent {
    fn line(&self) -> LogLine {
        assert_eq!(self.event.as_deref(), Some("log"), "{self:?}");
        let line: LogLine = serde_json::from_str(&self.data).unwrap();
        assert_eq!(self.id, Some(line.seq.to_string()), "id is the seq");
        line
    }
}

/// Reads an SSE body as it arrives.
struct SseReader {
    resp: reqwest::Response,
    buf: String,
}

impl SseReader {
    /// The next event (keep-alive comments skipped); `None` when the stream
    /// ends. Panics if nothing arrives within 5 s.
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                if let Some(event) = parse_event(&block) {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(5), self.resp.chunk())
                .await
                .expect("no event within 5 s")
                .unwrap()?;
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next event that is a line this test logged.
    async fn next_test_line(&mut self) -> LogLine {
        loop {
            let event = self.next().await.expect("stream ended");
            let line = event.line();
            if line.target == TARGET {
                return line;
            }
        }
    }
}

fn parse_event(block: &str) -> Option<SseEvent> {
    let mut event = SseEvent {
        id: None,
        event: None,
        data: String::new(),
    };
    let mut fields = 0;
    for line in block
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(':'))
    {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
        fields += 1;
        match name {
            "id" => event.id = Some(value),
            "event" => event.event = Some(value),
            "data" => event.data.push_str(&value),
            other => panic!("unexpected SSE field {other:?} in {block:?}"),
        }
    }
    (fields > 0).then_some(event)
}

#[tokio::test]
async fn log_routes_need_a_management_token_for_this_node() {
    let h = Harness::start().await;
    let other_node = h.cp.token(&h.key, Audience::NodeManagement, OTHER_NODE);
    let callback = h.cp.token(&h.key, Audience::NodeCallback, NODE_ID);
    for path in ["/logs", "/logs/stream", "/logs?limit=abc"] {
        let (status, body) = h.get(path, None).await;
        assert_eq!(
            (status, code(&body).as_str()),
            (StatusCode::UNAUTHORIZED, "token_missing"),
            "{path}"
        );
        let (status, body) = h.get(path, Some(&callback)).await;
        assert_eq!(
            (status, code(&body).as_str()),
            (StatusCode::UNAUTHORIZED, "token_wrong_audience"),
            "{path}"
        );
        let (status, body) = h.get(path, Some(&other_node)).await;
        assert_eq!(
            (status, code(&body).as_str()),
            (StatusCode::FORBIDDEN, "token_scope_mismatch"),
            "{path}"
        );
    }
    // The refusals themselves are logged, and show up once authorized.
    let (status, body) = h.get("/logs", Some(&h.token())).await;
    assert_eq!(status, StatusCode::OK);
    let refusals: Vec<&str> = body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["target"] == "sam_vm_agent::server")
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert!(
        refusals.contains(
            &format!("refused a token scoped to another node token_node={OTHER_NODE}").as_str()
        ),
        "{refusals:?}"
    );
}

#[tokio::test]
async fn logs_returns_recorded_lines_in_order_honouring_since_and_limit() {
    let h = Harness::start().await;
    let before = now_ms();
    for i in 0..5 {
        tracing::info!(target: TARGET, i, "line {i}");
    }
    tracing::warn!(target: TARGET, reason = %"disk full", "last");

    let lines = h.test_lines("").await;
    assert_eq!(
        messages(&lines),
        [
            "line 0 i=0",
            "line 1 i=1",
            "line 2 i=2",
            "line 3 i=3",
            "line 4 i=4",
            "last reason=disk full"
        ]
    );
    assert!(lines.windows(2).all(|w| w[0].seq < w[1].seq), "{lines:?}");
    assert_eq!(lines[0].level, "INFO");
    assert_eq!(lines[5].level, "WARN");
    assert!(lines.iter().all(|l| l.at >= before && l.at <= now_ms()));

    // `since` is exclusive; `limit` keeps the oldest lines after it.
    let since = lines[2].seq;
    assert_eq!(
        messages(&h.test_lines(&format!("?since={since}")).await),
        ["line 3 i=3", "line 4 i=4", "last reason=disk full"]
    );
    assert_eq!(
        messages(&h.test_lines(&format!("?since={since}&limit=2")).await),
        ["line 3 i=3", "line 4 i=4"]
    );
    let last = lines[5].seq;
    assert!(h.test_lines(&format!("?since={last}")).await.is_empty());
}

#[tokio::test]
async fn logs_limit_defaults_to_200_and_a_large_limit_returns_the_whole_buffer() {
    let h = Harness::start().await;
    // Fetch the key set now, so the agent logs nothing while the test counts.
    assert!(h.test_lines("").await.is_empty());
    for i in 0..2100 {
        tracing::info!(target: TARGET, "bulk {i}");
    }
    let default = h.test_lines("").await;
    assert_eq!(default.len(), 200);
    // The ring dropped the oldest 100.
    assert_eq!(default[0].message, "bulk 100");

    let all = h.test_lines("?limit=100000").await;
    assert_eq!(all.len(), LogBuffer::CAPACITY);
    assert_eq!(all.last().unwrap().message, "bulk 2099");
}

#[tokio::test]
async fn logs_refuses_a_malformed_query_as_invalid_query() {
    let h = Harness::start().await;
    let token = h.token();
    for query in ["?limit=abc", "?since=abc", "?since=-1", "?limit=1.5"] {
        let (status, body) = h.get(&format!("/logs{query}"), Some(&token)).await;
        assert_eq!(
            (status, code(&body).as_str()),
            (StatusCode::BAD_REQUEST, "invalid_query"),
            "{query}: {body}"
        );
        assert!(!body["message"].as_str().unwrap().is_empty());
    }
    let (status, body) = h.get("/logs/stream?since=abc", Some(&token)).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );
}

#[tokio::test]
async fn stream_replays_lines_after_since_then_follows_new_ones() {
    let h = Harness::start().await;
    for name in ["a", "b", "c"] {
        tracing::info!(target: TARGET, "before {name}");
    }
    let before = h.test_lines("").await;
    assert_eq!(messages(&before), ["before a", "before b", "before c"]);

    let mut stream = h.stream(&format!("?since={}", before[0].seq)).await;
    assert_eq!(h.logs.followers(), 1);
    let b = stream.next_test_line().await;
    let c = stream.next_test_line().await;
    assert_eq!((b.message.as_str(), b.seq), ("before b", before[1].seq));
    assert_eq!((c.message.as_str(), c.seq), ("before c", before[2].seq));

    // Logged only now that the client is connected.
    tracing::warn!(target: TARGET, n = 7, "after connect");
    let live = stream.next_test_line().await;
    assert_eq!(live.message, "after connect n=7");
    assert_eq!(live.level, "WARN");
    assert!(live.seq > c.seq);
    tracing::info!(target: TARGET, "and another");
    let next = stream.next_test_line().await;
    assert_eq!(next.message, "and another");
    assert_eq!(next.seq, live.seq + 1);

    // A client that goes away stops being followed once the agent next
    // writes to it.
    drop(stream);
    assert!(
        wait_until(Duration::from_secs(5), || {
            tracing::info!(target: TARGET, "nobody listening");
            h.logs.followers() == 0
        })
        .await
    );
}

#[tokio::test]
async fn stream_without_since_replays_the_whole_buffer() {
    let h = Harness::start().await;
    tracing::info!(target: TARGET, "first");
    tracing::info!(target: TARGET, "second");
    let mut stream = h.stream("").await;
    assert_eq!(stream.next_test_line().await.message, "first");
    assert_eq!(stream.next_test_line().await.message, "second");
}

struct Running {
    agent: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), AgentError>>,
    _root: tempfile::TempDir,
}

#[tokio::test]
async fn a_running_agent_serves_its_own_lines_and_ends_streams_on_shutdown() {
    let (logs, _logging) = capture_logs();
    let cp = FakeControlPlane::start().await;
    let key = SigningKey::from_seed([1; 32]);
    cp.serve_keys(&[&key]);
    let root = tempfile::tempdir().unwrap();
    write_token(root.path(), "callback-token");
    let agent = Agent::new(config(&cp, root.path()))
        .unwrap()
        .with_log_buffer(logs.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let running = Running {
        agent: listener.local_addr().unwrap(),
        task: tokio::spawn(agent.serve(listener, async {
            let _ = stopped.await;
        })),
        stop,
        _root: root,
    };
    assert!(wait_until(Duration::from_secs(10), || !cp.ready_calls().is_empty()).await);

    let token = cp.token(&key, Audience::NodeManagement, NODE_ID);
    let http = client();
    let body: Value = http
        .get(format!("http://{}/logs", running.agent))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let lines: Vec<LogLine> = serde_json::from_value(body["lines"].clone()).unwrap();
    let listening = lines
        .iter()
        .find(|l| l.message.starts_with("vm-agent listening"))
        .unwrap_or_else(|| panic!("no startup line in {lines:?}"));
    assert_eq!(listening.target, "sam_vm_agent::agent");
    assert_eq!(listening.level, "INFO");
    assert!(
        listening
            .message
            .contains(&format!("addr={}", running.agent))
            && listening.message.contains(&format!("node_id={NODE_ID}")),
        "{listening:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.message.starts_with("registered with the control plane")),
        "{lines:?}"
    );

    let resp = http
        .get(format!("http://{}/logs/stream", running.agent))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut stream = SseReader {
        resp,
        buf: String::new(),
    };
    let first = stream.next().await.unwrap().line();
    assert_eq!(first.seq, lines[0].seq);

    // Shutdown ends the open stream instead of waiting out the drain timeout.
    let started = Instant::now();
    running.stop.send(()).unwrap();
    let mut remaining = Vec::new();
    while let Some(event) = stream.next().await {
        remaining.push(event.line().message);
    }
    assert!(
        remaining.iter().any(|m| m == "shutting down"),
        "the shutdown line is streamed before the end: {remaining:?}"
    );
    tokio::time::timeout(Duration::from_secs(3), running.task)
        .await
        .expect("agent did not stop")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        !logs
            .lines_since(0, usize::MAX)
            .iter()
            .any(|l| l.message.starts_with("in-flight requests did not finish")),
        "the drain timed out"
    );
}
