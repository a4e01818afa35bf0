//! Fault injection through the `/_devcloud/` admin API and the CLI flags:
//! 429s and 5xx in each provider's shape (and how SAM's real clients
//! classify them), faulted requests without side effects and the
//! `after_effect` variant that leaves one behind, seeded probabilities,
//! expiry and clearing, failing and slow first boots, and servers that
//! vanish or whose agent is killed or frozen.

// Helpers outside #[test] fns panic on purpose: the panic is the report.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    ReqwestHttp, TOKEN, TestCloud, agent_user_data, alive, decode, devcloud_exit_status,
    file_server, proc_state, read_pid, spawn_devcloud, wait_until,
};
use reqwest::{Method, StatusCode};
use sam_devcloud::{Config, FaultConfig, ScalewayCredential};
use sam_providers::{
    CreateServer, HetznerClient, ProviderError, ProviderErrorKind, ScalewayClient,
    ScalewayCreateServer,
};
use serde_json::{Value, json};

const SECRET: &str = "6c0f9a57-2d3e-4b8a-9f1c-0e7d5a4b3c21";
const PROJECT: &str = "b1e2d3c4-a5f6-4789-8abc-def012345678";
const ZONE: &str = "fr-par-1";

// ---- Harness ----

struct Cloud(TestCloud);

impl Deref for Cloud {
    type Target = TestCloud;

    fn deref(&self) -> &TestCloud {
        &self.0
    }
}

impl Cloud {
    /// Both APIs configured, quick boots, fault dice seeded with `seed`.
    async fn start(dir: &Path, seed: u64) -> Self {
        Cloud(
            TestCloud::start_with(Config {
                state_dir: dir.to_path_buf(),
                tokens: vec![TOKEN.into()],
                boot_delay: Duration::from_millis(10),
                scaleway: Some(ScalewayCredential {
                    secret_key: SECRET.into(),
                    project_id: PROJECT.into(),
                }),
                faults: FaultConfig {
                    seed: Some(seed),
                    ..FaultConfig::default()
                },
                image_env: Vec::new(),
            })
            .await,
        )
    }

    async fn stop(self) {
        self.0.stop().await;
    }

    fn hetzner(&self) -> HetznerClient<ReqwestHttp> {
        HetznerClient::new(
            ReqwestHttp(self.client.clone()),
            format!("{}/v1", self.base),
            TOKEN,
        )
    }

    fn scaleway(&self) -> ScalewayClient<ReqwestHttp> {
        ScalewayClient::new(
            ReqwestHttp(self.client.clone()),
            &self.base,
            SECRET,
            PROJECT,
        )
    }

    /// Adds an API fault rule; returns its id.
    async fn fault(&self, rule: Value) -> u64 {
        let (status, body) = self.post("/_devcloud/faults", rule).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_u64().unwrap()
    }

    async fn boot_fault(&self, rule: Value) -> u64 {
        let (status, body) = self.post("/_devcloud/boot-faults", rule).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_u64().unwrap()
    }

