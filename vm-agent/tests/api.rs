//! The agent's HTTP API against a fake control plane serving its key set.

// Test helpers outside `#[test]` functions unwrap too; a panic is a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{FakeControlPlane, NODE_ID, config, now_ms};
use reqwest::StatusCode;
use sam_auth::{Audience, SigningKey};
use sam_vm_agent::{AGENT_VERSION, Agent};
use sam_wire::{ErrorBody, SystemInfo};
use serde_json::Value;
use tokio::net::TcpListener;

struct Harness {
    cp: FakeControlPlane,
    agent: SocketAddr,
    http: reqwest::Client,
    _root: tempfile::TempDir,
}

impl Harness {
    async fn start(min_refresh: Duration) -> Self {
        let cp = FakeControlPlane::start().await;
        let root = tempfile::tempdir().unwrap();
        let mut cfg = config(&cp, root.path());
        cfg.jwks_min_refresh = min_refresh;
        let router = Agent::new(cfg).unwrap().router();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let agent = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            cp,
            agent,
            http: reqwest::Client::new(),
            _root: root,
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.http.get(format!("http://{}{path}", self.agent));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }

    async fn system_info(&self, token: &str) -> (StatusCode, Value) {
        self.get("/system-info", Some(token)).await
    }
}

fn key(byte: u8) -> SigningKey {
    SigningKey::from_seed([byte; 32])
}

fn code(body: &Value) -> String {
    serde_json::from_value::<ErrorBody>(body.clone())
        .unwrap()
        .code
}

const LONG: Duration = Duration::from_secs(30);

#[tokio::test]
async fn health_needs_no_token() {
    let h = Harness::start(LONG).await;
    let (status, body) = h.get("/health", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["node_id"], NODE_ID);
    assert_eq!(body["version"], AGENT_VERSION);
    // Health never touches the key set.
    assert_eq!(h.cp.jwks_fetches(), 0);
}

#[tokio::test]
async fn unknown_routes_are_json_404s() {
    let h = Harness::start(LONG).await;
    let (status, body) = h.get("/admin", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "not_found");
}

#[tokio::test]
async fn system_info_accepts_a_management_token_for_this_node() {
    let h = Harness::start(LONG).await;
    let k = key(1);
    h.cp.serve_keys(&[&k]);
    let (status, body) = h
        .system_info(&h.cp.token(&k, Audience::NodeManagement, NODE_ID))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let info: SystemInfo = serde_json::from_value(body).unwrap();
    assert_eq!(info.node_id, NODE_ID);
    assert_eq!(info.agent_version, AGENT_VERSION);
    assert!(!info.hostname.is_empty());
    assert!(info.metrics.memory_total_kib > 0);
    assert!(info.metrics.disk_total_bytes > 0);

    // The key set is cached: more requests, no more fetches.
    for _ in 0..3 {
        let token = h.cp.token(&k, Audience::NodeManagement, NODE_ID);
        assert_eq!(h.system_info(&token).await.0, StatusCode::OK);
    }
    assert_eq!(h.cp.jwks_fetches(), 1);
}

