//! The warm pool: a node its holder released is kept warm for reuse, one
//! claim at a time takes it, and it is destroyed by its own alarm when
//! nobody claims it before the warm timeout. No sweep runs here: the
//! NodeLifecycle alarm alone does the expiry.

use std::time::Duration;

use sam_e2e::{Platform, ScratchWorker, eventually};
use sam_wire::{ClaimedNode, ErrorBody, NodeView};
use serde_json::json;

/// Short enough to watch, long enough for the claims in between.
const WARM_TIMEOUT_SECS: i64 = 8;

#[tokio::test]
async fn warm_pool_claim_release_expire() {
    let p = Platform::from_env();
    let worker = ScratchWorker::start_with_vm_agent(
        &p,
        "warm-pool",
        &[("NODE_WARM_TIMEOUT_SECS", &WARM_TIMEOUT_SECS.to_string())],
    )
    .unwrap();
    let client = worker.signed_in_with_cloud(&p, "warm-owner").await.unwrap();
    let node_url = |id: &str| worker.api(&format!("/api/nodes/{id}"));
    let claim = |claim_id: Option<&str>| {
        let body = match claim_id {
            Some(id) => json!({ "claim_id": id }),
            None => json!({}),
        };
        client
            .post(worker.api("/api/nodes/claim"))
            .json(&body)
            .send()
    };

    let created: NodeView = client
        .post(worker.api("/api/nodes"))
        .json(&json!({ "provider": "hetzner", "size": "small", "name": "warm-node" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let server_id = created.provider_server_id.clone().unwrap();
    let ready = sam_e2e::wait_for_node(&client, &node_url(&created.id), "ready")
        .await
        .unwrap();
    let own_hold = ready.claimed_by.clone().unwrap();

    // Nothing is warm yet: a claim finds nothing.
    let resp = claim(None).await.unwrap();
    assert_eq!(resp.status(), 409);
    assert_eq!(resp.json::<ErrorBody>().await.unwrap().code, "no_warm_node");

    // Released: warm, with the warm timeout as its deadline. Releasing
    // again changes nothing.
    let released: NodeView = client
        .post(format!("{}/release", node_url(&created.id)))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(released.status, "warm");
    assert!(released.claimed_by.is_none());
    let warm_until = released.deadline_at.unwrap();
    let expected = released.status_since + WARM_TIMEOUT_SECS * 1000;
    assert_eq!(warm_until, expected, "{released:?}");
    assert_eq!(released.warm_until, Some(expected), "{released:?}");
    let resp = client
        .post(format!("{}/release", node_url(&created.id)))
        .json(&json!({ "claim_id": own_hold }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // A claim for a project that is not the user's is refused (404, like
    // any resource of another user) and takes nothing; a malformed claim id
    // is refused before anything is looked at.
    let resp = client
        .post(worker.api("/api/nodes/claim"))
        .json(&json!({ "project_id": "01JPROJECTNOTMINE000000000" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = client
        .post(worker.api("/api/nodes/claim"))
        .json(&json!({ "claim_id": "has spaces" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<ErrorBody>().await.unwrap().code,
        "invalid_claim_id"
    );

    // Another user cannot take it.
    let stranger = worker.signed_in("warm-stranger").await.unwrap();
    let resp = stranger
        .post(worker.api("/api/nodes/claim"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);

    // Two claims at once: exactly one gets the node.
    let (first, second) = tokio::join!(claim(Some("task-a")), claim(Some("task-b")));
    let outcomes = [first.unwrap(), second.unwrap()];
    let statuses: Vec<u16> = outcomes.iter().map(|r| r.status().as_u16()).collect();
    assert!(
        statuses == [200, 409] || statuses == [409, 200],
        "claims answered {statuses:?}"
    );
    let mut winner = None;
    for resp in outcomes {
        if resp.status() == 200 {
            winner = Some(resp.json::<ClaimedNode>().await.unwrap());
        } else {
            assert_eq!(resp.json::<ErrorBody>().await.unwrap().code, "no_warm_node");
        }
    }
    let winner = winner.unwrap();
    assert_eq!(winner.node.id, created.id);
    assert_eq!(winner.node.status, "ready");
    assert_eq!(
        winner.node.claimed_by.as_deref(),
        Some(winner.claim_id.as_str())
    );
    let loser = if winner.claim_id == "task-a" {
        "task-b"
    } else {
        "task-a"
    };

    // Only the holder can release it; the loser's release is refused.
    let resp = client
        .post(format!("{}/release", node_url(&created.id)))
        .json(&json!({ "claim_id": loser }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    assert_eq!(
        resp.json::<ErrorBody>().await.unwrap().code,
        "claim_mismatch"
    );
    let released: NodeView = client
        .post(format!("{}/release", node_url(&created.id)))
        .json(&json!({ "claim_id": winner.claim_id }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(released.status, "warm");
    let expires_at = released.deadline_at.unwrap();

    // Nobody claims it: at the warm timeout its alarm destroys it.
    let destroyed: NodeView = eventually(
        "the warm node to expire",
        Duration::from_secs(WARM_TIMEOUT_SECS as u64 + 30),
        || async {
            let n: NodeView = client
                .get(node_url(&created.id))
                .send()
                .await?
                .json()
                .await?;
            Ok((n.status == "destroyed").then_some(n))
        },
    )
    .await
    .unwrap();
    assert!(
        destroyed.status_since >= expires_at,
        "destroyed at {} before the warm deadline {expires_at}",
        destroyed.status_since
    );
    assert!(p.devcloud_server(&server_id).await.unwrap().is_none());
    let log: serde_json::Value =
        sam_e2e::get_json(&client, &format!("{}/events", node_url(&created.id))).await;
    let phases: Vec<&str> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["phase"].as_str().unwrap())
        .collect();
    let tail = &phases[phases.len() - 5..];
    assert_eq!(
        tail,
        [
            "released",
            "claimed",
            "released",
            "warm_timeout_passed",
            "destroyed"
        ],
        "{phases:?}"
    );

    // Gone nodes are not claimable.
    let resp = claim(None).await.unwrap();
    assert_eq!(resp.status(), 409);
}