    async fn rules(&self) -> Value {
        let (status, body) = self.get("/_devcloud/faults").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn stats(&self) -> Value {
        let (status, body) = self.get("/_devcloud/stats").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// A raw Hetzner call: status, headers and body.
    async fn raw(&self, method: Method, path: &str, body: Option<Value>) -> RawResponse {
        let request = self.request(method, path).bearer_auth(TOKEN);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        raw(request).await
    }

    /// A raw Scaleway call with the right key.
    async fn raw_scaleway(&self, method: Method, path: &str, body: Option<Value>) -> RawResponse {
        let request = self
            .request(method, &format!("/instance/v1{path}"))
            .header("x-auth-token", SECRET);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        raw(request).await
    }

    async fn hetzner_names(&self) -> Vec<String> {
        let (status, body) = self.get("/v1/servers").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn scaleway_names(&self) -> Vec<String> {
        let r = self
            .raw_scaleway(Method::GET, &format!("/zones/{ZONE}/servers"), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Whether `GET /v1/servers` succeeds (it is not faulted).
    async fn list_ok(&self) -> bool {
        self.raw(Method::GET, "/v1/servers", None).await.status == StatusCode::OK
    }
}

struct RawResponse {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn raw(request: reqwest::RequestBuilder) -> RawResponse {
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"))
    };
    RawResponse {
        status,
        headers,
        body,
    }
}

fn hetzner_request(name: &str, user_data: &str) -> CreateServer {
    CreateServer {
        name: name.into(),
        server_type: "cx23".into(),
        location: "nbg1".into(),
        image: "ubuntu-24.04".into(),
        user_data: user_data.into(),
        labels: [("sam-node".to_owned(), name.to_owned())].into(),
    }
}

fn scaleway_request(name: &str) -> ScalewayCreateServer {
    ScalewayCreateServer {
        name: name.into(),
        commercial_type: "DEV1-S".into(),
        zone: ZONE.into(),
        image: "ubuntu_noble".into(),
        tags: vec![format!("sam-node={name}")],
        user_data: "#cloud-config\n".into(),
    }
}

fn agent_server(name: &str, user_data: &str) -> Value {
    json!({
        "name": name,
        "server_type": "cx23",
        "image": "ubuntu-24.04",
        "location": "nbg1",
        "user_data": user_data,
    })
}

fn expect_err<T: std::fmt::Debug>(result: Result<T, ProviderError>) -> ProviderError {
    result.expect_err("the call should fail")
}

/// Waits for the agent of the machine rooted at `root` to record its pid.
async fn agent_pid(root: &Path) -> i32 {
    let pid_file = root.join("var/lib/sam/agent.pid");
    wait_until(Duration::from_secs(20), "agent pid", || async {
        read_pid(&pid_file).filter(|p| alive(*p))
    })
    .await
}

async fn wait_gone(pid: i32) {
    wait_until(
        Duration::from_secs(10),
        &format!("pid {pid} to exit"),
        || async { (!alive(pid)).then_some(()) },
    )
    .await;
}

/// Creates a server running the test agent; returns its id and agent pid.
async fn agent_node(cloud: &Cloud, name: &str, files_port: u16) -> (u64, i32) {
    let url = format!("http://127.0.0.1:{files_port}/agent");
    let created = cloud
        .create(agent_server(name, &agent_user_data(&url)))
        .await;
    let id = created["server"]["id"].as_u64().unwrap();
    let pid = agent_pid(&cloud.server_dir(id).join("root")).await;
    (id, pid)
}

// ---- API faults ----

#[tokio::test]
async fn rate_limits_carry_retry_after_and_classify_as_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(dir.path(), 1).await;

    // Hetzner: the wire shape.
    cloud
        .fault(json!({"api": "hetzner", "kind": "rate_limit", "retry_after_secs": 7, "count": 1}))
        .await;
    let r = cloud.raw(Method::GET, "/v1/servers", None).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    assert_eq!(r.header("ratelimit-limit"), Some("3600"));
    assert!(r.header("ratelimit-reset").is_some());
    assert_eq!(r.body["error"]["code"], "rate_limit_exceeded");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rule")
    );
    assert!(cloud.list_ok().await, "count 1 fires once");

    // Hetzner: SAM's client.
    cloud
        .fault(json!({"kind": "rate_limit", "retry_after_secs": 7, "count": 1}))
        .await;
    let err = expect_err(
        cloud
            .hetzner()
            .create_server(&hetzner_request("limited", ""))
            .await,
    );
    assert_eq!(err.kind, ProviderErrorKind::RateLimited, "{err}");
    assert_eq!(err.retry_after_secs, Some(7));
    assert_eq!(err.status, Some(429));
    assert!(err.is_retryable());
    assert!(cloud.hetzner_names().await.is_empty(), "no side effect");

    // Scaleway: the wire shape, then SAM's client.
    cloud
        .fault(json!({"api": "scaleway", "kind": "rate_limit", "retry_after_secs": 3, "count": 1}))
        .await;
    assert!(
        cloud.list_ok().await,
        "a scaleway rule leaves Hetzner alone"
    );
    let r = cloud
        .raw_scaleway(Method::GET, &format!("/zones/{ZONE}/servers"), None)
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header("retry-after"), Some("3"));
    assert_eq!(r.body["type"], "too_many_requests");

    cloud
        .fault(json!({"api": "scaleway", "kind": "rate_limit", "retry_after_secs": 3, "count": 1}))
        .await;
    let err = expect_err(
        cloud
            .scaleway()
            .create_server(&scaleway_request("sl"))
            .await,
    );
    assert_eq!(err.kind, ProviderErrorKind::RateLimited, "{err}");
    assert_eq!(err.retry_after_secs, Some(3));
    assert!(cloud.scaleway_names().await.is_empty(), "no side effect");

    let counters = cloud.stats().await;
    assert_eq!(counters["faults"]["rate_limit"], 4, "{counters}");
    assert_eq!(counters["faults"]["server_error"], 0, "{counters}");
    assert_eq!(counters["servers"]["created"], 0, "{counters}");
    cloud.stop().await;
}

#[tokio::test]
async fn server_errors_are_provider_shaped_and_transient() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(dir.path(), 1).await;
    let hetzner = cloud.hetzner();

    for (status, code) in [
        (500, "server_error"),
        (502, "server_error"),
        (503, "unavailable"),
    ] {
        cloud
            .fault(json!({"api": "hetzner", "kind": "server_error", "status": status, "count": 1}))
            .await;
        let r = cloud.raw(Method::GET, "/v1/servers", None).await;
        assert_eq!(r.status.as_u16(), status);
        assert_eq!(r.body["error"]["code"], code, "{}", r.body);
        assert!(r.header("retry-after").is_none());

        cloud
            .fault(json!({"api": "hetzner", "kind": "server_error", "status": status, "count": 1}))
            .await;
        let err = expect_err(hetzner.list_servers(&BTreeMap::new()).await);
        assert_eq!(err.kind, ProviderErrorKind::Transient, "{err}");
        assert_eq!(err.status, Some(status));
        assert!(err.is_retryable());
    }

    // A 503 may say when to come back; the client honours it.
    cloud
        .fault(json!({"kind": "server_error", "status": 503, "retry_after_secs": 2, "count": 1}))
        .await;
    let err = expect_err(hetzner.get_server("1").await);
    assert_eq!(err.kind, ProviderErrorKind::Transient, "{err}");
    assert_eq!(err.retry_after_secs, Some(2));

    for status in [500, 502, 503] {
        cloud
            .fault(json!({"api": "scaleway", "kind": "server_error", "status": status, "count": 2}))
            .await;
        let r = cloud
            .raw_scaleway(Method::GET, &format!("/zones/{ZONE}/servers"), None)
            .await;
        assert_eq!(r.status.as_u16(), status);
        assert!(r.body["type"].is_string(), "{}", r.body);
        let err = expect_err(cloud.scaleway().list_servers(ZONE, &[]).await);
        assert_eq!(err.kind, ProviderErrorKind::Transient, "{err}");
        assert_eq!(err.status, Some(status));
    }

    let counters = cloud.stats().await;
    assert_eq!(counters["faults"]["server_error"], 13, "{counters}");
    cloud.stop().await;
}

#[tokio::test]
async fn faulted_requests_have_no_side_effect_unless_after_effect() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(dir.path(), 1).await;
    let hetzner = cloud.hetzner();

