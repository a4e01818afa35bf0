//! Cloud credentials (bring your own cloud): validated against the
//! provider, sealed at rest, listed masked, used for the user's nodes.

use sam_e2e::Platform;
use sam_wire::{ErrorBody, NodeView};
use serde_json::{Value, json};

async fn error(resp: reqwest::Response) -> (u16, ErrorBody) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// Every SQLite file of the platform's local D1 state.
fn d1_files(p: &Platform) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path
                .extension()
                .is_some_and(|e| e == "sqlite" || e == "sqlite-wal")
            {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&p.state_dir.join("wrangler-state/v3/d1"), &mut out);
    out
}

#[tokio::test]
async fn j04_add_hetzner_token_then_node_uses_it() {
    let p = Platform::from_env();
    let user = p.signed_in("j04-user").await.unwrap();
    let node = json!({ "provider": "hetzner", "size": "small", "name": "j04-node" });

    // Without a credential: a clear error saying what to add, and no node.
    let (status, err) = error(
        user.post(p.api("/api/nodes"))
            .json(&node)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err.code.as_str()),
        (400, "cloud_credentials_missing")
    );
    assert!(err.message.contains("Cloud credentials"), "{}", err.message);

    // Bad credentials are refused before anything is stored.
    let put = |body: Value, provider: &str| {
        user.put(p.api(&format!("/api/credentials/cloud/{provider}")))
            .json(&body)
            .send()
    };
    let (status, err) = error(
        put(json!({ "token": "not-a-real-token" }), "hetzner")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err.code.as_str()),
        (400, "cloud_credential_invalid")
    );
    assert!(!err.message.contains("not-a-real-token"));
    let (status, err) = error(put(json!({ "token": "x" }), "aws").await.unwrap()).await;
    assert_eq!((status, err.code.as_str()), (400, "unknown_provider"));
    let (status, err) = error(put(json!({ "token": "a b" }), "hetzner").await.unwrap()).await;
    assert_eq!(
        (status, err.code.as_str()),
        (400, "cloud_credential_invalid")
    );
    let listed: Value = sam_e2e::get_json(&user, &p.api("/api/credentials/cloud")).await;
    assert_eq!(
        listed["credentials"],
        json!([]),
        "nothing stored by refused requests"
    );

    // A good token is stored sealed and shown masked only.
    let token = p.hetzner_token.clone();
    let resp = put(json!({ "token": token }), "hetzner").await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    assert!(!body.contains(&token), "{body}");
    let listed = user
        .get(p.api("/api/credentials/cloud"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!listed.contains(&token), "{listed}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let masked = listed["credentials"][0]["masked"].as_str().unwrap();
    assert!(
        masked.ends_with(&token[token.len() - 4..]) && masked.starts_with('•'),
        "{masked}"
    );
    for file in d1_files(&p) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "plaintext token found in {}",
            file.display()
        );
    }

    // Nodes are now created with the user's own token.
    let created: NodeView = user
        .post(p.api("/api/nodes"))
        .json(&node)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    sam_e2e::wait_for_node(
        &user,
        &p.api(&format!("/api/nodes/{}", created.id)),
        "ready",
    )
    .await
    .unwrap();
    // The credential cannot go while a node still needs it to be destroyed.
    let (status, err) = error(
        user.delete(p.api("/api/credentials/cloud/hetzner"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, err.code.as_str()), (409, "credential_in_use"));
    let resp = user
        .delete(p.api(&format!("/api/nodes/{}", created.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Another user sees nothing; deleting returns the user to square one.
    let other = p.signed_in("j04-other").await.unwrap();
    let theirs: Value = sam_e2e::get_json(&other, &p.api("/api/credentials/cloud")).await;
    assert_eq!(theirs["credentials"], json!([]));
    let resp = other
        .delete(p.api("/api/credentials/cloud/hetzner"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = user
        .delete(p.api("/api/credentials/cloud/hetzner"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (status, err) = error(
        user.post(p.api("/api/nodes"))
            .json(&node)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err.code.as_str()),
        (400, "cloud_credentials_missing")
    );
}

#[tokio::test]
async fn scaleway_credential_is_validated_sealed_and_masked() {
    let p = Platform::from_env();
    let user = p.signed_in("scw-user").await.unwrap();
    let (secret_key, project_id) = p.scaleway.clone();
    let put = |body: Value| {
        user.put(p.api("/api/credentials/cloud/scaleway"))
            .json(&body)
            .send()
    };
    // Shape errors, a key Scaleway refuses, a project it is not for.
    let wrong_key = "00000000-0000-4000-8000-000000000000";
    for (body, want) in [
        (
            json!({ "secret_key": "SCWXXXXXXXXXXXXXXXXX", "project_id": project_id }),
            "cloud_credential_invalid",
        ),
        (
            json!({ "secret_key": secret_key, "project_id": "nope" }),
            "cloud_credential_invalid",
        ),
        (
            json!({ "secret_key": wrong_key, "project_id": project_id }),
            "cloud_credential_invalid",
        ),
        (
            json!({ "secret_key": secret_key, "project_id": wrong_key }),
            "cloud_credential_invalid",
        ),
        (json!({ "secret_key": secret_key }), "invalid_json"),
        (json!({ "token": secret_key, "extra": 1 }), "invalid_json"),
    ] {
        let (status, err) = error(put(body.clone()).await.unwrap()).await;
        assert_eq!((status, err.code.as_str()), (400, want), "{body}");
        assert!(!err.message.contains(&secret_key), "{}", err.message);
    }
    let listed: Value = sam_e2e::get_json(&user, &p.api("/api/credentials/cloud")).await;
    assert_eq!(listed["credentials"], json!([]));

    let resp = put(json!({ "secret_key": secret_key, "project_id": project_id }))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    assert!(!body.contains(&secret_key), "{body}");
    let listed: Value = sam_e2e::get_json(&user, &p.api("/api/credentials/cloud")).await;
    let masked = listed["credentials"][0]["masked"].as_str().unwrap();
    assert_eq!(listed["credentials"][0]["provider"], "scaleway");
    assert!(
        masked.starts_with('•') && masked.contains(&secret_key[secret_key.len() - 4..]),
        "{masked}"
    );
    assert!(!masked.contains(&secret_key), "{masked}");
    for file in d1_files(&p) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes
                .windows(secret_key.len())
                .any(|w| w == secret_key.as_bytes()),
            "plaintext Scaleway key found in {}",
            file.display()
        );
    }
    let resp = user
        .delete(p.api("/api/credentials/cloud/scaleway"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}
