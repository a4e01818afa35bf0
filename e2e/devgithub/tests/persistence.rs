//! State survives a restart: users, tokens, installations, repositories,
//! redirects, deliveries and id counters, all from `state.json`.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Options, Receiver, TestHub, app_jwt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn everything_survives_a_restart() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        webhook_url: Some(receiver.url.clone()),
        ..Options::default()
    };
    let hub = TestHub::start_with(dir.path(), options.clone()).await;
    let octocat = hub.create_user("octocat", Some("octo@example.com")).await;
    let repo = hub.create_repo("octocat", "before", true).await;
    let installation = hub.install("octocat", &[]).await;
    let id = installation["id"].as_u64().unwrap();
    let user_token = hub.user_token("octocat", "user").await;
    let (_, minted) = hub.installation_token(id, json!({})).await;
    let installation_token = minted["token"].as_str().unwrap().to_owned();
    hub.admin(
        Method::POST,
        "/_devgithub/repos/octocat/before/rename",
        json!({"name": "after"}),
    )
    .await;
    hub.settled_deliveries(2).await;
    let old_base = hub.base.clone();
    hub.stop();

    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("state.json")).unwrap())
            .unwrap();
    assert!(
        state["user_tokens"]
            .as_object()
            .unwrap()
            .contains_key(&user_token)
    );

    let hub = TestHub::start_with(dir.path(), options).await;
    assert_ne!(hub.base, old_base);
    let (status, user) = hub.get_as("/user", &user_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user["id"], octocat["id"]);
    assert_eq!(user["email"], "octo@example.com");

    let (status, repos) = hub
        .get_as("/installation/repositories", &installation_token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(repos["repositories"][0]["name"], "after");
    assert_eq!(repos["repositories"][0]["id"], repo["id"]);
    // URLs follow the new address.
    assert_eq!(
        repos["repositories"][0]["clone_url"],
        hub.url("/octocat/after.git")
    );
    let (status, _) = hub
        .get_as("/repos/octocat/before", &installation_token)
        .await;
    assert_eq!(status, StatusCode::MOVED_PERMANENTLY);

    let (status, listed) = hub.get_as("/app/installations", &app_jwt()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed[0]["id"], id);
    assert_eq!(hub.deliveries().await.len(), 2);

    // Counters continue rather than restart.
    let hubot = hub.create_user("hubot", None).await;
    assert!(hubot["id"].as_u64().unwrap() > octocat["id"].as_u64().unwrap());
    hub.stop();
}
