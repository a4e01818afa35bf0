//! Who may open a workspace's routes: management bearer tokens, terminal
//! tickets exchanged for the `sam_ws` cookie (at `/session`, or by a 303 on
//! any plain GET), and that cookie — each only for its own node and
//! workspace.

// Test helpers outside `#[test]` functions unwrap too; a panic is a failure.
#![allow(clippy::unwrap_used)]

mod common;

use common::browser::{APP_ORIGIN, BrowserHarness, OTHER_WORKSPACE, WORKSPACE, set_cookie_pair};
use common::{NODE_ID, now_ms};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use sam_auth::Audience;
use serde_json::{Value, json};

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or_default()
}

fn terminals(workspace: &str) -> String {
    format!("/workspaces/{workspace}/terminals")
}

fn session(workspace: &str, ticket: &str) -> String {
    format!("/workspaces/{workspace}/session?token={ticket}")
}

fn set_cookie(headers: &HeaderMap) -> &str {
    headers
        .get("set-cookie")
        .map(|v| v.to_str().unwrap())
        .unwrap_or_default()
}

#[tokio::test]
async fn session_exchanges_a_ticket_once_for_an_http_only_cookie() {
    let h = BrowserHarness::start(|_| {}).await;
    let ticket = h.ticket(WORKSPACE);
    let (status, headers, _) = h.get(&session(WORKSPACE, &ticket), &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let cookie = set_cookie(&headers);
    let value = cookie
        .strip_prefix("sam_ws=")
        .and_then(|rest| rest.split(';').next())
        .unwrap();
    assert_eq!(value.len(), 64, "{cookie}");
    assert!(value.bytes().all(|b| b.is_ascii_hexdigit()), "{cookie}");
    assert!(!value.contains(&ticket));
    assert_eq!(
        cookie.strip_prefix(&format!("sam_ws={value}")).unwrap(),
        "; HttpOnly; SameSite=Lax; Path=/; Max-Age=28800"
    );
    assert_eq!(headers["cache-control"], "no-store");

    // The cookie opens the workspace.
    let pair = set_cookie_pair(&headers);
    let (status, _, body) = h.get(&terminals(WORKSPACE), &[("cookie", &pair)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({ "terminals": [] }));
    // In any case of the id.
    let lower = terminals(&WORKSPACE.to_lowercase());
    assert_eq!(h.get(&lower, &[("cookie", &pair)]).await.0, StatusCode::OK);

    // The ticket does not work twice.
    let (status, headers, body) = h.get(&session(WORKSPACE, &ticket), &[]).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "token_replayed")
    );
    assert!(!headers.contains_key("set-cookie"));
}

#[tokio::test]
async fn the_cookie_is_secure_over_https_or_when_configured() {
    let h = BrowserHarness::start(|_| {}).await;
    let (_, headers, _) = h
        .get(
            &session(WORKSPACE, &h.ticket(WORKSPACE)),
            &[("x-forwarded-proto", "https")],
        )
        .await;
    assert!(set_cookie(&headers).ends_with("; Secure"), "{headers:?}");

    let h = BrowserHarness::start(|cfg| cfg.secure_cookies = true).await;
    let (_, headers, _) = h.get(&session(WORKSPACE, &h.ticket(WORKSPACE)), &[]).await;
    assert!(set_cookie(&headers).ends_with("; Secure"), "{headers:?}");
}

