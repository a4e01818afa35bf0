//! REST endpoints for OAuth user tokens: `/user`, `/user/emails`,
//! `/user/installations[/{id}/repositories]`, token schemes and GitHub's
//! 401/403/404 bodies.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestHub, app_jwt, decode};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn user_shape_with_bearer_or_token_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    hub.create_user("octocat", Some("octocat@example.com"))
        .await;
    hub.create_repo("octocat", "public-one", false).await;
    hub.create_repo("octocat", "secret-one", true).await;
    let token = hub.user_token("octocat", "read:user").await;

    let (status, user) = hub.get_as("/user", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(user["id"].is_u64());
    assert_eq!(user["login"], "octocat");
    assert_eq!(user["name"], "octocat Example");
    assert_eq!(user["email"], "octocat@example.com");
    assert_eq!(user["type"], "User");
    assert_eq!(user["site_admin"], false);
    assert_eq!(user["public_repos"], 1);
    assert_eq!(user["html_url"], hub.url("/octocat"));
    let avatar = user["avatar_url"].as_str().unwrap();
    let svg = hub.client.get(avatar).send().await.unwrap();
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");

    // GitHub also takes the older `token` scheme, and reports scopes.
    let response = hub
        .client
        .get(hub.url("/user"))
        .header("authorization", format!("token {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-oauth-scopes"], "read:user");
    assert_eq!(decode(response).await.1["id"], user["id"]);
    hub.stop();
}

#[tokio::test]
async fn bad_missing_and_wrong_kind_of_token() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    hub.create_user("octocat", None).await;

    let (status, body) = hub.get_as("/user", "gho_notarealtoken").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"})
    );
    let (status, _) = hub.get_as("/user/emails", "nope").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, body) = decode(hub.client.get(hub.url("/user")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["message"], "Requires authentication");

    // An installation token is not a user.
    hub.create_repo("octocat", "r", true).await;
    let installation = hub.install("octocat", &[]).await;
    let (_, minted) = hub
        .installation_token(installation["id"].as_u64().unwrap(), json!({}))
        .await;
    let (status, body) = hub.get_as("/user", minted["token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["message"], "Resource not accessible by integration");

    // Nor is an app JWT.
    let (status, _) = hub.get_as("/user", &app_jwt()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    hub.stop();
}

#[tokio::test]
async fn emails_need_the_email_scope() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    let user = hub
        .create_user("octocat", Some("octocat@example.com"))
        .await;
    let id = user["id"].as_u64().unwrap();

    let token = hub.user_token("octocat", "read:user user:email").await;
    let (status, emails) = hub.get_as("/user/emails", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        emails,
        json!([
            {"email": "octocat@example.com", "primary": true, "verified": true, "visibility": "public"},
            {"email": format!("{id}+octocat@users.noreply.github.com"), "primary": false, "verified": true, "visibility": null},
        ])
    );

    let narrow = hub.user_token("octocat", "read:user").await;
    let (status, body) = hub.get_as("/user/emails", &narrow).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "Not Found");

    // Without a public email the noreply address is primary.
    hub.create_user("hubot", None).await;
    let token = hub.user_token("hubot", "user").await;
    let (_, emails) = hub.get_as("/user/emails", &token).await;
    assert_eq!(emails.as_array().unwrap().len(), 1);
    assert_eq!(emails[0]["primary"], true);
    hub.stop();
}

#[tokio::test]
async fn user_installations_and_their_repositories_paginate() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    hub.create_user("octocat", None).await;
    hub.create_user("stranger", None).await;
    let (status, _) = hub
        .admin(
            Method::POST,
            "/_devgithub/orgs",
            json!({"login": "acme", "members": ["octocat"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for i in 0..5 {
        hub.create_repo("acme", &format!("svc-{i}"), true).await;
    }
    hub.create_repo("octocat", "dotfiles", false).await;
    hub.create_repo("stranger", "theirs", false).await;
    let org_install = hub.install("acme", &[]).await;
    let own_install = hub.install("octocat", &["dotfiles"]).await;
    hub.install("stranger", &[]).await;

    let token = hub.user_token("octocat", "").await;
    let (status, body) = hub.get_as("/user/installations", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total_count"], 2);
    let logins: Vec<&str> = body["installations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["account"]["login"].as_str().unwrap())
        .collect();
    assert_eq!(logins, ["acme", "octocat"]);
    assert_eq!(body["installations"][0]["account"]["type"], "Organization");
    assert_eq!(body["installations"][1]["repository_selection"], "selected");

    let response = hub
        .client
        .get(hub.url("/user/installations?per_page=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let link = response.headers()["link"].to_str().unwrap().to_owned();
    assert_eq!(
        link,
        format!(
            "<{base}/user/installations?per_page=1&page=2>; rel=\"next\", <{base}/user/installations?per_page=1&page=2>; rel=\"last\"",
            base = hub.base
        )
    );
    let (_, page1) = decode(response).await;
    assert_eq!(page1["total_count"], 2);
    assert_eq!(page1["installations"].as_array().unwrap().len(), 1);

    // Walk the repositories of the org installation through `Link: next`.
    let org_id = org_install["id"].as_u64().unwrap();
    let mut url = Some(hub.url(&format!(
        "/user/installations/{org_id}/repositories?per_page=2"
    )));
    let mut names = Vec::new();
    while let Some(next) = url {
        let response = hub
            .client
            .get(&next)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        url = response.headers().get("link").and_then(|l| {
            l.to_str()
                .unwrap()
                .split(", ")
                .find(|part| part.ends_with("rel=\"next\""))
                .map(|part| part[1..part.find('>').unwrap()].to_owned())
        });
        let (status, body) = decode(response).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["total_count"], 5);
        assert_eq!(body["repository_selection"], "all");
        for repo in body["repositories"].as_array().unwrap() {
            assert_eq!(repo["permissions"]["admin"], true);
            names.push(repo["full_name"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        names,
        (0..5).map(|i| format!("acme/svc-{i}")).collect::<Vec<_>>()
    );

    // Someone else's installation is invisible.
    let other = hub.user_token("stranger", "").await;
    let (status, _) = hub
        .get_as(
            &format!("/user/installations/{org_id}/repositories"),
            &other,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let own_id = own_install["id"].as_u64().unwrap();
    let (_, body) = hub
        .get_as(
            &format!("/user/installations/{own_id}/repositories"),
            &token,
        )
        .await;
    assert_eq!(body["total_count"], 1);
    assert_eq!(body["repositories"][0]["name"], "dotfiles");
    hub.stop();
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_404s() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    let (status, body) = decode(
        hub.client
            .get(hub.url("/nothing/here/at/all"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "Not Found");
    let (status, _) = decode(hub.client.patch(hub.url("/user")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Git paths are git's: an unknown repository asks for credentials
    // (tests/git.rs covers the rest).
    let response = hub
        .client
        .get(hub.url("/octocat/hello.git/info/refs?service=git-upload-pack"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Pull request endpoints devgithub lacks say so.
    let (status, body) = decode(
        hub.client
            .put(hub.url("/repos/o/r/pulls/1/merge"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    assert!(body["message"].as_str().unwrap().contains("pull request"));
    hub.stop();
}
