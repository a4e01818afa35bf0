//! Registration and heartbeats against a fake control plane.

// Test helpers outside `#[test]` functions unwrap too; a panic is a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{FakeControlPlane, NODE_ID, config, wait_until, write_token};
use reqwest::StatusCode;
use sam_vm_agent::{AGENT_VERSION, Agent, AgentError, Backoff, Config};
use sam_wire::HeartbeatRequest;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const TOKEN: &str = "callback-token-s3cr3t";

struct Running {
    agent: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), AgentError>>,
    root: tempfile::TempDir,
}

/// Starts an agent on 127.0.0.1:0 with fast retries; `tweak` adjusts its config.
async fn start_agent(cp: &FakeControlPlane, tweak: impl FnOnce(&mut Config)) -> Running {
    let root = tempfile::tempdir().unwrap();
    write_token(root.path(), TOKEN);
    let mut cfg = config(cp, root.path());
    cfg.backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
    };
    tweak(&mut cfg);
    let agent = Agent::new(cfg).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(agent.serve(listener, async {
        let _ = stopped.await;
    }));
    Running {
        agent: addr,
        stop,
        task,
        root,
    }
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

#[tokio::test]
async fn registers_through_transient_failures_then_heartbeats_at_the_requested_interval() {
    let cp = FakeControlPlane::start().await;
    cp.script_ready([
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(json!({"code": "unavailable", "message": "later"})),
        ),
        (StatusCode::TOO_MANY_REQUESTS, None),
    ]);
    // The control plane asks for 1 s; the agent's own setting (an hour) would
    // otherwise allow a single heartbeat within this test.
    *cp.state.heartbeat_default.lock().unwrap() =
        Some((StatusCode::OK, Some(json!({"next_interval_secs": 1}))));
    let running = start_agent(&cp, |c| c.heartbeat_interval = Duration::from_hours(1)).await;

    assert!(wait_until(Duration::from_secs(10), || cp.heartbeats().len() >= 2).await);

    let ready = cp.ready_calls();
    assert_eq!(ready.len(), 3, "503 and 429 are retried, then accepted");
    for call in &ready {
        assert_eq!(call.node_id, NODE_ID);
        assert_eq!(call.authorization, Some(bearer()));
        assert_eq!(call.body, json!({"agent_version": AGENT_VERSION}));
    }
    let beats = cp.heartbeats();
    assert!(beats[0].at >= ready[2].at);
    for beat in &beats {
        assert_eq!(beat.node_id, NODE_ID);
        assert_eq!(beat.authorization, Some(bearer()));
        let body: HeartbeatRequest = serde_json::from_value(beat.body.clone()).unwrap();
        assert_eq!(body.agent_version, AGENT_VERSION);
        assert!(body.metrics.memory_total_kib > 0);
        assert!(body.metrics.disk_total_bytes > 0);
    }
    let gap = beats[1].at - beats[0].at;
    assert!(
        gap >= Duration::from_millis(900),
        "adopted 1 s interval, got {gap:?}"
    );

    // The API is up alongside the heartbeats.
    let health = reqwest::get(format!("http://{}/health", running.agent))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    // Graceful shutdown ends the agent cleanly and stops the API.
    running.stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), running.task)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(
        reqwest::get(format!("http://{}/health", running.agent))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn heartbeat_failures_are_not_fatal() {
    let cp = FakeControlPlane::start().await;
    cp.script_heartbeats([
        (StatusCode::INTERNAL_SERVER_ERROR, None),
        (
            StatusCode::UNAUTHORIZED,
            Some(json!({"code": "token_expired", "message": "x"})),
        ),
    ]);
    let running = start_agent(&cp, |c| c.heartbeat_interval = Duration::from_millis(50)).await;

    assert!(wait_until(Duration::from_secs(10), || cp.heartbeats().len() >= 4).await);
    assert!(!running.task.is_finished());
    running.stop.send(()).unwrap();
    assert!(running.task.await.unwrap().is_ok());
}

#[tokio::test]
async fn a_refused_ready_call_stops_the_agent() {
    let cp = FakeControlPlane::start().await;
    cp.script_ready([(
        StatusCode::UNAUTHORIZED,
        Some(json!({"code": "token_revoked", "message": "this node was deleted"})),
    )]);
    let running = start_agent(&cp, |_| {}).await;

    let result = tokio::time::timeout(Duration::from_secs(10), running.task)
        .await
        .unwrap()
        .unwrap();
    match result {
        Err(AgentError::RegistrationRejected { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (401, "token_revoked"));
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert_eq!(cp.ready_calls().len(), 1, "a 401 is not retried");
    assert!(cp.heartbeats().is_empty());
}

#[tokio::test]
async fn a_missing_token_file_stops_the_agent() {
    let cp = FakeControlPlane::start().await;
    let running = start_agent(&cp, |c| {
        c.callback_token_file = "/etc/sam/elsewhere".into();
    })
    .await;
    let result = tokio::time::timeout(Duration::from_secs(10), running.task)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(result, Err(AgentError::TokenFile { .. })),
        "{result:?}"
    );
    assert!(cp.ready_calls().is_empty());
}

/// Collects everything logged on this thread (the test runtime is
/// single-threaded, so that is everything the agent logs).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_never_contain_the_callback_token() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let cp = FakeControlPlane::start().await;
    cp.script_ready([
        (StatusCode::BAD_GATEWAY, None),
        (
            StatusCode::FORBIDDEN,
            Some(json!({"code": "token_scope_mismatch", "message": "no"})),
        ),
    ]);
    let running = start_agent(&cp, |_| {}).await;
    let result = tokio::time::timeout(Duration::from_secs(10), running.task)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_err());

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("token_scope_mismatch"), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
}

#[tokio::test]
async fn a_renewed_token_is_stored_and_used_for_later_calls() {
    const FRESH: &str = "fresh.callback.token";
    let cp = FakeControlPlane::start().await;
    cp.script_heartbeats([(
        StatusCode::OK,
        Some(json!({"next_interval_secs": 1, "refreshed_token": FRESH})),
    )]);
    let running = start_agent(&cp, |c| c.heartbeat_interval = Duration::from_millis(50)).await;
    assert!(wait_until(Duration::from_secs(10), || cp.heartbeats().len() >= 2).await);

    let beats = cp.heartbeats();
    assert_eq!(beats[0].authorization, Some(bearer()));
    assert_eq!(beats[1].authorization, Some(format!("Bearer {FRESH}")));
    let file = running.root.path().join("etc/sam/callback-token");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), FRESH);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    running.stop.send(()).unwrap();
    assert!(running.task.await.unwrap().is_ok());
}