#[tokio::test]
async fn tickets_for_another_workspace_or_node_are_scope_mismatches() {
    let h = BrowserHarness::start(|_| {}).await;
    let other_workspace = h.ticket(OTHER_WORKSPACE);
    let other_node = h.ticket_at("01HZX3Y0000000000000000001", WORKSPACE, now_ms());
    for ticket in [&other_workspace, &other_node] {
        let (status, headers, body) = h.get(&session(WORKSPACE, ticket), &[]).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "token_scope_mismatch")
        );
        assert!(!headers.contains_key("set-cookie"));
        // Nor by the redirect.
        let (status, _, body) = h
            .get(&format!("{}?token={ticket}", terminals(WORKSPACE)), &[])
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "token_scope_mismatch")
        );
    }
    // The right workspace, in another case, is fine.
    let (status, _, _) = h
        .get(
            &session(&WORKSPACE.to_lowercase(), &h.ticket(WORKSPACE)),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn expired_foreign_and_malformed_tickets_are_refused_with_their_codes() {
    let h = BrowserHarness::start(|_| {}).await;
    // 60 s tickets, 30 s of leeway: one issued two minutes ago is over.
    let expired = h.ticket_at(NODE_ID, WORKSPACE, now_ms() - 120_000);
    let management = h.management();
    let port_access = h.key.issue(
        &h.cp.url(),
        &sam_auth::Grant::workspace(Audience::PortAccess, NODE_ID, WORKSPACE, 60),
        now_ms(),
    );
    for (ticket, expected) in [
        (expired.as_str(), "token_expired"),
        (management.as_str(), "token_wrong_audience"),
        (port_access.as_str(), "token_wrong_audience"),
        ("not-a-token", "token_malformed"),
        ("", "token_missing"),
    ] {
        let (status, _, body) = h.get(&session(WORKSPACE, ticket), &[]).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, expected),
            "{ticket}"
        );
    }
    let (status, _, body) = h
        .get(&format!("/workspaces/{WORKSPACE}/session"), &[])
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "token_missing")
    );
    // A malformed workspace id is not found, once the ticket verified.
    let (status, _, body) = h
        .get(&session("not-a-ulid", &h.ticket(WORKSPACE)), &[])
        .await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
}

#[tokio::test]
async fn a_cookie_opens_its_own_workspace_only() {
    let h = BrowserHarness::start(|_| {}).await;
    h.workspace(WORKSPACE).await;
    h.workspace(OTHER_WORKSPACE).await;
    let cookie_a = h.cookie(WORKSPACE).await;

    let (status, _, body) = h
        .get(&terminals(OTHER_WORKSPACE), &[("cookie", &cookie_a)])
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "token_scope_mismatch")
    );
    let (status, body) = h
        .create_terminal(OTHER_WORKSPACE, ("cookie", &cookie_a), json!({}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "token_scope_mismatch")
    );

    // Both cookies in one request (as a browser could send): each opens
    // its own workspace.
    let cookie_b = h.cookie(OTHER_WORKSPACE).await;
    let both = format!("{cookie_a}; {cookie_b}");
    for workspace in [WORKSPACE, OTHER_WORKSPACE] {
        assert_eq!(
            h.get(&terminals(workspace), &[("cookie", &both)]).await.0,
            StatusCode::OK
        );
    }

    let unknown = format!("sam_ws={}", "ab".repeat(32));
    for (headers, expected) in [
        (vec![("cookie", unknown.as_str())], "session_invalid"),
        (vec![("cookie", "other=1")], "token_missing"),
        (vec![], "token_missing"),
    ] {
        let (status, _, body) = h.get(&terminals(WORKSPACE), &headers).await;
        assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, expected));
    }
}

#[tokio::test]
async fn cookie_requests_from_foreign_origins_are_refused() {
    let h = BrowserHarness::start(|_| {}).await;
    let cookie = h.cookie(WORKSPACE).await;
    let own = format!("http://ws-{}.localhost:8787", WORKSPACE.to_lowercase());
    let port = format!(
        "http://ws-{}--3000.localhost:8787",
        WORKSPACE.to_lowercase()
    );
    let other = format!(
        "http://ws-{}.localhost:8787",
        OTHER_WORKSPACE.to_lowercase()
    );
    for (origin, expected) in [
        (APP_ORIGIN, StatusCode::OK),
        (own.as_str(), StatusCode::OK),
        (port.as_str(), StatusCode::FORBIDDEN),
        (other.as_str(), StatusCode::FORBIDDEN),
        ("http://evil.localhost:8787", StatusCode::FORBIDDEN),
    ] {
        let (status, _, body) = h
            .get(
                &terminals(WORKSPACE),
                &[("cookie", &cookie), ("origin", origin)],
            )
            .await;
        assert_eq!(status, expected, "{origin}: {body}");
        if status == StatusCode::FORBIDDEN {
            assert_eq!(code(&body), "origin_not_allowed");
        }
    }
}

