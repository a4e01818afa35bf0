//! `chaos_provider_faults_no_orphans`: many node creations and deletions
//! while the cloud misbehaves (rate limits, 5xx — some after the work was
//! done — failed boots, vanished servers, killed agents) and the Worker is
//! restarted; then one sweep, after which every server of this deployment
//! belongs to a live node and no node is past its deadline.
//!
//! Fault rules are global to the cloud stand-in, so `cargo xtask test` runs
//! this test alone, after the others. The Worker under test is a scratch
//! Worker (restartable, own D1, own deployment label).

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use sam_e2e::{Platform, ScratchWorker};
use serde_json::{Value, json};

const CREATIONS: usize = 32;
const BOOT_TIMEOUT_SECS: u64 = 8;
const STALE_SECS: u64 = 4;

struct Cloud {
    base: String,
    http: reqwest::Client,
}

impl Cloud {
    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}/_devcloud{path}", self.base));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "devcloud {path}: {status} {body}");
        body
    }

    async fn fault(&self, rule: Value) {
        self.admin(reqwest::Method::POST, "/faults", Some(rule))
            .await;
    }
}

#[tokio::test]
async fn chaos_provider_faults_no_orphans() {
    let p = Platform::from_env();
    let seed: u64 = std::env::var("SAM_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| u64::try_from(sam_e2e::now_ms()).unwrap_or(7));
    println!("chaos seed {seed} (SAM_CHAOS_SEED={seed} repeats this run)");
    let mut rng = StdRng::seed_from_u64(seed);
    let boot = BOOT_TIMEOUT_SECS.to_string();
    let stale = STALE_SECS.to_string();
    let mut worker = ScratchWorker::start_with_vm_agent(
        &p,
        "chaos",
        &[
            ("NODE_BOOT_TIMEOUT_SECS", &boot),
            ("NODE_HEARTBEAT_STALE_SECS", &stale),
            ("ORPHAN_GRACE_SECS", "0"),
            ("NODE_CREATE_RETRY_BUDGET_SECS", "4"),
            ("MAX_NODES_PER_USER", "100"),
        ],
    )
    .unwrap();
    let cloud = Cloud {
        base: p.devcloud_url.clone(),
        http: reqwest::Client::new(),
    };
    cloud.admin(reqwest::Method::DELETE, "/faults", None).await;
    let user = worker.signed_in_with_cloud(&p, "chaos-user").await.unwrap();
    let deployment = format!("api.sam.localhost-{}", worker.port);

    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..CREATIONS {
        // A Worker restart now and then, with nodes in every state.
        if i > 0 && i % 11 == 0 {
            worker.restart_with_secrets(&[]).await.unwrap();
            *counts.entry("worker_restarts".to_owned()).or_default() += 1;
        }
        let fault = rng.random_range(0..7);
        match fault {
            1 => {
                cloud
                    .fault(
                        json!({ "api": "hetzner", "method": "POST", "path_prefix": "/v1/servers",
                                   "kind": "rate_limit", "retry_after_secs": 1, "count": 1 }),
                    )
                    .await;
                *counts.entry("fault_rate_limit".to_owned()).or_default() += 1;
            }
            2 => {
                let after_effect = rng.random_bool(0.5);
                cloud
                    .fault(
                        json!({ "api": "hetzner", "method": "POST", "path_prefix": "/v1/servers",
                                   "kind": "server_error", "status": 503, "count": 1,
                                   "after_effect": after_effect }),
                    )
                    .await;
                *counts.entry("fault_create_5xx".to_owned()).or_default() += 1;
            }
            3 => {
                cloud
                    .admin(
                        reqwest::Method::POST,
                        "/boot-faults",
                        Some(json!({ "api": "hetzner", "kind": "fail", "count": 1 })),
                    )
                    .await;
                *counts.entry("fault_boot_fail".to_owned()).or_default() += 1;
            }
            4 => {
                cloud
                    .fault(
                        json!({ "api": "hetzner", "method": "DELETE", "path_prefix": "/v1/servers",
                                   "kind": "server_error", "status": 500, "count": 1,
                                   "after_effect": rng.random_bool(0.5) }),
                    )
                    .await;
                *counts.entry("fault_delete_5xx".to_owned()).or_default() += 1;
            }
            _ => {}
        }
        let resp = user
            .post(worker.api("/api/nodes"))
            .json(&json!({ "provider": "hetzner", "size": "small" }))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("create answered {status} with non-JSON ({e}): {text}"));
        *counts.entry("creations".to_owned()).or_default() += 1;
        if status != 201 {
            *counts.entry("creations_refused".to_owned()).or_default() += 1;
        }
        let Some(id) = body["id"].as_str().map(str::to_owned) else {
            continue;
        };
        let server = body["provider_server_id"].as_str().map(str::to_owned);
        // Things that happen to running servers.
        match (rng.random_range(0..6), &server) {
            (0, Some(server)) => {
                cloud
                    .admin(
                        reqwest::Method::POST,
                        &format!("/servers/{server}/vanish"),
                        None,
                    )
                    .await;
                *counts.entry("fault_vanish".to_owned()).or_default() += 1;
            }
            (1, Some(server)) => {
                tokio::time::sleep(Duration::from_millis(600)).await;
                let _ = cloud
                    .http
                    .post(format!(
                        "{}/_devcloud/servers/{server}/kill-agent",
                        cloud.base
                    ))
                    .send()
                    .await;
                *counts.entry("fault_kill_agent".to_owned()).or_default() += 1;
            }
            _ => {}
        }
        // About half the nodes are deleted again at once.
        if rng.random_bool(0.5) {
            let resp = user
                .delete(worker.api(&format!("/api/nodes/{id}")))
                .send()
                .await
                .unwrap();
            *counts.entry("deletions".to_owned()).or_default() += 1;
            if !resp.status().is_success() {
                *counts.entry("deletions_failed".to_owned()).or_default() += 1;
            }
        }
        cloud.admin(reqwest::Method::DELETE, "/faults", None).await;
    }
    worker.restart_with_secrets(&[]).await.unwrap();
    *counts.entry("worker_restarts".to_owned()).or_default() += 1;

    // Let every boot deadline and heartbeat window pass, then sweep once.
    tokio::time::sleep(Duration::from_secs(BOOT_TIMEOUT_SECS.max(STALE_SECS) + 2)).await;
    sam_e2e::run_sweep(&worker.client(), worker.port)
        .await
        .unwrap();
    let now = sam_e2e::now_ms();

    // Every node: terminal, or live and within its deadline.
    let listed: Value = user
        .get(worker.api("/api/nodes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut live = BTreeMap::new();
    let stale_ms = i64::try_from(STALE_SECS * 1000).unwrap();
    for node in listed["nodes"].as_array().unwrap() {
        let id = node["id"].as_str().unwrap().to_owned();
        let status = node["status"].as_str().unwrap().to_owned();
        *counts.entry(format!("final_{status}")).or_default() += 1;
        if let Some(reason) = node["error_message"].as_str() {
            *counts.entry(format!("reason: {reason}")).or_default() += 1;
        }
        match status.as_str() {
            "destroyed" => {}
            // Live nodes (held or kept warm) must be heard from.
            "ready" | "warm" => {
                let beat = node["last_heartbeat_at"].as_i64().unwrap_or(0);
                assert!(
                    now - beat <= stale_ms + 2_000,
                    "node {id} is running without heartbeats: {node}"
                );
                live.insert(id, node.clone());
            }
            // On its way somewhere (a delete retry waiting out its
            // backoff): fine while its next deadline is still ahead.
            other => {
                let deadline = node["deadline_at"].as_i64();
                assert!(
                    deadline.is_some_and(|at| at > now),
                    "node {id} is stuck in {other} past its deadline after the sweep: {node}"
                );
                live.insert(id, node.clone());
            }
        }
    }
    // Every server of this deployment belongs to a live node.
    let servers = cloud.admin(reqwest::Method::GET, "/servers", None).await;
    for server in servers["servers"].as_array().unwrap() {
        if server["labels"]["sam-deployment"] != deployment.as_str() {
            continue;
        }
        *counts.entry("servers_left".to_owned()).or_default() += 1;
        let node = server["labels"]["sam-node"].as_str().unwrap_or_default();
        assert!(
            live.contains_key(node),
            "server {} is orphaned (node {node}): {server}",
            server["id"]
        );
    }
    let stats = cloud.admin(reqwest::Method::GET, "/stats", None).await;
    println!("chaos counts: {counts:?}");
    println!("devcloud stats: {stats}");
    assert!(counts["creations"] >= 30, "{counts:?}");

    // Clean up what is still alive.
    for id in live.keys() {
        let _ = user
            .delete(worker.api(&format!("/api/nodes/{id}")))
            .send()
            .await;
    }
}
