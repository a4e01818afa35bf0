//! Rotating the vault's keys without downtime: deploy `new,old`, sweep,
//! then retire `old`. Sessions, tokens and stored credentials keep working
//! throughout, and afterwards nothing is sealed under the old key.

use rand::RngCore as _;
use sam_e2e::{Platform, ScratchWorker, create_github_user, github_sign_in};
use serde_json::{Value, json};

/// A fresh `kid:key` ring entry.
fn new_key(kid: &str) -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    sam_vault::CredentialKeys::generate_spec(kid, &key).unwrap()
}

fn contains(files: &[std::path::PathBuf], needle: &str) -> bool {
    files.iter().any(|f| {
        std::fs::read(f)
            .unwrap_or_default()
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    })
}

#[tokio::test]
async fn vault_rotation_keeps_sessions_and_credentials() {
    let p = Platform::from_env();
    let mut worker = ScratchWorker::start(&p, "vault", &[], &[]).unwrap();
    worker.signed_in_anonymous_ready().await.unwrap();

    // The first GitHub user of this fresh worker is its superadmin.
    create_github_user(&p, "vault-admin").await.unwrap();
    let admin = worker.client();
    let landed = github_sign_in(&admin, &worker.app(""), "vault-admin")
        .await
        .unwrap();
    assert_eq!(landed, "/");
    sam_e2e::add_cloud_credential(&admin, &worker.app(""), &p.hetzner_token)
        .await
        .unwrap();
    let resp = admin
        .put(worker.app("/api/credentials/agents/claude-code"))
        .json(&json!({ "kind": "api_key", "secret": "sk-ant-vault-rotation-0001" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let pat: Value = admin
        .post(worker.app("/api/auth/tokens"))
        .json(&json!({ "name": "rotation" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pat = pat["token"].as_str().unwrap().to_owned();

    let old_credentials = worker.secret("CREDENTIAL_KEYS").unwrap();
    let old_sessions = worker.secret("SESSION_KEYS").unwrap();
    let old_kid = old_credentials.split(':').next().unwrap().to_owned();
    assert!(contains(&worker.d1_files(), &format!("v1.{old_kid}.")));

    // 1. Deploy new keys first, old ones still accepted.
    let new_credentials = new_key("rotated");
    let both_credentials = format!("{new_credentials},{old_credentials}");
    let both_sessions = format!("{},{old_sessions}", new_key("rotated-s"));
    worker
        .restart_with_secrets(&[
            ("CREDENTIAL_KEYS", &both_credentials),
            ("SESSION_KEYS", &both_sessions),
        ])
        .await
        .unwrap();
    // The session from before the restart is still good, and so is the token.
    let me = admin.get(worker.app("/api/auth/me")).send().await.unwrap();
    assert_eq!(me.status(), 200);
    let cli = worker.client();
    let resp = cli
        .post(worker.api("/api/auth/token-login"))
        .json(&json!({ "token": pat }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // 2. The sweep re-seals every stored credential under the new key.
    let swept: Value = admin
        .post(worker.app("/api/admin/vault/rotate"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(swept["active_key"], "rotated", "{swept}");
    assert_eq!(swept["cloud_credentials"], 1, "{swept}");
    assert_eq!(swept["agent_credentials"], 1, "{swept}");
    let again: Value = admin
        .post(worker.app("/api/admin/vault/rotate"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["reencrypted"], 0, "{again}");
    // A user who is not the superadmin cannot run it.
    let other = worker.signed_in("vault-other").await.unwrap();
    let resp = other
        .post(worker.api("/api/admin/vault/rotate"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    // 3. Retire the old credential key: the re-sealed credential still opens
    // (a node is created with it), and nothing is sealed under the old key.
    worker
        .restart_with_secrets(&[("CREDENTIAL_KEYS", &new_credentials)])
        .await
        .unwrap();
    let node: Value = admin
        .post(worker.app("/api/nodes"))
        .json(&json!({ "provider": "hetzner", "size": "small", "name": "vault-node" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        matches!(
            node["status"].as_str(),
            Some("provisioning" | "booting" | "ready")
        ),
        "{node}"
    );
    let resp = admin
        .delete(worker.app(&format!("/api/nodes/{}", node["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // (Old ciphertext may linger in SQLite's free pages until they are
    // reused; without the retired key it cannot be opened.)
    let envelopes = sam_e2e::query_text_column(
        &worker.d1_files(),
        "SELECT secret_envelope FROM cloud_credentials \
         UNION ALL SELECT secret_envelope FROM agent_credentials",
    );
    assert_eq!(envelopes.len(), 2, "{envelopes:?}");
    assert!(
        envelopes.iter().all(|e| e.starts_with("v1.rotated.")),
        "{envelopes:?}"
    );
    let listed: Value = admin
        .get(worker.app("/api/credentials/agents"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["credentials"][0]["agent"], "claude-code");
}
