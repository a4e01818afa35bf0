//! Signed webhook deliveries: headers, HMAC (checked by the receiver on
//! its own), payloads for installation, installation_repositories and
//! repository events, the install web flow, retries and the delivery log.

#![allow(clippy::unwrap_used)]

mod common;

use common::{APP_ID, APP_SLUG, Options, Receiver, SETUP_URL, TestHub, location, query_param};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn hub_with(receiver_url: &str, dir: &std::path::Path) -> TestHub {
    TestHub::start_with(
        dir,
        Options {
            webhook_url: Some(receiver_url.to_owned()),
            ..Options::default()
        },
    )
    .await
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

#[tokio::test]
async fn installation_created_is_signed_and_recorded() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_with(&receiver.url, dir.path()).await;
    hub.create_user("octocat", None).await;
    hub.create_repo("octocat", "one", true).await;
    hub.create_repo("octocat", "two", false).await;
    let installation = hub.install("octocat", &["one"]).await;

    let got = receiver.wait_for(1).await;
    let hook = &got[0];
    assert!(hook.signature_ok, "signature did not verify");
    assert_eq!(hook.header("x-github-event"), "installation");
    assert!(is_uuid(hook.header("x-github-delivery")));
    assert!(hook.header("x-github-hook-id").parse::<u64>().is_ok());
    assert!(hook.header("user-agent").starts_with("GitHub-Hookshot/"));
    assert_eq!(hook.header("content-type"), "application/json");
    assert_eq!(
        hook.header("x-github-hook-installation-target-type"),
        "integration"
    );
    assert_eq!(
        hook.header("x-github-hook-installation-target-id"),
        APP_ID.to_string()
    );

    let payload = hook.json();
    assert_eq!(payload["action"], "created");
    assert_eq!(payload["installation"]["id"], installation["id"]);
    assert_eq!(payload["installation"]["account"]["login"], "octocat");
    assert_eq!(payload["installation"]["repository_selection"], "selected");
    assert_eq!(
        payload["repositories"],
        json!([{
            "id": payload["repositories"][0]["id"],
            "node_id": payload["repositories"][0]["node_id"],
            "name": "one",
            "full_name": "octocat/one",
            "private": true,
        }])
    );
    assert_eq!(payload["sender"]["login"], "octocat");
    assert!(payload["requester"].is_null());

    let deliveries = hub.settled_deliveries(1).await;
    assert_eq!(deliveries.len(), 1);
    let d = &deliveries[0];
    assert_eq!(d["event"], "installation");
    assert_eq!(d["action"], "created");
    assert_eq!(d["guid"], hook.header("x-github-delivery"));
    assert_eq!(d["status_code"], 204);
    assert_eq!(d["status"], "delivered");
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["installation_id"], installation["id"]);
    hub.stop();
}

