//! Personal access tokens: shown once, stored hashed, owner-scoped,
//! revocable, traded for a session by `token-login` (rate-limited).

use sam_e2e::Platform;
use sam_wire::{ErrorBody, Me};
use serde_json::{Value, json};

#[tokio::test]
async fn j23_pat_token_login() {
    let p = Platform::from_env();
    let owner = p.signed_in("j23-owner").await.unwrap();

    let created = owner
        .post(p.api("/api/auth/tokens"))
        .json(&json!({ "name": "laptop cli", "expires_in_days": 30 }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with("sam_pat_"));
    assert_eq!(created["name"], "laptop cli");
    assert!(created["expires_at"].as_i64().is_some());

    // Listed without the secret.
    let listed = owner
        .get(p.api("/api/auth/tokens"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(listed.contains(&id) && !listed.contains(&token), "{listed}");

    // A CLI trades the token for a session.
    let cli = p.client();
    let resp = cli
        .post(p.api("/api/auth/token-login"))
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let me: Me = resp.json().await.unwrap();
    assert_eq!(me.login, "j23-owner");
    let me: Me = sam_e2e::get_json(&cli, &p.api("/api/auth/me")).await;
    assert_eq!(me.login, "j23-owner");

    // Other users can neither see nor revoke it.
    let stranger = p.signed_in("j23-stranger").await.unwrap();
    let theirs: Value = sam_e2e::get_json(&stranger, &p.api("/api/auth/tokens")).await;
    assert_eq!(theirs["tokens"], json!([]));
    let resp = stranger
        .delete(p.api(&format!("/api/auth/tokens/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // Bad requests.
    for (body, code) in [
        (json!({ "name": "" }), "invalid_token_name"),
        (
            json!({ "name": "x", "expires_in_days": 0 }),
            "invalid_token_expiry",
        ),
        (json!({ "name": "x", "scope": "all" }), "invalid_json"),
    ] {
        let resp = owner
            .post(p.api("/api/auth/tokens"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let err: ErrorBody = resp.json().await.unwrap();
        assert_eq!(err.code, code, "{body}");
    }

    // Revoked: the token no longer logs in.
    let resp = owner
        .delete(p.api(&format!("/api/auth/tokens/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    for bad in [token.as_str(), "sam_pat_nope", ""] {
        let resp = p
            .client()
            .post(p.api("/api/auth/token-login"))
            .json(&json!({ "token": bad }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{bad}");
        let err: ErrorBody = resp.json().await.unwrap();
        assert_eq!(err.code, "token_invalid");
    }

    // Guessing is rate-limited per client.
    let mut limited = None;
    for _ in 0..25 {
        let resp = p
            .client()
            .post(p.api("/api/auth/token-login"))
            .json(&json!({ "token": "sam_pat_0000000000000000000000000000000000000000000000000000000000000000" }))
            .send()
            .await
            .unwrap();
        if resp.status() == 429 {
            limited = Some(resp);
            break;
        }
    }
    let limited = limited.expect("token-login is rate-limited");
    assert!(limited.headers().contains_key("retry-after"));
    let err: ErrorBody = limited.json().await.unwrap();
    assert_eq!(err.code, "rate_limited");
}
