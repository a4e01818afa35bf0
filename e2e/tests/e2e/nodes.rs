//! The node slice: create through the API → the stand-in boots a vm-agent →
//! it registers and heartbeats, its log and the vm-agent's own log stream
//! live → stop → delete → the process is gone.

use std::time::Duration;

use sam_e2e::{Platform, eventually};
use sam_wire::{ErrorBody, NodeList, NodeView};
use serde_json::json;

async fn get_node(client: &reqwest::Client, p: &Platform, id: &str) -> anyhow::Result<NodeView> {
    Ok(client
        .get(p.api(&format!("/api/nodes/{id}")))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// The vm-agent's own `/health`, reached at the node's address.
async fn agent_health(ip: &str) -> Option<serde_json::Value> {
    let port = std::env::var("SAM_E2E_VM_AGENT_PORT").expect("SAM_E2E_VM_AGENT_PORT");
    let resp = reqwest::Client::new()
        .get(format!("http://{ip}:{port}/health"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    resp.json().await.ok()
}

#[tokio::test]
async fn j15_node_manage_and_observe() {
    let p = Platform::from_env();
    let client = p.signed_in_with_cloud("j15-owner").await.unwrap();

    // Create.
    let resp = client
        .post(p.api("/api/nodes"))
        .json(&json!({ "provider": "hetzner", "size": "small", "location": "nbg1", "name": "j15-node" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let created: NodeView = resp.json().await.unwrap();
    // Booting, or already ready if the agent registered before the
    // create call's answer was processed; held by its creator either way.
    assert!(
        matches!(created.status.as_str(), "booting" | "ready"),
        "{created:?}"
    );
    assert!(
        created
            .claimed_by
            .as_deref()
            .is_some_and(|c| c.starts_with("user:"))
    );
    assert!(created.deadline_at.is_some(), "the boot deadline is armed");
    assert_eq!(
        (created.server_type.as_str(), created.location.as_str()),
        ("cx23", "nbg1")
    );
    let server_id = created
        .provider_server_id
        .clone()
        .expect("provider server id recorded");
    let ip = created.ip_address.clone().expect("server address recorded");

    // The provider has a server labelled as ours.
    let server = p
        .devcloud_server(&server_id)
        .await
        .unwrap()
        .expect("server exists");
    assert_eq!(server["labels"]["sam-managed"], "true");
    assert_eq!(server["labels"]["sam-node"], created.id.as_str());

    // Boot → register → heartbeats.
    let running = eventually(
        "the node to be running with a heartbeat",
        Duration::from_secs(60),
        || async {
            let n = get_node(&client, &p, &created.id).await?;
            Ok((n.status == "ready" && n.metrics.is_some()).then_some(n))
        },
    )
    .await
    .unwrap();
    assert_eq!(running.health, "healthy");
    assert!(running.agent_ready_at.is_some());
    assert!(
        running
            .agent_version
            .as_deref()
            .is_some_and(|v| !v.is_empty())
    );
    let metrics = running.metrics.clone().unwrap();
    assert!(metrics.memory_total_kib > 0 && metrics.disk_total_bytes > 0);
    let first_beat = running.last_heartbeat_at.unwrap();
    eventually("a later heartbeat", Duration::from_secs(20), || async {
        let n = get_node(&client, &p, &created.id).await?;
        Ok((n.last_heartbeat_at.unwrap_or(0) > first_beat).then_some(()))
    })
    .await
    .unwrap();
    let health = agent_health(&ip)
        .await
        .expect("the vm-agent answers on the node's address");
    assert_eq!(health["node_id"], created.id.as_str());

    // The vm-agent verifies API-issued tokens against the API's JWKS.
    let key = p.signing_key().unwrap();
    let mint = |audience, node: &str| {
        key.issue(
            &p.issuer(),
            &sam_auth::Grant {
                audience,
                node_id: node.to_owned(),
                workspace_id: None,
                port: None,
                ttl_secs: 300,
            },
            sam_e2e::now_ms(),
        )
    };
    let agent = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let system_info = format!(
        "http://{ip}:{}/system-info",
        std::env::var("SAM_E2E_VM_AGENT_PORT").unwrap()
    );
    let resp = agent
        .get(&system_info)
        .bearer_auth(mint(sam_auth::Audience::NodeManagement, &created.id))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let info: sam_wire::SystemInfo = resp.json().await.unwrap();
    assert_eq!(info.node_id, created.id);
    for (token, status) in [
        (mint(sam_auth::Audience::NodeCallback, &created.id), 401),
        (
            mint(
                sam_auth::Audience::NodeManagement,
                "01J00000000000000000000XYZ",
            ),
            403,
        ),
    ] {
        let resp = agent
            .get(&system_info)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status);
    }

    // The boot log has each phase, in order.
    let events: serde_json::Value = sam_e2e::get_json(
        &client,
        &p.api(&format!("/api/nodes/{}/events", created.id)),
    )
    .await;
    let phases: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases[0], "requested");
    for phase in ["provider_created", "agent_ready"] {
        assert!(phases.contains(&phase), "{phases:?}");
    }

    // The log streams live over a WebSocket: first what happened so far...
    let cookie = sam_e2e::session_cookie(&p, "j15-owner").await.unwrap();
    let mut socket = sam_e2e::node_event_socket(&p, &cookie, &created.id)
        .await
        .unwrap();
    let replayed = sam_e2e::next_phases(&mut socket, phases.len())
        .await
        .unwrap();
    assert_eq!(replayed, phases);
    // ...and it refuses anyone but the owner (another user's node is a 404).
    // Another site's page cannot open it with the owner's cookie.
    let foreign =
        sam_e2e::node_event_socket_from(&p, &cookie, &created.id, "http://evil.example").await;
    assert!(
        foreign
            .as_ref()
            .is_err_and(|e| e.to_string().contains("403")),
        "a foreign page's socket: {:?}",
        foreign.map(|_| ())
    );
    let stranger_cookie = sam_e2e::session_cookie(&p, "j15-stranger").await.unwrap();
    let refused = sam_e2e::node_event_socket(&p, &stranger_cookie, &created.id).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("404")),
        "a stranger's socket: {:?}",
        refused.map(|_| ())
    );

    // The vm-agent's own log, recent lines and live as Server-Sent Events.
    let recent: serde_json::Value = sam_e2e::get_json(
        &client,
        &p.api(&format!("/api/nodes/{}/logs?limit=5", created.id)),
    )
    .await;
    let lines = recent["lines"].as_array().expect("log lines");
    assert!(!lines.is_empty() && lines.len() <= 5, "{recent}");
    let stream = client
        .get(p.api(&format!("/api/nodes/{}/logs/stream", created.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let first_event = sam_e2e::first_sse_event(stream, Duration::from_secs(20))
        .await
        .unwrap();
    assert!(first_event.contains("event: log"), "{first_event}");
    assert!(first_event.contains("\"message\""), "{first_event}");

    // Another user cannot see or delete it.
    let stranger = p.signed_in("j15-stranger").await.unwrap();
    for resp in [
        stranger
            .get(p.api(&format!("/api/nodes/{}", created.id)))
            .send()
            .await
            .unwrap(),
        stranger
            .delete(p.api(&format!("/api/nodes/{}", created.id)))
            .send()
            .await
            .unwrap(),
        stranger
            .get(p.api(&format!("/api/nodes/{}/events", created.id)))
            .send()
            .await
            .unwrap(),
        stranger
            .get(p.api(&format!("/api/nodes/{}/logs/stream", created.id)))
            .send()
            .await
            .unwrap(),
        stranger
            .post(p.api(&format!("/api/nodes/{}/stop", created.id)))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(resp.status(), 404);
    }
    let theirs: NodeList = sam_e2e::get_json(&stranger, &p.api("/api/nodes")).await;
    assert!(theirs.nodes.is_empty());

    // Stop: the server and its process are gone, the record stays.
    let resp = client
        .post(p.api(&format!("/api/nodes/{}/stop", created.id)))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let stopped: NodeView = resp.json().await.unwrap();
    assert_eq!(stopped.status, "destroyed");
    assert!(stopped.deadline_at.is_none());
    assert!(p.devcloud_server(&server_id).await.unwrap().is_none());
    // The open socket saw it happen.
    let live = sam_e2e::next_phases(&mut socket, 2).await.unwrap();
    assert_eq!(live, ["destroy_requested", "destroyed"]);
    let listed: NodeList = sam_e2e::get_json(&client, &p.api("/api/nodes")).await;
    assert!(listed.nodes.iter().any(|n| n.id == created.id));
    // Logs need a running agent.
    let resp = client
        .get(p.api(&format!("/api/nodes/{}/logs", created.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);

    // Delete: the record leaves the list.
    let resp = client
        .delete(p.api(&format!("/api/nodes/{}", created.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let deleted: NodeView = resp.json().await.unwrap();
    assert_eq!(deleted.status, "destroyed");
    assert!(deleted.removed_at.is_some());
    let listed: NodeList = sam_e2e::get_json(&client, &p.api("/api/nodes")).await;
    assert!(listed.nodes.iter().all(|n| n.id != created.id));
    eventually(
        "the vm-agent process to be gone",
        Duration::from_secs(10),
        || async { Ok(agent_health(&ip).await.is_none().then_some(())) },
    )
    .await
    .unwrap();

    // Deleting again is harmless.
    let again = client
        .delete(p.api(&format!("/api/nodes/{}", created.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let again: NodeView = again.json().await.unwrap();
    assert_eq!(again.status, "destroyed");

    // A heartbeat for a deleted node is refused and changes nothing.
    let token = key.issue(
        &p.issuer(),
        &sam_auth::Grant {
            audience: sam_auth::Audience::NodeCallback,
            node_id: created.id.clone(),
            workspace_id: None,
            port: None,
            ttl_secs: 600,
        },
        sam_e2e::now_ms(),
    );
    let resp = p
        .client()
        .post(p.api(&format!("/api/nodes/{}/heartbeat", created.id)))
        .bearer_auth(&token)
        .json(&json!({ "agent_version": "x", "metrics": sam_wire::NodeMetrics::default() }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let body: ErrorBody = resp.json().await.unwrap();
    assert_eq!(body.code, "node_destroyed");
    let after = get_node(&client, &p, &created.id).await.unwrap();
    assert_eq!(after.status, "destroyed");
}

#[tokio::test]
async fn create_node_rejects_bad_input_and_writes_nothing() {
    let p = Platform::from_env();
    let client = p.signed_in_with_cloud("bad-input").await.unwrap();
    let cases: [(&str, u16, &str); 8] = [
        (
            r#"{"provider":"aws","size":"small"}"#,
            400,
            "unknown_provider",
        ),
        (
            r#"{"provider":"hetzner","size":"huge"}"#,
            400,
            "unknown_size",
        ),
        (
            r#"{"provider":"hetzner","size":"small","location":"mars1"}"#,
            400,
            "unknown_location",
        ),
        (
            r#"{"provider":"hetzner","size":"small","name":"Bad Name!"}"#,
            400,
            "invalid_name",
        ),
        (
            r#"{"provider":"hetzner","size":"small","extra":1}"#,
            400,
            "invalid_json",
        ),
        (r#"{"provider":"hetzner""#, 400, "invalid_json"),
        ("[]", 400, "invalid_json"),
        (r#"{"size":"small"}"#, 400, "invalid_json"),
    ];
    for (body, status, code) in cases {
        let resp = client
            .post(p.api("/api/nodes"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{body}");
        let err: ErrorBody = resp.json().await.unwrap();
        assert_eq!(err.code, code, "{body}");
        assert!(!err.message.is_empty());
    }
    // Not JSON at all, and too large.
    let resp = client
        .post(p.api("/api/nodes"))
        .body("provider=hetzner")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    let huge = format!(
        r#"{{"provider":"hetzner","size":"small","name":"{}"}}"#,
        "a".repeat(100_000)
    );
    let resp = client
        .post(p.api("/api/nodes"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let list: NodeList = sam_e2e::get_json(&client, &p.api("/api/nodes")).await;
    assert!(list.nodes.is_empty(), "no node was written: {list:?}");

    // Cookie-authenticated changes from another site (or from nowhere) are refused.
    for origin in [Some("http://evil.example"), None] {
        let mut req = client
            .post(p.api("/api/nodes"))
            .json(&json!({"provider":"hetzner","size":"small"}));
        req = match origin {
            Some(o) => req.header("origin", o),
            // Replace the client's default Origin with an empty one.
            None => req.header("origin", ""),
        };
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 403, "{origin:?}");
        let err: ErrorBody = resp.json().await.unwrap();
        assert_eq!(err.code, "csrf_origin_mismatch");
    }

    // Without a session nothing is reachable.
    let anonymous = p.client();
    let resp = anonymous
        .post(p.api("/api/nodes"))
        .json(&json!({"provider":"hetzner","size":"small"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = anonymous.get(p.api("/api/nodes")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
}

async fn events(client: &reqwest::Client, url: &str) -> Vec<String> {
    let body: serde_json::Value = sam_e2e::get_json(client, url).await;
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["phase"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn provider_failure_fails_the_node_with_reason() {
    let p = Platform::from_env();
    // The stand-in refuses servers with an image Hetzner does not have.
    let worker =
        sam_e2e::ScratchWorker::start(&p, "bad-image", &[], &[("NODE_IMAGE", "no-such-image")])
            .unwrap();
    let client = worker
        .signed_in_with_cloud(&p, "provider-failure")
        .await
        .unwrap();
    let resp = client
        .post(worker.api("/api/nodes"))
        .json(&json!({ "provider": "hetzner", "size": "small" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let err: ErrorBody = resp.json().await.unwrap();
    assert_eq!(err.code, "provider_create_failed");
    let list: NodeList = sam_e2e::get_json(&client, &worker.api("/api/nodes")).await;
    assert_eq!(list.nodes.len(), 1);
    let node = &list.nodes[0];
    // Failed, then destroyed at once: nothing may be left at the provider.
    assert_eq!(node.status, "destroyed");
    assert!(
        node.error_message
            .as_deref()
            .is_some_and(|m| m.contains("invalid_input")),
        "{node:?}"
    );
    assert!(node.provider_server_id.is_none());
    let phases = events(
        &client,
        &worker.api(&format!("/api/nodes/{}/events", node.id)),
    )
    .await;
    assert_eq!(
        phases,
        [
            "requested",
            "provider_failed",
            "destroy_requested",
            "destroyed"
        ]
    );
    // Deleting it removes it from the list.
    let resp = client
        .delete(worker.api(&format!("/api/nodes/{}", node.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let deleted: NodeView = resp.json().await.unwrap();
    assert_eq!(deleted.status, "destroyed");
    let list: NodeList = sam_e2e::get_json(&client, &worker.api("/api/nodes")).await;
    assert!(list.nodes.is_empty());
}

#[tokio::test]
async fn boot_deadline_fails_and_destroys_a_silent_node() {
    let p = Platform::from_env();
    // A worker whose R2 has no vm-agent build: the server boots but its
    // cloud-init cannot download the agent, so nothing ever registers.
    let worker =
        sam_e2e::ScratchWorker::start(&p, "silent-node", &[], &[("NODE_BOOT_TIMEOUT_SECS", "3")])
            .unwrap();
    let client = worker.signed_in_with_cloud(&p, "deadline").await.unwrap();
    let created: NodeView = client
        .post(worker.api("/api/nodes"))
        .json(&json!({ "provider": "hetzner", "size": "small" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created.status, "booting");
    let server_id = created.provider_server_id.clone().unwrap();
    assert!(p.devcloud_server(&server_id).await.unwrap().is_some());
    let url = worker.api(&format!("/api/nodes/{}", created.id));
    let failed: NodeView = eventually(
        "the boot deadline to pass",
        Duration::from_secs(30),
        || async {
            let n: NodeView = client.get(&url).send().await?.json().await?;
            Ok((n.status == "destroyed").then_some(n))
        },
    )
    .await
    .unwrap();
    assert!(
        failed
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains("did not register")),
        "{failed:?}"
    );
    let phases = events(&client, &format!("{url}/events")).await;
    assert_eq!(
        phases,
        [
            "requested",
            "provider_created",
            "boot_deadline_passed",
            "destroy_requested",
            "destroyed"
        ]
    );
    // The node's alarm deleted its server: nobody had to.
    assert!(p.devcloud_server(&server_id).await.unwrap().is_none());
}

/// The Scaleway stand-in's view of a server (`None` once deleted).
async fn scaleway_server(p: &Platform, id: &str) -> Option<serde_json::Value> {
    let (zone, uuid) = id.split_once('/').expect("a Scaleway id is <zone>/<uuid>");
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/instance/v1/zones/{zone}/servers/{uuid}",
            p.devcloud_url
        ))
        .header("x-auth-token", &p.scaleway.0)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return None;
    }
    let body: serde_json::Value = resp.error_for_status().unwrap().json().await.unwrap();
    Some(body["server"].clone())
}

#[tokio::test]
async fn scaleway_node_boots_registers_and_is_destroyed() {
    let p = Platform::from_env();
    let client = p.signed_in("scw-node-owner").await.unwrap();
    let (secret_key, project_id) = p.scaleway.clone();
    client
        .put(p.api("/api/credentials/cloud/scaleway"))
        .json(&json!({ "secret_key": secret_key, "project_id": project_id }))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();

    let resp = client
        .post(p.api("/api/nodes"))
        .json(&json!({ "provider": "scaleway", "size": "small", "location": "nl-ams-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let created: NodeView = resp.json().await.unwrap();
    assert_eq!(
        (
            created.provider.as_str(),
            created.server_type.as_str(),
            created.location.as_str()
        ),
        ("scaleway", "DEV1-S", "nl-ams-1")
    );
    let server_id = created.provider_server_id.clone().unwrap();
    assert!(server_id.starts_with("nl-ams-1/"), "{server_id}");
    let server = scaleway_server(&p, &server_id)
        .await
        .expect("server exists");
    let tags: Vec<&str> = server["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    assert!(
        tags.contains(&format!("sam-node={}", created.id).as_str()),
        "{tags:?}"
    );
    assert!(tags.contains(&"sam-managed=true"), "{tags:?}");

    // It boots from our cloud-init and its agent registers like on Hetzner.
    eventually(
        "the Scaleway node to be ready",
        Duration::from_secs(60),
        || async {
            let n = get_node(&client, &p, &created.id).await?;
            Ok((n.status == "ready").then_some(()))
        },
    )
    .await
    .unwrap();

    // Stop: the server is terminated at Scaleway (a server still starting
    // is busy there; the delete is retried until it goes).
    let resp = client
        .post(p.api(&format!("/api/nodes/{}/stop", created.id)))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    eventually(
        "the Scaleway node to be destroyed",
        Duration::from_secs(30),
        || async {
            let n = get_node(&client, &p, &created.id).await?;
            Ok((n.status == "destroyed").then_some(()))
        },
    )
    .await
    .unwrap();
    assert!(scaleway_server(&p, &server_id).await.is_none());
}

#[tokio::test]
async fn node_quota_refuses_clearly_and_frees_on_destroy() {
    let p = Platform::from_env();
    let worker =
        sam_e2e::ScratchWorker::start(&p, "quota", &[], &[("MAX_NODES_PER_USER", "1")]).unwrap();
    let client = worker.signed_in_with_cloud(&p, "quota-user").await.unwrap();
    let create = || {
        client
            .post(worker.api("/api/nodes"))
            .json(&json!({ "provider": "hetzner", "size": "small" }))
            .send()
    };
    let first: NodeView = create().await.unwrap().json().await.unwrap();
    let resp = create().await.unwrap();
    assert_eq!(resp.status(), 429);
    let err: ErrorBody = resp.json().await.unwrap();
    assert_eq!(err.code, "node_quota_exceeded");
    assert!(
        err.message.contains('1'),
        "the message names the limit: {}",
        err.message
    );
    let list: NodeList = sam_e2e::get_json(&client, &worker.api("/api/nodes")).await;
    assert_eq!(list.nodes.len(), 1, "the refused node was not written");

    // Another user has their own quota.
    let other = worker
        .signed_in_with_cloud(&p, "quota-other")
        .await
        .unwrap();
    let resp = other
        .post(worker.api("/api/nodes"))
        .json(&json!({ "provider": "hetzner", "size": "small" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let others: NodeView = resp.json().await.unwrap();

    // A destroyed node no longer counts.
    let resp = client
        .post(worker.api(&format!("/api/nodes/{}/stop", first.id)))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let second = create().await.unwrap();
    assert_eq!(second.status(), 201);
    let second: NodeView = second.json().await.unwrap();

    // Leave nothing running at the shared stand-in.
    for (who, id) in [(&client, &second.id), (&other, &others.id)] {
        let resp = who
            .delete(worker.api(&format!("/api/nodes/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
}