#[tokio::test]
async fn the_app_origin_and_no_other_may_read_workspace_routes_and_preflight_them() {
    let h = BrowserHarness::start(|_| {}).await;
    let (_, headers, _) = h
        .get(&terminals(WORKSPACE), &[("origin", APP_ORIGIN)])
        .await;
    assert_eq!(headers["access-control-allow-origin"], APP_ORIGIN);
    assert_eq!(headers["access-control-allow-credentials"], "true");
    let (_, headers, _) = h
        .get(
            &terminals(WORKSPACE),
            &[("origin", "http://evil.localhost:8787")],
        )
        .await;
    assert!(!headers.contains_key("access-control-allow-origin"));
    let preflight = |origin: &'static str, path: String| {
        h.http
            .request(reqwest::Method::OPTIONS, h.url(&path))
            .header("origin", origin)
            .header("access-control-request-method", "DELETE")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let resp = preflight(APP_ORIGIN, terminals(WORKSPACE)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(resp.headers()["access-control-allow-origin"], APP_ORIGIN);
    assert_eq!(
        resp.headers()["access-control-allow-methods"],
        "GET, POST, PATCH, DELETE"
    );
    assert_eq!(
        resp.headers()["access-control-allow-headers"],
        "content-type"
    );
    let resp = preflight("http://evil.localhost:8787", terminals(WORKSPACE))
        .await
        .unwrap();
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
    // The port list is the page's; a forwarded port's answers are the
    // app's own business.
    let resp = preflight(APP_ORIGIN, format!("/workspaces/{WORKSPACE}/ports"))
        .await
        .unwrap();
    assert_eq!(resp.headers()["access-control-allow-origin"], APP_ORIGIN);
    let resp = preflight(APP_ORIGIN, format!("/workspaces/{WORKSPACE}/ports/3000/x"))
        .await
        .unwrap();
    assert!(!resp.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn cors_lets_the_app_origin_and_no_other_read_the_session_exchange() {
    let h = BrowserHarness::start(|_| {}).await;
    let (status, headers, _) = h
        .get(
            &session(WORKSPACE, &h.ticket(WORKSPACE)),
            &[("origin", APP_ORIGIN)],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(headers["access-control-allow-origin"], APP_ORIGIN);
    assert_eq!(headers["access-control-allow-credentials"], "true");
    assert_eq!(headers["vary"], "Origin");
    // Errors too, so the app can tell why.
    let (status, headers, _) = h
        .get(&session(WORKSPACE, "bad"), &[("origin", APP_ORIGIN)])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["access-control-allow-origin"], APP_ORIGIN);

    for origin in [
        "http://evil.localhost:8787",
        "http://app.localhost:8788",
        "null",
    ] {
        let (_, headers, _) = h
            .get(
                &session(WORKSPACE, &h.ticket(WORKSPACE)),
                &[("origin", origin)],
            )
            .await;
        assert!(
            !headers.contains_key("access-control-allow-origin"),
            "{origin}"
        );
        assert!(
            !headers.contains_key("access-control-allow-credentials"),
            "{origin}"
        );
    }

    // The preflight.
    let preflight = |origin: &'static str| {
        h.http
            .request(
                reqwest::Method::OPTIONS,
                h.url(&format!("/workspaces/{WORKSPACE}/session")),
            )
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
    };
    let resp = preflight(APP_ORIGIN).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(resp.headers()["access-control-allow-origin"], APP_ORIGIN);
    assert_eq!(resp.headers()["access-control-allow-credentials"], "true");
    assert_eq!(resp.headers()["access-control-allow-methods"], "GET");
    let resp = preflight("http://evil.localhost:8787").await.unwrap();
    assert!(!resp.headers().contains_key("access-control-allow-origin"));

    // No app origin configured: no CORS for anyone.
    let h = BrowserHarness::start(|cfg| cfg.app_origin = None).await;
    let (status, headers, _) = h
        .get(
            &session(WORKSPACE, &h.ticket(WORKSPACE)),
            &[("origin", APP_ORIGIN)],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!headers.contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn a_plain_get_with_a_ticket_redirects_without_it_and_sets_the_cookie() {
    let h = BrowserHarness::start(|_| {}).await;
    let ticket = h.ticket(WORKSPACE);
    let url = format!("{}?view=all&token={ticket}", terminals(WORKSPACE));
    let (status, headers, _) = h.get(&url, &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = headers["location"].to_str().unwrap();
    assert_eq!(location, "./terminals?view=all");
    assert_eq!(headers["cache-control"], "no-store");
    // Relative to the request, that is the same path without the token.
    let target = url::Url::parse(&h.url(&url))
        .unwrap()
        .join(location)
        .unwrap();
    assert_eq!(
        target.as_str(),
        h.url(&format!("{}?view=all", terminals(WORKSPACE)))
    );
    let cookie = set_cookie_pair(&headers);
    assert!(cookie.starts_with("sam_ws="));
    assert!(set_cookie(&headers).contains("HttpOnly"));

    // Following it with the cookie lands.
    let (status, _, body) = h.get(target.path(), &[("cookie", &cookie)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Replayed without the cookie: refused; with it (a reload of a URL
    // that still has the old ticket): redirected, no new cookie.
    let (status, _, body) = h.get(&url, &[]).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "token_replayed")
    );
    let (status, headers, _) = h.get(&url, &[("cookie", &cookie)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(!headers.contains_key("set-cookie"));

    // Paths the agent does not serve are redirected just the same (the
    // route decides afterwards).
    let (status, headers, _) = h
        .get(
            &format!(
                "/workspaces/{WORKSPACE}/files/a%20b/?token={}",
                h.ticket(WORKSPACE)
            ),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "./");
}

#[tokio::test]
async fn forwarded_ports_keep_their_own_token_parameter() {
    let h = BrowserHarness::start(|_| {}).await;
    let (status, headers, _) = h
        .get(
            &format!(
                "/workspaces/{WORKSPACE}/ports/8888/lab?token={}",
                h.ticket(WORKSPACE)
            ),
            &[],
        )
        .await;
    assert_ne!(status, StatusCode::SEE_OTHER);
    assert!(!headers.contains_key("set-cookie"));
}

#[tokio::test]
async fn management_tokens_open_workspaces_and_are_checked_first() {
    let h = BrowserHarness::start(|_| {}).await;
    let bearer = format!("Bearer {}", h.management());
    let (status, _, _) = h
        .get(&terminals(WORKSPACE), &[("authorization", &bearer)])
        .await;
    assert_eq!(status, StatusCode::OK);

    let other_node = format!(
        "Bearer {}",
        h.cp.token(
            &h.key,
            Audience::NodeManagement,
            "01HZX3Y0000000000000000001"
        )
    );
    let ticket_as_bearer = format!("Bearer {}", h.ticket(WORKSPACE));
    let cookie = h.cookie(WORKSPACE).await;
    for (auth, expected) in [
        (
            other_node.as_str(),
            (StatusCode::FORBIDDEN, "token_scope_mismatch"),
        ),
        (
            ticket_as_bearer.as_str(),
            (StatusCode::UNAUTHORIZED, "token_wrong_audience"),
        ),
    ] {
        // A failing bearer is not rescued by a good cookie.
        let (status, _, body) = h
            .get(
                &terminals(WORKSPACE),
                &[("authorization", auth), ("cookie", &cookie)],
            )
            .await;
        assert_eq!((status, code(&body)), expected);
    }
    // A malformed id is not found, after the token.
    let (status, _, body) = h
        .get(&terminals("nope"), &[("authorization", &bearer)])
        .await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, _, _) = h.get(&terminals("nope"), &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