    // Create, faulted: nothing created.
    cloud
        .fault(json!({"method": "POST", "path": "/v1/servers", "kind": "server_error", "count": 1}))
        .await;
    let err = expect_err(hetzner.create_server(&hetzner_request("n1", "")).await);
    assert_eq!(err.kind, ProviderErrorKind::Transient);
    assert!(cloud.hetzner_names().await.is_empty());

    // Create, faulted after the effect: the server exists all the same —
    // exactly how real clouds leave orphans behind.
    cloud
        .fault(json!({
            "method": "POST", "path": "/v1/servers", "kind": "server_error",
            "status": 502, "count": 1, "after_effect": true,
        }))
        .await;
    let err = expect_err(hetzner.create_server(&hetzner_request("n2", "")).await);
    assert_eq!(err.kind, ProviderErrorKind::Transient);
    assert_eq!(err.status, Some(502));
    assert_eq!(cloud.hetzner_names().await, ["n2"]);
    let id = hetzner
        .list_servers(&[("sam-node".to_owned(), "n2".to_owned())].into())
        .await
        .unwrap()[0]
        .id
        .clone();

    // Delete, faulted: the server stays.
    cloud
        .fault(json!({"method": "DELETE", "kind": "server_error", "count": 1}))
        .await;
    expect_err(hetzner.delete_server(&id).await);
    assert_eq!(cloud.hetzner_names().await, ["n2"]);
    // Delete, faulted after the effect: gone although the caller saw 5xx.
    cloud
        .fault(
            json!({"method": "DELETE", "kind": "server_error", "count": 1, "after_effect": true}),
        )
        .await;
    expect_err(hetzner.delete_server(&id).await);
    assert!(cloud.hetzner_names().await.is_empty());