#[tokio::test]
async fn system_info_refuses_bad_tokens_with_their_codes() {
    let h = Harness::start(LONG).await;
    let k = key(1);
    h.cp.serve_keys(&[&k]);

    let (status, body) = h.get("/system-info", None).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::UNAUTHORIZED, "token_missing")
    );

    let basic = h
        .http
        .get(format!("http://{}/system-info", h.agent))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(basic.headers()["www-authenticate"], "Bearer");

    let two_hours_ago = now_ms() - 2 * 3600 * 1000;
    let expired =
        h.cp.token_at(&k, Audience::NodeManagement, NODE_ID, two_hours_ago);
    let wrong_audience = h.cp.token(&k, Audience::NodeCallback, NODE_ID);
    let wrong_issuer = k.issue(
        "http://api.evil",
        &sam_auth::Grant {
            audience: Audience::NodeManagement,
            node_id: NODE_ID.to_owned(),
            workspace_id: None,
            port: None,
            ttl_secs: 3600,
        },
        now_ms(),
    );
    // Header (and kid) of the trusted key, claims and signature of another.
    let forged = {
        let genuine = h.cp.token(&k, Audience::NodeManagement, NODE_ID);
        let other = h.cp.token(&key(2), Audience::NodeManagement, NODE_ID);
        let head = genuine.split('.').next().unwrap();
        let rest = &other[other.find('.').unwrap()..];
        format!("{head}{rest}")
    };
    let cases = [
        (expired, StatusCode::UNAUTHORIZED, "token_expired"),
        (
            wrong_audience,
            StatusCode::UNAUTHORIZED,
            "token_wrong_audience",
        ),
        (wrong_issuer, StatusCode::UNAUTHORIZED, "token_wrong_issuer"),
        (forged, StatusCode::UNAUTHORIZED, "token_invalid_signature"),
        (
            "garbage".to_owned(),
            StatusCode::UNAUTHORIZED,
            "token_malformed",
        ),
        (
            h.cp.token(&k, Audience::NodeManagement, "01HZX3Y9999999999999999999"),
            StatusCode::FORBIDDEN,
            "token_scope_mismatch",
        ),
    ];
    for (token, want_status, want_code) in cases {
        let (status, body) = h.system_info(&token).await;
        assert_eq!(
            (status, code(&body).as_str()),
            (want_status, want_code),
            "{body}"
        );
        assert!(!body["message"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn unavailable_key_set_is_a_503() {
    let h = Harness::start(LONG).await;
    // The fake serves no key set yet.
    let token = h.cp.token(&key(1), Audience::NodeManagement, NODE_ID);
    let (status, body) = h.system_info(&token).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "jwks_unavailable")
    );
    assert_eq!(h.cp.jwks_fetches(), 1);
}

#[tokio::test]
async fn rotated_keys_are_picked_up_and_refreshes_are_rate_limited() {
    let min_refresh = Duration::from_millis(1500);
    let h = Harness::start(min_refresh).await;
    let (old, new) = (key(1), key(2));
    h.cp.serve_keys(&[&old]);
    let token_old = h.cp.token(&old, Audience::NodeManagement, NODE_ID);
    let token_new = h.cp.token(&new, Audience::NodeManagement, NODE_ID);

    assert_eq!(h.system_info(&token_old).await.0, StatusCode::OK);
    assert_eq!(h.cp.jwks_fetches(), 1);

    // The control plane rotates. Right after a fetch, an unknown kid does not
    // trigger another one.
    h.cp.serve_keys(&[&new]);
    let (status, body) = h.system_info(&token_new).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::UNAUTHORIZED, "token_unknown_key")
    );
    assert_eq!(h.cp.jwks_fetches(), 1);

    // Once the limit has passed, the unknown kid refreshes the set.
    tokio::time::sleep(min_refresh + Duration::from_millis(100)).await;
    assert_eq!(h.system_info(&token_new).await.0, StatusCode::OK);
    assert_eq!(h.cp.jwks_fetches(), 2);

    // The retired key is gone, and asking for it again right away is refused
    // without a fetch; so is a flood of made-up key ids.
    assert_eq!(h.system_info(&token_old).await.0, StatusCode::UNAUTHORIZED);
    for seed in 10..20 {
        let token = h.cp.token(&key(seed), Audience::NodeManagement, NODE_ID);
        assert_eq!(h.system_info(&token).await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(h.cp.jwks_fetches(), 2);
}

#[tokio::test]
async fn concurrent_requests_share_one_refresh() {
    let min_refresh = Duration::from_secs(1);
    let h = Harness::start(min_refresh).await;
    let (first, second) = (key(1), key(2));
    h.cp.serve_keys(&[&first]);
    let token = h.cp.token(&first, Audience::NodeManagement, NODE_ID);
    assert_eq!(h.system_info(&token).await.0, StatusCode::OK);

    h.cp.serve_keys(&[&first, &second]);
    // A slow key set keeps the first refresh in flight while the others arrive.
    *h.cp.state.jwks_delay.lock().unwrap() = Duration::from_millis(300);
    tokio::time::sleep(min_refresh + Duration::from_millis(100)).await;
    let token = h.cp.token(&second, Audience::NodeManagement, NODE_ID);
    let requests = (0..8).map(|_| h.system_info(&token));
    let results = futures::future::join_all(requests).await;
    for (status, body) in results {
        // Requests that waited for the refresh in flight use its result
        // instead of fetching again or being turned away by the rate limit.
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(h.cp.jwks_fetches(), 2);
}