#[tokio::test]
async fn rename_delete_and_uninstall_emit_the_matching_events() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_with(&receiver.url, dir.path()).await;
    hub.create_user("octocat", None).await;
    hub.admin(
        Method::POST,
        "/_devgithub/orgs",
        json!({"login": "acme", "members": ["octocat"]}),
    )
    .await;
    hub.create_repo("acme", "api", true).await;
    hub.create_repo("acme", "web", true).await;
    hub.create_repo("acme", "docs", true).await;
    let installation = hub.install("acme", &["api", "web"]).await;
    let id = installation["id"].as_u64().unwrap();

    let (status, _) = hub
        .admin(
            Method::POST,
            "/_devgithub/repos/acme/api/rename",
            json!({"name": "core-api"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, diff) = hub
        .admin(
            Method::POST,
            &format!("/_devgithub/installations/{id}/repositories"),
            json!({"add": ["docs"], "remove": ["web"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{diff}");
    let (status, _) = hub
        .admin(Method::DELETE, "/_devgithub/repos/acme/docs", json!(null))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = hub
        .admin(
            Method::DELETE,
            &format!("/_devgithub/installations/{id}"),
            json!(null),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Not installed any more: renaming sends nothing.
    hub.admin(
        Method::POST,
        "/_devgithub/repos/acme/web/rename",
        json!({"name": "site"}),
    )
    .await;

    let got = receiver.wait_for(6).await;
    assert!(got.iter().all(|h| h.signature_ok));
    let summary: Vec<(String, String)> = got
        .iter()
        .map(|h| {
            (
                h.header("x-github-event").to_owned(),
                h.json()["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("installation", "created"),
        ("repository", "renamed"),
        ("installation_repositories", "added"),
        ("installation_repositories", "removed"),
        ("repository", "deleted"),
        ("installation", "deleted"),
    ];
    assert_eq!(
        summary,
        expected.map(|(e, a)| (e.to_owned(), a.to_owned())).to_vec()
    );

    let renamed = got[1].json();
    assert_eq!(
        renamed["changes"],
        json!({"repository": {"name": {"from": "api"}}})
    );
    assert_eq!(renamed["repository"]["name"], "core-api");
    assert_eq!(renamed["repository"]["full_name"], "acme/core-api");
    assert_eq!(renamed["installation"]["id"], id);
    assert_eq!(renamed["organization"]["login"], "acme");
    // The org's first member stands in as sender.
    assert_eq!(renamed["sender"]["login"], "octocat");

    let added = got[2].json();
    assert_eq!(added["repositories_added"][0]["full_name"], "acme/docs");
    assert_eq!(added["repositories_removed"], json!([]));
    assert_eq!(added["repository_selection"], "selected");
    let removed = got[3].json();
    assert_eq!(removed["repositories_removed"][0]["full_name"], "acme/web");

    let deleted = got[4].json();
    assert_eq!(deleted["repository"]["full_name"], "acme/docs");
    assert_eq!(deleted["installation"]["id"], id);

    let uninstalled = got[5].json();
    assert_eq!(uninstalled["installation"]["id"], id);
    assert_eq!(uninstalled["repositories"][0]["full_name"], "acme/core-api");

    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(receiver.received().len(), 6, "nothing after uninstalling");
    let deliveries = hub.settled_deliveries(6).await;
    let guids: Vec<&str> = deliveries
        .iter()
        .map(|d| d["guid"].as_str().unwrap())
        .collect();
    let sent: Vec<String> = got
        .iter()
        .map(|h| h.header("x-github-delivery").to_owned())
        .collect();
    assert_eq!(guids, sent);
    let (status, only) = hub
        .admin(
            Method::GET,
            "/_devgithub/deliveries?event=repository&action=renamed",
            json!(null),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(only.as_array().unwrap().len(), 1);
    hub.stop();
}

#[tokio::test]
async fn failed_deliveries_are_retried_then_recorded_and_never_fatal() {
    let receiver = Receiver::scripted(vec![
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::NO_CONTENT,
        // second event: refused for good on every attempt
        StatusCode::BAD_GATEWAY,
        StatusCode::BAD_GATEWAY,
        StatusCode::BAD_GATEWAY,
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_with(&receiver.url, dir.path()).await;
    hub.create_user("octocat", None).await;
    hub.create_user("hubot", None).await;
    hub.install("octocat", &[]).await;
    hub.install("hubot", &[]).await;

    let deliveries = hub.settled_deliveries(2).await;
    assert_eq!(deliveries[0]["attempts"], 3);
    assert_eq!(deliveries[0]["status"], "delivered");
    assert_eq!(deliveries[0]["status_code"], 204);
    assert_eq!(deliveries[1]["attempts"], 3);
    assert_eq!(deliveries[1]["status"], "failed");
    assert_eq!(deliveries[1]["status_code"], 502);
    // Each retry carries the same delivery id and a valid signature.
    let got = receiver.received();
    assert_eq!(got.len(), 6);
    assert!(got.iter().all(|h| h.signature_ok));
    assert_eq!(
        got[0].header("x-github-delivery"),
        got[2].header("x-github-delivery")
    );
    hub.stop();

    // Nobody listening: recorded as failed without a status, server fine.
    // Bound but never listening: refused, and no other test can take it.
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let url = format!("http://{}/hook", closed.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_with(&url, dir.path()).await;
    hub.create_user("octocat", None).await;
    hub.install("octocat", &[]).await;
    let deliveries = hub.settled_deliveries(1).await;
    assert_eq!(deliveries[0]["status"], "failed");
    assert!(deliveries[0]["status_code"].is_null());
    assert!(deliveries[0]["error"].is_string());
    let (status, _) = hub
        .admin(Method::GET, "/_devgithub/users", json!(null))
        .await;
    assert_eq!(status, StatusCode::OK);
    hub.stop();
}

#[tokio::test]
async fn the_install_page_installs_then_updates_and_redirects_to_setup() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_with(&receiver.url, dir.path()).await;
    hub.create_user("octocat", None).await;
    hub.create_repo("octocat", "one", true).await;
    hub.create_repo("octocat", "two", true).await;

    // Without a login: a picker.
    let picker = hub
        .client
        .get(hub.url(&format!("/apps/{APP_SLUG}/installations/new?state=st8")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(picker.contains("login=octocat"), "{picker}");
    let page = hub
        .client
        .get(hub.url(&format!(
            "/apps/{APP_SLUG}/installations/new?state=st8&login=octocat"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"value="octocat/one""#) && html.contains(r#"name="repository_selection""#)
    );
    let wrong_app = hub
        .client
        .get(hub.url("/apps/other/installations/new"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_app.status(), StatusCode::NOT_FOUND);

    let submit = |body: &'static str| {
        hub.client
            .post(hub.url(&format!("/apps/{APP_SLUG}/installations/new")))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let response = submit("login=octocat&account=octocat&repository_selection=all&state=st8")
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let to = location(&response);
    assert!(to.starts_with(SETUP_URL), "{to}");
    assert_eq!(query_param(&to, "setup_action").unwrap(), "install");
    assert_eq!(query_param(&to, "state").unwrap(), "st8");
    let id: u64 = query_param(&to, "installation_id")
        .unwrap()
        .parse()
        .unwrap();

    let response = submit(
        "login=octocat&account=octocat&repository_selection=selected&repositories=octocat%2Fone&state=again",
    )
    .await
    .unwrap();
    let to = location(&response);
    assert_eq!(query_param(&to, "setup_action").unwrap(), "update");
    assert_eq!(query_param(&to, "installation_id").unwrap(), id.to_string());

    let got = receiver.wait_for(2).await;
    let created = got[0].json();
    assert_eq!(got[0].header("x-github-event"), "installation");
    assert_eq!(created["action"], "created");
    assert_eq!(created["installation"]["id"], id);
    assert_eq!(created["repositories"].as_array().unwrap().len(), 2);
    assert_eq!(created["sender"]["login"], "octocat");
    let removed = got[1].json();
    assert_eq!(got[1].header("x-github-event"), "installation_repositories");
    assert_eq!(removed["action"], "removed");
    assert_eq!(removed["repository_selection"], "selected");
    assert_eq!(
        removed["repositories_removed"][0]["full_name"],
        "octocat/two"
    );

    // A user cannot install on an account that is not theirs.
    hub.create_user("mallory", None).await;
    let response = submit("login=mallory&account=octocat&repository_selection=all")
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    hub.stop();
}

#[tokio::test]
async fn users_can_add_and_remove_installation_repositories_over_rest() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let hub = hub_with(&receiver.url, dir.path()).await;
    hub.create_user("octocat", None).await;
    hub.create_repo("octocat", "one", true).await;
    let two = hub.create_repo("octocat", "two", true).await;
    let installation = hub.install("octocat", &["one"]).await;
    let token = hub.user_token("octocat", "repo").await;
    let path = format!(
        "/user/installations/{}/repositories/{}",
        installation["id"], two["id"]
    );
    let response = hub
        .client
        .put(hub.url(&path))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = hub
        .client
        .delete(hub.url(&path))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let got = receiver.wait_for(3).await;
    assert_eq!(got[1].json()["action"], "added");
    assert_eq!(got[1].json()["repositories_added"][0]["name"], "two");
    assert_eq!(got[2].json()["action"], "removed");
    assert_eq!(got[2].json()["sender"]["login"], "octocat");
    hub.stop();
}
