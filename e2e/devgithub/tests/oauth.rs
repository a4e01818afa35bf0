//! The OAuth web flow: the authorize page, user choice and creation, the
//! redirect with `code` and the echoed `state`, and the token exchange with
//! GitHub's error shapes (HTTP 200), single-use and expiring codes.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{CALLBACK, CLIENT_ID, CLIENT_SECRET, Options, TestHub, decode, location, query_param};
use reqwest::StatusCode;
use serde_json::{Value, json};

const REDIRECT: &str = "http://app.localhost:8787/auth/github/callback";

async fn authorize(hub: &TestHub, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut query = vec![
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT),
        ("scope", "read:user user:email"),
    ];
    query.extend_from_slice(extra);
    hub.client
        .get(hub.url("/login/oauth/authorize"))
        .query(&query)
        .send()
        .await
        .unwrap()
}

async fn exchange(hub: &TestHub, fields: &[(&str, &str)], json_accept: bool) -> reqwest::Response {
    let mut request = hub
        .client
        .post(hub.url("/login/oauth/access_token"))
        .form(fields);
    if json_accept {
        request = request.header("accept", "application/json");
    }
    request.send().await.unwrap()
}

async fn code_for(hub: &TestHub, login: &str) -> String {
    let response = authorize(hub, &[("login", login), ("state", "st")]).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    query_param(&location(&response), "code").unwrap()
}

async fn exchange_json(hub: &TestHub, code: &str, secret: &str, redirect: &str) -> Value {
    let response = exchange(
        hub,
        &[
            ("client_id", CLIENT_ID),
            ("client_secret", secret),
            ("code", code),
            ("redirect_uri", redirect),
        ],
        true,
    )
    .await;
    let (status, body) = decode(response).await;
    // GitHub answers token-request errors with 200 too.
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn page_lists_users_and_the_chosen_user_comes_back_with_code_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    hub.create_user("octocat", Some("octocat@example.com"))
        .await;
    hub.create_user("hubot", None).await;

    let state = "xyz 123/+&=ünï";
    let page = authorize(&hub, &[("state", state)]).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("octocat") && html.contains("hubot"), "{html}");
    assert!(html.contains(r#"<form method="post" action="/login/oauth/authorize">"#));

    // Each user button is a link back to authorize with `login=`.
    let link = html
        .split("href=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().replace("&amp;", "&"))
        .find(|href| href.contains("login=hubot"))
        .expect("a button for hubot");
    let chosen = hub.client.get(hub.url(&link)).send().await.unwrap();
    assert_eq!(chosen.status(), StatusCode::FOUND);
    let to = location(&chosen);
    assert!(to.starts_with(&format!("{REDIRECT}?")), "{to}");
    assert_eq!(query_param(&to, "state").unwrap(), state);
    let code = query_param(&to, "code").unwrap();
    assert_eq!(code.len(), 20);

    let body = exchange_json(&hub, &code, CLIENT_SECRET, REDIRECT).await;
    let token = body["access_token"].as_str().unwrap();
    assert!(token.starts_with("gho_"), "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["scope"], "read:user,user:email");

    let (status, user) = hub.get_as("/user", token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user["login"], "hubot");
    hub.stop();
}

#[tokio::test]
async fn the_page_form_creates_a_user_and_signs_them_in() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    let create = |login: &'static str| {
        hub.client
            .post(hub.url("/login/oauth/authorize"))
            .form(&[
                ("client_id", CLIENT_ID),
                ("redirect_uri", REDIRECT),
                ("state", "abc"),
                ("login", login),
                ("name", "Mona Lisa"),
                ("email", "mona@example.com"),
            ])
            .send()
    };
    let response = create("mona").await.unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let to = location(&response);
    assert_eq!(query_param(&to, "state").unwrap(), "abc");
    let code = query_param(&to, "code").unwrap();
    let token = exchange_json(&hub, &code, CLIENT_SECRET, REDIRECT).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, user) = hub.get_as("/user", &token).await;
    assert_eq!(user["name"], "Mona Lisa");
    assert_eq!(user["email"], "mona@example.com");

    // The same login again is refused on the page itself.
    let again = create("mona").await.unwrap();
    assert_eq!(again.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(again.text().await.unwrap().contains("already taken"));
    hub.stop();
}

#[tokio::test]
async fn unknown_client_or_user_is_an_error_page() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    let response = hub
        .client
        .get(hub.url("/login/oauth/authorize"))
        .query(&[("client_id", "nope"), ("redirect_uri", REDIRECT)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        response
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );

    let response = authorize(&hub, &[("login", "ghost")]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("no user"));

    // No redirect_uri and no registered callback: nowhere to go.
    let response = hub
        .client
        .get(hub.url("/login/oauth/authorize"))
        .query(&[("client_id", CLIENT_ID)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    hub.stop();
}

#[tokio::test]
async fn codes_are_single_use() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    hub.create_user("octocat", None).await;
    let code = code_for(&hub, "octocat").await;
    let first = exchange_json(&hub, &code, CLIENT_SECRET, REDIRECT).await;
    assert!(first["access_token"].is_string(), "{first}");
    let second = exchange_json(&hub, &code, CLIENT_SECRET, REDIRECT).await;
    assert_eq!(second["error"], "bad_verification_code", "{second}");
    assert_eq!(
        second["error_description"],
        "The code passed is incorrect or expired."
    );
    assert!(
        second["error_uri"]
            .as_str()
            .unwrap()
            .starts_with("https://docs.github.com/")
    );
    assert!(second.get("access_token").is_none());
    hub.stop();
}

#[tokio::test]
async fn unknown_and_expired_codes_are_bad_verification_codes() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start_with(
        dir.path(),
        Options {
            oauth_code_ttl: Duration::from_millis(1000),
            ..Options::default()
        },
    )
    .await;
    hub.create_user("octocat", None).await;

    let body = exchange_json(&hub, "0123456789abcdef0123", CLIENT_SECRET, REDIRECT).await;
    assert_eq!(body["error"], "bad_verification_code");
    let body = exchange_json(&hub, "", CLIENT_SECRET, REDIRECT).await;
    assert_eq!(body["error"], "bad_verification_code");

    let code = code_for(&hub, "octocat").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let body = exchange_json(&hub, &code, CLIENT_SECRET, REDIRECT).await;
    assert_eq!(body["error"], "bad_verification_code", "{body}");

    // A fresh one within its lifetime still works.
    let code = code_for(&hub, "octocat").await;
    let body = exchange_json(&hub, &code, CLIENT_SECRET, REDIRECT).await;
    assert!(body["access_token"].is_string(), "{body}");
    hub.stop();
}

#[tokio::test]
async fn wrong_secret_or_client_is_incorrect_client_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    hub.create_user("octocat", None).await;
    let code = code_for(&hub, "octocat").await;
    let body = exchange_json(&hub, &code, "wrong", REDIRECT).await;
    assert_eq!(body["error"], "incorrect_client_credentials", "{body}");
    assert_eq!(
        body["error_description"],
        "The client_id and/or client_secret passed are incorrect."
    );
    let response = exchange(
        &hub,
        &[
            ("client_id", "other"),
            ("client_secret", CLIENT_SECRET),
            ("code", &code),
        ],
        true,
    )
    .await;
    assert_eq!(
        decode(response).await.1["error"],
        "incorrect_client_credentials"
    );

    // A refused request does not burn the code.
    let body = exchange_json(&hub, &code, CLIENT_SECRET, REDIRECT).await;
    assert!(body["access_token"].is_string(), "{body}");
    hub.stop();
}