    // Scaleway create, both ways.
    let scaleway = cloud.scaleway();
    let create_path = "/instance/v1/zones/*/servers";
    cloud
        .fault(json!({"method": "POST", "path": create_path, "kind": "server_error", "count": 1}))
        .await;
    expect_err(scaleway.create_server(&scaleway_request("s1")).await);
    assert!(cloud.scaleway_names().await.is_empty());
    cloud
        .fault(json!({
            "method": "POST", "path": create_path, "kind": "server_error",
            "count": 1, "after_effect": true,
        }))
        .await;
    let r = cloud
        .raw_scaleway(
            Method::POST,
            &format!("/zones/{ZONE}/servers"),
            Some(json!({"name": "s2", "commercial_type": "DEV1-S", "image": "ubuntu_noble"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(cloud.scaleway_names().await, ["s2"]);

    let counters = cloud.stats().await;
    assert_eq!(counters["faults"]["server_error"], 6, "{counters}");
    assert_eq!(counters["faults"]["after_effect"], 3, "{counters}");
    assert_eq!(counters["servers"]["created"], 2, "{counters}");
    assert_eq!(counters["servers"]["deleted"], 1, "{counters}");
    assert_eq!(counters["servers"]["live"], 1, "{counters}");
    cloud.stop().await;
}

#[tokio::test]
async fn rules_filter_by_method_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(dir.path(), 1).await;
    let id = cloud
        .fault(json!({"method": "delete", "path_prefix": "/v1/servers", "kind": "server_error"}))
        .await;
    let rules = cloud.rules().await;
    assert_eq!(rules["faults"][0]["id"], id);
    assert_eq!(rules["faults"][0]["method"], "DELETE", "normalised");
    assert_eq!(rules["faults"][0]["status"], 500, "default status");
    assert_eq!(rules["faults"][0]["remaining"], Value::Null);

    let created = cloud.create(agent_server("keep", "")).await;
    let server = created["server"]["id"].as_u64().unwrap();
    assert!(cloud.list_ok().await);
    let path = format!("/v1/servers/{server}");
    assert_eq!(
        cloud.raw(Method::GET, &path, None).await.status,
        StatusCode::OK
    );
    for _ in 0..3 {
        let r = cloud.raw(Method::DELETE, &path, None).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    assert_eq!(cloud.hetzner_names().await, ["keep"]);
    // Other prefixes and the Scaleway API are untouched.
    let r = cloud.raw(Method::DELETE, "/v1/actions/1", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let rules = cloud.rules().await;
    assert_eq!(rules["faults"][0]["fired"], 3, "{rules}");
    assert_eq!(rules["faults"][0]["matched"], 3, "{rules}");

    // Removing the one rule lets the delete through.
    let (status, body) = cloud.delete(&format!("/_devcloud/faults/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["removed"], id);
    let (status, _) = cloud.delete(&format!("/_devcloud/faults/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        cloud.raw(Method::DELETE, &path, None).await.status,
        StatusCode::OK
    );

    // Bad rules are refused with the reason.
    for bad in [
        json!({"kind": "server_error", "status": 404}),
        json!({"kind": "teapot"}),
        json!({"kind": "rate_limit", "probability": 2}),
        json!({"kind": "rate_limit", "count": 0}),
        json!({"kind": "rate_limit", "unknown_field": true}),
    ] {
        let (status, body) = cloud.post("/_devcloud/faults", bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} -> {body}");
        assert_eq!(body["error"]["code"], "invalid_input", "{body}");
    }
    cloud.stop().await;
}

/// The outcomes of `n` listing calls: true where the call was faulted.
async fn pattern(cloud: &Cloud, n: usize) -> Vec<bool> {
    let mut outcomes = Vec::with_capacity(n);
    for _ in 0..n {
        outcomes.push(!cloud.list_ok().await);
    }
    outcomes
}

#[tokio::test]
async fn probabilities_are_reproducible_with_a_seed() {
    let rule = json!({"kind": "server_error", "status": 503, "probability": 0.5});
    let mut patterns = Vec::new();
    for seed in [42, 42, 43] {
        let dir = tempfile::tempdir().unwrap();
        let cloud = Cloud::start(dir.path(), seed).await;
        assert_eq!(cloud.rules().await["seed"], seed);
        cloud.fault(rule.clone()).await;
        patterns.push(pattern(&cloud, 40).await);
        let counters = cloud.stats().await;
        assert_eq!(counters["seed"], seed);
        assert_eq!(counters["requests"]["hetzner"], 40, "{counters}");
        cloud.stop().await;
    }
    assert_eq!(patterns[0], patterns[1], "same --fault-seed, same faults");
    assert_ne!(patterns[0], patterns[2], "another seed, other faults");
    let hits = patterns[0].iter().filter(|f| **f).count();
    assert!((8..=32).contains(&hits), "about half faulted: {hits}");

    // A rule's own seed reproduces it whatever the devcloud's seed and the
    // rule's id; `count` caps a probability rule.
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(dir.path(), 7).await;
    let seeded = json!({"kind": "server_error", "probability": 0.3, "seed": 99});
    cloud.fault(seeded.clone()).await;
    let first = pattern(&cloud, 30).await;
    let (status, body) = cloud.delete("/_devcloud/faults").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["cleared"], 1);
    cloud.fault(json!({"kind": "rate_limit", "count": 1})).await;
    assert!(!cloud.list_ok().await);
    cloud.fault(seeded).await;
    assert_eq!(pattern(&cloud, 30).await, first);
    cloud.delete("/_devcloud/faults").await;

    cloud
        .fault(json!({"kind": "server_error", "probability": 0.5, "count": 3}))
        .await;
    let capped = pattern(&cloud, 60).await;
    assert_eq!(capped.iter().filter(|f| **f).count(), 3);
    assert!(cloud.rules().await["faults"].as_array().unwrap().is_empty());
    cloud.stop().await;
}

#[tokio::test]
async fn rules_expire_after_their_count_and_clearing_removes_all() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(dir.path(), 1).await;
    let id = cloud
        .fault(json!({"kind": "server_error", "count": 2}))
        .await;
    assert_eq!(cloud.rules().await["faults"][0]["remaining"], 2);
    assert!(!cloud.list_ok().await);
    let rules = cloud.rules().await;
    assert_eq!(rules["faults"][0]["id"], id);
    assert_eq!(rules["faults"][0]["remaining"], 1);
    assert!(!cloud.list_ok().await);
    assert!(cloud.rules().await["faults"].as_array().unwrap().is_empty());
    assert!(cloud.list_ok().await);
    assert!(cloud.list_ok().await);

    // Rules apply in creation order; the first that fires wins.
    cloud.fault(json!({"kind": "rate_limit", "count": 1})).await;
    cloud
        .fault(json!({"kind": "server_error", "status": 502, "count": 1}))
        .await;
    assert_eq!(
        cloud.raw(Method::GET, "/v1/servers", None).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        cloud.raw(Method::GET, "/v1/servers", None).await.status,
        StatusCode::BAD_GATEWAY
    );

    // Clearing removes API and boot rules alike.
    cloud.fault(json!({"kind": "server_error"})).await;
    cloud.fault(json!({"kind": "rate_limit"})).await;
    cloud.boot_fault(json!({"kind": "fail"})).await;
    assert!(!cloud.list_ok().await);
    let (status, body) = cloud.delete("/_devcloud/faults").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["cleared"], 3);
    assert!(cloud.list_ok().await);
    let rules = cloud.rules().await;
    assert!(rules["faults"].as_array().unwrap().is_empty(), "{rules}");
    assert!(
        rules["boot_faults"].as_array().unwrap().is_empty(),
        "{rules}"
    );

    // The admin API itself is never faulted.
    cloud.fault(json!({"kind": "server_error"})).await;
    assert_eq!(cloud.stats().await["rules"]["api"], 1);
    cloud.stop().await;
}

// ---- Boot faults ----

#[tokio::test]
async fn failed_boot_leaves_a_running_server_without_agent() {
    let (files_port, _files) = file_server().await;
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(dir.path(), 1).await;
    cloud.boot_fault(json!({"kind": "fail", "count": 1})).await;
    let url = format!("http://127.0.0.1:{files_port}/agent");

    let broken = cloud
        .create(agent_server("broken", &agent_user_data(&url)))
        .await["server"]["id"]
        .as_u64()
        .unwrap();
    cloud.wait_status(broken, "running").await;
    // The rule fired once and is gone; the next server boots normally.
    let (status, body) = cloud.get("/_devcloud/boot-faults").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["boot_faults"].as_array().unwrap().is_empty(), "{body}");
    let (healthy, healthy_pid) = agent_node(&cloud, "healthy", files_port).await;
    assert!(alive(healthy_pid));

    let root = cloud.server_dir(broken).join("root");
    assert!(
        !root.join("usr/local/bin/sam-agent").exists(),
        "user-data never ran"
    );
    assert!(read_pid(&root.join("var/lib/sam/agent.pid")).is_none());
    assert!(cloud.console(broken).contains("fault injected"));
    let (_, servers) = cloud.get("/_devcloud/servers").await;
    let by_id = |id: u64| {
        servers["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(by_id(broken)["processes"], json!([]));
    assert_eq!(by_id(broken)["status"], "running");
    assert_eq!(by_id(healthy)["processes"].as_array().unwrap().len(), 1);

    // A reboot does not run the user-data either: cloud-init is done.
    let (status, body) = cloud
        .post(&format!("/v1/servers/{broken}/actions/reboot"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    cloud
        .wait_action(body["action"]["id"].as_u64().unwrap())
        .await;
    assert!(read_pid(&root.join("var/lib/sam/agent.pid")).is_none());

    let counters = cloud.stats().await;
    assert_eq!(counters["faults"]["boot_fail"], 1, "{counters}");
    cloud.stop().await;
}

#[tokio::test]
async fn slow_boot_delays_the_agent() {
    let (files_port, _files) = file_server().await;
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(dir.path(), 1).await;
    cloud
        .boot_fault(json!({"api": "hetzner", "kind": "slow", "delay_ms": 1500, "count": 1}))
        .await;
    let started = Instant::now();
    let (id, _) = agent_node(&cloud, "slow", files_port).await;
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert!(cloud.console(id).contains("1500 ms longer"));
    let started = Instant::now();
    agent_node(&cloud, "fast", files_port).await;
    assert!(started.elapsed() < Duration::from_millis(1500));

    // Refused: a slow boot without a delay, a failure with one.
    for bad in [
        json!({"kind": "slow"}),
        json!({"kind": "fail", "delay_ms": 5}),
    ] {
        let (status, body) = cloud.post("/_devcloud/boot-faults", bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    assert_eq!(cloud.stats().await["faults"]["boot_slow"], 1);
    cloud.stop().await;
}

#[tokio::test]
async fn boot_faults_apply_to_scaleway_first_power_on() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(dir.path(), 1).await;
    cloud
        .boot_fault(json!({"api": "scaleway", "kind": "fail"}))
        .await;
    // A Hetzner server is not affected by a Scaleway-only rule.
    let hetzner = cloud.create(agent_server("h", "#cloud-config\n")).await["server"]["id"]
        .as_u64()
        .unwrap();
    cloud.wait_status(hetzner, "running").await;
    assert!(!cloud.console(hetzner).contains("fault injected"));

    let server = cloud
        .scaleway()
        .create_server(&scaleway_request("s"))
        .await
        .unwrap();
    let id = u64::from_str_radix(&server.id[24..], 16).unwrap();
    wait_until(
        Duration::from_secs(20),
        "scaleway server running",
        || async {
            let s = cloud
                .scaleway()
                .get_server(ZONE, &server.id)
                .await
                .unwrap()?;
            (s.state == "running").then_some(())
        },
    )
    .await;
    assert!(cloud.console(id).contains("fault injected"));
    assert_eq!(cloud.stats().await["faults"]["boot_fail"], 1);
    cloud.stop().await;
}

// ---- Server faults ----

#[tokio::test]
async fn vanish_removes_the_server_and_kills_its_agent() {
    let (files_port, _files) = file_server().await;
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(dir.path(), 1).await;
    let (id, pid) = agent_node(&cloud, "doomed", files_port).await;
    let root = cloud.server_dir(id).join("root");
    let helper = read_pid(&root.join("var/lib/sam/helper.pid")).unwrap();

    let (status, body) = cloud
        .post(&format!("/_devcloud/servers/{id}/vanish"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["server"]["id"], id);
    assert_eq!(body["server"]["name"], "doomed");
    assert_eq!(body["server"]["api"], "hetzner");
    // Killed before the answer, helper included.
    assert!(!alive(pid), "agent survived");
    assert!(!alive(helper), "helper survived");
    let (status, _) = cloud.get(&format!("/v1/servers/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        cloud
            .hetzner()
            .get_server(&id.to_string())
            .await
            .unwrap()
            .is_none()
    );
    assert!(cloud.hetzner_names().await.is_empty());
    let (status, _) = cloud
        .post(&format!("/_devcloud/servers/{id}/vanish"), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A Scaleway server, named by its UUID: its volume goes too.
    let r = cloud
        .raw_scaleway(
            Method::POST,
            &format!("/zones/{ZONE}/servers"),
            Some(json!({"name": "s", "commercial_type": "DEV1-S", "image": "ubuntu_noble"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let uuid = r.body["server"]["id"].as_str().unwrap().to_owned();
    let volume = r.body["server"]["volumes"]["0"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = cloud
        .post(&format!("/_devcloud/servers/{uuid}/vanish"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["server"]["provider_id"], uuid.as_str());
    let r = cloud
        .raw_scaleway(Method::GET, &format!("/zones/{ZONE}/servers/{uuid}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = cloud
        .raw_scaleway(
            Method::GET,
            &format!("/zones/{ZONE}/volumes/{volume}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let counters = cloud.stats().await;
    assert_eq!(counters["servers"]["vanished"], 2, "{counters}");
    assert_eq!(counters["servers"]["deleted"], 0, "{counters}");
    assert_eq!(counters["servers"]["live"], 0, "{counters}");
    assert_eq!(counters["faults"]["vanish"], 2, "{counters}");
    let (_, servers) = cloud.get("/_devcloud/servers").await;
    assert_eq!(servers["servers"], json!([]));
    cloud.stop().await;
}

#[tokio::test]
async fn kill_agent_ends_the_agent_for_good_and_keeps_the_server() {
    let (files_port, _files) = file_server().await;
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(dir.path(), 1).await;
    let (id, pid) = agent_node(&cloud, "victim", files_port).await;
    let root = cloud.server_dir(id).join("root");

    let (status, body) = cloud
        .post(&format!("/_devcloud/servers/{id}/kill-agent"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["killed"], json!(["sam-agent.service"]));
    assert!(!alive(pid));
    // `Restart=always` with RestartSec=200ms would have brought it back;
    // a killed agent stays dead.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(read_pid(&root.join("var/lib/sam/agent.pid")), Some(pid));
    assert!(!alive(pid));
    assert_eq!(cloud.server(id).await["status"], "running");
    let (_, servers) = cloud.get("/_devcloud/servers").await;
    assert_eq!(servers["servers"][0]["processes"], json!([]));
    assert!(cloud.console(id).contains("sam-agent.service: killed"));

    // Nothing left to kill; an unknown server is a 404.
    let (_, body) = cloud
        .post(&format!("/_devcloud/servers/{id}/kill-agent"), json!({}))
        .await;
    assert_eq!(body["killed"], json!([]));
    let (status, _) = cloud
        .post("/_devcloud/servers/999/kill-agent", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A reboot brings the enabled agent back.
    let (_, body) = cloud
        .post(&format!("/v1/servers/{id}/actions/reboot"), json!({}))
        .await;
    cloud
        .wait_action(body["action"]["id"].as_u64().unwrap())
        .await;
    let pid_file = root.join("var/lib/sam/agent.pid");
    wait_until(Duration::from_secs(20), "agent after reboot", || async {
        read_pid(&pid_file).filter(|p| *p != pid && alive(*p))
    })
    .await;
    assert_eq!(cloud.stats().await["faults"]["kill_agent"], 1);
    cloud.stop().await;
}

#[tokio::test]
async fn freeze_stops_the_agent_until_thawed_and_delete_still_cleans_up() {
    let (files_port, _files) = file_server().await;
    let dir = tempfile::tempdir().unwrap();
    let cloud = Cloud::start(dir.path(), 1).await;
    let (id, pid) = agent_node(&cloud, "ice", files_port).await;

    let (status, body) = cloud
        .post(&format!("/_devcloud/servers/{id}/freeze"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["signalled"][0]["unit"], "sam-agent.service");
    assert_eq!(body["signalled"][0]["pgid"], pid);
    wait_until(Duration::from_secs(5), "agent stopped", || async {
        (proc_state(pid) == Some('T')).then_some(())
    })
    .await;

    let (status, _) = cloud
        .post(&format!("/_devcloud/servers/{id}/thaw"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    wait_until(Duration::from_secs(5), "agent running", || async {
        matches!(proc_state(pid), Some('S' | 'R')).then_some(())
    })
    .await;

    // Deleting a frozen server still ends its processes promptly.
    cloud
        .post(&format!("/_devcloud/servers/{id}/freeze"), json!({}))
        .await;
    let started = Instant::now();
    let (status, _) = cloud.delete(&format!("/v1/servers/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    wait_gone(pid).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(cloud.stats().await["faults"]["freeze"], 2);
    cloud.stop().await;
}

// ---- CLI ----

#[tokio::test]
async fn cli_flags_install_rules_and_seed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = spawn_devcloud(
        dir.path(),
        &[
            "--token",
            "t",
            "--boot-delay-ms",
            "10",
            "--fault-seed",
            "1234",
            "--fault",
            r#"{"method": "GET", "kind": "rate_limit", "retry_after_secs": 9, "count": 1}"#,
            "--boot-fault",
            r#"{"kind": "slow", "delay_ms": 100, "probability": 0.5}"#,
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let (status, rules) = decode(
        client
            .get(format!("{base}/_devcloud/faults"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rules["seed"], 1234);
    assert_eq!(rules["faults"][0]["retry_after_secs"], 9);
    assert_eq!(rules["boot_faults"][0]["probability"], 0.5);

    let response = client
        .get(format!("{base}/v1/servers"))
        .bearer_auth("t")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "9");
    let response = client
        .get(format!("{base}/v1/servers"))
        .bearer_auth("t")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    child.kill().await.unwrap();

    // A bad rule stops devcloud before it listens.
    for bad in [
        &["--token", "t", "--fault", r#"{"kind": "nope"}"#][..],
        &["--token", "t", "--fault", "not json"][..],
        &["--token", "t", "--boot-fault", r#"{"kind": "slow"}"#][..],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let status = devcloud_exit_status(dir.path(), bad).await;
        assert!(!status.success(), "{bad:?}");
    }
}
