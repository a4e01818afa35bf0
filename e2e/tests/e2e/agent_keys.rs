//! Agent credentials: the user's own key per agent, a project's override,
//! and the platform's key as the last resort, resolved in that order.

use sam_e2e::{Platform, create_github_repo, get_json, github_user_signed_in, install_github_app};
use sam_wire::ErrorBody;
use serde_json::{Value, json};

fn effective<'a>(listing: &'a Value, agent: &str) -> &'a Value {
    listing["effective"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["agent"] == agent)
        .unwrap_or_else(|| panic!("{agent} missing from {listing}"))
}

#[tokio::test]
async fn j07_agent_key_and_project_override() {
    let p = Platform::from_env();
    let login = "j07-dev";
    let user = github_user_signed_in(&p, login).await.unwrap();
    let repo = create_github_repo(&p, login, "service", &["main"])
        .await
        .unwrap();
    let installation = install_github_app(&p, &user, login).await.unwrap();
    let created: Value = user
        .post(p.app("/api/projects"))
        .json(&json!({ "repository": format!("{installation}:{}", repo["id"]) }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let project = created["id"].as_str().unwrap().to_owned();
    let resolution = p.app(&format!("/api/projects/{project}/agent-credentials"));

    // Nothing of the user's yet: the platform's key (claude-code only) applies.
    let start: Value = get_json(&user, &resolution).await;
    assert_eq!(effective(&start, "claude-code")["source"], "platform");
    assert_eq!(effective(&start, "openai-codex")["source"], Value::Null);

    // Bad input: unknown agents and kinds, an OAuth token for an agent that
    // only takes API keys, an empty secret. Nothing is stored.
    let put_user = |agent: &str, body: Value| {
        user.put(p.app(&format!("/api/credentials/agents/{agent}")))
            .json(&body)
            .send()
    };
    for (agent, body, code) in [
        (
            "cursor",
            json!({ "kind": "api_key", "secret": "sk-1" }),
            "unknown_agent",
        ),
        (
            "claude-code",
            json!({ "kind": "password", "secret": "sk-1" }),
            "unknown_credential_kind",
        ),
        (
            "openai-codex",
            json!({ "kind": "oauth_token", "secret": "tok" }),
            "credential_kind_not_accepted",
        ),
        (
            "opencode",
            json!({ "kind": "api_key", "secret": "" }),
            "invalid_secret",
        ),
        ("opencode", json!({ "kind": "api_key" }), "invalid_json"),
    ] {
        let resp = put_user(agent, body.clone()).await.unwrap();
        let status = resp.status().as_u16();
        let err: ErrorBody = resp.json().await.unwrap();
        assert_eq!((status, err.code.as_str()), (400, code), "{agent} {body}");
    }
    let listed: Value = get_json(&user, &p.app("/api/credentials/agents")).await;
    assert_eq!(listed["credentials"], json!([]));

    // The user's own key takes over from the platform's; it is listed masked.
    let user_key = "sk-ant-j07-user-key-000000000000001";
    let resp = put_user(
        "claude-code",
        json!({ "kind": "api_key", "secret": user_key }),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let stored = resp.text().await.unwrap();
    assert!(!stored.contains(user_key), "{stored}");
    let listed: Value = get_json(&user, &p.app("/api/credentials/agents")).await;
    assert_eq!(listed["credentials"][0]["masked"], "••••0001");
    assert_eq!(listed["credentials"][0]["kind"], "api_key");
    let now: Value = get_json(&user, &resolution).await;
    assert_eq!(effective(&now, "claude-code")["source"], "user");
    assert_eq!(effective(&now, "claude-code")["masked"], "••••0001");

    // One active kind per agent: an OAuth token replaces the API key.
    let oauth = "oauth-j07-user-token-0000000000002";
    put_user(
        "claude-code",
        json!({ "kind": "oauth_token", "secret": oauth }),
    )
    .await
    .unwrap();
    let listed: Value = get_json(&user, &p.app("/api/credentials/agents")).await;
    assert_eq!(listed["credentials"].as_array().unwrap().len(), 1);
    assert_eq!(listed["credentials"][0]["kind"], "oauth_token");

    // The project's override wins inside that project.
    let project_key = "sk-ant-j07-project-key-0000000003";
    let override_url = format!("{resolution}/claude-code");
    let resp = user
        .put(&override_url)
        .json(&json!({ "kind": "api_key", "secret": project_key }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let now: Value = get_json(&user, &resolution).await;
    assert_eq!(effective(&now, "claude-code")["source"], "project");
    assert_eq!(effective(&now, "claude-code")["kind"], "api_key");
    assert_eq!(now["overrides"][0]["scope"], "project");
    // An override for another agent resolves too.
    user.put(format!("{resolution}/opencode"))
        .json(&json!({ "kind": "api_key", "secret": "sk-opencode-project-04" }))
        .send()
        .await
        .unwrap();
    let now: Value = get_json(&user, &resolution).await;
    assert_eq!(effective(&now, "opencode")["source"], "project");

    // Another user can neither see nor change this project's keys.
    let other = p.signed_in("j07-other").await.unwrap();
    let other_resolution = p.api(&format!("/api/projects/{project}/agent-credentials"));
    let resp = other.get(&other_resolution).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let resp = other
        .put(format!("{other_resolution}/claude-code"))
        .json(&json!({ "kind": "api_key", "secret": "sk-stolen-000000000" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // Removing the override falls back to the user's key.
    let resp = user.delete(&override_url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = user.delete(&override_url).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let now: Value = get_json(&user, &resolution).await;
    assert_eq!(effective(&now, "claude-code")["source"], "user");
    assert_eq!(effective(&now, "claude-code")["kind"], "oauth_token");

    // Deleting the project takes its overrides with it; the user's keys stay.
    let resp = user
        .delete(p.app(&format!("/api/projects/{project}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(user.get(&resolution).send().await.unwrap().status(), 404);
    let listed: Value = get_json(&user, &p.app("/api/credentials/agents")).await;
    assert_eq!(listed["credentials"].as_array().unwrap().len(), 1);

    // And the user's own key can be removed.
    let resp = user
        .delete(p.app("/api/credentials/agents/claude-code"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}
