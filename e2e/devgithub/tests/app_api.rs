//! The GitHub App side: JWT verification, `/app` and its installations,
//! installation access tokens, and what those tokens reach (repositories,
//! branches), with pagination and GitHub's redirects for renamed repos.

#![allow(clippy::unwrap_used)]

mod common;

use chrono::{DateTime, Utc};
use common::{
    APP_ID, APP_PRIVATE_KEY, APP_SLUG, CLIENT_ID, OTHER_PRIVATE_KEY, TestHub, app_jwt, decode, now,
    sign,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn get_app(hub: &TestHub, jwt: &str) -> (StatusCode, Value) {
    hub.get_as("/app", jwt).await
}

#[tokio::test]
async fn app_jwts_are_verified_like_github() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    let now = now();

    let (status, app) = get_app(&hub, &app_jwt()).await;
    assert_eq!(status, StatusCode::OK, "{app}");
    assert_eq!(app["id"], APP_ID);
    assert_eq!(app["slug"], APP_SLUG);
    assert_eq!(app["client_id"], CLIENT_ID);
    assert_eq!(app["html_url"], hub.url(&format!("/apps/{APP_SLUG}")));

    // `iss` as a number, or as the client id, is accepted too.
    for iss in [json!(APP_ID), json!(CLIENT_ID)] {
        let jwt = sign(
            &json!({"iat": now - 30, "exp": now + 300, "iss": iss}),
            APP_PRIVATE_KEY,
        );
        assert_eq!(get_app(&hub, &jwt).await.0, StatusCode::OK, "iss {iss}");
    }

    let undecodable = "A JSON web token could not be decoded";
    let cases = [
        (
            sign(
                &json!({"iat": now - 60, "exp": now + 540, "iss": APP_ID.to_string()}),
                OTHER_PRIVATE_KEY,
            ),
            undecodable,
        ),
        (
            sign(
                &json!({"iat": now - 60, "exp": now + 540, "iss": "999"}),
                APP_PRIVATE_KEY,
            ),
            undecodable,
        ),
        ("not.a.jwt".to_owned(), undecodable),
        (
            sign(
                &json!({"iat": now - 600, "exp": now - 5, "iss": APP_ID}),
                APP_PRIVATE_KEY,
            ),
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
        ),
        (
            sign(
                &json!({"iat": now - 60, "exp": now + 3600, "iss": APP_ID}),
                APP_PRIVATE_KEY,
            ),
            "'Expiration time' claim ('exp') is too far in the future",
        ),
        (
            sign(
                &json!({"iat": now + 300, "exp": now + 500, "iss": APP_ID}),
                APP_PRIVATE_KEY,
            ),
            "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued",
        ),
        (
            sign(&json!({"exp": now + 500, "iss": APP_ID}), APP_PRIVATE_KEY),
            "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued",
        ),
    ];
    for (jwt, message) in cases {
        let (status, body) = get_app(&hub, &jwt).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{message}");
        assert_eq!(body["message"], message);
        assert_eq!(body["documentation_url"], "https://docs.github.com/rest");
    }

    // A tampered payload breaks the signature.
    let jwt = app_jwt();
    let mut parts: Vec<String> = jwt.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].chars().rev().collect();
    assert_eq!(
        get_app(&hub, &parts.join(".")).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Missing, or a user token instead of a JWT.
    let (status, _) = decode(hub.client.get(hub.url("/app")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    hub.create_user("octocat", None).await;
    let user_token = hub.user_token("octocat", "").await;
    assert_eq!(get_app(&hub, &user_token).await.0, StatusCode::UNAUTHORIZED);
    hub.stop();
}

#[tokio::test]
async fn installations_and_access_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    hub.create_user("octocat", None).await;
    hub.create_user("hubot", None).await;
    hub.create_repo("octocat", "alpha", true).await;
    hub.create_repo("octocat", "beta", true).await;
    hub.create_repo("hubot", "gamma", true).await;
    let first = hub.install("octocat", &["alpha", "octocat/beta"]).await;
    let second = hub.install("hubot", &[]).await;
    let first_id = first["id"].as_u64().unwrap();

    assert_eq!(first["app_id"], APP_ID);
    assert_eq!(first["account"]["login"], "octocat");
    assert_eq!(first["repository_selection"], "selected");
    assert_eq!(second["repository_selection"], "all");
    assert_eq!(
        first["access_tokens_url"],
        hub.url(&format!("/app/installations/{first_id}/access_tokens"))
    );
    assert_eq!(first["permissions"]["contents"], "write");

    let jwt = app_jwt();
    let response = hub
        .client
        .get(hub.url("/app/installations?per_page=1&page=2"))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    let link = response.headers()["link"].to_str().unwrap().to_owned();
    assert!(
        link.contains("rel=\"prev\"") && link.contains("rel=\"first\""),
        "{link}"
    );
    let (status, list) = decode(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], second["id"]);

    let (status, one) = hub
        .get_as(&format!("/app/installations/{first_id}"), &jwt)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one, first);
    let (status, body) = hub.get_as("/app/installations/12345", &jwt).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "Not Found");
    let (_, by_repo) = hub.get_as("/repos/octocat/alpha/installation", &jwt).await;
    assert_eq!(by_repo["id"], first_id);
    let (_, by_user) = hub.get_as("/users/hubot/installation", &jwt).await;
    assert_eq!(by_user["id"], second["id"]);

    // Issue a token.
    let before = Utc::now();
    let (status, minted) = hub.installation_token(first_id, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    let token = minted["token"].as_str().unwrap();
    assert!(token.starts_with("ghs_") && token.len() == 40, "{token}");
    let expires: DateTime<Utc> = minted["expires_at"].as_str().unwrap().parse().unwrap();
    let lifetime = (expires - before).num_seconds();
    assert!((3590..=3610).contains(&lifetime), "{lifetime}");
    assert!(minted["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(minted["repository_selection"], "selected");
    assert_eq!(minted["permissions"], first["permissions"]);
    assert!(minted.get("repositories").is_none());

    // Narrowed tokens reach only what they name; unknown repos and
    // ungranted permissions are refused.
    let (status, narrow) = hub
        .installation_token(
            first_id,
            json!({"repositories": ["beta"], "permissions": {"contents": "read"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{narrow}");
    assert_eq!(narrow["permissions"], json!({"contents": "read"}));
    assert_eq!(narrow["repositories"][0]["full_name"], "octocat/beta");
    let (status, _) = hub
        .installation_token(first_id, json!({"repositories": ["gamma"]}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = hub
        .installation_token(
            first_id,
            json!({"permissions": {"administration": "write"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = hub.installation_token(999, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = decode(
        hub.client
            .post(hub.url(&format!("/app/installations/{first_id}/access_tokens")))
            .bearer_auth(&jwt)
            .header("content-type", "application/json")
            .body("{oops")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "Problems parsing JSON");

    let (status, repos) = hub.get_as("/installation/repositories", token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(repos["total_count"], 2);
    let (_, repos) = hub
        .get_as(
            "/installation/repositories",
            narrow["token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(repos["total_count"], 1);
    assert_eq!(repos["repositories"][0]["name"], "beta");

    // A user token cannot list an installation's repositories.
    let user_token = hub.user_token("octocat", "").await;
    let (status, _) = hub.get_as("/installation/repositories", &user_token).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Revoking ends the token.
    let response = hub
        .client
        .delete(hub.url("/installation/token"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, body) = hub.get_as("/installation/repositories", token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["message"], "Bad credentials");
    hub.stop();
}

#[tokio::test]
async fn repositories_and_branches_through_an_installation_token() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    hub.create_user("octocat", None).await;
    let (status, seeded) = hub
        .admin(
            Method::POST,
            "/_devgithub/repos",
            json!({
                "owner": "octocat",
                "name": "hello-world",
                "private": true,
                "description": "My first repo",
                "default_branch": "trunk",
                "branches": [
                    "trunk",
                    {"name": "release/1.0", "protected": true},
                    {"name": "pinned", "sha": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
                    "b3", "b4",
                ],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{seeded}");
    hub.create_repo("octocat", "not-installed", true).await;
    hub.create_repo("octocat", "open-source", false).await;
    for i in 0..4 {
        hub.create_repo("octocat", &format!("extra-{i}"), true)
            .await;
    }
    let installation = hub
        .install(
            "octocat",
            &["hello-world", "extra-0", "extra-1", "extra-2", "extra-3"],
        )
        .await;
    let (_, minted) = hub
        .installation_token(installation["id"].as_u64().unwrap(), json!({}))
        .await;
    let token = minted["token"].as_str().unwrap();

    let (status, repo) = hub.get_as("/repos/octocat/hello-world", token).await;
    assert_eq!(status, StatusCode::OK, "{repo}");
    assert_eq!(repo["id"], seeded["id"]);
    assert!(repo["node_id"].is_string());
    assert_eq!(repo["name"], "hello-world");
    assert_eq!(repo["full_name"], "octocat/hello-world");
    assert_eq!(repo["owner"]["login"], "octocat");
    assert_eq!(repo["owner"]["type"], "User");
    assert!(repo["owner"]["id"].is_u64());
    assert_eq!(repo["private"], true);
    assert_eq!(repo["visibility"], "private");
    assert_eq!(repo["default_branch"], "trunk");
    assert_eq!(repo["description"], "My first repo");
    assert_eq!(repo["html_url"], hub.url("/octocat/hello-world"));
    assert_eq!(repo["clone_url"], hub.url("/octocat/hello-world.git"));
    assert!(repo.get("permissions").is_none());
    // Names are case-insensitive, like GitHub's.
    let (status, _) = hub.get_as("/repos/OctoCat/Hello-World", token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = hub
        .get_as(&format!("/repositories/{}", seeded["id"]), token)
        .await;
    assert_eq!(status, StatusCode::OK);

    // Outside the installation: private is hidden, public is readable.
    let (status, body) = hub.get_as("/repos/octocat/not-installed", token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "Not Found");
    let (status, _) = hub.get_as("/repos/octocat/open-source", token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = decode(
        hub.client
            .get(hub.url("/repos/octocat/hello-world"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Branches, paginated.
    let response = hub
        .client
        .get(hub.url("/repos/octocat/hello-world/branches?per_page=2"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let link = response.headers()["link"].to_str().unwrap().to_owned();
    assert!(link.contains("page=3>; rel=\"last\""), "{link}");
    let (_, page1) = decode(response).await;
    assert_eq!(page1.as_array().unwrap().len(), 2);
    assert_eq!(page1[0]["name"], "trunk");
    let sha = page1[0]["commit"]["sha"].as_str().unwrap();
    assert_eq!(sha.len(), 40);
    assert!(sha.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(page1[1]["protected"], true);
    let (_, page3) = hub
        .get_as(
            "/repos/octocat/hello-world/branches?per_page=2&page=3",
            token,
        )
        .await;
    assert_eq!(page3.as_array().unwrap().len(), 1);
    assert_eq!(page3[0]["name"], "b4");
    let (_, protected) = hub
        .get_as("/repos/octocat/hello-world/branches?protected=true", token)
        .await;
    assert_eq!(protected.as_array().unwrap().len(), 1);

    let (status, branch) = hub
        .get_as("/repos/octocat/hello-world/branches/release/1.0", token)
        .await;
    assert_eq!(status, StatusCode::OK, "{branch}");
    assert_eq!(branch["name"], "release/1.0");
    assert_eq!(branch["protected"], true);
    assert_eq!(branch["commit"]["sha"], page1[1]["commit"]["sha"]);
    let (_, pinned) = hub
        .get_as("/repos/octocat/hello-world/branches/pinned", token)
        .await;
    assert_eq!(pinned["commit"]["sha"], "a".repeat(40));
    let (status, body) = hub
        .get_as("/repos/octocat/hello-world/branches/nope", token)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "Branch not found");

    // Installation repositories paginate too.
    let response = hub
        .client
        .get(hub.url("/installation/repositories?per_page=3&page=2"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["link"]
            .to_str()
            .unwrap()
            .contains("rel=\"prev\"")
    );
    let (_, page) = decode(response).await;
    assert_eq!(page["total_count"], 5);
    assert_eq!(page["repositories"].as_array().unwrap().len(), 2);
    hub.stop();
}

#[tokio::test]
async fn renamed_repositories_answer_301_and_deleted_installations_end_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    hub.create_user("octocat", None).await;
    let repo = hub.create_repo("octocat", "old-name", true).await;
    let installation = hub.install("octocat", &[]).await;
    let id = installation["id"].as_u64().unwrap();
    let (_, minted) = hub.installation_token(id, json!({})).await;
    let token = minted["token"].as_str().unwrap();

    let (status, renamed) = hub
        .admin(
            Method::POST,
            "/_devgithub/repos/octocat/old-name/rename",
            json!({"name": "new-name"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["full_name"], "octocat/new-name");

    let response = hub
        .client
        .get(hub.url("/repos/octocat/old-name/branches?per_page=1"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::MOVED_PERMANENTLY);
    let target = hub.url(&format!("/repositories/{}/branches?per_page=1", repo["id"]));
    assert_eq!(response.headers()["location"], target.as_str());
    let (_, body) = decode(response).await;
    assert_eq!(body["message"], "Moved Permanently");
    assert_eq!(body["url"], target);
    let (status, branches) = hub.get_as(&target.replace(&hub.base, ""), token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(branches.as_array().unwrap().len(), 1);

    let response = hub
        .client
        .delete(hub.url(&format!("/app/installations/{id}")))
        .bearer_auth(app_jwt())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, _) = hub.get_as("/repos/octocat/new-name", token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = hub
        .get_as(&format!("/app/installations/{id}"), &app_jwt())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    hub.stop();
}

#[tokio::test]
async fn admin_validation_uses_githubs_422_shape() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    hub.create_user("octocat", None).await;
    let (status, body) = hub
        .admin(
            Method::POST,
            "/_devgithub/users",
            json!({"login": "octocat"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["message"], "Validation Failed");
    assert_eq!(body["errors"][0]["code"], "already_exists");
    assert_eq!(body["errors"][0]["field"], "login");
    let (status, _) = hub
        .admin(Method::POST, "/_devgithub/users", json!({"login": "-bad-"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = hub
        .admin(
            Method::POST,
            "/_devgithub/repos",
            json!({"owner": "octocat", "name": "a b"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = hub
        .admin(
            Method::POST,
            "/_devgithub/installations",
            json!({"account_login": "nobody"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    hub.install("octocat", &[]).await;
    let (status, body) = hub
        .admin(
            Method::POST,
            "/_devgithub/installations",
            json!({"account_login": "octocat"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = hub
        .admin(Method::POST, "/_devgithub/users", json!({"name": 3}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    hub.stop();
}
