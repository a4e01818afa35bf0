//! Node callback tokens: every kind of bad token is refused with its own
//! stable code before anything is read or written.

use sam_auth::{Audience, Grant, SigningKey};
use sam_e2e::{Platform, now_ms};
use sam_wire::ErrorBody;
use serde_json::json;

const NODE_A: &str = "01J00000000000000000000AAA";
const NODE_B: &str = "01J00000000000000000000BBB";

fn token(key: &SigningKey, issuer: &str, audience: Audience, node: &str, issued_at: i64) -> String {
    key.issue(
        issuer,
        &Grant {
            audience,
            node_id: node.to_owned(),
            workspace_id: None,
            port: None,
            ttl_secs: 600,
        },
        issued_at,
    )
}

#[tokio::test]
async fn callback_tokens_are_verified() {
    let p = Platform::from_env();
    let key = p.signing_key().unwrap();
    let issuer = p.issuer();
    let now = now_ms();
    let cases: Vec<(&str, Option<String>, u16, &str)> = vec![
        ("missing", None, 401, "token_missing"),
        (
            "garbage",
            Some("not.a.token".into()),
            401,
            "token_malformed",
        ),
        (
            "forged",
            Some(token(
                &SigningKey::from_seed([7; 32]),
                &issuer,
                Audience::NodeCallback,
                NODE_A,
                now,
            )),
            401,
            "token_unknown_key",
        ),
        (
            "expired",
            Some(token(
                &key,
                &issuer,
                Audience::NodeCallback,
                NODE_A,
                now - 3_600_000,
            )),
            401,
            "token_expired",
        ),
        (
            "wrong audience",
            Some(token(&key, &issuer, Audience::NodeManagement, NODE_A, now)),
            401,
            "token_wrong_audience",
        ),
        (
            "wrong issuer",
            Some(token(
                &key,
                "https://api.elsewhere",
                Audience::NodeCallback,
                NODE_A,
                now,
            )),
            401,
            "token_wrong_issuer",
        ),
        (
            "other node",
            Some(token(&key, &issuer, Audience::NodeCallback, NODE_B, now)),
            403,
            "token_scope_mismatch",
        ),
    ];
    let client = p.client();
    for (what, bearer, status, code) in cases {
        for path in ["ready", "heartbeat"] {
            let mut req = client
                .post(p.api(&format!("/api/nodes/{NODE_A}/{path}")))
                .json(&json!({
                    "agent_version": "e2e",
                    "metrics": sam_wire::NodeMetrics::default(),
                }));
            if let Some(t) = &bearer {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), status, "{what} on {path}");
            let body: ErrorBody = resp.json().await.unwrap();
            assert_eq!(body.code, code, "{what} on {path}");
        }
    }
    // A valid token for a node that does not exist: authenticated, then 404.
    let valid = token(&key, &issuer, Audience::NodeCallback, NODE_A, now);
    let resp = client
        .post(p.api(&format!("/api/nodes/{NODE_A}/ready")))
        .bearer_auth(&valid)
        .json(&json!({ "agent_version": "e2e" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    // Malformed body with a valid token.
    let resp = client
        .post(p.api(&format!("/api/nodes/{NODE_A}/ready")))
        .bearer_auth(&valid)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}
