//! The cron sweep against the local cloud: servers carrying this
//! deployment's labels that no live node owns are destroyed; live nodes'
//! servers and other deployments' servers are left alone.

use std::time::Duration;

use sam_e2e::{Platform, eventually, get_json};
use serde_json::{Value, json};

/// Creates a server straight at the (stand-in) provider, as a lost create
/// answer or a half-finished delete would leave it.
async fn stray_server(p: &Platform, deployment: &str, node: &str) -> String {
    let resp: Value = reqwest::Client::new()
        .post(format!("{}/v1/servers", p.devcloud_url))
        .bearer_auth(&p.hetzner_token)
        .json(&json!({
            "name": format!("stray-{}", node.to_ascii_lowercase()),
            "server_type": "cx23",
            "image": "ubuntu-24.04",
            "location": "fsn1",
            "labels": {
                "sam-managed": "true",
                "sam-node": node,
                "sam-deployment": deployment,
            },
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    resp["server"]["id"].to_string()
}

#[tokio::test]
async fn orphan_sweep_destroys_unknown_servers() {
    let p = Platform::from_env();
    let user = p.signed_in_with_cloud("sweep-user").await.unwrap();
    let node: Value = user
        .post(p.api("/api/nodes"))
        .json(&json!({ "provider": "hetzner", "size": "small", "name": "sweep-live" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let node_id = node["id"].as_str().unwrap().to_owned();
    let ours = format!("api.sam.localhost-{}", p.port);
    let orphan = stray_server(&p, &ours, "01JORPHAN0000000000000000A").await;
    let foreign = stray_server(&p, "another-deployment", "01JORPHAN0000000000000000B").await;

    sam_e2e::run_sweep(&p.client(), p.port).await.unwrap();
    eventually(
        "the orphan to be destroyed",
        Duration::from_secs(30),
        || async { Ok(p.devcloud_server(&orphan).await?.is_none().then_some(())) },
    )
    .await
    .unwrap();
    assert!(
        p.devcloud_server(&foreign).await.unwrap().is_some(),
        "another deployment's server was destroyed"
    );
    let live: Value = get_json(&user, &p.api(&format!("/api/nodes/{node_id}"))).await;
    assert_ne!(live["status"], "destroyed", "{live}");
    let server = live["provider_server_id"].as_str().map(str::to_owned);
    if let Some(server) = server {
        assert!(p.devcloud_server(&server).await.unwrap().is_some());
    }

    // Clean up: the live node through the API, the foreign server directly.
    let resp = user
        .delete(p.api(&format!("/api/nodes/{node_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = reqwest::Client::new()
        .delete(format!("{}/v1/servers/{foreign}", p.devcloud_url))
        .bearer_auth(&p.hetzner_token)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
}