#[tokio::test]
async fn redirect_uri_must_match_the_one_authorized() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    hub.create_user("octocat", None).await;
    let code = code_for(&hub, "octocat").await;
    let body = exchange_json(&hub, &code, CLIENT_SECRET, "http://evil.localhost/cb").await;
    assert_eq!(body["error"], "redirect_uri_mismatch", "{body}");
    assert_eq!(
        body["error_description"],
        "The redirect_uri MUST match the registered callback URL for this application."
    );
    // Leaving redirect_uri out is allowed, as on GitHub.
    let response = exchange(
        &hub,
        &[
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("code", &code),
        ],
        true,
    )
    .await;
    assert!(decode(response).await.1["access_token"].is_string());
    hub.stop();
}

#[tokio::test]
async fn registered_callback_rules_apply_at_authorize() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start_with(
        dir.path(),
        Options {
            callback_url: Some(CALLBACK.into()),
            ..Options::default()
        },
    )
    .await;
    hub.create_user("octocat", None).await;

    // Outside the callback: back to the callback with GitHub's error.
    let response = hub
        .client
        .get(hub.url("/login/oauth/authorize"))
        .query(&[
            ("client_id", CLIENT_ID),
            (
                "redirect_uri",
                "http://evil.localhost:8787/auth/github/callback",
            ),
            ("state", "s1"),
            ("login", "octocat"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let to = location(&response);
    assert!(to.starts_with(CALLBACK), "{to}");
    assert_eq!(query_param(&to, "error").unwrap(), "redirect_uri_mismatch");
    assert_eq!(query_param(&to, "state").unwrap(), "s1");
    assert!(query_param(&to, "code").is_none());

    // Omitted: the registered callback is used, and the exchange accepts a
    // redirect_uri below it.
    let response = hub
        .client
        .get(hub.url("/login/oauth/authorize"))
        .query(&[("client_id", CLIENT_ID), ("login", "octocat")])
        .send()
        .await
        .unwrap();
    let to = location(&response);
    assert!(to.starts_with(&format!("{CALLBACK}?code=")), "{to}");
    assert!(query_param(&to, "state").is_none());
    let code = query_param(&to, "code").unwrap();
    let body = exchange_json(&hub, &code, CLIENT_SECRET, CALLBACK).await;
    assert!(body["access_token"].is_string(), "{body}");
    hub.stop();
}

#[tokio::test]
async fn form_encoded_unless_json_is_asked_for_and_json_bodies_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    hub.create_user("octocat", None).await;

    let code = code_for(&hub, "octocat").await;
    let response = exchange(
        &hub,
        &[
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("code", &code),
        ],
        false,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/x-www-form-urlencoded")
    );
    let text = response.text().await.unwrap();
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect();
    let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["access_token", "scope", "token_type"], "{text}");
    assert!(fields[0].1.starts_with("gho_"));
    assert_eq!(fields[1].1, "read:user,user:email");

    let error = exchange(
        &hub,
        &[
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("code", &code),
        ],
        false,
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(
        error.starts_with("error=bad_verification_code&error_description="),
        "{error}"
    );

    // JSON request body, JSON answer.
    let code = code_for(&hub, "octocat").await;
    let response = hub
        .client
        .post(hub.url("/login/oauth/access_token"))
        .header("accept", "application/json")
        .json(&json!({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "code": code}))
        .send()
        .await
        .unwrap();
    let (status, body) = decode(response).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["access_token"].as_str().unwrap().starts_with("gho_"));
    hub.stop();
}
